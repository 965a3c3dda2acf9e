"""Redacting a box in one JPEG 2000 tile of a slide (Aperio 33003 and 33005, generic 34712).

A JPEG 2000 tile cannot be redacted in the compressed domain (a wavelet coefficient reaches
pixels far from its place), so a touched tile is decoded, the box filled, and the tile encoded
again with imagecodecs (OpenJPEG), as a raw codestream (no JP2 boxes), which is what TIFF readers
expect. What the encoder lets us keep from the tile's own codestream is kept: the wavelet
(COD's transformation byte: 1 reversible 5/3, 0 irreversible 9/7), the multiple component
transform and the number of resolution levels. OpenJPEG through imagecodecs writes one quality
layer, 64x64 code-blocks, and the progression order it picks (LRCP lossless, RPCL lossy),
whatever the input had; readers do not depend on these.

- Reversible tiles are encoded losslessly: every pixel outside the box is exactly the decoded
  input's (checked after encoding: a tile that does not decode to the filled pixels is refused).
  A reversible tile whose layers were truncated (lossy 5/3) grows, and goes to the end of the file.
- Irreversible tiles are lossy already; they are encoded again at the highest quality (OpenJPEG's
  PSNR target, in whole decibels) whose codestream is no longer than the tile was, so the rate
  stays that of the input and the tile fits where it was. The pixels outside the box change by
  a second generation of 9/7 quantisation; docs/slides.md gives the loss measured.

The fill is painted in the colour space of the decoded components: for Aperio 33003 those are
Y, Cb, Cr (the codestream carries no colour transform; OpenSlide converts to RGB after
decoding), for 33005 and 34712 the photometric interpretation's. Codestreams whose components are
subsampled (Aperio 33003 as Aperio's own encoder writes it: Cb and Cr at half width), not 8-bit
unsigned, not one or three components, offset from the origin, split into codestream tiles, or
whose size is not the TIFF tile's are refused before anything is written: OpenJPEG through
imagecodecs cannot write them back as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CorruptInputError, MissingDependencyError, UnsupportedInputError

Box = tuple[int, int, int, int]
YCBCR_CODES = frozenset({33003})
J2K_REDACTABLE = frozenset({33003, 33005, 34712})


@dataclass(frozen=True)
class J2kHeader:
    """What the main header of a codestream says (SIZ, COD, QCD)."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    components: int
    reversible: bool  # COD transformation: 1 = 5/3 reversible, 0 = 9/7 irreversible
    mct: bool
    levels: int  # decomposition levels (resolutions - 1)
    progression: int
    layers: int
    codeblock: tuple[int, int]
    quant_style: int  # QCD's Sqcd & 0x1f: 0 none (reversible), 1 derived, 2 expounded


def parse_header(data: bytes) -> J2kHeader:
    """The main header of the raw codestream ``data``; a broken one is a CorruptInputError, one
    this module cannot re-encode as it was an UnsupportedInputError."""
    if data[:4] != b"\xff\x4f\xff\x51":
        if data[4:8] == b"jP  ":
            raise UnsupportedInputError("JPEG 2000 tile in a JP2 file, not a raw codestream")
        raise CorruptInputError("JPEG 2000 tile that does not start with SOC and SIZ")
    from ..pixels.j2k_meta import main_header

    segments, _ = main_header(data)
    body = {marker: data[a + 4 : b] for marker, a, b in segments}
    siz, cod, qcd = body.get(0xFF51), body.get(0xFF52), body.get(0xFF5C)
    if siz is None or cod is None or qcd is None or len(siz) < 36 or len(cod) < 10 or not qcd:
        raise CorruptInputError("JPEG 2000 tile without SIZ, COD or QCD")
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = (int.from_bytes(siz[2 + 4 * i : 6 + 4 * i], "big") for i in range(8))
    csiz = int.from_bytes(siz[34:36], "big")
    if len(siz) < 36 + 3 * csiz:
        raise CorruptInputError("JPEG 2000 tile whose SIZ is short")
    comps = [siz[36 + 3 * i : 39 + 3 * i] for i in range(csiz)]
    if csiz not in (1, 3):
        raise UnsupportedInputError(f"JPEG 2000 slide tiles of {csiz} components are not redacted")
    if any(c[0] != 7 for c in comps):
        raise UnsupportedInputError("JPEG 2000 slide tiles other than 8-bit unsigned are not redacted")
    if any(c[1] != 1 or c[2] != 1 for c in comps):
        raise UnsupportedInputError("JPEG 2000 slide tiles with subsampled components are not redacted")
    if xo or yo or xto or yto:
        raise UnsupportedInputError("JPEG 2000 slide tiles offset from the origin are not redacted")
    if (xt, yt) != (xsiz, ysiz):  # OpenJPEG through imagecodecs writes one codestream tile
        raise UnsupportedInputError("JPEG 2000 slide tiles split into codestream tiles are not redacted")
    if cod[9] not in (0, 1):
        raise UnsupportedInputError("JPEG 2000 slide tiles with an unknown wavelet are not redacted")
    return J2kHeader(xsiz, ysiz, xt, yt, csiz, cod[9] == 1, bool(cod[4]), cod[5], cod[1],
                     int.from_bytes(cod[2:4], "big"), (1 << (cod[6] + 2), 1 << (cod[7] + 2)), qcd[0] & 0x1F)


