"""``aten::convolution``: every rank, stride, padding, dilation and groups; transposed too.

Plain convs become ``ConvND`` (``DepthwiseConvND`` where each input channel has its own
filters), with TF's 'same' where it is torch's padding and an explicit ``ZeroPadding``
otherwise. A transposed conv becomes ``ConvNDTranspose`` with its output padding always given
(so Keras' output length is ``(n - 1) * s + k`` even when ``k < s``) and a crop for torch's
padding. Grouped, depthwise and dilated transposed convs, which Keras or TF's CPU kernels
lack, are the exact equivalent: zeros inserted between the input samples, then a plain conv
with the kernel flipped and its in/out axes swapped.
"""

from __future__ import annotations

import numpy as np

from ...padding import as_tuple, is_same
from ...weights import LayerContext, family_for_keras, family_for_torch
from .converters import converts
from .values import Ctx, Out, Value, channels_last, tensor_value, to_perm


def _const(cx: Ctx, v, what: str):
    if v is None:
        return None
    if not isinstance(v, Value) or not v.is_const:
        raise cx.unsupported(f"a convolution whose {what} is computed from the input", "a conv on module parameters")
    return v.const


def _pad_layer(cx, x, pads, suffix="pad"):
    rank = len(pads)
    L = cx.layers
    cls = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[rank]
    return cls(pads[0] if rank == 1 else tuple(pads), name=cx.sub(suffix), dtype=cx.dtype)(x)


def _crop(cx, x, crops, suffix="crop"):
    if not any(a or b for a, b in crops):
        return x
    rank = len(crops)
    L = cx.layers
    cls = {1: L.Cropping1D, 2: L.Cropping2D, 3: L.Cropping3D}[rank]
    return cls(crops[0] if rank == 1 else tuple(crops), name=cx.sub(suffix), dtype=cx.dtype)(x)


def pad_or_crop(cx, x, pairs, suffix="pad"):
    """Per spatial axis (before, after): positive pads with zeros, negative crops."""
    pads = [(max(a, 0), max(b, 0)) for a, b in pairs]
    crops = [(max(-a, 0), max(-b, 0)) for a, b in pairs]
    x = _crop(cx, x, crops, suffix + "_crop")
    if any(a or b for a, b in pads):
        x = _pad_layer(cx, x, pads, suffix)
    return x


