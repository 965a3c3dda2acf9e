"""Region redaction of DICOM Pixel Data by transfer syntax, the ``redact`` command, and the Clean
Pixel Data option of ``run`` with region templates (see test_burned_in_run.py for the frames
scanned for text)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import jpegref as R
import numpy as np
import pydicom
import pytest
from conftest import pydicom_test_files
from pydicom.encaps import parse_basic_offsets

from medcloak.cli import main
from medcloak.engine import run
from medcloak.errors import UnsupportedInputError, UsageError
from medcloak.formats.dicom_pixels import items
from medcloak.formats.dicom_redact import redact_dataset
from medcloak.pixels.jpeg_meta import split_frames
from medcloak.pixels.jpeg_redact import coefficients

pytest.importorskip("PIL.Image")
US = pydicom_test_files() / "examples_ybr_color.dcm"


def _item(value: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(value)) + value


def _frames(ds) -> list[bytes]:  # type: ignore[no-untyped-def]
    return split_frames(b"".join(items(bytes(ds.PixelData))[1:]))


def _hit_grids(frame: bytes, box) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    from test_jpeg_redact import expected_blocks

    return expected_blocks(R.decode_coefficients(frame, strict=False), [box])


def _assert_frame_redacted(old: bytes, new: bytes, box, hit: bool) -> None:  # type: ignore[no-untyped-def]
    before, after = coefficients(old), coefficients(new)
    grids = _hit_grids(old, box) if hit else [np.zeros(c.shape[:2], bool) for c in before]
    for b, a, grid in zip(before, after, grids):
        assert np.array_equal(a[~grid], b[~grid])
        assert not a[grid][:, 1:].any()
    if not hit:
        assert old.rstrip(b"\x00") == new.rstrip(b"\x00")


def test_multiframe_ultrasound_every_frame() -> None:
    ds = pydicom.dcmread(US)
    ts = str(ds.file_meta.TransferSyntaxUID)
    old = _frames(ds)
    box = (10, 10, 100, 60)
    # an Extended Offset Table is now wrong: it must go
    ds.ExtendedOffsetTable = b"\x00" * 8 * len(old)
    ds.ExtendedOffsetTableLengths = b"\x00" * 8 * len(old)
    assert redact_dataset(ds, ts, [box], threads=2) > 0
    assert "ExtendedOffsetTable" not in ds and "ExtendedOffsetTableLengths" not in ds
    new = _frames(ds)
    assert len(new) == len(old) == int(ds.NumberOfFrames)
    for o, n in zip(old, new):
        _assert_frame_redacted(o, n, box, True)
    fragments = items(bytes(ds.PixelData))
    offsets = parse_basic_offsets(bytes(ds.PixelData))
    assert offsets == [sum(8 + len(f) for f in fragments[1 : i + 1]) for i in range(len(old))]
    assert all(len(f) % 2 == 0 for f in fragments)
    rgb = ds.pixel_array
    assert (rgb[:, 17:55, 17:95] == 0).all()  # inside the MCU-rounded box, one pixel ring spared


def test_frames_selected() -> None:
    ds = pydicom.dcmread(US)
    ts = str(ds.file_meta.TransferSyntaxUID)
    old = _frames(ds)
    redact_dataset(ds, ts, [(0, 0, 50, 50)], frames=[1, 4])
    new = _frames(ds)
    for i, (o, n) in enumerate(zip(old, new)):
        _assert_frame_redacted(o, n, (0, 0, 50, 50), i in (1, 4))


def test_boxes_per_frame_jpeg() -> None:
    ds = pydicom.dcmread(US)
    ts = str(ds.file_meta.TransferSyntaxUID)
    old = _frames(ds)
    per = [[] for _ in old]
    per[0], per[3] = [(0, 0, 50, 50)], [(100, 40, 180, 90), (8, 200, 60, 230)]
    assert redact_dataset(ds, ts, [], frame_boxes=per) > 0
    new = _frames(ds)
    for i, (o, n) in enumerate(zip(old, new)):
        if i == 3:
            before, after = coefficients(o), coefficients(n)
            grids = [a | b for a, b in zip(_hit_grids(o, per[3][0]), _hit_grids(o, per[3][1]))]
            for b, a, grid in zip(before, after, grids):
                assert np.array_equal(a[~grid], b[~grid]) and not a[grid][:, 1:].any()
        else:
            _assert_frame_redacted(o, n, (0, 0, 50, 50), i == 0)
    with pytest.raises(UsageError, match="lists of boxes"):
        redact_dataset(ds, ts, [], frame_boxes=[[(0, 0, 8, 8)]])
    assert redact_dataset(ds, ts, [], frame_boxes=[[] for _ in old]) == 0


def test_boxes_per_frame_native_and_reencoded() -> None:
    ds, arr = _native_ds("MONOCHROME2", 16, False, frames=3)
    per = [[(0, 0, 4, 4)], [], [(10, 5, 20, 9), (0, 0, 4, 4)]]
    assert redact_dataset(ds, "1.2.840.10008.1.2.1", [], frame_boxes=per) == 3
    out = np.frombuffer(ds.PixelData, arr.dtype).reshape(arr.shape)
    expected = arr.copy()
    expected[0, :4, :4] = 0
    expected[2, 5:9, 10:20] = 0
    expected[2, :4, :4] = 0
    assert np.array_equal(out, expected)
    ds = pydicom.dcmread(pydicom_test_files() / "SC_rgb_rle_2frame.dcm")
    ds.pixel_array_options(raw=True)
    before = ds.pixel_array.copy()
    assert redact_dataset(ds, str(ds.file_meta.TransferSyntaxUID), [], frame_boxes=[[], [(2, 3, 9, 7)]]) == 1
    after = ds.pixel_array
    assert np.array_equal(after[0], before[0]) and (after[1, 3:7, 2:9] == 0).all()
    before[1, 3:7, 2:9] = 0
    assert np.array_equal(after, before)


def test_color3d_jpeg_baseline() -> None:
    from pydicom.data import get_testdata_file

    try:
        path = get_testdata_file("color3d_jpeg_baseline.dcm")
    except Exception:  # noqa: BLE001 - not installed and not downloadable here
        path = None
    if path is None:
        pytest.skip("pydicom-data's color3d_jpeg_baseline.dcm is not available")
    ds = pydicom.dcmread(path)
    old = _frames(ds)
    box = (40, 30, 200, 90)
    redact_dataset(ds, str(ds.file_meta.TransferSyntaxUID), [box], threads=2)
    new = _frames(ds)
    assert len(new) == len(old) == int(ds.NumberOfFrames) > 1
    for o, n in zip(old, new):
        _assert_frame_redacted(o, n, box, True)


def test_fragment_layouts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An EXIF thumbnail's FFD9 at a fragment's end, frames over several fragments, an empty BOT
    and zero-length fragments: frames are still found by parsing, and all of them redacted."""
    ds = pydicom.dcmread(US)
    frames = _frames(ds)
    thumb = frames[0]
    fragments = []
    for i, frame in enumerate(frames):
        exif = b"\xff\xe1" + (len(thumb) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + thumb
        dirty = frame[:2] + exif + frame[2:]
        cut = 2 + len(exif)
        assert dirty[cut - 2 : cut] == b"\xff\xd9"
        mid = cut + (len(dirty) - cut) // 2 // 2 * 2
        parts = [dirty[:cut], b"", dirty[cut:mid], dirty[mid:]] if i % 2 else [dirty[:cut], dirty[cut:]]
        fragments += [p + (b"\x00" if len(p) % 2 else b"") for p in parts]
    ds.PixelData = _item(b"") + b"".join(_item(f) for f in fragments)  # pydicom adds the delimiter
    ds["PixelData"].is_undefined_length = True
    path = tmp_path / "us.dcm"
    ds.save_as(path)
    out = tmp_path / "r.dcm"
    assert main(["redact", str(path), "--box", "0,0,64,32", "--out", str(out)]) == 0
    red = pydicom.dcmread(out)
    new = _frames(red)
    assert len(new) == len(frames)
    assert b"Exif" not in out.read_bytes()  # metadata stripped by default
    for o, n in zip(frames, new):
        _assert_frame_redacted(o, n, (0, 0, 64, 32), True)


def _native_ds(photometric: str, bits: int, signed: bool, samples: int = 1, planar: int = 0, frames: int = 2):  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    rng = np.random.default_rng(1)
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    info = np.iinfo(dtype)
    shape = (frames, samples, 20, 30) if planar else (frames, 20, 30, samples)
    arr = rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dtype)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 20, 30, samples
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    ds.PhotometricInterpretation = photometric
    ds.NumberOfFrames = frames
    if samples > 1:
        ds.PlanarConfiguration = planar
    ds.PixelData = arr.tobytes()
    return ds, arr


