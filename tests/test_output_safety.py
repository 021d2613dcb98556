"""The output rule's edges: whom an error blames, how a file is moved into place, Keras custom classes.

- an input that fails while a streamed writer reads it is named as the input (not "Cannot write
  <output>"), while disk-side failures still name the output;
- without force a file that appears between the check and the move is never replaced, by
  renameat2(RENAME_NOREPLACE) and by each fallback; with force the new file is flushed before
  the rename and the folder after it, and a reader of the old file keeps its bytes;
- a .keras file with a custom class Keras cannot find gives one line naming the class and the fix.
"""

import ctypes
import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import needs_keras
from xconv.errors import BadInputError, LayoutError
from xconv.files import Outputs, write_tensors
from xconv.files import output as output_mod

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".xconv-") or n.endswith(".partial"))


def cli(*args, before="", cwd=None):
    """``xconv`` in a child process, ``before`` run first (a patch standing in for another process or a full disk)."""
    code = "import sys\n" + textwrap.dedent(before) + "\nfrom xconv.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd)


def one_line(proc):
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-3000:]
    return err


# ---------------------------------------------------------------- whom an error blames

# another process cuts the input once its header has been read and the streamed read has begun
CUT_AFTER_OPEN = """
import os
from xconv.files import stream
_open = stream._Input.__init__
def _cut(self, path):
    _open(self, path)
    os.truncate(path, os.path.getsize(path) // 2)
stream._Input.__init__ = _cut
"""


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("target, extra", [("o.safetensors", ["--layout", "keras"]), ("o.pt", ["--layout", "keras"]), ("o.pt", [])])
def test_an_input_cut_during_a_streamed_write_is_blamed_on_the_input(tmp_path, target, extra, force):
    write_tensors(tmp_path / "in.safetensors", {f"w{i}": np.ones((3, 3, 8, 16), np.float32) for i in range(4)}, layout="torch")
    old = b""
    if force:
        write_tensors(tmp_path / target, {"old": np.ones(3, np.float32)})
        old = (tmp_path / target).read_bytes()
    proc = cli("convert", tmp_path / "in.safetensors", tmp_path / target, *extra, *(["--force"] if force else []), before=CUT_AFTER_OPEN)
    err = one_line(proc)
    assert f"error: '{tmp_path / 'in.safetensors'}' was truncated while it was read" in err, err
    assert "Cannot write" not in err, err
    assert leftovers(tmp_path) == []
    if force:
        assert (tmp_path / target).read_bytes() == old
    else:
        assert not (tmp_path / target).exists()


