"""Flatten, Reshape, Permute, RepeatVector, padding, cropping and up-sampling of feature maps."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ...padding import keras_pairs, torch_pad_arg
from ..converters import converter
from ..spec import CF, CL, FLAT, KERAS, PLAIN, KLayer, Layout, Piece, Step
from . import channels_first, fmt, map_piece


@converter("Flatten", family="reshape", layout_free=True)
def _flatten(layer: KLayer) -> Piece:
    src = layer.in_layouts[0]
    shape = tuple(layer.input_shapes[0][1:])
    if channels_first(layer) and len(shape) >= 2:
        # Keras moves the channels (axis 1) last, then flattens: on Keras' own order, what FlattenChannelsLast does
        return Piece((Step("", "FlattenChannelsLast()", helpers=("FlattenChannelsLast",)),), Layout(PLAIN), inputs_as=(KERAS,))
    if src.kind != CF:
        # Keras' order already (vectors, sequences, channels_first maps): its flatten is torch's
        return Piece((Step("", "nn.Flatten()"),), Layout(PLAIN) if src.kind == CL else src, inputs_as=(None,))
    if layer.feeds_only_dense and all(n is not None for n in shape):
        # torch's own order; the Dense after it takes permuted rows, so no transpose runs
        return Piece((Step("", "nn.Flatten()"),), Layout(FLAT, tuple(int(n) for n in shape)), inputs_as=(None,))
    return Piece((Step("", "FlattenChannelsLast()", helpers=("FlattenChannelsLast",)),), Layout(PLAIN), inputs_as=(None,))


@converter("Reshape", family="reshape", layout_free=True)
def _reshape(layer: KLayer) -> Piece:
    target = tuple(int(n) if n is not None else -1 for n in layer.output_shape[1:])
    kind = layer.in_layouts[0].kind
    if kind == CL:  # Keras' own order in (after channels_first layers): it stays so
        code = f"Reshape({fmt(target)}, channels_first_in=False, channels_first_out=False)"
        return Piece((Step("", code, helpers=("Reshape",)),), Layout(CL if len(target) >= 2 else PLAIN), inputs_as=(None,))
    code = f"Reshape({fmt(target)}, channels_first_in={kind == CF})"
    return Piece((Step("", code, helpers=("Reshape",)),), Layout.for_rank(len(layer.output_shape)), inputs_as=(None,))


@converter("Permute", family="reshape")
def _permute(layer: KLayer) -> Piece:
    dims = tuple(int(d) for d in layer.config["dims"])
    if len(dims) < 2:
        raise UnsupportedLayerError(f"Permute '{layer.keras_name}' needs at least two axes to permute.")
    return Piece((Step("", f"Permute({fmt(dims)})", helpers=("Permute",)),), Layout.for_rank(len(layer.output_shape)))


@converter("RepeatVector", family="reshape")
def _repeat(layer: KLayer) -> Piece:
    return Piece((Step("", f"RepeatVector({int(layer.config['n'])})", helpers=("RepeatVector",)),), Layout(CF))


@converter("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", family="reshape")
def _zeropad(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0]) - 2
    pads = keras_pairs(layer.config["padding"], rank)
    return map_piece(layer, [Step("", f"nn.ZeroPad{rank}d({fmt(torch_pad_arg(pads))})")], rank + 2)


@converter("Cropping1D", "Cropping2D", "Cropping3D", family="reshape")
def _crop(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0]) - 2
    crops = keras_pairs(layer.config["cropping"], rank, "cropping")
    return map_piece(layer, [Step("", f"Crop({fmt(crops)})", helpers=("Crop",))], rank + 2)


@converter("UpSampling1D", "UpSampling2D", "UpSampling3D", family="reshape")
def _upsample(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0]) - 2
    c = layer.config
    size = c.get("size", 2)
    size = (size,) * rank if isinstance(size, int) else tuple(size)
    mode = c.get("interpolation", "nearest")
    if mode == "nearest":
        code = f'nn.Upsample(scale_factor={fmt(tuple(float(s) for s in size))}, mode="nearest")'
    elif mode == "bilinear" and rank == 2:
        # TF resizes with half-pixel centres, as torch does with align_corners=False
        code = f'nn.Upsample(scale_factor={fmt(tuple(float(s) for s in size))}, mode="bilinear", align_corners=False)'
    else:
        raise UnsupportedLayerError(f"UpSampling '{layer.keras_name}' with interpolation '{mode}' is not supported; use nearest or bilinear (2D).")
    return map_piece(layer, [Step("", code)], rank + 2)
