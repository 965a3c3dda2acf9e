"""Binary morphology on 3-D volumes: exact Euclidean distance transforms with anisotropic voxel
spacing (Felzenszwalb and Huttenlocher's lower envelope of parabolas, one axis after another),
6-connected component labelling, and flood fill from the volume's border."""

from __future__ import annotations

import numpy as np

import numba

from .jit import kernel, parallel_kernel, serial_copy

INF = 1e30


@kernel
def _edt_line(f: np.ndarray, n: int, step: float, out: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """Squared distance along one line: out[q] = min_p (q*step - p*step)^2 + f[p]."""
    k = -1
    for q in range(n):
        fq = f[q]
        if fq >= INF:
            continue
        if k < 0:
            k = 0
            v[0] = q
            z[0] = -INF
            z[1] = INF
            continue
        while True:
            p = v[k]
            qs = q * step
            ps = p * step
            s = ((fq + qs * qs) - (f[p] + ps * ps)) / (2.0 * (qs - ps))
            if s <= z[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        z[k] = s
        z[k + 1] = INF
    if k < 0:
        for q in range(n):
            out[q] = INF
        return
    k = 0
    for q in range(n):
        x = q * step
        while z[k + 1] < x:
            k += 1
        d = x - v[k] * step
        out[q] = d * d + f[v[k]]


@parallel_kernel
def _binary_last_axis(mask: np.ndarray, step: float, bound: float) -> np.ndarray:
    """The first pass, on a binary mask: squared distance to the nearest True voxel along the
    last axis by a forward and a backward scan (no parabolas needed); :data:`INF` beyond
    ``bound``."""
    nx, ny, nz = mask.shape
    d = np.empty((nx, ny, nz), np.float64)
    for i in numba.prange(nx):
        for j in range(ny):
            last = -1
            for k in range(nz):
                if mask[i, j, k]:
                    last = k
                d[i, j, k] = INF if last < 0 else (k - last) * step
            last = -1
            for k in range(nz - 1, -1, -1):
                if mask[i, j, k]:
                    last = k
                if last >= 0:
                    gap = (last - k) * step
                    if gap < d[i, j, k]:
                        d[i, j, k] = gap
                dist = d[i, j, k]
                d[i, j, k] = dist * dist if dist < INF and dist * dist <= bound else INF
    return d


@parallel_kernel
def _edt_axis1(d: np.ndarray, step: float, bound: float) -> None:
    """One pass along axis 1 of ``d`` (any strides: the other passes use transposed views), in
    place, each line gathered into a buffer (:data:`INF` beyond ``bound``; a line of
    :data:`INF` only is left as it is); independent lines on several threads."""
    na, nb, nc = d.shape
    for a in numba.prange(na):
        f = np.empty(nb, np.float64)
        out = np.empty(nb, np.float64)
        v = np.empty(nb, np.int64)
        z = np.empty(nb + 1, np.float64)
        for c in range(nc):
            empty = True
            for b in range(nb):
                f[b] = d[a, b, c]
                if f[b] < INF:
                    empty = False
            if empty:
                continue
            _edt_line(f, nb, step, out, v, z)
            for b in range(nb):
                d[a, b, c] = out[b] if out[b] <= bound else INF


#: the same passes compiled without threads: on a small volume (a coarse analysis grid) starting
#: and joining threads costs more than the work, and far more on a busy machine
_binary_last_axis_serial = serial_copy(_binary_last_axis)
_edt_axis1_serial = serial_copy(_edt_axis1)
#: volumes of fewer voxels than this take the serial passes
SERIAL_BELOW = 1 << 20


def edt_sq(mask: np.ndarray, spacing: np.ndarray, bound: float = INF) -> np.ndarray:
    """Squared Euclidean distance (in the units of ``spacing``) from every voxel to the nearest
    True voxel of ``mask`` (0 on it); :data:`INF` everywhere when the mask is empty, and wherever
    it exceeds ``bound`` (a caller that compares distances with a radius needs none beyond it:
    each pass adds to the last, so a partial sum beyond the bound is dropped early, and lines
    beyond it everywhere are skipped).

    One pass per axis: the first, along the contiguous last axis of the binary mask, is a plain
    scan; the others take the lower envelope of parabolas along each line. Volumes smaller than
    :data:`SERIAL_BELOW` voxels are done on one thread (the same code)."""
    serial = mask.size < SERIAL_BELOW
    first = _binary_last_axis_serial if serial else _binary_last_axis
    other = _edt_axis1_serial if serial else _edt_axis1
    bound = min(float(bound), INF)
    d = first(np.ascontiguousarray(mask, dtype=np.bool_), float(spacing[2]), bound)
    other(d, float(spacing[1]), bound)
    other(d.transpose(1, 0, 2), float(spacing[0]), bound)  # a view: axis 0 becomes axis 1
    return d


@numba.njit(inline="always")
def _spread(state, value, stack, top, sy, sx):  # type: ignore[no-untyped-def]
    """Depth-first spread from the flat indices on ``stack`` (``top`` the last) to every
    6-connected voxel whose ``state`` is negative (not yet reached), setting it to ``value``.
    ``state`` is a flat copy of a volume padded by a layer of 0, with strides ``sy`` (second axis)
    and ``sx`` (first axis): a neighbour is an index plus or minus 1, ``sy`` or ``sx``, with no
    bounds to check, no division and one load. Returns how many were taken off."""
    count = 0
    while top >= 0:
        idx = stack[top]
        top -= 1
        count += 1
        for n in (idx + 1, idx - 1, idx + sy, idx - sy, idx + sx, idx - sx):
            if state[n] < 0:
                state[n] = value
                top += 1
                stack[top] = n
    return count


@numba.njit(inline="always")
def _components(mask):  # type: ignore[no-untyped-def]
    """The labelling of :func:`label` on the padded flat copy: (state, labels 1.. of the mask's
    voxels and 0 elsewhere; sizes; strides sy, sx)."""
    nx, ny, nz = mask.shape
    sy = nz + 2
    sx = (ny + 2) * sy
    state = np.zeros((nx + 2) * sx, np.int32)
    n = 0
    for i in range(nx):
        for j in range(ny):
            base = (i + 1) * sx + (j + 1) * sy + 1
            for k in range(nz):
                if mask[i, j, k]:
                    state[base + k] = -1
                    n += 1
    stack = np.empty(max(n, 1), np.int64)  # each voxel is pushed once
    sizes = [0]
    current = 0
    for i in range(nx):
        for j in range(ny):
            base = (i + 1) * sx + (j + 1) * sy + 1
            for k in range(nz):
                idx = base + k
                if state[idx] < 0:
                    current += 1
                    state[idx] = current
                    stack[0] = idx
                    sizes.append(_spread(state, current, stack, 0, sy, sx))
    return state, np.array(sizes, np.int64), sy, sx


@kernel
def label(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """6-connected components of ``mask``: (labels, 0 outside the mask and 1.. inside, numbered
    in the order of their first voxel; sizes, where sizes[l] counts the voxels of label l and
    sizes[0] is 0)."""
    nx, ny, nz = mask.shape
    state, sizes, sy, sx = _components(mask)
    labels = np.empty((nx, ny, nz), np.int32)
    for i in range(nx):
        for j in range(ny):
            base = (i + 1) * sx + (j + 1) * sy + 1
            for k in range(nz):
                labels[i, j, k] = state[base + k]
    return labels, sizes


@kernel
def largest(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest 6-connected component of ``mask`` (the first in the order of :func:`label`
    among equals) and its size; all False and 0 for an empty mask."""
    nx, ny, nz = mask.shape
    state, sizes, sy, sx = _components(mask)
    out = np.zeros((nx, ny, nz), np.bool_)
    if sizes.shape[0] <= 1:
        return out, 0
    best = np.int32(np.argmax(sizes))
    for i in range(nx):
        for j in range(ny):
            base = (i + 1) * sx + (j + 1) * sy + 1
            for k in range(nz):
                out[i, j, k] = state[base + k] == best
    return out, int(sizes[best])


@kernel
def flood_from_border(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` 6-connected to a voxel of ``mask`` on the volume's border.

    The volume is padded by two layers: the inner one is part of the mask and joins every
    border voxel of ``mask`` to one seed, the outer one not (no bounds to check)."""
    nx, ny, nz = mask.shape
    sy = nz + 4
    sx = (ny + 4) * sy
    total = (nx + 4) * sx
    state = np.zeros(total, np.int8)
    n = 0
    for i in range(-1, nx + 1):
        for j in range(-1, ny + 1):
            base = (i + 2) * sx + (j + 2) * sy + 2
            for k in range(-1, nz + 1):
                if i < 0 or j < 0 or k < 0 or i >= nx or j >= ny or k >= nz or mask[i, j, k]:
                    state[base + k] = -1
                    n += 1
    stack = np.empty(n, np.int64)
    seed = sx + sy + 1  # a corner of the inner layer
    state[seed] = 1
    stack[0] = seed
    _spread(state, np.int8(1), stack, 0, sy, sx)
    out = np.empty((nx, ny, nz), np.bool_)
    for i in range(nx):
        for j in range(ny):
            base = (i + 2) * sx + (j + 2) * sy + 2
            for k in range(nz):
                out[i, j, k] = state[base + k] == 1
    return out


@kernel
def extent(mask: np.ndarray) -> np.ndarray:
    """The first and last index of ``mask``'s True voxels along each axis, as rows (first, last)
    of a 3 x 2 array, in one pass over the volume; rows (-1, -1) for an empty mask."""
    nx, ny, nz = mask.shape
    out = np.empty((3, 2), np.int64)
    out[:, 0] = np.iinfo(np.int64).max
    out[:, 1] = -1
    for i in range(nx):
        for j in range(ny):
            first = -1
            last = -1
            for k in range(nz):
                if mask[i, j, k]:
                    if first < 0:
                        first = k
                    last = k
            if first < 0:
                continue
            out[0, 0] = min(out[0, 0], i)
            out[0, 1] = max(out[0, 1], i)
            out[1, 0] = min(out[1, 0], j)
            out[1, 1] = max(out[1, 1], j)
            out[2, 0] = min(out[2, 0], first)
            out[2, 1] = max(out[2, 1], last)
    if out[0, 1] < 0:
        out[:, 0] = -1
    return out
