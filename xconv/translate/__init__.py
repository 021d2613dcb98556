"""Translate a Keras model into an idiomatic channels-first PyTorch module, with its weights.

>>> from xconv import zoo
>>> module = keras_to_torch(zoo.build("two_conv", "keras"))   # doctest: +SKIP
>>> print(module_source(zoo.build("two_conv", "keras")))      # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError, UnsupportedLayerError, XconvError
from ..frameworks import framework_of
from . import converters
from .spec import CF, CL, FLAT, KERAS, PLAIN, KLayer, Layout

__all__ = ["keras_to_torch", "module_source", "Translation", "translate", "supported_layers", "supported_operations"]


def supported_layers() -> dict[str, str]:
    """Keras layer type -> its converter's family, the file it lives in (``xconv/translate/layers/<family>.py``)."""
    return {name: conv.family for name, conv in converters.supported().items() if not name.startswith("ops.")}


def supported_operations() -> list[str]:
    """The Keras operations (``keras.ops`` classes, and operators on KerasTensors) that translate."""
    return [name.removeprefix("ops.") for name in converters.supported() if name.startswith("ops.")]


@dataclass
class Translation:
    """The generated source, the state_dict (NumPy), and the layer -> module alignment."""

    class_name: str
    source: str
    state: dict[str, np.ndarray]
    outputs: dict[str, str]  # Keras layer name -> attribute whose output is that layer's activation
    dtype: str


def _feeds_only_dense(graph, tensor: int, convs) -> bool:
    consumers = [c for c in graph.calls if tensor in c.inputs]
    if not consumers or tensor in graph.outputs:
        return False
    for c in consumers:
        if c.key == "Dense":
            continue
        conv = convs.get(c.key)
        if conv is not None and conv.elementwise and len(c.inputs) == 1 and not c.is_op:
            if not _feeds_only_dense(graph, c.outputs[0], convs):
                return False
            continue
        return False
    return True


def _collect_converters(graph, convs: dict) -> None:
    """Every call's converter (blocks: their inner calls), so an unknown type fails before any work."""
    for c in graph.calls:
        if c.block is not None:
            _collect_converters(c.block, convs)
        elif c.key not in convs:
            convs[c.key] = converters.get(c.key, c.layer.name)


def _to_layout(var: str, have: Layout, want: str | None, name: str) -> str:
    """``var`` (laid out as ``have``) as an expression in layout ``want`` (CF, KERAS or None)."""
    if want is None:
        return var
    if want == KERAS:
        if have.kind == CF:
            return f"{var}.movedim(1, -1)"
        if have.kind == FLAT:
            raise UnsupportedLayerError(
                f"'{name}' works on the output of a Flatten in Keras' order, which xconv keeps in torch's order for the "
                f"Dense after it; put the operation before the Flatten, or use a Reshape."
            )
        return var
    if want == CF and have.kind == CL:
        return f"{var}.movedim(-1, 1)"
    return var


def _config(layer) -> dict:
    if hasattr(layer, "get_config") and is_layer(layer):
        try:
            return layer.get_config()
        except (NotImplementedError, TypeError, ValueError):
            pass
    return {k: v for k, v in vars(layer).items() if not k.startswith("_")}


def _plain_args(value, value_of=None):
    """Call arguments with Keras variables read into NumPy (an op on a layer's own weight), by
    ``value_of(variable)`` where given."""
    from ..frameworks import keras_side as ks

    if isinstance(value, (list, tuple)):
        return type(value)(_plain_args(v, value_of) for v in value)
    if isinstance(value, dict):
        return {k: _plain_args(v, value_of) for k, v in value.items()}
    if _is_variable(value):
        return value_of(value) if value_of is not None else ks.to_numpy(value.value)
    if hasattr(value, "numpy") and hasattr(value, "shape") and hasattr(value, "dtype"):  # an eager backend tensor
        return np.asarray(ks.to_numpy(value))
    return value


def _is_variable(value) -> bool:
    return hasattr(value, "path") and hasattr(value, "value") and hasattr(value, "assign")


