"""Property-based requests from the app's own OpenAPI schema: none may get a 5xx."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from schemathesis.checks import not_a_server_error

from ninv.settings import Settings
from service import create_app
from tests.helpers import REDIS_URL, drop_redis_prefix

MAX_EXAMPLES = 30
PREFIX = f"test-{uuid.uuid4().hex}"


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.bool_, np.complex64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
).map(_npy)
# valid and invalid .npy bodies, truncated ones and plain noise
schemathesis.openapi.media_type(
    "application/x-npy",
    st.one_of(
        _arrays,
        st.tuples(_arrays, st.integers(0, 200)).map(lambda pair: pair[0][: pair[1]]),
        st.binary(max_size=300),
    ),
)

# The schema must exist at collection time, so this module builds its own app. No worker runs
# here, so a generated `Prefer: wait=N` would hold its request for N seconds, past the test
# client's read timeout; a short cap keeps the hold (and its 202 answer) in the fuzzed space.
APP = create_app(
    Settings(
        redis_url=REDIS_URL, redis_prefix=PREFIX, max_n=16, max_body_bytes=65536, max_wait_s=0.2
    )
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    APP.state.resources.close()
    drop_redis_prefix(PREFIX)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    case.call_and_validate(checks=[not_a_server_error])
