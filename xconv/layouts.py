"""Weight and activation layouts, Keras <-> PyTorch, written once for every spatial rank.

Pure NumPy: this module imports no framework. Every function returns a new C-contiguous
array and the pairs are exact inverses (round trips are bit-exact).

Keras kernels are ``(*k, in/groups, out)``; torch's are ``(out, in/groups, *k)``, so the
permutation for spatial rank ``n`` is ``(n + 1, n, 0, ..., n - 1)``. A transposed conv is
``(*k, out, in)`` in Keras and ``(in, out, *k)`` in torch: the same permutation.

>>> import numpy as np
>>> conv_kernel_to_torch(np.zeros((3, 3, 512, 512), np.float32)).shape   # conv5_2
(512, 512, 3, 3)
>>> conv_kernel_to_keras(np.zeros((2, 4, 3, 3, 3))).shape                # conv3d_c
(3, 3, 3, 4, 2)
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Sequence
from enum import Enum

import numpy as np

from .errors import LayoutError


class LayoutKind(str, Enum):
    """How a torch tensor is laid out against its Keras twin; a ``str`` enum, so ``"cf" == CF`` holds.

    Used by the translation (the tensors of a translated module), by compare's alignment (how a
    captured torch value is read against the Keras layer) and by lint.
    """

    CF = "cf"  # rank >= 3: (N, C, *spatial), the Keras tensor was (N, *spatial, C)
    PLAIN = "plain"  # rank <= 2, or any tensor whose axes mean the same in both frameworks
    CL = "cl"  # rank >= 3 in Keras' own axis order (operations on KerasTensors, channels_first layers)
    FLAT = "flat"  # a torch-order flatten of channels-last maps (the Dense after it takes permuted rows)
    OTHER = "other"  # (compare's alignment) axes permuted into an order that is none of the above

    @classmethod
    def for_rank(cls, rank: int) -> "LayoutKind":
        """CF for feature maps (rank >= 3), PLAIN below."""
        return cls.CF if rank >= 3 else cls.PLAIN

__all__ = [
    "LayoutKind",
    "kernel_permutation",
    "conv_kernel_to_torch",
    "conv_kernel_to_keras",
    "depthwise_kernel_to_torch",
    "depthwise_kernel_to_keras",
    "dense_kernel_to_torch",
    "dense_kernel_to_keras",
    "flatten_dense_kernel_to_torch",
    "flatten_dense_kernel_to_keras",
    "flatten_permutation",
    "activation_to_torch",
    "activation_to_keras",
    "describe_kernel_axes",
]


def kernel_permutation(rank: int, to: str = "torch") -> tuple[int, ...]:
    """Axis permutation taking a rank-``rank`` conv kernel to ``to`` ('torch' or 'keras') layout."""
    if rank < 1:
        raise LayoutError(f"A conv kernel needs spatial rank >= 1; received rank={rank}.")
    if to == "torch":
        return (rank + 1, rank, *range(rank))
    if to == "keras":
        return (*range(2, rank + 2), 1, 0)
    raise LayoutError(f"Unknown target layout {to!r}; expected 'torch' or 'keras'.")


_LINE = 64  # bytes in a cache line
_PARALLEL_BYTES = 2**20  # tensors above this are moved by two threads (the copies release the GIL; below, a
# second thread costs more than it saves)
_POOL = None
_POOL_LOCK = threading.Lock()


def _executor():
    """The package's one worker pool (two threads, made once, under a lock): the layouts' halves,
    compare's scans and the streamed writer's helper all run on it. A task on it must not wait
    for another task on it."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(2, thread_name_prefix="xconv-worker")
    return _POOL


