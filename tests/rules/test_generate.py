"""The committed rule data is exactly what the generator makes from the standard's tables."""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medcloak.rules import generate
from medcloak.rules.generate import DATA_DIR, SOURCE_DIR, build_all, render

#: The standard's machine-readable tables, as carried in the repository (see their SOURCES.md).
SOURCE = SOURCE_DIR
#: The same tables beside the repository, where a checkout has them (compared when present).
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ps315"
TABLES = ("ps315_table_E1-1_2025b.json", "ps315_safe_private_E3.10.csv", "tcia_private_tag_kb_2024.csv")
DATA_FILES = ("ps315_e1_1.json", "ps315_e3_10.json", "tcia_private.json")
CODES = {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
#: Table E.1-1 option columns (as named in the machine-readable table) -> command-line option.
COLUMNS = {
    "rtnSafePrivOpt": "retain-safe-private",
    "rtnUIDsOpt": "retain-uids",
    "rtnDevIdOpt": "retain-device-identity",
    "rtnInstIdOpt": "retain-institution-identity",
    "rtnPatCharsOpt": "retain-patient-characteristics",
    "rtnLongFullDatesOpt": "retain-long-full-dates",
    "rtnLongModifDatesOpt": "retain-long-modified-dates",
    "cleanDescOpt": "clean-descriptors",
    "cleanStructContOpt": "clean-structured-content",
    "cleanGraphOpt": "clean-graphics",
}


def committed(name: str) -> str:
    return (DATA_DIR / name).read_text(encoding="utf-8")


def source_rows() -> list[dict]:
    return json.loads((SOURCE / "ps315_table_E1-1_2025b.json").read_text(encoding="utf-8"))


def csv_rows(name: str) -> list[dict]:
    with (SOURCE / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ---- committed data equals the generator's output -------------------------------------------


def test_committed_data_equals_generated():
    built = build_all(SOURCE)
    assert set(built) == set(DATA_FILES)
    for name, data in built.items():
        assert render(data) == committed(name), f"{name} is out of date; regenerate it"


def test_data_dir_holds_exactly_the_generated_files():
    # and the strict profile's allow-list, which medcloak.rules.generate_strict makes (test_strict.py)
    assert {p.name for p in DATA_DIR.glob("*.json")} == {*DATA_FILES, "ps33_allow.json"}


@pytest.mark.parametrize("name", DATA_FILES)
def test_committed_data_is_in_render_form(name):
    # render is canonical: parsing the committed text and rendering it again gives the same text
    text = committed(name)
    assert render(json.loads(text)) == text


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["attributes"][0].__setitem__("basic", "K"),
        lambda d: d["attributes"][-1]["options"].__setitem__("retain-uids", "K"),
        lambda d: d["attributes"].pop(100),
        lambda d: d["private"].__setitem__("basic", "K"),
        lambda d: d.__setitem__("release", "2024e"),
    ],
)
def test_tampering_is_detected(tamper):
    data = copy.deepcopy(build_all(SOURCE)["ps315_e1_1.json"])
    tamper(data)
    assert render(data) != committed("ps315_e1_1.json")


def test_check_mode_detects_stale_data(tmp_path, monkeypatch, capsys):
    for name in DATA_FILES:
        shutil.copy(DATA_DIR / name, tmp_path / name)
    monkeypatch.setattr(generate, "DATA_DIR", tmp_path)
    assert generate.main([str(SOURCE), "--check"]) == 0

    data = json.loads((tmp_path / "ps315_e3_10.json").read_text(encoding="utf-8"))
    data["elements"][0]["offset"] = "ff"
    (tmp_path / "ps315_e3_10.json").write_text(render(data), encoding="utf-8")
    assert generate.main([str(SOURCE), "--check"]) == 1
    assert "ps315_e3_10.json" in capsys.readouterr().err
    assert render(data) != committed("ps315_e3_10.json")

    # regenerating restores exactly the committed text
    assert generate.main([str(SOURCE)]) == 0
    for name in DATA_FILES:
        assert (tmp_path / name).read_text(encoding="utf-8") == committed(name)


def test_source_is_carried_in_the_repository():
    assert {p.name for p in SOURCE.iterdir()} == {*TABLES, "ps33_iod_modules.json", "SOURCES.md"}


@pytest.mark.skipif(
    not SHARED.is_dir() or os.environ.get("MEDCLOAK_TEST_NO_SHARED") == "1",
    reason="no ../shared/data/ps315 beside the repository to compare with",
)
@pytest.mark.parametrize("name", TABLES)
def test_carried_tables_equal_the_shared_ones(name):
    assert (SOURCE / name).read_bytes() == (SHARED / name).read_bytes()


def run_generator(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "medcloak.rules.generate", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_command_checks_against_the_carried_tables_by_default():
    done = run_generator("--check")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    done = run_generator(str(SOURCE), "--check")
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda tmp: [str(tmp / "absent")], "is not a folder"),
        (lambda tmp: [str(tmp)], "ps315_table_E1-1_2025b.json is missing"),
        (lambda tmp: ["--bogus"], "unrecognized arguments: --bogus"),
        (lambda tmp: [str(tmp), str(tmp)], "unrecognized arguments"),
    ],
)
def test_command_usage_errors_are_one_line_exit_2(tmp_path, make, expect):
    done = run_generator(*make(tmp_path), "--check")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("python -m medcloak.rules.generate: error: ") and expect in done.stderr


