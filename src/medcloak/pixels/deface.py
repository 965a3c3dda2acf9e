"""Registration-free, atlas-free defacing of head CT, MR and PET volumes.

The image is never resampled: directions come from the affine (voxel indices to world RAS
millimetres), so any axis order, oblique or gantry-tilted grid is handled as it is. The analysis
runs on a coarse grid (blocks of about 3 mm, by block means); only the final face zone is decided
per voxel of the full grid, by :func:`medcloak_kernels.deface.face_zone`.

1. **Head**: voxels above a head threshold, minus the background connected to the volume's
   border, largest component.
2. **Brain estimate**, by modality. MR: head tissue above the within-head Otsu threshold,
   eroded until the largest component is brain-sized (the dark skull parts it from scalp and
   orbits), grown back, holes filled. CT: 0-90 HU inside the skull, likewise. PET: the hot region
   (above 40 % of the 99.5th percentile), holes filled.
3. **Face zone**: every voxel at least ``margin`` millimetres from the brain estimate that lies
   in front of the coronal plane ``behind_pole_mm`` (55 mm: further back, the zone's back
   plane cuts the temporal poles and the floor of the brain that a slightly small estimate
   misses) behind the frontal pole,
   above the axial plane ``below_pole_mm`` (160 mm) below it (the chin is 110-130 mm below the
   brows: a whole-body scan keeps the front of its neck and trunk) and
   below the axial plane a little above the brain's frontal pole. The margin (9 mm on MR, 5 mm
   on CT and PET) is wide enough for an estimate that misses a little of the blurred underside
   of the frontal lobe; the eye globe, which lies only 1-5 mm under the orbitofrontal cortex, is
   then removed on its own: on each side, in the orbit's box below and behind the frontal pole,
   the darkest spot against its surroundings (MR: vitreous in orbital fat) or the spot most like
   vitreous amid fat (CT), a ball of 12 mm, and the same ball 12 mm in front of it (cornea and
   lids). MR balls may reach into the estimate's edge (it holds the orbits of a blurred head),
   CT balls stop short of the estimate. PET shows no globe: its eyes go with the face zone.
   Optionally the ears: lateral to the brain by the margin, at the level of the temporal lobes.
   Lengths along the head (these planes, the brain's reach below the vertex, the erosions) and
   the plausible brain volumes scale with the head's breadth: a child's head (head circumference
   from 40 cm) is defaced by a child's measures, not refused by an adult's.
4. **Fail closed**: a brain estimate of implausible volume, one touching the head's surface, or a
   removed volume out of range raises :class:`DeidentificationError`. A CT or PET volume with
   nothing brain-like (a body without its head in the field of view) is reported ``no-head``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import DeidentificationError

MODALITIES = ("MR", "CT", "PT")
#: plausible brain estimate (ml) of an adult-sized head (scaled by the cube of the head's size,
#: :func:`_size`); the lower bound for PET is the hot grey matter only
BRAIN_ML = {"MR": (550.0, 2100.0), "CT": (550.0, 2100.0), "PT": (350.0, 2500.0)}
ANALYSIS_MM = 3.0
#: voxel sizes (mm) a volume to deface may have: beyond them its affine is broken, not a head's
#: (a zero, huge or non-finite voxel size sent the coarse grid's kernels out of their arrays)
ZOOM_MM = (1e-3, 1e3)
CLOSING_MM = 8.0
#: the brain lies within this distance below the top of the head (vertex to foramen magnum is
#: about 120-130 mm in adults)
BRAIN_REACH_MM = 150.0
#: an adult head's breadth (mm) in the slab :data:`BREADTH_SLAB_MM` below its top; lengths and
#: volumes of the analysis scale with the head's breadth over this
ADULT_BREADTH_MM = 155.0
BREADTH_SLAB_MM = 60.0
SIZE_RANGE = (0.5, 1.3)


@dataclass
class DefaceResult:
    status: str  # "defaced" | "no-head"
    mask: np.ndarray | None  # voxels to remove (full grid)
    brain_ml: float = 0.0
    head_ml: float = 0.0
    removed_ml: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def zooms_of(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    if values.size == 0:  # nothing below the first split: a volume of two values
        return 0.0
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centers[int(np.argmax(between))])


def _largest(mask: np.ndarray) -> np.ndarray:
    return _largest_sized(mask)[0]


def _largest_sized(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The largest component and its voxel count (the labelling counts it: no pass to sum it)."""
    from medcloak_kernels.morphology import largest

    return largest(np.ascontiguousarray(mask))


def _fill(mask: np.ndarray) -> np.ndarray:
    from medcloak_kernels.morphology import flood_from_border

    return ~flood_from_border(np.ascontiguousarray(~mask))


