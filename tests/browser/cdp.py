"""A small Chrome DevTools Protocol client: headless Chromium driven over one websocket.

Why not selenium or playwright: both need a driver or a browser build of their own that
cannot be downloaded here, and neither reports every network request and console message
as directly as the protocol does. This client speaks the protocol itself, with
``websocket-client`` (already a dependency of jupyter_server), to the distribution's
``chromium`` package.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import websocket

# Flags Chromium needs on these machines (see shared/design/toolchain.md, "Browser checks"):
# no sandbox as root in a container, and no background traffic into a closed network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
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
    "--remote-debugging-port=0",
]

CANDIDATES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"]
MAC_APPS = [
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
]


class CDPError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """Return the path of a Chromium (or Chrome) executable, or None if there is none.

    The environment variable ``CHROMIUM`` wins; then the usual names on ``PATH``; then the
    usual application folders on macOS.
    """
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    if platform.system() == "Darwin":
        for app in MAC_APPS:
            if Path(app).exists():
                return app
    return None


class Browser:
    """One headless Chromium process and a websocket to its DevTools endpoint.

    Events from every attached page are kept in ``self.events`` (a list of dicts with
    ``method``, ``params`` and ``sessionId``) until the caller clears them.
    """

    def __init__(self, executable: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="bn-browser-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        atexit.register(self._kill)  # never leave a browser behind, even if pytest dies
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.poll() is not None:
                raise CDPError(f"Chromium exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.close()
                raise CDPError("Chromium did not open its DevTools port in time")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=timeout, suppress_origin=True
        )
        self._next_id = 0
        self.events: list[dict] = []
        self.version = self.send("Browser.getVersion")["product"]

    def _kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, n: int = 2000) -> str:
        self.log.flush()
        return (Path(self.profile) / "chromium.log").read_bytes()[-n:].decode(errors="replace")

    # -- protocol -----------------------------------------------------------------------
    def _receive(self, timeout: float) -> dict | None:
        self.ws.settimeout(max(timeout, 0.001))
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return msg

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float | None = None,
    ) -> dict:
        """Send one command and return its result, keeping the events that arrive meanwhile."""
        self._next_id += 1
        msg_id = self._next_id
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer within {timeout or self.timeout:.0f} s")
            reply = self._receive(left)
            if reply and reply.get("id") == msg_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._receive(left)

    def wait_event(self, method: str, session: str, timeout: float, since: int = 0) -> dict:
        """Wait for an event named ``method`` from ``session`` (looking from index ``since``)."""
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.events):
                ev = self.events[i]
                i += 1
                if ev["method"] == method and ev.get("sessionId") == session:
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no {method} within {timeout:.0f} s")
            self._receive(min(left, 0.5))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                try:
                    self.send("Browser.close", timeout=5)
                except Exception:  # the browser may already be gone
                    pass
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- pages --------------------------------------------------------------------------
    def new_page(self, width: int = 1280, height: int = 900, isolated: bool = True) -> Page:
        """Open a tab; ``isolated``: in a fresh browser context (no cache, cookies, storage)."""
        context = None
        params = {"url": "about:blank"}
        if isolated:
            context = self.send("Target.createBrowserContext", {"disposeOnDetach": True})[
                "browserContextId"
            ]
            params["browserContextId"] = context
        target = self.send("Target.createTarget", params)["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, target, session, context)
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.send(f"{domain}.enable")
        page.send("Network.setCacheDisabled", {"cacheDisabled": False})
        page.set_viewport(width, height)
        return page


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, browser: Browser, target: str, session: str, context: str | None) -> None:
        self.browser = browser
        self.target = target
        self.session = session
        self.context = context

    def send(self, method: str, params: dict | None = None, timeout: float | None = None):
        return self.browser.send(method, params, self.session, timeout)

    def events(self, since: int = 0) -> list[dict]:
        return [e for e in self.browser.events[since:] if e.get("sessionId") == self.session]

    def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    def forget_origin(self, origin: str) -> None:
        """Clear the origin's storage (not the HTTP cache), so the next load is a first visit."""
        self.send(
            "Storage.clearDataForOrigin",
            {"origin": origin, "storageTypes": "cookies,local_storage,session_storage,indexeddb"},
        )

    def clear_events(self) -> None:
        """Forget this tab's events collected so far."""
        self.browser.events = [e for e in self.browser.events if e.get("sessionId") != self.session]

    def navigate(self, url: str, timeout: float = 30.0) -> int:
        """Load ``url`` and wait for its load event; return the event index it started at."""
        start = len(self.browser.events)
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session, timeout, since=start)
        return start

    def evaluate(self, expression: str, timeout: float = 30.0):
        """Evaluate JavaScript (awaiting a returned promise) and return its JSON value."""
        result = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "timeout": timeout * 1000,
            },
            timeout=timeout + 5,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def wait_network_idle(self, since: int, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no request started after event ``since`` is pending for ``quiet`` s."""
        deadline = time.monotonic() + timeout
        while True:
            pending = set()
            for ev in self.events(since):
                rid = ev["params"].get("requestId")
                if ev["method"] == "Network.requestWillBeSent":
                    pending.add(rid)
                elif ev["method"] in ("Network.loadingFinished", "Network.loadingFailed"):
                    pending.discard(rid)
            n = len(self.browser.events)
            self.browser.pump(quiet)
            if not pending and len(self.browser.events) == n:
                return
            if time.monotonic() > deadline:
                return

    def screenshot(
        self, path: Path, max_height: int | None = None, full: bool = True, scale: float = 1.0
    ) -> None:
        """Save a PNG of the page (the whole page up to ``max_height`` px, or the viewport).

        ``scale`` below 1 makes a smaller picture, quicker to take and to look through.
        """
        params: dict = {"format": "png", "optimizeForSpeed": True}
        if full:
            size = self.evaluate(
                "({w: document.documentElement.clientWidth,"
                " h: document.documentElement.scrollHeight})"
            )
            height = min(size["h"], max_height) if max_height else size["h"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["w"], "height": height, "scale": scale},
            )
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        steps = [("Target.closeTarget", {"targetId": self.target})]
        if self.context:
            steps.append(("Target.disposeBrowserContext", {"browserContextId": self.context}))
        for method, params in steps:
            try:
                self.browser.send(method, params, timeout=10)
            except CDPError:
                pass
        self.clear_events()  # no longer needed, and the list would only grow
