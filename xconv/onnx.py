"""ONNX as an independent third opinion: export either framework's model, check it, run it.

>>> import xconv.onnx as xo                                        # doctest: +SKIP
>>> xo.export(keras_model, "m.onnx")                               # tf2onnx
>>> xo.export(torch_module, "t.onnx", input_shape=(1, 200, 200))   # torch.onnx, batch dynamic
"""

from __future__ import annotations

import os

from .errors import BadInputError
from .files import atomic_output
from .frameworks import framework_of

__all__ = ["export"]


def export(model, path, *, opset: int | None = None, input_shape=None, force: bool = True) -> str:
    """Export a Keras model (tf2onnx) or a PyTorch module (torch.onnx; give ``input_shape``,
    channels-first without the batch) to ``path``; the batch axis stays dynamic and the file
    passes ``onnx.checker``. Needs ``pip install "xconv[onnx]"``.

    ``opset``: the ONNX opset (default: the exporter's). The file is written atomically, and
    only once it passes the check; ``force=False`` refuses to replace an existing file.
    Returns the path written.
    """
    from .frameworks import onnx_side

    path = os.fspath(path)
    fw = framework_of(model)
    if fw == "keras":
        write = lambda tmp: onnx_side.export_keras(model, tmp, opset)  # noqa: E731
    elif fw == "torch":
        if input_shape is None:
            raise BadInputError("Exporting a PyTorch module needs input_shape (channels-first, without the batch axis).")
        write = lambda tmp: onnx_side.export_torch(model, tmp, tuple(input_shape), opset)  # noqa: E731
    else:
        raise BadInputError(f"export takes a Keras model or a PyTorch module; received {type(model).__name__}.")

    def write_checked(tmp):
        write(tmp)
        onnx_side.check(tmp)

    return atomic_output(path, write_checked, force=force)
