"""Weight files: bit-exact round trips, manifests, and a battery of bad and hostile inputs."""

import json
import os
import pickle
import sys

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv import zoo
from xconv.cli.main import main
from xconv.convert import convert_file
from xconv.errors import BadInputError, MismatchedModelsError

pytestmark = needs_keras


@pytest.fixture
def keras_file(tmp_path):
    k = zoo.build("conv3d_demo", "keras", random_biases=True)
    k.save(tmp_path / "m.keras")
    return tmp_path / "m.keras", k


def weights_equal(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a, b))


def test_keras_to_safetensors_to_weights_h5_is_bit_exact(keras_file, tmp_path):
    path, k = keras_file
    manifest = convert_file(path, tmp_path / "m.safetensors", manifest=tmp_path / "man.json")
    convert_file(tmp_path / "m.safetensors", tmp_path / "back.weights.h5", arch=str(path))
    fresh = zoo.build("conv3d_demo", "keras", seed=99)
    fresh.load_weights(tmp_path / "back.weights.h5")
    assert weights_equal(k.get_weights(), fresh.get_weights())
    entries = {e["target"]: e for e in json.loads((tmp_path / "man.json").read_text())["entries"]}
    assert entries["conv3d_b.weight"]["transform"] == "permute (4, 3, 0, 1, 2)"
    assert entries["conv3d_b.weight"]["source_shape"] == [3, 3, 3, 2, 4]
    assert entries["dense_a.weight"]["transform"].startswith("transpose + flatten order")
    assert entries["dense_a.bias"]["transform"] == "copy"
    assert len(manifest.entries) == 10


def test_pt_to_weights_h5_to_pt_is_bit_exact(tmp_path):
    t = zoo.build("unet_encoder", "torch", seed=3, random_biases=True)
    torch.save(t.state_dict(), tmp_path / "t.pt")
    convert_file(tmp_path / "t.pt", tmp_path / "t.weights.h5", arch="zoo:unet_encoder")
    convert_file(tmp_path / "t.weights.h5", tmp_path / "t2.pt", arch="zoo:unet_encoder")
    a, b = (torch.load(tmp_path / n, weights_only=True) for n in ("t.pt", "t2.pt"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[key], b[key]) for key in a)


def test_converted_weights_compute_what_keras_computes(keras_file, tmp_path):
    from xconv import compare, keras_to_torch

    path, k = keras_file
    convert_file(path, tmp_path / "m.pt", source=str(tmp_path / "gen.py"))
    t = keras_to_torch(zoo.build("conv3d_demo", "keras", seed=7))  # same architecture, other weights
    t.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert compare(k, t, zoo.sample_input("conv3d_demo")).ok
    assert (tmp_path / "gen.py").exists() and (tmp_path / "gen.pt").exists()


