"""lint(): each planted trap is found, with both layer names and the fix; correct twins give nothing."""

import pytest
import torch
from torch import nn

from conftest import needs_keras
from xconv import keras_to_torch, lint, layouts, transfer_weights, zoo
from xconv.cli.main import main

pytestmark = needs_keras
keras = pytest.importorskip("keras")
L = keras.layers


@pytest.mark.parametrize("name", zoo.names())
def test_correct_twins_have_no_findings(name):
    k = zoo.build(name, "keras", random_biases=True)
    t = zoo.build(name, "torch")
    transfer_weights(k, t)
    assert lint(k, t) == []
    assert lint(k, keras_to_torch(k)) == []


def seq(shape, *layers):
    return keras.Sequential([keras.Input(shape), *layers])


def named(**modules):
    m = nn.Module()
    for key, value in modules.items():
        m.add_module(key, value)
    return m


def traps(k, t):
    return {f.trap: f for f in lint(k, t)}


def test_even_kernel_same_padding_made_symmetric():
    k = zoo.build("unet_encoder", "keras")
    t = zoo.build("unet_encoder", "torch")
    t.conv4_2_pad = nn.Identity()
    t.conv4_2.padding = (1, 1)
    f = traps(k, t)["even-kernel 'same' padding"]
    assert (f.keras_layer, f.torch_module) == ("conv4_2", "conv4_2")
    assert "(1, 2)" in f.message and "nn.ZeroPad2d((1, 2, 1, 2))" in f.fix


def test_strided_same_and_valid_padding():
    k = seq((10, 10, 2), L.Conv2D(3, 3, strides=2, padding="same", name="c"), L.Conv2D(3, 3, name="v"))
    t = named(c=nn.Conv2d(2, 3, 3, stride=2, padding=1), v=nn.Conv2d(3, 3, 3, padding=1))
    found = traps(k, t)
    assert found["'same' padding with stride > 1"].keras_layer == "c"  # TF pads (0, 1) on 10 pixels, the port (1, 1)
    assert found["'valid' padding"].torch_module == "v"


def test_batchnorm_epsilon_and_momentum():
    k = seq((4, 4, 3), L.Conv2D(2, 1, name="c"), L.BatchNormalization(name="bn"))
    t = named(c=nn.Conv2d(3, 2, 1), bn=nn.BatchNorm2d(2))
    found = traps(k, t)
    assert "eps=0.001" in found["BatchNorm epsilon"].fix
    assert "momentum=0.01" in found["BatchNorm momentum"].fix


def test_activation_traps():
    k = seq((6,), L.Dense(4, activation="gelu", name="d"), L.LeakyReLU(name="leaky"), L.LayerNormalization(name="ln"), L.Dense(3, name="o"), L.Softmax(name="sm"))
    t = named(d=nn.Linear(6, 4), d__act=nn.GELU(approximate="tanh"), leaky=nn.LeakyReLU(), ln=nn.LayerNorm(4), o=nn.Linear(4, 3), sm=nn.Softmax(dim=0))
    found = traps(k, t)
    assert found["GELU approximation"].torch_module == "d__act"
    assert "nn.LeakyReLU(0.3)" in found["LeakyReLU slope"].fix
    assert "eps=0.001" in found["LayerNorm epsilon"].fix
    assert "dim=1" in found["softmax axis"].fix


def test_resampling_and_pooling_traps():
    k = seq((6, 6, 2), L.UpSampling2D(2, interpolation="bilinear", name="up"), L.AveragePooling2D(3, strides=1, padding="same", name="avg"),
            L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1, name="tr"))  # fmt: skip
    t = named(up=nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), avg=nn.AvgPool2d(3, 1, padding=1), tr=nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1))
    found = traps(k, t)
    assert found["bilinear align_corners"].torch_module == "up"
    assert "count_include_pad=False" in found["average-pool padding counting"].fix
    assert "output_padding=(1, 1)" in found["ConvTranspose output_padding"].fix


