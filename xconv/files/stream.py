"""safetensors -> safetensors, every tensor moved to a layout on the way, at copy speed.

The input is read with ``os.preadv`` into small reused buffers (never mapped: a file that
another process truncates or replaces mid-run is an error naming it, not a SIGBUS), the
output is written with ``os.pwrite`` at each piece's place, and two threads share every
tensor: the permutation is memory-bound, so both cores work on it while the kernel copies
finished pieces into the page cache. A tensor copied as it is never enters user space
(``os.copy_file_range``, where the kernel allows it).

A move is ``(k, a, b) -> (b, a, k)`` (a conv kernel either way; a matrix is ``a = 1``), done
in two passes through one reused scratch buffer the size of the largest tensor:

1. ``(k, a, b) -> (k, b, a)``: ``k`` independent transposes, each task reading about a slab
   (1 MiB) of whole input rows and transposing it into place, in bands of 512 bytes of rows;
2. ``(k, b * a) -> (b * a, k)``: a 2D transpose, a slab of output rows at a time, each slab
   written as soon as it is made.

A move with an axis of length 1 is one 2D transpose: the tensor is read whole into the same
buffer, then written in slabs. Memory: that buffer (one largest tensor) and a slab per thread.

**Padded rows.** A transpose reads its input down columns, so rows a power of two apart (a
1024-wide float32 kernel has 4 KiB rows) fall in the same few cache sets and evict each other:
that alone made pass one three times slower. Rows a multiple of 1 KiB long are therefore read
into the slab (or the whole-tensor buffer) ``PAD`` bytes apart, scattered there by one
``preadv`` of many row buffers, and the scratch's ``k`` runs are kept ``PAD`` bytes apart too. Measured
per shape in docs/benchmarks.md (2026-12-02, session 5).
"""

from __future__ import annotations

import errno
import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterable

import numpy as np

from . import by_rank
from ..errors import BadInputError
from ..layouts import _executor, _transpose_into
from .dtypes import st_dtype
from .safetensors import header_bytes, safetensors_header, tensor_names

SLAB = 2**20  # bytes of output each thread makes and writes at a time (stays in its core's cache)
PAD = 64  # bytes between padded rows: one cache line, so rows a power of two long do not share cache sets
PAD_EVERY = 1024  # rows whose length in bytes is a multiple of this are padded (other lengths spread over
# the cache sets by themselves, and paid more for the scattered read than they gained: measured)
_IOV_MAX = 1024  # buffers per preadv call (Linux's UIO_MAXIOV)
_RAW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@functools.lru_cache(maxsize=64)
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
        self._slabs = [np.empty(SLAB, np.uint8), np.empty(SLAB, np.uint8)]

    def run(self, tasks: Iterable[Callable[[np.ndarray], None]]) -> None:
        it = iter(tasks)
        first, second = next(it, None), next(it, None)
        if second is None:  # one task (a small tensor): handing half of nothing to the helper costs more
            if first is not None:
                first(self._slabs[0])
            return
        it = itertools.chain((first, second), it)
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

        other = _executor().submit(drain, self._slabs[1])  # the package's pool; tasks here never use it (parallel=False)
        drain(self._slabs[0])
        other.result()
        if failed:
            raise failed[0]

    def close(self) -> None:
        self._slabs.clear()


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        done = os.pwrite(fd, view, offset)
        offset, view = offset + done, view[done:]


