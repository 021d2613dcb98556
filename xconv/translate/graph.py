"""Walk a Keras 3 model's graph: layer calls in topological order, nested models inlined."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from ..errors import BadInputError


@dataclass
class Call:
    layer: object  # the Keras layer
    name: str  # unique Python identifier for its module
    inputs: list[int]  # tensor ids
    outputs: list[int]
    input_shapes: tuple[tuple, ...]
    output_shape: tuple


@dataclass
class Graph:
    inputs: list[tuple[int, str, tuple]]  # (tensor id, argument name, Keras shape)
    calls: list[Call]
    outputs: list[int]
    # Keras layer name (outer level) -> tensor id of its (first) output, for alignment
    layer_outputs: dict[str, int]


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
            f"functional models, whose graph it can read."
        )
    return model


def walk(model) -> Graph:
    taken: set[str] = set()
    fn = _functional(model)
    inputs = [(id(t), identifier(t._keras_history.operation.name, taken), tuple(t.shape)) for t in fn.inputs]
    calls: list[Call] = []
    module_names: dict[int, str] = {}  # id(layer) -> identifier (shared layers keep one module)
    layer_outputs: dict[str, int] = {}
    alias: dict[int, int] = {}
    _walk(fn, alias, calls, module_names, taken, layer_outputs, top=True)
    return Graph(inputs, calls, [alias.get(id(t), id(t)) for t in fn.outputs], layer_outputs)


def _walk(fn, alias: dict[int, int], calls, module_names, taken, layer_outputs, top: bool) -> None:
    def resolve(t):
        return alias.get(id(t), id(t))

    for depth in sorted(fn._nodes_by_depth, reverse=True):
        for node in fn._nodes_by_depth[depth]:
            op = node.operation
            kind = type(op).__name__
            if kind == "InputLayer":
                continue
            ins = [resolve(t) for t in node.input_tensors]
            if hasattr(op, "_nodes_by_depth") or kind == "Sequential":  # a nested model: inline it
                inner = _functional(op)
                inner_alias = {id(t): src for t, src in zip(inner.inputs, ins)}
                _walk(inner, inner_alias, calls, module_names, taken, layer_outputs, top=False)
                for t_outer, t_inner in zip(node.outputs, inner.outputs):
                    alias[id(t_outer)] = inner_alias.get(id(t_inner), id(t_inner))
                if top:
                    layer_outputs.setdefault(op.name, resolve(node.outputs[0]))
                continue
            if id(op) not in module_names:
                module_names[id(op)] = identifier(op.name, taken)
            outs = [id(t) for t in node.outputs]
            calls.append(
                Call(op, module_names[id(op)], ins, outs, tuple(tuple(t.shape) for t in node.input_tensors), tuple(node.outputs[0].shape))
            )
            if top:
                layer_outputs.setdefault(op.name, outs[0])
