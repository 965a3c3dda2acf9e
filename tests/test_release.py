"""End-to-end: a release from real DICOM files, checked byte by byte."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pydicom
import pytest
from conftest import SECRET, UID_ROOT, all_bytes_and_names, base_dataset, build_canary, write
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.engine import run
from medcloak.pseudonym import Keyring


def released(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.dcm"))


def manifest(out: Path) -> list[dict]:
    text = (out.parent / (out.name + ".audit") / "manifest.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---- the canary: every hiding place, basic profile -----------------------------------------------


def test_canary_no_planted_token_survives(tmp_path, secret_file):
    src = tmp_path / "in"
    path, tokens = build_canary(src)
    assert len(tokens) == len(set(tokens)) > 40
    before = path.read_bytes()
    for t in tokens[:-3]:  # the planted values really are in the input (not the path tokens)
        assert t.encode() in before or t in str(path), t
    summary = run([src], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1 and summary.quarantined == 0
    assert path.read_bytes() == before  # the input is never modified
    blob, names = all_bytes_and_names(tmp_path / "out")
    survivors = [t for t in tokens if t.lower().encode() in blob or t.lower() in names]
    assert survivors == []
    out = released(tmp_path / "out")[0]
    raw = out.read_bytes()
    assert raw[:128] == b"\x00" * 128
    ds = pydicom.dcmread(out)
    assert 0xFFFCFFFC not in ds
    assert not [e for e in ds.iterall() if e.tag.group & 1]
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.ImplementationVersionName.startswith("MEDCLOAK")
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    # a Type 2 attribute stays present and empty; a pseudonym replaces the patient's identity
    assert "StudyDate" in ds and ds.StudyDate == ""
    original = pydicom.dcmread(path)
    identity = f"id:{original.PatientID}|{original.IssuerOfPatientID}"
    assert ds.PatientID == Keyring(SECRET).patient_id(identity)
    assert str(ds.PatientName) == ds.PatientID
    # the SR text in a Content Sequence (action D) became a dummy, the structure stays
    assert ds.ContentSequence[0].TextValue == "ANONYMIZED"
    assert ds.ContentSequence[0].ValueType == "TEXT"
    # coded entries inside an unnamed sequence survive, the identifying attribute does not
    assert ds.AnatomicRegionSequence[0].CodeValue == "T-D0050"
    assert "InstitutionName" not in ds.AnatomicRegionSequence[0] or ds.AnatomicRegionSequence[0].InstitutionName in ("", "ANONYMIZED")


def test_clean_descriptors_remove_header_identifiers_keep_text(tmp_path, secret_file):
    ds = base_dataset(UID_ROOT + "11", UID_ROOT + "12", UID_ROOT + "13", patient="QX7781234")
    ds.PatientName = "Brightwater^Eleanor"
    ds.InstitutionName = "Saint Quillon Hospital"
    ds.StudyDescription = "CT CHEST for Eleanor BRIGHTWATER id QX7781234 on 2021-03-04"
    ds.SeriesDescription = "AXIAL 5MM call 555-201-7788"
    ds.ImageComments = "sent from saint quillon hospital, 14 Larch Road"
    item = Dataset()
    item.ValueType = "TEXT"
    item.RelationshipType = "CONTAINS"
    item.TextValue = "Findings for Brightwater: no nodule."
    ds.ContentSequence = Sequence([item])
    write(ds, tmp_path / "in" / "a.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file,
                  options=["clean-descriptors", "clean-structured-content"])
    assert summary.ok == 1
    out = pydicom.dcmread(released(tmp_path / "out")[0])
    text = " ".join([out.StudyDescription, out.SeriesDescription, out.ImageComments,
                     out.ContentSequence[0].TextValue]).lower()
    for secret_part in ("brightwater", "eleanor", "qx7781234", "2021-03-04", "555-201-7788",
                        "quillon", "larch road"):
        assert secret_part not in text
    assert out.StudyDescription.startswith("CT CHEST for")
    assert "no nodule" in out.ContentSequence[0].TextValue
    codes = {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113104", "113105"}


# ---- references, dates, determinism -------------------------------------------------------------


def _series(folder: Path, patient: str, study_date: str, study_time: str, n: int, base: int) -> list[str]:
    study = f"{UID_ROOT}{base}"
    uids = []
    for i in range(n):
        sop = f"{UID_ROOT}{base}.1.{i + 1}"
        ds = base_dataset(sop, study, f"{UID_ROOT}{base}.1", patient=patient)
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study_date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = study_time
        write(ds, folder / f"{patient}_{base}_{i}.dcm")
        uids.append(sop)
    return uids


def test_references_stay_intact_across_files(tmp_path, secret_file):
    src = tmp_path / "in"
    ct_uids = _series(src, "PATREF01", "20200101", "101010", 3, 500)
    # an RT Structure Set-like object referencing every CT slice, its frame of reference and study
    rs = base_dataset(f"{UID_ROOT}500.9.1", f"{UID_ROOT}500", f"{UID_ROOT}500.9", patient="PATREF01")
    rs.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    rs.file_meta.MediaStorageSOPClassUID = rs.SOPClassUID
    del rs.PixelData
    contour_images = []
    for u in ct_uids:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = u
        contour_images.append(ref)
    series = Dataset()
    series.SeriesInstanceUID = f"{UID_ROOT}500.1"
    series.ContourImageSequence = Sequence(contour_images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = f"{UID_ROOT}500"
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = f"{UID_ROOT}500.7"
    frame.RTReferencedStudySequence = Sequence([study])
    rs.ReferencedFrameOfReferenceSequence = Sequence([frame])
    write(rs, src / "rs.dcm")

    assert run([src], tmp_path / "out", secret_file=secret_file).ok == 4
    objs = [pydicom.dcmread(p) for p in released(tmp_path / "out")]
    cts = [o for o in objs if o.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"]
    (rs_out,) = [o for o in objs if o.SOPClassUID != "1.2.840.10008.5.1.4.1.1.2"]
    new_ct = {o.SOPInstanceUID for o in cts}
    frame = rs_out.ReferencedFrameOfReferenceSequence[0]
    study = frame.RTReferencedStudySequence[0]
    series = study.RTReferencedSeriesSequence[0]
    assert {r.ReferencedSOPInstanceUID for r in series.ContourImageSequence} == new_ct
    assert series.SeriesInstanceUID == cts[0].SeriesInstanceUID
    assert study.ReferencedSOPInstanceUID == cts[0].StudyInstanceUID == rs_out.StudyInstanceUID
    assert frame.FrameOfReferenceUID == cts[0].FrameOfReferenceUID
    assert study.ReferencedSOPClassUID == "1.2.840.10008.3.1.2.3.1"  # registry UIDs untouched
    for o in objs:
        assert not o.SOPInstanceUID.startswith(UID_ROOT) and o.SOPInstanceUID.startswith("2.25.")
    # the private audit maps every original UID to its pseudonym
    audit = (tmp_path / "out.audit" / "uid_map.csv").read_text().splitlines()
    assert audit[0] == "id_old,id_new"
    pairs = dict(line.split(",") for line in audit[1:])
    assert {pairs[u] for u in ct_uids} == new_ct
    patients = (tmp_path / "out.audit" / "patient_map.csv").read_text().splitlines()
    assert patients == ["id_old,id_new", f"PATREF01,{cts[0].PatientID}"]


def _when(ds: Dataset) -> datetime:
    return datetime.strptime(ds.StudyDate + ds.StudyTime[:6], "%Y%m%d%H%M%S")


def test_date_intervals_preserved_per_patient(tmp_path, secret_file):
    src = tmp_path / "in"
    # patient A: two studies; the second at 23:59:50, so any time shift may cross midnight
    _series(src, "PATDATEA", "20190305", "120000", 1, 600)
    _series(src, "PATDATEA", "20200229", "235950", 1, 601)
    _series(src, "PATDATEB", "20190305", "120000", 1, 602)
    summary = run([src], tmp_path / "out", secret_file=secret_file, options=["retain-long-modified-dates"])
    assert summary.ok == 3
    objs = [pydicom.dcmread(p) for p in released(tmp_path / "out")]
    by_patient: dict[str, list[Dataset]] = {}
    for o in objs:
        by_patient.setdefault(o.PatientID, []).append(o)
    key = Keyring(SECRET)
    a = sorted(by_patient[key.patient_id("id:PATDATEA|")], key=_when)
    (b,) = by_patient[key.patient_id("id:PATDATEB|")]
    original_gap = datetime(2020, 2, 29, 23, 59, 50) - datetime(2019, 3, 5, 12, 0, 0)
    assert _when(a[1]) - _when(a[0]) == original_gap
    days, seconds = key.date_offset("id:PATDATEA|")
    assert _when(a[0]) - datetime(2019, 3, 5, 12) == __import__("datetime").timedelta(days=days, seconds=seconds)
    # the same original moment of another patient moves by another offset
    assert _when(b) != _when(a[0])
    for o in objs:
        assert o.LongitudinalTemporalInformationModified == "MODIFIED"
        assert o.StudyDate == o.SeriesDate == o.ContentDate  # pairs moved together, consistently
        assert "113107" in {i.CodeValue for i in o.DeidentificationMethodCodeSequence}


def test_two_runs_same_secret_identical_release(tmp_path, secret_file):
    src = tmp_path / "in"
    build_canary(src / "c")
    _series(src, "PATSAME", "20110101", "080000", 2, 700)
    run([src], tmp_path / "r1", secret_file=secret_file)
    run([src], tmp_path / "r2", secret_file=secret_file, workers=2)
    first = tree_digest(tmp_path / "r1")
    assert first and first == tree_digest(tmp_path / "r2")
    other = tmp_path / "other.key"
    other.write_bytes(b"another-secret-0123456789")
    run([src], tmp_path / "r3", secret_file=other)
    third = tree_digest(tmp_path / "r3")
    assert set(third) != set(first)


# ---- private attributes -------------------------------------------------------------------------


def _private_object(folder: Path, block: int, extra: list[DataElement] = ()) -> Path:
    ds = base_dataset(f"{UID_ROOT}80{block}", f"{UID_ROOT}81", f"{UID_ROOT}82", patient="PATPRIV")
    g = 0x0019
    ds.add(DataElement((g << 16) | block, "LO", "SIEMENS MR HEADER"))
    ds.add(DataElement((g << 16) | (block << 8) | 0x0C, "IS", "1000"))  # B Value: safe in E.3.10
    ds.add(DataElement((g << 16) | (block << 8) | 0x0D, "CS", "DIRECTIONAL"))  # safe
    ds.add(DataElement((g << 16) | (block << 8) | 0x55, "LO", "PRIVLEAKY"))  # not listed
    for e in extra:
        ds.add(e)
    return write(ds, folder / f"p{block}.dcm")


@pytest.mark.parametrize("block", [0x10, 0x42])
def test_retain_safe_private_matches_creator_not_element_number(tmp_path, secret_file, block):
    _private_object(tmp_path / "in", block)
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["retain-safe-private"])
    ds = pydicom.dcmread(released(tmp_path / "out")[0])
    kept = {(e.tag.element & 0xFF): e.value for e in ds if e.tag.group == 0x0019 and e.tag.element >= 0x1000}
    assert kept == {0x0C: "1000", 0x0D: "DIRECTIONAL"}
    assert ds[(0x0019, block)].value == "SIEMENS MR HEADER"
    assert b"PRIVLEAKY" not in released(tmp_path / "out")[0].read_bytes()
    assert "113111" in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}


def test_private_removed_by_default(tmp_path, secret_file):
    _private_object(tmp_path / "in", 0x10)
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    ds = pydicom.dcmread(released(tmp_path / "out")[0])
    assert not [e for e in ds.iterall() if e.tag.group & 1]


def _characteristics(status: str, offsets: list[int] | None = None) -> DataElement:
    item = Dataset()
    item.PrivateGroupReference = 0x0019
    item.PrivateCreatorReference = "SIEMENS MR HEADER"
    item.BlockIdentifyingInformationStatus = status
    if offsets is not None:
        item.NonidentifyingPrivateElements = offsets
    return DataElement(0x00080300, "SQ", Sequence([item]))


def test_private_characteristics_unsafe_block_is_removed(tmp_path, secret_file):
    _private_object(tmp_path / "in", 0x10, [_characteristics("UNSAFE")])
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["retain-safe-private"])
    ds = pydicom.dcmread(released(tmp_path / "out")[0])
    assert not [e for e in ds if e.tag.group == 0x0019]


def test_private_characteristics_mixed_block_keeps_declared_offsets(tmp_path, secret_file):
    _private_object(tmp_path / "in", 0x10, [_characteristics("MIXED", [0x55])])
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["retain-safe-private"])
    ds = pydicom.dcmread(released(tmp_path / "out")[0])
    kept = {e.tag.element & 0xFF for e in ds if e.tag.group == 0x0019 and e.tag.element >= 0x1000}
    assert kept == {0x0C, 0x0D, 0x55}


# ---- fail closed ---------------------------------------------------------------------------------


def test_bad_objects_are_quarantined_and_the_batch_goes_on(tmp_path, secret_file):
    src = tmp_path / "in"
    good = _series(src, "PATGOOD", "20150101", "090000", 1, 900)
    (src / "notes.txt").write_text("not an image")
    truncated = (src / "PATGOOD_900_0.dcm").read_bytes()
    (src / "trunc.dcm").write_bytes(truncated[: len(truncated) - 1000])
    burned = base_dataset(f"{UID_ROOT}901", f"{UID_ROOT}902", f"{UID_ROOT}903")
    burned.BurnedInAnnotation = "YES"
    write(burned, src / "burned.dcm")
    short = base_dataset(f"{UID_ROOT}904", f"{UID_ROOT}905", f"{UID_ROOT}906")
    short.Rows = 512  # the pixel data no longer matches its attributes
    write(short, src / "short.dcm")
    summary = run([src], tmp_path / "out", secret_file=secret_file)
    rows = {Path(r["input"]).name: r for r in manifest(tmp_path / "out")}
    assert summary.ok == 1 and summary.quarantined == 4 and summary.exit_status == 1
    assert rows["PATGOOD_900_0.dcm"]["status"] == "ok"
    for name in ("notes.txt", "trunc.dcm", "burned.dcm", "short.dcm"):
        assert rows[name]["status"] == "quarantined" and rows[name]["reason"] and rows[name]["outputs"] == []
    assert len(released(tmp_path / "out")) == 1 and good


def test_leak_in_a_kept_attribute_quarantines(tmp_path, secret_file):
    """A site override keeps a descriptor that carries the patient's name: the byte scan of the
    written object must catch it and keep the object out of the release."""
    ds = base_dataset(f"{UID_ROOT}950", f"{UID_ROOT}951", f"{UID_ROOT}952", patient="PATLEAK")
    ds.PatientName = "Quennell^Harriet"
    ds.StudyDescription = "HEAD CT QUENNELL"
    write(ds, tmp_path / "in" / "leak.dcm")
    profile = tmp_path / "site.toml"
    profile.write_text('[attributes]\nStudyDescription = "keep"\n')
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, profile=profile)
    assert summary.quarantined == 1 and released(tmp_path / "out") == []
    (row,) = manifest(tmp_path / "out")
    assert "PatientName" in row["reason"] and "QUENNELL" not in row["reason"].upper()


def test_site_override_replace_and_keep(tmp_path, secret_file):
    ds = base_dataset(f"{UID_ROOT}960", f"{UID_ROOT}961", f"{UID_ROOT}962", patient="PATSITE")
    ds.StudyDescription = "KNEE MRI"
    ds.InstitutionName = "Somewhere General"
    write(ds, tmp_path / "in" / "s.dcm")
    profile = tmp_path / "site.toml"
    profile.write_text(
        '[attributes]\nStudyDescription = "keep"\nInstitutionName = { replace = "CONSORTIUM SITE 3" }\n'
    )
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, profile=profile)
    out = pydicom.dcmread(released(tmp_path / "out")[0])
    assert out.StudyDescription == "KNEE MRI"
    assert out.InstitutionName == "CONSORTIUM SITE 3"
    doc = json.loads((tmp_path / "out" / "DEIDENTIFICATION.json").read_text())
    assert doc["site_overrides_sha256"] == hashlib.sha256(profile.read_bytes()).hexdigest()
    # verify rebuilds the same profile from the release's document: the kept attribute is no finding
    from medcloak.verify import verify_release

    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []


def test_readme_demo_on_data_samples(tmp_path):
    """The README's first command, on the shipped samples: everything released, nothing planted
    by make_samples.py survives, and the release verifies."""
    from medcloak.cli import main

    samples = Path(__file__).resolve().parents[1] / "data_samples"
    out = tmp_path / "release"
    code = main(["run", str(samples / "dicom"), str(samples / "wsi"), str(samples / "bids"), "--out", str(out),
                 "--option", "retain-long-modified-dates", "--option", "retain-safe-private", "--report"])
    assert code == 0  # the review report complete too
    page = (tmp_path / "release.audit" / "report" / "index.html").read_text(encoding="utf-8").lower()
    bids_files = [p for p in (samples / "bids").rglob("*") if p.is_file()]
    (dataset,) = (out / "bids").iterdir()
    assert len([p for p in dataset.rglob("*") if p.is_file()]) == len(bids_files)
    assert not [p for p in dataset.rglob("*") if "NF00" in p.name]
    wsi_dicom = [p for p in (samples / "wsi").rglob("*.dcm") if p.name != "2.dcm"]  # 2.dcm: the label, skipped
    assert len(released(out)) == 6 + len(wsi_dicom)
    assert len(list((out / "slides").iterdir())) == len([p for p in (samples / "wsi").iterdir() if p.is_file()])
    out_dicom = [p for p in released(out) if pydicom.dcmread(p, stop_before_pixels=True).Modality in ("CT", "MR", "RTSTRUCT", "SR")]
    assert len(out_dicom) == 6
    blob, names = all_bytes_and_names(out)
    for planted in ("sinclair", "maud", "elspeth", "nf00482913", "achterberg", "joost", "nf00777120",
                    "19470322", "19820611", "orchard lane", "1632 960 471", "northfield", "okafor",
                    "lindqvist", "nfg-ct-02", "1.2.826.0.1.3680043.10.1024", "20230917"):
        assert planted not in names
        assert planted.encode() not in blob, planted
        assert planted not in page, planted  # the report shows what stayed: none of it
    assert main(["verify", str(out), "--audit", str(tmp_path / "release.audit")]) == 0
    objs = [pydicom.dcmread(p) for p in out_dicom]
    cts = [o for o in objs if o.Modality == "CT"]
    assert len({o.PatientID for o in cts}) == 1 and len(cts) == 3
    # the safe private block survives in both of its positions
    assert sorted((o[0x0019, 0x0010].value if (0x0019, 0x0010) in o else o[0x0019, 0x0043].value) for o in cts) == ["GEMS_ACQU_01"] * 3
    (rs,) = [o for o in objs if o.Modality == "RTSTRUCT"]
    refs = {r.ReferencedSOPInstanceUID for r in rs.ReferencedFrameOfReferenceSequence[0]
            .RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].ContourImageSequence}
    assert refs == {o.SOPInstanceUID for o in cts}


@pytest.mark.parametrize("options, expect", [
    (["retain-long-modified-dates"], "shifted"),
    (["retain-long-full-dates"], "kept"),
    ([], "dummy"),
])
def test_kept_private_dates_and_uids_follow_the_rules(tmp_path, secret_file, options, expect):
    ds = base_dataset(f"{UID_ROOT}970", f"{UID_ROOT}971", f"{UID_ROOT}972", patient="PATPRIVDATE")
    ds.add(DataElement(0x00410010, "LO", "SITE PRIVATE 1"))
    ds.add(DataElement(0x00411001, "DA", "20180704"))
    ds.add(DataElement(0x00411002, "UI", f"{UID_ROOT}972"))
    write(ds, tmp_path / "in" / "d.dcm")
    profile = tmp_path / "site.toml"
    profile.write_text('[[private.keep]]\ncreator = "SITE PRIVATE 1"\ngroup = "0041"\n')
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, profile=profile, options=options)
    out = pydicom.dcmread(released(tmp_path / "out")[0])
    value = out[0x00411001].value
    days, _ = Keyring(SECRET).date_offset("id:PATPRIVDATE|")
    shifted = (datetime(2018, 7, 4) + __import__("datetime").timedelta(days=days)).strftime("%Y%m%d")
    assert value == {"shifted": shifted, "kept": "20180704", "dummy": "19000101"}[expect]
    # a kept private UID is the same pseudonym as the standard attribute that held it
    assert out[0x00411002].value == out.SeriesInstanceUID != f"{UID_ROOT}972"


@pytest.mark.parametrize("implicit", [False, True])
def test_clean_graphics_quarantines_overlay_bitplanes(tmp_path, secret_file, implicit):
    from pydicom.uid import ImplicitVRLittleEndian

    ds = base_dataset(f"{UID_ROOT}980", f"{UID_ROOT}981", f"{UID_ROOT}982", patient="PATOVL")
    ds.add(DataElement(0x60000010, "US", 8))
    ds.add(DataElement(0x60000011, "US", 16))
    ds.add(DataElement(0x60000100, "US", 1))
    ds.add(DataElement(0x60003000, "OW", b"\x01" * 16))
    ds.add(DataElement(0x60004000, "LT", "Overlay by Quennell"))
    if implicit:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    write(ds, tmp_path / "in" / "o.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-graphics"])
    assert summary.quarantined == 1 and released(tmp_path / "out") == []
    # without the option the overlay goes and the object is released
    summary = run([tmp_path / "in"], tmp_path / "out2", secret_file=secret_file)
    out = pydicom.dcmread(released(tmp_path / "out2")[0])
    assert summary.ok == 1 and 0x60003000 not in out and 0x60004000 not in out


def test_same_process_runs_into_a_recreated_release_folder(tmp_path, secret_file):
    import shutil

    _series(tmp_path / "in", "PATAGAIN", "20100101", "080000", 2, 990)
    first = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    shutil.rmtree(tmp_path / "out")
    second = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert first.ok == second.ok == 2 and second.quarantined == 0
    assert not [p for p in (tmp_path / "out").rglob("*.part")]
