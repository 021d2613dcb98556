"""keras_to_torch: every family against Keras, real architectures, generated source, planted bugs."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv import compare, keras_to_torch, zoo
from xconv.errors import UnsupportedLayerError

pytestmark = needs_keras
keras = pytest.importorskip("keras")
L = keras.layers


def randomized(model, seed=0):
    zoo.randomize_biases(model, seed)  # non-zero biases and BatchNorm statistics
    return model


def check(model, x, dtype="float64", **kw):
    torch_model = keras_to_torch(model, **kw)
    report = compare(model, torch_model, x, dtype=dtype)
    assert report.ok, str(report)
    assert not report.skipped, report.skipped
    if dtype == "float64":
        assert max(r.max_rel for r in report.layers) <= 1e-9, str(report)
    return torch_model, report


def seq(input_shape, *layers, name="m"):
    return randomized(keras.Sequential([keras.Input(input_shape), *layers], name=name))


def data(shape, batch=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, *shape))


@pytest.mark.parametrize("name", zoo.names())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zoo_models_translate_and_match(name, dtype):
    k = zoo.build(name, "keras", random_biases=True)
    check(k, zoo.sample_input(name, 2, dtype=dtype), dtype=dtype)


# (id, input shape, layers, dtype): each family with its options, odd sizes on purpose
CASES = [
    ("conv1d-same-even-stride2", (11, 3), lambda: [L.Conv1D(4, 4, strides=2, padding="same")], "float64"),
    ("conv1d-causal-dilated", (13, 2), lambda: [L.Conv1D(3, 3, padding="causal", dilation_rate=2, activation="tanh")], "float64"),
    ("conv2d-same-even-stride3", (17, 13, 3), lambda: [L.Conv2D(5, (4, 2), strides=3, padding="same", activation="relu")], "float64"),
    ("conv2d-valid-dilated-nobias", (15, 15, 2), lambda: [L.Conv2D(3, 3, dilation_rate=(2, 1), use_bias=False)], "float64"),
    ("conv2d-grouped", (9, 9, 6), lambda: [L.Conv2D(4, 3, groups=2, padding="same", activation="sigmoid")], "float64"),
    ("conv3d-same-stride2", (7, 9, 5, 2), lambda: [L.Conv3D(3, (2, 3, 3), strides=2, padding="same", activation="elu")], "float64"),
    ("conv2d-transpose-same-odd", (5, 6, 3), lambda: [L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")], "float64"),
    ("conv2d-transpose-same-even", (5, 6, 3), lambda: [L.Conv2DTranspose(4, (4, 2), strides=(2, 3), padding="same")], "float64"),
    ("conv2d-transpose-valid-small-kernel", (5, 4, 2), lambda: [L.Conv2DTranspose(3, 2, strides=3)], "float64"),
    ("conv2d-transpose-output-padding", (5, 5, 2), lambda: [L.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1)], "float64"),
    # (TF's CPU kernels have no dilated transposed convolution, so there is no Keras result to compare with)
    ("conv1d-transpose", (7, 3), lambda: [L.Conv1DTranspose(2, 5, strides=2, padding="same")], "float64"),
    ("conv3d-transpose", (3, 4, 2, 2), lambda: [L.Conv3DTranspose(2, 3, strides=(2, 1, 2), padding="same")], "float64"),
    ("depthwise2d-mult", (10, 11, 3), lambda: [L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2)], "float64"),
    ("depthwise1d", (12, 4), lambda: [L.DepthwiseConv1D(5, padding="valid", activation="relu6")], "float64"),
    ("separable2d", (12, 10, 3), lambda: [L.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", activation="swish")], "float64"),
    ("separable1d", (12, 3), lambda: [L.SeparableConv1D(4, 4, padding="same", strides=2)], "float64"),
    ("dense-after-flatten", (6, 5, 3), lambda: [L.Conv2D(4, 3), L.Flatten(), L.Dropout(0.5), L.Dense(7, activation="relu"), L.Dense(3, activation="softmax")], "float64"),
    # Keras' gelu on TF rounds its constants to float32 even in float64 models: mimicked (KerasGELU)
    ("gelu", (8,), lambda: [L.Dense(7, activation="gelu"), L.Activation("gelu")], "float64"),
    ("gelu-float32", (8,), lambda: [L.Dense(7, activation="gelu")], "float32"),
    ("dense-nd", (5, 7, 4), lambda: [L.Dense(6, activation="selu")], "float64"),
    ("flatten-output", (4, 3, 2), lambda: [L.Conv2D(2, 1), L.Flatten()], "float64"),
    ("batchnorm", (8, 8, 3), lambda: [L.Conv2D(4, 3), L.BatchNormalization(epsilon=1e-2), L.Activation("hard_sigmoid")], "float64"),
    ("batchnorm-height-axis", (5, 4, 3), lambda: [L.BatchNormalization(axis=1)], "float64"),
    ("batchnorm-vector", (6,), lambda: [L.Dense(5), L.BatchNormalization(center=False)], "float64"),
    ("layernorm-maps", (6, 5, 4), lambda: [L.LayerNormalization()], "float64"),
    ("layernorm-vector", (6,), lambda: [L.LayerNormalization(epsilon=1e-5), L.Activation("softplus")], "float64"),
    ("groupnorm", (6, 5, 8), lambda: [L.GroupNormalization(groups=4), L.Activation("softsign")], "float64"),
    ("relu-options", (9,), lambda: [L.ReLU(max_value=0.5, negative_slope=0.1, threshold=0.2)], "float64"),
    ("leaky-prelu-elu", (7, 7, 2), lambda: [L.LeakyReLU(0.3), L.PReLU(shared_axes=[1, 2]), L.ELU(alpha=0.7)], "float64"),
    # activation="leaky_relu": TF applies its 0.2 as a float32 attribute, also in float64 (mimicked)
    ("leaky-relu-activation", (8,), lambda: [L.Dense(6, activation="leaky_relu"), L.Activation("leaky_relu")], "float64"),
    ("prelu-per-element", (5, 4, 2), lambda: [L.PReLU()], "float64"),
    ("softmax-axis", (5, 4, 3), lambda: [L.Softmax(axis=1)], "float64"),
    ("activations", (8,), lambda: [L.Activation("exponential"), L.Activation("mish"), L.Activation("linear")], "float64"),
    ("maxpool2d-same", (9, 8, 2), lambda: [L.MaxPooling2D(3, strides=2, padding="same")], "float64"),
    ("avgpool2d-same-asym", (9, 8, 2), lambda: [L.AveragePooling2D(2, strides=2, padding="same")], "float64"),
    ("avgpool2d-same-sym", (9, 9, 2), lambda: [L.AveragePooling2D(3, strides=1, padding="same")], "float64"),
    ("pool1d", (13, 3), lambda: [L.MaxPooling1D(2), L.AveragePooling1D(3, padding="same")], "float64"),
    ("pool3d", (7, 6, 5, 2), lambda: [L.MaxPooling3D(2, padding="same"), L.AveragePooling3D(2)], "float32"),
    ("global-pools", (7, 6, 3), lambda: [L.GlobalAveragePooling2D(keepdims=True), L.GlobalMaxPooling2D()], "float64"),
    ("global-1d-3d", (5, 4, 3, 2), lambda: [L.GlobalMaxPooling3D()], "float64"),
    ("zeropad-crop-upsample", (6, 7, 2), lambda: [L.ZeroPadding2D(((1, 2), (0, 3))), L.Cropping2D(((2, 0), (1, 1))), L.UpSampling2D((2, 3))], "float64"),
    # TF's bilinear resize returns float32 whatever the input dtype: compared in float32
    ("upsample-bilinear", (5, 6, 2), lambda: [L.UpSampling2D(2, interpolation="bilinear")], "float32"),
    ("pad-crop-up-1d", (9, 2), lambda: [L.ZeroPadding1D((2, 1)), L.Cropping1D((1, 3)), L.UpSampling1D(3)], "float64"),
    ("pad-crop-up-3d", (4, 5, 3, 2), lambda: [L.ZeroPadding3D(1), L.Cropping3D(((1, 0), (0, 1), (1, 1))), L.UpSampling3D(2)], "float64"),
    ("reshape-permute", (4, 6, 2), lambda: [L.Reshape((6, 4, 2)), L.Permute((2, 1, 3)), L.Conv2D(3, 2)], "float64"),
    ("repeat-vector", (5,), lambda: [L.RepeatVector(4), L.Conv1D(2, 2)], "float64"),
    ("rescaling", (6, 6, 3), lambda: [L.Rescaling(1 / 255.0, offset=-0.5), L.Conv2D(2, 3)], "float64"),
    ("identity-at-inference", (6, 6, 3), lambda: [L.GaussianNoise(1.0), L.SpatialDropout2D(0.5), L.GaussianDropout(0.3), L.Conv2D(2, 3)], "float64"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_family_matches_keras(case):
    _, shape, layers, dtype = case
    model = seq(shape, *layers())
    check(model, data(shape), dtype=dtype)


def test_normalization_layer_with_adapted_statistics():
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(1).normal(3.0, 2.0, (64, 5, 5, 3)))
    check(seq((5, 5, 3), norm, L.Conv2D(2, 3)), data((5, 5, 3)))


def test_functional_graph_with_skips_shared_layers_nested_models_and_several_io():
    inner = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(4, 3, padding="same", activation="relu", name="inner_conv")], name="inner")
    a_in = keras.Input((8, 8, 3), name="image")
    b_in = keras.Input((8, 8, 4), name="hint")
    a = L.Conv2D(4, 3, padding="same", name="stem")(a_in)
    b = inner(a)
    shared = L.Conv2D(4, 1, name="shared")
    s1, s2 = shared(b), shared(b_in)
    merged = L.Add(name="add")([s1, s2, a])
    cat = L.Concatenate(axis=-1, name="cat")([merged, b_in])
    sub = L.Subtract(name="sub")([s1, s2])
    mx = L.Maximum(name="max")([L.Multiply(name="mul")([sub, a]), L.Average(name="avg")([s1, s2])])
    mn = L.Minimum(name="min")([mx, merged])
    vec = L.GlobalAveragePooling2D(name="gap")(cat)
    model = randomized(keras.Model([a_in, b_in], [L.Dense(3, name="head")(vec), mn], name="graph"))
    x = [data((8, 8, 3)), data((8, 8, 4), seed=1)]
    t, report = check(model, x)
    assert {r.name for r in report.layers} >= {"stem", "inner", "add", "cat", "head", "min"}
    assert t.shared is not None and "shared_2" not in dict(t.named_modules())  # one module, called twice


def test_channels_last_io_and_any_batch_size():
    k = zoo.build("two_conv", "keras", random_biases=True)
    t = keras_to_torch(k, channels_last_io=True)
    for batch in (1, 3):
        x = zoo.sample_input("two_conv", batch)
        want = np.asarray(k(x))
        with torch.no_grad():
            got = t(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (batch, 25, 25, 6)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["unet_encoder", "conv3d_demo"])
def test_translated_models_have_no_layout_transposes(name):
    t = keras_to_torch(zoo.build(name, "keras"))
    graph = torch.fx.symbolic_trace(t).graph
    names = [str(n.target) for n in graph.nodes]
    assert not [n for n in names if any(w in n for w in ("permute", "transpose", "movedim"))], names
    modules = dict(t.named_modules())
    assert type(modules["conv4_2" if name == "unet_encoder" else "conv3d_a"]) in (torch.nn.Conv2d, torch.nn.Conv3d)


def test_planted_bug_in_a_translated_module_is_named():
    k = zoo.build("unet_encoder", "keras", random_biases=True)
    t = keras_to_torch(k)
    t.conv4_2__pad = torch.nn.ZeroPad2d((2, 1, 2, 1))
    report = compare(k, t, zoo.sample_input("unet_encoder"))
    assert report.first_divergence == "conv4_2"


def test_unsupported_layer_is_refused_before_anything_is_written(tmp_path):
    model = keras.Sequential([keras.Input((5, 6, 6, 3)), L.ConvLSTM2D(4, 3), L.Flatten(), L.Dense(2)], name="rnn")
    with pytest.raises(UnsupportedLayerError, match=r"'ConvLSTM2D' \(layer 'conv_lstm2d.*'\)\. .*Supported: .*Conv2D"):
        keras_to_torch(model, source=tmp_path / "model.py")
    assert list(tmp_path.iterdir()) == []


def test_generated_source_runs_without_xconv_or_tensorflow(tmp_path):
    k = zoo.build("conv3d_demo", "keras", random_biases=True)
    keras_to_torch(k, source=tmp_path / "model.py")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.py"]
    x = zoo.sample_input("conv3d_demo", 2)
    np.save(tmp_path / "x.npy", np.moveaxis(x, -1, 1))
    np.save(tmp_path / "want.npy", np.asarray(k(x)))
    code = f"""
