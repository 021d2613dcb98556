"""A new user's first hour (issue 16): each finding has a test that failed before its fix."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import needs_keras
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
    code = (
        "import contextlib, io\nfrom xconv.cli.main import main\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n    assert main(['layers']) == main(['layers', '--markdown']) == 0  # cli.md: no TensorFlow either\n"
        "with contextlib.redirect_stdout(out):\n    assert main(['env']) == 0\n"
        "assert 'not installed' not in ''.join(l for l in out.getvalue().splitlines(True) if l.split()[0] in ('keras', 'tensorflow')), out.getvalue()"
    )
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
    fig = plot_feature_maps(model, torch.randn(1, 1, 12, 12).numpy(), max_rows=9)
    drawn = {ax.get_gid().split(":")[1] for ax in fig.findobj(lambda o: hasattr(o, "get_gid") and str(o.get_gid()).startswith("map:"))}
    convs = [str(i) for i in range(0, 24, 2)]
    assert "input" in drawn and 1 < len(drawn - {"input"}) < len(convs)
    left = [c for c in convs if c not in drawn]
    title = fig._suptitle.get_text().replace("\n", " ")
    assert all(f" {c}" in title or f"{c}," in title for c in left), title
    assert fig.get_size_inches()[1] <= 9 * 1.5 + 0.5  # 1.5 inches a row, headings counted, and the note


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


def test_filters_before_after_from_the_command_line(tmp_path, monkeypatch):
    import torch

    model = _convs(2, 4)
    torch.save(model.state_dict(), tmp_path / "before.pt")
    with torch.no_grad():
        model[2].weight[1, 3, 0, 2] += 0.5
    torch.save(model.state_dict(), tmp_path / "after.pt")
    out = tmp_path / "change.png"
    figs = _drawn(monkeypatch)
    assert main(["filters", str(tmp_path / "before.pt"), "--after", str(tmp_path / "after.pt"), "--layer", "2", "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert figs[0]._suptitle.get_text().startswith("'2': greatest change 0.5 at filter 1")  # the layer named, not 'kernel'
    assert main(["filters", str(tmp_path / "after.pt"), "--layer", "2", "-o", str(out)]) == 0
    assert figs[1]._suptitle.get_text().startswith("'2': 4 filters")
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
    assert main(["filters", "zoo:unet_encoder", "--layer", "conv1_1", "--max-rows", "0", "-o", str(tmp_path / "f.png")]) == 2
    assert main(["activations", "zoo:unet_encoder", "--max-rows", "0", "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert "maps.txt" in err and "does not exist" in err and err.count("--max-rows must be >= 1") == 2


def test_compare_of_two_models_and_onnx_refuse_bad_outputs_before_tensorflow_loads(tmp_path):
    """``compare A B`` checked its picture paths only after loading both models (13 s), ``onnx``
    its output folder only after building the model."""
    missing = str(tmp_path / "no" / "x")
    code = (
        "import sys\nfrom xconv.cli.main import main\n"
        f"codes = [main(a) for a in (['compare', 'zoo:two_conv', 'zoo:two_conv', '--plot', 'r.txt'], ['compare', 'zoo:two_conv', 'zoo:two_conv', '--plot', {missing + '.png'!r}],"
        f" ['compare', 'zoo:two_conv', 'zoo:two_conv', '--diff', 'conv2'], ['onnx', 'zoo:two_conv', '-o', {missing + '.onnx'!r}])]\n"
        "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.stdout.strip().splitlines()[-1] == "[2, 2, 2, 2] False False", proc.stderr[-2000:]
    assert "r.txt" in proc.stderr and proc.stderr.count("does not exist") == 2 and "--diff-plot" in proc.stderr


def test_filters_without_a_layer_lists_the_models_own_conv_layers(capsys):
    from xconv import zoo
    from xconv.errors import BadInputError
    from xconv.viz import kernel_of

    with pytest.raises(BadInputError) as exc:
        kernel_of(zoo.build("conv3d_demo", "torch"))
    assert "conv3d_a" in str(exc.value) and "conv1" not in str(exc.value).replace("conv1_", "")


TWO_SCREENS_PX = 2 * 1080


def _tall(fig) -> float:
    from xconv.viz import DPI

    return fig.get_size_inches()[1] * DPI


def test_no_kernel_picture_is_taller_than_two_screens_and_each_says_what_it_left_out():
    """The default row limits on big layers: a 512-filter layer (unet_encoder's conv5_2 drew 6457 px
    before the caps), a deep 3D kernel, a weight change. (Two input channels, not eight, keep the
    test quick: the rows are what is capped.)"""
    from xconv.viz import plot_filters, plot_weights_change

    rng = np.random.default_rng(0)
    big = rng.normal(size=(512, 2, 3, 3))
    pictures = {
        "2d": plot_filters(big, layout="torch"),
        "3d": plot_filters(rng.normal(size=(64, 16, 2, 3, 3)), layout="torch"),
        "change": plot_weights_change(big[:40, :1, 0], big[:40, :1, 0] + 1.0, layout="torch"),  # 1D: 32 rows before
    }
    for name, fig in pictures.items():
        assert _tall(fig) <= TWO_SCREENS_PX, name
        assert "not shown: filters" in fig._suptitle.get_text(), name
    assert "not shown: filters 20..511 (limits: 64 filters, 8 input channels, 20 rows of tiles" in pictures["2d"]._suptitle.get_text()


def test_feature_maps_of_deep_or_wide_models_stay_under_two_screens():
    from xconv.viz import plot_feature_maps

    deep = plot_feature_maps(_convs(12, 4), np.zeros((1, 1, 8, 8), np.float32))
    assert _tall(deep) <= TWO_SCREENS_PX and "not shown" in deep._suptitle.get_text()
    wide = plot_feature_maps(_convs(1, 256), np.zeros((1, 1, 8, 8), np.float32), max_channels=256)
    assert _tall(wide) <= TWO_SCREENS_PX
    assert any("first" in sf._suptitle.get_text() and "shown" in sf._suptitle.get_text() for sf in wide.subfigs)


def test_row_limits_are_the_cli_defaults_and_can_be_raised():
    import argparse

    from xconv import viz
    from xconv.cli import activations_cmd, filters_cmd

    for module, constant in ((filters_cmd, viz.MAX_TILE_ROWS), (activations_cmd, viz.MAX_MAP_ROWS)):
        p = argparse.ArgumentParser()
        module.add_arguments(p)
        assert p.parse_args(["src", "-o", "x.png"]).max_rows == constant
    w = np.ones((25, 1, 3))  # 1D: one row of line plots per filter
    tiles = lambda fig: [a for a in fig.axes if str(a.get_gid()).startswith("tile:")]  # noqa: E731
    assert len(tiles(viz.plot_filters(w, layout="torch"))) == 20
    assert len(tiles(viz.plot_filters(w, layout="torch", max_rows=25))) == 25


def _drawn(monkeypatch):
    """The figures the CLI draws, kept (the picture is still written)."""
    import xconv.viz as viz

    figs, finish = [], viz._finish

    def keep(fig, path):
        figs.append(fig)
        return finish(fig, path)

    monkeypatch.setattr(viz, "_finish", keep)
    return figs


def test_axis_reaches_the_3d_slices_on_the_command_line(tmp_path, monkeypatch):
    figs = _drawn(monkeypatch)
    w = np.random.default_rng(1).normal(size=(2, 1, 3, 4, 5)).astype(np.float32)  # torch layout
    np.save(tmp_path / "k.npy", w)
    np.save(tmp_path / "k2.npy", w + 1)
    base = ["filters", str(tmp_path / "k.npy"), "--layout", "torch", "-o", str(tmp_path / "s.png")]
    assert main([*base, "--axis", "3"]) == 0
    assert main([*base, "--axis", "2", "--after", str(tmp_path / "k2.npy")]) == 0
    tile = next(a for a in figs[0].axes if a.get_gid() == "tile:1:0:4")  # window axis 3 has 5 slices
    np.testing.assert_array_equal(tile.images[0].get_array(), w[1, 0, :, :, 4])
    change = [a for a in figs[1].axes if str(a.get_gid()).startswith("change:tile:0:0:")]
    assert len(change) == 4  # sliced along window axis 2 (4 long), not 1
    np.testing.assert_allclose(change[0].images[0].get_array(), np.ones((3, 5)))


# --- inspect --------------------------------------------------------------------------------


@needs_keras
def test_a_batchnorm_is_named_for_the_rank_of_its_input():
    import keras
    from keras import layers as L

    from xconv import describe

    inputs = keras.Input((8, 8, 3))
    x = L.BatchNormalization(name="bn_conv")(L.Conv2D(4, 3, name="conv")(inputs))
    x = L.BatchNormalization(name="bn_dense")(L.Dense(5, name="dense")(L.Flatten()(x)))
    volume = keras.Input((4, 4, 4, 2))
    rows = describe(keras.Model(inputs, x)) + describe(keras.Model(volume, L.BatchNormalization(name="bn_3d")(volume)))
    types = {r.layer: r.torch_type for r in rows}
    assert (types["bn_conv"], types["bn_dense"], types["bn_3d"]) == ("BatchNorm2d", "BatchNorm1d", "BatchNorm3d")


def test_inspect_layer_shows_that_layer_only(tmp_path, capsys):
    import json

    import torch

    assert main(["inspect", "zoo:unet_encoder", "--layer", "conv5_2"]) == 0
    out = capsys.readouterr().out
    assert "Total parameters: 2,359,808 (1 layer with weights)" in out and "conv4_2" not in out
    assert main(["inspect", "zoo:unet_encoder", "--layer", "conv5_2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {t["layer"] for t in data["tensors"]} == {"conv5_2"} and data["total_params"] == 3 * 3 * 512 * 512 + 512
    torch.save({"conv.weight": torch.ones(2, 1, 3, 3), "conv.bias": torch.ones(2), "head.weight": torch.ones(3, 2)}, tmp_path / "w.pt")
    assert main(["inspect", str(tmp_path / "w.pt"), "--layer", "conv"]) == 0
    out = capsys.readouterr().out
    assert "conv.weight" in out and "conv.bias" in out and "head" not in out
    assert main(["inspect", "zoo:unet_encoder", "--layer", "conv9"]) == 2
    err = capsys.readouterr().err
    assert "No layer 'conv9' in 'zoo:unet_encoder'" in err and "conv5_2" in err


def test_inspect_a_bare_zoo_name_says_how_to_write_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "two_conv"]) == 2
    assert "write zoo:two_conv" in capsys.readouterr().err


# what ``pip install -e .`` leaves out (numpy and torch are its dependencies): every extra's modules
OPTIONAL = ("safetensors", "tensorflow", "keras", "h5py", "onnx", "onnxruntime", "tf2onnx", "onnxscript", "matplotlib", "tqdm", "ml_dtypes")


def test_inspect_and_diff_read_safetensors_on_a_minimal_install(tmp_path):
    """A minimal install (no extra: no safetensors, TensorFlow, matplotlib ...) still reads the
    files ``convert`` writes, and inspects a zoo model."""
    import torch

    torch.save({"conv.weight": torch.arange(18.0).reshape(2, 1, 3, 3)}, tmp_path / "w.pt")
    assert main(["convert", str(tmp_path / "w.pt"), str(tmp_path / "w.safetensors"), "--quiet"]) == 0
    code = (
        f"import sys\nfor m in {OPTIONAL!r}: sys.modules[m] = None  # importing any of them now fails\nfrom xconv.cli.main import main\n"
        f"codes = [main(['inspect', {str(tmp_path / 'w.safetensors')!r}]), main(['diff', {str(tmp_path / 'w.safetensors')!r}, {str(tmp_path / 'w.pt')!r}]),"
        " main(['inspect', 'zoo:two_conv', '--layer', 'conv2'])]\n"
        "print('codes', codes)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "codes [0, 0, 0]" in proc.stdout, proc.stderr[-2000:]
    assert "(2, 1, 3, 3)" in proc.stdout and "(6, 4, 3, 3)" in proc.stdout and "Traceback" not in proc.stderr


def test_layer_headings_fit_in_the_picture():
    """conv3d_demo's long headings ("each of its 4 filters spans all 2 input maps ...") used to run
    off both edges of its narrow picture; they are wrapped to the figure's width."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from xconv import zoo
    from xconv.viz import plot_feature_maps

    fig = plot_feature_maps(zoo.build("conv3d_demo", "torch"), zoo.sample_input("conv3d_demo", layout="torch"))
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    width = fig.bbox.width
    headings = [sf._suptitle for sf in fig.subfigs]
    assert any("spans all" in h.get_text() for h in headings)
    for h in headings:
        box = h.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width, h.get_text()


