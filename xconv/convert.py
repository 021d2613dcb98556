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
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import layouts
from .errors import BadInputError, MismatchedModelsError
from .files import Outputs, detect_format, input_files, keras_model_tensors, load_keras_model, read_tensors, save_keras, write_tensor_file
from .files.dtypes import is_float, to_numpy, to_torch
from .files.safetensors import safetensors_header, tensor_names
from .files.by_rank import how_by_rank, move_by_rank, moved_shape
from .files.stream import stream_layout
from .transfer import Manifest, TransferEntry

__all__ = ["convert_file", "convert_layout", "weight_map", "WeightMap"]

_KERAS_FILES = ("keras", "h5", "keras-weights")
_TORCH_FILES = ("torch", "safetensors", "onnx")


_BASE = 2**32  # index arrays count from here: a smaller value is a constant the converter wrote (0, 1)


@dataclass
class WeightMap:
    """Where each element of the translated module's state_dict comes from in the Keras model.

    Kept per torch tensor as a compact plan, never as one index per element of the whole model:
    ``shapes[key]`` is the torch tensor's shape; its plan lists, for each Keras tensor it draws on
    (``offsets``: start, stop, name of each Keras tensor end to end), the flat torch positions
    (None: all, in order) and either a named transform of the Keras tensor (``copy``, ``reshape``,
    ``permute``, ``depthwise``, ``transpose``: no array kept) or the flat Keras indices as int32
    (int64 past 2**31 elements). Where the converter writes a constant (LSTM's ``bias_hh`` zeros,
    BatchNormalization's ones without ``scale``) the plan keeps those positions and constants.
    A torch tensor may draw on several Keras tensors (MultiHeadAttention's packed ``in_proj_weight``).
    """

    shapes: dict[str, tuple[int, ...]]
    offsets: list[tuple[int, int, str]]
    keras_shapes: dict[str, tuple[int, ...]]
    epsilons: dict[str, float]  # Keras layer -> epsilon carried into torch
    keras_dtypes: dict[str, np.dtype]
    plans: dict[str, "_Plan"]
    variables: dict[str, object]  # Keras tensor name -> the model's variable

    def parts(self, key: str) -> list[tuple[str, np.ndarray | None, np.ndarray]]:
        """(Keras tensor, flat torch positions or None for all, flat Keras indices) for each Keras tensor ``key`` draws on."""
        return [(name, pos, _local_of(how, local, self.keras_shapes[name], self.shapes[key])) for name, pos, how, local in self.plans[key].parts]

    def constants(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Flat torch positions of ``key`` that hold constants, and the constants."""
        return self.plans[key].constants

    def single(self, key: str) -> tuple[str, str] | None:
        """(Keras tensor, transform name) when ``key`` is that one tensor moved whole; else None."""
        plan = self.plans[key]
        if len(plan.parts) == 1 and plan.parts[0][1] is None:
            return plan.parts[0][0], plan.parts[0][2]
        return None


@dataclass
class _Plan:
    """One torch tensor's map: parts (Keras tensor, positions or None, transform name, indices or None) and constants."""

    parts: list[tuple[str, np.ndarray | None, str, np.ndarray | None]]
    constants: tuple[np.ndarray, np.ndarray]


def _named_transform(local: np.ndarray, kshape: tuple[int, ...]) -> str:
    """The transform ``local`` (Keras flat indices, torch shape) performs, by name, or ``reorder``."""
    size = int(np.prod(kshape))
    if local.size != size:
        return "reorder"
    if np.array_equal(local.reshape(-1), np.arange(size)):
        return "copy" if local.shape == kshape else "reshape"
    if len(kshape) >= 3 and local.ndim == len(kshape):
        ref = np.arange(size).reshape(kshape)
        if np.array_equal(local, layouts.conv_kernel_to_torch(ref)):
            return "permute"
        if np.array_equal(local, layouts.depthwise_kernel_to_torch(ref)):
            return "depthwise"
    if len(kshape) == 2 and local.shape == kshape[::-1] and np.array_equal(local, np.arange(size).reshape(kshape).T):
        return "transpose"
    return "reorder"


def _local_of(how: str, local: np.ndarray | None, kshape: tuple[int, ...], tshape: tuple[int, ...]) -> np.ndarray:
    """The flat Keras index of each torch element (torch shape where the part is whole)."""
    if local is not None:
        return local
    size = int(np.prod(kshape))
    dtype = np.int32 if size < 2**31 else np.int64
    ref = np.arange(size, dtype=dtype).reshape(kshape)
    if how == "permute":
        return np.ascontiguousarray(layouts.conv_kernel_to_torch(ref))
    if how == "depthwise":
        return np.ascontiguousarray(layouts.depthwise_kernel_to_torch(ref))
    if how == "transpose":
        return np.ascontiguousarray(ref.T)
    return ref.reshape(tshape)


class _Planner(dict):
    """The translation's state_dict, kept as plans: each index array is reduced when it is stored."""

    def __init__(self, offsets, keras_shapes):
        super().__init__()
        self.offsets, self.keras_shapes, self.plans = offsets, keras_shapes, {}

    def __setitem__(self, key, idx):
        idx = np.asarray(idx, dtype=np.float64)
        self.plans[key] = self._plan(key, idx)
        super().__setitem__(key, tuple(idx.shape))  # the shape only: the array goes now

    def _plan(self, key, idx) -> _Plan:
        flat = idx.reshape(-1)
        quick = self._named(idx, flat)
        if quick is not None:
            return quick
        drawn = flat >= _BASE
        where = np.flatnonzero(drawn)
        glob = flat[where]
        if glob.size and (np.any(glob != np.floor(glob)) or np.unique(glob).size != glob.size):
            raise BadInputError(f"The converter for torch tensor {key!r} computes its values instead of moving them; xconv cannot map it.")
        glob = glob.astype(np.int64) - _BASE
        not_drawn = np.flatnonzero(~drawn)
        constants = (not_drawn, flat[not_drawn])
        starts = np.array([o[0] for o in self.offsets], dtype=np.int64)
        which = np.searchsorted(starts, glob, side="right") - 1
        parts = []
        for w in np.unique(which):
            start, _, name = self.offsets[int(w)]
            sel = which == w
            kshape = self.keras_shapes[name]
            index_type = np.int32 if int(np.prod(kshape)) < 2**31 else np.int64
            local = (glob[sel] - start).astype(index_type)
            pos = where[sel]
            if pos.size == flat.size:  # the whole torch tensor from this one Keras tensor
                how = _named_transform(local.reshape(idx.shape), kshape)
                parts.append((name, None, how, None if how != "reorder" else local))
            else:
                parts.append((name, pos.astype(np.int32 if flat.size < 2**31 else np.int64), "gather", local))
        return _Plan(parts, constants)


    def _named(self, idx, flat) -> _Plan | None:
        """The plan of a torch tensor that is one Keras tensor moved by a named transform, found with
        one reference array (no sort, no per-element searches); None where it is not."""
        if not flat.size:
            return None
        lo = float(flat[0]) if idx.ndim < 2 else float(flat.min())
        if lo < _BASE:
            return None
        starts = [o[0] for o in self.offsets]
        w = int(np.searchsorted(starts, lo - _BASE, side="right")) - 1
        start, stop, name = self.offsets[w]
        kshape = self.keras_shapes[name]
        if stop - start != flat.size or lo - _BASE != start:
            return None
        first = float(_BASE + start)
        if _is_range(flat, first):
            return _Plan([(name, None, "copy" if tuple(idx.shape) == kshape else "reshape", None)], _NO_CONSTANTS)
        for how, keras_order in _keras_orders(idx, kshape):
            if _is_range(keras_order, first):
                return _Plan([(name, None, how, None)], _NO_CONSTANTS)
        return None


def _keras_orders(idx: np.ndarray, kshape: tuple[int, ...]):
    """(transform, ``idx`` viewed in the Keras tensor's element order) for each named transform that
    could have made ``idx`` from a Keras tensor of shape ``kshape``: the view undoes the transform
    (no copy), so ``idx`` is that transform exactly when the view reads 0, 1, 2 ... from the start."""
    shape = tuple(idx.shape)
    n = len(kshape) - 2
    if n >= 1 and len(shape) == len(kshape):
        *k, cin, cout = kshape
        if shape == (cout, cin, *k):  # conv_kernel_to_torch: (*k, in, out) -> (out, in, *k)
            yield "permute", idx.transpose(layouts.kernel_permutation(n, "keras"))
        if shape == (cin * cout, 1, *k):  # depthwise_kernel_to_torch: (*k, in, mult) -> (in * mult, 1, *k)
            yield "depthwise", idx.reshape(cin * cout, -1).T
    elif len(kshape) == 2 and shape == kshape[::-1]:
        yield "transpose", idx.T


_SLAB = 2**20  # elements compared at a time against a reference range


def _is_range(view: np.ndarray, first: float) -> bool:
    """Whether ``view``'s elements, in C order, are ``first, first + 1, ...``: compared a slab at a
    time, so no reference array the size of ``view`` is made (float64 indices are twice the weights)."""
    if view.size <= _SLAB:
        return np.array_equal(view, np.arange(first, first + view.size, dtype=np.float64).reshape(view.shape))
    if view.ndim == 1:
        return all(_is_range(view[i : i + _SLAB], first + i) for i in range(0, view.size, _SLAB))
    inner = view.size // view.shape[0]
    return all(_is_range(view[i], first + i * inner) for i in range(view.shape[0]))


_NO_CONSTANTS = (np.empty(0, np.int64), np.empty(0, np.float64))


def weight_map(keras_model) -> WeightMap:
    """Where each element of the translated module's state_dict comes from in ``keras_model``.

    The architecture is translated once with float64 index arrays in place of one layer's weights
    at a time; each torch tensor's index is reduced to a plan as soon as the converter stores it,
    so memory holds one layer's indices, not the model's."""
    from .frameworks import keras_side as ks
    from .translate import translation_state

    offsets: list[tuple[int, int, str]] = []
    starts: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, np.dtype] = {}
    eps: dict[str, float] = {}
    named: dict[int, str] = {}  # id(Keras variable) -> its name in the map
    variables: dict[str, object] = {}  # name -> the Keras variable
    cursor = 0

    def index_weights(layer):
        nonlocal cursor
        out = {}
        for key, var in zip(ks.weight_keys(layer), layer.weights):
            # one name per variable: a custom layer's weight read inside its call and again by the
            # layer that owns it (a sublayer) is one Keras tensor
            name = named.setdefault(id(var), f"{layer.name}/{key}")
            if name not in shapes:
                variables[name] = var
                shapes[name], dtypes[name] = _shape_and_dtype(var)
                size = math.prod(shapes[name])
                offsets.append((cursor, cursor + size, name))
                starts[name] = cursor
                cursor += size
                if _BASE + cursor >= 2**53:  # float64 holds integers exactly up to here
                    raise BadInputError("The model has too many weights (over 2**52) for xconv to map.")
            index = np.arange(math.prod(shapes[name]), dtype=np.float64)
            index += _BASE + starts[name]  # in place: one array the size of the index, not two
            out[key] = index.reshape(shapes[name])
        if getattr(layer, "epsilon", None) is not None:
            eps[layer.name] = float(layer.epsilon)
        return out

    # translate()'s steps, with a state that keeps plans (no module source is rendered)
    planner = translation_state(keras_model, _Planner(offsets, shapes), weights_of=index_weights)
    return WeightMap(dict(planner), offsets, shapes, eps, dtypes, planner.plans, variables)


