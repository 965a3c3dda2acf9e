"""BIDS in, BIDS out (issue 12): the synthetic dataset of ``data_samples/bids`` (two subjects
labelled with hospital numbers, identifying sidecar keys, tables with dates and unknown columns,
an IntendedFor of each form) is released as a BIDS dataset that the BIDS validator accepts, with
keyed subject labels everywhere, every other entity kept, the profile's columns and dates, the
anatomical images defaced; files the handler does not know are quarantined, derivatives skipped."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import SECRET

from medcloak.engine import run
from medcloak.formats import bids
from medcloak.pseudonym import Keyring
from medcloak.verify import verify_release

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "bids"
LABELS = ("NF00482913", "NF00777120")
#: identifying text planted in the sample's sidecars, tables and headers
PLANTED = (*LABELS, "Sinclair", "Northfield", "Lindqvist", "Neurology", "NFG-MR", "1990-01-17")
VALIDATOR = shutil.which("bids-validator-deno")

sys.path.insert(0, str(ROOT / "data_samples"))


def _copy(dest: Path, images: bool = True) -> Path:
    shutil.copytree(SAMPLE, dest, ignore=None if images else shutil.ignore_patterns("*.nii.gz"))
    return dest


def _key(tmp: Path) -> Path:
    key = tmp / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return key


def _dataset(out: Path) -> Path:
    (folder,) = (out / "bids").iterdir()
    return folder


def _release(tmp: Path, name: str, images: bool = True, options: tuple[str, ...] = (), profile=None):  # type: ignore[no-untyped-def]
    src = _copy(tmp / f"{name}-in" / "Study_of_Sinclair", images)
    out = tmp / f"{name}-out"
    summary = run([src], out, secret_file=_key(tmp), options=options, profile=profile)
    return src, out, summary


@pytest.fixture(scope="module")
def released(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("bids")
    src, out, summary = _release(tmp, "full")
    assert summary.quarantined == 0 and summary.ok == 16, summary
    return src, out


def _texts(folder: Path) -> dict[str, bytes]:
    """Every released file's bytes, gunzipped."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            out[p.relative_to(folder).as_posix()] = gzip.decompress(data) if p.name.endswith(".gz") else data
    return out


def _validate(folder: Path) -> list[str]:
    proc = subprocess.run([VALIDATOR, str(folder), "--format", "json"], capture_output=True, text=True, timeout=300, check=False)
    issues = json.loads(proc.stdout)["issues"]["issues"]
    errors = [f"{i['code']} {i.get('location', '')}" for i in issues if i["severity"] == "error"]
    assert (proc.returncode == 0) == (not errors), proc.returncode
    return errors


@pytest.mark.skipif(VALIDATOR is None, reason="bids-validator-deno is not installed (pip install bids-validator-deno)")
def test_input_and_release_pass_the_bids_validator(released) -> None:  # type: ignore[no-untyped-def]
    src, out = released
    assert _validate(src) == []
    assert _validate(_dataset(out)) == []


def test_original_labels_and_planted_identifiers_are_nowhere(released) -> None:  # type: ignore[no-untyped-def]
    _, out = released
    everything = _texts(out)
    assert all(rel.startswith(("bids/", "DEIDENTIFICATION")) for rel in everything)
    for rel, data in everything.items():
        for value in (*PLANTED, "Study_of_Sinclair", "NF00"):
            assert value.lower() not in rel.lower(), rel
            assert value.lower().encode() not in data.lower(), (rel, value)


def _shape(rel: str) -> str:
    return re.sub(r"sub-[A-Za-z0-9]+", "sub-X", rel)


def test_structure_and_every_other_entity_kept(released) -> None:  # type: ignore[no-untyped-def]
    src, out = released
    folder = _dataset(out)
    got = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    want = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    assert sorted(map(_shape, got)) == sorted(map(_shape, want))
    new = {m for rel in got for m in re.findall(r"sub-([A-Za-z0-9]+)", rel)}
    assert len(new) == 2 and all(bids.PSEUDONYM.fullmatch(label) for label in new)
    # one pseudonym per subject, the same in folder and file names
    for rel in got:
        assert len(set(re.findall(r"sub-([A-Za-z0-9]+)", rel))) == (1 if rel.startswith("sub-") else 0), rel


