"""Layers that are the identity at inference, and Rescaling / Normalization."""

from __future__ import annotations

import numpy as np

from ..converters import converter
from ..spec import CF, KLayer, Layout, Piece, Step
from . import fmt


@converter("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", family="misc", elementwise=True)
def _dropout(layer: KLayer) -> Piece:
    return Piece((Step("", f"nn.Dropout({fmt(float(layer.config.get('rate', 0.0)))})"),), layer.in_layouts[0])


@converter(
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    # data augmentation: the identity at inference
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    family="misc", elementwise=True,
)  # fmt: skip
def _identity(layer: KLayer) -> Piece:
    return Piece((Step("", "nn.Identity()"),), layer.in_layouts[0])


def _channel_shaped(value, layer: KLayer) -> np.ndarray:
    """A scalar or per-channel Keras array, shaped to broadcast over channels-first maps."""
    arr = np.asarray(value, dtype=np.float64)
    rank = len(layer.input_shapes[0])
    if arr.ndim == 0 or layer.in_layouts[0].kind != CF:
        return arr
    arr = arr.reshape(-1) if arr.size == layer.input_shapes[0][-1] else arr
    return arr.reshape((-1,) + (1,) * (rank - 2))


@converter("Rescaling", family="misc")
def _rescaling(layer: KLayer) -> Piece:
    # Keras on TensorFlow turns the Python scale into a float32 constant before casting it, even
    # in a float64 model; rounding it the same way keeps the float64 strict mode exact
    scale = _channel_shaped(np.float32(layer.config.get("scale", 1.0)), layer)
    offset = _channel_shaped(np.float32(layer.config.get("offset", 0.0)), layer)
    return Piece((Step("", f"Affine({fmt(scale.tolist())}, {fmt(offset.tolist())})", helpers=("Affine",)),), layer.in_layouts[0])


@converter("Normalization", family="misc")
def _normalization(layer: KLayer) -> Piece:
    w = layer.weights
    mean, var = w.get("mean"), w.get("variance")
    if mean is None:
        # constants given as lists: Keras turns them into float32 tensors before casting them to
        # the model's dtype, so a float64 model normalises with float32-rounded values; mimic it
        mean = np.asarray(layer.config.get("mean"), np.float32)
        var = np.asarray(layer.config.get("variance"), np.float32)
    mean = np.asarray(mean, np.float64).reshape(-1)
    std = np.maximum(np.sqrt(np.asarray(var, np.float64).reshape(-1)), 1e-7)  # Keras' epsilon floor
    mean, std = _channel_shaped(mean, layer), _channel_shaped(std, layer)
    return Piece((Step("", f"Normalize({fmt(mean.tolist())}, {fmt(std.tolist())})", helpers=("Normalize",)),), layer.in_layouts[0])


@converter("Resizing", family="misc")
def _resizing(layer: KLayer) -> Piece:
    from ...errors import UnsupportedLayerError

    c = layer.config
    if c.get("crop_to_aspect_ratio") or c.get("pad_to_aspect_ratio") or c.get("antialias"):
        raise UnsupportedLayerError(f"Resizing '{layer.keras_name}': crop_to_aspect_ratio, pad_to_aspect_ratio and antialias are not supported.")
    if c.get("data_format", "channels_last") not in (None, "channels_last"):
        raise UnsupportedLayerError(f"Resizing '{layer.keras_name}' uses data_format='channels_first'; rebuild it channels_last.")
    size = (int(c["height"]), int(c["width"]))
    mode = c.get("interpolation", "bilinear")
    if mode not in ("bilinear", "nearest"):
        raise UnsupportedLayerError(f"Resizing '{layer.keras_name}' with interpolation '{mode}'; xconv translates bilinear and nearest.")
    # TF resizes with half-pixel centres: torch's align_corners=False, and nearest-exact for nearest
    torch_mode, extra = ("bilinear", ", align_corners=False") if mode == "bilinear" else ("nearest-exact", "")
    return Piece((Step("", f'nn.Upsample(size={fmt(size)}, mode="{torch_mode}"{extra})'),), Layout(CF))

