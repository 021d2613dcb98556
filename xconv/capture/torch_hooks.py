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


def call_watch(wants: Mapping[str, Collection[tuple[str, Collection[str]]]], store: dict, chain: bool = True):
    """The one ``TorchFunctionMode`` both hook paths use (this module's :func:`watch_calls` and
    ``torch_side.capture(follow=)``): it sees every torch call, functional ones too.

    ``wants``: {source key: [(row, call names), ...]}. A source is watched once its tensor is given
    to the mode's ``watch(key, tensor)`` (from a forward hook). The first tensor-producing call that
    reads a watched tensor as one of its first two operands (an add reads its source as either),
    other than a copy (detach, cpu), ends the watch; where its name is one of a row's names, the
    result, copied, is ``store[row]`` (and ``mode.seen`` gets the row). With ``chain`` a row that is
    itself a source is watched in turn (``F.relu(self.bn(x) + identity)``: the Add's row, then the ReLU's).
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class CallWatch(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, tuple[str, object]] = {}  # id(value) -> (source key, the value: held so the id stays its own)
            self.seen: set[str] = set()

        def watch(self, key: str, tensor) -> None:
            self.live[id(tensor)] = (key, tensor)

        def __torch_function__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            # .dim() and .shape on the way are not computation, nor the hook capture's own copy (detach, cpu)
            if not isinstance(result, torch.Tensor) or call_name(func) in _COPIES:
                return result
            for arg in args[:2]:
                entry = self.live.get(id(arg))
                if entry is None or entry[1] is not arg:
                    continue
                source, _ = self.live.pop(id(arg))
                for row, names in wants.get(source, ()):
                    if row not in self.seen and call_name(func) in names:
                        store[row] = result.detach().cpu().numpy().copy()
                        self.seen.add(row)
                        if chain and row != source and row in wants:
                            self.live[id(result)] = (row, result)
            return result

    return CallWatch()


def watch_calls(module, run: Callable, after: Mapping[str, tuple[Collection[str], Collection[str]]]):
    """``run()`` while watching torch calls; returns (what ``run`` returned, {row: NumPy value}).

    ``after``: {row key: (source keys, call names)}; a source key is a module path of ``module``
    (its first call's output) or another row's key. The first call on any source's value that
    is one of the names gives the row (an Add reads two sources; one of them is added to).
    """
    import torch

    modules = dict(module.named_modules())
    waiting: dict[str, list[tuple[str, Collection[str]]]] = {}
    for row, (keys, names) in after.items():
        for source in keys:
            waiting.setdefault(source, []).append((row, names))
    store: dict = {}
    started: set = set()
    mode = call_watch(waiting, store)

    def hook_for(key):
        def hook(_mod, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            if isinstance(out, torch.Tensor) and key not in started:  # a shared module: its first call, as Keras does
                started.add(key)
                mode.watch(key, out)

        return hook

    handles = [modules[key].register_forward_hook(hook_for(key)) for key in waiting if key in modules]
    try:
        with mode:
            out = run()
    finally:
        for h in handles:
            h.remove()
    return out, store
