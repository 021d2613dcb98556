"""Keras 3 adapter: layers, weights, activation capture and dtype casting (any Keras backend)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._optional import require
from ..errors import BadInputError, MismatchedModelsError
from ..layouts import LayoutKind


def keras():
    """The ``keras`` module, imported on first use (a clear pip hint if it is not installed)."""
    return require("keras", "work with Keras models")


def to_numpy(value) -> np.ndarray:
    """A backend tensor as NumPy; a TF eager tensor's own ``.numpy()`` avoids a second copy."""
    try:
        return value.numpy()
    except (AttributeError, TypeError, RuntimeError):  # torch on CUDA or with grad, JAX arrays
        return np.asarray(keras().ops.convert_to_numpy(value))


def _read_only(value) -> np.ndarray:
    """A backend tensor as a read-only NumPy view of its memory where it can be (a TF tensor on
    the CPU: its buffer, kept alive by the view), else a copy: no second copy of each activation."""
    try:
        view = np.asarray(memoryview(value))
    except (TypeError, ValueError, BufferError):  # no buffer protocol (JAX, torch, a GPU tensor)
        return to_numpy(value)
    if view.shape != tuple(value.shape) or view.dtype.name != getattr(value.dtype, "name", None):
        return to_numpy(value)  # a buffer NumPy reads otherwise (bfloat16 as bytes)
    return view


def iter_layers(model) -> Iterator:
    """Every non-input layer, in graph order, descending into nested models."""
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and layer.layers:  # a nested model
            yield from iter_layers(layer)
        else:
            yield layer


def short_name(variable) -> str:
    """A Keras variable's name without its layer path: ``conv1/kernel`` -> ``kernel``."""
    return variable.path.rsplit("/", 1)[-1]


def weight_keys(layer) -> list[str]:
    """One key per weight of ``layer``: its short name (``kernel``), or, where short names repeat
    (MultiHeadAttention's four kernels, a Bidirectional's two cells), the path inside the layer
    without the cell level: ``query/kernel``, ``forward/recurrent_kernel``."""
    variables = list(layer.weights)
    shorts = [short_name(v) for v in variables]
    if len(set(shorts)) == len(shorts):
        return shorts
    paths = [v.path.split("/") for v in variables]
    common = 0
    while all(len(p) > common + 1 and p[common] == paths[0][common] for p in paths):
        common += 1
    keys = []
    for parts in paths:
        parts = [p for p in parts[common:-1] if not p.endswith("_cell")] + parts[-1:]
        # Bidirectional names its copies forward_<layer> and backward_<layer>
        parts = [p.split("_", 1)[0] if p.startswith(("forward_", "backward_")) else p for p in parts]
        keys.append("/".join(parts))
    return keys


def layer_weights(layer) -> dict[str, np.ndarray]:
    """``{'kernel': ..., 'bias': ...}`` as NumPy arrays (Keras layout); keys from :func:`weight_keys`."""
    # to_numpy: ops.convert_to_numpy's np.array(tf.Variable) warns under NumPy 2 (a DeprecationWarning in the user's tests)
    return {key: to_numpy(v.value) for key, v in zip(weight_keys(layer), layer.weights)}


def set_layer_weights(layer, arrays: Mapping[str, np.ndarray]) -> None:
    """Assign ``arrays`` (keyed as :func:`weight_keys` names them) to ``layer``'s weights, in each weight's dtype."""
    by_name = dict(zip(weight_keys(layer), layer.weights))
    for key, value in arrays.items():
        by_name[key].assign(np.asarray(value, dtype=by_name[key].dtype))


def weighted_layers(model) -> list:
    """The layers of ``model`` (nested models descended into) that hold weights, in graph order."""
    return [layer for layer in iter_layers(model) if layer.weights]


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history.operation if history is not None else None


_PASS_THROUGH = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "Activation"}


def flatten_source_shape(layer) -> tuple[int, ...] | None:
    """The channels-last shape (no batch) a Flatten turned into this layer's input, if one did."""
    try:
        tensor = layer.input
    except (AttributeError, ValueError):
        return None
    op = _producer(tensor)
    while op is not None and type(op).__name__ in _PASS_THROUGH:
        op = _producer(op.input)
    if op is None or type(op).__name__ != "Flatten":
        return None
    shape = tuple(op.input.shape[1:])
    if len(shape) < 2 or any(s is None for s in shape):
        return None
    return tuple(int(s) for s in shape)


