"""Entropy-coded data of one sequential Huffman JPEG scan (ISO/IEC 10918-1 F.1.2, F.2.2), over
uint8 arrays: a bit reader that removes stuffed zeros, a bit writer that adds them, the block
decoder, and the two scan rewriters built on them.

``rst`` holds the positions of the scan's RST markers (see
:func:`.jpeg_markers.scan_markers`). Blocks are visited in coding order (MCU by MCU, component by component, ``comp_blocks[c]`` blocks
of component ``c`` per MCU). Every per-block input (``flags``, ``coef``) is indexed in that order,
so the geometry of the image stays with the caller. Huffman tables are passed as stacked lookup
arrays (see :mod:`.jpeg_huffman`) and chosen per component by ``dc_tab``/``ac_tab``.

Return values are lengths (>= 0) or one of the negative codes below; kernels never raise.
"""

from __future__ import annotations

import numba
import numpy as np

from .jit import kernel

#: a code the table does not hold, bits running out, a block longer than 64 coefficients
CORRUPT = -1
#: a DC difference whose category the DC table lacks (or beyond the precision's range)
MISSING_DC = -2
#: the AC table lacks end-of-block (symbol 0x00)
MISSING_EOB = -3
#: the output array is too small
OVERFLOW = -4
#: the restart markers do not match the restart interval
BAD_RESTARTS = -5

#: bytes a single block can take in the output, stuffing included (DC 11+15 bits, 63 AC of 16+15)
BLOCK_ROOM = 640


@numba.njit(inline="always")
def _peek(buf, bp):  # type: ignore[no-untyped-def]
    """The 16 bits at bit position ``bp`` (``buf`` has 3 readable bytes past any ``bp`` used)."""
    i = bp >> 3
    w = (np.int64(buf[i]) << 16) | (np.int64(buf[i + 1]) << 8) | np.int64(buf[i + 2])
    return (w >> (8 - (bp & 7))) & 0xFFFF


@numba.njit(inline="always")
def _put(out, o, acc, nacc, value, size):  # type: ignore[no-untyped-def]
    """Append the ``size`` (<= 16) low bits of ``value``; a 0xFF byte is followed by a stuffed 0."""
    acc = (acc << size) | value
    nacc += size
    while nacc >= 8:
        nacc -= 8
        byte = (acc >> nacc) & 0xFF
        out[o] = byte
        o += 1
        if byte == 0xFF:
            out[o] = 0
            o += 1
    acc &= (np.int64(1) << nacc) - 1
    return o, acc, nacc


@numba.njit(inline="always")
def _copy_bits(buf, a, b, out, o, acc, nacc):  # type: ignore[no-untyped-def]
    """Append bits ``a`` to ``b`` (exclusive) of ``buf``."""
    while b - a >= 16:
        o, acc, nacc = _put(out, o, acc, nacc, _peek(buf, a), 16)
        a += 16
    n = b - a
    if n > 0:
        o, acc, nacc = _put(out, o, acc, nacc, _peek(buf, a) >> (16 - n), n)
    return o, acc, nacc


@numba.njit(inline="always")
def _category(v):  # type: ignore[no-untyped-def]
    """The magnitude category SSSS of ``v`` (F.1.2.1.1): the bit length of abs(v)."""
    a = v if v >= 0 else -v
    s = 0
    while a:
        s += 1
        a >>= 1
    return s


@numba.njit(inline="always")
def _put_value(out, o, acc, nacc, code, size, v, s):  # type: ignore[no-untyped-def]
    """Append a Huffman code, then the ``s`` extra bits of the value ``v`` (F.1.2.1.1)."""
    o, acc, nacc = _put(out, o, acc, nacc, code, size)
    if s:
        bits = v if v >= 0 else v + (1 << s) - 1
        o, acc, nacc = _put(out, o, acc, nacc, bits & ((1 << s) - 1), s)
    return o, acc, nacc


@numba.njit(inline="always")
def _flush(out, o, acc, nacc):  # type: ignore[no-untyped-def]
    """Pad the last byte with 1 bits (F.1.2.3)."""
    if nacc > 0:
        pad = 8 - nacc
        o, acc, nacc = _put(out, o, acc, nacc, (1 << pad) - 1, pad)
    return o, acc, nacc


