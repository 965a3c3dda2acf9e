"""TIFF-family whole-slide images (Aperio SVS in classic TIFF and BigTIFF, Hamamatsu NDPI under
4 GiB, generic tiled pyramids): labels and macros gone, metadata cleaned by allow-list, every
tile of every level copied byte for byte.

The released slide is the input copied, then patched; nothing is re-laid, so the cost is a copy
and memory stays bounded by a few MB whatever the slide's size. Every byte of the copy that no
kept structure references is overwritten with zeros: the pages removed (label, macro, focus map)
with their strips and tag values, the values of the tags dropped, EXIF and GPS IFDs, and any
stray bytes nothing points to (such as the pixels of a label that another tool only unlinked).
The kept pages' IFDs are rewritten in place with only the kept entries and chained past the
removed pages; a text value that is cleaned is rewritten in place, shorter, NUL-padded, its
count updated (a value that several pages share by offset is patched once). What is kept and
dropped per vendor is decided in :mod:`.slide_vendors`.

The structure is read here rather than with tifffile: patching needs each entry's position, and
fail-closed needs every inconsistency to be an error (tifffile logs a broken IFD chain, tile
offsets past the end or a loop, and reads on). A truncated file, offsets outside the file or a
loop raise :class:`CorruptInputError`; a layout not understood (nested SubIFDs, NDPI over 4 GiB,
a value shared between a cleaned tag and another) :class:`UnsupportedInputError`.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import CorruptInputError, UnsupportedInputError
from ..pixels.tiff_meta import SIZES
from . import slide_vendors as V

if TYPE_CHECKING:
    from ..pseudonym import Keyring

#: slide kinds :func:`sniff_slide` returns; the last ones are recognised and refused by clean_slide
HANDLED = ("aperio", "hamamatsu", "generic")
RECOGNISED = ("philips", "ventana", "ome", "qptiff", "leica")
MAX_PAGES = 4096
MAX_ENTRIES = 4096
CHUNK = 8 << 20
_INT = {1: "B", 3: "H", 4: "I", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q", 11: "f", 12: "d"}


@dataclass(frozen=True)
class SlideReport:
    vendor: str
    levels: int
    removed: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Entry:
    tag: int
    kind: int
    count: int
    at: int  # where the entry is
    value_at: int  # where its value is (inside the entry when inline)
    size: int
    inline: bool


@dataclass
class _Ifd:
    offset: int
    entries: dict[int, _Entry]
    next: int
    size: int
    subifds: list[_Ifd] = field(default_factory=list)


class _Tiff:
    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        head = self.read(0, 8)
        if head[:2] not in (b"II", b"MM"):
            raise CorruptInputError("not a TIFF file")
        self.bo = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(self.bo + "H", head[2:4])[0]
        if magic not in (42, 43):
            raise CorruptInputError("not a TIFF file")
        self.big = magic == 43
        if self.big and struct.unpack(self.bo + "HH", head[4:8]) != (8, 0):
            raise CorruptInputError("BigTIFF with an offset size other than 8")
        self.off = "Q" if self.big else "I"
        self.header = 16 if self.big else 8
        self.first = self.unpack(8 if self.big else 4, self.off)

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise CorruptInputError("TIFF structure points outside the file")
        data = os.pread(self.fd, n, pos)
        if len(data) != n:
            raise CorruptInputError("TIFF file shorter than its structure says")
        return data

    def unpack(self, pos: int, fmt: str) -> int:
        return struct.unpack(self.bo + fmt, self.read(pos, struct.calcsize(fmt)))[0]

    def ifd(self, offset: int) -> _Ifd:
        n = self.unpack(offset, "Q" if self.big else "H")
        if n == 0 or n > MAX_ENTRIES:
            raise CorruptInputError("TIFF IFD with no entries or implausibly many")
        width, start, inline = (20, 8, 8) if self.big else (12, 2, 4)
        block = self.read(offset + start, n * width + (8 if self.big else 4))
        entries = {}
        for i in range(n):
            at = offset + start + i * width
            tag, kind = struct.unpack_from(self.bo + "HH", block, i * width)
            count = struct.unpack_from(self.bo + self.off, block, i * width + 4)[0]
            size = SIZES.get(kind, 1) * count
            if size <= inline:
                value_at, is_inline = at + width - inline, True
            else:
                value_at = struct.unpack_from(self.bo + self.off, block, i * width + width - inline)[0]
                is_inline = False
                if value_at + size > self.size:
                    raise CorruptInputError("TIFF tag value outside the file")
            entries[tag] = _Entry(tag, kind, count, at, value_at, size, is_inline)
        nxt = struct.unpack_from(self.bo + self.off, block, n * width)[0]
        return _Ifd(offset, entries, nxt, start + len(block))

    def value(self, e: _Entry) -> bytes:
        return self.read(e.value_at, e.size)

    def numbers(self, e: _Entry) -> tuple[float, ...]:
        fmt = _INT.get(e.kind)
        if fmt is None or e.size != struct.calcsize(fmt) * e.count:
            raise CorruptInputError(f"TIFF tag {e.tag} of an unexpected type")
        return struct.unpack(self.bo + fmt * e.count, self.value(e))

    def number(self, ifd: _Ifd, tag: int, default: float | None = None) -> float | None:
        e = ifd.entries.get(tag)
        if e is None or e.count == 0:
            return default
        return self.numbers(e)[0]

    def pages(self, partial: list[_Ifd] | None = None) -> list[_Ifd]:
        """The main IFD chain with each page's SubIFDs; a loop or an offset outside is corrupt.
        Pages are appended to ``partial`` as they are read (what sniffing sees of a broken file)."""
        seen: set[int] = set()
        out: list[_Ifd] = [] if partial is None else partial
        off = self.first
        while off and len(out) < MAX_PAGES:
            page = self._visit(off, seen)
            listed = self._sub_offsets(page)
            for sub_off in listed:
                sub = self._visit(sub_off, seen)
                if (sub.next and sub.next not in listed) or V.SUBIFDS in sub.entries:
                    raise UnsupportedInputError("TIFF SubIFDs that chain or nest beyond their list")
                page.subifds.append(sub)
            out.append(page)
            off = page.next
        if off:
            raise CorruptInputError("TIFF with implausibly many pages")
        if not out:
            raise CorruptInputError("TIFF file without an image")
        return out

    def _visit(self, off: int, seen: set[int]) -> _Ifd:
        if off in seen:
            raise CorruptInputError("TIFF IFD chain loops")
        seen.add(off)
        return self.ifd(off)

    def _sub_offsets(self, page: _Ifd) -> list[int]:
        e = page.entries.get(V.SUBIFDS)
        return [int(v) for v in self.numbers(e)] if e else []

    def tiled(self, ifd: _Ifd) -> bool:
        return 322 in ifd.entries and 324 in ifd.entries

    def text(self, ifd: _Ifd, tag: int, limit: int | None = None) -> bytes:
        e = ifd.entries.get(tag)
        if e is None:
            return b""
        return self.read(e.value_at, e.size if limit is None else min(e.size, limit))


def _vendor(t: _Tiff, pages: list[_Ifd]) -> str | None:
    p0 = pages[0]
    desc = t.text(p0, V.DESCRIPTION, 4096)
    if V.NDPI_FLAG in p0.entries:
        return "hamamatsu"
    if desc.startswith(b"Aperio"):
        return "aperio"
    if t.text(p0, 305, 64).startswith(b"Philips"):
        return "philips"
    if 700 in p0.entries and b"iScan" in t.text(p0, 700, 1 << 20):
        return "ventana"
    if desc.startswith(b"<?xml") or desc.startswith(b"<"):
        if b"PerkinElmer-QPI" in desc:
            return "qptiff"
        if b"OME" in desc:
            return "ome"
        if b"leica" in desc.lower():
            return "leica"
    if t.tiled(p0) and (len(pages) > 1 or V.SUBIFDS in p0.entries):
        return "generic"
    return None


def sniff_slide(path: Path) -> str | None:
    """The kind of whole-slide image ``path`` is (see :data:`HANDLED` and :data:`RECOGNISED`), or
    None (not a TIFF, a TIFF that is no slide, or a structure too broken to tell)."""
    pages: list[_Ifd] = []
    try:
        with open(path, "rb") as fh:
            t = _Tiff(fh.fileno(), os.fstat(fh.fileno()).st_size)
            try:
                t.pages(pages)
            except (CorruptInputError, UnsupportedInputError):
                pass  # a slide broken after its first page is still a slide: clean_slide says why
            return _vendor(t, pages) if pages else None
    except (OSError, CorruptInputError, UnsupportedInputError, struct.error):
        return None


class _Plan:
    """What the copy keeps raw (intervals), and what is written over it (patches)."""

    def __init__(self, t: _Tiff, vendor: str) -> None:
        self.t, self.vendor = t, vendor
        self.raw: list[tuple[int, int]] = [(0, t.header)]
        self.patches: dict[int, bytes] = {}
        self.blanks: list[tuple[int, int]] = []  # APPn/COM payloads inside kept JPEG tiles
        self.counts: dict[str, int] = {"tags-dropped": 0, "values-rewritten": 0, "keys-dropped": 0}

    def check_data(self, ifd: _Ifd, keep: bool) -> None:
        """Validate the page's strips or tiles (count and extent); keep them when ``keep``."""
        t, e = self.t, ifd.entries
        width, height = t.number(ifd, 256), t.number(ifd, 257)
        if width is None or height is None:
            raise CorruptInputError("TIFF page without dimensions")
        planes = int(t.number(ifd, 277, 1) or 1) if t.number(ifd, 284, 1) == 2 else 1
        if t.number(ifd, 32997, 1) not in (None, 1):
            raise UnsupportedInputError("TIFF page with an ImageDepth other than 1")
        if t.number(ifd, 259, 1) == 6:
            raise UnsupportedInputError("TIFF page with old-style JPEG compression (6)")
        for tag in (273, 279, 324, 325):
            if tag in e and e[tag].kind not in (3, 4, 16):
                raise CorruptInputError("TIFF strip or tile offsets of an unexpected type")
        if 324 in e:
            tw, tl = t.number(ifd, 322), t.number(ifd, 323)
            if not tw or not tl or 325 not in e:
                raise CorruptInputError("TIFF tiles without size or byte counts")
            expected = math.ceil(width / tw) * math.ceil(height / tl) * planes
            offsets, counts = t.numbers(e[324]), t.numbers(e[325])
        elif 273 in e and 279 in e:
            rows = t.number(ifd, 278, 2**32 - 1) or height
            expected = math.ceil(height / min(rows, height or 1)) * planes if height else 0
            offsets, counts = t.numbers(e[273]), t.numbers(e[279])
        else:
            raise CorruptInputError("TIFF page without image data")
        if len(offsets) != expected or len(counts) != expected:
            raise CorruptInputError("TIFF page with a number of tiles or strips its size does not give")
        jpeg = keep and t.number(ifd, 259, 1) == 7
        for o, c in zip(offsets, counts):
            if c and (o < t.header or o + c > t.size):
                raise CorruptInputError("TIFF tile or strip outside the file")
            if c and keep:
                self.raw.append((int(o), int(o + c)))
                if jpeg:
                    self.blanks.extend(_jpeg_blanks(t, int(o), int(c)))

    def keep_page(self, ifd: _Ifd, next_offset: int, kept_subifds: list[int] | None) -> None:
        """Rewrite the page's IFD with only the kept entries; keep their values."""
        t = self.t
        entries = []
        for tag in sorted(ifd.entries, key=lambda k: ifd.entries[k].at):
            e = ifd.entries[tag]
            new = self._decide(ifd, e, kept_subifds)
            if new is None:
                self.counts["tags-dropped"] += 1
                continue
            entries.append(self._entry(e, new))
        n = struct.pack(t.bo + ("Q" if t.big else "H"), len(entries))
        block = n + b"".join(entries) + struct.pack(t.bo + t.off, next_offset)
        self.patches[ifd.offset] = block.ljust(ifd.size, b"\x00")

    def _decide(self, ifd: _Ifd, e: _Entry, kept_subifds: list[int] | None) -> bytes | bool | None:
        """True: keep as it is; bytes: the new value; None: drop."""
        t, tag = self.t, e.tag
        if tag == V.SUBIFDS:
            if not kept_subifds:
                return None
            fmt = t.off if SIZES.get(e.kind) == 8 else "I"
            return struct.pack(t.bo + fmt * len(kept_subifds), *kept_subifds)
        if tag in V.STRUCTURE:
            return True
        if self.vendor == "aperio" and tag == V.DESCRIPTION:
            text, dropped = V.clean_aperio_description(t.value(e).rstrip(b"\x00").decode("latin-1"))
            self.counts["keys-dropped"] += dropped
            return text.encode("latin-1") + b"\x00"
        if self.vendor == "hamamatsu":
            if tag in V.NDPI_KEEP:
                return True
            if tag == V.NDPI_PROPS:
                text, dropped = V.clean_ndpi_properties(t.value(e).rstrip(b"\x00").decode("latin-1"))
                self.counts["keys-dropped"] += dropped
                return text.encode("latin-1") + b"\x00"
        if tag in V.TEXT_KEEP.get(self.vendor, ()) and e.kind == 2 and V.short_text_ok(t.value(e)):
            return True
        return None

    def _entry(self, e: _Entry, new: bytes | bool) -> bytes:
        t = self.t
        raw = t.read(e.at, 20 if t.big else 12)
        if new is True:
            if not e.inline:
                self.raw.append((e.value_at, e.value_at + e.size))
            return raw
        assert isinstance(new, bytes)
        inline = 8 if t.big else 4
        count = len(new) // SIZES.get(e.kind, 1)
        head = raw[:4] + struct.pack(t.bo + t.off, count)
        if len(new) <= inline:
            return head + new.ljust(inline, b"\x00")
        if e.inline or len(new) > e.size:
            raise UnsupportedInputError("TIFF value that grew when cleaned")
        old = self.patches.get(e.value_at)
        self.counts["values-rewritten"] += old is None and new != t.value(e)
        padded = new.ljust(e.size, b"\x00")
        if old is not None and old != padded:
            raise UnsupportedInputError("TIFF value shared by tags cleaned differently")
        self.patches[e.value_at] = padded
        return head + raw[4 + inline :]

    def zero_ranges(self) -> list[tuple[int, int]]:
        """Every range of the file not kept raw nor patched, after checking patches overlap nothing."""
        kept = _merge(self.raw)
        patched = sorted((p, p + len(b)) for p, b in self.patches.items())
        _no_overlap(patched, kept)
        gaps, pos = [], 0
        for a, b in _merge(kept + patched):
            if a > pos:
                gaps.append((pos, a))
            pos = max(pos, b)
        if pos < self.t.size:
            gaps.append((pos, self.t.size))
        return gaps