@dataclass(frozen=True)
class Captured:
    """One layer's activation in Keras layout and what is needed to put it in torch layout."""

    name: str
    type: str
    value: np.ndarray
    flatten_of: tuple[int, ...] | None
    inputs: tuple[np.ndarray, ...] = ()  # what the layer received (capture(..., with_inputs=True))
    input_flatten_of: tuple[int, ...] | None = None
    # an inner layer of a traced block (capture(..., blocks=...)): the block's row, the inner layer,
    # its output shape, and where its inputs come from: inner rows' names, or ('in', i) for the block's input i
    block: str = ""
    layer: object = None
    shape: tuple = ()
    sources: tuple = ()

    def torch_view(self, kind: LayoutKind | tuple | None = None) -> np.ndarray:
        """The activation in torch layout, as a *view* where it can be (moveaxis costs nothing
        until read). ``kind`` overrides the guess: CF maps, FLAT a Flatten's vector, PLAIN."""
        from ..layouts import flatten_permutation

        kind = kind or (LayoutKind.FLAT if self.flatten_of else LayoutKind.for_rank(self.value.ndim))
        if isinstance(kind, tuple):  # torch_to_keras: Keras axis i holds torch dim kind[i]
            return np.transpose(self.value, np.argsort(kind))
        if kind == LayoutKind.FLAT and self.flatten_of:
            return self.value[:, flatten_permutation(self.flatten_of)]
        if kind == LayoutKind.CF and self.value.ndim >= 3:
            return np.moveaxis(self.value, -1, 1)
        return self.value


def input_shapes(model) -> list[tuple]:
    """The shape of each of ``model``'s inputs, batch first (``None`` = any size)."""
    return [tuple(t.shape) for t in model.inputs]


def check_inputs(model, arrays: Sequence[np.ndarray]) -> None:
    """Raise BadInputError unless ``arrays`` match ``model``'s inputs in number, rank and every fixed size."""
    expected = input_shapes(model)
    if len(expected) != len(arrays):
        raise BadInputError(
            f"Keras model '{model.name}' takes {len(expected)} input(s); received {len(arrays)}."
        )
    for want, got, t in zip(expected, arrays, model.inputs):
        ok = len(want) == got.ndim and all(w is None or w == g for w, g in zip(want, got.shape))
        if not ok:
            raise BadInputError(
                f"Keras model '{model.name}' input '{t.name}' expects shape {want} (channels-last, None = any); "
                f"received {tuple(got.shape)}. Give the input in the layout of the first model passed."
            )


def capture(
    model, arrays: Sequence[np.ndarray], names: Sequence[str] | None = None, with_inputs: bool = False, calls: bool = False,
    blocks: Sequence[str] = (), read_only: bool = False,
) -> list[Captured]:
    """Run ``model`` once and return every (or every named) layer's output, in graph order.

    ``with_inputs`` also returns what each layer received (for the local-error mode).
    ``calls`` also returns the later calls of a layer called several times (a shared layer),
    named ``name#1``, ``name#2``, ... after the layer's first call, each right after the last of
    the calls it reads.
    ``blocks`` names custom layers (traced into blocks by the translation) whose inner layers get
    rows too, ``block/inner``, just before the block's row: the traced graph
    (:func:`xconv.translate.graph.trace_block`) replayed on the input the block received.
    ``read_only``: each layer's output is a read-only view of the backend's tensor where it can
    be (no copy; what ``compare`` measures), not an array of its own.
    """
    k = keras()
    check_inputs(model, arrays)
    layers = [l for l in model.layers if type(l).__name__ != "InputLayer"]
    if names is not None:
        wanted = set(names)
        layers = [l for l in layers if l.name in wanted]
    outputs, kept, n_in = [], [], []
    for layer in layers:
        try:
            out = layer.output
        except (AttributeError, ValueError):  # e.g. no single output node
            continue
        if isinstance(out, (list, tuple)):  # a layer with several outputs: keep the first
            out = out[0]
        outputs.append(out)
        kept.append(layer)
    entries = [(l.name, l, None) for l in kept]  # (row name, layer, its node: None = the first call)
    if calls:
        first_out = {id(l): o for l, o in zip(kept, outputs)}
        entries = _with_later_calls(model, entries)
        outputs = [first_out[id(l)] if node is None else node.output_tensors[0] for _, l, node in entries]
    traced = _traced_blocks(model, [l for _, l, node in entries if node is None], blocks)
    n_block_in = []
    for layer, _graph in traced:  # what each traced block received, to replay its graph on
        ins = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        outputs.extend(ins)
        n_block_in.append(len(ins))
    if with_inputs:
        for _, layer, node in entries:
            if node is not None:
                ins = list(node.input_tensors)
            else:
                ins = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
            outputs.extend(ins)
            n_in.append(len(ins))
    sub = k.Model(inputs=model.inputs, outputs=outputs)
    dtype = model.inputs[0].dtype
    feed = [np.asarray(a, dtype=dtype) for a in arrays]
    values = sub(feed, training=False)  # sub was built on the list model.inputs
    if not isinstance(values, (list, tuple)):
        values = [values]
    values = list(values)
    block_in = []
    for n in n_block_in:  # taken from the end, before the with_inputs values
        block_in.append(values[len(entries) : len(entries) + n])
        del values[len(entries) : len(entries) + n]
    own = _read_only if read_only else to_numpy
    values = [own(v) for v in values[: len(entries)]] + [to_numpy(v) for v in values[len(entries) :]]
    result = [Captured(name, type(l).__name__, v, _flatten_of_output(l)) for (name, l, _), v in zip(entries, values)]
    if traced:
        result = _with_block_rows(result, traced, block_in, with_inputs)
    if with_inputs:
        rest, out = values[len(entries) :], []
        own = iter(zip(entries, n_in))
        for c in result:
            if c.block:  # an inner row: its inputs came with it
                out.append(c)
                continue
            (_, layer, _node), n = next(own)
            out.append(Captured(c.name, c.type, c.value, c.flatten_of, tuple(rest[:n]), flatten_source_shape(layer)))
            rest = rest[n:]
        result = out
    return result


