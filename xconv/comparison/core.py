"""Run a Keras model and a PyTorch module on one input and line up every layer's activation."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, replace
from collections.abc import Mapping, Sequence

import numpy as np

from .. import layouts
from ..layouts import LayoutKind
from ..errors import BadInputError
from ..frameworks import framework_of
from . import tolerance
from .report import LayerDiff, Report
from .align import fit_unit_axes

_DTYPES = ("float32", "float64")


def _as_list(inputs) -> list[np.ndarray]:
    if isinstance(inputs, (list, tuple)):
        arrays = [np.asarray(x) for x in inputs]
    else:
        arrays = [np.asarray(inputs)]
    for x in arrays:
        if x.dtype.kind not in "fiub":
            raise BadInputError(f"Inputs must be numeric arrays; received dtype {x.dtype}.")
    return arrays


def _in_layout(arrays, given: str, to: str) -> list[np.ndarray]:
    """Model inputs given in framework ``given``'s layout, in framework ``to``'s."""
    if given == to:
        return list(arrays)
    move = layouts.activation_to_torch if to == "torch" else layouts.activation_to_keras
    return [move(x) for x in arrays]


def _prepare_torch(module, device: str, dtype: str):
    """The module on ``device`` in ``dtype``: the caller's own where it already is, else a copy.
    Never switched to eval mode here: the exported graph is an eval-mode copy's."""
    from ..frameworks import torch_side as ts

    t = ts.torch()
    dev = ts.resolve_device(device)
    tdtype = getattr(t, dtype)
    params = list(module.parameters()) + list(module.buffers())
    same = all(p.device == dev and (not p.is_floating_point() or p.dtype == tdtype) for p in params)
    if not same:  # never move or cast the caller's module in place
        module = copy.deepcopy(module).to(device=dev, dtype=tdtype)
    return module, dev, tdtype


def _runs_on(module, tensors) -> bool:
    """Does an eval-mode copy of ``module`` run on ``tensors`` (no gradients, the caller's module untouched)?"""
    import torch

    try:
        with torch.no_grad():
            copy.deepcopy(module).eval()(*tensors)
    except Exception:  # any failure means no: the caller gets the channels-first error as before
        return False
    return True


def _eval_copy(module):
    return copy.deepcopy(module).eval() if any(m.training for m in module.modules()) else module


def _align_pins(align) -> dict:
    """``align=`` as {keras layer: torch module}: a dict, a Manifest, or a saved manifest file."""
    from ..transfer import Manifest

    if align is None:
        return {}
    if isinstance(align, Manifest):
        return align.layer_plan()
    if isinstance(align, (str, os.PathLike)):
        path = os.fspath(align)
        if not os.path.isfile(path):
            raise BadInputError(f"align={path!r}: no such manifest file. Give a dict, a Manifest, or a file saved with manifest.to_json().")
        try:
            with open(path, encoding="utf-8") as fh:
                return Manifest.from_json(fh.read()).layer_plan()
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"align={path!r} is not a manifest saved by xconv (manifest.to_json()): {exc}") from exc
    if isinstance(align, Mapping):
        bad = {k: v for k, v in align.items() if not isinstance(k, str) or not (v is None or isinstance(v, str))}
        if bad:
            raise BadInputError(f"align= maps Keras layer names to PyTorch module paths (strings); received {bad}.")
        return dict(align)
    raise BadInputError(
        f"align= takes a dict {{keras_layer: torch_module}}, a Manifest, or a manifest file; received {type(align).__name__}."
    )


def _pins(align, tmodule, kmodel, keras_names) -> dict:
    """Declared alignments: the module's ``xconv_outputs``, the Keras model's ``xconv_align``, then ``align=``."""
    pins = {}
    for k, v in getattr(tmodule, "xconv_outputs", {}).items():
        # a Keras model with its own layer for the mapped module (one translated from this very
        # module, with separate activation layers) lines up name for name
        pins[k] = k if (v in keras_names and v != k) else v
    pins.update(getattr(kmodel, "xconv_align", {}))
    pins.update(_align_pins(align))
    return pins


_BLOCK = 1 << 16  # elements per block: a block of each side and its difference stay in L2
_PARALLEL_MIN = 2**20  # elements: below this a second thread costs more than it saves


class _Scratch:
    """Block-sized buffers for the differences, one per thread, reused from layer to layer."""

    def __init__(self):
        self._bufs: dict = {}

    def block(self, worker: int, dtype) -> np.ndarray:
        buf = self._bufs.get(worker)
        if buf is None or buf.dtype != dtype:
            buf = self._bufs[worker] = np.empty(_BLOCK, dtype=dtype)
        return buf


def _absmax(array: np.ndarray) -> float:
    """max |x| (NumPy's SIMD max and min: two reads, no |x| copy; NaN propagates)."""
    if array.size == 0:
        return 0.0
    hi, lo = float(array.max()), float(array.min())
    return max(-lo, hi) if not (math.isnan(lo) or math.isnan(hi)) else float("nan")


