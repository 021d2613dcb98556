"""PyTorch's side as a graph: ``torch.export`` (non-strict), functionalised, run node by node.

Hooks see modules; the exported graph sees computation. Export turns Python-level variety
(functional calls, methods, ``+=``, in-place activations, shape asserts) into a short list of
ATen operators, each node carrying its module path (``nn_module_stack``) and the user's source
line (``stack_trace``). Functionalisation removes in-place ops, so every value a node produced
is still that value after the next op ran: what ``compare`` measures is what each op computed.

This module is the one PyTorch front end: ``compare`` captures activations with :func:`run`,
and the PyTorch -> Keras translation walks the same :class:`TorchGraph`.

>>> import torch                                                      # doctest: +SKIP
>>> g = export(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU()), (torch.zeros(1, 1, 8, 8),))  # doctest: +SKIP
>>> [(n.op, n.module_path) for n in g.nodes]                          # doctest: +SKIP
[('aten::conv2d', '0'), ('aten::relu', '1')]
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import XconvError

__all__ = ["ExportFailedError", "OpNode", "TorchGraph", "export", "op_name"]


class ExportFailedError(XconvError):
    """``torch.export`` could not trace the module; the message carries torch's reason."""


@dataclass(frozen=True)
class OpNode:
    """One operation of the exported graph (an fx ``call_function`` node), with where it came from."""

    name: str  # the fx node's name, unique in the graph
    op: str  # qualified operator name: 'aten::conv2d', 'aten::add.Tensor' -> 'aten::add'; or a Python function's name
    overload: str  # 'default', 'Tensor', 'Scalar', ... ('' for Python functions such as getitem)
    module_path: str  # innermost module that ran it ('' = the root module's own forward)
    module_type: str  # that module's class name ('Conv2d'); the root's for ''
    module_stack: tuple[tuple[str, str], ...]  # (path, class name), outermost first, root excluded
    source: str  # 'file.py:12: y = self.conv(x)', the user's line (torch's own frames skipped)
    inputs: tuple[str, ...]  # names of the nodes whose values it consumes, in argument order
    shape: tuple[int, ...] | None  # of its output, when it is one tensor
    dtype: str | None
    node: object = field(repr=False, compare=False, hash=False)  # the fx.Node itself

    @property
    def target(self):
        """The fx node's target: the operator (``torch.ops.aten.conv2d.default``) or Python function it calls."""
        return self.node.target

    @property
    def args(self):
        """The fx node's positional arguments, as fx holds them (other nodes, constants)."""
        return self.node.args

    @property
    def kwargs(self):
        """The fx node's keyword arguments, as fx holds them."""
        return self.node.kwargs


def op_name(target) -> tuple[str, str]:
    """``(qualified name, overload)`` of an fx target: ``aten.add.Tensor`` -> ('aten::add', 'Tensor')."""
    schema_name = getattr(target, "name", None)
    if callable(schema_name):  # an OpOverload: name() is 'aten::add.Tensor'
        full = schema_name()
        base, _, overload = full.partition(".")
        return base, overload or "default"
    return getattr(target, "__name__", str(target)), ""


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)\n\s*(?P<code>[^\n]*)')


def _torch_dir() -> str:
    import torch

    return os.path.dirname(torch.__file__)


def user_source(stack_trace: str | None) -> str:
    """The last frame of ``stack_trace`` outside torch: 'file.py:12: code'."""
    if not stack_trace:
        return ""
    frames = list(_FRAME.finditer(stack_trace))
    if not frames:
        return ""
    tdir = _torch_dir()
    user = [f for f in frames if not f.group("file").startswith(tdir)] or frames
    f = user[-1]
    return f"{os.path.basename(f.group('file'))}:{f.group('line')}: {f.group('code').strip()}"


def _class_name(type_str) -> str:
    text = type_str if isinstance(type_str, str) else getattr(type_str, "__qualname__", str(type_str))
    return text.rsplit(".", 1)[-1]


