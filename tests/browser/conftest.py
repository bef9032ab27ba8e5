"""Fixtures for the browser suite: the built book served on 127.0.0.1 and headless Chromium.

The suite checks the book as a reader gets it. It needs a built book: ``make test`` builds
one first (``make book-clean``); to check another build, point ``BOOK_HTML`` at its HTML
folder, e.g. ``BOOK_HTML=/tmp/book/_build/html pytest tests/browser``.

Chromium is Debian's (``/usr/bin/chromium``, or ``CHROMIUM=/path``), driven with Playwright
(pytest-playwright's ``playwright`` and ``browser_type_launch_args`` fixtures, the latter with
our ``executable_path`` and flags; ``--headed`` and ``--slowmo`` work): nothing is
downloaded. ``tools/ensure_test_deps.sh`` installs it and the fonts.

Fonts: Chromium never sees the machine's own fonts. It runs under the font sets of
``fontsets.py`` (``FONTCONFIG_FILE``): the whole suite under ``MAIN_FONT_SET``, and the
phone-width check under every set, so its result does not depend on what is installed.

Pages are discovered when the tests are collected, so every page of the book is checked,
whatever pages exist (later chapters, a Korean edition under ``ko/``). Each page is loaded
once at 1280 px and once per font set on a 390 px phone; the tests then look at what was
recorded (console messages, requests, images, math, links, dark theme, layout on a phone).
Screenshots go to ``_build/screenshots/`` (beside the HTML folder), three per page:
``PAGE.png`` (the whole page, 1280 px wide, light theme), ``PAGE.dark.png`` (one screen in
the dark theme, on the first figure) and ``PAGE.mobile.png`` (the first three screens of a
390 px wide phone, main font set).

Without Chromium the suite is skipped with a message, except in CI (``CI=true``), where it
fails: CI must run it. A font set that is not complete fails its tests, naming the package.
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
from playwright.sync_api import Error as PlaywrightError

from .fontsets import FONT_SETS, MAIN_FONT_SET

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
AUDIT_JS = (Path(__file__).parent / "page_audit.js").read_text(encoding="utf-8")
# Full-page screenshots stop here: enough to look through, small enough to stay quick.
SHOT_MAX_HEIGHT = 12000
NO_BOOK = "<no built book>"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Playwright adds --headless, --no-sandbox (as chromium_sandbox is off) and most of the
# quiet-network flags itself; these make sure of the rest (shared/design/toolchain.md,
# "Browser checks"): no background traffic into a closed network.
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
]
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "chromium", "chromium-browser"]


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


def find_chromium() -> str | None:
    """``$CHROMIUM`` if set (None if it does not exist), else Debian's Chromium, or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env) or (env if Path(env).is_file() else None)
    for name in CHROMIUM_CANDIDATES:
        if path := shutil.which(name):
            return path
    return None


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


def split_edition(page: str) -> tuple[str, str]:
    """``(edition folder, page within it)``: ``("ko/", "chapters/x.html")`` for a page of a
    second build inside the first (a Korean edition under ``ko/``), ``("", page)`` otherwise.
    An edition folder is one with its own ``_sources``."""
    parts = page.split("/")
    for i in range(len(parts) - 1, 0, -1):
        prefix = "/".join(parts[:i]) + "/"
        if (book_root() / prefix / "_sources").is_dir():
            return prefix, "/".join(parts[i:])
    return "", page


def source_of(page: str) -> Path | None:
    """The page's source as copied into its build (``[ko/]_sources/...``), or None."""
    edition, rest = split_edition(page)
    stem = rest[: -len(".html")]
    for suffix in (".ipynb", ".md", ".rst"):
        src = book_root() / edition / "_sources" / f"{stem}{suffix}"
        if src.is_file():
            return src
    return None


def notebook_pages() -> list[str]:
    return [p for p in reader_pages() if (s := source_of(p)) and s.suffix == ".ipynb"]


def pytest_generate_tests(metafunc):
    # `book_page`, not `page`: pytest-playwright has a fixture called `page`.
    lists = {
        "book_page": reader_pages,
        "notebook_page": notebook_pages,
        "any_page": all_pages,
        "redirect_page": redirect_pages,
    }
    for name, make in lists.items():
        if name in metafunc.fixturenames:
            pages = make() if (book_root() / "index.html").is_file() else [NO_BOOK]
            metafunc.parametrize(name, pages, ids=[p.removesuffix(".html") for p in pages])
    if "font_set" in metafunc.fixturenames:
        metafunc.parametrize("font_set", list(FONT_SETS), scope="session")


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
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch arguments, with Debian's Chromium and our flags."""
    exe = find_chromium()
    if not exe:
        unavailable(
            "No Chromium found. Install it with `bash tools/ensure_test_deps.sh` "
            "(Debian: apt-get install chromium), or set CHROMIUM=/path/to/chromium"
        )
    return {
        **browser_type_launch_args,
        "executable_path": exe,
        "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_FLAGS],
    }


