"""Every page of the built book, loaded in headless Chromium, as a reader gets it.

One test per property and page, so a failure names both. Pages are found at collection
time (see conftest.py), so new chapters are checked as soon as they are in the book.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .conftest import book_root, internal_link_problems, parsed


def _lines(items, limit=15) -> str:
    items = list(items)
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return "\n  " + "\n  ".join(map(str, items[:limit])) + more


def test_no_console_errors(audit, page):
    report = audit(page)
    assert report["ready"] == "ok", report["ready"]
    assert not report["console"], f"{page}: JavaScript console errors:{_lines(report['console'])}"


def test_no_failed_requests(audit, page):
    report = audit(page)
    assert not report["failed"], f"{page}: requests that failed:{_lines(report['failed'])}"


def test_no_request_to_another_host(audit, page):
    report = audit(page)
    assert report["requests"], f"{page}: no request was recorded (is the page served?)"
    assert not report["foreign"], (
        f"{page}: requests to hosts other than the book's own (CDN fonts, scripts, "
        f"analytics?):{_lines(report['foreign'])}"
    )


def test_images_decoded(audit, page):
    report = audit(page)
    broken = [img["src"] for img in report["images"] if img["natural"] <= 0]
    assert not broken, f"{page}: images not decoded (natural width 0):{_lines(broken)}"


def test_math_typeset(audit, page):
    report = audit(page)
    math = report["math"]
    in_source = parsed(book_root() / page).math_nodes
    assert not math["errors"], f"{page}: MathJax could not typeset:{_lines(math['errors'])}"
    assert math["rendered"] == in_source, (
        f"{page}: {in_source} math nodes in the HTML, {math['rendered']} typeset by MathJax; "
        f"untypeset:{_lines(math['unrendered'])}"
    )
    assert math["containers"] >= in_source


def test_no_raw_tex_in_text(audit, page):
    report = audit(page)
    assert not report["rawTex"], (
        f"{page}: TeX left as text (a $ the parser did not take as math?):"
        f"{_lines(report['rawTex'])}"
    )


def test_internal_links_resolve(audit, page, server):
    report = audit(page)
    problems = internal_link_problems(report, book_root(), urlsplit(server).netloc)
    assert not problems, f"{page}: broken internal links or anchors:{_lines(problems)}"


def test_text_fits_phone_width(audit, page):
    """At 390 px no text sticks out and nothing makes the page or the article scroll sideways.

    Usual causes: a long inline formula (MathJax does not break inline math; write it as
    display math, which scrolls in its own box) or a ``$`` pair the parser matched wrongly.
    """
    mobile = audit(page)["mobile"]
    width = mobile["viewport"]
    problems = list(mobile["bad"])
    if mobile["pageWidth"] > width:
        problems.append(f"the page is {mobile['pageWidth']} px wide (scrolls sideways)")
    if mobile["articleScrolls"]:
        content, box = mobile["articleWidths"]
        problems.append(f"the article scrolls sideways ({content} px of content in {box} px)")
    assert not problems, f"{page}: too wide for a {width} px phone screen:{_lines(problems)}"


def _opaque_light(css_color: str) -> bool:
    """True for a computed CSS colour that is fully opaque and light (a white-ish backing)."""
    nums = [float(x) for x in re.findall(r"[\d.]+", css_color)]
    if len(nums) < 3 or (len(nums) > 3 and nums[3] < 1):
        return False
    r, g, b = nums[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.7 * 255


def test_figures_readable_in_dark_theme(audit, page):
    """A figure must be opaque, or at least sit on an opaque light backing in the dark theme.

    A transparent matplotlib figure draws black axes and labels on the dark page background,
    where they cannot be read.
    """
    unreadable = []
    for img in audit(page)["dark"]:
        if "error" in img:
            unreadable.append(f"{img['src']}: {img['error']}")
        elif img["transparent"] > 0.01 and not _opaque_light(img["background"]):
            unreadable.append(
                f"{img['src']}: {img['transparent']:.0%} transparent pixels on background "
                f"{img['background']} (save figures with an opaque facecolor)"
            )
    assert not unreadable, f"{page}: figures unreadable in the dark theme:{_lines(unreadable)}"


def test_title_and_description(audit, page):
    report = audit(page)
    assert report["title"].strip(), f"{page}: empty <title>"
    description = report["description"].strip()
    assert len(description) >= 20, (
        f"{page}: meta description missing or too short: {description!r} "
        "(set one with myst html_meta, or give the page a first paragraph)"
    )


def test_logo_and_favicon(audit, page):
    report = audit(page)
    assert report["favicon"].endswith("favicon.svg"), f"{page}: favicon link {report['favicon']!r}"
    assert report["logo"], f"{page}: no logo in the navigation bar"
    assert all(logo["natural"] > 0 for logo in report["logo"]), report["logo"]


def test_figures_numbered_and_captioned(audit, page):
    report = audit(page)
    unnumbered = [f for f in report["figures"] if not re.match(r"Fig\.?\s*\d+", f["number"])]
    assert not unnumbered, f"{page}: figures without a numbered caption:{_lines(unnumbered)}"
    assert not report["looseImages"], (
        f"{page}: images outside a captioned figure (give the cell mystnb figure metadata "
        f"or use glue + {{glue:figure}}):{_lines(report['looseImages'])}"
    )
