"""`.npy` bytes <-> numpy arrays, for every side (API, worker, client): numpy only, never pickle."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NpyHeader", "from_npy", "read_header", "to_npy"]


def to_npy(array: np.ndarray[Any, Any]) -> bytes:
    """The `.npy` bytes of an array; ValueError for an object array (it would need pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def from_npy(data: bytes) -> np.ndarray[Any, Any]:
    """The array in `.npy` bytes; ValueError (or EOFError) when they are not a plain `.npy`."""
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise ValueError("not a .npy array")
    return array


@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` header says, read before any of the data."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]
    offset: int  # where the data starts

    def array(self, data: bytes) -> np.ndarray[Any, Any]:
        """The data as an array (a view of `data`); its length must have been checked."""
        count = int(np.prod(self.shape, dtype=np.int64))
        flat = np.frombuffer(data, dtype=self.dtype, count=count, offset=self.offset)
        return flat.reshape(self.shape, order="F" if self.fortran_order else "C")


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
_MALFORMED = (ValueError, EOFError, SyntaxError, TypeError)


def read_header(data: bytes) -> NpyHeader:
    """The header of `.npy` bytes (versions 1.0 and 2.0), or ValueError saying what is wrong."""
    fp = io.BytesIO(data)
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
