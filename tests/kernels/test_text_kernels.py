"""Text detection kernels against slow, obvious references on random and edge-case frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medcloak_kernels import text as k


def reference_stretch(img, lo, hi):  # type: ignore[no-untyped-def]
    out = np.zeros(img.shape, np.uint8)
    if hi <= lo:
        return out
    for idx in np.ndindex(img.shape):
        v = (float(img[idx]) - lo) * (255.0 / (hi - lo)) + 0.5
        out[idx] = 0 if v <= 0 else 255 if v >= 255 else int(v)
    return out


def reference_filter(img, r, fn):  # type: ignore[no-untyped-def]
    ny, nx = img.shape
    out = np.empty_like(img)
    for y in range(ny):
        for x in range(nx):
            out[y, x] = fn(img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1])
    return out


def reference_components(mask):  # type: ignore[no-untyped-def]
    """8-connected components by breadth-first search over a set of pixels, in the order of
    their first pixel in row order."""
    left = {tuple(p) for p in np.argwhere(mask)}
    parts = []
    for p in sorted(left):
        if p not in left:
            continue
        left.remove(p)
        part, frontier = [p], [p]
        while frontier:
            y, x = frontier.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    n = (y + dy, x + dx)
                    if n in left:
                        left.remove(n)
                        part.append(n)
                        frontier.append(n)
        parts.append(part)
    return parts


def reference_table(strength, lo, values, delta):  # type: ignore[no-untyped-def]
    rows = []
    parts = reference_components(strength >= lo)
    for part in parts:
        ys = [p[0] for p in part]
        xs = [p[1] for p in part]
        vals = [int(strength[p]) for p in part]
        peak = max(vals)
        levels = [int(values[p]) for p in part]
        flat, mode = max((sum(abs(v - m) <= delta for v in levels), -m) for m in range(256))
        x0, y0, x1, y1 = min(xs), min(ys), max(xs) + 1, max(ys) + 1
        pix = set(part)
        ym, xm = (y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2
        cells_h = [(ym, x) in pix for x in range(x0, x1)]
        cells_v = [(y, xm) in pix for y in range(y0, y1)]
        runs_h = sum(1 for i, c in enumerate(cells_h) if c and (i == 0 or not cells_h[i - 1]))
        runs_v = sum(1 for i, c in enumerate(cells_v) if c and (i == 0 or not cells_v[i - 1]))
        rows.append((x0, y0, x1, y1, len(part), peak, sum(v >= (peak + 1) // 2 for v in vals), -mode, flat,
                     runs_h, runs_v))
    return np.array(rows, np.int64).reshape(-1, k.NSTAT)


def reference_link(boxes, gap, overlap, ratio, align):  # type: ignore[no-untyped-def]
    """Every pair tested, lines grown by breadth-first search, each named by its least index."""
    n = len(boxes)

    def linked(i, j):  # type: ignore[no-untyped-def]
        x0, y0, x1, y1 = boxes[i]
        u0, v0, u1, v1 = boxes[j]
        tall, short = max(y1 - y0, v1 - v0), min(y1 - y0, v1 - v0)
        if short <= 0 or tall > ratio * short:
            return False
        if max(u0 - x1, x0 - u1) > gap * tall:
            return False
        tol = max(1.0, align * tall)
        if abs(y0 - v0) > tol and abs(y1 - v1) > tol:
            return False
        return min(y1, v1) - max(y0, v0) >= overlap * short

    out = np.full(n, -1)
    for s in range(n):
        if out[s] >= 0:
            continue
        out[s] = s
        frontier = [s]
        while frontier:
            i = frontier.pop()
            for j in range(n):
                if out[j] < 0 and linked(i, j):
                    out[j] = s
                    frontier.append(j)
    return out


frames = st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31))


def _frame(spec, sparse=False):  # type: ignore[no-untyped-def]
    ny, nx, seed = spec
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (ny, nx)).astype(np.uint8)
    if sparse:  # a few flat levels, so components and ties happen
        img = (rng.integers(0, 4, (ny, nx)) * 60).astype(np.uint8)
    return img


EDGES = [np.zeros((1, 1), np.uint8), np.full((1, 1), 255, np.uint8), np.full((5, 7), 77, np.uint8),
         np.zeros((0, 4), np.uint8), np.zeros((3, 0), np.uint8)]


@settings(max_examples=60, deadline=None)
@given(frames, st.integers(0, 4))
def test_min_max_filters_match_window_extremes(spec, r) -> None:  # type: ignore[no-untyped-def]
    img = _frame(spec)
    assert np.array_equal(k.min_filter(img, r), reference_filter(img, r, np.min))
    assert np.array_equal(k.max_filter(img, r), reference_filter(img, r, np.max))


@pytest.mark.parametrize("img", EDGES[:3])
@pytest.mark.parametrize("r", [0, 1, 5])
def test_filters_on_edge_frames(img, r) -> None:  # type: ignore[no-untyped-def]
    assert np.array_equal(k.min_filter(img, r), reference_filter(img, r, np.min))
    assert np.array_equal(k.max_filter(img, r), reference_filter(img, r, np.max))


@pytest.mark.parametrize("img", EDGES[3:])
def test_kernels_on_empty_frames(img) -> None:  # type: ignore[no-untyped-def]
    assert k.min_filter(img, 2).shape == img.shape
    white, black = k.tophats(img, 2)
    assert white.shape == black.shape == img.shape
    labels, table = k.components(img, 1, img, 3)
    assert labels.shape == img.shape and table.shape == (0, k.NSTAT)


@settings(max_examples=60, deadline=None)
@given(frames, st.integers(0, 3))
def test_tophats_are_frame_less_opening_and_closing_less_frame(spec, r) -> None:  # type: ignore[no-untyped-def]
    img = _frame(spec)
    opened = reference_filter(reference_filter(img, r, np.min), r, np.max)
    closed = reference_filter(reference_filter(img, r, np.max), r, np.min)
    white, black = k.tophats(img, r)
    assert np.array_equal(white, img.astype(int) - opened)
    assert np.array_equal(black, closed.astype(int) - img)
    assert np.array_equal(k.white_tophat(img, r), white)


def test_tophat_keeps_thin_strokes_and_drops_blobs() -> None:
    img = np.zeros((40, 40), np.uint8)
    img[5:25, 5:7] = 200  # a stroke 2 px wide
    img[10:35, 15:40] = 200  # a blob wider than the square
    white, black = k.tophats(img, 2)
    assert (white[5:25, 5:7] == 200).all()
    assert (white[10:35, 15:40] == 0).all()
    assert not black.any()


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(0, 2**31)), st.floats(-100, 400),
       st.floats(-100, 400))
def test_stretch_matches_reference(spec, lo, hi) -> None:  # type: ignore[no-untyped-def]
    ny, nx, seed = spec
    img = np.random.default_rng(seed).integers(-50, 4096, (ny, nx)).astype(np.int16)
    assert np.array_equal(k.stretch(img, lo, hi), reference_stretch(img, lo, hi))


def test_value_chroma() -> None:
    rgb = np.array([[[255, 255, 0], [0, 0, 0], [10, 200, 30]]], np.uint8)
    v, c = k.value_chroma(rgb)
    assert v.tolist() == [[255, 0, 200]] and c.tolist() == [[255, 0, 190]]


@settings(max_examples=40, deadline=None)
@given(frames)
def test_channel_mean(spec) -> None:  # type: ignore[no-untyped-def]
    ny, nx, seed = spec
    rgb = np.random.default_rng(seed).integers(0, 256, (ny, nx, 3)).astype(np.uint8)
    want = [[(int(rgb[y, x, 0]) + int(rgb[y, x, 1]) + int(rgb[y, x, 2])) // 3 for x in range(nx)] for y in range(ny)]
    assert k.channel_mean(rgb).tolist() == want
    assert k.channel_mean(np.full((2, 2, 3), 255, np.uint8)).tolist() == [[255, 255], [255, 255]]


@settings(max_examples=80, deadline=None)
@given(frames, st.booleans(), st.integers(1, 200), st.integers(0, 2**31), st.integers(0, 12))
def test_components_match_reference(spec, sparse, lo, seed, delta) -> None:  # type: ignore[no-untyped-def]
    strength = _frame(spec, sparse)
    values = _frame((spec[0], spec[1], seed), sparse)
    labels, table = k.components(strength, lo, values, delta)
    ref = reference_table(strength, lo, values, delta)
    assert np.array_equal(table, ref)
    for i, part in enumerate(reference_components(strength >= lo), 1):
        assert all(labels[p] == i for p in part)
    assert np.count_nonzero(labels) == np.count_nonzero(strength >= lo)


@pytest.mark.parametrize("img", EDGES[:3])
def test_components_on_edge_frames(img) -> None:  # type: ignore[no-untyped-def]
    for values in (img, 255 - img):
        _labels, table = k.components(img, 1, values, 4)
        assert np.array_equal(table, reference_table(img, 1, values, 4))


def test_components_join_diagonals() -> None:
    s = np.zeros((4, 4), np.uint8)
    s[0, 0] = s[1, 1] = s[2, 2] = 50
    s[3, 0] = 20
    _, table = k.components(s, 10, s, 0)
    assert table.tolist() == [[0, 0, 3, 3, 3, 50, 3, 50, 3, 1, 1], [0, 3, 1, 4, 1, 20, 1, 20, 1, 1, 1]]


def test_components_measure_colour_and_strokes() -> None:
    s = np.zeros((5, 9), np.uint8)
    s[0:5, 0] = s[0:5, 4] = s[0:5, 8] = 90  # three strokes joined at the bottom
    s[4, :] = 90
    values = np.where(s > 0, 200, 0).astype(np.uint8)
    values[4, 2] = 120  # one pixel off the text's colour
    _, table = k.components(s, 10, values, 5)
    (row,) = table.tolist()
    assert row[k.MODE] == 195 and row[k.FLAT] == row[k.AREA] - 1
    assert row[k.RUNS_H] == 3 and row[k.RUNS_V] == 1


def reference_level_components(strength, levels, values, delta):  # type: ignore[no-untyped-def]
    """Each level's table on its own (the reference above), up to the first level that the one
    before left no component reaching."""
    tables, starts = [], [0]
    for n, lo in enumerate(levels):
        t = reference_table(strength, lo, values, delta)
        tables.append(t)
        starts.append(starts[-1] + len(t))
        if n + 1 < len(levels) and (len(t) == 0 or t[:, k.PEAK].max() < levels[n + 1]):
            break
    starts += [starts[-1]] * (len(levels) + 1 - len(starts))
    return np.concatenate(tables) if tables else np.zeros((0, k.NSTAT), np.int64), starts


@settings(max_examples=80, deadline=None)
@given(frames, st.booleans(), st.lists(st.integers(-2, 250), max_size=7), st.booleans(), st.integers(0, 2**31),
       st.integers(0, 12))
def test_level_components_match_each_level_alone(spec, sparse, levels, ordered, seed, delta) -> None:  # type: ignore[no-untyped-def]
    strength = _frame(spec, sparse)
    values = _frame((spec[0], spec[1], seed), sparse)
    if ordered:
        levels = sorted(levels)
    table, starts = k.level_components(strength, np.asarray(levels, np.int64), values, delta)
    ref, ref_starts = reference_level_components(strength, levels, values, delta)
    assert starts.tolist() == ref_starts
    assert np.array_equal(table, ref)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_components_on_a_large_frame_match_components_level_by_level(seed) -> None:  # type: ignore[no-untyped-def]
    """A frame of many components of every size and strength (their tables grown several
    times): as :func:`components` (itself checked against the reference) at each level."""
    rng = np.random.default_rng(seed)
    strength = (rng.random((300, 400)) ** 6 * 255).astype(np.uint8)
    strength[50:120, 30:300] = rng.integers(0, 200, (70, 270))  # a large, broken region
    values = rng.integers(0, 256, strength.shape).astype(np.uint8)
    levels = [6, 12, 20, 35, 50, 120]
    table, starts = k.level_components(strength, np.asarray(levels, np.int64), values, 6)
    want, want_starts = [], [0]
    for n, lo in enumerate(levels):
        t = k.components(strength, lo, values, 6)[1]
        want.append(t)
        want_starts.append(want_starts[-1] + len(t))
        if n + 1 < len(levels) and (len(t) == 0 or t[:, k.PEAK].max() < levels[n + 1]):
            break
    want_starts += [want_starts[-1]] * (len(levels) + 1 - len(want_starts))
    assert starts.tolist() == want_starts
    assert np.array_equal(table, np.concatenate(want))


@pytest.mark.parametrize("img", EDGES)
def test_level_components_on_edge_frames(img) -> None:  # type: ignore[no-untyped-def]
    for levels in ([1, 50, 255], [0], [300, 1], []):
        table, starts = k.level_components(img, np.asarray(levels, np.int64), 255 - img, 4)
        ref, ref_starts = reference_level_components(img, levels, 255 - img, 4)
        assert starts.tolist() == ref_starts and np.array_equal(table, ref)


boxes_st = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 40), st.integers(1, 20), st.integers(1, 15)),
                    max_size=25)


@settings(max_examples=100, deadline=None)
@given(boxes_st, st.floats(0.0, 2.0), st.floats(0.0, 1.0), st.floats(1.0, 4.0), st.floats(0.0, 1.0))
def test_link_lines_matches_all_pairs(spec, gap, overlap, ratio, align) -> None:  # type: ignore[no-untyped-def]
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h in spec], np.int64).reshape(-1, 4)
    got = k.link_lines(boxes, gap, overlap, ratio, align)
    assert np.array_equal(got, reference_link(boxes, gap, overlap, ratio, align))


tall_boxes_st = st.lists(st.tuples(st.integers(-30, 300), st.integers(-20, 200), st.integers(0, 30),
                                   st.integers(-2, 70)), max_size=80)


@settings(max_examples=100, deadline=None)
@given(tall_boxes_st, st.floats(0.0, 2.0), st.sampled_from([-0.5, 0.0, 0.0, 0.3, 1.0]), st.floats(1.0, 4.0),
       st.floats(0.0, 1.0))
def test_link_lines_across_bands_and_apart(spec, gap, overlap, ratio, align) -> None:  # type: ignore[no-untyped-def]
    """Boxes spanning several bands of rows, touching at a band's edge, empty or upside down,
    at negative coordinates, and an overlap below 0 (boxes apart in their rows linked): as
    every pair tested."""
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h in spec], np.int64).reshape(-1, 4)
    got = k.link_lines(boxes, gap, overlap, ratio, align)
    assert np.array_equal(got, reference_link(boxes, gap, overlap, ratio, align))


def test_link_lines_joins_boxes_touching_at_a_band_edge() -> None:
    boxes = np.array([(0, 0, 5, k.LINK_BAND), (6, k.LINK_BAND, 11, 2 * k.LINK_BAND)], np.int64)
    assert k.link_lines(boxes, 1.0, 0.0, 2.0, 1.0).tolist() == [0, 0]
    assert k.link_lines(boxes, 1.0, 0.1, 2.0, 1.0).tolist() == [0, 1]


def test_link_lines_chains_a_row_and_not_the_next() -> None:
    boxes = np.array([[0, 0, 8, 10], [10, 0, 18, 10], [20, 1, 28, 10], [0, 30, 8, 40], [60, 0, 68, 10],
                      [30, 3, 38, 13]])  # the last one neither on the top nor on the baseline
    assert k.link_lines(boxes, 1.0, 0.5, 3.0, 0.15).tolist() == [0, 0, 0, 3, 4, 5]


def reference_block_median(img, b):  # type: ignore[no-untyped-def]
    ny, nx = img.shape
    out = np.zeros(((ny + b - 1) // b, (nx + b - 1) // b), np.uint8)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            vals = sorted(img[i * b:(i + 1) * b, j * b:(j + 1) * b].ravel())
            out[i, j] = vals[(len(vals) - 1) // 2]
    return out


@settings(max_examples=60, deadline=None)
@given(frames, st.integers(1, 5), st.floats(0.0, 3.0))
def test_block_median_and_level(spec, b, factor) -> None:  # type: ignore[no-untyped-def]
    img = _frame(spec)
    level = k.block_median(img, b)
    assert np.array_equal(level, reference_block_median(img, b))
    want = np.zeros_like(img)
    for y, x in np.ndindex(img.shape):
        v = float(img[y, x]) - factor * float(level[y // b, x // b])
        want[y, x] = int(v) if v > 0 else 0
    assert np.array_equal(k.above_level(img, level, b, factor), want)


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31)), st.integers(1, 9),
       st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, 1.7]), st.booleans())
def test_above_level_by_whole_and_other_factors(spec, b, factor, small) -> None:  # type: ignore[no-untyped-def]
    """Whole factors take the shifted rows, others the table: both as the arithmetic pixel by
    pixel, levels high enough to floor every value included; block medians of small values
    (read up to the block's largest only) as well."""
    ny, nx, seed = spec
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 8 if small else 256, (ny, nx)).astype(np.uint8)
    level = k.block_median(img, b)
    assert np.array_equal(level, reference_block_median(img, b))
    level = rng.integers(0, 256, level.shape).astype(np.uint8)
    want = np.zeros_like(img)
    for y, x in np.ndindex(img.shape):
        v = float(img[y, x]) - factor * float(level[y // b, x // b])
        want[y, x] = int(v) if v > 0 else 0
    assert np.array_equal(k.above_level(img, level, b, factor), want)


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**31)), st.integers(1, 6),
       st.integers(1, 4), st.booleans())