@converts("aten::convolution", family="conv", note="Conv1D/2D/3D, DepthwiseConv, ConvNDTranspose; any stride, padding, dilation, groups")
def convolution(cx: Ctx, node, args, kwargs) -> Out:
    x, weight, bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    w = _const(cx, weight, "weight")
    b = _const(cx, bias, "bias")
    rank = w.ndim - 2
    s, p, d = (as_tuple(v, rank, what, broadcast=True) for v, what in ((stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    t = to_perm(cx, x, channels_last(rank + 2))
    out_shape = node.shape
    if transposed:
        return _transposed(cx, t, w, b, s, p, d, as_tuple(output_padding, rank, "output_padding", broadcast=True), int(groups), out_shape)
    return _conv(cx, t, w, b, s, p, d, int(groups), out_shape, x.shape[1])


def _conv(cx, t, w, b, s, p, d, groups, out_shape, cin, suffix=None):
    L = cx.layers
    rank = w.ndim - 2
    k = w.shape[2:]
    name = cx.sub(suffix) if suffix else cx.name
    if not any(p):
        padding = "valid"
    elif is_same(tuple(t.shape[1:-1]), k, s, d, p):
        padding = "same"  # torch's symmetric pads are exactly what TF's 'same' adds here
    else:
        t = _pad_layer(cx, t, [(pp, pp) for pp in p])
        padding = "valid"
    arrays = {"weight": w, **({"bias": b} if b is not None else {})}
    mult = w.shape[0] // cin if groups == cin and groups > 1 and rank <= 2 else 0
    if mult:
        cls = {1: L.DepthwiseConv1D, 2: L.DepthwiseConv2D}[rank]
        layer = cls(k, strides=s, padding=padding, depth_multiplier=mult, dilation_rate=d, use_bias=b is not None, name=name, dtype=cx.dtype)
        fam = family_for_keras(cls.__name__)
        weights = fam.to_keras(arrays, LayerContext(name, depth_multiplier=mult))
    else:
        cls = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
        layer = cls(w.shape[0], k, strides=s, padding=padding, dilation_rate=d, groups=groups, use_bias=b is not None, name=name, dtype=cx.dtype)
        weights = family_for_torch(f"Conv{rank}d").to_keras(arrays, LayerContext(name))
    y = layer(t)
    return Out(tensor_value(y, out_shape, channels_last(rank + 2)), ((layer, weights),))


def transposed_as_conv_kernel(w: np.ndarray, groups: int) -> np.ndarray:
    """torch transposed weight ``(in, out/g, *k)`` -> the plain conv weight ``(out, in/g, *k)``
    that, run on the zero-inserted input, computes the same: flipped, in/out swapped per group."""
    cin, cout_g, *k = w.shape
    cin_g = cin // groups
    g = w.reshape(groups, cin_g, cout_g, *k).swapaxes(1, 2)  # (g, out/g, in/g, *k)
    flipped = g[(slice(None),) * 3 + (slice(None, None, -1),) * len(k)]
    return np.ascontiguousarray(flipped.reshape(groups * cout_g, cin_g, *k))


def _transposed(cx, t, w, b, s, p, d, op, groups, out_shape):
    L = cx.layers
    rank = w.ndim - 2
    k = w.shape[2:]
    if groups == 1 and all(dd == 1 for dd in d):
        cls = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}[rank]
        extra = tuple(max(o - pp, 0) for o, pp in zip(op, p))  # torch's output padding beyond its crop
        name = cx.sub("full") if any(p) or any(op) else cx.name
        layer = cls(w.shape[1], k, strides=s, padding="valid", output_padding=extra, dilation_rate=1,
                    use_bias=b is not None, name=name, dtype=cx.dtype)  # fmt: skip
        arrays = {"weight": w, **({"bias": b} if b is not None else {})}
        y = layer(t)
        crops = [(pp, max(pp - o, 0)) for pp, o in zip(p, op)]
        if any(a or c for a, c in crops):
            y = _crop_named(cx, y, crops)
        weights = family_for_torch(f"ConvTranspose{rank}d").to_keras(arrays, LayerContext(name))
        return Out(tensor_value(y, out_shape, channels_last(rank + 2)), ((layer, weights),))
    # zeros between samples, then the flipped kernel as a plain (grouped, dilated) conv
    z = _insert_zeros(cx, t, s)
    pairs = [(dd * (kk - 1) - pp, dd * (kk - 1) - pp + o) for kk, dd, pp, o in zip(k, d, p, op)]
    z = pad_or_crop(cx, z, pairs, "full_pad")
    kernel = transposed_as_conv_kernel(w, groups)
    cin = w.shape[0]
    res = _conv(cx, z, kernel, b, (1,) * rank, (0,) * rank, d, groups, out_shape, cin)
    return res


def _crop_named(cx, y, crops):
    rank = len(crops)
    L = cx.layers
    cls = {1: L.Cropping1D, 2: L.Cropping2D, 3: L.Cropping3D}[rank]
    return cls(crops[0] if rank == 1 else tuple(crops), name=cx.name, dtype=cx.dtype)(y)


def _insert_zeros(cx, t, s):
    """Channels-last maps with ``s - 1`` zeros between neighbours along each spatial axis."""
    ops = cx.ops
    shape = list(t.shape)  # (None, *spatial, C)
    rank = len(shape) - 2
    for ax in range(rank):
        st = s[ax]
        if st == 1:
            continue
        n = shape[1 + ax]
        x = ops.expand_dims(t, 2 + ax)  # (..., n, 1, ...)
        pads = [(0, 0)] * (len(shape) + 1)
        pads[2 + ax] = (0, st - 1)
        x = ops.pad(x, pads)
        rest = shape[1:]
        rest[ax] = n * st
        x = ops.reshape(x, (-1, *rest))
        t = x[(slice(None),) * (1 + ax) + (slice(0, n * st - (st - 1)),)]
        shape = list(t.shape)
    return t
