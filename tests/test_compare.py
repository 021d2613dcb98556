"""compare(): every zoo model matches in float32 and float64, and planted bugs are caught by name."""

import copy
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_cuda, needs_keras
from xconv import assert_match, compare, layouts, zoo
from xconv.errors import BadInputError

pytestmark = needs_keras


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_models_match_in_float32(twins, name):
    k, t = twins(name)
    report = compare(k, t, zoo.sample_input(name, 2, seed=3))
    assert report.ok, str(report)
    assert report.first_divergence is None and not report.skipped
    assert [r.name for r in report.layers] == [l.name for l in zoo.spec(name).layers]
    assert (report.device, report.dtype, report.tf32) == ("cpu", "float32", False)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_models_match_in_float64_strict_mode(twins, name):
    k, t = twins(name, "float64")
    report = compare(k, t, zoo.sample_input(name, 2, seed=4, dtype="float64"), dtype="float64")
    assert report.ok, str(report)
    assert max(r.max_rel for r in report.layers) <= 1e-10, str(report)


def test_float64_comparison_of_float32_models_casts_copies(twins):
    k, t = twins("two_conv")
    report = compare(k, t, zoo.sample_input("two_conv"), dtype="float64")
    assert report.ok and report.dtype == "float64"
    assert max(r.max_rel for r in report.layers) <= 1e-6  # float32 weights, float64 arithmetic
    assert next(t.parameters()).dtype == torch.float32  # the caller's module is untouched
    assert k.layers[-1].compute_dtype == "float32"


def test_either_order_inputs_in_the_layout_of_a(twins):
    k, t = twins("conv3d_demo")
    x = zoo.sample_input("conv3d_demo", 2, layout="torch")
    report = compare(t, k, x)
    assert report.ok and (report.a, report.b) == ("torch", "keras")


def _planted(t):
    return copy.deepcopy(t)


def test_planted_changed_filter_is_named(twins):
    k, t = twins("unet_encoder")
    x = zoo.sample_input("unet_encoder")
    # a filter whose ReLU output is all zero on this input cannot show a change: pick a live one
    seen = {}
    hook = t.conv3_1_relu.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        t(torch.from_numpy(zoo.sample_input("unet_encoder", layout="torch")))
    hook.remove()
    live = int(seen["out"][0].sum(dim=(1, 2)).argmax())
    bad = _planted(t)
    with torch.no_grad():
        bad.conv3_1.weight[live] *= 1.01  # one filter of one layer, off by 1%
    report = compare(k, bad, x)
    assert not report.ok and report.first_divergence == "conv3_1"
    assert report["conv3_1"].where[1] == live  # the greatest difference sits in that filter's channel
    assert all(r.ok for r in report.layers[: [r.name for r in report.layers].index("conv3_1")])


def test_planted_swapped_filters_are_named(twins):
    k, t = twins("two_conv")
    bad = _planted(t)
    with torch.no_grad():
        bad.conv2.weight[[1, 4]] = bad.conv2.weight[[4, 1]].clone()
    report = compare(k, bad, zoo.sample_input("two_conv"))
    assert report.first_divergence == "conv2" and report["conv1"].ok


@pytest.mark.parametrize(
    "pad, why",
    [((1, 1, 1, 1), "symmetric, output shrinks to 24"), ((2, 2, 2, 2), "symmetric, output grows to 26"), ((2, 1, 2, 1), "extra before, as some frameworks do")],
)
def test_planted_symmetric_even_kernel_padding_is_named(twins, pad, why):
    k, t = twins("unet_encoder")
    bad = _planted(t)
    bad.conv4_2_pad = nn.ZeroPad2d(pad)
    report = compare(k, bad, zoo.sample_input("unet_encoder"))
    assert report.first_divergence == "conv4_2", why
    assert report["conv4_1"].ok


