"""The battery: several hundred bad, hostile and edge-case inputs through the CLI.

Every case must end with exit 2 and one line on stderr that names the file, no traceback,
nothing new left in its folder (and nothing it was given changed), and no code run: hostile
files try to create a canary file, which must never appear.
"""

import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch

from conftest import has_keras
from xconv.cli.main import main

CANARY = "canary.txt"
NOISE = ("W0000", "I0000", "WARNING: All log messages", "E0000")


# ---------------------------------------------------------------- good files, made once


@pytest.fixture(scope="session")
def good(tmp_path_factory):
    """name -> bytes of a valid file of each format (two_conv), built once."""
    folder = tmp_path_factory.mktemp("good")
    from xconv import zoo

    torch.save(zoo.build("two_conv", "torch").state_dict(), folder / "good.pt")
    from xconv.files import write_tensors

    write_tensors(folder / "good.safetensors", {k: v.numpy() for k, v in zoo.build("two_conv", "torch").state_dict().items()})
    write_tensors(folder / "keras.safetensors", {"c/kernel": np.ones((3, 3, 2, 4), np.float32)}, layout="keras")
    try:
        import onnx
        from onnx import helper, numpy_helper

        w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
        graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w])
        onnx.save(helper.make_model(graph), folder / "good.onnx")
    except ImportError:  # pragma: no cover
        pass
    if has_keras():
        k = zoo.build("two_conv", "keras", random_biases=True)
        k.save(folder / "good.keras")
        k.save_weights(folder / "good.weights.h5")
        k.save(folder / "good.h5")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


# ---------------------------------------------------------------- hostile contents


def _evil_pickles(canary: str) -> dict[str, bytes]:
    """Pickles that would write the canary if anything unpickled them."""

    class Opens:
        def __reduce__(self):
            return (open, (canary, "w"))

    class Execs:
        def __reduce__(self):
            return (exec, (f"open({canary!r}, 'w').write('pwned')",))

    class Evals:
        def __reduce__(self):
            return (eval, (f"open({canary!r}, 'w')",))

    class System:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))

    out = {}
    for name, cls in (("open", Opens), ("exec", Execs), ("eval", Evals), ("system", System)):
        for proto in (0, 2, 4, 5):
            out[f"{name}-p{proto}"] = pickle.dumps({"conv1.weight": cls()}, protocol=proto)
    return out


def _zip_with_pickle(data: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/version", "3\n")
        z.writestr("archive/byteorder", "little")
    return buf.getvalue()


def _st(header, data: bytes = b"", raw_len=None) -> bytes:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(blob) if raw_len is None else raw_len) + blob + data


def _e(dtype="F32", shape=(1,), off=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(off)}


BAD_HEADERS = {
    "overlap": ({"a": _e(shape=[2], off=[0, 8]), "b": _e(shape=[2], off=[4, 12])}, 12),
    "gap": ({"a": _e(), "b": _e(off=[8, 12])}, 12),
    "size-mismatch": ({"a": _e(shape=[2], off=[0, 4])}, 4),
    "tib-claim": ({"a": _e(shape=[2**38], off=[0, 2**40])}, 8),
    "huge-shape": ({"a": _e(shape=[2**62, 2**62], off=[0, 4])}, 4),
    "trailing": ({"a": _e()}, 8),
    "past-end": ({"a": _e(shape=[4], off=[0, 16])}, 8),
    "unknown-dtype": ({"a": _e(dtype="F128")}, 4),
    "dtype-int": ({"a": _e(dtype=3)}, 4),
    "neg-shape": ({"a": _e(shape=[-1])}, 4),
    "float-shape": ({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, 4),
    "bool-shape": ({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, 4),
    "str-shape": ({"a": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}, 4),
    "reversed-offsets": ({"a": _e(off=[4, 0])}, 4),
    "neg-offset": ({"a": _e(off=[-4, 0])}, 4),
    "three-offsets": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, 8),
    "missing-offsets": ({"a": {"dtype": "F32", "shape": [1]}}, 4),
    "extra-field": ({"a": {**_e(), "x": 1}}, 4),
    "entry-list": ({"a": [1, 2]}, 4),
    "entry-null": ({"a": None}, 4),
    "metadata-int": ({"__metadata__": {"layout": 3}}, 0),
    "metadata-list": ({"__metadata__": ["a"]}, 0),
    "header-array": (b"[1, 2, 3]", 0),
    "header-string": (b'"abc"   ', 0),
    "header-garbage": (b"{not json at all}", 0),
    "header-nonutf8": (b'{"\xff\xfe": 1}', 0),
    "header-deep": (b"{" + b'"a":[' * 20000 + b"]" * 20000 + b"}", 0),
    "header-nan": (b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}', 4),
    "duplicate-key": (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),
    "duplicate-key-2": (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8),
    "offsets-float": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}}, 4),
}
HEADER_LENGTH = {"len-huge": 2**63, "len-past-file": 10_000, "len-over-cap": 200_000_000}


