"""Dependencies the handlers declare, as Annotated aliases; tests override them or pass settings.

They are `async def` although they do no I/O: FastAPI would run plain functions in the thread
pool, a hop that costs more than the work.
"""

from __future__ import annotations

import re
from typing import Annotated

from celery import Celery
from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from ninv.settings import Settings
from ninv.store import JobStore
from service.state import Resources

__all__ = [
    "JOB_ID_PATTERN",
    "CeleryDep",
    "JobId",
    "OwnerDep",
    "ResourcesDep",
    "SettingsDep",
    "StoreDep",
    "get_app_settings",
    "get_celery",
    "get_owner",
    "get_resources",
    "get_store",
]

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key from NINV_API_KEYS (not needed when none are configured).",
)


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


async def get_app_settings(resources: Annotated[Resources, Depends(get_resources)]) -> Settings:
    return resources.settings


async def get_store(resources: Annotated[Resources, Depends(get_resources)]) -> JobStore:
    return resources.store


async def get_celery(resources: Annotated[Resources, Depends(get_resources)]) -> Celery:
    return resources.celery


async def get_owner(
    resources: Annotated[Resources, Depends(get_resources)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The caller's owner id from its bearer key (401 when keys are configured and it has none)."""
    return resources.keys.owner(credentials.credentials if credentials else None)


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
OwnerDep = Annotated[str, Depends(get_owner)]


def _job_id(value: str) -> str:
    """A job id, or an error in words (a pattern constraint would quote its regex)."""
    if not _JOB_ID.match(value):
        raise PydanticCustomError(
            "job_id",
            "{given} is not a job id: a job id is 32 lowercase hex digits, as POST /invert "
            "answered",
            {"given": repr(value[:40])},
        )
    return value


JobId = Annotated[
    str,
    Path(
        description="a job id: 32 lowercase hex digits",
        examples=["3f2b9c4e8d1a4b7f9e6c5d4a3b2c1d0e"],
        json_schema_extra={"pattern": JOB_ID_PATTERN},
    ),
    AfterValidator(_job_id),
]
