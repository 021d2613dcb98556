"""One entry per layer family: how its weights map between Keras and PyTorch.

A family is registered once (registering a Keras or torch type twice is an error); the CLI's
``xconv layers``, the docs table and the parametrised tests all read this registry.

>>> family_for_keras("Conv3D").name
'conv'
>>> family_for_torch("Linear").name
'dense'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsupportedLayerError

__all__ = ["LayerContext", "WeightFamily", "register", "unregister", "kernel_and_bias", "family_for_keras", "family_for_torch", "families"]

Weights = dict[str, np.ndarray]


@dataclass(frozen=True)
class LayerContext:
    """What a weight map needs to know beyond the arrays themselves.

    ``name``: the layer's name (for error messages); ``flatten_of``: the channels-last shape a
    Flatten turned into this Dense's input, whose rows then move in flatten order;
    ``depth_multiplier``: a depthwise conv's; ``num_heads``: an attention layer's.
    """

    name: str
    # channels-last feature shape (no batch) flattened right before this layer, if any
    flatten_of: tuple[int, ...] | None = None
    depth_multiplier: int = 1
    # attention: the number of heads (torch's stacked projections do not show it)
    num_heads: int | None = None


@dataclass(frozen=True)
class WeightFamily:
    """A family of layers whose weights map the same way.

    ``to_torch`` takes Keras arrays by their short names (``kernel``, ``bias``, ``gamma`` ...)
    and returns torch arrays by parameter/buffer name; ``to_keras`` is its exact inverse.
    ``kind`` tells :func:`xconv.layouts.describe_kernel_axes` how to read the main kernel.
    """

    name: str
    keras_types: tuple[str, ...]
    torch_types: tuple[str, ...]
    to_torch: Callable[[Mapping[str, np.ndarray], LayerContext], Weights]
    to_keras: Callable[[Mapping[str, np.ndarray], LayerContext], Weights]
    kind: str = "conv"
    # torch parameter name -> Keras weight name, for manifests and inspect
    names: Mapping[str, str] = field(default_factory=dict)
    # torch types this family's arrays fit without owning them (a Bidirectional's nn.LSTM, a
    # depthwise conv's grouped nn.Conv): transfer_weights may pair them, lookups by torch type do not
    pairs_with: tuple[str, ...] = ()


def kernel_and_bias(kernel_to_torch, kernel_to_keras):
    """``(to_torch, to_keras)`` for a layer with a kernel and an optional bias: only the kernel
    moves (``kernel_to_*(array, ctx)``); the bias is copied as it is."""

    def to_torch(w, ctx):
        out = {"weight": kernel_to_torch(w["kernel"], ctx)}
        if "bias" in w:
            out["bias"] = w["bias"].copy()
        return out

    def to_keras(p, ctx):
        out = {"kernel": kernel_to_keras(p["weight"], ctx)}
        if "bias" in p:
            out["bias"] = p["bias"].copy()
        return out

    return to_torch, to_keras


_BY_KERAS: dict[str, WeightFamily] = {}
_BY_TORCH: dict[str, WeightFamily] = {}
_FAMILIES: dict[str, WeightFamily] = {}


def register(family: WeightFamily) -> WeightFamily:
    """Add a family; a name or layer type that is already registered is rejected."""
    if family.name in _FAMILIES:
        raise ValueError(f"Weight family {family.name!r} is registered twice.")
    for table, types, side in ((_BY_KERAS, family.keras_types, "Keras"), (_BY_TORCH, family.torch_types, "torch")):
        for t in types:
            if t in table:
                raise ValueError(
                    f"{side} type {t!r} is already registered by family {table[t].name!r}; "
                    f"family {family.name!r} cannot register it again."
                )
    _FAMILIES[family.name] = family
    for t in family.keras_types:
        _BY_KERAS[t] = family
    for t in family.torch_types:
        _BY_TORCH[t] = family
    return family


def unregister(name: str) -> None:
    """Remove a family (plug-ins registered at run time); an unknown name is ignored."""
    family = _FAMILIES.pop(name, None)
    if family is None:
        return
    for t in family.keras_types:
        _BY_KERAS.pop(t, None)
    for t in family.torch_types:
        _BY_TORCH.pop(t, None)


def _load() -> None:
    # importing the family modules registers them (pure numpy: cheap)
    from . import attention, conv, dense, embedding, norm, rnn, separable  # noqa: F401


def families() -> tuple[WeightFamily, ...]:
    """Every registered weight family."""
    _load()
    return tuple(_FAMILIES.values())


def _unsupported(kind: str, type_name: str, layer: str | None, table: Mapping[str, WeightFamily]) -> UnsupportedLayerError:
    where = f" (layer '{layer}')" if layer else ""
    return UnsupportedLayerError(
        f"No weight converter for {kind} type '{type_name}'{where}. Supported: {', '.join(sorted(table))}. "
        f"To add one, register a WeightFamily in xconv/weights/."
    )


def family_for_keras(type_name: str, layer: str | None = None) -> WeightFamily:
    """The weight family of a Keras layer type; an unknown type names ``layer`` and the supported ones."""
    _load()
    try:
        return _BY_KERAS[type_name]
    except KeyError:
        raise _unsupported("Keras layer", type_name, layer, _BY_KERAS) from None


def family_for_torch(type_name: str, layer: str | None = None) -> WeightFamily:
    """The weight family of a torch module type; an unknown type names ``layer`` and the supported ones."""
    _load()
    try:
        return _BY_TORCH[type_name]
    except KeyError:
        raise _unsupported("torch module", type_name, layer, _BY_TORCH) from None