@pytest.mark.parametrize(
    "photometric, bits, signed, samples, planar, black",
    [
        ("MONOCHROME2", 16, True, 1, 0, -(2**15)),
        ("MONOCHROME1", 16, False, 1, 0, 2**16 - 1),
        ("MONOCHROME2", 8, False, 1, 0, 0),
        ("RGB", 8, False, 3, 0, 0),
        ("RGB", 8, False, 3, 1, 0),
    ],
)
def test_native(photometric, bits, signed, samples, planar, black) -> None:  # type: ignore[no-untyped-def]
    ds, arr = _native_ds(photometric, bits, signed, samples, planar)
    assert redact_dataset(ds, "1.2.840.10008.1.2.1", [(3, 4, 10, 9)], frames=[1]) == 1
    out = np.frombuffer(ds.PixelData, arr.dtype).reshape(arr.shape)
    region = (slice(None), slice(4, 9), slice(3, 10)) if planar else (slice(4, 9), slice(3, 10))
    expected = arr.copy()
    if planar:
        expected[1][:, 4:9, 3:10] = black
    else:
        expected[1][4:9, 3:10] = black
    assert np.array_equal(out, expected)
    assert (out[1][region] == black).all() and np.array_equal(out[0], arr[0])


def test_native_big_endian_and_ybr() -> None:
    ds, arr = _native_ds("MONOCHROME2", 16, False, frames=1)
    ds.PixelData = arr.astype(">u2").tobytes()
    redact_dataset(ds, "1.2.840.10008.1.2.2", [(0, 0, 5, 5)], fill="white")
    out = np.frombuffer(ds.PixelData, ">u2").reshape(arr.shape)
    assert (out[0, :5, :5] == 2**16 - 1).all() and np.array_equal(out[0, 5:], arr[0, 5:])
    ds, arr = _native_ds("YBR_FULL", 8, False, samples=3, frames=1)
    redact_dataset(ds, "1.2.840.10008.1.2.1", [(0, 0, 5, 5)])
    out = np.frombuffer(ds.PixelData, np.uint8).reshape(arr.shape)
    assert (out[0, :5, :5] == [0, 128, 128]).all()


