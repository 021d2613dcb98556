"""xconv.files: every dtype bit-exact, the output rule, validated reading, diff semantics."""

import json
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

from xconv.cli.main import main
from xconv.convert import convert_layout
from xconv.errors import BadInputError
from xconv.files import Outputs, read_tensors, safetensors_header, write_tensors
from xconv.files.dtypes import TABLE, np_dtype

ALL = [n for n in TABLE]
ST = [n for n, (code, _) in TABLE.items() if code]


def sample(name, shape=(2, 3)):
    """Values of dtype ``name`` whose bits are all over the place (NaN payloads, -0.0, extremes)."""
    rng = np.random.default_rng(len(name))
    dtype = np_dtype(name)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    if name == "bool":
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".xconv-") or n.endswith(".partial"))


# ---------------------------------------------------------------- dtypes


@pytest.mark.parametrize("ext", ["pt", "safetensors"])
def test_every_dtype_round_trips_bit_exactly_with_0dim(tmp_path, ext):
    names = ALL if ext == "pt" else ST
    tensors = {n: sample(n) for n in names}
    tensors.update({f"{n}/scalar": sample(n, ()) for n in names})
    write_tensors(tmp_path / f"a.{ext}", tensors)
    back = read_tensors(tmp_path / f"a.{ext}").tensors
    for k, v in tensors.items():
        assert same_bits(back[k], v), k
    assert np.asarray(back["float32/scalar"]).shape == ()


def test_complex128_is_refused_by_safetensors_clearly(tmp_path):
    with pytest.raises(BadInputError, match="complex128.*cannot hold.*pt"):
        write_tensors(tmp_path / "c.safetensors", {"z": np.zeros(2, np.complex128)})
    assert os.listdir(tmp_path) == []


def test_signalling_nan_payload_survives_every_path(tmp_path):
    snan = np.array([0x7F800001, 0xFFA00005, 0x00000001, 0x80000000], np.uint32).view(np.float32)
    k = np.tile(snan, 9 * 2 * 2)[: 3 * 3 * 2 * 4].reshape(3, 3, 2, 4)
    write_tensors(tmp_path / "k.safetensors", {"c/kernel": k, "s": snan}, layout="keras")
    convert_layout(tmp_path / "k.safetensors", tmp_path / "t.safetensors", to="torch")
    convert_layout(tmp_path / "t.safetensors", tmp_path / "t.pt", to="keras")
    assert main(["convert", str(tmp_path / "t.pt"), str(tmp_path / "u.safetensors"), "--quiet"]) == 0
    back = read_tensors(tmp_path / "u.safetensors").tensors
    assert same_bits(back["c/kernel"], k) and same_bits(back["s"], snan)


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float8_e4m3fn", "float8_e5m2", "int8", "uint8", "int64", "bool", "complex64"])
def test_layout_both_directions_and_diff_for_each_dtype(tmp_path, name, capsys):
    kernels = {"c2/kernel": sample(name, (3, 3, 4, 5)), "c3/kernel": sample(name, (2, 2, 2, 3, 2)), "d/kernel": sample(name, (6, 7)), "b": sample(name, (5,)), "n": sample(name, ())}
    write_tensors(tmp_path / "k.safetensors", kernels, layout="keras")
    for a, b, to in (("k.safetensors", "t.safetensors", "torch"), ("t.safetensors", "k2.safetensors", "keras"), ("k.safetensors", "t.pt", "torch"), ("t.pt", "k3.safetensors", "keras")):
        assert main(["convert", str(tmp_path / a), str(tmp_path / b), "--layout", to, "--quiet"]) == 0
    for n in ("k2.safetensors", "k3.safetensors"):
        back = read_tensors(tmp_path / n).tensors
        assert all(same_bits(back[k], v) for k, v in kernels.items()), n
    assert main(["diff", str(tmp_path / "t.safetensors"), str(tmp_path / "t.pt")]) == 0
    capsys.readouterr()


