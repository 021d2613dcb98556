"""Activations and softmax: Keras layers where Keras has them (so a module's output is a layer
``compare`` sees), ``keras.ops`` otherwise. ReLU-like outputs are marked non-negative."""

from __future__ import annotations

import numpy as np

from .converters import converts
from .values import Ctx, Out, Value, like, unflat


def _layer(cx: Ctx, x: Value, layer, nonneg=False) -> Out:
    return Out(like(x, layer(x.tensor), nonneg=nonneg))


def _act(kind, nonneg=False):
    def convert(cx: Ctx, node, args, kwargs) -> Out:
        return _layer(cx, args[0], cx.layers.Activation(kind, name=cx.name, dtype=cx.dtype), nonneg)

    return convert


for _op, _kind, _nn in [("relu", "relu", True), ("sigmoid", "sigmoid", True), ("tanh", "tanh", False),
                        ("silu", "silu", False), ("hardswish", "hard_swish", False), ("hardsigmoid", "hard_sigmoid", True),
                        ("mish", "mish", False), ("selu", "selu", False)]:  # fmt: skip
    converts(f"aten::{_op}", family="activation", note=f"Activation('{_kind}')")(_act(_kind, _nn))


@converts("aten::gelu", family="activation", note="Activation('gelu'); approximate='tanh' as xconv's GeluTanh")
def gelu(cx, node, args, kwargs):
    approximate = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
    if approximate == "tanh":
        from .custom_layers import GeluTanh  # Keras' gelu(approximate=True) uses float32 constants

        return _layer(cx, args[0], GeluTanh(name=cx.name, dtype=cx.dtype))
    if cx.dtype == "float64":  # Keras' exact gelu rounds 1/sqrt(2) to float32: write it in float64
        t = args[0].tensor
        ops = cx.ops
        return Out(like(args[0], ops.multiply(t * cx.array(0.5), ops.erf(t * cx.array(1 / np.sqrt(2.0))) + cx.array(1.0))))
    return _layer(cx, args[0], cx.layers.Activation("gelu", name=cx.name, dtype=cx.dtype))


def _clip(cx, x: Value, lo, hi) -> Out:
    if lo == 0 and hi is not None:
        return _layer(cx, x, cx.layers.ReLU(max_value=float(hi), name=cx.name, dtype=cx.dtype), True)
    if lo == 0 and hi is None:
        return _layer(cx, x, cx.layers.ReLU(name=cx.name, dtype=cx.dtype), True)
    lo_a = -np.inf if lo is None else lo
    hi_a = np.inf if hi is None else hi
    t = cx.ops.clip(x.tensor, cx.array(lo_a), cx.array(hi_a))
    return Out(like(x, t, nonneg=lo is not None and lo >= 0))


@converts("aten::hardtanh", family="activation", note="ReLU(max_value) for (0, m), else clip")
def hardtanh(cx, node, args, kwargs):
    lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    hi = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    return _clip(cx, args[0], lo, hi)


@converts("aten::clamp", family="activation", note="ReLU(max_value) for clamp(0, m), else clip")
def clamp(cx, node, args, kwargs):
    lo = args[1] if len(args) > 1 else kwargs.get("min")
    hi = args[2] if len(args) > 2 else kwargs.get("max")
    if isinstance(lo, Value) or isinstance(hi, Value):
        raise cx.unsupported("clamp with tensor bounds", "clamp(min, max) with numbers")
    return _clip(cx, args[0], lo, hi)


@converts("aten::leaky_relu", family="activation", note="LeakyReLU(negative_slope)")
def leaky_relu(cx, node, args, kwargs):
    slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
    x = args[0]
    if cx.dtype == "float64":  # Keras' LeakyReLU rounds its slope to float32: keep torch's value
        t = x.tensor
        return Out(like(x, cx.ops.where(t >= 0, t, t * cx.array(slope))))
    return _layer(cx, x, cx.layers.LeakyReLU(negative_slope=float(slope), name=cx.name, dtype=cx.dtype))


@converts("aten::elu", family="activation", note="ELU(alpha)")
def elu(cx, node, args, kwargs):
    alpha = args[1] if len(args) > 1 else kwargs.get("alpha", 1.0)
    scale = args[2] if len(args) > 2 else kwargs.get("scale", 1.0)
    in_scale = args[3] if len(args) > 3 else kwargs.get("input_scale", 1.0)
    if scale != 1 or in_scale != 1:
        raise cx.unsupported("elu with scale or input_scale", "ELU(alpha), SELU")
    return _layer(cx, args[0], cx.layers.ELU(alpha=float(alpha), name=cx.name, dtype=cx.dtype))


@converts("aten::softplus", family="activation", note="Activation('softplus') for beta=1")
def softplus(cx, node, args, kwargs):
    beta = args[1] if len(args) > 1 else kwargs.get("beta", 1.0)
    x = args[0]
    if beta == 1:
        return _layer(cx, x, cx.layers.Activation("softplus", name=cx.name, dtype=cx.dtype), True)
    b = cx.array(beta)
    return Out(like(x, cx.ops.softplus(x.tensor * b) / b, nonneg=True))


@converts("aten::prelu", family="activation", note="PReLU, one slope or one per channel")
def prelu(cx, node, args, kwargs):
    x, w = args[0], args[1]
    if not w.is_const:
        raise cx.unsupported("prelu with computed slopes", "nn.PReLU")
    x = unflat(cx, x)
    alpha = w.const.reshape(-1)
    rank = x.rank
    caxis = x.axis(1) if rank >= 2 else None
    shared = [a for a in range(1, rank) if a != caxis] if alpha.size > 1 else list(range(1, rank))
    layer = cx.layers.PReLU(shared_axes=shared or None, name=cx.name, dtype=cx.dtype)
    y = layer(x.tensor)
    shape = tuple(layer.weights[0].shape)
    value = np.broadcast_to(alpha, (shape[caxis - 1] if alpha.size > 1 else 1,)).reshape(shape)
    return Out(like(x, y), ((layer, {"alpha": np.ascontiguousarray(value)}),))


@converts("aten::_softmax", "aten::softmax", family="activation", note="Softmax(axis)")
def softmax(cx, node, args, kwargs):
    x = unflat(cx, args[0])
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    return _layer(cx, x, cx.layers.Softmax(axis=x.axis(dim), name=cx.name, dtype=cx.dtype), True)


@converts("aten::_log_softmax", "aten::log_softmax", family="activation", note="keras.ops.log_softmax")
def log_softmax(cx, node, args, kwargs):
    x = unflat(cx, args[0])
    return Out(like(x, cx.ops.log_softmax(x.tensor, axis=x.axis(args[1]))))


@converts("aten::log_sigmoid", family="activation", note="keras.ops.log_sigmoid")
def log_sigmoid(cx, node, args, kwargs):
    return Out(like(args[0], cx.ops.log_sigmoid(args[0].tensor)))



@converts("aten::clamp_min", family="activation", note="keras.ops.maximum with the bound")
def clamp_min(cx, node, args, kwargs):
    if isinstance(args[1], Value):
        raise cx.unsupported("clamp_min with a tensor bound", "a number")
    return _clip(cx, args[0], args[1], None) if args[1] != 0 else _clip(cx, args[0], 0, None)


@converts("aten::clamp_max", family="activation", note="keras.ops.minimum with the bound")
def clamp_max(cx, node, args, kwargs):
    if isinstance(args[1], Value):
        raise cx.unsupported("clamp_max with a tensor bound", "a number")
    return _clip(cx, args[0], None, args[1])