# ---------------------------------------------------------------- the cases


def _commands(bad: str, fmt: str):
    """Ways a bad input reaches the CLI: inspect, convert (to a format it could go to), diff."""
    to_keras = fmt in ("pt", "safetensors")
    out = ["convert", bad, "out.weights.h5" if to_keras else "out.pt"] + (["--arch", "zoo:two_conv"] if to_keras or fmt == "weights.h5" else [])
    yield "inspect", ["inspect", bad]
    yield "convert", out
    yield "diff", ["diff", bad, "good.pt" if bad != "good.pt" else "good.safetensors"]
    if fmt in ("pt", "safetensors"):
        yield "layout", ["convert", bad, "out.safetensors", "--layout", "torch"]


def _cut(data: bytes, frac: float) -> bytes:
    return data[: int(len(data) * frac)]


CORRUPTIONS = {
    "empty": lambda d: b"",
    "one-byte": lambda d: d[:1],
    "cut-10": lambda d: _cut(d, 0.1),
    "cut-50": lambda d: _cut(d, 0.5),
    "cut-last-byte": lambda d: d[:-1],
    "garbage": lambda d: bytes(range(256)) * 8,
    "zeros": lambda d: b"\0" * 4096,
}
FORMATS = {"pt": "good.pt", "safetensors": "good.safetensors", "onnx": "good.onnx", "keras": "good.keras", "weights.h5": "good.weights.h5", "h5": "good.h5"}
NEEDS_KERAS = ("keras", "weights.h5", "h5")


