"""``xconv layers``: what the registry converts."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args) -> int:
    import json

    from ..registry import families

    fams = families()
    if args.json:
        print(json.dumps([{"family": f.name, "keras": list(f.keras_types), "torch": list(f.torch_types)} for f in fams], indent=2))
        return 0
    w = max(len(f.name) for f in fams)
    for f in fams:
        print(f"{f.name:<{w}}  Keras: {', '.join(f.keras_types):<45}  PyTorch: {', '.join(f.torch_types)}")
    return 0