def _module_stack(meta) -> tuple[tuple[str, str], ...]:
    stack = meta.get("nn_module_stack") or {}
    out = []
    for path, type_str in stack.values():
        if path:  # the root module's own entry has path ''
            out.append((str(path), _class_name(type_str)))
    return tuple(out)


def _flatten_nodes(obj) -> list:
    """The fx Nodes inside a (nested) argument structure, in order."""
    import torch.fx

    found: list = []
    torch.fx.node.map_arg(obj, lambda n: found.append(n) or n)
    return found


@dataclass
class TorchGraph:
    """An exported, functionalised PyTorch module and the operation nodes it runs, in order."""

    program: object  # torch.export.ExportedProgram
    module: object  # its fx.GraphModule (``program.module()``): what :meth:`run` interprets
    nodes: list[OpNode]
    inputs: list[str]  # user-input placeholder names, in order
    outputs: list[str]  # names of the nodes returned, in order (flattened)
    params: dict[str, str]  # get_attr node name -> state_dict key ('conv.weight')
    root_type: str = ""
    input_shapes: list[tuple[int, ...]] = field(default_factory=list)  # export specialises on them

    def __post_init__(self):
        self._by_name = {n.name: n for n in self.nodes}

    def __getitem__(self, name: str) -> OpNode:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def in_module(self, path: str) -> list[OpNode]:
        """The nodes run inside the module at ``path`` (its submodules included)."""
        return [n for n in self.nodes if n.module_path == path or n.module_path.startswith(path + ".")] if path else list(self.nodes)

    def consumers(self) -> dict[str, list[str]]:
        """node name -> names of the operation nodes that read it."""
        out: dict[str, list[str]] = {}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n.name)
        return out

    def run(
        self,
        args: Sequence,
        keep: Iterable[str] | Callable[[OpNode], bool] | None = None,
        feed: Mapping[str, Mapping[str, object]] | None = None,
        state: Mapping[str, object] | None = None,
    ) -> tuple[dict[str, object], list]:
        """Run the graph node by node on ``args`` (tensors); returns (kept values by node name, outputs).

        ``keep``: node names, a predicate over :class:`OpNode`, or None for every op node.
        ``feed``: ``{consumer: {input node: tensor}}``: when ``consumer`` runs, it reads the given
        tensor in place of that input's own value (and nothing else sees the substitution), so
        each layer can be run on the input its twin received (local error) in one pass.
        ``state``: tensors by state key (``'conv.weight'``) read in place of the exported copy's
        own parameters and buffers, so one export serves every module of the same structure
        (and a module whose weights changed since it was exported).
        """
        import torch
        import torch.fx

        if keep is None:
            wanted = set(self._by_name)
        elif callable(keep):
            wanted = {n.name for n in self.nodes if keep(n)}
        else:
            wanted = set(keep)
        feed = feed or {}
        store: dict[str, object] = {}

        state = state or {}
        _view = torch.ops.aten.view.default

        class _Runner(torch.fx.Interpreter):
            def fetch_attr(self, target):
                found = state.get(target)
                return found if found is not None else super().fetch_attr(target)

            def call_function(self, target, args, kwargs):
                # traced strides need not be the run's (a size-1 axis, a kernel's own layout):
                # reshape is view's value wherever view applies, and works where it does not
                if target is _view:
                    target = torch.ops.aten.reshape.default
                return super().call_function(target, args, kwargs)

            def run_node(self, n):
                subs = feed.get(n.name)
                if subs:
                    saved = {}
                    for inp in _flatten_nodes((n.args, n.kwargs)):
                        if inp.name in subs:
                            saved[inp] = self.env[inp]
                            self.env[inp] = subs[inp.name]
                    try:
                        value = super().run_node(n)
                    finally:
                        self.env.update(saved)
                else:
                    value = super().run_node(n)
                if n.name in wanted:
                    store[n.name] = value
                return value

        shapes = [tuple(getattr(a, "shape", ())) for a in args]
        if shapes != self.input_shapes:
            from ..errors import BadInputError

            raise BadInputError(
                f"This graph of {self.root_type} was exported for inputs of shape {self.input_shapes}; "
                f"received {shapes}. Export again with inputs of the shape you run."
            )
        with torch.no_grad():
            out = _Runner(self.module, garbage_collect_values=True).run(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return store, outs


def _functional_program(program, decompose: bool, keep_whole: Iterable = ()):
    """Functionalise (no in-place ops); with ``decompose``, lower to core ATen but keep
    ``keep_whole`` ops (LSTM, attention, ...) whole, as the units a Keras layer exists for."""
    if not decompose:
        return program.run_decompositions({})
    import torch

    table = torch.export.default_decompositions()
    for op in keep_whole:
        for overload in _overloads(op):
            table.pop(overload, None)
    return program.run_decompositions(table)


def _overloads(op) -> list:
    """Every overload of an op packet (``aten.lstm``), or the overload itself."""
    names = getattr(op, "overloads", None)
    if callable(names):
        return [getattr(op, o) for o in names()]
    return [op]


def export(
    module,
    args: Sequence,
    *,
    decompose: bool = False,
    keep_whole: Iterable = (),
    kwargs: Mapping | None = None,
) -> TorchGraph:
    """Export ``module`` on example ``args`` (tensors) and list its operation nodes.

    The caller's module is never changed: a module in training mode is exported from an
    eval-mode copy (``compare`` reports that it did so). ``decompose`` lowers the graph to core
    ATen operators (the translator's view), keeping ``keep_whole`` ops as units; without it the
    graph keeps torch's own composite ops (``aten::conv2d``, ``aten::linear``), functionalised.
    """
    import torch

    target = module
    if any(m.training for m in module.modules()):
        target = copy.deepcopy(module).eval()
    try:
        with warnings.catch_warnings():  # torch's own pytree deprecation, raised inside export (not the user's)
            warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated", category=FutureWarning)
            program = torch.export.export(target, tuple(args), kwargs=dict(kwargs or {}), strict=False)
            program = _functional_program(program, decompose, keep_whole)
    except Exception as exc:  # export raises many types (UserError, GuardOnDataDependent, ...): say what torch said
        reason = str(exc).strip().splitlines()
        first = next((line for line in reason if line.strip()), type(exc).__name__)
        raise ExportFailedError(
            f"torch.export could not trace {type(module).__name__} on inputs of shape "
            f"{[tuple(getattr(a, 'shape', ())) for a in args]}: {type(exc).__name__}: {first[:500]}. "
            f"Make forward traceable (no Python branching on tensor values, no data-dependent shapes), "
            f"or pass the PyTorch model as a module xconv can hook instead."
        ) from exc
    graph = _graph_of(program, type(module).__name__)
    graph.input_shapes = [tuple(getattr(a, "shape", ())) for a in args]
    return graph


def _graph_of(program, root_type: str) -> TorchGraph:
    gm = program.module()
    nodes, inputs, params, outputs = [], [], {}, []
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            inputs.append(n.name)
        elif n.op == "get_attr":
            params[n.name] = str(n.target)
        elif n.op == "call_function":
            val = n.meta.get("val")
            shape = tuple(int(s) for s in val.shape) if hasattr(val, "shape") else None
            dtype = str(val.dtype).replace("torch.", "") if hasattr(val, "dtype") else None
            qual, overload = op_name(n.target)
            stack = _module_stack(n.meta)
            path, mtype = stack[-1] if stack else ("", root_type)
            nodes.append(
                OpNode(
                    name=n.name,
                    op=qual,
                    overload=overload,
                    module_path=path,
                    module_type=mtype,
                    module_stack=stack,
                    source=user_source(n.meta.get("stack_trace")),
                    inputs=tuple(i.name for i in _flatten_nodes((n.args, n.kwargs))),
                    shape=shape,
                    dtype=dtype,
                    node=n,
                )
            )
        elif n.op == "output":
            outputs = [i.name for i in _flatten_nodes(n.args)]
        # call_module nodes are export's guard functions (_guards_fn): not computation
    return TorchGraph(program, gm, nodes, inputs, outputs, params, root_type)