def test_block_medians_are_each_sides_alone(spec, fine, times, small) -> None:  # type: ignore[no-untyped-def]
    ny, nx, seed = spec
    img = np.random.default_rng(seed).integers(0, 8 if small else 256, (ny, nx)).astype(np.uint8)
    f, c = k.block_medians(img, fine, fine * times)
    assert np.array_equal(f, reference_block_median(img, fine))
    assert np.array_equal(c, reference_block_median(img, fine * times))


def test_strongest() -> None:
    a = np.array([[1, 9]], np.uint8)
    b = np.array([[5, 2]], np.uint8)
    assert k.strongest(a, b).tolist() == [[5, 9]]


def reference_forest(x, trees):  # type: ignore[no-untyped-def]
    """Each tree a nested tuple: (feature, threshold, left, right) or a leaf value."""
    out = []
    for row in x:
        s = 0.0
        for tree in trees:
            node = tree
            while isinstance(node, tuple):
                f, thr, lo, hi = node
                node = lo if row[f] <= thr else hi
            s += node
        out.append(s)
    return np.array(out)


def _random_tree(rng, depth, nfeat):  # type: ignore[no-untyped-def]
    if depth == 0 or rng.random() < 0.25:
        return float(rng.normal())
    return (int(rng.integers(nfeat)), float(rng.normal()), _random_tree(rng, depth - 1, nfeat),
            _random_tree(rng, depth - 1, nfeat))


