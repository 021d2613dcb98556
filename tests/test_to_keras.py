"""torch_to_keras: traced modules become plain Keras models that match, both round trips exact."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import needs_keras
from xconv import compare, keras_to_torch, torch_to_keras, zoo
from xconv.errors import UnsupportedLayerError

pytestmark = needs_keras


def shape_of(name):
    s = zoo.spec(name).input_shape
    return (s[-1], *s[:-1])


def check(module, input_shape, dtype="float64", batch=2, seed=0):
    module = module.to(getattr(torch, dtype)).eval()
    keras_model = torch_to_keras(module, input_shape, dtype=dtype)
    x = np.random.default_rng(seed).standard_normal((batch, *input_shape)).astype(dtype)
    report = compare(module, keras_model, x, dtype=dtype)
    assert report.ok, str(report)
    if dtype == "float64":
        assert max(r.max_rel for r in report.layers) <= 1e-10, str(report)
    return keras_model, report


def randomized(module, seed=0):
    zoo.randomize_biases(module, seed)
    return module


@pytest.mark.parametrize("name", zoo.names())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zoo_twins_translate_to_keras_and_match(name, dtype):
    t = zoo.build(name, "torch", random_biases=True, dtype=dtype)
    k, report = check(t, shape_of(name), dtype)
    names, compared = {l.name for l in k.layers}, {r.name for r in report.layers}
    for layer in zoo.spec(name).layers:  # every layer of the twin is a Keras layer of its name, and compared
        assert layer.name in names, (layer.name, sorted(names))
        assert layer.name in compared, (layer.name, sorted(compared))


def test_round_trip_keras_torch_keras_is_bit_exact():
    k = zoo.build("conv3d_demo", "keras", random_biases=True)
    back = torch_to_keras(keras_to_torch(k), shape_of("conv3d_demo"))
    for layer in k.layers:
        if layer.weights:
            want, got = layer.get_weights(), back.get_layer(layer.name).get_weights()
            assert len(want) == len(got), layer.name
            assert all(a.tobytes() == b.tobytes() for a, b in zip(want, got)), layer.name
    x = zoo.sample_input("conv3d_demo", 2)
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(k(x)), rtol=1e-5, atol=1e-7)


def test_round_trip_torch_keras_torch_is_bit_exact():
    t = zoo.build("unet_encoder", "torch", seed=4, random_biases=True)
    again = keras_to_torch(torch_to_keras(t, shape_of("unet_encoder")))
    want, got = t.state_dict(), again.state_dict()
    assert set(want) == set(got)
    assert all(torch.equal(want[key], got[key]) for key in want)


class Branchy(nn.Module):
    """Functional calls, skips, concatenation, padding and up-sampling."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8, eps=1e-3)
        self.left = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.right = nn.Conv2d(8, 8, 1)
        self.up = nn.ConvTranspose2d(16, 4, 3, stride=2, padding=1, output_padding=1)
        self.act = nn.PReLU(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * 7 * 7 + 4, 5)
        self.norm = nn.LayerNorm(5, eps=1e-4)

    def trunk(self, x):
        x = F.relu(self.bn(self.stem(x)))
        a, b = self.left(x), torch.sigmoid(self.right(x))
        y = torch.cat([a + b, a * b], dim=1)
        y = self.act(self.up(y))
        y = F.pad(y, (1, 0, 0, 1))
        return F.interpolate(y, scale_factor=2, mode="nearest")

    def forward(self, x):
        return self.trunk(x)[:, :, :7, :7]  # slicing: not translated (the test expects the error)


class BranchyOK(Branchy):
    def __init__(self):
        super().__init__()
        self.shrink = nn.AvgPool2d(4)

    def forward(self, x):
        y = self.trunk(x)
        g = self.pool(y).view(y.size(0), -1)
        return self.norm(self.head(torch.cat([torch.flatten(self.shrink(y), 1), g], dim=1)))


def test_functional_calls_skips_and_several_module_kinds():
    check(randomized(BranchyOK()), (3, 13, 13))