@kernel
def unstuff(src: np.ndarray, a: int, b: int, dst: np.ndarray) -> int:
    """Copy ``src[a:b]`` to ``dst`` without stuffed zeros (FF 00 -> FF) and fill bytes (FF FF);
    three zero bytes follow, so a reader may look past the end. Returns the data length."""
    n = 0
    i = a
    while i < b:
        byte = src[i]
        if byte == 0xFF and i + 1 < b:
            nxt = src[i + 1]
            if nxt == 0x00:
                i += 1  # the stuffed zero goes
            elif nxt == 0xFF:
                i += 1  # a fill byte goes
                continue
        dst[n] = byte
        n += 1
        i += 1
    dst[n] = 0
    dst[n + 1] = 0
    dst[n + 2] = 0
    return n


@numba.njit(inline="always")
def _decode_block(buf, bp, dcd, acd, coef, row, store):  # type: ignore[no-untyped-def]
    """Decode one block at bit ``bp``: (status, DC difference, bit where the AC codes begin,
    bit after the block). With ``store`` the AC coefficients go to ``coef[row, 1:]`` (zigzag)."""
    e = dcd[_peek(buf, bp)]
    if e == 0:
        return CORRUPT, 0, 0, 0
    s = e & 0xFF
    if s > 16:
        return CORRUPT, 0, 0, 0
    bp += e >> 8
    diff = 0
    if s:
        v = _peek(buf, bp) >> (16 - s)
        bp += s
        diff = v if v >= (1 << (s - 1)) else v - (1 << s) + 1
    ac_start = bp
    k = 1
    while k < 64:
        e = acd[_peek(buf, bp)]
        if e == 0:
            return CORRUPT, 0, 0, 0
        bp += e >> 8
        rs = e & 0xFF
        r = rs >> 4
        size = rs & 15
        if size == 0:
            if r == 15:
                k += 16
                continue
            break
        k += r
        if k > 63:
            return CORRUPT, 0, 0, 0
        v = _peek(buf, bp) >> (16 - size)
        bp += size
        if store:
            coef[row, k] = v if v >= (1 << (size - 1)) else v - (1 << size) + 1
        k += 1
    if k > 64:
        return CORRUPT, 0, 0, 0
    return 0, diff, ac_start, bp


@numba.njit(inline="always")
def _intervals(n_mcu, restart, rst):  # type: ignore[no-untyped-def]
    """Number of restart intervals, or -1 when the markers found do not match it."""
    nint = 1 if restart == 0 else (n_mcu + restart - 1) // restart
    return nint if rst.shape[0] == nint - 1 else -1