def _variables(args, kwargs) -> list:
    """The float Keras variables among an operation's arguments (a custom layer's own weights and state)."""
    out = []

    def visit(v):
        if isinstance(v, (list, tuple)):
            for x in v:
                visit(x)
        elif isinstance(v, dict):
            for x in v.values():
                visit(x)
        elif _is_variable(v) and "float" in str(v.dtype):
            out.append(v)

    visit(args)
    visit(kwargs)
    return out


def _variable_for(value: np.ndarray, variables: list, value_of):
    """The variable whose values ``value`` holds (a converter may reshape it or move its axes)."""
    if value.dtype.kind != "f":
        return None
    for var in variables:
        arr = np.asarray(value_of(var))
        if arr.size == value.size and np.array_equal(np.sort(arr, axis=None), np.sort(value, axis=None)):
            return var
    return None


def is_layer(op) -> bool:
    from .graph import is_layer as _is_layer

    return _is_layer(op)


class _Generator:
    """Source for one class per graph (the model, and every traced block), and the state_dict."""

    def __init__(self, convs, weights_of, channels_last_io: bool):
        self.convs, self.weights_of, self.channels_last_io = convs, weights_of, channels_last_io
        self.owners: list = []  # the traced custom layers being written, innermost last
        self.owner_weights: dict[int, dict] = {}  # id(owner) -> its weights as weights_of gives them, while it is written
        self.helpers: list[str] = []
        self.classes: list[str] = []
        self.class_names: set[str] = set()
        self.state: dict[str, np.ndarray] = {}
        self.dtype: str | None = None

    def _weights(self, layer):
        from ..frameworks import keras_side as ks

        weights = (self.weights_of or ks.layer_weights)(layer)
        for value in weights.values():
            if value.dtype.kind == "f":
                self.dtype = str(value.dtype)
        return weights

    def _variable_value(self, var) -> np.ndarray:
        """A Keras variable an operation reads (a custom layer's own ``self.gamma``), as the layer's
        weights are given: through ``weights_of`` of the traced layer that holds it, so that
        ``convert``'s index arrays reach it as they reach a built-in layer's kernel."""
        from ..frameworks import keras_side as ks

        if self.weights_of is not None:
            for owner in reversed(self.owners):
                for key, v in zip(ks.weight_keys(owner), owner.weights):
                    if v is var:
                        if id(owner) not in self.owner_weights:  # once per traced layer, not per operation
                            self.owner_weights[id(owner)] = self._weights(owner)
                        return self.owner_weights[id(owner)][key]
        return ks.to_numpy(var.value)

    def _block_class(self, layer) -> str:
        from .graph import identifier

        return identifier(_class_name(type(layer).__name__), self.class_names)

    def emit(self, graph, cls: str, in_layouts: list[Layout], prefix: str, top: bool):
        """Append the class for ``graph``; return (outputs mapping, output layouts, chains, plain).

        Phases: each call converted and written (``__init__`` lines and a ``forward`` line),
        the returns, the alignment tables ``compare`` reads, and the class's text."""
        k = _Class(graph, prefix, top)
        for (tid, arg, shape), given in zip(graph.inputs, in_layouts):
            k.var[tid] = arg
            # channels_last_io: Keras' own order comes in, and each consumer takes it as it needs
            k.layouts[tid] = Layout(CL) if top and self.channels_last_io and len(shape) >= 3 else given
        for call in graph.calls:
            if call.block is not None:
                self._emit_block(k, call)
            else:
                self._emit_call(k, call)
        out_layouts = self._emit_return(k)
        outputs, plain, chains = self._alignment(k)
        self.classes.append(self._render_class(k, cls, outputs, plain, chains))
        return outputs, out_layouts, chains, plain

    def _emit_block(self, k: "_Class", call) -> None:
        """A traced custom layer: a class of its own (emitted first), a submodule of the layer's name."""
        first = call.name not in k.done
        out = k.result_name(call, first)
        if first:
            sub_cls = self._block_class(call.layer)
            sub_in = [Layout(CF) if k.layouts[t].kind == CL else k.layouts[t] for t in call.inputs]
            self.owners.append(call.layer)
            try:
                sub_outs, sub_layouts, sub_chains, sub_plain = self.emit(call.block, sub_cls, sub_in, f"{k.prefix}{call.name}.", top=False)
            finally:
                self.owner_weights.pop(id(self.owners.pop()), None)
            k.init_lines.append(f"        self.{call.name} = {sub_cls}()")
            k.block_tables[call.layer.name] = (call.name, sub_outs, sub_chains, sub_plain)
            k.block_outs[call.name] = sub_layouts
            k.attrs[call.name] = [call.name]
            k.done[call.name] = call
        ins = [_to_layout(k.var[t], k.layouts[t], CF, call.layer.name) for t in call.inputs]
        k.body.append(f"        {out} = self.{call.name}({', '.join(ins)})")
        self._bind(call, out, k.block_outs[call.name], k.var, k.layouts)

    def _convert(self, k: "_Class", call, conv, keep: bool):
        """The converter's piece for one call (a layer called again reuses its first piece)."""
        in_layouts = tuple(k.layouts[t] for t in call.inputs)
        if not conv.layout_free and not keep:  # it will receive channels-first maps
            in_layouts = tuple(Layout(CF) if l.kind == CL else l for l in in_layouts)
        spec = KLayer(
            name=call.name, keras_name=call.layer.name, class_name=call.key.removeprefix("ops."),
            config=_config(call.layer), weights={} if call.is_op else self._weights(call.layer),
            input_shapes=call.input_shapes, output_shape=call.output_shape, in_layouts=in_layouts,
            feeds_only_dense=_feeds_only_dense(k.graph, call.outputs[0], self.convs),
            args=_plain_args(call.args, self._variable_value), kwargs=_plain_args(call.kwargs, self._variable_value),
            output_shapes=call.output_shapes,
            input_dtypes=call.input_dtypes, output_dtypes=call.output_dtypes, layer=call.layer,
        )  # fmt: skip
        try:
            return conv.fn(spec)
        except XconvError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            what = "operation" if call.is_op else "layer"
            raise BadInputError(f"Cannot translate {what} '{call.layer.name}' ({spec.class_name}): {exc!r}") from exc

    def _emit_call(self, k: "_Class", call) -> None:
        """A layer or operation: converted, then written as modules (``__init__``) or an expression."""
        first = call.name not in k.done
        out = k.result_name(call, first)
        conv = self.convs[call.key]
        # maps already in Keras' own order (after channels_first layers) stay so for a layer that keeps it
        here = [k.layouts[t] for t in call.inputs]
        keep = conv.keeps_order and bool(here) and all(l.kind == CL for l in here)
        if call.is_op or first:
            piece = self._convert(k, call, conv, keep)
            if not call.is_op:
                k.done[call.name] = (call, piece)
        else:
            piece = k.done[call.name][1]
        wants = piece.inputs_as or ((None if piece.expr is not None or keep else CF),) * len(call.inputs)
        ins = [_to_layout(k.var[t], k.layouts[t], w, call.layer.name) for t, w in zip(call.inputs, wants)]
        if piece.expr is not None:
            expr = piece.expr.format(*ins, **self._constants(k, call, piece))
            if k.graph.batch is not None:  # traced with a stand-in batch size: read the real one
                expr = re.sub(rf"\b{k.graph.batch}\b", f"{k.graph.inputs[0][1]}.shape[0]", expr)
            k.attrs.setdefault(call.name, [])
        else:
            if first:
                self._modules(k, call, piece)
            expr = ", ".join(ins)
            for attr in k.attrs[call.name]:
                expr = f"self.{attr}({expr})"
        k.body.append(f"        {out} = {expr}")
        out_l = piece.out_layouts or (piece.out_layout,) * max(piece.n_outputs, len(call.outputs))
        self._bind(call, out, out_l, k.var, k.layouts, several=piece.n_outputs > 1 or len(call.outputs) > 1)

    def _modules(self, k: "_Class", call, piece) -> None:
        """``self.<name>[__suffix] = <module>`` for each step, and its weights in the state_dict."""
        from .graph import identifier

        k.attrs[call.name] = []
        for step in piece.steps:
            attr = call.name if step.suffix == "" else identifier(f"{call.name}{step.suffix}", k.taken)
            k.attrs[call.name].append(attr)
            k.init_lines.append(f"        self.{attr} = {step.code}")
            self.helpers.extend(step.helpers)
            for key, value in step.weights.items():
                self.state[f"{k.prefix}{attr}.{key}"] = np.ascontiguousarray(value)
            # the state has them now; the piece stays (k.done) only for its code, for a layer called
            # again, so a state that keeps no arrays (convert's weight map) holds one layer's at a time
            step.weights.clear()

    def _constants(self, k: "_Class", call, piece) -> dict[str, str]:
        """An expression's constant tensors: a layer's own weights (``x * self.gamma``) become
        parameters named after the variable (one per variable; a non-trainable one, a buffer of
        its name), other constants buffers named after the operation."""
        from .graph import identifier

        consts = {}
        variables = _variables(call.args, call.kwargs) if call.is_op else []
        for i, value in enumerate(piece.constants):
            kvar = _variable_for(value, variables, self._variable_value)
            key = (id(kvar), value.shape, value.tobytes()) if kvar is not None else None
            if key in k.params:  # the same Keras variable, used again: one parameter
                consts[f"c{i}"] = f"self.{k.params[key]}"
                continue
            shape = ", ".join(str(int(n)) for n in value.shape)
            shape = f"({shape}{',' if value.ndim == 1 else ''})"
            if kvar is not None:
                attr = identifier(kvar.name, k.taken)
                if getattr(kvar, "trainable", False):
                    k.init_lines.append(f"        self.{attr} = nn.Parameter(torch.zeros({shape}))")
                else:
                    k.init_lines.append(f'        self.register_buffer("{attr}", torch.zeros({shape}))')
                k.params[key] = attr
            else:
                attr = identifier(f"{call.name}_c{i}" if len(piece.constants) > 1 else f"{call.name}_const", k.taken)
                kind = "" if value.dtype.kind == "f" else f", dtype=torch.{np.dtype(value.dtype).name}"
                k.init_lines.append(f'        self.register_buffer("{attr}", torch.zeros({shape}{kind}))')
            self.state[f"{k.prefix}{attr}"] = np.ascontiguousarray(value)
            consts[f"c{i}"] = f"self.{attr}"
        return consts

    def _emit_return(self, k: "_Class") -> tuple[Layout, ...]:
        """``forward``'s return line; the model's outputs in the layout its I/O promises."""
        results, out_layouts = [], []
        for t in k.graph.outputs:
            name, lay = k.var[t], k.layouts[t]
            if k.top:
                if self.channels_last_io and lay.kind == CF:
                    name = f"{name}.movedim(1, -1)"
                elif not self.channels_last_io and lay.kind == CL:
                    name, lay = f"{name}.movedim(-1, 1)", Layout(CF)
            results.append(name)
            out_layouts.append(lay)
        k.body.append(f"        return {results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'}")
        return tuple(out_layouts)

    @staticmethod
    def _alignment(k: "_Class"):
        """What ``compare`` reads: Keras layer -> module whose output it is, activations kept in
        Keras order, and layers written as several modules (their chains)."""
        graph, attrs = k.graph, k.attrs
        outputs: dict[str, str] = {}
        plain: dict[str, str] = {}
        chains = {}
        for call in graph.calls:
            if call.is_op or call.layer.name not in graph.layer_outputs:
                continue
            if len(attrs.get(call.name, [])) > 1:
                chains[call.layer.name] = attrs[call.name]
        for keras_name, tid in graph.layer_outputs.items():
            producer = next((c for c in graph.calls if tid in c.outputs and not c.is_op), None)
            if producer is not None and attrs.get(producer.name):
                outputs[keras_name] = attrs[producer.name][-1]
                if k.layouts[tid].kind in (PLAIN, CL):  # e.g. a Flatten kept in Keras order: compare must not reorder it
                    plain[keras_name] = PLAIN.value
        # a traced block's inner layers, as 'block/inner' -> 'block.module' (compare aligns inside the block)
        for keras_name, (attr, sub_outs, sub_chains, sub_plain) in k.block_tables.items():
            outputs.update({f"{keras_name}/{n}": f"{attr}.{m}" for n, m in sub_outs.items()})
            chains.update({f"{keras_name}/{n}": [f"{attr}.{m}" for m in ms] for n, ms in sub_chains.items()})
            plain.update({f"{keras_name}/{n}": v for n, v in sub_plain.items()})
        return outputs, plain, chains

    @staticmethod
    def _render_class(k: "_Class", cls: str, outputs, plain, chains) -> str:
        lines = [f"class {cls}(nn.Module):", "    def __init__(self):", "        super().__init__()", *k.init_lines]
        if k.top:
            lines.append("        # Keras layer -> module whose output is that layer's activation (read by xconv.compare)")
            lines.append(f"        self.xconv_outputs = {outputs!r}")
            if plain:
                lines.append(f"        self.xconv_layouts = {plain!r}")
            if chains:
                lines.append(f"        self.xconv_chains = {chains!r}")
        args = [arg for _, arg, _ in k.graph.inputs]
        lines += ["", f"    def forward(self, {', '.join(args)}):", *k.body, ""]
        return "\n".join(lines)

    @staticmethod
    def _bind(call, out, out_layouts, var, layouts, several=None):
        several = len(call.outputs) > 1 if several is None else several
        for i, t in enumerate(call.outputs):
            var[t] = f"{out}[{i}]" if several else out
            layouts[t] = out_layouts[i] if i < len(out_layouts) else out_layouts[-1]


