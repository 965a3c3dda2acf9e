"""Metadata inside encapsulated Pixel Data, in every JPEG, JPEG-LS, JPEG 2000 and HTJ2K syntax:
comments naming an operator or the patient are removed during every run, the frames' coded data
stay byte for byte, the pixels decode the same, and the object is released."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest
from conftest import SECRET, pydicom_test_files
from pydicom.encaps import encapsulate, generate_frames

from medcloak.engine import run
from medcloak.errors import UnsupportedInputError, VerificationError
from medcloak.formats import dicom as dicom_format
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pixels.j2k_meta import clean_frame, strip_comments
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

KEYRING = Keyring(SECRET)
PROFILE = load_profile()
OPERATOR = b"Operator QUENNELLTECH ID TK7734219 scanned 03/12/1961"
SOT, SOD, EOC = b"\xff\x90", b"\xff\x93", b"\xff\xd9"


def _testdata(name: str) -> pydicom.Dataset:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)  # pydicom's or pydicom-data's (a test dependency)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return pydicom.dcmread(path)


def _patient_text(ds: pydicom.Dataset) -> bytes:
    """A comment naming the patient as the header does (the post-write check looks for it)."""
    ds.PatientName = "QUENNELL^ARABELLA"
    ds.PatientID = "PID88123457"
    return b"patient QUENNELL^ARABELLA PID88123457 " + OPERATOR


def _frames(ds: pydicom.Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _with_frames(ds: pydicom.Dataset, frames: list[bytes], syntax: str | None = None) -> pydicom.Dataset:
    if syntax:
        ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].is_undefined_length = True
    ds["PixelData"].VR = "OB"
    ds.BurnedInAnnotation = "NO"  # so that only the codestream decides
    for keyword, value in (("StudyInstanceUID", "1.2.826.0.1.3680043.8.498.141"), ("Modality", "OT"),
                           ("SeriesInstanceUID", "1.2.826.0.1.3680043.8.498.142")):
        if not ds.get(keyword):
            setattr(ds, keyword, value)  # some test files lack them (and would be quarantined for it)
    for tag in (0x7FE00001, 0x7FE00002):
        if tag in ds:
            del ds[tag]
    return ds


def _release(ds: pydicom.Dataset, tmp_path, name: str = "in.dcm"):
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    released = deidentify_dicom(path, PROFILE, KEYRING)
    return released, pydicom.dcmread(io.BytesIO(released.data))


# ---- JPEG 2000 ---------------------------------------------------------------------------------


def _com(text: bytes) -> bytes:
    return b"\xff\x64" + (len(text) + 4).to_bytes(2, "big") + b"\x00\x01" + text


def _tile_parts(code: bytes) -> list[tuple[int, int]]:
    """(start, end) of each tile-part, followed by Psot alone (independent of medcloak's walk)."""
    pos, out = code.index(SOT + b"\x00\x0a"), []
    while code[pos : pos + 2] == SOT:
        psot = int.from_bytes(code[pos + 6 : pos + 10], "big")
        end = pos + psot if psot else len(code.rstrip(b"\x00")) - 2
        out.append((pos, end))
        pos = end
    assert code[pos : pos + 2] == EOC
    return out


def _set_tlm(code: bytes) -> bytes:
    """``code`` with its TLM segment (one, ST=1, SP=1, or made so) listing its tile-parts."""
    first = code.index(SOT + b"\x00\x0a")
    parts = _tile_parts(code)
    tlm = b"\x00\x50" + b"".join(b"\x00" + (b - a).to_bytes(4, "big") for a, b in parts)
    tlm = b"\xff\x55" + (len(tlm) + 2).to_bytes(2, "big") + tlm
    at = code.find(b"\xff\x55", 0, first)
    if at < 0:
        return code[:first] + tlm + code[first:]
    end = at + 2 + int.from_bytes(code[at + 2 : at + 4], "big")
    return code[:at] + tlm + code[end:]


def _plant_j2k(code: bytes, main: bytes | None, tile: bytes | None) -> bytes:
    """COM segments planted in the main header and after every SOT, Psot (and TLM) fixed."""
    parts = _tile_parts(code)
    out = [code[: parts[0][0]], _com(main) if main else b""]
    for a, b in parts:
        extra = _com(tile) if tile else b""
        psot = int.from_bytes(code[a + 6 : a + 10], "big")
        psot = psot + len(extra) if psot else 0
        out += [code[a : a + 6], psot.to_bytes(4, "big"), code[a + 10 : a + 12], extra, code[a + 12 : b]]
    out.append(code[parts[-1][1] :])
    planted = b"".join(out)
    return _set_tlm(planted) if b"\xff\x55" in code[: parts[0][0]] else planted


def _split_tile(code: bytes, count: int) -> bytes:
    """A one-tile codestream written by OpenJPEG with PLT, split into ``count`` tile-parts at
    packet boundaries (PLT dropped, TLM listing them)."""
    (a, b), = _tile_parts(code)
    plt = code.index(b"\xff\x58", a)
    plt_end = plt + 2 + int.from_bytes(code[plt + 2 : plt + 4], "big")
    lengths, value = [], 0
    for byte in code[plt + 5 : plt_end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            lengths.append(value)
            value = 0
    sod = code.index(SOD, plt_end)
    assert sod == plt_end and sum(lengths) == b - sod - 2
    cuts = np.array_split(np.array(lengths), count)
    pos, parts = sod + 2, []
    for k, group in enumerate(cuts):
        size = int(group.sum())
        sot = SOT + b"\x00\x0a\x00\x00" + (14 + size).to_bytes(4, "big") + bytes((k, count))
        parts.append(sot + SOD + code[pos : pos + size])
        pos += size
    return _set_tlm(code[:a] + b"".join(parts) + code[b:])


def _decode_j2k(code: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpeg2k_decode(code)


J2K_FILES = ["MR_small_jp2klossless.dcm", "US1_J2KR.dcm", "JPEG2000.dcm", "emri_small_jpeg_2k_lossless.dcm"]


@pytest.mark.parametrize("name", J2K_FILES)
def test_j2k_comments_in_main_and_tile_part_headers_are_removed(tmp_path, name):
    ds = _testdata(name)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    before = ds.pixel_array.copy()
    text = _patient_text(ds)
    frames = [_plant_j2k(f, text, OPERATOR) for f in _frames(ds)]
    ds = _with_frames(ds, frames)
    released, out = _release(ds, tmp_path)
    assert b"QUENNELL" not in released.data and b"TK7734219" not in released.data and b"PID88123457" not in released.data
    assert released.counts.get("jpeg-2000-frames-stripped") == 1
    assert str(out.file_meta.TransferSyntaxUID) == syntax
    assert np.array_equal(out.pixel_array, before)
    for original, cleaned in zip(frames, _frames(out)):
        assert b"\xff\x64" not in cleaned[: cleaned.index(SOT)]
        (a, b), = _tile_parts(cleaned)
        (c, d), = _tile_parts(original)
        assert cleaned[cleaned.index(SOD, a) : b] == original[original.index(SOD, c) : d]  # data untouched
        assert np.array_equal(_decode_j2k(cleaned), _decode_j2k(original))


def test_j2k_comment_naming_the_patient_is_still_caught_when_not_stripped(tmp_path, monkeypatch):
    ds = _testdata("MR_small_jp2klossless.dcm")
    text = _patient_text(ds)
    ds = _with_frames(ds, [_plant_j2k(f, text, None) for f in _frames(ds)])
    monkeypatch.setattr(dicom_format, "strip_jpeg_frames", lambda ds, ts: 0)
    with pytest.raises(VerificationError):
        _release(ds, tmp_path)


def test_a_clean_j2k_object_is_released_with_its_frames_unchanged(tmp_path):
    ds = _testdata("MR_small_jp2klossless.dcm")
    released, out = _release(ds, tmp_path)  # loses the encoder's COM
    assert released.counts.get("jpeg-2000-frames-stripped") == 1
    again, out2 = _release(out, tmp_path, "again.dcm")
    assert "jpeg-2000-frames-stripped" not in again.counts
    assert out2.PixelData == out.PixelData and np.array_equal(out2.pixel_array, ds.pixel_array)


@pytest.mark.parametrize("psot_zero", [False, True])
def test_tile_parts_and_tlm_are_rewritten(psot_zero):
    openjpeg = pytest.importorskip("openjpeg")
    pixels = (np.arange(96 * 128, dtype=np.uint16).reshape(96, 128) * 37) % 4096
    code = _split_tile(openjpeg.encode(pixels, add_tlm=True, add_plt=True), 3)
    if psot_zero:  # the last tile-part's length left to the EOC
        a, _ = _tile_parts(code)[-1]
        code = code[: a + 6] + b"\x00\x00\x00\x00" + code[a + 10 :]
    assert np.array_equal(_decode_j2k(code), pixels) and len(_tile_parts(code)) == 3
    planted = _plant_j2k(code, b"dr QUENNELL", OPERATOR)
    assert np.array_equal(_decode_j2k(planted), pixels)
    clean, removed, end = strip_comments(planted)
    assert removed == 5 and end == len(planted)  # OpenJPEG's, the main header's, three tile-parts' and b"QUENNELL" not in clean
    at = code.index(b"\xff\x64")  # OpenJPEG's own COM in the main header goes too
    expected = _set_tlm(code[:at] + code[at + 2 + int.from_bytes(code[at + 2 : at + 4], "big") :])
    assert clean == expected
    assert np.array_equal(_decode_j2k(clean), pixels)


def test_tlm_that_does_not_list_every_tile_part_is_refused(tmp_path, secret_file):
    openjpeg = pytest.importorskip("openjpeg")
    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    code = _plant_j2k(_split_tile(openjpeg.encode(pixels, add_tlm=True, add_plt=True), 2), None, OPERATOR)
    at = code.index(b"\xff\x55")
    assert code[at + 2 : at + 4] == b"\x00\x0e"  # two entries of five bytes
    short = code[:at] + b"\xff\x55\x00\x09" + code[at + 4 : at + 11] + code[at + 16 :]
    with pytest.raises(UnsupportedInputError):
        strip_comments(short)
    ds = _testdata("MR_small_jp2klossless.dcm")  # in a run: quarantined, and the reason says why
    (tmp_path / "in").mkdir()
    _with_frames(ds, [short]).save_as(tmp_path / "in" / "mr.dcm", enforce_file_format=True)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    (row,) = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert summary.quarantined == 1 and "TLM" in row["reason"] and not list((tmp_path / "out").rglob("*.dcm"))


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203"])
def test_htj2k_comments_are_removed(tmp_path, syntax):
    imagecodecs = pytest.importorskip("imagecodecs")
    ds = _testdata("MR_small_jp2klossless.dcm")
    pixels = ds.pixel_array.copy()
    text = _patient_text(ds)
    code = imagecodecs.htj2k_encode(pixels, level=0)
    planted = _plant_j2k(code, text, OPERATOR)
    ds = _with_frames(ds, [planted], syntax)
    released, out = _release(ds, tmp_path)
    assert b"QUENNELL" not in released.data and released.counts.get("jpeg-2000-frames-stripped") == 1
    (cleaned,) = _frames(out)
    assert b"\xff\x64" not in cleaned[: cleaned.index(SOT)]
    assert cleaned[cleaned.index(SOD) :] == code[code.index(SOD) :]  # data untouched
    assert np.array_equal(imagecodecs.htj2k_decode(cleaned), pixels)


def test_jp2_file_in_a_frame_is_unwrapped():
    ds = pydicom.dcmread(pydicom_test_files() / "GDCMJ2K_TextGBR.dcm")
    (frame,) = _frames(ds)
    clean, removed = clean_frame(frame)
    assert removed >= 1 and clean[:2] == b"\xff\x4f" and clean.endswith(EOC)
    assert np.array_equal(_decode_j2k(clean), _decode_j2k(frame))


# ---- JPEG-LS -----------------------------------------------------------------------------------


def _seg(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + (len(payload) + 2).to_bytes(2, "big") + payload


def _without_leading_appn(frame: bytes) -> bytes:
    pos = 2
    while frame[pos] == 0xFF and 0xE0 <= frame[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(frame[pos + 2 : pos + 4], "big")
    return frame[:2] + frame[pos:]


def _plant_jpeg(frame: bytes, text: bytes) -> bytes:
    """COM and APPn after SOI, before every scan and before EOI (so between scans too)."""
    dirty = frame[:2] + _seg(0xFE, text) + _seg(0xE1, b"Exif\x00\x00" + text) + frame[2:]
    dirty = dirty.replace(b"\xff\xda", _seg(0xFE, b"scan " + text) + b"\xff\xda")
    assert dirty.endswith(EOC)
    return dirty[:-2] + _seg(0xEB, b"JP" + text) + EOC


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm",
                                  "JPEGLSNearLossless_08.dcm", "SC_rgb_jls_lossy_sample.dcm"])
def test_jpeg_ls_com_and_appn_are_removed(tmp_path, name):
    ds = _testdata(name)
    before = ds.pixel_array.copy()
    text = _patient_text(ds)
    clean = [_without_leading_appn(f.rstrip(b"\x00")) for f in _frames(ds)]  # CharLS's SPIFF header goes too
    ds = _with_frames(ds, [_plant_jpeg(f, text) for f in clean])
    released, out = _release(ds, tmp_path)
    assert b"QUENNELL" not in released.data and b"TK7734219" not in released.data
    assert released.counts.get("jpeg-ls-frames-stripped") == 1
    assert [f.rstrip(b"\x00") for f in _frames(out)] == clean
    assert np.array_equal(out.pixel_array, before)


def test_a_clean_jpeg_ls_object_is_released_with_its_pixel_data_unchanged(tmp_path):
    ds = _testdata("MR_small_jpeg_ls_lossless.dcm")
    released, out = _release(ds, tmp_path)
    assert "jpeg-ls-frames-stripped" not in released.counts
    assert out.PixelData == ds.PixelData


def test_jpeg_ls_marker_rule_is_not_jpegs():
    """0xFF followed by a byte below 0x80 is data in JPEG-LS (it ends a JPEG scan)."""
    from medcloak.pixels.jpeg_meta import parse_stream

    sof = _seg(0xF7, b"\x08\x00\x01\x00\x01\x01\x01\x11\x00")
    sos = _seg(0xDA, b"\x01\x01\x00\x00\x00\x00")
    stream = b"\xff\xd8" + sof + sos + b"\x12\xff\x7f\xff\x00\x34" + _seg(0xFE, b"QUENNELL") + EOC
    clean, end = parse_stream(stream, ls=True)
    assert clean == b"\xff\xd8" + sof + sos + b"\x12\xff\x7f\xff\x00\x34" + EOC and end == len(stream)


# ---- JPEG (ISO/IEC 10918), retired syntaxes included -------------------------------------------


def _progressive_frame(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", progressive=True, quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.63"])
def test_progressive_jpeg_comment_between_scans_is_removed(tmp_path, syntax):
    from PIL import Image

    ds = pydicom.dcmread(pydicom_test_files() / "SC_rgb_jpeg_dcmtk.dcm")
    frame = _progressive_frame(ds.pixel_array)
    assert frame.count(b"\xff\xda") > 2  # several scans
    text = _patient_text(ds)
    planted = _plant_jpeg(frame, text)
    ds = _with_frames(ds, [planted], syntax)
    ds.PhotometricInterpretation = "YBR_FULL_422"
    released, out = _release(ds, tmp_path)
    assert b"QUENNELL" not in released.data and b"PID88123457" not in released.data
    assert released.counts.get("jpeg-frames-stripped") == 1
    (cleaned,) = _frames(out)
    assert cleaned.rstrip(b"\x00") == frame  # Pillow's JFIF APP0 has no thumbnail: kept as it is
    decode = lambda b: np.asarray(Image.open(io.BytesIO(b)))  # noqa: E731
    assert np.array_equal(decode(cleaned), decode(planted))


def test_lossless_jpeg_com_and_appn_are_removed(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    ds = _testdata("JPEG-LL.dcm")  # lossless SV1 (.70), read also as the process 14 syntax (.57)
    text = _patient_text(ds)
    (frame,) = [f[: f.rindex(EOC) + 2] for f in _frames(ds)]  # padded with 0xFF
    before = imagecodecs.ljpeg_decode(frame)
    ds = _with_frames(ds, [_plant_jpeg(frame, text)], "1.2.840.10008.1.2.4.57")
    released, out = _release(ds, tmp_path)
    assert b"QUENNELL" not in released.data and released.counts.get("jpeg-frames-stripped") == 1
    (cleaned,) = _frames(out)
    assert cleaned.rstrip(b"\x00") == frame
    assert np.array_equal(imagecodecs.ljpeg_decode(cleaned), before)


def test_a_run_releases_the_cleaned_object_and_records_it(tmp_path, secret_file):
    ds = _testdata("MR_small_jp2klossless.dcm")
    text = _patient_text(ds)
    ds = _with_frames(ds, [_plant_j2k(f, text, OPERATOR) for f in _frames(ds)])
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "mr.dcm", enforce_file_format=True)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    assert summary.ok == 1 and summary.quarantined == 0
    (path,) = sorted((tmp_path / "out").rglob("*.dcm"))
    assert b"QUENNELL" not in path.read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert "jpeg-2000-frames-stripped" in json.dumps(rows)


def test_a_broken_codestream_is_refused_never_misread():
    """Every cut of a planted codestream, and every Psot made wrong, fails closed with medcloak's
    errors (the object is quarantined), never with an IndexError or a half-cleaned frame."""
    openjpeg = pytest.importorskip("openjpeg")
    from medcloak.errors import CorruptInputError

    pixels = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 5) % 1024
    code = _plant_j2k(_split_tile(openjpeg.encode(pixels, add_tlm=True, add_plt=True), 2), b"QUENNELL", OPERATOR)
    for cut in range(len(code) - 1):
        with pytest.raises((CorruptInputError, UnsupportedInputError)):
            clean_frame(code[:cut])
    a, _ = _tile_parts(code)[0]
    for psot in (1, 13, len(code)):
        with pytest.raises(CorruptInputError):
            strip_comments(code[: a + 6] + psot.to_bytes(4, "big") + code[a + 10 :])


def test_bytes_after_eoc_go():
    ds = _testdata("MR_small_jp2klossless.dcm")
    (frame,) = _frames(ds)
    clean, removed = clean_frame(frame.rstrip(b"\x00") + b"QUENNELL")
    assert removed == 2 and clean.endswith(EOC) and b"QUENNELL" not in clean  # the encoder's COM, the tail
    assert clean_frame(clean + b"\x00") == (clean, 0)
