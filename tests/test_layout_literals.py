"""Layouts are named by ``xconv.layouts.LayoutKind``, not by bare strings, in compare, lint and the Keras adapter."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "xconv"
MODULES = [
    "comparison/core.py",
    "comparison/align.py",
    "comparison/report.py",
    "comparison/tolerance.py",
    "linting.py",
    "frameworks/keras_side.py",
    "keras_plugins.py",
    "translate/torch_to_keras/walker.py",
]
LITERALS = {"cf", "plain", "flat", "cl"}


def layout_literals(source: str) -> list[tuple[int, str]]:
    """(line, value) of every string constant that is a layout's name, docstrings left out."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(id(first.value))
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lower() in LITERALS and id(node) not in docstrings
    )


@pytest.mark.parametrize("module", MODULES)
def test_no_layout_literal_strings(module):
    found = layout_literals((ROOT / module).read_text(encoding="utf-8"))
    assert not found, f"xconv/{module}: layout names as bare strings at {found}; use xconv.layouts.LayoutKind (CF, PLAIN, CL, FLAT)"


def test_the_scan_finds_a_planted_literal_and_leaves_docstrings_and_comments_alone():
    source = '''
"""Module text that says 'cf' and 'plain'."""
def f(kind):
    """'flat' in a docstring."""
    # 'cl' in a comment
    return kind == "cf" or {"x": "flat"}
'''
    assert layout_literals(source) == [(6, "cf"), (6, "flat")]
