"""Walk an exported graph and build the Keras functional model, one registered converter per op.

1. Export (``xconv.capture.torch_graph``), decomposed to core ATen except the ops the
   registry converts whole.
2. Keep only the nodes the outputs depend on; fold every node that depends on no input
   (weights reshaped, ``full``, a cls token expanded) into a constant.
3. Name each node: the module path where the node computes a module call's output (passing
   back over layout-only ops such as the permute closing a LayerNorm2d), else
   ``<module path>__<node>``; so ``compare`` lines Keras layers up with modules by name.
4. Convert node by node (modules of a *unit* type, such as ``MultiheadAttention``, as one);
   converters return values and weights, and this walker alone assembles the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import BadInputError, UnsupportedLayerError, XconvError
from ...layouts import LayoutKind
from . import converters
from .values import Ctx, Value, channels_last, const_value, default_perm, tensor_value, to_perm, unflat

# ops whose output is their input, re-labelled: a module ending in one is named after the op before
_LAYOUT_ONLY = {"aten::permute", "aten::transpose", "getitem", "aten::clone", "aten::alias", "aten::detach",
                "aten::t", "aten::contiguous", "aten::lift_fresh_copy"}  # fmt: skip


@dataclass(frozen=True)
class Call:
    """One call of a torch module, read from a node's ``nn_module_stack``: the stack key, the
    module's path and its class name."""

    key: str  # nn_module_stack key: one per call of a module ('L__self___act@1' is its second call)
    path: str
    type: str


def _calls(op, canonical) -> tuple[Call, ...]:
    stack = op.node.meta.get("nn_module_stack") or {}
    out = []
    for key, (path, type_str) in stack.items():
        if path:
            name = type_str if isinstance(type_str, str) else getattr(type_str, "__qualname__", str(type_str))
            out.append(Call(str(key), canonical(str(path)), name.rsplit(".", 1)[-1]))
    return tuple(out)


def _canonical_paths(root):
    """A module registered under two names (``self.conv1`` and ``self.net[0]``) is named by its
    first one, as ``named_modules()`` (and so ``compare``) names it."""
    first: dict[int, str] = {}
    for name, mod in root.named_modules():
        first.setdefault(id(mod), name)
    cache: dict[str, str] = {}

    def canonical(path: str) -> str:
        if path not in cache:
            try:
                cache[path] = first.get(id(root.get_submodule(path)), path)
            except (AttributeError, IndexError, KeyError):
                cache[path] = path
        return cache[path]

    return canonical


def _where(op) -> str:
    text = f" (node '{op.name}', module '{op.module_path or '<root>'}' {op.module_type}"
    return text + (f", at {op.source})" if op.source else ")")


class _Plan:
    """Liveness, units and names of an exported graph: read-only facts the walk uses."""

    def __init__(self, graph, root):
        self.graph = graph
        ops = {n.name: n for n in graph.nodes}
        live: set[str] = set()
        todo = list(graph.outputs)
        while todo:
            name = todo.pop()
            if name in live or name not in ops:
                continue
            live.add(name)
            todo.extend(ops[name].inputs)
        self.nodes = [n for n in graph.nodes if n.name in live]
        canonical = _canonical_paths(root)
        self.calls = {n.name: _calls(n, canonical) for n in self.nodes}
        units = converters.unit_types()
        self.unit_of: dict[str, Call] = {}
        for n in self.nodes:
            outer = next((c for c in self.calls[n.name] if c.type in units), None)
            if outer is not None:
                self.unit_of[n.name] = outer
        self.names = self._name_nodes()

    def inside(self, name: str, key: str) -> bool:
        return any(c.key == key for c in self.calls.get(name, ()))

    def _name_nodes(self) -> dict[str, str]:
        by_name = {n.name: n for n in self.nodes}
        consumers: dict[str, list[str]] = {}
        for n in self.nodes:
            for i in n.inputs:
                consumers.setdefault(i, []).append(n.name)
        outputs = set(self.graph.outputs)
        # the output node of every module call: the last node inside it read from outside
        call_out: dict[str, tuple[Call, str]] = {}
        for n in self.nodes:
            for c in self.calls[n.name]:
                used_outside = n.name in outputs or any(not self.inside(u, c.key) for u in consumers.get(n.name, []))
                if used_outside:
                    call_out[c.key] = (c, n.name)
        names: dict[str, str] = {}
        taken: set[str] = set(self.graph.inputs)
        claimed: dict[str, Call] = {}  # node -> the innermost call it is the output of
        for key, (c, out) in call_out.items():
            rep = out
            # (a tuple's element 0 only: a Keras layer's own output is the first of its outputs)
            while by_name[rep].op in _LAYOUT_ONLY and by_name[rep].inputs and not (
                by_name[rep].op == "getitem" and by_name[rep].args[1] != 0
            ):
                prev = by_name[rep].inputs[0]
                if prev not in by_name or not self.inside(prev, c.key):
                    break
                rep = prev
            # the innermost call wins (a block ending in its ReLU module is named after the ReLU)
            old = claimed.get(rep)
            if old is None or len(old.path) < len(c.path):
                claimed[rep] = c
        self.aligned: dict[str, tuple[str, str]] = {}  # node -> (module path, the call's output node)
        for rep, c in claimed.items():
            base = c.path
            again = "@" in c.key
            if again:
                base = f"{c.path}_{int(c.key.rsplit('@', 1)[1]) + 1}"
            names[rep] = self._unique(base, taken)
            # a module's later calls keep their own names, but only its first call is pinned to the
            # module (a pin names a module, not a call); xconv_nodes names each call's node
            self.aligned[rep] = (None if again else c.path, call_out[c.key][1])
        for n in self.nodes:
            if n.name not in names:
                calls = self.calls[n.name]
                base = f"{calls[-1].path}__{n.name}" if calls else n.name
                names[n.name] = self._unique(base, taken)
        return names

    @staticmethod
    def _unique(base: str, taken: set[str]) -> str:
        name, i = base, 2
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name


