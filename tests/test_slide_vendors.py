"""Slides of the vendors whose metadata is XML (Philips TIFF, Ventana BIF): label and macro gone
(pages and images inside the XML), the XML cleaned by allow-list and still valid, every pyramid
tile copied byte for byte, the slide still read by OpenSlide as the same vendor with the same
levels.

No small real file of these vendors is public under a licence we can ship, so each builder
writes a faithful one with tifffile, following OpenSlide's format page for the vendor (and what
OpenSlide's reader needs of it), and plants identifiers in every field the cleaner handles."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from medcloak.errors import CorruptInputError
from medcloak.formats.slide_tiff import SlideReport, clean_slide, sniff_slide, verify_slide
from medcloak.pseudonym import Keyring

tifffile = pytest.importorskip("tifffile")
openslide = pytest.importorskip("openslide")
imagecodecs = pytest.importorskip("imagecodecs")

KEYRING = Keyring(b"test-secret-0123456789abcdef")
PLANT = "QUIMBY"  # every planted identifier holds this (or its base64), so one search finds any left


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, 0), 8, 1)[:h, :w]


def _text_pixels(h: int, w: int, text: str) -> np.ndarray:
    raw = (text.encode() * (h * w * 3 // len(text) + 1))[: h * w * 3]
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def _clean(src: Path, dst: Path) -> SlideReport:
    with open(dst, "wb") as fh:
        return clean_slide(src, fh, KEYRING)


def _tiles(path: Path) -> list[list[bytes]]:
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tf:
        return [[data[o : o + c] for o, c in zip(p.dataoffsets, p.databytecounts)] for p in tf.pages]


def _no_plant(out: bytes) -> None:
    for needle in (PLANT, PLANT.lower(), base64.b64encode(f"{PLANT}-BC".encode()).decode()[:12]):
        assert needle.encode() not in out, needle


def _assert_common(src: Path, dst: Path, report: SlideReport, levels: int) -> None:
    """Same vendor, levels, dimensions and mpp in OpenSlide; no label or macro; the same pixels;
    deterministic; a released slide is left as it is."""
    a, b = openslide.OpenSlide(src), openslide.OpenSlide(dst)
    try:
        assert b.properties["openslide.vendor"] == a.properties["openslide.vendor"]
        assert b.level_count == a.level_count == levels == report.levels
        assert b.level_dimensions == a.level_dimensions and b.level_downsamples == a.level_downsamples
        for key in ("openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power"):
            assert b.properties.get(key) == a.properties.get(key)
        assert not {"label", "macro"} & set(b.associated_images)
        for lvl in range(b.level_count):
            size = b.level_dimensions[lvl]
            assert b.read_region((0, 0), lvl, size).tobytes() == a.read_region((0, 0), lvl, size).tobytes()
    finally:
        a.close()
        b.close()
    assert verify_slide(dst) == []
    buf = io.BytesIO()
    clean_slide(src, buf, KEYRING)
    assert buf.getvalue() == dst.read_bytes()
    again = io.BytesIO()
    assert clean_slide(dst, again, KEYRING).removed == () and again.getvalue() == dst.read_bytes()


# --- Philips ------------------------------------------------------------------------------------

def _attr(name: str, value: str, group: str = "0x0008", element: str = "0x0000", kind: str = "IString") -> str:
    return f'<Attribute Name="{name}" Group="{group}" Element="{element}" PMSVR="{kind}">{value}</Attribute>'


def _jpeg_b64(image: np.ndarray) -> str:
    return base64.b64encode(imagecodecs.jpeg8_encode(image, level=90)).decode()


def philips_xml(levels: int) -> str:
    """The ImageDescription XML of a Philips TIFF as OpenSlide's philips page describes it (and as
    its reader queries it): a ``DataObject`` of type ``DPUfsImport`` whose ``Attribute`` elements
    carry DICOM-like names, ``PIM_DP_SCANNED_IMAGES`` an array of ``DPScannedImage`` objects: the
    WSI (pixel spacing, derivation description with the objective power in ``levels=``, one
    ``PixelDataRepresentation`` per level with its spacing) and the label and macro as base64 JPEG
    in ``PIM_DP_IMAGE_DATA``. Identifiers planted in every field that may hold one."""
    reps = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        + _attr("DICOM_PIXEL_SPACING", f'"{0.00025 * 2**i:g}" "{0.00025 * 2**i:g}"', "0x0028", "0x0030", "IDoubleArray")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", str(i), "0x101D", "0x100B", "IUInt32")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS", str(512 >> i), "0x2001", "0x115E", "IUInt32")
        + _attr("PIIM_PIXEL_DATA_REPRESENTATION_ROWS", str(384 >> i), "0x2001", "0x115D", "IUInt32")
        + "</DataObject>" for i in range(levels))
    wsi = ('<DataObject ObjectType="DPScannedImage">'
           + _attr("DICOM_DERIVATION_DESCRIPTION",
                   f'tiff-useBigTIFF=1-useRgb=0-levels=40,10000,10001-processing=0-q80-sourceFilename="{PLANT}-T11"',
                   "0x0008", "0x2111")
           + _attr("DICOM_PIXEL_SPACING", '"0.00025" "0.00025"', "0x0028", "0x0030", "IDoubleArray")
           + _attr("DICOM_PHOTOMETRIC_INTERPRETATION", "RGB", "0x0028", "0x0004")
           + _attr("DICOM_LOSSY_IMAGE_COMPRESSION", "01", "0x0028", "0x2110")
           + _attr("PIM_DP_IMAGE_TYPE", "WSI", "0x301D", "0x1004")
           + _attr("PIM_DP_IMAGE_COLUMNS", "512", "0x301D", "0x1007", "IUInt32")
           + _attr("PIM_DP_IMAGE_ROWS", "384", "0x301D", "0x1006", "IUInt32")
           + _attr("DICOM_ACQUISITION_DATETIME", "20240501101112.000000", "0x0008", "0x002A")
           + _attr("PIM_DP_SOURCE_FILE", f"%FILENAME%{PLANT}", "0x301D", "0x1000")
           + '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE" Group="0x1001" Element="0x8B01" '
             f'PMSVR="IDataObjectArray"><Array>{reps}</Array></Attribute>'
           + "</DataObject>")
    assoc = "".join(
        '<DataObject ObjectType="DPScannedImage">'
        + _attr("PIM_DP_IMAGE_DATA", _jpeg_b64(_text_pixels(32, 48, f"{kind} {PLANT} ")), "0x1001", "0x8B05")
        + _attr("PIM_DP_IMAGE_TYPE", kind, "0x301D", "0x1004")
        + _attr("DICOM_ACQUISITION_DATETIME", "20240501101112.000000", "0x0008", "0x002A")
        + "</DataObject>" for kind in ("LABELIMAGE", "MACROIMAGE"))
    top = (_attr("DICOM_MANUFACTURER", "PHILIPS", "0x0008", "0x0070")
           + _attr("DICOM_SOFTWARE_VERSIONS", '"1.6.5505" "20111209_R44"', "0x0018", "0x1020", "IStringArray")
           + _attr("DICOM_DEVICE_SERIAL_NUMBER", f"FMT{PLANT}", "0x0018", "0x1000")
           + _attr("DICOM_PATIENT_NAME", f"{PLANT}^JOHN", "0x0010", "0x0010")
           + _attr("DICOM_PATIENT_ID", f"{PLANT}-PID", "0x0010", "0x0020")
           + _attr("DICOM_STUDY_INSTANCE_UID", "1.2.3.4.5.6.7.8.9", "0x0020", "0x000D")
           + _attr("DICOM_ACCESSION_NUMBER", f"ACC{PLANT}", "0x0008", "0x0050")
           + _attr("DICOM_STUDY_DATE", "20240501", "0x0008", "0x0020")
           + _attr("DICOM_DATE_OF_LAST_CALIBRATION", '"20240430"', "0x0018", "0x1200", "IStringArray")
           + _attr("PIM_DP_UFS_BARCODE", base64.b64encode(f"{PLANT}-BC".encode()).decode(), "0x301D", "0x1002")
           + _attr("PIM_DP_SCANNER_OPERATOR_ID", f"{PLANT}-op", "0x301D", "0x1009")
           + _attr("PIM_DP_SCANNER_RACK_NUMBER", "3", "0x301D", "0x100A", "IUInt16")
           + _attr("PIM_DP_SLIDE_NAME", f"slide of {PLANT}", "0x301D", "0x1010")
           + f'<Attribute Name="PIM_DP_SCANNED_IMAGES" Group="0x301D" Element="0x1003" PMSVR="IDataObjectArray">'
             f"<Array>{wsi}{assoc}</Array></Attribute>")
    return f'<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">\n{top}\n</DataObject>\n'


def make_philips(path: Path, big: bool = True) -> None:
    """A Philips TIFF as OpenSlide's philips page lays it out, written with tifffile: Software
    ``Philips DP v1.0``, the XML of :func:`philips_xml` as the first page's ImageDescription,
    three tiled JPEG levels (512x384, 256x192, 128x96 in 128x128 tiles; the reduced ones with
    NewSubfileType 1), in BigTIFF or classic TIFF, then the label and macro also as stripped pages (descriptions starting
    ``Label`` and ``Macro``, uncompressed pixels spelling a planted name). DateTime, Artist and
    an unknown private tag carry planted values on every page."""
    level0 = _rgb(384, 512, 21)
    extra = [(306, "s", 0, "2024:05:01 10:11:12", True), (315, "s", 0, f"Artist {PLANT}", True),
             (65000, "s", 0, f"private {PLANT}", True)]
    common = {"photometric": "rgb", "metadata": None, "extratags": extra}
    with tifffile.TiffWriter(path, bigtiff=big) as w:
        w.write(level0, tile=(128, 128), compression="jpeg", software="Philips DP v1.0",
                description=philips_xml(3), **common)
        for i in (1, 2):
            w.write(level0[:: 2**i, :: 2**i], tile=(128, 128), compression="jpeg", subfiletype=1,
                    software="Philips DP v1.0", description=f"level={i} {PLANT}", **common)
        for kind in ("Label", "Macro"):
            w.write(_text_pixels(40, 60, f"{kind} {PLANT} "), rowsperstrip=8, software="Philips DP v1.0",
                    description=f"{kind} image of {PLANT}", **common)


@pytest.mark.parametrize("big", [True, False], ids=["bigtiff", "classic"])
def test_philips(tmp_path: Path, big: bool) -> None:
    src, dst = tmp_path / "in.tiff", tmp_path / "out.tiff"
    make_philips(src, big)
    assert src.read_bytes().count(PLANT.encode()) > 20
    a = openslide.OpenSlide(src)  # the builder is faithful: OpenSlide reads it as Philips with both images
    assert a.properties["openslide.vendor"] == "philips" and a.level_count == 3
    assert {"label", "macro"} <= set(a.associated_images) and a.properties["openslide.objective-power"] == "40"
    assert a.properties["openslide.mpp-x"] == "0.25"
    a.close()
    assert sniff_slide(src) == "philips" and verify_slide(src)
    report = _clean(src, dst)
    assert report.vendor == "philips" and report.removed == ("label", "macro")
    out = dst.read_bytes()
    _no_plant(out)
    for gone in (b"2024:05:01", b"20240501", b"1.2.3.4.5.6.7.8.9", b"LABELIMAGE", b"MACROIMAGE", b"/9j/"):
        assert gone not in out, gone
    _assert_common(src, dst, report, 3)
    assert _tiles(dst) == _tiles(src)[:3]
    with tifffile.TiffFile(dst) as tf:
        assert len(tf.pages) == 3
        assert all(p.software == "Philips DP v1.0" and 306 not in p.tags and 65000 not in p.tags for p in tf.pages)
        assert all(270 not in p.tags for p in tf.pages[1:])
        root = ET.fromstring(tf.pages[0].description)  # still valid XML, with what describes the image
    names = {a.get("Name") for a in root.iter("Attribute")}
    assert {"DICOM_MANUFACTURER", "DICOM_PIXEL_SPACING", "PIM_DP_IMAGE_TYPE", "DICOM_SOFTWARE_VERSIONS",
            "PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS", "DICOM_DERIVATION_DESCRIPTION"} <= names
    assert not {n for n in names if n.startswith(("DICOM_PATIENT", "DICOM_STUDY"))}
    assert not names & {"PIM_DP_UFS_BARCODE", "DICOM_DEVICE_SERIAL_NUMBER", "PIM_DP_IMAGE_DATA", "PIM_DP_SLIDE_NAME",
                        "DICOM_ACQUISITION_DATETIME", "PIM_DP_SCANNER_OPERATOR_ID", "PIM_DP_SOURCE_FILE"}
    derivation = next(a.text for a in root.iter("Attribute") if a.get("Name") == "DICOM_DERIVATION_DESCRIPTION")
    assert derivation == "tiff-useBigTIFF=1-useRgb=0-levels=40,10000,10001-processing=0-q80"


@pytest.mark.parametrize("keep", [0.999, 0.9, 0.5, 0.02])
def test_truncated_is_corrupt(tmp_path: Path, keep: float) -> None:
    make_philips(tmp_path / "in.tiff")
    data = (tmp_path / "in.tiff").read_bytes()
    (tmp_path / "cut.tiff").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptInputError):
        _clean(tmp_path / "cut.tiff", tmp_path / "out.tiff")


def test_philips_xml_that_does_not_parse_is_corrupt(tmp_path: Path) -> None:
    src = tmp_path / "in.tiff"
    with tifffile.TiffWriter(src) as w:
        w.write(_rgb(128, 128, 22), tile=(64, 64), software="Philips DP v1.0", metadata=None,
                description=f'<DataObject ObjectType="DPUfsImport"><Attribute Name="X">{PLANT}</DataObject>')
        w.write(_rgb(64, 64, 23), tile=(64, 64), subfiletype=1, metadata=None, software="Philips DP v1.0")
    with pytest.raises(CorruptInputError):
        _clean(src, tmp_path / "out.tiff")


# --- Ventana ------------------------------------------------------------------------------------

def _ventana_number(col: int, row: int, across: int, down: int) -> int:
    """The 1-based tile number OpenSlide's ventana reader gives (col, row): rows counted from the
    bottom, every second one right to left."""
    r = down - 1 - row
    c = col if r % 2 == 0 else across - 1 - col
    return r * across + c + 1


def ventana_encode_info(across: int, down: int, tile: int) -> str:
    """The level-0 XMP of a BIF (OpenSlide's ventana reader: ``/EncodeInfo/SlideStitchInfo/ImageInfo``
    with one ``TileJointInfo`` per joint, ``/EncodeInfo/AoiOrigin/AOI0``), one area, tiles that
    abut (overlap 0), plus a planted SlideInfo and attribute."""
    joints = []
    for row in range(down):
        for col in range(across):
            if col + 1 < across:
                joints.append(("RIGHT", _ventana_number(col, row, across, down), _ventana_number(col + 1, row, across, down)))
            if row > 0:
                joints.append(("UP", _ventana_number(col, row, across, down), _ventana_number(col, row - 1, across, down)))
    tj = "".join(f'<TileJointInfo FlagJoined="1" Direction="{d}" Tile1="{a}" Tile2="{b}" OverlapX="0" '
                 f'OverlapY="0" Confidence="10" Operator="{PLANT}"/>' for d, a, b in joints)
    return (f'<?xml version="1.0" encoding="utf-8"?><EncodeInfo Ver="2" ScanDate="05/01/2024 10:11:12">'
            f'<SlideInfo><AttachmentInfo Name="{PLANT}-barcode" /></SlideInfo>'
            f'<SlideStitchInfo><ImageInfo AOIScanned="1" AOIIndex="0" Width="{tile}" Height="{tile}" '
            f'NumRows="{down}" NumCols="{across}" Pos-X="0" Pos-Y="0" Comment="{PLANT}">{tj}</ImageInfo></SlideStitchInfo>'
            f'<AoiOrigin><AOI0 OriginX="0" OriginY="0" /></AoiOrigin></EncodeInfo>')


ISCAN = (f'<?xml version="1.0" encoding="utf-8"?><iScan BarCode1D="{PLANT}1" BarCode2D="{PLANT}2" '
         f'BuildDate="05/01/2024" BuildVersion="3.3.1" Magnification="40" ScanRes="0.25" Z-layers="1" '
         f'Z-spacing="1" ScannerModel="VENTANA DP 200" UnitNumber="SN{PLANT}" SlideAnnotation="case of {PLANT}" '
         f'UserName="{PLANT}-user" ScanDate="05/01/2024" ScanTime="10:11:12">'
         f'<AOI0 Left="10" Top="20" Right="200" Bottom="300" Name="{PLANT}-aoi" /></iScan>')


def make_ventana(path: Path, metadata_root: bool = False) -> None:
    """A Ventana BIF as OpenSlide's ventana page and reader lay it out, written with tifffile
    (BigTIFF): page 0 the ``Label Image`` (stripped, uncompressed pixels spelling a planted name)
    whose XMP (tag 700) is the iScan element (planted barcodes, unit number, annotation, user,
    dates; with ``metadata_root`` wrapped in a ``Metadata`` root, as some slides have it), page 1
    the ``Thumbnail`` (planted pixels likewise), then three tiled JPEG levels described
    ``level=N mag=M quality=90`` (512x384, 256x192, 128x96 in 128x128 tiles), level 0 carrying the
    EncodeInfo XMP of :func:`ventana_encode_info` and level 1 an XMP of unknown root, and last a
    ``Probability Image``. DateTime and an unknown private tag are planted on every page."""
    level0 = _rgb(384, 512, 31)
    iscan = f"<Metadata>{ISCAN.split('?>', 1)[1]}</Metadata>" if metadata_root else ISCAN
    extra = [(306, "s", 0, "2024:05:01 10:11:12", True), (65000, "s", 0, f"private {PLANT}", True)]

    def xmp(text: str) -> list[tuple]:
        return [(700, "B", len(text.encode()), text.encode(), True)]

    common = {"photometric": "rgb", "metadata": None, "software": False}
    with tifffile.TiffWriter(path, bigtiff=True) as w:
        w.write(_text_pixels(60, 90, f"LABEL {PLANT} "), rowsperstrip=20, description="Label Image",
                extratags=extra + xmp(iscan), **common)
        w.write(_text_pixels(50, 150, f"THUMB {PLANT} "), rowsperstrip=25, description="Thumbnail",
                extratags=extra, **common)
        for i in range(3):
            more = xmp(ventana_encode_info(4, 3, 128)) if i == 0 else xmp(f"<ScanInfo User='{PLANT}'/>") if i == 1 else []
            w.write(level0[:: 2**i, :: 2**i], tile=(128, 128), compression="jpeg", subfiletype=0,
                    description=f"level={i} mag={40 >> i} quality=90", extratags=extra + more, **common)
        w.write(_text_pixels(16, 16, f"PROB {PLANT} "), rowsperstrip=16, description="Probability Image",
                extratags=extra, **common)


@pytest.mark.parametrize("metadata_root", [False, True], ids=["iscan-root", "metadata-root"])
def test_ventana(tmp_path: Path, metadata_root: bool) -> None:
    src, dst = tmp_path / "in.bif", tmp_path / "out.bif"
    make_ventana(src, metadata_root)
    assert src.read_bytes().count(PLANT.encode()) > 20
    a = openslide.OpenSlide(src)  # the builder is faithful: OpenSlide reads it as Ventana
    assert a.properties["openslide.vendor"] == "ventana" and a.level_count == 3
    assert {"macro", "thumbnail"} <= set(a.associated_images) and a.properties["ventana.UnitNumber"] == f"SN{PLANT}"
    a.close()
    assert sniff_slide(src) == "ventana" and verify_slide(src)
    report = _clean(src, dst)
    assert report.vendor == "ventana" and report.removed == ("label", "macro", "associated")
    out = dst.read_bytes()
    _no_plant(out)
    assert b"05/01/2024" not in out and b"10:11:12" not in out and b"2024:05:01" not in out
    _assert_common(src, dst, report, 3)
    b = openslide.OpenSlide(dst)
    assert not b.associated_images  # the label ("macro" to OpenSlide) and the thumbnail are gone
    assert b.properties["ventana.ScanRes"] == "0.25" and b.properties["ventana.Magnification"] == "40"
    assert not {k for k in b.properties if k.split(".", 1)[1] in ("BarCode1D", "UnitNumber", "UserName", "ScanDate")}
    b.close()
    assert _tiles(dst)[1:] == _tiles(src)[2:5]
    with tifffile.TiffFile(dst) as tf:
        stub = tf.pages[0]  # the label's place: a 1x1 zero pixel holding the cleaned iScan XMP
        assert stub.shape[:2] == (1, 1) and not stub.asarray().any() and 270 not in stub.tags
        assert len(tf.pages) == 4 and 700 not in tf.pages[2].tags and 306 not in tf.pages[1].tags
        ET.fromstring(tf.pages[1].tags[700].value)  # level 0's EncodeInfo: still valid XML


# --- OME-TIFF -----------------------------------------------------------------------------------

OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def ome_xml() -> str:
    """OME-XML (schema 2016-06) as Bio-Formats and the slide converters write it for a slide: an
    Experimenter and ExperimenterGroup, an Instrument (microscope and objective with serial
    numbers), the slide Image (name, acquisition date, description, experimenter reference,
    Pixels 512x384 RGB with physical sizes, one named Channel, TiffData IFD 0, a Plane with stage
    positions), the label and macro as Images named ``label`` and ``macro`` on pages 1 and 2, and
    a CommentAnnotation; identifiers planted in each."""
    def image(i: int, name: str, w: int, h: int, extra: str = "") -> str:
        return (f'<Image ID="Image:{i}" Name="{name}">{extra}'
                f'<Pixels ID="Pixels:{i}" DimensionOrder="XYCZT" Type="uint8" SizeX="{w}" SizeY="{h}" SizeC="3" '
                f'SizeZ="1" SizeT="1" Interleaved="true" PhysicalSizeX="0.25" PhysicalSizeXUnit="&#181;m" '
                f'PhysicalSizeY="0.25" PhysicalSizeYUnit="&#181;m">'
                f'<Channel ID="Channel:{i}:0" Name="Brightfield" SamplesPerPixel="3"/>'
                f'<TiffData IFD="{i}" PlaneCount="1"><UUID FileName="{PLANT}.ome.tif">urn:uuid:{PLANT}-0000</UUID></TiffData>'
                f'<Plane TheZ="0" TheT="0" TheC="0" PositionX="12345.6" PositionY="7890.1" ExposureTime="2"/>'
                f"</Pixels></Image>")
    slide_extra = (f"<AcquisitionDate>2024-05-01T10:11:12</AcquisitionDate>"
                   f'<ExperimenterRef ID="Experimenter:0"/><Description>biopsy of {PLANT}</Description>'
                   f'<InstrumentRef ID="Instrument:0"/><ObjectiveSettings ID="Objective:0:0"/>'
                   f'<AnnotationRef ID="Annotation:0"/>')
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<OME xmlns="{OME_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{OME_NS} {OME_NS}/ome.xsd" UUID="urn:uuid:{PLANT}-0000" Creator="scanner of {PLANT}">'
            f'<Experimenter ID="Experimenter:0" FirstName="John" LastName="{PLANT}" Email="{PLANT}@example.org"/>'
            f'<ExperimenterGroup ID="ExperimenterGroup:0" Name="{PLANT} lab"/>'
            f'<Instrument ID="Instrument:0"><Microscope Manufacturer="Acme" SerialNumber="{PLANT}-SN"/>'
            f'<Objective ID="Objective:0:0" NominalMagnification="20" LensNA="0.8" SerialNumber="{PLANT}-OBJ"/>'
            f"</Instrument>"
            + image(0, f"{PLANT} slide.svs", 512, 384, slide_extra) + image(1, "label image", 60, 40) + image(2, "macro", 60, 40)
            + f'<StructuredAnnotations><CommentAnnotation ID="Annotation:0"><Value>patient {PLANT}</Value>'
              f"</CommentAnnotation></StructuredAnnotations></OME>")


def make_ome(path: Path) -> None:
    """An OME-TIFF pyramid as the OME-TIFF specification (pyramids as SubIFDs since OME 6) and
    the converters lay it out, written with tifffile (BigTIFF, the OME-XML of :func:`ome_xml`
    given as the first page's description): page 0 level 0 (512x384 JPEG tiles of 128) with two
    reduced levels as SubIFDs, page 1 the label and page 2 the macro (stripped, uncompressed
    pixels spelling a planted name). DateTime and Artist carry planted values on every page."""
    level0 = _rgb(384, 512, 41)
    extra = [(306, "s", 0, "2024:05:01 10:11:12", True), (315, "s", 0, f"Artist {PLANT}", True)]
    common = {"photometric": "rgb", "metadata": None, "software": False, "extratags": extra}
    with tifffile.TiffWriter(path, bigtiff=True) as w:
        w.write(level0, tile=(128, 128), compression="jpeg", subifds=2, description=ome_xml(), **common)
        for f in (2, 4):
            w.write(level0[::f, ::f], tile=(128, 128), compression="jpeg", subfiletype=1, **common)
        for kind in ("LABEL", "MACRO"):
            w.write(_text_pixels(40, 60, f"{kind} {PLANT} "), rowsperstrip=8, **common)


def _subifd_tiles(path: Path) -> list[list[bytes]]:
    data = path.read_bytes()
    out = []
    with tifffile.TiffFile(path) as tf:
        for level in tf.series[0].levels:
            page = level.keyframe
            out.append([data[o : o + c] for o, c in zip(page.dataoffsets, page.databytecounts)])
    return out


def test_ome(tmp_path: Path) -> None:
    src, dst = tmp_path / f"{PLANT}.ome.tif", tmp_path / "out.ome.tif"  # the name TiffData's UUID gives
    make_ome(src)
    with tifffile.TiffFile(src) as tf:  # the builder is faithful: tifffile reads it as OME with 3 series
        assert tf.is_ome and len(tf.series) == 3 and len(tf.series[0].levels) == 3
    assert sniff_slide(src) == "ome" and verify_slide(src)
    report = _clean(src, dst)
    assert report.vendor == "ome" and report.removed == ("label", "macro") and report.levels == 3
    out = dst.read_bytes()
    _no_plant(out)
    assert b"2024-05-01" not in out and b"2024:05:01" not in out and b"12345.6" not in out
    with tifffile.TiffFile(dst) as tf, tifffile.TiffFile(src) as tf_in:
        assert tf.is_ome and len(tf.series) == 1 and len(tf.pages) == 1
        s, s_in = tf.series[0], tf_in.series[0]
        assert [lv.shape for lv in s.levels] == [lv.shape for lv in s_in.levels]
        for lv, lv_in in zip(s.levels, s_in.levels):
            assert np.array_equal(lv.asarray(), lv_in.asarray())
        root = ET.fromstring(tf.pages[0].description)  # valid, and consistent with the pages
    ns = {"o": OME_NS}
    assert [i.get("ID") for i in root.findall("o:Image", ns)] == ["Image:0"]
    pixels = root.find("o:Image/o:Pixels", ns)
    assert pixels.get("PhysicalSizeX") == "0.25" and pixels.get("SizeX") == "512"
    assert pixels.find("o:Channel", ns).get("Name") == "Brightfield"
    assert pixels.find("o:TiffData", ns).attrib == {"IFD": "0", "PlaneCount": "1"}
    assert root.find("o:Instrument/o:Objective", ns).get("NominalMagnification") == "20"
    for gone in ("Experimenter", "ExperimenterGroup", "StructuredAnnotations", "Image/o:AcquisitionDate",
                 "Image/o:Description", "Instrument/o:Microscope"):
        assert root.find(f"o:{gone}", ns) is None, gone
    assert _subifd_tiles(dst) == _subifd_tiles(src)
    assert verify_slide(dst) == []
    buf, again = io.BytesIO(), io.BytesIO()
    clean_slide(src, buf, KEYRING)
    assert buf.getvalue() == out
    assert clean_slide(dst, again, KEYRING).removed == () and again.getvalue() == out


def test_ome_label_first_renumbers_tiffdata(tmp_path: Path) -> None:
    """The label as page 1 and the slide's image on page 2 (the macro removed before it): the kept
    image's TiffData IFD is renumbered to the page's place in the released chain."""
    src, dst = tmp_path / f"{PLANT}.ome.tif", tmp_path / "out.ome.tif"
    xml = ome_xml().replace('IFD="2"', 'IFD="9"').replace('IFD="0"', 'IFD="2"').replace('IFD="9"', 'IFD="0"')
    xml = xml.replace('Name="macro"', 'Name="thumbnail"')  # page 0 is now the thumbnail (kept)
    common = {"photometric": "rgb", "metadata": None, "software": False}
    with tifffile.TiffWriter(src, bigtiff=True) as w:
        w.write(_rgb(40, 60, 42), tile=(16, 16), description=xml, **common)
        w.write(_text_pixels(40, 60, f"LABEL {PLANT} "), rowsperstrip=8, **common)
        w.write(_rgb(384, 512, 43), tile=(128, 128), compression="jpeg", **common)
    report = _clean(src, dst)
    assert report.removed == ("label",)
    _no_plant(dst.read_bytes())
    with tifffile.TiffFile(dst) as tf:
        assert len(tf.pages) == 2
        root = ET.fromstring(tf.pages[0].description)
        ifds = {i.get("ID"): i.find("o:Pixels/o:TiffData", {"o": OME_NS}).get("IFD")
                for i in root.findall("o:Image", {"o": OME_NS})}
        assert ifds == {"Image:0": "1", "Image:2": "0"}
        assert tf.is_ome and [s.shape for s in tf.series] == [(384, 512, 3), (40, 60, 3)]


# --- QPTIFF -------------------------------------------------------------------------------------

def qpi_xml(image_type: str, name: str = "") -> str:
    """A page's ImageDescription as Akoya/PerkinElmer scanners (Vectra, Polaris) write it: the
    ``PerkinElmer-QPI-ImageDescription`` element with its version, software, ImageType, the
    channel's name and colour, exposure, objective, and the slide's SlideID, Barcode,
    ComputerName, ValidationCode, camera settings and ScanProfile (planted); the declaration
    says utf-16 over single-byte text, as in real files."""
    return ('<?xml version="1.0" encoding="utf-16"?>\r\n<PerkinElmer-QPI-ImageDescription>\r\n'
            "<DescriptionVersion>2</DescriptionVersion><AcquisitionSoftware>PerkinElmer-QPI</AcquisitionSoftware>"
            f"<ImageType>{image_type}</ImageType><Identifier>4,5,2,1</Identifier>"
            f"<SlideID>{PLANT}-S01</SlideID><Barcode>{PLANT}-BC</Barcode><ComputerName>PC-{PLANT}</ComputerName>"
            f"<IsUnmixedComponent>False</IsUnmixedComponent><ExposureTime>400</ExposureTime><SignalUnits>64</SignalUnits>"
            + (f"<Name>{name}</Name><Color>0,0,255</Color><Biomarker>CD8</Biomarker>" if name else "")
            + f"<Objective>20x</Objective><ValidationCode>{PLANT}4711</ValidationCode>"
            f"<CameraSettings><SerialNumber>{PLANT}-CAM</SerialNumber></CameraSettings>"
            f"<ScanProfile>&lt;root&gt;&lt;Operator&gt;{PLANT}&lt;/Operator&gt;&lt;Date&gt;2024-05-01&lt;/Date&gt;"
            f"&lt;/root&gt;</ScanProfile>\r\n</PerkinElmer-QPI-ImageDescription>")


def make_qptiff(path: Path) -> None:
    """A multiplexed QPTIFF as tifffile's QPI reader and Akoya's layout have it (every page with
    Software ``PerkinElmer-QPI`` and its own QPI XML): three full-resolution channels (512x384
    uint8, LZW tiles of 128), the RGB thumbnail (strips), two reduced resolutions of three
    channels each (NewSubfileType 1), then the overview and the label (strips, uncompressed
    pixels spelling a planted name). DateTime and Artist planted on every page."""
    rng = np.random.default_rng(51)
    channels = rng.integers(0, 256, (3, 384, 512), dtype=np.uint8)
    names = ("DAPI", "FITC", "Cy5")
    extra = [(306, "s", 0, "2024:05:01 10:11:12", True), (315, "s", 0, f"Artist {PLANT}", True)]
    common = {"metadata": None, "software": "PerkinElmer-QPI", "extratags": extra}
    with tifffile.TiffWriter(path, bigtiff=True) as w:
        for c, name in enumerate(names):
            w.write(channels[c], tile=(128, 128), compression="lzw", description=qpi_xml("FullResolution", name), **common)
        w.write(_rgb(96, 128, 52), rowsperstrip=32, photometric="rgb", description=qpi_xml("Thumbnail"), **common)
        for f in (2, 4):
            for c, name in enumerate(names):
                w.write(channels[c, ::f, ::f], tile=(128, 128), compression="lzw", subfiletype=1,
                        description=qpi_xml("ReducedResolution", name), **common)
        for kind in ("Overview", "Label"):
            w.write(_text_pixels(40, 60, f"{kind} {PLANT} "), rowsperstrip=8, photometric="rgb",
                    description=qpi_xml(kind), **common)


def test_qptiff(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.qptiff", tmp_path / "out.qptiff"
    make_qptiff(src)
    with tifffile.TiffFile(src) as tf:  # the builder is faithful: tifffile reads the QPI series
        assert tf.is_qpi and [s.name for s in tf.series] == ["Baseline", "Thumbnail", "Macro", "Label"]
        assert len(tf.series[0].levels) == 3
    assert sniff_slide(src) == "qptiff" and verify_slide(src)
    report = _clean(src, dst)
    assert report.vendor == "qptiff" and report.removed == ("macro", "label") and report.levels == 9
    out = dst.read_bytes()
    _no_plant(out)
    assert b"2024-05-01" not in out and b"2024:05:01" not in out
    with tifffile.TiffFile(dst) as tf, tifffile.TiffFile(src) as tf_in:
        assert tf.is_qpi and [s.name for s in tf.series] == ["Baseline", "Thumbnail"]
        s, s_in = tf.series[0], tf_in.series[0]
        assert [lv.shape for lv in s.levels] == [lv.shape for lv in s_in.levels]
        for lv, lv_in in zip(s.levels, s_in.levels):
            assert np.array_equal(lv.asarray(), lv_in.asarray())
        assert len(tf.pages) == 10
        for page in tf.pages:
            assert 306 not in page.tags and 315 not in page.tags and page.software == "PerkinElmer-QPI"
        root = ET.fromstring(tf.pages[1].description)
        assert [root.findtext(k) for k in ("ImageType", "Name", "Color", "Biomarker", "ExposureTime", "Objective")] == \
            ["FullResolution", "FITC", "0,0,255", "CD8", "400", "20x"]
        for gone in ("SlideID", "Barcode", "ComputerName", "ValidationCode", "CameraSettings", "ScanProfile"):
            assert root.find(gone) is None, gone
    assert _tiles(dst) == _tiles(src)[:10]
    assert verify_slide(dst) == []
    buf, again = io.BytesIO(), io.BytesIO()
    clean_slide(src, buf, KEYRING)
    assert buf.getvalue() == out
    assert clean_slide(dst, again, KEYRING).removed == () and again.getvalue() == out


@pytest.mark.parametrize("make", [make_ome, make_qptiff, make_ventana], ids=["ome", "qptiff", "ventana"])
@pytest.mark.parametrize("keep", [0.999, 0.6, 0.03])
def test_other_vendors_truncated_are_corrupt(tmp_path: Path, make, keep: float) -> None:
    make(tmp_path / "in.tif")
    data = (tmp_path / "in.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptInputError):
        _clean(tmp_path / "cut.tif", tmp_path / "out.tif")


@pytest.mark.parametrize("make", [make_philips, make_ventana, make_ome, make_qptiff],
                         ids=["philips", "ventana", "ome", "qptiff"])
def test_garbled_give_typed_errors_only(tmp_path: Path, make) -> None:
    """One to four random bytes overwritten, 150 times (fixed seed), often inside the XML: the
    slide is released or refused with a medcloak error, never another exception."""
    import random

    from medcloak.errors import MedcloakError

    make(tmp_path / "in.tif")
    data = (tmp_path / "in.tif").read_bytes()
    rng = random.Random(7)
    src = tmp_path / "garbled.tif"
    xml = [i for i in range(len(data)) if data.startswith(b"<?xml", i)]  # every other hit inside an XML
    for n in range(150):
        garbled = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(garbled)) if n % 2 else min(len(data) - 1, rng.choice(xml) + rng.randrange(600))
            garbled[at] = rng.randrange(256)
        src.write_bytes(bytes(garbled))
        sniff_slide(src)
        try:
            clean_slide(src, io.BytesIO(), KEYRING)
        except MedcloakError:
            pass


def test_xml_with_entity_declaration_refused(tmp_path: Path) -> None:
    """An entity declaration (how XML bombs and external entities work) is never parsed."""
    from medcloak.errors import UnsupportedInputError

    src = tmp_path / "in.tiff"
    xml = philips_xml(2).replace("<DataObject ObjectType=\"DPUfsImport\">",
                                 '<!DOCTYPE d [<!ENTITY e "x">]><DataObject ObjectType="DPUfsImport">', 1)
    with tifffile.TiffWriter(src) as w:
        w.write(_rgb(128, 128, 26), tile=(64, 64), software="Philips DP v1.0", metadata=None, description=xml)
        w.write(_rgb(64, 64, 27), tile=(64, 64), subfiletype=1, metadata=None, software="Philips DP v1.0")
    with pytest.raises(UnsupportedInputError):
        _clean(src, tmp_path / "out.tiff")
