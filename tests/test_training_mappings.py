"""The training mappings on their own: optimizer twins both ways, losses, BatchNorm momentum,
clipping, Keras's RMSprop/Adagrad in torch, and the training traps lint reports."""

import numpy as np
import pytest

from conftest import needs_keras


def test_bn_momentum_both_ways():
    from xconv import XconvError
    from xconv.training import keras_to_torch_momentum, torch_to_keras_momentum

    assert keras_to_torch_momentum(0.99) == pytest.approx(0.01)
    assert torch_to_keras_momentum(0.1) == pytest.approx(0.9)
    with pytest.raises(XconvError, match="cumulative"):
        torch_to_keras_momentum(None)
    with pytest.raises(XconvError, match=r"\[0, 1\]"):
        keras_to_torch_momentum(1.5)


@needs_keras
def test_adam_twin_sets_torch_eps_per_step_from_keras_epsilon():
    from xconv.training import optimizer_setting, torch_twin

    plan = torch_twin(optimizer_setting("adam:epsilon=1e-7,beta_2=0.75"))
    assert plan.cls_name == "Adam"
    eps = [plan.schedule["eps"](t) for t in (1, 2, 3)]
    assert eps == pytest.approx([1e-7 / np.sqrt(1 - 0.75**t) for t in (1, 2, 3)])
    assert any("before the bias correction" in n for n in plan.notes)


@needs_keras
def test_keras_adam_weight_decay_is_torch_adamw():
    from xconv.training import optimizer_setting, torch_twin

    assert torch_twin(optimizer_setting("adam:weight_decay=0.01")).cls_name == "AdamW"
    assert torch_twin(optimizer_setting("adam")).cls_name == "Adam"
    assert torch_twin(optimizer_setting("rmsprop")).cls_name == "KerasRMSprop"
    assert torch_twin(optimizer_setting("adagrad")).cls_name == "KerasAdagrad"


@needs_keras
def test_torch_adam_with_decoupled_weight_decay_is_keras_adamw():
    import torch

    from xconv.training import keras_twin, optimizer_setting

    w = torch.nn.Parameter(torch.zeros(2))
    plan = keras_twin(optimizer_setting(torch.optim.Adam([w], weight_decay=0.01, decoupled_weight_decay=True)))
    assert plan.cls_name == "AdamW" and plan.kwargs["weight_decay"] == 0.01


@needs_keras
def test_keras_twin_of_torch_adam_sets_keras_epsilon_per_step():
    from xconv.training import keras_twin, optimizer_setting

    plan = keras_twin(optimizer_setting("torch.adamw:lr=0.01,eps=1e-8,weight_decay=0.01"))
    assert plan.cls_name == "AdamW" and plan.kwargs["weight_decay"] == 0.01
    assert plan.schedule["epsilon"](2) == pytest.approx(1e-8 * np.sqrt(1 - 0.999**2))


@needs_keras
@pytest.mark.parametrize(
    "text,why",
    [
        ("torch.adam:lr=0.01,weight_decay=0.01", "L2"),
        ("torch.sgd:lr=0.1,momentum=0.9,dampening=0.1", "dampening"),
        ("torch.sgd:lr=0.1,momentum=0.9,weight_decay=0.1", "L2"),
        ("torch.rmsprop:lr=0.01", "outside the square root"),
        ("torch.adagrad:lr=0.01,eps=0,lr_decay=0.1", "lr_decay"),
        ("torch.sgd:lr=0.1,maximize=true", "maximize"),
    ],
)
def test_torch_settings_without_keras_twin_are_refused(text, why):
    from xconv import XconvError
    from xconv.training import keras_twin, optimizer_setting

    with pytest.raises(XconvError, match=why):
        keras_twin(optimizer_setting(text))


@needs_keras
def test_optimizer_objects_of_either_framework_are_read():
    import keras
    import torch

    from xconv.training import optimizer_setting

    s = optimizer_setting(keras.optimizers.RMSprop(learning_rate=0.01, centered=True))
    assert (s.framework, s.kind) == ("keras", "rmsprop") and s.given()["centered"] is True
    w = torch.nn.Parameter(torch.zeros(3))
    s = optimizer_setting(torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True))
    assert (s.framework, s.kind) == ("torch", "sgd") and s.given()["nesterov"] is True
    from xconv import XconvError

    with pytest.raises(XconvError, match="use_ema"):
        optimizer_setting(keras.optimizers.Adam(use_ema=True))


def test_keras_rmsprop_in_torch_follows_the_keras_formula():
    import torch

    from xconv.training.torch_optim import KerasAdagrad, KerasRMSprop

    g = torch.tensor([0.3, -1e-4, 0.0], dtype=torch.float64)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = KerasRMSprop([p], lr=0.1, rho=0.9, momentum=0.0, epsilon=1e-7)
    p.grad = g.clone()
    opt.step()
    v = 0.1 * g**2
    assert torch.allclose(p.detach(), -0.1 * g / torch.sqrt(v + 1e-7), rtol=1e-15, atol=0)
    q = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = KerasAdagrad([q], lr=0.1, initial_accumulator_value=0.1, epsilon=1e-7)
    q.grad = g.clone()
    opt.step()
    assert torch.allclose(q.detach(), -0.1 * g / torch.sqrt(0.1 + g**2 + 1e-7), rtol=1e-15, atol=0)


