"""A Keras model with integer weights (an adapted Normalization's int64 count, as every
keras.applications EfficientNet has) reads back from .weights.h5 with --arch."""

import numpy as np

from conftest import needs_keras
from xconv.cli.main import main


@needs_keras
def test_diff_and_convert_with_a_normalization_count(tmp_path, capsys):
    import keras

    inp = keras.Input((6, 6, 3))
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).standard_normal((8, 6, 6, 3)).astype("float32"))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, name="conv")(norm(inp)))
    assert any(not str(w.dtype).startswith("float") for w in model.weights)  # the case: an int64 count
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    m, w = str(tmp_path / "m.keras"), str(tmp_path / "m.weights.h5")
    assert main(["diff", m, w]) == 0
    assert "equal" in capsys.readouterr().out
    assert main(["convert", w, str(tmp_path / "m.pt"), "--arch", m]) == 0
    # a wrong architecture is still refused
    other = keras.Model(inp, keras.layers.Conv2D(5, 3, name="conv")(norm(inp)))
    other.save(tmp_path / "o.keras")
    assert main(["diff", str(tmp_path / "o.keras"), w]) == 2