def _forget_pool() -> None:  # a forked child has none of the parent's threads: it makes its own pool
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _in_parallel(work, n: int, unit: int = 1) -> None:
    """Run ``work(lo, hi)`` over ``range(n)`` split in two halves (on multiples of ``unit``) on two threads."""
    mid = (n // 2 // unit) * unit
    if mid <= 0 or mid >= n:
        work(0, n)
        return
    other = _executor().submit(work, mid, n)
    work(0, mid)
    other.result()


def _band(item: int) -> int:
    """Input rows per band of :func:`_transpose_into`: 64 narrow elements (four cache lines of float32).

    Measured on 1024x1024 and 4608x1024 float32 transposes out of cache: bands of one cache line
    (16 rows) cost twice the time of 64-row bands (the hardware fetches lines in pairs, and the
    rows of a power-of-two matrix fall in one cache set); elements of 16 bytes and up keep one line.
    """
    return min(64, 256 // item) if item <= 8 else max(1, _LINE // item)


def _transpose_into(out: np.ndarray, matrix: np.ndarray, parallel: bool = True, band: int | None = None) -> None:
    """``out[...] = matrix.T``; for narrow elements, a band of 64 input rows at a time.

    Each band writes whole cache lines of ``out`` and reads its rows front to back, so both
    sides stream; NumPy's one-pass copy of a tall transposed view instead writes one element
    per line per pass. Wide elements (opaque rows of a line or more) are copied in one pass.
    Large matrices are split between two threads by output rows. ``band``: input rows per band
    (default :func:`_band`; 1 or less: one pass), as the streamed writer
    (:mod:`xconv.files.stream`) sets it for its padded buffers; then bands run however few the
    output rows.
    """
    n = matrix.shape[0]
    short = 128 if band is None else 0  # output rows below which bands would be too short to pay
    band = _band(matrix.itemsize) if band is None else band

    def work(lo, hi):
        src, dst = matrix[:, lo:hi], out[lo:hi]
        if band <= 1 or n <= band or hi - lo < short:  # few output rows: bands would be short
            np.copyto(dst, src.T)
            return
        for r in range(0, n, band):
            np.copyto(dst[:, r : r + band], src[r : r + band].T)

    if parallel and matrix.nbytes > _PARALLEL_BYTES:
        _in_parallel(work, matrix.shape[1])
    else:
        work(0, matrix.shape[1])


def _transpose2d(matrix: np.ndarray) -> np.ndarray:
    """A contiguous transposed copy: torch's blocked transpose where torch is loaded and both
    sides are long, else cache-line banded NumPy when large."""
    n, m = matrix.shape
    if n < 2 or m < 2 or matrix.nbytes < min(_SMALL, _SHUFFLE_2D if sys.modules.get("torch") is not None else _SMALL):
        return matrix.T.copy()
    kind = _shuffles(matrix) if _SHUFFLE_2D <= matrix.nbytes < _HUGE else None
    if kind is not None:
        if matrix.nbytes < _PARALLEL_BYTES:  # one SIMD transpose (in cache: a second thread would cost more)
            return _shuffle(matrix, kind, 1, n, m).reshape(m, n)
        if _splits(n) > 1:  # SIMD transposes of row blocks on two threads, then their rows moved into place
            return _split_reverse(matrix, kind, n, 1, m).reshape(m, n)
    torch, view = _torch_view(matrix)
    if torch is not None:
        out = np.empty((m, n), view.dtype)
        if min(n, m) >= _BLOCK_MIN:
            _blocked(torch, out, view)
        else:  # a short side: torch's general copy (its blocked one pays per block row)
            torch.from_numpy(out)[None].copy_(torch.from_numpy(view).t()[None])
        return out.view(matrix.dtype)
    out = np.empty((m, n), matrix.dtype)
    _transpose_into(out, matrix)
    return out


def _rows(array: np.ndarray, k: int) -> np.ndarray:
    """``array`` (last axis ``k`` contiguous) seen as an array of opaque ``k``-element rows."""
    return array.view(np.dtype((np.void, k * array.itemsize)))[..., 0]


def _reverse3(array: np.ndarray, k: int, a: int, b: int) -> np.ndarray:
    """``(k, a, b) -> (b, a, k)`` of a C-contiguous ``array``.

    Small tensors: one NumPy pass (fits in cache). One of ``k, a, b`` 1: a 2D transpose
    (:func:`_transpose2d`). Else, where the caller has loaded torch, for 4- and 1-byte elements:
    two :func:`_shuffle` passes where ``b >= k`` (a Keras kernel, window axis first), else
    :func:`_split_reverse` (a torch weight, filters first); other element sizes take
    :func:`_reverse3_torch` (torch's general copy). Without torch:
    two cache-friendly NumPy passes instead of one strided gather: pass one transposes
    ``(k, a * b) -> (a * b, k)`` in bands of 64 input rows; pass two moves whole ``k``-element
    rows, ``(a, b) -> (b, a)``, treating each row as one opaque element so NumPy copies it in
    one go. Tensors above 1 MiB are split between two threads. scripts/bench_convert.py
    compares the result with torch's ``permute().contiguous()`` per shape.
    """
    x = array.reshape(k, a, b)
    if array.nbytes < _SMALL:  # fits in cache: one pass costs less than two calls
        if k <= 5 < a and b >= k and array.nbytes >= 2**12 * k:  # a short window first (a 1D Keras kernel)
            out = np.empty((b, a, k), array.dtype)
            for t in range(k):  # one 2D transpose per tap: 0.6-0.75 of torch's copy, where one pass took 1.1-1.6
                out[:, :, t] = x[t].T
            return out
        return x.transpose(2, 1, 0).copy()
    if k == 1 or b == 1 or a == 1:  # one of the moves is trivial: a plain 2D transpose
        if k == 1:
            return _transpose2d(x.reshape(a, b)).reshape(b, a, 1)
        if b == 1:
            return _transpose2d(x.reshape(k, a)).reshape(1, a, k)
        return _transpose2d(x.reshape(k, b)).reshape(b, 1, k)
    kind = _shuffles(x)
    if kind is not None and b >= k:  # two batched SIMD transposes: (a, b) -> (b, a) per k, then (k, b * a) -> (b * a, k)
        return _shuffle(_shuffle(x, kind, k, a, b), kind, 1, k, b * a).reshape(b, a, k)
    if kind is not None:  # the window axis last (a torch weight): (k, a * b) transposed in row blocks, rows moved
        return _split_reverse(x, kind, k, a, b)
    torch, view = _torch_view(x)
    if torch is not None:
        return _reverse3_torch(torch, view, k, a, b).view(array.dtype)
    step = _scratch(k * a * b, array.dtype).reshape(a * b, k)
    _transpose_into(step, x.reshape(k, a * b))
    out = np.empty((b, a, k), array.dtype)
    _swap_rows(out, step.reshape(a, b, k))
    return out


_SMALL = 3 * 2**15  # bytes: below this one NumPy pass is cheapest (on a grid of 208 conv kernels of 3 to 49 taps
# and 3 to 768 channels, scripts/bench_convert.py --kernel-grid: from 96 to 256 KiB it took 1.0-2.4 of torch's copy)
_INT_OF_SIZE = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


_BLOCK_MIN = 64  # torch's blocked 2D transpose for matrices with both sides at least this long


def _torch_view(array: np.ndarray):
    """(torch, ``array`` as a dtype torch takes) where the caller has loaded torch; (None, None) else.

    Dtypes torch lacks (bfloat16 from ml_dtypes, float8) and bool (torch would normalise its
    bytes) move as integers of the same size: bits exact."""
    torch = sys.modules.get("torch")
    if torch is None or not array.flags.writeable:
        return None, None
    dt = array.dtype
    if not (dt.kind in "iuf" and dt.isnative):
        if dt.itemsize not in _INT_OF_SIZE:
            return None, None
        array = array.view(_INT_OF_SIZE[dt.itemsize])
    return torch, array


_SHUFFLE_2D = 2**16  # bytes: 2D transposes from here to 1 MiB go through one _shuffle (0.4-0.7 of torch's copy
# on 25x1024 to 256x256 float32, where a NumPy pass took 0.6-2.9), from 1 to 32 MiB through _split_reverse
# (0.2-0.7 of it on 512x2048 to 4096x1000, where torch's blocked transpose took 0.4-1.2)
_HUGE = 2**25  # bytes: 2D transposes above this (beyond the caches) take torch's blocked transpose, 0.2 of the
# general copy on 4096x4096 float32, where _split_reverse took 0.4
_SHUFFLED = {4: "float32", 1: "uint8"}  # element sizes torch's channel_shuffle transposes by SIMD (FBGEMM's
# transpose_simd for float and uint8 on x86 builds; other dtypes take its scalar loop, slower than the general copy)


def _shuffles(array: np.ndarray) -> str | None:
    """The dtype :func:`_shuffle` moves ``array``'s bits as (an int32 as float32: a shuffle never
    touches a value, NaN payloads included); None where torch is not loaded, the array is
    read-only or its element size has no fast transpose."""
    kind = _SHUFFLED.get(array.itemsize)
    if kind is None or sys.modules.get("torch") is None or not array.flags.writeable or array.dtype.kind not in "iufbV":
        return None
    return kind


def _shuffle(x: np.ndarray, kind: str, p: int, g: int, c: int) -> np.ndarray:
    """``(p, g, c) -> (p, c, g)`` of a C-contiguous array, as a new flat array of ``x``'s dtype.

    torch's channel_shuffle of a channels-last ``(1, g * c, p, 1)`` image is exactly this: one
    ``(g, c)`` transpose per pixel, pixels spread over torch's threads, each transpose cache-blocked
    and vectorised (FBGEMM). It took 0.3 to 0.8 of torch's ``permute().contiguous()`` on the conv
    kernels of scripts/bench_convert.py, where the general copy's inner loop runs over the short
    window axis. The views around it are NumPy's (a torch call costs about 1 us, several times a
    NumPy view: a quarter of the time on a 150 KB kernel). The result is read in memory order, so
    any layout torch picks for it is right.
    """
    torch = sys.modules["torch"]
    image = torch.from_numpy(x.reshape(1, p, 1, g * c).view(kind).transpose(0, 3, 1, 2))
    out = torch.channel_shuffle(image, g).numpy().transpose(0, 2, 3, 1)
    return out.reshape(-1).view(x.dtype)


def _splits(k: int) -> int:
    """Row blocks for :func:`_split_reverse`: 4 or 2 where each keeps rows of at least 128 elements, else 1.

    On 2D and 3D float32 transposes of 0.1 to 70 MB, 4 blocks of 128+ elements took 0.25-0.75 of
    torch's general copy; blocks of 32-64 elements (a 128-filter weight in 4) up to 1.3: short
    rows make the second pass a gather."""
    return 4 if k % 4 == 0 and k >= 512 else 2 if k % 2 == 0 and k >= 256 else 1


def _split_reverse(x: np.ndarray, kind: str, k: int, a: int, b: int) -> np.ndarray:
    """``(k, a, b) -> (b, a, k)`` in two passes, for a long ``k`` (a torch weight's filters, a matrix's rows).

    Pass one transposes ``(k, a * b)`` as :func:`_splits` blocks of ``k / s`` rows, one
    :func:`_shuffle` whose blocks torch spreads over its threads: ``(s, a, b, k / s)``. Pass two moves
    the ``k / s``-element rows to ``(b, a, s, k / s)``, a copy with a contiguous inner loop (the cost of
    a memcpy). torch's ``permute().contiguous()`` instead gathers each output row
    from ``k`` rows ``a * b`` elements apart. One block and ``a == 1``: pass one is the result.
    """
    s = _splits(k)
    step = _shuffle(x, kind, s, k // s, a * b)
    if s == 1 and a == 1:
        return step.reshape(b, a, k)
    out = np.empty((b, a, k), x.dtype)
    rows = step.reshape(s, a, b, k // s)
    if out.nbytes < _PARALLEL_BYTES:  # in cache: NumPy's copy costs less to call (0.6-1.0 of torch's on 0.1-1 MB)
        np.copyto(out.reshape(b, a, s, k // s), rows.transpose(2, 1, 0, 3))
        return out
    torch = sys.modules["torch"]  # torch's copy on its threads: 0.5-0.8 of NumPy's one thread from 1 MB
    torch.from_numpy(out.view(kind).reshape(b, a, s, k // s)).copy_(torch.from_numpy(rows.view(kind)).permute(2, 1, 0, 3))
    return out


def _blocked(torch, out: np.ndarray, matrix: np.ndarray) -> None:
    """``out[...] = matrix.T`` (both C-contiguous) by torch's blocked transpose: ``copy_`` of a
    transposed contiguous matrix runs a cache-blocked kernel, where a permuted N-d tensor goes
    through the general strided copy (5 to 10 times slower on a power-of-two matrix, whose
    columns fall in one cache set; scripts/bench_convert.py)."""
    torch.from_numpy(out).copy_(torch.from_numpy(matrix).t())


def _reverse3_torch(torch, x: np.ndarray, k: int, a: int, b: int) -> np.ndarray:
    """``(k, a, b) -> (b, a, k)`` by torch's general copy, into a NumPy-owned array.

    Two blocked 2D passes (each slice transposed, then the slices' ``(k, b * a)`` matrix) took
    1.2 to 5 times this copy's time on the 3D kernels of scripts/bench_convert.py, even on
    power-of-two shapes: one strided pass that stays in cache beats two streaming ones."""
    out = np.empty((b, a, k), x.dtype)
    torch.from_numpy(out).copy_(torch.from_numpy(x).permute(2, 1, 0))
    return out


_WIDE = 256  # bytes: rows at least this long are copied as rows (NumPy would buffer opaque ones)


def _swap_rows(out: np.ndarray, rows: np.ndarray) -> None:
    """``out[j, i] = rows[i, j]`` for whole last-axis rows: ``(a, b, k) -> (b, a, k)``."""
    k = rows.shape[-1]
    if k * rows.itemsize >= _WIDE:
        if out.nbytes > _PARALLEL_BYTES:
            _in_parallel(lambda lo, hi: np.copyto(out[lo:hi], rows[:, lo:hi].transpose(1, 0, 2)), out.shape[0])
        else:
            np.copyto(out, rows.transpose(1, 0, 2))
    else:  # short rows as single opaque elements, so NumPy moves each in one go
        _transpose_into(_rows(out, k), _rows(rows, k))


_SCRATCH = threading.local()  # the intermediate of _reverse3, reused: fresh pages cost more than the copy


def _scratch(size: int, dtype) -> np.ndarray:
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        if size * np.dtype(dtype).itemsize > 64 * 2**20:  # kept per thread for good: none above 64 MiB (a 3x3 1024->1024 float32 kernel is 36)
            return np.empty(size, dtype)
        buf = _SCRATCH.buf = np.empty(size, dtype)
    return buf[:size]


def _check_conv(array: np.ndarray, what: str) -> int:
    if not 3 <= array.ndim <= 5:
        raise LayoutError(
            f"{what} must have 3 to 5 axes (a 1D, 2D or 3D conv kernel); received shape {array.shape}."
        )
    return array.ndim - 2


def _contiguous(array) -> np.ndarray:
    if type(array) is not np.ndarray or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return array


def conv_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras ``(*k, in/groups, out)`` -> torch ``(out, in/groups, *k)`` (transposed conv: same permutation)."""
    kernel = _contiguous(kernel)
    shape = kernel.shape
    if not 3 <= len(shape) <= 5:
        _check_conv(kernel, "A Keras conv kernel")
    cin, cout = shape[-2], shape[-1]
    return _reverse3(kernel, math.prod(shape[:-2]), cin, cout).reshape(cout, cin, *shape[:-2])


def conv_kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """torch ``(out, in/groups, *k)`` -> Keras ``(*k, in/groups, out)``."""
    weight = _contiguous(weight)
    shape = weight.shape
    if not 3 <= len(shape) <= 5:
        _check_conv(weight, "A PyTorch conv weight")
    cout, cin = shape[0], shape[1]
    return _reverse3(weight, cout, cin, math.prod(shape[2:])).reshape(*shape[2:], cin, cout)


def depthwise_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise ``(*k, in, mult)`` -> torch ``(in * mult, 1, *k)``; output channel ``c * mult + m``."""
    kernel = _contiguous(kernel)
    shape = kernel.shape
    if not 3 <= len(shape) <= 5:
        _check_conv(kernel, "A Keras depthwise kernel")
    k, channels = shape[:-2], shape[-2] * shape[-1]
    merged = kernel.reshape(math.prod(k), channels)  # C order puts c * mult + m on the last axis
    return _transpose2d(merged).reshape(channels, 1, *k)


def depthwise_kernel_to_keras(weight: np.ndarray, depth_multiplier: int = 1) -> np.ndarray:
    """torch ``(in * mult, 1, *k)`` -> Keras ``(*k, in, mult)``."""
    weight = _contiguous(weight)
    if not 3 <= weight.ndim <= 5:
        _check_conv(weight, "A PyTorch depthwise weight")
    out, one, *k = weight.shape
    if one != 1 or depth_multiplier < 1 or out % depth_multiplier:
        raise LayoutError(
            f"A depthwise weight is (in * depth_multiplier, 1, *k); received shape {weight.shape} "
            f"with depth_multiplier={depth_multiplier}."
        )
    flat = weight.reshape(out, math.prod(k))
    return _transpose2d(flat).reshape(*k, out // depth_multiplier, depth_multiplier)


def dense_kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras Dense ``(in, out)`` -> torch Linear ``(out, in)``."""
    if np.ndim(kernel) != 2:
        raise LayoutError(f"A Keras Dense kernel is (in, out); received shape {np.shape(kernel)}.")
    return _transpose2d(np.asarray(kernel))


def dense_kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """torch Linear ``(out, in)`` -> Keras Dense ``(in, out)``."""
    if np.ndim(weight) != 2:
        raise LayoutError(f"A PyTorch Linear weight is (out, in); received shape {np.shape(weight)}.")
    return _transpose2d(np.asarray(weight))


def flatten_permutation(feature_shape: Sequence[int]) -> np.ndarray:
    """Index ``p`` with ``flat_channels_first = flat_channels_last[p]``.

    ``feature_shape`` is the channels-last shape before the Flatten, without the batch axis,
    e.g. ``(56, 56, 1, 2)`` for conv3d_demo.
    """
    shape = tuple(int(s) for s in feature_shape)
    if len(shape) < 2:
        raise LayoutError(f"A Flatten of feature maps needs (*spatial, channels); received {shape}.")
    index = np.arange(int(np.prod(shape))).reshape(shape)
    return np.moveaxis(index, -1, 0).reshape(-1)


def _check_flatten(rows: int, feature_shape: Sequence[int], what: str) -> None:
    if rows != int(np.prod(feature_shape)):
        raise LayoutError(
            f"{what} has {rows} input features, but a Flatten of {tuple(feature_shape)} gives "
            f"{int(np.prod(feature_shape))}; pass the shape the Flatten receives (without the batch axis)."
        )


def flatten_dense_kernel_to_torch(kernel: np.ndarray, feature_shape: Sequence[int]) -> np.ndarray:
    """Keras Dense after a channels-last Flatten -> torch Linear after a channels-first flatten.

    Keras' row ``(h * W + w) * C + c`` becomes torch's column ``c * H * W + h * W + w``,
    so no transpose is needed at run time.
    """
    dense = dense_kernel_to_torch(kernel)
    _check_flatten(dense.shape[1], feature_shape, "The Dense kernel")
    return np.ascontiguousarray(dense[:, flatten_permutation(feature_shape)])


def flatten_dense_kernel_to_keras(weight: np.ndarray, feature_shape: Sequence[int]) -> np.ndarray:
    """Inverse of :func:`flatten_dense_kernel_to_torch`."""
    if np.ndim(weight) != 2:
        raise LayoutError(f"A PyTorch Linear weight is (out, in); received shape {np.shape(weight)}.")
    _check_flatten(weight.shape[1], feature_shape, "The Linear weight")
    inverse = np.argsort(flatten_permutation(feature_shape))
    return dense_kernel_to_keras(weight[:, inverse])


def activation_to_torch(x: np.ndarray, flatten_of: Sequence[int] | None = None) -> np.ndarray:
    """A batch of Keras activations in torch layout.

    Feature maps ``(N, *spatial, C)`` become ``(N, C, *spatial)``; a flattened vector that came
    from channels-last maps of shape ``flatten_of`` is reordered channels-first; vectors stay.
    """
    x = np.asarray(x)
    if flatten_of is not None:
        return np.ascontiguousarray(x[:, flatten_permutation(flatten_of)])
    if x.ndim >= 3:
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))
    return x


def activation_to_keras(x: np.ndarray, flatten_of: Sequence[int] | None = None) -> np.ndarray:
    """Inverse of :func:`activation_to_torch` (``flatten_of`` is still the channels-last shape)."""
    x = np.asarray(x)
    if flatten_of is not None:
        return np.ascontiguousarray(x[:, np.argsort(flatten_permutation(flatten_of))])
    if x.ndim >= 3:
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x


_SPATIAL = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def describe_kernel_axes(shape: Sequence[int], layout: str, kind: str = "conv") -> str:
    """Say what each axis of a kernel means: ``3x3 window x 512 input channels x 512 filters``."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        return "scalar"
    if kind == "dense":
        if layout == "keras":
            return f"{shape[0]} inputs x {shape[1]} units"
        return f"{shape[0]} units x {shape[1]} inputs"
    if kind in ("vector",):
        return f"{shape[0]} channels"
    rank = len(shape) - 2
    if rank not in _SPATIAL:
        return "x".join(map(str, shape))
    k = shape[:rank] if layout == "keras" else shape[2:]
    a, b = (shape[rank], shape[rank + 1]) if layout == "keras" else (shape[1], shape[0])
    window = "x".join(map(str, k))
    if kind == "transposed":
        # Keras (*k, out, in), torch (in, out, *k)
        cin, cout = (b, a) if layout == "keras" else (shape[0], shape[1])
        return f"{window} window x {cin} input channels x {cout} output channels"
    if kind == "depthwise":
        return f"{window} window x {a} input channels x {b} per channel"
    if layout == "keras":
        return f"{window} window x {a} input channels x {b} filters"
    return f"{b} filters x {a} input channels x {window} window"
