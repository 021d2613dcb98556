"""Line up a Keras model's layers with the values a PyTorch module's exported graph computes.

A hand-written port rarely names its modules after the Keras layers, fuses activations into
``forward`` (``torch.relu(self.fc(x))``), pads by hand before a conv and adds in place. So the
alignment works on the computation (:class:`~xconv.capture.torch_graph.TorchGraph`), walking
the Keras graph in order:

* a layer with weights goes with the torch module holding weights of the converted shapes: by
  name where one fits, else the nearest fitting module downstream of the layer's input, and
  where several are equally near, the one whose weights equal the layer's. Its value is the end
  of that module's call, continued through the activation the Keras layer fuses (``F.relu``,
  ``nn.ReLU``, softmax, hardswish, ...). Explicit padding before the call is the head of the
  chain: local mode feeds the Keras input there.
* a layer without weights (pooling, flatten, add, concatenate, an activation layer) goes with
  the first op of its kind downstream of its inputs, with the output shape Keras has.
* ``pins`` (``align=``, a module's ``xconv_outputs``, a manifest) name the module outright.

What cannot be aligned is reported as such (:attr:`Match.why`), never measured against the
wrong value; a layer that could go to several modules is an error naming them and the pin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import MismatchedModelsError
from ..layouts import LayoutKind

__all__ = ["Match", "KerasCall", "keras_calls", "align_graph", "align_by_names", "activation_of", "fit_unit_axes"]

_ACTIVATION_OPS = {
    "relu": ("aten::relu", "aten::threshold", "aten::clamp_min"),
    "relu6": ("aten::hardtanh", "aten::clamp", "aten::relu6", "aten::clip"),
    "sigmoid": ("aten::sigmoid",),
    "tanh": ("aten::tanh",),
    "softmax": ("aten::softmax", "aten::_softmax"),
    "log_softmax": ("aten::log_softmax", "aten::_log_softmax"),
    "gelu": ("aten::gelu",),
    "silu": ("aten::silu",),
    "swish": ("aten::silu",),
    "hard_silu": ("aten::hardswish",),
    "hard_swish": ("aten::hardswish",),
    "hard_sigmoid": ("aten::hardsigmoid",),
    "elu": ("aten::elu",),
    "selu": ("aten::selu",),
    "softplus": ("aten::softplus",),
    "leaky_relu": ("aten::leaky_relu",),
    "exponential": ("aten::exp",),
    "mish": ("aten::mish",),
}
_ALL_ACTIVATION_OPS = frozenset(op for ops in _ACTIVATION_OPS.values() for op in ops)
_LAYOUT_ORDER = {  # a layout's axes, as positions of the channels-first axes, by rank
    LayoutKind.CF: lambda r: tuple(range(r)),
    LayoutKind.CL: lambda r: (0, *range(2, r), 1),
}
_SHAPE_OPS = frozenset(
    f"aten::{o}" for o in ("view", "reshape", "_unsafe_view", "flatten", "squeeze", "unsqueeze", "permute", "clone", "contiguous", "transpose", "alias")
)  # fmt: skip
_PAD_OPS = frozenset(("aten::pad", "aten::constant_pad_nd"))
_PICK_OPS = frozenset(("getitem", "aten::select", "aten::squeeze", "aten::slice", "aten::view", "aten::reshape", "aten::flatten"))  # one output of several
# Keras layer class (prefix) -> the ops that may compute it
_KIND_OPS = (
    ("MaxPooling", ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")),
    ("AveragePooling", ("avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d")),
    ("GlobalAveragePooling", ("mean", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d")),
    ("GlobalMaxPooling", ("amax", "max", "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")),
    ("Flatten", ("view", "reshape", "_unsafe_view", "flatten")),
    ("Reshape", ("view", "reshape", "_unsafe_view", "flatten", "unsqueeze", "squeeze")),
    ("Permute", ("permute", "transpose")),
    ("Add", ("add",)),
    ("Subtract", ("sub",)),
    ("Multiply", ("mul",)),
    ("Average", ("add", "mean", "div", "mul")),
    ("Maximum", ("maximum", "max")),
    ("Minimum", ("minimum", "min")),
    ("Concatenate", ("cat", "concat", "concatenate")),
    ("ZeroPadding", ("pad", "constant_pad_nd")),
    ("Cropping", ("slice", "narrow")),
    ("UpSampling", ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_linear1d", "_upsample_nearest_exact2d", "repeat_interleave")),
    ("Rescaling", ("mul", "add", "sub", "div")),
)  # fmt: skip
_IDENTITY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity")
_ACTIVATION_LAYERS = ("ReLU", "LeakyReLU", "ELU", "Softmax", "Activation", "PReLU")
_DROPOUT_MODULES = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Identity")


@dataclass(frozen=True)
class KerasCall:
    """One call of a Keras layer in its model's graph (a shared layer has several)."""

    layer: object
    name: str
    type: str
    index: int  # which call of the layer (0 for an unshared layer)
    inputs: tuple[tuple[str, int], ...]  # (producing layer, its call), or ('input:i', 0)
    shape: tuple  # output shape, channels-last, batch None
    ordinal: int = 0  # which call of the layer in this model (0: its first; a later one is reported as 'name#1')

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.index)

    @property
    def row(self) -> str:
        """The report's name for this call: the layer's name, ``name#1`` for its second call."""
        return self.name if self.ordinal == 0 else f"{self.name}#{self.ordinal}"


@dataclass
class Match:
    """Where a Keras layer's value is in the torch graph (``node`` None: not aligned, see ``why``)."""

    name: str
    node: str | None = None
    layout: LayoutKind = LayoutKind.CF  # how the torch value is laid out against Keras': CF, FLAT or PLAIN
    feeds: dict = field(default_factory=dict)  # local mode: {consumer node: {input node: keras input index}}
    input_layouts: dict = field(default_factory=dict)  # input node -> its layout
    input_shapes: dict = field(default_factory=dict)  # input node -> its shape (a feed must fit it)
    modules: list = field(default_factory=list)  # module paths of the chain, in order
    how: str = ""  # 'pinned', 'name', 'weights', 'position', 'identity'
    why: str = ""
    own_node: bool = True  # False: the layer passes its input through (a Dropout with no op of its own)
    passes: str = ""  # own_node False: the Keras row (or 'input:i') whose torch value this one passes on (local mode measures that row's Keras value here)
    pads: list = field(default_factory=list)  # explicit paddings (torch pad lists) before the chain's module, outermost first
    input_layout: LayoutKind | None = None  # layout of the value the chain's first module reads (FLAT or PLAIN before a Linear)
    follow: tuple = ()  # hooks: torch functions (names) that continue the module's output (the fused activation)
    after: tuple = ()  # hooks, a layer with no module: ((source keys), call names): the first such call on a source's value


