"""transfer_weights on the hand-written twins (tests/corpus/twins.py): moving a twin's Keras weights
into a fresh port with ``xconv.transfer_weights`` gives exactly the weights the twin's hand-written
``load`` copies, or refuses with a MismatchedModelsError (a pairing it cannot decide, as
docs/transfer.md says); it never writes different weights silently. (That this check can fail is
shown by the same_padding twin, whose strict xfail records such a silent difference.)"""

from __future__ import annotations

import pytest
import torch

from conftest import needs_keras

pytestmark = needs_keras
twins = pytest.importorskip("corpus.twins")
TWINS = twins.TWINS


def _case(name: str):
    reason = TWINS[name].known.get("transfer")
    return pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else [], id=name)


@pytest.mark.parametrize("name", [_case(name) for name in TWINS])
def test_transfer_weights_gives_the_hand_copied_weights_or_refuses(name):
    from xconv import transfer_weights
    from xconv.errors import MismatchedModelsError

    twin = TWINS[name]
    keras_model = twin.build_keras()
    by_hand = twin.torch_for(keras_model).state_dict()
    fresh = twin.torch_cls()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    try:
        transfer_weights(keras_model, fresh)
    except MismatchedModelsError as e:
        assert str(e)  # a refusal names the layers; the target is left as it was
        assert all(torch.equal(v, before[k]) for k, v in fresh.state_dict().items())
        return
    moved = fresh.state_dict()
    differ = [k for k, v in by_hand.items() if not k.endswith("num_batches_tracked") and not torch.equal(v, moved[k])]
    assert not differ, f"transfer_weights wrote other weights than the hand copy: {differ}"



HOOKED = [name for name, twin in TWINS.items() if twin.capture == "hooks"]


@pytest.mark.parametrize("name", HOOKED)
def test_a_port_export_cannot_trace_is_compared_with_hooks_and_the_verdict_says_so(name):
    import numpy as np

    from xconv import compare

    twin = TWINS[name]
    keras_model = twin.build_keras()
    x = np.random.default_rng(5).normal(size=twin.input_shape).astype("float32")
    report = compare(keras_model, twin.torch_for(keras_model), x)
    assert report.ok and report.capture == "hooks", str(report)
    assert "hook" in str(report).splitlines()[-1].lower() or any("hook" in n.lower() for n in report.notes), str(report)


def test_the_hook_paths_share_one_call_watcher(monkeypatch):
    """torch_side.capture(follow=) (an activation forward applies after a module) and
    torch_hooks.watch_calls (a layer with no module: the first call on the value before it) are
    one TorchFunctionMode, torch_hooks.call_watch: both go through it, and torch_side defines none."""
    import ast
    import pathlib

    import numpy as np
    import torch.nn.functional as F

    import xconv.capture.torch_hooks as th
    import xconv.frameworks.torch_side as ts

    tree = ast.parse(pathlib.Path(ts.__file__).read_text(encoding="utf-8"))
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "TorchFunctionMode"]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(2, 2, 1)

        def forward(self, x):
            y = F.relu(self.conv(x))
            return y + x

    made = []
    real = th.call_watch
    monkeypatch.setattr(th, "call_watch", lambda *a, **k: made.append(a) or real(*a, **k))
    net = Net().eval()
    x = np.random.default_rng(0).normal(size=(1, 2, 3, 3)).astype("float32")
    followed: set = set()
    (acts, _), seen = th.watch_calls(
        net, lambda: ts.capture(net, [x], ["conv"], "cpu", torch.float32, follow={"conv": ("relu",)}, followed=followed),
        {"after:add": (("conv",), ("add",))},
    )
    assert len(made) == 2 and followed == {"conv"}
    with torch.no_grad():
        want = F.relu(net.conv(torch.from_numpy(x))).numpy()
    np.testing.assert_array_equal(acts["conv"], want)  # the followed activation, not the bare conv
    assert "after:add" not in seen  # the first call on the conv's value is the relu, not an add


@pytest.mark.parametrize("name", HOOKED)
def test_hook_capture_in_local_mode_names_every_row_it_has_no_local_value_for(name):
    """A row the hook capture takes from a call watched after a value (F.relu in forward, +=)
    has no module to feed Keras' input to: it gets no local value, and the report says so by name."""
    import numpy as np

    from xconv import compare

    twin = TWINS[name]
    keras_model = twin.build_keras()
    x = np.random.default_rng(5).normal(size=twin.input_shape).astype("float32")
    report = compare(keras_model, twin.torch_for(keras_model), x, mode="local")
    missing = [r.name for r in report.layers if r.local_ok is None]
    note = next((n for n in report.notes if n.startswith("Rows with no local value")), "")
    assert missing, str(report)  # these twins do compute layers with no module of their own
    assert all(f"'{n}'" in note for n in missing[:8]), (missing, report.notes)
