"""safetensors -> safetensors, every tensor moved to a layout on the way, at copy speed.

The input is memory-mapped (no read copy; each part is released from memory once used), the
output is written with ``os.pwrite`` at each piece's place, and two threads share every
tensor: the permutation is memory-bound, so both cores work on it while the kernel copies
finished pieces into the page cache.

A move is ``(k, a, b) -> (b, a, k)`` (a conv kernel either way; a matrix is ``a = 1``), done
in two passes through one reused scratch buffer the size of the largest tensor:

1. ``(k, a, b) -> (k, b, a)``: ``k`` independent transposes, each reading one contiguous run
   of the input, whose pages are dropped from memory as soon as it is done;
2. ``(k, b * a) -> (b * a, k)``: a 2D transpose, a slab of output rows at a time, each slab
   written as soon as it is made.

Memory: the scratch (one largest tensor), a few slabs and the parts of the input in use.
"""

from __future__ import annotations

import math
import mmap
import os
import threading
from collections.abc import Callable, Iterable

import numpy as np

from .. import layouts
from . import by_rank
from .dtypes import st_dtype
from .safetensors import header_bytes, safetensors_header, tensor_names

SLAB = 2**20  # bytes of output each thread makes and writes at a time (stays in its core's cache)
_BLOCK = 2**20  # bytes of input per pass-one task when its runs are short
_PAGE = mmap.PAGESIZE
_RAW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _raw(dtype) -> np.dtype:
    """An integer (or opaque) dtype of the same size: bits move exactly, whatever the dtype."""
    item = np.dtype(dtype).itemsize
    return np.dtype(_RAW[item]) if item in _RAW else np.dtype((np.void, item))


def _kab(shape: tuple[int, ...], to: str) -> tuple[int, int, int] | None:
    """(k, a, b) of the move ``(k, a, b) -> (b, a, k)``, or None for a plain copy."""
    kind = by_rank.kind_by_rank(shape)
    if kind == "conv":
        if to == "torch":
            return math.prod(shape[:-2]), shape[-2], shape[-1]
        return shape[0], shape[1], math.prod(shape[2:])
    if kind == "dense":
        return shape[0], 1, shape[1]
    return None


