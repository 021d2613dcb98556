"""The reference models, built from one definition in Keras and in PyTorch.

>>> names()
('unet_encoder', 'single_conv', 'single_conv_rgb', 'two_conv', 'conv3d_demo')
>>> spec("conv3d_demo").params
629511
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

import numpy as np

from ..errors import BadInputError
from .specs import SPECS, LayerSpec, ModelSpec

__all__ = ["names", "spec", "build", "sample_input", "smiley", "randomize_biases", "ModelSpec", "LayerSpec"]

FRAMEWORKS = ("keras", "torch")


def names() -> tuple[str, ...]:
    """The reference models' names, in the order they are listed."""
    return tuple(SPECS)


def spec(name: str) -> ModelSpec:
    """The spec both frameworks build ``name`` from; an unknown name lists the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise BadInputError(f"Unknown zoo model {name!r}. Available: {', '.join(SPECS)}.") from None


def build(name: str, framework: str = "keras", *, seed: int | None = 0, dtype: str = "float32", random_biases: bool = False, input_shape: tuple[int, ...] | None = None):
    """Build reference model ``name`` as a Keras model or a PyTorch module.

    ``seed`` makes the spec's initialisers reproducible; ``random_biases`` replaces Keras'
    zero biases (and unit BatchNorm statistics) with seeded random values, so that a dropped
    or misplaced bias cannot go unseen in a comparison. ``input_shape`` (channels-last, no
    batch) builds the same layers for another input size, e.g. a small one for tests.
    """
    s = spec(name)
    if input_shape is not None:
        s = replace(s, input_shape=tuple(int(n) for n in input_shape))
    if dtype not in ("float32", "float64"):
        raise BadInputError(f"dtype must be 'float32' or 'float64'; received {dtype!r}.")
    if framework == "keras":
        from . import _keras

        model = _keras.build(s, seed=seed, dtype=dtype)
    elif framework == "torch":
        from . import _torch

        model = _torch.build(s, seed=seed, dtype=dtype)
    else:
        raise BadInputError(f"framework must be one of {FRAMEWORKS}; received {framework!r}.")
    if random_biases:
        randomize_biases(model, seed=0 if seed is None else seed)
    return model


_BIAS_LIKE = {"bias", "beta", "moving_mean", "running_mean"}
_SCALE_LIKE = {"gamma", "moving_variance", "running_var"}


def _random_like(name: str, shape, rng: np.random.Generator) -> np.ndarray | None:
    if name in _BIAS_LIKE:
        return rng.uniform(-0.1, 0.1, size=shape)
    if name in _SCALE_LIKE:
        return rng.uniform(0.5, 1.5, size=shape)
    return None


def randomize_biases(model, seed: int = 0) -> None:
    """Fill biases and normalisation statistics of a Keras model or torch module with random values."""
    from ..frameworks import framework_of

    rng = np.random.default_rng(seed)
    if framework_of(model) == "torch":
        from ..frameworks import torch_side as ts

        for _, sub in ts.weighted_modules(model):
            arrays = ts.module_arrays(sub)
            new = {n: _random_like(n, a.shape, rng) for n, a in arrays.items()}
            ts.set_module_arrays(sub, {n: v for n, v in new.items() if v is not None})
    else:
        from ..frameworks import keras_side as ks

        for layer in ks.weighted_layers(model):
            arrays = ks.layer_weights(layer)
            new = {n: _random_like(n, a.shape, rng) for n, a in arrays.items()}
            ks.set_layer_weights(layer, {n: v for n, v in new.items() if v is not None})


def smiley() -> np.ndarray:
    """The 25x25 binary smiley of ``two_conv`` as a float32 (25, 25) array, 1 = white."""
    text = resources.files(__package__).joinpath("smiley25.txt").read_text()
    rows = [line.strip() for line in text.splitlines() if line.strip()]
    return np.array([[c == "1" for c in row] for row in rows], dtype=np.float32)


def sample_input(name: str, batch: int = 1, *, seed: int = 0, layout: str = "keras", dtype: str = "float32") -> np.ndarray:
    """A seeded input batch for model ``name`` in 'keras' (channels-last) or 'torch' layout.

    ``two_conv`` gets the smiley; the others uniform noise in [0, 1).
    """
    s = spec(name)
    if name == "two_conv":
        x = np.broadcast_to(smiley()[None, :, :, None], (batch, *s.input_shape)).copy()
    else:
        x = np.random.default_rng(seed).random((batch, *s.input_shape))
    x = x.astype(dtype)
    if layout == "torch":
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))
    if layout != "keras":
        raise BadInputError(f"layout must be 'keras' or 'torch'; received {layout!r}.")
    return x
