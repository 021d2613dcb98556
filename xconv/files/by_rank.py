"""The layout rule for a tensor file without an architecture: a tensor's rank says what it is.

Rank >= 3 is a conv kernel (permuted), rank 2 a Dense kernel (transposed), anything else a
vector or scalar (copied). A Dense kernel after a Flatten of feature maps also needs its rows
reordered, which only the architecture can tell (``convert --arch``, ``diff --arch``).
convert, diff and describe all use this one rule.
"""

from __future__ import annotations

import numpy as np

from .. import layouts


def kind_by_rank(shape) -> str:
    """'conv', 'dense' or 'vector'."""
    rank = len(shape)
    return "conv" if rank >= 3 else "dense" if rank == 2 else "vector"


def moved_shape(shape, to: str) -> tuple[int, ...]:
    """The shape of a tensor after the move to layout ``to``."""
    shape = tuple(int(s) for s in shape)
    kind = kind_by_rank(shape)
    if kind == "conv":
        return tuple(shape[i] for i in layouts.kernel_permutation(len(shape) - 2, to))
    return shape[::-1] if kind == "dense" else shape


def how_by_rank(rank: int, to: str) -> str:
    """The manifest's name for the move: 'permute (...)', 'transpose' or 'copy'."""
    kind = kind_by_rank(range(rank))
    return f"permute {layouts.kernel_permutation(rank - 2, to)}" if kind == "conv" else "transpose" if kind == "dense" else "copy"


def move_by_rank(array: np.ndarray, to: str) -> tuple[np.ndarray, str]:
    """``array`` in layout ``to`` (a new array, or ``array`` itself when copied) and how it moved."""
    array = np.asarray(array)
    kind = kind_by_rank(array.shape)
    if kind == "conv":
        move = layouts.conv_kernel_to_torch if to == "torch" else layouts.conv_kernel_to_keras
        return move(array), how_by_rank(array.ndim, to)
    if kind == "dense":
        return layouts.dense_kernel_to_torch(array), "transpose"
    return array, "copy"
