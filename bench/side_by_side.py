"""ninv beside the plain FastAPI + Celery + Redis service of the tutorials, in one run.

Each side runs one API process (uvicorn, on httptools and uvloop: ninv installs them, and
uvicorn's defaults pick them for the plain service too) and one worker process (Celery, solo
pool) on the real Redis, started as a user would start them; ninv also runs on its embedded
default (`ninv serve`: the API and its one worker, no Redis). Figures, for a tiny job (16x16,
inverted exactly: numpy on the plain side, `method=exact` on ninv's):

- throughput: tiny jobs/s end to end (submit, wait, result in hand) with 32 concurrent
  submitters. The plain client polls its task every 10 ms (its result comes with the status);
  ninv's submits with `Prefer: wait`, whose answer carries the finished job with its inverse
  inline: one request a job (GET /result only when the inverse did not come inline).
- latency: p50/p99 time to result of one tiny job at a time, the same way.

The issue asks ninv's throughput to be >= 2x the plain service's. Usage:
python bench/side_by_side.py [--seconds 8] [--latency-jobs 100] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import REDIS_URL, drop_redis_prefix, free_port  # noqa: E402

SUBMITTERS = 32
N = 16
PLAIN_POLL_S = 0.01
#: One job at a time, with and without a change notice to wake the wait: the held request.
PREFER = {"Prefer": "wait=30"}

Job = Callable[[httpx.AsyncClient, list[list[float]]], Awaitable[None]]


# -- the services -------------------------------------------------------------------------------


class Processes:
    """Child processes in their own sessions, each logging to a file; all stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        self.names.append(name)
        self.procs.append(
            subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far (Linux /proc) by the API process and by the rest (the worker,
        whether started beside the API or by it)."""
        api = sum(
            _cpu_s(proc.pid)
            for proc, name in zip(self.procs, self.names, strict=True)
            if "api" in name
        )
        everything = sum(_cpu_s(pid) for pid in _family([proc.pid for proc in self.procs]))
        return {"api": api, "worker": everything - api}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _family(pids: list[int]) -> list[int]:
    """The processes and all their descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    family = set(pids)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in family} - family
        family |= children
        grew = bool(children)
    return sorted(family)


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu_s() -> float:
    """CPU seconds the Redis server has used so far (its INFO cpu section)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NINV_", "PLAIN_"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


@contextmanager
def plain_service(folder: Path) -> Iterator[tuple[str, Processes]]:
    """The tutorial service: uvicorn + one Celery worker (solo pool) on Redis; its base URL."""
    queue = f"plain-bench-{uuid.uuid4().hex[:12]}"
    env = _env(PLAIN_REDIS_URL=REDIS_URL, PLAIN_QUEUE=queue)
    port = free_port()
    procs = Processes(folder)
    try:
        procs.start("plain-api", _uvicorn("bench.plain_service.app:app", port), env)
        procs.start(
            "plain-worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.plain_service.tasks",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env,
        )
        yield f"http://127.0.0.1:{port}", procs
    finally:
        procs.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = [queue, *client.scan_iter(match="celery-task-meta-*", count=1000)]
        client.delete(*keys)
        client.close()


@contextmanager
def ninv_service(folder: Path, *, embedded: bool) -> Iterator[tuple[str, Processes]]:
    """ninv as its README runs it: `ninv serve` and `ninv worker` on Redis, or `ninv serve`
    alone on the embedded default; its base URL."""
    port = free_port()
    prefix = f"ninv-bench-{uuid.uuid4().hex[:12]}"
    settings = (
        {"NINV_DATA_DIR": str(folder / "ninv-data")}
        if embedded
        else {"NINV_REDIS_URL": REDIS_URL, "NINV_REDIS_PREFIX": prefix}
    )
    env = _env(NINV_DEVICE="cpu", **settings)
    serve = [
        str(Path(sys.executable).parent / "ninv"), "serve", "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    procs = Processes(folder)
    try:
        name = "embedded" if embedded else "redis"
        procs.start(f"ninv-{name}-api", serve, env)
        if not embedded:
            procs.start("ninv-worker", [sys.executable, "-m", "worker", "--device", "cpu"], env)
        yield f"http://127.0.0.1:{port}", procs
    finally:
        procs.stop()
        if not embedded:
            drop_redis_prefix(prefix)


# -- one job, each side's way -----------------------------------------------------------------


async def plain_job(http: httpx.AsyncClient, matrix: list[list[float]]) -> None:
    submitted = await http.post("/invert", json={"matrix": matrix})
    task_id = submitted.json()["id"]
    while True:
        status = (await http.get(f"/tasks/{task_id}")).json()
        if status["status"] == "SUCCESS":
            assert status["result"] is not None
            return
        if status["status"] == "FAILURE":
            raise RuntimeError(f"plain task failed: {status}")
        await asyncio.sleep(PLAIN_POLL_S)


async def ninv_job(http: httpx.AsyncClient, matrix: list[list[float]]) -> None:
    body = {"matrix": matrix, "method": "exact"}
    submitted = await http.post("/invert", json=body, headers=PREFER)
    job = submitted.json()
    if job["status"] != "succeeded":  # not finished within the wait: hold again
        while job["status"] in ("queued", "running"):
            job = (await http.get(f"/jobs/{job['id']}", headers=PREFER)).json()
        if job["status"] != "succeeded":
            raise RuntimeError(f"ninv job ended {job['status']}: {job.get('error')}")
    if job.get("inverse") is None:  # not inline (over NINV_INLINE_MAX_ENTRIES): fetch it
        result = await http.get(f"/jobs/{job['id']}/result")
        assert result.status_code == 200


# -- measuring --------------------------------------------------------------------------------


def _matrices(count: int, seed: int = 0) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((N, N)) + N * np.eye(N)).tolist() for _ in range(count)]


async def _ready(url: str, job: Job, timeout: float = 120.0) -> None:
    """Wait for the API, then run jobs until one finishes (the worker is up and warm)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while True:
            try:
                await asyncio.wait_for(job(http, _matrices(1)[0]), 10)
                break
            except (httpx.HTTPError, TimeoutError, KeyError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not come up") from None
                await asyncio.sleep(0.5)
        for matrix in _matrices(5, seed=1):
            await job(http, matrix)


async def throughput(
    clients: list[httpx.AsyncClient], job: Job, seconds: float
) -> tuple[int, float]:
    """Jobs finished end to end by one submitter per client over about `seconds`, and the
    seconds they took."""
    matrices = _matrices(64)
    done = 0
    start = time.monotonic()

    async def submitter(http: httpx.AsyncClient, index: int) -> None:
        nonlocal done
        i = index
        while time.monotonic() < start + seconds:
            await job(http, matrices[i % len(matrices)])
            done += 1
            i += len(clients)

    await asyncio.gather(*(submitter(http, i) for i, http in enumerate(clients)))
    return done, time.monotonic() - start


async def latency(url: str, job: Job, jobs: int) -> dict[str, float]:
    """p50/p99 milliseconds from submit to result in hand, one job at a time."""
    times: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for matrix in _matrices(jobs, seed=2):
            start = time.perf_counter()
            await job(http, matrix)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
    }


