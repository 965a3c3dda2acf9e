"""DICOM VL Whole Slide Microscopy: a slide's instances released together, its label never.

Real instances come from ``data_samples/wsi/dicom`` (see data_samples/SOURCES.md): the WG26 BPAEC
slide's LABEL (``bpaec/2.dcm``), its region localizer (``1_Map``) and its three smallest VOLUME
levels (``10_0`` .. ``12_0``), and OpenSlide's two-instance slide (``openslide_boxes``: a VOLUME
level in JPEG and a native THUMBNAIL). The synthetic instances are built here from those, with
pydicom, each builder saying how; JPEG tiles of the synthetic ones are made with Pillow.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pydicom
import pytest
from conftest import SECRET
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence

from medcloak.engine import run
from medcloak.errors import DeidentificationError, SkippedObject
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile
from medcloak.verify import verify_release

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "wsi" / "dicom"
BPAEC = SAMPLES / "bpaec"
BOXES = SAMPLES / "openslide_boxes"
KEYRING = Keyring(SECRET)
PROFILE = load_profile()
WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"
ROOT = "1.2.826.0.1.3680043.10.999.77."  # planted "original" UIDs


# ---- helpers ------------------------------------------------------------------------------------


def _frames(ds: Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _jpeg_core(frame: bytes) -> list[tuple[int, bytes]]:
    """A JPEG stream's segments but APPn and COM, and its entropy-coded data, as (marker, bytes):
    what a frame keeps when its metadata segments are removed (a parser of its own, not medcloak's)."""
    assert frame[:2] == b"\xff\xd8"
    out, pos = [], 2
    while True:
        assert frame[pos] == 0xFF
        marker = frame[pos + 1]
        length = int.from_bytes(frame[pos + 2 : pos + 4], "big")
        segment = frame[pos + 4 : pos + 2 + length]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out.append((marker, segment))
        elif marker == 0xE0 and segment.startswith(b"JFIF\x00"):
            out.append((marker, segment[:14]))  # JFIF kept, its thumbnail perhaps not
        elif marker == 0xEE and segment.startswith(b"Adobe"):
            out.append((marker, segment))
        pos += 2 + length
        if marker == 0xDA:  # the scan: everything up to EOI
            end = frame.rindex(b"\xff\xd9")
            out.append((0, frame[pos:end]))
            return out


def _tile(shade: int, comment: bytes = b"") -> bytes:
    """A 64x64 baseline JPEG tile made with Pillow, with an APP1 and a COM segment holding
    ``comment`` when given (metadata a scanner may leave in a tile)."""
    from PIL import Image

    image = Image.new("RGB", (64, 64), (shade, 255 - shade, (shade * 7) % 256))
    for x in range(0, 64, 8):
        image.putpixel((x, x), (0, 0, 0))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    if comment:
        app1 = b"\xff\xe1" + (len(comment) + 2).to_bytes(2, "big") + comment
        com = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        data = data[:2] + app1 + com + data[2:]
    return data


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _content(value_type: str, concept: Dataset, **values: object) -> Dataset:
    item = Dataset()
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([concept])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


#: every planted identifier, by where it is (upper-case ASCII, distinct, found nowhere else)
PLANTED = {
    "ContainerIdentifier": "CNRYCONTAINER01",
    "IssuerOfTheContainerIdentifierSequence": "CNRYCONTISSUER",
    "AlternateContainerIdentifierSequence": "CNRYALTCONTAINER",
    "ContainerDescription": "CNRYCONTDESCR",
    "SpecimenIdentifier": "CNRYSPECIMEN01",
    "IssuerOfTheSpecimenIdentifierSequence": "CNRYSPECISSUER",
    "SpecimenShortDescription": "CNRYSHORTDESCR",
    "SpecimenDetailedDescription": "CNRYDETAILEDDESCR",
    "SpecimenPreparation TEXT": "CNRYPREPSTEPTEXT",
    "SpecimenPreparation identifier": "CNRYPARENTBLOCK",
    "SpecimenPreparation issuer": "CNRYPREPISSUER",
    "SpecimenLocalization TEXT": "CNRYLOCATIONTEXT",
    "DeviceSerialNumber": "CNRYSERIAL77",
    "BarcodeValue": "CNRYBARCODE88",
    "LabelText": "CNRYLABELTEXT",
    "SlideIdentifier": "CNRYSLIDEID",
    "AccessionNumber": "CNRYACCESSION",
    "PatientName": "CNRYPATIENT^NAME",
    "PatientID": "CNRYPATIENTID",
    "AcquisitionDateTime": "20120327165454",
    "PyramidLabel": "CNRYPYRAMIDLABEL",
    "PyramidDescription": "CNRYPYRAMIDDESCR",
    "tile COM": "CNRYTILECOMMENT",
}


def _plant(ds: Dataset, specimen: str = "CNRYSPECIMEN01", container: str = "CNRYCONTAINER01") -> Dataset:
    """Put a planted identifier in every Specimen module field and every WSI-specific attribute
    that may carry one (as a LIS and a scanner fill them: TID 8001 preparation steps with the
    specimen's parent block, its issuer, a free-text step, a staining code; TID 8004 localization)."""
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = PLANTED["IssuerOfTheContainerIdentifierSequence"]
    ds.IssuerOfTheContainerIdentifierSequence = Sequence([issuer])
    ds.ContainerIdentifier = container
    alternate = Dataset()
    alternate.ContainerIdentifier = PLANTED["AlternateContainerIdentifierSequence"]
    alternate.IssuerOfTheContainerIdentifierSequence = Sequence([])
    ds.AlternateContainerIdentifierSequence = Sequence([alternate])
    ds.ContainerDescription = PLANTED["ContainerDescription"]
    ds.ContainerTypeCodeSequence = Sequence([_code("433466003", "SCT", "Microscope slide")])

    specimen_issuer = Dataset()
    specimen_issuer.LocalNamespaceEntityID = PLANTED["IssuerOfTheSpecimenIdentifierSequence"]
    steps = [
        _content("TEXT", _code("121041", "DCM", "Specimen Identifier"), TextValue=specimen),
        _content("TEXT", _code("111724", "DCM", "Issuer of Specimen Identifier"), TextValue=PLANTED["SpecimenPreparation issuer"]),
        _content("CODE", _code("111701", "DCM", "Processing type"), ConceptCodeSequence=Sequence([_code("127790008", "SCT", "Staining")])),
        _content("DATETIME", _code("111702", "DCM", "DateTime of processing"), DateTime="20120326101010"),
        _content("TEXT", _code("111703", "DCM", "Processing step description"), TextValue=PLANTED["SpecimenPreparation TEXT"]),
        _content("CODE", _code("111704", "DCM", "Sampling Method"), ConceptCodeSequence=Sequence([_code("434472006", "SCT", "Block sectioning")])),
        _content("TEXT", _code("111705", "DCM", "Parent Specimen Identifier"), TextValue=PLANTED["SpecimenPreparation identifier"]),
    ]
    step = Dataset()
    step.SpecimenPreparationStepContentItemSequence = Sequence(steps)
    description = Dataset()
    description.SpecimenIdentifier = specimen
    description.SpecimenUID = ROOT + "5"
    description.IssuerOfTheSpecimenIdentifierSequence = Sequence([specimen_issuer])
    description.SpecimenShortDescription = PLANTED["SpecimenShortDescription"]
    description.SpecimenDetailedDescription = PLANTED["SpecimenDetailedDescription"]
    description.SpecimenPreparationSequence = Sequence([step])
    description.SpecimenLocalizationContentItemSequence = Sequence([
        _content("TEXT", _code("111718", "DCM", "Location of Specimen"), TextValue=PLANTED["SpecimenLocalization TEXT"]),
    ])
    description.PrimaryAnatomicStructureSequence = Sequence([_code("39607008", "SCT", "Lung")])
    ds.SpecimenDescriptionSequence = Sequence([description])
    ds.DeviceSerialNumber = PLANTED["DeviceSerialNumber"]
    ds.BarcodeValue = PLANTED["BarcodeValue"]
    ds.LabelText = PLANTED["LabelText"]
    ds.add_new(0x004006FA, "LO", PLANTED["SlideIdentifier"])  # Slide Identifier (retired)
    ds.AccessionNumber = PLANTED["AccessionNumber"]
    ds.PatientName = PLANTED["PatientName"]
    ds.PatientID = PLANTED["PatientID"]
    ds.AcquisitionDateTime = PLANTED["AcquisitionDateTime"]
    ds.PyramidLabel = PLANTED["PyramidLabel"]
    ds.PyramidDescription = PLANTED["PyramidDescription"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ROOT + "1", ROOT + "2"
    ds.FrameOfReferenceUID = ROOT + "3"
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = ROOT + "4"
    for item in ds.DimensionIndexSequence:
        item.DimensionOrganizationUID = ROOT + "4"
    ds.PyramidUID = ROOT + "6"
    ds.AcquisitionUID = ROOT + "7"
    del ds.ImageComments  # a converter's text about the source file (cleaned by the profile anyway)
    return ds


def _planted_volume(sop: str) -> Dataset:
    """OpenSlide's VOLUME instance (``boxes_0.dcm``, TILED_FULL, one JPEG frame), planted."""
    ds = pydicom.dcmread(BOXES / "boxes_0.dcm")
    _plant(ds)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    return ds


def _sparse(sop: str, tiles: list[bytes], positions: list[tuple[int, int]]) -> Dataset:
    """A TILED_SPARSE VOLUME instance of a 192x128 level in 64x64 tiles, some absent: the planted
    ``boxes_0.dcm`` with its Pixel Data replaced by ``tiles`` (Pillow JPEGs) and a Per-Frame
    Functional Groups Sequence whose Plane Position (Slide) gives each tile's place in the total
    pixel matrix and on the slide (PS3.3 C.8.12.4, C.8.12.6.1)."""
    ds = _planted_volume(sop)
    ds.DimensionOrganizationType = "TILED_SPARSE"
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = 192, 128
    ds.NumberOfFrames = len(tiles)
    ds.PhotometricInterpretation = "YBR_FULL_422"
    frames = []
    for (column, row), _tile_bytes in zip(positions, tiles):
        position = Dataset()
        position.ColumnPositionInTotalImagePixelMatrix = column
        position.RowPositionInTotalImagePixelMatrix = row
        position.XOffsetInSlideCoordinateSystem = f"{20 + row * 0.0005:.4f}"
        position.YOffsetInSlideCoordinateSystem = f"{30 + column * 0.0005:.4f}"
        position.ZOffsetInSlideCoordinateSystem = "0"
        content = Dataset()
        content.DimensionIndexValues = [row // 64 + 1, column // 64 + 1]  # rows, then columns (as boxes_0)
        content.FrameAcquisitionDateTime = "20120327165455"
        optical = Dataset()
        optical.OpticalPathIdentifier = "0"
        frame = Dataset()
        frame.PlanePositionSlideSequence = Sequence([position])
        frame.FrameContentSequence = Sequence([content])
        frame.OpticalPathIdentificationSequence = Sequence([optical])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = encapsulate(tiles, has_bot=True)
    ds["PixelData"].is_undefined_length = True
    return ds


SPARSE_AT = [(1, 1), (129, 1), (65, 65), (129, 65)]  # (column, row), from 1: two tiles of six absent


def _write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _released(out: Path) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() + str(p.relative_to(folder)).encode() for p in sorted(folder.rglob("*")) if p.is_file())


# ---- the label and the overview -----------------------------------------------------------------


def test_real_label_instance_is_skipped_and_its_slide_released(tmp_path, secret_file):
    """The whole BPAEC sample (label, localizer, three levels) and OpenSlide's slide, run by
    ``medcloak.engine.run``: the label is skipped with its reason, every other instance released
    (exit status 0), each slide's instances keep one study, series, frame of reference, container
    and specimen UID between them, and verify accepts the release."""
    inputs = tmp_path / "in"
    shutil.copytree(SAMPLES, inputs)
    summary = run([inputs], tmp_path / "out", secret_file=secret_file)
    assert (summary.ok, summary.quarantined, summary.skipped) == (6, 0, 1)
    assert summary.exit_status == 0
    import json

    lines = [json.loads(x) for x in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    skipped = [e for e in lines if e["status"] == "skipped"]
    assert [Path(e["input"]).name for e in skipped] == ["2.dcm"]
    assert skipped[0]["reason"] == "slide label image: a whole slide's label is never released"

    released = _released(tmp_path / "out")
    assert sorted(str(ds.ImageType[2]) for ds in released) == [
        "REGIONLOCALIZER", "THUMBNAIL", "VOLUME", "VOLUME", "VOLUME", "VOLUME"]
    for group in ({"Leica Biosystems"}, {"3DHISTECH Kft."}):
        slide = [ds for ds in released if ds.Manufacturer in group]
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "ContainerIdentifier"):
            assert len({str(ds.get(keyword)) for ds in slide}) == 1, keyword
        assert len({str(ds.SpecimenDescriptionSequence[0].SpecimenUID) for ds in slide}) == 1
        assert len({str(ds.SpecimenDescriptionSequence[0].SpecimenIdentifier) for ds in slide}) == 1
    originals = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in SAMPLES.rglob("*.dcm")}
    assert not originals & {str(ds.SOPInstanceUID) for ds in released}
    assert [f.message for f in verify_release(tmp_path / "out") if f.level == "error"] == []


# ---- one slide, one task ------------------------------------------------------------------------


def _plan(inputs: Path) -> list:
    from medcloak.discover import discover
    from medcloak.engine import make_settings, plan

    return list(plan(discover([inputs]), KEYRING, PROFILE, make_settings({})))


def test_a_slides_instances_are_one_task_and_other_dicom_is_not_grouped(tmp_path):
    """Discovery tells a whole-slide instance by the SOP class of its file meta information; the
    planner makes each slide (study and series) one task, its label included, whatever the folder;
    an ordinary DICOM object, and a slide instance without file meta, stay tasks of their own."""
    inputs = tmp_path / "in"
    shutil.copytree(BPAEC, inputs / "a")
    shutil.move(inputs / "a" / "12_0.dcm", inputs / "12_0.dcm")  # a slide spread over folders
    shutil.copytree(BOXES, inputs / "b")
    ordinary = Path(__file__).resolve().parents[1] / "data_samples" / "dicom"
    one = next(p for p in sorted(ordinary.rglob("*.dcm")))
    shutil.copy(one, inputs / "ordinary.dcm")
    whole = (BOXES / "boxes_1.dcm").read_bytes()  # its data set alone, no preamble or file meta:
    meta = pydicom.dcmread(BOXES / "boxes_1.dcm", stop_before_pixels=True).file_meta  # discovery cannot
    assert meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian  # tell it a slide
    (inputs / "bare.dcm").write_bytes(whole[132 + 12 + meta.FileMetaInformationGroupLength:])
    tasks = _plan(inputs)
    names = sorted(sorted(Path(s.path).name for s in (t.source, *t.members)) for t in tasks)
    assert names == [["10_0.dcm", "11_0.dcm", "12_0.dcm", "1_Map.dcm", "2.dcm"], ["bare.dcm"],
                     ["boxes_0.dcm", "boxes_1.dcm"], ["ordinary.dcm"]]
    kinds = {Path(s.path).name: s.format for t in tasks for s in (t.source, *t.members)}
    assert kinds["ordinary.dcm"] == kinds["bare.dcm"] == "dicom"
    assert {kinds[n] for n in ("10_0.dcm", "2.dcm", "boxes_0.dcm")} == {"dicom-slide"}


def test_media_class_reads_the_file_meta_or_says_it_cannot():
    from medcloak.formats.dicom_sniff import media_class

    head = (BOXES / "boxes_0.dcm").read_bytes()[:512]
    assert media_class(head) == WSI
    # the file meta cut short: no guess
    for cut in (132, 140, 150, 160, 170):
        assert media_class(head[:cut]) in (None, WSI)
        if cut < 150:
            assert media_class(head[:cut]) is None
    assert media_class(b"\0" * 128 + b"DICM" + b"\x08\x00\x16\x00UI\x04\x001.2\0") is None  # no group 2


def test_an_instance_that_fails_quarantines_its_whole_slide(tmp_path, secret_file):
    """One level of the BPAEC slide truncated: nothing of that slide is released (the levels
    written before it are taken back), every instance is recorded with the slide's reason but the
    label, which is skipped anyway; OpenSlide's slide beside it is released whole."""
    inputs = tmp_path / "in"
    shutil.copytree(BPAEC, inputs / "a")
    shutil.copytree(BOXES, inputs / "b")
    level = inputs / "a" / "12_0.dcm"  # sorted last among the slide's levels: the others are written first
    level.write_bytes(level.read_bytes()[: level.stat().st_size * 2 // 3])
    summary = run([inputs], tmp_path / "out", secret_file=secret_file)
    import json

    lines = [json.loads(x) for x in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    status = {Path(e["input"]).name: e["status"] for e in lines}
    assert status == {"10_0.dcm": "quarantined", "11_0.dcm": "quarantined", "12_0.dcm": "quarantined",
                      "1_Map.dcm": "quarantined", "2.dcm": "quarantined", "boxes_0.dcm": "ok", "boxes_1.dcm": "ok"}
    reasons = {e["reason"] for e in lines if e["status"] == "quarantined"}
    assert len(reasons) == 1 and next(iter(reasons)).startswith("slide: instance ")
    released = _released(tmp_path / "out")
    boxes = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in BOXES.glob("*.dcm")}
    assert len(released) == 2 and {KEYRING.uid(u) for u in boxes} == {str(ds.StudyInstanceUID) for ds in released}
    assert summary.exit_status == 1
    assert [f.message for f in verify_release(tmp_path / "out") if f.level == "error"] == []


def test_a_slides_instances_are_written_one_at_a_time(tmp_path, secret_file, monkeypatch):
    """A slide is never held whole: each instance is written before the next one is read."""
    import medcloak.formats.dicom as dicom

    inputs = tmp_path / "in"
    shutil.copytree(BPAEC, inputs)
    out = tmp_path / "out"
    seen: list[int] = []
    real = dicom.deidentify_dicom

    def watched(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(len(list(out.rglob("*.dcm"))) if out.exists() else 0)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dicom, "deidentify_dicom", watched)
    summary = run([inputs], out, secret_file=secret_file)
    assert (summary.ok, summary.skipped) == (4, 1)
    # instances in path order: 10_0, 11_0, 12_0, 1_Map, 2 (the label, skipped, read last)
    assert seen == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("value3, reason", [
    ("LABEL", "slide label image"), ("OVERVIEW", "slide overview image (shows the label)")])
def test_label_and_overview_instances_are_skipped(tmp_path, value3, reason):
    """The OpenSlide VOLUME instance with Image Type value 3 made LABEL or OVERVIEW (and Specimen
    Label in Image NO, as an overview that cut the label off would say): never released, also
    when it declares burned-in text (skipped, not quarantined) or a region template covers it."""
    ds = pydicom.dcmread(BOXES / "boxes_0.dcm")
    ds.ImageType = ["ORIGINAL", "PRIMARY", value3, "NONE"]
    ds.BurnedInAnnotation = "YES"
    path = _write(ds, tmp_path / "associated.dcm")
    with pytest.raises(SkippedObject) as info:
        deidentify_dicom(path, PROFILE, KEYRING)
    assert str(info.value) == f"{reason}: a whole slide's label is never released"
    regions = tmp_path / "regions.toml"  # a template that covers the whole image does not release it
    regions.write_text('[[region]]\nname = "all"\nwhere = { Modality = "SM" }\nboxes = [[0, 0, 64, 64]]\n')
    from medcloak.rules.regions import load_regions

    with pytest.raises(SkippedObject):
        deidentify_dicom(path, load_profile(None, ["clean-pixel-data"]), KEYRING, regions=load_regions(regions))


def test_a_level_that_shows_the_label_is_quarantined(tmp_path):
    """A VOLUME (or THUMBNAIL) instance whose Specimen Label in Image is YES is no associated image
    to drop: the slide would lose a level. It is quarantined, so the run says so (exit status 1)."""
    ds = pydicom.dcmread(BOXES / "boxes_1.dcm")
    ds.SpecimenLabelInImage = "YES"
    path = _write(ds, tmp_path / "thumbnail.dcm")
    with pytest.raises(DeidentificationError, match=r"^the image shows a slide label \(Specimen Label in Image is YES\)"):
        deidentify_dicom(path, PROFILE, KEYRING)


def test_clean_real_instances_are_released_unchanged_in_their_pixels(tmp_path):
    """Both ways: the real VOLUME levels, the localizer and the THUMBNAIL are released, not
    refused, and every frame keeps its JPEG segments and entropy-coded data (APPn/COM aside);
    the native thumbnail's pixels are byte-identical."""
    paths = [BPAEC / f"{n}.dcm" for n in ("1_Map", "10_0", "11_0", "12_0")] + [BOXES / "boxes_0.dcm"]
    for path in paths:
        released = deidentify_dicom(path, PROFILE, KEYRING)
        before = pydicom.dcmread(path)
        after = pydicom.dcmread(io.BytesIO(released.data))
        assert [_jpeg_core(f) for f in _frames(after)] == [_jpeg_core(f) for f in _frames(before)]
        for keyword in ("TotalPixelMatrixColumns", "TotalPixelMatrixRows", "DimensionOrganizationType",
                        "ImageType", "NumberOfFrames", "Rows", "Columns"):
            assert after.get(keyword) == before.get(keyword), keyword
    thumbnail = deidentify_dicom(BOXES / "boxes_1.dcm", PROFILE, KEYRING)
    assert pydicom.dcmread(io.BytesIO(thumbnail.data)).PixelData == pydicom.dcmread(BOXES / "boxes_1.dcm").PixelData


# ---- the Specimen module and WSI attributes -----------------------------------------------------


def test_planted_identifiers_are_absent_from_every_byte(tmp_path, secret_file):
    """A planted VOLUME (TILED_FULL) and a planted TILED_SPARSE instance of one slide, whose tiles
    carry the identifier in APP1 and COM: after the run, no planted value in any byte or path;
    the pseudonyms agree between the two instances, the Specimen module keeps its structure and
    coded content, and the optical path keeps its identifier."""
    tiles = [_tile(40 * i, PLANTED["tile COM"].encode()) for i in range(len(SPARSE_AT))]
    _write(_planted_volume(ROOT + "10"), tmp_path / "in" / "volume.dcm")
    _write(_sparse(ROOT + "11", tiles, SPARSE_AT), tmp_path / "in" / "sparse.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert (summary.ok, summary.quarantined) == (2, 0)
    data = _all_bytes(tmp_path / "out").upper()
    for where, value in PLANTED.items():
        assert value.encode() not in data, where
    assert b"CNRY" not in data and ROOT.encode() not in data
    volume, sparse = sorted(_released(tmp_path / "out"), key=lambda ds: str(ds.DimensionOrganizationType))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "ContainerIdentifier",
                    "PyramidUID", "AcquisitionUID"):
        assert volume.get(keyword) == sparse.get(keyword), keyword
    assert volume.DimensionOrganizationSequence[0].DimensionOrganizationUID == sparse.DimensionIndexSequence[0].DimensionOrganizationUID
    spec_v, spec_s = volume.SpecimenDescriptionSequence[0], sparse.SpecimenDescriptionSequence[0]
    assert spec_v.SpecimenUID == spec_s.SpecimenUID and spec_v.SpecimenIdentifier == spec_s.SpecimenIdentifier
    assert str(volume.ContainerIdentifier).startswith("MCC") and str(spec_v.SpecimenIdentifier).startswith("MCS")
    assert spec_v.SpecimenPreparationSequence == []  # Z: the steps go under the Basic Profile
    assert "SpecimenShortDescription" not in spec_v and "SpecimenDetailedDescription" not in spec_v
    assert spec_v.IssuerOfTheSpecimenIdentifierSequence == [] and volume.IssuerOfTheContainerIdentifierSequence == []
    (location,) = spec_v.SpecimenLocalizationContentItemSequence  # D: the item stays, its text a dummy
    assert location.TextValue == "ANONYMIZED" and location.ConceptNameCodeSequence[0].CodeValue == "111718"
    assert spec_v.PrimaryAnatomicStructureSequence[0].CodeValue == "39607008"
    assert volume.OpticalPathSequence[0].OpticalPathIdentifier == "0"
    assert volume.DeviceSerialNumber == "ANONYMIZED" and volume.AcquisitionDateTime == "19000101000000"
    assert volume.ContainerTypeCodeSequence[0].CodeValue == "433466003"


def test_specimen_pseudonyms_are_keyed_per_slide(tmp_path):
    """Two slides get two container and specimen identifiers (a constant dummy would merge them);
    one slide gets the same on every instance, in every run with the same secret."""
    a1 = _write(_planted_volume(ROOT + "20"), tmp_path / "a1.dcm")
    a2 = _write(_planted_volume(ROOT + "21"), tmp_path / "a2.dcm")
    other = _planted_volume(ROOT + "22")
    other.ContainerIdentifier = "CNRYOTHERSLIDE"
    other.SpecimenDescriptionSequence[0].SpecimenIdentifier = "CNRYOTHERSPEC"
    b = _write(other, tmp_path / "b.dcm")
    out = {p.name: pydicom.dcmread(io.BytesIO(deidentify_dicom(p, PROFILE, KEYRING).data)) for p in (a1, a2, b)}
    assert out["a1.dcm"].ContainerIdentifier == out["a2.dcm"].ContainerIdentifier != out["b.dcm"].ContainerIdentifier
    ids = {n: ds.SpecimenDescriptionSequence[0].SpecimenIdentifier for n, ds in out.items()}
    assert ids["a1.dcm"] == ids["a2.dcm"] != ids["b.dcm"]


def test_clean_structured_content_keeps_preparation_steps_without_identifiers(tmp_path):
    """Under Clean Structured Content the preparation steps stay (C): the specimen identifier
    items (121041, 111705) become keyed pseudonyms, the one naming the slide's own specimen equal
    to its Specimen Identifier; the issuer item a dummy; codes and the step's text that names no
    one are kept; the date follows the dates' rule."""
    path = _write(_planted_volume(ROOT + "30"), tmp_path / "volume.dcm")
    profile = load_profile(None, ["clean-structured-content"])
    released = deidentify_dicom(path, profile, KEYRING)
    ds = pydicom.dcmread(io.BytesIO(released.data))
    spec = ds.SpecimenDescriptionSequence[0]
    items = {i.ConceptNameCodeSequence[0].CodeValue: i for i in spec.SpecimenPreparationSequence[0].SpecimenPreparationStepContentItemSequence}
    assert items["121041"].TextValue == spec.SpecimenIdentifier
    assert items["111705"].TextValue.startswith("MCS") and items["111705"].TextValue != spec.SpecimenIdentifier
    assert items["111724"].TextValue == "ANONYMIZED"
    assert items["111701"].ConceptCodeSequence[0].CodeValue == "127790008"
    assert items["111702"].DateTime != "20120326101010"
    for value in ("CNRYSPECIMEN01", "CNRYPARENTBLOCK", "CNRYPREPISSUER", "CNRYSPECISSUER", "CNRYCONTAINER01"):
        assert value.encode() not in released.data


# ---- frames: TILED_SPARSE and concatenations ----------------------------------------------------


def test_tiled_sparse_frames_and_positions_are_kept(tmp_path):
    """The synthetic TILED_SPARSE instance: every frame's JPEG segments and entropy-coded data
    equal the input's (APP1 and COM removed), and each frame keeps its plane position and
    optical path; Frame Acquisition DateTime gets the dates' dummy."""
    tiles = [_tile(50 * i + 10, b"CNRYTILECOMMENT") for i in range(len(SPARSE_AT))]
    source = _sparse(ROOT + "40", tiles, SPARSE_AT)
    path = _write(source, tmp_path / "sparse.dcm")
    released = deidentify_dicom(path, PROFILE, KEYRING)
    ds = pydicom.dcmread(io.BytesIO(released.data))
    out_frames = _frames(ds)
    assert [_jpeg_core(f) for f in out_frames] == [_jpeg_core(t) for t in tiles]
    assert all(b"CNRYTILECOMMENT" not in f for f in out_frames) and released.counts.get("jpeg-frames-stripped") == 1
    assert ds.DimensionOrganizationType == "TILED_SPARSE" and ds.NumberOfFrames == len(tiles)
    for frame, (column, row), original in zip(ds.PerFrameFunctionalGroupsSequence, SPARSE_AT, source.PerFrameFunctionalGroupsSequence):
        position = frame.PlanePositionSlideSequence[0]
        assert (position.ColumnPositionInTotalImagePixelMatrix, position.RowPositionInTotalImagePixelMatrix) == (column, row)
        assert position.XOffsetInSlideCoordinateSystem == original.PlanePositionSlideSequence[0].XOffsetInSlideCoordinateSystem
        assert frame.OpticalPathIdentificationSequence[0].OpticalPathIdentifier == "0"
        assert frame.FrameContentSequence[0].DimensionIndexValues == original.FrameContentSequence[0].DimensionIndexValues
        assert frame.FrameContentSequence[0].FrameAcquisitionDateTime != "20120327165455"


def test_concatenation_is_mapped_consistently(tmp_path, secret_file):
    """The synthetic TILED_SPARSE instance split in two instances of one concatenation (PS3.3
    C.7.6.16.2.2.4: a Concatenation UID, the SOP Instance UID of the concatenation's source, the
    part's number and frame offset): both released with one new Concatenation UID and the new UID
    of the source instance, their frames split as in the input."""
    tiles = [_tile(30 * i + 5) for i in range(len(SPARSE_AT))]
    whole = _sparse(ROOT + "50", tiles, SPARSE_AT)
    for part in (1, 2):
        ds = _sparse(ROOT + f"5{part}", tiles[(part - 1) * 2 : part * 2], SPARSE_AT[(part - 1) * 2 : part * 2])
        ds.ConcatenationUID = ROOT + "59"
        ds.SOPInstanceUIDOfConcatenationSource = whole.SOPInstanceUID
        ds.InConcatenationNumber = part
        ds.InConcatenationTotalNumber = 2
        ds.ConcatenationFrameOffsetNumber = (part - 1) * 2
        _write(ds, tmp_path / "in" / f"part{part}.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 2
    parts = sorted(_released(tmp_path / "out"), key=lambda d: int(d.InConcatenationNumber))
    assert parts[0].ConcatenationUID == parts[1].ConcatenationUID != ROOT + "59"
    assert parts[0].SOPInstanceUIDOfConcatenationSource == parts[1].SOPInstanceUIDOfConcatenationSource
    assert parts[0].SOPInstanceUIDOfConcatenationSource == KEYRING.uid(whole.SOPInstanceUID)
    assert parts[0].ConcatenationUID == KEYRING.uid(ROOT + "59")
    assert [int(p.ConcatenationFrameOffsetNumber) for p in parts] == [0, 2]
    assert [_jpeg_core(f) for p in parts for f in _frames(p)] == [_jpeg_core(t) for t in tiles]


# ---- a reader of slides -------------------------------------------------------------------------


@pytest.mark.parametrize("slide", ["bpaec", "openslide_boxes"])
def test_released_slide_opens_in_wsidicom_with_the_same_levels(tmp_path, secret_file, slide):
    """wsidicom (where installed) opens each released slide with the levels of the input (size,
    microns per pixel, tile size) and finds the BPAEC label in the input, none in the release."""
    wsidicom = pytest.importorskip("wsidicom")
    run([SAMPLES / slide], tmp_path / "out", secret_file=secret_file)
    (folder,) = {p.parent for p in (tmp_path / "out").rglob("*.dcm")}

    def read(path: Path) -> tuple[list[tuple[object, ...]], bool]:
        with wsidicom.WsiDicom.open(path) as wsi:
            levels = [(lv.size.width, lv.size.height, round(lv.mpp.width, 6), lv.tile_size.width) for lv in wsi.levels]
            return levels, wsi.labels is not None

    levels_in, label_in = read(SAMPLES / slide)
    levels_out, label_out = read(folder)
    assert levels_out == levels_in and len(levels_in) == (3 if slide == "bpaec" else 1)
    assert label_in == (slide == "bpaec") and not label_out


def test_verify_flags_an_overview_in_a_release(tmp_path, secret_file):
    """A released level made into an OVERVIEW after the run (a tampered release): verify fails on it."""
    run([BOXES], tmp_path / "out", secret_file=secret_file)
    assert [f.message for f in verify_release(tmp_path / "out") if f.level == "error"] == []
    (path,) = [p for p in (tmp_path / "out").rglob("*.dcm") if pydicom.dcmread(p).ImageType[2] == "VOLUME"]
    ds = pydicom.dcmread(path)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OVERVIEW", "NONE"]
    ds.save_as(path)
    errors = [f.message for f in verify_release(tmp_path / "out") if f.level == "error"]
    assert any("shows a slide label (Image Type is OVERVIEW)" in e for e in errors), errors


def test_released_tiled_sparse_instance_reads_the_same_in_wsidicom(tmp_path):
    """wsidicom (where installed) reads the released synthetic TILED_SPARSE level as the input:
    same size and tile size, the same pixels everywhere (absent tiles included, which it fills)."""
    wsidicom = pytest.importorskip("wsidicom")
    import numpy as np

    tiles = [_tile(50 * i + 10, b"CNRYTILECOMMENT") for i in range(len(SPARSE_AT))]
    source = _write(_sparse(ROOT + "60", tiles, SPARSE_AT), tmp_path / "in" / "sparse.dcm")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "level.dcm").write_bytes(deidentify_dicom(source, PROFILE, KEYRING).data)

    def read(folder: Path) -> tuple[object, object, object]:
        with wsidicom.WsiDicom.open(folder) as wsi:
            level = wsi.levels[0]
            return level.size, level.tile_size, np.asarray(wsi.read_region((0, 0), 0, (192, 128)))

    size_in, tile_in, pixels_in = read(tmp_path / "in")
    size_out, tile_out, pixels_out = read(tmp_path / "out")
    assert (size_out, tile_out) == (size_in, tile_in) and (size_in.width, size_in.height) == (192, 128)
    assert np.array_equal(pixels_out, pixels_in)
