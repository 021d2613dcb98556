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
