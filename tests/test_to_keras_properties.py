"""Property tests: random ConvTranspose, pooling and padding configurations translate to Keras
models with torch's shapes and values (float64, relative difference <= 1e-9).

Kernel, stride, padding, output_padding, dilation, groups (depthwise included), ceil_mode,
count_include_pad and odd and even input sizes are drawn by hypothesis; a configuration torch
itself refuses is not a model and is skipped (``assume``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import needs_keras
from xconv import torch_to_keras
from xconv.layouts import activation_to_keras, activation_to_torch

pytestmark = needs_keras
# each example exports and builds a Keras model (about a second): few examples, marked slow
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def matches(module, shape, dtype="float64", seed=0):
    """Translate ``module`` for inputs of ``shape`` (with batch) and check Keras against torch."""
    module = module.to(getattr(torch, dtype)).eval()
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape).astype(dtype))
    try:
        with torch.no_grad():
            want = module(x).numpy()
    except RuntimeError:  # torch refuses the configuration (output too small, pad too wide)
        assume(False)
    assume(want.size > 0)
    k = torch_to_keras(module, example_inputs=x)
    got = activation_to_torch(np.asarray(k(activation_to_keras(x.numpy()))))
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max()), 1e-12)
    assert float(np.abs(got - want).max()) / scale <= 1e-9


@st.composite
def conv_transposes(draw):
    rank = draw(st.sampled_from([1, 1, 2, 2, 3]))
    k = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    d = tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(rank))
    p = tuple(draw(st.integers(0, dd * (kk - 1))) for kk, dd in zip(k, d))
    op = tuple(draw(st.integers(0, max(ss, dd) - 1)) for ss, dd in zip(s, d))
    cin = draw(st.sampled_from([2, 4]))
    groups = draw(st.sampled_from([1, 2, cin]))
    cout = groups * draw(st.integers(1, 2))
    size = tuple(draw(st.integers(2, 6 if rank < 3 else 4)) for _ in range(rank))
    cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[rank]
    conv = cls(cin, cout, k, stride=s, padding=p, output_padding=op, dilation=d, groups=groups, bias=draw(st.booleans()))
    return conv, (2, cin, *size)


@pytest.mark.slow
@SETTINGS
@given(conv_transposes(), st.integers(0, 100))
def test_conv_transpose_any_configuration(case, seed):
    conv, shape = case
    torch.manual_seed(seed)
    with torch.no_grad():
        if conv.bias is not None:
            conv.bias.normal_()
    matches(conv, shape, seed=seed)


@pytest.mark.parametrize("k,s", [(1, 2), (2, 3), ((3, 1), 2)])
def test_conv_transpose_with_a_kernel_smaller_than_its_stride_has_torchs_length(k, s):
    """The silent wrong result of the fx translator: Keras gave n*s, torch (n-1)*s + k."""
    rank = 1 if isinstance(k, int) else len(k)
    cls = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}[rank]
    matches(cls(3, 2, k, stride=s), (1, 3, *(5,) * rank))


@st.composite
def poolings(draw):
    kind = draw(st.sampled_from(["max", "avg"]))
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    k = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    s = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    d = tuple(draw(st.sampled_from([1, 1, 2])) for _ in range(rank)) if kind == "max" else (1,) * rank
    p = tuple(draw(st.integers(0, ((kk - 1) * dd + 1) // 2)) for kk, dd in zip(k, d))
    ceil = draw(st.booleans())
    size = tuple(draw(st.integers(4, 11 if rank < 3 else 6)) for _ in range(rank))
    if kind == "max":
        cls = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[rank]
        pool = cls(k, stride=s, padding=p, dilation=d, ceil_mode=ceil)
    else:
        cls = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}[rank]
        pool = cls(k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=draw(st.booleans()))
    return pool, (2, 3, *size)


@pytest.mark.slow
@SETTINGS
@given(poolings(), st.integers(0, 100))
def test_pooling_any_configuration(case, seed):
    pool, shape = case
    matches(nn.Sequential(pool), shape, seed=seed)


class Pad(nn.Module):
    def __init__(self, pad, mode, value):
        super().__init__()
        self.pad, self.mode, self.value = pad, mode, value

    def forward(self, x):
        if self.mode == "constant":
            return F.pad(x, self.pad, mode="constant", value=self.value)
        return F.pad(x, self.pad, mode=self.mode)


@st.composite
def paddings(draw):
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    rank = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(3, 7)) for _ in range(rank))
    lo = -2 if mode == "constant" else 0
    pad = []
    for n in reversed(size):  # F.pad: the last dim first
        hi = n - 1 if mode in ("reflect", "circular") else 3
        pad += [draw(st.integers(lo, min(hi, 3))), draw(st.integers(lo, min(hi, 3)))]
    value = draw(st.sampled_from([0.0, 1.5, -2.0]))
    return Pad(tuple(pad), mode, value), (2, 2, *size)


@pytest.mark.slow
@SETTINGS
@given(paddings(), st.integers(0, 100))
def test_padding_any_mode(case, seed):
    pad, shape = case
    matches(pad, shape, seed=seed)
