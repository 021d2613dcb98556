"""Copy weights between a Keras model and its PyTorch twin, either way, checking every shape.

>>> from xconv import zoo
>>> k = zoo.build("two_conv", "keras")            # doctest: +SKIP
>>> t = zoo.build("two_conv", "torch")            # doctest: +SKIP
>>> manifest = transfer_weights(k, t)             # doctest: +SKIP
>>> manifest.entries[0].transform                 # doctest: +SKIP
'permute (3, 2, 0, 1)'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import layouts
from .errors import BadInputError, LayoutError, MismatchedModelsError
from .frameworks import framework_of
from .weights import LayerContext, family_for_keras

__all__ = ["transfer_weights", "Manifest", "TransferEntry"]


@dataclass(frozen=True)
class TransferEntry:
    """One tensor moved: source and target names and shapes, and the layout transform applied.

    Names are ``layer.weight`` paths on each side (``conv1.kernel`` -> ``conv1.weight``);
    ``transform`` says how the array was moved (``copy``, ``permute (3, 2, 0, 1)``, ``transpose``,
    ``transpose + flatten order`` ...).
    """

    source: str
    target: str
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    transform: str


@dataclass
class Manifest:
    """What was copied where, and how: one :class:`TransferEntry` per tensor.

    ``direction`` is ``"keras->torch"`` or ``"torch->keras"``; ``matched_by`` how the layers were
    paired (``"name"``, ``"order"``, ``"name and order"``, ``"type and shape"``, ``"manifest"`` ...).
    Saved with :meth:`to_json`, it re-applies the same pairing (``transfer_weights(manifest=)``).
    """

    direction: str
    matched_by: str
    entries: list[TransferEntry] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The manifest as plain data."""
        return {"direction": self.direction, "matched_by": self.matched_by, "entries": [asdict(e) for e in self.entries]}

    def to_json(self, **kw) -> str:
        """The manifest as JSON (give it back as ``transfer_weights(..., manifest=text)``)."""
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """A manifest from ``to_json``'s text."""
        data = json.loads(text)
        entries = [TransferEntry(e["source"], e["target"], tuple(e["source_shape"]), tuple(e["target_shape"]), e["transform"]) for e in data["entries"]]
        return cls(direction=data["direction"], matched_by=data["matched_by"], entries=entries)

    def layer_plan(self) -> dict[str, str]:
        """Keras layer -> torch module, as this manifest paired them (to re-apply it)."""
        plan = {}
        for e in self.entries:
            k, t = (e.source, e.target) if self.direction.startswith("keras") else (e.target, e.source)
            plan[k.rsplit(".", 1)[0]] = t.rsplit(".", 1)[0]
        return plan


def _norm(name: str) -> str:
    return name.replace(".", "_").replace("/", "_")


def shapes_fit(layer, module) -> bool:
    """Would ``layer``'s weights, converted, have ``module``'s shapes? (The test transfer pairs by,
    and compare's alignment too: :mod:`xconv.comparison.align`.)"""
    from .frameworks import keras_side as ks
    from .frameworks import torch_side as ts

    family = _family(layer, module)
    if type(module).__name__ not in family.torch_types + family.pairs_with:
        return False
    ctx = layer_context(layer)
    try:
        converted = family.to_torch(ks.layer_weights(layer), ctx)
    except (LayoutError, KeyError):
        return False
    target = ts.module_arrays(module)
    return set(converted) == set(target) and all(converted[k].shape == target[k].shape for k in converted)


def _family(layer, module):
    """A plug-in module's own weight map (xconv.register_module), else the Keras layer type's family."""
    from .keras_plugins import module_family

    return module_family(type(module).__name__) or family_for_keras(type(layer).__name__, layer.name)


def layer_context(layer) -> LayerContext:
    """What a weight family needs to know of a Keras layer beyond its arrays: the flatten shape a
    Dense reads, a depthwise multiplier, attention heads (shared with compare's alignment)."""
    from .frameworks import keras_side as ks

    heads = getattr(layer, "num_heads", None)
    return LayerContext(
        layer.name, flatten_of=ks.flatten_source_shape(layer), depth_multiplier=int(getattr(layer, "depth_multiplier", 1)),
        num_heads=int(heads) if heads else None,
    )  # fmt: skip


