"""Fixtures for the browser suite: the built book served on 127.0.0.1 and headless Chromium.

The suite checks the book as a reader gets it. It needs a built book: ``make test`` builds
one first (``make book-clean``); to check another build, point ``BOOK_HTML`` at its HTML
folder, e.g. ``BOOK_HTML=/tmp/book/_build/html pytest tests/browser``.

Pages are discovered when the tests are collected, so every page of the book is checked,
whatever pages exist. Each page is loaded once; the tests then look at what was recorded
(console messages, requests, images, math, links, layout at phone width, dark theme).
Screenshots go to ``_build/screenshots/`` (beside the HTML folder), three per page:
``PAGE.png`` (the whole page, 1280 px wide, light theme), ``PAGE.dark.png`` (one screen in
the dark theme, on the first figure) and ``PAGE.mobile.png`` (the first three screens of a
390 px wide phone).

Without Chromium the suite is skipped with a message, except in CI (``CI=true``), where it
fails: CI must run it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from .cdp import Browser, CDPError, find_chromium

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
AUDIT_JS = (Path(__file__).parent / "page_audit.js").read_text(encoding="utf-8")
# Full-page screenshots stop here: enough to look through, small enough to stay quick.
SHOT_MAX_HEIGHT = 12000
NO_BOOK = "<no built book>"


def _load_page_weight():
    spec = importlib.util.spec_from_file_location("page_weight", ROOT / "tools" / "page_weight.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


page_weight = _load_page_weight()


def book_root() -> Path:
    """The built HTML folder: ``$BOOK_HTML`` or ``_build/html`` of the repository."""
    return Path(os.environ.get("BOOK_HTML") or ROOT / "_build" / "html").resolve()


def screenshot_root() -> Path:
    return Path(os.environ.get("BOOK_SCREENSHOTS") or book_root().parent / "screenshots")


def unavailable(message: str) -> None:
    """Skip with ``message``; in CI, fail instead (the browser suite must run there)."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the browser suite must run, not skip)", pytrace=False)
    pytest.skip(message)


@functools.cache
def parsed(path: Path):
    """Ids, images, math nodes and redirect target of one HTML file (cached)."""
    return page_weight.parse_page(path)


def redirect_target(page: str) -> str | None:
    return parsed(book_root() / page).refresh


def all_pages() -> list[str]:
    root = book_root()
    if not (root / "index.html").is_file():
        return []
    return page_weight.discover_pages(root)


def reader_pages() -> list[str]:
    """Every page a reader can land on (redirect stubs such as index.html excluded)."""
    return [p for p in all_pages() if not redirect_target(p)]


def redirect_pages() -> list[str]:
    return [p for p in all_pages() if redirect_target(p)]


def source_of(page: str) -> Path | None:
    """The page's source as copied into the build (``_sources/...``), or None."""
    stem = page[: -len(".html")]
    for suffix in (".ipynb", ".md", ".rst"):
        src = book_root() / "_sources" / f"{stem}{suffix}"
        if src.is_file():
            return src
    return None


def notebook_pages() -> list[str]:
    return [p for p in reader_pages() if (s := source_of(p)) and s.suffix == ".ipynb"]


def pytest_generate_tests(metafunc):
    lists = {
        "page": reader_pages,
        "notebook_page": notebook_pages,
        "any_page": all_pages,
        "redirect_page": redirect_pages,
    }
    for name, make in lists.items():
        if name in metafunc.fixturenames:
            pages = make() if (book_root() / "index.html").is_file() else [NO_BOOK]
            metafunc.parametrize(name, pages, ids=[p.removesuffix(".html") for p in pages])


