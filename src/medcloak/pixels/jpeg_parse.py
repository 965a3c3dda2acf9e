"""The structure of a sequential Huffman JPEG stream that redaction needs (ISO/IEC 10918-1 B.2):
frame header, quantization and Huffman tables in force at the scan, restart interval, colour
markers, and where the one scan's entropy-coded data lies.

Anything outside baseline and extended sequential Huffman coding with one scan raises
:class:`UnsupportedJpegError`; a broken structure raises :class:`CorruptInputError`; a frame
declaring more blocks than its scan can code, or than the run's limits let be decoded, raises
:class:`~medcloak.errors.LimitError` (see :func:`_check_blocks`) before anything is allocated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptInputError, UnsupportedJpegError

_PROCESSES = {
    0xC2: "progressive (SOF2)",
    0xC3: "lossless (SOF3)",
    0xC5: "hierarchical (SOF5)",
    0xC6: "hierarchical (SOF6)",
    0xC7: "hierarchical (SOF7)",
    0xC9: "arithmetic-coded (SOF9)",
    0xCA: "arithmetic-coded progressive (SOF10)",
    0xCB: "arithmetic-coded lossless (SOF11)",
    0xCD: "arithmetic-coded hierarchical (SOF13)",
    0xCE: "arithmetic-coded hierarchical (SOF14)",
    0xCF: "arithmetic-coded hierarchical (SOF15)",
    0xCC: "arithmetic-coded (DAC)",
    0xDE: "hierarchical (DHP)",
    0xDF: "hierarchical (EXP)",
    0xDC: "with a DNL marker",
}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass
class Component:
    ident: int
    h: int
    v: int
    tq: int
    td: int = 0
    ta: int = 0


@dataclass
class JpegLayout:
    """Where things are in one JPEG stream, and the tables in force at its scan."""

    precision: int = 0
    width: int = 0
    height: int = 0
    components: list[Component] = field(default_factory=list)
    quant: dict[int, list[int]] = field(default_factory=dict)
    #: (class, slot) -> (16 counts, symbols); class 0 is DC, 1 is AC
    huffman: dict[tuple[int, int], tuple[bytes, bytes]] = field(default_factory=dict)
    restart: int = 0
    adobe_transform: int | None = None
    jfif: bool = False
    #: (start, end) of every DHT segment before the scan, marker included
    dht_segments: list[tuple[int, int]] = field(default_factory=list)
    sos_start: int = 0
    scan_start: int = 0
    scan_end: int = 0
    eoi_end: int = 0
    #: positions of the RST markers in the scan
    restarts: Any = None

    @property
    def hmax(self) -> int:
        return max(c.h for c in self.components)

    @property
    def vmax(self) -> int:
        return max(c.v for c in self.components)

    @property
    def ycc(self) -> bool:
        """Whether components 2 and 3 are colour differences (decoders convert YCbCr or YCCK),
        decided as libjpeg does: Adobe transform flag, then JFIF, then component identifiers."""
        n = len(self.components)
        if n == 4:
            return self.adobe_transform == 2
        if n != 3:
            return False
        if self.adobe_transform is not None:
            return self.adobe_transform != 0
        if self.jfif:
            return True
        ids = tuple(c.ident for c in self.components)
        return ids != (0x52, 0x47, 0x42)  # 'R', 'G', 'B'


def _u16(data: bytes, pos: int) -> int:
    return (data[pos] << 8) | data[pos + 1]


def _frame(layout: JpegLayout, payload: bytes) -> None:
    if len(payload) < 6:
        raise CorruptInputError("JPEG frame header is too short")
    layout.precision = payload[0]
    layout.height = _u16(payload, 1)
    layout.width = _u16(payload, 3)
    nf = payload[5]
    if len(payload) < 6 + 3 * nf:
        raise CorruptInputError("JPEG frame header is too short for its components")
    if layout.precision not in (8, 12):
        raise UnsupportedJpegError(f"sequential JPEG of {layout.precision}-bit precision")
    if layout.height == 0:
        raise UnsupportedJpegError("JPEG whose height is given by a DNL marker")
    if layout.width == 0 or not 1 <= nf <= 4:
        raise CorruptInputError("JPEG frame header: no width, or not 1 to 4 components")
    for i in range(nf):
        ident, hv, tq = payload[6 + 3 * i : 9 + 3 * i]
        h, v = hv >> 4, hv & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
            raise CorruptInputError("JPEG frame header: sampling factor or table out of range")
        layout.components.append(Component(ident, h, v, tq))
    if sum(c.h * c.v for c in layout.components) > 10 and nf > 1:
        raise CorruptInputError("JPEG frame header: more than 10 blocks in an MCU")


def _quant(layout: JpegLayout, payload: bytes) -> None:
    pos = 0
    while pos < len(payload):
        pq, tq = payload[pos] >> 4, payload[pos] & 15
        size = 128 if pq else 64
        if tq > 3 or pq > 1 or pos + 1 + size > len(payload):
            raise CorruptInputError("JPEG quantization table is malformed")
        raw = payload[pos + 1 : pos + 1 + size]
        layout.quant[tq] = [_u16(raw, 2 * i) for i in range(64)] if pq else list(raw)
        pos += 1 + size


def _huffman(layout: JpegLayout, payload: bytes) -> None:
    pos = 0
    while pos < len(payload):
        if pos + 17 > len(payload):
            raise CorruptInputError("JPEG Huffman table is malformed")
        tc, th = payload[pos] >> 4, payload[pos] & 15
        counts = payload[pos + 1 : pos + 17]
        n = sum(counts)
        if tc > 1 or th > 3 or n > 256 or pos + 17 + n > len(payload):
            raise CorruptInputError("JPEG Huffman table is malformed")
        layout.huffman[(tc, th)] = (bytes(counts), bytes(payload[pos + 17 : pos + 17 + n]))
        pos += 17 + n


def _scan(layout: JpegLayout, payload: bytes) -> None:
    ns = payload[0] if payload else 0
    if len(payload) < 4 + 2 * ns or ns < 1:
        raise CorruptInputError("JPEG scan header is malformed")
    if ns != len(layout.components):
        raise UnsupportedJpegError("JPEG with components in separate scans (multi-scan sequential)")
    by_id = {c.ident: c for c in layout.components}
    for i in range(ns):
        sel, tables = payload[1 + 2 * i], payload[2 + 2 * i]
        comp = by_id.get(sel)
        if comp is None or layout.components[i] is not comp:
            raise CorruptInputError("JPEG scan names components not in the frame, or out of order")
        comp.td, comp.ta = tables >> 4, tables & 15
        if comp.td > 3 or comp.ta > 3:
            raise CorruptInputError("JPEG scan header: table slot out of range")
    ss, se, ahal = payload[1 + 2 * ns : 4 + 2 * ns]
    if ss != 0 or se != 63 or ahal != 0:
        raise CorruptInputError("sequential JPEG scan with spectral selection or approximation")
    if ns > 1 and sum(c.h * c.v for c in layout.components) > 10:
        raise CorruptInputError("JPEG scan: more than 10 blocks in an MCU")
    for comp in layout.components:
        if comp.tq not in layout.quant:
            raise CorruptInputError("JPEG scan before its quantization table")
        if (0, comp.td) not in layout.huffman or (1, comp.ta) not in layout.huffman:
            raise CorruptInputError("JPEG scan before its Huffman tables")


#: bytes a block costs whoever decodes the scan (:mod:`.jpeg_redact` holds 64 coefficients as int32)
BLOCK_COST = 64 * 4


def blocks(layout: JpegLayout) -> int:
    """The 8x8 blocks the frame's one scan codes (an interleaved scan codes whole MCUs)."""
    w, h = layout.width, layout.height
    if len(layout.components) == 1:
        return -(-w // 8) * -(-h // 8)
    hmax, vmax = layout.hmax, layout.vmax
    return -(-w // (8 * hmax)) * -(-h // (8 * vmax)) * sum(c.h * c.v for c in layout.components)


def _check_blocks(layout: JpegLayout) -> None:
    """The blocks the frame declares against the scan that codes them and the run's limits, before
    anything is allocated for them: sequential Huffman coding spends two bits on a block at least
    (a DC difference and an end of block, of one bit each), so a scan cannot code more than four
    blocks a byte; and their decoding (:data:`BLOCK_COST` a block) against the per-object ceiling."""
    from .. import limits

    n = blocks(layout)
    what = f"a JPEG of {layout.width}x{layout.height} pixels"
    limits.check_declared(-(-n // 4), what=f"the least coded data of {what}", stored=layout.scan_end - layout.scan_start)
    limits.check_declared(n * BLOCK_COST, what=f"the decoded blocks of {what}")


_POOL = threading.local()


def _flag_buffer(size: int) -> Any:
    """A reusable boolean array of ``size`` (per thread): fresh memory costs page faults."""
    import numpy as np

    buf = getattr(_POOL, "flags", None)
    if buf is None or buf.shape[0] < size:
        buf = np.empty(max(size, 1 << 16), bool)
        _POOL.flags = buf
    return buf[:size]


def _scan_extent(data: bytes, start: int) -> tuple[int, Any]:
    import numpy as np
    from medcloak_kernels.jpeg_markers import scan_markers

    src = np.frombuffer(data, np.uint8)
    scan = src[start:]
    hits = _flag_buffer(scan.shape[0])
    np.equal(scan, 0xFF, out=hits)
    ff = np.flatnonzero(hits) + start
    rst = np.empty(len(ff), np.int64)
    end, count = scan_markers(src, ff, start, rst)
    if end < 0:
        raise CorruptInputError("JPEG entropy-coded data runs to the end without a marker")
    return int(end), rst[:count]


def parse(data: bytes) -> JpegLayout:
    """The :class:`JpegLayout` of the JPEG stream that ``data`` begins with."""
    n = len(data)
    if data[:2] != b"\xff\xd8":
        raise CorruptInputError("not a JPEG stream (no SOI)")
    layout = JpegLayout()
    pos = 2
    seen_frame = False
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise CorruptInputError("JPEG stream ends or breaks where a marker should stand")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise CorruptInputError("JPEG stream ends in fill bytes")
        code = data[pos]
        marker_at = pos - 1
        pos += 1
        if code == 0xD9:
            if not layout.scan_end:
                raise CorruptInputError("JPEG stream without a scan")
            layout.eoi_end = pos
            return layout
        if code in _STANDALONE:
            continue
        if code in (0x00, 0xD8):
            raise CorruptInputError("invalid JPEG marker")
        if code in _PROCESSES:
            raise UnsupportedJpegError(f"JPEG {_PROCESSES[code]}: only baseline and extended sequential Huffman JPEG can be redacted")
        if pos + 2 > n:
            raise CorruptInputError("JPEG segment length is missing")
        length = _u16(data, pos)
        if length < 2 or pos + length > n:
            raise CorruptInputError("JPEG segment runs past the end")
        payload = data[pos + 2 : pos + length]
        end = pos + length
        if code in (0xC0, 0xC1):
            if seen_frame:
                raise CorruptInputError("JPEG stream with two frame headers")
            seen_frame = True
            _frame(layout, payload)
        elif code == 0xDB:
            _quant(layout, payload)
        elif code == 0xC4:
            if not layout.scan_end:
                layout.dht_segments.append((marker_at, end))
            _huffman(layout, payload)
        elif code == 0xDD:
            if len(payload) < 2:
                raise CorruptInputError("JPEG restart interval segment is too short")
            layout.restart = _u16(payload, 0)
        elif code == 0xE0 and payload.startswith(b"JFIF\x00"):
            layout.jfif = True
        elif code == 0xEE and payload.startswith(b"Adobe") and len(payload) >= 12:
            layout.adobe_transform = payload[11]
        elif code == 0xDA:
            if not seen_frame:
                raise CorruptInputError("JPEG scan before the frame header")
            if layout.scan_end:
                raise UnsupportedJpegError("JPEG with more than one scan (multi-scan sequential)")
            _scan(layout, payload)
            layout.sos_start = marker_at
            layout.scan_start = end
            layout.scan_end, layout.restarts = _scan_extent(data, end)
            _check_blocks(layout)
            pos = layout.scan_end
            continue
        pos = end
