"""Walk a Keras 3 model's graph: layer calls and operations in topological order.

Nested models are inlined. Keras operations on KerasTensors (``x + 3.0``, ``keras.ops.mean``)
are nodes of the functional graph beside the layers; they are told from layers by their type
(a ``keras.layers.Layer`` or a bare ``keras.Operation``), never by their class name, and their
registry key is ``ops.<Class>`` so that ``ops.Add`` never meets the ``Add`` layer's converter.
A custom layer (a ``Layer`` subclass with no converter of its own) is traced: its ``call`` runs
on symbolic tensors, so that the built-in layers and ops inside it become a graph of their own
(:attr:`Call.block`).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from ..errors import BadInputError, UnsupportedLayerError


@dataclass(frozen=True)
class Ref:
    """An argument of a call that is a tensor: the ``index``-th of the call's inputs."""

    index: int


@dataclass
class Call:
    """One call of a Keras layer or operation in the graph: what it reads and writes (tensor ids),
    its shapes and dtypes, its arguments, and, for a traced custom layer, its inner graph."""

    layer: object  # the Keras layer or operation
    name: str  # unique Python identifier for its module (or its result, for an operation)
    inputs: list[int]  # tensor ids
    outputs: list[int]
    input_shapes: tuple[tuple, ...]
    output_shape: tuple
    key: str = ""  # registry key: the layer's class name, or ops.<Class> for an operation
    is_op: bool = False
    args: tuple = ()  # the call's positional arguments, tensors replaced by Ref
    kwargs: dict = field(default_factory=dict)
    output_shapes: tuple[tuple, ...] = ()
    input_dtypes: tuple[str, ...] = ()
    output_dtypes: tuple[str, ...] = ()
    block: "Graph | None" = None  # a traced custom layer: its inner graph


@dataclass
class Graph:
    """What :func:`walk` (or :func:`trace_block`) reads: the inputs, the calls in topological
    order, the output tensor ids, and where each layer's output is (for alignment)."""

    inputs: list[tuple[int, str, tuple]]  # (tensor id, argument name, Keras shape)
    calls: list[Call]
    outputs: list[int]
    # Keras layer name (outer level) -> tensor id of its (first) output, for alignment
    layer_outputs: dict[str, int]
    batch: int | None = None  # a traced block's stand-in batch size (see BATCH), if it needed one


_RESERVED = {"forward", "training", "eval", "train", "to", "cuda", "cpu", "state_dict", "parameters", "modules", "float", "double", "half", "type", "apply", "xconv_outputs"}


def identifier(name: str, taken: set[str]) -> str:
    """A Python identifier for a Keras name, unique among ``taken`` (which it joins)."""
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit():
        ident = f"l_{ident}"
    if keyword.iskeyword(ident) or ident in _RESERVED or ident.startswith("_"):
        ident = f"{ident}_"
    base, i = ident, 2
    while ident in taken:
        ident, i = f"{base}_{i}", i + 1
    taken.add(ident)
    return ident


def _keras():
    from ..frameworks.keras_side import keras

    return keras()


def is_layer(op) -> bool:
    """A Keras layer (not a bare operation such as ``keras.ops.add``)."""
    return isinstance(op, _keras().layers.Layer)


def registry_key(op) -> str:
    """The converter registry's key for ``op``: a layer's class name, ``ops.<Class>`` for an operation."""
    return type(op).__name__ if is_layer(op) else f"ops.{type(op).__name__}"


def _is_model(op) -> bool:
    return hasattr(op, "_nodes_by_depth") or type(op).__name__ == "Sequential"


def _functional(model):
    if type(model).__name__ == "Sequential":
        inner = getattr(model, "_functional", None)
        if inner is None:
            raise BadInputError(
                f"Sequential model '{model.name}' has no known input shape; build it with keras.Input(shape=...) first."
            )
        return inner
    if not hasattr(model, "_nodes_by_depth"):
        raise BadInputError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed Keras model; xconv translates Sequential and "
            f"functional models, whose graph it can read, and subclassed models through trace(model, input_shape)."
        )
    return model


def _subclassed_specs(model):
    """Input (shape, dtype) of a subclassed model that has been built (called once)."""
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if not shapes:
        raise BadInputError(
            f"Model '{model.name}' ({type(model).__name__}) is a subclassed Keras model that has not been built; call it "
            f"once on an input (model(x)) so that xconv knows its input shape, then translate it."
        )
    layers = getattr(model, "_flatten_layers", lambda **kw: [])(include_self=False, recursive=True)
    ints = any(type(l).__name__ == "Embedding" for l in layers)
    dtype = "int32" if ints else getattr(model, "compute_dtype", "float32")
    out = []
    for shape in shapes.values():
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            out.extend(((None, *s[1:]), dtype) for s in shape)
        else:
            out.append(((None, *tuple(shape)[1:]), dtype))
    return out


