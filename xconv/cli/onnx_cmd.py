"""``xconv onnx SRC -o OUT.onnx``: export a model to ONNX (dynamic batch, checked)."""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv onnx`` on the subparser ``p``."""
    p.add_argument("source", help="zoo:NAME (its Keras model, or its PyTorch twin with --torch) or a .keras/.h5 model")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--torch", action="store_true", help="for zoo:NAME, export the PyTorch twin instead of the Keras model")
    p.add_argument("--opset", type=int, help="ONNX opset (default 17)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


def run(args) -> int:
    """``xconv onnx`` with the parsed ``args``: export and check the file; 0 when written, 2 on bad input."""
    from .. import zoo
    from ..errors import BadInputError
    from ..onnx import export

    import os

    from ._sources import refuse_bare_zoo_names

    refuse_bare_zoo_names(args.source)
    if not args.output.lower().endswith(".onnx"):
        raise BadInputError(f"The output must end in .onnx; received {args.output!r}.")
    folder = os.path.abspath(os.path.dirname(args.output) or ".")
    if not os.path.isdir(folder):  # refused before any model is built
        raise BadInputError(f"Cannot write {args.output!r}: folder {folder!r} does not exist.")
    if os.path.exists(args.output) and not args.force:
        raise BadInputError(f"{args.output!r} exists; pass --force to overwrite it.")
    if args.source.startswith("zoo:"):
        name = args.source[4:]
        spec = zoo.spec(name)
        model = zoo.build(name, "torch" if args.torch else "keras", seed=0, random_biases=True)
        shape = (spec.input_shape[-1], *spec.input_shape[:-1])
    else:
        from ..files import load_keras_model

        model, shape = load_keras_model(args.source), None
    export(model, args.output, opset=args.opset, input_shape=shape, force=True)
    print(f"wrote {args.output}")
    return 0