def _traced_blocks(model, layers, wanted: Sequence[str]) -> list:
    """(layer, traced graph) for each of ``layers`` named in ``wanted`` that traces (first call only)."""
    if not wanted:
        return []
    from ..errors import XconvError
    from ..translate.graph import trace_block

    wanted = set(wanted)
    out = []
    for layer in layers:
        if layer.name not in wanted or not hasattr(layer, "call"):
            continue
        nodes = [n for n in getattr(layer, "_inbound_nodes", []) if n.operation is layer]
        try:
            graph = trace_block(layer, nodes[0] if nodes else None)
        except (XconvError, IndexError):
            continue  # not traceable: the block keeps its one row
        if graph.batch is None:  # a stand-in batch size is baked into the trace: no replay
            out.append((layer, graph))
    return out


def _with_block_rows(result: list[Captured], traced, block_in, with_inputs: bool) -> list[Captured]:
    """``result`` with each traced block's inner rows inserted before the block's own row."""
    by_name = {c.name: i for i, c in enumerate(result)}
    inserts = {}
    for (layer, graph), ins in zip(traced, block_in):
        if layer.name not in by_name:
            continue
        rows: list[Captured] = []
        _replay(graph, list(ins), [("in", i) for i in range(len(ins))], f"{layer.name}/", layer.name, rows, with_inputs)
        inserts[layer.name] = rows
    out = []
    for c in result:
        out.extend(inserts.get(c.name, ()))
        out.append(c)
    return out


def _replay(graph, inputs, in_sources, prefix: str, block: str, rows: list, with_inputs: bool):
    """Run a traced block's calls eagerly on ``inputs``; append a row per inner layer call (first
    call of each layer); return the graph's output values."""
    from keras import tree

    from ..translate.graph import Ref

    vals = {tid: v for (tid, _, _), v in zip(graph.inputs, inputs)}
    sources = {tid: (s,) for (tid, _, _), s in zip(graph.inputs, in_sources)}
    seen = set()
    for call in graph.calls:
        ins = [vals[t] for t in call.inputs]
        srcs = tuple(dict.fromkeys(s for t in call.inputs for s in sources.get(t, ())))
        name = f"{prefix}{call.layer.name}"
        if call.block is not None and call.block.batch is None:
            inner: list[Captured] = []
            outs = _replay(call.block, ins, [("in", i) for i in range(len(ins))], name + "/", block, inner, with_inputs)
            for r in inner:  # the nested block's inputs are this call's sources
                src = tuple(x for s in r.sources for x in (srcs if isinstance(s, tuple) else (s,)))
                rows.append(Captured(r.name, r.type, r.value, r.flatten_of, r.inputs, r.input_flatten_of, block, r.layer, r.shape, src))
        else:
            def fill(a):
                return ins[a.index] if isinstance(a, Ref) else a

            args = tree.map_structure(fill, tuple(call.args))
            kwargs = tree.map_structure(fill, dict(call.kwargs))
            if not call.is_op and getattr(call.layer, "_call_has_training_arg", False):
                kwargs["training"] = False
            out = call.layer(*args, **kwargs)
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
        for t, v in zip(call.outputs, outs):
            vals[t] = v
            sources[t] = srcs if call.is_op else (name,)  # an op is looked through, as keras_calls does
        if not call.is_op and id(call.layer) not in seen:
            seen.add(id(call.layer))
            value = to_numpy(outs[0])
            taken = tuple(to_numpy(x) for x in ins) if with_inputs else ()
            rows.append(Captured(name, type(call.layer).__name__, value, None, taken, None, block, call.layer, tuple(call.output_shape), srcs))
    return [vals[t] for t in graph.outputs]


