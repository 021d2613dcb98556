"""Dropout and other random layers: switched off on both sides, or dropout with shared masks.

Two frameworks never draw the same random numbers, so a comparison with dropout on would
compare draws, not ports. ``random_layers='off'`` runs the steps with every random layer as the
identity (Keras: its rate or stddev set to 0 on xconv's copy; torch: the module in eval mode
while the rest trains). ``random_layers='shared'`` keeps Dropout and SpatialDropout on, with one
seeded mask per step and layer drawn in Keras's layout and moved to torch's (channels, or a
Flatten's order); each side drops with its *own* rate, so a rate copied wrong shows. Gaussian
noise and dropout, and alpha dropout, are switched off in both modes. The report lists what.
"""

from __future__ import annotations

from ..errors import BadInputError

__all__ = ["switch_off", "torch_eval_random", "SharedMasks"]

# Keras layer type -> the attribute that, at 0, makes it the identity in training
_KERAS = {
    "Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate", "SpatialDropout3D": "rate",
    "GaussianDropout": "rate", "AlphaDropout": "rate", "GaussianNoise": "stddev",
}  # fmt: skip
_TORCH = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


def switch_off(keras_model, torch_module, mode: str = "off") -> list[str]:
    """Make every random layer of the two *copies* the identity; return what was switched off."""
    from ..frameworks import keras_side as ks

    if mode not in ("off", "shared"):
        raise BadInputError(f"random_layers={mode!r}: give 'off' (identity on both sides) or 'shared' (dropout with shared masks).")
    notes = []
    for layer in ks.iter_layers(keras_model):
        attr = _KERAS.get(type(layer).__name__)
        if mode == "shared" and type(layer).__name__ in _SHARED_K:
            continue
        if attr and getattr(layer, attr, 0):
            notes.append(f"Keras {type(layer).__name__} '{layer.name}' ({attr}={getattr(layer, attr)})")
            setattr(layer, attr, 0.0)
    for name, module in torch_module.named_modules():
        if mode == "shared" and type(module).__name__ in _SHARED_T:
            continue
        if type(module).__name__ in _TORCH and module.p:
            notes.append(f"torch {type(module).__name__} '{name}' (p={module.p})")
    return notes


def torch_eval_random(torch_module, mode: str = "off") -> None:
    """After ``module.train()``: put the random modules back in eval mode (identity)."""
    for _, module in torch_module.named_modules():
        if type(module).__name__ in _TORCH and not (mode == "shared" and type(module).__name__ in _SHARED_T):
            module.eval()


_SHARED_K = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
_SHARED_T = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d")


class SharedMasks:
    """Dropout on both sides with the same keep-masks: Keras's layer ``call`` and torch's
    forward replaced on xconv's copies by ``x * mask / (1 - rate)``, the mask of step
    ``self.step`` drawn from a seeded generator in Keras's layout."""

    def __init__(self, keras_model, torch_module, seed: int = 0):
        from ..frameworks import keras_side as ks

        self.step, self.seed, self.notes = 0, seed, []
        k_layers = [l for l in ks.iter_layers(keras_model) if type(l).__name__ in _SHARED_K]
        t_mods = [(n, m) for n, m in torch_module.named_modules() if type(m).__name__ in _SHARED_T]
        if len(k_layers) != len(t_mods):
            raise BadInputError(
                f"random_layers='shared' pairs dropout layers in order: Keras has {[l.name for l in k_layers]}, "
                f"torch {[n for n, _ in t_mods]}. Make them line up, or use random_layers='off'."
            )
        self._handles = []
        for i, (layer, (tname, module)) in enumerate(zip(k_layers, t_mods)):
            spatial = type(layer).__name__.startswith("Spatial")
            if spatial != (type(module).__name__ != "Dropout"):
                raise BadInputError(f"Keras {type(layer).__name__} '{layer.name}' drops {'channels' if spatial else 'elements'}, torch {type(module).__name__} '{tname}' does not.")
            flat = ks.flatten_source_shape(layer)
            self._keras(layer, i, spatial)
            self._handles.append(module.register_forward_hook(self._torch(i, spatial, flat)))
            self.notes.append(f"Keras {type(layer).__name__} '{layer.name}' (rate={layer.rate}) and torch {type(module).__name__} '{tname}' (p={module.p})")

    def mask(self, index: int, keras_shape, rate: float, spatial: bool):
        """The scaled keep-mask of dropout layer ``index`` at this step, in Keras's layout."""
        import numpy as np

        shape = (keras_shape[0], *([1] * (len(keras_shape) - 2)), keras_shape[-1]) if spatial else tuple(keras_shape)
        draw = np.random.default_rng((self.seed, self.step, index)).random(shape)
        return (draw >= rate) / (1.0 - rate) if rate < 1 else np.zeros(shape)

    def _keras(self, layer, index, spatial):
        from ..frameworks.keras_side import keras

        ops = keras().ops

        def call(inputs, training=False):
            if not training or not layer.rate:
                return inputs
            m = self.mask(index, tuple(inputs.shape), float(layer.rate), spatial)
            return inputs * ops.convert_to_tensor(m, dtype=inputs.dtype)

        layer.call = call

    def _torch(self, index, spatial, flat):
        import numpy as np
        import torch

        from ..layouts import flatten_permutation

        def hook(module, args, out):
            x = args[0]
            if not module.training or not module.p:
                return out
            cf = x.ndim >= 3
            keras_shape = (x.shape[0], *x.shape[2:], x.shape[1]) if cf else tuple(x.shape)
            m = self.mask(index, keras_shape, float(module.p), spatial)
            if cf:
                m = np.moveaxis(m, -1, 1)
            elif flat:
                m = m[:, flatten_permutation(flat)]
            return x * torch.from_numpy(np.ascontiguousarray(m)).to(dtype=x.dtype, device=x.device)

        return hook

    def remove(self) -> None:
        """Take the torch hooks off (the Keras copies are thrown away)."""
        for h in self._handles:
            h.remove()
