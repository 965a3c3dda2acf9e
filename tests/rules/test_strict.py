"""The strict profile (``--profile strict``): the PS3.3 allow-list, its generator, and real objects
of several modalities released under it.

Real files (pydicom's and pydicom-data's, a DICOM whole slide of the repository's samples) get
identifiers and other attributes planted where their IOD has no place for them, and go through
the real command line twice, under ``basic`` and under ``strict``: every object is released under
both, ``medcloak verify`` passes, dciodvfy finds no error in the strict output that it does not
find in the basic output of the same file, nothing outside the allow-list is left at any depth,
and what the options keep is kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pydicom
import pytest
from conftest import dciodvfy_errors
from pydicom.data import get_testdata_file
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.cli import main
from medcloak.errors import ProfileError
from medcloak.rules import generate_strict as gen
from medcloak.rules.profile import load_profile, profile_from_document, rule_data
from medcloak.rules.strict import allow_list, outside

REPO = Path(__file__).resolve().parents[2]
WSI = REPO / "data_samples" / "wsi" / "dicom" / "openslide_boxes" / "boxes_0.dcm"
#: one file per family the test data has: (name, where pydicom finds it)
FILES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "test-SR.dcm", "waveform_ecg.dcm", "liver.dcm",
         "rtplan.dcm", "6154", "US1_UNCR.dcm", "eCT_Supplemental.dcm")
NAME = "Quennell^Harriet"
TECH = "seen by technician Albertine Vorsprung, staff ID 88412907"
#: standard attributes planted in every object, none of them in any IOD in scope here
PLANTED = {
    "UnformattedTextValue": ("ST", TECH),        # free text the PS3.15 table does not name
    "ReceiveCoilName": ("SH", "COIL-QX7"),  # an MR Image attribute, planted in every object
    "ProposedStudySequence": ("SQ", None),
}
SECRET = b"strict-profile-secret-0123456789"


def _plant(ds: Dataset) -> None:
    for keyword, (vr, value) in PLANTED.items():
        if vr == "SQ":
            item = Dataset()
            item.PatientName = NAME
            item.TextValue = TECH
            ds.add_new(tag_for_keyword(keyword), vr, Sequence([item]))
        elif tag_for_keyword(keyword) not in ds:
            ds.add_new(tag_for_keyword(keyword), vr, value)
    ds.PatientWeight = "71.5"
    ds.DetectorID = "DET-4471"  # kept by retain-device-identity, nowhere in a CT's modules
    ds.add_new(0x00291010, "LO", "ACME private value")
    ds.add_new(0x00290010, "LO", "ACME 1.1")
    # an attribute inside a kept sequence (General Image's Anatomic Region Sequence) that its
    # items have no place for
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-A0100", "SRT", "Brain"
    region.TextValue = TECH
    ds.AnatomicRegionSequence = Sequence([region])


def _run(src: Path, out: Path, key: Path, *extra: str) -> tuple[int, dict[str, dict]]:
    code = main(["run", str(src), "--out", str(out), "--secret-file", str(key), *extra])
    rows = [json.loads(line) for line in (out.parent / (out.name + ".audit") / "manifest.jsonl").read_text().splitlines()]
    return code, {Path(r["input"]).name: r for r in rows}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("strict")
    src = root / "in"
    src.mkdir()
    for name in FILES:
        ds = pydicom.dcmread(get_testdata_file(name))
        _plant(ds)
        if ds.Modality == "US":
            ds.BurnedInAnnotation = "NO"  # as a site that checked its images would say
        ds.save_as(src / name)
    ds = pydicom.dcmread(WSI)
    _plant(ds)
    ds.save_as(src / "wsi.dcm")
    key = root / "key"
    key.write_bytes(SECRET)
    os.chmod(key, 0o600)
    basic = _run(src, root / "basic", key)
    strict = _run(src, root / "strict", key, "--profile", "strict")
    kept = _run(src, root / "kept", key, "--profile", "strict", "--option", "retain-patient-characteristics",
                "--option", "retain-device-identity")
    return root, basic, strict, kept


def _out(root: Path, release: str, row: dict) -> Path:
    return root / release / row["outputs"][0]


def _keywords(ds: Dataset) -> set[str]:
    out = set()
    for elem in ds.iterall():
        out.add(elem.keyword or str(elem.tag))
    return out


def test_every_object_released_under_both(releases):
    _, (bcode, brows), (scode, srows), (kcode, krows) = releases
    assert bcode == scode == kcode == 0, {n: r["reason"] for n, r in srows.items() if r["status"] != "ok"}
    assert set(srows) == set(brows) == {*FILES, "wsi.dcm"}
    assert all(r["status"] == "ok" for r in [*srows.values(), *krows.values()])


def test_strict_release_passes_verify(releases, capsys):
    root = releases[0]
    for name in ("strict", "kept"):
        code = main(["verify", str(root / name), "--audit", str(root / f"{name}.audit")])
        out = capsys.readouterr().out
        assert code == 0, out
    doc = json.loads((root / "strict" / "DEIDENTIFICATION.json").read_text())
    assert doc["profile"] == "strict" and "allow_list" in doc
    assert profile_from_document(doc).strict


def test_nothing_outside_the_allow_list_is_left(releases):
    root, _, (_, srows), _ = releases
    profile = load_profile("strict")
    provenance = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280301, 0x00280302, 0x00280303})
    for name, row in srows.items():
        ds = pydicom.dcmread(_out(root, "strict", row))
        assert outside(ds, profile, provenance) == [], name
        for keyword in PLANTED:  # at the top level (an ECG's annotations hold their own text values)
            if keyword == "ReceiveCoilName" and name == "MR_small.dcm":
                assert ds.ReceiveCoilName  # the MR Image module's own
                continue
            assert keyword not in ds, (name, keyword)
        words = _keywords(ds)
        assert "PatientWeight" not in words and "DetectorID" not in words
        assert not any(int(e.tag) >> 16 & 1 for e in ds.iterall()), name  # private attributes all gone
        if "AnatomicRegionSequence" in ds:
            item = ds.AnatomicRegionSequence[0]
            assert item.CodeValue == "T-A0100" and "TextValue" not in item
        raw = _out(root, "strict", row).read_bytes()
        for text in (b"Vorsprung", b"88412907", b"Quennell", b"ACME private"):
            assert text not in raw, (name, text)


def test_the_basic_profile_is_unchanged(releases):
    """What the table does not name stays under basic, as before: the allow-list is strict's alone."""
    root, (_, brows), _, _ = releases
    assert not load_profile("basic").strict and not load_profile(None).strict
    ds = pydicom.dcmread(_out(root, "basic", brows["CT_small.dcm"]))
    assert "ReceiveCoilName" in ds and "ProposedStudySequence" in ds and "UnformattedTextValue" in ds
    assert "DetectorID" in ds  # the Basic Profile's dummy
    assert "TextValue" in ds.AnatomicRegionSequence[0]


