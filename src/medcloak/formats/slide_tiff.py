"""TIFF-family whole-slide images (Aperio SVS in classic TIFF and BigTIFF, Hamamatsu NDPI (also
over 4 GiB, with its 64-bit offsets), Philips TIFF, Ventana BIF, OME-TIFF, QPTIFF, generic tiled pyramids): labels and macros
gone, metadata cleaned by allow-list, every tile of every level copied byte for byte.

The released slide is the input copied, then patched; nothing is re-laid, so the cost is a copy
and memory stays bounded by a few MB whatever the slide's size. Every byte of the copy that no
kept structure references is overwritten with zeros: the pages removed (label, macro, focus map)
with their strips and tag values, the values of the tags dropped, EXIF and GPS IFDs, and any
stray bytes nothing points to (such as the pixels of a label that another tool only unlinked).
The kept pages' IFDs are rewritten in place with only the kept entries and chained past the
removed pages; a text value that is cleaned is rewritten in place, shorter, NUL-padded, its
count updated (a value that several pages share by offset is patched once). In kept JPEG tiles
the payloads of COM and APPn segments that may hold text are zeroed in place, and so are the COM
texts of JPEG 2000 tiles (the tile keeps its length and its coefficients). What is kept and
dropped per vendor is decided in :mod:`.slide_vendors`, and in :mod:`.slide_xml` for metadata
that is XML. A removed first page whose tags readers need on the first page (Ventana's label,
holding the iScan XMP) is rewritten as a 1x1 stub image holding only those tags.

The structure is read by :mod:`.slide_ifd` rather than with tifffile: patching needs each
entry's position, and fail-closed needs every inconsistency to be an error (tifffile logs a
broken IFD chain, tile offsets past the end or a loop, and reads on). A truncated file, offsets
outside the file or a loop raise :class:`CorruptInputError`; a layout not understood (nested
SubIFDs, a file of 4 GiB or more that is not in NDPI's layout, a value shared between a cleaned
tag and another) :class:`UnsupportedInputError`.

An NDPI of 4 GiB or more keeps its layout: each kept IFD is rewritten with the high words of its
kept entries after its 8-byte next offset, and a value rewritten in place keeps its 64-bit
offset (low word in the entry, high word in that array). A sparse input stays sparse: the copy
and the zeroing skip its holes, which read as zeros anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from .. import limits
from ..errors import CorruptInputError, UnsupportedInputError
from ..pixels.tiff_meta import SIZES
from . import slide_vendors as V
from . import slide_xml as X
from .slide_ifd import (
    Entry,
    Ifd,
    TiffIfds,
    copy_range,
    data_ranges,
    j2k_text_segments,
    jpeg_text_segments,
    stub_ifd,
)
from .slide_ifd import merge_array_ranges
from .slide_ifd import merge_ranges as _merge
from .slide_ifd import no_overlap as _no_overlap

if TYPE_CHECKING:
    import threading

    from ..pseudonym import Keyring

#: slide kinds :func:`sniff_slide` returns; the last ones are recognised and refused by clean_slide
HANDLED = ("aperio", "hamamatsu", "generic", "philips", "ventana", "ome", "qptiff")
RECOGNISED = ("leica",)
CHUNK = 8 << 20
#: bytes copied, edited and handed to the hashing thread at a time (see :func:`_write`)
WINDOW = 64 << 20
J2K = frozenset({33003, 33004, 33005, 34712})  # JPEG 2000 (Aperio YCbCr and RGB, and the generic code)
#: bytes a declared tile or strip may cost while a slide is read (its offset and byte count, and
#: their handling): held against the per-object ceiling (--max-object-size), so a slide cannot
#: declare more tiles than the run affords; a slide of a million tiles is held to 32 MB
TILE_COST = 32
#: bytes to zero below which no hole of a sparse input is looked for (a hole is a whole block of
#: the file system, 4 KB at least): a slide whose tiles are padded has one such gap a tile
SMALL_GAP = 4096
#: tiles whose headers are read (for text) per batch of Python numbers
SCAN_BATCH = 1 << 16


@dataclass(frozen=True)
class SlideReport:
    vendor: str
    levels: int
    removed: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    #: SHA-256 of the released slide as written ("" when the file it was written to cannot be read)
    sha256: str = ""
    #: the kept text for the review record: (tag name, value) as released (see :func:`text_pairs`)
    text: tuple[tuple[str, str], ...] = ()


def _text(t: TiffIfds, page: Ifd, tag: int, limit: int, kinds: tuple[int, ...] = (2,)) -> bytes:
    """A tag's text when it has a type the cleaner keeps such text as (see ``_Plan._decide``):
    a vendor told by a text the cleaner then drops would not be the release's vendor."""
    e = page.entries.get(tag)
    return t.text(page, tag, limit) if e is not None and e.kind in kinds else b""


