"""ONNX adapter: export (tf2onnx for Keras, torch.onnx for PyTorch), check, and run every tensor."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .._optional import require
from .._quiet import quiet
from ..errors import BadInputError


def onnx():
    """The ``onnx`` package, or an error that says how to install it."""
    return require("onnx", "export and read ONNX models")


def export_keras(model, path: str, opset: int | None = None) -> None:
    """Write ``model`` to ``path`` with tf2onnx, the batch axis dynamic."""
    tf = require("tensorflow", "export Keras models to ONNX")
    tf2onnx = require("tf2onnx", "export Keras models to ONNX")
    spec = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=t.name) for t in model.inputs]

    @tf.autograph.experimental.do_not_convert
    def forward(*xs):
        return model(list(xs) if len(xs) > 1 else xs[0], training=False)

    # from_function works for Sequential and functional models alike (from_keras fails on some Sequential)
    fn = tf.function(forward, input_signature=spec)
    with quiet("tf2onnx"):  # its notes and TensorFlow's deprecations are not the user's to read
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset or 17, output_path=path)


def export_torch(module, path: str, input_shape: Sequence[int], opset: int | None = None) -> None:
    """Write ``module`` to ``path`` with the torch.export-based exporter, the batch axis dynamic."""
    import contextlib
    import io

    import torch

    param = next(module.parameters(), None)
    x = torch.zeros((2, *input_shape), dtype=param.dtype if param is not None else torch.float32)
    # the torch.export-based exporter: constant pads stay constant (the TorchScript one computes
    # them with a Transpose), and each node records its module in 'pkg.torch.onnx.name_scopes'
    # its progress lines, its note that torchvision is missing and torch.export's own deprecation
    # warnings are not ours to print
    with contextlib.redirect_stdout(io.StringIO()), quiet("torch.onnx", "torch.export", "onnxscript"):
        torch.onnx.export(
            module.eval(), (x,), path, dynamo=True, input_names=["input"], external_data=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=opset or 18,
        )  # fmt: skip


def check(path: str) -> None:
    """Refuse a file that does not pass ``onnx.checker`` (full check)."""
    try:
        onnx().checker.check_model(path, full_check=True)
    except Exception as exc:  # onnx raises ValidationError and others
        raise BadInputError(f"{path!r} does not pass onnx.checker: {exc}") from exc


def run_all(path: str, arrays: Sequence[np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Run the model with ONNX Runtime, every node output exposed (Polygraphy's 'mark all').

    Returns (tensor name -> value, node names in graph order, as 'node_name|output').
    """
    ort = require("onnxruntime", "run ONNX models")
    o = onnx()
    model = o.load(path)
    existing = {v.name for v in model.graph.output}
    order = []
    for node in model.graph.node:
        name = node.name
        scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes")
        if scopes:  # torch.export-based exports: ['', 'features', 'features.0', 'conv2d'] -> /features.0/Conv
            import ast

            path = ast.literal_eval(scopes)
            name = f"/{path[-2] if len(path) >= 2 else ''}/{node.op_type}"
        for out in node.output:
            order.append(f"{name}|{out}")
            if out and out not in existing:
                model.graph.output.append(o.helper.ValueInfoProto(name=out))
                existing.add(out)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its notes on the graph (unused initializers, ...) are not the user's
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {i.name: np.asarray(a, dtype=np.float64 if "double" in i.type else np.float32) for i, a in zip(session.get_inputs(), arrays)}
    names = [v.name for v in session.get_outputs()]
    values = session.run(names, feed)
    return dict(zip(names, values)), order


def scope_outputs(order: list[str], layer_names: Sequence[str], style: str) -> dict[str, str]:
    """Layer name -> the ONNX tensor its last node produced, read from the node name scopes.

    style 'keras': tf2onnx keeps TF scopes, 'model_1/conv4_2_1/Relu' (Keras adds '_N' suffixes);
    style 'torch': nodes read as '/conv4_2/Conv' (from the exporter's name-scope metadata).
    """
    names = sorted(set(layer_names), key=len, reverse=True)
    found: dict[str, str] = {}
    for item in order:
        node, out = item.split("|", 1)
        parts = node.split("/")
        if style == "torch":
            scope = parts[-2] if len(parts) >= 2 else ""
            if scope in layer_names:
                found[scope] = out
            continue
        for segment in parts[:-1]:
            match = next((n for n in names if re.fullmatch(re.escape(n) + r"(_\d+)?", segment)), None)
            if match is not None:
                found[match] = out
                break
    return found


def versions() -> dict[str, str]:
    """The onnx version, and onnxruntime's when it is installed, by name."""
    out = {"onnx": onnx().__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return out
