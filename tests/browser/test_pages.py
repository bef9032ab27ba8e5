"""Every page of the built book, loaded in headless Chromium, as a reader gets it.

One test per property and book_page, so a failure names both. Pages are found at collection
time (see conftest.py), so new chapters are checked as soon as they are in the book.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .conftest import book_root, internal_link_problems, parsed
from .fontsets import FONT_SETS


def _lines(items, limit=15) -> str:
    items = list(items)
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n  " + "\n  ".join(map(str, items[:limit])) + more


def test_no_console_errors(audit, book_page):
    report = audit(book_page)
    assert report["ready"] == "ok", report["ready"]
    assert not report["console"], (
        f"{book_page}: JavaScript console errors:{_lines(report['console'])}"
    )


def test_no_failed_requests(audit, book_page):
    report = audit(book_page)
    assert not report["failed"], f"{book_page}: requests that failed:{_lines(report['failed'])}"


def test_no_request_to_another_host(audit, book_page):
    report = audit(book_page)
    assert report["requests"], f"{book_page}: no request was recorded (is the page served?)"
    assert not report["foreign"], (
        f"{book_page}: requests to hosts other than the book's own (CDN fonts, scripts, "
        f"analytics?):{_lines(report['foreign'])}"
    )


def test_images_decoded(audit, book_page):
    report = audit(book_page)
    broken = [img["src"] for img in report["images"] if img["natural"] <= 0]
    assert not broken, f"{book_page}: images not decoded (natural width 0):{_lines(broken)}"


def test_math_typeset(audit, book_page):
    report = audit(book_page)
    math = report["math"]
    in_source = parsed(book_root() / book_page).math_nodes
    assert not math["errors"], f"{book_page}: MathJax could not typeset:{_lines(math['errors'])}"
    assert math["rendered"] == in_source, (
        f"{book_page}: {in_source} math nodes in the HTML, {math['rendered']} typeset by MathJax; "
        f"untypeset:{_lines(math['unrendered'])}"
    )
    assert math["containers"] >= in_source


def test_no_raw_tex_in_text(audit, book_page):
    report = audit(book_page)
    assert not report["rawTex"], (
        f"{book_page}: TeX left as text (a $ the parser did not take as math?):"
        f"{_lines(report['rawTex'])}"
    )


def test_internal_links_resolve(audit, book_page, server):
    report = audit(book_page)
    problems = internal_link_problems(report, book_root(), urlsplit(server).netloc)
    assert not problems, f"{book_page}: broken internal links or anchors:{_lines(problems)}"


def test_font_set_available(font_set, font_configs):
    """Each font set is complete and offers nothing else (no silent fallback to other fonts)."""
    problems = FONT_SETS[font_set].check(font_configs[font_set])
    assert not problems, f"font set {font_set!r}:{_lines(problems)}"


def test_text_fits_phone_width(phone_audits, font_set, book_page, font_configs):
    """At 390 px no text sticks out and nothing makes the page or the article scroll sideways.

    Checked under every font set of fontsets.py, each offering Chromium only its own fonts,
    so the result does not depend on the fonts of the machine that runs the test. Usual
    causes: a long inline formula or identifier (chapters/_static/course.css makes inline
    code wrap and inline math scroll in its own box; a formula that still does not fit is
    better written as display math) or a ``$`` pair the parser matched wrongly.
    """
    mobile = phone_audits(font_set)(book_page)
    assert mobile["ready"] == "ok", mobile["ready"]
    # The page must have been drawn with the set's fonts only, or the check proves nothing.
    offered = FONT_SETS[font_set].offered(font_configs[font_set])
    strangers = {family: n for family, n in mobile["fonts"].items() if family not in offered}
    assert mobile["fonts"] and not strangers, (
        f"{book_page}: under font set {font_set!r} Chromium drew text with {mobile['fonts']} "
        f"(glyphs per family); the set offers only {sorted(offered)}. "
        "Is FONTCONFIG_FILE honoured by this Chromium?"
    )
    main = max(mobile["fonts"], key=mobile["fonts"].get)
    assert main in FONT_SETS[font_set].sans, (
        f"{book_page}: under font set {font_set!r} most text was drawn in {main!r}, not in the "
        f"set's sans-serif {FONT_SETS[font_set].sans} ({mobile['fonts']}): fontconfig resolved "
        "the theme's font stack to the wrong family (see fontsets.py, the aliases)"
    )
    width = mobile["viewport"]
    problems = list(mobile["bad"])
    if mobile["pageWidth"] > width:
        problems.append(f"the page is {mobile['pageWidth']} px wide (scrolls sideways)")
    if mobile["articleScrolls"]:
        content, box = mobile["articleWidths"]
        problems.append(f"the article scrolls sideways ({content} px of content in {box} px)")
    assert not problems, (
        f"{book_page}: too wide for a {width} px phone screen (font set {font_set!r}):"
        f"{_lines(problems)}"
    )


def _opaque_light(css_color: str) -> bool:
    """True for a computed CSS colour that is fully opaque and light (a white-ish backing)."""
    nums = [float(x) for x in re.findall(r"[\d.]+", css_color)]
    if len(nums) < 3 or (len(nums) > 3 and nums[3] < 1):
        return False
    r, g, b = nums[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.7 * 255


def test_figures_readable_in_dark_theme(audit, book_page):
    """A figure must be opaque, or at least sit on an opaque light backing in the dark theme.

    A transparent matplotlib figure draws black axes and labels on the dark page background,
    where they cannot be read.
    """
    unreadable = []
    for img in audit(book_page)["dark"]:
        if "error" in img:
            unreadable.append(f"{img['src']}: {img['error']}")
        elif img["transparent"] > 0.01 and not _opaque_light(img["background"]):
            unreadable.append(
                f"{img['src']}: {img['transparent']:.0%} transparent pixels on background "
                f"{img['background']} (save figures with an opaque facecolor)"
            )
    assert not unreadable, f"{book_page}: figures unreadable in the dark theme:{_lines(unreadable)}"


def test_title_and_description(audit, book_page):
    report = audit(book_page)
    assert report["title"].strip(), f"{book_page}: empty <title>"
    description = report["description"].strip()
    assert len(description) >= 20, (
        f"{book_page}: meta description missing or too short: {description!r} "
        "(set one with myst html_meta, or give the page a first paragraph)"
    )


def test_logo_and_favicon(audit, book_page):
    report = audit(book_page)
    assert report["favicon"].endswith("favicon.svg"), (
        f"{book_page}: favicon link {report['favicon']!r}"
    )
    assert report["logo"], f"{book_page}: no logo in the navigation bar"
    assert all(logo["natural"] > 0 for logo in report["logo"]), report["logo"]


def test_figures_numbered_and_captioned(audit, book_page):
    report = audit(book_page)
    unnumbered = [f for f in report["figures"] if not re.match(r"Fig\.?\s*\d+", f["number"])]
    assert not unnumbered, f"{book_page}: figures without a numbered caption:{_lines(unnumbered)}"
    assert not report["looseImages"], (
        f"{book_page}: images outside a captioned figure (give the cell mystnb figure metadata "
        f"or use glue + {{glue:figure}}):{_lines(report['looseImages'])}"
    )
