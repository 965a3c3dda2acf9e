"""Standalone photographs in a run: metadata gone, pixels identical, names pseudonymous."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from conftest import all_bytes_and_names

from medcloak.engine import run
from medcloak.pixels.png_meta import KEEP, chunks
from medcloak.verify import verify_release

Image = pytest.importorskip("PIL.Image")
PngImagePlugin = pytest.importorskip("PIL.PngImagePlugin")


def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _meta(path) -> tuple[dict, dict]:
    with Image.open(path) as im:
        return dict(im.getexif()), dict(im.info)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _photos(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    im = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x010E] = "Harriet QUENNELL at home"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.0), 3: "W", 4: (0.0, 7.0, 40.0)}  # GPS
    exif[0xA431] = "SERIALQUENNELL"  # body serial number
    jpg = folder / "Quennell_Harriet_rash.jpg"
    im.save(jpg, "JPEG", exif=exif, comment=b"taken by QUENNELL")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "QUENNELL")
    info.add_itxt("Description", "Harriet QUENNELL, left arm", zip=True)
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info, exif=exif, icc_profile=b"QUENNELL-ICC" * 4)
    data = buf.getvalue()
    iend = data.rindex(b"IEND") - 4
    data = data[:iend] + _chunk(b"prVt", b"QUENNELL private") + data[iend:] + b"trailing QUENNELL"
    (folder / "Quennell_Harriet_arm.png").write_bytes(data)
    return pixels


def test_photographs_released_without_metadata(tmp_path, secret_file):
    pixels = _photos(tmp_path / "in")
    before_png = _pixels(tmp_path / "in" / "Quennell_Harriet_arm.png")
    before_jpg = _pixels(tmp_path / "in" / "Quennell_Harriet_rash.jpg")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 2 and summary.quarantined == 0
    blob, names = all_bytes_and_names(tmp_path / "out")
    assert b"quennell" not in blob and "quennell" not in names and "harriet" not in names
    jpg = next((tmp_path / "out" / "photos").glob("*.jpg"))
    png = next((tmp_path / "out" / "photos").glob("*.png"))
    assert np.array_equal(_pixels(jpg), before_jpg)
    assert np.array_equal(_pixels(png), before_png)
    assert np.array_equal(before_png, pixels)
    assert {kind for kind, _ in chunks(png.read_bytes())} <= KEEP
    assert _meta(jpg)[0] == {} and "exif" not in _meta(png)[1] and "Author" not in _meta(png)[1]
    assert verify_release(tmp_path / "out") == []
    # tampering is found
    jpg.write_bytes(jpg.read_bytes()[:2] + b"\xff\xfe\x00\x05abc" + jpg.read_bytes()[2:])
    assert [f.message for f in verify_release(tmp_path / "out")] == ["photograph still carries metadata"]


def test_corrupt_png_is_quarantined(tmp_path, secret_file):
    _photos(tmp_path / "in")
    path = tmp_path / "in" / "Quennell_Harriet_arm.png"
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF  # inside a chunk: its CRC no longer matches
    path.write_bytes(bytes(data))
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1 and summary.quarantined == 1
