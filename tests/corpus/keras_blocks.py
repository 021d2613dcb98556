"""A corpus of small Keras 3 models written the way Keras users write them.

An independent oracle for xconv's Keras front ends: custom ``keras.layers.Layer``
blocks from published designs (MBConv, Fused-MBConv, ViT, Swin, ConvNeXt, CSP,
ResNet, MobileNetV3), functional models that do raw arithmetic and ``keras.ops``
on KerasTensors, subclassed ``keras.Model`` s and recurrent/attention sequence
models.  Nothing here knows how xconv works.

``MODELS`` maps a case name to a :class:`KerasCase`.  ``case.build()`` seeds
Keras, builds the model and gives every variable (BatchNorm moving statistics
included) a random value, so a dropped bias or a swapped BN statistic changes
the output.  ``build_model(case, "float64")`` builds it under a float64 policy;
``sample_inputs(case)`` returns NumPy inputs of the declared shapes.

Keras is imported at module import: this module is test data, not part of
``xconv``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

import keras
from keras import layers, ops

PACKAGE = "xconv_corpus"
SEED = 7

register = keras.saving.register_keras_serializable(package=PACKAGE)


# --------------------------------------------------------------------------------------
# Part 1: custom blocks
# --------------------------------------------------------------------------------------


@register
class HardSwish(layers.Layer):
    """MobileNetV3's h-swish, written out as users do: ``x * relu6(x + 3) / 6``."""

    def call(self, x):
        return x * ops.relu6(x + 3.0) / 6.0


@register
class ConvBNAct(layers.Layer):
    """Conv2D (no bias) + BatchNormalization + an activation chosen by name."""

    def __init__(self, filters, kernel_size=3, strides=1, activation="swish", groups=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.activation = activation
        self.groups = groups
        self.conv = layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same", groups=groups, use_bias=False, name="conv"
        )
        self.bn = layers.BatchNormalization(momentum=0.97, epsilon=1e-3, name="bn")
        if activation is None:
            self.act = None
        elif activation == "hard_swish":
            self.act = HardSwish(name="act")
        else:
            self.act = layers.Activation(activation, name="act")

    def call(self, x, training=None):
        x = self.bn(self.conv(x), training=training)
        return x if self.act is None else self.act(x)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            activation=self.activation,
            groups=self.groups,
        )
        return config


@register
class SqueezeExcite(layers.Layer):
    """Squeeze-and-excitation: mean over H, W (kept), 1x1 reduce, 1x1 expand, gate, multiply.

    ``gate="sigmoid"`` is the EfficientNet form; ``gate="hard_sigmoid"`` the MobileNetV3
    one, written as ``relu6(x + 3) / 6``.
    """

    def __init__(self, filters, reduced_filters, activation="swish", gate="sigmoid", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.reduced_filters = reduced_filters
        self.activation = activation
        self.gate = gate
        self.reduce = layers.Conv2D(reduced_filters, 1, activation=activation, name="reduce")
        self.expand = layers.Conv2D(filters, 1, name="expand")

    def call(self, x):
        s = ops.mean(x, axis=[1, 2], keepdims=True)
        s = self.expand(self.reduce(s))
        if self.gate == "hard_sigmoid":
            s = ops.relu6(s + 3.0) / 6.0
        else:
            s = ops.sigmoid(s)
        return x * s

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, reduced_filters=self.reduced_filters, activation=self.activation, gate=self.gate
        )
        return config


@register
class MBConv(layers.Layer):
    """EfficientNet's inverted residual: expand 1x1, depthwise kxk, SE, project 1x1, residual."""

    def __init__(
        self, filters_in, filters_out, expand_ratio=4, kernel_size=3, strides=1, se_ratio=0.25, drop_rate=0.1, **kwargs
    ):
        super().__init__(**kwargs)
        self.filters_in = filters_in
        self.filters_out = filters_out
        self.expand_ratio = expand_ratio
        self.kernel_size = kernel_size
        self.strides = strides
        self.se_ratio = se_ratio
        self.drop_rate = drop_rate
        expanded = filters_in * expand_ratio
        if expand_ratio != 1:
            self.expand_conv = layers.Conv2D(expanded, 1, padding="same", use_bias=False, name="expand_conv")
            self.expand_bn = layers.BatchNormalization(name="expand_bn")
            self.expand_act = layers.Activation("swish", name="expand_act")
        self.dwconv = layers.DepthwiseConv2D(kernel_size, strides=strides, padding="same", use_bias=False, name="dwconv")
        self.bn = layers.BatchNormalization(name="bn")
        self.act = layers.Activation("swish", name="act")
        if 0 < se_ratio <= 1:
            self.se = SqueezeExcite(expanded, max(1, int(filters_in * se_ratio)), name="se")
        else:
            self.se = None
        self.project_conv = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name="project_conv")
        self.project_bn = layers.BatchNormalization(name="project_bn")
        self.use_residual = strides == 1 and filters_in == filters_out
        # stochastic depth as in keras.applications: drop whole samples
        self.drop = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name="drop") if drop_rate > 0 else None

    def call(self, inputs, training=None):
        x = inputs
        if self.expand_ratio != 1:
            x = self.expand_act(self.expand_bn(self.expand_conv(x), training=training))
        x = self.act(self.bn(self.dwconv(x), training=training))
        if self.se is not None:
            x = self.se(x)
        x = self.project_bn(self.project_conv(x), training=training)
        if self.use_residual:
            if self.drop is not None:
                x = self.drop(x, training=training)
            x = ops.add(x, inputs)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            filters_in=self.filters_in,
            filters_out=self.filters_out,
            expand_ratio=self.expand_ratio,
            kernel_size=self.kernel_size,
            strides=self.strides,
            se_ratio=self.se_ratio,
            drop_rate=self.drop_rate,
        )
        return config


