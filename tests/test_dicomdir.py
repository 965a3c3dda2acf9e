"""``run --dicomdir``: ISO 9660 names and a DICOMDIR for the release, on real files (pydicom's
test files and data_samples/dicom), read by pydicom's FileSet and checked by dciodvfy."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from conftest import pydicom_test_files
from pydicom.fileset import FileSet

from medcloak.dicomdir import DUMMIES, ISO_NAME, close, iso_relpath, rename
from medcloak.engine import run
from medcloak.errors import UsageError
from medcloak.handlers.base import Released
from medcloak.rules.actions import PLACEHOLDERS
from medcloak.verify import verify_release

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples" / "dicom"
DOCS = {"DEIDENTIFICATION.json", "DEIDENTIFICATION.txt"}
COMPONENT = re.compile(r"^[A-Z0-9_]{1,8}$")


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def inputs() -> list[Path]:
    return [SAMPLES, pydicom_test_files()]


def release(tmp: Path, secret: Path, name: str, **kw) -> tuple[Path, object]:
    out = tmp / name
    summary = run(inputs(), out, secret_file=secret, dicomdir=True, **kw)
    return out, summary


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path, object]:
    tmp = tmp_path_factory.mktemp("dicomdir")
    secret = tmp / "secret.key"
    secret.write_bytes(b"dicomdir-secret-0123456789abcdef")
    os.chmod(secret, 0o600)
    out, summary = release(tmp, secret, "rel")
    return out, secret, summary


def dicom_files(out: Path) -> set[str]:
    return {rel for rel in tree(out) if rel not in DOCS and rel != "DICOMDIR"}


def test_every_released_name_is_iso_9660(made):
    out, _, summary = made
    names = dicom_files(out)
    lines = [json.loads(x) for x in (out.parent / "rel.audit" / "manifest.jsonl").read_text().splitlines()]
    outputs = {rel for e in lines if e["status"] == "ok" for rel in e["outputs"]}
    assert summary.ok >= 40 and names == outputs  # the corpus releases DICOM only
    # pydicom's test files hold copies of one instance with other content: said as such under short names too
    assert any("duplicate SOP Instance UID" in (e.get("reason") or "") for e in lines)
    for rel in names:
        parts = rel.split("/")
        assert ISO_NAME.match(rel) and len(parts) <= 8 and all(COMPONENT.match(p) for p in parts), rel
        assert pydicom.dcmread(out / rel, stop_before_pixels=True).SOPInstanceUID
    assert not any(p.suffix for p in out.rglob("*") if p.name not in DOCS)


def test_pydicom_fileset_finds_every_released_instance(made):
    out, _, summary = made
    fs = FileSet(out / "DICOMDIR")
    found = {Path(i.path).relative_to(out).as_posix(): i.SOPInstanceUID for i in fs}
    close(fs)
    # every released object, structured reports, RT, waveforms and segmentations included
    assert set(found) == dicom_files(out)
    for rel in dicom_files(out):
        assert found[rel] == pydicom.dcmread(out / rel, stop_before_pixels=True).SOPInstanceUID
    assert "dicomdir-left-out" not in summary.notable
    assert len(found) >= 40
    # patient records carry the pseudonymous ID only; nothing that the released files do not hold
    for record in pydicom.dcmread(out / "DICOMDIR").DirectoryRecordSequence:
        if record.DirectoryRecordType == "PATIENT":
            assert str(record.PatientID).startswith("MC")
            assert str(record.get("PatientName", "")) in ("", str(record.PatientID))


def test_nothing_identifying_in_the_dicomdir(made):
    """data_samples/dicom's folders are named after its (fictional) patients and their IDs, which
    its files carry too; pydicom's test files carry real-looking names (CompressedSamples^CT1...)."""
    out, _, _ = made
    data = (out / "DICOMDIR").read_bytes().lower()
    planted = [p.name for p in SAMPLES.iterdir()] + [w for p in SAMPLES.iterdir() for w in p.name.split("_")]
    for folder in inputs():
        for path in folder.rglob("*.dcm"):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientName", "PatientID"])
            except Exception:  # noqa: BLE001, S112 - pydicom's broken samples
                continue
            planted += [str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))]
    planted += [str(SAMPLES), str(pydicom_test_files()), "test_files", "data_samples"]
    for value in {v for v in planted if len(v) >= 5 and v.lower() not in PLACEHOLDERS}:  # ("anonymized")
        assert value.lower().encode("utf-8", "replace") not in data, value


