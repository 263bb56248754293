"""`ninv-client`: the command line over `client.Client`. It parses arguments and calls the library.

Every failure is one line on stderr (`ninv-client: error: ...`) and an exit code (see EPILOG).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast, get_args

import click
import numpy as np
from pydantic import BaseModel

from client._compare import DEFAULT_METHODS
from client._display import ProgressBar, describe, format_history, format_job, format_jobs, num
from client._sync import Client
from client.errors import (
    JobCancelled,
    JobFailed,
    NinvError,
    NotConverged,
    ServerError,
    WaitTimeout,
)
from client.formats import SUFFIXES, check_suffix, parse_matrix, read_matrix, write_matrix
from ninv.schemas import FINISHED, DType, Job, JobStatus, Method, Result, Summary

__all__ = [
    "EXIT_FAILED",
    "EXIT_SERVER",
    "EXIT_UNCONVERGED",
    "EXIT_USAGE",
    "cli",
    "exit_code",
    "main",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SERVER = 3
EXIT_UNCONVERGED = 4
EXIT_INTERRUPTED = 130

#: How long `submit --wait` (or -o) holds its submission for the job to finish: a small job is
#: then done in one request; a longer one is followed by its event stream, with a progress bar.
SUBMIT_HOLD_S = 1.0

EPILOG = f"""\b
Exit codes:
  0  done: the command did what it was asked (for submit --wait, watch
     and result: the job succeeded and converged: its residual is
     within its tolerance)
  1  the job failed or was cancelled (result still saves a cancelled
     job's best W, and says so)
  2  bad usage, a bad input file, or a request the server rejected
     (unknown job, wrong key, invalid matrix, job not finished yet)
  3  server or connection error (unreachable, 5xx, timed out)
  4  the job finished without reaching its tolerance: the inverse may
     be unusable (its summary's reason and warnings say why); it is
     still printed or saved; --allow-unconverged exits 0 instead

\b
Matrix files by extension: {", ".join(SUFFIXES)}.
Environment: NINV_URL (default http://127.0.0.1:8000), NINV_API_KEY.
"""

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(error: NinvError) -> int:
    """The exit code for a library error."""
    if isinstance(error, JobFailed | JobCancelled):
        return EXIT_FAILED
    if isinstance(error, NotConverged):
        return EXIT_UNCONVERGED
    if isinstance(error, ServerError | WaitTimeout):
        return EXIT_SERVER
    return EXIT_USAGE


class _OneLineError(click.ClickException):
    """An error shown as one `ninv-client: error: ...` line."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    def show(self, file: Any = None) -> None:
        click.echo(f"ninv-client: error: {self.message}", err=True)


class _JobEndedError(_OneLineError):
    exit_code = EXIT_FAILED


class _ServerError(_OneLineError):
    exit_code = EXIT_SERVER


_ERRORS: dict[int, type[_OneLineError]] = {
    EXIT_FAILED: _JobEndedError,
    EXIT_USAGE: _OneLineError,
    EXIT_SERVER: _ServerError,
}


def CliError(message: str, code: int) -> click.ClickException:
    """The one-line error for `message` that exits with `code`."""
    return _ERRORS[code](message)


class _Group(click.Group):
    """Turns every library error (and any surprise) into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NinvError as error:
            raise CliError(str(error), exit_code(error)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\nninv-client: interrupted (a submitted job keeps running)", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (`| head`): nothing left to say
            raise click.exceptions.Exit(0) from None
        except Exception as error:
            if os.environ.get("NINV_DEBUG"):
                raise
            raise CliError(
                f"unexpected {type(error).__name__}: {error} (NINV_DEBUG=1 shows the traceback)",
                EXIT_SERVER,
            ) from None


def json_option(command: F) -> F:
    """The `--json` flag every command has."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout."
    )(command)


def _print_json(value: BaseModel | list[Any] | dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        click.echo(value.model_dump_json())
    else:
        click.echo(json.dumps(value, separators=(",", ":")))


#: Where the connection options (--url, --api-key, --retries) are kept in ctx.meta: given
#: before the command or after it, the later one wins.
_CONNECTION = "ninv.connection"


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_CONNECTION, {})[param.name] = value


def _connection_options() -> list[click.Option]:
    """--url and --api-key, accepted before the command and after it."""
    return [
        click.Option(
            ["--url"],
            metavar="URL",
            expose_value=False,
            callback=_remember,
            help="The API's URL [default: $NINV_URL or http://127.0.0.1:8000].",
        ),
        click.Option(
            ["--api-key"],
            metavar="KEY",
            expose_value=False,
            callback=_remember,
            help="The API key [default: $NINV_API_KEY].",
        ),
    ]


def _client(ctx: click.Context) -> Client:
    """The client for this invocation, made on first use from the connection options."""
    client = ctx.find_object(Client)
    if client is None:
        options = ctx.meta.get(_CONNECTION, {})
        root = ctx.find_root()
        client = root.with_resource(
            Client(options.get("url"), options.get("api_key"), retries=options.get("retries", 3))
        )
        root.obj = client
    return client


def _parse_schedule(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[tuple[int, float]] | None:
    """`"0:0.05,10000:0.025"` -> [(0, 0.05), (10000, 0.025)]."""
    if value is None:
        return None
    stages: list[tuple[int, float]] = []
    for part in value.split(","):
        start, sep, rate = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError
            stages.append((int(start), float(rate)))
        except ValueError:
            raise click.BadParameter(
                f"{part.strip()!r} is not START:LR (e.g. 0:0.05,10000:0.025)"
            ) from None
    return stages


def _check_output(output: Path | None) -> None:
    if output is not None:
        check_suffix(output)


def _follow(
    client: Client, job_id: str, *, as_json: bool, timeout: float | None, since: float
) -> Job:
    """Wait for the job, at most `timeout` seconds from the monotonic time `since`; people get
    a live progress bar on stderr."""
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - since))
    try:
        if as_json:
            return client.wait(job_id, timeout=left)
        with ProgressBar(f"job {job_id[:12]}", sys.stderr) as bar:
            job = client.wait(job_id, timeout=left, on_progress=bar.update)
            bar.finish(job)
            return job
    except WaitTimeout:
        error = str(WaitTimeout(job_id, timeout or 0.0))  # the whole wait, not what was left
        notice = client.get(job_id).notice  # why it may never start: no worker for it
        raise CliError(f"{error}; {notice}" if notice else error, EXIT_SERVER) from None


def _unconverged(summary: Summary | None, allow_unconverged: bool) -> None:
    """Exit 4 for a job that finished without reaching its tolerance, unless it is allowed."""
    if summary is None or summary.converged or allow_unconverged:
        return
    click.echo(
        f"ninv-client: note: the job finished without reaching its tolerance ({summary.reason}, "
        f"residual {num(summary.residual)}, tol {num(summary.tol)}); --allow-unconverged "
        "accepts it",
        err=True,
    )
    raise click.exceptions.Exit(EXIT_UNCONVERGED)


def _finish(job: Job, allow_unconverged: bool) -> None:
    """Exit 1 unless the job succeeded, 4 if it did without reaching its tolerance."""
    if job.status != JobStatus.succeeded:
        raise click.exceptions.Exit(EXIT_FAILED)
    _unconverged(job.summary, allow_unconverged)


def _partial(summary: Summary, allow_unconverged: bool) -> None:
    """A cancelled job keeps its best W: say that it is not a finished inverse, and exit 1; an
    unconverged one exits 4 (unless allowed)."""
    if summary.reason == "cancelled":
        click.echo(
            f"ninv-client: note: the job was cancelled; this is its best W after "
            f"{summary.iterations} iterations (residual {num(summary.residual)})",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_FAILED)
    _unconverged(summary, allow_unconverged)


def _save_result(
    client: Client, job_id: str, output: Path, *, as_json: bool, allow_unconverged: bool
) -> None:
    inverse, summary = client.result(job_id)
    write_matrix(output, inverse)
    if as_json:
        _print_json({"output": str(output), "summary": summary.model_dump(mode="json")})
    else:
        shape = " x ".join(str(d) for d in inverse.shape)
        click.echo(f"wrote the {shape} inverse to {output}")
    _partial(summary, allow_unconverged)


def allow_unconverged_option(command: F) -> F:
    """The `--allow-unconverged` flag of the commands that end on a job's result."""
    return click.option(
        "--allow-unconverged",
        is_flag=True,
        help="Exit 0, not 4, when the job finished without reaching its tolerance.",
    )(command)


@click.group(
    cls=_Group,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
    params=_connection_options(),
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    expose_value=False,
    callback=_remember,
    help="Retries of a request on connection errors and 502/503/504.",
)
@click.version_option(package_name="ninv", prog_name="ninv-client")
def cli() -> None:
    """Invert matrices by gradient descent on a ninv server.

    --url and --api-key go before the command or after it (`ninv-client status JOB --url U`).
    """


def _parse_count(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A whole number, also written as a float literal as JSON allows: `100000`, `1e5`."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not number.is_integer() or number < 1:
        raise click.BadParameter(f"{value!r} is not a whole number of at least 1")
    return int(number)


def _parse_stall_window(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> int | None:
    """A whole number of steps >= 0 (0: off), also as a float literal: `20000`, `2e4`."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not number.is_integer() or number < 0:
        raise click.BadParameter(f"{value!r} is not a whole number of at least 0 (0: off)")
    return int(number)


def _read_input(file: str, fmt: str | None) -> Any:
    """The matrix from FILE, or from standard input for `-`, in the format --format names."""
    if file != "-":
        return read_matrix(file, fmt=fmt)
    if fmt is None:
        raise CliError(
            "reading standard input (-) needs --format: npy, csv, txt, json or mtx", EXIT_USAGE
        )
    return parse_matrix(sys.stdin.buffer.read(), fmt)


@cli.command()
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([suffix.lstrip(".") for suffix in SUFFIXES]),
    help="The format of FILE; needed when FILE is - (standard input) [default: its extension].",
)
@click.option("--method", type=click.Choice(get_args(Method)), help="[default: adam]")
@click.option(
    "--max-iter", callback=_parse_count, metavar="N", help="Iteration limit (100000 or 1e5)."
)
@click.option(
    "--tol", type=float, help="Stop once the residual ||WX - I||_F / sqrt(n) is this small."
)
@click.option("--dtype", type=click.Choice(get_args(DType)), help="[default: float32]")
@click.option("--device", help="auto, cpu, cuda or cuda:N [default: auto].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the initial guess.")
@click.option(
    "--lr-schedule",
    callback=_parse_schedule,
    metavar="START:LR,...",
    help='Learning-rate stages, e.g. "0:0.05,10000:0.025".',
)
@click.option(
    "--stall-window",
    callback=_parse_stall_window,
    metavar="N",
    help="Stop as stalled when the residual has not improved by 0.1% in N steps; 0 turns the "
    "stall stop off (adam and gd default: 20000).",
)
@click.option("--aux/--no-aux", default=None, help="Report the aux error against inv(X).")
@click.option("--wait", is_flag=True, help="Follow the job until it ends.")
@click.option(
    "--timeout",
    type=float,
    help="With --wait: give up after this many seconds (saying so if no live worker can run it).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Wait, then save."
)
@allow_unconverged_option
@json_option
@click.pass_context
def submit(
    ctx: click.Context,
    file: str,
    fmt: str | None,
    method: Method | None,
    max_iter: int | None,
    tol: float | None,
    dtype: DType | None,
    device: str | None,
    seed: int | None,
    lr_schedule: list[tuple[int, float]] | None,
    stall_window: int | None,
    aux: bool | None,
    wait: bool,
    timeout: float | None,
    output: Path | None,
    allow_unconverged: bool,
    as_json: bool,
) -> None:
    """Submit FILE (- reads standard input) for inversion; print the job id (with -o, wait
    and save the inverse)."""
    _check_output(output)
    matrix = _read_input(file, fmt)
    client = _client(ctx)
    options: dict[str, Any] = {
        "method": method,
        "max_iter": max_iter,
        "tol": tol,
        "dtype": dtype,
        "device": device,
        "seed": seed,
        "lr_schedule": lr_schedule,
        "stall_window": stall_window,
        "aux": aux,
    }
    following = wait or output is not None
    hold = None
    if following:
        hold = SUBMIT_HOLD_S if timeout is None else min(SUBMIT_HOLD_S, timeout)
    start = time.monotonic()
    chosen = {k: v for k, v in options.items() if v is not None}
    job = client.submit(matrix, wait=hold, **chosen)
    if not following:
        if as_json:
            _print_json(job)
        else:
            click.echo(job.id)
            click.echo(f"follow it with: ninv-client watch {job.id}", err=True)
        return
    if job.status not in FINISHED:
        job = _follow(client, job.id, as_json=as_json, timeout=timeout, since=start)
    if output is not None and job.status == JobStatus.succeeded:
        if not as_json:
            click.echo(describe(job))
        _save_result(client, job.id, output, as_json=as_json, allow_unconverged=allow_unconverged)
    else:
        click.echo(job.model_dump_json() if as_json else describe(job))
    _finish(job, allow_unconverged)


@cli.command()
@click.argument("job_id", metavar="JOB")
@json_option
@click.pass_context
def status(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show a job: status, progress, summary or error."""
    job = _client(ctx).get(job_id)
    click.echo(job.model_dump_json() if as_json else format_job(job))


@cli.command()
@click.argument("job_id", metavar="JOB")
@click.option("--timeout", type=float, help="Give up after this many seconds.")
@allow_unconverged_option
@json_option
@click.pass_context
def watch(
    ctx: click.Context,
    job_id: str,
    timeout: float | None,
    allow_unconverged: bool,
    as_json: bool,
) -> None:
    """Follow a job with a live progress bar until it ends; exit 1 unless it succeeded, 4 if
    it did without reaching its tolerance."""
    job = _follow(_client(ctx), job_id, as_json=as_json, timeout=timeout, since=time.monotonic())
    click.echo(job.model_dump_json() if as_json else describe(job))
    _finish(job, allow_unconverged)


@cli.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Save it here."
)
@allow_unconverged_option
@json_option
@click.pass_context
def result(
    ctx: click.Context, job_id: str, output: Path | None, allow_unconverged: bool, as_json: bool
) -> None:
    """Fetch a finished job's inverse: into -o OUT (format by extension), else to stdout; exit
    4 if it did not reach its tolerance."""
    _check_output(output)
    client = _client(ctx)
    if output is not None:
        _save_result(client, job_id, output, as_json=as_json, allow_unconverged=allow_unconverged)
        return
    inverse, summary = client.result(job_id)
    if as_json:
        click.echo(Result(inverse=inverse.tolist(), summary=summary).model_dump_json())
    else:
        rows = inverse.reshape(-1, inverse.shape[-1]) if inverse.ndim > 1 else inverse[None]
        for row in np.asarray(rows, dtype=np.float64).tolist():
            click.echo(" ".join(repr(value) for value in row))
    _partial(summary, allow_unconverged)


@cli.command()
@click.argument("job_id", metavar="JOB")
@json_option
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job: a queued one at once, a running one at its next progress tick."""
    job = _client(ctx).cancel(job_id)
    if as_json:
        click.echo(job.model_dump_json())
    elif job.status == JobStatus.cancelled:
        click.echo(f"job {job.id} cancelled")
    else:
        click.echo(f"job {job.id} is {job.status.value}: cancel requested")


@cli.command(name="list")
@click.option(
    "--status",
    "status_",
    type=click.Choice([s.value for s in JobStatus]),
    help="Only jobs in this state.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many jobs.")
@json_option
@click.pass_context
def list_(ctx: click.Context, status_: str | None, limit: int | None, as_json: bool) -> None:
    """List your jobs, newest first."""
    jobs: list[Job] = []
    for job in _client(ctx).list(status_):
        if limit is not None and len(jobs) >= limit:
            break
        jobs.append(job)
    if as_json:
        _print_json([job.model_dump(mode="json") for job in jobs])
    elif jobs:
        click.echo(format_jobs(jobs))
    else:
        click.echo("no jobs", err=True)


@cli.command()
@click.argument("job_id", metavar="JOB")
@json_option
@click.pass_context
def history(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Print a job's loss curve: iteration, loss, residual, aux error, learning rate."""
    points = _client(ctx).history(job_id)
    if as_json:
        _print_json({"points": [point.model_dump(mode="json") for point in points]})
    elif points:
        click.echo(format_history(points))
    else:
        click.echo(f"job {job_id} has no history yet", err=True)


@cli.command()
@click.argument("job_id", metavar="JOB")
@json_option
@click.pass_context
def delete(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Forget a finished job and its data."""
    _client(ctx).delete(job_id)
    if as_json:
        _print_json({"id": job_id, "deleted": True})
    else:
        click.echo(f"deleted job {job_id}")


@cli.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("loss.png"),
    show_default=True,
    help="The image (.png, .svg, .pdf).",
)
@json_option
@click.pass_context
def plot(ctx: click.Context, job_id: str, output: Path, as_json: bool) -> None:
    """Plot loss, residual and aux error against iteration on log-log axes, with the lr stages,
    the tolerance and cond marked (needs `ninv[plot]`)."""
    from client.plot import plot_history

    _need_matplotlib()
    client = _client(ctx)
    job = client.get(job_id)
    if job.options.method == "exact":
        raise CliError(
            f"job {job.id} used method exact (LU): one step, so it has no loss curve to plot "
            "(`ninv-client status` shows its residual; `ninv-client compare` sets it beside "
            "the iterative methods)",
            EXIT_USAGE,
        )
    points = client.history(job_id)
    title = f"job {job.id}: {job.n} x {job.n} {job.options.method}, {job.options.dtype}"
    try:
        plot_history(points, output, title=title, summary=job.summary)
    except ValueError as error:
        raise CliError(f"{output}: {error}", EXIT_USAGE) from None
    except OSError as error:
        raise CliError(f"{output}: cannot write: {error.strerror or error}", EXIT_USAGE) from None
    if as_json:
        _print_json({"output": str(output), "points": len(points)})
    else:
        click.echo(f"wrote {output} ({len(points)} points)")


def _need_matplotlib() -> None:
    """Fail before any request, with the install line, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CliError(
            "plotting needs matplotlib, which is not installed: pip install 'ninv[plot]'",
            EXIT_USAGE,
        ) from None


def _parse_methods(ctx: click.Context, param: click.Parameter, value: str) -> list[Method]:
    """`adam,cg` -> ["adam", "cg"], each a known method."""
    known = get_args(Method)
    methods = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: the methods are {', '.join(known)}"
        )
    return [cast("Method", m) for m in methods]  # checked against Method above


@cli.command()
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([suffix.lstrip(".") for suffix in SUFFIXES]),
    help="The format of FILE; needed when FILE is - (standard input) [default: its extension].",
)
@click.option(
    "--methods",
    default=",".join(DEFAULT_METHODS),
    show_default=True,
    callback=_parse_methods,
    help="The methods to run, comma-separated.",
)
@click.option("--max-iter", callback=_parse_count, metavar="N", help="Iteration limit of each.")
@click.option("--tol", type=float, help="Residual tolerance of each [default: each method's].")
@click.option("--dtype", type=click.Choice(get_args(DType)), help="[default: float32]")
@click.option("--device", help="auto, cpu, cuda or cuda:N [default: auto].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of adam's and gd's start.")
@click.option(
    "--stall-window",
    callback=_parse_stall_window,
    metavar="N",
    help="Stall window of each (0: off).",
)
@click.option("--timeout", type=float, help="Give up after this many seconds in all.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("compare.png"),
    show_default=True,
    help="The image (.png, .svg, .pdf).",
)
@json_option
@click.pass_context
def compare(
    ctx: click.Context,
    file: str,
    fmt: str | None,
    methods: list[Method],
    max_iter: int | None,
    tol: float | None,
    dtype: DType | None,
    device: str | None,
    seed: int | None,
    stall_window: int | None,
    timeout: float | None,
    output: Path,
    as_json: bool,
) -> None:
    """Run FILE through several methods on the server and overlay their curves in one chart:
    which method gets where, and when. Prints a table of their outcomes; exits 0 once the
    chart is written, whatever the outcomes (needs `ninv[plot]`)."""
    from client._compare import compare as run_compare
    from client._compare import curves, format_compare
    from client.plot import plot_compare

    _need_matplotlib()
    matrix = _read_input(file, fmt)
    options = {
        "max_iter": max_iter,
        "tol": tol,
        "dtype": dtype,
        "device": device,
        "seed": seed,
        "stall_window": stall_window,
    }
    runs = run_compare(
        _client(ctx),
        matrix,
        methods,
        timeout=timeout,
        **{k: v for k, v in options.items() if v is not None},
    )
    shape = " x ".join(str(d) for d in np.shape(matrix))
    cond = next((r.job.summary.cond for r in runs if r.job.summary), None)
    title = f"{shape} matrix, cond {num(cond)}, {dtype or 'float32'}: residual by method"
    try:
        plot_compare(curves(runs), output, title=title)
    except ValueError as error:
        raise CliError(f"{output}: {error}", EXIT_USAGE) from None
    except OSError as error:
        raise CliError(f"{output}: cannot write: {error.strerror or error}", EXIT_USAGE) from None
    if as_json:
        _print_json(
            {
                "output": str(output),
                "runs": [
                    {
                        "method": run.method,
                        "job": run.job.model_dump(mode="json"),
                        "points": len(run.points),
                    }
                    for run in runs
                ],
            }
        )
    else:
        click.echo(format_compare(runs))
        click.echo(f"wrote {output}")


for _command in cli.commands.values():  # every command takes --url and --api-key too
    _command.params.extend(_connection_options())


def main(argv: list[str] | None = None) -> NoReturn:
    """The `ninv-client` console script."""
    cli.main(args=argv, prog_name="ninv-client")
    raise SystemExit(0)  # pragma: no cover - click's standalone mode always exits


if __name__ == "__main__":
    main()