@register
class FusedMBConv(layers.Layer):
    """EfficientNetV2's Fused-MBConv: one kxk expand conv, optional SE, 1x1 project, residual."""

    def __init__(self, filters_in, filters_out, expand_ratio=4, kernel_size=3, strides=1, se_ratio=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters_in = filters_in
        self.filters_out = filters_out
        self.expand_ratio = expand_ratio
        self.kernel_size = kernel_size
        self.strides = strides
        self.se_ratio = se_ratio
        expanded = filters_in * expand_ratio
        if expand_ratio != 1:
            self.expand = ConvBNAct(expanded, kernel_size, strides, "swish", name="expand")
            self.se = SqueezeExcite(expanded, max(1, int(filters_in * se_ratio)), name="se") if se_ratio > 0 else None
            self.project = ConvBNAct(filters_out, 1, 1, None, name="project")
        else:
            self.expand = None
            self.se = SqueezeExcite(filters_in, max(1, int(filters_in * se_ratio)), name="se") if se_ratio > 0 else None
            self.project = ConvBNAct(filters_out, kernel_size, strides, "swish", name="project")
        self.use_residual = strides == 1 and filters_in == filters_out

    def call(self, inputs, training=None):
        x = inputs
        if self.expand is not None:
            x = self.expand(x, training=training)
        if self.se is not None:
            x = self.se(x)
        x = self.project(x, training=training)
        if self.use_residual:
            x = x + inputs
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            filters_in=self.filters_in,
            filters_out=self.filters_out,
            expand_ratio=self.expand_ratio,
            kernel_size=self.kernel_size,
            strides=self.strides,
            se_ratio=self.se_ratio,
        )
        return config