class _Input:
    """The input file, read with ``os.preadv`` into the caller's buffers (never mapped).

    Reading instead of mapping costs one copy from the page cache, but keeps memory at the
    buffers in use and turns a file that shrinks mid-run into an error naming it, where a
    mapping would end the process with SIGBUS (and leave its temporary output behind).
    """

    def __init__(self, path: str):
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(self._fd)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except BaseException:
            os.close(self._fd)
            raise
        self._size, self._stamp = st.st_size, file_stamp(st)
        self._views: dict[tuple, list] = {}  # (buffer address, grid shape, width) -> row views of it

    def _changed(self, what: str) -> BadInputError:
        try:
            now = os.fstat(self._fd).st_size
        except OSError:
            now = "?"
        return BadInputError(
            f"{self.path!r} {what} while it was read (it had {self._size} bytes, now {now}); "
            f"nothing was written: convert it again once nothing else writes it."
        )

    def read_into(self, buf: np.ndarray, offset: int) -> np.ndarray:
        """Fill ``buf`` (contiguous) with the bytes at ``offset``; the same array back."""
        view = memoryview(buf.reshape(-1).view(np.uint8))
        while len(view):
            done = os.preadv(self._fd, [view], offset)
            if done <= 0:
                raise self._changed("was truncated")
            offset, view = offset + done, view[done:]
        return buf

    def read_rows(self, grid: np.ndarray, width: int, offset: int) -> None:
        """Fill the first ``width`` bytes of each row of ``grid`` (2D uint8, C-contiguous) from the
        input's consecutive bytes at ``offset``: one ``preadv`` scatters up to 1024 rows."""
        rows, stride = grid.shape
        if stride == width or rows == 1:  # (one row: a row longer than a slab, in a buffer of its own)
            self.read_into(grid if stride == width else grid[0, :width], offset)
            return
        views = self._row_views(grid, width)
        i = 0
        while i < rows:
            n = min(rows - i, _IOV_MAX)
            done = os.preadv(self._fd, views[i : i + n], offset)
            if done <= 0:
                raise self._changed("was truncated")
            full, part = divmod(done, width)
            if part:  # a short read inside a row: finish that row, then go on
                self.read_into(grid[i + full, part:width], offset + done)
                full += 1
            i, offset = i + full, offset + full * width

    def _row_views(self, grid: np.ndarray, width: int) -> list:
        """One memoryview per row of ``grid``, kept for the next read into the same buffer: the
        slabs are reused with one geometry per tensor, and making a thousand views per slab
        cost a tenth of the run on 1 KiB rows."""
        key = (grid.__array_interface__["data"][0], grid.shape, width)
        views = self._views.get(key)
        if views is None:
            if len(self._views) >= 16:
                self._views.clear()
            flat = memoryview(grid.reshape(-1))
            stride = grid.shape[1]
            views = self._views[key] = [flat[r * stride : r * stride + width] for r in range(grid.shape[0])]
        return views

    def copy_to(self, fd: int, lo: int, hi: int, out_offset: int, slab: np.ndarray) -> None:
        """Bytes ``lo:hi`` written at ``out_offset`` of ``fd``: in the kernel where it can, else through ``slab``."""
        while lo < hi:
            n = min(hi - lo, slab.nbytes)
            done = 0
            if _COPY_RANGE[0]:
                try:
                    done = os.copy_file_range(self._fd, fd, n, lo, out_offset)
                except OSError as exc:  # not supported between these files: through user space from now on
                    if exc.errno in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or exc.errno == errno.EBADF and _both_open(self._fd, fd):
                        _COPY_RANGE[0] = False
                        continue
                    raise
                if done <= 0:
                    raise self._changed("was truncated")
            else:
                piece = self.read_into(slab[:n], lo)
                _pwrite_all(fd, piece, out_offset)
                done = n
            lo, out_offset = lo + done, out_offset + done

    def check_unchanged(self) -> None:
        """Raise if the file was replaced, changed its size or was written, while it was read."""
        try:
            now = file_stamp(os.stat(self.path))
        except OSError:
            raise self._changed("was removed") from None
        if now[:2] != self._stamp[:2]:
            raise self._changed("was replaced")
        if now[2] != self._stamp[2]:
            raise self._changed("changed size")
        if now != self._stamp:  # rewritten in place at the same size: the output could mix old and new bytes
            raise self._changed("was written")

    def close(self) -> None:
        os.close(self._fd)


def _both_open(*fds: int) -> bool:
    """Whether every descriptor is open: an EBADF from copy_file_range on open files means the kernel
    will not copy between them (an output opened for appending, some FUSE file systems), where on a
    closed one it is a bug to raise, not a reason to copy through user space."""
    try:
        for fd in fds:
            os.fstat(fd)
    except OSError:
        return False
    return True


def file_stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is still the one read: device, inode, size and modification time (ns)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


_COPY_RANGE = [hasattr(os, "copy_file_range")]  # cleared once the kernel refuses it


