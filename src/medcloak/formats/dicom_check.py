"""Is a DICOM object whole? Structure, image attributes and burned-in text, checked before release.

Three checks, used both when reading an input (:func:`medcloak.formats.dicom.read` and
:func:`~medcloak.formats.dicom.deidentify_dicom`) and by ``medcloak verify`` on a release:

- :func:`check_structure` walks the raw bytes: every element's length must end inside the file,
  every sequence and item of undefined length must find its delimiter before the end of the file.
  pydicom reads a value cut by the end of the file as a shorter value, and an unterminated
  sequence as a shorter one, without an error: this walk is what tells a truncated file.
  It reads only element headers (values are stepped over), so it costs a fraction of a read.
- :func:`missing_type1` names the Type 1 attributes an object lacks: Study and Series Instance
  UID and Modality of every object, and for an image (an image storage SOP class, or any object
  with Pixel Data) those of its Image Pixel module, Pixel Data included.
- :func:`burned_in_risk` says when an object with no Burned In Annotation at all must be treated
  as if it had burned-in text: ultrasound, angiography, fluoroscopy, endoscopy, photographs,
  secondary captures and screenshots, where text in the pixels is the rule rather than the exception.

Errors are :class:`medcloak.errors.CorruptInputError` whose text names what is wrong and where
(keywords and tags only, never values).
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

from ..errors import CorruptInputError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

ITEM, ITEM_DELIM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
#: Explicit VRs with a four-byte length after two reserved bytes (PS3.5 7.1.2)
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
KNOWN_VRS = LONG_VRS | {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
IMPLICIT_LE, EXPLICIT_BE, DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"

_SQ_TAGS: frozenset[int] | None = None


def _sq_tags() -> frozenset[int]:
    """Tags whose dictionary VR is SQ (what an implicit VR reader must take for a sequence)."""
    global _SQ_TAGS
    if _SQ_TAGS is None:
        from pydicom.datadict import DicomDictionary

        _SQ_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ")
    return _SQ_TAGS


def _known(tag: int) -> bool:
    from pydicom.datadict import DicomDictionary

    return tag in DicomDictionary


def _name(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _looks_implicit(vr: bytes) -> bool:
    """pydicom's test at the start of a data set: an explicit VR is two capital letters."""
    return len(vr) == 2 and not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)


