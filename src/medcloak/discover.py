"""Walking the inputs: every regular file below each input, in a stable order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UsageError
from .model import Source


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield path


def discover(inputs: Iterable[Path], exclude: Iterable[Path] = ()) -> list[Source]:
    """Every input object (one file each, for DICOM), sorted, without the excluded trees."""
    excluded = [p.resolve() for p in exclude]
    out: list[Source] = []
    seen: set[Path] = set()
    for raw in inputs:
        root = Path(raw)
        if not root.exists():
            raise UsageError(f"input does not exist: {root}")
        for path in _files(root):
            resolved = path.resolve()
            if resolved in seen or any(resolved.is_relative_to(e) for e in excluded):
                continue
            seen.add(resolved)
            out.append(Source(str(path), "dicom"))
    return out
