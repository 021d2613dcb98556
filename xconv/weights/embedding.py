"""Embedding <-> nn.Embedding: the (vocabulary, features) table is the same array on both sides."""

from __future__ import annotations

from . import WeightFamily, register


def _to_torch(w, ctx):
    return {"weight": w["embeddings"].copy()}


def _to_keras(p, ctx):
    return {"embeddings": p["weight"].copy()}


register(
    WeightFamily(
        name="embedding",
        keras_types=("Embedding",),
        torch_types=("Embedding",),
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="dense",
        names={"weight": "embeddings"},
    )
)
