"""Burned-in text under ``--option clean-pixel-data`` without region templates: which objects are
scanned, each frame's boxes redacted through the lossless routes, Burned In Annotation NO and code
113101 on what was scanned, the manifest's counts, the audit's review pictures, ``verify``.

The plumbing is tested with a stand-in detector (boxes around the pixels of the colour the text
was drawn in), so that it does not depend on the detector's quality; the end-to-end tests at the
bottom run the real detector (:func:`medcloak.pixels.text.detect_text`) on names, IDs and dates
drawn over pydicom's test images."""

from __future__ import annotations

import io
import json
import shutil
import sys
import types
from pathlib import Path

import jpegref as R
import numpy as np
import pydicom
import pytest
from conftest import pydicom_test_files
from PIL import Image, ImageDraw, ImageFont
from pydicom.encaps import encapsulate

from medcloak.cli import main
from medcloak.engine import run
from medcloak.formats.dicom_burned import scan_reason
from medcloak.formats.dicom_pixels import items
from medcloak.pixels.burned_in import PAD, detector_input, pad
from medcloak.pixels.jpeg_meta import split_frames
from medcloak.pixels.jpeg_redact import coefficients

US = pydicom_test_files() / "examples_ybr_color.dcm"  # 30 frames, JPEG baseline YBR_FULL_422
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
#: what is drawn where: frame -> lines of (x, y, text)
LINES = {
    0: [(8, 6, "DOE^JOHN"), (8, 24, "ID 12345678")],
    4: [(150, 200, "1961-04-17")],
    11: [(40, 100, "DOE^JOHN  F  63Y")],
    29: [(200, 10, "MRN 998877"), (12, 215, "2024/03/05 14:22")],
}
YELLOW = (255, 255, 0)
MAGENTA = (255, 0, 255)


def _testdata(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)  # pydicom's or pydicom-data's (a test dependency)
    if path is None:
        pytest.skip(f"{name} is not available")
    return Path(path)


