"""Duplicates release the best copy, symbolic links (git-annex and DataLad datasets) are followed
inside the inputs and, with --follow-links, outside them, and a run that releases nothing says so.

The duplicate pairs are real third-party files: pydicom-data's uncompressed originals and their
lossy JPEG 2000 re-encodings (one SOP Instance UID each), and pydicom's two copies of a JPEG
extended image, one of which has a scan header that does not fit its coding process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import base_dataset, pydicom_test_files

from medcloak.cli import main
from medcloak.engine import run
from medcloak.errors import UsageError

pydicom = pytest.importorskip("pydicom")

#: (lossy or broken copy, better copy) sharing a SOP Instance UID
PAIRS = [
    ("MR2_J2KI.dcm", "MR2_UNCI.dcm"),
    ("US1_J2KI.dcm", "US1_UNCI.dcm"),
    ("693_J2KI.dcm", "693_UNCI.dcm"),
    ("RG1_J2KI.dcm", "RG1_UNCI.dcm"),
    ("RG3_J2KI.dcm", "RG3_UNCI.dcm"),
    ("JPEG-lossy.dcm", "JPGExtended.dcm"),
]


def data_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} not installed (pydicom-data)")
    return Path(path)


def copy(name: str, dest: Path) -> Path:
    """A copy of a test file, stated to carry no burned-in annotation (both copies of a pair alike):
    ultrasound and secondary capture images without the attribute are quarantined otherwise, and
    this is about which copy is released, not about burned-in text."""
    ds = pydicom.dcmread(data_file(name))
    ds.BurnedInAnnotation = "NO"
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return dest


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.dcm"))}


def manifest(audit: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (audit / "manifest.jsonl").read_text().splitlines()]
    return {Path(r["input"]).relative_to(Path(r["input"]).parents[1]).as_posix(): r for r in rows}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    """``lossy-first``: each lossy copy's path sorts before its better copy's; ``lossy-last``: after;
    ``best``: the better copies alone."""
    root = tmp_path_factory.mktemp("pairs")
    for i, (worse, better) in enumerate(PAIRS):
        copy(worse, root / "lossy-first" / f"{i}a.dcm")
        copy(better, root / "lossy-first" / f"{i}b.dcm")
        copy(worse, root / "lossy-last" / f"{i}b.dcm")
        copy(better, root / "lossy-last" / f"{i}a.dcm")
        copy(better, root / "best" / f"{i}.dcm")
    key = root / "key"
    key.write_bytes(b"duplicates-secret-0123456789")
    os.chmod(key, 0o600)
    run([root / "best"], root / "best-out", secret_file=key)
    return root


@pytest.mark.parametrize("order", ["lossy-first", "lossy-last"])
def test_the_better_copy_is_released_whatever_the_paths(pairs, tmp_path, order) -> None:
    out = tmp_path / "out"
    summary = run([pairs / order], out, secret_file=pairs / "key")
    assert (summary.ok, summary.quarantined, summary.skipped) == (len(PAIRS), 0, len(PAIRS))
    assert summary.exit_status == 0
    assert tree(out) == tree(pairs / "best-out")  # byte for byte what the better copies alone give
    rows = manifest(tmp_path / "out.audit")
    worse = "a" if order == "lossy-first" else "b"
    for i in range(len(PAIRS)):
        loser, winner = rows[f"{order}/{i}{worse}.dcm"], rows[f"{order}/{i}{'ab'[worse == 'a']}.dcm"]
        assert winner["status"] == "ok" and loser["status"] == "skipped", (i, winner, loser)
        assert "duplicate SOP Instance UID" in loser["reason"] and loser["conflict"] == winner["outputs"][0]
        assert winner["rank"] < loser["rank"]  # the rank is recorded, so no claimant is read again


def test_the_better_copy_on_local_workers(pairs, tmp_path, monkeypatch) -> None:
    from medcloak import executors

    # worker processes from the first object on, for a dozen objects (the default would do them in this process)
    monkeypatch.setattr(executors, "make_executor", lambda workers, scheduler, client: executors.Local(workers))
    out = tmp_path / "out"
    assert main(["run", str(pairs / "lossy-first"), "--out", str(out), "--secret-file", str(pairs / "key"),
                 "--workers", "2", "--quiet"]) == 0
    assert tree(out) == tree(pairs / "best-out")


def test_resume_hands_the_output_to_the_better_copy(tmp_path, secret_file) -> None:
    """The lossy copy released by an earlier run gives way to the uncompressed one found when
    resuming; a lossy copy found later never takes the output from the better one."""
    src = tmp_path / "in"
    copy("MR2_J2KI.dcm", src / "b.dcm")
    run([src], tmp_path / "out", secret_file=secret_file)
    copy("MR2_UNCI.dcm", src / "c.dcm")
    run([src], tmp_path / "out", secret_file=secret_file, resume=True)
    rows = manifest(tmp_path / "out.audit")
    assert rows["in/c.dcm"]["status"] == "ok" and rows["in/b.dcm"]["status"] == "skipped"
    copy("JPEG2000.dcm", src / "a.dcm")  # another instance: the run goes on around it
    shutil.copy(src / "b.dcm", src / "a0.dcm")  # the lossy copy again, sorting first
    summary = run([src], tmp_path / "out", secret_file=secret_file, resume=True)
    rows = manifest(tmp_path / "out.audit")
    assert rows["in/c.dcm"]["status"] == "ok" and rows["in/a0.dcm"]["status"] == "skipped"
    assert summary.ok == 2 and summary.skipped == 2
    fresh = tmp_path / "fresh"
    run([src], fresh, secret_file=secret_file)
    assert tree(tmp_path / "out") == tree(fresh)


def test_copy_rank_judges_the_transfer_syntax_first() -> None:
    from medcloak.formats.dicom import _transfer_syntax, copy_rank

    def rank(name: str) -> tuple[int, ...]:
        path = pydicom_test_files() / name
        ds = pydicom.dcmread(path if path.is_file() else data_file(name))
        return copy_rank(ds, _transfer_syntax(ds))

    # the uncompressed copy says Lossy Image Compression 01 (its history), and still ranks first
    assert pydicom.dcmread(data_file("MR2_UNCI.dcm")).LossyImageCompression == "01"
    assert rank("MR2_UNCI.dcm") < rank("MR2_J2KI.dcm")
    assert rank("US1_J2KR.dcm") < rank("US1_J2KI.dcm")  # lossless JPEG 2000 before lossy
    # same syntax, same size: the stream whose scan fits its process ranks first
    assert rank("JPGExtended.dcm") < rank("JPEG-lossy.dcm")
    # more frames is more complete
    assert rank("SC_rgb_2frame.dcm") < rank("SC_rgb.dcm")


def test_scan_defects_both_ways() -> None:
    from medcloak.formats.dicom import _transfer_syntax
    from medcloak.formats.dicom_pixels import jpeg_scan_defects

    def defects(path: Path) -> int:
        ds = pydicom.dcmread(path)
        return jpeg_scan_defects(ds, _transfer_syntax(ds))

    assert defects(data_file("JPEG-lossy.dcm")) == 1
    for name in ("JPGExtended.dcm", "SC_rgb_jpeg_gdcm.dcm", "JPEG-LL.dcm", "color3d_jpeg_baseline.dcm"):
        assert defects(data_file(name)) == 0, name


# --- symbolic links -----------------------------------------------------------------------

def annex_dataset(root: Path, count: int = 3) -> Path:
    """A git-annex (DataLad) dataset: the working tree holds relative links into
    ``.git/annex/objects``, where the content lives; git's own files around it."""
    objects = root / ".git" / "annex" / "objects"
    for i in range(count):
        ds = base_dataset(f"1.2.826.0.1.3680043.10.999.5.{i}", "1.2.826.0.1.3680043.10.999.6",
                          "1.2.826.0.1.3680043.10.999.7", patient="ANNEXPID")
        key = f"MD5E-s1000--{i:032x}.dcm"
        target = objects / f"x{i}" / f"y{i}" / key / key
        target.parent.mkdir(parents=True)
        ds.save_as(target, enforce_file_format=True)
        link = root / f"sub-0{i}" / "anat" / f"sub-0{i}_T1w.dcm"
        link.parent.mkdir(parents=True)
        link.symlink_to(os.path.relpath(target, link.parent))
    # a second link to one object (git-annex stores identical files once), and content not fetched
    (root / "sub-00" / "anat" / "sub-00_copy.dcm").symlink_to(
        os.readlink(root / "sub-00" / "anat" / "sub-00_T1w.dcm"))
    (root / "sub-00" / "anat" / "sub-00_T2w.dcm").symlink_to("../../.git/annex/objects/zz/zz/MISSING/MISSING")
    (root / ".git" / "objects" / "ab").mkdir(parents=True)
    (root / ".git" / "objects" / "ab" / "cdef").write_bytes(b"x\x9c not an image")
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".gitattributes").write_text("* annex.backend=MD5E\n")
    (root / ".datalad").mkdir()
    (root / ".datalad" / "config").write_text("[datalad \"dataset\"]\n\tid = x\n")
    return root


