"""Matrix files by extension: .npy, .csv, .txt, .json and .mtx (Matrix Market).

`read_matrix` returns a numeric, finite, square (n, n) array (or a (b, n, n) batch from .npy and
.json); `write_matrix` writes one. Anything wrong with a file raises MatrixFileError, whose one-line
message names the file and the problem. Matrix Market is read and written here (array and
coordinate formats, real and integer fields), since scipy is no client dependency.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from client.errors import MatrixFileError

__all__ = ["SUFFIXES", "check_suffix", "parse_matrix", "read_matrix", "write_matrix"]

#: The extensions read_matrix and write_matrix understand.
SUFFIXES = (".npy", ".csv", ".txt", ".json", ".mtx")

PathLike = str | os.PathLike[str]
#: What errors name as the matrix's source: a file, or "<stdin>".
Source = Path | str


def check_suffix(path: PathLike) -> str:
    """The file's extension, lower-cased; MatrixFileError unless it is one of SUFFIXES."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(SUFFIXES)
        shown = f"'{suffix}'" if suffix else "no extension"
        raise MatrixFileError(path, f"unknown file type ({shown}); use one of {known}")
    return suffix


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MatrixFileError(path, f"cannot read: {exc.strerror or _first_line(exc)}") from None


def _text(where: Source, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MatrixFileError(where, "not a text file (it is not UTF-8)") from None


def read_matrix(path: PathLike, *, fmt: str | None = None) -> NDArray[Any]:
    """Read a matrix from a file, choosing the format by its extension (or `fmt`).

    Args:
        path: a .npy, .csv, .txt, .json or .mtx file.
        fmt: the format ("npy", "csv", ...), when the file's extension does not say it.

    Returns:
        An (n, n) array of real numbers; .npy and .json may also hold a (b, n, n) batch.

    Raises:
        MatrixFileError: unknown extension, unreadable file, not a matrix, ragged rows, empty,
            not square, not numbers, or NaN/infinity.
    """
    path = Path(path)
    suffix = check_suffix(path) if fmt is None else fmt
    return parse_matrix(_read_bytes(path), suffix, name=path)


def parse_matrix(data: bytes, suffix: str, *, name: Source = "<stdin>") -> NDArray[Any]:
    """Read a matrix from the bytes of a file in the format its `suffix` names (`.npy`, ...).

    As `read_matrix`, for bytes from elsewhere (standard input); errors name `name`.
    """
    suffix = suffix.lower() if suffix.startswith(".") else f".{suffix.lower()}"
    if suffix not in SUFFIXES:
        known = ", ".join(SUFFIXES)
        raise MatrixFileError(name, f"unknown format '{suffix}'; use one of {known}")
    if suffix == ".npy":
        array = _read_npy(name, data)
    elif suffix in (".csv", ".txt"):
        array = _read_delimited(name, _text(name, data))
    elif suffix == ".json":
        array = _read_json(name, _text(name, data))
    else:
        array = _read_mtx(name, _text(name, data))
    _check_matrix(name, array, batch_ok=suffix in (".npy", ".json"))
    return array


def _check_matrix(path: Source, array: NDArray[Any], *, batch_ok: bool) -> None:
    """Raise MatrixFileError unless `array` is a numeric, finite, non-empty square matrix."""
    if array.dtype.kind == "c":
        raise MatrixFileError(path, "complex numbers are not supported")
    if array.dtype.kind not in "biuf":
        raise MatrixFileError(path, f"not a matrix of numbers (dtype {array.dtype})")
    if array.size == 0:
        raise MatrixFileError(path, f"empty: no numbers (shape {array.shape})")
    if array.ndim == 3 and batch_ok:
        if array.shape[1] != array.shape[2]:
            b, rows, cols = array.shape
            raise MatrixFileError(
                path, f"not square: a batch of {b} matrices of {rows} rows x {cols} columns"
            )
    elif array.ndim != 2:
        expected = "2-D (n, n) or 3-D (b, n, n)" if batch_ok else "2-D (n, n)"
        raise MatrixFileError(path, f"not a matrix: {array.ndim}-D, expected {expected}")
    elif array.shape[0] != array.shape[1]:
        rows, cols = array.shape
        raise MatrixFileError(path, f"not square: {rows} rows x {cols} columns")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        where = tuple(int(i) + 1 for i in np.argwhere(~np.isfinite(array))[0])
        label = "row {}, column {}".format(*where[-2:])
        if len(where) == 3:
            label = f"matrix {where[0]}, {label}"
        raise MatrixFileError(path, f"NaN or infinity at {label}")


# -- .npy ---------------------------------------------------------------------------------------


#: The first bytes of every .npy file.
_NPY_MAGIC = b"\x93NUMPY"


def _read_npy(path: Source, data: bytes) -> NDArray[Any]:
    if not data:
        raise MatrixFileError(path, "empty: no numbers")
    if not data.startswith(_NPY_MAGIC):
        try:
            data[:4096].decode("utf-8")
        except UnicodeDecodeError:
            raise MatrixFileError(path, "not a .npy file (it does not start as one)") from None
        raise MatrixFileError(
            path,
            "not a .npy file: it holds text; give it the extension of its format "
            "(.csv, .txt, .json or .mtx)",
        )
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        message = _first_line(exc)
        if "pickle" in message.lower():  # a real .npy of dtype object
            message = "it holds Python objects, not numbers"
        raise MatrixFileError(path, f"not a valid .npy file: {message}") from None
    except (EOFError, OSError):
        raise MatrixFileError(path, "not a valid .npy file: it is truncated") from None
    if not isinstance(array, np.ndarray):
        raise MatrixFileError(path, "not a valid .npy file")
    return array


# -- .csv and .txt ------------------------------------------------------------------------------


def _read_delimited(path: Source, text: str) -> NDArray[Any]:
    """Comma-separated when any data line has a comma, else whitespace-separated; `#` comments."""
    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise MatrixFileError(path, "empty: no numbers")
    delimiter = "," if any("," in line for _, line in lines) else None
    try:
        return np.loadtxt(
            [line for _, line in lines], delimiter=delimiter, comments="#", ndmin=2, dtype=float
        )
    except ValueError:
        pass
    # numpy's message is about its own arguments: find the first bad line and say it plainly.
    width: int | None = None
    for number, line in lines:
        cells = [cell.strip() for cell in line.split(delimiter)]
        for column, cell in enumerate(cells, start=1):
            try:
                float(cell)
            except ValueError:
                shown = f"'{cell}'" if cell else "an empty value"
                raise MatrixFileError(
                    path, f"line {number}, column {column}: {shown} is not a number"
                ) from None
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise MatrixFileError(
                path,
                f"ragged rows: line {number} has {len(cells)} values, the first row has {width}",
            )
    raise MatrixFileError(path, "cannot parse as a table of numbers")


# -- .json --------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _rows_of(path: Source, rows: object, prefix: str = "") -> list[list[float]]:
    """Check a list of equally long rows of numbers, naming the first bad place."""
    if not isinstance(rows, list):
        raise MatrixFileError(path, f"not a matrix: {prefix}expected a list of rows")
    width: int | None = None
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, list):
            raise MatrixFileError(path, f"not a matrix: {prefix}row {i} is not a list of numbers")
        for j, value in enumerate(row, start=1):
            if not _is_number(value):
                raise MatrixFileError(
                    path, f"{prefix}row {i}, column {j}: {json.dumps(value)} is not a number"
                )
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise MatrixFileError(
                path, f"ragged rows: {prefix}row {i} has {len(row)} values, row 1 has {width}"
            )
    return rows


