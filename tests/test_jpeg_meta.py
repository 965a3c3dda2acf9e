"""JPEG metadata stripping: real JPEGs (Pillow), decoded pixels unchanged, entropy data untouched."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak.errors import CorruptInputError
from medcloak.pixels.jpeg_meta import parse_stream, split_frames, strip_jpeg_metadata

Image = pytest.importorskip("PIL.Image")


def _segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _markers(data: bytes) -> list[tuple[int, bytes]]:
    """(marker code, payload) of every segment before the first SOS, by a plain walk."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        code = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        out.append((code, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return out


def _entropy(data: bytes) -> bytes:
    """Everything from the first SOS on (scan headers, entropy data, EOI)."""
    return data[data.index(b"\xff\xda") :]


def _jpeg(mode: str, size: tuple[int, int], subsampling: int, progressive: bool = False,
          thumbnail: bool = False) -> bytes:
    rng = np.random.default_rng(sum(size) + subsampling)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    im = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    exif = Image.Exif()
    exif[0x010E] = "PATIENT QUENNELL HARRIET"  # ImageDescription
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, comment=b"COMMENT QUENNELL", icc_profile=b"ICC QUENNELL " * 20,
            subsampling=subsampling, progressive=progressive, quality=90)
    data = buf.getvalue()
    # add what Pillow does not write: XMP (APP1), JUMBF (APP11), IPTC (APP13), a COM between
    # the tables, and a JFIF thumbnail of 2x1 RGB pixels
    extra = (_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x>QUENNELL</x>")
             + _segment(0xEB, b"JP\x00\x01QUENNELL") + _segment(0xED, b"Photoshop 3.0\x00QUENNELL"))
    jfif = data[2 : 4 + int.from_bytes(data[4:6], "big")]
    if thumbnail and jfif[4:9] == b"JFIF\x00":
        jfif = _segment(0xE0, jfif[4:16] + b"\x02\x01" + b"QUE" * 2)
    rest = data[2 + len(data[2 : 4 + int.from_bytes(data[4:6], "big")]) :]
    dqt = rest.index(b"\xff\xdb")
    rest = rest[:dqt] + _segment(0xFE, b"between tables QUENNELL") + rest[dqt:]
    return b"\xff\xd8" + jfif + extra + rest


CASES = [
    ("L", (17, 9), 0, False), ("RGB", (64, 48), 0, False), ("RGB", (33, 47), 1, False),
    ("RGB", (31, 15), 2, False), ("RGB", (40, 40), 2, True), ("L", (8, 8), 0, True),
]


@pytest.mark.parametrize("mode, size, subsampling, progressive", CASES)
def test_strip_removes_all_metadata_keeps_pixels_and_entropy_data(mode, size, subsampling, progressive):
    data = _jpeg(mode, size, subsampling, progressive, thumbnail=True)
    assert data.count(b"QUENNELL") >= 6
    out = strip_jpeg_metadata(data)
    assert b"QUENNELL" not in out and b"QUE" not in out
    assert _entropy(out) == _entropy(data)  # scans untouched, byte for byte
    kinds = {code for code, _ in _markers(out)}
    assert not kinds & ({*range(0xE1, 0xF0)} | {0xFE})
    jfif = [p for c, p in _markers(out) if c == 0xE0]
    assert all(p[12:14] == b"\x00\x00" and len(p) == 14 for p in jfif)  # no thumbnail left
    before = np.asarray(Image.open(io.BytesIO(data)))
    after = np.asarray(Image.open(io.BytesIO(out)))
    assert np.array_equal(before, after)
    assert strip_jpeg_metadata(out) == out  # idempotent


def test_adobe_app14_is_kept():
    im = Image.fromarray(np.zeros((8, 8, 4), np.uint8), "CMYK")
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    data = buf.getvalue()
    out = strip_jpeg_metadata(data)
    assert [p[:5] for c, p in _markers(out) if c == 0xEE] == [b"Adobe"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), np.asarray(Image.open(io.BytesIO(data))))


def test_bytes_after_eoi_are_dropped():
    data = _jpeg("L", (8, 8), 0) + b"hidden QUENNELL payload"
    assert strip_jpeg_metadata(data).endswith(b"\xff\xd9")


def test_split_frames_parses_structure_not_ffd9():
    """An EXIF thumbnail holds a whole JPEG (with its own FFD9) inside APP1: splitting must not
    end the frame there."""
    thumb = _jpeg("L", (8, 8), 0)
    outer = _jpeg("RGB", (16, 16), 2)
    with_thumb = outer[:2] + _segment(0xE1, b"Exif\x00\x00" + thumb) + outer[2:]
    frames = split_frames(with_thumb + b"\x00" + with_thumb + b"\xff" + outer)
    assert frames == [with_thumb, with_thumb, outer]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_truncated_or_flipped_streams_give_a_typed_error_never_a_crash(data):
    base = _jpeg("RGB", (16, 16), 2)
    cut = data.draw(st.integers(0, len(base)))
    blob = bytearray(base[:cut])
    for _ in range(data.draw(st.integers(0, 3))):
        if blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    try:
        out = strip_jpeg_metadata(bytes(blob))
    except CorruptInputError:
        return
    assert out.startswith(b"\xff\xd8") and out.endswith(b"\xff\xd9")
    assert parse_stream(out)[0] == out
