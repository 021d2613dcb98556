"""The command line speaks its own language (issue 16): options, not Python keywords; zoo names
as every command writes them; arguments refused before models are built; no other library's
warnings in a user's output."""

from __future__ import annotations

import ast
import json
import logging
import pathlib
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
PY_KEYWORD = re.compile(r"\b[a-z_]+=(True|False|None|'[^']*')")


def test_cli_sources_hold_no_python_keyword_hints():
    """No string in xconv/cli/ tells a user to pass ``force=True`` or ``device='cpu'``."""
    found = []
    for path in sorted((ROOT / "xconv" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PY_KEYWORD.search(node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_errors_carry_a_cli_wording_that_main_prints(capsys, monkeypatch):
    from xconv.errors import BadInputError

    import xconv.cli.layers_cmd as layers

    def fail(args):
        raise BadInputError("pass force=True", cli="pass --force")

    monkeypatch.setattr(layers, "run", fail)
    assert main(["layers"]) == 2
    assert capsys.readouterr().err.strip() == "xconv layers: error: pass --force"
    assert str(BadInputError("pass force=True", cli="pass --force")) == "pass force=True"  # Python keeps its words


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_no_gpu_is_said_in_cli_words_and_in_python_words(capsys):
    from xconv.errors import BadInputError
    from xconv.frameworks.torch_side import resolve_device

    assert main(["demo", "two_conv", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "use --device cpu" in err and "device='cpu'" not in err
    with pytest.raises(BadInputError, match="use device='cpu'"):
        resolve_device("cuda")


def test_an_existing_output_asks_for_force_in_cli_words(tmp_path, capsys):
    src = tmp_path / "w.pt"
    torch.save({"conv.weight": torch.ones(2, 1, 3, 3)}, src)
    assert main(["convert", str(src), str(tmp_path / "w.safetensors"), "--quiet"]) == 0
    assert main(["convert", str(src), str(tmp_path / "w.safetensors"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "force=True" not in err


def test_bad_demo_arguments_are_refused_before_tensorflow_loads():
    code = (
        "import sys\nfrom xconv.cli.main import main\n"
        "codes = [main(a) for a in (['demo', 'two_conv', '--diff', 'conv2'], ['demo', 'two_conv', '--plot', 'r.txt'],"
        " ['demo', 'two_conv', '--device', 'gpu'], ['demo', 'zoo:nope'])]\n"
        "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "[2, 2, 2, 2] False False", proc.stderr
    assert "--diff LAYER and --diff-plot PATH go together" in proc.stderr
    assert "Cannot write a picture to 'r.txt'" in proc.stderr
    assert "--device 'gpu' is not a device torch knows" in proc.stderr
    assert "Unknown zoo model 'nope'" in proc.stderr and "Traceback" not in proc.stderr


@needs_keras
def test_demo_takes_zoo_names_as_the_other_commands_write_them(capsys):
    assert main(["demo", "zoo:two_conv", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_lint_with_a_keras_file_alone_says_what_to_give(capsys):
    assert main(["lint", "my.keras"]) == 2
    err = capsys.readouterr().err
    assert "--module" not in err and "xconv lint my.keras package.module:Class" in err and "zoo:NAME" in err
    assert main(["lint", "my.keras", "port.pt"]) == 2  # a weights file where the class goes
    assert "--weights port.pt" in capsys.readouterr().err


# --- other libraries' warnings --------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def nothing_printed():
    """Every warning recorded, every logger's warnings caught; the filters checked untouched after."""
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught, handler.records
        inner = list(warnings.filters)
    root.removeHandler(handler)
    assert list(warnings.filters) == filters_before
    assert inner[0][0] == "always"  # xconv's silencing was scoped: the test's own filter is back


def _shown(caught, records):
    return [f"{w.category.__name__}: {w.message} ({w.filename})" for w in caught] + [f"{r.name}: {r.getMessage()}" for r in records]


@pytest.mark.slow
def test_onnx_export_of_a_torch_module_prints_no_warnings(tmp_path, nothing_printed):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import xconv.onnx
    from xconv import zoo

    module = zoo.build("two_conv", "torch")
    xconv.onnx.export(module, tmp_path / "t.onnx", input_shape=(1, 25, 25))
    assert _shown(*nothing_printed) == []


@needs_keras
def test_snapshots_of_a_keras_model_print_no_warnings(tmp_path, nothing_printed):
    from xconv import zoo
    from xconv.testing import assert_snapshot, record_snapshot

    model = zoo.build("two_conv", "keras", random_biases=True)
    x = zoo.sample_input("two_conv")
    record_snapshot(model, x, tmp_path / "k.safetensors")
    assert_snapshot(model, x, tmp_path / "k.safetensors")
    assert [s for s in _shown(*nothing_printed) if "DeprecationWarning" in s] == []


def test_rgb_refusal_names_the_option(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "k.npy", np.zeros((3, 3, 1, 4), np.float32))
    assert main(["filters", str(tmp_path / "k.npy"), "--layout", "keras", "--rgb", "-o", str(tmp_path / "k.png")]) == 2
    err = capsys.readouterr().err
    assert "--rgb needs a 2D kernel with 3 input channels" in err and "rgb=True" not in err