@pytest.mark.parametrize("target", ["o.safetensors", "o.pt"])
def test_a_truncated_pt_input_is_blamed_on_the_input(tmp_path, target):
    """.pt -> .safetensors streams (the .pt is read inside the writer); .pt -> .pt reads it first."""
    torch.save({"w": torch.ones(64, 64)}, tmp_path / "in.pt")
    data = (tmp_path / "in.pt").read_bytes()
    (tmp_path / "in.pt").write_bytes(data[: len(data) // 2])
    err = one_line(cli("convert", tmp_path / "in.pt", tmp_path / target))
    assert f"error: Cannot read '{tmp_path / 'in.pt'}'" in err and "truncated or corrupt" in err, err
    assert "Cannot write" not in err
    assert sorted(os.listdir(tmp_path)) == ["in.pt"]


FULL_DISK = """
import errno
from xconv.files import stream
def _full(fd, data, offset):
    raise OSError(errno.ENOSPC, "No space left on device")
stream._pwrite_all = _full
"""


@pytest.mark.parametrize("target, extra", [("o.safetensors", ["--layout", "keras"]), ("o.pt", ["--layout", "keras"])])
def test_a_full_disk_is_still_blamed_on_the_output(tmp_path, target, extra):
    write_tensors(tmp_path / "in.safetensors", {"w": np.ones((3, 3, 8, 16), np.float32)}, layout="torch")
    err = one_line(cli("convert", tmp_path / "in.safetensors", tmp_path / target, *extra, before=FULL_DISK))
    assert f"error: Cannot write '{tmp_path / target}': the disk is full. Nothing was written." in err, err
    assert sorted(os.listdir(tmp_path)) == ["in.safetensors"]


def test_a_name_too_long_is_still_blamed_on_the_output(tmp_path):
    write_tensors(tmp_path / "in.safetensors", {"w": np.ones(4, np.float32)})
    target = tmp_path / ("x" * 300 + ".safetensors")
    err = one_line(cli("convert", tmp_path / "in.safetensors", target, "--layout", "keras"))
    assert f"Cannot write '{target}': the name is too long" in err
    assert sorted(os.listdir(tmp_path)) == ["in.safetensors"]


def test_writer_errors_in_process(tmp_path):
    """The rule at the unit: an OSError on an input names it; one on the temp file, or none, names the output;
    an error about the data gets the output in front (keeping its command-line words); the temp's name
    never reaches the user."""
    src = tmp_path / "in.bin"
    src.write_bytes(b"x")
    out = tmp_path / "o.bin"

    def run(write):
        with pytest.raises(BadInputError) as info:
            with Outputs([src]) as o:
                o.write(out, write)
        assert os.listdir(tmp_path) == ["in.bin"]
        return info.value

    def eio_on_input(tmp):
        raise OSError(errno.EIO, "Input/output error", str(src))

    def full_temp(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", tmp)

    def wrapped(tmp):  # torch.save's way: a RuntimeError around the OSError
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as exc:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0") from exc

    def about_data(tmp):
        raise BadInputError("tensor 'w' is complex128, which safetensors cannot hold.", cli="tensor 'w': use --layout")

    def names_temp(tmp):
        raise BadInputError(f"Cannot read {tmp[:-len('.partial')] + '.st.partial'!r}: cut short.")

    assert str(run(eio_on_input)) == f"Cannot read {str(src)!r}: Input/output error. Nothing was written."
    assert str(run(full_temp)) == f"Cannot write {str(out)!r}: the disk is full. Nothing was written."
    assert str(run(wrapped)) == f"Cannot write {str(out)!r}: the disk quota is exceeded. Nothing was written."
    err = run(about_data)
    assert str(err) == f"Cannot write {str(out)!r}: tensor 'w' is complex128, which safetensors cannot hold."
    assert err.for_cli() == f"Cannot write {str(out)!r}: tensor 'w': use --layout"
    assert str(run(names_temp)) == f"Cannot read {str(out)!r}: cut short."

    def input_bad(tmp):
        raise LayoutError(f"{str(src)!r}: tensor 'w' has 5 axes")

    with pytest.raises(LayoutError) as info:
        with Outputs([src]) as o:
            o.write(out, input_bad)
    assert str(info.value) == f"{str(src)!r}: tensor 'w' has 5 axes"


# ---------------------------------------------------------------- moving into place


def _fill(out, path, text):
    tmp = out.add(path)
    with open(tmp, "w") as fh:
        fh.write(text)
    return tmp


def _no_renameat2(monkeypatch):
    monkeypatch.setattr(output_mod, "rename_noreplace", lambda src, dst: False)


def _no_links(monkeypatch):
    _no_renameat2(monkeypatch)

    def refuse(src, dst, *a, **k):
        raise OSError(errno.EPERM, "Operation not permitted", src)

    monkeypatch.setattr(os, "link", refuse)


@pytest.mark.parametrize("how", ["renameat2", "link", "exclusive create"])
def test_a_file_that_appears_before_the_move_is_never_replaced(tmp_path, monkeypatch, how):
    if how == "renameat2" and not output_mod._renameat2():
        pytest.skip("no renameat2 in this libc")
    {"renameat2": lambda m: None, "link": _no_renameat2, "exclusive create": _no_links}[how](monkeypatch)
    # the way works on its own
    with Outputs() as out:
        _fill(out, tmp_path / "a.txt", "ours")
    assert (tmp_path / "a.txt").read_text() == "ours" and leftovers(tmp_path) == []
    # and refuses a file another process made after the check
    with pytest.raises(BadInputError, match="appeared while xconv was writing it"):
        with Outputs() as out:
            _fill(out, tmp_path / "b.txt", "ours")
            (tmp_path / "b.txt").write_text("theirs")
    assert (tmp_path / "b.txt").read_text() == "theirs"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_renameat2_is_used_and_never_replaces(tmp_path):
    if not output_mod._renameat2():
        pytest.skip("no renameat2 in this libc")
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    try:
        done = output_mod.rename_noreplace(str(tmp_path / "a"), str(tmp_path / "c"))
    except OSError as exc:  # pragma: no cover - e.g. a file system without the flag would return False
        pytest.fail(f"renameat2 failed: {exc}")
    if not done:
        pytest.skip("this file system refuses RENAME_NOREPLACE")
    assert sorted(os.listdir(tmp_path)) == ["b", "c"]
    with pytest.raises(FileExistsError):
        output_mod.rename_noreplace(str(tmp_path / "c"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_text() == "b" and (tmp_path / "c").read_text() == "a"


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS])
def test_a_system_that_refuses_renameat2_falls_back_to_link(tmp_path, monkeypatch, code):
    """EINVAL (a file system without the flag) or ENOSYS (an old kernel): the link() way, same rule."""
    calls = []

    def refusing(*args):
        calls.append(args)
        ctypes.set_errno(code)
        return -1

    monkeypatch.setattr(output_mod, "_NOREPLACE", [refusing])
    with Outputs() as out:
        _fill(out, tmp_path / "a.txt", "ours")
    assert (tmp_path / "a.txt").read_text() == "ours" and leftovers(tmp_path) == [] and len(calls) == 1
    with pytest.raises(BadInputError, match="appeared"):
        with Outputs() as out:
            _fill(out, tmp_path / "b.txt", "ours")
            (tmp_path / "b.txt").write_text("theirs")
    assert (tmp_path / "b.txt").read_text() == "theirs" and leftovers(tmp_path) == []
    # ENOSYS is the kernel's answer for good: not asked again; EINVAL depends on the file system
    assert len(calls) == (1 if code == errno.ENOSYS else 2)


def test_force_flushes_the_new_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) if os.path.exists("/proc/self/fd") else fd))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    with Outputs(force=True) as out:
        tmp = _fill(out, tmp_path / "a.txt", "new")
        _fill(out, tmp_path / "b.txt", "new file")  # nothing replaced: not flushed (a crash loses no old data)
    assert (tmp_path / "a.txt").read_text() == "new" and (tmp_path / "b.txt").read_text() == "new file"
    if os.path.exists("/proc/self/fd"):
        assert events == [("fsync", os.path.basename(tmp)), ("replace", "a.txt"), ("replace", "b.txt"), ("fsync", tmp_path.name)], events
    else:  # pragma: no cover
        assert [e[0] for e in events] == ["fsync", "replace", "replace", "fsync"]
    events.clear()
    with Outputs(force=False) as out:  # a new file without force: no flush, no replace
        _fill(out, tmp_path / "c.txt", "c")
    assert events == []


