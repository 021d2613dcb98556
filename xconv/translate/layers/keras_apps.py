"""Keras's own custom layers inside keras.applications: ConvNeXt's LayerScale and
InceptionResNetV2's CustomScaleLayer."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ..converters import converter
from ..spec import CF, KLayer, Piece, Step
from . import fmt


@converter("LayerScale", family="keras_apps", elementwise=True)
def _layer_scale(layer: KLayer) -> Piece:
    if len(layer.weights) != 1:
        raise UnsupportedLayerError(f"LayerScale '{layer.keras_name}' should have one weight; it has {sorted(layer.weights)}.")
    (gamma,) = layer.weights.values()
    dim = 1 if layer.in_layouts[0].kind == CF else -1
    return Piece((Step("", f"LayerScale({gamma.shape[0]}, dim={dim})", {"gamma": np.asarray(gamma).copy()}, ("LayerScale",)),), layer.in_layouts[0])


@converter("CustomScaleLayer", family="keras_apps")
def _custom_scale(layer: KLayer) -> Piece:
    kinds = {l.kind for l in layer.in_layouts}
    if len(kinds) != 1:
        raise UnsupportedLayerError(f"CustomScaleLayer '{layer.keras_name}' adds tensors laid out differently ({kinds}).")
    scale = float(layer.config.get("scale", 1.0))
    return Piece((Step("", f"ScaleAdd({fmt(scale)})", helpers=("ScaleAdd",)),), layer.in_layouts[0])
