"""Hand-written PyTorch ports of small Keras models ("twins"), written the way a user ports a model.

Each twin is a Keras functional model (channels-last), a PyTorch module (channels-first) that
computes the same function, and a weight copy written by hand (``kernel.permute(3, 2, 0, 1)``,
``Dense.T``, BatchNorm's four arrays, depthwise reshapes, Flatten row reordering). The torch
modules use their own names and idioms (functional activations, ``nn.Sequential``, ``out +=
identity``, explicit ``F.pad``, shared modules) so that a comparison tool has to align the two
models without being told which module is which layer.

This corpus is an independent oracle: it is written without reading xconv's comparison,
transfer, translation or capture code, and uses only keras, torch and numpy.

Planted bugs: ``twin.planted[kind](loaded_module) -> (broken_copy, keras_layer)`` where
``keras_layer`` names the first Keras layer whose output the bug changes.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEED = 7
Plant = Callable[[nn.Module], "tuple[nn.Module, str]"]


@dataclass(frozen=True)
class Twin:
    """One Keras model and its hand-written PyTorch port.

    ``build_keras(dtype="float32")`` returns a seeded model with every weight randomised;
    ``load(torch_module, keras_model)`` copies the weights by hand; ``input_shape`` is the Keras
    (channels-last) input shape with the batch; ``pairs`` maps the Keras layers that own weights
    to the torch module path that holds them (written by hand, for checking an alignment).
    """

    name: str
    build_keras: Callable[..., object]
    torch_cls: Callable[[], nn.Module]
    load: Callable[[nn.Module, object], None]
    input_shape: tuple[int, ...]
    styles: tuple[str, ...]
    pairs: Mapping[str, str]
    planted: Mapping[str, Plant] = field(default_factory=dict)
    has_float64: bool = True
    float64_reason: str = ""

    def torch_for(self, keras_model) -> nn.Module:
        """A fresh torch port with ``keras_model``'s weights, in its dtype, in eval mode."""
        module = self.torch_cls()
        if _keras_dtype(keras_model) == "float64":
            module = module.double()
        self.load(module, keras_model)
        return module.eval()


# ----------------------------------------------------------------------------------------------
# Keras side: seeding, dtype and weight randomisation


def _keras():
    import keras

    return keras


def _keras_dtype(keras_model) -> str:
    return str(keras_model.inputs[0].dtype).replace("tf.", "")


