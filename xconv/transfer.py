"""Copy weights between a Keras model and its PyTorch twin, either way, checking every shape.

>>> from xconv import zoo
>>> k = zoo.build("two_conv", "keras")            # doctest: +SKIP
>>> t = zoo.build("two_conv", "torch")            # doctest: +SKIP
>>> manifest = transfer_weights(k, t)             # doctest: +SKIP
>>> manifest.entries[0].transform                 # doctest: +SKIP
'permute (3, 2, 0, 1)'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from . import layouts
from .errors import BadInputError, MismatchedModelsError
from .frameworks import framework_of
from .registry import LayerContext, family_for_keras

__all__ = ["transfer_weights", "Manifest", "TransferEntry"]


@dataclass(frozen=True)
class TransferEntry:
    source: str
    target: str
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    transform: str


@dataclass
class Manifest:
    """What was copied where, and how: one entry per tensor."""

    direction: str
    matched_by: str
    entries: list[TransferEntry] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"direction": self.direction, "matched_by": self.matched_by, "entries": [asdict(e) for e in self.entries]}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)


def _pair(keras_layers, torch_modules):
    k_names = [l.name for l in keras_layers]
    t_names = [n for n, _ in torch_modules]
    if set(k_names) == set(t_names):
        by_name = dict(torch_modules)
        return [(l, n, by_name[n]) for l, n in zip(keras_layers, k_names)], "name"
    if len(k_names) == len(t_names):
        return [(l, n, m) for l, (n, m) in zip(keras_layers, torch_modules)], "order"
    only_k = [n for n in k_names if n not in t_names]
    only_t = [n for n in t_names if n not in k_names]
    raise MismatchedModelsError(
        f"The models do not line up: the Keras model has {len(k_names)} layers with weights, the PyTorch module "
        f"{len(t_names)} modules with weights, and their names differ (only in Keras: {only_k[:8]}; only in "
        f"PyTorch: {only_t[:8]}). Give the twin the same layer names, or the same number of weighted layers in order."
    )


def _transform(kind: str, key: str, ctx: LayerContext, rank: int, to: str) -> str:
    if key not in ("kernel", "weight"):
        return "copy"
    if kind in ("conv", "transposed"):
        return f"permute {layouts.kernel_permutation(rank, to)}"
    if kind == "dense":
        if ctx.flatten_of is not None:
            return f"transpose + flatten order channels-last {ctx.flatten_of} -> channels-first"
        return "transpose"
    return "copy"


def _check_config(layer, module) -> None:
    eps = getattr(layer, "epsilon", None)
    if eps is not None and hasattr(module, "eps") and not np.isclose(eps, module.eps, rtol=1e-6, atol=0):
        raise MismatchedModelsError(
            f"Keras layer '{layer.name}' has epsilon={eps}, but PyTorch module '{type(module).__name__}' has "
            f"eps={module.eps}; inference would differ. Build the torch layer with eps={eps}."
        )


def transfer_weights(src, dst) -> Manifest:
    """Copy every weight from ``src`` to ``dst`` (a Keras model and a torch module, either order).

    Layers with weights are matched by name when both sides have the same names, else by
    order. Every pairing and shape is checked before anything is written, so a mismatch
    leaves ``dst`` untouched; the error names the first layer that does not fit.
    """
    from .frameworks import keras_side as ks
    from .frameworks import torch_side as ts

    kinds = (framework_of(src), framework_of(dst))
    if kinds == ("keras", "torch"):
        kmodel, tmodule, to = src, dst, "torch"
    elif kinds == ("torch", "keras"):
        kmodel, tmodule, to = dst, src, "keras"
    else:
        raise BadInputError(
            f"transfer_weights copies between a Keras model and a PyTorch module; received {type(src).__name__} "
            f"and {type(dst).__name__}."
        )
    pairs, matched_by = _pair(ks.weighted_layers(kmodel), ts.weighted_modules(tmodule))
    manifest = Manifest(direction=f"{kinds[0]}->{kinds[1]}", matched_by=matched_by)
    plan = []
    for layer, tname, module in pairs:
        family = family_for_keras(type(layer).__name__, layer.name)
        torch_types = family.torch_types or ("Conv1d", "Conv2d", "Conv3d")  # depthwise: a grouped Conv
        if type(module).__name__ not in torch_types:
            raise MismatchedModelsError(
                f"Keras layer '{layer.name}' ({type(layer).__name__}) was paired by {matched_by} with PyTorch module "
                f"'{tname}' ({type(module).__name__}), which is not one of {torch_types}."
            )
        _check_config(layer, module)
        ctx = LayerContext(
            layer.name, flatten_of=ks.flatten_source_shape(layer), depth_multiplier=int(getattr(layer, "depth_multiplier", 1))
        )
        k_arrays, t_arrays = ks.layer_weights(layer), ts.module_arrays(module)
        if to == "torch":
            src_arrays, dst_arrays, new = k_arrays, t_arrays, family.to_torch(k_arrays, ctx)
            src_name, dst_name = layer.name, tname
        else:
            src_arrays, dst_arrays, new = t_arrays, k_arrays, family.to_keras(t_arrays, ctx)
            src_name, dst_name = tname, layer.name
        if set(new) != set(dst_arrays):
            raise MismatchedModelsError(
                f"Layer '{layer.name}': the source has tensors {sorted(src_arrays)} but the target has "
                f"{sorted(dst_arrays)} (a bias on one side only? check use_bias / bias=)."
            )
        to_src = family.names if to == "torch" else {v: k for k, v in family.names.items()}
        for key, value in new.items():
            want = dst_arrays[key].shape
            if value.shape != want:
                raise MismatchedModelsError(
                    f"Layer '{layer.name}': '{key}' converts to shape {value.shape}, but the target expects {want}. "
                    f"Check the layer's channels, kernel size and (after a Flatten) the feature shape."
                )
            skey = to_src.get(key, key)
            rank = np.ndim(value) - 2
            manifest.entries.append(
                TransferEntry(
                    f"{src_name}.{skey}", f"{dst_name}.{key}", tuple(src_arrays[skey].shape), tuple(want),
                    _transform(family.kind, skey, ctx, rank, to),
                )
            )  # fmt: skip
        plan.append((layer, module, new))
    for layer, module, new in plan:
        if to == "torch":
            ts.set_module_arrays(module, new)
        else:
            ks.set_layer_weights(layer, new)
    return manifest
