"""Keras operations in functional graphs: ``x + 3.0``, ``keras.ops.mean(x, axis=...)`` and the rest.

Each converter returns an expression (written inline in ``forward``). Element-wise operations
keep the layout their inputs arrive in (a constant array is laid out to match); operations with
axes either map them onto the channels-first tensor (keeping it channels-first) or ask for their
inputs in Keras' own axis order and compute exactly what Keras computes.
"""

from __future__ import annotations

import numbers

import numpy as np

from ...errors import UnsupportedLayerError
from ..graph import Ref
from ..converters import op_converter
from ..spec import CF, CL, FLAT, KERAS, PLAIN, KLayer, Layout, Piece
from . import fmt, torch_dim


def _keras_layout(rank: int) -> Layout:
    return Layout(CL if rank >= 3 else PLAIN)


def _refuse(op: KLayer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"Keras operation '{op.class_name}' (node '{op.keras_name}'): {why}")


def _scalar(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    return fmt(float(value))


def _operand_kinds(op: KLayer):
    """Per positional argument: ('t', index), ('s', scalar text) or ('a', array)."""
    out = []
    for a in op.args:
        if isinstance(a, Ref):
            out.append(("t", a.index))
        elif isinstance(a, (numbers.Number, np.bool_)) or (isinstance(a, np.ndarray) and a.ndim == 0):
            out.append(("s", _scalar(a.item() if isinstance(a, np.ndarray) else a)))
        elif isinstance(a, (np.ndarray, list, tuple)):
            out.append(("a", np.asarray(a)))
        elif a is None:
            out.append(("n", None))
        else:
            raise _refuse(op, f"an argument of type {type(a).__name__} is not a tensor, number or array.")
    return out


def _elementwise(op: KLayer, template: str, arity: int | None = None) -> Piece:
    """An element-wise operation over tensors, scalars and constant arrays (numpy broadcasting)."""
    kinds = _operand_kinds(op)
    if arity is not None:
        kinds = kinds[:arity]
    rank = len(op.output_shape)
    tensors = [i for k, i in kinds if k == "t"]
    lays = {op.in_layouts[i].kind for i in tensors}
    ranks = {len(op.input_shapes[i]) for i in tensors}
    keep = len(lays) == 1 and ranks == {rank} and FLAT not in lays
    lay = op.in_layouts[tensors[0]] if keep else _keras_layout(rank)
    consts: list[np.ndarray] = []
    parts = []
    for k, v in kinds:
        if k == "t":
            parts.append(f"{{{v}}}")
        elif k == "s":
            parts.append(v)
        elif k == "a":
            arr = np.asarray(v)
            if keep and lay.kind == CF and arr.ndim > 0:  # broadcast along Keras' axes, moved with the channels
                arr = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
                arr = np.moveaxis(arr, -1, 1)
            parts.append(f"{{c{len(consts)}}}")
            consts.append(np.ascontiguousarray(arr))
        else:
            parts.append("None")
    wants = [None] * len(op.in_layouts)
    if not keep:
        wants = [KERAS] * len(op.in_layouts)
    return Piece((), lay, expr=template.format(*parts), inputs_as=tuple(wants), constants=tuple(consts))


_BINARY = {
    "Add": "({0} + {1})",
    "Subtract": "({0} - {1})",
    "Multiply": "({0} * {1})",
    "TrueDivide": "({0} / {1})",
    "Divide": "({0} / {1})",
    "FloorDivide": "torch.floor_divide(torch.as_tensor({0}), {1})",
    "Mod": "torch.remainder(torch.as_tensor({0}), {1})",
    "Power": "torch.pow({0}, {1})",
    "Maximum": "torch.maximum(torch.as_tensor({0}), torch.as_tensor({1}))",
    "Minimum": "torch.minimum(torch.as_tensor({0}), torch.as_tensor({1}))",
    "Greater": "({0} > {1})",
    "GreaterEqual": "({0} >= {1})",
    "Less": "({0} < {1})",
    "LessEqual": "({0} <= {1})",
    "Equal": "({0} == {1})",
    "NotEqual": "({0} != {1})",
    "LogicalAnd": "torch.logical_and(torch.as_tensor({0}), torch.as_tensor({1}))",
    "LogicalOr": "torch.logical_or(torch.as_tensor({0}), torch.as_tensor({1}))",
}

_UNARY = {
    "Negative": "(-{0})",
    "Absolute": "torch.abs({0})",
    "Abs": "torch.abs({0})",
    "Sqrt": "torch.sqrt({0})",
    "Rsqrt": "torch.rsqrt({0})",
    "Exp": "torch.exp({0})",
    "Log": "torch.log({0})",
    "Tanh": "torch.tanh({0})",
    "Square": "torch.square({0})",
    "Erf": "torch.erf({0})",
    "Reciprocal": "torch.reciprocal({0})",
    "Floor": "torch.floor({0})",
    "Ceil": "torch.ceil({0})",
    "Sign": "torch.sign({0})",
    "LogicalNot": "torch.logical_not({0})",
    "Sigmoid": "torch.sigmoid({0})",
    "Relu": "torch.relu({0})",
    "Relu6": "F.relu6({0})",
    "Silu": "F.silu({0})",
    "Swish": "F.silu({0})",
    "HardSigmoid": "F.hardsigmoid({0})",
    "HardSilu": "F.hardswish({0})",
    "HardSwish": "F.hardswish({0})",
    "Softplus": "F.softplus({0})",
    "Softsign": "F.softsign({0})",
    "Elu": "F.elu({0})",
    "Selu": "F.selu({0})",
    "Mish": "F.mish({0})",
    "Sin": "torch.sin({0})",
    "Cos": "torch.cos({0})",
    "Log1p": "torch.log1p({0})",
    "Expm1": "torch.expm1({0})",
    "Isnan": "torch.isnan({0})",
}


@op_converter(*_BINARY, elementwise=True)
def _binary(op: KLayer) -> Piece:
    return _elementwise(op, _BINARY[op.class_name], arity=2)


@op_converter(*_UNARY, elementwise=True)
def _unary(op: KLayer) -> Piece:
    return _elementwise(op, _UNARY[op.class_name], arity=1)


@op_converter("Round")
def _round(op: KLayer) -> Piece:
    decimals = int(op.config.get("decimals", 0))
    return _elementwise(op, f"torch.round({{0}}, decimals={decimals})" if decimals else "torch.round({0})", arity=1)


@op_converter("Gelu")
def _gelu(op: KLayer) -> Piece:
    approx = op.config.get("approximate", True)
    if len(op.args) > 1 and not isinstance(op.args[1], Ref):
        approx = bool(op.args[1])
    if op.input_dtypes and op.input_dtypes[0] == "float64":  # TF's constants are float32 (see KerasGELU)
        if approx:
            return _elementwise(op, "(0.5 * {0} * (1.0 + torch.tanh(0.7978845608028654 * ({0} + 0.044714998453855515 * {0} ** 3))))", arity=1)
        return _elementwise(op, "(0.5 * {0} * torch.erfc(-{0} * 0.7071067690849304))", arity=1)
    return _elementwise(op, f'F.gelu({{0}}, approximate="{"tanh" if approx else "none"}")', arity=1)


@op_converter("LeakyRelu")
def _leaky(op: KLayer) -> Piece:
    slope = op.config.get("negative_slope", 0.2)
    return _elementwise(op, f"F.leaky_relu({{0}}, {fmt(float(np.float32(slope)))})", arity=1)


@op_converter("Clip")
def _clip(op: KLayer) -> Piece:
    lo, hi = op.config.get("x_min"), op.config.get("x_max")
    return _elementwise(op, f"torch.clamp({{0}}, {_scalar(lo)}, {_scalar(hi)})", arity=1)


@op_converter("Where")
def _where(op: KLayer) -> Piece:
    kinds = _operand_kinds(op)
    if len(kinds) != 3 or any(k == "n" for k, _ in kinds):
        raise _refuse(op, "only the three-argument form where(condition, x, y) is supported.")
    wrap = []
    for i, (k, _) in enumerate(kinds):
        wrap.append(f"torch.as_tensor({{{i}}})" if k == "s" else f"{{{i}}}")
    return _elementwise(op, f"torch.where({', '.join(wrap)})")


@op_converter("Cast")
def _cast(op: KLayer) -> Piece:
    dtype = str(op.config.get("dtype"))
    if dtype in ("float16", "float32", "float64", "bfloat16", "bool") or dtype.startswith(("int", "uint")):
        return _elementwise(op, f"{{0}}.to(torch.{dtype})", arity=1)
    raise _refuse(op, f"cast to {dtype} is not supported.")


# ---- operations with axes --------------------------------------------------------------------


def _axes(value, rank: int) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(int(a) % rank for a in value)
    return (int(value) % rank,)


def _reduce(op: KLayer, fn: str, extra: str = "") -> Piece:
    rank = len(op.input_shapes[0])
    axes = _axes(op.config.get("axis"), rank)
    keep = bool(op.config.get("keepdims", False))
    src = op.in_layouts[0]
    kept = keep or axes is None or set(range(1, rank - 1)) <= set(axes) and 0 not in axes
    if src.kind == CF and rank >= 3 and kept and axes is not None:
        # reduce the channels-first tensor along the mapped dims: the result stays laid out alike
        dims = tuple(sorted(torch_dim(a, rank, CF) for a in axes))
        out_rank = len(op.output_shape)
        if keep:
            lay = Layout(CF)
        elif out_rank >= 3 or rank - 1 in axes:
            return _reduce_keras(op, fn, extra, rank, axes, keep)
        else:
            lay = Layout(PLAIN)  # the batch and channel axes are left: (N, C) in both frameworks
        return Piece((), lay, expr=f"{fn}({{0}}, dim={fmt(dims)}, keepdim={keep}{extra})", inputs_as=(None,))
    return _reduce_keras(op, fn, extra, rank, axes, keep)


def _reduce_keras(op, fn, extra, rank, axes, keep):
    dims = tuple(range(rank)) if axes is None else axes
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"{fn}({{0}}, dim={fmt(dims)}, keepdim={keep}{extra})", inputs_as=(KERAS,))


