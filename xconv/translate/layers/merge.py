"""Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate (any axis)."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ..converters import converter
from ..spec import FLAT, KLayer, Piece, Step
from . import torch_dim

_ELEMENTWISE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def _same_layouts(layer: KLayer):
    kinds = {l.kind for l in layer.in_layouts}
    if len(kinds) != 1 or FLAT in kinds:
        raise UnsupportedLayerError(f"'{layer.keras_name}' merges tensors laid out differently ({kinds}).")
    return layer.in_layouts[0]


@converter(*_ELEMENTWISE, family="merge", keeps_order=True)
def _merge(layer: KLayer) -> Piece:
    return Piece((Step("", f"{layer.class_name}()", helpers=(layer.class_name,)),), _same_layouts(layer))


@converter("Concatenate", family="merge", keeps_order=True)
def _concat(layer: KLayer) -> Piece:
    src = _same_layouts(layer)
    dim = torch_dim(int(layer.config.get("axis", -1)), len(layer.output_shape), src.kind)
    return Piece((Step("", f"Concatenate({dim})", helpers=("Concatenate",)),), src)
