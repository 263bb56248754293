"""The solver stays in small parts: no function (its docstring aside) over 60 lines."""

from __future__ import annotations

import ast

from tests.helpers import ROOT

MAX_LINES = 60


def _length(node: ast.FunctionDef) -> int:
    lines = (node.end_lineno or node.lineno) - node.lineno + 1
    if ast.get_docstring(node) is not None:
        doc = node.body[0]
        lines -= (doc.end_lineno or doc.lineno) - doc.lineno + 1
    return lines


def test_no_solver_function_is_longer_than_60_lines() -> None:
    lengths = {
        f"{path.name}:{node.name}": _length(node)
        for path in sorted((ROOT / "worker" / "solver").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    assert len(lengths) > 40  # the walk found the solver's functions
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}
