"""Plug-ins: teach xconv a layer of your own, in one direction or both.

- :func:`register_layer` pairs a custom Keras layer class with a torch module class of yours.
  ``keras_to_torch`` builds your module for the layer (a registered converter takes precedence
  over tracing the layer's ``call``), and ``torch_to_keras`` builds your Keras layer for every
  call of your module (kept whole: the ATen ops inside it are not converted one by one, so an
  op xconv has no converter for may sit inside). One weight family serves both directions, so
  ``transfer_weights``, ``xconv convert`` and ``xconv inspect`` move its weights either way.
- :func:`register_module` covers the PyTorch -> Keras direction alone, for a module whose
  Keras counterpart is a built-in layer (or a layer of yours with no torch twin to build).

Layouts: with ``layout="channels_first"`` (the default) the torch module works on torch's
``(N, C, *spatial)`` maps and the Keras layer on Keras' ``(N, *spatial, C)``; with
``layout="keras"`` both see the same axis order (Keras' own).

>>> import xconv.keras_plugins as plugins
>>> callable(plugins.register_layer), callable(plugins.register_module)
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .errors import BadInputError

__all__ = ["register_layer", "unregister_layer", "register_module", "unregister_module", "registered", "registered_modules"]

_PLUGINS: dict[str, dict] = {}  # Keras layer type -> its registration (register_layer)
_MODULES: dict[str, dict] = {}  # torch module type -> its registration (both functions)
_LAYOUTS = ("channels_first", "keras")


def _copy(arrays: Mapping[str, np.ndarray], names: Mapping[str, str]) -> dict[str, np.ndarray]:
    return {names.get(k, k): np.array(v, copy=True) for k, v in arrays.items()}


def _name(t) -> str:
    return t if isinstance(t, str) else getattr(t, "__name__", repr(t))


def _weight_maps(what: str, weights):
    """``(to_torch, to_keras, names)`` for the ``weights=`` argument: a dict, a pair of functions, or None."""
    if weights is None:
        return (lambda w, ctx: {}), (lambda p, ctx: {}), {}
    if isinstance(weights, Mapping):
        names = dict(weights)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
            raise BadInputError(f"{what}: weights must map Keras weight names to torch names (str -> str); received {weights!r}.")
        back = {v: k for k, v in names.items()}
        if len(back) != len(names):
            raise BadInputError(f"{what}: weights maps two Keras weights to one torch name: {weights!r}.")
        return (lambda w, ctx: _copy(w, names)), (lambda p, ctx: _copy(p, back)), back
    if isinstance(weights, tuple) and len(weights) == 2 and all(callable(f) for f in weights):
        user_to_torch, user_to_keras = weights
        return (lambda w, ctx: user_to_torch(dict(w))), (lambda p, ctx: user_to_keras(dict(p))), {}
    raise BadInputError(
        f"{what}: weights must be None, a dict {{keras_name: torch_name}} or a pair of functions "
        f"(to_torch, to_keras); received {type(weights).__name__} {weights!r}."
    )


def _check_module_class(what: str, torch_module) -> None:
    import torch

    if not (isinstance(torch_module, type) and issubclass(torch_module, torch.nn.Module)):
        raise BadInputError(f"{what}: torch_module must be an nn.Module subclass; received {torch_module!r}.")


def _check_layout(what: str, layout) -> None:
    if layout not in _LAYOUTS:
        raise BadInputError(f"{what}: layout must be 'channels_first' or 'keras'; received {layout!r}.")


def _is_builtin_keras(cls) -> bool:
    return isinstance(cls, type) and cls.__module__.split(".")[0] == "keras"


def register_layer(
    keras_type,
    torch_module: type,
    *,
    arguments: Callable[[object], dict] | None = None,
    keras_arguments: Callable[[object], dict] | None = None,
    weights: Mapping[str, str] | tuple[Callable, Callable] | None = None,
    layout: str = "channels_first",
    replace: bool = False,
):
    """Register ``torch_module`` as the PyTorch counterpart of the Keras layer type ``keras_type``.

    - ``keras_type``: the Keras layer class (or its class name: then Keras -> PyTorch only).
    - ``torch_module``: an ``nn.Module`` subclass defined in an importable module; the generated
      source imports it (``from your.module import YourModule``).
    - ``arguments(keras_layer) -> dict``: its constructor's keyword arguments, read from the
      built Keras layer (its attributes, weights' shapes; default: none).
    - ``keras_arguments(torch_module) -> dict``: the Keras layer's constructor arguments, read
      from a torch module instance, for ``torch_to_keras`` (default: none; ``name`` and
      ``dtype`` are added).
    - ``weights``: how the layer's weights map: a dict ``{keras_name: torch_name}`` for arrays
      that are copied as they are, or a pair ``(to_torch, to_keras)`` of functions between
      ``{name: array}`` dicts (each the exact inverse of the other). ``None``: no weights.
    - ``layout``: what the module's ``forward`` receives and returns: ``"channels_first"``
      (feature maps ``(N, C, *spatial)``, like every translated module) or ``"keras"`` (Keras'
      own axis order).

    Given the class, the registration covers both directions: ``torch_to_keras`` converts each
    call of ``torch_module`` whole into ``keras_type``. Returns the weight family.
    """
    from .weights import WeightFamily, register, unregister
    from .translate import converters
    from .translate.spec import CL, PLAIN, InputAs, Layout, Piece, Step
    from .translate.torch_to_keras import converters as torch_converters

    name = _name(keras_type)
    what = f"register_layer('{name}')"
    _check_module_class(what, torch_module)
    _check_layout(what, layout)
    both = not isinstance(keras_type, str)
    if both and not (isinstance(keras_type, type) and callable(keras_type)):
        raise BadInputError(f"{what}: keras_type must be a Keras layer class or a class name; received {keras_type!r}.")
    if keras_arguments is not None and not both:
        raise BadInputError(f"{what}: keras_arguments builds the Keras layer for torch_to_keras; pass the layer class, not its name.")
    to_torch, to_keras, names = _weight_maps(what, weights)
    tname = torch_module.__name__
    if name in _PLUGINS and replace:
        unregister_layer(name)
    if converters.has(name) and not replace:
        raise BadInputError(
            f"{what}: Keras layer type '{name}' already has a converter; pass replace=True to take it over."
        )
    if both and tname in _MODULES and replace:
        unregister_module(tname)
    if both and torch_converters.has_unit(tname) and not replace:
        raise BadInputError(f"{what}: torch module type '{tname}' already has a converter to Keras; pass replace=True to take it over.")
    family = WeightFamily(
        name=f"plugin:{name}", keras_types=(name,), torch_types=(tname,),
        to_torch=to_torch, to_keras=to_keras, kind="vector", names=names,
    )  # fmt: skip
    try:
        register(family)
    except ValueError as exc:
        raise BadInputError(f"{what}: {exc}") from None
    imported = f"import:{torch_module.__module__}:{tname}"

    def convert(layer):
        kwargs = dict(arguments(layer.layer)) if arguments else {}
        code = f"{tname}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        arrays = to_torch(layer.weights, None)
        rank = len(layer.output_shape)
        if layout == "keras":
            out = Layout(CL if rank >= 3 else PLAIN)
            return Piece((Step("", code, arrays, (imported,)),), out, inputs_as=("keras",) * len(layer.in_layouts))
        return Piece((Step("", code, arrays, (imported,)),), Layout.for_rank(rank), inputs_as=(InputAs.CF,) * len(layer.in_layouts))

    try:
        converters.add(name, convert, family="plugin", replace=replace, layout_free=True)
        if both:
            unit = _unit(keras_type, keras_arguments, to_keras, layout, f"register_layer('{name}')")
            torch_converters.add_unit(tname, unit, family="plugin", note=f"{name} (plug-in)", replace=replace)
    except ValueError as exc:
        converters.remove(name)
        unregister(family.name)
        raise BadInputError(f"{what}: {exc}") from None
    _PLUGINS[name] = {"torch_module": torch_module, "family": family.name, "both": both}
    if both:
        _MODULES[tname] = {"keras": name, "family": None, "torch_module": torch_module}
    return family


def register_module(
    torch_module: type,
    keras_layer: Callable,
    *,
    arguments: Callable[[object], dict] | None = None,
    weights: Mapping[str, str] | tuple[Callable, Callable] | None = None,
    layout: str = "channels_first",
    replace: bool = False,
):
    """Convert every call of the torch module class ``torch_module`` whole, into ``keras_layer``.

    For the PyTorch -> Keras direction alone (:func:`register_layer` covers both where you have
    a Keras layer class of your own and want ``keras_to_torch`` too).

    - ``keras_layer``: a Keras layer class, or a function returning a Keras layer (built-in
      layers: ``lambda eps, name, dtype: keras.layers.LayerNormalization(epsilon=eps, ...)``);
      called as ``keras_layer(**arguments(module), name=..., dtype=...)``, the name being the
      module's path, so ``compare`` lines them up.
    - ``arguments(module) -> dict``: keyword arguments read from the torch module instance.
    - ``weights``, ``layout``: as for :func:`register_layer`; the Keras layer's weights must all
      come from the module's own parameters and buffers.

    The module's inner ATen ops are never converted one by one, so what torch.export's
    decomposition makes of them does not matter. ``transfer_weights`` moves the weights
    between the module and a Keras layer of ``keras_layer``'s class. Returns the weight family.
    """
    from .weights import WeightFamily, register
    from .translate.torch_to_keras import converters as torch_converters

    what = f"register_module('{_name(torch_module)}')"
    _check_module_class(what, torch_module)
    _check_layout(what, layout)
    if not callable(keras_layer):
        raise BadInputError(f"{what}: keras_layer must be a Keras layer class or a function returning a Keras layer; received {keras_layer!r}.")
    to_torch, to_keras, names = _weight_maps(what, weights)
    tname = torch_module.__name__
    both_ways = _MODULES.get(tname, {}).get("family", "") is None
    if both_ways and replace:  # its weight family is the pair's: a takeover would leave the Keras side without one
        raise BadInputError(
            f"{what}: torch module type '{tname}' is registered both ways by register_layer('{_MODULES[tname]['keras']}'); "
            f"call unregister_layer('{_MODULES[tname]['keras']}') first."
        )
    if torch_converters.has_unit(tname) and not replace:
        raise BadInputError(f"{what}: torch module type '{tname}' already has a converter to Keras; pass replace=True to take it over.")
    if tname in _MODULES and replace:
        unregister_module(tname)
    # a built-in Keras class keeps its own family for Keras -> torch; a class of the user's is named
    own = isinstance(keras_layer, type) and not _is_builtin_keras(keras_layer)
    family = WeightFamily(
        name=f"plugin-module:{tname}", keras_types=(keras_layer.__name__,) if own else (), torch_types=(tname,),
        to_torch=to_torch, to_keras=to_keras, kind="vector", names=names,
    )  # fmt: skip
    try:
        register(family)
    except ValueError as exc:
        raise BadInputError(f"{what}: {exc}") from None
    unit = _unit(keras_layer, arguments, to_keras, layout, what)
    torch_converters.add_unit(tname, unit, family="plugin", note=f"{_name(keras_layer)} (plug-in)", replace=True)
    _MODULES[tname] = {"keras": _name(keras_layer), "family": family.name, "family_obj": family, "torch_module": torch_module}
    return family


def _module_arrays(module, what: str) -> dict[str, np.ndarray]:
    from .frameworks import torch_side as ts

    inner = [n for n, _ in module.named_parameters() if "." in n]
    if inner:
        raise BadInputError(
            f"{what}: module '{type(module).__name__}' keeps weights in submodules ({inner[:4]}); a plug-in module "
            f"holds its weights itself (its own nn.Parameters and buffers), as transfer_weights pairs them."
        )
    return ts.module_arrays(module)


def _unit(build, arguments, to_keras, layout: str, what: str):
    """The torch -> Keras unit converter of a plug-in: one Keras layer for one module call."""

    def convert(cx, inputs, outputs):
        from .frameworks import keras_side as ks
        from .translate.torch_to_keras.values import Out, channels_last, identity, tensor_value, to_perm

        perm_of = channels_last if layout == "channels_first" else identity
        where = f"{what}, module '{cx.name}'"
        kwargs = dict(arguments(cx.module)) if arguments else {}
        layer = build(**kwargs, name=cx.name, dtype=cx.dtype)
        result = layer(*[to_perm(cx, v, perm_of(v.rank)) for v in inputs])
        results = list(result) if isinstance(result, (list, tuple)) else [result]
        if len(results) != len(outputs):
            raise BadInputError(f"{where}: the Keras layer returned {len(results)} tensors; the torch module returns {len(outputs)}.")
        values = []
        for t, node in zip(results, outputs):
            perm = perm_of(len(node.shape))
            want = tuple(node.shape[p] for p in perm)[1:]
            if tuple(t.shape)[1:] != want:
                raise BadInputError(
                    f"{where}: the Keras layer returned shape {tuple(t.shape)[1:]}, but the torch module's output "
                    f"{tuple(node.shape)[1:]} laid out as layout={layout!r} is {want} (batch excluded). "
                    f"Check the registration's layout= and arguments."
                )
            values.append(tensor_value(t, node.shape, perm))
        new = to_keras(_module_arrays(cx.module, where), None)
        keys = ks.weight_keys(layer)
        if set(new) != set(keys):
            raise BadInputError(
                f"{where}: the weight map gives Keras weights {sorted(new)}, but the Keras layer has {sorted(keys)}. "
                f"Fix the registration's weights=."
            )
        arrays = [np.asarray(new[k]) for k in keys]
        for k, a, v in zip(keys, arrays, layer.weights):
            if tuple(a.shape) != tuple(v.shape):
                raise BadInputError(f"{where}: weight '{k}' maps to shape {a.shape}, but the Keras layer's is {tuple(v.shape)}.")
        return Out(tuple(values), ((layer, arrays),) if arrays else ())

    return convert


def unregister_layer(keras_type) -> None:
    """Forget a registration made by :func:`register_layer` (both directions)."""
    from .weights import unregister
    from .translate import converters

    name = _name(keras_type)
    entry = _PLUGINS.pop(name, None)
    if entry is None:
        raise BadInputError(f"No plug-in is registered for Keras layer type '{name}'. Registered: {sorted(_PLUGINS)}.")
    converters.remove(name)
    tname = entry["torch_module"].__name__
    if entry["both"] and _MODULES.get(tname, {}).get("keras") == name and _MODULES[tname]["family"] is None:
        unregister_module(tname)  # unless register_module has taken the torch side over since
    unregister(entry["family"])


def unregister_module(torch_module) -> None:
    """Forget the PyTorch -> Keras converter of ``torch_module`` (a class or its name)."""
    from .weights import unregister
    from .translate.torch_to_keras import converters as torch_converters

    tname = _name(torch_module)
    entry = _MODULES.pop(tname, None)
    if entry is None:
        raise BadInputError(f"No plug-in is registered for torch module type '{tname}'. Registered: {sorted(_MODULES)}.")
    torch_converters.remove_unit(tname)
    if entry["family"]:
        unregister(entry["family"])


def registered() -> dict[str, str]:
    """Keras layer type -> torch module class name, for every :func:`register_layer` plug-in."""
    return {k: v["torch_module"].__name__ for k, v in _PLUGINS.items()}


def registered_modules() -> dict[str, str]:
    """Torch module class name -> the Keras layer (class or builder) ``torch_to_keras`` makes of it."""
    return {k: v["keras"] for k, v in _MODULES.items()}


def module_family(torch_type: str):
    """The weight family :func:`register_module` gave the torch module type ``torch_type``, or None
    (``transfer_weights`` uses it where the Keras side is a built-in layer with a family of its own)."""
    entry = _MODULES.get(torch_type)
    return entry["family_obj"] if entry and entry["family"] else None


def module_classes() -> dict[str, type]:
    """Torch module class name -> class, for every plug-in (the generated code's namespace)."""
    return {v["torch_module"].__name__: v["torch_module"] for v in _PLUGINS.values()}
