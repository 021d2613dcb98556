"""Reductions over torch dims read through the layout: mean, sum, amax, amin, max.dim, var."""

from __future__ import annotations

from .converters import converts
from .values import Out, Value, unflat


def _dims(v: Value, dims):
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return list(range(v.rank))
    return sorted({d % v.rank for d in ([dims] if isinstance(dims, int) else dims)})


def reduce_value(cx, v: Value, dims, keepdim: bool, fn, **kw) -> Value:
    """``v`` reduced over torch ``dims`` by ``fn`` (a ``keras.ops`` reduction, ``kw`` its arguments),
    read on the Keras axes that hold them (a reduction over the batch refused)."""
    v = unflat(cx, v)
    dims = _dims(v, dims)
    if v.perm[0] in dims:
        raise cx.unsupported("a reduction over the batch axis", "reductions over channels, space or tokens")
    axes = tuple(sorted(v.axis(d) for d in dims))
    t = fn(v.tensor, axis=axes, keepdims=keepdim, **kw)
    if keepdim:
        shape = tuple(1 if i in dims else s for i, s in enumerate(v.shape))
        return Value(t, shape, v.perm, nonneg=v.nonneg)
    perm = tuple(p - sum(d < p for d in dims) for p in v.perm if p not in dims)
    shape = tuple(s for i, s in enumerate(v.shape) if i not in dims)
    return Value(t, shape, perm, nonneg=v.nonneg)


def _args(args, kwargs):
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return dims, bool(keep)


def _reduction(fn_name):
    def convert(cx, node, args, kwargs):
        dims, keep = _args(args, kwargs)
        return Out(reduce_value(cx, args[0], dims, keep, getattr(cx.ops, fn_name)))

    return convert


for _op, _fn in [("mean", "mean"), ("sum", "sum"), ("amax", "max"), ("amin", "min")]:
    converts(f"aten::{_op}", family="reduction", note=f"keras.ops.{_fn} over the Keras axes of the dims")(_reduction(_fn))


@converts("aten::max", family="reduction", note="keras.ops.max (values; indices unsupported)")
def max_(cx, node, args, kwargs):
    if len(args) == 1:
        raise cx.unsupported("max over every element, batch included", "x.amax(dims)")
    if isinstance(args[1], Value):
        from .elementwise import binary

        return binary(cx, args[0], args[1], cx.ops.maximum, None, node.shape)
    dims, keep = _args(args, kwargs)
    return Out((reduce_value(cx, args[0], dims, keep, cx.ops.max), None))


@converts("aten::var", family="reduction", note="keras.ops.var with torch's correction")
def var(cx, node, args, kwargs):
    v = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    correction = kwargs.get("correction", 1)
    keep = bool(kwargs.get("keepdim", False))
    out = reduce_value(cx, v, dims, keep, cx.ops.var)
    n = 1
    for d in _dims(v, dims):
        n *= v.shape[d]
    if correction:
        out = Value(out.tensor * cx.array(n / (n - correction)), out.shape, out.perm)
    return Out(out)


@converts("aten::linalg_vector_norm", family="reduction", note="sqrt of the sum of squares (ord 2), sum of |x| (ord 1), max |x| (inf)")
def vector_norm(cx, node, args, kwargs):
    v = unflat(cx, args[0])
    ord_ = args[1] if len(args) > 1 else kwargs.get("ord", 2)
    dims = args[2] if len(args) > 2 else kwargs.get("dim")
    keep = bool(args[3] if len(args) > 3 else kwargs.get("keepdim", False))
    ops = cx.ops
    if ord_ == 2:
        out = reduce_value(cx, Value(v.tensor * v.tensor, v.shape, v.perm), dims, keep, ops.sum)
        return Out(Value(ops.sqrt(out.tensor), out.shape, out.perm, nonneg=True))
    if ord_ == 1:
        out = reduce_value(cx, Value(ops.abs(v.tensor), v.shape, v.perm), dims, keep, ops.sum)
        return Out(Value(out.tensor, out.shape, out.perm, nonneg=True))
    if ord_ == float("inf"):
        out = reduce_value(cx, Value(ops.abs(v.tensor), v.shape, v.perm), dims, keep, ops.max)
        return Out(Value(out.tensor, out.shape, out.perm, nonneg=True))
    raise cx.unsupported(f"a vector norm of order {ord_}", "ord 1, 2 or inf")
