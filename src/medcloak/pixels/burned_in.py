"""Burned-in text, format-agnostic: a frame made fit for the detector, the boxes it finds padded,
and the picture of a redacted frame for the curator's review.

The detector (:func:`medcloak.pixels.text.detect_text`) takes a 2-D grey frame of stored values
(any depth, signed or not, MONOCHROME1 or 2) or an H x W x 3 colour frame (palette and YBR
decoded to RGB by the caller); :func:`detector_input` only gives a frame of one sample its two
dimensions. Each box it returns is grown by :data:`PAD` more pixels on every side (anti-aliased
edges, a stroke its contrast test cut short: a missed pixel of a name is a leak, a few more
pixels of border are not) and clipped to the frame.

The review picture goes to the private audit folder, never into the release (it shows the text):
the frame before redaction, scaled to 8 bits for display (MONOCHROME1 inverted), no larger than
:data:`REVIEW_SIDE` pixels (a frame of half that or less is doubled), each box outlined in red
just outside it, so that the curator sees what was covered and any text left outside a box.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MissingDependencyError

Box = tuple[int, int, int, int]

#: pixels added on every side of a detected box
PAD = 3
#: the longest side of a review picture (a larger frame is scaled down, a smaller one kept)
REVIEW_SIDE = 1024


def detector_input(frame: np.ndarray) -> np.ndarray:
    """``frame`` (rows x columns, or rows x columns x samples) as the detector takes it: 2-D grey
    of its stored type and depth, or rows x columns x 3 colour."""
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] != 3:
        raise ValueError(f"a frame of {arr.shape[2]} samples per pixel")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    return arr


def _to_depth(arr: np.ndarray, bits: int) -> np.ndarray:
    """``arr`` as unsigned values of ``bits`` bits (for display): signed values shifted by their
    lowest, floats spread over the range, wider integers shifted right by what their range needs."""
    if arr.dtype.kind == "f":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = ((1 << bits) - 1) / (hi - lo) if hi > lo else 0.0
        return np.nan_to_num((arr - lo) * scale).astype(np.int64)
    wide = arr.astype(np.int64)
    if arr.dtype.kind == "i":
        wide = wide - int(wide.min()) if wide.size else wide
    top = int(wide.max()) if wide.size else 0
    shift = max(0, top.bit_length() - bits)
    return wide >> shift


def detect(
    frame: np.ndarray, photometric: str = "", bits_stored: int | None = None, safe: Any = None,
    kept: list[tuple[Box, str]] | None = None,
) -> list[Box]:
    """The padded boxes of the text the detector finds in ``frame`` (a decoded frame of stored
    values, see :func:`detector_input`; ``bits_stored``: a DICOM frame's Bits Stored, the bits
    above it ignored), clipped to it; raises :class:`MissingDependencyError` when the detector
    cannot be loaded. ``safe``: a site's :class:`medcloak.pixels.ocr.SafeList`; the boxes the OCR
    second opinion reads, in whole and confidently, as safe annotations are left out (and added,
    with their text, to ``kept``); every other box stays."""
    try:
        from .text import detect_text
    except ImportError as exc:
        raise MissingDependencyError(f"the burned-in text detector cannot be loaded ({exc.name or exc})") from None
    arr = detector_input(frame)
    kwargs: dict[str, Any] = {}
    if photometric:
        kwargs["photometric"] = photometric
    if bits_stored and arr.ndim == 2:
        kwargs["bits_stored"] = int(bits_stored)
    boxes = detect_text(arr, **kwargs)
    if safe:
        from .ocr import keep_safe

        boxes, safe_boxes = keep_safe(arr, boxes, safe)
        if kept is not None:
            kept.extend(safe_boxes)
    return pad(boxes, arr.shape[1], arr.shape[0])


def pad(boxes: Sequence[Sequence[int]], width: int, height: int, by: int = PAD) -> list[Box]:
    """``boxes`` grown by ``by`` pixels on every side and clipped to ``width`` x ``height``; empty
    ones dropped."""
    out = []
    for x0, y0, x1, y1 in boxes:
        a, b = max(0, int(x0) - by), max(0, int(y0) - by)
        c, d = min(width, int(x1) + by), min(height, int(y1) + by)
        if a < c and b < d:
            out.append((a, b, c, d))
    return out


def display(frame: np.ndarray, photometric: str = "") -> np.ndarray:
    """``frame`` as an 8-bit picture for the eye: grey of more than 8 bits windowed on its 0.5
    and 99.5 percentiles, MONOCHROME1 inverted, colour of more than 8 bits shifted down."""
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        return arr if arr.dtype == np.uint8 else _to_depth(arr, 8).astype(np.uint8)
    if arr.dtype == np.uint8:
        grey = arr
    else:
        values = arr.astype(np.float32)
        sample = values[:: max(1, values.shape[0] // 256), :: max(1, values.shape[1] // 256)]
        lo, hi = (float(v) for v in np.percentile(sample, (0.5, 99.5)))
        grey = np.clip((values - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
    if photometric.strip().upper() == "MONOCHROME1":
        grey = 255 - grey
    return grey


def review_picture(frame: np.ndarray, boxes: Sequence[Box], out: Path, photometric: str = "") -> Path:
    """Write the review picture of ``frame`` (before redaction) with ``boxes`` outlined in red to
    ``out`` (PNG, owner-only: it shows the text) and return its path."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(display(frame, photometric)).convert("RGB")
    side = max(img.width, img.height)
    # small frames doubled (their text legible), large ones brought down to REVIEW_SIDE
    scale = 2.0 if side * 2 <= REVIEW_SIDE else min(1.0, REVIEW_SIDE / side)
    if scale != 1.0:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.NEAREST if scale > 1 else Image.BILINEAR)
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1 in boxes:
        # the outline just outside the box: what the box covers stays visible
        a, b = int(x0 * scale) - 1, int(y0 * scale) - 1
        c, d = int(np.ceil(x1 * scale)), int(np.ceil(y1 * scale))
        draw.rectangle((a, b, c, d), outline=(255, 0, 0), width=1)
    with open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        img.save(fh, format="PNG", compress_level=6)
    out.chmod(0o600)  # a file that was there before keeps its mode through O_CREAT
    return out


