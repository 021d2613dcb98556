"""Checkpoint files as users bring them, run through ``xconv convert`` / ``diff`` / ``inspect``.

Each file is built in ``tmp_path`` the way its own library writes it (Hugging Face safetensors
with ``{"format": "pt"}`` and sharded indexes, ``pytorch_model.bin``, PyTorch Lightning ``.ckpt``,
timm ``state_dict_ema`` wrappers, DataParallel prefixes, legacy non-zip ``torch.save``, views,
non-contiguous and empty tensors, Keras 3 files with a registered custom layer). The expectations
are a user's, written from ``docs/cli.md`` and ``--help`` only: a plain round trip is bit-exact
(dtype, shape, 0-dim), a file diffed with itself is equal (exit 0), a wrapper is unwrapped with a
note of what was taken, and bad input is one line naming the file, exit 2, never a signal.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from xconv.cli.main import main

from conftest import needs_keras


def cli(capsys, *args):
    """Run ``xconv ARGS`` in this process; return (exit code, stdout + stderr)."""
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out + out.err


def state_dict(dtype=torch.float32, prefix=""):
    g = torch.Generator().manual_seed(0)
    sd = {
        "conv1.weight": torch.randn(8, 3, 3, 3, generator=g),
        "conv1.bias": torch.randn(8, generator=g),
        "bn1.weight": torch.rand(8, generator=g),
        "bn1.bias": torch.randn(8, generator=g),
        "bn1.running_mean": torch.randn(8, generator=g),
        "bn1.running_var": torch.rand(8, generator=g),
        "fc.weight": torch.randn(5, 8, generator=g),
        "fc.bias": torch.randn(5, generator=g),
    }
    sd = {k: v.to(dtype) for k, v in sd.items()}
    sd["bn1.num_batches_tracked"] = torch.tensor(17)  # 0-dim int64, as BatchNorm keeps it
    return {prefix + k: v for k, v in sd.items()}


def assert_same(a: dict, b: dict):
    """Same names, dtypes, shapes and bits (NaN-safe, -0.0 distinct)."""
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = a[k], b[k]
        assert x.dtype == y.dtype, k
        assert tuple(x.shape) == tuple(y.shape), k
        assert _bytes(x) == _bytes(y), k


def _bytes(t):
    if t.numel() == 0:
        return []
    return t.detach().clone().contiguous().reshape(-1).view(torch.uint8).tolist()


def load_pt(path):
    return torch.load(path, weights_only=True)


def round_trip(capsys, tmp_path, src, name="rt"):
    """``src -> .safetensors -> .pt``; returns the tensors of both outputs."""
    st, pt = tmp_path / f"{name}.safetensors", tmp_path / f"{name}.pt"
    rc, out = cli(capsys, "convert", src, st, "--quiet")
    assert rc == 0, out
    rc, out = cli(capsys, "convert", st, pt, "--quiet")
    assert rc == 0, out
    return load_file(st), load_pt(pt)


def diff_self(capsys, path):
    rc, out = cli(capsys, "diff", path, path)
    assert rc == 0, out
    assert "differ" not in out.lower().replace("0 differ", ""), out


def transformers_would_load(path):
    """The check transformers' ``load_state_dict`` makes on a safetensors file before loading it."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    return metadata is not None and metadata.get("format") in ("pt", "tf", "flax", "mlx")


# --------------------------------------------------------------------------- Hugging Face


def test_hf_model_safetensors_round_trip_diff_and_inspect(tmp_path, capsys):
    sd = state_dict()
    src = tmp_path / "model.safetensors"
    save_file(sd, str(src), metadata={"format": "pt"})
    st, pt = round_trip(capsys, tmp_path, src)
    assert_same(sd, st)
    assert_same(sd, pt)
    diff_self(capsys, src)
    rc, out = cli(capsys, "diff", src, tmp_path / "rt.pt")
    assert rc == 0, out
    rc, out = cli(capsys, "inspect", src, "--json")
    assert rc == 0 and "bn1.num_batches_tracked" in out, out


