"""ECAT 7 PET files: the main header's identifying fields blanked in place, the matrix directory,
subheaders and data kept byte for byte (see :mod:`medcloak.formats.ecat`), released as
``ecat/<patient pseudonym>/<token>.v``, the patient keyed as DICOM keys it. Its review record:
``modality`` PT, the fields emptied or shifted, the kept text (tracer, units, the subheaders'
annotations) and, under ``retain-patient-characteristics``, the quasi-identifiers kept."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "ecat"
KINDS = {"ecat": "clean the main header (ECAT 7), keep subheaders and data"}


def settings(options: dict[str, Any]) -> None:
    return None


def sniff(head: bytes, path: Path) -> str | None:
    from ..formats.ecat import sniff as ecat_sniff

    return ecat_sniff(head)


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from ..formats.ecat import clean, read
    from ..review_record import record, text_values
    from .base import Released

    data = read(Path(task.source.path))
    result = clean(data, job.keyring, frozenset(job.profile.options))
    patient = job.keyring.patient_id(result.identity)
    token = job.keyring.token("ecat", hashlib.sha256(data).hexdigest())
    relpath = f"ecat/{patient}/{token}.v"
    original_id = result.identity[3:].rsplit("|", 1)[0] if result.identity.startswith("id:") else result.identity
    review = record(NAME, modality="PT", patient=patient, series=token, text=text_values(result.kept_text),
                    changed=result.changed, kept=[n for n, _ in result.kept_text], qi=result.qi)
    return [Released(result.data, relpath, {}, (original_id, patient), {"header-cleaned": 1}, review=review)]


def owns(relpath: str) -> bool:
    return relpath.startswith("ecat/")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released ECAT file's main header holds none of the fields a run always empties."""
    from ..formats.ecat import header_findings

    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        return [Finding(relpath, "error", f"unreadable ECAT file ({exc.strerror})")]
    return [Finding(relpath, "error", f) for f in header_findings(head)]