def cases():
    out = []

    def add(cid, files, args, names, keras=False, setup=None):
        out.append(pytest.param(files, args, names, setup, id=cid, marks=[pytest.mark.skipif(not has_keras(), reason="needs Keras")] if keras else []))

    # 1. every format, corrupted every way, through every command
    for fmt, src in FORMATS.items():
        for cname, corrupt in CORRUPTIONS.items():
            if fmt == "onnx" and cname == "cut-last-byte":
                continue  # the last field of an ONNX file may be one that can go missing: cut-50 covers truncation
            bad = f"bad.{fmt}"
            for cmd, args in _commands(bad, fmt):
                add(f"{fmt}-{cname}-{cmd}", {bad: (src, corrupt), "good.pt": ("good.pt", None), "good.safetensors": ("good.safetensors", None)}, args, [bad], keras=fmt in NEEDS_KERAS)
        # another format's bytes under this extension
        for other, osrc in FORMATS.items():
            if other == fmt or {fmt, other} <= {"weights.h5", "h5"} or {fmt, other} == {"pt", "keras"}:
                continue  # HDF5 for HDF5 and zip for zip are the same kind of file
            add(f"{fmt}-holds-{other}", {f"bad.{fmt}": (osrc, None)}, ["inspect", f"bad.{fmt}"], [f"bad.{fmt}"], keras=fmt in NEEDS_KERAS or other in NEEDS_KERAS)

    # 2. hostile safetensors headers, through inspect, layout, convert and diff
    for hname, (header, nbytes) in BAD_HEADERS.items():
        for cmd, args in (("inspect", ["inspect", "h.safetensors"]), ("layout", ["convert", "h.safetensors", "o.safetensors", "--layout", "torch"]), ("copy", ["convert", "h.safetensors", "o.safetensors"]), ("topt", ["convert", "h.safetensors", "o.pt"]), ("diff", ["diff", "h.safetensors", "h.safetensors"])):
            add(f"st-{hname}-{cmd}", {"h.safetensors": (_st(header, b"\0" * nbytes), None)}, args, ["h.safetensors"])
    for hname, n in HEADER_LENGTH.items():
        for cmd, args in (("inspect", ["inspect", "h.safetensors"]), ("layout", ["convert", "h.safetensors", "o.safetensors", "--layout", "keras"])):
            add(f"st-{hname}-{cmd}", {"h.safetensors": (_st({"a": _e()}, b"\0" * 4, raw_len=n), None)}, args, ["h.safetensors"])

    # 3. hostile pickles: never unpickled, canary never written
    for pname, data in _evil_pickles(CANARY).items():
        add(f"pickle-{pname}-raw", {"evil.pt": (data, None)}, ["inspect", "evil.pt"], ["evil.pt"])
        add(f"pickle-{pname}-zip", {"evil.pt": (_zip_with_pickle(data), None)}, ["convert", "evil.pt", "o.safetensors"], ["evil.pt"])
        add(f"pickle-{pname}-pth-layout", {"evil.pth": (data, None)}, ["convert", "evil.pth", "o.safetensors", "--layout", "keras"], ["evil.pth"])

    # 4. torch files that are not state_dicts of plain tensors
    def saved(obj, legacy=False):
        import io

        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
        return buf.getvalue()

    odd_pt = {
        "list": [torch.ones(2)],
        "tensor": torch.ones(2),
        "int-keys": {1: torch.ones(2)},
        "non-tensor-value": {"a": torch.ones(2), "b": 3},
        "nested": {"a": {"b": torch.ones(2)}},
        "sparse-coo": {"s": torch.eye(3).to_sparse()},
        "sparse-csr": {"s": torch.eye(3).to_sparse_csr()},
        "quantized": {"q": torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8)},
        "string": "hello",
        "none": None,
        "checkpoint-bad": {"state_dict": {"a": "x"}, "epoch": 3},
    }
    for oname, obj in odd_pt.items():
        for legacy in (False, True):
            try:
                data = saved(obj, legacy)
            except Exception:  # noqa: BLE001 - this torch cannot save it that way
                continue
            tag = "legacy" if legacy else "zip"
            add(f"pt-{oname}-{tag}-inspect", {"odd.pt": (data, None)}, ["inspect", "odd.pt"], ["odd.pt"])
            add(f"pt-{oname}-{tag}-convert", {"odd.pt": (data, None)}, ["convert", "odd.pt", "o.safetensors"], ["odd.pt"])
    add("pt-whole-module", {"m.pt": (saved(torch.nn.Conv2d(1, 2, 3)), None)}, ["inspect", "m.pt"], ["m.pt"])
    add("pt-complex128-to-safetensors", {"c.pt": (saved({"z": torch.zeros(2, dtype=torch.complex128)}), None)}, ["convert", "c.pt", "o.safetensors"], ["o.safetensors"])

    # 5. ONNX: empty, duplicates, external data outside the folder
    try:
        import onnx  # noqa: F401

        has_onnx = True
    except ImportError:  # pragma: no cover
        has_onnx = False
    if has_onnx:
        for oname, (location, extra) in {
            "abs": ("/etc/passwd", {}),
            "dotdot": ("../secret.bin", {}),
            "dotdot-deep": ("a/../../secret.bin", {}),
            "missing": ("nope.bin", {}),
            "symlink-out": ("link.bin", {}),
            "past-end": ("w.bin", {"offset": "100"}),
            "len-past-end": ("w.bin", {"length": "4000"}),
            "bad-offset": ("w.bin", {"offset": "x"}),
            "neg-offset": ("w.bin", {"offset": "-5"}),
            "empty-location": ("", {}),
        }.items():
            for cmd, args in (("inspect", ["inspect", "m.onnx"]), ("convert", ["convert", "m.onnx", "o.pt"]), ("diff", ["diff", "m.onnx", "m.onnx"])):
                add(f"onnx-ext-{oname}-{cmd}", {"m.onnx": ("onnx-ext", (location, extra))}, args, ["m.onnx"], setup="onnx-ext")
        for cmd, args in (("inspect", ["inspect", "d.onnx"]), ("convert", ["convert", "d.onnx", "o.pt"])):
            add(f"onnx-duplicate-{cmd}", {"d.onnx": ("onnx-dup", None)}, args, ["d.onnx"], setup="onnx-dup")
            add(f"onnx-no-graph-{cmd}", {"d.onnx": ("onnx-nograph", None)}, args, ["d.onnx"], setup="onnx-nograph")

    # 6. Keras archives: code, bombs, depth, broken configs
    lam = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"function": "open('canary.txt','w')"}}]}}
    keras_archives = {
        "lambda": {"config.json": json.dumps(lam)},
        "lambda-nested": {"config.json": json.dumps({"class_name": "Functional", "config": {"layers": [{"class_name": "Dense", "inner": [lam]}]}})},
        "deep": {"config.json": "[" * 50000 + "]" * 50000},
        "not-json": {"config.json": "{this is not json"},
        "json-list": {"config.json": "[1, 2, 3]"},
        "no-config": {"other.txt": "x"},
        "unknown-class": {"config.json": json.dumps({"class_name": "NoSuchLayerAnywhere", "config": {}, "module": "nowhere"}), "metadata.json": "{}"},
        "os-system": {"config.json": json.dumps({"module": "os", "class_name": "system", "config": "touch canary.txt", "registered_name": "system"}), "metadata.json": "{}"},
        "builtins-exec": {"config.json": json.dumps({"module": "builtins", "class_name": "exec", "config": {"source": "open('canary.txt','w')"}}), "metadata.json": "{}"},
        "function-ref": {"config.json": json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 2, "activation": {"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}}}]}}), "metadata.json": "{}"},
    }
    for kname, members in keras_archives.items():
        for cmd, args in (("inspect", ["inspect", "k.keras"]), ("convert", ["convert", "k.keras", "o.pt"]), ("diff", ["diff", "k.keras", "good.pt"])):
            add(f"keras-{kname}-{cmd}", {"k.keras": ("zip", members), "good.pt": ("good.pt", None)}, args, ["k.keras"], keras=True)
    add("keras-bomb-inspect", {"b.keras": ("bomb", None)}, ["inspect", "b.keras"], ["b.keras"], keras=True, setup="bomb")
    add("keras-bomb-convert", {"b.keras": ("bomb", None)}, ["convert", "b.keras", "o.pt"], ["b.keras"], keras=True, setup="bomb")
    add("h5-dataset-claims-too-much", {"big.weights.h5": ("h5-claim", None)}, ["inspect", "big.weights.h5"], ["big.weights.h5"], keras=True, setup="h5-claim")
    add("h5-model-config-lambda", {"lam.h5": ("h5-lambda", None)}, ["convert", "lam.h5", "o.pt"], ["lam.h5"], keras=True, setup="h5-lambda")

    # 7. data loss: outputs and side files that are inputs, each other, or exist
    st = {"in.safetensors": ("keras.safetensors", None)}
    loss = {
        "same-path-force": (["convert", "in.safetensors", "in.safetensors", "--layout", "torch", "--force"], "in.safetensors"),
        "same-path-dot": (["convert", "in.safetensors", "./in.safetensors", "--force"], "in.safetensors"),
        "symlink-to-input": (["convert", "in.safetensors", "ln.safetensors", "--layout", "torch", "--force"], "ln.safetensors"),
        "hardlink-to-input": (["convert", "in.safetensors", "hl.safetensors", "--layout", "torch", "--force"], "hl.safetensors"),
        "manifest-is-input": (["convert", "in.safetensors", "o.safetensors", "--manifest", "in.safetensors", "--force"], "in.safetensors"),
        "manifest-is-output": (["convert", "in.safetensors", "o.safetensors", "--layout", "torch", "--manifest", "o.safetensors"], "o.safetensors"),
        "manifest-hardlink-input": (["convert", "in.safetensors", "o.pt", "--manifest", "hl.safetensors", "--force"], "hl.safetensors"),
        "existing-output": (["convert", "in.safetensors", "exists.safetensors"], "exists.safetensors"),
        "existing-output-layout": (["convert", "in.safetensors", "exists.safetensors", "--layout", "torch"], "exists.safetensors"),
        "existing-manifest": (["convert", "in.safetensors", "o.pt", "--manifest", "exists.json"], "exists.json"),
        "output-folder-missing": (["convert", "in.safetensors", "nowhere/o.pt"], "o.pt"),
        "output-is-folder": (["convert", "in.safetensors", "dir.safetensors", "--force"], "dir.safetensors"),
        "output-name-too-long": (["convert", "in.safetensors", "x" * 300 + ".pt"], "xxxxxxxx"),
        "output-unknown-ext": (["convert", "in.safetensors", "o.bin"], "o.bin"),
        "output-onnx": (["convert", "in.safetensors", "o.onnx"], "o.onnx"),
        "output-legacy-h5": (["convert", "in.safetensors", "o.h5"], "o.h5"),
        "layout-from-keras-file": (["convert", "in.safetensors", "o.keras", "--layout", "torch"], "--layout"),
        "source-with-torch-input": (["convert", "in.safetensors", "o.pt", "--source", "m.py"], "--source"),
        "missing-input": (["convert", "nothere.safetensors", "o.pt"], "nothere.safetensors"),
        "input-is-folder": (["inspect", "dir.safetensors"], "dir.safetensors"),
        "diff-missing": (["diff", "in.safetensors", "nothere.pt"], "nothere.pt"),
        "diff-bad-atol": (["diff", "in.safetensors", "in.safetensors", "--atol", "-1"], "--atol"),
        "diff-nan-rtol": (["diff", "in.safetensors", "in.safetensors", "--rtol", "nan"], "--rtol"),
    }
    for lname, (args, name) in loss.items():
        add(f"loss-{lname}", {**st, "exists.safetensors": (b"old", None), "exists.json": (b"{}", None)}, args, [name], setup="links")
    keras_loss = {
        "source-is-input": (["convert", "in.keras", "o.pt", "--source", "in.keras"], "in.keras"),
        "source-is-output": (["convert", "in.keras", "o.pt", "--source", "o.pt"], "o.pt"),
        "source-weights-is-output": (["convert", "in.keras", "m.pt", "--source", "m.py"], "m.pt"),
        "source-weights-exist": (["convert", "in.keras", "o.pt", "--source", "old.py"], "old.pt"),
        "source-exists": (["convert", "in.keras", "o.pt", "--source", "exists.py"], "exists.py"),
        "source-weights-clobber": (["convert", "in.keras", "o.safetensors", "--source", "good.py"], "good.pt"),
        "manifest-is-source": (["convert", "in.keras", "o.pt", "--source", "m.py", "--manifest", "m.py"], "m.py"),
        "arch-is-output": (["convert", "good.pt", "in.keras", "--arch", "in.keras", "--force"], "in.keras"),
        "arch-missing": (["convert", "good.pt", "o.weights.h5", "--arch", "nothere.keras"], "nothere.keras"),
        "arch-wrong": (["convert", "good.pt", "o.weights.h5", "--arch", "zoo:unet_encoder"], "good.pt"),
        "weights-without-arch": (["convert", "in.weights.h5", "o.pt"], "in.weights.h5"),
        "bad-module": (["convert", "in.keras", "o.pt", "--module", "nomodule"], "nomodule"),
        "bad-module-import": (["convert", "in.keras", "o.pt", "--module", "no_such_pkg_xyz:Cls"], "no_such_pkg_xyz"),
        "bad-kwargs": (["convert", "in.keras", "o.pt", "--module", "torch.nn:Conv2d", "--kwargs", "{bad"], "--kwargs"),
    }
    for lname, (args, name) in keras_loss.items():
        add(f"loss-{lname}", {"in.keras": ("good.keras", None), "in.weights.h5": ("good.weights.h5", None), "good.pt": ("good.pt", None), "old.pt": (b"old", None), "exists.py": (b"# mine", None)}, args, [name], keras=True)
    return out


CASES = cases()


def _materialise(folder, files, setup, good):
    for name, (what, how) in files.items():
        path = folder / name
        if what == "zip":
            with zipfile.ZipFile(path, "w") as z:
                for member, text in how.items():
                    z.writestr(member, text)
        elif what == "onnx-ext":
            _onnx_ext(folder, path, *how)
        elif what in ("onnx-dup", "onnx-nograph"):
            _onnx_odd(path, what)
        elif what == "bomb":
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                with z.open("config.json", "w", force_zip64=True) as fh:
                    for _ in range(80):
                        fh.write(b" " * 2**20)
        elif what == "h5-claim":
            import h5py

            with h5py.File(path, "w") as f:
                f.create_dataset("layers/conv/vars/0", shape=(2**20, 2**20), dtype="f4", chunks=(8, 8), compression="gzip")
        elif what == "h5-lambda":
            import h5py

            with h5py.File(path, "w") as f:
                f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}})
        elif isinstance(what, bytes):
            path.write_bytes(what)
        else:
            data = good[what]
            path.write_bytes(how(data) if callable(how) else data)
    if setup == "links":
        os.symlink("in.safetensors", folder / "ln.safetensors")
        os.link(folder / "in.safetensors", folder / "hl.safetensors")
        (folder / "dir.safetensors").mkdir()


