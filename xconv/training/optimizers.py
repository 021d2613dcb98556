"""Optimizers both ways: SGD (momentum, nesterov), Adam, AdamW, RMSprop and Adagrad.

A setting is written in *one* framework's convention (its names, defaults and meanings);
:func:`torch_twin` and :func:`keras_twin` find the exact twin in the other, or refuse with
the reason. What differs (read from keras/src/optimizers/*.py and torch/optim/*.py):

* Adam's epsilon: Keras ``w -= lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)``, torch
  ``w -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)``: Keras's eps is torch's
  ``eps / sqrt(1 - b2^t)``, a different value at every step. The twin sets it per step.
* weight decay: Keras's ``weight_decay`` is always decoupled (``w -= lr wd w`` before the
  update); torch's is an L2 term added to the gradient, except in AdamW. Keras Adam(wd) is
  torch AdamW(wd); L2 through momentum or an adaptive denominator has no Keras twin.
* RMSprop and Adagrad: Keras puts eps inside the square root, torch outside; the twin of a
  Keras one is :class:`xconv.training.torch_optim.KerasRMSprop` / ``KerasAdagrad``, and a
  torch one has a Keras twin only with ``eps=0``.
* the learning rate: Keras keeps it in a float32 variable (``backend.floatx()``), so a
  float64 run uses ``float32(lr)``; the torch twin gets that same value.
* momentum buffers: Keras SGD stores ``m = momentum m - lr g`` (torch ``b = momentum b + g``,
  so ``b = -m / lr``); Keras RMSprop stores ``lr`` times torch's buffer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInputError
from . import clipping

__all__ = ["OptimizerSetting", "Plan", "optimizer_setting", "torch_twin", "keras_twin", "plan_for", "KINDS"]

KINDS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
_KERAS_CLASS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
_TORCH_CLASS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad"}
_KERAS_ONLY = {"learning_rate", "beta_1", "beta_2", "epsilon", "rho", "clipnorm", "clipvalue", "global_clipnorm"}
_TORCH_ONLY = {"lr", "betas", "eps", "alpha", "dampening", "lr_decay", "clip_grad_norm", "clip_grad_value", "maximize"}
# Keras optimizer arguments that change the algorithm and have no torch.optim counterpart
_KERAS_UNSUPPORTED = ("use_ema", "loss_scale_factor", "gradient_accumulation_steps")
_TORCH_IGNORED = {"foreach", "capturable", "differentiable", "fused"}


@dataclass(frozen=True)
class OptimizerSetting:
    """An optimizer in one framework's convention: ``kind`` and the arguments given."""

    framework: str  # 'keras' | 'torch'
    kind: str
    params: tuple[tuple[str, object], ...] = ()

    def given(self) -> dict:
        """The arguments given (the rest are the installed class's defaults)."""
        return dict(self.params)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params)
        return f"{self.framework} {self.kind}({args})"


