"""Normalisation: batch norm (inference statistics), layer norm over the last dims (tokens or
channels of a permuted map), group norm, instance norm. Axes are read through the layout, so a
LayerNorm over channels-last maps normalises Keras' last axis with no transpose; weights go
through the shared families (``xconv.weights.norm``)."""

from __future__ import annotations

import numpy as np

from ...weights import LayerContext, family_for_torch
from .converters import converts
from .values import Out, Value, like, unflat


def _arr(v):
    return None if v is None else v.const


def _need_const(cx, *vs):
    for v in vs:
        if v is not None and not (isinstance(v, Value) and v.is_const):
            raise cx.unsupported("normalisation parameters computed from the input", "module parameters")


@converts("aten::_native_batch_norm_legit_no_training", family="norm", note="BatchNormalization(axis=channels, epsilon)")
def batch_norm(cx, node, args, kwargs):
    x, w, b, mean, var = args[:5]
    eps = args[6] if len(args) > 6 else kwargs.get("eps", 1e-5)
    momentum = args[5] if len(args) > 5 else 0.1
    _need_const(cx, w, b, mean, var)
    x = unflat(cx, x)
    arrays = {k: a for k, a in (("weight", _arr(w)), ("bias", _arr(b)), ("running_mean", mean.const), ("running_var", var.const)) if a is not None}
    weights = family_for_torch("BatchNorm2d").to_keras(arrays, LayerContext(cx.name))
    layer = cx.layers.BatchNormalization(axis=x.axis(1), epsilon=float(eps), momentum=1.0 - float(momentum or 0.1),
                                         center=b is not None, scale=w is not None, name=cx.name, dtype=cx.dtype)  # fmt: skip
    return Out((like(x, layer(x.tensor)), None, None), ((layer, weights),))


def _layer_norm(cx, x: Value, nshape, w, b, eps):
    _need_const(cx, w, b)
    x = unflat(cx, x)
    dims = list(range(x.rank - len(nshape), x.rank))
    axes = sorted(x.axis(d) for d in dims)
    if 0 in axes:
        raise cx.unsupported("a layer norm over the batch axis")
    arrays = {k: a for k, a in (("weight", _arr(w)), ("bias", _arr(b))) if a is not None}
    if len(dims) > 1:  # gamma, beta in Keras' (sorted) axis order
        order = [x.perm[a] - dims[0] for a in axes]
        arrays = {k: np.ascontiguousarray(np.transpose(a, order)) for k, a in arrays.items()}
    weights = family_for_torch("LayerNorm").to_keras(arrays, LayerContext(cx.name))
    layer = cx.layers.LayerNormalization(axis=axes if len(axes) > 1 else axes[0], epsilon=float(eps), center=b is not None,
                                         scale=w is not None, name=cx.name, dtype=cx.dtype)  # fmt: skip
    return like(x, layer(x.tensor)), ((layer, weights),)


def _composite(build):
    """The converter of ``aten::layer_norm`` / ``aten::group_norm``, whose arguments line up:
    ``(input, normalized_shape | num_groups, weight=None, bias=None, eps=1e-5)``."""

    def convert(cx, node, args, kwargs):
        def arg(i, name, default=None):
            return args[i] if len(args) > i else kwargs.get(name, default)

        v, weights = build(cx, args[0], args[1], arg(2, "weight"), arg(3, "bias"), arg(4, "eps", 1e-5))
        return Out(v, weights)

    return convert


converts("aten::layer_norm", family="norm", note="LayerNormalization over the Keras axes of the last dims")(_composite(_layer_norm))


@converts("aten::native_layer_norm", family="norm", note="LayerNormalization")
def native_layer_norm(cx, node, args, kwargs):
    v, weights = _layer_norm(cx, *args[:5])
    return Out((v, None, None), weights)


def _group_norm(cx, x: Value, groups: int, w, b, eps, torch_type="GroupNorm"):
    _need_const(cx, w, b)
    x = unflat(cx, x)
    axis = x.axis(1)
    if x.rank > 2 and groups > 1 and groups < x.shape[1] and axis != x.rank - 1:
        raise cx.unsupported("group norm of maps whose channels are not Keras' last axis")
    arrays = {k: a for k, a in (("weight", _arr(w)), ("bias", _arr(b))) if a is not None}
    weights = family_for_torch(torch_type).to_keras(arrays, LayerContext(cx.name))
    layer = cx.layers.GroupNormalization(groups=int(groups), axis=axis, epsilon=float(eps), center=b is not None,
                                         scale=w is not None, name=cx.name, dtype=cx.dtype)  # fmt: skip
    return like(x, layer(x.tensor)), ((layer, weights),)


converts("aten::group_norm", family="norm", note="GroupNormalization(groups)")(_composite(_group_norm))


@converts("aten::native_group_norm", family="norm", note="GroupNormalization(groups)")
def native_group_norm(cx, node, args, kwargs):
    x, w, b, _n, _c, _hw, groups, eps = args[:8]
    v, weights = _group_norm(cx, x, groups, w, b, eps)
    return Out((v, None, None), weights)


@converts("aten::instance_norm", family="norm", note="GroupNormalization(groups=channels); running statistics as BatchNormalization")
def instance_norm(cx, node, args, kwargs):
    x, w, b, rmean, rvar, use_input_stats, momentum, eps = args[:8]
    if not use_input_stats:  # track_running_stats=True in eval: a batch norm with those statistics
        _need_const(cx, w, b, rmean, rvar)
        x = unflat(cx, x)
        arrays = {k: a for k, a in (("weight", _arr(w)), ("bias", _arr(b)), ("running_mean", rmean.const), ("running_var", rvar.const)) if a is not None}
        weights = family_for_torch("BatchNorm2d").to_keras(arrays, LayerContext(cx.name))
        layer = cx.layers.BatchNormalization(axis=x.axis(1), epsilon=float(eps), center=b is not None, scale=w is not None, name=cx.name, dtype=cx.dtype)
        return Out(like(x, layer(x.tensor)), ((layer, weights),))
    v, weights = _group_norm(cx, x, x.shape[1], w, b, eps, f"InstanceNorm{max(x.rank - 2, 1)}d")
    return Out(v, weights)
