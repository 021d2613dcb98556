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
``keras_layer`` names the first Keras layer whose output the bug changes. Where a skip connection
or concatenation needs the shape kept, the "padding" bug is a wrong padding (``padding_mode=
"reflect"``) rather than a dropped one.

Sections 9 on (SE, U-Net, ShuffleNet, DenseNet, ResNeXt, ConvNeXt, a temporal Conv1d, C3D, forward
idioms, EfficientNet MBConv, FPN, a value-checking forward) record in ``Twin.known`` each case
where xconv's verdict is wrong today; the tests mark those ``xfail(strict=True)``.
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
    # Keras layers whose torch value is not the output of the module in ``pairs`` (a layer scale
    # held as an nn.Parameter of its block): the sanity test does not hook them.
    unhooked: frozenset = frozenset()
    # Cases where xconv is known to give a wrong verdict on this twin, as {case: what goes wrong}.
    # Cases: "float32", "float64", "bug:<kind>", "local:<kind>" (tests/test_twins.py), "*" for all
    # of those, and "transfer" (tests/test_twins_more.py). The tests mark them xfail(strict=True),
    # so they turn red when xconv gets them right.
    known: Mapping[str, str] = field(default_factory=dict)
    # "channels_first": the port takes (N, C, ...) as xconv feeds it; "channels_last": the port
    # takes the Keras layout itself and transposes inside forward.
    torch_layout: str = "channels_first"
    # How close the port is to Keras in float64 (the sanity test's bound). 1e-10 unless Keras itself
    # is less exact than that in float64: tf.nn.gelu(approximate=False) is off by 5e-9 from the
    # true GELU in float64 (measured against math.erf; torch's F.gelu is off by 4e-16), and
    # LeakyReLU(0.1) in float64 is off by 6e-9 (its slope is rounded to float32 first).
    float64_rtol: float = 1e-10
    # The Keras layer where an exact port first differs in float64 because TensorFlow computes it
    # with a float32 constant (the float64_rtol cases): compare must report MISMATCH there and say
    # the difference is Keras' rounding (tests/test_twins.py). "" where the port matches in float64.
    keras_float64_rounding: str = ""
    # How compare is expected to capture the port: "graph" (torch.export), or "hooks" where export
    # cannot trace the forward (a branch on a tensor's value).
    capture: str = "graph"

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
# Second round of twins (written from published designs, same rules: hand-copied weights, the
# torch side in the style of the well-known reference implementations)


def _conv1d_w(conv: nn.Conv1d, keras_model, layer: str) -> None:
    kernel, *bias = _w(keras_model, layer)
    _put(conv.weight, torch.as_tensor(kernel).permute(2, 1, 0))  # (k, in, out) -> (out, in, k)
    if bias:
        _put(conv.bias, bias[0])


def _conv3d_w(conv: nn.Conv3d, keras_model, layer: str) -> None:
    kernel, *bias = _w(keras_model, layer)
    _put(conv.weight, torch.as_tensor(kernel).permute(4, 3, 0, 1, 2))
    if bias:
        _put(conv.bias, bias[0])


def _conv_transpose2d(conv: nn.ConvTranspose2d, keras_model, layer: str) -> None:
    kernel, *bias = _w(keras_model, layer)
    # Keras Conv2DTranspose: (kh, kw, out, in); torch ConvTranspose2d: (in, out, kh, kw), no flip
    _put(conv.weight, torch.as_tensor(kernel).permute(3, 2, 0, 1))
    if bias:
        _put(conv.bias, bias[0])


def _layer_norm(norm: nn.Module, keras_model, layer: str) -> None:
    gamma, beta = _w(keras_model, layer)
    _put(norm.weight, gamma)
    _put(norm.bias, beta)


def _plant_param(path: str, index: int, keras_layer: str) -> Plant:
    """Scale one entry of the parameter at ``path`` (a layer-scale gamma)."""

    def plant(module: nn.Module):
        broken = copy.deepcopy(module)
        with torch.no_grad():
            broken.get_parameter(path)[index].mul_(1.5)
        return broken, keras_layer

    return plant


# ==============================================================================================
# 9. Squeeze-and-Excitation (Hu et al. 2018): two SE blocks in two common styles.
#    Keras: GlobalAveragePooling2D(keepdims=True) -> Dense on the last axis -> Multiply, and
#    GlobalAveragePooling2D -> Dense -> Reshape((1, 1, C)) -> Multiply.
#    torch: the timm/senet.pytorch SELayer (pool, .view(b, c), fc, .view(b, c, 1, 1), x * y), and
#    x.mean((2, 3)) with y[:, :, None, None]; F.hardtanh(x, 0, 6) for the ReLU6.


def _se_body(keras, L, x):
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    s = L.GlobalAveragePooling2D(keepdims=True, name="se1_pool")(x)
    s = L.Dense(8, activation="relu", name="se1_fc1")(s)
    s = L.Dense(16, activation="sigmoid", name="se1_fc2")(s)
    x = L.Multiply(name="se1_scale")([x, s])
    x = L.Conv2D(24, 3, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="conv2_bn")(x)
    x = L.ReLU(name="conv2_relu")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    s = L.GlobalAveragePooling2D(name="se2_pool")(x)
    s = L.Dense(6, activation="relu", name="se2_fc1")(s)
    s = L.Dense(24, activation="sigmoid", name="se2_fc2")(s)
    s = L.Reshape((1, 1, 24), name="se2_reshape")(s)
    x = L.Multiply(name="se2_scale")([x, s])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(5, name="head")(x)