def _vendor(t: TiffIfds, pages: list[Ifd]) -> str | None:
    p0 = pages[0]
    desc = _text(t, p0, V.DESCRIPTION, 4096)
    if V.NDPI_FLAG in p0.entries:
        return "hamamatsu"
    if desc.startswith(b"Aperio"):
        return "aperio"
    if _text(t, p0, 305, 64).startswith(b"Philips"):
        return "philips"
    if 700 in p0.entries and b"iScan" in _text(t, p0, 700, 1 << 20, (1, 7)):
        return "ventana"
    if desc.startswith(b"<"):
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
    pages: list[Ifd] = []
    try:
        with open(path, "rb") as fh:
            t = TiffIfds(fh.fileno(), os.fstat(fh.fileno()).st_size)
            try:
                t.pages(pages)
            except (CorruptInputError, UnsupportedInputError):
                pass  # a slide broken after its first page is still a slide: clean_slide says why
            return _vendor(t, pages) if pages else None
    except (OSError, CorruptInputError, UnsupportedInputError, struct.error):
        return None


class _Plan:
    """What the copy keeps raw (intervals), and what is written over it (patches)."""

    def __init__(self, t: TiffIfds, vendor: str) -> None:
        self.t, self.vendor = t, vendor
        self.first = t.first  # the first page's IFD (always kept): where vendors put their XML
        self.page_map: dict[int, int] = {}  # main-chain page index -> index in the released slide
        self.raw: list[tuple[int, int]] = [(0, t.header)]
        self.tiles: list[tuple[int, int]] = []  # the kept tiles and strips (pixel data) of raw
        self.patches: dict[int, bytes] = {}
        self.blanks: list[tuple[int, int]] = []  # APPn/COM payloads inside kept JPEG tiles
        self.cleaned: dict[tuple[int, int], bytes] = {}
        self.counts: dict[str, int] = {"tags-dropped": 0, "values-rewritten": 0, "keys-dropped": 0}
        self.tile_count = 0  # tiles and strips declared by the pages read so far
        #: the kept text values (ASCII tags and XMP) as released, once per value: (tag, value bytes)
        self.text: dict[tuple[int, int], tuple[int, bytes]] = {}

    def check_data(self, ifd: Ifd, keep: bool) -> None:
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
            off_tag, count_tag = 324, 325
        elif 273 in e and 279 in e:
            rows = t.number(ifd, 278, 2**32 - 1) or height
            expected = math.ceil(height / min(rows, height or 1)) * planes if height else 0
            off_tag, count_tag = 273, 279
        else:
            raise CorruptInputError("TIFF page without image data")
        # the counts of the entries first: a size that gives billions of tiles is refused unread
        if e[off_tag].count != expected or e[count_tag].count != expected:
            raise CorruptInputError("TIFF page with a number of tiles or strips its size does not give")
        self.tile_count += expected
        limits.check_declared(TILE_COST * self.tile_count, what=f"the bookkeeping of a slide's {self.tile_count} tiles")
        offsets, counts = t.array(e[off_tag]), t.array(e[count_tag])
        stored = counts != 0
        outside = (offsets < t.header) | (counts < 0) | (offsets > t.size - counts)
        if (outside & stored).any():
            raise CorruptInputError("TIFF tile or strip outside the file")
        if not keep:
            return
        offsets, counts = offsets[stored], counts[stored]
        runs = merge_array_ranges(offsets, offsets + counts)  # adjacent tiles make one range: a few per level
        self.raw.extend(runs)
        self.tiles.extend(runs)
        compression = t.number(ifd, 259, 1)
        scan = jpeg_text_segments if compression == 7 else j2k_text_segments if compression in J2K else None
        if scan is None or not len(offsets):
            return
        order = np.lexsort((counts, offsets))
        offsets, counts = offsets[order], counts[order]
        first = np.ones(len(offsets), bool)  # a tile that several entries share is read once
        first[1:] = (offsets[1:] != offsets[:-1]) | (counts[1:] != counts[:-1])
        offsets, counts = offsets[first], counts[first]
        for lo in range(0, len(offsets), SCAN_BATCH):
            for o, c in zip(offsets[lo : lo + SCAN_BATCH].tolist(), counts[lo : lo + SCAN_BATCH].tolist()):
                self.blanks.extend(scan(t, o, c))

    def keep_page(self, ifd: Ifd, next_offset: int, kept_subifds: list[int] | None) -> None:
        """Rewrite the page's IFD with only the kept entries; keep their values."""
        t = self.t
        entries, highs = [], []
        for tag in sorted(ifd.entries, key=lambda k: ifd.entries[k].at):
            e = ifd.entries[tag]
            new = self._decide(ifd, e, kept_subifds)
            if new is None:
                self.counts["tags-dropped"] += 1
                continue
            if (e.kind == 2 or tag == V.XMP) and (e.value_at, e.size) not in self.text:
                self.text[(e.value_at, e.size)] = (tag, t.value(e) if new is True else new)
            raw, high = self._entry(e, new)
            entries.append(raw)
            highs.append(high)
        n = struct.pack(t.bo + ("Q" if t.big else "H"), len(entries))
        block = n + b"".join(entries) + struct.pack(t.bo + t.next_fmt, next_offset)
        if t.ndpi:  # the high words of the kept entries, in their order
            block += struct.pack(t.bo + "I" * len(highs), *highs)
        if len(block) > ifd.size:
            raise UnsupportedInputError("TIFF IFD that grew when cleaned")
        self.patches[ifd.offset] = block.ljust(ifd.size, b"\x00")

    def _decide(self, ifd: Ifd, e: Entry, kept_subifds: list[int] | None) -> bytes | bool | None:
        """True: keep as it is; bytes: the new value; None: drop."""
        t, tag = self.t, e.tag
        if tag == V.SUBIFDS:
            if not kept_subifds:
                return None
            fmt = t.off if SIZES.get(e.kind) == 8 else "I"
            return struct.pack(t.bo + fmt * len(kept_subifds), *kept_subifds)
        if tag in V.STRUCTURE:
            return True
        if self.vendor == "aperio" and tag == V.DESCRIPTION and e.kind == 2:
            return self._clean_text(e, V.clean_aperio_description)
        if self.vendor == "hamamatsu":
            if tag in V.NDPI_KEEP:
                return True
            if tag == V.NDPI_PROPS and e.kind == 2:
                return self._clean_text(e, V.clean_ndpi_properties)
        if tag in V.TEXT_KEEP.get(self.vendor, ()) and e.kind == 2 and V.short_text_ok(t.value(e)):
            return True
        if self.vendor == "philips":
            if tag == V.SOFTWARE and e.kind == 2 and V.philips_software_ok(t.value(e)):
                return True
            if tag == V.DESCRIPTION and e.kind == 2 and ifd.offset == self.first:
                return self._clean_bytes(e, X.clean_philips)
        if self.vendor == "ome" and tag == V.DESCRIPTION and e.kind == 2 and ifd.offset == self.first:
            return self._clean_bytes(e, lambda raw: X.clean_ome(raw, self.page_map))
        if self.vendor == "qptiff":
            if tag == V.SOFTWARE and e.kind == 2 and V.qpi_software_ok(t.value(e)):
                return True
            if tag == V.DESCRIPTION and e.kind == 2:
                return self._clean_bytes(e, X.clean_qpi)
        if self.vendor == "ventana":
            if tag == V.DESCRIPTION and e.kind == 2 and V.ventana_level_ok(t.value(e)):
                return True
            if tag == V.XMP and e.kind in (1, 7):
                return self._clean_bytes(e, X.clean_ventana) or None
        return None

    def stub_page(self, ifd: Ifd, next_offset: int) -> None:
        """Rewrite a removed first page as a 1x1 image of one zero byte (where its first strip or
        tile was) that keeps only the page's cleaned XMP: Ventana readers look for the iScan
        metadata on the first page, which is the label."""
        e = ifd.entries.get(V.XMP)
        xmp = self._clean_bytes(e, X.clean_ventana) if e is not None and e.kind in (1, 7) else b""
        if e is None or not xmp:
            raise UnsupportedInputError("Ventana slide whose first page holds no iScan metadata")
        tags = (324, 325) if self.t.tiled(ifd) else (273, 279)
        at = [int(o) for o, c in zip(*(self.t.numbers(ifd.entries[k]) for k in tags)) if c]
        if not at:
            raise UnsupportedInputError("Ventana slide whose first page has no image data")
        self.patches[at[0]] = b"\x00"
        block = stub_ifd(self.t, at[0], [self._entry(e, xmp)[0]], next_offset)
        if len(block) > ifd.size:
            raise UnsupportedInputError("Ventana first page too small to stand in for the label")
        self.patches[ifd.offset] = block.ljust(ifd.size, b"\x00")

    def _clean_bytes(self, e: Entry, cleaner: Callable[[bytes], tuple[bytes, int]]) -> bytes:
        """Like :meth:`_clean_text` for a cleaner of raw bytes (XML, which says its encoding)."""
        key = (e.value_at, e.size)
        if key not in self.cleaned:
            data, dropped = cleaner(self.t.value(e))
            self.counts["keys-dropped"] += dropped
            self.cleaned[key] = data
        return self.cleaned[key]

    def _clean_text(self, e: Entry, cleaner: Callable[[str], tuple[str, int]]) -> bytes:
        """The cleaned value, NUL-terminated; once per value however many pages share it."""
        key = (e.value_at, e.size)
        if key not in self.cleaned:
            text, dropped = cleaner(self.t.value(e).rstrip(b"\x00").decode("latin-1"))
            self.counts["keys-dropped"] += dropped
            self.cleaned[key] = text.encode("latin-1") + b"\x00"
        return self.cleaned[key]

    def _entry(self, e: Entry, new: bytes | bool) -> tuple[bytes, int]:
        """The entry as it is written, and (NDPI) its value offset's high word."""
        t = self.t
        raw = t.read(e.at, 20 if t.big else 12)
        if new is True:
            if not e.inline:
                self.raw.append((e.value_at, e.value_at + e.size))
            return raw, e.high
        assert isinstance(new, bytes)
        inline = 8 if t.big else 4
        count = len(new) // SIZES.get(e.kind, 1)
        head = raw[:4] + struct.pack(t.bo + t.off, count)
        if len(new) <= inline and not (t.ndpi and e.kind == 2):  # NDPI keeps ASCII out of line
            return head + new.ljust(inline, b"\x00"), 0
        if e.inline or len(new) > e.size:
            raise UnsupportedInputError("TIFF value that grew when cleaned")
        old = self.patches.get(e.value_at)
        self.counts["values-rewritten"] += old is None and new != t.value(e)
        padded = new.ljust(e.size, b"\x00")
        if old is not None and old != padded:
            raise UnsupportedInputError("TIFF value shared by tags cleaned differently")
        self.patches[e.value_at] = padded
        return head + raw[4 + inline :], e.high  # written where it was: same offset, both words

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