def _shape_and_dtype(var) -> tuple[tuple[int, ...], np.dtype]:
    """A Keras variable's shape and NumPy dtype, read from the variable (its value is not copied)."""
    from .files.dtypes import np_dtype

    try:
        return tuple(int(n) for n in var.shape), np_dtype(str(getattr(var.dtype, "name", var.dtype)))
    except (TypeError, ValueError, BadInputError):  # a dtype NumPy does not name as Keras does: ask the value
        from .frameworks import keras_side as ks

        value = ks.to_numpy(var.value)
        return tuple(value.shape), value.dtype


_HOW = {
    "copy": lambda kshape, tshape: "copy",
    "reshape": lambda kshape, tshape: f"reshape {kshape} -> {tshape}",
    "permute": lambda kshape, tshape: f"permute {layouts.kernel_permutation(len(kshape) - 2)}",
    "depthwise": lambda kshape, tshape: "depthwise (*k, in, mult) -> (in * mult, 1, *k)",
    "transpose": lambda kshape, tshape: "transpose",
}


def _transform(how: str, kshape: tuple[int, ...], tshape: tuple[int, ...]) -> str:
    """The manifest's words for a plan's transform."""
    if how in _HOW:
        return _HOW[how](kshape, tshape)
    if len(kshape) == 2 and tshape == kshape[::-1]:
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

        from .files.keras import h5_datasets as _h5_datasets

        stored = sorted(tuple(v.shape) for v in _h5_datasets(src).values())
        # h5_datasets reads float (and complex) arrays only: a Normalization's int64 count, a
        # seed's state, are loaded by Keras but not compared here
        wanted = sorted(tuple(w.shape) for w in model.weights if str(w.dtype).startswith(("float", "bfloat", "complex")))
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


