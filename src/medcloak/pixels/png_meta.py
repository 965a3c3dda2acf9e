"""PNG metadata stripping: only the chunks that define the image are kept (PNG spec, 2nd ed.).

Kept: IHDR, PLTE, IDAT, IEND and the colour and physical chunks (tRNS, gAMA, cHRM, sRGB, sBIT,
bKGD, pHYs, hIST). Dropped: text (tEXt, zTXt, iTXt), eXIf, tIME, iCCP (an embedded profile, as
JPEG's APP2 is dropped), and every other chunk, private ones included. Image data is copied as it is.
"""

from __future__ import annotations

import zlib

from ..errors import CorruptInputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEEP = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
                  b"sBIT", b"bKGD", b"pHYs", b"hIST"})


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk bytes) of every chunk, CRCs checked, up to and including IEND."""
    if not data.startswith(SIGNATURE):
        raise CorruptInputError("not a PNG file")
    out, pos, n = [], len(SIGNATURE), len(data)
    while True:
        if pos + 12 > n:
            raise CorruptInputError("PNG ends without IEND")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            raise CorruptInputError("PNG chunk runs past the end")
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            raise CorruptInputError("PNG chunk CRC does not match")
        out.append((kind, data[pos:end]))
        pos = end
        if kind == b"IEND":
            return out


def strip_png_metadata(data: bytes) -> bytes:
    """``data`` with only the image-defining chunks (bytes after IEND dropped)."""
    kept = [raw for kind, raw in chunks(bytes(data)) if kind in KEEP]
    return SIGNATURE + b"".join(kept)
