"""Philips PAR/REC exports: a PAR and its REC are one object, released as
``parrec/<patient pseudonym>/<token>.PAR`` and ``.REC``: the PAR's text header cleaned (see
:mod:`medcloak.formats.parrec`), the REC streamed byte for byte. A REC beside its PAR is the
PAR's (recorded as skipped: released with it); a REC without its PAR is quarantined. Its review
record: ``modality`` MR, the general-information keys changed and the kept text values."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "parrec"
KINDS = {
    "par": "clean the PAR header, copy its REC",
    "rec": "skip (released with its PAR header)",
    "rec-orphan": "quarantine (a Philips REC file without its PAR header)",
}


def settings(options: dict[str, Any]) -> None:
    return None


def sniff(head: bytes, path: Path) -> str | None:
    """A PAR by its first line's signature; a ``.REC`` (no signature: image data) only beside a PAR,
    or as an orphan to quarantine with its reason."""
    from ..formats.parrec import par_of
    from ..formats.parrec import sniff as par_sniff

    kind = par_sniff(head)
    if kind is not None:
        return kind
    if path.suffix.lower() == ".rec":
        par = par_of(path)
        if par is None:
            return "rec-orphan"
        try:
            with open(par, "rb") as fh:
                return "rec" if par_sniff(fh.read(512)) else None
        except OSError:
            return None
    return None


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from ..errors import CorruptInputError
    from ..formats.parrec import clean, read_par, rec_of
    from ..review_record import record, text_values
    from .base import Released

    path = Path(task.source.path)
    if task.source.format == "rec-orphan":
        raise CorruptInputError("a Philips REC file without its PAR header")
    rec = rec_of(path)
    if rec is None:
        raise CorruptInputError("the PAR has no REC beside it")
    par = read_par(path)
    rec_size = rec.stat().st_size
    token = job.keyring.token("parrec", hashlib.sha256(par).hexdigest())
    result = clean(par, rec_size, job.keyring, frozenset(job.profile.options), token)
    patient = job.keyring.patient_id(result.identity)

    def write(fh: BinaryIO) -> dict[str, int]:
        with open(rec, "rb") as src:
            shutil.copyfileobj(src, fh, 1 << 20)
        if fh.tell() != result.rec_bytes:  # the REC changed under the run
            raise CorruptInputError("the REC's size changed while it was copied")
        return {}

    base = f"parrec/{patient}/{token}"
    review = record(NAME, modality="MR", patient=patient, series=token, text=text_values(result.kept_text),
                    changed=result.changed, kept=[k for k, _ in result.kept_text])
    return [Released(result.par, f"{base}.PAR", {}, (result.identity, patient), {"header-cleaned": 1},
                     extra=((f"{base}.REC", write),), review=review)]


def owns(relpath: str) -> bool:
    return relpath.startswith("parrec/")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released PAR holds the pseudonym, no exam or protocol name, no export path, and a
    dummy date (a shifted or kept one under the release's dates options); a REC lies beside it."""
    from ..formats.parrec import findings

    if path.suffix == ".REC":
        ok = path.with_suffix(".PAR").exists()
        return [] if ok else [Finding(relpath, "error", "REC without its PAR")]
    if path.suffix != ".PAR":
        return [Finding(relpath, "error", "file of no known released kind")]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [Finding(relpath, "error", f"unreadable PAR ({exc.strerror})")]
    options = set(getattr(context.profile, "options", ()) or ())
    dates = bool(options & {"retain-long-modified-dates", "retain-long-full-dates"})
    return [Finding(relpath, "error", f) for f in findings(data) if not (dates and f.startswith("Examination date"))]