def activation_of(layer) -> str | None:
    """The activation a Keras layer applies after its own computation (None: none)."""
    kind = type(layer).__name__
    if kind == "ReLU":
        if getattr(layer, "max_value", None) is not None and float(layer.max_value) == 6.0:
            return "relu6"
        return "leaky_relu" if float(getattr(layer, "negative_slope", 0.0) or 0.0) else "relu"
    if kind in ("LeakyReLU", "ELU", "Softmax"):
        return {"LeakyReLU": "leaky_relu", "ELU": "elu", "Softmax": "softmax"}[kind]
    act = getattr(layer, "activation", None)
    name = getattr(act, "__name__", None) if act is not None else None
    return None if name in (None, "linear") else name


def fit_unit_axes(x, shape):
    """``x`` viewed with ``shape`` where the two differ only in unit axes (a Dense after
    ``GlobalAveragePooling2D(keepdims=True)``, (N, 1, 1, C), against ``nn.Linear``'s (N, C)):
    the axes longer than 1 must agree in order and length, the batch axis must be kept, and the
    ranks must differ (unit axes only dropped or added: at one rank, moving a unit axis would be a
    transpose, which a port gets wrong, e.g. (N, 1, 4, 5) read as (N, 4, 1, 5)).
    Real axes are never reshaped; returns None where the shapes differ otherwise."""
    have, want = tuple(x.shape), tuple(shape)
    if have == want:
        return x
    if not have or not want or have[0] != want[0] or len(have) == len(want):
        return None
    if [d for d in have[1:] if d != 1] != [d for d in want[1:] if d != 1]:
        return None
    return x.reshape(want)


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None, 0
    return history.operation, int(history.node_index)


def keras_calls(model) -> list[KerasCall]:
    """Every layer call of a functional model in graph order (Sequential: its inner functional)."""
    graph = model if hasattr(model, "_nodes_by_depth") else getattr(model, "_functional", None)
    if graph is None:
        return []
    layer_names = {l.name for l in model.layers}
    input_index = {}
    for i, t in enumerate(graph.inputs):
        op, _ = _producer(t)
        if op is not None:
            input_index[op.name] = i

    def sources(tensor, depth=0) -> list[tuple[str, int]]:
        op, k = _producer(tensor)
        if op is None or depth > 50:
            return []
        if op.name in input_index and type(op).__name__ == "InputLayer":
            return [(f"input:{input_index[op.name]}", 0)]
        if op.name in layer_names:
            return [(op.name, k)]
        nodes = getattr(op, "_inbound_nodes", [])  # a keras.ops call between layers: look through it
        if k >= len(nodes):
            return []
        return [s for t in nodes[k].input_tensors for s in sources(t, depth + 1)]

    calls = []
    seen: dict[str, int] = {}
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            op = node.operation
            if type(op).__name__ == "InputLayer" or op.name not in layer_names:
                continue
            index = op._inbound_nodes.index(node) if node in op._inbound_nodes else 0
            ins = tuple(s for t in node.input_tensors for s in sources(t))
            out = node.output_tensors[0] if node.output_tensors else None
            ordinal = seen[op.name] = seen.get(op.name, -1) + 1
            calls.append(KerasCall(op, op.name, type(op).__name__, index, ins, tuple(out.shape) if out is not None else (), ordinal))
    return calls


# ---- the torch graph, indexed -----------------------------------------------------------------


def module_aliases(tmodule) -> dict[str, str]:
    """Every path of a module registered under several names (``self.conv1`` that is also
    ``self.net[0]``) -> the name ``named_modules()`` gives it, which is the one the rest of xconv uses."""
    first = {id(m): n for n, m in tmodule.named_modules()}
    return {n: first[id(m)] for n, m in tmodule.named_modules(remove_duplicate=False) if first[id(m)] != n}


