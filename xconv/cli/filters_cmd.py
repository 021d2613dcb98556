"""``xconv filters SRC --layer NAME -o out.png``: a conv layer's kernels as a grid of tiles.

With ``--after SRC2``: the same layer before (SRC) and after (SRC2), and the change.
"""

from __future__ import annotations

MAX_TILE_ROWS = 20  # xconv.viz.MAX_TILE_ROWS (not imported here: matplotlib waits for the command)


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv filters`` on the subparser ``p``."""
    p.add_argument("source", help="zoo:NAME, a .keras/.h5 model, a .pt/.pth/.safetensors state_dict, or a .npy kernel")
    p.add_argument("--layer", help="the conv layer (for a state_dict: the module name, e.g. conv1)")
    p.add_argument("-o", "--output", required=True, help="picture to write: .png, .svg, .pdf or .jpg")
    p.add_argument("--normalize", choices=("symmetric", "global", "filter"), help="colour scale (default: symmetric for signed weights)")
    p.add_argument("--max-filters", type=int, default=64, help="draw at most this many filters (default 64)")
    p.add_argument("--max-channels", type=int, default=8, help="and this many input channels (default 8)")
    p.add_argument("--max-rows", type=int, default=MAX_TILE_ROWS, help=f"and this many rows of tiles (default {MAX_TILE_ROWS}: under two screens)")
    p.add_argument("--rgb", action=__import__("argparse").BooleanOptionalAction, default=None, help="one RGB tile per filter (default: when the layer has 3 input channels)")
    p.add_argument("--layout", choices=("keras", "torch"), help="layout of a .npy kernel")
    p.add_argument(
        "--axis", type=int, choices=(1, 2, 3), default=1,
        help="3D kernels: slice the window along the axis of input spatial axis 1, 2 or 3 (default 1; "
        "conv3d_demo's colour-depth axis is 3)",
    )  # fmt: skip
    p.add_argument("--after", metavar="SRC2", help="the same layer after training (a second model or file): draw before, after and the change")


def run(args) -> int:
    """``xconv filters`` with the parsed ``args``: draw the kernels (or their change); 0 when written, 2 on bad input."""
    from ..viz import check_limits, check_picture_path, plot_filters, plot_weights_change
    from ._sources import kernel_source, refuse_bare_zoo_names

    refuse_bare_zoo_names(args.source, args.after)
    check_picture_path(args.output)  # before any model is built
    check_limits(args.max_filters, args.max_channels, args.max_rows)
    obj, layer, layout = kernel_source(args.source, args.layer, args.layout)
    if args.after:
        after, after_layer, after_layout = kernel_source(args.after, args.layer, args.layout)
        plot_weights_change(
            obj, after, layer, layout=layout, after_layer=after_layer, after_layout=after_layout,
            max_filters=args.max_filters, max_channels=args.max_channels, max_rows=args.max_rows,
            slice_axis=args.axis - 1, path=args.output,
        )  # fmt: skip
    else:
        plot_filters(
            obj, layer, layout=layout, normalize=args.normalize, max_filters=args.max_filters,
            max_channels=args.max_channels, rgb=args.rgb, slice_axis=args.axis - 1, max_rows=args.max_rows,
            path=args.output,
        )  # fmt: skip
    print(f"wrote {args.output}")
    return 0
