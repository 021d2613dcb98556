"""The reference models, each written ONCE as data; both frameworks are built from these specs.

Shapes are channels-last (Keras) without the batch axis; the layer names are part of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a reference model, framework-free: its op and hyper-parameters."""

    name: str
    op: str  # 'conv' | 'maxpool' | 'flatten' | 'dense'
    units: int = 0  # filters for a conv, units for a dense layer
    kernel: tuple[int, ...] = ()
    strides: int = 1
    padding: str = "valid"
    activation: str | None = None
    kernel_init: str = "glorot_uniform"
    bias_init: str = "zeros"


@dataclass(frozen=True)
class ModelSpec:
    """A reference model: input shape (channels-last, no batch), layers, outputs."""

    name: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    outputs: tuple[str, ...]
    params: int  # the reference figure, checked by the tests
    summary: str


def _conv(name, filters, k, rank=2, **kw) -> LayerSpec:
    return LayerSpec(name, "conv", filters, (k,) * rank, padding=kw.pop("padding", "same"), activation=kw.pop("activation", "relu"), **kw)


def _pool(name, rank=2) -> LayerSpec:
    return LayerSpec(name, "maxpool", kernel=(2,) * rank, strides=2)


_UNET = (
    _conv("conv1_1", 64, 5), _conv("conv1_2", 64, 5), _pool("pool1"),
    _conv("conv2_1", 96, 3), _conv("conv2_2", 96, 3), _pool("pool2"),
    _conv("conv3_1", 128, 3), _conv("conv3_2", 128, 3), _pool("pool3"),
    _conv("conv4_1", 256, 3), _conv("conv4_2", 256, 4), _pool("pool4"),
    _conv("conv5_1", 512, 3), _conv("conv5_2", 512, 3),
)  # fmt: skip

SPECS: dict[str, ModelSpec] = {
    "unet_encoder": ModelSpec(
        "unet_encoder",
        (200, 200, 1),
        _UNET,
        ("conv5_2", "conv4_2", "conv3_2", "conv2_2", "conv1_2"),
        5_384_832,
        "U-Net encoder for one-channel 200x200 MRI slices; conv4_2 has an even 4x4 kernel with 'same' padding.",
    ),
    "single_conv": ModelSpec(
        "single_conv",
        (64, 160, 1),
        (_conv("conv_1", 96, 5, kernel_init="glorot_normal", bias_init="glorot_uniform"),),
        ("conv_1",),
        2_496,
        "One Conv2D(96, 5x5) over a grey 64x160 image: 96 filters to look at.",
    ),
    "single_conv_rgb": ModelSpec(
        "single_conv_rgb",
        (32, 32, 3),
        (_conv("conv_1", 64, 5, padding="valid", kernel_init="glorot_normal", bias_init="glorot_uniform"),),
        ("conv_1",),
        4_864,
        "The colour variant of single_conv: Conv2D(64, 5x5, 'valid') on a CIFAR-10 sized RGB image.",
    ),
    "two_conv": ModelSpec(
        "two_conv",
        (25, 25, 1),
        (_conv("conv1", 4, 5), _conv("conv2", 6, 3)),
        ("conv2",),
        326,
        "Two convs over a 25x25 smiley: conv2 has 6 maps, each summing over all 4 of conv1's.",
    ),
    "conv3d_demo": ModelSpec(
        "conv3d_demo",
        (224, 224, 3, 1),
        (
            _conv("conv3d_a", 2, 3, rank=3, strides=4),
            _conv("conv3d_b", 4, 3, rank=3),
            _conv("conv3d_c", 2, 3, rank=3),
            LayerSpec("flatten", "flatten"),
            LayerSpec("dense_a", "dense", 100, activation="relu"),
            LayerSpec("dense_b", "dense", 17, activation="softmax"),
        ),
        ("dense_b",),
        629_511,
        "A small volumetric classifier: Conv3D with stride-4 'same' padding, Flatten, Dense x2 (17 classes).",
    ),
}
