"""Truncated objects, incomplete images and burned-in text fail closed, in a run and in ``verify``."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from conftest import pydicom_test_files
from pydicom.data import get_testdata_file

from medcloak.engine import run
from medcloak.errors import (
    CorruptInputError,
    DeidentificationError,
    LimitError,
    MedcloakError,
    SkippedObject,
)
from medcloak.formats.dicom import deidentify_dicom
from medcloak.formats.dicom_check import check_structure, missing_type1, slide_label
from medcloak.formats.dicom_elements import LONG_VR_NAMES
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile
from medcloak.verify import verify_release

PROFILE = load_profile()
KEYRING = Keyring(b"truncation-secret-0123456789")
#: the only third-party test files that are really cut short or whose lengths overrun the file
TRUNCATED = {"rtplan_truncated.dcm", "MR_truncated.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm",
             "DICOMDIR-nooffset"}
BURNED_IN_MODALITIES = {"US", "XA", "RF", "ES", "OT", "XC", "SC"}


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    return Path(str(path))


def _reason(path: Path, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(MedcloakError) as info:
        deidentify_dicom(path, PROFILE, KEYRING, **kwargs)
    return str(info.value)


def _codes(path: Path) -> list[str]:
    return [f.message for f in verify_release(path) if f.level == "error"]


# ---- the cases of the issue ---------------------------------------------------------------------


def test_value_cut_by_the_end_of_the_file_is_quarantined():
    path = pydicom_test_files() / "rtplan_truncated.dcm"
    with pytest.raises(CorruptInputError) as info:
        deidentify_dicom(path, PROFILE, KEYRING)
    assert str(info.value) == (
        "truncated: IsocenterPosition (in BeamSequence > ControlPointSequence) runs past the end of the file"
    )


def test_file_cut_inside_the_header_is_quarantined_and_verify_sees_it(tmp_path, secret_file):
    data = (pydicom_test_files() / "CT_small.dcm").read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.dcm").write_bytes(data[:3000])
    (tmp_path / "in" / "whole.dcm").write_bytes(data)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1 and summary.quarantined == 1
    rows = (tmp_path / "out.audit" / "manifest.jsonl").read_text()
    assert "truncated: an element header after (0027,1030) is cut by the end of the file" in rows
    assert _codes(tmp_path / "out") == []  # the new checks pass a clean release

    # the released object cut the same way: verify reports it
    (released,) = (tmp_path / "out").rglob("*.dcm")
    whole = released.read_bytes()
    released.write_bytes(whole[:3000])
    found = _codes(tmp_path / "out")
    assert len(found) == 1 and found[0].startswith("truncated: ")
    # cut on an element boundary, before Pixel Data: what is missing is named
    released.write_bytes(whole)
    ds = pydicom.dcmread(released)
    start = ds.get_item(0x7FE00010).value_tell - (8 if ds.original_encoding[0] else 12)
    released.write_bytes(whole[:start])
    assert _codes(tmp_path / "out") == ["missing Type 1 attribute PixelData"]


def test_unterminated_encapsulated_pixel_data_says_truncated():
    path = _testdata("emri_small_jpeg_2k_lossless_too_short.dcm")
    assert _reason(path) == "truncated: PixelData has no delimiter before the end of the file"


@pytest.mark.parametrize("name", ["US1_UNCR.dcm", "US1_J2KR.dcm"])
def test_ultrasound_without_burned_in_annotation_counts_as_burned_in(name, tmp_path):
    path = _testdata(name)
    with pytest.raises(DeidentificationError) as info:
        deidentify_dicom(path, PROFILE, KEYRING)
    assert str(info.value) == (
        "Burned In Annotation is absent from an ultrasound image, where burned-in text is common: counted as "
        "YES; needs --option clean-pixel-data"
    )
    # declared free of text, it is released
    ds = pydicom.dcmread(path)
    ds.BurnedInAnnotation = "NO"
    ds.save_as(tmp_path / "us.dcm")
    released = deidentify_dicom(tmp_path / "us.dcm", PROFILE, KEYRING)
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(released.data)).BurnedInAnnotation == "NO"


def test_ultrasound_without_burned_in_annotation_released_by_a_template(tmp_path, secret_file):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "us.dcm").write_bytes(_testdata("US1_UNCR.dcm").read_bytes())
    regions = tmp_path / "regions.toml"
    regions.write_text('[[region]]\nname = "banner"\nwhere = { Modality = "US" }\nboxes = [[0, 0, 640, 40]]\n')
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=regions)
    assert summary.ok == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    assert pydicom.dcmread(path).BurnedInAnnotation == "NO"
    assert _codes(tmp_path / "out") == []
    # with a template that does not match, its frames are scanned for text instead; without
    # the option, it stays quarantined
    regions.write_text('[[region]]\nname = "banner"\nwhere = { Modality = "XA" }\nboxes = [[0, 0, 640, 40]]\n')
    summary = run([tmp_path / "in"], tmp_path / "out2", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=regions)
    assert summary.ok == 1
    manifest = (tmp_path / "out2.audit" / "manifest.jsonl").read_text()
    assert '"pixel-frames-scanned": 1' in manifest and "pixel-regions-redacted" not in manifest
    summary = run([tmp_path / "in"], tmp_path / "out3", secret_file=secret_file)
    assert summary.quarantined == 1
    assert "counted as YES; needs --option clean-pixel-data" in (tmp_path / "out3.audit" / "manifest.jsonl").read_text()


def test_radiograph_screenshots_count_as_burned_in(tmp_path):
    src = pydicom.dcmread(_testdata("RG1_UNCR.dcm"))  # a CR image, DERIVED\PRIMARY, no Burned In Annotation
    assert src.Modality == "CR" and "BurnedInAnnotation" not in src
    src.save_as(tmp_path / "plain.dcm")
    deidentify_dicom(tmp_path / "plain.dcm", PROFILE, KEYRING)  # a primary radiograph is released

    converted = pydicom.dcmread(tmp_path / "plain.dcm")
    converted.ConversionType = "WSD"
    converted.save_as(tmp_path / "converted.dcm")
    assert _reason(tmp_path / "converted.dcm").startswith(
        "Burned In Annotation is absent from a CR secondary capture (Conversion Type present), where")
    secondary = pydicom.dcmread(tmp_path / "plain.dcm")
    secondary.ImageType = ["DERIVED", "SECONDARY"]
    secondary.save_as(tmp_path / "secondary.dcm")
    assert _reason(tmp_path / "secondary.dcm").startswith(
        "Burned In Annotation is absent from a CR secondary image (Image Type SECONDARY), where")


def test_image_missing_type1_attributes_is_quarantined(tmp_path):
    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    del ds.Rows
    del ds.PhotometricInterpretation
    ds.save_as(tmp_path / "norows.dcm")
    assert _reason(tmp_path / "norows.dcm") == "missing Type 1 attributes Rows, PhotometricInterpretation"
    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    assert _reason(tmp_path / "nopixels.dcm") == "missing Type 1 attribute PixelData"


def test_deflated_data_set_cut_short():
    data = (pydicom_test_files() / "image_dfl.dcm").read_bytes()
    check_structure(data)
    with pytest.raises(CorruptInputError, match="^truncated: the deflated data set is cut by the end of the file$"):
        check_structure(data[: len(data) - 200])


def test_verify_finds_an_unflagged_ultrasound_image_in_a_release(tmp_path, secret_file):
    ds = pydicom.dcmread(_testdata("US1_UNCR.dcm"))
    ds.BurnedInAnnotation = "NO"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "us.dcm")
    assert run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file).ok == 1
    assert _codes(tmp_path / "out") == []
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(path)
    del out.BurnedInAnnotation
    out.save_as(path)
    assert _codes(tmp_path / "out") == [
        "Burned In Annotation is absent from an ultrasound image, where burned-in text is common"]


#: a real slide label (see tests/data/wsi/SOURCES.md)
WSI_LABEL = Path(__file__).resolve().parent / "data" / "wsi" / "bpaec_label.dcm"


@pytest.mark.parametrize("how", ["specimen-label", "image-type"])
def test_slide_label_images_are_quarantined_unless_a_template_covers_them(tmp_path, secret_file, how):
    """A slide's label names the specimen, and Burned In Annotation stays NO on it: the label's
    own attributes decide. A template over the label releases it; verify flags an uncleaned one."""
    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    ds.BurnedInAnnotation = "NO"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "plain.dcm")
    if how == "specimen-label":
        ds.SpecimenLabelInImage = "YES"
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LABEL", "NONE"]
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    ds.save_as(tmp_path / "in" / "label.dcm")
    assert _reason(tmp_path / "in" / "label.dcm").startswith("the image shows a slide label (")
    deidentify_dicom(tmp_path / "in" / "plain.dcm", PROFILE, KEYRING)  # the same image without it is released

    regions = tmp_path / "regions.toml"
    regions.write_text('[[region]]\nname = "label"\nwhere = { Modality = "CT" }\nboxes = [[0, 0, 128, 128]]\n')
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=regions)
    assert summary.ok == 2 and _codes(tmp_path / "out") == []
    (label,) = [p for p in (tmp_path / "out").rglob("*.dcm") if slide_label(pydicom.dcmread(p)) is not None]
    out = pydicom.dcmread(label)
    out.DeidentificationMethodCodeSequence = [i for i in out.DeidentificationMethodCodeSequence if i.CodeValue != "113101"]
    out.save_as(label)
    assert any(c.startswith("the image shows a slide label (") for c in _codes(tmp_path / "out"))


def test_real_wsi_label_is_skipped():
    """A whole slide's LABEL instance is removed by design (see tests/test_dicom_wsi.py)."""
    with pytest.raises(SkippedObject) as info:
        deidentify_dicom(WSI_LABEL, PROFILE, KEYRING)
    assert str(info.value) == "slide label image: a whole slide's label is never released"


