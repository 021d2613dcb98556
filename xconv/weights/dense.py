"""Dense <-> Linear, including the Dense that follows a channels-last Flatten."""

from __future__ import annotations

from .. import layouts
from . import WeightFamily, kernel_and_bias, register


def _kernel_to_torch(kernel, ctx):
    if ctx.flatten_of is not None:  # rows in channels-last flatten order -> channels-first columns
        return layouts.flatten_dense_kernel_to_torch(kernel, ctx.flatten_of)
    return layouts.dense_kernel_to_torch(kernel)


def _kernel_to_keras(weight, ctx):
    if ctx.flatten_of is not None:
        return layouts.flatten_dense_kernel_to_keras(weight, ctx.flatten_of)
    return layouts.dense_kernel_to_keras(weight)


_to_torch, _to_keras = kernel_and_bias(_kernel_to_torch, _kernel_to_keras)


register(
    WeightFamily(
        name="dense",
        keras_types=("Dense",),
        torch_types=("Linear",),
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="dense",
        names={"weight": "kernel", "bias": "bias"},
    )
)
