"""compare_training: ports train identically in float64, and planted training bugs are named
with the step, layer and quantity where they first show."""

import json

import numpy as np
import pytest

from conftest import needs_keras

pytestmark = needs_keras

F32 = lambda x: float(np.float32(x))  # noqa: E731  (Keras keeps the learning rate in float32)

SCCE = "sparse_categorical_crossentropy:from_logits=true"


@pytest.fixture(scope="module")
def bn_pair():
    from xconv import zoo
    from xconv.training.examples import bn_classifier

    k = bn_classifier("keras")
    zoo.randomize_biases(k)  # moving statistics and biases not at zeros and ones
    return k


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 3))
    y = rng.integers(0, 5, 4)
    return x, y


def _bn_torch():
    from xconv.training.examples import bn_classifier

    return bn_classifier("torch")


def _train(k, t, x, y, **kw):
    from xconv.training import compare_training

    kw.setdefault("dtype", "float64")
    return compare_training(k, t, x, y, **kw)


def _assert_identical(report):
    assert report.ok, f"{report.first_divergence}\n{report.table(only_failures=True)}"
    assert report.first_divergence is None
    # every compared quantity, every step, within 1e-9 of its size (the float64 policy)
    for row in report.rows:
        assert row.max_abs <= 1e-9 * row.scale + 1e-12, row
    assert {r.step for r in report.rows} == set(range(report.steps + 1))


OPTIMIZERS = {
    "sgd_momentum": "sgd:learning_rate=0.05,momentum=0.9",
    "sgd_nesterov": "sgd:learning_rate=0.05,momentum=0.9,nesterov=true",
    "adam": "adam:learning_rate=0.01",
    "adam_amsgrad": "adam:learning_rate=0.01,amsgrad=true",
    "adamw": "adamw:learning_rate=0.01,weight_decay=0.05",
    "rmsprop": "rmsprop:learning_rate=0.01,momentum=0.5",
    "rmsprop_centered": "rmsprop:learning_rate=0.01,centered=true",
    "adagrad": "adagrad:learning_rate=0.1",
}


# ---------------------------------------------------------------- parity: BatchNorm classifier


@pytest.mark.parametrize("optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_bn_classifier_trains_identically_with_each_optimizer(bn_pair, batch, optimizer):
    x, y = batch
    report = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=optimizer)
    _assert_identical(report)
    assert {"running_mean", "running_var", "gradient", "weight", "loss"} <= set(report.compared)
    assert any("Dropout" in n and "switched off" in n for n in report.notes)


LOSSES_BN = {
    "cce_logits_smoothing": ("categorical_crossentropy:from_logits=true,label_smoothing=0.1", "onehot"),
    "cce_logits_sum": ("categorical_crossentropy:from_logits=true,reduction=sum", "onehot"),
    "bce_logits": ("binary_crossentropy:from_logits=true,label_smoothing=0.2", "multilabel"),
    "mae": ("mae", "real"),
    "huber": ("huber:delta=0.5", "real"),
    "mse_sum": ("mse:reduction=sum", "real"),
}


@pytest.mark.parametrize("loss,kind", LOSSES_BN.values(), ids=LOSSES_BN.keys())
def test_bn_classifier_trains_identically_with_each_loss(bn_pair, batch, loss, kind):
    x, y = batch
    rng = np.random.default_rng(1)
    target = {"onehot": np.eye(5)[y], "multilabel": (rng.random((4, 5)) > 0.5).astype("float64"), "real": rng.normal(size=(4, 5))}[kind]
    _assert_identical(_train(bn_pair, _bn_torch(), x, target, loss=loss, optimizer="sgd:learning_rate=0.05,momentum=0.9"))


@pytest.mark.parametrize("clip", ["clipnorm=0.05", "global_clipnorm=0.05", "clipvalue=0.002"])
def test_clipping_twins_are_exact_and_compared(bn_pair, batch, clip):
    x, y = batch
    report = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=f"sgd:learning_rate=0.1,{clip}")
    _assert_identical(report)
    assert "clipped_gradient" in report.compared
    # the clip acted: the clipped gradients are not the raw ones
    raw = [r.scale for r in report.rows if r.quantity == "gradient"]
    clipped = [r.scale for r in report.rows if r.quantity == "clipped_gradient"]
    assert len(raw) == len(clipped) and any(c < 0.99 * g for c, g in zip(clipped, raw))


