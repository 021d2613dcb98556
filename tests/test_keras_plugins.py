"""The plug-in API: a user's Keras layer with a torch module of the user's own, both directions."""

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
        keras_arguments=lambda module: {"clip": module.clip},
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
    want, got = model.get_layer("scale_shift").get_weights(), model2.get_layer("scale_shift").get_weights()
    assert len(want) == len(got) == 2
    for a, b in zip(want, got):
        assert a.tobytes() == b.tobytes()


def test_registering_twice_is_refused_and_unregister_forgets(plugin):
    import xconv.keras_plugins as plugins
    from xconv.errors import BadInputError

    cls, _ = plugin
    with pytest.raises(BadInputError, match="already has a converter"):
        plugins.register_layer(cls, TorchScaleShift)
    assert plugins.registered() == {"ScaleShift": "TorchScaleShift"}


# --- PyTorch -> Keras: a custom torch module kept whole -------------------------------------------


class TorchGain(nn.Module):
    """A module with an op xconv has no converter for (atan): only a registration translates it."""

    def __init__(self, channels):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.atan(x) * self.gain.view(shape)


def _keras_gain_class():
    import keras

    class Gain(keras.layers.Layer):
        def build(self, shape):
            self.gain = self.add_weight(shape=(shape[-1],), initializer="ones", name="gain")

        def call(self, x):
            return keras.ops.arctan(x) * self.gain

    return Gain


class GainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gain = TorchGain(4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.gain(self.conv(x)))


def _gain_net():
    torch.manual_seed(0)
    net = GainNet().eval()
    with torch.no_grad():
        net.gain.gain.copy_(torch.randn(4))
    return net


@pytest.fixture
def gain_plugin():
    import xconv

    cls = _keras_gain_class()
    family = xconv.register_layer(cls, TorchGain, arguments=lambda layer: {"channels": int(layer.gain.shape[0])},
                                  weights={"gain": "gain"})  # fmt: skip
    yield cls, family
    xconv.keras_plugins.unregister_layer(cls)


def test_a_custom_torch_module_needs_its_registration():
    from xconv import torch_to_keras
    from xconv.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match=r"aten::atan.*module 'gain' TorchGain"):
        torch_to_keras(_gain_net(), (3, 8, 8))


def test_a_registered_torch_module_becomes_the_users_keras_layer_and_matches(gain_plugin):
    from xconv import compare, torch_to_keras

    cls, _ = gain_plugin
    net = _gain_net()
    model = torch_to_keras(net, (3, 8, 8))
    assert type(model.get_layer("gain")) is cls  # kept whole: one layer of the user's, not atan and mul ops
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    report = compare(model, net, x)
    assert report.ok, str(report)
    assert "gain" in [row.name for row in report.layers]
    # a planted bug (one gain wrong) is caught and named
    model.get_layer("gain").gain.assign(net.gain.gain.detach().numpy() * np.array([1, 1, 1, 1.5], "float32"))
    bad = compare(model, net, x)
    assert not bad.ok and bad.first_divergence == "gain"


def test_a_registered_converter_takes_precedence_over_decomposition(plugin):
    from xconv import torch_to_keras

    cls, _ = plugin
    net = nn.Sequential(nn.Conv2d(3, 4, 3), TorchScaleShift(4, 0.5)).eval()
    model = torch_to_keras(net, (3, 6, 6))
    assert type(model.get_layer("1")) is cls and model.get_layer("1").clip == 0.5
    assert not any("clamp" in l.name or "mul" in l.name for l in model.layers)  # no op of its forward
    from xconv.keras_plugins import unregister_layer

    unregister_layer(cls)
    try:
        decomposed = torch_to_keras(net, (3, 6, 6))  # without it: the ops of forward, translated
        assert not any(type(l) is cls for l in decomposed.layers)
    finally:
        import xconv.keras_plugins as plugins

        plugins.register_layer(cls, TorchScaleShift, arguments=lambda layer: {"channels": 4, "clip": layer.clip},
                               keras_arguments=lambda m: {"clip": m.clip}, weights={"scale": "scale", "shift": "shift"})  # fmt: skip


def test_weights_round_trip_keras_torch_keras_bit_exactly(plugin):
    from xconv import keras_to_torch, torch_to_keras

    cls, _ = plugin
    model = _model(cls)
    module = keras_to_torch(model)
    back = torch_to_keras(module, (3, 6, 6))
    assert type(back.get_layer("scale_shift")) is cls
    want = {v.path: v.numpy() for v in model.weights}
    got = {v.path: v.numpy() for v in back.weights}
    assert len(want) == len(got) == 4 and set(want) == set(got)
    for key in want:
        assert want[key].tobytes() == got[key].tobytes(), key


def test_transfer_weights_moves_a_translated_modules_weights_both_ways(gain_plugin):
    from xconv import torch_to_keras, transfer_weights

    net = _gain_net()
    model = torch_to_keras(net, (3, 8, 8))
    model.get_layer("gain").gain.assign(np.zeros(4, "float32"))
    manifest = transfer_weights(net, model)
    assert "gain.gain" in [e.source for e in manifest.entries]
    assert model.get_layer("gain").gain.numpy().tobytes() == net.gain.gain.detach().numpy().tobytes()
    other = _gain_net()
    with torch.no_grad():
        other.gain.gain.zero_()
    transfer_weights(model, other)
    assert other.gain.gain.detach().numpy().tobytes() == net.gain.gain.detach().numpy().tobytes()


