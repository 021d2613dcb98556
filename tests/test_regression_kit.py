"""The regression kit as a research repo uses it: snapshots, the pytest plugin, no TensorFlow needed."""

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv import transfer_weights, zoo
from xconv.errors import BadInputError
from xconv.testing import assert_snapshot, check_snapshot, record_snapshot, snapshot_info, update_snapshots

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """unet_encoder's snapshot recorded from Keras, and the PyTorch twin's weights beside it."""
    folder = tmp_path_factory.mktemp("snap")
    k = zoo.build("unet_encoder", "keras", random_biases=True)
    t = zoo.build("unet_encoder", "torch")
    transfer_weights(k, t)
    x = zoo.sample_input("unet_encoder")
    info = record_snapshot(k, x, folder / "unet.safetensors")
    torch.save(t.state_dict(), folder / "unet.pt")
    np.save(folder / "x.npy", x)
    return folder, t, x, info


@needs_keras
def test_keras_snapshot_checks_the_torch_port(unet):
    folder, t, x, info = unet
    assert info["framework"] == "keras" and [l["name"] for l in info["layers"]][:3] == ["conv1_1", "conv1_2", "pool1"]
    assert info["bytes"] > 0 and info["layers"][0]["shape"] == [1, 64, 200, 200]
    report = assert_snapshot(t, np.moveaxis(x, -1, 1).copy(), folder / "unet.safetensors")
    assert report.ok and len(report.layers) == 14
    with pytest.raises(BadInputError, match="input differs"):
        check_snapshot(t, np.zeros((1, 1, 200, 200), np.float32), folder / "unet.safetensors")


@needs_keras
def test_snapshot_is_checked_where_tensorflow_cannot_be_imported(unet):
    folder, _, _, _ = unet
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # importing TensorFlow (or Keras) now fails
        sys.modules["keras"] = None
        import numpy as np, torch
        from xconv import zoo
        from xconv.testing import assert_snapshot
        t = zoo.build("unet_encoder", "torch")
        t.load_state_dict(torch.load({str(folder / 'unet.pt')!r}, weights_only=True))
        x = np.moveaxis(np.load({str(folder / 'x.npy')!r}), -1, 1).copy()
        assert_snapshot(t, x, {str(folder / 'unet.safetensors')!r})
        print("port ok")
        with torch.no_grad():
            t.conv4_1.weight[:, :, 1, 1] *= 1.1  # a planted bug
        try:
            assert_snapshot(t, x, {str(folder / 'unet.safetensors')!r})
        except AssertionError as exc:
            print("caught:", str(exc).splitlines()[-1])
        print("tensorflow" in sys.modules and sys.modules["tensorflow"] is not None)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "port ok" in out and "first divergence at 'conv4_1'" in out and out.strip().endswith("False")


@needs_keras
def test_snapshot_size_options(tmp_path):
    k = zoo.build("two_conv", "keras", random_biases=True)
    x = zoo.sample_input("two_conv")
    full = record_snapshot(k, x, tmp_path / "full.safetensors")
    half = record_snapshot(k, x, tmp_path / "half.safetensors", float16=True)
    tiny = record_snapshot(k, x, tmp_path / "tiny.safetensors", max_values=100, layers=["conv2"])
    assert half["bytes"] < 0.6 * full["bytes"] and tiny["bytes"] < 0.2 * full["bytes"]
    assert [l["name"] for l in tiny["layers"]] == ["conv2"] and tiny["layers"][0]["subsampled"]
    t = zoo.build("two_conv", "torch")
    transfer_weights(k, t)
    xt = zoo.sample_input("two_conv", layout="torch")
    for name in ("half", "tiny"):
        assert check_snapshot(t, xt, tmp_path / f"{name}.safetensors").ok
    with torch.no_grad():
        t.conv2.bias[2] += 0.5
    assert check_snapshot(t, xt, tmp_path / "tiny.safetensors").first_divergence == "conv2"  # subsampled, still caught


def test_update_context_re_records(tmp_path):
    t = zoo.build("two_conv", "torch")
    x = zoo.sample_input("two_conv", layout="torch")
    with update_snapshots():
        assert_snapshot(t, x, tmp_path / "t.safetensors")
    assert snapshot_info(tmp_path / "t.safetensors")["framework"] == "torch"
    assert assert_snapshot(t, x, tmp_path / "t.safetensors").ok


DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "regression-testing.md"
USER_TEST = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]


@needs_keras
def test_the_documented_test_file_runs_as_a_user_would(pytester, tmp_path):
    """docs/regression-testing.md's test file, in a fresh folder: record, check, break, skip."""
    from xconv.cli.main import main

    snapshots = pytester.path / "snapshots"
    snapshots.mkdir()
    k = zoo.build("two_conv", "keras", seed=0, random_biases=True)
    k.save(tmp_path / "my_model.keras")
    assert main(["convert", str(tmp_path / "my_model.keras"), str(snapshots / "port.pt"), "--quiet"]) == 0
    pytester.makepyfile(test_port=USER_TEST)

    first = pytester.runpytest_subprocess("-rs")  # nothing recorded yet: a clear error
    first.stdout.fnmatch_lines(["*No snapshot at*--xconv-update-snapshots*"])
    recorded = pytester.runpytest_subprocess("--xconv-update-snapshots", "-rs")
    recorded.assert_outcomes(passed=3, skipped=2)  # reference recorded, port (cpu) checked, lint; cuda skipped twice
    recorded.stdout.fnmatch_lines(["*needs a CUDA GPU*"])
    assert snapshot_info(snapshots / "reference.safetensors")["framework"] == "keras"
    checked = pytester.runpytest_subprocess("-rs")
    checked.assert_outcomes(passed=3, skipped=2)

    # a planted bug in the port's weights: the port test fails and names the layer
    state = torch.load(snapshots / "port.pt", weights_only=True)
    state["conv2.weight"][0] += 0.1
    torch.save(state, snapshots / "port.pt")
    broken = pytester.runpytest_subprocess()
    broken.assert_outcomes(passed=2, failed=1, skipped=2)  # the port fails; the reference and lint still pass
    text = broken.stdout.str()
    assert "first divergence at 'conv2'" in text and "FAIL" in text
    assert "def check_snapshot" not in text and "def assert_snapshot" not in text  # helper frames hidden


def test_without_tensorflow_the_tf_tests_skip_with_the_reason(pytester):
    pytester.makepyfile(
        test_skip="""
import pytest

@pytest.mark.xconv_needs_tf
def test_needs_tf():
    pass
"""
    )
    pytester.makeconftest("import importlib.util\n_real = importlib.util.find_spec\nimportlib.util.find_spec = lambda name, *a: None if name == 'tensorflow' else _real(name, *a)\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    assert 'needs TensorFlow (pip install "xconv[tf]")' in result.stdout.str()
