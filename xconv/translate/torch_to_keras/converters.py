"""The op registry: one converter per ATen operator (and per whole-module unit), duplicates rejected.

Converters are keyed by the qualified op name the exported graph carries (``aten::convolution``;
overloads share one converter, which reads the arguments it was given). A *unit* is a module
converted whole because Keras has one layer for it (``MultiheadAttention``): its nodes are not
converted one by one. Every registered ATen op is also kept whole by the decomposition, so a
composite op with a Keras layer (``aten::linear`` -> Dense) never reaches the converters as
its pieces.

>>> from xconv.translate.torch_to_keras.converters import supported
>>> supported()["aten::convolution"].family
'conv'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import UnsupportedLayerError


@dataclass(frozen=True)
class OpConverter:
    """A registered PyTorch -> Keras converter: the ATen op (or ``module:Type`` unit) it converts,
    its family, the function (``fn(cx, node, args, kwargs) -> Out`` for an op, ``fn(cx, inputs,
    outputs) -> Out`` for a unit) and the one-line note ``xconv layers`` prints."""

    key: str  # 'aten::convolution', or 'module:MultiheadAttention' for a unit
    family: str  # the file it lives in: conv, pool, norm, ...
    fn: Callable
    note: str = ""  # one line for docs/layers.md


_OPS: dict[str, OpConverter] = {}


def _register(keys, family: str, note: str):
    def deco(fn):
        for key in keys:
            if key in _OPS:
                raise ValueError(f"{key!r} already has a converter (family {_OPS[key].family!r}).")
            _OPS[key] = OpConverter(key, family, fn, note)
        return fn

    return deco


def converts(*ops: str, family: str, note: str = ""):
    """Register ``fn(cx, node, args, kwargs) -> Out`` for the ATen ops ``ops`` ('aten::relu')."""
    return _register(ops, family, note)


def unit(*module_types: str, family: str, note: str = ""):
    """Register ``fn(cx, inputs, outputs) -> Out`` converting a whole module of these types."""
    return _register([f"module:{t}" for t in module_types], family, note)


def add_unit(module_type: str, fn: Callable, family: str, *, note: str = "", replace: bool = False) -> OpConverter:
    """Register a unit converter at run time (the plug-in API): ``fn(cx, inputs, outputs)``
    converts every module of class name ``module_type`` whole; ``replace=True`` takes over one."""
    _load()
    key = f"module:{module_type}"
    if key in _OPS and not replace:
        raise ValueError(f"torch module type {module_type!r} already has a converter (family {_OPS[key].family!r}); "
                         f"pass replace=True to take it over.")  # fmt: skip
    _OPS[key] = OpConverter(key, family, fn, note)
    return _OPS[key]


def remove_unit(module_type: str) -> None:
    """Forget a unit converter added by :func:`add_unit` (an unknown type is ignored)."""
    _OPS.pop(f"module:{module_type}", None)


def has_unit(module_type: str) -> bool:
    """Whether modules of class name ``module_type`` are converted whole (a unit converter)."""
    _load()
    return f"module:{module_type}" in _OPS


def _load() -> None:
    from . import (  # noqa: F401 - importing registers
        activation,
        attention,
        conv,
        elementwise,
        embedding,
        indexing,
        linear,
        norm,
        pad,
        pool,
        reduction,
        resize,
        rnn,
        shape,
    )


def supported() -> dict[str, OpConverter]:
    """Every registered converter (built-in families loaded first), by key, sorted."""
    _load()
    return dict(sorted(_OPS.items()))


def unit_types() -> set[str]:
    """The class names of the torch modules converted whole (``MultiheadAttention``, plug-ins)."""
    _load()
    return {k.split(":", 1)[1] for k in _OPS if k.startswith("module:")}


def keep_whole() -> list:
    """The op packets the decomposition must leave whole: every registered ATen op."""
    import torch

    out = []
    for key in supported():
        ns, _, name = key.partition("::")
        if ns == "aten" and hasattr(torch.ops.aten, name):
            out.append(getattr(torch.ops.aten, name))
    return out


def get(key: str, where: str) -> OpConverter:
    """The converter of ``key``; for an op without one, :class:`UnsupportedLayerError` with
    ``where`` (the node and module, as text), the nearest supported ops and how to add one."""
    _load()
    try:
        return _OPS[key]
    except KeyError:
        ops = [k for k in _OPS if not k.startswith("module:")]
        near = difflib.get_close_matches(key, ops, n=3, cutoff=0.5)
        hint = f" Nearest supported: {', '.join(near)}." if near else ""
        raise UnsupportedLayerError(
            f"No Keras converter for op '{key}'{where}.{hint} Supported ops are listed by `xconv layers`; "
            f"to add one, register a converter in xconv/translate/torch_to_keras/."
        ) from None
