"""Keras's RMSprop and Adagrad written as torch optimizers: the exact torch twins that
``torch.optim`` lacks.

Keras adds epsilon *inside* the square root (``g / sqrt(v + eps)``), torch.optim *outside*
(``g / (sqrt(v) + eps)``); no constant makes the two equal for every ``v``. A port that must
keep Keras's numbers can train with these; :func:`xconv.compare_training` uses them as the
torch twin of a Keras RMSprop or Adagrad and says so in its report.

The state keys follow torch.optim's names (``square_avg``, ``grad_avg``, ``momentum_buffer``,
``sum``); ``momentum_buffer`` holds what Keras holds (the learning rate already folded in).
"""

from __future__ import annotations

import torch

__all__ = ["KerasRMSprop", "KerasAdagrad"]


class KerasRMSprop(torch.optim.Optimizer):
    """``keras.optimizers.RMSprop``'s update: ``v = rho v + (1-rho) g^2``; (centered: minus the
    squared running mean of ``g``); ``inc = lr g / sqrt(v + eps)``; with momentum
    ``m = momentum m + inc`` and ``w -= m``, else ``w -= inc``."""

    def __init__(self, params, lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
        super().__init__(params, dict(lr=lr, rho=rho, momentum=momentum, epsilon=epsilon, centered=centered))

    @torch.no_grad()
    def step(self, closure=None):
        """One Keras RMSprop update of every parameter with a gradient."""
        for group in self.param_groups:
            lr, rho, mom, eps = group["lr"], group["rho"], group["momentum"], group["epsilon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["square_avg"] = torch.zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = torch.zeros_like(p)
                    if mom > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                v = state["square_avg"]
                v.copy_(rho * v + (1 - rho) * g * g)
                if group["centered"]:
                    ga = state["grad_avg"]
                    ga.copy_(rho * ga + (1 - rho) * g)
                    denominator = v - ga * ga + eps
                else:
                    denominator = v + eps
                increment = (lr * g) / torch.sqrt(denominator)
                if mom > 0:
                    m = state["momentum_buffer"]
                    m.copy_(mom * m + increment)
                    p.sub_(m)
                else:
                    p.sub_(increment)


class KerasAdagrad(torch.optim.Optimizer):
    """``keras.optimizers.Adagrad``'s update: ``acc += g^2``; ``w -= lr g / sqrt(acc + eps)``,
    the accumulator starting at ``initial_accumulator_value`` (Keras default 0.1)."""

    def __init__(self, params, lr=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
        super().__init__(params, dict(lr=lr, initial_accumulator_value=initial_accumulator_value, epsilon=epsilon))

    @torch.no_grad()
    def step(self, closure=None):
        """One Keras Adagrad update of every parameter with a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["sum"] = torch.full_like(p, group["initial_accumulator_value"])
                acc = state["sum"]
                acc.add_(p.grad * p.grad)
                p.sub_((group["lr"] * p.grad) / torch.sqrt(acc + group["epsilon"]))