@pytest.mark.parametrize(
    "name",
    ["SC_rgb_rle_2frame.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
     "JPEGLSNearLossless_16.dcm"],
)
def test_lossless_reencoding(name) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(pydicom_test_files() / name)
    ts = str(ds.file_meta.TransferSyntaxUID)
    ds.pixel_array_options(raw=True)
    before = ds.pixel_array.copy()
    try:
        assert redact_dataset(ds, ts, [(2, 3, 9, 7)]) == 1
    except UnsupportedInputError as exc:  # a plug-in missing is a typed error, never a leak
        pytest.skip(str(exc))
    saved = io.BytesIO()
    ds.save_as(saved)
    again = pydicom.dcmread(io.BytesIO(saved.getvalue()))
    assert str(again.file_meta.TransferSyntaxUID) == ts
    again.pixel_array_options(raw=True)
    after = again.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    b = before.reshape(frames, before.shape[-3 if ds.SamplesPerPixel > 1 else -2], -1, ds.SamplesPerPixel)
    a = after.reshape(b.shape)
    mask = np.zeros(b.shape[1:3], bool)
    mask[3:7, 2:9] = True
    assert np.array_equal(a[:, ~mask], b[:, ~mask])
    assert len(np.unique(a[:, mask])) <= 3 and not np.array_equal(a[:, mask], b[:, mask])


