"""JSON from files, with a nesting limit checked before the parser recurses."""

from __future__ import annotations

import json
import re

import numpy as np

MAX_DEPTH = 200  # Keras configs of deep networks nest about 10-20 levels
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


def depth(raw: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text (strings skipped)."""
    marks = _BRACKETS.findall(_STRINGS.sub(b"", raw))
    if not marks:
        return 0
    steps = np.frombuffer(b"".join(marks), np.uint8)
    delta = np.where((steps == ord("[")) | (steps == ord("{")), 1, -1)
    return int(np.cumsum(delta).max())


def loads(raw: bytes | str, what: str, max_depth: int = MAX_DEPTH):
    """``json.loads`` that refuses deep nesting (a RecursionError otherwise) with ValueError."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    d = depth(raw)
    if d > max_depth:
        raise ValueError(f"{what} nests {d} levels deep (the limit is {max_depth})")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{what} is not valid JSON ({type(exc).__name__})") from exc
