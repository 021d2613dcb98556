"""Convert weight files between Keras and PyTorch, with a manifest of what went where.

Every Keras -> torch weight map is a permutation of elements, so xconv learns it by
translating the architecture once with *index arrays* in place of the weights: the torch
tensor that comes out says, element by element, which Keras element it holds. The same map
read backwards moves torch weights into the Keras model, and read as a whole it names the
transform of each tensor for the manifest. No converter needs a hand-written inverse.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass

import numpy as np

from . import layouts
from .errors import BadInputError, MismatchedModelsError
from .files import atomic_output, detect_format, keras_model_tensors, load_keras_model, read_tensors, write_tensors
from .transfer import Manifest, TransferEntry

__all__ = ["convert_file", "convert_layout", "weight_map", "WeightMap"]

_KERAS_FILES = ("keras", "h5", "keras-weights")
_TORCH_FILES = ("torch", "safetensors", "onnx")


@dataclass
class WeightMap:
    """torch state key -> (Keras tensor ``layer/weight``, Keras flat index of each torch element)."""

    sources: dict[str, tuple[str, np.ndarray]]
    keras_shapes: dict[str, tuple[int, ...]]
    epsilons: dict[str, float]  # Keras layer -> epsilon carried into torch


def weight_map(keras_model) -> WeightMap:
    from .frameworks import keras_side as ks
    from .translate import translate

    offsets: list[tuple[int, int, str]] = []
    shapes: dict[str, tuple[int, ...]] = {}
    eps: dict[str, float] = {}
    cursor = 0

    def index_weights(layer):
        nonlocal cursor
        out = {}
        for key, value in ks.layer_weights(layer).items():
            name = f"{layer.name}/{key}"
            if name not in shapes:
                shapes[name] = tuple(value.shape)
                offsets.append((cursor, cursor + value.size, name))
                cursor += value.size
            start = next(o for o in offsets if o[2] == name)[0]
            out[key] = (start + np.arange(value.size, dtype=np.float64)).reshape(value.shape)
        if getattr(layer, "epsilon", None) is not None:
            eps[layer.name] = float(layer.epsilon)
        return out

    translation = translate(keras_model, weights_of=index_weights)
    if cursor >= 2**53:  # float64 holds integers exactly up to here
        raise BadInputError("The model has more than 2**53 weights; xconv cannot map it.")
    starts = np.array([o[0] for o in offsets], dtype=np.int64)
    sources = {}
    for key, idx in translation.state.items():
        flat = idx.reshape(-1).astype(np.int64)
        if flat.size == 0:
            continue
        which = int(np.searchsorted(starts, flat[0], side="right") - 1)
        start, stop, name = offsets[which]
        if flat.min() < start or flat.max() >= stop:  # a converter mixing tensors: not a pure permutation
            raise AssertionError(f"torch tensor {key} draws on several Keras tensors")
        sources[key] = (name, (flat - start).reshape(idx.shape))
    return WeightMap(sources, shapes, eps)


def _transform(local: np.ndarray, kshape: tuple[int, ...]) -> str:
    """Name the permutation that ``local`` (Keras flat indices, torch shape) performs."""
    ref = np.arange(int(np.prod(kshape))).reshape(kshape)
    if local.shape == kshape and np.array_equal(local, ref):
        return "copy"
    if np.array_equal(local.reshape(-1), ref.reshape(-1)):
        return f"reshape {kshape} -> {local.shape}"
    if len(kshape) >= 3:
        if np.array_equal(local, layouts.conv_kernel_to_torch(ref)):
            return f"permute {layouts.kernel_permutation(len(kshape) - 2)}"
        if np.array_equal(local, layouts.depthwise_kernel_to_torch(ref)):
            return "depthwise (*k, in, mult) -> (in * mult, 1, *k)"
    if len(kshape) == 2 and local.shape == kshape[::-1]:
        if np.array_equal(local, ref.T):
            return "transpose"
        return "transpose + flatten order (channels-last rows -> channels-first columns)"
    return "reorder"


def _keras_model_from(src_or_arch: str):
    """A Keras model from a model file or ``zoo:NAME``."""
    if src_or_arch.startswith("zoo:"):
        from . import zoo

        return zoo.build(src_or_arch[4:], "keras", seed=0)
    return load_keras_model(src_or_arch)


def _user_module(spec: str, kwargs_json: str | None):
    if ":" not in spec:
        raise BadInputError(f"--module takes package.module:Class; received {spec!r}.")
    mod_name, cls_name = spec.split(":", 1)
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise BadInputError(f"Cannot import {spec!r}: {exc}. Is its package on PYTHONPATH?") from exc
    try:
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
    except json.JSONDecodeError as exc:
        raise BadInputError(f"--kwargs must be a JSON object: {exc}") from exc
    return cls(**kwargs).eval()


def _keras_source(src: str, fmt: str, arch: str | None):
    """The Keras model holding ``src``'s weights."""
    if fmt == "keras-weights" or (fmt == "h5" and arch):
        if not arch:
            raise BadInputError(f"{src!r} holds weights only; give the architecture with --arch model.keras or zoo:NAME.")
        model = _keras_model_from(arch)
        import warnings

        from .files import _h5_datasets

        stored = sorted(tuple(v.shape) for v in _h5_datasets(src).values())
        wanted = sorted(tuple(w.shape) for w in model.weights)
        if stored != wanted:  # Keras may skip what it cannot match with only a warning
            raise MismatchedModelsError(
                f"{src!r} holds {len(stored)} tensors that do not fit architecture {arch!r} ({len(wanted)} weights); "
                f"is it the right architecture?"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # "skipping ..." would leave random weights
                model.load_weights(src)
        except Exception as exc:  # mismatched layers, shapes, corrupt file
            raise MismatchedModelsError(f"Cannot load {src!r} into architecture {arch!r}: {exc}") from exc
        return model
    return load_keras_model(src)


def convert_file(
    src,
    dst,
    *,
    arch: str | None = None,
    module: str | None = None,
    module_kwargs: str | None = None,
    source: str | None = None,
    manifest: str | None = None,
    force: bool = False,
) -> Manifest:
    """Convert ``src`` into ``dst`` (formats from the extensions); returns the manifest.

    - Keras model or weights (``--arch``) -> ``.pt`` / ``.safetensors``: translated (or, with
      ``module``, copied into that PyTorch class with transfer_weights); ``source`` also writes
      the generated module's Python source.
    - ``.pt`` / ``.safetensors`` -> ``.weights.h5`` / ``.keras``: into the Keras architecture
      ``arch`` (a .keras file or ``zoo:NAME``), from the translated module's names, or from
      ``module``'s state_dict through transfer_weights.
    - same framework (``.pt`` <-> ``.safetensors``, ``.keras`` -> ``.weights.h5``): tensors copied.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if os.path.abspath(src) == os.path.abspath(dst):
        raise BadInputError("The output would overwrite the input; choose another output path.")
    s_fmt = "zoo" if src.startswith("zoo:") else detect_format(src)
    d_fmt = detect_format(dst, must_exist=False)
    if os.path.exists(dst) and not force:  # fail before any slow work
        raise BadInputError(f"{dst!r} exists; pass --force (force=True) to overwrite it.")
    if d_fmt == "onnx" or d_fmt == "h5":
        raise BadInputError(f"xconv writes .pt, .safetensors, .weights.h5 and .keras; not {dst!r} (use xconv onnx for .onnx).")

    if s_fmt == "zoo":  # a reference model with seeded weights and random biases
        from . import zoo

        if d_fmt not in ("torch", "safetensors", "keras", "keras-weights"):
            raise BadInputError(f"Cannot write {dst!r} from {src!r}.")
        keras_model = zoo.build(src[4:], "keras", seed=0, random_biases=True)
        if d_fmt in ("keras", "keras-weights"):
            _save_keras(keras_model, dst, d_fmt, force)
            result = Manifest(direction="keras->keras", matched_by="name")
            result.entries = [TransferEntry(k, k, v.shape, v.shape, "copy") for k, v in keras_model_tensors(keras_model).items()]
        else:
            result, state = _keras_to_torch_state(keras_model, source, force)
            write_tensors(dst, state, layout="torch", force=force)
    elif s_fmt in _KERAS_FILES and d_fmt in ("torch", "safetensors"):
        keras_model = _keras_source(src, s_fmt, arch)
        if module:
            from .transfer import transfer_weights

            target = _user_module(module, module_kwargs)
            result = transfer_weights(keras_model, target)
            state = {k: v.detach().cpu().numpy() for k, v in target.state_dict().items() if v.is_floating_point()}
        else:
            result, state = _keras_to_torch_state(keras_model, source, force)
        write_tensors(dst, state, layout="torch", force=force)
    elif s_fmt in ("torch", "safetensors") and d_fmt in ("keras-weights", "keras"):
        if not arch:
            raise BadInputError("Moving PyTorch weights into Keras needs the architecture: --arch model.keras or zoo:NAME.")
        keras_model = _keras_model_from(arch)
        tensors = read_tensors(src).tensors
        if module:
            import torch

            from .transfer import transfer_weights

            target = _user_module(module, module_kwargs)
            try:
                target.load_state_dict({k: torch.from_numpy(np.array(tensors[k])) for k in tensors})
            except RuntimeError as exc:
                raise MismatchedModelsError(f"{src!r} does not fit {module}: {exc}") from exc
            result = transfer_weights(target, keras_model)
        else:
            result = _torch_state_into_keras(tensors, keras_model, src)
        _save_keras(keras_model, dst, d_fmt, force)
    elif s_fmt in ("torch", "safetensors", "onnx") and d_fmt in ("torch", "safetensors"):
        tf = read_tensors(src)
        result = Manifest(direction=f"{s_fmt}->{d_fmt}", matched_by="name")
        result.entries = [TransferEntry(k, k, tuple(np.shape(v)), tuple(np.shape(v)), "copy") for k, v in _items(tf.tensors)]
        write_tensors(dst, dict(_items(tf.tensors)), layout=tf.layout, force=force)
    elif s_fmt in ("keras", "h5") and d_fmt in ("keras-weights", "keras"):
        keras_model = load_keras_model(src)
        result = Manifest(direction="keras->keras", matched_by="name")
        result.entries = [TransferEntry(k, k, v.shape, v.shape, "copy") for k, v in keras_model_tensors(keras_model).items()]
        _save_keras(keras_model, dst, d_fmt, force)
    else:
        raise BadInputError(f"No conversion from {s_fmt} ({src!r}) to {d_fmt} ({dst!r}).")
    if manifest:
        atomic_output(manifest, lambda tmp: open(tmp, "w").write(result.to_json(indent=2)), force=force)
    return result


def _items(tensors):
    for k in tensors:
        yield k, np.asarray(tensors[k])


def _keras_to_torch_state(keras_model, source, force):
    from .frameworks import keras_side as ks
    from .translate import build_module, translate

    wmap = weight_map(keras_model)
    translation = translate(keras_model)
    if source:
        module = build_module(translation)
        from .translate import write_source

        write_source(translation, module, source, force=force)
    keras_tensors = keras_model_tensors(keras_model)
    result = Manifest(direction="keras->torch", matched_by="translation")
    for key, value in translation.state.items():
        name, local = wmap.sources[key]
        layer = name.split("/")[0]
        how = _transform(local, wmap.keras_shapes[name])
        if layer in wmap.epsilons and not key.endswith(".weight") or layer in wmap.epsilons and how == "copy":
            how += f"; epsilon {wmap.epsilons[layer]} carried"
        result.entries.append(TransferEntry(name, key, tuple(keras_tensors[name].shape), tuple(value.shape), how))
    del ks
    return result, translation.state


def _torch_state_into_keras(tensors, keras_model, src: str) -> Manifest:
    from .frameworks import keras_side as ks

    wmap = weight_map(keras_model)
    float_keys = [k for k in tensors if np.asarray(tensors[k]).dtype.kind == "f"]
    missing = sorted(set(wmap.sources) - set(float_keys))
    unexpected = sorted(set(float_keys) - set(wmap.sources))
    if missing or unexpected:
        raise MismatchedModelsError(
            f"{src!r} does not match the architecture's translated module: missing {missing[:8]}, unexpected "
            f"{unexpected[:8]}. For a hand-written twin with other names, pass --module package.module:Class."
        )
    new = {name: np.empty(int(np.prod(shape)), dtype=np.float64) for name, shape in wmap.keras_shapes.items()}
    seen = {name: np.zeros(int(np.prod(shape)), dtype=bool) for name, shape in wmap.keras_shapes.items()}
    result = Manifest(direction="torch->keras", matched_by="translation")
    for key, (name, local) in wmap.sources.items():
        value = np.asarray(tensors[key])
        if value.shape != local.shape:
            raise MismatchedModelsError(f"{src!r}: '{key}' has shape {value.shape}; the architecture needs {local.shape}.")
        new[name][local.reshape(-1)] = value.reshape(-1)
        seen[name][local.reshape(-1)] = True
        result.entries.append(TransferEntry(key, name, value.shape, wmap.keras_shapes[name], _transform(local, wmap.keras_shapes[name])))
    for layer in ks.weighted_layers(keras_model):
        arrays = ks.layer_weights(layer)
        update = {}
        for key, old in arrays.items():
            name = f"{layer.name}/{key}"
            if name in new and seen[name].all():
                update[key] = new[name].reshape(old.shape).astype(old.dtype)
        ks.set_layer_weights(layer, update)
    return result


def _save_keras(model, dst: str, fmt: str, force: bool) -> None:
    if fmt == "keras-weights":
        atomic_output(dst, model.save_weights, force=force)
    else:
        atomic_output(dst, model.save, force=force)


def _to_layout(array: np.ndarray, to: str) -> tuple[np.ndarray, str]:
    if array.ndim >= 3:
        move = layouts.conv_kernel_to_torch if to == "torch" else layouts.conv_kernel_to_keras
        return move(array), f"permute {layouts.kernel_permutation(array.ndim - 2, to)}"
    if array.ndim == 2:
        return layouts.dense_kernel_to_torch(array), "transpose"
    return array, "copy"


def _shape_in(shape: tuple[int, ...], to: str) -> tuple[int, ...]:
    if len(shape) >= 3:
        perm = layouts.kernel_permutation(len(shape) - 2, to)
        return tuple(shape[i] for i in perm)
    return tuple(reversed(shape)) if len(shape) == 2 else tuple(shape)


def convert_layout(src, dst, *, to: str, force: bool = False, manifest: str | None = None, progress: bool = False) -> Manifest:
    """Move every tensor of a plain tensor file (.pt / .safetensors) to layout ``to``, streaming.

    Without an architecture the rule is the tensor's rank: conv kernels (rank >= 3) are
    permuted, matrices transposed, vectors copied. A Dense kernel that follows a Flatten of
    feature maps also needs its rows reordered, which only the architecture can tell: use
    ``convert_file(..., arch=...)`` for those. A .safetensors input is read one tensor at a
    time and written as it goes, so memory does not grow with the file.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if to not in ("torch", "keras"):
        raise BadInputError(f"layout must be 'torch' or 'keras'; received {to!r}.")
    s_fmt, d_fmt = detect_format(src), detect_format(dst, must_exist=False)
    if s_fmt not in ("torch", "safetensors") or d_fmt not in ("torch", "safetensors"):
        raise BadInputError("--layout converts plain tensor files: .pt/.pth/.safetensors to .pt/.pth/.safetensors.")
    result = Manifest(direction=f"layout->{to}", matched_by="name")
    if s_fmt == "safetensors" and d_fmt == "safetensors" and to == "torch":
        atomic_output(dst, lambda tmp: _stream_to_torch(src, tmp, result, progress), force=force)
    else:
        tensors = read_tensors(src).tensors
        out = {}
        for name in tensors:
            array = np.asarray(tensors[name])
            out[name], how = _to_layout(array, to)
            result.entries.append(TransferEntry(name, name, tuple(array.shape), tuple(out[name].shape), how))
        write_tensors(dst, out, layout=to, force=force)
    if manifest:
        atomic_output(manifest, lambda tmp: open(tmp, "w").write(result.to_json(indent=2)), force=force)
    return result


_CHUNK_BYTES = 4 * 2**20  # output is produced and written in pieces of about this size


def _progress(items, total: int, label: str, enabled: bool):
    """A tqdm bar on a terminal (stderr), nothing otherwise or without tqdm."""
    import sys

    if not enabled or not sys.stderr.isatty():
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, total=total, desc=label, unit="tensor", leave=False)


