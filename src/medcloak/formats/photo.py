"""Photographs (standalone JPEG, PNG and TIFF): metadata stripped, image data untouched (but for
burned-in text redacted under the Clean Pixel Data option, see :mod:`medcloak.formats.photo_text`),
keyed names.

A photograph carries no header identity to pseudonymise; what identifies is its metadata (EXIF
with GPS and camera serials, XMP, IPTC, comments, PNG text, TIFF tags) and its file name. The
released name is a keyed hash of the file's content: ``photos/<token>.jpg``, ``.png`` or ``.tif``.

What a photograph declares (its size, its compressed data) is checked against the run's limits
before anything is decoded (:mod:`medcloak.formats.photo_limits`; a TIFF's pages as its metadata
is stripped, :mod:`medcloak.pixels.tiff_meta`): a refusal quarantines.

A TIFF of more than one page is refused: a whole-slide image (several pages making a pyramid,
with label and macro pages that show the patient's name) is a slide, which discovery gives to the
slide handler (:mod:`medcloak.handlers.slide`); any other document's pages may show anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..handlers.base import Released

if TYPE_CHECKING:
    from ..pseudonym import Keyring

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sniff(head: bytes) -> str | None:
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    from ..pixels.tiff_meta import sniff as is_tiff

    if is_tiff(head):
        return "tiff"
    return None


def deidentify_photo(
    path: Path, kind: str, keyring: Keyring, scan_text: bool = False, review: Any = None, safe: Any = None
) -> Released:
    """``scan_text`` (Clean Pixel Data): the image is scanned for burned-in text and the text
    redacted (:mod:`medcloak.formats.photo_text`); ``review`` is then given the decoded image,
    its boxes and "" when text was found, for the audit's picture; ``safe``: a site's OCR safe
    list (boxes read as its safe annotations are kept)."""
    from .photo_limits import check_jpeg, check_png

    data = path.read_bytes()
    if kind == "jpeg":
        from ..pixels.jpeg_meta import strip_jpeg_metadata

        check_jpeg(data)
        out, ext = strip_jpeg_metadata(data), "jpg"
    elif kind == "png":
        from ..pixels.png_meta import strip_png_metadata

        out, ext = strip_png_metadata(data), "png"
        check_png(out)  # the image-defining chunks, as they are kept
    else:
        from ..errors import UnsupportedInputError
        from ..pixels.tiff_meta import page_count, strip_tiff_metadata

        if page_count(data) != 1:
            raise UnsupportedInputError(
                "TIFF of several pages (a whole-slide image or a document, whose other pages may show "
                "labels): not handled as a photograph"
            )
        out, ext = strip_tiff_metadata(data), "tif"
    counts = {"metadata-stripped": int(out != data)}
    boxes: list[Any] = []
    if scan_text:
        from .photo_text import scan_photo

        found = scan_photo(out, kind, safe)
        out = found.data
        counts["pixel-frames-scanned"] = 1
        counts["pixel-text-boxes-redacted"] = len(found.boxes)
        if found.kept:
            counts["pixel-text-boxes-kept-safe"] = found.kept
        boxes = list(found.boxes)
        if review is not None and found.boxes:
            review(found.frame, found.boxes, "")
    token = keyring.token("photo", hashlib.sha256(data).hexdigest())
    changed = {}
    if counts["metadata-stripped"]:
        kept = blocks(out, kind)
        changed = {name: "removed" for name in sorted(blocks(data, kind) - kept)} or {"metadata": "removed"}
    return Released(out, f"photos/{token}.{ext}", {}, None, counts, review=_record(token, changed, boxes))


def _record(token: str, changed: dict[str, str], boxes: list[Any]) -> dict[str, Any]:
    """The photograph's review record (:mod:`medcloak.review_record`): its token as its series
    (each photograph is one), the metadata blocks removed (see :func:`blocks`), no text (none is
    kept), and its redacted text boxes (on frame 0; the handler names the picture)."""
    from ..review_record import record

    pixels = None
    if boxes:
        pixels = {"change": "text-redacted", "frames": 1, "boxes": [[0, *box] for box in boxes]}
    return record("photo", series=token, changed=changed, pixels=pixels)


#: JPEG APPn payload beginnings and the names the record gives those segments
_APP_NAMES = ((b"Exif\x00", "Exif"), (b"http://ns.adobe.com/xap/1.0/", "XMP"), (b"http://ns.adobe.com/xmp/extension/", "XMP"),
              (b"Photoshop 3.0", "IPTC"), (b"ICC_PROFILE", "ICC"), (b"JFIF", "JFIF"), (b"JFXX", "JFIF thumbnail"),
              (b"Adobe", "Adobe"), (b"MPF", "MPF"), (b"FLIR", "FLIR"), (b"Ducky", "Ducky"))


def blocks(data: bytes, kind: str) -> set[str]:
    """Names of the metadata blocks of a photograph as the record names them: a JPEG's segments
    before its first scan (``APP1 Exif``, ``APP1 XMP``, ``APP13 IPTC``, ``COM``; an APPn of no
    known kind as ``APPn``), a PNG's chunk types; a TIFF's are not told apart (``metadata``)."""
    if kind == "png":
        from ..pixels.png_meta import chunks

        return {t.decode("latin-1") for t, _ in chunks(data)}
    if kind != "jpeg":
        return {"metadata"}
    out, i = set(), 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xDA, 0xD9):
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xE0 <= marker <= 0xEF:
            payload = data[i + 4 : i + 4 + 40]
            known = next((name for head, name in _APP_NAMES if payload.startswith(head)), "")
            out.add(f"APP{marker - 0xE0} {known}".strip())
        elif marker == 0xFE:
            out.add("COM")
        i += 2 + length
    return out
