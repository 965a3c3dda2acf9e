"""``medcloak run --k-anonymity K`` on real DICOM files (pydicom's CT_small and MR_small) with
planted patient characteristics: after it, every patient is in a class of at least K, measured
on the release itself (read back with pydicom, one row per patient folder), the values written
are valid DICOM, and what was done is documented; without the option nothing changes."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import pydicom_test_files, write

from medcloak.cli import main
from medcloak.generalise import (
    TAGS,
    Plan,
    apply,
    choose,
    patients_of,
    recode,
    released_qi,
)
from medcloak.risk import measure

pd = pytest.importorskip("pandas")

OPTIONS = ["--option", "retain-patient-characteristics", "--option", "retain-device-identity"]
QUASI = tuple(TAGS)


def plant(folder: Path, patients: int = 30, seed: int = 7) -> dict[str, dict[str, str]]:
    """``patients`` patients of one to three objects each (CT or MR by patient), each with its
    own sex, age (40 to 58), size (1.60 to 1.79 m) and weight (60 to 79 kg), a few seen at two
    ages (a study a year later): nearly all unique as they are, and alike in 20-year, 20 cm and
    20 kg ranges. Returns the planted characteristics by patient ID."""
    rng = random.Random(seed)
    planted = {}
    n = 0
    for p in range(patients):
        pid = f"K-ANON-{p:03d}"
        sex = "FM"[p // 2 % 2]
        age = rng.randint(40, 58)
        size = f"{rng.uniform(1.60, 1.79):.2f}"
        weight = f"{rng.uniform(60, 79.9):.1f}"
        planted[pid] = {"PatientSex": sex, "PatientAge": f"{age:03d}Y", "PatientSize": size, "PatientWeight": weight}
        for j in range(rng.randint(1, 3)):
            name = ["CT_small.dcm", "MR_small.dcm"][p % 2]
            ds = pydicom.dcmread(pydicom_test_files() / name)
            for tag in [t for t in ds.keys() if t.group & 1]:
                del ds[tag]
            n += 1
            uid = f"1.2.826.0.1.3680043.10.999.77.{n}"
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.999.78.{p}.{j % 2}"
            ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.999.79.{p}.{j}"
            ds.PatientID = pid
            ds.PatientName = f"PATIENT^{p:03d}"
            ds.PatientSex = sex
            # the second study a year later: the patient is seen at two ages
            ds.PatientAge = f"{age + (1 if j == 2 and p % 5 == 0 else 0):03d}Y"
            ds.PatientSize = size
            ds.PatientWeight = weight
            ds.BurnedInAnnotation = "NO"
            write(ds, folder / f"p{p:03d}" / f"{j}.dcm")
    return planted


def release_table(out: Path) -> list[dict]:
    """One row per released object: its patient (the release's patient folder) and quasi-identifiers."""
    rows = []
    for path in sorted(out.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        rows.append({"patient": path.relative_to(out).parts[0], "qi": released_qi(ds), "path": path})
    return rows


def pandas_k(rows: list[dict], quasi: tuple[str, ...]) -> int:
    df = pd.DataFrame([{"patient": r["patient"], **{q: r["qi"].get(q, "") for q in quasi}} for r in rows])
    used = [q for q in quasi if (df[q] != "").any()]
    per = df.groupby("patient")[used].agg(lambda s: "|".join(sorted(set(s)))).reset_index()
    return int(per.groupby(used).size().min()) if used else len(per)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("kanon")
    secret = root / "secret.key"
    secret.write_bytes(b"test-secret-0123456789abcdef")
    secret.chmod(0o600)
    planted = plant(root / "in")
    plain, kanon = root / "plain", root / "kanon"
    base = ["run", str(root / "in"), "--secret-file", str(secret), "--workers", "1", "--quiet", *OPTIONS]
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--out", str(kanon), "--k-anonymity", "5"]) == 0
    return planted, plain, kanon


def test_without_the_option_nothing_changes(runs):
    planted, plain, _ = runs
    rows = release_table(plain)
    assert len({r["patient"] for r in rows}) == 30
    by_age = {}
    for row in rows:
        ds = pydicom.dcmread(row["path"], stop_before_pixels=True)
        pid = [p for p, v in planted.items() if v["PatientSize"] == str(ds.PatientSize)
               and v["PatientWeight"] == str(ds.PatientWeight)]
        assert len(pid) == 1  # every planted value released as it was
        assert ds.PatientSex == planted[pid[0]]["PatientSex"]
        by_age.setdefault(row["patient"], set()).add(str(ds.PatientAge))
    assert any(len(ages) == 2 for ages in by_age.values())
    doc = json.loads((plain / "DEIDENTIFICATION.json").read_text())
    assert "k_anonymity" not in doc
    assert "k_anonymity" not in json.loads((plain.parent / "plain.audit" / "run.json").read_text())
    # the planted release is far from 5-anonymous: the option has work to do
    r = measure(patients_of(rows), QUASI, 5)
    assert r.k == 1 and r.below >= 25


def test_k_anonymity_holds_on_the_release(runs):
    _, plain, kanon = runs
    rows = release_table(kanon)
    patients = {r["patient"] for r in rows}
    assert patients == {r["patient"] for r in release_table(plain)}  # the same pseudonyms
    risk = measure(patients_of(rows), QUASI, 5)
    assert risk.patients == 30 and risk.k >= 5 and risk.below == 0
    assert pandas_k(rows, QUASI) == risk.k
    # per object, the classes would look larger: per patient is what is checked
    per_object = measure(patients_of([{"patient": str(r["path"]), "qi": r["qi"]} for r in rows]), QUASI, 5)
    assert per_object.patients == len(rows) > 30
    doc = json.loads((kanon / "DEIDENTIFICATION.json").read_text())["k_anonymity"]
    assert doc["k"] == 5 and doc["smallest_class_after"] == risk.k and doc["patients"] == 30
    assert doc["smallest_class_before"] == 1
    assert doc["quasi_identifiers"]["PatientAge"] == "20-year bands"
    assert doc["quasi_identifiers"]["PatientSex"] == "kept as released"
    assert "k-anonymity: every patient is in a class of at least 5" in (kanon / "DEIDENTIFICATION.txt").read_text()
    record = json.loads((kanon.parent / "kanon.audit" / "run.json").read_text())["k_anonymity"]
    assert record["patients_suppressed"] == doc["patients_suppressed"] and record["pre_pass_seconds"] >= 0
    text = json.dumps(record) + json.dumps(doc)
    assert "K-ANON" not in text and not any(p in text for p in patients)  # counts only


def test_released_values_are_valid_dicom(runs):
    _, _, kanon = runs
    ages, changed = set(), 0
    for row in release_table(kanon):
        ds = pydicom.dcmread(row["path"], stop_before_pixels=True)
        age = str(ds.get("PatientAge", "") or "")
        assert age == "" or re.fullmatch(r"\d{3}[DWMY]", age)
        ages.add(age)
        for keyword in ("PatientSize", "PatientWeight"):
            raw = ds.get_item(keyword).value if keyword in ds else b""
            text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
            assert len(text) <= 16 and (text == "" or re.fullmatch(r"[+-]?\d+(\.\d+)?", text.strip()))
        assert str(ds.get("PatientSex", "") or "") in ("", "F", "M", "O")
        changed += "k-anonymity" in json.dumps(row["qi"])  # never a label in a value
    assert changed == 0
    # bands are lower bounds of the documented widths: here 20-year bands (40 to 59)
    assert ages == {"040Y"}
    if shutil.which("dciodvfy"):
        for row in release_table(kanon)[:6]:
            res = subprocess.run(["dciodvfy", str(row["path"])], capture_output=True, text=True, check=False)
            bad = [ln for ln in (res.stdout + res.stderr).splitlines()
                   if ln.startswith("Error") and re.search(r"Patient(Age|Size|Weight|Sex)|Patient's (Age|Size|Weight|Sex)", ln)]
            assert not bad, bad


def test_manifest_counts_what_was_done(runs):
    _, _, kanon = runs
    assert main(["verify", str(kanon), "--audit", str(kanon.parent / "kanon.audit")]) == 0
    lines = [json.loads(x) for x in (kanon.parent / "kanon.audit" / "manifest.jsonl").read_text().splitlines()]
    assert all(line["status"] == "ok" for line in lines)
    assert sum(line.get("actions", {}).get("k-anonymity-generalised", 0) > 0 for line in lines) > 0
    # the review record says which attributes were recoded (replaced) or suppressed (emptied), and
    # its characteristics are the released, recoded ones
    recoded = [line for line in lines if line.get("actions", {}).get("k-anonymity-generalised")]
    for line in recoded:
        changed, review = line["review"]["changed"], line["review"]
        noted = {a for a in ("PatientAge", "PatientSex", "PatientSize", "PatientWeight")
                 if changed.get(a) in ("replaced", "emptied")}
        assert noted and not noted & set(review.get("kept", ()))
    ages = {line["review"]["qi"].get("PatientAge") for line in lines}
    assert ages and all(a is None or a[:3].isdigit() and int(a[:3]) % 5 == 0 for a in ages)  # bands' bounds


def test_usage_errors(tmp_path, secret_file, capsys):
    plant(tmp_path / "in", patients=3)
    base = ["run", str(tmp_path / "in"), "--secret-file", str(secret_file), "--workers", "1", "--quiet", *OPTIONS]
    for bad in ("1", "0", "-3", "2.5", "five"):
        assert main([*base, "--out", str(tmp_path / f"o{bad}"), "--k-anonymity", bad]) == 2
        assert "--k-anonymity takes a whole number" in capsys.readouterr().err
        assert not (tmp_path / f"o{bad}").exists()
    # three patients cannot be in classes of five: refused before anything is written
    assert main([*base, "--out", str(tmp_path / "o"), "--k-anonymity", "5"]) == 2
    assert "fewer than 5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.audit").exists()
    assert main([*base, "--out", str(tmp_path / "o3"), "--k-anonymity", "3"]) == 0
    # a resumed run keeps its K
    assert main([*base, "--out", str(tmp_path / "o3"), "--k-anonymity", "4", "--resume"]) == 2
    assert "another --k-anonymity" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "o3"), "--resume"]) == 2
    assert main([*base, "--out", str(tmp_path / "o3"), "--k-anonymity", "3", "--resume"]) == 0


