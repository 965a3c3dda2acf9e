"""Walking the inputs: a stream of sources, never the whole list in memory.

Every regular file below each input, in a stable order (directories and names sorted), each
sniffed by its first bytes, not its extension. Inputs nested inside other inputs are walked once.
Symbolic links are never followed into directories; a link to a file is taken only when its target
lies inside the inputs given (and then the target itself is met by the walk, so the link is
recorded as skipped, not processed twice); a link leading outside is skipped with that reason, so
a crafted link cannot pull a file from elsewhere into the release.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UsageError
from .model import Source

#: formats and what a run does with them (``--dry-run`` prints these)
ACTIONS = {
    "dicom": "de-identify",
    "jpeg": "strip metadata",
    "png": "strip metadata",
    "tiff": "strip metadata",
    "nifti": "deface, clean the header",
    "analyze": "deface, clean the header",
    "minc": "deface, write as NIfTI",
    "companion": "skip (released with its volume: Analyze .img, BIDS .json sidecar)",
    "unknown": "quarantine (not a supported format)",
    "link-outside": "skip (symbolic link leading outside the inputs)",
    "link-inside": "skip (symbolic link to a file walked anyway)",
}


def sniff(head: bytes) -> str:
    """The format of a file from its first 132 bytes."""
    if head[128:132] == b"DICM":
        return "dicom"  # also when the preamble is a TIFF header (dual-personality files)
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"\x89HDF" or head[:4] in (b"CDF\x01", b"CDF\x02"):
        return "minc"
    from .formats.dicom import sniff as dicom_sniff

    if dicom_sniff(head) is not None:
        return "dicom"
    return "unknown"


VOLUME_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".hdr.gz", ".mnc")


def _volume_kind(path: Path, head: bytes) -> str | None:
    from .formats.volume import sniff as volume_sniff

    if head[:2] == b"\x1f\x8b" or len(head) >= 4 and 348 in (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")) \
            or head[4:7] in (b"n+2", b"ni2"):
        with open(path, "rb") as fh:
            return volume_sniff(fh.read(4096))
    return None


def _companion_of_volume(path: Path) -> bool:
    """An Analyze .img beside its .hdr, or a JSON sidecar beside a volume."""
    name = path.name
    low = name.lower()
    for ext, partners in ((".img", (".hdr",)), (".img.gz", (".hdr", ".hdr.gz")), (".json", VOLUME_SUFFIXES)):
        if low.endswith(ext):
            stem = name[: -len(ext)]
            return any(path.with_name(stem + p).exists() for p in partners)
    return False


def _roots(inputs: Iterable[Path]) -> list[Path]:
    roots = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"input does not exist: {path}")
        roots.append(path.resolve())
    # an input inside another one is walked with it
    return [r for r in dict.fromkeys(roots) if not any(r != o and r.is_relative_to(o) for o in roots)]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(r) for r in roots)


def _source(path: Path, roots: list[Path]) -> Source | None:
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None  # dangling or looping link: nothing to read
        if not target.is_file():
            return None
        return Source(str(path), "link-inside" if _inside(target, roots) else "link-outside", 0)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return Source(str(path), "unknown", 0)
    kind = sniff(head)
    if kind in ("unknown", "dicom"):
        volume = _volume_kind(path, head) if kind == "unknown" else None
        if volume is not None:
            kind = volume
        elif kind == "unknown" and _companion_of_volume(path):
            kind = "companion"
    return Source(str(path), kind, size)


def discover(inputs: Iterable[Path], exclude: Iterable[Path] = ()) -> Iterator[Source]:
    """Every input object, one at a time, in a stable order, without the excluded trees."""
    roots = _roots(inputs)
    excluded = [Path(p).resolve() for p in exclude]
    for root in roots:
        if root.is_file():
            source = _source(root, roots)
            if source is not None:
                yield source
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not _inside(here / d, excluded))
            if _inside(here, excluded):
                continue
            for name in sorted(filenames):
                path = here / name
                if not (path.is_file() or path.is_symlink()):
                    continue  # sockets, fifos, devices
                source = _source(path, roots)
                if source is not None:
                    yield source
