"""PyTorch ``.pt`` / ``.pth`` state_dicts: read with ``weights_only=True`` (never a pickle of code)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..errors import BadInputError
from .dtypes import to_numpy, to_torch


def read_torch(path: str, *, mmap: bool = False) -> dict[str, np.ndarray]:
    """A state_dict's tensors as NumPy arrays; with ``mmap`` they are views of the mapped file
    (a zip written by torch.save; an older file is read whole)."""
    import pickle

    import torch

    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:
            if not mmap or "mmap" not in str(exc):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # the legacy format cannot be mapped
    except pickle.UnpicklingError as exc:
        raise BadInputError(
            f"{path!r} was refused: it holds pickled Python objects that are not tensors (a whole model or code), "
            f"which xconv never unpickles. Save the weights with torch.save(model.state_dict(), path)."
        ) from exc
    except Exception as exc:  # truncated zip, bad magic ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BadInputError(f"Cannot read {path!r}: {first}. The file is truncated or corrupt.") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise BadInputError(f"{path!r} holds a {type(state).__name__}, not a state_dict of named tensors.")
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

    tensors = read_torch(src, mmap=True)
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}
    mappable = sys.platform.startswith("linux")

    def items():
        for name, array in tensors.items():
            yield name, array
            if mappable:
                _drop_pages(array)

    write_safetensors_stream(tmp, items(), shapes, {"layout": "torch"})
    return shapes
