"""A slow, obvious reference JPEG codec (sequential DCT, Huffman), for tests only.

This module is the independent yardstick against which the fast compressed-domain
kernels are checked, so it is written for clarity, not speed: every step follows
ISO/IEC 10918-1 (ITU-T T.81) as literally as is practical, bits are handled as
Python strings of '0'/'1', and only the pixel transforms use numpy.

Conventions (shared by every function here):

* Coefficient arrays are ``int32`` of shape ``(blocks_tall, blocks_wide, 64)``,
  one row of 64 per 8x8 block, in **zigzag order** exactly as stored in the
  entropy-coded data (index 0 is DC, 1 is the first horizontal AC, 2 the first
  vertical AC, ...).  DC values are absolute quantized values (the DPCM
  differences are already undone).  ``NATURAL_OF_ZIGZAG[k]`` is the row-major
  8x8 index (``row * 8 + col``; row = vertical frequency) of zigzag position k.
* Quantization tables are arrays of 64 values in zigzag order, as stored in DQT.
* Block-array sizes:

  - single-component frame: ``ceil(Y/8)`` by ``ceil(X/8)`` blocks;
  - multi-component frame: the full MCU-padded size ``ceil(Y/(8*Vmax))*V`` by
    ``ceil(X/(8*Hmax))*H`` for every component, whether it was coded in an
    interleaved or a non-interleaved scan.  A non-interleaved scan codes only
    the component's own ``ceil(ceil(Y*V/Vmax)/8)`` by ``ceil(ceil(X*H/Hmax)/8)``
    blocks (``blocks_tall``/``blocks_wide`` in the result); the remaining
    padding blocks are never coded and stay zero.

  ``comp["blocks_tall"]``/``comp["blocks_wide"]`` are always the component's own
  (non-MCU-padded) block counts, which is what libjpeg (and so jpegio) exposes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# --------------------------------------------------------------------------
# Tables from the standard
# --------------------------------------------------------------------------

# Figure A.6: zigzag position -> natural (row-major) index.
NATURAL_OF_ZIGZAG = np.array(
    [
        0, 1, 8, 16, 9, 2, 3, 10,
        17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34,
        27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36,
        29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46,
        53, 60, 61, 54, 47, 55, 62, 63,
    ],
    dtype=np.intp,
)
ZIGZAG_OF_NATURAL = np.argsort(NATURAL_OF_ZIGZAG)

# Annex K, Table K.1 and K.2 (natural order).
STD_LUMINANCE_QUANT = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.int64,
)
STD_CHROMINANCE_QUANT = np.array(
    [
        17, 18, 24, 47, 99, 99, 99, 99,
        18, 21, 26, 66, 99, 99, 99, 99,
        24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
    ],
    dtype=np.int64,
)

# Annex K.3: (BITS[1..16], HUFFVAL) of the typical Huffman tables.
STD_DC_LUMINANCE = (
    (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0),
    bytes(range(12)),
)
STD_DC_CHROMINANCE = (
    (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    bytes(range(12)),
)
STD_AC_LUMINANCE = (
    (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D),
    bytes.fromhex(
        "01020300041105122131410613516107"
        "227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728"
        "292a3435363738393a43444546474849"
        "4a535455565758595a63646566676869"
        "6a737475767778797a83848586878889"
        "8a92939495969798999aa2a3a4a5a6a7"
        "a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5"
        "c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2"
        "e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8"
        "f9fa"
    ),
)
STD_AC_CHROMINANCE = (
    (0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77),
    bytes.fromhex(
        "00010203110405213106124151076171"
        "1322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a26"
        "2728292a35363738393a434445464748"
        "494a535455565758595a636465666768"
        "696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5"
        "a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9da"
        "e2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8"
        "f9fa"
    ),
)

# Start-of-frame markers we refuse, with the reason.
_UNSUPPORTED_SOF = {
    0xC2: "progressive DCT (SOF2) is not supported",
    0xC3: "lossless (SOF3) is not supported",
    0xC5: "hierarchical differential sequential (SOF5) is not supported",
    0xC6: "hierarchical differential progressive (SOF6) is not supported",
    0xC7: "hierarchical differential lossless (SOF7) is not supported",
    0xC8: "JPG extension SOF (0xFFC8) is not supported",
    0xC9: "arithmetic coding (SOF9) is not supported",
    0xCA: "arithmetic coding progressive (SOF10) is not supported",
    0xCB: "arithmetic coding lossless (SOF11) is not supported",
    0xCD: "hierarchical arithmetic coding (SOF13) is not supported",
    0xCE: "hierarchical arithmetic coding (SOF14) is not supported",
    0xCF: "hierarchical arithmetic coding (SOF15) is not supported",
    0xCC: "arithmetic coding conditioning tables (DAC) are not supported",
    0xDE: "hierarchical mode (DHP) is not supported",
    0xDF: "hierarchical mode (EXP) is not supported",
}


def _dct_matrix() -> np.ndarray:
    """C[u, x] = c(u)/2 cos((2x+1) u pi / 16), so that F = C f C^T (A.3.3)."""
    c = np.zeros((8, 8))
    for u in range(8):
        cu = math.sqrt(0.5) if u == 0 else 1.0
        for x in range(8):
            c[u, x] = cu / 2.0 * math.cos((2 * x + 1) * u * math.pi / 16.0)
    return c


DCT_MATRIX = _dct_matrix()


def zigzag_to_natural(coef: np.ndarray) -> np.ndarray:
    """(..., 64) zigzag -> (..., 8, 8) natural order (row = vertical frequency)."""
    coef = np.asarray(coef)
    out = np.zeros(coef.shape[:-1] + (64,), dtype=coef.dtype)
    out[..., NATURAL_OF_ZIGZAG] = coef
    return out.reshape(coef.shape[:-1] + (8, 8))


def natural_to_zigzag(blocks: np.ndarray) -> np.ndarray:
    """(..., 8, 8) natural order -> (..., 64) zigzag."""
    blocks = np.asarray(blocks)
    flat = blocks.reshape(blocks.shape[:-2] + (64,))
    return flat[..., NATURAL_OF_ZIGZAG]


def blocks_to_plane(coef: np.ndarray) -> np.ndarray:
    """(bt, bw, 64) zigzag -> (bt*8, bw*8) plane of natural-order 8x8 blocks.

    This is the layout libjpeg-based tools (jpegio's ``coef_arrays``) use.
    """
    nat = zigzag_to_natural(coef)  # (bt, bw, 8, 8)
    bt, bw = nat.shape[:2]
    return nat.transpose(0, 2, 1, 3).reshape(bt * 8, bw * 8)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --------------------------------------------------------------------------
# Huffman table helpers (Annex C)
# --------------------------------------------------------------------------


def _huffman_codes(bits: Sequence[int], huffval: bytes) -> list[tuple[int, int, int]]:
    """Annex C: [(symbol, code, length)] in HUFFVAL order.  Rejects bad tables."""
    if len(bits) != 16:
        raise ValueError("BITS must have 16 entries")
    if sum(bits) != len(huffval):
        raise ValueError("Huffman table: BITS total does not match HUFFVAL length")
    if len(huffval) > 256:
        raise ValueError("Huffman table has more than 256 symbols")
    codes = []
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if code >= (1 << length):
                raise ValueError("Huffman table: code lengths over-subscribe the code space")
            codes.append((huffval[k], code, length))
            code += 1
            k += 1
        code <<= 1
    return codes


class HuffmanTable:
    """A Huffman table (BITS, HUFFVAL) with encode and decode look-ups."""

    def __init__(self, bits: Sequence[int], huffval: bytes | Sequence[int]):
        self.bits = tuple(int(b) for b in bits)
        self.huffval = bytes(huffval)
        codes = _huffman_codes(self.bits, self.huffval)
        # decode: code string -> symbol; encode: symbol -> code string
        self.decode_map: dict[str, int] = {}
        self.encode_map: dict[int, str] = {}
        for symbol, code, length in codes:
            text = format(code, "0%db" % length)
            if symbol in self.encode_map:
                raise ValueError("Huffman table lists symbol 0x%02x twice" % symbol)
            self.decode_map[text] = symbol
            self.encode_map[symbol] = text

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "HuffmanTable(bits=%r, %d symbols)" % (self.bits, len(self.huffval))


def optimal_huffman_table(freq: dict[int, int] | Sequence[int]) -> tuple[tuple[int, ...], bytes]:
    """Annex K.2: an optimal table (BITS, HUFFVAL) for symbol frequencies, lengths <= 16.

    A reserved pseudo-symbol 256 with frequency 1 takes part in the construction
    and its code (one of the longest) is then dropped, so no code is all ones.
    """
    counts = [0] * 257
    if isinstance(freq, dict):
        for sym, n in freq.items():
            counts[int(sym)] = int(n)
    else:
        for sym, n in enumerate(freq):
            counts[sym] = int(n)
    counts[256] = 1
    codesize = [0] * 257
    others = [-1] * 257
    while True:
        # Figure K.1: V1 = least frequency > 0, V2 = next least (ties: larger V).
        v1 = -1
        for v in range(257):
            if counts[v] > 0 and (v1 < 0 or counts[v] <= counts[v1]):
                v1 = v
        v2 = -1
        for v in range(257):
            if v != v1 and counts[v] > 0 and (v2 < 0 or counts[v] <= counts[v2]):
                v2 = v
        if v2 < 0:
            break
        counts[v1] += counts[v2]
        counts[v2] = 0
        codesize[v1] += 1
        while others[v1] != -1:
            v1 = others[v1]
            codesize[v1] += 1
        others[v1] = v2
        codesize[v2] += 1
        while others[v2] != -1:
            v2 = others[v2]
            codesize[v2] += 1
    # Figure K.2: count codes of each size.
    max_size = max(codesize)
    bits = [0] * (max(max_size, 16) + 1)
    for v in range(257):
        if codesize[v]:
            bits[codesize[v]] += 1
    # Figure K.3: limit code lengths to 16 bits.
    i = len(bits) - 1
    while i > 16:
        if bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
        else:
            i -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # remove the reserved code point
    # Figure K.4: symbols sorted by code size, then by value.
    huffval = []
    for size in range(1, max_size + 1):
        for v in range(256):
            if codesize[v] == size:
                huffval.append(v)
    return tuple(bits[1:17]), bytes(huffval)


# --------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------


class _BitReader:
    """Bits of one entropy-coded segment (already unstuffed), as a '0'/'1' string."""

    def __init__(self, data: bytes):
        self.bits = "".join(format(b, "08b") for b in data)
        self.pos = 0

    def read(self, n: int) -> int:
        if n == 0:
            return 0
        if self.pos + n > len(self.bits):
            raise ValueError("entropy-coded segment ended in the middle of an MCU")
        value = int(self.bits[self.pos : self.pos + n], 2)
        self.pos += n
        return value

    def decode(self, table: HuffmanTable) -> int:
        for length in range(1, 17):
            text = self.bits[self.pos : self.pos + length]
            if len(text) < length:
                raise ValueError("entropy-coded segment ended in the middle of an MCU")
            symbol = table.decode_map.get(text)
            if symbol is not None:
                self.pos += length
                return symbol
        raise ValueError("invalid Huffman code at bit %d" % self.pos)

    def leftover(self) -> str:
        return self.bits[self.pos :]


def _extend(v: int, t: int) -> int:
    """F.2.2.1 EXTEND: interpret T additional bits as a signed value."""
    if t == 0:
        return 0
    if v < (1 << (t - 1)):
        return v - (1 << t) + 1
    return v


def _read_entropy_segments(data: bytes, pos: int) -> tuple[list[tuple[bytes, int | None]], int]:
    """Split entropy-coded data at RSTn markers, unstuffing 0xFF00.

    Returns ([(segment_bytes, rst_number_that_ended_it or None)], position of
    the marker that ended the scan).
    """
    segments: list[tuple[bytes, int | None]] = []
    current = bytearray()
    n = len(data)
    while True:
        if pos >= n:
            raise ValueError("data ended inside entropy-coded data (no EOI)")
        b = data[pos]
        if b != 0xFF:
            current.append(b)
            pos += 1
            continue
        # 0xFF: stuffed zero, fill byte, RST, or the end of the scan
        nxt = pos + 1
        while nxt < n and data[nxt] == 0xFF:  # fill bytes before a marker
            nxt += 1
        if nxt >= n:
            raise ValueError("data ended inside entropy-coded data (no EOI)")
        code = data[nxt]
        if code == 0x00:
            if nxt != pos + 1:
                raise ValueError("0xFF fill bytes followed by a stuffed zero")
            current.append(0xFF)
            pos = nxt + 1
        elif 0xD0 <= code <= 0xD7:
            segments.append((bytes(current), code - 0xD0))
            current = bytearray()
            pos = nxt + 1
        else:
            segments.append((bytes(current), None))
            return segments, nxt - 1  # position of the 0xFF that starts the marker


def _check_padding(reader: _BitReader, where: str, strict: bool, warnings: list[str]) -> None:
    rest = reader.leftover()
    ok = len(rest) < 8 and set(rest) <= {"1"}
    if not ok:
        message = "%s: %d bits left after the last MCU%s" % (
            where,
            len(rest),
            "" if len(rest) >= 8 else " are not 1-padding",
        )
        if strict:
            raise ValueError(message)
        warnings.append(message)


def decode_coefficients(data: bytes, *, strict: bool = True) -> dict:
    """Parse a sequential-DCT Huffman JPEG (SOF0/SOF1) into quantized coefficients.

    Returns a dict with keys:

    ``width``, ``height``, ``precision``: from the frame header;
    ``components``: list (frame order) of dicts with ``id``, ``h``, ``v``,
    ``tq``, ``coef`` (int32, (blocks_tall, blocks_wide, 64), zigzag, see the
    module docstring for the size), ``blocks_tall``/``blocks_wide`` (the
    component's own block counts), ``quant`` (the component's table, zigzag,
    as in force at its scan);
    ``quant``: {tq: int64 array of 64, zigzag} (last definition of each table);
    ``huffman``: {(class, id): (BITS tuple, HUFFVAL bytes)}, class 0 = DC, 1 = AC;
    ``restart_interval``: the last DRI value (0 if none);
    ``adobe_transform``: APP14 "Adobe" transform byte or None;
    ``jfif``: whether an APP0 "JFIF" segment was present;
    ``scans``: list of (component ids, Ss, Se, Ah, Al) per scan;
    ``warnings``: list of tolerated irregularities (e.g. Ss/Se not 0/63).

    With ``strict`` (default), anything but exact 1-padding after the last MCU of
    each restart interval, an RSTn out of sequence, an RSTn after the last
    interval, or a component never coded raises ValueError; otherwise these
    become warnings.  Bytes after EOI are ignored.  Ss/Se/Ah/Al of a sequential
    scan other than 0/63/0/0 are ignored with a warning, as libjpeg does.
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file (no SOI)")
    pos = 2
    quant: dict[int, np.ndarray] = {}
    huffman: dict[tuple[int, int], tuple[tuple[int, ...], bytes]] = {}
    tables: dict[tuple[int, int], HuffmanTable] = {}
    restart_interval = 0
    adobe_transform = None
    jfif = False
    frame = None
    components: list[dict] = []
    scans: list[tuple] = []
    warnings: list[str] = []
    saw_eoi = False

    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError("expected a marker at offset %d" % pos)
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= len(data):
            raise ValueError("data ended after 0xFF")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            saw_eoi = True
            break
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            raise ValueError("unexpected marker 0xFF%02X outside entropy-coded data" % marker)
        if pos + 2 > len(data):
            raise ValueError("truncated marker segment")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > len(data):
            raise ValueError("bad length for marker 0xFF%02X" % marker)
        body = data[pos + 2 : pos + length]
        pos += length

        if marker in _UNSUPPORTED_SOF:
            raise ValueError(_UNSUPPORTED_SOF[marker])
        if marker in (0xC0, 0xC1):
            if frame is not None:
                raise ValueError("more than one SOF marker")
            precision = body[0]
            height = int.from_bytes(body[1:3], "big")
            width = int.from_bytes(body[3:5], "big")
            nf = body[5]
            if marker == 0xC0 and precision != 8:
                raise ValueError("baseline (SOF0) requires 8-bit precision")
            if precision not in (8, 12):
                raise ValueError("sample precision %d is not 8 or 12" % precision)
            if height == 0:
                raise ValueError("height 0 (DNL marker) is not supported")
            if width == 0:
                raise ValueError("width 0")
            if not 1 <= nf <= 4 or len(body) != 6 + 3 * nf:
                raise ValueError("bad SOF: %d components" % nf)
            for i in range(nf):
                cid, hv, tq = body[6 + 3 * i : 9 + 3 * i]
                h, v = hv >> 4, hv & 15
                if not (1 <= h <= 4 and 1 <= v <= 4):
                    raise ValueError("sampling factors %dx%d out of range" % (h, v))
                if tq > 3:
                    raise ValueError("quantization table id %d > 3" % tq)
                if any(c["id"] == cid for c in components):
                    raise ValueError("duplicate component id %d" % cid)
                components.append({"id": cid, "h": h, "v": v, "tq": tq})
            hmax = max(c["h"] for c in components)
            vmax = max(c["v"] for c in components)
            mcux = _ceil_div(width, 8 * hmax)
            mcuy = _ceil_div(height, 8 * vmax)
            for c in components:
                c["blocks_wide"] = _ceil_div(_ceil_div(width * c["h"], hmax), 8)
                c["blocks_tall"] = _ceil_div(_ceil_div(height * c["v"], vmax), 8)
                if nf == 1:
                    shape = (c["blocks_tall"], c["blocks_wide"], 64)
                else:
                    shape = (mcuy * c["v"], mcux * c["h"], 64)
                c["coef"] = np.zeros(shape, dtype=np.int32)
                c["coded"] = False
            frame = {
                "precision": precision,
                "width": width,
                "height": height,
                "hmax": hmax,
                "vmax": vmax,
                "mcux": mcux,
                "mcuy": mcuy,
            }
        elif marker == 0xDB:  # DQT
            p = 0
            while p < len(body):
                pq, tq = body[p] >> 4, body[p] & 15
                p += 1
                if pq > 1 or tq > 3:
                    raise ValueError("bad DQT Pq/Tq")
                if pq == 0:
                    values = list(body[p : p + 64])
                    p += 64
                else:
                    values = [int.from_bytes(body[p + 2 * k : p + 2 * k + 2], "big") for k in range(64)]
                    p += 128
                if len(values) != 64 or p > len(body):
                    raise ValueError("truncated DQT")
                quant[tq] = np.array(values, dtype=np.int64)
        elif marker == 0xC4:  # DHT
            p = 0
            while p < len(body):
                tc, th = body[p] >> 4, body[p] & 15
                if tc > 1 or th > 3:
                    raise ValueError("bad DHT Tc/Th")
                bits = tuple(body[p + 1 : p + 17])
                count = sum(bits)
                huffval = body[p + 17 : p + 17 + count]
                if len(bits) != 16 or len(huffval) != count:
                    raise ValueError("truncated DHT")
                p += 17 + count
                tables[(tc, th)] = HuffmanTable(bits, huffval)
                huffman[(tc, th)] = (bits, bytes(huffval))
        elif marker == 0xDD:  # DRI
            if len(body) != 2:
                raise ValueError("bad DRI length")
            restart_interval = int.from_bytes(body, "big")
        elif marker == 0xE0:
            if body[:5] == b"JFIF\x00":
                jfif = True
        elif marker == 0xEE:
            if body[:5] == b"Adobe" and len(body) >= 12:
                adobe_transform = body[11]
        elif marker == 0xDA:  # SOS
            if frame is None:
                raise ValueError("SOS before SOF")
            pos = _decode_scan(data, pos, body, frame, components, tables, quant,
                               restart_interval, scans, warnings, strict)
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE or 0xF0 <= marker <= 0xFD or marker == 0xDC:
            pass  # APPn, COM, JPGn, DNL-after-frame: skipped
        else:
            raise ValueError("unsupported marker 0xFF%02X" % marker)

    if frame is None:
        raise ValueError("no SOF0/SOF1 frame header")
    if not saw_eoi:
        raise ValueError("no EOI marker")
    for c in components:
        if not c.pop("coded"):
            message = "component %d was never coded in a scan" % c["id"]
            if strict:
                raise ValueError(message)
            warnings.append(message)
            c["quant"] = quant.get(c["tq"])
    return {
        "width": frame["width"],
        "height": frame["height"],
        "precision": frame["precision"],
        "components": components,
        "quant": quant,
        "huffman": huffman,
        "restart_interval": restart_interval,
        "adobe_transform": adobe_transform,
        "jfif": jfif,
        "scans": scans,
        "warnings": warnings,
    }


def _decode_scan(data, pos, body, frame, components, tables, quant, restart_interval,
                 scans, warnings, strict) -> int:
    ns = body[0]
    if not 1 <= ns <= 4 or len(body) != 4 + 2 * ns:
        raise ValueError("bad SOS header")
    scan_comps = []
    for i in range(ns):
        cid, tdta = body[1 + 2 * i], body[2 + 2 * i]
        matches = [c for c in components if c["id"] == cid]
        if not matches:
            raise ValueError("scan refers to unknown component %d" % cid)
        comp = matches[0]
        if comp["coded"]:
            raise ValueError("component %d coded in more than one scan" % cid)
        td, ta = tdta >> 4, tdta & 15
        if (0, td) not in tables or (1, ta) not in tables:
            raise ValueError("scan uses an undefined Huffman table")
        if comp["tq"] not in quant:
            raise ValueError("component %d uses undefined quantization table %d" % (cid, comp["tq"]))
        comp["coded"] = True
        comp["quant"] = quant[comp["tq"]].copy()
        scan_comps.append((comp, tables[(0, td)], tables[(1, ta)]))
    order = [components.index(c) for c, _, _ in scan_comps]
    if order != sorted(order):
        # B.2.3: the scan lists its components in frame order (libjpeg enforces it)
        raise ValueError("scan components are not in frame order")
    ss, se, ahal = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns]
    scans.append((tuple(c["id"] for c, _, _ in scan_comps), ss, se, ahal >> 4, ahal & 15))
    if (ss, se, ahal) != (0, 63, 0):
        # libjpeg ignores these for sequential JPEG (with a warning); so do we.
        warnings.append("sequential scan with Ss=%d Se=%d Ah=%d Al=%d (ignored)" % (ss, se, ahal >> 4, ahal & 15))

    # The list of data units, MCU by MCU: [(component, block row, block col)].
    if ns == 1:
        comp = scan_comps[0][0]
        mcus = [[(0, r, c)] for r in range(comp["blocks_tall"]) for c in range(comp["blocks_wide"])]
    else:
        if sum(c["h"] * c["v"] for c, _, _ in scan_comps) > 10:
            raise ValueError("more than 10 blocks in an MCU")
        mcus = []
        for my in range(frame["mcuy"]):
            for mx in range(frame["mcux"]):
                units = []
                for k, (comp, _, _) in enumerate(scan_comps):
                    for y in range(comp["v"]):
                        for x in range(comp["h"]):
                            units.append((k, my * comp["v"] + y, mx * comp["h"] + x))
                mcus.append(units)

    segments, end = _read_entropy_segments(data, pos)
    interval = restart_interval if restart_interval > 0 else len(mcus)
    expected_segments = max(1, _ceil_div(len(mcus), interval))
    if not strict and len(segments) == expected_segments + 1 and segments[-1][0] == b"":
        # some writers put an RSTn after the last interval; libjpeg tolerates it
        warnings.append("RST marker after the last restart interval")
        segments = segments[:-1]
    if len(segments) != expected_segments:
        raise ValueError(
            "scan has %d entropy-coded segments, expected %d (%d MCUs, restart interval %d)"
            % (len(segments), expected_segments, len(mcus), restart_interval)
        )
    for index, (segment, rst) in enumerate(segments):
        is_last = index == len(segments) - 1
        if not is_last and rst != index % 8:
            message = "RST%d found where RST%d was expected" % (rst, index % 8)
            if strict:
                raise ValueError(message)
            warnings.append(message)
        reader = _BitReader(segment)
        predictors = [0] * ns
        for units in mcus[index * interval : (index + 1) * interval]:
            for k, row, col in units:
                comp, dc_table, ac_table = scan_comps[k]
                block = comp["coef"][row, col]
                # F.2.2.1: DC difference
                t = reader.decode(dc_table)
                if t > 15:
                    raise ValueError("DC category %d > 15" % t)
                predictors[k] += _extend(reader.read(t), t)
                block[0] = predictors[k]
                # F.2.2.2: AC coefficients
                kk = 1
                while kk < 64:
                    rs = reader.decode(ac_table)
                    r, s = rs >> 4, rs & 15
                    if s == 0:
                        if r == 15:
                            kk += 16
                            continue
                        break  # EOB
                    kk += r
                    if kk > 63:
                        raise ValueError("AC run goes past coefficient 63")
                    block[kk] = _extend(reader.read(s), s)
                    kk += 1
                if kk > 64:
                    raise ValueError("ZRL goes past coefficient 63")
        _check_padding(reader, "scan %d, restart interval %d" % (len(scans), index), strict, warnings)
    return end