def check_tile(data: bytes, size: tuple[int, int]) -> J2kHeader:
    """The header of the tile ``data`` after checking it can be redacted (``size``: the TIFF
    tile's width and height)."""
    try:
        import imagecodecs
    except ImportError:
        raise MissingDependencyError("redacting JPEG 2000 tiles needs imagecodecs (pip install imagecodecs)") from None
    if not imagecodecs.JPEG2K.available:
        raise MissingDependencyError("redacting JPEG 2000 tiles needs imagecodecs built with OpenJPEG")
    head = parse_header(data)
    if (head.width, head.height) != size:
        raise UnsupportedInputError("JPEG 2000 slide tile whose size is not the TIFF tile's")
    return head


def fill_values(fill: str, components: int, ycbcr: bool) -> list[int]:
    level = {"black": 0, "grey": 128, "white": 255}[fill]
    if components == 1:
        return [level]
    return [level, 128, 128] if ycbcr else [level] * 3


def _encode(arr: np.ndarray, head: J2kHeader, level: int) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg2k_encode(arr, level=level, codecformat="J2K", reversible=head.reversible,
                                           mct=head.mct and head.components == 3, resolutions=head.levels + 1,
                                           numthreads=1))


def redact_tile(data: bytes, head: J2kHeader, boxes: list[Box], fill: str, ycbcr: bool) -> tuple[bytes, bool]:
    """The tile ``data`` (header ``head``) with ``boxes`` (in its pixels) filled, encoded again;
    and whether the encoding was lossy (the tile irreversible)."""
    import imagecodecs

    try:
        arr = np.asarray(imagecodecs.jpeg2k_decode(data))
    except Exception as exc:  # imagecodecs raises its own error types
        raise CorruptInputError("JPEG 2000 tile of the slide does not decode") from exc
    if arr.dtype != np.uint8 or arr.shape[:2] != (head.height, head.width):
        raise CorruptInputError("JPEG 2000 tile that decodes to another size than its header says")
    arr = arr.reshape(head.height, head.width, -1).copy()
    values = np.array(fill_values(fill, arr.shape[2], ycbcr), np.uint8)
    for x0, y0, x1, y1 in boxes:
        arr[y0:y1, x0:x1] = values
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if head.reversible:
        new = _encode(arr, head, 0)
        if not np.array_equal(np.asarray(imagecodecs.jpeg2k_decode(new)), arr):
            raise UnsupportedInputError("a reversible JPEG 2000 tile did not encode losslessly")
        return new, False
    # the highest PSNR target (dB) whose codestream is no longer than the tile was
    low, high, best = 1, 100, None
    while low <= high:
        mid = (low + high) // 2
        new = _encode(arr, head, mid)
        if len(new) <= len(data):
            best, low = new, mid + 1
        else:
            high = mid - 1
    if best is None:
        best = _encode(arr, head, 1)
    check = parse_header(best)
    if check.reversible or check.levels != head.levels:
        raise UnsupportedInputError("the JPEG 2000 encoder did not keep the tile's wavelet or levels")
    return best, True
