"""Tables that a cell displays as Markdown render as tables in the built book.

Chapters 15 and 16 print their result tables with ``display(Markdown(...))``. myst-nb parses
such output as CommonMark unless ``nb_render_markdown_format`` says otherwise, and CommonMark
has no tables: the page then shows one paragraph of ``| a | b |`` text. This reads the HTML
that ``make test`` has just built (``_build/html``) and fails on any paragraph that is a pipe
table left unparsed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
PAGES = sorted(HTML.glob("chapters/*.html")) + sorted(HTML.glob("exercises/**/*.html"))
# A row followed by the delimiter row, as in "| a | b |\n|---|---|": in an unparsed table the
# two end up in one paragraph's text (with "---" typeset as an em dash by smartquotes).
PIPE_TABLE = re.compile(r"\|[^|\n]*\|\s*\n\s*\|\s*:?(?:-{3,}|[\u2014\u2013]-*)")


class _Paragraphs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.depth = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth += 1
            self.texts.append("")

    def handle_endtag(self, tag):
        if tag == "p" and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.texts[-1] += data


def unparsed_tables(html: str) -> list[str]:
    parser = _Paragraphs()
    parser.feed(html)
    return [t.strip()[:120] for t in parser.texts if PIPE_TABLE.search(t)]


def test_detector_sees_an_unparsed_table_and_passes_a_real_one():
    raw = "<p>| channels C | time (µs) |\n|---|---|\n| 8 | 3.1 |</p>"
    assert unparsed_tables(raw)
    typeset = "<p>| devices R | per-device BN (%) |\n|\u2014:|\u2014:|\n| 1 | 97.9 |</p>"
    assert unparsed_tables(typeset)
    table = "<table><tr><th>channels C</th></tr></table><p>See the table | above.</p>"
    assert not unparsed_tables(table)


@pytest.mark.skipif(not PAGES, reason="the book is not built (make book-clean)")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(HTML)))
def test_no_unparsed_pipe_table(page):
    bad = unparsed_tables(page.read_text(encoding="utf-8"))
    assert not bad, (
        f"{page.relative_to(HTML)} shows a Markdown table as plain text (is "
        f"nb_render_markdown_format still 'myst' in _config.yml?): {bad}"
    )
