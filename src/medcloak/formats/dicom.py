"""DICOM objects: sniff, check, de-identify under a profile, write, and check the written bytes.

One call, :func:`deidentify_dicom`, takes one input file to one released file (or to quarantine).
The input is never modified. The output gets a fresh File Meta Information group, a zeroed
preamble, no Data Set Trailing Padding, and the provenance attributes of PS3.15 E.1; its native
Pixel Data keeps no bits above High Bit, and no overlay points into it (:mod:`.dicom_bits`).
"""

from __future__ import annotations

import mmap
import os
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from pydicom.uid import UID

from .. import __version__
from ..errors import (
    CorruptInputError,
    DeidentificationError,
    SkippedObject,
    UnsupportedInputError,
    VerificationError,
)
from ..handlers.base import Released
from ..residual import scan
from ..review_record import MAX_BOXES, pixel_change
from ..rules.actions import Context, Walker
from .dicom_check import (
    burned_in_risk,
    check_structure,
    check_type1,
    slide_label,
    wsi_associated_image,
)
from .dicom_bits import clear_high_bits, high_bits_fault, remove_overlays_in_pixel_data
from .dicom_pixels import STRIPPED_COUNT, check_pixel_data, jpeg_scan_defects, strip_jpeg_frames
from .dicom_review import note_provenance
from .dicom_review import review as review_record
from .dicom_sniff import sniff  # noqa: F401 - where callers found it
from .dicom_write import encode, file_meta_bytes

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from ..pseudonym import Keyring
    from ..rules.profile import Profile
    from ..rules.regions import RegionTemplate

#: receives the frame whose burned-in text was redacted (decoded, before redaction), its boxes and
#: the Photometric Interpretation, for the audit's review picture
Review = Callable[[Any, list[tuple[int, int, int, int]], str], None]
#: medcloak's Implementation Class UID (a UUID-derived UID of its own) and version name.
IMPLEMENTATION_CLASS_UID = "2.25.207440150934658036155290236802447519621"
IMPLEMENTATION_VERSION = "MEDCLOAK_" + __version__.replace(".", "")[:7]
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
#: files larger than this are mapped rather than read whole (their values are copied out anyway)
MAP_ABOVE = 1 << 20


def read(path: Path) -> Dataset:
    """Read a DICOM file for de-identification; errors are :mod:`medcloak.errors` types (a file
    cut short or with broken nesting: :class:`CorruptInputError`, ``truncated: ...``).

    The result is what ``pydicom.dcmread`` gives: read in one pass over the bytes by
    :func:`~medcloak.formats.dicom_read.read_fast` where it is sure of the file, else checked
    by :func:`~medcloak.formats.dicom_check.check_structure` and read by ``dcmread``."""
    import pydicom
    from pydicom.errors import BytesLengthException, InvalidDicomError

    from .dicom_read import read_fast

    with open(path, "rb") as fh:
        kind = sniff(fh.read(132))
        if kind is None:
            raise UnsupportedInputError("not a DICOM file")
        try:
            if os.fstat(fh.fileno()).st_size > MAP_ABOVE:
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
                    ds = read_fast(view, fh) if kind == "part10" else None
                    if ds is not None:
                        return ds
                    # pydicom reads a value or sequence cut by the end of the file as a shorter one
                    check_structure(view)
            else:
                fh.seek(0)
                data = fh.read()
                ds = read_fast(data, fh) if kind == "part10" else None
                if ds is not None:
                    return ds
                check_structure(data)
        except (OSError, ValueError) as exc:
            if isinstance(exc, CorruptInputError):
                raise
            fh.seek(0)
            check_structure(fh.read())  # a file that cannot be mapped
        fh.seek(0)
        try:
            return pydicom.dcmread(fh, force=kind == "raw")
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, NotImplementedError,
                BytesLengthException, TypeError) as exc:  # the last two: a value of a length or
            # a type its VR cannot have (Specific Character Set stored as US: a number, no text)
            raise CorruptInputError(f"unreadable DICOM ({type(exc).__name__})") from None