def stream_layout(src: str, dst: str, to: str | None, on_tensor: Callable[[str, tuple], None] | None = None) -> None:
    """Write safetensors ``src`` into the (created, empty) file ``dst``, every tensor moved to ``to``.

    ``to=None`` copies the tensors as they are. The output's metadata records the layout.
    ``on_tensor(name, shape)`` is called for each tensor once it is written. A ``src`` that
    changes while it is read (truncated, replaced, resized) raises BadInputError naming it.
    """
    header, start = safetensors_header(src)
    names = tensor_names(header)
    shapes = {n: (by_rank.moved_shape(header[n]["shape"], to) if to else tuple(header[n]["shape"]), st_dtype(header[n]["dtype"])) for n in names}
    meta = dict(header.get("__metadata__", {}))
    if to:
        meta["layout"] = to
    blob, out_header = header_bytes(shapes, meta)
    largest = max((scratch_bytes(tuple(header[n]["shape"]), to, _raw(st_dtype(header[n]["dtype"])).itemsize) for n in names), default=0) if to else 0
    big: list[np.ndarray] = []  # one buffer the size of the largest tensor, made when first needed
    # no O_TRUNC: on ext4 a file truncated to 0 and then written is flushed to disk by close()
    # (auto_da_alloc), which cost a third of the run's wall time on 1 GiB; the size is set at the end
    fd = os.open(dst, os.O_WRONLY)
    try:
        src_in = _Input(src)
    except BaseException:
        os.close(fd)
        raise
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
                if kab is None:  # copied as it is, in slabs shared by the two threads
                    pool.run(lambda slab, o=o: src_in.copy_to(fd, lo + o, min(hi, lo + o + SLAB), base + o, slab) for o in range(0, hi - lo, SLAB))
                else:
                    if not big:  # the largest tensor's bytes, plus its row padding
                        big.append(np.empty(largest, np.uint8))
                    if 1 in kab:
                        _move_simple(pool, src_in, fd, lo, hi, base, raw, kab, big[0])
                    else:
                        _move_general(pool, src_in, fd, lo, hi, base, raw, kab, big[0])
            if on_tensor is not None:
                on_tensor(name, shape)
        src_in.check_unchanged()
        total = len(blob) + max((out_header[n]["data_offsets"][1] for n in names), default=0)
        if os.fstat(fd).st_size != total:  # dst held bytes beyond the output (or a trailing empty tensor)
            os.ftruncate(fd, total)
    finally:
        pool.close()
        src_in.close()
        os.close(fd)