def test_git_annex_dataset_releases_every_object_once(tmp_path, secret_file, capsys, monkeypatch) -> None:
    ds = annex_dataset(tmp_path / "ds")
    # content not fetched is an input object missing from the release: exit 1, as for a quarantine
    assert main(["run", str(ds), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file), "--quiet"]) == 1
    rows = {Path(r["input"]).relative_to(ds).as_posix(): r for r in
            (json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines())}
    ok = sorted(k for k, r in rows.items() if r["status"] == "ok")
    # each object under the path of its first link, never under .git; .git is not walked
    assert ok == [f"sub-0{i}/anat/sub-0{i}_T1w.dcm" for i in range(3)]
    assert not any(k.startswith(".git/") or k.startswith(".datalad/") for k in rows)
    assert rows["sub-00/anat/sub-00_copy.dcm"]["status"] == "skipped"
    assert "another path" in rows["sub-00/anat/sub-00_copy.dcm"]["reason"]
    assert rows["sub-00/anat/sub-00_T2w.dcm"]["status"] == "quarantined"
    assert "missing file" in rows["sub-00/anat/sub-00_T2w.dcm"]["reason"]
    assert rows[".gitattributes"]["status"] == "skipped"
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 3
    # the same on two worker processes
    from medcloak import executors

    with monkeypatch.context() as patch:  # worker processes from the first object on
        patch.setattr(executors, "make_executor", lambda workers, scheduler, client: executors.Local(workers))
        assert main(["run", str(ds), "--out", str(tmp_path / "two"), "--secret-file", str(secret_file),
                     "--quiet", "--workers", "2"]) == 1
    assert tree(tmp_path / "two") == tree(tmp_path / "out")
    # a subfolder's links lead outside the input: skipped, and the run says why; --follow-links takes them
    capsys.readouterr()
    args = ["run", str(ds / "sub-01"), "--secret-file", str(secret_file), "--quiet"]
    assert main([*args, "--out", str(tmp_path / "sub")]) == 2
    err = capsys.readouterr().err
    assert "nothing released" in err and "1 symbolic link leading outside the inputs" in err
    assert "--follow-links" in err
    assert main([*args, "--out", str(tmp_path / "sub2"), "--follow-links"]) == 0
    assert len(list((tmp_path / "sub2").rglob("*.dcm"))) == 1