def patient_identity(ds: Dataset) -> str:
    """The original identity that keys the patient pseudonym and the date offset."""
    def text(tag: int) -> str:
        elem = ds.get_item(tag)
        if elem is None or elem.value is None:
            return ""
        value = elem.value
        if isinstance(value, bytes):
            return value.decode("latin-1").strip("\x00 ")
        return str(value).strip()

    pid = text(0x00100020)
    if pid:
        return "id:" + pid + "|" + text(0x00100021)
    name, birth = text(0x00100010), text(0x00100030)
    if name or birth:
        return "name:" + name + "|" + birth
    return "study:" + text(0x0020000D)


def _uid_of(ds: Dataset, tag: int) -> str:
    elem = ds.get_item(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ")


def _precheck(
    ds: Dataset, profile: Profile, pixels_cleaned: bool = False, faces_cleaned: bool = False,
    label_cleaned: bool | None = None,
) -> None:
    """Conditions under which the object cannot be de-identified by this release (fail closed),
    or is not released by design (:class:`SkippedObject`: a whole slide's label and overview).
    ``pixels_cleaned``: burned-in text was redacted (scanned for, or a region template applied);
    ``label_cleaned``: a region template applied (a slide label needs one: its barcode and
    handwriting are no text the detector vouches for); by default as ``pixels_cleaned``."""
    if label_cleaned is None:
        label_cleaned = pixels_cleaned
    if not _uid_of(ds, 0x00080016) or not _uid_of(ds, 0x00080018):
        raise DeidentificationError("no SOP Class UID or SOP Instance UID")
    associated = wsi_associated_image(ds)
    if associated is not None:
        # removed by design, as the label and macro of every slide format, region templates or
        # not: the slide's own images are released without it (a VOLUME or THUMBNAIL that shows
        # the label is quarantined below)
        raise SkippedObject(f"{associated}: a whole slide's label is never released")
    burned = ds.get("BurnedInAnnotation")
    if burned is not None and str(burned).strip().upper() != "NO" and not pixels_cleaned and not (
        0x7FE00010 not in ds and 0x00420011 in ds and _action_code(profile, 0x00420011) == "D"
    ):  # an encapsulated document's flag: the document is replaced by an empty one (see walk)
        raise DeidentificationError(
            "Burned In Annotation is not NO and its pixels were not cleaned"
            if profile.has("clean-pixel-data")
            else "Burned In Annotation is not NO: needs --option clean-pixel-data"
        )
    risk = burned_in_risk(ds) if not pixels_cleaned else None
    if risk is not None:  # absent is not NO where burned-in text is common
        why = f"Burned In Annotation is absent from {risk}, where burned-in text is common: counted as YES"
        raise DeidentificationError(
            f"{why}, and its pixels were not cleaned"
            if profile.has("clean-pixel-data")
            else f"{why}; needs --option clean-pixel-data"
        )
    label = slide_label(ds) if not label_cleaned else None
    if label is not None:
        raise DeidentificationError(
            f"the image shows a slide label ({label}): needs --option clean-pixel-data with a region "
            "template that covers it"
        )
    faces = ds.get("RecognizableVisualFeatures")
    if faces is not None and str(faces).strip().upper() == "YES" and not faces_cleaned:
        raise DeidentificationError(
            "Recognizable Visual Features = YES: needs --option clean-recognizable-visual-features "
            "and a CT, MR or PET series that can be defaced"
        )


def _action_code(profile: Profile, tag: int) -> str:
    action = profile.resolve(tag)
    return action.code if action is not None else ""


def _add_provenance(ds: Dataset, profile: Profile, pixels_cleaned: bool = False, faces_cleaned: bool = False) -> None:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset as DS
    from pydicom.sequence import Sequence

    ds[0x00120062] = DataElement(0x00120062, "CS", "YES")  # Patient Identity Removed
    ds[0x00120063] = DataElement(  # De-identification Method
        0x00120063, "LO", f"medcloak {__version__} PS3.15 {profile.release}"[:64]
    )
    items = []
    if pixels_cleaned:
        ds[0x00280301] = DataElement(0x00280301, "CS", "NO")  # Burned In Annotation
    if faces_cleaned:
        ds[0x00280302] = DataElement(0x00280302, "CS", "NO")  # Recognizable Visual Features
    for code, meaning in profile.method_codes(pixels_cleaned, faces_cleaned):
        item = DS()
        item[0x00080100] = DataElement(0x00080100, "SH", code)
        item[0x00080102] = DataElement(0x00080102, "SH", "DCM")
        item[0x00080104] = DataElement(0x00080104, "LO", meaning)
        items.append(item)
    ds[0x00120064] = DataElement(0x00120064, "SQ", Sequence(items))
    if profile.has("retain-long-full-dates"):
        temporal = "UNMODIFIED"
    elif profile.has("retain-long-modified-dates"):
        temporal = "MODIFIED"
    else:
        temporal = "REMOVED"
    ds[0x00280303] = DataElement(0x00280303, "CS", temporal)


#: transfer syntaxes whose pixel data is exactly what was encoded: native, deflated, RLE, the
#: lossless JPEG processes, JPEG-LS, JPEG 2000, HTJ2K and JPEG XL lossless. Every other one (JPEG
#: baseline and extended, JPEG-LS near-lossless, JPEG 2000 and HTJ2K "lossless or lossy", video,
#: JPEG XL, private ones) may have lost information.
LOSSLESS_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.98", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.58",
    "1.2.840.10008.1.2.4.65", "1.2.840.10008.1.2.4.66", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
})


