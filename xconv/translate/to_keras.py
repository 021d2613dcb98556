"""Translate a traceable PyTorch module into a channels-last Keras 3 functional model.

The module is traced with torch.fx and its shapes propagated on one example input; each
node becomes built-in Keras layers named after the module's qualified names (so
``xconv.compare`` lines them up with the module's own), and weights move through the same
weight families as the other direction (``xconv.registry``). A Flatten of feature maps
becomes Keras' channels-last Flatten with the next Linear's columns permuted: no transpose
at run time.
"""

from __future__ import annotations

import operator

import numpy as np


from ..errors import BadInputError, UnsupportedLayerError
from ..registry import LayerContext, family_for_torch
from .spec import CF, PLAIN, Layout

__all__ = ["torch_to_keras"]


class _Builder:
    def __init__(self, keras, gm, dtype):
        self.k, self.gm, self.dtype = keras, gm, dtype
        self.modules = dict(gm.named_modules())
        self.env: dict = {}
        self.layout: dict = {}
        self.shape: dict = {}  # torch shape of each node's output (with batch)
        self.names: set[str] = set()
        self.pending: list = []  # (layer, weights) set after the model is built
        self.plain_flatten: set = set()  # flattens done in torch's order (Permute first)
        self.align: dict = {}  # Keras layer -> torch module it stands for (None: an intermediate step)

    def name(self, node_or_str) -> str:
        base = node_or_str if isinstance(node_or_str, str) else (node_or_str.target if node_or_str.op == "call_module" else node_or_str.name)
        base, i, name = str(base), 2, str(base)
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def unsupported(self, node, what: str):
        where = "unknown source line"
        if getattr(node, "stack_trace", None):  # 'File "...", line N, in forward' then the code
            lines = [l.strip() for l in node.stack_trace.strip().splitlines() if l.strip()]
            frames = [(l, lines[i + 1] if i + 1 < len(lines) else "") for i, l in enumerate(lines) if l.startswith("File ")]
            user = [f for f in frames if "/torch/" not in f[0].split(",")[0]]  # the user's code, not torch's
            if user:
                where = " ".join(user[-1])
        return UnsupportedLayerError(
            f"Cannot translate node '{node.name}' ({node.op} {what}) to Keras; at: {where}. Supported modules: "
            f"{', '.join(sorted(_MODULES))}; functions: relu, sigmoid, tanh, add, sub, mul, cat, flatten, pad, interpolate."
        )


def _axis(dim: int, rank: int, kind: str) -> int:
    """A torch dim as a Keras axis (the inverse of translate.layers.torch_dim)."""
    dim = dim % rank
    if kind != CF or dim == 0:
        return dim
    return rank - 1 if dim == 1 else dim - 1


def _pair(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


# ---------------------------------------------------------------- modules


def _conv(b, node, mod, x):
    L = b.k.layers
    rank = mod.weight.dim() - 2
    name = b.name(node)
    if mod.padding_mode != "zeros":
        raise b.unsupported(node, f"{type(mod).__name__}(padding_mode='{mod.padding_mode}')")
    k, s, d = _pair(mod.kernel_size, rank), _pair(mod.stride, rank), _pair(mod.dilation, rank)
    transposed = type(mod).__name__.startswith("ConvTranspose")
    family = family_for_torch(type(mod).__name__, node.target)
    arrays = {n: p.detach().cpu().numpy() for n, p in mod.named_parameters(recurse=False)}
    weights = family.to_keras(arrays, LayerContext(name))
    if transposed:
        p = _pair(mod.padding, rank)
        op = _pair(mod.output_padding, rank)
        if mod.groups != 1:
            raise b.unsupported(node, "grouped ConvTranspose")
        cls = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose, 3: L.Conv3DTranspose}[rank]
        layer = cls(mod.out_channels, k, strides=s, padding="valid", output_padding=op if any(op) else None,
                    dilation_rate=d, use_bias=mod.bias is not None, name=name, dtype=b.dtype)  # fmt: skip
        y = layer(x)
        if any(p):
            crop = {1: L.Cropping1D, 2: L.Cropping2D, 3: L.Cropping3D}[rank]
            crop_name = b.name(f"{name}__crop")
            y = crop(tuple((pp, pp) for pp in p) if rank > 1 else (p[0], p[0]), name=crop_name, dtype=b.dtype)(y)
            b.align[crop_name], b.align[name] = node.target, None  # the module's output is the cropped one
        b.pending.append((layer, weights))
        return y
    pad = mod.padding
    if isinstance(pad, str):
        padding = pad
    else:
        pad = _pair(pad, rank)
        if not any(pad):
            padding = "valid"
        elif all(ss == 1 for ss in s) and all(2 * pp == (kk - 1) * dd for pp, kk, dd in zip(pad, k, d)):
            padding = "same"  # symmetric and exactly TF's 'same' at stride 1
        else:
            zp = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[rank]
            x = zp(pad[0] if rank == 1 else tuple((pp, pp) for pp in pad), name=b.name(f"{name}__pad"), dtype=b.dtype)(x)
            padding = "valid"
    cls = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}[rank]
    layer = cls(mod.out_channels, k, strides=s, padding=padding, dilation_rate=d, groups=mod.groups,
                use_bias=mod.bias is not None, name=name, dtype=b.dtype)  # fmt: skip
    y = layer(x)
    b.pending.append((layer, weights))
    return y


