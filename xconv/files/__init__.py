"""Weight files, read without running their code and written under one output rule.

Formats (:mod:`.formats`): Keras 3 ``.keras`` and ``.weights.h5``, legacy Keras 2 ``.h5``
(whole model or weights), PyTorch ``.pt``/``.pth`` state_dicts (and ``.ckpt``/``.bin`` checkpoints,
read), ``.safetensors``, Hugging Face sharded checkpoints through their index (read) and
``.onnx`` initializers (read). A file's format comes from its extension and is checked against
its first bytes. One reader and writer per format (:mod:`.keras`, :mod:`.torch_pt`,
:mod:`.safetensors`, :mod:`.onnx_file`), one dtype table (:mod:`.dtypes`: every dtype is moved
bit for bit or refused) and one output rule (:mod:`.output`).

Safety: ``torch.load(weights_only=True)`` always; Keras models load with ``safe_mode=True``
and a Lambda layer (arbitrary code) is refused before Keras sees the file; sizes are checked
before anything is inflated or allocated; every output goes through :class:`.output.Outputs`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError
from .formats import FORMATS, detect_format
from .formats import ext_of as _ext
from .keras import config_of as _config_of
from .keras import h5_datasets as _h5_datasets
from .keras import keras_model_tensors, load_keras_model, save_keras
from .output import Outputs, atomic_output
from .safetensors import SafetensorsView, iter_safetensors, safetensors_header, write_safetensors_stream

__all__ = [
    "detect_format", "read_tensors", "write_tensors", "atomic_output", "Outputs", "load_keras_model",
    "TensorFile", "FORMATS", "save_keras", "input_files", "iter_safetensors", "safetensors_header", "write_safetensors_stream",
]  # fmt: skip


@dataclass
class TensorFile:
    """Named arrays from a file and the layout their axes follow ('keras' or 'torch')."""

    path: str
    format: str
    layout: str
    tensors: Mapping[str, np.ndarray]
    model: object = None  # the Keras model, when the file held one


def zoo_keras_model(src: str):
    """The Keras model that ``zoo:NAME`` stands for in file commands (convert, diff): seeded weights, random biases."""
    from .. import zoo

    return zoo.build(src[4:], "keras", seed=0, random_biases=True)


def read_tensors(path) -> TensorFile:
    """Every weight tensor of a file, by name, with the layout its axes follow."""
    path = os.fspath(path)
    if path.startswith("zoo:"):
        model = zoo_keras_model(path)
        return TensorFile(path, "keras", "keras", keras_model_tensors(model), model)
    fmt = detect_format(path)
    if fmt in ("keras", "h5"):
        config = _config_of(path, fmt)
        if config is None:  # legacy weights-only .h5
            return TensorFile(path, fmt, "keras", _h5_datasets(path))
        model = load_keras_model(path)
        return TensorFile(path, fmt, "keras", keras_model_tensors(model), model)
    if fmt == "keras-weights":
        return TensorFile(path, fmt, "keras", _h5_datasets(path))
    if fmt == "torch":
        from .torch_pt import read_torch

        return TensorFile(path, fmt, "torch", read_torch(path))
    if fmt == "sharded":
        from .safetensors import ShardedView

        view = ShardedView(path)
        return TensorFile(path, fmt, view.layout, view)
    if fmt == "safetensors":
        view = SafetensorsView(path)
        layout = view.metadata.get("layout", "torch")
        return TensorFile(path, fmt, layout if layout in ("keras", "torch") else "torch", view)
    from .onnx_file import read_onnx

    return TensorFile(path, fmt, "torch", read_onnx(path))


def input_files(*sources) -> list[str]:
    """The files a run reads for these sources (``None`` and ``zoo:NAME`` skipped): ``FILE`` for
    ``FILE:KEY``, and a sharded checkpoint's index with every shard. Give them all to
    :class:`Outputs` so that no output can replace one of them."""
    from .formats import split_key

    files = []
    for src in sources:
        if src is None or str(src).startswith("zoo:"):
            continue
        path, _ = split_key(os.fspath(src))
        files.append(path)
        if os.path.isfile(path) and detect_format(path) == "sharded":
            from .safetensors import ShardedView

            files.extend(ShardedView(path).shard_paths)
    return files


def write_tensor_file(tmp: str, fmt: str, tensors: Mapping[str, np.ndarray], layout: str = "torch") -> None:
    """Write named arrays to the temporary file ``tmp`` in format ``fmt`` (.pt or .safetensors)."""
    if fmt == "torch":
        from .torch_pt import write_torch

        write_torch(tmp, tensors)
    elif fmt == "safetensors":
        shapes = {}
        for k in tensors:
            v = tensors[k]
            shapes[k] = (tuple(v.shape), v.dtype)
        write_safetensors_stream(tmp, ((k, tensors[k]) for k in tensors), shapes, {"layout": layout})
    else:
        raise BadInputError(f"Cannot write {fmt} as plain tensors: use .pt or .safetensors (Keras files need an architecture).")


def write_tensors(path, tensors: Mapping[str, np.ndarray], *, layout: str = "torch", force: bool = False) -> str:
    """Write named arrays as ``.pt`` (a state_dict) or ``.safetensors``."""
    path = os.fspath(path)
    fmt = detect_format(path, must_exist=False)
    if fmt not in ("torch", "safetensors"):
        raise BadInputError(f"Cannot write {path!r} as plain tensors: use .pt or .safetensors (Keras files need an architecture).")
    return atomic_output(path, lambda tmp: write_tensor_file(tmp, fmt, tensors, layout), force=force)
