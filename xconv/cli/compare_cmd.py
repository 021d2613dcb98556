"""``xconv compare A [B]``: a Keras model against a PyTorch module (or an ONNX file), layer by layer.

A and B are each ``zoo:NAME``, a Keras file (``.keras``, ``.h5``), an ``.onnx`` file, or a PyTorch
module class (``path/to/file.py:Class`` or ``package.module:Class``, built with no arguments or
``--kwargs JSON``). The module's weights come from ``--weights`` (a state_dict), else they are moved
from the Keras side. ``xconv compare zoo:NAME`` alone compares a reference model's two twins.
"""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv compare`` on the subparser ``p``."""
    from .demo_cmd import add_common

    p.add_argument("a", metavar="A", help="the reference: zoo:NAME, model.keras/.h5, model.onnx, file.py:Class or package.module:Class")
    p.add_argument("b", metavar="B", nargs="?", help="the other side, in the same forms (left out: A's zoo twins)")
    p.add_argument("--weights", help="state_dict for the PyTorch module (.pt/.pth/.safetensors, read safely); default: moved from the Keras side")
    p.add_argument("--kwargs", help="JSON constructor arguments for the module class, e.g. '{\"width\": 64}'")
    p.add_argument("--input", help="a .npy batch in A's layout, or an image (resized to the model's input); default: seeded random")
    p.add_argument("--input-layout", choices=("torch", "keras"), default=None,
                   help="the layout the PyTorch module takes: 'keras' for a port that transposes its input itself "
                   "(default: channels-first, or the Keras layout where the module fails on channels-first and runs on it)")
    add_common(p)


def run(args) -> int:
    """``xconv compare`` with the parsed ``args``: compare A and B layer by layer; 0 match, 1 mismatch, 2 bad input."""
    from ..errors import BadInputError
    from ._sources import refuse_bare_zoo_names
    from .demo_cmd import run_pipeline

    refuse_bare_zoo_names(args.a, args.b)
    if args.b is None:
        if not args.a.startswith("zoo:"):
            raise BadInputError(f"compare takes two models (A B), or zoo:NAME alone for a reference model's twins; received only {args.a!r}.")
        return run_pipeline(args.a[4:], args)
    return run_files(args)


def run_files(args) -> int:
    """``xconv compare A B`` on a user's models (files or classes, not zoo:NAME): load both, read
    or make the input, compare, print (and draw) the report; 0 match, 1 mismatch."""
    import numpy as np

    from .. import zoo
    from ..comparison import compare
    from ..errors import BadInputError
    from ..transfer import transfer_weights
    from . import _sources
    from .demo_cmd import check_arguments

    check_arguments(None, args)  # before any model is read
    for src in (args.a, args.b):
        if src.startswith("zoo:"):
            zoo.spec(src[4:])  # an unknown name fails before any framework loads
    fa, a = _sources.load_side(args.a, None, args.kwargs)
    fb, b = _sources.load_side(args.b, None, args.kwargs)
    if fa is None and fb is None:
        fa, fb = "keras", "torch"
    fa = fa or ("torch" if fb == "keras" else "keras")
    fb = fb or ("torch" if fa == "keras" else "keras")
    if fa is None or {fa, fb} not in ({"keras", "torch"}, {"keras", "onnx"}, {"torch", "onnx"}):
        raise BadInputError(f"compare takes a Keras model and a PyTorch module (or one of them and an .onnx file); received {fa} and {fb}.")
    if args.a.startswith("zoo:"):
        a = zoo.build(args.a[4:], fa, seed=args.seed, random_biases=True) if fa == "keras" else zoo.build(args.a[4:], fa, seed=args.seed)
    if args.b.startswith("zoo:"):
        b = zoo.build(args.b[4:], fb, seed=args.seed, random_biases=True) if fb == "keras" else zoo.build(args.b[4:], fb, seed=args.seed)
    sides = {fa: a, fb: b}
    keras_model, module = sides.get("keras"), sides.get("torch")
    if module is not None:
        if args.weights:
            _sources.load_state_dict_file(module, args.weights)
        elif keras_model is not None:
            manifest = transfer_weights(keras_model, module)
            if not args.json:
                print(f"Moved {len(manifest.entries)} tensors Keras -> PyTorch (matched by {manifest.matched_by}); give --weights to use your own.", file=sys.stderr)
        else:
            raise BadInputError("A PyTorch module against an .onnx file needs its weights: give --weights FILE.")
    elif args.weights:
        raise BadInputError("--weights is for a PyTorch module side; neither side is one.")
    x = _input(args, fa, a, keras_model, module)
    report = compare(
        a, b, x, device=args.device, dtype=args.dtype, mode="local" if args.local else "accumulated", onnx=args.onnx,
        input_layout=args.input_layout,
    )
    if args.plot:
        from ..viz import plot_report

        plot_report(report, path=args.plot)
    if args.diff:
        from ..viz import plot_layer_diff

        if keras_model is None or module is None:
            raise BadInputError("--diff draws a Keras layer against its PyTorch twin: give a Keras model and a module.")
        plot_layer_diff(a, b, x, args.diff, device=args.device, dtype=args.dtype, path=args.diff_plot)
    if args.json:
        print(report.to_json(indent=2))
    else:
        print(f"Input {tuple(np.shape(x))} in {args.a}'s layout; every layer compared in channels-first layout:\n")
        print(report)
    return 0 if report.ok else 1


def _input(args, first: str, a, keras_model, module):
    """``--input`` (a .npy in A's layout, or an image), else a seeded random batch of the model's shape."""
    import os

    import numpy as np

    from .. import layouts
    from ..errors import BadInputError
    from . import _sources

    if keras_model is not None:
        shape = tuple(keras_model.inputs[0].shape[1:])  # channels-last
    elif first == "onnx":
        from ..frameworks import onnx_side

        dims = onnx_side.onnx().load(a, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        shape = tuple(d.dim_value or None for d in dims[1:])
    else:
        shape = None
    if args.input:
        ext = os.path.splitext(args.input)[1].lower()
        if ext == ".npy":
            x = _sources.load_arrays(args.input)[""]
            if x.dtype.kind not in "fiu":
                raise BadInputError(f"{args.input!r} holds {x.dtype} values; give a numeric array.")
            x = x.astype(args.dtype)
        elif keras_model is None:
            raise BadInputError("An image input needs a Keras side to know the input's size; give a .npy array.")
        else:
            x = _sources.read_input(args.input, keras_model, resize=True).astype(args.dtype)
            if first != "keras":
                x = layouts.activation_to_torch(x)
        return x
    if shape is None or any(s is None for s in shape):
        raise BadInputError(f"The model's input shape {shape} is not fixed: give an input with --input FILE.npy.")
    x = np.random.default_rng(args.seed).normal(size=(args.batch, *shape)).astype(args.dtype)
    return x if first in ("keras", "onnx") and (first == "keras" or _onnx_is_keras(a)) else layouts.activation_to_torch(x)


def _onnx_is_keras(path) -> bool:
    from ..frameworks import onnx_side

    return "tf2onnx" in onnx_side.onnx().load(path, load_external_data=False).producer_name
