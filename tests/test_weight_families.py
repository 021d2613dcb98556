"""Weight families for sequence, attention, embedding and normalisation layers.

Each family is checked three ways: Keras -> torch -> Keras is bit-exact; the torch module built
from the converted arrays computes what the Keras layer computes (float64, an independent oracle
for gate and head order); and torch -> Keras -> torch is bit-exact where the layouts are one to one.
"""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_keras
from xconv.errors import LayoutError
from xconv.weights import LayerContext, family_for_keras, family_for_torch, families

pytestmark = needs_keras


def _randomise(layer, seed):
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(0, 0.5, tuple(v.shape)).astype(v.dtype))


def _keras_arrays(layer):
    from xconv.frameworks import keras_side as ks

    return ks.layer_weights(layer)


def _torch_arrays(module):
    from xconv.frameworks import torch_side as ts

    return ts.module_arrays(module)


def _load(module, arrays):
    from xconv.frameworks import torch_side as ts

    target = _torch_arrays(module)
    assert set(arrays) == set(target), (sorted(arrays), sorted(target))
    for k in arrays:
        assert arrays[k].shape == target[k].shape, k
    ts.set_module_arrays(module, arrays)


def _same_bits(a: dict, b: dict):
    assert set(a) == set(b), (sorted(a), sorted(b))
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k


def _seq(rng, n=2, t=5, f=3):
    return rng.normal(size=(n, t, f))


# (builder of the Keras layer, builder of the torch twin, gates, whether nn has a twin)
def _rnn_cases():
    from keras import layers

    return {
        "lstm": (lambda: layers.LSTM(4, return_sequences=True, dtype="float64"), lambda: nn.LSTM(3, 4, batch_first=True)),
        "lstm_nobias": (
            lambda: layers.LSTM(4, return_sequences=True, use_bias=False, dtype="float64"),
            lambda: nn.LSTM(3, 4, batch_first=True, bias=False),
        ),
        "gru": (lambda: layers.GRU(4, return_sequences=True, dtype="float64"), lambda: nn.GRU(3, 4, batch_first=True)),
        "simple_rnn": (lambda: layers.SimpleRNN(4, return_sequences=True, dtype="float64"), lambda: nn.RNN(3, 4, batch_first=True)),
        "simple_rnn_relu": (
            lambda: layers.SimpleRNN(4, activation="relu", return_sequences=True, dtype="float64"),
            lambda: nn.RNN(3, 4, nonlinearity="relu", batch_first=True),
        ),
    }


RNN_CASES = ["lstm", "lstm_nobias", "gru", "simple_rnn", "simple_rnn_relu"]


@pytest.mark.parametrize("case", RNN_CASES)
def test_recurrent_family_matches_torch_and_round_trips(case, rng):
    make_keras, make_torch = _rnn_cases()[case]
    layer = make_keras()
    x = _seq(rng)
    want = np.asarray(layer(x))
    _randomise(layer, 3)
    want = np.asarray(layer(x))
    family = family_for_keras(type(layer).__name__)
    k_arrays = _keras_arrays(layer)
    t_arrays = family.to_torch(k_arrays, LayerContext(layer.name))
    module = make_torch().double()
    _load(module, t_arrays)
    with torch.no_grad():
        got = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    _same_bits(family.to_keras(_torch_arrays(module), LayerContext(layer.name)), k_arrays)
    assert family_for_torch(type(module).__name__).name == family.name


def _gru_reset_before(arrays, x):
    """NumPy GRU with Keras' reset_after=False, from torch-layout arrays (gates r, z, n)."""
    w_ih, w_hh, b = arrays["weight_ih_l0"], arrays["weight_hh_l0"], arrays["bias_ih_l0"]
    units = w_hh.shape[1]
    h = np.zeros((x.shape[0], units))
    out = []
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for t in range(x.shape[1]):
        gx = x[:, t] @ w_ih.T + b
        r = sig(gx[:, :units] + h @ w_hh[:units].T)
        z = sig(gx[:, units : 2 * units] + h @ w_hh[units : 2 * units].T)
        n = np.tanh(gx[:, 2 * units :] + (r * h) @ w_hh[2 * units :].T)
        h = z * h + (1 - z) * n
        out.append(h)
    return np.stack(out, 1)


