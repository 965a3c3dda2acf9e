"""The report's attribute x action table (medcloak.report.attributes): counts equal to a naive
count over the manifest, sorted by total, capped with a note, names inert, sequence paths whole."""

from __future__ import annotations

import html
import json
import random
import re
from collections import Counter

from manifests import context, entry, real_release

from medcloak.report import ReportContext, store
from medcloak.report import attributes as section
from medcloak.review_record import ACTIONS

ATTRS = ["PatientName", "StudyDate", "StudyDescription", "Modality", "ProcedureCodeSequence>CodeMeaning",
         "RequestAttributesSequence>ProcedureCodeSequence>CodeMeaning", "(0019,xx10) SIEMENS MR HEADER"]


def random_entries(seed: int, n: int) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        changed = {a: rnd.choice(ACTIONS[:-1]) for a in rnd.sample(ATTRS, 3)}
        kept = rnd.sample(ATTRS, 3)  # some also changed: those count as changed
        out.append(entry(i, status=rnd.choice(["ok", "ok", "quarantined"]), changed=changed, kept=kept))
    return out


def naive(ctx: ReportContext) -> Counter:
    counts: Counter = Counter()
    with (ctx.audit / "manifest.jsonl").open(encoding="utf-8") as fh:
        for raw in fh:
            line = json.loads(raw)
            if line["status"] != "ok":
                continue
            review = line["review"]
            for attr in review.get("kept", []):
                if attr not in review.get("changed", {}):
                    counts[attr, "kept"] += 1
            for attr, action in review.get("changed", {}).items():
                counts[attr, action if action in ACTIONS else "other"] += 1
    return counts


def table(page: str) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """The table's column names and rows (attribute, counts), as shown."""
    head = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', page)
    rows = [(html.unescape(name), [int(n.replace(",", "")) for n in re.findall(r"<td[^>]*>([\d,]+)</td>", cells)])
            for name, cells in re.findall(r'<tr><th scope="row">([^<]*)</th>(.*?)</tr>', page)]
    return head, rows


def test_counts_equal_a_naive_count_sorted_by_total(tmp_path):
    ctx = context(tmp_path, random_entries(1, 300))
    page = section.build(ctx).html
    head, rows = table(page)
    assert head[1:7] == list(ACTIONS) and head[-1].startswith("total")
    expected = naive(ctx)
    shown = {(attr, a): n for attr, counts in rows if attr != "all attributes"
             for a, n in zip(ACTIONS, counts) if n}
    assert shown == dict(expected)
    body = [(attr, counts) for attr, counts in rows if attr != "all attributes"]
    assert all(counts[-1] == sum(counts[:-1]) for _, counts in body)
    totals = [counts[-1] for _, counts in body]
    assert totals == sorted(totals, reverse=True)
    assert [c for a, c in rows if a == "all attributes"] == [
        [sum(n for (_, a), n in expected.items() if a == act) for act in ACTIONS] + [sum(expected.values())]]
    # sequence paths stay whole: the same keyword in two sequences is two rows
    assert {"ProcedureCodeSequence>CodeMeaning", "RequestAttributesSequence>ProcedureCodeSequence>CodeMeaning"} <= {
        a for a, _ in body}


def test_counts_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "BATCH", 2)
    ctx = context(tmp_path, random_entries(2, 100))
    with store.pool(ctx.out) as db:
        section.pool_release(ctx, db)
        pooled = {(row[0], a): n for row in db.execute(f"SELECT attr, {', '.join(section.COLUMNS)} FROM acts")
                  for a, n in zip(section.COLUMNS, row[1:]) if n}
    assert pooled == dict(naive(ctx))


def test_unknown_actions_show_as_other_and_unreviewed_objects_are_said(tmp_path):
    ctx = context(tmp_path, [entry(0, changed={"StudyDate": "mangled"}), entry(1, kept=["Modality"]), entry(2)])
    page = section.build(ctx).html
    head, rows = table(page)
    assert "other" in head and ("StudyDate", [0, 0, 0, 0, 0, 0, 1, 1]) in rows
    assert "1 released objects have no review record" in page
    head, _ = table(section.build(context(tmp_path / "b", [entry(0, kept=["Modality"])])).html)
    assert "other" not in head


def test_rows_capped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(section, "MAX_ROWS", 3)
    entries = [entry(i, kept=[f"Attr{j}" for j in range(i % 6, 6)]) for i in range(60)]
    ctx = context(tmp_path, entries)
    _, rows = table(section.build(ctx).html)
    assert [a for a, _ in rows] == ["Attr5", "Attr4", "Attr3", "all attributes"]
    assert ctx.notes["attributes"] == ["only the 3 attributes acted on in the most objects are shown, of 6"]


def test_names_are_inert(tmp_path):
    ctx = context(tmp_path, [entry(0, kept=['(0009,xx10) <script>alert(1)</script>', 'a"b\u202e'])])
    page = section.build(ctx).html
    assert "<script" not in page and "\u202e" not in page and "&lt;script&gt;" in page


def test_a_real_release(tmp_path_factory):
    release, audit = real_release(tmp_path_factory)
    ctx = ReportContext(release, audit, tmp_path_factory.mktemp("report") / "report")
    head, rows = table(section.build(ctx).html)
    expected = naive(ctx)
    shown = {(attr, a): n for attr, counts in rows if attr != "all attributes"
             for a, n in zip(head[1:-1], counts) if n}
    names = {attr for attr, _ in rows if attr != "all attributes"}
    assert shown == {key: n for key, n in expected.items() if key[0] in names}
    every = {attr for attr, _ in expected}
    assert names <= every and (names == every) == (not ctx.notes.get("attributes"))
    assert not [p for p in ctx.out.iterdir() if p.name.startswith(".pool-")]