@kernel
def redact_scan(
    src: np.ndarray,
    start: int,
    end: int,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_dec: np.ndarray,
    ac_dec: np.ndarray,
    dc_code: np.ndarray,
    dc_size: np.ndarray,
    ac_code: np.ndarray,
    ac_size: np.ndarray,
    n_mcu: int,
    restart: int,
    rst: np.ndarray,
    max_category: int,
    flags: np.ndarray,
    fill: np.ndarray,
    scratch: np.ndarray,
    out: np.ndarray,
) -> int:
    """Rewrite the scan data ``src[start:end]`` into ``out`` with every flagged block replaced by
    a block of DC ``fill[c]`` and no AC coefficient. Restart intervals without a flagged block are
    copied byte for byte; in the others every unflagged block is copied as a span of bits, its DC
    re-coded only where the prediction changed (the first clean block after a redacted one).
    ``scratch`` holds at least ``end - start + 8`` bytes. Returns the output length, or a
    negative code."""
    ns = comp_blocks.shape[0]
    bpm = 0
    for c in range(ns):
        bpm += comp_blocks[c]
    nint = _intervals(n_mcu, restart, rst)
    if nint < 0:
        return BAD_RESTARTS
    dummy = np.empty((1, 64), np.int32)
    pred = np.zeros(ns, np.int64)
    outpred = np.zeros(ns, np.int64)
    o = 0
    for it in range(nint):
        a = start if it == 0 else rst[it - 1] + 2
        b = end if it == nint - 1 else rst[it]
        m0 = 0 if restart == 0 else it * restart
        m1 = n_mcu if restart == 0 else min(n_mcu, m0 + restart)
        dirty = False
        for blk in range(m0 * bpm, m1 * bpm):
            if flags[blk]:
                dirty = True
                break
        if not dirty:
            if o + (b - a) + 2 > out.shape[0]:
                return OVERFLOW
            out[o : o + (b - a)] = src[a:b]
            o += b - a
        else:
            nbits = unstuff(src, a, b, scratch) * 8
            bp = 0
            acc = np.int64(0)
            nacc = 0
            pred[:] = 0
            outpred[:] = 0
            blk = m0 * bpm
            for _m in range(m0, m1):
                for c in range(ns):
                    dcd = dc_dec[dc_tab[c]]
                    acd = ac_dec[ac_tab[c]]
                    for _j in range(comp_blocks[c]):
                        block_start = bp
                        status, diff, ac_start, bp = _decode_block(scratch, bp, dcd, acd, dummy, 0, False)
                        if status < 0 or bp > nbits:
                            return CORRUPT
                        if o + BLOCK_ROOM > out.shape[0]:
                            return OVERFLOW
                        dc = pred[c] + diff
                        if flags[blk]:
                            newdiff = fill[c] - outpred[c]
                            s = _category(newdiff)
                            if s > max_category or dc_size[dc_tab[c], s] == 0:
                                return MISSING_DC
                            o, acc, nacc = _put_value(
                                out, o, acc, nacc, dc_code[dc_tab[c], s], dc_size[dc_tab[c], s], newdiff, s
                            )
                            if ac_size[ac_tab[c], 0] == 0:
                                return MISSING_EOB
                            o, acc, nacc = _put(out, o, acc, nacc, ac_code[ac_tab[c], 0], ac_size[ac_tab[c], 0])
                            outpred[c] = fill[c]
                        elif outpred[c] == pred[c]:
                            o, acc, nacc = _copy_bits(scratch, block_start, bp, out, o, acc, nacc)
                            outpred[c] = dc
                        else:
                            newdiff = dc - outpred[c]
                            s = _category(newdiff)
                            if s > max_category or dc_size[dc_tab[c], s] == 0:
                                return MISSING_DC
                            o, acc, nacc = _put_value(
                                out, o, acc, nacc, dc_code[dc_tab[c], s], dc_size[dc_tab[c], s], newdiff, s
                            )
                            o, acc, nacc = _copy_bits(scratch, ac_start, bp, out, o, acc, nacc)
                            outpred[c] = dc
                        pred[c] = dc
                        blk += 1
            o, acc, nacc = _flush(out, o, acc, nacc)
        if it < nint - 1:
            out[o] = src[b]
            out[o + 1] = src[b + 1]
            o += 2
    return o


@kernel
def decode_scan(
    src: np.ndarray,
    start: int,
    end: int,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_dec: np.ndarray,
    ac_dec: np.ndarray,
    n_mcu: int,
    restart: int,
    rst: np.ndarray,
    coef: np.ndarray,
) -> int:
    """Every block's quantized coefficients (zigzag order, DC absolute) into ``coef`` (one row per
    block in coding order, zeroed by the caller). Returns 0 or a negative code."""
    ns = comp_blocks.shape[0]
    nint = _intervals(n_mcu, restart, rst)
    if nint < 0:
        return BAD_RESTARTS
    scratch = np.empty(end - start + 8, np.uint8)
    pred = np.zeros(ns, np.int64)
    blk = 0
    for it in range(nint):
        a = start if it == 0 else rst[it - 1] + 2
        b = end if it == nint - 1 else rst[it]
        m0 = 0 if restart == 0 else it * restart
        m1 = n_mcu if restart == 0 else min(n_mcu, m0 + restart)
        nbits = unstuff(src, a, b, scratch) * 8
        bp = 0
        pred[:] = 0
        for _m in range(m0, m1):
            for c in range(ns):
                dcd = dc_dec[dc_tab[c]]
                acd = ac_dec[ac_tab[c]]
                for _j in range(comp_blocks[c]):
                    status, diff, _ac, bp = _decode_block(scratch, bp, dcd, acd, coef, blk, True)
                    if status < 0 or bp > nbits:
                        return CORRUPT
                    pred[c] += diff
                    coef[blk, 0] = pred[c]
                    blk += 1
    return 0


