"""The elements of a DICOM object's raw bytes, walked as pydicom reads them.

One walker for both readers of raw bytes in medcloak: the structural check of an input
(:func:`medcloak.formats.dicom_check.check_structure`) and the residual-identifier reader of a
written object (:func:`medcloak.residual.read`). It knows how the bytes are laid out; what to make
of a fault or of a value is the caller's:

- :func:`file_meta` steps over the File Meta group (explicit VR little endian, or implicit where a
  writer got it wrong) and Command group (implicit VR) and gives the Transfer Syntax UID;
  :func:`encoding` tells the data set's encoding from it (or guesses, as pydicom does, without
  it); :func:`inflate` inflates a deflated data set, in bounded chunks, up to a limit.
- :class:`Walker` walks a data set: explicit and implicit VR, little and big endian; an implicit VR
  element among explicit ones, and an item whose data set is implicit VR, read the way pydicom
  reads them; sequences and items of defined and undefined length; an implicit VR sequence known by
  its dictionary VR (or, for a tag the dictionary lacks, by the item that starts its value); UN of
  undefined length read as a sequence; encapsulated Pixel Data fragments (or, when an undefined
  length value holds no items, a search for its delimiter). A subclass that sets ``visit`` is
  shown every value (:meth:`Walker.value`) and the fragments of every encapsulated value
  (:meth:`Walker.fragments`).

A fault raises :class:`Fault`: its ``kind`` (one of :data:`FAULTS`), the element (``tag``) and the
sequences it is in (``path``); never a value. The walker imports only the standard library (pydicom's
data dictionary, on first use).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

ITEM, ITEM_DELIM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
#: Explicit VRs with a four-byte length after two reserved bytes (PS3.5 7.1.2)
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
#: the same, as pydicom names VRs
LONG_VR_NAMES = frozenset(vr.decode("ascii") for vr in LONG_VRS)
KNOWN_VRS = LONG_VRS | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
IMPLICIT_LE, EXPLICIT_BE, DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"

#: What a :class:`Fault` can say
FAULTS = frozenset({
    "header cut",  # an element header cut by the end of the file (tag: the element before it)
    "long header cut",  # the four-byte length of a long VR cut by the end of the file
    "past end",  # a value, or an encapsulated fragment, runs past the end of the file
    "past item",  # a value runs past the end of the defined-length item it is in
    "stray item delimiter",  # an item delimiter in the top-level data set
    "item open",  # an item of undefined length without its delimiter
    "item past end",  # a defined-length item runs past the end of the file
    "item past sequence",  # a defined-length item runs past the end of its sequence
    "sequence open",  # a sequence of undefined length without its delimiter
    "non-item",  # a sequence holds something other than an item
    "no delimiter",  # an undefined-length value that is no sequence without its delimiter
    "deep",  # sequences nested deeper than ``Walker.max_depth``
    "meta cut",  # the File Meta Information cut inside an element header
    "meta past end",  # a File Meta (or Command) element runs past the end of the file
    "deflate",  # the deflated data set does not inflate
    "deflate cut",  # the deflated data set ends before its last block
    "deflate limit",  # the deflated data set inflates beyond the limit given to :func:`inflate`
    "deflate declared",  # an element of the deflated data set declares a value beyond that limit
})


class Fault(Exception):
    """A structural fault: ``kind`` (in :data:`FAULTS`), the element ``tag`` (0 when none), the
    ``path`` of the sequences it is in (outermost first) and the offset ``at`` of the element."""

    def __init__(self, kind: str, tag: int = 0, path: tuple[int, ...] = (), at: int = 0) -> None:
        super().__init__(kind)
        self.kind, self.tag, self.path, self.at = kind, tag, path, at


_SQ_TAGS: frozenset[int] | None = None
#: by byte order: (tag, length), (tag), (tag, VR, short length), (long length) unpackers, and a sequence delimiter
_CODECS = {
    little: (struct.Struct(e + "HHI").unpack_from, struct.Struct(e + "HH").unpack_from,
             struct.Struct(e + "HH2sH").unpack_from, struct.Struct(e + "I").unpack_from,
             struct.pack(e + "HH", 0xFFFE, 0xE0DD))
    for little, e in ((True, "<"), (False, ">"))
}
_NO_STOP = 1 << 62  # beyond any position


def sq_tags() -> frozenset[int]:
    """Tags whose dictionary VR is SQ (what an implicit VR reader must take for a sequence)."""
    global _SQ_TAGS
    if _SQ_TAGS is None:
        from pydicom.datadict import DicomDictionary

        _SQ_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
    return _SQ_TAGS


def known(tag: int) -> bool:
    """A tag of the data dictionary."""
    from pydicom.datadict import DicomDictionary

    return tag in DicomDictionary


def looks_implicit(vr: bytes) -> bool:
    """pydicom's test at the start of a data set: an explicit VR is two capital letters."""
    return len(vr) == 2 and not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)


