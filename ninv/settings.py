"""Typed settings, read once from NINV_* environment variables and injected where needed."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Every NINV_ setting with its default; the README's configuration table mirrors this."""

    model_config = SettingsConfigDict(env_prefix="NINV_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="Redis for broker and job store; unset runs the embedded default (SQLite "
        "and a filesystem broker under data_dir).",
    )
    redis_prefix: str = Field(default="ninv", description="key prefix of every Redis key")
    data_dir: Path = Field(
        default=Path(".ninv"), description="where the embedded default keeps its state"
    )
    api_keys: str = Field(
        default="",
        description="comma-separated API keys; empty serves without auth, on loopback only",
    )
    host: str = Field(default="127.0.0.1", description="address `ninv serve` binds")
    port: int = Field(default=8000, ge=1, le=65535, description="port `ninv serve` binds")
    max_n: int = Field(default=2048, ge=1, description="largest matrix dimension accepted")
    max_batch: int = Field(default=4096, ge=1, description="largest b of a (b, n, n) input")
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="largest request body accepted"
    )
    max_json_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="largest JSON request body; larger matrices go as .npy (8 bytes an entry)",
    )
    max_large_parses: int = Field(
        default=2, ge=1, description="request bodies over 64 KiB parsed at once; others wait"
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="a request body must arrive within this (else 408)"
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="a new connection must send its request headers within this"
    )
    keepalive_s: int = Field(
        default=5, ge=1, description="an idle keep-alive connection is closed after this"
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="connections (and requests) open at once; a request arriving when this "
        "many are open is answered 503",
    )
    metrics_key: str = Field(
        default="",
        description="bearer key for /metrics; unset with API keys: /metrics answers loopback only",
    )
    retention_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="how long finished jobs are kept"
    )
    lease_s: float = Field(
        default=30.0, gt=0, description="a running job's lease; a worker renews it every tick"
    )
    requeue_after_s: float = Field(
        default=60.0,
        gt=0,
        description="a job queued this long without a claim gets its broker message re-sent",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="runs of a job whose workers died before it fails"
    )
    job_timeout_s: int = Field(
        default=24 * 3600, ge=1, description="longest a job may run; sets the broker timeout"
    )
    progress_every_s: float = Field(
        default=0.5, gt=0, description="how often a running job reports progress"
    )
    history_max_points: int = Field(
        default=2000,
        ge=10,
        le=10_000,  # the solver keeps at most 10,000 points of a curve while it runs
        description="points kept of a job's loss curve: a point per check, thinned evenly in "
        "log-iteration to this many",
    )
    device: str = Field(default="auto", description="a worker's device: auto, cpu or cuda:N")
    batch_max: int = Field(
        default=256, ge=0, description="jobs a worker solves together; 0 or 1 turns batching off"
    )
    batch_wait_ms: int = Field(
        default=20, ge=0, description="how long a worker waits for more compatible jobs"
    )
    batch_max_n: int = Field(
        default=64, ge=1, description="matrices larger than this are never batched"
    )
    checkpoint_s: float = Field(
        default=60.0,
        ge=0,
        description="how often a running job saves its whole solver state, to resume from "
        "after its worker dies; 0 turns periodic checkpoints off",
    )
    checkpoint_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="largest checkpoint stored; a larger one is skipped (and logged), and its "
        "job is then never preempted",
    )
    slice_s: float = Field(
        default=10.0,
        ge=0,
        description="time slice: a job that ran this long while other jobs wait checkpoints "
        "and goes back to the queue; a job alone is never interrupted; 0 turns slicing off",
    )
    max_wait_s: float = Field(
        default=30.0, ge=0, description="longest a `Prefer: wait=N` request is held"
    )
    inline_max_entries: int = Field(
        default=16384,
        ge=0,
        description="largest inverse (in entries: 128x128) that the answer to a `Prefer: wait` "
        "request carries inline, so that a small job is one request; 0 turns it off",
    )
    poll_s: float = Field(
        default=2.0,
        gt=0,
        description="how often event streams and waits re-read a job when no change notice "
        "arrives (notices wake them at once; this is the fallback)",
    )
    max_active_per_key: int = Field(
        default=10_000,
        ge=1,
        description="most jobs one API key may have queued or running; beyond it, 429",
    )

    @property
    def api_key_list(self) -> list[str]:
        return [key.strip() for key in self.api_keys.split(",") if key.strip()]

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: SQLite store and filesystem broker."""
        return not self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
