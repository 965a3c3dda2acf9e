"""A box redacted on every level of Philips TIFF, OME-TIFF and QPTIFF slides (the vendors whose
pages need more than a page-size ratio): the mapped box is the fill on every level and on every
channel page of a level, tiles the box does not reach keep their bytes, blocks outside the box in
touched JPEG tiles keep their coefficients, label and overview pages are left as they are (``run``
removes them), and the slide still opens as the same vendor.

The slides are test_slide_vendors' faithful builds (``make_ome``, ``make_qptiff``) and two more
written here with tifffile: a Philips TIFF whose reduced levels are padded to whole tiles as real
ones are (abbreviated JPEG tiles with shared JPEGTables, :func:`test_slide_redact._write_abbreviated`),
and a multi-channel 16-bit OME-TIFF pyramid (channels as pages, levels in SubIFDs, deflate tiles).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_slide_redact import (
    _check_pixels,
    _coefficients_kept,
    _redact,
    _sha,
    _smooth,
    _write_abbreviated,
)
from test_slide_vendors import _text_pixels, make_ome, make_qptiff, philips_xml

from medcloak.errors import UnsupportedInputError, UsageError

tifffile = pytest.importorskip("tifffile")
openslide = pytest.importorskip("openslide")
imagecodecs = pytest.importorskip("imagecodecs")


def _outward(box, num: int, den: int) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    """``box`` scaled by num/den, rounded outward."""
    x0, y0, x1, y1 = box
    return x0 * num // den, y0 * num // den, -(-x1 * num // den), -(-y1 * num // den)


def _level_pages(path: Path) -> list[list[tuple[tuple[int, int], tuple[int, int], list[bytes], np.ndarray]]]:
    """Per level of the first series (OME levels in SubIFDs), per page of the level (channels):
    (width, height), tile (width, height), each tile's bytes, the pixels."""
    data = path.read_bytes()
    out = []
    with tifffile.TiffFile(path) as tf:
        for level in tf.series[0].levels:
            k = level.keyframe  # the channel pages after the first may be frames sharing its geometry
            out.append([((k.imagewidth, k.imagelength), (k.tilewidth, k.tilelength),
                         [data[o : o + n] for o, n in zip(p.dataoffsets, p.databytecounts)], p.asarray())
                        for p in level.pages])
    return out