class Walker:
    """One walk over a data set's bytes (``data``: bytes or any buffer), raising :class:`Fault`.

    ``vr`` is the two VR bytes of an explicit VR element, ``None`` for an implicit VR one.
    """

    #: show every value and encapsulated fragment to :meth:`value` and :meth:`fragments`
    visit = False
    #: explicit VRs whose values :meth:`value` is not shown
    skip: frozenset[bytes] = frozenset()
    #: sequences nested deeper than this are a fault (``"deep"``)
    max_depth = 1 << 30

    def __init__(self, data: Any, little: bool) -> None:
        self.data = data
        self.end = len(data)
        self.little = little
        self.tag_len, self.tag_only, self.explicit, self.u32, self.delim = _CODECS[little]
        self.sq = sq_tags()

    def value(self, tag: int, vr: bytes | None, pos: int, length: int, path: tuple[int, ...]) -> None:
        """A value that is no sequence: ``length`` bytes at ``pos`` (with ``visit``; an empty
        value of defined length, or one of an explicit VR in ``skip``, is not shown)."""

    def fragments(self, tag: int, items: list[tuple[int, int]], path: tuple[int, ...]) -> None:
        """The items (offset, length) of an encapsulated value (with ``visit``)."""

    def dataset(self, pos: int, stop: int | None, implicit: bool, path: tuple[int, ...], top: bool) -> int:
        """Walk the elements from ``pos`` to ``stop`` (a defined-length item), to the end of the data
        (``top``), or to an item delimiter; returns the position after them. An explicit VR data
        set whose first element is implicit VR is read as implicit VR (an implicit one stays so)."""
        data, end, visit, skip = self.data, self.end, self.visit, self.skip
        limit = _NO_STOP if stop is None else stop
        if not (implicit and not top) and pos + 6 <= end:  # looks_implicit(), inline
            implicit = not (0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B)
        last = 0
        while True:
            if pos >= limit:
                return pos
            if pos + 8 > end:
                if pos == end and top:
                    return pos
                if pos == end:
                    raise Fault("item open", 0, path)
                raise Fault("header cut", last, path)
            if implicit:
                group, elem, length = self.tag_len(data, pos)
                vr = None
                head = 8
            else:
                group, elem, vr, length = self.explicit(data, pos)
                head = 8
                if vr in KNOWN_VRS:
                    if vr in LONG_VRS:
                        if pos + 12 > end:
                            raise Fault("long header cut", group << 16 | elem, path)
                        length = self.u32(data, pos + 8)[0]
                        head = 12
                elif not (b"AA" <= vr <= b"ZZ"):  # an implicit VR element among explicit ones
                    group, elem, length = self.tag_len(data, pos)
                    vr = None
            tag = group << 16 | elem
            if tag == ITEM_DELIM:
                if top:
                    raise Fault("stray item delimiter", tag, path)
                return pos + 8
            last = tag
            pos += head
            if length != UNDEFINED:
                value_end = pos + length
                is_sq = vr == b"SQ" or (vr is None and tag in self.sq)
                if value_end > end:
                    if is_sq:  # the innermost element that the end of the file cuts
                        self.sequence(pos, end, implicit, path + (tag,))
                    raise Fault("past end", tag, path)
                if value_end > limit:
                    raise Fault("past item", tag, path)
                if is_sq:
                    self.sequence(pos, value_end, implicit, path + (tag,))
                elif visit and length and vr not in skip:
                    self.value(tag, vr, pos, length, path)
                pos = value_end
                continue
            sequence = vr in (b"SQ", b"UN")
            if vr is None:
                if tag in self.sq:
                    sequence = True
                elif not known(tag) and pos + 4 <= end:
                    sequence = self.tag_only(data, pos) == (0xFFFE, 0xE000)
            if sequence:
                pos = self.sequence(pos, None, implicit, path + (tag,))
            else:
                pos = self.undefined_value(pos, tag, vr, path)

    def sequence(self, pos: int, stop: int | None, implicit: bool, path: tuple[int, ...]) -> int:
        """Walk the items of sequence ``path[-1]`` (of defined length when ``stop`` is given)."""
        if len(path) > self.max_depth:
            raise Fault("deep", path[-1], path[:-1])
        data, end = self.data, self.end
        while True:
            if stop is not None and pos >= stop:
                return pos
            if pos + 8 > end:
                raise Fault("sequence open", 0, path)
            group, elem, length = self.tag_len(data, pos)
            tag = group << 16 | elem
            if tag == SEQ_DELIM:
                return pos + 8
            if tag != ITEM:
                raise Fault("non-item", tag, path)
            pos += 8
            if length == UNDEFINED:
                pos = self.dataset(pos, None, implicit, path, top=False)
                continue
            item_end = pos + length
            if item_end > end:
                self.dataset(pos, end, implicit, path, top=False)  # the innermost element cut, if any
                raise Fault("item past end", 0, path)
            if stop is not None and item_end > stop:
                raise Fault("item past sequence", 0, path)
            pos = max(self.dataset(pos, item_end, implicit, path, top=False), item_end)

    def undefined_value(self, pos: int, tag: int, vr: bytes | None, path: tuple[int, ...]) -> int:
        """An undefined-length value that is no sequence (encapsulated Pixel Data): items up to a
        sequence delimiter, or, as pydicom does when they are no items, a search for the delimiter."""
        data, end = self.data, self.end
        items: list[tuple[int, int]] | None = [] if self.visit else None
        p = pos
        while p + 8 <= end:
            group, elem, length = self.tag_len(data, p)
            item = group << 16 | elem
            if item == SEQ_DELIM:
                if items is not None:
                    self.fragments(tag, items, path)
                return p + 8
            if item != ITEM:
                break
            if items is not None:
                items.append((p + 8, length))
            p += 8 + length
            if p > end:
                raise Fault("past end", tag, path)
        else:
            raise Fault("no delimiter", tag, path)
        found = data.find(self.delim, pos)
        if found < 0 or found + 8 > end:
            raise Fault("no delimiter", tag, path)
        if items is not None:
            self.value(tag, vr, pos, found - pos, path)
        return int(found) + 8


