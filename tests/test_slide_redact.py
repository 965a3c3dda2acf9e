"""A box redacted on every level and the thumbnail of a TIFF-family slide: the mapped box is the
fill on every page, tiles the box does not touch keep their bytes and offsets, blocks outside the
box in touched JPEG tiles (and NDPI restart intervals) keep their coefficients (checked with the
reference decoder in ``jpegref``), lossless tiles change only inside the box, and the slide still opens in OpenSlide.

Real samples come from data_samples/wsi (CMU-1-Small-Region.svs: one level of abbreviated JPEG
tiles with JPEGTables and a thumbnail in JPEG strips; openslide-python_boxes.tiff: a deflate
pyramid; slideio_test3-DAPI-2-387.ndpi: four levels, each one JPEG with a restart interval
per MCU row). Synthetic slides are written here with tifffile: :func:`make_abbreviated_svs` encodes
each tile with libjpeg (imagecodecs) and splits its tables off into JPEGTables as Aperio does,
:func:`make_pyramid` lets tifffile write whole JPEG or lossless tiles.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import jpegref as R
import numpy as np
import pytest

from medcloak.cli import main
from medcloak.errors import UnsupportedInputError, UsageError
from medcloak.formats.slide_redact import redact_slide, redact_slide_boxes

tifffile = pytest.importorskip("tifffile")
openslide = pytest.importorskip("openslide")
imagecodecs = pytest.importorskip("imagecodecs")

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples" / "wsi"
FILL = {"black": 0, "white": 255}
APERIO = "Aperio Image Library v12.0.15 \r\n"


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = [(np.sin(x / (9 + 4 * c)) + np.cos(y / (7 + 3 * c))) * 50 + 128 for c in range(3)]
    arr = np.stack(planes, -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(arr, 20, 235).astype(np.uint8)


def _split_tables(stream: bytes) -> tuple[bytes, bytes]:
    """(JPEGTables: SOI, DQT and DHT segments, EOI; the abbreviated stream without them)."""
    i, tables, rest = 2, [], []
    while True:
        marker, length = stream[i + 1], int.from_bytes(stream[i + 2 : i + 4], "big")
        if marker == 0xDA:
            rest.append(stream[i:])
            break
        (tables if marker in (0xDB, 0xC4) else rest).append(stream[i : i + 2 + length])
        i += 2 + length
    return b"\xff\xd8" + b"".join(tables) + b"\xff\xd9", b"\xff\xd8" + b"".join(rest)


def _write_abbreviated(w, img: np.ndarray, tile: tuple[int, int] | None, **kw) -> None:  # type: ignore[no-untyped-def]
    """One page of abbreviated JPEG tiles (or strips of ``rowsperstrip`` rows when ``tile`` is
    None) in YCbCr 4:2:0 sharing one JPEGTables, as Aperio writes them."""
    img = np.ascontiguousarray(img)
    h, w_ = img.shape[:2]
    th, tw = tile if tile else (kw["rowsperstrip"], w_)
    streams, tables = [], set()
    for y in range(0, h, th):
        for x in range(0, w_, tw):
            part = img[y : y + th, x : x + tw]
            if tile:
                padded = np.zeros((th, tw, 3), np.uint8)
                padded[: part.shape[0], : part.shape[1]] = part
                part = padded
            tab, abbreviated = _split_tables(imagecodecs.jpeg8_encode(
                part, level=85, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)))
            tables.add(tab)
            streams.append(abbreviated)
    assert len(tables) == 1
    tab = tables.pop()
    extra = {"tile": tile} if tile else {}
    w.write(iter(streams), shape=img.shape, dtype="uint8", compression=7, photometric="ycbcr",
            subsampling=(2, 2), extratags=[(347, "B", len(tab), tab, True)], metadata=None, **extra, **kw)


def make_abbreviated_svs(path: Path, big: bool = False) -> np.ndarray:
    """An Aperio SVS: level 0 (1024x768, 256x256 tiles), the thumbnail (256x192 in strips of 16
    rows), levels 1 and 2 (downsamples 2 and 4), all abbreviated JPEG with JPEGTables."""
    img = _smooth(768, 1024, 1)
    with tifffile.TiffWriter(path, bigtiff=big) as w:
        _write_abbreviated(w, img, (256, 256), description=APERIO + "1024x768 [0,0 1024x768] (256x256) JPEG/RGB Q=85|AppMag = 20|MPP = 0.5")
        _write_abbreviated(w, img[::4, ::4], None, rowsperstrip=16, description=APERIO + "1024x768 -> 256x192 - ")
        _write_abbreviated(w, img[::2, ::2], (256, 256), subfiletype=1, description=APERIO + "1024x768 -> 512x384")
        _write_abbreviated(w, img[::4, ::4], (256, 256), subfiletype=1, description=APERIO + "1024x768 -> 256x192")
    return img


def make_pyramid(path: Path, compression: str, big: bool = False, **kw) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A generic pyramid written by tifffile: 600x400, downsamples 1, 2, 4 as pages, 64x64 tiles."""
    img = _smooth(400, 600, 2)
    with tifffile.TiffWriter(path, bigtiff=big) as w:
        for k, f in enumerate((1, 2, 4)):
            w.write(img[::f, ::f], tile=(64, 64), compression=compression, photometric="rgb", metadata=None,
                    subfiletype=1 if k else 0, **kw)
    return img


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pages(path: Path) -> list[tuple[tuple[int, int], list[tuple[int, int]], list[bytes]]]:
    """Per page: (width, height), [(offset, count)] and the raw bytes of each tile or strip."""
    data = path.read_bytes()
    out = []
    with tifffile.TiffFile(path) as tf:
        for p in tf.pages:
            chunks = list(zip(p.dataoffsets, p.databytecounts))
            out.append(((p.imagewidth, p.imagelength), chunks, [data[o : o + n] for o, n in chunks]))
    return out


