"""``xconv diff A B``: compare the tensors of two weight files, across formats and layouts.

Semantics: integers and booleans are compared exactly (never through float64); floats are
equal when their bits are, or both are NaN at the same position; -0.0 against +0.0 is a
difference unless ``--ignore-zero-sign``; a dtype difference is reported; ``--rtol`` and
``--atol`` accept ``|a - b| <= atol + rtol * |b|`` as torch.testing does. Each tensor that
differs gets the index and values of its first and of its largest difference (indices in the
torch layout both sides are compared in).
"""

from __future__ import annotations

import math

import numpy as np


_TO_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_CHUNK = 1 << 20  # elements compared at a time: memory stays bounded on large tensors


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv diff`` on the subparser ``p``."""
    p.add_argument("a", help="first file (any format xconv reads, or zoo:NAME; FILE.pt:KEY for one entry of a checkpoint dict)")
    p.add_argument("b", help="second file")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (default 0: bit-exact)")
    p.add_argument("--rtol", type=float, default=0.0, help="relative tolerance, of |B| (default 0)")
    p.add_argument("--ignore-zero-sign", action="store_true", help="count -0.0 and +0.0 as equal")
    p.add_argument(
        "--arch", help="Keras architecture (.keras file or zoo:NAME) for a weights-only file (.weights.h5, weights .h5): "
        "its tensors then carry the translated module's names and torch layouts, as convert writes them "
        "(default: the other side, where that is a Keras model file)",
    )  # fmt: skip
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
    from ..files.by_rank import move_by_rank

    moved, how = move_by_rank(array, "torch")
    return moved, "" if how == "copy" else how


def _with_arch(tf, arch: str | None, other):
    """A weights-only Keras file loaded into ``arch``, so it is seen through the translation as a model file is."""
    from ..errors import BadInputError

    weights_only = tf.format == "keras-weights" or (tf.format == "h5" and tf.model is None)
    if not weights_only:
        return tf
    if not arch and other.model is not None:  # `diff m.keras m.weights.h5`: the model on the other side is the architecture
        arch = other.path
    if arch:
        from ..convert import _keras_source

        tf.model = _keras_source(tf.path, tf.format, arch)
    elif other.layout == "torch":
        raise BadInputError(
            f"{tf.path!r} holds Keras weights without their architecture, so its tensor names cannot be lined up with "
            f"{other.path!r}'s torch names; give the architecture with --arch model.keras or zoo:NAME."
        )
    return tf


def _torch_view(tf):
    """A Keras model file seen through its translation: torch names, exact layouts (Flatten too)."""
    if tf.layout == "keras" and tf.model is not None:
        from ..translate import translate

        tf.tensors, tf.layout = translate(tf.model).state, "torch"
    return tf


def _value(v):
    """A JSON-safe Python scalar: ints exact, floats as floats, NaN/inf as strings."""
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if np.iscomplexobj(v):
        return [_value(np.real(v)), _value(np.imag(v))]
    f = float(v)
    if math.isnan(f) or math.isinf(f):
        return repr(f)
    return f


def _kind(dtype) -> str:
    from ..files.dtypes import is_float

    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "iu":
        return "int"
    if dtype.kind == "c":
        return "complex"
    if is_float(dtype):
        return "float"
    return "other"


def _float_parts(x: np.ndarray, y: np.ndarray, kind: str):
    """(x, y) as float64 or complex128 (exact for every float dtype up to float64), for magnitudes."""
    return (x.astype(np.complex128), y.astype(np.complex128)) if kind == "complex" else (x.astype(np.float64), y.astype(np.float64))


def _differences(x: np.ndarray, y: np.ndarray, kind: str, atol: float, rtol: float, ignore_zero_sign: bool):
    """Per element of two same-shape, same-dtype flat chunks: (differs, magnitude, zero_sign_only)."""
    if kind == "bool":
        differs = x != y
        return differs, differs.astype(np.float64), np.zeros_like(differs)
    if kind == "int":
        big = np.uint64 if x.dtype.kind == "u" else np.int64
        xi, yi = x.astype(big), y.astype(big)
        differs = xi != yi
        if not differs.any():
            return differs, np.zeros(x.shape), np.zeros_like(differs)
        # |x - y| exactly, in wrapping uint64 arithmetic (never through float64 for the decision)
        xu, yu = xi.astype(np.uint64), yi.astype(np.uint64)
        gap = np.where(xi >= yi, xu - yu, yu - xu)
        within = gap.astype(np.float64) <= atol + rtol * np.abs(yi.astype(np.float64)) if (atol or rtol) else np.zeros_like(differs)
        return differs & ~within, gap, np.zeros_like(differs)
    raw = x.dtype.itemsize
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64, 16: np.uint64}[raw]
    xb, yb = (np.ascontiguousarray(v).view(view).reshape(len(v), -1) for v in (x, y))
    same_bits = (xb == yb).all(axis=1)
    xf, yf = _float_parts(x, y, kind)
    nan_x, nan_y = np.isnan(xf), np.isnan(yf)
    both_nan = nan_x & nan_y
    gap = np.abs(xf - yf)
    gap = np.where(nan_x ^ nan_y, np.inf, np.where(both_nan, 0.0, gap))
    gap = np.where(np.isnan(gap), np.inf, gap)  # inf - inf of the same sign has equal bits already
    zero_sign = (xf == 0) & (yf == 0) & ~same_bits
    differs = ~same_bits & ~both_nan
    if ignore_zero_sign:
        differs &= ~zero_sign
        zero_sign = np.zeros_like(zero_sign)
    if atol or rtol:
        within = gap <= atol + rtol * np.abs(yf)
        differs &= ~within | zero_sign
    return differs, gap, zero_sign


def compare_tensors(x: np.ndarray, y: np.ndarray, *, atol: float = 0.0, rtol: float = 0.0, ignore_zero_sign: bool = False) -> dict:
    """One row of ``diff``: status, ok and, where they differ, the first and the largest difference."""
    row: dict = {"dtype_a": str(x.dtype), "dtype_b": str(y.dtype)}
    if x.dtype != y.dtype:
        row.update(status=f"dtype differs: {x.dtype} vs {y.dtype}", ok=False)
        return row
    kind = _kind(x.dtype)
    if kind == "other":
        row.update(status=f"cannot compare dtype {x.dtype}", ok=False)
        return row
    fx, fy = x.reshape(-1), y.reshape(-1)
    count, signs, first, largest, best = 0, 0, None, None, None
    for lo in range(0, fx.size, _CHUNK):
        with np.errstate(all="ignore"):  # NaN and inf are handled explicitly
            differs, gap, zero_sign = _differences(fx[lo : lo + _CHUNK], fy[lo : lo + _CHUNK], kind, atol, rtol, ignore_zero_sign)
        n = int(np.count_nonzero(differs))
        signs += int(np.count_nonzero(zero_sign & differs))
        if not n:
            continue
        count += n
        where = np.flatnonzero(differs)
        if first is None:
            first = lo + int(where[0])
        mags = gap[where]
        i = int(np.argmax(mags))
        value = int(mags[i]) if kind == "int" else float(mags[i])  # exact for integers
        if best is None or value > best:
            best, largest = value, lo + int(where[i])
    if not count:
        tolerant = bool(atol or rtol)
        row.update(status=f"equal within atol={atol:g}, rtol={rtol:g}" if tolerant else "equal", ok=True)
        row["max_abs"] = _max_abs(fx, fy, kind) if tolerant else 0.0
        return row

    def at(flat):
        return {"index": [int(i) for i in np.unravel_index(flat, x.shape)], "a": _value(fx[flat]), "b": _value(fy[flat])}

    row.update(ok=False, differing=count, elements=int(fx.size), max_abs=best if kind == "int" else _value(best), first=at(first), largest=at(largest))
    if signs == count:
        what = "differs in the sign of zero only (--ignore-zero-sign accepts it)"
    else:
        what = f"differs: max abs {best}" if kind == "int" else f"differs: max abs {best:.3g}"
    row["status"] = (
        f"{what} ({count} of {fx.size} elements); first at {tuple(row['first']['index'])}: {row['first']['a']} vs {row['first']['b']}; "
        f"largest at {tuple(row['largest']['index'])}: {row['largest']['a']} vs {row['largest']['b']}"
    )
    if signs:
        row["zero_sign_differences"] = signs
    return row


def _max_abs(fx, fy, kind) -> float:
    if kind in ("bool",) or fx.size == 0:
        return 0.0
    best = 0.0
    for lo in range(0, fx.size, _CHUNK):
        xf, yf = _float_parts(fx[lo : lo + _CHUNK], fy[lo : lo + _CHUNK], "complex" if kind == "complex" else "float")
        with np.errstate(all="ignore"):
            gap = np.abs(xf - yf)
        gap = gap[~np.isnan(gap)]
        if gap.size:
            best = max(best, float(gap.max()))
    return best


def compare_files(a, b, atol: float = 0.0, rtol: float = 0.0, ignore_zero_sign: bool = False, arch: str | None = None) -> list[dict]:
    """The tensors of weight files (or ``zoo:NAME``) ``a`` and ``b`` lined up, in torch's layout,
    and compared: one row per tensor (``tensor``, ``status``, ``ok`` ...), a tensor on one side
    only a failing row. ``atol``/``rtol`` 0 mean bit-exact; ``arch`` (``zoo:NAME`` or a Keras
    model file) lines a ``.weights.h5`` up through the translation ``convert`` uses."""
    from ..errors import BadInputError
    from ..files import read_tensors

    for name, value in (("--atol", atol), ("--rtol", rtol)):
        if not (value >= 0 and math.isfinite(value)):
            raise BadInputError(f"{name} must be a finite number >= 0; received {value}.")
    fa, fb = (read_tensors(p) for p in (a, b))
    fa, fb = _with_arch(fa, arch, fb), _with_arch(fb, arch, fa)
    fa, fb = _torch_view(fa), _torch_view(fb)
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
        row = {"tensor": key, **compare_tensors(x, y, atol=atol, rtol=rtol, ignore_zero_sign=ignore_zero_sign)}
        if how:
            row["layout"] = how
            if row["ok"]:
                row["status"] += f" up to layout ({how})"
            elif "first" in row:
                row["status"] += " (indices in the torch layout)"
        rows.append(row)
    return rows


def run(args) -> int:
    """``xconv diff`` with the parsed ``args``: compare the two files' tensors; 0 all equal, 1 a difference, 2 bad input."""
    import json

    from ._sources import refuse_bare_zoo_names

    refuse_bare_zoo_names(args.a, args.b)
    rows = compare_files(args.a, args.b, args.atol, args.rtol, args.ignore_zero_sign, arch=args.arch)
    if args.json:
        print(json.dumps({"ok": all(r["ok"] for r in rows), "tensors": rows}, indent=2))
    else:
        w = max([len(r["tensor"]) for r in rows] + [6])
        for r in rows:
            print(f"{r['tensor']:<{w}}  {r['status']}")
        bad = sum(not r["ok"] for r in rows)
        print(f"{len(rows) - bad} of {len(rows)} tensors equal" + ("" if not bad else f"; {bad} differ or are missing"))
    return 0 if all(r["ok"] for r in rows) else 1