def _flatten(trees):  # type: ignore[no-untyped-def]
    feature, threshold, left, right, value, roots = [], [], [], [], [], []

    def add(node):  # type: ignore[no-untyped-def]
        i = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(0.0)
        if isinstance(node, tuple):
            feature[i], threshold[i] = node[0], node[1]
            left[i] = add(node[2])
            right[i] = add(node[3])
        else:
            value[i] = node
        return i

    for tree in trees:
        roots.append(add(tree))
    return (np.array(feature, np.int32), np.array(threshold), np.array(left, np.int32),
            np.array(right, np.int32), np.array(value), np.array(roots, np.int32))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), ntrees=st.integers(0, 12), depth=st.integers(0, 6),
       nrows=st.integers(0, 40), nfeat=st.integers(1, 5))
def test_forest_matches_a_walk_down_each_tree(seed, ntrees, depth, nrows, nfeat) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    trees = [_random_tree(rng, depth, nfeat) for _ in range(ntrees)]
    x = rng.normal(size=(nrows, nfeat))
    x[rng.random(x.shape) < 0.1] = 0.0  # on a threshold's side exactly, now and then
    got = k.forest(x, *_flatten(trees))
    assert np.allclose(got, reference_forest(x, trees))


def test_forest_sends_equal_values_left_and_nan_right() -> None:
    trees = [(0, 0.5, -1.0, 1.0)]
    x = np.array([[0.5], [0.4999], [0.5001], [np.nan]])
    assert k.forest(x, *_flatten(trees)).tolist() == [-1.0, -1.0, 1.0, 1.0]


