"""Binary morphology on 3-D volumes: exact Euclidean distance transforms with anisotropic voxel
spacing (Felzenszwalb and Huttenlocher's lower envelope of parabolas, one axis after another),
6-connected component labelling, and flood fill from the volume's border."""

from __future__ import annotations

import numpy as np

from .jit import kernel

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


@kernel
def _edt_last_axis(d: np.ndarray, step: float) -> None:
    """One pass of the transform along the last (contiguous) axis of ``d``, in place."""
    nx, ny, nz = d.shape
    out = np.empty(nz, np.float64)
    v = np.empty(nz, np.int64)
    z = np.empty(nz + 1, np.float64)
    for i in range(nx):
        for j in range(ny):
            line = d[i, j]
            _edt_line(line, nz, step, out, v, z)
            line[:] = out


@kernel
def _binary_last_axis(mask: np.ndarray, step: float) -> np.ndarray:
    """The first pass, on a binary mask: squared distance to the nearest True voxel along the
    last axis by a forward and a backward scan (no parabolas needed)."""
    nx, ny, nz = mask.shape
    d = np.empty((nx, ny, nz), np.float64)
    for i in range(nx):
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


def edt_sq(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance (in the units of ``spacing``) from every voxel to the nearest
    True voxel of ``mask`` (0 on it); :data:`INF` everywhere when the mask is empty.

    One pass per axis, each along contiguous memory (the array is transposed between passes,
    which costs far less than walking it with a stride); the first pass, on the binary mask, is
    a plain scan."""
    d = _binary_last_axis(np.ascontiguousarray(mask, dtype=np.bool_), float(spacing[2]))
    d = np.ascontiguousarray(d.transpose(0, 2, 1))  # (x, z, y)
    _edt_last_axis(d, float(spacing[1]))
    d = np.ascontiguousarray(d.transpose(2, 1, 0))  # (y, z, x)
    _edt_last_axis(d, float(spacing[0]))
    return np.ascontiguousarray(d.transpose(2, 0, 1))  # back to (x, y, z)


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
                top = 0
                stack[0] = (i0 * ny + j0) * nz + k0
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
                        if 0 <= a < nx and 0 <= b < ny and 0 <= c < nz and mask[a, b, c] and not labels[a, b, c]:
                            labels[a, b, c] = current
                            top += 1
                            stack[top] = (a * ny + b) * nz + c
                sizes.append(count)
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
    while top >= 0:
        idx = stack[top]
        top -= 1
        k = idx % nz
        j = (idx // nz) % ny
        i = idx // (ny * nz)
        for di, dj, dk in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            a, b, c = i + di, j + dj, k + dk
            if 0 <= a < nx and 0 <= b < ny and 0 <= c < nz and mask[a, b, c] and not out[a, b, c]:
                out[a, b, c] = True
                top += 1
                stack[top] = (a * ny + b) * nz + c
    return out