class _Graph:
    """A TorchGraph with what alignment asks of it: positions, data inputs, consumers,
    ancestry (bit sets), module calls and each value's layout against Keras."""

    def __init__(self, graph, aliases: dict[str, str] | None = None, keras_input: bool = False):
        self.g = graph
        aliases = aliases or {}  # a module registered under several names: every path -> its first name
        self.names = list(graph.inputs) + [n.name for n in graph.nodes]
        self.pos = {n: i for i, n in enumerate(self.names)}
        self.node = {n.name: n for n in graph.nodes}
        params = set(graph.params)
        self.din = {n.name: [i for i in n.inputs if i not in params and i in self.pos] for n in graph.nodes}
        self.cons: dict[str, list[str]] = {}
        for n in graph.nodes:
            for i in self.din[n.name]:
                self.cons.setdefault(i, []).append(n.name)
        self.anc = {}
        for name in self.names:
            bits = 1 << self.pos[name]
            for i in self.din.get(name, ()):
                bits |= self.anc[i]
            self.anc[name] = bits
        self.calls: dict[str, list[list[str]]] = {}  # module path -> its calls, each a list of nodes
        keyed: dict[tuple[str, str], list[str]] = {}
        for n in graph.nodes:
            for key, (path, _type) in (n.node.meta.get("nn_module_stack") or {}).items():
                if path:
                    keyed.setdefault((aliases.get(str(path), str(path)), str(key)), []).append(n.name)
        for (path, key), names in sorted(keyed.items(), key=lambda kv: self.pos[kv[1][0]]):
            self.calls.setdefault(path, []).append(self._entry_first(names))
        self.layout = self._layouts(keras_input)

    def shape(self, name):
        if name in self.node:
            return self.node[name].shape
        i = self.g.inputs.index(name)
        return tuple(self.g.input_shapes[i]) if i < len(self.g.input_shapes) else None

    def op(self, name) -> str:
        return self.node[name].op if name in self.node else "placeholder"

    def is_ancestor(self, a, b) -> bool:
        return bool(self.anc[b] >> self.pos[a] & 1)

    def _layouts(self, keras_input: bool = False) -> dict[str, LayoutKind]:
        """CF (torch's channels-first maps), CL (moved channels-last), FLAT (a flatten of
        channels-first maps: Keras' flatten reordered), PLAIN (same axes as Keras) or OTHER (maps
        permuted into another order and flattened). ``keras_input``: the module is fed the Keras
        layout (channels-last maps), which its forward transposes itself."""
        CF, CL, FLAT, PLAIN, OTHER = LayoutKind.CF, LayoutKind.CL, LayoutKind.FLAT, LayoutKind.PLAIN, LayoutKind.OTHER
        out, order = {}, {}  # order: a rank >= 3 value's axes as positions of the channels-first ones
        for i, name in enumerate(self.g.inputs):
            shape = self.g.input_shapes[i] if i < len(self.g.input_shapes) else ()
            out[name] = CL if keras_input and len(shape) >= 3 else LayoutKind.for_rank(len(shape))
        for n in self.g.nodes:
            src = next((i for i in self.din[n.name] if i in out), None)
            first = out[src] if src is not None else PLAIN
            src_shape = self.shape(self.din[n.name][0]) if self.din[n.name] else None
            rank = len(n.shape) if n.shape is not None else 0
            if n.shape is None:
                out[n.name] = first  # a tuple (batch norm's value and statistics): getitem picks
            elif n.op in ("aten::linear", "aten::matmul", "aten::mm", "aten::addmm", "aten::bmm", "aten::embedding"):
                out[n.name] = PLAIN
            elif n.op in ("aten::permute", "aten::transpose") and src_shape is not None and len(src_shape) >= 3 and rank == len(src_shape):
                # follow the axes through a chain of permutes and transposes (x.transpose(1, 3).transpose(1, 2) is channels-last)
                r = len(src_shape)
                have = order.get(src) or _LAYOUT_ORDER.get(first, lambda r: None)(r)
                if n.op == "aten::permute":
                    dims = [int(d) % r for d in n.args[1]]
                else:
                    dims = list(range(r))
                    a, b = int(n.args[1]) % r, int(n.args[2]) % r
                    dims[a], dims[b] = dims[b], dims[a]
                if have is None:  # not maps xconv follows (PLAIN, FLAT): as before the permute
                    out[n.name] = first
                    continue
                now = order[n.name] = tuple(have[d] for d in dims)
                # neither (a channel shuffle's transpose inside a 5-D view): keeps its label, and a
                # flatten of it is OTHER below
                out[n.name] = next((kind for kind, of in _LAYOUT_ORDER.items() if of(r) == now), first)
            elif n.op in _SHAPE_OPS and src in order and n.shape == src_shape:  # a copy of it (clone, contiguous)
                order[n.name] = order[src]
                out[n.name] = first
            elif n.op in _SHAPE_OPS and rank == 2 and src_shape is not None and len(src_shape) >= 3:
                odd = src in order and order[src] not in {of(len(src_shape)) for of in _LAYOUT_ORDER.values()}
                out[n.name] = OTHER if odd else {CF: FLAT, CL: PLAIN}.get(first, first)
            elif rank < 3 and first in (CF, OTHER):
                out[n.name] = PLAIN  # a pooling to (N, C), a mean over the maps
            else:
                out[n.name] = first
        return out

    def _entry_first(self, call: list[str]) -> list[str]:
        """A call's nodes with its entry first: the first node that reads a value from outside the
        call (an LSTM makes its zero states before it reads its input)."""
        inside = set(call)
        entry = next((n for n in call if any(i not in inside for i in self.din[n])), call[0])
        return [entry] + [n for n in call if n != entry]

    def call_end(self, call: list[str], want: tuple = ()) -> str:
        """The value a module call gives: with ``want`` (the Keras layer's output shapes), the
        first of its outputs of that shape (an LSTM's ``out``, not its ``(h, c)``; the element of
        a returned tuple that the Keras layer gives), else the first pick from an output that has
        it (``out[:, -1]``, ``h[-1]``); else its last tensor."""
        tensors = [n for n in call if self.node[n].shape is not None]
        if want:
            inside = set(call)
            outs = [n for n in tensors if n in self.g.outputs or any(c not in inside for c in self.cons.get(n, []))]
            fit = [n for n in outs if self.shape(n) in want]
            first_item = [n for n in fit if self.op(n) == "getitem" and self.node[n].args[1:2] == (0,)]
            if first_item:  # an op's tuple (aten::lstm): its element 0, as Keras' first output
                return first_item[0]
            if fit:  # the module's last value where it fits (MultiheadAttention: the output, not the weights)
                return tensors[-1] if tensors[-1] in fit else fit[0]
            picks = [c for n in outs for c in self.cons.get(n, []) if c not in inside and self.op(c) in _PICK_OPS and self.shape(c) in want]
            if picks:
                return min(picks, key=lambda c: self.pos[c])
        return tensors[-1] if tensors else call[-1]


def _kind_ops(kind: str, layer) -> frozenset:
    act = activation_of(layer) if kind in ("ReLU", "LeakyReLU", "ELU", "Softmax", "Activation", "PReLU") else None
    if act is not None:
        return frozenset(_ACTIVATION_OPS.get(act, ()))
    for prefix, ops in _KIND_OPS:
        if kind.startswith(prefix):
            return frozenset(f"aten::{o}" for o in ops)
    return frozenset()


def _torch_shapes(keras_shape, n: int) -> tuple[tuple, tuple]:
    """(channels-first, as-is) readings of a Keras output shape with batch ``n``."""
    shape = (n, *keras_shape[1:])
    if len(shape) >= 3:
        return (shape[0], shape[-1], *shape[1:-1]), shape
    return shape, shape


