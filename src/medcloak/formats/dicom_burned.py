"""Burned-in text in DICOM frames, under the Clean Pixel Data option: which objects are scanned,
and each frame's boxes.

Scanned (:func:`scan_reason`): every object whose Burned In Annotation is present and not NO;
every object of the modalities and classes where text is commonly burned in, whatever its Burned
In Annotation says (it is often absent, and sometimes wrong): ultrasound, every secondary capture,
X-ray angiography and fluoroscopy, endoscopy, other and external-camera photography, general
microscopy, the projection radiographs (DX, CR, MG, IO, PX), and nuclear medicine screen captures
(Conversion Type present or Image Type SECONDARY). A CT, MR or PET image without the attribute is
not scanned: absent counts as NO there, as it does without the option.

Every frame is decoded as pydicom gives it (stored values; YBR converted to RGB, palette colour
looked up) and handed to the detector (:mod:`medcloak.pixels.burned_in`). A frame that cannot be
decoded fails the object (fail closed: its text was never looked for).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DeidentificationError, MedcloakError
from .dicom_check import BURNED_IN_MODALITIES, BURNED_IN_SOP_CLASSES, _text, burned_in_risk

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Box = tuple[int, int, int, int]

#: modalities scanned besides those where an absent Burned In Annotation already counts as YES:
#: general microscopy, intra-oral and panoramic radiographs, and every projection radiograph
SCANNED_MODALITIES = BURNED_IN_MODALITIES | {"GM", "IO", "PX", "DX", "CR", "MG"}


def scan_reason(ds: Dataset) -> str | None:
    """Why the frames of ``ds`` are scanned for burned-in text under Clean Pixel Data, or ``None``
    (no Pixel Data, or an object where text is not expected and none is declared)."""
    if 0x7FE00010 not in ds:
        return None
    if 0x00280301 in ds and _text(ds, 0x00280301) != "NO":
        return "Burned In Annotation is not NO"
    kind = BURNED_IN_SOP_CLASSES.get(_text(ds, 0x00080016))
    if kind is not None:
        return kind
    modality = _text(ds, 0x00080060)
    if modality in SCANNED_MODALITIES:
        return f"a {modality} image"
    if modality == "NM":
        image_type = _text(ds, 0x00080008).split("\\")
        if 0x00080064 in ds or (len(image_type) > 1 and image_type[1].strip() == "SECONDARY"):
            return "an NM screen capture"
    return burned_in_risk(ds)


@dataclass
class FrameScan:
    """What the scan of an object's frames found: the padded boxes of each frame, and the frame
    with the most boxes (decoded, before redaction) for the review picture."""

    boxes: list[list[Box]] = field(default_factory=list)
    review_frame: np.ndarray | None = None
    review_index: int = -1
    photometric: str = ""
    #: boxes the OCR second opinion read as a site's safe annotations, left unredacted
    kept: int = 0

    @property
    def found(self) -> int:
        return sum(len(b) for b in self.boxes)


def _decoded(ds: Dataset, transfer_syntax: str) -> Iterator[np.ndarray]:
    """Each frame of ``ds`` as pydicom decodes it (stored values, YBR as RGB), palette colour
    looked up."""
    from pydicom.pixels import get_decoder

    from .dicom_codecs import register

    register()  # JPEG lossless process 14, when pydicom has no decoder of its own here
    palette = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "PALETTE COLOR"
    for arr, _meta in get_decoder(transfer_syntax).iter_array(ds):
        if palette:
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
        yield arr


def scan_frames(ds: Dataset, transfer_syntax: str, safe: Any = None) -> FrameScan:
    """Decode every frame of ``ds`` and find its text (``safe``: a site's OCR safe list, see
    :func:`medcloak.pixels.burned_in.detect`). Raises :class:`DeidentificationError` when a frame
    cannot be decoded, or the frames decoded are not the frames declared."""
    from ..pixels.burned_in import detect
    from .dicom_pixels import check_decoded

    check_decoded(ds, frames=1)  # one frame at a time: its declared size, before it is decoded
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    try:
        count = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        count = 1
    try:
        bits = int(ds.get("BitsStored", 0) or 0) or None
    except (TypeError, ValueError):
        bits = None
    result = FrameScan(photometric=photometric)
    try:
        for i, arr in enumerate(_decoded(ds, transfer_syntax)):
            kept: list[Any] = []
            boxes = detect(arr, photometric if arr.ndim == 2 else "RGB", bits if arr.ndim == 2 else None,
                           safe, kept)
            result.kept += len(kept)
            result.boxes.append(boxes)
            best = len(result.boxes[result.review_index]) if result.review_index >= 0 else 0
            if len(boxes) > best:
                result.review_frame, result.review_index = np.array(arr, copy=True), i
    except MedcloakError:
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed: text not looked for is text released
        raise DeidentificationError(
            f"frame {len(result.boxes) + 1} of {count} cannot be decoded for the burned-in text scan "
            f"({type(exc).__name__})"
        ) from None
    if len(result.boxes) != count:
        raise DeidentificationError(f"{len(result.boxes)} frames decoded of {count} declared: burned-in text not scanned")
    return result


def first_frame(ds: Dataset, transfer_syntax: str) -> np.ndarray:
    """The first frame of ``ds`` as :func:`scan_frames` decodes it, for the review picture of the
    region templates' boxes alone. Raises :class:`DeidentificationError` when it cannot be
    decoded."""
    from .dicom_pixels import check_decoded

    check_decoded(ds, frames=1)
    try:
        arr = next(_decoded(ds, transfer_syntax))
    except Exception as exc:  # noqa: BLE001 - fail closed, as the scan does
        raise DeidentificationError(f"the first frame cannot be decoded for the review picture ({type(exc).__name__})") from None
    return np.array(arr, copy=True)