# ---- a file cut anywhere ------------------------------------------------------------------------


def _top_level_starts(path: Path) -> set[int]:
    """Offsets where a top-level element starts (and the end of the file), read by pydicom."""
    ds = pydicom.dcmread(path, force=True)
    implicit = ds.original_encoding[0]
    starts = {path.stat().st_size}
    for tag in ds.keys():
        raw = ds.get_item(tag)
        head = 8 if implicit or raw.VR not in LONG_VR_NAMES else 12
        tell = raw.value_tell if hasattr(raw, "value_tell") else raw.file_tell  # read eagerly: a sequence
        starts.add(tell - head)
    return starts


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "test-SR.dcm", "rtstruct.dcm", "image_dfl.dcm",
                                  "JPEG2000.dcm"])
def test_a_file_cut_anywhere_is_never_released_whole_but_wrong(name, tmp_path):
    """Cut every 97 bytes: each cut object is quarantined as truncated or missing attributes, or,
    when the cut falls exactly between two top-level elements after every required attribute,
    released as the shorter object it then is (no check can tell it from one written that way)."""
    path = pydicom_test_files() / name
    data = path.read_bytes()
    boundaries = _top_level_starts(path)
    released = []
    for n in range(140, len(data), 97):
        cut = tmp_path / "cut.dcm"
        cut.write_bytes(data[:n])
        try:
            deidentify_dicom(cut, PROFILE, KEYRING)
        except (CorruptInputError, DeidentificationError) as exc:
            # a deflated data set cut short may first declare more than its bytes may inflate to
            assert str(exc).startswith(("truncated: ", "missing Type 1 attribute", "Burned In Annotation")) or (
                isinstance(exc, LimitError) and str(exc).endswith("(--max-expansion)")), (n, exc)
            continue
        released.append(n)
        assert n in boundaries, n
        assert missing_type1(pydicom.dcmread(cut, force=True)) == []
    assert len(released) <= 1, released


