"""compare() on the exported graph: the caller's models are left as they were, training mode is
named, align= takes a dict, a Manifest or a file, ambiguity and unaligned layers are said plainly,
export is reused without going stale, and hooks take over (and say so) where export fails."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_keras
from xconv import compare, transfer_weights
from xconv.errors import BadInputError, MismatchedModelsError

pytestmark = needs_keras
twins = pytest.importorskip("corpus.twins")
keras = pytest.importorskip("keras")


def _pair(name, dtype="float32"):
    twin = twins.TWINS[name]
    k = twin.build_keras(dtype)
    return k, twin.torch_for(k)


def _x(name, dtype="float32"):
    return np.random.default_rng(2).normal(size=twins.TWINS[name].input_shape).astype(dtype)


def _snapshot(module):
    return (
        module.training,
        [m.training for m in module.modules()],
        {n: (p.detach().clone(), p.requires_grad, p.device, p.dtype) for n, p in module.named_parameters()},
        {n: b.detach().clone() for n, b in module.named_buffers()},
    )


def _same(a, b) -> bool:
    if a[0] != b[0] or a[1] != b[1] or a[2].keys() != b[2].keys() or a[3].keys() != b[3].keys():
        return False
    for n in a[2]:
        (va, ga, da, ta), (vb, gb, db, tb) = a[2][n], b[2][n]
        if not (torch.equal(va, vb) and ga == gb and da == db and ta == tb):
            return False
    return all(torch.equal(a[3][n], b[3][n]) for n in a[3])


@pytest.mark.parametrize("dtype, mode", [("float32", "accumulated"), ("float64", "local")])
def test_compare_leaves_the_callers_modules_exactly_as_they_were(dtype, mode):
    k, t = _pair("sequential_bn")
    t.train()  # BatchNorm would update its statistics if anything ran it in training mode
    t.features[0].weight.requires_grad_(False)
    before, keras_before = _snapshot(t), [w.copy() for w in k.get_weights()]
    report = compare(k, t, _x("sequential_bn"), dtype=dtype, mode=mode)
    assert _same(before, _snapshot(t))
    assert all(np.array_equal(a, b) for a, b in zip(keras_before, k.get_weights()))
    assert not report.ok  # the forgotten .eval() is a bug: named, not hidden
    assert "training mode" in report.verdict()


def test_training_mode_is_compared_in_eval_mode_and_named():
    k, t = _pair("flatten_reordered")
    report = compare(k, copy.deepcopy(t).train(), _x("flatten_reordered"))
    assert report.first_divergence == "dropout"
    row = report["dropout"]
    assert row.max_abs == 0.0 and "training mode" in row.note  # the numbers are eval mode's
    assert all(r.ok for r in report.layers if r.name != "dropout")
    assert "forget .eval()" in report.verdict() and "compared in eval mode" in report.verdict()
    assert compare(k, t, _x("flatten_reordered")).ok  # the caller's eval-mode twin


def test_align_takes_a_dict_a_manifest_and_a_manifest_file(tmp_path):
    from xconv import zoo

    k = zoo.build("two_conv", "keras", random_biases=True)

    class Renamed(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Conv2d(4, 6, 3, padding=1)  # declared first, runs second: same shape as nothing else
            self.a = nn.Conv2d(1, 4, 5, padding=2)

        def forward(self, x):
            return torch.relu(self.b(torch.relu(self.a(x))))

    t = Renamed().eval()
    manifest = transfer_weights(k, t)
    x = zoo.sample_input("two_conv")
    path = tmp_path / "m.json"
    path.write_text(manifest.to_json())
    for align in (None, {"conv1": "a", "conv2": "b"}, manifest, str(path), path):
        report = compare(k, t, x, align=align)
        assert report.ok and [r.name for r in report.layers] == ["conv1", "conv2"], (align, str(report))
    with pytest.raises(BadInputError, match="manifest"):
        compare(k, t, x, align=str(tmp_path / "missing.json"))
    with pytest.raises(BadInputError, match="align= takes"):
        compare(k, t, x, align=3)


def test_an_ambiguous_alignment_names_the_layers_and_the_pin():
    L = keras.layers
    inp = keras.Input((8, 8, 2))
    left = L.Conv2D(3, 3, padding="same", name="left")(inp)
    right = L.Conv2D(3, 3, padding="same", name="right")(inp)
    k = keras.Model(inp, L.Concatenate(name="cat")([left, right]))

    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Conv2d(2, 3, 3, padding=1)
            self.q = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x):
            return torch.cat([self.p(x), self.q(x)], 1)

    t = Branches().eval()  # weights not copied: nothing tells p from q
    x = np.zeros((1, 8, 8, 2), np.float32)
    with pytest.raises(MismatchedModelsError, match=r"'left'.*\['p', 'q'\].*align=\{'left': 'p'\}"):
        compare(k, t, x)
    report = compare(k, t, x, align={"left": "p", "right": "q"})
    assert [r.name for r in report.layers] == ["left", "right", "cat"]


def test_unaligned_layers_are_listed_not_failed():
    k, t = _pair("tiny_resnet")  # Keras pads with a ZeroPadding2D, the port with padding=1 in the conv
    report = compare(k, t, _x("tiny_resnet"))
    assert report.ok
    assert dict(report.skipped) == {"b2_1_pad": dict(report.skipped)["b2_1_pad"]}
    assert "not aligned: b2_1_pad" in str(report) and "1 layer(s) not aligned" in report.verdict()
    assert "b2_1_conv" in {r.name for r in report.layers}


def test_one_export_serves_later_calls_without_going_stale():
    k, t = _pair("functional_activations")
    x = _x("functional_activations")
    assert compare(k, t, x).ok
    with torch.no_grad():
        t.conv3.bias.add_(0.5)  # changed in place after the first compare
    try:
        assert compare(k, t, x).first_divergence == "conv3"
    finally:
        with torch.no_grad():
            t.conv3.bias.sub_(0.5)
    t.extra = 1.0  # any attribute the forward might read makes a new export
    assert compare(k, t, x).ok


def test_hooks_take_over_where_export_fails_and_the_report_says_so():
    from xconv import zoo

    k = zoo.build("two_conv", "keras", random_biases=True)
    base = zoo.build("two_conv", "torch")
    transfer_weights(k, base)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv1_relu = base.conv1, nn.ReLU()
            self.conv2, self.conv2_relu = base.conv2, nn.ReLU()
            self.xconv_outputs = {"conv1": "conv1_relu", "conv2": "conv2_relu"}

        def forward(self, x):
            if float(x.sum()) > -1e9:  # a branch on a tensor's value: torch.export refuses it
                x = self.conv1_relu(self.conv1(x))
            return self.conv2_relu(self.conv2(x))

    report = compare(k, Branchy().eval(), zoo.sample_input("two_conv"))
    assert report.capture == "hooks" and report.ok
    assert "forward hooks" in report.verdict() and "torch.export failed" in report.verdict()


def test_repro_works_on_any_reported_layer_and_refuses_unknown_ones(tmp_path):
    from xconv.repro import rerun

    k, t = _pair("same_padding")
    broken, layer = twins.TWINS["same_padding"].planted["padding"](t)
    report = compare(k, broken, _x("same_padding"), mode="local")
    assert report.first_local_divergence == layer == "down1"
    data = rerun(report.repro(tmp_path / "down1.npz"))
    assert data["layer"] == "down1" and not data["recorded_torch_ok"] and data["xconv_translation_ok"]
    assert any("pad" in d for d in data["torch_repr"])  # the functional F.pad is part of the chain
    good = rerun(report.repro(tmp_path / "even4.npz", layer="even4"))
    assert good["recorded_torch_ok"] and good["torch_modules"] == ["pad2", "conv2"]
    with pytest.raises(BadInputError, match=r"No layer 'nope' in this report; its layers: \['down1'"):
        report.repro(tmp_path / "x.npz", layer="nope")
    assert not (tmp_path / "x.npz").exists()


class _SecondCallShifted(twins.SharedNet):
    """The shared conv's second call reads a shifted input: only that call (and what follows) differs."""

    def forward(self, x):
        x = self.act(self.entry(x))
        x = self.act(self.body(x))
        x = self.act(self.body(x + 0.05))
        x = self.act(self.mix(x))
        return self.out(torch.amax(x, dim=(2, 3)))