def test_intended_for_rewritten_and_pointing_at_released_files(released) -> None:  # type: ignore[no-untyped-def]
    _, out = released
    folder = _dataset(out)
    forms = set()
    for sidecar in folder.rglob("*_epi.json"):
        (target,) = json.loads(sidecar.read_text())["IntendedFor"]
        if target.startswith("bids::"):
            forms.add("uri")
            assert (folder / target[6:]).is_file()
        else:
            forms.add("relative")
            assert (sidecar.parents[2] / target).is_file()
    assert forms == {"uri", "relative"}


def test_sidecars_cleaned_and_dataset_description_stamped(released) -> None:  # type: ignore[no-untyped-def]
    _, out = released
    folder = _dataset(out)
    doc = json.loads((folder / "dataset_description.json").read_text())
    assert doc["GeneratedBy"][-1]["Name"] == "medcloak" and doc["GeneratedBy"][0]["Name"] == "dcm2niix"
    assert doc["Authors"] and doc["Funding"] and "EthicsApprovals" not in doc and "SourceDatasets" not in doc
    (t1,) = [p for p in folder.rglob("*_T1w.json") if "MC" in p.name][:1]
    side = json.loads(t1.read_text())
    assert side["RepetitionTime"] == 2.3 and not {"PatientName", "InstitutionName", "AcquisitionDateTime"} & set(side)
    bold = json.loads(next(folder.rglob("*_bold.json")).read_text())
    assert bold["TaskName"] == "rest" and "AcquisitionTime" not in bold


def test_anatomical_images_defaced_functional_data_kept(released) -> None:  # type: ignore[no-untyped-def]
    import nibabel as nib
    from make_samples import PHANTOM, head_phantom
    from scipy import ndimage

    src, out = released
    folder = _dataset(out)
    phantom, _ = head_phantom()
    for t1 in folder.rglob("*_T1w.nii.gz"):
        img = nib.load(t1)
        after = np.asarray(img.dataobj)
        assert img.header["descrip"].tobytes().strip(b"\x00") == b""
        changed = after != phantom
        for part, least in (("nose", 0.99), ("lips", 0.99), ("chin", 0.99), ("eye", 0.95)):
            where = phantom == PHANTOM[part]
            assert changed[where].mean() >= least, (part, changed[where].mean())
        brain = np.isin(phantom, [PHANTOM["grey matter"], PHANTOM["white matter"], PHANTOM["ventricle"]])
        assert not changed[ndimage.binary_erosion(brain, iterations=1)].any()
    for bold in folder.rglob("*_bold.nii.gz"):
        label = re.search(r"sub-([A-Za-z0-9]+)", bold.name).group(1)  # type: ignore[union-attr]
        original = [p for p in src.rglob("*_bold.nii.gz")]
        datas = [np.asarray(nib.load(p).dataobj) for p in original]
        kept = np.asarray(nib.load(bold).dataobj)
        assert any(np.array_equal(kept, d) for d in datas), label
        assert nib.load(bold).header["descrip"].tobytes().strip(b"\x00") == b""


def test_the_sample_head_is_defaced_not_refused() -> None:
    """Today's defacer takes the phantom for a head: it removes its face and keeps its brain."""
    from make_samples import PHANTOM, head_phantom

    from medcloak.pixels.deface import deface_mask

    values, affine = head_phantom()
    result = deface_mask(values, affine, "MR")
    assert result.status == "defaced" and result.mask is not None
    for part in ("nose", "lips", "chin"):
        assert result.mask[values == PHANTOM[part]].mean() >= 0.99, part
    assert result.mask[values == PHANTOM["eye"]].mean() >= 0.95
    assert not result.mask[np.isin(values, [PHANTOM["grey matter"], PHANTOM["white matter"]])].any()


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    return bids.read_tsv(path.read_bytes())


