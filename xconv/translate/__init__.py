"""Translate a Keras model into an idiomatic channels-first PyTorch module, with its weights.

>>> from xconv import zoo
>>> module = keras_to_torch(zoo.build("two_conv", "keras"))   # doctest: +SKIP
>>> print(module_source(zoo.build("two_conv", "keras")))      # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import BadInputError, XconvError
from ..frameworks import framework_of
from . import registry
from .spec import CF, KLayer, Layout, Piece

__all__ = ["keras_to_torch", "module_source", "Translation", "translate", "supported_layers"]


def supported_layers() -> dict[str, str]:
    """Keras layer type -> family, read from the registry."""
    return {name: conv.family for name, conv in registry.supported().items()}


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
        kind = type(c.layer).__name__
        if kind == "Dense":
            continue
        if convs[kind].elementwise and len(c.inputs) == 1:
            if not _feeds_only_dense(graph, c.outputs[0], convs):
                return False
            continue
        return False
    return True


def translate(model, *, channels_last_io: bool = False, class_name: str | None = None, weights_of=None) -> Translation:
    """Read the Keras graph, convert every layer, and generate the module's source.

    ``weights_of(layer)`` replaces the layer's arrays (``convert`` passes index arrays to
    learn where every Keras weight element lands).
    """
    from ..frameworks import keras_side as ks
    from .graph import identifier, walk

    if framework_of(model) != "keras":
        raise BadInputError(f"keras_to_torch takes a Keras model; received {type(model).__name__}.")
    graph = walk(model)
    # every layer type must be known before anything is built or written
    convs = {type(c.layer).__name__: registry.get(type(c.layer).__name__, c.layer.name) for c in graph.calls}
    layouts: dict[int, Layout] = {tid: Layout.for_rank(len(shape)) for tid, _, shape in graph.inputs}
    pieces: dict[str, Piece] = {}
    first_call: dict[str, object] = {}
    dtype = "float32"
    for call in graph.calls:
        kind = type(call.layer).__name__
        in_layouts = tuple(layouts[t] for t in call.inputs)
        if call.name not in pieces:
            weights = (weights_of or ks.layer_weights)(call.layer)
            for value in weights.values():
                dtype = str(value.dtype) if value.dtype.kind == "f" else dtype
            spec = KLayer(
                name=call.name, keras_name=call.layer.name, class_name=kind, config=call.layer.get_config(),
                weights=weights, input_shapes=call.input_shapes, output_shape=call.output_shape,
                in_layouts=in_layouts, feeds_only_dense=_feeds_only_dense(graph, call.outputs[0], convs),
            )  # fmt: skip
            try:
                pieces[call.name] = convs[kind].fn(spec)
            except XconvError:
                raise
            except (KeyError, ValueError, TypeError) as exc:
                raise BadInputError(f"Cannot translate layer '{call.layer.name}' ({kind}): {exc!r}") from exc
            first_call[call.name] = call
        for t in call.outputs:
            layouts[t] = pieces[call.name].out_layout

    taken = {c.name for c in graph.calls} | {n for _, n, _ in graph.inputs}
    attrs: dict[str, list[str]] = {}
    state: dict[str, np.ndarray] = {}
    helpers: list[str] = []
    init_lines: list[str] = []
    for name, piece in pieces.items():
        attrs[name] = []
        for step in piece.steps:
            attr = name if step.suffix == "" else identifier(f"{name}{step.suffix}", taken)
            attrs[name].append(attr)
            init_lines.append(f"        self.{attr} = {step.code}")
            helpers.extend(step.helpers)
            for key, value in step.weights.items():
                state[f"{attr}.{key}"] = np.ascontiguousarray(value)

    var: dict[int, str] = {}
    vtaken: set[str] = {n for _, n, _ in graph.inputs} | {"self", "torch", "nn", "F", "math"}
    args = []
    body = []
    for tid, arg, shape in graph.inputs:
        var[tid] = arg
        args.append(arg)
        if channels_last_io and len(shape) >= 3:
            body.append(f"        {arg} = {arg}.movedim(-1, 1)  # channels-last in")
    for call in graph.calls:
        expr = ", ".join(var[t] for t in call.inputs)
        for attr in attrs[call.name]:
            expr = f"self.{attr}({expr})"
        out = identifier(call.name if call is first_call[call.name] else f"{call.name}_out", vtaken)
        body.append(f"        {out} = {expr}")
        for t in call.outputs:
            var[t] = out
    results = []
    for t in graph.outputs:
        name = var[t]
        if channels_last_io and layouts[t].kind == CF:
            name = f"{name}.movedim(1, -1)"
        results.append(name)
    body.append(f"        return {results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'}")

    outputs, plain = {}, {}
    chains = {c.layer.name: attrs[c.name] for c in graph.calls if len(attrs[c.name]) > 1 and c.layer.name in graph.layer_outputs}
    for keras_name, tid in graph.layer_outputs.items():
        producer = next((c for c in graph.calls if tid in c.outputs), None)
        if producer is not None:
            outputs[keras_name] = attrs[producer.name][-1]
            if layouts[tid].kind == "plain":  # e.g. a Flatten kept in Keras order: compare must not reorder it
                plain[keras_name] = "plain"
    cls = class_name or _class_name(model.name)
    from .preamble import source as preamble

    src = "\n".join(
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
            preamble(helpers),
            "",
            f"class {cls}(nn.Module):",
            "    def __init__(self):",
            "        super().__init__()",
            *init_lines,
            f"        # Keras layer -> module whose output is that layer's activation (read by xconv.compare)",
            f"        self.xconv_outputs = {outputs!r}",
            *([f"        self.xconv_layouts = {plain!r}"] if plain else []),
            *([f"        self.xconv_chains = {chains!r}"] if chains else []),
            "",
            f"    def forward(self, {', '.join(args)}):",
            *body,
            "",
        ]
    )
    return Translation(cls, src, state, outputs, dtype)


def _class_name(name: str) -> str:
    parts = [p for p in "".join(ch if ch.isalnum() else " " for ch in name).split() if p]
    base = "".join(p[:1].upper() + p[1:] for p in parts) or "Translated"
    return base if base[0].isalpha() else f"M{base}"


def build_module(translation: Translation):
    """Execute the generated source and load the weights: the module *is* the file's code."""
    import torch

    namespace: dict = {"__name__": f"xconv_generated_{translation.class_name}"}
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


