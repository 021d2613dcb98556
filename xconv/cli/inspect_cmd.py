"""``xconv inspect SRC [--layer NAME]``: every weight in Keras and PyTorch layouts, with what each axis means."""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv inspect`` on the subparser ``p``."""
    p.add_argument("source", help="zoo:NAME (a reference model) or a file: .keras .h5 .weights.h5 .pt .pth .ckpt .bin .safetensors .safetensors.index.json .onnx (FILE.pt:KEY: one entry of a checkpoint dict)")
    p.add_argument("--layer", action="append", dest="layers", metavar="NAME", help="only this layer (repeat for more); for a tensor file, NAME or NAME.weight ...")
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


def select_layers(rows, names: list[str], source: str):
    """The rows of the layers named (a tensor file's ``conv1`` also picks ``conv1.weight``, ``conv1.bias``)."""
    from ..errors import BadInputError

    def picked(row, name):
        return row.layer == name or row.layer.startswith(name + ".")

    missing = [n for n in names if not any(picked(r, n) for r in rows)]
    if missing:
        have = list(dict.fromkeys(r.layer for r in rows))
        raise BadInputError(f"No layer {', '.join(map(repr, missing))} in {source!r}; its layers with weights: {have[:30]}.")
    return [r for r in rows if any(picked(r, n) for n in names)]


def run(args) -> int:
    """``xconv inspect`` with the parsed ``args``: print every weight in both layouts; 0, or 2 on bad input."""
    from ..weight_axes import describe, describe_file, format_table, to_json
    from ._sources import refuse_bare_zoo_names

    if args.source.startswith("zoo:"):
        rows = describe(load_source(args.source))  # the torch twin: no TensorFlow needed
    else:
        refuse_bare_zoo_names(args.source)
        rows = describe_file(args.source)
    if args.layers:
        rows = select_layers(rows, args.layers, args.source)
    print(to_json(rows) if args.json else format_table(rows))
    return 0