def _onnx_ext(folder, path, location, extra):
    import onnx
    from onnx import helper, numpy_helper

    (folder / "w.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    (folder.parent / "secret.bin").write_bytes(b"\0" * 24)
    if location == "link.bin":
        os.symlink(folder.parent / "secret.bin", folder / "link.bin")
    t = numpy_helper.from_array(np.zeros(6, np.float32), "w")
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in {"location": location, **extra}.items():
        t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [t])
    path.write_bytes(helper.make_model(graph).SerializeToString())


def _onnx_odd(path, what):
    import onnx
    from onnx import helper, numpy_helper

    if what == "onnx-nograph":
        path.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
        return
    a, b = (numpy_helper.from_array(np.full(3, v, np.float32), "w") for v in (1, 2))
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [], [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [a, b])
    path.write_bytes(helper.make_model(graph).SerializeToString())


def _snapshot(folder):
    out = {}
    for root, dirs, names in os.walk(folder):
        for n in names + dirs:
            p = os.path.join(root, n)
            out[os.path.relpath(p, folder)] = os.readlink(p) if os.path.islink(p) else (open(p, "rb").read() if os.path.isfile(p) else "dir")
    return out


def test_the_battery_has_at_least_300_cases():
    assert len(CASES) >= 300, len(CASES)


