"""``run --dicomdir``: a DICOMDIR for the release, and the ISO 9660 names it needs.

A DICOMDIR's File IDs are at most 8 components of at most 8 characters of ``A-Z 0-9 _`` (PS3.10
8.2, PS3.12's ISO 9660 media), so with the option every released DICOM object's name
``<patient>/<study>/<series>/<instance>.dcm`` (keyed tokens, see :mod:`medcloak.formats.dicom`)
becomes five such components: ``P/S/R/I1/I2``. Each is the upper-case base32 of a SHA-256 of the
long name's prefix (patient; patient/study; patient/study/series; the whole name for the
instance's two components). The long name is deterministic for a secret, so the short one is too,
and it is no more identifying than the long one (a hash of keyed tokens). Collisions: only the
file's full name must be unique; its last two components are 80 bits of a hash of the long name,
which is unique per SOP Instance UID, so two instances of one release share a name with
probability at most n^2 / 2^81 (10^7 instances: 4e-11); folders may share a name harmlessly
(the DICOMDIR's records group by the files' own UIDs, not by folders), and a shared file name
would surface as a duplicate, never as an overwrite (the engine refuses other content at a name
that is taken).

The DICOMDIR is written by :func:`write` at the end of a run, when every object is durable, from
the released files only (read back; never the inputs), with records made here by PS3.3 F.5's
keys (pydicom's default records copy an SR's whole content tree and refuse an object without a
Patient ID) and encoded by pydicom's :class:`FileSet`: every value in it is a copy of a value of
the released file it references, but for the dummies of Type 1 keys the release empties
(:data:`DUMMIES`) and the keyed patient pseudonym where the object has no Patient ID.
:func:`verify` is what ``medcloak verify`` checks of it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import Finding

if TYPE_CHECKING:
    from .handlers.base import Released

log = logging.getLogger("medcloak")

NAME = "DICOMDIR"
#: a released DICOM object's File ID under ``--dicomdir``
ISO_NAME = re.compile(r"^[A-Z0-9_]{1,8}(/[A-Z0-9_]{1,8}){4}$")
_COMPONENT = re.compile(r"^[A-Z0-9_]{1,8}$")
#: record elements that are the directory's own structure, not copies of the file's values
_STRUCTURE = {0x00041400, 0x00041410, 0x00041420, 0x00041430, 0x00041500, 0x00041510, 0x00041511,
              0x00041512}


#: what a record carries for a Type 1 key (PS3.3 F.5) that the release keeps empty (the profile
#: empties Study Date, Study Time and Study ID, shifts or blanks dates, drops labels): a value that
#: says nothing, never a made-up one that could pass for real (a verifier accepts it only where
#: the file's own value is empty). Type 1 keys not here (flags, enumerated values, the document
#: title's code, image sizes) have no value that says nothing: an object lacking one is left out.
DUMMIES = {"StudyDate": "19000101", "StudyTime": "000000", "StudyID": "0", "SeriesNumber": "0",
           "InstanceNumber": "0", "Modality": "OT", "ContentDate": "19000101", "ContentTime": "000000",
           "PresentationCreationDate": "19000101", "PresentationCreationTime": "000000",
           "InstanceCreationDate": "19000101", "VerificationDateTime": "19000101000000",
           "ContentLabel": "UNLABELED", "RTPlanLabel": "UNLABELED", "StructureSetLabel": "UNLABELED"}

#: a PATIENT record's Patient ID where the released object has none (Patient ID is Type 2 in the
#: Patient Module, and the release keeps an absent one absent): the release's own keyed patient
#: pseudonym, which names the object's patient folder and is its Patient ID wherever it has one
PSEUDONYM = re.compile(r"^MC[A-Z2-7]{14}$")

#: the keys of each record (PS3.3 F.5), ``keyword:type``: type 1 always holds a value (the file's,
#: else its dummy, else the object is left out); 2 is always there (the file's value or empty);
#: 1C is there where the file has a value. Nothing else of the file is copied (no icon, no
#: free-text Type 3 key, no content tree).
_CONTENT_ID = ("InstanceNumber:1", "ContentLabel:1", "ContentDescription:2", "ContentCreatorName:2")
_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName:2", "PatientID:1"),
    "STUDY": ("StudyDate:1", "StudyTime:1", "StudyDescription:2", "StudyInstanceUID:1", "StudyID:1",
              "AccessionNumber:2"),
    "SERIES": ("Modality:1", "SeriesInstanceUID:1", "SeriesNumber:1"),
    "IMAGE": ("InstanceNumber:1",),
    "RT DOSE": ("InstanceNumber:1", "DoseSummationType:1"),
    "RT STRUCTURE SET": ("InstanceNumber:1", "StructureSetLabel:1", "StructureSetDate:2", "StructureSetTime:2"),
    "RT PLAN": ("InstanceNumber:1", "RTPlanLabel:1", "RTPlanDate:2", "RTPlanTime:2"),
    "RT TREAT RECORD": ("InstanceNumber:1", "TreatmentDate:2", "TreatmentTime:2"),
    "PRESENTATION": ("PresentationCreationDate:1", "PresentationCreationTime:1", *_CONTENT_ID,
                     "ReferencedSeriesSequence:1C", "BlendingSequence:1C"),
    "WAVEFORM": ("InstanceNumber:1", "ContentDate:1", "ContentTime:1"),
    "SR DOCUMENT": ("InstanceNumber:1", "CompletionFlag:1", "VerificationFlag:1", "ContentDate:1",
                    "ContentTime:1", "VerificationDateTime:1C", "ConceptNameCodeSequence:1"),
    "KEY OBJECT DOC": ("InstanceNumber:1", "ContentDate:1", "ContentTime:1", "ConceptNameCodeSequence:1"),
    "SPECTROSCOPY": ("ImageType:1", "ContentDate:1", "ContentTime:1", "InstanceNumber:1",
                     "ReferencedImageEvidenceSequence:1C", "NumberOfFrames:1", "Rows:1", "Columns:1",
                     "DataPointRows:1", "DataPointColumns:1"),
    "RAW DATA": ("ContentDate:1", "ContentTime:1", "InstanceNumber:2"),
    "ENCAP DOC": ("ContentDate:2", "ContentTime:2", "InstanceNumber:1", "DocumentTitle:2",
                  "HL7InstanceIdentifier:1C", "ConceptNameCodeSequence:2", "MIMETypeOfEncapsulatedDocument:1"),
    "SURFACE SCAN": ("ContentDate:1", "ContentTime:1"),
    "ASSESSMENT": ("InstanceNumber:1", "InstanceCreationDate:1", "InstanceCreationTime:2"),
    "RADIOTHERAPY": ("InstanceNumber:1", "UserContentLabel:1C", "UserContentLongLabel:1C",
                     "ContentDescription:2", "ContentCreatorName:2"),
    "STEREOMETRIC": _CONTENT_ID,
    "PLAN": (),
    **{kind: ("ContentDate:1", "ContentTime:1", *_CONTENT_ID)
       for kind in ("REGISTRATION", "FIDUCIAL", "VALUE MAP", "MEASUREMENT", "SURFACE", "TRACT")},
}
#: SR storage classes (PS3.4 B.5): all but the key object selection are SR DOCUMENT records,
#: including those pydicom's table does not know yet (it would make them IMAGE records)
_SR_CLASSES = "1.2.840.10008.5.1.4.1.1.88."
_KOS_CLASS = "1.2.840.10008.5.1.4.1.1.88.59"
#: the elements of a root concept modifier (a CODE item of the root's Content Sequence with
#: relationship HAS CONCEPT MOD) that an SR or KOS record carries (PS3.3 F.5: Content Sequence 1C)
_MODIFIER = ("RelationshipType", "ValueType", "ConceptNameCodeSequence", "ConceptCodeSequence")


def _b32(text: str) -> str:
    return base64.b32encode(hashlib.sha256(("medcloak-iso|" + text).encode("utf-8")).digest()).decode("ascii")


def iso_relpath(relpath: str) -> str:
    """The ISO 9660 File ID of a released DICOM object's long name (see the module's text);
    other names are returned as they are."""
    parts = relpath.split("/")
    if not relpath.endswith(".dcm") or len(parts) != 4:
        return relpath
    whole = _b32(relpath)
    return "/".join((_b32(parts[0])[:8], _b32("/".join(parts[:2]))[:8], _b32("/".join(parts[:3]))[:8],
                     whole[:8], whole[8:16]))


def rename(released: Released) -> Released:
    """``released`` with its DICOM names (its own and its extra files') made ISO 9660 names."""
    import dataclasses

    return dataclasses.replace(released, relpath=iso_relpath(released.relpath),
                               extra=tuple((iso_relpath(rel), what) for rel, what in released.extra))


def _read_head(path: Path) -> Any:
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True)


