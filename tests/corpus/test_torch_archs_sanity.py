"""The architecture corpus is sound before anyone checks xconv against it.

Each model builds deterministically in eval mode without touching the global RNG, runs on its
sample input with the declared output shapes and finite, non-constant outputs, carries
non-default BatchNorm statistics, runs in float64 too, and is exportable by torch.export
itself (non-strict) with the exported program computing what the eager model computes.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from .torch_archs import _NORMS, ARCHS, LayerNormChannelsFirst, output_shapes, register, sample_input

NAMES = sorted(ARCHS)


@functools.cache
def _built(name: str) -> tuple[nn.Module, torch.Tensor, tuple[torch.Tensor, ...]]:
    arch = ARCHS[name]
    model = arch.factory()
    x = sample_input(arch)
    with torch.no_grad():
        y = model(x)
    return model, x, y if isinstance(y, tuple) else (y,)


def test_registry_entries_are_well_formed():
    assert len(ARCHS) >= 30
    for name, arch in ARCHS.items():
        assert arch.name == name
        assert arch.tags, name
        assert arch.input_kind in ("float", "int"), name
        assert (arch.input_kind == "int") == (arch.vocab_size is not None), name
        assert arch.has_float64 != bool(arch.float64_reason), name
    with pytest.raises(ValueError, match="registered twice"):
        register("resnet18", nn.Identity, (1, 3), (1, 3), tags=("x",))


def test_sample_input_kinds():
    tokens = sample_input(ARCHS["lstm_classifier"])
    assert tokens.dtype == torch.int64 and tokens.shape == ARCHS["lstm_classifier"].input_shape
    assert 1 <= int(tokens.min()) and int(tokens.max()) < ARCHS["lstm_classifier"].vocab_size
    image = sample_input(ARCHS["resnet18"], seed=3)
    assert image.dtype == torch.float32 and torch.equal(image, sample_input(ARCHS["resnet18"], seed=3))
    assert not torch.equal(image, sample_input(ARCHS["resnet18"], seed=4))


@pytest.mark.parametrize("name", NAMES)
def test_eval_forward_shapes_and_values(name):
    arch = ARCHS[name]
    model, x, ys = _built(name)
    assert not any(m.training for m in model.modules())
    assert tuple(x.shape) == arch.input_shape
    assert len(ys) == len(output_shapes(arch))
    for y, shape in zip(ys, output_shapes(arch)):
        assert tuple(y.shape) == shape
        assert torch.isfinite(y).all()
        assert y.std() > 0, "a constant output would hide any conversion mistake"


@pytest.mark.parametrize("name", NAMES)
def test_factory_is_deterministic_and_leaves_global_rng_alone(name):
    arch = ARCHS[name]
    model, x, ys = _built(name)
    before = torch.random.get_rng_state()
    again = arch.factory()
    assert torch.equal(torch.random.get_rng_state(), before)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        y2 = again(x)
    y2 = y2 if isinstance(y2, tuple) else (y2,)
    assert len(y2) == len(ys) and all(torch.equal(p, q) for p, q in zip(ys, y2))


@pytest.mark.parametrize("name", NAMES)
def test_norm_layers_do_not_keep_their_defaults(name):
    model = _built(name)[0]
    norms = [(path, m) for path, m in model.named_modules() if isinstance(m, (*_NORMS, LayerNormChannelsFirst))]
    if not norms:
        pytest.skip("no normalisation layer in this model")
    for path, m in norms:
        if getattr(m, "running_mean", None) is not None:
            assert not torch.equal(m.running_mean, torch.zeros_like(m.running_mean)), path
            assert not torch.equal(m.running_var, torch.ones_like(m.running_var)), path
        if isinstance(getattr(m, "weight", None), torch.Tensor):
            assert not torch.equal(m.weight, torch.ones_like(m.weight)), path
            assert not torch.equal(m.bias, torch.zeros_like(m.bias)), path


@pytest.mark.parametrize("name", NAMES)
def test_float64_forward_agrees_with_float32(name):
    model, x, ys = _built(name)
    wide = copy.deepcopy(model).double()
    with torch.no_grad():
        y64 = wide(x.double() if x.is_floating_point() else x)
    y64 = y64 if isinstance(y64, tuple) else (y64,)
    assert len(y64) == len(ys)
    for y, w in zip(ys, y64):
        assert w.dtype == torch.float64
        torch.testing.assert_close(y.double(), w, rtol=1e-4, atol=1e-5 * float(w.abs().max()))


@pytest.mark.parametrize("name", NAMES)
def test_torch_export_non_strict(name):
    model, x, ys = _built(name)
    program = torch.export.export(model, (x,), strict=False)
    with torch.no_grad():
        out = program.module()(x)
    out = out if isinstance(out, tuple) else (out,)
    assert len(out) == len(ys)
    for y, o in zip(ys, out):
        torch.testing.assert_close(o, y, rtol=1e-5, atol=1e-6 * max(1.0, float(y.abs().max())))


def _forward(model, x):
    with torch.no_grad():
        y = model(x)
    return y if isinstance(y, tuple) else (y,)


def _relative_change(a, b):
    return max(float((p - q).abs().max()) / max(float(p.abs().max()), 1e-12) for p, q in zip(a, b))


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "densenet121", "r2plus1d", "m5_audio"])
def test_dropping_batchnorm_statistics_changes_the_output(name):
    # a converter that loses running_mean/var (keeps gamma/beta) must not pass unnoticed
    model, x, ys = _built(name)
    broken = copy.deepcopy(model)
    for m in broken.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    assert _relative_change(ys, _forward(broken, x)) > 1e-2


@pytest.mark.parametrize("name", [n for n in NAMES if "bn_eps_1e-3" in ARCHS[n].tags])
def test_batchnorm_epsilon_is_visible(name):
    # TF's BatchNormalization default is eps=1e-3, torch's 1e-5: a swapped epsilon must show
    model, x, ys = _built(name)
    broken = copy.deepcopy(model)
    for m in broken.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert m.eps == pytest.approx(1e-3)
            m.eps = 1e-5
    assert _relative_change(ys, _forward(broken, x)) > 1e-4
