"""The converter registry: one entry per Keras layer type, one file per family under layers/.

>>> from xconv.translate.registry import supported
>>> "Conv2D" in supported()
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UnsupportedLayerError
from .spec import KLayer, Piece


@dataclass(frozen=True)
class Converter:
    keras_type: str
    family: str
    fn: Callable[[KLayer], Piece]
    # element-wise: a Flatten's torch-order vector may pass through unchanged
    elementwise: bool = False


_CONVERTERS: dict[str, Converter] = {}


def converter(*keras_types: str, family: str, elementwise: bool = False):
    """Register ``fn`` for ``keras_types``; a type registered twice is an error."""

    def deco(fn):
        for t in keras_types:
            if t in _CONVERTERS:
                raise ValueError(f"Keras layer type {t!r} already has a converter (family {_CONVERTERS[t].family!r}).")
            _CONVERTERS[t] = Converter(t, family, fn, elementwise)
        return fn

    return deco


def _load() -> None:
    from .layers import activation, conv, dense, merge, misc, norm, pool, reshape  # noqa: F401


def supported() -> dict[str, Converter]:
    _load()
    return dict(sorted(_CONVERTERS.items()))


def get(keras_type: str, layer_name: str) -> Converter:
    _load()
    try:
        return _CONVERTERS[keras_type]
    except KeyError:
        raise UnsupportedLayerError(
            f"No converter for Keras layer type '{keras_type}' (layer '{layer_name}'). "
            f"Supported: {', '.join(sorted(_CONVERTERS))}. To add one, register a converter in xconv/translate/layers/."
        ) from None
