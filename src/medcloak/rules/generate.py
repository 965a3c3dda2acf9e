"""Regenerate ``rules/data/*.json`` from the DICOM Standard's tables.

Usage::

    python -m medcloak.rules.generate [SOURCE_DIR] [--check]

``SOURCE_DIR`` holds the machine-readable tables (PS3.15 Table E.1-1 as JSON, Table E.3.10-1 as CSV,
and the TCIA private tag knowledge base as CSV); by default the copy carried in the repository,
``rules/data/source/`` (see its SOURCES.md; it is not installed with the package). ``--check``
writes nothing and exits 1 when the committed data differ from what the tables give. A missing
folder, a missing or malformed table and a data folder that cannot be written are reported in one
line, exit 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ProfileError, UsageError

RELEASE = "2025b"
E1_1_FILE = "ps315_table_E1-1_2025b.json"
E3_10_FILE = "ps315_safe_private_E3.10.csv"
TCIA_FILE = "tcia_private_tag_kb_2024.csv"
DATA_DIR = Path(__file__).with_name("data")
#: The standard's tables as carried in the repository (the default ``SOURCE_DIR``).
SOURCE_DIR = DATA_DIR / "source"
PROG = "python -m medcloak.rules.generate"

#: Column of Table E.1-1 -> option name of the command-line contract.
OPTION_COLUMNS = {
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
VALID_CODES = {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}


def _tag_key(raw: str) -> str:
    """``"(0008,0050)"`` -> ``"00080050"``; patterns keep their ``x`` wildcards, lower case."""
    text = raw.strip().strip("()").replace(",", "").replace(" ", "").lower()
    if len(text) != 8 or any(c not in "0123456789abcdefx" for c in text):
        raise ValueError(f"not a tag or tag pattern: {raw!r}")
    return text


def build_e1_1(source: Path) -> dict[str, Any]:
    rows = json.loads((source / E1_1_FILE).read_text(encoding="utf-8"))
    attributes = []
    private_rule = None
    for row in rows:
        basic = row["basicProfile"].strip()
        if basic not in VALID_CODES:
            raise ValueError(f"unknown action {basic!r} for {row['tag']}")
        options = {}
        for column, option in OPTION_COLUMNS.items():
            code = row.get(column)
            if code:
                if code.strip() not in VALID_CODES:
                    raise ValueError(f"unknown action {code!r} for {row['tag']} / {column}")
                options[option] = code.strip()
        if row["tag"].upper().startswith("(GGGG,EEEE)"):
            private_rule = {"name": row["name"], "basic": basic, "options": options}
            continue
        attributes.append(
            {
                "tag": _tag_key(row["tag"]),
                "name": row["name"].strip(),
                "basic": basic,
                "options": options,
                "in_std_iod": row.get("stdCompIOD", "") == "Y",
            }
        )
    attributes.sort(key=lambda a: a["tag"])
    if private_rule is None:
        raise ValueError("Table E.1-1 has no private attribute row")
    return {
        "standard": "DICOM PS3.15 Table E.1-1",
        "release": RELEASE,
        "generated_by": "medcloak.rules.generate",
        "private": private_rule,
        "attributes": attributes,
    }


def _private_rows(path: Path, creator_column: str, keep: Any) -> list[dict[str, str]]:
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not keep(row):
                continue
            group = row["Group"].strip().lower()
            element = row["Element"].strip().lower()
            if len(group) != 4 or int(group, 16) % 2 == 0:
                raise ValueError(f"private group must be odd: {group}")
            if len(element) != 4 or not element.startswith("xx"):
                raise ValueError(f"private element must be an offset xxEE: {element}")
            out.append(
                {
                    "group": group,
                    "offset": element[2:],
                    "creator": row[creator_column].strip(),
                    "vr": row["VR"].strip(),
                    "meaning": row["Meaning"].strip(),
                }
            )
    unique = {(r["creator"], r["group"], r["offset"]): r for r in out}
    return [unique[k] for k in sorted(unique)]


def build_e3_10(source: Path) -> dict[str, Any]:
    return {
        "standard": "DICOM PS3.15 Table E.3.10-1 Safe Private Attributes",
        "release": RELEASE,
        "generated_by": "medcloak.rules.generate",
        "elements": _private_rows(source / E3_10_FILE, "PrivateCreator", lambda r: True),
    }


def build_tcia(source: Path) -> dict[str, Any]:
    return {
        "standard": "TCIA private tag knowledge base (opt-in, not part of PS3.15)",
        "release": "2024-02-01",
        "generated_by": "medcloak.rules.generate",
        "elements": _private_rows(
            source / TCIA_FILE,
            "Private Creator",
            lambda r: r["Rtn. Safe Priv. Opt."].strip() == "keep",
        ),
    }


def build_all(source: Path) -> dict[str, dict[str, Any]]:
    """All rule data files, by file name.

    Raises :class:`ProfileError` naming the table when one is missing, unreadable or malformed.
    """
    out = {}
    for name, build, table in (
        ("ps315_e1_1.json", build_e1_1, E1_1_FILE),
        ("ps315_e3_10.json", build_e3_10, E3_10_FILE),
        ("tcia_private.json", build_tcia, TCIA_FILE),
    ):
        try:
            out[name] = build(source)
        except FileNotFoundError:
            raise ProfileError(f"{table} is missing from {source}") from None
        except OSError as exc:
            raise ProfileError(f"cannot read {table} in {source}: {exc.strerror}") from None
        except KeyError as exc:
            raise ProfileError(f"{table} has no column {exc}") from None
        except (ValueError, TypeError, AttributeError, csv.Error) as exc:
            raise ProfileError(f"{table} is malformed: {exc}") from None
    return out


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or ``--check``) the rule data; 0 done, 1 stale (``--check``), 2 usage error."""
    parser = _Parser(prog=PROG, description="Regenerate medcloak's rule data from the standard's tables.")
    parser.add_argument(
        "source", type=Path, nargs="?", default=SOURCE_DIR,
        help="folder with the standard's tables (default: the copy in the repository)",
    )
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    stale = []
    try:
        args = parser.parse_args(argv)
        if not args.source.is_dir():
            tables = ", ".join((E1_1_FILE, E3_10_FILE, TCIA_FILE))
            raise UsageError(f"{args.source} is not a folder (it must hold {tables})")
        for name, data in build_all(args.source).items():
            target = DATA_DIR / name
            text = render(data)
            if args.check:
                if not target.exists() or target.read_text(encoding="utf-8") != text:
                    stale.append(name)
            else:
                try:
                    target.write_text(text, encoding="utf-8")
                except OSError as exc:
                    raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    except (UsageError, ProfileError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
