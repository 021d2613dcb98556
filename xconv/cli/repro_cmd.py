"""``xconv repro FILE``: re-run one diverging layer from a repro file in Keras and PyTorch."""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv repro`` on the subparser ``p``."""
    p.add_argument("file", help="a repro file written by report.repro(path)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    """``xconv repro`` with the parsed ``args``: re-run the saved layer in both frameworks; 0 when the recorded torch modules match Keras, 1 when they differ, 2 bad input."""
    import json

    from ..repro import rerun

    r = rerun(args.file)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"layer '{r['layer']}' ({r['keras_class']}), rebuilt from {args.file}:")
        print(f"  Keras, re-run on the recorded input:   {r['keras_reproduced_rel']:.2e} relative to the recorded Keras output")
        print(f"  xconv's PyTorch translation:           {r['xconv_translation_rel']:.2e} ({'matches' if r['xconv_translation_ok'] else 'DIFFERS'})")
        print(f"  your PyTorch modules, as recorded:     {r['recorded_torch_rel']:.2e} ({'matches' if r['recorded_torch_ok'] else 'DIFFERS'})")
        print(f"  your modules: {'; '.join(r['torch_repr'])}")
        if r["xconv_translation_ok"] and not r["recorded_torch_ok"]:
            print("Verdict: Keras and a faithful translation agree; the port of this layer computes something else.")
    return 0 if r["recorded_torch_ok"] else 1
