"""Pictures: filter grids, feature maps, weight changes, and where two frameworks disagree.

matplotlib is imported inside each function (never by ``import xconv``), and figures are
built as ``matplotlib.figure.Figure`` objects with no window: nothing here needs a display.
Every function returns the figure; ``path=`` also saves it (format from the extension:
png, svg, pdf, jpg), through a temporary file so that a failure leaves no partial output.

Tiles are tagged for programs and tests: ``ax.get_gid()`` is ``"tile:<filter>:<channel>"``
(2D), ``"tile:<filter>:<channel>:<slice>"`` (3D), ``"tile:<filter>"`` (RGB), and
``"map:<layer>:<channel>"`` / ``"diff:<channel>"`` for activations.
"""

from __future__ import annotations

import os

import numpy as np

from .._optional import require
from ..errors import BadInputError
from ._data import NORMALIZE, grid_shape, kernel_of, norm_limits

__all__ = [
    "plot_filters",
    "plot_feature_maps",
    "plot_weights_change",
    "plot_report",
    "plot_layer_diff",
    "save_figure",
    "check_picture_path",
    "check_limits",
    "map_scale",
    "kernel_of",
]

FORMATS = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
_DIVERGING, _GREY, _HEAT = "RdBu_r", "gray", "magma"


def _figure(width: float, height: float):
    require("matplotlib", "draw pictures")
    from matplotlib.figure import Figure

    return Figure(figsize=(max(width, 3.0), max(height, 2.0)), layout="constrained")