def test_every_call_of_a_shared_layer_has_its_own_row_aligned_to_the_matching_torch_call():
    k, t = _pair("shared_modules")
    x = _x("shared_modules")
    report = compare(k, t, x, mode="local")
    names = [r.name for r in report.layers]
    assert names.index("shared_conv") < names.index("relu_b") < names.index("shared_conv#1") < names.index("relu_c")
    assert report.ok and report["shared_conv#1"].local_ok, str(report)
    shifted = _SecondCallShifted().eval()
    shifted.load_state_dict(t.state_dict())
    bad = compare(k, shifted, x)
    assert bad["shared_conv"].ok and bad["relu_b"].ok  # the first call is still right
    assert bad.first_divergence == "shared_conv#1", str(bad)
    # a filter changed in the shared conv shows at its first call, and again at its second
    broken, layer = twins.TWINS["shared_modules"].planted["filter"](t)
    rows = compare(k, broken, x)
    assert rows.first_divergence == layer == "shared_conv" and not rows["shared_conv#1"].ok


def test_repro_covers_multi_input_layers_and_later_calls(tmp_path):
    from xconv.repro import rerun

    k, t = _pair("tiny_resnet")
    x = _x("tiny_resnet")
    report = compare(k, t, x)
    data = rerun(report.repro(tmp_path / "add.npz", layer="b2_add"))
    assert data["layer"] == "b2_add" and data["recorded_torch_ok"] and data["xconv_translation_ok"], data
    assert data["keras_reproduced_rel"] == 0.0
    with np.load(tmp_path / "add.npz") as saved:
        assert saved["input:0"].shape == saved["input:1"].shape == (2, 8, 8, 16)
    # a planted bug in the residual sum: the repro records the wrong sum from Keras' own inputs
    class Halved(twins.TinyResNet):
        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer1(x)
            b = self.layer2
            out = b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x)))))
            out = b.relu(out + 0.5 * b.downsample(x))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(out, 1), 1))

    halved = Halved().eval()
    halved.load_state_dict(t.state_dict())
    bad = compare(k, halved, x, mode="local")
    assert bad.first_divergence == "b2_add", str(bad)
    bad_data = rerun(bad.repro(tmp_path / "bad_add.npz", layer="b2_add"))
    assert not bad_data["recorded_torch_ok"] and bad_data["xconv_translation_ok"], bad_data
    kk, tt = _pair("shared_modules")
    later = rerun(compare(kk, tt, _x("shared_modules")).repro(tmp_path / "second.npz", layer="shared_conv#1"))
    assert later["layer"] == "shared_conv#1" and later["recorded_torch_ok"], later