def test_lossy_jpeg_2000_has_no_route() -> None:
    # JPEG lossless process 14 has its route now (test_dicom_lossless_routes.py)
    ds = pydicom.dcmread(pydicom_test_files() / "SC_rgb_jpeg_gdcm.dcm")
    for ts in ("1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"):
        with pytest.raises(UnsupportedInputError, match="no exact redaction route"):
            redact_dataset(ds, ts, [(0, 0, 4, 4)])


def test_redact_cli_on_jpeg(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = R.encode(np.full((24, 40), 200, np.uint8))
    dirty = data[:2] + b"\xff\xe1\x00\x10Exif\x00\x00GPSDATA!" + b"\xff\xfe\x00\x06note" + data[2:]
    src = tmp_path / "photo.jpg"
    src.write_bytes(dirty)
    out = tmp_path / "out.jpg"
    assert main(["redact", str(src), "--box", "0,0,8,8", "--out", str(out)]) == 0
    result = out.read_bytes()
    assert b"GPSDATA" not in result and b"note" not in result
    before, after = coefficients(data), coefficients(result)
    assert not after[0][0, 0, 1:].any() and np.array_equal(after[0][:, 1:], before[0][:, 1:])
    kept = tmp_path / "kept.jpg"
    assert main(["redact", str(src), "--box", "0,0,8,8", "--keep-metadata", "--out", str(kept)]) == 0
    assert b"GPSDATA" in kept.read_bytes()
    for bad in (["--box", "1,2,3"], ["--box", "0,0,8,8", "--frames", "1"], ["--box", "8,8,0,0"], ["--box", "a,b,c,d"]):
        assert main(["redact", str(src), *bad, "--out", str(tmp_path / "x.jpg")]) == 2
    assert main(["redact", str(src), "--box", "0,0,8,8", "--out", str(src)]) == 2
    (tmp_path / "t.txt").write_text("hello")
    assert main(["redact", str(tmp_path / "t.txt"), "--box", "0,0,8,8", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "y").exists()


def test_redact_cli_frames(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "r.dcm"
    assert main(["redact", str(US), "--box", "0,0,32,32", "--frames", "2-3,5", "--out", str(out)]) == 0
    old, new = _frames(pydicom.dcmread(US)), _frames(pydicom.dcmread(out))
    for i, (o, n) in enumerate(zip(old, new)):
        _assert_frame_redacted(o, n, (0, 0, 32, 32), i in (1, 2, 4))
    assert main(["redact", str(US), "--box", "0,0,32,32", "--frames", "0", "--out", str(out)]) == 2
    assert main(["redact", str(US), "--box", "0,0,32,32", "--frames", "31", "--out", str(out)]) == 2


REGIONS = """
[[region]]
name = "banner"
where = { Modality = "US", Manufacturer = "sonosite*", Rows = 240 }
boxes = [[0, 0, 320, 16]]
"""


def _us_input(tmp_path: Path, burned: str | None) -> Path:
    ds = pydicom.dcmread(US)
    if burned is not None:
        ds.BurnedInAnnotation = burned
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "us.dcm")
    return tmp_path / "in"


@pytest.fixture
def no_text(monkeypatch):  # type: ignore[no-untyped-def]
    """A detector that finds no text: what a template alone does (the frames of an ultrasound are
    scanned under the option too, see test_burned_in_run.py)."""
    from test_burned_in_run import install_stand_in

    install_stand_in(monkeypatch).detect_text = lambda frame, **_: []


def test_run_clean_pixel_data_with_template(tmp_path, secret_file, no_text) -> None:  # type: ignore[no-untyped-def]
    inp = _us_input(tmp_path, "YES")
    (tmp_path / "regions.toml").write_text(REGIONS)
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    assert ds.BurnedInAnnotation == "NO"
    codes = {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    assert "113101" in codes
    assert (ds.pixel_array[:, :15] == 0).all()
    old = _frames(pydicom.dcmread(US))
    for o, n in zip(old, _frames(ds)):
        _assert_frame_redacted(o, n, (0, 0, 320, 16), True)
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_run_clean_pixel_data_without_match(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    """A template that does not match applies no box; the frames are scanned all the same."""
    inp = _us_input(tmp_path, "YES")
    (tmp_path / "regions.toml").write_text(REGIONS.replace('Rows = 240', 'Rows = 480'))
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 1
    (line,) = [json.loads(t) for t in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert "pixel-regions-redacted" not in line["actions"] and line["actions"]["pixel-frames-scanned"] == 30


def test_run_template_on_unflagged_image_sets_code_only_when_applied(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    inp = _us_input(tmp_path, None)
    ct = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    ct.save_as(inp / "ct.dcm")
    (tmp_path / "regions.toml").write_text(REGIONS)
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 2
    by_modality = {pydicom.dcmread(p).Modality: pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")}
    us_codes = {i.CodeValue for i in by_modality["US"].DeidentificationMethodCodeSequence}
    ct_codes = {i.CodeValue for i in by_modality["CT"].DeidentificationMethodCodeSequence}
    assert "113101" in us_codes and "113101" not in ct_codes
    assert by_modality["US"].BurnedInAnnotation == "NO" and "BurnedInAnnotation" not in by_modality["CT"]
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_outside_ultrasound_regions(tmp_path, secret_file, no_text) -> None:  # type: ignore[no-untyped-def]
    from pydicom.dataset import Dataset

    ds = pydicom.dcmread(US)
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 64, 48
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 255, 191
    ds.SequenceOfUltrasoundRegions = [region]
    ds.BurnedInAnnotation = "YES"
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "us.dcm")
    (tmp_path / "regions.toml").write_text(
        '[[region]]\nname = "outside"\nwhere = { Modality = "US" }\noutside_ultrasound_regions = true\n'
    )
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"],
                  regions=tmp_path / "regions.toml")
    assert summary.ok == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(path).pixel_array
    orig = pydicom.dcmread(US).pixel_array
    keep = np.zeros(out.shape[1:3], bool)
    keep[48:192, 64:256] = True
    assert (out[:, ~keep] == 0).all()
    # the region is aligned to whole 16x16 MCUs (4:2:2 here: 16x8): its pixels are untouched
    assert np.array_equal(out[:, 49:191, 65:255], orig[:, 49:191, 65:255])


@pytest.mark.parametrize(
    "text",
    ["[[region]]\nboxes = [[0, 0, 4, 4]]\n", '[[region]]\nwhere = { Modality = "US" }\n',
     '[[region]]\nwhere = { NotAKeyword = "US" }\nboxes = [[0, 0, 4, 4]]\n',
     '[[region]]\nwhere = { Modality = "US" }\nboxes = [[4, 4, 0, 0]]\n', "not toml [", "",
     '[[region]]\nwhere = { Modality = "US" }\nboxes = [[0, 0, 4, 4]]\nfill = "pink"\n'],
)
def test_bad_region_files_are_usage_errors(tmp_path, text) -> None:  # type: ignore[no-untyped-def]
    inp = _us_input(tmp_path, None)
    (tmp_path / "regions.toml").write_text(text)
    assert main(["run", str(inp), "--out", str(tmp_path / "o"), "--option", "clean-pixel-data",
                 "--regions", str(tmp_path / "regions.toml")]) == 2


def test_regions_need_the_option_but_not_the_reverse(tmp_path) -> None:  # type: ignore[no-untyped-def]
    inp = _us_input(tmp_path, None)
    (tmp_path / "regions.toml").write_text(REGIONS)
    assert main(["run", str(inp), "--out", str(tmp_path / "o"), "--regions", str(tmp_path / "regions.toml")]) == 2
    assert not (tmp_path / "o").exists()
    # the option alone scans the frames for burned-in text (no template needed)
    assert main(["run", str(inp), "--out", str(tmp_path / "o"), "--option", "clean-pixel-data", "--quiet"]) == 0
