"""Neuroimaging volumes (NIfTI-1/2, Analyze 7.5, MINC): defaced, headers cleaned, released under
keyed names with their companions (an Analyze image beside its header, a BIDS JSON sidecar)
(see :mod:`medcloak.formats.volume` and :mod:`medcloak.pixels.deface`). A QC picture of each
defaced volume goes to the private audit folder. Its review record
(:func:`medcloak.formats.volume.review_record`): modality, its token as series, the header
fields emptied and sidecar keys removed, the sidecar's kept text and quasi-identifiers, and
``defaced`` with the QC picture (``qc/<token>.png``)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "volume"
KINDS = {
    "nifti": "deface, clean the header",
    "analyze": "deface, clean the header",
    "minc": "deface, write as NIfTI",
    "companion": "skip (released with its volume: Analyze .img, BIDS .json sidecar)",
}
SUFFIXES = (".nii.gz", ".nii", ".hdr", ".hdr.gz", ".mnc")

log = logging.getLogger("medcloak")


@dataclass(frozen=True)
class Settings:
    """What removed voxels become (``background`` or ``noise``), and whether the ears go too."""

    fill: str = "background"
    ears: bool = False


def settings(options: dict[str, Any]) -> Settings:
    return Settings(options.get("deface_fill", "background"), bool(options.get("deface_ears", False)))


def sniff(head: bytes, path: Path) -> str | None:
    """MINC by its HDF5 or netCDF magic; NIfTI and Analyze by their header's size (reading the
    first 4096 bytes, gzipped ones too); an Analyze image or a JSON sidecar beside a volume is
    its companion."""
    if head[:4] == b"\x89HDF" or head[:4] in (b"CDF\x01", b"CDF\x02"):
        return "minc"
    if head[:2] == b"\x1f\x8b" or len(head) >= 4 and 348 in (int.from_bytes(head[:4], "little"),
                                                            int.from_bytes(head[:4], "big")) \
            or head[4:7] in (b"n+2", b"ni2"):
        from ..formats.volume import sniff as header_kind

        try:
            with open(path, "rb") as fh:
                kind = header_kind(fh.read(4096))
        except OSError:
            kind = None
        if kind is not None:
            return kind
    return "companion" if _companion_of_volume(path) else None


def _companion_of_volume(path: Path) -> bool:
    name = path.name
    low = name.lower()
    for ext, partners in ((".img", (".hdr",)), (".img.gz", (".hdr", ".hdr.gz")), (".json", SUFFIXES)):
        if low.endswith(ext):
            stem = name[: -len(ext)]
            return any(path.with_name(stem + p).exists() for p in partners)
    return False


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    """Deface one volume; its QC picture goes to the audit folder."""
    from ..formats.volume import deidentify_volume

    return deface(deidentify_volume, task, job)


def deface(deidentify_format: Any, task: Task, job: Job) -> list[Released]:
    """``deidentify_format`` (a NIfTI's, an MGH's, a NRRD's: path, keyring, fill, ears) of the
    task's volume with the run's defacing settings, released by :func:`with_qc`."""
    own: Settings = job.settings.get(NAME) or Settings()
    result = deidentify_format(Path(task.source.path), job.keyring, fill=own.fill, ears=own.ears)
    return [with_qc(result, job)]


def with_qc(result: Any, job: Job) -> Released:
    """The released volume of a defacing ``result`` (a NIfTI's, an MGH's, a NRRD's: its
    ``released``, ``extra`` and ``qc``), its QC picture written to the audit folder when it was
    defaced and named in its review record, and its count of ``defaced`` or ``no-head``."""
    if job.audit and result.qc["status"] == "defaced":
        try:
            from ..pixels.qc import qc_picture

            folder = Path(job.audit) / "qc"
            folder.mkdir(exist_ok=True, mode=0o700)
            qc_picture(result.qc["_stored"], result.qc["_after_mask"], result.qc["_affine"],
                       folder / f"{result.qc['token']}.png", scale=result.qc["_scale"], modality=result.qc["modality"])
            review = result.released.review or {}
            if "pixels" in review:  # the record names the picture, relative to the audit folder
                review["pixels"]["picture"] = f"qc/{result.qc['token']}.png"
        except ImportError:
            log.warning("QC pictures need Pillow: none written")
    counts = dict(result.released.counts)
    counts["no-head" if result.qc["status"] == "no-head" else "defaced"] = 1
    return dataclasses.replace(result.released, counts=counts, extra=tuple(result.extra) or result.released.extra)


def owns(relpath: str) -> bool:
    return relpath.startswith("volumes/")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released volume's header holds no text and no extension; a sidecar no identifying
    key; nothing else lies among the volumes."""
    from ..errors import MedcloakError
    from ..formats.volume import TEXT_FIELDS, clean_sidecar, read_volume

    name = path.name.lower()
    try:
        if name.endswith(".json"):
            data = path.read_bytes()
            return [] if clean_sidecar(data) == data else [Finding(relpath, "error", "sidecar still holds identifying keys")]
        if name.endswith(".img"):
            return [] if path.with_suffix(".hdr").exists() else [Finding(relpath, "error", "Analyze data without its header")]
        if not (name.endswith(".nii") or name.endswith(".nii.gz") or name.endswith(".hdr")):
            return [Finding(relpath, "error", "file of no known released kind")]
        vol = read_volume(path)
    except (MedcloakError, OSError) as exc:
        return [Finding(relpath, "error", f"unreadable volume ({exc})")]
    found = []
    for field in TEXT_FIELDS:
        if field in vol.header.structarr.dtype.names and bytes(vol.header.structarr[field].tobytes()).strip(b"\x00 "):
            found.append(Finding(relpath, "error", f"header field {field} holds text"))
    if len(getattr(vol.header, "extensions", ()) or ()):
        found.append(Finding(relpath, "error", "header extensions present"))
    return found
