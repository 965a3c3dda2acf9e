"""Independent checks of what medcloak writes.

:func:`verify_release` re-reads a release tree on its own, with nothing but the release's
documentation (and, if given, the private audit) to go on. The residual-identifier scan that runs
on every object before it is published is :func:`medcloak.residual.scan`; ``verify`` reads the
audit's original Patient IDs the same way.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .model import Finding

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

DOC_NAME = "DEIDENTIFICATION.json"
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


# ---- release verification -----------------------------------------------------------------------


def _walk(ds: Dataset, depth: int = 0) -> Iterator[tuple[Any, int]]:
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ" and elem.value:
            for item in elem.value:
                yield from _walk(item, depth + 1)


def _walk_all(ds: Dataset) -> None:
    for _elem, _depth in _walk(ds):
        pass


def _load_doc(release: Path) -> dict[str, Any]:
    doc = release / DOC_NAME
    if not doc.is_file():
        return {}
    return json.loads(doc.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _old_values(audit: Path | None) -> tuple[set[str], list[Any]]:
    """Original UIDs (exact match) and original patient IDs (as words) from the private audit."""
    from .residual import Probe
    from .rules.actions import PLACEHOLDERS

    uids: set[str] = set()
    ids: list[Any] = []
    if audit is None:
        return uids, ids
    uid_map = audit / "uid_map.csv"
    if uid_map.is_file():
        with uid_map.open(newline="", encoding="utf-8") as fh:
            uids = {row["id_old"] for row in csv.DictReader(fh)}
    patient_map = audit / "patient_map.csv"
    if patient_map.is_file():
        with patient_map.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                old = row["id_old"]
                if len(old) >= 4 and not old.startswith(("name:", "study:")) and old.lower() not in PLACEHOLDERS:
                    probe = Probe.of(old, "PatientID", True)
                    if probe is not None:
                        ids.append(probe)
    return uids, ids


def verify_file(path: Path, profile: Any, old_uids: set[str], old_ids: list[Any], rel: str) -> list[Finding]:
    """Every finding for one released DICOM file."""
    import pydicom

    from .formats.dicom_check import release_faults, structure_fault
    from .rules.actions import _is_class_uid

    findings: list[Finding] = []

    def err(msg: str) -> None:
        findings.append(Finding(rel, "error", msg))

    data = path.read_bytes()
    if len(data) < 132 or data[128:132] != b"DICM":
        err("not a DICOM Part 10 file")
        return findings
    if data[:128] != b"\x00" * 128:
        err("preamble is not zero")
    fault = structure_fault(data)  # a file cut short reads as a shorter one: look at its bytes
    if fault is not None:
        err(fault)
        return findings
    try:
        ds = pydicom.dcmread(path)
        _walk_all(ds)  # pydicom decodes values when they are first read: a damaged one raises here
    except Exception as exc:  # noqa: BLE001 - any failure to read is a finding
        err(f"unreadable ({type(exc).__name__})")
        return findings
    for fault in release_faults(ds):
        err(fault)
    from .formats.dicom_bits import high_bits_fault

    bits_fault = high_bits_fault(ds, str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")))
    if bits_fault is not None:
        err(bits_fault)
    if old_ids:
        from .residual import find

        pixels = ds.get_item(0x7FE00010) if 0x7FE00010 in ds else None
        native = 0
        if pixels is not None and not ds.file_meta.TransferSyntaxUID.is_encapsulated:
            native = len(data) - getattr(pixels, "value_tell", len(data))  # native pixels hold no text
        if find(data, old_ids, native) is not None:
            err("an original Patient ID from the audit occurs in the file")
    meta = ds.file_meta
    if str(meta.get("MediaStorageSOPInstanceUID", "")) != str(ds.get("SOPInstanceUID", "")):
        err("Media Storage SOP Instance UID differs from SOP Instance UID")
    if str(ds.get("PatientIdentityRemoved", "")) != "YES":
        err("Patient Identity Removed is not YES")
    if not ds.get("DeidentificationMethod"):
        err("no De-identification Method")
    codes = {str(i.get("CodeValue", "")) for i in ds.get("DeidentificationMethodCodeSequence", [])}
    if "113100" not in codes:
        err("De-identification Method Code Sequence lacks 113100")
    if profile is not None:
        expected = {c for c, _ in profile.method_codes("113101" in codes, "113102" in codes)}
        if codes != expected:
            err("De-identification Method Code Sequence differs from the documented profile")
    if "113101" in codes and str(ds.get("BurnedInAnnotation", "")).strip() != "NO":
        err("Clean Pixel Data code without Burned In Annotation = NO")
    if profile is not None and profile.has("clean-pixel-data") and "113101" not in codes:
        from .formats.dicom_burned import scan_reason

        reason = scan_reason(ds)
        if reason is not None:  # every frame of it is scanned under the option
            err(f"{reason}, whose frames clean-pixel-data scans for burned-in text, without the Clean Pixel Data code")
    if "113102" in codes and str(ds.get("RecognizableVisualFeatures", "")).strip() != "NO":
        err("Clean Recognizable Visual Features code without Recognizable Visual Features = NO")
    if profile is not None and profile.strict:
        from .residual import PROVENANCE
        from .rules.strict import outside

        for name in outside(ds, profile, PROVENANCE | {0x00120062, 0x00120063, 0x00120064}):
            err(f"{name} is outside the strict profile's allow-list")
    retain_uids = "113110" in codes
    for elem, _depth in _walk(ds):
        tag = int(elem.tag)
        group = tag >> 16
        if tag == 0xFFFCFFFC:
            err("Data Set Trailing Padding present")
        if group == 0x0002:
            err("File Meta element inside the data set")
        if group & 1:
            element = tag & 0xFFFF
            if element >= 0x1000 and profile is not None and not _private_allowed(ds, elem, profile):
                err(f"private attribute ({group:04X},{element:04X}) not on the safe list")
            continue
        if elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, (list, tuple)) or type(elem.value).__name__ == "MultiValue" else [elem.value]
            for v in values:
                v = str(v)
                if not (0 < len(v) <= 64 and _UID.match(v)):
                    err(f"invalid UID in {elem.keyword or hex(tag)}")
                elif v in old_uids and not _is_class_uid(tag):
                    err(f"an original UID from the audit in {elem.keyword or hex(tag)}")
                elif not retain_uids and not v.startswith(("2.25.", "1.2.840.10008.")) and not _is_class_uid(tag):
                    err(f"UID in {elem.keyword or hex(tag)} is not pseudonymised")
        if profile is not None:
            action = profile.resolve(tag)
            if action is not None and action.code == "X" and group != 0x0012:
                err(f"{elem.keyword or hex(tag)} should have been removed")
            elif action is not None and action.code == "Z" and elem.value not in (None, "", b"") and not (elem.VR == "SQ" and len(elem.value) == 0):
                err(f"{elem.keyword or hex(tag)} should be empty")
    return findings


def _private_allowed(ds: Any, elem: Any, profile: Any) -> bool:
    # creators live in the same data set as the element: look them up through the element's
    # private_creator attribute, which pydicom fills in for private tags it reads
    creator = getattr(elem, "private_creator", None)
    tag = int(elem.tag)
    if creator is None:
        return False
    return bool(profile.keep_private(str(creator), tag >> 16, tag & 0xFFFF))


def verify_release(release: Path, audit: Path | None = None) -> list[Finding]:
    """Check a release tree on its own; returns every finding (empty when clean)."""
    from .handlers import handler_of_output
    from .handlers.base import VerifyContext
    from .rules.profile import profile_from_document

    findings: list[Finding] = []
    doc = _load_doc(release)
    profile = None
    if not doc:
        findings.append(Finding(DOC_NAME, "error", "the release carries no de-identification document: a run "
                                "writes it when it completes, so this release is incomplete (an interrupted run: "
                                "continue it with `medcloak run ... --resume`)"))
    else:
        try:
            profile = profile_from_document(doc)
        except Exception as exc:  # noqa: BLE001
            findings.append(Finding(DOC_NAME, "error", f"documented profile does not load: {exc}"))
    if doc.get("dicomdir") and not (release / "DICOMDIR").is_file():
        findings.append(Finding("DICOMDIR", "error", "the release was made with --dicomdir and has no DICOMDIR"))
    old_uids, old_ids = _old_values(audit)
    context = VerifyContext(profile, frozenset(old_uids), tuple(old_ids))
    for path in sorted(release.rglob("*")):
        if not path.is_file() or path.name == DOC_NAME or path.name == "DEIDENTIFICATION.txt":
            continue
        rel = path.relative_to(release).as_posix()
        if rel == "DICOMDIR":  # written by ``run --dicomdir``
            from .dicomdir import verify as verify_dicomdir

            findings.extend(verify_dicomdir(release, list(old_ids), old_uids))
            continue
        handler = handler_of_output(rel)
        if handler is None:
            findings.append(Finding(rel, "error", "file of no known released kind"))
            continue
        findings.extend(handler.verify(path, rel, context))
    return findings
