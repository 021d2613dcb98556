"""xconv: move convolutional networks between Keras and PyTorch, and prove the move is right.

``import xconv`` loads NumPy only; torch, Keras/TensorFlow, ONNX and matplotlib are imported
the first time a function needs them.

>>> import xconv
>>> xconv.layouts.kernel_permutation(2)
(3, 2, 0, 1)
"""

from __future__ import annotations

import importlib

from . import errors, layouts, padding
from .errors import (
    BadInputError,
    LayoutError,
    MismatchedModelsError,
    MissingDependencyError,
    UnsupportedLayerError,
    XconvError,
)

__version__ = "0.1.0"

# name -> module that defines it; loaded on first attribute access (PEP 562)
_LAZY = {
    "compare": "xconv.comparison",
    "assert_match": "xconv.comparison",
    "Report": "xconv.comparison",
    "LayerDiff": "xconv.comparison",
    "transfer_weights": "xconv.transfer",
    "Manifest": "xconv.transfer",
    "TransferEntry": "xconv.transfer",
    "describe": "xconv.weight_axes",
    "keras_to_torch": "xconv.translate",
    "torch_to_keras": "xconv.translate.to_keras",
    "lint": "xconv.linting",
    "compare_training": "xconv.training",
    "register_layer": "xconv.keras_plugins",
    "register_module": "xconv.keras_plugins",
}
_SUBMODULES = ("zoo", "weights", "frameworks", "weight_axes", "translate", "viz", "testing", "onnx", "capture", "keras_plugins", "training")

__all__ = [
    "compare",
    "assert_match",
    "Report",
    "LayerDiff",
    "transfer_weights",
    "Manifest",
    "TransferEntry",
    "describe",
    "keras_to_torch",
    "torch_to_keras",
    "lint",
    "compare_training",
    "register_layer",
    "register_module",
    "layouts",
    "padding",
    "zoo",
    "errors",
    "XconvError",
    "LayoutError",
    "UnsupportedLayerError",
    "MismatchedModelsError",
    "MissingDependencyError",
    "BadInputError",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"xconv.{name}")
    raise AttributeError(f"module 'xconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
