"""Whole-slide images in TIFF-family files (Aperio SVS, Hamamatsu NDPI, generic tiled pyramids):
the label and macro removed, vendor metadata cleaned by allow-list, every pyramid tile copied byte
for byte (see :mod:`medcloak.formats.slide_tiff`). A slide is streamed into the release, never
held in memory whole. DICOM whole-slide images are DICOM objects (:mod:`.dicom`).

A released slide is ``slides/<token><ext>``: the token is a keyed hash of the slide's size and
its first and last :data:`SAMPLE` bytes (where its IFDs, and so its tile offsets, lie), read in
moments where hashing the whole slide would read it once more; the extension is the vendor's, as
OpenSlide expects it.

Under ``--option clean-pixel-data``, the run's ``[[slide_region]]`` templates (see
:mod:`medcloak.rules.regions`) that match a slide's vendor and level-0 size have their boxes
redacted on every level and the thumbnail: the input is redacted
(:func:`medcloak.formats.slide_redact.redact_slide_boxes`) into a temporary file beside the
staging file, which is then cleaned into the staging file as any slide is (so the released slide
is what ``verify`` expects of a cleaned one, and hashed on the way). A matching template on a
slide that redaction does not handle (its vendor, its tiles' codec) quarantines the slide: the
text the template names would otherwise be released. No template matching: the slide is cleaned
as it would be without templates.

Its review record (filled as the slide is written): modality ``SM``, its token as series, the
pages removed (``label``, ``macro``...) as changed, the kept text tags (ImageDescription, XMP...,
cut into fields; see :func:`medcloak.formats.slide_tiff.text_pairs`), and the pixel change
(``regions-redacted`` with the templates' boxes, else ``label-removed``).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..model import Finding
from .base import fingerprint

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from ..rules.regions import SlideRegionTemplate
    from .base import Released, VerifyContext

NAME = "slide"
KINDS = {"slide": "remove label and macro, clean vendor metadata, copy the pyramid"}
#: bytes of a slide's beginning and end that its released name is made from
SAMPLE = 4 << 20
EXTENSIONS = {"aperio": ".svs", "hamamatsu": ".ndpi"}
#: the input's own extension is kept when it is one of these (readers pick formats by extension,
#: and an extension identifies no one); otherwise the vendor's, or ``.tiff``
KEPT_SUFFIXES = (".ome.tiff", ".ome.tif", ".svs", ".ndpi", ".bif", ".qptiff", ".tiff", ".tif")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(head: bytes, path: Path) -> str | None:
    """A TIFF or BigTIFF file whose pages make a slide (a pyramid, a label or macro page, a
    vendor's signature); a single-page TIFF is a photograph."""
    if head[:4] not in TIFF_MAGIC:
        return None
    from ..formats.slide_tiff import sniff_slide

    return "slide" if sniff_slide(path) is not None else None


@dataclass(frozen=True)
class Settings:
    #: the run's ``[[slide_region]]`` templates (the engine refuses them without clean-pixel-data)
    regions: tuple[SlideRegionTemplate, ...] = ()


def settings(options: dict[str, Any]) -> Settings:
    from ..rules.regions import slide_templates

    return Settings(tuple(slide_templates(options.get("regions", ()))))


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from ..formats.slide_tiff import clean_slide, sniff_slide
    from ..review_record import record, text_values
    from .base import Released

    path = Path(task.source.path)
    vendor = sniff_slide(path) or "generic"
    token = job.keyring.token("slide", fingerprint(path, SAMPLE))
    boxes, fill = _template_boxes(path, job)
    # the review record, completed as the slide is written (the engine reads it after)
    review = record("slide", modality="SM", series=token)

    def clean(src: Path, fh: BinaryIO) -> tuple[dict[str, int], str]:
        report = clean_slide(src, fh, job.keyring)
        review.update(record("slide", modality="SM", series=token, text=text_values(report.text),
                             changed={role: "removed" for role in report.removed},
                             pixels=_pixels(report.removed, boxes)))
        counts = dict(report.counts)
        counts[f"slide-{report.vendor}"] = 1
        for removed in report.removed:
            counts[f"{removed}-removed"] = counts.get(f"{removed}-removed", 0) + 1
        return counts, report.sha256

    def write(fh: BinaryIO) -> tuple[dict[str, int], str]:
        if not boxes:
            return clean(path, fh)
        return _redact_then_clean(path, fh, boxes, fill, clean)

    name = path.name.lower()
    suffix = next((x for x in KEPT_SUFFIXES if name.endswith(x)), EXTENSIONS.get(vendor, ".tiff"))
    return [Released(b"", f"slides/{token}{suffix}", write=write, review=review)]


def _pixels(removed: tuple[str, ...], boxes: list[tuple[int, int, int, int]]) -> dict[str, Any] | None:
    """The record's pixel change: the templates' boxes redacted (level 0, as frame 0), else the
    label removed (the whole page, no picture)."""
    if boxes:
        return {"change": "regions-redacted", "boxes": [[0, *box] for box in boxes]}
    if "label" in removed:
        return {"change": "label-removed"}
    return None


def _template_boxes(path: Path, job: Job) -> tuple[list[tuple[int, int, int, int]], str]:
    """(boxes in level-0 pixels, fill) of the slide templates that match the slide at ``path``;
    no boxes when none match (or there are none, or clean-pixel-data is off). Raises
    :class:`UnsupportedInputError` when a template matches a slide whose vendor redaction does
    not handle (fail closed)."""
    own: Settings = job.settings.get(NAME) or Settings()
    if not own.regions or not job.profile.has("clean-pixel-data"):
        return [], "black"
    from ..errors import UnsupportedInputError
    from ..formats.slide_redact import REDACTABLE
    from ..rules.regions import select_slide

    vendor, width, height = _level0(path)
    boxes, names, fill = select_slide(vendor, width, height, own.regions)
    if names and vendor not in REDACTABLE:
        raise UnsupportedInputError(
            f"a slide region template matches this {vendor} slide, but redaction of {vendor} slides is not "
            f"handled (only {', '.join(REDACTABLE)}): not released, so the text the template names is not either")
    return boxes, fill


def _level0(path: Path) -> tuple[str, int, int]:
    """(vendor, width, height of level 0: the largest pyramid level) of the slide at ``path``,
    read as :func:`medcloak.formats.slide_tiff.clean_slide` reads it (and refused as it would be)."""
    from ..errors import CorruptInputError, UnsupportedInputError
    from ..formats.slide_ifd import TiffIfds
    from ..formats.slide_tiff import _vendor
    from ..formats.slide_vendors import roles

    with open(path, "rb") as fh:
        t = TiffIfds(fh.fileno(), os.fstat(fh.fileno()).st_size)
        pages = t.pages()
        vendor = _vendor(t, pages)
        if vendor is None:
            raise UnsupportedInputError("TIFF slide of a kind not handled (no pyramid)")
        sizes = []
        for page, role in zip(pages, roles(t, vendor, pages)):
            if role == "level":
                sizes += [(int(t.number(p, 256) or 0), int(t.number(p, 257) or 0)) for p in (page, *page.subifds)]
    width, height = max(sizes, key=lambda s: s[0] * s[1], default=(0, 0))
    if width <= 0 or height <= 0:
        raise CorruptInputError("slide without a pyramid level of known size")
    return vendor, width, height


def _redact_then_clean(path: Path, fh: BinaryIO, boxes: list[tuple[int, int, int, int]], fill: str,
                       clean: Any) -> tuple[dict[str, int], str]:
    """The boxes redacted on every level into a temporary file beside ``fh`` (in the release's
    staging folder, removed at once), which is then cleaned into ``fh``: the counts of both, and
    the digest cleaning took of what it wrote. A redaction that fails (a codec it does not
    handle, a corrupt tile) stops its copy and leaves the temporary file empty, and it is removed."""
    from ..formats.slide_redact import redact_slide_boxes

    name = getattr(fh, "name", None)
    folder = os.path.dirname(name) if isinstance(name, str) else None
    fd, tmp = tempfile.mkstemp(prefix=".redact-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w+b") as redacted:
            done = redact_slide_boxes(path, redacted, boxes, 0, fill)
        counts, digest = clean(Path(tmp), fh)
    finally:
        os.unlink(tmp)
    counts["pixel-regions-redacted"] = 1
    for key in ("tiles-touched", "tiles-moved", "blocks-redacted", "tiles-reencoded"):
        counts[f"redact-{key}"] = done.get(key, 0)
    return counts, digest


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