def test_planted_missing_flatten_permutation_is_named(twins):
    k, t = twins("conv3d_demo")
    bad = _planted(t)
    kernel = k.get_layer("dense_a").get_weights()[0]
    with torch.no_grad():  # the classic bug: a plain transpose, rows left in channels-last order
        bad.dense_a.weight.copy_(torch.from_numpy(layouts.dense_kernel_to_torch(kernel)))
    report = compare(k, bad, zoo.sample_input("conv3d_demo"))
    assert report.first_divergence == "dense_a"
    assert report["flatten"].ok


def test_planted_dropped_bias_is_named(twins):
    k, t = twins("unet_encoder")
    bad = _planted(t)
    with torch.no_grad():
        bad.conv2_2.bias.zero_()
    assert compare(k, bad, zoo.sample_input("unet_encoder")).first_divergence == "conv2_2"


def test_planted_softmax_axis_is_named(twins):
    k, t = twins("conv3d_demo")
    bad = _planted(t)
    bad.dense_b_softmax = nn.Softmax(dim=0)  # torch's old implicit-dim trap
    assert compare(k, bad, zoo.sample_input("conv3d_demo", 3)).first_divergence == "dense_b"


def test_report_json_table_and_assert_match(twins):
    k, t = twins("two_conv")
    report = compare(k, t, zoo.sample_input("two_conv"))
    data = json.loads(report.to_json())
    assert set(data) >= {"ok", "device", "dtype", "tf32", "first_divergence", "layers"}
    assert set(data["layers"][0]) >= {"name", "shape", "max_abs", "max_rel", "atol", "rtol", "ok"}
    assert data["layers"][1]["shape"] == [1, 6, 25, 25]
    text = str(report)
    assert "conv2" in text and "MATCH" in text
    bad = _planted(t)
    with torch.no_grad():
        bad.conv1.weight[0, 0, 2, 2] += 1.0
    with pytest.raises(AssertionError, match=r"(?s)conv1 .*FAIL.*first divergence at 'conv1'"):
        assert_match(k, bad, zoo.sample_input("two_conv"))


def test_tolerance_policy(twins):
    k, t = twins("two_conv")
    x = zoo.sample_input("two_conv")
    with pytest.raises(BadInputError, match="together"):
        compare(k, t, x, rtol=1e-3)
    strict = compare(k, t, x, rtol=0.0, atol=0.0)
    assert all(r.rtol == 0 and r.atol == 0 for r in strict.layers)
    # a difference below the tolerance passes; the same difference above it fails
    bad = _planted(t)
    with torch.no_grad():
        bad.conv2.bias[0] += 1e-3
    loose = compare(k, bad, x, rtol=1e-2, atol=1e-2)
    tight = compare(k, bad, x)
    assert loose.ok and not tight.ok and tight.first_divergence == "conv2"


def test_wrong_input_shape_is_a_clear_error(twins):
    k, t = twins("unet_encoder")
    with pytest.raises(BadInputError, match=r"expects shape \(None, 200, 200, 1\).*received \(1, 1, 200, 200\)"):
        compare(k, t, np.zeros((1, 1, 200, 200), np.float32))


def test_models_that_do_not_line_up_are_a_clear_error(twins):
    k, _ = twins("two_conv")
    with pytest.raises(BadInputError, match="lines up"):
        compare(k, nn.Sequential(nn.Conv2d(1, 4, 5, padding=2)), zoo.sample_input("two_conv"))
    with pytest.raises(BadInputError, match="one Keras model and one PyTorch module"):
        compare(k, k, zoo.sample_input("two_conv"))


def test_cuda_device_without_gpu_is_a_clear_error(twins):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    k, t = twins("two_conv")
    with pytest.raises(BadInputError, match="no CUDA GPU"):
        compare(k, t, zoo.sample_input("two_conv"), device="cuda")