def walk(model, *, expand=None) -> Graph:
    """The :class:`Graph` of a Keras Sequential or functional ``model``: every layer call and
    operation in topological order, nested models inlined, a shared layer under one name.

    ``expand(layer) -> bool`` says which layers to trace into a block (default: custom layers
    with no converter); a traced layer's :attr:`Call.block` holds its graph. A subclassed model
    (built by one call) is traced as a whole. A model whose graph cannot be read raises
    :class:`~xconv.errors.BadInputError` saying how to build it.
    """
    taken: set[str] = set()
    if not _is_model(model) and hasattr(model, "call") and is_layer(model):
        return trace_block(model, input_specs=_subclassed_specs(model))
    fn = _functional(model)
    inputs = [(id(t), identifier(t._keras_history.operation.name, taken), tuple(t.shape)) for t in fn.inputs]
    calls: list[Call] = []
    module_names: dict[int, str] = {}  # id(layer) -> identifier (shared layers keep one module)
    layer_outputs: dict[str, int] = {}
    alias: dict[int, int] = {}
    _walk(fn, alias, calls, module_names, taken, layer_outputs, top=True, expand=expand)
    return Graph(inputs, calls, [alias.get(id(t), id(t)) for t in fn.outputs], layer_outputs)


def _arguments(node, ins_by_id):
    def ref(x):
        kt = _keras().KerasTensor
        return Ref(ins_by_id[id(x)]) if isinstance(x, kt) else x

    return node.arguments.convert(ref)


def _walk(fn, alias: dict[int, int], calls, module_names, taken, layer_outputs, top: bool, expand=None, traced=False) -> None:
    """``traced``: ``fn`` is a custom layer's call, traced afresh for every translation, so its
    operations (made anew by each trace) are named without Keras' global counter (``subtract_3``
    -> ``subtract``, numbered within the block): the same layer gives the same names each time."""

    def resolve(t):
        return alias.get(id(t), id(t))

    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            kind = type(op).__name__
            if kind == "InputLayer":
                continue
            ins = [resolve(t) for t in node.input_tensors]
            if _is_model(op):  # a nested model: inline it
                inner = _functional(op)
                inner_alias = {id(t): src for t, src in zip(inner.inputs, ins)}
                _walk(inner, inner_alias, calls, module_names, taken, layer_outputs, top=False, expand=expand, traced=traced)
                for t_outer, t_inner in zip(node.outputs, inner.outputs):
                    alias[id(t_outer)] = inner_alias.get(id(t_inner), id(t_inner))
                if top:
                    layer_outputs.setdefault(op.name, resolve(node.outputs[0]))
                continue
            layer = is_layer(op)
            if id(op) not in module_names:
                name = re.sub(r"_\d+$", "", op.name) if traced and not layer else op.name
                module_names[id(op)] = identifier(name, taken)
            outs = [id(t) for t in node.outputs]
            first_index = {}
            for i, t in enumerate(node.input_tensors):
                first_index.setdefault(id(t), i)
            args, kwargs = _arguments(node, first_index)
            block = None
            if layer and expand is not None and expand(op):
                block = trace_block(op, node)
            calls.append(
                Call(
                    op, module_names[id(op)], ins, outs, tuple(tuple(t.shape) for t in node.input_tensors),
                    tuple(node.outputs[0].shape), key=registry_key(op), is_op=not layer, args=tuple(args), kwargs=dict(kwargs),
                    output_shapes=tuple(tuple(t.shape) for t in node.outputs),
                    input_dtypes=tuple(str(t.dtype) for t in node.input_tensors),
                    output_dtypes=tuple(str(t.dtype) for t in node.outputs), block=block,
                )
            )  # fmt: skip
            if top and layer:
                layer_outputs.setdefault(op.name, outs[0])


def trace_block(layer, node=None, input_specs=None) -> Graph:
    """Run a custom layer's ``call`` on fresh symbolic tensors and read the graph it builds.

    Inside ``call``, built-in layers and ``keras.ops`` on KerasTensors record nodes exactly as
    in a functional model; what cannot run symbolically (a raw TensorFlow op, Python branching
    on values) raises, and is refused here with the layer's name and the plug-in route.
    """
    try:
        return _trace(layer, node, input_specs, batch=None)
    except UnsupportedLayerError as first:
        # a call that reads the batch size (ops.tile(token, [ops.shape(x)[0], 1, 1])) cannot run
        # with an unknown batch: trace with a stand-in size, read back as the input's batch size
        try:
            return _trace(layer, node, input_specs, batch=BATCH)
        except UnsupportedLayerError:
            raise first from None


# the stand-in batch size of a second tracing attempt; generated code reads it as x.shape[0]
BATCH = 9973


