"""Recurrent layers: LSTM, GRU (reset_after True and False), SimpleRNN and Bidirectional, with
return_sequences, return_state and go_backwards. Sequences stay in Keras' order (batch, time,
features), which is torch's ``batch_first=True``; weights through the shared ``rnn`` families."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ...weights import LayerContext, family_for_keras
from ..converters import converter
from ..spec import CL, KERAS, PLAIN, KLayer, Layout, Piece, Step
from . import fmt

_TORCH = {"LSTM": "KerasLSTM", "GRU": "KerasGRU", "SimpleRNN": "KerasRNN"}


def _check(layer: KLayer, cfg: dict, kind: str) -> None:
    name = layer.keras_name
    if cfg.get("stateful"):
        raise UnsupportedLayerError(f"{kind} '{name}' is stateful; xconv translates stateless recurrent layers (stateful=False).")
    if len(layer.input_shapes[0]) != 3:
        raise UnsupportedLayerError(f"{kind} '{name}' takes (batch, time, features) sequences; received {layer.input_shapes[0]}.")
    act, rec = cfg.get("activation", "tanh"), cfg.get("recurrent_activation", "sigmoid")
    if kind == "SimpleRNN":
        if act not in ("tanh", "relu"):
            raise UnsupportedLayerError(f"SimpleRNN '{name}' uses activation '{act}'; torch's nn.RNN has tanh and relu.")
    elif act != "tanh" or rec != "sigmoid":
        raise UnsupportedLayerError(
            f"{kind} '{name}' uses activation '{act}' and recurrent_activation '{rec}'; torch's {_TORCH[kind]} computes "
            f"tanh and sigmoid. Rebuild it with the defaults."
        )


def _module(kind: str, cfg: dict, features: int, bidirectional: bool, keras_args: str) -> tuple[str, tuple[str, ...]]:
    units = int(cfg["units"])
    bias = "" if cfg.get("use_bias", True) else ", bias=False"
    both = ", bidirectional=True" if bidirectional else ""
    if kind == "GRU" and not cfg.get("reset_after", True):
        return f"GRUResetBefore({features}, {units}{bias}{both}{keras_args})", ("GRUResetBefore",)
    extra = ', nonlinearity="relu"' if kind == "SimpleRNN" and cfg.get("activation") == "relu" else ""
    return f"{_TORCH[kind]}({features}, {units}{bias}{extra}{both}{keras_args})", ("KerasRecurrent",)


def _keras_args(cfg: dict, merge=None) -> str:
    out = ""
    if cfg.get("return_sequences"):
        out += ", return_sequences=True"
    if cfg.get("return_state"):
        out += ", return_state=True"
    if cfg.get("go_backwards"):
        out += ", go_backwards=True"
    if merge != "concat" and merge != 0:
        out += f", merge={fmt(merge)}"
    return out


def _out_layouts(layer: KLayer) -> tuple[Layout, ...]:
    return tuple(Layout(CL if len(s) >= 3 else PLAIN) for s in (layer.output_shapes or (layer.output_shape,)))


@converter("LSTM", "GRU", "SimpleRNN", family="recurrent", layout_free=True)
def _rnn(layer: KLayer) -> Piece:
    kind, cfg = layer.class_name, layer.config
    _check(layer, cfg, kind)
    code, helpers = _module(kind, cfg, int(layer.input_shapes[0][-1]), False, _keras_args(cfg, 0))
    weights = family_for_keras(kind).to_torch(layer.weights, LayerContext(layer.keras_name))
    outs = _out_layouts(layer)
    return Piece((Step("", code, weights, helpers),), outs[0], inputs_as=(KERAS,) * len(layer.in_layouts), out_layouts=outs)


@converter("Bidirectional", family="recurrent", layout_free=True)
def _bidirectional(layer: KLayer) -> Piece:
    cfg = layer.config
    inner = cfg["layer"]
    kind = inner["class_name"]
    icfg = inner["config"]
    if kind not in _TORCH:
        raise UnsupportedLayerError(f"Bidirectional '{layer.keras_name}' wraps a {kind}; xconv translates LSTM, GRU and SimpleRNN.")
    if cfg.get("backward_layer") is not None:
        back = cfg["backward_layer"]["config"]
        for key in ("units", "activation", "recurrent_activation", "use_bias", "reset_after"):
            if back.get(key) != icfg.get(key):
                raise UnsupportedLayerError(f"Bidirectional '{layer.keras_name}': its backward layer differs from the forward one in {key}.")
    if icfg.get("go_backwards"):
        raise UnsupportedLayerError(f"Bidirectional '{layer.keras_name}': a forward layer with go_backwards=True is not supported.")
    _check(layer, icfg, kind)
    merge = cfg.get("merge_mode", "concat")
    code, helpers = _module(kind, icfg, int(layer.input_shapes[0][-1]), True, _keras_args(icfg, merge))
    weights = family_for_keras("Bidirectional").to_torch(layer.weights, LayerContext(layer.keras_name))
    outs = _out_layouts(layer)
    return Piece((Step("", code, weights, helpers),), outs[0], inputs_as=(KERAS,) * len(layer.in_layouts), out_layouts=outs)
