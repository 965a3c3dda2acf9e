"""JPEG metadata stripping without touching entropy-coded data (ISO/IEC 10918-1 B.1).

Every APPn segment goes except a JFIF APP0 (rewritten without its thumbnail) and an Adobe APP14
(its colour transform flag is needed to decode colour right); every COM goes; wherever they
stand, also between scans. Segments that define the image (SOF, DHT, DQT, DRI, SOS, DNL, ...) and
the entropy-coded data are copied byte for byte. Segments of reserved and extension markers (JPG,
JPGn, RES) go too: no decoder reads them, so they could carry anything. A hierarchical frame's DHP
or EXP segment of the wrong length (a COM whose marker was damaged into DHP: its text would be
kept) is refused. Bytes after EOI are dropped.

JPEG-LS (ISO/IEC 14495-1) shares the marker syntax and is stripped alike (``ls=True``); only its
entropy-coded data differ: after a 0xFF byte the encoder stuffs a zero bit, so a marker is a 0xFF
followed by a byte of 0x80 or more (C.1.5), and 0xFF followed by anything below is data. A JPEG-LS
colour transform APP8 (``mrfx`` and one byte: nothing else fits in it) is kept, since decoding
needs it.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import CorruptInputError

SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
APP0, APP14 = 0xE0, 0xEE
#: markers without a length field: TEM and RST0-RST7
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
DHP, EXP = 0xDE, 0xDF
#: markers of segments that are copied or looked at (B.1.1.3 and 14495-1 C.1.3): frames (SOF0-15
#: but DHT, JPG and DAC), DHT, DAC, SOS, DQT, DNL, DRI, DHP, EXP, APPn, COM, and JPEG-LS's SOF55
#: and LSE (and 14495-2's SOF57); every other marker with a length (JPG, JPGn, RES) is dropped
#: with its segment
CODING = frozenset({*range(0xC0, 0xD0), *range(0xDA, 0xE0), *range(0xE0, 0xF0), COM, 0xF7, 0xF8, 0xF9}) - {0xC8}
#: the length a DHP (a frame header: 6 bytes and 3 a component) or EXP (1 byte) payload must have
_DHP_EXP_LENGTH = {DHP: lambda p: 6 + 3 * p[5] if len(p) > 5 else -1, EXP: lambda p: 1}


def _entropy_end(data: bytes, start: int) -> int:
    import numpy as np
    from medcloak_kernels.jpeg_markers import next_marker

    end = int(next_marker(np.frombuffer(data, dtype=np.uint8), start))
    if end < 0:
        raise CorruptInputError("JPEG entropy-coded data runs to the end without a marker")
    return end


def _entropy_end_ls(data: bytes, start: int) -> int:
    """Position of the marker (other than RST0-RST7) that ends the JPEG-LS scan data at ``start``,
    searched in windows so that a scan ending early in a long buffer is found quickly."""
    import numpy as np

    buf = np.frombuffer(data, dtype=np.uint8)
    window = 1 << 16
    pos = start
    while pos < len(buf) - 1:
        chunk = buf[pos : pos + window + 1]
        code = chunk[1:]
        hits = np.flatnonzero((chunk[:-1] == 0xFF) & (code >= 0x80) & ((code < 0xD0) | (code > 0xD7)))
        if hits.size:
            return pos + int(hits[0])
        pos += window
        window *= 2
    raise CorruptInputError("JPEG-LS scan data runs to the end without a marker")


def _jfif_without_thumbnail(payload: bytes) -> bytes:
    """A JFIF APP0 payload (after the length) with its thumbnail removed."""
    if len(payload) < 14:
        raise CorruptInputError("JFIF APP0 segment is too short")
    head = payload[:12] + b"\x00\x00"  # identifier, version, units, densities; no thumbnail
    return head


def parse_stream(data: bytes, start: int = 0, ls: bool = False) -> tuple[bytes, int]:
    """One JPEG stream from ``start`` (at its SOI): the stream with metadata stripped and the
    position just after its EOI. ``ls``: the stream is JPEG-LS.

    Raises :class:`CorruptInputError` for anything that is not a whole JPEG stream.
    """
    n = len(data)
    if data[start : start + 2] != b"\xff\xd8":
        raise CorruptInputError("not a JPEG stream (no SOI)")
    out = [b"\xff\xd8"]
    pos = start + 2
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise CorruptInputError("JPEG stream ends or breaks where a marker should stand")
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            raise CorruptInputError("JPEG stream ends in fill bytes")
        code = data[pos]
        pos += 1
        if code == EOI:
            out.append(b"\xff\xd9")
            return b"".join(out), pos
        if code in STANDALONE:
            out.append(bytes((0xFF, code)))
            continue
        if code in (0x00, SOI):
            raise CorruptInputError("invalid JPEG marker")
        if pos + 2 > n:
            raise CorruptInputError("JPEG segment length is missing")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > n:
            raise CorruptInputError("JPEG segment runs past the end")
        payload = data[pos + 2 : pos + length]
        segment = data[pos - 2 : pos + length]
        pos += length
        if code in (DHP, EXP) and len(payload) != _DHP_EXP_LENGTH[code](payload):
            # a hierarchical frame's header of the wrong size: free bytes a decoder never reads
            raise CorruptInputError("JPEG DHP or EXP segment of the wrong length")
        if code not in CODING:
            continue  # reserved and extension markers (JPGn, RES): nothing a decoder reads, so nothing kept
        if 0xE0 <= code <= 0xEF or code == COM:
            if code == APP0 and payload.startswith(b"JFIF\x00"):
                kept = _jfif_without_thumbnail(payload)
                out.append(b"\xff\xe0" + (len(kept) + 2).to_bytes(2, "big") + kept)
            elif code == APP14 and payload.startswith(b"Adobe") and len(payload) >= 12:
                out.append(b"\xff\xee\x00\x0e" + payload[:12])
            elif ls and code == 0xE8 and len(payload) == 5 and payload[:4] == b"mrfx":
                out.append(segment)
            continue
        out.append(segment)
        if code == SOS:
            end = _entropy_end_ls(data, pos) if ls else _entropy_end(data, pos)
            out.append(data[pos:end])
            pos = end


def strip_jpeg_metadata(data: bytes) -> bytes:
    """``data`` without APPn (but JFIF and Adobe) and COM segments, entropy data untouched.

    Examples
    --------
    >>> strip_jpeg_metadata(b"\\xff\\xd8\\xff\\xfe\\x00\\x05abc\\xff\\xd9")
    b'\\xff\\xd8\\xff\\xd9'
    """
    stripped, _ = parse_stream(bytes(data))
    return stripped


def streams(stream: bytes, ls: bool = False) -> Iterator[tuple[bytes, bytes]]:
    """(original, stripped) of each of the consecutive JPEG streams in ``stream`` (the frames of
    encapsulated Pixel Data, fragments joined), found by parsing their structure once, never by
    looking for FFD9 (an EXIF thumbnail holds one). ``ls``: the streams are JPEG-LS."""
    pos, n = 0, len(stream)
    while pos < n:
        byte = stream[pos]
        # padding between streams: 0x00, or 0xFF that does not begin an SOI (encoders pad odd
        # fragments with either)
        if byte == 0x00 or (byte == 0xFF and stream[pos + 1 : pos + 2] != b"\xd8"):
            pos += 1
            continue
        stripped, end = parse_stream(stream, pos, ls)
        yield stream[pos:end], stripped
        pos = end


def split_frames(stream: bytes) -> list[bytes]:
    """The consecutive JPEG streams in ``stream``, as they are (see :func:`streams`)."""
    return [original for original, _ in streams(stream)]
