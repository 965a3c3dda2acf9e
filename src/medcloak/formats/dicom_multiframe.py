"""Defacing multi-frame CT, MR and PET objects (Clean Recognizable Visual Features option): an
Enhanced CT, MR or PET image, a Legacy Converted Enhanced one, or any CT, MR or PT object of more
than one frame, defaced within its own task as a series is (:mod:`medcloak.formats.dicom_series`).

Each frame's geometry comes from its functional groups, per-frame before shared: Plane Position
and Plane Orientation (Patient), Pixel Measures, Pixel Value Transformation (else the top-level
rescale), and Frame Content's Stack ID. The frames of one stack must share one orientation and
pixel spacing; they are grouped by position along the normal, every position holding the same
number of frames. The frames at each position are taken in the order of their Dimension Index
Values (less the position's own dimension), Temporal Position Index, echo time, b-value and
frame number, so the n-th frame of every position makes the n-th volume (an echo, a time point, a
diffusion direction). The volumes of a stack must lie at the same positions, evenly spaced; the
mask is computed on the first and applied to every volume (as for a 4-D NIfTI), each filled with
its own background (MR, PET) or -1024 HU in each frame's rescale (CT). Changed frames are written
back in the object's own syntax (native in place; lossless syntaxes frame by frame, decoded again
and compared); the others keep their bytes.

Fail closed, as for a series: an object that may be a head (Body Part Examined and the frames'
anatomic regions empty or naming the head) whose frames cannot form volumes (no positions, mixed
orientations or spacings, uneven spacing, positions repeated unevenly, a stack at fewer than 8
positions, colour, float Pixel Data, a lossy syntax) is quarantined with the reason. One that names
another part, has fewer than 8 frames in all (as a series of fewer slices), or in which the defacer
finds no head is released as it is, and the manifest says so; so is one without an image (MR
spectroscopy), which has no face to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import limits
from ..errors import CorruptInputError, MedcloakError, UnsupportedInputError
from .dicom import _transfer_syntax
from .dicom_series import (
    MIN_PLANES,
    MODALITIES,
    _decoded,
    check_syntax,
    deface_stack,
    filled_planes,
    geometry,
    head_parts,
    write_frames,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Dimension Index Pointers that index the position within a stack (not a volume)
_POSITION_POINTERS = {0x00209057, 0x00200032}
WHOLE = "the multi-frame object"


#: the enhanced and legacy converted enhanced image classes, by modality (for an object whose
#: Modality is missing)
CLASSES = {"1.2.840.10008.5.1.4.1.1.2.1": "CT", "1.2.840.10008.5.1.4.1.1.2.2": "CT",
           "1.2.840.10008.5.1.4.1.1.4.1": "MR", "1.2.840.10008.5.1.4.1.1.4.4": "MR",
           "1.2.840.10008.5.1.4.1.1.130": "PT", "1.2.840.10008.5.1.4.1.1.128.1": "PT"}


def modality_of(ds: Dataset) -> str | None:
    """CT, MR or PT: the object's Modality, else its SOP class's; None for any other."""
    modality = MODALITIES.get(str(ds.get("Modality", "") or "").strip().upper())
    return modality if modality is not None else CLASSES.get(str(ds.get("SOPClassUID", "") or "").strip())


def multiframe(ds: Dataset) -> bool:
    """A CT, MR or PT object of more than one frame (whatever its SOP class)."""
    if modality_of(ds) is None:
        return False
    try:
        return int(ds.get("NumberOfFrames", 1) or 1) > 1
    except (TypeError, ValueError):
        return False


@dataclass
class Frame:
    index: int
    position: np.ndarray | None
    orient: np.ndarray | None
    spacing: np.ndarray | None
    rescale: tuple[float, float]
    stack: str
    sort: tuple[Any, ...] = field(default=())


@dataclass
class Volume:
    """One volume of a stack: its frames (by index) in the order of their positions, and the
    affine and rescales of that order."""

    frames: list[int]
    affine: np.ndarray
    rescales: list[tuple[float, float]]


def _item(ds: Any, keyword: str) -> Any:
    seq = ds.get(keyword) if ds is not None else None
    try:
        return seq[0] if seq else None
    except (TypeError, IndexError, KeyError):
        return None


def _macro(groups: Sequence[Any], macro: str, keyword: str) -> Any:
    """``keyword`` of the first of ``groups`` (a frame's per-frame, then the shared functional
    groups) whose ``macro`` sequence holds it."""
    for group in groups:
        item = _item(group, macro)
        value = item.get(keyword) if item is not None else None
        if value is not None and value != "":
            return value
    return None


def _numbers(value: Any, n: int, what: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        out = np.array([float(v) for v in value], float)
    except (TypeError, ValueError):
        raise UnsupportedInputError(f"a frame has no usable {what}: {WHOLE} cannot be stacked") from None
    if out.shape != (n,) or not np.isfinite(out).all():
        raise UnsupportedInputError(f"a frame has no usable {what}: {WHOLE} cannot be stacked")
    return out


def _number(value: Any, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _sortable(value: Any) -> tuple[Any, ...]:
    """A value as a key that sorts with its kind (numbers before text, none first)."""
    if value is None or value == "":
        return (0,)
    try:
        return (1, tuple(float(v) for v in value)) if not isinstance(value, (str, bytes)) else (2, str(value))
    except TypeError:
        return (1, (_number(value, 0.0),))
    except ValueError:
        return (2, str(value))


def frames_of(ds: Dataset) -> list[Frame]:
    """Each frame's geometry, rescale, stack and volume order, from the functional groups."""
    count = int(ds.NumberOfFrames)
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and len(per) != count:
        raise UnsupportedInputError(f"{len(per)} per-frame functional groups for {count} frames: "
                                    f"{WHOLE} cannot be stacked")
    pointers = [int(item.get("DimensionIndexPointer", 0) or 0) for item in ds.get("DimensionIndexSequence") or []]
    frames = []
    for i in range(count):
        groups = [g for g in ((per[i] if per is not None else None), shared) if g is not None]
        position = _numbers(_macro(groups, "PlanePositionSequence", "ImagePositionPatient"), 3,
                            "Image Position (Patient)")
        orient = _numbers(_macro(groups, "PlaneOrientationSequence", "ImageOrientationPatient")
                          or ds.get("ImageOrientationPatient"), 6, "Image Orientation (Patient)")
        spacing = _numbers(_macro(groups, "PixelMeasuresSequence", "PixelSpacing") or ds.get("PixelSpacing"), 2,
                           "Pixel Spacing")
        slope = _macro(groups, "PixelValueTransformationSequence", "RescaleSlope")
        inter = _macro(groups, "PixelValueTransformationSequence", "RescaleIntercept")
        slope = ds.get("RescaleSlope", 1) if slope is None else slope
        inter = ds.get("RescaleIntercept", 0) if inter is None else inter
        content = _item(groups[0], "FrameContentSequence") if groups else None
        content = content if content is not None else {}
        index_values = content.get("DimensionIndexValues")
        if index_values is None:
            index_values = []
        elif isinstance(index_values, (str, bytes)) or not hasattr(index_values, "__len__"):
            index_values = [index_values]  # one dimension: pydicom gives the number itself
        volume_dims = tuple(v for k, v in enumerate(index_values)
                            if k >= len(pointers) or pointers[k] not in _POSITION_POINTERS)
        sort = (
            _sortable(volume_dims),
            _sortable(content.get("TemporalPositionIndex")),
            _sortable(_macro(groups, "MREchoSequence", "EffectiveEchoTime")),
            _sortable(_macro(groups, "MRDiffusionSequence", "DiffusionBValue")),
            i,
        )
        frames.append(Frame(i, position, orient, spacing, (_number(slope, 1.0) or 1.0, _number(inter, 0.0)),
                            str(content.get("StackID", "") or ""), sort))
    return frames


