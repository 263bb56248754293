"""`python -m worker` (what `ninv worker` runs) refuses a device it cannot use, in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.helpers import ROOT


@pytest.mark.parametrize(
    ("device", "says"),
    [
        ("gpu", "--device must be auto, cpu or cuda:N"),
        (f"cuda:{torch.cuda.device_count()}", "CUDA device(s)"),
    ],
)
def test_a_device_it_cannot_use_is_a_usage_error(device: str, says: str) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "worker", "--device", device],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 2
    assert says in ran.stderr.strip().splitlines()[-1]
