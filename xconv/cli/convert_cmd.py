"""``xconv convert SRC DST``: weights between Keras and PyTorch files, safely."""

from __future__ import annotations

import sys
from collections import Counter


def add_arguments(p) -> None:
    """Add ``xconv convert``'s arguments and help text to the argparse parser ``p``."""
    p.epilog = (
        "Every file written (the output, --manifest, --source and the .pt beside it) is checked before any work: none may "
        "be an input or another output (by path, symlink or hard link), and an existing one needs --force. Each is written "
        "to a hidden .xconv-*.partial file beside it and moved into place at the end; a failing or interrupted run "
        "leaves nothing new behind."
    )
    p.add_argument("source", help="input: .keras, .h5, .weights.h5, .pt, .pth, .ckpt, .bin, .safetensors, model.safetensors.index.json (sharded) or .onnx; FILE.pt:KEY takes the entry KEY of a checkpoint dict (e.g. ckpt.pth:state_dict_ema)")
    p.add_argument("output", help="output: .pt, .pth, .safetensors, .weights.h5 or .keras")
    p.add_argument("--arch", help="Keras architecture (.keras file or zoo:NAME) for weights-only files and for PyTorch -> Keras")
    p.add_argument("--module", help="a PyTorch class package.module:Class to fill (or read) through transfer_weights")
    p.add_argument("--kwargs", help="JSON object of constructor arguments for --module")
    p.add_argument(
        "--source", dest="source_py", metavar="M.PY",
        help="Keras -> PyTorch: also write the generated module's Python source to M.PY and its state_dict beside it "
        "(M.pt); both are side files, protected like the output",
    )  # fmt: skip
    p.add_argument("--manifest", help="also write a JSON manifest (a side file, protected like the output): per tensor, source and target name, shapes, transform")
    p.add_argument("--layout", choices=("torch", "keras"), help="plain tensor files (.pt/.safetensors): move every kernel to this layout, by rank")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs and side files (never an input)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args) -> int:
    """Run ``xconv convert`` on the parsed ``args``: convert the file (or only its layout, with
    ``--layout``) and print a summary or the JSON manifest; returns the exit status, 0."""
    from ._sources import refuse_bare_zoo_names

    refuse_bare_zoo_names(args.source, args.arch)
    if args.quiet:
        from ..files.torch_pt import no_notes

        with no_notes():
            return _convert(args)
    return _convert(args)


def _convert(args) -> int:
    from ..convert import convert_file, convert_layout

    if args.layout:
        manifest = convert_layout(
            args.source, args.output, to=args.layout, force=args.force, manifest=args.manifest, progress=not args.quiet
        )
    else:
        manifest = convert_file(
            args.source, args.output, arch=args.arch, module=args.module, module_kwargs=args.kwargs,
            source=args.source_py, manifest=args.manifest, force=args.force,
        )  # fmt: skip
    if args.json:
        print(manifest.to_json(indent=2))
    elif not args.quiet:
        moved = Counter(e.transform.split(" (")[0].split(";")[0] for e in manifest.entries)  # the move, without its detail
        how = ", ".join(f"{n} {t}" for t, n in moved.most_common())
        print(f"wrote {args.output}: {len(manifest.entries)} tensors, {manifest.direction} ({how})", file=sys.stdout)
    return 0