def _dist_sq(mask: np.ndarray, zooms: np.ndarray, bound: float = float("inf")) -> np.ndarray:
    """Squared distance (mm^2) to ``mask``; beyond ``bound``, only known to lie beyond it (a
    bounded transform skips the lines and partial sums beyond it: see ``edt_sq``)."""
    from medcloak_kernels.morphology import edt_sq

    return edt_sq(np.ascontiguousarray(mask), zooms.astype(np.float64), bound)


def _grow(mask: np.ndarray, mm: float, zooms: np.ndarray) -> np.ndarray:
    return _dist_sq(mask, zooms, mm * mm) <= mm * mm


def _shrink(mask: np.ndarray, mm: float, zooms: np.ndarray) -> np.ndarray:
    return _dist_sq(~mask, zooms, mm * mm) > mm * mm


def _head(v: np.ndarray, modality: str, zooms: np.ndarray) -> np.ndarray:
    """Head (and body) voxels: above the head threshold, closed by 8 mm so that the dark skull,
    sinuses and airways that open to the outside do not let the background in between scalp and
    brain, holes filled, largest component."""
    if modality == "CT":
        threshold = -500.0
    else:
        nonzero = v[v > 0]
        if nonzero.size == 0:
            return np.zeros(v.shape, bool)
        top = float(np.percentile(nonzero, 99.5))
        threshold = 0.5 * _otsu(np.clip(v, 0, top)) if modality == "MR" else 0.05 * top
    bright = _largest(v > threshold)
    out = np.zeros(v.shape, bool)
    if not bright.any():
        return out
    # the closing reaches CLOSING_MM beyond the bright voxels: it is worked out in their box
    # widened by that and a voxel, whose outer layer is then background (as is all beyond it,
    # joined to the border), so the fills and distances in the box are those of the whole grid
    reach = np.ceil(CLOSING_MM / zooms).astype(np.int64) + 1
    box = tuple(slice(max(0, int(a - r)), int(b + r + 1)) for (a, b), r in zip(_extent(bright), reach))
    bright = np.ascontiguousarray(bright[box])
    closed = _fill(_grow(bright, CLOSING_MM, zooms))
    head = _shrink(closed, CLOSING_MM, zooms)
    out[box] = _fill(_largest(head | bright))
    return out


def _shrink_one(mask: np.ndarray) -> np.ndarray:
    """``mask`` without the voxels that have a 6-neighbour outside it (or on the border)."""
    inner = mask.copy()
    inner[0] = inner[-1] = False
    inner[:, 0] = inner[:, -1] = False
    inner[:, :, 0] = inner[:, :, -1] = False
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[:, :, 1:] &= mask[:, :, :-1]
    inner[:, :, :-1] &= mask[:, :, 1:]
    return inner


def _touch_fraction(
    brain: np.ndarray, outside_sq: np.ndarray, zooms: np.ndarray, front: np.ndarray | None = None
) -> float:
    """Share of the brain estimate's surface voxels within 3 mm of the outside of the head (or,
    on its front half ``front``, within 6 mm: forehead scalp and skull are thicker, the eyes and
    nose lie just under the skin): small for a brain (notches such as the ear canals come close
    in places), large for an estimate that has leaked into scalp, orbits or face."""
    surface = brain & ~_shrink_one(brain)
    if not surface.any():
        return 1.0
    near = outside_sq < 9.0
    if front is not None:
        near |= front & (outside_sq < TOUCH_BOUND_SQ)
    return float(near[surface].mean())


#: the least share of the head's top (within the brain's reach) an MR or CT brain estimate fills
#: (adults and the child's head here: 0.4-0.6)
MIN_SHARE = 0.25
#: the least distance (mm) of the face zone from the brain estimate: wide on MR, whose estimate can
#: miss the blurred underside of the frontal lobe (the eyes, found on their own, go whatever
#: the margin); CT and PET estimates (0-90 HU inside the skull; the hot region grown by the
#: scanner's blur) reach the brain's surface
MARGIN_MM = {"MR": 9.0, "CT": 5.0, "PT": 5.0}
#: radius of the eye globe removed (mm, times the head's size): an adult globe is 24 mm across
EYE_MM = 12.0
#: how far (mm, times the head's size) in front of the globe's centre a second ball of
#: :data:`EYE_MM` removes the cornea and the lids (the corneal apex lies about 12 mm in front of it)
EYE_FRONT_MM = 12.0
#: the part of the brain estimate no eye ball may reach into by more than 2 mm: the estimate shrunk
#: by this (mm; see :func:`_eyes`)
EYE_GUARD_MM = 8.0
#: tissue thresholds tried, as fractions of the second Otsu split, from the most inclusive
FRACTIONS = (0.6, 0.8, 1.0, 1.2, 1.4, 1.6)
#: the most of its surface a brain estimate may have within 3 mm of the outside of the head
TOUCH = 0.005
#: the same for PET, whose estimate is grown by the scanner's blur and comes closer to the scalp
PET_TOUCH = 0.05
#: the farthest squared distance (mm^2) from the outside of the head that :func:`_touch_fraction`
#: looks at: its distance transform need not go further
TOUCH_BOUND_SQ = 36.0
#: erosions tried (mm) to part the brain from the scalp, from the least
EROSIONS = (3.0, 4.5, 6.0, 7.5, 9.0, 11.0, 13.0)


