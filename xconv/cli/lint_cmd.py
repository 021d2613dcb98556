"""``xconv lint A B``: porting traps found by reading the two models' configurations."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("keras", help="the Keras model: zoo:NAME or a .keras/.h5 file")
    p.add_argument("torch", nargs="?", help="the PyTorch port: zoo:NAME (its twin) or package.module:Class")
    p.add_argument("--kwargs", help="JSON constructor arguments for package.module:Class")
    p.add_argument("--weights", help="a state_dict (.pt/.safetensors) to load into the port (for the Flatten-order check)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    import json

    import numpy as np

    from ..convert import _keras_model_from, _user_module
    from ..linting import lint
    from .. import zoo

    keras_model = _keras_model_from(args.keras)
    target = args.torch or args.keras
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
