"""ONNX Runtime as a third opinion: exports from both frameworks, checked, and agreeing."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import needs_keras
from xconv import compare, transfer_weights, zoo

pytestmark = [needs_keras, pytest.mark.slow]
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def torch_shape(name):
    s = zoo.spec(name).input_shape
    return (s[-1], *s[:-1])


@pytest.mark.parametrize("name", zoo.names())
def test_exports_pass_the_checker_and_agree_with_both_frameworks(name, tmp_path):
    import xconv.onnx as xo

    k = zoo.build(name, "keras", random_biases=True)
    t = zoo.build(name, "torch")
    transfer_weights(k, t)
    kp, tp = xo.export(k, tmp_path / "k.onnx"), xo.export(t, tmp_path / "t.onnx", input_shape=torch_shape(name))
    for path in (kp, tp):
        onnx.checker.check_model(path, full_check=True)
        dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
        assert not dims[0].HasField("dim_value")  # the batch axis is dynamic
    x = zoo.sample_input(name, 3)  # a batch size the exports were not traced with
    k_out = [np.asarray(o) for o in (k(x) if isinstance(k(x), (list, tuple)) else [k(x)])]
    ko = ort.InferenceSession(kp).run(None, {ort.InferenceSession(kp).get_inputs()[0].name: x})
    to = ort.InferenceSession(tp).run(None, {"input": np.ascontiguousarray(np.moveaxis(x, -1, 1))})
    for a, b, c in zip(k_out, ko, to, strict=True):  # every output, on every side
        scale = np.abs(a).max()
        assert np.abs(a - b).max() <= 1e-4 * scale + 1e-6  # ONNX Runtime on Keras' export
        assert np.abs(np.moveaxis(a, -1, 1) - c).max() <= 1e-4 * scale + 1e-6 if a.ndim >= 3 else np.abs(a - c).max() <= 1e-4 * scale + 1e-6


def test_torch_unet_export_has_no_transposes_and_keeps_the_asymmetric_padding(tmp_path):
    import xconv.onnx as xo

    t = zoo.build("unet_encoder", "torch", random_biases=True)
    path = xo.export(t, tmp_path / "u.onnx", input_shape=torch_shape("unet_encoder"))
    model = onnx.load(path)
    ops = [n.op_type for n in model.graph.node]
    assert "Transpose" not in ops
    scoped = [n for n in model.graph.node if any(p.key == "pkg.torch.onnx.name_scopes" and "'conv4_2" in p.value for p in n.metadata_props)]
    conv = next(n for n in scoped if n.op_type == "Conv")
    pads = next((list(a.ints) for a in conv.attribute if a.name == "pads"), None)
    pad_nodes = [n for n in scoped if n.op_type == "Pad"]
    # either folded into the Conv (top, left, bottom, right) or a Pad node in front of it
    assert pads == [1, 1, 2, 2] or pad_nodes, (pads, [n.op_type for n in scoped])


def test_three_way_columns_in_the_report(tmp_path):
    k = zoo.build("two_conv", "keras", random_biases=True)
    t = zoo.build("two_conv", "torch")
    transfer_weights(k, t)
    report = compare(k, t, zoo.sample_input("two_conv", 2), onnx=True)
    assert report.ok
    for row in report.layers:
        assert row.onnx_keras_rel is not None and row.onnx_keras_rel < 1e-5
        assert row.onnx_torch_rel is not None and row.onnx_torch_rel < 1e-5
    assert "onnx~keras" in str(report)


def test_cli_export_and_missing_onnx_message(tmp_path):
    from xconv.cli.main import main

    assert main(["onnx", "zoo:conv3d_demo", "-o", str(tmp_path / "d.onnx")]) == 0
    assert main(["onnx", "zoo:conv3d_demo", "--torch", "-o", str(tmp_path / "t.onnx")]) == 0
    assert main(["onnx", "zoo:conv3d_demo", "-o", str(tmp_path / "d.onnx")]) == 2  # exists
    assert main(["inspect", str(tmp_path / "t.onnx")]) == 0
    code = "import sys; sys.modules['onnx'] = None; sys.modules['tf2onnx'] = None\nfrom xconv.cli.main import main\nsys.exit(main(['onnx', 'zoo:two_conv', '-o', %r]))" % str(tmp_path / "x.onnx")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2 and 'pip install "xconv[onnx]"' in proc.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_an_onnx_file_as_either_side_of_compare(tmp_path):
    import copy

    import torch

    import xconv.onnx as xo

    k = zoo.build("unet_encoder", "keras", random_biases=True)
    t = zoo.build("unet_encoder", "torch")
    transfer_weights(k, t)
    kp = xo.export(k, tmp_path / "k.onnx")
    tp = xo.export(t, tmp_path / "t.onnx", input_shape=torch_shape("unet_encoder"))
    x = zoo.sample_input("unet_encoder")
    r1 = compare(k, kp, x)  # Keras against its own export
    assert r1.ok and (r1.a, r1.b) == ("keras", "onnx") and len(r1.layers) >= 10
    r2 = compare(str(tp), t, np.ascontiguousarray(np.moveaxis(x, -1, 1)))  # the export first, torch layout
    assert r2.ok and r2.a == "onnx" and len(r2.layers) >= 10
    r3 = compare(t, str(kp), np.ascontiguousarray(np.moveaxis(x, -1, 1)))  # across frameworks
    assert r3.ok, str(r3)
    bad = copy.deepcopy(t)
    with torch.no_grad():
        bad.conv3_2.bias += 0.05
    r4 = compare(bad, str(kp), np.ascontiguousarray(np.moveaxis(x, -1, 1)))
    assert r4.first_divergence == "conv3_2"