# ---- weighted layers: which module -------------------------------------------------------------


def _norm(name: str) -> str:
    return name.replace(".", "_").replace("/", "_")


def _fits(layer, module) -> bool:
    """Would ``layer``'s weights, converted, have ``module``'s shapes? (families from the registry)"""
    from ..errors import XconvError
    from ..transfer import shapes_fit

    if type(layer).__name__.startswith("SeparableConv") and type(module).__name__ not in ("SeparableConv1d", "SeparableConv2d"):
        return False  # two torch modules: see _separable (one SeparableConv2d module: its weight family)
    try:
        if shapes_fit(layer, module):
            return True
    except XconvError:
        return False
    return _custom_fits(layer, module)


def _custom_fits(layer, module) -> bool:
    """A module class of the port's own (not torch's: ConvNeXt's channels-first ``LayerNorm2d``)
    whose own arrays have the names and shapes the layer's weights convert to. Only for
    normalisations, whose weights read the same whichever axis holds the channels."""
    from ..errors import XconvError
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts
    from ..transfer import layer_context
    from ..weights import family_for_keras

    if type(layer).__name__ not in ("LayerNormalization", "BatchNormalization", "GroupNormalization"):
        return False
    if type(module).__module__.startswith("torch.") or any(True for _ in module.children()):
        return False
    try:
        converted = family_for_keras(type(layer).__name__, layer.name).to_torch(ks.layer_weights(layer), layer_context(layer))
    except (XconvError, KeyError, ValueError):
        return False
    target = ts.module_arrays(module)
    return bool(converted) and set(converted) == set(target) and all(converted[k].shape == target[k].shape for k in converted)


def _same_weights(layer, module) -> bool:
    from ..errors import XconvError
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts
    from ..weights import family_for_keras
    from ..transfer import layer_context

    try:
        converted = family_for_keras(type(layer).__name__, layer.name).to_torch(ks.layer_weights(layer), layer_context(layer))
    except (XconvError, KeyError, ValueError):
        return False
    target = ts.module_arrays(module)
    return set(converted) <= set(target) and all(
        converted[k].shape == target[k].shape and np.array_equal(converted[k].astype(np.float64), target[k].astype(np.float64)) for k in converted
    )


def _separable(layer, modules) -> bool:
    """SeparableConv2D = a grouped (depthwise) conv then a 1x1 conv: do two modules fit it?"""
    if len(modules) != 2:
        return False
    dw, pw = modules
    weights = {w.path.rsplit("/", 1)[-1]: tuple(w.shape) for w in layer.weights}
    dk, pk = weights.get("depthwise_kernel"), weights.get("pointwise_kernel")
    if dk is None or pk is None or not hasattr(dw, "weight") or not hasattr(pw, "weight"):
        return False
    cin, mult = dk[-2], dk[-1]
    return (
        tuple(dw.weight.shape) == (cin * mult, 1, *dk[:-2]) and getattr(dw, "groups", 1) == cin
        and tuple(pw.weight.shape) == (pk[-1], pk[-2], *pk[:-2])
    )  # fmt: skip


# ---- the alignment -----------------------------------------------------------------------------


