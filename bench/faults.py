"""API memory under large JSON bodies, and what dropped uploads cost, against `ninv serve`.

Each case starts `ninv serve --no-worker` on the embedded default (a temporary folder) and reads
its resident memory (VmRSS) from /proc before, at its peak while the requests run, and after:

- big:   `--clients` concurrent JSON bodies of an n x n matrix (`--n`, ~20 bytes an entry),
         with the JSON limit raised to 64 MiB and 8 parses at once (as before issue 16), then
         with the defaults (8 MiB: refused with 413 before parsing);
- within: the same clients with bodies just under 8 MiB, 8 parses at once beside the default 2;
- drops: `--drops` uploads abandoned mid-body: the statuses the metrics count, the log's size
         and its tracebacks.

Usage: python bench/faults.py [--n 1400] [--clients 8] [--drops 500] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import ServerProcess

MIB = 1024 * 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def json_body(n: int) -> bytes:
    rng = np.random.default_rng(0)
    return json.dumps({"matrix": (rng.random((n, n)) + n * np.eye(n)).tolist()}).encode()


def start(folder: Path, **env: str) -> ServerProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NINV_")}
    base.update({"NINV_DATA_DIR": str(folder / "data"), "PYTHONUNBUFFERED": "1", **env})
    server = ServerProcess(base, folder / f"api-{time.monotonic_ns()}.log", args=["--no-worker"])
    server.wait_ready()
    return server


def memory_case(folder: Path, body: bytes, clients: int, **env: str) -> dict[str, Any]:
    server = start(folder, **env)
    try:
        before = rss_mb(server.proc.pid)
        peak = [before]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb(server.proc.pid))
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()

        async def send() -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
                answers = await asyncio.gather(
                    *(
                        client.post(
                            "/invert", content=body, headers={"Content-Type": "application/json"}
                        )
                        for _ in range(clients)
                    )
                )
            return [a.status_code for a in answers]

        statuses = asyncio.run(send())
        time.sleep(1)
        done.set()
        watcher.join()
        return {
            "body_mib": round(len(body) / MIB, 1),
            "statuses": sorted(set(statuses)),
            "rss_before_mb": round(before),
            "rss_peak_mb": round(peak[0]),
            "rss_after_mb": round(rss_mb(server.proc.pid)),
        }
    finally:
        server.stop()


def drops_case(folder: Path, drops: int) -> dict[str, Any]:
    server = start(folder)
    try:
        port = server.port
        for _ in range(drops):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /invert HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n" + b'{"matrix": [[1.0, ' * 100
                )
        time.sleep(2)
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        counts = {
            status: float(value)
            for status, value in re.findall(
                r'ninv_http_requests_total\{method="POST",route="/invert",status="(\d+)"\} (\S+)',
                metrics,
            )
        }
        log = server.log_path.read_text(errors="replace")
        return {
            "drops": drops,
            "statuses": counts,
            "log_kib": round(len(log.encode()) / 1024, 1),
            "tracebacks": log.count("Traceback"),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--drops", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = json_body(args.n)
        old = {"NINV_MAX_JSON_BYTES": str(64 * MIB), "NINV_MAX_LARGE_PARSES": "8"}
        figures["big_as_before"] = memory_case(folder, big, args.clients, **old)
        figures["big_defaults"] = memory_case(folder, big, args.clients)
        within = json_body(int(args.n * (7.5 * MIB / len(big)) ** 0.5))
        figures["within_8_parses"] = memory_case(
            folder, within, args.clients, NINV_MAX_LARGE_PARSES="8"
        )
        figures["within_defaults"] = memory_case(folder, within, args.clients)
        figures["drops"] = drops_case(folder, args.drops)
    if args.json:
        print(json.dumps(figures))
        return
    for name, row in figures.items():
        print(f"{name:18s} {row}")


if __name__ == "__main__":
    main()
