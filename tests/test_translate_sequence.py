"""keras_to_torch on sequence and attention layers and on Keras operations, in float64.

Recurrent layers (return_sequences, return_state, go_backwards, Bidirectional merges, GRU's
reset_after both ways), MultiHeadAttention (any key/value dims, no bias, 2-D attention axes),
Embedding, LayerNormalization over any axes, and operations on KerasTensors. Planted bugs
(swapped LSTM gates, GRU's r and z swapped, a wrong head split) are named by ``compare``.
"""

import numpy as np
import pytest
import torch

from conftest import needs_keras

pytestmark = [needs_keras, pytest.mark.slow]  # each case builds, translates and compares a model

F64 = "float64"


def _random(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(0, 0.4, tuple(v.shape)).astype(v.dtype))
    return model


def _outputs_match(model, module, xs, atol=1e-12):
    want = model(xs if len(xs) > 1 else xs[0])
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    args = [torch.from_numpy(np.moveaxis(x, -1, 1) if x.ndim >= 3 and x.dtype.kind == "f" else x) for x in xs]
    with torch.no_grad():
        got = module(*args)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(want)
    for a, b in zip(want, got):
        a, b = np.asarray(a), b.numpy()
        if b.ndim >= 3:
            b = np.moveaxis(b, 1, -1)  # the module's outputs are channels-first
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=0, atol=atol)


def _models():
    import keras
    from keras import layers as L

    def seq(make):
        i = keras.Input((6, 3), dtype=F64)
        return keras.Model(i, make(i))

    def rnn(kind, **kw):
        return lambda i: getattr(L, kind)(4, dtype=F64, **kw)(i)

    def bi(kind, merge="concat", **kw):
        return lambda i: L.Bidirectional(getattr(L, kind)(4, dtype=F64, **kw), merge_mode=merge, dtype=F64)(i)

    cases = {}
    for kind in ("LSTM", "GRU", "SimpleRNN"):
        cases[f"{kind}-sequences"] = lambda kind=kind: seq(rnn(kind, return_sequences=True))
        cases[f"{kind}-last"] = lambda kind=kind: seq(rnn(kind))
        cases[f"{kind}-backwards"] = lambda kind=kind: seq(rnn(kind, go_backwards=True, return_sequences=True))
        cases[f"bi-{kind}"] = lambda kind=kind: seq(bi(kind, return_sequences=True))
    cases["GRU-reset-before"] = lambda: seq(rnn("GRU", reset_after=False, return_sequences=True))
    cases["bi-GRU-reset-before-last"] = lambda: seq(bi("GRU", reset_after=False))
    cases["LSTM-no-bias"] = lambda: seq(rnn("LSTM", use_bias=False, return_sequences=True))
    cases["SimpleRNN-relu"] = lambda: seq(rnn("SimpleRNN", activation="relu", return_sequences=True))
    for merge in ("sum", "mul", "ave"):
        cases[f"bi-LSTM-{merge}"] = lambda merge=merge: seq(bi("LSTM", merge, return_sequences=True))
    cases["LSTM-return-state"] = lambda: seq(lambda i: L.Concatenate(dtype=F64)(L.LSTM(4, return_state=True, dtype=F64)(i)))
    cases["bi-LSTM-return-state"] = lambda: seq(lambda i: L.Concatenate(dtype=F64)(L.Bidirectional(L.LSTM(4, return_state=True, dtype=F64), dtype=F64)(i)))
    cases["mha-self"] = lambda: seq(lambda i: L.MultiHeadAttention(2, 4, dtype=F64)(i, i))
    cases["mha-any-dims-no-bias"] = lambda: seq(lambda i: L.MultiHeadAttention(3, 5, value_dim=2, output_shape=7, use_bias=False, dtype=F64)(i, i))
    cases["mha-key-value"] = lambda: seq(lambda i: L.MultiHeadAttention(2, 3, dtype=F64)(i, L.Dense(5, dtype=F64)(i), L.Dense(4, dtype=F64)(i)))
    cases["layernorm-last"] = lambda: seq(lambda i: L.LayerNormalization(dtype=F64)(L.Dense(5, dtype=F64)(i)))
    cases["layernorm-two-axes"] = lambda: seq(lambda i: L.LayerNormalization(axis=[1, 2], dtype=F64)(i))
    cases["layernorm-rms"] = lambda: seq(lambda i: L.LayerNormalization(rms_scaling=True, dtype=F64)(i))
    cases["attention-dot"] = lambda: seq(lambda i: L.Attention(dtype=F64)([i, L.Dense(3, dtype=F64)(i)]))
    cases["attention-scaled-key"] = lambda: seq(lambda i: L.Attention(use_scale=True, dtype=F64)([i, i, L.Dense(3, dtype=F64)(i)]))
    cases["rmsnorm"] = lambda: seq(lambda i: L.RMSNormalization(epsilon=1e-5, dtype=F64)(L.Dense(5, dtype=F64)(i)))
    cases["time-distributed-dense"] = lambda: seq(lambda i: L.TimeDistributed(L.Dense(3, dtype=F64), dtype=F64)(L.LSTM(4, return_sequences=True, dtype=F64)(i)))

    def maps(make):
        i = keras.Input((4, 4, 6), dtype=F64)
        return keras.Model(i, make(i))

    cases["mha-2d-axes"] = lambda: maps(lambda i: L.MultiHeadAttention(2, 3, dtype=F64)(i, i))
    cases["layernorm-maps-all-axes"] = lambda: maps(lambda i: L.LayerNormalization(axis=[1, 2, 3], dtype=F64)(L.Conv2D(3, 1, dtype=F64)(i)))
    return cases