def _stream_to_torch(src: str, dst: str, result: Manifest, progress: bool = False) -> None:
    """safetensors (Keras layout) -> safetensors (torch layout), one tensor in memory at a time.

    Each tensor is read into one reused buffer; its torch-layout bytes are produced in small
    slabs (a few output filters at a time, two cache-friendly passes each) and written at once,
    so memory stays near one tensor and the copy runs close to disk speed.
    """
    import struct

    from .files import _ST_DTYPES, safetensors_header

    header, start = safetensors_header(src)
    names = [n for n in header if n != "__metadata__"]
    out_header, offset = {"__metadata__": {"layout": "torch"}}, 0
    for name in names:
        info = header[name]
        lo, hi = info["data_offsets"]
        out_header[name] = {"dtype": info["dtype"], "shape": list(_shape_in(tuple(info["shape"]), "torch")), "data_offsets": [offset, offset + hi - lo]}
        offset += hi - lo
    blob = json.dumps(out_header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    largest = max((header[n]["data_offsets"][1] - header[n]["data_offsets"][0] for n in names), default=0)
    buffer = np.empty(largest, np.uint8)
    size = os.path.getsize(src)
    with open(src, "rb") as fin, open(dst, "wb") as raw, _OverlappedWriter(raw) as fout:
        fout.write(struct.pack("<Q", len(blob)))
        fout.write(blob)
        for name in _progress(names, len(names), os.path.basename(src), progress):
            info = header[name]
            lo, hi = info["data_offsets"]
            if start + hi > size:
                raise BadInputError(f"Cannot read {src!r}: tensor {name!r} runs past the end of the file (truncated).")
            dtype = np.dtype(_np_dtype(info["dtype"]))
            fin.seek(start + lo)
            view = memoryview(buffer)[: hi - lo]
            if fin.readinto(view) != hi - lo:
                raise BadInputError(f"Cannot read {src!r}: tensor {name!r} is cut short (truncated).")
            shape = tuple(info["shape"])
            array = np.frombuffer(view, dtype=dtype).reshape(shape)
            how = _write_torch_layout(array, fout)
            fout.drain()  # the next tensor reuses the input buffer
            result.entries.append(TransferEntry(name, name, shape, _shape_in(shape, "torch"), how))
    del _ST_DTYPES


class _OverlappedWriter:
    """Writes one slab in a background thread while the next is computed (both release the GIL).

    Two slab buffers alternate; ``slab()`` hands out the one not being written.
    """

    def __init__(self, raw):
        from concurrent.futures import ThreadPoolExecutor

        self._raw, self._pool, self._pending, self._bufs, self._turn = raw, ThreadPoolExecutor(1), None, [None, None], 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)

    def slab(self, shape, dtype) -> np.ndarray:
        self._turn ^= 1
        n = int(np.prod(shape))
        buf = self._bufs[self._turn]
        if buf is None or buf.size < n or buf.dtype != dtype:
            if self._pending is not None and buf is not None:
                self.drain()
            buf = self._bufs[self._turn] = np.empty(max(n, 1), dtype)
        return buf[:n].reshape(shape)

    def write(self, array: np.ndarray) -> None:
        self.drain()  # the previous write must finish before its buffer comes round again
        self._pending = self._pool.submit(self._raw.write, memoryview(array).cast("B"))

    def drain(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None


def _write_torch_layout(array: np.ndarray, fout: _OverlappedWriter) -> str:
    if array.ndim >= 3:  # (*k, in, out) -> (out, in, *k), a slab of output filters at a time
        *k, cin, cout = array.shape
        kk = int(np.prod(k))
        x = array.reshape(kk, cin, cout)
        step = max(1, _CHUNK_BYTES // max(1, cin * kk * array.itemsize))
        mid = np.empty((cin, min(step, cout), kk), array.dtype)
        for o in range(0, cout, step):
            c = min(step, cout - o)
            np.copyto(mid[:, :c], x[:, :, o : o + c].transpose(1, 2, 0))
            slab = fout.slab((c, cin, kk), array.dtype)
            np.copyto(slab, mid[:, :c].transpose(1, 0, 2))
            fout.write(slab)
        return f"permute {layouts.kernel_permutation(len(k), 'torch')}"
    if array.ndim == 2:  # (in, out) -> (out, in), a slab of output rows at a time
        cin, cout = array.shape
        step = max(1, _CHUNK_BYTES // max(1, cin * array.itemsize))
        for o in range(0, cout, step):
            c = min(step, cout - o)
            slab = fout.slab((c, cin), array.dtype)
            np.copyto(slab, array[:, o : o + c].T)
            fout.write(slab)
        return "transpose"
    slab = fout.slab(array.shape, array.dtype)
    np.copyto(slab, array)
    fout.write(slab)
    return "copy"


def _np_dtype(code: str):
    from .files import _NP_DTYPES

    return _NP_DTYPES[code]
