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
>>> pairs_from_torch_pad((0, 1, 1, 2), rank=3)  # and back, leading axes unpadded
((0, 0), (1, 2), (0, 1))
>>> keras_pairs((1, 2), rank=1), keras_pairs((1, 2), rank=2)  # ZeroPadding1D / 2D arguments
(((1, 2),), ((1, 1), (2, 2)))

Everything here is pure Python; the one other copy of the 'same' formula is the ``SamePad``
module in ``translate/preamble.py``, source code that generated files carry so that they run
without xconv (a test holds the two equal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from .errors import LayoutError

__all__ = [
    "same_padding",
    "same_pads",
    "causal_padding",
    "conv_output_size",
    "is_symmetric",
    "torch_pad_arg",
    "pairs_from_torch_pad",
    "keras_pairs",
    "as_tuple",
    "is_same",
]

Pads = tuple[tuple[int, int], ...]
IntOrSeq = Union[int, Sequence[int]]


def as_tuple(value: IntOrSeq, rank: int, what: str = "value", *, broadcast: bool = False) -> tuple[int, ...]:
    """``3 -> (3, 3)`` for rank 2; a sequence must already have ``rank`` items, or, with
    ``broadcast`` (torch's convention: ``stride=[2]`` in an exported ``max_pool2d``), one."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * rank
    out = tuple(int(v) for v in value)
    if broadcast and len(out) == 1:
        return out * rank
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


def pairs_from_torch_pad(pad: Sequence[int], rank: int | None = None) -> Pads:
    """The inverse of :func:`torch_pad_arg`: ``F.pad``'s list (last axis first) as ``(before,
    after)`` pairs, first axis first; with ``rank``, the axes it leaves out get ``(0, 0)``."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2:
        raise LayoutError(f"A torch pad list has (before, after) pairs; {pad} has an odd length {len(pad)}.")
    pairs = tuple((pad[i], pad[i + 1]) for i in range(0, len(pad), 2))[::-1]
    if rank is None:
        return pairs
    if len(pairs) > rank:
        raise LayoutError(f"The torch pad list {pad} pads {len(pairs)} axes; the tensor has {rank}.")
    return ((0, 0),) * (rank - len(pairs)) + pairs


def keras_pairs(value, rank: int, what: str = "padding") -> Pads:
    """A Keras ``ZeroPaddingND`` / ``CroppingND`` argument as ``(before, after)`` per spatial axis:
    an int (every side), one int per axis (both sides), or a pair per axis; for rank 1 a pair
    is ``(before, after)``."""
    if isinstance(value, (int, np.integer)):
        return ((int(value),) * 2,) * rank
    value = tuple(value)
    if rank == 1 and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return ((int(value[0]), int(value[1])),)
    if len(value) != rank:
        raise LayoutError(f"{what} {value} has {len(value)} items; a rank-{rank} layer needs {rank}.")
    out = []
    for v in value:
        pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
        if len(pair) != 2:
            raise LayoutError(f"{what} {value}: each axis takes an int or a (before, after) pair; received {v!r}.")
        out.append((int(pair[0]), int(pair[1])))
    return tuple(out)


def is_same(spatial_shape: Sequence[int], kernel_size: IntOrSeq, strides: IntOrSeq, dilation: IntOrSeq, pads) -> bool:
    """Explicit per-axis ``pads`` (ints, symmetric, or ``(before, after)`` pairs) are exactly what
    TF's 'same' puts around inputs of ``spatial_shape``: a Keras layer may say ``padding='same'``."""
    rank = len(spatial_shape)
    pads = tuple((p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in pads)
    return same_pads(spatial_shape, kernel_size, strides, dilation) == tuple((int(a), int(b)) for a, b in pads) and len(pads) == rank