def _hooks_only(module_cls):
    """A module torch.export refuses (a branch on a tensor's value), so compare falls back to hooks."""

    class Untraceable(module_cls):
        def forward(self, x):
            if float(x.sum()) > -1e9:
                return super().forward(x)
            return x

    return Untraceable


def _conv_pair(act_in_keras: bool, identity: bool = False):
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    y = L.Conv2D(4, 3, padding="same", activation="relu" if act_in_keras else None, name="conv")(inp)
    if not act_in_keras:
        y = L.ReLU(name="act")(y)
    if identity:
        y = L.Identity(name="ident")(y)
    k = keras.Model(inp, L.Conv2D(5, 3, padding="same", name="head")(y))
    k.get_layer("conv").bias.assign(np.linspace(-1, 1, 4).astype("float32"))
    return k


class _FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.ident, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Identity(), nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x):
        return self.head(self.ident(torch.nn.functional.relu(self.conv(x))))


class _InplaceRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x):
        return self.head(self.act(self.conv(x)))


class _NoRelu(_FunctionalRelu):
    def forward(self, x):
        return self.head(self.ident(self.conv(x)))


def test_hooks_follow_the_functional_activation_after_a_module_and_keep_values_before_inplace_ops():
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    k = _conv_pair(act_in_keras=True, identity=True)
    for cls in (_FunctionalRelu, _hooks_only(_FunctionalRelu)):
        t = cls().eval()
        transfer_weights(k, t)
        report = compare(k, t, x, mode="local")
        assert report.ok and [r.name for r in report.layers] == ["conv", "ident", "head"], str(report)
        assert not report.skipped  # nn.Identity is aligned in both captures
    assert report.capture == "hooks" and "may be affected" not in report.verdict()
    # Keras ReLU layer after a bias-free conv: nn.ReLU(inplace=True) must not overwrite the conv's kept value
    k2 = _conv_pair(act_in_keras=False)
    t2 = _hooks_only(_InplaceRelu)().eval()
    transfer_weights(k2, t2)
    report = compare(k2, t2, x)
    assert report.capture == "hooks" and report.ok and {"conv", "act", "head"} <= {r.name for r in report.layers}, str(report)