def review_writer(audit: str, object_id: str) -> Callable[[Any, list[Box], str], None] | None:
    """What writes the review picture of an object whose burned-in text was redacted to the audit
    folder ``audit``: ``qc/<object id>-text.png`` (the object id is the manifest's); ``None``
    without an audit folder. Never into the release: the picture shows the text."""
    if not audit:
        return None

    def write(frame: Any, boxes: list[Box], photometric: str) -> None:
        folder = Path(audit) / "qc"
        folder.mkdir(exist_ok=True, mode=0o700)
        review_picture(frame, boxes, folder / f"{object_id}-text.png", photometric)

    return write


class ReviewPicture:
    """An object's review picture of its redacted burned-in text, for its review record (see
    :mod:`medcloak.review_record`): ``writer`` writes it as :func:`review_writer` does (None
    without an audit folder), and :meth:`add` names it (``qc/<object id>-text.png``, relative to
    the audit folder) in the ``pixels`` of a released object's record when it was written."""

    def __init__(self, audit: str, object_id: str) -> None:
        self._write = review_writer(audit, object_id)
        self.name = f"qc/{object_id}-text.png"
        self.written = False
        self.writer = self._call if self._write is not None else None

    def _call(self, frame: Any, boxes: list[Box], photometric: str) -> None:
        assert self._write is not None
        self._write(frame, boxes, photometric)
        self.written = True

    def add(self, released: Any) -> Any:
        """``released`` (a :class:`~medcloak.handlers.base.Released`), its record's picture named."""
        pixels = (getattr(released, "review", None) or {}).get("pixels")
        if self.written and pixels is not None:
            pixels["picture"] = self.name
        return released
