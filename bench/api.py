"""Submit latency and throughput of POST /invert beside a bare FastAPI endpoint, and parse times.

One run on loopback: the ninv app (Redis store under a unique key prefix, deleted afterwards)
and a bare FastAPI endpoint that only reads the body, each served by uvicorn in its own
subprocess with the same settings, are driven by httpx.AsyncClient at 1, 8 and 32 concurrent
clients with a 16x16 JSON job. The figure that matters is the p99 ratio at 32 clients (the
issue asks for <= 3x). Then the parse + validate time of a 1024x1024 matrix as JSON and as .npy,
calling service.parsing directly.

Usage: python bench/api.py [--requests 400] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import REDIS_URL, drop_redis_prefix

CONCURRENCY = (1, 8, 32)


# -- the servers ----------------------------------------------------------------------------------


def _serve(kind: str, port: int) -> None:
    """Run one server in this process (the subprocess side)."""
    import uvicorn

    if kind == "ninv":
        from service import create_app

        app = create_app()
    else:
        app = FastAPI()

        @app.post("/invert", status_code=202)
        async def bare(request: Request, response: Response) -> dict[str, str]:
            await request.body()
            response.headers["Location"] = "/jobs/x"
            return {"id": uuid.uuid4().hex, "status": "queued"}

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, kind: str, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(self.port)],
            env={**os.environ, **env},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{kind} server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- load -----------------------------------------------------------------------------------------


async def _load(url: str, body: bytes, clients: int, requests: int) -> dict[str, float]:
    latencies: list[float] = []
    remaining = requests
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for _ in range(min(20, requests)):  # warm up connections and code paths
            (await client.post("/invert", content=body, headers=headers)).raise_for_status()

        async def one_client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.post("/invert", content=body, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 202:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text}")

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rps": len(latencies) / wall,
    }


def bench_submit(requests: int) -> dict[str, Any]:
    prefix = f"bench-api-{uuid.uuid4().hex}"
    matrix = np.random.default_rng(0).standard_normal((16, 16)) + 16 * np.eye(16)
    body = json.dumps({"matrix": matrix.tolist(), "method": "adam", "max_iter": 1000}).encode()
    env = {"NINV_REDIS_URL": REDIS_URL, "NINV_REDIS_PREFIX": prefix, "NINV_API_KEYS": ""}
    ninv = Server("ninv", env)
    bare = Server("bare", env)
    rows: dict[str, Any] = {}
    try:
        for clients in CONCURRENCY:
            count = max(requests, 10 * clients)
            rows[str(clients)] = {
                "ninv": asyncio.run(_load(ninv.url, body, clients, count)),
                "bare": asyncio.run(_load(bare.url, body, clients, count)),
                "requests": count,
            }
    finally:
        ninv.stop()
        bare.stop()
        drop_redis_prefix(prefix)
    top = rows[str(CONCURRENCY[-1])]
    return {
        "levels": rows,
        "p99_ratio_at_32": top["ninv"]["p99_ms"] / top["bare"]["p99_ms"],
        "p50_ratio_at_32": top["ninv"]["p50_ms"] / top["bare"]["p50_ms"],
    }


# -- parsing --------------------------------------------------------------------------------------


def _best_of(repeats: int, fn: Any, *args: Any) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def bench_parse(n: int, repeats: int) -> dict[str, Any]:
    from service.parsing import Limits, parse_json, parse_npy

    limits = Limits(max_n=4096, max_batch=4096, max_body_bytes=1 << 31)
    matrix = np.random.default_rng(1).standard_normal((n, n))
    as_json = json.dumps({"matrix": matrix.tolist()}).encode()
    buf = io.BytesIO()
    np.save(buf, matrix)
    as_npy = buf.getvalue()
    parsed = parse_json(as_json, limits)
    assert np.array_equal(parsed.matrix, matrix)
    return {
        "n": n,
        "json_mb": len(as_json) / 1e6,
        "npy_mb": len(as_npy) / 1e6,
        "json_ms": _best_of(repeats, parse_json, as_json, limits),
        "npy_ms": _best_of(repeats, parse_npy, as_npy, [], limits),
        "store_encode_ms": _best_of(repeats, parsed.npy),
    }


# -- report ---------------------------------------------------------------------------------------


def _print(report: dict[str, Any]) -> None:
    submit = report["submit"]
    print("POST /invert, 16x16 JSON job, loopback (ninv: Redis store; bare: FastAPI, body read)")
    print(
        f"{'clients':>7} {'reqs':>5} | {'ninv p50':>9} {'p99':>8} {'req/s':>7} |"
        f" {'bare p50':>9} {'p99':>8} {'req/s':>7} | {'p99 x':>5}"
    )
    for clients, row in submit["levels"].items():
        a, b = row["ninv"], row["bare"]
        print(
            f"{clients:>7} {row['requests']:>5} | {a['p50_ms']:>7.2f}ms {a['p99_ms']:>6.2f}ms"
            f" {a['rps']:>7.0f} | {b['p50_ms']:>7.2f}ms {b['p99_ms']:>6.2f}ms {b['rps']:>7.0f} |"
            f" {a['p99_ms'] / b['p99_ms']:>5.2f}"
        )
    print(f"p99 ratio at 32 clients: {submit['p99_ratio_at_32']:.2f}x (target <= 3x)")
    parse = report["parse"]
    n = parse["n"]
    print(f"\nparse + validate {n}x{n} float64:")
    print(f"  JSON  {parse['json_mb']:6.1f} MB  {parse['json_ms']:8.1f} ms")
    print(f"  .npy  {parse['npy_mb']:6.1f} MB  {parse['npy_ms']:8.1f} ms")
    print(f"  (.npy encoding for the store: {parse['store_encode_ms']:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=400, help="requests per level (min 10x clients)"
    )
    parser.add_argument("--n", type=int, default=1024, help="matrix size of the parse benchmark")
    parser.add_argument("--repeats", type=int, default=3, help="parse runs (best is reported)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", choices=["ninv", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port)
        return
    report = {"submit": bench_submit(args.requests), "parse": bench_parse(args.n, args.repeats)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)


if __name__ == "__main__":
    main()