def _font(size: int = 14) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _draw(frame: np.ndarray, lines: list[tuple[int, int, str]], colour, size: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` with ``lines`` drawn (RGB or grey ``colour``), and the mask of the text's pixels."""
    img = Image.fromarray(frame)
    mask = Image.new("L", img.size, 0)
    for x, y, text in lines:
        ImageDraw.Draw(img).text((x, y), text, fill=colour, font=_font(size))
        ImageDraw.Draw(mask).text((x, y), text, fill=255, font=_font(size))
    return np.asarray(img), np.asarray(mask) > 127


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92, subsampling=1)  # 4:2:2, as the original
    return buf.getvalue()


def us_with_text(path: Path, lines: dict[int, list[tuple[int, int, str]]] = LINES, colour=YELLOW) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
    """A multi-frame JPEG baseline ultrasound made from pydicom's, names, IDs and dates drawn in
    yellow on some frames, no Burned In Annotation; returns the text mask of each such frame."""
    ds = pydicom.dcmread(US)
    frames = ds.pixel_array
    masks = {}
    streams = []
    for i, frame in enumerate(frames):
        if i in lines:
            frame, masks[i] = _draw(frame, lines[i], colour)
        streams.append(_jpeg(np.ascontiguousarray(frame)))
    ds.PixelData = encapsulate(streams, has_bot=True)
    ds["PixelData"].is_undefined_length = True
    ds.PatientName, ds.PatientID = "DOE^JOHN", "12345678"
    if "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    ds.save_as(path)
    return masks


def _input(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    return tmp_path / "in"


def _manifest(out: Path) -> list[dict]:
    return [json.loads(t) for t in (out.parent / (out.name + ".audit") / "manifest.jsonl").read_text().splitlines()]


def _frames(ds) -> list[bytes]:  # type: ignore[no-untyped-def]
    return split_frames(b"".join(items(bytes(ds.PixelData))[1:]))


def _codes(ds) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(i.CodeValue) for i in ds.DeidentificationMethodCodeSequence}


# ---- a stand-in detector ------------------------------------------------------------------------


def _stand_in(frame: np.ndarray, **_options) -> list[tuple[int, int, int, int]]:  # type: ignore[no-untyped-def]
    """Boxes around the pixels of the drawn colour (magenta in RGB, 7 in grey), one per band of
    rows (a line of text)."""
    if frame.ndim == 3:
        hit = (frame[:, :, 0] > 150) & (frame[:, :, 1] < 120) & (frame[:, :, 2] > 150)
    else:
        hit = frame == 7
    rows = np.flatnonzero(hit.any(axis=1))
    boxes = []
    for band in np.split(rows, np.flatnonzero(np.diff(rows) > 4) + 1) if len(rows) else []:
        xs = np.flatnonzero(hit[band[0]:band[-1] + 1].any(axis=0))
        boxes.append((int(xs[0]), int(band[0]), int(xs[-1]) + 1, int(band[-1]) + 1))
    return boxes


def install_stand_in(monkeypatch) -> types.ModuleType:  # type: ignore[no-untyped-def]
    """The stand-in in the detector's place for one test."""
    module = types.ModuleType("medcloak.pixels.text")
    module.detect_text = _stand_in  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "medcloak.pixels.text", module)
    return module


@pytest.fixture
def stand_in(monkeypatch):  # type: ignore[no-untyped-def]
    return install_stand_in(monkeypatch)


def test_scan_reason() -> None:
    ct = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    assert scan_reason(ct) is None
    ct.BurnedInAnnotation = "YES"
    assert scan_reason(ct) == "Burned In Annotation is not NO"
    ct.BurnedInAnnotation = "NO"
    assert scan_reason(ct) is None
    us = pydicom.dcmread(US, stop_before_pixels=True)
    assert scan_reason(us) is None  # no Pixel Data
    us = pydicom.dcmread(US)
    us.BurnedInAnnotation = "NO"  # often wrong where text is common: scanned all the same
    assert scan_reason(us) is not None
    for modality in ("DX", "CR", "MG", "IO", "PX", "GM", "XA", "RF", "ES", "OT", "XC"):
        ct.Modality = modality
        assert scan_reason(ct) is not None, modality
    ct.Modality = "NM"
    assert scan_reason(ct) is None
    ct.ImageType = ["DERIVED", "SECONDARY"]
    assert scan_reason(ct) == "an NM screen capture"
    ct.Modality, ct.SOPClassUID = "CT", SC_CLASS
    assert scan_reason(ct) == "a secondary capture"


def test_pad_and_detector_input() -> None:
    assert pad([(0, 0, 5, 5), (10, 10, 20, 12)], 16, 40) == [(0, 0, 5 + PAD, 5 + PAD), (10 - PAD, 10 - PAD, 16, 12 + PAD)]
    assert pad([(0, 0, 5, 5)], 4, 4, by=0) == [(0, 0, 4, 4)]
    grey12 = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    assert detector_input(grey12) is grey12  # stored values as they are
    assert detector_input(grey12[:, :, None]).shape == (64, 64)
    with pytest.raises(ValueError, match="4 samples"):
        detector_input(np.zeros((4, 4, 4), np.uint8))


def test_multiframe_us_each_frame_its_boxes(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    masks = us_with_text(inp / "us.dcm", colour=MAGENTA)
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.ok == 1 and summary.quarantined == 0
    (line,) = _manifest(tmp_path / "out")
    assert line["actions"]["pixel-frames-scanned"] == 30
    assert line["actions"]["pixel-text-boxes-redacted"] == sum(len(v) for v in LINES.values())
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(path)
    assert out.BurnedInAnnotation == "NO" and "113101" in _codes(out)
    src = pydicom.dcmread(inp / "us.dcm")
    decoded = src.pixel_array
    old, new = _frames(src), _frames(out)
    rgb = out.pixel_array
    for i, (o, n) in enumerate(zip(old, new)):
        if i not in masks:
            assert o.rstrip(b"\x00") == n.rstrip(b"\x00")  # byte for byte
            continue
        assert rgb[i][masks[i]].max() <= 40  # the text is gone
        boxes = pad(_stand_in(decoded[i]), 320, 240)
        assert len(boxes) == len(LINES[i])
        _assert_blocks(o, n, boxes)
    # the review picture: in the audit, not the release, owner-only
    picture = tmp_path / "out.audit" / "qc" / f"{line['id']}-text.png"
    assert picture.exists() and (picture.stat().st_mode & 0o777) == 0o600
    with Image.open(picture) as img:
        assert img.format == "PNG" and img.size == (640, 480)  # a small frame doubled
        assert (np.asarray(img.convert("RGB")) == (255, 0, 0)).all(axis=2).any()  # boxes outlined
    assert not [p for p in (tmp_path / "out").rglob("*") if p.suffix == ".png"]
    assert main(["verify", str(tmp_path / "out"), "--audit", str(tmp_path / "out.audit")]) == 0


def _assert_blocks(old: bytes, new: bytes, boxes) -> None:  # type: ignore[no-untyped-def]
    """Every block (MCU) outside ``boxes`` keeps its coefficients; those inside have no AC."""
    from test_jpeg_redact import expected_blocks

    grids = expected_blocks(R.decode_coefficients(old, strict=False), list(boxes))
    for b, a, grid in zip(coefficients(old), coefficients(new), grids):
        assert np.array_equal(a[~grid], b[~grid])
        assert not a[grid][:, 1:].any()


def test_nothing_found_still_scanned_and_flagged(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    shutil.copy(US, inp / "us.dcm")
    ct = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    ct.save_as(inp / "ct.dcm")
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.ok == 2
    lines = {line["input"].rsplit("/", 1)[1]: line for line in _manifest(tmp_path / "out")}
    assert lines["us.dcm"]["actions"]["pixel-frames-scanned"] == 30
    assert lines["us.dcm"]["actions"]["pixel-text-boxes-redacted"] == 0
    assert not any(k.startswith("pixel-") for k in lines["ct.dcm"]["actions"])
    by_modality = {pydicom.dcmread(p).Modality: pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")}
    us, ct_out = by_modality["US"], by_modality["CT"]
    assert us.BurnedInAnnotation == "NO" and "113101" in _codes(us)
    assert _frames(us) == _frames(pydicom.dcmread(US))  # nothing found: every frame as it was
    assert "113101" not in _codes(ct_out) and "BurnedInAnnotation" not in ct_out
    assert ct_out.PixelData == ct.PixelData  # not at risk: not scanned, untouched
    assert not (tmp_path / "out.audit" / "qc").exists()  # no text, no picture
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_without_the_option_quarantined_as_before(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    us_with_text(inp / "us.dcm")
    summary = run([inp], tmp_path / "out", secret_file=secret_file)
    assert summary.quarantined == 1
    (line,) = _manifest(tmp_path / "out")
    assert "needs --option clean-pixel-data" in line["reason"]


def test_undecodable_frame_quarantines(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    us_with_text(inp / "us.dcm")
    ds = pydicom.dcmread(inp / "us.dcm")
    streams = _frames(ds)
    streams[7] = streams[7][:200] + b"\xff\xd9"  # a frame cut short
    ds.PixelData = encapsulate(streams, has_bot=True)
    ds.save_as(inp / "us.dcm")
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.quarantined == 1 and summary.ok == 0
    # a frame that cannot be decoded, whatever finds it first: never released unscanned
    from medcloak.errors import DeidentificationError
    from medcloak.formats.dicom_burned import scan_frames

    with pytest.raises(DeidentificationError, match="cannot be decoded for the burned-in text scan"):
        scan_frames(ds, "1.2.840.10008.1.2.4.50")
    with pytest.raises(DeidentificationError, match="frame 1 of 30 cannot be decoded"):
        scan_frames(ds, "1.2.3.4")  # no decoder at all


def test_text_without_a_route_quarantines(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    """Lossy JPEG 2000 (no exact route): released when nothing is found, quarantined when text is."""
    inp = _input(tmp_path)
    shutil.copy(_testdata("US1_J2KI.dcm"), inp / "us.dcm")
    stand_in.detect_text = lambda frame, **_: []
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.ok == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(path)
    # not redacted: the pixels are the input's (its codestream lost only the encoder's comment)
    assert "113101" in _codes(out) and np.array_equal(out.pixel_array, pydicom.dcmread(inp / "us.dcm").pixel_array)
    stand_in.detect_text = lambda frame, **_: [(10, 10, 50, 30)]
    summary = run([inp], tmp_path / "out2", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.quarantined == 1
    (line,) = _manifest(tmp_path / "out2")
    assert "no exact redaction route" in line["reason"]


def test_rgb_secondary_capture_and_monochrome1_native(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    sc, sc_mask = _rgb_sc(inp / "sc.dcm", MAGENTA)
    cr, cr_mask = _mono1(inp / "cr.dcm", (7, 7))
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.ok == 2
    by_modality = {pydicom.dcmread(p).Modality: pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")}
    _check_native(by_modality["OT"].pixel_array, sc, sc_mask, (0, 0, 0))
    _check_native(by_modality["CR"].pixel_array, cr, cr_mask, 4095)  # black is the top value of MONOCHROME1
    assert main(["verify", str(tmp_path / "out")]) == 0


def _rgb_sc(path: Path, colour) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(_testdata("US1_UNCR.dcm"))  # 480 x 640 RGB, native
    ds.SOPClassUID, ds.Modality = SC_CLASS, "OT"
    ds.file_meta.MediaStorageSOPClassUID = SC_CLASS
    rgb, mask = _draw(ds.pixel_array, [(20, 14, "SMITH^ANNA 1958-02-11"), (400, 440, "ACC 55501234")], colour, 16)
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    ds.save_as(path)
    return rgb, mask


def _mono1(path: Path, values: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 12-bit MONOCHROME1 radiograph made from pydicom's, with a name on the border (stored
    ``values[0]``) and a date over the anatomy (``values[1]``)."""
    ds = pydicom.dcmread(_testdata("RG3_UNCR.dcm"))  # CR, MONOCHROME1, 10 bits
    grey = (ds.pixel_array[::4, ::4].astype(np.uint16) << 2) | 1  # 440 x 440, 12 bits, never 0, 7 or 4095
    lines = [(4, 20, "ROE^RICHARD", values[0], 12), (232, 400, "12.03.2019", values[1], 18)]
    img = Image.fromarray(grey.astype(np.int32), mode="I")
    mask = np.zeros(grey.shape, bool)
    for x, y, text, value, size in lines:
        ImageDraw.Draw(img).text((x, y), text, fill=value, font=_font(size))
        line = Image.new("L", img.size, 0)
        ImageDraw.Draw(line).text((x, y), text, fill=255, font=_font(size))
        mask |= np.asarray(line) > 127
    arr = np.asarray(img).astype(np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = arr.tobytes()
    for keyword in ("BurnedInAnnotation", "ImagerPixelSpacing", "PixelSpacing"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(path)
    # the glyphs' every pixel (a mode "I" drawing is not anti-aliased)
    return arr, mask | (arr == values[0]) | (arr == values[1])


def _check_native(out: np.ndarray, before: np.ndarray, mask: np.ndarray, black) -> None:  # type: ignore[no-untyped-def]
    """Text pixels black, and every pixel that differs lies near the text (the boxes of its lines)."""
    assert (out[mask] == black).all()
    changed = np.any(out != before, axis=-1) if out.ndim == 3 else out != before
    near = np.zeros(mask.shape, bool)
    for x0, y0, x1, y1 in pad(_stand_in(np.where(mask, 7, 0)), mask.shape[1], mask.shape[0], by=PAD + 4):
        near[y0:y1, x0:x1] = True
    assert changed.any() and not (changed & ~near).any()


def test_verify_113101_both_ways(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    us_with_text(inp / "us.dcm", colour=MAGENTA)
    run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert main(["verify", str(tmp_path / "out")]) == 0
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    ds.DeidentificationMethodCodeSequence = [i for i in ds.DeidentificationMethodCodeSequence if i.CodeValue != "113101"]
    ds.save_as(path)
    assert main(["verify", str(tmp_path / "out")]) == 1  # scanned class without the code
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "out.audit")
    run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(path)
    assert main(["verify", str(tmp_path / "out")]) == 1


# ---- end to end, with the real detector ---------------------------------------------------------


@pytest.fixture
def detector():  # type: ignore[no-untyped-def]
    return pytest.importorskip("medcloak.pixels.text")


def test_end_to_end_multiframe_jpeg_ultrasound(tmp_path, secret_file, detector) -> None:  # type: ignore[no-untyped-def]
    """The issue's goal: names, IDs and dates burned into several frames of a multi-frame JPEG
    ultrasound, run without a template, released, decoded with the text gone, and every block
    outside the padded boxes coefficient-identical (frames without a box byte-identical)."""
    from medcloak.pixels.burned_in import detect

    inp = _input(tmp_path)
    masks = us_with_text(inp / "us.dcm")
    code = main(["run", str(inp), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file),
                 "--option", "clean-pixel-data", "--quiet"])
    assert code == 0
    (line,) = _manifest(tmp_path / "out")
    assert line["status"] == "ok" and line["actions"]["pixel-frames-scanned"] == 30
    assert line["actions"]["pixel-text-boxes-redacted"] >= sum(len(v) for v in LINES.values())
    (path,) = (tmp_path / "out").rglob("*.dcm")
    out = pydicom.dcmread(path)
    assert out.BurnedInAnnotation == "NO" and "113101" in _codes(out)
    src = pydicom.dcmread(inp / "us.dcm")
    decoded, rgb = src.pixel_array, out.pixel_array
    for i, (o, n) in enumerate(zip(_frames(src), _frames(out))):
        if i in masks:
            assert rgb[i][masks[i]].max() <= 40, f"text left in frame {i}"
        boxes = detect(decoded[i])  # what the run found: the same decode, the same detector
        if boxes:
            _assert_blocks(o, n, boxes)
        else:
            assert o.rstrip(b"\x00") == n.rstrip(b"\x00")
    assert (tmp_path / "out.audit" / "qc" / f"{line['id']}-text.png").exists()
    assert main(["verify", str(tmp_path / "out"), "--audit", str(tmp_path / "out.audit")]) == 0


def test_end_to_end_rgb_sc_and_monochrome1(tmp_path, secret_file, detector) -> None:  # type: ignore[no-untyped-def]
    from medcloak.pixels.burned_in import detect

    inp = _input(tmp_path)
    sc, sc_mask = _rgb_sc(inp / "sc.dcm", (255, 255, 255))
    # black on the border (stored 4095 in MONOCHROME1), white over the anatomy (stored 0)
    cr, cr_mask = _mono1(inp / "cr.dcm", (4095, 0))
    summary = run([inp], tmp_path / "out", secret_file=secret_file, options=["clean-pixel-data"])
    assert summary.ok == 2
    by_modality = {pydicom.dcmread(p).Modality: pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")}
    for out, before, mask, black in ((by_modality["OT"].pixel_array, sc, sc_mask, (0, 0, 0)),
                                     (by_modality["CR"].pixel_array, cr, cr_mask, 4095)):
        assert (out[mask] == black).all()
        changed = np.any(out != before, axis=-1) if out.ndim == 3 else out != before
        inside = np.zeros(mask.shape, bool)
        for x0, y0, x1, y1 in detect(before, "MONOCHROME1" if out.ndim == 2 else "RGB"):
            inside[y0:y1, x0:x1] = True
        assert not (changed & ~inside).any()
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_detector_told_photometric_and_bits(tmp_path, stand_in) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.dicom_burned import scan_frames

    calls = []
    stand_in.detect_text = lambda frame, **options: calls.append((frame.shape, frame.dtype, options)) or []
    _mono1(tmp_path / "cr.dcm", (7, 7))
    ds = pydicom.dcmread(tmp_path / "cr.dcm")
    assert scan_frames(ds, str(ds.file_meta.TransferSyntaxUID)).boxes == [[]]
    assert calls == [((440, 440), np.dtype(np.uint16), {"photometric": "MONOCHROME1", "bits_stored": 12})]
    calls.clear()
    found = scan_frames(pydicom.dcmread(US), "1.2.840.10008.1.2.4.50")
    assert len(found.boxes) == 30 and found.review_frame is None
    assert calls[0] == ((240, 320, 3), np.dtype(np.uint8), {"photometric": "RGB"})  # YBR decoded to RGB


def test_cli_points_at_the_review_pictures(tmp_path, secret_file, stand_in, capsys) -> None:  # type: ignore[no-untyped-def]
    inp = _input(tmp_path)
    us_with_text(inp / "us.dcm", colour=MAGENTA)
    assert main(["run", str(inp), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file),
                 "--option", "clean-pixel-data", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"QC pictures: {tmp_path / 'out.audit' / 'qc'} (<id>-text.png: burned-in text redacted" in out
    assert "defaced volume" not in out