def test_dciodvfy_accepts_the_dicomdir(made, dciodvfy):
    if dciodvfy is None:
        pytest.skip("dciodvfy is not installed")
    out, _, _ = made
    res = subprocess.run([dciodvfy, str(out / "DICOMDIR")], capture_output=True, text=True, timeout=120, check=False)
    text = res.stdout + res.stderr
    assert "BasicDirectory" in text
    assert [line for line in text.splitlines() if line.startswith("Error")] == []


def test_names_and_dicomdir_are_deterministic(made, tmp_path):
    out, secret, _ = made
    again, _ = release(tmp_path, secret, "again")
    assert tree(again) == tree(out)  # the DICOMDIR's bytes included


def test_verify_accepts_and_catches_tampering(made, tmp_path):
    out, _, _ = made
    assert [f for f in verify_release(out, out.parent / "rel.audit") if f.level == "error"] == []
    # a record that names someone
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    ds = pydicom.dcmread(bad / "DICOMDIR")
    for record in ds.DirectoryRecordSequence:
        if record.DirectoryRecordType == "PATIENT":
            record.PatientName = "DOE^JOHN"
            break
    ds.save_as(bad / "DICOMDIR")
    errors = [f.message for f in verify_release(bad) if f.level == "error"]
    assert any("PatientName of a PATIENT record" in m for m in errors), errors
    # a referenced file gone
    gone = tmp_path / "gone"
    shutil.copytree(out, gone)
    fs = FileSet(gone / "DICOMDIR")
    Path(next(iter(fs)).path).unlink()
    close(fs)
    errors = [f.message for f in verify_release(gone) if f.level == "error"]
    assert any("names no released file" in m for m in errors), errors
    # a record pointing to another instance's file
    swap = tmp_path / "swap"
    shutil.copytree(out, swap)
    ds = pydicom.dcmread(swap / "DICOMDIR")
    images = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    images[0].ReferencedFileID, images[1].ReferencedFileID = images[1].ReferencedFileID, images[0].ReferencedFileID
    ds.save_as(swap / "DICOMDIR")
    errors = [f.message for f in verify_release(swap) if f.level == "error"]
    assert any("ReferencedSOPInstanceUIDInFile differs" in m for m in errors), errors
    # the DICOMDIR gone
    (swap / "DICOMDIR").unlink()
    errors = [f.message for f in verify_release(swap) if f.level == "error"]
    assert any("has no DICOMDIR" in m for m in errors), errors


def test_resume_writes_the_same_dicomdir(made, tmp_path):
    out, secret, _ = made
    part = tmp_path / "part"
    run(inputs(), part, secret_file=secret, dicomdir=True)
    manifest = tmp_path / "part.audit" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # as if stopped halfway
    (part / "DICOMDIR").unlink()
    run(inputs(), part, secret_file=secret, dicomdir=True, resume=True)
    assert tree(part) == tree(out)
    with pytest.raises(UsageError, match="--dicomdir"):
        run(inputs(), part, secret_file=secret, resume=True)


def test_without_the_option_the_release_is_todays(tmp_path):
    """The release of /work/main's code (the code before this option) and of this one, byte for byte."""
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"dicomdir-secret-0123456789abcdef")
    os.chmod(secret, 0o600)
    run([SAMPLES], tmp_path / "now", secret_file=secret)
    main = Path("/work/main/src")
    if not (main / "medcloak").is_dir():
        pytest.skip("no reference checkout of the code before --dicomdir")
    env = {**os.environ, "PYTHONPATH": f"{main}:{main.parent / 'kernels'}"}
    code = ("import sys; from medcloak.engine import run; "
            "run([sys.argv[1]], sys.argv[2], secret_file=sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, str(SAMPLES), str(tmp_path / "before"), str(secret)],
                   env=env, check=True, timeout=300)
    assert tree(tmp_path / "now") == tree(tmp_path / "before")
    assert all(rel.endswith(".dcm") or rel in DOCS for rel in tree(tmp_path / "now"))
    assert "dicomdir" not in json.loads((tmp_path / "now.audit" / "run.json").read_text())