def test_what_the_options_keep_is_kept(releases):
    root, _, (_, srows), (_, krows) = releases
    for name in ("CT_small.dcm", "MR_small.dcm", "wsi.dcm"):
        kept = pydicom.dcmread(_out(root, "kept", krows[name]))
        assert str(kept.PatientWeight) == "71.5" and kept.DetectorID == "DET-4471", name
        assert "ReceiveCoilName" not in kept or name == "MR_small.dcm"
    # Type 1 and 2 attributes the Basic Profile empties or replaces stay, emptied or replaced
    ct = pydicom.dcmread(_out(root, "strict", srows["CT_small.dcm"]))
    assert ct.PatientName and ct.PatientName != pydicom.dcmread(get_testdata_file("CT_small.dcm")).PatientName
    assert "StudyDate" in ct and "AccessionNumber" in ct and "ReferringPhysicianName" in ct
    assert ct.StudyID in ("", None) or "StudyID" in ct


def test_dciodvfy_finds_no_new_error_under_strict(releases, dciodvfy):
    if dciodvfy is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy (Debian dicom3tools) must be installed in CI")
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    root, (_, brows), (_, srows), _ = releases
    new = {}
    for name, row in srows.items():
        added = dciodvfy_errors(_out(root, "strict", row)) - dciodvfy_errors(_out(root, "basic", brows[name]))
        if added:
            new[name] = sorted(added)
    assert new == {}


def test_verify_flags_an_attribute_outside_the_allow_list(releases, tmp_path, capsys):
    root, _, (_, srows), _ = releases
    tampered = tmp_path / "rel"
    shutil.copytree(root / "strict", tampered)
    target = _out(tampered.parent, "rel", srows["CT_small.dcm"])
    ds = pydicom.dcmread(target)
    ds.ReceiveCoilName = "COIL"
    ds.save_as(target)
    assert main(["verify", str(tampered)]) == 1
    assert "ReceiveCoilName is outside the strict profile's allow-list" in capsys.readouterr().out