def _mapped(box: tuple[int, int, int, int], src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int, int, int]:
    (x0, y0, x1, y1), (sw, sh), (dw, dh) = box, src, dst
    return (int(np.floor(x0 * dw / sw)), int(np.floor(y0 * dh / sh)),
            min(dw, int(np.ceil(x1 * dw / sw))), min(dh, int(np.ceil(y1 * dh / sh))))


def _redact(src: Path, dst: Path, box, level: int = 0, fill: str = "black") -> dict[str, int]:  # type: ignore[no-untyped-def]
    with open(dst, "wb") as fh:
        return redact_slide(src, fh, box, level, fill)


def _check_pixels(before: np.ndarray, after: np.ndarray, box, fill: int, unit: int, tol: int) -> None:  # type: ignore[no-untyped-def]
    """Inside ``box`` the fill: within ``tol`` two pixels in from its edges, where decoders'
    chroma upsampling (triangle filter) may blend in a clean neighbour's colour, and within 64 on
    the edges, 2 on average; outside ``box`` grown by ``unit`` (the block or MCU the kernels
    round to, plus the reach of chroma upsampling) unchanged."""
    x0, y0, x1, y1 = box
    inside = np.abs(after[y0:y1, x0:x1, :3].astype(int) - fill)
    assert inside[2:-2, 2:-2].max() <= tol and inside.max() <= 64 and inside.mean() <= 2
    mask = np.ones(before.shape[:2], bool)
    gx0, gy0 = max(0, x0 // unit * unit - unit), max(0, y0 // unit * unit - unit)
    mask[gy0 : -(-y1 // unit) * unit + unit, gx0 : -(-x1 // unit) * unit + unit] = False
    assert np.array_equal(before[mask], after[mask])
    assert not np.array_equal(before[~mask], after[~mask])


def _untouched_identical(src: Path, dst: Path, box, base: tuple[int, int], redacted: int) -> int:  # type: ignore[no-untyped-def]
    """Every tile or strip the mapped box does not reach on the first ``redacted`` pages, and
    every one of the other pages (label, macro), has its bytes at its offset; returns how many
    tiles the box reached."""
    reached = 0
    with tifffile.TiffFile(src) as tf:
        geometry = [(p.tilewidth or p.imagewidth, p.tilelength or p.rowsperstrip) for p in tf.pages]
    for k, ((size, before, raw_b), (size_a, after, raw_a), (cw, ch)) in enumerate(zip(_pages(src), _pages(dst), geometry)):
        assert size == size_a
        if k >= redacted:
            assert before == after and raw_b == raw_a
            continue
        x0, y0, x1, y1 = _mapped(box, base, size)
        across = -(-size[0] // cw)
        for i, (b, a, rb, ra) in enumerate(zip(before, after, raw_b, raw_a)):
            cx, cy = i % across, i // across
            if cx * cw < x1 and x0 < (cx + 1) * cw and cy * ch < y1 and y0 < (cy + 1) * ch:
                reached += 1
            else:
                assert a == b and ra == rb
    return reached


@pytest.mark.parametrize("fill", ["black", "white"])
def test_real_svs_every_page(tmp_path: Path, fill: str) -> None:
    src, dst = SAMPLES / "CMU-1-Small-Region.svs", tmp_path / "out.svs"
    digest = _sha(src)
    box = (500, 600, 900, 800)
    counts = _redact(src, dst, box, fill=fill)
    assert _sha(src) == digest
    # a tile may grow (moved to the end): in near-white background, the DC jumps to and from a
    # black fill cost more bits than the AC coefficients the fill drops
    assert counts["pages"] == 2 and counts["blocks-redacted"] > 0
    assert dst.stat().st_size >= src.stat().st_size
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(str(dst))
    assert b.level_dimensions == a.level_dimensions and b.properties["openslide.vendor"] == "aperio"
    before = np.asarray(a.read_region((0, 0), 0, a.dimensions))
    after = np.asarray(b.read_region((0, 0), 0, b.dimensions))
    _check_pixels(before, after, box, FILL[fill], 8, 2)
    thumb_a, thumb_b = np.asarray(a.associated_images["thumbnail"]), np.asarray(b.associated_images["thumbnail"])
    tbox = _mapped(box, a.dimensions, thumb_a.shape[1::-1])
    _check_pixels(thumb_a, thumb_b, tbox, FILL[fill], 8, 2)
    # label and macro are not redacted (medcloak run removes them)
    for name in ("label", "macro"):
        assert np.array_equal(np.asarray(a.associated_images[name]), np.asarray(b.associated_images[name]))
    assert _untouched_identical(src, dst, box, a.dimensions, 2) == counts["tiles-touched"]


def _coefficients_kept(tables: bytes, before: bytes, after: bytes, box, unit: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """With the reference decoder: blocks of the tile outside ``box`` (rounded to MCUs of
    ``unit`` pixels) keep every coefficient; blocks inside have no AC and one DC per component."""
    whole = lambda s: tables[:-2] + s[2:] if tables else s
    ref_b, ref_a = R.decode_coefficients(whole(before)), R.decode_coefficients(whole(after), strict=True)
    hmax = max(c["h"] for c in ref_b["components"])
    vmax = max(c["v"] for c in ref_b["components"])
    x0, y0, x1, y1 = box
    ux, uy = unit
    for cb, ca in zip(ref_b["components"], ref_a["components"]):
        coef_b, coef_a = cb["coef"], ca["coef"]
        sx, sy = ux * cb["h"] // hmax // 8, uy * cb["v"] // vmax // 8  # blocks per MCU
        inside = np.zeros(coef_b.shape[:2], bool)
        inside[y0 // uy * sy : -(-y1 // uy) * sy, x0 // ux * sx : -(-x1 // ux) * sx] = True
        assert np.array_equal(coef_b[~inside], coef_a[~inside])
        assert not coef_a[inside][:, 1:].any()
        assert len(np.unique(coef_a[inside][:, 0])) == 1


@pytest.mark.parametrize("big", [False, True])
def test_abbreviated_pyramid_box_on_level_1(tmp_path: Path, big: bool) -> None:
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_abbreviated_svs(src, big)
    digest = _sha(src)
    box1 = (100, 40, 300, 150)  # in level 1 (512x384)
    counts = _redact(src, dst, box1, level=1, fill="black")
    assert _sha(src) == digest
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(str(dst))
    assert b.level_dimensions == a.level_dimensions == ((1024, 768), (512, 384), (256, 192))
    assert counts["pages"] == 4
    for level, size in enumerate(a.level_dimensions):
        box = _mapped(box1, (512, 384), size)
        before = np.asarray(a.read_region((0, 0), level, size))
        after = np.asarray(b.read_region((0, 0), level, size))
        _check_pixels(before, after, box, 0, 16, 3)
    thumb = _mapped(box1, (512, 384), (256, 192))
    _check_pixels(np.asarray(a.associated_images["thumbnail"]), np.asarray(b.associated_images["thumbnail"]), thumb, 0, 16, 3)
    # level 0 in level 0's pixels: tiles untouched are identical; a touched tile keeps the
    # coefficients of every block outside the box and stays abbreviated
    box0 = _mapped(box1, (512, 384), (1024, 768))
    assert _untouched_identical(src, dst, box0, (1024, 768), 4) == counts["tiles-touched"]
    with tifffile.TiffFile(src) as tf:
        tables = tf.pages[0].jpegtables
    (_, _, raw_b), (_, _, raw_a) = _pages(src)[0], _pages(dst)[0]
    for i in (0, 1, 4, 5):  # tiles (0,0), (1,0), (0,1), (1,1) of level 0
        cx, cy = i % 4, i // 4
        x0, y0, x1, y1 = box0
        local = (max(0, x0 - 256 * cx), max(0, y0 - 256 * cy), min(256, x1 - 256 * cx), min(256, y1 - 256 * cy))
        if local[0] >= local[2] or local[1] >= local[3]:
            assert raw_a[i] == raw_b[i]
            continue
        head = raw_a[i][: raw_a[i].index(b"\xff\xda")]
        assert raw_a[i] != raw_b[i] and b"\xff\xdb" not in head and b"\xff\xc4" not in head  # abbreviated still
        _coefficients_kept(tables, raw_b[i], raw_a[i], local, (16, 16))


def test_self_contained_jpeg_tiles_bigtiff(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    make_pyramid(src, "jpeg", big=True)
    box = (130, 70, 250, 200)
    counts = _redact(src, dst, box, fill="white")
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(str(dst))
    assert b.level_dimensions == a.level_dimensions and len(a.level_dimensions) == 3
    for level, size in enumerate(a.level_dimensions):
        before = np.asarray(a.read_region((0, 0), level, size))
        after = np.asarray(b.read_region((0, 0), level, size))
        _check_pixels(before, after, _mapped(box, (600, 400), size), 255, 16, 3)
    assert _untouched_identical(src, dst, box, (600, 400), 3) == counts["tiles-touched"]
    (_, _, raw_b), (_, _, raw_a) = _pages(src)[0], _pages(dst)[0]
    _coefficients_kept(b"", raw_b[2 + 10], raw_a[2 + 10], (2, 6, 64, 64), (16, 16))  # tile (2, 1)


@pytest.mark.parametrize("compression,kw", [
    ("zlib", {"predictor": True}), ("zlib", {}), ("lzw", {"predictor": True}), ("none", {}),
])
def test_lossless_tiles_exact(tmp_path: Path, compression: str, kw: dict) -> None:
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    img = make_pyramid(src, compression, **kw)
    box = (101, 33, 187, 250)
    counts = _redact(src, dst, box, fill="white")
    assert counts["tiles-reencoded"] == counts["tiles-touched"] > 0 and counts["blocks-redacted"] == 0
    # the filled tiles compress at least as well: written where they were, the file keeps its size
    assert counts["tiles-moved"] == 0 and dst.stat().st_size == src.stat().st_size
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(dst) as tb:
        assert len(ta.pages) == len(tb.pages) == 3
        for pa, pb, f in zip(ta.pages, tb.pages, (1, 2, 4)):
            before, after = pa.asarray(), pb.asarray()
            assert np.array_equal(before, img[::f, ::f])
            x0, y0, x1, y1 = _mapped(box, (600, 400), before.shape[1::-1])
            expect = before.copy()
            expect[y0:y1, x0:x1] = 255
            assert np.array_equal(after, expect)
    assert _untouched_identical(src, dst, box, (600, 400), 3) == counts["tiles-touched"]
    assert openslide.OpenSlide(str(dst)).level_dimensions == openslide.OpenSlide(str(src)).level_dimensions


def test_real_deflate_pyramid(tmp_path: Path) -> None:
    src, dst = SAMPLES / "openslide-python_boxes.tiff", tmp_path / "out.tiff"
    box = (10, 10, 100, 60)
    counts = _redact(src, dst, box)
    assert counts["pages"] == 4
    with tifffile.TiffFile(src) as ta, tifffile.TiffFile(dst) as tb:
        for pa, pb in zip(ta.pages, tb.pages):
            before, after = pa.asarray(), pb.asarray()
            x0, y0, x1, y1 = _mapped(box, (300, 250), before.shape[1::-1])
            expect = before.copy()
            expect[y0:y1, x0:x1] = 0
            assert np.array_equal(after, expect)


def test_grown_tile_moves_to_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-encoded tile longer than the old one is appended, its offset repointed, its old bytes
    zeroed (forced here by re-encoding deflate tiles uncompressed-in-deflate, level 0)."""
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    img = make_pyramid(src, "zlib")
    compress = zlib.compress
    monkeypatch.setattr(zlib, "compress", lambda data, level=-1: compress(data, 0))
    box = (0, 0, 10, 10)
    counts = _redact(src, dst, box, fill="black")
    assert counts["tiles-moved"] == counts["tiles-touched"] == 3
    assert dst.stat().st_size > src.stat().st_size
    (_, before, _), (_, after, _) = _pages(src)[0], _pages(dst)[0]
    assert after[0][0] >= src.stat().st_size and after[1:] == before[1:]
    o, n = before[0]
    assert dst.read_bytes()[o : o + n] == bytes(n)
    with tifffile.TiffFile(dst) as tb:
        out = tb.pages[0].asarray()
    expect = img.copy()
    expect[:10, :10] = 0
    assert np.array_equal(out, expect)
    assert openslide.OpenSlide(str(dst)).level_count == 3


@pytest.mark.parametrize("compression", ["zlib", "jpeg"])
def test_several_boxes_and_level_mapping(tmp_path: Path, compression: str) -> None:
    """Boxes on level 2 (150x100), one in the same tiles as another and one past the slide's
    edge (clipped), land on level 0 four times as large."""
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    make_pyramid(src, compression)
    with open(dst, "wb") as fh:
        redact_slide_boxes(src, fh, [(0, 0, 5, 5), (8, 2, 12, 6), (20, 10, 40, 30), (140, 90, 200, 200)],
                           level=2, fill="black")
    with tifffile.TiffFile(dst) as tb:
        level0 = tb.pages[0].asarray().astype(int)
    tol = 0 if compression == "zlib" else 3
    for y0, y1, x0, x1 in ((0, 20, 0, 20), (8, 24, 32, 48), (40, 120, 80, 160), (360, 400, 560, 600)):
        assert level0[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].max() <= tol
    assert level0[40:120, 16:64].min(axis=-1).mean() > 20


def test_usage_errors(tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    make_pyramid(src, "zlib")
    digest = _sha(src)
    for box, level in [((600, 0, 700, 10), 0), ((0, 400, 10, 500), 0), ((200, 0, 210, 10), 2),
                       ((5, 5, 5, 10), 0), ((-1, 0, 10, 10), 0), ((0, 0, 10, 10), 3)]:
        out = tmp_path / "out.tif"
        with pytest.raises(UsageError):
            _redact(src, out, box, level)
        assert out.stat().st_size == 0  # refused before anything is written
    with pytest.raises(UsageError):
        _redact(src, tmp_path / "out.tif", (0, 0, 10, 10), fill="pink")
    assert _sha(src) == digest


def test_other_codecs_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.tif"
    make_pyramid(src, "zstd")
    out = tmp_path / "out.tif"
    with pytest.raises(UnsupportedInputError, match="Zstandard"):
        _redact(src, out, (0, 0, 10, 10))
    assert out.stat().st_size == 0


def _ndpi_levels(path: Path) -> list[tuple[int, list[int], bytes]]:
    """Per NDPI level page: (strip offset, restart interval starts, the level's JPEG)."""
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tf:
        strips = [(p.tags[273].value[0], p.tags[279].value[0], list(p.tags[65426].value))
                  for p in tf.pages if p.tags[65421].value > 0]
    return [(o, starts, data[o : o + n]) for o, n, starts in strips]


def test_real_ndpi_every_level(tmp_path: Path) -> None:
    """Each level is one JPEG with a restart interval per MCU row: the touched intervals are
    redacted in place (padded with fill bytes), every other byte of the file is unchanged."""
    src, dst = SAMPLES / "slideio_test3-DAPI-2-387.ndpi", tmp_path / "out.ndpi"
    digest = _sha(src)
    box1 = (500, 600, 1000, 1000)  # level 1 (1984x2432)
    counts = _redact(src, dst, box1, level=1, fill="white")
    assert _sha(src) == digest and counts["pages"] == 4 and counts["tiles-moved"] == 0
    assert dst.stat().st_size == src.stat().st_size
    a, b = openslide.OpenSlide(str(src)), openslide.OpenSlide(str(dst))
    assert b.level_dimensions == a.level_dimensions and b.properties["openslide.vendor"] == "hamamatsu"
    for level in range(4):
        size = a.level_dimensions[level]
        before = np.asarray(a.read_region((0, 0), level, size))
        after = np.asarray(b.read_region((0, 0), level, size))
        _check_pixels(before, after, _mapped(box1, (1984, 2432), size), 255, 8, 3)
    raw_b, raw_a = src.read_bytes(), dst.read_bytes()
    changed = np.flatnonzero(np.frombuffer(raw_b, np.uint8) != np.frombuffer(raw_a, np.uint8))
    touched = 0
    for (offset, starts, jpeg_b), (_, starts_a, jpeg_a), f in zip(_ndpi_levels(src), _ndpi_levels(dst), (2, 1, 0.5, 0.25)):
        assert starts == starts_a
        y0, y1 = int(600 * f) // 8, -(-int(np.ceil(1000 * f)) // 8)  # the MCU rows the box reaches
        lo, hi = offset + starts[y0], offset + (starts[y1] if y1 < len(starts) else len(jpeg_b))
        touched += y1 - y0
        inside = changed[(changed >= offset) & (changed < offset + len(jpeg_b))]
        assert inside.size and inside.min() >= lo and inside.max() < hi
    assert changed.size == sum(((changed >= o) & (changed < o + len(j))).sum() for o, _, j in _ndpi_levels(src))
    assert counts["tiles-touched"] == touched
    # the smallest level, decoded whole by the reference decoder: blocks outside the box keep
    # their coefficients
    _, _, jpeg_b = _ndpi_levels(src)[-1]
    _, _, jpeg_a = _ndpi_levels(dst)[-1]
    box3 = _mapped(box1, (1984, 2432), (496, 608))
    _coefficients_kept(b"", jpeg_b, jpeg_a, box3, (8, 8))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in.svs", tmp_path / "out.svs"
    make_abbreviated_svs(src)
    assert main(["redact", str(src), "--box", "10,10,60,40", "--level", "2", "--out", str(out)]) == 0
    assert "redacted" in capsys.readouterr().out
    after = np.asarray(openslide.OpenSlide(str(out)).read_region((0, 0), 0, (256, 192)))
    assert after[48:144, 48:224, :3].max() <= 3
    assert main(["redact", str(src), "--box", "2000,10,2060,40", "--out", str(out)]) == 2
    assert "outside level 0" in capsys.readouterr().err
    assert main(["redact", str(src), "--box", "0,0,8,8", "--frames", "1", "--out", str(out)]) == 2
    jpeg = tmp_path / "a.jpg"
    jpeg.write_bytes(imagecodecs.jpeg8_encode(_smooth(32, 32, 3)))
    assert main(["redact", str(jpeg), "--box", "0,0,8,8", "--level", "1", "--out", str(tmp_path / "b.jpg")]) == 2


def test_tile_shared_by_two_entries(tmp_path: Path) -> None:
    """Writers that store a repeated tile once point several entries at it: redacting one of them
    leaves the other's bytes (and pixels) alone, the redacted tile going to the end of the file."""
    import struct

    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    img = make_pyramid(src, "zlib")
    with tifffile.TiffFile(src) as tf:
        page = tf.pages[0]
        tag_o, tag_n = page.tags["TileOffsets"], page.tags["TileByteCounts"]
        o, n = page.dataoffsets[0], page.databytecounts[0]
        assert tag_o.dtype == 4 and tag_n.dtype == 4  # LONG, offsets of their values
        at_o, at_n = tag_o.valueoffset, tag_n.valueoffset
    data = bytearray(src.read_bytes())
    struct.pack_into("<I", data, at_o + 4 * 1, o)  # tile (1, 0) shows tile (0, 0)'s bytes
    struct.pack_into("<I", data, at_n + 4 * 1, n)
    src.write_bytes(bytes(data))
    counts = _redact(src, dst, (0, 0, 10, 10))
    assert counts["tiles-moved"] == 1
    out = dst.read_bytes()
    assert out[o : o + n] == data[o : o + n]
    with tifffile.TiffFile(dst) as tb:
        level0 = tb.pages[0].asarray()
    assert not level0[:10, :10].any()
    assert np.array_equal(level0[:64, 64:128], img[:64, :64]) and np.array_equal(level0[10:64, :64], img[10:64, :64])


def test_ventana_is_refused_before_writing(tmp_path) -> None:
    """``run`` releases Ventana BIF; redacting it is refused with the reason (its level-0 tiles
    overlap), nothing written (the slide is test_slide_vendors' faithful build)."""
    import test_slide_vendors

    src = tmp_path / "slide.bif"
    test_slide_vendors.make_ventana(src)
    with open(tmp_path / "out.tiff", "wb") as fh, pytest.raises(UnsupportedInputError, match="tiles overlap"):
        redact_slide(src, fh, (0, 0, 8, 8))
    assert (tmp_path / "out.tiff").stat().st_size == 0


def test_tile_found_corrupt_while_copying_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """The copy runs in a thread while the tiles are redacted: a tile found corrupt then (a deflate
    tile overwritten with garbage here; the copy held back until the tile is read, and slowed
    after) stops and awaits the copy, and neither the output nor its temporary file is left."""
    import threading
    import time

    import medcloak.formats.slide_redact as SR
    import medcloak.formats.slide_tiff as ST
    from medcloak.errors import CorruptInputError
    from medcloak.redact import redact_slide_file

    src = tmp_path / "in.tif"
    make_pyramid(src, "zlib")
    with tifffile.TiffFile(src) as tf:
        o, n = tf.pages[0].dataoffsets[0], tf.pages[0].databytecounts[0]
    data = bytearray(src.read_bytes())
    data[o : o + n] = b"\x00" * n  # not a deflate stream
    src.write_bytes(bytes(data))
    digest = _sha(src)
    reading, copying = threading.Event(), []
    copy_range, refill = ST.copy_range, SR._refill

    def held_copy(*args):  # type: ignore[no-untyped-def]
        assert reading.wait(30)
        time.sleep(0.2)  # a copy not awaited would still run when the redaction returns
        copy_range(*args)

    def watched_refill(*args):  # type: ignore[no-untyped-def]
        copying.append(any(t.name == "medcloak-slide-copy" for t in threading.enumerate()))
        reading.set()
        return refill(*args)

    monkeypatch.setattr(ST, "copy_range", held_copy)
    monkeypatch.setattr(SR, "_refill", watched_refill)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(CorruptInputError, match="does not decompress"):
        redact_slide_file(src, folder / "red.tif", [(0, 0, 10, 10)])
    assert copying == [True]  # refused while the copy ran
    assert not any(t.name == "medcloak-slide-copy" for t in threading.enumerate())
    assert list(folder.iterdir()) == []
    with open(tmp_path / "direct.tif", "wb") as fh, pytest.raises(CorruptInputError):
        redact_slide(src, fh, (0, 0, 10, 10))
    assert (tmp_path / "direct.tif").stat().st_size == 0
    assert _sha(src) == digest


def test_patches_past_the_memory_budget_wait_for_the_copy(tmp_path: Path, monkeypatch) -> None:
    """Redacted tiles wait in memory for the copy up to a budget; past it (none here) the
    redaction waits for the copy and writes each tile at once: the same output (the copy is
    slowed so that a tile written before it ends would be copied over)."""
    import time

    import medcloak.formats.slide_redact as SR
    import medcloak.formats.slide_tiff as ST

    src = tmp_path / "in.tif"
    make_pyramid(src, "zlib")
    box = (100, 50, 300, 250)
    _redact(src, tmp_path / "held.tif", box)
    copy_range = ST.copy_range

    def slow_copy(*args):  # type: ignore[no-untyped-def]
        time.sleep(0.3)
        copy_range(*args)

    monkeypatch.setattr(ST, "copy_range", slow_copy)
    monkeypatch.setattr(SR, "HELD", 0)
    _redact(src, tmp_path / "direct.tif", box)
    assert _sha(tmp_path / "direct.tif") == _sha(tmp_path / "held.tif") != _sha(src)


def test_durable_copy_writes_the_same_bytes(tmp_path: Path) -> None:
    """``medcloak redact`` asks for the copy to go to the disk as it is made (it fsyncs): the
    output is the same as one left in the page cache."""
    from medcloak.redact import redact_slide_file

    src = tmp_path / "in.tif"
    make_pyramid(src, "zlib")
    _redact(src, tmp_path / "cached.tif", (100, 50, 300, 250))
    redact_slide_file(src, tmp_path / "durable.tif", [(100, 50, 300, 250)])
    assert _sha(tmp_path / "durable.tif") == _sha(tmp_path / "cached.tif") != _sha(src)
