"""PyTorch adapter: modules with weights, activation capture by forward hooks, numerics settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .._optional import require
from ..errors import BadInputError


def torch():
    return require("torch", "work with PyTorch modules")


def weighted_modules(module) -> list[tuple[str, object]]:
    """``(qualified name, module)`` for every module that owns parameters or buffers itself."""
    out = []
    for name, sub in module.named_modules():
        if not name:
            continue
        if any(True for _ in sub.parameters(recurse=False)) or any(
            b is not None for b in sub._buffers.values()
        ):
            out.append((name, sub))
    return out


def module_arrays(sub) -> dict[str, np.ndarray]:
    """Parameters and floating buffers of one module (not its children), as NumPy arrays."""
    arrays = {n: p.detach().cpu().numpy() for n, p in sub.named_parameters(recurse=False)}
    for n, b in sub.named_buffers(recurse=False):
        if b is not None and b.is_floating_point():
            arrays[n] = b.detach().cpu().numpy()
    return arrays


def set_module_arrays(sub, arrays: Mapping[str, np.ndarray]) -> None:
    t = torch()
    tensors = dict(sub.named_parameters(recurse=False))
    tensors.update({n: b for n, b in sub.named_buffers(recurse=False) if b is not None})
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
    t = torch()
    dev = t.device(device)
    if dev.type == "cuda" and not t.cuda.is_available():
        raise BadInputError(f"device={device!r} was asked for, but torch sees no CUDA GPU; use device='cpu'.")
    return dev


def to_tensors(arrays: Sequence[np.ndarray], device, dtype) -> list:
    t = torch()
    return [t.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype) for a in arrays]


def capture(module, arrays: Sequence[np.ndarray], names: Sequence[str], device, dtype, feed: Mapping[str, Sequence[np.ndarray]] | None = None) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Run ``module`` with forward hooks on ``names``; returns (activations by name, model outputs).

    ``feed`` maps a module name to the inputs it must receive instead of its own (forward
    pre-hooks): fed at the head of every layer, one forward pass measures every layer's
    *local* error.
    """
    t = torch()
    modules = dict(module.named_modules())
    store: dict[str, np.ndarray] = {}
    handles = []
    for name, values in (feed or {}).items():
        tensors = to_tensors(values, device, dtype)
        handles.append(modules[name].register_forward_pre_hook(lambda _m, _args, tensors=tensors: tuple(tensors)))

    def hook_for(name):
        def hook(_mod, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, t.Tensor) and name not in store:  # a shared module: keep its first call, as Keras does
                store[name] = out.detach().cpu().numpy()

        return hook

    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_hook(hook_for(name)))
    try:
        with t.inference_mode():
            out = module(*to_tensors(arrays, device, dtype))
    except RuntimeError as exc:
        raise BadInputError(
            f"The PyTorch module {type(module).__name__} failed on inputs of shape "
            f"{[tuple(a.shape) for a in arrays]} (channels-first): {exc}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return store, [o.detach().cpu().numpy() for o in outs]


def versions() -> dict[str, str]:
    t = torch()
    return {
        "torch": t.__version__,
        "cuda": t.version.cuda or "none",
        "cuda_available": str(t.cuda.is_available()),
    }