def _side_weights(source: str) -> str:
    """The state_dict written beside a generated module's source: ``m.py`` -> ``m.pt``."""
    return os.path.splitext(source)[0] + ".pt"


def _write_text(text: str):
    def write(tmp):
        with open(tmp, "w") as fh:
            fh.write(text)

    return write


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
      the generated module's Python source, and its state_dict beside it (``m.py`` -> ``m.pt``).
    - ``.pt`` / ``.safetensors`` -> ``.weights.h5`` / ``.keras``: into the Keras architecture
      ``arch`` (a .keras file or ``zoo:NAME``), from the translated module's names, or from
      ``module``'s state_dict through transfer_weights.
    - same framework (``.pt`` <-> ``.safetensors``, ``.keras`` -> ``.weights.h5``): tensors copied;
      every path from a ``.safetensors`` streams, and so does ``.pt`` -> ``.safetensors`` (the
      route table ``ROUTES`` says which function does each pair).

    Every file written (output, manifest, source and the weights beside it) follows the rule of
    :class:`xconv.files.Outputs`: checked before any work, never an input, all or nothing.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    s_fmt = "zoo" if src.startswith("zoo:") else detect_format(src)
    d_fmt = detect_format(dst, must_exist=False)
    if d_fmt == "onnx" or d_fmt == "h5":
        raise BadInputError(f"xconv writes .pt, .safetensors, .weights.h5 and .keras; not {dst!r} (use xconv onnx for .onnx).")
    if arch and not arch.startswith("zoo:"):
        detect_format(arch)
    if source and not (s_fmt in (*_KERAS_FILES, "zoo") and d_fmt in ("torch", "safetensors") and not module):
        raise BadInputError("--source writes the generated PyTorch module: only for Keras -> .pt/.safetensors without --module.")
    with Outputs(input_files(src, arch), force=force) as out:
        out.add(dst, "output")
        if manifest:
            out.add(manifest, "manifest")
        if source:
            out.add(source, "source (--source)")
            out.add(_side_weights(source), f"weights beside --source {source!r}")
        result = _convert(src, dst, s_fmt, d_fmt, arch, module, module_kwargs, source, out)
        if manifest:
            out.fill(manifest, _write_text(result.to_json(indent=2)))
    return result


