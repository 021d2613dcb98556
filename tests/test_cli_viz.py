"""The picture commands as a user runs them: files appear only on success, errors exit 2."""

import numpy as np
import pytest

from conftest import needs_keras
from xconv.cli.main import main

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    return path.exists() and path.read_bytes()[:8] == PNG


@needs_keras
def test_filters_activations_and_compare_plots(tmp_path, capsys):
    assert main(["filters", "zoo:single_conv", "--layer", "conv_1", "-o", str(tmp_path / "f.png")]) == 0
    assert is_png(tmp_path / "f.png")
    assert main(["activations", "zoo:two_conv", "-o", str(tmp_path / "a.pdf")]) == 0
    assert (tmp_path / "a.pdf").read_bytes()[:4] == b"%PDF"
    assert main(["compare", "zoo:two_conv", "--plot", str(tmp_path / "r.png"), "--diff", "conv2", "--diff-plot", str(tmp_path / "d.png")]) == 0
    assert is_png(tmp_path / "r.png") and is_png(tmp_path / "d.png")


def test_filters_from_a_state_dict_and_a_npy_kernel(tmp_path):
    import torch

    from xconv import zoo

    torch.save(zoo.build("two_conv", "torch").state_dict(), tmp_path / "w.pt")
    assert main(["filters", str(tmp_path / "w.pt"), "--layer", "conv2", "-o", str(tmp_path / "f.png")]) == 0
    assert is_png(tmp_path / "f.png")
    np.save(tmp_path / "k.npy", np.random.default_rng(0).normal(size=(3, 3, 3, 2, 4)))
    assert main(["filters", str(tmp_path / "k.npy"), "--layout", "keras", "-o", str(tmp_path / "k.svg")]) == 0
    assert main(["filters", str(tmp_path / "k.npy"), "-o", str(tmp_path / "k2.svg")]) == 2
    assert not (tmp_path / "k2.svg").exists()


@needs_keras
def test_image_input_is_read_converted_and_resized_only_when_asked(tmp_path, capsys):
    from PIL import Image

    rgb = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    out = tmp_path / "maps.png"
    assert main(["activations", "zoo:two_conv", "--input", str(tmp_path / "in.png"), "-o", str(out)]) == 2
    assert "pass --resize" in capsys.readouterr().err and not out.exists()
    assert main(["activations", "zoo:two_conv", "--input", str(tmp_path / "in.png"), "--resize", "-o", str(out)]) == 0
    assert is_png(out)
    from xconv.cli._sources import read_input
    from xconv import zoo

    Image.fromarray(rgb[:25, :25]).save(tmp_path / "small.png")
    x = read_input(str(tmp_path / "small.png"), zoo.build("two_conv", "keras"))
    assert x.shape == (1, 25, 25, 1)  # RGB to grey for a one-channel model
    grey = np.asarray(Image.fromarray(rgb[:25, :25]).convert("L"), np.float32) / 255
    np.testing.assert_allclose(x[0, :, :, 0], grey)


@pytest.mark.parametrize(
    "args, message",
    [
        (["filters", "zoo:single_conv", "--layer", "nope"], "No layer named 'nope'"),
        (["filters", "zoo:unet_encoder", "--layer", "pool1"], "no conv kernel"),
        (["activations", "zoo:two_conv", "--layer", "conv9"], "No layer ['conv9']"),
        (["filters", "zoo:two_conv", "--layer", "conv1", "--max-filters", "0"], "--max-filters, --max-channels and --max-rows must be >= 1"),
    ],
)
def test_bad_picture_requests_exit_two_and_write_nothing(args, message, tmp_path, capsys):
    pytest.importorskip("keras")
    out = tmp_path / "x.png"
    assert main([*args, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
