"""Whole-slide images in TIFF-family files (Aperio SVS, Hamamatsu NDPI, generic tiled pyramids):
the label and macro removed, vendor metadata cleaned by allow-list, every pyramid tile copied byte
for byte (see :mod:`medcloak.formats.slide_tiff`). A slide is streamed into the release, never
held in memory whole. DICOM whole-slide images are DICOM objects (:mod:`.dicom`).

A released slide is ``slides/<token><ext>``: the token is a keyed hash of the slide's size and
its first and last :data:`SAMPLE` bytes (where its IFDs, and so its tile offsets, lie), read in
moments where hashing the whole slide would read it once more; the extension is the vendor's, as
OpenSlide expects it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "slide"
KINDS = {"slide": "remove label and macro, clean vendor metadata, copy the pyramid"}
#: bytes of a slide's beginning and end that its released name is made from
SAMPLE = 4 << 20
EXTENSIONS = {"aperio": ".svs", "hamamatsu": ".ndpi"}
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(head: bytes, path: Path) -> str | None:
    """A TIFF or BigTIFF file whose pages make a slide (a pyramid, a label or macro page, a
    vendor's signature); a single-page TIFF is a photograph."""
    if head[:4] not in TIFF_MAGIC:
        return None
    from ..formats.slide_tiff import sniff_slide

    return "slide" if sniff_slide(path) is not None else None


def settings(options: dict[str, Any]) -> None:
    return None


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from ..formats.slide_tiff import clean_slide, sniff_slide
    from .base import Released

    path = Path(task.source.path)
    vendor = sniff_slide(path) or "generic"
    token = job.keyring.token("slide", _fingerprint(path))

    def write(fh: BinaryIO) -> tuple[dict[str, int], str]:
        report = clean_slide(path, fh, job.keyring)
        counts = dict(report.counts)
        counts[f"slide-{report.vendor}"] = 1
        for removed in report.removed:
            counts[f"{removed}-removed"] = counts.get(f"{removed}-removed", 0) + 1
        return counts, report.sha256

    return [Released(b"", f"slides/{token}{EXTENSIONS.get(vendor, '.tiff')}", write=write)]


def _fingerprint(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        sha.update(size.to_bytes(8, "little"))
        fh.seek(0)
        sha.update(fh.read(SAMPLE))
        if size > SAMPLE:
            fh.seek(max(SAMPLE, size - SAMPLE))
            sha.update(fh.read(SAMPLE))
    return sha.hexdigest()


def owns(relpath: str) -> bool:
    return relpath.startswith("slides/")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """What cleaning would still change in a released slide (a label or macro page, metadata
    outside the allow-lists, text in tile headers, bytes nothing points to)."""
    from ..errors import MedcloakError
    from ..formats.slide_tiff import verify_slide

    try:
        return [Finding(relpath, "error", message) for message in verify_slide(path)]
    except (MedcloakError, OSError) as exc:
        return [Finding(relpath, "error", f"unreadable slide ({exc})")]
