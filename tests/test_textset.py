"""The burned-in text test set (tests/textset.py) and its measures (tests/textmetrics.py): the
frames are reproducible and hold what their ground truth says, and the measures count what
the issue's columns say (hand-made frames with exact answers)."""

from __future__ import annotations

import os
import sys
from collections import Counter

import numpy as np
import pytest
import textmetrics as tm
import textset as ts


@pytest.fixture(scope="module")
def small():
    return ts.small_set()


@pytest.fixture(scope="module")
def many():
    return ts.make_frames(120, size=(512, 384))


def test_same_seed_same_frames_other_seed_others():
    a, b, c = ts.make_frame(3), ts.make_frame(3), ts.make_frame(3, seed=1)
    assert np.array_equal(a.image, b.image)
    assert [ln.box for ln in a.lines] == [ln.box for ln in b.lines]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.lines, b.lines))
    assert not (a.image.shape == c.image.shape and np.array_equal(a.image, c.image))


def test_frames_have_the_asked_size_and_types(small):
    for f in small:
        assert f.image.shape[:2] == (384, 512)
        if f.representation == "rgb":
            assert f.image.dtype == np.uint8 and f.image.shape[2] == 3
        elif f.representation == "display":
            assert f.image.dtype == np.uint8 and f.image.ndim == 2
        else:
            assert f.image.dtype == np.uint16 and f.image.ndim == 2
            assert f.bits in (10, 12, 14, 15, 16) and int(f.image.max()) < (1 << f.bits)


def test_every_kind_and_representation_occurs(many):
    kinds = Counter(f.kind for f in many)
    assert set(kinds) == {"text", *ts.TEXT_FREE_KINDS}
    assert kinds["text"] == 100
    assert {f.representation for f in many} == {"display", "rgb", "stored"}
    stored = {(f.bits, f.photometric) for f in many if f.representation == "stored"}
    assert {b for b, _ in stored} >= {10, 12, 15, 16} and "MONOCHROME1" in {p for _, p in stored}
    assert all(not f.lines for f in many if f.kind != "text")
    assert all(f.flow is not None and f.flow.any() for f in many if f.kind == "doppler")


def test_lines_vary_as_the_docstring_says(many):
    lines = [ln for f in many for ln in f.lines]
    ident = [ln for ln in lines if ln.identifying]
    assert len(ident) / len([f for f in many if f.has_text]) > 3  # about 1,000 lines in 360 frames
    assert len(ident) < len(lines)  # known-safe annotations too
    assert min(ln.size for ln in lines) == 7 and max(ln.size for ln in lines) >= 36
    assert {tm.size_bucket(ln.size) for ln in lines} == {"7-9px", "10-14px", "15-24px", "25-40px"}
    assert {"white", "grey", "yellow", "green", "cyan"} <= {ln.colour for ln in lines}
    assert {"border", "anatomy", "box", "edge"} == {ln.place for ln in lines}
    assert any(ln.rotated for ln in lines) and any(not ln.antialias for ln in lines)
    assert len({ln.font for ln in lines}) >= min(4, len(ts.font_files()) or 1)


def test_ground_truth_is_where_the_text_is(many):
    for f in many:
        h, w = f.image.shape[:2]
        for ln in f.lines:
            x0, y0, x1, y1 = ln.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert ln.mask.shape == (y1 - y0, x1 - x0) and ln.mask.any()
            # the text changed its glyph pixels (by 12-32 levels against the background's
            # median when low contrast: more or less on a busy background; see below for the bulk)
            assert ln.contrast >= 4, (f.source, ln.text, ln.contrast)
            if ln.rotated:
                assert y1 - y0 > x1 - x0 or len(ln.text) <= 2
            if ln.place == "edge":
                assert x0 == 0 or y0 == 0 or x1 == w or y1 == h
        boxes = [ln.box for ln in f.lines]
        for i, a in enumerate(boxes):  # lines never overlap
            for b in boxes[i + 1:]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_normal_lines_stand_out_and_low_contrast_ones_do_not(many):
    normal = [ln.contrast for f in many for ln in f.lines if not ln.low_contrast]
    low = [ln.contrast for f in many for ln in f.lines if ln.low_contrast]
    assert np.percentile(normal, 5) > 40 and np.median(normal) > 80
    assert np.median(low) <= 25 and np.percentile(low, 90) <= 36 and len(low) > 0.1 * (len(low) + len(normal))


