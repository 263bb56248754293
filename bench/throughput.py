"""Jobs per second for many small queued jobs, with the worker's batching on and off.

One real worker process over the real Redis: N queued 16x16 `adam` jobs (max_iter 2,000 each)
are solved by a worker with batching on, then off, for a few rounds; the figure that matters is
the median ratio. The jobs are queued before the worker starts; its start-up wake drains
them from the store (`claim_next`, up to NINV_BATCH_MAX a claim) with no broker message per
job, so "off" pays only each job's own solve and store calls. Usage:
python bench/throughput.py [--jobs 1000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ninv.schemas import FINISHED
from ninv.store import open_store
from tests.helpers import WorkerProcess, drop_redis_prefix, redis_settings, submit


def run(jobs: int, n: int, max_iter: int, batch_max: int, device: str) -> dict[str, float]:
    settings = redis_settings(batch_max=batch_max, batch_wait_ms=20, progress_every_s=0.5)
    store = open_store(settings)
    rng = np.random.default_rng(0)
    try:
        ids = [
            submit(
                store,
                settings,
                rng.standard_normal((n, n)) + n * np.eye(n),
                max_iter=max_iter,
                seed=i,
            ).id
            for i in range(jobs)
        ]
        with tempfile.TemporaryDirectory() as tmp:
            worker = WorkerProcess(settings, Path(tmp) / "worker.log", device=device)
            try:
                start = time.perf_counter()
                worker.wait_ready(timeout=120)
                ready = time.perf_counter()
                # One cheap count per poll: polling every job would steal CPU from the worker.
                while sum(store.count_by_status()[status] for status in FINISHED) < jobs:
                    time.sleep(0.02)
                elapsed = time.perf_counter() - ready
            finally:
                worker.stop()
        succeeded = sum(store.get(i).status == "succeeded" for i in ids)  # type: ignore[union-attr]
        return {
            "jobs": jobs,
            "succeeded": succeeded,
            "seconds": elapsed,
            "jobs_per_s": jobs / elapsed,
            "startup_s": ready - start,
        }
    finally:
        store.close()
        drop_redis_prefix(settings.redis_prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-iter", type=int, default=2000)
    parser.add_argument("--batch-max", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of on then off; the ratio is their median (one run on a machine shared "
        "with other work swings by a fifth)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()

    ratios: list[float] = []
    for _ in range(max(1, args.rounds)):
        batched = run(args.jobs, args.n, args.max_iter, args.batch_max, args.device)
        alone = run(args.jobs, args.n, args.max_iter, 1, args.device)
        ratios.append(batched["jobs_per_s"] / alone["jobs_per_s"])
    ratio = statistics.median(ratios)
    if args.json:
        figures = {"batching_on": batched, "batching_off": alone, "ratio": ratio}
        print(json.dumps({**figures, "round_ratios": ratios}))
        return
    print(
        f"{args.jobs} queued {args.n}x{args.n} adam jobs, max_iter {args.max_iter}, "
        f"device {args.device}, one worker"
    )
    print(f"{'(last round)':14}{'jobs/s':>10}{'seconds':>10}{'succeeded':>11}")
    for name, row in (("batching on", batched), ("batching off", alone)):
        print(f"{name:14}{row['jobs_per_s']:10.1f}{row['seconds']:10.2f}{row['succeeded']:11.0f}")
    rounds = ", ".join(f"{r:.1f}x" for r in ratios)
    print(f"ratio (on / off): {ratio:.1f}x, the median of {len(ratios)} rounds ({rounds})")


if __name__ == "__main__":
    main()
