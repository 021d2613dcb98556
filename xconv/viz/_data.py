"""Pure NumPy side of the pictures: fetch kernels and activations, arrange and normalise tiles."""

from __future__ import annotations

import numpy as np

from .. import layouts
from ..errors import BadInputError
from ..frameworks import framework_of

NORMALIZE = ("symmetric", "global", "filter")


def kernel_of(source, layer: str | None = None, *, layout: str | None = None) -> np.ndarray:
    """A conv kernel in torch layout ``(out, in, *k)`` from a Keras model, a torch module or an array.

    A raw array needs ``layout='keras'`` or ``layout='torch'``: the shapes alone cannot tell.
    """
    fw = framework_of(source)
    if fw == "unknown":
        array = np.asarray(source)
        if layout not in ("keras", "torch"):
            raise BadInputError(
                f"A raw kernel of shape {array.shape} needs layout='keras' (*k, in, out) or layout='torch' (out, in, *k)."
            )
        if layout == "keras":
            return layouts.conv_kernel_to_torch(array)
        if not 3 <= array.ndim <= 5:
            raise BadInputError(f"A torch conv weight is (out, in, *k) with 1 to 3 window axes; received {array.shape}.")
        return array
    if layer is None:
        raise BadInputError(f"Name the layer whose filters to draw; {_name_of(source)} has these layers with kernels: {kernel_layers(source)}.")
    if fw == "torch":
        modules = dict(source.named_modules())
        if layer not in modules:
            raise BadInputError(f"No module named '{layer}' in {type(source).__name__}. Modules with kernels: {kernel_layers(source)}.")
        weight = getattr(modules[layer], "weight", None)
        if weight is None or weight.dim() < 3:
            raise BadInputError(f"Module '{layer}' ({type(modules[layer]).__name__}) has no conv kernel to draw.")
        return weight.detach().cpu().numpy()
    from ..frameworks import keras_side as ks

    by_name = {l.name: l for l in ks.iter_layers(source)}
    if layer not in by_name:
        raise BadInputError(f"No layer named '{layer}' in Keras model '{source.name}'. Layers with kernels: {kernel_layers(source)}.")
    weights = ks.layer_weights(by_name[layer])
    kernel = weights.get("kernel")
    if kernel is None or kernel.ndim < 3:
        raise BadInputError(f"Layer '{layer}' ({type(by_name[layer]).__name__}) has no conv kernel to draw.")
    return layouts.conv_kernel_to_torch(kernel)


def _name_of(source) -> str:
    return f"Keras model '{source.name}'" if framework_of(source) == "keras" else type(source).__name__


def kernel_layers(source) -> list[str]:
    """Names of the layers (Keras) or modules (torch) of ``source`` that hold a conv kernel."""
    if framework_of(source) == "torch":
        return [n for n, m in source.named_modules() if getattr(m, "weight", None) is not None and m.weight.dim() >= 3]
    from ..frameworks import keras_side as ks

    return [l.name for l in ks.iter_layers(source) if getattr(ks.layer_weights(l).get("kernel"), "ndim", 0) >= 3]


def norm_limits(values: np.ndarray, mode: str) -> tuple[float, float] | None:
    """Colour limits for 'symmetric' (around 0) and 'global' (min-max); None for per-filter."""
    if mode not in NORMALIZE:
        raise BadInputError(f"normalize must be one of {NORMALIZE}; received {mode!r}.")
    if mode == "filter":
        return None
    if mode == "symmetric":
        m = float(np.max(np.abs(values))) or 1.0
        return -m, m
    lo, hi = float(np.min(values)), float(np.max(values))
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def grid_shape(n: int, max_cols: int = 12) -> tuple[int, int]:
    """A near-square grid for ``n`` tiles, wider than tall."""
    cols = min(max_cols, max(1, int(np.ceil(np.sqrt(n * 1.5)))))
    return int(np.ceil(n / cols)), cols