def _linear(b, node, mod, x):
    name = b.name(node)
    src = b.layout[node.args[0]]
    ctx = LayerContext(name, flatten_of=src.flatten_of if src.kind == "flat" else None)
    arrays = {n: p.detach().cpu().numpy() for n, p in mod.named_parameters(recurse=False)}
    weights = family_for_torch("Linear", node.target).to_keras(arrays, ctx)
    if b.layout[node.args[0]].kind == CF:
        raise b.unsupported(node, "Linear on feature maps (apply it after a flatten)")
    layer = b.k.layers.Dense(mod.out_features, use_bias=mod.bias is not None, name=name, dtype=b.dtype)
    y = layer(x)
    b.pending.append((layer, weights))
    return y


def _batchnorm(b, node, mod, x):
    name = b.name(node)
    arrays = {n: t.detach().cpu().numpy() for n, t in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)] if t is not None and t.is_floating_point()}
    weights = family_for_torch(type(mod).__name__, node.target).to_keras(arrays, LayerContext(name))
    layer = b.k.layers.BatchNormalization(axis=-1, epsilon=mod.eps, momentum=1.0 - (mod.momentum or 0.1), center=mod.affine, scale=mod.affine, name=name, dtype=b.dtype)
    y = layer(x)
    b.pending.append((layer, weights))
    return y


def _layernorm(b, node, mod, x):
    if len(mod.normalized_shape) != 1 or b.layout[node.args[0]].kind == CF:
        raise b.unsupported(node, "LayerNorm over more than the last axis of a vector")
    name = b.name(node)
    layer = b.k.layers.LayerNormalization(axis=-1, epsilon=mod.eps, center=mod.bias is not None, scale=mod.weight is not None, name=name, dtype=b.dtype)
    y = layer(x)
    w = {}
    if mod.weight is not None:
        w["gamma"] = mod.weight.detach().cpu().numpy()
    if mod.bias is not None:
        w["beta"] = mod.bias.detach().cpu().numpy()
    b.pending.append((layer, w))
    return y


def _groupnorm(b, node, mod, x):
    name = b.name(node)
    layer = b.k.layers.GroupNormalization(groups=mod.num_groups, axis=-1, epsilon=mod.eps, center=mod.affine, scale=mod.affine, name=name, dtype=b.dtype)
    y = layer(x)
    w = {"gamma": mod.weight.detach().cpu().numpy(), "beta": mod.bias.detach().cpu().numpy()} if mod.affine else {}
    b.pending.append((layer, w))
    return y


def _activation(kind):
    def convert(b, node, mod, x):
        return b.k.layers.Activation(kind, name=b.name(node), dtype=b.dtype)(x)

    return convert


def _relu6(b, node, mod, x):
    return b.k.layers.ReLU(max_value=6.0, name=b.name(node), dtype=b.dtype)(x)


def _leaky(b, node, mod, x):
    return b.k.layers.LeakyReLU(negative_slope=mod.negative_slope, name=b.name(node), dtype=b.dtype)(x)