def copy_rank(ds: Dataset, transfer_syntax: str) -> tuple[int, ...]:
    """How good a copy of its SOP instance the object is, as a curator chooses among copies that
    share a SOP Instance UID; the lowest rank is released. In order: pixel data in a lossy transfer
    syntax ranks after a lossless or native one (judged by the syntax: a copy decompressed from a
    lossy one, Lossy Image Compression 01, still beats its lossy re-encodings); then Lossy Image
    Compression 01 after 00 or none; then JPEG frames whose scan does not fit their coding
    process; then fewer pixel bits (frames x rows x columns x samples x bits stored); then fewer
    top-level elements. Ties go to the input path (the engine's settlement)."""
    pixels = 0x7FE00010 in ds
    lossy = int(pixels and transfer_syntax not in LOSSLESS_TRANSFER_SYNTAXES)
    flagged = int(str(ds.get("LossyImageCompression", "") or "").strip() == "01")
    amount = 0
    if pixels:
        amount = 1
        for keyword in ("NumberOfFrames", "Rows", "Columns", "SamplesPerPixel", "BitsStored"):
            try:
                amount *= max(int(ds.get(keyword) or 1), 1)
            except (TypeError, ValueError):
                pass  # a value that is not a number counts as 1 (Pixel Data's own check judges it)
    return (lossy, flagged, jpeg_scan_defects(ds, transfer_syntax), -amount, -len(ds))


def _transfer_syntax(ds: Dataset) -> str:
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def deidentify_dataset(
    ds: Dataset, profile: Profile, keyring: Keyring, pixels_cleaned: bool = False, faces_cleaned: bool = False,
    label_cleaned: bool | None = None,
) -> tuple[Context, str]:
    """Apply the profile to a dataset in place; returns the walk's context and the original
    patient identity. ``pixels_cleaned``: burned-in text was scanned for and redacted, or region
    templates redacted; ``label_cleaned``: region templates did (see :func:`_precheck`)."""
    _precheck(ds, profile, pixels_cleaned, faces_cleaned, label_cleaned)
    identity = patient_identity(ds)
    days, seconds = keyring.date_offset(identity)
    ctx = Context(profile, keyring, identity, days, seconds)
    walker = Walker(ctx)
    if profile.strict:
        from ..rules.strict import prune

        prune(ds, profile, walker._remove)  # the IOD's allow-list first; the walk judges the rest
    walker.walk(ds)
    walker.finish()
    if ctx.overlay_seen:
        raise DeidentificationError(
            "overlay bitplanes kept by clean-graphics need text detection, not available in this release"
        )
    _add_provenance(ds, profile, pixels_cleaned, faces_cleaned)
    note_provenance(ds, ctx, pixels_cleaned, faces_cleaned)
    return ctx, identity


