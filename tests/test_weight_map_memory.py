"""weight_map (convert's element map of a Keras model) in bounded memory, and the same map however it is computed.

The map is learned from float64 index arrays (twice the size of float32 weights), so a copy too
many of each is felt on a real model: the peak is held to about two index arrays of the largest
weight (the Keras-side one and the converter's torch-side one), whatever the number of layers.
"""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("torch")  # loaded, as in a conversion: layouts' kernel moves then use torch's copy

from xconv import convert  # noqa: E402


def _model():
    L = keras.layers
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(8, 3, padding="same", name="conv")(inp)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = L.SeparableConv2D(5, 3, padding="same", name="sep")(x)
    x = L.Conv2DTranspose(4, 2, name="up")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(7, name="fc1")(x)
    x = L.Dense(3, name="fc2")(x)
    return keras.Model(inp, x)


def _no_fallback(local, kshape):
    raise AssertionError("a tensor moved whole by a named transform should be found without the element-wise plan")


@pytest.mark.parametrize("slab", [None, 5])
def test_named_transforms_are_found_by_views_of_the_index(monkeypatch, slab):
    """Every kernel of the model is one Keras tensor moved whole by a named transform: the quick
    path (the index viewed back in Keras order, compared with a range) names each, also when the
    range is compared by slabs many levels deep."""
    model = _model()
    monkeypatch.setattr(convert, "_named_transform", _no_fallback)
    if slab:
        monkeypatch.setattr(convert, "_SLAB", slab)
    wmap = convert.weight_map(model)
    hows = {k: wmap.single(k)[1] for k in wmap.plans}
    assert {"permute", "depthwise", "transpose", "copy"} == set(hows.values()), hows
    assert (hows["conv.weight"], hows["dw.weight"], hows["up.weight"], hows["fc1.weight"]) == ("permute", "depthwise", "permute", "transpose"), hows


@pytest.mark.parametrize("slab", [4, 2**20])
def test_is_range_by_slabs(monkeypatch, slab):
    monkeypatch.setattr(convert, "_SLAB", slab)
    base = float(2**32 + 7)
    ref = (np.arange(3 * 4 * 5, dtype=np.float64) + base).reshape(3, 4, 5)
    assert convert._is_range(ref, base) and convert._is_range(ref.reshape(-1), base)
    assert convert._is_range(ref.transpose(2, 1, 0).copy().transpose(2, 1, 0), base)  # a strided view
    assert not convert._is_range(ref, base + 1)
    for where in [(0, 0, 0), (1, 2, 3), (2, 3, 4)]:
        bad = ref.copy()
        bad[where] += 1
        assert not convert._is_range(bad, base) and not convert._is_range(bad.reshape(-1), base), where
    swapped = ref.copy()
    swapped[1, 0, 0], swapped[1, 0, 1] = swapped[1, 0, 1], swapped[1, 0, 0]
    assert not convert._is_range(swapped, base)


def test_weight_map_peak_is_about_two_index_arrays_of_the_largest_weight():
    L = keras.layers
    inp = keras.Input((4, 4, 512))
    x = inp
    for i in range(3):
        x = L.Conv2D(512, 3, padding="same", name=f"c{i}")(x)
    model = keras.Model(inp, x)
    index_bytes = 3 * 3 * 512 * 512 * 8  # float64 index of one kernel: 18 MiB
    convert.weight_map(model)  # first run: converters imported, caches made
    tracemalloc.start()
    try:
        wmap = convert.weight_map(model)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [wmap.single(f"c{i}.weight")[1] for i in range(3)] == ["permute"] * 3
    assert peak < 2.5 * index_bytes, f"weight_map peaked at {peak / index_bytes:.2f} x one kernel's float64 index"
    print(f"weight_map peak {peak / index_bytes:.2f} x one kernel's float64 index")


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "mixed_bfloat16"])
def test_dtypes_read_from_the_variables_are_those_of_their_values(tmp_path, dtype):
    """weight_map reads each weight's dtype from the variable (no copy of its value): it must be the
    dtype NumPy gives the value (ml_dtypes' bfloat16 included), or torch -> Keras refuses the file."""
    from xconv.frameworks import keras_side as ks

    L = keras.layers
    inp = keras.Input((5, 5, 3))
    x = L.Conv2D(4, 3, dtype=dtype, name="conv")(inp)
    x = L.BatchNormalization(dtype=dtype, name="bn")(x)
    x = L.Dense(2, dtype=dtype, name="fc")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.standard_normal(tuple(v.shape)).astype(np.float32))
    wmap = convert.weight_map(model)
    values = {name: ks.to_numpy(var.value) for name, var in wmap.variables.items()}
    assert {n: wmap.keras_dtypes[n] for n in values} == {n: v.dtype for n, v in values.items()}
    assert {n: wmap.keras_shapes[n] for n in values} == {n: v.shape for n, v in values.items()}
    model.save(tmp_path / "m.keras")
    convert.convert_file(tmp_path / "m.keras", tmp_path / "m.pt")
    want = [ks.to_numpy(v.value).tobytes() for v in model.weights]
    for v in model.weights:  # the architecture's own weights differ from the file's
        v.assign(rng.standard_normal(tuple(v.shape)).astype(np.float32))
    arch = str(tmp_path / "arch.keras")
    model.save(arch)
    convert.convert_file(tmp_path / "m.pt", tmp_path / "back.weights.h5", arch=arch)
    back = keras.saving.load_model(arch)
    back.load_weights(tmp_path / "back.weights.h5")
    assert [ks.to_numpy(v.value).tobytes() for v in back.weights] == want