def _elu(b, node, mod, x):
    return b.k.layers.ELU(alpha=mod.alpha, name=b.name(node), dtype=b.dtype)(x)


def _gelu(b, node, mod, x):
    if mod.approximate != "none":
        from ..keras_layers import GeluTanh  # Keras has no built-in layer for it

        return GeluTanh(name=b.name(node), dtype=b.dtype)(x)
    return b.k.layers.Activation("gelu", name=b.name(node), dtype=b.dtype)(x)


def _prelu(b, node, mod, x):
    rank = len(b.shape[node.args[0]])
    name = b.name(node)
    shared = list(range(1, rank - 1)) if rank >= 3 else None
    layer = b.k.layers.PReLU(shared_axes=shared, name=name, dtype=b.dtype)
    y = layer(x)
    alpha_shape = tuple(layer.weights[0].shape)
    alpha = np.broadcast_to(mod.weight.detach().cpu().numpy().reshape(-1), (alpha_shape[-1],)).reshape(alpha_shape)
    b.pending.append((layer, {"alpha": np.ascontiguousarray(alpha)}))
    return y


def _softmax(b, node, mod, x):
    rank = len(b.shape[node.args[0]])
    dim = mod.dim if mod.dim is not None else 1
    return b.k.layers.Softmax(axis=_axis(dim, rank, b.layout[node.args[0]].kind), name=b.name(node), dtype=b.dtype)(x)


def _same_windows(n: int, k: int, s: int, p: int, ceil_mode: bool) -> bool:
    """Do torch's pooling windows (padding p, ceil_mode) coincide with TF's 'same' ones?"""
    span = n + 2 * p - k
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # torch drops a last window that starts in the right padding
        out -= 1
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return out == -(-n // s) and total // 2 == p


def _pool(b, node, mod, x):
    L = b.k.layers
    kind = type(mod).__name__
    rank = int(kind[-2])
    k = _pair(mod.kernel_size, rank)
    s = _pair(mod.stride or mod.kernel_size, rank)
    p = _pair(mod.padding, rank)
    ceil_mode = bool(getattr(mod, "ceil_mode", False))
    spatial = b.shape[node.args[0]][2:]
    name = b.name(node)
    if kind.startswith("Max") and any(dd != 1 for dd in _pair(mod.dilation, rank)):
        raise b.unsupported(node, f"{kind} with dilation")
    cls = {"Max": {1: L.MaxPooling1D, 2: L.MaxPooling2D, 3: L.MaxPooling3D}, "Avg": {1: L.AveragePooling1D, 2: L.AveragePooling2D, 3: L.AveragePooling3D}}[kind[:3]][rank]
    if not any(p) and not ceil_mode:
        return cls(k, strides=s, padding="valid", name=name, dtype=b.dtype)(x)
    if kind.startswith("Avg") and getattr(mod, "count_include_pad", True) and not ceil_mode:
        # the padding counts as zeros: pad explicitly, then a 'valid' average
        zp = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[rank]
        x = zp(p[0] if rank == 1 else tuple((pp, pp) for pp in p), name=b.name(f"{name}__pad"), dtype=b.dtype)(x)
        b.align[f"{name}__pad"] = None
        return cls(k, strides=s, padding="valid", name=name, dtype=b.dtype)(x)
    # max pooling pads with -inf and count_include_pad=False leaves padding out: TF's 'same' does
    # both, when its windows are torch's
    if all(_same_windows(n, kk, ss, pp, ceil_mode) for n, kk, ss, pp in zip(spatial, k, s, p)):
        return cls(k, strides=s, padding="same", name=name, dtype=b.dtype)(x)
    raise b.unsupported(node, f"{kind}(padding={mod.padding}, ceil_mode={ceil_mode}): its windows are not TF's 'valid' or 'same' ones")


def _adaptive(b, node, mod, x):
    L = b.k.layers
    kind = type(mod).__name__
    rank = int(kind[-2])
    if any(o != 1 for o in _pair(mod.output_size, rank)):
        raise b.unsupported(node, f"{kind} to a size other than 1")
    cls = {"Max": {1: L.GlobalMaxPooling1D, 2: L.GlobalMaxPooling2D, 3: L.GlobalMaxPooling3D}, "Avg": {1: L.GlobalAveragePooling1D, 2: L.GlobalAveragePooling2D, 3: L.GlobalAveragePooling3D}}[kind[8:11]][rank]
    return cls(keepdims=True, name=b.name(node), dtype=b.dtype)(x)


def _flatten(b, node, x):
    """Keras' Flatten is channels-last; where only Linears consume it their columns are permuted,
    elsewhere (a concatenation, an output) the maps are put channels-first first, as torch has them."""
    src = node.all_input_nodes[0]
    rank = len(b.shape[src])
    name = b.name(node)
    if rank >= 3 and b.layout[src].kind == CF and not _feeds_only_linear(b, node):
        x = b.k.layers.Permute((rank - 1, *range(1, rank - 1)), name=b.name(f"{name}__channels_first"), dtype=b.dtype)(x)
        b.align[f"{name}__channels_first"] = None
        b.plain_flatten.add(node)
    return b.k.layers.Flatten(name=name, dtype=b.dtype)(x)


def _feeds_only_linear(b, node) -> bool:
    if not node.users:
        return False
    for user in node.users:
        if user.op == "call_module" and type(b.modules[user.target]).__name__ == "Linear":
            continue
        if user.op == "call_function" and getattr(user.target, "__name__", "") == "linear" and user.args[0] is node:
            continue
        if _elementwise(b, user) and _feeds_only_linear(b, user):
            continue
        return False
    return True


def _flatten_module(b, node, mod, x):
    if mod.start_dim != 1 or mod.end_dim != -1:
        raise b.unsupported(node, "Flatten other than (1, -1)")
    return _flatten(b, node, x)


def _identity(b, node, mod, x):
    if type(mod).__name__.startswith("Dropout"):
        return b.k.layers.Dropout(mod.p, name=b.name(node), dtype=b.dtype)(x)
    return b.k.layers.Identity(name=b.name(node), dtype=b.dtype)(x)


def _zeropad(b, node, mod, x):
    L = b.k.layers
    rank = len(b.shape[node.args[0]]) - 2
    if getattr(mod, "value", 0.0) != 0.0:
        raise b.unsupported(node, "constant padding with a value other than 0")
    pads = list(mod.padding)  # torch: last axis first
    pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2)][::-1]
    pairs = [(0, 0)] * (rank - len(pairs)) + pairs
    cls = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[rank]
    return cls(pairs[0] if rank == 1 else tuple(pairs), name=b.name(node), dtype=b.dtype)(x)


