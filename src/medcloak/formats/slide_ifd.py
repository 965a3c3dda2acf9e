"""Reading the IFD structure of a TIFF or BigTIFF file for patching in place, and finding text
in the headers of JPEG tiles; used by :mod:`.slide_tiff`.

Each entry keeps where it is and where its value is, since the released copy is patched at those
positions. Every read is checked against the file's size, so a truncated file or an offset
outside it is a :class:`CorruptInputError`, never a short read; reads go through ``pread``, so the
file may change under us without a crash (no memory map, whose truncation would be SIGBUS).

Hamamatsu NDPI is classic TIFF with 64-bit offsets bolted on (OpenSlide's hamamatsu format page):
the header's first-IFD offset and every IFD's next offset are 8 bytes, and after each IFD's next
offset comes an array of one 4-byte high word per entry, completing the entry's value offset (or
its inline LONG value: StripOffsets and StripByteCounts of a file over 4 GiB); ASCII values are
always out of line. A file is read that way when, as OpenSlide decides, the header's 8-byte
offset leads to an IFD holding the NDPI tag (65420); other TIFF readers see the low words only.
"""

from __future__ import annotations

import bisect
import errno
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptInputError, UnsupportedInputError
from ..pixels.tiff_meta import SIZES

MAX_PAGES = 4096
MAX_ENTRIES = 4096
SUBIFDS = 330
NDPI_FLAG = 65420
_INT = {1: "B", 3: "H", 4: "I", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q", 11: "f", 12: "d"}


@dataclass
class Entry:
    tag: int
    kind: int
    count: int
    at: int  # where the entry is
    value_at: int  # where its value is (inside the entry when inline)
    size: int
    inline: bool
    high: int = 0  # NDPI: the high word of the value offset (or of an inline LONG)


@dataclass
class Ifd:
    offset: int
    entries: dict[int, Entry]
    next: int
    size: int
    subifds: list[Ifd] = field(default_factory=list)


class TiffIfds:
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
        self.next_fmt = self.off  # the next-IFD offsets (8 bytes in NDPI)
        self.header = 16 if self.big else 8
        self.first = self.unpack(8 if self.big else 4, self.off)
        self.ndpi = False
        if not self.big and self.bo == "<" and size >= 12:
            self._try_ndpi()

    def _try_ndpi(self) -> None:
        """Switch to NDPI's layout when the header's 8-byte offset leads to an NDPI IFD."""
        first = self.unpack(4, "Q")
        if not 12 <= first < self.size:
            return
        self.ndpi, self.next_fmt, self.header = True, "Q", 12
        try:
            e = self.ifd(first).entries.get(NDPI_FLAG)
        except (CorruptInputError, UnsupportedInputError, struct.error):
            e = None
        if e is None or e.count == 0:
            self.ndpi, self.next_fmt, self.header = False, "I", 8
        else:
            self.first = first

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0 or n < 0 or pos + n > self.size:
            raise CorruptInputError("TIFF structure points outside the file")
        data = os.pread(self.fd, n, pos)
        if len(data) != n:
            raise CorruptInputError("TIFF file shorter than its structure says")
        return data

    def unpack(self, pos: int, fmt: str) -> int:
        return struct.unpack(self.bo + fmt, self.read(pos, struct.calcsize(fmt)))[0]

    def ifd(self, offset: int) -> Ifd:
        n = self.unpack(offset, "Q" if self.big else "H")
        if n == 0 or n > MAX_ENTRIES:
            raise CorruptInputError("TIFF IFD with no entries or implausibly many")
        width, start, inline = (20, 8, 8) if self.big else (12, 2, 4)
        block = self.read(offset + start, n * width + struct.calcsize(self.next_fmt) + (4 * n if self.ndpi else 0))
        highs = struct.unpack_from(self.bo + "I" * n, block, n * width + 8) if self.ndpi else (0,) * n
        entries = {}
        for i in range(n):
            at = offset + start + i * width
            tag, kind = struct.unpack_from(self.bo + "HH", block, i * width)
            count = struct.unpack_from(self.bo + self.off, block, i * width + 4)[0]
            size = SIZES.get(kind, 1) * count
            high = highs[i]
            if size <= inline and not (self.ndpi and kind == 2):
                value_at, is_inline = at + width - inline, True
                if high and not (kind in (4, 13) and count == 1):
                    raise UnsupportedInputError("NDPI inline value with high bits other than one LONG")
            else:
                value_at = struct.unpack_from(self.bo + self.off, block, i * width + width - inline)[0] | high << 32
                is_inline = False
                if value_at + size > self.size:
                    raise CorruptInputError("TIFF tag value outside the file")
            entries[tag] = Entry(tag, kind, count, at, value_at, size, is_inline, high)
        nxt = struct.unpack_from(self.bo + self.next_fmt, block, n * width)[0]
        return Ifd(offset, entries, nxt, start + len(block))

    def value(self, e: Entry) -> bytes:
        return self.read(e.value_at, e.size)

    def numbers(self, e: Entry) -> tuple[float, ...]:
        fmt = _INT.get(e.kind)
        if fmt is None or e.size != struct.calcsize(fmt) * e.count:
            raise CorruptInputError(f"TIFF tag {e.tag} of an unexpected type")
        values = struct.unpack(self.bo + fmt * e.count, self.value(e))
        if e.inline and e.high:  # NDPI: a LONG over 4 GiB (an offset or a byte count)
            return (values[0] | e.high << 32,)
        return values

    def array(self, e: Entry) -> Any:
        """The integer values of ``e`` as a numpy array of int64 (what :meth:`numbers` gives, for the
        many offsets and byte counts of a level's tiles without a Python number each); a value of
        2**63 or more reads as negative, which no offset or count passes."""
        import numpy as np

        fmt = _INT.get(e.kind)
        if fmt is None or fmt in "fd" or e.size != struct.calcsize(fmt) * e.count:
            raise CorruptInputError(f"TIFF tag {e.tag} of an unexpected type")
        if e.inline and e.high:
            return np.array(self.numbers(e), np.int64)
        return np.frombuffer(self.value(e), np.dtype(self.bo + fmt)).astype(np.int64)

    def number(self, ifd: Ifd, tag: int, default: float | None = None) -> float | None:
        e = ifd.entries.get(tag)
        if e is None or e.count == 0:
            return default
        return self.numbers(e)[0]

    def pages(self, partial: list[Ifd] | None = None) -> list[Ifd]:
        """The main IFD chain with each page's SubIFDs; a loop or an offset outside is corrupt.
        Pages are appended to ``partial`` as they are read (what sniffing sees of a broken file)."""
        seen: set[int] = set()
        out: list[Ifd] = [] if partial is None else partial
        off = self.first
        while off and len(out) < MAX_PAGES:
            page = self._visit(off, seen)
            listed = self._sub_offsets(page)
            for sub_off in listed:
                sub = self._visit(sub_off, seen)
                if (sub.next and sub.next not in listed) or SUBIFDS in sub.entries:
                    raise UnsupportedInputError("TIFF SubIFDs that chain or nest beyond their list")
                page.subifds.append(sub)
            out.append(page)
            off = page.next
        if off:
            raise CorruptInputError("TIFF with implausibly many pages")
        if not out:
            raise CorruptInputError("TIFF file without an image")
        return out

    def _visit(self, off: int, seen: set[int]) -> Ifd:
        if off in seen:
            raise CorruptInputError("TIFF IFD chain loops")
        seen.add(off)
        return self.ifd(off)

    def _sub_offsets(self, page: Ifd) -> list[int]:
        e = page.entries.get(SUBIFDS)
        return [int(v) for v in self.numbers(e)] if e else []

    def tiled(self, ifd: Ifd) -> bool:
        return 322 in ifd.entries and 324 in ifd.entries

    def text(self, ifd: Ifd, tag: int, limit: int | None = None) -> bytes:
        e = ifd.entries.get(tag)
        if e is None:
            return b""
        return self.read(e.value_at, e.size if limit is None else min(e.size, limit))


def jpeg_text_segments(t: TiffIfds, offset: int, size: int) -> list[tuple[int, int]]:
    """The payloads of the COM and APPn segments before the scan of the JPEG tile at ``offset``
    that may carry text (all but a JFIF header without thumbnail, Adobe's colour transform and
    an ICC profile): blanked in place, so the tile keeps its length and every coefficient. A
    tile that is not a JPEG stream, or whose header cannot be walked to its scan, could hide
    anything there: :class:`CorruptInputError` (an empty tile of a sparse level is no tile)."""
    if size == 0:
        return []
    window = min(size, 1024)
    buf = t.read(offset, window)
    if buf[:2] != b"\xff\xd8":
        raise CorruptInputError("a JPEG tile is not a JPEG stream")
    out, i = [], 2
    while True:
        if i + 4 > len(buf):
            if window >= size:
                raise CorruptInputError("a JPEG tile ends before its scan")
            window = min(size, window * 8)
            buf = t.read(offset, window)
            continue
        if buf[i] != 0xFF:
            raise CorruptInputError("a JPEG tile's header is malformed")
        marker = buf[i + 1]
        if marker == 0xFF:
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
        elif marker in (0xDA, 0xD9):
            return out
        else:
            length = struct.unpack_from(">H", buf, i + 2)[0]
            start, n = i + 4, length - 2
            if length < 2 or start + n > size:
                raise CorruptInputError("a JPEG tile's header is malformed")
            if (marker == 0xFE or 0xE0 <= marker <= 0xEF) and n:
                head = t.read(offset + start, min(n, 14))
                benign = ((marker == 0xE0 and head[:5] == b"JFIF\x00" and n == 14)
                          or (marker == 0xEE and head[:5] == b"Adobe" and n == 12)
                          or (marker == 0xE2 and head[:12] == b"ICC_PROFILE\x00"))
                if not benign:
                    out.append((offset + start, n))
            i += 2 + length


def j2k_text_segments(t: TiffIfds, offset: int, size: int) -> list[tuple[int, int]]:
    """The text of the COM segments of the JPEG 2000 codestream (tile) at ``offset``, in its main
    header and in every tile-part header; blanked in place like :func:`jpeg_text_segments`."""
    if size == 0:
        return []
    if size < 4 or t.read(offset, 2) != b"\xff\x4f":
        raise CorruptInputError("a JPEG 2000 tile is not a codestream")
    out, i, next_part = [], 2, 0
    while i + 4 <= size:
        marker, length = struct.unpack(">HH", t.read(offset + i, 4))
        if marker == 0xFF93:  # SOD: the tile-part's data follows; Psot says where the next one starts
            if not next_part:
                return out
            if next_part <= i:
                raise CorruptInputError("a JPEG 2000 tile's header is malformed")
            i, next_part = next_part, 0
            continue
        if marker >> 8 != 0xFF or length < 2 or marker in (0xFF4F, 0xFFD9):
            raise CorruptInputError("a JPEG 2000 tile's header is malformed")
        if marker == 0xFF90:  # SOT
            if length != 10 or i + 12 > size:
                raise CorruptInputError("a JPEG 2000 tile's header is malformed")
            psot = struct.unpack(">I", t.read(offset + i + 6, 4))[0]
            next_part = i + psot if psot else 0
        elif marker == 0xFF64 and length > 4 and i + 2 + length <= size:  # COM: Lcom, Rcom, text
            out.append((offset + i + 6, length - 4))
        i += 2 + length
    return out


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def merge_array_ranges(starts: Any, ends: Any) -> list[tuple[int, int]]:
    """:func:`merge_ranges` of the ranges ``[starts[i], ends[i])`` given as two integer arrays
    (a level's million tiles at once), empty ones left out."""
    import numpy as np

    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return []
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    new = np.flatnonzero(starts[1:] > ends[:-1]) + 1
    firsts = np.concatenate(([0], new))
    lasts = np.concatenate((new - 1, [len(starts) - 1]))
    return list(zip(starts[firsts].tolist(), ends[lasts].tolist()))


def no_overlap(patched: list[tuple[int, int]], kept: list[tuple[int, int]]) -> None:
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


def stub_ifd(t: TiffIfds, strip_at: int, extra: list[bytes], next_offset: int) -> bytes:
    """An IFD of a 1x1 8-bit grey image whose one (zero) byte is at ``strip_at``, with the
    ``extra`` entries (encoded, tags above 279, in order): what stands in for a removed first page
    whose tags a reader needs on the first page (Ventana's XMP)."""
    short, off_kind = 3, (16 if t.big else 4)
    width = 8 if t.big else 4

    def entry(tag: int, kind: int, value: int) -> bytes:
        packed = struct.pack(t.bo + ("H" if kind == 3 else t.off), value).ljust(width, b"\x00")
        return struct.pack(t.bo + "HH" + t.off, tag, kind, 1) + packed

    entries = [entry(256, short, 1), entry(257, short, 1), entry(258, short, 8), entry(259, short, 1),
               entry(262, short, 1), entry(273, off_kind, strip_at), entry(277, short, 1), entry(278, short, 1),
               entry(279, off_kind, 1), *extra]
    n = struct.pack(t.bo + ("Q" if t.big else "H"), len(entries))
    return n + b"".join(entries) + struct.pack(t.bo + t.off, next_offset)


#: bytes read at a time where the kernel cannot copy
COPY_CHUNK = 8 << 20


def data_ranges(fd: int, a: int, b: int) -> list[tuple[int, int]]:
    """The parts of ``[a, b)`` of the file ``fd`` that may hold data: all of it, less the holes of
    a sparse file (which read as zeros) where the file system says where they are."""
    if not (hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")):
        return [(a, b)] if a < b else []
    out, pos = [], a
    try:
        while pos < b:
            start = os.lseek(fd, pos, os.SEEK_DATA)
            if start >= b:
                break
            end = min(b, os.lseek(fd, start, os.SEEK_HOLE))
            out.append((start, end))
            pos = end
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no data after pos
            return out
        return [(a, b)] if a < b else []  # the file system cannot say: all of it
    return out


def copy_range(fd: int, out: int, lo: int, hi: int, what: str) -> None:
    """Copy ``[lo, hi)`` of the file ``fd``'s data (not its holes) to the same place of ``out``, in
    the kernel where it can; ``what`` the file is, for the error when it turns out shorter."""
    for a, b in data_ranges(fd, lo, hi):
        done = a
        if hasattr(os, "copy_file_range"):
            try:
                while done < b:
                    n = os.copy_file_range(fd, out, b - done, done, done)
                    if n <= 0:
                        break
                    done += n
            except OSError:
                pass
        while done < b:
            chunk = os.pread(fd, min(COPY_CHUNK, b - done), done)
            if not chunk:
                raise CorruptInputError(f"{what} shorter than it was a moment ago")
            os.pwrite(out, chunk, done)
            done += len(chunk)
