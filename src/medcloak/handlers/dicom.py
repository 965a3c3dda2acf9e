"""DICOM objects: de-identified by the profile (see :mod:`medcloak.formats.dicom`), released as
``<patient>/<study>/<series>/<instance>.dcm``. Two kinds of object are one task of several files:

- the instances of a whole-slide image (VL Whole Slide Microscopy, told by the SOP class of the
  file meta information, which discovery reads anyway): one slide, released whole or not at all
  (an instance that fails quarantines the slide), its label and overview instances never;
- under the Clean Recognizable Visual Features option, the slices of a CT, MR or PET series: they
  are defaced as a volume (:mod:`medcloak.formats.dicom_series`).

Under that option, a multi-frame CT, MR or PET object (Enhanced, Legacy Converted Enhanced, or
any with more than one frame) is defaced within its own task, its frames stacked by their
functional groups (:mod:`medcloak.formats.dicom_multiframe`), with its QC picture
(``qc/<object id>.png``) as a volume's.

Each released object's review record is made by :mod:`medcloak.formats.dicom_review` (actions
per attribute, kept text, kept attributes, quasi-identifiers, pixel change); this module names
its text picture (``qc/<object id>-text.png``) when one was written."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..errors import MedcloakError, SkippedObject
from ..model import Finding, Source, Task

if TYPE_CHECKING:
    from ..engine import Job
    from ..pseudonym import Keyring
    from ..rules.regions import RegionTemplate
    from .base import Released, VerifyContext

NAME = "dicom"
log = logging.getLogger("medcloak")
KINDS = {
    "dicom": "de-identify",
    "dicom-slide": "de-identify with the other instances of its slide (released whole or not at all); "
                   "label and overview instances removed",
}
#: VL Whole Slide Microscopy Image Storage
WSI_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


@dataclass(frozen=True)
class Settings:
    """Region templates (under Clean Pixel Data), and whether defacing removes the ears too."""

    regions: tuple[RegionTemplate, ...] = ()
    ears: bool = False
    #: the site's OCR safe list (``--ocr-safe``), or None
    safe: Any = None
    #: ``--k-anonymity``'s recoding (a :class:`medcloak.generalise.Plan`), or None
    k_plan: Any = None


def settings(options: dict[str, Any]) -> Settings:
    return Settings(tuple(options.get("regions", ())), bool(options.get("deface_ears", False)), options.get("ocr_safe"),
                    options.get("k_plan"))


def sniff(head: bytes, path: Path) -> str | None:
    from ..formats.dicom_sniff import media_class
    from ..formats.dicom_sniff import sniff as dicom_sniff

    kind = dicom_sniff(head)
    if kind is None:
        return None
    return "dicom-slide" if kind == "part10" and media_class(head) == WSI_CLASS else "dicom"


def grouper(keyring: Keyring, settings: Settings, profile: Any) -> Grouper:
    return Grouper(keyring, profile.has("clean-recognizable-visual-features"))


class Grouper:
    """Which DICOM files are one task: the instances of a whole-slide image (by study and series),
    and, when ``series`` (defacing), the slices of each single-frame CT, MR and PET series. Their
    headers are read as discovery finds them, and the groups are planned once discovery is
    complete (a series may be spread over folders); every other object goes on at once, its
    header unread here."""

    def __init__(self, keyring: Keyring, series: bool) -> None:
        self.keyring = keyring
        self.deface = series
        self.groups: dict[str, list[Source]] = {}

    def add(self, source: Source) -> Iterable[Task]:
        if source.format == "dicom-slide":
            key = _slide_key(source)
        elif self.deface:
            key = _series_key(source)
        else:
            key = None
        if key is None:
            return [Task(source, self.keyring.token("object", source.path, 12))]
        self.groups.setdefault(key, []).append(source)
        return []

    def finish(self) -> Iterable[Task]:
        for _key, members in sorted(self.groups.items()):
            members.sort(key=lambda m: m.path)
            head, rest = members[0], tuple(members[1:])
            yield Task(head, self.keyring.token("object", head.path, 12), rest)


def _slide_key(source: Source) -> str | None:
    """The slide of an instance of a whole-slide image: its study and series (the pyramid's
    levels share a series; a label in a series of its own is removed wherever it is)."""
    import pydicom

    from ..formats.dicom_check import check_inflation

    try:
        check_inflation(source.path)  # pydicom inflates a deflated data set whole
        ds = pydicom.dcmread(source.path, stop_before_pixels=True, force=True, specific_tags=[
            "StudyInstanceUID", "SeriesInstanceUID"])
    except Exception:  # noqa: BLE001 - unreadable: the object's own task will say why
        return None
    if not ds.get("SeriesInstanceUID"):
        return None
    return f"slide|{ds.get('StudyInstanceUID', '')}|{ds.SeriesInstanceUID}"


def _series_key(source: Source) -> str | None:
    """Series Instance UID (with the Frame of Reference) of a single-frame CT, MR or PET image."""
    import pydicom

    from ..formats.dicom_check import check_inflation

    try:
        check_inflation(source.path)  # pydicom inflates a deflated data set whole
        ds = pydicom.dcmread(source.path, stop_before_pixels=True, force=True, specific_tags=[
            "Modality", "SeriesInstanceUID", "FrameOfReferenceUID", "NumberOfFrames", "SOPClassUID"])
    except Exception:  # noqa: BLE001 - unreadable: the object's own task will say why
        return None
    if str(ds.get("Modality", "")).upper() not in ("CT", "MR", "PT") or not ds.get("SeriesInstanceUID"):
        return None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    return f"series|{ds.SeriesInstanceUID}|{ds.get('FrameOfReferenceUID', '')}"


def deidentify(task: Task, job: Job) -> Iterable[Released | MedcloakError]:
    from ..pixels.burned_in import ReviewPicture

    own: Settings = job.settings.get(NAME) or Settings()
    if not task.members:
        from ..formats.dicom import deidentify_dicom, read

        picture = ReviewPicture(job.audit, task.object_id)
        path = Path(task.source.path)
        dataset = None
        if job.profile.has("clean-recognizable-visual-features") and task.source.format == "dicom":
            from ..formats.dicom_multiframe import multiframe

            dataset = read(path)  # read once: deidentify_dicom takes it as it is
            if multiframe(dataset):
                return [_multiframe(task, job, own, dataset, picture)]
        return [picture.add(deidentify_dicom(path, job.profile, job.keyring, own.regions, dataset=dataset,
                                             review=picture.writer, safe=own.safe,
                                             k_plan=own.k_plan))]
    if task.source.format == "dicom-slide":
        return _slide(task, job, own)
    from ..formats.dicom_series import deface_series

    sources = (task.source, *task.members)
    ids = [task.object_id] + [job.keyring.token("object", m.path, 12) for m in task.members]
    pictures = {Path(s.path): ReviewPicture(job.audit, oid) for s, oid in zip(sources, ids)}
    reviews = {path: picture.writer for path, picture in pictures.items()}
    try:
        results, report = deface_series([Path(s.path) for s in sources], job.profile, job.keyring, own.regions,
                                        ears=own.ears, reviews=reviews, safe=own.safe, k_plan=own.k_plan)
    except MedcloakError as exc:  # every slice fails with the series' reason
        raise _again(exc, f"series: {exc}") from None
    status = "series-" + str(report.get("status", "")).replace(" ", "-")
    out: list[Released | MedcloakError] = []
    qc = report.get("_picture")
    for result in results:
        if result.error is not None or result.released is None:
            out.append(result.error if isinstance(result.error, MedcloakError) else MedcloakError(str(result.error)))
        else:
            released = pictures[result.path].add(result.released)
            if qc is not None and ((released.review or {}).get("pixels") or {}).get("change") == "defaced":
                _qc_picture(job, task.object_id, qc, released.review)  # the series' picture, once
                qc = None
            out.append(dataclasses.replace(released, counts={**released.counts, status: 1}))
    return out


def _multiframe(task: Task, job: Job, own: Settings, dataset: Any, picture: Any) -> Released:
    """A multi-frame CT, MR or PET object under Clean Recognizable Visual Features: defaced within
    its task where it is a head (:mod:`medcloak.formats.dicom_multiframe`), its QC picture
    (``qc/<object id>.png``) written to the audit folder and named in its review record unless
    a text picture is; counted ``multiframe-<status>``."""
    from ..formats.dicom import deidentify_dicom
    from ..formats.dicom_multiframe import deface_frames
    from ..formats.dicom_series import mark_defaced

    try:
        result = deface_frames(dataset, ears=own.ears)
    except MedcloakError as exc:  # the defacing's reason; the profile's own are the object's as ever
        raise _again(exc, f"multi-frame: {exc}") from None
    released = picture.add(deidentify_dicom(Path(task.source.path), job.profile, job.keyring, own.regions,
                                            dataset=dataset, faces_cleaned=result.faces, review=picture.writer,
                                            safe=own.safe, k_plan=own.k_plan))
    if result.faces:
        mark_defaced(released.review)
    if result.picture is not None:
        _qc_picture(job, task.object_id, result.picture, released.review)
    status = "multiframe-" + str(result.report.get("status", "")).replace(" ", "-")
    return dataclasses.replace(released, counts={**released.counts, status: 1})


def _qc_picture(job: Job, object_id: str, picture: tuple[Any, ...], review: dict[str, Any] | None) -> None:
    """The QC picture of a defaced volume (``picture``: its stored values, mask, affine, (slope,
    intercept) and modality) written to the audit folder as ``qc/<object id>.png``, as a volume's
    is, and named in ``review``'s pixel change unless a text picture is."""
    if not job.audit:
        return
    try:
        from ..pixels.qc import qc_picture
    except ImportError:
        log.warning("QC pictures need Pillow: none written")
        return
    stored, mask, affine, scale, modality = picture
    folder = Path(job.audit) / "qc"
    folder.mkdir(exist_ok=True, mode=0o700)
    qc_picture(stored, mask, affine, folder / f"{object_id}.png", scale=scale, modality=modality)
    pixels = (review or {}).get("pixels")
    if pixels is not None and not pixels.get("picture"):
        pixels["picture"] = f"qc/{object_id}.png"


