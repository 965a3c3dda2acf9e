"""Lossless redaction of sequential Huffman JPEG in the compressed domain.

Rectangles are rounded outward to whole 8x8 blocks (to whole MCUs when chroma is subsampled); each
block inside becomes a block of one flat value (its DC) with no AC coefficient, and every other
block keeps its quantized coefficients exactly. The scan is rewritten by the kernel
:func:`medcloak_kernels.jpeg_scan.redact_scan`: restart intervals without a redacted block are
copied byte for byte, and in the others each clean block is copied as a span of bits.

When the file's Huffman tables lack a symbol the rewrite needs (optimized tables hold only the
DC difference categories their image used, and may lack end-of-block), the symbols are added to
the tables in the code space they leave free, every existing code kept, so clean blocks are
still copied as bits and the fill stays exact (:attr:`Redaction.added`). A table without room
(its longest code 16 bits) gets, instead, redacted runs whose DCs step towards the fill with the
categories it has (:mod:`medcloak_kernels.jpeg_fill`: exactly the fill but for step blocks at
the ends of runs, taken when there are no more than two per run on average;
:attr:`Redaction.ramp` counts them), or another fill DC of the same decoded value;
failing those, the scan is decoded whole and re-encoded with new optimal tables, still keeping
every coefficient of every clean block.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..errors import CorruptInputError, UsageError
from .jpeg_parse import JpegLayout, parse

FILLS = ("black", "grey", "white")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Redaction:
    """What :func:`redact_jpeg_detailed` did."""

    data: bytes
    #: the boxes as redacted: rounded outward to blocks or MCUs, clipped to the image
    regions: tuple[Box, ...]
    #: blocks replaced, over all components
    blocks: int
    #: "none" (nothing to do), "bit-copy", or "rebuilt-tables"
    route: str
    #: redacted blocks whose DC is not the fill's (a step towards it where the file's DC table
    #: cannot code the jump from a clean neighbour: see :mod:`medcloak_kernels.jpeg_fill`)
    ramp: int = 0
    #: Huffman symbols the bit-copy route added to the file's tables (codes an optimized table
    #: lacked: DC difference categories, end-of-block), every existing code kept
    added: int = 0


@functools.lru_cache(maxsize=64)
def _table(counts: bytes, symbols: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(codes, sizes, 16-bit decode table, first-level decode table) of a DHT table."""
    from medcloak_kernels.jpeg_huffman import OVERSUBSCRIBED, canonical_codes, fill_decode_table, fill_fast_table
    from medcloak_kernels.jpeg_scan import FAST_BITS

    codes = np.zeros(256, np.uint16)
    sizes = np.zeros(256, np.uint8)
    got = canonical_codes(np.frombuffer(counts, np.uint8), np.frombuffer(symbols, np.uint8), codes, sizes)
    if got == OVERSUBSCRIBED:
        raise CorruptInputError("JPEG Huffman table describes no prefix code")
    table = np.zeros(65536, np.uint16)
    fill_decode_table(codes, sizes, table)
    fast = np.zeros(1 << FAST_BITS, np.uint16)
    fill_fast_table(codes, sizes, FAST_BITS, fast)
    return codes, sizes, table, fast


def _stacked(huffman: dict[tuple[int, int], tuple[bytes, bytes]], cls: int) -> tuple[np.ndarray, ...]:
    """(16-bit decode tables, codes, sizes, first-level tables) of the four slots of a class;
    cached, as the frames of one series share their tables (and these arrays are 0.5 MB)."""
    return _stacked_cached(tuple(sorted(item for item in huffman.items() if item[0][0] == cls)))


@functools.lru_cache(maxsize=32)
def _stacked_cached(items: tuple[tuple[tuple[int, int], tuple[bytes, bytes]], ...]) -> tuple[np.ndarray, ...]:
    from medcloak_kernels.jpeg_scan import FAST_BITS

    dec = np.zeros((4, 65536), np.uint16)
    code = np.zeros((4, 256), np.uint16)
    size = np.zeros((4, 256), np.uint8)
    fast = np.zeros((4, 1 << FAST_BITS), np.uint16)
    for (_tc, th), (counts, symbols) in items:
        code[th], size[th], dec[th], fast[th] = _table(counts, symbols)
    for arr in (dec, code, size, fast):
        arr.flags.writeable = False
    return dec, code, size, fast