@dataclass
class _Job:
    """One conversion's arguments, handed to the route that does it."""

    src: str
    dst: str
    s_fmt: str
    d_fmt: str
    arch: str | None
    module: str | None
    module_kwargs: str | None
    source: str | None
    out: Outputs


def _zoo_to_keras(j: _Job) -> Manifest:
    from .files import zoo_keras_model

    keras_model = zoo_keras_model(j.src)
    j.out.fill(j.dst, lambda tmp: save_keras(keras_model, tmp, j.d_fmt))
    return _keras_copy_manifest(keras_model)


def _zoo_to_torch(j: _Job) -> Manifest:
    from .files import zoo_keras_model

    keras_model = zoo_keras_model(j.src)
    result, state = _keras_to_torch_state(keras_model, j.source, j.out)
    j.out.fill(j.dst, lambda tmp: _write_torch_state(tmp, j.d_fmt, state, keras_model))
    return result


def _keras_to_torch_file(j: _Job) -> Manifest:
    keras_model = _keras_source(j.src, j.s_fmt, j.arch)
    if j.module:
        from .transfer import transfer_weights

        target = _user_module(j.module, j.module_kwargs)
        result = transfer_weights(keras_model, target)
        state = {k: to_numpy(v, f"{j.module}: {k!r}") for k, v in target.state_dict().items()}
    else:
        result, state = _keras_to_torch_state(keras_model, j.source, j.out)
    j.out.fill(j.dst, lambda tmp: _write_torch_state(tmp, j.d_fmt, state, keras_model))
    return result


def _torch_to_keras_file(j: _Job) -> Manifest:
    if not j.arch:
        raise BadInputError("Moving PyTorch weights into Keras needs the architecture: --arch model.keras or zoo:NAME.")
    keras_model = _keras_model_from(j.arch)
    wmap = None if j.module else weight_map(keras_model)  # its index arrays come and go before the file is read
    tensors = read_tensors(j.src).tensors
    if j.module:
        from .transfer import transfer_weights

        target = _user_module(j.module, j.module_kwargs)
        try:
            target.load_state_dict({k: to_torch(tensors[k], f"{j.src!r}: {k!r}") for k in tensors})
        except RuntimeError as exc:
            raise MismatchedModelsError(f"{j.src!r} does not fit {j.module}: {str(exc).strip().splitlines()[0][:300]}") from exc
        result = transfer_weights(target, keras_model)
        del target
    else:
        result = _torch_state_into_keras(tensors, keras_model, j.src, wmap)
    del tensors  # in the model now: the file's copy leaves memory before the Keras file is built
    _give_back_freed_memory()
    j.out.fill(j.dst, lambda tmp: save_keras(keras_model, tmp, j.d_fmt))
    return result


