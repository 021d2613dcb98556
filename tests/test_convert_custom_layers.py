"""convert with custom Keras layers whose calls read their own weights (``x * self.gamma``).

A traced custom layer's weights reach the weight map like a built-in layer's kernel: the torch
tensor names its Keras weight in the manifest, and torch -> Keras fills that weight from the
file. A value the layer computes from its weight is a constant of the architecture: checked
against the file, never silently replaced by the architecture's.
"""

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv.convert import convert_file
from xconv.errors import MismatchedModelsError

pytestmark = needs_keras


def _layers():
    import keras
    from keras import ops

    class Scale(keras.layers.Layer):  # a weight of its own, broadcast over the channels
        def build(self, shape):
            self.gamma = self.add_weight(name="gamma", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.gamma

    class ProjectShift(keras.layers.Layer):  # a sublayer and a weight of its own, both read in call
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.units = units
            self.proj = keras.layers.Dense(units, name="proj")

        def get_config(self):
            return {**super().get_config(), "units": self.units}

        def build(self, shape):
            self.proj.build(shape)
            self.shift = self.add_weight(name="shift", shape=(self.proj.units,), initializer="zeros")

        def call(self, x):
            return self.proj(x) + self.shift

    class Running(keras.layers.Layer):  # a non-trainable float state, saved with the weights
        def build(self, shape):
            self.mean = self.add_weight(name="mean", shape=(shape[-1],), initializer="zeros", trainable=False)

        def call(self, x):
            return x - self.mean

    class ExpScale(keras.layers.Layer):  # computes with its weight: exp(log_scale) is no tensor of the file
        def build(self, shape):
            self.log_scale = self.add_weight(name="log_scale", shape=(shape[-1],), initializer="zeros")

        def call(self, x):
            return x * ops.exp(self.log_scale)

    return Scale, ProjectShift, Running, ExpScale


def _model(*extra):
    import keras

    Scale, ProjectShift, Running, _ = _layers()
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = Scale(name="scale")(x)
    x = Running(name="running")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = ProjectShift(5, name="head")(x)
    for layer in extra:
        x = layer(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.standard_normal(tuple(v.shape)).astype("float32"))
    return model


def _values(model):
    return {v.path: np.array(v.numpy()) for v in model.weights}


def test_custom_layer_weights_are_mapped_and_filled_back(tmp_path):
    model = _model()
    arch = tmp_path / "arch.weights.h5"
    model.save_weights(arch)
    manifest = convert_file(arch, tmp_path / "m.pt", arch=_saved(model, tmp_path))
    sources = {e.target: e.source for e in manifest.entries}
    assert sources["scale.gamma"] == "scale/gamma"
    assert sources["running.mean"] == "running/mean"
    assert sources["head.shift"] == "head/shift"
    assert "(constant)" not in sources.values()

    state = torch.load(tmp_path / "m.pt", weights_only=True)
    np.testing.assert_array_equal(state["scale.gamma"].numpy().reshape(-1), model.get_layer("scale").gamma.numpy())
    changed = {k: v + 1.5 for k, v in state.items()}  # every value moves: any weight not filled back shows
    torch.save(changed, tmp_path / "changed.pt")
    convert_file(tmp_path / "changed.pt", tmp_path / "back.weights.h5", arch=_saved(model, tmp_path))

    fresh = _model()
    fresh.load_weights(tmp_path / "back.weights.h5")
    before, after = _values(model), _values(fresh)
    assert before.keys() == after.keys()
    for path in before:
        np.testing.assert_array_equal(after[path], before[path] + np.float32(1.5), err_msg=path)


def test_a_weight_the_layer_computes_with_is_checked_not_filled(tmp_path):
    """``x * ops.exp(self.log_scale)``: the module holds exp(log_scale), a constant of the
    architecture. Unchanged in the file, it goes back (the architecture's log_scale is what made
    it); changed, xconv cannot invert it and stops, naming the tensor, with nothing written."""
    *_, ExpScale = _layers()
    model = _model(ExpScale(name="exp_scale"))
    arch = _saved(model, tmp_path)
    convert_file(arch, tmp_path / "m.pt")
    convert_file(tmp_path / "m.pt", tmp_path / "same.weights.h5", arch=arch)
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    key = next(k for k in state if k.startswith("exp_scale."))
    state[key] = state[key] * 2
    torch.save(state, tmp_path / "changed.pt")
    with pytest.raises(MismatchedModelsError, match=key.replace(".", r"\.")):
        convert_file(tmp_path / "changed.pt", tmp_path / "back.weights.h5", arch=arch)
    assert not (tmp_path / "back.weights.h5").exists()


def _saved(model, tmp_path):
    """``model`` as a .keras file, loadable here: its custom classes registered for the load."""
    import keras

    path = tmp_path / "arch.keras"
    if not path.exists():
        for cls in {type(layer) for layer in model.layers}:
            if cls.__module__ == __name__:
                keras.saving.get_custom_objects()[cls.__name__] = cls
        model.save(path)
    return str(path)


def test_a_normalization_layer_round_trips_through_its_computed_constants(tmp_path):
    """keras.layers.Normalization (EfficientNet's stem) becomes constants computed from its mean
    and variance: torch -> Keras checks them and keeps the architecture's statistics."""
    import keras

    inp = keras.Input((6, 6, 3))
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).random((10, 6, 6, 3)).astype("float32"))  # mean and variance as weights
    assert {v.path.split("/")[-1] for v in norm.weights} >= {"mean", "variance"}
    x = keras.layers.Conv2D(4, 3, name="conv")(norm(inp))
    model = keras.Model(inp, x)
    model.save(tmp_path / "n.keras")
    convert_file(tmp_path / "n.keras", tmp_path / "n.pt")
    state = torch.load(tmp_path / "n.pt", weights_only=True)
    state["conv.weight"] = state["conv.weight"] + 1
    torch.save(state, tmp_path / "tuned.pt")
    convert_file(tmp_path / "tuned.pt", tmp_path / "back.weights.h5", arch=str(tmp_path / "n.keras"))
    model.load_weights(tmp_path / "back.weights.h5")
    np.testing.assert_array_equal(model.get_layer("conv").kernel.numpy().transpose(3, 2, 0, 1), state["conv.weight"].numpy())
