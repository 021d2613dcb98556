"""Every keras.applications family translates to PyTorch and matches Keras, layer by layer.

Each model is built with ``include_top=True``, ``weights=None`` and logits out
(``classifier_activation=None``, so a softmax cannot hide a difference), at a small input size,
batch 1, with every weight randomised (BatchNorm statistics too, scaled by fan-in so that
activations stay near 1 through a hundred layers). One model of each family also runs in
float64, where a correct translation agrees to rounding level.
"""

import contextlib
import copy

import numpy as np
import pytest

from conftest import needs_keras

pytestmark = [needs_keras, pytest.mark.slow]

# the smallest input each family accepts (32 px where any size goes)
SIZES = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "NASNetMobile": 32, "NASNetLarge": 32, "NASNetMini": 32}

BUILDERS = [
    "ConvNeXtTiny", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet201",
    "EfficientNetB0", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2S", "EfficientNetV2L",
    "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large",
    "NASNetMobile", "NASNetLarge",
    "ResNet50", "ResNet152", "ResNet50V2", "ResNet152V2",
    "VGG16", "VGG19", "Xception",
]  # fmt: skip

# Sizes of one family made by the same builder function from the same block list, scaled in depth
# and width only (Keras' own code: convnext.ConvNeXt with other depths/dims, densenet.DenseNet with
# other block counts, EfficientNet(width, depth, ...) on one block list, EfficientNetV2 B1-B3 on B0's
# list and M between S and L, resnet.ResNet with other stack lengths). The smallest and the largest of
# each family run above; the sizes between them add no layer kind, block or option, only repeats, and
# took ~730 s of test time in a full loaded run (about 160 s of the idle wall clock with two workers).
SIZES_BETWEEN = {
    "ConvNeXtSmall": "ConvNeXtTiny", "ConvNeXtBase": "ConvNeXtTiny", "ConvNeXtLarge": "ConvNeXtXLarge",
    "DenseNet169": "DenseNet121",
    "EfficientNetB1": "EfficientNetB0", "EfficientNetB2": "EfficientNetB0", "EfficientNetB3": "EfficientNetB0",
    "EfficientNetB4": "EfficientNetB7", "EfficientNetB5": "EfficientNetB7", "EfficientNetB6": "EfficientNetB7",
    "EfficientNetV2B1": "EfficientNetV2B0", "EfficientNetV2B2": "EfficientNetV2B0", "EfficientNetV2B3": "EfficientNetV2B0",
    "EfficientNetV2M": "EfficientNetV2L",
    "ResNet101": "ResNet152", "ResNet101V2": "ResNet152V2",
}  # fmt: skip

# one model of each family in float64 strict mode. Where Keras has a configurable builder for the
# family, it runs small ("...Mini", see _builder): the same builder code, the same layer kinds
# and blocks, fewer and narrower; the float32 cases check each family's smallest and largest published size whole. Rounding-level
# agreement does not depend on the depth; at full size these seven took 253 s of test time in a
# full run on the loaded 2-core machine, about 50 s small, one by one on the same loaded machine
# (grouped convs and float64 kernels are slow in TF). The exact gelu has TF's float32
# constant inside, ~5e-9 off in float64 unless mimicked (see KerasGELU): ConvNeXtMini catches a
# planted exact constant (gelu 5.6e-9 off, first divergence at the first gelu).
FLOAT64 = [
    "ConvNeXtMini", "DenseNetMini", "EfficientNetMini", "EfficientNetV2Mini", "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "NASNetMini", "ResNetMini", "ResNetV2Mini", "VGG16", "Xception",
]  # fmt: skip


def test_the_list_is_every_builder():
    import keras

    assert sorted(BUILDERS + list(SIZES_BETWEEN)) == sorted(n for n in dir(keras.applications) if n[:1].isupper())
    assert set(SIZES_BETWEEN.values()) <= set(BUILDERS)


@contextlib.contextmanager
def _floatx(dtype):
    import keras

    # both: a global dtype policy that another test set (even back to "float32") outranks floatx
    before, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(before)
        keras.config.set_dtype_policy(policy)