def _pair(keras_layers, torch_modules, plan: dict[str, str] | None = None):
    """Pair Keras layers with torch modules: a plan (a re-applied manifest), else by name, else by
    order when what is left lines up one to one, else by type and shape, refusing ambiguity."""
    by_name = dict(torch_modules)
    if plan is not None:
        missing = [k for k in (l.name for l in keras_layers) if plan.get(k) not in by_name]
        if missing:
            raise MismatchedModelsError(f"The manifest does not fit these models: no target for Keras layers {missing[:8]}.")
        return [(l, plan[l.name], by_name[plan[l.name]]) for l in keras_layers], "manifest"
    normed = {_norm(n): n for n, _ in torch_modules}
    pairs, left_k, used = [], [], set()
    for layer in keras_layers:
        tname = layer.name if layer.name in by_name else normed.get(_norm(layer.name))
        if tname is not None and tname not in used:
            pairs.append((layer, tname, by_name[tname]))
            used.add(tname)
        else:
            left_k.append(layer)
    left_t = [(n, m) for n, m in torch_modules if n not in used]
    if not left_k and not left_t:
        return pairs, "name"
    how = "name and order" if pairs else "order"
    if len(left_k) == len(left_t) and all(shapes_fit(l, m) for l, (_, m) in zip(left_k, left_t)):
        return pairs + [(l, n, m) for l, (n, m) in zip(left_k, left_t)], how
    how = "name, type and shape" if pairs else "type and shape"
    for layer in left_k:
        candidates = [(n, m) for n, m in left_t if n not in used and shapes_fit(layer, m)]
        if not candidates and type(layer).__name__.startswith("SeparableConv"):
            from .weights.separable import refusal

            raise MismatchedModelsError(refusal(layer.name, type(layer).__name__, [n for n, _ in left_t if n not in used]))
        if not candidates:
            raise MismatchedModelsError(
                f"The models do not line up: Keras layer '{layer.name}' ({type(layer).__name__}) has no PyTorch module "
                f"of a matching type and shape (unmatched modules: {[n for n, _ in left_t if n not in used][:8]}). "
                f"Give the twin the same layer names, or the same weighted layers in the same order."
            )
        if len(candidates) > 1:
            raise MismatchedModelsError(
                f"Keras layer '{layer.name}' ({type(layer).__name__}) could go to any of the PyTorch modules "
                f"{[n for n, _ in candidates]}: name them alike, or keep the weighted layers in the same order."
            )
        (tname, module), = candidates
        pairs.append((layer, tname, module))
        used.add(tname)
    extra = [n for n, _ in left_t if n not in used]
    if extra:
        raise MismatchedModelsError(f"PyTorch modules {extra[:8]} have weights but no Keras layer matches them.")
    return pairs, how


class _Traced:
    """The PyTorch module's exported graph on a seeded input of the Keras model's shape, made only
    when asked (transfer needs it for a Dense after a Flatten, or a pairing by declaration order
    that fails); ``failed`` says why there is none."""

    def __init__(self, kmodel, tmodule):
        self.kmodel, self.tmodule = kmodel, tmodule
        self._g, self.failed, self._tried = None, "", False

    def graph(self):
        if self._tried:
            return self._g
        self._tried = True
        from .comparison.align import _Graph, module_aliases
        from .errors import XconvError
        from .frameworks import torch_side as ts

        try:
            shapes = [tuple(t.shape) for t in self.kmodel.inputs]
        except (AttributeError, ValueError) as exc:
            self.failed = f"the Keras model has no input shape ({exc})"
            return None
        if any(d is None for s in shapes for d in s[1:]):
            self.failed = "the Keras model's input shape is not fixed"
            return None
        rng = np.random.default_rng(0)
        arrays = [rng.normal(size=(2, *s[1:])).astype(np.float32) for s in shapes]
        arrays = [layouts.activation_to_torch(a) if a.ndim >= 3 else a for a in arrays]
        try:
            p = next(self.tmodule.parameters())
            graph = ts.export_graph(self.tmodule, ts.to_tensors(arrays, p.device, p.dtype))
        except (XconvError, RuntimeError, StopIteration, TypeError, ValueError) as exc:
            self.failed = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return None
        self._g = _Graph(graph, module_aliases(self.tmodule))
        return self._g

    def matches(self) -> dict | None:
        """compare's alignment of the Keras model on this graph (made once; the graph is built once
        for it): row -> :class:`~xconv.comparison.align.Match`. None without a graph, or where the
        alignment refuses (``failed`` then says why)."""
        if hasattr(self, "_m"):
            return self._m
        from .comparison.align import align_graph

        self._m = None
        G = self.graph()
        if G is not None:
            try:
                self._m = align_graph(self.kmodel, [], G, self.tmodule, {}, 2)
            except MismatchedModelsError as exc:
                self.failed = f"compare's alignment refused it: {str(exc).splitlines()[0]}"
        return self._m

    def pairing(self, k_layers) -> dict[str, str] | None:
        """Keras layer -> torch module as compare's alignment pairs them on the graph (each layer
        with the nearest module downstream of its input that has weights of its shapes); None
        without a graph or where a layer with weights finds no single module."""
        matches = self.matches()
        if matches is None:
            return None
        plan = {}
        for layer in k_layers:
            m = matches.get(layer.name)
            if m is not None and len(m.modules) == 2 and type(layer).__name__.startswith("SeparableConv"):
                from .weights.separable import refusal

                raise MismatchedModelsError(refusal(layer.name, type(layer).__name__, list(m.modules)))
            if m is None or m.node is None or len(m.modules) != 1 or m.how not in ("name", "weights"):
                return None
            plan[layer.name] = m.modules[0]
        return plan if len(set(plan.values())) == len(plan) else None

    def linear_input(self, layer_name: str, path: str) -> str | None:
        """How module ``path`` (a Linear), aligned with Keras layer ``layer_name``, reads its input,
        as the alignment's :attr:`Match.input_layout` says: 'flat' (a flatten of channels-first
        maps), 'plain' (the Keras order: a flatten after a permute to channels-last), 'other' (a
        flatten of maps permuted into another order), or None (not aligned there; see ``failed``)."""
        from .layouts import LayoutKind

        matches = self.matches()
        m = (matches or {}).get(layer_name)
        if m is None or not m.modules or m.modules[0] != path:
            if matches is not None and not self.failed:
                self.failed = f"compare's alignment does not pair Keras layer '{layer_name}' with '{path}'"
            return None
        read = {LayoutKind.FLAT: "flat", LayoutKind.PLAIN: "plain", LayoutKind.OTHER: "other"}.get(m.input_layout)
        if read is None and not self.failed:
            self.failed = f"compare's alignment cannot tell the layout of the value '{path}' reads ({m.input_layout})"
        return read


