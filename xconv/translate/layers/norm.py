"""BatchNormalization, LayerNormalization, GroupNormalization (inference), epsilon carried."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ..converters import converter
from ..spec import CF, CL, FLAT, KERAS, PLAIN, KLayer, Layout, Piece, Step
from . import fmt, single_axis, torch_weights


@converter("BatchNormalization", family="norm", keeps_order=True)  # axis=1 of Keras-order maps: torch's channels
def _batchnorm(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0])
    dim = single_axis(layer)
    w = layer.weights
    channels = w["moving_mean"].shape[0]
    ones, zeros = np.ones(channels, w["moving_mean"].dtype), np.zeros(channels, w["moving_mean"].dtype)
    # scale=False / center=False: torch's module still has them, as ones and zeros
    weights = torch_weights(layer, {"gamma": ones, "beta": zeros, **w})
    eps = fmt(float(layer.config.get("epsilon", 1e-3)))
    if dim != 1:  # not the channel axis: no nn.BatchNorm normalises there
        return Piece((Step("", f"BatchNormAxis({dim}, {channels}, {eps})", weights, ("BatchNormAxis",)),), layer.in_layouts[0])
    n = max(1, rank - 2)
    momentum = round(1.0 - float(layer.config.get("momentum", 0.99)), 12)  # Keras keeps m of the old value, torch 1 - m
    code = f"nn.BatchNorm{n}d({channels}, eps={eps}, momentum={fmt(momentum)})"
    return Piece((Step("", code, weights),), layer.in_layouts[0])


@converter("LayerNormalization", family="norm", layout_free=True)
def _layernorm(layer: KLayer) -> Piece:
    c = layer.config
    rank = len(layer.input_shapes[0])
    axes = c.get("axis", -1)
    axes = tuple(sorted(int(a) % rank for a in (axes if isinstance(axes, (list, tuple)) else [axes])))
    eps = fmt(float(c.get("epsilon", 1e-3)))
    w = layer.weights
    shape = tuple(int(layer.input_shapes[0][a]) for a in axes)
    dtype = next(iter(w.values())).dtype if w else np.float32
    affine = torch_weights(layer, {"gamma": np.ones(shape, dtype), "beta": np.zeros(shape, dtype), **w})
    gamma, beta = affine["weight"], affine["bias"]
    src = layer.in_layouts[0]
    rms = bool(c.get("rms_scaling"))
    last = axes == (rank - 1,)
    if last and not rms and (rank == 2 or src.kind == CL) and src.kind != FLAT:
        return Piece((Step("", f"nn.LayerNorm({shape[0]}, eps={eps})", {"weight": gamma, "bias": beta}),), src, inputs_as=(None,))
    if last and not rms and src.kind == CF:
        code = f"LayerNormChannels({shape[0]}, {eps})"
        return Piece((Step("", code, {"weight": gamma, "bias": beta}, ("LayerNormChannels",)),), src, inputs_as=(CF,))
    # any other axes (or Keras' rms_scaling): normalise in Keras' own axis order
    weights = {"weight": gamma} if rms else {"weight": gamma, "bias": beta}
    code = f"LayerNormAxes({fmt(axes)}, {fmt(shape)}, {eps}, rms={rms})"
    out = Layout(CL if rank >= 3 else PLAIN)
    return Piece((Step("", code, weights, ("LayerNormAxes",)),), out, inputs_as=(KERAS,))


@converter("GroupNormalization", family="norm")
def _groupnorm(layer: KLayer) -> Piece:
    c = layer.config
    if single_axis(layer) != 1:
        raise UnsupportedLayerError(f"GroupNormalization '{layer.keras_name}' must group the channel axis.")
    channels = layer.input_shapes[0][-1]
    w = layer.weights
    weights = torch_weights(layer, {"gamma": np.ones(channels, np.float32), "beta": np.zeros(channels, np.float32), **w})
    code = f"nn.GroupNorm({int(c.get('groups', 32))}, {channels}, eps={fmt(float(c.get('epsilon', 1e-3)))})"
    return Piece((Step("", code, weights),), layer.in_layouts[0])


@converter("RMSNormalization", family="norm", layout_free=True)
def _rmsnorm(layer: KLayer) -> Piece:
    c = layer.config
    rank = len(layer.input_shapes[0])
    axes = c.get("axis", -1)
    axes = tuple(sorted(int(a) % rank for a in (axes if isinstance(axes, (list, tuple)) else [axes])))
    if axes != (rank - 1,):
        raise UnsupportedLayerError(f"RMSNormalization '{layer.keras_name}' over axes {c.get('axis')}; xconv translates the last axis.")
    scale = torch_weights(layer)["weight"]
    eps = fmt(float(c.get("epsilon", 1e-6)))
    out = Layout(CL if rank >= 3 else PLAIN)
    return Piece((Step("", f"nn.RMSNorm({scale.shape[0]}, eps={eps})", {"weight": scale}),), out, inputs_as=(KERAS,))