@dataclass(frozen=True)
class _Geometry:
    comp_blocks: np.ndarray  # blocks of each component per MCU
    grids: tuple[tuple[int, int], ...]  # (blocks tall, blocks wide) per component
    n_mcu: int
    mcu_shape: tuple[int, int]  # MCUs (tall, wide)
    unit: tuple[int, int]  # rounding unit in pixels (width, height)


def _geometry(layout: JpegLayout) -> _Geometry:
    comps = layout.components
    hmax, vmax = layout.hmax, layout.vmax
    if len(comps) == 1:
        bw, bh = math.ceil(layout.width / 8), math.ceil(layout.height / 8)
        return _Geometry(np.ones(1, np.int32), ((bh, bw),), bw * bh, (bh, bw), (8, 8))
    mx, my = math.ceil(layout.width / (8 * hmax)), math.ceil(layout.height / (8 * vmax))
    subsampled = any(c.h != hmax or c.v != vmax for c in comps)
    unit = (8 * hmax, 8 * vmax) if subsampled else (8, 8)
    if not subsampled and (hmax > 1 or vmax > 1):
        unit = (8, 8)
    return _Geometry(
        np.array([c.h * c.v for c in comps], np.int32),
        tuple((my * c.v, mx * c.h) for c in comps),
        mx * my,
        (my, mx),
        unit,
    )


def _coding_order(layout: JpegLayout, geo: _Geometry, grids: Sequence[np.ndarray]) -> np.ndarray:
    """Per-component block grids (..., tall, wide, ...) flattened into coding order."""
    if len(grids) == 1:
        g = grids[0]
        return g.reshape(g.shape[0] * g.shape[1], *g.shape[2:])
    my, mx = geo.mcu_shape
    parts = []
    for c, g in zip(layout.components, grids):
        rest = g.shape[2:]
        part = g.reshape(my, c.v, mx, c.h, *rest).swapaxes(1, 2).reshape(my * mx, c.v * c.h, *rest)
        parts.append(part)
    joined = np.concatenate(parts, axis=1)
    return joined.reshape(joined.shape[0] * joined.shape[1], *joined.shape[2:])


def _from_coding_order(layout: JpegLayout, geo: _Geometry, flat: np.ndarray) -> list[np.ndarray]:
    """The inverse of :func:`_coding_order`."""
    rest = flat.shape[1:]
    if len(layout.components) == 1:
        bh, bw = geo.grids[0]
        return [flat.reshape(bh, bw, *rest)]
    my, mx = geo.mcu_shape
    per_mcu = flat.reshape(my * mx, int(geo.comp_blocks.sum()), *rest)
    out, k = [], 0
    for c in layout.components:
        part = per_mcu[:, k : k + c.h * c.v].reshape(my, mx, c.v, c.h, *rest).swapaxes(1, 2)
        out.append(part.reshape(my * c.v, mx * c.h, *rest))
        k += c.h * c.v
    return out


def _check_boxes(boxes: Iterable[Sequence[int]]) -> list[Box]:
    checked = []
    for box in boxes:
        try:
            x0, y0, x1, y1 = (int(v) for v in box)
        except (TypeError, ValueError):
            raise UsageError("a box is four integers (x0, y0, x1, y1)") from None
        if x0 < 0 or y0 < 0 or x1 <= x0 or y1 <= y0:
            raise UsageError("a box needs 0 <= x0 < x1 and 0 <= y0 < y1 (ends exclusive)")
        checked.append((x0, y0, x1, y1))
    return checked


