"""``xconv env``: versions for bug reports."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def versions() -> dict[str, str]:
    import importlib
    import platform

    import numpy

    from .. import __version__

    out = {"python": platform.python_version(), "platform": platform.platform(), "xconv": __version__, "numpy": numpy.__version__}
    for mod in ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx", "matplotlib", "safetensors", "h5py"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # an absent or broken optional package is a fact to report, not an error
            out[mod] = "not installed"
    try:
        import torch

        out["cuda"] = torch.version.cuda or "none"
        out["cuda_devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
    except ImportError:
        pass
    return out


def run(args) -> int:
    import json

    info = versions()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        w = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{w}}  {v}")
    return 0