def test_pt_to_safetensors_carries_format_pt_metadata(tmp_path, capsys):
    torch.save(state_dict(), tmp_path / "m.pt")
    rc, out = cli(capsys, "convert", tmp_path / "m.pt", tmp_path / "m.safetensors", "--quiet")
    assert rc == 0, out
    assert transformers_would_load(tmp_path / "m.safetensors"), "no {'format': 'pt'} metadata: transformers refuses the file"
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        assert f.metadata().get("layout") == "torch"  # xconv's own entry is kept
    # a layout change keeps both entries too
    rc, out = cli(capsys, "convert", tmp_path / "m.safetensors", tmp_path / "k.safetensors", "--layout", "keras", "--quiet")
    assert rc == 0, out
    with safe_open(str(tmp_path / "k.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt", "layout": "keras"}


def _shard(tmp_path, sd, folder=None):
    """Write ``sd`` as two shards and an index, as ``save_pretrained(max_shard_size=...)`` does."""
    folder = folder or tmp_path
    folder.mkdir(exist_ok=True)
    names = sorted(sd)
    half = {0: names[: len(names) // 2], 1: names[len(names) // 2 :]}
    weight_map = {}
    for i, part in half.items():
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: sd[k] for k in part}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in part})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return index


def test_hf_sharded_checkpoint_diffs_and_inspects_through_its_index(tmp_path, capsys):
    sd = state_dict(torch.bfloat16)
    index = _shard(tmp_path, sd)
    diff_self(capsys, index)
    save_file(sd, str(tmp_path / "whole.safetensors"), metadata={"format": "pt"})
    rc, out = cli(capsys, "diff", index, tmp_path / "whole.safetensors")
    assert rc == 0 and "9 of 9 tensors equal" in out, out
    rc, out = cli(capsys, "inspect", index)
    assert rc == 0 and "fc.weight" in out, out
    # a planted change in one shard is seen
    planted = dict(sd)
    planted["fc.bias"] = sd["fc.bias"].clone()
    planted["fc.bias"][1] += 1
    save_file(planted, str(tmp_path / "other.safetensors"))
    rc, out = cli(capsys, "diff", index, tmp_path / "other.safetensors")
    assert rc == 1 and "fc.bias" in out, out


def test_a_stale_total_size_is_noted_not_refused(tmp_path, capsys):
    sd = state_dict()
    index = _shard(tmp_path, sd)
    rc, out = cli(capsys, "inspect", index)
    assert rc == 0 and "total_size" not in out, out  # the figure save_pretrained writes matches
    data = json.loads(index.read_text())
    data["metadata"]["total_size"] += 4  # as if a shard had been re-saved with one more float
    index.write_text(json.dumps(data))
    rc, out = cli(capsys, "inspect", index)
    assert rc == 0 and "total_size" in out and str(data["metadata"]["total_size"]) in out, out