class _Blocks:
    """Two arrays of one shape walked together in blocks of about ``_BLOCK`` elements, in the
    first one's memory order (a channels-last capture seen channels-first is read as it lies).

    Where both lie alike in memory, blocks are flat runs; otherwise a block is one index of each
    leading axis and a run of the axis whose tail fits a block, so the other side's strided
    reads of a block stay in cache.
    """

    def __init__(self, ref: np.ndarray, other: np.ndarray):
        self.cf_shape = ref.shape
        order = list(range(ref.ndim))
        if not ref.flags.c_contiguous:
            by_stride = sorted(order, key=lambda i: -abs(ref.strides[i]) if ref.shape[i] > 1 else 0)
            if ref.transpose(by_stride).flags.c_contiguous:
                order = by_stride
        self.order = order
        r, o = ref.transpose(order), other.transpose(order)
        self.shape = r.shape
        if r.ndim <= 1 or (r.flags.c_contiguous and o.flags.c_contiguous):
            self.r, self.o, self.axis = r.reshape(-1), o.reshape(-1), None
            n = r.size
            self.keys = [(slice(s, min(s + _BLOCK, n)),) for s in range(0, n, _BLOCK)]
            return
        axis, inner = r.ndim - 1, 1  # axis: the one cut into runs, the axes after it whole
        while axis > 0 and inner * r.shape[axis] <= _BLOCK:
            inner *= r.shape[axis]
            axis -= 1
        rows = max(1, _BLOCK // max(inner, 1))
        self.r, self.o, self.axis = r, o, axis
        self.keys = [
            head + (slice(s, min(s + rows, r.shape[axis])),)
            for head in np.ndindex(*r.shape[:axis])
            for s in range(0, r.shape[axis], rows)
        ]

    def scan(self, keys, buf: np.ndarray, with_scale: bool) -> list[tuple]:
        """Per block: (max, min) of ref - other, and of ref with ``with_scale``: one read of each side."""
        out = []
        for key in keys:
            r, o = self.r[key], self.o[key]
            d = buf[: r.size].reshape(r.shape)
            np.subtract(r, o, out=d)
            stats = (float(d.max()), float(d.min()))
            out.append(stats + (float(r.max()), float(r.min())) if with_scale else stats)
        return out

    def first(self, keys, buf: np.ndarray, hit) -> int:
        """The smallest channels-first flat index, over ``keys``' blocks, where ``hit(ref - other)``."""
        if not self.cf_shape:  # a scalar: its one place
            return 0
        best = None
        for key in keys:
            r, o = self.r[key], self.o[key]
            d = buf[: r.size].reshape(r.shape)
            np.subtract(r, o, out=d)
            local = np.flatnonzero(hit(d))
            if local.size == 0:
                continue
            if self.axis is None:
                coords = np.unravel_index(local + key[0].start, self.shape)
            else:
                run = key[-1]
                loc = np.unravel_index(local, r.shape)
                coords = tuple(np.full(local.shape, h) for h in key[:-1]) + (loc[0] + run.start,) + tuple(loc[1:])
            cf = [None] * len(self.order)
            for i, ax in enumerate(self.order):
                cf[ax] = coords[i]
            index = int(np.ravel_multi_index(tuple(cf), self.cf_shape).min())
            best = index if best is None else min(best, index)
        return best if best is not None else 0


def _diff(name, kind, ref: np.ndarray, other: np.ndarray, scale: float | None, rtol: float, atol: float, scratch: _Scratch, threads: int = 1) -> LayerDiff:
    """Greatest absolute difference, where it is (the first place in channels-first order), and
    the normwise verdict; ``scale`` = max |ref|, or None to measure it in the same pass.

    One pass over each side, block by block in ``ref``'s memory order: a block's difference goes
    to a small reused buffer and its extremes (and ref's, for the scale) are taken while it is in
    cache; only the blocks that hold the greatest difference are subtracted again, to say where.
    ``threads=2`` splits the blocks between two threads (NumPy releases the GIL in its loops).
    """
    if ref.shape != other.shape:
        note = f"shapes differ: reference {tuple(ref.shape)}, other {tuple(other.shape)} (channels-first)"
        return LayerDiff(name, kind, tuple(ref.shape), float("inf"), float("inf"), (), atol, rtol, False, note)
    if ref.size == 0:
        return LayerDiff(name, kind, tuple(ref.shape), 0.0, 0.0, (), atol, rtol, True)
    dtype = np.promote_types(ref.dtype, other.dtype)
    if dtype.kind != "f":  # integer outputs (indices, token ids): no wrap-around in the difference
        dtype = np.dtype(np.float64)
    blocks = _Blocks(ref, other)
    keys, with_scale = blocks.keys, scale is None
    if threads > 1 and ref.size >= _PARALLEL_MIN and len(keys) > 1:
        parts: dict[int, list] = {}

        def scan(lo, hi):  # the two halves of the blocks, each with its own scratch block
            parts[lo] = blocks.scan(keys[lo:hi], scratch.block(0 if lo == 0 else 1, dtype), with_scale)

        layouts._in_parallel(scan, len(keys))  # the package's one worker pool (made once, under a lock)
        stats = [s for lo in sorted(parts) for s in parts[lo]]
    else:
        stats = blocks.scan(keys, scratch.block(0, dtype), with_scale)
    if with_scale:
        shi, slo = max(s[2] for s in stats), min(s[3] for s in stats)
        nan = any(math.isnan(s[2]) or math.isnan(s[3]) for s in stats)
        scale = float("nan") if nan else max(-slo, shi)
    buf = scratch.block(0, dtype)
    nan_keys = [key for key, s in zip(keys, stats) if math.isnan(s[0]) or math.isnan(s[1])]
    if nan_keys:
        max_abs, index = float("nan"), blocks.first(nan_keys, buf, np.isnan)
    else:
        hi, lo = max(s[0] for s in stats), min(s[1] for s in stats)
        if hi == 0 and lo == 0:  # no difference anywhere: the first element, as argmax says
            max_abs, index = 0.0, 0
        elif hi >= -lo:
            max_abs, index = hi, blocks.first([key for key, s in zip(keys, stats) if s[0] == hi], buf, lambda d: d == hi)
        else:
            max_abs, index = -lo, blocks.first([key for key, s in zip(keys, stats) if s[1] == lo], buf, lambda d: d == lo)
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    # an infinite difference never passes (an inf in ref would make the allowance infinite too)
    ok = bool(math.isfinite(max_abs) and max_abs <= atol + rtol * scale)
    where = tuple(int(i) for i in np.unravel_index(index, ref.shape))
    return LayerDiff(name, kind, tuple(ref.shape), max_abs, max_rel, where, atol, rtol, ok, scale=scale)


def _measure(name, kind, ref: np.ndarray, other: np.ndarray, rtol: float, atol: float, scratch: _Scratch) -> LayerDiff:
    """:func:`_diff` with ``scale = max |ref|`` taken in the same pass, on two threads."""
    return _diff(name, kind, ref, other, None, rtol, atol, scratch, threads=2)


@dataclass
class Aligned:
    """One Keras layer and its PyTorch counterpart's activation, both channels-first."""

    name: str
    type: str
    keras: np.ndarray  # a channels-first *view* of the Keras activation
    keras_raw: np.ndarray  # the Keras activation as captured (contiguous, channels-last)
    torch: np.ndarray | None  # None when the layer has no torch counterpart
    why_missing: str = ""
    torch_local: np.ndarray | None = None  # local mode: the torch layer run on Keras' input to it
    torch_name: str | None = None  # the module whose call ends at the value (for ONNX scopes, repros)
    training: str = ""  # the aligned module is in training mode, where it computes otherwise
    match: object = None  # the align.Match (graph capture)


@dataclass
class Capture:
    a: str
    b: str
    device: str
    dtype: str
    tf32: bool
    layers: list[Aligned]
    capture: str = "graph"  # 'graph' (torch.export) or 'hooks' (export failed)
    notes: list = None  # what the verdict must say (training mode, the hook fallback)
    graph: object = None  # the TorchGraph, for repros
    torch_module: object = None  # the module that ran (the caller's, or a cast copy)


def capture_pair(a, b, inputs, *, device: str = "cpu", dtype: str | None = None, align=None, layers=None, local: bool = False, input_layout: str | None = None) -> Capture:
    """Run a Keras model and a torch module on the same input and line up their activations.

    The shared first half of :func:`compare`, also used by the pictures. The torch side is its
    exported graph (``torch.export``, an eval-mode copy), run node by node, so every value is
    what its op computed (in-place ops and functional calls included); it falls back to forward
    hooks where export fails, and says so. With ``local`` a second pass feeds each layer's chain
    the input *Keras'* layer received, so ``torch_local`` carries only that layer's error. The
    Keras model runs once either way. Neither model is changed.
    """
    from ..capture.torch_graph import ExportFailedError
    from ..capture.torch_hooks import watch_calls
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts
    from . import align as al

    fa, fb = framework_of(a), framework_of(b)
    if {fa, fb} != {"keras", "torch"}:
        raise BadInputError(
            f"compare() takes one Keras model and one PyTorch module, in either order; received "
            f"{type(a).__name__} ({fa}) and {type(b).__name__} ({fb})."
        )
    dtype = dtype or "float32"
    if dtype not in _DTYPES:
        raise BadInputError(f"dtype must be one of {_DTYPES}; received {dtype!r}.")
    kmodel, tmodule = (a, b) if fa == "keras" else (b, a)
    arrays = _as_list(inputs)
    k_in, t_in = _in_layout(arrays, fa, "keras"), _in_layout(arrays, fa, "torch")
    if input_layout not in (None, "torch", "keras"):
        raise BadInputError(f"input_layout must be 'torch' (channels-first), 'keras' (the module takes Keras' layout) or None; received {input_layout!r}.")
    fed_keras = input_layout == "keras"
    if fed_keras:
        t_in = list(k_in)  # the port transposes its input itself: feed it what the Keras model gets
    keras_names = {l.name for l in ks.iter_layers(kmodel)}
    pins = _pins(align, tmodule, kmodel, keras_names)
    notes = []
    training = ts.training_modules(tmodule)
    if tmodule.training or training:
        notes.append(
            "The PyTorch module is in training mode (did the port forget .eval()?): it was compared in eval mode"
            + (f"; in training mode {', '.join(f'{p} ({t})' for p, t in training)} compute otherwise." if training else ".")
        )

    keras_layouts = getattr(kmodel, "xconv_layouts", {})  # torch_to_keras says how each layer holds its torch value
    kmodel = ks.cast(kmodel, dtype)
    tmodule, dev, tdtype = _prepare_torch(tmodule, device, dtype)
    # a translated custom layer (a traced block) pins its inner layers as 'block/inner': capture those too
    blocks = sorted({k.split("/", 1)[0] for k in pins if "/" in k and k.split("/", 1)[0] in keras_names})
    k_acts = ks.capture(kmodel, k_in, names=layers, with_inputs=local, calls=True, blocks=blocks, read_only=True)
    if layers is not None and not k_acts:
        names = [l.name for l in ks.iter_layers(kmodel)]
        raise BadInputError(f"No layer named {list(layers)} in Keras model '{kmodel.name}'. Layers: {names}.")
    declared = {**keras_layouts, **getattr(tmodule, "xconv_layouts", {})}  # a module may say how it lays out an activation
    batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
    by_name = {c.name: c for c in k_acts}
    graph, capture = None, "graph"
    with ts.numerics(allow_tf32=False) as settings:
        tensors = ts.to_tensors(t_in, dev, tdtype)
        try:
            graph = ts.export_graph(tmodule, tensors)
        except ExportFailedError as exc:
            failure = exc
            keras_in = ts.to_tensors(k_in, dev, tdtype) if input_layout is None and any(x.ndim >= 3 for x in k_in) else None
            if keras_in is not None and not _runs_on(tmodule, tensors) and _runs_on(tmodule, keras_in):
                # fails channels-first, runs on Keras' layout: a port that transposes its input itself
                t_in, tensors, fed_keras = list(k_in), keras_in, True
                notes.append("The PyTorch module fails on channels-first input and runs on the Keras layout, so it was fed "
                             "the Keras layout (pass input_layout='keras' to say so, or 'torch' to refuse).")  # fmt: skip
                try:
                    graph = ts.export_graph(tmodule, tensors)
                except ExportFailedError as again:
                    failure = again
        if graph is None and capture == "graph":
            capture = "hooks"
            notes.append(
                "torch.export failed, so the PyTorch side was captured with forward hooks (module outputs, each copied when made, "
                f"the activation forward applies right after a module, and a layer with no module of its own (an activation, an add) "
                f"from the first call on the value before it; other functional calls in forward are not aligned): {failure}"
            )
        if graph is not None:
            matches = al.align_graph(kmodel, k_acts, graph, tmodule, pins, batch, keras_input=fed_keras)
            unpaired = [m for m in matches.values() if m.how == "unpaired"]
            if unpaired:
                raise BadInputError(
                    f"No PyTorch module of {type(tmodule).__name__} lines up with "
                    + "; ".join(f"Keras layer '{m.name}': {m.why}" for m in unpaired[:4])
                    + f". A port has a module with the weights of every Keras layer that has weights; "
                    f"pin one that is there with align={{'{unpaired[0].name}': 'module.path'}}."
                )
            keep = {m.node for m in matches.values() if m.node and m.name in by_name}
            state = ts.module_state(tmodule)
            t_vals = _run_graph(graph, tensors, keep, None, state)
            t_local, fed = {}, set()
            if local:
                feed, fed = _local_feed(matches, by_name, dev, tdtype)
                # a block with inner rows ends at its last inner layer's node, fed Keras' input there:
                # the block's row would show that layer's error, so its inner rows alone say where error starts
                fed -= {c.block for c in k_acts if c.block}
                t_local = _run_graph(graph, tensors, keep, feed, state)
        else:
            matches = al.align_by_names(kmodel, k_acts, tmodule, pins)
            runner = _eval_copy(tmodule)
            wanted = [m.node for m in matches.values() if m.node and not m.after]
            follow = {m.node: m.follow for m in matches.values() if m.node and m.follow}
            after = {m.node: m.after for m in matches.values() if m.node and m.after}
            followed: set = set()
            (t_vals, _), seen = watch_calls(runner, lambda: ts.capture(runner, t_in, wanted, dev, tdtype, follow=follow, followed=followed), after)
            t_vals.update(seen)
            for m in matches.values():
                if m.after and m.node not in seen:
                    m.why = f"no {'/'.join(m.after[1])} call on the value before it was seen (hooks see one call after a value)"
            unseen = [m.name for m in matches.values() if m.node in follow and m.node not in followed]
            if unseen:
                notes.append(
                    "Rows that may be affected by the hook capture: "
                    + ", ".join(f"'{n}'" for n in unseen[:8])
                    + (" ..." if len(unseen) > 8 else "")
                    + " (the Keras layer includes its activation; no such call on the module's output was seen, "
                    "so the module's bare output was measured)."
                )
            t_local, fed = {}, set(by_name)
            if local:
                chains = getattr(tmodule, "xconv_chains", {})
                feed = {}
                for c in k_acts:
                    m = matches[c.name]
                    head = chains.get(c.name, [m.node])[0] if (m.node and not m.after) else None  # a call after a value: no module to feed
                    if head is not None and c.inputs:
                        feed[head] = [layouts.activation_to_torch(x, c.input_flatten_of if x.ndim == 2 else None) for x in c.inputs]
                t_local = ts.capture(runner, t_in, wanted, dev, tdtype, feed=feed, follow=follow)[0]
                no_local = [c.name for c in k_acts if matches[c.name].after and matches[c.name].node in seen]
                if no_local:
                    notes.append(
                        "Rows with no local value (hook capture): " + ", ".join(f"'{n}'" for n in no_local[:8])
                        + (" ..." if len(no_local) > 8 else "") + ". Each is a torch call seen on the value before it "
                        "(an F.relu or += in forward, with no module of its own); forward hooks can feed Keras' input "
                        "to a module only, so that call's own error is not measured: its accumulated error is, and the "
                        "local error of the layer before it says whether error starts there. Make the port exportable "
                        "(torch.export) to measure every layer locally."
                    )

    aligned = []
    for c in k_acts:
        m = matches.get(c.name) or al.Match(c.name, why="not found in the Keras model's graph")
        flat = LayoutKind.FLAT if c.flatten_of else LayoutKind.PLAIN
        kind = declared.get(c.name) or {LayoutKind.CF: LayoutKind.CF, LayoutKind.FLAT: flat}.get(m.layout, LayoutKind.PLAIN)
        k_val = c.torch_view(kind)
        t_val = t_vals.get(m.node) if m.node else None
        loc = t_local.get(m.node) if (m.node and m.own_node and c.name in fed) else None
        if local and m.node and not m.own_node and t_val is not None:
            loc = _passed_on(m.passes, matches, by_name, declared, t_in, t_val.shape)
        why = m.why or ("" if t_val is not None else "the PyTorch module did not run it")
        flag = next((f"{t} '{p}'" for p, t in training if p in m.modules), "")
        aligned.append(Aligned(c.name, c.type, k_val, c.value, t_val, why, loc, (m.modules or [None])[-1], flag, m))
    if all(x.torch is None for x in aligned):
        modules = [n for n, _ in tmodule.named_modules()][1:9]
        raise BadInputError(
            f"No layer of Keras model '{kmodel.name}' lines up with the PyTorch module {type(tmodule).__name__} "
            f"(Keras layers: {[c.name for c in k_acts][:8]}; torch modules: {modules}): "
            f"{'; '.join(f'{x.name}: {x.why_missing}' for x in aligned[:3])}. "
            f"Give the port the Keras layers' weighted layers, or pass align={{keras_name: torch_name}}."
        )
    return Capture(fa, fb, str(dev), dtype, settings["tf32"], aligned, capture, notes, graph, tmodule)


def _passed_on(source: str, matches, by_name, declared, t_in, shape) -> np.ndarray | None:
    """Local mode for a layer the port computes with no op of its own (a Dropout, a Reshape the
    port left out): the port passes on its input unchanged, so its local value is the Keras value
    of the row (or model input) it passes on, in that value's torch layout. Compared with the
    layer's own Keras output, it fails exactly where the port's missing op made a difference (a
    channel shuffle left out). None where that value is not captured or does not have the port's shape."""
    if source.startswith("input:"):
        i = int(source.split(":", 1)[1])
        value = np.asarray(t_in[i]) if i < len(t_in) else None
    elif source in by_name and source in matches:
        c, src = by_name[source], matches[source]
        flat = LayoutKind.FLAT if c.flatten_of else LayoutKind.PLAIN
        value = c.torch_view(declared.get(source) or {LayoutKind.CF: LayoutKind.CF, LayoutKind.FLAT: flat}.get(src.layout, LayoutKind.PLAIN))
    else:
        value = None
    return value if value is not None and tuple(value.shape) == tuple(shape) else None


def _run_graph(graph, tensors, keep, feed, state) -> dict[str, np.ndarray]:
    try:
        store, _ = graph.run(tensors, keep=keep, feed=feed, state=state)
    except RuntimeError as exc:
        raise BadInputError(
            f"The PyTorch module {graph.root_type} failed on inputs of shape {[tuple(t.shape) for t in tensors]} "
            f"(channels-first): {exc}. If the module takes the Keras layout (batch, ..., channels) and transposes it "
            f"itself, pass input_layout='keras' (xconv compare --input-layout keras)."
        ) from exc
    out = {}
    for name, value in store.items():
        if hasattr(value, "detach"):
            out[name] = value.detach().cpu().numpy()
    return out


def _local_feed(matches, captured, dev, tdtype) -> tuple[dict, set]:
    """{consumer node: {input node: Keras' input, in that node's layout}} for every fed chain."""
    from ..frameworks import torch_side as ts

    feed: dict = {}
    fed: set = set()
    for name, m in matches.items():
        c = captured.get(name)
        if c is None or not c.inputs or not m.feeds:
            continue
        mine: dict = {}
        for consumer, subs in m.feeds.items():
            for node, j in subs.items():
                if j >= len(c.inputs):
                    continue
                x = c.inputs[j]
                lay = m.input_layouts.get(node, LayoutKind.CF)
                want = m.input_shapes.get(node)
                if lay == LayoutKind.FLAT and c.input_flatten_of:
                    x = layouts.activation_to_torch(x, c.input_flatten_of)
                elif x.ndim >= 3 and (lay == LayoutKind.CF or (want is not None and tuple(x.shape) != tuple(want))):
                    x = layouts.activation_to_torch(x)
                if want is not None and tuple(x.shape) != tuple(want) and fit_unit_axes(x, want) is not None:
                    x = fit_unit_axes(x, want)  # (N, 1, 1, C) into a Linear's (N, C): unit axes only
                if want is not None and tuple(x.shape) != tuple(want):
                    mine = None  # Keras' input does not fit (a padding layer folded into the conv): no local value
                    break
                mine.setdefault(consumer, {})[node] = ts.to_tensors([x], dev, tdtype)[0]
            if mine is None:
                break
        for consumer, subs in (mine or {}).items():
            feed.setdefault(consumer, {}).update(subs)
        if mine:
            fed.add(name)
    return feed, fed


def compare(
    a,
    b,
    inputs,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    align=None,
    layers: Sequence[str] | None = None,
    mode: str = "accumulated",
    onnx: bool = False,
    input_layout: str | None = None,
) -> Report:
    """Compare every layer of a Keras model and a PyTorch module (in either order) on ``inputs``.

    ``inputs`` is an array (or a list, for several inputs) in the layout of ``a``; it is
    converted between channels-last and channels-first for ``b``. The torch side runs as its
    exported graph (an eval-mode copy; forward hooks only where export fails, and the report
    says so), and each Keras layer is aligned with the value its twin computes (see
    :mod:`xconv.comparison.align`): no names in common are needed. ``align`` pins layers to
    module paths: a dict, a :class:`~xconv.transfer.Manifest`, or a saved manifest file; the
    module's ``xconv_outputs`` attribute does the same. Layers that cannot be aligned are listed
    in ``report.skipped``. A module in training mode is compared in eval mode and the layers whose
    modules compute otherwise in training mode fail, with a note. Neither model is changed.
    ``a`` is the reference: relative differences are taken against it. ``dtype='float64'`` is the strict mode: both sides run in float64.
    ``device`` places the PyTorch side; TF32 is switched off for the run and restored.
    ``mode="local"`` also runs each PyTorch layer on the input its Keras twin received and
    reports that layer's own error beside the accumulated one; ``report.first_local_divergence``
    names the layer where error starts, not only where it shows.
    ``onnx=True`` exports each model to ONNX (tf2onnx, torch.onnx), runs both with ONNX Runtime
    with every tensor exposed, and adds per-layer columns: each framework against its own
    export, a third opinion on which side departs.
    ``input_layout='keras'`` feeds the PyTorch module the Keras layout (a port that transposes its
    input itself); by default it gets channels-first, and where it fails on that but runs on the
    Keras layout it is fed that, with a note in the report.

    >>> from xconv import zoo
    >>> k = zoo.build("two_conv", "keras", random_biases=True)   # doctest: +SKIP
    >>> t = zoo.build("two_conv", "torch"); _ = transfer_weights(k, t)   # doctest: +SKIP
    >>> compare(k, t, zoo.sample_input("two_conv")).ok   # doctest: +SKIP
    True
    """
    if mode not in ("accumulated", "local"):
        raise BadInputError(f"mode must be 'accumulated' or 'local'; received {mode!r}.")
    if _is_onnx_path(a) or _is_onnx_path(b):
        if mode != "accumulated" or onnx:
            raise BadInputError("With an .onnx file as a side, compare runs the accumulated mode only.")
        return _compare_with_onnx_file(a, b, inputs, rtol=rtol, atol=atol, dtype=dtype or "float32", align=align)
    rtol, atol = tolerance.resolve(dtype or "float32", rtol, atol)
    cap = capture_pair(a, b, inputs, device=device, dtype=dtype, align=align, layers=layers, local=mode == "local", input_layout=input_layout)
    scratch = _Scratch()

    def measure(al, torch_value):
        fitted = fit_unit_axes(torch_value, al.keras.shape)  # unit axes only (keepdims pools)
        torch_value = torch_value if fitted is None else fitted
        ref, other = (al.keras, torch_value) if cap.a == "keras" else (torch_value, al.keras)
        return _measure(al.name, al.type, ref, other, rtol, atol, scratch)

    report = Report(a=cap.a, b=cap.b, device=cap.device, dtype=cap.dtype, tf32=cap.tf32, capture=cap.capture, notes=list(cap.notes or []))
    kmodel = a if cap.a == "keras" else b
    arrays = _as_list(inputs)
    k_in = _in_layout(arrays, cap.a, "keras")
    report._context = (kmodel, cap.torch_module, k_in, cap.dtype, cap)  # for report.repro(); never serialised
    onnx_rows = _onnx_opinions(a, b, inputs, cap, dtype or "float32", align) if onnx else {}
    for al in cap.layers:
        if al.torch is None:
            report.skipped.append((al.name, al.why_missing))
            continue
        row = measure(al, al.torch)
        if al.name in onnx_rows:
            row = replace(row, onnx_keras_rel=onnx_rows[al.name][0], onnx_torch_rel=onnx_rows[al.name][1])
        if al.torch_local is not None:
            lr = measure(al, al.torch_local)
            row = replace(row, local_max_abs=lr.max_abs, local_max_rel=lr.max_rel, local_ok=lr.ok)
        if al.training:
            note = f"{al.training} is in training mode, where it computes otherwise; compared in eval mode (call .eval() on the port)"
            row = replace(row, ok=False, note=note, local_ok=False if mode == "local" else row.local_ok)
        report.layers.append(row)
    caveat = _keras_float32_caveat(report, kmodel)
    if caveat:
        report.notes.append(caveat)
    return report


def _float32_inside(layer) -> str | None:
    """What TensorFlow computes in float32 inside this Keras layer even in a float64 model, or None.

    Known from TensorFlow's kernels: LeakyReLU's slope is a float32 attribute (0.1 becomes
    0.100000001...), the exact GELU uses a float32 constant (about 5e-9 off), and bilinear
    resizing runs in float32. A hand-written port computes these in float64, so the two differ
    at rounding level of float32, not float64; xconv's own translation mimics Keras there.
    """
    cls = type(layer).__name__
    act = getattr(getattr(layer, "activation", None), "__name__", "")
    slope = getattr(layer, "negative_slope", 0.2 if act == "leaky_relu" else None)
    if (cls == "LeakyReLU" or act == "leaky_relu") and slope is not None and float(np.float32(slope)) != float(slope):
        return f"LeakyReLU's slope {slope} as the float32 value {float(np.float32(slope))!r}"
    if act == "gelu":
        return "the exact GELU with a float32 constant (about 5e-9 off)"
    if cls.startswith("UpSampling") and getattr(layer, "interpolation", "nearest") != "nearest":
        return f"{getattr(layer, 'interpolation', '')} resizing in float32"
    return None


def _keras_float32_caveat(report, kmodel) -> str | None:
    """A float64 MISMATCH whose first divergence is a Keras layer computed partly in float32, at a
    size float32 explains: say so, since the difference is then Keras', not the port's."""
    first = report.first_divergence
    if report.dtype != "float64" or first is None:
        return None
    row = next(r for r in report.layers if r.name == first)
    if not row.max_rel < 1e-6:  # larger than float32 rounding can explain: a real porting bug
        return None
    try:
        layer = kmodel.get_layer(first.split("#")[0])
    except (ValueError, AttributeError):
        return None
    what = _float32_inside(layer)
    if what is None:
        return None
    text = (
        f"'{first}' is a Keras layer that TensorFlow computes with {what}, also in float64: a difference of "
        f"{row.max_rel:.1e} there is Keras' rounding, not a bug of the port (xconv's keras_to_torch mimics it); "
        f"compare in float32 to check the port at that layer."
    )
    later = report.layers[report.layers.index(row) + 1 :]
    worse = next((r for r in later if not r.ok and not r.max_rel < 1e-6), None)
    if worse is not None:  # a later layer differs by more than that rounding can carry: a bug of its own
        text += f" But '{worse.name}' differs by {worse.max_rel:.1e} (relative), more than this rounding explains: look there."
    return text


def _is_onnx_path(x) -> bool:
    return isinstance(x, (str, os.PathLike)) and os.fspath(x).lower().endswith(".onnx")


def _compare_with_onnx_file(a, b, inputs, *, rtol, atol, dtype: str, align) -> Report:
    """A Keras model or torch module against an .onnx file (either side), tensor by tensor."""
    from ..frameworks import keras_side as ks
    from ..frameworks import onnx_side
    from ..frameworks import torch_side as ts

    rtol, atol = tolerance.resolve(dtype, rtol, atol)
    onnx_first = _is_onnx_path(a)
    path, model = (os.fspath(a), b) if onnx_first else (os.fspath(b), a)
    fw = framework_of(model)
    if fw not in ("keras", "torch"):
        raise BadInputError(f"compare() takes an .onnx file with a Keras model or a PyTorch module; received {type(model).__name__}.")
    if not os.path.isfile(path):
        raise BadInputError(f"No such file: {path!r}.")
    producer = onnx_side.onnx().load(path, load_external_data=False).producer_name
    onnx_layout = "keras" if "tf2onnx" in producer else "torch"
    arrays = _as_list(inputs)
    first_layout = onnx_layout if onnx_first else fw
    to = lambda xs, layout: _in_layout(xs, first_layout, layout)  # noqa: E731
    values, order = onnx_side.run_all(path, to(arrays, onnx_layout))
    report = Report(a="onnx" if onnx_first else fw, b=fw if onnx_first else "onnx", device="cpu", dtype=dtype, tf32=False)
    rows = []
    if fw == "keras":
        model = ks.cast(model, dtype)
        caps = ks.capture(model, to(arrays, "keras"))
        found = onnx_side.scope_outputs(order, [c.name for c in caps], "keras" if onnx_layout == "keras" else "torch")
        for c in caps:
            rows.append((c.name, c.type, c.torch_view(), values.get(found.get(c.name))))
    else:
        module, dev, tdtype = _prepare_torch(model, "cpu", dtype)
        module = _eval_copy(module)
        mapping = {**getattr(module, "xconv_outputs", {}), **_align_pins(align)}
        names = [n for n in dict(module.named_modules()) if n]
        scopes = onnx_side.scope_outputs(order, sorted(set(names) | set(mapping)), "keras" if onnx_layout == "keras" else "torch")
        # a Keras export is scoped by Keras layers (a torch module's xconv_outputs says where their
        # activations are); a torch export by the module's own names
        wanted = {scope: mapping.get(scope, scope) if onnx_layout == "keras" else scope for scope in scopes}
        with ts.numerics(allow_tf32=False):
            acts, _ = ts.capture(module, to(arrays, "torch"), list(wanted.values()), dev, tdtype)
        for scope, tname in wanted.items():
            if tname in acts:
                rows.append((scope, type(dict(module.named_modules()).get(tname, module)).__name__, acts[tname], values.get(scopes[scope])))
    scratch = _Scratch()
    for name, kind, cf, value in rows:
        if value is None:
            report.skipped.append((name, "no ONNX tensor lines up with it"))
            continue
        value = np.asarray(value)
        # exporters leave tensors channels-first or channels-last (tf2onnx moves transposes
        # about): take the reading that fits the shape, the closer one when both do
        readings = [v for v in (value, np.moveaxis(value, -1, 1) if value.ndim >= 3 else None) if v is not None and v.shape == cf.shape]
        other = min(readings, key=lambda v: float(np.max(np.abs(v - cf)))) if readings else value
        ref, oth = (other, cf) if onnx_first else (cf, other)
        scale = _absmax(np.ascontiguousarray(ref))
        report.layers.append(_diff(name, kind, np.ascontiguousarray(ref), np.ascontiguousarray(oth), scale, rtol, atol, scratch))
    if not report.layers:
        raise BadInputError(f"No tensor of {path!r} lines up with a layer of {type(model).__name__}; was it exported from this model?")
    return report


def _onnx_opinions(a, b, inputs, cap, dtype: str, align) -> dict[str, tuple[float | None, float | None]]:
    """Per layer: (Keras vs ONNX Runtime on Keras' export, torch vs ONNX Runtime on torch's export)."""
    import tempfile

    from ..frameworks import keras_side as ks
    from ..frameworks import onnx_side

    kmodel, tmodule = (a, b) if cap.a == "keras" else (b, a)
    arrays = _as_list(inputs)
    k_in, t_in = _in_layout(arrays, cap.a, "keras"), _in_layout(arrays, cap.a, "torch")
    kmodel = ks.cast(kmodel, dtype)
    tmodule, _, _ = _prepare_torch(tmodule, "cpu", dtype)
    tmodule = _eval_copy(tmodule)
    with tempfile.TemporaryDirectory() as tmp:
        kp, tp = os.path.join(tmp, "keras.onnx"), os.path.join(tmp, "torch.onnx")
        onnx_side.export_keras(kmodel, kp)
        onnx_side.export_torch(tmodule, tp, t_in[0].shape[1:])
        k_vals, k_order = onnx_side.run_all(kp, k_in)
        t_vals, t_order = onnx_side.run_all(tp, t_in)
    k_map = onnx_side.scope_outputs(k_order, [al.name for al in cap.layers], "keras")
    t_map = onnx_side.scope_outputs(t_order, [n for n in dict(tmodule.named_modules()) if n], "torch")
    out = {}
    for al in cap.layers:
        k_rel = _best_rel(al.keras, al.keras_raw, k_vals.get(k_map.get(al.name)))
        t_rel = None
        if al.torch is not None:
            t_rel = _best_rel(al.torch, None, t_vals.get(t_map.get(al.torch_name or al.name)))
        out[al.name] = (k_rel, t_rel)
    return out


def _best_rel(cf: np.ndarray, cl: np.ndarray | None, value) -> float | None:
    """Greatest relative difference of an ONNX tensor from a layer's activation, in whichever
    layout (channels-first or channels-last) the exporter left it; None when it matches neither."""
    if value is None:
        return None
    value = np.asarray(value)
    best = None
    for ref in (cf, cl):
        if ref is not None and tuple(ref.shape) == value.shape:
            scale = float(np.max(np.abs(ref))) or 1.0
            rel = float(np.max(np.abs(value.astype(np.float64) - ref))) / scale
            best = rel if best is None else min(best, rel)
    return best


def assert_match(a, b, inputs, **kwargs) -> Report:
    """:func:`compare`, raising ``AssertionError`` with the per-layer table when a layer differs."""
    __tracebackhide__ = True  # pytest: show the table, not this frame
    report = compare(a, b, inputs, **kwargs)
    if not report.ok:
        raise AssertionError(f"activations differ\n{report}")
    return report
