"""What the live workers (as they announce themselves in the store) can run.

Every worker takes jobs from one queue. A job for `auto` or `cpu` runs on any worker; a job for
`cuda` or `cuda:N` needs a worker whose process sees that CUDA device, or it fails there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ninv.schemas import Job, JobStatus, WorkerInfo

__all__ = ["device_problem", "job_notice", "noted", "serves", "summary"]

START_WORKER = "start one with `ninv worker`"


def _cuda_index(device: str) -> int | None:
    """N for `cuda:N` (0 for `cuda`), None for a device that is not CUDA."""
    if not device.startswith("cuda"):
        return None
    return int(device.partition(":")[2] or 0)


def serves(worker: WorkerInfo, device: str) -> bool:
    """Whether a job asking for `device` can run on this worker."""
    index = _cuda_index(device)
    return index is None or index < worker.cuda_devices


def summary(workers: Sequence[WorkerInfo]) -> str:
    """`2 live: cuda:0 on gpu1, cpu on gpu1`, or `none live`."""
    if not workers:
        return "none live"
    return f"{len(workers)} live: " + ", ".join(f"{w.device} on {w.hostname}" for w in workers)


def device_problem(device: str, workers: Sequence[WorkerInfo]) -> str | None:
    """Why live workers cannot run a job for `device` (a CUDA device none of them has), else None.

    With no live worker at all nothing is known about devices: the job is taken, and its view
    says that it waits for a worker.
    """
    if not workers or any(serves(worker, device) for worker in workers):
        return None
    return (
        f"no live worker has CUDA device {device} (workers: {summary(workers)}); use device "
        f"auto or cpu, or start a worker on a GPU machine: ninv worker --device {device}"
    )


def job_notice(job: Job, workers: Sequence[WorkerInfo]) -> str | None:
    """For a queued job no live worker can run: why it waits, and what to start."""
    if job.status != JobStatus.queued:
        return None
    if not workers:
        return f"no worker is running, so this job waits in the queue; {START_WORKER}"
    problem = device_problem(job.options.device, workers)
    return None if problem is None else f"this job waits in the queue: {problem}"


def noted(job: Job, workers: Callable[[], Sequence[WorkerInfo]]) -> Job:
    """The job with its notice; the workers are asked for only when the job is queued."""
    if job.status != JobStatus.queued:
        return job
    return job.model_copy(update={"notice": job_notice(job, workers())})
