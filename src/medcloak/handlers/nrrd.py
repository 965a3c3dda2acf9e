"""NRRD volumes (``.nrrd``, attached) and NHDR headers with their detached data file: the header
cut down to the fields that read and place the data (comments, key/value pairs, ``content`` and
free-text fields dropped), the data copied (defaced like a NIfTI volume where it shows a head,
its QC picture in the audit folder), released as ``volumes/<token>.nrrd``, or
``volumes/<token>.nhdr`` beside ``volumes/<token>.raw`` (``.raw.gz``) (see
:mod:`medcloak.formats.nrrd`). A detached data file is its header's companion: skipped on its own,
released with its header. Its review record names the fields and parts removed.

It is asked before the volume handler (which owns the rest of ``volumes/``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "nrrd"
KINDS = {
    "nrrd": "deface, keep only the header fields that read the data (NRRD/NHDR)",
    "nrrd-data": "skip (released with its NRRD header)",
}
#: .nhdr files of a folder read to find whether a file is one's detached data (a folder of
#: thousands of headers is not searched: its data files are then quarantined, never released bare)
MAX_HEADERS = 64


def settings(options: dict[str, Any]) -> None:
    return None  # the volume handler's settings (fill, ears) apply


def sniff(head: bytes, path: Path) -> str | None:
    from ..formats.nrrd import sniff as is_nrrd

    if is_nrrd(head):
        return "nrrd"
    return "nrrd-data" if _data_of_header(path) else None


def _data_of_header(path: Path) -> bool:
    """Whether a ``.nhdr`` beside ``path`` names it as its data file."""
    try:
        stamp = path.parent.stat().st_mtime_ns
    except OSError:
        return False
    return path.name in _data_files(str(path.parent), stamp)


@functools.lru_cache(maxsize=256)
def _data_files(folder: str, stamp: int) -> frozenset[str]:
    """The data file names that the ``.nhdr`` files of ``folder`` name (read once per folder and
    its modification time: discovery asks for every file of it)."""
    try:
        headers = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() == ".nhdr")
    except OSError:
        return frozenset()
    names = set()
    for header in headers[:MAX_HEADERS]:
        try:
            with open(header, "rb") as fh:
                text = fh.read(65536)
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"data file", b"datafile"):
                names.add(value.strip().decode("utf-8", "replace"))
    return frozenset(names)


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    """Clean and deface one NRRD (with its data file); its QC picture goes to the audit folder."""
    from ..formats.nrrd import deidentify_nrrd
    from .volume import deface

    return deface(deidentify_nrrd, task, job)


def owns(relpath: str) -> bool:
    return relpath.startswith("volumes/") and relpath.lower().endswith((".nrrd", ".nhdr", ".raw", ".raw.gz"))


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released header holds only kept fields (and its data file's released name); a data
    file lies beside its header."""
    from .. import limits
    from ..errors import MedcloakError
    from ..formats.nrrd import check_released

    name = path.name
    if name.lower().endswith((".raw", ".raw.gz")):
        ok = path.with_name(name.split(".")[0] + ".nhdr").is_file()
        return [] if ok else [Finding(relpath, "error", "NRRD data without its header")]
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.current().max_object_bytes or (1 << 30)) if name.lower().endswith(".nhdr") \
                else fh.read(1 << 20)
    except (MedcloakError, OSError) as exc:
        return [Finding(relpath, "error", f"unreadable NRRD ({exc})")]
    return [Finding(relpath, "error", problem) for problem in check_released(data)]
