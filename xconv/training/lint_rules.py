"""The training traps :func:`xconv.lint` reads from two configurations (and two optimizers, when given).

Inference parity says nothing about these; each shows only once the port trains:

* a BatchNorm that Keras runs frozen (``trainable=False``: Keras 3 then normalises with its
  moving statistics even in training) while torch's would use batch statistics in ``train()``;
  torch ``momentum=None`` (a cumulative average, no Keras twin); ``track_running_stats=False``;
  Keras ``renorm=True``;
* a layer frozen on one side only (Keras ``trainable=False`` against ``requires_grad=True``);
* dropout rates that differ (Keras ``rate`` against torch ``p``);
* Keras weight regularizers, which add to Keras's loss and nothing to torch's;
* optimizers (``optimizer=(keras_opt, torch_opt)``): epsilon where the same number means a
  different thing, weight decay as L2 against decoupled, and every hyperparameter that is not
  its twin's value.
"""

from __future__ import annotations

import numpy as np

from ..linting import rule

__all__ = ["training_findings", "optimizer_findings", "training_traps"]

_DROPOUT_K = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D")
_DROPOUT_T = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d")


@rule
def training_traps(ctx) -> list:
    """The lint rule: frozen BatchNorms, momentum=None, frozen layers, regularizers, dropout rates."""
    return training_findings(ctx.keras_model, ctx.torch_module, ctx.pairs)


def optimizer_findings(optimizer) -> list:
    """Findings for two optimizers, ``(keras_optimizer, torch_optimizer)`` (names, dicts or objects)."""
    from ..linting import Finding

    return _optimizers(optimizer, Finding)


def training_findings(keras_model, torch_module, pairs, optimizer=None) -> list:
    """Findings for the training traps; ``pairs`` are lint's (Keras layer, torch name, module)."""
    from ..frameworks import keras_side as ks
    from ..linting import Finding

    out: list = []
    for layer, tname, module in pairs:
        kind = type(layer).__name__
        params = list(module.parameters(recurse=False))
        if kind == "BatchNormalization":
            out += _batchnorm(layer, tname, module, Finding)
        if params and not layer.trainable and any(p.requires_grad for p in params):
            out.append(Finding("frozen on one side", layer.name, tname, "the Keras layer has trainable=False; the torch module's parameters require gradients.",
                               f"call {tname}.requires_grad_(False) (and eval() for a BatchNorm)."))  # fmt: skip
        elif params and layer.trainable and layer.trainable_weights and not any(p.requires_grad for p in params):
            out.append(Finding("frozen on one side", layer.name, tname, "the torch parameters have requires_grad=False; the Keras layer trains.",
                               f"set layer.trainable = False on '{layer.name}', or requires_grad_(True) on '{tname}'."))  # fmt: skip
        regs = [n for n in ("kernel_regularizer", "bias_regularizer", "gamma_regularizer", "beta_regularizer") if getattr(layer, n, None) is not None]
        if regs:
            out.append(Finding("weight regularizer", layer.name, tname, f"Keras adds {', '.join(regs)} to its loss; torch's loss knows nothing of it.",
                               "add the same penalty to the torch loss (an L2 of l on w adds l * sum(w**2)), or remove it."))  # fmt: skip
    k_drop = [l for l in ks.iter_layers(keras_model) if type(l).__name__ in _DROPOUT_K]
    t_drop = [(n, m) for n, m in torch_module.named_modules() if type(m).__name__ in _DROPOUT_T]
    by_name = dict(t_drop)
    rest = [n for n, _ in t_drop if n not in {l.name for l in k_drop}]
    for layer in k_drop:
        name = layer.name if layer.name in by_name else (rest.pop(0) if rest else None)
        if name is None:
            out.append(Finding("dropout", layer.name, "-", f"Keras has {type(layer).__name__}(rate={layer.rate}); the port has no dropout here.", "add nn.Dropout with p=rate."))
            continue
        if not np.isclose(float(layer.rate), float(by_name[name].p)):
            out.append(Finding("dropout rate", layer.name, name, f"Keras rate={layer.rate}; torch p={by_name[name].p} (both are the fraction dropped).", f"use p={layer.rate}."))
    if optimizer is not None:
        out += _optimizers(optimizer, Finding)
    return out