def _flags(layout: JpegLayout, geo: _Geometry, boxes: list[Box]) -> tuple[np.ndarray, tuple[Box, ...]]:
    grids = [np.zeros(shape, np.uint8) for shape in geo.grids]
    regions = []
    ux, uy = geo.unit
    hmax, vmax = layout.hmax, layout.vmax
    single = len(layout.components) == 1
    for x0, y0, x1, y1 in boxes:
        x1, y1 = min(x1, layout.width), min(y1, layout.height)
        if x0 >= x1 or y0 >= y1:
            continue  # wholly outside the image
        rx0, ry0 = x0 // ux * ux, y0 // uy * uy
        rx1, ry1 = -(-x1 // ux) * ux, -(-y1 // uy) * uy
        regions.append((rx0, ry0, min(rx1, layout.width), min(ry1, layout.height)))
        for c, grid in zip(layout.components, grids):
            h, v = (1, 1) if single else (c.h, c.v)
            hm, vm = (1, 1) if single else (hmax, vmax)
            bx0, by0 = rx0 * h // hm // 8, ry0 * v // vm // 8
            bx1, by1 = -(-rx1 * h // hm // 8), -(-ry1 * v // vm // 8)
            grid[by0:by1, bx0:bx1] = 1
    return np.ascontiguousarray(_coding_order(layout, geo, grids)), tuple(regions)


def dicom_ycc(layout: JpegLayout, photometric: str) -> bool:
    """Whether a DICOM reader shows components 2 and 3 of a frame as colour differences: the
    Photometric Interpretation decides (YBR_FULL, YBR_FULL_422), unless the stream says otherwise
    as pydicom reads it: an Adobe marker with transform 1 (libjpeg converts whatever DICOM says),
    component identifiers 'RGB' (taken as RGB), or a JFIF marker (taken as YCbCr). libjpeg's
    guess from identifiers alone (:attr:`JpegLayout.ycc`) is not what DICOM readers follow."""
    if len(layout.components) != 3:
        return False
    if layout.adobe_transform == 1:
        return True
    if tuple(c.ident for c in layout.components) in ((82, 71, 66), (114, 103, 98)):
        return False
    return layout.jfif or photometric.strip() in ("YBR_FULL", "YBR_FULL_422")


def _fill_dc(layout: JpegLayout, fill: str, shift: int, ycc: bool) -> np.ndarray | None:
    """The DC of a flat block decoding to the fill's level (0, mid-grey, or the maximum) in each
    component; colour-difference components (``ycc``) get mid-grey. ``shift`` moves black further
    down and white further up (the same decoded value once clamped); None when it leaves the DC
    range."""
    half = 1 << (layout.precision - 1)
    level = {"black": 0, "grey": half, "white": 2 * half - 1}[fill]
    # |DC x Q| / 8 stays within twice the sample range, which decoders' range limiting clamps
    limit = 16 * half
    out = np.zeros(len(layout.components), np.int64)
    for i, c in enumerate(layout.components):
        target = half if (ycc and i in (1, 2)) else level
        q0 = layout.quant[c.tq][0]
        if q0 == 0:
            raise CorruptInputError("JPEG quantization table with a zero entry")
        if target < half:
            dc = -math.ceil((half - target) * 8 / q0) - shift
        elif target > half:
            dc = math.ceil((target - half) * 8 / q0) + shift
        else:
            dc = 0
        if shift and abs(dc) * q0 > limit:
            return None
        out[i] = dc
    return out


def _optimal_table(freq: np.ndarray) -> tuple[bytes, bytes]:
    """Counts and symbols of an optimal Huffman table for ``freq`` (ISO/IEC 10918-1 K.2, K.3):
    code lengths at most 16, no all-ones code."""
    f = [int(x) for x in freq] + [1]  # symbol 256 reserves the all-ones code
    codesize = [0] * 257
    others = [-1] * 257
    while True:
        live = [i for i in range(257) if f[i] > 0]
        if len(live) < 2:
            break
        # the least frequency, the largest symbol among equals; then the next least
        v1 = min(live, key=lambda i: (f[i], -i))
        v2 = min((i for i in live if i != v1), key=lambda i: (f[i], -i))
        f[v1] += f[v2]
        f[v2] = 0
        for start in (v1, v2):
            v = start
            codesize[v] += 1
            while others[v] != -1:
                v = others[v]
                codesize[v] += 1
        v = v1
        while others[v] != -1:
            v = others[v]
        others[v] = v2
    bits = [0] * 33
    for size in codesize:
        if size:
            bits[size] += 1
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # drop the reserved symbol
    order = sorted((codesize[s], s) for s in range(256) if codesize[s])
    return bytes(bits[1:17]), bytes(s for _, s in order)


def _dht(tables: dict[tuple[int, int], tuple[bytes, bytes]]) -> bytes:
    body = b"".join(bytes([(tc << 4) | th]) + counts + symbols for (tc, th), (counts, symbols) in sorted(tables.items()))
    return b"\xff\xc4" + (len(body) + 2).to_bytes(2, "big") + body


_POOL = threading.local()


def _buffer(name: str, size: int) -> np.ndarray:
    """A reusable array of at least ``size`` bytes, one per thread and name: fresh memory costs a
    page fault per 4 KiB, more than the redaction itself on large images."""
    buf = getattr(_POOL, name, None)
    if buf is None or buf.shape[0] < size:
        buf = np.empty(max(size, 1 << 16), np.uint8)
        setattr(_POOL, name, buf)
    return buf


def _run(kernel, size_hint: int, *args) -> tuple[int, np.ndarray]:  # type: ignore[no-untyped-def]
    from medcloak_kernels.jpeg_scan import OVERFLOW

    size = size_hint
    while True:
        out = _buffer("out", size)
        n = kernel(*args, out)
        if n != OVERFLOW:
            return n, out
        size = 2 * out.shape[0]


def _decode_all(src: np.ndarray, layout: JpegLayout, geo: _Geometry, dc: tuple, ac: tuple) -> np.ndarray:
    from medcloak_kernels.jpeg_scan import decode_scan

    coef = np.zeros((geo.n_mcu * int(geo.comp_blocks.sum()), 64), np.int32)
    status = decode_scan(
        src, layout.scan_start, layout.scan_end, geo.comp_blocks,
        np.array([c.td for c in layout.components], np.int32), np.array([c.ta for c in layout.components], np.int32),
        dc[3], dc[0], ac[3], ac[0], geo.n_mcu, layout.restart, layout.restarts, coef,
    )
    if status < 0:
        raise CorruptInputError("JPEG entropy-coded data is corrupt or truncated")
    return coef


def coefficients(data: bytes) -> list[np.ndarray]:
    """The quantized DCT coefficients of each component, (blocks tall, blocks wide, 64) in zigzag
    order with absolute DC, MCU padding included (for interleaved scans)."""
    data = bytes(data)
    layout = parse(data)
    geo = _geometry(layout)
    src = np.frombuffer(data, np.uint8)
    coef = _decode_all(src, layout, geo, _stacked(layout.huffman, 0), _stacked(layout.huffman, 1))
    return _from_coding_order(layout, geo, coef)


def _rebuild(data: bytes, src: np.ndarray, layout: JpegLayout, geo: _Geometry, flags: np.ndarray, fill: np.ndarray) -> bytes:
    """The stream re-encoded with new optimal tables, ``fill`` holding the DC of each flagged block
    in coding order: one decoding pass collects the symbols (clean blocks' AC symbols and bits as
    they are), a second writes them with the new codes; no coefficient array."""
    from medcloak_kernels.jpeg_scan import BAD_RESTARTS, OVERFLOW, TAIL, emit_symbols, scan_symbols

    dc, ac = _stacked(layout.huffman, 0), _stacked(layout.huffman, 1)
    dc_tab = np.array([c.td for c in layout.components], np.int32)
    ac_tab = np.array([c.ta for c in layout.components], np.int32)
    scan_len = layout.scan_end - layout.scan_start
    cap = 2 * scan_len + 2 * flags.shape[0] + 4096
    while True:
        syms = _buffer("syms", cap)
        extra = _buffer("extra", 2 * cap).view(np.uint16)
        dc_freq = np.zeros((4, 256), np.int64)
        ac_freq = np.zeros((4, 256), np.int64)
        n = scan_symbols(
            src, layout.scan_start, layout.scan_end, geo.comp_blocks, dc_tab, ac_tab, dc[3], dc[0], ac[3], ac[0],
            geo.n_mcu, layout.restart, layout.restarts, flags, fill, _buffer("scratch", scan_len + TAIL),
            syms, extra, dc_freq, ac_freq,
        )
        if n != OVERFLOW:
            break
        cap *= 2
    if n < 0:
        if n == BAD_RESTARTS:
            raise CorruptInputError("JPEG restart markers do not match the restart interval")
        raise CorruptInputError("JPEG entropy-coded data is corrupt or truncated")
    tables: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    for c in layout.components:
        tables[(0, c.td)] = _optimal_table(dc_freq[c.td])
        tables[(1, c.ta)] = _optimal_table(ac_freq[c.ta])
    ndc, nac = _stacked(tables, 0), _stacked(tables, 1)
    n, out = _run(
        emit_symbols, scan_len + scan_len // 8 + 4096,
        syms, extra, geo.comp_blocks, dc_tab, ac_tab, ndc[1], ndc[2], nac[1], nac[2], geo.n_mcu, layout.restart,
    )
    if n < 0:  # cannot happen: the tables were made from these very symbols
        raise CorruptInputError("re-encoding the JPEG scan failed")
    pieces, pos = [], 0
    for start, end in layout.dht_segments:
        pieces.append(data[pos:start])
        pos = end
    pieces.append(data[pos : layout.sos_start])
    pieces.append(_dht(tables))
    pieces.append(data[layout.sos_start : layout.scan_start])
    pieces.append(out[:n])
    pieces.append(data[layout.scan_end :])
    return b"".join(pieces)


def _extend_table(counts: bytes, symbols: bytes, missing: Sequence[int]) -> tuple[bytes, bytes] | None:
    """The table with the symbols ``missing`` added (in that order) and every symbol it has
    keeping its code, or None when it has no room. Canonical codes of a length follow every
    shorter code, so symbols given lengths beyond the longest existing one leave the old codes
    alone; one per length, they take the code space the old table left free (an optimal table
    leaves the all-ones code of its longest length, K.2), never an all-ones code themselves."""
    bits = list(counts)
    longest = max((i + 1 for i, n in enumerate(bits) if n), default=0)
    if longest + len(missing) > 16:
        return None
    for j in range(len(missing)):
        bits[longest + j] += 1
    new = (bytes(bits), symbols + bytes(missing))
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if code >= (1 << length) - (1 if new[1][k] in missing else 0):
                return None  # the old table filled its code space: no room, or only all ones
            code += 1
            k += 1
        code <<= 1
    return new


def _with_tables(
    tables: dict[tuple[int, int], tuple[bytes, bytes]], need: dict[tuple[int, int], list[int]]
) -> dict[tuple[int, int], tuple[bytes, bytes]] | None:
    """``tables`` with the symbols ``need`` names added where they lack them (``tables`` itself
    when they lack none); None when a table has no room."""
    out = dict(tables)
    for slot, symbols in need.items():
        counts, have = out[slot]
        missing = [s for s in symbols if s not in have]
        if missing:
            extended = _extend_table(counts, have, missing)
            if extended is None:
                return None
            out[slot] = extended
    return out if out != tables else tables


def _dc_steps(layout: JpegLayout, dc_size: np.ndarray, max_category: int) -> np.ndarray:
    """Per component, the largest DC difference magnitude below which every difference is
    codable: 2**m - 1 for categories 0..m all in the table (0 without categories 0 and 1)."""
    out = np.zeros(len(layout.components), np.int64)
    for i, c in enumerate(layout.components):
        m = -1
        while m < max_category and dc_size[c.td, m + 1]:
            m += 1
        out[i] = (1 << m) - 1 if m >= 1 else 0
    return out


def _decode_dcs(src: np.ndarray, layout: JpegLayout, geo: _Geometry, flags: np.ndarray, dc: tuple, ac: tuple,
                dc_tab: np.ndarray, ac_tab: np.ndarray) -> np.ndarray:
    """The DCs :func:`medcloak_kernels.jpeg_fill.plan_fill` reads, one entry per block."""
    from medcloak_kernels.jpeg_scan import BAD_RESTARTS, TAIL, decode_dcs

    dcs = np.zeros(flags.shape[0], np.int64)
    scan_len = layout.scan_end - layout.scan_start
    status = decode_dcs(
        src, layout.scan_start, layout.scan_end, geo.comp_blocks, dc_tab, ac_tab, dc[3], dc[0], ac[3], ac[0],
        geo.n_mcu, layout.restart, layout.restarts, flags, _buffer("scratch", scan_len + TAIL), dcs,
    )
    if status == BAD_RESTARTS:
        raise CorruptInputError("JPEG restart markers do not match the restart interval")
    if status < 0:
        raise CorruptInputError("JPEG entropy-coded data is corrupt or truncated")
    return dcs


def _plan(dcs: np.ndarray, layout: JpegLayout, geo: _Geometry, flags: np.ndarray, flagged: np.ndarray,
          values: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, int, np.ndarray] | None:
    """(DCs of the flagged blocks in coding order, number of runs, DC categories each component
    codes) of :func:`medcloak_kernels.jpeg_fill.plan_fill` with these steps; None when there
    is no such plan."""
    from medcloak_kernels.jpeg_fill import plan_fill

    plan = dcs.copy()
    used = np.zeros((len(layout.components), 32), np.int64)
    runs = plan_fill(dcs, flags, geo.comp_blocks, geo.n_mcu, layout.restart, values, steps, plan, used)
    if runs < 0:
        return None
    return plan[flagged], runs, used


def redact_jpeg_detailed(
    data: bytes, boxes: Iterable[Sequence[int]], fill: str = "black", photometric: str | None = None
) -> Redaction:
    """Redact ``boxes`` (pixel rectangles ``(x0, y0, x1, y1)``, ends exclusive) of one JPEG stream;
    see the module documentation. Bytes after the EOI are kept as they are. ``photometric``: the
    Photometric Interpretation of a DICOM frame, which decides whether the fill is painted in
    YCbCr (:func:`dicom_ycc`); without it, as libjpeg decodes a JPEG file."""
    from medcloak_kernels.jpeg_scan import CORRUPT, MISSING_DC, MISSING_EOB, TAIL, redact_scan

    if fill not in FILLS:
        raise UsageError(f"fill must be one of {', '.join(FILLS)}")
    data = bytes(data)
    checked = _check_boxes(boxes)
    layout = parse(data)
    ycc = layout.ycc if photometric is None else dicom_ycc(layout, photometric)
    geo = _geometry(layout)
    flags, regions = _flags(layout, geo, checked)
    count = int(flags.sum())
    if count == 0:
        return Redaction(data, regions, 0, "none")
    src = np.frombuffer(data, np.uint8)
    dc, ac = _stacked(layout.huffman, 0), _stacked(layout.huffman, 1)
    dc_tab = np.array([c.td for c in layout.components], np.int32)
    ac_tab = np.array([c.ta for c in layout.components], np.int32)
    max_category = 11 if layout.precision == 8 else 15
    scan_len = layout.scan_end - layout.scan_start
    segs = np.zeros((len(layout.restarts) + 1, 3), np.int64)
    flagged = np.flatnonzero(flags)
    comp_of_flagged = np.repeat(np.arange(len(layout.components)), geo.comp_blocks)[flagged % int(geo.comp_blocks.sum())]

    def attempt(fill_seq: np.ndarray, tables: dict[tuple[int, int], tuple[bytes, bytes]]) -> tuple[int, bytes]:
        """Rewrite the scan with ``tables`` for the codes written (a superset of the file's);
        (length or negative code, the new stream)."""
        enc_dc, enc_ac = (dc, ac) if tables is layout.huffman else (_stacked(tables, 0), _stacked(tables, 1))
        n, out = _run(
            redact_scan, scan_len + scan_len // 8 + 4096,
            src, layout.scan_start, layout.scan_end, geo.comp_blocks, dc_tab, ac_tab, dc[3], dc[0], ac[3], ac[0],
            enc_dc[1], enc_dc[2],
            enc_ac[1], enc_ac[2], geo.n_mcu, layout.restart, layout.restarts, max_category, flags, fill_seq,
            _buffer("scratch", scan_len + TAIL), segs,
        )
        if n >= 0:
            view, written = memoryview(data), memoryview(out)
            pieces = _head(data, layout, tables)
            pieces += [(written if kind else view)[a:b] for kind, a, b in segs[:n].tolist()]
            pieces.append(view[layout.scan_end :])
            return n, b"".join(pieces)
        if n not in (MISSING_DC, MISSING_EOB):
            if n == CORRUPT:
                raise CorruptInputError("JPEG entropy-coded data is corrupt or truncated")
            raise CorruptInputError("JPEG restart markers do not match the restart interval")
        return n, b""

    values = _fill_dc(layout, fill, 0, ycc)
    assert values is not None
    flat = values[comp_of_flagged]
    tables = layout.huffman
    if any(ac[2][c.ta, 0] == 0 for c in layout.components):  # no end-of-block code: add one
        slots = {c.ta for i, c in enumerate(layout.components) if (comp_of_flagged == i).any()}
        tables = _with_tables(tables, {(1, ta): [0] for ta in slots}) or tables
    n = MISSING_DC
    # a DC table lacking a category (an optimized one) may not code the fill: the DCs around the
    # redacted runs, decoded first, tell which codes it needs (a table with every category codes
    # any fill, as before)
    if all(dc[2][c.td, : max_category + 1].all() for c in layout.components):
        n, out = attempt(flat, tables)
        if n >= 0:
            return Redaction(out, regions, count, "bit-copy", 0, _added(layout.huffman, tables))
    if n == MISSING_DC:
        dcs = _decode_dcs(src, layout, geo, flags, dc, ac, dc_tab, ac_tab)
        exact = _plan(dcs, layout, geo, flags, flagged, values, np.full(len(values), (1 << max_category) - 1))
        if exact is not None and not exact[2][:, max_category + 1 :].any():
            # the flat fill with the DC categories it needs added to the tables
            need: dict[tuple[int, int], list[int]] = {}
            for i, c in enumerate(layout.components):
                order = sorted(np.flatnonzero(exact[2][i]).tolist(), key=lambda s: -exact[2][i][s])
                need.setdefault((0, c.td), [])
                need[(0, c.td)] += [s for s in order if s not in need[(0, c.td)]]
            extended = _with_tables(tables, need)
            if extended is not None:
                n, out = attempt(flat, extended)
                if n >= 0:
                    return Redaction(out, regions, count, "bit-copy", 0, _added(layout.huffman, extended))
        # no room in the table: step towards the fill with the categories it has
        ramped = _plan(dcs, layout, geo, flags, flagged, values, _dc_steps(layout, _stacked(tables, 0)[2], max_category))
        if ramped is not None:
            plan, runs, _used = ramped
            ramp = int((plan != flat).sum())
            if ramp <= 2 * runs:  # a block at each end of a run, on average: longer ramps look worse than a re-encode
                n, out = attempt(plan, tables)
                if n >= 0:
                    return Redaction(out, regions, count, "bit-copy", ramp, _added(layout.huffman, tables))
    for shift in range(1, 33 if fill != "grey" and n == MISSING_DC else 0):
        shifted = _fill_dc(layout, fill, shift, ycc)
        if shifted is None:
            break
        tried = _plan(dcs, layout, geo, flags, flagged, shifted, np.full(len(values), (1 << max_category) - 1))
        if tried is None or not _codable(tried[2], layout, _stacked(tables, 0)[2], max_category):
            continue  # known from the DCs alone: no pass over the scan
        n, out = attempt(shifted[comp_of_flagged], tables)
        if n >= 0:
            return Redaction(out, regions, count, "bit-copy", 0, _added(layout.huffman, tables))
        if n == MISSING_EOB:
            break
    return Redaction(_rebuild(data, src, layout, geo, flags, flat), regions, count, "rebuilt-tables")


def _codable(used: np.ndarray, layout: JpegLayout, dc_size: np.ndarray, max_category: int) -> bool:
    """Whether the DC tables code every category ``used[c, s]`` counts."""
    for i, c in enumerate(layout.components):
        for cat in np.flatnonzero(used[i]).tolist():
            if cat > max_category or not dc_size[c.td, cat]:
                return False
    return True


def _added(old: dict[tuple[int, int], tuple[bytes, bytes]], new: dict[tuple[int, int], tuple[bytes, bytes]]) -> int:
    return sum(len(new[slot][1]) - len(old[slot][1]) for slot in old)


def _head(data: bytes, layout: JpegLayout, tables: dict[tuple[int, int], tuple[bytes, bytes]]) -> list:
    """The stream up to the scan data, with ``tables`` in one DHT segment before the SOS when they
    are not the file's own."""
    view = memoryview(data)
    if tables is layout.huffman:
        return [view[: layout.scan_start]]
    pieces, pos = [], 0
    for start, end in layout.dht_segments:
        pieces.append(view[pos:start])
        pos = end
    pieces += [view[pos : layout.sos_start], _dht(tables), view[layout.sos_start : layout.scan_start]]
    return pieces


def redact_jpeg(data: bytes, boxes: Iterable[Sequence[int]], fill: str = "black") -> bytes:
    """``data`` with every block that ``boxes`` touch replaced by a flat block of ``fill``."""
    return redact_jpeg_detailed(data, boxes, fill).data
