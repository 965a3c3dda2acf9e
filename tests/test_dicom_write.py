"""The fast data-set writer against its reference, pydicom's own ``write_dataset``, byte for byte."""

from __future__ import annotations

import struct

import pydicom
import pytest
from conftest import SECRET, pydicom_test_files
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from medcloak.formats.dicom import deidentify_dataset, read
from medcloak.formats.dicom_write import file_meta_bytes, write_dataset_fast
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

CORPUS = sorted(p for p in pydicom_test_files().rglob("*") if p.is_file())


def _encode(fn, ds, implicit: bool, little: bool = True) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    fn(fp, ds)
    return fp.getvalue()


def _readable(path):
    try:
        ds = read(path)
        _encode(write_dataset, ds, *ds.original_encoding)
    except Exception:  # noqa: BLE001 - files pydicom itself cannot round-trip are not a reference
        return None
    return ds


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_fast_writer_equals_pydicom_on_read_and_on_deidentified_data_sets(path):
    ds = _readable(path)
    if ds is None:
        pytest.skip("pydicom cannot write this file back: no reference")
    implicit, little = ds.original_encoding
    assert _encode(write_dataset_fast, ds, implicit, little) == _encode(write_dataset, ds, implicit, little)
    # after de-identification: a mix of raw (kept) and new elements, at every depth
    ds = _readable(path)
    try:
        deidentify_dataset(ds, load_profile(None, ["retain-safe-private"]), Keyring(SECRET))
    except Exception:  # noqa: BLE001 - quarantined objects are never written
        return
    assert _encode(write_dataset_fast, ds, implicit, little) == _encode(write_dataset, ds, implicit, little)


def test_file_meta_bytes_read_back_by_pydicom():
    import io

    meta = file_meta_bytes("1.2.840.10008.5.1.4.1.1.2", "2.25.123", "1.2.840.10008.1.2.1", "2.25.9", "MEDCLOAK_010")
    (length,) = struct.unpack("<I", meta[8:12])
    assert length == len(meta) - 12 and len(meta) % 2 == 0
    element = struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 26) + b"1.2.840.10008.5.1.4.1.1.2\x00"
    info = pydicom.dcmread(io.BytesIO(b"\x00" * 128 + b"DICM" + meta + element)).file_meta
    assert info.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert info.MediaStorageSOPInstanceUID == "2.25.123"  # odd length, padded with NUL
    assert info.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert info.ImplementationVersionName == "MEDCLOAK_010"
    assert info.FileMetaInformationGroupLength == length
