"""BIDS datasets in, BIDS datasets out: every file below a folder holding
``dataset_description.json`` is released in a BIDS dataset ``bids/<token>/`` with keyed subject
labels (see :mod:`medcloak.formats.bids` for what each file becomes).

Images: anatomical ones (``anat/``) are defaced as every volume is (the volume handler's own
path, QC picture included); functional, diffusion, field map and perfusion ones (``func/``,
``dwi/``, ``fmap/``, ``perf/``) keep their data and lose their header's text and extensions. An
image's JSON sidecar, ``.bval`` and ``.bvec`` of the same name are released with it (so a refused
image leaves no orphan sidecar). ``derivatives/`` is skipped; anything this handler does not know
(other data types, ``code/``, ``phenotype/``, non-DICOM ``sourcedata/``, stray files) is
quarantined with its reason. DICOM files anywhere in a dataset are the DICOM handler's
(discovery asks it first): they are released as DICOM, outside the BIDS tree.

Discovery asks this handler before slides, photographs and volumes, so that no file of a dataset
is released flattened outside it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "bids"
KINDS = {
    "bids-image": "deface (anat) or clean the header (func, dwi, fmap, perf), keyed subject labels (BIDS)",
    "bids-sidecar": "skip (released with its BIDS image: .json sidecar, .bval, .bvec)",
    "bids-table": "keyed subject labels, columns and dates by the profile (BIDS .tsv)",
    "bids-json": "clean, keyed subject labels (BIDS .json)",
    "bids-text": "keyed subject labels (BIDS README, CHANGES, LICENSE, .bidsignore)",
    "bids-dataset": "stamp the de-identification (BIDS dataset_description.json)",
    "bids-derived": "skip (BIDS derivatives are not released: derive them again from the release)",
    "bids-unknown": "quarantine (a file of no kind medcloak releases inside a BIDS dataset)",
}


def settings(options: dict[str, Any]) -> None:
    return None


def sniff(head: bytes, path: Path) -> str | None:
    from ..formats.bids import kind_of

    found = kind_of(path)
    return found[0] if found is not None else None


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from .. import __version__
    from ..errors import UnsupportedInputError
    from ..formats import bids
    from ..limits import read_file
    from .base import Released

    path = Path(task.source.path)
    found = bids.kind_of(path)
    place = bids.place_of(path)
    if found is None or place is None:
        raise UnsupportedInputError("not inside a BIDS dataset")
    kind, why = found
    if kind == "bids-unknown":
        raise UnsupportedInputError(why)
    if kind in ("bids-derived", "bids-sidecar"):
        from ..errors import SkippedObject

        raise SkippedObject(why or "released with its BIDS image")
    keyring, profile = job.keyring, job.profile
    if bids.date_rule(profile) != "keep" and bids.dated_session(
            place.rel, b"" if kind == "bids-image" else read_file(path, "the file")):
        from ..errors import DeidentificationError

        raise DeidentificationError("a session label holds a date (ses-YYYYMMDD...): the scan's date, which the "
                                    "profile removes; rename the sessions (ses-1, ses-2...) before release")
    dataset = bids.Dataset.of(place.root)
    relpath = bids.release_path(keyring, dataset, place.rel)
    name = path.name
    pair = None
    if place.subject is not None:
        pair = (f"sub-{place.subject}", "sub-" + bids.pseudonym(keyring, dataset, place.subject))
    counts = {"bids-relabelled": 1}
    if kind == "bids-image":
        return [_image(task, job, path, relpath, dataset, pair)]
    data = read_file(path, "the file")
    original = None
    if kind == "bids-dataset":
        out = bids.description(data, profile, keyring, dataset, __version__)
    elif kind == "bids-table":
        out = bids.table(data, name, place.subject, profile, keyring, dataset)
    elif kind == "bids-json" and bids.table_kind(name) is not None:
        out = bids.dictionary(data, name, profile, keyring, dataset)
    elif kind == "bids-json":
        out = bids.sidecar(data, keyring, dataset)
    elif name.endswith((".bval", ".bvec")):
        out = bids.numeric_text(data)
    else:
        out = bids.plain_text(data, keyring, dataset)
    if kind in ("bids-dataset", "bids-json"):
        original = bids._load(data, "the file")
    review = _record(relpath, pair, kind, out, original)
    return [Released(out, relpath, patient_pair=pair, counts=counts, review=review)]


def _record(relpath: str, pair: Any, kind: str, out: bytes, original: Any = None, **more: Any) -> dict[str, Any]:
    """A released BIDS file's review record: the subject's pseudonymous label as patient, the
    dataset's token as study, the file's folder as series; a JSON file's kept string values as
    text (by key path) and its removed keys as changed (``original``: the input's document), a
    sidecar's quasi-identifiers; a README's (or any plain text's) lines as text under its name.
    Tables (``.tsv``) and ``.bval``/``.bvec`` give no text (their values are the profile's columns
    and numbers). ``more``: the rest of the record (an image's modality, changes and pixels)."""
    import json as _json

    from ..formats.volume import sidecar_removed, sidecar_text
    from ..review_record import record, text_values

    parts = relpath.split("/")
    text: dict[str, list[str]] = more.pop("text", None) or {}
    qi: dict[str, str] = more.pop("qi", None) or {}
    changed = dict(more.pop("changed", None) or {})
    if relpath.endswith(".json"):
        doc = _json.loads(out)
        text, qi = sidecar_text(doc)
        if original is not None:
            changed.update(sidecar_removed(original, doc))
    elif kind == "bids-text":
        name = parts[-1]
        text = text_values((name, line) for line in out.decode("utf-8", "replace").splitlines())
    return record("bids", patient=pair[1] if pair else "", study=parts[1] if len(parts) > 2 else "",
                  series="/".join(parts[:-1]), text=text, changed=changed, qi=qi, **more)


def _image(task: Task, job: Job, path: Path, relpath: str, dataset: Any, pair: Any) -> Released:
    """An image and its companions: defaced through the volume handler (``anat``), or its
    header cleaned with its data kept."""
    from ..errors import UnsupportedInputError
    from ..formats import bids, gz
    from ..formats.volume import header_text, read_volume, volume_parts
    from ..limits import read_file
    from . import volume
    from .base import Released

    datatype = path.parent.name
    extra: list[tuple[str, bytes]] = []
    side_original = None
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.name[: -len(".nii")]
    for ext in bids.COMPANION_EXTS:
        companion = path.with_name(stem + ext)
        if companion.is_file():
            data = read_file(companion, "a companion file")
            out = bids.sidecar(data, job.keyring, dataset) if ext == ".json" else bids.numeric_text(data)
            if ext == ".json":
                side_original = bids._load(data, "the JSON sidecar")
            name = bids.relabel(companion.name, job.keyring, dataset, True)
            extra.append((relpath.rsplit("/", 1)[0] + "/" + name, out))
    # the record's text and quasi-identifiers: the released (relabelled) sidecar's
    side = next((out for rel, out in extra if rel.endswith(".json")), None)
    if datatype in bids.DEFACED_TYPES:
        (released,) = volume.deidentify(task, job)
        if not released.relpath.endswith(".nii.gz" if path.name.endswith(".nii.gz") else ".nii"):
            raise UnsupportedInputError("a BIDS image that is not NIfTI")
        own = {k: v for k, v in (released.review or {}).items() if k in ("modality", "changed", "pixels")}
        return dataclasses.replace(released, relpath=relpath, extra=tuple(extra), patient_pair=pair,
                                   counts={**released.counts, "bids-relabelled": 1},
                                   review=_image_record(relpath, pair, side, side_original, own))
    vol = read_volume(path)
    if vol.source_kind not in ("nifti1", "nifti2") or not vol.single_file:
        raise UnsupportedInputError("a BIDS image that is not a single-file NIfTI")
    head, data, _single = volume_parts(vol, vol.raw)
    blob = gz.compress((head, data)) if path.name.endswith(".gz") else b"".join((head, data))
    own = {"modality": "MR", "changed": {name: "removed" if name == "extensions" else "emptied"
                                         for name in header_text(vol)}}
    return Released(blob, relpath, patient_pair=pair, counts={"header-cleaned": 1, "bids-relabelled": 1},
                    extra=tuple(extra), review=_image_record(relpath, pair, side, side_original, own))


def _image_record(relpath: str, pair: Any, side: Any, original: Any, own: dict[str, Any]) -> dict[str, Any]:
    """An image's record: the image's own parts (modality, header fields emptied, pixels), its
    released sidecar's text, quasi-identifiers and removed keys (``original``: the input's)."""
    import json as _json

    from ..formats.volume import ANALYZE_TEXT, TEXT_FIELDS, sidecar_removed, sidecar_text

    text: dict[str, list[str]] = {}
    qi: dict[str, str] = {}
    header = {*TEXT_FIELDS, *ANALYZE_TEXT, "extensions"}  # the volume's own sidecar changes are made again here
    changed = {k: v for k, v in own.pop("changed", {}).items() if k in header}
    if isinstance(side, bytes):
        doc = _json.loads(side)
        text, qi = sidecar_text(doc)
        if original is not None:
            changed.update(sidecar_removed(original, doc))
    return _record(relpath, pair, "bids-image", b"", text=text, qi=qi, changed=changed, **own)


def owns(relpath: str) -> bool:
    return relpath.startswith("bids/")


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """A released dataset's files: subject labels only ever pseudonyms (paths, tables, JSON
    strings, ``IntendedFor`` pointing at released files), sidecars without identifying keys,
    tables with the profile's columns only, ``dataset_description.json`` stamped, image headers
    without text; with the audit, no original label anywhere."""
    from ..errors import MedcloakError
    from ..formats import bids, gz
    from . import volume

    parts = relpath.split("/")
    found: list[Finding] = []

    def err(message: str) -> None:
        found.append(Finding(relpath, "error", message))

    if len(parts) < 3:
        return [Finding(relpath, "error", "file of no known released kind")]
    root, rel, name = path.parents[len(parts) - 3], "/".join(parts[2:]), path.name
    for label in bids.SUB.findall(rel):
        if not bids.PSEUDONYM.fullmatch(label):
            err("a subject label in the path that is not a pseudonym")
    if name.endswith(bids.IMAGE_EXTS):
        return found + volume.verify(path, relpath, context)
    try:
        data = path.read_bytes()
        if name.endswith(".gz"):
            data = gz.decompress(data)
        text = data.decode("utf-8")
    except (OSError, MedcloakError, UnicodeDecodeError):
        return found + [Finding(relpath, "error", "unreadable text file")]
    if any(not bids.PSEUDONYM.fullmatch(label) and any(c.isdigit() for c in label) for label in bids.SUB.findall(text)):
        err("a subject label that is not a pseudonym")
    for probe in context.old_ids:
        label = probe.key.removeprefix("sub-")
        if len(label) >= 4 and re.search(rf"(?i)(?<![a-z0-9]){re.escape(label)}(?![a-z0-9])", text + "\n" + rel):
            err("an original subject label from the audit occurs in the file")
            break
    try:
        if name == bids.DESCRIPTION and len(parts) == 3:
            doc = json.loads(text)
            if set(doc) - bids.DESCRIPTION_KEEP - {"EthicsApprovals"}:
                err("dataset_description.json holds keys that are not released")
            if not any(isinstance(e, dict) and e.get("Name") == "medcloak" for e in doc.get("GeneratedBy", [])):
                err("dataset_description.json does not record the de-identification")
            institution = context.profile is not None and context.profile.has("retain-institution-identity")
            if "EthicsApprovals" in doc and context.profile is not None and not institution:
                err("dataset_description.json keeps EthicsApprovals")
        elif name.endswith(".json") and bids.table_kind(name) is not None:
            doc = json.loads(text)
            kind = bids.table_kind(name) or ""
            if context.profile is not None and any(not bids.keep_column(kind, k, context.profile) for k in doc):
                err("a table's dictionary describes a column that is not released")
        elif name.endswith(".json"):
            if volume.verify(path, relpath, context):
                err("sidecar still holds identifying keys")
            _intended(json.loads(text), root, path, err)
        elif name.endswith((".tsv", ".tsv.gz")):
            kind = bids.table_kind(name)
            header, rows = bids.read_tsv(data)
            if kind is not None and context.profile is not None and any(
                    not bids.keep_column(kind, c, context.profile) for c in header):
                err(f"{kind}.tsv holds a column the profile removes")
            if kind == "participants" and "participant_id" in header and any(
                    not re.fullmatch("sub-" + bids.PSEUDONYM.pattern, r[header.index("participant_id")]) for r in rows):
                err("a participant_id that is not a pseudonym")
            named = [r[header.index("filename")] for r in rows] if kind == "scans" and "filename" in header else []
            if any(not bids.PSEUDONYM.fullmatch(label) for cell in named for label in bids.SUB.findall(cell)):
                err("a subject label in scans.tsv that is not a pseudonym")
            if kind == "scans" and "filename" in header:
                col = header.index("filename")
                if any(not (path.parent / r[col]).is_file() for r in rows):
                    err("scans.tsv names a file that is not in the release")
        elif not (name in bids.ROOT_TEXT or name.endswith((".bval", ".bvec"))):
            err("file of no known released kind")
    except (ValueError, MedcloakError, AttributeError) as exc:
        err(f"unreadable ({type(exc).__name__})")
    return found


def _intended(doc: Any, root: Path, path: Path, err: Any) -> None:
    """``IntendedFor`` entries must point at released files (``bids::`` from the dataset's root,
    others from the subject's folder), and name subjects by their pseudonyms."""
    from ..formats import bids

    targets = doc.get("IntendedFor", []) if isinstance(doc, dict) else []
    for target in [targets] if isinstance(targets, str) else targets:
        if not isinstance(target, str):
            continue
        if any(not bids.PSEUDONYM.fullmatch(label) for label in bids.SUB.findall(target)):
            err("IntendedFor holds a subject label that is not a pseudonym")
        if target.startswith("bids::"):
            where = root / target[len("bids::"):]
        else:
            rel = path.relative_to(root).parts
            where = root / rel[0] / target
        if not where.is_file():
            err("IntendedFor names a file that is not in the release")
