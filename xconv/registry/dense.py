"""Dense <-> Linear, including the Dense that follows a channels-last Flatten."""

from __future__ import annotations

from .. import layouts
from . import WeightFamily, register


def _to_torch(w, ctx):
    kernel = w["kernel"]
    if ctx.flatten_of is not None:
        weight = layouts.flatten_dense_kernel_to_torch(kernel, ctx.flatten_of)
    else:
        weight = layouts.dense_kernel_to_torch(kernel)
    out = {"weight": weight}
    if "bias" in w:
        out["bias"] = w["bias"].copy()
    return out


def _to_keras(p, ctx):
    weight = p["weight"]
    if ctx.flatten_of is not None:
        kernel = layouts.flatten_dense_kernel_to_keras(weight, ctx.flatten_of)
    else:
        kernel = layouts.dense_kernel_to_keras(weight)
    out = {"kernel": kernel}
    if "bias" in p:
        out["bias"] = p["bias"].copy()
    return out


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