class SELayer(nn.Module):
    def __init__(self, channel, reduction=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SqueezeExcite(nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x):
        y = x.mean((2, 3))
        y = torch.sigmoid(self.fc2(F.relu(self.fc1(y))))
        return x * y[:, :, None, None]


class SENet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-3)
        self.se1 = SELayer(16, 2)
        self.conv2 = nn.Conv2d(16, 24, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(24, eps=1e-3)
        self.se2 = SqueezeExcite(24, 6)
        self.head = nn.Linear(24, 5)

    def forward(self, x):
        x = F.hardtanh(self.bn1(self.conv1(x)), 0.0, 6.0)
        x = self.se1(x)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.se2(x)
        return self.head(x.mean((2, 3)))


def load_se(net: SENet, km) -> None:
    _conv2d(net.conv1, km, "stem")
    _bn(net.bn1, km, "stem_bn")
    _dense(net.se1.fc[0], km, "se1_fc1")
    _dense(net.se1.fc[2], km, "se1_fc2")
    _conv2d(net.conv2, km, "conv2")
    _bn(net.bn2, km, "conv2_bn")
    _dense(net.se2.fc1, km, "se2_fc1")
    _dense(net.se2.fc2, km, "se2_fc2")
    _dense(net.head, km, "head")


# ==============================================================================================
# 10. A small U-Net (Ronneberger et al. 2015, as milesial/Pytorch-UNet writes it): ConvTranspose2d
#     upsampling with a torch.cat skip, and an F.interpolate(scale_factor=2, mode="nearest") path
#     where Keras has UpSampling2D.


def _unet_body(keras, L, x):
    e1 = L.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(x)
    p1 = L.MaxPooling2D(2, name="pool1")(e1)
    e2 = L.Conv2D(16, 3, padding="same", activation="relu", name="enc2")(p1)
    p2 = L.MaxPooling2D(2, name="pool2")(e2)
    b = L.Conv2D(32, 3, padding="same", activation="relu", name="bottleneck")(p2)
    u2 = L.Conv2DTranspose(16, 2, strides=2, name="up2")(b)
    c2 = L.Concatenate(name="cat2")([u2, e2])
    d2 = L.Conv2D(16, 3, padding="same", activation="relu", name="dec2")(c2)
    u1 = L.UpSampling2D(2, name="up1")(d2)
    c1 = L.Concatenate(name="cat1")([u1, e1])
    d1 = L.Conv2D(8, 3, padding="same", activation="relu", name="dec1")(c1)
    return L.Conv2D(2, 1, name="seg")(d1)


def _conv_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class UpConcat(nn.Module):
    def __init__(self, cin, cout, bilinear=False):
        super().__init__()
        self.bilinear = bilinear
        if not bilinear:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = _conv_relu(cin // 2 + cout if not bilinear else cin + cout, cout)
        self.skip_first = False  # torch.cat([x2, x1]) in the reference code; Keras has [up, skip]

    def forward(self, x1, x2):
        x1 = F.interpolate(x1, scale_factor=2, mode="nearest") if self.bilinear else self.up(x1)
        x = torch.cat([x2, x1], dim=1) if self.skip_first else torch.cat([x1, x2], dim=1)
        return self.conv(x)


class SmallUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inc = _conv_relu(3, 8)
        self.down1 = _conv_relu(8, 16)
        self.down2 = _conv_relu(16, 32)
        self.up1 = UpConcat(32, 16)
        self.up2 = UpConcat(16, 8, bilinear=True)
        self.outc = nn.Conv2d(8, 2, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        x = self.up1(x3, x2)
        x = self.up2(x, x1)
        return self.outc(x)


def load_unet(net: SmallUNet, km) -> None:
    _conv2d(net.inc[0], km, "enc1")
    _conv2d(net.down1[0], km, "enc2")
    _conv2d(net.down2[0], km, "bottleneck")
    _conv_transpose2d(net.up1.up, km, "up2")
    _conv2d(net.up1.conv[0], km, "dec2")
    _conv2d(net.up2.conv[0], km, "dec1")
    _conv2d(net.outc, km, "seg")


# ==============================================================================================
# 11. ShuffleNet V2 units (Ma et al. 2018, as torchvision writes them): x.chunk(2, dim=1), a
#     branch of 1x1 / depthwise 3x3 / 1x1, torch.cat, channel_shuffle by view/transpose/view; the
#     second unit splits by slicing (x[:, :c]). Keras: Lambda slices, Concatenate, and the shuffle
#     as Reshape -> Permute -> Reshape (as the published Keras ports do).


def _shuffle_body(keras, L, x):
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    size = 16
    for u in (1, 2):
        if u == 2:
            x = L.MaxPooling2D(2, name="pool")(x)
            size //= 2
        keep = L.Lambda(lambda z: z[..., :8], name=f"u{u}_split_keep")(x)
        y = L.Lambda(lambda z: z[..., 8:], name=f"u{u}_split_branch")(x)
        y = L.Conv2D(8, 1, use_bias=False, name=f"u{u}_pw1")(y)
        y = L.BatchNormalization(name=f"u{u}_pw1_bn")(y)
        y = L.ReLU(name=f"u{u}_pw1_relu")(y)
        y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"u{u}_dw")(y)
        y = L.BatchNormalization(name=f"u{u}_dw_bn")(y)
        y = L.Conv2D(8, 1, use_bias=False, name=f"u{u}_pw2")(y)
        y = L.BatchNormalization(name=f"u{u}_pw2_bn")(y)
        y = L.ReLU(name=f"u{u}_pw2_relu")(y)
        x = L.Concatenate(name=f"u{u}_cat")([keep, y])
        x = L.Reshape((size, size, 2, 8), name=f"u{u}_shuffle_split")(x)
        x = L.Permute((1, 2, 4, 3), name=f"u{u}_shuffle_swap")(x)
        x = L.Reshape((size, size, 16), name=f"u{u}_shuffle_merge")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(6, name="fc")(x)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batchsize, num_channels, height, width = x.size()
    channels_per_group = num_channels // groups
    x = x.view(batchsize, groups, channels_per_group, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batchsize, -1, height, width)


class InvertedResidual(nn.Module):
    def __init__(self, channels, use_slice=False):
        super().__init__()
        half = channels // 2
        self.use_slice = use_slice
        self.branch2 = nn.Sequential(
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half, eps=1e-3),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 3, padding=1, groups=half, bias=False),
            nn.BatchNorm2d(half, eps=1e-3),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half, eps=1e-3),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        if self.use_slice:
            c = x.shape[1] // 2
            x1, x2 = x[:, :c], x[:, c:]
        else:
            x1, x2 = x.chunk(2, dim=1)
        out = torch.cat((x1, self.branch2(x2)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16, eps=1e-3), nn.ReLU(inplace=True))
        self.stage = nn.Sequential(InvertedResidual(16), nn.MaxPool2d(2), InvertedResidual(16, use_slice=True))
        self.fc = nn.Linear(16, 6)

    def forward(self, x):
        x = self.stage(self.conv1(x))
        return self.fc(x.mean([2, 3]))


def load_shuffle(net: ShuffleNetTwin, km) -> None:
    _conv2d(net.conv1[0], km, "stem")
    _bn(net.conv1[1], km, "stem_bn")
    for unit, u in ((net.stage[0], 1), (net.stage[2], 2)):
        b = unit.branch2
        _conv2d(b[0], km, f"u{u}_pw1")
        _bn(b[1], km, f"u{u}_pw1_bn")
        (dw,) = _w(km, f"u{u}_dw")
        _depthwise(b[3], dw)
        _bn(b[4], km, f"u{u}_dw_bn")
        _conv2d(b[5], km, f"u{u}_pw2")
        _bn(b[6], km, f"u{u}_pw2_bn")
    _dense(net.fc, km, "fc")


def _plant_no_shuffle(module: nn.Module):
    """Forget the channel shuffle in the first unit (a port that shuffles with groups=1)."""
    broken = copy.deepcopy(module)
    unit = broken.stage[0]
    unit.forward = lambda x, self=unit: torch.cat(x.chunk(2, dim=1)[:1] + (self.branch2(x.chunk(2, dim=1)[1]),), 1)
    return broken, "u1_shuffle_merge"


# ==============================================================================================
# 12. DenseNet (Huang et al. 2017, as torchvision writes it): pre-activation BN-ReLU-Conv layers
#     in an nn.ModuleList, a features list and torch.cat(features, 1) in a loop; Keras grows the
#     tensor with one Concatenate per layer (as keras.applications.DenseNet does).


