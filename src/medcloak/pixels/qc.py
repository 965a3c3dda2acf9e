"""Quality-control pictures of a defaced volume, for the private audit folder (never the
release): the mid-sagittal slice before and after, and a rendering of the defaced head's surface
(marching cubes from scikit-image, shaded by depth and normal, orthographic, seen from the front
and from the side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _window(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.5])
    return (np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def _canonical(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The volume with its axes permuted and flipped to R, A, S order (no resampling)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    return nib.orientations.apply_orientation(volume, ornt)


def _sagittal(ras: np.ndarray) -> np.ndarray:
    """The mid-sagittal slice with superior up and anterior to the right."""
    return ras[ras.shape[0] // 2].T[::-1]


def _render(mask: np.ndarray, zooms: np.ndarray, view: str) -> np.ndarray:
    from skimage.measure import marching_cubes

    if mask.sum() == 0:
        return np.zeros((64, 64), np.uint8)
    verts, faces, normals, _ = marching_cubes(mask.astype(np.float32), 0.5, spacing=tuple(float(z) for z in zooms))
    # orthographic projection onto the plane of the two other axes, nearest surface wins
    depth_axis = {"front": 1, "side": 0}[view]  # looking along anterior (front) or right (side)
    u_axis, v_axis = [a for a in range(3) if a != depth_axis]  # v is superior (axis 2) in both
    span = verts.max(axis=0) - verts.min(axis=0)
    size = int(max(span[u_axis], span[v_axis]) / float(max(zooms))) + 1  # a pixel per coarse voxel
    scale = (size - 1) / max(span[u_axis], span[v_axis], 1e-6)
    u = ((verts[:, u_axis] - verts[:, u_axis].min()) * scale).astype(int)
    v = ((verts[:, v_axis] - verts[:, v_axis].min()) * scale).astype(int)
    d = verts[:, depth_axis]
    shade = np.abs(normals[:, depth_axis])
    zbuf = np.full((size, size), -np.inf)
    img = np.zeros((size, size))
    order = np.argsort(d)  # ascending depth: a later (nearer the viewer at +depth) vertex wins
    zbuf[v[order], u[order]] = d[order]
    img[v[order], u[order]] = 0.25 + 0.75 * shade[order]
    picture = (img[::-1] * 255).astype(np.uint8)
    return np.kron(picture, np.ones((2, 2), np.uint8))  # twice the size, for the eye


def nib_zooms(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes in R, A, S order."""
    import nibabel as nib

    from .deface import zooms_of

    ornt = nib.orientations.io_orientation(affine)
    zooms = zooms_of(affine)
    out = np.empty(3)
    for axis, (target, _flip) in enumerate(ornt):
        out[int(target)] = zooms[axis]
    return out


def qc_picture(before: np.ndarray, removed: np.ndarray | None, affine: np.ndarray, out: Path) -> Path:
    """Write the QC picture of one volume to ``out`` (PNG) and return its path."""
    from PIL import Image

    from .deface import _head

    after = before.copy()
    if removed is not None:
        after[removed] = float(np.percentile(before, 1))
    before_ras, after_ras = _canonical(before, affine), _canonical(after, affine)
    panels = [_window(_sagittal(before_ras)), _window(_sagittal(after_ras))]
    zooms = np.abs(nib_zooms(affine))
    step = max(1, int(round(2.0 / float(zooms.min()))))
    small = np.ascontiguousarray(after_ras[::step, ::step, ::step], dtype=np.float32)
    modality = "CT" if float(np.percentile(small, 5)) < -500 else "MR"
    head = _head(small, modality, zooms * step)
    for view in ("front", "side"):
        panels.append(_render(head, zooms * step, view))
    height = max(p.shape[0] for p in panels)
    row = [np.pad(p, ((0, height - p.shape[0]), (0, 4))) for p in panels]
    Image.fromarray(np.concatenate(row, axis=1)).save(out)
    out.chmod(0o600)
    return out