@contextlib.contextmanager
def _dtype_policy(dtype: str):
    """Build layers under ``dtype`` and restore the caller's policy afterwards, even on error."""
    keras = _keras()
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def _randomise(model, seed: int = SEED) -> None:
    """Give every weight a random value: kernels ~ N(0, 1/fan_in), biases and BN stats too."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        leaf = w.path.rsplit("/", 1)[-1]
        if leaf in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)  # positive variances, scales away from 0
        elif leaf in ("beta", "bias", "moving_mean"):
            value = rng.normal(0.0, 0.2, shape)
        elif leaf == "depthwise_kernel":
            value = rng.normal(0.0, 1.0, shape) / np.sqrt(np.prod(shape[:-2]))
        else:
            value = rng.normal(0.0, 1.0, shape) / np.sqrt(np.prod(shape[:-1]))
        w.assign(value.astype(w.dtype))


def _builder(body: Callable, input_shape: tuple[int, ...], name: str):
    """Wrap ``body(keras, layers, inputs) -> outputs`` into a seeded, randomised model builder."""

    def build_keras(dtype: str = "float32"):
        keras = _keras()
        keras.utils.set_random_seed(SEED)
        with _dtype_policy(dtype):
            inputs = keras.Input(input_shape[1:], batch_size=None, dtype=dtype, name="input")
            outputs = body(keras, keras.layers, inputs)
            model = keras.Model(inputs, outputs, name=name)
        _randomise(model)
        return model

    return build_keras


# ----------------------------------------------------------------------------------------------
# Weight-copy helpers a user would write once and reuse


def _w(keras_model, layer: str) -> list[np.ndarray]:
    return keras_model.get_layer(layer).get_weights()


def _put(param: torch.Tensor, array) -> None:
    with torch.no_grad():
        value = torch.as_tensor(np.ascontiguousarray(array))
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"shape mismatch: torch {tuple(param.shape)} vs keras {tuple(value.shape)}")
        param.copy_(value)


def _conv2d(conv: nn.Conv2d, keras_model, layer: str) -> None:
    kernel, *bias = _w(keras_model, layer)
    _put(conv.weight, torch.as_tensor(kernel).permute(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
    if bias:
        _put(conv.bias, bias[0])


def _dense(fc: nn.Linear, keras_model, layer: str) -> None:
    kernel, bias = _w(keras_model, layer)
    _put(fc.weight, kernel.T)
    _put(fc.bias, bias)


def _bn(bn: nn.BatchNorm2d, keras_model, layer: str) -> None:
    gamma, beta, mean, var = _w(keras_model, layer)
    _put(bn.weight, gamma)
    _put(bn.bias, beta)
    _put(bn.running_mean, mean)
    _put(bn.running_var, var)


def _depthwise(conv: nn.Conv2d, kernel: np.ndarray) -> None:
    kh, kw, cin, mult = kernel.shape
    # Keras output channel i*mult + m is torch's group i, member m.
    _put(conv.weight, torch.as_tensor(kernel).reshape(kh, kw, cin * mult).permute(2, 0, 1).unsqueeze(1))


# ----------------------------------------------------------------------------------------------
# Planted bugs


def _plant_filter(path: str, channel: int, keras_layer: str) -> Plant:
    """Scale one output filter (and shift its bias) of the conv at ``path``."""

    def plant(module: nn.Module):
        broken = copy.deepcopy(module)
        conv = broken.get_submodule(path)
        with torch.no_grad():
            conv.weight[channel].mul_(1.5)
            if conv.bias is not None:
                conv.bias[channel].add_(0.25)
        return broken, keras_layer

    return plant


def _plant_attr(attr: str, value, keras_layer: str) -> Plant:
    """Set ``broken.<attr> = value`` on a deep copy (used to change a padding tuple)."""

    def plant(module: nn.Module):
        broken = copy.deepcopy(module)
        owner, _, name = attr.rpartition(".")
        setattr(broken.get_submodule(owner) if owner else broken, name, value)
        return broken, keras_layer

    return plant


def _plant_train(keras_layer: str) -> Plant:
    def plant(module: nn.Module):
        return copy.deepcopy(module).train(), keras_layer

    return plant


# ==============================================================================================
# 1. functional activations; torch names equal to the Keras layer names


def _functional_body(keras, L, x):
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(12, 3, padding="same", activation="hard_swish", name="conv2")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(10, activation="softmax", name="fc")(x)


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 12, 3, padding=1)
        self.conv3 = nn.Conv2d(12, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = F.hardswish(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = x.mean(dim=(2, 3))
        return F.softmax(self.fc(x), dim=1)


def load_functional(net: FunctionalNet, km) -> None:
    _conv2d(net.conv1, km, "conv1")
    _conv2d(net.conv2, km, "conv2")
    _conv2d(net.conv3, km, "conv3")
    _dense(net.fc, km, "fc")


# ==============================================================================================
# 2. nn.Sequential of Conv + BN + ReLU(inplace=True); Dropout before the classifier


def _sequential_body(keras, L, x):
    for i, filters in enumerate((8, 16, 16), start=1):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        if i == 2:
            x = L.MaxPooling2D(2, name="pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.5, name="drop")(x)
    return L.Dense(5, name="logits")(x)


class SequentialNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8, eps=1e-3),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16, eps=1e-3),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16, eps=1e-3),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 5))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def load_sequential(net: SequentialNet, km) -> None:
    f = net.features
    _conv2d(f[0], km, "conv1")
    _bn(f[1], km, "bn1")
    _conv2d(f[3], km, "conv2")
    _bn(f[4], km, "bn2")
    _conv2d(f[7], km, "conv3")
    _bn(f[8], km, "bn3")
    _dense(net.classifier[2], km, "logits")


# ==============================================================================================
# 3. ResNet-style residual blocks: out += identity; out = self.relu(out)


def _resnet_body(keras, L, x):
    def conv_bn(x, filters, k, stride, name, relu=True):
        if stride > 1 and k > 1:  # as keras.applications.ResNet does: explicit symmetric pad, then 'valid'
            x = L.ZeroPadding2D(k // 2, name=f"{name}_pad")(x)
            x = L.Conv2D(filters, k, strides=stride, use_bias=False, name=f"{name}_conv")(x)
        else:
            x = L.Conv2D(filters, k, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = L.BatchNormalization(epsilon=1e-5, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x) if relu else x

    x = conv_bn(x, 8, 3, 1, "stem")
    # block 1: identity shortcut
    y = conv_bn(x, 8, 3, 1, "b1_1")
    y = conv_bn(y, 8, 3, 1, "b1_2", relu=False)
    x = L.ReLU(name="b1_out")(L.Add(name="b1_add")([x, y]))
    # block 2: stride 2, projection shortcut
    s = conv_bn(x, 16, 1, 2, "b2_proj", relu=False)
    y = conv_bn(x, 16, 3, 2, "b2_1")
    y = conv_bn(y, 16, 3, 1, "b2_2", relu=False)
    x = L.ReLU(name="b2_out")(L.Add(name="b2_add")([s, y]))
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(4, name="fc")(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        out = self.relu(out)
        return out


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def load_resnet(net: TinyResNet, km) -> None:
    _conv2d(net.conv1, km, "stem_conv")
    _bn(net.bn1, km, "stem_bn")
    for block, prefix in ((net.layer1, "b1"), (net.layer2, "b2")):
        _conv2d(block.conv1, km, f"{prefix}_1_conv")
        _bn(block.bn1, km, f"{prefix}_1_bn")
        _conv2d(block.conv2, km, f"{prefix}_2_conv")
        _bn(block.bn2, km, f"{prefix}_2_bn")
    _conv2d(net.layer2.downsample[0], km, "b2_proj_conv")
    _bn(net.layer2.downsample[1], km, "b2_proj_bn")
    _dense(net.fc, km, "fc")


# ==============================================================================================
# 4 + 5a. TF 'same' padding by hand (stride-2 pads (0, 1), 4x4 stride-1 pads (1, 2)); the port
#         permutes to channels-last before flattening, so the Dense copies with a plain .T


def _same_pad_body(keras, L, x):
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="down1")(x)
    x = L.Conv2D(8, 4, padding="same", activation="relu", name="even4")(x)
    x = L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="down2")(x)
    x = L.Flatten(name="flatten")(x)
    return L.Dense(6, name="dense")(x)


class SamePadNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2)
        self.pad2 = nn.ZeroPad2d((1, 2, 1, 2))  # 4x4 'same': TF puts the odd pixel on the right/bottom
        self.conv2 = nn.Conv2d(8, 8, 4)
        self.conv3 = nn.Conv2d(8, 12, 3, stride=2)
        self.fc = nn.Linear(4 * 4 * 12, 6)
        self.pad1 = (0, 1, 0, 1)  # stride 2 on an even size: TF pads only after
        self.pad3 = (0, 1, 0, 1)

    def forward(self, x):
        x = F.relu(self.conv1(F.pad(x, self.pad1)))
        x = F.relu(self.conv2(self.pad2(x)))
        x = F.relu(self.conv3(F.pad(x, self.pad3)))
        x = x.permute(0, 2, 3, 1).flatten(1)  # (h, w, c) order, as Keras flattens
        return self.fc(x)


def load_same_pad(net: SamePadNet, km) -> None:
    _conv2d(net.conv1, km, "down1")
    _conv2d(net.conv2, km, "even4")
    _conv2d(net.conv3, km, "down2")
    _dense(net.fc, km, "dense")


# ==============================================================================================
# 5b + 7. torch.flatten(x, 1) in (c, h, w) order: the Dense rows are reordered when copied


def _flatten_body(keras, L, x):
    x = L.Conv2D(6, 3, activation="relu", name="conv")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dropout(0.3, name="dropout")(x)
    x = L.Dense(16, activation="relu", name="hidden")(x)
    return L.Dense(4, activation="softmax", name="probs")(x)


class FlattenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(6 * 5 * 5, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(self.drop(x)))
        return torch.softmax(self.fc2(x), dim=1)


def load_flatten(net: FlattenNet, km) -> None:
    _conv2d(net.conv, km, "conv")
    kernel, bias = _w(km, "hidden")
    h, w, c = 5, 5, 6
    kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)  # rows (h,w,c) -> (c,h,w)
    _put(net.fc1.weight, kernel.T)
    _put(net.fc1.bias, bias)
    _dense(net.fc2, km, "probs")


def _plant_flatten_order(module: nn.Module):
    """Undo the row reordering: the classic 'copied the Dense after Flatten with a plain .T'."""
    broken = copy.deepcopy(module)
    with torch.no_grad():
        w = broken.fc1.weight  # columns in (c, h, w) order; put them back in (h, w, c) order
        w.copy_(w.reshape(-1, 6, 5, 5).permute(0, 2, 3, 1).reshape(w.shape[0], -1).clone())
    return broken, "hidden"


# ==============================================================================================
# 6. one nn.ReLU used after several convs; one conv applied twice (Keras reuses the layer object)


def _shared_body(keras, L, x):
    x = L.Conv2D(8, 3, padding="same", name="entry")(x)
    x = L.ReLU(name="relu_a")(x)
    shared = L.Conv2D(8, 3, padding="same", name="shared_conv")
    x = L.ReLU(name="relu_b")(shared(x))
    x = L.ReLU(name="relu_c")(shared(x))
    x = L.Conv2D(12, 1, name="mix")(x)
    x = L.ReLU(name="relu_d")(x)
    x = L.GlobalMaxPooling2D(name="gmp")(x)
    return L.Dense(3, name="out")(x)


class SharedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.entry = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Conv2d(8, 8, 3, padding=1)
        self.mix = nn.Conv2d(8, 12, 1)
        self.act = nn.ReLU()
        self.out = nn.Linear(12, 3)

    def forward(self, x):
        x = self.act(self.entry(x))
        x = self.act(self.body(x))
        x = self.act(self.body(x))
        x = self.act(self.mix(x))
        x = torch.amax(x, dim=(2, 3))
        return self.out(x)


def load_shared(net: SharedNet, km) -> None:
    _conv2d(net.entry, km, "entry")
    _conv2d(net.body, km, "shared_conv")
    _conv2d(net.mix, km, "mix")
    _dense(net.out, km, "out")


# ==============================================================================================
# 8a. MobileNet-style: DepthwiseConv2D (multiplier 2), SeparableConv2D -> depthwise + pointwise,
#     ReLU6, BatchNorm, Dropout, and explicit ZeroPad2d((0, 1, 0, 1)) before the stride-2 convs


def _mobilenet_body(keras, L, x):
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw1")(x)
    x = L.BatchNormalization(name="dw1_bn")(x)
    x = L.ReLU(6.0, name="dw1_relu6")(x)
    x = L.Conv2D(16, 1, use_bias=False, name="pw1")(x)
    x = L.BatchNormalization(name="pw1_bn")(x)
    x = L.ReLU(6.0, name="pw1_relu6")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="dw2")(x)
    x = L.ReLU(name="dw2_relu")(x)
    x = L.SeparableConv2D(24, 3, padding="same", activation="relu", name="sep")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    return L.Dense(5, name="classifier")(x)


def _conv_bn_relu6(cin, cout, k=3, stride=1, groups=1):
    pad = nn.ZeroPad2d((0, 1, 0, 1)) if stride == 2 else nn.ZeroPad2d(k // 2)
    return nn.Sequential(
        pad,
        nn.Conv2d(cin, cout, k, stride=stride, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3),
        nn.ReLU6(inplace=True),
    )


class MobileNetTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = _conv_bn_relu6(3, 8, stride=2)
        self.dw1 = _conv_bn_relu6(8, 8, groups=8)
        self.pw1 = _conv_bn_relu6(8, 16, k=1)
        self.dw2_pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.dw2 = nn.Conv2d(16, 32, 3, stride=2, groups=16)
        self.sep_dw = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False)
        self.sep_pw = nn.Conv2d(32, 24, 1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(24, 5)

    def forward(self, x):
        x = self.pw1(self.dw1(self.stem(x)))
        x = F.relu(self.dw2(self.dw2_pad(x)))
        x = F.relu(self.sep_pw(self.sep_dw(x)))
        x = self.dropout(x.mean((2, 3)))
        return self.classifier(x)


def load_mobilenet(net: MobileNetTwin, km) -> None:
    _conv2d(net.stem[1], km, "stem")
    _bn(net.stem[2], km, "stem_bn")
    (dw1,) = _w(km, "dw1")
    _depthwise(net.dw1[1], dw1)
    _bn(net.dw1[2], km, "dw1_bn")
    _conv2d(net.pw1[1], km, "pw1")
    _bn(net.pw1[2], km, "pw1_bn")
    dw2, dw2_bias = _w(km, "dw2")
    _depthwise(net.dw2, dw2)
    _put(net.dw2.bias, dw2_bias)
    sep_dw, sep_pw, sep_bias = _w(km, "sep")
    _depthwise(net.sep_dw, sep_dw)
    _put(net.sep_pw.weight, torch.as_tensor(sep_pw).permute(3, 2, 0, 1))
    _put(net.sep_pw.bias, sep_bias)
    _dense(net.classifier, km, "classifier")


# ==============================================================================================
# 8b. Conv1D with 'causal' padding (F.pad on the left only), dilation 2


def _conv1d_body(keras, L, x):
    x = L.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu", name="causal1")(x)
    x = L.Conv1D(8, 3, padding="causal", activation="relu", name="causal2")(x)
    x = L.Conv1D(12, 3, strides=2, activation="relu", name="valid3")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return L.Dense(3, name="head")(x)


class CausalConv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.tcn1 = nn.Conv1d(4, 8, 3, dilation=2)
        self.tcn2 = nn.Conv1d(8, 8, 3)
        self.conv3 = nn.Conv1d(8, 12, 3, stride=2)
        self.head = nn.Linear(12, 3)
        self.left1 = (4, 0)  # causal: (k - 1) * dilation zeros on the left
        self.left2 = (2, 0)

    def forward(self, x):
        x = F.relu(self.tcn1(F.pad(x, self.left1)))
        x = F.relu(self.tcn2(F.pad(x, self.left2)))
        x = F.relu(self.conv3(x))
        return self.head(x.mean(-1))


def load_conv1d(net: CausalConv1dNet, km) -> None:
    for conv, layer in ((net.tcn1, "causal1"), (net.tcn2, "causal2"), (net.conv3, "valid3")):
        kernel, bias = _w(km, layer)
        _put(conv.weight, torch.as_tensor(kernel).permute(2, 1, 0))  # (k, in, out) -> (out, in, k)
        _put(conv.bias, bias)
    _dense(net.head, km, "head")


# ==============================================================================================
# 8c. Conv3D (small), with MaxPooling3D


def _conv3d_body(keras, L, x):
    x = L.Conv3D(4, 3, padding="same", activation="relu", name="c3d_1")(x)
    x = L.MaxPooling3D(2, name="pool3d")(x)
    x = L.Conv3D(6, 3, padding="same", activation="relu", name="c3d_2")(x)
    x = L.Conv3D(8, 1, activation="relu", name="c3d_3")(x)
    x = L.GlobalAveragePooling3D(name="gap3d")(x)
    return L.Dense(3, name="fc3d")(x)


class Conv3dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv3d(2, 4, 3, padding=1)
        self.c2 = nn.Conv3d(4, 6, 3, padding=1)
        self.c3 = nn.Conv3d(6, 8, 1)
        self.pool = nn.MaxPool3d(2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.pool(F.relu(self.c1(x)))
        x = F.relu(self.c3(F.relu(self.c2(x))))
        return self.fc(x.mean(dim=(2, 3, 4)))


def load_conv3d(net: Conv3dNet, km) -> None:
    for conv, layer in ((net.c1, "c3d_1"), (net.c2, "c3d_2"), (net.c3, "c3d_3")):
        kernel, bias = _w(km, layer)
        _put(conv.weight, torch.as_tensor(kernel).permute(4, 3, 0, 1, 2))  # (kd, kh, kw, in, out) -> (out, in, kd, kh, kw)
        _put(conv.bias, bias)
    _dense(net.fc, km, "fc3d")


# ==============================================================================================
# Renamed: torch names share nothing with the Keras names, declared in a different order than
# they run (head first, then block, then conv_a)


def _renamed_body(keras, L, x):
    x = L.Conv2D(8, 3, padding="same", name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_norm")(x)
    x = L.Activation("relu", name="stem_act")(x)
    x = L.Conv2D(12, 3, padding="same", use_bias=False, name="stage_conv")(x)
    x = L.BatchNormalization(name="stage_norm")(x)
    x = L.Activation("relu", name="stage_act")(x)
    x = L.AveragePooling2D(2, name="stage_pool")(x)
    x = L.Conv2D(16, 1, activation="relu", name="expand")(x)
    x = L.GlobalAveragePooling2D(name="squeeze")(x)
    return L.Dense(7, name="predictions")(x)


class RenamedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 7)
        self.block = nn.Sequential(
            nn.Conv2d(8, 12, 3, padding=1, bias=False),
            nn.BatchNorm2d(12, eps=1e-3),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(12, 16, 1),
            nn.ReLU(),
        )
        self.norm_a = nn.BatchNorm2d(8, eps=1e-3)
        self.conv_a = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.norm_a(self.conv_a(x)))
        x = self.block(x)
        return self.head(x.mean((2, 3)))


def load_renamed(net: RenamedNet, km) -> None:
    _conv2d(net.conv_a, km, "stem_conv")
    _bn(net.norm_a, km, "stem_norm")
    _conv2d(net.block[0], km, "stage_conv")
    _bn(net.block[1], km, "stage_norm")
    _conv2d(net.block[4], km, "expand")
    _dense(net.head, km, "predictions")


# ==============================================================================================
# Registry

_NO_F64_POOL3D = "TF's CPU kernels have no float64 MaxPool3D"


def _twin(name, body, input_shape, **kw) -> Twin:
    return Twin(name=name, build_keras=_builder(body, input_shape, name), input_shape=input_shape, **kw)


_ALL = [
    _twin(
        "functional_activations",
        _functional_body,
        (2, 16, 16, 3),
        torch_cls=FunctionalNet,
        load=load_functional,
        styles=("functional-activations", "same-names"),
        pairs={"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "fc": "fc"},
        planted={"filter": _plant_filter("conv2", 3, "conv2")},
    ),
    _twin(
        "sequential_bn",
        _sequential_body,
        (2, 16, 16, 3),
        torch_cls=SequentialNet,
        load=load_sequential,
        styles=("sequential", "inplace-relu", "batchnorm", "dropout"),
        pairs={
            "conv1": "features.0", "bn1": "features.1", "conv2": "features.3", "bn2": "features.4",
            "conv3": "features.7", "bn3": "features.8", "logits": "classifier.2",
        },
        planted={"filter": _plant_filter("features.3", 5, "conv2"), "train_mode": _plant_train("bn1")},
    ),
    _twin(
        "tiny_resnet",
        _resnet_body,
        (2, 16, 16, 3),
        torch_cls=TinyResNet,
        load=load_resnet,
        styles=("residual", "inplace-relu", "batchnorm", "shared-relu"),
        pairs={
            "stem_conv": "conv1", "stem_bn": "bn1",
            "b1_1_conv": "layer1.conv1", "b1_1_bn": "layer1.bn1", "b1_2_conv": "layer1.conv2", "b1_2_bn": "layer1.bn2",
            "b2_proj_conv": "layer2.downsample.0", "b2_proj_bn": "layer2.downsample.1",
            "b2_1_conv": "layer2.conv1", "b2_1_bn": "layer2.bn1", "b2_2_conv": "layer2.conv2", "b2_2_bn": "layer2.bn2",
            "fc": "fc",
        },
        planted={"filter": _plant_filter("layer1.conv2", 2, "b1_2_conv"), "train_mode": _plant_train("stem_bn")},
    ),
    _twin(
        "same_padding",
        _same_pad_body,
        (2, 16, 16, 3),
        torch_cls=SamePadNet,
        load=load_same_pad,
        styles=("explicit-pad", "even-kernel-same", "permute-flatten"),
        pairs={"down1": "conv1", "even4": "conv2", "down2": "conv3", "dense": "fc"},
        planted={
            "filter": _plant_filter("conv2", 4, "even4"),
            "padding": _plant_attr("pad1", (1, 1, 1, 1), "down1"),
            "padding_even": _plant_attr("pad2.padding", (2, 1, 2, 1), "even4"),
        },
    ),
    _twin(
        "flatten_reordered",
        _flatten_body,
        (2, 12, 12, 2),
        torch_cls=FlattenNet,
        load=load_flatten,
        styles=("flatten-reorder", "dropout", "functional-activations"),
        pairs={"conv": "conv", "hidden": "fc1", "probs": "fc2"},
        planted={
            "filter": _plant_filter("conv", 1, "conv"),
            "train_mode": _plant_train("dropout"),
            "flatten_order": _plant_flatten_order,
        },
    ),
    _twin(
        "shared_modules",
        _shared_body,
        (2, 16, 16, 3),
        torch_cls=SharedNet,
        load=load_shared,
        styles=("shared-activation", "shared-conv"),
        pairs={"entry": "entry", "shared_conv": "body", "mix": "mix", "out": "out"},
        planted={"filter": _plant_filter("body", 6, "shared_conv")},
    ),
    _twin(
        "mobilenet",
        _mobilenet_body,
        (2, 16, 16, 3),
        torch_cls=MobileNetTwin,
        load=load_mobilenet,
        styles=("depthwise", "separable", "explicit-pad", "batchnorm", "dropout", "sequential"),
        pairs={
            "stem": "stem.1", "stem_bn": "stem.2", "dw1": "dw1.1", "dw1_bn": "dw1.2", "pw1": "pw1.1",
            "pw1_bn": "pw1.2", "dw2": "dw2", "sep": "sep_pw", "classifier": "classifier",
        },
        planted={
            "filter": _plant_filter("pw1.1", 3, "pw1"),
            "padding": _plant_attr("dw2_pad.padding", (1, 1, 1, 1), "dw2"),
            "train_mode": _plant_train("stem_bn"),
        },
    ),
    _twin(
        "conv1d_causal",
        _conv1d_body,
        (2, 32, 4),
        torch_cls=CausalConv1dNet,
        load=load_conv1d,
        styles=("conv1d", "causal-pad", "explicit-pad"),
        pairs={"causal1": "tcn1", "causal2": "tcn2", "valid3": "conv3", "head": "head"},
        planted={
            "filter": _plant_filter("tcn2", 2, "causal2"),
            "padding": _plant_attr("left1", (2, 2), "causal1"),
        },
    ),
    _twin(
        "conv3d",
        _conv3d_body,
        (2, 8, 8, 8, 2),
        torch_cls=Conv3dNet,
        load=load_conv3d,
        styles=("conv3d",),
        pairs={"c3d_1": "c1", "c3d_2": "c2", "c3d_3": "c3", "fc3d": "fc"},
        planted={"filter": _plant_filter("c2", 1, "c3d_2")},
        has_float64=False,
        float64_reason=_NO_F64_POOL3D,
    ),
    _twin(
        "renamed_reordered",
        _renamed_body,
        (2, 16, 16, 3),
        torch_cls=RenamedNet,
        load=load_renamed,
        styles=("different-names", "declaration-order", "batchnorm", "sequential"),
        pairs={
            "stem_conv": "conv_a", "stem_norm": "norm_a", "stage_conv": "block.0", "stage_norm": "block.1",
            "expand": "block.4", "predictions": "head",
        },
        planted={"filter": _plant_filter("block.0", 7, "stage_conv"), "train_mode": _plant_train("stem_norm")},
    ),
]

TWINS: dict[str, Twin] = {}
for _t in _ALL:
    if _t.name in TWINS:
        raise ValueError(f"twin {_t.name!r} registered twice")
    TWINS[_t.name] = _t
del _t
