"""JPEG 2000 and HTJ2K codestream comments removed without touching the image data
(ISO/IEC 15444-1 A.3-A.9; HTJ2K, ISO/IEC 15444-15, keeps the same codestream syntax).

A codestream holds free text in one place: COM marker segments (0xFF64), in the main header and
in any tile-part header. Every COM goes, whatever its registration value (Latin text or binary).
Everything else is copied byte for byte: the other marker segments (SIZ, CAP, COD, QCD, PLT,
PPM, ...) and each tile-part's data after SOD. Removing a segment from a tile-part header shortens
the tile-part, so its SOT's Psot is rewritten (a Psot of 0, "to the end of the codestream", stays
0), and so are the tile-part lengths of TLM segments, which the HTJ2K RPCL syntax requires. PLM,
PLT, PPM and PPT give the lengths of packets (and their headers), which do not move within their
tile-part's data: they stay as they are.

A frame wrapped in a JP2 file (which DICOM does not allow, PS3.5 8.2.4, but some writers do)
loses its boxes, which may hold XML, UUID or IPR metadata: its one contiguous codestream box
is kept, and stripped like a bare codestream. Fail closed: a codestream that does not walk to its
EOC, a JP2 file without exactly one codestream box, and TLM segments that do not list every
tile-part when a length changes, are refused rather than released half cleaned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CorruptInputError, UnsupportedInputError

SOC, SOT, SOD, EOC = 0xFF4F, 0xFF90, 0xFF93, 0xFFD9
COM, TLM = 0xFF64, 0xFF55
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


@dataclass
class TilePart:
    """One tile-part: its SOT segment's position, its header's marker segments (marker, start,
    end) between SOT and SOD, and its data (after SOD) as start and end."""

    sot: int
    psot: int
    header: list[tuple[int, int, int]] = field(default_factory=list)
    data: tuple[int, int] = (0, 0)


@dataclass
class Codestream:
    """Where the parts of one codestream stand in its buffer: the main header's marker segments
    after SOC, the tile-parts, and the position just after EOC."""

    start: int
    main: list[tuple[int, int, int]]
    parts: list[TilePart]
    end: int


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise CorruptInputError("JPEG 2000 codestream ends where a marker should stand")
    return int.from_bytes(data[pos : pos + 2], "big")


def _segment(data: bytes, pos: int) -> tuple[int, int]:
    """The marker at ``pos`` and the end of its segment (marker, length field and parameters)."""
    marker = _u16(data, pos)
    if marker >> 8 != 0xFF or marker in (SOC, SOD, EOC) or marker < 0xFF30:
        raise CorruptInputError("JPEG 2000 codestream has no marker segment where one should stand")
    length = _u16(data, pos + 2)
    if length < 2 or pos + 2 + length > len(data):
        raise CorruptInputError("JPEG 2000 marker segment runs past the end")
    return marker, pos + 2 + length


def main_header(data: bytes, start: int = 0) -> tuple[list[tuple[int, int, int]], int]:
    """The marker segments (marker, start, end) of the main header of the codestream at
    ``start``, and the position of its first SOT."""
    if _u16(data, start) != SOC:
        raise CorruptInputError("not a JPEG 2000 codestream (no SOC)")
    pos, main = start + 2, []
    while _u16(data, pos) != SOT:
        marker, end = _segment(data, pos)
        main.append((marker, pos, end))
        pos = end
    return main, pos


def walk(data: bytes, start: int = 0, last: bool = True) -> Codestream:
    """The structure of the codestream at ``start`` in ``data``.

    ``last``: the codestream is the last thing in ``data`` (padding aside), so a tile-part whose
    Psot is 0 runs to the EOC that ends it; otherwise every Psot must say where its tile-part ends.
    Raises :class:`CorruptInputError` when the structure does not walk, and
    :class:`UnsupportedInputError` for a JP2 file (boxes around the codestream).
    """
    if data[start : start + 12] == JP2_SIGNATURE:
        raise UnsupportedInputError("a JP2 file where a JPEG 2000 codestream should stand (frames sharing fragments): not cleaned")
    main, pos = main_header(data, start)
    parts: list[TilePart] = []
    while True:
        marker = _u16(data, pos)
        if marker == EOC:
            return Codestream(start, main, parts, pos + 2)
        if marker != SOT:
            raise CorruptInputError("JPEG 2000 tile-part does not begin with SOT")
        if _u16(data, pos + 2) != 10 or pos + 12 > len(data):
            raise CorruptInputError("JPEG 2000 SOT segment is malformed")
        psot = int.from_bytes(data[pos + 6 : pos + 10], "big")
        part, at = TilePart(pos, psot), pos + 12
        while _u16(data, at) != SOD:
            marker, end = _segment(data, at)
            if marker == SOT:
                raise CorruptInputError("JPEG 2000 tile-part header has no SOD")
            part.header.append((marker, at, end))
            at = end
        at += 2
        if psot:
            stop = pos + psot
            if stop < at or stop > len(data):
                raise CorruptInputError("JPEG 2000 tile-part length (Psot) does not fit the codestream")
        else:
            if not last:
                raise UnsupportedInputError("JPEG 2000 tile-part of unknown length (Psot 0) in a frame that is not alone")
            body = data.rstrip(b"\x00")
            if not body.endswith(b"\xff\xd9") or len(body) - 2 < at:
                raise CorruptInputError("JPEG 2000 codestream does not end with EOC")
            stop = len(body) - 2
        part.data = (at, stop)
        parts.append(part)
        pos = stop


def _rewrite_tlm(data: bytes, tlms: list[tuple[int, int, int]], old: list[int], new: list[int]) -> dict[int, bytes]:
    """The TLM segments (by start position) with their tile-part lengths changed from ``old`` to
    ``new`` (every tile-part's, in codestream order)."""
    segments, entries = [], []  # entries: (segment index, offset of Ptlm in it, Ptlm size)
    for i, (_, a, b) in enumerate(sorted(tlms, key=lambda t: data[t[1] + 4])):  # by Ztlm
        seg = bytearray(data[a:b])
        if len(seg) < 6:
            raise CorruptInputError("JPEG 2000 TLM segment is too short")
        st, sp = (seg[5] >> 4) & 3, (seg[5] >> 6) & 1
        if st == 3:
            raise CorruptInputError("JPEG 2000 TLM segment has an invalid Stlm")
        size = st + (4 if sp else 2)
        if (len(seg) - 6) % size:
            raise CorruptInputError("JPEG 2000 TLM segment does not hold whole entries")
        entries += [(i, off + st, 4 if sp else 2) for off in range(6, len(seg), size)]
        segments.append((a, seg))
    if len(entries) != len(old):
        raise UnsupportedInputError("JPEG 2000 TLM segments do not list every tile-part: their lengths cannot be rewritten")
    for (i, off, size), was, now in zip(entries, old, new):
        seg = segments[i][1]
        if int.from_bytes(seg[off : off + size], "big") != was:
            raise UnsupportedInputError("JPEG 2000 TLM tile-part length does not match the codestream")
        seg[off : off + size] = now.to_bytes(size, "big")
    return {a: bytes(seg) for a, seg in segments}


def strip_comments(data: bytes, start: int = 0, last: bool = True) -> tuple[bytes, int, int]:
    """The codestream at ``start`` without its COM segments: (the codestream, through EOC; how
    many COM segments were removed; the position just after its EOC in ``data``)."""
    cs = walk(data, start, last)
    tlms = [s for s in cs.main if s[0] == TLM]
    removed = sum(s[0] == COM for s in cs.main) + sum(s[0] == COM for p in cs.parts for s in p.header)
    if not removed:
        return data[start : cs.end], 0, cs.end
    old, new = [], []
    for p in cs.parts:
        old.append(p.data[1] - p.sot)
        new.append(old[-1] - sum(b - a for m, a, b in p.header if m == COM))
    fixed = _rewrite_tlm(data, tlms, old, new) if tlms and old != new else {}
    out = [data[start : start + 2]]
    out += [fixed.get(a, data[a:b]) for m, a, b in cs.main if m != COM]
    for p, length in zip(cs.parts, new):
        psot = length if p.psot else 0
        out.append(data[p.sot : p.sot + 6] + psot.to_bytes(4, "big") + data[p.sot + 10 : p.sot + 12])
        out += [data[a:b] for m, a, b in p.header if m != COM]
        out.append(data[p.data[0] - 2 : p.data[1]])  # SOD and the tile-part's data
    out.append(b"\xff\xd9")
    return b"".join(out), removed, cs.end


def jp2_codestream(data: bytes) -> bytes:
    """The contents of the one codestream box ("jp2c") of the JP2 file ``data`` (ISO/IEC 15444-1
    I.4: boxes of LBox, TBox, an XLBox when LBox is 1, and contents to the end when LBox is 0)."""
    pos, found = 0, []
    while pos < len(data):
        if not data[pos:].strip(b"\x00"):
            break  # padding of the fragment
        if pos + 8 > len(data):
            raise CorruptInputError("JP2 box header runs past the end")
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        head = 8
        if size == 1:
            if pos + 16 > len(data):
                raise CorruptInputError("JP2 box header runs past the end")
            size, head = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < head or pos + size > len(data):
            raise CorruptInputError("JP2 box runs past the end")
        if kind == b"jp2c":
            found.append(data[pos + head : pos + size])
        pos += size
    if len(found) != 1:
        raise UnsupportedInputError("JP2 file without exactly one codestream box: not cleaned")
    return found[0]


def clean_frame(frame: bytes) -> tuple[bytes, int]:
    """One whole frame (a codestream or a JP2 file, padding after it allowed): the bare
    codestream without COM segments, and how many things were removed (COM segments, the JP2
    boxes, bytes after EOC that are not zero padding); 0 when the frame stays as it is."""
    code, removed = frame, 0
    if frame[:12] == JP2_SIGNATURE:
        code, removed = jp2_codestream(frame), 1
    clean, count, end = strip_comments(code)
    removed += count + bool(code[end:].strip(b"\x00"))
    return clean, removed
