"""Philips PAR/REC exports: the PAR text header cleaned line by line, the REC copied byte for byte.

The PAR's general-information lines (``.    Key   :   value``) are known by their keys (those of
PAR versions 3 to 4.2, as nibabel's PAR reader knows them): a line of any other key is refused
(fail closed: it could be text about anybody). Of the known keys:

- ``Patient name`` becomes the patient's keyed pseudonym (:meth:`Keyring.patient_name`), keyed
  as DICOM keys a patient without an ID: ``name:`` name ``|`` (a PAR holds no ID, no birth date);
- ``Examination name`` and ``Protocol name`` are emptied (free text, often the patient's or
  the study's name);
- ``Examination date/time`` (``YYYY.MM.DD / HH:MM:SS``) is shifted by the patient's keyed offset
  under ``retain-long-modified-dates``, kept under ``retain-long-full-dates``, else set to the dummy
  ``1900.01.01 / 00:00:00`` (the basic profile empties DICOM dates; a PAR reader needs a date);
- every other known key is a number or a term of the scanner (``Series Type``, ``Technique``,
  ``Patient position``...): kept.

Comment lines (``#``) are the export's template, kept, but for ``# Dataset name:``, the path the
export was written to, which becomes the release's token. Image-definition lines (numbers) are
kept. The released PAR is then searched for every cleaned value (3 characters or more): one
found refuses the pair.

Declared sizes: the PAR is read within the per-object ceiling; the REC must hold exactly what the
PAR's image definitions declare (recon resolution x pixel size, summed over the images), checked
against the REC's size and the ceiling before it is copied; the REC is streamed, never held.
"""

from __future__ import annotations

import datetime
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import limits
from ..errors import (
    CorruptInputError,
    DeidentificationError,
    MissingDependencyError,
    VerificationError,
)

if TYPE_CHECKING:
    from ..pseudonym import Keyring

SIGNATURE = b"DATA DESCRIPTION FILE"
GENERAL = re.compile(r"^\.\s+(?P<key>[^:]*?)\s*:(?P<value>.*?)\r?$")
DATASET = re.compile(r"^#\s*Dataset name\s*:", re.IGNORECASE)
#: the general-information keys a run changes
NAME, EXAM, PROTOCOL, DATE = "Patient name", "Examination name", "Protocol name", "Examination date/time"
EMPTIED = (EXAM, PROTOCOL)
DUMMY_DATE = "1900.01.01 / 00:00:00"
DATE_FORMAT = "%Y.%m.%d / %H:%M:%S"


def sniff(head: bytes) -> str | None:
    return "par" if head.lstrip()[:1] == b"#" and SIGNATURE in head[:400] else None


def _norm(key: str) -> str:
    return " ".join(key.split())


def known_keys() -> frozenset[str]:
    try:
        from nibabel import parrec
    except ImportError as exc:
        raise MissingDependencyError("reading Philips PAR/REC needs nibabel") from exc
    return frozenset(_norm(k) for k in parrec._hdr_key_dict)


def rec_of(path: Path) -> Path | None:
    """The REC beside a PAR (``.REC`` or ``.rec``), or None."""
    for suffix in (".REC", ".rec", ".Rec"):
        cand = path.with_suffix(suffix)
        if cand.exists():
            return cand
    return None


def par_of(path: Path) -> Path | None:
    for suffix in (".PAR", ".par", ".Par"):
        cand = path.with_suffix(suffix)
        if cand.exists():
            return cand
    return None


