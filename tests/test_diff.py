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
