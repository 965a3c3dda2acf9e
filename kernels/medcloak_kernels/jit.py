"""The one place where the kernels' jit options are set."""

from __future__ import annotations

from typing import Any, Callable

import numba

#: nopython, released GIL (frames in threads), on-disk cache (fast first call in a new process)
OPTIONS: dict[str, Any] = {"nopython": True, "nogil": True, "cache": True}


def kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    return numba.jit(**OPTIONS)(fn)


#: the same, with loops over independent lines spread over threads (numba.prange). A Dask worker
#: sets numba's thread count to 1, as it shares the machine with the other workers.
PARALLEL: dict[str, Any] = {**OPTIONS, "parallel": True}


def parallel_kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    return numba.jit(**PARALLEL)(fn)
