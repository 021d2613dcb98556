"""``xconv inspect SRC``: every weight in Keras and PyTorch layouts, with what each axis means."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("source", help="zoo:NAME (a reference model) or a file: .keras .h5 .weights.h5 .pt .pth .safetensors .onnx")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def load_source(source: str, framework: str = "torch"):
    """A model from ``zoo:NAME``; model files come with the weight-file commands."""
    from .. import zoo
    from ..errors import BadInputError

    if source.startswith("zoo:"):
        return zoo.build(source[4:], framework, seed=0)
    raise BadInputError(
        f"Cannot read {source!r}: give a reference model as zoo:NAME (one of {', '.join(zoo.names())})."
    )


def run(args) -> int:
    from ..describe import describe, describe_file, format_table, to_json

    if args.source.startswith("zoo:"):
        rows = describe(load_source(args.source))  # the torch twin: no TensorFlow needed
    else:
        rows = describe_file(args.source)
    print(to_json(rows) if args.json else format_table(rows))
    return 0