def test_torch_clipping_twins():
    import torch

    from xconv.training.clipping import clip_torch

    a = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    b = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    a.grad, b.grad = torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([0.0, 0.5], dtype=torch.float64)
    clip_torch([a, b], ("clipnorm", 1.0))  # each to norm <= 1
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.8], dtype=torch.float64)) and torch.allclose(b.grad, torch.tensor([0.0, 0.5], dtype=torch.float64))
    a.grad, b.grad = torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([0.0, 0.0], dtype=torch.float64)
    clip_torch([a, b], ("global_clipnorm", 2.5))
    assert torch.allclose(a.grad, torch.tensor([1.5, 2.0], dtype=torch.float64), rtol=1e-15)
    clip_torch([a, b], ("clipvalue", 1.0))
    assert a.grad.tolist() == [1.0, 1.0]


@needs_keras
def test_loss_settings_from_names_and_objects():
    import keras
    import torch

    from xconv import XconvError
    from xconv.training import loss_setting

    s = loss_setting(keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1))
    assert (s.kind, s.from_logits, s.label_smoothing) == ("categorical_crossentropy", True, 0.1)
    assert loss_setting(torch.nn.CrossEntropyLoss(label_smoothing=0.2), sparse_targets=False).kind == "categorical_crossentropy"
    assert loss_setting(torch.nn.BCEWithLogitsLoss()).from_logits is True
    assert loss_setting(torch.nn.HuberLoss(delta=0.3)).delta == pytest.approx(0.3)
    assert loss_setting("huber:delta=2").delta == 2.0
    with pytest.raises(XconvError, match="label_smoothing"):
        loss_setting("sparse_categorical_crossentropy:label_smoothing=0.1")
    with pytest.raises(XconvError, match="weight"):
        loss_setting(torch.nn.CrossEntropyLoss(weight=torch.ones(3)))
    with pytest.raises(XconvError, match="1/C"):
        loss_setting(torch.nn.MSELoss(reduction="sum")).keras_loss("float64")


@needs_keras
def test_torch_losses_equal_keras_losses_on_one_batch():
    """Each loss twin, evaluated on the same numbers (channels-last for Keras, channels-first for torch)."""
    import torch

    from xconv.training import loss_setting

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4, 5))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    onehot = np.eye(5)[rng.integers(0, 5, (2, 3, 4))]
    real = rng.random((2, 3, 4, 5))
    cases = [
        ("categorical_crossentropy:from_logits=true,label_smoothing=0.1", logits, onehot),
        ("categorical_crossentropy", probs, onehot),
        ("categorical_crossentropy:from_logits=true,reduction=sum", logits, onehot),
        ("sparse_categorical_crossentropy", probs, onehot.argmax(-1)),
        ("binary_crossentropy:label_smoothing=0.2", 1 / (1 + np.exp(-logits)), (real > 0.5) * 1.0),
        ("binary_crossentropy:from_logits=true", logits, real),
        ("mse:reduction=sum", logits, real),
        ("mae", logits, real),
        ("huber:delta=0.5", logits, real),
    ]
    for name, out, target in cases:
        s = loss_setting(name)
        k = float(s.keras_loss("float64")(target, out))
        cf = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 1)) if a.ndim == 4 else a)  # noqa: E731
        t = float(s.torch_loss()(cf(out), cf(target)))
        assert t == pytest.approx(k, rel=1e-12), name


@needs_keras
def test_lint_finds_training_traps():
    import torch

    from xconv import lint
    from xconv.training.examples import bn_classifier

    k, t = bn_classifier("keras"), bn_classifier("torch")
    assert lint(k, t) == []  # twins: no trap
    k.get_layer("bn2").trainable = False
    t.bn1.momentum = None
    t.dropout.p = 0.5
    traps = {(f.trap, f.keras_layer) for f in lint(k, t)}
    assert ("frozen BatchNorm", "bn2") in traps and ("frozen on one side", "bn2") in traps
    assert ("BatchNorm momentum", "bn1") in traps and ("dropout rate", "dropout") in traps
    import keras

    w = torch.nn.Parameter(torch.zeros(1))
    findings = lint(bn_classifier("keras"), bn_classifier("torch"), optimizer=(keras.optimizers.Adam(weight_decay=0.01), torch.optim.Adam([w], weight_decay=0.01)))
    traps = {f.trap for f in findings}
    assert {"Adam epsilon placement", "weight decay as L2"} <= traps
    f = next(f for f in findings if f.trap == "Adam epsilon placement")
    assert "1e-07" in f.message and "1e-08" in f.message


@needs_keras
def test_every_exported_training_function_and_class_says_what_it_does():
    import importlib
    import inspect
    import pkgutil

    import xconv.training

    missing = []
    for info in pkgutil.iter_modules(xconv.training.__path__):
        module = importlib.import_module(f"xconv.training.{info.name}")
        assert module.__doc__, info.name
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not (inspect.getdoc(obj) or "").strip() or (inspect.getdoc(obj) or "").startswith(f"{obj.__name__}("):
                missing.append(name)
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for attr, member in vars(obj).items():
                    target = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if not attr.startswith("_") and inspect.isfunction(target) and not (target.__doc__ or "").strip():
                        missing.append(f"{name}.{attr}")
    assert missing == []
