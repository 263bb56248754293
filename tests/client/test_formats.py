"""Matrix files: every format round-trips through real files, and bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from client.cli import cli
from client.errors import MatrixFileError
from client.formats import SUFFIXES, read_matrix, write_matrix

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    "matrix",
    [
        RNG.standard_normal((7, 7)),
        np.array([[1.0, -2.5e-300], [3.25e300, 0.1]]),
        np.arange(9, dtype=np.int64).reshape(3, 3) - 4,
        np.array([[4.0]]),
    ],
    ids=["random", "extremes", "integers", "1x1"],
)
def test_round_trip(tmp_path: Path, suffix: str, matrix: np.ndarray) -> None:
    path = tmp_path / f"m{suffix}"
    write_matrix(path, matrix)
    back = read_matrix(path)
    assert back.shape == matrix.shape
    np.testing.assert_array_equal(back, matrix)  # exact: every format keeps every bit


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_batch_round_trip(tmp_path: Path, suffix: str) -> None:
    batch = RNG.standard_normal((3, 4, 4))
    write_matrix(tmp_path / f"b{suffix}", batch)
    np.testing.assert_array_equal(read_matrix(tmp_path / f"b{suffix}"), batch)


def test_float32_npy_keeps_dtype(tmp_path: Path) -> None:
    matrix = RNG.standard_normal((5, 5)).astype(np.float32)
    write_matrix(tmp_path / "m.npy", matrix)
    back = read_matrix(tmp_path / "m.npy")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, matrix)


def test_csv_and_txt_variants(tmp_path: Path) -> None:
    expected = np.array([[1.0, 2.0], [3.0, 4.5]])
    files = {
        "comma.csv": "# a comment\n1, 2\n\n3,4.5\n",
        "spaces.txt": "1   2\n3\t4.5\n",
        "commas.txt": "1,2\n3,4.5\n",
        "bom.csv": "\ufeff1,2\r\n3,4.5\r\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        np.testing.assert_array_equal(read_matrix(tmp_path / name), expected, err_msg=name)


def test_json_variants(tmp_path: Path) -> None:
    (tmp_path / "wrapped.json").write_text(json.dumps({"matrix": [[1, 2], [3, 4]]}))
    (tmp_path / "result.json").write_text(json.dumps({"inverse": [[1, 0], [0, 1]], "summary": {}}))
    np.testing.assert_array_equal(read_matrix(tmp_path / "wrapped.json"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(read_matrix(tmp_path / "result.json"), np.eye(2))


def test_matrix_market_coordinate_and_symmetric(tmp_path: Path) -> None:
    (tmp_path / "coo.mtx").write_text(
        "%%MatrixMarket matrix coordinate real general\n% comment\n3 3 4\n"
        "1 1 2.0\n2 2 3.0\n3 1 -1.5\n3 3 1e1\n"
    )
    np.testing.assert_array_equal(
        read_matrix(tmp_path / "coo.mtx"), [[2, 0, 0], [0, 3, 0], [-1.5, 0, 10]]
    )
    (tmp_path / "sym.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer symmetric\n3 3 3\n1 1 5\n2 1 7\n3 2 -2\n"
    )
    sym = read_matrix(tmp_path / "sym.mtx")
    assert sym.dtype == np.int64
    np.testing.assert_array_equal(sym, [[5, 7, 0], [7, 0, -2], [0, -2, 0]])
    # Dense symmetric: the lower triangle, column by column.
    (tmp_path / "arr.mtx").write_text(
        "%%MatrixMarket matrix array real symmetric\n3 3\n1\n2\n3\n4\n5\n6\n"
    )
    np.testing.assert_array_equal(
        read_matrix(tmp_path / "arr.mtx"), [[1, 2, 3], [2, 4, 5], [3, 5, 6]]
    )
    (tmp_path / "skew.mtx").write_text(
        "%%MatrixMarket matrix array real skew-symmetric\n3 3\n1\n2\n3\n"
    )
    np.testing.assert_array_equal(
        read_matrix(tmp_path / "skew.mtx"), [[0, -1, -2], [1, 0, -3], [2, 3, 0]]
    )


def test_matrix_market_agrees_with_scipy(tmp_path: Path) -> None:
    """Our reader and writer against an independent implementation (scipy is a dev extra)."""
    scipy_io = pytest.importorskip("scipy.io")
    matrix = RNG.standard_normal((6, 6))
    write_matrix(tmp_path / "ours.mtx", matrix)
    np.testing.assert_array_equal(scipy_io.mmread(tmp_path / "ours.mtx"), matrix)
    sparse = np.where(RNG.random((6, 6)) < 0.4, matrix, 0.0)
    scipy_sparse = pytest.importorskip("scipy.sparse")
    scipy_io.mmwrite(tmp_path / "theirs.mtx", scipy_sparse.coo_matrix(sparse))
    np.testing.assert_array_equal(read_matrix(tmp_path / "theirs.mtx"), sparse)


BAD_FILES: list[tuple[str, str | bytes, str]] = [
    ("ragged.csv", "1,2,3\n4,5\n6,7,8\n", "ragged rows: line 2 has 2 values, the first row has 3"),
    ("ragged.txt", "1 2\n3 4 5\n", "ragged rows: line 2 has 3 values"),
    ("nonsquare.csv", "1,2,3\n4,5,6\n", "not square: 2 rows x 3 columns"),
    ("empty.csv", "", "empty"),
    ("comments.txt", "# nothing here\n\n", "empty"),
    ("words.csv", "a,b\nc,d\n", "line 1, column 1: 'a' is not a number"),
    ("hole.csv", "1,,2\n3,4,5\n6,7,8\n", "line 1, column 2: an empty value is not a number"),
    ("nan.csv", "1,nan\n2,3\n", "NaN or infinity at row 1, column 2"),
    ("vector.json", "[1, 2, 3]", "not a matrix"),
    ("scalar.json", "42", "not a matrix: a JSON int"),
    ("string.json", '[[1, "2"], [3, 4]]', 'row 1, column 2: "2" is not a number'),
    ("bool.json", "[[true, 0], [0, 1]]", "row 1, column 1: true is not a number"),
    ("ragged.json", "[[1, 2], [3]]", "ragged rows: row 2 has 1 values, row 1 has 2"),
    ("empty.json", "[]", "empty"),
    ("object.json", '{"rows": [[1]]}', 'without a "matrix" key'),
    ("broken.json", "[[1, 2], [3, 4]", "not valid JSON"),
    ("nonsquare.json", "[[1, 2, 3], [4, 5, 6]]", "not square: 2 rows x 3 columns"),
    ("text.npy", "1,2\n3,4\n", "not a .npy file: it holds text; give it the extension"),
    ("binary.npy", b"\x00\xff\xfe\x01", "not a .npy file (it does not start as one)"),
    ("truncated.npy", b"\x93NUMPY\x01\x00v\x00{'descr'", "not a valid .npy file"),
    ("empty.npy", b"", "empty: no numbers"),
    ("garbage.mtx", "hello\n", "not a Matrix Market file"),
    ("complex.mtx", "%%MatrixMarket matrix array complex general\n1 1\n1 0\n", "field 'complex'"),
    ("short.mtx", "%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n", "expected 4 entries"),
    ("outside.mtx", "%%MatrixMarket matrix coordinate real general\n2 2 1\n3 1 1.0\n", "outside"),
    ("nonsquare.mtx", "%%MatrixMarket matrix array real general\n2 1\n1\n2\n", "not square"),
    ("matrix.xlsx", "1,2\n3,4\n", "unknown file type ('.xlsx')"),
    ("binary.csv", b"\xff\xfe\x00\x01", "not a text file"),
]


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_raises_clear_error(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    _write(tmp_path / name, content)
    with pytest.raises(MatrixFileError) as raised:
        read_matrix(tmp_path / name)
    text = str(raised.value)
    assert text.startswith(str(tmp_path / name) + ": ")
    assert message in text
    assert "\n" not in text
    assert "pickle" not in text


def test_object_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(MatrixFileError, match="Python objects"):
        read_matrix(tmp_path / "obj.npy")


def test_three_d_text_matrix_refused(tmp_path: Path) -> None:
    with pytest.raises(MatrixFileError, match="holds one 2-D matrix"):
        write_matrix(tmp_path / "b.csv", np.zeros((2, 3, 3)))
    with pytest.raises(MatrixFileError, match="JSON cannot hold NaN"):
        write_matrix(tmp_path / "n.json", np.array([[np.nan]]))


def test_unwritable_output(tmp_path: Path) -> None:
    with pytest.raises(MatrixFileError, match="cannot write"):
        write_matrix(tmp_path / "missing-dir" / "m.npy", np.eye(2))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        *[
            b
            for b in BAD_FILES
            if b[0] in {"ragged.csv", "nonsquare.csv", "empty.csv", "vector.json"}
        ]
    ],
)
def test_cli_bad_file_exits_2_with_one_line(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    _write(tmp_path / name, content)
    # An unreachable URL proves the file is checked before anything is sent.
    result = CliRunner().invoke(
        cli, ["--url", "http://127.0.0.1:1", "submit", str(tmp_path / name)]
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ninv-client: error: {tmp_path / name}: ")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["submit", str(tmp_path / "nope.npy")])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"ninv-client: error: {tmp_path / 'nope.npy'}: cannot read: No such file or directory"
    )
