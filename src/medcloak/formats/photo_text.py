"""Burned-in text in photographs (standalone JPEG, PNG, TIFF), under the Clean Pixel Data option:
the image decoded, its text found (:mod:`medcloak.pixels.burned_in`), the padded boxes redacted.

- JPEG (sequential Huffman): in the compressed domain (:mod:`medcloak.pixels.jpeg_redact`), every
  block outside the boxes keeping its coefficients; a progressive or arithmetic-coded JPEG with
  text has no such route and is refused.
- PNG: decoded, painted black (opaque where there is alpha; in a palette image black, added to
  a palette with room, else its darkest entry) and written again as PNG, then decoded once more and compared with what was
  painted. A PNG of 16-bit colour, which the decoder here reduces to 8 bits, is refused when text
  is found in it (its redaction would not be exact).
- TIFF: scanned; one with text is refused (no exact re-encoding here for TIFF's many layouts).

Whatever cannot be decoded is refused: its text was never looked for. A refusal quarantines.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CorruptInputError, MedcloakError, UnsupportedInputError

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PhotoScan:
    data: bytes
    boxes: list[Box]
    #: the decoded image (before redaction) when text was found, for the review picture
    frame: Any = None


def _decode(data: bytes, kind: str) -> np.ndarray:
    """The image as the detector takes it (grey or RGB)."""
    try:
        if kind == "tiff":
            import tifffile

            arr = np.asarray(tifffile.imread(io.BytesIO(data), key=0))
            if arr.ndim == 3 and arr.shape[2] == 4:
                arr = arr[:, :, :3]
            if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):
                arr = np.moveaxis(arr[:3], 0, 2)  # planar
            if arr.ndim not in (2, 3):
                raise UnsupportedInputError(f"a TIFF image of {arr.ndim} dimensions")
            return arr
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(img).astype(np.uint16 if img.mode != "I" else np.int32)
            if img.mode in ("1", "L", "LA"):
                return np.asarray(img.convert("L"))
            return np.asarray(img.convert("RGB"))
    except MedcloakError:
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed: text not looked for is text released
        raise CorruptInputError(f"the photograph cannot be decoded for the burned-in text scan ({type(exc).__name__})") from None


def scan_photo(data: bytes, kind: str) -> PhotoScan:
    """Find the text of the photograph ``data`` (metadata already stripped) and redact it;
    raises :class:`UnsupportedInputError` when text was found and there is no exact route."""
    from ..pixels.burned_in import detect

    frame = _decode(data, kind)
    boxes = detect(frame)
    if not boxes:
        return PhotoScan(data, [])
    if kind == "jpeg":
        from ..pixels.jpeg_redact import redact_jpeg_detailed

        out = redact_jpeg_detailed(data, boxes, "black").data
    elif kind == "png":
        out = _redact_png(data, boxes)
    else:
        raise UnsupportedInputError("burned-in text found in a TIFF photograph, which has no exact redaction route here")
    return PhotoScan(out, boxes, frame)


def _redact_png(data: bytes, boxes: list[Box]) -> bytes:
    from PIL import Image, ImageDraw

    from ..pixels.png_meta import strip_png_metadata

    depth, colour = data[24], data[25]
    if depth == 16 and colour in (2, 4, 6):
        raise UnsupportedInputError("burned-in text found in a 16-bit colour PNG, which has no exact redaction route here")
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        painted = img.copy()
    mode = painted.mode
    if mode in ("P", "PA"):
        # black from the palette, added to it when it has room, else its darkest entry
        palette = painted.getpalette() or []
        entries = np.asarray(palette or [0, 0, 0], np.int64).reshape(-1, 3)
        sums = entries.sum(axis=1)
        black: Any = int(sums.argmin())
        if sums[black] != 0 and len(entries) < 256:
            painted.putpalette(palette + [0, 0, 0])
            black = len(entries)
    else:
        black = 0
    fill = {"RGB": (0, 0, 0), "RGBA": (0, 0, 0, 255), "LA": (0, 255), "PA": (black, 255)}.get(mode, black)
    draw = ImageDraw.Draw(painted)
    expected = np.array(painted)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
        expected[y0:y1, x0:x1] = fill if not isinstance(fill, tuple) else np.asarray(fill, expected.dtype)
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"transparency": img.info["transparency"]} if "transparency" in img.info else {}
    painted.save(buf, format="PNG", **kwargs)
    out = strip_png_metadata(buf.getvalue())
    with Image.open(io.BytesIO(out)) as check:
        if check.mode != mode or not np.array_equal(np.asarray(check), expected):
            raise CorruptInputError("the re-encoded PNG does not decode to the pixels it was given")
    return out