def _component_size(info: dict, comp: dict) -> tuple[int, int]:
    """(rows, cols) of a component's samples, A.1.1."""
    hmax = max(c["h"] for c in info["components"])
    vmax = max(c["v"] for c in info["components"])
    return (
        _ceil_div(info["height"] * comp["v"], vmax),
        _ceil_div(info["width"] * comp["h"], hmax),
    )


def decode_pixels(data: bytes | dict) -> list[np.ndarray]:
    """Reconstructed samples, one 2-D array per component (frame order).

    Float IDCT of the dequantized coefficients, level shift, round, clamp,
    cropped to the component's own size (ceil(Y*V/Vmax), ceil(X*H/Hmax)).
    No upsampling, no colour conversion.  uint8 for 8-bit, uint16 for 12-bit.
    Accepts JPEG bytes or the dict from decode_coefficients.
    """
    info = data if isinstance(data, dict) else decode_coefficients(data)
    precision = info["precision"]
    out = []
    for comp in info["components"]:
        q = comp["quant"]
        coef = comp["coef"].astype(np.float64) * q  # zigzag, broadcast over blocks
        nat = zigzag_to_natural(coef)  # (bt, bw, 8, 8)
        # f = C^T F C for every block
        pix = np.einsum("ui,abuv,vj->abij", DCT_MATRIX, nat, DCT_MATRIX)
        pix = np.clip(np.round(pix + (1 << (precision - 1))), 0, (1 << precision) - 1)
        bt, bw = pix.shape[:2]
        plane = pix.transpose(0, 2, 1, 3).reshape(bt * 8, bw * 8)
        rows, cols = _component_size(info, comp)
        out.append(plane[:rows, :cols].astype(np.uint8 if precision == 8 else np.uint16))
    return out


