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
