"""Layout-only ops and reshapes: permute, view/reshape, (un)squeeze, expand, cat, stack.

A permute moves no data: the output is the same Keras tensor with its ``perm`` re-read. A
reshape is a plain Keras ``Reshape`` whenever the dims it merges or splits lie side by side, in
order, in the Keras layout (``x.flatten(2)`` of channels-last maps is one); a flatten of
channels-last maps becomes Keras' own flatten order, marked ``flat`` for the Linear after it.
Only a reshape that needs torch's order of the data (a flatten feeding something other than a
Linear, a reshape across channels and space) transposes first, as the torch code does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .converters import converts
from .values import Ctx, Out, Value, as_tensor, const_value, batch_first, channels_last, default_perm, to_perm, unflat


def _groups(src, dst):
    """Pair runs of ``src`` dims with runs of ``dst`` dims of equal size (size-1 dims left out)."""
    si = [i for i, s in enumerate(src) if s != 1]
    di = [j for j, s in enumerate(dst) if s != 1]
    groups, i, j = [], 0, 0
    while i < len(si) and j < len(di):
        gi, gj, ps, pd = [si[i]], [di[j]], src[si[i]], dst[di[j]]
        i, j = i + 1, j + 1
        while ps != pd:
            if ps < pd:
                gi.append(si[i])
                ps *= src[si[i]]
                i += 1
            else:
                gj.append(di[j])
                pd *= dst[di[j]]
                j += 1
        groups.append((gi, gj))
    return groups


def _place_ones(order, dst):
    """Insert ``dst``'s size-1 dims into a Keras order of its other dims: the default layout when it
    agrees, else each right after the dim before it in torch's order."""
    rank = len(dst)
    want = default_perm(rank)
    if [d for d in want if dst[d] != 1] == list(order):
        return want
    out = list(order)
    for j in range(rank):
        if dst[j] == 1:
            pos = out.index(j - 1) + 1 if j - 1 in out else 1
            out.insert(pos, j)
    return tuple(out)


def _out_order(perm, src, dst):
    """The Keras order of ``dst`` if a plain Keras reshape of a ``perm`` tensor computes it, else None."""
    groups = _groups(src, dst)
    kp = [d for d in perm if src[d] != 1]
    first = {g[0][0]: g for g in groups}
    order, k = [], 0
    while k < len(kp):
        g = first.get(kp[k])
        if g is None or kp[k : k + len(g[0])] != g[0]:
            return None
        order.extend(g[1])
        k += len(g[0])
    return _place_ones(order, dst)


def reshape_value(cx: Ctx, v: Value, dst, name=None) -> Value:
    """``v`` reshaped to torch shape ``dst`` (a Keras ``Reshape`` named ``name``, default the node's),
    where the merged or split dims lie side by side in Keras' order; one touching the batch is refused."""
    src, dst = tuple(v.shape), tuple(int(s) for s in dst)
    name = name or cx.name
    if src == dst:
        return v
    b = v.perm[0]
    groups = _groups(src, dst)
    bgroup = next((g for g in groups if b in g[0]), None)
    if bgroup is None or bgroup[0] != [b] or len(bgroup[1]) != 1:
        raise cx.unsupported(f"a reshape from {src} to {dst} that merges or splits the batch axis",
                             "reshapes that keep the batch dim (x.view(x.size(0), ...))")  # fmt: skip
    L = cx.layers
    if v.flat is None:
        order = _out_order(v.perm, src, dst)
        if order is not None and order[0] == bgroup[1][0]:
            kshape = tuple(dst[d] for d in order)
            t = v.tensor if kshape[1:] == v.keras_shape()[1:] else L.Reshape(kshape[1:], name=name, dtype=cx.dtype)(v.tensor)
            return Value(t, dst, order, nonneg=v.nonneg)
        # a flatten of channels-last maps to (N, F): Keras' own order, the next Linear permutes its weights
        if len(dst) == 2 and v.rank >= 3 and v.perm == channels_last(v.rank) and bgroup[1] == [0]:
            flat = tuple(src[d] for d in v.perm[1:])
            t = L.Flatten(name=name, dtype=cx.dtype)(v.tensor)
            return Value(t, dst, (0, 1), flat=flat, nonneg=v.nonneg)
    v = unflat(cx, v)
    perm = batch_first(v)
    t = to_perm(cx, v, perm)
    order = _out_order(perm, src, dst)
    if order is None:
        raise cx.unsupported(f"a reshape from {src} to {dst}")
    kshape = tuple(dst[d] for d in order)
    return Value(L.Reshape(kshape[1:], name=name, dtype=cx.dtype)(t), dst, order, nonneg=v.nonneg)


