"""Tolerance policy: defaults by dtype, scaled by each layer's magnitude.

A layer passes when ``max |a - b| <= atol + rtol * max |a|``: a *normwise* test. An
elementwise relative test (``torch.isclose``) fails on ReLU outputs where one side is 1e-9 and
the other exactly 0, which says nothing about the port; the normwise test asks whether the
difference is small *relative to what the layer computes*.

Why these defaults (float32 epsilon is 1.2e-7, float64 2.2e-16):

* float32 ``rtol=1e-4``: a conv with fan-in F accumulates about ``sqrt(F) * eps`` relative
  rounding (F = 4608 for conv5_2: ~8e-6) and other hardware or algorithms (GPU, Winograd,
  FFT, different summation order) add a few times that per layer; 1e-4 leaves that headroom,
  while a porting bug (a wrong filter, padding or flatten order) moves a layer by 1e-2 to 1.
* float64 ``rtol=1e-10``: the strict mode. The same accumulation is ~1e-14 here, so any
  difference above 1e-10 is a porting bug, not float noise.
* ``atol`` is a floor for layers whose output is (almost) all zeros.
"""

from __future__ import annotations

from ..errors import BadInputError

DEFAULTS: dict[str, tuple[float, float]] = {
    # dtype: (rtol, atol)
    "float16": (1e-2, 1e-3),
    "bfloat16": (3e-2, 1e-2),
    "float32": (1e-4, 1e-6),
    "float64": (1e-10, 1e-13),
}


def resolve(dtype: str, rtol: float | None = None, atol: float | None = None) -> tuple[float, float]:
    """The ``(rtol, atol)`` to use: both given, or both from :data:`DEFAULTS` for ``dtype``."""
    if (rtol is None) != (atol is None):
        raise BadInputError(
            f"Give rtol and atol together or not at all (received rtol={rtol}, atol={atol}); "
            f"the defaults for {dtype} are rtol, atol = {DEFAULTS.get(dtype)}."
        )
    if rtol is not None:
        if rtol < 0 or atol < 0:
            raise BadInputError(f"rtol and atol must be >= 0; received rtol={rtol}, atol={atol}.")
        return float(rtol), float(atol)
    try:
        return DEFAULTS[dtype]
    except KeyError:
        raise BadInputError(f"No default tolerance for dtype {dtype!r}; known: {', '.join(DEFAULTS)}.") from None