def test_torch_settings_get_their_keras_twin(bn_pair, batch):
    x, y = batch
    # float32 numbers: Keras on TensorFlow rounds lr and SGD's momentum through float32
    # (torch RMSprop's Keras twin needs eps=0: 0/0 on this model's zero gradients, so not here;
    # Adam's eps=1e-6: the conv biases before a BatchNorm have rounding-noise gradients, which a
    # zero-state Adam step turns into lr * noise / eps, 1e-10 with torch's default 1e-8)
    for opt in ("torch.sgd:lr=0.0625,momentum=0.875",
                "torch.adamw:lr=0.0078125,betas=0.5/0.75,eps=1e-6,weight_decay=0.01", "torch.adagrad:lr=0.125,eps=0,initial_accumulator_value=0.5"):
        _assert_identical(_train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=opt))


def test_real_optimizer_and_loss_objects(bn_pair, batch):
    import keras
    import torch

    x, y = batch
    opt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    _assert_identical(_train(bn_pair, _bn_torch(), x, y, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer=opt))
    tmod = _bn_torch()
    topt = torch.optim.SGD(tmod.parameters(), lr=F32(0.05), momentum=F32(0.9))
    _assert_identical(_train(bn_pair, tmod, x, y, loss=torch.nn.CrossEntropyLoss(), optimizer=topt))


def test_callers_models_are_not_changed(bn_pair, batch):
    x, y = batch
    t = _bn_torch()
    before_k = [w.copy() for w in bn_pair.get_weights()]
    before_t = {n: v.clone() for n, v in t.state_dict().items()}
    _train(bn_pair, t, x, y, loss=SCCE, optimizer="sgd:learning_rate=0.5", steps=1)
    assert all(np.array_equal(a, b) for a, b in zip(before_k, bn_pair.get_weights(), strict=True))
    assert all(np.array_equal(before_t[n].numpy(), v.numpy()) for n, v in t.state_dict().items())


# ---------------------------------------------------------------- parity: the zoo models

CONV3D = [
    ("sgd:learning_rate=0.05,momentum=0.9", "categorical_crossentropy", "onehot"),
    ("adam:learning_rate=0.001", "categorical_crossentropy:label_smoothing=0.1", "onehot"),
    ("adamw:learning_rate=0.001", "sparse_categorical_crossentropy", "index"),
    ("rmsprop:learning_rate=0.001", "mse", "onehot"),
]


@pytest.fixture(scope="module")
def conv3d():
    from xconv import zoo

    shape = (32, 32, 3, 1)  # the spec's layers at a small input
    k = zoo.build("conv3d_demo", "keras", random_biases=True, input_shape=shape)
    x = np.random.default_rng(2).random((2, *shape))
    return k, x, shape


@pytest.mark.parametrize("optimizer,loss,kind", CONV3D, ids=[c[0].split(":")[0] + "-" + c[1].split(":")[0] for c in CONV3D])
def test_conv3d_demo_trains_identically(conv3d, optimizer, loss, kind):
    from xconv import zoo

    k, x, shape = conv3d
    labels = np.array([3, 11])
    target = labels if kind == "index" else np.eye(17)[labels]
    _assert_identical(_train(k, zoo.build("conv3d_demo", "torch", input_shape=shape), x, target, loss=loss, optimizer=optimizer))


UNET = [
    ("sgd:learning_rate=0.01,momentum=0.9", "mse"),
    ("adam:learning_rate=0.001", "huber"),
    ("adamw:learning_rate=0.001", "mae"),
    ("rmsprop:learning_rate=0.001", "categorical_crossentropy:from_logits=true"),
]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer,loss", UNET, ids=[u[0].split(":")[0] + "-" + u[1].split(":")[0] for u in UNET])
def test_unet_encoder_trains_identically(optimizer, loss):
    from xconv import zoo

    shape = (32, 32, 1)
    k = zoo.build("unet_encoder", "keras", random_biases=True, input_shape=shape)
    t = zoo.build("unet_encoder", "torch", input_shape=shape)
    rng = np.random.default_rng(3)
    x = rng.random((2, *shape))
    if "crossentropy" in loss:
        targets = [np.eye(o.shape[-1])[rng.integers(0, o.shape[-1], (2, *o.shape[1:-1]))] for o in k.outputs]
    else:
        targets = [rng.random((2, *o.shape[1:])) for o in k.outputs]
    report = _train(k, t, x, targets, loss=loss, optimizer=optimizer)
    _assert_identical(report)
    assert len({r.layer for r in report.rows if r.quantity == "gradient"}) == 10  # every conv


