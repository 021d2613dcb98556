"""compare_training(): the same training steps in Keras and PyTorch, compared after every step.

Both sides train *copies* (the caller's models are never changed), from the same weights
(Keras's, moved by :func:`xconv.transfer_weights`). After each step xconv compares, in torch's
layout: the loss; each BatchNorm's running statistics; every layer's weight gradients (and the
clipped ones, where either side clips); the optimizer state both sides keep; the weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError, MismatchedModelsError
from . import tolerance as tol
from .report import TrainingReport, TrainingRow

__all__ = ["compare_training"]


@dataclass
class _Pair:
    layer: object  # Keras layer
    tname: str
    module: object  # torch module
    family: object
    ctx: object

    def to_torch(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.family.to_torch(arrays, self.ctx)


def _resolve_optimizer(optimizer):
    """``(keras plan, torch plan)``: a pair is run as given; one setting gets its exact twin."""
    from .optimizers import Plan, keras_twin, optimizer_setting, plan_for, torch_twin

    if isinstance(optimizer, (tuple, list)):
        if len(optimizer) != 2:
            raise BadInputError("optimizer=(keras_side, torch_side): give exactly two.")
        kp, tp = (o if isinstance(o, Plan) else plan_for(optimizer_setting(o, fw)) for o, fw in zip(optimizer, ("keras", "torch")))
        if kp.framework != "keras" or tp.framework != "torch":
            raise BadInputError(f"optimizer=(keras_side, torch_side): received a {kp.framework} and a {tp.framework} one.")
        tp.notes = [*tp.notes]
        tp.notes.append("optimizers given for each side: run as given, no twin derived")
        return kp, tp
    setting = optimizer_setting(optimizer)
    if setting.framework == "keras":
        return plan_for(setting), torch_twin(setting)
    return keras_twin(setting), plan_for(setting)


def _resolve_loss(loss, sparse: bool, dtype: str):
    """``(keras loss, torch loss fn, keras text, torch text)``."""
    from .losses import loss_setting, with_targets

    if isinstance(loss, (tuple, list)):
        if len(loss) != 2:
            raise BadInputError("loss=(keras_side, torch_side): give exactly two.")
        kl, tl = loss
        ks_ = with_targets(loss_setting(kl, sparse_targets=sparse), sparse)
        k_obj = ks_.keras_loss(dtype) if isinstance(kl, (str, dict)) else _keras_loss_in(kl, dtype)
        if isinstance(tl, (str, dict)):
            ts_ = with_targets(loss_setting(tl, sparse_targets=sparse), sparse)
            return k_obj, ts_.torch_loss(), str(ks_), ts_.torch_description()
        return k_obj, tl, str(ks_), f"{type(tl).__name__} object, as given"
    s = with_targets(loss_setting(loss, sparse_targets=sparse), sparse)
    return s.keras_loss(dtype), s.torch_loss(), str(s), s.torch_description()


def _keras_loss_in(obj, dtype: str):
    """A user's Keras loss object, rebuilt to compute in ``dtype`` (Keras defaults to float32)."""
    if getattr(obj, "dtype", dtype) == dtype:
        return obj
    config = obj.get_config()
    config["dtype"] = dtype
    return type(obj).from_config(config)


def _keras_copy(model, dtype: str):
    from ..frameworks import keras_side as ks

    cast = ks.cast(model, dtype)
    if cast is not model:
        return cast
    k = ks.keras()
    clone = k.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _dtype_of(keras_model) -> str:
    d = keras_model.inputs[0].dtype
    return d if isinstance(d, str) else getattr(d, "name", str(d))


def _as_list(x) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _to_torch_layout(array: np.ndarray, like_output_rank: int) -> np.ndarray:
    """A Keras-layout input or target in torch's layout (channels moved to axis 1)."""
    if array.ndim >= 3 and array.ndim == like_output_rank:
        return np.ascontiguousarray(np.moveaxis(array, -1, 1))
    return np.ascontiguousarray(array)


def _keras_private(opt, name: str):
    """A Keras optimizer internal xconv reads (Keras 3 has no public API for slots or clipping)."""
    try:
        return getattr(opt, name)
    except AttributeError:
        import keras

        raise MismatchedModelsError(
            f"This Keras ({keras.__version__}) has no {type(opt).__name__}.{name}, which xconv reads to compare "
            f"the optimizer's state; compare with an optimizer of another kind, or report the Keras version."
        ) from None