def _profile(tmp: Path, text: str) -> Path:
    path = tmp / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("how, columns", [
    ("basic", ["participant_id"]),
    ("characteristics", ["participant_id", "age", "sex"]),
    ("site", ["participant_id", "age", "handedness"]),
])
def test_participants_columns_follow_the_profile(tmp_path, how, columns) -> None:  # type: ignore[no-untyped-def]
    options = ("retain-patient-characteristics",) if how == "characteristics" else ()
    profile = _profile(tmp_path, 'name = "site"\n[attributes]\nPatientAge = "keep"\n[bids]\nkeep_columns = ["handedness"]\n') \
        if how == "site" else None
    _, out, summary = _release(tmp_path, how, images=False, options=options, profile=profile)
    assert summary.quarantined == 0
    folder = _dataset(out)
    header, rows = _table(folder / "participants.tsv")
    assert header == columns
    assert sorted(json.loads((folder / "participants.json").read_text())) == sorted(columns)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len(rows) == 2
    if "age" in columns:
        assert sorted(r[header.index("age")] for r in rows) == ["34", "41"]
    assert _verified(out) == []


def _verified(out: Path) -> list:  # type: ignore[type-arg]
    """``verify``'s findings on a release made without its images (whose tables name them)."""
    return [f for f in verify_release(out, out.with_name(out.name + ".audit")) if "not in the release" not in f.message]


def _times(folder: Path) -> dict[str, list[tuple[str, str]]]:
    """Per subject label: (table, acq_time) of every row of its scans and sessions tables."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(folder.rglob("*_scans.tsv")) + sorted(folder.rglob("*_sessions.tsv")):
        label = re.match(r"sub-([A-Za-z0-9]+)_", path.name).group(1)  # type: ignore[union-attr]
        header, rows = _table(path)
        if "acq_time" in header:
            found.setdefault(label, []).extend((path.name.split("_")[-1], r[header.index("acq_time")]) for r in rows)
    return found


def test_dates_removed_shifted_per_subject_or_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src, out, _ = _release(tmp_path, "basic", images=False)
    assert _times(_dataset(out)) == {}
    assert all("acq_time" not in _table(p)[0] for p in _dataset(out).rglob("*.tsv"))
    assert "acq_time" not in json.dumps([json.loads(p.read_text()) for p in _dataset(out).rglob("*_scans.json")])

    original = _times(src)
    src, out, _ = _release(tmp_path, "full-dates", images=False, options=("retain-long-full-dates",))
    kept = _times(_dataset(out))
    assert sorted(map(sorted, kept.values())) == sorted(map(sorted, original.values()))

    src, out, _ = _release(tmp_path, "shifted", images=False, options=("retain-long-modified-dates",))
    shifted = _times(_dataset(out))
    keyring = Keyring(SECRET)
    dataset = bids.Dataset.of(src)
    offsets = set()
    for label, rows in original.items():
        new = bids.pseudonym(keyring, dataset, label)
        moved = {(t, datetime.fromisoformat(b) - datetime.fromisoformat(a))
                 for (t, a), (_, b) in zip(rows, shifted[new])}
        (delta,) = {d for _, d in moved}  # one offset for every date of the subject
        days, seconds = keyring.date_offset(dataset.identity(label))
        assert delta.days * 86400 + delta.seconds == days * 86400 + seconds and abs(delta.days) >= 365
        offsets.add(delta)
    assert len(offsets) == 2
    assert _verified(out) == []


def _dated(src: Path, label: str) -> None:
    """The sample with ``label``'s session renamed ``ses-20240305`` in its folder: folder and file
    names, tables, IntendedFor."""
    for path in sorted((src / f"sub-{label}").rglob("*"), key=lambda p: -len(p.parts)):
        if path.is_file() and path.suffix in (".tsv", ".json"):
            path.write_text(re.sub(r"ses-1(?![0-9])", "ses-20240305", path.read_text()))
        if "ses-1" in path.name:
            path.rename(path.with_name(path.name.replace("ses-1", "ses-20240305")))


def test_a_session_label_that_is_a_date_is_quarantined_unless_dates_are_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``ses-20240305`` tells the scan's date: every file that names it is quarantined with the reason
    (the other subject is released), and released as it is where the profile keeps full dates."""
    src = _copy(tmp_path / "in" / "Study", images=False)
    _dated(src, LABELS[0])
    assert any("ses-20240305" in p.name for p in src.rglob("*"))
    out = tmp_path / "out"
    summary = run([src], out, secret_file=_key(tmp_path))
    import json as _json

    lines = [_json.loads(x) for x in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    held = {Path(e["input"]).relative_to(src).as_posix() for e in lines if e["status"] == "quarantined"}
    assert held and all(LABELS[0] in h for h in held)
    assert {e["reason"] for e in lines if e["status"] == "quarantined"} == {
        "a session label holds a date (ses-YYYYMMDD...): the scan's date, which the profile removes; rename the "
        "sessions (ses-1, ses-2...) before release"}
    assert summary.exit_status == 1
    assert b"20240305" not in b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    out2 = tmp_path / "out2"
    summary = run([src], out2, secret_file=_key(tmp_path), options=("retain-long-full-dates",))
    assert summary.quarantined == 0
    assert any("ses-20240305" in p.name for p in out2.rglob("*"))


def test_a_folder_of_volumes_without_dataset_description_is_released_as_before(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in" / "heads"
    src.mkdir(parents=True)
    shutil.copy(SAMPLE / "sub-NF00482913" / "ses-1" / "anat" / "sub-NF00482913_ses-1_T1w.nii.gz", src / "head.nii.gz")
    shutil.copy(SAMPLE / "sub-NF00482913" / "ses-1" / "anat" / "sub-NF00482913_ses-1_T1w.json", src / "head.json")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path))
    assert summary.ok == 1 and summary.quarantined == 0
    got = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert [g.split("/")[0] for g in got if not g.startswith("DEIDENTIFICATION")] == ["volumes", "volumes"]


