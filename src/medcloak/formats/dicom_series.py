"""Defacing DICOM series (Clean Recognizable Visual Features option): the slices of a CT, MR or
PET series stacked by position into one volume, defaced as a volume, and written back slice by
slice in their own transfer syntax, each then de-identified by the profile as any object.

The volume's affine comes from Image Position and Image Orientation (Patient), in LPS turned to
RAS; the slice step is the difference of successive positions, so gantry tilt is kept as it is.
Stored values are changed only inside the removed region: -1024 HU (in each slice's own Rescale
Slope and Intercept) for CT, the background's level for MR and PET.

The lossless syntaxes pydicom cannot encode (JPEG lossless .57 and .70, HTJ2K lossless .201 and
.202) are written through :mod:`medcloak.formats.dicom_lossless`: each changed slice re-encoded as
its original frame was, decoded again and compared with the defaced plane; slices the defacing
does not touch keep their bytes.

What cannot be stacked (mixed sizes or orientations, multi-frame or colour images, missing
positions, lossy compression) fails closed: the whole series is quarantined with the reason.
A series whose Body Part Examined names something other than the head, or a CT or PET with
nothing brain-like in it, is released without defacing, and the audit says so.

The stacking geometry, the defacing of a stack and the writing of frames by index serve the
multi-frame objects too (:mod:`medcloak.formats.dicom_multiframe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .. import limits
from ..errors import (
    CorruptInputError,
    MedcloakError,
    MissingDependencyError,
    UnsupportedInputError,
)
from .dicom import Released, _transfer_syntax, deidentify_dicom, read
from .dicom_lossless import ROUTED
from .dicom_redact import NATIVE, REENCODABLE

if TYPE_CHECKING:
    from ..pseudonym import Keyring
    from ..rules.profile import Profile
    from ..rules.regions import RegionTemplate

MODALITIES = {"CT": "CT", "MR": "MR", "PT": "PT"}
HEAD_PARTS = {"", "HEAD", "BRAIN", "SKULL", "HEADNECK", "HEAD AND NECK", "NECK", "FACE", "WHOLEBODY", "WHOLE BODY",
              "EAR", "EYE", "ORBIT", "SINUS", "JAW", "TMJ", "NOSE", "IAC"}
#: fewer planes than this hold no head to deface (a series of fewer slices is released as not a head)
MIN_PLANES = 8


@dataclass
class SliceResult:
    path: Path
    released: Released | None
    error: MedcloakError | None


def _float_list(ds: Any, keyword: str, n: int) -> list[float]:
    value = ds.get(keyword)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise UnsupportedInputError(f"a slice has no usable {keyword}: the series cannot be stacked") from None
    if len(values) != n:
        raise UnsupportedInputError(f"a slice has no usable {keyword}: the series cannot be stacked")
    return values


def stack(datasets: Sequence[Any]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(slice order, stored values (rows, columns, slices), RAS affine) of a single-frame,
    single-sample series of one size and orientation."""
    first = datasets[0]
    rows, cols = int(first.Rows), int(first.Columns)
    orient = np.array(_float_list(first, "ImageOrientationPatient", 6))
    spacing = _float_list(first, "PixelSpacing", 2)
    for ds in datasets:
        if int(ds.get("NumberOfFrames", 1) or 1) != 1 or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise UnsupportedInputError("multi-frame or colour slices: the series cannot be stacked")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise UnsupportedInputError("slices of different sizes: the series cannot be stacked")
        if not np.allclose(_float_list(ds, "ImageOrientationPatient", 6), orient, atol=1e-4):
            raise UnsupportedInputError("slices of different orientations: the series cannot be stacked")
        if not np.allclose(_float_list(ds, "PixelSpacing", 2), spacing, atol=1e-4):
            raise UnsupportedInputError("slices of different pixel spacing: the series cannot be stacked")
    positions = np.array([_float_list(ds, "ImagePositionPatient", 3) for ds in datasets])
    order, ras = geometry(orient, spacing, positions, "slices", "the series")
    # each slice's decoded values (pydicom keeps them), their stack and its float32 copy: checked
    # against the per-object ceiling before the first slice is decoded
    voxels = rows * cols * len(datasets)
    itemsize = max(1, (int(first.get("BitsAllocated", 16) or 16) + 7) // 8)
    limits.check_declared(voxels * (2 * itemsize + 4),
                          what=f"the series stacked as one volume ({rows}x{cols}x{len(datasets)})")
    stored = np.stack([_decoded(datasets[i]) for i in order], axis=-1)
    return order, stored, ras


def geometry(orient: np.ndarray, spacing: Sequence[float], positions: np.ndarray, unit: str,
             whole: str) -> tuple[list[int], np.ndarray]:
    """(order of the planes along their normal, RAS affine of their stack) of planes of one
    orientation (``orient``: Image Orientation (Patient)) and pixel spacing at ``positions``
    (Image Position (Patient), one row a plane); planes at one position or unevenly spaced
    raise, ``unit`` and ``whole`` naming them (``slices``, ``the series``)."""
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)
    order = list(np.argsort(positions @ normal, kind="stable"))
    depth = positions[order] @ normal
    if len(set(np.round(depth, 3))) != len(depth):
        raise UnsupportedInputError(f"two {unit} at one position: {whole} cannot be stacked")
    step = (positions[order[-1]] - positions[order[0]]) / max(1, len(order) - 1)
    steps = np.diff(positions[order], axis=0)
    if len(order) > 2 and not np.allclose(steps, step, atol=0.05 * max(1e-6, float(np.linalg.norm(step)))):
        raise UnsupportedInputError(f"{unit} not evenly spaced: {whole} cannot be stacked as one volume")
    lps = np.eye(4)
    lps[:3, 0] = col_dir * spacing[0]  # index 0: row number, along the column direction
    lps[:3, 1] = row_dir * spacing[1]  # index 1: column number, along the row direction
    lps[:3, 2] = step
    lps[:3, 3] = positions[order[0]]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return [int(i) for i in order], ras