@converts("aten::view", "aten::_unsafe_view", "aten::reshape", family="shape", note="Reshape (no transpose where the layout allows)")
def view(cx, node, args, kwargs):
    return Out(reshape_value(cx, args[0], node.shape))


@converts("aten::permute", family="shape", note="no op: the layout is re-read")
def permute(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    dims = [d % v.rank for d in args[1]]
    return Out(_permuted(v, dims))


def _permuted(v: Value, dims) -> Value:
    """``v.permute(dims)``: the same Keras tensor, its axes re-read."""
    return replace(v, perm=tuple(dims.index(p) for p in v.perm), shape=tuple(v.shape[d] for d in dims))


@converts("aten::transpose", family="shape", note="no op: the layout is re-read")
def transpose(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    a, b = args[1] % v.rank, args[2] % v.rank
    dims = list(range(v.rank))
    dims[a], dims[b] = dims[b], dims[a]
    return Out(_permuted(v, dims))


@converts("aten::t", family="shape", note="no op: the layout is re-read")
def t_(cx, node, args, kwargs):
    return transpose(cx, node, (args[0], 0, 1), {})


@converts("aten::copy", family="shape", note="the copied value, in the destination's layout (x[...] = y, +=)")
def copy(cx, node, args, kwargs):
    dst, src = args[0], args[1]
    if not isinstance(src, Value) or tuple(src.shape) != tuple(dst.shape):
        raise cx.unsupported("a copy that broadcasts its source", "in-place updates of the same shape")
    if src.is_const:
        if dst.is_const:
            return Out(src)
        from .values import as_tensor

        return Out(Value(as_tensor(cx, src, unflat(cx, dst)), dst.shape, unflat(cx, dst).perm))
    return Out(src)


@converts("aten::clone", "aten::alias", "aten::detach", "aten::lift_fresh_copy", "aten::contiguous",
          family="shape", note="no op")  # fmt: skip
def passthrough(cx, node, args, kwargs):
    return Out(args[0])


def unsqueeze_value(cx, v: Value, dim: int) -> Value:
    """``v`` with a dim of size 1 inserted at torch dim ``dim`` (``torch.unsqueeze``)."""
    v = unflat(cx, v)
    rank = v.rank + 1
    dim = dim % rank
    old = [p + (p >= dim) for p in v.perm]
    shape = list(v.shape)
    shape.insert(dim, 1)
    order = _place_ones([d for d in old if shape[d] != 1], tuple(shape))
    if sorted(order) != list(range(rank)) or [d for d in order if d != dim] != old:  # keep the other axes where they are
        pos = old.index(dim - 1) + 1 if dim - 1 in old else 1
        order = tuple(old[:pos] + [dim] + old[pos:])
    pos = order.index(dim)
    return Value(cx.ops.expand_dims(v.tensor, pos), tuple(shape), tuple(order), nonneg=v.nonneg)


@converts("aten::unsqueeze", family="shape", note="keras.ops.expand_dims")
def unsqueeze(cx, node, args, kwargs):
    return Out(unsqueeze_value(cx, args[0], args[1]))


@converts("aten::squeeze", family="shape", note="keras.ops.squeeze")
def squeeze(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    if dims is None:
        dims = [d for d, s in enumerate(v.shape) if s == 1]
    dims = sorted({d % v.rank for d in ([dims] if isinstance(dims, int) else dims) if v.shape[d % v.rank] == 1})
    if not dims:
        return Out(v)
    axes = [v.axis(d) for d in dims]
    keep = [p for p in v.perm if p not in dims]
    perm = tuple(p - sum(d < p for d in dims) for p in keep)
    shape = tuple(s for i, s in enumerate(v.shape) if i not in dims)
    return Out(Value(cx.ops.squeeze(v.tensor, axis=tuple(axes)), shape, perm, nonneg=v.nonneg))


@converts("aten::expand", family="shape", note="keras.ops.tile where a size-1 dim grows")
def expand(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    dst = tuple(node.shape)
    if v.rank < len(dst):
        raise cx.unsupported("expand adding leading dims to a tensor", "expand at the same rank")
    reps = [1 if v.shape[d] == dst[d] else dst[d] for d in v.perm]
    if reps[0] != 1:
        raise cx.unsupported("expand along the batch axis")
    if all(r == 1 for r in reps):
        return Out(v)
    return Out(Value(cx.ops.tile(v.tensor, reps), dst, v.perm, nonneg=v.nonneg))


def _cat(cx, values, dim, out_shape, name) -> Value:
    tensors = [v for v in values if not v.is_const]
    ref = unflat(cx, tensors[0])
    rank = ref.rank
    dim = dim % rank
    if dim == ref.perm[0]:
        raise cx.unsupported("cat along the batch axis", "cat along channels or space")
    parts = []
    for v in values:
        if v.is_const:
            parts.append(as_tensor(cx, v, ref))
        elif v.shape[dim] == 0:
            continue
        else:
            parts.append(to_perm(cx, v, ref.perm))
    if len(parts) == 1:
        return Value(parts[0], tuple(out_shape), ref.perm)
    t = cx.layers.Concatenate(axis=ref.perm.index(dim), name=name, dtype=cx.dtype)(parts)
    return Value(t, tuple(out_shape), ref.perm, nonneg=all(v.nonneg for v in values))


@converts("aten::cat", "aten::concat", family="shape", note="Concatenate(axis); constants (a cls token) broadcast over the batch")
def cat(cx, node, args, kwargs):
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    return Out(_cat(cx, list(args[0]), dim, node.shape, cx.name))


@converts("aten::stack", family="shape", note="expand_dims + Concatenate")
def stack(cx, node, args, kwargs):
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    rank = len(node.shape)
    dim = dim % rank
    values = [const_value(np.expand_dims(v.const, dim), batch1=v.batch1) if v.is_const else unsqueeze_value(cx, v, dim) for v in args[0]]
    return Out(_cat(cx, values, dim, node.shape, cx.name))


@converts("aten::full_like", "aten::zeros_like", "aten::ones_like", family="shape", note="keras.ops.full_like")
def full_like(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    fill = {"aten::zeros_like": 0.0, "aten::ones_like": 1.0}.get(node.op)
    if fill is None:
        fill = args[1] if len(args) > 1 else kwargs.get("fill_value")
    return Out(Value(cx.ops.full_like(v.tensor, cx.array(fill)), v.shape, v.perm, nonneg=fill >= 0))


@converts("aten::flip", family="shape", note="keras.ops.flip")
def flip(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    dims = sorted({d % v.rank for d in args[1]})
    if v.perm[0] in dims:
        raise cx.unsupported("flipping the batch axis")
    return Out(replace(v, tensor=cx.ops.flip(v.tensor, axis=tuple(v.axis(d) for d in dims))))


@converts("aten::repeat", family="shape", note="keras.ops.tile")
def repeat(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    reps = list(args[1])
    if len(reps) != v.rank:
        raise cx.unsupported("repeat adding leading dims", "repeat with one count per dim")
    if reps[v.perm[0]] != 1:
        raise cx.unsupported("repeat along the batch axis")
    return Out(Value(cx.ops.tile(v.tensor, [reps[d] for d in v.perm]), tuple(node.shape), v.perm, nonneg=v.nonneg))


@converts("aten::roll", family="shape", note="keras.ops.roll")
def roll(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    shifts = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
    dims = args[2] if len(args) > 2 else kwargs.get("dims", [])
    dims = dims if isinstance(dims, (list, tuple)) else [dims]
    if not dims or v.perm[0] in [d % v.rank for d in dims]:
        raise cx.unsupported("roll over the flattened tensor or the batch axis", "roll along named dims")
    t = v.tensor
    for s, d in zip(shifts, dims):
        t = cx.ops.roll(t, int(s), axis=v.axis(d))
    return Out(replace(v, tensor=t))
