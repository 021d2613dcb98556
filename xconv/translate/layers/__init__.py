"""One module per layer family; importing a module registers its converters."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ..spec import CF, KLayer


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


def channels_last_only(layer: KLayer) -> None:
    if layer.config.get("data_format", "channels_last") not in (None, "channels_last"):
        raise UnsupportedLayerError(
            f"Layer '{layer.keras_name}' ({layer.class_name}) uses data_format='{layer.config['data_format']}'; "
            f"xconv translates channels_last Keras models. Rebuild the layer with data_format='channels_last'."
        )


def fmt(value) -> str:
    """A Python literal for generated code: tuples stay tuples, floats keep every digit."""
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else f'float("{value}")'
    if isinstance(value, (list, tuple)):
        inner = ", ".join(fmt(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)
