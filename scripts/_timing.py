"""Timing shared by the benchmark scripts: round-robin medians, so that noise hits all alike."""

from __future__ import annotations

import statistics
import time


def median_times(fns, repeat: int) -> list[float]:
    """Median seconds of each function, after one warm-up call each, run round-robin."""
    for fn in fns:
        fn()  # warm-up: graph tracing, allocator, oneDNN primitive caches
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, bucket in zip(fns, times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(b) for b in times]