@op_converter("Mean")
def _mean(op: KLayer) -> Piece:
    return _reduce(op, "torch.mean")


@op_converter("Sum")
def _sum(op: KLayer) -> Piece:
    return _reduce(op, "torch.sum")


@op_converter("Max")
def _max(op: KLayer) -> Piece:
    return _reduce(op, "torch.amax")


@op_converter("Min")
def _min(op: KLayer) -> Piece:
    return _reduce(op, "torch.amin")


@op_converter("Var")
def _var(op: KLayer) -> Piece:
    return _reduce(op, "torch.var", ", correction=0")


@op_converter("Std")
def _std(op: KLayer) -> Piece:
    return _reduce(op, "torch.std", ", correction=0")


@op_converter("Argmax", "Argmin")
def _argmax(op: KLayer) -> Piece:
    rank = len(op.input_shapes[0])
    axis = op.config.get("axis")
    fn = "torch.argmax" if op.class_name == "Argmax" else "torch.argmin"
    keep = bool(op.config.get("keepdims", False))
    if axis is None:
        return Piece((), Layout(PLAIN), expr=f"{fn}({{0}}.reshape(-1))", inputs_as=(KERAS,))
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"{fn}({{0}}, dim={int(axis) % rank}, keepdim={keep})", inputs_as=(KERAS,))


