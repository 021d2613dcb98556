"""Import optional frameworks on first use, with one message that says how to install them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

# module -> the extra that installs it
_EXTRAS = {
    "keras": "tf",
    "tensorflow": "tf",
    "torch": "",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "tf2onnx": "onnx",
    "matplotlib": "viz",
    "safetensors": "all",
    "h5py": "tf",
}


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` with the pip command that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module.split(".")[0], "all")
        target = f'"xconv[{extra}]"' if extra else "xconv"
        why = f" to {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"xconv needs the '{module}' package{why}, and it could not be imported ({exc}). "
            f"Install it with: pip install {target}"
        ) from exc
