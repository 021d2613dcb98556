"""TensorFlow 'same' and 'causal' padding as explicit ``(before, after)`` pairs, for any rank.

TF pads ``total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)`` with ``out = ceil(n / s)`` and
puts the odd element *after*; torch's ``padding=`` is symmetric, so an even kernel or a
stride above one needs an explicit pad in front of the torch layer.

>>> same_padding(25, kernel=4)          # conv4_2 of unet_encoder: one more after than before
(1, 2)
>>> same_padding(224, kernel=3, stride=4)  # conv3d_a: no padding at all
(0, 0)
>>> torch_pad_arg([(1, 2), (0, 1)])      # F.pad wants the last axis first
(0, 1, 1, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from .errors import LayoutError

__all__ = [
    "same_padding",
    "same_pads",
    "causal_padding",
    "conv_output_size",
    "is_symmetric",
    "torch_pad_arg",
    "as_tuple",
]

Pads = tuple[tuple[int, int], ...]
IntOrSeq = Union[int, Sequence[int]]


def as_tuple(value: IntOrSeq, rank: int, what: str = "value") -> tuple[int, ...]:
    """``3 -> (3, 3)`` for rank 2; a sequence must already have ``rank`` items."""
    if isinstance(value, int):
        return (value,) * rank
    out = tuple(int(v) for v in value)
    if len(out) != rank:
        raise LayoutError(f"{what} {tuple(value)} has {len(out)} items; a rank-{rank} layer needs {rank}.")
    return out


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """``(before, after)`` padding that TensorFlow's ``padding='same'`` applies along one axis."""
    if min(size, kernel, stride, dilation) < 1:
        raise LayoutError(
            f"same_padding needs positive sizes; received size={size}, kernel={kernel}, "
            f"stride={stride}, dilation={dilation}."
        )
    out = -(-size // stride)  # ceil
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def same_pads(
    spatial_shape: Sequence[int], kernel_size: IntOrSeq, strides: IntOrSeq = 1, dilation: IntOrSeq = 1
) -> Pads:
    """Per spatial axis ``(before, after)`` pairs for TF 'same' padding."""
    rank = len(spatial_shape)
    k = as_tuple(kernel_size, rank, "kernel_size")
    s = as_tuple(strides, rank, "strides")
    d = as_tuple(dilation, rank, "dilation_rate")
    return tuple(same_padding(n, ki, si, di) for n, ki, si, di in zip(spatial_shape, k, s, d))


def causal_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """Conv1D 'causal': everything on the left."""
    return (kernel - 1) * dilation, 0


def conv_output_size(size: int, kernel: int, stride: int = 1, dilation: int = 1, padding: str = "valid") -> int:
    """Output length of a conv or pool along one axis for Keras' 'valid' / 'same' / 'causal'."""
    if padding == "same":
        return -(-size // stride)
    if padding == "causal":
        size = size + (kernel - 1) * dilation
    elif padding != "valid":
        raise LayoutError(f"Unknown padding {padding!r}; expected 'valid', 'same' or 'causal'.")
    return (size - (kernel - 1) * dilation - 1) // stride + 1


def is_symmetric(pads: Pads) -> bool:
    """Each axis pads as much before as after (torch's ``padding=`` can express it)."""
    return all(b == a for b, a in pads)


def torch_pad_arg(pads: Pads) -> tuple[int, ...]:
    """``torch.nn.functional.pad`` order: last axis first, ``(before, after)`` for each."""
    return tuple(p for pair in reversed(pads) for p in pair)
