"""The documentation's examples run: doctests in docs/*.md, and the README's Python block."""

import doctest
import pathlib
import re

import pytest

from conftest import needs_keras

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_markdown_doctests(path):
    result = doctest.testfile(str(path), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@needs_keras
def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_readme_has_exactly_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[all]" && xconv demo' in text
    assert 'pip install -e ".[all,dev]" && pytest' in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[all,dev]" && pytest' in ci
