"""Separable convolutions: Keras ``SeparableConv1D/2D`` <-> one torch module holding a depthwise
conv (``depthwise``, ``groups=in``) and a 1x1 conv (``pointwise``), the way ports write it::

    class SeparableConv2d(nn.Module):
        def __init__(self, cin, cout, k, multiplier=1):
            super().__init__()
            self.depthwise = nn.Conv2d(cin, cin * multiplier, k, groups=cin, bias=False)
            self.pointwise = nn.Conv2d(cin * multiplier, cout, 1)

The module's class name is what says it is one unit (``SeparableConv1d``/``SeparableConv2d``);
its arrays are read as a whole (``depthwise.weight``, ``pointwise.weight``, ``pointwise.bias``).
Two separate modules, or an ``nn.Sequential`` of the two, are filled too where the port exports
(``torch.export``): compare's alignment pairs the layer with the depthwise conv and the 1x1 conv
that reads it, and ``transfer_weights`` writes the pair as one unit (manifest targets such as
``sep_dw+sep_pw.depthwise.weight``). Where the graph cannot supply the pair, :func:`refusal` says
so and how to mend it.
"""

from __future__ import annotations

from .. import layouts
from . import WeightFamily, register

TORCH_TYPES = ("SeparableConv1d", "SeparableConv2d")


def _to_torch(w, ctx):
    out = {
        "depthwise.weight": layouts.depthwise_kernel_to_torch(w["depthwise_kernel"]),
        "pointwise.weight": layouts.conv_kernel_to_torch(w["pointwise_kernel"]),
    }
    if "bias" in w:
        out["pointwise.bias"] = w["bias"].copy()
    return out


def _to_keras(p, ctx):
    out = {
        "depthwise_kernel": layouts.depthwise_kernel_to_keras(p["depthwise.weight"], ctx.depth_multiplier),
        "pointwise_kernel": layouts.conv_kernel_to_keras(p["pointwise.weight"]),
    }
    if "pointwise.bias" in p:
        out["bias"] = p["pointwise.bias"].copy()
    return out


def refusal(layer_name: str, layer_type: str, candidates) -> str:
    """Why a SeparableConv layer found no module, and the two ways to mend the port."""
    return (
        f"Keras layer '{layer_name}' ({layer_type}) is a depthwise conv and a 1x1 conv in one layer; transfer_weights "
        f"fills it into one torch module of class {' or '.join(TORCH_TYPES)} with children 'depthwise' (groups=in) and "
        f"'pointwise' (1x1), or a depthwise conv and the 1x1 conv that reads it in the exported graph, and found "
        f"neither (modules left: {list(candidates)[:8]}). Make the port exportable (torch.export) so the pair can be "
        f"found, wrap the two in such a class, or copy the two kernels by hand "
        f"(xconv.layouts.depthwise_kernel_to_torch, conv_kernel_to_torch)."
    )


register(
    WeightFamily(
        name="separable",
        keras_types=("SeparableConv1D", "SeparableConv2D"),
        torch_types=TORCH_TYPES,
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="separable",
        names={"depthwise.weight": "depthwise_kernel", "pointwise.weight": "pointwise_kernel", "pointwise.bias": "bias"},
    )
)
