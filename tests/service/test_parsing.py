"""service.parsing without HTTP: what is accepted, and how it is stored."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from service.errors import ProblemError
from service.parsing import Limits, load_npy, parse_invert, parse_json, request_fingerprint

LIMITS = Limits(max_n=64, max_batch=8, max_body_bytes=1 << 20)


def save(array: np.ndarray[Any, Any], version: tuple[int, int] | None = None) -> bytes:
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array)
    else:
        np.lib.format.write_array(buf, array, version=version)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [
        ("<f8", np.float64),
        (">f8", np.float64),
        ("<f4", np.float32),
        (">f4", np.float32),
        ("<f2", np.float32),
        ("<i8", np.float64),
        ("<u1", np.float64),
    ],
)
def test_npy_dtypes(dtype: str, stored: type) -> None:
    array = (np.arange(9).reshape(3, 3) + 1).astype(dtype)
    matrix, input_dtype = load_npy(save(array), LIMITS)
    assert matrix.dtype == stored and matrix.dtype.isnative
    assert input_dtype == str(np.dtype(dtype))
    np.testing.assert_array_equal(matrix, array.astype(np.float64))


def test_npy_fortran_order_and_version_2() -> None:
    array = np.asfortranarray(np.arange(16, dtype=np.float64).reshape(4, 4))
    for version in ((1, 0), (2, 0)):
        matrix, _ = load_npy(save(array, version), LIMITS)
        np.testing.assert_array_equal(matrix, array)
        assert matrix.flags.c_contiguous


def test_npy_header_is_checked_before_the_data() -> None:
    # a header that claims a huge array, with no data: refused without allocating it
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    with pytest.raises(ProblemError) as info:
        load_npy(header.getvalue(), LIMITS)
    assert info.value.status == 413


def test_json_matrix_is_float64_and_batches_stack() -> None:
    parsed = parse_json(b'{"matrix": [[[1, 2], [3, 4]], [[5, 6], [7, 8.5]]], "seed": 3}', LIMITS)
    assert parsed.matrix.dtype == np.float64
    assert (parsed.n, parsed.batch, parsed.options.seed) == (2, 2, 3)
    np.testing.assert_array_equal(np.load(io.BytesIO(parsed.npy())), parsed.matrix)


def test_content_type_parameters_are_ignored() -> None:
    parsed = parse_invert(b'{"matrix": [[1]]}', "Application/JSON; charset=utf-8", [], LIMITS)
    assert parsed.n == 1


def fingerprint(body: bytes, content_type: str = "application/json", query: Any = ()) -> str:
    return request_fingerprint(parse_invert(body, content_type, list(query), LIMITS))


def test_fingerprint_is_the_parsed_request_not_its_bytes() -> None:
    base = fingerprint(b'{"matrix": [[1, 2], [3, 4]], "method": "cg"}')
    assert base == fingerprint(b'{ "method":"cg",\n "matrix":[[1,2],[3.0,4]] }')
    assert base == fingerprint(
        save(np.array([[1, 2], [3, 4]], dtype=np.float64)), "application/x-npy", [("method", "cg")]
    )
    assert base != fingerprint(b'{"matrix": [[1, 2], [3, 5]], "method": "cg"}')
    assert base != fingerprint(b'{"matrix": [[1, 2], [3, 4]], "method": "adam"}')
    assert base != fingerprint(
        save(np.array([[1, 2], [3, 4]], dtype=np.float32)), "application/x-npy", [("method", "cg")]
    )


def test_json_bodies_orjson_refuses_are_read_by_json() -> None:
    # UTF-16 (json detects it; orjson reads UTF-8 only), and a number past float64's range
    # (orjson refuses it; json reads infinity, which the finite check refuses as before).
    utf16 = parse_json('{"matrix": [[2, 0], [0, 4]]}'.encode("utf-16"), LIMITS)
    np.testing.assert_array_equal(utf16.matrix, [[2.0, 0.0], [0.0, 4.0]])
    with pytest.raises(ProblemError) as info:
        parse_json(b'{"matrix": [[1e400]]}', LIMITS)
    assert info.value.status == 422 and "overflows float64" in str(info.value.detail)


def test_json_numbers_parse_to_the_same_float64_as_the_json_module() -> None:
    rng = np.random.default_rng(0)
    rows = (rng.standard_normal((8, 8)) * 10.0 ** rng.integers(-300, 300, (8, 8))).tolist()
    rows[0][:3] = [5e-324, 123456789012345678901234567890, -0.0]
    body = json.dumps({"matrix": rows}).encode()
    parsed = parse_json(body, LIMITS)
    expected = np.array(json.loads(body)["matrix"], dtype=np.float64)
    np.testing.assert_array_equal(parsed.matrix, expected)
    assert np.signbit(parsed.matrix[0, 2])