def declared_rec_bytes(par: bytes) -> int:
    """What the PAR's image definitions declare of the REC (nibabel's PAR reader parses them)."""
    from nibabel import parrec

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, defs = parrec.parse_PAR_header(io.StringIO(par.decode("latin-1")))
        res, bits = defs["recon resolution"], defs["image pixel size"]
        total = sum(int(x) * int(y) * int(b) // 8 for (x, y), b in zip(res, bits))
        if len(defs) == 0 or any(int(v) <= 0 for v in res.ravel()) or any(int(b) % 8 or b <= 0 for b in bits):
            raise CorruptInputError("the PAR's image definitions declare no image or impossible sizes")
    except CorruptInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on a broken PAR
        raise CorruptInputError(f"unreadable PAR header ({type(exc).__name__})") from None
    return total


@dataclass
class Cleaned:
    par: bytes
    identity: str
    rec_bytes: int
    changed: dict[str, str]
    kept_text: list[tuple[str, str]]


def clean(par: bytes, rec_size: int, keyring: Keyring, options: frozenset[str] | set[str], token: str) -> Cleaned:
    """The released PAR (see the module's docstring); ``rec_size``: the REC's size in bytes."""
    keys = known_keys()
    text = par.decode("latin-1")
    lines = text.split("\n")
    values: dict[str, str] = {}
    for line in lines:
        m = GENERAL.match(line)
        if m:
            key = _norm(m["key"])
            if key not in keys:
                raise DeidentificationError("the PAR header has a general-information line of unknown key: "
                                            "not released")
            values[key] = m["value"].strip()
    if DATE not in values and NAME not in values:
        raise CorruptInputError("the PAR header has no general information")
    need = declared_rec_bytes(par)
    limits.check_declared(need, what="REC image data", stored=rec_size)
    if need != rec_size:
        raise CorruptInputError(f"the REC holds {rec_size} bytes, the PAR's image definitions declare {need}")
    name = values.get(NAME, "")
    identity = "name:" + name + "|"
    days, seconds = keyring.date_offset(identity)
    changed: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    needles = {v for k, v in values.items() if k in (NAME,) + EMPTIED and len(v) >= 3}
    out = []
    for line in lines:
        m = GENERAL.match(line)
        if m:
            key, value = _norm(m["key"]), m["value"].strip()
            prefix = line[: m.start("value")]
            new = value
            if key == NAME:
                new = keyring.patient_name(identity)
                changed[key] = "replaced"
            elif key in EMPTIED:
                new = ""
                changed[key] = "emptied"
            elif key == DATE:
                new = _date(value, days, seconds, options)
                if new != value:
                    changed[key] = "shifted" if "retain-long-modified-dates" in options else "replaced"
            elif re.search(r"[A-Za-z]", value):
                kept.append((key, value))
            end = "\r" if line.endswith("\r") else ""  # a CRLF export keeps its line ends
            line = (f"{prefix}   {new}" if new else prefix.rstrip()) + end
        elif DATASET.match(line):
            line = f"# Dataset name: {token}" + ("\r" if line.endswith("\r") else "")
            changed["Dataset name"] = "replaced"
        out.append(line)
    released = "\n".join(out).encode("latin-1")
    for needle in needles:
        if needle.encode("latin-1").lower() in released.lower():
            raise VerificationError("a cleaned value of the PAR header is still in it (a comment or another "
                                    "line): not released")
    return Cleaned(released, identity, need, changed, kept)


def _date(value: str, days: int, seconds: int, options: frozenset[str] | set[str]) -> str:
    if "retain-long-full-dates" in options:
        return value
    if "retain-long-modified-dates" not in options:
        return DUMMY_DATE
    try:
        when = datetime.datetime.strptime(" ".join(value.split()).replace(" / ", " / "), DATE_FORMAT)
    except ValueError:
        raise CorruptInputError("the PAR's Examination date/time is not YYYY.MM.DD / HH:MM:SS") from None
    return (when + datetime.timedelta(days=days, seconds=seconds)).strftime(DATE_FORMAT)


def findings(par: bytes) -> list[str]:
    """What a released PAR still holds that :func:`clean` always changes."""
    found = []
    for line in par.decode("latin-1").split("\n"):
        m = GENERAL.match(line)
        if m:
            key, value = _norm(m["key"]), m["value"].strip()
            if key in EMPTIED and value:
                found.append(f"{key} holds text")
            if key == NAME and not re.fullmatch(r"MC[A-Z2-7]{14}", value):
                found.append("Patient name is not a pseudonym")
            if key == DATE and value != DUMMY_DATE:
                found.append("Examination date/time kept")  # unless a dates option: see verify
        elif DATASET.match(line) and not re.fullmatch(r"#\s*Dataset name\s*:\s*[a-z2-7]*\s*", line.rstrip("\r")):
            found.append("Dataset name holds a path")
    return found


def read_par(path: Path) -> bytes:
    return limits.read_file(path, "the PAR header")
