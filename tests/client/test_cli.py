"""`ninv-client` against the real app served in-process, and against no server at all."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI

from client import Client, ServerUnavailable, read_matrix, write_matrix
from client import cli as client_cli
from client.cli import cli
from client.plot import lr_stages
from tests.client.conftest import well_conditioned
from tests.fake_worker import FakeWorker

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(ninv: Client) -> Callable[..., Result]:
    """Invoke the CLI with the test's client (as `obj`), as the console script would."""

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=ninv)

    return invoke


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ninv-client: error: ")
    return lines[0]


def test_submit_status_list_history_result(
    run: Callable[..., Result], worker: FakeWorker, tmp_path: Path
) -> None:
    matrix = well_conditioned(6, seed=8)
    write_matrix(tmp_path / "m.csv", matrix)
    submitted = run(
        "submit",
        str(tmp_path / "m.csv"),
        "--method",
        "adam",
        "--max-iter",
        "1000",
        "--lr-schedule",
        "0:0.05,500:0.01",
        "--seed",
        "3",
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.stdout.strip()
    assert f"ninv-client watch {job_id}" in submitted.stderr

    status = run("status", job_id)
    assert status.exit_code == 0
    assert "queued" in status.stdout and "6 x 6 float64" in status.stdout
    as_json = json.loads(run("status", job_id, "--json").stdout)
    assert as_json["options"]["lr_schedule"] == [[0, 0.05], [500, 0.01]]
    assert as_json["options"]["seed"] == 3

    worker.run(job_id)
    listed = json.loads(run("list", "--json", "--status", "succeeded").stdout)
    assert [job["id"] for job in listed] == [job_id]
    table = run("list").stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "N", "METHOD", "PROGRESS", "CREATED"]
    assert table[1].split()[:4] == [job_id, "succeeded", "6", "adam"]

    history = run("history", job_id)
    assert history.stdout.splitlines()[1].split()[:2] == ["10", "0.1"]
    points = json.loads(run("history", job_id, "--json").stdout)["points"]
    assert [p["iteration"] for p in points] == [10, 100, 1000]

    for suffix in (".npy", ".mtx", ".json", ".txt"):
        out = tmp_path / f"inv{suffix}"
        saved = run("result", job_id, "-o", str(out))
        assert saved.exit_code == 0, saved.output
        assert f"to {out}" in saved.stdout
        np.testing.assert_allclose(read_matrix(out), np.linalg.inv(matrix), rtol=0, atol=1e-12)
    printed = run("result", job_id)
    values = np.array([[float(x) for x in line.split()] for line in printed.stdout.splitlines()])
    np.testing.assert_array_equal(values, np.linalg.inv(matrix))
    body = json.loads(run("result", job_id, "--json").stdout)
    assert body["summary"]["iterations"] == 1000
    np.testing.assert_array_equal(body["inverse"], np.linalg.inv(matrix))