def test_hooks_name_the_rows_whose_activation_they_did_not_see():
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 3)).astype("float32")
    k = _conv_pair(act_in_keras=True, identity=True)
    t = _hooks_only(_NoRelu)().eval()  # a port that forgot the ReLU
    transfer_weights(k, t)
    report = compare(k, t, x)
    assert report.capture == "hooks" and report.first_divergence == "conv"
    assert "Rows that may be affected by the hook capture: 'conv'" in report.verdict()


class _LstmPort(nn.Module):
    """nn.LSTM returns (out, (h, c)): the port reads out (every step), out[:, -1] or h[-1]."""

    def __init__(self, read: str):
        super().__init__()
        self.rnn, self.head, self.read = nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 3), read

    def forward(self, x):
        out, (h, c) = self.rnn(x.transpose(1, 2))  # xconv feeds (N, features, steps)
        return self.head({"seq": out, "last": out[:, -1], "h": h[-1]}[self.read])


class _LinearWithAux(nn.Module):
    """A custom module with its own weights that returns (value, auxiliary statistic)."""

    def __init__(self):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.randn(3, 6)), nn.Parameter(torch.randn(3))

    def forward(self, x):
        y = torch.nn.functional.linear(x, self.weight, self.bias)
        return y, y.square().mean(-1)


class _AuxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.fc = nn.Linear(5, 6), _LinearWithAux()

    def forward(self, x):
        y, aux = self.fc(torch.relu(self.body(x)))
        return y + 0 * aux[:, None]


@pytest.mark.parametrize("read", ["seq", "last", "h"])
def test_a_module_with_several_outputs_is_read_at_the_output_the_keras_layer_gives(read):
    L = keras.layers
    inp = keras.Input((6, 4))
    y = L.LSTM(5, return_sequences=read == "seq", name="lstm")(inp)
    k = keras.Model(inp, L.Dense(3, name="fc")(y))
    t = _LstmPort(read).eval()
    transfer_weights(k, t)
    x = np.random.default_rng(4).normal(size=(2, 6, 4)).astype("float32")
    report = compare(k, t, x)
    assert report.ok and [r.name for r in report.layers] == ["lstm", "fc"], str(report)
    assert report["lstm"].shape == ((2, 6, 5) if read == "seq" else (2, 5))
    bad = copy.deepcopy(t)
    with torch.no_grad():
        bad.rnn.weight_hh_l0[7] += 0.5  # one gate row of the recurrent kernel
    assert compare(k, bad, x).first_divergence == "lstm"


def test_a_custom_module_returning_a_tuple_is_read_at_its_matching_element():
    L = keras.layers
    inp = keras.Input((5,))
    k = keras.Model(inp, L.Dense(3, name="fc")(L.Dense(6, activation="relu", name="body")(inp)))
    t = _AuxNet().eval()
    with torch.no_grad():  # by hand, as a user does for a custom module
        for layer, module in (("body", t.body), ("fc", t.fc)):
            kernel, bias = k.get_layer(layer).get_weights()
            module.weight.copy_(torch.from_numpy(kernel.T))
            module.bias.copy_(torch.from_numpy(bias + 0.1))
            k.get_layer(layer).bias.assign(bias + 0.1)
    x = np.random.default_rng(4).normal(size=(4, 5)).astype("float32")
    report = compare(k, t, x, align={"fc": "fc"})  # a custom class: xconv has no weight family for it, so it is pinned
    assert report.ok and [r.name for r in report.layers] == ["body", "fc"], str(report)
    with torch.no_grad():
        t.fc.bias[1] += 0.25
    assert compare(k, t, x, align={"fc": "fc"}).first_divergence == "fc"


class SeparableConv2d(nn.Module):
    """The way ports write Keras' SeparableConv2D: one module, a depthwise and a 1x1 conv inside."""

    def __init__(self, cin, cout, k, multiplier=1):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin * multiplier, k, padding=k // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin * multiplier, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def _separable_keras():
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    y = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, activation="relu", name="sep")(inp)
    k = keras.Model(inp, L.Conv2D(4, 1, name="head")(y))
    rng = np.random.default_rng(1)
    k.set_weights([rng.normal(size=w.shape).astype("float32") for w in k.get_weights()])  # biases too
    return k