# ---------------------------------------------------------------- planted bugs


def test_planted_bn_momentum_copied_unconverted(bn_pair, batch):
    x, y = batch
    t = _bn_torch()
    t.bn1.momentum = t.bn2.momentum = 0.9  # Keras's value, not 1 - 0.9
    d = _train(bn_pair, t, x, y, loss=SCCE, optimizer="sgd:learning_rate=0.05").first_divergence
    assert (d.step, d.layer, d.quantity) == (1, "bn1", "running_mean")


def test_planted_adam_epsilon_placed_the_other_way(bn_pair, batch):
    x, y = batch
    lr = F32(0.001)
    # betas exact in float32, so the only difference is where epsilon sits
    right = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer="adam:beta_1=0.5,beta_2=0.75")
    _assert_identical(right)
    wrong = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=("adam:beta_1=0.5,beta_2=0.75", f"torch.adam:lr={lr},betas=0.5/0.75,eps=1e-7"))
    d = wrong.first_divergence
    assert (d.step, d.quantity) == (1, "weight") and d.layer in ("conv1", "bn1", "conv2", "bn2", "logits")
    # the moments agree: the update rule, not the gradient statistics, differs
    assert all(r.ok for r in wrong.rows if r.step == 1 and r.quantity in ("exp_avg", "exp_avg_sq"))


def test_planted_weight_decay_as_l2_instead_of_decoupled(bn_pair, batch):
    x, y = batch
    lr = F32(0.001)
    report = _train(bn_pair, _bn_torch(), x, y, loss=SCCE,
                    optimizer=("adamw:beta_1=0.5,beta_2=0.75,weight_decay=0.01", f"torch.adam:lr={lr},betas=0.5/0.75,weight_decay=0.01"))  # fmt: skip
    d = report.first_divergence
    assert (d.step, d.quantity) == (1, "exp_avg")  # L2 enters the gradient's moments; decoupled decay does not
    assert all(r.ok for r in report.rows if r.step == 1 and r.quantity == "gradient")


def test_planted_from_logits_mismatch(conv3d):
    import torch

    from xconv import zoo

    k, x, shape = conv3d
    t = zoo.build("conv3d_demo", "torch", input_shape=shape)
    # Keras reads softmax probabilities; torch's CrossEntropyLoss takes them as logits
    report = _train(k, t, x, np.eye(17)[[3, 11]], loss=("categorical_crossentropy", torch.nn.CrossEntropyLoss()), optimizer="sgd", steps=1)
    d = report.first_divergence
    assert (d.step, d.layer, d.quantity) == (1, "", "loss")
    assert "loss" in str(d)


def test_planted_clipping_on_one_side_only(bn_pair, batch):
    x, y = batch
    report = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=("sgd:learning_rate=0.1,clipnorm=0.01", f"torch.sgd:lr={F32(0.1)}"))
    d = report.first_divergence
    assert (d.step, d.quantity) == (1, "clipped_gradient") and d.layer == "conv1"
    assert all(r.ok for r in report.rows if r.step == 1 and r.quantity == "gradient")


def test_constant_torch_eps_is_not_keras_epsilon_after_step_one(bn_pair, batch):
    """Keras's epsilon is torch's eps/sqrt(1-b2^t): matching it at step 1 only still diverges at step 2."""
    x, y = batch
    lr = F32(0.001)
    report = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=("adam:beta_1=0.5,beta_2=0.75", f"torch.adam:lr={lr},betas=0.5/0.75,eps={1e-7 / 0.5}"))
    assert report.first_divergence.step == 2 and report.first_divergence.quantity == "weight"