# --- the map of the code ----------------------------------------------------------------------


def test_architecture_describes_every_package_and_names_only_files_that_exist():
    """docs/architecture.md is a newcomer's map: each package of xconv/ has its line in the
    layer listing, each top-level module is named there, and every ``name.py`` it names exists."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    text = (root / "docs" / "architecture.md").read_text()
    listing = text.split("```")[1]
    xconv_dir = root / "xconv"
    packages = sorted(p.name for p in xconv_dir.iterdir() if (p / "__init__.py").exists())
    assert [p for p in packages if not re.search(rf"^{p}/\s", listing, re.M)] == []
    modules = sorted(p.name for p in xconv_dir.glob("*.py") if p.name != "__init__.py")
    assert [m for m in modules if not re.search(rf"(^|\W){re.escape(m)}\b", listing, re.M)] == []
    files = {p.name for p in xconv_dir.rglob("*.py")} | {p.name for p in (root / "tests").glob("*.py")}
    named = set(re.findall(r"(?<![\w<>*])([a-z_][a-z_0-9]*\.py)\b", text))
    assert sorted(named - files) == []


def test_a_converters_family_is_its_file_and_the_table_names_its_weight_family():
    """The two registries' words agree: ``converter(family=...)`` is the file the converter lives
    in (in both directions), and ``xconv layers`` names the weight family apart from it."""
    import inspect
    import pathlib

    from xconv.cli.layers_cmd import table
    from xconv.translate import converters as keras_to_torch
    from xconv.translate.torch_to_keras import converters as torch_to_keras
    from xconv.weights import family_for_keras

    for registry, folder in ((keras_to_torch, "layers"), (torch_to_keras, "torch_to_keras")):
        for key, c in registry.supported().items():
            source = pathlib.Path(inspect.getsourcefile(c.fn))
            assert (source.parent.name, source.stem) == (folder, c.family), key
    rows = {r["keras"]: r for r in table()}
    assert (rows["BatchNormalization"]["family"], rows["BatchNormalization"]["weight_family"]) == ("norm", "batchnorm")
    assert rows["ReLU"]["weight_family"] is None
    for keras_type, row in rows.items():
        if row["weight_family"] is not None:
            assert row["weight_family"] == family_for_keras(keras_type).name


def test_each_command_lives_in_its_own_cmd_module():
    """``xconv X`` is ``xconv/cli/X_cmd.py``, and the folder holds nothing else but the entry point
    and the shared source reader (``cli/convert.py`` sat next to ``*_cmd.py`` before)."""
    import pathlib

    from xconv.cli.main import COMMANDS

    assert {c: m for c, (m, _) in COMMANDS.items()} == {c: f"xconv.cli.{c.replace('-', '_')}_cmd" for c in COMMANDS}
    folder = pathlib.Path(__file__).resolve().parents[1] / "xconv" / "cli"
    files = {p.name for p in folder.glob("*.py")}
    assert files == {"__init__.py", "main.py", "_sources.py"} | {f"{c.replace('-', '_')}_cmd.py" for c in COMMANDS}


@needs_keras
@pytest.mark.parametrize("torch_type", ["Conv2d", "BatchNorm2d", "Linear"])
def test_pytorch_to_keras_maps_weights_through_the_weight_families(monkeypatch, torch_type):
    """One weight map per layer type, the other direction too: the Keras layer's arrays are what
    the family's ``to_keras`` gives (test_translate shows it for Keras -> PyTorch)."""
    import dataclasses

    import torch

    from xconv import torch_to_keras, weights

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Flatten(), torch.nn.Linear(12, 4)).eval()
    with torch.no_grad():
        module[1].running_mean.normal_()
        module[1].running_var.uniform_(0.5, 2.0)
    family = weights.family_for_torch(torch_type)
    name = {"Conv2d": "0", "BatchNorm2d": "1", "Linear": "3"}[torch_type]
    plain = [w.copy() for w in torch_to_keras(module, (2, 4, 4)).get_layer(name).get_weights()]
    seen = []

    def marked(arrays, ctx):  # the family's own map, then every array negated: visible in the layer
        seen.append(ctx.name)
        return {k: -v for k, v in family.to_keras(arrays, ctx).items()}

    monkeypatch.setitem(weights._BY_TORCH, torch_type, dataclasses.replace(family, to_keras=marked))
    got = torch_to_keras(module, (2, 4, 4)).get_layer(name).get_weights()
    assert seen, f"the {torch_type} converter did not use its weight family"
    assert len(got) == len(plain) > 0 and all(np.array_equal(g, -p) for g, p in zip(got, plain))