def test_force_keeps_the_old_bytes_for_an_open_reader(tmp_path):
    """--force replaces the target by a rename: a reader holding the old file reads it whole; the path
    gets a new inode with the new content; no temp file is left."""
    write_tensors(tmp_path / "in.safetensors", {"w": np.full((3, 3, 8, 16), 7, np.float32)}, layout="torch")
    write_tensors(tmp_path / "o.safetensors", {"old": np.arange(50000, dtype=np.float32)})
    old = (tmp_path / "o.safetensors").read_bytes()
    with open(tmp_path / "o.safetensors", "rb") as reader:
        inode = os.fstat(reader.fileno()).st_ino
        reader.read(100)
        proc = cli("convert", tmp_path / "in.safetensors", tmp_path / "o.safetensors", "--layout", "keras", "--force", "--quiet")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert old[:100] + reader.read() == old
    assert os.stat(tmp_path / "o.safetensors").st_ino != inode
    from xconv.files import read_tensors

    back = read_tensors(tmp_path / "o.safetensors").tensors
    assert list(back) == ["w"] and np.asarray(back["w"]).shape == (8, 16, 3, 3)  # moved to the Keras layout
    assert leftovers(tmp_path) == []


def test_force_puts_replaced_files_back_when_a_later_move_fails(tmp_path, monkeypatch):
    """A run of several outputs with --force: the first replaces its file, the second move fails;
    the first file's old bytes come back, the new file the run made goes, nothing is left."""
    (tmp_path / "a.txt").write_bytes(b"old a")
    (tmp_path / "b.txt").write_bytes(b"old b")
    place, calls = Outputs._place, []

    def second_fails(self, tmp, real, path, label):
        calls.append(real)
        if len(calls) == 3:
            raise OSError(errno.EIO, "I/O error", real)
        return place(self, tmp, real, path, label)

    monkeypatch.setattr(Outputs, "_place", second_fails)
    with pytest.raises(BadInputError, match="Cannot write"):
        with Outputs(force=True) as out:
            for name in ("a.txt", "new.txt", "b.txt"):
                out.write(str(tmp_path / name), lambda tmp, n=name: open(tmp, "wb").write(f"new {n}".encode()))
    assert len(calls) == 3
    assert (tmp_path / "a.txt").read_bytes() == b"old a" and (tmp_path / "b.txt").read_bytes() == b"old b"
    assert not (tmp_path / "new.txt").exists()
    assert leftovers(tmp_path) == []
    monkeypatch.setattr(Outputs, "_place", place)
    with Outputs(force=True) as out:  # and when every move succeeds, no backup stays behind
        out.write(str(tmp_path / "a.txt"), lambda tmp: open(tmp, "wb").write(b"new a"))
        out.write(str(tmp_path / "b.txt"), lambda tmp: open(tmp, "wb").write(b"new b"))
    assert (tmp_path / "a.txt").read_bytes() == b"new a" and sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_without_force_an_existing_output_is_refused_before_any_work(tmp_path):
    write_tensors(tmp_path / "in.safetensors", {"w": np.ones(4, np.float32)})
    (tmp_path / "o.safetensors").write_bytes(b"keep")
    err = one_line(cli("convert", tmp_path / "in.safetensors", tmp_path / "o.safetensors"))
    assert "exists; pass --force to overwrite it" in err
    assert (tmp_path / "o.safetensors").read_bytes() == b"keep" and leftovers(tmp_path) == []


