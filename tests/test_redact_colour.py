"""The fill colour of a redaction, route by route: black, grey and white must come out as black,
grey and white after a standard decode (pydicom's ``pixel_array`` with its colour conversion,
which is what a DICOM viewer shows), whatever colour space the codec stores, and on lossless
routes no pixel outside the box may change."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from conftest import pydicom_test_files

from medcloak.cli import main
from medcloak.formats.dicom_redact import redact_dataset

FILLS = {"black": 0, "grey": 128, "white": 255}
BOX = (8, 16, 40, 48)  # whole 16x16 MCUs, so the JPEG route paints exactly the box


def _testdata(name: str) -> pydicom.Dataset:
    from pydicom.data import get_testdata_file

    local = pydicom_test_files() / name
    path = local if local.exists() else get_testdata_file(name)  # pydicom-data, a test dependency
    if path is None:
        pytest.skip(f"{name} is not available")
    return pydicom.dcmread(path)


def _reencoded(name: str, ts: str, photometric: str) -> pydicom.Dataset:
    """pydicom's 8-bit RGB SC_rgb.dcm, converted to ``photometric`` and compressed in ``ts``."""
    from pydicom.pixels import convert_color_space

    ds = _testdata(name)
    arr = ds.pixel_array
    if photometric == "YBR_FULL":
        arr = convert_color_space(arr, "RGB", "YBR_FULL")
    ds.PhotometricInterpretation = photometric
    ds.compress(ts, arr, generate_instance_uid=False)
    return ds


