"""compare() inside traced custom blocks: a Keras layer subclass made of built-in layers and ops is
translated as a submodule of its name; compare gives its inner layers rows of their own
(``block/inner``), aligned with the block's submodules, so a bug inside a block is named there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv import compare, keras_to_torch

pytestmark = needs_keras
keras = pytest.importorskip("keras")
layers = keras.layers


@keras.saving.register_keras_serializable(package="xconv_test_blocks")
class ConvBNReLU(layers.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")
        self.bn = layers.BatchNormalization(name="bn")
        self.act = layers.ReLU(name="act")

    def call(self, x, training=None):
        return self.act(self.bn(self.conv(x), training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="xconv_test_blocks")
class Residual(layers.Layer):
    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv1 = layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv1")
        self.conv2 = layers.Conv2D(filters, 1, name="conv2")
        self.add = layers.Add(name="add")

    def call(self, x):
        return self.add([x, self.conv2(self.conv1(x))]) * 0.5

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def _model():
    keras.utils.set_random_seed(3)
    x = keras.Input((8, 8, 3))
    y = ConvBNReLU(6, name="stem")(x)
    y = Residual(6, name="res")(y)
    y = layers.GlobalAveragePooling2D(name="pool")(y)
    model = keras.Model(x, layers.Dense(4, name="head")(y))
    rng = np.random.default_rng(0)
    for v in model.weights:  # BN statistics too, so a swapped one shows
        v.assign(rng.uniform(0.5, 1.5, v.shape).astype(v.dtype) if "variance" in v.path else rng.normal(size=v.shape).astype(v.dtype) * 0.3)
    return model


INNER = ["stem/conv", "stem/bn", "stem/act", "res/conv1", "res/conv2", "res/add"]


@pytest.fixture(scope="module")
def pair():
    model = _model()
    return model, keras_to_torch(model)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inner_layers_get_rows(pair, x, dtype):
    model, module = pair
    report = compare(model, module, x, dtype=dtype)
    names = [r.name for r in report.layers]
    for name in INNER:
        assert name in names, names
    assert names.index("stem/conv") < names.index("stem/act") < names.index("stem") < names.index("res/add") < names.index("res")
    assert report.ok, str(report)
    assert report["stem/bn"].shape == (2, 6, 8, 8)  # channels-first, measured (not a skipped row)
    assert not report.skipped, report.skipped


def test_bug_inside_block_named_at_inner_layer(pair, x):
    model, module = pair
    import copy

    broken = copy.deepcopy(module)
    with torch.no_grad():  # two filters of the residual block's first conv swapped
        w = broken.res.conv1.weight
        w[[0, 1]] = w[[1, 0]].clone()
    report = compare(model, broken, x)
    assert report["stem/act"].ok and report["stem"].ok
    assert report.first_divergence == "res/conv1", str(report)
    assert not report["res"].ok


def test_model_without_blocks_has_no_inner_rows():
    from xconv.frameworks import keras_side as ks

    model = _model()
    x = np.zeros((1, 8, 8, 3), "float32")
    assert [c.name for c in ks.capture(model, [x])] == ["stem", "res", "pool", "head"]
    rows = [c.name for c in ks.capture(model, [x], blocks=["res"])]
    assert rows == ["stem", "res/conv1", "res/conv2", "res/add", "res", "pool", "head"]


def test_local_mode_names_the_inner_layer(pair, x):
    model, module = pair
    import copy

    broken = copy.deepcopy(module)
    with torch.no_grad():
        w = broken.res.conv2.weight
        w[[0, 1]] = w[[1, 0]].clone()
    report = compare(model, broken, x, mode="local")
    assert report.first_local_divergence == "res/conv2", str(report)
    assert report["res/add"].local_ok and report["stem/act"].local_ok  # each fed Keras' own input
    assert report["res"].local_ok is None  # the block's node is fed at its inner layers: no local value of its own
    assert compare(model, module, x, mode="local").ok