class _Class:
    """What one generated class accumulates while its graph's calls are written."""

    def __init__(self, graph, prefix: str, top: bool):
        self.graph, self.prefix, self.top = graph, prefix, top
        self.layouts: dict[int, Layout] = {}
        self.var: dict[int, str] = {}  # tensor id -> the Python expression holding it in forward
        self.taken = {c.name for c in graph.calls} | {n for _, n, _ in graph.inputs}  # attribute names
        self.vtaken: set[str] = {n for _, n, _ in graph.inputs} | {"self", "torch", "nn", "F", "math"}  # local names
        self.init_lines: list[str] = []
        self.body: list[str] = []
        self.attrs: dict[str, list[str]] = {}  # call name -> its modules, in order
        self.block_outs: dict[str, tuple[Layout, ...]] = {}
        self.block_tables: dict[str, tuple] = {}  # Keras block name -> (its attribute, its alignment tables)
        self.done: dict[str, object] = {}  # layers already converted (a shared layer is one module)
        self.params: dict[tuple, str] = {}  # (Keras variable, array as used) -> its parameter

    def result_name(self, call, first: bool) -> str:
        from .graph import identifier

        return identifier(call.name if first else f"{call.name}_out", self.vtaken)


def translate(model, *, channels_last_io: bool = False, class_name: str | None = None, weights_of=None) -> Translation:
    """Read the Keras graph, convert every layer and operation, and generate the module's source.

    ``weights_of(layer)`` replaces the layer's arrays (``convert`` passes index arrays to
    learn where every Keras weight element lands). Custom layers with no converter are traced
    into blocks: each becomes a class of its own, kept as a submodule under the layer's name.
    Phases: :func:`_read` (graph and converters), naming the class, :meth:`_Generator.emit`
    (convert and write each class), :func:`_render` (the file).
    """
    graph, convs = _read(model)
    gen = _Generator(convs, weights_of, channels_last_io)
    cls = class_name or _class_name(model.name)
    gen.class_names.add(cls)
    outputs, _, _, _ = gen.emit(graph, cls, [Layout.for_rank(len(shape)) for _, _, shape in graph.inputs], "", top=True)
    src = _render(model, cls, gen, channels_last_io)
    return Translation(cls, src, gen.state, outputs, gen.dtype or _input_dtype(model))


