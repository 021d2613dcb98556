"""BatchNormalization <-> BatchNorm1d/2d/3d (inference statistics; epsilon is configuration)."""

from __future__ import annotations

from . import WeightFamily, register

_NAMES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _to_torch(w, ctx):
    return {t: w[k].copy() for t, k in _NAMES.items() if k in w}


def _to_keras(p, ctx):
    return {k: p[t].copy() for t, k in _NAMES.items() if t in p}


register(
    WeightFamily(
        name="batchnorm",
        keras_types=("BatchNormalization",),
        torch_types=("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"),
        to_torch=_to_torch,
        to_keras=_to_keras,
        kind="vector",
        names=_NAMES,
    )
)
