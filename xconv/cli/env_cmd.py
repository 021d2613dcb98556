"""``xconv env``: versions for bug reports."""

from __future__ import annotations


def add_arguments(p) -> None:
    """Declare the arguments of ``xconv env`` on the subparser ``p``."""
    p.add_argument("--json", action="store_true", help="print JSON")


# distribution names: the versions are read from the installed metadata, so `env` imports none
# of the frameworks (TensorFlow alone costs seconds); tensorflow-cpu counts as tensorflow
_PACKAGES = {
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "tf2onnx": ("tf2onnx",),
    "onnxscript": ("onnxscript",),
    "matplotlib": ("matplotlib",),
    "safetensors": ("safetensors",),
    "h5py": ("h5py",),
}


def _installed(dists: tuple[str, ...]) -> str:
    from importlib import metadata

    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def versions(cuda: bool = True) -> dict[str, str]:
    """Name -> version of Python, the platform, xconv, NumPy and every framework xconv uses,
    read from the installed packages' metadata (``"not installed"`` where absent); with ``cuda``,
    torch's CUDA version and the GPUs it sees (torch is the one framework imported)."""
    import platform

    import numpy

    from .. import __version__

    out = {"python": platform.python_version(), "platform": platform.platform(), "xconv": __version__, "numpy": numpy.__version__}
    out.update({name: _installed(dists) for name, dists in _PACKAGES.items()})
    if not cuda or out["torch"] == "not installed":
        return out
    try:  # torch is light next to TensorFlow, and only it can say which GPUs it sees
        import torch

        out["cuda"] = torch.version.cuda or "none"
        out["cuda_devices"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
    except ImportError:
        pass
    return out


def run(args) -> int:
    """``xconv env`` with the parsed ``args``: print the versions; always 0."""
    import json

    info = versions()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        w = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{w}}  {v}")
    return 0
