"""``aten::lstm`` and ``aten::gru`` (kept whole by the decomposition): one Keras ``LSTM`` /
``GRU(reset_after=True)`` per torch layer, ``Bidirectional`` where torch runs both directions,
weights through the shared recurrent families (gate order, torch's two biases against Keras'
one). The final states are stacked as torch's ``(layers * directions, N, H)``."""

from __future__ import annotations

import numpy as np

from ...weights import LayerContext, family_for_torch
from .converters import converts
from .values import Out, Value, tensor_value, to_perm


def _zeros(cx, hx):
    for h in hx:
        if not (isinstance(h, Value) and h.is_const and not np.any(h.const)):
            raise cx.unsupported("a recurrent layer started from a given state", "the default zero state")


def _recurrent(cx, node, kind, args):
    x, hx, params, has_biases, num_layers, _dropout, train, bidirectional, batch_first = args[:9]
    _zeros(cx, hx if isinstance(hx, (list, tuple)) else [hx])
    if train:
        raise cx.unsupported("a recurrent layer in training mode", "module.eval()")
    if any(not p.is_const for p in params):
        raise cx.unsupported("recurrent weights computed from the input")
    L = cx.layers
    per = 4 if has_biases else 2
    dirs = 2 if bidirectional else 1
    units = params[1].const.shape[1]
    perm = (0, 1, 2) if batch_first else (1, 0, 2)
    t = to_perm(cx, x, perm)
    weights, finals, finals_c = [], [], []
    cls = {"LSTM": L.LSTM, "GRU": L.GRU}[kind]
    n_states = 2 if kind == "LSTM" else 1
    for layer_i in range(num_layers):
        name = cx.name if num_layers == 1 else cx.sub(f"l{layer_i}")
        chunk = params[layer_i * per * dirs : (layer_i + 1) * per * dirs]
        arrays = []
        for d in range(dirs):
            p = [c.const for c in chunk[d * per : (d + 1) * per]]
            keys = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"][:per]
            arrays.append(family_for_torch(kind).to_keras(dict(zip(keys, p)), LayerContext(name)))
        kw = {"reset_after": True} if kind == "GRU" else {}
        cell = dict(units=units, return_sequences=True, return_state=True, use_bias=bool(has_biases), dtype=cx.dtype, **kw)
        if bidirectional:
            layer = L.Bidirectional(cls(**cell, name=f"{name}_fw"), merge_mode="concat", name=name, dtype=cx.dtype)
            res = layer(t)
            t, states = res[0], res[1:]
            weights += [(layer.forward_layer, arrays[0]), (layer.backward_layer, arrays[1])]
            finals += [states[0], states[n_states]]
            cstates = [states[1], states[n_states + 1]] if kind == "LSTM" else []
        else:
            layer = cls(**cell, name=name)
            res = layer(t)
            t, states = res[0], res[1:]
            weights.append((layer, arrays[0]))
            finals.append(states[0])
            cstates = [states[1]] if kind == "LSTM" else []
        finals_c += cstates
    n, steps = x.shape[x.perm[0]], x.shape[x.perm[1]]
    seq = tensor_value(t, (n, steps, dirs * units) if batch_first else (steps, n, dirs * units), perm)
    h = cx.ops.stack(finals, axis=1)
    h_v = tensor_value(h, (num_layers * dirs, n, units), (1, 0, 2))
    if kind == "LSTM":
        c = cx.ops.stack(finals_c, axis=1)
        return Out((seq, h_v, tensor_value(c, (num_layers * dirs, n, units), (1, 0, 2))), tuple(weights))
    return Out((seq, h_v), tuple(weights))


@converts("aten::lstm", family="rnn", note="LSTM per layer (Bidirectional where torch has both directions)")
def lstm(cx, node, args, kwargs):
    if not isinstance(args[1], (list, tuple)):
        raise cx.unsupported("a packed sequence", "padded (N, T, F) batches")
    return _recurrent(cx, node, "LSTM", args)


@converts("aten::gru", family="rnn", note="GRU(reset_after=True) per layer (Bidirectional where torch has both)")
def gru(cx, node, args, kwargs):
    if isinstance(args[1], (list, tuple)) and len(args[1]) and not isinstance(args[1][0], Value):
        raise cx.unsupported("a packed sequence", "padded (N, T, F) batches")
    hx = args[1]
    return _recurrent(cx, node, "GRU", (args[0], [hx] if isinstance(hx, Value) else hx, *args[2:]))