def _give_back_freed_memory() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``; elsewhere nothing).

    Large arrays freed after many others (a torch file's tensors, read whole) stay in the heap as
    free pages: glibc raises its mmap threshold as big blocks are freed, so later ones come from
    the heap, and a free block below the heap's top is not handed back until asked."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # musl and others: no malloc_trim
        pass


def _copy_manifest_of_header(j: _Job) -> Manifest:
    header, _ = safetensors_header(j.src)
    result = Manifest(direction=f"{j.s_fmt}->{j.d_fmt}", matched_by="name")
    result.entries = [TransferEntry(k, k, tuple(header[k]["shape"]), tuple(header[k]["shape"]), "copy") for k in tensor_names(header)]
    return result


def _safetensors_copy(j: _Job) -> Manifest:
    result = _copy_manifest_of_header(j)  # validated, then copied by the kernel
    j.out.fill(j.dst, lambda tmp: _copy_bytes(j.src, tmp))
    return result


def _safetensors_to_pt(j: _Job) -> Manifest:
    result = _copy_manifest_of_header(j)
    # copied by the kernel into a hidden safetensors beside the output (an input cut meanwhile is an
    # error, not a SIGBUS in the mapped views), then saved from the mapped copy's views
    j.out.fill(j.dst, lambda tmp: _layout_via_safetensors(j.src, tmp, None, None))
    return result


def _pt_to_safetensors(j: _Job) -> Manifest:
    from .files.torch_pt import write_safetensors_from_torch

    result = Manifest(direction=f"{j.s_fmt}->{j.d_fmt}", matched_by="name")

    def write(tmp):  # streamed: the tensors are views of the mapped .pt
        for k, (shape, _) in write_safetensors_from_torch(tmp, j.src).items():
            result.entries.append(TransferEntry(k, k, shape, shape, "copy"))

    j.out.fill(j.dst, write)
    return result


def _tensor_copy(j: _Job) -> Manifest:
    result = Manifest(direction=f"{j.s_fmt}->{j.d_fmt}", matched_by="name")
    tf = read_tensors(j.src)
    for k in tf.tensors:
        shape, _ = _info(tf.tensors, k)
        result.entries.append(TransferEntry(k, k, shape, shape, "copy"))
    j.out.fill(j.dst, lambda tmp: write_tensor_file(tmp, j.d_fmt, tf.tensors, tf.layout))
    return result


def _keras_copy(j: _Job) -> Manifest:
    keras_model = load_keras_model(j.src)
    j.out.fill(j.dst, lambda tmp: save_keras(keras_model, tmp, j.d_fmt))
    return _keras_copy_manifest(keras_model)


_TORCH_OUT = ("torch", "safetensors")
_KERAS_OUT = ("keras-weights", "keras")
# (source formats, output formats, route): the first row that matches does the conversion
ROUTES = (
    (("zoo",), _KERAS_OUT, _zoo_to_keras),
    (("zoo",), _TORCH_OUT, _zoo_to_torch),
    (_KERAS_FILES, _TORCH_OUT, _keras_to_torch_file),
    (("torch", "safetensors", "sharded"), _KERAS_OUT, _torch_to_keras_file),
    (("safetensors",), ("safetensors",), _safetensors_copy),
    (("safetensors",), ("torch",), _safetensors_to_pt),
    (("torch",), ("safetensors",), _pt_to_safetensors),
    (("torch", "safetensors", "sharded", "onnx"), _TORCH_OUT, _tensor_copy),
    (("keras", "h5"), _KERAS_OUT, _keras_copy),
)


def _convert(src, dst, s_fmt, d_fmt, arch, module, module_kwargs, source, out: Outputs) -> Manifest:
    for sources, targets, route in ROUTES:
        if s_fmt in sources and d_fmt in targets:
            return route(_Job(src, dst, s_fmt, d_fmt, arch, module, module_kwargs, source, out))
    raise BadInputError(f"No conversion from {s_fmt} ({src!r}) to {d_fmt} ({dst!r}).")


def _keras_copy_manifest(keras_model) -> Manifest:
    result = Manifest(direction="keras->keras", matched_by="name")
    result.entries = [TransferEntry(k, k, tuple(v.shape), tuple(v.shape), "copy") for k, v in keras_model_tensors(keras_model).items()]
    return result


def _info(tensors, name) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a tensor, without reading it where the file allows."""
    if hasattr(tensors, "info"):
        return tensors.info(name)
    value = tensors[name]
    return tuple(np.shape(value)), np.asarray(value).dtype


def _copy_bytes(src: str, dst: str) -> None:
    """``src`` copied to ``dst`` by the kernel; an ``src`` truncated, grown or replaced meanwhile is refused."""
    import shutil

    from .files.stream import file_stamp

    def stamp(path):
        return file_stamp(os.stat(path))

    before = stamp(src)
    shutil.copyfile(src, dst)  # sendfile / copy_file_range where the system has them
    try:
        after = stamp(src)
    except OSError:
        after = None
    if after != before or os.path.getsize(dst) != before[2]:
        raise BadInputError(f"{src!r} changed while it was copied (truncated, rewritten or replaced); nothing was written: copy it again once nothing else writes it.")


@dataclass(frozen=True)
class _Recorded:
    """What the translation stored for one torch tensor, without the tensor."""

    shape: tuple[int, ...]
    dtype: np.dtype
    digest: bytes


def _digest(array: np.ndarray) -> bytes:
    import hashlib

    return hashlib.blake2b(np.ascontiguousarray(array).reshape(-1).view(np.uint8), digest_size=32).digest()


class _Recorder(dict):
    """The translation's state_dict, kept as shape, dtype and digest: each array goes once stored."""

    def __setitem__(self, key, value):
        value = np.ascontiguousarray(value)
        super().__setitem__(key, _Recorded(tuple(value.shape), value.dtype, _digest(value)))


def _recorded_state(keras_model) -> dict[str, _Recorded]:
    """translate()'s state_dict of ``keras_model``, recorded (no module source is rendered): memory
    holds one layer's arrays at a time, not the model's."""
    from .translate import translation_state

    return dict(translation_state(keras_model, _Recorder()))


_MOVES = {
    "copy": np.ascontiguousarray,
    "reshape": np.ascontiguousarray,
    "permute": layouts.conv_kernel_to_torch,
    "depthwise": layouts.depthwise_kernel_to_torch,
    "transpose": layouts.dense_kernel_to_torch,
}


class _Diverged(Exception):
    """A tensor made from the weight map is not the one the translation made (checked by digest)."""


class _DerivedState:
    """The translated module's state_dict, each tensor made when asked for from the Keras weights
    and the weight map, and checked against the digest of the one the translation made: the
    same bits, without the whole state_dict in memory beside the model."""

    def __init__(self, wmap: WeightMap, recorded: dict[str, _Recorded]):
        self._wmap, self._recorded = wmap, recorded

    def __iter__(self):
        return iter(self._recorded)

    def __len__(self):
        return len(self._recorded)

    def info(self, key):
        return self._recorded[key].shape, self._recorded[key].dtype

    def _value(self, name: str) -> np.ndarray:
        from .frameworks import keras_side as ks

        return ks.to_numpy(self._wmap.variables[name].value)

    def __getitem__(self, key) -> np.ndarray:
        wmap, want = self._wmap, self._recorded[key]
        single = wmap.single(key)
        if single is not None and single[1] in _MOVES and not wmap.constants(key)[0].size:
            name, how = single
            array = _MOVES[how](self._value(name).reshape(wmap.keras_shapes[name])).reshape(want.shape)
            array = array if array.dtype == want.dtype else array.astype(want.dtype)
        else:
            flat = np.empty(math.prod(want.shape), want.dtype)
            where, consts = wmap.constants(key)
            flat[where] = consts
            for name, pos, local in wmap.parts(key):
                values = self._value(name).reshape(-1)[local.reshape(-1)]
                if pos is None:
                    flat[:] = values
                else:
                    flat[pos] = values
            array = flat.reshape(want.shape)
        if array.shape != want.shape or array.dtype != want.dtype or _digest(array) != want.digest:
            raise _Diverged(key)
        return array


def _write_torch_state(tmp: str, fmt: str, state, keras_model) -> None:
    """``state`` (a translated module's state_dict) into ``tmp`` as ``fmt`` (.pt or .safetensors).

    A :class:`_DerivedState` streams: each tensor made, written and dropped (a .pt through a hidden
    safetensors beside the output, saved from its mapped views as :func:`_layout_via_safetensors`
    does). Should a made tensor differ from the translation's, the translation's own state_dict is
    written instead, whole."""
    if not isinstance(state, _DerivedState):
        write_tensor_file(tmp, fmt, state, "torch")
        return
    from .files import write_safetensors_stream

    shapes = {k: state.info(k) for k in state}
    try:
        if fmt == "safetensors":
            write_safetensors_stream(tmp, ((k, state[k]) for k in state), shapes, {"layout": "torch"})
        else:
            _torch_via_safetensors(tmp, lambda middle: write_safetensors_stream(middle, ((k, state[k]) for k in state), shapes, {"layout": "torch"}))
    except _Diverged:  # a converter that does not only move values: its own arrays, as before
        from .translate import translate

        write_tensor_file(tmp, fmt, translate(keras_model).state, "torch")


def _keras_to_torch_state(keras_model, source, out: Outputs | None = None):
    """The manifest and the translated module's state_dict (made tensor by tensor when written,
    unless ``source`` asks for the module itself, which holds them all)."""
    from .translate import build_module, translate

    wmap = weight_map(keras_model)
    if source:
        translation = translate(keras_model)
        module = build_module(translation)
        weights = _side_weights(source)
        text = translation.source.replace('torch.load("weights.pt"', f'torch.load("{os.path.basename(weights)}"')
        out.fill(weights, lambda tmp: write_tensor_file(tmp, "torch", {k: to_numpy(v, k) for k, v in module.state_dict().items()}))
        out.fill(source, _write_text(text))
        state = translation.state
    else:
        recorded = _recorded_state(keras_model)
        state = _DerivedState(wmap, recorded)
    keras_shapes = wmap.keras_shapes
    result = Manifest(direction="keras->torch", matched_by="translation")
    for key in state:
        shape = tuple(_info(state, key)[0])
        single = wmap.single(key)
        if single is None:  # several Keras tensors, or constants written by the converter
            parts = wmap.parts(key)
            names = [p[0] for p in parts]
            how = "concatenate " + " + ".join(names) if len(parts) > 1 else f"gather from {names[0]}" if parts else "constant"
            if wmap.constants(key)[0].size:
                how += " with constants" if parts else ""
            source = names[0] if len(names) == 1 else " + ".join(names) if names else "(constant)"
            kshape = keras_shapes[names[0]] if len(names) == 1 else ()
            result.entries.append(TransferEntry(source, key, kshape, shape, how))
            continue
        name, named = single
        layer = name.split("/")[0]
        how = _transform(named, wmap.keras_shapes[name], shape)
        if layer in wmap.epsilons and not key.endswith(".weight") or layer in wmap.epsilons and how == "copy":
            how += f"; epsilon {wmap.epsilons[layer]} carried"
        result.entries.append(TransferEntry(name, key, keras_shapes[name], shape, how))
    return result, state


def _wrapper_prefix(keys: list[str], wanted: set[str]) -> str | None:
    """The dotted prefix every one of ``keys`` carries and without which they are exactly
    ``wanted`` (``model.`` of a Lightning module, ``module.`` of DataParallel, ``_orig_mod.``
    of torch.compile, or several); None where there is none."""
    if not keys:
        return None
    parts = keys[0].split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i]) + "."
        if not all(k.startswith(prefix) for k in keys):
            return None
        if {k[len(prefix):] for k in keys} == wanted:
            return prefix
    return None


