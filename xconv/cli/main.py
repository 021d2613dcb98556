"""``xconv`` entry point. Subcommand modules are imported only when their command runs.

Exit codes: 0 ok, 1 a mismatch was found, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2

# command -> (module, help); each module defines add_arguments(parser) and run(args) -> int
COMMANDS = {
    "demo": ("xconv.cli.demo_cmd", "build a reference model in Keras and PyTorch, move the weights, compare every layer"),
    "compare": ("xconv.cli.compare_cmd", "compare a Keras model and a PyTorch module (your files, or zoo:NAME) layer by layer"),
    "inspect": ("xconv.cli.inspect_cmd", "show every weight of a model in Keras and PyTorch layouts"),
    "filters": ("xconv.cli.filters_cmd", "draw a conv layer's kernels as a grid of tiles"),
    "activations": ("xconv.cli.activations_cmd", "draw the feature maps of a model's layers for one input"),
    "convert": ("xconv.cli.convert_cmd", "convert weights between .keras/.h5/.weights.h5 and .pt/.safetensors, with a manifest"),
    "diff": ("xconv.cli.diff_cmd", "compare the tensors of two weight files across formats and layouts"),
    "onnx": ("xconv.cli.onnx_cmd", "export a model to ONNX (tf2onnx / torch.onnx), batch dynamic, checked"),
    "lint": ("xconv.cli.lint_cmd", "find porting traps by reading a Keras model's and its port's configurations"),
    "train-check": ("xconv.cli.train_check_cmd", "train a Keras model and its port for a few steps; compare loss, gradients, optimizer state, weights"),
    "repro": ("xconv.cli.repro_cmd", "re-run one diverging layer from a repro file (report.repro) in both frameworks"),
    "layers": ("xconv.cli.layers_cmd", "list the layer families xconv converts"),
    "env": ("xconv.cli.env_cmd", "print versions of Python, xconv and the frameworks (for bug reports)"),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``xconv`` parser: ``--version`` and one subcommand per entry of ``COMMANDS``, each
    declaring its own arguments (no framework is imported to declare them)."""
    parser = argparse.ArgumentParser(
        prog="xconv",
        description="Move conv networks between Keras and PyTorch and prove, layer by layer, that they match.",
        epilog="Exit codes: 0 ok, 1 mismatch found, 2 bad input or usage.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"xconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # arguments are cheap to declare but live with their command
        importlib.import_module(module).add_arguments(p)
        if name not in ("env", "layers"):
            p.add_argument(
                "--import", dest="imports", action="append", default=[], metavar="MODULE",
                help="import MODULE first (a module name, or a .py file): where your custom Keras layers are "
                "registered (@keras.saving.register_keras_serializable) or your xconv plug-ins; repeatable",
            )  # fmt: skip
    return parser


def import_user_modules(specs) -> None:
    """Import each of ``specs`` (``package.module`` or a path to a ``.py`` file) for its side
    effects: registering custom Keras layers and xconv plug-ins before any file is loaded.
    A ``.py`` file is imported by its name with its folder first on ``sys.path``."""
    from .._quiet import set_tf_log_default, tf_startup_quiet
    from ..errors import BadInputError

    if specs and os.getcwd() not in sys.path:  # as `python -m` would: a module beside the user is found
        sys.path.append(os.getcwd())
    for spec in specs:
        name = spec
        if spec.endswith(".py") or os.sep in spec:
            if not os.path.isfile(spec):
                raise BadInputError(f"--import {spec!r}: no such file.")
            folder, name = os.path.split(os.path.abspath(spec))
            name = name.removesuffix(".py")
            if folder not in sys.path:
                sys.path.insert(0, folder)
        try:
            if "tensorflow" in sys.modules:
                importlib.import_module(name)
            else:  # the module may import Keras: TensorFlow's start-up lines filtered as xconv's own import does
                set_tf_log_default()
                with tf_startup_quiet():
                    importlib.import_module(name)
        except ImportError as exc:
            raise BadInputError(f"--import {spec!r}: cannot import it ({exc}); is it on PYTHONPATH, or give its .py file.") from exc
        except Exception as exc:  # the user's module raised while importing: say where, no traceback
            raise BadInputError(f"--import {spec!r}: importing it raised {type(exc).__name__}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """Run ``xconv`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    0 ok, 1 a mismatch was found, 2 bad input or usage: an :class:`~xconv.errors.XconvError` is
    printed as one line on stderr, in its command-line wording, without a traceback.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's start-up chatter hides our output
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from ..errors import XconvError

    try:
        import_user_modules(getattr(args, "imports", ()))
        return importlib.import_module(args._module).run(args)
    except XconvError as exc:
        print(f"xconv {args.command}: error: {exc.for_cli()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `xconv ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("xconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
