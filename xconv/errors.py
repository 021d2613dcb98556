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
    """Base class of every error xconv raises on purpose (the CLI prints these without a traceback)."""


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
