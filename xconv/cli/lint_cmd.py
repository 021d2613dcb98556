"""``xconv lint A B``: porting traps found by reading the two models' configurations."""

from __future__ import annotations


def add_arguments(p) -> None:
    """The arguments of ``xconv lint``."""
    p.add_argument("keras", help="the Keras model: zoo:NAME or a .keras/.h5 file")
    p.add_argument("torch", nargs="?", help="the PyTorch port: zoo:NAME (its twin) or package.module:Class")
    p.add_argument("--kwargs", help="JSON constructor arguments for package.module:Class")
    p.add_argument("--weights", help="a state_dict (.pt/.safetensors) to load into the port (for the Flatten-order check)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _port_argument(args) -> str:
    """TORCH as given, or the zoo twin of a zoo:NAME KERAS; refused before any model loads."""
    from ..errors import BadInputError

    target = args.torch or (args.keras if args.keras.startswith("zoo:") else None)
    if target is None:
        raise BadInputError(
            f"xconv lint {args.keras} needs the PyTorch port too: xconv lint {args.keras} package.module:Class "
            f"(--kwargs '{{...}}' for its constructor, --weights port.pt for its weights), or zoo:NAME for a reference twin."
        )
    if not target.startswith("zoo:") and ":" not in target:
        raise BadInputError(
            f"The port {target!r} is neither zoo:NAME nor package.module:Class; a weights file goes with --weights: "
            f"xconv lint {args.keras} package.module:Class --weights {target}."
        )
    return target


def run(args) -> int:
    """``xconv lint KERAS [TORCH]``: print every trap found; 1 if any, 0 if none."""
    import json

    import numpy as np

    from ..convert import _keras_model_from, _user_module
    from ..linting import lint
    from .. import zoo
    from ._sources import refuse_bare_zoo_names

    refuse_bare_zoo_names(args.keras, args.torch)
    target = _port_argument(args)
    keras_model = _keras_model_from(args.keras)
    if target.startswith("zoo:"):
        module = zoo.build(target[4:], "torch")
        if not args.weights:
            from ..transfer import transfer_weights

            transfer_weights(keras_model, module)
    else:
        module = _user_module(target, args.kwargs)
    if args.weights:
        import torch

        from ..files import read_tensors

        tensors = read_tensors(args.weights).tensors
        module.load_state_dict({k: torch.from_numpy(np.array(tensors[k])) for k in tensors})
    findings = lint(keras_model, module)
    if args.json:
        print(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for f in findings:
            print(f)
        print(f"{len(findings)} finding(s).")
    return 1 if findings else 0
