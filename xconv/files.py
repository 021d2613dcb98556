"""Weight files, read without running their code and written atomically.

Formats: Keras 3 ``.keras`` and ``.weights.h5``, legacy Keras 2 ``.h5`` (whole model or
weights), PyTorch ``.pt``/``.pth`` state_dicts, ``.safetensors`` and ``.onnx`` initializers
(read). A file's format comes from its extension and is checked against its first bytes.

Safety: ``torch.load(weights_only=True)`` always; Keras models load with ``safe_mode=True``
and a Lambda layer (arbitrary code) is refused before Keras sees the file; every output is
written to a temporary file in the target folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .errors import BadInputError

__all__ = ["detect_format", "read_tensors", "write_tensors", "atomic_output", "load_keras_model", "TensorFile", "FORMATS"]

FORMATS = {
    ".keras": "keras",
    ".weights.h5": "keras-weights",
    ".h5": "h5",
    ".hdf5": "h5",
    ".pt": "torch",
    ".pth": "torch",
    ".safetensors": "safetensors",
    ".onnx": "onnx",
}
_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"


def _ext(path: str) -> str:
    low = os.fspath(path).lower()
    return ".weights.h5" if low.endswith(".weights.h5") else os.path.splitext(low)[1]


def detect_format(path, *, must_exist: bool = True) -> str:
    """The format named by ``path``'s extension, checked against the file's first bytes."""
    path = os.fspath(path)
    ext = _ext(path)
    if ext not in FORMATS:
        raise BadInputError(
            f"{path!r}: unknown weight file type {ext or '(none)'!r}; known: {', '.join(FORMATS)} (or zoo:NAME for a reference model)."
        )
    fmt = FORMATS[ext]
    if not must_exist:
        return fmt
    if not os.path.isfile(path):
        raise BadInputError(f"No such file: {path!r}.")
    with open(path, "rb") as fh:
        head = fh.read(16)
    expected = {"keras": _ZIP, "keras-weights": _HDF5, "h5": _HDF5}.get(fmt)
    if fmt == "torch" and not (head.startswith(_ZIP) or head[:1] == b"\x80"):
        expected = _ZIP
    if fmt == "safetensors":
        ok = len(head) >= 9 and head[8:9] == b"{"
        if not ok:
            raise BadInputError(f"{path!r} is not a safetensors file (no JSON header): truncated, or another format renamed?")
    elif expected is not None and not head.startswith(expected):
        what = "an HDF5 file" if head.startswith(_HDF5) else "a zip archive" if head.startswith(_ZIP) else "something else"
        raise BadInputError(f"{path!r} has the extension of a {fmt} file but is {what}: corrupt, or renamed from another format?")
    return fmt


@dataclass
class TensorFile:
    """Named arrays from a file and the layout their axes follow ('keras' or 'torch')."""

    path: str
    format: str
    layout: str
    tensors: Mapping[str, np.ndarray]
    model: object = None  # the Keras model, when the file held one


# ---------------------------------------------------------------- Keras files


def _config_of(path: str, fmt: str) -> dict | None:
    """The model config stored in a .keras or legacy .h5 file, read as plain JSON."""
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                return None
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise BadInputError(f"Cannot read the model config in {path!r}: {exc}. The file is truncated or corrupt.") from exc


def _classes(config) -> Iterator[str]:
    if isinstance(config, dict):
        if "class_name" in config:
            yield config["class_name"]
        for value in config.values():
            yield from _classes(value)
    elif isinstance(config, list):
        for value in config:
            yield from _classes(value)


def load_keras_model(path):
    """A Keras model from .keras / legacy .h5, in safe mode; a Lambda layer is refused first."""
    from .frameworks.keras_side import keras

    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt not in ("keras", "h5"):
        raise BadInputError(f"{path!r} is a {fmt} file, not a Keras model (.keras or .h5).")
    config = _config_of(path, fmt)
    if config is None:
        raise BadInputError(f"{path!r} holds weights only, no model; give the architecture with --arch.")
    if "Lambda" in set(_classes(config)):
        raise BadInputError(
            f"{path!r} contains a Lambda layer, which stores Python code; xconv does not load code from files. "
            f"Rebuild the model without Lambda layers (or with a registered custom layer) and save it again."
        )
    k = keras()
    try:
        return k.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for corrupt or unsafe files
        raise BadInputError(f"Cannot load Keras model {path!r}: {exc}") from exc


def keras_model_tensors(model) -> dict[str, np.ndarray]:
    from .frameworks import keras_side as ks

    out = {}
    for layer in ks.weighted_layers(model):
        for key, value in ks.layer_weights(layer).items():
            out[f"{layer.name}/{key}"] = value
    return out


def _h5_datasets(path: str) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and obj.ndim >= 0 and obj.dtype.kind == "f":
                    key = name.replace("layers/", "").replace("/vars/", "/").replace("model_weights/", "")
                    out[key.replace(":0", "")] = obj[()]

            f.visititems(visit)
    except OSError as exc:
        raise BadInputError(f"Cannot read {path!r}: {exc}. The file is truncated or corrupt.") from exc
    return out


# ---------------------------------------------------------------- torch, safetensors, onnx


def _read_torch(path: str) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BadInputError(
            f"{path!r} was refused: it holds pickled Python objects that are not tensors (a whole model or code), "
            f"which xconv never unpickles. Save the weights with torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:  # truncated zip, bad magic ...
        raise BadInputError(f"Cannot read {path!r}: {exc}. The file is truncated or corrupt.") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BadInputError(f"{path!r} holds a {type(state).__name__}, not a state_dict of tensors.")
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


class _SafetensorsView(Mapping):
    """A memory-mapped safetensors file: a tensor is read when asked for."""

    def __init__(self, path: str):
        from safetensors import safe_open

        try:
            self._f = safe_open(path, framework="numpy")
            self._keys = list(self._f.keys())
        except Exception as exc:
            raise BadInputError(f"Cannot read {path!r}: {exc}. The file is truncated or corrupt.") from exc

    def __getitem__(self, key):
        return self._f.get_tensor(key)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)


def _read_onnx(path: str) -> dict[str, np.ndarray]:
    from ._optional import require

    onnx = require("onnx", "read .onnx files")
    from onnx import numpy_helper

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise BadInputError(f"Cannot read {path!r}: {exc}. The file is truncated or corrupt.") from exc
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def read_tensors(path) -> TensorFile:
    """Every weight tensor of a file, by name, with the layout its axes follow."""
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt in ("keras", "h5"):
        config = _config_of(path, fmt)
        if config is None:  # legacy weights-only .h5
            return TensorFile(path, fmt, "keras", _h5_datasets(path))
        model = load_keras_model(path)
        return TensorFile(path, fmt, "keras", keras_model_tensors(model), model)
    if fmt == "keras-weights":
        return TensorFile(path, fmt, "keras", _h5_datasets(path))
    if fmt == "torch":
        return TensorFile(path, fmt, "torch", _read_torch(path))
    if fmt == "safetensors":
        view = _SafetensorsView(path)
        meta = {}
        try:
            from safetensors import safe_open

            with safe_open(path, framework="numpy") as f:
                meta = f.metadata() or {}
        except Exception:  # noqa: BLE001 - metadata is optional
            pass
        return TensorFile(path, fmt, meta.get("layout", "torch"), view)
    return TensorFile(path, fmt, "torch", _read_onnx(path))


# ---------------------------------------------------------------- writing


def atomic_output(path, write: Callable[[str], None], *, force: bool = False) -> str:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    An existing ``path`` is kept unless ``force``; a failure leaves nothing behind.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise BadInputError(f"{path!r} exists; pass --force (force=True) to overwrite it.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInputError(f"Cannot write {path!r}: folder {folder!r} does not exist.")
    try:
        fd, tmp = tempfile.mkstemp(prefix="xconv-tmp-", suffix=_ext(path), dir=folder)
    except OSError as exc:
        raise BadInputError(f"Cannot write {path!r}: {exc.strerror} (is the folder writable?).") from exc
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


_ST_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64", "int32": "I32", "uint8": "U8", "bool": "BOOL"}


def write_safetensors_stream(path: str, items: Iterator[tuple[str, np.ndarray]], shapes: Mapping[str, tuple[tuple, str]], metadata: dict | None = None) -> None:
    """Write a safetensors file one tensor at a time (the library's writer wants them all in memory).

    ``shapes`` gives every tensor's (shape, dtype) up front, so the header is written first.
    """
    header, offset = {}, 0
    for name, (shape, dtype) in shapes.items():
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": _ST_DTYPES[str(np.dtype(dtype))], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align the data to 8 bytes
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for name, array in items:
            want = header[name]
            if list(array.shape) != want["shape"]:
                raise BadInputError(f"tensor {name!r} has shape {array.shape}, announced {want['shape']}")
            fh.write(np.ascontiguousarray(array).tobytes(order="C") if not array.flags.c_contiguous else memoryview(array).cast("B"))


_NP_DTYPES = {v: k for k, v in _ST_DTYPES.items()}


def safetensors_header(path: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts (nothing else is read)."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(fh.read(size))
    except (struct.error, ValueError, OSError) as exc:
        raise BadInputError(f"Cannot read {path!r}: {exc}. The file is truncated or corrupt.") from exc
    return header, 8 + size


def iter_safetensors(path: str) -> Iterator[tuple[str, np.ndarray]]:
    """Each tensor read into its own buffer and released after use: memory stays at one tensor.

    (A memory map would count every page of the file as resident while it is mapped.)
    """
    header, start = safetensors_header(path)
    end_of_file = os.path.getsize(path)
    with open(path, "rb") as fh:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            lo, hi = info["data_offsets"]
            if start + hi > end_of_file:
                raise BadInputError(f"Cannot read {path!r}: tensor {name!r} runs past the end of the file (truncated).")
            dtype = np.dtype(_NP_DTYPES[info["dtype"]])
            fh.seek(start + lo)
            array = np.fromfile(fh, dtype=dtype, count=(hi - lo) // dtype.itemsize)
            yield name, array.reshape(info["shape"])


def write_tensors(path, tensors: Mapping[str, np.ndarray], *, layout: str = "torch", force: bool = False) -> str:
    """Write named arrays as ``.pt`` (a state_dict) or ``.safetensors``."""
    path = os.fspath(path)
    fmt = detect_format(path, must_exist=False)
    if fmt == "torch":
        import torch

        return atomic_output(path, lambda tmp: torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}, tmp), force=force)
    if fmt == "safetensors":
        shapes = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
        return atomic_output(path, lambda tmp: write_safetensors_stream(tmp, iter(tensors.items()), shapes, {"layout": layout}), force=force)
    raise BadInputError(f"Cannot write {path!r} as plain tensors: use .pt or .safetensors (Keras files need an architecture).")
