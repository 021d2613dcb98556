"""``xconv diff A B``: compare the tensors of two weight files, across formats and layouts."""

from __future__ import annotations

import numpy as np

from .. import layouts

_TO_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def add_arguments(p) -> None:
    p.add_argument("a", help="first file (any format xconv reads, or zoo:NAME)")
    p.add_argument("b", help="second file")
    p.add_argument("--atol", type=float, default=0.0, help="differences up to this count as equal (default 0: bit-exact)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _common_names(tensors, layout):
    """file name -> a shared key ('layer.weight' style)."""
    out = {}
    for name in tensors:
        if layout == "keras" and "/" in name:
            layer, _, key = name.rpartition("/")
            out[f"{layer.replace('/', '.')}.{_TO_TORCH_NAME.get(key, key)}"] = name
        else:
            out[name] = name
    return out


def _as_torch(array, layout):
    if layout != "keras":
        return array, ""
    if array.ndim >= 3:
        return layouts.conv_kernel_to_torch(array), f"permute {layouts.kernel_permutation(array.ndim - 2)}"
    if array.ndim == 2:
        return layouts.dense_kernel_to_torch(array), "transpose"
    return array, ""


def _torch_view(tf):
    """A Keras model file seen through its translation: torch names, exact layouts (Flatten too)."""
    if tf.layout == "keras" and tf.model is not None:
        from ..translate import translate

        tf.tensors, tf.layout = translate(tf.model).state, "torch"
    return tf


def compare_files(a, b, atol: float = 0.0) -> list[dict]:
    from ..files import read_tensors

    fa, fb = (_torch_view(read_tensors(p)) for p in (a, b))
    na, nb = _common_names(fa.tensors, fa.layout), _common_names(fb.tensors, fb.layout)
    rows = []
    for key in sorted(set(na) | set(nb)):
        if key not in nb:
            rows.append({"tensor": key, "status": "only in A", "ok": False})
            continue
        if key not in na:
            rows.append({"tensor": key, "status": "only in B", "ok": False})
            continue
        x, how_a = _as_torch(np.asarray(fa.tensors[na[key]]), fa.layout)
        y, how_b = _as_torch(np.asarray(fb.tensors[nb[key]]), fb.layout)
        how = how_a or how_b
        if x.shape != y.shape:
            rows.append({"tensor": key, "status": f"shape mismatch: {np.shape(fa.tensors[na[key]])} vs {np.shape(fb.tensors[nb[key]])}", "ok": False})
            continue
        d = float(np.max(np.abs(x.astype(np.float64) - y))) if x.size else 0.0
        ok = d <= atol
        status = ("equal" if d == 0 else f"equal within {atol:g} (max abs {d:.3g})") if ok else f"differs: max abs {d:.3g}"
        if how and ok:
            status += f" up to layout ({how})"
        rows.append({"tensor": key, "status": status, "ok": ok, "max_abs": d})
    return rows


def run(args) -> int:
    import json

    rows = compare_files(args.a, args.b, args.atol)
    if args.json:
        print(json.dumps({"ok": all(r["ok"] for r in rows), "tensors": rows}, indent=2))
    else:
        w = max([len(r["tensor"]) for r in rows] + [6])
        for r in rows:
            print(f"{r['tensor']:<{w}}  {r['status']}")
        bad = sum(not r["ok"] for r in rows)
        print(f"{len(rows) - bad} of {len(rows)} tensors equal" + ("" if not bad else f"; {bad} differ or are missing"))
    return 0 if all(r["ok"] for r in rows) else 1
