"""The workers that serve the queue, as they announce themselves."""

from __future__ import annotations

from fastapi import APIRouter

from ninv.schemas import WorkerList
from service import examples
from service.deps import OwnerDep, StoreDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/workers",
    response_model=WorkerList,
    summary="List the live workers",
    responses={
        200: {"content": {"application/json": {"example": {"workers": [examples.WORKER]}}}},
        **examples.problems(401, 503),
    },
)
def list_workers(store: StoreDep, _: OwnerDep) -> WorkerList:
    """Workers that announced themselves within a lease: id, device, versions, last seen."""
    return WorkerList(workers=store.live_workers())
