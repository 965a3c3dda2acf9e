"""BIDS datasets: what a file of a dataset is, and how its text is rewritten for a release.

A folder holding ``dataset_description.json`` is a BIDS dataset; every file below it belongs to
the nearest such folder (its *root*). A dataset is released whole under ``bids/<token>/``, the
token a keyed hash of the dataset's identity (its folder's name and its ``Name``), never the
folder's name itself. Each file is handled on its own (every replacement is a keyed hash, so no
map is shared between files):

- ``sub-<label>`` becomes ``sub-<pseudonym>`` everywhere: folder and file names, TSV cells, JSON
  strings (``IntendedFor`` paths, relative ones and ``bids::`` URIs), ``.bidsignore`` lines, free
  text. The pseudonym is the keyring's patient pseudonym (``MC`` and 14 upper-case base32
  characters: alphanumeric, as BIDS labels must be) of the subject's identity within its dataset,
  so the same label in two datasets gives two pseudonyms; the same identity keys the subject's
  date offset. A bare label is replaced too where it is distinctive enough to be searched for
  (four characters or more, letters and digits).
- ``participants.tsv``, ``sessions.tsv`` and ``scans.tsv`` keep their identifier column
  (rewritten) and the columns the profile keeps: a participant's ``age``, ``sex``, ``height``,
  ``weight``, ``ethnicity``/``race`` and ``species`` follow the DICOM attributes they stand for
  (Patient's Age, Sex, Size, Weight, Ethnic Group, Species Description: removed by the Basic
  Profile, kept under Retain Patient Characteristics or a site override ``PatientAge = "keep"``);
  ``acq_time`` follows the dates (shifted by the subject's offset under Retain Longitudinal
  Temporal Information Modified Dates, kept under Full Dates, removed otherwise). Every other
  column is removed unless the site profile names it in ``[bids] keep_columns`` (fail closed).
  The JSON dictionaries beside these tables keep the entries of the kept columns only.
- Other TSV files (``events.tsv``, ``physio.tsv.gz``) hold measurements: every column is kept,
  labels rewritten.
- ``dataset_description.json`` keeps the dataset's own fields (name, licence, authors, funding,
  acknowledgements, references, DOI: they are about the dataset and its makers, not its
  subjects), loses ``EthicsApprovals`` (an institution's board and protocol number) unless Retain
  Institution Identity is chosen, and ``SourceDatasets`` and ``DatasetLinks`` (locations of the
  unreleased originals); ``GeneratedBy`` gains medcloak's entry. Any other key is removed.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CorruptInputError, UnsupportedInputError

if TYPE_CHECKING:
    from ..pseudonym import Keyring

DESCRIPTION = "dataset_description.json"
#: top-level documentation files, released with their labels rewritten
ROOT_TEXT = frozenset({"README", "README.md", "README.txt", "README.rst", "CHANGES", "LICENSE", ".bidsignore"})
#: data types whose images medcloak releases: anatomical ones defaced, the others header-cleaned
DEFACED_TYPES = frozenset({"anat"})
CLEANED_TYPES = frozenset({"func", "dwi", "fmap", "perf"})
IMAGE_EXTS = (".nii.gz", ".nii")
#: files released with the image of the same name beside it
COMPANION_EXTS = (".json", ".bval", ".bvec")
#: tables whose columns the profile decides, by their suffix, with the column that identifies a row
PROFILED_TABLES = {"participants": "participant_id", "sessions": "session_id", "scans": "filename"}
#: participant characteristics by the DICOM attribute that carries them (the profile decides)
CHARACTERISTICS = {
    "age": 0x00101010, "sex": 0x00100040, "height": 0x00101020, "weight": 0x00101030,
    "ethnicity": 0x00102160, "race": 0x00102160, "species": 0x00102201,
}
DATE_COLUMNS = frozenset({"acq_time"})
#: keys of dataset_description.json about the dataset itself, released as they are
DESCRIPTION_KEEP = frozenset({
    "Name", "BIDSVersion", "HEDVersion", "DatasetType", "License", "Authors", "Acknowledgements",
    "HowToAcknowledge", "Funding", "ReferencesAndLinks", "DatasetDOI", "GeneratedBy", "Keywords",
})
GENERATED_BY_KEYS = frozenset({"Name", "Version", "Description", "CodeURL", "Container"})
#: what a pseudonymous subject label looks like (the keyring's patient pseudonym)
PSEUDONYM = re.compile(r"MC[A-Z2-7]{14}")
SOURCEDATA = "sourcedata: only its DICOM files are released (as DICOM, outside the dataset)"
SUB = re.compile(r"(?<![A-Za-z0-9])sub-([A-Za-z0-9]+)")
_ENTITY = re.compile(r"^[a-zA-Z]+-[a-zA-Z0-9]+$")
_NUMERIC_TEXT = re.compile(rb"^[0-9eE+\-.\s]*$")


@lru_cache(maxsize=4096)
def _root_of_dir(folder: str) -> str | None:
    path = Path(folder)
    for candidate in (path, *path.parents):
        if (candidate / DESCRIPTION).is_file():
            return str(candidate)
    return None


def dataset_root(path: Path) -> Path | None:
    """The nearest folder above ``path`` (a file) holding ``dataset_description.json``."""
    root = _root_of_dir(str(path.parent))
    return Path(root) if root is not None else None


@lru_cache(maxsize=256)
def _description(root: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(root, DESCRIPTION).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


@lru_cache(maxsize=256)
def subjects(root: str) -> frozenset[str]:
    """The labels of the subject folders of a dataset."""
    try:
        return frozenset(p.name[4:] for p in Path(root).iterdir() if p.name.startswith("sub-") and p.is_dir())
    except OSError:
        return frozenset()


@dataclass(frozen=True)
class Place:
    """Where a file lies in its dataset: its root, its path from there, its subject label."""

    root: Path
    rel: str
    subject: str | None

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.rel.split("/"))


def place_of(path: Path) -> Place | None:
    root = dataset_root(path)
    if root is None:
        return None
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    first = rel.split("/", 1)[0]
    subject = first[4:] if first.startswith("sub-") and "/" in rel else None
    return Place(root, rel, subject)


@lru_cache(maxsize=256)
def _nested_in(root: str) -> str | None:
    """``derivatives`` or ``sourcedata`` for a dataset inside such a folder of another dataset."""
    for folder in Path(root).parents:
        if folder.name in ("derivatives", "sourcedata") and (folder.parent / DESCRIPTION).is_file():
            return folder.name
    return None


def _is_derivative(place: Place) -> bool:
    if place.parts[0] == "derivatives" or _nested_in(str(place.root)) == "derivatives":
        return True
    return str(_description(str(place.root)).get("DatasetType", "raw")).lower() == "derivative"


def _image_of(path: Path) -> Path | None:
    name = path.name
    for ext in COMPANION_EXTS:
        if name.endswith(ext):
            stem = name[: -len(ext)]
            for img in IMAGE_EXTS:
                if (path.parent / (stem + img)).is_file():
                    return path.parent / (stem + img)
    return None


def _entities_ok(name: str) -> bool:
    """``key-value_..._suffix.ext``: the shape of a BIDS file name."""
    stem = name.split(".", 1)[0]
    parts = stem.split("_")
    return bool(parts[-1]) and parts[-1].isalnum() and all(_ENTITY.match(p) for p in parts[:-1])


def kind_of(path: Path) -> tuple[str, str] | None:
    """The kind of a file inside a BIDS dataset (``None`` outside one) and, for a file that is
    not released, why."""
    place = place_of(path)
    if place is None:
        return None
    parts, name = place.parts, path.name
    if _is_derivative(place):
        return "bids-derived", "derivatives are not released"
    if _nested_in(str(place.root)) == "sourcedata":
        return "bids-unknown", SOURCEDATA
    if len(parts) == 1:
        if name == DESCRIPTION:
            return "bids-dataset", ""
        if name in ROOT_TEXT:
            return "bids-text", ""
        if name.endswith((".tsv", ".json")) and _entities_ok(name):
            return ("bids-table" if name.endswith(".tsv") else "bids-json"), ""
        return "bids-unknown", "a file of no kind medcloak releases at the dataset's root"
    if place.subject is None:
        top = parts[0]
        why = {"sourcedata": SOURCEDATA,
               "code": "code/ is not released (scripts name paths and people)",
               "phenotype": "phenotype/ is not released (its measures have no rule in the profile)",
               "stimuli": "stimuli/ is not released"}.get(top, "a folder of no kind medcloak releases")
        return "bids-unknown", why
    if not place.subject.isalnum():
        return "bids-unknown", "a subject label that is not alphanumeric"
    inner = parts[1:]
    if inner and inner[0].startswith("ses-"):
        inner = inner[1:]
    if len(inner) == 1:  # sub-X[/ses-Y]/file: sessions.tsv, scans.tsv and their dictionaries
        if name.endswith(("_sessions.tsv", "_scans.tsv")):
            return "bids-table", ""
        if name.endswith(("_sessions.json", "_scans.json")):
            return "bids-json", ""
        return "bids-unknown", "a file of no kind medcloak releases in a subject's folder"
    datatype = inner[0]
    if len(inner) != 2 or datatype not in DEFACED_TYPES | CLEANED_TYPES:
        return "bids-unknown", f"files of the BIDS data type {datatype!r} are not released by this version"
    if not _entities_ok(name) or not name.startswith(f"sub-{place.subject}_"):
        return "bids-unknown", "a file name that is not a BIDS name of its subject"
    if name.endswith(IMAGE_EXTS):
        return "bids-image", ""
    if name.endswith(COMPANION_EXTS):
        if _image_of(path) is not None:
            return "bids-sidecar", ""
        return ("bids-json", "") if name.endswith(".json") else ("bids-text", "")
    if name.endswith((".tsv", ".tsv.gz")):
        return "bids-table", ""
    return "bids-unknown", "a file of no kind medcloak releases in a data type folder"


# ---- keyed replacements -------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """What every file of one dataset rewrites with: its key and its subjects' labels."""

    key: str
    labels: frozenset[str]

    @classmethod
    def of(cls, root: Path) -> Dataset:
        name = str(_description(str(root)).get("Name", ""))
        return cls(f"{root.name}|{name}", subjects(str(root)))

    def identity(self, label: str) -> str:
        """A subject's identity: its label within this dataset (keys pseudonym and date offset)."""
        return f"bids|{self.key}|{label}"


