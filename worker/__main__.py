"""`python -m worker [--device D]`: start one worker process bound to one device.

Run one per GPU (`--device cuda:0`, `--device cuda:1`, ...); each takes one job (or one batch of
small compatible jobs) at a time. `ninv worker` runs this.
"""

from __future__ import annotations

import argparse
import os
import re

__all__ = ["main"]

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,2})$")


def _resolve_device(device: str) -> str:
    """The concrete device, or ValueError when it names a CUDA device that is not there."""
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            found = torch.cuda.device_count()
            raise ValueError(f"--device {device}: this machine has {found} CUDA device(s)")
    return device


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ninv worker",
        description="Start one ninv worker bound to one device. Settings come from NINV_* "
        "variables; with no NINV_REDIS_URL it serves the embedded default under NINV_DATA_DIR.",
    )
    parser.add_argument(
        "--device",
        default=os.environ.get("NINV_DEVICE", "auto"),
        help="auto (CUDA when present), cpu, or cuda:N (default: NINV_DEVICE or auto)",
    )
    parser.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    args = parser.parse_args(argv)
    if not _DEVICE.match(args.device):
        parser.error(f"--device must be auto, cpu or cuda:N, not {args.device!r}")
    try:
        device = _resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    # Settings are read once, from the environment: the flag wins over NINV_DEVICE.
    os.environ["NINV_DEVICE"] = device

    from worker.app import celery_app

    celery_app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            f"--loglevel={args.loglevel}",
            f"--hostname=ninv-{device.replace(':', '')}-{os.getpid()}@%h",
            "--queues=ninv",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
