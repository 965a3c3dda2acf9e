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
the released files only (read back; never the inputs), with pydicom's :class:`FileSet` records
(patient, study, series, image...): every value in it is a copy of a value of the released file
it references. :func:`verify` is what ``medcloak verify`` checks of it.
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
#: structured reports and key object selections (their directory records would copy the content tree)
_SR_CLASSES = "1.2.840.10008.5.1.4.1.1.88."
_COMPONENT = re.compile(r"^[A-Z0-9_]{1,8}$")
#: record elements that are the directory's own structure, not copies of the file's values
_STRUCTURE = {0x00041400, 0x00041410, 0x00041420, 0x00041430, 0x00041500, 0x00041510, 0x00041511,
              0x00041512}


#: what a record carries for a Type 1 key (PS3.3 F.5) that the release keeps empty (the profile
#: empties Study Date, Study Time and Study ID): a value that says nothing, never a made-up one
#: that could pass for real (a verifier accepts it only where the file's own value is empty)
DUMMIES = {"StudyDate": "19000101", "StudyTime": "000000", "StudyID": "0", "SeriesNumber": "0",
           "InstanceNumber": "0", "Modality": "OT"}


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


def write(out: Path, names: list[str]) -> tuple[int, int]:
    """Write ``out/DICOMDIR`` indexing the released DICOM files ``names`` (ISO 9660 File IDs, as
    the manifest records them), read back from the release; made durable before it replaces any
    earlier one. Returns (indexed, left out): a file the standard's records cannot describe (a
    Type 1 attribute they need is missing) is left out and counted."""
    import warnings

    from pydicom.filebase import DicomFileLike
    from pydicom.fileset import FileSet, RecordNode

    names = sorted(set(names))
    fs = FileSet()
    # the tree is built here, by keys: FileSet.add() scans every instance and copies each
    # data set to a staging folder, which is quadratic (1 000 instances: 22 s; 4 000: 186 s)
    nodes: dict[tuple[str, ...], Any] = {}
    indexed = left_out = 0
    for rel in names:
        ds = _read_head(out / rel)
        if str(ds.get("SOPClassUID", "")).startswith(_SR_CLASSES):
            left_out += 1  # pydicom's SR record copies the document's content tree: not in this directory
            continue
        for keyword, dummy in DUMMIES.items():
            if keyword not in ds or ds[keyword].value in (None, ""):
                setattr(ds, keyword, dummy)  # on the record's copy of the head only
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                records = list(fs._recordify(ds))
            keys = tuple(str(ds.get(k, "")) for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                                                     "SOPInstanceUID"))
        except (ValueError, KeyError, AttributeError, NotImplementedError):
            left_out += 1
            continue
        if len(records) != 4 or keys in nodes:  # one-level records (palettes, implants) are not indexed
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
        log.warning("DICOMDIR: %d released DICOM objects could not be indexed (a Type 1 attribute missing)", left_out)
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
        """Every value of a record is one of the files' under it (a dummy only where theirs is empty)."""
        kind = str(record.get("DirectoryRecordType", ""))
        for elem in record:
            tag = int(elem.tag)
            if elem.VR == "UI" and str(elem.value) in old_uids:
                err(f"an original UID from the audit in a {kind} record")
            if tag in _STRUCTURE or tag >> 16 == 0x0004 or tag == 0x00080005 or elem.VR == "SQ":
                continue
            for head in heads:
                theirs = head.get(tag)
                if theirs is not None and theirs.value == elem.value:
                    break
                empty = theirs is None or theirs.value in (None, "", b"")
                if empty and (elem.value in (None, "", b"") or str(elem.value) == DUMMIES.get(elem.keyword)):
                    break
            else:
                err(f"{elem.keyword or hex(tag)} of a {kind} record is no value of the files it indexes")

    walk(int(ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity", 0) or 0), 0)
    for file in sorted(release.rglob("*")):
        rel = file.relative_to(release).as_posix()
        if file.is_file() and ISO_NAME.match(rel) and rel not in indexed:
            findings.append(Finding(rel, "warning", "a released DICOM object the DICOMDIR does not index"))
    return findings
