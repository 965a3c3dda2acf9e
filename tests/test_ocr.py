"""The OCR second opinion (medcloak.pixels.ocr): safe lists, and boxes kept or redacted on text
drawn over real frames (pydicom's ultrasound and CT), in 8-bit RGB and 16-bit stored values.

The safe-list and fail-closed tests run everywhere; the tests that read text need the ``ocr``
extra (rapidocr_onnxruntime) and are skipped, with that reason, where it is not installed.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from medcloak.errors import MissingDependencyError, ProfileError
from medcloak.pixels import ocr

needs_ocr = pytest.mark.skipif(not ocr.available(), reason="the ocr extra (rapidocr_onnxruntime) is not installed")

SAFE = ocr.SafeList.of(["L", "R", "A", "P", "H", "F", "cm", "5 cm", "10"], [r"^\d{1,2}(\.\d)? ?cm$"])


# ------------------------------------------------------------------------------- safe lists

@pytest.mark.parametrize("text", ["L", "l", "R", "5 cm", "5cm", "5  CM", "10", "L 5 cm", "2.5 cm", "12cm", "A P", "R5cm", "L10"])
def test_safe_text_is_accepted(text: str) -> None:
    assert SAFE.accepts(text)


@pytest.mark.parametrize("text", ["", " ", "LARA", "LR", "Larsen", "L.", "5 cm SMITH", "SMITH", "100", "123 cm",
                                  "12345678", "DOE^JOHN", "R:", "5 mm", "LARA5cm", "R1234567", "RL"])
def test_unsafe_text_is_refused(text: str) -> None:
    assert not SAFE.accepts(text)


def test_toml_safe_list(tmp_path) -> None:
    path = tmp_path / "safe.toml"
    path.write_text('[ocr]\nsafe = ["L", "Liver"]\nsafe_patterns = [\'^\\d cm$\']\nmin_confidence = 0.95\n')
    safe = ocr.load_safe_list(path)
    assert safe.accepts("LIVER") and safe.accepts("l") and safe.accepts("3 cm") and not safe.accepts("33 cm")
    assert safe.min_confidence == 0.95


@pytest.mark.parametrize("body, message", [
    ("", "no [ocr] table"),
    ("[ocr]\n", "lists nothing safe"),
    ("[ocr]\nsafe = 'L'\n", "must be lists"),
    ("[ocr]\nsafe = ['']\n", "non-empty"),
    ("[ocr]\nsafe = ['L']\nkeep = ['R']\n", "unknown keys"),
    ("[ocr]\nsafe = ['L']\nmin_confidence = 0.2\n", "min_confidence"),
    ("[ocr]\nsafe_patterns = ['(']\n", "not a regular expression"),
    ("[ocr]\nsafe_patterns = ['^\\d+$']\n", "would keep identifiers"),
    ("[ocr]\nsafe_patterns = ['^[a-z]+$']\n", "would keep identifiers"),
    ("[ocr]\nsafe_patterns = ['.*']\n", "would keep identifiers"),
    ("[ocr\n", "not valid TOML"),
])
def test_bad_safe_lists_are_refused(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "safe.toml"
    path.write_text(body)
    with pytest.raises(ProfileError, match=re.escape(message)):
        ocr.load_safe_list(path)


def test_unreadable_safe_list(tmp_path) -> None:
    with pytest.raises(ProfileError, match="cannot be read"):
        ocr.load_safe_list(tmp_path / "missing.toml")


def test_without_a_safe_list_every_box_is_redacted_and_ocr_is_not_loaded(monkeypatch) -> None:
    monkeypatch.setattr(ocr, "_ENGINE", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # an import would fail
    boxes = [(0, 0, 10, 10), (5, 5, 20, 9)]
    frame = np.zeros((32, 32), np.uint8)
    assert ocr.keep_safe(frame, boxes, None) == (boxes, [])
    assert ocr.keep_safe(frame, boxes, ocr.SafeList()) == (boxes, [])


def test_a_safe_list_without_the_extra_is_a_missing_dependency(monkeypatch) -> None:
    monkeypatch.setattr(ocr, "_ENGINE", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime.ch_ppocr_det", None)
    with pytest.raises(MissingDependencyError, match="ocr extra"):
        ocr.keep_safe(np.zeros((32, 32), np.uint8), [(0, 0, 10, 10)], SAFE)


def test_import_medcloak_does_not_load_ocr() -> None:
    import subprocess

    code = "import medcloak, sys; print(any(m.startswith(('rapidocr', 'onnxruntime', 'cv2')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------- frames with text

def _us() -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("US1_UNCR.dcm")).pixel_array.copy()  # 480 x 640 x 3 uint8


def _ct() -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.int16)  # 128 x 128 int16


def _draw(frame: np.ndarray, items, value=None, pad: float = 0.15) -> list[tuple[int, int, int, int]]:
    """Draw ``(text, size, (x, y), vertical)`` items into ``frame`` in place, anti-aliased
    (``value``: the stored value of the glyphs; the frame's brightest by default) and return each
    item's padded box, as the detector would."""
    from PIL import Image, ImageDraw, ImageFont

    if value is None:
        value = 255 if frame.dtype == np.uint8 else int(frame.max())
    boxes = []
    for text, size, (x, y), vertical in items:
        font = ImageFont.load_default(size)
        l, t, r, b = font.getbbox(text)
        mask = Image.new("L", (r - l + 2, b - t + 2), 0)
        ImageDraw.Draw(mask).text((1 - l, 1 - t), text, fill=255, font=font)
        alpha = np.asarray(mask.rotate(90, expand=True) if vertical else mask, np.float64) / 255.0
        h, w = alpha.shape
        region = frame[y:y + h, x:x + w]
        if region.ndim == 3:
            alpha = alpha[..., None]
        region[...] = np.round(region * (1 - alpha) + np.asarray(value, np.float64) * alpha).astype(frame.dtype)
        p = max(2, round(pad * min(h, w)))
        boxes.append((x - p, y - p, x + w + p, y + h + p))
    return boxes


@needs_ocr
def test_safe_annotations_kept_and_the_name_redacted() -> None:
    frame = _us()
    items = [("L", 12, (40, 300), False), ("5 cm", 12, (100, 390), False), ("SMITH^JOHN", 16, (200, 300), False),
             ("R", 10, (40, 390), False), ("10", 10, (150, 420), False)]
    boxes = _draw(frame, items)
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert redact == [boxes[2]]
    assert [b for b, _ in kept] == [boxes[0], boxes[1], boxes[3], boxes[4]]
    assert [SAFE.accepts(text) for _, text in kept] == [True] * 4


@needs_ocr
def test_a_name_containing_a_safe_token_is_redacted() -> None:
    frame = _us()
    boxes = _draw(frame, [("LARA", 14, (400, 390), False), ("L", 12, (40, 300), False), ("R LEE", 14, (200, 400), False)])
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert redact == [boxes[0], boxes[2]] and [b for b, _ in kept] == [boxes[1]]


@needs_ocr
def test_low_confidence_is_redacted(monkeypatch) -> None:
    frame = _us()
    boxes = _draw(frame, [("L", 12, (40, 300), False), ("5 cm", 12, (100, 390), False)])
    assert len(ocr.keep_safe(frame, boxes, SAFE)[1]) == 2
    strict = ocr.SafeList.of(["L", "5 cm"], min_confidence=1.0)
    assert ocr.keep_safe(frame, boxes, strict) == (boxes, [])
    # the recogniser's own confidence, lowered: the same reading is no longer trusted
    engine = ocr.engine()
    read = engine.read
    monkeypatch.setattr(engine, "read", lambda crops: [(t, s * 0.8) for t, s in read(crops)])
    assert ocr.keep_safe(frame, boxes, SAFE) == (boxes, [])


@needs_ocr
def test_a_box_where_ocr_sees_nothing_stays() -> None:
    frame = _us()
    boxes = [(240, 390, 300, 410), (100, 200, 160, 220), (0, 0, 0, 10), (630, 470, 700, 500)]  # blank, anatomy, empty, past the edge
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert redact == boxes and kept == []


@needs_ocr
def test_safe_text_beside_a_faint_name_in_one_box_is_redacted() -> None:
    frame = _us()
    (safe_box,) = _draw(frame, [("5 cm", 14, (60, 395), False)])
    (name_box,) = _draw(frame, [("DOE", 14, (120, 395), False)], value=(60, 60, 60))
    box = (safe_box[0], min(safe_box[1], name_box[1]), name_box[2], max(safe_box[3], name_box[3]))
    assert ocr.keep_safe(frame, [box], SAFE) == ([box], [])


@needs_ocr
def test_text_turned_by_90_degrees() -> None:
    frame = _us()
    boxes = _draw(frame, [("5 cm", 14, (600, 360), True), ("JONES", 14, (20, 350), True)])
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert redact == [boxes[1]] and [b for b, _ in kept] == [boxes[0]]


@needs_ocr
@pytest.mark.parametrize("bright", [True, False])
def test_stored_16_bit_values(bright: bool) -> None:
    """CT stored values (int16, -1000 to a few thousand) with text at the top or bottom of the
    range (dark text: a MONOCHROME1 frame's white annotations)."""
    frame = np.kron(_ct(), np.ones((4, 4), np.int16))  # 512 x 512, the CT's own values
    value = int(frame.max()) + 500 if bright else int(frame.min())
    items = [("R", 14, (30, 200), False), ("5 cm", 14, (200, 250), False), ("MILLER", 14, (180, 300), False)]
    boxes = _draw(frame, items, value=value)
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert redact == [boxes[2]] and [b for b, _ in kept] == boxes[:2]


@needs_ocr
def test_grey_8_bit_and_small_text() -> None:
    frame = _us()[..., 0].copy()  # one channel: a grey frame
    boxes = _draw(frame, [("R", 9, (40, 300), False), ("5 cm", 9, (100, 390), False), ("KIM", 9, (200, 390), False)])
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert redact == [boxes[2]] and [b for b, _ in kept] == boxes[:2]


@needs_ocr
def test_two_lines_in_one_box_are_redacted(monkeypatch) -> None:
    frame = _us()
    top, bottom = _draw(frame, [("5 cm", 12, (300, 390), False), ("DOE", 12, (300, 405), False)])
    box = (top[0], top[1], max(top[2], bottom[2]), bottom[3])
    assert ocr.keep_safe(frame, [box], SAFE) == ([box], [])
    # a safe reading is not enough where PP-OCR's detector sees a second line in the box
    boxes = _draw(frame, [("5 cm", 12, (100, 390), False)])
    assert len(ocr.keep_safe(frame, boxes, SAFE)[1]) == 1
    engine = ocr.engine()
    monkeypatch.setattr(engine, "lines", lambda crop: [(0.0, 0.0, 50.0, 20.0), (0.0, 25.0, 50.0, 45.0)])
    assert ocr.keep_safe(frame, boxes, SAFE) == (boxes, [])
    # nor where its one line covers only part of the box
    monkeypatch.setattr(engine, "lines", lambda crop: [(0.0, 0.0, 20.0, 20.0)])
    assert ocr.keep_safe(frame, boxes, SAFE) == (boxes, [])


def test_full_width_forms_read_as_their_letters() -> None:
    """The recogniser also reads Chinese, and sometimes returns a letter's full-width form."""
    assert SAFE.accepts("Ｒ") and SAFE.accepts("５ｃｍ") and not SAFE.accepts("ＬＡＲＡ")


@needs_ocr
def test_with_the_detector() -> None:
    """End to end with medcloak's detector: on the ultrasound's own burned-in text (the site's
    name, codes, the time) and drawn lines, only the listed annotations are left unredacted, and
    every pixel of every name is inside a redacted box."""
    from medcloak.pixels.text import detect_text

    frame = _us()
    items = [("5 cm", 12, (100, 390), False), ("SMITH^JOHN", 16, (200, 300), False), ("LARA", 14, (400, 390), False)]
    glyphs = []
    for item in items:
        before = frame.copy()
        _draw(frame, [item])
        glyphs.append((frame != before).any(axis=2))
    boxes = detect_text(frame)
    redact, kept = ocr.keep_safe(frame, boxes, SAFE)
    assert sorted(redact + [b for b, _ in kept]) == sorted(boxes)
    covered = np.zeros(frame.shape[:2], bool)
    for x0, y0, x1, y1 in redact:
        covered[y0:y1, x0:x1] = True
    for (text, *_), mask in zip(items, glyphs):
        share = covered[mask].mean()
        assert share == 1.0 if text != "5 cm" else share == 0.0, (text, share)
    assert all(SAFE.accepts(text) for _, text in kept)
    # the machine's own text stays redacted: BAPTIST MED CTR, 630P630, the time
    for x, y in [(30, 32), (120, 32), (30, 48), (300, 48)]:
        assert covered[y, x]


@needs_ocr
def test_a_box_inside_a_redacted_box_is_not_read() -> None:
    frame = _us()
    (name,) = _draw(frame, [("LEE", 16, (200, 300), False)])
    letter = (name[0], name[1], name[0] + (name[2] - name[0]) // 3 + 1, name[3])  # about the "L"
    readings = ocr.read_boxes(frame, [letter, name], SAFE)
    assert [r.kept for r in readings] == [False, False] and readings[0].text == "" and readings[1].text
    assert ocr.keep_safe(frame, [letter, name], SAFE) == ([letter, name], [])


# ------------------------------------------------------------------------------- in a run

def _us_file(path, items) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """pydicom's native RGB ultrasound (US1_UNCR) with ``items`` drawn in, written to ``path``
    (Burned In Annotation absent: scanned under clean-pixel-data); each item's glyph mask."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm"))
    frame = ds.pixel_array.copy()
    masks = []
    for item in items:
        before = frame.copy()
        _draw(frame, [item])
        masks.append((frame != before).any(axis=2))
    ds.PixelData = frame.tobytes()
    if "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    ds.save_as(path)
    return masks


def test_ocr_safe_needs_clean_pixel_data(tmp_path) -> None:
    """--ocr-safe without the option that scans is a usage error, before anything is written
    (with or without the extra)."""
    from medcloak.engine import run
    from medcloak.errors import UsageError

    (tmp_path / "in").mkdir()
    _us_file(tmp_path / "in" / "us.dcm", [])
    safe = tmp_path / "safe.toml"
    safe.write_text('[ocr]\nsafe = ["L"]\n')
    with pytest.raises(UsageError, match="clean-pixel-data"):
        run([tmp_path / "in"], tmp_path / "out", ocr_safe=safe)
    assert not (tmp_path / "out").exists()


@needs_ocr
def test_a_run_keeps_the_safe_annotation_and_redacts_the_name(tmp_path) -> None:
    """``medcloak run --option clean-pixel-data --ocr-safe``: on an ultrasound with "5 cm" and a
    name drawn in, every pixel of the name is redacted, the "5 cm" is released as it was, and the
    manifest counts the box kept; without the safe list the "5 cm" is redacted too."""
    import json

    import pydicom

    from medcloak.engine import run

    (tmp_path / "in").mkdir()
    masks = _us_file(tmp_path / "in" / "us.dcm", [("5 cm", 12, (100, 390), False), ("SMITH^JOHN", 16, (200, 300), False)])
    original = pydicom.dcmread(tmp_path / "in" / "us.dcm").pixel_array
    safe = tmp_path / "safe.toml"
    safe.write_text('[ocr]\nsafe = ["L", "R", "cm"]\nsafe_patterns = [\'^\\d{1,2} ?cm$\']\n')
    for name, listed in (("with", safe), ("without", None)):
        out = tmp_path / name
        summary = run([tmp_path / "in"], out, options=["clean-pixel-data"], ocr_safe=listed)
        assert summary.ok == 1 and summary.quarantined == 0
        (line,) = [json.loads(t) for t in (tmp_path / (name + ".audit") / "manifest.jsonl").read_text().splitlines()]
        (path,) = out.rglob("*.dcm")
        pixels = pydicom.dcmread(path).pixel_array
        name_mask, safe_mask = masks[1], masks[0]
        assert not (pixels[name_mask] == original[name_mask]).all(axis=1).any()  # every pixel of the name changed
        unchanged = (pixels[safe_mask] == original[safe_mask]).all(axis=1)
        if listed is not None:
            assert unchanged.all()
            assert line["actions"].get("pixel-text-boxes-kept-safe", 0) >= 1
        else:
            assert not unchanged.any()
            assert "pixel-text-boxes-kept-safe" not in line["actions"]
