"""Layouts: bit-exact round trips (property-based) and an independent oracle (a NumPy conv)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from xconv import layouts
from xconv.errors import LayoutError

ranks = st.integers(1, 3)


@st.composite
def conv_kernels(draw):
    rank = draw(ranks)
    k = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal((*k, cin // groups, cout)).astype(np.float32), groups


@given(conv_kernels())
def test_conv_round_trip_is_bit_exact(case):
    kernel, _ = case
    back = layouts.conv_kernel_to_keras(layouts.conv_kernel_to_torch(kernel))
    assert back.tobytes() == kernel.tobytes() and back.shape == kernel.shape


@given(conv_kernels())
def test_conv_shape_and_index_mapping(case):
    kernel, _ = case
    rank = kernel.ndim - 2
    w = layouts.conv_kernel_to_torch(kernel)
    assert w.shape == (kernel.shape[-1], kernel.shape[-2], *kernel.shape[:rank])
    assert w.flags.c_contiguous
    # torch[o, i, *k] == keras[*k, i, o] for a random element
    idx = tuple(np.random.default_rng(0).integers(0, s) for s in kernel.shape)
    assert w[(idx[-1], idx[-2], *idx[:rank])] == kernel[idx]


def _numpy_conv_keras(x, kernel, groups, stride, dilation):
    """Independent oracle: Keras semantics (channels-last x, (*k, in/g, out) kernel), 'valid'."""
    rank = kernel.ndim - 2
    *k, cin_g, cout = kernel.shape
    n, *spatial, cin = x.shape
    out_sp = [(s - (kk - 1) * dilation - 1) // stride + 1 for s, kk in zip(spatial, k, strict=True)]
    out = np.zeros((n, *out_sp, cout))
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        for pos in np.ndindex(*out_sp):
            acc = np.zeros(n)
            for kpos in np.ndindex(*k):
                src = tuple(p * stride + q * dilation for p, q in zip(pos, kpos, strict=True))
                acc += x[(slice(None), *src, slice(g * cin_g, (g + 1) * cin_g))] @ kernel[(*kpos, slice(None), o)]
            out[(slice(None), *pos, o)] = acc
    return out


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@settings(max_examples=25, deadline=None)
@given(conv_kernels(), st.integers(1, 2), st.integers(1, 2), st.integers(0, 2**31))
def test_converted_kernel_computes_the_keras_conv(case, stride, dilation, seed):
    kernel, groups = case
    kernel = kernel.astype(np.float64)
    rank = kernel.ndim - 2
    size = [(k - 1) * dilation + 1 + 2 for k in kernel.shape[:rank]]
    x = np.random.default_rng(seed).standard_normal((2, *size, kernel.shape[-2] * groups))
    want = _numpy_conv_keras(x, kernel, groups, stride, dilation)
    got = _CONV[rank](
        torch.from_numpy(np.moveaxis(x, -1, 1).copy()),
        torch.from_numpy(layouts.conv_kernel_to_torch(kernel)),
        stride=stride, dilation=dilation, groups=groups,
    ).numpy()  # fmt: skip
    torch.testing.assert_close(np.moveaxis(got, 1, -1), want, rtol=1e-12, atol=1e-12)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**31))
def test_depthwise_round_trip_and_channel_order(rank, cin, mult, seed):
    kernel = np.random.default_rng(seed).standard_normal((*([3] * rank), cin, mult))
    w = layouts.depthwise_kernel_to_torch(kernel)
    assert w.shape == (cin * mult, 1, *([3] * rank))
    for c in range(cin):
        for m in range(mult):  # output channel c * mult + m
            np.testing.assert_array_equal(w[c * mult + m, 0], kernel[..., c, m])
    back = layouts.depthwise_kernel_to_keras(w, mult)
    assert back.tobytes() == kernel.tobytes()


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31))
def test_dense_round_trip(cin, cout, seed):
    kernel = np.random.default_rng(seed).standard_normal((cin, cout)).astype(np.float32)
    w = layouts.dense_kernel_to_torch(kernel)
    assert w.shape == (cout, cin)
    assert layouts.dense_kernel_to_keras(w).tobytes() == kernel.tobytes()


feature_shapes = st.lists(st.integers(1, 5), min_size=2, max_size=4)


@given(feature_shapes, st.integers(1, 4), st.integers(0, 2**31))
def test_flatten_dense_matches_the_keras_computation(shape, units, seed):
    rng = np.random.default_rng(seed)
    x_keras = rng.standard_normal((2, *shape))  # channels-last maps
    kernel = rng.standard_normal((int(np.prod(shape)), units))
    want = x_keras.reshape(2, -1) @ kernel  # Keras: Flatten then Dense
    x_torch = np.moveaxis(x_keras, -1, 1)  # the same maps, channels-first
    w = layouts.flatten_dense_kernel_to_torch(kernel, shape)
    got = x_torch.reshape(2, -1) @ w.T  # torch: flatten then Linear, no transpose at run time
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    back = layouts.flatten_dense_kernel_to_keras(w, shape)
    assert back.tobytes() == kernel.tobytes()
    # and the activation helper agrees with the weight permutation
    np.testing.assert_array_equal(layouts.activation_to_torch(x_keras.reshape(2, -1), shape), x_torch.reshape(2, -1))
    np.testing.assert_array_equal(
        layouts.activation_to_keras(x_torch.reshape(2, -1), shape), x_keras.reshape(2, -1)
    )


def test_flatten_permutation_formula():
    # Keras index (h*W + w)*C + c lands at torch index c*H*W + h*W + w
    H, W, C = 3, 4, 5
    p = layouts.flatten_permutation((H, W, C))
    for h in range(H):
        for w in range(W):
            for c in range(C):
                assert p[c * H * W + h * W + w] == (h * W + w) * C + c


@pytest.mark.parametrize(
    "call, arg, says",
    [
        (layouts.conv_kernel_to_torch, np.zeros((3, 3)), "must have 3 to 5 axes (a 1D, 2D or 3D conv kernel); received shape (3, 3)."),
        (layouts.conv_kernel_to_keras, np.zeros((1, 2, 3, 3, 3, 3)), "must have 3 to 5 axes (a 1D, 2D or 3D conv kernel); received shape (1, 2, 3, 3, 3, 3)."),
        (layouts.dense_kernel_to_torch, np.zeros((3, 3, 3)), "is (in, out); received shape (3, 3, 3)."),
        (lambda a: layouts.flatten_dense_kernel_to_torch(a, (2, 2, 3)), np.zeros((10, 4)), "has 10 input features, but a Flatten of (2, 2, 3) gives 12"),
        (lambda a: layouts.depthwise_kernel_to_keras(a, 2), np.zeros((5, 1, 3, 3)), "received shape (5, 1, 3, 3) with depth_multiplier=2"),
    ],
    ids=["conv-2d-array", "conv-rank-4", "dense-3d", "flatten-wrong-size", "depthwise-bad-mult"],
)
def test_bad_shapes_raise_layout_error_with_the_shape(call, arg, says):
    """The message names what was received (the shape, and what it was checked against)."""
    with pytest.raises(LayoutError, match=re.escape(says)):
        call(arg)


def test_describe_kernel_axes_answers_the_conv5_2_question():
    assert layouts.describe_kernel_axes((3, 3, 512, 512), "keras") == "3x3 window x 512 input channels x 512 filters"
    assert layouts.describe_kernel_axes((512, 256, 3, 3), "torch") == "512 filters x 256 input channels x 3x3 window"


@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8", "float64", "float16", "bfloat16", "int8", "bool", "complex128"])
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 2048, 512), (1, 1, 512, 3), (1, 1, 1001, 300), (3, 3, 512, 256), (3, 3, 64, 512), (3, 3, 128, 128), (7, 7, 96, 100), (3, 3, 3, 64, 130), (3, 3, 3, 200, 64), (5, 1, 700, 33), (3, 48, 96), (5, 64, 64), (1, 9, 1, 1000), (7, 7, 768, 1), (11, 2, 1)],
)
@pytest.mark.parametrize("route", ["torch loaded", "NumPy only"])
def test_fast_paths_equal_numpy_transpose_bit_for_bit(shape, dtype, route, monkeypatch):
    """The paths of the kernel transform for large shapes (torch's blocked and general copies where
    torch is loaded; else banded, two-pass and two-thread NumPy) against np.transpose."""
    from xconv.files.dtypes import np_dtype

    if route == "NumPy only":  # layouts reads sys.modules: a caller that never imported torch
        monkeypatch.setitem(sys.modules, "torch", None)

    raw = np.random.default_rng(len(shape)).integers(0, 256, size=int(np.prod(shape)) * np_dtype(dtype).itemsize, dtype=np.uint8)
    kernel = raw.view(np_dtype(dtype)).reshape(shape)
    rank = len(shape) - 2
    to_torch = layouts.conv_kernel_to_torch(kernel)
    want = np.ascontiguousarray(np.transpose(kernel, layouts.kernel_permutation(rank)))
    assert to_torch.shape == want.shape and to_torch.tobytes() == want.tobytes() and to_torch.flags.c_contiguous
    back = layouts.conv_kernel_to_keras(to_torch)
    assert back.shape == kernel.shape and back.tobytes() == kernel.tobytes()
    *k, cin, mult = shape
    dw = layouts.depthwise_kernel_to_torch(kernel)
    want_dw = np.ascontiguousarray(np.moveaxis(kernel.reshape(*k, cin * mult), rank, 0)[:, None])
    assert dw.shape == want_dw.shape and dw.tobytes() == want_dw.tobytes()
    assert layouts.depthwise_kernel_to_keras(dw, mult).tobytes() == kernel.tobytes()
    if len(shape) == 4 and shape[0] * shape[1] == 1:
        m = kernel.reshape(cin, mult)
        assert layouts.dense_kernel_to_torch(m).tobytes() == np.ascontiguousarray(m.T).tobytes()


FORK_CHILD = """
import os, sys
sys.modules["torch"] = None  # the NumPy paths, whose halves run on xconv's worker pool
import numpy as np
from xconv import layouts
k = np.ones((3, 3, 512, 512), np.float32)
layouts.conv_kernel_to_torch(k)
assert layouts._POOL is not None, "the parent never used the pool: the test would prove nothing"
pid = os.fork()
if pid == 0:
    os._exit(0 if layouts.conv_kernel_to_torch(k).sum() == k.size else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_makes_its_own_worker_pool():
    """A child forked after the pool ran has none of its threads; work handed to the old pool would
    wait for ever (a DataLoader worker, a multiprocessing fork pool)."""
    run = subprocess.run([sys.executable, "-c", FORK_CHILD], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