import sys
for blocked in ("xconv", "tensorflow", "keras"):
    sys.modules[blocked] = None  # importing any of them now fails
sys.path.insert(0, {str(tmp_path)!r})
import numpy as np, torch
from model import Conv3dDemo
m = Conv3dDemo()
m.load_state_dict(torch.load({str(tmp_path / "model.pt")!r}, weights_only=True))
m.eval()
with torch.no_grad():
    got = m(torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))).numpy()
np.testing.assert_allclose(got, np.load({str(tmp_path / "want.npy")!r}), rtol=1e-5, atol=1e-7)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    text = (tmp_path / "model.py").read_text()
    assert "self.conv3d_a = nn.Conv3d(1, 2" in text and 'torch.load("model.pt"' in text


# ---- data_format="channels_first" ---------------------------------------------------------------
# Keras' channels_first maps are (N, C, *spatial), torch's own order: the translation runs those
# layers on them as they come. TF's CPU conv kernels are NHWC only in float64, so these compare in
# float32 (Keras transposes for oneDNN there); the float64 check below uses a channels_last twin.
CF = {"data_format": "channels_first"}
CF_CASES = [
    ("conv1d-same-stride2", (3, 11), lambda: [L.Conv1D(4, 4, strides=2, padding="same", activation="softmax", **CF)]),
    ("conv2d-same-dilated", (3, 9, 8), lambda: [L.Conv2D(5, (3, 2), dilation_rate=(2, 1), padding="same", **CF)]),
    ("conv2d-same-even-stride2", (2, 9, 8), lambda: [L.Conv2D(3, 4, strides=2, padding="same", **CF)]),
    ("conv3d", (2, 5, 6, 4), lambda: [L.Conv3D(3, 3, padding="same", activation="relu", **CF)]),
    ("conv2d-transpose", (3, 5, 6), lambda: [L.Conv2DTranspose(4, 3, strides=2, padding="same", **CF)]),
    ("conv1d-transpose", (3, 7), lambda: [L.Conv1DTranspose(2, 5, strides=2, padding="same", **CF)]),
    ("conv3d-transpose", (2, 3, 4, 2), lambda: [L.Conv3DTranspose(2, 3, strides=(2, 1, 2), padding="same", **CF)]),
    ("depthwise2d", (3, 10, 9), lambda: [L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2, **CF)]),
    ("depthwise1d", (4, 12), lambda: [L.DepthwiseConv1D(5, **CF)]),
    ("separable2d", (3, 10, 9), lambda: [L.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", **CF)]),
    ("separable1d", (3, 12), lambda: [L.SeparableConv1D(4, 4, padding="same", strides=2, **CF)]),
    ("pooling", (3, 11, 10), lambda: [L.MaxPooling2D(3, strides=2, padding="same", **CF), L.AveragePooling2D(2, padding="same", **CF), L.AveragePooling2D(2, **CF)]),
    ("pooling-1d-3d", (2, 4, 6, 5), lambda: [L.MaxPooling3D(2, **CF), L.Reshape((4, 6)), L.MaxPooling1D(2, **CF), L.AveragePooling1D(1, **CF)]),
    ("global-pooling", (3, 6, 5), lambda: [L.Conv2D(4, 3, **CF), L.GlobalMaxPooling2D(keepdims=True, **CF), L.GlobalAveragePooling2D(**CF)]),
    ("batchnorm-axis1", (3, 6, 5), lambda: [L.Conv2D(4, 3, **CF), L.BatchNormalization(axis=1), L.ReLU()]),
    ("flatten-dense", (3, 6, 5), lambda: [L.Conv2D(4, 3, **CF), L.Flatten(), L.Dense(7)]),
    ("flatten-channels-first-dense", (3, 6, 5), lambda: [L.Conv2D(4, 3, **CF), L.Flatten(**CF), L.Dropout(0.2), L.Dense(7)]),
    ("upsampling-padding-cropping", (3, 5, 4), lambda: [L.UpSampling2D((2, 3), **CF), L.ZeroPadding2D(((1, 2), (0, 1)), **CF), L.Cropping2D(((0, 1), (2, 1)), **CF), L.Conv2D(2, 3, **CF)]),
    ("upsampling-1d-3d", (2, 3, 4, 2), lambda: [L.UpSampling3D(2, **CF), L.ZeroPadding3D(1, **CF), L.Cropping3D(1, **CF)]),
]


@pytest.mark.parametrize("case", CF_CASES, ids=[c[0] for c in CF_CASES])
def test_channels_first_layers_match_keras(case):
    _, shape, layers = case
    model = seq(shape, *layers())
    check(model, data(shape).astype("float32"), dtype="float32")
    src = __import__("xconv").translate.module_source(model, channels_last_io=True)
    src = src[src.rindex("class M("):]  # the model's own class (helpers above it may transpose)
    assert "movedim(" not in src, src  # with Keras' own (N, C, *spatial) in and out, no transposes at all


def _mixed_model():
    inp = keras.Input((3, 12, 10), name="image")
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="stem", **CF)(inp)
    x = L.BatchNormalization(axis=1, name="bn")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw", **CF)(x)
    x = L.Concatenate(axis=1, name="cat")([x, y])
    x = L.MaxPooling2D(name="pool", **CF)(x)
    x = L.Conv2D(5, 3, name="last_conv")(x)  # channels_last on channels_first maps: Keras reads W as channels
    x = L.Flatten(name="flat")(x)
    return randomized(keras.Model(inp, L.Dense(3, name="head")(x), name="mixed"))