def _coordinate(shape: tuple[int, ...], affine: np.ndarray, axis: int) -> np.ndarray:
    """World coordinate ``axis`` (0 right, 1 anterior, 2 superior; mm) of every voxel (read-only:
    the analysis asks for the same grids several times, and gets the one computed first)."""
    row = np.asarray(affine, np.float64)[axis]
    return _coordinate_of(tuple(int(n) for n in shape), tuple(float(c) for c in row[:4]))


@lru_cache(maxsize=8)
def _coordinate_of(shape: tuple[int, ...], row: tuple[float, ...]) -> np.ndarray:
    i, j, k = np.ogrid[: shape[0], : shape[1], : shape[2]]
    out = (row[0] * i + row[1] * j + row[2] * k + row[3]).astype(np.float32)
    out.flags.writeable = False
    return out


def _size(head: np.ndarray, affine: np.ndarray) -> float:
    """The head's size relative to an adult's: its left-right breadth (world x extent) within
    :data:`BREADTH_SLAB_MM` below its top, over :data:`ADULT_BREADTH_MM`, within
    :data:`SIZE_RANGE` (the slab is scaled by a first estimate of the size). A child's head
    (head circumference 40 cm) gives about 0.7; the body below a head (shoulders) lies further down
    than the slab."""
    if not head.any():
        return 1.0
    height = _coordinate(head.shape, affine, 2)
    top = float(height[head].max())
    x = _coordinate(head.shape, affine, 0)
    size = 1.0
    for _ in range(2):  # the slab scales with the head too
        inside = x[head & (height > top - BREADTH_SLAB_MM * size)]
        size = float(np.clip((inside.max() - inside.min()) / ADULT_BREADTH_MM, *SIZE_RANGE))
    return size


def _brain(
    v: np.ndarray, head: np.ndarray, modality: str, zooms: np.ndarray, voxel_ml: float, affine: np.ndarray,
    size: float = 1.0,
) -> tuple[np.ndarray, float] | None:
    """The brain estimate and the volume (ml) that passed the plausibility test (before the
    thin cortex is taken back), or None when no candidate is plausible. Candidates lie within
    :data:`BRAIN_REACH_MM` below the top of the head: the neck never joins them. Volume bounds,
    reach and erosions scale with the head's ``size`` (see :func:`_size`): a child's head is
    judged by a child's measures."""
    lo, hi = (b * size**3 for b in BRAIN_ML[modality])
    outside_sq = _dist_sq(~head, zooms, TOUCH_BOUND_SQ)
    height = _coordinate(v.shape, affine, 2)
    head = head & (height > float(height[head].max()) - BRAIN_REACH_MM * size) if head.any() else head
    if modality != "PT":
        # the brain fills a good part of the head's top: a blob deep in a block of tissue does not
        lo = max(lo, MIN_SHARE * float(np.count_nonzero(head)) * voxel_ml)
    if modality == "PT":
        # the hot region, grown by 6 mm: the scanner's resolution (6-8 mm) blurs the brain's
        # edge, so a threshold at 40 % of the peak lies inside it
        top = float(np.percentile(v[head], 99.5)) if head.any() else 0.0
        hot = _fill(_largest(head & (v > 0.4 * top)))
        ml = float(np.count_nonzero(hot)) * voxel_ml
        return _fill(_grow(hot, 6.0, zooms) & head), ml
    if modality == "CT":
        tissues = [head & (v > -10) & (v < 90)]
        second = 0.0
        tissue_floor = -20.0  # the take-back below: fluid and soft tissue, not air or fat
    else:
        # two Otsu splits: the first parts white from grey matter, the second (below it) grey
        # matter from CSF and bone; a range of thresholds around the second is tried
        inside = v[head]
        second = _otsu(inside[inside < _otsu(inside)])
        tissues = [head & (v > f * second) for f in FRACTIONS]
        tissue_floor = 0.5 * FRACTIONS[0] * second
    start = (0, 0)
    if modality == "MR" and float(zooms.max()) <= 3.5 and v.size > 100_000:
        # find the first plausible candidate on a grid twice as coarse (an eighth of the voxels),
        # then search this grid from the threshold before it (the coarser grid finds its
        # candidate a threshold late at most on the heads tried): fewer distance transforms on
        # this grid; a search that finds nothing from there starts again from the first
        v2, head2, zooms2, affine2 = _halve(v, head, zooms, affine)
        tissues2 = [head2 & (v2 > f * second) for f in FRACTIONS]
        hit = _first(v2, head2, tissues2, zooms2, voxel_ml * 8, affine2, lo, hi, size, (0, 0))
        if hit is not None:
            start = (max(0, hit[0] - 1), 0)
    found = _first(v, head, tissues, zooms, voxel_ml, affine, lo, hi, size, start, outside_sq)
    if found is None and start != (0, 0):
        found = _first(v, head, tissues, zooms, voxel_ml, affine, lo, hi, size, (0, 0), outside_sq)
    if found is None:
        return None
    brain, ml = found[2], found[3]
    # the erosion cost the thin parts of the cortex: take back the tissue within 3 mm of the
    # estimate (the skull keeps the scalp further away than that)
    near = _grow(brain, 3.0, zooms) & head & (v > tissue_floor)
    return _fill(brain | near), ml