def _clean_pixels(
    ds: Dataset, transfer_syntax: str, profile: Profile, regions: Sequence[RegionTemplate],
    review: Review | None = None, safe: Any = None, boxes_out: list[list[int]] | None = None,
) -> dict[str, int]:
    """Clean Pixel Data: scan every frame of an object where burned-in text is expected (see
    :mod:`medcloak.formats.dicom_burned`) and redact the padded boxes found, with the boxes of
    the region templates that match ``ds``; on any other object, the templates' boxes alone.
    Returns the actions for the manifest, empty when nothing was scanned and no template matches:
    ``pixel-frames-scanned`` and ``pixel-text-boxes-redacted`` (boxes found, over all frames) for
    a scanned object, even when no text was found; ``pixel-regions-redacted`` when a template
    matched. An ``outside_ultrasound_regions`` template on an image without usable ultrasound
    regions blanks the whole image: recorded as ``pixel-whole-image-blanked`` (the run logs a
    warning). ``review`` is given the frame with the most boxes (decoded, before redaction),
    its boxes and the Photometric Interpretation, when text was found. ``safe``: a site's OCR safe
    list: boxes read as its safe annotations are kept (``pixel-text-boxes-kept-safe``).
    ``boxes_out`` receives the boxes redacted, as ``[frame, x0, y0, x1, y1]``: the text found,
    frame by frame, then the templates' (which every frame gets) once, on frame 0; at most
    :data:`~medcloak.review_record.MAX_BOXES`."""
    actions: dict[str, int] = {}
    if not profile.has("clean-pixel-data") or 0x7FE00010 not in ds:
        return actions
    from ..rules.regions import blanks_whole_image, select
    from .dicom_burned import first_frame, scan_frames, scan_reason
    from .dicom_redact import redact_dataset

    boxes, names, fill = select(ds, list(regions)) if regions else ([], [], "black")
    found = scan_frames(ds, transfer_syntax, safe) if scan_reason(ds) is not None else None  # before painting
    # with no text found to picture, the templates' boxes are pictured on frame 1, before painting
    first = (first_frame(ds, transfer_syntax)
             if review is not None and boxes and (found is None or found.review_frame is None) else None)
    if found is not None:
        per = [frame + boxes for frame in found.boxes]
        if boxes_out is not None:
            boxes_out.extend(islice(([i, *box] for i, frame in enumerate(found.boxes) for box in frame), MAX_BOXES))
            boxes_out.extend([0, *box] for box in boxes[: MAX_BOXES - len(boxes_out)])
        # text found and no exact route for this transfer syntax raises: quarantined
        redact_dataset(ds, transfer_syntax, [], fill, frame_boxes=per)
        actions["pixel-frames-scanned"] = len(per)
        actions["pixel-text-boxes-redacted"] = found.found
        if found.kept:
            actions["pixel-text-boxes-kept-safe"] = found.kept
        if review is not None and found.review_frame is not None:
            review(found.review_frame, per[found.review_index], found.photometric)
    elif names:
        redact_dataset(ds, transfer_syntax, boxes, fill)
        if boxes_out is not None:
            boxes_out.extend([0, *box] for box in boxes[:MAX_BOXES])
    if first is not None:
        review(first, boxes, str(ds.get("PhotometricInterpretation", "")).strip().upper())
    if names:
        # a matching template whose boxes miss the image still vouches for the image: text is
        # where the template says, and there is none inside the image
        actions["pixel-regions-redacted"] = 1
        if blanks_whole_image(ds, list(regions)):
            actions["pixel-whole-image-blanked"] = 1
    return actions