@dataclass
class Plan:
    """What one side runs: the optimizer class and arguments, hyperparameters set per step,
    the clipping, and the notes that say what was mapped how."""

    framework: str
    kind: str
    cls_name: str
    kwargs: dict
    schedule: dict[str, Callable[[int], float]] = field(default_factory=dict)  # name -> value at step t (1-based)
    clip: tuple[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: class, arguments, per-step hyperparameters, clipping."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        extra = "".join(f"; {k} set per step" for k in self.schedule)
        clip = "" if self.clip is None else f"; {clipping.describe(self.clip, self.framework)}"
        return f"{self.framework} {self.cls_name}({args}){extra}{clip}"

    def to_dict(self) -> dict:
        """The plan as plain data."""
        return {"framework": self.framework, "class": self.cls_name, "kwargs": {k: _jsonable(v) for k, v in self.kwargs.items()},
                "per_step": sorted(self.schedule), "clip": list(self.clip) if self.clip else None, "notes": list(self.notes)}  # fmt: skip

    def build(self, variables):
        """The optimizer object: Keras (``variables`` unused until apply) or torch (over ``variables``)."""
        if self.framework == "keras":
            from ..frameworks.keras_side import keras

            kwargs = dict(self.kwargs)
            if self.clip is not None:
                kwargs[self.clip[0]] = self.clip[1]
            return getattr(keras().optimizers, self.cls_name)(**kwargs)
        import torch

        from . import torch_optim

        cls = getattr(torch_optim, self.cls_name, None) or getattr(torch.optim, self.cls_name)
        return cls(variables, **self.kwargs)

    def set_step(self, optimizer, step: int) -> None:
        """Set the per-step hyperparameters before step ``step`` (1-based)."""
        for key, fn in self.schedule.items():
            if self.framework == "keras":
                setattr(optimizer, key, fn(step))
            else:
                for group in optimizer.param_groups:
                    group[key] = fn(step)


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def _refuse(setting, why: str, fix: str) -> BadInputError:
    return BadInputError(f"No exact twin for {setting}: {why} {fix}")


# ---------------------------------------------------------------- parsing

def _parse_value(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if "/" in text and not text.startswith(("(", "[")):  # betas=0.9/0.999
        return tuple(float(x) for x in text.split("/"))
    try:
        return int(text) if text.strip().lstrip("-").isdigit() else float(text)
    except ValueError:
        raise BadInputError(f"Cannot read optimizer argument value {text!r}: give a number, true/false or a/b for a pair.") from None


def _from_text(text: str) -> tuple[str | None, str, dict]:
    name, _, rest = text.partition(":")
    framework = None
    if "." in name:
        framework, name = name.split(".", 1)
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise BadInputError(f"Optimizer argument {item!r} in {text!r} is not key=value.")
        params[key.strip()] = _parse_value(value)
    return framework, name, params


def _kind(name: str) -> str:
    kind = name.lower().replace("_", "").replace("-", "")
    kind = {"kerasrmsprop": "rmsprop", "kerasadagrad": "adagrad"}.get(kind, kind)
    if kind not in KINDS:
        raise BadInputError(f"Unknown optimizer {name!r}; xconv maps: {', '.join(KINDS)}.")
    return kind


def optimizer_setting(obj, framework: str | None = None) -> OptimizerSetting:
    """An :class:`OptimizerSetting` from a name (``"adam"``, ``"torch.sgd:lr=0.1,momentum=0.9"``),
    a dict (``{"name": "adam", "framework": "keras", ...}``), or a real Keras or torch optimizer.

    Names with hyperparameters are in the convention their argument names show (``lr``/``eps``
    are torch's, ``learning_rate``/``epsilon`` Keras's); a bare name is Keras's, with its defaults.
    """
    if isinstance(obj, OptimizerSetting):
        return obj
    if isinstance(obj, str):
        fw, name, params = _from_text(obj)
        return _setting(fw or framework, name, params, obj)
    if isinstance(obj, dict):
        params = dict(obj)
        name = params.pop("name", None)
        if not name:
            raise BadInputError(f"An optimizer dict needs a 'name'; received {obj!r}.")
        return _setting(params.pop("framework", None) or framework, name, params, obj)
    module = type(obj).__module__ or ""
    if module.startswith("keras") or hasattr(obj, "get_config") and hasattr(obj, "apply_gradients"):
        return _from_keras_object(obj)
    if hasattr(obj, "param_groups") and hasattr(obj, "state"):
        return _from_torch_object(obj)
    raise BadInputError(
        f"Cannot read an optimizer from {type(obj).__name__}: give a name such as 'adam' or "
        f"'torch.sgd:lr=0.1,momentum=0.9', a dict, or a Keras or torch optimizer object."
    )


def _setting(framework, name, params, shown) -> OptimizerSetting:
    kind = _kind(name)
    keys = set(params)
    if framework is None:
        if keys & _TORCH_ONLY and keys & _KERAS_ONLY:
            raise BadInputError(
                f"Optimizer {shown!r} mixes Keras argument names ({sorted(keys & _KERAS_ONLY)}) and torch ones "
                f"({sorted(keys & _TORCH_ONLY)}); they mean different things (e.g. epsilon placement). Use one convention."
            )
        framework = "torch" if keys & _TORCH_ONLY else "keras"
    if framework not in ("keras", "torch"):
        raise BadInputError(f"Optimizer framework must be 'keras' or 'torch'; received {framework!r}.")
    allowed = set(_signature(framework, kind)) | (set(clipping.KINDS) | ({"clip_grad_norm", "clip_grad_value"} if framework == "torch" else set()))
    unknown = keys - allowed
    if unknown:
        raise BadInputError(
            f"{framework} {kind} takes no argument(s) {sorted(unknown)}; it takes {sorted(allowed)}."
        )
    return OptimizerSetting(framework, kind, tuple(sorted(params.items())))


def _signature(framework: str, kind: str) -> dict:
    """Argument -> default of the installed class (read, not remembered)."""
    if framework == "keras":
        from ..frameworks.keras_side import keras

        cls = getattr(keras().optimizers, _KERAS_CLASS[kind])
        skip = {"self", "name", "kwargs"} | set(_KERAS_UNSUPPORTED) | {"ema_momentum", "ema_overwrite_frequency"}
    else:
        import torch

        cls = getattr(torch.optim, _TORCH_CLASS[kind])
        skip = {"self", "params"} | _TORCH_IGNORED
    sig = inspect.signature(cls.__init__)
    out = {n: p.default for n, p in sig.parameters.items() if n not in skip and p.kind is not p.VAR_KEYWORD}
    return {k: (float(v) if hasattr(v, "item") and not isinstance(v, bool) else v) for k, v in out.items()}


def _from_keras_object(opt) -> OptimizerSetting:
    config = opt.get_config()
    kind = _kind(type(opt).__name__)
    for key in _KERAS_UNSUPPORTED:
        if config.get(key) not in (None, False):
            raise BadInputError(f"Keras optimizer {type(opt).__name__} has {key}={config[key]!r}, which xconv cannot map; leave it off.")
    if isinstance(config.get("learning_rate"), dict):
        raise BadInputError("A Keras learning-rate schedule has no mapping yet; give a constant learning_rate.")
    sig = _signature("keras", kind)
    params = {k: config[k] for k in sig if k in config and config[k] != sig[k]}
    return OptimizerSetting("keras", kind, tuple(sorted(params.items())))


def _from_torch_object(opt) -> OptimizerSetting:
    name = type(opt).__name__
    if name in ("KerasRMSprop", "KerasAdagrad"):
        raise BadInputError(f"{name} is xconv's Keras twin; give the Keras optimizer it copies instead.")
    kind = _kind(name)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    if any(g != groups[0] for g in groups[1:]):
        raise BadInputError(f"torch {name} has {len(groups)} parameter groups with different settings; xconv maps one.")
    sig = _signature("torch", kind)
    params = {k: (float(v) if hasattr(v, "item") else v) for k, v in groups[0].items() if k in sig}
    params = {k: v for k, v in params.items() if v != sig[k]}
    return OptimizerSetting("torch", kind, tuple(sorted(params.items())))


def _full(setting: OptimizerSetting) -> tuple[dict, tuple[str, float] | None]:
    """All arguments with the installed defaults, and the clipping separated out."""
    args = {**_signature(setting.framework, setting.kind), **setting.given()}
    clip_keys = [k for k in (*clipping.KINDS, "clip_grad_norm", "clip_grad_value") if args.get(k) not in (None, 0, 0.0)]
    for k in (*clipping.KINDS, "clip_grad_norm", "clip_grad_value"):
        args.pop(k, None)
    if len(clip_keys) > 1:
        raise BadInputError(f"{setting} clips in several ways ({clip_keys}); Keras allows only one, so give one.")
    clip = None
    if clip_keys:
        k = clip_keys[0]
        clip = ({"clip_grad_value": "clipvalue"}.get(k, k), float(setting.given()[k]))
    return args, clip


def _f32(x: float) -> float:
    return float(np.float32(x))


def _wd(x) -> float:
    return 0.0 if x is None else float(x)


# ---------------------------------------------------------------- plans as given

def plan_for(setting: OptimizerSetting) -> Plan:
    """Run ``setting`` as it is, in its own framework."""
    args, clip = _full(setting)
    if setting.framework == "keras":
        return Plan("keras", setting.kind, _KERAS_CLASS[setting.kind], args, clip=clip)
    if args.get("maximize"):
        raise BadInputError(f"{setting}: maximize=True ascends the loss; xconv compares descent only.")
    return Plan("torch", setting.kind, _TORCH_CLASS[setting.kind], args, clip=clip)


# ---------------------------------------------------------------- Keras -> torch

def torch_twin(setting: OptimizerSetting) -> Plan:
    """The exact torch twin of a Keras optimizer setting, or :class:`BadInputError` saying why none exists."""
    if setting.framework != "keras":
        raise BadInputError(f"torch_twin maps a Keras setting; {setting} is already torch's.")
    a, clip = _full(setting)
    kind, lr, wd = setting.kind, _f32(a["learning_rate"]), _f32(_wd(a.get("weight_decay")))
    notes = [f"learning_rate {a['learning_rate']!r} is a float32 variable in Keras; torch gets the same value {lr!r}"]
    if wd and wd != _wd(a.get("weight_decay")):
        notes.append(f"Keras on TensorFlow casts weight_decay through float32: torch gets {wd!r}")
    if clip is not None:
        notes.append(f"clipping on the torch side: {clipping.describe(clip, 'torch')}")
    if kind == "sgd":
        mom = float(a["momentum"])
        if wd and mom:
            raise _refuse(setting, "Keras decays the weights decoupled (w -= lr*wd*w); torch SGD's weight_decay is an L2 term "
                          "that goes through the momentum buffer.", "Use momentum=0, or no weight_decay.")  # fmt: skip
        kwargs = dict(lr=lr, momentum=_f32(mom), nesterov=bool(a["nesterov"]) and mom > 0, weight_decay=wd)
        if mom and _f32(mom) != mom:
            notes.append(f"Keras on TensorFlow casts momentum={mom} through float32 (ops.cast of a Python float): torch gets {_f32(mom)!r}")
        if wd:
            notes.append("without momentum torch's L2 weight_decay moves w exactly as Keras's decoupled decay")
        return Plan("torch", kind, "SGD", kwargs, clip=clip, notes=notes)
    if kind in ("adam", "adamw"):
        b1, b2, eps = float(a["beta_1"]), float(a["beta_2"]), float(a["epsilon"])
        cls = "AdamW" if (kind == "adamw" or wd) else "Adam"
        kwargs = dict(lr=lr, betas=(b1, b2), eps=float(eps / np.sqrt(1 - b2)), amsgrad=bool(a["amsgrad"]), weight_decay=wd)
        if wd and kind == "adam":
            notes.append("Keras Adam's weight_decay is decoupled: its twin is torch AdamW")
        notes.append(f"Keras adds epsilon={eps} to sqrt(v) before the bias correction: torch's eps at step t is {eps}/sqrt(1-{b2}^t)")
        schedule = {"eps": lambda t, e=eps, b=b2: e / float(np.sqrt(1 - b**t))}
        if (_f32(b1), _f32(b2)) != (b1, b2):
            # Keras's bias corrections use ops.cast(beta, dtype): through float32 on TensorFlow
            notes.append("Keras on TensorFlow computes its bias corrections with float32 betas: torch's lr is set per step to match")
            schedule["lr"] = lambda t, lr=lr, b1=b1, b2=b2: lr * (float(np.sqrt(1 - _f32(b2) ** t)) / (1 - _f32(b1) ** t)) * ((1 - b1**t) / float(np.sqrt(1 - b2**t)))
        # torch AdamW decays by lr * wd: with lr set per step the decay needs the plain lr
        if wd and "lr" in schedule:
            schedule["weight_decay"] = lambda t, lr=lr, wd=wd, f=schedule["lr"]: wd * lr / f(t)
        return Plan("torch", kind, cls, kwargs, schedule=schedule, clip=clip, notes=notes)  # fmt: skip
    if wd:
        raise _refuse(setting, f"Keras decays decoupled; torch {_TORCH_CLASS[kind]}'s weight_decay is L2 inside the adaptive denominator.",
                      "Leave weight_decay off.")  # fmt: skip
    if kind == "rmsprop":
        notes.append("Keras adds epsilon inside the square root (torch.optim.RMSprop outside): the twin is xconv.training.torch_optim.KerasRMSprop")
        kwargs = dict(lr=lr, rho=float(a["rho"]), momentum=float(a["momentum"]), epsilon=float(a["epsilon"]), centered=bool(a["centered"]))
        return Plan("torch", kind, "KerasRMSprop", kwargs, clip=clip, notes=notes)
    notes.append("Keras adds epsilon inside the square root (torch.optim.Adagrad outside): the twin is xconv.training.torch_optim.KerasAdagrad")
    acc = float(a["initial_accumulator_value"])
    if _f32(acc) != acc:
        notes.append(f"Keras fills the accumulator with a float32 constant: torch starts from {_f32(acc)!r}")
    kwargs = dict(lr=lr, initial_accumulator_value=_f32(acc), epsilon=float(a["epsilon"]))
    return Plan("torch", kind, "KerasAdagrad", kwargs, clip=clip, notes=notes)


# ---------------------------------------------------------------- torch -> Keras

def keras_twin(setting: OptimizerSetting) -> Plan:
    """The exact Keras twin of a torch optimizer setting, or :class:`BadInputError` saying why none exists."""
    if setting.framework != "torch":
        raise BadInputError(f"keras_twin maps a torch setting; {setting} is already Keras's.")
    a, clip = _full(setting)
    kind, lr, wd = setting.kind, float(a["lr"]), _wd(a.get("weight_decay"))
    if a.get("maximize"):
        raise _refuse(setting, "maximize=True ascends the loss; Keras optimizers only descend.", "Negate the loss instead.")
    if clip is not None and clip[0] == "clip_grad_norm":
        raise _refuse(setting, f"torch.nn.utils.clip_grad_norm_ scales by c/(||G|| + 1e-6), Keras's global_clipnorm by c/||G||: "
                      "a relative 1e-6/||G|| apart whenever it clips.", "Use global_clipnorm (Keras's formula, run in torch by xconv).")  # fmt: skip
    notes = []
    if _f32(lr) != lr:
        notes.append(f"torch lr={lr!r} becomes float32 {_f32(lr)!r} in Keras's learning-rate variable (a relative {abs(_f32(lr) - lr) / lr:.1e})")
    if kind == "sgd":
        mom = float(a["momentum"])
        if a["dampening"]:
            raise _refuse(setting, "Keras SGD has no dampening.", "Use dampening=0.")
        if wd and mom:
            raise _refuse(setting, "torch SGD's weight_decay is L2 through the momentum buffer; Keras only decays decoupled.",
                          "Use momentum=0 or put the L2 term in the loss on both sides.")  # fmt: skip
        if _f32(mom) != mom:
            notes.append(f"Keras on TensorFlow multiplies by float32(momentum) = {_f32(mom)!r}: exact in float64 only for float32 numbers such as 0.875")
        return Plan("keras", kind, "SGD", dict(learning_rate=lr, momentum=mom, nesterov=bool(a["nesterov"]), weight_decay=wd or None), clip=clip, notes=notes)  # fmt: skip
    if kind in ("adam", "adamw"):
        if a.pop("decoupled_weight_decay", False):  # torch Adam(decoupled_weight_decay=True) is AdamW
            kind = "adamw"
        if wd and kind == "adam":
            raise _refuse(setting, "torch Adam's weight_decay is an L2 term added to the gradient (it enters the moments); Keras "
                          "only decays decoupled, as torch AdamW does.", "Use torch AdamW, or weight_decay=0.")  # fmt: skip
        (b1, b2), eps = a["betas"], float(a["eps"])
        notes.append(f"torch adds eps={eps} after the bias correction: Keras's epsilon at step t is {eps}*sqrt(1-{b2}^t)")
        if (_f32(b1), _f32(b2)) != (float(b1), float(b2)):
            notes.append("Keras on TensorFlow computes its bias corrections with float32 betas: exact in float64 only for betas that are float32 numbers (0.5, 0.75, ...)")
        kwargs = dict(learning_rate=lr, beta_1=float(b1), beta_2=float(b2), epsilon=eps * float(np.sqrt(1 - b2)), amsgrad=bool(a["amsgrad"]))
        if kind == "adamw":
            kwargs["weight_decay"] = wd
        return Plan("keras", kind, _KERAS_CLASS[kind], kwargs, schedule={"epsilon": lambda t, e=eps, b=float(b2): e * float(np.sqrt(1 - b**t))}, clip=clip, notes=notes)  # fmt: skip
    if wd:
        raise _refuse(setting, f"torch {_TORCH_CLASS[kind]}'s weight_decay is L2 inside the adaptive denominator; Keras decays decoupled.",
                      "Leave weight_decay at 0.")  # fmt: skip
    if float(a["eps"]) != 0.0:
        raise _refuse(setting, f"torch adds eps={a['eps']} outside the square root (sqrt(v) + eps), Keras inside (sqrt(v + eps)); "
                      "no Keras epsilon gives the same steps.", "Use eps=0 on the torch side, or start from the Keras optimizer (its torch twin is exact).")  # fmt: skip
    if kind == "rmsprop":
        notes.append("torch's momentum buffer is Keras's divided by the learning rate")
        return Plan("keras", kind, "RMSprop", dict(learning_rate=lr, rho=float(a["alpha"]), momentum=float(a["momentum"]), epsilon=0.0, centered=bool(a["centered"])), clip=clip, notes=notes)  # fmt: skip
    if a["lr_decay"]:
        raise _refuse(setting, "torch Adagrad's lr_decay has no Keras argument.", "Use lr_decay=0.")
    return Plan("keras", kind, "Adagrad", dict(learning_rate=lr, initial_accumulator_value=float(a["initial_accumulator_value"]), epsilon=0.0), clip=clip, notes=notes)  # fmt: skip


# ---------------------------------------------------------------- state in one convention

def state_map(keras_plan: Plan, torch_plan: Plan) -> list[tuple[str, str, Callable[[np.ndarray, float], np.ndarray]]]:
    """``(Keras slot attribute, torch state key, keras value -> torch convention)`` for the
    optimizer state the two sides share; empty when they are different algorithms."""
    k, t = keras_plan.kind, torch_plan.cls_name
    same = lambda v, lr: v  # noqa: E731
    if k == "sgd" and t == "SGD" and keras_plan.kwargs.get("momentum"):
        return [("momentums", "momentum_buffer", lambda v, lr: -v / lr)]
    if k in ("adam", "adamw") and t in ("Adam", "AdamW"):
        out = [("_momentums", "exp_avg", same), ("_velocities", "exp_avg_sq", same)]
        if keras_plan.kwargs.get("amsgrad"):
            out.append(("_velocity_hats", "max_exp_avg_sq", same))
        return out
    if k == "rmsprop" and t in ("RMSprop", "KerasRMSprop"):
        out = [("_velocities", "square_avg", same)]
        if keras_plan.kwargs.get("centered"):
            out.append(("_average_gradients", "grad_avg", same))
        if keras_plan.kwargs.get("momentum"):
            out.append(("_momentums", "momentum_buffer", same if t == "KerasRMSprop" else (lambda v, lr: v / lr)))
        return out
    if k == "adagrad" and t in ("Adagrad", "KerasAdagrad"):
        return [("_accumulators", "sum", same)]
    return []