class _Prefixed(Mapping):
    """The tensors of a file, named without ``prefix`` (see :func:`_wrapper_prefix`)."""

    def __init__(self, tensors, prefix: str):
        self.tensors, self.prefix = tensors, prefix

    def __getitem__(self, name):
        return self.tensors[self.prefix + name]

    def __iter__(self):
        n = len(self.prefix)
        return (k[n:] for k in self.tensors if k.startswith(self.prefix))

    def __len__(self):
        return sum(1 for _ in self)

    def info(self, name):
        return _info(self.tensors, self.prefix + name)


def _torch_state_into_keras(tensors, keras_model, src: str, wmap: WeightMap | None = None) -> Manifest:
    """Every Keras weight gathered from the torch tensors by the weight map (``keras_model``'s, made
    here unless given): values moved, never cast.

    Tensors are read one at a time; each Keras weight is assigned to the model as soon as all
    its elements have arrived, so beside the model memory holds about one tensor."""
    wmap = weight_map(keras_model) if wmap is None else wmap
    float_keys = [k for k in tensors if is_float(_info(tensors, k)[1])]
    missing = sorted(set(wmap.shapes) - set(float_keys))
    unexpected = sorted(set(float_keys) - set(wmap.shapes))
    if missing or unexpected:
        prefix = _wrapper_prefix(float_keys, set(wmap.shapes))
        if prefix is None:
            raise MismatchedModelsError(
                f"{src!r} does not match the architecture's translated module: missing {missing[:8]}, unexpected "
                f"{unexpected[:8]}. For a hand-written twin with other names, pass --module package.module:Class."
            )
        from .files.torch_pt import _note

        _note(f"{src!r}: its names carry the prefix {prefix!r} of a wrapper (Lightning's model., DataParallel's module., torch.compile's _orig_mod.); read without it")
        tensors = _Prefixed(tensors, prefix)
    new: dict[str, np.ndarray] = {}
    filled: dict[str, int] = {}
    result = Manifest(direction="torch->keras", matched_by="translation")

    def assign(name: str) -> None:
        array = new.pop(name)
        if array.dtype != wmap.keras_dtypes[name]:
            raise BadInputError(
                f"{src!r}: the weights of {name!r} are {array.dtype} but the architecture holds {wmap.keras_dtypes[name]}; "
                f"xconv moves values without casting: build the architecture with dtype={str(array.dtype)!r}, "
                f"or cast the file first."
            )
        var = wmap.variables[name]
        var.assign(array.reshape(wmap.keras_shapes[name]))

    for key, shape in wmap.shapes.items():
        wanted = _info(tensors, key)[0]
        if tuple(wanted) != tuple(shape):
            raise MismatchedModelsError(f"{src!r}: '{key}' has shape {tuple(wanted)}; the architecture needs {tuple(shape)}.")
        value = np.asarray(tensors[key])
        flat = value.reshape(-1)
        where, consts = wmap.constants(key)
        if where.size and not np.array_equal(flat[where], consts.astype(value.dtype)):
            raise MismatchedModelsError(
                f"{src!r}: '{key}' holds values where the Keras architecture has none (the translation writes constants "
                f"there: LSTM's bias_hh zeros, since Keras keeps one bias, or values a layer computes from its weights, "
                f"such as a Normalization's or a custom layer's ops.exp(self.w)); xconv moves values without folding or "
                f"inverting them. Fold them into the matching tensor first (bias_ih += bias_hh), keep them as the "
                f"architecture computes them, or pass --module package.module:Class."
            )
        parts = wmap.parts(key)
        for name, pos, local in parts:
            size = int(np.prod(wmap.keras_shapes[name]))
            if name not in new:
                new[name] = np.empty(size, dtype=value.dtype)
            elif new[name].dtype != value.dtype:
                raise BadInputError(f"{src!r}: '{key}' is {value.dtype} but other tensors of Keras weight {name!r} are {new[name].dtype}.")
            new[name][local.reshape(-1)] = flat if pos is None else flat[pos]
            filled[name] = filled.get(name, 0) + local.size
            if filled[name] >= size:
                assign(name)
        single = wmap.single(key)
        if single is not None:
            name, how = single[0], _transform(single[1], wmap.keras_shapes[single[0]], tuple(shape))
        else:
            name, how = " + ".join(p[0] for p in parts) or "(constant)", "split"
        result.entries.append(TransferEntry(key, name, value.shape, wmap.keras_shapes.get(name, ()), how))
        del value, flat, parts
    return result