def _jpeg_blanks(t: _Tiff, offset: int, size: int) -> list[tuple[int, int]]:
    """The payloads of the COM and APPn segments before the scan of the JPEG tile at ``offset``
    that may carry text (all but a JFIF header without thumbnail, Adobe's colour transform and
    an ICC profile): blanked in place, so the tile keeps its length and every coefficient."""
    window = min(size, 1024)
    buf = t.read(offset, window)
    if buf[:2] != b"\xff\xd8":
        return []
    out, i = [], 2
    while True:
        if i + 4 > len(buf):
            if window >= size:
                return out
            window = min(size, window * 8)
            buf = t.read(offset, window)
            continue
        if buf[i] != 0xFF:
            return out
        marker = buf[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
        elif marker in (0xDA, 0xD9):
            return out
        else:
            length = struct.unpack_from(">H", buf, i + 2)[0]
            if length < 2:
                return out
            start, n = i + 4, length - 2
            if (marker == 0xFE or 0xE0 <= marker <= 0xEF) and n and start + n <= size:
                head = t.read(offset + start, min(n, 14))
                benign = ((marker == 0xE0 and head[:5] == b"JFIF\x00" and n == 14)
                          or (marker == 0xEE and head[:5] == b"Adobe" and n == 12)
                          or (marker == 0xE2 and head[:12] == b"ICC_PROFILE\x00"))
                if not benign:
                    out.append((offset + start, n))
            i += 2 + length


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _no_overlap(patched: list[tuple[int, int]], kept: list[tuple[int, int]]) -> None:
    import bisect

    starts = [a for a, _ in kept]
    prev_end = -1
    for a, b in patched:
        if a < prev_end:
            raise UnsupportedInputError("TIFF values that overlap in a way that cannot be patched")
        prev_end = b
        i = bisect.bisect_right(starts, a) - 1
        for j in (i, i + 1):
            if 0 <= j < len(kept) and kept[j][0] < b and a < kept[j][1]:
                raise UnsupportedInputError("TIFF value shared between a cleaned tag and kept data")


def _roles(t: _Tiff, vendor: str, pages: list[_Ifd]) -> list[str]:
    roles = []
    for i, p in enumerate(pages):
        if vendor == "aperio":
            roles.append(V.aperio_role(i, t.tiled(p), t.text(p, V.DESCRIPTION, 4096)))
        elif vendor == "hamamatsu":
            roles.append(V.ndpi_role(t.number(p, V.NDPI_LENS)))
        else:
            roles.append(V.generic_role(t.tiled(p), int(t.number(p, 254, 0) or 0)))
    if roles[0] != "level":
        raise UnsupportedInputError(f"{vendor} slide whose first page is not a pyramid level")
    return roles


def clean_slide(src: Path, dst: BinaryIO, keyring: Keyring) -> SlideReport:
    """Write the released slide ``src`` into ``dst`` (empty, seekable); see the module."""
    del keyring  # nothing in a released slide is pseudonymised: identifying values are dropped
    with open(src, "rb") as fh:
        fd = fh.fileno()
        t = _Tiff(fd, os.fstat(fd).st_size)
        pages = t.pages()
        vendor = _vendor(t, pages)
        if vendor not in HANDLED:
            raise UnsupportedInputError(f"TIFF slide of a kind not handled ({vendor or 'no pyramid'})")
        if vendor == "hamamatsu" and (t.size >= 1 << 32 or any(V.NDPI_HIGH_WORDS & p.entries.keys() for p in pages)):
            raise UnsupportedInputError("NDPI of 4 GiB or more (64-bit offsets) is not handled yet")
        if vendor != "generic" and any(p.subifds for p in pages):
            raise UnsupportedInputError(f"{vendor} slide with SubIFDs")
        roles = _roles(t, vendor, pages)
        plan = _Plan(t, vendor)
        kept = [i for i, r in enumerate(roles) if r in ("level", "thumbnail")]
        next_kept = {i: pages[j].offset for i, j in zip(kept, kept[1:])}
        removed = tuple(r for r in roles if r not in ("level", "thumbnail"))
        levels = roles.count("level")
        for i, (page, role) in enumerate(zip(pages, roles)):
            keep = role in ("level", "thumbnail")
            plan.check_data(page, keep)
            subs = []
            for sub in page.subifds:
                sub_keep = keep and V.generic_role(t.tiled(sub), int(t.number(sub, 254, 0) or 0)) == "level"
                plan.check_data(sub, sub_keep)
                if sub_keep:
                    subs.append(sub)
                    levels += 1
                else:
                    removed += ("associated",)
            for j, sub in enumerate(subs):  # chained as they were (libtiff chains them), past removed ones
                plan.keep_page(sub, subs[j + 1].offset if sub.next and j + 1 < len(subs) else 0, None)
            if keep:
                plan.keep_page(page, next_kept.get(i, 0), [s.offset for s in subs])
        gaps = plan.zero_ranges()
        _copy(fd, t.size, dst)
    zeroed = 0
    zeros = bytes(min(CHUNK, max((b - a for a, b in gaps), default=0)))
    for a, b in gaps:
        dst.seek(a)
        for pos in range(a, b, CHUNK):
            dst.write(zeros[: min(CHUNK, b - pos)])
        zeroed += b - a
    for pos, n in plan.blanks:
        dst.seek(pos)
        dst.write(bytes(n))
    for pos, data in sorted(plan.patches.items()):
        dst.seek(pos)
        dst.write(data)
    dst.flush()
    counts = dict(plan.counts, **{"pages-removed": len(removed), "bytes-zeroed": zeroed,
                                  "jpeg-segments-blanked": len(plan.blanks)})
    return SlideReport(vendor, levels, removed, counts)


def _copy(fd: int, size: int, dst: BinaryIO) -> None:
    """Copy the whole input into ``dst`` in the kernel where it can, else in chunks."""
    dst.seek(0)
    dst.flush()
    try:
        out = dst.fileno()
    except (AttributeError, OSError, ValueError):
        out = -1
    done = 0
    if out >= 0 and hasattr(os, "copy_file_range"):
        try:
            while done < size:
                n = os.copy_file_range(fd, out, min(size - done, 1 << 30), done, done)
                if n <= 0:
                    break
                done += n
        except OSError:
            done = 0
    while done < size:
        chunk = os.pread(fd, min(CHUNK, size - done), done)
        if not chunk:
            raise CorruptInputError("TIFF file shorter than it was a moment ago")
        dst.seek(done)
        dst.write(chunk)
        done += len(chunk)
    dst.seek(0)
