"""Keras files: ``.keras`` archives, ``.weights.h5`` and legacy ``.h5``, read without running code.

Before anything is inflated or read, sizes are checked: ``config.json`` against a cap (a
decompression bomb is refused by its declared size, and reading stops at the cap whatever it
declares), every HDF5 dataset's claimed size against the file (uncompressed) or a cap.
Keras models load with ``safe_mode=True`` after a Lambda layer (code) has been refused, and a
Keras loading error becomes one readable line (no config dumps); a custom class Keras cannot
find is named, with its module and the fix (register it, import it first).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator

import numpy as np

from ..errors import BadInputError
from . import _json
from .formats import detect_format

MAX_CONFIG = 64 * 2**20  # config.json of a real model is kilobytes to a few megabytes
MAX_INFLATION = 1000  # a compressed HDF5 dataset may claim at most this times the file's size
MAX_DATASET = 64 * 2**30


def _short(exc: BaseException, limit: int = 240) -> str:
    """The first line of an exception, cut short: Keras puts whole configs in its messages."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_member(z: zipfile.ZipFile, name: str, path: str) -> bytes:
    info = z.getinfo(name)
    if info.file_size > MAX_CONFIG:
        raise BadInputError(
            f"{path!r}: {name} declares {info.file_size} bytes once inflated (the limit is {MAX_CONFIG}); "
            f"a decompression bomb or not a Keras file."
        )
    with z.open(info) as fh:
        data = fh.read(MAX_CONFIG + 1)
    if len(data) > MAX_CONFIG:
        raise BadInputError(f"{path!r}: {name} inflates past {MAX_CONFIG} bytes; a decompression bomb or not a Keras file.")
    return data


def config_of(path: str, fmt: str) -> dict | None:
    """The model config stored in a .keras or legacy .h5 file, read as plain JSON."""
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as z:
                raw = _read_member(z, "config.json", path)
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                if raw is None:
                    return None
                if not isinstance(raw, (bytes, str)):
                    raise ValueError("model_config is not text")
                if len(raw) > MAX_CONFIG:
                    raise BadInputError(f"{path!r}: its model_config is {len(raw)} bytes (the limit is {MAX_CONFIG}).")
        config = _json.loads(raw, "config.json" if fmt == "keras" else "model_config")
    except BadInputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise BadInputError(f"Cannot read the model config in {path!r}: {_short(exc)}. The file is truncated or corrupt.") from exc
    if not isinstance(config, dict):
        raise BadInputError(f"Cannot read the model config in {path!r}: it is a JSON {type(config).__name__}, not an object.")
    return config


def _classes(config) -> Iterator[str]:
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str):
                yield node["class_name"]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def load_keras_model(path):
    """A Keras model from .keras / legacy .h5, in safe mode; a Lambda layer is refused first."""
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt not in ("keras", "h5"):
        raise BadInputError(f"{path!r} is a {fmt} file, not a Keras model (.keras or .h5).")
    config = config_of(path, fmt)
    if config is None:
        raise BadInputError(f"{path!r} holds weights only, no model; give the architecture with --arch.")
    if "Lambda" in set(_classes(config)):
        raise BadInputError(
            f"{path!r} contains a Lambda layer, which stores Python code; xconv does not load code from files. "
            f"Rebuild the model without Lambda layers (or with a registered custom layer) and save it again."
        )
    if fmt == "h5":
        check_h5(path)
    else:
        _check_archive(path)
    from ..frameworks.keras_side import keras

    k = keras()
    try:
        return k.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for corrupt or unsafe files
        missing = _unfound_classes(config, exc)
        if missing:
            raise _unfound_error(path, missing) from exc
        raise BadInputError(f"Cannot load Keras model {path!r}: {type(exc).__name__}: {_short(exc)}") from exc


