"""One module per layer family; importing a module registers its converters."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ..spec import CF, CL, KERAS, KLayer, Layout, Piece


def torch_dim(keras_axis: int, rank: int, layout_kind: str) -> int:
    """A Keras axis (of a rank-``rank`` tensor, batch included) as a dim of the torch tensor."""
    axis = keras_axis % rank
    if layout_kind != CF or axis == 0:
        return axis
    return 1 if axis == rank - 1 else axis + 1


def single_axis(layer: KLayer, default: int = -1) -> int:
    """The layer's ``axis`` config as one torch dim (a one-item list is accepted)."""
    axis = layer.config.get("axis", default)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise UnsupportedLayerError(f"Layer '{layer.keras_name}' ({layer.class_name}) works over several axes {axis}; not supported yet.")
        axis = axis[0]
    return torch_dim(axis, len(layer.input_shapes[0]), layer.in_layouts[0].kind)


def channels_first(layer: KLayer) -> bool:
    """Does the layer use ``data_format='channels_first'`` (Keras maps (N, C, *spatial), torch's order)?"""
    fmt_ = layer.config.get("data_format") or "channels_last"
    if fmt_ not in ("channels_last", "channels_first"):
        raise UnsupportedLayerError(f"Layer '{layer.keras_name}' ({layer.class_name}) has an unknown data_format {fmt_!r}.")
    return fmt_ == "channels_first"


def channels_of(shape: tuple, first: bool):
    """The channel count of a Keras map shape (batch included)."""
    return shape[1] if first else shape[-1]


def spatial_of(shape: tuple, first: bool) -> tuple:
    """The spatial sizes of a Keras map shape (batch included)."""
    return tuple(shape[2:] if first else shape[1:-1])


def map_piece(layer: KLayer, steps, out_rank: int) -> Piece:
    """A map layer's modules, placed for its data format: channels_last layers take and give
    channels-first maps; channels_first layers run on Keras' own (already channels-first) order."""
    if channels_first(layer) and out_rank >= 3:
        return Piece(tuple(steps), Layout(CL), inputs_as=(KERAS,) * max(1, len(layer.input_shapes)))
    if channels_first(layer):  # a global pooling to (N, C)
        return Piece(tuple(steps), Layout.for_rank(out_rank), inputs_as=(KERAS,) * max(1, len(layer.input_shapes)))
    return Piece(tuple(steps), Layout.for_rank(out_rank))


def torch_weights(layer: KLayer, arrays=None, keras_type: str | None = None, **context) -> dict:
    """The layer's arrays (Keras short names) as torch's, through its weight family (xconv/weights):
    the one map that transfer_weights, convert and inspect use too."""
    from ...weights import LayerContext, family_for_keras

    family = family_for_keras(keras_type or layer.class_name, layer.keras_name)
    return family.to_torch(layer.weights if arrays is None else arrays, LayerContext(layer.keras_name, **context))


def fmt(value) -> str:
    """A Python literal for generated code: tuples stay tuples, floats keep every digit."""
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f'float("{value}")'
    if isinstance(value, (list, tuple)):
        inner = ", ".join(fmt(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)