def _decoded(ds: Any, whose: str = "a slice's") -> np.ndarray:
    """A slice's (an object's) stored values; a frame that does not decode fails the series (the
    object) with the reason."""
    from .dicom_lossless import _CODEC_ERRORS

    try:
        return ds.pixel_array
    except _CODEC_ERRORS as exc:
        raise CorruptInputError(f"{whose} Pixel Data does not decode ({type(exc).__name__})") from None


def _need_decoder(ts: str) -> None:
    """Raise unless pydicom can decode ``ts`` here (JPEG lossless through medcloak's imagecodecs
    plug-in when it has none of its own), and the route can re-encode it."""
    from pydicom.pixels import get_decoder

    from .dicom_codecs import register
    from .dicom_lossless import _codecs

    _codecs()
    register()
    if not get_decoder(ts).is_available:
        raise MissingDependencyError("decoding this series' transfer syntax needs a pydicom plug-in (pylibjpeg-openjpeg)")


def _rescale(ds: Any) -> tuple[float, float]:
    slope = float(ds.get("RescaleSlope", 1) or 1)
    return slope, float(ds.get("RescaleIntercept", 0) or 0)


def write_frames(ds: Any, ts: str, planes: dict[int, np.ndarray]) -> None:
    """Put new stored values into frames of ``ds``'s Pixel Data (``planes``: by frame index, 0
    for a single-frame object), in its own transfer syntax: native samples overwritten in place;
    encapsulated frames re-encoded one by one, the others keeping their bytes, and decoded again
    and compared."""
    from pydicom.dataelem import DataElement

    if not planes:
        return
    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    dtype = np.dtype(f"{'>' if ts == '1.2.840.10008.1.2.2' else '<'}{'i' if signed else 'u'}{bits // 8}")
    if ts in NATIVE:
        if bits not in (8, 16, 32):
            raise UnsupportedInputError(f"native Pixel Data of {bits} bits cannot be defaced")
        elem = ds.get_item(0x7FE00010)
        data = bytearray(elem.value)
        size = int(ds.Rows) * int(ds.Columns) * dtype.itemsize
        for index, values in planes.items():
            if (index + 1) * size > len(data):
                raise CorruptInputError("native Pixel Data shorter than its frames")
            data[index * size:(index + 1) * size] = values.astype(dtype).tobytes()
        ds[0x7FE00010] = DataElement(0x7FE00010, elem.VR or "OW", bytes(data) + b"\x00" * (len(data) & 1))
        return
    if ts in ROUTED:
        from .dicom_lossless import rewrite_frames

        rewrite_frames(ds, ts, planes)
        return
    from .dicom_redact import reencode_frames

    reencode_frames(ds, ts, {i: values.astype(dtype.newbyteorder("=")) for i, values in planes.items()})


def check_syntax(ts: str, what: str) -> None:
    """Raise unless ``ts`` has an exact route for defacing (and, for the routes through
    imagecodecs, a decoder here); ``what`` names the object (``a series``)."""
    if ts not in NATIVE and ts not in REENCODABLE and ts not in ROUTED:
        raise UnsupportedInputError(f"{what} in a lossy transfer syntax cannot be defaced exactly")
    if ts in ROUTED:
        _need_decoder(ts)


