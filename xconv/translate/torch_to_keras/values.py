"""What flows between the op converters: values with their layout, the converter's context, results.

A :class:`Value` is a torch tensor as the Keras graph holds it. ``perm`` says which torch dim
each Keras axis holds (``keras_tensor = torch_tensor.permute(perm)``), so a torch ``permute``
costs nothing: it changes the bookkeeping, not the data. Feature maps from a conv are
channels-last, ``perm = (0, 2, ..., r - 1, 1)``. Keras axis 0 is always the batch.

``flat`` marks the one layout a permutation cannot say: a flatten of channels-last maps,
whose last torch dim holds the elements in Keras' ``(*spatial, C)`` order. A Linear after it
takes permuted weights (no transpose at run time); anything else that needs torch's order
gets it through :func:`unflat`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...errors import UnsupportedLayerError


@dataclass(frozen=True)
class Value:
    """A torch tensor as the Keras graph holds it: the KerasTensor (or a constant), the torch
    shape, and which torch dim each Keras axis holds (see the module's docstring)."""

    tensor: object  # the KerasTensor; None for a constant
    shape: tuple[int, ...]  # the torch shape (export batch included)
    perm: tuple[int, ...]  # Keras axis i holds torch dim perm[i]
    const: np.ndarray | None = None  # a constant, in torch layout
    flat: tuple[int, ...] | None = None  # last dim = a flatten of maps of this channels-last shape
    nonneg: bool = False  # provably >= 0 (a ReLU output): max pooling may pad with zeros
    batch1: bool = False  # a constant broadcast over the batch: ``const`` keeps size 1 at dim 0

    @property
    def rank(self) -> int:
        """The number of dims (the batch counted)."""
        return len(self.shape)

    @property
    def is_const(self) -> bool:
        """A constant (folded from weights or literals), held in ``const``, with no KerasTensor."""
        return self.tensor is None

    def axis(self, dim: int) -> int:
        """The Keras axis that holds torch dim ``dim``."""
        return self.perm.index(dim % self.rank)

    def keras_shape(self) -> tuple[int, ...]:
        """The shape in Keras' axis order: the torch shape read through ``perm``."""
        return tuple(self.shape[p] for p in self.perm)


@dataclass(frozen=True)
class Ctx:
    """What a converter may use: Keras, the model dtype, the names it may give, the node."""

    keras: object
    dtype: str
    name: str  # the node's Keras layer name (module path where this node is a module's output)
    node: object = None  # the OpNode (None in unit converters' helpers)
    module: object = None  # for a unit: the torch module itself
    batch: int = 2  # the batch size the graph was exported with

    @property
    def layers(self):
        """``keras.layers``."""
        return self.keras.layers

    @property
    def ops(self):
        """``keras.ops``."""
        return self.keras.ops

    def sub(self, suffix: str) -> str:
        """The name of a helper layer of this node: ``<name>__<suffix>``."""
        return f"{self.name}__{suffix}"

    def array(self, value) -> np.ndarray:
        """A constant in the model's dtype (integers stay integers)."""
        a = np.asarray(value)
        return a.astype(self.dtype) if a.dtype.kind in "fb" or a.dtype.kind == "c" else a

    def unsupported(self, what: str, instead: str = "") -> UnsupportedLayerError:
        """The error (to raise) saying the node cannot be translated: ``what`` is why, the node,
        its module and source line are named, and ``instead`` is the nearest supported form."""
        node = self.node
        where = ""
        if node is not None:
            where = f" (node '{node.name}', module '{node.module_path or '<root>'}' {node.module_type}"
            where += f", at {node.source})" if node.source else ")"
        hint = f" Nearest supported: {instead}." if instead else ""
        op = node.op if node is not None else "unit"
        return UnsupportedLayerError(f"Cannot translate {op}: {what}{where}.{hint}")


@dataclass(frozen=True)
class Out:
    """A converter's result: the value(s) it produced and the weights of the layers it made."""

    value: object  # a Value, or a tuple of Values (None where an output is never used)
    weights: tuple = ()  # ((keras layer, {weight name: array}), ...)


def channels_last(rank: int) -> tuple[int, ...]:
    """The ``perm`` of channels-last maps of ``rank`` dims, ``(0, 2, ..., rank - 1, 1)``; identity below rank 3."""
    return (0, *range(2, rank), 1) if rank >= 3 else tuple(range(rank))


def default_perm(rank: int) -> tuple[int, ...]:
    """The layout compare and the model's inputs and outputs use: channels-last maps, plain vectors."""
    return channels_last(rank)


def identity(rank: int) -> tuple[int, ...]:
    """The ``perm`` of a tensor whose Keras axes are its torch dims, in order."""
    return tuple(range(rank))


def tensor_value(t, shape, perm, **kw) -> Value:
    """A :class:`Value` for the KerasTensor ``t`` of torch ``shape`` held in ``perm`` (``kw``: its other fields)."""
    return Value(t, tuple(int(s) for s in shape), tuple(perm), **kw)


def const_value(array, **kw) -> Value:
    """A constant :class:`Value` holding ``array`` in torch layout (identity ``perm``)."""
    a = np.asarray(array)
    return Value(None, tuple(a.shape), identity(a.ndim), const=a, **kw)


def batch_first(v: Value) -> tuple[int, ...]:
    """torch's own order, with the batch dim moved first (the Keras batch axis never moves)."""
    b = v.perm[0]
    return (b, *[d for d in range(v.rank) if d != b])


def to_perm(cx: Ctx, v: Value, perm) -> object:
    """The Keras tensor of ``v`` laid out as ``perm`` (a transpose only where it differs)."""
    perm = tuple(perm)
    if v.flat is not None:
        v = unflat(cx, v)
    if v.perm == perm:
        return v.tensor
    if perm[0] != v.perm[0]:
        raise cx.unsupported(f"the op needs torch dim {perm[0]} as the batch axis; it holds dim {v.perm[0]}")
    return cx.ops.transpose(v.tensor, [v.perm.index(d) for d in perm])


def unflat(cx: Ctx, v: Value) -> Value:
    """A channels-last flatten put in torch's channels-first order (one transpose)."""
    if v.flat is None:
        return v
    L = cx.layers
    t = L.Reshape(v.flat, name=cx.sub("unflat"), dtype=cx.dtype)(v.tensor)
    r = len(v.flat)
    t = cx.ops.transpose(t, (0, r, *range(1, r)))
    t = L.Reshape((int(np.prod(v.flat)),), name=cx.sub("flat_cf"), dtype=cx.dtype)(t)
    return replace(v, tensor=t, flat=None, perm=identity(v.rank))


def like(v: Value, t, **kw) -> Value:
    """A new tensor with ``v``'s shape and layout (element-wise ops)."""
    return replace(v, tensor=t, const=None, batch1=False, **{"nonneg": False, **kw})


def const_in(cx: Ctx, c: np.ndarray, rank: int, perm) -> np.ndarray:
    """A torch-layout constant broadcast against a rank-``rank`` tensor laid out as ``perm``."""
    c = np.asarray(c)
    c = c.reshape((1,) * (rank - c.ndim) + c.shape)
    return cx.array(np.transpose(c, perm))


def as_tensor(cx: Ctx, v: Value, like_value: Value):
    """A constant as a batch-sized Keras tensor shaped like ``like_value`` (for concatenation):
    zeros of the other tensor's batch plus the constant (exact: 0 + c is c)."""
    c = const_in(cx, v.const, like_value.rank, like_value.perm)
    if not v.batch1 and c.shape[0] != 1:
        raise cx.unsupported("a constant with a batch dimension of its own")
    t = like_value.tensor if like_value.flat is None else unflat(cx, like_value).tensor
    probe = t[(slice(None),) + (slice(0, 1),) * (like_value.rank - 1)]
    return cx.ops.add(cx.ops.zeros_like(probe), c)


__all__ = ["Value", "Ctx", "Out", "channels_last", "default_perm", "identity", "tensor_value", "const_value",
           "batch_first", "to_perm", "unflat", "like", "const_in", "as_tensor", "along_axis"]


def along_axis(cx: Ctx, t, axis: int, matrix: np.ndarray):
    """``out[..., i, ...] = sum_j matrix[i, j] * t[..., j, ...]`` along Keras axis ``axis``:
    interpolation and adaptive averaging as one constant linear map per axis."""
    rank = len(t.shape)
    letters = "abcdefgh"[:rank]
    out = letters[:axis] + "z" + letters[axis + 1 :]
    return cx.ops.einsum(f"{letters},z{letters[axis]}->{out}", t, cx.array(matrix))
