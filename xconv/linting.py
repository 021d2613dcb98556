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

from dataclasses import dataclass

import numpy as np

from . import layouts
from .errors import BadInputError
from .frameworks import framework_of
from .padding import as_tuple, same_pads

__all__ = ["lint", "Finding"]


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


def _chain(tmodule, layer_name: str, tname: str) -> list:
    modules = dict(tmodule.named_modules())
    names = getattr(tmodule, "xconv_chains", {}).get(layer_name)
    if names is None:
        names = [n for n in (f"{tname}_pad", f"{tname}__pad", tname) if n in modules]
        names += [n for n in modules if n.startswith((f"{tname}_", f"{tname}__")) and n not in names]
    return [(n, modules[n]) for n in names if n in modules]


def lint(keras_model, torch_module, *, optimizer=None) -> list[Finding]:
    """Compare the configurations of a Keras model and its PyTorch port; return the findings.

    The training traps (frozen BatchNorms, dropout rates, regularizers and, given
    ``optimizer=(keras_optimizer, torch_optimizer)``, epsilon and weight decay) come from
    :mod:`xconv.training.lint_rules`."""
    from .frameworks import keras_side as ks
    from .frameworks import torch_side as ts
    from .transfer import _pair

    if framework_of(keras_model) != "keras" or framework_of(torch_module) != "torch":
        raise BadInputError("lint(keras_model, torch_module): a Keras model first, then its PyTorch port.")
    findings: list[Finding] = []
    pairs, _ = _pair(ks.weighted_layers(keras_model), ts.weighted_modules(torch_module))
    for layer, tname, module in pairs:
        kind = type(layer).__name__
        chain = _chain(torch_module, layer.name, tname)
        if kind.startswith("Conv") and "Transpose" not in kind:
            findings += _conv_padding(layer, tname, module, chain)
        if "Transpose" in kind:
            findings += _transpose(layer, tname, module)
        if kind == "BatchNormalization":
            findings += _batchnorm(layer, tname, module)
        if kind == "Dense":
            findings += _flatten_order(layer, tname, module, ks)
        act = getattr(layer, "activation", None)
        act_name = getattr(act, "__name__", str(act))
        for cname, cmod in chain:
            findings += _activation(layer.name, act_name, cname, cmod)
    # unweighted layers: by name, else in order within their kind
    k_layers = list(ks.iter_layers(keras_model))
    modules = [(n, m) for n, m in torch_module.named_modules() if n]
    by_name = dict(modules)
    mapping = getattr(torch_module, "xconv_outputs", {})
    for cat, k_types in _CATEGORIES.items():
        ks_ = [l for l in k_layers if type(l).__name__ in k_types]
        ts_ = [(n, m) for n, m in modules if type(m).__name__ in _TORCH_CATEGORIES[cat]]
        used = set()
        for i, layer in enumerate(ks_):
            tname = layer.name if layer.name in by_name and type(by_name[layer.name]).__name__ in _TORCH_CATEGORIES[cat] else mapping.get(layer.name)
            if tname not in by_name or type(by_name[tname]).__name__ not in _TORCH_CATEGORIES[cat]:
                rest = [(n, m) for n, m in ts_ if n not in used]
                if not rest:
                    continue
                tname = rest[0][0]
            used.add(tname)
            findings += _unweighted(cat, layer, tname, by_name[tname])
    from .training.lint_rules import training_findings

    findings += training_findings(keras_model, torch_module, pairs, optimizer=optimizer)
    return findings


def _conv_padding(layer, tname, module, chain) -> list[Finding]:
    rank = len(layer.kernel_size)
    k, s, d = as_tuple(layer.kernel_size, rank), as_tuple(layer.strides, rank), as_tuple(layer.dilation_rate, rank)
    pad_modules = [m for n, m in chain if type(m).__name__.startswith(("ZeroPad", "ConstantPad"))]
    tp = module.padding
    if isinstance(tp, str):
        torch_pads = "same" if tp == "same" else ((0, 0),) * rank
    else:
        torch_pads = tuple((p, p) for p in as_tuple(tp, rank))
    if layer.padding == "same":
        spatial = tuple(layer.input.shape[1:-1])
        if any(n is None for n in spatial):
            return []
        want = same_pads(spatial, k, s, d)
        if torch_pads == "same":
            return []
        if pad_modules:
            pads = list(pad_modules[-1].padding)
            got = tuple((pads[2 * i], pads[2 * i + 1]) for i in range(len(pads) // 2))[::-1]
            got = tuple((a + p[0], b + p[1]) for (a, b), p in zip(got, torch_pads))
        else:
            got = torch_pads
        if tuple(got) != tuple(want):
            even = any(kk % 2 == 0 for kk in k)
            trap = "even-kernel 'same' padding" if even else ("'same' padding with stride > 1" if any(ss > 1 for ss in s) else "'same' padding")
            return [Finding(trap, layer.name, tname, f"Keras pads {want} (before, after) per axis; the port pads {got}.",
                            f"put nn.ZeroPad{rank}d({tuple(p for pair in reversed(want) for p in pair)}) before '{tname}' and set padding=0.")]  # fmt: skip
    elif layer.padding == "valid" and (pad_modules or (torch_pads != "same" and any(p != (0, 0) for p in torch_pads)) or torch_pads == "same"):
        return [Finding("'valid' padding", layer.name, tname, f"Keras pads nothing; the port pads ({tp}).", f"set padding=0 on '{tname}'.")]
    return []


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


def _flatten_order(layer, tname, module, ks) -> list[Finding]:
    shape = ks.flatten_source_shape(layer)
    if not shape or shape[-1] == 1 or int(np.prod(shape[:-1])) == 1:
        return []
    kernel = ks.layer_weights(layer)["kernel"]
    weight = module.weight.detach().cpu().numpy()
    if weight.shape == kernel.T.shape and np.array_equal(weight, layouts.dense_kernel_to_torch(kernel)) and not np.array_equal(
        weight, layouts.flatten_dense_kernel_to_torch(kernel, shape)
    ):
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

        want = torch_dim(axis, rank, "cf" if rank >= 3 else "plain")
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
