"""``xconv demo [NAME]``: the core job on a built-in reference model."""

from __future__ import annotations

import sys

DEFAULT = "unet_encoder"


def add_arguments(p) -> None:
    """The arguments of ``xconv demo``."""
    p.add_argument("name", nargs="?", default=DEFAULT, help=f"zoo model, NAME or zoo:NAME (default {DEFAULT}); see 'xconv inspect'")
    add_common(p)


def add_common(p) -> None:
    """The options ``demo`` and ``compare`` share."""
    p.add_argument("--device", default="cpu", help="where the PyTorch side runs: cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="float64 is the strict mode")
    p.add_argument("--batch", type=int, default=1, help="input batch size (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and input (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--local", action="store_true", help="also run each PyTorch layer on Keras' input to it: where error starts")
    p.add_argument("--onnx", action="store_true", help="add ONNX Runtime on each framework's export as a third opinion")
    p.add_argument("--plot", help="also draw the per-layer differences to this picture (.png/.svg/.pdf)")
    p.add_argument("--diff", metavar="LAYER", help="with --diff-plot: draw this layer's maps and their difference")
    p.add_argument("--diff-plot", metavar="PATH", help="picture for --diff")


def run(args) -> int:
    """``xconv demo NAME``: NAME or zoo:NAME, as the other commands write it."""
    name = args.name[4:] if args.name.startswith("zoo:") else args.name
    return run_pipeline(name, args)


def check_arguments(name: str | None, args) -> None:
    """Everything that can be refused before TensorFlow loads and the models are built: the zoo
    ``name`` (None: no zoo model), --batch, --diff with --diff-plot, --device, the picture paths."""
    from .. import zoo
    from ..errors import BadInputError
    from ..frameworks.torch_side import resolve_device

    if name is not None:
        zoo.spec(name)
    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1; received {args.batch}.")
    if bool(args.diff) != bool(args.diff_plot):
        raise BadInputError("--diff LAYER and --diff-plot PATH go together.")
    try:
        resolve_device(args.device)
    except RuntimeError as exc:  # torch.device("gpu")
        raise BadInputError(f"--device {args.device!r} is not a device torch knows: use cpu, cuda or cuda:N.") from exc
    if args.plot or args.diff_plot:
        from ..viz import check_picture_path

        for path in (args.plot, args.diff_plot):
            if path:
                check_picture_path(path)


def run_pipeline(name: str, args) -> int:
    """Build ``name`` in both frameworks, move the weights, compare, print (and draw) the report."""
    from .. import zoo
    from ..comparison import compare
    from ..transfer import transfer_weights

    check_arguments(name, args)
    if not args.json:
        print(f"Building '{name}' in Keras and PyTorch ({args.dtype}, seed {args.seed})...", file=sys.stderr)
    keras_model = zoo.build(name, "keras", seed=args.seed, dtype=args.dtype, random_biases=True)
    torch_model = zoo.build(name, "torch", seed=args.seed, dtype=args.dtype)
    manifest = transfer_weights(keras_model, torch_model)
    x = zoo.sample_input(name, args.batch, seed=args.seed, dtype=args.dtype)
    report = compare(keras_model, torch_model, x, device=args.device, dtype=args.dtype, mode="local" if args.local else "accumulated", onnx=args.onnx)
    if args.plot:
        from ..viz import plot_report

        plot_report(report, path=args.plot)
    if args.diff:
        from ..viz import plot_layer_diff

        plot_layer_diff(keras_model, torch_model, x, args.diff, device=args.device, dtype=args.dtype, path=args.diff_plot)
    if args.json:
        print(report.to_json(indent=2))
    else:
        print(f"Moved {len(manifest.entries)} tensors Keras -> PyTorch (matched by {manifest.matched_by}).")
        print(f"Input {x.shape} (channels-last); every layer compared in channels-first layout:\n")
        print(report)
    return 0 if report.ok else 1