def test_slicing_that_fx_refused_now_translates_and_matches():
    check(randomized(Branchy()), (3, 13, 13))


class Cumulative(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)

    def forward(self, x):
        return self.conv(x).cumsum(dim=1)  # no Keras converter for aten::cumsum


def test_unsupported_op_names_the_op_module_source_line_and_an_alternative():
    with pytest.raises(UnsupportedLayerError, match=r"aten::cumsum.*node 'cumsum'.*module '<root>' Cumulative.*test_to_keras.py:\d+: return self.conv\(x\).cumsum\(dim=1\).*Nearest supported: aten::"):
        torch_to_keras(Cumulative(), (2, 8, 8))


SEQUENTIAL_CASES = {
    "conv1d-stack": (nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ELU(0.5), nn.Conv1d(4, 3, 4, stride=2, padding=2), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(3 * 4, 2)), (2, 15)),
    "conv3d-stack": (nn.Sequential(nn.Conv3d(1, 3, 3, padding=1), nn.ReLU6(), nn.AvgPool3d(2), nn.Conv3d(3, 2, 2), nn.GroupNorm(2, 2), nn.Hardswish()), (1, 8, 8, 6)),
    "activations": (nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), nn.LeakyReLU(0.2), nn.SiLU(), nn.GELU(), nn.Tanh(), nn.Hardsigmoid(), nn.Softmax(dim=1)), (3, 9, 9)),
    "transpose-and-upsample": (nn.Sequential(nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1), nn.Upsample(scale_factor=2, mode="bilinear"), nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(3, 2, 2)), (2, 5, 6)),
    "pool-padding": (nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.AvgPool2d(3, stride=1, padding=1), nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), nn.MaxPool2d(2, ceil_mode=True)), (2, 9, 9)),
    "dense-head": (nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Dropout(0.3), nn.BatchNorm1d(8), nn.PReLU(), nn.Linear(8, 3), nn.Identity()), (3, 2, 2)),
}


@pytest.mark.parametrize("case", list(SEQUENTIAL_CASES), ids=list(SEQUENTIAL_CASES))
def test_module_families_match(case):
    module, shape = SEQUENTIAL_CASES[case]
    dtype = "float32" if case in ("conv3d-stack", "transpose-and-upsample", "activations") else "float64"
    # TF: no float64 3D pooling, bilinear resize returns float32, exact gelu uses a float32 constant
    check(randomized(module), shape, dtype)


def test_planted_bug_after_translation_is_named():
    t = zoo.build("two_conv", "torch", random_biases=True)
    k = torch_to_keras(t, shape_of("two_conv"))
    with torch.no_grad():
        t.conv2.weight[3] *= 1.05
    report = compare(t, k, zoo.sample_input("two_conv", layout="torch"))
    assert report.first_divergence == "conv2"


