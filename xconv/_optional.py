"""Import optional frameworks on first use, with one message that says how to install them."""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

from ._quiet import set_tf_log_default, tf_startup_quiet
from .errors import MissingDependencyError

# importing these imports TensorFlow (Keras on its default backend)
_LOADS_TF = {"keras", "tensorflow", "tf2onnx"}
_FIRST_TF_IMPORT = threading.Lock()

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
    """Import ``module`` or raise :class:`MissingDependencyError` with the pip command that fixes it.

    TensorFlow's first import (through Keras too) runs with ``TF_CPP_MIN_LOG_LEVEL=2`` unless the
    user set a level, and without the start-up lines that level hides (see :mod:`xconv._quiet`).
    """
    try:
        if module.split(".")[0] in _LOADS_TF and "tensorflow" not in sys.modules:
            with _FIRST_TF_IMPORT:  # one redirect of fd 2 at a time (two threads would nest them)
                if "tensorflow" not in sys.modules:
                    set_tf_log_default()
                    with tf_startup_quiet():
                        return importlib.import_module(module)
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module.split(".")[0], "all")
        target = f'"xconv[{extra}]"' if extra else "xconv"
        why = f" to {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"xconv needs the '{module}' package{why}, and it could not be imported ({exc}). "
            f"Install it with: pip install {target}"
        ) from exc
