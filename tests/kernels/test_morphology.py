"""Morphology and defacing kernels against slow, obvious references on random and edge-case
volumes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak_kernels.deface import _block_mean_serial, _face_zone_serial, block_mean, face_zone, row_span
from medcloak_kernels.morphology import INF, edt_sq, extent, flood_from_border, label, largest


def reference_edt_sq(mask: np.ndarray, spacing) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Brute force: the squared distance to every True voxel, the least kept."""
    points = np.argwhere(mask) * np.asarray(spacing)
    out = np.full(mask.shape, INF)
    if len(points) == 0:
        return out
    for idx in itertools.product(*(range(n) for n in mask.shape)):
        d = ((points - np.asarray(idx) * np.asarray(spacing)) ** 2).sum(axis=1)
        out[idx] = d.min()
    return out


def neighbours(idx, shape):  # type: ignore[no-untyped-def]
    for axis in range(3):
        for step in (-1, 1):
            n = list(idx)
            n[axis] += step
            if 0 <= n[axis] < shape[axis]:
                yield tuple(n)


def reference_components(mask: np.ndarray) -> list[set]:
    """Connected components by repeated breadth-first search over a set of voxels."""
    left = {tuple(i) for i in np.argwhere(mask)}
    parts = []
    while left:
        seed = left.pop()
        part, frontier = {seed}, [seed]
        while frontier:
            v = frontier.pop()
            for n in neighbours(v, mask.shape):
                if n in left:
                    left.remove(n)
                    part.add(n)
                    frontier.append(n)
        parts.append(part)
    return parts


def reference_flood(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, bool)
    for part in reference_components(mask):
        if any(min(v) == 0 or any(v[a] == mask.shape[a] - 1 for a in range(3)) for v in part):
            for v in part:
                out[v] = True
    return out


volumes = st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7), st.floats(0.0, 0.6), st.integers(0, 2**31))


def _random(shape_density_seed):  # type: ignore[no-untyped-def]
    nx, ny, nz, density, seed = shape_density_seed
    rng = np.random.default_rng(seed)
    return rng.random((nx, ny, nz)) < density, rng


@settings(max_examples=60, deadline=None)
@given(volumes, st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0), st.floats(0.3, 3.0)))
def test_edt_matches_brute_force(vol, spacing) -> None:  # type: ignore[no-untyped-def]
    mask, _ = _random(vol)
    got = edt_sq(mask, np.array(spacing))
    ref = reference_edt_sq(mask, spacing)
    if not mask.any():
        assert (got >= INF).all()
    else:
        assert np.allclose(got, ref, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(volumes, st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0), st.floats(0.3, 3.0)))
def test_edt_threaded_passes_match_brute_force(vol, spacing) -> None:  # type: ignore[no-untyped-def]
    """Small volumes take the serial passes; the threaded ones (large volumes) give the same."""
    from medcloak_kernels import morphology

    mask, _ = _random(vol)
    saved = morphology.SERIAL_BELOW
    morphology.SERIAL_BELOW = 0
    try:
        got = edt_sq(mask, np.array(spacing))
    finally:
        morphology.SERIAL_BELOW = saved
    if mask.any():
        assert np.allclose(got, reference_edt_sq(mask, spacing), rtol=1e-9, atol=1e-9)
    else:
        assert (got >= INF).all()


@settings(max_examples=60, deadline=None)
@given(volumes, st.tuples(st.floats(0.3, 3.0), st.floats(0.3, 3.0), st.floats(0.3, 3.0)), st.floats(0.0, 40.0),
       st.booleans())
def test_bounded_edt_matches_brute_force(vol, spacing, bound, threads) -> None:  # type: ignore[no-untyped-def]
    """With a bound: the exact squared distance where it is at most the bound, INF elsewhere."""
    from medcloak_kernels import morphology

    mask, _ = _random(vol)
    saved = morphology.SERIAL_BELOW
    morphology.SERIAL_BELOW = 0 if threads else saved
    try:
        got = edt_sq(mask, np.array(spacing), bound)
    finally:
        morphology.SERIAL_BELOW = saved
    ref = reference_edt_sq(mask, spacing) if mask.any() else np.full(mask.shape, INF)
    within = ref <= bound
    assert np.allclose(got[within], ref[within], rtol=1e-9, atol=1e-9)
    assert (got[~within] >= INF).all()


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 1), (9, 1, 1), (3, 3, 3)])
def test_edt_edges(shape) -> None:  # type: ignore[no-untyped-def]
    full = np.ones(shape, bool)
    assert (edt_sq(full, np.ones(3)) == 0).all()
    one = np.zeros(shape, bool)
    one[(0,) * 3] = True
    assert np.allclose(edt_sq(one, np.array([1.0, 2.0, 3.0])), reference_edt_sq(one, (1.0, 2.0, 3.0)))