def test_pytorch_model_bin_index_reads_bin_shards(tmp_path, capsys):
    sd = state_dict()
    names = sorted(sd)
    torch.save({k: sd[k] for k in names[:4]}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({k: sd[k] for k in names[4:]}, tmp_path / "pytorch_model-00002-of-00002.bin")
    weight_map = {k: f"pytorch_model-0000{1 + (i >= 4)}-of-00002.bin" for i, k in enumerate(names)}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    save_file(sd, str(tmp_path / "whole.safetensors"))
    rc, out = cli(capsys, "diff", tmp_path / "pytorch_model.bin.index.json", tmp_path / "whole.safetensors")
    assert rc == 0, out


def test_hf_sharded_checkpoint_converts_through_its_index(tmp_path, capsys):
    sd = state_dict(torch.bfloat16)
    index = _shard(tmp_path, sd)
    st, pt = round_trip(capsys, tmp_path, index)
    assert_same(sd, st)
    assert_same(sd, pt)


def _symlink_out(idx, tmp_path):
    os.symlink(tmp_path / "model-00001-of-00002.safetensors", tmp_path / "ckpt" / "link.safetensors")
    idx["weight_map"] = {k: ("link.safetensors" if v.startswith("model-00001") else v) for k, v in idx["weight_map"].items()}


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda idx, _: idx["weight_map"].update({"fc.weight": "../model-00001-of-00002.safetensors"}), ".."),
        (lambda idx, _: idx["weight_map"].update({"fc.weight": "/etc/model.safetensors"}), "absolute"),
        (_symlink_out, "link out"),
        (lambda idx, _: idx["weight_map"].update({"fc.weight": "model-00009-of-00009.safetensors"}), "00009"),
        (lambda idx, _: idx["weight_map"].update({"ghost.weight": "model-00001-of-00002.safetensors"}), "ghost.weight"),
        (lambda idx, _: idx["weight_map"].pop("fc.bias"), "fc.bias"),
        (lambda idx, _: idx.pop("weight_map"), "weight_map"),
        (lambda idx, _: idx["weight_map"].update({"fc.weight": "model.pt"}), "not a .safetensors"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "missing-shard", "name-not-in-shard", "shard-tensor-not-in-map", "no-weight-map", "other-format"],
)
def test_a_bad_index_is_refused_with_one_line(tmp_path, capsys, edit, words):
    index = _shard(tmp_path, state_dict(), tmp_path / "ckpt")
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes((tmp_path / "ckpt" / "model-00001-of-00002.safetensors").read_bytes())
    data = json.loads(index.read_text())
    edit(data, tmp_path)
    index.write_text(json.dumps(data))
    for command in (["inspect", index], ["diff", index, tmp_path / "model-00001-of-00002.safetensors"]):
        rc, out = cli(capsys, *command)
        assert rc == 2, out
        assert "model.safetensors.index.json" in out and words in out, out
        assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out


def test_input_files_name_what_a_run_reads(tmp_path):
    """What convert must protect from its outputs: FILE for FILE:KEY, an index and all its shards."""
    from xconv.files import input_files

    index = _shard(tmp_path, state_dict())
    torch.save({"state_dict": state_dict(), "state_dict_ema": state_dict()}, tmp_path / "c.pth")
    got = input_files(f"{tmp_path / 'c.pth'}:state_dict_ema", str(index), None, "zoo:two_conv")
    assert got == [str(tmp_path / "c.pth"), str(index), *(str(tmp_path / f"model-0000{i}-of-00002.safetensors") for i in (1, 2))]


def test_pytorch_model_bin_is_a_torch_zip(tmp_path, capsys):
    sd = state_dict(torch.float16)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    st, pt = round_trip(capsys, tmp_path, tmp_path / "pytorch_model.bin")
    assert_same(sd, st)
    assert_same(sd, pt)
    diff_self(capsys, tmp_path / "pytorch_model.bin")


def test_a_bin_that_is_not_a_torch_file_is_refused_naming_it(tmp_path, capsys):
    (tmp_path / "vocab.bin").write_bytes(os.urandom(4096))
    rc, out = cli(capsys, "inspect", tmp_path / "vocab.bin")
    assert rc == 2 and "vocab.bin" in out and "Traceback" not in out, out


def test_tied_weights_two_names_one_storage(tmp_path, capsys):
    sd = state_dict()
    emb = torch.randn(11, 8)
    sd["embed.weight"] = emb
    sd["lm_head.weight"] = emb  # tied, as tie_weights() leaves them in a state_dict
    torch.save(sd, tmp_path / "pytorch_model.bin")
    st, pt = round_trip(capsys, tmp_path, tmp_path / "pytorch_model.bin")
    assert_same(sd, st)
    assert_same(sd, pt)


# --------------------------------------------------------------------------- wrapped checkpoints


