"""Entropy-coded data of one sequential Huffman JPEG scan (ISO/IEC 10918-1 F.1.2, F.2.2), over
uint8 arrays: a bit reader that removes stuffed zeros, a bit writer that adds them, the block
decoder, and what is built on them: the bit-copying redaction, the coefficient and DC decoders,
and the symbol collector and writer of the re-encode.

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
#: zero bytes after unstuffed data: a block reads at most 64 x 32 bits, plus a refill of 8 bytes
TAIL = 272
#: bits of the small, first-level decode table
FAST_BITS = 9


@numba.njit(inline="always")
def _peek(buf, bp):  # type: ignore[no-untyped-def]
    """The 16 bits at bit position ``bp`` (``buf`` has 3 readable bytes past any ``bp`` used)."""
    i = bp >> 3
    w = (np.int64(buf[i]) << 16) | (np.int64(buf[i + 1]) << 8) | np.int64(buf[i + 2])
    return (w >> (8 - (bp & 7))) & 0xFFFF


@numba.njit(inline="always")
def _put(out, o, acc, nacc, value, size):  # type: ignore[no-untyped-def]
    """Append the ``size`` (<= 32) low bits of ``value``; a 0xFF byte is followed by a stuffed 0."""
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
    """Append bits ``a`` to ``b`` (exclusive) of ``buf``: a few bits up to a byte boundary of the
    source, whole bytes (shifted by the output's bit offset), then the last few bits."""
    head = (8 - (a & 7)) & 7
    if head > b - a:
        head = b - a
    if head:
        o, acc, nacc = _put(out, o, acc, nacc, _peek(buf, a) >> (16 - head), head)
        a += head
    j = a >> 3
    last = b >> 3
    if nacc == 0:
        while j < last:
            byte = buf[j]
            out[o] = byte
            o += 1
            if byte == 0xFF:
                out[o] = 0
                o += 1
            j += 1
    else:
        while j < last:
            acc = (acc << 8) | np.int64(buf[j])
            byte = (acc >> nacc) & 0xFF
            out[o] = byte
            o += 1
            if byte == 0xFF:
                out[o] = 0
                o += 1
            acc &= (np.int64(1) << nacc) - 1
            j += 1
    a = last * 8 if last * 8 > a else a
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
    :data:`TAIL` zero bytes follow, so a reader may run past the end of corrupt data within one
    block (at most 64 codes of 32 bits) before it is stopped. Returns the data length.
    ``dst`` holds at least ``b - a + TAIL`` bytes."""
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
    dst[n : n + TAIL] = 0
    return n


@numba.njit(inline="always")
def _fill(buf, pos, acc, nb):  # type: ignore[no-untyped-def]
    """Top the bit accumulator up to more than 48 bits (so a code and its extra bits, 32 bits at
    most, can be read without another check)."""
    while nb <= 48:
        acc = (acc << 8) | np.int64(buf[pos])
        pos += 1
        nb += 8
    return pos, acc, nb


@numba.njit(inline="always")
def _symbol(acc, nb, fast, full):  # type: ignore[no-untyped-def]
    """The table entry of the code at the top of the accumulator: the 9-bit table first (almost
    every code is that short, and it stays in the L1 cache), the 16-bit table otherwise."""
    e = fast[(acc >> (nb - FAST_BITS)) & ((1 << FAST_BITS) - 1)]
    if e == 0:
        e = full[(acc >> (nb - 16)) & 0xFFFF]
    return e


@numba.njit(inline="always")
def _decode_block(buf, pos, acc, nb, dcf, dcd, acf, acd, coef, row, store):  # type: ignore[no-untyped-def]
    """Decode one block from the reader state (``pos`` bytes read into ``acc``, ``nb`` bits of it
    unread): (status, DC difference, bit where the AC codes begin, pos, acc, nb). With ``store``
    the AC coefficients go to ``coef[row, 1:]`` (zigzag order)."""
    pos, acc, nb = _fill(buf, pos, acc, nb)
    e = _symbol(acc, nb, dcf, dcd)
    s = e & 0xFF
    if e == 0 or s > 16:
        return CORRUPT, 0, 0, pos, acc, nb
    nb -= e >> 8
    diff = 0
    if s:
        v = (acc >> (nb - s)) & ((1 << s) - 1)
        nb -= s
        diff = v if v >= (1 << (s - 1)) else v - (1 << s) + 1
    ac_start = pos * 8 - nb
    k = 1
    while k < 64:
        pos, acc, nb = _fill(buf, pos, acc, nb)
        e = _symbol(acc, nb, acf, acd)
        if e == 0:
            return CORRUPT, 0, 0, pos, acc, nb
        nb -= e >> 8
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
            return CORRUPT, 0, 0, pos, acc, nb
        v = (acc >> (nb - size)) & ((1 << size) - 1)
        nb -= size
        if store:
            coef[row, k] = v if v >= (1 << (size - 1)) else v - (1 << size) + 1
        k += 1
    if k > 64:
        return CORRUPT, 0, 0, pos, acc, nb
    return 0, diff, ac_start, pos, acc, nb


@numba.njit(inline="always")
def _interval_count(n_mcu, restart):  # type: ignore[no-untyped-def]
    """Number of restart intervals of a scan of ``n_mcu`` MCUs (1 without restarts)."""
    return 1 if restart == 0 else (n_mcu + restart - 1) // restart


@numba.njit(inline="always")
def _intervals(n_mcu, restart, rst):  # type: ignore[no-untyped-def]
    """Number of restart intervals, or -1 when the markers found do not match it."""
    nint = _interval_count(n_mcu, restart)
    return nint if rst.shape[0] == nint - 1 else -1


@numba.njit(inline="always")
def _interval_mcus(it, n_mcu, restart):  # type: ignore[no-untyped-def]
    """MCUs [m0, m1) of restart interval ``it``."""
    m0 = 0 if restart == 0 else it * restart
    m1 = n_mcu if restart == 0 else min(n_mcu, m0 + restart)
    return m0, m1


@numba.njit(inline="always")
def _interval(it, nint, start, end, rst, n_mcu, restart):  # type: ignore[no-untyped-def]
    """Bytes [a, b) of restart interval ``it`` (its RST marker excluded) and its MCUs [m0, m1)."""
    a = start if it == 0 else rst[it - 1] + 2
    b = end if it == nint - 1 else rst[it]
    m0, m1 = _interval_mcus(it, n_mcu, restart)
    return a, b, m0, m1


@numba.njit(inline="always")
def _last_flagged(flags, lo, hi):  # type: ignore[no-untyped-def]
    """The last block in [lo, hi) that ``flags`` marks, or -1."""
    last = -1
    for blk in range(lo, hi):
        if flags[blk]:
            last = blk
    return last


@kernel
def redact_scan(
    src: np.ndarray,
    start: int,
    end: int,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_fast: np.ndarray,
    dc_dec: np.ndarray,
    ac_fast: np.ndarray,
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
    segs: np.ndarray,
    out: np.ndarray,
) -> int:
    """Rewrite the scan data ``src[start:end]`` with every flagged block replaced by a block of no
    AC coefficient and DC ``fill[k]``, ``k`` counting the flagged blocks in coding order (a flat
    fill, or the DC sequence of :func:`.jpeg_fill.plan_fill`).

    The new scan data is the concatenation of segments written to ``segs`` (one row each:
    0 = bytes ``src[start:end]``, 1 = bytes ``out[start:end]``): restart intervals without a
    flagged block are source segments, never decoded; the others are decoded and written to
    ``out``, where runs of clean blocks are copied as spans of bits and only the DC of the first
    clean block after a redacted run is re-coded (its prediction changed). ``segs`` has room for
    one row per restart interval; ``scratch`` holds at least ``end - start +`` :data:`TAIL` bytes.
    Returns the number of segments, or a negative code."""
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
    nseg = 0
    kf = 0  # flagged blocks met so far
    for it in range(nint):
        a, b, m0, m1 = _interval(it, nint, start, end, rst, n_mcu, restart)
        dirty = False
        for blk in range(m0 * bpm, m1 * bpm):
            if flags[blk]:
                dirty = True
                break
        b_next = b if it == nint - 1 else b + 2  # the RST marker goes with its interval
        if not dirty:
            if nseg > 0 and segs[nseg - 1, 0] == 0 and segs[nseg - 1, 2] == a:
                segs[nseg - 1, 2] = b_next
            else:
                segs[nseg, 0] = 0
                segs[nseg, 1] = a
                segs[nseg, 2] = b_next
                nseg += 1
            continue
        o0 = o
        nbits = unstuff(src, a, b, scratch) * 8
        pos = 0
        racc = np.int64(0)
        nb = 0
        acc = np.int64(0)
        nacc = 0
        pred[:] = 0
        outpred[:] = 0
        span_a = 0  # clean bits not yet written: [span_a, span_b)
        span_b = 0
        blk = m0 * bpm
        for _m in range(m0, m1):
            for c in range(ns):
                dt = dc_tab[c]
                at = ac_tab[c]
                dcf = dc_fast[dt]
                dcd = dc_dec[dt]
                acf = ac_fast[at]
                acd = ac_dec[at]
                for _j in range(comp_blocks[c]):
                    status, diff, ac_start, pos, racc, nb = _decode_block(
                        scratch, pos, racc, nb, dcf, dcd, acf, acd, dummy, 0, False
                    )
                    bp = pos * 8 - nb
                    if status < 0 or bp > nbits:
                        return CORRUPT
                    dc = pred[c] + diff
                    pred[c] = dc
                    blk += 1
                    if not flags[blk - 1] and outpred[c] == dc - diff:
                        span_b = bp  # the same bits as the input: extend the pending span
                        outpred[c] = dc
                        continue
                    if o + ((span_b - span_a) >> 2) + BLOCK_ROOM > out.shape[0]:
                        return OVERFLOW
                    o, acc, nacc = _copy_bits(scratch, span_a, span_b, out, o, acc, nacc)
                    newdiff = (fill[kf] if flags[blk - 1] else dc) - outpred[c]
                    s = _category(newdiff)
                    if s > max_category or dc_size[dt, s] == 0:
                        return MISSING_DC
                    o, acc, nacc = _put_value(out, o, acc, nacc, dc_code[dt, s], dc_size[dt, s], newdiff, s)
                    if flags[blk - 1]:
                        if ac_size[at, 0] == 0:
                            return MISSING_EOB
                        o, acc, nacc = _put(out, o, acc, nacc, ac_code[at, 0], ac_size[at, 0])
                        outpred[c] = fill[kf]
                        kf += 1
                        span_a = bp
                    else:  # a clean block after redacted ones: DC re-coded, AC bits as they are
                        outpred[c] = dc
                        span_a = ac_start
                    span_b = bp
        if o + ((span_b - span_a) >> 2) + BLOCK_ROOM > out.shape[0]:
            return OVERFLOW
        o, acc, nacc = _copy_bits(scratch, span_a, span_b, out, o, acc, nacc)
        o, acc, nacc = _flush(out, o, acc, nacc)
        if it < nint - 1:
            out[o] = src[b]
            out[o + 1] = src[b + 1]
            o += 2
        segs[nseg, 0] = 1
        segs[nseg, 1] = o0
        segs[nseg, 2] = o
        nseg += 1
    return nseg


@kernel
def decode_scan(
    src: np.ndarray,
    start: int,
    end: int,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_fast: np.ndarray,
    dc_dec: np.ndarray,
    ac_fast: np.ndarray,
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
    scratch = np.empty(end - start + TAIL, np.uint8)
    pred = np.zeros(ns, np.int64)
    blk = 0
    for it in range(nint):
        a, b, m0, m1 = _interval(it, nint, start, end, rst, n_mcu, restart)
        nbits = unstuff(src, a, b, scratch) * 8
        pos = 0
        racc = np.int64(0)
        nb = 0
        pred[:] = 0
        for _m in range(m0, m1):
            for c in range(ns):
                dcf = dc_fast[dc_tab[c]]
                dcd = dc_dec[dc_tab[c]]
                acf = ac_fast[ac_tab[c]]
                acd = ac_dec[ac_tab[c]]
                for _j in range(comp_blocks[c]):
                    status, diff, _ac, pos, racc, nb = _decode_block(
                        scratch, pos, racc, nb, dcf, dcd, acf, acd, coef, blk, True
                    )
                    if status < 0 or pos * 8 - nb > nbits:
                        return CORRUPT
                    pred[c] += diff
                    coef[blk, 0] = pred[c]
                    blk += 1
    return 0


@kernel
def decode_dcs(
    src: np.ndarray,
    start: int,
    end: int,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_fast: np.ndarray,
    dc_dec: np.ndarray,
    ac_fast: np.ndarray,
    ac_dec: np.ndarray,
    n_mcu: int,
    restart: int,
    rst: np.ndarray,
    flags: np.ndarray,
    scratch: np.ndarray,
    dcs: np.ndarray,
) -> int:
    """The absolute DC of the blocks that :func:`.jpeg_fill.plan_fill` reads into ``dcs`` (one
    entry per block in coding order; the others are left as they are): in each restart interval
    holding a flagged block, every block from the interval's start until each component has had
    a clean block after the interval's last flagged block (or the interval ends); intervals
    without a flagged block are not decoded. ``scratch`` holds at least ``end - start +``
    :data:`TAIL` bytes. Returns 0 or a negative code."""
    ns = comp_blocks.shape[0]
    bpm = 0
    for c in range(ns):
        bpm += comp_blocks[c]
    nint = _intervals(n_mcu, restart, rst)
    if nint < 0:
        return BAD_RESTARTS
    dummy = np.empty((1, 64), np.int32)
    pred = np.zeros(ns, np.int64)
    pending = np.zeros(ns, np.bool_)
    for it in range(nint):
        a, b, m0, m1 = _interval(it, nint, start, end, rst, n_mcu, restart)
        last = _last_flagged(flags, m0 * bpm, m1 * bpm)
        if last < 0:
            continue
        nbits = unstuff(src, a, b, scratch) * 8
        pos = 0
        racc = np.int64(0)
        nb = 0
        pred[:] = 0
        pending[:] = False
        blk = m0 * bpm
        done = False
        for _m in range(m0, m1):
            for c in range(ns):
                dcf = dc_fast[dc_tab[c]]
                dcd = dc_dec[dc_tab[c]]
                acf = ac_fast[ac_tab[c]]
                acd = ac_dec[ac_tab[c]]
                for _j in range(comp_blocks[c]):
                    status, diff, _ac, pos, racc, nb = _decode_block(
                        scratch, pos, racc, nb, dcf, dcd, acf, acd, dummy, 0, False
                    )
                    if status < 0 or pos * 8 - nb > nbits:
                        return CORRUPT
                    pred[c] += diff
                    dcs[blk] = pred[c]
                    pending[c] = flags[blk] != 0
                    blk += 1
                if blk > last:
                    done = True
                    for k in range(ns):
                        if pending[k]:
                            done = False
                    if done:
                        break
            if done:
                break
    return 0


@kernel
def scan_symbols(
    src: np.ndarray,
    start: int,
    end: int,
    comp_blocks: np.ndarray,
    dc_tab: np.ndarray,
    ac_tab: np.ndarray,
    dc_fast: np.ndarray,
    dc_dec: np.ndarray,
    ac_fast: np.ndarray,
    ac_dec: np.ndarray,
    n_mcu: int,
    restart: int,
    rst: np.ndarray,
    flags: np.ndarray,
    fill: np.ndarray,
    scratch: np.ndarray,
    syms: np.ndarray,
    extra: np.ndarray,
    dc_freq: np.ndarray,
    ac_freq: np.ndarray,
) -> int:
    """The Huffman symbols of the scan with every flagged block replaced by DC ``fill[k]`` (``k``
    counting flagged blocks in coding order) and an end-of-block, in one decoding pass: per block
    its DC category, then its AC symbols as coded (run/size bytes, to the end-of-block or the
    63rd coefficient), into ``syms``, each symbol's extra bits into ``extra``; ``dc_freq`` and
    ``ac_freq`` (rows per table slot) count them. Clean blocks keep their AC symbols and bits as
    they are; DC differences are taken again from the new predecessors. :func:`emit_symbols`
    writes them with other tables. Returns the number of symbols, or a negative code
    (:data:`OVERFLOW` when ``syms`` is too short)."""
    ns = comp_blocks.shape[0]
    nint = _intervals(n_mcu, restart, rst)
    if nint < 0:
        return BAD_RESTARTS
    cap = syms.shape[0]
    pred = np.zeros(ns, np.int64)
    outpred = np.zeros(ns, np.int64)
    n = 0
    kf = 0
    blk = 0
    for it in range(nint):
        a, b, m0, m1 = _interval(it, nint, start, end, rst, n_mcu, restart)
        nbits = unstuff(src, a, b, scratch) * 8
        pos = 0
        acc = np.int64(0)
        nb = 0
        pred[:] = 0
        outpred[:] = 0
        for _m in range(m0, m1):
            for c in range(ns):
                dt = dc_tab[c]
                at = ac_tab[c]
                dcf = dc_fast[dt]
                dcd = dc_dec[dt]
                acf = ac_fast[at]
                acd = ac_dec[at]
                for _j in range(comp_blocks[c]):
                    if n + 66 > cap:
                        return OVERFLOW
                    pos, acc, nb = _fill(scratch, pos, acc, nb)
                    e = _symbol(acc, nb, dcf, dcd)
                    s = e & 0xFF
                    if e == 0 or s > 16:
                        return CORRUPT
                    nb -= e >> 8
                    diff = 0
                    if s:
                        v = (acc >> (nb - s)) & ((1 << s) - 1)
                        nb -= s
                        diff = v if v >= (1 << (s - 1)) else v - (1 << s) + 1
                    pred[c] += diff
                    hit = flags[blk] != 0
                    dc = fill[kf] if hit else pred[c]
                    if hit:
                        kf += 1
                    newdiff = dc - outpred[c]
                    outpred[c] = dc
                    cat = _category(newdiff)
                    syms[n] = cat
                    extra[n] = (newdiff if newdiff >= 0 else newdiff + (1 << cat) - 1) & ((1 << cat) - 1)
                    dc_freq[dt, cat] += 1
                    n += 1
                    k = 1
                    while k < 64:
                        pos, acc, nb = _fill(scratch, pos, acc, nb)
                        e = _symbol(acc, nb, acf, acd)
                        if e == 0:
                            return CORRUPT
                        nb -= e >> 8
                        rs = e & 0xFF
                        size = rs & 15
                        v = 0
                        if size:
                            k += rs >> 4
                            if k > 63:
                                return CORRUPT
                            v = (acc >> (nb - size)) & ((1 << size) - 1)
                            nb -= size
                            k += 1
                        elif rs == 0xF0:
                            k += 16
                        if not hit:
                            syms[n] = rs
                            extra[n] = v
                            ac_freq[at, rs] += 1
                            n += 1
                        if size == 0 and rs != 0xF0:
                            break  # end of block
                    if k > 64:
                        return CORRUPT
                    if hit:
                        syms[n] = 0
                        extra[n] = 0
                        ac_freq[at, 0] += 1
                        n += 1
                    if pos * 8 - nb > nbits:
                        return CORRUPT
                    blk += 1
    return n


@kernel
def emit_symbols(
    syms: np.ndarray,
    extra: np.ndarray,
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
    """Entropy-code the symbols of :func:`scan_symbols` with these tables into ``out``, with RST
    markers every ``restart`` MCUs. Returns the length, or a negative code (:data:`CORRUPT` for
    a symbol a table lacks)."""
    ns = comp_blocks.shape[0]
    o = 0
    acc = np.int64(0)
    nacc = 0
    i = 0
    for m in range(n_mcu):
        if restart and m % restart == 0 and m > 0:
            o, acc, nacc = _flush(out, o, acc, nacc)
            out[o] = 0xFF
            out[o + 1] = 0xD0 + ((m // restart - 1) & 7)
            o += 2
        for c in range(ns):
            dt = dc_tab[c]
            at = ac_tab[c]
            for _j in range(comp_blocks[c]):
                if o + BLOCK_ROOM > out.shape[0]:
                    return OVERFLOW
                s = syms[i]
                if dc_size[dt, s] == 0:
                    return CORRUPT
                # a code and its extra bits in one append (32 bits at most)
                o, acc, nacc = _put(out, o, acc, nacc, (np.int64(dc_code[dt, s]) << s) | np.int64(extra[i]),
                                    dc_size[dt, s] + s)
                i += 1
                k = 1
                while k < 64:
                    rs = syms[i]
                    if ac_size[at, rs] == 0:
                        return CORRUPT
                    size = rs & 15
                    o, acc, nacc = _put(out, o, acc, nacc, (np.int64(ac_code[at, rs]) << size) | np.int64(extra[i]),
                                        ac_size[at, rs] + size)
                    if size:
                        k += (rs >> 4) + 1
                    elif rs == 0xF0:
                        k += 16
                    else:
                        k = 64  # end of block
                    i += 1
    o, acc, nacc = _flush(out, o, acc, nacc)
    return o
