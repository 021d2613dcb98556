"""A new user's first hour (issue 16): each finding has a test that failed before its fix."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xconv.cli.main import main


def _loaded_after(code: str, mods=("tensorflow", "keras", "onnx", "matplotlib")) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {tuple(mods)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_version_flag(capsys):
    import xconv

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"xconv {xconv.__version__}"


def test_env_imports_no_framework_but_reports_them():
    code = "from xconv.cli.env_cmd import versions\nv = versions()\nassert v['keras'] != 'not installed' and v['tensorflow'] != 'not installed', v"
    assert _loaded_after(code) == set()


@pytest.mark.parametrize("name", ["testing", "onnx", "capture"])
def test_submodules_reachable_after_import_xconv(name):
    code = f"import xconv\nassert xconv.{name}.__name__ == 'xconv.{name}'"
    assert _loaded_after(code) == set()


# --- pictures -------------------------------------------------------------------------------

mpl = pytest.importorskip("matplotlib")


def _convs(n_layers=12, ch=16):
    import torch

    torch.manual_seed(0)
    layers = []
    for _ in range(n_layers):
        layers += [torch.nn.Conv2d(ch if layers else 1, ch, 3, padding=1), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers).eval()


def test_feature_maps_are_capped_and_name_what_they_leave_out():
    import torch

    from xconv.viz import plot_feature_maps

    model = _convs()
    fig = plot_feature_maps(model, torch.randn(1, 1, 12, 12).numpy(), max_rows=6)
    drawn = {ax.get_gid().split(":")[1] for ax in fig.findobj(lambda o: hasattr(o, "get_gid") and str(o.get_gid()).startswith("map:"))}
    convs = [str(i) for i in range(0, 24, 2)]
    assert "input" in drawn and 1 < len(drawn - {"input"}) < len(convs)
    left = [c for c in convs if c not in drawn]
    title = fig._suptitle.get_text().replace("\n", " ")
    assert all(f" {c}" in title or f"{c}," in title for c in left), title
    assert fig.get_size_inches()[1] <= 6 * 1.5 + 1.0 * 7 + 0.5


def test_dead_relu_maps_look_like_zero_and_every_layer_has_a_colour_scale():
    import torch

    from xconv.viz import map_scale, plot_feature_maps

    model = _convs(2, 4)
    with torch.no_grad():
        model[0].bias[1] = -100.0  # channel 1 of the first conv: dead after its ReLU
    x = torch.rand(1, 1, 10, 10).numpy()
    fig = plot_feature_maps(model, x, ["1"])
    ax = next(a for a in fig.findobj(lambda o: getattr(o, "get_gid", lambda: None)() == "map:1:1"))
    image = ax.images[0]
    assert image.get_array().max() == 0 and image.get_clim()[0] == 0  # 0 sits at the dark end
    assert image.get_cmap()(image.norm(0.0)) == mpl.colormaps["viridis"](0.0)
    assert "(all 0)" in ax.get_title()
    labels = [a.get_ylabel() for a in fig.findobj(lambda o: hasattr(o, "get_ylabel"))]
    assert "activation" in labels
    assert map_scale(np.zeros((2, 3, 3)))[0] == (0.0, 1.0)
    assert map_scale(np.array([-2.0, 1.0])) == ((-2.0, 2.0), "RdBu_r")


def test_3d_slices_follow_the_axis_asked_for():
    from xconv.viz import plot_filters

    w = np.random.default_rng(0).normal(size=(2, 1, 3, 4, 5))  # torch layout: window 3x4x5
    for axis in (0, 1, 2):
        fig = plot_filters(w, layout="torch", slice_axis=axis)
        tile = next(a for a in fig.axes if a.get_gid() == "tile:1:0:2")
        np.testing.assert_array_equal(tile.images[0].get_array(), np.take(w[1, 0], 2, axis=axis))
        assert tile.get_title() == f"f1 in0 k{axis + 1}=2"
    with pytest.raises(Exception, match="slice_axis"):
        plot_filters(w, layout="torch", slice_axis=3)


def test_filters_before_after_from_the_command_line(tmp_path):
    import torch

    model = _convs(2, 4)
    torch.save(model.state_dict(), tmp_path / "before.pt")
    with torch.no_grad():
        model[2].weight[1, 3, 0, 2] += 0.5
    torch.save(model.state_dict(), tmp_path / "after.pt")
    out = tmp_path / "change.png"
    assert main(["filters", str(tmp_path / "before.pt"), "--after", str(tmp_path / "after.pt"), "--layer", "2", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    from xconv.viz import plot_weights_change

    fig = plot_weights_change(torch.load(tmp_path / "before.pt")["2.weight"].numpy(), torch.load(tmp_path / "after.pt")["2.weight"].numpy(), layout="torch")
    assert "filter 1, input channel 3, window offset (0, 2)" in fig._suptitle.get_text()
    labels = [a.get_ylabel() for a in fig.findobj(lambda o: hasattr(o, "get_ylabel"))]
    assert any("after - before" in l for l in labels)


def test_picture_arguments_are_checked_before_any_model_is_built(tmp_path, monkeypatch, capsys):
    from xconv.cli import _sources

    def never(*_a, **_k):
        raise AssertionError("the model was built before the arguments were checked")

    monkeypatch.setattr(_sources, "load_model", never)
    monkeypatch.setattr(_sources, "kernel_source", never)
    assert main(["activations", "zoo:unet_encoder", "-o", str(tmp_path / "maps.txt")]) == 2
    assert main(["filters", "zoo:unet_encoder", "--layer", "conv1_1", "-o", str(tmp_path / "no" / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "maps.txt" in err and "does not exist" in err


def test_filters_without_a_layer_lists_the_models_own_conv_layers(capsys):
    from xconv import zoo
    from xconv.errors import BadInputError
    from xconv.viz import kernel_of

    with pytest.raises(BadInputError) as exc:
        kernel_of(zoo.build("conv3d_demo", "torch"))
    assert "conv3d_a" in str(exc.value) and "conv1" not in str(exc.value).replace("conv1_", "")