def token(keyring: Keyring, dataset: Dataset) -> str:
    return keyring.token("bids-dataset", dataset.key)


def pseudonym(keyring: Keyring, dataset: Dataset, label: str) -> str:
    return keyring.patient_id(dataset.identity(label))


def relabel(text: str, keyring: Keyring, dataset: Dataset, force: bool = False) -> str:
    """``text`` with ``sub-<label>`` replaced, and every distinctive bare label of the dataset's
    subjects (see the module's docstring). In a path or an identifier (``force``) every
    ``sub-<label>`` is a label; in text, one that is a subject's folder or holds a digit (so
    that "sub-cortical" stays a word)."""
    def one(m: re.Match[str]) -> str:
        label = m.group(1)
        if force or label in dataset.labels or any(c.isdigit() for c in label):
            return "sub-" + pseudonym(keyring, dataset, label)
        return m.group(0)

    text = SUB.sub(one, text)
    for label in dataset.labels:
        if _distinctive(label) and label.lower() in text.lower():
            new = pseudonym(keyring, dataset, label)
            text = re.sub(rf"(?i)(?<![A-Za-z0-9]){re.escape(label)}(?![A-Za-z0-9])", new, text)
    return text


def _distinctive(label: str) -> bool:
    return len(label) >= 4 and any(c.isalpha() for c in label) and any(c.isdigit() for c in label)


