"""``aten::embedding`` -> Embedding (the table is the same array; shared family)."""

from __future__ import annotations

from ...weights import LayerContext, family_for_torch
from .converters import converts
from .values import Out, Value


@converts("aten::embedding", family="embedding", note="Embedding")
def embedding(cx, node, args, kwargs):
    w, idx = args[0], args[1]
    if not (isinstance(w, Value) and w.is_const):
        raise cx.unsupported("an embedding table computed from the input", "nn.Embedding")
    vocab, dim = w.const.shape
    layer = cx.layers.Embedding(vocab, dim, name=cx.name, dtype=cx.dtype)
    t = layer(idx.tensor)
    weights = family_for_torch("Embedding").to_keras({"weight": w.const}, LayerContext(cx.name))
    return Out(Value(t, tuple(node.shape), (*idx.perm, idx.rank)), ((layer, weights),))
