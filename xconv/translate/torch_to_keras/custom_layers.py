"""The Keras layer xconv registers, for what Keras has no built-in layer for.

``torch_to_keras`` uses it only where it must: PyTorch's ``GELU(approximate="tanh")`` (Keras'
``gelu(approximate=True)`` computes with float32 constants even in a float64 model). A
``.keras`` file containing it loads where ``xconv.translate.torch_to_keras.custom_layers`` has been imported
(``import xconv.translate.torch_to_keras.custom_layers``). Everything else ``torch_to_keras`` builds is built-in Keras
layers and ``keras.ops`` calls, which load without xconv. Importing this module imports Keras.
"""

from __future__ import annotations

import numpy as np

from ...frameworks.keras_side import keras

_k = keras()


@_k.saving.register_keras_serializable(package="xconv")
class GeluTanh(_k.layers.Layer):
    """GELU with the tanh approximation (PyTorch ``nn.GELU(approximate="tanh")``)."""

    def call(self, x):
        """``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``, its constants in the layer's dtype."""
        # written out with constants in the layer's dtype: keras.activations.gelu would use float32
        # constants even in a float64 model
        c = _k.ops.convert_to_tensor(np.asarray(np.sqrt(2.0 / np.pi), dtype=self.compute_dtype))
        a = _k.ops.convert_to_tensor(np.asarray(0.044715, dtype=self.compute_dtype))
        half = _k.ops.convert_to_tensor(np.asarray(0.5, dtype=self.compute_dtype))
        return half * x * (1 + _k.ops.tanh(c * (x + a * x * x * x)))
