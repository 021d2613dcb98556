"""The Keras corpus itself: every case builds, runs, is seeded, has random weights and saves/loads.

The float64 checks back each ``has_float64=True`` flag with a probe that can fail: a float64
model responds linearly to an input step of 1e-10, one that casts activations to float32
does not (the bilinear-resize case shows the probe firing).
"""

import functools

import numpy as np
import pytest

from conftest import needs_keras

pytestmark = [needs_keras, pytest.mark.filterwarnings("ignore:`build\\(\\)` was called on layer:UserWarning")]
keras = pytest.importorskip("keras")

from .keras_blocks import (  # noqa: E402
    CUSTOM_CLASSES,
    MODELS,
    PACKAGE,
    build_model,
    randomize_weights,
    sample_inputs,
)

NAMES = sorted(MODELS)
FLOAT64 = sorted(n for n, c in MODELS.items() if c.has_float64)


@functools.cache
def built(name):
    return MODELS[name].build()


def run(model, xs):
    y = model(xs if len(xs) > 1 else xs[0], training=False)
    return [np.asarray(keras.ops.convert_to_numpy(a)) for a in (y if isinstance(y, (list, tuple)) else [y])]


def layer_class_names(model):
    # _flatten_layers is Keras's own walk over nested layers (public `layers` stops at the top level)
    return {type(layer).__name__ for layer in model._flatten_layers(include_self=True, recursive=True)}


def test_registry_entries_are_consistent():
    known = {cls.__name__ for cls in CUSTOM_CLASSES}
    assert len(MODELS) >= 25
    for name, case in MODELS.items():
        assert case.name == name
        assert set(case.custom_layers) <= known, name
        assert case.input_kind in ("float", "int")
        assert (case.vocab is not None) == (case.input_kind == "int"), name
        assert case.has_float64 or case.float64_reason, f"{name}: has_float64=False needs a reason"
        assert all(len(s) >= 2 for s in case.input_shapes + case.output_shapes), name


@pytest.mark.parametrize("cls", CUSTOM_CLASSES, ids=lambda c: c.__name__)
def test_custom_classes_are_registered(cls):
    key = f"{PACKAGE}>{cls.__name__}"
    assert keras.saving.get_registered_name(cls) == key
    assert keras.saving.get_registered_object(key) is cls


@pytest.mark.parametrize("name", NAMES)
def test_builds_runs_and_round_trips(name, tmp_path):
    case = MODELS[name]
    model = built(name)
    xs = sample_inputs(case)
    assert [x.shape for x in xs] == case.input_shapes
    ys = run(model, xs)
    assert [y.shape for y in ys] == case.output_shapes
    assert all(np.isfinite(y).all() for y in ys)
    assert all(y.dtype == np.float32 for y in ys)

    # the custom classes the case names are the ones inside it
    present = layer_class_names(model)
    assert set(case.custom_layers) == present & {cls.__name__ for cls in CUSTOM_CLASSES}

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.variables) == len(model.variables)
    for y, z in zip(ys, run(loaded, xs), strict=True):
        np.testing.assert_array_equal(z, y)


@pytest.mark.parametrize("name", NAMES)
def test_every_float_variable_is_randomised(name):
    model = built(name)
    floats = [v for v in model.variables if "float" in str(v.dtype)]
    assert floats
    for v in floats:
        value = np.asarray(keras.ops.convert_to_numpy(v))
        # random draws, not an initializer's constant (float32 draws may collide now and then)
        assert value.size == 1 or np.unique(value).size > value.size // 2, v.path
        assert not np.isin(value, [0.0, 1.0]).all(), v.path
        if v.name == "moving_variance":
            assert (value > 0).all(), v.path


def test_build_is_seeded():
    # two builds of the same case give the same weights and outputs, whatever ran in between
    case = MODELS["tiny_csp"]
    first = case.build()
    keras.utils.set_random_seed(12345)
    second = case.build()
    for a, b in zip(first.variables, second.variables, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_randomize_weights_changes_bn_statistics():
    layer = keras.layers.BatchNormalization()
    layer.build((None, 4))
    randomize_weights(layer, seed=3)
    mean, var = (keras.ops.convert_to_numpy(v) for v in (layer.moving_mean, layer.moving_variance))
    assert np.abs(mean).min() > 0 and (var != 1).all() and (var > 0).all()


def linearity(model, xs):
    """|f(x + e d) - f(x)| / e at e=1e-10 over the same at e=1e-6: 1 for float64 maths."""
    rng = np.random.default_rng(1)
    steps = [rng.standard_normal(x.shape) for x in xs]
    base = np.concatenate([y.ravel() for y in run(model, xs)])

    def slope(eps):
        moved = np.concatenate([y.ravel() for y in run(model, [x + eps * d for x, d in zip(xs, steps)])])
        return np.linalg.norm(moved - base) / eps

    return slope(1e-10) / slope(1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", FLOAT64)
def test_float64_build(name):
    case = MODELS[name]
    model = build_model(case, "float64")
    assert keras.config.floatx() == "float32"  # build_model restored the global setting
    xs = sample_inputs(case, dtype="float64")
    ys = run(model, xs)
    assert [y.shape for y in ys] == case.output_shapes
    assert all(y.dtype == np.float64 for y in ys)
    # same weights as the float32 build, so the two agree to float32 precision
    for y64, y32 in zip(ys, run(built(name), sample_inputs(case)), strict=True):
        np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    if case.input_kind == "float":
        assert linearity(model, xs) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow
def test_float64_probe_catches_a_float32_path():
    case = MODELS["fn_fpn_bilinear"]
    assert not case.has_float64
    model = build_model(case, "float64")
    assert abs(linearity(model, sample_inputs(case, dtype="float64")) - 1.0) > 0.1
