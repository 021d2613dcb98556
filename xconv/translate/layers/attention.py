"""MultiHeadAttention: any num_heads, key_dim, value_dim and output_shape; default attention_axes;
with or without bias. Masks are refused. Weights through the shared ``attention`` family."""

from __future__ import annotations

import math

import numpy as np

from ...errors import UnsupportedLayerError
from ...weights import LayerContext, family_for_keras
from ..graph import Ref
from ..converters import converter
from ..spec import CL, KERAS, PLAIN, KLayer, Layout, Piece, Step
from . import fmt


def _refuse(layer: KLayer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"MultiHeadAttention '{layer.keras_name}': {why}")


@converter("MultiHeadAttention", family="attention", layout_free=True)
def _mha(layer: KLayer) -> Piece:
    c = layer.config
    kw = layer.kwargs
    for mask in ("attention_mask", "query_mask", "value_mask", "key_mask"):
        if kw.get(mask) is not None:
            raise _refuse(layer, f"{mask} is given; xconv translates attention without masks.")
    if kw.get("use_causal_mask"):
        raise _refuse(layer, "use_causal_mask=True; xconv translates attention without masks.")
    if kw.get("return_attention_scores"):
        raise _refuse(layer, "return_attention_scores=True is not supported; the module returns the attention output.")
    if c.get("attention_axes") is not None:
        rank = len(layer.input_shapes[0])
        default = tuple(range(1, rank - 1))
        axes = tuple(int(a) % rank for a in np.atleast_1d(c["attention_axes"]))
        if axes != default:
            raise _refuse(layer, f"attention_axes={c['attention_axes']}; xconv translates the default (every axis but batch and features).")
    # which input is query, value and key: call(query, value, key=None)
    args = list(layer.args) + [None] * 3
    query, value = args[0], args[1] if args[1] is not None else kw.get("value")
    key = args[2] if args[2] is not None else kw.get("key")
    if not isinstance(query, Ref) or not isinstance(value, Ref) or (key is not None and not isinstance(key, Ref)):
        raise _refuse(layer, "query, value (and key) must be tensors of the graph.")
    order = [query.index, value.index] + ([key.index] if key is not None else [])
    heads, key_dim = int(c["num_heads"]), int(c["key_dim"])
    weights = family_for_keras("MultiHeadAttention").to_torch(layer.weights, LayerContext(layer.keras_name))
    packed = "in_proj_weight" in weights
    value_dim = int(c.get("value_dim") or key_dim)
    q_dim = int(layer.input_shapes[query.index][-1])
    v_dim = int(layer.input_shapes[value.index][-1])
    k_dim = int(layer.input_shapes[key.index][-1]) if key is not None else v_dim
    out_dim = int(weights["out_proj.weight"].shape[0])
    # Keras on TensorFlow multiplies by 1/sqrt(key_dim) as a float32 constant in its fused path
    # (no dropout), also in float64 models; with dropout it scales the query in full precision
    scale = 1.0 / math.sqrt(key_dim)
    if not float(c.get("dropout", 0.0)) > 0:
        scale = float(np.float32(scale))
    bias = "True" if c.get("use_bias", True) else "False"
    code = (
        f"KerasMultiHeadAttention({q_dim}, {heads}, {key_dim}, {value_dim}, {out_dim}, kdim={k_dim}, vdim={v_dim}, "
        f"bias={bias}, packed={packed}, scale={fmt(scale)}, order={fmt(tuple(order))})"
    )
    rank = len(layer.output_shape)
    # the module receives the graph's inputs; ``order`` picks query, value (and key) among them
    steps = (Step("", code, weights, ("KerasMultiHeadAttention",)),)
    return Piece(steps, Layout(CL if rank >= 3 else PLAIN), inputs_as=(KERAS,) * len(layer.in_layouts))


@converter("Attention", family="attention", layout_free=True)
def _dot_attention(layer: KLayer) -> Piece:
    """Keras' Attention layer (Luong dot-product): softmax(q @ k^T [* scale]) @ v."""
    c = layer.config
    if c.get("score_mode", "dot") != "dot":
        raise _refuse_dot(layer, f"score_mode='{c.get('score_mode')}' is not supported; use 'dot'.")
    kw = layer.kwargs
    if kw.get("mask") is not None or kw.get("use_causal_mask") or kw.get("return_attention_scores"):
        raise _refuse_dot(layer, "masks, use_causal_mask and return_attention_scores are not supported.")
    refs = layer.args[0] if layer.args and isinstance(layer.args[0], (list, tuple)) else layer.args
    if len(refs) not in (2, 3) or not all(isinstance(r, Ref) for r in refs):
        raise _refuse_dot(layer, "its inputs must be [query, value] or [query, value, key] tensors.")
    order = tuple(r.index for r in refs)
    weights = {"scale": np.asarray(layer.weights["scale"]).reshape(())} if c.get("use_scale") else {}
    code = f"DotAttention({fmt(order)}, use_scale={bool(c.get('use_scale'))})"
    out = Layout(CL if len(layer.output_shape) >= 3 else PLAIN)
    return Piece((Step("", code, weights, ("DotAttention",)),), out, inputs_as=(KERAS,) * len(layer.in_layouts))


def _refuse_dot(layer: KLayer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"Attention '{layer.keras_name}': {why}")
