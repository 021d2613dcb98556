"""``xconv compare zoo:NAME [--plot report.png] [--diff LAYER --diff-plot out.png]``."""

from __future__ import annotations


def add_arguments(p) -> None:
    from .demo import add_common

    p.add_argument("source", help="zoo:NAME: the reference model's Keras and PyTorch twins")
    add_common(p)


def run(args) -> int:
    from ..errors import BadInputError
    from .demo import run_pipeline

    if not args.source.startswith("zoo:"):
        raise BadInputError(f"compare takes zoo:NAME for now; received {args.source!r}.")
    return run_pipeline(args.source[4:], args)
