"""Other libraries' warnings, silenced around the one call of theirs that xconv makes.

Exporters and runtimes warn about things that are theirs, not the user's (torch.onnx that
torchvision is missing, pytree deprecations inside torch.export, tf2onnx's notes). Each is
silenced where xconv calls it, never for the process: ``warnings.catch_warnings()`` restores the
filters, and the loggers get their levels back, when the call ends, also on error.

TensorFlow's C++ start-up lines are the one process-wide setting: before TensorFlow's first
import (``_optional.require``) xconv sets ``TF_CPP_MIN_LOG_LEVEL=2`` where the user has not set it,
and drops the lines that level hides but TensorFlow 2.21 prints anyway (:func:`tf_startup_quiet`).
A level the user set, ``0`` included, is theirs and is followed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
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
# drops the records the level hides; everything else is written back, in order.

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
    if level <= 0:
        return text
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        record = _ABSL_RECORD.match(line)
        if line.rstrip("\r\n") == _ABSL_BANNER:
            kept_line, dropping = False, False  # the banner alone: what follows it is judged by itself
        elif record:
            dropping = level >= _HIDDEN.get(record.group(1), 99)
            kept_line = not dropping
        elif dropping and _CONTINUATION.match(line):
            kept_line = False  # a hidden record's second line
        else:  # anything else (another thread's output, a traceback) is never swallowed
            kept_line, dropping = True, False
        if kept_line:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def tf_startup_quiet() -> Iterator[None]:
    """Around TensorFlow's first import: what goes to file descriptor 2 meanwhile is held in a
    temporary file, then written back without the lines ``TF_CPP_MIN_LOG_LEVEL`` hides.

    Does nothing where the level is 0 (the user asked for everything: also the way to see every
    line should TensorFlow's import crash the process) or file descriptor 2 cannot be redirected.
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
    import tempfile

    try:
        held = tempfile.TemporaryFile()
    except OSError:  # nowhere to hold the lines: let them through
        os.close(saved)
        yield
        return
    try:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            with contextlib.suppress(OSError):  # a closed or full stderr must not hide the import's own error
                held.seek(0)
                text = held.read().decode("utf-8", "replace")
                rest = memoryview(drop_tf_startup_lines(text, level).encode("utf-8"))
                while rest:
                    rest = rest[os.write(2, rest):]
    finally:
        os.close(saved)
        held.close()