def _batchnorm(layer, tname, module, Finding) -> list:
    out = []
    if not getattr(module, "track_running_stats", True):
        out.append(Finding("BatchNorm running statistics", layer.name, tname, "torch track_running_stats=False normalises with batch statistics even in eval(); Keras keeps moving statistics.",
                           "build the torch BatchNorm with track_running_stats=True."))  # fmt: skip
    elif module.momentum is None:
        out.append(Finding("BatchNorm momentum", layer.name, tname, "torch momentum=None keeps a cumulative average of the batch statistics; Keras an exponential one.",
                           f"use momentum={round(1 - float(layer.momentum), 6)} (1 - Keras momentum)."))  # fmt: skip
    if not layer.trainable:
        out.append(Finding("frozen BatchNorm", layer.name, tname, "Keras runs a BatchNormalization with trainable=False in inference mode, even in fit(); torch's BatchNorm in train() uses batch statistics and updates its running ones.",
                           f"keep '{tname}' in eval() mode while training (module.{tname}.eval() after model.train())."))  # fmt: skip
    if getattr(layer, "renorm", False):
        out.append(Finding("BatchNorm renorm", layer.name, tname, "Keras renorm=True has no torch twin.", "train without renorm."))
    return out


def _optimizers(optimizer, Finding) -> list:
    from ..errors import XconvError
    from .optimizers import _full, optimizer_setting, torch_twin

    if not isinstance(optimizer, (tuple, list)) or len(optimizer) != 2:
        return [Finding("optimizer", "optimizer", "optimizer", "lint compares two optimizers: give optimizer=(keras_optimizer, torch_optimizer).", "pass both.")]
    try:
        ks_, ts_ = optimizer_setting(optimizer[0], "keras"), optimizer_setting(optimizer[1], "torch")
    except XconvError as exc:
        return [Finding("optimizer", "optimizer", "optimizer", str(exc), "give names, dicts or optimizer objects.")]
    out = []
    if ks_.kind.replace("adamw", "adam") != ts_.kind.replace("adamw", "adam"):
        return [Finding("optimizer", "optimizer", "optimizer", f"Keras uses {ks_.kind}, torch {ts_.kind}.", "use the same algorithm on both sides.")]
    t_args, t_clip = _full(ts_)
    try:
        twin = torch_twin(ks_)
    except XconvError as exc:
        return [Finding("optimizer without twin", "optimizer", "optimizer", str(exc), "see docs/training.md.")]
    k_args = _full(ks_)[0]
    if ks_.kind in ("adam", "adamw"):
        k_eps, t_eps = float(k_args["epsilon"]), float(t_args["eps"])
        out.append(Finding("Adam epsilon placement", "optimizer", "optimizer",
                           f"Keras epsilon={k_eps} is added to sqrt(v) before the bias correction, torch eps={t_eps} after it: torch's equivalent is "
                           f"{k_eps}/sqrt(1-beta_2^t) ({twin.kwargs['eps']:.3g} at step 1), a different value every step.",
                           "compare with xconv.compare_training, which sets torch's eps per step; or accept a difference where |g| is near eps."))  # fmt: skip
    if ks_.kind in ("rmsprop", "adagrad"):
        out.append(Finding("epsilon inside the square root", "optimizer", "optimizer",
                           f"Keras divides by sqrt(v + {k_args['epsilon']}), torch by sqrt(v) + {t_args['eps']}.",
                           f"train the torch side with xconv.training.torch_optim.{twin.cls_name}, Keras's update in torch."))  # fmt: skip
    k_wd, t_wd = float(k_args.get("weight_decay") or 0.0), float(t_args.get("weight_decay") or 0.0)
    if t_wd and ts_.kind != "adamw" and not t_args.get("decoupled_weight_decay") and not (ts_.kind == "sgd" and not float(t_args.get("momentum", 0))):
        out.append(Finding("weight decay as L2", "optimizer", "optimizer", f"torch {ts_.kind} weight_decay={t_wd} adds an L2 term to the gradient; Keras's weight_decay={k_wd or None} is decoupled (w -= lr*wd*w).",
                           "use torch AdamW for Keras Adam/AdamW weight decay."))  # fmt: skip
    elif not np.isclose(k_wd, t_wd, rtol=1e-6, atol=0):
        out.append(Finding("weight decay", "optimizer", "optimizer", f"Keras weight_decay={k_wd}; torch weight_decay={t_wd}.", f"use weight_decay={k_wd} on the torch side."))
    for key, want in twin.kwargs.items():
        if key in ("eps", "epsilon", "weight_decay") or key not in t_args:
            continue
        got = t_args[key]
        same = np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-6, atol=0) if not isinstance(want, bool) else got == want
        if not same:
            out.append(Finding(f"optimizer {key}", "optimizer", "optimizer", f"torch {key}={got!r}; the Keras optimizer's twin has {key}={want!r}.", f"use {key}={want!r}."))
    if twin.clip != t_clip:
        out.append(Finding("gradient clipping", "optimizer", "optimizer", f"Keras clips {twin.clip or 'nothing'}; the torch side {t_clip or 'nothing'}.", "clip the same way on both sides (docs/training.md)."))
    return out
