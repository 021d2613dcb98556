"""Recurrent layers: LSTM, GRU (``reset_after`` True and False), SimpleRNN, and Bidirectional.

Keras keeps one ``kernel`` (inputs x gates*units), one ``recurrent_kernel`` (units x gates*units)
and one ``bias``; torch keeps ``weight_ih_l0`` / ``weight_hh_l0`` (gates*units rows) and two
biases, ``bias_ih_l0`` and ``bias_hh_l0``. The gates are blocks of ``units`` columns:

- LSTM: Keras ``i f c o``, torch ``i f g o`` (the same order); Keras has one bias, so torch's
  recurrent bias is zero one way and the two are summed the other way.
- GRU: Keras ``z r h``, torch ``r z n``. ``reset_after=True`` (Keras' default) is torch's GRU,
  with Keras' bias of shape (2, 3*units) holding the input and recurrent biases.
  ``reset_after=False`` applies the reset gate before the recurrent matmul, which nn.GRU cannot
  do: its torch twin is a module with ``weight_ih_l0``, ``weight_hh_l0`` and one ``bias_ih_l0``
  (xconv's translation writes one, ``GRUResetBefore``).
- SimpleRNN: one gate.

A Bidirectional layer's Keras weights are ``forward/<name>`` and ``backward/<name>``
(``xconv.frameworks.keras_side.layer_weights`` names them so); torch's backward direction
carries the suffix ``_reverse``.

>>> import numpy as np
>>> from xconv.weights import LayerContext, family_for_keras
>>> w = {"kernel": np.zeros((3, 12)), "recurrent_kernel": np.zeros((4, 12)), "bias": np.zeros((2, 12))}
>>> sorted(family_for_keras("GRU").to_torch(w, LayerContext("gru")))
['bias_hh_l0', 'bias_ih_l0', 'weight_hh_l0', 'weight_ih_l0']
"""

from __future__ import annotations

import numpy as np

from ..errors import LayoutError
from . import LayerContext, WeightFamily, register

# Keras gate block -> its position in torch's order
_GATES = {"LSTM": (4, (0, 1, 2, 3)), "GRU": (3, (1, 0, 2)), "SimpleRNN": (1, (0,))}
_BY_COUNT = {4: "LSTM", 3: "GRU", 1: "SimpleRNN"}


def _reorder(array: np.ndarray, order: tuple[int, ...], axis: int) -> np.ndarray:
    """Move gate blocks along ``axis``: block ``order[i]`` of the result is block ``i`` of the input.

    Every ``order`` used here is its own inverse (identity, or one swap), so the same call
    goes both ways.
    """
    blocks = np.split(array, len(order), axis=axis)
    out = [None] * len(order)
    for i, j in enumerate(order):
        out[j] = blocks[i]
    return np.concatenate(out, axis=axis)


def _cell_to_torch(kind: str, w, suffix: str, ctx: LayerContext) -> dict[str, np.ndarray]:
    gates, order = _GATES[kind]
    kernel, recurrent = w["kernel"], w["recurrent_kernel"]
    units = recurrent.shape[0]
    if kernel.ndim != 2 or recurrent.shape != (units, gates * units) or kernel.shape[1] != gates * units:
        raise LayoutError(
            f"Layer '{ctx.name}' ({kind}): kernel {kernel.shape} and recurrent_kernel {recurrent.shape} are not the "
            f"(inputs, {gates}*units) and (units, {gates}*units) of a {kind}."
        )
    out = {
        f"weight_ih_l0{suffix}": np.ascontiguousarray(_reorder(kernel, order, 1).T),
        f"weight_hh_l0{suffix}": np.ascontiguousarray(_reorder(recurrent, order, 1).T),
    }
    if "bias" in w:
        bias = w["bias"]
        if bias.ndim == 2:  # GRU reset_after=True: (input bias, recurrent bias)
            out[f"bias_ih_l0{suffix}"] = _reorder(bias[0], order, 0)
            out[f"bias_hh_l0{suffix}"] = _reorder(bias[1], order, 0)
        elif kind == "GRU":  # reset_after=False: one bias, no nn.GRU twin
            out[f"bias_ih_l0{suffix}"] = _reorder(bias, order, 0)
        else:
            out[f"bias_ih_l0{suffix}"] = _reorder(bias, order, 0)
            out[f"bias_hh_l0{suffix}"] = np.zeros_like(bias)
    return out


def _cell_to_keras(kind: str, p, suffix: str, ctx: LayerContext) -> dict[str, np.ndarray]:
    gates, order = _GATES[kind]
    if f"weight_hr_l0{suffix}" in p:
        raise LayoutError(f"Module '{ctx.name}' ({kind}) has proj_size set; Keras' {kind} has no projection.")
    w_ih, w_hh = p[f"weight_ih_l0{suffix}"], p[f"weight_hh_l0{suffix}"]
    if w_hh.shape[0] != gates * w_hh.shape[1]:
        raise LayoutError(f"Module '{ctx.name}': weight_hh_l0{suffix} {w_hh.shape} is not the ({gates}*units, units) of a {kind}.")
    out = {
        "kernel": np.ascontiguousarray(_reorder(w_ih.T, order, 1)),
        "recurrent_kernel": np.ascontiguousarray(_reorder(w_hh.T, order, 1)),
    }
    b_ih, b_hh = p.get(f"bias_ih_l0{suffix}"), p.get(f"bias_hh_l0{suffix}")
    if b_ih is None:
        return out
    if kind == "GRU":
        out["bias"] = _reorder(b_ih, order, 0) if b_hh is None else np.stack([_reorder(b_ih, order, 0), _reorder(b_hh, order, 0)])
    elif b_hh is None or not b_hh.any():  # the zeros written one way: the input bias is exact
        out["bias"] = _reorder(b_ih, order, 0).copy()
    else:  # Keras has one bias: torch's two are summed (the forward pass is the same)
        out["bias"] = _reorder(b_ih + b_hh, order, 0)
    return out


