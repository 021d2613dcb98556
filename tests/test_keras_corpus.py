"""The Keras corpus (tests/corpus/keras_blocks.py) translates to PyTorch and matches Keras.

No converter is registered for the corpus's custom blocks: they are traced. Each case is
compared on its outputs (float32 <= 1e-4, float64 <= 1e-9 where the case computes in float64,
relative to the output's size) and, for float inputs, with ``compare`` layer by layer; a traced
block is a submodule of the same name, so ``compare`` lines it up.
"""

import numpy as np
import pytest

from conftest import needs_keras

pytestmark = [needs_keras, pytest.mark.slow]  # each case builds, translates and compares a model

try:
    from corpus.keras_blocks import MODELS, build_model, sample_inputs
except ImportError:  # pragma: no cover - Keras missing: the marks above skip everything
    MODELS = {}

# cases refused on purpose, with the reason the refusal gives
REFUSED = {
    "seq_embedding_masked_gru": "mask_zero=True",  # Keras passes masks on to later layers; a torch module has none
}
WORST = {"float32": 1e-4, "float64": 1e-9}


def _run(case, dtype):
    import torch

    from xconv import keras_to_torch

    model = build_model(case, dtype)
    xs = sample_inputs(case, dtype=dtype)
    module = keras_to_torch(model)
    want = model(xs if len(xs) > 1 else xs[0], training=False)
    want = list(want) if isinstance(want, (list, tuple)) else [want]
    args = [torch.from_numpy(np.moveaxis(x, -1, 1) if x.ndim >= 3 else x) for x in xs]
    with torch.no_grad():
        got = module(*args)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(want)
    for a, b in zip(want, got):
        a, b = np.asarray(a), b.numpy()
        if b.ndim >= 3:
            b = np.moveaxis(b, 1, -1)  # the module's outputs are channels-first
        assert a.shape == b.shape
        err = np.abs(a - b).max() / max(1.0, np.abs(a).max())
        assert err <= WORST[dtype], f"{case.name} {dtype}: relative difference {err:.3e}"
    return model, module, xs


def _cases(float64=False):
    names = [n for n in MODELS if n not in REFUSED and (not float64 or MODELS[n].has_float64)]
    return names


def test_the_corpus_is_large_enough():
    blocks = {c for case in MODELS.values() for c in case.custom_layers}
    assert len(blocks) >= 8, blocks


@pytest.mark.parametrize("name", _cases())
def test_corpus_case_matches_in_float32(name):
    case = MODELS[name]
    model, module, xs = _run(case, "float32")
    # a layer called twice (CBAM's shared MLP) has two activations, and a layer with several
    # outputs (return_state) several: compare reads one per side, not necessarily the same one,
    # so only the model outputs above are checked for those
    layerwise = not {"shared_layer", "return_state"} & set(case.tags)
    if case.input_kind == "float" and hasattr(model, "_nodes_by_depth") and layerwise:
        from xconv import compare

        report = compare(model, module, xs if len(xs) > 1 else xs[0])
        assert report.ok, str(report)
        for block in {l.name for l in model.layers if type(l).__name__ in case.custom_layers}:
            assert block in dict(module.named_modules()), block  # the block is a submodule of its own name
            assert module.xconv_outputs.get(block) == block


@pytest.mark.parametrize("name", _cases(float64=True))
def test_corpus_case_matches_in_float64(name):
    _run(MODELS[name], "float64")


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_cases_say_why(name):
    from xconv import keras_to_torch
    from xconv.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError, match=REFUSED[name]):
        keras_to_torch(build_model(MODELS[name]))
