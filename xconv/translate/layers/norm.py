"""BatchNormalization, LayerNormalization, GroupNormalization (inference), epsilon carried."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ..registry import converter
from ..spec import KLayer, Piece, Step
from . import fmt, single_axis


@converter("BatchNormalization", family="norm")
def _batchnorm(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0])
    dim = single_axis(layer)
    w = layer.weights
    channels = w["moving_mean"].shape[0]
    weights = {
        "weight": w.get("gamma", np.ones(channels, w["moving_mean"].dtype)).copy(),
        "bias": w.get("beta", np.zeros(channels, w["moving_mean"].dtype)).copy(),
        "running_mean": w["moving_mean"].copy(),
        "running_var": w["moving_variance"].copy(),
    }
    eps = fmt(float(layer.config.get("epsilon", 1e-3)))
    if dim != 1:  # not the channel axis: no nn.BatchNorm normalises there
        return Piece((Step("", f"BatchNormAxis({dim}, {channels}, {eps})", weights, ("BatchNormAxis",)),), layer.in_layouts[0])
    n = max(1, rank - 2)
    momentum = round(1.0 - float(layer.config.get("momentum", 0.99)), 12)  # Keras keeps m of the old value, torch 1 - m
    code = f"nn.BatchNorm{n}d({channels}, eps={eps}, momentum={fmt(momentum)})"
    return Piece((Step("", code, weights),), layer.in_layouts[0])


@converter("LayerNormalization", family="norm")
def _layernorm(layer: KLayer) -> Piece:
    c = layer.config
    if c.get("rms_scaling"):
        raise UnsupportedLayerError(f"LayerNormalization '{layer.keras_name}' uses rms_scaling; not supported yet.")
    rank = len(layer.input_shapes[0])
    dim = single_axis(layer)
    channels = layer.input_shapes[0][-1]
    eps = fmt(float(c.get("epsilon", 1e-3)))
    w = layer.weights
    weights = {"weight": w.get("gamma", np.ones(channels, np.float32)).copy(), "bias": w.get("beta", np.zeros(channels, np.float32)).copy()}
    if rank == 2 and dim == 1:
        return Piece((Step("", f"nn.LayerNorm({channels}, eps={eps})", weights),), layer.in_layouts[0])
    if dim == 1:
        return Piece((Step("", f"LayerNormChannels({channels}, {eps})", weights, ("LayerNormChannels",)),), layer.in_layouts[0])
    raise UnsupportedLayerError(f"LayerNormalization '{layer.keras_name}' over Keras axis {c.get('axis')} is not supported yet.")


@converter("GroupNormalization", family="norm")
def _groupnorm(layer: KLayer) -> Piece:
    c = layer.config
    if single_axis(layer) != 1:
        raise UnsupportedLayerError(f"GroupNormalization '{layer.keras_name}' must group the channel axis.")
    channels = layer.input_shapes[0][-1]
    w = layer.weights
    weights = {"weight": w.get("gamma", np.ones(channels, np.float32)).copy(), "bias": w.get("beta", np.zeros(channels, np.float32)).copy()}
    code = f"nn.GroupNorm({int(c.get('groups', 32))}, {channels}, eps={fmt(float(c.get('epsilon', 1e-3)))})"
    return Piece((Step("", code, weights),), layer.in_layouts[0])