def _keras_slot(opt, slot: str, variable):
    """Keras optimizer ``opt``'s slot (e.g. Adam's momentums) for one model variable."""
    return _keras_private(opt, slot)[_keras_private(opt, "_get_variable_index")(variable)]


def _measure(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if a.shape != b.shape:
        raise MismatchedModelsError(f"shapes {a.shape} and {b.shape} differ")
    if a.size == 0:
        return 0.0, 0.0
    diff = float(np.max(np.abs(a - b)))
    return (diff if np.isfinite(diff) else float("inf")), float(np.max(np.abs(a)))


def compare_training(
    keras_model,
    torch_module,
    inputs,
    targets,
    *,
    loss,
    optimizer,
    steps: int = 3,
    dtype: str | None = None,
    device: str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    copy_weights: bool = True,
    random_layers: str = "off",
) -> TrainingReport:
    """Train copies of ``keras_model`` and ``torch_module`` for ``steps`` steps on one batch and
    compare every step; returns a :class:`~xconv.training.report.TrainingReport`.

    ``inputs`` and ``targets`` are NumPy arrays in Keras's layout (channels-last), one per model
    input and output (a list for several); class-index targets are integers. ``loss`` and
    ``optimizer`` are names with hyperparameters (``"adam:learning_rate=0.01"``,
    ``"torch.sgd:lr=0.1,momentum=0.9"``), dicts, or Keras or torch objects: xconv builds the exact
    twin in the other framework, or refuses saying why there is none. A pair
    ``(keras_side, torch_side)`` runs each side as given, to check a port's own training code.
    A model with several outputs gets the loss on each, summed (as Keras's ``compile`` does).
    ``dtype`` None keeps the Keras model's; 'float64' is the strict mode. Dropout and other
    random layers are switched off on both sides (``random_layers='off'``), or dropout runs with the
    same seeded masks on both sides (``'shared'``); the report says which.
    ``copy_weights`` False keeps the torch module's own weights (step 0 then shows whether they
    match Keras's).
    """
    from ..frameworks import framework_of
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts
    from ..weights import LayerContext, family_for_keras
    from ..transfer import transfer_weights
    from . import batchnorm, clipping, optimizers, random_layers as rl

    if framework_of(keras_model) != "keras" or framework_of(torch_module) != "torch":
        raise BadInputError(
            f"compare_training(keras_model, torch_module, ...): a Keras model first, then its PyTorch port; "
            f"received {type(keras_model).__name__} and {type(torch_module).__name__}."
        )
    if not isinstance(steps, int) or steps < 1:
        raise BadInputError(f"steps must be a positive integer; received {steps!r}.")
    k = ks.keras()
    if k.backend.backend() != "tensorflow":
        raise BadInputError(f"compare_training runs Keras on TensorFlow; this Keras uses the {k.backend.backend()!r} backend.")
    import tensorflow as tf
    import torch

    dtype = dtype or _dtype_of(keras_model)
    if dtype not in ("float32", "float64"):
        raise BadInputError(f"dtype must be 'float32' or 'float64'; received {dtype!r}.")
    tols = tol.resolve(dtype, rtol, atol)
    dev = ts.resolve_device(device)
    tdtype = getattr(torch, dtype)

    xs = [np.asarray(a) for a in _as_list(inputs)]
    ys = [np.asarray(a) for a in _as_list(targets)]
    ks.check_inputs(keras_model, xs)
    n_out = len(keras_model.outputs)
    if len(ys) != n_out:
        raise BadInputError(f"Keras model '{keras_model.name}' has {n_out} output(s); received {len(ys)} target array(s).")
    sparse = all(np.issubdtype(y.dtype, np.integer) for y in ys)
    kplan, tplan = _resolve_optimizer(optimizer)
    k_loss, t_loss, k_loss_text, t_loss_text = _resolve_loss(loss, sparse, dtype)

    # ---- copies, the same weights, the pairing
    kmodel = _keras_copy(keras_model, dtype)
    if kmodel.losses:
        raise BadInputError(
            f"Keras model '{keras_model.name}' adds regularization losses (kernel_regularizer, add_loss): the torch module "
            f"cannot know them. Remove them, or put the same terms in the loss on both sides."
        )
    tmodule = copy.deepcopy(torch_module).to(device=dev, dtype=tdtype)
    manifest = transfer_weights(kmodel, tmodule if copy_weights else copy.deepcopy(tmodule))
    modules = dict(tmodule.named_modules())
    layers = {l.name: l for l in ks.weighted_layers(kmodel)}
    pairs: list[_Pair] = []
    for kname, tname in manifest.layer_plan().items():
        layer = layers[kname]
        family = family_for_keras(type(layer).__name__, layer.name)
        ctx = LayerContext(layer.name, flatten_of=ks.flatten_source_shape(layer), depth_multiplier=int(getattr(layer, "depth_multiplier", 1)))
        pairs.append(_Pair(layer, tname, modules[tname], family, ctx))
    for p in pairs:
        if type(p.layer).__name__ == "BatchNormalization" and getattr(p.layer, "renorm", False):
            raise BadInputError(f"Keras BatchNormalization '{p.layer.name}' uses renorm=True, which torch has no twin for.")

    notes = list(kplan.notes) + list(tplan.notes)
    switched = rl.switch_off(kmodel, tmodule, random_layers)
    if switched:
        notes.append("random layers switched off on both sides (identity), never compared as draws: " + "; ".join(switched))
    masks = rl.SharedMasks(kmodel, tmodule, seed=0) if random_layers == "shared" else None
    if masks is not None and masks.notes:
        notes.append("dropout on with the same seeded masks on both sides, each side's own rate: " + "; ".join(masks.notes))
    tmodule.train()
    rl.torch_eval_random(tmodule, random_layers)
    bn_modules = {p.tname: p.module for p in pairs if batchnorm.is_batchnorm(p.module)}
    variance = batchnorm.VarianceConvention(bn_modules)
    if bn_modules:
        notes.append("torch's running_var holds the unbiased batch variance, Keras's the biased one: torch's is compared "
                     "after removing n/(n-1), computed from each BatchNorm's own inputs")  # fmt: skip
    notes.append(f"Keras loss computes in {dtype}")

    kopt = kplan.build(None)
    tparams = [p for p in tmodule.parameters() if p.requires_grad]
    topt = tplan.build(tparams)
    states = optimizers.state_map(kplan, tplan)
    keras_lr = float(np.float32(kplan.kwargs.get("learning_rate", 0.0)))

    # ---- the batch on each side
    xk = [a.astype(dtype) for a in xs]
    out_ranks = [len(o.shape) for o in kmodel.outputs]
    yk = [y if np.issubdtype(y.dtype, np.integer) else y.astype(dtype) for y in ys]
    xt = ts.to_tensors([_to_torch_layout(a, a.ndim) for a in xk], dev, tdtype)
    yt = []
    for y, r in zip(yk, out_ranks):
        ty = torch.from_numpy(_to_torch_layout(y, r)).to(dev)
        yt.append(ty.long() if np.issubdtype(y.dtype, np.integer) else ty.to(tdtype))
    kfeed = xk if len(xk) > 1 else xk[0]

    rows: list[TrainingRow] = []
    defaults = rtol is None
    plain_lr = float(tplan.kwargs.get("lr", 0.0))

    def floor(quantity, step):
        kinds = {kplan.kind, tplan.kind}
        return max(tol.step_floor(dtype, quantity, kind, plain_lr, step) for kind in kinds)

    def add(step, quantity, pair, measured: dict[str, tuple[float, float]]):
        # normwise per layer: a bias whose true gradient is 0 (a conv before a BatchNorm) is
        # measured against the layer's kernel, as compare() measures a layer's whole output
        if not measured:
            return
        rtol_, atol_ = tols[tol.family(quantity)]
        worst_name = max(measured, key=lambda n: measured[n][0])
        d = measured[worst_name][0]
        s = max(v[1] for v in measured.values())
        allowed = atol_ + rtol_ * s + (floor(quantity, step) if defaults else 0.0)
        rows.append(TrainingRow(step, quantity, pair.layer.name if pair else "", pair.tname if pair else "", worst_name,
                                d, s, allowed, bool(d <= allowed)))  # fmt: skip

    def t_np(t) -> np.ndarray:
        return t.detach().cpu().numpy()

    def compare_weights(step):
        for p in pairs:
            names = {ks.short_name(v) for v in p.layer.trainable_weights}
            k_arrays = {n: a for n, a in ks.layer_weights(p.layer).items() if n in names}
            kt = p.to_torch(k_arrays)
            tp = dict(p.module.named_parameters(recurse=False))
            add(step, "weight", p, {n: _measure(kt[n], t_np(tp[n])) for n in kt if n in tp})

    def compare_bn(step):
        for p in pairs:
            if p.tname not in bn_modules:
                continue
            arrays = ks.layer_weights(p.layer)
            m = p.module
            add(step, "running_mean", p, {"running_mean": _measure(arrays["moving_mean"], t_np(m.running_mean))})
            tv = variance.keras_view(p.tname, t_np(m.running_var))
            add(step, "running_var", p, {"running_var": _measure(arrays["moving_variance"], tv)})

    def per_layer(values_by_var: dict[int, np.ndarray]):
        """Keras per-variable arrays -> {pair: torch-layout arrays}."""
        out = []
        for p in pairs:
            arrays = {ks.short_name(v): values_by_var[id(v)] for v in p.layer.trainable_weights if id(v) in values_by_var}
            if arrays:
                out.append((p, p.to_torch(arrays)))
        return out

    compare_weights(0)
    compare_bn(0)
    kvars = list(kmodel.trainable_variables)
    t_param_of = {p.tname: dict(p.module.named_parameters(recurse=False)) for p in pairs}
    with ts.numerics():
        for step in range(1, steps + 1):
            if masks is not None:
                masks.step = step
            # Keras
            with tf.GradientTape() as tape:
                outs = _as_list(kmodel(kfeed, training=True))
                k_loss_value = sum(k_loss(y, o) for y, o in zip(yk, outs))
            grads = tape.gradient(k_loss_value, kvars)
            missing = [v.path for v, g in zip(kvars, grads) if g is None]
            if missing:
                raise MismatchedModelsError(f"Keras variables {missing[:5]} get no gradient from the loss; they cannot train.")
            kplan.set_step(kopt, step)
            clipped = _keras_private(kopt, "_clip_gradients")(grads) if (kplan.clip or tplan.clip) else None
            kopt.apply(grads, kvars)
            # torch
            topt.zero_grad(set_to_none=True)
            touts = _as_list(tmodule(*xt))
            t_loss_value = sum(t_loss(o, y) for o, y in zip(touts, yt))
            t_loss_value.backward()
            raw = {id(p): p.grad.detach().clone() for p in tparams if p.grad is not None}
            clipping.clip_torch(tparams, tplan.clip)
            tplan.set_step(topt, step)
            topt.step()
            # compare, in the order the step produced them
            lk, lt = float(k_loss_value.numpy()), float(t_loss_value.detach().cpu())
            add(step, "loss", None, {"loss": (abs(lk - lt) if np.isfinite(lk - lt) else float("inf"), abs(lk))})
            compare_bn(step)
            kgrads = {id(v): ks.to_numpy(g) for v, g in zip(kvars, grads)}
            for p, kt in per_layer(kgrads):
                tp = t_param_of[p.tname]
                add(step, "gradient", p, {n: _measure(kt[n], t_np(raw[id(tp[n])])) for n in kt if n in tp and id(tp[n]) in raw})
            if clipped is not None:
                kc = {id(v): ks.to_numpy(g) for v, g in zip(kvars, clipped)}
                for p, kt in per_layer(kc):
                    tp = t_param_of[p.tname]
                    add(step, "clipped_gradient", p, {n: _measure(kt[n], t_np(tp[n].grad)) for n in kt if n in tp and tp[n].grad is not None})
            for slot, key, convert in states:
                values = {id(v): convert(ks.to_numpy(_keras_slot(kopt, slot, v)), keras_lr) for v in kvars}
                for p, kt in per_layer(values):
                    tp = t_param_of[p.tname]
                    add(step, key, p, {n: _measure(kt[n], t_np(topt.state[tp[n]][key])) for n in kt if n in tp and key in topt.state[tp[n]]})
            compare_weights(step)
    variance.remove()
    if masks is not None:
        masks.remove()
    compared = ["loss", "gradient"] + (["clipped_gradient"] if (kplan.clip or tplan.clip) else [])
    compared += [key for _, key, _ in states] + ["weight"] + (["running_mean", "running_var"] if bn_modules else [])
    if not states:
        notes.append(f"optimizer state not compared: Keras {kplan.cls_name} and torch {tplan.cls_name} keep different state")
    return TrainingReport(
        rows=rows, steps=steps, dtype=dtype, device=str(dev), tolerances=tols,
        keras_optimizer=kplan.describe(), torch_optimizer=tplan.describe(),
        keras_loss=k_loss_text, torch_loss=t_loss_text, compared=compared, notes=notes,
    )  # fmt: skip