def test_channels_first_mixed_with_channels_last_matches_and_runs_in_keras_order():
    model = _mixed_model()
    t, report = check(model, data((3, 12, 10)).astype("float32"), dtype="float32")
    assert {r.name for r in report.layers} == {"stem", "bn", "dw", "cat", "pool", "last_conv", "flat", "head"}
    assert isinstance(t.bn, torch.nn.BatchNorm2d) and t.cat.dim == 1  # torch's channel axis: no transposes around them
    src = __import__("xconv").translate.module_source(model)
    assert src.count("movedim") == 2, src  # the channels-first input into Keras' order, and into the channels_last conv


def _channels_last_twin(model):
    """The same network built channels_last in float64, with the same weights (TF's CPU runs it)."""
    f64 = {"dtype": "float64"}
    inp = keras.Input((12, 10, 3), dtype="float64")
    x = L.Conv2D(4, 3, padding="same", activation="relu", **f64)(inp)
    x = L.BatchNormalization(axis=-1, **f64)(x)
    y = L.DepthwiseConv2D(3, padding="same", **f64)(x)
    x = L.Concatenate(axis=-1, **f64)([x, y])
    x = L.MaxPooling2D(**f64)(x)
    x = L.Permute((3, 1, 2), **f64)(x)  # back to (C, H, W): the channels_last conv of the original reads W as channels
    x = L.Conv2D(5, 3, **f64)(x)
    twin = keras.Model(inp, L.Dense(3, **f64)(L.Flatten(**f64)(x)))
    twin.set_weights([np.asarray(w, "float64") for w in model.get_weights()])
    return twin


