"""Losses both ways: categorical and sparse cross-entropy (``from_logits``, ``label_smoothing``),
binary cross-entropy, MSE, MAE and Huber, with their reductions.

What differs (read from keras/src/losses/losses.py, keras/src/backend/tensorflow/nn.py and
torch/nn/functional.py):

* Keras's per-sample loss reduces the *last* axis (classes or channels) first, then
  ``sum_over_batch_size`` divides the sum by the number of what is left; torch's ``mean``
  divides by every element. They agree. Keras's ``sum`` of an elementwise loss (MSE, MAE,
  Huber, BCE) is torch's ``sum`` divided by the size of the last axis.
* Keras's cross-entropy on probabilities renormalises them, clips them to
  ``[1e-7, 1 - 1e-7]`` and takes the log; torch's ``CrossEntropyLoss`` always takes logits.
  (Keras on TensorFlow also reads the logits behind a softmax/sigmoid *activation* when it can,
  ``_keras_logits``; the two agree wherever no probability is below 1e-7.)
* label smoothing: Keras ``y (1 - s) + s / K`` (binary: ``+ s / 2``), torch's
  ``CrossEntropyLoss`` the same for ``K`` classes; torch's BCE has none (the twin smooths the
  targets); Keras's sparse cross-entropy has none.
* a Keras loss computes in ``backend.floatx()`` (float32) unless built with ``dtype=``: xconv
  builds its Keras losses in the models' dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import BadInputError

__all__ = ["LossSetting", "loss_setting", "KINDS"]

KINDS = ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mse", "mae", "huber")
_ALIASES = {
    "mean_squared_error": "mse", "meansquarederror": "mse", "mse": "mse", "mseloss": "mse",
    "mean_absolute_error": "mae", "meanabsoluteerror": "mae", "mae": "mae", "l1": "mae", "l1loss": "mae",
    "huber": "huber", "huberloss": "huber",
    "categorical_crossentropy": "categorical_crossentropy", "categoricalcrossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy", "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy", "binarycrossentropy": "binary_crossentropy",
    "cross_entropy": "cross_entropy", "crossentropyloss": "cross_entropy", "crossentropy": "cross_entropy",
    "bce": "binary_crossentropy", "bceloss": "binary_crossentropy", "bcewithlogitsloss": "bce_with_logits",
    "bce_with_logits": "bce_with_logits", "binary_cross_entropy_with_logits": "bce_with_logits",
}  # fmt: skip
_ELEMENTWISE = ("binary_crossentropy", "mse", "mae", "huber")
_KERAS_CLASS = {
    "categorical_crossentropy": "CategoricalCrossentropy", "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "binary_crossentropy": "BinaryCrossentropy", "mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "huber": "Huber",
}  # fmt: skip


@dataclass(frozen=True)
class LossSetting:
    """A loss in a framework-neutral form. ``reduction`` is 'mean' (Keras
    ``sum_over_batch_size``, torch ``mean``), 'keras_sum' (Keras ``sum``) or 'torch_sum'
    (torch ``sum``): the two sums differ for elementwise losses."""

    kind: str
    from_logits: bool = False
    label_smoothing: float = 0.0
    reduction: str = "mean"
    delta: float = 1.0  # Huber
    framework: str = "keras"  # whose object or name it came from

    def __str__(self) -> str:
        extra = []
        if self.kind in ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"):
            extra.append(f"from_logits={self.from_logits}")
        if self.label_smoothing:
            extra.append(f"label_smoothing={self.label_smoothing}")
        if self.kind == "huber":
            extra.append(f"delta={self.delta}")
        extra.append(f"reduction={self.reduction}")
        return f"{self.kind}({', '.join(extra)})"

    # ------------------------------------------------------------ Keras side
    def keras_reduction(self) -> str:
        """Keras's name for this reduction, or a refusal where Keras has none."""
        if self.reduction == "torch_sum" and self.kind in _ELEMENTWISE:
            raise BadInputError(
                f"No exact Keras twin for torch reduction='sum' of {self.kind}: Keras's 'sum' adds per-sample means "
                f"over the last axis, 1/C of torch's sum. Use reduction='mean' on both sides, or Keras's 'sum'."
            )
        return "sum_over_batch_size" if self.reduction == "mean" else "sum"

    def keras_loss(self, dtype: str):
        """The Keras loss object, computing in ``dtype``."""
        from ..frameworks.keras_side import keras

        if self.kind == "sparse_categorical_crossentropy" and self.label_smoothing:
            raise BadInputError(
                "No exact Keras twin: Keras's SparseCategoricalCrossentropy has no label_smoothing. "
                "Give one-hot targets and categorical_crossentropy instead."
            )
        cls = getattr(keras().losses, _KERAS_CLASS[self.kind])
        kw = dict(reduction=self.keras_reduction(), dtype=dtype)
        if self.kind in ("categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy"):
            kw["from_logits"] = self.from_logits
        if self.kind in ("categorical_crossentropy", "binary_crossentropy"):
            kw["label_smoothing"] = self.label_smoothing
        if self.kind == "huber":
            kw["delta"] = self.delta
        return cls(**kw)

    # ------------------------------------------------------------ torch side
    def torch_loss(self):
        """A function ``(output, target) -> scalar`` on channels-first torch tensors."""
        import torch
        import torch.nn.functional as F

        eps = 1e-7  # keras.backend.epsilon()
        kind, ls, red = self.kind, float(self.label_smoothing), self.reduction

        def reduce(per_sample, channels: int):
            if red == "mean":
                return per_sample.mean()
            return per_sample.sum() / (channels if (kind in _ELEMENTWISE and red == "keras_sum") else 1)

        def fn(out, target):
            channels = out.shape[1] if out.ndim > 1 else 1
            if kind == "categorical_crossentropy":
                if self.from_logits:
                    return F.cross_entropy(out, target, label_smoothing=ls, reduction="mean" if red == "mean" else "sum")
                y = target * (1 - ls) + ls / channels if ls else target
                p = torch.clamp(out / out.sum(1, keepdim=True), eps, 1 - eps)
                return reduce(-(y * torch.log(p)).sum(1), 1)
            if kind == "sparse_categorical_crossentropy":
                logits = out if self.from_logits else torch.log(torch.clamp(out, eps, 1 - eps))
                return F.cross_entropy(logits, target.long(), label_smoothing=ls, reduction="mean" if red == "mean" else "sum")
            if kind == "binary_crossentropy":
                y = target * (1 - ls) + 0.5 * ls if ls else target
                if self.from_logits:
                    per = F.binary_cross_entropy_with_logits(out, y, reduction="none")
                else:
                    p = torch.clamp(out, eps, 1 - eps)
                    per = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
                return reduce(per, channels)
            per = {"mse": lambda: (out - target) ** 2, "mae": lambda: torch.abs(out - target),
                   "huber": lambda: F.huber_loss(out, target, delta=self.delta, reduction="none")}[kind]()  # fmt: skip
            return reduce(per, channels)

        return fn

    def torch_description(self) -> str:
        """What the torch side computes, in one line."""
        red = {"mean": "mean", "torch_sum": "sum", "keras_sum": "sum / C" if self.kind in _ELEMENTWISE else "sum"}[self.reduction]
        k = self.kind
        if k == "categorical_crossentropy" and self.from_logits:
            return f"F.cross_entropy(logits, one-hot targets, label_smoothing={self.label_smoothing}, reduction={red})"
        if k == "categorical_crossentropy":
            return f"-sum(y log clip(p / sum p, 1e-7, 1-1e-7)) over classes, {red} (Keras's formula in torch)"
        if k == "sparse_categorical_crossentropy":
            src = "logits" if self.from_logits else "log(clip(p, 1e-7, 1-1e-7))"
            return f"F.cross_entropy({src}, class indices, reduction={red})"
        if k == "binary_crossentropy":
            src = "F.binary_cross_entropy_with_logits" if self.from_logits else "-(y log p + (1-y) log(1-p)), p clipped to [1e-7, 1-1e-7]"
            return f"{src}, {red}" + (f", targets smoothed y(1-{self.label_smoothing}) + {self.label_smoothing}/2" if self.label_smoothing else "")
        return {"mse": "F.mse_loss", "mae": "F.l1_loss", "huber": f"F.huber_loss(delta={self.delta})"}[k] + f", {red}"


