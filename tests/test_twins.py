"""compare() on hand-written twins (tests/corpus/twins.py) with no align=: they match in float32
and float64, every planted bug is caught at the Keras layer where it first shows, and local mode
puts the start of the error there."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from conftest import needs_keras

pytestmark = needs_keras
twins = pytest.importorskip("corpus.twins")
TWINS = twins.TWINS


def _case(case: str, *values):
    """A parameter, marked xfail(strict=True) where the twin lists ``case`` as a known xconv failure."""
    twin = TWINS[values[0]]
    reason = twin.known.get(case) or twin.known.get("*")
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*values, marks=marks, id="-".join(values))


NAMES = [_case("float32", name) for name in TWINS]
PLANTS = [_case(f"bug:{kind}", name, kind) for name, twin in TWINS.items() for kind in twin.planted]
LOCAL = [_case(f"local:{kind}", name, kind) for name, twin in TWINS.items() for kind in twin.planted]
F64 = [_case("float64", name) for name, twin in TWINS.items() if twin.has_float64]


@functools.lru_cache(maxsize=None)
def _pair(name: str, dtype: str = "float32"):
    twin = TWINS[name]
    keras_model = twin.build_keras(dtype)
    return keras_model, twin.torch_for(keras_model)


def _sample(name: str, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(5).normal(size=TWINS[name].input_shape).astype(dtype)


@functools.lru_cache(maxsize=None)
def _good_report(name: str):
    from xconv import compare

    k, t = _pair(name)
    return compare(k, t, _sample(name))


@pytest.mark.parametrize("name", NAMES)
def test_twin_matches_without_align_in_float32(name):
    from xconv import compare

    k, t = _pair(name)
    report = compare(k, t, _sample(name))
    assert report.ok, str(report)
    assert report.capture == TWINS[name].capture
    compared = {r.name for r in report.layers}
    assert set(TWINS[name].pairs) <= compared, str(report)  # every layer with weights is measured


@pytest.mark.parametrize("name", F64)
def test_twin_matches_without_align_in_float64(name):
    from xconv import compare

    k, t = _pair(name, "float64")
    report = compare(k, t, _sample(name, "float64"), dtype="float64")
    rounding = TWINS[name].keras_float64_rounding
    if rounding:  # Keras computes that layer with a float32 constant: the outputs do differ, and the verdict says why
        assert not report.ok and report.first_divergence == rounding, str(report)
        verdict = report.verdict()
        assert "is Keras' rounding, not a bug of the port" in verdict and "look there" not in verdict, verdict
        return
    assert report.ok, str(report)
    assert max(r.max_rel for r in report.layers) <= 1e-10, str(report)


@pytest.mark.parametrize("name, kind", PLANTS)
def test_planted_bug_is_caught_where_it_first_shows(name, kind):
    from xconv import compare

    k, t = _pair(name)
    broken, layer = TWINS[name].planted[kind](t)
    report = compare(k, broken, _sample(name))
    assert not report.ok
    assert report.first_divergence == layer, str(report)
    # and the bug is what makes that layer fail: on the unbroken port the same layer passes
    good = {row.name: row for row in _good_report(name).layers}
    assert layer not in good or good[layer].ok, str(_good_report(name))


@pytest.mark.parametrize("name, kind", LOCAL)
def test_local_mode_puts_the_start_of_the_error_at_the_planted_layer(name, kind):
    from xconv import compare

    k, t = _pair(name)
    broken, layer = TWINS[name].planted[kind](t)
    report = compare(k, broken, _sample(name), mode="local")
    assert report.first_local_divergence == layer, str(report)
