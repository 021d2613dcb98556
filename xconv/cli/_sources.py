"""What a SRC argument names: ``zoo:NAME``, a Keras model file, or a weights file (read safely)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError

MODEL_EXTS = (".keras", ".h5")


def refuse_bare_zoo_names(*sources: str | None) -> None:
    """``xconv filters two_conv``: no such file, but a zoo model of that name: say how to name it
    (every command writes a reference model ``zoo:NAME``). Checked before anything is read."""
    from .. import zoo

    for source in sources:
        if source and not os.path.exists(source) and source in zoo.names():
            raise BadInputError(f"No file {source!r}; for the reference model, write zoo:{source}.")


def load_model(source: str, framework: str = "keras"):
    """A model: ``zoo:NAME`` (built with the spec's seeded initialisers) or a .keras / .h5 file."""
    from .. import zoo

    if source.startswith("zoo:"):
        return zoo.build(source[4:], framework, seed=0)
    ext = os.path.splitext(source)[1].lower()
    if ext in MODEL_EXTS:
        return load_keras_file(source)
    raise BadInputError(
        f"Cannot use {source!r} as a model: give zoo:NAME (one of {', '.join(zoo.names())}) or a "
        f"Keras model file ({', '.join(MODEL_EXTS)})."
    )


def load_keras_file(path: str):
    """A Keras model file, through the same safe loader as the weight-file commands."""
    from ..files import load_keras_model

    return load_keras_model(path)


def load_arrays(path: str) -> dict[str, np.ndarray]:
    """Tensors of a .npy array, or of any weight file :func:`xconv.files.read_tensors` reads."""
    if os.path.splitext(path)[1].lower() == ".npy":
        if not os.path.isfile(path):
            raise BadInputError(f"No such file: {path!r}.")
        try:
            return {"": np.load(path, allow_pickle=False)}
        except (OSError, ValueError) as exc:  # corrupt, or an object array (a pickle)
            raise BadInputError(f"Cannot read {path!r}: {exc}") from exc
    from ..files import read_tensors

    tensors = read_tensors(path).tensors
    return {k: np.asarray(tensors[k]) for k in tensors}


def kernel_source(source: str, layer: str | None, layout: str | None):
    """``(object, layer, layout)`` for :func:`xconv.viz.kernel_of` from a SRC argument: a model and
    the layer, or a state_dict's tensor (the layer kept, to title the picture) or a ``.npy`` array."""
    ext = os.path.splitext(source)[1].lower()
    if source.startswith("zoo:") or ext in MODEL_EXTS:
        return load_model(source), layer, None
    arrays = load_arrays(source)
    if ext == ".npy":
        if layout not in ("keras", "torch"):
            raise BadInputError(f"{source!r} is a bare array {arrays[''].shape}: say --layout keras or --layout torch.")
        return arrays[""], None, layout
    if not layer:
        raise BadInputError(f"Name the layer with --layer; {source!r} has: {sorted(arrays)[:20]}.")
    key = layer if layer in arrays else f"{layer}.weight"
    if key not in arrays:
        raise BadInputError(f"No tensor '{layer}' or '{layer}.weight' in {source!r}; it has: {sorted(arrays)[:20]}.")
    return arrays[key], layer, layout or "torch"  # the layer named, for the picture's title


def read_input(path: str | None, model, *, resize: bool = False) -> np.ndarray:
    """A batch of one for a Keras model, from a .npy array or a PNG/JPEG image (channels-last)."""
    shape = tuple(model.inputs[0].shape[1:])  # (*spatial, C), None = any
    if path is None:
        raise BadInputError("No input given.")
    if not os.path.isfile(path):
        raise BadInputError(f"No such input file: {path!r}.")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float32)
        if x.ndim == len(shape):
            x = x[None]
        return x
    if ext not in (".png", ".jpg", ".jpeg"):
        raise BadInputError(f"Cannot read input {path!r}: give a .npy array or a .png/.jpg image.")
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:
        raise BadInputError(f"Cannot read image {path!r}: {exc}") from exc
    channels = shape[-1]
    spatial = shape[:-1]
    # a Conv3D model over (H, W, 3, 1) treats the colour axis as a third spatial axis
    colour_as_depth = len(spatial) == 3 and spatial[-1] == 3 and channels == 1
    mode = "RGB" if (channels == 3 or colour_as_depth) else "L"
    if channels not in (1, 3) and not colour_as_depth:
        raise BadInputError(f"The model takes {channels} channels; only 1 (grey) or 3 (RGB) can come from an image.")
    img = img.convert(mode)
    hw = spatial[:2]
    if tuple(img.size[::-1]) != hw and None not in hw:
        if not resize:
            raise BadInputError(
                f"Image {path!r} is {img.size[1]}x{img.size[0]} but the model takes {hw[0]}x{hw[1]}; pass --resize to resize it."
            )
        img = img.resize((hw[1], hw[0]), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    if mode == "L":
        x = x[..., None]
    if colour_as_depth:
        x = x[..., None]
    return x[None]


# ---- the sides of `xconv compare A B` ------------------------------------------------------------


def is_module_spec(source: str) -> bool:
    """``path/to/file.py:Class`` or ``package.module:Class``."""
    head, sep, cls = source.rpartition(":")
    return bool(sep and head and cls.isidentifier() and (head.endswith(".py") or all(p.isidentifier() for p in head.split("."))))


def load_module_class(spec: str):
    """The class named by ``file.py:Class`` (imported from that file) or ``package.module:Class``."""
    import importlib
    import importlib.util
    import sys

    head, _, cls_name = spec.rpartition(":")
    if head.endswith(".py"):
        if not os.path.isfile(head):
            raise BadInputError(f"No such file: {head!r} (from {spec!r}).")
        name = "xconv_user_" + "".join(ch if ch.isalnum() else "_" for ch in os.path.abspath(head))
        folder = os.path.dirname(os.path.abspath(head))
        sys.path.insert(0, folder)  # the file may import its neighbours
        try:
            loader = importlib.util.spec_from_file_location(name, head)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        except Exception as exc:  # the user's file failed to import: say which and why
            sys.modules.pop(name, None)
            raise BadInputError(f"Cannot import {head!r}: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(folder)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(head)
        except ImportError as exc:
            raise BadInputError(f"Cannot import {head!r}: {exc}. Is its package on PYTHONPATH (or give path/to/file.py:{cls_name})?") from exc
        finally:
            sys.path.remove(os.getcwd())
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if isinstance(v, type))
        raise BadInputError(f"{head!r} has no class {cls_name!r}; its classes: {found[:12]}.")
    return cls


def build_user_module(spec: str, kwargs_json: str | None = None):
    """An instance of a user's ``nn.Module`` class, built with no arguments or ``--kwargs JSON``."""
    import json

    cls = load_module_class(spec)
    try:
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
    except json.JSONDecodeError as exc:
        raise BadInputError(f"--kwargs must be a JSON object, e.g. '{{\"width\": 64}}': {exc}") from exc
    if not isinstance(kwargs, dict):
        raise BadInputError(f"--kwargs must be a JSON object; received {type(kwargs).__name__}.")
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise BadInputError(f"{spec!r} is not a torch.nn.Module class.")
    try:
        return cls(**kwargs).eval()  # built here for inference: a fresh module starts in training mode
    except Exception as exc:  # the user's constructor: name it and the arguments given
        raise BadInputError(f"{spec}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed: {type(exc).__name__}: {exc}. Pass constructor arguments with --kwargs JSON.") from exc


def load_state_dict_file(module, path: str) -> None:
    """Load a state_dict file (any torch-side format xconv reads) into ``module`` (read safely, every key checked)."""
    import torch

    from ..files import read_tensors

    from ..files.formats import detect_format, split_key

    if not os.path.isfile(split_key(path)[0]):
        raise BadInputError(f"No such weights file: {path!r}.")
    if detect_format(path) not in ("torch", "safetensors", "sharded"):
        raise BadInputError(
            f"--weights takes the module's state_dict (.pt, .pth, .ckpt, .bin, .safetensors, a sharded *.index.json, "
            f"FILE:KEY for one entry of a checkpoint); received {path!r}."
        )
    tensors = read_tensors(path).tensors
    state = module.state_dict()
    missing = sorted(k for k in state if k not in tensors and not k.endswith("num_batches_tracked"))
    extra = sorted(k for k in tensors if k not in state)
    if missing or extra:
        raise BadInputError(
            f"{path!r} does not fit {type(module).__name__}: missing {missing[:6]}, unexpected {extra[:6]}. "
            f"Save the module's own state_dict (torch.save(model.state_dict(), path)), or leave --weights out to move "
            f"the Keras model's weights across."
        )
    wrong = [(k, tuple(np.shape(tensors[k])), tuple(state[k].shape)) for k in tensors if tuple(np.shape(tensors[k])) != tuple(state[k].shape)]
    if wrong:
        k, got, want = wrong[0]
        raise BadInputError(f"{path!r}: '{k}' has shape {got}, but {type(module).__name__} expects {want}.")
    with torch.no_grad():
        for k, v in tensors.items():
            target = state[k]
            target.copy_(torch.from_numpy(np.array(v)).to(dtype=target.dtype))


def load_side(source: str, framework_hint: str | None, kwargs_json: str | None = None):
    """``(framework, object)`` for one side of ``compare``: 'keras' (model), 'torch' (module), 'onnx' (path).

    ``zoo:NAME`` takes ``framework_hint``, the framework the other side lacks.
    """
    ext = os.path.splitext(source)[1].lower()
    if source.startswith("zoo:"):
        return framework_hint, None  # built later, seeded, once the other side is known
    if ext in MODEL_EXTS:
        return "keras", load_keras_file(source)
    if ext == ".onnx":
        if not os.path.isfile(source):
            raise BadInputError(f"No such file: {source!r}.")
        return "onnx", source
    if is_module_spec(source):
        return "torch", build_user_module(source, kwargs_json)
    from .. import zoo

    if source in zoo.names():
        raise BadInputError(f"Cannot use {source!r} as a side of compare: write zoo:{source} for the zoo model.")
    raise BadInputError(
        f"Cannot use {source!r} as a side of compare: give zoo:NAME, a Keras model file ({', '.join(MODEL_EXTS)}), "
        f"an .onnx file, or a PyTorch module as path/to/file.py:Class or package.module:Class."
    )
