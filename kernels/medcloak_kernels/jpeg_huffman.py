"""Huffman tables of sequential JPEG (ISO/IEC 10918-1 Annex C and F.2.2.3), as lookup arrays.

A decode table maps the next 16 bits of the stream to ``(code length << 8) | symbol``; 0 marks a
bit pattern that starts no code of the table. A small first-level table does the same for the
next 9 bits and codes of at most 9 bits, 0 sending the decoder to the full table. An encode table holds the code and its length for
each of the 256 symbols; length 0 marks a symbol the table lacks.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel

#: a bit pattern that begins no code of the table
INVALID = 0
#: result of :func:`canonical_codes` for counts that describe no prefix code
OVERSUBSCRIBED = -1


@kernel
def canonical_codes(bits: np.ndarray, vals: np.ndarray, codes: np.ndarray, sizes: np.ndarray) -> int:
    """Fill ``codes``/``sizes`` (one entry per symbol, 256 long) from the 16 counts ``bits`` and the
    symbols ``vals`` (Annex C). Returns the number of symbols, or :data:`OVERSUBSCRIBED` when the
    counts need more codes than a length allows (or more symbols than ``vals`` holds)."""
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if k >= vals.shape[0]:
                return OVERSUBSCRIBED
            if code >= (1 << length):
                return OVERSUBSCRIBED
            sym = vals[k]
            codes[sym] = code
            sizes[sym] = length
            code += 1
            k += 1
        code <<= 1
    return k


@kernel
def fill_decode_table(codes: np.ndarray, sizes: np.ndarray, table: np.ndarray) -> None:
    """The 65536-entry lookahead ``table`` from an encode table."""
    table[:] = INVALID
    for sym in range(256):
        size = sizes[sym]
        if size == 0:
            continue
        first = codes[sym] << (16 - size)
        entry = (size << 8) | sym
        for j in range(first, first + (1 << (16 - size))):
            table[j] = entry


@kernel
def fill_fast_table(codes: np.ndarray, sizes: np.ndarray, bits: int, table: np.ndarray) -> None:
    """The ``2**bits``-entry first-level table: entries for codes of at most ``bits`` bits, 0
    (look in the 16-bit table) for the rest."""
    table[:] = INVALID
    for sym in range(256):
        size = sizes[sym]
        if size == 0 or size > bits:
            continue
        first = codes[sym] << (bits - size)
        entry = (size << 8) | sym
        for j in range(first, first + (1 << (bits - size))):
            table[j] = entry
