"""A minimal reproduction of one diverging layer, as a small file anyone can re-run.

``report.repro("conv4_2.npz")`` writes the first diverging layer's Keras config and weights,
the input(s) Keras' layer received (every input of an Add or Concatenate), Keras' output, and what the PyTorch side computed *from that
same input* (its own modules, run as in the local mode). ``xconv repro FILE`` (``rerun``)
rebuilds the layer in Keras and, through ``keras_to_torch``, in PyTorch, and compares all three:
if xconv's translation agrees with Keras but the recorded PyTorch output does not, the port of
that one layer is wrong; the file holds nothing else of the model.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .errors import BadInputError
from .files import atomic_output

__all__ = ["write_repro", "rerun"]

_FORMAT = "xconv-repro-1"


def write_repro(report, path, layer: str | None = None) -> str:
    """Write the repro of ``layer`` (default: the first local, else accumulated, divergence)."""
    from .frameworks import keras_side as ks

    context = getattr(report, "_context", None)
    if context is None:
        raise BadInputError("This report has no models attached (it was loaded or built by hand); run compare() again.")
    kmodel, tmodule, k_in, dtype, cap = context
    layer = layer or report.first_local_divergence or report.first_divergence
    if layer is None:
        raise BadInputError("Every layer matches: there is no divergence to reproduce. Name a layer: report.repro(path, layer='...').")
    reported = [r.name for r in report.layers]
    skipped = dict(report.skipped)
    if layer in skipped:
        raise BadInputError(f"Layer '{layer}' was not aligned with the PyTorch module ({skipped[layer]}), so there is no PyTorch output to reproduce.")
    if layer not in reported:
        raise BadInputError(f"No layer '{layer}' in this report; its layers: {reported[:16]}{' ...' if len(reported) > 16 else ''}.")
    keras_model = ks.cast(kmodel, dtype)
    base = layer.rsplit("#", 1)[0]  # 'conv#1': the second call of the shared layer 'conv'
    keras_layer = next(l for l in ks.iter_layers(keras_model) if l.name == base)
    captured = next(c for c in ks.capture(keras_model, k_in, names=[base], with_inputs=True, calls=True) if c.name == layer)
    if not captured.inputs:
        raise BadInputError(f"Layer '{layer}' has no input tensors Keras can show; there is nothing to feed a repro.")
    aligned = next(a for a in cap.layers if a.name == layer)
    if cap.capture == "graph":
        torch_out, modules, described = _graph_output(cap, aligned, captured)
    else:
        torch_out, modules, described = _hooks_output(tmodule, aligned, captured, k_in)
    weights = ks.layer_weights(keras_layer)
    config = ks.keras().saving.serialize_keras_object(keras_layer)
    meta = {
        "format": _FORMAT, "layer": layer, "keras_class": type(keras_layer).__name__, "dtype": dtype,
        "weights": list(weights), "torch_modules": modules, "torch_repr": described,
        "input_flatten_of": captured.input_flatten_of, "inputs": len(captured.inputs),
    }  # fmt: skip
    arrays = {f"weight:{k}": v for k, v in weights.items()}
    arrays.update({f"input:{i}": x for i, x in enumerate(captured.inputs)})
    arrays.update({"input": captured.inputs[0], "keras_output": captured.value, "torch_output": torch_out})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    arrays["keras_config"] = np.frombuffer(json.dumps(config, default=str).encode(), dtype=np.uint8)

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_output(os.fspath(path), write, force=True)


def _graph_output(cap, aligned, captured):
    """The torch value of the layer's chain run on Keras' input to it, and what the chain holds."""
    from .comparison.align import _Graph
    from .comparison.core import _local_feed, _run_graph
    from .frameworks import torch_side as ts

    m = aligned.match
    if m is None or m.node is None or not m.feeds or not m.own_node:
        raise BadInputError(f"Layer '{aligned.name}' has no PyTorch op of its own to feed ({m.how if m else 'not aligned'}); nothing to reproduce.")
    module = cap.torch_module
    param = next(iter(ts.module_state(module).values()), None)
    t = ts.torch()
    dev = param.device if param is not None else t.device("cpu")
    tdtype = getattr(t, cap.dtype)
    feed, fed = _local_feed({aligned.name: m}, {aligned.name: captured}, dev, tdtype)
    if not fed:
        raise BadInputError(f"Keras' input to layer '{aligned.name}' does not fit the PyTorch op that starts its chain; nothing to reproduce.")
    tensors = [t.zeros(s, dtype=tdtype, device=dev) for s in cap.graph.input_shapes]  # every value it reads is fed
    out = _run_graph(cap.graph, tensors, {m.node}, feed, ts.module_state(module))[m.node]
    G = _Graph(cap.graph)
    heads = list(m.feeds)
    chain = [n for n in G.names if n in G.node and any(G.is_ancestor(h, n) for h in heads) and G.is_ancestor(n, m.node)]
    paths, described = [], []
    by_path = dict(module.named_modules())
    for n in chain:
        node = G.node[n]
        path = node.module_path
        if path and path not in paths:
            paths.append(path)
            described.append(repr(by_path[path]) if path in by_path else f"{node.module_type} '{path}'")
        elif not path:
            described.append(f"{node.op.replace('aten::', 'torch.')} ({node.source})" if node.source else node.op.replace("aten::", "torch."))
    return out, paths, described


def _hooks_output(tmodule, aligned, captured, k_in):
    from .frameworks import torch_side as ts
    from .layouts import activation_to_torch

    import torch

    out_name = aligned.match.node if aligned.match is not None else aligned.name
    head = getattr(tmodule, "xconv_chains", {}).get(aligned.name, [out_name])[0]
    param = next(tmodule.parameters(), None)
    tdtype = param.dtype if param is not None else torch.float32
    t_in = [activation_to_torch(x, captured.input_flatten_of if x.ndim == 2 else None) for x in captured.inputs]
    acts, _ = ts.capture(tmodule, [activation_to_torch(x) for x in k_in], [out_name], torch.device("cpu"), tdtype, feed={head: t_in})
    if out_name not in acts:
        raise BadInputError(f"The PyTorch module has no module '{out_name}' for layer '{aligned.name}'.")
    modules = dict(tmodule.named_modules())
    return acts[out_name], [out_name], [repr(modules[out_name])] if out_name in modules else []


def rerun(path) -> dict:
    """Rebuild the layer in Keras and PyTorch from a repro file and compare all three outputs."""
    from . import compare, keras_to_torch
    from .frameworks.keras_side import keras

    try:
        data = np.load(os.fspath(path), allow_pickle=False)
        meta = json.loads(bytes(data["meta"]).decode())
        config = json.loads(bytes(data["keras_config"]).decode())
    except (OSError, KeyError, ValueError) as exc:
        raise BadInputError(f"{path!r} is not an xconv repro file: {exc}") from exc
    if meta.get("format") != _FORMAT:
        raise BadInputError(f"{path!r} is not an xconv repro file (format {meta.get('format')!r}).")
    k = keras()
    xs = [data[f"input:{i}"] for i in range(int(meta.get("inputs", 1)))] if "input:0" in data else [data["input"]]
    try:
        layer = k.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as exc:  # an unknown or custom layer class
        raise BadInputError(f"Cannot rebuild Keras layer {meta['keras_class']}: {exc}") from exc
    inps = [k.Input(shape=x.shape[1:], dtype=str(x.dtype)) for x in xs]
    model = k.Model(inps if len(inps) > 1 else inps[0], layer(inps if len(inps) > 1 else inps[0]), name="repro")
    x = xs if len(xs) > 1 else xs[0]
    by_name = {v.path.rsplit("/", 1)[-1]: v for v in layer.weights}
    for key in meta["weights"]:
        by_name[key].assign(data[f"weight:{key}"])
    torch_twin = keras_to_torch(model)
    report = compare(model, torch_twin, x, dtype=meta["dtype"])
    keras_now = np.asarray(k.ops.convert_to_numpy(model(x, training=False)))
    recorded_t = data["torch_output"]
    ref = np.moveaxis(data["keras_output"], -1, 1) if data["keras_output"].ndim >= 3 else data["keras_output"]
    scale = float(np.max(np.abs(ref))) or 1.0
    torch_rel = float(np.max(np.abs(recorded_t.astype(np.float64) - ref))) / scale if recorded_t.shape == ref.shape else float("inf")
    return {
        "layer": meta["layer"],
        "keras_class": meta["keras_class"],
        "keras_reproduced_rel": float(np.max(np.abs(keras_now - data["keras_output"]))) / scale,
        "xconv_translation_rel": report.layers[-1].max_rel if report.layers else None,
        "xconv_translation_ok": report.ok,
        "recorded_torch_rel": torch_rel,
        "recorded_torch_ok": bool(torch_rel <= report.layers[-1].rtol + report.layers[-1].atol / scale) if report.layers else None,
        "torch_modules": meta["torch_modules"],
        "torch_repr": meta["torch_repr"],
    }
