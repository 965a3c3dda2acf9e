"""DC values of redacted blocks when the Huffman DC table cannot code every difference.

A DC is coded as its difference from the previous block of the same component in the same
restart interval (F.1.2.1.3), and an optimized table (libjpeg's ``-optimize``, Pillow's
``optimize=True``) holds only the difference categories its image used: often 0 to 9, so a jump
from a bright block to a black fill (a difference of 10 or 11 bits) has no code. The blocks of a
redacted run are free, though: any DC sequence whose differences the table codes will do, and
the first clean block after the run keeps its DC, re-coded against the run's last value.

With ``step`` the largest magnitude such that every difference of at most that magnitude is
codable (categories 0 to m, step 2**m - 1), a run of ``k`` blocks between a clean DC ``p`` (0 at
an interval's start) and the next clean DC ``q`` (none at an interval's end) takes, for its i-th
block, the fill value clamped to what is reachable from both ends:
``[p - i*step, p + i*step]`` and ``[q - (k+1-i)*step, q + (k+1-i)*step]``. Consecutive values
then differ by at most ``step`` (each bound moves by at most ``step`` per block), and each block
is as near the fill as any codable sequence allows: the fill exactly wherever the run is long
enough, a ramp of a block or two at the run's ends otherwise.
"""

from __future__ import annotations

import numba
import numpy as np

from .jit import kernel
from .jpeg_scan import _category, _interval_count, _interval_mcus, _last_flagged

#: a run whose ends are too far apart for the table (or a table without categories 0 and 1)
NO_PLAN = -2


@kernel
def plan_fill(
    dcs: np.ndarray,
    flags: np.ndarray,
    comp_blocks: np.ndarray,
    n_mcu: int,
    restart: int,
    fill: np.ndarray,
    step: np.ndarray,
    plan: np.ndarray,
    used: np.ndarray,
) -> int:
    """Write the DC of every flagged block into ``plan`` (one entry per block in coding order,
    like ``flags`` and ``dcs``; other entries are left alone). ``dcs`` holds the absolute DC of
    the blocks :func:`.jpeg_scan.decode_dcs` decodes, ``fill[c]`` and ``step[c]`` the fill value
    and the codable step of component ``c``. ``used[c, s]`` (zeroed by the caller, 32 columns)
    counts the differences of category ``s`` the plan makes component ``c`` code: into, within
    and out of each run. Returns the number of runs, or :data:`NO_PLAN`."""
    ns = comp_blocks.shape[0]
    bpm = 0
    offset = np.zeros(ns, np.int64)
    for c in range(ns):
        offset[c] = bpm
        bpm += comp_blocks[c]
    nint = _interval_count(n_mcu, restart)
    prev_blk = np.full(ns, -1, np.int64)  # last clean block of the component in the interval
    run_first = np.zeros(ns, np.int64)  # index of the run's first block in the component's order
    run_len = np.zeros(ns, np.int64)
    runs = 0
    for it in range(nint):
        m0, m1 = _interval_mcus(it, n_mcu, restart)
        prev_blk[:] = -1
        run_len[:] = 0
        last = _last_flagged(flags, m0 * bpm, m1 * bpm)
        if last < 0:
            continue
        blk = m0 * bpm
        for m in range(m0, m1):
            if blk > last:  # past the interval's last flagged block: close its runs and stop
                open_runs = False
                for c in range(ns):
                    if run_len[c] > 0:
                        open_runs = True
                if not open_runs:
                    break
            for c in range(ns):
                cb = comp_blocks[c]
                for j in range(cb):
                    if flags[blk]:
                        if run_len[c] == 0:
                            run_first[c] = m * cb + j
                        run_len[c] += 1
                    else:
                        if run_len[c] > 0:
                            if _close(dcs, prev_blk[c], True, dcs[blk], run_first[c], run_len[c], cb, bpm,
                                      offset[c], fill[c], step[c], plan, used[c]) < 0:
                                return NO_PLAN
                            run_len[c] = 0
                            runs += 1
                        prev_blk[c] = blk
                    blk += 1
        for c in range(ns):
            if run_len[c] > 0:
                if _close(dcs, prev_blk[c], False, 0, run_first[c], run_len[c], comp_blocks[c], bpm, offset[c],
                          fill[c], step[c], plan, used[c]) < 0:
                    return NO_PLAN
                runs += 1
    return runs


@numba.njit(inline="always")
def _close(dcs, prev_blk, has_next, q, first, k, cb, bpm, off, f, step, plan, used):  # type: ignore[no-untyped-def]
    """Plan one run of ``k`` blocks of a component (its blocks in coding order: the component's
    ``first``-th block onwards)."""
    if step < 1:
        return NO_PLAN
    p = dcs[prev_blk] if prev_blk >= 0 else 0
    last = p
    if has_next and abs(q - p) > (k + 1) * step:
        return NO_PLAN
    for i in range(1, k + 1):
        lo = p - i * step
        hi = p + i * step
        if has_next:
            lo = max(lo, q - (k + 1 - i) * step)
            hi = min(hi, q + (k + 1 - i) * step)
        v = min(max(f, lo), hi)
        s = first + i - 1
        plan[(s // cb) * bpm + off + s % cb] = v
        used[_category(v - last)] += 1
        last = v
    if has_next:
        used[_category(q - last)] += 1
    return 0