def volumes_of(frames: list[Frame]) -> list[list[Volume]]:
    """The volumes of each stack (see the module's text); raises when the frames cannot form them."""
    stacks: dict[str, list[Frame]] = {}
    for frame in frames:
        stacks.setdefault(frame.stack, []).append(frame)
    out = []
    for members in stacks.values():
        if any(f.position is None for f in members):
            raise UnsupportedInputError(f"frames without Image Position (Patient): {WHOLE} cannot be stacked")
        if any(f.orient is None for f in members) or any(f.spacing is None for f in members):
            raise UnsupportedInputError(f"frames without orientation or pixel spacing: {WHOLE} cannot be stacked")
        orient, spacing = members[0].orient, members[0].spacing
        assert orient is not None and spacing is not None
        if not all(np.allclose(f.orient, orient, atol=1e-4) for f in members):  # type: ignore[arg-type]
            raise UnsupportedInputError(f"frames of different orientations: {WHOLE} cannot be stacked")
        if not all(np.allclose(f.spacing, spacing, atol=1e-4) for f in members):  # type: ignore[arg-type]
            raise UnsupportedInputError(f"frames of different pixel spacing: {WHOLE} cannot be stacked")
        normal = np.cross(orient[:3], orient[3:])
        members = sorted(members, key=lambda f: float(f.position @ normal))  # type: ignore[operator]
        depths = [float(f.position @ normal) for f in members]  # type: ignore[operator]
        positions: list[list[Frame]] = [[members[0]]]
        for frame, before, depth in zip(members[1:], depths, depths[1:]):
            if depth - before > 1e-3:
                positions.append([frame])
            else:
                positions[-1].append(frame)
        repeats = {len(p) for p in positions}
        if len(repeats) != 1:
            raise UnsupportedInputError(f"positions holding different numbers of frames: {WHOLE} cannot be "
                                        "stacked as volumes")
        if len(positions) < MIN_PLANES:
            raise UnsupportedInputError(f"a stack at only {len(positions)} position(s), too few to deface: "
                                        f"{WHOLE} cannot be defaced")
        for p in positions:
            p.sort(key=lambda f: f.sort)
        first = np.array([p[0].position for p in positions])
        order, affine = geometry(orient, spacing, first, "frames", WHOLE)
        volumes = []
        for t in range(repeats.pop()):
            chosen = [positions[k][t] for k in order]
            if not np.allclose([f.position for f in chosen], first[order], atol=1e-2):
                raise UnsupportedInputError(f"volumes of one stack at different positions: {WHOLE} cannot be stacked")
            volumes.append(Volume([f.index for f in chosen], affine, [f.rescale for f in chosen]))
        out.append(volumes)
    return out


