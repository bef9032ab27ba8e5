"""Report the weight of every page of the built book: its HTML plus the images it shows.

A reader on a slow connection downloads a page's HTML and every image on it; the theme's
CSS and JavaScript are shared by all pages and cached after the first one, so they are not
counted here. Images embedded as ``data:`` URIs are already part of the HTML size.

Usage::

    python tools/page_weight.py                          # table for _build/html
    python tools/page_weight.py /tmp/book/_build/html    # another build
    python tools/page_weight.py --limit-mb 2 --check     # exit 1 if a page is over 2 MB

The browser test suite (``tests/browser``) uses :func:`discover_pages` to find the pages it
checks and :func:`measure` to keep every chapter page under the limit.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Folders of a Sphinx HTML build that hold assets, not pages.
ASSET_DIRS = ("_static", "_sources", "_images", "_downloads", ".doctrees", "_sphinx_design_static")
DEFAULT_LIMIT_MB = 2.0
MB = 1024 * 1024


def discover_pages(root: Path) -> list[str]:
    """List every HTML page of a built book, as paths relative to ``root``.

    Parameters
    ----------
    root : Path
        The HTML output folder (``_build/html``).

    Returns
    -------
    list of str
        POSIX paths such as ``"chapters/intro.html"``, sorted, without the theme's asset
        folders (``_static`` and the like).

    Examples
    --------
    >>> discover_pages(Path("_build/html"))  # doctest: +SKIP
    ['chapters/glossary.html', 'chapters/intro.html', 'genindex.html', 'index.html', ...]
    """
    root = Path(root)
    pages = []
    for path in root.rglob("*.html"):
        rel = path.relative_to(root)
        if rel.parts[0] in ASSET_DIRS:
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


class _PageParser(HTMLParser):
    """Collect what the checks need from one page: images, ids, assets, math, redirect."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.refresh: str | None = None
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.math_nodes = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.ids.add(a["name"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        if tag == "link" and "stylesheet" in a.get("rel", "").split() and a.get("href"):
            self.stylesheets.append(a["href"])
        if tag in ("span", "div") and "math" in a.get("class", "").split():
            self.math_nodes += 1
        if tag == "meta" and a.get("http-equiv", "").lower() == "refresh":
            _, _, target = a.get("content", "").partition("url=")
            self.refresh = target.strip() or None


def parse_page(path: Path) -> _PageParser:
    """Parse one HTML file and return its image sources, ids and redirect target."""
    parser = _PageParser()
    parser.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
    return parser


@dataclass
class PageWeight:
    """The bytes a reader downloads for one page (shared theme assets excluded)."""

    page: str
    html_bytes: int
    image_bytes: int = 0
    images: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)
    redirect: str | None = None

    @property
    def total_bytes(self) -> int:
        return self.html_bytes + self.image_bytes


def measure(root: Path, page: str) -> PageWeight:
    """Measure one page: its HTML file plus each distinct local image it references.

    Parameters
    ----------
    root : Path
        The HTML output folder.
    page : str
        The page, relative to ``root`` (as returned by :func:`discover_pages`).

    Returns
    -------
    PageWeight
        Sizes in bytes; ``missing_images`` lists image sources that point at no file.

    Examples
    --------
    >>> w = measure(Path("_build/html"), "chapters/intro.html")  # doctest: +SKIP
    >>> w.total_bytes < 2 * 1024 * 1024  # doctest: +SKIP
    True
    """
    root = Path(root)
    path = root / page
    parsed = parse_page(path)
    weight = PageWeight(page=page, html_bytes=path.stat().st_size, redirect=parsed.refresh)
    seen = set()
    for src in parsed.images:
        parts = urlsplit(src)
        if parts.scheme or parts.netloc:  # data: URIs are inside the HTML; remote ones are a bug
            continue
        target = (path.parent / unquote(parts.path)).resolve()
        if target in seen:
            continue
        seen.add(target)
        if target.is_file():
            weight.images.append(src)
            weight.image_bytes += target.stat().st_size
        else:
            weight.missing_images.append(src)
    return weight


def format_table(weights: list[PageWeight], limit_mb: float = DEFAULT_LIMIT_MB) -> str:
    """Return a plain-text table of page weights, heaviest first."""
    rows = sorted(weights, key=lambda w: w.total_bytes, reverse=True)
    width = max([len(w.page) for w in rows] + [4])
    lines = [
        f"{'page':<{width}}  {'html KB':>8}  {'images':>6}  {'images KB':>9}  {'total KB':>9}",
        "-" * (width + 42),
    ]
    for w in rows:
        flag = "  OVER LIMIT" if w.total_bytes > limit_mb * MB else ""
        lines.append(
            f"{w.page:<{width}}  {w.html_bytes / 1024:>8.1f}  {len(w.images):>6d}  "
            f"{w.image_bytes / 1024:>9.1f}  {w.total_bytes / 1024:>9.1f}{flag}"
        )
    total = sum(w.total_bytes for w in rows)
    lines.append("-" * (width + 42))
    lines.append(f"{len(rows)} pages, {total / MB:.2f} MB in all; limit per page {limit_mb:g} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the page-weight table; with ``--check``, exit 1 if a page is over the limit."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default="_build/html", help="built HTML folder")
    ap.add_argument("--limit-mb", type=float, default=DEFAULT_LIMIT_MB)
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is over the limit")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not (root / "index.html").is_file():
        print(f"No built book at {root}; run `make book` first.", file=sys.stderr)
        return 2
    weights = [measure(root, p) for p in discover_pages(root)]
    print(format_table(weights, args.limit_mb))
    over = [w.page for w in weights if w.total_bytes > args.limit_mb * MB]
    if args.check and over:
        print(f"Over {args.limit_mb:g} MB: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
