"""Regression testing for ports: golden activation snapshots that need no TensorFlow to check.

>>> from xconv.testing import record_snapshot, assert_snapshot          # doctest: +SKIP
>>> record_snapshot(keras_model, x, "tests/snapshots/unet.safetensors") # once, where Keras runs
>>> assert_snapshot(torch_module, x_channels_first, "tests/snapshots/unet.safetensors")  # in CI

A snapshot is a safetensors file: every (chosen) layer's activation in channels-first layout,
named by layer, with metadata (framework versions, dtype, device, a hash of the input, layer
names, types and layouts). ``assert_snapshot`` accepts a Keras model or a PyTorch module and
feeds it the same input in its own layout; it raises ``AssertionError`` with the per-layer
table, naming the first layer that differs. Under pytest, ``--xconv-update-snapshots``
re-records instead of checking.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform

import numpy as np

from .. import layouts
from ..errors import BadInputError

__all__ = ["record_snapshot", "assert_snapshot", "check_snapshot", "snapshot_info", "update_snapshots"]

_FORMAT = "xconv-snapshot-1"
_UPDATE = {"on": False}  # switched by the pytest plugin's --xconv-update-snapshots


class update_snapshots:
    """Context manager (and what the pytest flag uses): assert_snapshot re-records while on."""

    def __init__(self, on: bool = True):
        self.on, self.saved = on, None

    def __enter__(self):
        self.saved, _UPDATE["on"] = _UPDATE["on"], self.on
        return self

    def __exit__(self, *exc):
        _UPDATE["on"] = self.saved


def _canonical_inputs(model, inputs) -> tuple[str, list[np.ndarray]]:
    from ..frameworks import framework_of

    fw = framework_of(model)
    if fw not in ("keras", "torch"):
        raise BadInputError(f"Snapshots are taken of a Keras model or a PyTorch module; received {type(model).__name__}.")
    arrays = [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    canonical = [layouts.activation_to_torch(x) for x in arrays] if fw == "keras" else arrays
    return fw, canonical


def _input_hash(canonical: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for x in canonical:
        h.update(str(x.shape).encode())
        h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _activations(model, fw: str, canonical: list[np.ndarray], names=None) -> dict[str, tuple[str, np.ndarray]]:
    """Layer name -> (type, channels-first activation, batch included)."""
    if fw == "keras":
        from ..frameworks import keras_side as ks

        arrays = [layouts.activation_to_keras(x) for x in canonical]
        return {c.name: (c.type, np.ascontiguousarray(c.torch_view())) for c in ks.capture(model, arrays, names=names)}
    from ..frameworks import torch_side as ts

    mapping = getattr(model, "xconv_outputs", None)
    modules = dict(model.named_modules())
    if mapping is None:  # every leaf module under its own name
        mapping = {n: n for n, m in modules.items() if n and not list(m.children())}
    if names is not None:
        mapping = {k: v for k, v in mapping.items() if k in set(names)}
    param = next(model.parameters(), None)
    import torch

    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    with ts.numerics(allow_tf32=False):
        acts, _ = ts.capture(model.eval(), canonical, list(mapping.values()), device, dtype)
    return {k: (type(modules[v]).__name__, acts[v]) for k, v in mapping.items() if v in acts}


def _versions(fw: str) -> dict[str, str]:
    from .. import __version__

    out = {"xconv": __version__, "python": platform.python_version(), "numpy": np.__version__}
    try:
        if fw == "keras":
            from ..frameworks import keras_side

            out.update(keras_side.versions())
        else:
            from ..frameworks import torch_side

            out.update(torch_side.versions())
    except ImportError:
        pass
    return out


def record_snapshot(model, inputs, path, *, layers=None, float16: bool = False, max_values: int | None = None, seed: int = 0) -> dict:
    """Record every (or the named) layer's activation of ``model`` on ``inputs`` to ``path``.

    ``inputs`` is in the model's own layout. ``float16`` halves the file (checks then use the
    float16 tolerance); ``max_values`` keeps at most that many values per layer, at positions
    drawn with ``seed`` (the positions are stored too). Returns the snapshot's info, with its size.
    """
    from ..files import write_safetensors_stream
    from ..files import atomic_output

    fw, canonical = _canonical_inputs(model, inputs)
    acts = _activations(model, fw, canonical, layers)
    if layers is not None and set(layers) - set(acts):
        raise BadInputError(f"No layer {sorted(set(layers) - set(acts))} to snapshot; layers: {list(acts)[:12]}.")
    rng = np.random.default_rng(seed)
    tensors, entries = {}, []
    for name, (kind, value) in acts.items():
        stored_dtype = "float16" if float16 else str(value.dtype)
        entry = {"name": name, "type": kind, "shape": list(value.shape), "dtype": str(value.dtype), "stored": stored_dtype, "subsampled": False}
        flat = value.reshape(-1)
        if max_values is not None and flat.size > max_values:
            index = np.sort(rng.choice(flat.size, size=max_values, replace=False)).astype(np.int64)
            tensors[f"{name}::index"] = index
            flat = flat[index]
            entry["subsampled"] = True
        tensors[name] = flat.astype(stored_dtype).reshape(-1 if entry["subsampled"] else value.shape)
        entries.append(entry)
    meta = {
        "format": _FORMAT, "framework": fw, "dtype": str(next(iter(acts.values()))[1].dtype) if acts else "",
        "device": "cpu" if fw == "keras" else str(getattr(next(model.parameters(), None), "device", "cpu")),
        "input_hash": _input_hash(canonical), "input_shapes": json.dumps([list(x.shape) for x in canonical]),
        "layers": json.dumps(entries), "versions": json.dumps(_versions(fw)), "layout": "channels-first",
    }  # fmt: skip
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)  # safe when workers race
    # a temporary file of its own, renamed into place: a reader (another pytest-xdist worker) sees the
    # old snapshot or the new one, never half of one
    atomic_output(os.fspath(path), lambda tmp: write_safetensors_stream(tmp, iter(tensors.items()), shapes, meta), force=True)
    return snapshot_info(path)


def snapshot_info(path) -> dict:
    """The metadata of a snapshot file, and its size in bytes."""
    from ..files import safetensors_header

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadInputError(f"No snapshot at {path!r}; record one with record_snapshot() (or pytest --xconv-update-snapshots).")
    header, _ = safetensors_header(path)
    meta = header.get("__metadata__", {})
    if meta.get("format") != _FORMAT:
        raise BadInputError(f"{path!r} is not an xconv snapshot.")
    return {
        **{k: v for k, v in meta.items() if k not in ("layers", "versions", "input_shapes")},
        "layers": json.loads(meta["layers"]), "versions": json.loads(meta["versions"]),
        "input_shapes": json.loads(meta["input_shapes"]), "bytes": os.path.getsize(path),
    }  # fmt: skip


def _file_identity(path: str):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_consistent(path) -> tuple[dict, dict]:
    """The snapshot's info and tensors, both from one version of the file.

    They are read with two opens; a writer (another pytest-xdist worker re-recording it) replaces
    the file by a rename, never in place, so the same identity before and after means one version.
    """
    from ..files import iter_safetensors

    path = os.fspath(path)
    for _ in range(20):
        before = _file_identity(path)
        try:
            info = snapshot_info(path)
            stored = dict(iter_safetensors(path))
        except BadInputError:
            if before is None or _file_identity(path) == before:
                raise  # missing, or really broken: not a file replaced mid-read
            continue
        if _file_identity(path) == before:
            return info, stored
    raise BadInputError(f"The snapshot {path!r} kept changing while it was read; is something re-recording it in a loop?")


def check_snapshot(model, inputs, path, *, rtol=None, atol=None):
    """Compare ``model`` on ``inputs`` with the snapshot at ``path``; returns the Report."""
    from ..comparison.core import _absmax, _diff, _Scratch
    from ..comparison.report import Report
    from ..comparison import tolerance

    info, stored = _read_consistent(path)
    fw, canonical = _canonical_inputs(model, inputs)
    if _input_hash(canonical) != info["input_hash"]:
        raise BadInputError(
            f"The input differs from the one {path!r} was recorded with (shapes {info['input_shapes']}); give the same input, "
            f"in the model's own layout, or re-record with pytest --xconv-update-snapshots."
        )
    names = [e["name"] for e in info["layers"]]
    acts = _activations(model, fw, canonical, names)
    policy = "float16" if any(e["stored"] == "float16" for e in info["layers"]) else info["dtype"]
    rtol, atol = tolerance.resolve(policy if policy in tolerance.DEFAULTS else "float32", rtol, atol)
    report = Report(a="snapshot", b=fw, device=info["device"], dtype=info["dtype"], tf32=False)
    scratch = _Scratch()
    for e in info["layers"]:
        name = e["name"]
        if name not in acts:
            report.skipped.append((name, f"the {fw} model has no layer or module named '{name}'"))
            continue
        ref = stored[name].astype(e["dtype"])
        value = acts[name][1]
        if tuple(value.shape) != tuple(e["shape"]):
            ref_full = np.zeros(e["shape"], dtype=e["dtype"]) if e["subsampled"] else ref.reshape(e["shape"])
            report.layers.append(_diff(name, acts[name][0], ref_full, value, 1.0, rtol, atol, scratch))
            continue
        other = value.reshape(-1)[stored[f"{name}::index"]] if e["subsampled"] else value.astype(e["dtype"])
        ref = np.ascontiguousarray(ref)
        report.layers.append(_diff(name, acts[name][0], ref, np.ascontiguousarray(other, dtype=ref.dtype), _absmax(ref), rtol, atol, scratch))
    if not report.layers:
        raise BadInputError(f"No layer of the {fw} model lines up with {path!r}: {names[:8]}.")
    return report


def assert_snapshot(model, inputs, path, *, rtol=None, atol=None, record: bool = True, **record_kw):
    """Check ``model`` against the snapshot; under ``--xconv-update-snapshots`` re-record it.

    ``record=False`` marks a model that must never write the snapshot (a port checked against
    a reference recorded elsewhere): under the flag it is still checked. ``rtol``/``atol``
    override the snapshot's tolerance; ``record_kw`` go to :func:`record_snapshot`.

    Returns the :class:`~xconv.comparison.Report` (the snapshot's info when it re-recorded);
    a layer that differs raises ``AssertionError`` with the per-layer table.
    """
    __tracebackhide__ = True  # pytest: show the table, not this frame
    if _UPDATE["on"] and record:
        return record_snapshot(model, inputs, path, **record_kw)
    report = check_snapshot(model, inputs, path, rtol=rtol, atol=atol)
    if not report.ok:
        raise AssertionError(f"activations differ from snapshot {os.fspath(path)!r}\n{report}")
    return report
