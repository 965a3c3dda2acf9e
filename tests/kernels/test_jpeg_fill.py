"""The fill planner (``plan_fill``) and the DC pre-pass (``decode_dcs``) against slow references:
runs found by walking each component's blocks, each block's value chosen by enumerating every
value reachable from both ends of its run; DCs from the reference decoder of ``tests/jpegref.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import jpegref as R  # noqa: E402
from test_jpeg_scan import SAMPLINGS  # noqa: E402

from medcloak.pixels.jpeg_parse import parse  # noqa: E402
from medcloak.pixels.jpeg_redact import _geometry, _stacked  # noqa: E402
from medcloak_kernels.jpeg_fill import NO_PLAN, plan_fill  # noqa: E402
from medcloak_kernels.jpeg_scan import TAIL, decode_dcs  # noqa: E402


def reference_runs(flags, comp_blocks, n_mcu, restart):  # type: ignore[no-untyped-def]
    """(component, previous clean block or None, blocks of the run, next clean block or None)."""
    bpm = sum(comp_blocks)
    runs = []
    per = restart or n_mcu
    for m0 in range(0, n_mcu, per):
        seqs: list[list[int]] = [[] for _ in comp_blocks]
        for m in range(m0, min(n_mcu, m0 + per)):
            blk = m * bpm
            for c, cb in enumerate(comp_blocks):
                for _ in range(cb):
                    seqs[c].append(blk)
                    blk += 1
        for c, seq in enumerate(seqs):
            i = 0
            while i < len(seq):
                if not flags[seq[i]]:
                    i += 1
                    continue
                j = i
                while j < len(seq) and flags[seq[j]]:
                    j += 1
                runs.append((c, seq[i - 1] if i else None, seq[i:j], seq[j] if j < len(seq) else None))
                i = j
    return runs


def reference_plan(dcs, flags, comp_blocks, n_mcu, restart, fill, step):  # type: ignore[no-untyped-def]
    """Each run block's value: of every value some walk with steps of at most ``step`` from the
    previous clean DC (0 at an interval's start) to the next one passes at that block, the
    nearest to the fill. None when a run has no such walk."""
    plan = {}
    for c, prev, blocks, nxt in reference_runs(flags, comp_blocks, n_mcu, restart):
        m = int(step[c])
        if m < 1:
            return None
        p = int(dcs[prev]) if prev is not None else 0
        k = len(blocks)
        lo, hi = min(p, int(fill[c])) - (k + 1) * m, max(p, int(fill[c])) + (k + 1) * m
        forward = [{p}]
        for _ in range(k):
            forward.append({v + d for v in forward[-1] for d in range(-m, m + 1) if lo <= v + d <= hi})
        if nxt is None:
            backward = [set(range(lo, hi + 1))] * (k + 1)
        else:
            q = int(dcs[nxt])
            backward = [set() for _ in range(k + 1)]
            backward[k] = {v for v in range(lo, hi + 1) if abs(q - v) <= m}
            for i in range(k - 1, -1, -1):
                backward[i] = {v for v in range(lo, hi + 1) if any(abs(w - v) <= m for w in backward[i + 1])}
        for i, blk in enumerate(blocks, start=1):
            ok = forward[i] & backward[i]
            if not ok:
                return None
            plan[blk] = min(ok, key=lambda v: (abs(v - int(fill[c])), v))
    return plan


@settings(max_examples=120, deadline=None)
@given(st.integers(0, len(SAMPLINGS) - 1), st.integers(1, 10), st.integers(0, 3), st.integers(0, 2**31),
       st.floats(0.0, 1.0), st.integers(0, 6))
def test_plan_matches_reference(samp, n_mcu, restart, seed, density, max_step) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    comp_blocks = np.array([h * v for h, v in SAMPLINGS[samp]], np.int32)
    n = n_mcu * int(comp_blocks.sum())
    flags = (rng.random(n) < density).astype(np.uint8)
    dcs = rng.integers(-30, 31, n).astype(np.int64)
    fill = rng.integers(-40, 41, comp_blocks.shape[0]).astype(np.int64)
    step = rng.integers(0, max_step + 1, comp_blocks.shape[0]).astype(np.int64)
    plan = np.full(n, 10**6, np.int64)
    used = np.zeros((comp_blocks.shape[0], 32), np.int64)
    status = plan_fill(dcs, flags, comp_blocks, n_mcu, restart, fill, step, plan, used)
    ref = reference_plan(dcs, flags, comp_blocks, n_mcu, restart, fill, step)
    if ref is None:
        assert status == NO_PLAN
        return
    runs = reference_runs(flags, list(comp_blocks), n_mcu, restart)
    assert status == len(runs)
    assert {i: int(plan[i]) for i in np.flatnonzero(flags)} == ref
    assert (plan[flags == 0] == 10**6).all()  # nothing else written
    # the categories the new differences take: into, within and out of each run
    counted = np.zeros_like(used)
    for c, prev, blocks, nxt in runs:
        chain = [int(dcs[prev]) if prev is not None else 0] + [ref[b] for b in blocks]
        chain += [int(dcs[nxt])] if nxt is not None else []
        for a, b in zip(chain, chain[1:]):
            counted[c, abs(b - a).bit_length()] += 1
            assert abs(b - a) <= step[c]
    assert np.array_equal(used, counted)


def test_plan_edges() -> None:
    one = np.ones(1, np.int32)
    # a run at an interval's start steps from 0 to the fill, holds it, and steps back to the next DC
    plan = np.zeros(6, np.int64)
    assert plan_fill(np.zeros(6, np.int64), np.array([1, 1, 1, 1, 1, 0], np.uint8), one, 6, 0,
                     np.array([-10]), np.array([7]), plan, np.zeros((1, 32), np.int64)) == 1
    assert plan[:5].tolist() == [-7, -10, -10, -10, -7]
    # a restart interval resets the predictor: each interval's run starts from 0
    plan = np.zeros(4, np.int64)
    assert plan_fill(np.zeros(4, np.int64), np.array([1, 1, 1, 1], np.uint8), one, 4, 2,
                     np.array([30]), np.array([15]), plan, np.zeros((1, 32), np.int64)) == 2
    assert plan.tolist() == [15, 30, 15, 30]
    # ends too far apart for the run
    assert plan_fill(np.array([0, 0, 100]), np.array([0, 1, 0], np.uint8), one, 3, 0,
                     np.array([0]), np.array([49]), plan, np.zeros((1, 32), np.int64)) == NO_PLAN
    # no step: nothing codable moves the DC
    assert plan_fill(np.array([0, 0, 0]), np.array([0, 1, 0], np.uint8), one, 3, 0,
                     np.array([0]), np.array([0]), plan, np.zeros((1, 32), np.int64)) == NO_PLAN


@settings(max_examples=25, deadline=None)
@given(st.integers(0, len(SAMPLINGS) - 1), st.integers(0, 3), st.integers(1, 40), st.integers(1, 40),
       st.integers(0, 2**31), st.floats(0.0, 0.5))
def test_decode_dcs_matches_reference(samp, restart, width, height, seed, density) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    sampling = SAMPLINGS[samp]
    pixels = rng.integers(0, 256, (height, width, len(sampling)) if len(sampling) > 1 else (height, width), np.uint8)
    data = R.encode(pixels, sampling=sampling, restart_interval=restart, optimize=bool(seed % 2))
    layout = parse(data)
    geo = _geometry(layout)
    dc, ac = _stacked(layout.huffman, 0), _stacked(layout.huffman, 1)
    n = geo.n_mcu * int(geo.comp_blocks.sum())
    flags = (rng.random(n) < density).astype(np.uint8)
    sentinel = 10**9
    dcs = np.full(n, sentinel, np.int64)
    scratch = np.zeros(layout.scan_end - layout.scan_start + TAIL, np.uint8)
    assert decode_dcs(
        np.frombuffer(data, np.uint8), layout.scan_start, layout.scan_end, geo.comp_blocks,
        np.array([c.td for c in layout.components], np.int32), np.array([c.ta for c in layout.components], np.int32),
        dc[3], dc[0], ac[3], ac[0], geo.n_mcu, layout.restart, layout.restarts, flags, scratch, dcs,
    ) == 0
    ref = R.decode_coefficients(data)["components"]
    from medcloak.pixels.jpeg_redact import _coding_order

    truth = _coding_order(layout, geo, [c["coef"][..., 0] for c in ref])
    written = dcs != sentinel
    assert (dcs[written] == truth[written]).all()
    # everything the planner reads was decoded: each run's neighbours in its interval
    for _c, prev, blocks, nxt in reference_runs(flags, list(geo.comp_blocks), geo.n_mcu, layout.restart):
        for blk in [prev, nxt]:
            if blk is not None:
                assert written[blk]
