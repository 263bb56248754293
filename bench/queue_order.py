"""How long one key's single job waits behind another key's 1,000 queued jobs.

One run, one real worker process over the real Redis, side by side: key A queues N small
`exact` jobs (they never batch, so each is a turn of its own), then one more job arrives and
its time to result is measured. First that job comes from key A too: the order a FIFO queue
gives every job (what ninv gave before round-robin). Then it comes from key B: with owners
taking turns (`JobStore.claim_next`) it runs at the next turn. Usage:
python bench/queue_order.py [--jobs 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ninv.schemas import FINISHED
from ninv.store import open_store
from tests.helpers import WorkerProcess, drop_redis_prefix, redis_settings, submit


def run(jobs: int, n: int, late_owner: str) -> dict[str, float]:
    """Seconds from the late job's submission to its result, and how many of key A's jobs were
    still unfinished when it finished."""
    settings = redis_settings(progress_every_s=0.5)
    store = open_store(settings)
    rng = np.random.default_rng(0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            worker = WorkerProcess(settings, Path(tmp) / "worker.log")
            try:
                worker.wait_ready(timeout=120)
                early = [
                    submit(store, settings, rng.standard_normal((n, n)) + n * np.eye(n),
                           owner="key-a", method="exact").id
                    for _ in range(jobs)
                ]  # fmt: skip
                start = time.perf_counter()
                late = submit(store, settings, np.eye(n) * 2, owner=late_owner, method="exact").id
                while (job := store.get(late)) is None or job.status not in FINISHED:
                    time.sleep(0.005)
                waited = time.perf_counter() - start
                behind = sum(
                    (j := store.get(i)) is not None and j.status not in FINISHED for i in early
                )
                while sum(store.count_by_status()[s] for s in FINISHED) < jobs + 1:
                    time.sleep(0.05)
            finally:
                worker.stop()
        return {
            "seconds": waited,
            "a_jobs_still_waiting": behind,
            "succeeded": job.status == "succeeded",
        }
    finally:
        store.close()
        drop_redis_prefix(settings.redis_prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()

    fifo = run(args.jobs, args.n, "key-a")
    fair = run(args.jobs, args.n, "key-b")
    ratio = fifo["seconds"] / fair["seconds"]
    if args.json:
        print(json.dumps({"fifo": fifo, "round_robin": fair, "ratio": ratio}))
        return
    print(
        f"one {args.n}x{args.n} exact job submitted behind {args.jobs} queued jobs of key A, "
        "one worker"
    )
    print(f"{'':32}{'time to result (s)':>20}{'A jobs left behind':>20}")
    for name, row in (("from key A (FIFO, as before)", fifo), ("from key B (round-robin)", fair)):
        print(f"{name:32}{row['seconds']:20.2f}{row['a_jobs_still_waiting']:20.0f}")
    print(f"ratio (FIFO / round-robin): {ratio:.1f}x")


if __name__ == "__main__":
    main()
