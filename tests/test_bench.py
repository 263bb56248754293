"""Every benchmark still runs and prints its figures (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str) -> dict[str, Any]:
    ran = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    figures: dict[str, Any] = json.loads(ran.stdout)
    return figures


def test_solver_bench() -> None:
    figures = run_bench("solver.py", "--quick", "--skip-family", "--sizes", "16")
    assert figures["adam"] and figures["fast_methods"]


def test_worker_bench() -> None:
    figures = run_bench("worker.py", "--max-iter", "2000", "--repeats", "1")
    assert figures["bare_it_s"] > 0 and figures["task_it_s"] > 0


def test_throughput_bench() -> None:
    figures = run_bench("throughput.py", "--jobs", "12", "--batch-max", "8", "--rounds", "1")
    assert figures["batching_on"]["succeeded"] == figures["batching_off"]["succeeded"] == 12


def test_api_bench() -> None:
    figures = run_bench("api.py", "--requests", "10", "--n", "64", "--repeats", "1")
    assert figures["submit"] and figures["parse"]


def test_faults_bench() -> None:
    figures = run_bench("faults.py", "--n", "200", "--clients", "2", "--drops", "5")
    assert figures["drops"]["statuses"] == {"499": 5.0}
    assert figures["drops"]["tracebacks"] == 0


def test_side_by_side_bench() -> None:
    figures = run_bench("side_by_side.py", "--seconds", "1", "--latency-jobs", "3", "--rounds", "1")
    for side in ("plain_redis", "ninv_redis", "ninv_embedded"):
        assert figures[side]["jobs_per_s"] > 0 and figures[side]["p50_ms"] > 0


def test_queue_order_bench() -> None:
    figures = run_bench("queue_order.py", "--jobs", "20")
    assert figures["fifo"]["succeeded"] and figures["round_robin"]["succeeded"]


def test_api_processes_bench() -> None:
    figures = run_bench("api_processes.py", "--seconds", "1", "--rounds", "1")
    assert figures["one_api_jobs_per_s"][0] > 0 and figures["two_apis_jobs_per_s"][0] > 0