def _upsample(b, node, mod, x):
    return _interpolate(b, node, x, mod.scale_factor, mod.mode, mod.align_corners)


def _interpolate(b, node, x, scale, mode, align_corners):
    L = b.k.layers
    rank = len(b.shape[node.args[0]]) - 2
    if scale is None:
        raise b.unsupported(node, "interpolate to a size (give scale_factor)")
    size = tuple(int(v) for v in _pair(scale, rank)) if not isinstance(scale, float) else (int(scale),) * rank
    if any(float(v) != float(s) for v, s in zip(_pair(scale, rank) if not isinstance(scale, float) else (scale,) * rank, size)):
        raise b.unsupported(node, "a non-integer scale factor")
    if mode == "nearest":
        cls = {1: L.UpSampling1D, 2: L.UpSampling2D, 3: L.UpSampling3D}[rank]
        return cls(size[0] if rank == 1 else size, name=b.name(node), dtype=b.dtype)(x)
    if mode == "bilinear" and rank == 2 and align_corners:
        from ..keras_layers import UpSamplingAlignCorners  # TF's resize has no align_corners

        return UpSamplingAlignCorners(size, name=b.name(node), dtype=b.dtype)(x)
    if mode == "bilinear" and rank == 2:
        return L.UpSampling2D(size, interpolation="bilinear", name=b.name(node), dtype=b.dtype)(x)
    raise b.unsupported(node, f"interpolate mode '{mode}'")


