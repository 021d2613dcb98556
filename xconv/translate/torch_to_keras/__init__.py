"""PyTorch -> Keras 3: a module exported with ``torch.export``, converted op by op.

The package mirrors the Keras -> PyTorch direction: :mod:`.converters` keys one converter per
ATen op (or whole-module unit) and rejects duplicates; one file per op family (``conv``,
``pool``, ``norm``, ``activation``, ``shape``, ``indexing``, ``reduction``, ``elementwise``,
``pad``, ``resize``, ``linear``, ``rnn``, ``attention``, ``embedding``); :mod:`.walker` walks
the exported graph; :mod:`.values` says how layouts flow. Converters return their result.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import BadInputError

__all__ = ["torch_to_keras", "supported_ops"]


def supported_ops() -> dict[str, str]:
    """Registered op (or ``module:Type`` unit) -> its converter's family, the file it lives in (``torch_to_keras/<family>.py``)."""
    from . import converters

    return {k: c.family for k, c in converters.supported().items()}


def _example_inputs(module, input_shape, example_inputs, batch: int):
    import torch

    if example_inputs is not None:
        args = list(example_inputs) if isinstance(example_inputs, (list, tuple)) else [example_inputs]
        args = [torch.as_tensor(a) for a in args]
        if any(a.dim() == 0 for a in args):
            raise BadInputError("example_inputs must be batched tensors (the batch axis first).")
        if args[0].shape[0] < 2:  # a batch of one would hide which axis is the batch
            args = [torch.cat([a] * batch) for a in args]
        return args
    if input_shape is None:
        raise BadInputError("torch_to_keras needs input_shape (channels-first, without the batch) or example_inputs.")
    shapes = [tuple(input_shape)] if isinstance(input_shape[0], int) else [tuple(s) for s in input_shape]
    param = next(module.parameters(), None)
    tdtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    g = torch.Generator().manual_seed(0)
    return [torch.randn((batch, *s), generator=g, dtype=tdtype) for s in shapes]


def _dtype_of(module, args) -> str:
    """The module's float dtype: of its first float parameter or buffer, else of its inputs."""
    import itertools

    for t in itertools.chain(module.parameters(), module.buffers(), args):
        if t.is_floating_point():
            return str(t.dtype).replace("torch.", "")
    return "float32"


def _variable(layer, key: str):
    """The weight of ``layer`` called ``key`` ('kernel', 'query/kernel')."""
    found = [v for v in layer.weights if v.path == f"{layer.name}/{key}" or v.path.endswith("/" + key)]
    if len(found) != 1:
        raise BadInputError(f"Keras layer '{layer.name}' has {len(found)} weights named '{key}': {[v.path for v in layer.weights]}.")
    return found[0]


def torch_to_keras(
    module,
    input_shape: Sequence | None = None,
    *,
    example_inputs=None,
    name: str | None = None,
    dtype: str | None = None,
):
    """Export ``module`` and build a channels-last Keras functional model computing the same.

    ``input_shape`` is channels-first without the batch (a list of shapes for several inputs);
    or give ``example_inputs`` (batched tensors, e.g. integer token ids). Keras layer names are
    module paths (``layer1.0.conv1``), so ``xconv.compare(keras_model, module, x)`` lines them
    up. Inputs and outputs are channels-last maps or plain tensors, as ``compare`` expects.
    The model carries ``xconv_align`` (layer -> module path, None for a helper step),
    ``xconv_nodes`` (layer -> exported node) and ``xconv_layouts`` (layer -> the torch dim each
    Keras axis holds). Raises ``UnsupportedLayerError`` naming the op, the module path and the
    source line for anything it cannot translate; ``ExportFailedError`` with torch's reason if
    the module does not export.

    >>> import torch                                                   # doctest: +SKIP
    >>> k = torch_to_keras(torch.nn.Conv2d(3, 8, 3), (3, 32, 32))       # doctest: +SKIP
    """
    import numpy as np

    from ...capture.torch_graph import export
    from ...frameworks.keras_side import keras
    from . import converters
    from .walker import _Walk, layer_maps

    k = keras()
    batch = 2
    args = _example_inputs(module, input_shape, example_inputs, batch)
    batch = int(args[0].shape[0])
    dtype = dtype or _dtype_of(module, args)
    graph = export(module, args, decompose=True, keep_whole=converters.keep_whole())
    walk = _Walk(k, graph, module, dtype, batch)
    inputs = walk.inputs()
    walk.run()
    outputs = walk.outputs()
    model = k.Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                    name=name or type(module).__name__)  # fmt: skip
    for layer, arrays in walk.weights:
        if isinstance(arrays, (list, tuple)):
            layer.set_weights([np.asarray(a, dtype=dtype) for a in arrays])
            continue
        for key, value in arrays.items():
            var = _variable(layer, key)
            var.assign(np.asarray(value, dtype=var.dtype))
    model.xconv_align, model.xconv_nodes, model.xconv_layouts = layer_maps(walk, model)  # read by compare
    return model
