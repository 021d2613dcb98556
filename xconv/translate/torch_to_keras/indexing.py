"""Slicing and indexing: getitem of tuples, slice, select, split, unbind, narrow, index_select.

Each reads its torch dim through the value's layout, so slicing channels of channels-last maps
(GhostNet's ``out[:, :self.out_chs]``) slices Keras' last axis, with no transpose.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .converters import converts
from .values import Ctx, Out, Value, unflat

_BIG = 2**62


def _range(n, start, end, step):
    start = 0 if start is None else start
    end = n if end is None or end >= _BIG else end
    return range(n)[slice(start, end, step)]


def slice_value(cx: Ctx, v: Value, dim: int, start, end, step=1) -> Value:
    """``v`` sliced along torch dim ``dim`` as ``v[..., start:end:step]`` is in torch (the batch refused)."""
    v = unflat(cx, v)
    dim = dim % v.rank
    n = v.shape[dim]
    r = _range(n, start, end, step)
    if len(r) == n and r.step == 1:
        return v
    if dim == v.perm[0]:
        raise cx.unsupported("slicing the batch axis", "slicing channels, space or tokens")
    ax = v.axis(dim)
    index = (slice(None),) * ax + (slice(r.start, r.stop if r.stop >= 0 else None, r.step),)
    shape = list(v.shape)
    shape[dim] = len(r)
    return replace(v, tensor=v.tensor[index], shape=tuple(shape))


def select_value(cx: Ctx, v: Value, dim: int, index: int) -> Value:
    """``v`` at ``index`` along torch dim ``dim``, that dim dropped (``torch.select``; the batch refused)."""
    v = unflat(cx, v)
    dim = dim % v.rank
    if dim == v.perm[0]:
        raise cx.unsupported("selecting one sample of the batch")
    index = index % v.shape[dim]
    ax = v.axis(dim)
    t = v.tensor[(slice(None),) * ax + (index,)]
    perm = tuple(p - (p > dim) for p in v.perm if p != dim)
    shape = tuple(s for i, s in enumerate(v.shape) if i != dim)
    return Value(t, shape, perm, nonneg=v.nonneg)


@converts("getitem", family="indexing", note="an element of a tuple output (batch norm, split, LSTM)")
def getitem(cx, node, args, kwargs):
    seq, i = args[0], args[1]
    if isinstance(seq, Value):
        raise cx.unsupported("indexing a tensor with getitem", "slicing ops")
    return Out(seq[i])


@converts("aten::slice", family="indexing", note="Keras slicing x[..., a:b:s]")
def slice_(cx, node, args, kwargs):
    v = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    start = args[2] if len(args) > 2 else kwargs.get("start")
    end = args[3] if len(args) > 3 else kwargs.get("end")
    step = args[4] if len(args) > 4 else kwargs.get("step", 1)
    return Out(slice_value(cx, v, dim, start, end, step))


@converts("aten::narrow", family="indexing", note="Keras slicing")
def narrow(cx, node, args, kwargs):
    v, dim, start, length = args[:4]
    start = start % v.shape[dim % v.rank]
    return Out(slice_value(cx, v, dim, start, start + length))


@converts("aten::select", family="indexing", note="Keras indexing x[..., i]")
def select(cx, node, args, kwargs):
    return Out(select_value(cx, args[0], args[1], args[2]))


def _split(cx, v, sizes, dim):
    out, start = [], 0
    for s in sizes:
        out.append(slice_value(cx, v, dim, start, start + s))
        start += s
    return tuple(out)


@converts("aten::split_with_sizes", family="indexing", note="slices (split, chunk)")
def split_with_sizes(cx, node, args, kwargs):
    dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
    return Out(_split(cx, args[0], args[1], dim))


@converts("aten::split", family="indexing", note="slices")
def split(cx, node, args, kwargs):
    v, size = args[0], args[1]
    dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
    if isinstance(size, (list, tuple)):
        return Out(_split(cx, v, size, dim))
    n = v.shape[dim % v.rank]
    return Out(_split(cx, v, [min(size, n - s) for s in range(0, n, size)], dim))


@converts("aten::unbind", family="indexing", note="one select per element")
def unbind(cx, node, args, kwargs):
    v = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    return Out(tuple(select_value(cx, v, dim, i) for i in range(v.shape[dim % v.rank])))


def _take(cx, v: Value, dim: int, index: np.ndarray, shape) -> Value:
    v = unflat(cx, v)
    dim = dim % v.rank
    if dim == v.perm[0]:
        raise cx.unsupported("indexing the batch axis")
    t = cx.ops.take(v.tensor, np.asarray(index, dtype="int32").reshape(-1), axis=v.axis(dim))
    return replace(v, tensor=t, shape=tuple(shape))


@converts("aten::index_select", family="indexing", note="keras.ops.take with constant indices")
def index_select(cx, node, args, kwargs):
    v, dim, index = args[0], args[1], args[2]
    if not (isinstance(index, Value) and index.is_const):
        raise cx.unsupported("index_select with computed indices", "constant indices")
    return Out(_take(cx, v, dim, index.const, node.shape))


@converts("aten::index", family="indexing", note="keras.ops.take: one constant 1-D index tensor")
def index(cx, node, args, kwargs):
    v, indices = args[0], list(args[1])
    used = [(d, i) for d, i in enumerate(indices) if i is not None]
    if len(used) != 1 or not (isinstance(used[0][1], Value) and used[0][1].is_const) or used[0][1].const.ndim != 1:
        raise cx.unsupported("advanced indexing other than one constant 1-D index", "x[:, idx] with a constant idx")
    d, i = used[0]
    c = i.const
    if c.dtype == bool:
        c = np.nonzero(c)[0]
    return Out(_take(cx, v, d, c, node.shape))


@converts("aten::slice_scatter", family="indexing", note="Concatenate of the untouched parts and the new slice (x[:, :c] += y)")
def slice_scatter(cx, node, args, kwargs):
    base, src = args[0], args[1]
    dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
    start = args[3] if len(args) > 3 else kwargs.get("start")
    end = args[4] if len(args) > 4 else kwargs.get("end")
    step = args[5] if len(args) > 5 else kwargs.get("step", 1)
    dim = dim % base.rank
    r = _range(base.shape[dim], start, end, step)
    if r.step != 1:
        raise cx.unsupported("an in-place update of a strided slice", "updates of contiguous slices")
    from .shape import _cat

    parts = [slice_value(cx, base, dim, 0, r.start)] if r.start > 0 else []
    parts.append(src)
    if r.stop < base.shape[dim]:
        parts.append(slice_value(cx, base, dim, r.stop, None))
    if len(parts) == 1:
        ref = unflat(cx, base)
        from .values import to_perm

        return Out(replace(ref, tensor=to_perm(cx, src, ref.perm), nonneg=src.nonneg))
    return Out(_cat(cx, parts, dim, node.shape, cx.name))
