"""DICOM objects: de-identified by the profile (see :mod:`medcloak.formats.dicom`), released as
``<patient>/<study>/<series>/<instance>.dcm``. Under the Clean Recognizable Visual Features
option, the slices of a CT, MR or PET series are one task: they are defaced as a volume
(:mod:`medcloak.formats.dicom_series`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import MedcloakError
from ..model import Finding, Source, Task

if TYPE_CHECKING:
    from ..engine import Job
    from ..pseudonym import Keyring
    from ..rules.regions import RegionTemplate
    from .base import Released, VerifyContext

NAME = "dicom"
KINDS = {"dicom": "de-identify"}


@dataclass(frozen=True)
class Settings:
    """Region templates (under Clean Pixel Data), and whether defacing removes the ears too."""

    regions: tuple[RegionTemplate, ...] = ()
    ears: bool = False


def settings(options: dict[str, Any]) -> Settings:
    return Settings(tuple(options.get("regions", ())), bool(options.get("deface_ears", False)))


def sniff(head: bytes, path: Path) -> str | None:
    from ..formats.dicom_sniff import sniff as dicom_sniff

    return "dicom" if dicom_sniff(head) is not None else None


def grouper(keyring: Keyring, settings: Settings, profile: Any) -> SeriesGrouper | None:
    return SeriesGrouper(keyring) if profile.has("clean-recognizable-visual-features") else None


class SeriesGrouper:
    """The slices of each single-frame CT, MR and PET series become one task, to be defaced as a
    volume: their headers are read as discovery finds them, and the series are planned once
    discovery is complete (a series may be spread over folders); every other object goes on at
    once."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self.series: dict[str, list[Source]] = {}

    def add(self, source: Source) -> Iterable[Task]:
        key = _series_key(source)
        if key is None:
            return [Task(source, self.keyring.token("object", source.path, 12))]
        self.series.setdefault(key, []).append(source)
        return []

    def finish(self) -> Iterable[Task]:
        for _key, members in sorted(self.series.items()):
            members.sort(key=lambda m: m.path)
            head, rest = members[0], tuple(members[1:])
            yield Task(head, self.keyring.token("object", head.path, 12), rest)


def _series_key(source: Source) -> str | None:
    """Series Instance UID (with the Frame of Reference) of a single-frame CT, MR or PET image."""
    import pydicom

    try:
        ds = pydicom.dcmread(source.path, stop_before_pixels=True, force=True, specific_tags=[
            "Modality", "SeriesInstanceUID", "FrameOfReferenceUID", "NumberOfFrames", "SOPClassUID"])
    except Exception:  # noqa: BLE001 - unreadable: the object's own task will say why
        return None
    if str(ds.get("Modality", "")).upper() not in ("CT", "MR", "PT") or not ds.get("SeriesInstanceUID"):
        return None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    return f"{ds.SeriesInstanceUID}|{ds.get('FrameOfReferenceUID', '')}"


def deidentify(task: Task, job: Job) -> list[Released | MedcloakError]:
    own: Settings = job.settings.get(NAME) or Settings()
    if not task.members:
        from ..formats.dicom import deidentify_dicom

        return [deidentify_dicom(Path(task.source.path), job.profile, job.keyring, own.regions)]
    from ..formats.dicom_series import deface_series

    sources = (task.source, *task.members)
    try:
        results, report = deface_series([Path(s.path) for s in sources], job.profile, job.keyring, own.regions,
                                        ears=own.ears)
    except MedcloakError as exc:  # every slice fails with the series' reason
        try:
            again = type(exc)(f"series: {exc}")
        except TypeError:  # an error whose constructor takes more than its message
            again = MedcloakError(f"series: {exc}")
        raise again from None
    status = "series-" + str(report.get("status", "")).replace(" ", "-")
    out: list[Released | MedcloakError] = []
    for result in results:
        if result.error is not None or result.released is None:
            out.append(result.error if isinstance(result.error, MedcloakError) else MedcloakError(str(result.error)))
        else:
            out.append(dataclasses.replace(result.released, counts={**result.released.counts, status: 1}))
    return out


def owns(relpath: str) -> bool:
    return relpath.endswith(".dcm")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    from ..verify import verify_file

    return verify_file(path, context.profile, set(context.old_uids), list(context.old_ids), relpath)
