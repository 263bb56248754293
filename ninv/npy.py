"""`.npy` bytes <-> numpy arrays, for every side (API, worker, client): numpy only, never pickle."""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NpyHeader", "from_npy", "read_header", "to_npy"]


def to_npy(array: np.ndarray[Any, Any]) -> bytes:
    """The `.npy` bytes of an array, as `np.save` writes them; ValueError for an object array
    (it would need pickle)."""
    if array.dtype.hasobject or array.dtype.fields is not None:
        buffer = io.BytesIO()  # numpy's own path: its refusal, or a structured header
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()
    fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)
    return _npy_header(array.dtype, array.shape, fortran) + array.tobytes("F" if fortran else "C")


@functools.lru_cache(maxsize=256)
def _npy_header(dtype: np.dtype[Any], shape: tuple[int, ...], fortran: bool) -> bytes:
    """The header `np.save` writes, made once per distinct one: making it costs more than the
    rest of writing a 16x16 matrix (a worker writes one per finished job)."""
    buffer = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(dtype)
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": fortran, "shape": shape}
    )
    return buffer.getvalue()


def from_npy(data: bytes) -> np.ndarray[Any, Any]:
    """The array in `.npy` bytes (a copy of their data); ValueError when they are not a plain
    `.npy` of numbers (an object array would need pickle) or their length is not the header's."""
    header = read_header(data)
    if header.dtype.hasobject:
        raise ValueError("an object-dtype .npy would need pickle")
    if len(data) - header.offset != header.nbytes:
        raise ValueError(f".npy data is not the {header.nbytes} bytes its header says")
    return header.array(data).copy()


@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` header says, read before any of the data."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]
    offset: int  # where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def array(self, data: bytes) -> np.ndarray[Any, Any]:
        """The data as an array (a view of `data`); its length must have been checked."""
        count = math.prod(self.shape)
        flat = np.frombuffer(data, dtype=self.dtype, count=count, offset=self.offset)
        return flat.reshape(self.shape, order="F" if self.fortran_order else "C")


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_MALFORMED = (ValueError, EOFError, SyntaxError, TypeError)


def read_header(data: bytes) -> NpyHeader:
    """The header of `.npy` bytes (versions 1.0 and 2.0), or ValueError saying what is wrong."""
    return _parse_header(bytes(data[: _header_end(data)]))


def _header_end(data: bytes) -> int:
    """Where the header of `.npy` bytes ends, as its length field says (checked when parsed)."""
    if data[6:8] == b"\x01\x00" and len(data) >= 10:
        return 10 + int.from_bytes(data[8:10], "little")
    if data[6:8] == b"\x02\x00" and len(data) >= 12:
        return 12 + int.from_bytes(data[8:12], "little")
    return len(data)


@functools.lru_cache(maxsize=256)
def _parse_header(prefix: bytes) -> NpyHeader:
    """A header parsed by numpy, once per distinct header: numpy evaluates its text as a Python
    literal, which costs more than the rest of reading a 16x16 matrix, and the jobs of a
    service mostly share a few shapes and dtypes."""
    fp = io.BytesIO(prefix)
    try:
        version = np.lib.format.read_magic(fp)
        reader = _HEADER_READERS.get(version)
        if reader is not None:
            shape, fortran, dtype = reader(fp)
    except _MALFORMED as exc:
        raise ValueError(f"not a valid .npy file: {exc}") from None
    if reader is None:
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    return NpyHeader(tuple(int(d) for d in shape), bool(fortran), dtype, fp.tell())
