"""`ninv`: start the API (`ninv serve`) or a worker (`ninv worker`).

The CLI parses arguments and starts processes; the service itself lives in `service.app`. The
API process never imports torch: workers run as `python -m worker`.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click

from ninv.settings import Settings, get_settings

__all__ = ["is_loopback", "main"]

WORKER_STOP_TIMEOUT_S = 15.0


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ninv: matrix inversion by gradient descent, as a service.

    Configuration comes from NINV_* environment variables (see the README); with no
    NINV_REDIS_URL, everything runs locally: a SQLite job store and a filesystem queue under
    NINV_DATA_DIR.
    """


@main.command()
@click.option("--host", default=None, help="Address to bind [default: NINV_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port to bind [default: NINV_PORT or 8000].")
@click.option(
    "--worker/--no-worker",
    "--workers-embedded",
    "embedded_worker",
    default=True,
    help="On the embedded default (no NINV_REDIS_URL), also start one worker process "
    "[default: on]. With Redis, start workers with `ninv worker`.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Log level of the API process.",
)
def serve(host: str | None, port: int | None, embedded_worker: bool, log_level: str) -> None:
    """Start the HTTP API (and, on the embedded default, one worker).

    Without NINV_API_KEYS the API has no authentication, so it binds only loopback addresses.
    """
    base = get_settings()
    settings = base.model_copy(update={"host": host or base.host, "port": port or base.port})
    if not settings.api_key_list and not is_loopback(settings.host):
        click.echo(
            f"ninv serve: refusing to bind {settings.host} without API keys; set NINV_API_KEYS "
            "or bind a loopback address such as 127.0.0.1",
            err=True,
        )
        sys.exit(2)
    # uvicorn re-raises the signal that stopped it once it has shut down; as exceptions, SIGINT
    # and SIGTERM let the `finally` below stop the worker too.
    signal.signal(signal.SIGTERM, _raise_exit)
    worker = _start_worker(settings) if settings.embedded and embedded_worker else None
    try:
        _run_api(settings, log_level)
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None:
            _stop(worker)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NINV_DATA_DIR": str(settings.data_dir)}
    click.echo(f"ninv: starting a worker (state in {settings.data_dir.resolve()})", err=True)
    return subprocess.Popen([sys.executable, "-m", "worker"], env=env)


def _run_api(settings: Settings, log_level: str) -> None:
    import gc
    import logging
    import socket

    import uvicorn

    from service.app import create_app
    from service.server import uvicorn_config

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown}:{settings.port}"

    class Server(uvicorn.Server):
        """Says where it serves once the port is bound (when binding fails, uvicorn exits)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                click.echo(f"ninv: serving on {url} (docs: {url}/docs)", err=True)
                click.echo(_client_hint(url), err=True)
                # Start-up's objects (FastAPI, pydantic's schemas, redis-py) live as long as the
                # process: out of the collector's reach, a collection scans only what requests
                # allocate.
                gc.freeze()

    Server(uvicorn_config(create_app(settings), settings, log_level=log_level)).run()


def _client_hint(url: str) -> str:
    """How to reach this server from another shell, with the commands of this installation."""
    scripts = Path(sys.executable).parent
    client = shutil.which("ninv-client")
    if client is not None and Path(client).parent == scripts:
        return f"ninv: from another shell: ninv-client --url {url} list"
    activate = scripts / "activate"
    if activate.is_file():
        return (
            f"ninv: from another shell, activate this environment first (. {activate}), "
            f"then: ninv-client --url {url} list, or python with `from client import Client`"
        )
    return f"ninv: from another shell: {scripts / 'ninv-client'} --url {url} list"


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Ask the worker to finish (SIGTERM: Celery's warm shutdown), then insist."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@main.command("worker")
@click.option(
    "--device",
    default=None,
    metavar="auto|cpu|cuda:N",
    help="Device to solve on [default: NINV_DEVICE or auto].",
)
def worker_command(device: str | None) -> None:
    """Start a worker process (one per GPU); it replaces this process."""
    chosen = device or get_settings().device
    argv = [sys.executable, "-m", "worker", "--device", chosen]
    os.execv(sys.executable, argv)