def test_links_outside_need_follow_links(tmp_path, secret_file) -> None:
    elsewhere = tmp_path / "elsewhere"
    target = elsewhere / "Surname_Given.dcm"
    target.parent.mkdir()
    base_dataset("1.2.826.0.1.3680043.10.999.8.1", "1.2.826.0.1.3680043.10.999.8",
                 "1.2.826.0.1.3680043.10.999.8.2").save_as(target, enforce_file_format=True)
    src = tmp_path / "in"
    src.mkdir()
    (src / "b_link.dcm").symlink_to(target)
    (src / "a_link.dcm").symlink_to(target)  # two links to one target: one object
    base_dataset("1.2.826.0.1.3680043.10.999.9.1", "1.2.826.0.1.3680043.10.999.9",
                 "1.2.826.0.1.3680043.10.999.9.2").save_as(src / "own.dcm", enforce_file_format=True)
    (src / "release_link.dcm").symlink_to(tmp_path / "out2.audit" / "secret.key")

    summary = run([src], tmp_path / "out", secret_file=secret_file)
    # the link into out2.audit leads nowhere yet: a missing input object, quarantined
    assert (summary.ok, summary.skipped, summary.quarantined) == (1, 2, 1)
    rows = manifest(tmp_path / "out.audit")
    assert all("outside the inputs" in rows[f"in/{n}_link.dcm"]["reason"] for n in "ab")

    (tmp_path / "out2.audit").mkdir()
    (tmp_path / "out2.audit" / "secret.key").write_bytes(b"a secret never to be released")
    summary = run([src], tmp_path / "out2", secret_file=secret_file, follow_links=True)
    assert (summary.ok, summary.skipped, summary.quarantined) == (2, 2, 0)
    rows = manifest(tmp_path / "out2.audit")
    assert rows["in/a_link.dcm"]["status"] == "ok"  # the first link met stands for the object
    assert rows["in/b_link.dcm"]["status"] == "skipped" and "another path" in rows["in/b_link.dcm"]["reason"]
    assert "release or audit" in rows["in/release_link.dcm"]["reason"]
    assert len(list((tmp_path / "out2").rglob("*.dcm"))) == 2
    assert not any("Surname" in p.name or "link" in p.name for p in (tmp_path / "out2").rglob("*"))