def test_saved_keras_file_loads_without_xconv(tmp_path):
    t = zoo.build("conv3d_demo", "torch", random_biases=True)
    k = torch_to_keras(t, shape_of("conv3d_demo"))
    k.save(tmp_path / "m.keras")
    x = zoo.sample_input("conv3d_demo", 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", np.asarray(k(x)))
    code = (
        "import sys; sys.modules['xconv'] = None\n"
        "import numpy as np, keras\n"
        f"m = keras.saving.load_model({str(tmp_path / 'm.keras')!r}, safe_mode=True)\n"
        f"np.testing.assert_allclose(np.asarray(m(np.load({str(tmp_path / 'x.npy')!r}))), np.load({str(tmp_path / 'want.npy')!r}), rtol=1e-6)\n"
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin"})
    assert proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


@st.composite
def torch_nets(draw):
    layers, channels, size = [], draw(st.integers(1, 3)), draw(st.integers(7, 12))
    c = channels
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "bn", "pool", "act"]))
        if kind == "conv":
            k = draw(st.integers(1, 4))
            out = draw(st.integers(1, 4))
            layers.append(nn.Conv2d(c, out, k, stride=draw(st.integers(1, 2)), padding=draw(st.integers(0, k // 2))))
            c = out
        elif kind == "bn":
            layers.append(nn.BatchNorm2d(c, eps=draw(st.sampled_from([1e-5, 1e-3]))))
        elif kind == "pool":
            layers.append(draw(st.sampled_from([nn.MaxPool2d(2), nn.AvgPool2d(2)])))
        else:
            layers.append(draw(st.sampled_from([nn.ReLU(), nn.Tanh(), nn.SiLU(), nn.ELU()])))
    return nn.Sequential(*layers), (channels, size, size + 1)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(torch_nets(), st.integers(0, 1000))
def test_random_traceable_nets_match(net_and_shape, seed):
    from hypothesis import assume

    net, shape = net_and_shape
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(1, *shape))
    except RuntimeError:  # the drawn layers shrink the map below a kernel: not a model at all
        assume(False)
    assume(min(out.shape[2:], default=1) >= 1)
    check(randomized(net, seed), shape)


def test_max_pooling_pads_with_minus_infinity_unless_the_input_is_a_relu_output():
    pool = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1))
    k, _ = check(pool, (2, 10, 10))
    assert "ZeroPadding2D" not in {type(l).__name__ for l in k.layers}
    x = -1.0 - np.random.default_rng(1).random((1, 10, 10, 2))  # all negative: a zero pad would win at the borders
    want = pool.double()(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).numpy()
    np.testing.assert_array_equal(np.moveaxis(np.asarray(k(x)), -1, 1), want)
    after_relu = nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1))
    k2, _ = check(randomized(after_relu), (2, 10, 10))
    assert "ZeroPadding2D" in {type(l).__name__ for l in k2.layers}  # non-negative input: zeros are exact


class Functional(nn.Module):
    """Functional calls on the module's own weights, reshapes of maps, and the two custom layers."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, 3, 3) * 0.3)
        self.b = nn.Parameter(torch.randn(4) * 0.1)
        self.fc_w = nn.Parameter(torch.randn(48, 4 * 3 * 3) * 0.1)
        self.gelu = nn.GELU(approximate="tanh")
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        y = F.conv2d(x, self.w, self.b, stride=2, padding=1)  # (N, 4, 3, 3)
        v = F.linear(torch.flatten(y, 1), self.fc_w)  # (N, 48)
        maps = self.gelu(v.view(v.size(0), 3, 4, 4))  # a vector back into maps
        maps = self.up(maps).reshape(maps.shape[0], 3, 4, 16)  # reshape of feature maps
        return self.head(maps)


def test_functional_weights_reshapes_and_registered_custom_layers(tmp_path):
    k, report = check(Functional(), (3, 6, 5))
    kinds = {type(l).__name__ for l in k.layers}
    assert {"GeluTanh", "Reshape", "Dense"} <= kinds
    assert "Permute" not in kinds  # the reshapes move no data: the layout flows through them
    k.save(tmp_path / "custom.keras")  # registered: saves and loads back where xconv.translate.torch_to_keras.custom_layers is imported
    import keras

    import xconv.translate.torch_to_keras.custom_layers  # noqa: F401

    again = keras.saving.load_model(tmp_path / "custom.keras", safe_mode=True)
    x = np.random.default_rng(0).standard_normal((1, 6, 5, 3))
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(k(x)), rtol=1e-12)


def test_torch_to_keras_prints_no_warning_of_torch_export(recwarn):
    """torch.export's own pytree deprecation ('isinstance(treespec, LeafSpec) is deprecated', a
    FutureWarning raised while it decomposes the graph) is torch's business, not the user's."""
    import warnings

    from xconv import zoo
    from xconv.translate.torch_to_keras import torch_to_keras

    warnings.simplefilter("always")
    torch_to_keras(zoo.build("two_conv", "torch"), (1, 28, 28))
    assert not [w for w in recwarn if "LeafSpec" in str(w.message)], [str(w.message) for w in recwarn]