def test_iso_names_do_not_collide_and_other_names_stay():
    """80 bits of the long name per file: 200 000 instances of one series, and as many patients,
    give as many distinct names (the bound is n^2 / 2^81)."""
    rnd = random.Random(17)
    longs = {f"MC{rnd.getrandbits(70):014X}/{rnd.getrandbits(80):016x}/s/{i:016x}.dcm" for i in range(200_000)}
    same_series = {f"MCAAAAAAAAAAAAAA/study/series/{i:016x}.dcm" for i in range(200_000)}
    for names in (longs, same_series):
        shorts = {iso_relpath(n) for n in names}
        assert len(shorts) == len(names)
        assert all(ISO_NAME.match(s) for s in list(shorts)[:1000])
    assert iso_relpath("MCAB/x/y/z.dcm") == iso_relpath("MCAB/x/y/z.dcm")
    for other in ("volumes/abcdef.nii.gz", "photos/abc.jpg", "slides/abc.svs", "bids/sub-x/anat/x.nii.gz"):
        assert iso_relpath(other) == other
        assert rename(Released(b"", other)).relpath == other
    # the dummies say nothing: the least date and time, number 0, modality OT, no label
    assert {"StudyDate", "StudyTime", "StudyID", "SeriesNumber", "InstanceNumber", "Modality"} <= set(DUMMIES)
    assert set(DUMMIES.values()) == {"19000101", "000000", "19000101000000", "0", "OT", "UNLABELED"}


def test_other_formats_keep_their_names_and_stay_out(tmp_path):
    """data_samples/bids (NIfTI, JSON, TSV) beside DICOM: the same files, names and bytes with the
    option and without, none of them in the DICOMDIR."""
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"dicomdir-secret-0123456789abcdef")
    os.chmod(secret, 0o600)
    ins = [SAMPLES, ROOT / "data_samples" / "bids"]
    run(ins, tmp_path / "plain", secret_file=secret)
    run(ins, tmp_path / "media", secret_file=secret, dicomdir=True)
    plain, media = tree(tmp_path / "plain"), tree(tmp_path / "media")
    others = {rel: d for rel, d in plain.items() if not rel.endswith(".dcm") and rel not in DOCS}
    assert others and all(rel.startswith("bids/") for rel in others)
    assert {rel: d for rel, d in media.items() if rel.startswith("bids/")} == others
    fs = FileSet(tmp_path / "media" / "DICOMDIR")
    refs = {Path(i.path).relative_to(tmp_path / "media").as_posix() for i in fs}
    close(fs)
    assert refs and all(ISO_NAME.match(rel) for rel in refs)
    assert len([rel for rel in plain if rel.endswith(".dcm")]) == len([rel for rel in media if ISO_NAME.match(rel)])


# --- structured reports, key object selections and objects without a Patient ID ---------------
#: SR classes built from pydicom's test-SR.dcm (a Comprehensive SR) by changing its class: Basic
#: Text, Enhanced, Comprehensive, Comprehensive 3D, X-Ray Radiation Dose and Enhanced X-Ray
#: Radiation Dose SR (the last one pydicom's FileSet does not know: it would make an IMAGE record)
SR_CLASSES = ("1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.88.33",
              "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.76")
KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
PLANTED = ("DIRPLANTFAMILY", "DIRPLANTGIVEN", "DIRPLANTPID77", "DIRPLANTOBSERVER", "DIRPLANTTEXT",
           "DIRPLANTMODIFIER", "DIRPLANTSTUDYID", "DIRPLANTACCESS", "DIRPLANTVERIFIER", "DIRPLANTORG")
SR_KEYS = {"InstanceNumber", "CompletionFlag", "VerificationFlag", "ContentDate", "ContentTime",
           "ConceptNameCodeSequence"}