def release_path(keyring: Keyring, dataset: Dataset, rel: str) -> str:
    return f"bids/{token(keyring, dataset)}/" + "/".join(relabel(p, keyring, dataset, True) for p in rel.split("/"))


def _relabel_json(value: Any, keyring: Keyring, dataset: Dataset, force: bool = False) -> Any:
    """Every string of a JSON document relabelled; ``IntendedFor`` entries are paths."""
    if isinstance(value, dict):
        return {relabel(k, keyring, dataset): _relabel_json(v, keyring, dataset, force or k == "IntendedFor")
                for k, v in value.items()}
    if isinstance(value, list):
        return [_relabel_json(v, keyring, dataset, force) for v in value]
    if isinstance(value, str):
        return relabel(value, keyring, dataset, force)
    return value


def _dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def _load(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CorruptInputError(f"{what} does not parse as JSON") from None


def sidecar(data: bytes, keyring: Keyring, dataset: Dataset) -> bytes:
    """A JSON sidecar cleaned as a volume's is, its labels rewritten."""
    from .volume import clean_sidecar

    return _dump(_relabel_json(json.loads(clean_sidecar(data)), keyring, dataset))


# ---- tables --------------------------------------------------------------------------------------


def table_kind(name: str) -> str | None:
    """``participants``, ``sessions`` or ``scans`` for a table (or its dictionary) the profile decides."""
    stem = name.split(".", 1)[0]
    for kind in PROFILED_TABLES:
        if stem == kind or stem.endswith("_" + kind):
            return kind
    return None


#: a session label that holds a date (``ses-20240305``, ``ses-2024``... with a year, month and day)
_DATED = re.compile(r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")


def dated_session(rel: str, text: bytes = b"") -> bool:
    """Whether a session label in the path ``rel`` (or in ``text``, a table's or sidecar's) holds a
    date: the scan's date, which no rewriting of labels removes."""
    labels = re.findall(r"(?<![A-Za-z0-9])ses-([A-Za-z0-9]+)", rel + "\n" + text.decode("utf-8", "replace"))
    return any(_DATED.search(label) for label in labels)


def date_rule(profile: Any) -> str:
    """``keep``, ``shift`` or ``remove``: what the profile does to dates."""
    if profile.has("retain-long-full-dates"):
        return "keep"
    return "shift" if profile.has("retain-long-modified-dates") else "remove"


def keep_column(kind: str, column: str, profile: Any) -> bool:
    """Whether a column of a participants, sessions or scans table is released."""
    if column == PROFILED_TABLES[kind]:
        return True
    if column in DATE_COLUMNS:
        return date_rule(profile) != "remove"
    if kind == "participants" and column in CHARACTERISTICS:
        action = profile.resolve(CHARACTERISTICS[column])
        return action is not None and action.code == "K"
    return column in site_columns(profile)


def site_columns(profile: Any) -> frozenset[str]:
    """The columns a site profile keeps (``[bids] keep_columns``)."""
    section = (getattr(profile, "overrides", None) or {}).get("bids") or {}
    return frozenset(str(c) for c in section.get("keep_columns", ()))


def read_tsv(data: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptInputError("a TSV file that is not UTF-8") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise CorruptInputError("a TSV file without a header")
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:] if line != ""]
    if any(len(r) != len(header) for r in rows):
        raise CorruptInputError("a TSV row whose cell count differs from its header's")
    return header, rows


def write_tsv(header: list[str], rows: list[list[str]]) -> bytes:
    return "".join("\t".join(r) + "\n" for r in [header, *rows]).encode()


def shift_datetime(value: str, days: int, seconds: int) -> str:
    """A BIDS date-time (``YYYY-MM-DDThh:mm:ss[.ffffff][Z|+hh:mm]``) moved by the offset; ``n/a``
    stays. Anything else is refused (it could not be shifted)."""
    if value == "n/a":
        return value
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?", value)
    if m is None:
        raise CorruptInputError("a date-time that is not in the BIDS format (YYYY-MM-DDThh:mm:ss)")
    try:
        moved = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S") + timedelta(days=days, seconds=seconds)
    except (ValueError, OverflowError):
        raise CorruptInputError("a date-time that is not a valid date") from None
    return moved.strftime("%Y-%m-%dT%H:%M:%S") + (m.group(2) or "") + (m.group(3) or "")


def table(data: bytes, name: str, subject: str | None, profile: Any, keyring: Keyring, dataset: Dataset) -> bytes:
    """A TSV file of the dataset for release (see the module's docstring)."""
    gz = name.endswith(".gz")
    if gz:
        from .gz import decompress

        data = decompress(data, what="the table's gzip stream")
    header, rows = read_tsv(data)
    kind = table_kind(name)
    if kind is not None:
        keep = [i for i, c in enumerate(header) if keep_column(kind, c, profile)]
        ident = PROFILED_TABLES[kind]
        if ident not in header:
            raise CorruptInputError(f"a {kind}.tsv without its {ident} column")
        rule = date_rule(profile)
        out_rows = []
        for row in rows:
            who = subject
            if kind == "participants":
                if not row[header.index(ident)].startswith("sub-"):
                    raise CorruptInputError("a participant_id that does not start with sub-")
                who = row[header.index(ident)][4:]
            new = []
            for i in keep:
                cell = row[i]
                if header[i] in DATE_COLUMNS and rule == "shift":
                    if who is None:
                        raise CorruptInputError("a date in a table of no subject")
                    days, seconds = keyring.date_offset(dataset.identity(who))
                    cell = shift_datetime(cell, days, seconds)
                new.append(relabel(cell, keyring, dataset, header[i] == ident))
            out_rows.append(new)
        header = [header[i] for i in keep]
        if kind == "participants":
            out_rows.sort(key=lambda r: r[0])  # the original order would tell the labels' order
        rows = out_rows
    else:
        rows = [[relabel(c, keyring, dataset) for c in r] for r in rows]
        header = [relabel(c, keyring, dataset) for c in header]
    out = write_tsv(header, rows)
    return gzip.compress(out, compresslevel=6, mtime=0) if gz else out


def dictionary(data: bytes, name: str, profile: Any, keyring: Keyring, dataset: Dataset) -> bytes:
    """The JSON dictionary of a participants, sessions or scans table: the kept columns' entries."""
    doc = _load(data, "a table's dictionary")
    if not isinstance(doc, dict):
        raise CorruptInputError("a table's dictionary that is not a JSON object")
    kind = table_kind(name)
    assert kind is not None
    kept = {k: v for k, v in doc.items() if keep_column(kind, k, profile)}
    return _dump(_relabel_json(kept, keyring, dataset))


def description(data: bytes, profile: Any, keyring: Keyring, dataset: Dataset, version: str) -> bytes:
    """``dataset_description.json`` for release (see the module's docstring)."""
    doc = _load(data, DESCRIPTION)
    if not isinstance(doc, dict) or "Name" not in doc or "BIDSVersion" not in doc:
        raise CorruptInputError(f"{DESCRIPTION} lacks Name or BIDSVersion")
    keep = DESCRIPTION_KEEP | ({"EthicsApprovals"} if profile.has("retain-institution-identity") else set())
    out = {k: v for k, v in doc.items() if k in keep}
    made = [{k: v for k, v in e.items() if k in GENERATED_BY_KEYS}
            for e in out.get("GeneratedBy", []) if isinstance(e, dict)]
    options = ", ".join(profile.options) or "no options"
    made.append({"Name": "medcloak", "Version": version,
                 "Description": f"de-identified: subject labels replaced by keyed pseudonyms, anatomical images "
                                f"defaced, headers and sidecars cleaned (DICOM PS3.15 Annex E profile "
                                f"{profile.name}, {options})"})
    out["GeneratedBy"] = made
    return _dump(_relabel_json(out, keyring, dataset))


def numeric_text(data: bytes) -> bytes:
    """A ``.bval``/``.bvec`` file: numbers only, released as it is."""
    if not _NUMERIC_TEXT.match(data):
        raise CorruptInputError("a .bval/.bvec file holding more than numbers")
    return data


def plain_text(data: bytes, keyring: Keyring, dataset: Dataset) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedInputError("a text file that is not UTF-8") from None
    return relabel(text, keyring, dataset).encode()