def _dense_body(keras, L, x):
    eps = 1.001e-5
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv0")(x)
    for i in range(3):
        y = L.BatchNormalization(epsilon=eps, name=f"db{i}_bn")(x)
        y = L.Activation("relu", name=f"db{i}_relu")(y)
        y = L.Conv2D(4, 3, padding="same", use_bias=False, name=f"db{i}_conv")(y)
        x = L.Concatenate(name=f"db{i}_cat")([x, y])
    x = L.BatchNormalization(epsilon=eps, name="tr_bn")(x)
    x = L.Activation("relu", name="tr_relu")(x)
    x = L.Conv2D(10, 1, use_bias=False, name="tr_conv")(x)
    x = L.AveragePooling2D(2, name="tr_pool")(x)
    x = L.BatchNormalization(epsilon=eps, name="final_bn")(x)
    x = L.Activation("relu", name="final_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(4, name="classifier")(x)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin, eps=1.001e-5)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv(self.relu(self.norm(x)))


class DenseBlock(nn.Module):
    def __init__(self, n, cin, growth):
        super().__init__()
        self.layers = nn.ModuleList([DenseLayer(cin + i * growth, growth) for i in range(n)])
        self.newest_first = False  # planted bug: the block's output concatenated newest-first

    def forward(self, init):
        features = [init]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features[::-1] if self.newest_first else features, 1)


class TinyDenseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.block = DenseBlock(3, 8, 4)
        self.transition = nn.Sequential(
            nn.BatchNorm2d(20, eps=1.001e-5), nn.ReLU(inplace=True), nn.Conv2d(20, 10, 1, bias=False), nn.AvgPool2d(2)
        )
        self.norm5 = nn.BatchNorm2d(10, eps=1.001e-5)
        self.classifier = nn.Linear(10, 4)

    def forward(self, x):
        x = self.transition(self.block(self.conv0(x)))
        x = F.relu(self.norm5(x), inplace=True)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def load_dense(net: TinyDenseNet, km) -> None:
    _conv2d(net.conv0, km, "conv0")
    for i, layer in enumerate(net.block.layers):
        _bn(layer.norm, km, f"db{i}_bn")
        _conv2d(layer.conv, km, f"db{i}_conv")
    _bn(net.transition[0], km, "tr_bn")
    _conv2d(net.transition[2], km, "tr_conv")
    _bn(net.norm5, km, "final_bn")
    _dense(net.classifier, km, "classifier")


# ==============================================================================================
# 13. ResNeXt bottleneck (Xie et al. 2017): grouped 3x3 conv with 32 groups (2 channels each),
#     out = self.relu(out + identity); then a depthwise-separable block written as Conv2d(groups=C)
#     and a 1x1 conv (Keras: DepthwiseConv2D + Conv2D 1x1).