def test_separable_conv_weights_move_into_one_module_both_ways_and_compare_matches():
    k = _separable_keras()

    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            self.sep, self.head = SeparableConv2d(3, 6, 3, multiplier=2), nn.Conv2d(6, 4, 1)

        def forward(self, x):
            return self.head(torch.relu(self.sep(x)))

    t = Port().eval()
    manifest = transfer_weights(k, t)
    assert {e.target for e in manifest.entries} >= {"sep.depthwise.weight", "sep.pointwise.weight", "sep.pointwise.bias"}
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    report = compare(k, t, x)
    assert report.ok and [r.name for r in report.layers] == ["sep", "head"], str(report)
    back = keras.models.clone_model(k)
    transfer_weights(t, back)
    assert all(np.array_equal(a, b) for a, b in zip(k.get_weights(), back.get_weights()))  # bit-exact round trip
    with torch.no_grad():
        t.sep.depthwise.weight[4, 0, 1, 1] += 0.5  # one tap of the second multiplier of input channel 2
    assert compare(k, t, x).first_divergence == "sep"


def _two_module_port(style, dw_bias=False):
    dw, pw = nn.Conv2d(3, 6, 3, padding=1, groups=3, bias=dw_bias), nn.Conv2d(6, 6, 1)

    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            if style == "two modules":
                self.sep_dw, self.sep_pw = dw, pw
            else:
                self.block = nn.Sequential(dw, pw)
            self.head = nn.Conv2d(6, 4, 1)

        def forward(self, x):
            y = self.sep_pw(self.sep_dw(x)) if style == "two modules" else self.block(x)
            return self.head(torch.relu(y))

    return Port().eval(), dw


@pytest.mark.parametrize("style", ["two modules", "sequential"])
def test_separable_conv_ported_as_two_modules_is_filled_and_compare_matches(style):
    """A SeparableConv2D written as a depthwise Conv2d (groups=in) then a 1x1 Conv2d: compare's
    alignment pairs the layer with the two modules, and transfer fills them as one unit."""
    k = _separable_keras()
    t, dw = _two_module_port(style)
    manifest = transfer_weights(k, t)
    unit = "sep_dw+sep_pw" if style == "two modules" else "block.0+block.1"
    assert {e.target for e in manifest.entries} >= {f"{unit}.depthwise.weight", f"{unit}.pointwise.weight", f"{unit}.pointwise.bias"}
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 3)).astype("float32")
    report = compare(k, t, x)
    assert report.ok and [r.name for r in report.layers] == ["sep", "head"], str(report)
    back = keras.models.clone_model(k)
    transfer_weights(t, back)
    assert all(np.array_equal(a, b) for a, b in zip(k.get_weights(), back.get_weights()))  # bit-exact round trip
    with torch.no_grad():
        dw.weight[4, 0, 1, 1] += 0.5
    assert compare(k, t, x).first_divergence == "sep"


def test_separable_conv_into_two_modules_with_a_depthwise_bias_is_refused_untouched():
    """Keras' SeparableConv2D has no depthwise bias: a port whose depthwise conv has one cannot be
    filled from it, and nothing is half-written."""
    k = _separable_keras()
    t, _ = _two_module_port("two modules", dw_bias=True)
    before = {n: p.detach().clone() for n, p in t.named_parameters()}
    with pytest.raises(MismatchedModelsError, match="sep"):
        transfer_weights(k, t)
    assert all(torch.equal(before[n], p) for n, p in t.named_parameters())


def test_fit_unit_axes_squeezes_unit_axes_only():
    from xconv.comparison.align import fit_unit_axes

    x = np.arange(16.0).reshape(2, 1, 1, 8)
    assert fit_unit_axes(x, (2, 8)).shape == (2, 8)
    assert fit_unit_axes(np.zeros((2, 8)), (2, 8, 1, 1)).shape == (2, 8, 1, 1)
    assert fit_unit_axes(np.zeros((2, 4, 2)), (2, 8)) is None  # real axes are never reshaped
    assert fit_unit_axes(np.zeros((2, 2, 4)), (2, 4, 2)) is None  # same elements, other axes
    assert fit_unit_axes(np.zeros((1, 2, 8)), (2, 8)) is None  # the batch axis is kept
    assert fit_unit_axes(np.zeros((2, 1, 4, 5)), (2, 4, 1, 5)) is None  # a moved unit axis is a transpose


