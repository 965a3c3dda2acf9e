"""XML metadata of TIFF-family slides (Philips ImageDescription, Ventana XMP), cleaned by
allow-list: the document is parsed, rebuilt with only the elements, attributes and values that
describe the image, and serialised compactly, so the result is valid XML and (every value kept
being one the input had) never longer than the input unless nothing could be dropped.

An element or attribute not named here is dropped with everything under it; a kept name whose
value has not the expected form (a number, a short token) is dropped too. The associated images
that some vendors embed in their XML (Philips' label and macro as base64 JPEG) go with the
element that holds them. A document with a DOCTYPE or entity declaration is refused (nothing a
scanner writes has one, and entity expansion is how XML bombs work); one that does not parse is
corrupt.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from ..errors import CorruptInputError, DeidentificationError, UnsupportedInputError

NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
NUMS = r'[-+0-9.eE" ]{1,400}'  # one number or several, possibly quoted (Philips' IDoubleArray)
TOKEN = r"[A-Za-z0-9 ._\-]{0,40}"
QTOKENS = r'[A-Za-z0-9 ._\-"]{0,120}'  # quoted tokens ("1.6.5505" "20111209_R44")
HEX16 = r"0x[0-9A-Fa-f]{4}"

Form = str | Callable[[str], str | None]  # a regex the value must match, or a cleaner


def parse(raw: bytes) -> ET.Element:
    data = raw.rstrip(b"\x00")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsupportedInputError("slide XML metadata with a DOCTYPE or entity declaration")
    try:
        return ET.fromstring(data)
    except (ET.ParseError, ValueError) as exc:
        raise CorruptInputError("slide XML metadata that does not parse") from exc


def serialise(root: ET.Element, declaration: bool, namespace: str | None = None) -> bytes:
    if namespace is not None:  # one default namespace: names written bare, declared on the root
        for el in root.iter():
            el.tag = el.tag.rsplit("}", 1)[-1]
        root.attrib = {"xmlns": namespace, **root.attrib}
    # ASCII, other characters as references: TIFF text tags are ASCII
    body = ET.tostring(root, encoding="us-ascii", short_empty_elements=True)
    return (b'<?xml version="1.0" encoding="UTF-8"?>' if declaration else b"") + body


def _value(form: Form, value: str | None) -> str | None:
    if value is None:
        return None
    if callable(form):
        return form(value)
    return value if re.fullmatch(form, value) else None


class Cleaner:
    """Counts what it drops; ``dropped`` is reported as keys-dropped."""

    def __init__(self) -> None:
        self.dropped = 0

    def attrs(self, src: ET.Element, dst: ET.Element, allowed: dict[str, Form]) -> None:
        for name, value in src.attrib.items():
            kept = _value(allowed[name], value) if name in allowed else None
            if kept is None:
                self.dropped += 1
            else:
                dst.set(name, kept)

    def tree(self, src: ET.Element, schema: dict[str, tuple[dict[str, Form], Form | None]]) -> ET.Element | None:
        """``src`` with only what ``schema`` names: element name (a regex) -> (attributes with
        their forms, form of the element's text or None for no text). Elements not in the schema
        are dropped with their children."""
        local = src.tag.rsplit("}", 1)[-1]  # matched without its namespace, kept with it
        rule = next((r for pattern, r in schema.items() if re.fullmatch(pattern, local)), None)
        if rule is None:
            self.dropped += 1
            return None
        allowed, text_form = rule
        out = ET.Element(src.tag)
        self.attrs(src, out, allowed)
        text = (src.text or "").strip()
        if text:
            kept = _value(text_form, text) if text_form is not None else None
            if kept is None:
                self.dropped += 1
            else:
                out.text = kept
        for child in src:
            sub = self.tree(child, schema)
            if sub is not None:
                out.append(sub)
        return out


# --- Philips ------------------------------------------------------------------------------------

def _philips_derivation(value: str) -> str | None:
    """DICOM_DERIVATION_DESCRIPTION (``tiff-useBigTIFF=1-useRgb=0-levels=20,40-processing=0-q80-
    sourceFilename="..."``): OpenSlide reads the objective power from ``levels``; the items of
    that form are kept, up to the source file name, which is dropped with whatever follows."""
    kept = []
    for item in value.split("-"):
        if not re.fullmatch(r"[A-Za-z]{1,24}\d{0,3}(?:=[0-9,]{1,80})?", item):
            break
        kept.append(item)
    return "-".join(kept) or None


def _icc(value: str) -> str | None:
    """A base64 ICC profile: kept only when it decodes to one (its signature ``acsp``)."""
    try:
        data = base64.b64decode(re.sub(r"\s+", "", value), validate=True)
    except (binascii.Error, ValueError):
        return None
    return value if len(data) >= 128 and data[36:40] == b"acsp" else None


#: Philips attributes kept, by the DataObject they are in, with the form of their value
PHILIPS = {
    "DPUfsImport": {
        "DICOM_MANUFACTURER": TOKEN, "DICOM_MANUFACTURERS_MODEL_NAME": TOKEN,
        "DICOM_SOFTWARE_VERSIONS": QTOKENS, "PIM_DP_UFS_INTERFACE_VERSION": TOKEN,
        "PIM_DP_SCANNED_IMAGES": "array",
    },
    "DPScannedImage": {
        "PIM_DP_IMAGE_TYPE": r"WSI", "PIM_DP_IMAGE_COLUMNS": NUM, "PIM_DP_IMAGE_ROWS": NUM,
        "DICOM_PIXEL_SPACING": NUMS, "DICOM_BITS_ALLOCATED": NUM, "DICOM_BITS_STORED": NUM,
        "DICOM_HIGH_BIT": NUM, "DICOM_PIXEL_REPRESENTATION": NUM, "DICOM_SAMPLES_PER_PIXEL": NUM,
        "DICOM_PLANAR_CONFIGURATION": NUM, "DICOM_PHOTOMETRIC_INTERPRETATION": TOKEN,
        "DICOM_LOSSY_IMAGE_COMPRESSION": QTOKENS, "DICOM_LOSSY_IMAGE_COMPRESSION_METHOD": QTOKENS,
        "DICOM_LOSSY_IMAGE_COMPRESSION_RATIO": NUMS, "DICOM_ICCPROFILE": _icc,
        "DICOM_DERIVATION_DESCRIPTION": _philips_derivation,
        "PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE": "array",
    },
    "PixelDataRepresentation": {
        "DICOM_PIXEL_SPACING": NUMS, "PIIM_PIXEL_DATA_REPRESENTATION_NUMBER": NUM,
        "PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS": NUM, "PIIM_PIXEL_DATA_REPRESENTATION_ROWS": NUM,
        "PIIM_DP_PIXEL_DATA_REPRESENTATION_POSITION": NUMS,
    },
}
_PHILIPS_ATTR = {"Name": r"[A-Z0-9_]{1,80}", "Group": HEX16, "Element": HEX16, "PMSVR": r"[A-Za-z]{1,40}"}


def clean_philips(raw: bytes) -> tuple[bytes, int]:
    """The Philips XML ImageDescription with only what describes the image (see
    :data:`PHILIPS`): scanned images other than the WSI (the label and macro, base64 JPEG in
    ``PIM_DP_IMAGE_DATA``) are dropped whole, and so is every attribute not listed (patient,
    study, dates, serial numbers, barcode, operator, slot and rack, source file)."""
    root = parse(raw)
    if root.tag != "DataObject" or root.get("ObjectType") != "DPUfsImport":
        raise UnsupportedInputError("Philips slide whose XML is not a DPUfsImport DataObject")
    c = Cleaner()
    out = _philips_object(c, root)
    if _spacings(out) != _spacings(root):  # OpenSlide needs one per level: a dropped one breaks the slide
        raise DeidentificationError("Philips level pixel spacing of a form the allow-list does not keep")
    return serialise(out, True) + b"\x00", c.dropped


def _spacings(root: ET.Element) -> int:
    return sum(a.get("Name") == "DICOM_PIXEL_SPACING" for o in root.iter("DataObject")
               if o.get("ObjectType") == "PixelDataRepresentation" for a in o)


def _philips_object(c: Cleaner, src: ET.Element) -> ET.Element:
    kind = src.get("ObjectType", "")
    allowed = PHILIPS.get(kind, {})
    out = ET.Element("DataObject", ObjectType=kind)
    c.dropped += len(src.attrib) - 1
    for attr in src:
        name = attr.get("Name", "")
        form = allowed.get(name) if attr.tag == "Attribute" else None
        if form is None:
            c.dropped += 1
            continue
        node = ET.Element("Attribute")
        c.attrs(attr, node, _PHILIPS_ATTR)
        if form == "array":
            array = ET.SubElement(node, "Array")
            items = attr.find("Array")
            for obj in list(items) if items is not None else []:
                if obj.tag != "DataObject":
                    c.dropped += 1
                    continue
                if obj.get("ObjectType") == "DPScannedImage" and _philips_type(obj) != "WSI":
                    c.dropped += 1  # the label and macro images, with their pixels
                    continue
                if obj.get("ObjectType") not in PHILIPS:
                    c.dropped += 1
                    continue
                array.append(_philips_object(c, obj))
        else:
            kept = _value(form, (attr.text or "").strip())
            if kept is None or len(attr):
                c.dropped += 1
                continue
            node.text = kept
        out.append(node)
    return out


def philips_downsamples(raw: bytes) -> list[int]:
    """The downsample of each pyramid level of a Philips TIFF, largest level first, as OpenSlide
    computes it: the WSI image's PixelDataRepresentation pixel spacings (rows, then columns) over
    level 0's, averaged over the two axes and rounded to an integer. The pages' ImageWidth and
    ImageLength (and the XML's columns and rows) are padded to whole tiles, so they do not give
    it. Refused when a spacing is missing or not two positive numbers."""
    root = parse(raw)
    wsi = [o for o in root.iter("DataObject") if o.get("ObjectType") == "DPScannedImage" and _philips_type(o) == "WSI"]
    if len(wsi) != 1:
        raise UnsupportedInputError("Philips slide whose XML has not one WSI image")
    spacings = []
    for obj in wsi[0].iter("DataObject"):
        if obj.get("ObjectType") != "PixelDataRepresentation":
            continue
        text = next(((a.text or "") for a in obj if a.get("Name") == "DICOM_PIXEL_SPACING"), "")
        try:
            row, col = (float(v.strip('"')) for v in text.split())
        except ValueError:
            raise UnsupportedInputError("Philips level whose pixel spacing is not two numbers") from None
        if not (1e-9 < row < 1e9 and 1e-9 < col < 1e9):  # also NaN
            raise UnsupportedInputError("Philips level whose pixel spacing is out of range")
        spacings.append((col, row))
    if not spacings:
        raise UnsupportedInputError("Philips slide whose XML gives no level pixel spacing")
    (x0, y0) = spacings[0]
    downsamples = [round((x / x0 + y / y0) / 2) for x, y in spacings]
    if downsamples[0] != 1 or any(not 1 <= d <= 1 << 20 for d in downsamples):
        raise UnsupportedInputError("Philips level whose pixel spacing gives no downsample")
    return downsamples


def _philips_type(obj: ET.Element) -> str:
    for attr in obj:
        if attr.get("Name") == "PIM_DP_IMAGE_TYPE":
            return (attr.text or "").strip()
    return ""


# --- Ventana --------------------------------------------------------------------------------------

_VENTANA_DIRECTION = r"RIGHT|UP|LEFT|DOWN"
#: Ventana XMP elements kept (name regex -> attributes with forms, text form): the iScan element
#: (first page) and the stitching geometry of level 0 (EncodeInfo), which OpenSlide needs to
#: place the tiles; every other element and attribute is dropped
VENTANA = {
    "Metadata": ({}, None),
    "iScan": ({"Magnification": NUM, "ScanRes": NUM, "Z-layers": NUM, "Z-spacing": NUM, "ScannerModel": TOKEN}, None),
    r"AOI\d{1,3}": ({"Left": NUM, "Top": NUM, "Right": NUM, "Bottom": NUM, "OriginX": NUM, "OriginY": NUM}, None),
    "EncodeInfo": ({"Ver": NUM}, None),
    "SlideStitchInfo": ({}, None),
    "AoiOrigin": ({}, None),
    "ImageInfo": ({"AOIScanned": NUM, "AOIIndex": NUM, "Width": NUM, "Height": NUM, "NumRows": NUM,
                   "NumCols": NUM, "Pos-X": NUM, "Pos-Y": NUM}, None),
    "TileJointInfo": ({"FlagJoined": NUM, "Direction": _VENTANA_DIRECTION, "Tile1": NUM, "Tile2": NUM,
                       "OverlapX": NUM, "OverlapY": NUM, "Confidence": NUM}, None),
}


def clean_ventana(raw: bytes) -> tuple[bytes, int]:
    """A Ventana XMP packet with only what :data:`VENTANA` names (barcodes, dates, slide and
    user names, the scanner's unit number, annotations dropped); empty when its root is none of
    ``iScan``, ``Metadata`` (holding iScan) and ``EncodeInfo``, so the tag goes."""
    root = parse(raw)
    c = Cleaner()
    if root.tag not in ("iScan", "Metadata", "EncodeInfo"):
        return b"", 1
    out = c.tree(root, VENTANA)
    assert out is not None
    return serialise(out, True), c.dropped


# --- OME-TIFF -------------------------------------------------------------------------------------

_OME_NS = re.compile(r"\{(http://www\.openmicroscopy\.org/Schemas/OME/\d{4}-\d{2})\}OME")
_ID = r"[A-Za-z]{1,20}:\d{1,6}(?::\d{1,6}){0,3}"
_UNIT = r"[A-Za-z\u00b5\u00c5]{1,4}"
_BOOL = r"true|false"
#: OME elements kept (local name -> attributes with forms, text form): the pixels' geometry,
#: type and physical size, channels with their names and wavelengths, how planes map to TIFF
#: pages, the objective; everything else (Experimenter, ExperimenterGroup, image name and
#: description, acquisition date, annotations, ROIs, microscope and detector with their serial
#: numbers, stage positions, file names in TiffData's UUID) is dropped
OME = {
    "OME": ({}, None),
    "Image": ({"ID": _ID}, None),
    "InstrumentRef": ({"ID": _ID}, None),
    "ObjectiveSettings": ({"ID": _ID, "RefractiveIndex": NUM, "Medium": TOKEN}, None),
    "Instrument": ({"ID": _ID}, None),
    "Objective": ({"ID": _ID, "NominalMagnification": NUM, "CalibratedMagnification": NUM, "LensNA": NUM,
                   "Immersion": TOKEN, "Correction": TOKEN, "WorkingDistance": NUM, "WorkingDistanceUnit": _UNIT}, None),
    "Pixels": ({"ID": _ID, "DimensionOrder": r"XY[ZCT]{3}", "Type": r"[a-z0-9\-]{1,12}", "SignificantBits": NUM,
                "Interleaved": _BOOL, "BigEndian": _BOOL, "SizeX": NUM, "SizeY": NUM, "SizeZ": NUM, "SizeC": NUM,
                "SizeT": NUM, "PhysicalSizeX": NUM, "PhysicalSizeY": NUM, "PhysicalSizeZ": NUM,
                "PhysicalSizeXUnit": _UNIT, "PhysicalSizeYUnit": _UNIT, "PhysicalSizeZUnit": _UNIT,
                "TimeIncrement": NUM, "TimeIncrementUnit": _UNIT}, None),
    "Channel": ({"ID": _ID, "Name": r"[A-Za-z0-9 ._\-+/()]{0,40}", "SamplesPerPixel": NUM, "Color": NUM,
                 "EmissionWavelength": NUM, "EmissionWavelengthUnit": _UNIT, "ExcitationWavelength": NUM,
                 "ExcitationWavelengthUnit": _UNIT, "Fluor": TOKEN, "ContrastMethod": TOKEN,
                 "IlluminationType": TOKEN, "AcquisitionMode": TOKEN, "NDFilter": NUM, "PinholeSize": NUM,
                 "PinholeSizeUnit": _UNIT}, None),
    "TiffData": ({"IFD": NUM, "FirstZ": NUM, "FirstT": NUM, "FirstC": NUM, "PlaneCount": NUM}, None),
    "MetadataOnly": ({}, None),
    "Plane": ({"TheZ": NUM, "TheT": NUM, "TheC": NUM, "ExposureTime": NUM, "ExposureTimeUnit": _UNIT}, None),
}
#: words by which OME images are known as associated images (Bio-Formats names them ``label
#: image``, ``macro image``, ``overview``; QuPath and the converters ``label``, ``macro``); the
#: thumbnail is kept, as for every vendor
OME_ASSOCIATED = {"label": "label", "barcode": "label", "macro": "macro", "overview": "macro"}


def _ome_root(raw: bytes) -> tuple[ET.Element, str]:
    root = parse(raw)
    m = _OME_NS.fullmatch(root.tag)
    if m is None:
        raise UnsupportedInputError("OME-TIFF whose first description is not OME-XML")
    return root, m.group(1)


def _image_kind(image: ET.Element) -> str:
    words = re.findall(r"[a-z]+", (image.get("Name") or "").lower())
    kinds = [OME_ASSOCIATED[w] for w in words if w in OME_ASSOCIATED]
    return kinds[0] if kinds else "thumbnail" if "thumbnail" in words else "level"


def ome_roles(raw: bytes, pages: int) -> list[str]:
    """The role of each main-chain page of an OME-TIFF: the kind of the image whose TiffData
    names it (``label`` and ``macro`` by the image's name, else ``level``); a page no TiffData
    names is removed (``associated``). A TiffData without IFD is page 0; without PlaneCount, one
    plane. TiffData naming other files (UUIDs of several FileNames) is refused."""
    root, ns = _ome_root(raw)
    roles = ["associated"] * pages
    files = {u.get("FileName") for u in root.iter(f"{{{ns}}}UUID")}
    if len(files - {None}) > 1:
        raise UnsupportedInputError("OME-TIFF whose images are in several files")
    for image in root.iter(f"{{{ns}}}Image"):
        kind = _image_kind(image)
        for td in image.iter(f"{{{ns}}}TiffData"):
            try:
                first, count = int(td.get("IFD", "0")), int(td.get("PlaneCount", "1"))
            except ValueError as exc:
                raise CorruptInputError("OME-TIFF TiffData that is not a number") from exc
            if first < 0 or count < 0 or first + count > pages:
                raise CorruptInputError("OME-TIFF TiffData naming pages the file does not have")
            for i in range(first, first + count):
                roles[i] = kind
    return roles


def clean_ome(raw: bytes, page_map: dict[int, int]) -> tuple[bytes, int]:
    """The OME-XML with only what :data:`OME` names, without the label and macro images, and
    with every TiffData's IFD renumbered by ``page_map`` (old page index -> index in the released
    file, whose removed pages are unlinked)."""
    root, ns = _ome_root(raw)
    c = Cleaner()
    out = ET.Element(root.tag)
    for child in root:
        if child.tag == f"{{{ns}}}Image" and _image_kind(child) in ("label", "macro"):
            c.dropped += 1
            continue
        kept = c.tree(child, OME)
        if kept is not None:
            out.append(kept)
    c.dropped += len(root.attrib)
    for td in out.iter(f"{{{ns}}}TiffData"):
        old = int(td.get("IFD", "0"))
        if old not in page_map:
            raise DeidentificationError("OME-TIFF image kept whose page is removed")
        td.set("IFD", str(page_map[old]))
    for el in out.iter():
        if el.tag.rsplit("}", 1)[-1] in ("Image", "Pixels", "Channel", "Instrument", "Objective") and not el.get("ID"):
            raise DeidentificationError("OME-XML element whose ID is of a form the allow-list does not keep")
    return serialise(out, True, ns) + b"\x00", c.dropped


# --- Akoya / PerkinElmer QPTIFF ---------------------------------------------------------------------

_QPI_ROOT = "PerkinElmer-QPI-ImageDescription"
_DECLARATION = re.compile(rb"\s*<\?xml[^>]{0,200}\?>")
#: QPI elements kept (each page's description): what the page is, the channel (name, marker,
#: colour, exposure) and the objective; SlideID, Barcode, ComputerName, ScanProfile (the whole
#: scan protocol, with names and paths), ValidationCode, camera settings and any other element
#: are dropped
QPI = {
    _QPI_ROOT: ({}, None),
    "DescriptionVersion": ({}, NUM), "AcquisitionSoftware": ({}, TOKEN), "ImageType": ({}, r"[A-Za-z]{1,30}"),
    "Identifier": ({}, r"[0-9,.]{1,40}"), "IsUnmixedComponent": ({}, r"True|False"), "ExposureTime": ({}, NUM),
    "SignalUnits": ({}, NUM), "Name": ({}, r"[A-Za-z0-9 ._\-+/()]{0,40}"), "Biomarker": ({}, TOKEN),
    "Color": ({}, r"\d{1,3},\d{1,3},\d{1,3}"), "Objective": ({}, TOKEN),
}
#: QPI ImageType -> page role
QPI_ROLES = {"FullResolution": "level", "ReducedResolution": "level", "Thumbnail": "thumbnail",
             "Overview": "macro", "Macro": "macro", "Label": "label"}


def _qpi_root(raw: bytes) -> ET.Element:
    """The QPI XML: its declaration says utf-16 where the bytes are single-byte, so it is
    parsed without it."""
    data = raw.rstrip(b"\x00")
    m = _DECLARATION.match(data)
    root = parse(data[m.end():] if m else data)
    if root.tag != _QPI_ROOT:
        raise UnsupportedInputError("QPTIFF page whose description is not QPI XML")
    return root


def qpi_role(raw: bytes) -> str:
    """The role of a QPTIFF page by its ImageType (``associated`` without a description)."""
    if not raw.rstrip(b"\x00"):
        return "associated"
    kind = (_qpi_root(raw).findtext("ImageType") or "").strip()
    return QPI_ROLES.get(kind, "associated")


def clean_qpi(raw: bytes) -> tuple[bytes, int]:
    """A page's QPI XML with only what :data:`QPI` names."""
    c = Cleaner()
    out = c.tree(_qpi_root(raw), QPI)
    assert out is not None
    return serialise(out, True) + b"\x00", c.dropped