def deface_stack(stored: np.ndarray, rescales: Sequence[tuple[float, float]], affine: np.ndarray, modality: str,
                 ears: bool) -> Any:
    """The defacer's result (:func:`medcloak.pixels.deface.deface_mask`) on the stored values
    of a stack (rows, columns, planes), each plane in its own rescale."""
    from ..pixels.deface import deface_mask

    values = stored.astype(np.float32) * np.array([s for s, _ in rescales], np.float32) + np.array(
        [b for _, b in rescales], np.float32
    )
    return deface_mask(values, affine, modality, ears=ears)


def filled_planes(stored: np.ndarray, mask: np.ndarray, rescales: Sequence[tuple[float, float]],
                  modality: str) -> dict[int, np.ndarray]:
    """The new stored values of each plane (by its position in the stack) that ``mask`` touches:
    -1024 HU in the plane's own rescale for CT; for MR and PET the stack's background."""
    from ..pixels.deface import fill_value

    background = None if modality == "CT" else fill_value(stored, mask, modality, 1.0, 0.0)
    planes = {}
    for position in range(stored.shape[-1]):
        removed = mask[..., position]
        if not removed.any():
            continue
        slope, inter = rescales[position]
        plane = stored[..., position].copy()
        plane[removed] = fill_value(plane, removed, modality, slope, inter) if background is None else background
        planes[position] = plane
    return planes


def mark_defaced(review: dict[str, Any] | None) -> None:
    """A review record's pixel change: defaced (over any text redaction, whose boxes stay)."""
    if review is None:
        return
    review["pixels"] = {**review.get("pixels", {}), "change": "defaced"}
    review.setdefault("changed", {})["PixelData"] = "cleaned"
    if "kept" in review and "PixelData" in review["kept"]:
        review["kept"].remove("PixelData")


def head_parts(names: Sequence[str]) -> bool:
    """Whether body parts named (Body Part Examined, an anatomic region's meaning) may be the
    head: none named, or one of :data:`HEAD_PARTS`, or a code's meaning with a word of it or
    naming the whole body ("Entire head", "Brain structure", "Entire body")."""
    named = [n.strip().upper() for n in names if n and n.strip()]
    return not named or any(n in HEAD_PARTS or _head_words(n) for n in named)


def _head_words(meaning: str) -> bool:
    words = set(meaning.replace(",", " ").split())
    return bool(words & HEAD_PARTS) or ("BODY" in words and bool(words & {"WHOLE", "ENTIRE"}))


def deface_series(
    paths: Sequence[Path],
    profile: Profile,
    keyring: Keyring,
    regions: Sequence[RegionTemplate] = (),
    ears: bool = False,
    reviews: dict[Path, Any] | None = None,
    safe: Any = None,
    k_plan: Any = None,
) -> tuple[list[SliceResult], dict[str, Any]]:
    """Deface and de-identify the slices of one series. Raises a :class:`MedcloakError` when
    the series as a whole cannot be defaced (every slice is then quarantined with that reason).
    ``reviews``: each slice's writer of its burned-in text review picture (see
    :func:`medcloak.formats.dicom.deidentify_dicom`)."""
    datasets = [read(p) for p in paths]
    first = datasets[0]
    modality = MODALITIES.get(str(first.get("Modality", "")).upper())
    body = str(first.get("BodyPartExamined", "") or "").strip().upper()
    report: dict[str, Any] = {"slices": len(paths)}
    faces = False
    defaced: set[int] = set()  # the slices whose pixels the defacing changed
    if modality is not None and body in HEAD_PARTS and len(datasets) >= MIN_PLANES:
        ts = _transfer_syntax(first)
        check_syntax(ts, "a series")
        if any(_transfer_syntax(ds) != ts for ds in datasets):
            raise UnsupportedInputError("slices in different transfer syntaxes: the series cannot be stacked")
        order, stored, affine = stack(datasets)
        rescales = [_rescale(datasets[i]) for i in order]
        result = deface_stack(stored, rescales, affine, modality, ears)
        report.update(status=result.status, brain_ml=round(result.brain_ml), removed_ml=round(result.removed_ml))
        if result.status == "defaced":
            assert result.mask is not None
            # for the QC picture (the handler's): as a volume's
            report["_picture"] = (stored, result.mask, affine, rescales[0], modality)
            for position, plane in filled_planes(stored, result.mask, rescales, modality).items():
                write_frames(datasets[order[position]], ts, {0: plane})
                defaced.add(order[position])
            faces = True
    else:
        report["status"] = "not a head" if modality is not None else "not CT, MR or PET"
    results = []
    for index, (path, ds) in enumerate(zip(paths, datasets)):
        try:
            released = deidentify_dicom(path, profile, keyring, regions, dataset=ds, faces_cleaned=faces,
                                        review=(reviews or {}).get(path), safe=safe, k_plan=k_plan)
            if index in defaced:
                mark_defaced(released.review)
            results.append(SliceResult(path, released, None))
        except MedcloakError as exc:
            results.append(SliceResult(path, None, exc))
    return results, report
