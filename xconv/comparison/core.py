"""Run a Keras model and a PyTorch module on one input and line up every layer's activation."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from .. import layouts
from ..errors import BadInputError
from ..frameworks import framework_of
from . import tolerance
from .report import LayerDiff, Report

_DTYPES = ("float32", "float64")


def _as_list(inputs) -> list[np.ndarray]:
    if isinstance(inputs, (list, tuple)):
        arrays = [np.asarray(x) for x in inputs]
    else:
        arrays = [np.asarray(inputs)]
    for x in arrays:
        if x.dtype.kind not in "fiub":
            raise BadInputError(f"Inputs must be numeric arrays; received dtype {x.dtype}.")
    return arrays


def _swap_layout(x: np.ndarray, to: str) -> np.ndarray:
    if x.ndim < 3:
        return x
    return np.ascontiguousarray(np.moveaxis(x, -1, 1) if to == "torch" else np.moveaxis(x, 1, -1))


def _prepare_torch(module, device: str, dtype: str):
    from ..frameworks import torch_side as ts

    t = ts.torch()
    dev = ts.resolve_device(device)
    tdtype = getattr(t, dtype)
    params = list(module.parameters()) + list(module.buffers())
    same = all(p.device == dev and (not p.is_floating_point() or p.dtype == tdtype) for p in params)
    if not same:  # never move or cast the caller's module in place
        module = copy.deepcopy(module).to(device=dev, dtype=tdtype)
    return module.eval(), dev, tdtype


def _diff(name: str, kind: str, ref: np.ndarray, other: np.ndarray, rtol: float, atol: float) -> LayerDiff:
    if ref.shape != other.shape:
        note = f"shapes differ: reference {tuple(ref.shape)}, other {tuple(other.shape)} (channels-first)"
        return LayerDiff(name, kind, tuple(ref.shape), float("inf"), float("inf"), (), atol, rtol, False, note)
    if ref.size == 0:
        return LayerDiff(name, kind, tuple(ref.shape), 0.0, 0.0, (), atol, rtol, True)
    diff = np.abs(ref - other)
    flat = int(np.argmax(diff))
    max_abs = float(diff.reshape(-1)[flat])
    if np.isnan(diff).any():
        max_abs, flat = float("nan"), int(np.argmax(np.isnan(diff)))
    scale = float(np.max(np.abs(ref)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    ok = bool(max_abs <= atol + rtol * scale)
    where = tuple(int(i) for i in np.unravel_index(flat, ref.shape))
    return LayerDiff(name, kind, tuple(ref.shape), max_abs, max_rel, where, atol, rtol, ok)


def compare(
    a,
    b,
    inputs,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    align: Mapping[str, str] | None = None,
    layers: Sequence[str] | None = None,
) -> Report:
    """Compare every layer of a Keras model and a PyTorch module (in either order) on ``inputs``.

    ``inputs`` is an array (or a list, for several inputs) in the layout of ``a``; it is
    converted between channels-last and channels-first for ``b``. Each Keras layer is aligned
    with the torch module of the same name, or the one ``align`` (or the module's
    ``xconv_outputs`` attribute) names. ``a`` is the reference: relative differences are
    taken against it. ``dtype='float64'`` is the strict mode: both sides run in float64.
    ``device`` places the PyTorch side; TF32 is switched off for the run and restored.

    >>> from xconv import zoo
    >>> k = zoo.build("two_conv", "keras", random_biases=True)   # doctest: +SKIP
    >>> t = zoo.build("two_conv", "torch"); _ = transfer_weights(k, t)   # doctest: +SKIP
    >>> compare(k, t, zoo.sample_input("two_conv")).ok   # doctest: +SKIP
    True
    """
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts

    fa, fb = framework_of(a), framework_of(b)
    if {fa, fb} != {"keras", "torch"}:
        raise BadInputError(
            f"compare() takes one Keras model and one PyTorch module, in either order; received "
            f"{type(a).__name__} ({fa}) and {type(b).__name__} ({fb})."
        )
    dtype = dtype or "float32"
    if dtype not in _DTYPES:
        raise BadInputError(f"dtype must be one of {_DTYPES}; received {dtype!r}.")
    rtol, atol = tolerance.resolve(dtype, rtol, atol)
    kmodel, tmodule = (a, b) if fa == "keras" else (b, a)
    arrays = _as_list(inputs)
    k_in = arrays if fa == "keras" else [_swap_layout(x, "keras") for x in arrays]
    t_in = [_swap_layout(x, "torch") for x in arrays] if fa == "keras" else arrays

    kmodel = ks.cast(kmodel, dtype)
    tmodule, dev, tdtype = _prepare_torch(tmodule, device, dtype)
    k_acts = ks.capture(kmodel, k_in, names=layers)
    mapping = {**getattr(tmodule, "xconv_outputs", {}), **(align or {})}
    t_names = {c.name: mapping.get(c.name, c.name) for c in k_acts}
    with ts.numerics(allow_tf32=False) as settings:
        t_acts, _ = ts.capture(tmodule, t_in, list(t_names.values()), dev, tdtype)

    report = Report(a=fa, b=fb, device=str(dev), dtype=dtype, tf32=settings["tf32"])
    modules = dict(tmodule.named_modules())
    for c in k_acts:
        tname = t_names[c.name]
        if tname not in t_acts:
            why = "the PyTorch module did not run it" if tname in modules else f"no PyTorch module named '{tname}'"
            report.skipped.append((c.name, why))
            continue
        # a view, not a copy: moveaxis costs nothing until the subtraction reads it
        k_val = c.value[:, layouts.flatten_permutation(c.flatten_of)] if c.flatten_of else (
            np.moveaxis(c.value, -1, 1) if c.value.ndim >= 3 else c.value
        )  # fmt: skip
        ref, other = (k_val, t_acts[tname]) if fa == "keras" else (t_acts[tname], k_val)
        report.layers.append(_diff(c.name, c.type, ref, other, rtol, atol))
    if not report.layers:
        raise BadInputError(
            f"No layer of Keras model '{kmodel.name}' lines up with a module of {type(tmodule).__name__} "
            f"(Keras layers: {[c.name for c in k_acts][:8]}; torch modules: {list(modules)[1:9]}). "
            f"Name the torch modules after the Keras layers, or pass align={{keras_name: torch_name}}."
        )
    return report


def assert_match(a, b, inputs, **kwargs) -> Report:
    """:func:`compare`, raising ``AssertionError`` with the per-layer table when a layer differs."""
    __tracebackhide__ = True  # pytest: show the table, not this frame
    report = compare(a, b, inputs, **kwargs)
    if not report.ok:
        raise AssertionError(f"activations differ\n{report}")
    return report
