"""/docs in a real headless browser (Debian's chromium) with no internet.

`make test` installs chromium (scripts/ensure-chromium). Name resolution is switched off for
every host but 127.0.0.1, so a page that needs a CDN renders nothing; the browser's network log
shows every request the page made, and each must have gone to the server under test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import ServerProcess, redis_settings, settings_env

pytestmark = pytest.mark.e2e

#: The launch flags: headless, and none of the browser's own background traffic.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No internet: any host but the server's resolves to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    # Virtual time runs until the page is idle (its scripts loaded, the schema fetched).
    "--virtual-time-budget=20000",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:  # `make test` installs it; a bare `pytest` run may not have
        pytest.fail("chromium is not installed: run scripts/ensure-chromium (make test does)")
    return path


def browse(url: str, tmp: Path, action: list[str], name: str) -> subprocess.CompletedProcess[str]:
    """Open `url` in a fresh profile with one action (--dump-dom, --screenshot=...)."""
    command = [
        chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp / f'profile-{name}'}",
        f"--log-net-log={tmp / f'{name}.netlog.json'}",
        *action,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def page_requests(netlog: Path, origin: str) -> list[str]:
    """The URLs the page at `origin` requested: the page itself and what its content asked for,
    not the browser's own traffic (updates, sign-in, autofill)."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] != start_job:
            continue
        if params.get("initiator") == origin or params.get("request_type") == "main frame":
            urls.append(params["url"])
    return urls


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    # Redis mode: the API alone, no worker needed to serve the docs.
    return start_server(settings_env(redis_settings()))


def test_docs_render_with_no_request_leaving_the_machine(
    server: ServerProcess, tmp_path: Path
) -> None:
    url = server.url + "/docs"
    dom = browse(url, tmp_path, ["--dump-dom"], "docs").stdout
    operations = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert {"/invert", "/jobs/{job_id}", "/jobs/{job_id}/result", "/workers"} <= operations, dom
    assert "Submit a matrix to invert" in dom

    requested = page_requests(tmp_path / "docs.netlog.json", server.url)
    assert {urlsplit(u).hostname for u in requested} == {"127.0.0.1"}, requested
    assert {
        url,
        server.url + "/openapi.json",
        server.url + "/docs-static/swagger-ui-bundle.js",
    } <= set(requested)

    shot = tmp_path / "docs.png"
    browse(url, tmp_path, ["--window-size=1280,1600", f"--screenshot={shot}"], "docs-shot")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000


def test_redoc_is_not_served(server: ServerProcess) -> None:
    # ReDoc's page loads its logo from a CDN: /docs is the one documentation page.
    assert httpx.get(server.url + "/redoc").status_code == 404