def run_case(tmp_path, good, files, args, names, setup, capfd, monkeypatch) -> list[str]:
    """Run one case; the list of what went wrong (empty: exit 2, one line naming the file, nothing left, no code run)."""
    case = tmp_path / "case"
    case.mkdir(parents=True)
    _materialise(case, files, setup, good)
    monkeypatch.chdir(case)
    before = _snapshot(tmp_path)
    capfd.readouterr()
    try:
        code = main(args)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    captured = capfd.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip() and not line.startswith(NOISE)]
    problems = []
    if code != 2:
        problems.append(f"exit {code}; stdout {captured.out[-300:]!r} stderr {captured.err[-800:]!r}")
    if "Traceback" in captured.err + captured.out:
        problems.append("a traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr: {lines[:5]}")
    elif not any(n in lines[0] for n in names):
        problems.append(f"the message does not name {names}: {lines[0]}")
    if (case / CANARY).exists() or (tmp_path / CANARY).exists():
        problems.append("a hostile file ran code (the canary exists)")
    if _snapshot(tmp_path) != before:
        problems.append("the run left something behind or changed a file")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("files, args, names, setup", CASES)
def test_bad_input(tmp_path, good, files, args, names, setup, capfd, monkeypatch):
    for name, (what, _) in files.items():
        if isinstance(what, str) and what.startswith("good.") and what not in good:
            pytest.skip(f"{what} needs a framework that is not installed")
    problems = run_case(tmp_path, good, files, args, names, setup, capfd, monkeypatch)
    assert not problems, problems


def test_the_checker_catches_planted_failures(tmp_path, good, capfd, monkeypatch):
    import sys

    valid = run_case(tmp_path / "a", good, {"g.pt": ("good.pt", None)}, ["convert", "g.pt", "g.safetensors"], ["g.pt"], None, capfd, monkeypatch)
    assert any("exit 0" in p for p in valid) and any("left something" in p for p in valid)
    unnamed = run_case(tmp_path / "b", good, {"x.bin": (b"", None)}, ["inspect", "x.bin"], ["nothing-named-so"], None, capfd, monkeypatch)
    assert unnamed and all("does not name" in p for p in unnamed)
    real = main

    def runs_code(argv):  # as if a hostile file had run its payload
        open(CANARY, "w").close()
        return real(argv)

    monkeypatch.setattr(sys.modules[__name__], "main", runs_code)
    ran = run_case(tmp_path / "c", good, {"x.bin": (b"", None)}, ["inspect", "x.bin"], ["x.bin"], None, capfd, monkeypatch)
    assert any("canary" in p for p in ran)
