"""Plug-ins: teach xconv a Keras layer of your own.

One registration gives a custom Keras layer type a PyTorch counterpart for ``keras_to_torch``
(a module class of yours, importable by its module path, built with arguments read from the
layer's config) and a weight family, so ``transfer_weights``, ``xconv convert`` and
``xconv inspect`` move its weights too. A registered converter takes precedence over tracing
the layer's ``call``.

>>> import xconv.keras_plugins as plugins
>>> callable(plugins.register_layer)
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .errors import BadInputError

__all__ = ["register_layer", "unregister_layer", "registered"]

_PLUGINS: dict[str, dict] = {}


def _copy(arrays: Mapping[str, np.ndarray], names: Mapping[str, str]) -> dict[str, np.ndarray]:
    return {names.get(k, k): np.array(v, copy=True) for k, v in arrays.items()}


def register_layer(
    keras_type,
    torch_module: type,
    *,
    arguments: Callable[[object], dict] | None = None,
    weights: Mapping[str, str] | tuple[Callable, Callable] | None = None,
    layout: str = "channels_first",
    replace: bool = False,
):
    """Register ``torch_module`` as the PyTorch counterpart of the Keras layer type ``keras_type``.

    - ``keras_type``: the Keras layer class (or its class name).
    - ``torch_module``: an ``nn.Module`` subclass defined in an importable module; the generated
      source imports it (``from your.module import YourModule``).
    - ``arguments(keras_layer) -> dict``: its constructor's keyword arguments, read from the
      built Keras layer (its attributes, weights' shapes; default: none).
    - ``weights``: how the layer's weights map: a dict ``{keras_name: torch_name}`` for arrays
      that are copied as they are, or a pair ``(to_torch, to_keras)`` of functions between
      ``{name: array}`` dicts (each the exact inverse of the other). ``None``: no weights.
    - ``layout``: what the module's ``forward`` receives and returns: ``"channels_first"``
      (feature maps ``(N, C, *spatial)``, like every translated module) or ``"keras"`` (Keras'
      own axis order).
    """
    from .weights import WeightFamily, register, unregister
    from .translate import converters
    from .translate.spec import CL, PLAIN, Layout, Piece, Step

    name = keras_type if isinstance(keras_type, str) else keras_type.__name__
    if not isinstance(torch_module, type):
        raise BadInputError(f"register_layer('{name}'): torch_module must be an nn.Module class; received {torch_module!r}.")
    if layout not in ("channels_first", "keras"):
        raise BadInputError(f"register_layer('{name}'): layout must be 'channels_first' or 'keras'; received {layout!r}.")
    if weights is None:
        to_torch, to_keras = (lambda w, ctx: {}), (lambda p, ctx: {})
        names = {}
    elif isinstance(weights, Mapping):
        names = dict(weights)
        back = {v: k for k, v in names.items()}
        to_torch, to_keras = (lambda w, ctx: _copy(w, names)), (lambda p, ctx: _copy(p, back))
        names = back
    else:
        user_to_torch, user_to_keras = weights
        to_torch, to_keras = (lambda w, ctx: user_to_torch(dict(w))), (lambda p, ctx: user_to_keras(dict(p)))
        names = {}
    if name in _PLUGINS and replace:
        unregister_layer(name)
    if converters.has(name) and not replace:
        raise BadInputError(
            f"register_layer('{name}'): Keras layer type '{name}' already has a converter; pass replace=True to take it over."
        )
    family = WeightFamily(
        name=f"plugin:{name}", keras_types=(name,), torch_types=(torch_module.__name__,),
        to_torch=to_torch, to_keras=to_keras, kind="vector", names=names,
    )  # fmt: skip
    register(family)
    imported = f"import:{torch_module.__module__}:{torch_module.__name__}"

    def convert(layer):
        kwargs = dict(arguments(layer.layer)) if arguments else {}
        code = f"{torch_module.__name__}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        arrays = to_torch(layer.weights, None)
        rank = len(layer.output_shape)
        if layout == "keras":
            out = Layout(CL if rank >= 3 else PLAIN)
            return Piece((Step("", code, arrays, (imported,)),), out, inputs_as=("keras",) * len(layer.in_layouts))
        return Piece((Step("", code, arrays, (imported,)),), Layout.for_rank(rank), inputs_as=("cf",) * len(layer.in_layouts))

    try:
        converters.add(name, convert, family="plugin", replace=replace, layout_free=True)
    except ValueError as exc:
        unregister(family.name)
        raise BadInputError(f"register_layer('{name}'): {exc}") from None
    _PLUGINS[name] = {"torch_module": torch_module, "family": family.name}
    return family


def unregister_layer(keras_type) -> None:
    """Forget a registration made by :func:`register_layer`."""
    from .weights import unregister
    from .translate import converters

    name = keras_type if isinstance(keras_type, str) else keras_type.__name__
    entry = _PLUGINS.pop(name, None)
    if entry is None:
        raise BadInputError(f"No plug-in is registered for Keras layer type '{name}'. Registered: {sorted(_PLUGINS)}.")
    converters.remove(name)
    unregister(entry["family"])


def registered() -> dict[str, str]:
    """Keras layer type -> torch module class name, for every plug-in."""
    return {k: v["torch_module"].__name__ for k, v in _PLUGINS.items()}


def module_classes() -> dict[str, type]:
    """Torch module class name -> class, for every plug-in (the generated code's namespace)."""
    return {v["torch_module"].__name__: v["torch_module"] for v in _PLUGINS.values()}
