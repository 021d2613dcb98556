"""Thin adapters: the only modules that import Keras/TensorFlow, torch or ONNX.

Each is imported lazily, the first time it is needed, so ``import xconv`` stays light.
"""

from __future__ import annotations


def framework_of(obj: object) -> str:
    """'torch' for an ``nn.Module``, 'keras' for a Keras model; judged without importing either."""
    for cls in type(obj).__mro__:
        module = cls.__module__ or ""
        if module.startswith("torch.nn"):
            return "torch"
        if module.startswith(("keras", "tf_keras", "tensorflow.python.keras")):
            return "keras"
    return "unknown"