def _set_uid(names: list[str]) -> str:
    """The DICOMDIR's own SOP Instance UID: a hash of what it indexes, so a run and its resumed
    continuation write the same file."""
    digest = hashlib.sha256("\n".join(names).encode("ascii")).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def close(fs: Any) -> None:
    """Remove the staging folder every pydicom FileSet makes."""
    fs._stage["t"].cleanup()


def record_type(ds: Any) -> str:
    """The lowest record of a released object (PS3.3 F.4): pydicom's choice, but SR classes by
    their class UID's root (SR DOCUMENT, or KEY OBJECT DOC), and "" for the one-level records
    (palettes, implants, hanging protocols: no patient; the release quarantines them, as they
    have no Study Instance UID)."""
    from pydicom.fileset import _four_level_record_type, _single_level_record_type

    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == _KOS_CLASS:
        return "KEY OBJECT DOC"
    if sop_class.startswith(_SR_CLASSES):
        return "SR DOCUMENT"
    if _single_level_record_type(ds) != "PATIENT":
        return ""
    return str(_four_level_record_type(ds))


def _filled(elem: Any) -> bool:
    return elem is not None and elem.value not in (None, "", b"") and not (elem.VR == "SQ" and len(elem.value) == 0)


def verification_datetime(ds: Any) -> Any:
    """A verified SR's most recent Verification DateTime (PS3.3 F.5: the record's key is the
    latest of the Verifying Observer Sequence's), as the file's element; None without one."""
    latest = None
    for item in ds.get("VerifyingObserverSequence") or []:
        elem = item.get(0x0040A030)  # Verification DateTime
        if _filled(elem) and (latest is None or str(elem.value) > str(latest.value)):
            latest = elem
    return latest


