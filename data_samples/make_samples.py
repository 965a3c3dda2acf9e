"""Regenerate the DICOM samples in this folder from pydicom's bundled test files.

Run: ``python data_samples/make_samples.py`` (needs pydicom). Every identifier planted here is
synthetic (invented names, IDs, addresses); the images are pydicom's test images. See SOURCES.md.
"""

from __future__ import annotations

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


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    ct_series()
    rt_structure_set()
    mr_and_sr()