def _axis_op(op: KLayer, template: str, axis) -> Piece:
    """An operation along one axis that keeps the shape (softmax, cumsum, flip)."""
    rank = len(op.input_shapes[0])
    src = op.in_layouts[0]
    if src.kind in (CF, CL, PLAIN) and src.kind != FLAT:
        dim = torch_dim(int(axis), rank, src.kind)
        return Piece((), src, expr=template.format("{0}", dim=dim), inputs_as=(None,))
    return Piece((), _keras_layout(rank), expr=template.format("{0}", dim=int(axis) % rank), inputs_as=(KERAS,))


@op_converter("Softmax")
def _softmax(op: KLayer) -> Piece:
    return _axis_op(op, "torch.softmax({0}, dim={dim})", op.config.get("axis", -1))


@op_converter("LogSoftmax")
def _log_softmax(op: KLayer) -> Piece:
    return _axis_op(op, "torch.log_softmax({0}, dim={dim})", op.config.get("axis", -1))


@op_converter("Cumsum")
def _cumsum(op: KLayer) -> Piece:
    axis = op.config.get("axis")
    if axis is None:
        return Piece((), Layout(PLAIN), expr="torch.cumsum({0}.reshape(-1), dim=0)", inputs_as=(KERAS,))
    return _axis_op(op, "torch.cumsum({0}, dim={dim})", axis)