def test_flatten_order_before_dense():
    k = zoo.build("conv3d_demo", "keras", random_biases=True)
    t = zoo.build("conv3d_demo", "torch")
    transfer_weights(k, t)
    with torch.no_grad():
        t.dense_a.weight.copy_(torch.from_numpy(layouts.dense_kernel_to_torch(k.get_layer("dense_a").get_weights()[0])))
    f = traps(k, t)["Flatten order before Dense"]
    assert f.keras_layer == "dense_a" and "transfer_weights" in f.fix
    t.dense_b_softmax = nn.Softmax(dim=0)
    assert "softmax axis" in traps(k, t)


def test_cli_lint(capsys):
    assert main(["lint", "zoo:conv3d_demo"]) == 0
    assert "0 finding(s)" in capsys.readouterr().out


# ---- hand-written twins (tests/corpus/twins.py): explicit padding in every style, no false alarms

_twins = pytest.importorskip("corpus.twins")
_PADDING = [(n, kind) for n, tw in _twins.TWINS.items() for kind in tw.planted if kind in ("padding", "padding_even", "flatten_order")]


@pytest.mark.parametrize("name", list(_twins.TWINS))
def test_hand_written_ports_raise_no_false_alarm(name):
    twin = _twins.TWINS[name]
    k = twin.build_keras()
    # the ports keep torch's BatchNorm momentum (a training trap, rightly named); nothing else is wrong
    assert {f.trap for f in lint(k, twin.torch_for(k))} <= {"BatchNorm momentum"}


@pytest.mark.parametrize("name", list(_twins.TWINS))
def test_translations_of_the_twins_raise_no_false_alarm(name):
    from xconv.errors import UnsupportedLayerError

    k = _twins.TWINS[name].build_keras()
    try:
        translated = keras_to_torch(k)
    except UnsupportedLayerError as exc:  # a twin with a Lambda layer: no translation to lint
        pytest.skip(f"keras_to_torch does not translate this twin: {str(exc)[:120]}")
    assert lint(k, translated) == []


def test_a_conv_that_pads_by_reflection_is_named():
    k = seq((8, 8, 2), L.Conv2D(3, 3, padding="same", name="conv"))
    t = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"))
    found = lint(k, t)
    assert [(f.trap, f.keras_layer) for f in found] == [("padding mode", "conv")] and "padding_mode='zeros'" in found[0].fix
    assert lint(k, nn.Sequential(nn.Conv2d(2, 3, 3, padding=1))) == []
    valid = seq((8, 8, 2), L.Conv2D(3, 3, padding="valid", name="conv"))
    assert lint(valid, nn.Sequential(nn.Conv2d(2, 3, 3, padding_mode="reflect"))) == []  # no padding: the mode does not matter


@pytest.mark.parametrize("name, kind", _PADDING)
def test_planted_padding_and_flatten_bugs_are_found_at_their_layer(name, kind):
    twin = _twins.TWINS[name]
    k = twin.build_keras()
    broken, layer = twin.planted[kind](twin.torch_for(k))
    found = [f for f in lint(k, broken) if f.trap != "BatchNorm momentum"]
    assert [f.keras_layer for f in found] == [layer], [str(f) for f in found]


def test_explicit_padding_in_a_sequential_is_read_from_the_graph():
    k = seq((8, 8, 2), L.Conv2D(3, 3, strides=2, padding="same", name="down"))
    good = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(2, 3, 3, stride=2))
    assert lint(k, good) == []
    bad = nn.Sequential(nn.ZeroPad2d((1, 0, 1, 0)), nn.Conv2d(2, 3, 3, stride=2))
    (f,) = lint(k, bad)
    assert f.trap == "'same' padding with stride > 1" and f.torch_module == "1" and "nn.ZeroPad2d((0, 1, 0, 1))" in f.fix


def test_rules_are_a_list_new_rules_join_it():
    from xconv import linting
    from xconv.linting import Finding

    def no_dense_named_x(ctx):
        return [Finding("named x", l.name, t, "a Dense called x.", "rename it.") for l, t, _ in ctx.pairs if l.name == "x"]

    k = seq((4,), L.Dense(2, name="x"))
    linting.rule(no_dense_named_x)
    try:
        assert [f.trap for f in lint(k, named(x=nn.Linear(4, 2)))] == ["named x"]
        with pytest.raises(ValueError, match="registered twice"):
            linting.rule(no_dense_named_x)
    finally:
        linting.RULES.remove(no_dense_named_x)
