"""Normalisation: BatchNormalization <-> BatchNorm1d/2d/3d (inference statistics), LayerNormalization <->
LayerNorm / RMSNorm, GroupNormalization <-> GroupNorm / InstanceNorm. Epsilon is configuration."""

from __future__ import annotations

from ..errors import LayoutError
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


def _affine_to_torch(w, ctx):
    return {t: w[k].copy() for t, k in (("weight", "gamma"), ("bias", "beta")) if k in w}


def _affine_to_keras(p, ctx):
    stats = sorted(k for k in p if k.startswith("running_"))
    if stats:  # InstanceNorm(track_running_stats=True) normalises with them at inference: Keras cannot
        raise LayoutError(
            f"Module '{ctx.name}' keeps running statistics ({', '.join(stats)}); Keras' GroupNormalization and "
            f"LayerNormalization normalise every sample by its own. Build it with track_running_stats=False."
        )
    return {k: p[t].copy() for t, k in (("weight", "gamma"), ("bias", "beta")) if t in p}


# LayerNormalization over any axes (gamma and beta have the normalised axes' shape; with
# rms_scaling only gamma, which an nn.RMSNorm's weight fits) <-> LayerNorm over the same trailing shape
register(
    WeightFamily(
        name="layernorm",
        keras_types=("LayerNormalization",),
        torch_types=("LayerNorm",),
        to_torch=_affine_to_torch,
        to_keras=_affine_to_keras,
        kind="vector",
        names={"weight": "gamma", "bias": "beta"},
        pairs_with=("RMSNorm",),
    )
)

register(
    WeightFamily(
        name="rmsnorm",
        keras_types=("RMSNormalization",),
        torch_types=("RMSNorm",),
        to_torch=lambda w, ctx: {"weight": w["scale"].copy()},
        to_keras=lambda p, ctx: {"scale": p["weight"].copy()},
        kind="vector",
        names={"weight": "scale"},
    )
)

# GroupNormalization (groups=-1 is instance normalisation) <-> GroupNorm, InstanceNorm1d/2d/3d(affine=True)
register(
    WeightFamily(
        name="groupnorm",
        keras_types=("GroupNormalization",),
        torch_types=("GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"),
        to_torch=_affine_to_torch,
        to_keras=_affine_to_keras,
        kind="vector",
        names={"weight": "gamma", "bias": "beta"},
    )
)