@op_converter("Flip")
def _flip(op: KLayer) -> Piece:
    axis = op.config.get("axis")
    rank = len(op.input_shapes[0])
    axes = _axes(axis, rank) or tuple(range(rank))
    return Piece((), _keras_layout(rank), expr=f"torch.flip({{0}}, dims={fmt(axes)})", inputs_as=(KERAS,))


def _shape_arg(shape) -> str:
    return fmt(tuple(-1 if s is None else int(s) for s in shape))


@op_converter("Reshape")
def _reshape(op: KLayer) -> Piece:
    target = op.config.get("newshape", op.config.get("new_shape"))
    if target is None:
        raise _refuse(op, "no target shape.")
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"{{0}}.reshape({_shape_arg(target)})", inputs_as=(KERAS,))


@op_converter("Transpose")
def _transpose(op: KLayer) -> Piece:
    rank = len(op.input_shapes[0])
    axes = op.config.get("axes")
    axes = tuple(range(rank))[::-1] if axes is None else tuple(int(a) % rank for a in axes)
    return Piece((), _keras_layout(rank), expr=f"{{0}}.permute{fmt(axes)}", inputs_as=(KERAS,))


@op_converter("Swapaxes")
def _swapaxes(op: KLayer) -> Piece:
    rank = len(op.input_shapes[0])
    a, b = int(op.config["axis1"]) % rank, int(op.config["axis2"]) % rank
    return Piece((), _keras_layout(rank), expr=f"{{0}}.transpose({a}, {b})", inputs_as=(KERAS,))


@op_converter("Moveaxis")
def _moveaxis(op: KLayer) -> Piece:
    rank = len(op.input_shapes[0])
    src = tuple(int(a) % rank for a in np.atleast_1d(op.config["source"]))
    dst = tuple(int(a) % rank for a in np.atleast_1d(op.config["destination"]))
    return Piece((), _keras_layout(rank), expr=f"torch.movedim({{0}}, {fmt(src)}, {fmt(dst)})", inputs_as=(KERAS,))


@op_converter("ExpandDims")
def _expand_dims(op: KLayer) -> Piece:
    rank = len(op.output_shape)
    axes = _axes(op.config.get("axis"), rank)
    expr = "{0}"
    for a in sorted(axes):
        expr = f"{expr}.unsqueeze({a})"
    return Piece((), _keras_layout(rank), expr=expr, inputs_as=(KERAS,))


@op_converter("Squeeze")
def _squeeze(op: KLayer) -> Piece:
    rank = len(op.input_shapes[0])
    axes = _axes(op.config.get("axis"), rank)
    if axes is None:
        axes = tuple(i for i, n in enumerate(op.input_shapes[0]) if n == 1)
    expr = "{0}"
    for a in sorted(axes, reverse=True):
        expr = f"{expr}.squeeze({a})"
    return Piece((), _keras_layout(len(op.output_shape)), expr=expr, inputs_as=(KERAS,))


def _list_items(op: KLayer):
    """The tensors and constant arrays of a list argument: (text, constants, tensor indices).

    A constant made eagerly from the stand-in batch size of a traced block (a class token tiled
    over the batch) is kept as one row, expanded to the real batch at run time.
    """
    from ..graph import BATCH

    seq = op.args[0] if op.args and isinstance(op.args[0], (list, tuple)) else op.args
    parts, consts, refs = [], [], []
    for a in seq:
        if isinstance(a, Ref):
            parts.append(f"{{{a.index}}}")
            refs.append(a.index)
        elif isinstance(a, np.ndarray):
            if a.ndim and a.shape[0] == BATCH:
                parts.append(f"{{c{len(consts)}}}.expand({BATCH}{', -1' * (a.ndim - 1)})")
                a = a[:1]
            else:
                parts.append(f"{{c{len(consts)}}}")
            consts.append(np.ascontiguousarray(a))
        else:
            raise _refuse(op, f"an item of type {type(a).__name__} is neither a tensor nor an array.")
    return ", ".join(parts), tuple(consts), refs


