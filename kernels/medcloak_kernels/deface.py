"""Per-voxel work of defacing: block means for the coarse analysis grid, and the face zone of the
full-resolution grid from world coordinates (no resampling of the image).

Blocks have an odd size and are anchored in world space (see ``medcloak.pixels.deface``), so the
same head stored flipped or in another axis order is cut into the same blocks."""

from __future__ import annotations

import numpy as np

import numba

from .jit import kernel, parallel_kernel, serial_copy


@kernel
def block_of(i: int, f: int, off: int) -> int:
    """The coarse index of full index ``i`` on an axis with blocks of ``f`` shifted by ``off``:
    blocks hold the indices i with equal (i + off) // f, numbered from 0."""
    return (i + off) // f - off // f


@parallel_kernel
def block_mean(data: np.ndarray, factors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of each block (see :func:`block_of`; partial blocks at the edges included). Slabs of
    blocks along the first axis are summed on several threads (each writes its own slab)."""
    nx, ny, nz = data.shape
    fx, fy, fz = factors[0], factors[1], factors[2]
    gx, gy, gz = offsets[0], offsets[1], offsets[2]
    ox = block_of(nx - 1, fx, gx) + 1
    oy = block_of(ny - 1, fy, gy) + 1
    oz = block_of(nz - 1, fz, gz) + 1
    cks = np.empty(nz, np.int64)
    # how many indices each block holds along the last two axes (partial blocks at the edges)
    nks = np.zeros(oz, np.int64)
    for k in range(nz):
        cks[k] = block_of(k, fz, gz)
        nks[cks[k]] += 1
    njs = np.zeros(oy, np.int64)
    for j in range(ny):
        njs[block_of(j, fy, gy)] += 1
    out = np.empty((ox, oy, oz), np.float32)
    for bi in numba.prange(ox):
        acc = np.zeros((oy, oz), np.float64)
        first = (bi + gx // fx) * fx - gx  # the first index of block bi (before clipping)
        lo, hi = max(first, 0), min(first + fx, nx)
        for i in range(lo, hi):
            for j in range(ny):
                bj = block_of(j, fy, gy)
                for k in range(nz):
                    acc[bj, cks[k]] += data[i, j, k]
        for j in range(oy):
            for k in range(oz):
                out[bi, j, k] = acc[j, k] / float((hi - lo) * njs[j] * nks[k])
    return out


@kernel
def row_span(base: float, slope: float, lo: float, hi: float, n: int) -> tuple[int, int]:
    """The indices k of [0, n) where lo < base + slope * k < hi may hold, as a half-open range
    a voxel wider than the planes either side (the caller's own sums round differently); all of
    them when the slope is 0, none as (n, 0)."""
    if abs(slope) < 1e-12:
        return 0, n
    a = (lo - base) / slope
    b = (hi - base) / slope
    if a > b:
        a, b = b, a
    a = max(a, -2.0)
    b = min(b, n + 2.0)
    k0 = max(0, int(np.floor(a)) - 1)
    k1 = min(n, int(np.ceil(b)) + 2)
    if k1 <= k0:
        return n, 0
    return k0, k1


@parallel_kernel
def face_zone(
    shape: np.ndarray,
    affine: np.ndarray,
    factors: np.ndarray,
    offsets: np.ndarray,
    start: np.ndarray,
    dist_sq: np.ndarray,
    head: np.ndarray,
    params: np.ndarray,
) -> tuple[np.ndarray, int]:
    """The voxels to remove, in the full grid of ``shape``.

    A voxel is removed when it lies at least ``margin`` from the brain estimate (``dist_sq``,
    squared millimetres on the coarse grid of :func:`block_mean`, cropped to begin at coarse
    index ``start``; voxels beyond the crop are far from it) and it is in the face zone: in front of the coronal plane
    ``front`` (world anterior coordinate) and below the axial plane ``top`` (world superior
    coordinate); or, with ``ears``, in the ear zone: beyond ``ear_x`` from the mid-sagittal
    plane ``mid_x``, between the axial planes ``ear_lo`` and ``ear_hi`` and the coronal planes
    ``ear_back`` and ``ear_front``.

    Whatever the margin, a voxel within one of the balls that follow in ``params`` (the eyes) is
    removed too.

    ``params``: margin, front, top, ears (0/1), mid_x, ear_x, ear_lo, ear_hi, ear_back, ear_front,
    bottom, then for each ball its centre (world x, y, z) and radius.

    Returns the mask and how many removed voxels lie in ``head`` (a coarse mask on the same
    cropped grid as ``dist_sq``).
    """
    nx, ny, nz = shape[0], shape[1], shape[2]
    fx, fy, fz = factors[0], factors[1], factors[2]
    gx, gy, gz = offsets[0], offsets[1], offsets[2]
    sx, sy, sz = start[0], start[1], start[2]
    cx, cy, cz = dist_sq.shape
    margin_sq = params[0] * params[0]
    front, top = params[1], params[2]
    ears = params[3] > 0.5
    mid_x, ear_x, ear_lo, ear_hi, ear_back, ear_front = params[4], params[5], params[6], params[7], params[8], params[9]
    bottom = params[10]
    balls = (params.shape[0] - 11) // 4
    # each ball's box of indices (the ball is an ellipsoid in index space: along index axis a it
    # reaches radius x the norm of row a of the inverse direction matrix): only voxels in a box
    # are measured against its ball
    inverse = np.linalg.inv(affine[:3, :3].copy())
    boxes = np.empty((max(balls, 1), 6), np.float64)
    for b in range(balls):
        for axis in range(3):
            centre = 0.0
            reach = 0.0
            for c in range(3):
                centre += inverse[axis, c] * (params[11 + 4 * b + c] - affine[c, 3])
                reach += inverse[axis, c] * inverse[axis, c]
            reach = np.sqrt(reach) * params[14 + 4 * b]
            boxes[b, 2 * axis] = centre - reach - 1e-6
            boxes[b, 2 * axis + 1] = centre + reach + 1e-6
    out = np.zeros((nx, ny, nz), np.bool_)
    counts = np.zeros(nx, np.int64)
    # the coarse index of every index along the last axis, computed once
    cks = np.empty(nz, np.int64)
    for k in range(nz):
        cks[k] = block_of(k, fz, gz) - sz
    for i in numba.prange(nx):
        bi = block_of(i, fx, gx) - sx
        # the balls whose box holds the row (i, j): only those are measured along it
        active = np.empty(max(balls, 1), np.int64)
        for j in range(ny):
            bj = block_of(j, fy, gy) - sy
            # only the row's span in the face zone, the balls' boxes and, with the ears, the whole
            # row can be removed: the rest of the row stays False unvisited
            ka0, ka1 = row_span(affine[1, 0] * i + affine[1, 1] * j + affine[1, 3], affine[1, 2], front, np.inf, nz)
            ks0, ks1 = row_span(affine[2, 0] * i + affine[2, 1] * j + affine[2, 3], affine[2, 2], bottom, top, nz)
            k0, k1 = max(ka0, ks0), min(ka1, ks1)
            if ears or k1 <= k0:
                k0, k1 = (0, nz) if ears else (nz, 0)
            n_active = 0
            for b in range(balls):
                if boxes[b, 0] <= i <= boxes[b, 1] and boxes[b, 2] <= j <= boxes[b, 3]:
                    active[n_active] = b
                    n_active += 1
                    k0 = min(k0, max(0, int(np.floor(boxes[b, 4]))))
                    k1 = max(k1, min(nz, int(np.ceil(boxes[b, 5])) + 1))
            for k in range(k0, k1):
                bk = cks[k]
                inside = 0 <= bi < cx and 0 <= bj < cy and 0 <= bk < cz
                ball = False
                for t in range(n_active):
                    b = active[t]
                    if boxes[b, 4] <= k <= boxes[b, 5]:
                        o = 11 + 4 * b
                        dx = affine[0, 0] * i + affine[0, 1] * j + affine[0, 2] * k + affine[0, 3] - params[o]
                        dy = affine[1, 0] * i + affine[1, 1] * j + affine[1, 2] * k + affine[1, 3] - params[o + 1]
                        dz = affine[2, 0] * i + affine[2, 1] * j + affine[2, 2] * k + affine[2, 3] - params[o + 2]
                        if dx * dx + dy * dy + dz * dz <= params[o + 3] * params[o + 3]:
                            ball = True
                if not ball and inside and dist_sq[bi, bj, bk] <= margin_sq:
                    continue
                x = affine[0, 0] * i + affine[0, 1] * j + affine[0, 2] * k + affine[0, 3]
                a = affine[1, 0] * i + affine[1, 1] * j + affine[1, 2] * k + affine[1, 3]
                s = affine[2, 0] * i + affine[2, 1] * j + affine[2, 2] * k + affine[2, 3]
                if ball or (a > front and bottom < s < top) or (
                    ears and abs(x - mid_x) > ear_x and ear_lo < s < ear_hi and ear_back < a < ear_front
                ):
                    out[i, j, k] = True
                    if inside and head[bi, bj, bk]:
                        counts[i] += 1
    return out, counts.sum()


#: the same kernels compiled without threads: on a volume of a few hundred thousand voxels (a 2 or
#: 3 mm head) starting and joining threads costs more than the work, and on a busy machine the
#: threads wait for each other (measured 4 ms serial against 31 ms on two threads for a 2 mm head's
#: face zone, load 2 on 2 cores; 110 ms against 170-200 ms for a 256^3 head, load 3)
_block_mean_serial = serial_copy(block_mean)
_face_zone_serial = serial_copy(face_zone)
#: volumes of fewer voxels than this take the serial kernels
SERIAL_BELOW = 1 << 22
#: and so do all volumes when numba has fewer threads than this: two threads gain at most 2x on
#: a quiet machine and lose more than that on a shared one
MIN_THREADS = 4


def _threaded(size: int) -> bool:
    return size >= SERIAL_BELOW and numba.get_num_threads() >= MIN_THREADS


def block_mean_sized(data: np.ndarray, factors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """:func:`block_mean`, on one thread for a volume smaller than :data:`SERIAL_BELOW` or when
    numba has fewer than :data:`MIN_THREADS` threads."""
    return (block_mean if _threaded(data.size) else _block_mean_serial)(data, factors, offsets)


def face_zone_sized(
    shape: np.ndarray, affine: np.ndarray, factors: np.ndarray, offsets: np.ndarray, start: np.ndarray,
    dist_sq: np.ndarray, head: np.ndarray, params: np.ndarray,
) -> tuple[np.ndarray, int]:
    """:func:`face_zone`, on one thread for a volume smaller than :data:`SERIAL_BELOW` or when
    numba has fewer than :data:`MIN_THREADS` threads."""
    fn = face_zone if _threaded(int(np.prod(shape))) else _face_zone_serial
    return fn(shape, affine, factors, offsets, start, dist_sq, head, params)