_SIMPLE_ACTS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "SiLU": "silu", "Hardswish": "hard_swish", "Hardsigmoid": "hard_sigmoid", "SELU": "selu", "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish"}
_MODULES = {
    **{f"Conv{r}d": _conv for r in (1, 2, 3)},
    **{f"ConvTranspose{r}d": _conv for r in (1, 2, 3)},
    "Linear": _linear,
    **{f"BatchNorm{r}d": _batchnorm for r in (1, 2, 3)},
    "LayerNorm": _layernorm,
    "GroupNorm": _groupnorm,
    **{name: _activation(kind) for name, kind in _SIMPLE_ACTS.items()},
    "ReLU6": _relu6,
    "LeakyReLU": _leaky,
    "ELU": _elu,
    "GELU": _gelu,
    "PReLU": _prelu,
    "Softmax": _softmax,
    **{f"{m}Pool{r}d": _pool for m in ("Max", "Avg") for r in (1, 2, 3)},
    **{f"Adaptive{m}Pool{r}d": _adaptive for m in ("Max", "Avg") for r in (1, 2, 3)},
    "Flatten": _flatten_module,
    "Dropout": _identity,
    "Dropout1d": _identity,
    "Dropout2d": _identity,
    "Dropout3d": _identity,
    "Identity": _identity,
    **{f"ZeroPad{r}d": _zeropad for r in (1, 2, 3)},
    **{f"ConstantPad{r}d": _zeropad for r in (1, 2, 3)},
    "Upsample": _upsample,
}


# ---------------------------------------------------------------- functions and methods


def _merge(cls_name):
    def convert(b, node, args):
        a, c = args[0], args[1]
        if not all(hasattr(t, "shape") for t in (a, c)):
            raise b.unsupported(node, "arithmetic with a constant")
        return getattr(b.k.layers, cls_name)(name=b.name(node), dtype=b.dtype)([a, c])

    return convert


def _cat(b, node, args):
    tensors, dim = args[0], (args[1] if len(args) > 1 else node.kwargs.get("dim", 0))
    first = node.args[0][0]
    rank = len(b.shape[first])
    return b.k.layers.Concatenate(axis=_axis(dim, rank, b.layout[first].kind), name=b.name(node), dtype=b.dtype)(list(tensors))


def _fn_activation(kind):
    def convert(b, node, args):
        return b.k.layers.Activation(kind, name=b.name(node), dtype=b.dtype)(args[0])

    return convert


def _fn_flatten(b, node, args):
    start = args[1] if len(args) > 1 else node.kwargs.get("start_dim", 0 if node.op == "call_function" else 0)
    if node.op == "call_method" and len(args) == 1:
        start = 0
    if start != 1:
        raise b.unsupported(node, f"flatten from dim {start} (only start_dim=1 keeps the batch axis)")
    return _flatten(b, node, args[0])


def _fn_view(b, node, args):
    """view/reshape: (N, -1) of maps is a flatten; anything else is done in torch's order."""
    out = b.shape[node]
    src = node.args[0]
    if len(out) == 2 and len(b.shape[src]) >= 3:
        return _flatten(b, node, args[0])
    # reshape in torch's channels-first order: Permute to it, Reshape, Permute back (a Keras op
    # that really moves data, as the torch one does)
    L, x, name = b.k.layers, args[0], b.name(node)
    rin = len(b.shape[src])
    if b.layout[src].kind == "flat":
        raise b.unsupported(node, "view/reshape of a flattened vector")
    if rin >= 3:
        x = L.Permute((rin - 1, *range(1, rin - 1)), name=b.name(f"{name}__channels_first"), dtype=b.dtype)(x)
        b.align[f"{name}__channels_first"] = None
    y = L.Reshape(tuple(out[1:]), name=b.name(f"{name}__reshape") if len(out) >= 3 else name, dtype=b.dtype)(x)
    if len(out) >= 3:
        b.align[f"{name}__reshape"] = None
        y = L.Permute((*range(2, len(out)), 1), name=name, dtype=b.dtype)(y)
    return y


def _fn_pad(b, node, args):
    class _Pad:  # adapt F.pad's arguments to the ZeroPad module converter
        padding = args[1]
        value = node.kwargs.get("value", args[3] if len(args) > 3 else 0.0) or 0.0

    if node.kwargs.get("mode", args[2] if len(args) > 2 else "constant") != "constant":
        raise b.unsupported(node, "F.pad with a mode other than constant")
    return _zeropad(b, node, _Pad, args[0])


