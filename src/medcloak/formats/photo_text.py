"""Burned-in text in photographs (standalone JPEG, PNG, TIFF), under the Clean Pixel Data option:
the image decoded, its text found (:mod:`medcloak.pixels.burned_in`), the padded boxes redacted.

- JPEG (sequential Huffman): in the compressed domain (:mod:`medcloak.pixels.jpeg_redact`), every
  block outside the boxes keeping its coefficients; a progressive or arithmetic-coded JPEG with
  text has no such route and is refused.
- PNG: decoded, painted black (opaque where there is alpha; in a palette image black, added to
  a palette with room, else its darkest entry) and written again as PNG, then decoded once more and compared with what was
  painted. A PNG of 16-bit colour, which the decoder here reduces to 8 bits, is refused when text
  is found in it (its redaction would not be exact).
- TIFF (one page; grey, RGB or palette, 8 or 16 bits, uncompressed, LZW, Deflate or PackBits):
  decoded, painted black (opaque where there is alpha, the darkest entry of a colour map, the
  highest value of MINISWHITE) and written again with its own compression, predictor, planar
  configuration and strip or tile size, then decoded once more and compared. Any other TIFF
  with text (JPEG-compressed, bilevel, CMYK, ...) is refused.

Whatever cannot be decoded is refused: its text was never looked for. A refusal quarantines; one
by Pillow's decompression-bomb guard, or for memory, as a :class:`~medcloak.errors.LimitError`
(the declared size was checked before, :mod:`medcloak.formats.photo_limits`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CorruptInputError, LimitError, MedcloakError, UnsupportedInputError

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PhotoScan:
    data: bytes
    boxes: list[Box]
    #: the decoded image (before redaction) when text was found, for the review picture
    frame: Any = None
    #: boxes the OCR second opinion read as a site's safe annotations, left unredacted
    kept: int = 0


def _decode(data: bytes, kind: str) -> np.ndarray:
    """The image as the detector takes it (grey or RGB)."""
    try:
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                page = tif.pages.first
                arr = np.asarray(page.asarray())
                if int(page.planarconfig) == 2 and page.samplesperpixel > 1:
                    arr = np.moveaxis(arr, 0, -1)  # samples last
                if int(page.photometric) == 3 and page.colormap is not None and arr.ndim == 2:
                    colormap = np.asarray(page.colormap)  # 16 bits a sample, as TIFF stores it
                    if colormap.max() > 255:
                        colormap = colormap >> 8
                    arr = colormap.astype(np.uint8)[:, arr].transpose(1, 2, 0)  # palette looked up
            if arr.ndim == 3 and arr.shape[2] in (2, 4):
                arr = arr[:, :, : arr.shape[2] - 1]  # alpha left out
            if arr.ndim == 3 and arr.shape[2] == 1:
                arr = arr[:, :, 0]
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
        raise _decode_error(exc) from None


def _decode_error(exc: Exception) -> MedcloakError:
    """What a decoder's failure quarantines as: Pillow's decompression-bomb guard (its
    ``Image.MAX_IMAGE_PIXELS``) and memory running out are limits (:class:`LimitError`),
    anything else a photograph that cannot be decoded."""
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return LimitError(f"the photograph declares more pixels than the decoder's decompression-bomb limit of "
                          f"{Image.MAX_IMAGE_PIXELS} allows (Pillow's Image.MAX_IMAGE_PIXELS)")
    if isinstance(exc, MemoryError):
        return LimitError("the photograph does not fit in memory when decoded (--max-object-size)")
    return CorruptInputError(f"the photograph cannot be decoded for the burned-in text scan ({type(exc).__name__})")


def scan_photo(data: bytes, kind: str, safe: Any = None) -> PhotoScan:
    """Find the text of the photograph ``data`` (metadata already stripped) and redact it;
    raises :class:`UnsupportedInputError` when text was found and there is no exact route."""
    from ..pixels.burned_in import detect

    frame = _decode(data, kind)
    kept: list[Any] = []
    boxes = detect(frame, safe=safe, kept=kept)
    if not boxes:
        return PhotoScan(data, [], kept=len(kept))
    if kind == "jpeg":
        from ..pixels.jpeg_redact import redact_jpeg_detailed

        out = redact_jpeg_detailed(data, boxes, "black").data
    elif kind == "png":
        out = _redact_png(data, boxes)
    else:
        out = _redact_tiff(data, boxes)
    return PhotoScan(out, boxes, frame, len(kept))


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


#: TIFF compressions re-encoded exactly: none, LZW, Deflate (both codes), PackBits
TIFF_LOSSLESS = {1: None, 5: "lzw", 8: "deflate", 32946: "deflate", 32773: "packbits"}


def _redact_tiff(data: bytes, boxes: list[Box]) -> bytes:
    import tifffile

    from ..pixels.tiff_meta import strip_tiff_metadata

    refused = "burned-in text found in a TIFF photograph whose layout has no exact redaction route here"
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        compression, photometric = int(page.compression), int(page.photometric)
        if compression not in TIFF_LOSSLESS or photometric not in (0, 1, 2, 3) or page.bitspersample not in (8, 16):
            raise UnsupportedInputError(refused)
        arr = page.asarray().copy()
        planar = int(page.planarconfig) == 2 and page.samplesperpixel > 1
        colormap = page.colormap
        layout: dict[str, Any] = {"tile": (page.tilelength, page.tilewidth)} if page.is_tiled else {"rowsperstrip": page.rowsperstrip}
        extrasamples = tuple(int(e) for e in page.extrasamples) if page.extrasamples else ()
        predictor = int(page.predictor)
    view = np.moveaxis(arr, 0, -1) if planar else arr  # samples last
    top = np.iinfo(arr.dtype).max
    colour = view.shape[-1] if view.ndim == 3 else 1
    fill = np.zeros(colour, arr.dtype)
    if photometric == 0:  # MINISWHITE: black is the highest value
        fill[0] = top
    elif photometric == 3 and colormap is not None:
        fill[0] = int(np.asarray(colormap, np.int64).sum(axis=0).argmin())
    if extrasamples:  # alpha: opaque
        fill[-len(extrasamples):] = top
    for x0, y0, x1, y1 in boxes:
        view[y0:y1, x0:x1] = fill if view.ndim == 3 else fill[0]
    buf = io.BytesIO()
    tifffile.imwrite(
        buf, arr, photometric={0: "miniswhite", 1: "minisblack", 2: "rgb", 3: "palette"}[photometric],
        planarconfig="separate" if planar else ("contig" if arr.ndim == 3 else None),
        compression=TIFF_LOSSLESS[compression], predictor=predictor if predictor in (2, 3) else None,
        colormap=colormap if photometric == 3 else None, extrasamples=extrasamples or None,
        metadata=None, **layout,
    )
    out = strip_tiff_metadata(buf.getvalue())
    with tifffile.TiffFile(io.BytesIO(out)) as check:
        if not np.array_equal(check.pages.first.asarray(), arr):
            raise CorruptInputError("the re-encoded TIFF does not decode to the pixels it was given")
    return out
