"""The reference models: one spec, two frameworks, the spec's names, shapes and parameter counts."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_keras
from xconv import zoo
from xconv.errors import BadInputError

# output shapes from REFERENCE_MODELS.md (channels-last, no batch)
EXPECTED_SHAPES = {
    "unet_encoder": {
        "conv1_1": (200, 200, 64), "conv1_2": (200, 200, 64), "pool1": (100, 100, 64),
        "conv2_1": (100, 100, 96), "conv2_2": (100, 100, 96), "pool2": (50, 50, 96),
        "conv3_1": (50, 50, 128), "conv3_2": (50, 50, 128), "pool3": (25, 25, 128),
        "conv4_1": (25, 25, 256), "conv4_2": (25, 25, 256), "pool4": (12, 12, 256),
        "conv5_1": (12, 12, 512), "conv5_2": (12, 12, 512),
    },
    "single_conv": {"conv_1": (64, 160, 96)},
    "single_conv_rgb": {"conv_1": (28, 28, 64)},
    "two_conv": {"conv1": (25, 25, 4), "conv2": (25, 25, 6)},
    "conv3d_demo": {
        "conv3d_a": (56, 56, 1, 2), "conv3d_b": (56, 56, 1, 4), "conv3d_c": (56, 56, 1, 2),
        "flatten": (6272,), "dense_a": (100,), "dense_b": (17,),
    },
}  # fmt: skip
PARAMS = {"unet_encoder": 5_384_832, "single_conv": 2_496, "single_conv_rgb": 4_864, "two_conv": 326, "conv3d_demo": 629_511}


def test_names():
    assert set(zoo.names()) == set(EXPECTED_SHAPES)


@pytest.mark.parametrize("name", zoo.names())
def test_torch_twin_param_count_and_names(name):
    model = zoo.build(name, "torch")
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name] == zoo.spec(name).params
    modules = dict(model.named_modules())
    for layer in EXPECTED_SHAPES[name]:
        assert layer in modules


@needs_keras
@pytest.mark.parametrize("name", zoo.names())
def test_keras_model_param_count_names_and_shapes(name):
    model = zoo.build(name, "keras")
    assert model.count_params() == PARAMS[name]
    shapes = {l.name: tuple(l.output.shape[1:]) for l in model.layers if type(l).__name__ != "InputLayer"}
    assert shapes == EXPECTED_SHAPES[name]


@pytest.mark.parametrize("name", zoo.names())
def test_torch_twin_output_shapes_follow_the_spec(name):
    model = zoo.build(name, "torch")
    x = torch.from_numpy(zoo.sample_input(name, 2, layout="torch"))
    seen = {}
    for layer in EXPECTED_SHAPES[name]:
        target = model.xconv_outputs[layer]
        dict(model.named_modules())[target].register_forward_hook(
            lambda m, i, o, layer=layer: seen.__setitem__(layer, tuple(o.shape[1:]))
        )
    with torch.no_grad():
        model(x)
    for layer, shape in EXPECTED_SHAPES[name].items():
        want = shape if len(shape) == 1 else (shape[-1], *shape[:-1])
        assert seen[layer] == want, layer


def test_conv_submodules_are_the_plain_torch_layers():
    unet = zoo.build("unet_encoder", "torch")
    modules = dict(unet.named_modules())
    assert type(modules["conv4_2"]) is nn.Conv2d
    assert modules["conv4_2"].weight.shape == (256, 256, 4, 4)
    # the even kernel's 'same' padding is explicit and asymmetric: (left, right, top, bottom)
    assert modules["conv4_2_pad"].padding == (1, 2, 1, 2)
    assert modules["conv4_2"].padding == (0, 0)
    assert modules["conv1_1"].padding == (2, 2)
    demo = dict(zoo.build("conv3d_demo", "torch").named_modules())
    assert type(demo["conv3d_a"]) is nn.Conv3d and demo["conv3d_a"].weight.shape == (2, 1, 3, 3, 3)
    assert demo["conv3d_a"].stride == (4, 4, 4) and demo["conv3d_a"].padding == (0, 0, 0)
    assert type(demo["dense_a"]) is nn.Linear and demo["dense_a"].weight.shape == (100, 6272)


@pytest.mark.parametrize("name", ["unet_encoder", "conv3d_demo"])
def test_torch_twins_contain_no_layout_transposes(name):
    graph = torch.fx.symbolic_trace(zoo.build(name, "torch")).graph
    ops = {str(n.target) for n in graph.nodes if n.op in ("call_function", "call_method")}
    assert not ops & {"permute", "transpose", "movedim", "<built-in method permute of type object>"}, ops
    assert not [n for n in graph.nodes if "permute" in str(n.target) or "transpose" in str(n.target)]


def test_unet_returns_the_five_skip_outputs_in_order():
    out = zoo.build("unet_encoder", "torch")(torch.from_numpy(zoo.sample_input("unet_encoder", layout="torch")))
    assert [tuple(o.shape) for o in out] == [(1, 512, 12, 12), (1, 256, 25, 25), (1, 128, 50, 50), (1, 96, 100, 100), (1, 64, 200, 200)]


def test_smiley_ships_with_the_package():
    s = zoo.smiley()
    assert s.shape == (25, 25) and set(np.unique(s)) == {0.0, 1.0}
    x = zoo.sample_input("two_conv", 3)
    assert x.shape == (3, 25, 25, 1) and np.array_equal(x[2, :, :, 0], s)


def test_seeded_builds_are_reproducible_and_leave_the_global_rng_alone():
    torch.manual_seed(7)
    before = torch.rand(1)
    torch.manual_seed(7)
    a = zoo.build("two_conv", "torch", seed=3)
    after = torch.rand(1)
    b = zoo.build("two_conv", "torch", seed=3)
    assert torch.equal(before, after)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_random_biases_are_not_zero():
    model = zoo.build("unet_encoder", "torch", random_biases=True)
    assert float(dict(model.named_modules())["conv3_1"].bias.detach().abs().min()) > 0


@pytest.mark.parametrize("call", [lambda: zoo.build("resnet"), lambda: zoo.build("two_conv", "jax"), lambda: zoo.build("two_conv", dtype="int8")])
def test_bad_zoo_requests(call):
    with pytest.raises(BadInputError):
        call()