def test_module_flow_both_ways(tmp_path, monkeypatch):
    (tmp_path / "twinpkg.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Twin(nn.Module):\n"
        "    def __init__(self, width=4):\n"
        "        super().__init__()\n"
        "        self.first = nn.Conv2d(1, width, 5, padding=2)\n"
        "        self.second = nn.Conv2d(width, 6, 3, padding=1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    k = zoo.build("two_conv", "keras", random_biases=True)
    k.save(tmp_path / "two.keras")
    manifest = convert_file(tmp_path / "two.keras", tmp_path / "twin.pt", module="twinpkg:Twin", module_kwargs='{"width": 4}')
    assert manifest.matched_by == "order"
    state = torch.load(tmp_path / "twin.pt", weights_only=True)
    assert set(state) == {"first.weight", "first.bias", "second.weight", "second.bias"}
    convert_file(tmp_path / "twin.pt", tmp_path / "back.weights.h5", arch=str(tmp_path / "two.keras"), module="twinpkg:Twin")
    fresh = zoo.build("two_conv", "keras", seed=5)
    fresh.load_weights(tmp_path / "back.weights.h5")
    assert weights_equal(k.get_weights(), fresh.get_weights())


def test_same_framework_format_changes_and_zoo_sources(tmp_path):
    assert main(["convert", "zoo:two_conv", str(tmp_path / "z.safetensors"), "--quiet"]) == 0
    assert main(["convert", str(tmp_path / "z.safetensors"), str(tmp_path / "z.pt"), "--quiet"]) == 0
    assert main(["diff", str(tmp_path / "z.safetensors"), str(tmp_path / "z.pt")]) == 0
    assert main(["convert", "zoo:two_conv", str(tmp_path / "z.keras"), "--quiet"]) == 0
    assert main(["diff", str(tmp_path / "z.keras"), str(tmp_path / "z.pt")]) == 0  # across layouts


def test_diff_finds_differences_and_missing_tensors(tmp_path, capsys):
    t = zoo.build("two_conv", "torch", seed=1)
    state = {k: v.clone() for k, v in t.state_dict().items()}
    torch.save(state, tmp_path / "a.pt")
    state["conv2.weight"][0, 0, 0, 0] += 0.5
    del state["conv1.bias"]
    torch.save(state, tmp_path / "b.pt")
    assert main(["diff", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--json"]) == 1
    rows = {r["tensor"]: r for r in json.loads(capsys.readouterr().out)["tensors"]}
    assert rows["conv1.bias"]["status"] == "only in A"
    assert rows["conv2.weight"]["status"].startswith("differs: max abs 0.5")
    assert rows["conv1.weight"]["ok"]


def test_inspect_every_format(tmp_path, capsys):
    import onnx
    from onnx import helper, numpy_helper

    k = zoo.build("two_conv", "keras", random_biases=True)
    k.save(tmp_path / "m.keras")
    k.save_weights(tmp_path / "m.weights.h5")
    k.save(tmp_path / "legacy.h5")  # Keras 2 format, whole model
    torch.save(zoo.build("two_conv", "torch").state_dict(), tmp_path / "m.pt")
    convert_file(tmp_path / "m.keras", tmp_path / "m.safetensors")
    w = numpy_helper.from_array(np.zeros((6, 4, 3, 3), np.float32), "conv2.weight")
    graph = helper.make_graph([helper.make_node("Identity", ["conv2.weight"], ["y"])], "g", [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [6, 4, 3, 3])], [w])
    onnx.save(helper.make_model(graph), tmp_path / "m.onnx")
    for name in ("m.keras", "m.weights.h5", "legacy.h5", "m.pt", "m.safetensors", "m.onnx"):
        assert main(["inspect", str(tmp_path / name), "--json"]) == 0, name
        data = json.loads(capsys.readouterr().out)
        want = 216 if name == "m.onnx" else 326
        assert data["total_params"] == want, name
        assert any(tuple(t["torch_shape"]) == (6, 4, 3, 3) for t in data["tensors"]), name


# ---------------------------------------------------------------- the bad-input battery


def _truncate(path, keep=200):
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.fixture
def files(tmp_path):
    k = zoo.build("two_conv", "keras", random_biases=True)
    k.save(tmp_path / "good.keras")
    k.save_weights(tmp_path / "good.weights.h5")
    k.save(tmp_path / "good.h5")  # legacy Keras 2 format
    torch.save(zoo.build("two_conv", "torch").state_dict(), tmp_path / "good.pt")
    convert_file(tmp_path / "good.keras", tmp_path / "good.safetensors")
    return tmp_path


def run_cli(*args):
    return main([str(a) for a in args])


@pytest.mark.parametrize("name", ["good.keras", "good.weights.h5", "good.h5", "good.pt", "good.safetensors"])
def test_truncated_files_are_refused_cleanly(files, name, capsys):
    bad = files / f"cut_{name}"
    bad.write_bytes((files / name).read_bytes()[:300])
    out = files / ("out.weights.h5" if name.endswith(("pt", "safetensors")) else "out.pt")
    code = run_cli("convert", bad, out, "--arch", "zoo:two_conv")
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert str(bad.name) in err and ("truncated" in err or "corrupt" in err or "Cannot" in err)


def test_corrupt_onnx_and_wrong_extensions(files, capsys):
    (files / "junk.onnx").write_bytes(b"\x00\xffnot protobuf" * 10)
    assert run_cli("inspect", files / "junk.onnx") == 2
    assert "junk.onnx" in capsys.readouterr().err
    (files / "renamed.safetensors").write_bytes((files / "good.pt").read_bytes())
    assert run_cli("inspect", files / "renamed.safetensors") == 2
    assert "not a safetensors file" in capsys.readouterr().err
    (files / "renamed.keras").write_bytes((files / "good.weights.h5").read_bytes())
    assert run_cli("inspect", files / "renamed.keras") == 2
    assert "is an HDF5 file" in capsys.readouterr().err
    assert run_cli("inspect", files / "weights.npz") == 2
    assert "unknown weight file type" in capsys.readouterr().err


def test_hostile_pickle_is_never_unpickled(files, capsys):
    marker = files / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (files / "evil.pt").write_bytes(pickle.dumps({"conv1.weight": Evil()}, protocol=2))
    out = files / "evil.weights.h5"
    assert run_cli("convert", files / "evil.pt", out, "--arch", "zoo:two_conv") == 2
    assert not marker.exists() and not out.exists()
    assert "never unpickles" in capsys.readouterr().err
    torch.save(zoo.build("two_conv", "torch"), files / "whole_module.pt")  # a pickled nn.Module
    assert run_cli("inspect", files / "whole_module.pt") == 2
    assert "state_dict()" in capsys.readouterr().err


def test_lambda_layers_are_refused(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Lambda(lambda v: v * 2)(keras.layers.Dense(3)(x)))
    model.save(tmp_path / "lam.keras")
    assert run_cli("convert", tmp_path / "lam.keras", tmp_path / "lam.pt") == 2
    assert "Lambda layer" in capsys.readouterr().err and not (tmp_path / "lam.pt").exists()


def test_mismatched_architecture_existing_output_and_unwritable_folder(files, capsys):
    out = files / "x.weights.h5"
    assert run_cli("convert", files / "good.pt", out, "--arch", "zoo:unet_encoder") == 2
    assert "does not match" in capsys.readouterr().err and not out.exists()
    assert run_cli("convert", files / "good.pt", files / "good.safetensors") == 2
    assert "exists; pass --force" in capsys.readouterr().err
    before = (files / "good.safetensors").read_bytes()
    assert run_cli("convert", files / "good.pt", files / "good.safetensors", "--force", "--quiet") == 0
    assert (files / "good.safetensors").read_bytes() != before
    if os.path.isdir("/sys"):  # read-only even for root
        assert run_cli("convert", files / "good.pt", "/sys/xconv-out.safetensors") == 2
        assert "writable" in capsys.readouterr().err and not os.path.exists("/sys/xconv-out.safetensors")
    assert run_cli("convert", files / "good.pt", files / "nowhere" / "o.pt") == 2
    assert "does not exist" in capsys.readouterr().err


def test_sources_are_never_modified(files):
    before = {p.name: p.read_bytes() for p in files.iterdir() if p.is_file()}
    convert_file(files / "good.keras", files / "o1.safetensors")
    convert_file(files / "good.pt", files / "o2.weights.h5", arch="zoo:two_conv")
    for name, data in before.items():
        assert (files / name).read_bytes() == data, name


def test_weights_only_h5_without_architecture_says_what_to_do(files):
    with pytest.raises(BadInputError, match="--arch"):
        convert_file(files / "good.weights.h5", files / "o.pt")
    with pytest.raises(MismatchedModelsError):
        convert_file(files / "good.weights.h5", files / "o.pt", arch="zoo:unet_encoder")
    assert not (files / "o.pt").exists()


@pytest.mark.parametrize("out_ext", ["safetensors", "pt"])
def test_layout_conversion_of_plain_tensor_files_streams_and_is_exact(tmp_path, out_ext):
    from xconv import layouts
    from xconv.convert import convert_layout
    from xconv.files import read_tensors, write_tensors

    rng = np.random.default_rng(0)
    tensors = {
        "c3/kernel": rng.standard_normal((3, 3, 3, 2, 700)).astype(np.float32),  # several output slabs
        "c2/kernel": rng.standard_normal((4, 4, 5, 6)).astype(np.float64),
        "d/kernel": rng.standard_normal((3000, 500)).astype(np.float32),
        "d/bias": rng.standard_normal(500).astype(np.float32),
    }
    write_tensors(tmp_path / "k.safetensors", tensors, layout="keras")
    manifest = convert_layout(tmp_path / "k.safetensors", tmp_path / f"t.{out_ext}", to="torch")
    got = read_tensors(tmp_path / f"t.{out_ext}").tensors
    np.testing.assert_array_equal(got["c3/kernel"], layouts.conv_kernel_to_torch(tensors["c3/kernel"]))
    np.testing.assert_array_equal(got["c2/kernel"], layouts.conv_kernel_to_torch(tensors["c2/kernel"]))
    np.testing.assert_array_equal(got["d/kernel"], tensors["d/kernel"].T)
    np.testing.assert_array_equal(got["d/bias"], tensors["d/bias"])
    assert {e.target: e.transform for e in manifest.entries}["d/kernel"] == "transpose"
    convert_layout(tmp_path / f"t.{out_ext}", tmp_path / "back.safetensors", to="keras")
    back = read_tensors(tmp_path / "back.safetensors").tensors
    assert all(np.asarray(back[k]).tobytes() == v.tobytes() for k, v in tensors.items())


def test_truncated_safetensors_stream_leaves_no_output(tmp_path):
    from xconv.convert import convert_layout
    from xconv.files import write_tensors

    write_tensors(tmp_path / "k.safetensors", {"a": np.ones((3, 3, 4, 64), np.float32)})
    data = (tmp_path / "k.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(BadInputError, match="truncated"):
        convert_layout(tmp_path / "cut.safetensors", tmp_path / "out.safetensors", to="torch")
    assert not (tmp_path / "out.safetensors").exists()


def _sequence_models():
    import keras

    rng = np.random.default_rng(5)
    inp = keras.Input((6, 3))
    x = keras.layers.LSTM(4, return_sequences=True, name="lstm")(inp)
    x = keras.layers.MultiHeadAttention(2, 2, name="mha")(x, x)  # 2 x 2 = 4 features: packed in_proj_weight
    x = keras.layers.MultiHeadAttention(2, 3, name="mha3")(x, x)  # separate q/k/v weights, packed bias
    x = keras.layers.BatchNormalization(scale=False, name="bn")(x)
    model = keras.Model(inp, x)
    model.set_weights([rng.standard_normal(w.shape).astype(w.dtype) for w in model.get_weights()])  # biases nonzero too
    return model


def test_lstm_and_multi_head_attention_round_trip_bit_exactly(tmp_path):
    """bias_hh zeros and BatchNorm's ones are constants, in_proj_weight draws on three Keras tensors."""
    model = _sequence_models()
    model.save(tmp_path / "m.keras")
    manifest = convert_file(tmp_path / "m.keras", tmp_path / "m.safetensors")
    how = {e.target: e.transform for e in manifest.entries}
    assert how["mha.in_proj_weight"].startswith("concatenate mha/query/kernel + mha/key/kernel + mha/value/kernel"), how
    assert how["mha3.in_proj_bias"].startswith("concatenate mha3/query/bias + mha3/key/bias"), how
    assert how["lstm.bias_hh_l0"] == "constant" and how["bn.weight"] == "constant"
    convert_file(tmp_path / "m.safetensors", tmp_path / "back.weights.h5", arch=str(tmp_path / "m.keras"))
    fresh = _sequence_models()
    fresh.set_weights([np.zeros_like(w) for w in fresh.get_weights()])
    fresh.load_weights(tmp_path / "back.weights.h5")
    assert weights_equal(model.get_weights(), fresh.get_weights())
    # a torch file with a nonzero bias_hh cannot be moved into Keras' one bias without arithmetic: refused
    from xconv.files import read_tensors, write_tensors

    state = dict(read_tensors(tmp_path / "m.safetensors").tensors)
    state["lstm.bias_hh_l0"] = np.ones_like(state["lstm.bias_hh_l0"])
    write_tensors(tmp_path / "bad.safetensors", state)
    with pytest.raises(MismatchedModelsError, match="bias_hh"):
        convert_file(tmp_path / "bad.safetensors", tmp_path / "bad.weights.h5", arch=str(tmp_path / "m.keras"))
    assert not (tmp_path / "bad.weights.h5").exists()


def test_weights_h5_against_a_torch_file_lines_up_by_the_weight_maps(tmp_path, capsys):
    """A .weights.h5 names its tensors by position (conv3d/vars/0): --arch gives them the torch names."""
    import torch

    from xconv import zoo
    from xconv.cli.main import main
    from xconv.convert import convert_file

    k = zoo.build("conv3d_demo", "keras", random_biases=True)
    k.save(tmp_path / "m.keras")
    convert_file(tmp_path / "m.keras", tmp_path / "m.weights.h5")
    convert_file(tmp_path / "m.keras", tmp_path / "m.pt")
    assert main(["diff", str(tmp_path / "m.weights.h5"), str(tmp_path / "m.pt"), "--arch", str(tmp_path / "m.keras")]) == 0
    out = capsys.readouterr().out
    assert "10 of 10 tensors equal" in out and "dense_a.weight" in out and "only in" not in out
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    state["dense_a.weight"][1, 2] += 1.0  # a planted difference, behind the Flatten reorder
    torch.save(state, tmp_path / "bad.pt")
    assert main(["diff", str(tmp_path / "m.weights.h5"), str(tmp_path / "bad.pt"), "--arch", "zoo:conv3d_demo", "--json"]) == 1
    rows = {r["tensor"]: r for r in json.loads(capsys.readouterr().out)["tensors"]}
    assert [t for t, r in rows.items() if not r["ok"]] == ["dense_a.weight"]
    assert rows["dense_a.weight"]["first"]["index"] == [1, 2]
    # without the architecture the names cannot line up: one message saying what to give
    assert main(["diff", str(tmp_path / "m.weights.h5"), str(tmp_path / "m.pt")]) == 2
    assert "--arch" in capsys.readouterr().err


@needs_keras
def test_diff_takes_a_zoo_model_as_a_side(tmp_path, capsys):
    """`xconv diff zoo:NAME file`: the zoo model is built as convert builds it, so its own conversion is equal."""
    out = tmp_path / "two_conv.safetensors"
    assert main(["convert", "zoo:two_conv", str(out)]) == 0
    capsys.readouterr()
    assert main(["diff", "zoo:two_conv", str(out)]) == 0
    assert "4 of 4 tensors equal" in capsys.readouterr().out
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(out))
    name = next(k for k in tensors if k.endswith("weight"))
    tensors[name] = tensors[name].copy()
    tensors[name].reshape(-1)[0] += 1.0  # a planted difference is still seen
    save_file(tensors, str(tmp_path / "bad.safetensors"))
    assert main(["diff", "zoo:two_conv", str(tmp_path / "bad.safetensors")]) == 1
    assert main(["diff", "zoo:nope", str(out)]) == 2