@op_converter("Concatenate")
def _concatenate(op: KLayer) -> Piece:
    items, consts, refs = _list_items(op)
    rank = len(op.output_shape)
    axis = int(op.config.get("axis", 0))
    kinds = {op.in_layouts[i].kind for i in refs}
    if not consts and len(kinds) == 1 and kinds <= {CF, CL, PLAIN}:
        kind = kinds.pop()
        return Piece((), Layout(kind), expr=f"torch.cat(({items},), dim={torch_dim(axis, rank, kind)})", inputs_as=(None,) * len(op.in_layouts))
    return Piece((), _keras_layout(rank), expr=f"torch.cat(({items},), dim={axis % rank})", inputs_as=(KERAS,) * len(op.in_layouts), constants=consts)


@op_converter("Stack")
def _stack(op: KLayer) -> Piece:
    items, consts, _ = _list_items(op)
    rank = len(op.output_shape)
    axis = int(op.config.get("axis", 0)) % rank
    return Piece((), _keras_layout(rank), expr=f"torch.stack(({items},), dim={axis})", inputs_as=(KERAS,) * len(op.in_layouts), constants=consts)


@op_converter("Split")
def _split(op: KLayer) -> Piece:
    rank = len(op.input_shapes[0])
    axis = int(op.config.get("axis", 0))
    sections = op.config.get("indices_or_sections")
    src = op.in_layouts[0]
    kind = src.kind if src.kind in (CF, CL, PLAIN) else None
    dim = torch_dim(axis, rank, kind) if kind else axis % rank
    n = op.input_shapes[0][axis % rank]
    if isinstance(sections, numbers.Integral):
        if n is None:
            return Piece((), Layout(kind) if kind else _keras_layout(rank), expr=f"torch.chunk({{0}}, {int(sections)}, dim={dim})", inputs_as=(None if kind else KERAS,), n_outputs=int(sections))
        sizes = [n // int(sections)] * int(sections)
    else:
        cuts = [0, *[int(c) for c in sections], n]
        sizes = [b - a for a, b in zip(cuts, cuts[1:])]
    lay = Layout(kind) if kind else _keras_layout(rank)
    return Piece((), lay, expr=f"torch.split({{0}}, {fmt(tuple(sizes))}, dim={dim})", inputs_as=(None if kind else KERAS,), n_outputs=len(sizes))


def _index_text(item) -> str:
    if isinstance(item, slice):
        parts = ["" if v is None else str(int(v)) for v in (item.start, item.stop, item.step)]
        return ":".join(parts[:2]) + (f":{parts[2]}" if item.step is not None else "")
    if item is None:
        return "None"
    if item is Ellipsis:
        return "..."
    if isinstance(item, numbers.Integral):
        return str(int(item))
    raise TypeError(f"index {item!r}")


@op_converter("GetItem")
def _getitem(op: KLayer) -> Piece:
    key = op.args[1] if len(op.args) > 1 else op.kwargs.get("key")
    items = key if isinstance(key, tuple) else (key,)
    if any(isinstance(i, Ref) for i in items):
        raise _refuse(op, "indexing with a tensor is not supported; slice with numbers.")
    for i in items:
        if isinstance(i, slice) and i.step is not None and int(i.step) < 0:
            raise _refuse(op, "negative slice steps are not supported (torch has none); use keras.ops.flip.")
    try:
        text = ", ".join(_index_text(i) for i in items)
    except TypeError as exc:
        raise _refuse(op, f"an {exc} is not a slice, an integer, None or Ellipsis.") from None
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"{{0}}[{text}{',' if len(items) == 1 else ''}]", inputs_as=(KERAS,))