def test_inspect_reads_bfloat16_and_0dim(tmp_path, capsys):
    torch.save({"w": torch.ones(4, 3, 3, 3, dtype=torch.bfloat16), "num_batches_tracked": torch.tensor(7)}, tmp_path / "m.pt")
    assert main(["inspect", str(tmp_path / "m.pt"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {t["dtype"] for t in data["tensors"]} >= {"bfloat16"}
    assert main(["convert", str(tmp_path / "m.pt"), str(tmp_path / "m2.pt"), "--quiet"]) == 0
    state = torch.load(tmp_path / "m2.pt", weights_only=True)
    assert state["num_batches_tracked"].shape == () and state["w"].dtype == torch.bfloat16


def test_sparse_and_quantized_tensors_are_refused_clearly(tmp_path, capsys):
    torch.save({"s": torch.eye(3).to_sparse()}, tmp_path / "s.pt")
    assert main(["inspect", str(tmp_path / "s.pt")]) == 2
    err = capsys.readouterr().err
    assert "sparse" in err and "to_dense" in err


# ---------------------------------------------------------------- diff


def test_diff_semantics(tmp_path, capsys):
    a = {"i": np.array([2**60, 3], np.int64), "n": np.array([np.nan, 1.0], np.float32), "z": np.array([-0.0, 2.0], np.float32), "d": np.ones(2, np.float32), "w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    b = {"i": np.array([2**60 + 1, 3], np.int64), "n": np.array([np.nan, 1.0], np.float32), "z": np.array([0.0, 2.0], np.float32), "d": np.ones(2, np.float64), "w": a["w"] + np.array([[0, 0.25, 0], [0, 0, 1.5]], np.float32)}
    write_tensors(tmp_path / "a.safetensors", a)
    write_tensors(tmp_path / "b.safetensors", b)
    assert main(["diff", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--json"]) == 1
    rows = {r["tensor"]: r for r in json.loads(capsys.readouterr().out)["tensors"]}
    assert not rows["i"]["ok"] and rows["i"]["max_abs"] == 1 and rows["i"]["first"] == {"index": [0], "a": 2**60, "b": 2**60 + 1}
    assert rows["n"]["ok"] and rows["n"]["status"] == "equal"
    assert not rows["z"]["ok"] and "sign of zero" in rows["z"]["status"]
    assert not rows["d"]["ok"] and rows["d"]["status"] == "dtype differs: float32 vs float64"
    assert rows["w"]["first"] == {"index": [0, 1], "a": 1.0, "b": 1.25} and rows["w"]["largest"] == {"index": [1, 2], "a": 5.0, "b": 6.5}
    assert main(["diff", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--ignore-zero-sign", "--atol", "1", "--rtol", "0.2"]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "equal" in lines["z"] and "equal within" in lines["i"] and "equal within" in lines["w"]
    assert "first at (0, 1)" not in lines["w"]


def test_diff_catches_a_planted_one_ulp_change_in_bfloat16(tmp_path, capsys):
    a = sample("bfloat16", (4, 4))
    b = a.copy()
    b.view(np.uint16)[2, 3] ^= 1  # one bit
    torch.save({"x": torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)}, tmp_path / "a.pt")
    torch.save({"x": torch.from_numpy(b.view(np.int16)).view(torch.bfloat16)}, tmp_path / "b.pt")
    assert main(["diff", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--json"]) == 1
    row = json.loads(capsys.readouterr().out)["tensors"][0]
    assert row["first"]["index"] == [2, 3] and row["differing"] == 1


# ---------------------------------------------------------------- the output rule


def test_outputs_never_resolve_to_an_input(tmp_path, capsys):
    write_tensors(tmp_path / "in.safetensors", {"a": np.ones((3, 3, 2, 2), np.float32)})
    before = (tmp_path / "in.safetensors").read_bytes()
    os.link(tmp_path / "in.safetensors", tmp_path / "hard.safetensors")
    os.symlink(tmp_path / "in.safetensors", tmp_path / "soft.safetensors")
    cases = [
        ["convert", "in.safetensors", "in.safetensors", "--layout", "keras", "--force"],
        ["convert", "in.safetensors", "hard.safetensors", "--layout", "keras", "--force"],
        ["convert", "in.safetensors", "soft.safetensors", "--force"],
        ["convert", "in.safetensors", "o.safetensors", "--manifest", "in.safetensors", "--force"],
        ["convert", "in.safetensors", "o.safetensors", "--manifest", "o.safetensors", "--force"],
        ["convert", "in.safetensors", "o.pt", "--manifest", "hard.safetensors", "--force", "--layout", "torch"],
    ]
    for args in cases:
        assert main([a if not a.endswith((".safetensors", ".pt")) else str(tmp_path / a) for a in args]) == 2, args
        err = capsys.readouterr().err
        assert "input" in err or "same file" in err, err
    assert (tmp_path / "in.safetensors").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["hard.safetensors", "in.safetensors", "soft.safetensors"]


def test_a_file_that_appears_after_the_check_is_not_replaced(tmp_path, monkeypatch):
    write_tensors(tmp_path / "in.safetensors", {"a": np.ones(4, np.float32)})
    import xconv.convert as conv

    real = conv._copy_bytes

    def racing(src, tmp):  # another process creates the output meanwhile
        (tmp_path / "o.safetensors").write_bytes(b"theirs")
        real(src, tmp)

    monkeypatch.setattr(conv, "_copy_bytes", racing)
    with pytest.raises(BadInputError, match="appeared"):
        conv.convert_file(tmp_path / "in.safetensors", tmp_path / "o.safetensors")
    assert (tmp_path / "o.safetensors").read_bytes() == b"theirs" and leftovers(tmp_path) == []


def test_multi_output_runs_are_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with Outputs(force=False) as out:
            for n in ("a.txt", "b.txt"):
                open(out.add(tmp_path / n), "w").write(n)
            raise RuntimeError("planted failure after the writes")
    assert os.listdir(tmp_path) == []
    with pytest.raises(BadInputError, match="same file"):
        with Outputs() as out:
            out.add(tmp_path / "a.txt")
            out.add(tmp_path / "." / "a.txt")
    assert os.listdir(tmp_path) == []


def test_temp_names_match_no_format_glob(tmp_path):
    import glob

    with Outputs() as out:
        tmp = out.add(tmp_path / "x.safetensors")
        assert os.path.basename(tmp).startswith(".xconv-") and tmp.endswith(".partial")
        for pattern in ("*.safetensors", "*.pt", "*.keras", "*.h5", "*.onnx", "*"):
            assert glob.glob(str(tmp_path / pattern)) == []
        open(tmp, "wb").write(b"")


@pytest.mark.parametrize("limit", ["fsize", "name", "folder"])
def test_write_errors_exit_two_with_one_message(tmp_path, limit):
    write_tensors(tmp_path / "in.safetensors", {"a": np.ones((64, 64, 64), np.float32)})
    out = tmp_path / ("x" * 300 + ".safetensors" if limit == "name" else "o.safetensors")
    if limit == "folder":
        out.mkdir()
    code = "import resource,sys; resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000)); from xconv.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "convert", str(tmp_path / "in.safetensors"), str(out), "--layout", "keras"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert {"fsize": "file-size limit", "name": "too long", "folder": "folder is in the way"}[limit] in proc.stderr
    assert leftovers(tmp_path) == [] and (limit == "folder" or not os.path.exists(out))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["o.weights.h5", "o.keras", "o.pt"])
def test_keras_and_torch_writers_fail_cleanly_at_the_file_size_limit(tmp_path, target):
    pytest.importorskip("keras")
    code = textwrap.dedent(
        """
        import resource, sys
        resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))
        from xconv.cli.main import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    args = ["convert", "zoo:unet_encoder", str(tmp_path / target), "--quiet"]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "file-size limit" in proc.stderr
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- reading


def _st_file(path, header: dict, data: bytes):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


@pytest.mark.parametrize(
    "header, data, why",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, "overlaps"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, b"\0" * 12, "gap"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "needs 8 bytes"),
        ({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, b"\0" * 8, "needs"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "belong to none"),
        ({"a": {"dtype": "F32", "shape": [2**38], "data_offsets": [0, 2**40]}}, b"\0" * 8, "truncated"),
        ({"a": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "bad shape"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "bad data_offsets"),
        ({"__metadata__": {"k": 1}}, b"", "metadata"),
    ],
)
def test_streaming_header_validated_before_any_allocation(tmp_path, header, data, why):
    path = _st_file(tmp_path / "bad.safetensors", header, data)
    with pytest.raises(BadInputError, match=why):
        safetensors_header(path)
    with pytest.raises(BadInputError):
        convert_layout(path, tmp_path / "o.safetensors", to="torch")
    assert sorted(os.listdir(tmp_path)) == ["bad.safetensors"]


def test_duplicate_names_and_deep_json_are_refused(tmp_path):
    blob = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    (tmp_path / "dup.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 4)
    with pytest.raises(BadInputError, match="twice"):
        safetensors_header(tmp_path / "dup.safetensors")
    deep = b"{" + b'"a":[' * 50000 + b"]" * 50000 + b"}"
    (tmp_path / "deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    with pytest.raises(BadInputError, match="nests"):
        safetensors_header(tmp_path / "deep.safetensors")


def test_keras_config_bomb_and_depth_are_refused_before_inflating(tmp_path):
    from xconv.files import load_keras_model

    with zipfile.ZipFile(tmp_path / "bomb.keras", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("config.json", "w", force_zip64=True) as fh:
            chunk = b" " * 2**20
            for _ in range(100):  # 100 MiB of spaces, ~100 KiB on disk
                fh.write(chunk)
    assert os.path.getsize(tmp_path / "bomb.keras") < 2**20
    with pytest.raises(BadInputError, match="decompression bomb"):
        load_keras_model(tmp_path / "bomb.keras")
    with zipfile.ZipFile(tmp_path / "deep.keras", "w") as z:
        z.writestr("config.json", "[" * 100000 + "]" * 100000)
    with pytest.raises(BadInputError, match="nests"):
        load_keras_model(tmp_path / "deep.keras")


def test_h5_dataset_claiming_more_than_the_file_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "big.weights.h5", "w") as f:
        f.create_dataset("layers/conv/vars/0", shape=(2**20, 2**20), dtype="f4", chunks=(16, 16), compression="gzip")
    with pytest.raises(BadInputError, match="claims"):
        read_tensors(tmp_path / "big.weights.h5")


def _onnx_model(path, inits, external=None):
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    tensors = [numpy_helper.from_array(v, n) for n, v in inits]
    for t in tensors:
        if external and t.name in external:
            t.ClearField("raw_data")
            t.data_location = onnx.TensorProto.EXTERNAL
            for k, v in external[t.name].items():
                t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", [inits[0][0]], ["y"])], "g", [], [y], tensors)
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


def test_onnx_external_data_is_confined_to_the_model_folder(tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    w = np.arange(6, dtype=np.float32)
    (model_dir / "w.bin").write_bytes(w.tobytes())
    (tmp_path / "w.bin").write_bytes((w + 100).tobytes())  # what the current folder would give
    path = _onnx_model(model_dir / "m.onnx", [("w", w)], {"w": {"location": "w.bin", "offset": "0", "length": "24"}})
    monkeypatch.chdir(tmp_path)
    assert np.array_equal(read_tensors(path).tensors["w"], w)
    for location in ("../w.bin", str(tmp_path / "w.bin"), "sub/../../w.bin"):
        bad = _onnx_model(model_dir / "bad.onnx", [("w", w)], {"w": {"location": location}})
        with pytest.raises(BadInputError, match="inside the model's folder"):
            read_tensors(bad)
    os.symlink(tmp_path / "w.bin", model_dir / "link.bin")
    with pytest.raises(BadInputError, match="outside"):
        read_tensors(_onnx_model(model_dir / "l.onnx", [("w", w)], {"w": {"location": "link.bin"}}))
    with pytest.raises(BadInputError, match="past the end"):
        read_tensors(_onnx_model(model_dir / "p.onnx", [("w", w)], {"w": {"location": "w.bin", "offset": "20", "length": "24"}}))


def test_onnx_empty_truncated_and_duplicate_initializers_are_refused(tmp_path):
    w = np.ones(4, np.float32)
    good = _onnx_model(tmp_path / "good.onnx", [("w", w)])
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "cut.onnx").write_bytes(good.read_bytes()[:-5])
    for name in ("empty.onnx", "cut.onnx"):
        with pytest.raises(BadInputError, match="empty|truncated"):
            read_tensors(tmp_path / name)
    with pytest.raises(BadInputError, match="two initializers"):
        read_tensors(_onnx_model(tmp_path / "dup.onnx", [("w", w), ("w", w + 1)]))


# ---------------------------------------------------------------- kill tests

_KILL_CHILD = r"""
import sys
from xconv.convert import convert_layout
print("started", flush=True)
convert_layout(sys.argv[1], sys.argv[2], to="torch", force=True)
"""


@pytest.fixture(scope="module")
def kill_input(tmp_path_factory):
    """One ~400 MB Keras-layout safetensors file for every kill and truncation test of the session (large
    enough that a conversion is still running when the test acts)."""
    from xconv.files import write_safetensors_stream

    shape = (3, 3, 256, 512)
    block = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    shapes = {f"b{i}/kernel": (shape, np.float32) for i in range(90)}
    path = tmp_path_factory.mktemp("kill") / "in.safetensors"
    write_safetensors_stream(str(path), ((n, block) for n in shapes), shapes, {"layout": "keras"})
    return path


def _start_and_wait_for_temp(src, out, folder, code=_KILL_CHILD, at=50 * 2**20, extra=()):
    """A child converting ``src`` into ``out``, returned once one of its hidden temp files has ``at`` bytes."""
    import time

    proc = subprocess.Popen([sys.executable, "-c", code, str(src), str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"started"
    deadline = time.time() + 60
    while max((os.path.getsize(folder / n) for n in leftovers(folder)), default=-1) < at:
        if proc.poll() is not None:
            pytest.fail(f"the conversion ended before the test could act: {proc.stderr.read().decode()[-1500:]}")
        assert time.time() < deadline
        time.sleep(0.005)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_killed_streamed_conversion_never_corrupts_the_target(tmp_path, sig, kill_input):
    write_tensors(tmp_path / "out.safetensors", {"old": np.ones(3, np.float32)})  # the target that must survive
    old = (tmp_path / "out.safetensors").read_bytes()
    proc = _start_and_wait_for_temp(kill_input, tmp_path / "out.safetensors", tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert (tmp_path / "out.safetensors").read_bytes() == old  # never half-written
    if sig != signal.SIGKILL:
        assert leftovers(tmp_path) == [], "the temporary file survived the signal"
    else:  # nothing can run on SIGKILL: the hidden .partial stays, matched by no format's glob
        assert all(n.endswith(".partial") and n.startswith(".") for n in leftovers(tmp_path))


_CLI_CHILD = r"""
import sys
from xconv.cli.main import main
print("started", flush=True)
sys.exit(main(["convert", sys.argv[1], sys.argv[2], *sys.argv[3:], "--force", "--quiet"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("how, ext, extra", [("truncated", "safetensors", ["--layout", "torch"]), ("replaced", "safetensors", ["--layout", "torch"]), ("truncated", "pt", [])])
def test_input_changed_mid_conversion_exits_two_and_leaves_nothing(tmp_path, kill_input, how, ext, extra):
    """Another process cuts (or replaces) the input while a streamed conversion reads it: no SIGBUS,
    exit 2 with one line naming the input, the target untouched and no temp file left."""
    import shutil

    src = tmp_path / "in" / "in.safetensors"
    src.parent.mkdir()
    shutil.copyfile(kill_input, src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if how == "replaced":
        shutil.copyfile(src, tmp_path / "in" / "new")
    target = out_dir / f"out.{ext}"
    write_tensors(target, {"old": np.ones(3, np.float32)})
    old = target.read_bytes()
    proc = _start_and_wait_for_temp(src, target, out_dir, code=_CLI_CHILD, at=20 * 2**20, extra=extra)
    if how == "truncated":
        os.truncate(src, os.path.getsize(src) // 3)
    else:  # a new file under the same name (an editor's save): the run must not mix the two
        os.replace(tmp_path / "in" / "new", src)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-2000:]
    assert "in.safetensors" in err and ("truncated" in err or "replaced" in err or "changed" in err), err
    assert target.read_bytes() == old
    assert leftovers(out_dir) == [], "the temporary file was left behind"


@pytest.mark.parametrize("to", ["torch", "keras"])
def test_streamed_layout_equals_the_in_memory_transform_for_many_shapes(tmp_path, to):
    from xconv import layouts

    rng = np.random.default_rng(0)
    shapes = [(1, 1, 3, 2), (3, 3, 1, 1), (2, 2, 300, 7), (5, 9, 2), (1, 1, 1, 2048, 512), (7, 7, 64, 600), (3, 3, 3, 40, 30), (0, 3, 4, 5), (3, 3, 0, 4), (4, 0), (2000, 300), (17,), ()]
    tensors = {f"t{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    write_tensors(tmp_path / "a.safetensors", tensors, layout="torch" if to == "keras" else "keras")
    convert_layout(tmp_path / "a.safetensors", tmp_path / "b.safetensors", to=to)
    back = read_tensors(tmp_path / "b.safetensors")
    assert back.layout == to
    for k, v in tensors.items():
        if v.ndim >= 3:
            want = layouts.conv_kernel_to_torch(v) if to == "torch" else layouts.conv_kernel_to_keras(v)
        else:
            want = v.T if v.ndim == 2 else v
        assert same_bits(back.tensors[k], np.ascontiguousarray(want) if v.ndim else want), (k, v.shape)


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.float64, np.int8, np.float16])
@pytest.mark.parametrize("to", ["torch", "keras"])
def test_streamed_layout_with_padded_rows_is_exact(tmp_path, to, dtype):
    """Rows a multiple of 1 KiB long are read into the stream's buffers a cache line apart (scattered by
    one preadv), and the scratch's runs are kept apart too: every path through that (short runs
    several to a slab, long runs cut into blocks, rows longer than a slab, a move that is one 2D
    transpose) must still give the in-memory transform's bits, for every element size."""
    from xconv import layouts
    from xconv.files.stream import PAD_EVERY, SLAB

    item = np.dtype(dtype).itemsize
    wide = PAD_EVERY // item  # elements in the shortest padded row
    shapes = [
        (3, 3, 7, wide),  # short runs, a few to a slab
        (3, 3, SLAB // (2 * wide * item) + 5, 2 * wide),  # long runs, cut into blocks of rows
        (1, 2, 3, (SLAB + PAD_EVERY) // item),  # a row longer than a slab
        (1, 1, 40, 2 * wide),  # one 2D transpose, padded rows
        (2, 2, 5, wide // 2),  # unpadded rows beside them
        (3, 3, 9, wide + 3),
    ]
    rng = np.random.default_rng(1)
    tensors = {}
    for i, shape in enumerate(shapes):
        bits = rng.integers(0, 256, size=math.prod(shape) * item, dtype=np.uint8)
        tensors[f"t{i}"] = bits.view(dtype).reshape(shape)
    if to == "keras":
        tensors = {k: layouts.conv_kernel_to_torch(v) for k, v in tensors.items()}
    write_tensors(tmp_path / "a.safetensors", tensors, layout="torch" if to == "keras" else "keras")
    convert_layout(tmp_path / "a.safetensors", tmp_path / "b.safetensors", to=to)
    back = read_tensors(tmp_path / "b.safetensors").tensors
    for k, v in tensors.items():
        want = layouts.conv_kernel_to_torch(v) if to == "torch" else layouts.conv_kernel_to_keras(v)
        assert same_bits(back[k], want), (k, v.shape, np.dtype(dtype).name)


def test_padded_rows_survive_short_reads(tmp_path, monkeypatch):
    """preadv may fill fewer bytes than asked (a signal, a network file system): the scatter read
    of padded rows must finish a row cut in the middle and go on from the next one."""
    from xconv import layouts
    from xconv.files.stream import stream_layout

    real = os.preadv

    def short(fd, buffers, offset):  # a third of what was asked, cut inside a row
        want = max(1, sum(len(b) for b in buffers) // 3 + 7)
        kept, n = [], 0
        for b in buffers:
            if n >= want:
                break
            kept.append(b[: want - n])
            n += len(kept[-1])
        return real(fd, kept, offset)

    x = np.random.default_rng(0).standard_normal((3, 3, 300, 700)).astype(np.float32)
    write_tensors(tmp_path / "a.safetensors", {"w": x}, layout="keras")
    (tmp_path / "b.safetensors").touch()
    monkeypatch.setattr(os, "preadv", short)
    stream_layout(str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "torch")
    monkeypatch.undo()
    assert same_bits(read_tensors(tmp_path / "b.safetensors").tensors["w"], layouts.conv_kernel_to_torch(x))


@pytest.mark.parametrize("to", ["torch", None])
def test_stream_layout_into_a_longer_file_leaves_exactly_the_output(tmp_path, to):
    """stream_layout opens its target without O_TRUNC (ext4 flushes such a file on close): a target
    that already held more bytes must still end as exactly the output, a trailing empty tensor included."""
    from xconv.files.stream import stream_layout

    tensors = {"k": np.arange(3 * 3 * 4 * 5, dtype=np.float32).reshape(3, 3, 4, 5), "z": np.zeros((0, 3), np.float32)}
    write_tensors(tmp_path / "a.safetensors", tensors, layout="keras")
    fresh, old = tmp_path / "fresh.safetensors", tmp_path / "old.safetensors"
    fresh.touch()
    old.write_bytes(b"\xff" * 100_000)
    for target in (fresh, old):
        stream_layout(str(tmp_path / "a.safetensors"), str(target), to)
    assert old.read_bytes() == fresh.read_bytes()
    assert read_tensors(fresh).tensors["z"].shape == ((0, 3) if to is None else (3, 0))


def test_help_names_the_side_files(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "M.pt" in text and "side file" in text and ".partial" in text


_RSS_CHILD = "import resource, sys\nfrom xconv.cli.main import main\ncode = main(sys.argv[1:])\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\nsys.exit(code)\n"


@pytest.fixture(scope="module")
def rss_files(tmp_path_factory):
    """The RSS tests' inputs, made once per session: 12 tensors of 18 MiB (216 MB) and a tiny twin,
    as .safetensors and as .pt. Returns (folder, largest tensor's bytes)."""
    from xconv.files import write_safetensors_stream

    folder = tmp_path_factory.mktemp("rss")
    shape = (3, 3, 512, 1024)  # 18 MiB
    block = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    shapes = {f"b{i}/kernel": (shape, np.float32) for i in range(12)}
    write_safetensors_stream(str(folder / "big.safetensors"), ((n, block) for n in shapes), shapes, {"layout": "keras"})
    write_tensors(folder / "tiny.safetensors", {"a": np.ones((3, 3, 2, 2), np.float32)}, layout="keras")
    for name in ("tiny", "big"):
        torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in read_tensors(folder / f"{name}.safetensors").tensors.items()}, folder / f"{name}.pt")
    return folder, block.nbytes


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--layout", "torch"], ["--layout", "keras"], [], ["to .pt"], ["from .pt"], ["--layout", "torch", "to .pt"]])
def test_streamed_conversions_hold_under_two_of_the_largest_tensor(tmp_path, extra, rss_files):
    """Peak RSS over the same command's on a tiny file (the interpreter with its imports)."""
    folder, largest = rss_files
    ext = "pt" if "to .pt" in extra else "safetensors"
    src_ext = "pt" if extra == ["from .pt"] else "safetensors"
    extra = [e for e in extra if e not in ("to .pt", "from .pt")]
    peaks = {}
    for name in ("tiny", "big"):
        proc = subprocess.run([sys.executable, "-c", _RSS_CHILD, "convert", str(folder / f"{name}.{src_ext}"), str(tmp_path / f"{name}.out.{ext}"), *extra, "--quiet"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        peaks[name] = int(proc.stdout.split()[-1])
    growth = (peaks["big"] - peaks["tiny"]) / largest
    assert growth < 2.0, f"{growth:.2f} x the largest tensor"


def test_keras_to_torch_source_follows_the_output_rule(tmp_path):
    """keras_to_torch(source=m.py) writes m.pt beside it: an existing one is refused unless force."""
    pytest.importorskip("keras")
    from xconv import keras_to_torch, zoo

    k = zoo.build("two_conv", "keras")
    (tmp_path / "m.pt").write_bytes(b"someone's weights")
    with pytest.raises(BadInputError, match="m.pt.* exists"):
        keras_to_torch(k, source=tmp_path / "m.py")
    assert (tmp_path / "m.pt").read_bytes() == b"someone's weights" and sorted(os.listdir(tmp_path)) == ["m.pt"]
    with pytest.raises(BadInputError, match="same file"):
        keras_to_torch(k, source=tmp_path / "n.py", weights=tmp_path / "n.py")
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
    keras_to_torch(k, source=tmp_path / "m.py", force=True)
    assert sorted(os.listdir(tmp_path)) == ["m.pt", "m.py"] and torch.load(tmp_path / "m.pt", weights_only=True)


def test_convert_diff_and_describe_share_one_rank_rule(tmp_path, monkeypatch):
    """'conv if rank >= 3, else dense' lives in files.by_rank only: a planted change there reaches all three."""
    from xconv.cli.diff_cmd import compare_files
    from xconv.weight_axes import describe_file
    from xconv.files import by_rank

    rng = np.random.default_rng(0)
    tensors = {f"t{r}": rng.standard_normal((2, 3, 4, 5, 6)[:r]).astype(np.float32) for r in range(6)}
    write_tensors(tmp_path / "k.safetensors", tensors, layout="keras")
    convert_layout(tmp_path / "k.safetensors", tmp_path / "t.pt", to="torch")
    got = read_tensors(tmp_path / "t.pt").tensors
    assert {k: got[k].shape for k in got} == {k: by_rank.moved_shape(v.shape, "torch") for k, v in tensors.items()}
    assert all(r["ok"] for r in compare_files(tmp_path / "k.safetensors", tmp_path / "t.pt"))
    assert [r.torch_shape for r in describe_file(tmp_path / "k.safetensors")] == [by_rank.moved_shape(v.shape, "torch") for v in tensors.values()]
    # plant: matrices are copied instead of transposed; every user of the rule changes with it
    monkeypatch.setattr(by_rank, "kind_by_rank", lambda shape: "conv" if len(shape) >= 3 else "vector")
    assert [r.torch_shape for r in describe_file(tmp_path / "k.safetensors")][2] == (2, 3)
    assert not next(r for r in compare_files(tmp_path / "k.safetensors", tmp_path / "t.pt") if r["tensor"] == "t2")["ok"]
    convert_layout(tmp_path / "k.safetensors", tmp_path / "t2.safetensors", to="torch")
    assert same_bits(read_tensors(tmp_path / "t2.safetensors").tensors["t2"], tensors["t2"])  # copied, as planted


def test_convert_routes_are_one_table():
    """Each (source, output) format pair is done by one row of convert.ROUTES, or refused."""
    from xconv import convert

    pairs = [(s, d) for s in ("zoo", "keras", "keras-weights", "h5", "torch", "safetensors", "onnx") for d in ("keras", "keras-weights", "torch", "safetensors")]
    routed = {p: next((r for srcs, dsts, r in convert.ROUTES if p[0] in srcs and p[1] in dsts), None) for p in pairs}
    assert routed[("safetensors", "torch")] is convert._safetensors_to_pt  # streamed, before the general copy
    assert routed[("safetensors", "safetensors")] is convert._safetensors_copy
    assert routed[("onnx", "keras")] is None and routed[("keras", "torch")] is convert._keras_to_torch_file
    assert sum(r is not None for r in routed.values()) == 24


@pytest.mark.slow
def test_convert_benchmark_runs_and_reports_each_ratio(tmp_path):
    """scripts/bench_convert.py on a small file: the figures docs/benchmarks.md quotes are all printed."""
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "bench_convert.py")
    proc = subprocess.run([sys.executable, script, "--gb", "0.02", "--repeat", "1", "--kernel-repeat", "1", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "RESULT --layout torch:" in out and "of cp's throughput" in out and "RESULT in-memory transform: worst ratio" in out
    assert "user+sys" in out and "net against cp's" in out
    for shape in ("1x1 conv 2048->512", "3x3 conv 512->512", "7x7 conv 256->256", "depthwise 3x3 x512", "Conv3D 3x3x3 256->256"):
        assert shape in out
    assert os.listdir(tmp_path) == []  # its files are removed


def test_layout_progress_bar_counts_every_tensor(tmp_path, monkeypatch):
    """convert_layout(progress=True) on a terminal: one tqdm step per streamed tensor."""
    tqdm = pytest.importorskip("tqdm")
    from xconv import convert

    steps = []

    class Bar:
        def __init__(self, total, **kw):
            steps.append(("total", total))

        def update(self, n):
            steps.append(("step", n))

        def close(self):
            steps.append(("closed", 0))

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    write_tensors(tmp_path / "k.safetensors", {f"t{i}": np.ones((3, 3, 2, 2), np.float32) for i in range(3)}, layout="keras")
    convert.convert_layout(tmp_path / "k.safetensors", tmp_path / "t.safetensors", to="torch", progress=True)
    assert steps == [("total", 3), ("step", 1), ("step", 1), ("step", 1), ("closed", 0)]


def test_kernel_transform_without_torch_is_numpy_and_exact():
    """Where torch is not loaded, layouts moves kernels with its own NumPy passes, bit for bit."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from xconv import layouts
        rng = np.random.default_rng(1)
        for shape in [(3, 3, 128, 128), (1, 1, 600, 700), (3, 3, 3, 64, 64), (7, 7, 300, 1)]:
            k = rng.integers(0, 256, size=(*shape[:-1], shape[-1] * 4), dtype=np.uint8).view(np.float32)
            want = np.ascontiguousarray(k.transpose(*layouts.kernel_permutation(len(shape) - 2)))
            got = layouts.conv_kernel_to_torch(k)
            assert got.tobytes() == want.tobytes() and layouts.conv_kernel_to_keras(got).tobytes() == k.tobytes()
        assert "torch" not in sys.modules
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_a_copy_whose_input_shrinks_meanwhile_is_refused(tmp_path, monkeypatch, capsys):
    """.safetensors -> .safetensors is a kernel copy; an input cut during it gives exit 2 and no output."""
    import shutil

    write_tensors(tmp_path / "a.safetensors", {"w": np.arange(4096, dtype=np.float32)})
    real = shutil.copyfile

    def cut_midway(src, dst, *a, **k):  # another process truncates the input while the copy runs
        out = real(src, dst, *a, **k)
        os.truncate(src, os.path.getsize(src) // 2)
        os.truncate(dst, os.path.getsize(src))
        return out

    monkeypatch.setattr(shutil, "copyfile", cut_midway)
    assert main(["convert", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "a.safetensors" in err and "changed while it was copied" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]


def test_an_input_rewritten_in_place_at_the_same_size_is_refused(tmp_path):
    """The streamed move reads the input while it runs: one rewritten meanwhile (same size, same
    inode, new bytes: another process saving over it) would give an output mixing old and new
    tensors. Its modification time is checked with device, inode and size."""
    from xconv.files.stream import stream_layout

    src, dst = tmp_path / "k.safetensors", tmp_path / "t.safetensors"
    tensors = {f"w{i}": np.full((3, 3, 4, 4), i, np.float32) for i in range(3)}
    write_tensors(src, tensors, layout="keras")
    dst.write_bytes(b"")

    def rewrite(name, shape):
        if name == "w0":
            data = bytearray(src.read_bytes())
            data[-4:] = np.float32(99).tobytes()  # the same length, other bytes, written in place
            with open(src, "r+b") as fh:
                fh.write(bytes(data))
            st = os.stat(src)
            os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a coarse clock could miss the write

    with pytest.raises(BadInputError, match="k.safetensors.*was written while it was read"):
        stream_layout(str(src), str(dst), "torch", on_tensor=rewrite)


@pytest.mark.parametrize("open_files", [True, False])
def test_copy_file_range_ebadf_falls_back_only_on_open_files(tmp_path, monkeypatch, open_files):
    """EBADF from copy_file_range on two open files means the kernel will not copy between them (an
    appending output, some FUSE file systems): copy through user space. On a closed descriptor
    it is a bug, raised, not hidden by the fallback."""
    import errno

    from xconv.files import stream

    def refuse(*args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(stream, "_COPY_RANGE", [True])
    monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    monkeypatch.setattr(stream, "_both_open", lambda *fds: open_files)
    tensors = {"b": np.arange(1000, dtype=np.float32), "k": np.ones((3, 3, 2, 2), np.float32)}
    write_tensors(tmp_path / "a.safetensors", tensors, layout="keras")
    (tmp_path / "b.safetensors").touch()
    if not open_files:
        with pytest.raises(OSError, match="Bad file descriptor"):
            stream.stream_layout(str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), None)
        return
    stream.stream_layout(str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), None)
    assert stream._COPY_RANGE == [False]
    assert same_bits(read_tensors(tmp_path / "b.safetensors").tensors["b"], tensors["b"])


def test_row_views_are_kept_only_for_the_reused_buffers(tmp_path, monkeypatch):
    """The scatter read keeps its row views per buffer for the next read into it. A row longer
    than a slab is read into a buffer of its own: keeping views of those kept every such buffer
    alive (16 rows of 4 MiB held 3.4 times the largest tensor in bench_convert's --layout keras)."""
    from xconv.files import stream
    from xconv.files.stream import SLAB

    held = []
    real_close = stream._Input.close

    def close(self):
        held.append(sum(len(v[0].obj) if v else 0 for v in self._views.values()))
        real_close(self)

    monkeypatch.setattr(stream._Input, "close", close)
    x = np.random.default_rng(0).standard_normal((3, 3, 2, SLAB // 4 + 256)).astype(np.float32)  # rows of a slab and 1 KiB
    write_tensors(tmp_path / "a.safetensors", {f"w{i}": x for i in range(3)}, layout="torch")
    (tmp_path / "b.safetensors").touch()
    stream.stream_layout(str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "keras")
    assert held and held[0] <= 2 * SLAB, f"{held[0]} bytes of one-off row buffers kept"
