"""Convolutions of every rank: Conv, DepthwiseConv, SeparableConv (plain, grouped, dilated, padded)."""

from __future__ import annotations

from ...errors import UnsupportedLayerError
from ...padding import as_tuple, causal_padding, is_symmetric, same_pads, torch_pad_arg
from ..converters import converter
from ..spec import KLayer, Piece, Step
from . import channels_first, channels_of, fmt, map_piece, spatial_of, torch_weights
from .activation import activation_step


def padding_steps(layer: KLayer, rank: int, kernel, strides, dilation, value: float = 0.0):
    """``(pre-steps, padding= argument)`` reproducing Keras' 'valid' / 'same' / 'causal' padding."""
    mode = layer.config.get("padding", "valid")
    spatial = spatial_of(layer.input_shapes[0], channels_first(layer))
    if mode == "valid":
        return [], (0,) * rank
    if mode == "causal":
        if rank != 1:
            raise UnsupportedLayerError(f"Layer '{layer.keras_name}': 'causal' padding exists for 1D layers only.")
        pads = (causal_padding(kernel[0], dilation[0]),)
    elif mode == "same":
        if any(n is None for n in spatial):
            if all(s == 1 for s in strides):  # with stride 1 the padding does not depend on the size
                pads = same_pads((1,) * rank, kernel, 1, dilation)
            else:
                code = f"SamePad({fmt(tuple(kernel))}, {fmt(tuple(strides))}, {fmt(tuple(dilation))}, {fmt(float(value))})"
                return [Step("__pad", code, helpers=("SamePad",))], (0,) * rank
        else:
            pads = same_pads(spatial, kernel, strides, dilation)
    else:
        raise UnsupportedLayerError(f"Layer '{layer.keras_name}': unknown padding {mode!r}.")
    if is_symmetric(pads) and value == 0.0:
        return [], tuple(b for b, _ in pads)
    if all(b == a == 0 for b, a in pads):
        return [], (0,) * rank
    # TF puts the odd pixel after; torch's padding= is symmetric, so pad explicitly in front
    if value == 0.0:
        return [Step("__pad", f"nn.ZeroPad{rank}d({fmt(torch_pad_arg(pads))})")], (0,) * rank
    return [Step("__pad", f"nn.ConstantPad{rank}d({fmt(torch_pad_arg(pads))}, {fmt(float(value))})")], (0,) * rank


def conv_code(rank: int, cin: int, cout: int, k, s, padding, d, groups: int, bias: bool) -> str:
    """``nn.ConvNd(...)`` naming only the arguments that differ from torch's defaults."""
    parts = [str(cin), str(cout), f"kernel_size={fmt(tuple(k))}"]
    if any(v != 1 for v in s):
        parts.append(f"stride={fmt(tuple(s))}")
    if any(v != 0 for v in padding):
        parts.append(f"padding={fmt(tuple(padding))}")
    if any(v != 1 for v in d):
        parts.append(f"dilation={fmt(tuple(d))}")
    if groups != 1:
        parts.append(f"groups={groups}")
    if not bias:
        parts.append("bias=False")
    return f"nn.Conv{rank}d({', '.join(parts)})"


def _geometry(layer: KLayer, rank: int):
    c = layer.config
    return (
        as_tuple(c["kernel_size"], rank, "kernel_size"),
        as_tuple(c.get("strides", 1), rank, "strides"),
        as_tuple(c.get("dilation_rate", 1), rank, "dilation_rate"),
    )


def _with_activation(layer, steps, rank):
    # a softmax activation runs over Keras' last axis: the channels, or the last spatial axis (channels_first)
    act = activation_step(layer.config.get("activation"), len(layer.output_shape), layer, last=channels_first(layer))
    return map_piece(layer, steps + ([act] if act else []), len(layer.output_shape))


@converter("Conv1D", "Conv2D", "Conv3D", family="conv")
def _conv(layer: KLayer) -> Piece:
    return _plain_or_depthwise(layer, depthwise=False)


@converter("DepthwiseConv1D", "DepthwiseConv2D", family="conv")
def _depthwise(layer: KLayer) -> Piece:
    return _plain_or_depthwise(layer, depthwise=True)