def _fn_interpolate(b, node, args):
    kw = node.kwargs
    return _interpolate(b, node, args[0], kw.get("scale_factor"), kw.get("mode", "nearest"), kw.get("align_corners"))


def _fn_with_weights(kind):
    """F.conv*d / F.linear on module weights: the same as the module, so build that module."""

    def convert(b, node, args):
        import torch

        x, weight = args[0], args[1]
        bias = args[2] if len(args) > 2 else node.kwargs.get("bias")
        if not isinstance(weight, torch.Tensor) or not (bias is None or isinstance(bias, torch.Tensor)):
            raise b.unsupported(node, f"F.{kind} whose weights are computed, not parameters")
        kw = dict(node.kwargs)
        if kind == "linear":
            mod = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            fn = _linear
        else:
            rank = weight.dim() - 2
            names = ("stride", "padding", "dilation", "groups")
            for i, key in enumerate(names):
                if len(args) > 3 + i:
                    kw[key] = args[3 + i]
            groups = kw.get("groups", 1)
            mod = getattr(torch.nn, f"Conv{rank}d")(weight.shape[1] * groups, weight.shape[0], weight.shape[2:], stride=kw.get("stride", 1),
                                                   padding=kw.get("padding", 0), dilation=kw.get("dilation", 1), groups=groups, bias=bias is not None)  # fmt: skip
            fn = _conv
        with torch.no_grad():
            mod.weight.copy_(weight)
            if bias is not None:
                mod.bias.copy_(bias)
        return fn(b, node, mod, x)

    return convert


def _functions():
    import torch
    import torch.nn.functional as F

    return {
        operator.add: _merge("Add"), torch.add: _merge("Add"),
        operator.sub: _merge("Subtract"), torch.sub: _merge("Subtract"),
        operator.mul: _merge("Multiply"), torch.mul: _merge("Multiply"),
        torch.cat: _cat, torch.concat: _cat,
        F.relu: _fn_activation("relu"), torch.relu: _fn_activation("relu"),
        torch.sigmoid: _fn_activation("sigmoid"), F.sigmoid: _fn_activation("sigmoid"),
        torch.tanh: _fn_activation("tanh"), F.tanh: _fn_activation("tanh"),
        F.silu: _fn_activation("silu"), F.gelu: _fn_activation("gelu"),
        torch.flatten: _fn_flatten,
        F.pad: _fn_pad,
        F.interpolate: _fn_interpolate,
        F.conv1d: _fn_with_weights("conv1d"), F.conv2d: _fn_with_weights("conv2d"), F.conv3d: _fn_with_weights("conv3d"),
        F.linear: _fn_with_weights("linear"),
    }  # fmt: skip


_METHODS = {
    "relu": _fn_activation("relu"),
    "sigmoid": _fn_activation("sigmoid"),
    "tanh": _fn_activation("tanh"),
    "flatten": _fn_flatten,
    "view": _fn_view,
    "reshape": _fn_view,
    "add": _merge("Add"),
    "sub": _merge("Subtract"),
    "mul": _merge("Multiply"),
}


def _out_layout(b, node) -> Layout:
    shape = b.shape[node]
    src = next((a for a in node.all_input_nodes if a in b.layout), None)
    if len(shape) >= 3:
        return Layout(CF)
    if node in b.plain_flatten:
        return Layout(PLAIN)
    if src is not None and b.layout[src].kind == CF and len(b.shape[src]) >= 3 and len(shape) == 2:
        # a flatten of channels-last Keras maps: remember the shape for the next Linear
        s = b.shape[src]
        return Layout("flat", (*s[2:], s[1]))
    if src is not None and b.layout[src].kind == "flat" and _elementwise(b, node):
        return b.layout[src]  # element-wise ops keep the order
    return Layout(PLAIN)


_ELEMENTWISE_MODULES = {*_SIMPLE_ACTS, "ReLU6", "LeakyReLU", "ELU", "GELU", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "Identity"}


