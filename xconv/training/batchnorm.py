"""BatchNorm in training: momentum in opposite senses, and the variance torch keeps.

Keras (``keras/src/layers/normalization/batch_normalization.py``) updates
``moving = momentum * moving + (1 - momentum) * batch``: its momentum is the weight of the
*old* statistic (default 0.99). torch updates ``running = (1 - momentum) * running +
momentum * batch``: the weight of the *new* one (default 0.1). Keras 0.99 is torch 0.01.

Both normalise with the biased batch variance, but torch stores the *unbiased* one
(``n / (n - 1)`` times it, ``n`` values per channel) in ``running_var``. No torch setting
changes that, so :class:`VarianceConvention` follows each BatchNorm module's inputs and
gives its ``running_var`` in Keras's (biased) convention: the comparison says so.
"""

from __future__ import annotations

import numpy as np

from ..errors import BadInputError

__all__ = ["keras_to_torch_momentum", "torch_to_keras_momentum", "VarianceConvention"]


def keras_to_torch_momentum(momentum: float) -> float:
    """Keras BatchNormalization(momentum=m) is torch BatchNorm(momentum=1 - m).

    >>> round(keras_to_torch_momentum(0.99), 12)
    0.01
    """
    if not 0.0 <= float(momentum) <= 1.0:
        raise BadInputError(f"BatchNorm momentum must be in [0, 1]; received {momentum}.")
    return 1.0 - float(momentum)


def torch_to_keras_momentum(momentum: float | None) -> float:
    """torch BatchNorm(momentum=m) is Keras BatchNormalization(momentum=1 - m); torch's
    ``momentum=None`` (a cumulative average) has no Keras twin.

    >>> round(torch_to_keras_momentum(0.1), 12)
    0.9
    """
    if momentum is None:
        raise BadInputError("torch BatchNorm(momentum=None) keeps a cumulative average; Keras has no such setting. Give a number.")
    return keras_to_torch_momentum(momentum)


def is_batchnorm(module) -> bool:
    return type(module).__name__ in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


class VarianceConvention:
    """Watches the torch BatchNorm modules' training inputs (forward pre-hooks, read only) and
    keeps, per module, how far torch's ``running_var`` has drifted from Keras's convention:
    ``D <- (1 - m) D + m * var_b / (n - 1)``. ``keras_view(name, running_var)`` is
    ``running_var - D``."""

    def __init__(self, modules: dict[str, object]):
        self.drift: dict[str, np.ndarray] = {}
        self._handles = []
        for name, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name):
        def hook(module, args):
            if not module.training or not module.track_running_stats:
                return
            import torch

            with torch.no_grad():
                x = args[0].detach().to(torch.float64)
                dims = [0, *range(2, x.ndim)]
                n = x.numel() // x.shape[1]
                var_b = x.var(dim=dims, unbiased=False).cpu().numpy()
            m = module.momentum if module.momentum is not None else 1.0 / (int(module.num_batches_tracked) + 1)
            old = self.drift.get(name, np.zeros_like(var_b))
            self.drift[name] = (1 - m) * old + m * var_b / max(n - 1, 1)

        return hook

    def keras_view(self, name: str, running_var: np.ndarray) -> np.ndarray:
        """Module ``name``'s ``running_var`` in Keras's (biased) convention."""
        d = self.drift.get(name)
        return running_var if d is None else running_var - d.astype(running_var.dtype)

    def remove(self) -> None:
        """Take the hooks off."""
        for h in self._handles:
            h.remove()