def _halve(
    v: np.ndarray, head: np.ndarray, zooms: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``v`` and ``head`` on a grid of blocks of 2 x 2 x 2 voxels (means; a head block is at least
    half head), with its voxel size and affine."""
    pad = [(0, n % 2) for n in v.shape]
    vv = np.pad(v, pad, mode="edge")
    hh = np.pad(head.astype(np.float32), pad)
    shape = [n // 2 for n in vv.shape]

    def mean(a: np.ndarray) -> np.ndarray:
        return a.reshape(shape[0], 2, shape[1], 2, shape[2], 2).mean(axis=(1, 3, 5))

    affine2 = affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine2[:3, 3] = affine[:3, :3] @ np.full(3, 0.5) + affine[:3, 3]
    return np.ascontiguousarray(mean(vv), np.float32), np.ascontiguousarray(mean(hh) >= 0.5), zooms * 2, affine2


def _first(
    v: np.ndarray, head: np.ndarray, tissues: list[np.ndarray], zooms: np.ndarray, voxel_ml: float,
    affine: np.ndarray, lo: float, hi: float, size: float, start: tuple[int, int],
    outside_sq: np.ndarray | None = None,
) -> tuple[int, int, np.ndarray, float] | None:
    """The first plausible brain candidate, from threshold ``start[0]`` and, on it, erosion
    ``start[1]`` on: (threshold index, erosion index, candidate, ml), or None. A candidate is
    the largest component of the tissue deeper than the erosion, grown back by it inside the
    tissue, holes filled; it is plausible when its volume lies in [lo, hi] and little of its
    surface comes near the outside of the head (:data:`TOUCH`)."""
    if outside_sq is None:
        outside_sq = _dist_sq(~head, zooms, TOUCH_BOUND_SQ)
    anterior = _coordinate(v.shape, affine, 1)
    deepest = EROSIONS[-1] * max(size, 0.75)
    for t in range(start[0], len(tissues)):
        tissue = tissues[t]
        depth = _dist_sq(~tissue, zooms, deepest * deepest)
        for e in range(start[1] if t == start[0] else 0, len(EROSIONS)):
            erode = EROSIONS[e] * max(size, 0.75)
            core, count = _largest_sized(depth > erode * erode)
            core_ml = count * voxel_ml
            if core_ml < 0.25 * lo:
                break
            if core_ml > hi:
                continue  # the estimate holds its core: too large already
            # the regrown candidate lies within ``erode`` of the core: grow, fill and judge it in
            # the core's box widened by that and a voxel (its surface is then the same as on the
            # whole grid). It needs no labelling: every core voxel lies deeper than ``erode`` in the
            # tissue, so the ball of that radius about it is tissue (the ``& tissue`` only guards
            # against rounding), and the balls about a connected core form one component
            reach = np.ceil(erode / zooms).astype(np.int64) + 1
            box = tuple(slice(max(0, int(a - r)), int(b + r + 1)) for (a, b), r in zip(_extent(core), reach))
            grown = _grow(core[box], erode, zooms) & tissue[box]
            count = int(np.count_nonzero(grown))
            if count * voxel_ml > hi:
                continue  # still joined to the scalp (filling holes only adds): erode more
            filled = _fill(grown)
            ml = np.count_nonzero(filled) * voxel_ml
            if ml > hi:
                continue  # still joined to the scalp: erode more
            if ml < lo:
                break  # eroded too far: try the next threshold
            front = anterior[box]
            centre = float(front[filled].mean())
            if _touch_fraction(filled, outside_sq[box], zooms, front > centre) <= TOUCH:
                brain = np.zeros_like(core)
                brain[box] = filled
                return t, e, brain, float(ml)
    return None


def _extent(mask: np.ndarray) -> list[tuple[int, int]]:
    """The first and last index of ``mask``'s True voxels along each axis (``mask`` not empty)."""
    from medcloak_kernels.morphology import extent

    return [(int(a), int(b)) for a, b in extent(np.ascontiguousarray(mask))]


def _brain_like(v: np.ndarray, head: np.ndarray, modality: str) -> bool:
    """Whether a CT or PET volume holds anything like a brain at all (a body scan without the
    head in its field of view holds none): soft tissue enclosed by bone (CT), or a hot region
    of at least 100 ml (PET)."""
    if not head.any():
        return False
    if modality == "CT":
        enclosed = _fill(head & (v > 300)) & ~(v > 300) & (v > -10) & (v < 90)
        return bool(enclosed.sum() > 0)
    top = float(np.percentile(v[head], 99.5))
    return bool(_largest(head & (v > 0.4 * top)).sum() > 0)


def _box_mean(v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Mean of ``v`` over the box of ``radius`` voxels either side (clipped at the edges), by
    cumulative sums along each axis."""
    out = v.astype(np.float64)
    for axis in range(3):
        r = int(radius[axis])
        if r == 0:
            continue
        n = out.shape[axis]
        c = np.cumsum(out, axis=axis)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        hi = np.minimum(np.arange(n) + r + 1, n)
        lo = np.maximum(np.arange(n) - r, 0)
        shape = [1, 1, 1]
        shape[axis] = n
        out = (np.take(c, hi, axis=axis) - np.take(c, lo, axis=axis)) / (hi - lo).reshape(shape)
    return out


def _eyes(
    v: np.ndarray, head: np.ndarray, brain: np.ndarray, affine: np.ndarray, zooms: np.ndarray,
    mid_x: float, pole: float, pole_height: float, size: float, modality: str = "MR",
) -> list[tuple[float, float, float, float]]:
    """The balls (world centre and radius, mm) that remove the eyes of a T1-weighted head (MR) or a
    head CT. The globe, on each side, in the orbit's box (15-50 mm from the mid-sagittal plane,
    35 mm behind to 5 mm in front of the frontal pole, 20-65 mm below the pole's height (CT: from
    20 mm above it), all times ``size``). MR: the darkest spot (mean over about 10 mm) against its surroundings (about 20 mm),
    kept when it is clearly darker than both its surroundings and the brain. CT: the spot most
    like vitreous (-10..50 HU) amid orbital fat (-150..-40 HU), kept when it is mostly vitreous
    and fat makes a good part of its surroundings (a blob of soft tissue in an air sinus has none).
    A ball of :data:`EYE_MM` about the globe; then the cornea and the lids: the same ball
    :data:`EYE_FRONT_MM` in front of the globe's centre (where the estimate reaches into the orbit,
    as on a blurred average head, the face zone keeps them).

    MR balls are guarded by the estimate shrunk by :data:`EYE_GUARD_MM` (the estimate reaches into
    the orbits); a CT estimate ends at the orbital roof, so a CT ball is made small enough to
    stay out of the estimate itself."""
    level = float(np.median(v[brain]))
    x = _coordinate(v.shape, affine, 0) - mid_x
    y = _coordinate(v.shape, affine, 1)
    z = _coordinate(v.shape, affine, 2)
    box = head & (y > pole - 35 * size) & (y < pole + 5 * size)
    # a CT estimate may hold the soft tissue between the orbits, which lowers the pole's height:
    # its vitreous-in-fat signature is searched up to 20 mm above that height
    above = 20.0 if modality == "CT" else -20.0
    box &= (z > pole_height - 65 * size) & (z < pole_height + above * size) & (np.abs(x) < 50 * size)
    if not box.any():
        return []
    # the search needs only the orbits' box and the reach of the surroundings' mean around it
    outer_r = np.maximum(2, np.round(11.0 * size / zooms)).astype(np.int64)
    where = np.argwhere(box)
    crop = tuple(slice(max(0, int(a) - int(r)), int(b) + int(r) + 1)
                 for a, b, r in zip(where.min(axis=0), where.max(axis=0), outer_r))
    v, head, brain, box, x, y, z = (a[crop] for a in (v, head, brain, box, x, y, z))
    inner_r = np.maximum(1, np.round(5.0 * size / zooms))
    if modality == "CT":
        inner = _box_mean(((v > -10) & (v < 50)).astype(np.float32), inner_r)  # vitreous
        outer = _box_mean(((v > -150) & (v < -40)).astype(np.float32), outer_r)  # fat
    else:
        inner = _box_mean(v, inner_r)
        outer = _box_mean(v, outer_r)
    # a globe lies outside the brain. The estimate reaches into the orbits (on a 3 mm grid the
    # orbital roof is blurred away), so a globe may lie within it, but only at its edge: a dark
    # spot whose ball would reach the estimate shrunk by EYE_GUARD_MM by more than 2 mm (a
    # ventricle, a sulcus, a sinus against the brain) is not taken for an eye
    if modality == "CT":  # (a CT estimate holds no orbit: the globe lies outside it)
        core = np.zeros_like(brain)
        box &= ~brain
    else:
        core = _shrink(brain, EYE_GUARD_MM, zooms)
        guard_sq = max(0.0, EYE_MM * size - 2.0) ** 2
        box &= _dist_sq(core, zooms, guard_sq) >= guard_sq
    found: list[tuple[float, ...]] = []
    scores: list[float] = []
    for side in (1.0, -1.0):
        here = box & (side * x > 15 * size) & (side * x < 50 * size)
        if not here.any():
            continue
        if modality == "CT":
            score = np.where(here, -inner * outer, np.inf)
            at = np.unravel_index(int(np.argmin(score)), v.shape)
            if not (inner[at] > 0.5 and outer[at] > 0.15):
                continue
        else:
            score = np.where(here, inner - outer, np.inf)
            at = np.unravel_index(int(np.argmin(score)), v.shape)
            if not 0.2 * level < inner[at] < min(0.8 * outer[at], 0.7 * level):  # vitreous, not air
                continue
        # the centre between voxels: the darkness-weighted mean of the 3x3x3 voxels around
        near = tuple(slice(max(0, c - 1), c + 2) for c in at)
        weight = np.clip(-score[near], 0, None)
        weight = np.where(np.isfinite(weight), weight, 0.0)
        total = float(weight.sum()) or 1.0
        found.append(tuple(float((c[near] * weight).sum() / total) for c in (x + mid_x, y, z)))
        scores.append(float(score[at]))
    if len(found) == 2 and not (
        abs(found[0][1] - found[1][1]) <= 10 * size and abs(found[0][2] - found[1][2]) <= 10 * size
        and abs(found[0][0] + found[1][0] - 2 * mid_x) <= 15 * size
    ):
        # the globes lie level and either side of the midline: of two spots that do not, the
        # clearer is the globe (the other side's globe hidden, its darkest spot elsewhere)
        found = [found[int(np.argmin(scores))]]
    trusted = len(found)
    if len(found) == 1:
        # one globe found, the other not (a lid shut over it, a prosthesis, an artefact): the other
        # lies across the mid-sagittal plane, and its balls are guarded as a front ball is
        found.append((2 * mid_x - found[0][0], found[0][1], found[0][2]))
    radius = EYE_MM * size
    centres = [np.array(eye) for eye in found]
    centres += [eye + (0.0, EYE_FRONT_MM * size, 0.0) for eye in centres]
    balls = []
    if modality == "CT":
        # each ball ends short of the estimate's nearest voxel by half a coarse voxel's diagonal
        near = np.stack([x[brain] + mid_x, y[brain], z[brain]], axis=1) if brain.any() else np.zeros((0, 3))
        clear = float(np.sqrt((zooms**2).sum())) / 2
        for centre in centres:
            reach = float(np.sqrt(((near - centre) ** 2).sum(axis=1).min())) - clear if near.size else radius
            if min(radius, reach) > 2.0:
                balls.append((*(float(c) for c in centre), min(radius, reach)))
        return balls
    # the front ball lies further from the brain than the globe's, but its guard is measured too:
    # the distance from its centre to the guarded core's voxels (in the crop: a core voxel beyond
    # it lies further than the globe's guard reaches)
    guard = np.stack([x[core] + mid_x, y[core], z[core]], axis=1) if core.any() else np.zeros((0, 3))
    for n, centre in enumerate(centres):
        if n < trusted or guard.size == 0 or float(((guard - centre) ** 2).sum(axis=1).min()) >= max(0.0, radius - 2.0) ** 2:
            balls.append((*(float(c) for c in centre), radius))
    return balls


def _blocks(affine: np.ndarray, zooms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block sizes and offsets of the coarse analysis grid.

    Sizes are the number of voxels nearest to :data:`ANALYSIS_MM` (so 1.5 and 2 mm voxels are
    analysed in blocks of 3 and 4 mm, not one by one), and blocks are anchored in world space:
    along each axis, voxel i lies at w = p0 / zoom + i voxels from the world origin (p0 the
    origin's projection on the axis), and block boundaries lie at w = k f - f / 2. That set of
    boundaries is the same when the axis is stored the other way round (w becomes -w), so a
    flipped or permuted copy of a volume is cut into the same blocks. A boundary can fall on voxel
    centres only with an even f; those voxels then go to the block on the side the axis's main
    world direction (R, A or S) points to, whichever way the axis is stored."""
    factors = np.maximum(1, np.round(ANALYSIS_MM / zooms)).astype(np.int64)
    directions = affine[:3, :3] / zooms
    p0 = (directions * affine[:3, 3][:, None]).sum(axis=0) / zooms  # origin along each axis, in voxels
    edge = p0 + factors / 2.0
    offsets = np.floor(edge + 1e-6).astype(np.int64)
    # voxel i is in block (i + offset) // f: a voxel on a boundary goes up the axis; for an axis
    # stored against its main world direction, one offset less sends it down the axis instead
    tie = np.abs(edge - np.round(edge)) < 1e-6
    against = directions[np.abs(directions).argmax(axis=0), np.arange(3)] < 0
    offsets -= (tie & against).astype(np.int64)
    return factors, offsets


