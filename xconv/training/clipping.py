"""Gradient clipping: Keras's three kinds, torch's two utilities, and which is whose twin.

Keras (``keras/src/optimizers/base_optimizer.py``) clips before weight decay and the update,
and only one kind at a time: ``clipnorm`` scales each weight's gradient by
``c / max(||g||, c)``; ``global_clipnorm`` scales all of them by ``c * min(1/||G||, 1/c)``
(``G`` every gradient together); ``clipvalue`` clips every element to ``[-c, c]``.

torch has ``clip_grad_value_`` (the exact twin of ``clipvalue``) and ``clip_grad_norm_``,
which scales by ``c / (||G|| + 1e-6)`` (``torch/nn/utils/clip_grad.py``): a relative
``1e-6 / ||G||`` away from Keras's ``global_clipnorm`` whenever it clips, so it is *not* an
exact twin. The twins of ``clipnorm`` and ``global_clipnorm`` are written here in torch ops.
"""

from __future__ import annotations

from ..errors import BadInputError

__all__ = ["KINDS", "TORCH_ONLY", "clip_torch", "describe"]

# the kinds both frameworks can run exactly (xconv applies them on the torch side)
KINDS = ("clipnorm", "global_clipnorm", "clipvalue")
# torch's own clip_grad_norm_, with its +1e-6: runnable on the torch side, no exact Keras twin
TORCH_ONLY = ("clip_grad_norm",)


def describe(clip: tuple[str, float] | None, side: str) -> str:
    """What ``clip`` does on ``side`` ('keras' or 'torch'), in words."""
    if clip is None:
        return "no clipping"
    kind, c = clip
    if side == "keras":
        return f"{kind}={c} (Keras optimizer argument)"
    return {
        "clipnorm": f"each gradient scaled by {c}/max(||g||, {c}) (Keras's clipnorm, in torch ops)",
        "global_clipnorm": f"all gradients scaled by {c}*min(1/||G||, 1/{c}) (Keras's global_clipnorm, in torch ops)",
        "clipvalue": f"torch.nn.utils.clip_grad_value_({c})",
        "clip_grad_norm": f"torch.nn.utils.clip_grad_norm_({c}) (scales by {c}/(||G|| + 1e-6))",
    }[kind]


def clip_torch(params, clip: tuple[str, float] | None) -> None:
    """Clip the ``.grad`` of ``params`` in place, the way ``clip`` says."""
    import torch

    if clip is None:
        return
    kind, c = clip
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    with torch.no_grad():
        if kind == "clipnorm":
            for g in grads:
                g.mul_(c / torch.clamp(torch.linalg.vector_norm(g), min=c))
        elif kind == "global_clipnorm":
            total = torch.sqrt(torch.stack([torch.sum(g * g) for g in grads]).sum())
            scale = c * torch.minimum(1.0 / total, torch.tensor(1.0 / c, dtype=total.dtype))
            for g in grads:
                g.mul_(scale)
        elif kind == "clipvalue":
            torch.nn.utils.clip_grad_value_(params, c)
        elif kind == "clip_grad_norm":
            torch.nn.utils.clip_grad_norm_(params, c)
        else:
            raise BadInputError(f"Unknown clipping {kind!r}; known: {', '.join(KINDS + TORCH_ONLY)}.")