def _resnext_body(keras, L, x):
    x = L.Conv2D(32, 3, padding="same", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(epsilon=1e-5, name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.Conv2D(64, 1, use_bias=False, name="rx_reduce")(x)
    y = L.BatchNormalization(epsilon=1e-5, name="rx_reduce_bn")(y)
    y = L.ReLU(name="rx_reduce_relu")(y)
    y = L.Conv2D(64, 3, padding="same", groups=32, use_bias=False, name="rx_group")(y)
    y = L.BatchNormalization(epsilon=1e-5, name="rx_group_bn")(y)
    y = L.ReLU(name="rx_group_relu")(y)
    y = L.Conv2D(32, 1, use_bias=False, name="rx_expand")(y)
    y = L.BatchNormalization(epsilon=1e-5, name="rx_expand_bn")(y)
    x = L.Add(name="rx_add")([x, y])
    x = L.ReLU(name="rx_out")(x)
    x = L.DepthwiseConv2D(3, strides=1, padding="same", use_bias=False, name="ds_dw")(x)
    x = L.BatchNormalization(epsilon=1e-5, name="ds_dw_bn")(x)
    x = L.ReLU(name="ds_dw_relu")(x)
    x = L.Conv2D(48, 1, use_bias=False, name="ds_pw")(x)
    x = L.BatchNormalization(epsilon=1e-5, name="ds_pw_bn")(x)
    x = L.ReLU(name="ds_pw_relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(3, name="fc")(x)


class ResNeXtBottleneck(nn.Module):
    def __init__(self, inplanes, width, groups):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, inplanes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.bn_dw = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.bn_dw(self.depthwise(x)))
        return F.relu(self.bn_pw(self.pointwise(x)))


class ResNeXtTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
        self.block = ResNeXtBottleneck(32, 64, groups=32)
        self.sep = DepthwiseSeparable(32, 48)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(48, 3)

    def forward(self, x):
        x = self.sep(self.block(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def load_resnext(net: ResNeXtTwin, km) -> None:
    _conv2d(net.stem[0], km, "stem")
    _bn(net.stem[1], km, "stem_bn")
    b = net.block
    for conv, bn, name in ((b.conv1, b.bn1, "rx_reduce"), (b.conv2, b.bn2, "rx_group"), (b.conv3, b.bn3, "rx_expand")):
        _conv2d(conv, km, name)  # grouped: Keras (kh, kw, in/groups, out) is torch (out, in/groups, kh, kw)
        _bn(bn, km, f"{name}_bn")
    (dw,) = _w(km, "ds_dw")
    _depthwise(net.sep.depthwise, dw)
    _bn(net.sep.bn_dw, km, "ds_dw_bn")
    _conv2d(net.sep.pointwise, km, "ds_pw")
    _bn(net.sep.bn_pw, km, "ds_pw_bn")
    _dense(net.fc, km, "fc")


# ==============================================================================================
# 14. ConvNeXt block (Liu et al. 2022, as facebookresearch/ConvNeXt writes it): a channels-first
#     LayerNorm class after the stem, depthwise 7x7, permute to NHWC, nn.LayerNorm, Linear, GELU,
#     Linear, a layer-scale nn.Parameter gamma, permute back, residual. Keras: DepthwiseConv2D,
#     LayerNormalization, Dense on the last axis, a LayerScale layer with one weight.


def _layer_scale_cls():
    keras = _keras()

    class LayerScale(keras.layers.Layer):
        """x * gamma, gamma of shape (channels,), as keras.applications.convnext's LayerScale."""

        def __init__(self, init_values, projection_dim, **kwargs):
            super().__init__(**kwargs)
            self.init_values = init_values
            self.projection_dim = projection_dim

        def build(self, _input_shape):
            self.gamma = self.add_weight(
                shape=(self.projection_dim,),
                initializer=keras.initializers.Constant(self.init_values),
                name="gamma",
            )

        def call(self, x):
            return x * self.gamma

        def get_config(self):
            return {**super().get_config(), "init_values": self.init_values, "projection_dim": self.projection_dim}

    return LayerScale


def _convnext_body(keras, L, x, layer_scale=True):
    LayerScale = _layer_scale_cls()
    x = L.Conv2D(16, 2, strides=2, name="stem")(x)
    x = L.LayerNormalization(epsilon=1e-6, name="stem_ln")(x)
    for i in range(2):
        shortcut = x
        y = L.DepthwiseConv2D(7, padding="same", name=f"blk{i}_dw")(x)
        y = L.LayerNormalization(epsilon=1e-6, name=f"blk{i}_ln")(y)
        y = L.Dense(64, name=f"blk{i}_pw1")(y)
        y = L.Activation("gelu", name=f"blk{i}_gelu")(y)
        y = L.Dense(16, name=f"blk{i}_pw2")(y)
        if layer_scale:
            y = LayerScale(1e-6, 16, name=f"blk{i}_ls")(y)
        x = L.Add(name=f"blk{i}_add")([shortcut, y])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.LayerNormalization(epsilon=1e-6, name="head_ln")(x)
    return L.Dense(5, name="head")(x)


class LayerNorm2d(nn.Module):
    """ConvNeXt's LayerNorm for data_format='channels_first'."""

    def __init__(self, normalized_shape, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = (
            nn.Parameter(layer_scale_init_value * torch.ones(dim), requires_grad=True) if layer_scale_init_value > 0 else None
        )
        self.drop_path = nn.Identity()

    def forward(self, x):
        input = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        x = self.norm(x)
        x = self.pwconv1(x)
        x = self.act(x)
        x = self.pwconv2(x)
        if self.gamma is not None:
            x = self.gamma * x
        x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        return input + self.drop_path(x)


class TinyConvNeXt(nn.Module):
    def __init__(self):
        super().__init__()
        self.downsample = nn.Sequential(nn.Conv2d(3, 16, kernel_size=2, stride=2), LayerNorm2d(16, eps=1e-6))
        self.stages = nn.Sequential(*[ConvNeXtBlock(16) for _ in range(2)])
        self.norm = nn.LayerNorm(16, eps=1e-6)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stages(self.downsample(x))
        return self.head(self.norm(x.mean([-2, -1])))


def _convnext_plain_body(keras, L, x):
    return _convnext_body(keras, L, x, layer_scale=False)


class TinyConvNeXtPlain(TinyConvNeXt):
    """layer_scale_init_value=0: the official code then has no gamma (``self.gamma = None``)."""

    def __init__(self):
        super().__init__()
        self.stages = nn.Sequential(*[ConvNeXtBlock(16, layer_scale_init_value=0.0) for _ in range(2)])


def load_convnext(net: TinyConvNeXt, km) -> None:
    _conv2d(net.downsample[0], km, "stem")
    _layer_norm(net.downsample[1], km, "stem_ln")
    for i, blk in enumerate(net.stages):
        dw, dw_bias = _w(km, f"blk{i}_dw")
        _depthwise(blk.dwconv, dw)
        _put(blk.dwconv.bias, dw_bias)
        _layer_norm(blk.norm, km, f"blk{i}_ln")
        _dense(blk.pwconv1, km, f"blk{i}_pw1")
        _dense(blk.pwconv2, km, f"blk{i}_pw2")
        if blk.gamma is not None:
            (gamma,) = _w(km, f"blk{i}_ls")
            _put(blk.gamma, gamma)
    _layer_norm(net.norm, km, "head_ln")
    _dense(net.head, km, "head")


class LayerScaleModule(nn.Module):
    """timm's LayerScale (vision_transformer.py): the layer scale as a module of its own."""

    def __init__(self, dim, init_values=1e-5, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x.mul_(self.gamma) if self.inplace else x * self.gamma


class ConvNeXtBlockTimm(nn.Module):
    """The same block with an Mlp submodule and a LayerScale module (timm-style names)."""

    def __init__(self, dim):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ls = LayerScaleModule(dim, 1e-6)

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x).permute(0, 2, 3, 1)
        x = self.ls(self.mlp(self.norm(x)))
        return x.permute(0, 3, 1, 2) + shortcut


class TinyConvNeXtTimm(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, kernel_size=2, stride=2), LayerNorm2d(16, eps=1e-6))
        self.blocks = nn.ModuleList([ConvNeXtBlockTimm(16) for _ in range(2)])
        self.head_norm = nn.LayerNorm(16, eps=1e-6)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        for blk in self.blocks:
            x = blk(x)
        return self.fc(self.head_norm(x.mean((2, 3))))


def load_convnext_timm(net: TinyConvNeXtTimm, km) -> None:
    _conv2d(net.stem[0], km, "stem")
    _layer_norm(net.stem[1], km, "stem_ln")
    for i, blk in enumerate(net.blocks):
        dw, dw_bias = _w(km, f"blk{i}_dw")
        _depthwise(blk.conv_dw, dw)
        _put(blk.conv_dw.bias, dw_bias)
        _layer_norm(blk.norm, km, f"blk{i}_ln")
        _dense(blk.mlp[0], km, f"blk{i}_pw1")
        _dense(blk.mlp[2], km, f"blk{i}_pw2")
        (gamma,) = _w(km, f"blk{i}_ls")
        _put(blk.ls.gamma, gamma)
    _layer_norm(net.head_norm, km, "head_ln")
    _dense(net.fc, km, "head")


# ==============================================================================================
# 15. A temporal Conv1d model (a TCN / keyword-spotting style classifier): the port takes the
#     dataloader's (batch, time, features) and does x.transpose(1, 2) itself; 'same' paddings,
#     dilation, BatchNorm1d, F.leaky_relu(x, 0.1), x.max(dim=-1)[0] for global max pooling.


def _temporal_body(keras, L, x):
    x = L.Conv1D(16, 5, padding="same", name="tconv1")(x)
    x = L.BatchNormalization(name="tbn1")(x)
    x = L.LeakyReLU(0.1, name="tact1")(x)
    x = L.Conv1D(16, 3, padding="same", dilation_rate=2, name="tconv2")(x)
    x = L.BatchNormalization(name="tbn2")(x)
    x = L.LeakyReLU(0.1, name="tact2")(x)
    x = L.MaxPooling1D(2, name="tpool")(x)
    x = L.Conv1D(24, 3, padding="same", activation="relu", name="tconv3")(x)
    x = L.GlobalMaxPooling1D(name="gmp")(x)
    x = L.Dropout(0.25, name="tdrop")(x)
    return L.Dense(4, name="tdense")(x)


class TemporalConvNet(nn.Module):
    def __init__(self, n_features=6, n_classes=4):
        super().__init__()
        self.conv1 = nn.Conv1d(n_features, 16, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(16, eps=1e-3)
        self.conv2 = nn.Conv1d(16, 16, 3, padding=2, dilation=2)
        self.bn2 = nn.BatchNorm1d(16, eps=1e-3)
        self.conv3 = nn.Conv1d(16, 24, 3, padding=1)
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(24, n_classes)

    def forward(self, x):
        x = x.transpose(1, 2)  # (batch, time, features) -> (batch, features, time)
        x = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        x = F.leaky_relu(self.bn2(self.conv2(x)), 0.1)
        x = F.max_pool1d(x, 2)
        x = F.relu(self.conv3(x))
        x = x.max(dim=-1)[0]
        return self.fc(self.dropout(x))


def load_temporal(net: TemporalConvNet, km) -> None:
    _conv1d_w(net.conv1, km, "tconv1")
    _bn(net.bn1, km, "tbn1")
    _conv1d_w(net.conv2, km, "tconv2")
    _bn(net.bn2, km, "tbn2")
    _conv1d_w(net.conv3, km, "tconv3")
    _dense(net.fc, km, "tdense")


class ChannelsFirstTemporal(TemporalConvNet):
    """The same port fed channels-first, as xconv documents (for the planted bugs to be reachable):
    the transpose is undone first so the module's own forward runs unchanged."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2))


# ==============================================================================================
# 16. A Conv3D classifier (C3D-like): Conv3d + BatchNorm3d + ReLU in nn.Sequential, MaxPool3d,
#     AdaptiveAvgPool3d(1) + torch.flatten, Dropout, Linear.


def _c3d_body(keras, L, x):
    x = L.Conv3D(6, 3, padding="same", use_bias=False, name="c1")(x)
    x = L.BatchNormalization(momentum=0.99, name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.MaxPooling3D(2, name="mp1")(x)
    x = L.Conv3D(8, 3, padding="same", use_bias=False, name="c2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.GlobalAveragePooling3D(name="gap")(x)
    x = L.Dropout(0.3, name="drop")(x)
    return L.Dense(3, name="fc")(x)


class C3DClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(2, 6, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(6, eps=1e-3, momentum=0.01),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=2, stride=2),
            nn.Conv3d(6, 8, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm3d(8, eps=1e-3, momentum=0.01),
            nn.ReLU(inplace=True),
        )
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(p=0.3)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))


def load_c3d(net: C3DClassifier, km) -> None:
    _conv3d_w(net.features[0], km, "c1")
    _bn(net.features[1], km, "bn1")
    _conv3d_w(net.features[4], km, "c2")
    _bn(net.features[5], km, "bn2")
    _dense(net.fc, km, "fc")


# ==============================================================================================
# 17. Forward idioms: a shape assert, an nn.ModuleList loop with the activation picked by index
#     (F.leaky_relu, then F.hardtanh(x, 0, 6) as ReLU6), a channel slice x[:, :c] (Keras: a
#     Lambda), F.adaptive_avg_pool2d + torch.flatten(x, 1).


def _idioms_body(keras, L, x):
    for i, filters in enumerate((8, 12, 16)):
        x = L.Conv2D(filters, 3, padding="same", name=f"stage{i}_conv")(x)
        x = L.LeakyReLU(0.2, name=f"stage{i}_act")(x) if i == 0 else L.ReLU(6.0, name=f"stage{i}_act")(x)
        if i < 2:
            x = L.MaxPooling2D(2, name=f"stage{i}_pool")(x)
    x = L.Conv2D(16, 1, name="mix")(x)
    x = L.Lambda(lambda z: z[..., :8], name="take_half")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return L.Dense(3, activation="softmax", name="probs")(x)


class IdiomNet(nn.Module):
    in_channels = 3

    def __init__(self):
        super().__init__()
        widths = (3, 8, 12, 16)
        self.stages = nn.ModuleList([nn.Conv2d(widths[i], widths[i + 1], 3, padding=1) for i in range(3)])
        self.mix = nn.Conv2d(16, 16, 1)
        self.start, self.keep = 0, 8
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        assert x.dim() == 4 and x.shape[1] == self.in_channels, f"expected (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
        for i, conv in enumerate(self.stages):
            x = conv(x)
            x = F.leaky_relu(x, 0.2) if i == 0 else F.hardtanh(x, 0.0, 6.0)
            if i < len(self.stages) - 1:
                x = F.max_pool2d(x, 2)
        x = self.mix(x)[:, self.start : self.start + self.keep]
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.softmax(self.classifier(x), dim=-1)


def load_idioms(net: IdiomNet, km) -> None:
    for i, conv in enumerate(net.stages):
        _conv2d(conv, km, f"stage{i}_conv")
    _conv2d(net.mix, km, "mix")
    _dense(net.classifier, km, "probs")


# ==============================================================================================
# 18. EfficientNet MBConv (Tan & Le 2019; Keras as keras.applications.efficientnet writes it,
#     torch as EfficientNet-PyTorch does): swish written by hand (x * torch.sigmoid(x)) and as
#     F.silu, an SE of 1x1 Conv2d on the pooled (N, C, 1, 1) map, a residual, Dropout.


def _mbconv_body(keras, L, x):
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.Activation("swish", name="stem_act")(x)
    inputs = x
    x = L.Conv2D(64, 1, use_bias=False, name="b_expand")(x)
    x = L.BatchNormalization(name="b_expand_bn")(x)
    x = L.Activation("swish", name="b_expand_act")(x)
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="b_dw")(x)
    x = L.BatchNormalization(name="b_dw_bn")(x)
    x = L.Activation("swish", name="b_dw_act")(x)
    s = L.GlobalAveragePooling2D(name="b_se_squeeze")(x)
    s = L.Reshape((1, 1, 64), name="b_se_reshape")(s)
    s = L.Conv2D(4, 1, activation="swish", name="b_se_reduce")(s)
    s = L.Conv2D(64, 1, activation="sigmoid", name="b_se_expand")(s)
    x = L.Multiply(name="b_se_excite")([x, s])
    x = L.Conv2D(16, 1, use_bias=False, name="b_project")(x)
    x = L.BatchNormalization(name="b_project_bn")(x)
    x = L.Dropout(0.2, noise_shape=(None, 1, 1, 1), name="b_drop")(x)
    x = L.Add(name="b_add")([x, inputs])
    x = L.Conv2D(32, 1, use_bias=False, name="top_conv")(x)
    x = L.BatchNormalization(name="top_bn")(x)
    x = L.Activation("swish", name="top_act")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dropout(0.2, name="top_dropout")(x)
    return L.Dense(5, name="predictions")(x)


class MBConvBlock(nn.Module):
    def __init__(self, cin, expand, se, cout):
        super().__init__()
        self._expand_conv = nn.Conv2d(cin, expand, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(expand, momentum=0.01, eps=1e-3)
        self._depthwise_conv = nn.Conv2d(expand, expand, 3, padding=1, groups=expand, bias=False)
        self._bn1 = nn.BatchNorm2d(expand, momentum=0.01, eps=1e-3)
        self._se_reduce = nn.Conv2d(expand, se, 1)
        self._se_expand = nn.Conv2d(se, expand, 1)
        self._project_conv = nn.Conv2d(expand, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, momentum=0.01, eps=1e-3)
        self.drop = nn.Dropout(0.2)
        self.relu_instead_of_swish = False  # planted bug: the expansion's swish ported as ReLU

    def forward(self, inputs):
        x = self._bn0(self._expand_conv(inputs))
        x = F.relu(x) if self.relu_instead_of_swish else x * torch.sigmoid(x)
        x = F.silu(self._bn1(self._depthwise_conv(x)))
        x_squeezed = F.adaptive_avg_pool2d(x, 1)
        x_squeezed = self._se_expand(F.silu(self._se_reduce(x_squeezed)))
        x = torch.sigmoid(x_squeezed) * x
        x = self._bn2(self._project_conv(x))
        return self.drop(x) + inputs


class TinyEfficientNet(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(16, momentum=0.01, eps=1e-3)
        self._blocks = nn.ModuleList([MBConvBlock(16, 64, 4, 16)])
        self._conv_head = nn.Conv2d(16, 32, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(32, momentum=0.01, eps=1e-3)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(32, 5)

    def forward(self, x):
        x = F.silu(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.silu(self._bn1(self._conv_head(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(start_dim=1)
        return self._fc(self._dropout(x))


def load_mbconv(net: TinyEfficientNet, km) -> None:
    _conv2d(net._conv_stem, km, "stem_conv")
    _bn(net._bn0, km, "stem_bn")
    b = net._blocks[0]
    _conv2d(b._expand_conv, km, "b_expand")
    _bn(b._bn0, km, "b_expand_bn")
    (dw,) = _w(km, "b_dw")
    _depthwise(b._depthwise_conv, dw)
    _bn(b._bn1, km, "b_dw_bn")
    _conv2d(b._se_reduce, km, "b_se_reduce")
    _conv2d(b._se_expand, km, "b_se_expand")
    _conv2d(b._project_conv, km, "b_project")
    _bn(b._bn2, km, "b_project_bn")
    _conv2d(net._conv_head, km, "top_conv")
    _bn(net._bn1, km, "top_bn")
    _dense(net._fc, km, "predictions")


# ==============================================================================================
# 19. A feature pyramid top-down path (Lin et al. 2017, as torchvision's FeaturePyramidNetwork
#     writes it): lateral 1x1 convs, F.interpolate(size=..., mode="bilinear", align_corners=False)
#     plus the lateral, where Keras has UpSampling2D(interpolation="bilinear") and Add.


def _fpn_body(keras, L, x):
    c1 = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    c2 = L.Conv2D(16, 3, padding="same", activation="relu", name="c2")(L.MaxPooling2D(2, name="pool1")(c1))
    c3 = L.Conv2D(32, 3, padding="same", activation="relu", name="c3")(L.MaxPooling2D(2, name="pool2")(c2))
    p3 = L.Conv2D(16, 1, name="lat3")(c3)
    up3 = L.UpSampling2D(2, interpolation="bilinear", name="up3")(p3)
    p2 = L.Add(name="merge2")([up3, L.Conv2D(16, 1, name="lat2")(c2)])
    up2 = L.UpSampling2D(2, interpolation="bilinear", name="up2")(p2)
    p1 = L.Add(name="merge1")([up2, L.Conv2D(16, 1, name="lat1")(c1)])
    return L.Conv2D(4, 3, padding="same", name="smooth")(p1)


class TinyFPN(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.ModuleDict(
            {"c1": nn.Conv2d(3, 8, 3, padding=1), "c2": nn.Conv2d(8, 16, 3, padding=1), "c3": nn.Conv2d(16, 32, 3, padding=1)}
        )
        self.inner_blocks = nn.ModuleList([nn.Conv2d(8, 16, 1), nn.Conv2d(16, 16, 1), nn.Conv2d(32, 16, 1)])
        self.layer_block = nn.Conv2d(16, 4, 3, padding=1)
        self.align_corners = False

    def forward(self, x):
        c1 = F.relu(self.body["c1"](x))
        c2 = F.relu(self.body["c2"](F.max_pool2d(c1, 2)))
        c3 = F.relu(self.body["c3"](F.max_pool2d(c2, 2)))
        feats = [c1, c2, c3]
        last_inner = self.inner_blocks[-1](feats[-1])
        for idx in range(len(feats) - 2, -1, -1):
            inner_lateral = self.inner_blocks[idx](feats[idx])
            feat_shape = inner_lateral.shape[-2:]
            top_down = F.interpolate(last_inner, size=feat_shape, mode="bilinear", align_corners=self.align_corners)
            last_inner = top_down + inner_lateral
        return self.layer_block(last_inner)


def load_fpn(net: TinyFPN, km) -> None:
    for name in ("c1", "c2", "c3"):
        _conv2d(net.body[name], km, name)
    for i, name in enumerate(("lat1", "lat2", "lat3")):
        _conv2d(net.inner_blocks[i], km, name)
    _conv2d(net.layer_block, km, "smooth")


# ==============================================================================================
# 20. A forward that checks its input's values (if torch.isnan(x).any(): raise ...): torch.export
#     cannot trace a branch on a tensor's value, so compare falls back to hooks (and says so).


def _guarded_body(keras, L, x):
    x = L.Conv2D(8, 3, padding="same", name="conv_a")(x)
    x = L.BatchNormalization(name="bn_a")(x)
    x = L.ReLU(name="relu_a")(x)
    x = L.MaxPooling2D(2, name="pool_a")(x)
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="conv_b")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dropout(0.1, name="drop")(x)
    return L.Dense(4, name="logits")(x)


class GuardedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 8, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(8, eps=1e-3)
        self.conv_b = nn.Conv2d(8, 12, 3, padding=1)
        self.drop = nn.Dropout(0.1)
        self.logits = nn.Linear(12, 4)

    def forward(self, x):
        if torch.isnan(x).any():
            raise ValueError("NaN in the input batch")
        x = F.max_pool2d(F.relu(self.bn_a(self.conv_a(x))), 2)
        x = F.relu(self.conv_b(x))
        return self.logits(self.drop(x.mean((2, 3))))


def load_guarded(net: GuardedNet, km) -> None:
    _conv2d(net.conv_a, km, "conv_a")
    _bn(net.bn_a, km, "bn_a")
    _conv2d(net.conv_b, km, "conv_b")
    _dense(net.logits, km, "logits")


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

# Second round (section 9 on)
_ALL += [
    _twin(
        "squeeze_excite",
        _se_body,
        (2, 16, 16, 3),
        torch_cls=SENet,
        load=load_se,
        styles=("squeeze-excite", "keepdims-pool", "reshape-multiply", "hardtanh-relu6", "view", "batchnorm"),
        pairs={
            "stem": "conv1", "stem_bn": "bn1", "se1_fc1": "se1.fc.0", "se1_fc2": "se1.fc.2", "conv2": "conv2",
            "conv2_bn": "bn2", "se2_fc1": "se2.fc1", "se2_fc2": "se2.fc2", "head": "head",
        },
        planted={
            "filter": _plant_filter("conv2", 3, "conv2"),
            "se_fc": _plant_filter("se1.fc.0", 0, "se1_fc1"),
            "se2_fc": _plant_filter("se2.fc1", 3, "se2_fc1"),
            "padding": _plant_attr("conv1.padding_mode", "reflect", "stem"),
            "train_mode": _plant_train("stem_bn"),
        },
    ),
    _twin(
        "unet_small",
        _unet_body,
        (2, 16, 16, 3),
        torch_cls=SmallUNet,
        load=load_unet,
        styles=("conv-transpose", "cat-skip", "interpolate-nearest", "upsampling2d", "sequential", "inplace-relu"),
        pairs={
            "enc1": "inc.0", "enc2": "down1.0", "bottleneck": "down2.0", "up2": "up1.up", "dec2": "up1.conv.0",
            "dec1": "up2.conv.0", "seg": "outc",
        },
        planted={
            "filter": _plant_filter("up1.up", 2, "up2"),
            "padding": _plant_attr("up1.conv.0.padding_mode", "reflect", "dec2"),
            "cat_order": _plant_attr("up1.skip_first", True, "cat2"),
        },
    ),
    _twin(
        "shufflenet_v2",
        _shuffle_body,
        (2, 16, 16, 3),
        torch_cls=ShuffleNetTwin,
        load=load_shuffle,
        styles=("chunk", "slice", "channel-shuffle", "view-transpose", "lambda", "depthwise", "batchnorm"),
        pairs={
            "stem": "conv1.0", "stem_bn": "conv1.1",
            **{
                f"u{u}_{part}": f"stage.{i}.branch2.{j}"
                for u, i in ((1, 0), (2, 2))
                for part, j in (("pw1", 0), ("pw1_bn", 1), ("dw", 3), ("dw_bn", 4), ("pw2", 5), ("pw2_bn", 6))
            },
            "fc": "fc",
        },
        planted={
            "filter": _plant_filter("stage.0.branch2.5", 1, "u1_pw2"),
            "padding": _plant_attr("stage.2.branch2.3.padding_mode", "reflect", "u2_dw"),
            "train_mode": _plant_train("stem_bn"),
            "no_shuffle": _plant_no_shuffle,
        },
    ),
    _twin(
        "densenet_loop",
        _dense_body,
        (2, 16, 16, 3),
        torch_cls=TinyDenseNet,
        load=load_dense,
        styles=("dense-concat-loop", "modulelist", "pre-activation", "adaptive-pool-flatten", "batchnorm"),
        pairs={
            "conv0": "conv0",
            **{f"db{i}_bn": f"block.layers.{i}.norm" for i in range(3)},
            **{f"db{i}_conv": f"block.layers.{i}.conv" for i in range(3)},
            "tr_bn": "transition.0", "tr_conv": "transition.2", "final_bn": "norm5", "classifier": "classifier",
        },
        planted={
            "filter": _plant_filter("block.layers.1.conv", 2, "db1_conv"),
            "padding": _plant_attr("block.layers.2.conv.padding_mode", "reflect", "db2_conv"),
            "train_mode": _plant_train("db0_bn"),
            "cat_order": _plant_attr("block.newest_first", True, "db2_cat"),
        },
    ),
    _twin(
        "resnext_separable",
        _resnext_body,
        (2, 16, 16, 3),
        torch_cls=ResNeXtTwin,
        load=load_resnext,
        styles=("grouped-conv", "depthwise-separable", "residual-add", "adaptive-pool-flatten", "batchnorm"),
        pairs={
            "stem": "stem.0", "stem_bn": "stem.1",
            "rx_reduce": "block.conv1", "rx_reduce_bn": "block.bn1", "rx_group": "block.conv2", "rx_group_bn": "block.bn2",
            "rx_expand": "block.conv3", "rx_expand_bn": "block.bn3",
            "ds_dw": "sep.depthwise", "ds_dw_bn": "sep.bn_dw", "ds_pw": "sep.pointwise", "ds_pw_bn": "sep.bn_pw",
            "fc": "fc",
        },
        planted={
            "filter": _plant_filter("block.conv2", 5, "rx_group"),
            "padding": _plant_attr("sep.depthwise.padding_mode", "reflect", "ds_dw"),
            "train_mode": _plant_train("stem_bn"),
        },
    ),
    _twin(
        "convnext_block",
        _convnext_body,
        (2, 16, 16, 3),
        torch_cls=TinyConvNeXt,
        load=load_convnext,
        styles=("convnext", "permute-nhwc", "layernorm", "linear-on-last-axis", "gelu", "layer-scale-parameter",
                "channels-first-layernorm", "residual-add"),
        pairs={
            "stem": "downsample.0", "stem_ln": "downsample.1",
            **{f"blk{i}_dw": f"stages.{i}.dwconv" for i in range(2)},
            **{f"blk{i}_ln": f"stages.{i}.norm" for i in range(2)},
            **{f"blk{i}_pw1": f"stages.{i}.pwconv1" for i in range(2)},
            **{f"blk{i}_pw2": f"stages.{i}.pwconv2" for i in range(2)},
            **{f"blk{i}_ls": f"stages.{i}" for i in range(2)},
            "head_ln": "norm", "head": "head",
        },
        unhooked=frozenset({"blk0_ls", "blk1_ls"}),
        float64_rtol=1e-8,  # Keras' float64 GELU is off by 5e-9 (see Twin.float64_rtol)
        keras_float64_rounding="blk0_gelu",  # Keras computes it with a float32 constant in float64
        planted={
            "filter": _plant_filter("stages.0.dwconv", 3, "blk0_dw"),
            "padding": _plant_attr("stages.0.dwconv.padding_mode", "reflect", "blk0_dw"),
            "linear": _plant_filter("stages.0.pwconv1", 5, "blk0_pw1"),
            "gamma": _plant_param("stages.1.gamma", 2, "blk1_ls"),
        },
    ),
    _twin(
        "convnext_no_layer_scale",
        _convnext_plain_body,
        (2, 16, 16, 3),
        torch_cls=TinyConvNeXtPlain,
        load=load_convnext,
        styles=("convnext", "permute-nhwc", "layernorm", "linear-on-last-axis", "gelu", "channels-first-layernorm",
                "residual-add"),
        pairs={
            "stem": "downsample.0", "stem_ln": "downsample.1",
            **{f"blk{i}_dw": f"stages.{i}.dwconv" for i in range(2)},
            **{f"blk{i}_ln": f"stages.{i}.norm" for i in range(2)},
            **{f"blk{i}_pw1": f"stages.{i}.pwconv1" for i in range(2)},
            **{f"blk{i}_pw2": f"stages.{i}.pwconv2" for i in range(2)},
            "head_ln": "norm", "head": "head",
        },
        float64_rtol=1e-8,  # Keras' float64 GELU is off by 5e-9 (see Twin.float64_rtol)
        keras_float64_rounding="blk0_gelu",  # Keras computes it with a float32 constant in float64
        planted={
            "filter": _plant_filter("stages.0.dwconv", 3, "blk0_dw"),
            "padding": _plant_attr("stages.0.dwconv.padding_mode", "reflect", "blk0_dw"),
            "linear": _plant_filter("stages.1.pwconv2", 5, "blk1_pw2"),
            "stem_norm": _plant_param("downsample.1.weight", 4, "stem_ln"),
        },
    ),
    _twin(
        "convnext_timm",
        _convnext_body,
        (2, 16, 16, 3),
        torch_cls=TinyConvNeXtTimm,
        load=load_convnext_timm,
        styles=("convnext", "permute-nhwc", "layernorm", "linear-on-last-axis", "gelu", "layer-scale-module",
                "channels-first-layernorm", "residual-add", "modulelist-loop"),
        pairs={
            "stem": "stem.0", "stem_ln": "stem.1",
            **{f"blk{i}_dw": f"blocks.{i}.conv_dw" for i in range(2)},
            **{f"blk{i}_ln": f"blocks.{i}.norm" for i in range(2)},
            **{f"blk{i}_pw1": f"blocks.{i}.mlp.0" for i in range(2)},
            **{f"blk{i}_pw2": f"blocks.{i}.mlp.2" for i in range(2)},
            **{f"blk{i}_ls": f"blocks.{i}.ls" for i in range(2)},
            "head_ln": "head_norm", "head": "fc",
        },
        float64_rtol=1e-8,  # Keras' float64 GELU is off by 5e-9 (see Twin.float64_rtol)
        keras_float64_rounding="blk0_gelu",  # Keras computes it with a float32 constant in float64
        planted={
            "filter": _plant_filter("blocks.0.conv_dw", 3, "blk0_dw"),
            "padding": _plant_attr("blocks.0.conv_dw.padding_mode", "reflect", "blk0_dw"),
            "linear": _plant_filter("blocks.0.mlp.0", 5, "blk0_pw1"),
            "gamma": _plant_param("blocks.1.ls.gamma", 2, "blk1_ls"),
        },
    ),
    _twin(
        "temporal_conv1d",
        _temporal_body,
        (2, 32, 6),
        torch_cls=TemporalConvNet,
        load=load_temporal,
        styles=("conv1d", "transpose-at-input", "dilation", "leaky-relu", "batchnorm", "dropout", "max-values"),
        pairs={"tconv1": "conv1", "tbn1": "bn1", "tconv2": "conv2", "tbn2": "bn2", "tconv3": "conv3", "tdense": "fc"},
        float64_rtol=1e-8,  # Keras' float64 LeakyReLU(0.1) is off by 6e-9 (see Twin.float64_rtol)
        torch_layout="channels_last",
        keras_float64_rounding="tact1",  # Keras computes it with a float32 constant in float64
        planted={
            "filter": _plant_filter("conv2", 3, "tconv2"),
            "padding": _plant_attr("conv1.padding", (0,), "tconv1"),
            "train_mode": _plant_train("tbn1"),
        },
    ),
    _twin(
        "temporal_conv1d_cf",
        _temporal_body,
        (2, 32, 6),
        torch_cls=ChannelsFirstTemporal,
        load=load_temporal,
        styles=("conv1d", "transpose", "dilation", "leaky-relu", "batchnorm", "dropout", "max-values"),
        pairs={"tconv1": "conv1", "tbn1": "bn1", "tconv2": "conv2", "tbn2": "bn2", "tconv3": "conv3", "tdense": "fc"},
        float64_rtol=1e-8,  # Keras' float64 LeakyReLU(0.1) is off by 6e-9 (see Twin.float64_rtol)
        keras_float64_rounding="tact1",  # Keras computes it with a float32 constant in float64
        planted={
            "filter": _plant_filter("conv2", 3, "tconv2"),
            "padding": _plant_attr("conv1.padding", (0,), "tconv1"),
            "train_mode": _plant_train("tbn1"),
        },
    ),
    _twin(
        "c3d_classifier",
        _c3d_body,
        (2, 8, 8, 8, 2),
        torch_cls=C3DClassifier,
        load=load_c3d,
        styles=("conv3d", "batchnorm3d", "maxpool3d", "adaptive-pool-flatten", "dropout", "sequential", "inplace-relu"),
        pairs={"c1": "features.0", "bn1": "features.1", "c2": "features.4", "bn2": "features.5", "fc": "fc"},
        planted={
            "filter": _plant_filter("features.4", 1, "c2"),
            "padding": _plant_attr("features.0.padding", (0, 0, 0), "c1"),
            "train_mode": _plant_train("bn1"),
        },
        has_float64=False,
        float64_reason=_NO_F64_POOL3D,
    ),
    _twin(
        "forward_idioms",
        _idioms_body,
        (2, 16, 16, 3),
        torch_cls=IdiomNet,
        load=load_idioms,
        styles=("shape-assert", "modulelist-loop", "leaky-relu", "hardtanh-relu6", "slice", "lambda",
                "adaptive-pool-flatten", "functional-softmax"),
        pairs={"stage0_conv": "stages.0", "stage1_conv": "stages.1", "stage2_conv": "stages.2", "mix": "mix", "probs": "classifier"},
        keras_float64_rounding="stage0_act",  # Keras computes it with a float32 constant in float64
        planted={
            "filter": _plant_filter("stages.1", 2, "stage1_conv"),
            "padding": _plant_attr("stages.0.padding_mode", "reflect", "stage0_conv"),
            "slice": _plant_attr("start", 8, "take_half"),
        },
    ),
    _twin(
        "efficientnet_mbconv",
        _mbconv_body,
        (2, 16, 16, 3),
        torch_cls=TinyEfficientNet,
        load=load_mbconv,
        styles=("mbconv", "hand-written-swish", "silu", "se-conv1x1", "residual-add", "dropout", "batchnorm",
                "modulelist-loop", "adaptive-pool-flatten"),
        pairs={
            "stem_conv": "_conv_stem", "stem_bn": "_bn0",
            "b_expand": "_blocks.0._expand_conv", "b_expand_bn": "_blocks.0._bn0",
            "b_dw": "_blocks.0._depthwise_conv", "b_dw_bn": "_blocks.0._bn1",
            "b_se_reduce": "_blocks.0._se_reduce", "b_se_expand": "_blocks.0._se_expand",
            "b_project": "_blocks.0._project_conv", "b_project_bn": "_blocks.0._bn2",
            "top_conv": "_conv_head", "top_bn": "_bn1", "predictions": "_fc",
        },
        planted={
            "filter": _plant_filter("_blocks.0._se_reduce", 1, "b_se_reduce"),
            "padding": _plant_attr("_blocks.0._depthwise_conv.padding_mode", "reflect", "b_dw"),
            "train_mode": _plant_train("stem_bn"),
            "activation": _plant_attr("_blocks.0.relu_instead_of_swish", True, "b_expand_act"),
        },
    ),
    _twin(
        "fpn_bilinear",
        _fpn_body,
        (2, 16, 16, 3),
        torch_cls=TinyFPN,
        load=load_fpn,
        styles=("fpn", "interpolate-bilinear", "upsampling2d-bilinear", "lateral-add", "moduledict", "modulelist"),
        pairs={
            "c1": "body.c1", "c2": "body.c2", "c3": "body.c3",
            "lat1": "inner_blocks.0", "lat2": "inner_blocks.1", "lat3": "inner_blocks.2", "smooth": "layer_block",
        },
        planted={
            "filter": _plant_filter("inner_blocks.1", 2, "lat2"),
            "align_corners": _plant_attr("align_corners", True, "up3"),
            "padding": _plant_attr("layer_block.padding_mode", "reflect", "smooth"),
        },
        has_float64=False,
        float64_reason="Keras' bilinear UpSampling2D resizes in float32 (tf.image.resize): float64 is float32-exact only",
    ),
    _twin(
        "guarded_forward",
        _guarded_body,
        (2, 16, 16, 3),
        torch_cls=GuardedNet,
        load=load_guarded,
        styles=("value-check-in-forward", "hooks-fallback", "same-names", "batchnorm", "dropout"),
        pairs={"conv_a": "conv_a", "bn_a": "bn_a", "conv_b": "conv_b", "logits": "logits"},
        capture="hooks",
        planted={
            "filter": _plant_filter("conv_b", 4, "conv_b"),
            "padding": _plant_attr("conv_a.padding_mode", "reflect", "conv_a"),
            "train_mode": _plant_train("bn_a"),
        },
    ),
]

TWINS: dict[str, Twin] = {}
for _t in _ALL:
    if _t.name in TWINS:
        raise ValueError(f"twin {_t.name!r} registered twice")
    TWINS[_t.name] = _t
del _t
