"""What a photograph declares (JPEG and PNG; a TIFF's pages in :mod:`medcloak.pixels.tiff_meta`),
checked against the run's limits (:mod:`medcloak.limits`) before it is decoded: a decoder
allocates the whole image its header declares before it reads a byte of the compressed data, so
a 2 KB JPEG or PNG declaring 65535x65535 pixels costs gigabytes unless refused first.

- The image's size (width x height x components x bytes a sample) against the per-object ceiling.
- JPEG, against the file's own size: Huffman coding spends at least one bit on every 8x8 block of
  every component (a one-bit code for the DC difference; sequential coding one more for the end of
  block), and lossless JPEG at least one bit a sample, so a stream cannot declare more blocks (or
  samples) than eight times its bytes. Arithmetic coding has no such floor: its image against the
  expansion ratio.
- PNG, against its IDAT chunks: the filtered image data (a filter byte a row, then the row's
  bytes) inflated from them, by the expansion ratio; zlib reaches about 1:1000 on an image of one
  colour, and a blank image is no bomb: the ratio is held only against images beyond the run's
  floor (:attr:`medcloak.limits.Limits.ratio_floor`). Text and profile chunks (zTXt, iTXt, iCCP) are never inflated: they
  are dropped unread (:mod:`medcloak.pixels.png_meta`).

A refusal is a :class:`~medcloak.errors.LimitError` naming the limit; the checks read the headers
only (microseconds), and a header too broken to read is left to the readers, which refuse it.
"""

from __future__ import annotations

import math

from .. import limits

#: SOF markers of arithmetic-coded JPEG (no floor of bits a block)
_ARITHMETIC = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_LOSSLESS = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, *_ARITHMETIC})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
#: PNG colour type -> samples a pixel
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def check_photo(data: bytes, kind: str) -> None:
    """Refuse (:class:`~medcloak.errors.LimitError`) the photograph ``data`` of ``kind`` ("jpeg",
    "png") whose header declares more than the run's limits allow (see the module)."""
    if kind == "jpeg":
        check_jpeg(data)
    elif kind == "png":
        check_png(data)


def _jpeg_frame(data: bytes) -> tuple[int, int, int, int, list[tuple[int, int]]] | None:
    """(SOF marker, precision, height, width, [(h, v) sampling of each component]) of the JPEG
    stream's first frame header, or None when there is none before the scan (or the walk breaks)."""
    n, pos = len(data), 2
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        code = data[pos + 1]
        if code == 0xFF:
            pos += 1
            continue
        if code in _STANDALONE:
            pos += 2
            continue
        if code in (0xD9, 0xDA):
            return None
        length = (data[pos + 2] << 8) | data[pos + 3]
        if code in _SOF:
            body = data[pos + 4 : pos + 2 + length]
            if length < 8 or len(body) < 6:
                return None
            nf = body[5]
            sampling = [(body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(nf) if 8 + 3 * i <= len(body)]
            return code, body[0], (body[1] << 8) | body[2], (body[3] << 8) | body[4], sampling
        if length < 2:
            return None
        pos += 2 + length
    return None


def check_jpeg(data: bytes) -> None:
    """The JPEG stream ``data``'s frame against the ceiling and the floor of bits a block."""
    frame = _jpeg_frame(data)
    if frame is None:
        return
    code, precision, height, width, sampling = frame
    if not height or not width or not sampling:
        return  # no size (a DNL marker gives the height) or no components: the readers refuse it
    what = f"a JPEG of {width}x{height} pixels"
    sample = 2 if precision > 8 else 1
    limits.check_declared(width * height * len(sampling) * sample, what=what)
    if code in _ARITHMETIC:
        decoded = width * height * len(sampling) * sample
        limits.check_declared(decoded, what=what, stored=len(data), compressed=True)
        return
    if code in _LOSSLESS:
        units = width * height * len(sampling)  # one bit a sample at least
    else:
        hmax = max(max(h for h, _ in sampling), 1)
        vmax = max(max(v for _, v in sampling), 1)
        units = sum(math.ceil(math.ceil(width * h / hmax) / 8) * math.ceil(math.ceil(height * v / vmax) / 8)
                    for h, v in sampling)  # 8x8 blocks, one bit each at least
    limits.check_declared(-(-units // 8), what=f"the least coded data of {what}", stored=len(data))


def check_png(data: bytes) -> None:
    """The PNG ``data``'s image (IHDR) against the ceiling, and its filtered data against its IDAT
    chunks by the expansion ratio (above the run's floor)."""
    from ..pixels.png_meta import chunks

    found = chunks(data)
    ihdr = next((raw for kind, raw in found if kind == b"IHDR"), b"")
    if len(ihdr) < 8 + 13 + 4:
        return  # no header: the readers refuse it
    width, height = int.from_bytes(ihdr[8:12], "big"), int.from_bytes(ihdr[12:16], "big")
    depth, colour = ihdr[16], ihdr[17]
    samples = _PNG_SAMPLES.get(colour)
    if samples is None or depth not in (1, 2, 4, 8, 16):
        return
    what = f"a PNG of {width}x{height} pixels"
    filtered = height * (1 + -(-width * samples * depth // 8))
    limits.check_declared(max(filtered, width * height * samples * max(depth // 8, 1)), what=what)
    stored = sum(len(raw) - 12 for kind, raw in found if kind == b"IDAT")
    limits.check_declared(filtered, what=f"the image data of {what}", stored=stored, compressed=True)