@pytest.fixture(scope="session")
def book() -> Path:
    root = book_root()
    if not (root / "index.html").is_file():
        unavailable(
            f"No built book at {root}: run `make book-clean` first "
            "(or set BOOK_HTML to the HTML folder of a build)"
        )
    return root


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".svg": "image/svg+xml",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".json": "application/json",
        ".ipynb": "application/x-ipynb+json",
    }

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def server(book):
    """Serve the book on 127.0.0.1 at a free port from a thread; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(book))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="book-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    exe = find_chromium()
    if not exe:
        unavailable(
            "No Chromium found. Install it with `bash tools/ensure_chromium.sh` "
            "(Debian: apt-get install chromium), or set CHROMIUM=/path/to/chromium"
        )
    try:
        b = Browser(exe)
    except CDPError as exc:
        unavailable(f"Chromium ({exe}) did not start: {exc}")
    yield b
    b.close()


def _is_foreign(url: str, netloc: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != netloc


def _summarize_events(events: list[dict], netloc: str) -> dict:
    """Console errors, failed requests and requests to other hosts, from CDP events."""
    urls: dict[str, str] = {}
    console, failed, foreign, requests = [], [], [], []
    for ev in events:
        method, prm = ev["method"], ev["params"]
        if method == "Network.requestWillBeSent":
            url = prm["request"]["url"]
            urls[prm["requestId"]] = url
            requests.append(url)
            if _is_foreign(url, netloc):
                foreign.append(url)
        elif method == "Network.responseReceived":
            status = prm["response"]["status"]
            if status >= 400:
                failed.append(f"HTTP {status}: {prm['response']['url']}")
        elif method == "Network.loadingFailed":
            if not prm.get("canceled"):
                url = urls.get(prm["requestId"], "?")
                failed.append(f"{prm.get('errorText')}: {url}")
        elif method == "Runtime.exceptionThrown":
            d = prm["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            console.append(f"uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and prm["type"] in ("error", "assert"):
            args = [str(a.get("value", a.get("description", ""))) for a in prm["args"]]
            console.append(f"console.{prm['type']}: {' '.join(args)}")
        elif method == "Log.entryAdded" and prm["entry"]["level"] == "error":
            e = prm["entry"]
            console.append(f"{e['source']} error: {e['text']} {e.get('url', '')}".strip())
    return {"console": console, "failed": failed, "foreign": foreign, "requests": requests}


class BookAudit:
    """Loads each page once in Chromium and keeps what the tests look at."""

    def __init__(self, book: Path, base: str, browser: Browser, shots: Path) -> None:
        self.book, self.base, self.browser, self.shots = book, base, browser, shots
        self.netloc = urlsplit(base).netloc
        self.cache: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}

    def __call__(self, page: str) -> dict:
        if page == NO_BOOK:
            unavailable("No built book: run `make book-clean` first (or set BOOK_HTML)")
        if page not in self.cache:
            t0 = time.perf_counter()
            self.cache[page] = self._audit(page)
            self.seconds[page] = time.perf_counter() - t0
        report = self.cache[page]
        if "error" in report:
            pytest.fail(f"{page} could not be checked: {report['error']}", pytrace=False)
        return report

    @property
    def tab(self):
        # One tab for all pages keeps the HTTP cache warm (as for a reader going from page
        # to page); the origin's storage is cleared before each page, so each is a first visit.
        if getattr(self, "_tab", None) is None:
            self._tab = self.browser.new_page(1280, 900, isolated=False)
            self._tab.send(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
            )
        return self._tab

    def _audit(self, page: str) -> dict:
        stem = page.removesuffix(".html")
        tab = self.tab
        try:
            tab.clear_events()
            tab.navigate("about:blank")
            tab.forget_origin(self.base)
            tab.set_viewport(1280, 900)
            start = tab.navigate(f"{self.base}/{page}")
            tab.evaluate(AUDIT_JS)
            ready = tab.evaluate("__bnAudit.ready()", timeout=40)
            tab.wait_network_idle(start, quiet=0.15)
            report = tab.evaluate("__bnAudit.collect()")
            report["ready"] = ready
            tab.screenshot(self.shots / f"{stem}.png", max_height=SHOT_MAX_HEIGHT)
            report["dark"] = tab.evaluate("__bnAudit.darkFigures()")
            # One screen in the dark theme, on the first figure if there is one (a whole-page
            # capture of a long chapter costs seconds; the pixel check above covers them all).
            tab.evaluate(
                "document.querySelector('article.bd-article figure img, article.bd-article img')"
                "?.scrollIntoView({block: 'center'})"
            )
            tab.screenshot(self.shots / f"{stem}.dark.png", full=False)
            tab.evaluate("window.scrollTo(0, 0)")
            tab.evaluate("__bnAudit.lightTheme()")
            tab.set_viewport(390, 844, mobile=True)
            tab.evaluate("new Promise(r => setTimeout(r, 250))")
            report["mobile"] = tab.evaluate("__bnAudit.overflow()")
            # The first three screens on a phone.
            tab.screenshot(self.shots / f"{stem}.mobile.png", max_height=3 * 844)
            tab.wait_network_idle(start, quiet=0.15)
            report.update(_summarize_events(tab.events(start), self.netloc))
            return report
        except CDPError as exc:
            self.close()  # start the next page on a new tab
            return {"error": str(exc)}

    def close(self) -> None:
        if getattr(self, "_tab", None) is not None:
            self._tab.close()
            self._tab = None


@pytest.fixture(scope="session")
def audit(book, server, browser) -> BookAudit:
    shots = screenshot_root()
    shutil.rmtree(shots, ignore_errors=True)  # no stale pictures of pages that are gone
    auditor = BookAudit(book, server, browser, shots)
    _SESSION["audit"] = auditor
    yield auditor
    auditor.close()


def internal_link_problems(report: dict, book: Path, netloc: str) -> list[str]:
    """Links on the page to this site whose file or #anchor does not exist."""
    problems = []
    for link in report["links"]:
        parts = urlsplit(link["href"])
        if parts.scheme not in ("http", "https") or parts.netloc != netloc:
            continue
        path = unquote(parts.path).lstrip("/")
        target = book / path
        if not path or path.endswith("/"):
            target = target / "index.html"
        where = f'{link["raw"]!r} ("{link["text"]}")'
        if not target.is_file():
            problems.append(f"{where}: no such file {target.relative_to(book)}")
            continue
        fragment = unquote(parts.fragment)
        if fragment and target.suffix == ".html" and fragment not in parsed(target).ids:
            problems.append(f"{where}: no anchor #{fragment} in {target.relative_to(book)}")
    return problems


_SESSION: dict = {}


def pytest_terminal_summary(terminalreporter):
    """Print the page-weight table and where the screenshots are."""
    root = book_root()
    if not (root / "index.html").is_file():
        return
    tr = terminalreporter
    tr.section("page weight (HTML + images)")
    weights = [page_weight.measure(root, p) for p in page_weight.discover_pages(root)]
    tr.write_line(page_weight.format_table(weights))
    auditor = _SESSION.get("audit")
    if auditor and auditor.seconds:
        tr.section("browser")
        total = sum(auditor.seconds.values())
        slowest = max(auditor.seconds, key=auditor.seconds.get)
        tr.write_line(
            f"{auditor.browser.version}: {len(auditor.seconds)} pages in {total:.1f} s "
            f"(slowest {slowest}: {auditor.seconds[slowest]:.1f} s)"
        )
        tr.write_line(f"screenshots: {auditor.shots}")
