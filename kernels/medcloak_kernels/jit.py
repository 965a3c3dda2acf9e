"""The one place where the kernels' jit options are set."""

from __future__ import annotations

import types
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


def serial_copy(parallel: Any) -> Callable[..., Any]:
    """The code of a :func:`parallel_kernel` compiled without threads, under its own name
    (``<name>_serial``). numba's on-disk cache keys a function by its module, name and line and
    its argument types, not by its options: a copy under the same name would load whichever of
    the two was compiled first (measured: a "serial" face zone running the threaded code)."""
    fn = parallel.py_func
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + "_serial"
    copy.__doc__ = fn.__doc__
    return kernel(copy)
