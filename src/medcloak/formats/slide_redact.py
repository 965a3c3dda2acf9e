"""Redacting a box on every level of a TIFF-family slide (Aperio SVS in classic TIFF and BigTIFF,
generic tiled pyramids, Hamamatsu NDPI, also of 4 GiB or more, Philips TIFF, OME-TIFF, QPTIFF),
touching only the tiles the box covers.

The box is given in one level's pixels and mapped to every pyramid level and to the thumbnail by
the ratio of their downsamples, rounded outward. A level's downsample is level 0's size over its
size, as readers compute it (Aperio's are not exact powers of two), but for Philips TIFF, whose
pages are padded to whole tiles: there it is the integer OpenSlide derives from the XML's pixel
spacings, and a level's size is level 0's over it. A level may have several pages (OME-TIFF and
QPTIFF channels and planes; OME levels in SubIFDs): the box is redacted on each, and ``--level``
counts levels, not pages. Ventana BIF is refused: its level-0 tiles overlap, placed by the XMP's
stitching data, so a box in pixels is not a tile-grid position. Where the box lands:

- JPEG tiles and strips (abbreviated streams completed by the shared JPEGTables) are redacted in
  the compressed domain by :mod:`medcloak.pixels.jpeg_redact`: the blocks (MCUs when chroma is
  subsampled) the box touches become flat blocks of the fill, every other block keeps its
  coefficients. A tile goes back abbreviated when its tables did not change, else with its own
  tables (which readers let override JPEGTables). The fill is painted in the colour space the
  Photometric tag names, as OpenSlide and libtiff decode it.
- Uncompressed, LZW and deflate tiles (with or without horizontal differencing) are decoded,
  filled and encoded again: lossless, so every pixel outside the box is unchanged (the bytes
  differ, since another encoder wrote them). LZW needs imagecodecs.
- NDPI levels (one JPEG each, with restart intervals one MCU tall) are redacted interval by
  interval with the same kernels, and stay the same length (see :class:`_NdpiLevel`).
- JPEG 2000 tiles (Aperio 33003 and 33005, generic 34712) are decoded, filled and encoded
  again by :mod:`medcloak.formats.slide_j2k`: exactly for reversible (5/3) tiles, at the
  tile's own rate for irreversible (9/7) ones, whose pixels outside the box then carry a second
  generation of loss (the counts say which).
- Other codecs are refused, and the output is left empty (see below).

A tile touched is decoded whole: its size (tile width x length x samples, at 8 bytes a sample at
most) is held against the per-object ceiling before any tile is read, and a lossless tile
inflates to its own size at most (or within the expansion ratio of :mod:`medcloak.limits`,
for the trailing bytes some writers leave): beyond, a :class:`~medcloak.errors.LimitError`.

The output is the input copied (in the kernel where it can) and then patched: a redacted tile
that fits where it was is written there, its byte count updated and the rest of its old bytes
zeroed; one that grew is appended at the end of the file and its offset repointed, its old bytes
zeroed (unless another tile entry shares them). Tiles the box does not touch keep their bytes
and offsets. The copy runs in a thread from the start (``copy_file_range`` releases the GIL)
while the structure is read and the tiles are redacted, so the cost is that of the copy, or of
the tiles touched where they take longer, plus writing the patches; the patches wait in memory
for the copy (up to :data:`HELD` bytes, then the redaction waits for it), so memory holds one
tile beyond those. Whatever fails (a usage error, a codec refused, a tile found corrupt) stops
the copy and leaves the output empty, as if nothing had been written.

Labels and macros are not redacted (``medcloak run`` removes them), and nothing else changes:
metadata stays as it is; de-identifying it is ``medcloak run``'s job.
"""

from __future__ import annotations


import math
import os
import struct
import threading
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import limits
from ..errors import (
    CorruptInputError,
    MissingDependencyError,
    UnsupportedInputError,
    UsageError,
)
from .slide_ifd import Ifd, TiffIfds
from .slide_j2k import J2K_REDACTABLE, YCBCR_CODES, J2kHeader, check_tile, redact_tile
from .slide_tiff import J2K, _copy, _vendor, check_ndpi
from .slide_vendors import DESCRIPTION, roles
from .slide_xml import philips_downsamples

