"""Find porting traps by reading two models' configurations, before running anything.

>>> findings = lint(keras_model, torch_module)           # doctest: +SKIP
>>> print(findings[0])                                   # doctest: +SKIP
conv4_2 / conv4_2: even-kernel 'same' padding: Keras pads (1, 2) ...

Each finding names both layers, what differs and the fix. The traps: 'same' padding torch
cannot express symmetrically (even kernels, strides), 'valid' vs padded, average-pool padding
counting, BatchNorm epsilon and momentum, LayerNorm epsilon, LeakyReLU slopes, GELU
approximation, softmax axis, bilinear align_corners, ConvTranspose output_padding, and a
Dense after a Flatten whose weights were copied without reordering them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import layouts
from .layouts import LayoutKind
from .errors import BadInputError
from .frameworks import framework_of
from .padding import as_tuple, keras_pairs, pairs_from_torch_pad, same_pads, torch_pad_arg

__all__ = ["lint", "Finding", "LintContext", "RULES", "rule"]


@dataclass(frozen=True)
class Finding:
    """One porting trap: which trap, the two layers it is in, what differs, and the fix."""

    trap: str
    keras_layer: str
    torch_module: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.keras_layer} / {self.torch_module}: {self.trap}: {self.message} Fix: {self.fix}"


_CATEGORIES = {
    "pool": ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D"),
    "leaky": ("LeakyReLU",),
    "softmax": ("Softmax",),
    "upsample": ("UpSampling1D", "UpSampling2D", "UpSampling3D"),
    "layernorm": ("LayerNormalization",),
}
_TORCH_CATEGORIES = {
    "pool": ("MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"),
    "leaky": ("LeakyReLU",),
    "softmax": ("Softmax",),
    "upsample": ("Upsample",),
    "layernorm": ("LayerNorm",),
    "gelu": ("GELU",),
}


@dataclass
class LintContext:
    """What every rule reads: the two models and how their layers pair.

    ``pairs`` holds ``(keras layer, torch module path, torch module)`` for every layer with
    weights; ``chains`` each layer's modules in order; ``pads`` the explicit paddings (torch pad
    lists: ``nn.ZeroPad2d``, ``F.pad``, in ``nn.Sequential`` or in ``forward``) before a conv;
    ``input_layouts`` how a Linear's input is flattened (``LayoutKind.FLAT``: channels-first maps, as
    ``torch.flatten`` does; ``PLAIN``: moved channels-last first). The last two come from the
    module's exported graph (``graph`` is None where export failed: then names are read).
    """

    keras_model: object
    torch_module: object
    pairs: list
    chains: dict
    pads: dict
    input_layouts: dict
    graph: object = None


Rule = Callable[[LintContext], "list[Finding]"]
RULES: list[Rule] = []  # every rule lint() runs, in order; add one with @rule


def rule(fn: Rule) -> Rule:
    """Register a lint rule: ``fn(ctx: LintContext) -> list[Finding]`` (a name registered twice is refused)."""
    if any(r.__name__ == fn.__name__ for r in RULES):
        raise ValueError(f"lint rule {fn.__name__!r} is registered twice")
    RULES.append(fn)
    return fn


def _chain(tmodule, layer_name: str, tname: str) -> list:
    modules = dict(tmodule.named_modules())
    names = getattr(tmodule, "xconv_chains", {}).get(layer_name)
    if names is None:
        names = [n for n in (f"{tname}_pad", f"{tname}__pad", tname) if n in modules]
        names += [n for n in modules if n.startswith((f"{tname}_", f"{tname}__")) and n not in names]
    return [(n, modules[n]) for n in names if n in modules]


def _graph_context(keras_model, torch_module):
    """Pairs, chains, paddings and flatten layouts from the module's exported graph (None if it cannot export)."""
    from .capture.torch_graph import ExportFailedError
    from .comparison.align import align_graph
    from .comparison.core import _pins
    from .frameworks import keras_side as ks
    from .frameworks import torch_side as ts

    shape = tuple(keras_model.inputs[0].shape[1:]) if len(keras_model.inputs) == 1 else None
    if shape is None or any(d is None for d in shape):
        return None
    t = ts.torch()
    param = next(iter(ts.module_state(torch_module).values()), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else t.float32
    x = t.zeros((1, shape[-1], *shape[:-1]) if len(shape) >= 2 else (1, *shape), dtype=dtype, device=param.device if param is not None else "cpu")
    try:
        graph = ts.export_graph(torch_module, [x])
    except ExportFailedError:
        return None
    names = {l.name for l in ks.iter_layers(keras_model)}
    matches = align_graph(keras_model, [], graph, torch_module, _pins(None, torch_module, keras_model, names), 1)
    modules = dict(torch_module.named_modules())
    pairs, chains, pads, layouts_ = [], {}, {}, {}
    for layer in ks.weighted_layers(keras_model):
        m = matches.get(layer.name)
        if m is None or not m.modules or m.modules[0] not in modules:
            continue
        tname = m.modules[-1] if type(layer).__name__ == "SeparableConv2D" else m.modules[0]
        pairs.append((layer, tname, modules[tname]))
        chain = [p for p in dict.fromkeys(m.modules + [graph[m.node].module_path if m.node in graph else ""]) if p in modules]
        chains[layer.name] = [(p, modules[p]) for p in chain]
        pads[layer.name] = list(m.pads)
        zp = _keras_zero_padding_layer(layer)
        if zp is not None and matches.get(zp.name) is not None and matches[zp.name].node in graph:
            node = graph[matches[zp.name].node]  # the port pads as its own step, as Keras does
            if node.op in ("aten::pad", "aten::constant_pad_nd"):
                pads[layer.name].insert(0, [int(v) for v in node.args[1]])
        layouts_[layer.name] = m.input_layout
    return pairs, chains, pads, layouts_, graph


def context(keras_model, torch_module) -> LintContext:
    """The pairing the rules read: from the exported graph, else by names and order."""
    from .frameworks import keras_side as ks
    from .frameworks import torch_side as ts
    from .transfer import _pair

    found = _graph_context(keras_model, torch_module)
    if found is not None:
        pairs, chains, pads, layouts_, graph = found
        return LintContext(keras_model, torch_module, pairs, chains, pads, layouts_, graph)
    pairs, _ = _pair(ks.weighted_layers(keras_model), ts.weighted_modules(torch_module))
    chains = {layer.name: _chain(torch_module, layer.name, tname) for layer, tname, _ in pairs}
    pads = {
        name: [list(m.padding) for _, m in chain if type(m).__name__.startswith(("ZeroPad", "ConstantPad"))]
        for name, chain in chains.items()
    }  # fmt: skip
    return LintContext(keras_model, torch_module, pairs, chains, pads, {}, None)


def lint(keras_model, torch_module, *, optimizer=None) -> list[Finding]:
    """Compare the configurations of a Keras model and its PyTorch port; return the findings.

    Every rule of :data:`RULES` runs on one :class:`LintContext`; the training traps are rules
    of :mod:`xconv.training.lint_rules`, and ``optimizer=(keras_optimizer, torch_optimizer)``
    adds its optimizer checks (epsilon placement, weight decay, hyperparameters, clipping).
    """
    if framework_of(keras_model) != "keras" or framework_of(torch_module) != "torch":
        raise BadInputError("lint(keras_model, torch_module): a Keras model first, then its PyTorch port.")
    ctx = context(keras_model, torch_module)
    findings: list[Finding] = []
    for r in RULES:
        findings += r(ctx)
    if optimizer is not None:
        from .training.lint_rules import optimizer_findings

        findings += optimizer_findings(optimizer)
    return findings


@rule
def conv_padding(ctx: LintContext) -> list[Finding]:
    out = []
    for layer, tname, module in ctx.pairs:
        kind = type(layer).__name__
        if kind.startswith(("Conv", "DepthwiseConv")) and "Transpose" not in kind and hasattr(module, "padding"):
            out += _conv_padding(layer, tname, module, ctx.pads.get(layer.name, []))
    return out


@rule
def transpose_output_padding(ctx: LintContext) -> list[Finding]:
    return [f for layer, tname, module in ctx.pairs if "Transpose" in type(layer).__name__ for f in _transpose(layer, tname, module)]


@rule
def batchnorm_config(ctx: LintContext) -> list[Finding]:
    return [f for layer, tname, module in ctx.pairs if type(layer).__name__ == "BatchNormalization" for f in _batchnorm(layer, tname, module)]


@rule
def flatten_order(ctx: LintContext) -> list[Finding]:
    from .frameworks import keras_side as ks

    return [
        f for layer, tname, module in ctx.pairs if type(layer).__name__ == "Dense"
        for f in _flatten_order(layer, tname, module, ks, ctx.input_layouts.get(layer.name))
    ]  # fmt: skip


@rule
def fused_activation(ctx: LintContext) -> list[Finding]:
    out = []
    for layer, _tname, _module in ctx.pairs:
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", str(act))
        for cname, cmod in ctx.chains.get(layer.name, []):
            out += _activation(layer.name, act_name, cname, cmod)
    return out


@rule
def layers_without_weights(ctx: LintContext) -> list[Finding]:
    """By name, else in order within their kind."""
    from .frameworks import keras_side as ks

    findings = []
    k_layers = list(ks.iter_layers(ctx.keras_model))
    modules = [(n, m) for n, m in ctx.torch_module.named_modules() if n]
    by_name = dict(modules)
    mapping = getattr(ctx.torch_module, "xconv_outputs", {})
    for cat, k_types in _CATEGORIES.items():
        ks_ = [l for l in k_layers if type(l).__name__ in k_types]
        ts_ = [(n, m) for n, m in modules if type(m).__name__ in _TORCH_CATEGORIES[cat]]
        used = set()
        for layer in ks_:
            tname = layer.name if layer.name in by_name and type(by_name[layer.name]).__name__ in _TORCH_CATEGORIES[cat] else mapping.get(layer.name)
            if tname not in by_name or type(by_name[tname]).__name__ not in _TORCH_CATEGORIES[cat]:
                rest = [(n, m) for n, m in ts_ if n not in used]
                if not rest:
                    continue
                tname = rest[0][0]
            used.add(tname)
            findings += _unweighted(cat, layer, tname, by_name[tname])
    return findings


def _keras_zero_padding_layer(layer):
    """The ZeroPadding layer right before ``layer``, if there is one."""
    from .frameworks.keras_side import _producer

    try:
        op = _producer(layer.input)
    except (AttributeError, ValueError):
        return None
    return op if op is not None and type(op).__name__.startswith("ZeroPadding") else None


def _keras_zero_padding(layer, rank: int) -> tuple:
    """The (before, after) pairs a ZeroPadding layer right before ``layer`` adds (Keras' own explicit padding)."""
    op = _keras_zero_padding_layer(layer)
    if op is None:
        return ((0, 0),) * rank
    pad = op.padding
    return keras_pairs(pad, rank)


def _conv_padding(layer, tname, module, explicit) -> list[Finding]:
    """Keras' padding (a ZeroPadding layer before it, plus 'same' or 'causal') against the port's
    (explicit pads before the conv, ``nn.ZeroPadNd`` or ``F.pad``, plus the conv's ``padding=``).
    ``explicit``: torch pad lists, last axis first, as F.pad takes them."""
    rank = len(layer.kernel_size)
    k, s, d = as_tuple(layer.kernel_size, rank), as_tuple(layer.strides, rank), as_tuple(layer.dilation_rate, rank)
    spatial = tuple(layer.input.shape[1:-1])
    if any(n is None for n in spatial):
        return []
    zero = _keras_zero_padding(layer, rank)
    if layer.padding == "same":
        own = same_pads(spatial, k, s, d)
    elif layer.padding == "causal":
        own = tuple(((kk - 1) * dd, 0) for kk, dd in zip(k, d))
    else:
        own = ((0, 0),) * rank
    want = tuple((a + c, b + e) for (a, b), (c, e) in zip(zero, own))
    tp = module.padding
    if isinstance(tp, str):
        torch_pads = same_pads(tuple(n - a - b for n, (a, b) in zip(spatial, zero)), k, (1,) * rank, d) if tp == "same" else ((0, 0),) * rank
    else:
        torch_pads = tuple((p, p) for p in as_tuple(tp, rank))
    got = torch_pads
    for pads in explicit:  # (left, right, top, bottom, ...): last axis first
        pairs_ = pairs_from_torch_pad(pads)[-rank:]  # the spatial axes: the last rank
        pairs_ = ((0, 0),) * (rank - len(pairs_)) + pairs_
        got = tuple((a + p[0], b + p[1]) for (a, b), p in zip(pairs_, got))
    mode = getattr(module, "padding_mode", "zeros")
    if tuple(got) == tuple(want):
        if mode != "zeros" and any(map(any, torch_pads)):  # the amounts are right, the values are not
            return [Finding("padding mode", layer.name, tname, f"Keras pads with zeros; the port's conv pads {torch_pads} with padding_mode='{mode}', so the border outputs differ.",
                            f"build '{tname}' with padding_mode='zeros' (the default).")]  # fmt: skip
        return []
    if layer.padding == "valid":
        return [Finding("'valid' padding", layer.name, tname, f"Keras pads {want} (before, after) per axis{' (its ZeroPadding layer)' if any(map(any, zero)) else ''}; the port pads {got} ({tp}).",
                        f"set padding=0 on '{tname}'" + (f" after padding by {want}." if any(map(any, want)) else "."))]  # fmt: skip
    if layer.padding == "causal":
        return [Finding("'causal' padding", layer.name, tname, f"Keras pads {want} (before, after): (k-1)*dilation on the left only; the port pads {got}.",
                        f"F.pad the input by {torch_pad_arg(want)} and set padding=0 on '{tname}'.")]  # fmt: skip
    even = any(kk % 2 == 0 for kk in k)
    trap = "even-kernel 'same' padding" if even else ("'same' padding with stride > 1" if any(ss > 1 for ss in s) else "'same' padding")
    return [Finding(trap, layer.name, tname, f"Keras pads {want} (before, after) per axis; the port pads {got}.",
                    f"put nn.ZeroPad{rank}d({torch_pad_arg(want)}) before '{tname}' and set padding=0.")]  # fmt: skip


def _transpose(layer, tname, module) -> list[Finding]:
    rank = len(layer.kernel_size)
    op = layer.output_padding
    keras_op = (0,) * rank if op is None else as_tuple(op, rank)
    if layer.padding == "valid" and tuple(module.output_padding) != keras_op and op is not None:
        return [Finding("ConvTranspose output_padding", layer.name, tname, f"Keras output_padding={keras_op}; torch output_padding={tuple(module.output_padding)}.", f"set output_padding={keras_op}.")]
    if op is not None and tuple(module.output_padding) != keras_op:
        return [Finding("ConvTranspose output_padding", layer.name, tname, f"Keras output_padding={keras_op}; torch output_padding={tuple(module.output_padding)}.", f"set output_padding={keras_op}.")]
    return []


def _batchnorm(layer, tname, module) -> list[Finding]:
    out = []
    if not np.isclose(layer.epsilon, getattr(module, "eps", layer.epsilon), rtol=1e-6, atol=0):
        out.append(Finding("BatchNorm epsilon", layer.name, tname, f"Keras epsilon={layer.epsilon}; torch eps={module.eps} (torch's default is 1e-5, Keras' 1e-3).", f"build '{tname}' with eps={layer.epsilon}."))
    want = 1.0 - float(layer.momentum)
    if module.momentum is not None and not np.isclose(module.momentum, want, rtol=1e-6, atol=1e-9):
        out.append(Finding("BatchNorm momentum", layer.name, tname, f"Keras momentum={layer.momentum} keeps that much of the old statistic; torch momentum={module.momentum} is the weight of the new one.", f"build '{tname}' with momentum={round(want, 6)} (1 - Keras momentum)."))
    return out


def _flatten_order(layer, tname, module, ks, input_layout: LayoutKind | None = None) -> list[Finding]:
    shape = ks.flatten_source_shape(layer)
    if not shape or shape[-1] == 1 or int(np.prod(shape[:-1])) == 1:
        return []
    kernel = ks.layer_weights(layer)["kernel"]
    weight = module.weight.detach().cpu().numpy()
    plain, reordered = layouts.dense_kernel_to_torch(kernel), layouts.flatten_dense_kernel_to_torch(kernel, shape)
    if input_layout == LayoutKind.PLAIN:  # the port moves channels last before flattening: the plain transpose is right
        if weight.shape == kernel.T.shape and np.array_equal(weight, reordered) and not np.array_equal(weight, plain):
            return [Finding("Flatten order before Dense", layer.name, tname, f"the port flattens channels-last {shape} maps (permute before flatten), as Keras does, but the Linear's rows were reordered for a channels-first flatten.",
                            "copy the Keras kernel merely transposed (layouts.dense_kernel_to_torch), or flatten without the permute.")]  # fmt: skip
        return []
    if weight.shape == kernel.T.shape and np.array_equal(weight, plain) and not np.array_equal(weight, reordered):
        return [Finding("Flatten order before Dense", layer.name, tname, f"the Linear holds the Keras kernel merely transposed, but it follows a Flatten of {shape} maps, which Keras flattens channels-last and torch channels-first.",
                        "copy it with xconv.transfer_weights (or layouts.flatten_dense_kernel_to_torch), which reorders the rows.")]  # fmt: skip
    return []


def _activation(layer_name, act_name, cname, cmod) -> list[Finding]:
    kind = type(cmod).__name__
    if kind == "GELU" and act_name == "gelu" and cmod.approximate != "none":
        return [Finding("GELU approximation", layer_name, cname, "Keras' gelu is the exact (erf) form; the port uses approximate='tanh'.", f"use nn.GELU() in '{cname}'.")]
    if kind == "Softmax" and act_name == "softmax" and cmod.dim not in (1, -1, None):
        return [Finding("softmax axis", layer_name, cname, f"Keras takes the softmax over the last (channel) axis; torch dim={cmod.dim}.", "use nn.Softmax(dim=1) on channels-first tensors.")]
    if kind == "LeakyReLU" and act_name == "leaky_relu" and not np.isclose(cmod.negative_slope, 0.2):
        return [Finding("LeakyReLU slope", layer_name, cname, f"keras.activations.leaky_relu uses slope 0.2; torch negative_slope={cmod.negative_slope}.", "use nn.LeakyReLU(0.2).")]
    return []


def _unweighted(cat, layer, tname, module) -> list[Finding]:
    if cat == "leaky":
        slope = float(getattr(layer, "negative_slope", getattr(layer, "alpha", 0.3)))
        if not np.isclose(slope, module.negative_slope):
            return [Finding("LeakyReLU slope", layer.name, tname, f"Keras negative_slope={slope} (the layer's default is 0.3); torch negative_slope={module.negative_slope} (default 0.01).", f"use nn.LeakyReLU({slope}).")]
    if cat == "softmax":
        axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
        rank = len(layer.input.shape)
        from .translate.layers import torch_dim

        want = torch_dim(axis, rank, LayoutKind.for_rank(rank))
        dim = module.dim if module.dim is not None else 1
        if dim % rank != want:
            return [Finding("softmax axis", layer.name, tname, f"Keras normalises axis {axis}, which is torch dim {want}; the port uses dim={module.dim}.", f"use nn.Softmax(dim={want}).")]
    if cat == "layernorm" and not np.isclose(layer.epsilon, module.eps, rtol=1e-6, atol=0):
        return [Finding("LayerNorm epsilon", layer.name, tname, f"Keras epsilon={layer.epsilon}; torch eps={module.eps} (defaults 1e-3 and 1e-5).", f"build '{tname}' with eps={layer.epsilon}.")]
    if cat == "upsample" and getattr(layer, "interpolation", "nearest") == "bilinear":
        if module.mode == "bilinear" and module.align_corners:
            return [Finding("bilinear align_corners", layer.name, tname, "TensorFlow resizes with half-pixel centres; the port uses align_corners=True.", "use align_corners=False.")]
    if cat == "pool" and type(layer).__name__.startswith("Average") and layer.padding == "same":
        if any(p for p in as_tuple(module.padding, len(layer.pool_size))) and getattr(module, "count_include_pad", True):
            return [Finding("average-pool padding counting", layer.name, tname, "Keras' 'same' average leaves the padding out of each window's count; the port counts it (count_include_pad=True).", "use count_include_pad=False (or xconv's AvgPoolSame for uneven padding).")]
    return []


from .training import lint_rules as _training_rules  # noqa: E402,F401 - registers the training rules
