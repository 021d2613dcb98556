"""TensorFlow's start-up log lines are hidden where xconv imports TensorFlow, unless the user asks."""

import os
import re
import subprocess
import sys

import pytest

from conftest import needs_keras
from xconv import _quiet

# what TensorFlow 2.21 prints while it loads: absl's banner, then records like
# "I0000 00:00:1796190675.887351    6315 port.cc:153] oneDNN custom operations are on. ..."
ABSL_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\])", re.M)
RECORD = b"I0000 00:00:1796190675.887351    6315 port.cc:153] oneDNN custom operations are on.\n"


def _env(**override):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, **override}


@needs_keras
@pytest.mark.slow
def test_cli_hides_tensorflow_start_up_lines_and_follows_the_users_level(tmp_path):
    """`xconv convert zoo:...` imports TensorFlow in a fresh process: with no level set, stderr holds
    none of TensorFlow's start-up lines; with the user's TF_CPP_MIN_LOG_LEVEL=0 they are there."""
    command = [sys.executable, "-m", "xconv.cli.main", "convert", "zoo:single_conv"]
    shown = subprocess.run([*command, str(tmp_path / "a.pt")], capture_output=True, text=True, env=_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert shown.returncode == 0, shown.stderr[-2000:]
    if not ABSL_LINE.search(shown.stderr):
        pytest.skip("this TensorFlow prints no start-up lines here, so there is nothing to hide")
    hidden = subprocess.run([*command, str(tmp_path / "b.pt")], capture_output=True, text=True, env=_env())
    assert hidden.returncode == 0, hidden.stderr[-2000:]
    assert "wrote" in hidden.stdout
    assert not ABSL_LINE.search(hidden.stderr), hidden.stderr


def test_the_users_level_is_kept(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    _quiet.set_tf_log_default()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    _quiet.set_tf_log_default()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


@pytest.mark.parametrize("level, kept", [("0", True), ("1", False), ("2", False), (None, True)])
def test_start_up_filter_on_file_descriptor_2(monkeypatch, capfd, level, kept):
    """What C code writes to fd 2 inside tf_startup_quiet comes back, less the records the level
    hides; the user's 0 (and no level: TensorFlow's own default is 0) keeps them."""
    if level is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    with _quiet.tf_startup_quiet():
        os.write(2, b"before\n" + RECORD + b"E0000 00:00:1796190675.9    6315 x.cc:1] an error\nafter\n")
    err = capfd.readouterr().err
    assert err.startswith("before\n") and err.endswith("E0000 00:00:1796190675.9    6315 x.cc:1] an error\nafter\n")
    assert ("port.cc:153" in err) is kept


def test_start_up_filter_gives_back_fd_2_on_error(monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with pytest.raises(ImportError), _quiet.tf_startup_quiet():
        os.write(2, b"said before the error\n" + RECORD)
        raise ImportError("no tensorflow")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "said before the error\nafter\n"


@needs_keras
def test_the_suites_own_keras_check_prints_no_start_up_lines():
    """tests/conftest.py asks whether Keras imports at every pytest start: the suite's own run
    showed TensorFlow's start-up lines at its top until it imported Keras the way xconv does."""
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {tests!r}); import conftest; print(conftest.has_keras())"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr[-2000:]
    assert "port.cc" not in proc.stderr and "absl::InitializeLog" not in proc.stderr, proc.stderr


def test_only_a_hidden_records_own_lines_go_with_it():
    """After a hidden record, its continuation (indented, or cpu_feature_guard's 'To enable ...')
    is dropped, but any other line is kept: a traceback or another thread's output that happens
    to follow an INFO record was swallowed until the next record."""
    text = (
        "I0000 00:00:1796190675.887351    6315 cpu_feature_guard.cc:210] This TensorFlow binary is optimized.\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
        "I0000 00:00:1796190675.887351    6315 port.cc:153] oneDNN custom operations are on.\n"
        "    a record's indented second line\n"
        "Traceback (most recent call last):\n"
        "ImportError: something of yours\n"
    )
    assert _quiet.drop_tf_startup_lines(text, 2) == "Traceback (most recent call last):\nImportError: something of yours\n"


@pytest.mark.parametrize("death", ["os.abort()", "os.kill(os.getpid(), signal.SIGSEGV)"])
def test_a_crash_inside_the_import_loses_no_line_written_before_it(death):
    """TensorFlow's import can kill the process (an illegal instruction on a CPU without AVX, a
    segfault): what it wrote to fd 2 just before is the one clue, and was lost while it sat in a
    temporary file. The forwarder writes it on, filtered, also after the crash."""
    code = (
        "import os, signal\nfrom xconv import _quiet\nwith _quiet.tf_startup_quiet():\n"
        f"    os.write(2, {RECORD!r} + b'F0000 00:00:1.2    6315 cpu.cc:9] no AVX on this CPU\\n' + b'partial, no newline')\n"
        f"    {death}\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(TF_CPP_MIN_LOG_LEVEL="2"), timeout=60)
    assert proc.returncode < 0, proc
    assert b"no AVX on this CPU\n" in proc.stderr and b"partial, no newline" in proc.stderr, proc.stderr
    assert b"port.cc:153" not in proc.stderr


def test_the_forwarder_drains_its_pipe_when_stderr_is_gone():
    """A closed stderr must not block the writer (a full pipe nobody reads) nor raise."""
    read_end, write_end = os.pipe()
    dead_read, dead_write = os.pipe()
    os.close(dead_read)  # writing to dead_write now fails (EPIPE)
    payload = b"x" * 300_000 + b"\n"  # more than a pipe holds
    import threading

    writer = threading.Thread(target=lambda: (os.write(write_end, payload), os.close(write_end)))
    writer.start()
    _quiet._forward(read_end, dead_write, 2)
    writer.join(timeout=10)
    assert not writer.is_alive()
    os.close(read_end)
    os.close(dead_write)
