"""A real headless browser for the tests: Debian's chromium, driven over the DevTools protocol with
aiohttp's websocket client (no WebDriver, no extra Python package).

Chromium missing is a failure, never a skip: scripts/setup-system installs it, as CI does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

START_TIMEOUT_S = 30.0
COUNTDOWN = re.compile(r"^(OVERDUE by )?(\d+):(\d\d):(\d\d)( left)?$")


def countdown_seconds(text: str) -> int:
    """``1:59:58 left`` -> 7198, ``OVERDUE by 0:00:12`` -> -12 (the board's countdown text)."""
    found = COUNTDOWN.match(text.strip())
    assert found, f"not a countdown: {text!r}"
    seconds = int(found[2]) * 3600 + int(found[3]) * 60 + int(found[4])
    return -seconds if found[1] else seconds


class Browser:
    """One headless chromium with one page; each call runs the protocol on this object's own event loop."""

    def __init__(self, work: Path) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("chromium is not installed: the duty board is tested in a real browser (scripts/setup-system)")
        self.profile = work / "chromium-profile"
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log = (work / "chromium.log").open("w")
        argv = [
            binary,
            "--headless",
            "--disable-gpu",
            "--disable-dev-shm-usage",  # a container's small /dev/shm must not crash the renderer
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # chromium refuses to run as root with its sandbox
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.loop = asyncio.new_event_loop()
        self.next_id = 0
        self.errors: list[str] = []  # exceptions and console errors the page reported
        try:
            self.loop.run_until_complete(self._connect(self._port()))
            self.call("Runtime.enable")
            self.call("Log.enable")
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _port(self) -> int:
        """Chromium writes the port it chose to DevToolsActivePort in its profile."""
        deadline = time.monotonic() + START_TIMEOUT_S
        active = self.profile / "DevToolsActivePort"
        while True:
            lines = active.read_text().splitlines() if active.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = Path(self.log.name).read_text()[-2000:]
                pytest.fail(f"chromium did not start its DevTools endpoint: {tail}")
            time.sleep(0.1)

    async def _connect(self, port: int) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        async with self.session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self.ws.receive(timeout=60)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"DevTools closed the connection: {message.type}")
            data = json.loads(message.data)
            if data.get("id") == ident:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            self._event(data)

    def _event(self, data: dict[str, Any]) -> None:
        params = data.get("params", {})
        if data.get("method") == "Runtime.exceptionThrown":
            self.errors.append(str(params.get("exceptionDetails", {}).get("exception", {}).get("description", params)))
        elif data.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(str(params["entry"].get("text", "")))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, params))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy (a navigation in between is retried)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except RuntimeError as exc:  # the context was destroyed by a navigation: ask again
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"{expression} never held within {timeout} s (last: {last!r})")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(f"document.readyState === 'complete' && location.href.startsWith({json.dumps(url)})")

    def close(self) -> None:
        async def shut() -> None:
            if getattr(self, "ws", None) is not None:
                await self.ws.close()
            if getattr(self, "session", None) is not None:
                await self.session.close()

        try:
            self.loop.run_until_complete(shut())
        finally:
            self.loop.close()
            self.process.kill()  # a throwaway browser on a throwaway profile: nothing to save
            self.process.wait(timeout=30)
            self.log.close()


def sign_in_and_read_countdown(browser: Browser, base: str, token: str, incident: str) -> tuple[int, int]:
    """Open the board (redirected to its sign-in), sign in with ``token``, and read the incident's first
    countdown twice, three seconds apart, from the page as the browser shows it."""
    browser.open(f"{base}/board")
    browser.wait_for("location.pathname === '/board/signin' && !!document.querySelector('input[name=token]')")
    browser.evaluate(
        f"document.querySelector('input[name=token]').value = {json.dumps(token)};"
        "document.querySelector('form').submit(); true"
    )
    selector = json.dumps(f'[data-incident="{incident}"] [data-due]')
    browser.wait_for(f"location.pathname === '/board' && !!document.querySelector({selector})")
    first = countdown_seconds(browser.evaluate(f"document.querySelector({selector}).textContent"))
    time.sleep(3)
    second = countdown_seconds(browser.evaluate(f"document.querySelector({selector}).textContent"))
    return first, second