def align_graph(kmodel, captured, graph, tmodule, pins: dict, batch: int, keras_input: bool = False) -> dict[str, Match]:
    """Match every captured Keras layer call with a node of ``graph``; returns row name -> Match
    (a shared layer's later calls as ``name#1``, ...: the matching module's later calls)."""
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts

    G = graph if isinstance(graph, _Graph) else _Graph(graph, module_aliases(tmodule), keras_input)  # transfer passes its own
    graph = G.g
    calls = keras_calls(kmodel)
    if not calls:  # not a functional graph: the layers in order, each fed by the one before
        prev, calls = ("input:0", 0), []
        for c in captured:
            layer = kmodel.get_layer(c.name)
            calls.append(KerasCall(layer, c.name, c.type, 0, (prev,), (None, *c.value.shape[1:])))
            prev = (c.name, 0)
    calls = _with_inner_calls(calls, captured)
    modules = dict(tmodule.named_modules())
    weighted = {name: m for name, m in ts.weighted_modules(tmodule) if name in G.calls}
    claimed: set[str] = set()
    state = tmodule.state_dict(keep_vars=True)  # once: it walks every module
    param_shape = {node: tuple(state[key].shape) for node, key in graph.params.items() if state.get(key) is not None}
    for name in weighted:
        own = None
        if type(weighted[name]).__name__ not in ts._WHOLE and any(True for _ in weighted[name].children()):
            # a block holding a parameter of its own (ConvNeXt's gamma) besides children: only the
            # ops reading that parameter are its own; the rest of its forward stays free to align
            keys = {f"{name}.{k}" for k, _ in weighted[name].named_parameters(recurse=False)}
            own = {node for node, key in graph.params.items() if key in keys}
        for call in G.calls[name]:
            claimed.update(call if own is None else [n for n in call if any(i in own for i in G.node[n].inputs)])
    used_calls: set[tuple[str, int]] = set()
    used_modules: set[str] = set()
    nodes: dict[tuple[str, int], str] = {}  # (keras layer, call) -> torch node
    owner: dict[str, str] = {}  # torch node -> the first Keras row (or 'input:i') aligned to it with an op of its own
    for i, name in enumerate(graph.inputs):
        nodes[(f"input:{i}", 0)] = name
        owner[name] = f"input:{i}"
    matches: dict[str, Match] = {}
    has_weights = {l.name for l in ks.weighted_layers(kmodel)} | {c.name for c in captured if c.block and c.layer.weights}
    paired: dict[str, list[str]] = {}  # keras layer -> its module(s)
    frontier: dict[tuple[str, int], list[str]] = {}  # unaligned layer without weights -> its inputs' nodes

    def first_call(path, inputs, reuse=False):
        """The first call of ``path`` that follows every input and is not taken yet."""
        for j, call in enumerate(G.calls.get(path, [])):
            if (path, j) in used_calls and not reuse:
                continue
            if all(G.is_ancestor(i, call[0]) for i in inputs):
                return j, call
        return None, None

    def extend(end, act):
        """Continue ``end`` through the ops of the Keras layer's fused activation."""
        if act is None or G.op(end) in _ACTIVATION_OPS.get(act, ()):
            return end, []
        ops = _ACTIVATION_OPS.get(act, ())
        cons = G.cons.get(end, [])
        if len(cons) == 1 and G.op(cons[0]) in ops and cons[0] not in claimed:
            return cons[0], [cons[0]]
        return end, []

    def head_of(start_node):
        """The first node of a chain: explicit padding before a conv belongs to the conv's input."""
        head = start_node
        while True:
            ins = G.din.get(head, [])
            if not ins:
                return head
            prev = ins[0]
            if G.op(prev) in _PAD_OPS and len(G.cons.get(prev, [])) == 1 and prev not in claimed:
                head = prev
                continue
            return head

    def feeds_for(head, call, in_nodes):
        ins = G.din.get(head, [])
        feeds = {}
        for j, t_in in enumerate(in_nodes):
            if t_in in ins:
                feeds.setdefault(head, {})[t_in] = j
        if not feeds and len(in_nodes) == 1 and ins:
            feeds[head] = {ins[0]: 0}
        return feeds

    def choose_module(call: KerasCall, in_nodes) -> tuple[list[str] | None, str, str]:
        layer = call.layer
        free = {n: m for n, m in weighted.items() if n not in used_modules}
        if call.type == "SeparableConv2D" and not any(_fits(layer, m) for m in free.values()):
            order = sorted(free, key=lambda n: G.pos[G.calls[n][0][0]])
            options = [[a, b] for a, b in zip(order, order[1:]) if _separable(layer, (free[a], free[b])) and G.is_ancestor(G.calls[a][0][-1], G.calls[b][0][0])]
            options = [o for o in options if all(G.is_ancestor(i, G.calls[o[0]][0][0]) for i in in_nodes)]
            if not options:
                return None, "", "no pair of PyTorch convs (depthwise, then 1x1) has its weights' shapes"
            return options[0], "weights", ""
        named = [n for n in free if _norm(n) == _norm(call.name) and _fits(layer, free[n])]
        if named:
            return [named[0]], "name", ""
        fitting = [n for n in free if _fits(layer, free[n])]
        if not fitting:
            return None, "", f"no PyTorch module left with weights of its shapes ({type(layer).__name__})"
        reach = [n for n in fitting if first_call(n, in_nodes)[1] is not None]
        if not reach:
            return None, "", f"the PyTorch modules with weights of its shapes ({', '.join(fitting[:4])}) do not run after its input"
        starts = {n: first_call(n, in_nodes)[1][0] for n in reach}
        nearest = [n for n in reach if not any(o != n and G.is_ancestor(starts[o], starts[n]) for o in reach)]
        if len(nearest) > 1:
            same = [n for n in nearest if _same_weights(layer, free[n])]
            if len(same) == 1:
                nearest = same
        if len(nearest) > 1:
            raise MismatchedModelsError(
                f"Keras layer '{call.name}' ({type(layer).__name__}) could be any of the PyTorch modules "
                f"{nearest[:6]}: they have weights of its shapes and run at the same depth after its input. "
                f"Pin it: compare(..., align={{'{call.name}': '{nearest[0]}'}}) (or a Manifest from transfer_weights)."
            )
        return nearest, "weights", ""

    captured_rows = {c.name for c in captured}
    taken: set[str] = set()  # parameter ops given to a layer without a weight family
    for call in calls:
        in_nodes = [nodes.get(ref) for ref in call.inputs]
        # an unaligned layer without weights (a ZeroPadding2D folded into the conv's padding=)
        # passes its inputs' nodes on, so what follows it still aligns
        in_nodes = [n if n is not None else frontier.get(ref) for ref, n in zip(call.inputs, in_nodes)]
        in_nodes = [x for n in in_nodes for x in (n if isinstance(n, list) else [n])]
        m = Match(call.row)
        missing = [ref[0] for ref in call.inputs if nodes.get(ref) is None and not frontier.get(ref)]
        act = activation_of(call.layer) if call.type not in ("ReLU", "LeakyReLU", "ELU", "Softmax", "Activation") else None
        known_in = [n for n in in_nodes if n is not None]
        want = _torch_shapes(call.shape, batch) if call.shape and None not in call.shape[1:] else ()
        end = None
        if call.ordinal > 0 and call.name in paired:  # a shared layer's later call: the module's next call
            mods = paired[call.name]
            first_j, first_c = first_call(mods[0], known_in)
            last_j, c = first_call(mods[-1], known_in) if len(mods) > 1 else (first_j, first_c)
            if c is None:
                m.why = f"the PyTorch module '{mods[-1]}' has no further call after its input (torch calls it fewer times than Keras calls '{call.name}')"
            else:
                used_calls.update({(mods[0], first_j), (mods[-1], last_j)})
                end, ext = extend(G.call_end(c, want), act)
                claimed.update(ext)
                head = head_of(first_c[0])
                m.feeds = feeds_for(head, first_c, known_in)
                m.modules, m.how = list(mods), "shared"
        elif call.name in pins:
            target = pins[call.name]
            if target is None:
                m.why = "an intermediate step of a translated PyTorch module"
            elif target not in modules:
                m.why = f"no PyTorch module named '{target}'"
            else:
                j, c = first_call(target, known_in, reuse=True)
                if c is None:
                    j, c = first_call(target, [], reuse=True)
                if c is None and len(known_in) == 1 and not any(True for _ in modules[target].parameters()):
                    end, m.own_node, m.how = known_in[0], False, "identity"  # nn.Identity: no op of its own
                elif c is None:
                    m.why = "the PyTorch module did not run it"
                else:
                    used_calls.add((target, j))
                    used_modules.add(target)
                    end, ext = extend(G.call_end(c, want), act)
                    claimed.update(c)
                    claimed.update(ext)
                    if call.type in _ACTIVATION_LAYERS:  # an activation layer of its own starts its own chain
                        head = head_of(c[0])
                    else:
                        head = _pinned_head(G, tmodule, call.name, c, known_in, weighted, head_of)
                    m.feeds = feeds_for(head, c, known_in)
                    m.modules, m.how = [target], "pinned"
                    between = [n for n in G.names if n in G.node and G.is_ancestor(head, n) and G.is_ancestor(n, end)]
                    owners = [p for p in dict.fromkeys(G.node[n].module_path for n in between) if p in weighted and p != target]
                    m.modules = owners + [target]
                    first_w = next((n for n in between if G.node[n].module_path in weighted), None)
                    if first_w is not None:
                        m.pads = [[int(v) for v in G.node[n].args[1]] for n in between if G.pos[n] < G.pos[first_w] and G.op(n) in _PAD_OPS]
                        if G.din.get(first_w):
                            m.input_layout = G.layout.get(G.din[first_w][0])
        elif call.name in has_weights:
            if missing and not known_in:
                m.why = f"its input {missing[0]!r} is not aligned"
            else:
                mods, how, why = choose_module(call, known_in)
                scaled = _scale_by_param(G, call, known_in, param_shape, taken, batch) if mods is None else None
                if scaled is not None:  # a layer scale: x * gamma, gamma a parameter of the block
                    end = scaled
                    taken.add(end)
                    claimed.add(end)
                    src = [i for i in G.din.get(end, []) if i in known_in or any(G.is_ancestor(k, i) for k in known_in)]
                    m.feeds = {end: {src[0]: 0}} if src else {}
                    m.modules, m.how = [G.node[end].module_path] if G.node[end].module_path else [], "position"
                elif mods is None and not _has_family(call.layer) and _left_out(G, call, known_in, graph.params, batch):
                    end, m.own_node, m.how = known_in[0], False, "identity"  # the port has no op here: measured, found wrong
                    m.modules = [G.node[end].module_path] if end in G.node and G.node[end].module_path else []
                elif mods is None and not _has_family(call.layer):
                    m.why = f"{why}; xconv knows no weight layout for a {call.type}, and no op multiplies its input by a parameter of its weights' shapes"
                elif mods is None:
                    m.why, m.how = why, "unpaired"
                else:
                    first_j, first_c = first_call(mods[0], known_in)
                    last_j, last_c = first_call(mods[-1], known_in) if len(mods) > 1 else (first_j, first_c)
                    used_calls.update({(mods[0], first_j), (mods[-1], last_j)})
                    used_modules.update(mods)
                    paired[call.name] = mods
                    end, ext = extend(G.call_end(last_c, want), act)
                    claimed.update(ext)
                    head = head_of(first_c[0])
                    claimed.add(head)
                    m.feeds = feeds_for(head, first_c, known_in)
                    m.modules, m.how = mods, how
                    walk = first_c[0]
                    while walk != head and G.din.get(walk):
                        walk = G.din[walk][0]
                        if G.op(walk) in _PAD_OPS:
                            m.pads.insert(0, [int(v) for v in G.node[walk].args[1]])
                    if G.din.get(first_c[0]):
                        m.input_layout = G.layout.get(G.din[first_c[0]][0])
        elif missing:
            m.why = f"its input {missing[0]!r} is not aligned"
        elif call.type in _IDENTITY:
            src = known_in[0] if known_in else None
            drop = [c for c in G.cons.get(src, []) if c not in claimed and G.shape(c) == G.shape(src)
                    and G.node[c].module_type in _DROPOUT_MODULES]  # fmt: skip
            if drop:
                end = drop[0]
                claimed.add(end)
                m.feeds = {end: {src: 0}}
                m.modules, m.how = [G.node[end].module_path], "position"
            else:
                end, m.own_node, m.how = src, False, "identity"
        else:
            end, path_head = _search(G, call, known_in, claimed, batch)
            if end is None and call.type.startswith("Concatenate"):
                # DenseNet's torch.cat(features, 1) in a loop: Keras concatenates the previous
                # concatenation, torch its pieces again; search downstream of the pieces
                pieces = _cat_pieces(G, known_in)
                if pieces != known_in:
                    end, path_head = _search(G, call, pieces, claimed, batch)
            if end is None and call.type == "Lambda" and len(known_in) == 1 and call.shape and None not in call.shape[1:]:
                # a Lambda that slices (z[..., :8] as x[:, 0:8]): the one slice of its input with its shape
                fits = [c for c in G.cons.get(known_in[0], []) if c not in claimed and G.op(c) in ("aten::slice", "aten::narrow")
                        and G.shape(c) in _torch_shapes(call.shape, batch)]  # fmt: skip
                if len(fits) == 1:
                    end = path_head = fits[0]
            if end is None and call.type in _ACTIVATION_LAYERS and len(known_in) == 1:
                end = _elementwise_after(G, known_in[0], claimed)  # a hand-written swish, or another activation
                path_head = end
            if (end is None and call.type.startswith(("Reshape", "Permute")) and len(known_in) == 1
                    and G.shape(known_in[0]) in _torch_shapes(call.shape, batch)):  # fmt: skip
                # the port has no op here (a channel shuffle left out) but its value has the
                # layer's shape: the layer's value in the port is that value, and is measured
                end, m.own_node, m.how = known_in[0], False, "identity"
                m.modules = [G.node[end].module_path] if end in G.node and G.node[end].module_path else []
            elif end is None:
                kind_ops = _kind_ops(call.type, call.layer)
                m.why = (
                    f"no PyTorch op {'of its kind ' if kind_ops else ''}with output shape "
                    f"{_torch_shapes(call.shape, batch)[0]} follows its input"
                    + ("" if kind_ops else f" (xconv does not know which ops compute a {call.type})")
                )
            elif m.how != "identity":
                claimed.add(end)
                m.feeds = {path_head: {i: j for j, i in enumerate(known_in) if i in G.din.get(path_head, [])}} if path_head else {}
                if path_head and not m.feeds[path_head] and len(known_in) == 1 and G.din.get(path_head):
                    m.feeds = {path_head: {G.din[path_head][0]: 0}}
                m.modules, m.how = [G.node[end].module_path] if G.node[end].module_path else [], "position"
        if end is None and call.name not in has_weights and known_in and not m.why.startswith("its input"):
            frontier[call.key] = known_in
        if end is not None:
            nodes[call.key] = end
            m.node = end
            if m.own_node:
                owner.setdefault(end, call.row)
            else:  # a pass-through: local mode gives it the Keras value of the row it passes on
                m.passes = owner.get(end, "")
            m.layout = G.layout.get(end, LayoutKind.CF)
            cf, plain = _torch_shapes(call.shape, batch)
            if cf != plain and G.shape(end) in (cf, plain):  # the shape settles what the walk guessed
                m.layout = LayoutKind.CF if G.shape(end) == cf else (LayoutKind.PLAIN if m.layout == LayoutKind.CF else m.layout)
            m.input_layouts = {i: G.layout.get(i, LayoutKind.CF) for f in m.feeds.values() for i in f}
            m.input_shapes = {i: G.shape(i) for f in m.feeds.values() for i in f}
        if (call.row in captured_rows or (not captured_rows and call.ordinal == 0)) and call.row not in matches:  # lint passes no captures: every first call
            matches[call.row] = m
    return matches


