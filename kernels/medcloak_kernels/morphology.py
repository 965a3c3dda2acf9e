"""Binary morphology on 3-D volumes: exact Euclidean distance transforms with anisotropic voxel
spacing (Felzenszwalb and Huttenlocher's lower envelope of parabolas, one axis after another),
6-connected component labelling, and flood fill from the volume's border."""

from __future__ import annotations

import numpy as np

import numba

from .jit import kernel, parallel_kernel

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
def _binary_last_axis(mask: np.ndarray, step: float) -> np.ndarray:
    """The first pass, on a binary mask: squared distance to the nearest True voxel along the
    last axis by a forward and a backward scan (no parabolas needed)."""
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
                d[i, j, k] = dist * dist if dist < INF else INF
    return d


@parallel_kernel
def _edt_axis1(d: np.ndarray, step: float) -> None:
    """One pass along axis 1 of ``d`` (any strides: the other passes use transposed views), in
    place, each line gathered into a buffer; independent lines on several threads."""
    na, nb, nc = d.shape
    for a in numba.prange(na):
        f = np.empty(nb, np.float64)
        out = np.empty(nb, np.float64)
        v = np.empty(nb, np.int64)
        z = np.empty(nb + 1, np.float64)
        for c in range(nc):
            for b in range(nb):
                f[b] = d[a, b, c]
            _edt_line(f, nb, step, out, v, z)
            for b in range(nb):
                d[a, b, c] = out[b]


#: the same passes compiled without threads: on a small volume (a coarse analysis grid) starting
#: and joining threads costs more than the work, and far more on a busy machine
_binary_last_axis_serial = kernel(_binary_last_axis.py_func)
_edt_axis1_serial = kernel(_edt_axis1.py_func)
#: volumes of fewer voxels than this take the serial passes
SERIAL_BELOW = 1 << 20


def edt_sq(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance (in the units of ``spacing``) from every voxel to the nearest
    True voxel of ``mask`` (0 on it); :data:`INF` everywhere when the mask is empty.

    One pass per axis: the first, along the contiguous last axis of the binary mask, is a plain
    scan; the others take the lower envelope of parabolas along each line. Volumes smaller than
    :data:`SERIAL_BELOW` voxels are done on one thread (the same code)."""
    serial = mask.size < SERIAL_BELOW
    first = _binary_last_axis_serial if serial else _binary_last_axis
    other = _edt_axis1_serial if serial else _edt_axis1
    d = first(np.ascontiguousarray(mask, dtype=np.bool_), float(spacing[2]))
    other(d, float(spacing[1]))
    other(d.transpose(1, 0, 2), float(spacing[0]))  # a view: axis 0 becomes axis 1
    return d


@numba.njit(inline="always")
def _spread(mask, marks, value, stack, top):  # type: ignore[no-untyped-def]
    """Depth-first spread from the voxels on ``stack`` (``top`` the last) to every 6-connected
    voxel of ``mask`` not yet marked, marking it ``value``. Returns how many were taken off."""
    nx, ny, nz = mask.shape
    count = 0
    while top >= 0:
        idx = stack[top]
        top -= 1
        count += 1
        k = idx % nz
        j = (idx // nz) % ny
        i = idx // (ny * nz)
        for di, dj, dk in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            a, b, c = i + di, j + dj, k + dk
            if 0 <= a < nx and 0 <= b < ny and 0 <= c < nz and mask[a, b, c] and not marks[a, b, c]:
                marks[a, b, c] = value
                top += 1
                stack[top] = (a * ny + b) * nz + c
    return count


@kernel
def label(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """6-connected components of ``mask``: (labels, 0 outside the mask and 1.. inside; sizes,
    where sizes[l] counts the voxels of label l and sizes[0] is 0)."""
    nx, ny, nz = mask.shape
    labels = np.zeros((nx, ny, nz), np.int32)
    stack = np.empty(nx * ny * nz, np.int64)
    sizes = [0]
    current = 0
    for i0 in range(nx):
        for j0 in range(ny):
            for k0 in range(nz):
                if not mask[i0, j0, k0] or labels[i0, j0, k0]:
                    continue
                current += 1
                labels[i0, j0, k0] = current
                stack[0] = (i0 * ny + j0) * nz + k0
                sizes.append(_spread(mask, labels, current, stack, 0))
    return labels, np.array(sizes, np.int64)


@kernel
def flood_from_border(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` 6-connected to a voxel of ``mask`` on the volume's border."""
    nx, ny, nz = mask.shape
    out = np.zeros((nx, ny, nz), np.bool_)
    stack = np.empty(nx * ny * nz, np.int64)
    top = -1
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if (i == 0 or j == 0 or k == 0 or i == nx - 1 or j == ny - 1 or k == nz - 1) and mask[i, j, k]:
                    out[i, j, k] = True
                    top += 1
                    stack[top] = (i * ny + j) * nz + k
    _spread(mask, out, True, stack, top)
    return out
