"""TIFF photograph metadata stripping (TIFF 6.0, and BigTIFF): the file is rewritten with only
the tags that define its images, the image data copied as it is.

Kept: the tags of image structure, data layout, colour and resolution (:data:`KEEP`). Dropped:
every other tag, above all ImageDescription, Make, Model, Software, DateTime, Artist,
HostComputer, Copyright, DocumentName, PageName, the EXIF and GPS IFDs, XMP, IPTC, Photoshop
resources, ICC profiles, and SubIFDs (previews and thumbnails). Every page of the main IFD chain
is kept. JPEG-compressed strips and tiles (compression 7) and the JPEGTables lose their APPn/COM
segments, their entropy-coded data untouched; old-style JPEG (compression 6) is refused.

What a page declares is checked against the run's limits (:mod:`medcloak.limits`) as it is read,
before anything decodes or copies it: its image (width x length x samples) against the
per-object ceiling and its strips (no larger than them uncompressed, within the expansion ratio
compressed), and the strips and tiles copied against the file's size (strips that share bytes
are each copied), and so are the values of the tags kept (entries that repeat one large value;
the values of tags dropped are not read). An IFD chain that loops is refused
(:class:`CorruptInputError`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .. import limits
from ..errors import CorruptInputError, UnsupportedInputError

KEEP = frozenset({
    254, 255, 256, 257, 258, 259, 262, 266, 273, 274, 277, 278, 279, 282, 283, 284, 286, 287, 290,
    291, 296, 317, 318, 319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347, 529, 530, 531, 532,
})
#: the types a kept tag may have (TIFF 6.0; SHORT and LONG alike where either is used): any other
#: is refused, so that damage (a bit flip in a tag number: ImageDescription 270 to XPosition 286)
#: cannot carry a text value into the release; integers unless named here
KEPT_TYPES = {**dict.fromkeys((282, 283, 286, 287, 318, 319, 529, 532), frozenset({5})),
              340: frozenset({1, 3, 4, 6, 8, 9, 11, 12, 16, 17}), 341: frozenset({1, 3, 4, 6, 8, 9, 11, 12, 16, 17}),
              347: frozenset({7})}
INTEGERS = frozenset({3, 4, 16})
#: the values a kept tag may have: one unless named here ("samples": one per sample, or fewer;
#: None: as many as it needs, checked elsewhere: offsets, counts, the colour map, JPEG tables)
KEPT_COUNTS: dict[int, int | str | None] = {
    258: "samples", 338: "samples", 339: "samples", 340: "samples", 341: "samples", 318: 2, 319: 6, 529: 3,
    530: 2, 532: 6, 273: None, 279: None, 324: None, 325: None, 320: None, 347: None}
OFFSETS_TO_COUNTS = {273: 279, 324: 325}  # StripOffsets -> StripByteCounts, TileOffsets -> TileByteCounts
SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
MAX_IFDS = 10000


def sniff(head: bytes) -> bool:
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass
class _Entry:
    tag: int
    kind: int
    count: int
    raw: bytes  # the value bytes, in the file's byte order


class _Reader:
    def __init__(self, data: bytes) -> None:
        if not sniff(data[:4]):
            raise CorruptInputError("not a TIFF file")
        self.data = data
        self.bo = "<" if data[:2] == b"II" else ">"
        self.big = data[2:4] in (b"+\x00", b"\x00+")
        if self.big and self._u(4, "H") != 8:
            raise CorruptInputError("BigTIFF with an offset size other than 8")
        self.copied = 0  # bytes of tag values copied so far

    def _u(self, pos: int, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise CorruptInputError("TIFF structure points past the end of the file")
        return struct.unpack_from(self.bo + fmt, self.data, pos)[0]

    def ifds(self) -> list[list[_Entry]]:
        off = self._u(8, "Q") if self.big else self._u(4, "I")
        seen: set[int] = set()
        out = []
        while off:
            if off in seen or len(out) >= MAX_IFDS:
                raise CorruptInputError("TIFF IFD chain loops")
            seen.add(off)
            entries, off = self._ifd(off)
            out.append(entries)
        if not out:
            raise CorruptInputError("TIFF file without an image")
        return out

    def _ifd(self, off: int) -> tuple[list[_Entry], int]:
        count = self._u(off, "Q" if self.big else "H")
        pos = off + (8 if self.big else 2)
        width = 20 if self.big else 12
        inline = 8 if self.big else 4
        if pos + count * width + (8 if self.big else 4) > len(self.data):
            raise CorruptInputError("TIFF IFD runs past the end of the file")
        entries = []
        for i in range(count):
            at = pos + i * width
            tag, kind = self._u(at, "H"), self._u(at + 2, "H")
            n = self._u(at + 4, "Q" if self.big else "I")
            size = SIZES.get(kind)
            if size is None:
                continue  # an unknown type: the tag cannot be one we keep
            total = size * n
            if total <= inline:
                start = at + (12 if self.big else 8)
            else:
                start = self._u(at + (12 if self.big else 8), "Q" if self.big else "I")
            if start + total > len(self.data):
                raise CorruptInputError("TIFF tag value runs past the end of the file")
            if tag not in KEEP:
                entries.append(_Entry(tag, kind, n, b""))  # dropped: its value is never read
                continue
            # values kept are copied: entries that repeat one large value must not multiply it
            self.copied += total
            limits.check_declared(self.copied, what="TIFF tag values", stored=len(self.data))
            entries.append(_Entry(tag, kind, n, self.data[start : start + total]))
        nxt = self._u(pos + count * width, "Q" if self.big else "I")
        return entries, nxt

    def values(self, e: _Entry) -> list[int]:
        fmt = {3: "H", 4: "I", 16: "Q", 13: "I", 18: "Q"}.get(e.kind)
        if fmt is None:
            raise CorruptInputError("TIFF offsets or counts of an unexpected type")
        return list(struct.unpack(self.bo + fmt * e.count, e.raw))


def page_count(data: bytes) -> int:
    """How many pages (IFDs of the main chain) the TIFF has."""
    return len(_Reader(bytes(data)).ifds())


def strip_tiff_metadata(data: bytes) -> bytes:
    """``data`` rewritten with only the image-defining tags of every page (see the module)."""
    from .jpeg_meta import strip_jpeg_metadata

    data = bytes(data)
    r = _Reader(data)
    pages = []
    copied = 0  # bytes of strips and tiles the rewritten file will hold
    for entries in r.ifds():
        tags = {e.tag: e for e in entries}
        if any(e.count == 0 for e in entries if e.tag in KEEP):
            raise CorruptInputError("TIFF tag of the image's structure without a value (count 0)")
        _check_kept(r, tags)
        compression = r.values(tags[259])[0] if 259 in tags and tags[259].kind in (3, 4) else 1
        if compression == 6:
            raise UnsupportedInputError("TIFF with old-style JPEG compression (6)")
        kept = {t: e for t, e in tags.items() if t in KEEP and (t != 347 or compression == 7)}
        blobs: dict[int, list[bytes]] = {}
        for off_tag, count_tag in OFFSETS_TO_COUNTS.items():
            if off_tag not in kept:
                continue
            if count_tag not in kept:
                raise CorruptInputError("TIFF image data offsets without byte counts")
            if kept[off_tag].count != kept[count_tag].count:
                raise CorruptInputError("TIFF image data offsets and counts differ in number")
            offs, counts = r.values(kept[off_tag]), r.values(kept[count_tag])
            copied += sum(counts)
            # strips may share bytes, but each is copied: a few strips of the whole file repeated
            # a thousand times would make a file a thousand times larger
            limits.check_declared(copied, what="TIFF strips and tiles", stored=len(data))
            _check_page(r, tags, compression, sum(counts))
            pieces = []
            for o, c in zip(offs, counts):
                if o + c > len(data):
                    raise CorruptInputError("TIFF image data runs past the end of the file")
                piece = data[o : o + c]
                if compression == 7 and c:
                    piece = strip_jpeg_metadata(piece)
                pieces.append(piece)
            blobs[off_tag] = pieces
        if not blobs:
            raise CorruptInputError("TIFF page without image data")
        if 347 in kept and compression == 7:
            tables = strip_jpeg_metadata(kept[347].raw)
            kept[347] = _Entry(347, 7, len(tables), tables)
        pages.append((kept, blobs))
    return _write(r.bo, r.big, pages)


def _check_kept(r: _Reader, tags: dict[int, _Entry]) -> None:
    """Every kept tag of a type and a count it can have (:data:`KEPT_TYPES`, :data:`KEPT_COUNTS`);
    the colour map of 3 x 2**bits values: else the page is refused, its values never copied."""
    samples = r.values(tags[277])[0] if 277 in tags and tags[277].kind == 3 and tags[277].count == 1 else 1
    for tag, e in tags.items():
        if tag not in KEEP:
            continue
        most = KEPT_COUNTS.get(tag, 1)
        if e.kind not in KEPT_TYPES.get(tag, INTEGERS) or isinstance(most, int) and e.count > most \
                or most == "samples" and e.count > samples:
            raise CorruptInputError(f"TIFF tag {tag} of a type or a count it cannot have")
    if 320 in tags:
        bits = r.values(tags[258])[0] if 258 in tags else 1
        if not 1 <= bits <= 16 or tags[320].count != 3 << bits:
            raise CorruptInputError("TIFF colour map of a size its bits per sample do not give")


def _check_page(r: _Reader, tags: dict[int, _Entry], compression: int, stored: int) -> None:
    """The page's image (width x length x samples x bits) against the run's limits before anything
    decodes it (tifffile allocates it whole): against the per-object ceiling, and against its
    strips or tiles (``stored`` bytes): uncompressed it cannot be larger, compressed not beyond
    the expansion ratio (above the run's floor, :attr:`medcloak.limits.Limits.ratio_floor`)."""

    def first(tag: int, default: int) -> int:
        e = tags.get(tag)
        if e is None or e.count == 0 or e.kind not in (3, 4, 16):
            return default
        return int(r.values(e)[0])

    width, length, samples = first(256, 0), first(257, 0), first(277, 1)
    e = tags.get(258)
    each = r.values(e) if e is not None and e.kind in (3, 4) and 0 < e.count <= 64 else [1]
    bits = sum(each) if len(each) == samples else each[0] * samples
    declared = -(-width * bits // 8) * length
    what = f"a TIFF page of {width}x{length} pixels"
    limits.check_declared(declared, what=what)
    if compression == 1:
        limits.check_declared(declared, what=what, stored=stored)
    else:
        limits.check_declared(declared, what=what, stored=stored, compressed=True)


def _write(bo: str, big: bool, pages: list[tuple[dict[int, _Entry], dict[int, list[bytes]]]]) -> bytes:
    out = bytearray(b"II" if bo == "<" else b"MM")
    out += struct.pack(bo + "H", 43 if big else 42)
    if big:
        out += struct.pack(bo + "HHQ", 8, 0, 0)
    else:
        out += struct.pack(bo + "I", 0)
    link = 8 if big else 4  # where the offset of the next IFD goes
    off_fmt, cnt_kind = ("Q", 16) if big else ("I", 4)
    inline = 8 if big else 4
    for kept, blobs in pages:
        entries = dict(kept)
        for off_tag, pieces in blobs.items():
            positions = []
            for piece in pieces:
                positions.append(len(out))
                out += piece
                if len(out) & 1:
                    out += b"\x00"
            if not big and len(out) > 0xFFFFFFFF:
                raise UnsupportedInputError("stripped TIFF would exceed 4 GiB: needs BigTIFF")
            entries[off_tag] = _Entry(off_tag, cnt_kind, len(positions), struct.pack(bo + off_fmt * len(positions), *positions))
            counts = [len(p) for p in pieces]
            entries[OFFSETS_TO_COUNTS[off_tag]] = _Entry(
                OFFSETS_TO_COUNTS[off_tag], cnt_kind, len(counts), struct.pack(bo + off_fmt * len(counts), *counts)
            )
        # out-of-line values first, then the IFD itself
        placed = {}
        for tag in sorted(entries):
            e = entries[tag]
            if len(e.raw) > inline:
                placed[tag] = len(out)
                out += e.raw
                if len(out) & 1:
                    out += b"\x00"
        ifd_at = len(out)
        struct.pack_into(bo + off_fmt, out, link, ifd_at)
        out += struct.pack(bo + ("Q" if big else "H"), len(entries))
        for tag in sorted(entries):
            e = entries[tag]
            out += struct.pack(bo + "HH", e.tag, e.kind)
            out += struct.pack(bo + off_fmt, e.count)
            if tag in placed:
                out += struct.pack(bo + off_fmt, placed[tag])
            else:
                out += e.raw.ljust(inline, b"\x00")
        link = len(out)
        out += struct.pack(bo + off_fmt, 0)
    return bytes(out)
