"""FreeSurfer MGH/MGZ volumes: defaced like a NIfTI volume (the same defacer, its QC picture in
the audit folder, its no-head rule), the tags after the voxels (``cmdline``, the talairach
transform's path, ...) dropped, released as ``volumes/<token>.mgh`` or ``.mgz`` (see
:mod:`medcloak.formats.mgh`). Its review record names the tags removed and the defacing.

It is asked before the volume handler (which owns the rest of ``volumes/``): a gzipped MGH is a
gzip stream the volume handler would read as a NIfTI candidate and reject.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "mgh"
KINDS = {"mgh": "deface, drop the tags (FreeSurfer MGH/MGZ)"}


def settings(options: dict[str, Any]) -> None:
    return None  # the volume handler's settings (fill, ears) apply


def sniff(head: bytes, path: Path) -> str | None:
    """An MGH header at the start of the file, or of its gzip stream (from its first 4096 bytes)."""
    from ..formats.mgh import sniff as is_mgh

    if head[:2] == b"\x1f\x8b":
        try:
            with open(path, "rb") as fh:
                first = fh.read(4096)
            head = zlib.decompressobj(31).decompress(first, 300)
        except (OSError, zlib.error):
            return None
    return "mgh" if is_mgh(head[:300]) else None


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    """Deface one MGH/MGZ volume; its QC picture goes to the audit folder."""
    from ..formats.mgh import deidentify_mgh
    from .volume import deface

    return deface(deidentify_mgh, task, job)


def owns(relpath: str) -> bool:
    return relpath.startswith("volumes/") and relpath.lower().endswith((".mgh", ".mgz"))


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released MGH holds its header's used fields, the voxels and the scan parameters:
    nothing in the header's unused bytes, no tags."""
    from .. import limits
    from ..errors import MedcloakError
    from ..formats import gz
    from ..formats.mgh import check_released

    try:
        data = limits.read_file(path, "the MGH volume's file")
        if data[:2] == b"\x1f\x8b":
            data = bytes(gz.decompress(data, what="the MGH volume"))
    except (MedcloakError, OSError) as exc:
        return [Finding(relpath, "error", f"unreadable volume ({exc})")]
    return [Finding(relpath, "error", problem) for problem in check_released(data)]