def test_channels_first_model_matches_a_channels_last_twin_in_float64():
    model = _mixed_model()
    twin = _channels_last_twin(model)
    x = data((3, 12, 10))
    want = np.asarray(twin(np.moveaxis(x, 1, -1)))
    assert want.dtype == np.float64
    np.testing.assert_allclose(np.asarray(model(x.astype("float32"))), want, rtol=1e-4, atol=1e-5)  # the twin is the same network
    t = keras_to_torch(model, channels_last_io=True).double()  # channels_last_io: Keras' own (N, C, H, W) input
    with torch.no_grad():
        got = t(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()


def test_channels_first_planted_swapped_filter_is_named():
    model = _mixed_model()
    t = keras_to_torch(model)
    with torch.no_grad():
        t.dw.weight[[0, 1]] = t.dw.weight[[1, 0]].clone()  # two depthwise filters swapped
    report = compare(model, t, data((3, 12, 10)).astype("float32"), dtype="float32")
    assert not report.ok and report.first_divergence == "dw"


def test_input_layers_have_no_converter_and_still_translate():
    from xconv.translate import supported_layers

    assert "InputLayer" not in supported_layers()  # the graph walk makes inputs forward()'s arguments
    model = seq((4, 4, 2), L.Conv2D(2, 3))
    check(model, data((4, 4, 2)))


@keras.saving.register_keras_serializable("xconv_tests")
class ScaledBlock(L.Layer):
    """A traced block with weights of its own: ``conv(x) * gamma + beta`` (gamma used twice)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.conv = L.Conv2D(3, 3, padding="same", name="inner_conv")

    def build(self, shape):
        self.gamma = self.add_weight(shape=(3,), initializer="random_normal", name="gamma")
        self.beta = self.add_weight(shape=(3,), initializer="random_normal", name="beta")
        self.steps = self.add_weight(shape=(), initializer="ones", name="steps", trainable=False)

    def call(self, x):
        y = self.conv(x) * self.gamma + self.beta
        return y * self.steps + self.gamma


def test_traced_block_weights_are_parameters_of_its_submodule():
    inp = keras.Input((6, 5, 2))
    model = randomized(keras.Model(inp, ScaledBlock(name="scaled")(L.Conv2D(2, 1, name="stem")(inp)), name="blocky"))
    t, report = check(model, data((6, 5, 2)).astype("float32"), dtype="float32")
    params = dict(t.named_parameters())
    assert {"scaled.gamma", "scaled.beta", "scaled.inner_conv.weight"} <= set(params), sorted(params)
    assert "scaled.gamma_2" not in params  # one parameter per Keras variable, however often it is used
    assert not [n for n, _ in t.named_buffers() if "gamma" in n or "beta" in n]
    assert isinstance(t.scaled, torch.nn.Module) and report.ok
    # shaped to broadcast over channels-first maps, (1, 3, 1, 1): the same values
    np.testing.assert_array_equal(params["scaled.gamma"].detach().numpy().reshape(-1), model.get_layer("scaled").gamma.numpy())


@pytest.mark.parametrize(
    "keras_type, layers, shape",
    [
        ("Conv2D", lambda: [L.Conv2D(3, 3)], (5, 5, 2)),
        ("DepthwiseConv2D", lambda: [L.DepthwiseConv2D(3)], (5, 5, 2)),
        ("Conv2DTranspose", lambda: [L.Conv2DTranspose(2, 3)], (4, 4, 2)),
        ("Dense", lambda: [L.Conv2D(2, 1), L.Flatten(), L.Dense(3)], (3, 3, 2)),
        ("BatchNormalization", lambda: [L.BatchNormalization()], (4, 4, 2)),
        ("LayerNormalization", lambda: [L.LayerNormalization()], (4, 3)),
        ("GroupNormalization", lambda: [L.GroupNormalization(groups=2)], (4, 4, 2)),
    ],
)
def test_converters_map_weights_through_the_weight_families(monkeypatch, keras_type, layers, shape):
    """One weight map per layer type: the converter's arrays are what the family's to_torch gives."""
    import dataclasses

    from xconv import weights
    from xconv.translate import translate

    family = weights.family_for_keras(keras_type)
    seen = []

    def marked(w, ctx):  # the family's own map, then every array negated: visible in the state_dict
        seen.append(ctx.name)
        return {k: -v for k, v in family.to_torch(w, ctx).items()}

    model = seq(shape, *layers())
    plain = translate(model).state
    monkeypatch.setitem(weights._BY_KERAS, keras_type, dataclasses.replace(family, to_torch=marked))
    state = translate(model).state
    assert seen, f"the {keras_type} converter did not use its weight family"
    name = next(l.name for l in model.layers if type(l).__name__ == keras_type)
    keys = [k for k in plain if k.split(".")[0] == name]
    assert keys and all(np.array_equal(state[k], -plain[k]) for k in keys), keys


def test_translate_runs_in_named_phases():
    """read (graph and converters: unknown types refused before any work), emit, render."""
    from xconv.translate import _Generator, _read, _render
    from xconv.translate.spec import Layout

    bad = keras.Sequential([keras.Input((5, 6, 6, 3)), L.ConvLSTM2D(4, 3)], name="rnn")
    with pytest.raises(UnsupportedLayerError, match="ConvLSTM2D"):
        _read(bad)
    model = seq((4, 4, 2), L.Conv2D(2, 3, name="conv"), L.Flatten(name="flat"), L.Dense(3, name="head"))
    graph, convs = _read(model)
    assert set(convs) == {"Conv2D", "Flatten", "Dense"}
    gen = _Generator(convs, None, False)
    outputs, _, _, _ = gen.emit(graph, "M", [Layout.for_rank(4)], "", top=True)
    assert outputs == {"conv": "conv", "flat": "flat", "head": "head"} and len(gen.classes) == 1
    src = _render(model, "M", gen, False)
    assert src.index("class M(nn.Module)") > src.index("import torch") and "self.head = nn.Linear(8, 3)" in src
