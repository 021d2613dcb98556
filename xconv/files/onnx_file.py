"""ONNX initializers, read without running the model; external data confined to the model's folder."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BadInputError
from .dtypes import TABLE


def _external(path: str, init, folder: str) -> None:
    """Load one initializer's external data in place, from a file inside ``folder`` only."""
    from onnx import TensorProto

    info = {e.key: e.value for e in init.external_data}
    location = info.get("location", "")
    where = f"{path!r}: initializer {init.name!r} keeps its data in {location!r}"
    if not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
        raise BadInputError(f"{where}; external data must be a relative path inside the model's folder (no absolute path, no '..').")
    target = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([target, os.path.realpath(folder)]) != os.path.realpath(folder):
        raise BadInputError(f"{where}, which leads outside the model's folder (a symlink?); refused.")
    if not os.path.isfile(target):
        raise BadInputError(f"{where}, which does not exist beside the model.")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else None
    except ValueError as exc:
        raise BadInputError(f"{where} with a bad offset or length.") from exc
    size = os.path.getsize(target)
    if offset < 0 or offset > size or (length is not None and (length < 0 or offset + length > size)):
        raise BadInputError(f"{where} at bytes {offset}..{offset + (length or 0)}, past the end of that file ({size} bytes).")
    with open(target, "rb") as fh:
        fh.seek(offset)
        init.raw_data = fh.read(size - offset if length is None else length)
    del init.external_data[:]
    init.data_location = TensorProto.DEFAULT


def read_onnx(path: str) -> dict[str, np.ndarray]:
    """The initializers of the ONNX model at ``path`` (external data included), name -> array.

    A truncated or corrupt file, sparse initializers, a repeated name or an unknown dtype raise
    BadInputError naming the file.
    """
    from .._optional import require

    onnx = require("onnx", "read .onnx files")
    from onnx import TensorProto, numpy_helper

    size = os.path.getsize(path)
    if size == 0:
        raise BadInputError(f"{path!r} is empty (0 bytes); not an ONNX model.")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise BadInputError(f"Cannot read {path!r}: {type(exc).__name__}. The file is truncated or corrupt.") from exc
    if not model.HasField("graph") or model.ir_version <= 0 or not len(model.opset_import):
        # fields are stored in number order: a file cut between them parses, without its opsets
        raise BadInputError(f"Cannot read {path!r}: not a whole ONNX model (no graph, version or opset). The file is truncated or corrupt.")
    if len(model.graph.sparse_initializer):
        raise BadInputError(f"{path!r} has sparse initializers, which xconv does not read; export them dense.")
    folder = os.path.dirname(os.path.abspath(path))
    out: dict[str, np.ndarray] = {}
    for init in model.graph.initializer:
        if init.name in out:
            raise BadInputError(f"{path!r} has two initializers named {init.name!r}; a valid ONNX model names each once.")
        if init.data_location == TensorProto.EXTERNAL:
            _external(path, init, folder)
        try:
            array = numpy_helper.to_array(init)
        except Exception as exc:
            raise BadInputError(f"Cannot read {path!r}: initializer {init.name!r}: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}.") from exc
        if array.dtype.name not in TABLE:
            raise BadInputError(f"{path!r}: initializer {init.name!r} has dtype {array.dtype}, which xconv does not carry.")
        want = tuple(int(d) for d in init.dims)
        if array.shape != want:
            raise BadInputError(f"{path!r}: initializer {init.name!r} holds {array.size} values for shape {want}; the file is corrupt.")
        out[init.name] = array
    return out