def _objects(config) -> Iterator[dict]:
    """Every serialized Keras object in ``config``: a dict with ``class_name`` and ``module``."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and "module" in node:
                yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _is_keras_module(module) -> bool:
    return isinstance(module, str) and module.split(".", 1)[0] in ("keras", "keras_hub", "keras_cv", "keras_nlp", "builtins")


def _unfound_classes(config, exc: BaseException) -> list[tuple[str, str | None]]:
    """The custom classes of ``config`` that Keras could not find, as (class name, module).

    Read from the config: an object from outside Keras whose registered name Keras does not
    know (Keras never imports a user's module itself). Only asked once loading failed, and only
    if Keras's own message says it could not locate something, so nothing loadable is refused.
    """
    import re

    told: list[str] = []
    seen, hops = exc, 0
    while seen is not None and hops < 20:
        told += re.findall(r"Could not locate (?:class|function) '([^']+)'", str(seen))
        seen, hops = seen.__cause__ or seen.__context__, hops + 1
    if not told:
        return []
    from ..frameworks.keras_side import keras

    get = keras().saving.get_registered_object
    found: list[tuple[str, str | None]] = []
    for obj in _objects(config):
        name, module = obj["class_name"], obj.get("module")
        if _is_keras_module(module) or name.startswith("__"):
            continue
        key = obj.get("registered_name") or name
        try:
            known = get(key) is not None if isinstance(key, str) else False
        except Exception:  # noqa: BLE001 - a name Keras cannot even look up is not known to it
            known = False
        if not known and (name, module) not in found:
            found.append((name, module if isinstance(module, str) else None))
    names = {n for n, _ in found}
    found += [(n, None) for n in dict.fromkeys(told) if n not in names and n.split(">")[-1] not in names]
    return found


def _unfound_error(path: str, missing: list[tuple[str, str | None]]) -> BadInputError:
    shown = missing[:5]
    names = ", ".join(repr(n) + (f" (module {m!r})" if m else "") for n, m in shown)
    if len(missing) > len(shown):
        names += f" and {len(missing) - len(shown)} more"
    modules = list(dict.fromkeys(m for _, m in missing if m))
    what, each = ("class", "it") if len(missing) == 1 else ("classes", "each")
    head = f"Cannot load Keras model {path!r}: Keras cannot find its custom {what} {names}, not registered or not imported."
    imports = ", ".join(modules) or "the module that defines it"
    return BadInputError(
        f"{head} Decorate {each} with @keras.saving.register_keras_serializable() and import {imports} before loading the file.",
        cli=(
            f"{head} Decorate {each} with @keras.saving.register_keras_serializable() and pass "
            f"{' '.join(f'--import {m}' for m in modules) or '--import MODULE'} (the module that defines it, or its .py file)."
        ),
    )


def _check_archive(path: str) -> None:
    """Every member of a .keras archive within the caps before Keras inflates it."""
    try:
        with zipfile.ZipFile(path) as z:
            size = os.path.getsize(path)
            for info in z.infolist():
                if info.file_size > max(MAX_INFLATION * size, MAX_CONFIG) or info.file_size > MAX_DATASET:
                    raise BadInputError(f"{path!r}: {info.filename} declares {info.file_size} bytes once inflated; a decompression bomb?")
    except zipfile.BadZipFile as exc:
        raise BadInputError(f"Cannot read {path!r}: {_short(exc)}. The file is truncated or corrupt.") from exc


def check_h5(path: str) -> None:
    """Every dataset's claimed size within the file (uncompressed) or the caps (compressed)."""
    import h5py

    size = os.path.getsize(path)
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    _check_dataset(path, name, obj, size)

            f.visititems(visit)
    except BadInputError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"Cannot read {path!r}: {_short(exc)}. The file is truncated or corrupt.") from exc


def _check_dataset(path: str, name: str, obj, file_size: int) -> None:
    claimed = int(np.prod(obj.shape, dtype=object)) * obj.dtype.itemsize if obj.shape is not None else 0
    compressed = obj.chunks is not None and bool(obj.compression or obj._filters)
    limit = min(MAX_DATASET, max(MAX_INFLATION * file_size, 2**20)) if compressed else file_size
    if claimed > limit:
        raise BadInputError(
            f"{path!r}: dataset {name!r} claims {claimed} bytes, more than the file can hold "
            f"({file_size} bytes{', compressed' if compressed else ''}); truncated, corrupt or a decompression bomb."
        )


def h5_datasets(path: str) -> dict[str, np.ndarray]:
    """Every weight array of a .weights.h5 / legacy .h5 file, by ``layer/weight`` name."""
    import h5py

    from .dtypes import TABLE

    out: dict[str, np.ndarray] = {}
    size = os.path.getsize(path)
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "fc" and obj.dtype.name in TABLE:
                    _check_dataset(path, name, obj, size)
                    key = name.replace("layers/", "").replace("/vars/", "/").replace("model_weights/", "")
                    out[key.replace(":0", "")] = obj[()]

            f.visititems(visit)
    except BadInputError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"Cannot read {path!r}: {_short(exc)}. The file is truncated or corrupt.") from exc
    return out


def keras_model_tensors(model) -> dict[str, np.ndarray]:
    """Every weight of a Keras ``model`` as NumPy, keyed ``layer name/weight key`` (``conv1/kernel``)."""
    from ..frameworks import keras_side as ks

    out = {}
    for layer in ks.weighted_layers(model):
        for key, value in ks.layer_weights(layer).items():
            out[f"{layer.name}/{key}"] = value
    return out


def _saving_lib():
    try:
        from keras.src.saving import saving_lib

        return saving_lib
    except ImportError:  # pragma: no cover - another Keras layout
        return None


def save_keras(model, tmp: str, fmt: str) -> None:
    """Write ``model`` to the temporary file ``tmp`` as .keras or .weights.h5.

    The HDF5 part is built in memory and written by Python, so a failing disk write is a Python
    error (HDF5 writing straight to a full disk crashes the interpreter in h5py's clean-up).
    """
    lib = _saving_lib()
    if fmt == "keras-weights":
        buf = io.BytesIO()
        store = lib.H5IOStore(buf, mode="w")
        lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
        store.close()
        with open(tmp, "wb") as fh:
            fh.write(buf.getbuffer())
        return
    with open(tmp, "wb") as fh:
        lib.save_model(model, fh)