def check_ndpi(t: TiffIfds, vendor: str, pages: list[Ifd]) -> None:
    """A classic TIFF of 4 GiB or more is understood only in NDPI's layout (see
    :mod:`.slide_ifd`); high-word tags outside it, or high words that disagree with the
    OffsetHighBytes (65324) and ByteCountHighBytes (65325) tags, are a layout not understood."""
    if t.big:
        return
    if not t.ndpi:
        if t.size >= 1 << 32 or (vendor == "hamamatsu" and any(V.NDPI_HIGH_WORDS & p.entries.keys() for p in pages)):
            raise UnsupportedInputError("classic TIFF of 4 GiB or more (or with NDPI high words) not in NDPI's layout")
        return
    for p in pages:
        for tag, base in ((65324, 273), (65325, 279)):
            if tag in p.entries:
                if base not in p.entries:
                    raise UnsupportedInputError("NDPI high-word tag without the strip tag it completes")
                highs = {int(v) >> 32 for v in t.numbers(p.entries[base])}
                if highs != {int(v) for v in t.numbers(p.entries[tag])}:
                    raise UnsupportedInputError("NDPI high-word tags that disagree with its 64-bit offsets")


def _prepare(t: TiffIfds) -> tuple[str, _Plan, tuple[str, ...], int, list[tuple[int, int]]]:
    """Read and check the whole structure; decide every page, tag and byte (see the module)."""
    pages = t.pages()
    vendor = _vendor(t, pages)
    if vendor not in HANDLED:
        raise UnsupportedInputError(f"TIFF slide of a kind not handled ({vendor or 'no pyramid'})")
    check_ndpi(t, vendor, pages)
    if vendor not in ("generic", "ome") and any(p.subifds for p in pages):
        raise UnsupportedInputError(f"{vendor} slide with SubIFDs")
    roles = V.roles(t, vendor, pages)
    plan = _Plan(t, vendor)
    stub = vendor == "ventana" and roles[0] != "level"  # (Ventana) the first page is rewritten as a stub holding the XMP
    kept = [i for i, r in enumerate(roles) if r in ("level", "thumbnail") or (i == 0 and stub)]
    if len(kept) == stub:
        raise UnsupportedInputError(f"{vendor} slide without a pyramid level")
    next_kept = {i: pages[j].offset for i, j in itertools.pairwise(kept)}
    plan.page_map = {i: n for n, i in enumerate(kept)}
    removed = tuple(r for r in roles if r not in ("level", "thumbnail", "stub"))
    levels = roles.count("level")
    kept_subs = 0
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
                kept_subs += 1
            else:
                removed += ("associated",)
        for j, sub in enumerate(subs):  # chained as they were (libtiff chains them), past removed ones
            plan.keep_page(sub, subs[j + 1].offset if sub.next and j + 1 < len(subs) else 0, None)
        if keep:
            plan.keep_page(page, next_kept.get(i, 0), [s.offset for s in subs])
        elif i == 0 and stub:
            plan.stub_page(page, next_kept.get(0, 0))
    if vendor == "generic" and len(kept) == 1 and not kept_subs:
        # known as a slide by its pages (see _vendor): with one left, its release would be none
        raise UnsupportedInputError("generic tiled TIFF of a single page once its other pages are removed "
                                    "(its release would not be a slide)")
    return vendor, plan, removed, levels, plan.zero_ranges()


