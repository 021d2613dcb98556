"""Other libraries' warnings, silenced around the one call of theirs that xconv makes.

Exporters and runtimes warn about things that are theirs, not the user's (torch.onnx that
torchvision is missing, pytree deprecations inside torch.export, tf2onnx's notes). Each is
silenced where xconv calls it, never for the process: ``warnings.catch_warnings()`` restores the
filters, and the loggers get their levels back, when the call ends, also on error.

TensorFlow's C++ start-up lines are the one process-wide setting: before TensorFlow's first
import (``_optional.require``) xconv sets ``TF_CPP_MIN_LOG_LEVEL=2`` where the user has not set it,
and drops the lines that level hides but TensorFlow 2.21 prints anyway (:func:`tf_startup_quiet`,
through a forwarding process, so that a crash inside the import loses no line written before it).
A level the user set, ``0`` included, is theirs and is followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """Python warnings off, and ``loggers`` (names) at ERROR, for the body of the ``with`` only.

    >>> import logging, warnings
    >>> with quiet("some.library"):
    ...     warnings.warn("not shown")
    ...     logging.getLogger("some.library").warning("not shown either")
    >>> logging.getLogger("some.library").level == logging.NOTSET
    True
    """
    saved = [(logger, logger.level) for logger in map(logging.getLogger, loggers)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger, _ in saved:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in saved:
                logger.setLevel(level)


# --- TensorFlow's start-up log lines ---------------------------------------------------------
#
# TensorFlow's C++ side logs through absl. TF_CPP_MIN_LOG_LEVEL (0 all, 1 no INFO, 2 no WARNING,
# 3 no ERROR) still hides what it logs once running, but TensorFlow 2.21 logs some lines while its
# libraries load, before absl's logging is set up, and those ignore the variable: absl's banner
# "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR" and
# "I0000 ... port.cc:153] oneDNN custom operations are on ...", once per library that carries it.
# No variable reaches them (TF_ENABLE_ONEDNN_OPTS=0 would, by turning oneDNN off and changing
# TensorFlow's numbers), so xconv reads file descriptor 2 around TensorFlow's first import and
# drops the records the level hides; everything else is forwarded, in order, as it arrives.

TF_LOG_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
TF_DEFAULT_LEVEL = "2"  # INFO and WARNING hidden, ERROR shown
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl's record prefix: severity letter, MMDD (0000 before absl is set up), time, thread, file:line]
_ABSL_RECORD = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s\]]+:\d+\] ")
# a record's own further lines: indented, or cpu_feature_guard's "To enable the following instructions: ..."
_CONTINUATION = re.compile(r"^(\s+\S|To enable the following instructions)")
_HIDDEN = {"I": 1, "W": 2, "E": 3}  # severity -> lowest level that hides it (F, fatal, always shows)


def tf_log_level() -> int:
    """The level TensorFlow's C++ logging runs at: ``TF_CPP_MIN_LOG_LEVEL``, 0 where unset or odd."""
    try:
        return int(os.environ.get(TF_LOG_VARIABLE, "0"))
    except ValueError:
        return 0


def set_tf_log_default() -> None:
    """``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it (then theirs stands, also ``0``)."""
    os.environ.setdefault(TF_LOG_VARIABLE, TF_DEFAULT_LEVEL)


class _StartupFilter:
    """Judges stderr one line at a time: False for absl records ``level`` hides, their own
    continuation lines, and absl's banner; True for everything else."""

    def __init__(self, level: int) -> None:
        self.level, self.dropping = level, False

    def keep(self, line: str) -> bool:
        """Whether ``line`` (one line of stderr, with or without its newline) is shown."""
        if self.level <= 0:
            return True
        record = _ABSL_RECORD.match(line)
        if line.rstrip("\r\n") == _ABSL_BANNER:
            self.dropping = False  # the banner alone: what follows it is judged by itself
            return False
        if record:
            self.dropping = self.level >= _HIDDEN.get(record.group(1), 99)
            return not self.dropping
        if self.dropping and _CONTINUATION.match(line):
            return False  # a hidden record's second line
        self.dropping = False  # anything else (another thread's output, a traceback) is never swallowed
        return True