def deidentify_dicom(
    path: Path,
    profile: Profile,
    keyring: Keyring,
    regions: Sequence[RegionTemplate] = (),
    dataset: Dataset | None = None,
    faces_cleaned: bool = False,
    review: Review | None = None,
    safe: Any = None,
    k_plan: Any = None,
) -> Released:
    """De-identify one DICOM file in memory. Raises a :class:`medcloak.errors.MedcloakError`
    subclass when the object must be quarantined or skipped. ``dataset``: the file already read
    (and defaced, ``faces_cleaned``, as part of its series); ``review``: called with the frame
    whose burned-in text was redacted, for the audit's picture; ``safe``: a site's OCR safe list
    (see :func:`_clean_pixels`); ``k_plan``: ``--k-anonymity``'s recoding of the patient
    characteristics, applied after the profile (see :mod:`medcloak.generalise`)."""
    ds = read(path) if dataset is None else dataset
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY:
        raise SkippedObject("media directory (DICOMDIR): indexes original paths, not released")
    if "DirectoryRecordSequence" in ds:
        raise SkippedObject("media directory (DICOMDIR): indexes original paths, not released")
    transfer_syntax = _transfer_syntax(ds)
    try:
        check_type1(ds)
        check_pixel_data(ds, transfer_syntax)
        # not the image: cleared under every option, before anything reads the pixels
        bits_cleared = clear_high_bits(ds, transfer_syntax)
        overlays_removed = remove_overlays_in_pixel_data(ds)
        rank = copy_rank(ds, transfer_syntax)
        originals = (_uid_of(ds, 0x0020000D), _uid_of(ds, 0x0020000E), _uid_of(ds, 0x00080018))
        boxes: list[list[int]] = []
        cleaned = _clean_pixels(ds, transfer_syntax, profile, regions, review, safe, boxes)
        ctx, identity = deidentify_dataset(ds, profile, keyring, pixels_cleaned=bool(cleaned), faces_cleaned=faces_cleaned,
                                           label_cleaned="pixel-regions-redacted" in cleaned)
        ctx.counts.update(cleaned)
        if k_plan is not None:
            from ..generalise import apply as generalise

            ctx.counts.update(generalise(ds, k_plan, keyring.patient_id(identity), str(path), ctx.changed))
        if bits_cleared:
            ctx.counts["pixel-high-bits-cleared"] = bits_cleared
        if overlays_removed:
            ctx.counts["overlays-in-pixel-data-removed"] = overlays_removed
        if strip_jpeg_frames(ds, transfer_syntax):
            ctx.counts[STRIPPED_COUNT[transfer_syntax]] += 1
        if not UID(transfer_syntax).is_implicit_VR and any(ds.get_item(t).VR is None for t in ds.keys()):
            # encoded against its own transfer syntax: resolve every VR so it is written right
            for _elem in ds.iterall():
                pass
        meta = file_meta_bytes(
            _uid_of(ds, 0x00080016), _uid_of(ds, 0x00080018), transfer_syntax,
            IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION,
        )
        data = encode(ds, transfer_syntax, meta)
        fault = high_bits_fault(ds, transfer_syntax)  # as written: no later step may set them
    except (CorruptInputError, DeidentificationError, UnsupportedInputError):
        raise
    except (ValueError, TypeError, KeyError, AttributeError, EOFError, OverflowError, LookupError,
            NotImplementedError) as exc:
        # pydicom decodes lazily: a malformed element surfaces only when touched (an unknown VR:
        # NotImplementedError)
        raise CorruptInputError(f"malformed element ({type(exc).__name__})") from None
    if fault is not None:
        raise VerificationError(f"{fault} in the written object")
    hit = scan(
        data, ctx.needles, _native_pixel_length(ds, transfer_syntax), original=path.read_bytes,
        generated=ctx.generated,
    )
    if hit is not None:
        raise VerificationError(f"residual identifier from {hit} found in the written object")
    new_patient = keyring.patient_id(identity)
    relpath = "/".join(
        (
            new_patient,
            keyring.token("study", originals[0] or identity),
            keyring.token("series", originals[1] or originals[0] or identity),
            keyring.token("instance", originals[2]) + ".dcm",
        )
    )
    original_id = identity[3:].rsplit("|", 1)[0] if identity.startswith("id:") else identity
    pixels = _pixel_change(cleaned, boxes)
    if pixels is not None or bits_cleared or overlays_removed:
        ctx.changed["PixelData"] = "cleaned"  # (a defaced slice's: see dicom_series)
    return Released(data, relpath, ctx.uid_pairs, (original_id, new_patient), dict(ctx.counts), rank,
                    review=review_record(ds, ctx, relpath, pixels))


def _pixel_change(cleaned: dict[str, int], boxes: list[list[int]]) -> dict[str, Any] | None:
    """The review record's ``pixels`` from :func:`_clean_pixels`' counts and boxes (its picture,
    when one was written, is added by the handler, which knows the object's id)."""
    change = pixel_change(cleaned)
    if not change:
        return None  # scanned, no text found: the pixels are untouched
    pixels: dict[str, Any] = {"change": change, "boxes": boxes}
    if "pixel-frames-scanned" in cleaned:
        pixels["frames"] = cleaned["pixel-frames-scanned"]
    return pixels


def _native_pixel_length(ds: Dataset, transfer_syntax: str) -> int:
    """Length of native (uncompressed) Pixel Data, which holds no text (a hint for the scan)."""
    from pydicom.uid import UID

    if "PixelData" not in ds or UID(transfer_syntax).is_encapsulated:
        return 0
    value = ds.get_item(0x7FE00010).value
    return len(value) if value else 0
