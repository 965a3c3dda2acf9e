"""The one timing helper of the benchmarks: best of several runs (the least disturbed by the
other work of a shared machine)."""

from __future__ import annotations

import time
from typing import Any, Callable


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