class RowNorm(nn.Module):
    """A hand-written LayerNorm over the last dim, with weights of its own."""

    def __init__(self, features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(features))
        self.b = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.g + self.b


def test_register_module_to_a_builtin_keras_layer_matches_and_transfers():
    import keras

    import xconv
    from xconv.keras_plugins import unregister_module

    def build(eps, name, dtype):
        return keras.layers.LayerNormalization(epsilon=eps, name=name, dtype=dtype)

    xconv.register_module(RowNorm, build, arguments=lambda m: {"eps": m.eps}, weights={"gamma": "g", "beta": "b"}, layout="keras")
    try:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 6), RowNorm(6)).eval()
        with torch.no_grad():
            net[1].g.normal_()
            net[1].b.normal_()
        model = xconv.torch_to_keras(net, (5,))
        assert type(model.get_layer("1")).__name__ == "LayerNormalization"
        x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
        report = xconv.compare(model, net, x)
        assert report.ok, str(report)
        model.get_layer("1").gamma.assign(np.ones(6, "float32"))
        xconv.transfer_weights(net, model)
        assert model.get_layer("1").gamma.numpy().tobytes() == net[1].g.detach().numpy().tobytes()
    finally:
        unregister_module(RowNorm)


def test_bad_registrations_are_refused_clearly():
    import keras

    import xconv
    from xconv.errors import BadInputError, XconvError

    cls = _keras_gain_class()
    with pytest.raises(BadInputError, match=r"register_layer\('Gain'\): torch_module must be an nn.Module subclass"):
        xconv.register_layer(cls, TorchGain(3))
    with pytest.raises(BadInputError, match="layout must be 'channels_first' or 'keras'; received 'nchw'"):
        xconv.register_layer(cls, TorchGain, layout="nchw")
    with pytest.raises(BadInputError, match=r"weights must be None, a dict .* received list"):
        xconv.register_layer(cls, TorchGain, weights=["gain"])
    with pytest.raises(BadInputError, match="pass the layer class, not its name"):
        xconv.register_layer("Gain", TorchGain, keras_arguments=lambda m: {})
    with pytest.raises(BadInputError, match="keras_layer must be a Keras layer class or a function"):
        xconv.register_module(TorchGain, "Gain")
    with pytest.raises(BadInputError, match="No plug-in is registered for torch module type 'TorchGain'"):
        xconv.keras_plugins.unregister_module(TorchGain)
    assert xconv.keras_plugins.registered() == {} and xconv.keras_plugins.registered_modules() == {}
    # a wrong weight map is named at translation time, with the module and both sets of names
    xconv.register_layer(cls, TorchGain, arguments=lambda layer: {"channels": 4}, weights={"scale": "gain"})
    try:
        with pytest.raises(XconvError, match=r"module 'gain'.*gives Keras weights \['scale'\], but the Keras layer has \['gain'\]"):
            xconv.torch_to_keras(_gain_net(), (3, 8, 8))
        with pytest.raises(BadInputError, match="'TorchGain' already has a converter to Keras"):
            xconv.register_module(TorchGain, keras.layers.Identity)
        with pytest.raises(BadInputError, match=r"registered both ways by register_layer\('Gain'\); call unregister_layer\('Gain'\) first"):
            xconv.register_module(TorchGain, keras.layers.Identity, replace=True)
        assert xconv.keras_plugins.registered_modules() == {"TorchGain": "Gain"}  # the refusal changed nothing
    finally:
        xconv.keras_plugins.unregister_layer(cls)


def test_xconv_convert_moves_a_plugin_modules_weights_both_ways(gain_plugin, tmp_path):
    """``xconv convert`` with the user's module (--module): .pt -> .weights.h5 and .keras -> .pt."""
    import keras

    from xconv import torch_to_keras
    from xconv.convert import convert_file

    cls, _ = gain_plugin
    keras.saving.register_keras_serializable(package="xconv_test_plugins")(cls)
    net = _gain_net()
    model = torch_to_keras(net, (3, 8, 8))
    model.save(tmp_path / "model.keras")  # net's weights
    model.get_layer("gain").gain.assign(np.zeros(4, "float32"))
    model.save(tmp_path / "arch.keras")  # the architecture, its gain zero: what comes back is net.pt's
    torch.save(net.state_dict(), tmp_path / "net.pt")
    manifest = convert_file(tmp_path / "net.pt", tmp_path / "out.weights.h5", arch=str(tmp_path / "arch.keras"),
                            module=f"{__name__}:GainNet")  # fmt: skip
    assert "gain.gain" in [e.source for e in manifest.entries]
    fresh = torch_to_keras(_gain_net(), (3, 8, 8))
    fresh.get_layer("gain").gain.assign(np.zeros(4, "float32"))
    fresh.load_weights(tmp_path / "out.weights.h5")
    assert fresh.get_layer("gain").gain.numpy().tobytes() == net.gain.gain.detach().numpy().tobytes()
    convert_file(tmp_path / "model.keras", tmp_path / "back.pt", module=f"{__name__}:GainNet")  # into a fresh GainNet
    state = torch.load(tmp_path / "back.pt")
    assert state["gain.gain"].numpy().tobytes() == net.gain.gain.detach().numpy().tobytes()
