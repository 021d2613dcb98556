"""Property-based: random Sequential and functional models from the supported layers translate exactly."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import needs_keras
from xconv import compare, keras_to_torch, zoo

pytestmark = needs_keras
keras = pytest.importorskip("keras")
L = keras.layers


@st.composite
def conv_layer(draw, rank: int):
    kind = draw(st.sampled_from(["conv", "conv", "depthwise", "separable", "pool", "bn"] if rank == 2 else ["conv", "pool", "bn"]))
    k = draw(st.integers(1, 4))  # even kernels included
    stride = draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["same", "valid"]))
    act = draw(st.sampled_from([None, "relu", "tanh", "swish", "elu"]))
    if kind == "conv":
        dilation = draw(st.integers(1, 2)) if stride == 1 else 1
        cls = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
        return cls(draw(st.integers(1, 5)), k, strides=stride, padding=padding, dilation_rate=dilation, activation=act)
    if kind == "depthwise":
        return L.DepthwiseConv2D(k, strides=stride, padding=padding, depth_multiplier=draw(st.integers(1, 2)), activation=act)
    if kind == "separable":
        return L.SeparableConv2D(draw(st.integers(1, 4)), k, strides=stride, padding=padding, activation=act)
    if kind == "pool":
        cls = draw(st.sampled_from([{1: L.MaxPooling1D, 2: L.MaxPooling2D, 3: L.MaxPooling3D}, {1: L.AveragePooling1D, 2: L.AveragePooling2D, 3: L.AveragePooling3D}]))[rank]
        return cls(max(k, 1), strides=stride, padding=padding)
    return L.BatchNormalization(epsilon=draw(st.sampled_from([1e-3, 1e-5])))


def _buildable(shape, layers):
    """Keep only layers whose output is non-empty for this input size (valid padding can shrink to 0)."""
    x = keras.Input(shape)
    y, kept = x, []
    for layer in layers:
        try:
            z = layer(y)
        except Exception:  # noqa: BLE001 - Keras rejects sizes that shrink to nothing in various ways
            continue
        if any(d is not None and d <= 0 for d in z.shape[1:]):
            continue
        y, kept = z, kept + [layer]
    return x, y, kept


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 2), st.data())
def test_random_sequential_models_match(rank, data):
    size = data.draw(st.lists(st.integers(5, 13), min_size=rank, max_size=rank))  # odd sizes included
    channels = data.draw(st.integers(1, 4))
    layers = data.draw(st.lists(conv_layer(rank), min_size=1, max_size=4))
    head = data.draw(st.booleans())
    x, y, kept = _buildable((*size, channels), layers)
    if head:
        y = L.Dense(3, activation="softmax")(L.Flatten()(y))
    model = keras.Model(x, y)
    zoo.randomize_biases(model, data.draw(st.integers(0, 1000)))
    sample = np.random.default_rng(0).standard_normal((2, *size, channels))
    report = compare(model, keras_to_torch(model), sample, dtype="float64")
    assert report.ok, str(report)
    assert max(r.max_rel for r in report.layers) <= 1e-9, str(report)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_functional_models_with_branches_match(data):
    size = data.draw(st.integers(6, 12))
    x = keras.Input((size, size + 1, 3))
    a = L.Conv2D(4, data.draw(st.integers(1, 4)), padding="same", activation="relu")(x)
    b = L.Conv2D(4, data.draw(st.integers(1, 4)), padding="same")(x)
    merge = data.draw(st.sampled_from([L.Add, L.Multiply, L.Maximum, L.Average, L.Subtract]))
    m = merge()([a, b])
    c = L.Concatenate(axis=data.draw(st.sampled_from([-1, 1, 2])))([m, a])
    pooled = data.draw(st.sampled_from([L.GlobalAveragePooling2D(), L.GlobalMaxPooling2D(), L.Flatten()]))(c)
    model = keras.Model(x, [L.Dense(2)(pooled), m])
    zoo.randomize_biases(model, 0)
    sample = np.random.default_rng(1).standard_normal((2, size, size + 1, 3))
    report = compare(model, keras_to_torch(model), sample, dtype="float64")
    assert report.ok, str(report)
