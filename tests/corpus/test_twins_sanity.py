"""The twin corpus is right before anyone uses it as an oracle.

Each hand-written port computes the Keras model's function (float32, and float64 where TF can),
each hand-written pair of (Keras layer, torch module) gives the same intermediate output, and
each planted bug changes the final output and first shows at the Keras layer it names.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from conftest import needs_keras

from .twins import TWINS, Twin

pytestmark = needs_keras
RTOL, ATOL = 1e-4, 1e-5

PLANTS = [(name, kind) for name, twin in TWINS.items() for kind in twin.planted]


@functools.lru_cache(maxsize=None)
def _keras_model(name: str, dtype: str):
    return TWINS[name].build_keras(dtype)


def _sample(twin: Twin, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(3).normal(size=twin.input_shape).astype(dtype)


def _to_torch_layout(a) -> torch.Tensor:
    a = np.asarray(a)
    return torch.from_numpy(np.array(np.moveaxis(a, -1, 1) if a.ndim > 2 else a, copy=True))


def _keras_out(name: str, x: np.ndarray, dtype: str = "float32") -> torch.Tensor:
    return _to_torch_layout(_keras_model(name, dtype)(x, training=False))


@functools.lru_cache(maxsize=None)
def _loaded(name: str) -> torch.nn.Module:
    twin = TWINS[name]
    return twin.torch_for(_keras_model(name, "float32"))


def _torch_in(twin: Twin, x: np.ndarray) -> torch.Tensor:
    """The input as the port takes it: channels-first, or the Keras layout for a port that transposes itself."""
    return torch.from_numpy(np.array(x, copy=True)) if twin.torch_layout == "channels_last" else _to_torch_layout(x)


def _torch_out(module: torch.nn.Module, x: np.ndarray, twin: Twin | None = None) -> torch.Tensor:
    twin = twin or next(t for t in TWINS.values() if isinstance(module, t.torch_cls))
    with torch.no_grad():
        return module(_torch_in(twin, x))


def _as_torch_value(k_out, t_out: torch.Tensor) -> torch.Tensor:
    """The Keras output in the layout the torch module produced it: channels-first for a feature map,
    as is for a Linear/LayerNorm applied on the last axis of a permuted (N, H, W, C) tensor, and
    reshaped for (N, 1, 1, C) against (N, C) (a Dense after GlobalAveragePooling2D(keepdims=True))."""
    raw = torch.from_numpy(np.array(np.asarray(k_out), copy=True))
    moved = _to_torch_layout(raw.numpy())
    if tuple(moved.shape) == tuple(t_out.shape):
        return moved
    if tuple(raw.shape) == tuple(t_out.shape):
        return raw
    if raw.numel() == t_out.numel() and [d for d in raw.shape if d != 1] == [d for d in t_out.shape if d != 1]:
        return raw.reshape(t_out.shape)
    return moved  # shapes differ: the caller's assert_close says so


def _differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.allclose(a, b, rtol=RTOL, atol=ATOL)


def _paired_outputs(twin: Twin, module: torch.nn.Module, x: np.ndarray):
    """[(keras layer, keras output, torch output after the layer's fused activation)] in Keras order."""
    import keras

    model = _keras_model(twin.name, "float32")
    layers = [layer for layer in model.layers if layer.name in twin.pairs and layer.name not in twin.unhooked]
    probe = keras.Model(model.input, [layer.output for layer in layers])
    keras_outs = probe(x, training=False)
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for layer in layers:
        def hook(_mod, _args, out, key=layer.name):
            seen.setdefault(key, out.detach().clone())  # clone: an inplace ReLU may follow; first call only

        hooks.append(module.get_submodule(twin.pairs[layer.name]).register_forward_hook(hook))
    try:
        _torch_out(module, x, twin)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for layer, k_out in zip(layers, keras_outs, strict=True):
        t_out = seen[layer.name]
        activation = getattr(layer, "activation", None)
        if activation is not None:  # Keras fuses the activation into Conv/Dense; the port applies it after
            # elementwise: apply it in any layout and keep the torch module's layout
            t_out = torch.from_numpy(np.array(np.asarray(activation(t_out.numpy())), copy=True))
        rows.append((layer.name, _as_torch_value(k_out, t_out), t_out))
    return rows


def test_corpus_is_large_enough():
    assert len(TWINS) >= 8
    assert sum("train_mode" in t.planted for t in TWINS.values()) >= 3
    assert sum("padding" in t.planted for t in TWINS.values()) >= 3


@pytest.mark.parametrize("name", TWINS)
def test_port_matches_keras_float32(name):
    twin = TWINS[name]
    x = _sample(twin)
    torch.testing.assert_close(_torch_out(_loaded(name), x, twin), _keras_out(name, x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", TWINS)
def test_port_matches_keras_float64(name):
    twin = TWINS[name]
    if not twin.has_float64:
        pytest.skip(twin.float64_reason)
    keras_model = _keras_model(name, "float64")
    module = twin.torch_for(keras_model)
    assert next(module.parameters()).dtype == torch.float64
    x = _sample(twin, "float64")
    out = _keras_out(name, x, "float64")
    assert out.dtype == torch.float64
    torch.testing.assert_close(_torch_out(module, x, twin), out, rtol=twin.float64_rtol, atol=twin.float64_rtol / 100)


@pytest.mark.parametrize("name", TWINS)
def test_pairs_name_real_layers_and_match_them(name):
    twin = TWINS[name]
    model = _keras_model(name, "float32")
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert set(twin.pairs) == weighted  # every Keras layer with weights is paired, and nothing else
    module = _loaded(name)
    owners = {path for path, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))}
    assert set(twin.pairs.values()) <= owners
    for layer, k_out, t_out in _paired_outputs(twin, module, _sample(twin)):
        torch.testing.assert_close(t_out, k_out, rtol=RTOL, atol=ATOL, msg=lambda m, layer=layer: f"{layer}: {m}")


@pytest.mark.parametrize("name,kind", PLANTS, ids=[f"{n}-{k}" for n, k in PLANTS])
def test_planted_bug_changes_output_and_first_shows_at_its_layer(name, kind):
    twin = TWINS[name]
    good = _loaded(name)
    broken, layer = twin.planted[kind](good)
    assert broken is not good and not good.training  # a copy; the loaded module is untouched
    layer_names = [layer.name for layer in _keras_model(name, "float32").layers]
    assert layer in layer_names
    x = _sample(twin)
    torch.manual_seed(0)
    assert _differs(_torch_out(broken, x, twin), _keras_out(name, x))
    assert not _differs(_torch_out(good, x, twin), _keras_out(name, x))  # the plant did not touch the original
    if layer not in twin.pairs or layer in twin.unhooked:  # e.g. a Dropout in train mode: no paired module to hook
        return
    first_bad = next(
        (row_layer for row_layer, k_out, t_out in _paired_outputs(twin, broken, x) if _differs(t_out, k_out)),
        None,
    )
    assert first_bad == layer
