"""Dense: on vectors, after a Flatten (rows permuted, no transpose at run time), on N-D maps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...errors import UnsupportedLayerError
from ..converters import converter
from ..spec import CF, CL, FLAT, KLayer, Layout, Piece, Step
from . import torch_weights
from .activation import activation_step


@converter("Dense", family="dense", layout_free=True)
def _dense(layer: KLayer) -> Piece:
    c = layer.config
    kernel = layer.weights["kernel"]
    cin, units = kernel.shape
    bias = bool(c.get("use_bias", True))
    src = layer.in_layouts[0]
    rank = len(layer.input_shapes[0])
    arrays = {"kernel": kernel, **({"bias": layer.weights["bias"]} if bias else {})}
    # the dense family's map; after a Flatten kept in torch's order, its rows permuted
    weights = torch_weights(layer, arrays, keras_type="Dense", flatten_of=src.flatten_of if src.kind == FLAT and rank < 3 else None)
    if rank >= 3 and src.kind == CL:  # a sequence in Keras' order: features last, as nn.Linear wants
        steps = [Step("", f"nn.Linear({cin}, {units}{'' if bias else ', bias=False'})", weights)]
        act = activation_step(c.get("activation"), len(layer.output_shape), layer, last=True)
        return Piece(tuple(steps + ([act] if act else [])), Layout(CL), inputs_as=(None,))
    if rank >= 3:
        # Keras applies Dense to the last (channel) axis: a 1x1 convolution over channels-first maps
        r = rank - 2
        weights["weight"] = np.ascontiguousarray(weights["weight"].reshape(units, cin, *([1] * r)))
        code = f"nn.Conv{r}d({cin}, {units}, kernel_size=1{'' if bias else ', bias=False'})"
    else:
        code = f"nn.Linear({cin}, {units}{'' if bias else ', bias=False'})"
    steps = [Step("", code, weights)]
    act = activation_step(c.get("activation"), len(layer.output_shape), layer)
    if act:
        steps.append(act)
    return Piece(tuple(steps), Layout.for_rank(len(layer.output_shape)), inputs_as=(CF,))


@converter("TimeDistributed", family="dense", layout_free=True)
def _time_distributed(layer: KLayer) -> Piece:
    inner = layer.config["layer"]
    if inner.get("class_name") != "Dense":
        raise UnsupportedLayerError(
            f"TimeDistributed '{layer.keras_name}' wraps a {inner.get('class_name')}; xconv translates TimeDistributed(Dense). "
            f"Write the inner layer on the (batch * time) reshaped tensor instead, or register a converter."
        )
    spec = replace(layer, class_name="Dense", config=inner["config"])
    piece = _dense(spec)
    return piece
