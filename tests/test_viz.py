"""The pictures themselves: tile counts and geometry, values in the right tile, differences in the right place."""

import copy
import os

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv import compare, layouts, viz, zoo
from xconv.errors import BadInputError

pytest.importorskip("matplotlib")


def tiles(fig, prefix="tile:"):
    return {ax.get_gid(): ax for ax in fig.axes if (ax.get_gid() or "").startswith(prefix)}


def image(ax):
    return np.asarray(ax.images[0].get_array())


def test_known_filter_lands_in_its_tile_with_its_values():
    rng = np.random.default_rng(0)
    kernel = rng.uniform(-1, 1, (3, 3, 2, 4))  # Keras (kh, kw, in, out)
    pattern = np.array([[0.0, 0.5, 1.0], [0.25, -0.75, 0.0], [1.5, 0.0, -2.0]])
    kernel[:, :, 1, 3] = pattern  # filter 3, input channel 1, kernel[y, x, in, out]
    fig = viz.plot_filters(kernel, layout="keras", normalize="global")
    t = tiles(fig)
    assert len(t) == 4 * 2  # one tile per (filter, input channel)
    np.testing.assert_array_equal(image(t["tile:3:1"]), pattern)  # rows are y, columns x
    assert t["tile:3:1"].images[0].get_clim() == (kernel.min(), kernel.max())
    assert t["tile:0:1"].get_title() == "in 1" and t["tile:2:0"].get_ylabel() == "f2"
    # the torch layout of the same kernel draws the same picture
    again = tiles(viz.plot_filters(layouts.conv_kernel_to_torch(kernel), layout="torch", normalize="global"))
    np.testing.assert_array_equal(image(again["tile:3:1"]), pattern)


def test_symmetric_default_for_signed_weights_and_per_filter_mode():
    kernel = np.random.default_rng(1).normal(size=(2, 4, 5, 5))  # torch layout
    fig = viz.plot_filters(kernel, layout="torch")
    lo, hi = tiles(fig)["tile:0:0"].images[0].get_clim()
    assert lo == -hi == -np.abs(kernel).max()
    assert tiles(fig)["tile:0:0"].images[0].get_cmap().name == "RdBu_r"
    assert len([ax for ax in fig.axes if ax.get_label() == "<colorbar>"]) == 1
    per = tiles(viz.plot_filters(kernel, layout="torch", normalize="filter"))
    assert per["tile:1:2"].images[0].get_clim() == (kernel[1, 2].min(), kernel[1, 2].max())


def test_one_input_channel_gives_a_near_square_grid_of_all_filters():
    fig = viz.plot_filters(np.random.default_rng(2).normal(size=(5, 5, 1, 96)), layout="keras", max_filters=96)
    t = tiles(fig)
    assert len(t) == 96 and "tile:95:0" in t
    rows = {round(ax.get_position().y0, 3) for ax in t.values()}
    cols = {round(ax.get_position().x0, 3) for ax in t.values()}
    assert len(rows) == 8 and len(cols) == 12  # 96 tiles as 8 x 12, wider than tall
    # without max_filters=96 (gallery.md's single_conv example): the first 64, and the title says so
    fig = viz.plot_filters(np.random.default_rng(2).normal(size=(5, 5, 1, 96)), layout="keras")
    assert len(tiles(fig)) == 64 and "not shown: filters 64..95" in fig._suptitle.get_text()


def test_rgb_first_layer_one_colour_tile_per_filter():
    kernel = np.random.default_rng(3).normal(size=(5, 5, 3, 64))
    t = tiles(viz.plot_filters(kernel, layout="keras", normalize="global"))
    assert len(t) == 64 and "tile:63" in t
    img = image(t["tile:7"])
    lo, hi = kernel.min(), kernel.max()
    np.testing.assert_allclose(img[2, 4], (kernel[2, 4, :, 7] - lo) / (hi - lo))  # pixel (y=2, x=4) = filter 7's RGB


