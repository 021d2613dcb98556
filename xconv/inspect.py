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
    """One weight of one layer in both layouts: names, shapes, parameter count, axis meanings."""

    layer: str
    keras_type: str
    torch_type: str
    keras_name: str
    torch_name: str
    keras_shape: tuple[int, ...]
    torch_shape: tuple[int, ...]
    keras_axes: str
    torch_axes: str
    dtype: str
    params: int


def _axes(shape, layout: str, kind: str, flatten_of=None) -> str:
    if len(shape) == 1:
        return f"{shape[0]} channels" if kind != "dense" else f"{shape[0]} units"
    text = describe_kernel_axes(shape, layout, kind)
    if kind == "dense" and flatten_of:
        # the rows (Keras) / columns (torch) of a Dense after Flatten follow the flatten order
        order = tuple(flatten_of) if layout == "keras" else (flatten_of[-1], *flatten_of[:-1])
        which = "channels-last" if layout == "keras" else "channels-first"
        text = text.replace(" inputs", f" inputs (flattened {order}, {which})")
    return text


def _pair_types(family, torch_type: str | None = None, keras_type: str | None = None) -> tuple[str, str]:
    """The counterpart type name: Conv3d <-> Conv3D (same rank), BatchNorm2d -> BatchNormalization."""
    if keras_type is not None:
        i = family.keras_types.index(keras_type)
        return keras_type, family.torch_types[i] if len(family.torch_types) == len(family.keras_types) else family.torch_types[0]
    i = family.torch_types.index(torch_type)
    return family.keras_types[i] if len(family.torch_types) == len(family.keras_types) else family.keras_types[0], torch_type


def describe(model) -> list[TensorInfo]:
    """One :class:`TensorInfo` per weight tensor of a Keras model or a PyTorch module."""
    rows: list[TensorInfo] = []
    if framework_of(model) == "torch":
        from .frameworks import torch_side as ts

        flatten_of = getattr(model, "xconv_flatten_of", {})  # zoo twins know their Flatten shapes
        for name, module in ts.weighted_modules(model):
            family = family_for_torch(type(module).__name__, name)
            ctx = LayerContext(name, flatten_of=flatten_of.get(name))
            t_arrays = ts.module_arrays(module)
            k_arrays = family.to_keras(t_arrays, ctx)
            types = _pair_types(family, torch_type=type(module).__name__)
            for t_key, t_val in t_arrays.items():
                k_key = family.names.get(t_key, t_key)
                rows.append(_row(name, types, family.kind, ctx, k_key, t_key, k_arrays[k_key], t_val))
    else:
        from .frameworks import keras_side as ks

        for layer in ks.weighted_layers(model):
            family = family_for_keras(type(layer).__name__, layer.name)
            ctx = LayerContext(layer.name, flatten_of=ks.flatten_source_shape(layer))
            k_arrays = ks.layer_weights(layer)
            t_arrays = family.to_torch(k_arrays, ctx)
            types = _pair_types(family, keras_type=type(layer).__name__)
            to_torch = {v: k for k, v in family.names.items()}
            for k_key, k_val in k_arrays.items():
                t_key = to_torch.get(k_key, k_key)
                rows.append(_row(layer.name, types, family.kind, ctx, k_key, t_key, k_val, t_arrays[t_key]))
    return rows


def describe_file(path) -> list[TensorInfo]:
    """Rows for every tensor of a weight file; a Keras model file is described exactly."""
    from . import layouts
    from .files import read_tensors

    tf = read_tensors(path)
    if tf.model is not None:
        return describe(tf.model)
    rows = []
    for name in tf.tensors:
        value = tf.tensors[name]
        shape = tuple(value.shape)
        kind = "conv" if len(shape) >= 3 else "dense" if len(shape) == 2 else "vector"
        dummy = np.empty(shape, dtype=np.uint8)  # only the shape moves
        if kind == "conv":
            other = (layouts.conv_kernel_to_torch if tf.layout == "keras" else layouts.conv_kernel_to_keras)(dummy).shape
        elif kind == "dense":
            other = shape[::-1]
        else:
            other = shape
        k_shape, t_shape = (shape, other) if tf.layout == "keras" else (other, shape)
        main_kind = kind if kind != "vector" else "vector"
        rows.append(
            TensorInfo(
                layer=name, keras_type="", torch_type="", keras_name="", torch_name="",
                keras_shape=tuple(k_shape), torch_shape=tuple(t_shape),
                keras_axes=_axes(k_shape, "keras", main_kind), torch_axes=_axes(t_shape, "torch", main_kind),
                dtype=str(value.dtype), params=int(np.prod(shape)),
            )
        )  # fmt: skip
    return rows


def _row(layer, types, kind, ctx, k_key, t_key, k_val, t_val) -> TensorInfo:
    main = k_key in ("kernel", "depthwise_kernel", "pointwise_kernel")
    axes_kind = kind if main or kind == "dense" else "vector"
    return TensorInfo(
        layer=layer,
        keras_type=types[0],
        torch_type=types[1],
        keras_name=k_key,
        torch_name=t_key,
        keras_shape=tuple(k_val.shape),
        torch_shape=tuple(t_val.shape),
        keras_axes=_axes(k_val.shape, "keras", axes_kind, ctx.flatten_of),
        torch_axes=_axes(t_val.shape, "torch", axes_kind, ctx.flatten_of),
        dtype=str(t_val.dtype),
        params=int(np.prod(k_val.shape)),
    )


def format_table(rows: list[TensorInfo]) -> str:
    """Two lines per tensor: its Keras shape and its PyTorch shape, each with what the axes mean."""
    lw = max([len("layer"), *(len(r.layer) for r in rows)])
    tw = max([len("type"), *(len(t) for r in rows for t in (r.keras_type, r.torch_type))])
    nw = max([len("tensor"), *(len(n) for r in rows for n in (r.keras_name, r.torch_name))])
    sw = max([len("shape"), *(len(str(s)) for r in rows for s in (r.keras_shape, r.torch_shape))])
    out = [f"{'layer':<{lw}}  {'type':<{tw}}  {'side':<7}  {'tensor':<{nw}}  {'shape':<{sw}}  {'params':>11}  meaning"]
    out.append("-" * len(out[0]) + "-" * 40)
    for r in rows:
        out.append(
            f"{r.layer:<{lw}}  {r.keras_type:<{tw}}  {'Keras':<7}  {r.keras_name:<{nw}}  {str(r.keras_shape):<{sw}}  "
            f"{r.params:>11,}  {r.keras_axes}"
        )
        out.append(
            f"{'':<{lw}}  {r.torch_type:<{tw}}  {'PyTorch':<7}  {r.torch_name:<{nw}}  {str(r.torch_shape):<{sw}}  "
            f"{'':>11}  {r.torch_axes}"
        )
    total = sum(r.params for r in rows)
    out.append(f"Total parameters: {total:,} ({len({r.layer for r in rows})} layers with weights)")
    return "\n".join(out)


def to_json(rows: list[TensorInfo]) -> str:
    """``describe``'s rows and the total parameter count as JSON."""
    return json.dumps(
        {"tensors": [asdict(r) for r in rows], "total_params": sum(r.params for r in rows)}, indent=2
    )
