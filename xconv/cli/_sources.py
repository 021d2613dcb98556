"""What a SRC argument names: ``zoo:NAME``, a Keras model file, or a weights file (read safely)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError

MODEL_EXTS = (".keras", ".h5")


def load_model(source: str, framework: str = "keras"):
    """A model: ``zoo:NAME`` (built with the spec's seeded initialisers) or a .keras / .h5 file."""
    from .. import zoo

    if source.startswith("zoo:"):
        return zoo.build(source[4:], framework, seed=0)
    ext = os.path.splitext(source)[1].lower()
    if ext in MODEL_EXTS:
        return load_keras_file(source)
    raise BadInputError(
        f"Cannot use {source!r} as a model: give zoo:NAME (one of {', '.join(zoo.names())}) or a "
        f"Keras model file ({', '.join(MODEL_EXTS)})."
    )


def load_keras_file(path: str):
    """A Keras model file, through the same safe loader as the weight-file commands."""
    from ..files import load_keras_model

    return load_keras_model(path)


def load_arrays(path: str) -> dict[str, np.ndarray]:
    """Tensors of a .npy array, or of any weight file :func:`xconv.files.read_tensors` reads."""
    if os.path.splitext(path)[1].lower() == ".npy":
        if not os.path.isfile(path):
            raise BadInputError(f"No such file: {path!r}.")
        try:
            return {"": np.load(path, allow_pickle=False)}
        except (OSError, ValueError) as exc:  # corrupt, or an object array (a pickle)
            raise BadInputError(f"Cannot read {path!r}: {exc}") from exc
    from ..files import read_tensors

    tensors = read_tensors(path).tensors
    return {k: np.asarray(tensors[k]) for k in tensors}


def kernel_source(source: str, layer: str | None, layout: str | None):
    """``(object, layer, layout)`` for :func:`xconv.viz.kernel_of` from a SRC argument."""
    ext = os.path.splitext(source)[1].lower()
    if source.startswith("zoo:") or ext in MODEL_EXTS:
        return load_model(source), layer, None
    arrays = load_arrays(source)
    if ext == ".npy":
        if layout not in ("keras", "torch"):
            raise BadInputError(f"{source!r} is a bare array {arrays[''].shape}: say --layout keras or --layout torch.")
        return arrays[""], None, layout
    if not layer:
        raise BadInputError(f"Name the layer with --layer; {source!r} has: {sorted(arrays)[:20]}.")
    key = layer if layer in arrays else f"{layer}.weight"
    if key not in arrays:
        raise BadInputError(f"No tensor '{layer}' or '{layer}.weight' in {source!r}; it has: {sorted(arrays)[:20]}.")
    return arrays[key], None, layout or "torch"


def read_input(path: str | None, model, *, resize: bool = False) -> np.ndarray:
    """A batch of one for a Keras model, from a .npy array or a PNG/JPEG image (channels-last)."""
    shape = tuple(model.inputs[0].shape[1:])  # (*spatial, C), None = any
    if path is None:
        raise BadInputError("No input given.")
    if not os.path.isfile(path):
        raise BadInputError(f"No such input file: {path!r}.")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float32)
        if x.ndim == len(shape):
            x = x[None]
        return x
    if ext not in (".png", ".jpg", ".jpeg"):
        raise BadInputError(f"Cannot read input {path!r}: give a .npy array or a .png/.jpg image.")
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:
        raise BadInputError(f"Cannot read image {path!r}: {exc}") from exc
    channels = shape[-1]
    spatial = shape[:-1]
    # a Conv3D model over (H, W, 3, 1) treats the colour axis as a third spatial axis
    colour_as_depth = len(spatial) == 3 and spatial[-1] == 3 and channels == 1
    mode = "RGB" if (channels == 3 or colour_as_depth) else "L"
    if channels not in (1, 3) and not colour_as_depth:
        raise BadInputError(f"The model takes {channels} channels; only 1 (grey) or 3 (RGB) can come from an image.")
    img = img.convert(mode)
    hw = spatial[:2]
    if tuple(img.size[::-1]) != hw and None not in hw:
        if not resize:
            raise BadInputError(
                f"Image {path!r} is {img.size[1]}x{img.size[0]} but the model takes {hw[0]}x{hw[1]}; pass --resize to resize it."
            )
        img = img.resize((hw[1], hw[0]), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    if mode == "L":
        x = x[..., None]
    if colour_as_depth:
        x = x[..., None]
    return x[None]