@register
class PatchEmbedding(layers.Layer):
    """ViT patch embedding: strided conv, tokens, a learned class token and position embedding."""

    def __init__(self, patch_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.dim = dim
        self.proj = layers.Conv2D(dim, patch_size, strides=patch_size, padding="valid", name="proj")

    def build(self, input_shape):
        h, w = input_shape[1] // self.patch_size, input_shape[2] // self.patch_size
        self.num_patches = h * w
        self.proj.build(input_shape)
        self.class_token = self.add_weight(shape=(1, 1, self.dim), initializer="zeros", name="class_token")
        self.position_embedding = self.add_weight(
            shape=(1, self.num_patches + 1, self.dim),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="position_embedding",
        )

    def call(self, images):
        x = self.proj(images)
        x = ops.reshape(x, (-1, self.num_patches, self.dim))
        cls = ops.tile(self.class_token, [ops.shape(x)[0], 1, 1])
        x = ops.concatenate([cls, x], axis=1)
        return x + self.position_embedding

    def compute_output_shape(self, input_shape):
        n = (input_shape[1] // self.patch_size) * (input_shape[2] // self.patch_size)
        return (input_shape[0], n + 1, self.dim)

    def get_config(self):
        config = super().get_config()
        config.update(patch_size=self.patch_size, dim=self.dim)
        return config


@register
class TransformerEncoderBlock(layers.Layer):
    """Pre-norm ViT encoder block: LN, MultiHeadAttention, residual, LN, MLP (gelu), residual."""

    def __init__(self, dim, num_heads, mlp_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.dropout = dropout
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.attn = layers.MultiHeadAttention(num_heads=num_heads, key_dim=dim // num_heads, dropout=dropout, name="attn")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.fc1 = layers.Dense(mlp_dim, activation="gelu", name="fc1")
        self.fc2 = layers.Dense(dim, name="fc2")
        self.drop = layers.Dropout(dropout)

    def call(self, x, training=None):
        h = self.norm1(x)
        h = self.attn(h, h, training=training)
        x = x + self.drop(h, training=training)
        h = self.fc2(self.drop(self.fc1(self.norm2(x)), training=training))
        return x + self.drop(h, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, num_heads=self.num_heads, mlp_dim=self.mlp_dim, dropout=self.dropout)
        return config


def _relative_position_index(window_size):
    """Swin's (N, N) index into the (2w-1)^2 bias table, N = w*w (as in the paper's code)."""
    coords = np.stack(np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window_size - 1)
    return (rel[..., 0] * (2 * window_size - 1) + rel[..., 1]).astype("int32")


@register
class WindowAttention(layers.Layer):
    """Swin window multi-head self-attention on (B, H, W, C) maps, with relative position bias.

    Window partition and reverse are ops.reshape/ops.transpose; attention is a Dense qkv,
    ops.matmul and softmax per window.
    """

    def __init__(self, dim, window_size, num_heads, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = layers.Dense(dim * 3, name="qkv")
        self.proj = layers.Dense(dim, name="proj")
        self.index = _relative_position_index(window_size).reshape(-1)

    def build(self, input_shape):
        n = self.window_size * self.window_size
        self.qkv.build((None, n, self.dim))
        self.proj.build((None, n, self.dim))
        self.relative_bias_table = self.add_weight(
            shape=((2 * self.window_size - 1) ** 2, self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="relative_bias_table",
        )

    def call(self, x):
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        ws, heads = self.window_size, self.num_heads
        n = ws * ws
        # window partition: (B, H, W, C) -> (B * nW, ws*ws, C)
        win = ops.reshape(x, (-1, h // ws, ws, w // ws, ws, c))
        win = ops.transpose(win, (0, 1, 3, 2, 4, 5))
        win = ops.reshape(win, (-1, n, c))
        qkv = ops.reshape(self.qkv(win), (-1, n, 3, heads, c // heads))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ops.matmul(q * self.scale, ops.transpose(k, (0, 1, 3, 2)))
        bias = ops.take(self.relative_bias_table, self.index, axis=0)
        bias = ops.transpose(ops.reshape(bias, (n, n, heads)), (2, 0, 1))
        attn = ops.softmax(attn + ops.expand_dims(bias, 0), axis=-1)
        out = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3))
        out = self.proj(ops.reshape(out, (-1, n, c)))
        # window reverse
        out = ops.reshape(out, (-1, h // ws, w // ws, ws, ws, c))
        out = ops.transpose(out, (0, 1, 3, 2, 4, 5))
        return ops.reshape(out, (-1, h, w, c))

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, window_size=self.window_size, num_heads=self.num_heads)
        return config


@register
class SwinBlock(layers.Layer):
    """Swin transformer block without shift: LN, window attention, residual, LN, MLP (gelu), residual."""

    def __init__(self, dim, window_size, num_heads, mlp_ratio=2.0, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.norm1 = layers.LayerNormalization(epsilon=1e-5, name="norm1")
        self.attn = WindowAttention(dim, window_size, num_heads, name="attn")
        self.norm2 = layers.LayerNormalization(epsilon=1e-5, name="norm2")
        self.fc1 = layers.Dense(int(dim * mlp_ratio), name="fc1")
        self.fc2 = layers.Dense(dim, name="fc2")

    def call(self, x):
        x = x + self.attn(self.norm1(x))
        h = keras.activations.gelu(self.fc1(self.norm2(x)))
        return x + self.fc2(h)

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, window_size=self.window_size, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio)
        return config


@register
class ConvNeXtBlock(layers.Layer):
    """ConvNeXt block: depthwise 7x7, LN(1e-6), Dense 4x, gelu, Dense, layer scale, residual."""

    def __init__(self, dim, layer_scale_init_value=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.layer_scale_init_value = layer_scale_init_value
        self.dwconv = layers.DepthwiseConv2D(7, padding="same", name="dwconv")
        self.norm = layers.LayerNormalization(epsilon=1e-6, name="norm")
        self.pwconv1 = layers.Dense(4 * dim, name="pwconv1")
        self.act = layers.Activation("gelu", name="gelu")
        self.pwconv2 = layers.Dense(dim, name="pwconv2")

    def build(self, input_shape):
        self.dwconv.build(input_shape)
        self.norm.build(input_shape)
        self.pwconv1.build(input_shape)
        self.pwconv2.build(tuple(input_shape[:-1]) + (4 * self.dim,))
        self.layer_scale = self.add_weight(
            shape=(self.dim,),
            initializer=keras.initializers.Constant(self.layer_scale_init_value),
            name="layer_scale",
        )

    def call(self, inputs):
        x = self.dwconv(inputs)
        x = self.norm(x)
        x = self.pwconv2(self.act(self.pwconv1(x)))
        return inputs + self.layer_scale * x

    def get_config(self):
        config = super().get_config()
        config.update(dim=self.dim, layer_scale_init_value=self.layer_scale_init_value)
        return config


@register
class Bottleneck(layers.Layer):
    """YOLO-style bottleneck: 3x3 ConvBNAct twice, with ``x + shortcut`` when asked."""

    def __init__(self, filters, shortcut=True, activation="silu", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.shortcut = shortcut
        self.activation = activation
        self.cv1 = ConvBNAct(filters, 3, 1, activation, name="cv1")
        self.cv2 = ConvBNAct(filters, 3, 1, activation, name="cv2")

    def call(self, x, training=None):
        y = self.cv2(self.cv1(x, training=training), training=training)
        return x + y if self.shortcut else y

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, shortcut=self.shortcut, activation=self.activation)
        return config


@register
class CSPBlock(layers.Layer):
    """CSP/C2f block: 1x1 conv to 2c, split in two, bottlenecks on one half, concatenate all, 1x1 conv.

    ``split="split"`` uses ops.split; ``split="slice"`` slices the channel axis.
    """

    def __init__(self, filters, n=1, shortcut=True, split="split", activation="silu", **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.n = n
        self.shortcut = shortcut
        self.split = split
        self.activation = activation
        self.hidden = filters // 2
        self.cv1 = ConvBNAct(2 * self.hidden, 1, 1, activation, name="cv1")
        self.blocks = [Bottleneck(self.hidden, shortcut, activation, name=f"m{i}") for i in range(n)]
        self.cv2 = ConvBNAct(filters, 1, 1, activation, name="cv2")

    def call(self, x, training=None):
        y = self.cv1(x, training=training)
        if self.split == "slice":
            parts = [y[..., : self.hidden], y[..., self.hidden :]]
        else:
            parts = list(ops.split(y, 2, axis=-1))
        for block in self.blocks:
            parts.append(block(parts[-1], training=training))
        return self.cv2(ops.concatenate(parts, axis=-1), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, n=self.n, shortcut=self.shortcut, split=self.split, activation=self.activation
        )
        return config


@register
class ResidualBlock(layers.Layer):
    """ResNet basic block: conv-BN-relu, conv-BN, projection shortcut when shapes change, ``x + shortcut``."""

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.conv1 = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name="conv1")
        self.bn1 = layers.BatchNormalization(epsilon=1.001e-5, name="bn1")
        self.conv2 = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv2")
        self.bn2 = layers.BatchNormalization(epsilon=1.001e-5, name="bn2")
        self.proj = None
        self.proj_bn = None

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.proj = layers.Conv2D(self.filters, 1, strides=self.strides, use_bias=False, name="proj")
            self.proj_bn = layers.BatchNormalization(epsilon=1.001e-5, name="proj_bn")

    def call(self, x, training=None):
        shortcut = x
        if self.proj is not None:
            shortcut = self.proj_bn(self.proj(x), training=training)
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)
        return ops.relu(y + shortcut)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides)
        return config


@register
class MeanPoolHead(layers.Layer):
    """MobileNetV3's last stage: ``ops.mean(x, axis=[1, 2], keepdims=True)``, 1x1 conv, h-swish, flatten."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = layers.Conv2D(filters, 1, name="conv")

    def call(self, x):
        x = ops.mean(x, axis=[1, 2], keepdims=True)
        x = self.conv(x)
        x = x * ops.relu6(x + 3.0) / 6.0
        return ops.squeeze(x, axis=(1, 2))

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters)
        return config


@register
class TinyResNet(keras.Model):
    """A subclassed ResNet of built-in layers only (``layers.Add`` and the ``+`` operator)."""

    def __init__(self, num_classes=5, width=8, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.width = width
        self.stem = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False, name="stem")
        self.stem_bn = layers.BatchNormalization(name="stem_bn")
        self.relu = layers.ReLU()
        self.pool = layers.MaxPooling2D(3, strides=2, padding="same")
        self.conv_a = layers.Conv2D(width, 3, padding="same", name="conv_a")
        self.bn_a = layers.BatchNormalization(name="bn_a")
        self.conv_b = layers.Conv2D(width, 3, padding="same", name="conv_b")
        self.bn_b = layers.BatchNormalization(name="bn_b")
        self.add = layers.Add()
        self.down = layers.Conv2D(2 * width, 3, strides=2, padding="same", name="down")
        self.gap = layers.GlobalAveragePooling2D()
        self.fc = layers.Dense(num_classes, name="fc")

    def call(self, inputs, training=False):
        x = self.relu(self.stem_bn(self.stem(inputs), training=training))
        x = self.pool(x)
        y = self.relu(self.bn_a(self.conv_a(x), training=training))
        y = self.bn_b(self.conv_b(y), training=training)
        x = self.relu(self.add([x, y]))
        x = self.down(x)
        x = x + self.relu(x)
        return self.fc(self.gap(x))

    def get_config(self):
        return {"num_classes": self.num_classes, "width": self.width, "name": self.name}


@register
class GRUTextClassifier(keras.Model):
    """A subclassed text classifier: Embedding, GRU, Dense."""

    def __init__(self, vocab_size=30, embed_dim=8, units=12, num_classes=3, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embed_dim = embed_dim
        self.units = units
        self.num_classes = num_classes
        self.embed = layers.Embedding(vocab_size, embed_dim, name="embed")
        self.gru = layers.GRU(units, name="gru")
        self.out = layers.Dense(num_classes, activation="softmax", name="out")

    def call(self, tokens):
        return self.out(self.gru(self.embed(tokens)))

    def get_config(self):
        return {
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
            "units": self.units,
            "num_classes": self.num_classes,
            "name": self.name,
        }


CUSTOM_CLASSES = (
    HardSwish, ConvBNAct, SqueezeExcite, MBConv, FusedMBConv, PatchEmbedding, TransformerEncoderBlock,
    WindowAttention, SwinBlock, ConvNeXtBlock, Bottleneck, CSPBlock, ResidualBlock, MeanPoolHead,
    TinyResNet, GRUTextClassifier,
)  # fmt: skip


# --------------------------------------------------------------------------------------
# Part 2: functional models with raw operations, and small backbones
# --------------------------------------------------------------------------------------


def fn_hard_swish_ops():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    x = x * layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = x * ops.clip(x + 3.0, 0.0, 6.0) / 6.0
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4)(x), name="fn_hard_swish_ops")


def fn_mean_reshape_transpose():
    """Token mixing across space (MLP-Mixer style) with ops.reshape/ops.transpose."""
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 4, strides=4)(inputs)  # (4, 4, 8)
    x = x * ops.sigmoid(ops.mean(x, axis=[1, 2], keepdims=True))
    tokens = ops.reshape(x, (-1, 16, 8))
    mixed = ops.transpose(layers.Dense(16)(ops.transpose(tokens, (0, 2, 1))), (0, 2, 1))
    tokens = tokens + mixed
    x = ops.reshape(tokens, (-1, 4, 4, 8))
    x = layers.Conv2D(6, 1)(x)
    return keras.Model(inputs, ops.mean(x, axis=-1), name="fn_mean_reshape_transpose")


def fn_channel_slicing():
    """Slice channels, convolve halves, concatenate, then a ShuffleNet channel shuffle."""
    inputs = keras.Input((16, 16, 16))
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs[:, :, :, :8])
    b = layers.DepthwiseConv2D(3, padding="same")(inputs[..., 8:])
    x = ops.concatenate([a, b], axis=-1)
    x = ops.reshape(x, (-1, 16, 16, 2, 8))
    x = ops.transpose(x, (0, 1, 2, 4, 3))
    x = ops.reshape(x, (-1, 16, 16, 16))
    x = x[:, 1:-1, ::2, :]
    return keras.Model(inputs, layers.Conv2D(4, 1)(x), name="fn_channel_slicing")


def fn_raw_attention():
    """Single-head self-attention spelled out with ops.matmul and ops.softmax."""
    inputs = keras.Input((12, 16))
    q = layers.Dense(8)(inputs)
    k = layers.Dense(8)(inputs)
    v = layers.Dense(16)(inputs)
    scores = ops.matmul(q, ops.transpose(k, (0, 2, 1))) / math.sqrt(8.0)
    attn = ops.softmax(scores, axis=-1)
    x = inputs + ops.matmul(attn, v)
    x = layers.LayerNormalization()(x)
    return keras.Model(inputs, layers.Dense(3)(x[:, 0, :]), name="fn_raw_attention")


def fn_elementwise_ops():
    inputs = keras.Input((16, 16, 4))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    a = ops.clip(x, -1.5, 1.5)
    b = -x
    c = x**2
    d = keras.activations.swish(x)
    e = ops.maximum(x, 0.1 * x)  # leaky relu by hand
    f = 2.0 * ops.abs(x) - 1.0
    x = ops.concatenate([a, b, c / 4.0, d, e, f], axis=-1)
    x = layers.Conv2D(8, 1)(x)
    x = x * ops.tanh(ops.softplus(x))  # mish
    x = ops.sqrt(x * x + 1e-3) - ops.exp(-ops.abs(x))
    return keras.Model(inputs, layers.GlobalMaxPooling2D()(x), name="fn_elementwise_ops")


def fn_resize_nearest():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = ops.image.resize(x, (16, 16), interpolation="nearest")
    x = layers.Concatenate()([x, inputs])
    return keras.Model(inputs, layers.Conv2D(2, 3, padding="same")(x), name="fn_resize_nearest")


def fn_fpn_bilinear():
    """Two-level FPN top-down path with ops.image.resize bilinear and additions."""
    inputs = keras.Input((32, 32, 3))
    c1 = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)  # 16
    c2 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(c1)  # 8
    p2 = layers.Conv2D(8, 1)(c2)
    p1 = layers.Conv2D(8, 1)(c1) + ops.image.resize(p2, (16, 16), interpolation="bilinear")
    out = ops.image.resize(layers.Conv2D(2, 3, padding="same")(p1), (32, 32), interpolation="bilinear")
    return keras.Model(inputs, out, name="fn_fpn_bilinear")


def fn_split_branches():
    """Inception-ish: ops.split into three, a different conv per branch, concatenate."""
    inputs = keras.Input((16, 16, 12))
    a, b, c = ops.split(inputs, 3, axis=-1)
    a = layers.Conv2D(4, 1, activation="relu")(a)
    b = layers.Conv2D(4, 3, padding="same", activation="relu")(b)
    c = layers.Conv2D(4, 5, padding="same", activation="relu")(c)
    x = ops.concatenate([a, b, c], axis=-1)
    x = layers.AveragePooling2D(2)(x)
    return keras.Model(inputs, layers.Conv2D(6, 1)(x), name="fn_split_branches")


def fn_cbam():
    """CBAM: channel attention with shared MLP on mean/max, spatial attention on channel max/mean."""
    inputs = keras.Input((16, 16, 8))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    fc1 = layers.Dense(2, activation="relu")
    fc2 = layers.Dense(8)
    avg = fc2(fc1(ops.mean(x, axis=[1, 2], keepdims=True)))
    mx = fc2(fc1(ops.max(x, axis=[1, 2], keepdims=True)))
    x = x * ops.sigmoid(avg + mx)
    s = ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)
    x = x * layers.Conv2D(1, 7, padding="same", activation="sigmoid")(s)
    return keras.Model(inputs, x, name="fn_cbam")


def fn_two_inputs():
    """Image plus tabular features, joined with ops.concatenate; a gate from the features."""
    image = keras.Input((16, 16, 3), name="image")
    feats = keras.Input((5,), name="features")
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    gate = layers.Dense(8, activation="sigmoid")(feats)
    x = x * ops.reshape(gate, (-1, 1, 1, 8))
    x = layers.GlobalAveragePooling2D()(x)
    x = ops.concatenate([x, feats], axis=-1)
    return keras.Model([image, feats], layers.Dense(2)(x), name="fn_two_inputs")


def tiny_efficientnet():
    inputs = keras.Input((32, 32, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = ConvBNAct(8, 3, 2, "swish", name="stem")(x)
    x = MBConv(8, 8, expand_ratio=1, kernel_size=3, name="block1a")(x)
    x = MBConv(8, 16, expand_ratio=4, kernel_size=5, strides=2, name="block2a")(x)
    x = MBConv(16, 16, expand_ratio=4, kernel_size=3, name="block2b")(x)
    x = ConvBNAct(32, 1, 1, "swish", name="top")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x), name="tiny_efficientnet")


def tiny_efficientnetv2():
    inputs = keras.Input((32, 32, 3))
    x = ConvBNAct(8, 3, 2, "swish", name="stem")(inputs)
    x = FusedMBConv(8, 8, expand_ratio=1, name="block1a")(x)
    x = FusedMBConv(8, 16, expand_ratio=4, strides=2, name="block2a")(x)
    x = FusedMBConv(16, 16, expand_ratio=2, se_ratio=0.25, name="block2b")(x)
    x = MBConv(16, 24, expand_ratio=4, strides=2, drop_rate=0.0, name="block3a")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(6)(x), name="tiny_efficientnetv2")


def tiny_vit():
    inputs = keras.Input((32, 32, 3))
    x = PatchEmbedding(8, 16, name="patch_embed")(inputs)
    x = TransformerEncoderBlock(16, 2, 32, dropout=0.1, name="block0")(x)
    x = TransformerEncoderBlock(16, 2, 32, name="block1")(x)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    return keras.Model(inputs, layers.Dense(5)(x[:, 0]), name="tiny_vit")


def tiny_convnext():
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(16, 4, strides=4, name="stem_conv")(inputs)
    x = layers.LayerNormalization(epsilon=1e-6, name="stem_ln")(x)
    x = ConvNeXtBlock(16, name="stage0_block0")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="down_ln")(x)
    x = layers.Conv2D(32, 2, strides=2, name="down_conv")(x)
    x = ConvNeXtBlock(32, name="stage1_block0")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="head_ln")(x)
    return keras.Model(inputs, layers.Dense(4, name="head")(x), name="tiny_convnext")


def tiny_csp():
    """A YOLOv8-ish backbone: ConvBNAct stems, C2f blocks, SPPF, a feature map and a class score."""
    inputs = keras.Input((32, 32, 3))
    x = ConvBNAct(8, 3, 2, "silu", name="stem")(inputs)
    x = ConvBNAct(16, 3, 2, "silu", name="down1")(x)
    x = CSPBlock(16, n=1, split="split", name="c2f1")(x)
    x = ConvBNAct(32, 3, 2, "silu", name="down2")(x)
    x = CSPBlock(32, n=2, shortcut=False, split="slice", name="c2f2")(x)
    # SPPF: three chained 5x5 max pools, concatenated
    y0 = ConvBNAct(16, 1, 1, "silu", name="sppf_cv1")(x)
    y1 = layers.MaxPooling2D(5, strides=1, padding="same")(y0)
    y2 = layers.MaxPooling2D(5, strides=1, padding="same")(y1)
    y3 = layers.MaxPooling2D(5, strides=1, padding="same")(y2)
    feat = ConvBNAct(32, 1, 1, "silu", name="sppf_cv2")(layers.Concatenate()([y0, y1, y2, y3]))
    score = layers.Dense(3, activation="sigmoid")(layers.GlobalAveragePooling2D()(feat))
    return keras.Model(inputs, [feat, score], name="tiny_csp")


def tiny_swin():
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 2, strides=2, name="patch_embed")(inputs)  # (8, 8, 16)
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = SwinBlock(16, window_size=4, num_heads=2, name="stage0")(x)
    # patch merging by strided slicing
    x = ops.concatenate([x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :], x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]], axis=-1)
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = layers.Dense(32, use_bias=False, name="reduction")(x)  # (4, 4, 32)
    x = SwinBlock(32, window_size=4, num_heads=4, name="stage1")(x)
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="tiny_swin")


def tiny_resnet_blocks():
    inputs = keras.Input((24, 24, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = ResidualBlock(8, name="res1")(x)
    x = ResidualBlock(16, strides=2, name="res2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(4)(x), name="tiny_resnet_blocks")


def tiny_mobilenetv3():
    inputs = keras.Input((32, 32, 3))
    x = ConvBNAct(8, 3, 2, "hard_swish", name="stem")(inputs)
    shortcut = x
    x = ConvBNAct(16, 1, 1, "hard_swish", name="expand")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = HardSwish()(x)
    x = SqueezeExcite(16, 4, activation="relu", gate="hard_sigmoid", name="se")(x)
    x = ConvBNAct(8, 1, 1, None, name="project")(x)
    x = layers.Add()([shortcut, x])
    x = MeanPoolHead(24, name="head")(x)
    return keras.Model(inputs, layers.Dense(5)(x), name="tiny_mobilenetv3")


def subclassed_resnet():
    model = TinyResNet(num_classes=5, width=8, name="subclassed_resnet")
    model(np.zeros((1, 24, 24, 3), keras.config.floatx()))
    return model


def subclassed_gru_text():
    model = GRUTextClassifier(vocab_size=30, name="subclassed_gru_text")
    model(np.zeros((1, 10), "int32"))
    return model


# --------------------------------------------------------------------------------------
# Part 3: sequence models
# --------------------------------------------------------------------------------------


def seq_embedding_lstm():
    inputs = keras.Input((12,), dtype="int32")
    x = layers.Embedding(40, 8)(inputs)
    x = layers.LSTM(16, return_sequences=True)(x)
    x = layers.LSTM(12)(x)
    return keras.Model(inputs, layers.Dense(5, activation="softmax")(x), name="seq_embedding_lstm")


def seq_embedding_masked_gru():
    inputs = keras.Input((12,), dtype="int32")
    x = layers.Embedding(40, 8, mask_zero=True)(inputs)
    x = layers.GRU(10)(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="seq_embedding_masked_gru")


def seq_gru_reset_after():
    inputs = keras.Input((10, 6))
    x = layers.GRU(12, reset_after=True, return_sequences=True)(inputs)
    x = layers.GRU(8, reset_after=True)(x)
    return keras.Model(inputs, layers.Dense(3)(x), name="seq_gru_reset_after")


def seq_gru_reset_before():
    inputs = keras.Input((10, 6))
    x = layers.GRU(12, reset_after=False)(inputs)
    return keras.Model(inputs, layers.Dense(3)(x), name="seq_gru_reset_before")


def seq_bilstm():
    inputs = keras.Input((10, 6))
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(inputs)
    x = layers.Bidirectional(layers.LSTM(6), merge_mode="sum")(x)
    return keras.Model(inputs, layers.Dense(2)(x), name="seq_bilstm")


def seq_simple_rnn():
    inputs = keras.Input((10, 4))
    x = layers.SimpleRNN(10, return_sequences=True)(inputs)
    x = layers.SimpleRNN(6, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(2)(x), name="seq_simple_rnn")


def seq_lstm_return_state():
    """Seq2seq: the encoder's LSTM states start the decoder; the final hidden state is a second output."""
    enc_in = keras.Input((8, 5), name="encoder_inputs")
    dec_in = keras.Input((6, 4), name="decoder_inputs")
    _, h, c = layers.LSTM(10, return_state=True, name="encoder")(enc_in)
    dec, dec_h, _ = layers.LSTM(10, return_sequences=True, return_state=True, name="decoder")(
        dec_in, initial_state=[h, c]
    )
    out = layers.TimeDistributed(layers.Dense(3))(dec)
    return keras.Model([enc_in, dec_in], [out, dec_h + h], name="seq_lstm_return_state")


def seq_conv1d_mha():
    inputs = keras.Input((16, 6))
    x = layers.Conv1D(16, 3, padding="same", activation="relu")(inputs)
    attn = layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = layers.LayerNormalization()(x + attn)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(4)(x), name="seq_conv1d_mha")


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KerasCase:
    """One corpus model.

    ``build`` takes no arguments, seeds Keras and returns a model with random weights.
    ``input_shapes`` and ``output_shapes`` include the batch axis.  ``has_float64`` says
    whether the model computes in float64 when built under a float64 policy; when False,
    ``float64_reason`` says which op falls back to float32.
    """

    name: str
    build: Callable[[], keras.Model]
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    input_kind: str = "float"
    vocab: int | None = None
    custom_layers: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    has_float64: bool = True
    float64_reason: str = ""
    padded: bool = False  # int inputs get trailing zeros (for mask_zero)
    value_range: tuple[float, float] | None = None  # float inputs drawn uniformly from it, else N(0, 1)


def randomize_weights(model, seed=SEED):
    """Give every float variable of ``model`` a random value; BN moving variance stays positive.

    Kernels get N(0, 1/fan_in), biases, betas and means N(0, 0.25^2), scales U(0.5, 1.5),
    moving variances U(0.5, 2), embeddings and tokens N(0, 0.5^2).  Integer variables
    (seed generator states) are left alone.
    """
    rng = np.random.default_rng(seed)
    for v in model.variables:
        dtype = np.dtype(keras.backend.standardize_dtype(v.dtype))
        if not np.issubdtype(dtype, np.floating):
            continue
        shape = tuple(v.shape)
        name = v.name
        if name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif name in ("gamma", "layer_scale") or name.endswith("scale"):
            value = rng.uniform(0.5, 1.5, shape)
        elif "embed" in name or "token" in name or "table" in name:
            value = rng.normal(0.0, 0.5, shape)
        elif len(shape) <= 1 or "bias" in name or name in ("beta", "moving_mean"):
            value = rng.normal(0.0, 0.25, shape)
        else:
            fan_in = int(np.prod(shape[:-1]))
            if len(shape) == 4 and shape[-1] == 1:  # depthwise kernel (kh, kw, channels, 1)
                fan_in = shape[0] * shape[1]
            value = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
        v.assign(value.astype(dtype))
    return model


def _seeded(fn):
    def build():
        keras.utils.set_random_seed(SEED)
        return randomize_weights(fn(), SEED)

    build.__name__ = f"build_{fn.__name__}"
    build.__doc__ = fn.__doc__
    return build


def build_model(case, dtype="float32"):
    """Build ``case`` with ``dtype`` as floatx and the global dtype policy, restoring both after."""
    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        return case.build()
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)


def sample_inputs(case, seed=0, dtype="float32"):
    """NumPy inputs for ``case``: N(0, 1) floats (or uniform over ``value_range``), or ints in [0, vocab).

    Padded int cases draw from [1, vocab) and zero the last third of the last row, as post-padding.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in case.input_shapes:
        if case.input_kind == "int":
            a = rng.integers(1 if case.padded else 0, case.vocab, size=shape).astype("int32")
            if case.padded:
                a[-1, -(shape[-1] // 3) :] = 0
        elif case.value_range is not None:
            a = rng.uniform(*case.value_range, size=shape).astype(dtype)
        else:
            a = rng.standard_normal(shape).astype(dtype)
        arrays.append(a)
    return arrays


GELU = "Keras on TensorFlow computes gelu partly in float32 (error ~4e-9 in float64)"
RESCALING = "Rescaling casts its scale to float32 on TensorFlow (x / 255 off by ~5e-10 in float64)"
BILINEAR = "ops.image.resize bilinear runs in float32 on TensorFlow (float64 result equals the float32 one)"

_CASES = [
    # part 2: raw operations on KerasTensors
    ("fn_hard_swish_ops", fn_hard_swish_ops, [(2, 16, 16, 3)], [(2, 4)], {}, ("raw_ops", "hard_swish", "clip")),
    ("fn_mean_reshape_transpose", fn_mean_reshape_transpose, [(2, 16, 16, 3)], [(2, 4, 4)], {}, ("raw_ops", "reshape", "transpose", "mean")),
    ("fn_channel_slicing", fn_channel_slicing, [(1, 16, 16, 16)], [(1, 14, 8, 4)], {}, ("raw_ops", "slicing", "concatenate", "channel_shuffle", "depthwise")),
    ("fn_raw_attention", fn_raw_attention, [(2, 12, 16)], [(2, 3)], {}, ("raw_ops", "matmul", "softmax", "attention", "layernorm")),
    ("fn_elementwise_ops", fn_elementwise_ops, [(2, 16, 16, 4)], [(2, 8)], {}, ("raw_ops", "clip", "neg", "pow", "swish", "mish")),
    ("fn_resize_nearest", fn_resize_nearest, [(1, 16, 16, 3)], [(1, 16, 16, 2)], {}, ("raw_ops", "resize")),
    ("fn_fpn_bilinear", fn_fpn_bilinear, [(1, 32, 32, 3)], [(1, 32, 32, 2)], {"has_float64": False, "float64_reason": BILINEAR}, ("raw_ops", "resize", "bilinear")),
    ("fn_split_branches", fn_split_branches, [(2, 16, 16, 12)], [(2, 8, 8, 6)], {}, ("raw_ops", "split", "concatenate")),
    ("fn_cbam", fn_cbam, [(1, 16, 16, 8)], [(1, 16, 16, 8)], {}, ("raw_ops", "mean", "max", "attention", "shared_layer")),
    ("fn_two_inputs", fn_two_inputs, [(2, 16, 16, 3), (2, 5)], [(2, 2)], {}, ("raw_ops", "multi_input", "reshape")),
    # part 1 blocks in small backbones
    ("tiny_efficientnet", tiny_efficientnet, [(2, 32, 32, 3)], [(2, 10)], {"custom_layers": ("ConvBNAct", "MBConv", "SqueezeExcite"), "value_range": (0.0, 255.0), "has_float64": False, "float64_reason": RESCALING}, ("backbone", "custom", "bn", "depthwise", "se", "residual", "dropout", "rescaling")),
    ("tiny_efficientnetv2", tiny_efficientnetv2, [(1, 32, 32, 3)], [(1, 6)], {"custom_layers": ("ConvBNAct", "FusedMBConv", "MBConv", "SqueezeExcite")}, ("backbone", "custom", "bn", "se", "residual")),
    ("tiny_vit", tiny_vit, [(1, 32, 32, 3)], [(1, 5)], {"custom_layers": ("PatchEmbedding", "TransformerEncoderBlock"), "has_float64": False, "float64_reason": GELU}, ("backbone", "custom", "transformer", "attention", "gelu", "layernorm", "add_weight", "slicing")),
    ("tiny_convnext", tiny_convnext, [(2, 32, 32, 3)], [(2, 4)], {"custom_layers": ("ConvNeXtBlock",), "has_float64": False, "float64_reason": GELU}, ("backbone", "custom", "depthwise", "gelu", "layernorm", "add_weight", "residual")),
    ("tiny_csp", tiny_csp, [(1, 32, 32, 3)], [(1, 4, 4, 32), (1, 3)], {"custom_layers": ("ConvBNAct", "CSPBlock", "Bottleneck")}, ("backbone", "custom", "bn", "split", "slicing", "concatenate", "multi_output", "residual")),
    ("tiny_swin", tiny_swin, [(1, 16, 16, 3)], [(1, 3)], {"custom_layers": ("SwinBlock", "WindowAttention"), "has_float64": False, "float64_reason": GELU}, ("backbone", "custom", "attention", "reshape", "transpose", "matmul", "take", "slicing", "gelu", "layernorm", "add_weight")),
    ("tiny_resnet_blocks", tiny_resnet_blocks, [(2, 24, 24, 3)], [(2, 4)], {"custom_layers": ("ResidualBlock",)}, ("backbone", "custom", "bn", "residual")),
    ("tiny_mobilenetv3", tiny_mobilenetv3, [(1, 32, 32, 3)], [(1, 5)], {"custom_layers": ("ConvBNAct", "HardSwish", "SqueezeExcite", "MeanPoolHead")}, ("backbone", "custom", "bn", "hard_swish", "se", "depthwise", "mean", "residual")),
    ("subclassed_resnet", subclassed_resnet, [(2, 24, 24, 3)], [(2, 5)], {"custom_layers": ("TinyResNet",)}, ("subclassed_model", "bn", "residual")),
    ("subclassed_gru_text", subclassed_gru_text, [(2, 10)], [(2, 3)], {"custom_layers": ("GRUTextClassifier",), "input_kind": "int", "vocab": 30}, ("subclassed_model", "rnn", "gru", "embedding")),
    # part 3: sequence models
    ("seq_embedding_lstm", seq_embedding_lstm, [(2, 12)], [(2, 5)], {"input_kind": "int", "vocab": 40}, ("rnn", "lstm", "embedding", "return_sequences")),
    ("seq_embedding_masked_gru", seq_embedding_masked_gru, [(2, 12)], [(2, 3)], {"input_kind": "int", "vocab": 40, "padded": True}, ("rnn", "gru", "embedding", "mask")),
    ("seq_gru_reset_after", seq_gru_reset_after, [(2, 10, 6)], [(2, 3)], {}, ("rnn", "gru", "reset_after", "return_sequences")),
    ("seq_gru_reset_before", seq_gru_reset_before, [(2, 10, 6)], [(2, 3)], {}, ("rnn", "gru", "reset_before")),
    ("seq_bilstm", seq_bilstm, [(2, 10, 6)], [(2, 2)], {}, ("rnn", "lstm", "bidirectional", "return_sequences")),
    ("seq_simple_rnn", seq_simple_rnn, [(2, 10, 4)], [(2, 2)], {}, ("rnn", "simple_rnn", "return_sequences")),
    ("seq_lstm_return_state", seq_lstm_return_state, [(2, 8, 5), (2, 6, 4)], [(2, 6, 3), (2, 10)], {}, ("rnn", "lstm", "return_state", "initial_state", "multi_input", "multi_output", "time_distributed")),
    ("seq_conv1d_mha", seq_conv1d_mha, [(2, 16, 6)], [(2, 4)], {}, ("conv1d", "attention", "layernorm")),
]  # fmt: skip


def _registry():
    models = {}
    for name, fn, input_shapes, output_shapes, extra, tags in _CASES:
        if name in models:
            raise ValueError(f"corpus case {name!r} registered twice")
        models[name] = KerasCase(
            name=name,
            build=_seeded(fn),
            input_shapes=[tuple(s) for s in input_shapes],
            output_shapes=[tuple(s) for s in output_shapes],
            tags=tuple(tags),
            **extra,
        )
    return models


MODELS: dict[str, KerasCase] = _registry()

__all__ = ["MODELS", "KerasCase", "build_model", "randomize_weights", "sample_inputs", "CUSTOM_CLASSES", "PACKAGE"]