def _plain_or_depthwise(layer: KLayer, depthwise: bool) -> Piece:
    """A Conv, or a DepthwiseConv as the grouped Conv it is (groups = input channels)."""
    rank = len(layer.input_shapes[0]) - 2
    k, s, d = _geometry(layer, rank)
    c = layer.config
    cin = channels_of(layer.input_shapes[0], channels_first(layer))
    pre, padding = padding_steps(layer, rank, k, s, d)
    bias = bool(c.get("use_bias", True))
    arrays = {"kernel": layer.weights.get("kernel", layer.weights.get("depthwise_kernel"))}
    if bias:
        arrays["bias"] = layer.weights["bias"]
    weights = torch_weights(layer, arrays)  # the conv or depthwise family
    if depthwise:
        cout, groups = cin * int(c.get("depth_multiplier", 1)), cin
    else:
        cout, groups = c["filters"], int(c.get("groups", 1))
    code = conv_code(rank, cin, cout, k, s, padding, d, groups, bias)
    return _with_activation(layer, pre + [Step("", code, weights)], rank)


@converter("SeparableConv1D", "SeparableConv2D", family="conv")
def _separable(layer: KLayer) -> Piece:
    rank = len(layer.input_shapes[0]) - 2
    k, s, d = _geometry(layer, rank)
    c = layer.config
    cin = channels_of(layer.input_shapes[0], channels_first(layer))
    mult = int(c.get("depth_multiplier", 1))
    pre, padding = padding_steps(layer, rank, k, s, d)
    # a depthwise conv, then a 1x1 conv: the depthwise and conv families' maps
    dw = torch_weights(layer, {"kernel": layer.weights["depthwise_kernel"]}, keras_type=f"DepthwiseConv{rank}D", depth_multiplier=mult)
    depthwise = Step("__depthwise", conv_code(rank, cin, cin * mult, k, s, padding, d, cin, False), dw)
    arrays = {"kernel": layer.weights["pointwise_kernel"]}
    if c.get("use_bias", True):
        arrays["bias"] = layer.weights["bias"]
    weights = torch_weights(layer, arrays, keras_type=f"Conv{rank}D")
    pointwise = Step("", conv_code(rank, cin * mult, c["filters"], (1,) * rank, (1,) * rank, (0,) * rank, (1,) * rank, 1, bool(c.get("use_bias", True))), weights)
    return _with_activation(layer, pre + [depthwise, pointwise], rank)


@converter("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", family="conv")
def _transpose(layer: KLayer) -> Piece:
    """Transposed conv: both frameworks compute the gradient of a conv, so the kernel only moves axes.

    Keras/TF pick which part of the full ``(n - 1) * s + k`` output to keep from the output
    size; torch crops ``padding`` from both ends and extends by ``output_padding``. We take
    ``padding`` = TF's crop before, extend as needed, and crop any odd remainder at the end.
    """
    rank = len(layer.input_shapes[0]) - 2
    k, s, d = _geometry(layer, rank)
    c = layer.config
    first = channels_first(layer)
    n_in, n_out = spatial_of(layer.input_shapes[0], first), spatial_of(layer.output_shape, first)
    if any(n is None for n in (*n_in, *n_out)):
        raise UnsupportedLayerError(f"{layer.class_name} '{layer.keras_name}' needs a known input size to translate.")
    before, extend, crop_end = [], [], []
    for n, out, kk, ss, dd in zip(n_in, n_out, k, s, d):
        full = (n - 1) * ss + (kk - 1) * dd + 1
        b = max(full - out, 0) // 2 if c.get("padding", "valid") == "same" else 0
        torch_len = full - 2 * b
        op = max(0, out - torch_len)
        if op >= max(ss, dd):
            raise UnsupportedLayerError(f"{layer.class_name} '{layer.keras_name}': output padding {op} is beyond what torch allows.")
        before.append(b)
        extend.append(op)
        crop_end.append(torch_len + op - out)
    cin = channels_of(layer.input_shapes[0], first)
    bias = bool(c.get("use_bias", True))
    weights = torch_weights(layer, {"kernel": layer.weights["kernel"], **({"bias": layer.weights["bias"]} if bias else {})})
    parts = [str(cin), str(c["filters"]), f"kernel_size={fmt(k)}"]
    for label, value, default in (("stride", s, 1), ("padding", tuple(before), 0), ("output_padding", tuple(extend), 0), ("dilation", d, 1)):
        if any(v != default for v in value):
            parts.append(f"{label}={fmt(tuple(value))}")
    if not bias:
        parts.append("bias=False")
    steps = [Step("", f"nn.ConvTranspose{rank}d({', '.join(parts)})", weights)]
    if any(crop_end):
        steps.append(Step("__crop", f"Crop({fmt(tuple((0, e) for e in crop_end))})", helpers=("Crop",)))
    return _with_activation(layer, steps, rank)
