"""The README's commands work as written: its examples, its settings table, `make run`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ninv.settings import Settings
from tests.helpers import ROOT, ServerProcess, free_port, settings_env, wait_for

pytestmark = pytest.mark.e2e

README = (ROOT / "README.md").read_text()
README_URL = "http://127.0.0.1:8000"


def readme_blocks(language: str) -> list[str]:
    """The fenced blocks of this language that follow a `<!-- readme-test -->` marker."""
    pattern = rf"<!-- readme-test -->\s*```{language}\n(.*?)```"
    return re.findall(pattern, README, flags=re.DOTALL)


def test_the_readme_examples_run_against_a_live_service(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    env = settings_env(Settings(data_dir=tmp_path / "data", progress_every_s=0.1))
    server = start_server(env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["NINV_URL"] = server.url
    shell = "\n".join(readme_blocks("sh")).replace(README_URL, server.url)
    python = "\n".join(readme_blocks("python")).replace(README_URL, server.url)
    assert shell.count("ninv-client") >= 5 and "curl" in shell and "Client(" in python

    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", shell],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, f"{ran.stdout[-2000:]}\n{ran.stderr[-2000:]}"
    assert (tmp_path / "inverse.npy").stat().st_size > 0
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ran = subprocess.run(
        [sys.executable, "-c", python],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]


def test_the_configuration_table_lists_every_setting_with_its_default() -> None:
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else str(field.default) or "empty"
        row = f"| `NINV_{name.upper()}` | "
        assert row in README, f"README's configuration table lacks NINV_{name.upper()}"
        assert f"{row}`{default}` |" in README or f"{row}{default} |" in README, (
            f"README gives the wrong default for NINV_{name.upper()} (the code says {default})"
        )


def test_make_run_serves_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(Settings(data_dir=tmp_path / "data", port=port))
    make = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def ready() -> bool:
            assert make.poll() is None, "make run exited early"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=180, what="make run to serve")
        job = httpx.post(
            f"http://127.0.0.1:{port}/invert",
            json={"matrix": [[2.0, 0.0], [0.0, 4.0]], "method": "exact"},
        )
        assert job.status_code == 202, job.text
    finally:
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C does to the terminal's process group
        make.wait(60)

    leftovers = subprocess.run(
        ["ps", "-o", "pid=,args=", "-g", str(make.pid)], capture_output=True, text=True
    ).stdout.strip()
    assert leftovers == "", f"processes left running after Ctrl-C:\n{leftovers}"
