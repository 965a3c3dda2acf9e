"""Huffman table kernels against slow, obvious references (codes as bit strings)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak_kernels.jpeg_huffman import OVERSUBSCRIBED, canonical_codes, fill_decode_table

# ISO/IEC 10918-1 Table K.3 (luminance DC) and K.5 (luminance AC), the usual tables
K3_BITS = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
K3_VALS = bytes(range(12))
K5_BITS = bytes([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D])


def reference_codes(bits: bytes, vals: bytes) -> dict[int, str] | None:
    """Annex C written out: codes as strings of '0'/'1', counting up within a length and
    appending a 0 when the length grows. None when a length runs out of codes."""
    out: dict[int, str] = {}
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            if code >= 2**length or k >= len(vals):
                return None
            out[vals[k]] = format(code, f"0{length}b")
            code += 1
            k += 1
        code *= 2
    return out


def reference_lookup(codes: dict[int, str], pattern: int) -> tuple[int, int] | None:
    """(length, symbol) of the code that the 16-bit ``pattern`` begins with, by trying each."""
    bits = format(pattern, "016b")
    for sym, code in codes.items():
        if bits.startswith(code):
            return len(code), sym
    return None


def _kernel(bits: bytes, vals: bytes) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    codes = np.zeros(256, np.uint16)
    sizes = np.zeros(256, np.uint8)
    n = canonical_codes(np.frombuffer(bits, np.uint8), np.frombuffer(vals, np.uint8), codes, sizes)
    table = np.zeros(65536, np.uint16)
    if n >= 0:
        fill_decode_table(codes, sizes, table)
    return n, codes, sizes, table


def _check(bits: bytes, vals: bytes, patterns) -> None:  # type: ignore[no-untyped-def]
    expected = reference_codes(bits, vals)
    n, codes, sizes, table = _kernel(bits, vals)
    if expected is None:
        assert n == OVERSUBSCRIBED
        return
    assert n == len(expected)
    for sym in range(256):
        if sym in expected:
            assert format(int(codes[sym]), f"0{int(sizes[sym])}b") == expected[sym]
        else:
            assert sizes[sym] == 0
    for p in patterns:
        ref = reference_lookup(expected, p)
        entry = int(table[p])
        assert (entry == 0) if ref is None else ((entry >> 8, entry & 0xFF) == ref), p


def test_standard_luminance_dc() -> None:
    _check(K3_BITS, K3_VALS, range(0, 65536, 97))
    # the DC category 0 code of K.3 is '00'
    _, codes, sizes, table = _kernel(K3_BITS, K3_VALS)
    assert (int(sizes[0]), int(codes[0])) == (2, 0)
    assert table[0x3FFF] == (2 << 8) | 0


@pytest.mark.parametrize(
    "bits, vals",
    [
        (bytes(16), b""),  # an empty table: every pattern invalid
        (bytes([1] + [0] * 15), b"\x05"),  # one code '0'
        (bytes([2] + [0] * 15), b"\x05\x07"),  # '0' and '1' (all ones over one bit)
        (bytes([3] + [0] * 15), b"\x01\x02\x03"),  # three codes of one bit: oversubscribed
        (bytes([0] * 15 + [1]), b"\xaa"),  # a single code of 16 bits
        (bytes([0, 4] + [0] * 13 + [1]), b"\x01\x02\x03\x04\x05"),  # length 16 overflows
        (bytes([2] + [0] * 15), b"\x05"),  # counts promise more symbols than given
    ],
)
def test_edge_tables(bits: bytes, vals: bytes) -> None:
    _check(bits, vals, [0, 1, 0x7FFF, 0x8000, 0xC000, 0xFFFE, 0xFFFF, 0x5555, 0xAAAA])


@st.composite
def tables(draw):  # type: ignore[no-untyped-def]
    lengths = draw(st.lists(st.integers(1, 16), min_size=1, max_size=40))
    bits = bytes(lengths.count(length) for length in range(1, 17))
    vals = bytes(draw(st.permutations(range(256)))[: len(lengths)])
    return bits, vals


@settings(max_examples=60, deadline=None)
@given(tables(), st.lists(st.integers(0, 65535), min_size=20, max_size=20))
def test_random_tables(table, patterns) -> None:  # type: ignore[no-untyped-def]
    bits, vals = table
    _check(bits, vals, patterns)


def test_luminance_ac_complete() -> None:
    vals = bytes(range(162))  # symbols need not be real AC symbols for the table's shape
    _check(K5_BITS, vals, range(0, 65536, 31))
