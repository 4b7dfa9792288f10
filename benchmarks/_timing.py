"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/bench_x.py``)."""
from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int) -> tuple:
    """``(median seconds over `repeats` calls, value of a first warm-up call)``."""
    out = fn()  # warm-up (and the value to compare)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out
