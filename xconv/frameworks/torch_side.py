"""PyTorch adapter: modules with weights, activation capture by forward hooks, numerics settings."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence

import numpy as np

from .._optional import require
from ..errors import BadInputError


def torch():
    """The ``torch`` module, imported on first use (a clear pip hint if it is not installed)."""
    return require("torch", "work with PyTorch modules")


# modules whose children's weights are part of their own (nn.MultiheadAttention's out_proj):
# they are one weighted module, with dotted names for the children's tensors
_WHOLE = ("MultiheadAttention", "KerasMultiHeadAttention", "SeparableConv1d", "SeparableConv2d")  # the last: xconv/weights/separable.py


def weighted_modules(module) -> list[tuple[str, object]]:
    """``(qualified name, module)`` for every module that owns parameters or buffers itself."""
    out = []
    whole: list[str] = []
    for name, sub in module.named_modules():
        if not name or any(name.startswith(w + ".") for w in whole):
            continue
        if type(sub).__name__ in _WHOLE:
            whole.append(name)
            out.append((name, sub))
            continue
        if any(True for _ in sub.parameters(recurse=False)) or any(
            b is not None for b in sub._buffers.values()
        ):
            out.append((name, sub))
    return out


def module_arrays(sub) -> dict[str, np.ndarray]:
    """Parameters and floating buffers of one module (not its children), as NumPy arrays."""
    recurse = type(sub).__name__ in _WHOLE
    arrays = {n: p.detach().cpu().numpy() for n, p in sub.named_parameters(recurse=recurse)}
    for n, b in sub.named_buffers(recurse=recurse):
        if b is not None and b.is_floating_point():
            arrays[n] = b.detach().cpu().numpy()
    return arrays


def set_module_arrays(sub, arrays: Mapping[str, np.ndarray]) -> None:
    """Copy ``arrays`` into the parameters and buffers of module ``sub`` with those names, in place,
    keeping each tensor's dtype and device (dotted child names for the modules that own their children's)."""
    t = torch()
    recurse = type(sub).__name__ in _WHOLE
    tensors = dict(sub.named_parameters(recurse=recurse))
    tensors.update({n: b for n, b in sub.named_buffers(recurse=recurse) if b is not None})
    with t.no_grad():
        for name, value in arrays.items():
            target = tensors[name]
            target.copy_(t.from_numpy(np.ascontiguousarray(value)).to(dtype=target.dtype, device=target.device))


@contextlib.contextmanager
def numerics(allow_tf32: bool = False, deterministic: bool = True) -> Iterator[dict]:
    """TF32 off and deterministic cuDNN for a comparison; the previous settings come back on exit."""
    t = torch()
    saved = (
        t.backends.cuda.matmul.allow_tf32,
        t.backends.cudnn.allow_tf32,
        t.backends.cudnn.deterministic,
        t.backends.cudnn.benchmark,
    )
    try:
        t.backends.cuda.matmul.allow_tf32 = allow_tf32
        t.backends.cudnn.allow_tf32 = allow_tf32
        t.backends.cudnn.deterministic = deterministic
        t.backends.cudnn.benchmark = False
        yield {"tf32": allow_tf32, "deterministic": deterministic}
    finally:
        (
            t.backends.cuda.matmul.allow_tf32,
            t.backends.cudnn.allow_tf32,
            t.backends.cudnn.deterministic,
            t.backends.cudnn.benchmark,
        ) = saved


def resolve_device(device: str):
    """``torch.device(device)``, refused where it names a GPU torch cannot see."""
    t = torch()
    dev = t.device(device)
    if dev.type == "cuda" and not t.cuda.is_available():
        raise BadInputError(
            f"device={device!r} was asked for, but torch sees no CUDA GPU; use device='cpu'.",
            cli=f"--device {device} was asked for, but torch sees no CUDA GPU; use --device cpu.",
        )
    return dev


def to_tensors(arrays: Sequence[np.ndarray], device, dtype) -> list:
    """Arrays as tensors on ``device``: floating ones in ``dtype``; integer ones (token ids, indices)
    stay integers (int64, what ``nn.Embedding`` and indexing take), never cast to float."""
    t = torch()
    out = []
    for a in arrays:
        a = np.ascontiguousarray(a)
        target = t.int64 if a.dtype.kind in "iu" else (t.bool if a.dtype.kind == "b" else dtype)
        out.append(t.from_numpy(a).to(device=device, dtype=target))
    return out


def capture(
    module,
    arrays: Sequence[np.ndarray],
    names: Sequence[str],
    device,
    dtype,
    feed: Mapping[str, Sequence[np.ndarray]] | None = None,
    follow: Mapping[str, Collection[str]] | None = None,
    followed: set | None = None,
) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Run ``module`` with forward hooks on ``names``; returns (activations by name, model outputs).

    ``feed`` maps a module name to the inputs it must receive instead of its own (forward
    pre-hooks): fed at the head of every layer, one forward pass measures every layer's
    *local* error.
    ``follow`` maps a module name to torch function names (``'relu'``, ``'softmax'``): when the
    next torch call on that module's output is one of them (``F.relu(self.conv(x))`` in
    ``forward``, where no hook sees it), its result is kept instead, and the name is added to
    ``followed``. Every value is copied when it is produced, so a later in-place op
    (``nn.ReLU(inplace=True)``, ``out += identity``) cannot change what was kept.
    """
    t = torch()
    modules = dict(module.named_modules())
    store: dict[str, np.ndarray] = {}
    handles = []
    follow = follow or {}
    followed_values: dict[str, np.ndarray] = {}
    mode = None
    if follow:
        from ..capture.torch_hooks import call_watch  # the one call watcher of the hook paths

        mode = call_watch({name: [(name, names)] for name, names in follow.items()}, followed_values, chain=False)
    for name, values in (feed or {}).items():
        tensors = to_tensors(values, device, dtype)
        handles.append(modules[name].register_forward_pre_hook(lambda _m, _args, tensors=tensors: tuple(tensors)))

    def hook_for(name):
        def hook(_mod, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, t.Tensor) and name not in store:  # a shared module: keep its first call, as Keras does
                store[name] = out.detach().cpu().numpy().copy()
                if mode is not None and name in follow:
                    mode.watch(name, out)

        return hook

    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_hook(hook_for(name)))
    try:
        with t.inference_mode(), (mode if mode is not None else contextlib.nullcontext()):
            out = module(*to_tensors(arrays, device, dtype))
    except RuntimeError as exc:
        raise BadInputError(
            f"The PyTorch module {type(module).__name__} failed on inputs of shape "
            f"{[tuple(a.shape) for a in arrays]} (channels-first): {exc}. If the module takes the Keras layout "
            f"(batch, ..., channels) and transposes it itself, pass input_layout='keras' (xconv compare --input-layout keras)."
        ) from exc
    finally:
        for h in handles:
            h.remove()
    store.update(followed_values)  # the activation forward applied right after the module
    if followed is not None:
        followed.update(followed_values)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return store, [o.detach().cpu().numpy() for o in outs]