def test_a_sop_class_without_allow_list_is_not_released(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66"  # Raw Data
    ds.save_as(src / "raw.dcm")
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    os.chmod(key, 0o600)
    code, rows = _run(src, tmp_path / "out", key, "--profile", "strict")
    assert code == 1 and rows["raw.dcm"]["status"] == "quarantined"
    assert "no allow-list for SOP Class 1.2.840.10008.5.1.4.1.1.66" in rows["raw.dcm"]["reason"]
    code, rows = _run(src, tmp_path / "basic", key)
    assert code == 0  # the basic profile releases it as before


def test_a_site_file_turns_strict_on_and_keeps_its_private_block(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    _plant(ds)
    ds.save_as(src / "ct.dcm")
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    os.chmod(key, 0o600)
    site = tmp_path / "site.toml"
    site.write_text('strict = true\n[[private.keep]]\ncreator = "ACME 1.1"\ngroup = "0029"\noffsets = ["10"]\n'
                    '[attributes]\nReceiveCoilName = "keep"\n')
    code, rows = _run(src, tmp_path / "out", key, "--profile", str(site))
    assert code == 0, rows
    out = pydicom.dcmread(tmp_path / "out" / rows["ct.dcm"]["outputs"][0])
    assert out[0x00291010].value == "ACME private value"  # the site's private list keeps it
    assert out.ReceiveCoilName == "COIL-QX7"  # a site override keeps it
    assert "UnformattedTextValue" not in out and "ProposedStudySequence" not in out
    assert not [e for e in out.iterall() if int(e.tag) >> 16 == 0x0009]  # CT_small's GEMS blocks: gone
    assert main(["verify", str(tmp_path / "out")]) == 0
    with pytest.raises(ProfileError, match="strict must be true or false"):
        load_profile(None, overrides={"strict": "yes"})


# ---- the data and its generator ---------------------------------------------------------------


def test_committed_allow_list_equals_generated():
    text = gen.render(gen.build(gen.load_source(gen.SOURCE_FILE)))
    assert (gen.DATA_DIR / gen.DATA_NAME).read_text(encoding="utf-8") == text
    assert gen.main(["--check"]) == 0


def test_generator_check_fails_on_stale_data(tmp_path, monkeypatch, capsys):
    source = gen.load_source(gen.SOURCE_FILE)
    source["iods"]["ct-image"] = [m for m in source["iods"]["ct-image"] if m[0] != "voi-lut"]
    path = tmp_path / "src.json"
    path.write_text(json.dumps(source))
    assert gen.main([str(path), "--check"]) == 1
    assert gen.main([str(tmp_path / "missing.json"), "--check"]) == 2
    assert "missing" in capsys.readouterr().err


def test_every_mandatory_and_conditional_module_is_kept_and_no_other_optional_one():
    source = gen.load_source(gen.SOURCE_FILE)
    data = rule_data(gen.DATA_NAME)
    for iods in gen.FAMILIES.values():
        for iod in iods:
            kept = set(data["iods"][iod]["modules"])
            for module, usage in source["iods"][iod]:
                assert (module in kept) == (usage in ("M", "C") or module in gen.KEPT_OPTIONAL), (iod, module)
    assert "patient-study" not in data["iods"]["ct-image"]["modules"]
    assert "clinical-trial-subject" not in data["iods"]["mr-image"]["modules"]


def test_sop_classes_of_every_family_have_a_list():
    expected = {
        "1.2.840.10008.5.1.4.1.1.2": "ct-image",
        "1.2.840.10008.5.1.4.1.1.4.1": "enhanced-mr-image",
        "1.2.840.10008.5.1.4.1.1.128": "positron-emission-tomography-image",
        "1.2.840.10008.5.1.4.1.1.6.1": "ultrasound-image",
        "1.2.840.10008.5.1.4.1.1.6": "ultrasound-image",  # retired, still met
        "1.2.840.10008.5.1.4.1.1.1.2": "digital-mammography-x-ray-image",
        "1.2.840.10008.5.1.4.1.1.7": "secondary-capture-image",
        "1.2.840.10008.5.1.4.1.1.12.1": "x-ray-angiographic-image",
        "1.2.840.10008.5.1.4.1.1.20": "nuclear-medicine-image",
        "1.2.840.10008.5.1.4.1.1.88.33": "comprehensive-sr",
        "1.2.840.10008.5.1.4.1.1.104.1": "encapsulated-pdf",
        "1.2.840.10008.5.1.4.1.1.77.1.6": "vl-whole-slide-microscopy-image",
    }
    for uid, iod in expected.items():
        allow = allow_list(uid)
        assert allow is not None and allow.iod == iod, uid
        # Image Pixel (or the document) and SOP Common are there, by tag
        assert 0x00080016 in allow.top and 0x00080018 in allow.top
    ct = allow_list("1.2.840.10008.5.1.4.1.1.2")
    assert {0x7FE00010, 0x00280030, 0x00200032, 0x00281050, 0x00281053} <= set(ct.top)  # pixels, plane, window, rescale
    assert ct.top[0x00100010] == "2" and ct.top[0x00080060] == "1"
    assert 0x00101030 not in ct.top  # Patient's Weight: Patient Study module, left off
    assert allow_list("1.2.3.4") is None
    mr, us = allow_list("1.2.840.10008.5.1.4.1.1.4"), allow_list("1.2.840.10008.5.1.4.1.1.6.1")
    assert 0x00281053 in mr.top  # Rescale Slope: no module of the MR Image IOD has it, kept all the same
    assert 0x00280008 in us.top  # Number of Frames of a single-frame IOD: Pixel Data cannot be read without it


def test_content_items_nest_to_any_depth():
    sr = allow_list("1.2.840.10008.5.1.4.1.1.88.33")
    content = sr.items[0x0040A730]
    assert {0x0040A730, 0x0040A010, 0x0040A040, 0x0040A043, 0x0040A160} <= content


def test_enhanced_objects_keep_their_functional_groups():
    mr = allow_list("1.2.840.10008.5.1.4.1.1.4.1")
    shared, per_frame = 0x52009229, 0x52009230
    assert shared in mr.top and per_frame in mr.top
    assert 0x00289110 in mr.items[per_frame] and 0x00289110 in mr.items[shared]  # Pixel Measures
    assert 0x00280030 in mr.items[0x00289110]  # Pixel Spacing inside it
