"""Padding: constant (any value), reflect, replicate and circular, on any dims but the batch.

Zero padding of the spatial axes of channels-last maps is Keras' ``ZeroPaddingND``; everything
else is ``keras.ops.pad`` (``reflect`` is torch's reflection) in the Keras axis order; replicate
padding joins repeated edge slices (TF's pad has no 'edge' mode), and circular padding the
wrapped slices. Negative padding crops.
"""

from __future__ import annotations

from ...padding import pairs_from_torch_pad
from .converters import converts
from .values import Ctx, Out, Value, channels_last, unflat


def pad_value(cx: Ctx, v: Value, pad, mode="constant", value=0.0) -> Value:
    """``v`` padded as ``F.pad(v, pad, mode, value)`` pads it (negative pads crop; the batch refused)."""
    v = unflat(cx, v)
    pairs = list(pairs_from_torch_pad(pad, v.rank))  # (before, after) per torch dim
    if pairs[v.perm[0]] != (0, 0):
        raise cx.unsupported("padding the batch axis")
    shape = tuple(s + a + b for s, (a, b) in zip(v.shape, pairs))
    t = v.tensor
    crops = [(max(-a, 0), max(-b, 0)) for a, b in pairs]
    if any(a or b for a, b in crops):
        idx = tuple(slice(crops[d][0], v.shape[d] - crops[d][1]) for d in v.perm)
        t = t[idx]
    pairs = [(max(a, 0), max(b, 0)) for a, b in pairs]
    kpairs = [pairs[d] for d in v.perm]
    rank = v.rank
    if not any(a or b for a, b in kpairs):
        return Value(t, shape, v.perm, nonneg=v.nonneg)
    L = cx.layers
    spatial_only = v.perm == channels_last(rank) and rank >= 3 and kpairs[-1] == (0, 0)
    if mode == "constant" and value == 0 and spatial_only:
        cls = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D, 3: L.ZeroPadding3D}[rank - 2]
        arg = kpairs[1] if rank == 3 else tuple(kpairs[1:-1])
        return Value(cls(arg, name=cx.name, dtype=cx.dtype)(t), shape, v.perm, nonneg=v.nonneg)
    if mode == "replicate":  # by repeated edge slices: TF's pad has no 'edge' mode (keras.ops.pad fails there)
        for ax, (a, b) in enumerate(kpairs):
            if a or b:
                n = t.shape[ax]
                first = [slice(None)] * rank
                last = [slice(None)] * rank
                first[ax], last[ax] = slice(0, 1), slice(n - 1, n)
                parts = [cx.ops.repeat(t[tuple(first)], a, axis=ax)] if a else []
                parts += [t] + ([cx.ops.repeat(t[tuple(last)], b, axis=ax)] if b else [])
                t = cx.ops.concatenate(parts, axis=ax)
        return Value(t, shape, v.perm, nonneg=v.nonneg)
    if mode == "circular":
        for ax, (a, b) in enumerate(kpairs):
            if a or b:
                n = t.shape[ax]
                pre = [slice(None)] * rank
                post = [slice(None)] * rank
                pre[ax], post[ax] = slice(n - a, n), slice(0, b)
                t = cx.ops.concatenate([t[tuple(pre)], t, t[tuple(post)]], axis=ax)
        return Value(t, shape, v.perm, nonneg=v.nonneg)
    keras_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}.get(mode)
    if keras_mode is None:
        raise cx.unsupported(f"pad mode {mode!r}", "constant, reflect, replicate, circular")
    kw = {"constant_values": cx.array(value).item()} if keras_mode == "constant" else {}
    t = cx.ops.pad(t, kpairs, mode=keras_mode, **kw)
    return Value(t, shape, v.perm, nonneg=v.nonneg and (mode != "constant" or value >= 0))


@converts("aten::constant_pad_nd", family="pad", note="ZeroPaddingND, or keras.ops.pad(constant_values=...)")
def constant_pad_nd(cx, node, args, kwargs):
    value = args[2] if len(args) > 2 else kwargs.get("value", 0.0)
    return Out(pad_value(cx, args[0], args[1], "constant", value))


@converts("aten::pad", family="pad", note="keras.ops.pad: constant, reflect; replicate by edge slices; circular by wrapped slices")
def pad(cx, node, args, kwargs):
    mode = args[2] if len(args) > 2 else kwargs.get("mode", "constant")
    value = args[3] if len(args) > 3 else kwargs.get("value")
    return Out(pad_value(cx, args[0], args[1], mode, value or 0.0))


def _mode(mode):
    def convert(cx, node, args, kwargs):
        return Out(pad_value(cx, args[0], args[1], mode))

    return convert


for _r in (1, 2, 3):
    converts(f"aten::reflection_pad{_r}d", family="pad", note="keras.ops.pad(mode='reflect')")(_mode("reflect"))
    converts(f"aten::replication_pad{_r}d", family="pad", note="repeated edge slices")(_mode("replicate"))
