"""``xconv train-check A B --loss ... --optimizer ... --steps N``: do a model and its port train the same?

A is the Keras model (zoo:NAME or a .keras/.h5 file), B its PyTorch port (zoo:NAME for the
twin, or package.module:Class with --kwargs, and --weights for a state_dict; without
--weights B starts from A's weights). The batch is seeded noise, or --input; the targets are
seeded and fit the loss (class indices, one-hot, 0/1 or real values), or --targets.
"""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv train-check`` on the subparser ``p``."""
    p.add_argument("keras", help="the Keras model: zoo:NAME or a .keras/.h5 file")
    p.add_argument("torch", help="the PyTorch port: zoo:NAME (its twin) or package.module:Class")
    p.add_argument("--loss", required=True, help="e.g. mse, categorical_crossentropy:from_logits=true,label_smoothing=0.1, huber:delta=0.5")
    p.add_argument("--optimizer", required=True, help="e.g. adam, sgd:learning_rate=0.1,momentum=0.9, torch.adamw:lr=0.001 (docs/training.md)")
    p.add_argument("--torch-optimizer", help="the port's own optimizer, run as given against --optimizer (no twin derived)")
    p.add_argument("--torch-loss", help="the port's own loss, run as given against --loss")
    p.add_argument("--steps", type=int, default=3, help="training steps (default 3)")
    p.add_argument("--batch", type=int, default=2, help="batch size of the seeded batch (default 2)")
    p.add_argument("--dtype", choices=("float32", "float64"), help="float64 is the strict mode (default: the Keras model's)")
    p.add_argument("--input-shape", help="zoo models only: build them for this input, e.g. 32,32,1")
    p.add_argument("--input", help="a .npy batch (channels-last) instead of seeded noise")
    p.add_argument("--targets", help="a .npy target array (one output) instead of seeded targets")
    p.add_argument("--kwargs", help="JSON constructor arguments for package.module:Class")
    p.add_argument("--weights", help="a state_dict (.pt/.safetensors) for the port; it then keeps its own weights")
    p.add_argument("--random-layers", choices=("off", "shared"), default="off", help="dropout off on both sides (default), or on with shared masks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rtol", type=float)
    p.add_argument("--atol", type=float)
    p.add_argument("--failures", action="store_true", help="print only the rows that differ")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _shape(text: str | None):
    from ..errors import BadInputError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise BadInputError(f"--input-shape takes comma-separated integers such as 32,32,1; received {text!r}.") from None


def _targets(model, loss: str, batch: int, rng):
    """Seeded targets that fit the loss, one per output, in Keras's layout."""
    import numpy as np

    out = []
    name = loss.split(":")[0].lower()
    for o in model.outputs:
        shape = (batch, *(int(s) for s in o.shape[1:]))
        classes = shape[-1]
        if "sparse" in name or name.endswith("cross_entropy") and "categorical" not in name:
            out.append(rng.integers(0, classes, shape[:-1]))
        elif "categorical" in name:
            out.append(np.eye(classes)[rng.integers(0, classes, shape[:-1])])
        elif "binary" in name or "bce" in name:
            out.append((rng.random(shape) > 0.5).astype("float64"))
        else:
            out.append(rng.random(shape))
    return out


def run(args) -> int:
    """``xconv train-check`` with the parsed ``args``: train both and compare every step; 0 agree, 1 a divergence, 2 bad input."""
    import json

    import numpy as np

    from .. import zoo
    from ..errors import BadInputError
    from ..training import compare_training
    from ._sources import load_model, refuse_bare_zoo_names

    refuse_bare_zoo_names(args.keras, args.torch)
    shape = _shape(args.input_shape)
    if shape is not None and not args.keras.startswith("zoo:"):
        raise BadInputError("--input-shape rebuilds zoo models only; a model file has its own input shape.")
    if args.batch < 1:
        raise BadInputError(f"--batch must be at least 1; received {args.batch}.")
    keras_model = zoo.build(args.keras[4:], "keras", random_biases=True, input_shape=shape) if args.keras.startswith("zoo:") else load_model(args.keras)
    if args.torch.startswith("zoo:"):
        module = zoo.build(args.torch[4:], "torch", input_shape=shape)
    else:
        from ..convert import _user_module

        module = _user_module(args.torch, args.kwargs)
    if args.weights:
        import torch

        from ..files import read_tensors

        tensors = read_tensors(args.weights).tensors
        module.load_state_dict({k: torch.from_numpy(np.array(tensors[k])) for k in tensors})
    rng = np.random.default_rng(args.seed)
    if args.input:
        from ._sources import load_arrays

        x = load_arrays(args.input)[""]
    else:
        x = rng.random((args.batch, *(int(s) for s in keras_model.inputs[0].shape[1:])))
    if args.targets:
        from ._sources import load_arrays

        targets = [load_arrays(args.targets)[""]]
    else:
        targets = _targets(keras_model, args.loss, len(x), rng)
    optimizer = (args.optimizer, args.torch_optimizer) if args.torch_optimizer else args.optimizer
    loss = (args.loss, args.torch_loss) if args.torch_loss else args.loss
    report = compare_training(
        keras_model, module, x, targets, loss=loss, optimizer=optimizer, steps=args.steps, dtype=args.dtype,
        rtol=args.rtol, atol=args.atol, copy_weights=not args.weights, random_layers=args.random_layers,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.summary())
        print()
        print(report.table(only_failures=args.failures))
        print()
        print(report.verdict())
    return 0 if report.ok else 1