def test_unknown_files_quarantined_derivatives_skipped_dicom_released_as_dicom(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = _copy(tmp_path / "in" / "ds", images=False)
    anat = src / "sub-NF00482913" / "ses-1" / "anat"
    (anat / "sub-NF00482913_ses-1_notes.txt").write_text("Maud Sinclair was anxious\n")
    (src / "code").mkdir()
    (src / "code" / "convert.sh").write_text("dcm2niix /data/NF00482913\n")
    (src / "sub-NF00482913" / "ses-1" / "eeg").mkdir()
    (src / "sub-NF00482913" / "ses-1" / "eeg" / "sub-NF00482913_ses-1_task-rest_eeg.edf").write_bytes(b"0" * 300)
    deriv = src / "derivatives" / "prep"
    deriv.mkdir(parents=True)
    (deriv / "dataset_description.json").write_text('{"Name": "prep", "BIDSVersion": "1.9.0", "DatasetType": "derivative"}')
    shutil.copy(SAMPLE / "sub-NF00482913" / "ses-1" / "anat" / "sub-NF00482913_ses-1_T1w.nii.gz",
                deriv / "sub-NF00482913_desc-preproc_T1w.nii.gz")
    (src / "sourcedata").mkdir()
    shutil.copy(ROOT / "data_samples" / "dicom" / "Sinclair_Maud_NF00482913" / "CT_HEAD_1.dcm", src / "sourcedata" / "1.dcm")
    (src / "sourcedata" / "scan.PAR").write_text("# patient name: Sinclair\n")
    nested = src / "sourcedata" / "raw"
    (nested / "sub-NF00482913" / "anat").mkdir(parents=True)
    (nested / "dataset_description.json").write_text('{"Name": "raw", "BIDSVersion": "1.9.0"}')
    (nested / "sub-NF00482913" / "anat" / "sub-NF00482913_T1w.json").write_text('{"PatientName": "Sinclair"}')
    # an image that does not read: quarantined, and its sidecar with it
    (anat / "sub-NF00482913_ses-1_T1w.nii.gz").write_bytes(
        (SAMPLE / "sub-NF00482913" / "ses-1" / "anat" / "sub-NF00482913_ses-1_T1w.nii.gz").read_bytes()[:2000])
    out = tmp_path / "out"
    summary = run([src], out, secret_file=_key(tmp_path))
    lines = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    status = {Path(e["input"]).relative_to(src).as_posix(): (e["status"], e["reason"]) for e in lines}
    quarantined = {k for k, (s, _) in status.items() if s == "quarantined"}
    assert quarantined == {"sub-NF00482913/ses-1/anat/sub-NF00482913_ses-1_notes.txt", "code/convert.sh",
                           "sub-NF00482913/ses-1/eeg/sub-NF00482913_ses-1_task-rest_eeg.edf",
                           "sourcedata/scan.PAR", "sub-NF00482913/ses-1/anat/sub-NF00482913_ses-1_T1w.nii.gz",
                           "sourcedata/raw/dataset_description.json",
                           "sourcedata/raw/sub-NF00482913/anat/sub-NF00482913_T1w.json"}
    assert all(status[k][1] and not status[k][1].startswith("internal error") for k in quarantined)
    assert "eeg" in status["sub-NF00482913/ses-1/eeg/sub-NF00482913_ses-1_task-rest_eeg.edf"][1]
    assert {status[k][0] for k in status if k.startswith("derivatives/")} == {"skipped"}
    assert status["sourcedata/1.dcm"][0] == "ok"
    assert summary.exit_status == 1
    got = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    assert any(g.endswith(".dcm") and not g.startswith("bids/") for g in got)  # DICOM's own tree
    anat_out = [g for g in got if "/anat/" in g]
    first = "sub-" + bids.pseudonym(Keyring(SECRET), bids.Dataset.of(src), "NF00482913")
    assert not [g for g in anat_out if first in g]  # the refused image's sidecar is not released alone
    assert all(not g.startswith(("derivatives", "code")) and "/derivatives/" not in g for g in got)
    assert len(list((out / "bids").iterdir())) == 1  # the dataset inside sourcedata/ is not released


def test_verify_accepts_the_release_and_flags_planted_identifiers(released, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, out = released
    audit = out.with_name(out.name + ".audit")
    assert verify_release(out, audit) == []
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    folder = _dataset(copy)
    sidecar = next(folder.rglob("*_bold.json"))
    doc = json.loads(sidecar.read_text())
    doc["PatientName"] = "Sinclair^Maud"
    sidecar.write_text(json.dumps(doc))
    with (folder / "participants.tsv").open("a") as fh:
        fh.write("sub-NF00482913\n")
    (folder / "README").write_text("Subject NF00777120 was scanned twice.\n")
    epi = next(folder.rglob("*_epi.json"))
    doc = json.loads(epi.read_text())
    doc["IntendedFor"] = ["bids::sub-pilot/ses-1/func/sub-pilot_ses-1_task-rest_bold.nii.gz"]
    epi.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    findings = verify_release(copy, audit)
    flagged = {f.path.split("/", 2)[2] for f in findings if f.level == "error"}
    rel = sidecar.relative_to(folder).as_posix()
    assert {rel, "participants.tsv", "README", epi.relative_to(folder).as_posix()} <= flagged, findings
    assert len(flagged) == 4, findings


def test_each_file_is_its_own_task_and_the_release_is_deterministic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two runs with the same secret give the same bytes; another secret other labels."""
    _, one, _ = _release(tmp_path, "one", images=False)
    _, two, _ = _release(tmp_path, "two", images=False)
    assert _texts(one) == _texts(two)
    other = tmp_path / "other"
    other.write_bytes(SECRET[::-1])
    other.chmod(0o600)
    src = _copy(tmp_path / "three-in" / "Study_of_Sinclair", images=False)
    run([src], tmp_path / "three", secret_file=other)
    assert set(_texts(tmp_path / "three")).isdisjoint(k for k in _texts(one) if "sub-" in k)


def test_labels_rewritten_in_paths_and_text_even_when_short() -> None:
    """``sub-01`` is rewritten wherever it stands (a path, a URI, free text); a bare ``01`` is
    not (it could be anything), a distinctive bare label is."""
    keyring = Keyring(SECRET)
    dataset = bids.Dataset("ds|name", frozenset({"01", "NF00482913"}))
    new = bids.pseudonym(keyring, dataset, "01")
    assert bids.PSEUDONYM.fullmatch(new) and new != bids.pseudonym(keyring, bids.Dataset("other|name", frozenset()), "01")
    text = "bids::sub-01/ses-1/func/sub-01_ses-1_bold.nii.gz ses-1/anat/sub-01_T1w.nii.gz 01 NF00482913 xNF00482913"
    assert bids.relabel(text, keyring, dataset) == (
        f"bids::sub-{new}/ses-1/func/sub-{new}_ses-1_bold.nii.gz ses-1/anat/sub-{new}_T1w.nii.gz 01 "
        f"{bids.pseudonym(keyring, dataset, 'NF00482913')} xNF00482913")
    assert bids.release_path(keyring, dataset, "sub-01/ses-1/anat/sub-01_ses-1_acq-mp2_run-2_T1w.nii.gz").endswith(
        f"/sub-{new}/ses-1/anat/sub-{new}_ses-1_acq-mp2_run-2_T1w.nii.gz")
    # a word of text is no label, unless it is a subject's folder or holds a digit; in a path it is
    pilot = bids.pseudonym(keyring, dataset, "pilot")
    assert bids.relabel("sub-cortical sub-pilot sub-7b", keyring, dataset) == \
        f"sub-cortical sub-pilot sub-{bids.pseudonym(keyring, dataset, '7b')}"
    assert bids.relabel("sub-pilot", keyring, bids.Dataset("ds|name", frozenset({"pilot"}))) == f"sub-{pilot}"
    assert bids.release_path(keyring, dataset, "sub-pilot/anat/sub-pilot_T1w.nii.gz").endswith(f"sub-{pilot}/anat/sub-{pilot}_T1w.nii.gz")


@pytest.mark.parametrize("where, damage", [
    ("sub-NF00482913/ses-1/func/sub-NF00482913_ses-1_task-rest_bold.json", b'{"TaskName": "rest", '),
    ("participants.tsv", b"participant_id\tage\nsub-NF00482913\t34\textra\n"),
    ("sub-NF00777120/ses-1/sub-NF00777120_ses-1_scans.tsv", b"filename\tacq_time\nanat/x.nii.gz\t5 March 2024\n"),
    ("dataset_description.json", b'{"Name": "x"}'),
])
def test_a_broken_file_is_quarantined_with_a_typed_reason(tmp_path, where, damage) -> None:  # type: ignore[no-untyped-def]
    src = _copy(tmp_path / "in" / "ds", images=False)
    (src / where).write_bytes(damage)
    out = tmp_path / "out"
    run([src], out, secret_file=_key(tmp_path), options=("retain-long-modified-dates",))
    lines = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    (entry,) = [e for e in lines if e["input"] == str(src / where)]
    assert entry["status"] == "quarantined" and entry["reason"] and not entry["reason"].startswith("internal error")


def test_a_site_profile_names_bids_columns_only_as_a_list() -> None:
    from medcloak.errors import ProfileError
    from medcloak.rules.profile import load_profile

    assert bids.site_columns(load_profile(None, overrides={"bids": {"keep_columns": ["group"]}})) == {"group"}
    for bad in ({"keep_columns": "group"}, {"keep": ["group"]}, ["group"]):
        with pytest.raises(ProfileError):
            load_profile(None, overrides={"bids": bad})


def test_two_copies_of_a_dataset_that_differ_are_settled_with_a_reason_that_fits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same dataset under two folders (same name, same description) gives the same keyed names:
    identical files are released once, a file that differs is skipped with a duplicate reason that
    speaks of names, not of DICOM instances."""
    import json as _json

    a = _copy(tmp_path / "a" / "Study", images=False)
    b = _copy(tmp_path / "b" / "Study", images=False)
    (b / "README").write_text((b / "README").read_text() + "\nA second copy.\n")
    summary = run([a, b], tmp_path / "out", secret_file=_key(tmp_path))
    lines = [_json.loads(x) for x in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    readme = [e for e in lines if Path(e["input"]).name == "README"]
    assert sorted(e["status"] for e in readme) == ["ok", "skipped"]
    (loser,) = [e for e in readme if e["status"] == "skipped"]
    assert loser["reason"] == "duplicate: another input object is released under the same keyed name, with other content"
    assert summary.quarantined == 0
