"""Is a DICOM object whole? Structure, image attributes and burned-in text, checked before release.

Three checks, used both when reading an input (:func:`medcloak.formats.dicom.read` and
:func:`~medcloak.formats.dicom.deidentify_dicom`) and by ``medcloak verify`` on a release:

- :func:`check_structure` walks the raw bytes: every element's length must end inside the file,
  every sequence and item of undefined length must find its delimiter before the end of the file.
  pydicom reads a value cut by the end of the file as a shorter value, and an unterminated
  sequence as a shorter one, without an error: this walk is what tells a truncated file.
  It reads only element headers (values are stepped over), so it costs a fraction of a read.
  A deflated data set is inflated in bounded chunks, first only counted against the run's limit
  (:func:`medcloak.limits.inflate_limit`), its element and item headers read as they come: a bomb
  is refused (a :class:`~medcloak.errors.LimitError`) at the header of the value that declares
  too much, or else once it has inflated beyond the limit, having cost a chunk of memory; then it is
  inflated for the walk, and pydicom inflates it again, within the limit.
  The walk is :mod:`medcloak.formats.dicom_elements`' (the leak scan's reader walks alike);
  what is said of a fault, here.
- :func:`missing_type1` names the Type 1 attributes an object lacks: Study and Series Instance
  UID and Modality of every object, and for an image (an image storage SOP class, or any object
  with Pixel Data) those of its Image Pixel module, Pixel Data included.
- :func:`burned_in_risk` says when an object with no Burned In Annotation at all must be treated
  as if it had burned-in text: ultrasound, angiography, fluoroscopy, endoscopy, photographs,
  secondary captures and screenshots, where text in the pixels is the rule rather than the exception.

Errors are :class:`medcloak.errors.CorruptInputError` (a deflated data set beyond the run's limit:
:class:`~medcloak.errors.LimitError`) whose text names what is wrong and where (keywords and
tags only, never values).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import CorruptInputError, LimitError
from ..limits import check_declared, inflate_limit, refuse_inflated
from .dicom_elements import DEFLATED, KNOWN_VRS, Fault, Walker, encoding, file_meta, inflate

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: What each :class:`~medcloak.formats.dicom_elements.Fault` says: ``where`` names the element and
#: the sequences it is in, ``seq`` the sequence, ``after`` the element before a cut header.
_MESSAGES = {
    "header cut": "truncated: an element header{after} is cut by the end of the file",
    "long header cut": "truncated: the header of {where} is cut by the end of the file",
    "past end": "truncated: {where} runs past the end of the file",
    "past item": "malformed: {where} runs past the end of its item",
    "stray item delimiter": "malformed: an item delimiter outside any sequence",
    "item open": "truncated: an item of {seq} has no delimiter before the end of the file",
    "item past end": "truncated: an item of {seq} runs past the end of the file",
    "item past sequence": "malformed: an item of {seq} runs past the end of its sequence",
    "sequence open": "truncated: sequence {seq} has no delimiter before the end of the file",
    "non-item": "malformed: sequence {seq} holds a non-item",
    "no delimiter": "truncated: {where} has no delimiter before the end of the file",
    "deep": "malformed: sequences nested too deep",
    "meta cut": "truncated: the File Meta Information is cut by the end of the file",
    "meta past end": "truncated: {where} runs past the end of the file",
    "deflate": "malformed: the deflated data set does not inflate",
    "deflate cut": "truncated: the deflated data set is cut by the end of the file",
}


def _name(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _where(tag: int, path: tuple[int, ...]) -> str:
    inside = " > ".join(_name(t) for t in path)
    return _name(tag) + (f" (in {inside})" if inside else "")


def _message(fault: Fault) -> str:
    tag, path = fault.tag, fault.path
    return _MESSAGES[fault.kind].format(
        where=_where(tag, path),
        seq=_where(path[-1], path[:-1]) if path else "",
        after=f" after {_where(tag, path)}" if tag else "",
    )


def _count_deflated(data: Any, pos: int) -> None:
    """Inflate the deflated data set at ``pos`` in bounded chunks, counted against the run's
    limit and kept nowhere: :class:`~medcloak.errors.LimitError` when it inflates beyond the
    limit or an element declares a value beyond it, :class:`CorruptInputError` when it does not
    inflate."""
    stored = len(data) - pos
    try:
        inflate(data, pos, inflate_limit(stored), keep=False)
    except Fault as fault:
        if fault.kind == "deflate declared":
            where = _where(fault.tag, ()) if fault.tag else "an item"
            check_declared(fault.at, what=f"{where} of the deflated data set", stored=stored, compressed=True)
        if fault.kind in ("deflate declared", "deflate limit"):
            raise refuse_inflated("the deflated data set", stored) from None
        raise CorruptInputError(_message(fault)) from None


def check_structure(data: Any) -> None:
    """Raise :class:`CorruptInputError` when the DICOM object in ``data`` (bytes, or any buffer:
    an mmap of the file) is cut short or its nesting is broken; its text starts with
    ``truncated:`` when the end of the file came too early."""
    end = len(data)
    part10 = end >= 132 and bytes(data[128:132]) == b"DICM"
    try:
        meta: list[tuple[int, bytes | None, int, int]] = []
        pos, syntax = file_meta(data, 132 if part10 else 0, meta)
        if any(vr is not None and bytes(vr) not in KNOWN_VRS for _tag, vr, _at, _n in meta):
            # pydicom raises on such an element when it is touched (NotImplementedError)
            raise CorruptInputError("malformed: a File Meta Information element of a VR that does not exist")
        if pos >= end:
            raise CorruptInputError("truncated: no data set after the File Meta Information")
        little, implicit = encoding(data, pos, syntax)
        if syntax == DEFLATED:
            _count_deflated(data, pos)  # refused before it is held
            data, pos = inflate(data, pos), 0
        Walker(data, little).dataset(pos, None, implicit, (), top=True)
    except Fault as fault:
        raise CorruptInputError(_message(fault)) from None
    except RecursionError:
        raise CorruptInputError(_MESSAGES["deep"]) from None


def check_inflation(path: Any) -> None:
    """Raise :class:`~medcloak.errors.LimitError` when the file at ``path`` holds a deflated data
    set that inflates beyond the run's limit, :class:`CorruptInputError` when it does not inflate;
    counted in bounded chunks, nothing kept. For a reader that would give the file to pydicom,
    which inflates all of it at once, without :func:`check_structure` first."""
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        end = len(view)
        try:
            pos, syntax = file_meta(view, 132 if end >= 132 and view[128:132] == b"DICM" else 0)
        except Fault as fault:
            raise CorruptInputError(_message(fault)) from None
        if syntax == DEFLATED:
            _count_deflated(view, pos)


# ---- Type 1 attributes --------------------------------------------------------------------------

#: Type 1 in every composite object (SOP Common, General Study, and every series module)
COMMON_TYPE1 = {"SOPClassUID": 0x00080016, "SOPInstanceUID": 0x00080018, "StudyInstanceUID": 0x0020000D,
                "SeriesInstanceUID": 0x0020000E, "Modality": 0x00080060}
#: Type 1 attributes of the Image Pixel module (PS3.3 C.7.6.3) that Pixel Data needs to be read
IMAGE_TYPE1 = {"Rows": 0x00280010, "Columns": 0x00280011, "BitsAllocated": 0x00280100, "BitsStored": 0x00280101,
               "HighBit": 0x00280102, "SamplesPerPixel": 0x00280002, "PhotometricInterpretation": 0x00280004,
               "PixelRepresentation": 0x00280103}


#: those of them that are text (UI, CS): padding alone is no value
_TEXT_TYPE1 = frozenset({*COMMON_TYPE1.values(), 0x00280004})


def _present(ds: Dataset, tag: int) -> bool:
    """Whether ``ds`` holds a non-empty value at ``tag``, read from the raw element where it is
    still raw (a kept element stays undecoded, and is written back byte for byte)."""
    elem = ds.get_item(tag)
    value = elem.value if elem is not None else None
    if isinstance(value, bytes):
        return bool(value.strip(b"\x00 ") if tag in _TEXT_TYPE1 else value)
    if isinstance(value, str):
        return bool(value.strip("\x00 "))
    return value is not None


def is_image_storage(sop_class: str) -> bool:
    """An image storage SOP class (by the name the standard gives it)."""
    from pydicom.uid import UID

    return "Image Storage" in UID(sop_class).name if sop_class else False


def missing_type1(ds: Dataset) -> list[str]:
    """The Type 1 attributes ``ds`` lacks among those every object needs and, for an image (an
    image storage SOP class, or any object with Pixel Data), those of its Image Pixel module,
    Pixel Data included. A file cut on an element boundary loses what came after the cut: this
    is what notices it."""
    missing = [kw for kw, tag in COMMON_TYPE1.items() if not _present(ds, tag)]
    has_pixels = 0x7FE00010 in ds
    if not has_pixels:
        if 0x7FE00008 in ds or 0x7FE00009 in ds:  # Float and Double Float Pixel Data: other modules
            return missing
        if not is_image_storage(_text(ds, 0x00080016)):
            return missing
    missing += [kw for kw, tag in IMAGE_TYPE1.items() if not _present(ds, tag)]
    if not has_pixels:
        missing.append("PixelData")
    return missing


def check_type1(ds: Dataset) -> None:
    """Raise :class:`CorruptInputError` naming the Type 1 attributes that ``ds`` lacks."""
    missing = missing_type1(ds)
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise CorruptInputError(f"missing Type 1 attribute{s} {', '.join(missing)}")


# ---- burned-in text -----------------------------------------------------------------------------

#: Modalities whose images commonly carry burned-in text (patient banners, measurements, screenshots)
BURNED_IN_MODALITIES = frozenset({"US", "IVUS", "XA", "RF", "ES", "OT", "XC", "SC"})
#: SOP classes likewise: secondary captures, ultrasound, X-ray angiography and fluoroscopy,
#: visible-light endoscopy and photography (still and video)
BURNED_IN_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.7": "a secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.1": "a secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.2": "a secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.3": "a secondary capture",
    "1.2.840.10008.5.1.4.1.1.7.4": "a secondary capture",
    "1.2.840.10008.5.1.4.1.1.6": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.6.1": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.6.2": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.3": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.3.1": "an ultrasound image",
    "1.2.840.10008.5.1.4.1.1.12.1": "an X-ray angiography image",
    "1.2.840.10008.5.1.4.1.1.12.1.1": "an X-ray angiography image",
    "1.2.840.10008.5.1.4.1.1.12.2": "a fluoroscopy image",
    "1.2.840.10008.5.1.4.1.1.12.2.1": "a fluoroscopy image",
    "1.2.840.10008.5.1.4.1.1.12.3": "an X-ray angiography image",
    "1.2.840.10008.5.1.4.1.1.77.1.1": "an endoscopy image",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "an endoscopy video",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "a photograph",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "a photographic video",
}
#: Projection radiography, where a screenshot or secondary capture is recognised by its header
SCREENSHOT_MODALITIES = frozenset({"DX", "CR", "MG"})


def _text(ds: Dataset, tag: int) -> str:
    elem = ds.get_item(tag)
    value = elem.value if elem is not None else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    elif value is not None and not isinstance(value, str) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)  # a multi-valued attribute already decoded
    return str(value or "").strip("\x00 ").upper()


def burned_in_risk(ds: Dataset) -> str | None:
    """What kind of object ``ds`` is, when its pixels commonly carry burned-in text and it has no
    Burned In Annotation to say otherwise (``"a US image"``, ``"a secondary capture"``, ...);
    ``None`` when an absent attribute may be taken as NO (or the object has no Pixel Data)."""
    if 0x7FE00010 not in ds or 0x00280301 in ds:
        return None
    kind = BURNED_IN_SOP_CLASSES.get(_text(ds, 0x00080016))
    if kind is not None:
        return kind
    modality = _text(ds, 0x00080060)
    if modality in BURNED_IN_MODALITIES:
        return f"a {modality} image"
    if modality in SCREENSHOT_MODALITIES:
        if 0x00080064 in ds:
            return f"a {modality} secondary capture (Conversion Type present)"
        image_type = _text(ds, 0x00080008).split("\\")
        if len(image_type) > 1 and image_type[1].strip() == "SECONDARY":
            return f"a {modality} secondary image (Image Type SECONDARY)"
    return None


def slide_label(ds: Dataset) -> str | None:
    """Why the pixels of ``ds`` show a slide's label (which names the specimen, often the patient),
    or ``None``: Specimen Label in Image YES, or an Image Type of LABEL or OVERVIEW (a whole-slide
    image's label, and its overview, a photograph of the whole slide, label included, whatever
    Specimen Label in Image says). Burned In Annotation does not cover a label: the standard leaves
    it NO there."""
    if 0x7FE00010 not in ds:
        return None
    if _text(ds, 0x00480010) == "YES":
        return "Specimen Label in Image is YES"
    image_type = [v.strip() for v in _text(ds, 0x00080008).split("\\")]
    if len(image_type) > 2 and image_type[2] in ("LABEL", "OVERVIEW"):
        return f"Image Type is {image_type[2]}"
    return None


#: VL Whole Slide Microscopy Image Storage
WSI_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"
#: The associated images of a whole slide (Image Type value 3 of its instances) that are never
#: released, and why (the manifest's reason)
WSI_ASSOCIATED = {"LABEL": "slide label image", "OVERVIEW": "slide overview image (shows the label)"}


def wsi_associated_image(ds: Dataset) -> str | None:
    """What ``ds`` is when it is an instance of a whole-slide image that only pictures the slide's
    label ("slide label image") or the whole slide, label included ("slide overview image (shows the
    label)"): Image Type value 3 LABEL or OVERVIEW in the VL Whole Slide Microscopy IOD; else
    ``None`` (VOLUME, THUMBNAIL, LOCALIZER: the slide's own images)."""
    if _text(ds, 0x00080016) != WSI_STORAGE:
        return None
    image_type = [v.strip() for v in _text(ds, 0x00080008).split("\\")]
    return WSI_ASSOCIATED.get(image_type[2]) if len(image_type) > 2 else None


# ---- on a release -------------------------------------------------------------------------------


def structure_fault(data: Any) -> str | None:
    """What :func:`check_structure` finds wrong in ``data``, or ``None``."""
    try:
        check_structure(data)
    except (CorruptInputError, LimitError) as exc:
        return str(exc)
    return None


def release_faults(ds: Dataset) -> list[str]:
    """What a released object must not show: a missing Type 1 attribute, burned-in text declared,
    an absent Burned In Annotation where burned-in text is common, or a slide label whose pixels
    no region template cleaned (method code 113101)."""
    faults = []
    missing = missing_type1(ds)
    if missing:
        faults.append(f"missing Type 1 attribute{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if 0x00280301 in ds and _text(ds, 0x00280301) != "NO":
        faults.append("Burned In Annotation is not NO")
    risk = burned_in_risk(ds)
    if risk is not None:
        faults.append(f"Burned In Annotation is absent from {risk}, where burned-in text is common")
    label = slide_label(ds)
    codes = {_text(item, 0x00080100) for item in ds.get("DeidentificationMethodCodeSequence", None) or ()}
    if label is not None and "113101" not in codes:
        faults.append(f"the image shows a slide label ({label}) and its pixels were not cleaned")
    return faults