def check_picture_path(path: str | os.PathLike) -> str:
    """Refuse a picture path before any work is done: a known extension, an existing folder.

    Returns the path as a string; a bad one raises :class:`~xconv.errors.BadInputError`.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise BadInputError(f"Cannot write a picture to {path!r}: use one of {', '.join(FORMATS)}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInputError(f"Cannot write a picture to {path!r}: the folder {folder!r} does not exist; create it first.")
    if os.path.isdir(path):
        raise BadInputError(f"Cannot write a picture to {path!r}: it is a folder; give a file name such as {os.path.join(path, 'picture.png')!r}.")
    return ext


def save_figure(fig, path: str | os.PathLike) -> str:
    """Save ``fig`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    The format follows the extension (checked by :func:`check_picture_path`). Returns the path written.
    """
    from ..files import atomic_output

    path = os.fspath(path)
    ext = check_picture_path(path)
    fmt = ext.lstrip(".").replace("jpg", "jpeg")
    return atomic_output(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=DPI), force=True)


def _finish(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def _tile(ax, image, *, cmap=None, lim=None, gid=None, title=None, fontsize=7):
    if lim is None:  # per-tile min-max
        lo, hi = float(np.min(image)), float(np.max(image))
        lim = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    ax.imshow(image, cmap=cmap, vmin=lim[0], vmax=lim[1], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if gid:
        ax.set_gid(gid)
    if title:
        ax.set_title(title, fontsize=fontsize, pad=2)


def _colorbar(fig, axes, lim, cmap, label):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(*lim), cmap), ax=axes, shrink=0.8, label=label)


def _cap_note(n_out, n_in, shown_out, shown_in, limits: tuple[int, int, int]) -> str:
    """What a capped kernel picture leaves out, and the limits (filters, channels, rows) that cut it."""
    left = []
    if shown_out < n_out:
        left.append(f"filters {shown_out}..{n_out - 1}")
    if shown_in < n_in:
        left.append(f"input channels {shown_in}..{n_in - 1}")
    if not left:
        return ""
    f, c, r = limits
    return f"not shown: {' and '.join(left)} (limits: {f} filters, {c} input channels, {r} rows of tiles; raise them to see more)"


def slice_label(axis: int) -> str:
    """Tile label of a 3D kernel slice: 'k1', 'k2', 'k3' for the window's spatial axes 1, 2, 3 (the
    Keras input's axes 1..3 in that order); which of them is "depth" depends on the data."""
    return f"k{axis + 1}"


# ---- kernel tiles: one way of laying them out per kind of kernel ----------------------------------
#
# A kernel (torch layout, already capped) is drawn in one of five arrangements, picked by
# _kernel_mode from its window rank and input channels. Each arrangement is a row of _ARRANGE:
# the grid it needs (rows, columns) and the function that fills that grid with tiles.

DPI = 110  # pictures are saved at this resolution
MAX_TILE_ROWS = 20  # rows of kernel tiles in one figure: under two 1080-pixel screens at DPI


def _kernel_mode(rank: int, cin: int, rgb: bool) -> str:
    """'rgb', 'grid' (one input channel), 'matrix' (filter x channel), 'slices' (3D) or 'lines' (1D)."""
    if rank == 2:
        return "rgb" if rgb else "grid" if cin == 1 else "matrix"
    if rank == 3:
        return "slices"
    if rank == 1:
        return "lines"
    raise BadInputError(f"Cannot draw a kernel with {rank} window axes: expected (out, in, *k) with 1 to 3 window axes.")


def _grid_square(out, cin, k, slice_axis):
    return grid_shape(out)


def _grid_matrix(out, cin, k, slice_axis):
    return out, cin


def _grid_slices(out, cin, k, slice_axis):
    return out * cin, k[slice_axis]


def _blank_rest(grid, used: int) -> None:
    for ax in grid.flat[used:]:
        ax.set_axis_off()


def _fill_rgb(grid, w, lim, cmap, slice_axis):
    axes = []
    for o in range(w.shape[0]):
        img = np.moveaxis(w[o], 0, -1)  # (kh, kw, 3)
        lo, hi = lim if lim is not None else (float(img.min()), float(img.max()))
        img = np.clip((img - lo) / ((hi - lo) or 1.0), 0, 1)
        ax = grid.flat[o]
        ax.imshow(img, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_gid(f"tile:{o}")
        ax.set_title(f"f{o}", fontsize=7, pad=2)
        axes.append(ax)
    _blank_rest(grid, len(axes))
    return axes


def _fill_square(grid, w, lim, cmap, slice_axis):
    axes = []
    for o in range(w.shape[0]):
        _tile(grid.flat[o], w[o, 0], cmap=cmap, lim=lim, gid=f"tile:{o}:0", title=f"f{o}")
        axes.append(grid.flat[o])
    _blank_rest(grid, len(axes))
    return axes


def _fill_matrix(grid, w, lim, cmap, slice_axis):
    axes = []
    for o in range(w.shape[0]):
        for i in range(w.shape[1]):
            ax = grid[o, i]
            _tile(ax, w[o, i], cmap=cmap, lim=lim, gid=f"tile:{o}:{i}", title=f"in {i}" if o == 0 else None)
            if i == 0:
                ax.set_ylabel(f"f{o}", fontsize=7, rotation=0, labelpad=10)
            axes.append(ax)
    return axes


def _fill_slices(grid, w, lim, cmap, slice_axis):
    axes = []
    out, cin, *k = w.shape
    for o in range(out):
        for i in range(cin):
            for d in range(k[slice_axis]):
                ax = grid[o * cin + i, d]
                tile = np.take(w[o, i], d, axis=slice_axis)
                title = f"f{o} in{i} {slice_label(slice_axis)}={d}"
                _tile(ax, tile, cmap=cmap, lim=lim, gid=f"tile:{o}:{i}:{d}", title=title, fontsize=6)
                axes.append(ax)
    return axes


def _fill_lines(grid, w, lim, cmap, slice_axis):
    axes = []
    out, cin, width = w.shape
    for o in range(out):
        for i in range(cin):
            ax = grid[o, i]
            ax.plot(np.arange(width), w[o, i], marker="o", lw=1, ms=2)
            ax.axhline(0, color="0.7", lw=0.5)
            ax.set_xticks([])
            ax.tick_params(labelsize=6)
            ax.set_gid(f"tile:{o}:{i}")
            if o == 0:
                ax.set_title(f"in {i}", fontsize=7, pad=2)
            if i == 0:
                ax.set_ylabel(f"f{o}", fontsize=7)
            if lim is not None:
                ax.set_ylim(*lim)
            axes.append(ax)
    return axes


# mode -> (grid of the panel, tile filler, whether it gets a colour bar, subplot options)
_ARRANGE = {
    "rgb": (_grid_square, _fill_rgb, False, {}),
    "grid": (_grid_square, _fill_square, True, {}),
    "matrix": (_grid_matrix, _fill_matrix, True, {}),
    "slices": (_grid_slices, _fill_slices, True, {}),
    "lines": (_grid_matrix, _fill_lines, False, {"sharey": True}),
}


def _panel_grid(out: int, cin: int, k, rgb: bool, slice_axis: int) -> tuple[int, int]:
    """(rows, columns) of tiles that _draw_kernels uses for a (capped) kernel of this shape."""
    return _ARRANGE[_kernel_mode(len(k), cin, rgb)][0](out, cin, k, slice_axis)


def _panel_size(so: int, si: int, k, rgb: bool, slice_axis: int) -> tuple[float, float]:
    """Inches for one panel of kernel tiles, from the grid that _draw_kernels will use."""
    rows, cols = _panel_grid(so, si, k, rgb, slice_axis)
    return cols * 0.85, rows * 0.9


def _cap_filters(out: int, cin: int, k, rgb: bool, slice_axis: int, max_rows: int) -> tuple[int, int]:
    """(filters, input channels) that fit in ``max_rows`` rows of tiles (at least one of each)."""
    mode = _kernel_mode(len(k), cin, rgb)
    if mode == "slices":  # one row per (filter, input channel)
        cin = max(1, min(cin, max_rows))
        return max(1, min(out, max_rows // cin)), cin
    if mode in ("grid", "rgb"):
        return min(out, max_rows * _grid_square(out, cin, k, slice_axis)[1]), cin
    return min(out, max_rows), cin  # matrix and lines: one row per filter


def _draw_kernels(fig, w, *, mode, rgb, slice_axis, name="", show_colorbar=True, label="weight"):
    """Draw kernel tiles of ``w`` (torch layout, already capped) into ``fig`` (a figure or subfigure).

    ``mode`` is the colour normalisation; the arrangement comes from the kernel (see _ARRANGE).
    Returns the tile axes, the colour limits (None when the tiles have their own) and the colour map.
    """
    out, cin, *k = w.shape
    grid_of, fill, has_colorbar, options = _ARRANGE[_kernel_mode(len(k), cin, rgb)]
    lim = norm_limits(w, mode)
    cmap = _DIVERGING if mode == "symmetric" else _GREY
    grid = fig.subplots(*grid_of(out, cin, k, slice_axis), squeeze=False, **options)
    axes = fill(grid, w, lim, cmap, slice_axis)
    if not has_colorbar:
        return axes, None, cmap
    if show_colorbar and lim is not None:
        _colorbar(fig, axes, lim, cmap, label + (" (symmetric scale)" if mode == "symmetric" else ""))
    return axes, lim, cmap


def check_limits(max_filters: int, max_channels: int, max_rows: int) -> None:
    """Refuse a filter, channel or row limit below 1 (before any model is built, in the CLI)."""
    if min(max_filters, max_channels, max_rows) < 1:
        raise BadInputError(
            f"max_filters, max_channels and max_rows must be >= 1; received {max_filters}, {max_channels}, {max_rows}.",
            cli=f"--max-filters, --max-channels and --max-rows must be >= 1; received {max_filters}, {max_channels}, {max_rows}.",
        )


def plot_filters(
    source,
    layer: str | None = None,
    *,
    layout: str | None = None,
    normalize: str | None = None,
    max_filters: int = 64,
    max_channels: int = 8,
    rgb: bool | None = None,
    slice_axis: int = 0,
    max_rows: int = MAX_TILE_ROWS,
    path: str | os.PathLike | None = None,
):
    """The kernels of one conv layer as a grid of tiles.

    ``source``: a Keras model, a PyTorch module (with ``layer``), or a raw kernel array with
    ``layout='keras'`` (``(*k, in, out)``) or ``'torch'`` (``(out, in, *k)``).
    2D kernels: one tile per (filter, input channel), a near-square grid for one input
    channel, or one RGB tile per filter for three (``rgb=None`` decides by the channel count).
    3D kernels: one tile per filter, input channel and slice along ``slice_axis`` of the window
    (0, 1 or 2: the window axis that follows the input's spatial axis 1, 2 or 3; tiles are
    labelled ``k1=``, ``k2=``, ``k3=``). conv3d_demo's input is (rows, cols, colour), so its
    colour-depth slices are ``slice_axis=2``.
    1D kernels: one small line plot per (filter, input channel).
    ``normalize``: 'symmetric' (around zero, diverging colours; the default for signed
    weights), 'global' (min-max over the layer, grey) or 'filter' (each tile its own min-max).
    At most ``max_filters`` filters, ``max_channels`` input channels and ``max_rows`` rows of
    tiles are drawn (20 rows: under two screens); the title names what is left out.

    Returns the ``matplotlib.figure.Figure``, also saved to ``path`` when given.
    """
    w = kernel_of(source, layer, layout=layout)
    mode = normalize or ("symmetric" if float(np.min(w)) < 0 else "global")
    if mode not in NORMALIZE:
        raise BadInputError(f"normalize must be one of {NORMALIZE}; received {mode!r}.")
    check_limits(max_filters, max_channels, max_rows)
    out, cin, *k = w.shape
    rank = len(k)
    if rank == 3 and slice_axis not in (0, 1, 2):
        raise BadInputError(f"slice_axis must be 0, 1 or 2 for a 3D kernel {tuple(k)}; received {slice_axis!r}.")
    use_rgb = (cin == 3 and rank == 2) if rgb is None else bool(rgb)
    if use_rgb and (cin != 3 or rank != 2):
        raise BadInputError(f"rgb=True needs a 2D kernel with 3 input channels; received {w.shape} (torch layout).", cli=f"--rgb needs a 2D kernel with 3 input channels; received {w.shape} (torch layout).")
    so, si = _cap_filters(min(out, max_filters), cin if use_rgb else min(cin, max_channels), k, use_rgb, slice_axis, max_rows)
    shown = w[:so, :si]
    pw, ph = _panel_size(so, si, k, use_rgb, slice_axis)
    fig = _figure(pw + 1.8, ph + 1.1)
    _draw_kernels(fig, shown, mode=mode, rgb=use_rgb, slice_axis=slice_axis)
    window = "x".join(map(str, k))
    label = f"'{layer}'" if layer else "kernel"
    title = f"{label}: {out} filters x {cin} input channels x {window} window"
    sub = {"symmetric": "symmetric scale around 0", "global": "min-max over the layer", "filter": "each tile its own min-max"}[mode]
    if use_rgb:
        sub += "; one RGB tile per filter"
    if rank == 3:
        sub += f"; rows: (filter, input channel), columns: slices along window axis {slice_label(slice_axis)}"
    note = _cap_note(out, cin if not use_rgb else 3, so, si, (max_filters, max_channels, max_rows))
    fig.suptitle(f"{title}\n({sub})" + (f"\n{note}" if note else ""), fontsize=9)
    return _finish(fig, path)


def _maps_of(model, inputs, layers):
    """Channels-first activations (batch item 0) of the chosen layers, the input, and conv in-channels."""
    from ..frameworks import framework_of

    fw = framework_of(model)
    x = np.asarray(inputs)
    if fw == "keras":
        from ..frameworks import keras_side as ks

        all_layers = list(ks.iter_layers(model))
        names = layers or [l.name for l in all_layers if "Conv" in type(l).__name__]
        known = {l.name for l in all_layers}
        missing = [n for n in names if n not in known]
        if missing:
            raise BadInputError(f"No layer {missing} in Keras model '{model.name}'. Layers: {sorted(known)}.")
        caps = {c.name: c for c in ks.capture(model, [x], names=names)}
        by_name = {l.name: l for l in all_layers}
        cin = {n: ks.layer_weights(by_name[n])["kernel"].shape[-2] for n in names if "kernel" in ks.layer_weights(by_name[n]) and ks.layer_weights(by_name[n])["kernel"].ndim >= 3}
        maps = {n: (np.moveaxis(caps[n].value[0], -1, 0) if caps[n].value.ndim >= 3 else caps[n].value[0]) for n in names}
        return maps, np.moveaxis(x[0], -1, 0), cin
    if fw == "torch":
        from ..frameworks import torch_side as ts

        modules = dict(model.named_modules())
        mapping = getattr(model, "xconv_outputs", {})
        names = layers or [n for n, m in modules.items() if type(m).__name__.startswith(("Conv", "ConvTranspose"))]
        missing = [n for n in names if n not in modules and n not in mapping]
        if missing:
            raise BadInputError(f"No module {missing} in {type(model).__name__}. Modules: {[n for n in modules if n][:20]}.")
        t_names = {n: mapping.get(n, n) for n in names}
        dtype = next(model.parameters()).dtype
        store, _ = ts.capture(model, [x], list(t_names.values()), next(model.parameters()).device, dtype)
        cin = {n: modules[n].weight.shape[1] * getattr(modules[n], "groups", 1) for n in names if n in modules and getattr(modules[n], "weight", None) is not None and modules[n].weight.dim() >= 3}
        return {n: store[t_names[n]][0] for n in names}, x[0], cin
    raise BadInputError(f"plot_feature_maps takes a Keras model or a PyTorch module; received {type(model).__name__}.")


def _show_map(ax, m, *, gid, title, lim=None, cmap="viridis"):
    if m.ndim == 1:
        ax.plot(m, lw=1)
        ax.set_xticks([]), ax.tick_params(labelsize=6)
        ax.set_gid(gid), ax.set_title(title, fontsize=7, pad=2)
        return
    if m.ndim == 3:  # a volume: its middle slice along the last axis
        m = m[..., m.shape[-1] // 2]
    _tile(ax, m, cmap=cmap, lim=lim, gid=gid, title=title)


def map_scale(maps: np.ndarray) -> tuple[tuple[float, float], str]:
    """One colour scale for all maps of a layer, in which 0 always looks like 0.

    Non-negative maps (a ReLU's) run from 0 (dark) to the layer's maximum; signed maps get a
    symmetric diverging scale (0 white). A dead layer (all 0) is drawn dark, not mid-scale.

    Returns ``((vmin, vmax), colormap name)``.
    """
    lo, hi = (float(np.min(maps)), float(np.max(maps))) if maps.size else (0.0, 0.0)
    if lo >= 0:
        return (0.0, hi if hi > 0 else 1.0), _MAPS
    m = max(-lo, hi)
    return (-m, m), _DIVERGING


_MAPS = "viridis"
MAX_MAP_ROWS = 12  # rows of map tiles in one figure, a heading counted as 0.7 row: under two 1080-pixel screens
_MAP_ROW_IN, _HEAD_ROWS = 1.5, 0.7  # inches per row of map tiles; rows a layer's heading takes


def _map_blocks(items, max_channels: int, cols: int, max_rows: int):
    """``(blocks, left_out)``: the (name, maps, rows, shown) that fit in ``max_rows`` rows, headings
    counted, and the names of the layers that do not. The input and the first layer are always
    drawn, cut to fit; a later layer is drawn whole or named as left out."""
    blocks, left_out, used = [], [], 0.0
    for name, m in items:
        channels = len(m) if m.ndim >= 2 else 1
        shown = min(channels, max_channels)
        rows = int(np.ceil(shown / cols))
        room = max_rows - used - _HEAD_ROWS
        if rows > room:
            if len(blocks) >= 2:
                left_out.append(name)
                continue
            rows = max(1, int(room))
            shown = min(shown, rows * cols)
        blocks.append((name, m, rows, shown))
        used += rows + _HEAD_ROWS
    return blocks, left_out


def plot_feature_maps(
    model,
    inputs,
    layers: list[str] | None = None,
    *,
    max_channels: int = 32,
    cols: int = 8,
    max_rows: int = MAX_MAP_ROWS,
    path: str | os.PathLike | None = None,
):
    """Every channel of the chosen layers' outputs (all conv layers by default), input first.

    ``inputs`` is one batch in the model's own layout (channels-last for Keras, channels-first
    for PyTorch); item 0 is drawn. The maps of one layer share one colour scale with a colour
    bar, in which 0 looks like 0 (see :func:`map_scale`). A volume is shown by its middle slice
    along the last spatial axis. The figure holds at most ``max_rows`` rows of tiles (each
    layer's heading counted as 0.7 of a row; 12 rows: under two screens): layers that do not
    fit are named in the title (draw them with ``layers=``).

    Returns the ``matplotlib.figure.Figure``, also saved to ``path`` when given.
    """
    import textwrap

    if max_channels < 1 or cols < 1 or max_rows < 1:
        raise BadInputError(f"max_channels, cols and max_rows must be >= 1; received {max_channels}, {cols}, {max_rows}.")
    maps, x0, cin = _maps_of(model, inputs, layers)
    blocks, left_out = _map_blocks([("input", x0)] + list(maps.items()), max_channels, cols, max_rows)
    width = min(cols, max(shown for *_, shown in blocks)) * 1.3 + 1.4
    wrap = max(40, int(width * 12))  # characters per title line at fontsize 9
    note = ""
    if left_out:
        note = textwrap.fill(f"not shown, to keep the picture {max_rows} rows tall: {', '.join(left_out)} (draw them with layers=[...] / --layer)", wrap)
    rows_in = sum(rows + _HEAD_ROWS for *_, rows, _ in blocks) * _MAP_ROW_IN
    fig = _figure(width, rows_in + (0.2 * (note.count("\n") + 1) + 0.1 if note else 0))
    ratios = [rows + _HEAD_ROWS for *_, rows, _ in blocks]
    subs = fig.subfigures(len(blocks), 1, height_ratios=ratios) if len(blocks) > 1 else [fig]
    ncols = min(cols, max(shown for *_, shown in blocks))  # one column grid for every layer: tiles line up
    for sf, (name, m, rows, shown) in zip(np.atleast_1d(subs), blocks):
        channels = m.shape[0] if m.ndim >= 2 else 1
        grid = sf.subplots(rows, ncols, squeeze=False)
        lim, cmap = map_scale(m[:shown] if m.ndim >= 2 else m)
        if name == "input":
            cmap = "gray"
        if m.ndim >= 2:
            for c in range(shown):
                dead = not np.any(m[c])
                _show_map(grid.flat[c], m[c], gid=f"map:{name}:{c}", title=f"{name}[{c}]" + (" (all 0)" if dead else ""), lim=lim, cmap=cmap)
            for ax in grid.flat[shown:]:
                ax.set_axis_off()
            _colorbar(sf, list(grid.flat), lim, cmap, "value" if name == "input" else "activation")  # every block's at the right edge
        else:
            _show_map(grid.flat[0], m, gid=f"map:{name}:0", title=name)
            for ax in grid.flat[1:]:
                ax.set_axis_off()
        if m.ndim < 2:  # a vector (a Dense's output): drawn as one line
            head = f"{name}: {m.shape[0]} values"
        elif name == "input":
            head = f"input: {channels} channel{'s' if channels != 1 else ''}, {'x'.join(map(str, m.shape[1:]))}"
        else:
            head = f"{name}: {channels} maps of {'x'.join(map(str, m.shape[1:]))}"
            if name in cin:
                head += (
                    f" (each of its {channels} filters spans all {cin[name]} input maps and sums them,"
                    f" so {channels} maps, not {channels} x {cin[name]})"
                    if cin[name] > 1
                    else f" (one per filter, over {cin[name]} input channel)"
                )
        if shown < channels:
            head += f"; first {shown} shown"
        sf.suptitle(textwrap.fill(head, wrap), fontsize=9)
    if note:
        fig.suptitle(note, fontsize=9)
    return _finish(fig, path)


def plot_weights_change(
    before,
    after,
    layer: str | None = None,
    *,
    layout: str | None = None,
    max_filters: int = 32,
    max_channels: int = 4,
    after_layer: str | None = None,
    after_layout: str | None = None,
    slice_axis: int = 0,
    max_rows: int = MAX_TILE_ROWS,
    path: str | os.PathLike | None = None,
):
    """Filters before, after, and their difference, with the greatest change in the title.

    ``before`` and ``after`` are two models (Keras or PyTorch, any mix) or two raw kernels
    with ``layout``; the same layer is drawn from each (``after_layer`` / ``after_layout`` when
    the second source names or lays it out differently). The before and after panels share one
    weight scale; the change panel has its own symmetric scale, labelled "after - before".
    3D kernels are sliced along ``slice_axis`` as in :func:`plot_filters`; the panels hold at most
    ``max_rows`` rows of tiles.

    Returns the ``matplotlib.figure.Figure``, also saved to ``path`` when given.
    """
    check_limits(max_filters, max_channels, max_rows)
    wb = kernel_of(before, layer, layout=layout)
    wa = kernel_of(after, after_layer or layer, layout=after_layout or layout)
    if wb.shape != wa.shape:
        raise BadInputError(f"'{layer}' has shape {wb.shape} before and {wa.shape} after (torch layout): not the same layer.")
    d = wa - wb
    flat = int(np.argmax(np.abs(d)))
    idx = np.unravel_index(flat, d.shape)
    biggest = float(np.abs(d).reshape(-1)[flat])
    out, cin, *k = wb.shape
    if len(k) == 3 and slice_axis not in (0, 1, 2):
        raise BadInputError(f"slice_axis must be 0, 1 or 2 for a 3D kernel {tuple(k)}; received {slice_axis!r}.")
    so, si = _cap_filters(min(out, max_filters), min(cin, max_channels), k, False, slice_axis, max_rows)
    sl = (slice(0, so), slice(0, si))
    pw, ph = _panel_size(so, si, k, False, slice_axis)
    fig = _figure(3 * pw + 2.6, ph + 1.3)
    subs = fig.subfigures(1, 3, width_ratios=[pw, pw + 1.0, pw + 1.0])
    shared = norm_limits(np.concatenate([wb[sl].ravel(), wa[sl].ravel()]), "symmetric")
    for sf, (label, w) in zip(subs, (("before", wb[sl]), ("after", wa[sl]))):
        axes, _, _ = _draw_kernels(sf, w, mode="symmetric", rgb=False, slice_axis=slice_axis, show_colorbar=False)
        for ax in axes:
            for im in ax.images:
                im.set_clim(*shared)
            ax.set_gid(f"{label}:{ax.get_gid()}")
        sf.suptitle(label, fontsize=9)
    _colorbar(subs[1], subs[1].axes, shared, _DIVERGING, "weight")
    axes, lim, _ = _draw_kernels(subs[2], d[sl], mode="symmetric", rgb=False, slice_axis=slice_axis, label="change, after - before")
    for ax in axes:
        ax.set_gid(f"change:{ax.get_gid()}")
    subs[2].suptitle("after - before", fontsize=9)
    where = f"filter {idx[0]}, input channel {idx[1]}, window offset {tuple(int(i) for i in idx[2:])}"
    if biggest == 0:
        head = f"'{layer or 'kernel'}': no weight changed (all {d.size:,} values identical)"
    else:
        head = f"'{layer or 'kernel'}': greatest change {biggest:.4g} at {where}"
    note = _cap_note(out, cin, so, si, (max_filters, max_channels, max_rows))
    fig.suptitle(head + (f"\n{note}" if note else ""), fontsize=10)
    return _finish(fig, path)


def plot_report(report, *, path: str | os.PathLike | None = None):
    """Per-layer greatest difference on a log scale, the allowed difference drawn, failures marked.

    ``report`` is what :func:`xconv.compare` returned. Returns the ``matplotlib.figure.Figure``,
    also saved to ``path`` when given.
    """
    rows = report.layers
    if not rows:
        raise BadInputError("The report has no compared layers to plot.")
    fig = _figure(max(6.0, 0.45 * len(rows) + 2), 4.2)
    ax = fig.subplots()
    x = np.arange(len(rows))
    positive = [r.max_abs for r in rows if 0 < r.max_abs < float("inf")] + [r.atol for r in rows if r.atol > 0]
    floor = (min(positive) if positive else 1e-16) / 10  # where an exact 0 is drawn on the log axis
    y = np.array([r.max_abs if np.isfinite(r.max_abs) and r.max_abs > 0 else (floor if r.max_abs == 0 else np.nan) for r in rows])
    allowed = np.array([r.atol + r.rtol * r.scale for r in rows])
    ax.step(x, np.where(allowed > 0, allowed, floor), where="mid", color="0.4", lw=1.5, label="allowed: atol + rtol * max|a|", gid="allowed")
    ok = np.array([r.ok for r in rows])
    ax.scatter(x[ok], y[ok], color="tab:green", zorder=3, label="within tolerance", gid="ok")
    ax.scatter(x[~ok], np.where(np.isnan(y[~ok]), np.nanmax(np.append(y, allowed)) * 10, y[~ok]), color="tab:red", marker="X", s=60, zorder=3, label="beyond tolerance", gid="fail")
    for i, r in enumerate(rows):
        if r.max_abs == 0:
            ax.annotate("0", (i, floor), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        if not np.isfinite(r.max_abs):
            ax.annotate(r.note or "not finite", (i, np.nanmax(np.append(y, allowed)) * 10), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=6, color="tab:red")
    ax.set_yscale("log")
    ax.set_xticks(x, [r.name for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("greatest |a - b|")
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    first = report.first_divergence
    ax.set_title(
        f"{report.a} vs {report.b}, {report.dtype} on {report.device}, TF32 {'on' if report.tf32 else 'off'}: "
        + ("every layer matches" if report.ok else f"first divergence at '{first}'"),
        fontsize=9,
    )
    if first is not None:
        ax.axvline(x[[r.name for r in rows].index(first)], color="tab:red", alpha=0.3, lw=6, gid="first_divergence")
    return _finish(fig, path)


def plot_layer_diff(
    a,
    b,
    inputs,
    layer: str,
    *,
    max_channels: int = 8,
    device: str = "cpu",
    dtype: str | None = None,
    align=None,
    path: str | os.PathLike | None = None,
):
    """One layer of two models side by side: the Keras map, the PyTorch map, and ``|difference|``.

    ``a``, ``b`` and ``inputs`` are as for :func:`xconv.compare`; item 0 of the batch is drawn,
    one row per channel (the ``max_channels`` channels with the greatest difference first).

    Returns the ``matplotlib.figure.Figure``, also saved to ``path`` when given.
    """
    from ..comparison.core import capture_pair

    cap = capture_pair(a, b, inputs, device=device, dtype=dtype, align=align, layers=[layer])
    al = cap.layers[0]
    if al.torch is None:
        raise BadInputError(f"Layer '{layer}' has no PyTorch counterpart: {al.why_missing}.")
    k_map, t_map = np.asarray(al.keras[0]), np.asarray(al.torch[0])
    if k_map.shape != t_map.shape:
        raise BadInputError(f"Layer '{layer}': Keras gives {k_map.shape}, PyTorch {t_map.shape} (channels-first): nothing to overlay.")
    if k_map.ndim < 2:
        k_map, t_map = k_map[None, :], t_map[None, :]
    diff = np.abs(k_map.astype(np.float64) - t_map)
    per_channel = diff.reshape(diff.shape[0], -1).max(axis=1)
    order = np.argsort(-per_channel, kind="stable")[:max_channels]
    lim = (float(min(k_map.min(), t_map.min())), float(max(k_map.max(), t_map.max())))
    dlim = (0.0, float(diff.max()) or 1.0)
    fig = _figure(9, 2.0 * len(order) + 1.2)
    grid = fig.subplots(len(order), 3, squeeze=False)
    for row, c in enumerate(order):
        for col, (label, m, l, cmap) in enumerate(
            (("Keras", k_map[c], lim, "viridis"), ("PyTorch", t_map[c], lim, "viridis"), ("|Keras - PyTorch|", diff[c], dlim, _HEAT))
        ):
            gid = f"diff:{c}" if col == 2 else f"{label.lower()}:{c}"
            _show_map(grid[row, col], m, gid=gid, title=f"{label}, channel {c}", lim=l, cmap=cmap)
    _colorbar(fig, grid[:, :2].ravel().tolist(), lim, "viridis", "activation")
    _colorbar(fig, grid[:, 2].tolist(), dlim, _HEAT, "|difference|")
    flat = int(np.argmax(diff))
    where = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    fig.suptitle(
        f"'{layer}' ({al.type}), batch item 0: greatest |difference| {diff.max():.3g} at channel {where[0]}, "
        f"position {where[1:]}\n{len(order)} of {diff.shape[0]} channels shown, most different first",
        fontsize=9,
    )
    return _finish(fig, path)