# ---------------------------------------------------------------- Keras custom classes

LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="demo")
class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Shift(keras.layers.Layer):  # not registered
    def call(self, x):
        return x + 1.0
'''

MAKE = """
import keras, xconv_demo_layers as L
for name, layers in (("registered", [L.Scale(3.0)]), ("unregistered", [L.Shift(), L.Shift(name="again")])):
    x = inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    for layer in layers:
        x = layer(x)
    keras.Model(inp, x).save(name + ".keras")
"""


@pytest.fixture(scope="module")
def custom_keras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("custom")
    (folder / "xconv_demo_layers.py").write_text(LAYERS)
    proc = subprocess.run([sys.executable, "-c", MAKE], cwd=folder, capture_output=True, text=True, env={**ENV, "PYTHONPATH": str(folder)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@needs_keras
@pytest.mark.parametrize("model, cls", [("unregistered", "Shift"), ("registered", "Scale")])
def test_a_custom_class_keras_cannot_find_gives_one_line_with_the_fix(custom_keras, model, cls):
    """Not registered, or registered in a module nobody imported: the same line, naming the class and its module."""
    proc = cli("convert", f"{model}.keras", "o.weights.h5", cwd=custom_keras)
    err = one_line(proc)
    assert f"Cannot load Keras model '{model}.keras': Keras cannot find its custom class '{cls}' (module 'xconv_demo_layers')" in err, err
    assert "@keras.saving.register_keras_serializable()" in err and "pass --import xconv_demo_layers" in err
    assert "config" not in err.lower() and "{" not in err and len(err) < 600, err
    assert not (custom_keras / "o.weights.h5").exists() and leftovers(custom_keras) == []


@needs_keras
def test_a_registered_custom_class_loads_once_its_module_is_imported(custom_keras, tmp_path):
    out = tmp_path / "o.weights.h5"
    proc = cli("convert", "registered.keras", out, "--quiet", before="import xconv_demo_layers", cwd=custom_keras)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and leftovers(tmp_path) == []