def test_recode_values():
    assert recode("PatientAge", "043Y", 1) == "040Y"
    assert recode("PatientAge", "043Y", 2) == "040Y"
    assert recode("PatientAge", "059Y", 3) == "040Y"
    assert recode("PatientAge", "097Y", 1) == "090Y"  # 90 and over: one band
    assert recode("PatientAge", "018M", 1) == "000Y"
    assert recode("PatientAge", "043Y", 4) == ""
    assert recode("PatientAge", "abc", 1) == ""
    assert recode("PatientAge", "043Y", 0) == "043Y"
    assert recode("PatientSize", "1.70", 1) == "1.725"
    assert recode("PatientSize", "1.749", 1) == "1.725"
    assert recode("PatientSize", "1.75", 2) == "1.75"
    assert recode("PatientWeight", "72.3", 1) == "72.5"
    assert recode("PatientWeight", "72.3", 3) == "70"
    assert recode("PatientSex", "F", 1) == ""


def test_choose_suppresses_the_outliers_within_the_budget():
    # 200 patients aged 40 to 79, two or three of each age and sex, in classes of 10 or 15 at
    # 5-year bands; and five outliers, each of an ethnic group no one else has: at 5-year bands
    # the outliers are suppressed (5 of 205 is within 5 %), and make a class of 5
    recs = [{"patient": f"P{i}", "qi": {"PatientSex": "FM"[i // 40 % 2], "PatientAge": f"{40 + i % 40:03d}Y"}}
            for i in range(200)]
    recs += [{"patient": f"ODD{i}", "qi": {"PatientSex": "F", "PatientAge": f"{40 + i:03d}Y", "EthnicGroup": f"E{i}"}}
             for i in range(5)]
    plan = choose(patients_of(recs), 5)
    assert plan.levels == (("PatientSex", 0), ("PatientAge", 1), ("EthnicGroup", 0))
    assert plan.suppressed == {f"ODD{i}" for i in range(5)}
    assert (plan.k_before, plan.k_after, plan.steps) == (1, 5, 1)
    # with four, their suppressed class would hold 4: the ethnic group goes instead
    plan = choose(patients_of(recs[:-1]), 5)
    assert plan.levels == (("PatientSex", 0), ("PatientAge", 1), ("EthnicGroup", 1))
    assert not plan.suppressed and plan.k_after >= 5


def test_choose_suppresses_the_few_and_keeps_the_empty_class_large_enough():
    # 40 patients alike but for a unique weight each, and one odd patient: weight goes
    recs = [{"patient": f"P{i}", "qi": {"PatientSex": "F", "PatientAge": "040Y", "PatientWeight": str(50 + i)}}
            for i in range(40)]
    recs.append({"patient": "ODD", "qi": {"PatientSex": "M", "PatientAge": "041Y", "PatientWeight": "70"}})
    plan = choose(patients_of(recs), 5)
    assert plan.level("PatientWeight") > 0
    # the odd one out (a man) is suppressed rather than every patient's sex: one of 41 is within
    # the budget (5 %), but the suppressed class of 1 would be smaller than 5, so sex goes instead
    assert plan.level("PatientSex") == 1 or "ODD" in plan.suppressed
    assert plan.k_after >= 5


def test_apply_refuses_what_the_pre_pass_could_not_read():
    from pydicom.dataset import Dataset

    from medcloak.errors import DeidentificationError

    plan = Plan(5, (("PatientAge", 1),), unread=frozenset({"/in/x.dcm"}))
    ds = Dataset()
    ds.PatientAge = "043Y"
    with pytest.raises(DeidentificationError):
        apply(ds, plan, "MCX", "/in/x.dcm")
    assert apply(ds, plan, "MCX", "/in/y.dcm") == {"k-anonymity-generalised": 1}
    assert ds.PatientAge == "040Y"
    sup = Plan(5, (("PatientAge", 0),), suppressed=frozenset({"MCX"}))
    assert apply(ds, sup, "MCX", "/in/y.dcm") == {"k-anonymity-generalised": 1, "k-anonymity-suppressed": 1}
    assert ds.PatientAge == ""


@pytest.mark.parametrize("profile", [None, "strict"])
def test_pre_pass_sees_what_the_run_releases(runs, profile, tmp_path):
    """The pre-pass's rows (headers read and walked, patients keyed as the run keys them) are
    the release's own, patient by patient, under the basic and the strict profile."""
    from medcloak.discover import discover
    from medcloak.generalise import read_patients
    from medcloak.pseudonym import Keyring
    from medcloak.rules.profile import load_profile

    _, plain, _ = runs
    options = ["retain-patient-characteristics", "retain-device-identity", "retain-long-modified-dates"]
    out = tmp_path / "out"
    assert main(["run", str(plain.parent / "in"), "--out", str(out), "--secret-file", str(plain.parent / "secret.key"),
                 "--workers", "1", "--quiet", *[f"--option={o}" for o in options],
                 *(["--profile", profile] if profile else [])]) == 0
    rows, unread = read_patients(discover([plain.parent / "in"]), load_profile(profile, options),
                                 Keyring(b"test-secret-0123456789abcdef"))
    assert not unread
    released = patients_of(release_table(out))
    # the pre-pass reads the quasi-identifiers of these options: InstitutionName is not one
    # without retain-institution-identity (the release carries its dummy)
    assert "InstitutionName" not in rows.attributes and "Manufacturer" in rows.attributes
    projected = {p: {a: row[a] for a in rows.attributes} for p, row in released.rows.items()}
    assert rows.rows == projected and rows.objects == released.objects
    assert "PatientAge" in released.carried
    # shifted dates give a study year: the report measures it; the run does not generalise it
    assert all("StudyYear" in r["qi"] for r in release_table(out))


def test_figures_on_the_releases_match_pandas(runs):
    """Every figure of medcloak.risk on both real releases (read back with pydicom), against
    pandas' group-by of the same table."""
    from test_risk import check

    from medcloak.review_record import QUASI_IDENTIFIERS

    _, plain, kanon = runs
    for out in (plain, kanon):
        objects = [{"patient": r["patient"], "qi": r["qi"]} for r in release_table(out)]
        check(objects, QUASI_IDENTIFIERS, 5, None)
        check(objects, QUASI_IDENTIFIERS, 3, "PatientSex")
        check(objects, ("PatientAge", "PatientWeight", "Manufacturer"), 2, "PatientSize")


def test_dry_run_prints_the_plan(runs, capsys):
    _, plain, _ = runs
    out = plain.parent / "dry"
    assert main(["run", str(plain.parent / "in"), "--out", str(out), "--secret-file", str(plain.parent / "secret.key"),
                 "--dry-run", "--k-anonymity", "5", *OPTIONS]) == 0
    assert "k-anonymity: every patient is in a class of at least 5" in capsys.readouterr().out
    assert not out.exists()


def test_nothing_carried_nothing_to_do():
    plan = choose(patients_of([{"patient": f"P{i}"} for i in range(6)]), 5)
    assert (plan.levels, plan.suppressed, plan.k_after) == ((), frozenset(), 6)
    assert choose(patients_of([]), 5).levels == ()


def test_report_section_tells_what_the_run_did(runs, tmp_path):
    """The report's risk section on the generalised release (records made here from the
    release itself), with what the run recorded."""
    from medcloak.report import ReportContext
    from medcloak.report.risk import build
    from medcloak.review_record import record

    _, _, kanon = runs
    audit = tmp_path / "audit"
    audit.mkdir()
    shutil.copy(kanon.parent / "kanon.audit" / "run.json", audit / "run.json")
    with (audit / "manifest.jsonl").open("w") as fh:
        for i, row in enumerate(release_table(kanon)):
            fh.write(json.dumps({"input": f"/in/{i}", "status": "ok",
                                 "review": record("dicom", patient=row["patient"], qi=row["qi"])}) + "\n")
    html = build(ReportContext(kanon, audit, tmp_path / "r", k=5)).html
    assert "0 of 30 patients (0.0 %) are in classes smaller than k=5" in html
    assert "The run generalised the kept characteristics to k=5" in html and "20-year bands" in html


@st.composite
def cohorts(draw):
    n = draw(st.integers(5, 60))
    recs = []
    for p in range(n):
        qi = {"PatientSex": draw(st.sampled_from(["F", "M", ""])),
              "PatientAge": draw(st.sampled_from(["", "abc", "011M"] + [f"{a:03d}Y" for a in range(18, 100, 3)])),
              "PatientWeight": draw(st.sampled_from(["", "55.5", "61", "70.25", "88", "140"])),
              "BodyPartExamined": draw(st.sampled_from(["HEAD", "CHEST", ""]))}
        for _ in range(draw(st.integers(1, 2))):  # a second object, at times with another age
            recs.append({"patient": f"P{p}", "qi": dict(qi)})
            qi["PatientAge"] = draw(st.sampled_from([qi["PatientAge"], "045Y"]))
    return recs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cohorts(), st.integers(2, 5), st.sampled_from([0.05, 0.2, 0.5]))
def test_any_plan_is_k_anonymous_by_pandas(recs, k, budget):
    """Whatever the cohort, the plan's release (values recoded, the suppressed emptied), grouped
    by pandas one row per patient, has no class smaller than k, and suppresses within budget."""
    from medcloak.generalise import LADDERS

    patients = patients_of(recs)
    plan = choose(patients, k, budget=budget)
    assert len(plan.suppressed) <= budget * len(patients.rows)
    rows = []
    for rec in recs:
        out = {}
        for attr, level in plan.levels:
            value = rec["qi"].get(attr, "")
            out[attr] = "" if rec["patient"] in plan.suppressed else recode(attr, value, level)
        rows.append({"patient": rec["patient"], "qi": out})
    assert pandas_k(rows, tuple(a for a, _ in plan.levels)) >= k
    assert plan.k_after == pandas_k(rows, tuple(a for a, _ in plan.levels))
    assert all(0 <= lvl <= len(LADDERS[a]) for a, lvl in plan.levels)


def test_a_class_thinned_by_quarantine_is_told(tmp_path, secret_file, capsys):
    """A patient whose every object is quarantined leaves the class the pre-pass counted them
    in: the release says k-anonymity was not met, and the command warns."""
    plant(tmp_path / "in", patients=12)
    for path in (tmp_path / "in" / "p000").iterdir():  # patient 0's objects: burned-in text, not cleaned
        ds = pydicom.dcmread(path)
        ds.BurnedInAnnotation = "YES"
        ds.save_as(path)
    out = tmp_path / "out"
    code = main(["run", str(tmp_path / "in"), "--out", str(out), "--secret-file", str(secret_file), "--workers", "1",
                 "--quiet", *OPTIONS, "--k-anonymity", "3"])
    assert code == 1
    doc = json.loads((out / "DEIDENTIFICATION.json").read_text())["k_anonymity"]
    assert doc["smallest_class_after"] >= 3 and doc["smallest_class_released"] < 3
    assert doc["patients_below_k_released"] == doc["smallest_class_released"]
    assert "k-anonymity NOT met" in (out / "DEIDENTIFICATION.txt").read_text()
    assert "classes smaller than --k-anonymity's K" in capsys.readouterr().err
    record = json.loads((tmp_path / "out.audit" / "run.json").read_text())["k_anonymity"]
    assert record["smallest_class_released"] == doc["smallest_class_released"]
    risk = measure(patients_of(release_table(out)), QUASI, 3)
    assert risk.k == doc["smallest_class_released"] and risk.patients == 11


def test_released_figures_when_all_is_released(runs):
    _, _, kanon = runs
    doc = json.loads((kanon / "DEIDENTIFICATION.json").read_text())["k_anonymity"]
    assert doc["smallest_class_released"] == doc["smallest_class_after"] and doc["patients_below_k_released"] == 0


def test_pre_pass_leaves_out_a_dicomdir(tmp_path):
    """A media directory is never released: it is no patient of the pre-pass either."""
    from medcloak.discover import discover
    from medcloak.generalise import read_patients
    from medcloak.pseudonym import Keyring
    from medcloak.rules.profile import load_profile

    shutil.copy(pydicom_test_files() / "dicomdirtests" / "DICOMDIR", tmp_path / "DICOMDIR")
    plant(tmp_path, patients=2)
    rows, unread = read_patients(discover([tmp_path]), load_profile(None, ["retain-patient-characteristics"]),
                                 Keyring(b"test-secret-0123456789abcdef"))
    assert len(rows.rows) == 2 and not unread
