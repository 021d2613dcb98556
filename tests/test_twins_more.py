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
