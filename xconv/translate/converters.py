"""The converter registry: one entry per Keras layer type, one file per family under layers/.

>>> from xconv.translate.converters import supported
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
    """A registered Keras -> torch converter: the Keras type, its family (the file under ``layers/``
    it lives in; the weight map is the layer's :mod:`xconv.weights` family), the function and how
    it treats layouts.

    ``fn(layer)`` takes the layer call as a :class:`~xconv.translate.spec.KLayer` and returns a
    :class:`~xconv.translate.spec.Piece` (the torch modules as source, their weights, the output's
    layout). The three flags say which input layouts it accepts (see the comments on each).
    """

    keras_type: str
    family: str
    fn: Callable[[KLayer], Piece]
    # element-wise: a Flatten's torch-order vector may pass through unchanged
    elementwise: bool = False
    # takes tensors in Keras' own axis order as they come (sequence layers, attention); others
    # receive every feature map channels-first
    layout_free: bool = False
    # given tensors that are all in Keras' own axis order (the output of channels_first layers),
    # it computes in that order too, so they are not moved channels-first for it
    keeps_order: bool = False


_CONVERTERS: dict[str, Converter] = {}


def converter(*keras_types: str, family: str, elementwise: bool = False, layout_free: bool = False, keeps_order: bool | None = None):
    """A decorator: register the decorated ``fn(layer) -> Piece`` for each of ``keras_types``.

    ``family`` is the name ``xconv layers`` lists it under; the flags are :class:`Converter`'s.
    A type registered twice raises ``ValueError``. ``keeps_order`` defaults to ``elementwise``
    (an element-wise layer computes in any axis order). Returns the decorator, which returns
    ``fn`` unchanged.
    """
    keeps = elementwise if keeps_order is None else keeps_order

    def deco(fn):
        for t in keras_types:
            if t in _CONVERTERS:
                raise ValueError(f"Keras layer type {t!r} already has a converter (family {_CONVERTERS[t].family!r}).")
            _CONVERTERS[t] = Converter(t, family, fn, elementwise, layout_free, keeps)
        return fn

    return deco


def op_converter(*op_types: str, family: str = "ops", elementwise: bool = False):
    """Register ``fn`` for Keras operations (``keras.ops.add``: class ``Add``), under ``ops.<Class>``."""
    return converter(*(f"ops.{t}" for t in op_types), family=family, elementwise=elementwise, layout_free=True)


def add(keras_type: str, fn: Callable[[KLayer], Piece], family: str, *, replace: bool = False, layout_free: bool = False) -> Converter:
    """Register a converter at run time (the plug-in API); ``replace=True`` takes over an existing one."""
    _load()
    if keras_type in _CONVERTERS and not replace:
        raise ValueError(
            f"Keras layer type {keras_type!r} already has a converter (family {_CONVERTERS[keras_type].family!r}); "
            f"pass replace=True to take it over."
        )
    _CONVERTERS[keras_type] = Converter(keras_type, family, fn, layout_free=layout_free)
    return _CONVERTERS[keras_type]


def remove(keras_type: str) -> None:
    """Drop the converter of ``keras_type`` (a plug-in's, at unregistration); an unknown type is ignored."""
    _CONVERTERS.pop(keras_type, None)


def _load() -> None:
    from .layers import activation, attention, conv, dense, embedding, keras_apps, merge, misc, norm, ops, pool, recurrent, reshape  # noqa: F401


def supported() -> dict[str, Converter]:
    """Every registered converter (built-in families loaded first), by Keras type, sorted."""
    _load()
    return dict(sorted(_CONVERTERS.items()))


def has(key: str) -> bool:
    """Whether ``key`` (a Keras layer type, or ``ops.<Class>`` for an operation) has a converter."""
    _load()
    return key in _CONVERTERS


def get(keras_type: str, layer_name: str) -> Converter:
    """The converter of ``keras_type``; for a type without one, :class:`UnsupportedLayerError`
    naming ``layer_name`` (the layer or node), the supported types and how to add one."""
    _load()
    try:
        return _CONVERTERS[keras_type]
    except KeyError:
        if keras_type.startswith("ops."):
            ops = sorted(k[4:] for k in _CONVERTERS if k.startswith("ops."))
            raise UnsupportedLayerError(
                f"No converter for the Keras operation '{keras_type[4:]}' (node '{layer_name}'). "
                f"Supported operations: {', '.join(ops)}. Rewrite it with a supported operation or layer."
            ) from None
        layers = sorted(k for k in _CONVERTERS if not k.startswith("ops."))
        why = _NO_EQUIVALENT.get(keras_type, "")
        raise UnsupportedLayerError(
            f"No converter for Keras layer type '{keras_type}' (layer '{layer_name}'). {why}"
            f"Supported: {', '.join(layers)}. To add one, register it with xconv.keras_plugins.register_layer."
        ) from None


# layers refused on purpose: what stands in the way
_NO_EQUIVALENT = {
    f"ConvLSTM{n}D": "torch has no convolutional LSTM, so there is no clean module to translate it to. "
    for n in (1, 2, 3)
}