def _check_one_layer(p, ctx: LayerContext, kind: str, bidirectional: bool) -> None:
    deeper = sorted(k for k in p if "_l1" in k)
    if deeper:
        raise LayoutError(
            f"Module '{ctx.name}' ({kind}) has num_layers > 1 ({deeper[0]} ...); a Keras {kind} is one layer: "
            f"stack one Keras layer per torch layer."
        )
    reverse = any(k.endswith("_reverse") for k in p)
    if reverse and not bidirectional:
        raise LayoutError(
            f"Module '{ctx.name}' ({kind}) is bidirectional; its Keras twin is a Bidirectional layer "
            f"(weight family 'bidirectional')."
        )


def _family(kind: str, torch_types: tuple[str, ...]) -> WeightFamily:
    def to_torch(w, ctx):
        return _cell_to_torch(kind, w, "", ctx)

    def to_keras(p, ctx):
        _check_one_layer(p, ctx, kind, bidirectional=False)
        return _cell_to_keras(kind, p, "", ctx)

    names = {"weight_ih_l0": "kernel", "weight_hh_l0": "recurrent_kernel", "bias_ih_l0": "bias", "bias_hh_l0": "bias"}
    return WeightFamily(
        name=kind.lower(), keras_types=(kind,), torch_types=torch_types, to_torch=to_torch, to_keras=to_keras,
        kind="recurrent", names=names,
    )  # fmt: skip


register(_family("LSTM", ("LSTM", "KerasLSTM")))
# Keras* and GRUResetBefore: the modules xconv's translation writes (nn.LSTM etc. returning what Keras returns)
register(_family("GRU", ("GRU", "KerasGRU", "GRUResetBefore")))
register(_family("SimpleRNN", ("RNN", "KerasRNN")))


def _split(w, ctx):
    halves = {"forward": {}, "backward": {}}
    for key, value in w.items():
        side, _, short = key.partition("/")
        if side not in halves or not short:
            raise LayoutError(
                f"Bidirectional layer '{ctx.name}': weight '{key}' is not 'forward/<name>' or 'backward/<name>'."
            )
        halves[side][short] = value
    return halves


def _bidirectional_to_torch(w, ctx):
    halves = _split(w, ctx)
    kernel = halves["forward"].get("kernel")
    recurrent = halves["forward"].get("recurrent_kernel")
    if kernel is None or recurrent is None:
        raise LayoutError(f"Bidirectional layer '{ctx.name}' has no forward kernel and recurrent_kernel.")
    kind = _BY_COUNT.get(recurrent.shape[1] // max(recurrent.shape[0], 1))
    if kind is None:
        raise LayoutError(f"Bidirectional layer '{ctx.name}': recurrent_kernel {recurrent.shape} is not an LSTM, GRU or SimpleRNN.")
    out = _cell_to_torch(kind, halves["forward"], "", ctx)
    out.update(_cell_to_torch(kind, halves["backward"], "_reverse", ctx))
    return out


def _bidirectional_to_keras(p, ctx):
    w_hh = p.get("weight_hh_l0")
    if w_hh is None or "weight_hh_l0_reverse" not in p:
        raise LayoutError(f"Module '{ctx.name}' is not a bidirectional recurrent layer (no weight_hh_l0 and weight_hh_l0_reverse).")
    kind = _BY_COUNT.get(w_hh.shape[0] // max(w_hh.shape[1], 1))
    if kind is None:
        raise LayoutError(f"Module '{ctx.name}': weight_hh_l0 {w_hh.shape} is not an LSTM, GRU or RNN.")
    _check_one_layer(p, ctx, kind, bidirectional=True)
    out = {f"forward/{k}": v for k, v in _cell_to_keras(kind, p, "", ctx).items()}
    out.update({f"backward/{k}": v for k, v in _cell_to_keras(kind, p, "_reverse", ctx).items()})
    return out


register(
    WeightFamily(
        name="bidirectional",
        keras_types=("Bidirectional",),
        torch_types=(),  # nn.LSTM/GRU/RNN(bidirectional=True) belong to their own families
        to_torch=_bidirectional_to_torch,
        to_keras=_bidirectional_to_keras,
        kind="recurrent",
        names={
            f"{t}{s}": f"{side}/{k}"
            for s, side in (("", "forward"), ("_reverse", "backward"))
            for t, k in (("weight_ih_l0", "kernel"), ("weight_hh_l0", "recurrent_kernel"), ("bias_ih_l0", "bias"), ("bias_hh_l0", "bias"))
        },
        pairs_with=("LSTM", "GRU", "RNN", "KerasLSTM", "KerasGRU", "KerasRNN", "GRUResetBefore"),
    )
)