def translation_state(model, state, *, weights_of=None):
    """translate()'s state_dict of ``model``, stored into ``state`` (a dict, or a dict subclass
    that reduces each array as it is stored: ``convert``'s weight plans and digests), without
    rendering the module's source; returns ``state``. ``weights_of`` as for :func:`translate`."""
    graph, convs = _read(model)
    gen = _Generator(convs, weights_of, False)
    gen.state = state
    cls = _class_name(model.name)
    gen.class_names.add(cls)
    gen.emit(graph, cls, [Layout.for_rank(len(shape)) for _, _, shape in graph.inputs], "", top=True)
    return state


def _read(model):
    """The model's graph and every call's converter: an unknown type fails before any work."""
    from .graph import _expand_default, walk

    if framework_of(model) != "keras":
        raise BadInputError(f"keras_to_torch takes a Keras model; received {type(model).__name__}.")
    graph = walk(model, expand=_expand_default)
    convs: dict = {}
    _collect_converters(graph, convs)
    return graph, convs


def _render(model, cls: str, gen: "_Generator", channels_last_io: bool) -> str:
    """The file: a docstring saying how to load it, the helpers it uses, then the classes."""
    from .preamble import source as preamble

    return "\n".join(
        [
            f'"""{cls}: translated by xconv from the Keras model \'{model.name}\'.',
            "",
            "Channels-first throughout" + (" (inputs and outputs channels-last)." if channels_last_io else "."),
            "Load the weights written beside this file:",
            "",
            f"    model = {cls}()",
            '    model.load_state_dict(torch.load("weights.pt", weights_only=True))',
            '"""',
            "",
            preamble(gen.helpers),
            "",
            *gen.classes,
        ]
    )


