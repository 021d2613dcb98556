"""compare() on a ConvNeXt port that left out a block's LayerScale (``x * gamma``): the Keras
LayerScale has no weight layout xconv knows, so it aligns with the multiply by a parameter of its
weight's shape that reads its input right away. A multiply further on (the next block's gamma) is
not its own: the first divergence is the LayerScale that is missing, in both modes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import needs_keras

pytestmark = needs_keras
twins = pytest.importorskip("corpus.twins")


def _left_out():
    twin = twins.TWINS["convnext_block"]
    keras_model = twin.build_keras()
    port = twin.torch_for(keras_model)
    port.stages[0].gamma = None  # the port forgot blk0's layer scale (forward skips it)
    x = np.random.default_rng(5).normal(size=twin.input_shape).astype("float32")
    return keras_model, port, x


@pytest.mark.parametrize("mode", ["accumulated", "local"])
def test_a_left_out_layer_scale_is_named_where_it_is_missing(mode):
    from xconv import compare

    k, t, x = _left_out()
    report = compare(k, t, x, mode=mode)
    assert not report.ok
    assert report.first_divergence == "blk0_ls", str(report)
    if mode == "local":
        assert report.first_local_divergence == "blk0_ls", str(report)
    # the next block's LayerScale is still its own gamma's multiply, and fed Keras' input it matches
    assert report["blk1_ls"].local_ok in (None, True), str(report)
    assert "blk0_ls" not in dict(report.skipped), str(report)