def test_3d_kernel_gives_the_classic_24_labelled_slices():
    kernel = np.random.default_rng(4).normal(size=(3, 3, 3, 4, 2))  # conv3d_c: 4 inputs, 2 filters
    t = tiles(viz.plot_filters(kernel, layout="keras"))
    assert len(t) == 2 * 4 * 3
    ax = t["tile:1:3:2"]
    assert ax.get_title() == "f1 in3 k1=2"  # the slice is along window axis k1, whatever the data calls it
    np.testing.assert_array_equal(image(ax), kernel[2, :, :, 3, 1])  # slice 2 along k1 of filter 1, input 3


def test_1d_kernels_are_line_plots():
    kernel = np.random.default_rng(5).normal(size=(7, 2, 3))  # Keras Conv1D (k, in, out)
    t = tiles(viz.plot_filters(kernel, layout="keras"))
    assert len(t) == 6
    np.testing.assert_array_equal(t["tile:2:1"].lines[0].get_ydata(), kernel[:, 1, 2])


@pytest.mark.parametrize(
    "shape, mode",
    [((6, 3, 3, 3), "rgb"), ((10, 1, 3, 3), "grid"), ((4, 2, 3, 3), "matrix"), ((2, 2, 3, 4, 5), "slices"), ((3, 2, 5), "lines")],
)
def test_each_arrangement_draws_the_grid_its_figure_was_sized_for(shape, mode):
    """The five kernel arrangements are one table: the figure's size and its tiles come from one rule."""
    from xconv.viz import _kernel_mode, _panel_grid

    out, cin, *k = shape
    assert _kernel_mode(len(k), cin, cin == 3 and len(k) == 2) == mode
    t = tiles(viz.plot_filters(np.random.default_rng(7).normal(size=shape), layout="torch", slice_axis=1))
    rows = {round(ax.get_position().y0, 3) for ax in t.values()}
    cols = {round(ax.get_position().x0, 3) for ax in t.values()}
    assert (len(rows), len(cols)) == _panel_grid(out, cin, k, mode == "rgb", 1)


def test_large_layers_are_capped_with_a_note():
    fig = viz.plot_filters(np.zeros((512, 512, 3, 3)) + 0.1, layout="torch", max_filters=8, max_channels=4)
    assert len(tiles(fig)) == 32
    assert "not shown: filters 8..511 and input channels 4..511" in fig._suptitle.get_text()


