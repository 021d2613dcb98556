"""Max and average pooling of every rank ('valid' and 'same'), and global pooling."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ...padding import as_tuple, is_symmetric, same_pads, torch_pad_arg
from ..converters import converter
from ..spec import KLayer, Piece, Step
from . import channels_first, fmt, map_piece, spatial_of
from .conv import padding_steps


def _geometry(layer: KLayer, rank: int):
    c = layer.config
    k = as_tuple(c["pool_size"], rank, "pool_size")
    s = as_tuple(c.get("strides") or c["pool_size"], rank, "strides")
    return k, s


@converter("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", family="pool")
def _maxpool(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0]) - 2
    k, s = _geometry(layer, rank)
    pre, _ = padding_steps(layer, rank, k, s, (1,) * rank, value=float("-inf"))  # max-pool pads with -inf
    return map_piece(layer, pre + [Step("", f"nn.MaxPool{rank}d({fmt(k)}, stride={fmt(s)})")], rank + 2)


@converter("AveragePooling1D", "AveragePooling2D", "AveragePooling3D", family="pool")
def _avgpool(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0]) - 2
    k, s = _geometry(layer, rank)
    if layer.config.get("padding", "valid") == "valid":
        return map_piece(layer, [Step("", f"nn.AvgPool{rank}d({fmt(k)}, stride={fmt(s)})")], rank + 2)
    spatial = spatial_of(layer.input_shapes[0], channels_first(layer))
    if any(n is None for n in spatial):
        raise UnsupportedLayerError(f"AveragePooling '{layer.keras_name}' with 'same' padding needs a known input size.")
    pads = same_pads(spatial, k, s)
    if is_symmetric(pads) and all(b <= kk // 2 for (b, _), kk in zip(pads, k)):
        # torch leaves symmetric padding out of the count itself
        code = f"nn.AvgPool{rank}d({fmt(k)}, stride={fmt(s)}, padding={fmt(tuple(b for b, _ in pads))}, count_include_pad=False)"
        return map_piece(layer, [Step("", code)], rank + 2)
    code = f"AvgPoolSame({fmt(k)}, {fmt(s)}, {fmt(torch_pad_arg(pads))})"
    return map_piece(layer, [Step("", code, helpers=("AvgPoolSame",))], rank + 2)


@converter(
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    family="pool",
)  # fmt: skip
def _global(layer: KLayer) -> Piece:
    mode = "max" if "Max" in layer.class_name else "avg"
    keepdims = bool(layer.config.get("keepdims", False))
    return map_piece(layer, [Step("", f'GlobalPool("{mode}", {keepdims})', helpers=("GlobalPool",))], len(layer.output_shape))