def lightning_ckpt(path, sd):
    torch.save(
        {
            "epoch": 4,
            "global_step": 1230,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {"model." + k: v for k, v in sd.items()},
            "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 4}}}},
            "callbacks": {},
            "optimizer_states": [
                {
                    "state": {0: {"step": torch.tensor(1230.0), "exp_avg": torch.zeros(8, 3, 3, 3)}},
                    "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0]}],
                }
            ],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": {"lr": 1e-3, "width": 8},
        },
        path,
    )


def test_lightning_ckpt_unwraps_state_dict_with_a_note(tmp_path, capsys):
    sd = state_dict()
    lightning_ckpt(tmp_path / "last.ckpt", sd)
    rc, out = cli(capsys, "convert", tmp_path / "last.ckpt", tmp_path / "m.safetensors")
    assert rc == 0, out
    assert "state_dict" in out and "optimizer_states" in out, f"no note of what was taken and dropped: {out}"
    assert_same({"model." + k: v for k, v in sd.items()}, load_file(tmp_path / "m.safetensors"))
    diff_self(capsys, tmp_path / "last.ckpt")
    rc, out = cli(capsys, "inspect", tmp_path / "last.ckpt")
    assert rc == 0 and "model.conv1.weight" in out, out


def test_timm_ema_is_not_dropped_silently(tmp_path, capsys):
    sd = state_dict()
    ema = {k: (v * 0.5 if v.is_floating_point() else v) for k, v in sd.items()}
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": sd, "state_dict_ema": ema}, tmp_path / "checkpoint.pth")
    rc, out = cli(capsys, "convert", tmp_path / "checkpoint.pth", tmp_path / "m.safetensors")
    assert rc == 0, out
    assert "state_dict_ema" in out, f"the EMA weights were dropped without a word: {out}"
    assert_same(sd, load_file(tmp_path / "m.safetensors"))
    # the note's way of picking the other one works
    rc, out = cli(capsys, "convert", f"{tmp_path / 'checkpoint.pth'}:state_dict_ema", tmp_path / "ema.safetensors", "--quiet")
    assert rc == 0, out
    assert_same(ema, load_file(tmp_path / "ema.safetensors"))
    rc, out = cli(capsys, "diff", f"{tmp_path / 'checkpoint.pth'}:state_dict_ema", tmp_path / "ema.safetensors")
    assert rc == 0, out


def test_timm_model_wrapper_and_dataparallel_prefix(tmp_path, capsys):
    sd = state_dict(prefix="module.")
    torch.save({"model": sd, "epoch": 3}, tmp_path / "model_best.pth.tar.pt")
    st, pt = round_trip(capsys, tmp_path, tmp_path / "model_best.pth.tar.pt")
    assert_same(sd, st)  # names kept as written: xconv strips no prefix behind the user's back
    assert_same(sd, pt)


def test_a_dict_with_no_tensors_is_refused_naming_its_keys(tmp_path, capsys):
    torch.save({"epoch": 3, "args": {"lr": 0.1}}, tmp_path / "meta.pt")
    rc, out = cli(capsys, "convert", tmp_path / "meta.pt", tmp_path / "m.safetensors")
    assert rc == 2, out
    assert "meta.pt" in out and "epoch" in out and "Traceback" not in out, out


def test_a_state_dict_under_an_unknown_name_is_refused_with_the_way_to_take_it(tmp_path, capsys):
    sd = state_dict()
    torch.save({"student": sd, "teacher": sd, "step": 5}, tmp_path / "distill.pt")
    rc, out = cli(capsys, "convert", tmp_path / "distill.pt", tmp_path / "m.safetensors")
    assert rc == 2 and "'student', 'teacher'" in out and "distill.pt:student" in out, out
    assert not (tmp_path / "m.safetensors").exists()
    rc, out = cli(capsys, "convert", f"{tmp_path / 'distill.pt'}:teacher", tmp_path / "m.safetensors", "--quiet")
    assert rc == 0, out
    assert_same(sd, load_file(tmp_path / "m.safetensors"))
    rc, out = cli(capsys, "inspect", f"{tmp_path / 'distill.pt'}:step")
    assert rc == 2 and "'step' is not a state_dict" in out and "int" in out, out