#: the vendors whose slides are redacted (tested); others are refused
REDACTABLE = ("aperio", "hamamatsu", "generic", "philips", "ome", "qptiff")
#: why the vendors that are refused are, where it is known
REFUSED = {"ventana": "Ventana BIF slides are not redacted: their level-0 tiles overlap (the scanner stitches "
                      "them by the XMP's TileJointInfo), so a box in pixels does not map to tiles simply"}

Box = tuple[int, int, int, int]
FILLS = ("black", "grey", "white")
JPEG = 7
LOSSLESS = {1: "uncompressed", 5: "LZW", 8: "deflate", 32946: "deflate"}
_CODEC_NAMES = {6: "old-style JPEG", 34712: "JPEG 2000", 33003: "Aperio JPEG 2000 (YCbCr)",
                33005: "Aperio JPEG 2000 (RGB)", 33004: "JPEG 2000", 34887: "LERC", 50001: "WebP",
                50000: "Zstandard", 34925: "LZMA", 32773: "PackBits", 50002: "JPEG XL"}
_PACK = {3: "H", 4: "I", 16: "Q"}
#: bytes of redacted tiles held in memory while the copy runs
HELD = 64 << 20
#: bytes a tile costs redaction before any is touched (its offset and byte count as Python
#: numbers, and its share of the count of tiles that share bytes): held against --max-object-size
TILE_COST = 256


@dataclass
class _Page:
    """A kept page (pyramid level or thumbnail) as a grid of chunks (tiles, or strips the width
    of the image)."""

    ifd: Ifd
    role: str
    width: int
    height: int
    cw: int  # chunk width and height
    ch: int
    across: int
    down: int
    planes: int
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    compression: int
    photometric: int
    tiled: bool
    #: the page's downsample from level 0 (x, y), as readers give it
    scale: tuple[Fraction, Fraction] = field(default=(Fraction(1), Fraction(1)))


def _page(t: TiffIfds, ifd: Ifd, role: str) -> _Page:
    e = ifd.entries
    width, height = int(t.number(ifd, 256) or 0), int(t.number(ifd, 257) or 0)
    if not width or not height:
        raise CorruptInputError("TIFF page without dimensions")
    planes = int(t.number(ifd, 277, 1) or 1) if t.number(ifd, 284, 1) == 2 else 1
    tiled = t.tiled(ifd)
    if tiled:
        if 325 not in e:
            raise CorruptInputError("TIFF tiles without byte counts")
        cw, ch = int(t.number(ifd, 322) or 0), int(t.number(ifd, 323) or 0)
        if not cw or not ch:
            raise CorruptInputError("TIFF tiles without a size")
        tags = (324, 325)
    elif 273 in e and 279 in e:
        cw, ch = width, min(int(t.number(ifd, 278, 2**32 - 1) or height), height)
        tags = (273, 279)
    else:
        raise CorruptInputError("TIFF page without image data")
    for tag in (273, 279, 324, 325):
        if tag in e and e[tag].kind not in _PACK:
            raise CorruptInputError("TIFF strip or tile offsets of an unexpected type")
    across, down = math.ceil(width / cw), math.ceil(height / ch)
    if e[tags[0]].count != across * down * planes or e[tags[1]].count != e[tags[0]].count:
        raise CorruptInputError("TIFF page with a number of tiles or strips its size does not give")
    # a tile touched is decoded whole (its samples of up to 8 bytes): its size against the ceiling
    samples = 1 if planes > 1 else int(t.number(ifd, 277, 1) or 1)
    limits.check_declared(cw * ch * samples * 8, what=f"a slide tile of {cw}x{ch} pixels")
    limits.check_declared(TILE_COST * e[tags[0]].count, what=f"the bookkeeping of a slide page's {e[tags[0]].count} tiles")
    offsets, counts = t.numbers(e[tags[0]]), t.numbers(e[tags[1]])
    return _Page(ifd, role, width, height, cw, ch, across, down, planes, tuple(int(o) for o in offsets),
                 tuple(int(c) for c in counts), int(t.number(ifd, 259, 1) or 1), int(t.number(ifd, 262, 2) or 0),
                 tiled)


