"""Other libraries' warnings, silenced around the one call of theirs that xconv makes.

Exporters and runtimes warn about things that are theirs, not the user's (torch.onnx that
torchvision is missing, pytree deprecations inside torch.export, tf2onnx's notes). Each is
silenced where xconv calls it, never for the process: ``warnings.catch_warnings()`` restores the
filters, and the loggers get their levels back, when the call ends, also on error.
"""

from __future__ import annotations

import contextlib
import logging
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
