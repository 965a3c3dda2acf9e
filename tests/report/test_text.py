"""The report's pooled text review (medcloak.report.text): exact counts against a naive count
over the manifest, rare (then flagged) first, caps said in the notes, links that open released
files, inert values, the pool removed, and memory and page size bounded however many objects."""

from __future__ import annotations

import html
import json
import os
import random
import re
import tracemalloc
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from manifests import context, entry, real_release

from medcloak.report import ReportContext, store
from medcloak.report import text as section
from medcloak.report.flags import person_name_attribute


class Rows(HTMLParser):
    """The value rows of the section's page: {attribute: [(n, value, flag, [href, ...], more)]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[int, str, str, list[str], str]]] = {}
        self.attr: str | None = None
        self.cell: list[str] | None = None
        self.cells: list[str] = []
        self.hrefs: list[str] = []
        self.in_h3 = self.in_small = False

    def handle_starttag(self, tag, attrs):
        if tag == "h3":
            self.in_h3, self.attr = True, ""
        elif tag == "small":
            self.in_small = True
        elif tag == "tr":
            self.cells, self.hrefs = [], []
        elif tag == "td":
            self.cell = []
        elif tag == "a" and self.cell is not None:
            self.hrefs.append(dict(attrs)["href"])

    def handle_endtag(self, tag):
        if tag == "h3":
            self.in_h3 = False
            self.attr = self.attr.strip()
            self.rows[self.attr] = []
        elif tag == "small":
            self.in_small = False
        elif tag == "td" and self.cell is not None:
            self.cells.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.attr and len(self.cells) == 4:
            n, value, flag, links = self.cells
            more = re.search(r"and ([\d,]+) more", links)
            self.rows[self.attr].append((int(n.replace(",", "")), value, flag, list(self.hrefs),
                                         more.group(1) if more else ""))

    def handle_data(self, data):
        if self.in_h3 and not self.in_small:
            self.attr += data
        if self.cell is not None:
            self.cell.append(data)


def rows_of(page: str) -> dict[str, list[tuple[int, str, str, list[str], str]]]:
    parser = Rows()
    parser.feed(page)
    return parser.rows


def naive(ctx: ReportContext) -> Counter:
    """How many released objects carry each (attribute, value), straight from the manifest."""
    counts: Counter = Counter()
    with (ctx.audit / "manifest.jsonl").open(encoding="utf-8") as fh:
        for raw in fh:
            line = json.loads(raw)
            if line["status"] == "ok" and "review" in line:
                for attr, values in line["review"].get("text", {}).items():
                    counts.update((attr, v) for v in set(values))
    return counts


def random_entries(seed: int, n: int) -> list[dict]:
    rnd = random.Random(seed)
    words = ["CHEST", "HEAD^ROUTINE", "DOE^JOHN", "T1 MPRAGE SAG", "2023-04-05", "Axial 5.0mm", "x", "MRN 1234567"]
    out = []
    for i in range(n):
        text = {attr: [rnd.choice(words) for _ in range(rnd.randint(1, 3))]
                for attr in rnd.sample(["StudyDescription", "SeriesDescription", "ProtocolName",
                                        "RequestAttributesSequence>ScheduledProcedureStepDescription"], 2)}
        text["ImageComments"] = [f"rare {rnd.randint(0, n)}"]
        out.append(entry(i, status=rnd.choice(["ok", "ok", "ok", "quarantined"]), text=text))
    return out


def test_counts_equal_a_naive_count_over_the_manifest(tmp_path):
    ctx = context(tmp_path, random_entries(1, 400))
    with store.pool(ctx.out) as db:
        released, unreviewed = section.pool_release(ctx, db)
        pooled = {(a, v): n for a, v, n in db.execute("SELECT attr, value, n FROM vals")}
        objects = dict(db.execute("SELECT attr, objects FROM attrs"))
    expected = naive(ctx)
    assert pooled == dict(expected)
    assert released == sum(1 for e in ctx.entries() if e["status"] == "ok") and unreviewed == 0
    assert objects["ImageComments"] == released
    # the page shows every value under the caps, with the same counts
    page = section.build(ctx).html
    shown = {(attr, value): n for attr, rows in rows_of(page).items() for n, value, *_ in rows}
    assert shown == dict(expected)


@pytest.mark.parametrize("batch", [7, store.BATCH])
def test_counts_across_batches_and_links_bounded(tmp_path, monkeypatch, batch):
    """Counts add up when the pool is flushed to the database many times (or once), and each
    value keeps a bounded number of links however many objects carry it."""
    monkeypatch.setattr(store, "BATCH", batch)
    ctx = context(tmp_path, random_entries(2, 300))
    with store.pool(ctx.out) as db:
        section.pool_release(ctx, db)
        pooled = {(a, v): n for a, v, n in db.execute("SELECT attr, value, n FROM vals")}
        links = [(n, nlinks, stored) for n, nlinks, stored in db.execute("SELECT n, nlinks, links FROM vals")]
    assert pooled == dict(naive(ctx))
    assert max(n for n, _, _ in links) > 2 * section.MAX_LINKS
    for n, nlinks, stored in links:
        assert nlinks == min(n, section.MAX_LINKS)
        assert min(n, section.MAX_LINKS) <= len(stored.split("\n")) < 2 * section.MAX_LINKS


def test_rare_values_first_and_flagged_first_within_a_tie(tmp_path):
    entries = []
    for i in range(10):
        entries.append(entry(i, text={"StudyDescription": ["CHEST"]}))
    for i in range(10, 14):
        entries.append(entry(i, text={"StudyDescription": ["HEAD^ROUTINE"]}))
    entries.append(entry(14, text={"StudyDescription": ["ABDOMEN"]}))
    entries.append(entry(15, text={"StudyDescription": ["DOE^JOHN"]}))
    entries.append(entry(16, text={"StudyDescription": ["Brain"]}))
    rows = rows_of(section.build(context(tmp_path, entries)).html)["StudyDescription"]
    assert [(n, v, f) for n, v, f, *_ in rows] == [
        (1, "DOE^JOHN", "name"), (1, "ABDOMEN", ""), (1, "Brain", ""), (4, "HEAD^ROUTINE", ""), (10, "CHEST", "")]


def test_flagged_counts_per_attribute_at_the_top_and_attributes_with_flags_first(tmp_path):
    entries = [entry(0, text={"AAA": ["clean"], "ZZZ": ["John Smith", "2023-04-05", "clean"]}),
               entry(1, text={"AAA": ["CHEST"], "ZZZ": ["clean"]})]
    page = section.build(context(tmp_path, entries)).html
    top = page[: page.index("<h3")]
    assert re.search(r'<tr class="flagged"><td><a href="#text-0">ZZZ</a></td><td class="n">2</td>'
                     r'<td class="n">3</td><td class="n">2</td></tr>', top)
    assert re.search(r'<tr><td><a href="#text-1">AAA</a></td><td class="n">2</td><td class="n">2</td>'
                     r'<td class="n">0</td></tr>', top)
    assert list(rows_of(page)) == ["ZZZ", "AAA"]


def test_caps_keep_the_rarest_the_most_common_and_flagged_values_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setattr(section, "MAX_RARE", 10)
    monkeypatch.setattr(section, "MAX_COMMON", 2)
    monkeypatch.setattr(section, "MAX_FLAGGED", 3)
    monkeypatch.setattr(section, "MAX_ATTRIBUTES", 2)
    entries, i = [], 0
    for value in range(40):  # value v is carried by v + 1 objects; four of them look like dates
        label = f"2023-04-{value + 1:02d}" if value in (20, 21, 22, 23) else f"value {value}"
        for _ in range(value + 1):
            entries.append(entry(i, text={"SeriesDescription": [label], f"Other{i % 3}": ["CHEST"]}))
            i += 1
    entries.append(entry(i, text={"Other0": ["John Smith"]}))
    ctx = context(tmp_path, entries)
    page = section.build(ctx).html
    rows = rows_of(page)
    assert list(rows) == ["SeriesDescription", "Other0"]  # the most flagged attributes first, two of four
    series = [(n, v) for n, v, *_ in rows["SeriesDescription"]]
    assert series == ([(v + 1, f"value {v}") for v in range(10)]
                      + [(21, "2023-04-21"), (22, "2023-04-22"), (23, "2023-04-23")]
                      + [(39, "value 38"), (40, "value 39")])
    assert "25 values carried by more objects than the above" in page
    notes = ctx.notes["text"]
    assert any("only 2 of 4 attributes are listed" in n and "hold 0 flagged values" in n for n in notes)
    assert any("1 attributes have more than 12 distinct values: the 10 rarest, the 2 most common and up to 3 "
               "more flagged" in n for n in notes)
    assert any("at most 5 of the objects" in n for n in notes)


def test_a_page_budget_lists_the_attributes_whose_values_do_not_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(section, "MAX_ROWS", 10)
    entries = [entry(0, text={"A": ["John Smith", "x", "y"], "B": [f"b{i}" for i in range(5)],
                              "C": [f"c{i}" for i in range(8)], "D": ["d"]})]
    ctx = context(tmp_path, entries)
    page = section.build(ctx).html
    assert list(rows_of(page)) == ["A", "B", "D"]
    assert re.search(r"<td>C <small>\(values not shown\)</small></td><td class=\"n\">1</td><td class=\"n\">8</td>",
                     page)
    assert any("the values of 1 attributes are not shown (the page shows at most 10 values" in n
               for n in ctx.notes["text"])


def test_links_open_released_files_and_say_how_many_more(tmp_path):
    entries = [entry(i, text={"StudyDescription": ["CHEST" if i < 8 else f"rare {i}"]}) for i in range(10)]
    entries.append(entry(10, status="quarantined"))
    ctx = context(tmp_path, entries, files=True)
    rows = rows_of(section.build(ctx).html)["StudyDescription"]
    for n, _, _, hrefs, more in rows:
        assert len(hrefs) == min(n, section.MAX_LINKS)
        assert more == (f"{n - section.MAX_LINKS}" if n > section.MAX_LINKS else "")
        for href in hrefs:
            assert not href.startswith(("/", "file:")) and "://" not in href
            target = (ctx.out / href).resolve()
            assert target.is_file() and target.is_relative_to(ctx.release.resolve())
    assert [r[3] for r in rows if r[1] == "rare 9"] == [["../../release/P2/S/o9.dcm"]]


def test_values_and_attribute_names_are_inert(tmp_path):
    nasty = "<script>alert(1)</script>"
    attr = '(0009,xx10) "><img src=x onerror=alert(2)>'
    entries = [entry(0, text={"StudyDescription": [nasty, "a\u202egnp.exe", "line\nbreak"], attr: ["x&y"]})]
    page = section.build(context(tmp_path, entries)).html
    assert "<script" not in page and "<img" not in page and "\u202e" not in page
    assert html.escape(nasty) in page and "&quot;&gt;&lt;img" in page and "x&amp;y" in page
    assert "a\\u202egnp.exe" in page and "line\u21b5break" in page


def test_objects_without_a_review_record_are_said(tmp_path):
    entries = [entry(0, text={"StudyDescription": ["CHEST"]}), entry(1), entry(2)]
    ctx = context(tmp_path, entries)
    page = section.build(ctx).html
    assert "2 released objects have no review record" in page
    assert any("2 released objects have no review record" in n for n in ctx.notes["text"])


def test_the_pool_is_removed_even_when_building_fails(tmp_path, monkeypatch):
    ctx = context(tmp_path, random_entries(3, 20))
    with store.pool(ctx.out) as db:  # inside the (private) report folder, temporary tables in memory
        assert Path(db.execute("PRAGMA database_list").fetchone()[2]).parent == ctx.out
        assert db.execute("PRAGMA temp_store").fetchone()[0] == 2
    section.build(ctx)
    assert not [p for p in ctx.out.iterdir() if p.name.startswith(".pool-")]

    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(section, "kinds", boom)
    with pytest.raises(RuntimeError):
        section.build(ctx)
    assert not [p for p in ctx.out.iterdir() if p.name.startswith(".pool-")]


def letters(i: int) -> str:
    """``i`` written in letters (a value of its own that looks like no ID)."""
    out = ""
    while True:
        i, r = divmod(i, 26)
        out += chr(97 + r)
        if not i:
            return out


def many_entries(path: Path, n: int) -> None:
    """A manifest of ``n`` released objects, each with a value of its own and a common one."""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"input": f"/in/{i}", "status": "ok", "outputs": [f"P/S/o{i}.dcm"],
                                 "review": {"format": "dicom", "text": {
                                     "ImageComments": [f"comment {letters(i)} of the release"],
                                     "StudyDescription": ["CHEST" if i % 2 else "HEAD^ROUTINE"]}}}) + "\n")


def load_everything(ctx: ReportContext) -> int:
    """What the pool must not be: every (attribute, value) with its count and links in one dict."""
    counts: dict[tuple[str, str], list] = {}
    for line in ctx.entries():
        for attr, values in line["review"]["text"].items():
            for value in values:
                slot = counts.setdefault((attr, value), [0, []])
                slot[0] += 1
                if len(slot[1]) < section.MAX_LINKS:
                    slot[1].append(line["outputs"][0])
    return len(counts)


#: a bound on traced memory that a release of any size stays under (about 10 MiB are used; SQLite's
#: own cache, which tracemalloc does not see, is bounded by store.CACHE_KIB)
MEMORY_BOUND = 32 * 2**20


def peak(function, *args) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_and_page_size_stay_bounded_for_200000_objects(tmp_path):
    ctx = context(tmp_path, [])
    many_entries(ctx.audit / "manifest.jsonl", 200_000)
    found, naive_peak = peak(load_everything, ctx)
    assert found == 200_002
    assert naive_peak > MEMORY_BOUND  # the bound is one a load-everything pool breaks
    person_name_attribute("PatientName")  # pydicom's dictionary, loaded once per process, is not the pool's
    built, pool_peak = peak(section.build, ctx)
    assert pool_peak < MEMORY_BOUND
    page = built.html
    assert len(page.encode()) < 300_000
    rows = rows_of(page)
    assert len(rows["ImageComments"]) == section.MAX_RARE + section.MAX_COMMON
    assert [n for n, *_ in rows["StudyDescription"]] == [100_000, 100_000]
    assert "199,795 values carried by more objects than the above" in page


def test_a_real_release(tmp_path_factory):
    """A real ``medcloak run`` over pydicom's test files and data_samples: counts as the manifest
    has them, every link opens a released file."""
    release, audit = real_release(tmp_path_factory)
    ctx = ReportContext(release, audit, tmp_path_factory.mktemp("report") / "report")
    page = section.build(ctx).html
    rows = rows_of(page)
    expected = Counter({(a, section.visible(v)): n for (a, v), n in naive(ctx).items()})
    shown = {(attr, value): n for attr, rs in rows.items() for n, value, *_ in rs}
    assert shown == dict(expected)  # every value is shown: the real release is under the caps
    for rs in rows.values():
        for n, _, _, hrefs, _ in rs:
            assert 1 <= len(hrefs) <= min(n, section.MAX_LINKS)
            assert all(os.path.isfile(ctx.out / h) for h in hrefs)
    # no person name is kept text: the profile replaces or empties every one, and the records
    # leave out the pseudonyms and dummies medcloak wrote (they would flood the review)
    names = [flag for attr, rs in rows.items() if person_name_attribute(attr) for _, _, flag, _, _ in rs]
    assert not names
