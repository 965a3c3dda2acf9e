"""Photographs (standalone JPEG, PNG and single-page TIFF): metadata stripped, image data
untouched but for burned-in text redacted under the Clean Pixel Data option, a keyed name (see
:mod:`medcloak.formats.photo`). Its review record: its token as series, ``metadata`` removed,
the redacted text boxes with their picture (``qc/<object id>-text.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "photo"
KINDS = {"jpeg": "strip metadata", "png": "strip metadata", "tiff": "strip metadata"}
SUFFIXES = (".jpg", ".png", ".tif")


def sniff(head: bytes, path: Path) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    return None


def settings(options: dict[str, Any]) -> Any:
    """The site's OCR safe list (``--ocr-safe``), or None."""
    return options.get("ocr_safe")


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from ..formats.photo import deidentify_photo
    from ..pixels.burned_in import ReviewPicture

    scan = job.profile.has("clean-pixel-data")
    picture = ReviewPicture(job.audit, task.object_id)
    return [picture.add(deidentify_photo(Path(task.source.path), task.source.format, job.keyring, scan_text=scan,
                                         review=picture.writer if scan else None, safe=job.settings.get(NAME)))]


def owns(relpath: str) -> bool:
    return relpath.startswith("photos/") and relpath.endswith(SUFFIXES)


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released photograph holds no metadata segment or chunk."""
    from ..errors import CorruptInputError, LimitError
    from ..pixels.jpeg_meta import strip_jpeg_metadata
    from ..pixels.png_meta import strip_png_metadata
    from ..pixels.tiff_meta import strip_tiff_metadata

    data = path.read_bytes()
    strip = {".jpg": strip_jpeg_metadata, ".png": strip_png_metadata}.get(path.suffix, strip_tiff_metadata)
    try:
        clean = strip(data)
    except (CorruptInputError, LimitError) as exc:  # a limit: a TIFF page beyond verify's (default) limits
        return [Finding(relpath, "error", f"unreadable photograph ({exc})")]
    if clean != data:
        return [Finding(relpath, "error", "photograph still carries metadata")]
    return []