class _Walk:
    """One walk over a data set's bytes; raises :class:`CorruptInputError` at the first fault."""

    def __init__(self, data: Any, little: bool) -> None:
        self.data = data
        self.end = len(data)
        e = "<" if little else ">"
        self.tag_len = struct.Struct(e + "HHI").unpack_from
        self.explicit = struct.Struct(e + "HH2sH").unpack_from
        self.u32 = struct.Struct(e + "I").unpack_from
        self.delim = struct.pack(e + "HH", 0xFFFE, 0xE0DD)
        self.sq = _sq_tags()

    def _where(self, tag: int, path: tuple[int, ...]) -> str:
        inside = " > ".join(_name(t) for t in path)
        return _name(tag) + (f" (in {inside})" if inside else "")

    def dataset(self, pos: int, stop: int | None, implicit: bool, path: tuple[int, ...], top: bool) -> int:
        """Walk the elements from ``pos`` to ``stop`` (a defined-length item), to the end of the file
        (``top``), or to an item delimiter; returns the position after them."""
        data, end = self.data, self.end
        if not (implicit and not top) and pos + 6 <= end:
            implicit = _looks_implicit(bytes(data[pos + 4 : pos + 6]))
        last = 0
        while True:
            if stop is not None and pos >= stop:
                return pos
            if pos + 8 > end:
                if pos == end and top:
                    return pos
                if pos == end:
                    raise CorruptInputError(
                        f"truncated: an item of {self._where(path[-1], path[:-1])} has no delimiter before "
                        "the end of the file"
                    )
                after = f" after {self._where(last, path)}" if last else ""
                raise CorruptInputError(f"truncated: an element header{after} is cut by the end of the file")
            if implicit:
                group, elem, length = self.tag_len(data, pos)
                vr = None
                head = 8
            else:
                group, elem, vr, length = self.explicit(data, pos)
                head = 8
                if vr in KNOWN_VRS:
                    if vr in LONG_VRS:
                        if pos + 12 > end:
                            raise CorruptInputError(
                                f"truncated: the header of {self._where(group << 16 | elem, path)} is cut by the "
                                "end of the file"
                            )
                        length = self.u32(data, pos + 8)[0]
                        head = 12
                elif not (b"AA" <= vr <= b"ZZ"):  # an implicit VR element among explicit ones
                    group, elem, length = self.tag_len(data, pos)
                    vr = None
            tag = group << 16 | elem
            if tag == ITEM_DELIM:
                if top:
                    raise CorruptInputError("malformed: an item delimiter outside any sequence")
                return pos + 8
            last = tag
            pos += head
            if length != UNDEFINED:
                value_end = pos + length
                is_sq = vr == b"SQ" or (vr is None and tag in self.sq)
                if value_end > end:
                    if is_sq:  # name the innermost element that the end of the file cuts
                        self.sequence(pos, end, implicit, path + (tag,))
                    raise CorruptInputError(f"truncated: {self._where(tag, path)} runs past the end of the file")
                if stop is not None and value_end > stop:
                    raise CorruptInputError(f"malformed: {self._where(tag, path)} runs past the end of its item")
                if is_sq:
                    self.sequence(pos, value_end, implicit, path + (tag,))
                pos = value_end
                continue
            sequence = vr in (b"SQ", b"UN")
            if vr is None:
                if tag in self.sq:
                    sequence = True
                elif not _known(tag) and pos + 4 <= end:
                    sequence = self.tag_len(data, pos)[0] == 0xFFFE and self.tag_len(data, pos)[1] == 0xE000
            if sequence:
                pos = self.sequence(pos, None, implicit, path + (tag,))
            else:
                pos = self.undefined_value(pos, tag, path)

    def sequence(self, pos: int, stop: int | None, implicit: bool, path: tuple[int, ...]) -> int:
        """Walk the items of a sequence (of defined length when ``stop`` is given)."""
        data, end = self.data, self.end
        while True:
            if stop is not None and pos >= stop:
                return pos
            if pos + 8 > end:
                raise CorruptInputError(
                    f"truncated: sequence {self._where(path[-1], path[:-1])} has no delimiter before the end of the file"
                )
            group, elem, length = self.tag_len(data, pos)
            tag = group << 16 | elem
            if tag == SEQ_DELIM:
                return pos + 8
            if tag != ITEM:
                raise CorruptInputError(f"malformed: sequence {self._where(path[-1], path[:-1])} holds a non-item")
            pos += 8
            if length == UNDEFINED:
                pos = self.dataset(pos, None, implicit, path, top=False)
                continue
            item_end = pos + length
            if item_end > end:
                self.dataset(pos, end, implicit, path, top=False)  # the innermost element cut, if any
                raise CorruptInputError(
                    f"truncated: an item of {self._where(path[-1], path[:-1])} runs past the end of the file"
                )
            if stop is not None and item_end > stop:
                raise CorruptInputError(
                    f"malformed: an item of {self._where(path[-1], path[:-1])} runs past the end of its sequence"
                )
            pos = max(self.dataset(pos, item_end, implicit, path, top=False), item_end)

    def undefined_value(self, pos: int, tag: int, path: tuple[int, ...]) -> int:
        """An undefined-length value that is no sequence (encapsulated Pixel Data): items up to a
        sequence delimiter, or, as pydicom does when they are no items, a search for the delimiter."""
        data, end = self.data, self.end
        p = pos
        while p + 8 <= end:
            group, elem, length = self.tag_len(data, p)
            item = group << 16 | elem
            if item == SEQ_DELIM:
                return p + 8
            if item != ITEM:
                break
            p += 8 + length
            if p > end:
                raise CorruptInputError(f"truncated: {self._where(tag, path)} runs past the end of the file")
        else:
            raise CorruptInputError(
                f"truncated: {self._where(tag, path)} has no delimiter before the end of the file"
            )
        found = data.find(self.delim, pos)
        if found < 0 or found + 8 > end:
            raise CorruptInputError(f"truncated: {self._where(tag, path)} has no delimiter before the end of the file")
        return int(found) + 8