def convert_layout(src, dst, *, to: str, force: bool = False, manifest: str | None = None, progress: bool = False) -> Manifest:
    """Move every tensor of a plain tensor file (.pt / .safetensors) to layout ``to``.

    Without an architecture the rule is the tensor's rank: conv kernels (rank >= 3) are
    permuted, matrices transposed, vectors and scalars copied. A Dense kernel that follows a
    Flatten of feature maps also needs its rows reordered, which only the architecture can
    tell: use ``convert_file(..., arch=...)`` for those. A .safetensors input streams, in either
    direction (:mod:`xconv.files.stream`): the input read in slabs, one scratch tensor, the output made
    and written in slabs by two threads; a .pt output is then saved from views of that
    intermediate file (hidden beside the output, removed at the end).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    if to not in ("torch", "keras"):
        raise BadInputError(f"layout must be 'torch' or 'keras'; received {to!r}.")
    s_fmt, d_fmt = detect_format(src), detect_format(dst, must_exist=False)
    if s_fmt not in ("torch", "safetensors", "sharded") or d_fmt not in ("torch", "safetensors"):
        raise BadInputError("--layout converts plain tensor files: .pt/.pth/.safetensors to .pt/.pth/.safetensors.")
    result = Manifest(direction=f"layout->{to}", matched_by="name")
    with Outputs(input_files(src), force=force) as out:
        out.add(dst, "output")
        if manifest:
            out.add(manifest, "manifest")
        if s_fmt == "safetensors":
            bar = _progress_bar(len(tensor_names(safetensors_header(src)[0])), os.path.basename(src), progress)

            def entry(name, shape):
                result.entries.append(TransferEntry(name, name, shape, moved_shape(shape, to), how_by_rank(len(shape), to)))
                if bar is not None:
                    bar.update(1)

            if d_fmt == "safetensors":
                out.fill(dst, lambda tmp: stream_layout(src, tmp, to, entry))
            else:  # streamed into a hidden safetensors beside the output, then saved from its mapped views
                out.fill(dst, lambda tmp: _layout_via_safetensors(src, tmp, to, entry))
            if bar is not None:
                bar.close()
        else:
            tensors = read_tensors(src).tensors
            moved = _Moved(tensors, to)
            for name in tensors:
                shape, _ = _info(tensors, name)
                result.entries.append(TransferEntry(name, name, shape, moved_shape(shape, to), how_by_rank(len(shape), to)))
            out.fill(dst, lambda tmp: write_tensor_file(tmp, d_fmt, moved, to))
        if manifest:
            out.fill(manifest, _write_text(result.to_json(indent=2)))
    return result


def _progress_bar(total: int, label: str, enabled: bool):
    """A tqdm bar on a terminal (stderr); None otherwise or without tqdm."""
    import sys

    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=label, unit="tensor", leave=False)


def _layout_via_safetensors(src: str, tmp: str, to: str | None, entry) -> None:
    """``src`` streamed (moved to ``to``, or copied) into a hidden safetensors beside ``tmp``, then ``torch.save``d into ``tmp``."""
    _torch_via_safetensors(tmp, lambda middle: stream_layout(src, middle, to, entry))


def _torch_via_safetensors(tmp: str, write_middle) -> None:
    """``write_middle(path)`` streams a hidden safetensors beside ``tmp``, which is then ``torch.save``d
    into ``tmp`` from its mapped views (each page released once written); the hidden file goes."""
    from .files.output import side_file
    from .files.torch_pt import write_torch_from_safetensors

    with side_file(tmp, "st") as middle:
        with open(middle, "xb"):
            pass
        write_middle(middle)
        write_torch_from_safetensors(tmp, middle)


class _Moved:
    """The tensors of a file in layout ``to``, each moved when asked for."""

    def __init__(self, tensors, to: str):
        self._t, self._to = tensors, to

    def __iter__(self):
        return iter(self._t)

    def __len__(self):
        return len(self._t)

    def __getitem__(self, name):
        return move_by_rank(self._t[name], self._to)[0]
