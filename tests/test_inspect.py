"""describe(): the same tensors, shapes and meanings whether read from Keras or from PyTorch."""

import pytest

from conftest import needs_keras
from xconv import describe, zoo


@needs_keras
@pytest.mark.parametrize("name", zoo.names())
def test_keras_and_torch_descriptions_agree(name):
    from_keras = describe(zoo.build(name, "keras"))
    from_torch = describe(zoo.build(name, "torch"))
    strip = lambda rows: [(r.layer, r.keras_type, r.torch_type, r.keras_name, r.torch_name, r.keras_shape, r.torch_shape, r.keras_axes, r.torch_axes, r.params) for r in rows]  # noqa: E731
    assert strip(from_keras) == strip(from_torch)
    assert sum(r.params for r in from_keras) == zoo.spec(name).params


def test_flatten_dense_is_explained():
    dense = next(r for r in describe(zoo.build("conv3d_demo", "torch")) if r.layer == "dense_a" and r.keras_name == "kernel")
    assert dense.keras_axes == "6272 inputs (flattened (56, 56, 1, 2), channels-last) x 100 units"
    assert dense.torch_axes == "100 units x 6272 inputs (flattened (2, 56, 56, 1), channels-first)"


@needs_keras
def test_a_model_with_unsupported_layers_shows_what_it_can():
    import keras
    from keras import layers as L

    from xconv.weight_axes import format_table

    inputs = keras.Input((3, 6, 6, 2))
    x = L.ConvLSTM2D(3, 3, name="clstm")(inputs)  # no weight family
    x = L.Conv2D(4, 3, name="conv")(x)
    model = keras.Model(inputs, x)
    rows = describe(model)
    conv = [r for r in rows if r.layer == "conv"]
    assert [(r.keras_name, r.torch_name, r.torch_shape) for r in conv] == [("kernel", "weight", (4, 3, 3, 3)), ("bias", "bias", (4,))]
    marked = [r for r in rows if r.layer == "clstm"]
    assert marked and all(r.torch_type == "(not converted)" and "ConvLSTM2D" in r.torch_axes for r in marked)
    assert sum(r.params for r in rows) == model.count_params()
    assert "(not converted)" in format_table(rows)


@needs_keras
def test_sequence_and_attention_layers_are_described():
    import keras
    from keras import layers as L

    inputs = keras.Input((5, 4))
    x = L.MultiHeadAttention(2, 3, name="attn")(inputs, inputs)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(x)
    model = keras.Model(inputs, L.GRU(2, name="gru")(x))
    rows = describe(model)
    assert sum(r.params for r in rows) == model.count_params()
    by = {(r.layer, r.keras_name): r for r in rows}
    assert by["attn", "query/kernel"].torch_name == "in_proj_weight" and by["attn", "query/kernel"].torch_shape == (9, 4) or by["attn", "query/kernel"].torch_name == "q_proj_weight"
    assert by["bi", "backward/kernel"].torch_name == "weight_ih_l0_reverse"
    assert by["gru", "kernel"].torch_shape == (6, 6)
