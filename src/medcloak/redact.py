"""``medcloak redact``: rectangles of one JPEG, DICOM or TIFF-family slide redacted, every other
pixel unchanged.

A JPEG file is redacted in the compressed domain and, unless asked to keep it, loses its APPn/COM
metadata (EXIF, XMP, comments...). A DICOM file has its Pixel Data redacted by the route of its
transfer syntax (:mod:`medcloak.formats.dicom_redact`) and its JPEG frames stripped of metadata;
the header is otherwise left as it is (header de-identification is ``medcloak run``'s job). A
slide has its box redacted on every level and the thumbnail (:mod:`medcloak.formats.slide_redact`),
its metadata, label and macro left as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .errors import UnsupportedInputError, UsageError

Box = tuple[int, int, int, int]


def _write(out: Path, data: bytes) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _redact_dicom(path: Path, boxes: Sequence[Box], fill: str, frames: list[int] | None, keep: bool) -> tuple[bytes, int]:
    from io import BytesIO

    from .formats.dicom import _transfer_syntax, read
    from .formats.dicom_pixels import check_pixel_data, strip_jpeg_frames
    from .formats.dicom_redact import redact_dataset

    ds = read(path)
    ts = _transfer_syntax(ds)
    check_pixel_data(ds, ts)
    if "PixelData" not in ds:
        raise UnsupportedInputError("the DICOM object has no Pixel Data")
    done = redact_dataset(ds, ts, boxes, fill, frames, threads=os.cpu_count() or 1)
    if not keep:
        strip_jpeg_frames(ds, ts)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue(), done


def redact_slide_file(src: Path, out: Path, boxes: Sequence[Box], level: int = 0, fill: str = "black") -> dict[str, int]:
    """Write the slide ``src`` with ``boxes`` (in level ``level``'s pixels) redacted on every
    level to ``out``, streamed; returns :func:`medcloak.formats.slide_redact.redact_slide`'s counts."""
    from .formats.slide_redact import redact_slide_boxes

    if not src.is_file():
        raise UsageError("the input file does not exist")
    if out.exists() and out.resolve() == src.resolve():
        raise UsageError("--out must not be the input file")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with open(tmp, "w+b") as fh:
            counts = redact_slide_boxes(src, fh, boxes, level, fill, durable=True)
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return counts


def redact_file(
    src: Path,
    out: Path,
    boxes: Sequence[Box],
    fill: str = "black",
    frames: list[int] | None = None,
    keep_metadata: bool = False,
    level: int | None = None,
    notes: list[str] | None = None,
) -> int:
    """Write ``src`` with ``boxes`` redacted to ``out``; returns the blocks (JPEG) or boxes
    (other pixel data) redacted; for a slide, the JPEG blocks plus the tiles re-encoded
    (``level``: the slide level the boxes are in, default 0). ``notes`` receives what the user
    should know about the output (JPEG 2000 tiles re-encoded lossily)."""
    from .formats.dicom import sniff
    from .formats.slide_tiff import sniff_slide

    if not src.is_file():
        raise UsageError("the input file does not exist")
    if out.exists() and out.resolve() == src.resolve():
        raise UsageError("--out must not be the input file")
    with open(src, "rb") as fh:
        head = fh.read(132)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+") and sniff_slide(src):
        if frames is not None:
            raise UsageError("--frames applies to DICOM files only")
        counts = redact_slide_file(src, out, boxes, level or 0, fill)
        lossy = counts.get("j2k-tiles-reencoded-lossy", 0)
        if lossy and notes is not None:
            notes.append(f"{lossy} irreversible JPEG 2000 tiles were re-encoded: lossy outside the box too "
                         "(a second generation of compression; see docs/slides.md)")
        return counts["blocks-redacted"] + counts["tiles-reencoded"]
    if level is not None:
        raise UsageError("--level applies to slides only")
    if head[:3] == b"\xff\xd8\xff":
        from .pixels.jpeg_meta import strip_jpeg_metadata
        from .pixels.jpeg_redact import redact_jpeg_detailed

        if frames is not None:
            raise UsageError("--frames applies to DICOM files only")
        result = redact_jpeg_detailed(src.read_bytes(), boxes, fill)
        data = result.data if keep_metadata else strip_jpeg_metadata(result.data)
        done = result.blocks
    elif sniff(head):
        data, done = _redact_dicom(src, boxes, fill, frames, keep_metadata)
    else:
        raise UnsupportedInputError("not a JPEG, DICOM or TIFF-family slide file")
    _write(out, data)
    return done
