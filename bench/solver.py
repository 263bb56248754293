"""Solver benchmark: figures measured side by side in one run (human table, or --json).

    python bench/solver.py [--quick] [--json] [--device auto|cpu|cuda|cuda:N] [--seeds 20]

1. adam iterations/s against the reference loop (autograd + torch.optim.Adam), n = 16, float32,
   one matrix, one thread; and `invert` called with torch's default thread count against one
   thread (the solver picks its own threads for small problems, so the ratio should be ~1).
2. a batch of B 16x16 matrices in one call against one matrix: matrix-iterations/s ratio.
3. cg and newton-schulz: iterations and time to residual 1e-10 (float64) for n in {16, 256, 1024}
   at cond ~1e3, beside torch.linalg.inv's time on the same matrix.
4. the original matrix family (X = Q triu(rand), 16x16, fixed seeds): per method, how many
   reach aux error < 1e-6 within 100,000 iterations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker.solver import ItemOptions, SolverError, invert, solve_batch

#: torch's thread count before this script sets its own: what a library caller gets.
DEFAULT_THREADS = torch.get_num_threads()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def with_cond(n: int, cond: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (u * np.logspace(0, -np.log10(cond), n)) @ v.T


def original_family(seed: int, n: int = 16) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.rand(n, n, generator=gen))
    # "Q * triu(rand)" read as a matrix product (see tests/solver/problems.py)
    return (q @ torch.triu(torch.rand(n, n, generator=gen))).numpy()


def reference_rate(x: torch.Tensor, steps: int) -> float:
    """The original loop: a bias-free linear layer's weight, autograd, torch.optim.Adam."""
    n = x.shape[0]
    w = torch.nn.Parameter(torch.randn(n, n, device=x.device) / n)
    opt = torch.optim.Adam([w], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
    eye = torch.eye(n, device=x.device)
    for _ in range(10):
        opt.zero_grad()
        ((w @ x - eye) ** 2).mean().backward()
        opt.step()
    sync(str(x.device))
    t = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = ((w @ x - eye) ** 2).mean()
        loss.backward()
        opt.step()
    sync(str(x.device))
    return steps / (time.perf_counter() - t)


def adam_rate(x: np.ndarray, steps: int, device: str) -> float:
    invert(x, "adam", max_iter=64, seed=0, aux=False, device=device)  # warm-up
    t = time.perf_counter()
    invert(x, "adam", max_iter=steps, seed=0, aux=False, device=device)
    return steps / (time.perf_counter() - t)


def bench_adam(args: argparse.Namespace) -> dict[str, Any]:
    """adam vs the reference loop (one thread, as specified), then batch vs single."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = original_family(0)
        xt = torch.from_numpy(x).to(args.device_resolved)
        ours, ref = [], []
        for _ in range(args.repeats):  # interleaved, best of each: the box is shared
            ref.append(reference_rate(xt, args.ref_steps))
            ours.append(adam_rate(x, args.adam_steps, args.device))
        single = max(ours)
        out: dict[str, Any] = {
            "n": 16,
            "dtype": "float32",
            "threads": 1,
            "adam_it_per_s": single,
            "reference_it_per_s": max(ref),
            "ratio": single / max(ref),
        }
    finally:
        torch.set_num_threads(threads)
    out["default_threads"] = default_threads_figure(x, args)
    xs = np.stack([original_family(i) for i in range(args.batch)])
    invert(xs, "adam", max_iter=64, seed=0, aux=False, device=args.device)
    singles, batches = [], []
    for _ in range(args.repeats):
        singles.append(adam_rate(x, args.adam_steps, args.device))
        t = time.perf_counter()
        invert(xs, "adam", max_iter=args.batch_steps, seed=0, aux=False, device=args.device)
        batches.append(args.batch * args.batch_steps / (time.perf_counter() - t))
    if torch.get_num_threads() == 1:
        singles += ours  # same setting: the best single-matrix figure of the whole run
    out["batch"] = {
        "b": args.batch,
        "threads": torch.get_num_threads(),
        "matrix_it_per_s": max(batches),
        "single_matrix_it_per_s": max(singles),
        "ratio": max(batches) / max(singles),
        "vs_reference": max(batches) / max(ref),
    }
    return out


def default_threads_figure(x: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    """`invert` on one 16x16 matrix as a caller leaves torch (default threads) vs one thread."""
    threads = torch.get_num_threads()
    rates: dict[int, list[float]] = {DEFAULT_THREADS: [], 1: []}
    try:
        for _ in range(args.repeats):
            for count, seen in rates.items():
                torch.set_num_threads(count)
                seen.append(adam_rate(x, args.thread_steps, args.device))
    finally:
        torch.set_num_threads(threads)
    return {
        "threads": DEFAULT_THREADS,
        "it_per_s": max(rates[DEFAULT_THREADS]),
        "one_thread_it_per_s": max(rates[1]),
        "ratio": max(rates[DEFAULT_THREADS]) / max(rates[1]),
    }


def bench_fast_methods(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in args.sizes:
        x = with_cond(n, 1e3, n)
        xt = torch.from_numpy(x).to(args.device_resolved)
        torch.linalg.inv(xt)
        sync(args.device_resolved)
        t = time.perf_counter()
        torch.linalg.inv(xt)
        sync(args.device_resolved)
        inv_s = time.perf_counter() - t
        for method in ("newton-schulz", "cg"):
            cap = args.cg_cap if method == "cg" and n >= 1024 else None
            invert(x[:4, :4] + 4 * np.eye(4), method, dtype="float64", device=args.device)
            sol = invert(
                x, method, tol=1e-10, dtype="float64", device=args.device, aux=False, max_iter=cap
            )
            rows.append(
                {
                    "n": n,
                    "method": method,
                    "iterations": sol.iterations,
                    "residual": sol.residual,
                    "reason": sol.reason,
                    "time_s": sol.elapsed_s,
                    "inv_time_s": inv_s,
                    "cond": sol.cond,
                    "capped": cap,
                }
            )
    return rows


def bench_family(args: argparse.Namespace) -> list[dict[str, Any]]:
    """How many of the family reach aux < 1e-6 within 100,000 iterations (at checks)."""
    xs = np.stack([original_family(s) for s in range(args.seeds)])
    rows = []
    for dtype in args.family_dtypes:
        for method in ("adam", "gd", "cg", "newton-schulz", "exact"):
            reached: dict[int, int] = {}

            def on_progress(points, reached=reached):
                hit = [i for i, p in points if p.aux_error is not None and p.aux_error < 1e-6]
                for i in hit:
                    reached.setdefault(i, next(p.iteration for j, p in points if j == i))
                return hit

            t = time.perf_counter()
            if method == "exact":
                sols = []
                for s in range(args.seeds):
                    try:
                        sols.append(invert(xs[s], "exact", dtype=dtype, device=args.device))
                    except SolverError:
                        continue
            else:
                tol = 1e-12 if dtype == "float64" else 1e-7
                items = [ItemOptions(max_iter=100_000, seed=s, tol=tol) for s in range(args.seeds)]
                sols = solve_batch(
                    xs,
                    items,
                    method=method,
                    dtype=dtype,
                    device=args.device,
                    on_progress=on_progress,
                    progress_every_s=0,
                )
            elapsed = time.perf_counter() - t
            for i, sol in enumerate(sols):
                if sol.aux_error is not None and sol.aux_error < 1e-6:
                    reached.setdefault(i, int(sol.iterations))
            rows.append(
                {
                    "dtype": dtype,
                    "method": method,
                    "reached": len(reached),
                    "of": args.seeds,
                    "median_iterations_to_reach": float(np.median(list(reached.values())))
                    if reached
                    else None,
                    "median_cond": float(np.median([float(s.cond) for s in sols]))
                    if sols
                    else None,
                    "time_s": elapsed,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--quick", action="store_true", help="short run (smaller counts)")
    parser.add_argument("--seeds", type=int, default=20, help="original-family seeds")
    parser.add_argument("--batch", type=int, default=256, help="batch size of 16x16 matrices")
    parser.add_argument("--cg-cap", type=int, default=200, help="cg max_iter at n >= 1024")
    parser.add_argument("--skip-family", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads outside the 1-thread adam figure"
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        help="n for the cg / newton-schulz table, comma-separated (default 16,256,1024; "
        "e.g. 16,256,4096 on a GPU)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.device_resolved = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    args.repeats = 1 if args.quick else 3
    args.adam_steps = 5_000 if args.quick else 30_000
    args.ref_steps = 1_000 if args.quick else 4_000
    args.batch_steps = 300 if args.quick else 3_000
    args.thread_steps = 2_000 if args.quick else 10_000
    args.sizes = args.sizes or ([16, 256] if args.quick else [16, 256, 1024])
    args.family_dtypes = ["float32"] if args.quick else ["float32", "float64"]
    if args.quick:
        args.seeds = min(args.seeds, 5)
    report: dict[str, Any] = {
        "device": args.device_resolved,
        "torch": torch.__version__,
        "threads": args.threads,
        "adam": bench_adam(args),
        "fast_methods": bench_fast_methods(args),
    }
    if not args.skip_family:
        report["family"] = bench_family(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    a = report["adam"]
    print(f"device {report['device']}, torch {report['torch']}")
    print("\nadam, n=16 float32, one matrix, 1 thread")
    print(f"  ours       {a['adam_it_per_s']:>12,.0f} it/s")
    print(f"  reference  {a['reference_it_per_s']:>12,.0f} it/s   (autograd + torch.optim.Adam)")
    print(f"  ratio      {a['ratio']:>12.1f}x")
    d = a["default_threads"]
    print(f"\ninvert, adam n=16 float32, caller's default {d['threads']} thread(s) vs 1 thread")
    print(f"  default    {d['it_per_s']:>12,.0f} it/s")
    print(f"  1 thread   {d['one_thread_it_per_s']:>12,.0f} it/s")
    print(f"  ratio      {d['ratio']:>12.3f}x")
    b = a["batch"]
    print(f"\nbatch of {b['b']} 16x16 (adam, float32, {b['threads']} thread(s))")
    print(f"  batch      {b['matrix_it_per_s']:>12,.0f} matrix-it/s")
    print(f"  single     {b['single_matrix_it_per_s']:>12,.0f} matrix-it/s")
    print(f"  ratio      {b['ratio']:>12.1f}x   ({b['vs_reference']:.0f}x the reference loop)")
    print(
        f"\ncg / newton-schulz to residual 1e-10, float64, cond ~1e3, {report['threads']} thread(s)"
        " (time includes the cond estimate)"
    )
    head = ("n", "method", "iters", "residual", "reason", "time", "inv")
    print("  {:>5} {:<14} {:>6} {:>9} {:<10} {:>9} {:>9}".format(*head))
    for r in report["fast_methods"]:
        cap = f" (capped at {r['capped']})" if r["capped"] else ""
        print(
            f"  {r['n']:>5} {r['method']:<14} {r['iterations']:>6} {r['residual']:>9.1e} "
            f"{r['reason']:<10} {r['time_s']:>8.4f}s {r['inv_time_s']:>8.4f}s{cap}"
        )
    if "family" in report:
        print("\noriginal family (16x16): reach aux < 1e-6 within 100,000 iterations")
        print(f"  {'dtype':<8} {'method':<14} {'reached':>8} {'median it':>10} {'time':>8}")
        for r in report["family"]:
            med = (
                "-"
                if r["median_iterations_to_reach"] is None
                else f"{r['median_iterations_to_reach']:.0f}"
            )
            print(
                f"  {r['dtype']:<8} {r['method']:<14} {r['reached']:>3}/{r['of']:<4} {med:>10} "
                f"{r['time_s']:>7.1f}s"
            )
        conds = report["family"][0]["median_cond"]
        print(f"  (median cond of the family: {conds:.3g}; reached = aux < 1e-6 at a check)")


if __name__ == "__main__":
    main()
