"""Scan kernels (decode, symbol collection and writing, redaction, first-level table) against the slow reference
codec of ``tests/jpegref.py`` on random and edge-case inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jpegref as R  # noqa: E402
from test_jpeg_huffman import reference_codes, reference_lookup  # noqa: E402
from test_jpeg_redact import check_redaction, image  # noqa: E402

from medcloak.pixels.jpeg_redact import _table, coefficients, redact_jpeg_detailed  # noqa: E402
from medcloak_kernels.jpeg_scan import FAST_BITS  # noqa: E402

SAMPLINGS = [((1, 1),), ((1, 1),) * 3, ((2, 1), (1, 1), (1, 1)), ((2, 2), (1, 1), (1, 1)), ((1, 2), (1, 1), (1, 1))]


def _edge_coefficients(shape: tuple[int, int], rng: np.random.Generator, precision: int) -> np.ndarray:
    """Blocks a decoder meets rarely: every AC non-zero (no end-of-block), long zero runs ending
    at 63 (ZRL codes), the largest magnitudes, alternating extreme DCs."""
    big = 1023 if precision == 8 else 16383
    dc_big = 2047 if precision == 8 else 32767
    coef = np.zeros((*shape, 64), np.int32)
    flat = coef.reshape(-1, 64)
    for i in range(flat.shape[0]):
        kind = i % 5
        flat[i, 0] = rng.integers(-dc_big // 2, dc_big // 2 + 1) if kind else (dc_big // 2 if i % 2 else -dc_big // 2)
        if kind == 1:
            flat[i, 1:] = rng.choice([-big, -1, 1, big], 63)
        elif kind == 2:
            flat[i, 63] = big
        elif kind == 3:
            flat[i, 17] = -1
            flat[i, 50] = 3
        elif kind == 4:
            flat[i, 1:] = rng.integers(-3, 4, 63) * (rng.random(63) < 0.3)
    return coef


def _block_shapes(sampling, width: int, height: int) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Block rows and columns of each component of a scan (one component: no MCU padding)."""
    if len(sampling) == 1:
        return [(-(-height // 8), -(-width // 8))]
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    my, mx = -(-height // (8 * vmax)), -(-width // (8 * hmax))
    return [(my * v, mx * h) for h, v in sampling]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, len(SAMPLINGS) - 1), st.sampled_from([8, 12]), st.integers(0, 3), st.integers(1, 40),
       st.integers(1, 40), st.integers(0, 2**31))
def test_decode_matches_reference_on_edge_blocks(samp, precision, restart, width, height, seed) -> None:  # type: ignore[no-untyped-def]
    sampling = SAMPLINGS[samp]
    rng = np.random.default_rng(seed)
    shapes = _block_shapes(sampling, width, height)
    coefs = [_edge_coefficients(s, rng, precision) for s in shapes]
    quant = [np.full(64, 1, np.int64)] * 2
    data = R.encode_coefficients(
        coefs, quant, width=width, height=height, precision=precision, sampling=sampling,
        tq=[0] + [1] * (len(sampling) - 1), restart_interval=restart, optimize=True,
    )
    ours = coefficients(data)
    ref = R.decode_coefficients(data)["components"]
    for a, b, c in zip(ours, ref, coefs):
        assert np.array_equal(a, b["coef"])
        assert np.array_equal(a, c)
    # redacting a random box keeps every other block (the tables may lack symbols: any route)
    box = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    box = (*box, box[0] + int(rng.integers(1, 20)), box[1] + int(rng.integers(1, 20)))
    result = redact_jpeg_detailed(data, [box], "black")
    check_redaction(data, result.data, [box], "black", result.route, result.ramp)


def reference_counts(coef: np.ndarray, restart: int, blocks_per_mcu: int) -> tuple[dict[int, int], dict[int, int]]:
    """Symbols of F.1.2 counted by walking each block, one component, one table."""
    dc: dict[int, int] = {}
    ac: dict[int, int] = {}
    pred = 0
    for i, block in enumerate(coef):
        if restart and i % (restart * blocks_per_mcu) == 0:
            pred = 0
        diff = int(block[0]) - pred
        pred = int(block[0])
        dc[abs(diff).bit_length()] = dc.get(abs(diff).bit_length(), 0) + 1
        last = max([k for k in range(1, 64) if block[k]], default=0)
        run = 0
        for k in range(1, last + 1):
            if block[k] == 0:
                run += 1
                continue
            while run > 15:
                ac[0xF0] = ac.get(0xF0, 0) + 1
                run -= 16
            sym = (run << 4) | abs(int(block[k])).bit_length()
            ac[sym] = ac.get(sym, 0) + 1
            run = 0
        if last < 63:
            ac[0] = ac.get(0, 0) + 1
    return dc, ac


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 16), min_size=1, max_size=60), st.lists(st.integers(0, 65535), min_size=30, max_size=30))
def test_first_level_table_matches_reference(lengths, patterns) -> None:  # type: ignore[no-untyped-def]
    bits = bytes(lengths.count(n) for n in range(1, 17))
    vals = bytes(range(len(lengths)))
    codes = reference_codes(bits, vals)
    if codes is None:
        return
    _, _, full, fast = _table(bits, vals)
    for p in patterns:
        ref = reference_lookup(codes, p)
        entry = int(fast[p >> (16 - FAST_BITS)])
        if ref is not None and ref[0] <= FAST_BITS:
            assert (entry >> 8, entry & 0xFF) == ref
        else:
            assert entry == 0  # longer codes and invalid patterns go to the full table
            assert int(full[p]) == (0 if ref is None else (ref[0] << 8) | ref[1])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, len(SAMPLINGS) - 1), st.integers(0, 3), st.booleans(),
       st.lists(st.tuples(st.integers(0, 60), st.integers(0, 44), st.integers(1, 30), st.integers(1, 30)), max_size=3),
       st.sampled_from(["black", "grey", "white"]))
