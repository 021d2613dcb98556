"""Build a zoo spec as an idiomatic channels-first ``nn.Module``.

Each Keras layer becomes the plain torch layer (``conv4_2`` *is* an ``nn.Conv2d``); TF 'same'
padding that torch cannot express symmetrically becomes an explicit ``nn.ZeroPadNd`` in front
(``conv4_2_pad``), and a fused activation follows as its own module (``conv4_2_relu``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..padding import conv_output_size, is_symmetric, same_pads, torch_pad_arg
from .specs import ModelSpec

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_ZEROPAD = {1: nn.ZeroPad1d, 2: nn.ZeroPad2d, 3: nn.ZeroPad3d}
_ACT = {"relu": lambda: nn.ReLU(), "softmax": lambda: nn.Softmax(dim=1)}


class ZooNet(nn.Module):
    """Runs its children in order and returns the outputs the spec names.

    ``xconv_outputs`` maps a Keras layer name to the module whose output is that layer's
    activation (after its fused activation); :func:`xconv.compare` reads it to align layers.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec_name = spec.name
        self.output_names = spec.outputs
        self.xconv_outputs: dict[str, str] = {}
        # Keras layer -> the modules that compute it, in order (read by compare's local mode)
        self.xconv_chains: dict[str, list[str]] = {}
        # Dense layers fed by a Flatten: the channels-last shape that was flattened (for inspect)
        self.xconv_flatten_of: dict[str, tuple[int, ...]] = {}
        flattened = None
        spatial, channels = list(spec.input_shape[:-1]), spec.input_shape[-1]
        features = int(np.prod(spec.input_shape))
        for ls in spec.layers:
            rank = len(ls.kernel)
            if ls.op == "conv":
                pads = same_pads(spatial, ls.kernel, ls.strides) if ls.padding == "same" else ((0, 0),) * rank
                padding = tuple(b for b, _ in pads)
                if not is_symmetric(pads):
                    # TF puts the odd pixel after; torch's padding= is symmetric
                    self.add_module(f"{ls.name}_pad", _ZEROPAD[rank](torch_pad_arg(pads)))
                    padding = 0
                self.add_module(ls.name, _CONV[rank](channels, ls.units, ls.kernel, stride=ls.strides, padding=padding))
                spatial = [conv_output_size(n, k, ls.strides, 1, ls.padding) for n, k in zip(spatial, ls.kernel)]
                channels = ls.units
                features = channels * int(np.prod(spatial))
            elif ls.op == "maxpool":
                self.add_module(ls.name, _POOL[rank](ls.kernel, stride=ls.strides))
                spatial = [conv_output_size(n, k, ls.strides) for n, k in zip(spatial, ls.kernel)]
                features = channels * int(np.prod(spatial))
            elif ls.op == "flatten":
                self.add_module(ls.name, nn.Flatten())
                flattened = (*spatial, channels)
            elif ls.op == "dense":
                self.add_module(ls.name, nn.Linear(features, ls.units))
                if flattened:
                    self.xconv_flatten_of[ls.name], flattened = flattened, None
                features = ls.units
            else:
                raise ValueError(f"unknown op {ls.op!r} in zoo spec {spec.name}")
            last = ls.name
            if ls.activation:
                last = f"{ls.name}_{ls.activation}"
                self.add_module(last, _ACT[ls.activation]())
            self.xconv_outputs[ls.name] = last
            self.xconv_chains[ls.name] = [n for n in (f"{ls.name}_pad", ls.name, last) if n in self._modules]
        self._emit = {self.xconv_outputs[n]: n for n in spec.outputs}

    def forward(self, x: torch.Tensor):
        found = {}
        for name, module in self.named_children():
            x = module(x)
            if name in self._emit:
                found[self._emit[name]] = x
        outs = tuple(found[n] for n in self.output_names)
        return outs if len(outs) > 1 else outs[0]


def build(spec: ModelSpec, *, seed: int | None, dtype: str) -> ZooNet:
    with torch.random.fork_rng(devices=[]):  # seed without touching the caller's RNG
        if seed is not None:
            torch.manual_seed(seed)
        net = ZooNet(spec)
    return net.to(getattr(torch, dtype)).eval()