def write_source(translation: Translation, module, source, *, weights=None, force: bool = True) -> None:
    """Write the module's source and its state_dict beside it, both atomically."""
    import torch

    from ..files import atomic_output

    source = os.fspath(source)
    weights = os.fspath(weights) if weights is not None else os.path.splitext(source)[0] + ".pt"
    text = translation.source.replace('torch.load("weights.pt"', f'torch.load("{os.path.basename(weights)}"')
    atomic_output(weights, lambda tmp: torch.save(module.state_dict(), tmp), force=force)
    atomic_output(source, lambda tmp: open(tmp, "w").write(text), force=force)


def keras_to_torch(model, *, channels_last_io: bool = False, source: str | os.PathLike | None = None, weights: str | os.PathLike | None = None):
    """Translate a Keras 3 Sequential or functional model into an eval-mode ``torch.nn.Module``.

    The module's submodules carry the Keras layer names; its ``forward`` takes channels-first
    tensors (or Keras-layout tensors with ``channels_last_io=True``) with any batch size.
    ``source="model.py"`` also writes the module's Python source, importable without xconv,
    and its weights (``weights=``, default ``model.pt`` beside it) as a state_dict.
    An unsupported layer raises :class:`UnsupportedLayerError` before anything is built or written.
    """
    translation = translate(model, channels_last_io=channels_last_io)
    module = build_module(translation)
    if source is not None:
        write_source(translation, module, source, weights=weights)
    return module
