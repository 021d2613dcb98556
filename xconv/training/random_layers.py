"""Dropout and other random layers: switched off on both sides for the comparison, and said so.

Two frameworks never draw the same random numbers, so a comparison with dropout on would
compare draws, not ports. xconv runs the steps with every random layer as the identity
(Keras: its rate or stddev set to 0 on xconv's copy; torch: the module in eval mode while the
rest trains) and lists what it switched off in the report.
"""

from __future__ import annotations

from ..errors import BadInputError

__all__ = ["switch_off"]

# Keras layer type -> the attribute that, at 0, makes it the identity in training
_KERAS = {
    "Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate", "SpatialDropout3D": "rate",
    "GaussianDropout": "rate", "AlphaDropout": "rate", "GaussianNoise": "stddev",
}  # fmt: skip
_TORCH = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


def switch_off(keras_model, torch_module, mode: str = "off") -> list[str]:
    """Make every random layer of the two *copies* the identity; return what was switched off."""
    from ..frameworks import keras_side as ks

    if mode != "off":
        raise BadInputError(f"random_layers={mode!r}: only 'off' is supported (shared masks are not written yet).")
    notes = []
    for layer in ks.iter_layers(keras_model):
        attr = _KERAS.get(type(layer).__name__)
        if attr and getattr(layer, attr, 0):
            notes.append(f"Keras {type(layer).__name__} '{layer.name}' ({attr}={getattr(layer, attr)})")
            setattr(layer, attr, 0.0)
    for name, module in torch_module.named_modules():
        if type(module).__name__ in _TORCH and module.p:
            notes.append(f"torch {type(module).__name__} '{name}' (p={module.p})")
    return notes


def torch_eval_random(torch_module) -> None:
    """After ``module.train()``: put the random modules back in eval mode (identity)."""
    for _, module in torch_module.named_modules():
        if type(module).__name__ in _TORCH:
            module.eval()
