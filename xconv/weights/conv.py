"""Convolutions of every rank: plain, grouped, dilated and transposed (one permutation for all), and depthwise."""

from __future__ import annotations

from .. import layouts
from . import WeightFamily, kernel_and_bias, register

_to_torch, _to_keras = kernel_and_bias(
    lambda k, ctx: layouts.conv_kernel_to_torch(k), lambda w, ctx: layouts.conv_kernel_to_keras(w)
)

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

_depthwise_to_torch, _depthwise_to_keras = kernel_and_bias(
    lambda k, ctx: layouts.depthwise_kernel_to_torch(k),
    lambda w, ctx: layouts.depthwise_kernel_to_keras(w, ctx.depth_multiplier),
)

register(
    WeightFamily(
        name="depthwise",
        keras_types=("DepthwiseConv1D", "DepthwiseConv2D"),
        torch_types=(),  # a torch Conv with groups=in: read through the conv family on the torch side
        to_torch=_depthwise_to_torch,
        to_keras=_depthwise_to_keras,
        kind="depthwise",
        names={"weight": "kernel", "bias": "bias"},
        pairs_with=("Conv1d", "Conv2d", "Conv3d"),
    )
)
