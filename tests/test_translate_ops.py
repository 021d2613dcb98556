"""keras_to_torch on Keras operations in functional graphs (``x + 3.0``, ``keras.ops.*``).

Each operation is converted (and matches Keras in float64) or refused with
UnsupportedLayerError naming the operation and its node; operation nodes are told from layers
by their type, so ``ops.Add`` never reaches the ``Add`` layer's converter.
"""

import numpy as np
import pytest
import torch

from conftest import has_keras, needs_keras

pytestmark = [needs_keras, pytest.mark.slow]  # each case builds, translates and compares a model

F64 = "float64"


def _ops_cases():
    import keras
    from keras import layers as L
    from keras import ops

    def maps(fn, shape=(6, 5, 4)):
        def build():
            i = keras.Input(shape, dtype=F64)
            x = L.Conv2D(4, 1, dtype=F64, name="conv")(i) if len(shape) == 3 else L.Dense(4, dtype=F64, name="dense")(i)
            return keras.Model(i, fn(x))

        return build

    const = np.linspace(-1, 1, 4)
    return {
        "hard-sigmoid-arithmetic": maps(lambda x: L.ReLU(6.0, dtype=F64)(x + 3.0) * (1 / 6)),
        "subtract-divide-constants": maps(lambda x: (2.0 - x) / 3.0 + 1 / (ops.abs(x) + 1.0)),
        "power-negative-square-sqrt": maps(lambda x: -ops.power(x, 2.0) + ops.square(x) * 0.5 + ops.sqrt(ops.abs(x))),
        "constant-array-broadcast": maps(lambda x: x * const + const),
        "mean-sum-max-keepdims": maps(lambda x: ops.mean(x, axis=[1, 2], keepdims=True) + ops.max(x, axis=-1, keepdims=True) - ops.sum(x, axis=1, keepdims=True)),
        "mean-over-space": maps(lambda x: L.Dense(3, dtype=F64)(ops.mean(x, axis=[1, 2]))),
        "reductions-mixed": maps(lambda x: ops.sum(x, axis=-1) + ops.min(x, axis=-1) + ops.var(x, axis=-1) + ops.std(x, axis=-1)),
        "reshape-transpose": maps(lambda x: ops.transpose(ops.reshape(x, (-1, 30, 4)), (0, 2, 1))),
        "concatenate-split-stack": maps(lambda x: ops.stack(ops.split(ops.concatenate([x, -x], axis=-1), 2, axis=-1), axis=1)),
        "slicing": maps(lambda x: x[:, 1:5, ::2, :3]),
        "matmul": maps(lambda x: ops.matmul(ops.reshape(x, (-1, 30, 4)), ops.transpose(ops.reshape(x, (-1, 30, 4)), (0, 2, 1)))),
        "clip-where": maps(lambda x: ops.where(x > 0.1, ops.clip(x, -0.5, 0.5), x * 2.0)),
        "activations-through-ops": maps(lambda x: ops.relu(x) + ops.sigmoid(x) + ops.tanh(x) + ops.silu(x) + ops.hard_sigmoid(x) + ops.softplus(x)),
        "softmax-op": maps(lambda x: ops.softmax(x, axis=-1) + ops.softmax(x, axis=1)),
        "resize-nearest": maps(lambda x: ops.image.resize(x, (12, 10), interpolation="nearest")),
        "expand-squeeze-moveaxis": maps(lambda x: ops.moveaxis(ops.squeeze(ops.expand_dims(x, 1), 1), 1, 2)),
        "einsum": maps(lambda x: ops.einsum("bhwc,bhwd->bcd", x, x)),
        "extract-patches": maps(lambda x: ops.image.extract_patches(x, size=2) + 0.0, shape=(6, 4, 4)),
        "augmentation-and-resizing": maps(lambda x: L.Resizing(9, 7, interpolation="nearest", dtype=F64)(L.RandomFlip(dtype=F64)(L.RandomZoom(0.2, dtype=F64)(x)))),
        "resize-nearest-non-integer-scale": maps(lambda x: ops.image.resize(x, (9, 7), interpolation="nearest")),
        "vector-ops": maps(lambda x: ops.maximum(x, 0.0) * ops.minimum(x, 1.0) + ops.exp(-ops.square(x)), shape=(5,)),
        # TF's gelu constants are float32 even in float64 (KerasGELU's quirk, in the op's expression)
        "gelu-both-forms-float64": maps(lambda x: ops.gelu(x, approximate=False) + ops.gelu(x * 2.0, approximate=True)),
        "layer-add-and-op-add": maps(lambda x: L.Add(dtype=F64)([x, x + 1.0]) * L.Multiply(dtype=F64)([x, x * 2.0])),
    }


CASES = sorted(_ops_cases()) if has_keras() else []


@pytest.mark.parametrize("name", CASES)
def test_operation_matches_keras(name):
    from xconv import compare, keras_to_torch

    model = _ops_cases()[name]()
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.normal(0, 0.5, tuple(v.shape)))
    x = rng.normal(size=(2, *model.inputs[0].shape[1:]))
    module = keras_to_torch(model)
    want = np.asarray(model(x, training=False))  # inference: augmentation layers are the identity
    with torch.no_grad():
        got = module(torch.from_numpy(np.moveaxis(x, -1, 1) if x.ndim >= 3 else x)).numpy()
    if got.ndim >= 3:
        got = np.moveaxis(got, 1, -1)  # outputs are channels-first
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    report = compare(model, module, x, dtype=F64)
    assert report.ok, str(report)


def test_mobilenet_v3_hard_sigmoid_ops_translate():
    """The crash the issue reported: raw Add and Multiply operations beside Add/Multiply layers."""
    import keras

    from xconv import keras_to_torch

    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3), classifier_activation=None)
    module = keras_to_torch(model)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    with torch.no_grad():
        got = module(torch.from_numpy(np.moveaxis(x, -1, 1))).numpy()
    np.testing.assert_allclose(got, np.asarray(model(x)), rtol=1e-4, atol=1e-5)


def test_unsupported_operation_is_refused_with_its_name_and_node():
    import keras
    from keras import ops

    from xconv import keras_to_torch
    from xconv.errors import UnsupportedLayerError

    i = keras.Input((6,))
    model = keras.Model(i, ops.sort(i))
    with pytest.raises(UnsupportedLayerError, match=r"Keras operation 'Sort' \(node 'sort.*'\)\. Supported operations: .*Add"):
        keras_to_torch(model)


def test_opaque_custom_layer_is_refused_naming_the_plugin_route():
    import keras
    import tensorflow as tf

    from xconv import keras_to_torch
    from xconv.errors import UnsupportedLayerError

    class RawTF(keras.layers.Layer):
        def call(self, x):
            return tf.math.cumprod(x, axis=-1)  # a raw TensorFlow op: nothing to trace

    i = keras.Input((5,))
    model = keras.Model(i, RawTF(name="raw")(i))
    with pytest.raises(UnsupportedLayerError, match=r"'raw' \(RawTF\) cannot be traced.*register_layer"):
        keras_to_torch(model)