@needs_cuda
@pytest.mark.parametrize("name", zoo.names())
def test_cuda_matches_with_tf32_off_and_restores_settings(twins, name):
    k, t = twins(name)
    torch.backends.cudnn.allow_tf32 = True
    report = compare(k, t, zoo.sample_input(name, 2), device="cuda")
    assert report.ok, str(report)
    assert report.device.startswith("cuda") and report.tf32 is False
    assert torch.backends.cudnn.allow_tf32 is True  # restored


def test_local_mode_names_where_error_starts_while_accumulated_error_spreads(twins):
    k, t = twins("unet_encoder")
    bad = _planted(t)
    with torch.no_grad():
        bad.conv2_2.bias += 0.05  # one layer wrong
    report = compare(k, bad, zoo.sample_input("unet_encoder"), mode="local")
    failing = [r.name for r in report.layers if not r.ok]
    assert failing[0] == "conv2_2" and len(failing) > 5  # accumulated: everything after it fails too
    assert report.first_local_divergence == "conv2_2"
    assert [r.name for r in report.layers if r.local_ok is False] == ["conv2_2"]  # locally, only the culprit
    assert "error starts at 'conv2_2'" in str(report)
    data = json.loads(report.to_json())
    assert data["first_local_divergence"] == "conv2_2" and "local_max_rel" in data["layers"][0]


def test_local_mode_on_a_correct_port_and_through_flatten(twins):
    k, t = twins("conv3d_demo")
    report = compare(k, t, zoo.sample_input("conv3d_demo", 2), mode="local")
    assert report.ok and report.first_local_divergence is None
    assert all(r.local_ok for r in report.layers)
    bad = _planted(t)
    with torch.no_grad():
        bad.dense_b.weight[3] += 0.1
    report = compare(k, bad, zoo.sample_input("conv3d_demo", 2), mode="local")
    assert report.first_local_divergence == "dense_b" and report["dense_a"].local_ok
    with pytest.raises(BadInputError, match="mode"):
        compare(k, t, zoo.sample_input("conv3d_demo"), mode="sideways")


def test_local_mode_on_translated_modules(twins):
    from xconv import keras_to_torch

    k, _ = twins("unet_encoder")
    t = keras_to_torch(k)
    t.conv4_2__pad = nn.ZeroPad2d((2, 1, 2, 1))
    report = compare(k, t, zoo.sample_input("unet_encoder"), mode="local")
    assert report.first_local_divergence == "conv4_2"
    assert all(r.local_ok for r in report.layers if r.name != "conv4_2")