def clean_slide(src: Path, dst: BinaryIO, keyring: Keyring) -> SlideReport:
    """Write the released slide ``src`` into ``dst`` (empty, seekable); see the module."""
    del keyring  # nothing in a released slide is pseudonymised: identifying values are dropped
    with open(src, "rb") as fh:
        fd = fh.fileno()
        t = TiffIfds(fd, os.fstat(fd).st_size)
        vendor, plan, removed, levels, gaps = _prepare(t)
        edits: list[tuple[int, int, bytes | None]] = [(a, b, None) for a, b in gaps]
        edits += [(pos, pos + n, None) for pos, n in plan.blanks]
        edits += [(pos, pos + len(data), data) for pos, data in sorted(plan.patches.items())]
        digest = _write(fd, t.size, dst, edits)
    counts = dict(plan.counts, **{"pages-removed": len(removed), "bytes-zeroed": sum(b - a for a, b in gaps),
                                  "text-segments-blanked": len(plan.blanks)})
    return SlideReport(vendor, levels, removed, counts, digest, tuple(text_pairs(plan.text.values())))


#: names of the text tags a slide keeps, for its review record
TAG_NAMES = {270: "ImageDescription", 271: "Make", 272: "Model", 305: "Software", 306: "DateTime", 315: "Artist",
             700: "XMP", 65449: "NDPIProperties"}