@op_converter("Matmul")
def _matmul(op: KLayer) -> Piece:
    kinds = _operand_kinds(op)[:2]
    consts, parts = [], []
    for k, v in kinds:
        if k == "t":
            parts.append(f"{{{v}}}")
        elif k == "a":
            parts.append(f"{{c{len(consts)}}}")
            consts.append(np.ascontiguousarray(v))
        else:
            raise _refuse(op, "matmul needs two tensors or arrays.")
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"torch.matmul({parts[0]}, {parts[1]})", inputs_as=(KERAS,) * len(op.in_layouts), constants=tuple(consts))


@op_converter("Einsum")
def _einsum(op: KLayer) -> Piece:
    subscripts = op.config.get("subscripts")
    kinds = _operand_kinds(op)
    consts, parts = [], []
    for k, v in kinds:
        if k == "t":
            parts.append(f"{{{v}}}")
        elif k == "a":
            parts.append(f"{{c{len(consts)}}}")
            consts.append(np.ascontiguousarray(v))
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"torch.einsum({subscripts!r}, {', '.join(parts)})", inputs_as=(KERAS,) * len(op.in_layouts), constants=tuple(consts))


@op_converter("Tile")
def _tile(op: KLayer) -> Piece:
    reps = tuple(int(r) for r in np.atleast_1d(op.config["repeats"]))
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"torch.tile({{0}}, {fmt(reps)})", inputs_as=(KERAS,))


@op_converter("Repeat")
def _repeat(op: KLayer) -> Piece:
    axis = op.config.get("axis")
    reps = op.config["repeats"]
    if not isinstance(reps, numbers.Integral):
        raise _refuse(op, "only a whole-number repeats is supported.")
    if axis is None:
        return Piece((), Layout(PLAIN), expr=f"torch.repeat_interleave({{0}}.reshape(-1), {int(reps)})", inputs_as=(KERAS,))
    rank = len(op.input_shapes[0])
    return Piece((), _keras_layout(rank), expr=f"torch.repeat_interleave({{0}}, {int(reps)}, dim={int(axis) % rank})", inputs_as=(KERAS,))


@op_converter("Pad")
def _pad(op: KLayer) -> Piece:
    mode = op.config.get("mode", "constant")
    widths = np.broadcast_to(np.asarray(op.config["pad_width"], dtype=int), (len(op.input_shapes[0]), 2))
    value = op.kwargs.get("constant_values", 0) or 0
    flat = []
    for b, a in widths[::-1]:
        flat += [int(b), int(a)]
    if mode != "constant":
        raise _refuse(op, f"padding mode '{mode}' is not supported; use 'constant'.")
    return Piece((), _keras_layout(len(op.output_shape)), expr=f"F.pad({{0}}, {fmt(tuple(flat))}, value={_scalar(value)})", inputs_as=(KERAS,))


@op_converter("Resize")
def _resize(op: KLayer) -> Piece:
    c = op.config
    if c.get("data_format", "channels_last") != "channels_last":
        fmt_in = None
    else:
        fmt_in = CF
    if c.get("antialias") or c.get("crop_to_aspect_ratio") or c.get("pad_to_aspect_ratio"):
        raise _refuse(op, "antialias, crop_to_aspect_ratio and pad_to_aspect_ratio are not supported.")
    mode = c.get("interpolation", "bilinear")
    size = tuple(int(s) for s in c["size"])
    if len(op.input_shapes[0]) != 4:
        raise _refuse(op, "only batched 4-D images are supported.")
    if mode == "nearest":
        # TF's nearest uses half-pixel centres: torch's nearest-exact (plain nearest differs off integer scales)
        expr = f'F.interpolate({{0}}, size={fmt(size)}, mode="nearest-exact")'
    elif mode == "bilinear":
        expr = f'F.interpolate({{0}}, size={fmt(size)}, mode="bilinear", align_corners=False)'
    elif mode == "bicubic":
        raise _refuse(op, "bicubic resizing differs between TensorFlow and torch (cubic coefficient); use bilinear.")
    else:
        raise _refuse(op, f"interpolation '{mode}' is not supported; use nearest or bilinear.")
    if fmt_in is None:  # channels_first Keras data: already torch's order
        return Piece((), Layout(PLAIN), expr=expr, inputs_as=(KERAS,))
    return Piece((), Layout(CF), expr=expr, inputs_as=(CF,))


