"""JPEG frames of encapsulated Pixel Data lose their APPn/COM metadata during a run; pixels stay."""

from __future__ import annotations

import struct

import numpy as np
import pydicom
import pytest
from conftest import pydicom_test_files
from pydicom.encaps import parse_basic_offsets

from medcloak.engine import run
from medcloak.formats.dicom_pixels import items
from medcloak.pixels.jpeg_meta import split_frames

pytest.importorskip("PIL.Image")


def _segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _item(value: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(value)) + value


def test_multiframe_exif_thumbnail_at_fragment_end(tmp_path, secret_file):
    ds = pydicom.dcmread(pydicom_test_files() / "examples_ybr_color.dcm")
    ds.BurnedInAnnotation = "NO"  # an ultrasound image is released only when declared free of text
    original_pixels = ds.pixel_array.copy()
    frames = split_frames(b"".join(items(ds.PixelData)[1:]))
    assert len(frames) == int(ds.NumberOfFrames) > 1
    thumb = frames[0]  # a whole JPEG, FFD9 and all, inside the EXIF of every frame
    fragments = []
    for frame in frames:
        exif = _segment(0xE1, b"Exif\x00\x00QUENNELL-GPS" + thumb)
        dirty = frame[:2] + exif + _segment(0xFE, b"operator QUENNELL") + frame[2:]
        cut = 2 + len(exif)  # the first fragment ends right after the thumbnail's FFD9
        assert dirty[cut - 2 : cut] == b"\xff\xd9"
        head, tail = dirty[:cut], dirty[cut:]
        fragments += [head, b"", tail + (b"\x00" if len(tail) % 2 else b"")]
    ds.PixelData = _item(b"") + b"".join(_item(f) for f in fragments) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    ds["PixelData"].is_undefined_length = True
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "us.dcm")
    assert (tmp_path / "in" / "us.dcm").read_bytes().count(b"QUENNELL") == 2 * len(frames)

    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1
    (out_path,) = sorted((tmp_path / "out").rglob("*.dcm"))
    raw = out_path.read_bytes()
    assert b"QUENNELL" not in raw
    out = pydicom.dcmread(out_path)
    out_items = items(out.PixelData)
    offsets = parse_basic_offsets(out.PixelData)
    assert len(offsets) == len(frames) == len(out_items) - 1  # one fragment per frame, BOT rebuilt
    assert offsets == [sum(8 + len(f) for f in out_items[1:i + 1]) for i in range(len(frames))]
    assert all(len(f) % 2 == 0 for f in out_items)
    assert [f.rstrip(b"\x00") for f in out_items[1:]] == [f.rstrip(b"\x00") for f in frames]
    assert np.array_equal(out.pixel_array, original_pixels)


def test_frame_count_mismatch_is_quarantined(tmp_path, secret_file):
    ds = pydicom.dcmread(pydicom_test_files() / "examples_ybr_color.dcm")
    ds.BurnedInAnnotation = "NO"  # so that the frame count is what quarantines it
    ds.NumberOfFrames = int(ds.NumberOfFrames) + 1
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "us.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.quarantined == 1
