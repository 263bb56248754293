"""`ninv-client` as a new user types it: flags after the command, stdin, 1e5, plain answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI

from client import Client, InvalidInput, write_matrix
from client.cli import cli
from client.formats import SUFFIXES
from ninv.npy import to_npy
from tests.client.test_cli import one_error_line
from tests.fake_worker import FakeWorker


@pytest.fixture
def run(ninv: Client) -> Callable[..., Result]:
    def invoke(*args: str, stdin: bytes | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), obj=ninv, input=stdin)

    return invoke


def test_url_and_api_key_work_after_the_command(
    make_app: Callable[..., FastAPI], serve: Callable[[FastAPI], str], tmp_path: Path
) -> None:
    url = serve(make_app(api_keys="k-1"))
    write_matrix(tmp_path / "m.json", np.eye(3))
    runner = CliRunner()
    submitted = runner.invoke(
        cli, ["submit", str(tmp_path / "m.json"), "--url", url, "--api-key", "k-1", "--json"]
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = json.loads(submitted.stdout)["id"]
    status = runner.invoke(cli, ["status", job_id, "--url", url, "--api-key", "k-1"])
    assert status.exit_code == 0, status.output
    assert job_id in status.stdout
    # Given on both sides, the one after the command wins.
    wrong = runner.invoke(cli, ["--api-key", "k-1", "list", "--url", url, "--api-key", "nope"])
    assert wrong.exit_code == 2
    assert "unauthorized" in one_error_line(wrong)
    assert "--url URL" in runner.invoke(cli, ["cancel", "--help"]).stdout


@pytest.mark.parametrize("fmt", [suffix.lstrip(".") for suffix in SUFFIXES])
def test_submit_dash_reads_stdin_in_the_format_given(
    run: Callable[..., Result], ninv: Client, tmp_path: Path, fmt: str
) -> None:
    matrix = np.array([[4.0, 7.0], [2.0, 6.0]])
    write_matrix(tmp_path / f"m.{fmt}", matrix)
    submitted = run("submit", "-", "--format", fmt, stdin=(tmp_path / f"m.{fmt}").read_bytes())
    assert submitted.exit_code == 0, submitted.output
    assert ninv.get(submitted.stdout.strip()).n == 2


def test_submit_dash_without_a_format_or_with_a_bad_one(run: Callable[..., Result]) -> None:
    no_format = run("submit", "-", stdin=b"1,2\n3,4\n")
    assert no_format.exit_code == 2
    assert "needs --format" in one_error_line(no_format)
    text_as_npy = run("submit", "-", "--format", "npy", stdin=b"1,2\n3,4\n")
    assert text_as_npy.exit_code == 2
    assert one_error_line(text_as_npy) == (
        "ninv-client: error: <stdin>: not a .npy file: it holds text; give it the extension of "
        "its format (.csv, .txt, .json or .mtx)"
    )


def test_format_overrides_the_extension(
    run: Callable[..., Result], ninv: Client, tmp_path: Path
) -> None:
    (tmp_path / "matrix.dat").write_bytes(to_npy(np.eye(3)))
    submitted = run("submit", str(tmp_path / "matrix.dat"), "--format", "npy")
    assert submitted.exit_code == 0, submitted.output
    assert ninv.get(submitted.stdout.strip()).n == 3


@pytest.mark.parametrize(("given", "expected"), [("1e5", 100_000), ("2.5e3", 2500), ("7", 7)])
def test_max_iter_takes_float_literals_as_the_api_does(
    run: Callable[..., Result], ninv: Client, tmp_path: Path, given: str, expected: int
) -> None:
    write_matrix(tmp_path / "m.npy", np.eye(2))
    submitted = run("submit", str(tmp_path / "m.npy"), "--max-iter", given)
    assert submitted.exit_code == 0, submitted.output
    assert ninv.get(submitted.stdout.strip()).options.max_iter == expected


@pytest.mark.parametrize("given", ["1.5", "0", "-1e3", "lots", "1e400"])
def test_max_iter_refuses_what_is_not_a_count(
    run: Callable[..., Result], tmp_path: Path, given: str
) -> None:
    write_matrix(tmp_path / "m.npy", np.eye(2))
    refused = run("submit", str(tmp_path / "m.npy"), "--max-iter", given)
    assert refused.exit_code == 2
    assert "--max-iter" in refused.stderr and "Traceback" not in refused.output


def test_status_of_a_cancelled_job_shows_its_summary_not_stale_progress(
    run: Callable[..., Result], ninv: Client, worker: FakeWorker
) -> None:
    job = ninv.submit(np.eye(3))
    worker.claim(job.id)
    worker.tick(job.id, 10)
    running = run("status", job.id).stdout
    assert "progress" in running and "10/1000" in running
    ninv.cancel(job.id)
    worker.cancelled(job.id, best=np.eye(3))
    shown = run("status", job.id).stdout
    assert "was cancelled after 20 iterations" in shown
    assert "progress" not in shown and "10/1000" not in shown


def test_status_shows_why_a_queued_job_waits(run: Callable[..., Result], ninv: Client) -> None:
    job = ninv.submit(np.eye(3))
    shown = run("status", job.id).stdout
    assert "notice" in shown and "no worker is running" in shown


def test_wait_timeout_says_that_no_worker_runs(run: Callable[..., Result], tmp_path: Path) -> None:
    write_matrix(tmp_path / "m.npy", np.eye(2))
    waited = run("submit", str(tmp_path / "m.npy"), "--wait", "--timeout", "0.5")
    assert waited.exit_code == 3
    line = one_error_line(waited)
    assert "did not finish within 0.5 s" in line
    assert "no worker is running" in line and "ninv worker" in line


def test_a_base_path_in_the_url_is_pointed_out(
    make_app: Callable[..., FastAPI], serve: Callable[[FastAPI], str]
) -> None:
    url = serve(make_app())
    listed = CliRunner().invoke(cli, ["list", "--url", url + "/api"])
    assert listed.exit_code == 2
    assert (
        "not found: path /api/jobs not found: the API's paths start at the server's root, so "
        "drop '/api' from the server URL; the paths are " in one_error_line(listed)
    )


def test_a_ragged_python_list_is_named_by_the_client(ninv: Client) -> None:
    with pytest.raises(InvalidInput) as raised:
        ninv.submit([[1.0, 2.0], [3.0, 4.0], [5.0]])
    assert str(raised.value) == (
        "the matrix is ragged: matrix[2] has 1 entry, matrix[0] has 2 entries"
    )