@kernel
def count_symbols(
    coef: np.ndarray,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    n_mcu: int,
    restart: int,
    dc_freq: np.ndarray,
    ac_freq: np.ndarray,
) -> None:
    """Add the Huffman symbols that :func:`encode_scan` would write to ``dc_freq``/``ac_freq``
    (one row of 256 per table slot)."""
    ns = comp_blocks.shape[0]
    pred = np.zeros(ns, np.int64)
    blk = 0
    for m in range(n_mcu):
        if restart and m % restart == 0:
            pred[:] = 0
        for c in range(ns):
            for _j in range(comp_blocks[c]):
                diff = coef[blk, 0] - pred[c]
                pred[c] = coef[blk, 0]
                dc_freq[dc_tab[c], _category(diff)] += 1
                run = 0
                for k in range(1, 64):
                    v = coef[blk, k]
                    if v == 0:
                        run += 1
                        continue
                    while run > 15:
                        ac_freq[ac_tab[c], 0xF0] += 1
                        run -= 16
                    ac_freq[ac_tab[c], (run << 4) | _category(v)] += 1
                    run = 0
                if run > 0:
                    ac_freq[ac_tab[c], 0] += 1
                blk += 1


@kernel
def encode_scan(
    coef: np.ndarray,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_code: np.ndarray,
    dc_size: np.ndarray,
    ac_code: np.ndarray,
    ac_size: np.ndarray,
    n_mcu: int,
    restart: int,
    out: np.ndarray,
) -> int:
    """Entropy-code every block of ``coef`` (as :func:`decode_scan` fills it) into ``out``, with
    RST markers every ``restart`` MCUs. Returns the length, or a negative code (a symbol missing
    from a table: :data:`MISSING_DC`, or :data:`CORRUPT` for a missing AC symbol)."""
    ns = comp_blocks.shape[0]
    pred = np.zeros(ns, np.int64)
    o = 0
    acc = np.int64(0)
    nacc = 0
    blk = 0
    for m in range(n_mcu):
        if restart and m % restart == 0 and m > 0:
            o, acc, nacc = _flush(out, o, acc, nacc)
            out[o] = 0xFF
            out[o + 1] = 0xD0 + ((m // restart - 1) & 7)
            o += 2
            pred[:] = 0
        for c in range(ns):
            dt = dc_tab[c]
            at = ac_tab[c]
            for _j in range(comp_blocks[c]):
                if o + BLOCK_ROOM > out.shape[0]:
                    return OVERFLOW
                diff = coef[blk, 0] - pred[c]
                pred[c] = coef[blk, 0]
                s = _category(diff)
                if dc_size[dt, s] == 0:
                    return MISSING_DC
                o, acc, nacc = _put_value(out, o, acc, nacc, dc_code[dt, s], dc_size[dt, s], diff, s)
                run = 0
                for k in range(1, 64):
                    v = coef[blk, k]
                    if v == 0:
                        run += 1
                        continue
                    while run > 15:
                        if ac_size[at, 0xF0] == 0:
                            return CORRUPT
                        o, acc, nacc = _put(out, o, acc, nacc, ac_code[at, 0xF0], ac_size[at, 0xF0])
                        run -= 16
                    s = _category(v)
                    sym = (run << 4) | s
                    if ac_size[at, sym] == 0:
                        return CORRUPT
                    o, acc, nacc = _put_value(out, o, acc, nacc, ac_code[at, sym], ac_size[at, sym], v, s)
                    run = 0
                if run > 0:
                    if ac_size[at, 0] == 0:
                        return MISSING_EOB
                    o, acc, nacc = _put(out, o, acc, nacc, ac_code[at, 0], ac_size[at, 0])
                blk += 1
    o, acc, nacc = _flush(out, o, acc, nacc)
    return o