def test_gru_reset_before_family_follows_keras(rng):
    from keras import layers

    layer = layers.GRU(4, reset_after=False, return_sequences=True, dtype="float64")
    x = _seq(rng)
    layer(x)
    _randomise(layer, 4)
    want = np.asarray(layer(x))
    family = family_for_keras("GRU")
    k_arrays = _keras_arrays(layer)
    t_arrays = family.to_torch(k_arrays, LayerContext(layer.name))
    assert sorted(t_arrays) == ["bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
    np.testing.assert_allclose(_gru_reset_before(t_arrays, x), want, rtol=0, atol=1e-12)
    _same_bits(family.to_keras(t_arrays, LayerContext(layer.name)), k_arrays)


def test_gru_gates_swapped_are_seen(rng):
    """The oracle above is not blind: r and z exchanged in the torch arrays give other numbers."""
    from keras import layers

    layer = layers.GRU(4, return_sequences=True, dtype="float64")
    x = _seq(rng)
    layer(x)
    _randomise(layer, 5)
    want = np.asarray(layer(x))
    arrays = family_for_keras("GRU").to_torch(_keras_arrays(layer), LayerContext("gru"))
    for key in arrays:
        blocks = np.split(arrays[key], 3, axis=0)
        arrays[key] = np.concatenate([blocks[1], blocks[0], blocks[2]], axis=0)
    module = nn.GRU(3, 4, batch_first=True).double()
    _load(module, arrays)
    with torch.no_grad():
        got = module(torch.from_numpy(x))[0].numpy()
    assert np.abs(got - want).max() > 1e-3


@pytest.mark.parametrize("inner", ["LSTM", "GRU", "SimpleRNN"])
def test_bidirectional_family_matches_torch_and_round_trips(inner, rng):
    from keras import layers

    layer = layers.Bidirectional(getattr(layers, inner)(4, return_sequences=True, dtype="float64"), dtype="float64")
    x = _seq(rng)
    layer(x)
    _randomise(layer, 6)
    want = np.asarray(layer(x))
    family = family_for_keras("Bidirectional")
    k_arrays = _keras_arrays(layer)
    assert sorted(k_arrays) == sorted(f"{s}/{k}" for s in ("forward", "backward") for k in ("kernel", "recurrent_kernel", "bias"))
    t_arrays = family.to_torch(k_arrays, LayerContext(layer.name))
    module = {"LSTM": nn.LSTM, "GRU": nn.GRU, "SimpleRNN": nn.RNN}[inner](3, 4, batch_first=True, bidirectional=True).double()
    _load(module, t_arrays)
    with torch.no_grad():
        got = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    _same_bits(family.to_keras(_torch_arrays(module), LayerContext(layer.name)), k_arrays)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_torch_keras_torch_is_bit_exact(kind):
    torch.manual_seed(0)
    module = getattr(nn, kind)(3, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        if kind == "LSTM":  # Keras keeps one LSTM bias: a zero recurrent bias makes the trip exact
            module.bias_hh_l0.zero_()
            module.bias_hh_l0_reverse.zero_()
    if kind == "RNN":
        with torch.no_grad():
            module.bias_hh_l0.zero_()
            module.bias_hh_l0_reverse.zero_()
    arrays = _torch_arrays(module)
    family = family_for_keras("Bidirectional")
    back = family.to_torch(family.to_keras(arrays, LayerContext("rnn")), LayerContext("rnn"))
    _same_bits(back, arrays)


def test_lstm_two_torch_biases_sum_into_keras_one(rng):
    from keras import layers

    module = nn.LSTM(3, 4, batch_first=True).double()
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
    layer = layers.LSTM(4, return_sequences=True, dtype="float64")
    x = _seq(rng)
    layer(x)
    arrays = family_for_torch("LSTM").to_keras(_torch_arrays(module), LayerContext("lstm"))
    for v in layer.weights:
        v.assign(arrays[v.path.rsplit("/", 1)[-1]])
    with torch.no_grad():
        want = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=0, atol=1e-12)


def test_recurrent_refusals_name_the_module():
    arrays = _torch_arrays(nn.LSTM(3, 4, num_layers=2))
    with pytest.raises(LayoutError, match="num_layers > 1"):
        family_for_torch("LSTM").to_keras(arrays, LayerContext("enc"))
    with pytest.raises(LayoutError, match="Bidirectional"):
        family_for_torch("GRU").to_keras(_torch_arrays(nn.GRU(3, 4, bidirectional=True)), LayerContext("enc"))
    with pytest.raises(LayoutError, match="proj_size"):
        family_for_torch("LSTM").to_keras(_torch_arrays(nn.LSTM(3, 4, proj_size=2)), LayerContext("enc"))
    with pytest.raises(LayoutError, match="'enc'"):
        family_for_keras("LSTM").to_torch({"kernel": np.zeros((3, 12)), "recurrent_kernel": np.zeros((4, 12))}, LayerContext("enc"))


# (num_heads, key_dim, value_dim, key/value feature size or None for self-attention, use_bias);
# key_dim is a power of 4 here: Keras on TF rounds 1/sqrt(key_dim) to float32 even in float64
# models (a quirk the translation mimics; docs/translate.md), which nn.MultiheadAttention cannot
MHA_CASES = {
    "self_square": (2, 4, None, None, True),
    "self_nobias": (2, 16, None, None, False),
    "cross_kdim": (2, 4, None, 5, True),
}


def _mha_pair(case, rng):
    from keras import layers

    heads, key_dim, value_dim, kv_dim, bias = MHA_CASES[case]
    layer = layers.MultiHeadAttention(heads, key_dim, value_dim=value_dim, use_bias=bias, dtype="float64")
    q = rng.normal(size=(2, 5, heads * key_dim))
    kv = rng.normal(size=(2, 6, kv_dim)) if kv_dim else q
    layer(q, kv)
    _randomise(layer, 7)
    return layer, q, kv


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_attention_family_matches_torch_and_round_trips(case, rng):
    layer, q, kv = _mha_pair(case, rng)
    heads, key_dim, _, kv_dim, bias = MHA_CASES[case]
    want = np.asarray(layer(q, kv))
    family = family_for_keras("MultiHeadAttention")
    k_arrays = _keras_arrays(layer)
    t_arrays = family.to_torch(k_arrays, LayerContext(layer.name))
    e = heads * key_dim
    module = nn.MultiheadAttention(e, heads, bias=bias, batch_first=True, kdim=kv_dim, vdim=kv_dim).double().eval()
    _load(module, t_arrays)
    with torch.no_grad():
        got = module(torch.from_numpy(q), torch.from_numpy(kv), torch.from_numpy(kv), need_weights=False)[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    ctx = LayerContext(layer.name, num_heads=heads)
    _same_bits(family.to_keras(_torch_arrays(module), ctx), k_arrays)
    _same_bits(family.to_torch(family.to_keras(t_arrays, ctx), ctx), t_arrays)


def test_attention_any_key_and_value_dim_round_trips(rng):
    from keras import layers

    layer = layers.MultiHeadAttention(3, 5, value_dim=2, output_shape=7, dtype="float64")
    q = rng.normal(size=(1, 4, 6))
    layer(q, q)
    _randomise(layer, 8)
    family = family_for_keras("MultiHeadAttention")
    k_arrays = _keras_arrays(layer)
    t_arrays = family.to_torch(k_arrays, LayerContext(layer.name))
    assert {k: v.shape for k, v in t_arrays.items()} == {
        "q_proj_weight": (15, 6), "k_proj_weight": (15, 6), "v_proj_weight": (6, 6),
        "in_proj_bias": (36,), "out_proj.weight": (7, 6), "out_proj.bias": (7,),
    }  # fmt: skip
    _same_bits(family.to_keras(t_arrays, LayerContext(layer.name, num_heads=3)), k_arrays)


def test_attention_wrong_head_split_is_seen(rng):
    """The forward check is not blind to a head split: the same arrays read with other heads differ."""
    layer, q, kv = _mha_pair("self_square", rng)
    want = np.asarray(layer(q, kv))
    arrays = family_for_keras("MultiHeadAttention").to_torch(_keras_arrays(layer), LayerContext("mha"))
    module = nn.MultiheadAttention(8, 4, batch_first=True).double().eval()  # 4 heads of 2, not 2 of 4
    _load(module, arrays)
    with torch.no_grad():
        got = module(torch.from_numpy(q), torch.from_numpy(q), torch.from_numpy(q), need_weights=False)[0].numpy()
    assert np.abs(got - want).max() > 1e-3


def test_attention_to_keras_needs_the_head_count():
    arrays = _torch_arrays(nn.MultiheadAttention(8, 2))
    with pytest.raises(LayoutError, match="num_heads"):
        family_for_torch("MultiheadAttention").to_keras(arrays, LayerContext("attn"))


def test_embedding_family(rng):
    from keras import layers

    layer = layers.Embedding(11, 3, dtype="float64")
    ids = rng.integers(0, 11, size=(2, 5))
    layer(ids)
    _randomise(layer, 9)
    family = family_for_keras("Embedding")
    k_arrays = _keras_arrays(layer)
    module = nn.Embedding(11, 3).double()
    _load(module, family.to_torch(k_arrays, LayerContext("emb")))
    with torch.no_grad():
        got = module(torch.from_numpy(ids)).numpy()
    np.testing.assert_array_equal(got, np.asarray(layer(ids)))
    _same_bits(family.to_keras(_torch_arrays(module), LayerContext("emb")), k_arrays)


@pytest.mark.parametrize(
    "keras_layer, torch_module",
    [
        ("LayerNormalization", lambda: nn.LayerNorm(4, eps=1e-3)),
        ("RMSNormalization", lambda: nn.RMSNorm(4, eps=1e-6)),
        ("GroupNormalization", lambda: nn.GroupNorm(2, 4, eps=1e-3)),
        ("GroupNormalization-1", lambda: nn.InstanceNorm1d(4, eps=1e-3, affine=True)),
    ],
)
def test_normalisation_families(keras_layer, torch_module, rng):
    from keras import layers

    if keras_layer == "GroupNormalization":
        layer = layers.GroupNormalization(groups=2, dtype="float64")
    elif keras_layer == "GroupNormalization-1":
        layer = layers.GroupNormalization(groups=-1, dtype="float64")
    else:
        layer = getattr(layers, keras_layer)(dtype="float64")
    x = rng.normal(size=(2, 6, 4))
    layer(x)
    _randomise(layer, 10)
    family = family_for_keras(type(layer).__name__)
    module = torch_module().double()
    k_arrays = _keras_arrays(layer)
    _load(module, family.to_torch(k_arrays, LayerContext("norm")))
    xt = torch.from_numpy(x)
    with torch.no_grad():
        got = module(xt).numpy() if "Group" not in keras_layer else module(xt.movedim(-1, 1)).movedim(1, -1).numpy()
    np.testing.assert_allclose(got, np.asarray(layer(x)), rtol=0, atol=1e-10)
    _same_bits(family.to_keras(_torch_arrays(module), LayerContext("norm")), k_arrays)


def test_instance_norm_with_running_statistics_is_refused():
    arrays = _torch_arrays(nn.InstanceNorm2d(4, affine=True, track_running_stats=True))
    with pytest.raises(LayoutError, match="track_running_stats=False"):
        family_for_torch("InstanceNorm2d").to_keras(arrays, LayerContext("inorm"))


def test_every_family_is_listed_once():
    names = [f.name for f in families()]
    assert len(names) == len(set(names))
    for expected in ("lstm", "gru", "simplernn", "bidirectional", "attention", "embedding", "layernorm", "groupnorm", "rmsnorm"):
        assert expected in names


@pytest.mark.parametrize("module", ["rnn", "attention"])
def test_family_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"xconv.weights.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
