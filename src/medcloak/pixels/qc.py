"""Quality-control pictures of a defaced volume, for the private audit folder (never the
release): what a curator reviews a release from.

One PNG per volume, left to right: three sagittal slices of the stored volume (through the middle
of the head and 20 % of its width either side of it, so that the orbits and temporal poles are
seen, not only the midline) with the removed region tinted red over the original, then the
defaced head's surface seen from the front and from the subject's right (the parts whose line of
sight crossed the removed region tinted red too). Anterior is to the right on the sagittal
slices and the side view, superior up; the panels have square pixels of the finest voxel size,
between 1 and 1.5 mm (a coarse volume's picture is enlarged only that far: the PNG's encoding
is a good part of the cost).

It must cost little beside the defacing it documents, so nothing is recomputed at full
resolution and nothing is meshed: the volume is only reoriented by views (no resampling), the
surfaces are the first voxel above the head's threshold along each line of sight on a grid of
about 3 mm (strided, not averaged), shaded by the slope of that depth map, and the slices are
read as they are. Removed tissue is red; removed background (the rest of the face zone) dark red.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: voxel size (mm) of the grid the surfaces are rendered from
RENDER_MM = 3.0
#: the largest pixel size (mm) of the picture
PIXEL_MM = 1.5
#: positions of the sagittal slices across the head's width (0 its right side, 1 its left)
SLICES = (0.3, 0.5, 0.7)
#: the tint of removed voxels (RGB added to the dimmed grey value)
RED = np.array([150.0, 0.0, 0.0], np.float32)


def _ras(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """``volume`` with its axes permuted and flipped to R, A, S order: a view, no copy."""
    import nibabel as nib

    return nib.orientations.apply_orientation(volume, nib.orientations.io_orientation(affine))


def ras_zooms(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes (mm) in R, A, S order."""
    import nibabel as nib

    zooms = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    out = np.empty(3)
    for axis, (target, _flip) in enumerate(nib.orientations.io_orientation(affine)):
        out[int(target)] = zooms[axis]
    return out