def _slide(task: Task, job: Job, own: Settings) -> Iterator[Released | MedcloakError]:
    """The instances of a slide, one at a time (the engine writes each before the next is read,
    so a slide is never held whole); an instance that cannot be de-identified raises, and the
    engine then removes what it wrote of the slide: no slide is released in part. Its label and
    overview instances are skipped, which is no failure."""
    from ..formats.dicom import deidentify_dicom
    from ..pixels.burned_in import ReviewPicture

    for source in (task.source, *task.members):
        picture = ReviewPicture(job.audit, job.keyring.token("object", source.path, 12))
        try:
            yield picture.add(deidentify_dicom(Path(source.path), job.profile, job.keyring, own.regions,
                                               review=picture.writer, safe=own.safe,
                                               k_plan=own.k_plan))
        except SkippedObject as exc:
            yield exc
        except MedcloakError as exc:
            oid = job.keyring.token("object", source.path, 12)
            raise _again(exc, f"slide: instance {oid} not de-identified: {exc}") from None


def _again(exc: MedcloakError, message: str) -> MedcloakError:
    """``exc``'s kind of error with ``message``."""
    try:
        return type(exc)(message)
    except TypeError:  # an error whose constructor takes more than its message
        return MedcloakError(message)


def owns(relpath: str) -> bool:
    from ..dicomdir import ISO_NAME  # the names of ``run --dicomdir``

    return relpath.endswith(".dcm") or bool(ISO_NAME.match(relpath))


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    from ..verify import verify_file

    return verify_file(path, context.profile, set(context.old_uids), list(context.old_ids), relpath)
