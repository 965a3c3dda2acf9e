"""Bit-level kernels of the scan (unstuffing, restart markers, the bit writer through
``emit_symbols``) against slow, obvious references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak_kernels.jpeg_markers import scan_markers
from medcloak_kernels.jpeg_scan import emit_symbols, unstuff


def reference_unstuff(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0xFF and i + 1 < len(data) and data[i + 1] == 0xFF:
            i += 1  # a fill byte
            continue
        out.append(data[i])
        if data[i] == 0xFF and i + 1 < len(data) and data[i + 1] == 0x00:
            i += 2
        else:
            i += 1
    return bytes(out)


def reference_scan_markers(data: bytes, start: int) -> tuple[int, list[int]]:
    """Byte by byte: where the scan ends (-1: it runs off the end) and its RST markers."""
    found, i = [], start
    while i + 1 < len(data):
        if data[i] != 0xFF or data[i + 1] in (0x00, 0xFF):
            i += 1 if data[i] != 0xFF or data[i + 1] == 0xFF else 2
        elif 0xD0 <= data[i + 1] <= 0xD7:
            found.append(i)
            i += 2
        else:
            return i, found
    return -1, found


ALPHABET = st.sampled_from([0x00, 0xFF, 0xD0, 0xD7, 0xD8, 0x12, 0xFE])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=60), st.integers(0, 5))
def test_unstuff_and_scan_markers_random(values: list[int], start: int) -> None:
    data = bytes(values)
    src = np.frombuffer(data, np.uint8)
    dst = np.full(len(data) + 8, 0x55, np.uint8)
    n = unstuff(src, 0, len(data), dst)
    assert dst[:n].tobytes() == reference_unstuff(data)
    assert dst[n : n + 3].tolist() == [0, 0, 0]
    found = np.zeros(64, np.int64)
    ff = np.flatnonzero(src == 0xFF)
    end, count = scan_markers(src, ff, start, found)
    assert (end, found[:count].tolist()) == reference_scan_markers(data, start)


@pytest.mark.parametrize("data", [b"", b"\xff", b"\xff\x00", b"\xff\xff\xff\x00", b"\xff\xd0", b"\x01\xff\xd7\xff"])
def test_unstuff_edges(data: bytes) -> None:
    src = np.frombuffer(data, np.uint8)
    dst = np.zeros(len(data) + 8, np.uint8)
    n = unstuff(src, 0, len(data), dst)
    assert dst[:n].tobytes() == reference_unstuff(data)


def reference_encode(coef: np.ndarray, dc_codes: dict[int, str], ac_codes: dict[int, str], restart: int) -> bytes:
    """One grey component, one block per MCU: F.1.2 written out with bit strings."""
    def value_bits(v: int, s: int) -> str:
        return "" if s == 0 else format(v if v >= 0 else v + (1 << s) - 1, f"0{s}b")

    out = bytearray()
    bits = ""

    def emit_bytes(final: bool) -> None:
        nonlocal bits
        if final and len(bits) % 8:
            bits += "1" * (8 - len(bits) % 8)
        while len(bits) >= 8:
            byte = int(bits[:8], 2)
            out.append(byte)
            if byte == 0xFF:
                out.append(0)
            bits = bits[8:]

    pred = 0
    for m, block in enumerate(coef):
        if restart and m and m % restart == 0:
            emit_bytes(True)
            out.extend((0xFF, 0xD0 + ((m // restart - 1) % 8)))
            pred = 0
        diff = int(block[0]) - pred
        pred = int(block[0])
        s = abs(diff).bit_length()
        bits += dc_codes[s] + value_bits(diff, s)
        run = 0
        for k in range(1, 64):
            v = int(block[k])
            if v == 0:
                run += 1
                continue
            while run > 15:
                bits += ac_codes[0xF0]
                run -= 16
            s = abs(v).bit_length()
            bits += ac_codes[(run << 4) | s] + value_bits(v, s)
            run = 0
        if run:
            bits += ac_codes[0x00]
        emit_bytes(False)
    emit_bytes(True)
    return bytes(out)


def _full_tables() -> tuple[dict[int, str], dict[int, str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A DC table with every category 0-11 and an AC table with every symbol, lengths chosen so
    that many codes are long and some bytes come out as 0xFF (stuffing is exercised)."""
    from medcloak.pixels.jpeg_redact import _table

    dc_bits = bytes([0, 0, 0, 12] + [0] * 12)
    dc_vals = bytes(range(12))
    ac_syms = [0x00, 0xF0] + [(r << 4) | s for r in range(16) for s in range(1, 11)]
    ac_bits = bytes([0] * 7 + [2, 4, 8, 16, 32, 64, 36] + [0, 0])
    ac_vals = bytes(ac_syms)
    assert sum(ac_bits) == len(ac_syms)
    dcc, dcs, _, _ = _table(dc_bits, dc_vals)
    acc, acs, _, _ = _table(ac_bits, ac_vals)
    dc_codes = {s: format(int(dcc[s]), f"0{int(dcs[s])}b") for s in range(256) if dcs[s]}
    ac_codes = {s: format(int(acc[s]), f"0{int(acs[s])}b") for s in range(256) if acs[s]}
    return dc_codes, ac_codes, dcc[None], dcs[None], acc[None], acs[None]


def reference_symbols(coef: np.ndarray, restart: int) -> tuple[list[int], list[int]]:
    """F.1.2 symbols of each block (DC category, then run/size, ZRL, end-of-block) and their
    extra bits, one component."""
    syms, extra = [], []
    pred = 0
    for i, block in enumerate(coef):
        if restart and i % restart == 0:
            pred = 0
        diff = int(block[0]) - pred
        pred = int(block[0])
        s = abs(diff).bit_length()
        syms.append(s)
        extra.append(diff if diff >= 0 else diff + (1 << s) - 1)
        last = max([k for k in range(1, 64) if block[k]], default=0)
        run = 0
        for k in range(1, last + 1):
            v = int(block[k])
            if v == 0:
                run += 1
                continue
            while run > 15:
                syms.append(0xF0)
                extra.append(0)
                run -= 16
            size = abs(v).bit_length()
            syms.append((run << 4) | size)
            extra.append(v if v >= 0 else v + (1 << size) - 1)
            run = 0
        if last < 63:
            syms.append(0)
            extra.append(0)
    return syms, extra


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 5), st.integers(0, 2**31))
def test_emit_symbols_matches_reference(blocks: int, restart: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    coef = np.zeros((blocks, 64), np.int32)
    coef[:, 0] = rng.integers(-1023, 1024, blocks)
    dense = rng.random((blocks, 63)) < rng.random()
    coef[:, 1:] = np.where(dense, rng.integers(-1023, 1024, (blocks, 63)), 0)
    dc_codes, ac_codes, dcc, dcs, acc, acs = _full_tables()
    syms, extra = reference_symbols(coef, restart)
    out = np.empty(blocks * 700 + 64, np.uint8)
    zero = np.zeros(1, np.int32)
    n = emit_symbols(np.array(syms, np.uint8), np.array(extra, np.uint16), np.ones(1, np.int32), zero, zero,
                     dcc, dcs, acc, acs, blocks, restart, out)
    assert n >= 0
    assert out[:n].tobytes() == reference_encode(coef, dc_codes, ac_codes, restart)