@pytest.mark.parametrize(
    "table, spoil",
    [
        ("ps315_table_E1-1_2025b.json", lambda text: text[: len(text) // 2]),  # cut short
        ("ps315_table_E1-1_2025b.json", lambda text: text.replace('"basicProfile"', '"basic"')),
        ("ps315_table_E1-1_2025b.json", lambda text: text.replace(':"X"', ':"Q"', 1)),  # no such code
        ("ps315_safe_private_E3.10.csv", lambda text: text.replace("PrivateCreator", "Creator")),
        ("tcia_private_tag_kb_2024.csv", lambda text: text.replace("\n2001,", "\n2000,", 1)),
    ],
)
def test_malformed_tables_are_named_in_one_line(tmp_path, monkeypatch, capsys, table, spoil):
    for name in TABLES:
        shutil.copy(SOURCE / name, tmp_path / name)
    target = tmp_path / table
    target.write_text(spoil(target.read_text(encoding="utf-8")), encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(generate, "DATA_DIR", data)
    assert generate.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and table in err, err
    assert not list(data.iterdir())  # nothing written


def test_unwritable_data_folder_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generate, "DATA_DIR", tmp_path / "absent")
    assert generate.main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err, err


# ---- content of the data ---------------------------------------------------------------------


def test_release_is_2025b():
    assert json.loads(committed("ps315_e1_1.json"))["release"] == "2025b"
    assert json.loads(committed("ps315_e3_10.json"))["release"] == "2025b"


def test_source_has_647_rows_and_data_keeps_them_all():
    rows = source_rows()
    assert len(rows) == 647
    private = [r for r in rows if r["tag"].upper().startswith("(GGGG,EEEE)")]
    assert len(private) == 1
    data = json.loads(committed("ps315_e1_1.json"))
    assert len(data["attributes"]) + 1 == 647
    assert len({a["tag"] for a in data["attributes"]}) == 646


def test_every_source_row_carried_over_faithfully():
    data = json.loads(committed("ps315_e1_1.json"))
    by_tag = {a["tag"]: a for a in data["attributes"]}
    for row in source_rows():
        options = {COLUMNS[c]: row[c].strip() for c in COLUMNS if row.get(c, "").strip()}
        if row["tag"].upper().startswith("(GGGG,EEEE)"):
            assert data["private"]["basic"] == row["basicProfile"].strip()
            assert data["private"]["options"] == options
            continue
        key = row["tag"].strip("()").replace(",", "").lower()
        assert key in by_tag, row["tag"]
        entry = by_tag[key]
        assert entry["basic"] == row["basicProfile"].strip(), row["tag"]
        assert entry["options"] == options, row["tag"]
        assert entry["name"] == row["name"].strip()


def test_every_action_code_is_valid():
    data = json.loads(committed("ps315_e1_1.json"))
    rows = [*data["attributes"], data["private"]]
    for row in rows:
        assert row["basic"] in CODES, row
        assert set(row["options"].values()) <= CODES, row
        assert set(row["options"]) <= set(COLUMNS.values()), row
    used = {r["basic"] for r in rows}
    assert {"X", "Z", "D", "U"} <= used  # the data is not degenerate


def test_attribute_tags_are_eight_hex_digits_or_patterns():
    data = json.loads(committed("ps315_e1_1.json"))
    tags = [a["tag"] for a in data["attributes"]]
    assert tags == sorted(tags)
    for tag in tags:
        assert len(tag) == 8 and set(tag) <= set("0123456789abcdefx"), tag
    assert {"50xxxxxx", "60xx3000", "60xx4000"} <= set(tags)


def test_e3_10_data_matches_csv():
    rows = csv_rows("ps315_safe_private_E3.10.csv")
    assert len(rows) == 87
    expected = {(r["PrivateCreator"].strip(), r["Group"].lower(), r["Element"].lower()[2:])
                for r in rows}
    data = json.loads(committed("ps315_e3_10.json"))["elements"]
    assert {(e["creator"], e["group"], e["offset"]) for e in data} == expected
    assert len(data) == len(expected)


def test_tcia_data_is_the_keep_rows_of_the_csv():
    rows = csv_rows("tcia_private_tag_kb_2024.csv")
    keep = {(r["Private Creator"].strip(), r["Group"].lower(), r["Element"].lower()[2:])
            for r in rows if r["Rtn. Safe Priv. Opt."].strip() == "keep"}
    dropped = {(r["Private Creator"].strip(), r["Group"].lower(), r["Element"].lower()[2:])
               for r in rows if r["Rtn. Safe Priv. Opt."].strip() != "keep"}
    assert keep and dropped
    data = json.loads(committed("tcia_private.json"))["elements"]
    got = {(e["creator"], e["group"], e["offset"]) for e in data}
    assert got == keep
    assert len(got) == len(data)
    for e in data:
        assert int(e["group"], 16) % 2 == 1
        assert len(e["offset"]) == 2 and int(e["offset"], 16) <= 0xFF
