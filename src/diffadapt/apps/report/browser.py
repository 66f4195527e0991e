"""Opening a report page in headless Chromium over the DevTools protocol: check it, screenshot it.

Used by the tests (every image loads, the table is there) and to make the README's screenshot. Needs a
Chromium binary (Debian's ``chromium``) and the small ``websocket-client`` package; the page itself runs
no script: the checks are evaluated by the harness from outside.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--remote-debugging-port=0", "--allow-file-access-from-files",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageReport:
    images: list[dict]
    has_table: bool
    title: str
    text_length: int

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["loaded"]]


class _DevTools:
    def __init__(self, url: str) -> None:
        import websocket  # websocket-client

        # Chromium refuses WebSocket clients that send an Origin it was not told to allow.
        self.socket = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("method") == method:
                return message.get("params", {})
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.socket.close()


CHECK_SCRIPT = """JSON.stringify({
  images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0})),
  has_table: document.querySelector('table#adaptation-table') !== null,
  title: document.title,
  text_length: document.body.innerText.length
})"""


def inspect_page(page: str | Path, screenshot: str | Path | None = None, width: int = 1200) -> PageReport:
    """Load ``page`` from disk in headless Chromium, report on its images and table, optionally screenshot it."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium binary on PATH (Debian: apt-get install chromium)")
    url = Path(page).resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            endpoint = None
            deadline = time.time() + 30
            while time.time() < deadline and endpoint is None:
                line = process.stderr.readline()
                if "DevTools listening on" in line:
                    endpoint = line.strip().split("DevTools listening on ")[1]
                elif not line and process.poll() is not None:
                    break
            if endpoint is None:
                raise RuntimeError("Chromium did not open its DevTools endpoint")
            port = endpoint.split(":")[2].split("/")[0]
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page_target = next(t for t in targets if t.get("type") == "page")
            tools = _DevTools(page_target["webSocketDebuggerUrl"])
            try:
                tools.call("Page.enable")
                tools.call("Page.navigate", url=url)
                tools.wait_event("Page.loadEventFired")
                result = tools.call("Runtime.evaluate", expression=CHECK_SCRIPT, returnByValue=True)
                data = json.loads(result["result"]["value"])
                if screenshot is not None:
                    metrics = tools.call("Page.getLayoutMetrics")
                    height = int(metrics["cssContentSize"]["height"])
                    tools.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
                    shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                    Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            finally:
                tools.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    return PageReport(data["images"], data["has_table"], data["title"], data["text_length"])