def _monochrome1_jpeg() -> pydicom.Dataset:
    """An 8-bit MONOCHROME1 JPEG baseline object (Pillow's encoder; no such sample ships)."""
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    grey = np.random.default_rng(3).integers(40, 220, (64, 64), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, "JPEG", quality=90)
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    for keyword in ("RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    return ds


# (name, how to get it, lossless): one file per route and stored colour space
ROUTES = {
    "native RGB": (lambda: _testdata("SC_rgb.dcm"), True),
    "native RGB planar": (lambda: _testdata("color-pl.dcm"), True),
    "native YBR_FULL": (lambda: _testdata("SC_ybr_full_uncompressed.dcm"), True),
    "native YBR_FULL_422": (lambda: _testdata("SC_ybr_full_422_uncompressed.dcm"), True),
    "RLE RGB": (lambda: _testdata("SC_rgb_rle_2frame.dcm"), True),
    "RLE YBR_FULL": (lambda: _reencoded("SC_rgb.dcm", "1.2.840.10008.1.2.5", "YBR_FULL"), True),
    "JPEG-LS near-lossless RGB": (lambda: _testdata("SC_rgb_jls_lossy_line.dcm"), True),
    "JPEG-LS YBR_FULL": (lambda: _reencoded("SC_rgb.dcm", "1.2.840.10008.1.2.4.80", "YBR_FULL"), True),
    "JPEG 2000 YBR_RCT (US1_J2KR)": (lambda: _testdata("US1_J2KR.dcm"), True),
    "JPEG 2000 YBR_RCT (GDCM)": (lambda: _testdata("GDCMJ2K_TextGBR.dcm"), True),
    "JPEG 2000 RGB": (lambda: _reencoded("SC_rgb.dcm", "1.2.840.10008.1.2.4.90", "RGB"), True),
    "JPEG 2000 YBR_FULL": (lambda: _reencoded("SC_rgb.dcm", "1.2.840.10008.1.2.4.90", "YBR_FULL"), True),
    "JPEG YBR_FULL_422 JFIF": (lambda: _testdata("examples_ybr_color.dcm"), False),
    "JPEG YBR_FULL": (lambda: _testdata("SC_rgb_jpeg_dcmtk.dcm"), False),
    "JPEG RGB, ids 'RGB'": (lambda: _testdata("SC_rgb_dcmtk_+eb+cr.dcm"), False),
    "JPEG RGB, Adobe transform 0": (lambda: _testdata("SC_jpeg_no_color_transform_2.dcm"), False),
    # component ids 0, 1, 2 and no marker: libjpeg alone would guess YCbCr; DICOM says RGB
    "JPEG RGB, no marker": (lambda: _testdata("SC_jpeg_no_color_transform.dcm"), False),
}


def _decoded(ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's standard decode, frames first, samples last; from the written bytes."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    arr = pydicom.dcmread(io.BytesIO(buf.getvalue())).pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    return arr.reshape(frames, int(ds.Rows), int(ds.Columns), samples)


@pytest.mark.parametrize("fill", list(FILLS))
@pytest.mark.parametrize("route", list(ROUTES))
def test_fill_decodes_to_its_colour(route: str, fill: str) -> None:
    make, lossless = ROUTES[route]
    ds = make()
    ts = str(ds.file_meta.TransferSyntaxUID)
    before = _decoded(ds)
    assert redact_dataset(ds, ts, [BOX], fill) > 0
    assert str(ds.file_meta.TransferSyntaxUID) == ts
    after = _decoded(ds)
    x0, y0, x1, y1 = BOX
    # lossy: a YCbCr to RGB conversion rounds, and smooth chroma upsampling may tint the outermost
    # pixel ring of the box (documented)
    ring, tolerance = (0, 0) if lossless else (1, 2)
    inside = after[:, y0 + ring : y1 - ring, x0 + ring : x1 - ring].astype(int)
    assert np.abs(inside - FILLS[fill]).max() <= tolerance, np.unique(inside.reshape(-1, inside.shape[-1]), axis=0)
    outside = np.ones(after.shape[1:3], bool)
    if lossless:
        outside[y0:y1, x0:x1] = False
    else:  # untouched blocks keep their coefficients; chroma upsampling may reach one MCU out
        outside[max(0, y0 - 16) : y1 + 16, max(0, x0 - 16) : x1 + 16] = False
    assert np.array_equal(after[:, outside], before[:, outside])


def test_native_ybr_full_422_in_pairs() -> None:
    """Native 4:2:2 stores Y1 Y2 Cb Cr per pair of pixels, which share their chroma: a box is
    rounded outward to even columns (it was refused before), and no other pair changes."""
    ds = _testdata("SC_ybr_full_422_uncompressed.dcm")
    before = _decoded(ds)
    assert redact_dataset(ds, "1.2.840.10008.1.2.1", [(9, 5, 39, 20)], "black") == 1
    after = _decoded(ds)
    assert (after[:, 5:20, 8:40] == 0).all()
    outside = np.ones(after.shape[1:3], bool)
    outside[5:20, 8:40] = False
    assert np.array_equal(after[:, outside], before[:, outside])


@pytest.mark.parametrize("fill, shown", [("black", 0), ("white", 255)])
def test_monochrome1_jpeg_fill_as_displayed(fill: str, shown: int) -> None:
    """MONOCHROME1 shows the lowest value as white: "black" is the highest stored value, as on
    the native and re-encoding routes."""
    ds = _monochrome1_jpeg()
    assert redact_dataset(ds, str(ds.file_meta.TransferSyntaxUID), [(0, 0, 16, 16)], fill) > 0
    stored = _decoded(ds)[0, :16, :16, 0].astype(int)
    assert np.abs(stored - (255 - shown)).max() <= 1


def test_redact_command_on_us1_j2kr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The command of the report: a black box on the YBR_RCT frame decodes as black, not as
    RGB (0, 128, 128), and every other pixel is kept."""
    from pydicom.data import get_testdata_file

    src = get_testdata_file("US1_J2KR.dcm")
    if src is None:
        pytest.skip("pydicom-data's US1_J2KR.dcm is not available")
    out = tmp_path / "x.dcm"
    assert main(["redact", str(src), "--box", "0,0,200,100", "--out", str(out)]) == 0
    red = pydicom.dcmread(out)
    assert red.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90" and red.PhotometricInterpretation == "YBR_RCT"
    after, before = red.pixel_array, pydicom.dcmread(src).pixel_array
    assert (after[:100, :200] == 0).all()
    # a second, independent JPEG 2000 decoder (imagecodecs' OpenJPEG) shows the same
    imagecodecs = pytest.importorskip("imagecodecs")
    from pydicom.encaps import generate_frames

    (frame,) = generate_frames(red.PixelData, number_of_frames=1)
    assert np.array_equal(imagecodecs.jpeg2k_decode(frame), after)
    keep = np.ones(after.shape[:2], bool)
    keep[:100, :200] = False
    assert np.array_equal(after[keep], before[keep])
