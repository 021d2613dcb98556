"""``--import MODULE``: a user's registered custom Keras layers reach every file command."""

import subprocess
import sys
import textwrap

import numpy as np

from conftest import needs_keras
from xconv.cli.main import main

LAYER = textwrap.dedent(
    """
    import keras

    @keras.saving.register_keras_serializable(package="xconv_test_import")
    class Gain(keras.layers.Layer):
        def build(self, shape):
            self.g = self.add_weight(name="g", shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.g
    """
)


def _keras_file(tmp_path):
    (tmp_path / "gain_layers.py").write_text(LAYER)
    script = textwrap.dedent(
        """
        import sys, numpy as np, keras
        sys.path.insert(0, sys.argv[1])
        import gain_layers
        inp = keras.Input((5, 5, 2))
        x = keras.layers.Conv2D(3, 3, name="conv")(inp)
        model = keras.Model(inp, gain_layers.Gain(name="gain")(x))
        model.get_layer("gain").g.assign(np.array([2.0, 3.0, 4.0], "float32"))
        model.save(sys.argv[1] + "/m.keras")
        """
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, capture_output=True)
    return tmp_path / "m.keras"


@needs_keras
def test_import_registers_custom_layers_for_convert_both_ways(tmp_path, capsys):
    import torch

    src = _keras_file(tmp_path)
    layers = str(tmp_path / "gain_layers.py")
    assert main(["convert", str(src), str(tmp_path / "m.pt"), "--import", layers, "--quiet"]) == 0
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    np.testing.assert_array_equal(state["gain.g"].numpy().reshape(-1), [2.0, 3.0, 4.0])
    state["gain.g"] = state["gain.g"] * 10
    torch.save(state, tmp_path / "changed.pt")
    out = tmp_path / "back.keras"
    assert main(["convert", str(tmp_path / "changed.pt"), str(out), "--arch", str(src), "--import", layers, "--quiet"]) == 0
    import gain_layers  # imported by --import, with its folder on sys.path

    import keras

    back = keras.saving.load_model(out, safe_mode=True)
    np.testing.assert_array_equal(back.get_layer("gain").g.numpy(), [20.0, 30.0, 40.0])
    assert isinstance(back.get_layer("gain"), gain_layers.Gain)


def test_import_failures_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("raise RuntimeError('setup failed')\n")
    assert main(["inspect", "zoo:single_conv", "--import", str(tmp_path / "broken.py")]) == 2
    err = capsys.readouterr().err
    assert "broken.py" in err and "RuntimeError: setup failed" in err and "Traceback" not in err
    assert main(["inspect", "zoo:single_conv", "--import", "xconv_no_such_module_anywhere"]) == 2
    assert "xconv_no_such_module_anywhere" in capsys.readouterr().err
    assert main(["inspect", "zoo:single_conv", "--import", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