def reference_chain_features(table, members, turned, wide, runs, align_tol):  # type: ignore[no-untyped-def]
    """A chain's box and its measures, one numpy step at a time."""
    rows = table[members]
    box = (int(rows[:, 0].min()), int(rows[:, 1].min()), int(rows[:, 2].max()), int(rows[:, 3].max()))
    lev = rows[:, -2]
    level = int(np.bincount(lev).argmax())
    same = rows[lev == level]
    sh = same[:, 3] - same[:, 1]
    sw = same[:, 2] - same[:, 0]
    letter = (sw <= wide * sh) | (same[:, k.RUNS_H] >= np.maximum(2, runs * sw / np.maximum(sh, 1)))
    mh = float(np.median(sh))
    tol = max(1.0, align_tol * mh)
    tops = np.abs(same[:, 1] - np.median(same[:, 1])) <= tol
    bottoms = np.abs(same[:, 3] - np.median(same[:, 3])) <= tol
    sbox = (same[:, 0].min(), same[:, 1].min(), same[:, 2].max(), same[:, 3].max())
    order = np.argsort(same[:, 0], kind="stable")
    ends = np.maximum.accumulate(same[order, 2])
    gaps = (same[order[1:], 0] - ends[:-1]) / max(mh, 1.0) if len(same) > 1 else np.zeros(1)
    peak = float(np.median(same[:, k.PEAK]))
    height, width = box[3] - box[1], box[2] - box[0]
    top = int(sh.max())
    f = {
        "n": len(same), "top": top, "mh": mh, "height": height, "width": width,
        "aligned": float(np.mean(tops | bottoms)), "both": float(np.mean(tops & bottoms)),
        "peak": peak, "ticks": float(np.mean(sw < 0.3 * sh)),
        "fill": float(same[:, k.AREA].sum() / max(1, (sbox[2] - sbox[0]) * (sbox[3] - sbox[1]))),
        "letters": float(np.mean(letter)),
        "heights": float(np.std(sh) / max(float(np.mean(sh)), 1.0)),
        "colours": float(np.std(same[:, k.MODE])),
        "weakest": float(same[:, k.PEAK].min()), "strongest": float(same[:, k.PEAK].max()),
        "gap": float(np.median(gaps)), "widest_gap": float(gaps.max()),
        "source": int(rows[0, -1]), "level": level, "glyphs": len(members),
        "solid": float(np.median(same[:, k.AREA] / np.maximum(1, sh * sw))),
        "runs": float(np.mean(same[:, k.RUNS_H])), "flat": float(np.mean(same[:, k.FLAT])),
        "texture": float(np.median(same[:, -3])), "turned": int(turned),
        "snr": peak / (1.0 + float(np.median(same[:, -3]))),
        "stretch": height / max(top, 1), "drift": height / max(mh, 1.0), "aspect": width / max(top, 1),
    }
    return box, f