def _otsu(values: np.ndarray) -> float:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=128, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * centres)
    between = w0 * (w0[-1] - w0) * (m0 / np.maximum(w0, 1) - (m0[-1] - m0) / np.maximum(w0[-1] - w0, 1)) ** 2
    # the middle of the best splits: an empty gap between the classes is a plateau of them
    best = np.flatnonzero(between >= between.max() * 0.999)
    return float(centres[(best[0] + best[-1]) // 2])


def head_threshold(values: np.ndarray, modality: str) -> float:
    """The value above which a voxel is head (real-world units): -500 HU for CT, 5 % of the
    bright end for PET, half the Otsu split of the non-zero values for MR."""
    if modality == "CT":
        return -500.0
    positive = values[values > 0]
    if positive.size == 0:
        return float("inf")
    top = float(np.percentile(positive, 99.5))
    return 0.05 * top if modality == "PT" else 0.5 * _otsu(np.minimum(positive, top))


def _grey(plane: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((plane - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.float32)


def _tint(grey: np.ndarray, removed: np.ndarray | None) -> np.ndarray:
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if removed is not None and removed.any():
        rgb[removed] = rgb[removed] * 0.4 + RED
    return rgb


def _tint_removed(grey: np.ndarray, removed: np.ndarray | None, tissue: np.ndarray) -> np.ndarray:
    """``grey`` as RGB, removed tissue red, removed background dark red (the zone's extent)."""
    rgb = _tint(grey, removed & tissue if removed is not None else None)
    if removed is not None:
        air = removed & ~tissue
        rgb[air] = rgb[air] * 0.4 + RED * 0.35
    return rgb


def _upright(plane: np.ndarray) -> np.ndarray:
    """A plane indexed (horizontal, superior) as an image: superior up."""
    return np.swapaxes(plane, 0, 1)[::-1]


def _panel(rgb: np.ndarray, mm: tuple[float, float], pixel_mm: float) -> Any:
    """An (rows, columns, 3) picture whose pixels are ``mm`` (height, width), resized to square
    pixels of ``pixel_mm``."""
    from PIL import Image

    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    size = (max(1, round(img.width * mm[1] / pixel_mm)), max(1, round(img.height * mm[0] / pixel_mm)))
    return img.resize(size, Image.NEAREST) if size != img.size else img


def _surface(solid: np.ndarray, removed: np.ndarray | None, axis: int, zooms: np.ndarray) -> np.ndarray:
    """The surface of ``solid`` seen from its far end along ``axis`` (looking back towards index
    0): (horizontal, superior) grey levels shaded by the slope of the depth map, background 0;
    red where the line of sight crossed removed voxels."""
    def along(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each line of sight meets ``mask``, and where first (the line made the last,
        contiguous axis: one argmax)."""
        seen = np.ascontiguousarray(np.moveaxis(np.flip(mask, axis), axis, -1))
        return seen.any(axis=-1), seen.argmax(axis=-1)

    hit, first = along(solid)
    depth = first.astype(np.float32) * float(zooms[axis])
    far = float(depth[hit].max()) if hit.any() else 0.0
    depth[~hit] = far
    rest = [a for a in range(3) if a != axis]
    du, dv = np.gradient(depth, float(zooms[rest[0]]), float(zooms[rest[1]]))
    # light from the viewer, a little from above: Lambert on the depth map's normal
    light = np.array([0.0, 0.35, 1.0]) / np.hypot(0.35, 1.0)
    shade = (light[0] * du + light[1] * dv + light[2]) / np.sqrt(du * du + dv * dv + 1.0)
    grey = (0.25 + 0.75 * np.clip(shade, 0, 1)) * (1.0 - 0.4 * depth / max(far, 1e-6)) * 255.0
    grey[~hit] = 0
    crossed = None
    if removed is not None:  # removed voxels between the viewer and the surface
        met, first_removed = along(removed)
        crossed = met & hit & (first_removed < first)
    return _tint(grey.astype(np.float32), crossed)


def qc_picture(stored: np.ndarray, removed: np.ndarray | None, affine: np.ndarray, out: Path, *,
               scale: tuple[float, float] = (1.0, 0.0), modality: str = "MR") -> Path:
    """Write the QC picture of one volume to ``out`` (PNG, owner-only) and return its path.
    ``stored``: the volume before defacing (3-D, stored values, real-world units once multiplied
    by ``scale[0]`` and added ``scale[1]``); ``removed``: the voxels defacing replaced."""
    from PIL import Image

    slope, inter = float(scale[0]), float(scale[1])
    ras = _ras(stored, affine)
    gone = _ras(removed, affine) if removed is not None else None
    zooms = ras_zooms(affine)
    pixel_mm = float(np.clip(zooms.min(), 1.0, PIXEL_MM))
    steps = np.maximum(1, np.ceil(RENDER_MM / zooms - 0.25)).astype(int)  # 1 mm -> 3, 1.5 mm -> 2
    grid = tuple(slice(None, None, int(s)) for s in steps)
    small = ras[grid].astype(np.float32) * np.float32(slope) + np.float32(inter)
    small_gone = gone[grid] if gone is not None else None
    threshold = head_threshold(small[::2, ::2, ::2], modality)
    solid = small > threshold
    if small_gone is not None:
        solid &= ~small_gone
    xs = np.flatnonzero(solid.any(axis=(1, 2)))
    left, right = (int(xs[0]) * steps[0], int(xs[-1]) * steps[0]) if xs.size else (0, ras.shape[0] - 1)
    sparse = solid[::2, ::2, ::2]
    kept = small[::2, ::2, ::2][sparse] if sparse.any() else small.ravel()
    lo, hi = float(np.percentile(kept, 1)), float(np.percentile(kept, 99.5))
    panels = []
    for frac in SLICES:
        x = round(right - frac * (right - left))  # from the subject's right
        plane = np.asarray(ras[x], np.float32) * np.float32(slope) + np.float32(inter)
        rgb = _tint_removed(_grey(plane, lo, hi), np.asarray(gone[x]) if gone is not None else None, plane > threshold)
        panels.append(_panel(_upright(rgb), (zooms[2], zooms[1]), pixel_mm))
    render_mm = zooms * steps
    # the front seen from the anterior end (the subject's right on the viewer's left), the side
    # from the subject's right (anterior on the viewer's right)
    front = _surface(solid, small_gone, 1, render_mm)[::-1]
    side = _surface(solid, small_gone, 0, render_mm)
    panels.append(_panel(_upright(front), (render_mm[2], render_mm[0]), pixel_mm))
    panels.append(_panel(_upright(side), (render_mm[2], render_mm[1]), pixel_mm))
    height = max(p.height for p in panels)
    sheet = Image.new("RGB", (sum(p.width + 4 for p in panels), height))
    x = 0
    for p in panels:
        sheet.paste(p, (x, height - p.height))
        x += p.width + 4
    # owner-only from its creation: the picture shows the face
    with open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        sheet.save(fh, format="PNG", compress_level=1)
    out.chmod(0o600)  # a file that was there before keeps its mode through O_CREAT
    return out
