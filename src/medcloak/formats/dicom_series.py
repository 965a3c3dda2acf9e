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
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([_float_list(ds, "ImagePositionPatient", 3) for ds in datasets])
    order = list(np.argsort(positions @ normal, kind="stable"))
    depth = positions[order] @ normal
    if len(set(np.round(depth, 3))) != len(depth):
        raise UnsupportedInputError("two slices at one position: the series cannot be stacked")
    # each slice's decoded values (pydicom keeps them), their stack and its float32 copy: checked
    # against the per-object ceiling before the first slice is decoded
    voxels = rows * cols * len(datasets)
    itemsize = max(1, (int(first.get("BitsAllocated", 16) or 16) + 7) // 8)
    limits.check_declared(voxels * (2 * itemsize + 4),
                          what=f"the series stacked as one volume ({rows}x{cols}x{len(datasets)})")
    stored = np.stack([_decoded(datasets[i]) for i in order], axis=-1)
    step = (positions[order[-1]] - positions[order[0]]) / max(1, len(order) - 1)
    steps = np.diff(positions[order], axis=0)
    if len(order) > 2 and not np.allclose(steps, step, atol=0.05 * max(1e-6, float(np.linalg.norm(step)))):
        raise UnsupportedInputError("slices not evenly spaced: the series cannot be stacked as one volume")
    lps = np.eye(4)
    lps[:3, 0] = col_dir * spacing[0]  # index 0: row number, along the column direction
    lps[:3, 1] = row_dir * spacing[1]  # index 1: column number, along the row direction
    lps[:3, 2] = step
    lps[:3, 3] = positions[order[0]]
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return [int(i) for i in order], stored, ras


def _decoded(ds: Any) -> np.ndarray:
    """A slice's stored values; a frame that does not decode fails the series with the reason."""
    from .dicom_lossless import _CODEC_ERRORS

    try:
        return ds.pixel_array
    except _CODEC_ERRORS as exc:
        raise CorruptInputError(f"a slice's Pixel Data does not decode ({type(exc).__name__})") from None


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


def _write_slice(ds: Any, ts: str, values: np.ndarray) -> None:
    """Put a slice's new stored values into its Pixel Data, in its own transfer syntax."""
    from pydicom.dataelem import DataElement

    bits = int(ds.BitsAllocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    dtype = np.dtype(f"{'>' if ts == '1.2.840.10008.1.2.2' else '<'}{'i' if signed else 'u'}{bits // 8}")
    if ts in NATIVE:
        data = values.astype(dtype).tobytes()
        elem = ds.get_item(0x7FE00010)
        ds[0x7FE00010] = DataElement(0x7FE00010, elem.VR or "OW", data + b"\x00" * (len(data) & 1))
        return
    if ts in ROUTED:
        from .dicom_lossless import rewrite_frame

        rewrite_frame(ds, ts, values)
        return
    from .dicom_redact import encode_frames

    encode_frames(ds, ts, [values.astype(dtype.newbyteorder("="))])


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
    from ..pixels.deface import deface_mask, fill_value

    datasets = [read(p) for p in paths]
    first = datasets[0]
    modality = MODALITIES.get(str(first.get("Modality", "")).upper())
    body = str(first.get("BodyPartExamined", "") or "").strip().upper()
    report: dict[str, Any] = {"slices": len(paths)}
    faces = False
    defaced: set[int] = set()  # the slices whose pixels the defacing changed
    if modality is not None and body in HEAD_PARTS and len(datasets) >= 8:
        ts = _transfer_syntax(first)
        if ts not in NATIVE and ts not in REENCODABLE and ts not in ROUTED:
            raise UnsupportedInputError("a series in a lossy transfer syntax cannot be defaced exactly")
        if ts in ROUTED:
            _need_decoder(ts)
        if any(_transfer_syntax(ds) != ts for ds in datasets):
            raise UnsupportedInputError("slices in different transfer syntaxes: the series cannot be stacked")
        order, stored, affine = stack(datasets)
        rescales = [_rescale(datasets[i]) for i in order]
        values = stored.astype(np.float32) * np.array([s for s, _ in rescales], np.float32) + np.array(
            [b for _, b in rescales], np.float32
        )
        result = deface_mask(values, affine, modality, ears=ears)
        report.update(status=result.status, brain_ml=round(result.brain_ml), removed_ml=round(result.removed_ml))
        if result.status == "defaced":
            assert result.mask is not None
            background = None if modality == "CT" else fill_value(stored, result.mask, modality, 1.0, 0.0)
            for position, index in enumerate(order):
                removed = result.mask[..., position]
                if not removed.any():
                    continue
                slope, inter = rescales[position]
                plane = stored[..., position].copy()
                # CT: -1024 HU in this slice's own rescale; MR, PET: the series' background
                plane[removed] = fill_value(plane, removed, modality, slope, inter) if background is None else background
                _write_slice(datasets[index], ts, plane)
                defaced.add(index)
            faces = True
    else:
        report["status"] = "not a head" if modality is not None else "not CT, MR or PET"
    results = []
    for index, (path, ds) in enumerate(zip(paths, datasets)):
        try:
            released = deidentify_dicom(path, profile, keyring, regions, dataset=ds, faces_cleaned=faces,
                                        review=(reviews or {}).get(path), safe=safe, k_plan=k_plan)
            if index in defaced and released.review is not None:
                # the review record's pixel change: defaced (over any text redaction, whose boxes stay)
                released.review["pixels"] = {**released.review.get("pixels", {}), "change": "defaced"}
                released.review.setdefault("changed", {})["PixelData"] = "cleaned"
                if "kept" in released.review and "PixelData" in released.review["kept"]:
                    released.review["kept"].remove("PixelData")
            results.append(SliceResult(path, released, None))
        except MedcloakError as exc:
            results.append(SliceResult(path, None, exc))
    return results, report