def _random_table(rng, n):  # type: ignore[no-untyped-def]
    x0 = rng.integers(0, 200, n)
    y0 = rng.integers(0, 50, n)
    w = rng.integers(1, 30, n)
    h = rng.integers(1, 30, n)
    area = np.minimum(w * h, rng.integers(1, 400, n))
    t = np.zeros((n, k.NSTAT + 3), np.int64)
    t[:, k.X0], t[:, k.Y0], t[:, k.X1], t[:, k.Y1] = x0, y0, x0 + w, y0 + h
    t[:, k.AREA] = area
    t[:, k.PEAK] = rng.integers(6, 256, n)
    t[:, k.CORE] = area
    t[:, k.MODE] = rng.integers(0, 256, n)
    t[:, k.FLAT] = rng.integers(0, 100, n)
    t[:, k.RUNS_H] = rng.integers(1, 6, n)
    t[:, k.RUNS_V] = rng.integers(1, 6, n)
    t[:, -3] = rng.integers(0, 30, n)
    t[:, -2] = rng.integers(0, 4, n)
    t[:, -1] = rng.integers(0, 3, n)
    if rng.random() < 0.3:  # ties: equal starts, equal heights
        t[:, k.X0] = t[0, k.X0]
        t[:, k.Y1] = t[:, k.Y0] + h[0]
    return t


