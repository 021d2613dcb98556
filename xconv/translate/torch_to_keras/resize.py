"""Resizing: nearest, nearest-exact, (bi/tri)linear and bicubic interpolation with both
``align_corners`` settings, to a size or by a scale; PixelShuffle and PixelUnshuffle.

Nearest up-sampling by whole factors is Keras' ``UpSamplingND``; any other nearest resize
gathers torch's source indices. Linear and cubic modes are separable linear maps: one constant
(out, in) matrix per axis, built from torch's own source-index formulas, applied with
``einsum``; exact in float32 and float64 (TF's resize returns float32 and places its samples
differently at the borders).
"""

from __future__ import annotations

import numpy as np

from .converters import converts
from .values import Ctx, Out, Value, along_axis, channels_last, tensor_value, to_perm

_A = -0.75  # torch's bicubic convolution constant


def _scale(n, o, align_corners, sf):
    if align_corners:
        return (n - 1) / (o - 1) if o > 1 else 0.0
    return 1.0 / sf if sf else n / o


def interpolation_matrix(n: int, o: int, mode: str, align_corners: bool, sf: float | None) -> np.ndarray:
    """The (o, n) matrix torch's ``mode`` resize applies along one axis."""
    scale = _scale(n, o, align_corners, sf)
    m = np.zeros((o, n))
    i = np.arange(o, dtype=np.float64)
    if mode in ("linear", "bilinear", "trilinear"):
        src = scale * i if align_corners else np.maximum(scale * (i + 0.5) - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n - 1)
        i1 = np.minimum(i0 + 1, n - 1)
        l1 = src - i0
        for r in range(o):
            m[r, i0[r]] += 1.0 - l1[r]
            m[r, i1[r]] += l1[r]
        return m
    if mode == "bicubic":
        src = scale * i if align_corners else scale * (i + 0.5) - 0.5
        fl = np.floor(src)
        t = src - fl
        for r in range(o):
            w = (_cc2(t[r] + 1), _cc1(t[r]), _cc1(1 - t[r]), _cc2(2 - t[r]))
            for k, wk in enumerate(w):
                m[r, int(min(max(fl[r] - 1 + k, 0), n - 1))] += wk
        return m
    raise ValueError(mode)


def _cc1(x):
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cc2(x):
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


def nearest_index(n: int, o: int, sf: float | None, exact: bool) -> np.ndarray:
    """For each of ``o`` output positions, the input index (of ``n``) torch's nearest resize reads:
    ``exact`` is ``nearest-exact`` (pixel centres), else ``nearest``; ``sf`` the scale factor given, if any."""
    scale = 1.0 / sf if sf else n / o
    i = np.arange(o, dtype=np.float64)
    return np.minimum(np.floor((i + 0.5) * scale if exact else i * scale).astype(int), n - 1)


def _parse(args, rank, has_align):
    x, size = args[0], args[1]
    align = bool(args[2]) if has_align and len(args) > 2 else False
    rest = list(args[3 if has_align else 2 :])
    if len(rest) == 1 and (rest[0] is None or isinstance(rest[0], (list, tuple))):
        sf = rest[0]
    else:
        sf = rest[:rank] if rest else None
    sf = tuple(sf) if sf is not None and any(s is not None for s in sf) else None
    return x, size, align, sf


def _resize(cx: Ctx, node, x: Value, mode: str, align: bool, sf, rank: int) -> Value:
    L = cx.layers
    spatial = x.shape[2:]
    out = tuple(node.shape[2:])
    sf = tuple(float(s) if s else None for s in sf) if sf else (None,) * rank
    t = to_perm(cx, x, channels_last(rank + 2))
    if mode in ("nearest", "nearest-exact"):
        whole = all(o % n == 0 and (f is None or f == o // n) for n, o, f in zip(spatial, out, sf))
        if whole and (mode == "nearest" or all(o // n % 2 == 1 or o == n for n, o in zip(spatial, out))):
            size = tuple(o // n for n, o in zip(spatial, out))
            cls = {1: L.UpSampling1D, 2: L.UpSampling2D, 3: L.UpSampling3D}[rank]
            y = cls(size[0] if rank == 1 else size, name=cx.name, dtype=cx.dtype)(t)
        else:
            y = t
            for ax, (n, o, f) in enumerate(zip(spatial, out, sf)):
                if n != o:
                    y = cx.ops.take(y, nearest_index(n, o, f, mode == "nearest-exact").astype("int32"), axis=1 + ax)
    else:
        y = t
        for ax, (n, o, f) in enumerate(zip(spatial, out, sf)):
            if n != o or align is False and f not in (None, 1.0):
                y = along_axis(cx, y, 1 + ax, interpolation_matrix(n, o, mode, align, f))
    return tensor_value(y, node.shape, channels_last(rank + 2), nonneg=x.nonneg and mode.startswith("nearest"))


def _converter(mode, rank, has_align):
    def convert(cx, node, args, kwargs):
        x, _size, align, sf = _parse(args, rank, has_align)
        return Out(_resize(cx, node, x, mode, align, sf, rank))

    return convert


for _r in (1, 2, 3):
    converts(f"aten::upsample_nearest{_r}d", family="resize", note=f"UpSampling{_r}D for whole factors, else a gather")(_converter("nearest", _r, False))
    converts(f"aten::_upsample_nearest_exact{_r}d", family="resize", note="a gather of torch's nearest-exact indices")(_converter("nearest-exact", _r, False))
converts("aten::upsample_linear1d", family="resize", note="one interpolation matrix per axis (einsum)")(_converter("linear", 1, True))
converts("aten::upsample_bilinear2d", family="resize", note="one interpolation matrix per axis (einsum), align_corners both ways")(_converter("bilinear", 2, True))
converts("aten::upsample_trilinear3d", family="resize", note="one interpolation matrix per axis (einsum)")(_converter("trilinear", 3, True))
converts("aten::upsample_bicubic2d", family="resize", note="one cubic-convolution matrix per axis (einsum)")(_converter("bicubic", 2, True))


# (C, H, W, r) -> the channels-last split, its transpose and the merged shape: torch's channel order
_SHUFFLES = {
    "pixel_shuffle": lambda c, h, w, r: ((h, w, c // (r * r), r, r), (0, 1, 4, 2, 5, 3), (h * r, w * r, c // (r * r))),
    "pixel_unshuffle": lambda c, h, w, r: ((h // r, r, w // r, r, c), (0, 1, 3, 5, 2, 4), (h // r, w // r, c * r * r)),
}


def _shuffle(op: str, plan):
    def convert(cx, node, args, kwargs):
        x, r = args[0], int(args[1])
        if x.rank != 4:
            raise cx.unsupported(f"{op} of a tensor that is not (N, C, H, W)")
        split, perm, merged = plan(*x.shape[1:], r)
        t = to_perm(cx, x, channels_last(4))
        t = cx.layers.Reshape(split, name=cx.sub("split"), dtype=cx.dtype)(t)
        t = cx.ops.transpose(t, perm)
        t = cx.layers.Reshape(merged, name=cx.name, dtype=cx.dtype)(t)
        return Out(tensor_value(t, node.shape, channels_last(4), nonneg=x.nonneg))

    return convert


for _op, _plan in _SHUFFLES.items():
    converts(f"aten::{_op}", family="resize", note="Reshape + transpose + Reshape (torch's channel order)")(_shuffle(_op, _plan))


__all__ = ["interpolation_matrix", "nearest_index"]