@pytest.fixture(scope="session")
def font_configs(tmp_path_factory) -> dict[str, Path]:
    """A fonts.conf per font set, in a temporary folder (written, not yet checked)."""
    root = tmp_path_factory.mktemp("fontsets")
    return {name: fs.write_config(root / name) for name, fs in FONT_SETS.items()}


@functools.cache
def _font_set_problems(name: str, conf: Path) -> tuple[str, ...]:
    return tuple(FONT_SETS[name].check(conf))


class Browsers:
    """One Chromium per font set, started on first use, each with its FONTCONFIG_FILE."""

    def __init__(self, browser_type, launch_args: dict, configs: dict[str, Path]) -> None:
        self.browser_type, self.launch_args, self.configs = browser_type, launch_args, configs
        self.running: dict = {}

    def __call__(self, font_set: str):
        if font_set not in self.running:
            if problems := _font_set_problems(font_set, self.configs[font_set]):
                pytest.fail(
                    f"font set {font_set!r} is not available: {'; '.join(problems)}",
                    pytrace=False,
                )
            env = {**os.environ, "FONTCONFIG_FILE": str(self.configs[font_set])}
            try:
                self.running[font_set] = self.browser_type.launch(**self.launch_args, env=env)
            except PlaywrightError as exc:
                unavailable(
                    f"Chromium ({self.launch_args['executable_path']}) did not start: {exc}"
                )
        return self.running[font_set]

    def close(self) -> None:
        for b in self.running.values():
            b.close()
        self.running.clear()


@pytest.fixture(scope="session")
def browsers(playwright, browser_type_launch_args, font_configs):
    # playwright.chromium, not pytest-playwright's `browser_type`: that one would add a
    # "chromium" parameter (its --browser option) to the id of every test.
    running = Browsers(playwright.chromium, browser_type_launch_args, font_configs)
    yield running
    running.close()


@pytest.fixture(scope="session")
def chromium(browsers):
    """Chromium under the main font set (pytest-playwright's ``browser`` is not used)."""
    return browsers(MAIN_FONT_SET)


def _is_foreign(url: str, netloc: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != netloc


class Recorder:
    """What one tab reports while a page loads: console errors, requests, failures."""

    def __init__(self, tab, netloc: str) -> None:
        self.netloc = netloc
        self.reset()
        tab.on("console", self._console)
        tab.on(
            "pageerror", lambda exc: self.console.append(f"uncaught exception: {exc.stack or exc}")
        )
        tab.on("request", self._request)
        tab.on("requestfinished", lambda r: self.pending.discard(r))
        tab.on("requestfailed", self._failed)
        tab.on("response", self._response)

    def reset(self) -> None:
        self.console, self.failed, self.foreign, self.requests = [], [], [], []
        self.pending: set = set()
        self.count = 0

    def _console(self, msg) -> None:
        # Playwright reports the browser's own log entries (e.g. "Failed to load resource")
        # as console messages of type "error" too.
        if msg.type in ("error", "assert"):
            where = msg.location.get("url", "") if msg.location else ""
            self.console.append(f"console.{msg.type}: {msg.text} {where}".strip())

    def _request(self, request) -> None:
        self.count += 1
        self.pending.add(request)
        self.requests.append(request.url)
        if _is_foreign(request.url, self.netloc):
            self.foreign.append(request.url)

    def _failed(self, request) -> None:
        self.pending.discard(request)
        error = request.failure or "?"
        if error != "net::ERR_ABORTED":  # cancelled by the page itself (the old `canceled`)
            self.failed.append(f"{error}: {request.url}")

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"HTTP {response.status}: {response.url}")

    def wait_network_idle(self, tab, quiet: float = 0.15, timeout: float = 10.0) -> None:
        """Wait until no request is pending and none started for ``quiet`` s (or timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.count
            tab.wait_for_timeout(quiet * 1000)  # lets Playwright deliver the events
            if not self.pending and self.count == n:
                return

    def summary(self) -> dict:
        return {
            "console": list(self.console),
            "failed": list(self.failed),
            "foreign": list(self.foreign),
            "requests": list(self.requests),
        }


def _ready(tab, seconds: int = 40):
    """Wait for fonts, MathJax and images (page_audit.js), at most ``seconds``."""
    tab.evaluate(f"() => {{ {AUDIT_JS} }}")
    return tab.evaluate(
        "s => Promise.race([__bnAudit.ready(),"
        " new Promise(r => setTimeout(() => r(`not ready after ${s} s`), s * 1000))])",
        seconds,
    )


def _screenshot(tab, path: Path, max_height: int | None = None, full: bool = True) -> None:
    """A PNG of the page: from the top down to ``max_height`` px, or the current screen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not full:
        tab.screenshot(path=path)
        return
    w, h = tab.evaluate(
        "[document.documentElement.clientWidth, document.documentElement.scrollHeight]"
    )
    height = min(h, max_height) if max_height else h
    tab.screenshot(path=path, full_page=True, clip={"x": 0, "y": 0, "width": w, "height": height})


