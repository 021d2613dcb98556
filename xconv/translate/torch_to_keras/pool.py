"""Exact pooling: max and average with any padding, ``ceil_mode``, ``count_include_pad``,
``divisor_override`` and dilation; adaptive average and max to any output size.

Every window torch takes is made a 'valid' window of an explicitly padded input, so the
built-in ``MaxPoolingND`` / ``AveragePoolingND`` compute them: max pooling pads with -inf
(zeros only where the input is provably non-negative, a ReLU output), average pooling pads
with zeros and, where torch divides by something other than the kernel size (padding left out
of the count, a window cut by ``ceil_mode``), multiplies by a constant correction map. What TF's
CPU kernels lack (dilated max pooling, float64 3D max pooling) is the max over the strided
slices of each kernel offset. Adaptive pooling is separable: one constant averaging map per
axis, or the max of each axis' windows.
"""

from __future__ import annotations

import itertools

import numpy as np

from ...padding import as_tuple
from .conv import pad_or_crop
from .converters import converts
from .values import Ctx, Out, Value, along_axis, channels_last, tensor_value, to_perm


def windows(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> tuple[int, int, int]:
    """torch's output length along one axis and the (before, after) padding that makes its
    windows 'valid' ones (after < 0: that much of the input is never read)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:  # torch drops a last window starting in the right padding
        out -= 1
    needed = (out - 1) * s + d * (k - 1) + 1
    return out, p, needed - n - p


def _pad_value(cx, t, pairs, value, suffix):
    rank = len(pairs)
    pads = [(0, 0)] + [(max(a, 0), max(b, 0)) for a, b in pairs] + [(0, 0)]
    crops = [(max(-a, 0), max(-b, 0)) for a, b in pairs]
    if any(a or b for a, b in crops):
        t = pad_or_crop(cx, t, [(-a, -b) for a, b in crops], suffix + "_crop")
    if any(a or b for a, b in pads):
        t = cx.ops.pad(t, pads, constant_values=value)
    return t


def _strided(cx, t, k, s, d, out, reduce):
    """``reduce`` over each kernel offset's strided slice (windows already 'valid')."""
    acc = None
    for off in itertools.product(*[range(kk) for kk in k]):
        idx = (slice(None),) + tuple(slice(o * dd, o * dd + (oo - 1) * ss + 1, ss) for o, dd, ss, oo in zip(off, d, s, out)) + (slice(None),)
        part = t[idx]
        acc = part if acc is None else reduce(acc, part)
    return acc


def _max_pool(cx: Ctx, node, x: Value, kernel, stride, padding, dilation, ceil_mode, rank) -> Value:
    L = cx.layers
    k = as_tuple(kernel, rank, "kernel", broadcast=True)
    s = as_tuple(stride, rank, "stride", broadcast=True) if stride else k
    p = as_tuple(padding, rank, "padding", broadcast=True)
    d = as_tuple(dilation, rank, "dilation", broadcast=True)
    spatial = x.shape[2:]
    plan = [windows(n, kk, ss, pp, dd, bool(ceil_mode)) for n, kk, ss, pp, dd in zip(spatial, k, s, p, d)]
    out = tuple(o for o, _, _ in plan)
    pairs = [(a, b) for _, a, b in plan]
    t = to_perm(cx, x, channels_last(rank + 2))
    if x.nonneg:
        t = pad_or_crop(cx, t, pairs)
    else:
        t = _pad_value(cx, t, pairs, -np.inf, "pad")
    if any(dd != 1 for dd in d) or (rank == 3 and cx.dtype == "float64"):
        y = _strided(cx, t, k, s, d, out, cx.ops.maximum)
    else:
        cls = {1: L.MaxPooling1D, 2: L.MaxPooling2D, 3: L.MaxPooling3D}[rank]
        y = cls(k, strides=s, padding="valid", name=cx.name, dtype=cx.dtype)(t)
    return tensor_value(y, (*x.shape[:2], *out), channels_last(rank + 2), nonneg=x.nonneg)


def _max_args(args, kwargs):
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    defaults = (None, (), 0, 1, False)
    return [args[i + 1] if len(args) > i + 1 else kwargs.get(n, dv) for i, (n, dv) in enumerate(zip(names, defaults))]


def _max_converter(rank, with_indices):
    def convert(cx, node, args, kwargs):
        y = _max_pool(cx, node, args[0], *_max_args(args, kwargs), rank)
        return Out((y, None) if with_indices else y)

    return convert


for _r in (1, 2, 3):
    converts(f"aten::max_pool{_r}d_with_indices", family="pool", note=f"MaxPooling{_r}D on a -inf (or zero) padded input")(_max_converter(_r, True))
    converts(f"aten::max_pool{_r}d", family="pool", note=f"MaxPooling{_r}D on a -inf (or zero) padded input")(_max_converter(_r, False))


def _divisors(n, k, s, p, out, include_pad):
    starts = np.arange(out) * s - p
    if include_pad:
        return np.minimum(starts + k, n + p) - starts
    return np.minimum(starts + k, n) - np.maximum(starts, 0)


def _avg_pool(cx: Ctx, x: Value, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, rank) -> Value:
    L = cx.layers
    k = as_tuple(kernel, rank, "kernel", broadcast=True)
    s = as_tuple(stride, rank, "stride", broadcast=True) if stride not in (None, [], ()) else k
    p = as_tuple(padding, rank, "padding", broadcast=True)
    spatial = x.shape[2:]
    plan = [windows(n, kk, ss, pp, 1, bool(ceil_mode)) for n, kk, ss, pp in zip(spatial, k, s, p)]
    out = tuple(o for o, _, _ in plan)
    if divisor_override:
        div = np.full(out, float(divisor_override))
    else:
        div = np.ones(out)
        for ax, (n, kk, ss, pp, o) in enumerate(zip(spatial, k, s, p, out)):
            shape = [1] * rank
            shape[ax] = o
            div = div * _divisors(n, kk, ss, pp, o, bool(count_include_pad)).reshape(shape)
    rescale = not np.all(div == np.prod(k))  # torch divides some windows by another count
    t = pad_or_crop(cx, to_perm(cx, x, channels_last(rank + 2)), [(a, b) for _, a, b in plan])
    if rank == 3 and cx.dtype == "float64":
        y = _strided(cx, t, k, s, (1,) * rank, out, cx.ops.add) / cx.array(np.prod(k))
    else:
        cls = {1: L.AveragePooling1D, 2: L.AveragePooling2D, 3: L.AveragePooling3D}[rank]
        y = cls(k, strides=s, padding="valid", name=cx.sub("avg") if rescale else cx.name, dtype=cx.dtype)(t)
    if rescale:
        y = y * cx.array((np.prod(k) / div)[None, ..., None])
    return tensor_value(y, (*x.shape[:2], *out), channels_last(rank + 2), nonneg=x.nonneg)


def _avg_converter(rank):
    def convert(cx, node, args, kwargs):
        names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
        defaults = (None, None, 0, False, True, None)
        vals = [args[i + 1] if len(args) > i + 1 else kwargs.get(n, dv) for i, (n, dv) in enumerate(zip(names, defaults))]
        return Out(_avg_pool(cx, args[0], *vals, rank))

    return convert


for _r in (1, 2, 3):
    converts(f"aten::avg_pool{_r}d", family="pool", note=f"AveragePooling{_r}D on a zero-padded input, divisors corrected")(_avg_converter(_r))


def _adaptive_windows(n, o):
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def _adaptive(cx: Ctx, x: Value, size, rank, kind) -> Value:
    L = cx.layers
    size = as_tuple(size, rank, "output_size", broadcast=True)
    spatial = x.shape[2:]
    size = tuple(n if o is None else o for n, o in zip(spatial, size))
    t = to_perm(cx, x, channels_last(rank + 2))
    if all(o == 1 for o in size):
        cls = {"avg": {1: L.GlobalAveragePooling1D, 2: L.GlobalAveragePooling2D, 3: L.GlobalAveragePooling3D},
               "max": {1: L.GlobalMaxPooling1D, 2: L.GlobalMaxPooling2D, 3: L.GlobalMaxPooling3D}}[kind][rank]  # fmt: skip
        y = cls(keepdims=True, name=cx.name, dtype=cx.dtype)(t)
    elif all(n % o == 0 for n, o in zip(spatial, size)) and not (rank == 3 and cx.dtype == "float64" and kind == "max"):
        k = tuple(n // o for n, o in zip(spatial, size))
        cls = {"avg": {1: L.AveragePooling1D, 2: L.AveragePooling2D, 3: L.AveragePooling3D},
               "max": {1: L.MaxPooling1D, 2: L.MaxPooling2D, 3: L.MaxPooling3D}}[kind][rank]  # fmt: skip
        y = cls(k, strides=k, padding="valid", name=cx.name, dtype=cx.dtype)(t)
    else:  # windows of unequal sizes: separable, one axis at a time
        y = t
        for ax, (n, o) in enumerate(zip(spatial, size)):
            lo, hi = _adaptive_windows(n, o)
            if kind == "avg":
                m = np.zeros((o, n))
                for i in range(o):
                    m[i, lo[i] : hi[i]] = 1.0 / (hi[i] - lo[i])
                y = along_axis(cx, y, 1 + ax, m)
            else:
                parts = [cx.ops.max(y[(slice(None),) * (1 + ax) + (slice(int(a), int(b)),)], axis=1 + ax, keepdims=True) for a, b in zip(lo, hi)]
                y = cx.ops.concatenate(parts, axis=1 + ax)
    return tensor_value(y, (*x.shape[:2], *size), channels_last(rank + 2), nonneg=x.nonneg)


def _adaptive_converter(rank, kind, with_indices):
    def convert(cx, node, args, kwargs):
        y = _adaptive(cx, args[0], args[1], rank, kind)
        return Out((y, None) if with_indices else y)

    return convert


for _r in (1, 2, 3):
    converts(f"aten::_adaptive_avg_pool{_r}d", f"aten::adaptive_avg_pool{_r}d", family="pool",
             note="GlobalAveragePooling / AveragePooling, or one averaging map per axis")(_adaptive_converter(_r, "avg", False))  # fmt: skip
    converts(f"aten::adaptive_max_pool{_r}d", family="pool", note="GlobalMaxPooling / MaxPooling, or the max of each window")(_adaptive_converter(_r, "max", True))