def _with_inner_calls(calls: list[KerasCall], captured) -> list[KerasCall]:
    """``calls`` with a call for each inner row of a traced block (``block/inner``, from
    ``keras_side.capture(..., blocks=...)``), placed before the block's call: inner layers claim
    their torch nodes before the block's row takes the block's whole call."""
    inner: dict[str, list] = {}
    for c in captured:
        if c.block:
            inner.setdefault(c.block, []).append(c)
    if not inner:
        return calls
    out = []
    for call in calls:
        if call.ordinal == 0 and call.name in inner:
            for c in inner.pop(call.name):
                ins = tuple(ref for s in c.sources for ref in _inner_refs(s, call))
                out.append(KerasCall(c.layer, c.name, c.type, 0, tuple(dict.fromkeys(ins)), (None, *c.shape[1:]) if c.shape else ()))
        out.append(call)
    return out


def _inner_refs(source, block_call: KerasCall) -> tuple:
    """An inner row's input: another inner row, or ('in', i), the block's input i (where the
    block reads one producer per input; else all of the block's inputs)."""
    if not isinstance(source, tuple):
        return ((source, 0),)
    i = source[1]
    return (block_call.inputs[i],) if len(block_call.inputs) > i else block_call.inputs


def _cat_pieces(G: _Graph, nodes) -> list:
    """``nodes`` with every concatenation replaced by what it concatenates (recursively)."""
    out = []
    for n in nodes:
        if G.op(n) in ("aten::cat", "aten::concat", "aten::concatenate") and G.din.get(n):
            out.extend(_cat_pieces(G, G.din[n]))
        else:
            out.append(n)
    return list(dict.fromkeys(out))


