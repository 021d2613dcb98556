"""Element-wise arithmetic with torch's broadcasting, between tensors and with constants.

Both operands are brought to one layout (the one already channels-last where there is a
choice); constants are broadcast and permuted once, at translation, so nothing moves at run
time. A flattened vector keeps Keras' order through arithmetic with a per-feature constant,
whose elements are permuted the same way.
"""

from __future__ import annotations

import numpy as np

from ...layouts import flatten_permutation
from .converters import converts
from .values import Ctx, Out, Value, const_in, default_perm, like, to_perm, unflat


def _scalar(cx, x: Value, s):
    if x.tensor is not None and "int" in str(x.tensor.dtype) and float(s).is_integer():
        return np.asarray(int(s), dtype=str(x.tensor.dtype))
    return cx.array(s)


def _const_for(cx, c: np.ndarray, x: Value):
    """A constant operand in ``x``'s Keras layout (flattened vectors included)."""
    c = np.asarray(c)
    if x.flat is not None and c.ndim and c.shape[-1] > 1:
        c = c[..., np.argsort(flatten_permutation(x.flat))]
        return cx.array(c.reshape((1,) * (x.rank - c.ndim) + c.shape))
    return const_in(cx, c, x.rank, x.perm)


def binary(cx: Ctx, a, b, fn, layer_cls=None, out_shape=None, nonneg=False) -> Out:
    """``fn(ta, tb)`` on two operands (Values or numbers) after putting them in one layout."""
    av, bv = isinstance(a, Value) and not a.is_const, isinstance(b, Value) and not b.is_const
    if av and bv:
        if a.rank != b.rank:
            raise cx.unsupported(f"broadcasting between tensors of rank {a.rank} and {b.rank}", "operands of the same rank")
        if a.flat is not None and a.flat == b.flat:
            perm, ta, tb = a.perm, a.tensor, b.tensor
        else:
            a, b = unflat(cx, a), unflat(cx, b)
            main = b if b.perm == default_perm(b.rank) and a.perm != b.perm else a
            perm = main.perm
            ta, tb = to_perm(cx, a, perm), to_perm(cx, b, perm)
        ref = a if a.perm == perm else b
        if layer_cls is not None and tuple(a.shape) == tuple(b.shape):
            t = layer_cls(name=cx.name, dtype=cx.dtype)([ta, tb])
        else:
            t = fn(ta, tb)
        shape = out_shape or tuple(max(x, y) for x, y in zip(a.shape, b.shape))
        return Out(Value(t, tuple(shape), perm, flat=ref.flat if ref.flat == a.flat == b.flat else None, nonneg=nonneg))
    x, other, swapped = (a, b, False) if av else (b, a, True)
    if not (isinstance(x, Value) and not x.is_const):
        raise cx.unsupported("arithmetic between constants only")
    if isinstance(other, Value):
        if other.batch1 or other.const.ndim <= x.rank:
            c = _const_for(cx, other.const, x)
        else:
            raise cx.unsupported("a constant of higher rank than the tensor")
    else:
        c = _scalar(cx, x, other)
    t = fn(c, x.tensor) if swapped else fn(x.tensor, c)
    shape = out_shape or x.shape
    return Out(Value(t, tuple(shape), x.perm, flat=x.flat, nonneg=nonneg))


def _alpha(args, kwargs):
    return kwargs.get("alpha", args[2] if len(args) > 2 else 1)


def _shape(node):
    return node.shape


@converts("aten::add", family="elementwise", note="Add layer between tensors of one shape, else keras.ops.add")
def add(cx, node, args, kwargs):
    a, b = args[0], args[1]
    alpha = _alpha(args, kwargs)
    if alpha != 1:
        b = _scaled(cx, b, alpha)
    return binary(cx, a, b, cx.ops.add, cx.layers.Add, _shape(node))


def _scaled(cx, b, alpha):
    if isinstance(b, Value) and b.is_const:
        return Value(None, b.shape, b.perm, const=b.const * alpha, batch1=b.batch1)
    if isinstance(b, Value):
        return like(b, b.tensor * cx.array(alpha))
    return b * alpha


@converts("aten::sub", family="elementwise", note="Subtract layer or keras.ops.subtract")
def sub(cx, node, args, kwargs):
    a, b = args[0], _scaled(cx, args[1], _alpha(args, kwargs))
    return binary(cx, a, b, cx.ops.subtract, cx.layers.Subtract, _shape(node))


@converts("aten::rsub", family="elementwise", note="keras.ops.subtract, reversed")
def rsub(cx, node, args, kwargs):
    a, b = _scaled(cx, args[0], _alpha(args, kwargs)), args[1]
    return binary(cx, b, a, cx.ops.subtract, None, _shape(node))


