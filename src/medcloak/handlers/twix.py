"""Siemens twix raw data (``.dat``, VB and VD/VE): identifying header values blanked in place,
raw data streamed unchanged (see :mod:`medcloak.formats.twix`). A released file is
``twix/<token>.dat``, the token a keyed hash of the file's size and its first and last bytes.
Its review record: modality ``MR``, its token as series, every key blanked (``emptied``) or
cleaned (``cleaned``: a descriptor the profile keeps, see :func:`descriptors`), the kept
sequence file name and software version and the kept descriptors as text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..model import Finding
from .base import fingerprint

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "twix"
KINDS = {"twix": "blank identifying header values in place, copy the raw data"}
#: bytes of the beginning and end of a file its token hashes
SAMPLE = 1 << 20


def sniff(head: bytes, path: Path) -> str | None:
    """VB by its first buffer's name (``Config`` at byte 8); VD/VE by its measurement table,
    the first measurement's header read at its offset."""
    from ..formats.twix import RAID_HEADER, layout

    kind = layout(head)
    if kind == "vb":
        return "twix"
    if kind != "vd":
        return None
    off = int.from_bytes(head[16:24], "little")
    if off < RAID_HEADER:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(off + 8)
            return "twix" if fh.read(7) == b"Config\x00" else None
    except OSError:
        return None


def settings(options: dict[str, Any]) -> None:
    return None


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    """Plan the header patches now (the headers are small); the writer streams the file."""
    from ..formats.twix import Policy, clean_twix, write_patched
    from ..review_record import record
    from .base import Released

    path = Path(task.source.path)
    has = job.profile.has
    policy = Policy(dates=has("retain-long-full-dates"), characteristics=has("retain-patient-characteristics"),
                    device=has("retain-device-identity"), institution=has("retain-institution-identity"),
                    descriptors=descriptors(job.profile))
    cleaned = clean_twix(path, policy)
    token = job.keyring.token("twix", fingerprint(path, SAMPLE))
    review = record("twix", modality="MR", series=token, text=cleaned.text, changed=cleaned.changed)
    counts = {f"twix-{cleaned.layout}": 1, "twix-values-blanked": len(cleaned.changed)}

    def write(fh: BinaryIO) -> tuple[dict[str, int], str]:
        return {}, write_patched(path, cleaned.patches, fh, cleaned.size)

    return [Released(b"", f"twix/{token}.dat", counts=dict(counts), write=write, review=review)]


def descriptors(profile: Any) -> dict[str, tuple[str, str | None]]:
    """The twix descriptors (protocol name, series and study description, comments) the profile
    keeps, each with the rule of the DICOM attribute it stands for: ``C`` under Clean Descriptors,
    ``K`` or ``E`` by a site override; the others are blanked."""
    from ..formats.twix import DESCRIPTORS

    out = {}
    for key, tag in DESCRIPTORS.items():
        action = profile.resolve(tag) if profile is not None else None
        if action is not None and action.code in ("C", "K", "E"):
            out[key] = (action.code, action.pattern)
    return out


def owns(relpath: str) -> bool:
    return relpath.startswith("twix/")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released twix file's headers hold no identifying value; nothing else lies in twix/."""
    from ..errors import MedcloakError
    from ..formats.twix import residual

    if not path.name.endswith(".dat"):
        return [Finding(relpath, "error", "file of no known released kind")]
    try:
        return [Finding(relpath, "error", message) for message in residual(path, descriptors(context.profile))]
    except (MedcloakError, OSError) as exc:
        return [Finding(relpath, "error", f"unreadable twix file ({exc})")]
