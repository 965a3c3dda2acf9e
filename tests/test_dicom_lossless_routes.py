"""Redaction of JPEG lossless (process 14, 14 SV1) and HTJ2K lossless Pixel Data.

How the files were made: SC_rgb_jpeg_gdcm.dcm is pydicom's own JPEG lossless SV1 (.70) file (8-bit
RGB, written by GDCM). pydicom's test data holds no other file in these syntaxes, so the others are
pydicom's native test images (MR_small: 16-bit signed; emri_small: 10 frames of 16 bits;
SC_rgb_2frame: 8-bit RGB, 2 frames; MR_small cut to 12 bits) encoded frame by frame into the syntax
with imagecodecs (libjpeg-turbo for JPEG lossless, OpenJPH for HTJ2K).
"""

from __future__ import annotations

import imagecodecs as ic
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from medcloak.errors import CorruptInputError
from medcloak.formats.dicom_redact import redact_dataset

JPEG_57, JPEG_70 = "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"
HTJ2K, HTJ2K_RPCL = "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202"
BOX = (3, 5, 20, 17)


def _encoded(name: str, ts: str, bits: int | None = None, predictor: int = 1) -> pydicom.Dataset:
    """pydicom's native test file ``name`` with its frames encoded in ``ts`` (Bits Stored cut to
    ``bits`` where given)."""
    ds = pydicom.dcmread(get_testdata_file(name))
    arr = ds.pixel_array
    count = int(ds.get("NumberOfFrames", 1) or 1)
    frames = arr.reshape(count, ds.Rows, ds.Columns, -1)
    if bits is not None:
        frames = (frames.astype(np.int32) & ((1 << bits) - 1)).astype(np.uint16)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    signed = ds.PixelRepresentation == 1
    precision = ds.BitsStored
    out = []
    for f in frames:
        f = f[:, :, 0] if f.shape[2] == 1 else f
        if signed:  # JPEG lossless holds the bit pattern
            f = (f.astype(np.int32) & ((1 << precision) - 1)).astype(np.uint16)
        if ts in (JPEG_57, JPEG_70):
            kw = {"colorspace": "rgb", "outcolorspace": "rgb"} if f.ndim == 3 else {}
            out.append(ic.jpeg8_encode(f, lossless=True, predictor=predictor, bitspersample=precision, **kw))
        else:
            out.append(ic.htj2k_encode(f, reversible=True, rgb=False, tlm=ts == HTJ2K_RPCL))
    ds.PixelData = encapsulate(out, has_bot=True)
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.file_meta.TransferSyntaxUID = ts
    if "PlanarConfiguration" in ds:
        ds.PlanarConfiguration = 0
    return ds


def _decode(ts: str, frame: bytes) -> np.ndarray:
    # JPEG lossless: a decoder other than the route's re-check (libjpeg-turbo)
    if ts in (JPEG_57, JPEG_70):
        return np.asarray(ic.jpeg8_decode(frame))
    return np.asarray(ic.jpeg2k_decode(frame))  # OpenJPEG, as pydicom decodes HTJ2K


def _frames(ds: pydicom.Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


CASES = [
    ("SC_rgb_jpeg_gdcm.dcm", JPEG_70, None, None),  # the real file
    ("MR_small.dcm", JPEG_57, None, 6),
    ("MR_small.dcm", JPEG_70, None, 1),
    ("MR_small.dcm", JPEG_57, 12, 7),
    ("emri_small.dcm", JPEG_70, None, 1),
    ("SC_rgb_2frame.dcm", JPEG_57, None, 4),
    ("MR_small.dcm", HTJ2K, None, None),
    ("MR_small.dcm", HTJ2K_RPCL, 12, None),
    ("emri_small.dcm", HTJ2K_RPCL, None, None),
    ("SC_rgb_2frame.dcm", HTJ2K, None, None),
]


@pytest.mark.parametrize(("name", "ts", "bits", "predictor"), CASES)
@pytest.mark.parametrize("fill", ["black", "white"])
def test_route(name, ts, bits, predictor, fill) -> None:  # type: ignore[no-untyped-def]
    if predictor is None and ts in (JPEG_57, JPEG_70):
        ds = pydicom.dcmread(get_testdata_file(name))
    else:
        ds = _encoded(name, ts, bits, predictor or 1)
    old = _frames(ds)
    count = len(old)
    per = [[BOX] if i % 2 == 0 else [] for i in range(count)]  # every other frame
    assert redact_dataset(ds, ts, [], fill, frame_boxes=per) == (count + 1) // 2
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(_bytes(ds)))
    assert ds.file_meta.TransferSyntaxUID == ts
    new = _frames(ds)
    bits_stored, signed = ds.BitsStored, ds.PixelRepresentation == 1
    level = {"black": -(1 << (bits_stored - 1)) if signed else 0,
             "white": (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1}[fill]
    mask = np.zeros((ds.Rows, ds.Columns), bool)
    mask[BOX[1]:BOX[3], BOX[0]:BOX[2]] = True
    for i in range(count):
        if not per[i]:
            assert new[i] == old[i]  # byte-identical
            continue
        assert new[i] != old[i]
        a, b = _decode(ts, old[i]), _decode(ts, new[i])
        assert np.array_equal(a[~mask], b[~mask])
        got = b[mask].astype(np.int64)
        if signed and b.dtype.kind == "u":
            got = np.where(got >= 1 << (bits_stored - 1), got - (1 << bits_stored), got)
        assert (got == level).all()
        if ts in (JPEG_57, JPEG_70):
            assert b"\xff\xfe" not in new[i][: new[i].find(b"\xff\xda")]  # no COM
            assert new[i][new[i].find(b"\xff\xda") + 5 + 2 * new[i][new[i].find(b"\xff\xda") + 4]] == (
                1 if ts == JPEG_70 else (predictor or 1))
        else:
            assert b"OpenJPH" not in new[i] and b"\xff\x64" not in new[i][: new[i].find(b"\xff\x90")]


def _bytes(ds: pydicom.Dataset) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("ts", [JPEG_70, HTJ2K])
def test_corrupt_codestream_refused(ts) -> None:  # type: ignore[no-untyped-def]
    ds = _encoded("MR_small.dcm", ts)
    (frame,) = _frames(ds)
    bad = frame[: len(frame) // 3]
    ds.PixelData = encapsulate([bad], has_bot=True)
    with pytest.raises(CorruptInputError):
        redact_dataset(ds, ts, [BOX])