# ---------------------------------------------------------------- float32 policy


@pytest.mark.slow
def test_float32_policy_passes_a_correct_port_and_catches_a_bug(bn_pair, batch):
    from xconv.training import tolerance

    x, y = batch
    for opt in ("sgd:learning_rate=0.05,momentum=0.9", "adam:learning_rate=0.01", "rmsprop:learning_rate=0.01", "adagrad:learning_rate=0.1"):
        report = _train(bn_pair, _bn_torch(), x.astype("float32"), y, loss=SCCE, optimizer=opt, dtype="float32")
        assert report.ok, f"{opt}: {report.first_divergence}"
        assert report.tolerances["gradient"] == tolerance.DEFAULTS["float32"]["gradient"]
        # float32 really is float32: the differences are not float64-small everywhere
        assert max(r.max_abs / r.scale for r in report.rows if r.scale and r.quantity == "gradient") > 1e-12
    t = _bn_torch()
    t.bn1.momentum = 0.9
    d = _train(bn_pair, t, x, y, loss=SCCE, optimizer="sgd", dtype="float32").first_divergence
    assert (d.step, d.layer, d.quantity) == (1, "bn1", "running_mean")
    # the adaptive floor on weights does not hide a wrong update rule: L2 shows in the moments
    lr = F32(0.01)
    d = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, dtype="float32",
               optimizer=("adamw:learning_rate=0.01,weight_decay=0.05", f"torch.adam:lr={lr},weight_decay=0.05")).first_divergence  # fmt: skip
    assert (d.step, d.quantity) == (1, "exp_avg")


@pytest.mark.slow
def test_float32_unet_encoder_within_policy():
    from xconv import zoo

    shape = (32, 32, 1)
    k = zoo.build("unet_encoder", "keras", random_biases=True, input_shape=shape)
    t = zoo.build("unet_encoder", "torch", input_shape=shape)
    rng = np.random.default_rng(4)
    targets = [rng.random((2, *o.shape[1:])).astype("float32") for o in k.outputs]
    report = _train(k, t, rng.random((2, *shape)).astype("float32"), targets, loss="mse", optimizer="adam", dtype="float32", steps=2)
    assert report.ok, f"{report.first_divergence}\n{report.table(only_failures=True)}"


# ---------------------------------------------------------------- the report