def _input_dtype(model) -> str:
    for t in getattr(model, "inputs", None) or []:
        if "float" in str(t.dtype):
            return str(t.dtype)
    return "float32"


def _class_name(name: str) -> str:
    parts = [p for p in "".join(ch if ch.isalnum() else " " for ch in name).split() if p]
    base = "".join(p[:1].upper() + p[1:] for p in parts) or "Translated"
    return base if base[0].isalpha() else f"M{base}"


def build_module(translation: Translation):
    """Execute the generated source and load the weights: the module *is* the file's code."""
    import torch

    from .. import keras_plugins

    namespace: dict = {"__name__": f"xconv_generated_{translation.class_name}"}
    namespace.update(keras_plugins.module_classes())  # plug-ins' own torch modules
    exec(compile(translation.source, f"<xconv:{translation.class_name}>", "exec"), namespace)  # our own generated code
    module = namespace[translation.class_name]()
    module.to(getattr(torch, translation.dtype))
    tensors = {k: torch.from_numpy(v) for k, v in translation.state.items()}
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # a converter bug, not user input
        raise AssertionError(f"generated module and weights disagree: missing {missing}, unexpected {unexpected}")
    return module.eval()


def module_source(model, *, channels_last_io: bool = False) -> str:
    """The Python source of the module :func:`keras_to_torch` would build."""
    return translate(model, channels_last_io=channels_last_io).source