def test_submit_wait_output(
    run: Callable[..., Result], worker: FakeWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hold on the submission: the job is followed from the start, with its progress bar.
    monkeypatch.setattr(client_cli, "SUBMIT_HOLD_S", 0.0)
    matrix = well_conditioned(5, seed=9)
    np.save(tmp_path / "m.npy", matrix)
    thread, _ = worker.run_next_in_thread(pause=0.05)
    result = run("submit", str(tmp_path / "m.npy"), "-o", str(tmp_path / "inv.json"))
    thread.join(5)
    assert result.exit_code == 0, result.output
    assert "succeeded after 1000 iterations" in result.stdout
    assert "1000/1000" in result.stderr  # the progress bar reached the end
    np.testing.assert_allclose(
        read_matrix(tmp_path / "inv.json"), np.linalg.inv(matrix), rtol=0, atol=1e-12
    )


def test_watch_shows_progress_and_the_end(
    run: Callable[..., Result], ninv: Client, worker: FakeWorker
) -> None:
    job = ninv.submit(np.eye(3))
    thread, _ = worker.run_next_in_thread(pause=0.1)
    watched = run("watch", job.id)
    thread.join(5)
    assert watched.exit_code == 0, watched.output
    assert "loss 0.001" in watched.stderr and "ETA" in watched.stderr
    assert watched.stdout.startswith(f"job {job.id} succeeded after 1000 iterations (max_iter)")
    final = json.loads(run("watch", job.id, "--json").stdout)
    assert final["status"] == "succeeded"


def test_failed_and_cancelled_jobs_exit_1(
    run: Callable[..., Result], ninv: Client, worker: FakeWorker
) -> None:
    failed = ninv.submit(np.eye(2))
    worker.claim(failed.id)
    worker.fail(failed.id, "diverged: loss is nan")
    watched = run("watch", failed.id)
    assert watched.exit_code == 1
    assert watched.stdout.strip() == f"job {failed.id} failed: diverged: loss is nan"
    fetched = run("result", failed.id, "-o", "unused.npy")
    assert fetched.exit_code == 1
    assert "diverged: loss is nan" in one_error_line(fetched)

    queued = ninv.submit(np.eye(2))
    cancelled = run("cancel", queued.id)
    assert cancelled.exit_code == 0 and cancelled.stdout.strip() == f"job {queued.id} cancelled"
    assert run("watch", queued.id).exit_code == 1
    again = run("cancel", queued.id)
    assert again.exit_code == 2
    assert "conflict" in one_error_line(again)


def test_unconverged_jobs_exit_4_unless_allowed(
    run: Callable[..., Result], ninv: Client, worker: FakeWorker, tmp_path: Path
) -> None:
    job = ninv.submit(np.eye(3))
    worker.run(job.id, converged=False)
    watched = run("watch", job.id)
    assert watched.exit_code == 4
    assert "finished without reaching its tolerance" in watched.stdout
    assert "warning: adam stopped at residual 0.002" in watched.stdout
    assert "--allow-unconverged accepts it" in watched.stderr.splitlines()[-1]
    assert run("watch", job.id, "--allow-unconverged").exit_code == 0
    fetched = run("result", job.id, "-o", str(tmp_path / "w.npy"))
    assert fetched.exit_code == 4 and (tmp_path / "w.npy").exists()  # saved all the same
    assert run("result", job.id, "--allow-unconverged", "--json").exit_code == 0

    np.save(tmp_path / "m.npy", np.eye(3))
    thread, _ = worker.run_next_in_thread(pause=0.02, converged=False)
    submitted = run("submit", str(tmp_path / "m.npy"), "--wait", "--json", "--stall-window", "0")
    thread.join(5)
    assert submitted.exit_code == 4
    assert json.loads(submitted.stdout)["options"]["stall_window"] == 0


def test_help_documents_every_exit_code(run: Callable[..., Result]) -> None:
    text = run("--help").stdout
    for code in (
        "0  done",
        "1  the job failed",
        "2  bad usage",
        "3  server",
        "4  the job finished",
    ):
        assert code in text
    assert "--allow-unconverged" in text and "--stall-window" in run("submit", "--help").stdout


def test_plot_of_an_exact_job_says_there_is_no_curve(
    run: Callable[..., Result], ninv: Client, tmp_path: Path
) -> None:
    job = ninv.submit(np.eye(2), method="exact")
    done = run("plot", job.id, "-o", str(tmp_path / "none.png"))
    assert done.exit_code == 2 and not (tmp_path / "none.png").exists()
    assert "method exact (LU): one step, so it has no loss curve" in one_error_line(done)


def test_delete_and_unknown_job(run: Callable[..., Result], ninv: Client) -> None:
    job = ninv.submit(np.eye(2))
    assert run("delete", job.id).exit_code == 2  # not finished yet
    ninv.cancel(job.id)
    deleted = run("delete", job.id, "--json")
    assert deleted.exit_code == 0
    assert json.loads(deleted.stdout) == {"id": job.id, "deleted": True}
    gone = run("status", job.id)
    assert gone.exit_code == 2
    assert one_error_line(gone).startswith("ninv-client: error: not found: ")


def test_result_before_finish_exits_2(run: Callable[..., Result], ninv: Client) -> None:
    job = ninv.submit(np.eye(2))
    early = run("result", job.id)
    assert early.exit_code == 2
    assert f"job {job.id} is queued" in one_error_line(early)


def test_plot_writes_a_png(
    run: Callable[..., Result], ninv: Client, worker: FakeWorker, tmp_path: Path
) -> None:
    job = ninv.submit(np.eye(2))
    empty = run("plot", job.id, "-o", str(tmp_path / "none.png"))
    assert empty.exit_code == 2 and "nothing" not in empty.stdout
    assert "no positive loss values" in one_error_line(empty)
    worker.run(job.id, iterations=(1, 3, 10, 30, 100, 300, 1000))
    plotted = run("plot", job.id, "-o", str(tmp_path / "loss.png"))
    assert plotted.exit_code == 0, plotted.output
    data = (tmp_path / "loss.png").read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    assert lr_stages(ninv.history(job.id)) == []  # the fake curve has one lr
    svg = run("plot", job.id, "-o", str(tmp_path / "loss.svg"), "--json")
    assert json.loads(svg.stdout)["points"] == 7
    assert (tmp_path / "loss.svg").read_text().lstrip().startswith("<?xml")


def test_url_and_api_key_flags_and_env(
    make_app: Callable[..., FastAPI], serve: Callable[[FastAPI], str], tmp_path: Path
) -> None:
    url = serve(make_app(api_keys="k-1"))
    write_matrix(tmp_path / "m.json", np.eye(3))
    ok = CliRunner().invoke(
        cli, ["--url", url, "--api-key", "k-1", "submit", str(tmp_path / "m.json"), "--json"]
    )
    assert ok.exit_code == 0, ok.output
    job_id = json.loads(ok.stdout)["id"]
    by_env = CliRunner(env={"NINV_URL": url, "NINV_API_KEY": "k-1"}).invoke(cli, ["status", job_id])
    assert by_env.exit_code == 0 and job_id in by_env.stdout
    wrong = CliRunner(env={"NINV_URL": url}).invoke(cli, ["--api-key", "nope", "list"])
    assert wrong.exit_code == 2
    assert one_error_line(wrong).startswith("ninv-client: error: unauthorized: ")


def test_unreachable_server_exits_3_with_one_line(tmp_path: Path) -> None:
    write_matrix(tmp_path / "m.txt", np.eye(2))
    result = CliRunner().invoke(
        cli, ["--url", "http://127.0.0.1:1", "--retries", "1", "submit", str(tmp_path / "m.txt")]
    )
    assert result.exit_code == 3
    assert one_error_line(result) == (
        "ninv-client: error: cannot reach ninv at http://127.0.0.1:1: "
        "[Errno 111] Connection refused (after 2 attempts)"
    )
    assert result.stdout == ""


def test_store_down_is_503_retried_after_retry_after(
    make_app: Callable[..., FastAPI], serve: Callable[[FastAPI], str]
) -> None:
    """The real app answers 503 with Retry-After when Redis is down; the client waits it out."""
    url = serve(make_app(redis_url="redis://127.0.0.1:1/0"))
    started = time.monotonic()
    with Client(url, retries=1) as ninv, pytest.raises(ServerUnavailable) as raised:
        ninv.get("0123456789abcdef0123456789abcdef")
    assert time.monotonic() - started >= 2.0  # Retry-After: 2 between the two attempts
    assert raised.value.status == 503 and raised.value.detail
    result = CliRunner().invoke(cli, ["--url", url, "--retries", "0", "list"])
    assert result.exit_code == 3
    assert one_error_line(result).startswith("ninv-client: error: server unavailable (503): ")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    write_matrix(tmp_path / "m.npy", np.eye(2))
    bad_schedule = CliRunner().invoke(
        cli, ["submit", str(tmp_path / "m.npy"), "--lr-schedule", "0-0.05"]
    )
    assert bad_schedule.exit_code == 2 and "START:LR" in bad_schedule.stderr
    bad_option = CliRunner().invoke(cli, ["submit", str(tmp_path / "m.npy"), "--method", "x"])
    assert bad_option.exit_code == 2
    bad_output = CliRunner().invoke(cli, ["submit", str(tmp_path / "m.npy"), "-o", "x.xlsx"])
    assert bad_output.exit_code == 2
    assert "unknown file type ('.xlsx')" in one_error_line(bad_output)
    help_text = CliRunner().invoke(cli, ["--help"]).stdout
    for line in (
        "0  done",
        "1  the job failed or was cancelled",
        "2  bad usage",
        "3  server or connection error",
    ):
        assert line in help_text


def test_cancelled_job_best_w_is_saved_but_exits_1(
    run: Callable[..., Result], ninv: Client, worker: FakeWorker, tmp_path: Path
) -> None:
    job = ninv.submit(np.eye(3))
    worker.claim(job.id)
    ninv.cancel(job.id)
    worker.cancelled(job.id, best=0.9 * np.eye(3))
    saved = run("result", job.id, "-o", str(tmp_path / "best.npy"))
    assert saved.exit_code == 1
    assert saved.stderr.strip() == (
        "ninv-client: note: the job was cancelled; this is its best W after 20 iterations "
        "(residual 0.002)"
    )
    np.testing.assert_array_equal(np.load(tmp_path / "best.npy"), 0.9 * np.eye(3))


def test_a_surprise_is_one_line_too() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise ValueError("something nobody expected")

    with Client("http://ninv.test", transport=httpx.MockTransport(broken)) as ninv:
        result = CliRunner().invoke(cli, ["status", "j1"], obj=ninv)
    assert result.exit_code == 3
    assert one_error_line(result) == (
        "ninv-client: error: unexpected ValueError: something nobody expected "
        "(NINV_DEBUG=1 shows the traceback)"
    )