CASES = sorted(_models()) if __import__("conftest").has_keras() else []


@pytest.mark.parametrize("name", CASES)
def test_sequence_layer_matches_keras(name):
    from xconv import compare, keras_to_torch

    model = _random(_models()[name]())
    module = keras_to_torch(model)
    x = np.random.default_rng(1).normal(size=(2, *model.inputs[0].shape[1:]))
    _outputs_match(model, module, [x])
    if "return-state" not in name:  # a layer with several outputs: compare reads one per side
        report = compare(model, module, x, dtype=F64)
        assert report.ok, str(report)


def test_embedding_lstm_dense_with_token_ids():
    import keras
    from keras import layers as L

    from xconv import keras_to_torch

    ids = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 6, dtype=F64)(ids)
    x = L.MultiHeadAttention(2, 3, dtype=F64)(x, x) + x
    x = L.LSTM(5, dtype=F64)(L.LayerNormalization(dtype=F64)(x))
    model = _random(keras.Model(ids, L.Dense(3, dtype=F64)(x)))
    module = keras_to_torch(model)
    _outputs_match(model, module, [np.random.default_rng(2).integers(0, 20, size=(2, 7)).astype("int32")])


def test_initial_state_starts_the_decoder():
    import keras
    from keras import layers as L

    from xconv import keras_to_torch

    enc, dec = keras.Input((5, 3), dtype=F64), keras.Input((4, 2), dtype=F64)
    _, h, c = L.LSTM(4, return_state=True, dtype=F64)(enc)
    out = L.LSTM(4, return_sequences=True, dtype=F64)(dec, initial_state=[h, c])
    model = _random(keras.Model([enc, dec], out))
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4, 2))]
    want = np.asarray(model(xs))
    with torch.no_grad():
        got = keras_to_torch(model)(*(torch.from_numpy(np.moveaxis(x, -1, 1)) for x in xs)).numpy()
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), want, rtol=0, atol=1e-12)  # outputs are channels-first


def _sequence_model(layer):
    import keras
    from keras import layers as L

    i = keras.Input((6, 3), dtype=F64)
    x = L.Dense(8, dtype=F64, name="embed")(i)
    x = layer(x, x) if isinstance(layer, L.MultiHeadAttention) else layer(x)
    return _random(keras.Model(i, L.Dense(2, dtype=F64, name="head")(x)))


