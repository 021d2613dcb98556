"""The format table: every weight file type xconv knows, by extension, and how to recognise it."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import BadInputError

_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"


@dataclass(frozen=True)
class Format:
    """One row of the format table: its ``name``, file ``extensions``, the ``layout`` its tensors
    follow ('keras' or 'torch'), whether convert ``writes`` it, and ``what`` it is, in words."""

    name: str
    extensions: tuple[str, ...]
    layout: str  # the layout its tensors follow ('keras' or 'torch')
    writes: bool  # convert can write it
    what: str


TABLE = (
    Format("keras", (".keras",), "keras", True, "Keras 3 model archive (zip)"),
    Format("keras-weights", (".weights.h5",), "keras", True, "Keras 3 weights (HDF5)"),
    Format("h5", (".h5", ".hdf5"), "keras", False, "legacy Keras 2 model or weights (HDF5)"),
    Format("torch", (".pt", ".pth", ".ckpt", ".bin"), "torch", True, "PyTorch state_dict or training checkpoint (torch.save)"),
    Format("safetensors", (".safetensors",), "torch", True, "safetensors"),
    Format("sharded", (".safetensors.index.json", ".bin.index.json"), "torch", False, "Hugging Face sharded checkpoint (index + shards)"),
    Format("onnx", (".onnx",), "torch", False, "ONNX model initializers"),
)
FORMATS = {ext: f.name for f in TABLE for ext in f.extensions}
BY_NAME = {f.name: f for f in TABLE}
READ_ONLY = (".ckpt", ".bin")  # read as torch.save files, never written: an output is .pt/.pth


_COMPOUND = (".weights.h5", ".safetensors.index.json", ".bin.index.json")


def ext_of(path: str) -> str:
    """``path``'s extension in lower case, with ``.weights.h5`` and ``.safetensors.index.json``
    kept whole (``''`` when it has none)."""
    low = os.fspath(path).lower()
    for ext in _COMPOUND:
        if low.endswith(ext):
            return ext
    return os.path.splitext(low)[1]


def split_key(path) -> tuple[str, str | None]:
    """``FILE:KEY`` (one entry of a torch checkpoint dict, e.g. ``ckpt.pth:state_dict_ema``) as
    ``(FILE, KEY)``; any other path as ``(path, None)``. A file that exists under the whole name wins."""
    path = os.fspath(path)
    head, sep, key = path.rpartition(":")
    if not sep or not key or not head or os.path.lexists(path) or FORMATS.get(ext_of(head)) != "torch":
        return path, None
    if "/" in key or os.sep in key:
        return path, None
    return head, key


def detect_format(path, *, must_exist: bool = True) -> str:
    """The format named by ``path``'s extension, checked against the file's first bytes
    (``FILE:KEY`` names one entry of a torch checkpoint, see :func:`split_key`)."""
    path = os.fspath(path)
    if must_exist:
        path, _ = split_key(path)
    ext = ext_of(path)
    if ext not in FORMATS:
        raise BadInputError(
            f"{path!r}: unknown weight file type {ext or '(none)'!r}; known: {', '.join(FORMATS)} (or zoo:NAME for a reference model)."
        )
    fmt = FORMATS[ext]
    if not must_exist:
        if ext in READ_ONLY:
            raise BadInputError(
                f"Cannot write {path!r}: xconv reads {ext} files but writes a state_dict as .pt/.pth or .safetensors; "
                f"name the output {os.path.basename(path)[: -len(ext)] or 'model'}.pt (torch.load reads it whatever its name)."
            )
        if fmt == "sharded":
            raise BadInputError(f"Cannot write {path!r}: xconv reads a sharded checkpoint through its index but writes one file; name the output model.safetensors.")
        return fmt
    if not os.path.isfile(path):
        raise BadInputError(f"{path!r} is a folder, not a file." if os.path.isdir(path) else f"No such file: {path!r}.")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise BadInputError(f"Cannot read {path!r}: {exc.strerror or exc}.") from exc
    if not head:
        raise BadInputError(f"{path!r} is empty (0 bytes): an interrupted download or copy?")
    expected = {"keras": _ZIP, "keras-weights": _HDF5, "h5": _HDF5}.get(fmt)
    if fmt == "torch" and not (head.startswith(_ZIP) or head[:1] == b"\x80"):
        expected = _ZIP
    if fmt == "sharded":
        if not head.lstrip().startswith(b"{"):
            raise BadInputError(f"{path!r} is not a JSON index of shards (it should start with '{{'): corrupt, or another file renamed?")
    elif fmt == "safetensors":
        if not (len(head) >= 9 and head[8:9] == b"{"):
            raise BadInputError(f"{path!r} is not a safetensors file (no JSON header): truncated, or another format renamed?")
    elif expected is not None and not head.startswith(expected):
        what = "an HDF5 file" if head.startswith(_HDF5) else "a zip archive" if head.startswith(_ZIP) else "something else"
        raise BadInputError(f"{path!r} has the extension of a {fmt} file but is {what}: corrupt, or renamed from another format?")
    return fmt