def _elementwise(b, node) -> bool:
    if node.op == "call_module":
        return type(b.modules[node.target]).__name__ in _ELEMENTWISE_MODULES
    name = getattr(node.target, "__name__", str(node.target))
    return name in ("relu", "sigmoid", "tanh", "silu", "gelu")


def torch_to_keras(module, input_shape, *, name: str | None = None, dtype: str | None = None):
    """Trace ``module`` on ``input_shape`` (channels-first, without batch) and build a Keras model.

    Layer names are the module's qualified names, so ``xconv.compare(keras_model, module, x)``
    lines them up. Raises :class:`UnsupportedLayerError` naming the node, the op and the source
    line for anything it cannot translate, before a model is returned.
    """
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    from ..frameworks.keras_side import keras

    k = keras()
    shapes = [tuple(input_shape)] if isinstance(input_shape[0], int) else [tuple(s) for s in input_shape]
    try:
        tracer = torch.fx.Tracer()
        tracer.record_stack_traces = True  # so an error can name the source line of a node
        gm = torch.fx.GraphModule(tracer.root if hasattr(tracer, "root") and tracer.root is not None else module, tracer.trace(module))
    except Exception as exc:  # data-dependent control flow and the like
        raise BadInputError(f"torch.fx could not trace {type(module).__name__}: {exc}") from exc
    param = next(module.parameters(), None)
    tdtype = param.dtype if param is not None else torch.float32
    dtype = dtype or str(tdtype).replace("torch.", "")
    with torch.no_grad():
        ShapeProp(gm).propagate(*[torch.zeros((1, *s), dtype=tdtype) for s in shapes])
    b = _Builder(k, gm, dtype)
    functions = _functions()
    inputs, outputs = [], []
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):
            b.shape[node] = tuple(meta.shape)
        if node.op == "placeholder":
            s = b.shape[node]
            cl = (*s[2:], s[1]) if len(s) >= 3 else tuple(s[1:])
            t = k.Input(shape=cl, name=b.name(node), dtype=dtype)
            inputs.append(t)
            b.env[node], b.layout[node] = t, Layout.for_rank(len(s))
            continue
        if node.op == "output":
            res = node.args[0]
            outputs = [b.env[n] for n in (res if isinstance(res, (tuple, list)) else [res])]
            continue
        if node.op == "get_attr":  # a parameter used by a functional call (F.conv2d(x, self.weight))
            value = gm
            for part in node.target.split("."):
                value = getattr(value, part)
            b.env[node] = value
            continue
        args = [b.env.get(a, a) if isinstance(a, torch.fx.Node) else (type(a)(b.env.get(x, x) if isinstance(x, torch.fx.Node) else x for x in a) if isinstance(a, (list, tuple)) else a) for a in node.args]
        if node.op == "call_module":
            mod = b.modules[node.target]
            fn = _MODULES.get(type(mod).__name__)
            if fn is None:
                raise b.unsupported(node, type(mod).__name__)
            out = fn(b, node, mod, args[0])
        elif node.op == "call_function":
            if (node.target is getattr and node.args[1] == "shape") or (
                node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node) and b.env.get(node.args[0], 0) is None
            ):  # x.shape / x.shape[0]: shape queries feed view(); nothing to build
                b.env[node] = None
                continue
            fn = functions.get(node.target)
            if fn is None:
                raise b.unsupported(node, getattr(node.target, "__name__", str(node.target)))
            out = fn(b, node, args)
        elif node.op == "call_method":
            if node.target == "size":  # shape queries feed view(); nothing to build
                b.env[node] = None
                continue
            fn = _METHODS.get(node.target)
            if fn is None:
                raise b.unsupported(node, f".{node.target}()")
            out = fn(b, node, args)
        else:
            raise b.unsupported(node, node.op)
        b.env[node] = out
        b.layout[node] = _out_layout(b, node)
    model = k.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0], name=name or type(module).__name__)
    model.xconv_align = b.align  # read by xconv.compare; not saved with the model
    for layer, arrays in b.pending:
        by_name = {v.path.rsplit("/", 1)[-1]: v for v in layer.weights}
        for key, value in arrays.items():
            by_name[key].assign(np.asarray(value, dtype=dtype))
    return model