def test_without_pydicom_data_the_bundled_files_stand_in(monkeypatch):
    monkeypatch.setitem(sys.modules, "data_store", None)  # import fails
    ts._sources.cache_clear()
    try:
        assert ts.background_set() == "pydicom"
        frames = ts.make_frames(36, size=(256, 192))
        assert all(":" in f.source for f in frames)
        stored = [f for f in frames if f.representation == "stored"]
        assert stored and all(int(f.image.max()) < (1 << f.bits) for f in stored)
        assert sum(len(f.lines) for f in frames) > 30
    finally:
        monkeypatch.undo()
        ts._sources.cache_clear()


# ------------------------------------------------------------------------------------ measures
def _frame(lines, shape=(100, 200)) -> ts.Frame:
    return ts.Frame(np.zeros(shape, np.uint8), "text" if lines else "anatomy", "test", "display", 8,
                    "MONOCHROME2", lines)


def _line(box, identifying=True, **kw) -> ts.Line:
    x0, y0, x1, y1 = box
    mask = np.ones((y1 - y0, x1 - x0), bool)
    mask[0, 0] = False  # a glyph mask is not its box
    args = {"text": "DOE^JANE", "identifying": identifying, "size": 12, "font": "f", "antialias": True,
            "colour": "white", "place": "border", "rotated": False, "low_contrast": False}
    args.update(kw)
    return ts.Line(box, mask, **args)


def test_perfect_boxes_score_perfectly():
    f = _frame([_line((10, 10, 60, 22)), _line((100, 50, 110, 90), rotated=True)])
    r = tm.evaluate([f], [[ln.box for ln in f.lines]])
    assert r["glyph_pixels_covered"] == 1.0 and r["lines_98"] == 1.0
    assert r["false_area_text_mean"] == 0.0


def test_no_boxes_cover_nothing_and_nothing_is_false():
    f = _frame([_line((10, 10, 60, 22))])
    r = tm.evaluate([f, _frame([])], [[], []])
    assert r["glyph_pixels_covered"] == 0.0 and r["lines_98"] == 0.0
    assert r["false_area_free_mean"] == 0.0 and r["false_area_free_median"] == 0.0


def test_half_a_line_is_half_covered_and_not_a_full_line():
    ln = _line((10, 10, 60, 22))  # 50 x 12, 599 glyph pixels
    f = _frame([ln])
    s = tm.score_frame(f, [(10, 10, 35, 22)])
    assert s.covered_glyphs == [25 * 12 - 1] and s.glyphs == [599]
    r = tm.summarise([f], [s])
    assert r["glyph_pixels_covered"] == pytest.approx(299 / 599)
    assert r["lines_98"] == 0.0
    # 98 % is the threshold: missing 11 of 599 pixels (98.2 %) is full, 13 (97.8 %) is not
    assert tm.score_frame(f, [(10, 10, 60, 22)]).coverages[0] == 1.0
    short = _line((10, 10, 60, 22))
    short.mask[:] = False
    short.mask[0, :50] = True  # 50 pixels in the first row
    f2 = _frame([short])
    assert tm.evaluate([f2], [[(11, 10, 60, 22)]])["lines_98"] == 1.0  # 49/50 = 98 %
    assert tm.evaluate([f2], [[(12, 10, 60, 22)]])["lines_98"] == 0.0  # 48/50


def test_glyph_pixels_pool_over_lines_and_skip_safe_ones():
    big, small_ = _line((0, 0, 100, 20)), _line((0, 50, 10, 60))
    safe = _line((120, 0, 180, 20), identifying=False)
    f = _frame([big, small_, safe])
    r = tm.evaluate([f], [[big.box]])
    assert r["glyph_pixels_covered"] == pytest.approx(1999 / (1999 + 99))
    assert r["lines_98"] == 0.5 and r["identifying_lines"] == 2


