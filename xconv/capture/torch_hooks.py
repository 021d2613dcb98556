"""The hook capture's eyes for computation between modules (used where ``torch.export`` fails).

Forward hooks see module outputs only. A Keras layer with no module of its own in the port (a
``ReLU`` layer where ``forward`` calls ``F.relu``, an ``Add`` where it does ``out += identity``)
is computed by the first torch call on the value before it: :func:`watch_calls` watches every
torch call (a ``TorchFunctionMode``) while the hook capture runs, and keeps, for each such row,
the result of the first tensor-producing call on its source's value when that call is one the
row may be (copied when made, so a later in-place op cannot change it). A row's value is in turn
a source, so ``F.relu(self.bn(x) + identity)`` gives the Add's and the ReLU's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping


_COPIES = frozenset(("detach", "cpu", "numpy"))


def call_name(func) -> str:
    """A torch call's name as the rows list them: ``F.relu`` and ``Tensor.relu_`` -> 'relu',
    ``Tensor.__iadd__`` -> 'iadd'."""
    return getattr(func, "__name__", "").strip("_")


def watch_calls(module, run: Callable, after: Mapping[str, tuple[Collection[str], Collection[str]]]):
    """``run()`` while watching torch calls; returns (what ``run`` returned, {row: NumPy value}).

    ``after``: {row key: (source keys, call names)}; a source key is a module path of ``module``
    (its first call's output) or another row's key. The first call on any source's value that
    is one of the names gives the row (an Add reads two sources; one of them is added to).
    """
    import torch
    from torch.overrides import TorchFunctionMode

    modules = dict(module.named_modules())
    waiting: dict[str, list[tuple[str, Collection[str]]]] = {}
    for row, (keys, names) in after.items():
        for source in keys:
            waiting.setdefault(source, []).append((row, names))
    live: dict[int, tuple[str, object]] = {}  # id(value) -> (source key, the value: held so the id stays its own)
    store: dict = {}
    started: set = set()

    def hook_for(key):
        def hook(_mod, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, torch.Tensor) and key not in started:  # a shared module: its first call, as Keras does
                started.add(key)
                live[id(out)] = (key, out)

        return hook

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            # .dim() and .shape on the way are not computation, nor the hook capture's own copy (detach, cpu)
            if not isinstance(result, torch.Tensor) or call_name(func) in _COPIES:
                return result
            for arg in args[:2]:  # an add reads its source as either operand
                entry = live.get(id(arg))
                if entry is None or entry[1] is not arg:
                    continue
                source, _ = live.pop(id(arg))
                for row, names in waiting.get(source, ()):
                    if row not in store and call_name(func) in names:
                        store[row] = result.detach().cpu().numpy().copy()
                        if row in waiting:
                            live[id(result)] = (row, result)
            return result

    handles = [modules[key].register_forward_hook(hook_for(key)) for key in waiting if key in modules]
    try:
        with Watch():
            out = run()
    finally:
        for h in handles:
            h.remove()
    return out, store