def write_source(translation: Translation, module, source, *, weights=None, force: bool = False) -> None:
    """Write the module's source and its state_dict beside it, under the output rule of
    :class:`xconv.files.Outputs`: both or neither; an existing file only with ``force``."""
    import torch

    from ..files import Outputs

    source = os.fspath(source)
    weights = os.fspath(weights) if weights is not None else os.path.splitext(source)[0] + ".pt"
    text = translation.source.replace('torch.load("weights.pt"', f'torch.load("{os.path.basename(weights)}"')
    with Outputs(force=force) as out:
        out.add(source, "source")
        out.add(weights, f"weights beside source {source!r}")
        out.fill(weights, lambda tmp: torch.save(module.state_dict(), tmp))
        out.fill(source, lambda tmp: open(tmp, "w").write(text))


def keras_to_torch(
    model, *, channels_last_io: bool = False, source: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
    force: bool = False,
):
    """Translate a Keras 3 Sequential or functional model into an eval-mode ``torch.nn.Module``.

    The module's submodules carry the Keras layer names; its ``forward`` takes channels-first
    tensors (or Keras-layout tensors with ``channels_last_io=True``) with any batch size.
    ``source="model.py"`` also writes the module's Python source, importable without xconv,
    and its weights (``weights=``, default ``model.pt`` beside it) as a state_dict; an existing
    file is refused unless ``force=True``, and the two may not be the same file.
    An unsupported layer raises :class:`UnsupportedLayerError` before anything is built or written.
    """
    translation = translate(model, channels_last_io=channels_last_io)
    module = build_module(translation)
    if source is not None:
        write_source(translation, module, source, weights=weights, force=force)
    return module
