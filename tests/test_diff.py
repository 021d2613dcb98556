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


def test_an_infinite_value_on_one_side_is_a_mismatch():
    """An inf in the reference made the allowance (rtol * max |ref|) infinite: [1, inf, 2] against
    [1, 5, 100] passed. An infinite difference never passes, in either order, scale measured or given."""
    a = np.array([[1.0, np.inf, 2.0]], np.float32)
    b = np.array([[1.0, 5.0, 100.0]], np.float32)
    for ref, other in ((a, b), (b, a)):
        row = _diff("x", "T", ref, other, None, 1e-4, 1e-6, _Scratch())
        assert not row.ok and row.where == (0, 1), row
    assert not _diff("x", "T", a, b, float("inf"), 1e-4, 1e-6, _Scratch()).ok


def test_identical_and_all_zero_layers_pass():
    z = np.zeros((2, 4, 5, 5), np.float32)
    row = _diff("x", "T", z, z.copy(), 0.0, 1e-4, 1e-6, _Scratch())
    assert row.ok and row.max_abs == 0 and row.max_rel == 0


@pytest.mark.parametrize(
    "case", ["max-late", "min-early", "nan", "tie", "batch-odd", "batch-one", "both-channels-last", "tie-memory-order", "equal"]
)
def test_the_two_thread_measure_gives_the_one_thread_numbers(case):
    from xconv.comparison.core import _Scratch, _absmax, _diff, _measure

    rng = np.random.default_rng(3)
    n = {"batch-odd": 5, "batch-one": 1}.get(case, 4)
    c = 64 if case == "batch-one" else 16
    raw = rng.standard_normal((n, 40, 60, c)).astype(np.float32)  # channels-last, > 2**20 elements
    ref = raw.transpose(0, 3, 1, 2)  # the channels-first view compare measures
    other = np.ascontiguousarray(ref) + rng.standard_normal(ref.shape).astype(np.float32) * 1e-6
    if case == "both-channels-last":  # torch's conv output can be channels-last in memory too
        other = np.ascontiguousarray(np.moveaxis(other, 1, -1)).transpose(0, 3, 1, 2)
        other[2, 9, 33, 41] += 0.5
    elif case == "tie-memory-order":  # in channels-last memory (1, 0, 5, 2) comes first; in channels-first order (1, 0, 7, 1)
        other[1, 5, 0, 5] = ref[1, 5, 0, 5] - 0.25
        other[1, 0, 7, 1] = ref[1, 0, 7, 1] - 0.25
    elif case == "batch-one":  # one sample: the blocks, not the batch, are split between the threads
        other[0, 50, 20, 3] += 0.5
    elif case == "equal":
        other = ref.copy()
    if case == "max-late":
        other[n - 1, 7, 30, 2] -= 0.5
    elif case == "min-early":
        other[0, 3, 1, 5] += 0.5
    elif case == "nan":
        other[n - 1, 0, 0, 1] = np.nan
    elif case == "tie":
        other[1, 2, 3, 4] = ref[1, 2, 3, 4] - 0.25
        other[n - 1, 2, 3, 4] = ref[n - 1, 2, 3, 4] - 0.25
    got = _measure("l", "Conv2D", ref, other, 1e-4, 1e-6, _Scratch())
    want = _diff("l", "Conv2D", ref, other, _absmax(raw), 1e-4, 1e-6, _Scratch())
    assert got.where == want.where and got.ok == want.ok and got.scale == want.scale
    assert (np.isnan(got.max_abs) and np.isnan(want.max_abs)) or got.max_abs == want.max_abs
    if case != "nan":  # the plain NumPy reading of the same numbers: first place of the greatest difference
        d = np.ascontiguousarray(ref) - np.ascontiguousarray(other)
        hi, lo = float(d.max()), float(d.min())
        index = int(d.argmax()) if hi >= -lo else int(d.argmin())
        assert got.max_abs == max(hi, -lo) and got.where == tuple(int(i) for i in np.unravel_index(index, d.shape))
    else:
        assert got.where == (n - 1, 0, 0, 1)
    expected = {"max-late": (n - 1, 7, 30, 2), "min-early": (0, 3, 1, 5), "tie": (1, 2, 3, 4), "both-channels-last": (2, 9, 33, 41),
                "tie-memory-order": (1, 0, 7, 1), "equal": (0, 0, 0, 0), "batch-one": (0, 50, 20, 3)}  # fmt: skip
    if case in expected:
        assert got.where == expected[case]
    assert got.ok == (case in ("equal", "batch-odd"))


@pytest.mark.parametrize("view", ["scalar", "vector", "flipped", "strided", "integer", "channels-last-both"])
def test_measure_reads_any_view_as_the_oracle_does(view):
    from xconv.comparison.core import _measure

    rng = np.random.default_rng(5)
    base = rng.standard_normal((2, 12, 30, 9)).astype(np.float32)
    ref = {
        "scalar": np.float32(1.5) * np.ones((), np.float32),
        "vector": base.reshape(-1),
        "flipped": np.flip(base, axis=-1),  # negative strides: not a permuted contiguous array
        "strided": base[:, ::2, ::3],
        "integer": (base * 10).astype(np.int64),
        "channels-last-both": np.ascontiguousarray(np.moveaxis(base, 1, -1)).transpose(0, 3, 1, 2),
    }[view]
    other = np.asarray(ref) + rng.standard_normal(np.shape(ref)) * 1e-3
    if view == "channels-last-both":
        other = np.ascontiguousarray(np.moveaxis(other, 1, -1)).transpose(0, 3, 1, 2)
    row = _measure("x", "T", ref, other, 1e-4, 1e-6, _Scratch())
    want_max, want_where = oracle(np.asarray(ref), np.asarray(other))
    assert row.where == want_where and row.max_abs == pytest.approx(want_max, rel=1e-9)
    assert row.scale == _absmax(np.asarray(ref))