# --------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------


def quality_scaled_table(base: np.ndarray, quality: int, max_value: int) -> np.ndarray:
    """IJG quality scaling of a natural-order table, clamped to [1, max_value]."""
    if not 1 <= quality <= 100:
        raise ValueError("quality must be in 1..100")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = (np.asarray(base, dtype=np.int64) * scale + 50) // 100
    return np.clip(table, 1, max_value)


def _category(value: int) -> int:
    """Number of bits of |value| (SSSS, Tables F.1/F.2)."""
    return abs(int(value)).bit_length()


def _additional_bits(value: int, size: int) -> str:
    """F.1.2.1: value if positive, else value - 1 in the low SIZE bits."""
    if size == 0:
        return ""
    if value < 0:
        value += (1 << size) - 1
    return format(value, "0%db" % size)


def _bits_to_bytes(bits: str) -> bytes:
    """Pad with 1s to a byte boundary, pack, and stuff a 0x00 after every 0xFF."""
    if len(bits) % 8:
        bits += "1" * (8 - len(bits) % 8)
    out = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i : i + 8], 2)
        out.append(byte)
        if byte == 0xFF:
            out.append(0x00)
    return bytes(out)


def _segment(marker: int, body: bytes) -> bytes:
    if len(body) + 2 > 0xFFFF:
        raise ValueError("marker segment too long")
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def _block_symbols(block: Sequence[int], pred: int, max_dc_cat: int, max_ac_cat: int):
    """(dc_symbol, dc_bits, [(ac_symbol, ac_bits)]) for one zigzag block (F.1.2)."""
    diff = int(block[0]) - pred
    t = _category(diff)
    if t > max_dc_cat:
        raise ValueError("DC difference %d needs category %d > %d" % (diff, t, max_dc_cat))
    dc = (t, _additional_bits(diff, t))
    ac = []
    run = 0
    for k in range(1, 64):
        value = int(block[k])
        if value == 0:
            run += 1
            continue
        while run > 15:
            ac.append((0xF0, ""))  # ZRL
            run -= 16
        s = _category(value)
        if s > max_ac_cat:
            raise ValueError("AC coefficient %d needs category %d > %d" % (value, s, max_ac_cat))
        ac.append(((run << 4) | s, _additional_bits(value, s)))
        run = 0
    if run > 0:
        ac.append((0x00, ""))  # EOB
    return dc, ac


