"""Shared builders: real DICOM files, written with pydicom, with identifiers planted where they hide."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SECRET = b"test-secret-0123456789abcdef"
UID_ROOT = "1.2.826.0.1.3680043.10.999."  # planted "original" UIDs live under this root


def pydicom_test_files() -> Path:
    import pydicom.data

    return Path(os.path.dirname(pydicom.data.__file__)) / "test_files"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.key"
    path.write_bytes(SECRET)
    os.chmod(path, 0o600)
    return path


def base_dataset(sop_uid: str, study_uid: str, series_uid: str, patient: str = "CANARYPID01") -> "object":
    """A small CT image data set (from pydicom's CT_small.dcm) with the given identity."""
    import pydicom

    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = study_uid + ".7"
    ds.PatientID = patient
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    # CT_small carries private attributes of its own: drop them, tests plant their own
    for tag in [t for t in ds.keys() if t.group & 1]:
        del ds[tag]
    return ds


def write(ds: "object", path: Path, preamble: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble is not None:
        ds.preamble = preamble.ljust(128, b"\x00")[:128]
    ds.save_as(path, enforce_file_format=True)
    return path


def build_canary(folder: Path) -> tuple[Path, list[str]]:
    """One CT object with a distinct token in every place an identifier can hide.

    Returns the file path and the list of tokens (all upper-case ASCII, all distinct).
    """
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    tokens: list[str] = []

    def tok(name: str) -> str:
        t = f"CNRY{name}{len(tokens):02d}"
        tokens.append(t)
        return t

    def uid(n: int) -> str:
        value = f"{UID_ROOT}{n}.{4242 + n}"
        tokens.append(value)
        return value

    ds = base_dataset(uid(1), uid(2), uid(3), patient=tok("PID"))
    ds.FrameOfReferenceUID = uid(4)
    ds.PatientName = f"{tok('FAMILY')}^{tok('GIVEN')}"
    ds.IssuerOfPatientID = tok("ISSUER")
    ds.OtherPatientIDs = tok("OTHERID")
    ds.PatientAddress = tok("ADDRESS") + " 12 HIGH STREET"
    ds.PatientTelephoneNumbers = tok("PHONE")
    ds.PatientBirthDate = "19361107"
    tokens.append("19361107")
    ds.PatientMotherBirthName = tok("MOTHER")
    ds.InstitutionName = tok("INSTITUTION")
    ds.InstitutionAddress = tok("INSTADDR")
    ds.ReferringPhysicianName = tok("REFPHYS")
    ds.PerformingPhysicianName = tok("PERFPHYS")
    ds.OperatorsName = tok("OPERATOR")
    ds.StationName = tok("STATION")
    ds.DeviceSerialNumber = tok("SERIAL")
    ds.AccessionNumber = tok("ACC")
    ds.StudyID = tok("STUDYID")
    ds.StudyDescription = tok("STUDYDESC")
    ds.SeriesDescription = tok("SERIESDESC")
    ds.ImageComments = tok("IMGCOMMENT")
    ds.ProtocolName = tok("PROTOCOL")
    ds.RequestingPhysician = tok("REQPHYS")
    ds.StudyDate = "19970412"
    ds.SeriesDate = "19970412"
    ds.AcquisitionDate = "19970412"
    ds.ContentDate = "19970412"
    tokens.append("19970412")
    ds.InstanceCreatorUID = uid(5)

    # a sequence the table names, three levels deep, with identifiers at every level
    inner = Dataset()
    inner.PatientName = tok("DEEPNAME")
    inner.ReferencedSOPInstanceUID = uid(6)
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    mid = Dataset()
    mid.RequestedProcedureID = tok("REQPROC")
    mid.ReferencedImageSequence = Sequence([inner])
    outer = Dataset()
    outer.AccessionNumber = tok("DEEPACC")
    outer.RequestAttributesSequence = Sequence([mid])
    ds.ReferencedStudySequence = Sequence([outer])

    # a sequence the table does not name, holding attributes it does name
    unnamed = Dataset()
    unnamed.InstitutionName = tok("UNNAMEDINST")
    unnamed.SeriesInstanceUID = uid(7)
    unnamed.CodeValue = "T-D0050"
    unnamed.CodingSchemeDesignator = "SRT"
    unnamed.CodeMeaning = "Tissue"
    ds.AnatomicRegionSequence = Sequence([unnamed])

    # private blocks, relocated: the same creator at element block 0x10 and at 0x42
    ds.add(DataElement(0x00290010, "LO", "CANARY CREATOR A"))
    ds.add(DataElement(0x00291001, "LO", tok("PRIVA")))
    ds.add(DataElement(0x00310042, "LO", "CANARY CREATOR A"))
    ds.add(DataElement(0x00314201, "LO", tok("PRIVB")))
    # a private sequence with a standard attribute and a private one inside
    pitem = Dataset()
    pitem.PatientName = tok("PRIVSEQNAME")
    pitem.add(DataElement(0x00330010, "LO", "CANARY CREATOR B"))
    pitem.add(DataElement(0x00331002, "LO", tok("PRIVNESTED")))
    ds.add(DataElement(0x00330010, "LO", "CANARY CREATOR B"))
    ds.add(DataElement(0x00331001, "SQ", Sequence([pitem])))
    # a creator of E.3.10, with an element the safe list does not name
    ds.add(DataElement(0x00190010, "LO", "SIEMENS MR HEADER"))
    ds.add(DataElement(0x001910F0, "LO", tok("UNLISTEDSIEMENS")))

    # UN: a standard attribute and a private one whose VR the writer did not know
    ds.add(DataElement(0x00101001, "UN", tok("UNOTHERNAMES").encode()))
    ds.add(DataElement(0x00350010, "LO", "CANARY CREATOR C"))
    ds.add(DataElement(0x00351001, "UN", tok("UNPRIV").encode()))
    # an even-group attribute of no data dictionary
    ds.add(DataElement(0x0042FFF0, "UN", tok("NODICT").encode()))

    # SR-like content: a Content Sequence with free text
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = tok("SRTEXT")
    item.RelationshipType = "CONTAINS"
    ds.ContentSequence = Sequence([item])

    # curves and overlays
    ds.add(DataElement(0x50003000, "OB", tok("CURVE").encode()))
    ds.add(DataElement(0x60004000, "LT", tok("OVLCOMMENT")))
    ds.add(DataElement(0x60000010, "US", 8))  # 8 rows x 16 columns x 1 bit = 16 bytes
    ds.add(DataElement(0x60000011, "US", 16))
    ds.add(DataElement(0x60000100, "US", 1))
    ds.add(DataElement(0x60000102, "US", 0))
    ds.add(DataElement(0x60003000, "OW", tok("OVLDATA").encode().ljust(16, b"\x00")))

    # File Meta, and Data Set Trailing Padding
    ds.file_meta.SourceApplicationEntityTitle = tok("AET")[:16]
    tokens[-1] = tokens[-1][:16]
    ds.file_meta.ImplementationVersionName = "CNRYVER"
    tokens.append("CNRYVER")
    ds.add(DataElement(0xFFFCFFFC, "OB", tok("PADDING").encode()))

    pre = tok("PREAMBLE")
    path = folder / tok("FOLDER") / (tok("FILE") + ".dcm")
    write(ds, path, preamble=pre.encode())
    return path, tokens


def all_bytes_and_names(root: Path) -> tuple[bytes, str]:
    """Every byte of every file under ``root``, and every relative path, lower-cased."""
    blobs, names = [], []
    for path in sorted(root.rglob("*")):
        names.append(path.relative_to(root).as_posix())
        if path.is_file():
            blobs.append(path.read_bytes())
    return b"\n".join(blobs).lower(), "\n".join(names).lower()


@pytest.fixture(scope="session")
def dciodvfy() -> str | None:
    return shutil.which("dciodvfy")


def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's error messages on ``path``, with values and element positions taken out (the
    release replaces UIDs, dates and names on purpose): what is compared before and after."""
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    out = set()
    for line in (res.stdout + res.stderr).splitlines():
        if line.startswith("Error"):
            line = re.sub(r"<[^>]*>", "<>", line)
            line = re.sub(r"\"[^\"]*\"", '""', line)
            out.add(re.sub(r"\d+(\.\d+)*", "N", line))  # numbers and UIDs
    return out
