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
from .errors import LayoutError, UnsupportedLayerError
from .weights import LayerContext, family_for_keras, family_for_torch

__all__ = ["TensorInfo", "describe", "describe_file", "format_table", "to_json"]


@dataclass(frozen=True)
class TensorInfo:
    """One weight of one layer in both layouts: names, shapes, parameter count, axis meanings.

    ``keras_*`` and ``torch_*`` are the two sides: the layer or module type, the tensor's short
    name (``kernel`` / ``weight``), its shape, and what each axis means in words (``"3x3 window
    x 4 input channels x 6 filters"``). ``params`` counts the tensor's elements once. A side
    xconv cannot convert reads ``(not converted)`` with the reason.
    """

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


def _pair_types(family, torch_type: str | None = None, keras_type: str | None = None, spatial_rank: int | None = None) -> tuple[str, str]:
    """The counterpart type name: Conv3d <-> Conv3D (same rank), BatchNorm2d -> BatchNormalization.

    A family with one Keras type and one torch type per rank (BatchNormalization: BatchNorm1d,
    2d, 3d) takes the torch type of ``spatial_rank``, the spatial axes of the layer's input.
    """
    if keras_type is not None:
        i = family.keras_types.index(keras_type)
        torch_types = family.torch_types or family.pairs_with  # Bidirectional: an nn.LSTM/GRU/RNN's
        if len(torch_types) == len(family.keras_types):
            return keras_type, torch_types[i]
        by_rank = [t for t in torch_types if t.endswith(f"{max(spatial_rank or 1, 1)}d")]
        return keras_type, by_rank[0] if by_rank else torch_types[0]
    i = family.torch_types.index(torch_type)
    return family.keras_types[i] if len(family.torch_types) == len(family.keras_types) else family.keras_types[0], torch_type


def _spatial_rank(layer) -> int | None:
    """Spatial axes of a built Keras layer's input: 2 for (N, H, W, C), 1 for (N, L, C) and (N, C)."""
    try:
        shape = layer.input.shape
    except (AttributeError, ValueError):  # not called in a graph, or called several times
        return None
    return max(len(shape) - 2, 1) if shape is not None else None


def describe(model) -> list[TensorInfo]:
    """One :class:`TensorInfo` per weight tensor of a Keras model or a PyTorch module, in layer order.

    A layer no weight family knows is still listed, tensor by tensor, on its own side; its
    other side reads ``(not converted)`` with the reason.
    """
    rows: list[TensorInfo] = []
    if framework_of(model) == "torch":
        from .frameworks import torch_side as ts

        flatten_of = getattr(model, "xconv_flatten_of", {})  # zoo twins know their Flatten shapes
        for name, module in ts.weighted_modules(model):
            t_arrays = ts.module_arrays(module)
            ctx = LayerContext(name, flatten_of=flatten_of.get(name), num_heads=getattr(module, "num_heads", None))
            try:
                family = family_for_torch(type(module).__name__, name)
                k_arrays = family.to_keras(t_arrays, ctx)
            except (UnsupportedLayerError, LayoutError) as exc:
                rows.extend(_unconverted(name, type(module).__name__, t_arrays, "torch", exc))
                continue
            types = _pair_types(family, torch_type=type(module).__name__)
            for t_key, t_val in t_arrays.items():
                k_key = family.names.get(t_key, t_key)
                k_val = k_arrays.get(k_key)
                rows.append(_row(name, types, family.kind, ctx, k_key, t_key, k_val if k_val is not None else np.empty(0), t_val))
    else:
        from .frameworks import keras_side as ks

        for layer in ks.weighted_layers(model):
            k_arrays = ks.layer_weights(layer)
            heads = getattr(layer, "num_heads", None)
            ctx = LayerContext(layer.name, flatten_of=ks.flatten_source_shape(layer), num_heads=int(heads) if heads else None)
            try:
                family = family_for_keras(type(layer).__name__, layer.name)
                t_arrays = family.to_torch(k_arrays, ctx)
            except (UnsupportedLayerError, LayoutError) as exc:
                rows.extend(_unconverted(layer.name, type(layer).__name__, k_arrays, "keras", exc))
                continue
            types = _pair_types(family, keras_type=type(layer).__name__, spatial_rank=_spatial_rank(layer))
            for k_key, k_val in k_arrays.items():
                # names can be many-to-one (an LSTM's two biases, attention's stacked projections)
                found = [t for t, k in family.names.items() if k == k_key and t in t_arrays]
                t_key = found[0] if found else k_key
                t_val = t_arrays.get(t_key)
                rows.append(_row(layer.name, types, family.kind, ctx, k_key, t_key if t_val is not None else "", k_val, t_val if t_val is not None else np.empty(0)))
    return rows


def _unconverted(layer, type_name, arrays, side, exc) -> list[TensorInfo]:
    """Rows for a layer no weight family converts: its own side only, the reason on the other."""
    reason = str(exc).split(". ")[0]
    out = []
    for key, value in arrays.items():
        shape = tuple(value.shape)
        mine = dict(type=type_name, name=key, shape=shape, axes="x".join(map(str, shape)) or "scalar")
        other = dict(type="(not converted)", name="", shape=(), axes=reason)
        k, t = (mine, other) if side == "keras" else (other, mine)
        out.append(
            TensorInfo(
                layer=layer, keras_type=k["type"], torch_type=t["type"], keras_name=k["name"], torch_name=t["name"],
                keras_shape=k["shape"], torch_shape=t["shape"], keras_axes=k["axes"], torch_axes=t["axes"],
                dtype=str(value.dtype), params=int(np.prod(shape)),
            )
        )  # fmt: skip
    return out


def describe_file(path) -> list[TensorInfo]:
    """One :class:`TensorInfo` per tensor of a weight file (``.pt``, ``.safetensors``, ``.weights.h5``,
    ``.onnx`` ...; see :func:`xconv.files.read_tensors`).

    A Keras model file is described exactly, as :func:`describe` does; a file of bare tensors
    has no layer types, so each tensor's other layout follows its rank (conv if rank >= 3,
    dense if 2, else as it is). Reading needs no framework for ``.safetensors``.
    """
    from . import layouts
    from .files import read_tensors
    from .files.by_rank import kind_by_rank

    tf = read_tensors(path)
    if tf.model is not None:
        return describe(tf.model)
    rows = []
    for name in tf.tensors:
        value = tf.tensors[name]
        shape = tuple(value.shape)
        kind = kind_by_rank(shape)
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
    n = len({r.layer for r in rows})
    out.append(f"Total parameters: {total:,} ({n} layer{'' if n == 1 else 's'} with weights)")
    return "\n".join(out)


def to_json(rows: list[TensorInfo]) -> str:
    """``describe``'s rows and the total parameter count as JSON."""
    return json.dumps(
        {"tensors": [asdict(r) for r in rows], "total_params": sum(r.params for r in rows)}, indent=2
    )
