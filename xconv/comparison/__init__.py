"""Capture, align and measure activations of two frameworks, layer by layer."""

from .core import assert_match, compare
from .report import LayerDiff, Report
from .tolerance import DEFAULTS as TOLERANCES

__all__ = ["compare", "assert_match", "Report", "LayerDiff", "TOLERANCES"]