def concept_modifiers(ds: Any) -> list[Any]:
    """The root concept modifiers of an SR or KOS (PS3.3 F.5: the record's Content Sequence 1C),
    CODE items only and of those only their codes: never the content tree, nor a modifier's
    text (a TEXT modifier is not carried)."""
    from pydicom.dataset import Dataset

    items = []
    for item in ds.get("ContentSequence") or []:
        if item.get("RelationshipType") == "HAS CONCEPT MOD" and item.get("ValueType") == "CODE":
            copy = Dataset()
            for keyword in _MODIFIER:
                if keyword in item:
                    elem = _copy(item[keyword])
                    copy[elem.tag] = elem
            items.append(copy)
    return items


def _copy(elem: Any) -> Any:
    import copy

    from pydicom.dataelem import DataElement

    return DataElement(elem.tag, elem.VR, copy.deepcopy(elem.value))


def make_record(kind: str, ds: Any, patient_id: str = "") -> Any:
    """The directory record ``kind`` of the released object ``ds`` (its head), holding exactly the
    keys of ``_KEYS``; ``patient_id``: the keyed pseudonym for a PATIENT record whose object has
    no Patient ID. Raises ValueError (the reason) where a Type 1 key has no value to hold."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    if "SpecificCharacterSet" in ds:
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    for key in _KEYS[kind]:
        keyword, level = key.split(":")
        tag = tag_for_keyword(keyword)
        elem = ds.get(tag)
        if keyword == "VerificationDateTime":
            if str(ds.get("VerificationFlag", "")) != "VERIFIED":
                continue
            elem, level = verification_datetime(ds), "1"
        if _filled(elem):
            record[tag] = _copy(elem)
        elif level == "1C":
            continue
        elif level == "2":
            record[tag] = DataElement(tag, dictionary_VR(tag), [] if dictionary_VR(tag) == "SQ" else None)
        elif keyword == "PatientID" and PSEUDONYM.match(patient_id):
            record[tag] = DataElement(tag, "LO", patient_id)
        elif keyword in DUMMIES:
            record[tag] = DataElement(tag, dictionary_VR(tag), DUMMIES[keyword])
        else:
            raise ValueError(f"{keyword} is empty (a {kind} record's Type 1 key with no dummy)")
    if kind in ("SR DOCUMENT", "KEY OBJECT DOC"):
        modifiers = concept_modifiers(ds)
        if modifiers:
            record.ContentSequence = modifiers
    return record


def records_of(ds: Any, patient_id: str = "") -> list[Any]:
    """The PATIENT, STUDY, SERIES and leaf records of a released object's head, the leaf naming
    the file's UIDs (its File ID is the caller's). ValueError: the object cannot be indexed."""
    kind = record_type(ds)
    if kind not in _KEYS or kind in ("PATIENT", "STUDY", "SERIES"):
        raise ValueError(f"no four-level record for its class ({kind or 'a one-level record'})")
    records = [make_record(level, ds, patient_id) for level in ("PATIENT", "STUDY", "SERIES", kind)]
    leaf = records[3]
    leaf.ReferencedFileID = None
    leaf.ReferencedSOPClassUIDInFile = ds.SOPClassUID
    leaf.ReferencedSOPInstanceUIDInFile = ds.SOPInstanceUID
    leaf.ReferencedTransferSyntaxUIDInFile = ds.file_meta.TransferSyntaxUID
    return records


def write(out: Path, names: list[str], patients: dict[str, str] | None = None) -> tuple[int, int]:
    """Write ``out/DICOMDIR`` indexing the released DICOM files ``names`` (ISO 9660 File IDs, as
    the manifest records them), read back from the release; made durable before it replaces any
    earlier one. ``patients``: each name's keyed patient pseudonym (the manifest's), the Patient
    ID of a PATIENT record whose object has none. Returns (indexed, left out): a file the
    standard's records cannot describe (a Type 1 key with no value and no dummy, a one-level
    class, no UIDs) is left out and counted."""
    from pydicom.filebase import DicomFileLike
    from pydicom.fileset import FileSet, RecordNode

    names = sorted(set(names))
    patients = patients or {}
    fs = FileSet()
    # the tree is built here, by keys: FileSet.add() scans every instance and copies each
    # data set to a staging folder, which is quadratic (1 000 instances: 22 s; 4 000: 186 s)
    nodes: dict[tuple[str, ...], Any] = {}
    indexed = left_out = 0
    for rel in names:
        ds = _read_head(out / rel)
        try:
            records = records_of(ds, patients.get(rel, ""))
            keys = (str(records[0].PatientID), *(str(ds.get(k, "")) for k in (
                "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")))
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            log.info("DICOMDIR: a released object left out: %s", exc if isinstance(exc, ValueError) else
                     type(exc).__name__)
            left_out += 1
            continue
        if keys in nodes or not all(keys):
            left_out += 1
            continue
        parent = fs._tree
        for depth, record in enumerate(records):
            node = nodes.get(keys[: depth + 1])
            if node is None:
                node = nodes[keys[: depth + 1]] = RecordNode(record)
                node._parent = parent  # (the parent setter scans the siblings)
                parent.children.append(node)
            parent = node
        parent._record.ReferencedFileID = rel.split("/")
        indexed += 1
    fs.UID = _set_uid(names)
    tmp = out / (NAME + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            # pydicom's FileSet.write() moves every file into its own layout; only the encoding
            # of the directory is wanted here, with the release's own File IDs
            fs._write_dicomdir(DicomFileLike(fh))
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        close(fs)
    os.replace(tmp, out / NAME)
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if left_out:
        log.warning("DICOMDIR: %d released DICOM objects could not be indexed (a Type 1 key with no value)", left_out)
    return indexed, left_out


def verify(release: Path, old_ids: list[Any], old_uids: frozenset[str] | set[str]) -> list[Finding]:
    """What ``medcloak verify`` checks of a release's DICOMDIR: it reads; every File ID is an
    ISO 9660 name of a file that exists, whose SOP Instance UID, SOP Class UID and transfer
    syntax the record names, and whose patient, study and series are its parent records'; every
    other value of a record is the referenced file's own (so the directory says nothing the
    release does not); no original identifier from the audit occurs in it; and every released
    DICOM object under an ISO name is indexed."""
    import pydicom

    findings: list[Finding] = []

    def err(msg: str) -> None:
        findings.append(Finding(NAME, "error", msg))

    path = release / NAME
    try:
        ds = pydicom.dcmread(path)
        records = list(ds.DirectoryRecordSequence)
        offsets = {int(r.seq_item_tell): r for r in records}  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - any failure to read is a finding
        err(f"unreadable ({type(exc).__name__})")
        return findings
    data = path.read_bytes()
    if old_ids:
        from .residual import find

        if find(data, old_ids, 0) is not None:
            err("an original Patient ID from the audit occurs in the DICOMDIR")
    if str(ds.get("FileSetID", "")).strip() or "FileSetDescriptorFileID" in ds:
        err("the DICOMDIR names a file-set ID or descriptor (the release writes neither)")
    indexed: set[str] = set()

    def walk(offset: int, depth: int) -> list[Any]:
        """The heads of the files under the records from ``offset`` on, each record checked."""
        heads: list[Any] = []
        while offset and depth < 16:
            record = offsets.get(offset)
            if record is None:
                err("a record offset points nowhere")
                return heads
            lower = int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0)
            below = walk(lower, depth + 1) if lower else []
            own = leaf(record)
            if own is not None:
                below.append(own)
            values(record, below)
            heads.extend(below)
            offset = int(record.get("OffsetOfTheNextDirectoryRecord", 0) or 0)
        return heads

    def leaf(record: Any) -> Any:
        """The head of the file a record references, checked against it; None without one."""
        if "ReferencedFileID" not in record:
            return None
        value = record.ReferencedFileID
        parts = [str(value)] if isinstance(value, str) else [str(v) for v in value]
        rel = "/".join(parts)
        if not (len(parts) <= 8 and all(_COMPONENT.match(p) for p in parts)):
            err(f"File ID {rel!r} is not an ISO 9660 name")
            return None
        target = release / rel
        if not target.is_file():
            err(f"File ID {rel} names no released file")
            return None
        indexed.add(rel)
        try:
            head = _read_head(target)
        except Exception as exc:  # noqa: BLE001
            err(f"File ID {rel}: unreadable ({type(exc).__name__})")
            return None
        meta = head.file_meta
        for key, mine in (("ReferencedSOPInstanceUIDInFile", head.get("SOPInstanceUID")),
                          ("ReferencedSOPClassUIDInFile", head.get("SOPClassUID")),
                          ("ReferencedTransferSyntaxUIDInFile", meta.get("TransferSyntaxUID"))):
            if str(record.get(key, "")) != str(mine or ""):
                err(f"File ID {rel}: {key} differs from the file's")
        return head

    def values(record: Any, heads: list[Any]) -> None:
        """Every value of a record is one of the files' under it (a dummy only where theirs is
        empty; the keyed patient pseudonym only where their Patient ID is), and a key of its
        record type (so never an SR's content tree)."""
        kind = str(record.get("DirectoryRecordType", ""))
        allowed = {key.split(":")[0] for key in _KEYS.get(kind, ())}
        if kind in ("SR DOCUMENT", "KEY OBJECT DOC"):
            allowed.add("ContentSequence")
        for elem in record:
            tag = int(elem.tag)
            if elem.VR == "UI" and str(elem.value) in old_uids:
                err(f"an original UID from the audit in a {kind} record")
            if tag in _STRUCTURE or tag >> 16 == 0x0004 or tag == 0x00080005:
                continue
            if kind in _KEYS and elem.keyword not in allowed:
                err(f"{elem.keyword or hex(tag)} is no key of a {kind} record")
                continue
            for head in heads:
                if elem.VR == "SQ":
                    mine = list(elem.value)
                    theirs_sq = (concept_modifiers(head) if elem.keyword == "ContentSequence"
                                 else list(head.get(tag).value) if tag in head else [])
                    if mine == theirs_sq:
                        break
                    continue
                theirs = verification_datetime(head) if elem.keyword == "VerificationDateTime" else head.get(tag)
                if theirs is not None and theirs.value == elem.value:
                    break
                empty = theirs is None or theirs.value in (None, "", b"")
                if empty and (elem.value in (None, "", b"") or str(elem.value) == DUMMIES.get(elem.keyword)
                              or (elem.keyword == "PatientID" and PSEUDONYM.match(str(elem.value)))):
                    break
            else:
                err(f"{elem.keyword or hex(tag)} of a {kind} record is no value of the files it indexes")

    walk(int(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity", 0) or 0), 0)
    for file in sorted(release.rglob("*")):
        rel = file.relative_to(release).as_posix()
        if file.is_file() and ISO_NAME.match(rel) and rel not in indexed:
            findings.append(Finding(rel, "warning", "a released DICOM object the DICOMDIR does not index"))
    return findings
