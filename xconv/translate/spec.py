"""Small frozen records that converters read and return (pure data, no framework)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..layouts import LayoutKind


class InputAs(str, Enum):
    """The layout a converter asks its inputs to arrive in (:attr:`Piece.inputs_as`; ``None``: as they come)."""

    KERAS = "keras"  # Keras' own axis order
    CF = "cf"  # feature maps channels-first (what every layer without ``layout_free`` receives)


CF, PLAIN, CL, FLAT = LayoutKind.CF, LayoutKind.PLAIN, LayoutKind.CL, LayoutKind.FLAT
KERAS = InputAs.KERAS


@dataclass(frozen=True)
class Layout:
    """How one tensor of the translated module is laid out against its Keras twin: a
    :class:`~xconv.layouts.LayoutKind`, and for ``FLAT`` the channels-last shape that was flattened."""

    kind: LayoutKind  # CF, CL, PLAIN or FLAT
    flatten_of: tuple[int, ...] | None = None  # for FLAT: the channels-last shape flattened

    @staticmethod
    def for_rank(rank: int) -> "Layout":
        """``CF`` for a tensor of ``rank`` >= 3 (feature maps), ``PLAIN`` below."""
        return Layout(CF if rank >= 3 else PLAIN)


@dataclass(frozen=True)
class KLayer:
    """One Keras layer call, as a converter sees it."""

    name: str  # a Python identifier made from the Keras name
    keras_name: str
    class_name: str
    config: dict
    weights: dict[str, np.ndarray]
    input_shapes: tuple[tuple, ...]  # Keras shapes with the batch axis (None)
    output_shape: tuple
    in_layouts: tuple[Layout, ...] = ()
    # every consumer of this layer's output is a Dense (through element-wise layers only)
    feeds_only_dense: bool = False
    # the call's arguments, tensors replaced by graph.Ref(i) (the i-th input), and its kwargs
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    output_shapes: tuple[tuple, ...] = ()
    input_dtypes: tuple[str, ...] = ()
    output_dtypes: tuple[str, ...] = ()
    layer: object = None  # the Keras layer or operation itself (for plug-ins that need more)


@dataclass(frozen=True)
class Step:
    """One torch module of a translated layer: ``self.<attr> = <code>``; applied in order."""

    suffix: str  # "" for the layer's main module, "__pad", "__act" ... for helpers
    code: str  # a constructor expression using nn, torch and the preamble's helpers
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    helpers: tuple[str, ...] = ()  # names of preamble classes the code uses


@dataclass(frozen=True)
class Piece:
    """What a converter returns: modules applied in order, or an expression.

    ``expr`` (operations) is a Python expression over the inputs ``{0}``, ``{1}`` ... and the
    piece's constant tensors ``{c0}``, ``{c1}`` ... (registered as buffers), written in place
    of module calls. ``inputs_as`` says, per input, the layout it must arrive in: ``KERAS``
    (Keras' own axis order), ``InputAs.CF`` or ``None`` (as it comes). ``n_outputs`` > 1: ``expr``
    returns a sequence. ``out_layouts`` gives each output's layout when they differ.
    """

    steps: tuple[Step, ...]
    out_layout: Layout
    expr: str | None = None
    inputs_as: tuple[InputAs | None, ...] = ()
    constants: tuple[np.ndarray, ...] = ()
    n_outputs: int = 1
    out_layouts: tuple[Layout, ...] = ()