def _untouched(tiles_b: list[bytes], tiles_a: list[bytes], size, tile, box) -> int:  # type: ignore[no-untyped-def]
    """Tiles of a page that ``box`` does not reach keep their bytes; returns how many it reaches."""
    x0, y0, x1, y1 = box
    across, reached = -(-size[0] // tile[0]), 0
    assert len(tiles_b) == len(tiles_a)
    for i, (b, a) in enumerate(zip(tiles_b, tiles_a)):
        cx, cy = i % across, i // across
        if cx * tile[0] < x1 and x0 < (cx + 1) * tile[0] and cy * tile[1] < y1 and y0 < (cy + 1) * tile[1]:
            reached += 1
        else:
            assert a == b
    return reached


# --- Philips ------------------------------------------------------------------------------------

def make_philips_padded(path: Path) -> np.ndarray:
    """A Philips TIFF as scanners export it: level 0 512x384, levels 1, 2 and 3 (downsamples 2, 4
    and 8 by the XML's pixel spacings) of 256x192, 128x96 and 64x48 pixels stored in pages padded
    to whole 128x128 tiles (256x256, 128x128 and 128x128: the two smallest pages are the same
    size; padding white), abbreviated JPEG tiles sharing JPEGTables; then the label and macro as
    stripped pages."""
    img = _smooth(384, 512, 61)
    philips = {"software": "Philips DP v1.0"}
    with tifffile.TiffWriter(path, bigtiff=True) as w:
        _write_abbreviated(w, img, (128, 128), description=philips_xml(4), **philips)
        for f in (2, 4, 8):
            level = img[::f, ::f]
            padded = np.full((-(-level.shape[0] // 128) * 128, -(-level.shape[1] // 128) * 128, 3), 255, np.uint8)
            padded[: level.shape[0], : level.shape[1]] = level
            _write_abbreviated(w, padded, (128, 128), subfiletype=1, **philips)
        for kind in ("Label", "Macro"):
            w.write(_text_pixels(40, 60, f"{kind} QUIMBY "), rowsperstrip=8, photometric="rgb", metadata=None,
                    description=f"{kind} image", **philips)
    return img


@pytest.mark.parametrize("level", [0, 1])
def test_philips_padded_levels_mapped_by_their_downsample(tmp_path: Path, level: int) -> None:
    src, dst = tmp_path / "in.tiff", tmp_path / "out.tiff"
    make_philips_padded(src)
    digest = _sha(src)
    with tifffile.TiffFile(src) as tf:
        assert [p.shape[:2] for p in tf.pages[:4]] == [(384, 512), (256, 256), (128, 128), (128, 128)]  # padded
        tables = tf.pages[1].jpegtables
    box0 = (130, 250, 300, 370)  # near the bottom, where padded sizes would shift the box on levels 1 and 2
    box = _outward(box0, 1, 2) if level else box0
    counts = _redact(src, dst, box, level=level)
    assert _sha(src) == digest and counts["pages"] == 4 and counts["tiles-reencoded"] == 0
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(str(dst))
    assert b.properties["openslide.vendor"] == "philips"
    assert b.level_dimensions == a.level_dimensions == ((512, 384), (256, 192), (128, 96), (64, 48))
    assert b.level_downsamples == (1.0, 2.0, 4.0, 8.0)
    for k, size in enumerate(a.level_dimensions):
        mapped = _outward(box0, 1, 2**k)
        _check_pixels(np.asarray(a.read_region((0, 0), k, size)), np.asarray(b.read_region((0, 0), k, size)),
                      mapped, 0, 16, 3)
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(dst) as tb:
        before, after = src.read_bytes(), dst.read_bytes()
        raw = [[[data[o : o + n] for o, n in zip(p.dataoffsets, p.databytecounts)] for p in t.pages]
               for t, data in ((ta, before), (tb, after))]
        reached = sum(_untouched(raw[0][k], raw[1][k], (ta.pages[k].imagewidth, ta.pages[k].imagelength), (128, 128),
                                 _outward(box0, 1, 2**k)) for k in range(4))
        assert raw[0][4:] == raw[1][4:]  # label and macro: not redacted (run removes them)
    assert reached == counts["tiles-touched"]
    # level 1, tile (0, 0): the box covers x 65..150, y 125..185 of the level; blocks outside keep
    # their coefficients and the tile stays abbreviated
    local = (65, 125, 128, 128)
    assert raw[1][1][0] != raw[0][1][0] and b"\xff\xc4" not in raw[1][1][0][: raw[1][1][0].index(b"\xff\xda")]
    _coefficients_kept(tables, raw[0][1][0], raw[1][1][0], local, (16, 16))


def test_philips_level_count_must_match_the_xml(tmp_path: Path) -> None:
    src = tmp_path / "in.tiff"
    img = _smooth(256, 256, 62)
    with tifffile.TiffWriter(src) as w:
        _write_abbreviated(w, img, (128, 128), description=philips_xml(3), software="Philips DP v1.0")
        _write_abbreviated(w, img[::2, ::2], (128, 128), subfiletype=1, software="Philips DP v1.0")
    with pytest.raises(UnsupportedInputError, match="pixel spacing per level"):
        _redact(src, tmp_path / "out.tiff", (0, 0, 8, 8))
    assert (tmp_path / "out.tiff").stat().st_size == 0


# --- OME-TIFF -----------------------------------------------------------------------------------

def test_ome_jpeg_levels_in_subifds(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.ome.tif", tmp_path / "out.ome.tif"
    make_ome(src)
    box = (100, 60, 300, 200)
    counts = _redact(src, dst, box, fill="white")
    assert counts["pages"] == 3 and counts["blocks-redacted"] > 0
    before, after = _level_pages(src), _level_pages(dst)
    assert len(before) == 3 and all(len(pages) == 1 for pages in before)
    reached = 0
    for k, ([(size, tile, tiles_b, px_b)], [(_, _, tiles_a, px_a)]) in enumerate(zip(before, after)):
        mapped = _outward(box, 1, 2**k)
        _check_pixels(px_b, px_a, mapped, 255, 16, 3)
        reached += _untouched(tiles_b, tiles_a, size, tile, mapped)
    assert reached == counts["tiles-touched"]
    _coefficients_kept(b"", before[0][0][2][0], after[0][0][2][0], (100, 60, 128, 128), (16, 16))  # tile (0, 0)
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(dst) as tb:
        assert tb.is_ome and len(tb.series) == len(ta.series) == 3
        for s_a, s_b in zip(ta.series[1:], tb.series[1:]):  # label and macro: as they were
            assert np.array_equal(s_a.asarray(), s_b.asarray())


def make_ome_channels(path: Path) -> np.ndarray:
    """A fluorescence OME-TIFF pyramid as tifffile and the converters write it: three 16-bit
    channels of 512x384 as three pages (deflate tiles of 128, horizontal predictor), each with
    two SubIFDs (downsamples 2 and 4), then a label image."""
    rng = np.random.default_rng(63)
    data = rng.integers(0, 60000, (3, 384, 512), dtype=np.uint16)
    opts = {"tile": (128, 128), "compression": "zlib", "predictor": True}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as w:
        w.write(data, subifds=2, metadata={"axes": "CYX", "Name": "slide"}, **opts)
        for f in (2, 4):
            w.write(data[:, ::f, ::f], subfiletype=1, **opts)
        w.write(_text_pixels(40, 60, "LABEL QUIMBY "), photometric="rgb", metadata={"Name": "label"})
    return data


@pytest.mark.parametrize("level", [0, 2])
def test_ome_every_channel_of_every_level(tmp_path: Path, level: int) -> None:
    src, dst = tmp_path / "in.ome.tif", tmp_path / "out.ome.tif"
    data = make_ome_channels(src)
    box0 = (96, 40, 350, 201)
    box = _outward(box0, 1, 4) if level else box0
    counts = _redact(src, dst, box, level=level)
    box0 = _outward(box, 4, 1) if level else box0  # a level-2 box covers whole level-2 pixels of level 0
    assert counts["pages"] == 9 and counts["tiles-reencoded"] == counts["tiles-touched"]
    before, after = _level_pages(src), _level_pages(dst)
    assert [len(p) for p in before] == [3, 3, 3]
    reached = 0
    for k, (pages_b, pages_a) in enumerate(zip(before, after)):
        x0, y0, x1, y1 = mapped = _outward(box0, 1, 2**k)
        for c, ((size, tile, tiles_b, px_b), (_, _, tiles_a, px_a)) in enumerate(zip(pages_b, pages_a)):
            assert np.array_equal(px_b, data[c, :: 2**k, :: 2**k])
            expect = px_b.copy()
            expect[y0:y1, x0:x1] = 0
            assert np.array_equal(px_a, expect), (k, c)
            reached += _untouched(tiles_b, tiles_a, size, tile, mapped)
    assert reached == counts["tiles-touched"]
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(dst) as tb:
        assert tb.is_ome and [s.name for s in tb.series] == [s.name for s in ta.series] == ["slide", "label"]
        assert np.array_equal(ta.series[1].asarray(), tb.series[1].asarray())


def test_level_counts_levels_not_channel_pages(tmp_path: Path) -> None:
    src = tmp_path / "in.ome.tif"
    make_ome_channels(src)
    with pytest.raises(UsageError, match="between 0 and 2"):
        _redact(src, tmp_path / "out.ome.tif", (0, 0, 8, 8), level=3)
    assert (tmp_path / "out.ome.tif").stat().st_size == 0


# --- QPTIFF -------------------------------------------------------------------------------------

def test_qptiff_every_channel_level_and_thumbnail(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.qptiff", tmp_path / "out.qptiff"
    make_qptiff(src)
    box1 = (30, 20, 150, 170)  # in level 1 (256x192), which --level 1 names (not the second channel page)
    counts = _redact(src, dst, box1, level=1)
    assert counts["pages"] == 10 and counts["tiles-reencoded"] == counts["tiles-touched"]
    box0 = _outward(box1, 2, 1)
    raw_b, raw_a = src.read_bytes(), dst.read_bytes()
    reached = 0
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(dst) as tb:
        assert tb.is_qpi and [s.name for s in tb.series] == [s.name for s in ta.series]
        for i, (pa, pb) in enumerate(zip(ta.pages, tb.pages)):
            before, after = pa.asarray(), pb.asarray()
            if i >= 10:  # overview and label: not redacted (run removes them)
                assert np.array_equal(before, after) and pa.dataoffsets == pb.dataoffsets
                continue
            h, w = before.shape[:2]
            x0, y0, x1, y1 = box = (box0[0] * w // 512, box0[1] * h // 384, -(-box0[2] * w // 512), -(-box0[3] * h // 384))
            expect = before.copy()
            expect[y0:y1, x0:x1] = 0
            assert np.array_equal(after, expect), i
            if pa.is_tiled:
                reached += _untouched([raw_b[o : o + n] for o, n in zip(pa.dataoffsets, pa.databytecounts)],
                                      [raw_a[o : o + n] for o, n in zip(pb.dataoffsets, pb.databytecounts)],
                                      (w, h), (pa.tilewidth, pa.tilelength), box)
            else:  # the thumbnail, in strips
                reached += len({r // pa.rowsperstrip for r in range(y0, y1)})
    assert reached == counts["tiles-touched"]
    with pytest.raises(UsageError, match="between 0 and 2"):
        _redact(src, tmp_path / "again.qptiff", box1, level=3)


# --- in a run, by a region template -------------------------------------------------------------

@pytest.mark.parametrize("vendor", ["philips", "qptiff"])
def test_a_template_redacts_these_vendors_in_a_run(tmp_path: Path, vendor: str) -> None:
    """A template that matches a Philips or QPTIFF slide no longer quarantines it: the slide is
    redacted (on every level, by the level's own downsample), cleaned and released, and the
    release verifies."""
    from test_slide_regions import _box, _released, _run

    from medcloak.verify import verify_release

    slide = tmp_path / ("case.tiff" if vendor == "philips" else "case.qptiff")
    (make_philips_padded if vendor == "philips" else make_qptiff)(slide)
    regions = f'[[slide_region]]\nwhere = {{ vendor = "{vendor}", width = 512, height = 384 }}\nboxes = [[0.25, 0.6, 0.6, 0.95]]\n'
    out, row = _run(tmp_path, slide, regions, "redacted")
    released = _released(out, row)
    assert row["actions"]["pixel-regions-redacted"] == 1 and row["actions"]["redact-tiles-touched"] > 0
    box0 = _box((0.25, 0.6, 0.6, 0.95), (512, 384))
    if vendor == "philips":
        with openslide.OpenSlide(str(slide)) as a, openslide.OpenSlide(str(released)) as b:
            assert b.properties["openslide.vendor"] == "philips" and b.level_dimensions == a.level_dimensions
            for k, size in enumerate(a.level_dimensions):
                _check_pixels(np.asarray(a.read_region((0, 0), k, size)), np.asarray(b.read_region((0, 0), k, size)),
                              _outward(box0, 1, 2**k), 0, 16, 3)
    else:
        with tifffile.TiffFile(slide) as ta, tifffile.TiffFile(released) as tb:
            assert tb.is_qpi
            for lv_a, lv_b in zip(ta.series[0].levels, tb.series[0].levels):
                before, after = lv_a.asarray(), lv_b.asarray()  # channels, rows, columns
                x0, y0, x1, y1 = _outward(box0, before.shape[2], 512)
                expect = before.copy()
                expect[:, y0:y1, x0:x1] = 0
                assert np.array_equal(after, expect)
    assert verify_release(out, tmp_path / "redacted.audit") == []


@pytest.mark.parametrize("make", [make_philips_padded, make_ome_channels, make_qptiff], ids=["philips", "ome", "qptiff"])
def test_garbled_give_typed_errors_only(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    """One to four random bytes overwritten, 80 times (fixed seed), every other time inside the
    XML the mapping reads: the slide is redacted or refused with a medcloak error, never another
    exception."""
    import io
    import random

    from medcloak.errors import MedcloakError
    from medcloak.formats.slide_redact import redact_slide

    make(tmp_path / "in.tif")
    data = (tmp_path / "in.tif").read_bytes()
    xml = [i for i in range(len(data)) if data.startswith(b"<?xml", i)]
    rng = random.Random(11)
    src = tmp_path / "garbled.tif"
    for n in range(80):
        garbled = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(garbled)) if n % 2 else min(len(data) - 1, rng.choice(xml) + rng.randrange(3000))
            garbled[at] = rng.randrange(256)
        src.write_bytes(bytes(garbled))
        try:
            redact_slide(src, io.BytesIO(), (20, 30, 200, 170), 0)
        except MedcloakError:
            pass
