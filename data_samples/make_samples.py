"""Regenerate the DICOM samples in this folder from pydicom's bundled test files, and the
synthetic BIDS dataset ``bids/``.

Run: ``python data_samples/make_samples.py`` (needs pydicom, nibabel). Every identifier planted
here is synthetic (invented names, IDs, addresses); the images are pydicom's test images and, in
``bids/``, a head phantom made of ellipsoids (no real face). See SOURCES.md.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

HERE = Path(__file__).resolve().parent / "dicom"
TEST_FILES = Path(os.path.dirname(pydicom.data.__file__)) / "test_files"
ROOT = "1.2.826.0.1.3680043.10.1024."  # UIDs of the synthetic "originals"


def plant_patient(ds: Dataset, name: str, pid: str, birth: str) -> None:
    ds.PatientName = name
    ds.PatientID = pid
    ds.IssuerOfPatientID = "NORTHFIELD MRN"
    ds.PatientBirthDate = birth
    ds.PatientAddress = "41 Orchard Lane, Northfield NF4 7QT"
    ds.PatientTelephoneNumbers = "+44 1632 960 471"
    ds.OtherPatientIDs = pid + "-OLD"
    ds.InstitutionName = "Northfield General Hospital"
    ds.InstitutionAddress = "1 Infirmary Road, Northfield"
    ds.ReferringPhysicianName = "Okafor^Adaeze^^Dr"
    ds.OperatorsName = "Lindqvist^Per"
    ds.StationName = "NFG-CT-02"
    ds.AccessionNumber = "ACC" + pid[-6:]
    for tag in [t for t in ds.keys() if t.group & 1]:  # the test files' own private data
        del ds[tag]


def add_private(ds: Dataset, block: int) -> None:
    """A safe-listed private block (PS3.15 E.3.10) at a relocated element block, plus an
    unlisted element that must never be released."""
    ds.add(DataElement((0x0019 << 16) | block, "LO", "GEMS_ACQU_01"))
    ds.add(DataElement((0x0019 << 16) | (block << 8) | 0x23, "DS", "39.375"))  # Table Speed: safe
    ds.add(DataElement((0x0019 << 16) | (block << 8) | 0x90, "LO", "Sinclair^Maud scan"))  # unlisted


def ct_series() -> None:
    name, pid = "Sinclair^Maud^Elspeth", "NF00482913"
    for i in range(3):
        ds = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
        plant_patient(ds, name, pid, "19470322")
        ds.StudyInstanceUID = ROOT + "1"
        ds.SeriesInstanceUID = ROOT + "1.1"
        ds.FrameOfReferenceUID = ROOT + "1.9"
        ds.SOPInstanceUID = ROOT + f"1.1.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20230917"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "234530"
        ds.StudyDescription = "CT HEAD for Maud Sinclair, NF00482913"
        ds.ImageComments = "Sent by Dr Okafor, call +44 1632 960 471"
        add_private(ds, 0x10 if i == 0 else 0x43)  # the same block, relocated
        ds.add(DataElement(0xFFFCFFFC, "OB", b"Sinclair NF00482913 "))  # trailing padding
        ds.preamble = b"NF00482913 Sinclair".ljust(128, b"\x00")
        out = HERE / "Sinclair_Maud_NF00482913" / f"CT_HEAD_{i + 1}.dcm"
        out.parent.mkdir(exist_ok=True)
        ds.save_as(out, enforce_file_format=True)


def rt_structure_set() -> None:
    ds = pydicom.dcmread(TEST_FILES / "rtstruct.dcm", force=True)  # a bare data set, no File Meta
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    plant_patient(ds, "Sinclair^Maud^Elspeth", "NF00482913", "19470322")
    ds.StudyInstanceUID = ROOT + "1"
    ds.SeriesInstanceUID = ROOT + "1.2"
    ds.SOPInstanceUID = ROOT + "1.2.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StructureSetDate = "20230918"
    refs = []
    for i in range(3):
        r = Dataset()
        r.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        r.ReferencedSOPInstanceUID = ROOT + f"1.1.{i + 1}"
        refs.append(r)
    series = Dataset()
    series.SeriesInstanceUID = ROOT + "1.1"
    series.ContourImageSequence = Sequence(refs)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ROOT + "1"
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ROOT + "1.9"
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    for roi in ds.StructureSetROISequence:
        roi.ReferencedFrameOfReferenceUID = ROOT + "1.9"
    ds.save_as(HERE / "Sinclair_Maud_NF00482913" / "RTSTRUCT.dcm", enforce_file_format=True)


def mr_and_sr() -> None:
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    plant_patient(ds, "Achterberg^Joost", "NF00777120", "19820611")
    ds.StudyInstanceUID = ROOT + "2"
    ds.SeriesInstanceUID = ROOT + "2.1"
    ds.SOPInstanceUID = ROOT + "2.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240102"
    out = HERE / "Achterberg_Joost_NF00777120"
    out.mkdir(exist_ok=True)
    ds.save_as(out / "MR_KNEE.dcm", enforce_file_format=True)

    sr = pydicom.dcmread(TEST_FILES / "test-SR.dcm")
    plant_patient(sr, "Achterberg^Joost", "NF00777120", "19820611")
    sr.StudyInstanceUID = ROOT + "2"
    sr.SeriesInstanceUID = ROOT + "2.2"
    sr.SOPInstanceUID = ROOT + "2.2.1"
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    for item in sr.iterall():
        if item.keyword == "TextValue":
            item.value = "Joost Achterberg (NF00777120): " + str(item.value)
    sr.save_as(out / "SR_REPORT.dcm", enforce_file_format=True)


#: the BIDS sample's subjects: labels that are hospital numbers, as they too often are
BIDS_SUBJECTS = {"NF00482913": ("34", "F", "R", "2024-03-05T10:22:31"),
                 "NF00777120": ("41", "M", "L", "2024-04-17T23:51:08")}
#: tissue values of the head phantom (a T1-weighted contrast), for the tests to find each part
PHANTOM = {"neck": 120, "face fat": 200, "face muscle": 115, "scalp": 215, "skull": 25, "nose": 190,
           "chin": 185, "lips": 150, "orbital fat": 210, "eye": 35, "ear": 170, "csf": 45,
           "grey matter": 135, "white matter": 175, "ventricle": 50}


def head_phantom(voxel_mm: float = 2.0, scale: float = 1.0):  # type: ignore[no-untyped-def]
    """A synthetic T1-weighted adult head made of ellipsoids (RAS millimetres, origin near the
    centre of the brain): brain of about 1.2 l (grey and white matter, ventricles) in CSF, a dark
    skull, bright scalp, eyes in orbital fat below the frontal lobes, nose, lips, chin, ears and
    neck. Returns (int16 values, affine); ``PHANTOM`` names the value of each part."""
    import numpy as np

    lo = np.array([-86.0, -112.0, -150.0]) * scale
    hi = np.array([86.0, 132.0, 104.0]) * scale
    shape = tuple(round(float(v)) for v in (hi - lo) / voxel_mm)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = lo + voxel_mm / 2
    x, y, z = (lo[a] + voxel_mm * (np.arange(n) + 0.5) for a, n in enumerate(shape))
    x, y, z = x[:, None, None] / scale, y[None, :, None] / scale, z[None, None, :] / scale

    def ell(c, r):  # type: ignore[no-untyped-def]
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0

    v = np.zeros(shape, np.int16)
    p = PHANTOM
    v[((x / 46.0) ** 2 + ((y + 5.0) / 48.0) ** 2 <= 1.0) & (z > -150) & (z < -40)] = p["neck"]
    v[ell((0, 30, -58), (62, 72, 64))] = p["face fat"]
    v[ell((0, 30, -58), (54, 64, 56))] = p["face muscle"]
    v[ell((0, 0, 20), (80, 96, 72))] = p["scalp"]
    v[ell((0, 0, 20), (75, 91, 67))] = p["skull"]
    v[ell((0, 96, -48), (11, 16, 22))] = p["nose"]
    v[ell((0, 74, -106), (26, 20, 16))] = p["chin"]
    v[ell((0, 92, -78), (24, 8, 7))] = p["lips"]
    for side in (-1, 1):
        v[ell((side * 32, 68, -32), (19, 18, 16))] = p["orbital fat"]
        v[ell((side * 32, 70, -32), (12, 12, 12))] = p["eye"]
        v[ell((side * 74, -5, -5), (10, 18, 24))] = p["ear"]
    v[ell((0, 0, 20), (69, 85, 61))] = p["csf"]
    v[ell((0, 0, 20), (65, 80, 57))] = p["grey matter"]
    v[ell((0, 0, 22), (52, 66, 44))] = p["white matter"]
    for side in (-1, 1):
        v[ell((side * 10, 0, 24), (5, 22, 8))] = p["ventricle"]
    return v, affine


def _json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _nifti(path: Path, data, affine, zooms=None, descrip: bytes = b"") -> None:  # type: ignore[no-untyped-def]
    """A NIfTI-1 file written by nibabel, gzipped without a name or a time in its gzip header."""
    import nibabel as nib

    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    if zooms is not None:
        img.header.set_zooms(zooms)
    img.header["descrip"] = descrip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(img.to_bytes(), mtime=0))


def bids_dataset(out: Path) -> None:
    """A small BIDS dataset: two subjects labelled with hospital numbers, one session; a defaceable
    T1w head phantom, a tiny 4-D BOLD run, a field map whose sidecar points at it (IntendedFor,
    relative for one subject and a ``bids::`` URI for the other), sidecars with identifying keys,
    participants.tsv, sessions.tsv and scans.tsv with acquisition times, .bidsignore."""
    import numpy as np

    head, affine = head_phantom()
    _json(out / "dataset_description.json", {
        "Name": "medcloak synthetic BIDS sample", "BIDSVersion": "1.9.0", "DatasetType": "raw",
        "License": "CC0", "Authors": ["A. Researcher", "B. Researcher"],
        "Funding": ["Imaging Research Fund IRF-2024-17"],
        "EthicsApprovals": ["Northfield Research Ethics Committee 24/NF/0113"],
        "GeneratedBy": [{"Name": "dcm2niix", "Version": "v1.0.20230411"}],
        "SourceDatasets": [{"URL": "file:///data/northfield/mri/NF00482913"}],
    })
    (out / "README").write_text(
        "Synthetic sample dataset made by medcloak's data_samples/make_samples.py.\n"
        "Two subjects (sub-NF00482913, sub-NF00777120), one session, a T1w head phantom,\n"
        "a short resting-state BOLD run and a field map.\n", encoding="utf-8")
    (out / ".bidsignore").write_text("extra_data/\nsub-NF00482913/ses-1/anat/*_notes.txt\n", encoding="utf-8")
    rows = ["participant_id\tage\tsex\thandedness\thospital_ward"]
    rows += [f"sub-{label}\t{age}\t{sex}\t{hand}\tNeurology B" for label, (age, sex, hand, _) in BIDS_SUBJECTS.items()]
    (out / "participants.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _json(out / "participants.json", {
        "participant_id": {"Description": "subject label"}, "age": {"Description": "age", "Units": "year"},
        "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
        "handedness": {"Description": "handedness", "Levels": {"L": "left", "R": "right"}},
        "hospital_ward": {"Description": "ward the subject was recruited from"},
    })
    _json(out / "task-rest_bold.json", {"TaskName": "rest", "RepetitionTime": 2.0})
    rng = np.random.default_rng(20240305)
    bold_affine = np.diag([8.0, 8.0, 8.0, 1.0])
    bold_affine[:3, 3] = [-60.0, -76.0, -36.0]
    for n, (label, (_age, _sex, _hand, when)) in enumerate(BIDS_SUBJECTS.items()):
        sub = out / f"sub-{label}"
        ses = sub / "ses-1"
        stem = f"sub-{label}_ses-1"
        _nifti(ses / "anat" / f"{stem}_T1w.nii.gz", head, affine, descrip=f"{label} Sinclair^Maud".encode())
        _json(ses / "anat" / f"{stem}_T1w.json", {
            "Modality": "MR", "MagneticFieldStrength": 3, "Manufacturer": "Siemens",
            "RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9, "FlipAngle": 9,
            "PatientName": "Sinclair^Maud", "PatientID": label, "PatientBirthDate": "1990-01-17",
            "InstitutionName": "Northfield General Hospital", "InstitutionAddress": "1 Infirmary Road, Northfield",
            "DeviceSerialNumber": "NFG-MR-77312", "StationName": "NFG-MR-02", "AcquisitionDateTime": when,
            "ProtocolName": f"T1 MPRAGE {label}", "ImageComments": f"patient {label} moved",
        })
        bold = (rng.normal(400, 20, (16, 20, 14, 6)) + 100).astype(np.int16)
        _nifti(ses / "func" / f"{stem}_task-rest_bold.nii.gz", bold, bold_affine, zooms=(8.0, 8.0, 8.0, 2.0),
               descrip=f"{label} rest".encode())
        _json(ses / "func" / f"{stem}_task-rest_bold.json", {
            "TaskName": "rest", "RepetitionTime": 2.0, "EchoTime": 0.03, "SliceTiming": [0.0, 1.0] * 7,
            "PhaseEncodingDirection": "j-", "TotalReadoutTime": 0.05,
            "AcquisitionTime": when[11:], "OperatorsName": "Lindqvist^Per", "PatientID": label,
        })
        epi = (rng.normal(300, 15, (16, 20, 14)) + 100).astype(np.int16)
        _nifti(ses / "fmap" / f"{stem}_dir-PA_epi.nii.gz", epi, bold_affine)
        target = f"ses-1/func/{stem}_task-rest_bold.nii.gz" if n == 0 else f"bids::sub-{label}/ses-1/func/{stem}_task-rest_bold.nii.gz"
        _json(ses / "fmap" / f"{stem}_dir-PA_epi.json", {
            "PhaseEncodingDirection": "j", "TotalReadoutTime": 0.05, "EchoTime": 0.03, "IntendedFor": [target],
            "AcquisitionDateTime": when, "DeviceSerialNumber": "NFG-MR-77312",
        })
        bold_time = when[:14] + f"{(int(when[14:16]) + 7) % 60:02d}" + when[16:]
        (ses / f"{stem}_scans.tsv").write_text(
            "filename\tacq_time\toperator\n"
            f"anat/{stem}_T1w.nii.gz\t{when}\tLindqvist\n"
            f"func/{stem}_task-rest_bold.nii.gz\t{bold_time}\tLindqvist\n"
            f"fmap/{stem}_dir-PA_epi.nii.gz\t{when}\tLindqvist\n", encoding="utf-8")
        (sub / f"sub-{label}_sessions.tsv").write_text(f"session_id\tacq_time\nses-1\t{when}\n", encoding="utf-8")


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    ct_series()
    rt_structure_set()
    mr_and_sr()
    bids_dataset(Path(__file__).resolve().parent / "bids")