@converts("aten::mul", family="elementwise", note="Multiply layer or keras.ops.multiply")
def mul(cx, node, args, kwargs):
    return binary(cx, args[0], args[1], cx.ops.multiply, cx.layers.Multiply, _shape(node))


@converts("aten::div", family="elementwise", note="keras.ops.divide (true division)")
def div(cx, node, args, kwargs):
    mode = kwargs.get("rounding_mode")
    if mode == "floor":
        return binary(cx, args[0], args[1], cx.ops.floor_divide, None, _shape(node))
    if mode is not None:
        raise cx.unsupported(f"div(rounding_mode={mode!r})", "true division or floor division")
    return binary(cx, args[0], args[1], cx.ops.divide, None, _shape(node))


@converts("aten::maximum", family="elementwise", note="Maximum layer or keras.ops.maximum")
def maximum(cx, node, args, kwargs):
    return binary(cx, args[0], args[1], cx.ops.maximum, cx.layers.Maximum, _shape(node))


@converts("aten::minimum", family="elementwise", note="Minimum layer or keras.ops.minimum")
def minimum(cx, node, args, kwargs):
    return binary(cx, args[0], args[1], cx.ops.minimum, cx.layers.Minimum, _shape(node))


@converts("aten::pow", family="elementwise", note="keras.ops.power (square as x * x)")
def power(cx, node, args, kwargs):
    a, b = args[0], args[1]
    if isinstance(b, (int, float)) and b == 2 and isinstance(a, Value):
        return Out(like(a, a.tensor * a.tensor, nonneg=True))
    if isinstance(b, (int, float)) and b == 0.5 and isinstance(a, Value):
        return Out(like(a, cx.ops.sqrt(a.tensor)))
    return binary(cx, a, b, cx.ops.power, None, _shape(node))


def _unary(fn_name, nonneg=False):
    def convert(cx, node, args, kwargs):
        x = args[0]
        return Out(like(x, getattr(cx.ops, fn_name)(x.tensor), nonneg=nonneg))

    return convert


for _op, _fn, _nn in [("neg", "negative", False), ("sqrt", "sqrt", True), ("rsqrt", "rsqrt", True), ("exp", "exp", True),
                      ("log", "log", False), ("abs", "abs", True), ("reciprocal", "reciprocal", False), ("erf", "erf", False),
                      ("sin", "sin", False), ("cos", "cos", False), ("sign", "sign", False), ("floor", "floor", False),
                      ("logical_not", "logical_not", False)]:  # fmt: skip
    converts(f"aten::{_op}", family="elementwise", note=f"keras.ops.{_fn}")(_unary(_fn, _nn))


def _compare(fn_name):
    def convert(cx, node, args, kwargs):
        return binary(cx, args[0], args[1], getattr(cx.ops, fn_name), None, _shape(node))

    return convert


for _op, _fn in [("eq", "equal"), ("ne", "not_equal"), ("gt", "greater"), ("lt", "less"), ("ge", "greater_equal"), ("le", "less_equal")]:
    converts(f"aten::{_op}", family="elementwise", note=f"keras.ops.{_fn}")(_compare(_fn))


@converts("aten::where", family="elementwise", note="keras.ops.where")
def where(cx, node, args, kwargs):
    cond, a, b = args[0], args[1], args[2]
    ref = next(v for v in (cond, a, b) if isinstance(v, Value) and not v.is_const)
    ref = unflat(cx, ref)

    def t(v):
        if isinstance(v, Value) and not v.is_const:
            if v.rank != ref.rank:
                raise cx.unsupported("where() between tensors of different ranks")
            return to_perm(cx, v, ref.perm)
        if isinstance(v, Value):
            return const_in(cx, v.const, ref.rank, ref.perm) if v.const.dtype != bool else np.transpose(v.const.reshape((1,) * (ref.rank - v.const.ndim) + v.const.shape), ref.perm)
        return cx.array(v)

    return Out(Value(cx.ops.where(t(cond), t(a), t(b)), tuple(node.shape), ref.perm))


@converts("aten::_to_copy", "aten::to", family="elementwise", note="keras.ops.cast")
def to_copy(cx, node, args, kwargs):
    x = args[0]
    want = kwargs.get("dtype")
    if want is None:
        return Out(x)
    name = str(want).replace("torch.", "")
    if "float" in name:
        name = cx.dtype
    return Out(like(x, cx.ops.cast(x.tensor, name), nonneg=x.nonneg))
