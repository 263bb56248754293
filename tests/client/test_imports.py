"""The client installs and runs without torch, FastAPI, Celery or the rest of the server side."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER_SIDE = (
    "torch",
    "fastapi",
    "celery",
    "starlette",
    "redis",
    "kombu",
    "pydantic_settings",
    "uvicorn",
    "service",
    "worker",
    "ninv.settings",
    "ninv.store",
    "ninv.queue",
    "ninv.jobs",
)

BLOCKER = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = {blocked!r}

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"{{name}} is blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def run_python(code: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=blocked) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_client_imports_without_the_server_side() -> None:
    done = run_python(
        """
        import sys
        import client, client.cli, client.formats, client.plot
        from client.cli import main

        try:
            main(["--help"])
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        for command in ("submit", "watch", "plot"):
            try:
                main([command, "--help"])
            except SystemExit as exit:
                assert exit.code == 0, exit.code
        with client.Client("http://127.0.0.1:1", retries=0) as ninv:
            try:
                ninv.get("x")
            except client.ServerUnavailable as error:
                print("unreachable:", error)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"ninv", "client"})
        print("loaded:", loaded)
        """,
        SERVER_SIDE,
    )
    assert done.returncode == 0, done.stderr
    assert "Exit codes:" in done.stdout
    assert "unreachable: cannot reach ninv" in done.stdout
    loaded = done.stdout.split("loaded:")[1]
    assert "'ninv.schemas'" in loaded
    for name in ("ninv.settings", "ninv.store", "ninv.jobs"):
        assert f"'{name}'" not in loaded


def test_the_blocker_blocks() -> None:
    done = run_python("import fastapi", ("fastapi",))
    assert done.returncode != 0 and "fastapi is blocked" in done.stderr


def test_plot_without_matplotlib_says_how_to_install(tmp_path: Path) -> None:
    done = run_python(
        f"""
        from client.cli import main
        main(["--url", "http://127.0.0.1:1", "plot", "job-1", "-o", {str(tmp_path / "x.png")!r}])
        """,
        (*SERVER_SIDE, "matplotlib"),
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "ninv-client: error: plotting needs matplotlib, which is not installed: "
        "pip install 'ninv[plot]'"
    )
    assert not (tmp_path / "x.png").exists()