def _swap_blocks(param, n, a, b):
    with torch.no_grad():
        blocks = list(param.detach().clone().split(param.shape[0] // n))
        blocks[a], blocks[b] = blocks[b], blocks[a]
        param.copy_(torch.cat(blocks))


@pytest.mark.parametrize(
    "layer, plant",
    [
        ("lstm", lambda m: [_swap_blocks(getattr(m.rnn, p), 4, 0, 1) for p in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0")]),
        ("gru", lambda m: [_swap_blocks(getattr(m.rnn, p), 3, 0, 1) for p in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]),
        ("mha", lambda m: setattr(m.rnn, "num_heads", 4) or setattr(m.rnn, "key_dim", 2) or setattr(m.rnn, "value_dim", 2)),
    ],
    ids=["lstm-gates-swapped", "gru-r-z-swapped", "mha-head-split"],
)
def test_planted_bug_is_named(layer, plant):
    from keras import layers as L

    from xconv import compare, keras_to_torch

    made = {"lstm": L.LSTM(4, return_sequences=True, dtype=F64, name="rnn"), "gru": L.GRU(4, return_sequences=True, dtype=F64, name="rnn"),
            "mha": L.MultiHeadAttention(2, 4, dtype=F64, name="rnn")}[layer]  # fmt: skip
    model = _sequence_model(made)
    module = keras_to_torch(model)
    x = np.random.default_rng(4).normal(size=(2, 6, 3))
    assert compare(model, module, x, dtype=F64).ok
    plant(module)
    report = compare(model, module, x, dtype=F64)
    assert not report.ok and report.first_divergence == "rnn", str(report)


def test_masks_are_refused_with_the_layer_named():
    import keras
    from keras import layers as L

    from xconv import keras_to_torch
    from xconv.errors import UnsupportedLayerError

    q = keras.Input((5, 4))
    mask = keras.Input((5, 5), dtype="bool")
    model = keras.Model([q, mask], L.MultiHeadAttention(2, 2, name="attn")(q, q, attention_mask=mask))
    with pytest.raises(UnsupportedLayerError, match="'attn'.*attention_mask"):
        keras_to_torch(model)
    ids = keras.Input((5,), dtype="int32")
    model = keras.Model(ids, L.LSTM(3)(L.Embedding(9, 4, mask_zero=True, name="emb")(ids)))
    with pytest.raises(UnsupportedLayerError, match="'emb'.*mask_zero"):
        keras_to_torch(model)


def test_conv_lstm_is_refused_clearly():
    import keras
    from keras import layers as L

    from xconv import keras_to_torch
    from xconv.errors import UnsupportedLayerError

    model = keras.Sequential([keras.Input((3, 6, 6, 2)), L.ConvLSTM2D(2, 3, name="clstm")])
    with pytest.raises(UnsupportedLayerError, match="ConvLSTM2D.*'clstm'.*no convolutional LSTM"):
        keras_to_torch(model)


def test_keras_io_text_transformer_with_float_token_ids():
    """keras.io's text classification transformer: custom blocks (a nested Sequential, positions
    from ops.arange) traced, float token ids cast as Keras' Embedding casts them."""
    import keras
    from keras import layers, ops

    from xconv import keras_to_torch

    class TransformerBlock(layers.Layer):
        def __init__(self, dim, heads, ff):
            super().__init__()
            self.att = layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
            self.ffn = keras.Sequential([layers.Dense(ff, activation="relu"), layers.Dense(dim)])
            self.norm1, self.norm2 = layers.LayerNormalization(epsilon=1e-6), layers.LayerNormalization(epsilon=1e-6)
            self.drop1, self.drop2 = layers.Dropout(0.1), layers.Dropout(0.1)

        def call(self, x):
            x = self.norm1(x + self.drop1(self.att(x, x)))
            return self.norm2(x + self.drop2(self.ffn(x)))

    class TokenAndPosition(layers.Layer):
        def __init__(self, maxlen, vocab, dim):
            super().__init__()
            self.tokens, self.positions = layers.Embedding(vocab, dim), layers.Embedding(maxlen, dim)

        def call(self, x):
            return self.tokens(x) + self.positions(ops.arange(0, ops.shape(x)[-1], 1))

    inputs = layers.Input(shape=(12,))
    x = TransformerBlock(8, 2, 16)(TokenAndPosition(12, 50, 8)(inputs))
    outputs = layers.Dense(2)(layers.GlobalAveragePooling1D()(x))
    model = _random(keras.Model(inputs, outputs))
    tokens = np.random.default_rng(5).integers(0, 50, (2, 12)).astype("float32")
    with torch.no_grad():
        got = keras_to_torch(model)(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(got, np.asarray(model(tokens)), rtol=1e-5, atol=1e-5)


def test_recurrent_modules_share_one_definition_and_the_written_source_runs_alone(tmp_path):
    """KerasLSTM, KerasGRU and KerasRNN are one mixin over nn.LSTM / nn.GRU / nn.RNN: the written
    file holds one forward for the three, and runs without xconv, Keras or TensorFlow."""
    import subprocess
    import sys

    import keras
    from keras import layers as L

    from xconv import keras_to_torch

    i = keras.Input((5, 3), dtype=F64)
    x = L.LSTM(4, return_sequences=True, go_backwards=True, dtype=F64)(i)
    x = L.GRU(3, return_sequences=True, dtype=F64)(x)
    x = L.Bidirectional(L.SimpleRNN(2, dtype=F64), merge_mode="sum", dtype=F64)(x)
    model = _random(keras.Model(i, x, name="rnns"))
    xs = np.random.default_rng(0).normal(size=(2, 5, 3))
    keras_to_torch(model, source=tmp_path / "model.py", channels_last_io=True)
    text = (tmp_path / "model.py").read_text()
    assert "class KerasLSTM(KerasRecurrentOutputs, nn.LSTM)" in text and "class KerasRNN(KerasRecurrentOutputs, nn.RNN)" in text
    assert text.count("def forward(self, x, *initial_state)") == 1, text
    np.save(tmp_path / "x.npy", xs)
    np.save(tmp_path / "want.npy", np.asarray(model(xs)))
    code = f"""
import sys
for blocked in ("xconv", "tensorflow", "keras"):
    sys.modules[blocked] = None
sys.path.insert(0, {str(tmp_path)!r})
import numpy as np, torch
from model import Rnns
m = Rnns().double()
m.load_state_dict(torch.load({str(tmp_path / "model.pt")!r}, weights_only=True))
with torch.no_grad():
    got = m.eval()(torch.from_numpy(np.load({str(tmp_path / "x.npy")!r}))).numpy()
np.testing.assert_allclose(got, np.load({str(tmp_path / "want.npy")!r}), rtol=0, atol=1e-12)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