class _Pool:
    """Two threads (this one and a helper) running tasks from a shared list, each with its own slab."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._exec = ThreadPoolExecutor(1, thread_name_prefix="xconv-stream")
        self._slabs = [np.empty(SLAB, np.uint8), np.empty(SLAB, np.uint8)]

    def run(self, tasks: Iterable[Callable[[np.ndarray], None]]) -> None:
        it = iter(tasks)
        lock = threading.Lock()
        failed: list[BaseException] = []

        def drain(slab):
            while not failed:
                with lock:
                    task = next(it, None)
                if task is None:
                    return
                try:
                    task(slab)
                except BaseException as exc:  # noqa: BLE001 - raised below, in the calling thread
                    failed.append(exc)

        other = self._exec.submit(drain, self._slabs[1])
        drain(self._slabs[0])
        other.result()
        if failed:
            raise failed[0]

    def close(self) -> None:
        self._exec.shutdown(wait=True)


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        done = os.pwrite(fd, view, offset)
        offset, view = offset + done, view[done:]


class _Input:
    """The mapped input file: typed views of its parts, and their pages released when done."""

    def __init__(self, path: str):
        self._fh = open(path, "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._buf = np.frombuffer(self._mm, np.uint8)

    def bytes(self, lo: int, hi: int) -> np.ndarray:
        return self._buf[lo:hi]

    def release(self, lo: int, hi: int) -> None:
        start = lo - lo % _PAGE
        if hi > start and hasattr(self._mm, "madvise"):
            self._mm.madvise(mmap.MADV_DONTNEED, start, hi - start)  # clean file pages: refetched if read again

    def close(self) -> None:
        self._buf = None
        try:
            self._mm.close()
        except BufferError:  # a view still alive (in an exception's traceback): the map goes with it
            pass
        finally:
            self._fh.close()


def stream_layout(src: str, dst: str, to: str | None, on_tensor: Callable[[str, tuple], None] | None = None) -> None:
    """Write safetensors ``src`` into the (created, empty) file ``dst``, every tensor moved to ``to``.

    ``to=None`` copies the tensors as they are. The output's metadata records the layout.
    ``on_tensor(name, shape)`` is called for each tensor once it is written.
    """
    header, start = safetensors_header(src)
    names = tensor_names(header)
    shapes = {n: (by_rank.moved_shape(header[n]["shape"], to) if to else tuple(header[n]["shape"]), st_dtype(header[n]["dtype"])) for n in names}
    meta = dict(header.get("__metadata__", {}))
    if to:
        meta["layout"] = to
    blob, out_header = header_bytes(shapes, meta)
    largest = max((header[n]["data_offsets"][1] - header[n]["data_offsets"][0] for n in names), default=0)
    scratch = None
    fd = os.open(dst, os.O_WRONLY | os.O_TRUNC)
    src_in = _Input(src) if os.path.getsize(src) else None
    pool = _Pool()
    try:
        _pwrite_all(fd, blob, 0)
        for name in names:
            info = header[name]
            lo, hi = (start + o for o in info["data_offsets"])
            base = len(blob) + out_header[name]["data_offsets"][0]
            shape = tuple(info["shape"])
            kab = _kab(shape, to) if to else None
            raw = _raw(st_dtype(info["dtype"]))
            if hi > lo:
                if kab is None or 1 in kab:
                    _move_simple(pool, src_in, fd, lo, hi, base, raw, kab)
                else:
                    if scratch is None:
                        scratch = np.empty(largest, np.uint8)
                    _move_general(pool, src_in, fd, lo, hi, base, raw, kab, scratch)
                src_in.release(lo, hi)
            if on_tensor is not None:
                on_tensor(name, shape)
    finally:
        pool.close()
        if src_in is not None:
            src_in.close()
        os.close(fd)


def _rows_per_slab(row_bytes: int) -> int:
    return max(1, SLAB // max(1, row_bytes))


def _write_transposed(pool: _Pool, fd: int, m: np.ndarray, base: int, raw: np.dtype) -> None:
    """Write ``m.T`` (``m`` is ``(rows, cols)``) at ``base``, a slab of output rows per task."""
    rows, cols = m.shape
    item = raw.itemsize
    step = _rows_per_slab(rows * item)

    def task(slab, o):
        c = min(step, cols - o)
        if c * rows * item > SLAB:  # one output row larger than a slab
            piece = np.ascontiguousarray(m[:, o : o + c].T)
        else:
            piece = slab[: c * rows * item].view(raw).reshape(c, rows)
            layouts._transpose_into(piece, m[:, o : o + c], parallel=False)
        _pwrite_all(fd, piece, base + o * rows * item)

    pool.run(lambda slab, o=o: task(slab, o) for o in range(0, cols, step))


def _move_simple(pool: _Pool, src: _Input, fd: int, lo: int, hi: int, base: int, raw: np.dtype, kab) -> None:
    """A copy, or a move that is one 2D transpose (one of k, a, b is 1)."""
    data = src.bytes(lo, hi)
    if kab is None:  # copied as it is, in slabs shared by the two threads
        tasks = (lambda slab, o=o: _pwrite_all(fd, data[o : o + SLAB], base + o) for o in range(0, hi - lo, SLAB))
        pool.run(tasks)
        return
    k, a, b = kab
    x = data.view(raw)
    # (k, a, b) -> (b, a, k) with one axis of length 1 is out = m.T
    m = x.reshape(k * a, b) if k == 1 or a == 1 else x.reshape(k, a)
    _write_transposed(pool, fd, m, base, raw)


def _move_general(pool: _Pool, src: _Input, fd: int, lo: int, hi: int, base: int, raw: np.dtype, kab, scratch: np.ndarray) -> None:
    k, a, b = kab
    item = raw.itemsize
    x = src.bytes(lo, hi).view(raw).reshape(k, a, b)
    scr = scratch[: hi - lo].view(raw).reshape(k, b, a)
    one = a * b * item
    # pass one: (k, a, b) -> (k, b, a), each task a few whole input runs, released when done
    if one >= 2**16:  # long runs: each split in two by output rows, so both threads have equal shares
        halves = ((0, b // 2), (b // 2, b)) if b >= 256 else ((0, b),)
        done = [0] * k
        lock = threading.Lock()

        def first(slab, j, b0, b1):
            layouts._transpose_into(scr[j, b0:b1], x[j][:, b0:b1], parallel=False)
            with lock:
                done[j] += 1
                last = done[j] == len(halves)
            if last:  # this run of the input is no longer needed
                src.release(lo + j * one, lo + (j + 1) * one)

        pool.run(lambda slab, j=j, h=h: first(slab, j, *h) for j in range(k) for h in halves)
    else:  # short runs: a few whole runs per task
        group = max(1, _BLOCK // one)

        def first_group(slab, k0):
            k1 = min(k, k0 + group)
            np.copyto(scr[k0:k1], x[k0:k1].transpose(0, 2, 1))
            src.release(lo + k0 * one, lo + k1 * one)

        pool.run(lambda slab, k0=k0: first_group(slab, k0) for k0 in range(0, k, group))
    # pass two: (k, b * a) -> (b * a, k), a slab of output rows at a time
    _write_transposed(pool, fd, scr.reshape(k, b * a), base, raw)