def _check_chains(table, chains, turned):  # type: ignore[no-untyped-def]
    from medcloak.pixels import text as mt

    starts = np.zeros(len(chains) + 1, np.int64)
    np.cumsum([len(c) for c in chains], out=starts[1:])
    members = np.concatenate(chains).astype(np.int64) if chains else np.zeros(0, np.int64)
    boxes, x = k.chain_features(table, members, starts, turned, mt.WIDE, mt.RUNS, mt.ALIGN_TOL)
    assert x.shape == (len(chains), len(k.CHAIN_FEATURES))
    for c, chain in enumerate(chains):
        box, f = reference_chain_features(table, chain, bool(turned), mt.WIDE, mt.RUNS, mt.ALIGN_TOL)
        assert tuple(boxes[c]) == box
        assert np.allclose(x[c], [float(f[name]) for name in k.CHAIN_FEATURES]), c


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 40), nchains=st.integers(0, 6), turned=st.integers(0, 1))
def test_chain_features_match_reference(seed, n, nchains, turned) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    table = _random_table(rng, n)
    chains = [rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False) for _ in range(nchains)]
    _check_chains(table, chains, turned)


def test_chain_features_on_a_real_frame() -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    from medcloak.pixels import text as mt

    img = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm")).pixel_array
    table = mt._glyphs(mt._display(np.ascontiguousarray(img), None))
    chains = []
    for src in np.unique(table[:, -1]):
        chains += mt._chains(table, np.flatnonzero(table[:, -1] == src))
    assert len(chains) > 10
    _check_chains(table, chains, 0)


