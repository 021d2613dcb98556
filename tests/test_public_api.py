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