class Tab:
    """One tab kept for all pages of an audit: the HTTP cache stays warm (as for a reader
    going from page to page); the origin's storage is cleared before each page, so each
    is a first visit."""

    def __init__(self, browser, base: str, **context_args) -> None:
        self.base = base
        self.context = browser.new_context(color_scheme="light", **context_args)
        self.page = self.context.new_page()
        self.cdp = self.context.new_cdp_session(self.page)
        self.recorder = Recorder(self.page, urlsplit(base).netloc)

    def load(self, page: str) -> None:
        tab = self.page
        tab.goto("about:blank")
        self.cdp.send(
            "Storage.clearDataForOrigin",
            {
                "origin": self.base,
                "storageTypes": "cookies,local_storage,session_storage,indexeddb",
            },
        )
        self.recorder.reset()
        tab.goto(f"{self.base}/{page}", wait_until="load", timeout=30_000)

    def fonts_used(self, selector: str, limit: int = 400) -> dict[str, int]:
        """The system fonts Chromium drew the text of ``selector`` with: family -> glyphs."""
        self.cdp.send("DOM.enable")
        self.cdp.send("CSS.enable")
        root = self.cdp.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        ids = self.cdp.send("DOM.querySelectorAll", {"nodeId": root, "selector": selector})
        used: dict[str, int] = {}
        for node in ids["nodeIds"][:limit]:
            for font in self.cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]:
                if not font.get("isCustomFont"):  # web fonts (MathJax's) are not the machine's
                    used[font["familyName"]] = used.get(font["familyName"], 0) + font["glyphCount"]
        self.cdp.send("CSS.disable")
        self.cdp.send("DOM.disable")
        return used

    def close(self) -> None:
        try:
            self.context.close()
        except PlaywrightError:
            pass


class Audit:
    """Loads each page once and keeps what the tests look at (cached per page)."""

    def __init__(self) -> None:
        self.cache: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}
        self._tab: Tab | None = None

    def __call__(self, page: str) -> dict:
        if page == NO_BOOK:
            unavailable("No built book: run `make book-clean` first (or set BOOK_HTML)")
        if page not in self.cache:
            t0 = time.perf_counter()
            try:
                self.cache[page] = self._audit(page)
            except PlaywrightError as exc:
                self.close()  # start the next page on a new tab
                self.cache[page] = {"error": str(exc)}
            self.seconds[page] = time.perf_counter() - t0
        report = self.cache[page]
        if "error" in report:
            pytest.fail(f"{page} could not be checked: {report['error']}", pytrace=False)
        return report

    def close(self) -> None:
        if self._tab is not None:
            self._tab.close()
            self._tab = None