def test_redaction_random_boxes(samp, restart, optimize, raw_boxes, fill) -> None:  # type: ignore[no-untyped-def]
    sampling = SAMPLINGS[samp]
    data = R.encode(image(61, 45, len(sampling), 8, samp), sampling=sampling, restart_interval=restart, optimize=optimize)
    boxes = [(x, y, x + w, y + h) for x, y, w, h in raw_boxes]
    result = redact_jpeg_detailed(data, boxes, fill)
    if not boxes or result.blocks == 0:
        assert result.data == data
        return
    check_redaction(data, result.data, boxes, fill, result.route, result.ramp)


def _symbols(data: bytes, flags: np.ndarray | None = None, fill: np.ndarray | None = None):  # type: ignore[no-untyped-def]
    from medcloak.pixels.jpeg_parse import parse
    from medcloak.pixels.jpeg_redact import _geometry, _stacked
    from medcloak_kernels.jpeg_scan import TAIL, scan_symbols

    layout = parse(data)
    geo = _geometry(layout)
    dc, ac = _stacked(layout.huffman, 0), _stacked(layout.huffman, 1)
    n_blocks = geo.n_mcu * int(geo.comp_blocks.sum())
    flags = np.zeros(n_blocks, np.uint8) if flags is None else flags
    fill = np.zeros(max(1, int(flags.sum())), np.int64) if fill is None else fill
    cap = 64 * n_blocks + 16
    syms, extra = np.zeros(cap, np.uint8), np.zeros(cap, np.uint16)
    dc_freq, ac_freq = np.zeros((4, 256), np.int64), np.zeros((4, 256), np.int64)
    dc_tab = np.array([c.td for c in layout.components], np.int32)
    ac_tab = np.array([c.ta for c in layout.components], np.int32)
    n = scan_symbols(
        np.frombuffer(data, np.uint8), layout.scan_start, layout.scan_end, geo.comp_blocks, dc_tab, ac_tab,
        dc[3], dc[0], ac[3], ac[0], geo.n_mcu, layout.restart, layout.restarts, flags, fill,
        np.zeros(layout.scan_end - layout.scan_start + TAIL, np.uint8), syms, extra, dc_freq, ac_freq,
    )
    return layout, geo, dc, ac, dc_tab, ac_tab, n, syms, extra, dc_freq, ac_freq


@settings(max_examples=25, deadline=None)
@given(st.integers(0, len(SAMPLINGS) - 1), st.integers(0, 3), st.integers(1, 40), st.integers(1, 40),
       st.integers(0, 2**31), st.sampled_from([8, 12]))
def test_symbols_round_trip_and_counts(samp, restart, width, height, seed, precision) -> None:  # type: ignore[no-untyped-def]
    """Symbols collected and written again with the file's own tables give the scan byte for byte
    (the reference encoder codes canonically and pads with ones); their counts are the reference
    counts of F.1.2 on the decoded coefficients."""
    from medcloak_kernels.jpeg_scan import emit_symbols

    sampling = SAMPLINGS[samp]
    rng = np.random.default_rng(seed)
    shapes = _block_shapes(sampling, width, height)
    coefs = [_edge_coefficients(s, rng, precision) for s in shapes]
    data = R.encode_coefficients(
        coefs, [np.full(64, 1, np.int64)] * 2, width=width, height=height, precision=precision, sampling=sampling,
        tq=[0] + [1] * (len(sampling) - 1), restart_interval=restart, optimize=bool(seed % 2),
    )
    layout, geo, dc, ac, dc_tab, ac_tab, n, syms, extra, dc_freq, ac_freq = _symbols(data)
    assert n > 0
    out = np.zeros(len(data) * 2 + 4096, np.uint8)
    m = emit_symbols(syms, extra, geo.comp_blocks, dc_tab, ac_tab, dc[1], dc[2], ac[1], ac[2], geo.n_mcu,
                     layout.restart, out)
    assert bytes(out[:m]) == data[layout.scan_start : layout.scan_end]
    if len(sampling) == 1:
        dc_ref, ac_ref = reference_counts(coefs[0].reshape(-1, 64), restart, 1)
        assert {k: int(v) for k, v in enumerate(dc_freq[0]) if v} == dc_ref
        assert {k: int(v) for k, v in enumerate(ac_freq[0]) if v} == ac_ref


def test_symbols_of_redacted_blocks() -> None:
    """A flagged block becomes its fill DC (difference from the new predecessor) and an
    end-of-block; the next block's DC difference is taken from the fill."""
    coef = np.zeros((1, 3, 64), np.int32)
    coef[0, :, 0] = [10, 20, 30]
    coef[0, :, 1] = [5, -3, 7]
    data = R.encode_coefficients([coef], [np.full(64, 1, np.int64)], width=24, height=8)
    flags = np.array([0, 1, 0], np.uint8)
    *_, n, syms, extra, _dc_freq, _ac_freq = _symbols(data, flags, np.array([-100], np.int64))
    # block 0: DC 10 (category 4), AC 5 (0x03), EOB; block 1: -110 (7), EOB; block 2: 130 (8), AC 7 (0x03), EOB
    assert syms[:n].tolist() == [4, 0x03, 0, 7, 0, 8, 0x03, 0]
    assert extra[:n].tolist() == [10, 5, 0, (-110 + 127) & 127, 0, 130, 7, 0]
