"""What every weight of a model is, in both layouts: ``xconv inspect``'s library side.

>>> from xconv import zoo
>>> rows = describe(zoo.build("unet_encoder", "torch"))          # doctest: +SKIP
>>> [r for r in rows if r.layer == "conv5_2"][0].keras_axes       # doctest: +SKIP
'3x3 window x 512 input channels x 512 filters'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from .frameworks import framework_of
from .layouts import describe_kernel_axes
from .registry import LayerContext, family_for_keras, family_for_torch

__all__ = ["TensorInfo", "describe", "format_table", "to_json"]


@dataclass(frozen=True)
class TensorInfo:
    layer: str
    type: str
    keras_name: str
    torch_name: str
    keras_shape: tuple[int, ...]
    torch_shape: tuple[int, ...]
    keras_axes: str
    torch_axes: str
    dtype: str
    params: int


def _axes(shape, layout: str, kind: str) -> str:
    if len(shape) == 1:
        return f"{shape[0]} channels" if kind != "dense" else f"{shape[0]} units"
    return describe_kernel_axes(shape, layout, kind)


def describe(model) -> list[TensorInfo]:
    """One :class:`TensorInfo` per weight tensor of a Keras model or a PyTorch module."""
    rows: list[TensorInfo] = []
    if framework_of(model) == "torch":
        from .frameworks import torch_side as ts

        for name, module in ts.weighted_modules(model):
            family = family_for_torch(type(module).__name__, name)
            t_arrays = ts.module_arrays(module)
            k_arrays = family.to_keras(t_arrays, LayerContext(name))
            for t_key, t_val in t_arrays.items():
                k_key = family.names.get(t_key, t_key)
                rows.append(_row(name, type(module).__name__, family.kind, k_key, t_key, k_arrays[k_key], t_val))
    else:
        from .frameworks import keras_side as ks

        for layer in ks.weighted_layers(model):
            family = family_for_keras(type(layer).__name__, layer.name)
            k_arrays = ks.layer_weights(layer)
            t_arrays = family.to_torch(k_arrays, LayerContext(layer.name))
            to_torch = {v: k for k, v in family.names.items()}
            for k_key, k_val in k_arrays.items():
                t_key = to_torch.get(k_key, k_key)
                rows.append(_row(layer.name, type(layer).__name__, family.kind, k_key, t_key, k_val, t_arrays[t_key]))
    return rows


def _row(layer, type_name, kind, k_key, t_key, k_val, t_val) -> TensorInfo:
    main = k_key in ("kernel", "depthwise_kernel", "pointwise_kernel")
    return TensorInfo(
        layer=layer,
        type=type_name,
        keras_name=k_key,
        torch_name=t_key,
        keras_shape=tuple(k_val.shape),
        torch_shape=tuple(t_val.shape),
        keras_axes=_axes(k_val.shape, "keras", kind if main else "vector"),
        torch_axes=_axes(t_val.shape, "torch", kind if main else "vector"),
        dtype=str(t_val.dtype),
        params=int(np.prod(k_val.shape)),
    )


def format_table(rows: list[TensorInfo]) -> str:
    """Two lines per tensor: its Keras shape and its PyTorch shape, each with what the axes mean."""
    lw = max([len("layer"), *(len(r.layer) for r in rows)])
    tw = max([len("type"), *(len(r.type) for r in rows)])
    nw = max([len("tensor"), *(len(n) for r in rows for n in (r.keras_name, r.torch_name))])
    sw = max([len("shape"), *(len(str(s)) for r in rows for s in (r.keras_shape, r.torch_shape))])
    out = [f"{'layer':<{lw}}  {'type':<{tw}}  {'side':<7}  {'tensor':<{nw}}  {'shape':<{sw}}  {'params':>11}  meaning"]
    out.append("-" * len(out[0]) + "-" * 40)
    for r in rows:
        out.append(
            f"{r.layer:<{lw}}  {r.type:<{tw}}  {'Keras':<7}  {r.keras_name:<{nw}}  {str(r.keras_shape):<{sw}}  "
            f"{r.params:>11,}  {r.keras_axes}"
        )
        out.append(
            f"{'':<{lw}}  {'':<{tw}}  {'PyTorch':<7}  {r.torch_name:<{nw}}  {str(r.torch_shape):<{sw}}  "
            f"{'':>11}  {r.torch_axes}"
        )
    total = sum(r.params for r in rows)
    out.append(f"Total parameters: {total:,} ({len({r.layer for r in rows})} layers with weights)")
    return "\n".join(out)


def to_json(rows: list[TensorInfo]) -> str:
    return json.dumps(
        {"tensors": [asdict(r) for r in rows], "total_params": sum(r.params for r in rows)}, indent=2
    )
