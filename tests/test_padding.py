"""TF 'same' padding as explicit pairs: properties, and the real TensorFlow as the oracle."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from conftest import needs_keras
from xconv import padding
from xconv.errors import LayoutError


@given(st.integers(1, 300), st.integers(1, 9), st.integers(1, 5), st.integers(1, 3))
def test_same_padding_gives_ceil_output_and_puts_the_extra_after(n, k, s, d):
    before, after = padding.same_padding(n, k, s, d)
    assert 0 <= before <= after <= before + 1
    out = (n + before + after - (k - 1) * d - 1) // s + 1
    assert out == math.ceil(n / s)
    assert padding.conv_output_size(n, k, s, d, "same") == math.ceil(n / s)


def test_reference_model_cases():
    assert padding.same_padding(25, 4) == (1, 2)  # conv4_2
    assert padding.same_padding(224, 3, 4) == (0, 0)  # conv3d_a spatial
    assert padding.same_padding(3, 3, 4) == (0, 0)  # conv3d_a colour axis
    assert padding.same_pads((25, 25), 4) == ((1, 2), (1, 2))
    assert padding.torch_pad_arg(((1, 2), (3, 4))) == (3, 4, 1, 2)
    assert padding.causal_padding(3, 2) == (4, 0)
    assert padding.conv_output_size(25, 2, 2) == 12  # pool4 floors


def test_bad_arguments():
    with pytest.raises(LayoutError, match="positive"):
        padding.same_padding(0, 3)
    with pytest.raises(LayoutError, match="2 items"):
        padding.same_pads((5, 5, 5), (3, 3))


@needs_keras
@pytest.mark.parametrize("n, k, s, d", [(25, 4, 1, 1), (224, 3, 4, 1), (7, 2, 2, 1), (10, 5, 3, 1), (9, 3, 1, 2), (8, 4, 3, 1)])
def test_explicit_pads_match_tensorflow_same(n, k, s, d):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, n, n, 2))
    w = rng.standard_normal((k, k, 2, 3))
    if d > 1:
        want = tf.nn.conv2d(x, w, strides=1, padding="SAME", dilations=d).numpy()
    else:
        want = tf.nn.conv2d(x, w, strides=s, padding="SAME").numpy()
        d = 1
    pads = padding.same_pads((n, n), k, s if d == 1 else 1, d)
    xt = F.pad(torch.from_numpy(np.moveaxis(x, -1, 1).copy()), padding.torch_pad_arg(pads))
    wt = torch.from_numpy(np.transpose(w, (3, 2, 0, 1)).copy())
    got = F.conv2d(xt, wt, stride=s if d == 1 else 1, dilation=d).numpy()
    np.testing.assert_allclose(np.moveaxis(got, 1, -1), want, rtol=1e-10, atol=1e-10)


# --- each piece of padding math once: the inverse of torch_pad_arg, Keras' pad arguments, as_tuple


_pairs = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=3).map(tuple)


@given(_pairs, st.integers(0, 2))
def test_pairs_from_torch_pad_inverts_torch_pad_arg_and_matches_f_pad(pairs, extra):
    pad = padding.torch_pad_arg(pairs)
    assert padding.pairs_from_torch_pad(pad) == pairs
    rank = len(pairs) + extra
    full = padding.pairs_from_torch_pad(pad, rank)
    assert full == ((0, 0),) * extra + pairs
    shape = tuple(range(2, 2 + rank))
    got = F.pad(torch.zeros(shape), pad).shape  # torch itself says which axis each pair pads
    assert tuple(got) == tuple(n + a + b for n, (a, b) in zip(shape, full))


def test_pairs_from_torch_pad_refuses_what_is_not_a_pad_list():
    with pytest.raises(LayoutError, match="odd length 3"):
        padding.pairs_from_torch_pad((1, 2, 3))
    with pytest.raises(LayoutError, match="pads 2 axes; the tensor has 1"):
        padding.pairs_from_torch_pad((1, 2, 3, 4), rank=1)


@given(st.integers(1, 3), st.data())
def test_as_tuple_broadcasts_one_item_only_when_asked(rank, data):
    v = data.draw(st.integers(1, 9))
    assert padding.as_tuple(v, rank) == (v,) * rank
    assert padding.as_tuple([v], rank, broadcast=True) == (v,) * rank
    assert padding.as_tuple(np.int64(v), rank) == (v,) * rank
    if rank > 1:
        with pytest.raises(LayoutError, match=f"stride \\({v},\\) has 1 items; a rank-{rank} layer needs {rank}"):
            padding.as_tuple([v], rank, "stride")
    with pytest.raises(LayoutError, match="needs"):
        padding.as_tuple([v] * (rank + 1), rank, broadcast=True)


@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 4), st.integers(1, 3), st.integers(0, 6))
def test_is_same_says_when_symmetric_pads_are_tfs_same(n, k, s, d, p):
    same = padding.is_same((n,), k, s, d, (p,))
    assert same == (padding.same_padding(n, k, s, d) == (p, p))
    if s == 1:  # the stride-1 rule the torch_to_keras conv used before: 2p == (k - 1) d
        assert same == (2 * p == (k - 1) * d)
    if same:  # then torch's output length is TF's ceil(n / s)
        assert (n + 2 * p - (k - 1) * d - 1) // s + 1 == math.ceil(n / s)


@needs_keras
@pytest.mark.parametrize("rank, arg", [(1, 2), (1, (1, 2)), (2, 1), (2, (1, 2)), (2, ((0, 1), (2, 3))), (3, (1, 0, 2)), (3, ((1, 0), (0, 2), (1, 1)))])
def test_keras_pairs_are_what_zero_padding_layers_pad(rank, arg):
    import keras

    cls = {1: keras.layers.ZeroPadding1D, 2: keras.layers.ZeroPadding2D, 3: keras.layers.ZeroPadding3D}[rank]
    x = np.random.default_rng(0).normal(size=(1, *range(3, 3 + rank), 2)).astype("float32")
    want = np.asarray(cls(arg)(x))
    pairs = padding.keras_pairs(arg, rank)
    assert len(pairs) == rank
    np.testing.assert_array_equal(np.pad(x, ((0, 0), *pairs, (0, 0))), want)
    # linting reads the layer's stored argument, which Keras keeps in its own normalised form
    assert padding.keras_pairs(cls(arg).padding, rank) == pairs


def test_keras_pairs_refuses_a_wrong_length():
    with pytest.raises(LayoutError, match="has 3 items; a rank-2 layer needs 2"):
        padding.keras_pairs((1, 2, 3), 2)


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3)), min_size=1, max_size=3))
def test_generated_samepad_is_padding_same_pads(axes):
    """The one other copy of the 'same' formula: SamePad in the generated files' preamble."""
    from xconv.translate import preamble

    ns: dict = {}
    exec(preamble.source(["SamePad"]).replace("import torch\n", "import torch\nfrom torch import nn\n"), ns)
    spatial, k, s, d = (tuple(a[i] for a in axes) for i in range(4))
    x = torch.zeros((1, 1, *spatial))
    got = ns["SamePad"](k, s, d)(x).shape[2:]
    pads = padding.same_pads(spatial, k, s, d)
    assert tuple(got) == tuple(n + a + b for n, (a, b) in zip(spatial, pads))


@needs_keras
def test_lint_reads_a_zero_padding1d_before_a_conv_as_before_and_after():
    """ZeroPadding1D((1, 2)) pads 1 before and 2 after: a port that does the same is clean."""
    import keras

    import xconv

    inputs = keras.Input((10, 2))
    y = keras.layers.Conv1D(3, 4, name="conv")(keras.layers.ZeroPadding1D((1, 2), name="conv_pad")(inputs))
    model = keras.Model(inputs, y)
    port = torch.nn.Sequential()
    port.add_module("conv_pad", torch.nn.ConstantPad1d((1, 2), 0.0))
    port.add_module("conv", torch.nn.Conv1d(2, 3, 4))
    assert [f for f in xconv.lint(model, port) if "padding" in f.trap] == []
    wrong = torch.nn.Sequential()
    wrong.add_module("conv_pad", torch.nn.ConstantPad1d((2, 1), 0.0))
    wrong.add_module("conv", torch.nn.Conv1d(2, 3, 4))
    assert any("padding" in f.trap and f.keras_layer == "conv" for f in xconv.lint(model, wrong))