@settings(max_examples=60, deadline=None)
@given(volumes)
def test_labels_match_reference(vol) -> None:  # type: ignore[no-untyped-def]
    mask, _ = _random(vol)
    labels, sizes = label(mask)
    parts = reference_components(mask)
    assert len(sizes) - 1 == len(parts)
    assert sorted(sizes[1:].tolist()) == sorted(len(p) for p in parts)
    for part in parts:
        assert len({labels[v] for v in part}) == 1  # one label per component
    assert (labels[~mask] == 0).all() and (labels[mask] > 0).all()


@settings(max_examples=60, deadline=None)
@given(volumes)
def test_flood_matches_reference(vol) -> None:  # type: ignore[no-untyped-def]
    mask, _ = _random(vol)
    assert np.array_equal(flood_from_border(mask), reference_flood(mask))


def test_flood_keeps_an_enclosed_cavity_out() -> None:
    shell = np.ones((7, 7, 7), bool)
    shell[1:-1, 1:-1, 1:-1] = False
    shell[3, 3, 3] = True  # a cavity voxel of the "open" class, enclosed by a closed shell
    open_ = ~shell
    open_[3, 3, 3] = True
    flooded = flood_from_border(open_)
    assert not flooded[3, 3, 3] and not flooded.any()


def reference_blocks(n: int, f: int, off: int) -> list[list[int]]:
    """The indices of each block along one axis: grouped by (i + off) // f, in order."""
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault((i + off) // f, []).append(i)
    return [groups[key] for key in sorted(groups)]


@settings(max_examples=40, deadline=None)
@given(volumes, st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(-7, 7), st.integers(-7, 7), st.integers(-7, 7)))
def test_block_mean_matches_reference(vol, factors, offsets) -> None:  # type: ignore[no-untyped-def]
    _, rng = _random(vol)
    data = rng.normal(size=vol[:3]).astype(np.float32)
    got = block_mean(data, np.array(factors, np.int64), np.array(offsets, np.int64))
    # the serial copy (small volumes) is the same code: the same sums
    assert np.array_equal(got, _block_mean_serial(data, np.array(factors, np.int64), np.array(offsets, np.int64)))
    axes = [reference_blocks(n, f, o) for n, f, o in zip(data.shape, factors, offsets)]
    assert got.shape == tuple(len(a) for a in axes)
    for (i, bi), (j, bj), (k, bk) in itertools.product(*(enumerate(a) for a in axes)):
        block = data[np.ix_(bi, bj, bk)]
        assert got[i, j, k] == pytest.approx(float(block.mean()), rel=1e-5, abs=1e-6)


def reference_face_zone(shape, affine, factors, offsets, start, dist_sq, head, params):  # type: ignore[no-untyped-def]
    margin, front, top, ears, mid_x, ear_x, ear_lo, ear_hi, ear_back, ear_front, bottom = params[:11]
    balls = np.asarray(params[11:]).reshape(-1, 4)
    out = np.zeros(shape, bool)
    count = 0
    for idx in itertools.product(*(range(n) for n in shape)):
        coarse = tuple((i + o) // f - o // f - s for i, f, o, s in zip(idx, factors, offsets, start))
        inside = all(0 <= c < n for c, n in zip(coarse, dist_sq.shape))
        point = (affine @ np.array([*idx, 1.0]))[:3]
        ball = any(((point - b[:3]) ** 2).sum() <= b[3] ** 2 for b in balls)
        if not ball and inside and dist_sq[coarse] <= margin**2:
            continue
        x, a, s = point
        face = a > front and bottom < s < top
        ear = ears > 0.5 and abs(x - mid_x) > ear_x and ear_lo < s < ear_hi and ear_back < a < ear_front
        out[idx] = face or ear or ball
        count += int((face or ear or ball) and inside and bool(head[coarse]))
    return out, count


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.integers(2, 9), st.integers(1, 2), st.integers(0, 2**31), st.booleans(),
       st.booleans())