def _residual_keras():
    L = keras.layers
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inp)
    s = L.Add(name="add")([L.BatchNormalization(name="bn")(x), x])
    k = keras.Model(inp, L.Conv2D(5, 3, padding="same", name="head")(L.ReLU(name="relu")(s)))
    bn = k.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 4).astype("float32"))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 4).astype("float32"))
    return k


class _Residual(nn.Module):
    """A residual step as ports write it: an in-place add on BatchNorm's output, then torch.relu."""

    scale = 1.0

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, eps=1e-3), nn.Conv2d(4, 5, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        out = self.bn(x)
        out += x * self.scale if self.scale != 1.0 else x
        return self.head(torch.relu(out))


def test_hooks_align_an_inplace_add_and_a_functional_activation_after_a_module():
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype("float32")
    k = _residual_keras()
    t = _hooks_only(_Residual)().eval()
    transfer_weights(k, t)
    report = compare(k, t, x)
    assert report.capture == "hooks" and report.ok, str(report)
    assert [r.name for r in report.layers] == ["conv", "bn", "add", "relu", "head"] and not report.skipped, str(report)
    local = compare(k, t, x, mode="local")  # the rows after a value have no module to feed: accumulated values only
    assert local.ok and local["add"].local_ok is None and local["bn"].local_ok, str(local)
    # a planted bug in the add (the shortcut scaled) shows at the add, not before it
    bad = _hooks_only(_Residual)().eval()
    bad.load_state_dict(t.state_dict())
    bad.scale = 1.5
    report = compare(k, bad, x)
    assert report.capture == "hooks" and report.first_divergence == "add", str(report)
    assert report["bn"].ok and not report["relu"].ok
    # a port that forgot the shortcut: the add's row is not aligned (and says why), never a false verdict
    class NoShortcut(_Residual):
        def forward(self, x):
            return self.head(torch.relu(self.bn(self.conv(x))))

    gone = _hooks_only(NoShortcut)().eval()
    gone.load_state_dict(t.state_dict())
    report = compare(k, gone, x)
    skipped = dict(report.skipped)
    assert "add" in skipped and "call on the value before it was seen" in skipped["add"], report.skipped
    assert report.first_divergence == "head"


@needs_keras
def test_a_port_that_takes_the_keras_layout_is_fed_it_and_the_error_says_how():
    """temporal_conv1d's port takes (batch, time, features) and transposes itself."""
    from xconv import compare
    from xconv.errors import BadInputError

    twins = pytest.importorskip("corpus.twins")
    twin = twins.TWINS["temporal_conv1d"]
    k = twin.build_keras()
    t = twin.torch_for(k)
    x = np.random.default_rng(5).normal(size=twin.input_shape).astype("float32")
    with pytest.raises(BadInputError, match="input_layout='keras'"):
        compare(k, t, x, input_layout="torch")  # told channels-first: the port fails, the message says what to pass
    told = compare(k, t, x, input_layout="keras")
    assert told.ok and not any("fails on channels-first" in n for n in told.notes), str(told)
    found = compare(k, t, x)  # found by itself: it fails channels-first and runs on the Keras layout
    assert found.ok and any("fails on channels-first" in n for n in found.notes), str(found)
    broken, layer = twin.planted["filter"](t)
    assert compare(k, broken, x, input_layout="keras").first_divergence == layer
    with pytest.raises(BadInputError, match="input_layout"):
        compare(k, t, x, input_layout="nhwc")


@needs_keras
def test_xconv_compare_takes_input_layout(tmp_path, capsys):
    import pathlib

    from xconv.cli.main import main

    twins = pytest.importorskip("corpus.twins")
    twin = twins.TWINS["temporal_conv1d"]
    k = twin.build_keras()
    t = twin.torch_for(k)
    k.save(tmp_path / "model.keras")
    torch.save(t.state_dict(), tmp_path / "port.pt")
    spec = f"{pathlib.Path(twins.__file__).resolve()}:TemporalConvNet"
    args = ["compare", str(tmp_path / "model.keras"), spec, "--weights", str(tmp_path / "port.pt")]
    assert main(args + ["--input-layout", "keras"]) == 0
    assert "MATCH" in capsys.readouterr().out
    assert main(args + ["--input-layout", "torch"]) == 2
    assert "--input-layout keras" in capsys.readouterr().err
