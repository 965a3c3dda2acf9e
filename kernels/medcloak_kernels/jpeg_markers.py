"""JPEG marker scanning over uint8 arrays (ISO/IEC 10918-1 B.1.1)."""

from __future__ import annotations

import numpy as np

from .jit import kernel


@kernel
def next_marker(buf: np.ndarray, start: int) -> int:
    """Position of the first marker at or after ``start`` in entropy-coded data, or -1.

    Inside entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed zero), by a restart
    marker RST0-RST7 (0xD0-0xD7, part of the scan), by another 0xFF (fill), or by the code of a
    marker that ends the scan. The position returned is that of the 0xFF of such a marker; fill
    bytes before it belong to the scan's data.
    """
    n = buf.shape[0]
    i = start
    while i < n - 1:
        if buf[i] == 0xFF:
            code = buf[i + 1]
            if code == 0x00 or (0xD0 <= code <= 0xD7):
                i += 2
                continue
            if code == 0xFF:
                i += 1
                continue
            return i
        i += 1
    return -1


@kernel
def scan_markers(buf: np.ndarray, ff: np.ndarray, start: int, rst: np.ndarray) -> tuple[int, int]:
    """The end of the entropy-coded data that begins at ``start`` and the RST markers inside it,
    from ``ff``, the sorted positions of every 0xFF byte of ``buf`` (found by numpy, which is
    much faster than a byte loop over data holding few 0xFF bytes).

    Returns (position of the 0xFF of the marker that ends the scan, or -1; number of restart
    markers), writing the restart markers' positions to ``rst`` (as many as fit). Same rules as
    :func:`next_marker`: FF00 is a stuffed zero, FFD0-FFD7 a restart marker, FFFF a fill byte.
    """
    n = buf.shape[0]
    k = np.searchsorted(ff, start)
    count = 0
    while k < ff.shape[0]:
        i = ff[k]
        k += 1
        if i + 1 >= n:
            return -1, count
        code = buf[i + 1]
        if code == 0x00 or code == 0xFF:
            continue
        if 0xD0 <= code <= 0xD7:
            if count < rst.shape[0]:
                rst[count] = i
            count += 1
            continue
        return i, count
    return -1, count
