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


@needs_keras
@pytest.mark.slow
def test_cli_examples_run_as_documented(tmp_path):
    import subprocess
    import sys

    text = (ROOT / "docs" / "cli.md").read_text()
    lines = [l for block in re.findall(r"```console\n(.*?)```", text, re.S) for l in block.splitlines() if l.startswith("$ ")]
    assert len(lines) >= 20
    for line in lines:
        command, _, comment = line[2:].partition("#")
        expected = int(comment.split()[-1]) if "exits" in comment else 0
        args = command.split()
        assert args[0] == "xconv"
        proc = subprocess.run([sys.executable, "-m", "xconv.cli.main", *args[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == expected, f"{line}\n{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}"
        assert "Traceback" not in proc.stderr, line
    assert (tmp_path / "demo_model.py").exists() and (tmp_path / "demo.manifest.json").exists()
    assert not (tmp_path / "never.png").exists() and not (tmp_path / "demo_twin.weights.h5").exists()
