"""Redaction of JPEG lossless (process 14, 14 SV1) and HTJ2K lossless Pixel Data.

How the files were made: pydicom's test data (pydicom and pydicom-data) holds four real JPEG
lossless SV1 (.70) images, single-frame: SC_rgb_jpeg_gdcm (8-bit RGB), JPGLosslessP14SV1_1s_1f_8b
(8-bit), bad_sequence (12-bit) and JPEG-LL (16-bit signed); none in .57 or HTJ2K and none
multi-frame, so the others are pydicom's native test images (MR_small: 16-bit signed; emri_small: 10 frames of 16 bits;
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
    out = [encode_frame(f[:, :, 0] if f.shape[2] == 1 else f, ts, ds.BitsStored, ds.PixelRepresentation == 1, predictor)
           for f in frames]
    ds.PixelData = encapsulate(out, has_bot=True)
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.file_meta.TransferSyntaxUID = ts
    if "PlanarConfiguration" in ds:
        ds.PlanarConfiguration = 0
    return ds


def encode_frame(f: np.ndarray, ts: str, precision: int, signed: bool, predictor: int = 1) -> bytes:
    """A frame of stored values encoded in ``ts`` with imagecodecs (JPEG lossless: the bit pattern
    of signed values, at ``precision``, with ``predictor``)."""
    if signed:  # JPEG lossless holds the bit pattern
        f = (f.astype(np.int32) & ((1 << precision) - 1)).astype(np.uint16)
    if ts in (JPEG_57, JPEG_70):
        kw = {"colorspace": "rgb", "outcolorspace": "rgb"} if f.ndim == 3 else {}
        return ic.jpeg8_encode(f, lossless=True, predictor=predictor, bitspersample=precision, **kw)
    return ic.htj2k_encode(f, reversible=True, rgb=False, tlm=ts == HTJ2K_RPCL)


def _decode(ts: str, frame: bytes) -> np.ndarray:
    # JPEG lossless: a decoder other than the route's re-check (libjpeg-turbo)
    if ts in (JPEG_57, JPEG_70):
        return np.asarray(ic.jpeg8_decode(frame))
    return np.asarray(ic.jpeg2k_decode(frame))  # OpenJPEG, as pydicom decodes HTJ2K


def _frames(ds: pydicom.Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


CASES = [
    # pydicom's real files (predictor None): 8-bit RGB, 8-bit, 12-bit and 16-bit signed MONOCHROME2
    ("SC_rgb_jpeg_gdcm.dcm", JPEG_70, None, None),
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", JPEG_70, None, None),
    ("bad_sequence.dcm", JPEG_70, None, None),
    ("JPEG-LL.dcm", JPEG_70, None, None),
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


REGIONS = """
[[region]]
name = "banner"
where = { Modality = "MR" }
boxes = [[0, 0, 64, 10]]
"""


@pytest.fixture
def no_text(monkeypatch):  # type: ignore[no-untyped-def]
    """A detector that finds no text: the template alone redacts (the frames are still decoded
    and scanned, which needs a decoder of the syntax)."""
    from test_burned_in_run import install_stand_in

    install_stand_in(monkeypatch).detect_text = lambda frame, **_: []


def test_run_releases_the_lossless_routes(tmp_path, secret_file, no_text, dciodvfy) -> None:  # type: ignore[no-untyped-def]
    from conftest import dciodvfy_errors
    from pydicom.uid import generate_uid

    from medcloak.cli import main
    from medcloak.engine import run

    (tmp_path / "in").mkdir()
    made = {}
    for n, (name, ts) in enumerate([("MR_small.dcm", JPEG_57), ("MR_small.dcm", JPEG_70),
                                    ("emri_small.dcm", HTJ2K), ("emri_small.dcm", HTJ2K_RPCL)]):
        ds = _encoded(name, ts, predictor=6 if ts == JPEG_57 else 1)
        ds.SOPInstanceUID = generate_uid()
        ds.BurnedInAnnotation = "YES"
        ds.save_as(tmp_path / "in" / f"{n}.dcm", enforce_file_format=True)
        made[ds.SOPInstanceUID] = (tmp_path / "in" / f"{n}.dcm", ts)
    (tmp_path / "regions.toml").write_text(REGIONS)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 4
    outs = sorted((tmp_path / "out").rglob("*.dcm"))
    assert sorted(str(pydicom.dcmread(p).file_meta.TransferSyntaxUID) for p in outs) == sorted(
        ts for _p, ts in made.values())
    for path in outs:
        ds = pydicom.dcmread(path)
        ts = str(ds.file_meta.TransferSyntaxUID)
        assert ds.BurnedInAnnotation == "NO"
        for frame in _frames(ds):
            arr = _decode(ts, frame).astype(np.int64)
            black = -(1 << (ds.BitsStored - 1)) if ds.PixelRepresentation == 1 else 0
            if black and arr.min() >= 0:  # the bit pattern of the signed value
                black &= (1 << ds.BitsStored) - 1
            assert (arr[:10, :64] == black).all()
        if dciodvfy and ts in (JPEG_57, JPEG_70):  # this dciodvfy does not know the HTJ2K syntaxes
            (src,) = [p for p, t in made.values() if t == ts]
            assert dciodvfy_errors(path) - dciodvfy_errors(src) == set()
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_run_quarantines_a_corrupt_frame(tmp_path, secret_file, no_text) -> None:  # type: ignore[no-untyped-def]
    from medcloak.engine import run

    (tmp_path / "in").mkdir()
    ds = _encoded("MR_small.dcm", JPEG_70)
    (frame,) = _frames(ds)
    ds.PixelData = encapsulate([frame[: len(frame) // 2]], has_bot=True)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(tmp_path / "in" / "x.dcm", enforce_file_format=True)
    (tmp_path / "regions.toml").write_text(REGIONS)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 0 and summary.quarantined == 1
    assert not list((tmp_path / "out").rglob("*.dcm"))


@pytest.mark.parametrize(("name", "bits"), [("MR_small.dcm", None), ("MR_small.dcm", 12), ("emri_small.dcm", None)])
def test_decoder_plugin_gives_pydicoms_values(name, bits) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.dicom_codecs import register

    register()
    register()  # twice: added once
    native = pydicom.dcmread(get_testdata_file(name)).pixel_array
    if bits is not None:
        native = native.astype(np.int32) & ((1 << bits) - 1)
    for ts in (JPEG_57, JPEG_70):
        ds = _encoded(name, ts, bits, predictor=5)
        assert np.array_equal(ds.pixel_array, native)
    rgb = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    (frame,) = _frames(rgb)
    assert np.array_equal(rgb.pixel_array, ic.jpeg8_decode(frame))
