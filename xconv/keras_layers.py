"""The two Keras layers xconv registers, for what Keras has no built-in layer for.

``torch_to_keras`` uses them only where it must: PyTorch's ``GELU(approximate="tanh")`` and
bilinear up-sampling with ``align_corners=True``. A ``.keras`` file containing them loads
where ``xconv.keras_layers`` has been imported (``import xconv.keras_layers``). Importing this
module imports Keras.
"""

from __future__ import annotations

import numpy as np

from .frameworks.keras_side import keras

_k = keras()


@_k.saving.register_keras_serializable(package="xconv")
class GeluTanh(_k.layers.Layer):
    """GELU with the tanh approximation (PyTorch ``nn.GELU(approximate="tanh")``)."""

    def call(self, x):
        # written out with constants in the layer's dtype: keras.activations.gelu would use float32
        # constants even in a float64 model
        c = _k.ops.convert_to_tensor(np.asarray(np.sqrt(2.0 / np.pi), dtype=self.compute_dtype))
        a = _k.ops.convert_to_tensor(np.asarray(0.044715, dtype=self.compute_dtype))
        half = _k.ops.convert_to_tensor(np.asarray(0.5, dtype=self.compute_dtype))
        return half * x * (1 + _k.ops.tanh(c * (x + a * x * x * x)))


@_k.saving.register_keras_serializable(package="xconv")
class UpSamplingAlignCorners(_k.layers.Layer):
    """Bilinear 2D up-sampling by integer factors with ``align_corners=True`` (channels-last)."""

    def __init__(self, size=(2, 2), **kwargs):
        super().__init__(**kwargs)
        self.size = tuple(int(s) for s in size)

    def _axis(self, x, axis: int, n: int, factor: int):
        out = n * factor
        pos = np.arange(out) * ((n - 1) / (out - 1)) if out > 1 else np.zeros(1)
        lo = np.floor(pos).astype("int32")
        hi = np.minimum(lo + 1, n - 1)
        frac = (pos - lo).astype(self.compute_dtype)
        shape = [1, 1, 1, 1]
        shape[axis] = out
        w = _k.ops.reshape(_k.ops.convert_to_tensor(frac, dtype=self.compute_dtype), shape)
        a = _k.ops.take(x, lo, axis=axis)
        b = _k.ops.take(x, hi, axis=axis)
        return a + (b - a) * w

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        x = self._axis(x, 1, h, self.size[0])
        return self._axis(x, 2, w, self.size[1])

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else h * self.size[0], None if w is None else w * self.size[1], c)

    def get_config(self):
        return {**super().get_config(), "size": self.size}
