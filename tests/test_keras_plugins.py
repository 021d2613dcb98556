"""The plug-in API: a user's Keras layer with a torch module of the user's own."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_keras

pytestmark = needs_keras


class TorchScaleShift(nn.Module):
    """The user's torch twin: x * scale + shift over channels (dim 1 of channels-first maps)."""

    def __init__(self, channels, clip):
        super().__init__()
        self.clip = clip
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.clamp(x * self.scale.view(shape) + self.shift.view(shape), max=self.clip)


def _keras_layer_class():
    import keras

    class ScaleShift(keras.layers.Layer):
        """A custom layer that tracing could read too; the plug-in takes precedence."""

        def __init__(self, clip=3.0, **kwargs):
            super().__init__(**kwargs)
            self.clip = clip

        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")
            self.shift = self.add_weight(shape=(shape[-1],), initializer="zeros", name="shift")

        def call(self, x):
            return keras.ops.minimum(x * self.scale + self.shift, self.clip)

        def get_config(self):
            return {**super().get_config(), "clip": self.clip}

    return ScaleShift


@pytest.fixture
def plugin():
    import xconv.keras_plugins as plugins

    cls = _keras_layer_class()
    family = plugins.register_layer(
        cls, TorchScaleShift, arguments=lambda layer: {"channels": int(layer.scale.shape[0]), "clip": layer.clip},
        weights={"scale": "scale", "shift": "shift"},
    )
    yield cls, family
    plugins.unregister_layer(cls)


def _model(cls):
    import keras

    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = cls(clip=0.5, name="scale_shift")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.normal(0, 0.5, tuple(v.shape)).astype("float32"))
    return model


def test_plugin_module_is_used_and_matches(plugin):
    from xconv import compare, keras_to_torch
    from xconv.translate import module_source

    cls, _ = plugin
    model = _model(cls)
    module = keras_to_torch(model)
    assert type(module.scale_shift).__name__ == "TorchScaleShift"  # not traced: the plug-in wins
    assert f"from {__name__} import TorchScaleShift" in module_source(model)
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype("float32")
    report = compare(model, module, x)
    assert report.ok, str(report)


def test_plugin_weights_move_with_transfer_weights_both_ways(plugin):
    from xconv import keras_to_torch, transfer_weights

    cls, family = plugin
    model = _model(cls)
    module = keras_to_torch(model)
    with torch.no_grad():
        module.scale_shift.scale.zero_()
    transfer_weights(model, module)
    want = model.get_layer("scale_shift").get_weights()[0]
    assert np.array_equal(module.scale_shift.scale.detach().numpy(), want)
    model2 = _model(cls)
    transfer_weights(module, model2)
    for a, b in zip(model.get_layer("scale_shift").get_weights(), model2.get_layer("scale_shift").get_weights()):
        assert a.tobytes() == b.tobytes()


def test_registering_twice_is_refused_and_unregister_forgets(plugin):
    import xconv.keras_plugins as plugins
    from xconv.errors import BadInputError

    cls, _ = plugin
    with pytest.raises(BadInputError, match="already has a converter"):
        plugins.register_layer(cls, TorchScaleShift)
    assert plugins.registered() == {"ScaleShift": "TorchScaleShift"}
