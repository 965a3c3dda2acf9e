"""The one place where the kernels' jit options are set."""

from __future__ import annotations

from typing import Any, Callable

import numba

#: nopython, released GIL (frames in threads), on-disk cache (fast first call in a new process)
OPTIONS: dict[str, Any] = {"nopython": True, "nogil": True, "cache": True}


def kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    return numba.jit(**OPTIONS)(fn)