def _read_json(path: Source, text: str) -> NDArray[Any]:
    """A list of rows, a list of such matrices (a batch), or {"matrix": ...} / {"inverse": ...}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MatrixFileError(path, f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise MatrixFileError(path, "not a matrix: nested too deeply") from None
    if isinstance(data, dict):
        key = next((k for k in ("matrix", "inverse") if k in data), None)
        if key is None:
            raise MatrixFileError(path, 'not a matrix: an object without a "matrix" key')
        data = data[key]
    if not isinstance(data, list):
        raise MatrixFileError(path, f"not a matrix: a JSON {type(data).__name__}, not a list")
    if not data:
        raise MatrixFileError(path, "empty: no rows")
    if data and isinstance(data[0], list) and data[0] and isinstance(data[0][0], list):
        matrices = [_rows_of(path, m, f"matrix {k}, ") for k, m in enumerate(data, start=1)]
        shapes = {(len(m), len(m[0]) if m else 0) for m in matrices}
        if len(shapes) != 1:
            raise MatrixFileError(path, "ragged batch: the matrices differ in shape")
        return np.array(matrices, dtype=float)
    return np.array(_rows_of(path, data), dtype=float)


# -- .mtx (Matrix Market) -----------------------------------------------------------------------

_MM_FIELDS = {"real": float, "double": float, "integer": int}
_MM_SYMMETRIES = ("general", "symmetric", "skew-symmetric")


def _read_mtx(path: Source, text: str) -> NDArray[Any]:
    """Matrix Market: `array` (dense, column-major) or `coordinate` (sparse triplets), with a
    real or integer field and general, symmetric or skew-symmetric symmetry."""
    lines = text.splitlines()
    header = lines[0].split() if lines else []
    if len(header) != 5 or header[0].lower() != "%%matrixmarket":
        raise MatrixFileError(
            path, "not a Matrix Market file (the first line must be '%%MatrixMarket matrix ...')"
        )
    kind, layout, field, symmetry = (word.lower() for word in header[1:])
    if kind != "matrix" or layout not in ("array", "coordinate"):
        raise MatrixFileError(path, f"unsupported Matrix Market object '{kind} {layout}'")
    if field not in _MM_FIELDS:
        raise MatrixFileError(
            path, f"unsupported Matrix Market field '{field}' (only real and integer)"
        )
    if symmetry not in _MM_SYMMETRIES:
        raise MatrixFileError(path, f"unsupported Matrix Market symmetry '{symmetry}'")
    body = [
        (number, line)
        for number, line in enumerate(lines[1:], start=2)
        if line.strip() and not line.lstrip().startswith("%")
    ]
    if not body:
        raise MatrixFileError(path, "empty: no size line")
    size_line, size_text = body[0]
    try:
        size = [int(word) for word in size_text.split()]
    except ValueError:
        raise MatrixFileError(path, f"line {size_line}: bad size line '{size_text}'") from None
    expected = 2 if layout == "array" else 3
    if len(size) != expected or min(size) < 0:
        raise MatrixFileError(path, f"line {size_line}: bad size line '{size_text}'")
    rows, cols = size[0], size[1]
    if symmetry != "general" and rows != cols:
        raise MatrixFileError(path, f"a {symmetry} matrix must be square, not {rows} x {cols}")
    tokens = " ".join(line for _, line in body[1:]).split()
    dtype = np.int64 if field == "integer" else np.float64
    if layout == "array":
        array = _mtx_array(path, tokens, rows, cols, symmetry, dtype)
    else:
        array = _mtx_coordinate(path, tokens, rows, cols, size[2], symmetry, dtype)
    return array


def _mtx_numbers(path: Source, tokens: list[str], dtype: type[Any]) -> NDArray[Any]:
    try:
        return np.array(tokens, dtype=dtype)
    except (ValueError, OverflowError):
        for token in tokens:
            try:
                dtype(token)
            except (ValueError, OverflowError):
                what = "an integer" if dtype is np.int64 else "a number"
                raise MatrixFileError(path, f"'{token}' is not {what}") from None
        raise MatrixFileError(path, "entries are not numbers") from None


def _mtx_array(
    path: Source, tokens: list[str], rows: int, cols: int, symmetry: str, dtype: type[Any]
) -> NDArray[Any]:
    if symmetry == "general":
        count = rows * cols
    elif symmetry == "symmetric":
        count = rows * (rows + 1) // 2
    else:
        count = rows * (rows - 1) // 2
    if len(tokens) != count:
        raise MatrixFileError(
            path,
            f"expected {count} entries for a {rows} x {cols} {symmetry} array, found {len(tokens)}",
        )
    values = _mtx_numbers(path, tokens, dtype)
    if symmetry == "general":
        return values.reshape(cols, rows).T.copy()
    array = np.zeros((rows, cols), dtype=dtype)
    # The file lists the lower triangle column by column: column j holds rows j.. (symmetric) or
    # j+1.. (skew), which is the upper triangle's row-major order with the roles swapped.
    cols_of, rows_of = np.triu_indices(rows, k=0 if symmetry == "symmetric" else 1)
    array[rows_of, cols_of] = values
    off = rows_of != cols_of
    array[cols_of[off], rows_of[off]] = values[off] if symmetry == "symmetric" else -values[off]
    return array


def _mtx_coordinate(
    path: Source,
    tokens: list[str],
    rows: int,
    cols: int,
    nnz: int,
    symmetry: str,
    dtype: type[Any],
) -> NDArray[Any]:
    if len(tokens) != 3 * nnz:
        raise MatrixFileError(
            path, f"expected {nnz} entries (row, column, value), found {len(tokens) / 3:g}"
        )
    i = _mtx_numbers(path, tokens[0::3], np.int64) - 1
    j = _mtx_numbers(path, tokens[1::3], np.int64) - 1
    values = _mtx_numbers(path, tokens[2::3], dtype)
    bad = (i < 0) | (i >= rows) | (j < 0) | (j >= cols)
    if bad.any():
        k = int(np.argmax(bad))
        raise MatrixFileError(
            path, f"entry {k + 1} at ({i[k] + 1}, {j[k] + 1}) is outside the {rows} x {cols} matrix"
        )
    array = np.zeros((rows, cols), dtype=dtype)
    np.add.at(array, (i, j), values)
    if symmetry != "general":
        off = i != j
        sign = 1 if symmetry == "symmetric" else -1
        np.add.at(array, (j[off], i[off]), sign * values[off])
    return array


# -- writing ------------------------------------------------------------------------------------


def _cells(array: NDArray[Any]) -> list[list[str]]:
    """Each entry as the shortest text that reads back to the same number."""
    return [[repr(value) for value in row] for row in array.tolist()]


def write_matrix(path: PathLike, matrix: ArrayLike) -> None:
    """Write a matrix to a file, choosing the format by its extension.

    Args:
        path: a .npy, .csv, .txt, .json or .mtx file; it is overwritten.
        matrix: an (n, n) array; .npy and .json also take a (b, n, n) batch.

    Raises:
        MatrixFileError: unknown extension, a batch for a 2-D-only format, or the file cannot be
            written.
    """
    path = Path(path)
    suffix = check_suffix(path)
    array = np.asarray(matrix)
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    if array.ndim != 2 and suffix not in (".npy", ".json"):
        raise MatrixFileError(path, f"{suffix} holds one 2-D matrix, not a {array.ndim}-D array")
    try:
        if suffix == ".npy":
            with path.open("wb") as file:
                np.save(file, array, allow_pickle=False)
        elif suffix == ".json":
            try:
                text = json.dumps(array.tolist(), allow_nan=False)
            except ValueError:
                raise MatrixFileError(
                    path, "JSON cannot hold NaN or infinity; write .npy instead"
                ) from None
            path.write_text(text + "\n", encoding="utf-8")
        elif suffix in (".csv", ".txt"):
            separator = "," if suffix == ".csv" else " "
            path.write_text(
                "".join(separator.join(row) + "\n" for row in _cells(array)), encoding="utf-8"
            )
        else:
            field = "integer" if array.dtype.kind in "biu" else "real"
            rows, cols = array.shape
            column_major = _cells(array.T)
            lines = [
                f"%%MatrixMarket matrix array {field} general",
                "% written by ninv-client",
                f"{rows} {cols}",
                *(value for column in column_major for value in column),
            ]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise MatrixFileError(path, f"cannot write: {exc.strerror or _first_line(exc)}") from None