def _pool(op: KLayer, kind: str) -> Piece:
    from ...padding import as_tuple, same_pads, torch_pad_arg

    c = op.config
    rank = len(op.input_shapes[0]) - 2
    if c.get("data_format", "channels_last") != "channels_last":
        raise _refuse(op, "data_format='channels_first' pooling ops are not supported.")
    k = as_tuple(c["pool_size"], rank, "pool_size")
    s = as_tuple(c.get("strides") or c["pool_size"], rank, "strides")
    fn = f"F.{kind}_pool{rank}d"
    if c.get("padding", "valid") == "valid":
        return Piece((), Layout(CF), expr=f"{fn}({{0}}, {fmt(k)}, {fmt(s)})", inputs_as=(CF,))
    spatial = op.input_shapes[0][1:-1]
    if any(n is None for n in spatial) or kind == "avg":
        raise _refuse(op, "'same' padding needs a known input size (max) and is not supported for average pooling ops; use the AveragePooling layer.")
    pads = torch_pad_arg(same_pads(tuple(spatial), k, s))
    return Piece((), Layout(CF), expr=f'{fn}(F.pad({{0}}, {fmt(pads)}, value=float("-inf")), {fmt(k)}, {fmt(s)})', inputs_as=(CF,))


@op_converter("MaxPool")
def _max_pool(op: KLayer) -> Piece:
    return _pool(op, "max")


@op_converter("AveragePool")
def _avg_pool(op: KLayer) -> Piece:
    return _pool(op, "avg")


@op_converter("DotProductAttention")
def _dot_product_attention(op: KLayer) -> Piece:
    c = op.config
    if c.get("is_causal") or op.kwargs.get("mask") is not None or op.kwargs.get("bias") is not None:
        raise _refuse(op, "masks, biases and causal attention are not supported.")
    if c.get("attn_logits_soft_cap") is not None:
        raise _refuse(op, "attn_logits_soft_cap is not supported.")
    scale = op.kwargs.get("scale")
    head = op.input_shapes[0][-1]
    # TensorFlow multiplies by the scale as a float32 constant, also in float64 models
    scale = float(np.float32(scale if scale is not None else 1.0 / np.sqrt(head)))
    q, k, v = (f"{{{a.index}}}" for a in op.args[:3])
    expr = f"F.scaled_dot_product_attention({q}.transpose(1, 2), {k}.transpose(1, 2), {v}.transpose(1, 2), scale={fmt(scale)}).transpose(1, 2)"
    return Piece((), _keras_layout(len(op.output_shape)), expr=expr, inputs_as=(KERAS,) * len(op.in_layouts))


@op_converter("Identity")
def _identity(op: KLayer) -> Piece:
    return Piece((), op.in_layouts[0], expr="{0}", inputs_as=(None,))


@op_converter("ExtractPatches")
def _extract_patches(op: KLayer) -> Piece:
    """ops.image.extract_patches: each output pixel holds a (ph, pw, C) patch, flattened in that order."""
    c = op.config
    size = tuple(int(s) for s in np.broadcast_to(c.get("size"), (2,)))
    strides = tuple(int(s) for s in np.broadcast_to(c.get("strides") or size, (2,)))
    if c.get("is_3d") or c.get("padding", "valid") != "valid" or c.get("dilation_rate", 1) not in (1, (1, 1), [1, 1]):
        raise _refuse(op, "only 2-D patches with padding='valid' and no dilation are supported.")
    if c.get("data_format", "channels_last") != "channels_last":
        raise _refuse(op, "only channels_last images are supported.")
    (ph, pw), (sh, sw) = size, strides
    expr = f"{{0}}.unfold(2, {ph}, {sh}).unfold(3, {pw}, {sw}).permute(0, 2, 3, 4, 5, 1).flatten(3)"
    return Piece((), Layout(CL), expr=expr, inputs_as=(CF,))