class BookAudit(Audit):
    """Every check of a page at 1280 px, light and dark theme, main font set."""

    def __init__(self, book: Path, base: str, browser, shots: Path) -> None:
        super().__init__()
        self.book, self.base, self.browser, self.shots = book, base, browser, shots

    def _audit(self, page: str) -> dict:
        stem = page.removesuffix(".html")
        if self._tab is None:
            self._tab = Tab(self.browser, self.base, viewport=DESKTOP)
        tab, rec = self._tab.page, self._tab.recorder
        self._tab.load(page)
        ready = _ready(tab)
        rec.wait_network_idle(tab)
        report = tab.evaluate("__bnAudit.collect()")
        report["ready"] = ready
        _screenshot(tab, self.shots / f"{stem}.png", max_height=SHOT_MAX_HEIGHT)
        report["dark"] = tab.evaluate("__bnAudit.darkFigures()")
        # One screen in the dark theme, on the first figure if there is one (a whole-page
        # capture of a long chapter costs seconds; the pixel check above covers them all).
        tab.evaluate(
            "document.querySelector('article.bd-article figure img, article.bd-article img')"
            "?.scrollIntoView({block: 'center'})"
        )
        _screenshot(tab, self.shots / f"{stem}.dark.png", full=False)
        tab.evaluate("__bnAudit.lightTheme()")
        rec.wait_network_idle(tab)
        report.update(rec.summary())
        return report


class PhoneAudit(Audit):
    """A page on a 390 px phone under one font set: what sticks out, and the fonts drawn."""

    # Text whose fonts are checked: prose, headings, code, tables, captions, links (every
    # page has some: the navigation), anywhere on the page.
    TEXT = "p, li, a, h1, h2, h3, code, td, th, figcaption, dt, dd"

    def __init__(self, base: str, browser, font_set: str, shots: Path | None) -> None:
        super().__init__()
        self.base, self.browser, self.font_set, self.shots = base, browser, font_set, shots

    def _audit(self, page: str) -> dict:
        if self._tab is None:
            self._tab = Tab(
                self.browser,
                self.base,
                viewport=PHONE,
                is_mobile=True,
                has_touch=True,
                device_scale_factor=1,
            )
        tab = self._tab.page
        self._tab.load(page)
        ready = _ready(tab)
        self._tab.recorder.wait_network_idle(tab)
        report = tab.evaluate("__bnAudit.overflow()")
        report["ready"] = ready
        report["fonts"] = self._tab.fonts_used(self.TEXT)
        if self.shots:  # the first three screens of the phone
            stem = page.removesuffix(".html")
            _screenshot(tab, self.shots / f"{stem}.mobile.png", max_height=3 * PHONE["height"])
        return report


_SESSION: dict = {}


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = screenshot_root()
    shutil.rmtree(folder, ignore_errors=True)  # no stale pictures of pages that are gone
    return folder


@pytest.fixture(scope="session")
def audit(book, server, chromium, shots) -> BookAudit:
    auditor = BookAudit(book, server, chromium, shots)
    _SESSION["audit"] = auditor
    yield auditor
    auditor.close()


@pytest.fixture(scope="session")
def phone_audits(book, server, browsers, shots):
    """font set name -> its PhoneAudit (created, and its Chromium started, on first use)."""
    audits: dict[str, PhoneAudit] = {}

    def get(font_set: str) -> PhoneAudit:
        if font_set not in audits:
            browser = browsers(font_set)
            keep = shots if font_set == MAIN_FONT_SET else None
            audits[font_set] = PhoneAudit(server, browser, font_set, keep)
        return audits[font_set]

    _SESSION["phone"] = audits
    yield get
    for a in audits.values():
        a.close()


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


def pytest_terminal_summary(terminalreporter):
    """Print the page-weight table, the browser and fonts used, and where the screenshots are."""
    root = book_root()
    if not (root / "index.html").is_file():
        return
    tr = terminalreporter
    tr.section("page weight (HTML + images)")
    weights = [page_weight.measure(root, p) for p in page_weight.discover_pages(root)]
    tr.write_line(page_weight.format_table(weights))
    auditor = _SESSION.get("audit")
    phones = _SESSION.get("phone", {})
    if (auditor and auditor.seconds) or phones:
        tr.section("browser")
        for name, a in [
            ("desktop", auditor),
            *((f"phone, fonts {k}", v) for k, v in phones.items()),
        ]:
            if a and a.seconds:
                total = sum(a.seconds.values())
                slowest = max(a.seconds, key=a.seconds.get)
                tr.write_line(
                    f"{name}: Chromium {a.browser.version}, {len(a.seconds)} pages in {total:.1f} s "
                    f"(slowest {slowest}: {a.seconds[slowest]:.1f} s)"
                )
        for name, a in phones.items():
            fonts: dict[str, int] = {}
            for report in a.cache.values():
                for family, glyphs in report.get("fonts", {}).items():
                    fonts[family] = fonts.get(family, 0) + glyphs
            tr.write_line(f"fonts drawn under set {name!r} (glyphs): {fonts}")
        if auditor:
            tr.write_line(f"screenshots: {auditor.shots}")
