"""Bits above High Bit in native Pixel Data, and the overlays that draw in them (the retired
overlay-in-pixel-data encoding): cleared in every frame under every run, stored values unchanged,
the overlay group removed, both in the manifest; a clean object keeps its Pixel Data byte for byte;
the post-write check and ``medcloak verify`` catch what was left. Real files of pydicom and
pydicom-data (a test dependency), with a name and an ID drawn into the unused bits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataelem import DataElement
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medcloak.cli import main
from medcloak.engine import run
from medcloak.formats import dicom_bits
from medcloak.formats.dicom_bits import (
    _canonical,
    _state,
    clear_high_bits,
    high_bits_fault,
)
from medcloak.verify import verify_release

TEXT = "DOE^JOHN 12345678"


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)  # pydicom's or pydicom-data's (a test dependency)
    assert path is not None, f"{name} is not available: install pydicom-data"
    return Path(path)


def _mask(rows: int, cols: int, size: int = 0) -> np.ndarray:
    img = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(img).text((2, 2), TEXT, fill=255, font=ImageFont.load_default(size=size or max(rows // 12, 8)))
    mask = np.asarray(img) > 127
    assert mask.any()
    return mask


def _dtype(ds: pydicom.Dataset) -> np.dtype:
    big = ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    return np.dtype(f"{'>' if big else '<'}u{ds.BitsAllocated // 8}")


def _plant(ds: pydicom.Dataset, bit: int, frames: list[int] | None = None) -> None:
    """Draw the text into ``bit`` of the chosen frames (all by default), flipping it as an XOR
    overlay would: signed samples, whose unused bits copy the sign, then show it too."""
    count = int(ds.get("NumberOfFrames", 1) or 1)
    cells = np.frombuffer(ds.PixelData, _dtype(ds)).reshape(count, ds.Rows, ds.Columns).copy()
    mask = _mask(ds.Rows, ds.Columns)
    for f in range(count) if frames is None else frames:
        cells[f][mask] ^= 1 << bit
    ds.PixelData = cells.tobytes()


def _declare_overlay(ds: pydicom.Dataset, group: int = 0x6000, bit: int = 15) -> None:
    """The retired overlay-in-pixel-data attributes: Overlay Bits Allocated = Bits Allocated, a
    Bit Position, no Overlay Data; with a label and a description that name someone."""
    for element, vr, value in (
        (0x0010, "US", ds.Rows), (0x0011, "US", ds.Columns), (0x0040, "CS", "G"), (0x0050, "SS", [1, 1]),
        (0x0100, "US", ds.BitsAllocated), (0x0102, "US", bit), (0x0022, "LO", "drawn by SMITH^ANNA"),
        (0x1500, "LO", "JOHN DOE"),
    ):
        ds[group << 16 | element] = DataElement(group << 16 | element, vr, value)


def _write(ds: pydicom.Dataset, path: Path, syntax: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if syntax is not None:
        ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True)
    return path


def _manifest(out: Path) -> list[dict]:
    return [json.loads(t) for t in (out.parent / (out.name + ".audit") / "manifest.jsonl").read_text().splitlines()]


def _released(out: Path) -> pydicom.Dataset:
    (path,) = out.rglob("*.dcm")
    return pydicom.dcmread(path)


def _overlay_tags(ds: pydicom.Dataset) -> list[int]:
    return [int(e.tag) for e in ds if e.tag.group >> 8 == 0x60]


# ---- the judgement, against an obvious reference ---------------------------------------------------


def _reference(value: int, bits: int, stored: int, signed: bool) -> int:
    """One cell made canonical, the slow way: the sample's bits kept, the others 0 or copies of
    the sign bit."""
    sample = value & ((1 << stored) - 1)
    if signed and sample >> (stored - 1) & 1:
        sample |= ((1 << bits) - 1) ^ ((1 << stored) - 1)
    return sample


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([8, 16, 32, 64]).flatmap(
        lambda bits: st.tuples(
            st.just(bits), st.integers(1, bits - 1), st.booleans(), st.sampled_from("<>"),
            st.lists(st.integers(0, (1 << bits) - 1), min_size=1, max_size=40),
        )
    )
)
def test_canonical_matches_the_reference(case) -> None:  # type: ignore[no-untyped-def]
    bits, stored, signed, order, values = case
    cells = np.array(values, np.dtype(f"{order}u{bits // 8}"))
    out = _canonical(cells, stored, signed)
    assert out.dtype == cells.dtype
    assert [int(v) for v in out] == [_reference(v, bits, stored, signed) for v in values]
    above, unextended = _state(cells, stored, signed)
    assert above == any(v >> stored for v in values)
    assert unextended == (signed and any(_reference(v, bits, stored, True) != v for v in values))
    assert _state(out, stored, signed)[1] is False


def test_edges_of_the_judgement() -> None:
    u16 = np.dtype("<u2")
    top = np.array([0xFFFF, 0x0FFF, 0xF800, 0x07FF], u16)
    assert [int(v) for v in _canonical(top, 12, False)] == [0x0FFF, 0x0FFF, 0x0800, 0x07FF]
    assert [int(v) for v in _canonical(top, 12, True)] == [0xFFFF, 0xFFFF, 0xF800, 0x07FF]
    assert _state(np.array([0x0800], u16), 12, True) == (False, True)  # negative, high bits 0
    assert _state(np.array([0xF800], u16), 12, True) == (True, False)  # sign-extended


# ---- unsigned, signed, frames ---------------------------------------------------------------------


def test_clean_real_files_untouched_in_memory() -> None:
    for name in ("MR_small.dcm", "CT_small.dcm", "MR2_UNCI.dcm", "693_UNCI.dcm", "emri_small.dcm",
                 "emri_small_big_endian.dcm", "examples_overlay.dcm", "rtdose.dcm", "OBXXXX1A.dcm"):
        ds = pydicom.dcmread(_testdata(name))
        ts = str(ds.file_meta.TransferSyntaxUID)
        before = ds.PixelData
        assert clear_high_bits(ds, ts) == 0, name
        assert ds.PixelData is before, name  # not even copied
        assert high_bits_fault(ds, ts) is None, name


def test_unsigned_graphic_cleared_values_kept() -> None:
    clean = pydicom.dcmread(_testdata("MR2_UNCI.dcm"))  # 12 of 16 bits, unsigned
    ds = pydicom.dcmread(_testdata("MR2_UNCI.dcm"))
    for bit in (12, 15):
        _plant(ds, bit)
    assert ds.PixelData != clean.PixelData
    assert np.array_equal(ds.pixel_array, clean.pixel_array)  # pydicom ignores the bits already
    assert "set in 1 frame" in (high_bits_fault(ds, "1.2.840.10008.1.2.1") or "")
    assert clear_high_bits(ds, "1.2.840.10008.1.2.1") == 1
    assert ds.PixelData == clean.PixelData  # the original's bits above High Bit were 0
    assert np.array_equal(ds.pixel_array, clean.pixel_array)
    assert high_bits_fault(ds, "1.2.840.10008.1.2.1") is None


def test_signed_sign_extended_graphic_cleared() -> None:
    clean = pydicom.dcmread(_testdata("693_UNCI.dcm"))  # 14 of 16 bits, signed, negatives sign-extended
    assert (clean.pixel_array < 0).any()
    ds = pydicom.dcmread(_testdata("693_UNCI.dcm"))
    _plant(ds, 15)
    assert "neither 0 nor copies of the sign bit" in (high_bits_fault(ds, "1.2.840.10008.1.2.1") or "")
    assert clear_high_bits(ds, "1.2.840.10008.1.2.1") == 1
    assert ds.PixelData == clean.PixelData
    # stored values as pydicom reads them, and as a reader of plain int16 does
    assert np.array_equal(ds.pixel_array, clean.pixel_array)
    assert np.array_equal(np.frombuffer(ds.PixelData, "<i2").reshape(clean.pixel_array.shape), clean.pixel_array)


def test_signed_zero_high_bits_kept_mixture_rewritten() -> None:
    clean = pydicom.dcmread(_testdata("693_UNCI.dcm"))
    ds = pydicom.dcmread(_testdata("693_UNCI.dcm"))
    ds.PixelData = (np.frombuffer(ds.PixelData, "<u2") & 0x3FFF).tobytes()  # negatives stored with 0 above
    zeroed = ds.PixelData
    assert clear_high_bits(ds, "1.2.840.10008.1.2.1") == 0  # one convention throughout: kept
    assert ds.PixelData is zeroed and np.array_equal(ds.pixel_array, clean.pixel_array)
    _plant(ds, 15)  # now 0 for most samples, 1 under the text: a mixture
    assert clear_high_bits(ds, "1.2.840.10008.1.2.1") == 1
    assert ds.PixelData == clean.PixelData and np.array_equal(ds.pixel_array, clean.pixel_array)
    # pydicom-data's mlut_18 mixes the conventions itself: rewritten, values unchanged
    mixed = pydicom.dcmread(_testdata("mlut_18.dcm"))
    values = mixed.pixel_array.copy()
    assert clear_high_bits(mixed, "1.2.840.10008.1.2.1") == 1
    assert np.array_equal(mixed.pixel_array, values)
    assert np.array_equal(np.frombuffer(mixed.PixelData, "<i2").reshape(values.shape), values)


def test_only_the_planted_frames_change() -> None:
    clean = pydicom.dcmread(_testdata("emri_small.dcm"))  # 10 frames, 12 of 16 bits
    ds = pydicom.dcmread(_testdata("emri_small.dcm"))
    _plant(ds, 15, frames=[2, 7])
    assert clear_high_bits(ds, "1.2.840.10008.1.2.1") == 2
    assert ds.PixelData == clean.PixelData
    assert np.array_equal(ds.pixel_array, clean.pixel_array)


def test_high_bit_in_doubt_refused() -> None:
    ds = pydicom.dcmread(_testdata("MR2_UNCI.dcm"))
    ds.HighBit = 15  # 12 bits stored at the top of the cell: the retired layout
    with pytest.raises(Exception, match="High Bit 15 with Bits Stored 12"):
        clear_high_bits(ds, "1.2.840.10008.1.2.1")
    assert "High Bit must be Bits Stored - 1" in (high_bits_fault(ds, "1.2.840.10008.1.2.1") or "")


# ---- in a run -------------------------------------------------------------------------------------


def test_run_clears_bits_removes_overlay_records_both(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    clean = pydicom.dcmread(_testdata("MR2_UNCI.dcm"))
    ds = pydicom.dcmread(_testdata("MR2_UNCI.dcm"))
    _plant(ds, 15)
    _declare_overlay(ds)
    inp = _write(ds, tmp_path / "in" / "mr.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1 and summary.quarantined == 0
    (line,) = _manifest(tmp_path / "out")
    assert line["actions"]["pixel-high-bits-cleared"] == 1
    assert line["actions"]["overlays-in-pixel-data-removed"] == 1
    out = _released(tmp_path / "out")
    assert _overlay_tags(out) == []
    assert out.PixelData == clean.PixelData
    assert np.array_equal(out.pixel_array, pydicom.dcmread(inp).pixel_array)
    data = next((tmp_path / "out").rglob("*.dcm")).read_bytes()
    assert b"SMITH" not in data and b"JOHN DOE" not in data
    assert main(["verify", str(tmp_path / "out"), "--audit", str(tmp_path / "out.audit")]) == 0


@pytest.mark.parametrize("name", ["MR_small.dcm", "CT_small.dcm", "MR2_UNCI.dcm", "693_UNCI.dcm", "emri_small.dcm",
                                  "emri_small_big_endian.dcm"])
def test_run_keeps_clean_pixel_data_byte_for_byte(tmp_path, secret_file, name) -> None:  # type: ignore[no-untyped-def]
    src = pydicom.dcmread(_testdata(name))
    shutil.copy(_testdata(name), tmp_path / "in.dcm")
    summary = run([tmp_path / "in.dcm"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1
    (line,) = _manifest(tmp_path / "out")
    assert "pixel-high-bits-cleared" not in line["actions"]
    assert "overlays-in-pixel-data-removed" not in line["actions"]
    assert _released(tmp_path / "out").PixelData == src.PixelData
    assert main(["verify", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    "1.2.840.10008.1.2.2"])
def test_run_every_native_syntax(tmp_path, secret_file, syntax) -> None:  # type: ignore[no-untyped-def]
    big = syntax == "1.2.840.10008.1.2.2"
    name = "emri_small_big_endian.dcm" if big else "emri_small.dcm"
    clean = pydicom.dcmread(_testdata(name))
    ds = pydicom.dcmread(_testdata(name))
    _plant(ds, 15, frames=[0, 9])
    _plant(ds, 13, frames=[4])
    _declare_overlay(ds, 0x6002, 13)
    _write(ds, tmp_path / "in" / "mr.dcm", None if big else syntax)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1
    (line,) = _manifest(tmp_path / "out")
    assert line["actions"]["pixel-high-bits-cleared"] == 3
    assert line["actions"]["overlays-in-pixel-data-removed"] == 1
    out = _released(tmp_path / "out")
    assert str(out.file_meta.TransferSyntaxUID) == syntax
    assert _overlay_tags(out) == []
    assert out.PixelData == clean.PixelData
    assert np.array_equal(out.pixel_array, clean.pixel_array)
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_encapsulated_bits_left_overlay_removed(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(_testdata("emri_small_RLE.dcm"))
    pixels = ds.PixelData
    _declare_overlay(ds)
    _write(ds, tmp_path / "in" / "rle.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1
    (line,) = _manifest(tmp_path / "out")
    assert line["actions"]["overlays-in-pixel-data-removed"] == 1
    assert "pixel-high-bits-cleared" not in line["actions"]
    out = _released(tmp_path / "out")
    assert _overlay_tags(out) == [] and out.PixelData == pixels


def test_real_overlay_data_still_handled_by_the_profile(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    # pydicom's examples_overlay has Overlay Data (60xx,3000): the profile's rule, not this one
    shutil.copy(_testdata("examples_overlay.dcm"), tmp_path / "in.dcm")
    run([tmp_path / "in.dcm"], tmp_path / "out", secret_file=secret_file)
    (line,) = _manifest(tmp_path / "out")
    assert line["status"] == "ok" and "overlays-in-pixel-data-removed" not in line["actions"]
    assert _overlay_tags(_released(tmp_path / "out")) == []  # Overlay Data removed, its group with it


def test_both_encodings_in_one_object(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    # pydicom-data's Siemens MR has an overlay with its own Overlay Data in group 6000; a second
    # one, in bit 13 of Pixel Data, is declared in group 6002
    name = "MR-SIEMENS-DICOM-WithOverlays.dcm"
    clean = pydicom.dcmread(_testdata(name))
    ds = pydicom.dcmread(_testdata(name))
    assert 0x60003000 in ds
    _plant(ds, 13)
    _declare_overlay(ds, 0x6002, 13)
    _write(ds, tmp_path / "in" / "mr.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1
    (line,) = _manifest(tmp_path / "out")
    assert line["actions"]["overlays-in-pixel-data-removed"] == 1
    assert line["actions"]["pixel-high-bits-cleared"] == 1
    out = _released(tmp_path / "out")
    assert _overlay_tags(out) == []  # 6000 by the profile (Overlay Data removed), 6002 by this step
    assert out.PixelData == clean.PixelData
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_high_bit_in_doubt_quarantined(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(_testdata("MR2_UNCI.dcm"))
    ds.HighBit = 15
    _write(ds, tmp_path / "in" / "mr.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.quarantined == 1
    (line,) = _manifest(tmp_path / "out")
    assert "High Bit must be Bits Stored - 1" in line["reason"]


# ---- the checks catch what is left ----------------------------------------------------------------


def test_post_write_check_catches_bits_left(tmp_path, secret_file, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(_testdata("emri_small.dcm"))
    _plant(ds, 15, frames=[3])
    _write(ds, tmp_path / "in" / "mr.dcm")
    monkeypatch.setattr("medcloak.formats.dicom.clear_high_bits", lambda ds, ts: 0)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.quarantined == 1
    (line,) = _manifest(tmp_path / "out")
    assert "bits above High Bit are set in 1 frame of native Pixel Data in the written object" in line["reason"]
    monkeypatch.setattr("medcloak.formats.dicom.remove_overlays_in_pixel_data", lambda ds: 0)
    monkeypatch.setattr("medcloak.formats.dicom.clear_high_bits", dicom_bits.clear_high_bits)
    ds = pydicom.dcmread(_testdata("emri_small.dcm"))
    _declare_overlay(ds)
    _write(ds, tmp_path / "in2" / "mr.dcm")
    summary = run([tmp_path / "in2"], tmp_path / "out2", secret_file=secret_file)
    assert summary.quarantined == 1
    (line,) = _manifest(tmp_path / "out2")
    assert "overlay group 6000 has no Overlay Data" in line["reason"]


def test_verify_flags_bits_and_overlays_in_a_release(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(_testdata("693_UNCI.dcm"), tmp_path / "in.dcm")
    run([tmp_path / "in.dcm"], tmp_path / "out", secret_file=secret_file)
    assert verify_release(tmp_path / "out") == []
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    _plant(ds, 15)
    ds.save_as(path)
    assert [f.message for f in verify_release(tmp_path / "out")] == [
        "bits above High Bit are neither 0 nor copies of the sign bit in 1 frame of native Pixel Data"
    ]
    ds = pydicom.dcmread(path)
    clear_high_bits(ds, "1.2.840.10008.1.2.1")
    _declare_overlay(ds, 0x6004)
    ds.save_as(path)
    messages = [f.message for f in verify_release(tmp_path / "out")]
    assert messages == ["overlay group 6004 has no Overlay Data: it points into Pixel Data"]
    assert main(["verify", str(tmp_path / "out")]) == 1


def _dciodvfy_errors(path: Path) -> list[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_dciodvfy_no_more_errors_than_the_input(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    for name in ("MR2_UNCI.dcm", "693_UNCI.dcm"):
        ds = pydicom.dcmread(_testdata(name))
        _plant(ds, 15)
        _declare_overlay(ds)
        inp = _write(ds, tmp_path / name / "in" / "x.dcm")
        run([inp.parent], tmp_path / name / "out", secret_file=secret_file)
        (out,) = (tmp_path / name / "out").rglob("*.dcm")
        before, after = _dciodvfy_errors(inp), _dciodvfy_errors(out)
        assert any("Overlay" in e for e in before), name  # the retired encoding: Overlay Data missing
        assert len(after) < len(before) and not any("Overlay" in e for e in after), (name, after)
