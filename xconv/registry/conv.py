"""Convolutions of every rank: plain, grouped, dilated and transposed (one permutation for all)."""

from __future__ import annotations

from .. import layouts
from . import WeightFamily, register


def _to_torch(w, ctx):
    out = {"weight": layouts.conv_kernel_to_torch(w["kernel"])}
    if "bias" in w:
        out["bias"] = w["bias"].copy()
    return out


def _to_keras(p, ctx):
    out = {"kernel": layouts.conv_kernel_to_keras(p["weight"])}
    if "bias" in p:
        out["bias"] = p["bias"].copy()
    return out


register(
    WeightFamily(
        name="conv",
        keras_types=("Conv1D", "Conv2D", "Conv3D"),
        torch_types=("Conv1d", "Conv2d", "Conv3d"),
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="conv",
        names={"weight": "kernel", "bias": "bias"},
    )
)

register(
    WeightFamily(
        name="conv_transpose",
        keras_types=("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"),
        torch_types=("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"),
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="transposed",
        names={"weight": "kernel", "bias": "bias"},
    )
)


def _depthwise_to_torch(w, ctx):
    out = {"weight": layouts.depthwise_kernel_to_torch(w["kernel"])}
    if "bias" in w:
        out["bias"] = w["bias"].copy()
    return out


def _depthwise_to_keras(p, ctx):
    out = {"kernel": layouts.depthwise_kernel_to_keras(p["weight"], ctx.depth_multiplier)}
    if "bias" in p:
        out["bias"] = p["bias"].copy()
    return out


register(
    WeightFamily(
        name="depthwise",
        keras_types=("DepthwiseConv1D", "DepthwiseConv2D"),
        torch_types=(),  # a torch Conv with groups=in: read through the conv family on the torch side
        to_torch=_depthwise_to_torch,
        to_keras=_depthwise_to_keras,
        kind="depthwise",
        names={"weight": "kernel", "bias": "bias"},
    )
)
