"""What running inside the worker costs: the task's iterations per second against the bare solver.

One run, side by side, on the same job: `worker.solver.invert` called directly, and the body of
the Celery task (`JobRunner.run`: claim, load from the store, solve with progress ticks that
write progress and history and renew the lease, store the result) over the real Redis.
Usage: python bench/worker.py [--n 16] [--max-iter 100000] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ninv.store import open_store
from tests.helpers import drop_redis_prefix, redis_settings, submit
from worker.runner import JobRunner
from worker.solver import invert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--max-iter", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--progress-every-s", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    torch.set_num_threads(1)

    settings = redis_settings(progress_every_s=args.progress_every_s, device="cpu")
    store = open_store(settings)
    runner = JobRunner(store, settings, worker_id="bench")
    # A plain Gaussian matrix: conditioned badly enough that adam runs its whole budget.
    matrix = np.random.default_rng(0).standard_normal((args.n, args.n))
    options = {"max_iter": args.max_iter, "seed": 0, "dtype": "float32"}
    bare_rates: list[float] = []
    task_rates: list[float] = []
    ticks: list[int] = []
    try:
        for _ in range(args.repeats):
            start = time.perf_counter()
            solution = invert(matrix, device="cpu", **options)  # type: ignore[arg-type]
            bare_rates.append(int(solution.iterations) / (time.perf_counter() - start))  # type: ignore[arg-type]

            job = submit(store, settings, matrix, send=False, **options)
            start = time.perf_counter()
            runner.run(job.id)
            elapsed = time.perf_counter() - start
            done = store.get(job.id)
            assert done is not None and done.summary is not None, done
            task_rates.append(done.summary.iterations / elapsed)
            ticks.append(len(store.history(job.id)))
    finally:
        store.close()
        drop_redis_prefix(settings.redis_prefix)

    bare, task = statistics.median(bare_rates), statistics.median(task_rates)
    overhead = 100 * (bare - task) / bare
    if args.json:
        print(json.dumps({"bare_it_s": bare, "task_it_s": task, "overhead_pct": overhead}))
        return
    print(
        f"n={args.n} float32 adam, max_iter {args.max_iter}, one thread, "
        f"progress every {args.progress_every_s}s, median of {args.repeats}"
    )
    print(f"bare solver        {bare:12,.0f} it/s")
    print(f"inside the task    {task:12,.0f} it/s   (history points stored: {ticks})")
    print(f"overhead           {overhead:11.1f} %")


if __name__ == "__main__":
    main()