def file_meta(data: Any, pos: int, elements: list[tuple[int, bytes | None, int, int]] | None = None
              ) -> tuple[int, str | None]:
    """Step over the File Meta (group 0002, explicit VR little endian) and Command (group 0000,
    implicit) elements at ``pos``; returns the position after them and the Transfer Syntax UID.
    ``elements`` receives each element as (tag, VR or ``None``, offset of its value, length)."""
    end = len(data)
    syntax = None
    _tag_len, _tag, explicit, u32, _delim = _CODECS[True]
    implicit = looks_implicit(bytes(data[pos + 4 : pos + 6])) if pos + 6 <= end else False
    for group_wanted in (0x0002, 0x0000):
        while pos + 8 <= end:
            group, elem, vr, length = explicit(data, pos)
            if group != group_wanted:
                break
            tag = group << 16 | elem
            head = 8
            if implicit:
                vr = None
                length = u32(data, pos + 4)[0]
            elif vr in LONG_VRS:
                if pos + 12 > end:
                    raise Fault("meta cut", tag, (), pos)
                length = u32(data, pos + 8)[0]
                head = 12
            if length == UNDEFINED or pos + head + length > end:
                raise Fault("meta past end", tag, (), pos)
            if tag == 0x00020010:
                syntax = bytes(data[pos + head : pos + head + length]).decode("ascii", "replace").strip("\x00 ")
            if elements is not None:
                elements.append((tag, vr, pos + head, length))
            pos += head + length
        implicit = True  # the command group is always implicit VR little endian
    return pos, syntax


def encoding(data: Any, pos: int, syntax: str | None) -> tuple[bool, bool]:
    """(little endian, implicit VR) of the data set at ``pos`` by its transfer syntax; without
    one, guessed as pydicom does: an explicit VR where one is expected, big endian by group."""
    if syntax is None:
        implicit = bytes(data[pos + 4 : pos + 6]) not in KNOWN_VRS
        return implicit or int.from_bytes(data[pos : pos + 2], "little") < 1024, implicit
    return syntax != EXPLICIT_BE, syntax == IMPLICIT_LE


