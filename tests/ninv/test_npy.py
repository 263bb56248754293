"""`.npy` bytes <-> arrays: what np.save writes reads back equal, to_npy writes what np.save
writes, and bad bytes are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest

from ninv.npy import from_npy, to_npy


@pytest.mark.parametrize(
    "array",
    [
        np.arange(256, dtype=np.float64).reshape(16, 16),
        np.asfortranarray(np.arange(15, dtype=np.float32).reshape(3, 5)),
        np.arange(6, dtype=np.int16).reshape(2, 3),
        np.zeros((2, 0, 0)),
    ],
)
def test_what_numpy_saves_reads_back_equal_and_writable(array: np.ndarray) -> None:
    back = from_npy(to_npy(array))
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable  # a copy, not a view of the bytes


def _saved(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "array",
    [
        np.arange(256, dtype=np.float32).reshape(16, 16),
        np.arange(256, dtype=np.float32).reshape(16, 16).T,  # Fortran-ordered
        np.arange(256, dtype=np.float64).reshape(16, 16)[::2, 1:],  # neither order
        np.arange(8, dtype=">i4").reshape(2, 2, 2),  # big-endian
        np.ones((3,), dtype=np.complex128),
        np.array(3.0),
        np.zeros((2, 0, 0), dtype=bool),
        np.zeros(2, dtype=[("a", np.float32), ("b", np.int8)]),  # structured: numpy's path
    ],
)
def test_to_npy_writes_the_bytes_np_save_writes(array: np.ndarray) -> None:
    # Twice: the second call's header is the one kept from the first.
    assert to_npy(array) == _saved(array)
    assert to_npy(array) == _saved(array)


def test_to_npy_refuses_an_object_array() -> None:
    with pytest.raises(ValueError, match="pickle"):
        to_npy(np.array([1, "a"], dtype=object))


def test_a_header_seen_before_reads_the_same_for_other_data() -> None:
    # Headers are parsed once and kept: the data must still be each call's own.
    first, second = np.ones((4, 4)), np.full((4, 4), 7.0)
    assert from_npy(to_npy(first))[0, 0] == 1.0
    assert from_npy(to_npy(second))[0, 0] == 7.0


def test_version_2_headers_are_read() -> None:
    buffer = io.BytesIO()
    array = np.eye(3)
    np.lib.format.write_array(buffer, array, version=(2, 0))
    np.testing.assert_array_equal(from_npy(buffer.getvalue()), array)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (to_npy(np.eye(4))[:-1], "not the 128 bytes"),
        (to_npy(np.eye(4)) + b"\0", "not the 128 bytes"),
        (to_npy(np.eye(4))[:20], "not a valid .npy"),
        (b"\x93NUMPY\x03\x00", "unsupported .npy format version 3.0"),
        (b"hello", "not a valid .npy"),
    ],
)
def test_bad_bytes_are_a_value_error_that_says_why(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_npy(data)


def test_an_object_array_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        from_npy(buffer.getvalue())