def _fetch(root, target: str):
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _const(t):
    import torch

    if isinstance(t, torch.Tensor):
        return const_value(t.detach().cpu().numpy())
    if isinstance(t, (tuple, list)):
        return type(t)(_const(x) for x in t)
    return t


def _to_torch(v):
    import torch

    if isinstance(v, Value):
        return torch.from_numpy(np.ascontiguousarray(v.const))
    if isinstance(v, (tuple, list)):
        return type(v)(_to_torch(x) for x in v)
    return v


def _values_in(obj) -> list[Value]:
    if isinstance(obj, Value):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [v for x in obj for v in _values_in(x)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values_in(x)]
    return []


class _Walk:
    def __init__(self, keras, graph, root_module, dtype: str, batch: int):
        self.k, self.g, self.root, self.dtype, self.batch = keras, graph, root_module, dtype, batch
        self.plan = _Plan(graph, root_module)
        self.env: dict[str, object] = {}
        self.weights: list = []
        self.done_units: set[str] = set()

    # -- arguments

    def _arg(self, a):
        import torch.fx

        if isinstance(a, torch.fx.Node):
            if a.name not in self.env:
                self._run_unit_for(a.name)
            return self.env[a.name]
        if isinstance(a, (list, tuple)):
            return type(a)(self._arg(x) for x in a)
        if isinstance(a, dict):
            return {k: self._arg(v) for k, v in a.items()}
        return a

    def _ctx(self, op, name: str | None = None, module=None) -> Ctx:
        return Ctx(self.k, self.dtype, name or self.plan.names[op.name], op, module, self.batch)

    # -- the walk

    def inputs(self):
        tensors = []
        gm = self.g.module
        import torch

        for n in gm.graph.nodes:
            if n.op == "get_attr":
                self.env[n.name] = _const(_fetch(gm, str(n.target)))
        for name, shape in zip(self.g.inputs, self.g.input_shapes):
            node = next(n for n in gm.graph.nodes if n.name == name)
            val = node.meta.get("val")
            tdtype = str(val.dtype).replace("torch.", "") if isinstance(val, torch.Tensor) else self.dtype
            kdtype = self.dtype if "float" in tdtype else tdtype
            perm = default_perm(len(shape))
            kshape = tuple(shape[p] for p in perm)[1:]
            t = self.k.Input(shape=kshape, name=name, dtype=kdtype)
            tensors.append(t)
            self.env[name] = tensor_value(t, shape, perm)
        return tensors

    def run(self):
        plan = self.plan
        for op in plan.nodes:
            if op.name in plan.unit_of:
                continue
            args = self._arg(op.node.args)
            kwargs = self._arg(dict(op.node.kwargs))
            found = _values_in((args, kwargs))
            if not any(not v.is_const for v in found):
                self.env[op.name] = self._fold(op, args, kwargs)
                continue
            conv = converters.get(op.op, _where(op))
            self.env[op.name] = self._apply(op, lambda cx: conv.fn(cx, op, args, kwargs))

    def _apply(self, op, call, name=None):
        cx = self._ctx(op, name)
        try:
            out = call(cx)
        except XconvError:
            raise
        except Exception as exc:  # Keras refused what the converter built: say where, with Keras' words
            raise UnsupportedLayerError(
                f"Translating {op.op}{_where(op)} failed: {type(exc).__name__}: {str(exc).strip()[:400]}"
            ) from exc
        self.weights.extend(out.weights)
        return out.value

    def _fold(self, op, args, kwargs):
        import torch

        with torch.no_grad():
            result = op.target(*_to_torch(args), **_to_torch(kwargs))
        value = _const(result)
        if op.op == "aten::expand" and isinstance(value, Value) and value.rank and isinstance(args[0], Value):
            src = args[0]
            if value.shape[0] == self.batch and src.rank == value.rank and src.shape[0] == 1:
                # a constant broadcast over the batch (a cls token): keep one copy, mark it
                return Value(None, value.shape, value.perm, const=value.const[:1], batch1=True)
        return value

    def _run_unit_for(self, name: str):
        plan = self.plan
        call = plan.unit_of.get(name)
        if call is None or call.key in self.done_units:
            raise BadInputError(f"Internal order error: node '{name}' is used before it is computed.")
        members = [n for n in plan.nodes if plan.unit_of.get(n.name) == call]
        member_names = {n.name for n in members}
        inputs, seen = [], set()
        for n in members:
            for i in n.inputs:
                if i in member_names or i in seen:
                    continue
                seen.add(i)
                v = self.env.get(i)
                if isinstance(v, Value) and not v.is_const:
                    inputs.append(v)
        consumers = {i for n in plan.nodes if n.name not in member_names for i in n.inputs}
        outs = [n for n in members if n.name in consumers or n.name in self.g.outputs]
        module = dict(self.root.named_modules())[call.path]
        conv = converters.get(f"module:{call.type}", _where(members[0]))
        head = outs[-1] if outs else members[-1]
        name_for = self.plan.names.get(head.name)
        values = self._apply(head, lambda cx: conv.fn(Ctx(self.k, self.dtype, name_for, head, module, self.batch), inputs, outs), name_for)
        for n, v in zip(outs, values):
            self.env[n.name] = v
        self.done_units.add(call.key)

    def outputs(self):
        tensors, perms = [], []
        for name in self.g.outputs:
            if name not in self.env:
                self._run_unit_for(name)
            v = self.env[name]
            if not isinstance(v, Value) or v.is_const:
                raise UnsupportedLayerError(
                    f"Output '{name}' of the PyTorch module does not depend on its inputs; a Keras model cannot return it."
                )
            op = self.g[name] if name in self.g else None
            cx = Ctx(self.k, self.dtype, f"{self.plan.names.get(name, name)}__out", op, None, self.batch)
            v = unflat(cx, v)
            perm = default_perm(v.rank)
            if perm[0] != v.perm[0]:  # torch returns it with the batch elsewhere (an RNN's h_n): batch first
                perm = v.perm
            tensors.append(to_perm(cx, v, perm))
            perms.append(perm)
        return tensors


