"""Embedding: token ids to vectors, in Keras' order (batch, time, features)."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ...weights import LayerContext, family_for_keras
from ..converters import converter
from ..spec import CL, KERAS, PLAIN, KLayer, Layout, Piece, Step


@converter("Embedding", family="embedding", layout_free=True)
def _embedding(layer: KLayer) -> Piece:
    c = layer.config
    if c.get("mask_zero"):
        raise UnsupportedLayerError(
            f"Embedding '{layer.keras_name}' has mask_zero=True: Keras passes the mask on to later layers, which a torch "
            f"module does not. Rebuild it with mask_zero=False (and no Masking layer)."
        )
    weights = family_for_keras("Embedding").to_torch(layer.weights, LayerContext(layer.keras_name))
    vocab, dim = weights["weight"].shape
    out = Layout(CL if len(layer.output_shape) >= 3 else PLAIN)
    steps = [Step("", f"nn.Embedding({vocab}, {dim})", weights)]
    if layer.input_dtypes and "float" in layer.input_dtypes[0]:  # Keras casts float ids to integers
        steps.insert(0, Step("__ids", "TokenIds()", helpers=("TokenIds",)))
    return Piece(tuple(steps), out, inputs_as=(KERAS,))