def randomise(model, seed=0):
    """Every weight random: kernels scaled by fan-in, BatchNorm gamma/beta/mean/variance too."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape, short = tuple(v.shape), v.path.rsplit("/", 1)[-1]
        if "variance" in short:
            value = rng.uniform(0.5, 1.5, shape)
        elif short == "gamma" or len(shape) == 0:
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            value = rng.normal(0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[:-2] if "depthwise" in short else shape[:-1]))
            value = rng.normal(0, 1.0 / np.sqrt(max(fan_in, 1)), shape)
        v.assign(value.astype(v.dtype))
    for layer in model.layers:
        if hasattr(layer, "finalize_state"):  # Normalization computes with tensors derived from its weights
            layer.finalize_state()


def _builder(name):
    import keras

    if name == "ConvNeXtMini":
        from keras.src.applications.convnext import ConvNeXt

        return lambda **kw: ConvNeXt(depths=[1, 1, 1, 1], projection_dims=[8, 16, 32, 64], name="convnext_mini", **kw)
    if name == "DenseNetMini":  # DenseNet121's blocks, one per dense block
        from keras.src.applications.densenet import DenseNet

        return lambda **kw: DenseNet([1, 1, 1, 1], name="densenet_mini", **kw)
    if name == "EfficientNetMini":  # EfficientNetB0's block list at a quarter of its width and depth
        from keras.src.applications.efficientnet import EfficientNet

        return lambda **kw: EfficientNet(0.25, 0.25, 32, name="efficientnet_mini", **kw)
    if name == "EfficientNetV2Mini":  # EfficientNetV2B0's block list at a quarter of its width and depth
        from keras.src.applications.efficientnet_v2 import DEFAULT_BLOCKS_ARGS, EfficientNetV2

        blocks = copy.deepcopy(DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"])
        return lambda **kw: EfficientNetV2(0.25, 0.25, 32, blocks_args=blocks, name="efficientnetv2_mini", **kw)
    if name in ("ResNetMini", "ResNetV2Mini"):  # ResNet50('s V2) stacks: two blocks each, filters 8-64
        from keras.src.applications import resnet

        v2 = name == "ResNetV2Mini"
        stack = resnet.stack_residual_blocks_v2 if v2 else resnet.stack_residual_blocks_v1

        def stack_fn(x):  # as ResNet50 and ResNet50V2 write theirs: stride 1 first (v1) or last (v2)
            x = stack(x, 8, 2, name="conv2") if v2 else stack(x, 8, 2, stride1=1, name="conv2")
            x = stack(x, 16, 2, name="conv3")
            x = stack(x, 32, 2, name="conv4")
            return stack(x, 64, 2, stride1=1, name="conv5") if v2 else stack(x, 64, 2, name="conv5")

        return lambda **kw: resnet.ResNet(stack_fn, preact=v2, use_bias=True, name=name.lower(), **kw)
    if name == "NASNetMini":  # NASNetMobile's settings (no skip reduction) at 1 cell per stage, 4 filters
        from keras.src.applications.nasnet import NASNet

        return lambda **kw: NASNet(penultimate_filters=96, num_blocks=1, stem_block_filters=8, skip_reduction=False, filter_multiplier=2, default_size=32, name="nasnet_mini", **kw)
    return getattr(keras.applications, name)


def build(name, dtype="float32"):
    size = SIZES.get(name, 32)
    with _floatx(dtype):
        model = _builder(name)(weights=None, include_top=True, input_shape=(size, size, 3), classifier_activation=None)
    randomise(model)
    x = np.random.default_rng(1).uniform(0, 255, (1, size, size, 3)).astype(dtype)
    return model, x


def _check(name, dtype, worst):
    import torch

    from xconv import compare, keras_to_torch

    model, x = build(name, dtype)
    module = keras_to_torch(model)
    report = compare(model, module, x, dtype=dtype)
    assert report.ok, str(report)
    if dtype == "float64":  # every layer lined up and compared; only a nested model's container
        # (ConvNeXt's stem and downsampling Sequentials, whose layers are compared) is not a row
        containers = {l.name for l in model.layers if getattr(l, "layers", None)}
        assert [s for s in report.skipped if s[0] not in containers] == [], report.skipped
    want = np.asarray(model(x, training=False))
    with torch.no_grad():
        got = module(torch.from_numpy(np.moveaxis(x, -1, 1))).numpy()
    err = np.abs(got - want).max() / max(1.0, np.abs(want).max())
    assert err <= worst, f"{name} {dtype}: relative difference {err:.3e} of the logits"


@pytest.mark.parametrize("name", BUILDERS)
def test_application_matches_in_float32(name):
    _check(name, "float32", 1e-4)


@pytest.mark.parametrize("name", FLOAT64)
def test_application_matches_in_float64(name):
    _check(name, "float64", 1e-9)