def _trace(layer, node, input_specs, batch):
    keras = _keras()
    if node is not None:
        specs = [(tuple(t.shape), str(t.dtype)) for t in node.input_tensors]
        args, kwargs = node.arguments.args, node.arguments.kwargs
    else:
        specs, args, kwargs = input_specs, None, {}
    if batch is not None:
        specs = [((batch, *shape[1:]) if shape and shape[0] is None else shape, dtype) for shape, dtype in specs]
    fresh = [keras.KerasTensor(shape, dtype=dtype) for shape, dtype in specs]
    if node is not None:
        lookup = {id(t): f for t, f in zip(node.input_tensors, fresh)}

        def swap(x):
            return lookup.get(id(x), x) if isinstance(x, keras.KerasTensor) else x

        from keras import tree

        call_args = tree.map_structure(swap, tuple(args))
        call_kwargs = tree.map_structure(swap, dict(kwargs))
    else:
        call_args, call_kwargs = tuple(fresh), {}
    if "training" in getattr(layer, "call_signature_parameters", ()) or _takes_training(layer):
        call_kwargs["training"] = False
    try:
        with _symbolic_variables():
            out = layer.call(*call_args, **call_kwargs)
    except Exception as exc:  # whatever the user's call does on symbolic tensors
        raise UnsupportedLayerError(
            f"Custom layer '{layer.name}' ({type(layer).__name__}) cannot be traced on symbolic tensors: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Its call() must be built-in layers "
            f"and keras.ops (no raw TensorFlow ops, no Python branching on tensor values); otherwise register a "
            f"converter for it with xconv.keras_plugins.register_layer."
        ) from exc
    outs = out if isinstance(out, (list, tuple)) else [out]
    if not all(isinstance(o, keras.KerasTensor) for o in outs):
        raise UnsupportedLayerError(
            f"Custom layer '{layer.name}' ({type(layer).__name__}) returned {type(out).__name__}, not tensors; "
            f"register a converter for it with xconv.keras_plugins.register_layer."
        )
    sub = _graph_of(fresh, list(outs), layer)
    sub.batch = batch
    return sub


_DUNDERS = {
    "__add__": ("add", False), "__radd__": ("add", True), "__sub__": ("subtract", False), "__rsub__": ("subtract", True),
    "__mul__": ("multiply", False), "__rmul__": ("multiply", True), "__truediv__": ("divide", False),
    "__rtruediv__": ("divide", True), "__matmul__": ("matmul", False), "__rmatmul__": ("matmul", True),
    "__pow__": ("power", False), "__rpow__": ("power", True),
}  # fmt: skip


class _symbolic_variables:
    """While tracing, ``variable * keras_tensor`` goes through keras.ops (a graph node with the
    variable as an argument) instead of the backend, which cannot take a KerasTensor."""

    def __enter__(self):
        keras = _keras()
        from keras.src.backend.common.variables import Variable

        self.saved = {name: Variable.__dict__.get(name) for name in _DUNDERS}

        def make(name, fn_name, reflected):
            original = self.saved[name]

            def method(var, other):
                if isinstance(other, keras.KerasTensor):
                    fn = getattr(keras.ops, fn_name)
                    return fn(other, var) if reflected else fn(var, other)
                return original(var, other)

            return method

        for name, (fn_name, reflected) in _DUNDERS.items():
            if self.saved[name] is not None:
                setattr(Variable, name, make(name, fn_name, reflected))
        return self

    def __exit__(self, *exc):
        from keras.src.backend.common.variables import Variable

        for name, original in self.saved.items():
            if original is not None:
                setattr(Variable, name, original)
        return False


def _takes_training(layer) -> bool:
    import inspect

    try:
        return "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def _graph_of(inputs, outputs, owner) -> Graph:
    """The graph between symbolic ``inputs`` and ``outputs`` (a traced block), read like a model."""
    keras = _keras()
    from keras.src.ops.function import Function

    try:
        fn = Function(inputs, outputs, name=f"{owner.name}_traced")
    except Exception as exc:
        raise UnsupportedLayerError(
            f"Custom layer '{owner.name}' ({type(owner).__name__}): its traced call() does not form a graph from its "
            f"inputs ({type(exc).__name__}: {exc}). Register a converter with xconv.keras_plugins.register_layer."
        ) from exc
    del keras
    taken: set[str] = set()
    names = [identifier(f"input_{i}" if len(inputs) > 1 else "x", taken) for i in range(len(inputs))]
    graph_inputs = [(id(t), n, tuple(t.shape)) for t, n in zip(inputs, names)]
    calls: list[Call] = []
    module_names: dict[int, str] = {}
    layer_outputs: dict[str, int] = {}
    alias: dict[int, int] = {}
    _walk(fn, alias, calls, module_names, taken, layer_outputs, top=True, expand=_expand_default, traced=True)
    return Graph(graph_inputs, calls, [alias.get(id(t), id(t)) for t in outputs], layer_outputs)


def _expand_default(layer) -> bool:
    """Trace a layer when no converter is registered for it and it is not a built-in Keras layer."""
    from . import converters

    key = registry_key(layer)
    if converters.has(key):
        return False
    return not type(layer).__module__.startswith("keras.")