def test_report_text_and_json(bn_pair, batch):
    x, y = batch
    t = _bn_torch()
    t.bn2.momentum = 0.9
    report = _train(bn_pair, t, x, y, loss=SCCE, optimizer="adam", steps=2)
    text = str(report)
    assert "DIVERGED: first at step 1, layer 'bn2'" in text and "running_mean" in text
    assert "rtol" in text and "1e-09" in text  # what was allowed
    assert "keras Adam(" in text and "torch Adam(" in text  # what was compared with what
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["first_divergence"]["layer"] == "bn2" and data["first_divergence"]["step"] == 1
    assert {"step", "quantity", "layer", "module", "tensor", "max_abs", "allowed", "ok"} <= set(data["rows"][0])
    assert data["tolerances"]["weight"] == {"rtol": 1e-9, "atol": 1e-12}
    steps = {r["step"] for r in data["rows"]}
    assert steps == {0, 1, 2}


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(optimizer="torch.adam:weight_decay=0.01"), "L2"),
        (dict(optimizer="torch.rmsprop:lr=0.01"), "inside"),
        (dict(optimizer="sgd:momentum=0.9,weight_decay=0.01"), "decoupled"),
        (dict(optimizer="torch.sgd:lr=0.1,clip_grad_norm=1.0"), "1e-6"),
        (dict(optimizer="nadam"), "Unknown optimizer"),
        (dict(optimizer="adam:lr=0.1,epsilon=1e-7"), "mixes"),
        (dict(loss="torch.mse:reduction=sum"), "1/C"),
        (dict(loss="poisson"), "Unknown loss"),
        (dict(steps=0), "positive"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(bn_pair, batch, kwargs, match):
    from xconv import XconvError

    x, y = batch
    args = dict(loss="mse", optimizer="sgd", steps=1)
    args.update(kwargs)
    target = np.zeros((4, 5)) if "mse" in str(args["loss"]) else y
    with pytest.raises(XconvError, match=match):
        _train(bn_pair, _bn_torch(), x, target, **args)


def test_wrong_order_and_wrong_targets(bn_pair, batch):
    from xconv import XconvError

    x, y = batch
    with pytest.raises(XconvError, match="Keras model first"):
        _train(_bn_torch(), bn_pair, x, y, loss="mse", optimizer="sgd")
    with pytest.raises(XconvError, match="target"):
        _train(bn_pair, _bn_torch(), x, [y, y], loss=SCCE, optimizer="sgd")


def test_copy_weights_false_compares_the_ports_own_weights_at_step_0(bn_pair, batch):
    import torch

    x, y = batch
    t = _bn_torch()  # its own (torch-initialised) weights, not Keras's
    report = _train(bn_pair, t, x, y, loss=SCCE, optimizer="sgd", steps=1, copy_weights=False)
    d = report.first_divergence
    assert d.step == 0 and d.quantity in ("weight", "running_mean")  # torch's own init and unit statistics
    from xconv import transfer_weights

    transfer_weights(bn_pair, t)
    with torch.no_grad():
        t.logits.bias += 1e-3  # one tensor off after the transfer
    d = _train(bn_pair, t, x, y, loss=SCCE, optimizer="sgd", steps=1, copy_weights=False).first_divergence
    assert (d.step, d.layer, d.quantity, d.tensor) == (0, "logits", "weight", "bias")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_side_on_cuda_trains_identically(bn_pair, batch):
    x, y = batch
    for opt in ("sgd:learning_rate=0.05,momentum=0.9", "adam:learning_rate=0.01"):
        report = _train(bn_pair, _bn_torch(), x, y, loss=SCCE, optimizer=opt, device="cuda")
        assert report.device.startswith("cuda")
        _assert_identical(report)


def test_shared_dropout_masks_train_identically_and_catch_a_rate_mismatch(batch):
    from xconv import zoo
    from xconv.training.examples import bn_classifier

    x, y = batch
    k = bn_classifier("keras", dropout=0.5)
    zoo.randomize_biases(k)
    shared = _train(k, bn_classifier("torch", dropout=0.5), x, y, loss=SCCE, optimizer="adam", random_layers="shared")
    _assert_identical(shared)
    assert any("same seeded masks" in n for n in shared.notes) and not any("switched off" in n for n in shared.notes)
    off = _train(k, bn_classifier("torch", dropout=0.5), x, y, loss=SCCE, optimizer="adam", steps=1)
    loss = lambda r: next(row.scale for row in r.rows if row.quantity == "loss")  # noqa: E731
    assert loss(off) != pytest.approx(loss(shared), rel=1e-6)  # dropout really acted
    d = _train(k, bn_classifier("torch", dropout=0.3), x, y, loss=SCCE, optimizer="adam", random_layers="shared").first_divergence
    assert (d.step, d.quantity) == (1, "loss")


def test_a_translated_module_trains_like_its_keras_model(bn_pair, batch):
    """keras_to_torch's BatchNorm carries momentum 1 - m and Keras's epsilon: training agrees too."""
    import xconv

    x, y = batch
    t = xconv.keras_to_torch(bn_pair)
    assert all(abs(m.momentum - 0.1) < 1e-12 for m in t.modules() if type(m).__name__ == "BatchNorm2d")
    _assert_identical(_train(bn_pair, t, x, y, loss=SCCE, optimizer="adam:learning_rate=0.01"))


def test_a_keras_model_translated_from_torch_trains_like_the_module(batch):
    """The other direction: torch_to_keras carries momentum 1 - m, and torch settings get their Keras twin."""
    import xconv
    from xconv.training.examples import bn_classifier

    x, y = batch
    t = bn_classifier("torch").eval()
    k = xconv.torch_to_keras(t, (3, 8, 8))
    assert [round(l.momentum, 12) for l in k.layers if type(l).__name__ == "BatchNormalization"] == [0.9, 0.9]
    _assert_identical(_train(k, t, x, y, loss="torch.cross_entropy", optimizer="torch.sgd:lr=0.0625,momentum=0.875"))