def _rows_per_slab(row_bytes: int) -> int:
    return max(1, SLAB // max(1, row_bytes))


def _stride(row: int, item: int) -> int:
    """Bytes from one row's start to the next in our buffers: ``row``, plus PAD for long rows."""
    return row + PAD if row and row % PAD_EVERY == 0 and PAD % item == 0 else row


def _band_rows(item: int) -> int:
    """Input rows per band of a transpose out of a padded buffer: 512 bytes of each column
    (elements wider than 8 bytes: one pass).

    Measured on 384- to 1024-wide kernels (float32, 16- and 64-bit alike): a band of 512 bytes
    (128 float32 rows) took 0.6 to 0.9 of the time of 256-byte bands, once rows are padded."""
    return 1 if item > 8 else max(1, min(256, 512 // item))


def _transpose_bands(out: np.ndarray, matrix: np.ndarray) -> None:
    """``out[...] = matrix.T``, a band of input rows at a time (each band writes whole lines of ``out``)."""
    _transpose_into(out, matrix, parallel=False, band=_band_rows(matrix.itemsize))


def _grid(buf: np.ndarray, rows: int, row: int, item: int) -> np.ndarray:
    """``rows`` rows of ``row`` bytes at the start of ``buf`` (uint8), ``_stride`` apart: (rows, stride) bytes."""
    return buf[: rows * _stride(row, item)].reshape(rows, _stride(row, item))


def _as_rows(grid: np.ndarray, row: int, raw: np.dtype) -> np.ndarray:
    """The (rows, row // item) elements of a padded byte grid."""
    return grid.view(raw)[:, : row // raw.itemsize]


def scratch_bytes(shape: tuple[int, ...], to: str, itemsize: int) -> int:
    """Bytes of the one buffer :func:`stream_layout` needs for a tensor (its size, plus the row padding)."""
    kab = _kab(tuple(shape), to)
    if kab is None:
        return 0
    k, a, b = kab
    if 1 in kab:
        rows, row = _simple_matrix(kab, itemsize)
        return rows * _stride(row, itemsize)
    return k * _stride(a * b * itemsize, itemsize)


def _simple_matrix(kab, item: int) -> tuple[int, int]:
    """(rows, row bytes) of the 2D matrix a move with an axis of length 1 transposes."""
    k, a, b = kab
    return (k * a, b * item) if k == 1 or a == 1 else (k, a * item)


def _write_transposed(pool: _Pool, fd: int, m: np.ndarray, base: int, raw: np.dtype) -> None:
    """Write ``m.T`` (``m`` is ``(rows, cols)``, rows maybe padded) at ``base``, a slab of output rows per task."""
    rows, cols = m.shape
    item = raw.itemsize
    step = _rows_per_slab(rows * item)

    def task(slab, o):
        c = min(step, cols - o)
        if c * rows * item > SLAB:  # one output row larger than a slab
            piece = np.ascontiguousarray(m[:, o : o + c].T)
        else:
            piece = slab[: c * rows * item].view(raw).reshape(c, rows)
            _transpose_bands(piece, m[:, o : o + c])
        _pwrite_all(fd, piece, base + o * rows * item)

    pool.run(lambda slab, o=o: task(slab, o) for o in range(0, cols, step))


def _move_simple(pool: _Pool, src: _Input, fd: int, lo: int, hi: int, base: int, raw: np.dtype, kab, big: np.ndarray) -> None:
    """A move that is one 2D transpose (one of k, a, b is 1): the tensor read whole, then written in slabs."""
    item = raw.itemsize
    # (k, a, b) -> (b, a, k) with one axis of length 1 is out = m.T
    rows, row = _simple_matrix(kab, item)
    grid = _grid(big, rows, row, item)
    per = _rows_per_slab(grid.shape[1])  # the two threads read a slab of rows each at a time
    pool.run(lambda slab, r=r: src.read_rows(grid[r : r + per], row, lo + r * row) for r in range(0, rows, per))
    _write_transposed(pool, fd, _as_rows(grid, row, raw), base, raw)


def _move_general(pool: _Pool, src: _Input, fd: int, lo: int, hi: int, base: int, raw: np.dtype, kab, scratch: np.ndarray) -> None:
    k, a, b = kab
    item = raw.itemsize
    one = a * b * item  # bytes of one of the k runs
    run = _stride(one, item)  # the scratch's runs, PAD apart where their length would put them in the same cache sets
    scr2d = scratch[: k * run].view(raw).reshape(k, run // item)[:, : a * b]
    row = b * item
    stride = _stride(row, item)
    # pass one: (k, a, b) -> (k, b, a); each task reads about a slab of input rows and transposes it into place
    if a * stride > SLAB:  # long runs: each cut into blocks of whole input rows

        def first(slab, j, r0):
            r1 = min(a, r0 + max(1, SLAB // stride))
            grid = _grid(slab, r1 - r0, row, item)
            src.read_rows(grid, row, lo + j * one + r0 * row)
            _transpose_bands(scr2d[j].reshape(b, a)[:, r0:r1], _as_rows(grid, row, raw))

        def part_of_row(slab, j, r0, c0):  # a row longer than a slab: a slab of it at a time, into its column
            c1 = min(b, c0 + SLAB // item)
            piece = src.read_into(slab[: (c1 - c0) * item], lo + j * one + r0 * row + c0 * item).view(raw)
            np.copyto(scr2d[j].reshape(b, a)[c0:c1, r0], piece)

        if stride <= SLAB:
            step = SLAB // stride
            pool.run(lambda slab, j=j, r0=r0: first(slab, j, r0) for j in range(k) for r0 in range(0, a, step))
        else:
            cols = SLAB // item
            pool.run(lambda slab, j=j, r0=r0, c0=c0: part_of_row(slab, j, r0, c0) for j in range(k) for r0 in range(a) for c0 in range(0, b, cols))
    else:  # short runs: a few whole runs per task
        group = max(1, SLAB // (a * stride))

        def first_group(slab, k0):
            k1 = min(k, k0 + group)
            grid = _grid(slab, (k1 - k0) * a, row, item)
            src.read_rows(grid, row, lo + k0 * one)
            pieces = _as_rows(grid, row, raw)
            if stride == row:  # short rows (a Keras-bound kernel's window): one copy for the group is cheapest
                np.copyto(scr2d[k0:k1].reshape(k1 - k0, b, a), pieces.reshape(k1 - k0, a, b).transpose(0, 2, 1))
                return
            for j in range(k0, k1):  # padded rows: a few long runs, each in bands
                _transpose_bands(scr2d[j].reshape(b, a), pieces[(j - k0) * a : (j - k0 + 1) * a])

        pool.run(lambda slab, k0=k0: first_group(slab, k0) for k0 in range(0, k, group))
    # pass two: (k, b * a) -> (b * a, k), a slab of output rows at a time
    _write_transposed(pool, fd, scr2d, base, raw)
