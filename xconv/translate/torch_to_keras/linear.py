"""``aten::linear`` -> Dense (its columns permuted after a flatten of channels-last maps), and
matmul, mm, bmm, addmm, baddbmm as ``keras.ops.matmul`` with the operands in torch's order."""

from __future__ import annotations

import numpy as np

from ...weights import LayerContext, family_for_torch
from .converters import converts
from .values import Out, Value, batch_first, const_in, to_perm, unflat


def _last_last(v: Value):
    """``v``'s layout with its last torch dim moved to the last Keras axis."""
    last = v.rank - 1
    return tuple([p for p in v.perm if p != last] + [last])


@converts("aten::linear", family="linear", note="Dense; after a flatten of maps its rows are permuted, no transpose")
def linear(cx, node, args, kwargs):
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else kwargs.get("bias")
    if not (isinstance(w, Value) and w.is_const) or (b is not None and not b.is_const):
        y = matmul_values(cx, x, _transposed(w), node.shape)
        return Out(y if b is None else _add(cx, y, b))
    flat = x.flat
    if flat is not None and x.rank != 2:
        x, flat = unflat(cx, x), None
    perm = x.perm if flat is not None else _last_last(x)
    t = x.tensor if flat is not None else to_perm(cx, x, perm)
    arrays = {"weight": w.const, **({"bias": b.const} if b is not None else {})}
    weights = family_for_torch("Linear").to_keras(arrays, LayerContext(cx.name, flatten_of=flat))
    layer = cx.layers.Dense(w.const.shape[0], use_bias=b is not None, name=cx.name, dtype=cx.dtype)
    return Out(Value(layer(t), tuple(node.shape), perm), ((layer, weights),))


def _transposed(w):
    if isinstance(w, Value) and w.is_const:
        return Value(None, w.shape[::-1], w.perm, const=np.ascontiguousarray(w.const.T))
    from dataclasses import replace

    return replace(w, perm=tuple({0: 1, 1: 0}.get(p, p) for p in w.perm), shape=w.shape[::-1])


def _add(cx, y: Value, b):
    from .elementwise import binary

    return binary(cx, y, b, cx.ops.add, None, y.shape).value


def matmul_values(cx, a, b, out_shape) -> Value:
    """``a @ b`` as torch computes it (either may be a constant), of torch shape ``out_shape``."""
    ac = isinstance(a, Value) and a.is_const
    bc = isinstance(b, Value) and b.is_const
    if not ac:
        a = unflat(cx, a)
    if not bc:
        b = unflat(cx, b)
    if not ac and not bc:
        if a.rank != b.rank:
            raise cx.unsupported(f"matmul of tensors of rank {a.rank} and {b.rank}", "operands of the same rank")
        perm = batch_first(a)
        if perm[-2:] != (a.rank - 2, a.rank - 1):
            raise cx.unsupported("a matmul whose batch is one of the two matrix dims")
        t = cx.ops.matmul(to_perm(cx, a, perm), to_perm(cx, b, perm))
        return Value(t, tuple(out_shape), perm)
    if ac and bc:
        raise cx.unsupported("matmul of constants")
    if bc:  # (..., n, k) @ constant (..., k, m)
        perm = _last_two(a)
        c = b.const if b.const.ndim == 2 else const_in(cx, b.const, a.rank, perm)
        t = cx.ops.matmul(to_perm(cx, a, perm), cx.array(c))
        return Value(t, tuple(out_shape), perm)
    perm = _last_two(b)
    c = a.const if a.const.ndim == 2 else const_in(cx, a.const, b.rank, perm)
    t = cx.ops.matmul(cx.array(c), to_perm(cx, b, perm))
    return Value(t, tuple(out_shape), perm)


def _last_two(v: Value):
    r = v.rank
    return tuple([p for p in v.perm if p < r - 2] + [r - 2, r - 1])


@converts("aten::matmul", "aten::mm", "aten::bmm", family="linear", note="keras.ops.matmul")
def matmul(cx, node, args, kwargs):
    a, b = args[0], args[1]
    if (isinstance(a, Value) and a.rank < 2) or (isinstance(b, Value) and b.rank < 2):
        raise cx.unsupported("matmul with a vector operand", "x @ W with matrices")
    return Out(matmul_values(cx, a, b, node.shape))


@converts("aten::addmm", family="linear", note="bias + keras.ops.matmul")
def addmm(cx, node, args, kwargs):
    bias, a, b = args[0], args[1], args[2]
    beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    if beta != 1 or alpha != 1:
        raise cx.unsupported("addmm with beta or alpha", "addmm(bias, a, b)")
    return Out(_add(cx, matmul_values(cx, a, b, node.shape), bias))


@converts("aten::baddbmm", family="linear", note="input * beta + alpha * keras.ops.matmul")
def baddbmm(cx, node, args, kwargs):
    base, a, b = args[0], args[1], args[2]
    beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    y = matmul_values(cx, a, b, node.shape)
    if alpha != 1:
        y = Value(y.tensor * cx.array(alpha), y.shape, y.perm)
    if beta == 0:
        return Out(y)
    if beta != 1:
        base = Value(None, base.shape, base.perm, const=base.const * beta) if base.is_const else Value(base.tensor * cx.array(beta), base.shape, base.perm)
    return Out(_add(cx, y, base))
