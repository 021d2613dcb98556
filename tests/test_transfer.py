"""transfer_weights: both directions, bit-exact round trips, clear errors and no partial writes."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_keras
from xconv import transfer_weights, zoo
from xconv.errors import BadInputError, MismatchedModelsError

pytestmark = needs_keras


def _keras_weights(model):
    return [np.array(w) for w in model.get_weights()]


@pytest.mark.parametrize("name", zoo.names())
def test_round_trip_keras_torch_keras_is_bit_exact(name):
    k = zoo.build(name, "keras", seed=5, random_biases=True)
    t = zoo.build(name, "torch", seed=9)
    original = _keras_weights(k)
    transfer_weights(k, t)
    k2 = zoo.build(name, "keras", seed=11)
    manifest = transfer_weights(t, k2)
    assert manifest.direction == "torch->keras" and manifest.matched_by == "name"
    for a, b in zip(original, _keras_weights(k2), strict=True):
        assert a.shape == b.shape and a.tobytes() == b.tobytes()


def test_round_trip_torch_keras_torch_is_bit_exact():
    t = zoo.build("conv3d_demo", "torch", seed=2, random_biases=True)
    state = {k: v.clone() for k, v in t.state_dict().items()}
    k = zoo.build("conv3d_demo", "keras")
    transfer_weights(t, k)
    t2 = zoo.build("conv3d_demo", "torch", seed=99)
    transfer_weights(k, t2)
    for key, value in t2.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_values_land_where_the_layout_says():
    k = zoo.build("conv3d_demo", "keras", seed=3)
    t = zoo.build("conv3d_demo", "torch")
    manifest = transfer_weights(k, t)
    kernel = k.get_layer("conv3d_b").get_weights()[0]  # (3, 3, 3, 2, 4)
    w = t.conv3d_b.weight.detach().numpy()  # (4, 2, 3, 3, 3)
    assert w[3, 1, 0, 2, 1] == kernel[0, 2, 1, 1, 3]
    dense = k.get_layer("dense_a").get_weights()[0]  # (6272, 100), rows channels-last (56, 56, 1, 2)
    lin = t.dense_a.weight.detach().numpy()  # (100, 6272), columns channels-first (2, 56, 56, 1)
    h, w_, c = 10, 20, 1
    assert lin[7, c * 56 * 56 + h * 56 + w_] == dense[(h * 56 + w_) * 2 + c, 7]
    entry = {e.target: e for e in manifest.entries}["dense_a.weight"]
    assert "flatten" in entry.transform and entry.source_shape == (6272, 100) and entry.target_shape == (100, 6272)
    assert {e.target: e for e in manifest.entries}["conv3d_b.weight"].transform == "permute (4, 3, 0, 1, 2)"


class _HandTwin(nn.Module):
    """A user's own twin of two_conv with other names: matched by order."""

    def __init__(self, second_filters=6):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 5, padding=2)
        self.b = nn.Conv2d(4, second_filters, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.b(torch.relu(self.a(x))))


def test_hand_written_twin_is_matched_by_order():
    k = zoo.build("two_conv", "keras", random_biases=True)
    manifest = transfer_weights(k, _HandTwin())
    assert manifest.matched_by == "order"
    assert [e.target for e in manifest.entries] == ["a.weight", "a.bias", "b.weight", "b.bias"]


def test_shape_mismatch_names_the_layer_and_writes_nothing():
    k = zoo.build("two_conv", "keras", random_biases=True)
    twin = _HandTwin(second_filters=5)
    before = {n: p.clone() for n, p in twin.state_dict().items()}
    with pytest.raises(MismatchedModelsError, match="conv2.*kernel|conv2"):
        transfer_weights(k, twin)
    for n, p in twin.state_dict().items():
        assert torch.equal(p, before[n]), f"{n} was written before the error"


