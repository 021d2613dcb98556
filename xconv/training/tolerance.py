"""Tolerance policy for training comparisons: by dtype and by quantity.

Every quantity passes when ``max |a - b| <= atol + rtol * max |a|`` (normwise, as in
:mod:`xconv.comparison.tolerance`), ``a`` being Keras's tensor in torch's layout.

float64 (the strict mode): ``rtol = 1e-9`` for everything. Three steps of a correct port
agree to about 1e-13 (measured: tests/test_training.py prints nothing above 1e-12 for the
zoo models); every planted convention bug moves some quantity by 1e-6 or more.

float32: one forward pass agrees to ~1e-6 relative (see comparison/tolerance.py); a backward
pass runs two more convolutions per layer and the loss reduction, so gradients get 10x that
headroom, and the optimizer state is built from gradients:

* ``loss`` and BatchNorm statistics: ``rtol = 1e-4``, the forward-pass policy of
  comparison/tolerance.py (they are a forward pass and its reductions; after the first step
  that pass runs on weights that may differ by the adaptive floor below: unet_encoder with
  Adam showed 1.8e-5 at step 3);
* gradients, clipped gradients, momentum buffers, Adam's first moment: ``rtol = 1e-3``;
* squared-gradient accumulators (Adam's second moment, RMSprop, Adagrad): ``rtol = 2e-3``
  (relative error doubles when squared);
* weights: ``rtol = 1e-5`` on the weights themselves: an update is ~lr times smaller than the
  weight, so its own error (up to 1e-3 of it for adaptive optimizers, where ``m / sqrt(v)``
  divides two noisy numbers) is far below this, while a wrong update rule moves a weight by
  a sizeable part of ``lr``.

Adaptive optimizers in float32 (Adam, AdamW, RMSprop, Adagrad) divide by the gradient's own
size, so a gradient that should be 0 (a conv bias right before a BatchNorm: the BatchNorm
subtracts it again) but holds float32 rounding noise becomes a step of up to ``lr``, in a
direction the noise decides. Each side may step the other way, so after ``t`` steps such a
weight may differ by ``2 lr t``, and a BatchNorm's running mean (which sees that bias) by as
much: :func:`step_floor` adds that to their atol. A float64 run has no such floor.

The atol floors keep all-zero tensors (a dead ReLU's gradient) from failing on 1e-12 noise.
A float32 comparison is for "is this port's training sane"; convention bugs that act only on
tiny gradients (Adam's epsilon placement) need float64 to be seen.
"""

from __future__ import annotations

from ..errors import BadInputError

QUANTITIES = ("loss", "running_mean", "running_var", "gradient", "clipped_gradient", "state", "state_sq", "weight")

_FLOAT64 = {q: (1e-9, 1e-12) for q in QUANTITIES}
_FLOAT32 = {
    "loss": (1e-4, 1e-7),
    "running_mean": (1e-4, 1e-7),
    "running_var": (1e-4, 1e-7),
    "gradient": (1e-3, 1e-8),
    "clipped_gradient": (1e-3, 1e-8),
    "state": (1e-3, 1e-8),
    "state_sq": (2e-3, 1e-12),
    "weight": (1e-5, 1e-7),
}
DEFAULTS = {"float64": _FLOAT64, "float32": _FLOAT32}
# state keys whose values are squared gradients
SQUARED = {"exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum"}


def family(quantity: str) -> str:
    """The tolerance family of a compared ``quantity``: itself for the ones of ``QUANTITIES``
    (loss, gradient, weight ...), else ``state_sq`` for squared optimizer slots, ``state`` for the others."""
    if quantity in QUANTITIES:
        return quantity
    return "state_sq" if quantity in SQUARED else "state"


def resolve(dtype: str, rtol: float | None = None, atol: float | None = None) -> dict[str, tuple[float, float]]:
    """Per-quantity ``(rtol, atol)``: the defaults for ``dtype``, or ``rtol`` and ``atol`` given together for all."""
    if (rtol is None) != (atol is None):
        raise BadInputError(f"Give rtol and atol together or not at all (received rtol={rtol}, atol={atol}).")
    if rtol is not None:
        if rtol < 0 or atol < 0:
            raise BadInputError(f"rtol and atol must be >= 0; received rtol={rtol}, atol={atol}.")
        return {q: (float(rtol), float(atol)) for q in QUANTITIES}
    try:
        return dict(DEFAULTS[dtype])
    except KeyError:
        raise BadInputError(f"No training tolerance for dtype {dtype!r}; known: {', '.join(DEFAULTS)}.") from None


ADAPTIVE = ("adam", "adamw", "rmsprop", "adagrad")


def step_floor(dtype: str, quantity: str, optimizer_kind: str, lr: float, step: int) -> float:
    """The extra atol for float32 weights and running means under an adaptive optimizer (see above)."""
    if dtype == "float64" or optimizer_kind not in ADAPTIVE or quantity not in ("weight", "running_mean"):
        return 0.0
    return 2.0 * abs(lr) * step
