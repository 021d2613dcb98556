"""The regression kit as a research repo uses it: snapshots, the pytest plugin, no TensorFlow needed."""

import json
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


USER_TEST = '''
import numpy as np
import pytest
import torch
from xconv import zoo
from xconv.testing import assert_snapshot

SNAP = "snapshots/two_conv.safetensors"


def port():
    torch.manual_seed(0)
    return zoo.build("two_conv", "torch", seed=0, random_biases=True)


def test_port_still_matches(xconv_numerics):
    assert torch.backends.cudnn.allow_tf32 is False
    assert_snapshot(port(), zoo.sample_input("two_conv", layout="torch"), SNAP)


def test_runs_on_every_device(xconv_device):
    assert xconv_device in ("cpu", "cuda")


@pytest.mark.xconv_needs_cuda
def test_only_on_gpus():
    assert torch.cuda.is_available()
'''


def test_plugin_as_a_user_meets_it(pytester):
    import os

    os.makedirs(pytester.path / "snapshots", exist_ok=True)
    pytester.makepyfile(test_port=USER_TEST)
    first = pytester.runpytest_subprocess("-rs")  # no snapshot yet: a clear error, not a crash
    first.assert_outcomes(passed=1, failed=1, skipped=2)
    first.stdout.fnmatch_lines(["*No snapshot at*--xconv-update-snapshots*"])
    first.stdout.fnmatch_lines(["*needs a CUDA GPU*"])
    recorded = pytester.runpytest_subprocess("--xconv-update-snapshots")
    recorded.assert_outcomes(passed=2, skipped=2)
    checked = pytester.runpytest_subprocess()
    checked.assert_outcomes(passed=2, skipped=2)
    pytester.makepyfile(test_port=USER_TEST.replace("random_biases=True)", "random_biases=True).requires_grad_(False); _m = None") .replace(
        "    return zoo.build", "    m = zoo.build").replace("random_biases=True).requires_grad_(False); _m = None", "random_biases=True)\n    with torch.no_grad():\n        m.conv2.weight[0] += 0.1\n    return m"))
    broken = pytester.runpytest_subprocess()
    broken.assert_outcomes(passed=1, failed=1, skipped=2)
    broken.stdout.fnmatch_lines(["*first divergence at 'conv2'*"])
    text = broken.stdout.str()
    assert "conv1" in text and "FAIL" in text
    assert "def assert_snapshot" not in text  # the helper's frame is hidden
