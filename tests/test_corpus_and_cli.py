"""pydicom's bundled test files through the real command line; dciodvfy on the outputs; verify."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from conftest import dciodvfy_errors, pydicom_test_files

from medcloak.cli import main


@pytest.fixture(scope="module")
def corpus_release(tmp_path_factory):
    """One release of every file pydicom ships for its tests (read once, shared by the tests)."""
    root = tmp_path_factory.mktemp("corpus")
    src = root / "in"
    shutil.copytree(pydicom_test_files(), src)
    key = root / "key"
    key.write_bytes(b"corpus-secret-0123456789")
    code = main(["run", str(src), "--out", str(root / "out"), "--secret-file", str(key)])
    rows = [json.loads(line) for line in (root / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    return root, code, rows


def test_every_file_released_or_recorded_with_a_reason(corpus_release):
    root, code, rows = corpus_release
    inputs = sorted(str(p) for p in (root / "in").rglob("*") if p.is_file())
    assert sorted(r["input"] for r in rows) == inputs  # one manifest line per input, none lost
    assert code == 1  # some inputs are broken on purpose, so the run says so
    for r in rows:
        assert r["status"] in ("ok", "quarantined", "skipped")
        if r["status"] == "ok":
            assert len(r["outputs"]) == 1 and (root / "out" / r["outputs"][0]).is_file()
        else:
            assert r["reason"] and not r["outputs"]
        assert not r["reason"].startswith("internal error"), r  # a crash is never a reason
    by_name = {Path(r["input"]).name: r for r in rows}
    # files that pydicom reads without complaint and that are whole objects are released
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "test-SR.dcm",
                 "waveform_ecg.dcm", "rtdose.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm"):
        assert by_name[name]["status"] in ("ok", "skipped"), by_name[name]
    # secondary captures and ultrasound with no Burned In Annotation count as burned-in
    for name in ("JPEG2000.dcm", "image_dfl.dcm", "SC_rgb_rle.dcm", "examples_ybr_color.dcm", "ExplVR_BigEnd.dcm"):
        assert by_name[name]["status"] == "quarantined", by_name[name]
        assert by_name[name]["reason"].startswith("Burned In Annotation is absent from "), by_name[name]
    assert by_name["MR_truncated.dcm"]["reason"] == "truncated: PixelData runs past the end of the file"
    assert by_name["rtplan_truncated.dcm"]["reason"] == (
        "truncated: IsocenterPosition (in BeamSequence > ControlPointSequence) runs past the end of the file"
    )
    assert by_name["DICOMDIR"]["status"] == "skipped"
    # every reason is one of the known kinds: nothing is quarantined for a reason nobody foresaw
    kinds = ("truncated: ", "missing Type 1 attribute", "Burned In Annotation is absent from ", "not a DICOM file",
             "media directory", "duplicate SOP Instance UID", "NumberOfFrames is not a number")
    for r in rows:
        if r["status"] != "ok":
            assert r["reason"].startswith(kinds), r
    # the CT images of the TINY_ALPHA media set hold no Pixel Data: incomplete images are not released
    cut = [r for r in rows if "TINY_ALPHA" in r["input"] and "/SE0" in r["input"]]
    assert len(cut) == 50 and all(r["reason"].endswith(", PixelData") for r in cut)
    released = sum(r["status"] == "ok" for r in rows)
    assert released >= 40


def test_release_passes_verify(corpus_release, capsys):
    root, _, _ = corpus_release
    code = main(["verify", str(root / "out"), "--audit", str(root / "out.audit")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().endswith("0 errors")


def test_dciodvfy_reports_no_newdciodvfy_errors(corpus_release, dciodvfy):
    if dciodvfy is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy (Debian dicom3tools) must be installed in CI")
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    root, _, rows = corpus_release
    sample = [r for r in rows if r["status"] == "ok"]
    assert len(sample) >= 40
    new = {}
    for r in sample:
        added = dciodvfy_errors(root / "out" / r["outputs"][0]) - dciodvfy_errors(Path(r["input"]))
        if added:
            new[Path(r["input"]).name] = sorted(added)
    assert new == {}


def test_verify_flags_a_tampered_release(corpus_release, tmp_path, capsys):
    root, _, rows = corpus_release
    tampered = tmp_path / "rel"
    shutil.copytree(root / "out", tampered)
    target = next(tampered / r["outputs"][0] for r in rows if r["status"] == "ok" and r["input"].endswith("CT_small.dcm"))
    ds = pydicom.dcmread(target)
    ds.PatientIdentityRemoved = "NO"
    ds.add_new(0x00291010, "LO", "SOMETHING")
    ds.add_new(0x00290010, "LO", "ACME")
    ds.OtherPatientIDs = "X123"  # an attribute the profile removes
    ds.save_as(target)
    code = main(["verify", str(tampered)])
    out = capsys.readouterr().out
    assert code == 1
    assert "Patient Identity Removed is not YES" in out
    assert "private attribute (0029,1010)" in out
    assert "OtherPatientIDs should have been removed" in out


def test_exit_status_two_on_usagedciodvfy_errors(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    shutil.copy(pydicom_test_files() / "CT_small.dcm", tmp_path / "in" / "a.dcm")  # not empty: other errors
    assert main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--option", "no-such-option"]) == 2
    (tmp_path / "regions.toml").write_text('[[region]]\nwhere = { Modality = "CT" }\nboxes = [[0, 0, 4, 4]]\n')
    # region templates without the option they serve
    assert main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--regions", str(tmp_path / "regions.toml")]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "full")]) == 2
    assert main(["run", str(tmp_path / "in"), "--out", str(tmp_path / "in" / "rel")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["run"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no-such-option" in err and "not empty" in err


def test_exit_status_zero_when_everything_released(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(pydicom_test_files() / "CT_small.dcm", src / "a.dcm")
    assert main(["run", str(src), "--out", str(tmp_path / "o")]) == 0
    # without --secret-file a key is made in the audit folder and reused by the next run
    key = tmp_path / "o.audit" / "secret.key"
    assert key.is_file() and oct(key.stat().st_mode & 0o777) == "0o600"
    first = key.read_bytes()
    assert main(["run", str(src), "--out", str(tmp_path / "o2"), "--audit", str(tmp_path / "o.audit")]) == 0
    assert key.read_bytes() == first
    a = sorted(p.relative_to(tmp_path / "o") for p in (tmp_path / "o").rglob("*.dcm"))
    b = sorted(p.relative_to(tmp_path / "o2") for p in (tmp_path / "o2").rglob("*.dcm"))
    assert a == b


def test_profile_show_prints_effective_rules(capsys):
    assert main(["profile", "show", "--option", "retain-long-full-dates"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\(0008,0020\)\tK\tretain-long-full-dates\tStudy Date$", out, re.M)
    assert re.search(r"^\(0010,0020\)\tP\tkeyed pseudonym\tPatient ID$", out, re.M)
    assert re.search(r"^\(0008,0080\)\tD\tbasic\tInstitution Name$", out, re.M)


def test_console_script_and_lazy_imports():
    res = subprocess.run([sys.executable, "-c", "import sys, medcloak; print(sorted(m for m in ('numba','dask','pydicom','skimage') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
    res = subprocess.run([sys.executable, "-m", "medcloak", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "medcloak" in res.stdout


@pytest.mark.parametrize("options", [
    ["retain-uids"],
    ["retain-long-full-dates"],
    ["retain-safe-private", "retain-long-modified-dates", "clean-descriptors", "clean-structured-content",
     "retain-device-identity", "retain-institution-identity", "retain-patient-characteristics"],
])
def test_options_on_the_corpus_release_and_verify(corpus_release, tmp_path, options):
    """Under every option the same objects are released as under the Basic Profile (an option
    retains more, it never makes an object fail), and the release verifies against its profile."""
    root, _, basic_rows = corpus_release
    args = ["run", str(root / "in"), "--out", str(tmp_path / "out"), "--secret-file", str(root / "key")]
    for o in options:
        args += ["--option", o]
    main(args)
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    status = {r["input"]: r["status"] for r in rows}
    assert status == {r["input"]: r["status"] for r in basic_rows}
    assert not [r for r in rows if r["reason"].startswith(("internal error", "residual"))]
    assert main(["verify", str(tmp_path / "out"), "--audit", str(tmp_path / "out.audit")]) == 0


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(pydicom_test_files() / "CT_small.dcm", src / "Doe_John.dcm")
    shutil.copy(pydicom_test_files() / "MR_small.dcm", src / "b.dcm")
    (src / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (src / "notes.txt").write_text("Doe John")
    # the text file would be quarantined (not a supported format): the plan exits as the run would
    assert main(["run", str(src), "--out", str(tmp_path / "o"), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("plan: 4 objects")
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()[1:]}
    assert counts == {"dicom": 2, "jpeg": 1, "unknown": 1}
    assert "Doe" not in out and "notes" not in out  # counts only: no names
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.audit").exists()