_XML_TEXT = re.compile(rb'>([^<>]+)<|="([^"]*)"')


def text_pairs(values: Any) -> list[tuple[str, str]]:
    """(tag name, piece) of kept text values, each cut into the pieces a curator reads: an XML
    value's element texts and attribute values, another's ``|``-separated fields and lines."""
    out = []
    for tag, raw in values:
        name = TAG_NAMES.get(tag, f"Tag{tag}")
        raw = bytes(raw).rstrip(b"\x00")
        if raw.lstrip().startswith(b"<"):
            pieces = [a or b for a, b in _XML_TEXT.findall(raw)]
        else:
            pieces = [p for line in raw.splitlines() for p in line.split(b"|")]
        out += [(name, text) for p in pieces if (text := p.decode("utf-8", "replace").strip())]
    return out


def _write(fd: int, size: int, dst: BinaryIO, edits: list[tuple[int, int, bytes | None]]) -> str:
    """Copy the input into ``dst`` and apply ``edits`` (zeros where the data is ``None``; later
    edits over earlier ones), a :data:`WINDOW` at a time; the SHA-256 of the result. Each window,
    once copied and edited, is hashed by a thread of its own while the next one is copied, so the
    digest the manifest needs costs no second pass over the slide. Zeros are written only over
    the input's data: a hole of a sparse input stays a hole (it reads as zeros)."""
    import hashlib
    import queue
    import threading

    try:
        out = dst.fileno()
    except (AttributeError, OSError, ValueError):
        out = -1
    if out < 0 or not dst.readable():  # copy, edit, then hash what was written where it can be read
        _copy(fd, size, dst)
        _edit(fd, dst, edits)
        dst.flush()
        if not dst.readable():
            return ""
        dst.seek(0)
        sha = hashlib.sha256()
        while chunk := dst.read(CHUNK):
            sha.update(chunk)
        dst.seek(0)
        return sha.hexdigest()
    buckets: dict[int, list[tuple[int, int, bytes | None]]] = {}
    for a, b, data in edits:
        for w in range(a // WINDOW, (b - 1) // WINDOW + 1 if b > a else a // WINDOW):
            lo, hi = max(a, w * WINDOW), min(b, (w + 1) * WINDOW)
            buckets.setdefault(w, []).append((lo, hi, None if data is None else data[lo - a: hi - a]))
    sha = hashlib.sha256()
    done: queue.Queue[tuple[int, int] | None] = queue.Queue(maxsize=2)
    failed: list[BaseException] = []

    def hash_windows() -> None:
        try:
            while (window := done.get()) is not None:
                for pos in range(window[0], window[1], CHUNK):
                    chunk = os.pread(out, min(CHUNK, window[1] - pos), pos)
                    sha.update(chunk)
                    sha.update(bytes(min(CHUNK, window[1] - pos) - len(chunk)))  # a hole at the end
        except BaseException as exc:  # noqa: BLE001 - given to the writer, which raises it
            failed.append(exc)
            while done.get() is not None:
                pass

    dst.seek(0)
    dst.truncate(0)  # holes are not written: nothing may be under them
    dst.flush()
    hasher = threading.Thread(target=hash_windows, name="medcloak-slide-hash", daemon=True)
    hasher.start()
    try:
        for w in range(-(-size // WINDOW)):
            lo, hi = w * WINDOW, min(size, (w + 1) * WINDOW)
            copy_range(fd, out, lo, hi, "TIFF file")
            _edit(fd, dst, buckets.get(w, ()))
            dst.flush()
            done.put((lo, hi))
    finally:
        done.put(None)
        hasher.join()
    if failed:
        raise failed[0]
    dst.truncate(size)
    dst.seek(0)
    return sha.hexdigest()


def _edit(fd: int, dst: BinaryIO, edits: Iterable[tuple[int, int, bytes | None]]) -> None:
    zeros = b""
    for a, b, data in edits:
        if data is not None:
            dst.seek(a)
            dst.write(data)
            continue
        if b - a < SMALL_GAP:  # the padding between tiles: too short to hold a hole, zeroed at once
            dst.seek(a)
            dst.write(bytes(b - a))
            continue
        for c, d in data_ranges(fd, a, b):  # a hole of the input is a hole (zeros) of the copy
            if len(zeros) < min(CHUNK, d - c):
                zeros = bytes(min(CHUNK, d - c))
            dst.seek(c)
            dst.writelines(zeros[: min(CHUNK, d - pos)] for pos in range(c, d, CHUNK))


def verify_slide(path: Path) -> list[str]:
    """What :func:`clean_slide` would still change in the slide at ``path`` (empty for a slide it
    released): pages to remove, tags or keys outside the allow-lists, text in JPEG headers, bytes
    nothing kept references that are not zero. Reads the structure and those bytes only, never
    the tiles. Raises like :func:`clean_slide` on a slide it would refuse."""
    findings = []
    with open(path, "rb") as fh:
        fd = fh.fileno()
        t = TiffIfds(fd, os.fstat(fd).st_size)
        _vendor_name, plan, removed, _levels, gaps = _prepare(t)
        if removed:
            findings.append(f"pages to remove: {', '.join(removed)}")
        if any(t.read(pos, len(data)) != data for pos, data in plan.patches.items()):
            findings.append("tags or metadata keys outside the allow-list")
        if any(t.read(pos, n).count(0) != n for pos, n in plan.blanks):
            findings.append("text segments in the headers of JPEG or JPEG 2000 tiles")
        ranges = [r for a, b in gaps for r in (data_ranges(fd, a, b) if b - a >= SMALL_GAP else [(a, b)])]
        for a, b in ranges:
            if any(t.read(p, min(CHUNK, b - p)).count(0) != min(CHUNK, b - p) for p in range(a, b, CHUNK)):
                findings.append("bytes that no kept structure references are not zero")
                break
        tiles = set(plan.tiles)
        found = _residue(t, [r for r in plan.raw if r not in tiles])
        if found:
            findings.append(f"{found} outside the pixel data (in a value the allow-lists keep)")
    return findings


#: what identifies in any kept byte outside the tiles: a date (1900-2099, as ISO, DICOM or US
#: writes it, standing on its own: ``20111209_R44``, a software build, is no date of a scan) or a
#: DICOM person name (``Family^Given``)
RESIDUE = re.compile(
    rb"(?<![0-9A-Za-z_])(?:(?:19|20)[0-9]{2}[-/.:]?(?:0[1-9]|1[0-2])[-/.:]?(?:0[1-9]|[12][0-9]|3[01])"
    rb"|(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12][0-9]|3[01])/(?:19|20)?[0-9]{2})(?![0-9_]|[A-SU-Za-z])"
    rb"|(?<![A-Za-z])[A-Z][A-Za-z]{2,}\^[A-Z][A-Za-z]{2,}(?![A-Za-z])")


#: a run of printable text in UTF-16 (either byte order), as Windows writes XMP and EXIF's XP tags
UTF16 = re.compile(rb"(?:[\x20-\x7e]\x00){6,}|(?:\x00[\x20-\x7e]){6,}")


def _residue(t: TiffIfds, kept: list[tuple[int, int]]) -> str:
    """What :data:`RESIDUE` finds in the ``kept`` ranges of the slide (the IFDs and every value
    they keep: text, XML, ICC profiles; not the tiles), in single-byte text or in UTF-16: "a date"
    or "a person's name", or "". A date or name in a value the allow-lists keep is a leak they did
    not foresee."""
    for a, b in _merge(kept):
        for p in range(a, b, CHUNK):  # a window overlaps the next by 64 bytes: no match is cut
            data = t.read(p, min(CHUNK + 64, b - p))
            m = RESIDUE.search(data) or next(
                (hit for run in UTF16.finditer(data) if (hit := RESIDUE.search(run.group().replace(b"\x00", b"")))),
                None)
            if m is not None:
                return "a person's name" if b"^" in m.group() else "a date"
    return ""


def _copy(fd: int, size: int, dst: BinaryIO, stop: threading.Event | None = None, durable: bool = False) -> None:
    """Copy the whole input into ``dst`` (empty) in the kernel where it can, else in chunks; only
    the input's data, not its holes, so a sparse input gives a sparse copy (the holes read as
    zeros in both). Once ``stop`` is set, returns at the next window (``dst`` then partial).
    ``durable``: the caller will fsync ``dst``, so each window is sent to the disk once copied
    (``POSIX_FADV_DONTNEED`` starts its writeback on Linux) and the fsync has less to wait for."""
    dst.seek(0)
    dst.truncate(0)  # holes are not written: nothing may be under them
    dst.flush()
    try:
        out = dst.fileno()
    except (AttributeError, OSError, ValueError):
        out = -1
    if out >= 0:
        for lo in range(0, size, WINDOW):
            if stop is not None and stop.is_set():
                return
            copy_range(fd, out, lo, min(size, lo + WINDOW), "TIFF file")
            if durable and hasattr(os, "posix_fadvise"):
                with contextlib.suppress(OSError):  # advice only
                    os.posix_fadvise(out, lo, min(size, lo + WINDOW) - lo, os.POSIX_FADV_DONTNEED)
    else:  # a file object without a descriptor (BytesIO)
        for a, b in data_ranges(fd, 0, size):
            done = a
            while done < b:
                chunk = os.pread(fd, min(CHUNK, b - done), done)
                if not chunk:
                    raise CorruptInputError("TIFF file shorter than it was a moment ago")
                dst.seek(done)
                dst.write(chunk)
                done += len(chunk)
    dst.truncate(size)
    dst.seek(0)
