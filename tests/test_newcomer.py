"""A new user's first hour (issue 16): each finding has a test that failed before its fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xconv.cli.main import main


def _loaded_after(code: str, mods=("tensorflow", "keras", "onnx", "matplotlib")) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {tuple(mods)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_version_flag(capsys):
    import xconv

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"xconv {xconv.__version__}"


def test_env_imports_no_framework_but_reports_them():
    code = "from xconv.cli.env import versions\nv = versions()\nassert v['keras'] != 'not installed' and v['tensorflow'] != 'not installed', v"
    assert _loaded_after(code) == set()


@pytest.mark.parametrize("name", ["testing", "onnx", "capture"])
def test_submodules_reachable_after_import_xconv(name):
    code = f"import xconv\nassert xconv.{name}.__name__ == 'xconv.{name}'"
    assert _loaded_after(code) == set()