def test_face_zone_matches_reference(nx, ny, nz, f, seed, ears, aligned) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    affine[:3, :3] = rng.normal(size=(3, 3)) * 2  # oblique, any axis order
    if aligned:  # a permuted, flipped diagonal: the rows' slopes along the last axis are 0 or not
        affine[:3, :3] = np.eye(3)[rng.permutation(3)] * rng.choice([-1.0, 1.0], 3) * rng.uniform(0.5, 3, 3)
    affine[:3, 3] = rng.normal(size=3) * 5
    factors = np.array([f, f, 1], np.int64)
    offsets = rng.integers(-4, 5, 3).astype(np.int64)
    coarse = tuple(len(reference_blocks(n, g, o)) for n, g, o in zip((nx, ny, nz), factors, offsets))
    start = np.array([rng.integers(0, 2) for _ in range(3)], np.int64)  # a crop of the coarse grid
    crop = tuple(max(1, c - int(s) - int(rng.integers(0, 2))) for c, s in zip(coarse, start))
    dist_sq = (rng.random(crop) * 30).astype(np.float32)
    head = rng.random(crop) < 0.5
    balls = [[*(rng.normal(size=3) * 4), abs(rng.normal()) * 4] for _ in range(int(rng.integers(0, 5)))]
    params = np.array([2.0, rng.normal() * 3, rng.normal() * 3, float(ears), 0.0, 1.0, -5.0, 5.0, -5.0, 5.0,
                       rng.normal() * 3 - 3, *(v for b in balls for v in b)])
    got, count = face_zone(np.array([nx, ny, nz], np.int64), affine, factors, offsets, start, dist_sq, head, params)
    ref, ref_count = reference_face_zone((nx, ny, nz), affine, factors, offsets, start, dist_sq, head, params)
    assert np.array_equal(got, ref) and count == ref_count
    got, count = _face_zone_serial(np.array([nx, ny, nz], np.int64), affine, factors, offsets, start, dist_sq, head,
                                   params)
    assert np.array_equal(got, ref) and count == ref_count


def test_serial_copies_are_cached_under_their_own_names() -> None:
    """numba's disk cache keys a function by module, name and line, not by its options: a serial
    copy under the parallel kernel's name would load the threaded code (or the reverse)."""
    from medcloak_kernels import deface, morphology

    for parallel, serial in ((deface.block_mean, deface._block_mean_serial),
                             (deface.face_zone, deface._face_zone_serial),
                             (morphology._edt_axis1, morphology._edt_axis1_serial),
                             (morphology._binary_last_axis, morphology._binary_last_axis_serial)):
        assert parallel.targetoptions.get("parallel") and not serial.targetoptions.get("parallel")
        assert serial.py_func.__qualname__ == parallel.py_func.__qualname__ + "_serial"


@settings(max_examples=200, deadline=None)
@given(st.floats(-50, 50), st.floats(-3, 3), st.floats(-60, 60), st.floats(0, 60), st.integers(0, 40))
def test_row_span_holds_the_indices_inside(base, slope, lo, width, n) -> None:  # type: ignore[no-untyped-def]
    k0, k1 = row_span(base, slope, lo, lo + width, n)
    inside = [k for k in range(n) if lo < base + slope * k < lo + width]
    assert all(k0 <= k < k1 for k in inside)
    assert 0 <= k0 and k1 <= n or (k0, k1) == (n, 0)


@settings(max_examples=60, deadline=None)
@given(volumes)
def test_largest_is_the_biggest_component_first_among_equals(vol) -> None:  # type: ignore[no-untyped-def]
    mask, _ = _random(vol)
    got, size = largest(mask)
    parts = reference_components(mask)
    if not parts:
        assert not got.any() and size == 0
        return
    # the biggest; among equals the one whose first voxel (C order) comes first
    best = max(parts, key=lambda part: (len(part), -int(np.ravel_multi_index(min(part), mask.shape))))
    want = np.zeros(mask.shape, bool)
    for v in best:
        want[v] = True
    assert size == len(best) and np.array_equal(got, want)


def test_largest_edges() -> None:
    assert largest(np.zeros((1, 1, 1), bool))[1] == 0
    assert largest(np.ones((1, 1, 1), bool))[1] == 1
    two = np.zeros((1, 1, 5), bool)
    two[0, 0, [0, 2]] = True  # two single voxels: the first wins
    got, size = largest(two)
    assert size == 1 and got[0, 0, 0] and not got[0, 0, 2]


def reference_extent(mask: np.ndarray) -> np.ndarray:
    """The least and greatest index of the True voxels along each axis, from their list."""
    points = np.argwhere(mask)
    if len(points) == 0:
        return np.full((3, 2), -1)
    return np.stack([points.min(axis=0), points.max(axis=0)], axis=1)


@settings(max_examples=60, deadline=None)
@given(volumes)
def test_extent_matches_reference(vol) -> None:  # type: ignore[no-untyped-def]
    mask, _ = _random(vol)
    assert np.array_equal(extent(mask), reference_extent(mask))


def test_extent_edges() -> None:
    assert np.array_equal(extent(np.zeros((3, 4, 5), bool)), np.full((3, 2), -1))
    one = np.zeros((3, 4, 5), bool)
    one[2, 0, 4] = True
    assert np.array_equal(extent(one), [[2, 2], [0, 0], [4, 4]])
    assert np.array_equal(extent(np.ones((1, 1, 1), bool)), [[0, 0], [0, 0], [0, 0]])
    corners = np.zeros((4, 5, 6), bool)
    corners[0, 4, 2] = corners[3, 1, 0] = corners[1, 0, 5] = True
    assert np.array_equal(extent(corners), [[0, 3], [0, 4], [0, 5]])
