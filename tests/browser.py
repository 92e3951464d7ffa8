"""Headless Chromium for page tests, driven over its DevTools protocol (websocket-client; no Playwright).

``chromium_path()`` finds Debian's ``chromium``, installing it with apt-get when the tests run as root (as CI
does) and skipping with the reason otherwise. ``Browser`` loads a page, evaluates JavaScript in it, collects
console errors and uncaught exceptions, and takes screenshots; the browser never outlives the ``with`` block.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest


def chromium_path() -> str:
    """Debian's chromium; as root, installed on first use (apt-get), else the test is skipped with why."""
    found = shutil.which("chromium")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=1200).returncode != 0:  # a stale list
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, timeout=1200)
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("headless Chromium is not installed and cannot be installed here (Debian: `apt-get install "
                    "chromium` as root; the test installs it itself when it runs as root)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e '.[dev]')")
    return found


class Browser:
    """One headless Chromium with one page, over the DevTools protocol."""

    def __init__(self, executable: str, width: int = 1366, height: int = 900):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="samcache-chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.width, self.height, self.errors, self._id = width, height, [], 0
        try:
            port = self._port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
                page = next(t for t in json.load(answer) if t["type"] == "page")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        for _ in range(600):  # up to a minute on a busy machine
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before it listened")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port within a minute")

    def call(self, method: str, wait_for: str | None = None, **params) -> dict:
        """Send one command; return its result (after the event ``wait_for``, when given)."""
        self._id += 1
        mine, result, seen = self._id, None, wait_for is None
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while result is None or not seen:
            message = json.loads(self.ws.recv())
            if message.get("id") == mine:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result = message.get("result", {})
            elif message.get("method") == wait_for:
                seen = True
            else:
                self._note(message)
        return result

    def _note(self, message: dict) -> None:
        """Console errors, uncaught exceptions and failed loads, as the page's own words."""
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append("exception: " + details.get("exception", {}).get("description", details.get("text")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")

    def open(self, path: Path) -> None:
        self.call("Page.navigate", wait_for="Page.loadEventFired", url=Path(path).resolve().as_uri())

    def eval(self, expression: str):
        """A JavaScript expression's value (JSON-able), or its exception raised here."""
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression[:80]}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True, height: int | None = None) -> None:
        """A PNG of the page: the whole of it, or its first ``height`` pixels."""
        tall = self.eval("document.documentElement.scrollHeight") if full_page else (height or self.height)
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=int(tall), deviceScaleFactor=1,
                  mobile=False)
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        self.call("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:  # its renderer and helper processes: the group it leads (start_new_session)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
