"""One family of errors, each saying what was wrong, what was received and the fix."""

from __future__ import annotations

__all__ = [
    "XconvError",
    "LayoutError",
    "UnsupportedLayerError",
    "MismatchedModelsError",
    "MissingDependencyError",
    "BadInputError",
]


class XconvError(Exception):
    """Base class of every error xconv raises on purpose (the CLI prints these without a traceback).

    ``cli``: the same message in the command line's words, where they differ from Python's
    (``--force`` for ``force=True``); ``xconv`` prints it instead of the Python one.

    >>> err = BadInputError("'a.pt' exists; pass force=True to overwrite it.", cli="'a.pt' exists; pass --force to overwrite it.")
    >>> str(err), err.for_cli()
    ("'a.pt' exists; pass force=True to overwrite it.", "'a.pt' exists; pass --force to overwrite it.")
    """

    def __init__(self, *args, cli: str | None = None):
        super().__init__(*args)
        self.cli = cli

    def for_cli(self) -> str:
        """The message as the command line says it."""
        return self.cli or str(self)


class LayoutError(XconvError, ValueError):
    """A weight array has a shape that does not fit the layout asked for."""


class UnsupportedLayerError(XconvError):
    """A layer (or module) type has no entry in the registry."""


class MismatchedModelsError(XconvError):
    """Two models that should be twins do not line up (names, order, shapes or configuration)."""


class MissingDependencyError(XconvError, ImportError):
    """An optional framework is not installed."""


class BadInputError(XconvError, ValueError):
    """An input tensor, file or name given by the user cannot be used."""
