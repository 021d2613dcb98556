"""The per-layer measurement against a plain NumPy oracle (it takes fast paths; they must agree)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xconv.comparison.core import _absmax, _diff, _Scratch


def oracle(ref, other):
    d = np.abs(ref.astype(np.float64) - other.astype(np.float64))
    return float(d.max()), tuple(int(i) for i in np.unravel_index(int(d.argmax()), d.shape))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([(2, 3), (2, 5, 7, 3), (1, 40, 50, 37), (3, 70, 33, 64), (2, 9, 10, 11, 4), (1, 300, 7)]),
    st.integers(0, 2**31),
    st.booleans(),
    st.booleans(),
)
def test_diff_matches_numpy(shape, seed, keras_first, negative):
    rng = np.random.default_rng(seed)
    keras_layout = rng.standard_normal(shape).astype(np.float32)
    # a's view in channels-first order, as compare() builds it from a channels-last capture
    ref = np.moveaxis(keras_layout, -1, 1) if len(shape) >= 3 else keras_layout
    other = np.ascontiguousarray(ref) + rng.standard_normal(ref.shape).astype(np.float32) * 1e-6
    spot = tuple(int(rng.integers(0, s)) for s in ref.shape)
    other[spot] += -0.5 if negative else 0.5  # one planted difference, either sign
    a, b = (ref, other) if keras_first else (other, ref)
    row = _diff("x", "T", a, b, _absmax(np.ascontiguousarray(a)), 1e-4, 1e-6, _Scratch())
    want_max, want_where = oracle(a, b)
    assert row.where == want_where == spot
    assert row.max_abs == pytest.approx(want_max, rel=1e-6)
    assert row.max_rel == pytest.approx(want_max / np.abs(a).max(), rel=1e-6)
    assert not row.ok


def test_diff_reports_nan_and_shape_mismatch():
    a = np.zeros((1, 2, 3, 3), np.float32)
    b = a.copy()
    b[0, 1, 2, 0] = np.nan
    row = _diff("x", "T", a, b, 0.0, 1e-4, 1e-6, _Scratch())
    assert np.isnan(row.max_abs) and row.where == (0, 1, 2, 0) and not row.ok
    row = _diff("x", "T", a, np.zeros((1, 2, 2, 3), np.float32), 0.0, 1e-4, 1e-6, _Scratch())
    assert not row.ok and "shapes differ" in row.note


def test_identical_and_all_zero_layers_pass():
    z = np.zeros((2, 4, 5, 5), np.float32)
    row = _diff("x", "T", z, z.copy(), 0.0, 1e-4, 1e-6, _Scratch())
    assert row.ok and row.max_abs == 0 and row.max_rel == 0


@pytest.mark.parametrize("case", ["max-late", "min-early", "nan", "tie", "batch-odd"])
def test_the_two_thread_measure_gives_the_one_thread_numbers(case):
    from xconv.comparison.core import _Scratch, _absmax, _diff, _measure

    rng = np.random.default_rng(3)
    n = 5 if case == "batch-odd" else 4
    raw = rng.standard_normal((n, 40, 60, 16)).astype(np.float32)  # channels-last, > 2**20 elements
    ref = raw.transpose(0, 3, 1, 2)  # the channels-first view compare measures
    other = np.ascontiguousarray(ref) + rng.standard_normal(ref.shape).astype(np.float32) * 1e-6
    if case == "max-late":
        other[n - 1, 7, 30, 2] -= 0.5
    elif case == "min-early":
        other[0, 3, 1, 5] += 0.5
    elif case == "nan":
        other[n - 1, 0, 0, 1] = np.nan
    elif case == "tie":
        other[1, 2, 3, 4] = ref[1, 2, 3, 4] - 0.25
        other[n - 1, 2, 3, 4] = ref[n - 1, 2, 3, 4] - 0.25
    got = _measure("l", "Conv2D", ref, other, raw, 1e-4, 1e-6, _Scratch())
    want = _diff("l", "Conv2D", ref, other, _absmax(raw), 1e-4, 1e-6, _Scratch())
    assert got.where == want.where and got.ok == want.ok and got.scale == want.scale
    assert (np.isnan(got.max_abs) and np.isnan(want.max_abs)) or got.max_abs == want.max_abs
    if case == "max-late":
        assert got.where == (n - 1, 7, 30, 2)