def test_a_link_met_before_its_target_leaves_it_to_the_target(tmp_path, secret_file) -> None:
    src = tmp_path / "in"
    target = src / "z" / "real.dcm"
    target.parent.mkdir(parents=True)
    base_dataset("1.2.826.0.1.3680043.10.999.10.1", "1.2.826.0.1.3680043.10.999.10",
                 "1.2.826.0.1.3680043.10.999.10.2").save_as(target, enforce_file_format=True)
    (src / "a.dcm").symlink_to(target)
    (src / "z" / "b.dcm").symlink_to("real.dcm")
    summary = run([src], tmp_path / "out", secret_file=secret_file)
    rows = manifest(tmp_path / "out.audit")
    assert (summary.ok, summary.skipped) == (1, 2)
    assert rows["z/real.dcm"]["status"] == "ok"
    assert rows["in/a.dcm"]["status"] == "skipped" and rows["z/b.dcm"]["status"] == "skipped"


# --- runs that release nothing ------------------------------------------------------------

def test_empty_input_exits_two_and_writes_nothing(tmp_path, capsys) -> None:
    src = tmp_path / "in"
    (src / "only" / "folders").mkdir(parents=True)
    for extra in ([], ["--dry-run"]):
        assert main(["run", str(src), "--out", str(tmp_path / "out"), "--quiet", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no input object found" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.audit").exists()
    with pytest.raises(UsageError, match="no input object found"):
        run([src], tmp_path / "out")


def test_all_skipped_exits_two_with_the_reasons(tmp_path, secret_file, capsys) -> None:
    elsewhere = tmp_path / "elsewhere.dcm"
    shutil.copy(pydicom_test_files() / "CT_small.dcm", elsewhere)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.dcm", "b.dcm"):
        (src / name).symlink_to(elsewhere)
    (src / ".gitignore").write_text("*.tmp\n")
    expected = "nothing released: 3 input objects found, all skipped (2 symbolic link leading outside the inputs"
    for extra in (["--dry-run"], []):
        code = main(["run", str(src), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file), "--quiet",
                     *extra])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "1 version-control file" in err, err
    # a run that released nothing leaves no release folder (nor documentation of an empty release),
    # so the same command with --follow-links is not refused; the audit keeps the reasons
    assert not (tmp_path / "out").exists() and (tmp_path / "out.audit" / "manifest.jsonl").is_file()
    assert main(["run", str(src), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file), "--quiet",
                 "--follow-links"]) == 0
    assert (tmp_path / "out" / "DEIDENTIFICATION.json").is_file()
    # a media directory alone is skipped too, which only the run can tell
    shutil.copy(pydicom_test_files() / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    assert main(["run", str(tmp_path / "DICOMDIR"), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "1 media directory" in capsys.readouterr().err
    # one released object is enough for 0
    shutil.copy(pydicom_test_files() / "CT_small.dcm", src / "c.dcm")
    assert main(["run", str(src), "--out", str(tmp_path / "o3"), "--secret-file", str(secret_file), "--quiet"]) == 0
    assert main(["run", str(src), "--out", str(tmp_path / "o4"), "--quiet", "--dry-run"]) == 0