def drop_tf_startup_lines(text: str, level: int) -> str:
    """``text`` (what went to stderr) without the absl records ``level`` hides, nor absl's banner.

    A record's continuation lines (cpu_feature_guard's second line) go with it.

    >>> out = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
    ...        "I0000 00:00:1796190675.887351    6315 port.cc:153] oneDNN custom operations are on.\\n"
    ...        "W0000 00:00:1796190675.997784    6315 other.cc:12] a warning\\n"
    ...        "yours\\n")
    >>> print(drop_tf_startup_lines(out, 1), end="")
    W0000 00:00:1796190675.997784    6315 other.cc:12] a warning
    yours
    >>> drop_tf_startup_lines(out, 0) == out
    True
    """
    judge = _StartupFilter(level)
    return "".join(line for line in text.splitlines(keepends=True) if judge.keep(line))


def _forward(source: int, target: int, level: int) -> None:
    """Copy ``source`` to ``target`` line by line as lines arrive, less what ``level`` hides,
    reading until end of file even once ``target`` fails (a writer never blocks on a full pipe).
    A last line without its newline is written at end of file."""
    judge, pending, writable = _StartupFilter(level), b"", True
    while True:
        try:
            chunk = os.read(source, 65536)
        except InterruptedError:
            continue
        except OSError:
            break
        lines = (pending + chunk).split(b"\n") if chunk else [pending]
        pending = lines.pop() if chunk else b""
        out = b"".join(line + b"\n" for line in lines if chunk and judge.keep(line.decode("utf-8", "replace")))
        if not chunk and lines[0] and judge.keep(lines[0].decode("utf-8", "replace")):
            out = lines[0]
        while writable and out:
            try:
                out = out[os.write(target, out):]
            except OSError:  # a closed or full stderr: keep draining, write nothing more
                writable = False
        if not chunk:
            return


@contextlib.contextmanager
def tf_startup_quiet() -> Iterator[None]:
    """Around TensorFlow's first import: file descriptor 2 goes meanwhile into a pipe, whose lines a
    small forwarding process writes on to the real stderr as they arrive, without the lines
    ``TF_CPP_MIN_LOG_LEVEL`` hides.

    The forwarder is a process, not a thread, so that should the import kill this process (an
    illegal instruction on a CPU without AVX, a segfault) every line written before still reaches
    stderr: the pipe's end of file comes with the crash and the forwarder writes what it holds.
    Does nothing where the level is 0 (the user asked for everything), or file descriptor 2
    cannot be redirected, or the forwarder cannot start (then the lines go through unfiltered).
    """
    level = tf_log_level()
    if level <= 0:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        forwarder, write_end = _start_forwarder(saved, level)
    except (OSError, ValueError, subprocess.SubprocessError):  # no pipe or no process: let the lines through
        os.close(saved)
        yield
        return
    try:
        os.dup2(write_end, 2)
        os.close(write_end)
        write_end = -1
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)  # the pipe's last write end closes: the forwarder reads to the end and exits
    finally:
        if write_end >= 0:
            os.close(write_end)
        os.close(saved)
        try:  # a process started inside that still holds the pipe must not hang the caller
            forwarder.wait(timeout=_FORWARDER_WAIT_S)
        except subprocess.TimeoutExpired:
            pass


_FORWARDER_WAIT_S = 10.0


def _start_forwarder(target: int, level: int) -> tuple[subprocess.Popen, int]:
    """A process running this file's :func:`_forward` from a new pipe to ``target``; returns it
    and the pipe's write end (the only one left in this process)."""
    read_end, write_end = os.pipe()
    try:
        # -I -S: the standard library only (this module needs nothing else), no site, no user paths
        forwarder = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), str(level)],
            stdin=read_end, stdout=target, stderr=subprocess.DEVNULL, close_fds=True,
        )  # fmt: skip
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return forwarder, write_end


if __name__ == "__main__":  # the forwarder: stdin (the pipe) -> stdout (the real stderr)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's to handle, not to lose lines over
    _forward(0, 1, int(sys.argv[1]))