def measure(
    service: tuple[str, Processes], job: Job, *, seconds: float, latency_jobs: int
) -> dict[str, Any]:
    """Latency, then throughput and the service's CPU per job (its processes: the API and the
    worker, not Redis): a figure a machine shared with other work disturbs less than jobs/s."""
    url, procs = service

    async def go() -> dict[str, Any]:
        await _ready(url, job)
        figures: dict[str, Any] = await latency(url, job, latency_jobs)
        async with AsyncExitStack() as stack:
            # Each submitter has its own client and connection, as separate services would (one
            # shared pool of 32 connections costs httpcore a scan of the pool per request, which
            # would bill the load generator). They are made before the clock starts, as a
            # service makes its client once: each loads the TLS trust store (~40 ms of CPU
            # here, even for plain HTTP), which inside the round would take both sides' cores.
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60))
                for _ in range(SUBMITTERS)
            ]
            cpu_before, client_before = procs.cpu_s(), time.process_time()
            redis_before = _redis_cpu_s()
            done, elapsed = await throughput(clients, job, seconds)
            cpu_after, client_after = procs.cpu_s(), time.process_time()
            redis_after = _redis_cpu_s()
        figures["jobs_per_s"] = done / elapsed
        # The submitters (this process) and Redis share the machine with the service: their
        # CPU per job says what the service's design costs its callers and its store.
        figures["client_cpu_ms_per_job"] = (client_after - client_before) / done * 1000
        figures["redis_cpu_ms_per_job"] = (redis_after - redis_before) / done * 1000
        for part in ("api", "worker"):
            spent = cpu_after[part] - cpu_before[part]
            figures[f"{part}_cpu_ms_per_job"] = spent / done * 1000
            figures[f"{part}_busy"] = spent / elapsed  # cores' worth: 1.0 is one core saturated
        return figures

    try:
        return asyncio.run(go())
    except Exception as exc:  # say which side failed, and where its logs are
        raise RuntimeError(f"{url} failed ({exc!r}); logs in {procs.folder}") from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="throughput run length")
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of plain then ninv over Redis, each side started afresh; the ratio is "
        "their median (one run on a machine shared with other work swings by a third)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()

    figures: dict[str, Any] = {}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        options = {"seconds": args.seconds, "latency_jobs": args.latency_jobs}
        for _ in range(max(1, args.rounds)):
            with plain_service(folder) as service:
                figures["plain_redis"] = measure(service, plain_job, **options)
            with ninv_service(folder, embedded=False) as service:
                figures["ninv_redis"] = measure(service, ninv_job, **options)
            ratios.append(
                figures["ninv_redis"]["jobs_per_s"] / figures["plain_redis"]["jobs_per_s"]
            )
        with ninv_service(folder, embedded=True) as service:
            figures["ninv_embedded"] = measure(service, ninv_job, **options)
    figures["round_ratios"] = ratios
    figures["throughput_ratio"] = statistics.median(ratios)
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"tiny {N}x{N} jobs, {SUBMITTERS} submitters, one API and one worker process each "
        "(the last round's figures)"
    )
    head = ("jobs/s", "p50 ms", "p99 ms", "API ms/job", "API busy", "wkr ms/job", "wkr busy")
    head += ("client ms", "redis ms")
    print(f"{'':15}" + "".join(f"{h:>11}" for h in head))
    for name in ("plain_redis", "ninv_redis", "ninv_embedded"):
        f = figures[name]
        cells = (
            f["jobs_per_s"], f["p50_ms"], f["p99_ms"], f["api_cpu_ms_per_job"], f["api_busy"],
            f["worker_cpu_ms_per_job"], f["worker_busy"], f["client_cpu_ms_per_job"],
            f["redis_cpu_ms_per_job"],
        )  # fmt: skip
        print(f"{name:15}" + "".join(f"{c:11.2f}" for c in cells))
    rounds = ", ".join(f"{r:.2f}x" for r in ratios)
    print(
        f"ninv / plain throughput on Redis: {figures['throughput_ratio']:.2f}x, the median of "
        f"{len(ratios)} rounds ({rounds}) (target >= 2x)"
    )


if __name__ == "__main__":
    main()
