"""The benchmarks' shared helpers: best of several runs (the least disturbed by the other work of
a shared machine), and the file system a figure was measured on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def file_system(path: Path) -> str:
    """The type and mount point of the file system holding ``path`` (from /proc/mounts), e.g.
    ``ext4 (mounted at /)``: a figure measured on tmpfs is not what a user meets on a disk."""
    best_mount = ("?", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                _dev, mount, kind = line.split()[:3]
                if (str(path.resolve()) + "/").startswith(mount.rstrip("/") + "/") and len(mount) > len(best_mount[1]):
                    best_mount = (kind, mount)
    except OSError:
        pass
    return f"{best_mount[0]} (mounted at {best_mount[1] or '?'})"