def _elementwise_after(G: _Graph, src, claimed):
    """The activation an activation layer's value is, where no op of its own kind follows its
    input: a hand-written swish ``x * torch.sigmoid(x)`` (the mul), else the one activation op
    that reads the input and keeps its shape (a port computing another activation: it is
    measured, and found wrong). None where there is not exactly one."""
    shape = G.shape(src)
    found = []
    for c in G.cons.get(src, []):
        if c in claimed or G.shape(c) != shape:
            continue
        if G.op(c) == "aten::sigmoid":
            muls = [m for m in G.cons.get(c, []) if G.op(m) == "aten::mul" and src in G.din.get(m, []) and G.shape(m) == shape]
            if muls:
                found.append(muls[0])
                continue
        if G.op(c) in _ALL_ACTIVATION_OPS:
            found.append(c)
    found = [f for f in found if not (G.op(f) == "aten::sigmoid" and any(G.op(m) == "aten::mul" for m in found))]
    return found[0] if len(found) == 1 else None


def _has_family(layer) -> bool:
    from ..errors import XconvError
    from ..weights import family_for_keras

    try:
        family_for_keras(type(layer).__name__, layer.name)
    except (XconvError, KeyError, ValueError):
        return False
    return True


def _next_ops(G: _Graph, src) -> list[str]:
    """The ops that read ``src``, looking through pass-through ops (views, permutes, copies):
    a layer's immediate consumers in the port."""
    out, stack, seen = [], list(G.cons.get(src, [])), set()
    while stack:
        name = stack.pop(0)
        if name in seen:
            continue
        seen.add(name)
        out.append(name)
        if G.op(name) in _SHAPE_OPS:
            stack.extend(G.cons.get(name, []))
    return out


def _scale_by_param(G: _Graph, call: KerasCall, in_nodes, param_shape, taken, batch):
    """For a Keras layer with weights xconv has no layout for (a LayerScale ``x * gamma``): the
    ``mul`` that reads its input right away (through pass-through ops only: views, permutes),
    multiplies by a parameter with the shape of one of the layer's weights and gives the layer's
    output shape; None where there is none. A multiply further on is not this layer's: a port
    that left the layer out would pair it with a later block's gamma."""
    shapes = {tuple(w.shape) for w in call.layer.weights}
    if not in_nodes or not shapes or not call.shape or None in call.shape[1:]:
        return None
    cf, plain = _torch_shapes(call.shape, batch)
    found = []
    for name in dict.fromkeys(n for src in in_nodes for n in _next_ops(G, src)):
        n = G.node.get(name)
        if n is None or name in taken or n.op != "aten::mul" or n.shape not in (cf, plain):
            continue
        if not any(param_shape.get(i) in shapes for i in n.inputs):
            continue
        if all(G.is_ancestor(i, name) for i in in_nodes):
            found.append(name)
    return min(found, key=lambda x: G.pos[x]) if found else None


def _left_out(G: _Graph, call: KerasCall, in_nodes, params, batch) -> bool:
    """A Keras layer with weights xconv has no layout for, which the port computes with no op of
    its own (a LayerScale left out): one input, whose value has the layer's output shape, read
    by no op that uses a parameter. Its value in the port is then that input, and is measured."""
    if len(in_nodes) != 1 or not call.shape or None in call.shape[1:]:
        return False
    if G.shape(in_nodes[0]) not in _torch_shapes(call.shape, batch):
        return False
    return not any(i in params for c in _next_ops(G, in_nodes[0]) if c in G.node for i in G.node[c].inputs)