#: compressed bytes given to the inflater at a time, and inflated bytes it may give back at a time
INFLATE_STEP = 1 << 16
INFLATE_CHUNK = 1 << 20


class _Declared:
    """The element and item headers of an inflating data set (explicit VR little endian), read as
    its chunks come: a value (or a defined-length sequence or item) that declares more than the
    limit is refused at its header, not after the limit's worth of inflating. Sequences and items
    are stepped into, the fragments of encapsulated Pixel Data over; anything that is no explicit
    VR header (UN of undefined length, an implicit VR element) ends the reading, and the running
    count of :func:`inflate` is then all that bounds the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.next = 0  # where the next header starts, in the inflated data
        self.head = b""  # its first bytes, from chunks already given
        self.fragments = False  # inside an encapsulated value
        self.done = not limit

    def feed(self, chunk: bytes, start: int) -> None:
        """Read the headers in ``chunk``, which starts at ``start`` in the inflated data."""
        end = start + len(chunk)
        while not self.done and self.next + len(self.head) < end:
            at = self.next + len(self.head) - start
            self.head += chunk[at : at + 12 - len(self.head)]
            if len(self.head) < 8:
                return
            group, elem, vr = struct.unpack_from("<HH2s", self.head)
            if group == 0xFFFE:
                length, size, vr = struct.unpack_from("<I", self.head, 4)[0], 8, b""
                if elem == 0xE0DD:
                    self.fragments = False
                elif elem != 0xE000 and elem != 0xE00D:
                    self.done = True
                    return
            elif vr not in KNOWN_VRS:
                self.done = True
                return
            elif vr in LONG_VRS:
                if len(self.head) < 12:
                    return
                length, size = struct.unpack_from("<I", self.head, 8)[0], 12
            else:
                length, size = struct.unpack_from("<H", self.head, 6)[0], 8
            step_in = vr == b"SQ" or (group == 0xFFFE and not self.fragments)
            if length == UNDEFINED:
                if vr == b"UN":
                    self.done = True  # read as an implicit VR sequence
                    return
                self.fragments = self.fragments or (vr != b"" and vr != b"SQ")
                self.next, self.head = self.next + size, b""
                continue
            value_end = self.next + size + length
            if value_end > self.limit:
                raise Fault("deflate declared", (group << 16 | elem) if group != 0xFFFE else 0, (), value_end)
            self.next, self.head = (self.next + size if step_in else value_end), b""


def inflate(data: Any, pos: int, limit: int = 0, keep: bool = True) -> bytes:
    """The deflated data set that starts at ``pos``, inflated in bounded chunks (never all at
    once): a :class:`Fault` ``"deflate limit"`` as soon as it grows beyond ``limit`` bytes (0: no
    limit), ``"deflate declared"`` as soon as an element (or item) declares a value that ends
    beyond it (the fault's ``at``: where it would end; its ``tag``, 0 for an item). ``keep`` false: nothing is kept (the
    check of a limit before inflating for real costs a chunk of memory, not the inflated data
    set); the result is then empty."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out: list[bytes] = []
    declared = _Declared(limit)
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        declared.feed(chunk, size)
        size += len(chunk)
        if limit and size > limit:
            raise Fault("deflate limit", 0, (), pos)
        if keep:
            out.append(chunk)

    start, end = pos, len(data)
    try:
        while start < end and not inflater.eof:
            piece = bytes(data[start : start + INFLATE_STEP])
            start += INFLATE_STEP
            while piece and not inflater.eof:
                take(inflater.decompress(piece, min(INFLATE_CHUNK, limit - size + 1) if limit else INFLATE_CHUNK))
                piece = inflater.unconsumed_tail
        while not inflater.eof:  # what the inflater holds back once its input is all given
            chunk = inflater.decompress(b"", INFLATE_CHUNK)
            if not chunk:
                break
            take(chunk)
    except zlib.error:
        raise Fault("deflate", 0, (), pos) from None
    if not inflater.eof:
        raise Fault("deflate cut", 0, (), pos)
    return b"".join(out)