def deface_mask(
    values: np.ndarray,
    affine: np.ndarray,
    modality: str,
    *,
    margin_mm: float | None = None,
    behind_pole_mm: float = 55.0,
    above_pole_mm: float = 15.0,
    below_pole_mm: float = 160.0,
    ears: bool = False,
    scale: tuple[float, float] = (1.0, 0.0),
) -> DefaceResult:
    """The voxels of a head volume to remove. ``values`` are in real-world units (HU for CT)
    once multiplied by ``scale[0]`` and added ``scale[1]`` (stored values may be passed as they
    are, in any memory order: only the coarse grid is scaled).

    Lengths (``behind_pole_mm``, ``above_pole_mm``, ``below_pole_mm``) are an adult's: they are
    scaled by the head's size (``details["size"]`` of the result); ``margin_mm`` (by default
    :data:`MARGIN_MM` of the modality) is not.

    Raises :class:`DeidentificationError` when the brain estimate or the removed volume is
    implausible (the volume must then not be released)."""
    from medcloak_kernels.deface import block_mean_sized as block_mean
    from medcloak_kernels.deface import face_zone_sized as face_zone

    if modality not in MODALITIES:
        raise DeidentificationError(f"defacing needs the modality MR, CT or PT, not {modality!r}")
    if margin_mm is None:
        margin_mm = MARGIN_MM[modality]
    if values.ndim != 3 or min(values.shape) < 8:
        raise DeidentificationError("defacing needs a 3-D volume of at least 8 voxels per axis")
    affine = np.asarray(affine, np.float64)
    zooms = zooms_of(affine)
    if not (np.isfinite(affine).all() and ((zooms >= ZOOM_MM[0]) & (zooms <= ZOOM_MM[1])).all()):
        raise DeidentificationError(f"the volume's voxel sizes are not between {ZOOM_MM[0]:g} and {ZOOM_MM[1]:g} mm "
                                    "(a broken affine): it cannot be defaced")
    factors, offsets = _blocks(affine, zooms)
    if values.flags.f_contiguous and not values.flags.c_contiguous:
        # walk the memory in order: the transposed view is C-ordered
        small = block_mean(values.T, factors[::-1].copy(), offsets[::-1].copy()).T
    else:
        small = block_mean(np.ascontiguousarray(values), factors, offsets)
    small = np.ascontiguousarray(small * np.float32(scale[0]) + np.float32(scale[1]), dtype=np.float32)
    small_zooms = zooms * factors
    # coarse voxel I holds the full indices i with (i + off) // f == I + off // f: its centre is
    # full index (I + off // f) * f - off + (f - 1) / 2
    scale = np.diag([*factors.astype(float), 1.0])
    scale[:3, 3] = (offsets // factors) * factors - offsets + (factors - 1) / 2.0
    small_affine = affine @ scale
    voxel_ml = float(np.prod(small_zooms)) / 1000.0
    head = _head(small, modality, small_zooms)
    head_ml = float(np.count_nonzero(head)) * voxel_ml
    # the analysis needs only the head's box (and a margin of 2 coarse voxels)
    start = np.zeros(3, np.int64)
    if head.any():
        nonzero = np.argwhere(head)
        start = np.maximum(nonzero.min(axis=0) - 2, 0)
        stop = np.minimum(nonzero.max(axis=0) + 3, head.shape)
        box = tuple(slice(a, b) for a, b in zip(start, stop))
        small, head = np.ascontiguousarray(small[box]), np.ascontiguousarray(head[box])
        small_affine = small_affine.copy()
        small_affine[:3, 3] += small_affine[:3, :3] @ start
    size = _size(head, small_affine)
    found = _brain(small, head, modality, small_zooms, voxel_ml, small_affine, size)
    lo, hi = (b * size**3 for b in BRAIN_ML[modality])
    if found is None:
        if modality in ("CT", "PT") and not _brain_like(small, head, modality):
            return DefaceResult("no-head", None, 0.0, head_ml, 0.0, {"reason": "nothing brain-like in the field of view"})
        raise DeidentificationError(
            f"no plausible brain estimate ({lo:.0f}-{hi:.0f} ml, inside the head): not defaced, not released"
        )
    brain, brain_ml = found
    if not lo <= brain_ml <= hi:
        raise DeidentificationError(f"implausible brain estimate ({brain_ml:.0f} ml, expected {lo:.0f}-{hi:.0f} ml)")
    if modality == "PT" and _touch_fraction(brain, _dist_sq(~head, small_zooms, TOUCH_BOUND_SQ), small_zooms) > PET_TOUCH:
        raise DeidentificationError("the brain estimate touches the head's surface")
    ijk = np.argwhere(brain).astype(float)
    world = ijk @ small_affine[:3, :3].T + small_affine[:3, 3]
    centre = world.mean(axis=0)
    # the frontal pole, as the 99th percentile of the anterior coordinate: a single voxel more or
    # less in the estimate does not move it
    pole = float(np.percentile(world[:, 1], 99))
    pole_height = float(world[world[:, 1] >= pole - 5.0][:, 2].mean())
    half_width = float(np.percentile(np.abs(world[:, 0] - centre[0]), 99))
    low = float(world[:, 2].min())
    diag = float(np.sqrt((small_zooms**2).sum()))
    eyes = (_eyes(small, head, brain, small_affine, small_zooms, centre[0], pole, pole_height, size, modality)
            if modality in ("MR", "CT") else [])
    params = np.array([
        margin_mm + diag / 2,  # the coarse distance is off by half a coarse voxel at most
        pole - behind_pole_mm * size,
        pole_height + above_pole_mm * size,
        1.0 if ears else 0.0,
        centre[0], half_width + margin_mm,
        low, centre[2] + 10.0 * size,
        centre[1] - 45.0 * size, centre[1] + 15.0 * size,
        pole_height - below_pole_mm * size,
        *(v for ball in eyes for v in ball),
    ])
    # the face zone compares the distance with the margin only: none beyond it is needed (bounded a
    # little above it, so that no distance that float32 rounds down to the margin is dropped)
    dist = _dist_sq(brain, small_zooms, params[0] * params[0] * 1.001 + 1.0).astype(np.float32)
    mask, removed_head = face_zone(np.array(values.shape, np.int64), affine, factors, offsets, start, dist, head, params)
    removed_ml = float(removed_head) * float(np.prod(zooms)) / 1000.0
    if not 5.0 <= removed_ml <= 0.6 * head_ml:
        raise DeidentificationError(f"implausible removed volume ({removed_ml:.0f} ml of a {head_ml:.0f} ml head)")
    return DefaceResult("defaced", mask, brain_ml, head_ml, removed_ml, {"size": size})


def fill_value(raw: np.ndarray, removed: np.ndarray, modality: str, slope: float, inter: float) -> Any:
    """The stored value for removed voxels: -1024 HU for CT (in stored units), otherwise the
    background's level (the median of the volume's darkest tenth, in stored units)."""
    info = np.iinfo(raw.dtype) if np.issubdtype(raw.dtype, np.integer) else None
    if modality == "CT":
        stored = (-1024.0 - inter) / (slope or 1.0)
    else:
        step = max(1, raw.size // 200000)
        # every step-th voxel, then those kept: no full-size copy of the volume
        sample = raw[::step, :, :][~removed[::step, :, :]]
        stored = float(np.median(sample[sample <= np.percentile(sample, 10)]))
    if info is not None:
        return raw.dtype.type(int(np.clip(round(stored), info.min, info.max)))
    return raw.dtype.type(stored)


def apply(out: np.ndarray, mask: np.ndarray, how: str, value: Any, seed: int = 0) -> np.ndarray:
    """Replace the masked voxels of ``out`` in place: ``background`` (``value``) or ``noise``
    (values drawn from the background's darkest tenth, so the removed region looks like air).
    Voxels outside the mask keep their stored values exactly. (No blur: a blurred face keeps
    its shape at low resolution, which a surface rendering shows.)"""
    if how == "background":
        out[mask] = value
    elif how == "noise":
        rng = np.random.default_rng(seed)
        pool = out[~mask]
        pool = pool[pool <= np.percentile(pool, 10)]
        out[mask] = rng.choice(pool, int(mask.sum()))
    else:
        raise ValueError(how)
    return out