# ---- the clean side -----------------------------------------------------------------------------


def _third_party_files() -> list[Path]:
    files = [p for p in pydicom_test_files().rglob("*") if p.is_file()]
    data_store = pytest.importorskip("data_store")
    files += [p for p in (Path(os.path.dirname(data_store.__file__)) / "data").rglob("*") if p.is_file()]
    return sorted(files)


def test_every_whole_third_party_file_passes_the_structural_walk():
    walked = 0
    for path in _third_party_files():
        data = path.read_bytes()
        if len(data) < 132 or (data[128:132] != b"DICM" and data[:2] not in (b"\x08\x00", b"\x02\x00", b"\x00\x08")):
            continue
        walked += 1
        if path.name in TRUNCATED:
            with pytest.raises(CorruptInputError, match="^truncated: "):
                check_structure(data)
        else:
            check_structure(data)
    assert walked >= 200


def test_new_quarantines_of_third_party_files_have_the_right_reason():
    """Every quarantine for the reasons of this module is true of the file; the rest is released."""
    counts = {"ok": 0, "burned": 0, "missing": 0, "truncated": 0}
    for path in _third_party_files():
        try:
            deidentify_dicom(path, PROFILE, KEYRING)
            counts["ok"] += 1
            continue
        except MedcloakError as exc:
            reason = str(exc)
        if reason.startswith("truncated: "):
            assert path.name in TRUNCATED, (path.name, reason)
            counts["truncated"] += 1
        elif reason.startswith("Burned In Annotation is absent"):
            ds = pydicom.dcmread(path, force=True)
            assert "BurnedInAnnotation" not in ds and "PixelData" in ds
            assert ds.get("Modality") in BURNED_IN_MODALITIES or "Secondary Capture" in ds.SOPClassUID.name or (
                "Ultrasound" in ds.SOPClassUID.name), path.name
            counts["burned"] += 1
        elif reason.startswith("missing Type 1 attribute"):
            ds = pydicom.dcmread(path, force=True)
            for keyword in reason.split(" ", 4)[-1].split(", "):
                assert keyword not in ds or ds.get(keyword) in ("", None), (path.name, keyword)
            counts["missing"] += 1
    assert counts["truncated"] == len(TRUNCATED)
    assert counts["ok"] >= 80 and counts["burned"] >= 70, counts


