"""medcloak.risk against pandas: the same figures from a group-by of the same table (one row per
object, grouped into patients, then into classes), on random tables and on edge cases."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcloak.review_record import QUASI_IDENTIFIERS, record
from medcloak.risk import MAX_SUBSET, Patients, measure, measure_records

pd = pytest.importorskip("pandas")


def reference(objects: list[dict], quasi: tuple[str, ...], threshold: int, sensitive: str | None) -> dict:
    """The figures by pandas: objects -> patients (each attribute the sorted set of its values,
    a missing value the empty string; an object without a patient key is a patient of its own,
    unless it carries no value at all: then it is of nobody) -> classes (group-by over the
    carried quasi-identifiers)."""
    attrs = list(dict.fromkeys(quasi + ((sensitive,) if sensitive else ())))
    rows = []
    for i, obj in enumerate(objects):
        qi = obj.get("qi") or {}
        row = {"patient": obj.get("patient") or f"\x00lone{i}"}
        for a in attrs:
            v = qi.get(a)
            row[a] = "" if v is None else str(v).strip()
        if not obj.get("patient") and not any(row[a] for a in attrs):
            continue  # a dataset's description: no patient
        rows.append(row)
    df = pd.DataFrame(rows, columns=["patient", *attrs])
    used = [q for q in dict.fromkeys(quasi) if q != sensitive and (df[q] != "").any()]
    if df.empty:
        return {"patients": 0, "k": 0, "below": 0, "classes": 0, "hist": {}, "l_min": None, "l_hist": {},
                "uniques": {}, "used": tuple(used)}
    per = df.groupby("patient")[attrs].agg(lambda s: "|".join(sorted(set(s)))).reset_index()
    per["_one"] = 0
    keys = used or ["_one"]
    sizes = per.groupby(keys)["patient"].transform("size")
    classes = per.groupby(keys).size()
    out = {
        "patients": len(per), "k": int(classes.min()), "below": int((sizes < threshold).sum()),
        "classes": len(classes), "hist": {int(s): int(c) for s, c in classes.value_counts().items()},
        "used": tuple(used),
    }
    if sensitive:
        ls = per.groupby(keys)[sensitive].nunique()
        out["l_min"] = int(ls.min())
        out["l_hist"] = {int(v): int(c) for v, c in ls.value_counts().items()}
    else:
        out["l_min"], out["l_hist"] = None, {}
    uniques = {}
    for size in range(1, min(MAX_SUBSET, len(used)) + 1):
        for sub in combinations(used, size):
            uniques[sub] = int((per.groupby(list(sub))["patient"].transform("size") == 1).sum())
    out["uniques"] = uniques
    return out


def check(objects: list[dict], quasi: tuple[str, ...], threshold: int, sensitive: str | None) -> None:
    got = measure_records(objects, quasi, threshold, sensitive)
    ref = reference(objects, quasi, threshold, sensitive)
    assert got.patients == ref["patients"]
    assert got.quasi == ref["used"]
    assert got.k == ref["k"]
    assert got.below == ref["below"]
    assert got.classes == ref["classes"]
    assert {s: m for s, m, _ in got.histogram} == ref["hist"]
    assert all(p == s * m for s, m, p in got.histogram)
    assert got.l_min == ref["l_min"]
    assert dict(got.l_histogram) == ref["l_hist"]
    assert dict(got.uniques) == ref["uniques"]
    # minimal subsets: those that single out someone and contain no smaller such subset
    singling = [s for s, u in ref["uniques"].items() if u]
    expect = {s for s in singling if not any(set(t) < set(s) for t in singling)}
    assert {s for s, _ in got.minimal} == expect


VALUES = {
    "PatientSex": ["F", "M", "O", None, ""],
    "PatientAge": ["040Y", "041Y", "065Y", "003M", None],
    "PatientSize": ["1.7", "1.82", None],
    "PatientWeight": ["70", "82.5", "101", None],
    "BodyPartExamined": ["CHEST", "HEAD", None],
    "EthnicGroup": [None],  # never carried: not a quasi-identifier of the release
}


@st.composite
def tables(draw):
    n_patients = draw(st.integers(1, 12))
    objects = []
    for _ in range(draw(st.integers(0, 40))):
        qi = {a: draw(st.sampled_from(v)) for a, v in VALUES.items()}
        patient = draw(st.one_of(st.none(), st.integers(0, n_patients - 1).map(lambda i: f"P{i}")))
        objects.append({"patient": patient, "qi": qi})
    return objects


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(2, 6), st.sampled_from([None, "PatientSex", "BodyPartExamined", "EthnicGroup"]))
def test_random_tables_match_pandas(objects, threshold, sensitive):
    check(objects, tuple(VALUES), threshold, sensitive)


def test_patients_not_objects():
    """Five objects of one patient and one of another, alike: two patients in a class of 2, both
    below k=5 (counted per object, the class would hold 6)."""
    objects = [{"patient": "A", "qi": {"PatientSex": "F", "PatientAge": "040Y"}}] * 5
    objects.append({"patient": "B", "qi": {"PatientSex": "F", "PatientAge": "040Y"}})
    r = measure_records(objects, threshold=5)
    assert (r.patients, r.objects, r.k, r.below, r.classes) == (2, 6, 2, 2, 1)
    check(objects, QUASI_IDENTIFIERS, 5, None)


def test_a_patient_seen_with_two_values_is_the_pair():
    objects = [
        {"patient": "A", "qi": {"PatientAge": "040Y"}}, {"patient": "A", "qi": {"PatientAge": "041Y"}},
        {"patient": "B", "qi": {"PatientAge": "040Y"}}, {"patient": "C", "qi": {"PatientAge": "041Y"}},
    ]
    r = measure_records(objects, threshold=2)
    assert (r.patients, r.classes, r.k, r.below) == (3, 3, 1, 3)
    check(objects, QUASI_IDENTIFIERS, 2, None)


def test_missing_is_a_category():
    objects = [{"patient": "A", "qi": {"PatientAge": "040Y"}}, {"patient": "B", "qi": {}},
               {"patient": "C", "qi": {"PatientAge": " "}}, {"patient": "D", "qi": {"PatientAge": "040Y"}},
               {"patient": "D"}]
    r = measure_records(objects, threshold=2)
    # A: {040Y}; B, C: {missing}; D: {missing, 040Y}
    assert sorted((s, m) for s, m, _ in r.histogram) == [(1, 2), (2, 1)]
    check(objects, QUASI_IDENTIFIERS, 2, None)


def test_edge_cases():
    empty = measure_records([], threshold=5)
    assert (empty.patients, empty.k, empty.below, empty.quasi) == (0, 0, 0, ())
    assert "nothing to measure" in empty.verdict()
    one = [{"patient": "A", "qi": {"PatientSex": "F"}}]
    r = measure_records(one, threshold=5)
    assert (r.patients, r.k, r.below, r.unique_all) == (1, 1, 1, 1)
    check(one, QUASI_IDENTIFIERS, 5, None)
    same = [{"patient": f"P{i}", "qi": {"PatientSex": "F", "PatientAge": "040Y"}} for i in range(7)]
    r = measure_records(same, threshold=5, sensitive="PatientSex")
    assert (r.k, r.below, r.classes, r.l_min, r.uniques[0][1], r.minimal) == (7, 0, 1, 1, 0, ())
    # the sensitive attribute is no quasi-identifier, even when asked for as one
    assert "PatientSex" not in r.quasi
    check(same, QUASI_IDENTIFIERS, 5, "PatientSex")
    nothing = [{"patient": f"P{i}"} for i in range(3)]
    r = measure_records(nothing, threshold=5)
    assert (r.quasi, r.k, r.classes) == ((), 3, 1)
    assert "none of the quasi-identifiers" in r.verdict()
    check(nothing, QUASI_IDENTIFIERS, 5, None)


def test_records_made_by_review_record():
    recs = [record("dicom", patient=f"P{i % 4}", qi={"PatientSex": "FM"[i % 2], "PatientAge": f"0{40 + i % 3}Y"})
            for i in range(24)]
    r = measure_records(recs, threshold=3, sensitive="PatientAge")
    check(recs, QUASI_IDENTIFIERS, 3, "PatientAge")
    assert r.quasi == ("PatientSex",) and r.absent[0] == "PatientSize"
    assert "in classes smaller than k=3" in r.verdict()


def test_minimal_subsets_single_out():
    objects = [
        {"patient": "A", "qi": {"PatientSex": "F", "PatientAge": "040Y", "BodyPartExamined": "HEAD"}},
        {"patient": "B", "qi": {"PatientSex": "F", "PatientAge": "050Y", "BodyPartExamined": "HEAD"}},
        {"patient": "C", "qi": {"PatientSex": "M", "PatientAge": "040Y", "BodyPartExamined": "HEAD"}},
        {"patient": "D", "qi": {"PatientSex": "M", "PatientAge": "050Y", "BodyPartExamined": "HEAD"}},
    ]
    r = measure_records(objects, threshold=2)
    # no attribute alone singles anyone out; sex and age together single out all four
    assert dict(r.minimal) == {("PatientSex", "PatientAge"): 4}
    check(objects, QUASI_IDENTIFIERS, 2, None)


def test_patients_accumulator_bounded_by_patients():
    p = Patients(("PatientSex",))
    for i in range(10_000):
        p.add(f"P{i % 50}", {"PatientSex": "F"})
    assert len(p.rows) == 50 and p.objects == 10_000
    assert measure(p, ("PatientSex",)).k == 50


def write_manifest(audit, lines):
    import json

    audit.mkdir(parents=True, exist_ok=True)
    with (audit / "manifest.jsonl").open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
        fh.write('{"input": "cut sho')  # a line cut short is skipped


def test_report_section(tmp_path):
    from medcloak.report import ReportContext
    from medcloak.report.risk import build

    lines = []
    for i in range(340):
        patient = f"P{i // 2:03d}"  # two objects each: 170 patients
        age = f"0{40 + (i // 2) % 17:02d}Y"
        lines.append({"input": f"/in/{i}", "status": "ok", "outputs": [f"{patient}/x/{i}.dcm"],
                      "review": record("dicom", patient=patient, qi={"PatientAge": age, "PatientSex": "FM"[(i // 2) % 2]})})
    lines.append({"input": "/in/q", "status": "quarantined", "reason": "x",
                  "review": record("dicom", patient="Q", qi={"PatientAge": "099Y"})})
    lines.append({"input": "/in/copy", "status": "ok", "outputs": ["P000/x/0.dcm"]})
    write_manifest(tmp_path / "a", lines)
    ctx = ReportContext(tmp_path / "r", tmp_path / "a", tmp_path / "out", k=5, sensitive="<b>PatientSex")
    section = build(ctx)
    ref = reference([ln["review"] for ln in lines if ln["status"] == "ok" and "review" in ln],
                    QUASI_IDENTIFIERS, 5, None)
    assert ref["patients"] == 170
    # 17 ages x 2 sexes: 34 classes of 5 patients: none below k=5
    assert f"{ref['below']} of 170 patients (0.0 %) are in classes smaller than k=5" in section.html
    assert "<b>PatientSex" not in section.html and "&lt;b&gt;PatientSex" in section.html
    assert "1 released objects carry no review record" in section.html
    assert section.key == "risk" and ctx.notes["risk"]
    ctx = ReportContext(tmp_path / "r", tmp_path / "a", tmp_path / "out", k=6, quasi=("PatientAge",))
    section = build(ctx)
    assert "0 of 170 patients (0.0 %) are in classes smaller than k=6" in section.html
    ctx = ReportContext(tmp_path / "r", tmp_path / "a", tmp_path / "out", k=11)
    assert "170 of 170 patients (100.0 %) are in classes smaller than k=11" in build(ctx).html


def test_class_ids_of_wide_columns_do_not_overflow():
    """Columns whose mixed-radix key would pass 64 bits: the same classes as pandas' groups."""
    import numpy as np

    from medcloak.risk import class_ids

    rng = np.random.default_rng(0)
    n = 3000
    cols = [rng.integers(0, 1 << 20, n) for _ in range(4)] + [rng.integers(0, 2, n) for _ in range(3)]
    cols[5][:] = cols[0] % 2  # some rows alike on everything
    cols[0][n // 2:] = cols[0][: n - n // 2]
    for c in cols[1:5]:
        c[n // 2:] = c[: n - n // 2]
    ids = class_ids(cols, n)
    ref = pd.DataFrame({f"c{i}": c for i, c in enumerate(cols)}).groupby([f"c{i}" for i in range(len(cols))]).ngroup()
    assert len(set(ids.tolist())) == ref.nunique()
    pairs = pd.DataFrame({"a": ids, "b": ref.to_numpy()}).drop_duplicates()
    assert len(pairs) == ref.nunique()  # one to one


def test_objects_of_nobody_are_no_patients() -> None:
    """A dataset's description (no patient key, no characteristic) is nobody; an object without a
    patient key that carries characteristics is someone, alone in a row of their own."""
    objects = [{"patient": "P1", "qi": {"PatientSex": "F"}}, {"patient": "P2", "qi": {"PatientSex": "F"}},
               {"patient": None, "qi": {}}, {"qi": None}]
    r = measure_records(objects, ("PatientSex",), threshold=2)
    assert (r.patients, r.unattached, r.k, r.below) == (2, 2, 2, 0)
    r = measure_records([*objects, {"patient": None, "qi": {"PatientSex": "M"}}], ("PatientSex",), threshold=2)
    assert (r.patients, r.without_patient, r.k, r.below) == (3, 1, 1, 1)