def slide_pages(t: TiffIfds) -> tuple[str, list[_Page], list[_Page]]:
    """(vendor, pyramid level pages largest first, thumbnails) of the slide ``t``, each with its
    downsample from level 0: the ratio of level 0's size to the page's, but for Philips, whose
    pages are padded to whole tiles, the downsample of its XML (as OpenSlide reads it). A level
    may have several pages (OME-TIFF and QPTIFF channels and planes, each with the same size);
    label, macro and other associated pages are not returned (``medcloak run`` removes them)."""
    pages = t.pages()
    vendor = _vendor(t, pages)
    if vendor in REFUSED:
        raise UnsupportedInputError(REFUSED[vendor])
    if vendor not in REDACTABLE:
        raise UnsupportedInputError(f"redaction of this kind of slide is not handled yet ({vendor or 'no pyramid'})")
    check_ndpi(t, vendor, pages)
    page_roles = roles(t, vendor, pages)
    levels, thumbs = [], []
    for ifd, role in zip(pages, page_roles):
        if role == "level":
            levels.append(_page(t, ifd, role))
            for sub in ifd.subifds:
                if t.tiled(sub) and int(t.number(sub, 254, 0) or 0) in (0, 1):
                    levels.append(_page(t, sub, "level"))
        elif role == "thumbnail":
            thumbs.append(_page(t, ifd, role))
    if not levels:
        raise UnsupportedInputError("slide without a pyramid level to redact")
    if vendor == "philips":  # in page order, as OpenSlide pairs them with the XML's levels
        downsamples = philips_downsamples(t.text(pages[0], DESCRIPTION))
        if len(downsamples) != len(levels):
            raise UnsupportedInputError("Philips slide whose XML does not give one pixel spacing per level")
        for page, d in zip(levels, downsamples):
            page.scale = (Fraction(d), Fraction(d))
    levels.sort(key=lambda p: (-p.width, -p.height))
    base = levels[0]
    for page in levels + thumbs:
        if vendor != "philips" or page.role == "thumbnail":
            page.scale = (Fraction(base.width, page.width), Fraction(base.height, page.height))
    if [p.scale for p in levels] != sorted(p.scale for p in levels):
        raise UnsupportedInputError("slide whose levels do not shrink in order")
    if vendor in ("ome", "qptiff") and any(abs(p.width * base.height - base.width * p.height) > base.width + base.height
                                           for p in levels):
        raise UnsupportedInputError(f"{vendor} slide with a level page whose shape is not level 0's (another image?)")
    return vendor, levels, thumbs


def pyramid(levels: list[_Page]) -> list[tuple[tuple[Fraction, Fraction], tuple[int, int]]]:
    """(downsample, size as readers give it) of each distinct level of ``levels`` (largest
    first): a level's channel and plane pages count once, so ``--level`` indexes levels."""
    base = levels[0]
    steps = sorted({p.scale for p in levels})
    return [(s, (math.floor(base.width / s[0]), math.floor(base.height / s[1]))) for s in steps]


def map_box(box: Box, src: tuple[Fraction, Fraction], dst: tuple[Fraction, Fraction], size: tuple[int, int]) -> Box:
    """``box`` in a page of downsample ``src`` (x, y, from level 0) mapped to a page of downsample
    ``dst`` and ``size`` (width, height), rounded outward and clipped; without padding (every
    vendor but Philips) the ratio of the downsamples is the ratio of the page sizes."""
    (x0, y0, x1, y1), (w, h) = box, size
    rx, ry = src[0] / dst[0], src[1] / dst[1]
    return (min(w, math.floor(x0 * rx)), min(h, math.floor(y0 * ry)), min(w, math.ceil(x1 * rx)), min(h, math.ceil(y1 * ry)))


def _check_box(box: Sequence[int], size: tuple[int, int], level: int) -> Box:
    from ..pixels.jpeg_redact import _check_boxes

    [(x0, y0, x1, y1)] = _check_boxes([box])
    w, h = size
    if x0 >= w or y0 >= h:
        raise UsageError(f"the box lies outside level {level} of the slide ({w}x{h} pixels)")
    return x0, y0, min(x1, w), min(y1, h)


@dataclass
class _Chunk:
    page: _Page
    index: int
    box: Box  # in the chunk's pixels