@needs_keras
def test_filters_from_keras_and_torch_models_agree(tmp_path):
    k = zoo.build("two_conv", "keras", random_biases=True)
    t = zoo.build("two_conv", "torch")
    from xconv import transfer_weights

    transfer_weights(k, t)
    a, b = tiles(viz.plot_filters(k, "conv2")), tiles(viz.plot_filters(t, "conv2"))
    assert set(a) == set(b) and len(a) == 6 * 4
    for gid in a:
        np.testing.assert_array_equal(image(a[gid]), image(b[gid]))
    viz.plot_filters(k, "conv2", path=tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")


@needs_keras
def test_two_conv_feature_maps_explain_six_not_twenty_four(twins):
    k, t = twins("two_conv")
    x = zoo.sample_input("two_conv")
    fig = viz.plot_feature_maps(k, x)
    maps = tiles(fig, "map:")
    assert len([g for g in maps if g.startswith("map:conv1:")]) == 4
    assert len([g for g in maps if g.startswith("map:conv2:")]) == 6
    np.testing.assert_array_equal(image(maps["map:input:0"]), zoo.smiley())
    titles = [sf._suptitle.get_text() for sf in fig.subfigs]
    assert any("conv2: 6 maps" in s and "not 6 x 4" in s for s in titles)
    # the drawn map is the layer's activation (channel 5 of conv2)
    acts = k.get_layer("conv2").output
    import keras

    want = keras.Model(k.inputs, acts)([x])[0, :, :, 5]
    np.testing.assert_allclose(image(maps["map:conv2:5"]), np.asarray(want), rtol=1e-6)
    # and the PyTorch twin draws the same maps
    tmaps = tiles(viz.plot_feature_maps(t, zoo.sample_input("two_conv", layout="torch")), "map:")
    np.testing.assert_allclose(image(tmaps["map:conv2:5"]), image(maps["map:conv2:5"]), rtol=1e-5, atol=1e-6)


def test_weights_change_names_the_greatest_change():
    before = np.random.default_rng(6).normal(size=(5, 5, 1, 8))
    after = before.copy()
    after[1, 3, 0, 2] += 0.3  # filter 2, y=1, x=3
    after[0, 0, 0, 5] -= 0.1
    fig = viz.plot_weights_change(before, after, layout="keras")
    assert "greatest change 0.3 at filter 2, input channel 0, window offset (1, 3)" in fig._suptitle.get_text()
    change = tiles(fig, "change:")
    img = image(change["change:tile:2:0"])
    assert np.unravel_index(np.argmax(np.abs(img)), img.shape) == (1, 3)
    assert np.count_nonzero(image(change["change:tile:0:0"])) == 0
    same = viz.plot_weights_change(before, before.copy(), layout="keras")
    assert "no weight changed" in same._suptitle.get_text()
    with pytest.raises(BadInputError, match="not the same layer"):
        viz.plot_weights_change(before, before[..., :4], layout="keras")


@needs_keras
def test_report_plot_marks_failures_and_first_divergence(twins):
    k, t = twins("unet_encoder")
    bad = copy.deepcopy(t)
    bad.conv4_2_pad = torch.nn.ZeroPad2d((2, 1, 2, 1))
    report = compare(k, bad, zoo.sample_input("unet_encoder"))
    fig = viz.plot_report(report)
    ax = fig.axes[0]
    by_gid = {c.get_gid(): c for c in ax.collections}
    n_fail = sum(not r.ok for r in report.layers)
    assert len(by_gid["fail"].get_offsets()) == n_fail == 4
    assert len(by_gid["ok"].get_offsets()) == len(report.layers) - n_fail
    assert ax.get_yscale() == "log"
    assert "first divergence at 'conv4_2'" in ax.get_title()
    assert [l for l in ax.lines if l.get_gid() == "first_divergence"][0].get_xdata()[0] == 10  # conv4_2 is layer 10


@needs_keras
def test_layer_diff_shows_a_planted_difference_where_it_is(twins):
    k, t = twins("two_conv")
    bad = copy.deepcopy(t)
    bad.conv1.padding_mode = "reflect"  # wrong padding: only a 2-pixel border ring can differ
    fig = viz.plot_layer_diff(k, bad, zoo.sample_input("two_conv"), "conv1")
    diffs = tiles(fig, "diff:")
    assert len(diffs) == 4
    heat = np.stack([image(ax) for ax in diffs.values()])
    assert heat[:, 2:-2, 2:-2].max() < 1e-5  # the interior agrees
    assert heat.max() > 1e-2  # the border does not
    ring = heat.copy()
    ring[:, 2:-2, 2:-2] = 0
    assert ring.max() == heat.max()


def test_bad_requests_are_clear_and_leave_no_file(tmp_path):
    with pytest.raises(BadInputError, match="layout='keras'"):
        viz.plot_filters(np.zeros((3, 3, 1, 2)))
    with pytest.raises(BadInputError, match="normalize"):
        viz.plot_filters(np.zeros((3, 3, 1, 2)), layout="keras", normalize="loud")
    t = zoo.build("unet_encoder", "torch")
    with pytest.raises(BadInputError, match="No module named 'conv9'.*conv1_1"):
        viz.plot_filters(t, "conv9")
    with pytest.raises(BadInputError, match="no conv kernel"):
        viz.plot_filters(t, "pool1")
    with pytest.raises(BadInputError, match="use one of"):
        viz.plot_filters(t, "conv1_1", path=tmp_path / "f.bmp")
    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("")
    with pytest.raises(BadInputError, match="does not exist"):
        viz.plot_filters(t, "conv1_1", path=not_a_folder / "f.png")
    # /sys is read-only even for root (CI runs as root, where chmod cannot make a folder unwritable)
    if os.path.isdir("/sys"):
        with pytest.raises(BadInputError, match="writable"):
            viz.plot_filters(t, "conv1_1", path="/sys/xconv-test.png")
        assert not os.path.exists("/sys/xconv-test.png")


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    fig = viz.plot_filters(np.ones((3, 3, 1, 2)), layout="keras")

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(BadInputError, match="out.png.*disk full.*Nothing was written"):  # the one output rule's message
        viz.save_figure(fig, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []
