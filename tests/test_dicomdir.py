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
    left_out = set()
    for rel in dicom_files(out):
        ds = pydicom.dcmread(out / rel, stop_before_pixels=True)
        if rel in found:
            assert found[rel] == ds.SOPInstanceUID
        else:  # only what the standard's records cannot hold: a structured report, no Patient ID
            assert str(ds.SOPClassUID).startswith("1.2.840.10008.5.1.4.1.1.88.") or not ds.get("PatientID"), rel
            left_out.add(rel)
    assert summary.notable.get("dicomdir-left-out", 0) == len(left_out)
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
