"""Honest outcomes through the real service: exit codes for a job that did not converge, and
`ninv-client compare`, with `ninv serve` and its worker as processes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ninv.settings import Settings
from tests.helpers import ROOT, ServerProcess, console_script, settings_env

pytestmark = pytest.mark.e2e

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def client(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("ninv-client"), "--url", server.url, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_unconverged_exits_4_and_compare_overlays_the_methods(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server(settings_env(Settings(data_dir=tmp_path / "data")))
    np.save(tmp_path / "ones.npy", np.ones((4, 4)))
    ones = str(tmp_path / "ones.npy")

    singular = client(server, "submit", ones, "--method", "newton-schulz", "--wait", "--json")
    assert singular.returncode == 4, singular.stderr
    summary = json.loads(singular.stdout)["summary"]
    assert summary["reason"] == "singular" and summary["converged"] is False
    assert "pseudo-)inverse" in summary["warnings"][0]
    assert "--allow-unconverged" in singular.stderr
    job_id = json.loads(singular.stdout)["id"]
    saved = client(server, "result", job_id, "-o", str(tmp_path / "pinv.npy"))
    assert saved.returncode == 4  # saved, and said to be unusable as an inverse
    np.testing.assert_allclose(np.load(tmp_path / "pinv.npy"), np.full((4, 4), 1 / 16), atol=1e-4)
    accepted = client(server, "watch", job_id, "--allow-unconverged")
    assert accepted.returncode == 0 and "warning: the matrix is singular" in accepted.stdout

    matrix = np.random.default_rng(0).standard_normal((8, 8)) + 2 * np.eye(8)
    np.save(tmp_path / "m.npy", matrix)
    out = tmp_path / "compare.png"
    compared = client(
        server,
        "compare",
        str(tmp_path / "m.npy"),
        "--methods",
        "adam,cg,newton-schulz,exact",
        "--dtype",
        "float64",
        "--max-iter",
        "2000",
        "-o",
        str(out),
    )
    assert compared.returncode == 0, compared.stderr
    rows = {line.split()[0]: line.split() for line in compared.stdout.splitlines()[1:-1]}
    assert set(rows) == {"adam", "cg", "newton-schulz", "exact"}
    assert rows["newton-schulz"][2] == "yes" and rows["exact"][2] == "yes"
    assert rows["adam"][2] == "no"  # 2,000 steps: far from 1e-10
    assert out.read_bytes().startswith(PNG_SIGNATURE)