def _anatomy(ds: Dataset) -> list[str]:
    """The body parts ``ds`` names: Body Part Examined and the meaning of each anatomic region of
    the frames' Frame Anatomy (shared, then per frame)."""
    names = [str(ds.get("BodyPartExamined", "") or "")]
    groups = [_item(ds, "SharedFunctionalGroupsSequence"), *(ds.get("PerFrameFunctionalGroupsSequence") or [])]
    seen: set[str] = set()
    for group in groups:
        region = _item(_item(group, "FrameAnatomySequence"), "AnatomicRegionSequence")
        if region is not None:
            meaning = str(region.get("CodeMeaning", "") or "")
            if meaning not in seen:
                seen.add(meaning)
                names.append(meaning)
    return names


@dataclass
class Defacing:
    """What :func:`deface_frames` did: whether it removed a face (``faces``), the manifest's
    ``report`` (its ``status``: defaced, no-head, not a head, too few frames, no image) and, for the QC picture, the first
    defaced volume's (stored values, mask, affine, (slope, intercept), modality), or None."""

    faces: bool
    report: dict[str, Any]
    picture: tuple[Any, ...] | None = None


def deface_frames(ds: Dataset, ears: bool = False) -> Defacing:
    """Deface the multi-frame CT, MR or PET object ``ds`` in place where it may be a head (its
    changed frames rewritten in its own transfer syntax); raises a
    :class:`~medcloak.errors.MedcloakError` when it may be a head and cannot be defaced. The
    caller then de-identifies it (``faces_cleaned``: :attr:`Defacing.faces`)."""
    modality = modality_of(ds)
    assert modality is not None
    count = int(ds.NumberOfFrames)
    report: dict[str, Any] = {"frames": count}
    faces = False
    picture = None
    if not any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)):  # spectroscopy: no image
        report["status"] = "no image"
    elif not head_parts(_anatomy(ds)):
        report["status"] = "not a head"
    elif count < MIN_PLANES:  # as a series of fewer slices
        report["status"] = "too few frames"
    else:
        ts = _transfer_syntax(ds)
        check_syntax(ts, "a multi-frame object")
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise UnsupportedInputError(f"colour frames: {WHOLE} cannot be defaced")
        if 0x7FE00010 not in ds:  # Float or Double Float Pixel Data: no route writes them back
            raise UnsupportedInputError(f"no integer Pixel Data: {WHOLE} cannot be defaced")
        try:
            frames = frames_of(ds)
        except MedcloakError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
            raise CorruptInputError(f"malformed functional groups ({type(exc).__name__}): {WHOLE} "
                                    "cannot be stacked") from None
        stacks = volumes_of(frames)
        rows, cols = int(ds.Rows), int(ds.Columns)
        itemsize = max(1, (int(ds.get("BitsAllocated", 16) or 16) + 7) // 8)
        # the decoded frames, one volume stacked and its float32 copy
        limits.check_declared(rows * cols * count * itemsize + rows * cols * max(len(v[0].frames) for v in stacks)
                              * (itemsize + 4), what=f"{WHOLE} stacked as volumes ({rows}x{cols}x{count})")
        pixels = _decoded(ds, "the object's").reshape(count, rows, cols)
        planes: dict[int, np.ndarray] = {}
        statuses = []
        for volumes in stacks:
            first = volumes[0]
            stored = np.stack([pixels[i] for i in first.frames], axis=-1)
            result = deface_stack(stored, first.rescales, first.affine, modality, ears)
            statuses.append(result.status)
            report.setdefault("brain_ml", round(result.brain_ml))
            report["removed_ml"] = report.get("removed_ml", 0) + round(result.removed_ml)
            if result.status != "defaced":
                continue
            assert result.mask is not None
            if picture is None:
                picture = (stored, result.mask, first.affine, first.rescales[0], modality)
            for volume in volumes:
                each = np.stack([pixels[i] for i in volume.frames], axis=-1)
                for position, plane in filled_planes(each, result.mask, volume.rescales, modality).items():
                    planes[volume.frames[position]] = plane
        faces = "defaced" in statuses
        report["status"] = "defaced" if faces else "no-head"
        report["volumes"] = sum(len(v) for v in stacks)
        write_frames(ds, ts, planes)
    return Defacing(faces, report, picture)