def _kind(v: Value):
    """compare's word for a layout (:class:`~xconv.layouts.LayoutKind`: CF for the torch maps
    against channels-last Keras maps, PLAIN, FLAT), else the perm itself."""
    if v.flat is not None:
        return LayoutKind.FLAT
    if v.rank >= 3 and v.perm == channels_last(v.rank):
        return LayoutKind.CF
    if v.perm == tuple(range(v.rank)):
        return LayoutKind.PLAIN
    return tuple(v.perm)


def layer_maps(walk: _Walk, model) -> tuple[dict, dict, dict]:
    """Keras layer -> module path (None: a step of no module's output), -> node, -> layout."""
    plan = walk.plan
    main = {name: node for node, name in plan.names.items()}
    align, nodes, layouts = {}, {}, {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        node = main.get(layer.name)
        if node is None:  # a helper '<main>__<suffix>': the longest main name it starts with
            heads = [m for m in main if layer.name.startswith(m + "__")]
            align[layer.name] = None  # a helper step (a pad before a conv, a crop after one)
            if heads:
                nodes[layer.name] = main[max(heads, key=len)]
            continue
        aligned = plan.aligned.get(node)
        align[layer.name] = aligned[0] if aligned else None
        at = aligned[1] if aligned else node
        nodes[layer.name] = at
        v = walk.env.get(at)
        if isinstance(v, Value) and not v.is_const:
            layouts[layer.name] = _kind(v)
    return align, nodes, layouts