def _pinned_head(G: _Graph, tmodule, name, call_nodes, in_nodes, weighted, head_of):
    """Where a pinned layer's chain starts: the module's own ``xconv_chains``, else, for a pin on
    an activation module, the weighted module whose output it reads, else the pinned call."""
    chain = getattr(tmodule, "xconv_chains", {}).get(name)
    if chain and chain[0] in G.calls:
        for c in G.calls[chain[0]]:
            if all(G.is_ancestor(i, c[0]) for i in in_nodes) and G.is_ancestor(c[0], call_nodes[-1]):
                return c[0]
    start = call_nodes[0]
    while G.din.get(start) and G.op(start) in _ALL_ACTIVATION_OPS:
        prev = G.din[start][0]
        owner = G.node[prev].module_path if prev in G.node else ""
        if owner in weighted:
            for c in G.calls[owner]:
                if prev in c:
                    return head_of(c[0])
        if prev not in G.node:
            break
        start = prev
    return head_of(call_nodes[0])


def _search(G: _Graph, call: KerasCall, in_nodes, claimed, batch):
    """The first unclaimed node downstream of every input that is computed by an op of the layer's
    kind (or a reshape after one) and has the layer's output shape; and the first node on its path."""
    kind_ops = _kind_ops(call.type, call.layer)
    if not kind_ops or not in_nodes:
        return None, None
    cf, plain = _torch_shapes(call.shape, batch)
    reached = None
    heads: dict[str, str] = {}
    for src in in_nodes:
        seen: dict[str, bool] = {}  # node -> an op of the kind lies on the way
        stack = [(c, False, c) for c in G.cons.get(src, [])]
        while stack:
            name, flag, head = stack.pop()
            flag = flag or G.op(name) in kind_ops
            if name in claimed or (name in seen and seen[name] >= flag):
                continue
            seen[name] = flag
            heads.setdefault(name, head)
            stack.extend((c, flag, head) for c in G.cons.get(name, []))
        ok = {n for n, f in seen.items() if f}
        reached = ok if reached is None else reached & ok
    candidates = [
        n for n in reached or ()
        if (G.op(n) in kind_ops or G.op(n) in _SHAPE_OPS) and G.shape(n) in (cf, plain)
    ]  # fmt: skip
    if not candidates:
        return None, None
    best = min(candidates, key=lambda n: G.pos[n])
    return best, heads.get(best)


def hook_follow(act: str) -> tuple[str, ...]:
    """Names of the torch functions that may compute the Keras activation ``act`` (``F.relu``,
    ``torch.softmax``, ``Tensor.relu_``...), as a hook capture sees them."""
    return tuple(sorted({op.split("::", 1)[1].lstrip("_") for op in _ACTIVATION_OPS.get(act, ())}))


def align_by_names(kmodel, captured, tmodule, pins: dict) -> dict[str, Match]:
    """The fallback when export fails (forward hooks): pins, then modules named like the layers,
    then weighted modules that fit, in order. Values are module outputs (``node`` = module path)."""
    from ..frameworks import keras_side as ks
    from ..frameworks import torch_side as ts

    modules = dict(tmodule.named_modules())
    weighted = [n for n, _ in ts.weighted_modules(tmodule)]
    has_weights = {l.name: l for l in ks.weighted_layers(kmodel)}
    layers = {l.name: l for l in ks.iter_layers(kmodel)}
    sources = {call.name: [s for s, _ in call.inputs] for call in keras_calls(kmodel) if call.ordinal == 0}
    used: set[str] = set()
    out = {}
    for c in captured:
        m = Match(c.name, layout=LayoutKind.CF, how="hooks")
        target = pins.get(c.name, c.name if c.name in modules else None)
        if "#" in c.name and c.name not in pins:
            m.why = "a later call of a shared layer (forward hooks keep a module's first call only)"
            out[c.name] = m
            continue
        if c.name in pins and pins[c.name] is None:
            m.why = "an intermediate step of a translated PyTorch module"
        elif target is None and c.name in has_weights:
            layer = has_weights[c.name]
            target = next((n for n in weighted if n not in used and _fits(layer, modules[n])), None)
        if target is not None and not m.why:
            if target not in modules:
                m.why = f"no PyTorch module named '{target}'"
            else:
                m.node, m.modules = target, [target]
                used.add(target)
                act = activation_of(has_weights[c.name]) if c.name in has_weights else None
                if act is not None and any(True for _ in modules[target].parameters(recurse=False)):
                    # the module computes the layer without its activation: take the activation
                    # forward applies to its output (F.relu(self.conv(x)), or an nn.ReLU after it)
                    m.follow = hook_follow(act)
        elif not m.why and _after_a_value(m, layers.get(c.name), sources.get(c.name, []), out):
            pass
        elif not m.why:
            m.why = "no PyTorch module of its name (hooks see modules, and one activation or add after a value)"
        out[c.name] = m
    return out


_ADD_CALLS = ("add", "iadd", "radd")


def _after_a_value(m: Match, layer, srcs: list[str], matched: dict) -> bool:
    """A Keras activation layer (ReLU, Activation, Softmax, ...) or Add with no module of its own:
    its value is the first torch call on the value of the layer before it, when that call is one
    it may be (``F.relu(self.bn(x))``, ``out += identity``); the rows' keys are 'after:<layer>'."""
    if layer is None:
        return False
    kind = type(layer).__name__
    act = activation_of(layer) if kind in ("ReLU", "Activation", "Softmax", "LeakyReLU", "ELU") else None
    names = hook_follow(act) if act else (_ADD_CALLS if kind == "Add" else ())
    befores = [matched.get(src) for src in srcs] if names else []
    # a fused activation already takes its module's first call
    keys = tuple(b.node for b in befores if b is not None and b.node is not None and not b.follow)
    if not keys or (act and len(srcs) != 1):
        return False
    m.node, m.after, m.how = f"after:{m.name}", (keys, names), "hooks"
    m.modules = [p for b in befores if b is not None for p in b.modules][-1:]
    return True
