"""The public API: the names a user imports from ``xconv`` (issue 16).

That every public function and class has a docstring is tests/test_docstrings.py's to show.
"""

from __future__ import annotations

import importlib

import pytest

import xconv


@pytest.mark.parametrize("name, module", [("LayerDiff", "xconv.comparison"), ("TransferEntry", "xconv.transfer")])
def test_report_rows_and_manifest_entries_are_exported(name, module):
    assert name in xconv.__all__
    assert getattr(xconv, name) is getattr(importlib.import_module(module), name)


def test_no_top_level_name_is_shadowed_by_a_submodule_of_the_same_name():
    """``xconv.describe`` was both the function and the module defining it: once anything imported
    the module (``xconv inspect`` does), ``xconv.describe`` was the module, and ``xconv.describe(m)``
    failed. A lazy name must not be the name of a submodule, and stays what it is after every
    submodule is imported."""
    import importlib
    import pkgutil

    import xconv

    submodules = {m.name for m in pkgutil.iter_modules(xconv.__path__)}
    assert not {n for n in xconv._LAZY} & submodules
    for name in ("weight_axes", "comparison", "transfer", "linting", "training", "keras_plugins"):
        importlib.import_module(f"xconv.{name}")
    assert all(callable(getattr(xconv, n)) for n in xconv._LAZY)
    assert xconv.describe.__module__ == "xconv.weight_axes"