def test_false_area_counts_beyond_four_pixels_only():
    ln = _line((50, 40, 90, 50))
    f = _frame([ln])  # 100 x 200 = 20,000 pixels
    assert tm.score_frame(f, [(46, 36, 94, 54)]).false_area == 0.0  # dilated by 4: free
    # one more pixel each side: the ring of (50 x 20) - (48 x 18) = 136 pixels
    assert tm.score_frame(f, [(45, 35, 95, 55)]).false_area == pytest.approx(136 / 20000)
    # overlapping boxes count once; boxes outside the frame are clipped
    assert tm.score_frame(f, [(0, 0, 10, 10), (5, 5, 10, 10), (-5, -5, 10, 10), (300, 0, 400, 10)]).false_area \
        == pytest.approx(100 / 20000)
    whole = tm.score_frame(_frame([]), [(0, 0, 200, 100)])
    assert whole.false_area == 1.0


def test_false_area_of_frames_without_text_mean_and_median():
    frames = [_frame([]) for _ in range(3)]
    r = tm.evaluate(frames, [[(0, 0, 200, 100)], [], [(0, 0, 20, 10)]])
    assert r["false_area_free_mean"] == pytest.approx((1 + 0 + 0.01) / 3)
    assert r["false_area_free_median"] == pytest.approx(0.01)
    assert r["false_area_free_max"] == 1.0
    assert r["false_area_by_kind"]["anatomy"] == {"mean": pytest.approx(1.01 / 3), "max": 1.0, "frames": 3}


def test_breakdowns_split_lines_by_their_attributes():
    a = _line((0, 0, 30, 8), size=8, low_contrast=True)
    b = _line((0, 40, 30, 60), size=30, rotated=True, colour="cyan")
    f = _frame([a, b])
    r = tm.evaluate([f], [[b.box]])
    assert r["by"]["size"]["7-9px"]["glyphs"] == 0.0 and r["by"]["size"]["25-40px"]["glyphs"] == 1.0
    assert r["by"]["contrast"]["low"]["lines_98"] == 0.0 and r["by"]["rotation"]["90"]["lines_98"] == 1.0
    assert r["by"]["colour"]["cyan"]["lines"] == 1


def test_doppler_flow_covered():
    f = _frame([])
    f.flow = np.zeros((100, 200), bool)
    f.flow[10:20, 10:20] = True
    assert tm.score_frame(f, [(10, 10, 15, 20)]).flow_covered == 0.5


def test_the_lines_own_boxes_score_perfectly_on_the_real_set(small):
    r = tm.evaluate(small, [[ln.box for ln in f.lines] for f in small])
    assert r["glyph_pixels_covered"] == 1.0 and r["lines_98"] == 1.0
    assert r["false_area_text_mean"] == 0.0 and r["false_area_free_max"] == 0.0
    # and the whole frame covers everything at the cost of (nearly) all of it
    r = tm.evaluate(small, [[(0, 0, 512, 384)] for _ in small])
    assert r["lines_98"] == 1.0 and r["false_area_free_median"] == 1.0


def test_the_font_families_can_be_narrowed_and_a_family_not_in_the_list_is_refused():
    every = ts.font_files()
    if not any("DejaVuSans." in f for f in every):
        pytest.skip("DejaVu Sans is not installed")
    with ts.narrowed(("DejaVu Sans",)):
        kept = ts.font_files()
        assert kept and all("/DejaVuSans" in f and "Mono" not in f for f in kept)
        assert not ts.is_reference() and "not the reference" in ts.font_set()
    with ts.narrowed(("DejaVu Sans", "Comic Sans MS")), pytest.raises(ValueError, match="Comic Sans MS"):
        ts.font_files()
    assert ts.font_files() == every and ts.FONTS_ENV not in os.environ
    assert ("the reference faces" in ts.font_set()) == (len(every) == ts.REFERENCE_FACES) == ts.is_reference()
