"""PyTorch ``.pt`` / ``.pth`` / ``.ckpt`` / ``.bin`` state_dicts and training checkpoints: read with
``weights_only=True`` (never a pickle of code); a checkpoint dict is unwrapped (:func:`unwrap_state`),
and ``FILE:KEY`` takes one of its entries."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping

import numpy as np

from ..errors import BadInputError
from .dtypes import to_numpy, to_torch


# entries of a checkpoint dict that hold the model's weights, in the order one is taken when a
# file has several (Lightning and most training loops: state_dict; timm/DeiT/MAE: model; DeepSpeed: module)
_PREFERRED = ("state_dict", "model", "module", "model_state_dict", "model_state", "net", "network", "weights", "params")

_noted: set[tuple[str, str | None]] = set()


NOTES = {"on": True}  # the CLI's --quiet turns the notes off (no_notes)


@contextlib.contextmanager
def no_notes():
    """No one-line notes on what a checkpoint dict was unwrapped to, for the body of the ``with``."""
    saved, NOTES["on"] = NOTES["on"], False
    try:
        yield
    finally:
        NOTES["on"] = saved


def _note(text: str) -> None:
    """A one-line note on stderr (what a checkpoint was unwrapped to), once per file and key."""
    import sys

    if NOTES["on"]:
        print(f"note: {text}", file=sys.stderr)


def _is_state_dict(value) -> bool:
    import torch

    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _keys_text(keys, limit: int = 12) -> str:
    keys = [repr(k) for k in keys]
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def _data_globals() -> list:
    """Classes that training scripts pickle beside the weights and that hold data only, which
    ``weights_only`` loading may build: timm's and many research repos' ``args``
    (``argparse.Namespace``), paths in configs, NumPy scalars and arrays (a best metric, a
    class-index table). Building them runs no code of the file's choosing; everything else
    (a whole ``nn.Module``, a function, ``functools.partial``) is still refused."""
    import argparse
    import pathlib

    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1
        from numpy.core import multiarray
    dtypes = {type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSUVMm"}
    return [
        argparse.Namespace, pathlib.PosixPath, pathlib.PurePosixPath, pathlib.WindowsPath, pathlib.PureWindowsPath,
        multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, *sorted(dtypes, key=str),
    ]  # fmt: skip


def _load(path: str, mmap: bool, shown: str | None = None):
    """``torch.load`` of ``path``, safely; errors name ``shown`` (the user's file) or ``path``."""
    import pickle

    import torch

    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    scope = allow(_data_globals()) if allow is not None else contextlib.nullcontext()
    try:
        with scope:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as exc:
                if not mmap or "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # the legacy format cannot be mapped
    except pickle.UnpicklingError as exc:
        path = shown or path
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise BadInputError(
            f"{path!r} was refused: it holds pickled Python objects that are not tensors{what}: a whole model or code, "
            f"which xconv never unpickles. Save the weights with torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:  # truncated zip, bad magic ...
        path = shown or path
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(first) > 200:  # cut at a sentence's end, never mid-phrase
            cut = first[:200].rfind(". ")
            first = first[:cut] if cut > 40 else f"{type(exc).__name__} (torch's message is {len(first)} characters long)"
        raise BadInputError(f"Cannot read {path!r}: {first.rstrip('.')}. The file is not a complete torch.save file: truncated or corrupt.") from exc


def unwrap_state(state, path: str, key: str | None = None) -> dict:
    """The state_dict in what ``torch.load`` returned: the dict itself when every value is a tensor,
    else the entry ``key`` or the one entry that is a state_dict (``state_dict``, ``model`` ... when
    there are several), with a note on stderr of what was taken and what was left out."""
    import torch

    given = f"{path}:{key}" if key else path
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            have = _keys_text(state) if isinstance(state, dict) else f"a {type(state).__name__}, not a dict"
            raise BadInputError(f"{given!r}: {path!r} has no entry {key!r}; its entries: {have}.")
        if not (_is_state_dict(state[key]) or state[key] == {}):
            raise BadInputError(f"{given!r}: the entry {key!r} is not a state_dict of named tensors (it holds {type(state[key]).__name__}).")
        return state[key]
    if not isinstance(state, dict):
        raise BadInputError(
            f"{path!r} holds a {type(state).__name__}, not a state_dict of named tensors: save one with torch.save(model.state_dict(), path)."
        )
    if all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return state  # a plain state_dict (also an empty one)
    found = [k for k, v in state.items() if isinstance(k, str) and _is_state_dict(v)]
    if not found:
        raise BadInputError(
            f"{path!r} holds a dict with entries {_keys_text(state)}, none of them a state_dict of named tensors: "
            f"save the weights with torch.save(model.state_dict(), path), or name the entry as {path}:KEY."
        )
    taken = next((k for k in _PREFERRED if k in found), None)
    if taken is None:  # an entry under a name no training loop uses is not taken on a guess
        many = "several state_dicts" if len(found) > 1 else "a state_dict"
        raise BadInputError(
            f"{path!r} is not a state_dict: it holds {many} under {_keys_text(found)} (entries: {_keys_text(state)}); "
            f"name the one to read as {path}:{found[0]} (FILE:KEY)."
        )
    others = [k for k in found if k != taken]
    dropped = [k for k in state if k != taken and k not in others]
    if NOTES["on"] and (os.path.realpath(path), None) not in _noted:
        _noted.add((os.path.realpath(path), None))
        text = f"{path!r} is a checkpoint: took its {taken!r} ({len(state[taken])} tensors)"
        if others:
            text += f"; other state_dicts in it: {_keys_text(others)} (take one with {path}:{others[0]})"
        if dropped:
            text += f"; left out: {_keys_text(dropped)}"
        _note(text + ".")
    return state[taken]


def read_torch(path: str, *, mmap: bool = False) -> dict[str, np.ndarray]:
    """A state_dict's tensors as NumPy arrays; with ``mmap`` they are views of the mapped file
    (a zip written by torch.save; an older file is read whole). ``path`` may be ``FILE:KEY``
    (one entry of a checkpoint dict); a checkpoint is unwrapped by :func:`unwrap_state`."""
    from .formats import split_key

    path = os.fspath(path)
    file, key = split_key(path)
    state = unwrap_state(_load(file, mmap), file, key)
    return {k: to_numpy(v, f"{path!r}: tensor {k!r}") for k, v in state.items()}


def write_torch(tmp: str, tensors: Mapping[str, np.ndarray]) -> None:
    """A state_dict of ``tensors`` (dtype, shape and bits kept; 0-dim stays 0-dim)."""
    import torch

    state = {}
    for name in tensors:
        state[name] = to_torch(tensors[name], f"tensor {name!r}")
    with open(tmp, "wb") as fh:  # through Python's file: a failed write keeps its OSError
        torch.save(state, fh)


class _ReleasingWriter:
    """A file for ``torch.save`` that drops the mapped input's pages from memory as data goes out.

    torch.save writes each storage in one call, straight from the tensor's memory (here the
    mapped safetensors file), so after every few MiB written the whole mapping is released:
    pages already saved leave memory, and a page is only mapped while it is being written.
    """

    _EVERY = 16 * 2**20

    def __init__(self, fh, release):
        self._fh, self._release, self._since = fh, release, 0

    def write(self, data) -> int:
        n = self._fh.write(data)
        self._since += len(memoryview(data).cast("B"))
        if self._since >= self._EVERY:
            self._release()
            self._since = 0
        return n

    def flush(self):
        self._fh.flush()


def write_torch_from_safetensors(tmp: str, src: str) -> None:
    """``src`` (.safetensors) as a state_dict in ``tmp``, streamed: the tensors are views of the
    mapped file and leave memory once written, so memory stays near the largest tensor."""
    import mmap
    import warnings

    import torch

    from .safetensors import safetensors_header, tensor_names
    from .dtypes import st_dtype

    header, start = safetensors_header(src)
    with open(src, "rb") as fin:
        mm = mmap.mmap(fin.fileno(), 0, access=mmap.ACCESS_COPY)  # private: writable views, never written
    try:
        buf = np.frombuffer(mm, np.uint8)
        state = {}
        for name in tensor_names(header):
            info = header[name]
            dtype, (lo, hi) = st_dtype(info["dtype"]), info["data_offsets"]
            if hi == lo:
                array = np.empty(info["shape"], dtype)
            else:
                array = buf[start + lo : start + hi].view(dtype).reshape(info["shape"])
            state[name] = to_torch(array, f"tensor {name!r}")

        def release():
            mm.madvise(mmap.MADV_DONTNEED, 0, len(mm))

        with open(tmp, "wb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            torch.save(state, _ReleasingWriter(fh, release))
        del state, array, buf
    finally:
        try:
            mm.close()
        except BufferError:  # a view still alive (an exception's traceback): the map goes with it
            pass


def _drop_pages(array: np.ndarray) -> None:
    """Release the (clean, file-backed) pages under ``array`` from memory; they are read again if touched."""
    import ctypes
    import mmap as _mmap

    if array.nbytes < _mmap.PAGESIZE:
        return
    start = array.__array_interface__["data"][0]
    lo = start - start % _mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(start + array.nbytes - lo), 4)  # MADV_DONTNEED


def write_safetensors_from_torch(tmp: str, src: str) -> dict:
    """``src`` (.pt) as safetensors in ``tmp``, streamed where the file can be mapped: each tensor is a
    view of the mapped file, written, then released, so memory stays near the largest tensor."""
    import sys

    from .safetensors import write_safetensors_stream

    from .formats import split_key
    from .output import side_file

    file, key = split_key(src)
    # the file is mapped from a private copy made by the kernel beside the output: a source cut
    # or rewritten while it is read is then an error (checked after the copy), never a SIGBUS
    # (or EFAULT) on mapped pages that no longer exist
    with side_file(tmp, "pt") as middle:
        _private_copy(file, middle)
        state = unwrap_state(_load(middle, True, file), file, key)
        tensors = {k: to_numpy(v, f"{src!r}: tensor {k!r}") for k, v in state.items()}
        del state
        shapes = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
        mappable = sys.platform.startswith("linux")

        def items():
            for name, array in tensors.items():
                yield name, array
                if mappable:
                    _drop_pages(array)

        write_safetensors_stream(tmp, items(), shapes, {"layout": "torch"})
        del tensors
    return shapes


def _private_copy(src: str, dst: str) -> None:
    """``src`` copied to ``dst`` by the kernel; an ``src`` truncated, grown or replaced meanwhile is refused."""
    import shutil

    from .stream import file_stamp

    try:
        before = file_stamp(os.stat(src))
        with open(dst, "xb"):
            pass
        shutil.copyfile(src, dst)  # sendfile / copy_file_range where the system has them
    except OSError as exc:
        if not os.path.exists(src):
            raise BadInputError(f"Cannot read {src!r}: {exc.strerror or exc}.") from exc
        raise
    try:
        after = file_stamp(os.stat(src))
    except OSError:
        after = None
    if after != before or os.path.getsize(dst) != before[2]:
        raise BadInputError(
            f"{src!r} changed while it was read (truncated, rewritten or replaced); nothing was written: "
            f"convert it again once nothing else writes it."
        )