def _code(value: str, scheme: str, meaning: str):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _item(relationship: str, value_type: str, name, **values):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RelationshipType, item.ValueType = relationship, value_type
    item.ConceptNameCodeSequence = [name]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def build_documents(folder: Path) -> dict[str, str]:
    """SR and KOS objects and images with identifiers planted in the patient, study and the
    documents' content tree (a TEXT item, a person name, a TEXT concept modifier of the root), and
    an image and an SR with no Patient ID (nor name, Study ID, Series and Instance Numbers).
    Returns {file name: SOP Class UID}."""
    from pydicom.uid import generate_uid

    made: dict[str, str] = {}
    study = generate_uid(prefix="1.2.826.0.1.3680043.10.998.")
    for n, sop_class in enumerate((*SR_CLASSES, KOS_CLASS)):
        ds = pydicom.dcmread(pydicom_test_files() / "test-SR.dcm")
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.PatientName, ds.PatientID = "DIRPLANTFAMILY^DIRPLANTGIVEN", "DIRPLANTPID77"
        ds.StudyID, ds.AccessionNumber = "DIRPLANTSTUDYID", "DIRPLANTACCESS"
        ds.VerificationFlag = "VERIFIED"
        observer = pydicom.Dataset()
        observer.VerifyingObserverName = "DIRPLANTVERIFIER"
        observer.VerifyingOrganization = "DIRPLANTORG"
        observer.VerificationDateTime = "20240102030405"
        observer.VerifyingObserverIdentificationCodeSequence = []
        ds.VerifyingObserverSequence = [observer]
        language = _code("en", "RFC5646", "English")
        ds.ContentSequence = [
            _item("HAS CONCEPT MOD", "CODE", _code("121049", "DCM", "Language of Content Item and Descendants"),
                  ConceptCodeSequence=[language]),
            _item("HAS CONCEPT MOD", "TEXT", _code("113012", "DCM", "Key Object Description"),
                  TextValue="DIRPLANTMODIFIER"),
            _item("HAS OBS CONTEXT", "PNAME", _code("121008", "DCM", "Person Observer Name"),
                  PersonName="DIRPLANTOBSERVER"),
            _item("CONTAINS", "TEXT", _code("121106", "DCM", "Comment"), TextValue="DIRPLANTTEXT"),
        ]
        if sop_class == KOS_CLASS:
            ds.Modality = "KO"
            ds.ConceptNameCodeSequence = [_code("113000", "DCM", "Of Interest")]
            del ds.CompletionFlag, ds.VerificationFlag, ds.VerifyingObserverSequence
        name = f"doc{n}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        made[name] = sop_class
    # an SR and an image with no Patient ID, name, Study ID, Series or Instance Number
    for name, source in (("nopid_sr.dcm", "reportsi.dcm"), ("nopid_ct.dcm", "CT_small.dcm")):
        ds = pydicom.dcmread(pydicom_test_files() / source)
        for keyword in ("PatientID", "PatientName", "StudyID", "SeriesNumber", "InstanceNumber", "StudyDate"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.save_as(folder / name, enforce_file_format=True)
        made[name] = str(ds.SOPClassUID)
    return made


def resave(ds, path: Path) -> None:
    """Write a DICOMDIR whose records were changed in memory, with its offsets made anew."""
    from pydicom.filebase import DicomFileLike

    fs = FileSet(ds)
    with open(path, "wb") as fh:
        fs._write_dicomdir(DicomFileLike(fh))
    close(fs)


def test_every_document_and_object_without_patient_id_is_indexed(tmp_path, dciodvfy):
    """SR and KOS objects get SR DOCUMENT and KEY OBJECT DOC records with the keys of PS3.3 F.5
    (no content tree), objects without a Patient ID the release's keyed pseudonym; every
    released object is indexed, dciodvfy and verify accept the DICOMDIR, and nothing planted in
    the inputs occurs in it."""
    inputs_ = tmp_path / "in"
    inputs_.mkdir()
    made = build_documents(inputs_)
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"dicomdir-secret-0123456789abcdef")
    os.chmod(secret, 0o600)
    out = tmp_path / "rel"
    summary = run([inputs_], out, secret_file=secret, dicomdir=True)
    assert summary.ok == len(made) and "dicomdir-left-out" not in summary.notable
    ds = pydicom.dcmread(out / "DICOMDIR")
    records = list(ds.DirectoryRecordSequence)
    refs = {"/".join(r.ReferencedFileID) for r in records if "ReferencedFileID" in r}
    assert refs == dicom_files(out)
    kinds = sorted(str(r.DirectoryRecordType) for r in records if "ReferencedFileID" in r)
    assert kinds == ["IMAGE", "KEY OBJECT DOC"] + ["SR DOCUMENT"] * (len(SR_CLASSES) + 1)
    language = None
    for record in records:
        keys = {e.keyword for e in record if e.tag.group != 0x0004 and e.keyword != "SpecificCharacterSet"}
        if record.DirectoryRecordType == "SR DOCUMENT":
            verified = record.VerificationFlag == "VERIFIED"
            assert keys - {"ContentSequence"} == SR_KEYS | ({"VerificationDateTime"} if verified else set())
            if verified:  # the latest of the Verifying Observer Sequence's, shifted as the release's
                head = pydicom.dcmread(out / "/".join(record.ReferencedFileID), stop_before_pixels=True)
                assert record.VerificationDateTime == head.VerifyingObserverSequence[0].VerificationDateTime
                language = record.ContentSequence
        if record.DirectoryRecordType == "KEY OBJECT DOC":
            assert keys == {"InstanceNumber", "ContentDate", "ContentTime", "ConceptNameCodeSequence",
                            "ContentSequence"}
            assert record.ConceptNameCodeSequence[0].CodeValue == "113000"
    # the root's coded concept modifier only (the language), never the TEXT one or the tree
    assert language is not None and len(language) == 1 and language[0].ConceptCodeSequence[0].CodeValue == "en"
    assert {e.keyword for e in language[0]} == {"RelationshipType", "ValueType", "ConceptNameCodeSequence",
                                                "ConceptCodeSequence"}
    # objects without a Patient ID: the keyed pseudonym the manifest records, which names them
    manifest = [json.loads(x) for x in (tmp_path / "rel.audit" / "manifest.jsonl").read_text().splitlines()]
    pseudonyms = {e["outputs"][0]: e["patient"][1] for e in manifest}
    patients = {r.PatientID for r in records if r.DirectoryRecordType == "PATIENT"}
    for rel, pseudonym in pseudonyms.items():
        head = pydicom.dcmread(out / rel, stop_before_pixels=True)
        assert head.get("PatientID", pseudonym) == pseudonym and pseudonym in patients
    assert len(patients) == 3 and all(re.fullmatch(r"MC[A-Z2-7]{14}", p) for p in patients)
    data = (out / "DICOMDIR").read_bytes()
    for planted in PLANTED:
        assert planted.encode() not in data, planted
    assert [f for f in verify_release(out, tmp_path / "rel.audit") if f.level in ("error", "warning")] == []
    if dciodvfy is not None:
        res = subprocess.run([dciodvfy, str(out / "DICOMDIR")], capture_output=True, text=True, timeout=120,
                             check=False)
        assert [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")] == []
    # the same secret gives the same pseudonyms and the same DICOMDIR
    run([inputs_], tmp_path / "again", secret_file=secret, dicomdir=True)
    assert (tmp_path / "again" / "DICOMDIR").read_bytes() == data
    # verify catches an SR record that carries the content tree, or a key of no record
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    ds = pydicom.dcmread(tampered / "DICOMDIR")
    for record in ds.DirectoryRecordSequence:
        if record.DirectoryRecordType == "SR DOCUMENT":
            head = pydicom.dcmread(tampered / "/".join(record.ReferencedFileID), stop_before_pixels=True)
            record.ContentSequence = head.ContentSequence
        if record.DirectoryRecordType == "KEY OBJECT DOC":
            record.DocumentTitle = "X"
    resave(ds, tampered / "DICOMDIR")
    errors = [f.message for f in verify_release(tampered) if f.level == "error"]
    assert any("ContentSequence of a SR DOCUMENT record" in m for m in errors), errors
    assert any("DocumentTitle is no key of a KEY OBJECT DOC record" in m for m in errors), errors


def test_what_cannot_be_indexed_says_why():
    """A Type 1 key no dummy can stand for (an SR's Completion Flag, its title's code) and a
    one-level class (a color palette) are left out, with the reason; a missing date, number or
    Patient ID are not."""
    from medcloak.dicomdir import records_of

    ds = pydicom.dcmread(pydicom_test_files() / "reportsi.dcm", stop_before_pixels=True)
    for keyword in ("PatientID", "StudyDate", "StudyID", "ContentDate", "InstanceNumber", "SeriesNumber"):
        delattr(ds, keyword)
    records = records_of(ds, "MCAAAAAAAAAAAAAA")
    assert [str(r.DirectoryRecordType) for r in records] == ["PATIENT", "STUDY", "SERIES", "SR DOCUMENT"]
    assert records[0].PatientID == "MCAAAAAAAAAAAAAA" and records[1].StudyDate == DUMMIES["StudyDate"]
    with pytest.raises(ValueError, match="PatientID"):
        records_of(ds, "")  # no pseudonym: no Patient ID to give
    with pytest.raises(ValueError, match="PatientID"):
        records_of(ds, "DOE^JOHN")  # only a value of the pseudonym's shape
    del ds.CompletionFlag
    with pytest.raises(ValueError, match="CompletionFlag"):
        records_of(ds, "MCAAAAAAAAAAAAAA")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.39.1"  # Color Palette Storage
    with pytest.raises(ValueError, match="one-level"):
        records_of(ds, "MCAAAAAAAAAAAAAA")


def _general(sop_class: str, modality: str):
    """A data set of the general modules (patient, study, series, equipment, SOP common) for the
    IOD ``sop_class``, with identifiers planted; the caller adds the IOD's own Type 1 keys."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "IODPLANTF^IODPLANTG", "IODPLANTPID", "", "F"
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20240131", "101500", ""
    ds.StudyID, ds.AccessionNumber = "IODPLANTSTUDY", "IODPLANTACC"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = modality, 1, 1, ""
    ds.ContentDate, ds.ContentTime = "20240131", "101500"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return ds


def build_other_iods(folder: Path) -> None:
    """Encapsulated PDF and STL (from test_documents' builder), a grayscale presentation state, raw
    data, a spatial registration, an RT structure set and an RT treatment record, each with its
    IOD's Type 1 keys of its directory record (PS3.3 A, F.5) and identifiers planted."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid
    from test_documents import encapsulated

    for mime in ("application/pdf", "model/stl"):
        encapsulated(folder, mime, name="IODPLANTDOC Person")
    ds = _general("1.2.840.10008.5.1.4.1.1.11.1", "PR")
    ds.PresentationCreationDate, ds.PresentationCreationTime = "20240131", "101500"
    # (Content Description is kept by the Basic Profile: the patient's name in it is what the run takes out)
    ds.ContentLabel, ds.ContentDescription, ds.ContentCreatorName = "LABEL", "for IODPLANTF IODPLANTG", "IODPLANTC^X"
    image = Dataset()
    image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", generate_uid()
    series = Dataset()
    series.SeriesInstanceUID, series.ReferencedImageSequence = generate_uid(), [image]
    ds.ReferencedSeriesSequence = [series]
    ds.save_as(folder / "pr.dcm", enforce_file_format=True)
    _general("1.2.840.10008.5.1.4.1.1.66", "OT").save_as(folder / "raw.dcm", enforce_file_format=True)
    ds = _general("1.2.840.10008.5.1.4.1.1.66.1", "REG")
    ds.ContentLabel, ds.ContentDescription, ds.ContentCreatorName = "REG", "", ""
    ds.save_as(folder / "reg.dcm", enforce_file_format=True)
    ds = _general("1.2.840.10008.5.1.4.1.1.481.3", "RTSTRUCT")
    ds.StructureSetLabel, ds.StructureSetDate, ds.StructureSetTime = "IODPLANTSET", "20240131", "101500"
    ds.save_as(folder / "rts.dcm", enforce_file_format=True)
    ds = _general("1.2.840.10008.5.1.4.1.1.481.4", "RTRECORD")
    ds.TreatmentDate, ds.TreatmentTime = "20240131", "101500"
    ds.save_as(folder / "rtr.dcm", enforce_file_format=True)


def test_other_iods_get_their_records(tmp_path, dciodvfy):
    """ENCAP DOC, PRESENTATION, RAW DATA, REGISTRATION, RT STRUCTURE SET and RT TREAT RECORD
    records, every released object indexed, dciodvfy and verify accepting the DICOMDIR, nothing
    planted in it (RT dose, RT plan, waveform and segmentation: pydicom's test files, above)."""
    inputs_ = tmp_path / "in"
    inputs_.mkdir()
    build_other_iods(inputs_)
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"dicomdir-secret-0123456789abcdef")
    os.chmod(secret, 0o600)
    out = tmp_path / "rel"
    summary = run([inputs_], out, secret_file=secret, dicomdir=True)
    assert summary.ok == 7 and "dicomdir-left-out" not in summary.notable
    records = list(pydicom.dcmread(out / "DICOMDIR").DirectoryRecordSequence)
    leaves = {"/".join(r.ReferencedFileID): str(r.DirectoryRecordType) for r in records if "ReferencedFileID" in r}
    assert set(leaves) == dicom_files(out)
    assert sorted(leaves.values()) == ["ENCAP DOC", "ENCAP DOC", "PRESENTATION", "RAW DATA", "REGISTRATION",
                                       "RT STRUCTURE SET", "RT TREAT RECORD"]
    assert b"IODPLANT" not in (out / "DICOMDIR").read_bytes()
    assert [f for f in verify_release(out, tmp_path / "rel.audit") if f.level in ("error", "warning")] == []
    if dciodvfy is not None:
        res = subprocess.run([dciodvfy, str(out / "DICOMDIR")], capture_output=True, text=True, timeout=120,
                             check=False)
        assert [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")] == []