def versions() -> dict[str, str]:
    """The torch and CUDA versions, and whether CUDA is available, by name."""
    t = torch()
    return {
        "torch": t.__version__,
        "cuda": t.version.cuda or "none",
        "cuda_available": str(t.cuda.is_available()),
    }


# ---- graph capture: torch.export once per structure, then run node by node ---------------------

_GRAPHS: dict = {}  # structure key -> TorchGraph (a few entries, most recent last)
_GRAPHS_KEPT = 8


def _plain(value, depth: int = 0):
    """A hashable stand-in for a module attribute that export may specialise on."""
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    if isinstance(value, (tuple, list)) and depth < 3:
        return (type(value).__name__, tuple(_plain(v, depth + 1) for v in value))
    if isinstance(value, dict) and depth < 3:
        return ("dict", tuple((str(k), _plain(v, depth + 1)) for k, v in value.items()))
    return (type(value).__qualname__, id(value))  # functions, tensors kept as attributes: by identity


def structure_key(module, tensors) -> tuple:
    """What an exported graph depends on: classes, attributes, tensor shapes and dtypes, inputs."""
    t = torch()
    parts = []
    for name, sub in module.named_modules(remove_duplicate=False):
        attrs = tuple(
            (k, _plain(v)) for k, v in sorted(vars(sub).items())
            if not k.startswith("_") and k != "training" and not isinstance(v, t.nn.Module)
        )  # fmt: skip
        hooks = (len(sub._forward_hooks), len(sub._forward_pre_hooks), "forward" in vars(sub))
        parts.append((name, id(type(sub)), attrs, hooks, id(vars(sub).get("forward"))))
    tensors_of = [(n, tuple(p.shape), str(p.dtype), str(p.device)) for n, p in module.named_parameters(remove_duplicate=False)]
    tensors_of += [(n, tuple(b.shape), str(b.dtype), str(b.device)) for n, b in module.named_buffers(remove_duplicate=False)]
    inputs = tuple((tuple(x.shape), str(x.dtype), str(x.device)) for x in tensors)
    return (tuple(parts), tuple(tensors_of), inputs)


def module_state(module) -> dict:
    """Every parameter and buffer by its state key (tied weights under each of their names)."""
    state = {n: p for n, p in module.named_parameters(remove_duplicate=False)}
    state.update({n: b for n, b in module.named_buffers(remove_duplicate=False) if b is not None})
    return state


def export_graph(module, tensors):
    """The module's :class:`~xconv.capture.torch_graph.TorchGraph` on ``tensors``, exported once per
    structure: a second module of the same structure (a cast copy, a planted bug in the weights)
    reuses it, run with its own tensors (``graph.run(..., state=module_state(module))``).
    The caller's module is never changed (a training-mode module is exported from an eval copy)."""
    import warnings

    from ..capture.torch_graph import export

    key = structure_key(module, tensors)
    graph = _GRAPHS.pop(key, None)
    if graph is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # export's deprecation chatter is not the user's concern
            graph = export(module, tuple(tensors))
    _GRAPHS[key] = graph
    while len(_GRAPHS) > _GRAPHS_KEPT:
        _GRAPHS.pop(next(iter(_GRAPHS)))
    return graph


def training_modules(module) -> list[tuple[str, str]]:
    """``(path, class)`` of the submodules in training mode that compute otherwise in eval mode."""
    t = torch()
    mode_dependent = (t.nn.modules.dropout._DropoutNd, t.nn.modules.batchnorm._BatchNorm, t.nn.RReLU)
    out = []
    for name, sub in module.named_modules():
        if sub.training and isinstance(sub, mode_dependent):
            if isinstance(sub, t.nn.modules.batchnorm._BatchNorm) and not sub.track_running_stats:
                continue  # always batch statistics: no eval/train difference
            out.append((name, type(sub).__name__))
    return out