def test_structural_faults_that_are_not_truncation():
    from pydicom.filebase import DicomBytesIO

    base = (pydicom_test_files() / "rtplan.dcm").read_bytes()
    check_structure(base)
    ds = pydicom.dcmread(DicomBytesIO(base))
    assert ds.original_encoding[0]  # implicit VR little endian
    beams = ds.get_item(0x300A00B0)
    head = beams.value_tell - 8
    # an item delimiter where an element should start
    with pytest.raises(CorruptInputError, match="^malformed: an item delimiter outside any sequence$"):
        check_structure(base[:head] + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + base[head:])
    # the first item of Beam Sequence made longer than the sequence holds
    item = beams.value_tell
    length = int.from_bytes(base[item + 4 : item + 8], "little")
    longer = base[: item + 4] + (length + 2).to_bytes(4, "little") + base[item + 8 :]
    with pytest.raises(CorruptInputError, match="^malformed: "):
        check_structure(longer)
    # sequences nested deeper than any reader follows
    deep = b"\x08\x00\x15\x11\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff" * 5000
    with pytest.raises(CorruptInputError, match="^malformed: sequences nested too deep$"):
        check_structure(base + deep)


def test_type1_presence_is_read_from_raw_values_without_decoding_them(tmp_path):
    """Padding alone is no Modality; a binary value that happens to be spaces (Rows 0x2020) or
    zeros (Pixel Representation 0) is a value; and the check decodes nothing it keeps."""
    from pydicom.dataelem import RawDataElement

    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    ds.Rows = 0x2020
    ds.PixelRepresentation = 0
    ds.save_as(tmp_path / "a.dcm")
    read = pydicom.dcmread(tmp_path / "a.dcm")
    assert missing_type1(read) == []
    assert all(isinstance(read._dict[t], RawDataElement) for t in (0x00280010, 0x00280103, 0x00080060))
    data = (tmp_path / "a.dcm").read_bytes()
    at = data.index(b"CS\x02\x00CT", 132)  # Modality, explicit VR little endian
    (tmp_path / "b.dcm").write_bytes(data[:at + 4] + b"  " + data[at + 6:])
    assert missing_type1(pydicom.dcmread(tmp_path / "b.dcm")) == ["Modality"]