def _meta(data: Any, pos: int) -> tuple[int, str | None]:
    """Step over File Meta (group 0002, explicit VR little endian) and Command (group 0000, implicit)
    elements; returns the position after them and the Transfer Syntax UID."""
    end = len(data)
    syntax = None
    implicit = _looks_implicit(bytes(data[pos + 4 : pos + 6])) if pos + 6 <= end else False
    for group_wanted in (0x0002, 0x0000):
        while pos + 8 <= end and int.from_bytes(data[pos : pos + 2], "little") == group_wanted:
            elem = int.from_bytes(data[pos + 2 : pos + 4], "little")
            vr = bytes(data[pos + 4 : pos + 6])
            if group_wanted == 0x0002 and not implicit and vr in LONG_VRS:
                if pos + 12 > end:
                    raise CorruptInputError("truncated: the File Meta Information is cut by the end of the file")
                length, head = int.from_bytes(data[pos + 8 : pos + 12], "little"), 12
            elif group_wanted == 0x0002 and not implicit:
                length, head = int.from_bytes(data[pos + 6 : pos + 8], "little"), 8
            else:
                length, head = int.from_bytes(data[pos + 4 : pos + 8], "little"), 8
            if length == UNDEFINED or pos + head + length > end:
                raise CorruptInputError(
                    f"truncated: {_name(group_wanted << 16 | elem)} runs past the end of the file"
                )
            if group_wanted == 0x0002 and elem == 0x0010:
                syntax = bytes(data[pos + head : pos + head + length]).decode("ascii", "replace").strip("\x00 ")
            pos += head + length
        implicit = True  # the command group is always implicit VR little endian
    return pos, syntax


def check_structure(data: Any) -> None:
    """Raise :class:`CorruptInputError` when the DICOM object in ``data`` (bytes, or any buffer:
    an mmap of the file) is cut short or its nesting is broken; its text starts with
    ``truncated:`` when the end of the file came too early."""
    end = len(data)
    part10 = end >= 132 and bytes(data[128:132]) == b"DICM"
    pos, syntax = _meta(data, 132 if part10 else 0)
    if pos >= end:
        raise CorruptInputError("truncated: no data set after the File Meta Information")
    little, implicit = True, False
    if syntax is None:  # as pydicom guesses: an explicit VR where one is expected, big endian by group
        implicit = bytes(data[pos + 4 : pos + 6]) not in KNOWN_VRS
        little = implicit or int.from_bytes(data[pos : pos + 2], "little") < 1024
    elif syntax == IMPLICIT_LE:
        implicit = True
    elif syntax == EXPLICIT_BE:
        little = False
    elif syntax == DEFLATED:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(bytes(data[pos:]))
        except zlib.error:
            raise CorruptInputError("malformed: the deflated data set does not inflate") from None
        if not inflater.eof:
            raise CorruptInputError("truncated: the deflated data set is cut by the end of the file")
        pos = 0
    try:
        _Walk(data, little).dataset(pos, None, implicit, (), top=True)
    except RecursionError:
        raise CorruptInputError("malformed: sequences nested too deep") from None


# ---- Type 1 attributes --------------------------------------------------------------------------

#: Type 1 in every composite object (SOP Common, General Study, and every series module)
COMMON_TYPE1 = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality")
#: Type 1 attributes of the Image Pixel module (PS3.3 C.7.6.3) that Pixel Data needs to be read
IMAGE_TYPE1 = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel",
               "PhotometricInterpretation", "PixelRepresentation")


def _present(ds: Dataset, keyword: str) -> bool:
    value = ds.get(keyword)
    return value is not None and value != "" and value != b""


def is_image_storage(sop_class: str) -> bool:
    """An image storage SOP class (by the name the standard gives it)."""
    from pydicom.uid import UID

    return "Image Storage" in UID(sop_class).name if sop_class else False


def missing_type1(ds: Dataset) -> list[str]:
    """The Type 1 attributes ``ds`` lacks among those every object needs and, for an image (an
    image storage SOP class, or any object with Pixel Data), those of its Image Pixel module,
    Pixel Data included. A file cut on an element boundary loses what came after the cut: this
    is what notices it."""
    missing = [kw for kw in COMMON_TYPE1 if not _present(ds, kw)]
    has_pixels = 0x7FE00010 in ds
    if not has_pixels:
        if 0x7FE00008 in ds or 0x7FE00009 in ds:  # Float and Double Float Pixel Data: other modules
            return missing
        if not is_image_storage(_text(ds, 0x00080016)):
            return missing
    missing += [kw for kw in IMAGE_TYPE1 if not _present(ds, kw)]
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
    or ``None``: Specimen Label in Image YES, or an Image Type of LABEL (a whole-slide image's
    label). Burned In Annotation does not cover a label: the standard leaves it NO there."""
    if 0x7FE00010 not in ds:
        return None
    if _text(ds, 0x00480010) == "YES":
        return "Specimen Label in Image is YES"
    image_type = [v.strip() for v in _text(ds, 0x00080008).split("\\")]
    if len(image_type) > 2 and image_type[2] == "LABEL":
        return "Image Type is LABEL"
    return None


# ---- on a release -------------------------------------------------------------------------------


def structure_fault(data: Any) -> str | None:
    """What :func:`check_structure` finds wrong in ``data``, or ``None``."""
    try:
        check_structure(data)
    except CorruptInputError as exc:
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