def _chunks(page: _Page, box: Box) -> list[_Chunk]:
    x0, y0, x1, y1 = box
    out = []
    for plane in range(page.planes):
        for cy in range(y0 // page.ch, -(-y1 // page.ch)):
            for cx in range(x0 // page.cw, -(-x1 // page.cw)):
                ox, oy = cx * page.cw, cy * page.ch
                rows = min(page.ch, page.height - oy) if not page.tiled else page.ch
                local = (max(x0 - ox, 0), max(y0 - oy, 0), min(x1 - ox, page.cw), min(y1 - oy, rows))
                out.append(_Chunk(page, plane * page.across * page.down + cy * page.across + cx, local))
    return out


def _check_codec(t: TiffIfds, page: _Page) -> None:
    c = page.compression
    if c == JPEG:
        return
    if c in J2K_REDACTABLE:
        if c == 34712 and page.photometric not in (1, 2, 6):
            raise UnsupportedInputError(f"JPEG 2000 slide tiles of photometric {page.photometric} are not redacted")
        return  # the codestreams are checked tile by tile (slide_j2k.check_tile)
    if c not in LOSSLESS:
        name = _CODEC_NAMES.get(c, f"compression {c}")
        what = "this JPEG 2000 code is not redacted" if c in J2K else "not redacted"
        raise UnsupportedInputError(f"slide tiles in {name}: {what}")
    if c == 5:
        try:
            import imagecodecs  # noqa: F401
        except ImportError:
            raise MissingDependencyError("redacting LZW tiles needs imagecodecs (pip install imagecodecs)") from None
    if int(t.number(page.ifd, 317, 1) or 1) not in (1, 2):
        raise UnsupportedInputError("slide tiles with a floating-point predictor are not redacted")
    if page.photometric not in (0, 1, 2):
        raise UnsupportedInputError(f"uncompressed or lossless slide tiles of photometric {page.photometric}")
    bits = t.numbers(page.ifd.entries[258]) if 258 in page.ifd.entries else (1,)
    fmt = int(t.number(page.ifd, 339, 1) or 1)
    if len(set(bits)) != 1 or (fmt == 1 and bits[0] not in (8, 16, 32)) or (fmt == 3 and bits[0] not in (32, 64)) \
            or fmt not in (1, 3):
        raise UnsupportedInputError("lossless slide tiles of a sample format other than 8, 16 or 32-bit unsigned or float")


def _photometric_name(photometric: int) -> str:
    return {6: "YBR_FULL", 2: "RGB"}.get(photometric, "MONOCHROME2")


def _redact_jpeg_chunk(data: bytes, tables: bytes | None, boxes: list[Box], fill: str, photometric: int) -> tuple[bytes, int]:
    """The JPEG tile ``data`` (abbreviated when ``tables`` are given) with ``boxes`` redacted,
    and the blocks redacted."""
    from ..pixels.jpeg_redact import redact_jpeg_detailed

    head = None
    if tables and tables[:2] == b"\xff\xd8" and tables[-2:] == b"\xff\xd9" and data[:2] == b"\xff\xd8":
        head = tables[:-2]
        data = head + data[2:]
    result = redact_jpeg_detailed(data, boxes, fill, photometric=_photometric_name(photometric))
    if head is None:
        return result.data, result.blocks
    if result.data.startswith(head):
        return b"\xff\xd8" + result.data[len(head) :], result.blocks
    return result.data, result.blocks  # new Huffman tables: the tile carries its own


def _refill(t: TiffIfds, page: _Page, chunk: _Chunk, data: bytes, fill: str) -> bytes:
    """The lossless tile ``data`` decoded, ``chunk.box`` filled, encoded again."""
    ifd = page.ifd
    bits = int(t.numbers(ifd.entries[258])[0]) if 258 in ifd.entries else 1
    fmt = int(t.number(ifd, 339, 1) or 1)
    dtype = np.dtype(("f" if fmt == 3 else "u") + str(bits // 8)).newbyteorder(t.bo)
    spp = 1 if page.planes > 1 else int(t.number(ifd, 277, 1) or 1)
    plane = chunk.index // (page.across * page.down)
    rows = page.ch if page.tiled else min(page.ch, page.height - (chunk.index % (page.across * page.down)) // page.across * page.ch)
    need = rows * page.cw * spp * dtype.itemsize
    # what a tile may inflate to: its own size, or (trailing bytes some writers leave) the ratio,
    # without its floor (a tile is small: the floor is for whole objects)
    tile_limits = replace(limits.current(), ratio_floor=0)
    bound = max(need, limits.inflate_limit(len(data), tile_limits))
    if page.compression == 1:
        raw = data
    elif page.compression == 5:
        import imagecodecs

        try:
            raw = bytes(imagecodecs.lzw_decode(data, out=bound + 1))  # stops there
        except RuntimeError as exc:  # imagecodecs' ImcdError
            raise CorruptInputError("LZW tile of the slide does not decompress") from exc
    else:
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(data, bound + 1)
        except zlib.error as exc:
            raise CorruptInputError("deflate tile of the slide does not decompress") from exc
        if not inflater.eof and len(raw) <= bound:
            raise CorruptInputError("deflate tile of the slide does not decompress (cut short)")
    if len(raw) > bound:
        raise limits.refuse_inflated("a slide tile", len(data), tile_limits)
    if len(raw) < need:
        raise CorruptInputError("slide tile shorter than its size says")
    arr = np.frombuffer(raw, dtype, rows * page.cw * spp).reshape(rows, page.cw, spp).copy()
    predictor = int(t.number(ifd, 317, 1) or 1)
    if predictor == 2:
        arr = np.cumsum(arr, axis=1, dtype=arr.dtype)
    colours = 1 if page.photometric in (0, 1) else 3
    top = 1.0 if fmt == 3 else float((1 << bits) - 1)
    level = {"black": 0.0, "grey": top / 2 if fmt == 3 else float(1 << (bits - 1)), "white": top}[fill]
    if page.photometric == 0:
        level = top - level
    values = [level if (plane if page.planes > 1 else s) < colours else top for s in range(spp)]
    x0, y0, x1, y1 = chunk.box
    arr[y0:y1, x0:x1] = np.array(values, dtype)
    if predictor == 2:
        arr[:, 1:] = arr[:, 1:] - arr[:, :-1]  # modular for unsigned integers, as the predictor is
    out = arr.tobytes() + raw[need:]
    if page.compression == 1:
        return out
    if page.compression == 5:
        import imagecodecs

        return bytes(imagecodecs.lzw_encode(out))
    return zlib.compress(out, 6)


def redact_slide(src: Path, dst: BinaryIO, box: tuple[int, int, int, int], level: int = 0,
                 fill: str = "black", durable: bool = False) -> dict[str, int]:
    """Write the slide ``src`` into ``dst`` (empty, seekable) with ``box`` (pixels of level
    ``level``, ends exclusive) redacted on every level and the thumbnail; see the module.
    Returns counts: pages, tiles touched (NDPI: restart intervals), tiles moved to the end, JPEG
    blocks redacted, tiles re-encoded (lossless codecs and JPEG 2000), and of these the JPEG 2000
    tiles re-encoded exactly (reversible) and lossily (irreversible). On any error (a usage
    error, an unsupported codec, a broken structure, a tile that turns out corrupt while it is
    redacted) the copy is stopped and awaited and ``dst`` left empty
    (:func:`medcloak.redact.redact_slide_file` then removes it). ``durable``: the caller fsyncs
    ``dst`` afterwards, so the copy sends it to the disk as it goes (a temporary file that is
    read and removed at once is better left in the page cache)."""
    return redact_slide_boxes(src, dst, [box], level, fill, durable)


def redact_slide_boxes(src: Path, dst: BinaryIO, boxes: Sequence[Box], level: int = 0,
                       fill: str = "black", durable: bool = False) -> dict[str, int]:
    """:func:`redact_slide` for several boxes at once (each tile rewritten once)."""
    if fill not in FILLS:
        raise UsageError(f"fill must be one of {', '.join(FILLS)}")
    if not boxes:
        raise UsageError("no box to redact")
    with open(src, "rb") as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        out = _Output(fd, size, dst, durable)
        try:
            counts = _redact(TiffIfds(fd, size), out, boxes, level, fill)
            out.finish()
        except BaseException:
            out.abandon()
            raise
    dst.flush()
    return counts


class _Output:
    """``dst`` filled with a copy of the input by a thread while the caller redacts: patches wait
    in memory (up to :data:`HELD` bytes, then for the copy) and are written once it is done."""

    def __init__(self, fd: int, size: int, dst: BinaryIO, durable: bool) -> None:
        self.dst = dst
        self.held: list[tuple[int, bytes]] | None = []
        self.nbytes = 0
        self.stop = threading.Event()
        self.failed: list[BaseException] = []
        self.thread = threading.Thread(target=self._copy, args=(fd, size, durable), name="medcloak-slide-copy", daemon=True)
        self.thread.start()

    def _copy(self, fd: int, size: int, durable: bool) -> None:
        try:
            _copy(fd, size, self.dst, self.stop, durable)
        except BaseException as exc:  # noqa: BLE001 - raised by finish() in the caller's thread
            self.failed.append(exc)

    def write(self, pos: int, data: bytes) -> None:
        if self.held is not None and self.nbytes + len(data) <= HELD:
            self.held.append((pos, data))
            self.nbytes += len(data)
            return
        self.finish()
        self.dst.seek(pos)
        self.dst.write(data)

    def finish(self) -> None:
        """Wait for the copy (raising what it raised), then write the patches held."""
        if self.held is None:
            return
        self.thread.join()
        if self.failed:
            raise self.failed[0]
        held, self.held = self.held, None
        for pos, data in held:
            self.dst.seek(pos)
            self.dst.write(data)

    def abandon(self) -> None:
        """Stop the copy, wait for it, and empty ``dst``."""
        self.stop.set()
        self.thread.join()
        self.held = None
        self.dst.seek(0)
        self.dst.truncate(0)


def _redact(t: TiffIfds, out: _Output, boxes: Sequence[Box], level: int, fill: str) -> dict[str, int]:
    _vendor_name, levels, thumbs = slide_pages(t)
    steps = pyramid(levels)
    if not 0 <= level < len(steps):
        raise UsageError(f"--level must be between 0 and {len(steps) - 1} for this slide")
    scale, base = steps[level]
    checked = [_check_box(b, base, level) for b in boxes]
    plan: dict[tuple[int, int], _Chunk] = {}
    extra: dict[tuple[int, int], list[Box]] = {}
    ndpi: list[tuple[_NdpiLevel, list[tuple[int, Box]]]] = []
    for page in levels + thumbs:
        if _vendor_name == "hamamatsu":
            level_plan = _NdpiLevel(t, page)
            ndpi.append((level_plan, level_plan.intervals(
                [map_box(b, scale, page.scale, (page.width, page.height)) for b in checked])))
            continue
        for b in checked:
            mapped = map_box(b, scale, page.scale, (page.width, page.height))
            if mapped[0] >= mapped[2] or mapped[1] >= mapped[3]:
                continue
            for chunk in _chunks(page, mapped):
                key = (page.ifd.offset, chunk.index)
                if key in plan:
                    extra.setdefault(key, []).append(chunk.box)
                else:
                    plan[key] = chunk
    for page in {c.page.ifd.offset: c.page for c in plan.values()}.values():
        _check_codec(t, page)
    for c in plan.values():
        o, n = c.page.offsets[c.index], c.page.counts[c.index]
        if n and (o < t.header or o + n > t.size):
            raise CorruptInputError("TIFF tile or strip outside the file")
    j2k_heads: dict[tuple[int, int], J2kHeader] = {}
    for key, c in plan.items():  # before any tile is redacted, so a refused codestream costs no work
        if c.page.compression in J2K_REDACTABLE and c.page.counts[c.index]:
            j2k_heads[key] = check_tile(t.read(c.page.offsets[c.index], c.page.counts[c.index]),
                                        (c.page.cw, c.page.ch))
    refs = Counter(o for p in levels + thumbs for o, n in zip(p.offsets, p.counts) if n)
    counts = {"pages": len({k[0] for k in plan}) + len(ndpi), "tiles-touched": 0, "tiles-moved": 0,
              "blocks-redacted": 0, "tiles-reencoded": 0, "j2k-tiles-reencoded-exact": 0,
              "j2k-tiles-reencoded-lossy": 0}
    for level_plan, intervals in ndpi:
        for pos, data in level_plan.redact(intervals, fill, counts):
            out.write(pos, data)
    end = t.size
    for key, chunk in sorted(plan.items(), key=lambda kv: kv[1].page.offsets[kv[1].index]):
        page = chunk.page
        offset, size = page.offsets[chunk.index], page.counts[chunk.index]
        if not size:
            continue  # a sparse tile: nothing stored, nothing shown
        data = t.read(offset, size)
        local = [chunk.box, *extra.get(key, [])]
        if page.compression == JPEG:
            tables = t.value(page.ifd.entries[347]) if 347 in page.ifd.entries else None
            new, blocks = _redact_jpeg_chunk(data, tables, local, fill, page.photometric)
            counts["blocks-redacted"] += blocks
        elif key in j2k_heads:
            ycbcr = page.compression in YCBCR_CODES or page.photometric == 6
            new, lossy = redact_tile(data, j2k_heads[key], local, fill, ycbcr)
            counts["j2k-tiles-reencoded-lossy" if lossy else "j2k-tiles-reencoded-exact"] += 1
        else:
            new = data
            for b in local:
                new = _refill(t, page, _Chunk(page, chunk.index, b), new, fill)
        if new == data:
            continue
        counts["tiles-touched"] += 1
        counts["tiles-reencoded"] += page.compression != JPEG
        shared = refs[offset] > 1
        if len(new) <= size and not shared:
            out.write(offset, new + bytes(size - len(new)))
            at = offset
        else:
            at = end + (end & 1)  # word-aligned, as TIFF asks
            out.write(end, bytes(at - end) + new)
            end = at + len(new)
            counts["tiles-moved"] += 1
            if not shared:
                out.write(offset, bytes(size))
        _repoint(t, out, page, chunk.index, at, len(new))
    return counts


class _NdpiLevel:
    """A Hamamatsu NDPI level: one JPEG whose restart intervals (one MCU tall, their starts in tag
    65426) are redacted one by one, each as a small JPEG of its own (the level's header with the
    interval's size); an interval that comes out shorter is padded with 0xFF fill bytes before
    its restart marker (which decoders skip), so the level keeps its length and every interval its
    start. An interval that would grow, or whose fill the level's Huffman tables cannot code, is
    refused."""

    def __init__(self, t: TiffIfds, page: _Page) -> None:
        self.t, self.page = t, page
        if page.compression != JPEG or page.tiled or len(page.offsets) != 1 or 65426 not in page.ifd.entries:
            raise UnsupportedInputError("NDPI level that is not one JPEG with its restart interval starts")
        self.offset, self.size = page.offsets[0], page.counts[0]
        head = t.read(self.offset, min(self.size, 1 << 16))
        pos, sof, dri = 2, None, None
        while True:
            if pos + 4 > len(head) or head[pos] != 0xFF:
                raise CorruptInputError("NDPI level whose JPEG header is broken or too long")
            marker, length = head[pos + 1], int.from_bytes(head[pos + 2 : pos + 4], "big")
            if marker in (0xC0, 0xC1):
                sof = pos + 4
            elif marker == 0xDD:
                dri = pos + 4
            elif marker == 0xDA:
                self.scan_start = pos + 2 + length
                break
            elif marker in (0xC2, 0xC3, 0xC9, 0xCA, 0xCB):
                raise UnsupportedInputError("NDPI level in a JPEG process other than sequential Huffman")
            pos += 2 + length
        if sof is None or dri is None or self.scan_start > len(head):
            raise UnsupportedInputError("NDPI level without a frame header or restart interval")
        header = bytearray(head[: self.scan_start])
        height, width = int.from_bytes(header[sof + 1 : sof + 3], "big"), int.from_bytes(header[sof + 3 : sof + 5], "big")
        comps = header[sof + 5]
        sampling = [header[sof + 7 + 3 * i] for i in range(comps)]
        self.mcu = (8 * max(s >> 4 for s in sampling), 8 * max(s & 15 for s in sampling))
        self.restart = int.from_bytes(header[dri : dri + 2], "big")
        if (width, height) != (page.width, page.height) or not self.restart:
            raise UnsupportedInputError("NDPI level whose JPEG size is not the page's, or without restarts")
        mx = -(-width // self.mcu[0])
        if mx % self.restart:
            raise UnsupportedInputError("NDPI level whose restart intervals do not tile its rows")
        self.per_row = mx // self.restart
        self.starts = [int(v) for v in t.numbers(page.ifd.entries[65426])]
        if 65432 in page.ifd.entries:  # the high words of the starts (a level JPEG over 4 GiB)
            highs = t.numbers(page.ifd.entries[65432])
            if len(highs) != len(self.starts):
                raise CorruptInputError("NDPI restart interval starts and their high words differ in number")
            self.starts = [s | int(h) << 32 for s, h in zip(self.starts, highs)]
        if len(self.starts) != self.per_row * -(-height // self.mcu[1]):
            raise CorruptInputError("NDPI restart interval starts that the level's size does not give")
        iw, ih = self.restart * self.mcu[0], self.mcu[1]
        header[sof + 1 : sof + 5] = ih.to_bytes(2, "big") + iw.to_bytes(2, "big")
        header[dri : dri + 2] = b"\x00\x00"  # each interval alone: no restarts
        self.header = bytes(header)
        self.interval = (iw, ih)

    def intervals(self, boxes: Sequence[Box]) -> list[tuple[int, Box]]:
        iw, ih = self.interval
        out = []
        for x0, y0, x1, y1 in boxes:
            for row in range(y0 // ih, -(-y1 // ih)):
                for col in range(x0 // iw, -(-x1 // iw)):
                    local = (max(0, x0 - col * iw), max(0, y0 - row * ih), min(iw, x1 - col * iw), min(ih, y1 - row * ih))
                    out.append((row * self.per_row + col, local))
        return out

    def redact(self, intervals: list[tuple[int, Box]], fill: str, counts: dict[str, int]) -> list[tuple[int, bytes]]:
        """The redacted intervals: (position in the file, bytes to write there)."""
        from ..pixels.jpeg_redact import redact_jpeg_detailed

        out = []

        by_interval: dict[int, list[Box]] = {}
        for k, local in intervals:
            by_interval.setdefault(k, []).append(local)
        for k, boxes in sorted(by_interval.items()):
            start = self.starts[k]
            end = self.starts[k + 1] - 2 if k + 1 < len(self.starts) else self.size - 2
            if not self.scan_start <= start < end <= self.size - 2:
                raise CorruptInputError("NDPI restart interval starts out of order or outside the level")
            tail = self.t.read(self.offset + end, 2)
            if tail[0] != 0xFF or not (0xD0 <= tail[1] <= 0xD7 if k + 1 < len(self.starts) else tail[1] == 0xD9):
                raise CorruptInputError("NDPI restart interval that does not end with its marker")
            body = self.t.read(self.offset + start, end - start).rstrip(b"\xff")  # fill bytes of an earlier redaction
            result = redact_jpeg_detailed(self.header + body + b"\xff\xd9", boxes, fill,
                                          photometric=_photometric_name(self.page.photometric))
            if not result.blocks:
                continue
            if result.route != "bit-copy" or result.added or not result.data.startswith(self.header):
                raise UnsupportedInputError("NDPI level whose Huffman tables cannot code the fill")
            new = result.data[len(self.header) : -2]
            if len(new) > end - start:
                raise UnsupportedInputError("an NDPI restart interval would grow when redacted")
            out.append((self.offset + start, new + b"\xff" * (end - start - len(new))))
            counts["tiles-touched"] += 1
            counts["blocks-redacted"] += result.blocks
        return out


def _repoint(t: TiffIfds, out: _Output, page: _Page, index: int, offset: int, size: int) -> None:
    tags = (324, 325) if page.tiled else (273, 279)
    for tag, value, old in zip(tags, (offset, size), (page.offsets[index], page.counts[index])):
        if value == old:
            continue
        e = page.ifd.entries[tag]
        fmt = _PACK[e.kind]
        if value >= 1 << (8 * struct.calcsize(fmt)):
            raise UnsupportedInputError("a redacted tile does not fit the slide's offsets (classic TIFF near 4 GiB)")
        out.write(e.value_at + index * struct.calcsize(fmt), struct.pack(t.bo + fmt, value))