def test_different_models_are_refused():
    with pytest.raises(MismatchedModelsError, match="do not line up"):
        transfer_weights(zoo.build("two_conv", "keras"), zoo.build("unet_encoder", "torch"))
    with pytest.raises(MismatchedModelsError, match="conv_1.*no PyTorch module of a matching type and shape"):
        transfer_weights(zoo.build("single_conv", "keras"), nn.Sequential(nn.Linear(3, 3)))


def test_same_framework_is_refused():
    with pytest.raises(BadInputError, match="Keras model and a PyTorch module"):
        transfer_weights(zoo.build("two_conv", "torch"), zoo.build("two_conv", "torch"))


def test_batchnorm_epsilon_mismatch_is_an_error():
    import keras

    x = keras.Input((4, 4, 2))
    k = keras.Model(x, keras.layers.BatchNormalization(name="bn")(keras.layers.Conv2D(2, 1, name="c")(x)))
    t = nn.Sequential()
    t.add_module("c", nn.Conv2d(2, 2, 1))
    t.add_module("bn", nn.BatchNorm2d(2))  # eps 1e-5, Keras' is 1e-3
    with pytest.raises(MismatchedModelsError, match="epsilon=0.001"):
        transfer_weights(k, t)
    t.bn.eps = 1e-3
    manifest = transfer_weights(k, t)
    assert {e.target for e in manifest.entries} >= {"bn.running_var", "bn.running_mean", "bn.weight", "bn.bias"}


class _Shuffled(nn.Module):
    """two_conv's twin with other names and its modules registered in another order."""

    def __init__(self):
        super().__init__()
        self.late = nn.Conv2d(4, 6, 3, padding=1)
        self.early = nn.Conv2d(1, 4, 5, padding=2)


def test_matching_by_type_and_shape_when_order_does_not_line_up():
    k = zoo.build("two_conv", "keras", random_biases=True)
    twin = _Shuffled()
    manifest = transfer_weights(k, twin)
    assert manifest.matched_by == "type and shape"
    assert {e.source: e.target for e in manifest.entries}["conv1.kernel"] == "early.weight"
    np.testing.assert_array_equal(twin.early.bias.detach().numpy(), k.get_layer("conv1").get_weights()[1])


def test_ambiguous_matches_list_the_candidates():
    import keras

    x = keras.Input((3,))
    k = keras.Model(x, keras.layers.Dense(3, name="b")(keras.layers.Dense(3, name="a")(keras.layers.Dense(5, name="first")(keras.layers.Dense(3, name="zero")(x)))))
    t = nn.Module()
    t.p, t.q = nn.Linear(3, 3), nn.Linear(3, 3)  # 'a' is 5 -> 3 and 'b' 3 -> 3: only 'b' fits either
    t.first, t.zero = nn.Linear(3, 5), nn.Linear(3, 3)  # matched by name
    t.a = nn.Linear(5, 3)
    with pytest.raises(MismatchedModelsError, match=r"'b' \(Dense\) could go to any of the PyTorch modules \['p', 'q'\]"):
        transfer_weights(k, t)


def test_manifest_json_round_trip_and_reapply():
    from xconv.transfer import Manifest

    k = zoo.build("two_conv", "keras", random_biases=True)
    manifest = transfer_weights(k, _Shuffled())
    text = manifest.to_json()
    again = _Shuffled()
    reapplied = transfer_weights(k, again, manifest=text)
    assert reapplied.matched_by == "manifest"
    assert [(e.source, e.target) for e in reapplied.entries] == [(e.source, e.target) for e in Manifest.from_json(text).entries]
    # and in the other direction, into a fresh Keras model
    k2 = zoo.build("two_conv", "keras", seed=9)
    back = transfer_weights(again, k2, manifest=text)
    assert back.matched_by == "manifest"
    assert all(a.tobytes() == b.tobytes() for a, b in zip(k.get_weights(), k2.get_weights(), strict=True))