def test_repro_file_reruns_the_diverging_layer(twins, tmp_path, capsys):
    from xconv.cli.main import main

    k, t = twins("unet_encoder")
    bad = _planted(t)
    bad.conv4_2_pad = nn.ZeroPad2d((2, 1, 2, 1))
    report = compare(k, bad, zoo.sample_input("unet_encoder"), mode="local")
    path = report.repro(tmp_path / "conv4_2.npz")
    assert os.path.getsize(path) < 20 * 2**20  # one layer's weights and one input, not the model
    assert main(["repro", str(path)]) == 1
    out = capsys.readouterr().out
    assert "layer 'conv4_2'" in out and "ZeroPad2d((2, 1, 2, 1))" in out
    assert "xconv's PyTorch translation" in out and "(matches)" in out and "DIFFERS" in out
    good = compare(k, t, zoo.sample_input("unet_encoder")).repro(tmp_path / "ok.npz", layer="conv3_1")
    assert main(["repro", str(good), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recorded_torch_ok"] and data["xconv_translation_ok"] and data["keras_reproduced_rel"] == 0


def test_repro_refuses_what_it_cannot_do(twins, tmp_path):
    k, t = twins("two_conv")
    with pytest.raises(BadInputError, match="no divergence"):
        compare(k, t, zoo.sample_input("two_conv")).repro(tmp_path / "x.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BadInputError, match="not an xconv repro file"):
        from xconv.repro import rerun

        rerun(tmp_path / "junk.npz")
    assert not (tmp_path / "x.npz").exists()


def test_the_allowed_column_is_the_number_a_layer_may_differ_by():
    from xconv.comparison.report import LayerDiff, Report

    ok = LayerDiff("c1", "Conv2D", (1, 2, 3, 3), 1e-5, 1e-5 / 2.0, (0, 0, 0, 0), 1e-6, 1e-4, True, scale=2.0)
    bad = LayerDiff("c2", "Conv2D", (1, 2, 3, 3), 3e-4, 3e-4 / 2.0, (0, 1, 2, 2), 1e-6, 1e-4, False, scale=2.0)
    table = Report("keras", "torch", "cpu", "float32", False, [ok, bad]).table()
    head, _, row1, row2 = table.splitlines()[:4]
    assert "allowed abs" in head and "|a|" not in table
    cell = lambda row, title: float(row[head.index(title):].split()[0])  # noqa: E731 - columns are left-aligned
    assert cell(row1, "allowed abs") == pytest.approx(1e-6 + 1e-4 * 2.0, rel=1e-3)
    assert cell(row1, "max abs") <= cell(row1, "allowed abs") and cell(row2, "max abs") > cell(row2, "allowed abs")


def _leaky_pair(slope):
    import keras

    inp = keras.Input((6, 6, 2), dtype="float64")
    y = keras.layers.Conv2D(3, 3, name="conv", dtype="float64")(inp)
    y = keras.layers.LeakyReLU(slope, name="act", dtype="float64")(y)
    y = keras.layers.Flatten(name="flat", dtype="float64")(y)
    k = keras.Model(inp, keras.layers.Dense(4, name="fc", dtype="float64")(y))

    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(2, 3, 3), nn.Linear(48, 4)

        def forward(self, x):
            x = torch.nn.functional.leaky_relu(self.conv(x), slope)
            return self.fc(x.permute(0, 2, 3, 1).flatten(1))  # Keras' flatten order

    t = Port().double()
    with torch.no_grad():
        kernel, bias = k.get_layer("conv").get_weights()
        t.conv.weight.copy_(torch.from_numpy(layouts.conv_kernel_to_torch(kernel)))
        t.conv.bias.copy_(torch.from_numpy(bias))
        kernel, bias = k.get_layer("fc").get_weights()
        t.fc.weight.copy_(torch.from_numpy(kernel.T.copy()))
        t.fc.bias.copy_(torch.from_numpy(bias))
    return k, t.eval()


@needs_keras
def test_float64_difference_of_a_keras_float32_constant_is_explained():
    """Keras' float64 LeakyReLU(0.1) multiplies by float32(0.1): an exact port differs by ~1e-9 there.
    The verdict stays MISMATCH (the outputs do differ) but says the difference is Keras' rounding;
    a slope float32 holds exactly matches, and a real bug is not excused: before the layer it is the
    first divergence, after it the note names it."""
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2))
    k, t = _leaky_pair(0.1)
    report = compare(k, t, x, dtype="float64")
    assert not report.ok and report.first_divergence == "act"
    assert "LeakyReLU's slope 0.1 as the float32 value" in report.verdict() and "not a bug of the port" in report.verdict()
    k, t = _leaky_pair(0.25)
    assert compare(k, t, x, dtype="float64").ok
    k, t = _leaky_pair(0.1)
    with torch.no_grad():
        t.conv.weight[1] *= 1.5  # a real porting bug, before the activation
    report = compare(k, t, x, dtype="float64")
    assert report.first_divergence == "conv" and "float32 value" not in report.verdict()
    with torch.no_grad():
        t.conv.weight[1] /= 1.5
        t.fc.weight[0] += 1e-3  # and one after it: larger than float32 rounding, named as such
    report = compare(k, t, x, dtype="float64")
    assert report.first_divergence == "act" and "But 'fc' differs by" in report.verdict() and "look there" in report.verdict()
