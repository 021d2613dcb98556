"""Attention: ``nn.MultiheadAttention`` as one unit -> Keras ``MultiHeadAttention`` (``in_proj``
split into query, key and value kernels by the shared attention family), and
``aten::scaled_dot_product_attention`` (kept whole) as softmax(q k^T * scale) v."""

from __future__ import annotations

import math

import numpy as np

from ...weights import LayerContext, family_for_torch
from .converters import converts, unit
from .values import Out, Value, batch_first, to_perm, unflat


@unit("MultiheadAttention", family="attention", note="MultiHeadAttention (one Keras layer for the module)")
def multihead_attention(cx, inputs, outputs):
    m = cx.module
    if m.bias_k is not None or m.add_zero_attn:
        raise cx.unsupported("MultiheadAttention with add_bias_kv or add_zero_attn", "the default MultiheadAttention")
    if len(inputs) > 3 or not inputs:
        raise cx.unsupported("MultiheadAttention with a mask", "attention without attn_mask / key_padding_mask")
    q = inputs[0]
    k = inputs[1] if len(inputs) > 1 else q
    v = inputs[2] if len(inputs) > 2 else k
    perm = (0, 1, 2) if m.batch_first else (1, 0, 2)
    tq, tk, tv = (to_perm(cx, unflat(cx, a), perm) for a in (q, k, v))
    heads, dim = m.num_heads, m.embed_dim
    layer = cx.layers.MultiHeadAttention(num_heads=heads, key_dim=dim // heads, value_dim=dim // heads,
                                         use_bias=m.in_proj_bias is not None, name=cx.name, dtype=cx.dtype)  # fmt: skip
    want_scores = any(tuple(o.shape or ()) != tuple(q.shape) for o in outputs)
    # asking for the scores takes Keras' einsum path: its fused dot_product_attention is not exact in float64
    res = layer(tq, tv, key=tk, return_attention_scores=want_scores or cx.dtype == "float64")
    if cx.dtype == "float64" and not want_scores:
        res, want_scores = (res[0], None), True
    out, scores = (res if want_scores else (res, None))
    arrays = {n: p.detach().cpu().numpy() for n, p in m.named_parameters() if p is not None}
    weights = family_for_torch("MultiheadAttention").to_keras(arrays, LayerContext(cx.name, num_heads=heads))
    values = []
    for o in outputs:
        if tuple(o.shape or ()) == tuple(q.shape):
            values.append(Value(out, tuple(q.shape), perm))
        elif scores is not None and len(o.shape) == 3:  # averaged over heads
            values.append(Value(cx.ops.mean(scores, axis=1), tuple(o.shape), (0, 1, 2)))
        elif scores is not None:
            values.append(Value(scores, tuple(o.shape), (0, 1, 2, 3)))
        else:
            raise cx.unsupported("an output of MultiheadAttention xconv cannot match")
    return Out(tuple(values), ((layer, weights),))


@converts("aten::scaled_dot_product_attention", family="attention", note="softmax(q k^T * scale + mask) v with keras.ops")
def sdpa(cx, node, args, kwargs):
    q, k, v = args[0], args[1], args[2]
    mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
    causal = args[5] if len(args) > 5 else kwargs.get("is_causal", False)
    scale = kwargs.get("scale")
    if any(not isinstance(a, Value) or a.is_const for a in (q, k, v)):
        raise cx.unsupported("attention on constants")
    q, k, v = (unflat(cx, a) for a in (q, k, v))
    perm = batch_first(q)
    if perm[-2:] != (q.rank - 2, q.rank - 1):
        raise cx.unsupported("attention whose batch is a sequence or feature dim")
    tq, tk, tv = (to_perm(cx, a, perm) for a in (q, k, v))
    d = q.shape[-1]
    s = cx.array(scale if scale is not None else 1.0 / math.sqrt(d))
    axes = list(range(q.rank))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    logits = cx.ops.matmul(tq * s, cx.ops.transpose(tk, axes))
    L, S = q.shape[-2], k.shape[-2]
    if causal:
        logits = logits + cx.array(np.triu(np.full((L, S), -np.inf), 1))
    if mask is not None:
        if not (isinstance(mask, Value) and mask.is_const):
            raise cx.unsupported("an attention mask computed from the input", "a constant mask")
        m = mask.const
        add = np.where(m, 0.0, -np.inf) if m.dtype == bool else m
        logits = logits + cx.array(add)
    w = cx.ops.softmax(logits, axis=-1)
    return Out(Value(cx.ops.matmul(w, tv), tuple(node.shape), perm))