def test_sequence_families_transfer_both_ways_bit_exact():
    """LSTM, Bidirectional GRU, MultiHeadAttention, Embedding and LayerNormalization weights move
    through the shared families into a translated twin and back, bit for bit."""
    import keras
    from keras import layers as L

    from xconv import keras_to_torch

    ids = keras.Input((6,), dtype="int32")
    x = L.Embedding(12, 8, name="emb")(ids)
    x = L.MultiHeadAttention(2, 4, name="attn")(x, x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.Bidirectional(L.GRU(3, return_sequences=True), name="bigru")(x)
    model = keras.Model(ids, L.LSTM(4, name="lstm")(x))
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))
    original = _keras_weights(model)
    module = keras_to_torch(model)
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    manifest = transfer_weights(model, module)
    assert manifest.matched_by == "name"
    tokens = rng.integers(0, 12, size=(2, 6)).astype("int32")
    with torch.no_grad():
        got = module(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(got, np.asarray(model(tokens)), rtol=1e-5, atol=1e-5)
    for v in model.weights:
        v.assign(np.zeros(tuple(v.shape), "float32"))
    transfer_weights(module, model)
    for a, b in zip(original, _keras_weights(model), strict=True):
        assert a.tobytes() == b.tobytes()


def _twin_pair(name):
    twins = pytest.importorskip("corpus.twins")
    twin = twins.TWINS[name]
    k = twin.build_keras()
    x = np.random.default_rng(5).normal(size=twin.input_shape).astype("float32")
    return twin, k, x


@needs_keras
def test_a_dense_after_a_permute_then_flatten_gets_plain_rows_and_the_reorder_would_be_caught():
    """same_padding's port flattens after permute(0, 2, 3, 1): the Dense rows move as a plain
    transpose (read from the exported graph), not in channels-first flatten order."""
    from xconv import compare
    from xconv.frameworks import keras_side as ks
    from xconv.transfer import layer_context
    from xconv.weights import family_for_keras

    twin, k, x = _twin_pair("same_padding")
    fresh = twin.torch_cls().eval()
    manifest = transfer_weights(k, fresh)
    fc = next(e for e in manifest.entries if e.target == "fc.weight")
    assert fc.transform == "transpose"
    assert compare(k, fresh, x).ok
    by_hand = twin.torch_for(k).state_dict()
    assert torch.equal(fresh.state_dict()["fc.weight"], by_hand["fc.weight"])
    # the channels-first reorder (what a torch.flatten of NCHW maps needs) is wrong here, and compare says where
    dense = k.get_layer("dense")
    wrong = family_for_keras("Dense", "dense").to_torch(ks.layer_weights(dense), layer_context(dense))
    with torch.no_grad():
        fresh.fc.weight.copy_(torch.from_numpy(wrong["weight"]))
    report = compare(k, fresh, x)
    assert not report.ok and report.first_divergence == "dense", str(report)


def _flatten_port(order):
    class Port(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(2, 3, 3), nn.Linear(3 * 4 * 5, 4)

        def forward(self, x):
            y = self.conv(x)
            if order == "transposes":  # channels-last by two transposes, as a reshape-heavy port writes it
                y = y.transpose(1, 3).transpose(1, 2)
            elif order == "odd":  # (N, W, H, C): neither channels-first nor channels-last
                y = y.permute(0, 3, 2, 1)
            return self.fc(y.reshape(y.shape[0], -1))

    return Port().eval()


def _flatten_keras():
    import keras

    inp = keras.Input((6, 7, 2))
    y = keras.layers.Flatten(name="flat")(keras.layers.Conv2D(3, 3, name="conv")(inp))
    return keras.Model(inp, keras.layers.Dense(4, name="dense")(y))


@needs_keras
def test_a_flatten_after_a_chain_of_transposes_is_followed_and_an_odd_order_refused():
    """x.transpose(1, 3).transpose(1, 2) is channels-last: the Dense rows move as a plain transpose
    and compare matches (the alignment followed only aten::permute, called it a channels-first
    flatten and reordered the rows wrongly, silently). A flatten of (N, W, H, C) maps has rows in
    an order neither layout gives: refused, naming the layer, not guessed."""
    from xconv import compare

    k = _flatten_keras()
    x = np.random.default_rng(0).normal(size=(2, 6, 7, 2)).astype("float32")
    port = _flatten_port("transposes")
    manifest = transfer_weights(k, port)
    assert next(e for e in manifest.entries if e.target == "fc.weight").transform == "transpose"
    assert compare(k, port, x).ok
    port = _flatten_port("channels-first")
    assert next(e for e in transfer_weights(k, port).entries if e.target == "fc.weight").transform.startswith("transpose + flatten order")
    assert compare(k, port, x).ok
    odd = _flatten_port("odd")
    before = {n: t.clone() for n, t in odd.state_dict().items()}
    with pytest.raises(MismatchedModelsError, match="'dense'.*neither channels-first nor channels-last"):
        transfer_weights(k, odd)
    assert all(torch.equal(before[n], t) for n, t in odd.state_dict().items())  # nothing written


@needs_keras
def test_torchvision_block_order_is_paired_on_the_graph():
    """tiny_resnet declares downsample after conv2 (as torchvision's BasicBlock), but runs it
    beside conv1: pairing by declaration order is ambiguous, the graph pairs it; the weights are
    the hand copy's and compare matches."""
    from xconv import compare

    twin, k, x = _twin_pair("tiny_resnet")
    fresh = twin.torch_cls().eval()
    manifest = transfer_weights(k, fresh)
    assert manifest.matched_by == "graph position"
    by_hand = twin.torch_for(k).state_dict()
    moved = fresh.state_dict()
    assert all(torch.equal(v, moved[n]) for n, v in by_hand.items() if not n.endswith("num_batches_tracked"))
    assert compare(k, fresh, x).ok
    plan = manifest.layer_plan()
    assert plan["b2_proj_conv"] == "layer2.downsample.0" and plan["b2_2_conv"] == "layer2.conv2"


def test_compare_alignment_uses_no_private_name_of_transfer():
    """align.py shares the weight-fit test and the layer context with transfer through their
    public names (``shapes_fit``, ``layer_context``), not by reaching into transfer's privates."""
    import ast
    import pathlib

    import xconv.comparison.align as align

    tree = ast.parse(pathlib.Path(align.__file__).read_text(encoding="utf-8"))
    private = [
        a.name for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("transfer")
        for a in node.names if a.name.startswith("_")
    ]  # fmt: skip
    assert not private, private


@needs_keras
def test_the_flatten_order_a_dense_reads_is_the_alignments_match_input_layout(monkeypatch):
    """transfer reads how a Linear takes its input from compare's alignment (Match.input_layout,
    on the one exported graph), not from a reading of its own: say FLAT there and the rows move
    in channels-first flatten order; say nothing and it refuses rather than guess."""
    import xconv.comparison.align as align
    from xconv.errors import MismatchedModelsError
    from xconv.layouts import LayoutKind

    real = align.align_graph

    def told(layout):
        def fake(*args, **kwargs):
            matches = real(*args, **kwargs)
            matches["dense"].input_layout = layout
            return matches

        return fake

    twin, k, _ = _twin_pair("same_padding")
    monkeypatch.setattr(align, "align_graph", told(LayoutKind.FLAT))
    fc = next(e for e in transfer_weights(k, twin.torch_cls().eval()).entries if e.target == "fc.weight")
    assert fc.transform.startswith("transpose + flatten order"), fc.transform
    monkeypatch.setattr(align, "align_graph", told(None))
    with pytest.raises(MismatchedModelsError, match="'dense'"):
        transfer_weights(k, twin.torch_cls().eval())
