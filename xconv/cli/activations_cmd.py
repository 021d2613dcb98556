"""``xconv activations SRC [--layer NAME ...] [--input IMAGE|NPY] -o out.png``: feature maps."""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv activations`` on the subparser ``p``."""
    p.add_argument("source", help="zoo:NAME or a .keras/.h5 model")
    p.add_argument("--layer", action="append", dest="layers", help="a layer to draw (repeat; default: every conv layer)")
    p.add_argument("--input", help="a .npy array (channels-last) or a .png/.jpg image; default: the zoo's sample input")
    p.add_argument("--resize", action="store_true", help="resize an image to the model's input size")
    p.add_argument("--max-channels", type=int, default=32, help="maps drawn per layer (default 32)")
    p.add_argument("--max-rows", type=int, default=12, help="rows of maps in the picture, a layer's heading counted as 0.7 (default 12: under two screens)")
    p.add_argument("-o", "--output", required=True, help="picture to write: .png, .svg, .pdf or .jpg")


def run(args) -> int:
    """``xconv activations`` with the parsed ``args``: draw the feature maps; 0 when written, 2 on bad input."""
    from .. import zoo
    from ..errors import BadInputError
    from ..viz import check_picture_path, plot_feature_maps
    from ._sources import load_model, read_input, refuse_bare_zoo_names

    refuse_bare_zoo_names(args.source)
    check_picture_path(args.output)  # before the model is built
    if args.max_channels < 1 or args.max_rows < 1:
        raise BadInputError(f"--max-channels and --max-rows must be >= 1; received {args.max_channels}, {args.max_rows}.")
    model = load_model(args.source)
    if args.input:
        x = read_input(args.input, model, resize=args.resize)
    elif args.source.startswith("zoo:"):
        x = zoo.sample_input(args.source[4:])
    else:
        raise BadInputError("Give --input (a .npy array or an image) for a model file.")
    plot_feature_maps(model, x, args.layers, max_channels=args.max_channels, max_rows=args.max_rows, path=args.output)
    print(f"wrote {args.output}")
    return 0