def _three_convs(channels=512):
    L = keras.layers
    inp = keras.Input((4, 4, channels))
    x = inp
    for i in range(3):
        x = L.Conv2D(channels, 3, padding="same", name=f"c{i}")(x)
    return keras.Model(inp, x)


def _mixed():
    L = keras.layers
    inp = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 3, name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(6, name="fc")(x)
    x = L.Reshape((2, 3), name="seq")(x)
    x = L.LSTM(4, name="lstm")(x)
    return keras.Model(inp, x)


def _attention():
    L = keras.layers
    inp = keras.Input((5, 8))
    x = L.MultiHeadAttention(2, 4, name="mha")(inp, inp)  # torch's in_proj_weight packs three Keras kernels
    x = L.LayerNormalization(name="ln")(x)
    x = L.Conv1D(3, 2, name="conv")(x)
    return keras.Model(inp, x)


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
@pytest.mark.parametrize("build", [_mixed, _attention])
def test_keras_to_torch_streams_the_translations_own_tensors(tmp_path, monkeypatch, fmt, build):
    """.keras -> .pt / .safetensors makes each tensor from the weight map when it is written: the
    file holds the translation's own state_dict, bit for bit, with no fallback taken (constants,
    a Dense after Flatten, an LSTM and MultiHeadAttention's packed projections included)."""
    from xconv.files import read_tensors
    from xconv.translate import translate

    model = build()
    rng = np.random.default_rng(1)
    for v in model.weights:
        v.assign(rng.standard_normal(tuple(v.shape)).astype(np.float32))
    model.save(tmp_path / "m.keras")

    def no_fallback(*a, **k):
        raise AssertionError("the streamed tensors diverged from the translation's")

    import xconv.translate as tr

    want = translate(model).state
    monkeypatch.setattr(tr, "translate", no_fallback)
    convert.convert_file(tmp_path / "m.keras", tmp_path / f"m.{fmt}")
    got = read_tensors(tmp_path / f"m.{fmt}").tensors
    assert list(got) == list(want)
    for k in want:
        assert (got[k].dtype, got[k].shape, got[k].tobytes()) == (want[k].dtype, want[k].shape, want[k].tobytes()), k


def test_a_tensor_that_diverges_falls_back_to_the_translations_state(tmp_path, monkeypatch):
    from xconv.files import read_tensors
    from xconv.translate import translate

    model = _mixed()
    model.save(tmp_path / "m.keras")
    want = translate(model).state
    monkeypatch.setitem(convert._MOVES, "permute", lambda k: np.zeros_like(np.moveaxis(k, (-1, -2), (0, 1))))  # a wrong move
    convert.convert_file(tmp_path / "m.keras", tmp_path / "m.pt")
    got = read_tensors(tmp_path / "m.pt").tensors
    assert all(got[k].tobytes() == want[k].tobytes() for k in want) and list(got) == list(want)
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.pt"]  # the hidden safetensors went


def test_keras_to_torch_state_is_not_held_whole(tmp_path):
    """The translated state_dict is not held beside the model (three kernels here, growing with
    the model): after the manifest is made, less than one kernel stays; the write holds about
    two (the weight's value and its moved copy), under weight_map's two float64 indices."""
    model = _three_convs()
    kernel = 3 * 3 * 512 * 512 * 4
    convert._keras_to_torch_state(model, None)  # first run: converters imported
    tracemalloc.start()
    try:
        result, state = convert._keras_to_torch_state(model, None)
        held, built = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        convert._write_torch_state(str(tmp_path / "m.safetensors"), "safetensors", state, model)
        _, written = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"state held {held / kernel:.2f}, built at {built / kernel:.2f}, written at {written / kernel:.2f} x one kernel")
    assert held < 0.5 * kernel and written < 2.6 * kernel and built < 4.3 * kernel, (held / kernel, built / kernel, written / kernel)