def _separable_unit(dw, pw):
    """The two torch modules a port computes a Keras SeparableConv2D with (a depthwise conv, then a
    1x1 conv), held as one module of the class the separable weight family fills: its arrays are
    the two modules' own, so writing them writes into the port."""
    import torch

    class SeparableConv2d(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.depthwise, self.pointwise = dw, pw

    return SeparableConv2d()


def _separable_units(k_layers, t_modules, graph):
    """``t_modules`` with each pair of modules compare's alignment gives a Keras SeparableConv2D
    (depthwise, then pointwise: ``Match.modules`` of two) replaced by one unit named 'dw+pw',
    where the port has no SeparableConv module of its own; as it was otherwise."""
    seps = [l for l in k_layers if type(l).__name__ == "SeparableConv2D"]
    if not seps or any(type(m).__name__ in ("SeparableConv1d", "SeparableConv2d") for _, m in t_modules):
        return t_modules
    matches = graph.matches() or {}
    out = list(t_modules)
    for layer in seps:
        m = matches.get(layer.name)
        by = dict(out)
        if m is None or len(m.modules) != 2 or not all(p in by for p in m.modules):
            continue
        dw, pw = m.modules
        at = [n for n, _ in out].index(dw)
        out = [e for e in out if e[0] not in (dw, pw)]
        out.insert(at, (f"{dw}+{pw}", _separable_unit(by[dw], by[pw])))
    return out


def _transform(kind: str, key: str, ctx: LayerContext, rank: int, to: str) -> str:
    if key not in ("kernel", "weight"):
        return "copy"
    if kind in ("conv", "transposed"):
        return f"permute {layouts.kernel_permutation(rank, to)}"
    if kind == "dense":
        if ctx.flatten_of is not None:
            return f"transpose + flatten order channels-last {ctx.flatten_of} -> channels-first"
        return "transpose"
    return "copy"


def _check_config(layer, module) -> None:
    eps = getattr(layer, "epsilon", None)
    if eps is not None and hasattr(module, "eps") and not np.isclose(eps, module.eps, rtol=1e-6, atol=0):
        raise MismatchedModelsError(
            f"Keras layer '{layer.name}' has epsilon={eps}, but PyTorch module '{type(module).__name__}' has "
            f"eps={module.eps}; inference would differ. Build the torch layer with eps={eps}."
        )


def transfer_weights(src, dst, *, manifest: Manifest | str | None = None) -> Manifest:
    """Copy every weight from ``src`` to ``dst`` (a Keras model and a torch module, either order).

    Layers with weights are matched by name (``.`` and ``_`` alike); what is left, by order
    when it lines up one to one, else by type and converted shape, and a layer that could go
    to several modules is an error listing them. ``manifest`` (a :class:`Manifest` or its JSON)
    re-applies an earlier pairing instead. Every pairing and shape is checked before anything
    is written, so a mismatch leaves ``dst`` untouched; the error
    (:class:`~xconv.errors.MismatchedModelsError`) names the layer.

    Returns the :class:`Manifest`: every tensor copied, where, and with which transform.
    """
    from .frameworks import keras_side as ks
    from .frameworks import torch_side as ts

    kinds = (framework_of(src), framework_of(dst))
    if kinds == ("keras", "torch"):
        kmodel, tmodule, to = src, dst, "torch"
    elif kinds == ("torch", "keras"):
        kmodel, tmodule, to = dst, src, "keras"
    else:
        raise BadInputError(
            f"transfer_weights copies between a Keras model and a PyTorch module; received {type(src).__name__} "
            f"and {type(dst).__name__}."
        )
    if isinstance(manifest, str):
        manifest = Manifest.from_json(manifest)
    plan = manifest.layer_plan() if manifest is not None else None
    k_layers, t_modules = ks.weighted_layers(kmodel), ts.weighted_modules(tmodule)
    graph = _Traced(kmodel, tmodule)
    t_modules = _separable_units(k_layers, t_modules, graph)  # a SeparableConv2D ported as two convs: one unit
    try:
        pairs, matched_by = _pair(k_layers, t_modules, plan)
    except MismatchedModelsError:
        by_graph = graph.pairing(k_layers) if plan is None else None
        if by_graph is None:
            raise
        # the port declares its modules in another order than it runs them (torchvision's
        # BasicBlock declares downsample after conv2): pair as compare aligns, on the graph
        pairs, _ = _pair(k_layers, t_modules, by_graph)
        matched_by = "graph position"
    manifest = Manifest(direction=f"{kinds[0]}->{kinds[1]}", matched_by=matched_by)
    plan = []
    for layer, tname, module in pairs:
        family = _family(layer, module)
        torch_types = family.torch_types + family.pairs_with  # depthwise: a grouped Conv
        if type(module).__name__ not in torch_types:
            raise MismatchedModelsError(
                f"Keras layer '{layer.name}' ({type(layer).__name__}) was paired by {matched_by} with PyTorch module "
                f"'{tname}' ({type(module).__name__}), which is not one of {torch_types}."
            )
        _check_config(layer, module)
        ctx = layer_context(layer)
        if ctx.flatten_of is not None and family.kind == "dense":
            read = graph.linear_input(layer.name, tname)
            if read == "plain":  # the port flattens channels-last (permute(0, 2, 3, 1) first): rows as Keras has them
                ctx = replace(ctx, flatten_of=None)
            elif read == "other":
                raise MismatchedModelsError(
                    f"Keras layer '{layer.name}' (Dense) reads a Flatten of {ctx.flatten_of}; PyTorch module '{tname}' "
                    f"reads a flatten of maps whose axes its forward permuted into an order that is neither channels-first "
                    f"nor channels-last, so the row order cannot be told. Flatten channels-first (torch.flatten(x, 1)) or "
                    f"after permute(0, 2, 3, 1), or move the weights with a manifest whose pairing you checked."
                )
            elif read is None and graph.failed:
                raise MismatchedModelsError(
                    f"Keras layer '{layer.name}' (Dense) reads a Flatten of {ctx.flatten_of}; whether PyTorch module "
                    f"'{tname}' reads a channels-first flatten or one after a permute cannot be told from its exported graph "
                    f"({graph.failed}). Move the weights with a manifest whose pairing you checked, "
                    f"or make the module exportable with torch.export."
                )
        k_arrays, t_arrays = ks.layer_weights(layer), ts.module_arrays(module)
        if to == "torch":
            src_arrays, dst_arrays, new = k_arrays, t_arrays, family.to_torch(k_arrays, ctx)
            src_name, dst_name = layer.name, tname
        else:
            src_arrays, dst_arrays, new = t_arrays, k_arrays, family.to_keras(t_arrays, ctx)
            src_name, dst_name = tname, layer.name
        if set(new) != set(dst_arrays):
            raise MismatchedModelsError(
                f"Layer '{layer.name}': the source has tensors {sorted(src_arrays)} but the target has "
                f"{sorted(dst_arrays)} (a bias on one side only? check use_bias / bias=)."
            )
        # names may be many-to-one (an LSTM's two torch biases, attention's stacked projections)
        to_src = family.names if to == "torch" else {v: k for k, v in family.names.items() if k in src_arrays}
        for key, value in new.items():
            want = dst_arrays[key].shape
            if value.shape != want:
                raise MismatchedModelsError(
                    f"Layer '{layer.name}': '{key}' converts to shape {value.shape}, but the target expects {want}. "
                    f"Check the layer's channels, kernel size and (after a Flatten) the feature shape."
                )
            skey = to_src.get(key, key)
            skey = skey if skey in src_arrays else key
            rank = np.ndim(value) - 2
            manifest.entries.append(
                TransferEntry(
                    f"{src_name}.{skey}", f"{dst_name}.{key}", tuple(np.shape(src_arrays.get(skey))), tuple(want),
                    _transform(family.kind, skey, ctx, rank, to),
                )
            )  # fmt: skip
        plan.append((layer, module, new))
    for layer, module, new in plan:
        if to == "torch":
            ts.set_module_arrays(module, new)
        else:
            ks.set_layer_weights(layer, new)
    return manifest