def _with_later_calls(model, entries):
    """``entries`` with a row for every later call of a layer called several times in ``model``,
    each placed after every row that comes before it in the graph."""
    by_depth = getattr(model, "_nodes_by_depth", None) or getattr(getattr(model, "_functional", None), "_nodes_by_depth", None)
    if not by_depth:
        return entries
    order = {id(n): i for i, n in enumerate(n for d in sorted(by_depth, reverse=True) for n in by_depth[d])}
    in_model = lambda layer: sorted((n for n in getattr(layer, "_inbound_nodes", []) if id(n) in order), key=lambda n: order[id(n)])  # noqa: E731
    rows = [(name, layer, None, (in_model(layer) or [None])[0]) for name, layer, _ in entries]
    later = [(layer, i, node) for _, layer, _ in entries for i, node in enumerate(in_model(layer)) if i > 0]
    for layer, i, node in sorted(later, key=lambda e: order[id(e[2])]):
        before = [j for j, row in enumerate(rows) if row[3] is not None and order[id(row[3])] < order[id(node)]]
        rows.insert(max(before, default=-1) + 1, (f"{layer.name}#{i}", layer, node, node))
    return [row[:3] for row in rows]


def _flatten_of_output(layer) -> tuple[int, ...] | None:
    """A Flatten's output (or a layer fed by one, before any Dense) is a reordered vector."""
    if type(layer).__name__ == "Flatten":
        shape = tuple(layer.input.shape[1:])
        if len(shape) >= 2 and all(s is not None for s in shape):
            return tuple(int(s) for s in shape)
        return None
    if type(layer).__name__ in _PASS_THROUGH:
        return flatten_source_shape(layer)
    return None


def cast(model, dtype: str):
    """A copy of ``model`` whose layers compute in ``dtype`` (float64 strict mode), weights cast."""
    k = keras()

    def in_dtype(t):  # integer inputs (token ids) stay integers
        return dtype if "float" in str(t.dtype) else t.dtype

    if all(getattr(l, "compute_dtype", dtype) == dtype for l in iter_layers(model)) and all(
        in_dtype(t) == t.dtype for t in model.inputs
    ):
        return model

    def clone_layer(layer):
        if hasattr(layer, "layers") and layer.layers:  # a nested model: its layers carry their own dtype
            return cast(layer, dtype)
        config = layer.get_config()
        if isinstance(layer, k.layers.Layer):  # an operation (x + 3.0) takes its inputs' dtype
            config["dtype"] = dtype
        return type(layer).from_config(config)

    inputs = [k.Input(shape=t.shape[1:], dtype=in_dtype(t), name=t.name) for t in model.inputs]
    # the layers a custom layer builds in its __init__ take the global policy, not the layer's dtype:
    # rebuild under ``dtype`` so that a custom block computes in it all through
    saved = k.config.dtype_policy()
    try:
        k.config.set_dtype_policy(dtype)
        clone = k.models.clone_model(
            model, input_tensors=inputs if len(inputs) > 1 else inputs[0], clone_function=clone_layer
        )
    except Exception as exc:  # Keras raises many types here; say what we tried
        raise MismatchedModelsError(f"Could not rebuild Keras model '{model.name}' in {dtype}: {exc}") from exc
    finally:
        k.config.set_dtype_policy(saved)
    clone.set_weights([np.asarray(w, dtype=dtype) for w in model.get_weights()])
    for layer in iter_layers(clone):
        if hasattr(layer, "finalize_state"):  # e.g. Normalization derives its mean/variance tensors here
            layer.finalize_state()
    return clone


def versions() -> dict[str, str]:
    """The Keras version and backend, and TensorFlow's version when it is installed, by name."""
    k = keras()
    out = {"keras": k.__version__, "keras_backend": k.backend.backend()}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return out
