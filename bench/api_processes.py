"""Does a second API process pay? ninv over Redis with one `ninv serve` against two, in one run.

Both API processes serve the same store (NINV_REDIS_URL and NINV_REDIS_PREFIX), as two replicas
behind a load balancer would; one worker (`ninv worker`) serves them both. The 32 submitters of
`side_by_side.py` send tiny 16x16 `exact` jobs with `Prefer: wait`, all to the first API, then
half to each; the rounds alternate, and the figure is the median ratio of jobs/s (two APIs
against one). It answers the issue's "if it pays, more than one API process": on a machine whose
cores the API, the worker, Redis and the submitters already fill, a second API process has
nothing to gain. Usage: python bench/api_processes.py [--seconds 8] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.side_by_side import (
    SUBMITTERS,
    Processes,
    _env,
    _ready,
    ninv_job,
    throughput,
)
from tests.helpers import REDIS_URL, drop_redis_prefix, free_port


async def jobs_per_s(urls: list[str], seconds: float) -> float:
    """Tiny jobs finished per second by SUBMITTERS submitters, spread evenly over `urls`."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=urls[i % len(urls)], timeout=60)
            )
            for i in range(SUBMITTERS)
        ]
        done, elapsed = await throughput(clients, ninv_job, seconds)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measurement")
    parser.add_argument("--rounds", type=int, default=3, help="one API then two, this many times")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()

    prefix = f"ninv-bench-{uuid.uuid4().hex[:12]}"
    env = _env(NINV_DEVICE="cpu", NINV_REDIS_URL=REDIS_URL, NINV_REDIS_PREFIX=prefix)
    ninv = str(Path(sys.executable).parent / "ninv")
    one: list[float] = []
    two: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        procs = Processes(Path(tmp))
        try:
            urls = []
            for k in range(2):
                port = free_port()
                serve = [ninv, "serve", "--port", str(port), "--log-level", "warning"]
                procs.start(f"ninv-api-{k}", serve, env)
                urls.append(f"http://127.0.0.1:{port}")
            procs.start("ninv-worker", [sys.executable, "-m", "worker", "--device", "cpu"], env)
            for url in urls:
                asyncio.run(_ready(url, ninv_job))
            for _ in range(max(1, args.rounds)):
                one.append(asyncio.run(jobs_per_s(urls[:1], args.seconds)))
                two.append(asyncio.run(jobs_per_s(urls, args.seconds)))
        except Exception as exc:
            raise RuntimeError(f"failed ({exc!r}); logs in {procs.folder}") from exc
        finally:
            procs.stop()
            drop_redis_prefix(prefix)
    ratios = [b / a for a, b in zip(one, two, strict=True)]
    figures = {
        "one_api_jobs_per_s": one,
        "two_apis_jobs_per_s": two,
        "round_ratios": ratios,
        "ratio": statistics.median(ratios),
    }
    if args.json:
        print(json.dumps(figures))
        return
    for a, b in zip(one, two, strict=True):
        print(f"one API process {a:8.1f} jobs/s   two {b:8.1f} jobs/s")
    rounds = ", ".join(f"{r:.2f}x" for r in ratios)
    print(f"two API processes / one: {figures['ratio']:.2f}x, the median of the rounds {rounds}")


if __name__ == "__main__":
    main()