def _kind(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    kind = _ALIASES.get(key) or _ALIASES.get(key.replace("_", ""))
    if kind is None:
        raise BadInputError(f"Unknown loss {name!r}; xconv maps: {', '.join(KINDS)} (and torch's CrossEntropyLoss, BCEWithLogitsLoss, MSELoss, L1Loss, HuberLoss).")
    return kind


def _parse(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise BadInputError(f"Loss argument {item!r} in {text!r} is not key=value.")
        v = value.strip()
        params[key.strip()] = v.lower() == "true" if v.lower() in ("true", "false") else (v if v.isalpha() else float(v))
    return name, params


def loss_setting(obj, *, sparse_targets: bool | None = None) -> LossSetting:
    """A :class:`LossSetting` from a name (``"categorical_crossentropy:from_logits=true"``,
    ``"torch.cross_entropy:label_smoothing=0.1"``), a dict, or a Keras or torch loss object.

    torch's cross-entropy takes logits and either class indices or probabilities;
    ``sparse_targets`` (from the targets' dtype) says which Keras loss is its twin.
    """
    if isinstance(obj, LossSetting):
        return obj
    if isinstance(obj, (str, dict)):
        if isinstance(obj, str):
            name, params = _parse(obj)
        else:
            params = dict(obj)
            name = params.pop("name", "")
        framework = "keras"
        if name.startswith(("torch.", "keras.")):
            framework, name = name.split(".", 1)
        kind = _kind(name)
        if kind in ("cross_entropy", "bce_with_logits") or framework == "torch":
            return _torch_loss(kind, params, sparse_targets, obj)
        return _keras_params(kind, params, obj)
    cls = type(obj).__name__
    module = type(obj).__module__ or ""
    if module.startswith("keras"):
        config = obj.get_config()
        params = {k: config[k] for k in ("from_logits", "label_smoothing", "reduction", "delta") if k in config}
        if config.get("axis", -1) != -1:
            raise BadInputError(f"Keras {cls} with axis={config['axis']}: xconv maps the last (channel) axis only.")
        return _keras_params(_kind(cls), params, cls)
    if module.startswith("torch"):
        params = {k: getattr(obj, k) for k in ("reduction", "label_smoothing", "delta", "beta") if hasattr(obj, k)}
        for bad in ("weight", "pos_weight"):
            if getattr(obj, bad, None) is not None:
                raise BadInputError(f"torch {cls} has {bad}=...: class weights have no mapping yet; leave them off.")
        if getattr(obj, "ignore_index", -100) != -100:
            raise BadInputError(f"torch {cls} has ignore_index={obj.ignore_index}: no mapping yet.")
        if cls == "SmoothL1Loss":
            if params.pop("beta", 1.0) != 1.0:
                raise BadInputError("torch SmoothL1Loss with beta != 1 is Huber(delta=beta) divided by beta: no exact Keras loss; use HuberLoss.")
            cls = "HuberLoss"
        if cls == "BCELoss":
            return _torch_loss("binary_crossentropy", params, sparse_targets, cls)
        return _torch_loss(_kind(cls), params, sparse_targets, cls)
    raise BadInputError(f"Cannot read a loss from {cls}: give a name, a dict, or a Keras or torch loss object.")


def _keras_params(kind, params, shown) -> LossSetting:
    allowed = {"from_logits", "label_smoothing", "reduction", "delta"}
    unknown = set(params) - allowed
    if unknown:
        raise BadInputError(f"Loss {shown!r} has unknown argument(s) {sorted(unknown)}; known: {sorted(allowed)}.")
    red = params.get("reduction", "sum_over_batch_size")
    red = {"sum_over_batch_size": "mean", "mean": "mean", "sum": "keras_sum"}.get(red)
    if red is None:
        raise BadInputError(f"Loss {shown!r}: reduction {params.get('reduction')!r} has no training twin; use 'sum_over_batch_size' or 'sum'.")
    s = LossSetting(kind, bool(params.get("from_logits", False)), float(params.get("label_smoothing", 0.0)), red, float(params.get("delta", 1.0)), "keras")
    if kind == "sparse_categorical_crossentropy" and s.label_smoothing:
        raise BadInputError("Keras's SparseCategoricalCrossentropy has no label_smoothing; use categorical_crossentropy with one-hot targets.")
    return s


def _torch_loss(kind, params, sparse_targets, shown) -> LossSetting:
    red = params.get("reduction", "mean")
    if red not in ("mean", "sum"):
        raise BadInputError(f"torch loss {shown!r}: reduction={red!r} has no training twin; use 'mean' or 'sum'.")
    red = "mean" if red == "mean" else "torch_sum"
    ls = float(params.get("label_smoothing", 0.0))
    if kind == "cross_entropy":
        kind = "sparse_categorical_crossentropy" if sparse_targets in (True, None) else "categorical_crossentropy"
        return LossSetting(kind, True, ls, red, framework="torch")
    if kind == "bce_with_logits":
        return LossSetting("binary_crossentropy", True, 0.0, red, framework="torch")
    if kind in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        raise BadInputError(f"torch has no {kind} on probabilities as a loss class; use torch.cross_entropy on logits.")
    return LossSetting(kind, False, 0.0, red, float(params.get("delta", 1.0)), "torch")


def with_targets(setting: LossSetting, sparse: bool) -> LossSetting:
    """torch's cross-entropy is categorical or sparse by its targets: fix which one."""
    if setting.framework == "torch" and setting.kind in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        return replace(setting, kind="sparse_categorical_crossentropy" if sparse else "categorical_crossentropy")
    return setting