@pytest.mark.parametrize(
    "argv",
    [
        ["filters", "two_conv", "--layer", "conv1", "-o", "f.png"],
        ["filters", "zoo:two_conv", "--after", "two_conv", "--layer", "conv1", "-o", "f.png"],
        ["activations", "two_conv", "-o", "m.png"],
        ["inspect", "two_conv"],
        ["diff", "zoo:two_conv", "two_conv"],
        ["onnx", "two_conv", "-o", "m.onnx"],
        ["lint", "two_conv"],
        ["lint", "zoo:two_conv", "two_conv"],
        ["train-check", "two_conv", "zoo:two_conv", "--loss", "mse", "--optimizer", "sgd"],
        ["compare", "two_conv"],
        ["convert", "two_conv", "x.pt"],
        ["convert", "w.pt", "o.keras", "--arch", "two_conv"],
    ],
    ids=lambda argv: "-".join(argv[:2]) + ("-arch" if "--arch" in argv else ""),
)
def test_every_command_says_how_to_write_a_bare_zoo_name(argv, tmp_path, monkeypatch, capsys):
    """``two_conv`` where ``zoo:two_conv`` was meant: one answer from every command (filters and
    onnx called it an unknown file type, lint took it for a Keras file), before anything is read."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "write zoo:two_conv" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_weight_file_is_named_once(tmp_path, monkeypatch, capsys):
    """'No such file: 'x' does not exist.' said it twice over: the message names the file once."""
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", "missing.safetensors"]) == 2
    err = capsys.readouterr().err
    assert "No such file: 'missing.safetensors'" in err and "does not exist" not in err


def test_feature_map_tiles_line_up_across_layers():
    """Every layer's maps (the input's too) sit on one column grid: one tile size, the input at
    the left like the layers' first maps (a lone input tile was stretched to the right edge)."""
    import torch
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from xconv.viz import plot_feature_maps

    fig = plot_feature_maps(_convs(2, 4), torch.rand(1, 1, 10, 10).numpy())
    FigureCanvasAgg(fig).draw()
    boxes = {str(a.get_gid()): a.get_window_extent() for a in fig.findobj(lambda o: str(getattr(o, "get_gid", lambda: "")()).startswith("map:"))}
    assert {"map:input:0", "map:0:0", "map:2:0"} <= set(boxes)
    widths = {round(b.width) for b in boxes.values()}
    assert max(widths) <= 1.05 * min(widths), widths  # the colour bars' labels differ a little in width
    assert abs(boxes["map:input:0"].x0 - boxes["map:0:0"].x0) <= 2
    vector = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 5)).eval()
    fig = plot_feature_maps(vector, torch.rand(1, 1, 10, 10).numpy(), ["0", "2"])
    assert [sf._suptitle.get_text() for sf in fig.subfigs][-1] == "2: 5 values"  # was "2: 1 maps of "
    empty = [a for a in fig.axes if a.axison and not a.images and not a.lines and not hasattr(a, "_colorbar")]
    assert empty == []  # no empty frames beside the line plot
