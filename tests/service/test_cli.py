"""`ninv serve` and `ninv worker`: argument handling (the processes themselves: tests/e2e)."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from ninv.settings import get_settings
from service import cli


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NINV_API_KEYS", raising=False)
    get_settings.cache_clear()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_serve_refuses_public_address_without_keys(host: str) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--host", host])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert f"refusing to bind {host} without API keys" in result.output
    assert "NINV_API_KEYS" in result.output


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("host.example", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert cli.is_loopback(host) is loopback


def test_help_texts() -> None:
    runner = CliRunner()
    top = runner.invoke(cli.main, ["--help"])
    assert top.exit_code == 0 and "serve" in top.output and "worker" in top.output
    serve = runner.invoke(cli.main, ["serve", "--help"])
    assert "--no-worker" in serve.output and "loopback" in serve.output
    worker = runner.invoke(cli.main, ["worker", "--help"])
    assert "--device" in worker.output


def test_worker_execs_the_worker_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, argv)))
    result = CliRunner().invoke(cli.main, ["worker", "--device", "cuda:1"])
    assert result.exit_code == 0
    assert calls == [(sys.executable, [sys.executable, "-m", "worker", "--device", "cuda:1"])]


def test_service_never_imports_torch() -> None:
    import subprocess

    code = "import service.app, service.cli, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_client_hint_says_how_to_activate_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # as in a shell where .venv is not active
    hint = cli._client_hint("http://127.0.0.1:8000")
    activate = os.path.join(os.path.dirname(sys.executable), "activate")
    assert f". {activate}" in hint and "ninv-client --url http://127.0.0.1:8000" in hint