def test_chain_features_names_are_the_detectors() -> None:
    from medcloak.pixels import text as mt

    assert mt.FEATURES == k.CHAIN_FEATURES


def reference_median3(img):  # type: ignore[no-untyped-def]
    if img.size == 0:
        return img.copy()
    padded = np.pad(img, 1, mode="edge")
    ny, nx = img.shape
    return np.array([[np.median(padded[y:y + 3, x:x + 3]) for x in range(nx)] for y in range(ny)],
                    np.uint8).reshape(ny, nx)


@settings(max_examples=80, deadline=None)
@given(frames, st.booleans())
def test_median3_matches_the_median_of_each_window(spec, sparse) -> None:  # type: ignore[no-untyped-def]
    img = _frame(spec, sparse)
    assert np.array_equal(k.median3(img), reference_median3(img))


@pytest.mark.parametrize("img", EDGES)
def test_median3_on_edge_frames(img) -> None:  # type: ignore[no-untyped-def]
    assert np.array_equal(k.median3(img), reference_median3(img))


def test_median3_drops_speckle_and_keeps_strokes() -> None:
    img = np.zeros((9, 9), np.uint8)
    img[2, 2] = 255  # a speckle grain
    img[:, 6] = 200  # a stroke 2 px wide
    img[:, 7] = 200
    out = k.median3(img)
    assert out[2, 2] == 0 and (out[:, 6:8] == 200).all()