def test_file_key_input_is_protected_like_the_file(tmp_path, capsys):
    torch.save({"state_dict": state_dict(), "state_dict_ema": state_dict()}, tmp_path / "c.pth")
    before = (tmp_path / "c.pth").read_bytes()
    rc, out = cli(capsys, "convert", f"{tmp_path / 'c.pth'}:state_dict_ema", tmp_path / "c.pth", "--force")
    assert (tmp_path / "c.pth").read_bytes() == before, "the checkpoint was replaced by its own EMA entry"
    assert rc == 2 and "input" in out, out


def test_a_file_whose_name_has_a_colon_is_read_whole(tmp_path, capsys):
    sd = state_dict()
    torch.save(sd, tmp_path / "run:3.pt")
    rc, out = cli(capsys, "diff", tmp_path / "run:3.pt", tmp_path / "run:3.pt")
    assert rc == 0, out


# --------------------------------------------------------------------------- torch.save idioms


def test_legacy_non_zip_torch_save(tmp_path, capsys):
    sd = state_dict()
    torch.save(sd, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    st, pt = round_trip(capsys, tmp_path, tmp_path / "old.pth")
    assert_same(sd, st)
    assert_same(sd, pt)
    diff_self(capsys, tmp_path / "old.pth")


def test_views_of_one_storage_and_non_contiguous_tensors(tmp_path, capsys):
    big = torch.randn(64, 64)
    sd = {
        "rows": big[10:20],  # a view at an offset into a bigger storage
        "col": big[:, 3],  # strided
        "t": big[:8, :5].t(),  # transposed: non-contiguous
        "expanded": torch.randn(1, 4).expand(3, 4),  # stride 0
    }
    torch.save(sd, tmp_path / "views.pt")
    st, pt = round_trip(capsys, tmp_path, tmp_path / "views.pt")
    assert_same(sd, st)
    assert_same(sd, pt)
    # only the views' bytes are written, not the 16 KiB storage behind them
    assert (tmp_path / "rt.safetensors").stat().st_size < 64 * 64 * 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_checkpoints(tmp_path, capsys, dtype):
    sd = state_dict(dtype)
    sd["bn1.weight"][0] = float("-0.0")
    torch.save(sd, tmp_path / "half.pt")
    st, pt = round_trip(capsys, tmp_path, tmp_path / "half.pt")
    assert_same(sd, st)
    assert_same(sd, pt)
    assert pt["bn1.num_batches_tracked"].shape == () and pt["bn1.num_batches_tracked"].dtype == torch.int64


def test_empty_tensors(tmp_path, capsys):
    sd = {"none": torch.empty(0), "no_rows": torch.empty(0, 3), "conv_no_filters": torch.empty(0, 3, 3, 3, dtype=torch.float16)}
    torch.save(sd, tmp_path / "empty.pt")
    st, pt = round_trip(capsys, tmp_path, tmp_path / "empty.pt")
    assert_same(sd, st)
    assert_same(sd, pt)
    diff_self(capsys, tmp_path / "empty.pt")


# --------------------------------------------------------------------------- damaged .pt files

_FORKED = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from xconv.cli.main import main
    src, work, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    offsets, command = json.loads(sys.argv[4]), json.loads(sys.argv[5])
    data = open(src, "rb").read()
    results = {}
    for off in offsets:
        path = os.path.join(work, f"cut{off}.pt")
        out = os.path.join(work, f"cut{off}.safetensors")
        err = os.path.join(work, f"cut{off}.err")
        with open(path, "wb") as f:
            f.write(data if mode == "shrink" else data[:off])
        pid = os.fork()
        if pid == 0:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            if mode == "shrink":  # another process cuts the file while xconv reads it
                real = torch.load
                def load(*a, **k):
                    r = real(*a, **k)
                    os.truncate(path, off)
                    return r
                torch.load = load
            os._exit(main([a.format(path=path, out=out, good=src) for a in command]))
        _, status = os.waitpid(pid, 0)
        results[off] = {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            "rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "err": open(err).read(),
            "out_exists": os.path.exists(out),
        }
    print(json.dumps(results))
    """
)


def _cut_runs(tmp_path, mode, command=("convert", "{path}", "{out}")):
    sd = {f"layer{i}.weight": torch.randn(64, 64, 3, 3) for i in range(4)}  # ~2.4 MB
    torch.save(sd, tmp_path / "good.pt")
    size = (tmp_path / "good.pt").stat().st_size
    offsets = sorted({0, 22, 100, 4096, size // 3, size // 2, size - 200, size - 22, size - 1})
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _FORKED, str(tmp_path / "good.pt"), str(work), mode, json.dumps(offsets), json.dumps(command)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return sd, work, json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_truncated_pt_is_one_line_exit_two(tmp_path):
    _, _, results = _cut_runs(tmp_path, "cut")
    for off, r in results.items():
        assert r["signal"] == 0, f"cut at {off}: killed by signal {r['signal']}"
        assert r["rc"] == 2, f"cut at {off}: rc {r['rc']}: {r['err']}"
        assert f"cut{off}.pt" in r["err"] and "Traceback" not in r["err"], r["err"]
        assert len(r["err"].strip().splitlines()) == 1, r["err"]
        assert not r["out_exists"]


@pytest.mark.parametrize(
    "command",
    [
        ("convert", "{path}", "{out}"),
        ("convert", "{path}", "{out}", "--layout", "keras"),
        ("diff", "{path}", "{good}"),
    ],
    ids=["copy", "layout", "diff"],
)
def test_a_pt_shrunk_while_reading_never_dies_of_a_signal(tmp_path, command):
    sd, work, results = _cut_runs(tmp_path, "shrink", command)
    for off, r in results.items():
        assert r["signal"] == 0, f"shrunk to {off} while reading: killed by signal {r['signal']}"
        assert r["rc"] in (0, 2), f"shrunk to {off}: rc {r['rc']}: {r['err']}"
        assert "Traceback" not in r["err"], r["err"]
        assert "Bad address" not in r["err"], f"shrunk to {off}: the message blames the output: {r['err']}"
        if r["rc"] == 0:  # read before the cut: then the result is the whole, right one
            if command[0] == "convert" and len(command) == 3:
                assert_same(sd, load_file(work / f"cut{off}.safetensors"))
        else:
            assert len(r["err"].strip().splitlines()) == 1 and not r["out_exists"], r["err"]


def test_a_pt_changed_while_copied_for_mapping_is_refused(tmp_path, capsys, monkeypatch):
    import shutil

    torch.save(state_dict(), tmp_path / "m.pt")
    real = shutil.copyfile

    def racing(src, dst, **kw):  # another process rewrites the file while it is copied
        real(src, dst, **kw)
        with open(src, "ab") as fh:
            fh.write(b"more")

    monkeypatch.setattr(shutil, "copyfile", racing)
    rc, out = cli(capsys, "convert", tmp_path / "m.pt", tmp_path / "m.safetensors")
    assert rc == 2 and "changed while it was read" in out and "m.pt" in out, out
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]  # nothing left behind, the private copy included


# --------------------------------------------------------------------------- Keras 3 files


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    if needs_keras.args[0]:
        pytest.skip("needs Keras 3")
    from xconv._optional import require

    keras = require("keras")
    folder = tmp_path_factory.mktemp("keras")

    @keras.saving.register_keras_serializable(package="corpus")
    class Scale(keras.layers.Layer):
        """A per-channel learned scale: a custom layer holding its own weight."""

        def build(self, shape):
            self.alpha = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="alpha")

        def call(self, x):
            return x * self.alpha

    keras.utils.set_random_seed(3)
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = Scale(name="scale")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(2, name="head")(x)
    custom = keras.Model(inp, out, name="custom")
    custom.save(folder / "custom.keras")
    custom.save_weights(folder / "custom.weights.h5")

    seq = keras.Sequential(
        [keras.Input((10, 10, 3)), keras.layers.Conv2D(6, 3, name="c1"), keras.layers.BatchNormalization(name="bn"),
         keras.layers.ReLU(name="relu"), keras.layers.Flatten(name="flat"), keras.layers.Dense(3, name="fc")],
        name="seq",
    )
    seq.save(folder / "seq.keras")
    seq.save(folder / "seq.h5")  # legacy HDF5 model file

    block = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(4, 3, padding="same", name="inner_conv")], name="block")
    inp = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 1, name="stem")(inp)
    y = block(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    nested = keras.Model(inp, keras.layers.Dense(2, name="out")(y), name="nested")
    nested.save(folder / "nested.keras")
    return folder


@needs_keras
@pytest.mark.parametrize("name", ["seq.keras", "seq.h5", "nested.keras"])
def test_keras_model_to_torch_and_back(keras_files, tmp_path, capsys, name):
    src = keras_files / name
    rc, out = cli(capsys, "convert", src, tmp_path / "m.safetensors", "--quiet")
    assert rc == 0, out
    rc, out = cli(capsys, "diff", src, tmp_path / "m.safetensors")
    assert rc == 0, out
    rc, out = cli(capsys, "convert", tmp_path / "m.safetensors", tmp_path / "back.weights.h5", "--arch", src, "--quiet")
    assert rc == 0, out
    rc, out = cli(capsys, "diff", tmp_path / "back.weights.h5", tmp_path / "m.safetensors", "--arch", src)
    assert rc == 0, out
    diff_self(capsys, src)


@needs_keras
def test_legacy_h5_and_keras_file_of_one_model_are_equal(keras_files, capsys):
    rc, out = cli(capsys, "diff", keras_files / "seq.h5", keras_files / "seq.keras")
    assert rc == 0, out
    rc, out = cli(capsys, "inspect", keras_files / "seq.h5")
    assert rc == 0 and "fc" in out, out


@needs_keras
def test_keras_custom_layer_weights(keras_files, tmp_path, capsys):
    src = keras_files / "custom.keras"
    rc, out = cli(capsys, "inspect", src)
    assert rc == 0 and "scale" in out, out  # the custom layer's own weight is listed
    diff_self(capsys, src)
    diff_self(capsys, keras_files / "custom.weights.h5")
    rc, out = cli(capsys, "convert", src, tmp_path / "c.weights.h5", "--quiet")
    assert rc == 0, out
    # to PyTorch: xconv has no translation for the user's layer; it must say so, naming it
    rc, out = cli(capsys, "convert", src, tmp_path / "c.safetensors")
    assert rc in (0, 2), out
    if rc == 2:
        assert "Scale" in out and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
        assert not (tmp_path / "c.safetensors").exists()


@needs_keras
@pytest.mark.parametrize(
    "arch",
    [False, True],
    ids=["plain", "arch"],
)
def test_a_keras_model_and_its_own_weights_file_diff_equal(keras_files, capsys, arch):
    src = keras_files / "custom.keras"
    rc, out = cli(capsys, "diff", src, keras_files / "custom.weights.h5", *(["--arch", src] if arch else []))
    assert rc == 0, out


def test_quiet_silences_the_unwrap_note_and_compare_takes_checkpoints(tmp_path, capsys):
    sd = state_dict()
    torch.save({"epoch": 90, "state_dict": sd, "state_dict_ema": sd}, tmp_path / "checkpoint.pth")
    rc, out = cli(capsys, "convert", tmp_path / "checkpoint.pth", tmp_path / "m.safetensors", "--quiet")
    assert rc == 0 and out == "", out
    rc, out = cli(capsys, "inspect", tmp_path / "checkpoint.pth")  # the next command notes again
    assert rc == 0 and "note:" in out, out
    from xconv.cli._sources import load_state_dict_file

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.fc = torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(8, 5)

    net = Net()
    lightning_ckpt(tmp_path / "last.ckpt", sd)
    torch.save({"state_dict_ema": sd, "state_dict": {k: v * 0 for k, v in sd.items()}}, tmp_path / "ema.pth")
    load_state_dict_file(net, f"{tmp_path / 'ema.pth'}:state_dict_ema")
    assert_same(sd, net.state_dict())
    with pytest.raises(Exception, match="does not fit Net"):  # Lightning's 'model.' prefix: named, not guessed
        load_state_dict_file(net, str(tmp_path / "last.ckpt"))


def test_timm_train_checkpoint_with_args_and_numpy_metrics_is_read(tmp_path, capsys):
    """timm's train.py saves its argparse Namespace beside the weights, research repos NumPy
    metrics and paths: data that weights_only may build, so the state_dict is read; code is not."""
    import argparse
    import pathlib

    sd = state_dict()
    args = argparse.Namespace(model="resnet18", lr=0.1, output=pathlib.PurePosixPath("/runs/exp1"))
    torch.save(
        {"epoch": 90, "arch": "resnet18", "state_dict": sd, "optimizer": {}, "version": 2, "args": args,
         "metric": np.float64(0.7613), "class_map": np.arange(5)},
        tmp_path / "model_best.pth.tar.pth",
    )  # fmt: skip
    rc, out = cli(capsys, "convert", tmp_path / "model_best.pth.tar.pth", tmp_path / "m.safetensors")
    assert rc == 0, out
    assert "'args'" in out and "'metric'" in out  # named as left out
    assert_same(sd, load_file(tmp_path / "m.safetensors"))

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "canary.txt"), "w"))

    torch.save({"state_dict": sd, "args": args, "hook": Evil()}, tmp_path / "evil.pth")
    rc, out = cli(capsys, "convert", tmp_path / "evil.pth", tmp_path / "e.safetensors")
    assert rc == 2 and "never unpickles" in out and "open" in out, out
    assert not (tmp_path / "canary.txt").exists() and not (tmp_path / "e.safetensors").exists()


@needs_keras
def test_a_lightning_checkpoint_goes_into_keras_through_its_model_prefix(tmp_path, capsys):
    """A Lightning module's state_dict names every weight 'model.<name>': into a Keras
    architecture (--arch) it is read without the prefix, with a note; names that do not match
    even without a prefix are still refused."""
    import keras

    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inp, keras.layers.Dense(2, name="fc")(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "arch.keras")
    rc, out = cli(capsys, "convert", tmp_path / "arch.keras", tmp_path / "plain.pt", "--quiet")
    assert rc == 0, out
    sd = torch.load(tmp_path / "plain.pt", weights_only=True)
    tuned = {k: (v + 1 if v.is_floating_point() else v) for k, v in sd.items()}
    lightning_ckpt(tmp_path / "last.ckpt", tuned)
    rc, out = cli(capsys, "convert", tmp_path / "last.ckpt", tmp_path / "back.weights.h5", "--arch", tmp_path / "arch.keras")
    assert rc == 0, out
    assert "'model.'" in out, out
    rc, out = cli(capsys, "convert", tmp_path / "back.weights.h5", tmp_path / "again.pt", "--arch", tmp_path / "arch.keras", "--quiet")
    assert rc == 0, out
    again = torch.load(tmp_path / "again.pt", weights_only=True)
    assert_same({k: v for k, v in tuned.items() if k in again}, again)
    torch.save({"model.conv.weight": tuned["conv.weight"], "head.fc.bias": tuned["fc.bias"]}, tmp_path / "mixed.pt")
    rc, out = cli(capsys, "convert", tmp_path / "mixed.pt", tmp_path / "no.weights.h5", "--arch", tmp_path / "arch.keras")
    assert rc == 2 and "does not match" in out and not (tmp_path / "no.weights.h5").exists(), out
