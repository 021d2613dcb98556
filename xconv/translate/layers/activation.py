"""Activation layers and activation names (fused into conv and dense layers too)."""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedLayerError
from ..converters import converter
from ..spec import CF, KLayer, Piece, Step
from . import fmt, single_axis, torch_dim

# Keras 3 activation name -> torch constructor ({dim} is the class axis)
_SIMPLE = {
    "relu": "nn.ReLU()",
    "relu6": "nn.ReLU6()",
    "sigmoid": "nn.Sigmoid()",
    "hard_sigmoid": "nn.Hardsigmoid()",  # Keras 3: relu6(x + 3) / 6, as torch
    "tanh": "nn.Tanh()",
    "swish": "nn.SiLU()",
    "silu": "nn.SiLU()",
    "hard_swish": "nn.Hardswish()",
    "hard_silu": "nn.Hardswish()",
    "elu": "nn.ELU()",
    "selu": "nn.SELU()",
    "softplus": "nn.Softplus()",
    "softsign": "nn.Softsign()",
    "mish": "nn.Mish()",
    # keras.activations.leaky_relu's default slope 0.2, as TensorFlow applies it: a float32
    # attribute, also in a float64 model (what LeakyReLU layers get too, see _leaky)
    "leaky_relu": "nn.LeakyReLU(0.20000000298023224)",
    "softmax": "nn.Softmax(dim={dim})",
    "log_softmax": "nn.LogSoftmax(dim={dim})",
}


def activation_name(activation) -> str:
    """The name of a Keras ``activation`` argument, given as a string, a serialised dict or a function."""
    if isinstance(activation, str):
        return activation
    if isinstance(activation, dict):  # a serialised activation
        return activation.get("config", activation.get("class_name", "?"))
    return getattr(activation, "__name__", str(activation))


def activation_step(activation, rank: int, layer: KLayer, last: bool = False) -> Step | None:
    """The module for a fused activation, or None for 'linear'; ``last``: softmax over the last dim."""
    name = activation_name(activation)
    if name in (None, "linear"):
        return None
    if name == "exponential":
        return Step("__act", "Exp()", helpers=("Exp",))
    if name == "gelu":  # Keras' gelu is the exact erf form, with TF's float32 constant (KerasGELU)
        return Step("__act", "KerasGELU()", helpers=("KerasGELU",))
    if name not in _SIMPLE:
        raise UnsupportedLayerError(
            f"Layer '{layer.keras_name}' uses activation '{name}', which xconv cannot translate. "
            f"Supported: linear, exponential, gelu, {', '.join(sorted(_SIMPLE))}."
        )
    return Step("__act", _SIMPLE[name].format(dim=-1 if last else 1 if rank >= 2 else 0))


@converter("Activation", family="activation", elementwise=True)
def _activation(layer: KLayer) -> Piece:
    name = activation_name(layer.config["activation"])
    rank = len(layer.output_shape)
    if name in ("softmax", "log_softmax"):  # along the last Keras axis = channels
        step = Step("", _SIMPLE[name].format(dim=torch_dim(-1, rank, layer.in_layouts[0].kind)))
    else:
        step = activation_step(name, rank, layer)
        step = Step("", step.code, helpers=step.helpers) if step else Step("", "nn.Identity()")
    return Piece((step,), layer.in_layouts[0])


@converter("ReLU", family="activation", elementwise=True)
def _relu(layer: KLayer) -> Piece:
    c = layer.config
    max_value, slope, threshold = c.get("max_value"), float(c.get("negative_slope", 0.0)), float(c.get("threshold", 0.0))
    if slope == 0 and threshold == 0 and max_value is None:
        code, helpers = "nn.ReLU()", ()
    elif slope == 0 and threshold == 0 and float(max_value) == 6.0:
        code, helpers = "nn.ReLU6()", ()
    else:
        mv = None if max_value is None else float(max_value)
        code, helpers = f"KerasReLU({fmt(mv)}, {fmt(slope)}, {fmt(threshold)})", ("KerasReLU",)
    return Piece((Step("", code, helpers=helpers),), layer.in_layouts[0])


@converter("LeakyReLU", family="activation", elementwise=True)
def _leaky(layer: KLayer) -> Piece:
    # TF applies the slope as a float32 constant, also in float64 models: round it the same way
    slope = float(np.float32(layer.config.get("negative_slope", layer.config.get("alpha", 0.3))))
    return Piece((Step("", f"nn.LeakyReLU({fmt(slope)})"),), layer.in_layouts[0])


@converter("ELU", family="activation", elementwise=True)
def _elu(layer: KLayer) -> Piece:
    return Piece((Step("", f"nn.ELU({fmt(float(layer.config.get('alpha', 1.0)))})"),), layer.in_layouts[0])


@converter("Softmax", family="activation")
def _softmax(layer: KLayer) -> Piece:
    return Piece((Step("", f"nn.Softmax(dim={single_axis(layer)})"),), layer.in_layouts[0])


@converter("PReLU", family="activation")
def _prelu(layer: KLayer) -> Piece:
    alpha = layer.weights["alpha"]  # Keras shape: the non-batch shape, 1 on shared axes
    if layer.in_layouts[0].kind == CF:
        alpha = np.moveaxis(alpha, -1, 0)
    return Piece((Step("", f"PReLU({fmt(tuple(alpha.shape))})", {"weight": np.ascontiguousarray(alpha)}, ("PReLU",)),), layer.in_layouts[0])