def _expected_shapes(width, height, sampling):
    hmax = max(h for h, v in sampling)
    vmax = max(v for h, v in sampling)
    mcux = _ceil_div(width, 8 * hmax)
    mcuy = _ceil_div(height, 8 * vmax)
    own = [
        (_ceil_div(_ceil_div(height * v, vmax), 8), _ceil_div(_ceil_div(width * h, hmax), 8))
        for h, v in sampling
    ]
    if len(sampling) == 1:
        padded = [own[0]]
    else:
        padded = [(mcuy * v, mcux * h) for h, v in sampling]
    return mcux, mcuy, own, padded


def encode_coefficients(
    coefs: Sequence[np.ndarray],
    quant_tables: Sequence[np.ndarray] | dict,
    *,
    width: int,
    height: int,
    precision: int = 8,
    sampling: Sequence[tuple[int, int]] | None = None,
    tq: Sequence[int] | None = None,
    component_ids: Sequence[int] | None = None,
    restart_interval: int = 0,
    optimize: bool = False,
    scans: Sequence[Sequence[int]] | None = None,
    jfif: bool = False,
    adobe_transform: int | None = None,
    huffman_tables: dict | None = None,
) -> bytes:
    """Entropy-code given quantized coefficients into a JPEG file.

    ``coefs``: per component, int arrays (blocks_tall, blocks_wide, 64) in zigzag
    order with absolute DC, of exactly the size decode_coefficients returns for
    this geometry (the MCU-padded size for multi-component frames).
    ``quant_tables``: list (or {id: table}) of 64-entry zigzag tables; these are
    only written to DQT (coefficients are taken as already quantized).
    ``tq``: table id per component (default 0 for the first, 1 for others if
    defined).  Huffman tables: DC/AC table 0 for the first component, 1 for the
    others.  ``scans``: component indices per scan (default: one scan of all
    components, interleaved if more than one); blocks of a component in a
    non-interleaved scan of a multi-component frame beyond its own size are not
    coded.  ``optimize``: build optimal Huffman tables (Annex K.2); they are
    also built whenever ``precision`` is 12 (the Annex K tables only cover
    8-bit categories) unless ``huffman_tables`` is given as
    {(class, id): (BITS, HUFFVAL)}.  Precision 8 writes SOF0 (baseline) unless
    a 16-bit quant table forces SOF1; precision 12 writes SOF1.
    """
    nf = len(coefs)
    if not 1 <= nf <= 4:
        raise ValueError("1 to 4 components")
    if precision not in (8, 12):
        raise ValueError("precision must be 8 or 12")
    if not (1 <= width <= 65535 and 1 <= height <= 65535):
        raise ValueError("image size out of range")
    sampling = [(1, 1)] * nf if sampling is None else [tuple(s) for s in sampling]
    if len(sampling) != nf or any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v in sampling):
        raise ValueError("bad sampling factors")
    if isinstance(quant_tables, dict):
        qdict = {int(k): np.asarray(t, dtype=np.int64).reshape(64) for k, t in quant_tables.items()}
    else:
        qdict = {i: np.asarray(t, dtype=np.int64).reshape(64) for i, t in enumerate(quant_tables)}
    if tq is None:
        tq = [0] + [1 if 1 in qdict else 0] * (nf - 1)
    tq = list(tq)
    if component_ids is None:
        component_ids = list(range(1, nf + 1))
    if scans is None:
        scans = [tuple(range(nf))]
    scans = [tuple(s) for s in scans]
    if sorted(i for s in scans for i in s) != list(range(nf)):
        raise ValueError("each component must be in exactly one scan")
    mcux, mcuy, own, padded = _expected_shapes(width, height, sampling)
    coefs = [np.asarray(c) for c in coefs]
    for i, c in enumerate(coefs):
        if c.shape != padded[i] + (64,):
            raise ValueError("component %d: coefficient shape %s, expected %s" % (i, c.shape, padded[i] + (64,)))
    max_q = max(int(t.max()) for t in qdict.values())
    if min(int(t.min()) for t in qdict.values()) < 1 or max_q > 65535:
        raise ValueError("quantization values must be 1..65535")
    sof = 0xC0 if precision == 8 and max_q <= 255 else 0xC1
    max_dc_cat = 11 if precision == 8 else 15
    max_ac_cat = 10 if precision == 8 else 14
    dc_id = [0] + [1] * (nf - 1)
    ac_id = [0] + [1] * (nf - 1)

    # The MCUs of each scan: [[(component index, row, col), ...], ...]
    scan_mcus = []
    for scan in scans:
        if not 1 <= len(scan) <= 4:
            raise ValueError("a scan has 1 to 4 components")
        if list(scan) != sorted(scan):
            raise ValueError("scan components must be in frame order (B.2.3)")
        if len(scan) == 1:
            i = scan[0]
            rows, cols = own[i]
            mcus = [[(i, r, c)] for r in range(rows) for c in range(cols)]
        else:
            if sum(sampling[i][0] * sampling[i][1] for i in scan) > 10:
                raise ValueError("more than 10 blocks in an MCU")
            mcus = []
            for my in range(mcuy):
                for mx in range(mcux):
                    units = []
                    for i in scan:
                        h, v = sampling[i]
                        for y in range(v):
                            for x in range(h):
                                units.append((i, my * v + y, mx * h + x))
                    mcus.append(units)
        scan_mcus.append(mcus)

    # Symbols for every data unit, with DC prediction reset per restart interval.
    interval = restart_interval
    scan_symbols = []  # per scan: list of intervals: list of (comp, dc, ac)
    for scan, mcus in zip(scans, scan_mcus):
        per_interval = interval if interval > 0 else len(mcus)
        intervals = []
        for start in range(0, len(mcus), per_interval):
            pred = {i: 0 for i in scan}
            units_out = []
            for units in mcus[start : start + per_interval]:
                for i, r, c in units:
                    block = coefs[i][r, c]
                    dc, ac = _block_symbols(block, pred[i], max_dc_cat, max_ac_cat)
                    pred[i] = int(block[0])
                    units_out.append((i, dc, ac))
            intervals.append(units_out)
        scan_symbols.append(intervals)

    # Huffman tables
    used_dc = sorted({dc_id[i] for i in range(nf)})
    used_ac = sorted({ac_id[i] for i in range(nf)})
    if huffman_tables is not None:
        spec = {k: (tuple(b), bytes(v)) for k, (b, v) in huffman_tables.items()}
    elif optimize or precision == 12:
        dc_freq = {t: {} for t in used_dc}
        ac_freq = {t: {} for t in used_ac}
        for intervals in scan_symbols:
            for units in intervals:
                for i, dc, ac in units:
                    f = dc_freq[dc_id[i]]
                    f[dc[0]] = f.get(dc[0], 0) + 1
                    f = ac_freq[ac_id[i]]
                    for sym, _ in ac:
                        f[sym] = f.get(sym, 0) + 1
        spec = {}
        for t in used_dc:
            spec[(0, t)] = optimal_huffman_table(dc_freq[t])
        for t in used_ac:
            freq = ac_freq[t]
            if not freq:  # possible only if every block of these components has 63 non-zero AC
                freq = {0: 1}
            spec[(1, t)] = optimal_huffman_table(freq)
    else:
        spec = {(0, 0): STD_DC_LUMINANCE, (1, 0): STD_AC_LUMINANCE}
        if nf > 1:
            spec[(0, 1)] = STD_DC_CHROMINANCE
            spec[(1, 1)] = STD_AC_CHROMINANCE
    tables = {k: HuffmanTable(*v) for k, v in spec.items()}

    # Headers
    out = bytearray(b"\xff\xd8")
    if jfif:
        out += _segment(0xE0, b"JFIF\x00" + bytes([1, 1, 0, 0, 1, 0, 1, 0, 0]))
    if adobe_transform is not None:
        out += _segment(0xEE, b"Adobe" + bytes([0, 100, 0, 0, 0, 0, adobe_transform]))
    for t in sorted(qdict):
        table = qdict[t]
        if table.max() > 255:
            out += _segment(0xDB, bytes([0x10 | t]) + b"".join(int(x).to_bytes(2, "big") for x in table))
        else:
            out += _segment(0xDB, bytes([t]) + bytes(int(x) for x in table))
    body = bytes([precision]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([nf])
    for i in range(nf):
        h, v = sampling[i]
        body += bytes([component_ids[i], (h << 4) | v, tq[i]])
    out += _segment(sof, body)
    for key in sorted(spec):
        bits, huffval = spec[key]
        out += _segment(0xC4, bytes([(key[0] << 4) | key[1]]) + bytes(bits) + bytes(huffval))
    if restart_interval > 0:
        out += _segment(0xDD, restart_interval.to_bytes(2, "big"))

    # Scans
    for scan, intervals in zip(scans, scan_symbols):
        body = bytes([len(scan)])
        for i in scan:
            body += bytes([component_ids[i], (dc_id[i] << 4) | ac_id[i]])
        body += bytes([0, 63, 0])
        out += _segment(0xDA, body)
        for n, units in enumerate(intervals):
            bits = []
            for i, dc, ac in units:
                dct = tables[(0, dc_id[i])].encode_map
                act = tables[(1, ac_id[i])].encode_map
                bits.append(dct[dc[0]])
                bits.append(dc[1])
                for sym, extra in ac:
                    bits.append(act[sym])
                    bits.append(extra)
            out += _bits_to_bytes("".join(bits))
            if n != len(intervals) - 1:
                out += bytes([0xFF, 0xD0 + n % 8])
    out += b"\xff\xd9"
    return bytes(out)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """JFIF RGB -> YCbCr (8-bit samples), rounded and clamped."""
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    out = np.stack([y, cb, cr], axis=-1)
    return np.clip(np.round(out), 0, 255).astype(np.int64)


def _pad_edge(plane: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.pad(plane, ((0, rows - plane.shape[0]), (0, cols - plane.shape[1])), mode="edge")


def forward_dct_quantize(plane: np.ndarray, qtable_zigzag: np.ndarray, precision: int) -> np.ndarray:
    """Plane whose sides are multiples of 8 -> (bt, bw, 64) zigzag quantized coefficients."""
    rows, cols = plane.shape
    bt, bw = rows // 8, cols // 8
    blocks = plane.astype(np.float64).reshape(bt, 8, bw, 8).transpose(0, 2, 1, 3)
    blocks = blocks - (1 << (precision - 1))
    # F = C f C^T for every block
    freq = np.einsum("ui,abij,vj->abuv", DCT_MATRIX, blocks, DCT_MATRIX)
    zz = natural_to_zigzag(freq)
    q = np.asarray(qtable_zigzag, dtype=np.float64)
    scaled = zz / q
    quantized = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # round half away from zero
    return quantized.astype(np.int32)


def _qtable_zigzag(table) -> np.ndarray:
    """(8, 8) natural-order or (64,) zigzag-order table -> (64,) zigzag."""
    table = np.asarray(table, dtype=np.int64)
    if table.shape == (8, 8):
        return natural_to_zigzag(table)
    if table.shape == (64,):
        return table.copy()
    raise ValueError("a quantization table is (8, 8) natural order or (64,) zigzag order")


def encode(
    pixels: np.ndarray,
    *,
    precision: int = 8,
    sampling: Sequence[tuple[int, int]] = ((1, 1), (1, 1), (1, 1)),
    quality: int = 75,
    restart_interval: int = 0,
    optimize: bool = False,
    qtables: Sequence | None = None,
    scans: Sequence[Sequence[int]] | None = None,
    return_coefficients: bool = False,
):
    """Encode samples as a sequential Huffman JPEG (SOF0 for 8-bit, SOF1 for 12-bit).

    ``pixels``: (H, W) greyscale or (H, W, 3) colour, integer samples below
    2**precision.  8-bit colour is converted RGB -> YCbCr (JFIF) and gets a JFIF
    APP0 (8-bit greyscale too); 12-bit colour planes are taken as YCbCr samples
    as they are, without conversion, and no JFIF/Adobe segment is written.
    ``sampling``: (H, V) per component (only the first is used for greyscale);
    chroma is box-averaged, so Hmax/H and Vmax/V must be whole numbers.
    Quantization: Annex K.1/K.2 tables scaled by ``quality`` (IJG), clamped to
    255 at 8 bits and 32767 at 12 bits; or ``qtables`` (luminance[, chrominance])
    each (8, 8) natural order or (64,) zigzag.  Float DCT, rounding half away from
    zero.  Edges are replicated to whole MCUs.  ``restart_interval`` in MCUs.
    ``scans`` as for encode_coefficients.

    Returns the JPEG bytes, or (bytes, coefficients) with ``return_coefficients``,
    where coefficients are what decode_coefficients must give back (blocks of a
    non-interleaved component beyond its own size are zeroed, being never coded).
    """
    pixels = np.asarray(pixels)
    if precision not in (8, 12):
        raise ValueError("precision must be 8 or 12")
    if pixels.ndim == 2:
        planes = [pixels.astype(np.int64)]
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        planes = None
    else:
        raise ValueError("pixels must be (H, W) or (H, W, 3)")
    if not np.issubdtype(pixels.dtype, np.integer):
        raise ValueError("pixels must be integers")
    if pixels.size == 0 or pixels.min() < 0 or pixels.max() >= (1 << precision):
        raise ValueError("samples out of range for %d-bit precision" % precision)
    height, width = pixels.shape[:2]
    if planes is None:
        if precision == 8:
            ycc = rgb_to_ycbcr(pixels)
        else:
            ycc = pixels.astype(np.int64)
        planes = [ycc[..., k] for k in range(3)]
        sampling = [tuple(s) for s in sampling]
        if len(sampling) != 3:
            raise ValueError("colour needs three sampling factors")
    else:
        sampling = [tuple(sampling[0])]
    nf = len(planes)
    hmax = max(h for h, v in sampling)
    vmax = max(v for h, v in sampling)
    for h, v in sampling:
        if hmax % h or vmax % v:
            raise ValueError("the encoder only supports whole-number subsampling ratios")

    max_q = 255 if precision == 8 else 32767
    if qtables is None:
        tables = [natural_to_zigzag(quality_scaled_table(STD_LUMINANCE_QUANT, quality, max_q).reshape(8, 8))]
        if nf > 1:
            tables.append(natural_to_zigzag(quality_scaled_table(STD_CHROMINANCE_QUANT, quality, max_q).reshape(8, 8)))
    else:
        tables = [_qtable_zigzag(t) for t in qtables]
        if nf > 1 and len(tables) == 1:
            tables.append(tables[0])
        tables = tables[: 1 if nf == 1 else 2]
    tq = [0] + [1] * (nf - 1)

    mcux, mcuy, own, padded = _expected_shapes(width, height, sampling)
    coefs = []
    for i, plane in enumerate(planes):
        h, v = sampling[i]
        fx, fy = hmax // h, vmax // v
        # downsample by box averaging (edge-replicated to a whole number of boxes)
        crow, ccol = _ceil_div(height, fy), _ceil_div(width, fx)
        big = _pad_edge(plane, crow * fy, ccol * fx).astype(np.float64)
        small = big.reshape(crow, fy, ccol, fx).mean(axis=(1, 3))
        small = np.clip(np.round(small), 0, (1 << precision) - 1)
        rows, cols = padded[i]
        full = _pad_edge(small, rows * 8, cols * 8)
        coefs.append(forward_dct_quantize(full, tables[tq[i]], precision))

    data = encode_coefficients(
        coefs,
        tables,
        width=width,
        height=height,
        precision=precision,
        sampling=sampling,
        tq=tq,
        restart_interval=restart_interval,
        optimize=optimize,
        scans=scans,
        jfif=precision == 8,
    )
    if not return_coefficients:
        return data
    expected = [c.copy() for c in coefs]
    if nf > 1:
        for scan in scans or [tuple(range(nf))]:
            if len(scan) == 1:
                i = scan[0]
                rows, cols = own[i]
                expected[i][rows:, :, :] = 0
                expected[i][:, cols:, :] = 0
    return data, expected
