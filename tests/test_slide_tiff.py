"""TIFF-family slides: label and macro gone with their bytes, metadata cleaned by allow-list, every
pyramid tile copied byte for byte, the slide still read by OpenSlide as before; broken slides are
typed errors.

Real samples come from data_samples/wsi (see data_samples/SOURCES.md). Synthetic slides are
written here with tifffile, each builder saying how its file is laid out and where it plants
identifiers."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest

from medcloak.errors import CorruptInputError, DeidentificationError, UnsupportedInputError
from medcloak.formats.slide_tiff import SlideReport, clean_slide, sniff_slide, verify_slide
from medcloak.pseudonym import Keyring

tifffile = pytest.importorskip("tifffile")
openslide = pytest.importorskip("openslide")

SAMPLES = Path(__file__).resolve().parent.parent / "data_samples" / "wsi"
KEYRING = Keyring(b"test-secret-0123456789abcdef")
PLANT = "QUIMBY"  # every planted identifier holds this, so one search finds any that survives

#: identifiers the real samples carry (see data_samples/SOURCES.md)
REAL = {
    "CMU-1-Small-Region.svs": ("aperio", [b"CPAPERIOCS", b"Filename = CMU-1", b"12/29/09", b"09:59:15",
                                          b"b414003d-95c6-48b0-9369-8010ed517ba7", b"1004486", b"USM Filter",
                                          b"label 387x463", b"macro 1280x431"]),
    "openslide-python_small.svs": ("aperio", [b"CPAPERIOCS", b"Filename = CMU-1", b"12/29/09",
                                              b"b414003d-95c6-48b0-9369-8010ed517ba7", b"1004486"]),
    "openslide-python_boxes.tiff": ("generic", []),
    "slideio_test3-DAPI-2-387.ndpi": ("hamamatsu", [b"950291", b"950410", b"2011/05/23", b"2017/01/27",
                                                    b"2017:02:07", b"roi.barcode.macro", b"SerialNumber"]),
}


def _clean(src: Path, dst: Path) -> SlideReport:
    with open(dst, "wb") as fh:
        return clean_slide(src, fh, KEYRING)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tiles(path: Path, **flags: bool) -> list[list[bytes]]:
    """The raw bytes of every strip or tile of every page and SubIFD, in file order."""
    data = path.read_bytes()
    out = []
    with tifffile.TiffFile(path, **flags) as tf:
        for page in list(tf.pages):
            subs = []
            for i, offset in enumerate(page.subifds or ()):
                tf.filehandle.seek(offset)
                subs.append(tifffile.TiffPage(tf, index=(page.index, i)))
            for p in [page, *subs]:
                out.append([data[o : o + c] for o, c in zip(p.dataoffsets, p.databytecounts)])
    return out


def _same_slide(before: Path, after: Path) -> None:
    a, b = openslide.OpenSlide(before), openslide.OpenSlide(after)
    try:
        assert b.properties["openslide.vendor"] == a.properties["openslide.vendor"]
        assert b.level_dimensions == a.level_dimensions
        for key in ("openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power"):
            assert b.properties.get(key) == a.properties.get(key)
        assert not {"label", "macro"} & set(b.associated_images)
        assert set(b.associated_images) <= set(a.associated_images)
        size = b.level_dimensions[-1]
        assert b.read_region((0, 0), b.level_count - 1, size).tobytes() == \
            a.read_region((0, 0), a.level_count - 1, size).tobytes()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_slides(tmp_path: Path, name: str) -> None:
    src = SAMPLES / name
    vendor, identifiers = REAL[name]
    before = _sha(src)
    assert sniff_slide(src) == vendor
    data = src.read_bytes()
    assert all(i in data for i in identifiers)  # the test can fail: they are there before
    report = _clean(src, tmp_path / "out.tif")
    out = (tmp_path / "out.tif").read_bytes()
    assert report.vendor == vendor and len(out) == len(data)
    for ident in identifiers:
        assert ident not in out, ident
    _same_slide(src, tmp_path / "out.tif")
    # every tile of every level kept is the input's, byte for byte (removed pages are not levels)
    kept = _tiles(tmp_path / "out.tif")
    original = _tiles(src)
    assert all(tiles in original for tiles in kept)
    assert report.levels == openslide.OpenSlide(src).level_count or vendor == "hamamatsu"
    assert _sha(src) == before  # input untouched
    # deterministic, also into a file object without a descriptor
    buf = io.BytesIO()
    clean_slide(src, buf, KEYRING)
    assert buf.getvalue() == out
    # cleaning a released slide changes nothing more
    report2 = _clean(tmp_path / "out.tif", tmp_path / "again.tif")
    assert (tmp_path / "again.tif").read_bytes() == out and report2.removed == ()


def test_real_aperio_removes_label_and_macro(tmp_path: Path) -> None:
    report = _clean(SAMPLES / "CMU-1-Small-Region.svs", tmp_path / "out.svs")
    assert report.removed == ("label", "macro") and report.levels == 1
    assert report.counts["pages-removed"] == 2 and report.counts["keys-dropped"] > 0
    out = (tmp_path / "out.svs").read_bytes()
    src = (SAMPLES / "CMU-1-Small-Region.svs").read_bytes()
    with tifffile.TiffFile(SAMPLES / "CMU-1-Small-Region.svs") as tf:
        for page in tf.pages[2:]:  # label (LZW strips) and macro (JPEG strips): every byte zero now
            for o, c in zip(page.dataoffsets, page.databytecounts):
                assert src[o : o + c].count(0) < c and out[o : o + c] == bytes(c)
    with tifffile.TiffFile(tmp_path / "out.svs") as tf:
        assert len(tf.pages) == 2
        desc = tf.pages[0].description
        assert desc.startswith("Aperio Image Library v11.2.1") and "MPP = 0.4990" in desc and "|AppMag = 20" in desc


def test_real_ndpi_removes_macro_and_map(tmp_path: Path) -> None:
    report = _clean(SAMPLES / "slideio_test3-DAPI-2-387.ndpi", tmp_path / "out.ndpi")
    assert report.removed == ("macro", "map") and report.levels == 4
    assert report.counts["values-rewritten"] == 1  # the property map all six pages share, patched once
    with tifffile.TiffFile(tmp_path / "out.ndpi") as tf:
        assert len(tf.pages) == 4
        for page in tf.pages:
            assert 306 not in page.tags and 65442 not in page.tags and 65421 in page.tags
            assert page.tags[65426].value is not None  # MCU starts kept
            props = page.tags[65449].value
            assert "Product=C9600-12" in props and "Created" not in props and "S/N" not in props


# --- synthetic slides -------------------------------------------------------------------------

def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, 0), 8, 1)[:h, :w]


def _text_pixels(h: int, w: int, text: str) -> np.ndarray:
    """Pixels whose raw bytes spell ``text`` again and again (stored uncompressed, so a byte
    search finds them unless they are overwritten)."""
    raw = (text.encode() * (h * w * 3 // len(text) + 1))[: h * w * 3]
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


TEXT_TAGS = [  # (code, dtype, value): every identifying text tag of TIFF, each holding PLANT
    (269, "s", f"DocumentName {PLANT}"), (271, "s", f"Make {PLANT}"), (272, "s", f"Model {PLANT}"),
    (285, "s", f"PageName {PLANT}"), (305, "s", f"Software {PLANT}"), (306, "s", "2024:05:01 10:11:12"),
    (315, "s", f"Artist {PLANT}"), (316, "s", f"HostComputer {PLANT}"), (33432, "s", f"Copyright {PLANT}"),
    (700, "B", f"<x:xmpmeta>{PLANT}</x:xmpmeta>".encode()), (33723, "B", f"IPTC {PLANT}".encode()),
    (34377, "B", f"8BIM {PLANT}".encode()), (42016, "s", f"ImageUniqueID {PLANT}"),
    (65000, "s", f"unknown private tag {PLANT}"),
]


def _extratags() -> list[tuple]:
    out = []
    for code, dtype, value in TEXT_TAGS:
        count = len(value) if dtype == "B" else 0
        out.append((code, dtype, count, value, True))
    return out


APERIO_KEYS = (f"|AppMag = 20|StripeWidth = 1000|ScanScope ID = SS{PLANT}|Filename = {PLANT}-slide|"
               f"Date = 05/01/24|Time = 10:11:12|Time Zone = GMT+01:00|User = {PLANT}-user|MPP = 0.4990|"
               f"Left = 25.691574|Top = 23.449873|ImageID = 7{PLANT}|Barcode = {PLANT}-BC|"
               f"DSR ID = {PLANT}-server|Rack = 3|Slide = 7|Unknown Key = {PLANT} free text|Exposure Time = 8")


def make_svs(path: Path, big: bool, gt450: bool = False) -> dict[str, np.ndarray]:
    """An Aperio SVS as the scanners lay it out (OpenSlide's aperio format page): level 0 tiled
    JPEG 512x384 in 128x128 tiles, the thumbnail (strips), level 1 (256x192, tiled), the label
    (strips, NewSubfileType 1, "label WxH" on its description's second line, uncompressed pixels
    spelling a planted name) and the macro (NewSubfileType 9, likewise). Every page carries every
    text tag of :data:`TEXT_TAGS`; level 0 and the thumbnail carry the Aperio keys with planted
    values, and garbage bytes with a planted name follow the last IFD. With ``gt450``, laid out
    as the GT450 writes it (Aperio's GT450 line, an ICC profile on every level, and the label and
    macro descriptions without the words "label" and "macro": they are known by position and
    NewSubfileType only)."""
    lib = "Aperio Leica Biosystems GT450 v1.0.1" if gt450 else "Aperio Image Library v12.0.15"
    icc = {"iccprofile": b"\x00\x00\x01\x00ICC-PROFILE-BYTES" * 8} if gt450 else {}
    assoc = ("", "") if gt450 else ("label 100x80", "macro 160x60")
    level0, level1, thumb = _rgb(384, 512, 1), _rgb(192, 256, 2), _rgb(96, 128, 3)
    label, macro = _text_pixels(80, 100, f"LABEL {PLANT} "), _text_pixels(60, 160, f"MACRO {PLANT} ")
    common = {"photometric": "rgb", "metadata": None, "software": False, "extratags": _extratags()}
    with tifffile.TiffWriter(path, bigtiff=big) as w:
        w.write(level0, tile=(128, 128), compression="jpeg", **icc,
                description=f"{lib} \r\n46000x32914 [0,100 512x384] (128x128) JPEG/RGB Q=70" + APERIO_KEYS, **common)
        w.write(thumb, rowsperstrip=16, compression="jpeg",
                description=f"{lib} \n512x384 -> 128x96 - " + APERIO_KEYS, **common)
        w.write(level1, tile=(128, 128), compression="jpeg", subfiletype=1, **icc,
                description=f"{lib} \r\n46000x32914 [0,100 512x384] (128x128) -> 256x192 JPEG/RGB Q=70", **common)
        w.write(label, rowsperstrip=20, subfiletype=1, description=f"{lib} \n{assoc[0]}", **common)
        w.write(macro, rowsperstrip=20, subfiletype=9, description=f"{lib} \n{assoc[1]}", **common)
    with open(path, "ab") as fh:
        fh.write(f"stray bytes nothing points to {PLANT}".encode())
    return {"level0": level0, "level1": level1}


@pytest.mark.parametrize("big", [True, False], ids=["bigtiff", "classic"])
def test_synthetic_svs(tmp_path: Path, big: bool) -> None:
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_svs(src, big)
    data = src.read_bytes()
    assert data[2] == (43 if big else 42) and data.count(PLANT.encode()) > 40
    with tifffile.TiffFile(src) as tf:  # every text tag really was written
        assert all(code in tf.pages[0].tags for code, _, _ in TEXT_TAGS)
    a = openslide.OpenSlide(src)
    assert a.properties["openslide.vendor"] == "aperio" and {"label", "macro", "thumbnail"} <= set(a.associated_images)
    a.close()
    assert sniff_slide(src) == "aperio"
    report = _clean(src, dst)
    assert report.vendor == "aperio" and report.levels == 2 and report.removed == ("label", "macro")
    out = dst.read_bytes()
    assert PLANT.encode() not in out and PLANT.lower().encode() not in out
    assert b"2024:05:01" not in out and b"05/01/24" not in out and b"10:11:12" not in out
    _same_slide(src, dst)
    b = openslide.OpenSlide(dst)
    assert set(b.associated_images) == {"thumbnail"} and b.properties["aperio.Exposure Time"] == "8"
    assert "aperio.Rack" not in b.properties and "aperio.Date" not in b.properties
    b.close()
    kept, original = _tiles(dst), _tiles(src)
    assert len(kept) == 3 and kept == original[:3]
    with tifffile.TiffFile(dst) as tf:
        for page in tf.pages:
            assert not {code for code, _, _ in TEXT_TAGS} & set(page.tags.keys())
        assert tf.pages[2].description.endswith("-> 256x192 JPEG/RGB Q=70")  # a known header line stays


def test_synthetic_gt450(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_svs(src, big=True, gt450=True)
    report = _clean(src, dst)
    assert verify_slide(dst) == []
    assert report.levels == 2 and report.removed == ("associated", "macro")
    out = dst.read_bytes()
    assert PLANT.encode() not in out and out.count(b"ICC-PROFILE-BYTES") == 16
    assert _tiles(dst) == _tiles(src)[:3]
    _same_slide(src, dst)
    with tifffile.TiffFile(dst) as tf:
        assert tf.pages[0].description.startswith("Aperio Leica Biosystems GT450 v1.0.1 \r\n46000x32914")


def make_generic(path: Path) -> None:
    """A generic pyramid as tifffile and libvips write them: level 0 (256x192 deflate tiles of 64)
    with two reduced levels as SubIFDs, then a second page in the main chain that is a stripped
    label (uncompressed pixels spelling a planted name), and every text tag planted on page 0."""
    level0 = _rgb(192, 256, 4)
    with tifffile.TiffWriter(path) as w:
        w.write(level0, tile=(64, 64), compression="zlib", subifds=2, photometric="rgb", metadata=None,
                software=False, description=f"generic pyramid of {PLANT}", resolution=(20000, 20000),
                resolutionunit="CENTIMETER", extratags=_extratags())
        for f in (2, 4):
            w.write(level0[::f, ::f], tile=(64, 64), compression="zlib", subfiletype=1, photometric="rgb",
                    metadata=None, software=False)
        w.write(_text_pixels(40, 60, f"LABEL {PLANT} "), rowsperstrip=8, subfiletype=1, photometric="rgb",
                metadata=None, software=False, description=f"label of {PLANT}")


def test_synthetic_generic_with_subifds(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    make_generic(src)
    assert sniff_slide(src) == "generic"
    report = _clean(src, dst)
    assert verify_slide(dst) == []
    assert report.levels == 3 and report.removed == ("associated",)
    out = dst.read_bytes()
    assert PLANT.encode() not in out
    with tifffile.TiffFile(dst) as tf, tifffile.TiffFile(src) as tf_in:
        assert len(tf.pages) == 1 and len(tf.pages[0].subifds) == 2
        assert 270 not in tf.pages[0].tags and 282 in tf.pages[0].tags
        for lvl in range(3):
            assert np.array_equal(tf.series[0].levels[lvl].asarray(), tf_in.series[0].levels[lvl].asarray())
    assert _tiles(dst) == _tiles(src)[:3]
    _same_slide(src, dst)


# --- refusals -----------------------------------------------------------------------------------

def test_not_slides(tmp_path: Path) -> None:
    single = tmp_path / "photo.tif"
    tifffile.imwrite(single, _rgb(64, 64, 5), tile=(32, 32))
    stripped = tmp_path / "document.tif"
    with tifffile.TiffWriter(stripped) as w:
        w.write(_rgb(32, 32, 6))
        w.write(_rgb(32, 32, 7))
    jpeg = tmp_path / "x.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    for path in (single, stripped, jpeg, tmp_path / "missing.tif"):
        assert sniff_slide(path) is None
    with pytest.raises(UnsupportedInputError):
        _clean(single, tmp_path / "out.tif")


def test_broken_slide_still_sniffed(tmp_path: Path) -> None:
    """A slide whose IFD chain breaks after its first page is still a slide (so its quarantine
    reason is the slide's), and cleaning it fails closed."""
    data = (SAMPLES / "CMU-1-Small-Region.svs").read_bytes()
    with tifffile.TiffFile(SAMPLES / "CMU-1-Small-Region.svs") as tf:
        page = tf.pages[0]
        next_at = page.offset + 2 + 12 * len(page.tags)
    src = tmp_path / "broken.svs"
    src.write_bytes(data[:next_at] + struct.pack("<I", len(data) + 4) + data[next_at + 4 :])
    assert sniff_slide(src) == "aperio"
    with pytest.raises(CorruptInputError):
        _clean(src, tmp_path / "out.svs")


def test_other_vendor_recognised_and_refused(tmp_path: Path) -> None:
    """A Philips-like TIFF (Software "Philips ...", a tiled pyramid of two pages) is not cleaned."""
    src = tmp_path / "philips.tiff"
    with tifffile.TiffWriter(src) as w:
        w.write(_rgb(128, 128, 8), tile=(64, 64), software="Philips DP v1.0", metadata=None,
                description=f"<?xml version='1.0'?><DataObject>{PLANT}</DataObject>")
        w.write(_rgb(64, 64, 9), tile=(64, 64), subfiletype=1, metadata=None, software=False)
    assert sniff_slide(src) == "philips"
    with pytest.raises(UnsupportedInputError):
        _clean(src, tmp_path / "out.tiff")


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "slideio_test3-DAPI-2-387.ndpi",
                                  "openslide-python_boxes.tiff"])
@pytest.mark.parametrize("keep", [0.999, 0.9, 0.5, 0.01])
def test_truncated_slide_is_corrupt(tmp_path: Path, name: str, keep: float) -> None:
    data = (SAMPLES / name).read_bytes()
    src = tmp_path / "cut.tif"
    src.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptInputError):
        _clean(src, tmp_path / "out.tif")


def _patch_first_tile_offset(data: bytearray, value: int) -> None:
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tf:
        tag = tf.pages[0].tags[324]
        fmt = "<Q" if tf.is_bigtiff else "<I"
        struct.pack_into(fmt, data, tag.valueoffset, value)  # the first of several offsets


@pytest.mark.parametrize("big", [True, False], ids=["bigtiff", "classic"])
def test_offset_outside_the_file_is_corrupt(tmp_path: Path, big: bool) -> None:
    src = tmp_path / "in.svs"
    make_svs(src, big)
    data = bytearray(src.read_bytes())
    _patch_first_tile_offset(data, len(data) + 10)
    src.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError):
        _clean(src, tmp_path / "out.svs")


def test_ifd_loop_is_corrupt(tmp_path: Path) -> None:
    data = bytearray((SAMPLES / "openslide-python_boxes.tiff").read_bytes())
    with tifffile.TiffFile(SAMPLES / "openslide-python_boxes.tiff") as tf:
        last = tf.pages[-1]
        first = tf.pages[0].offset
        n = len(last.tags)
        struct.pack_into("<I", data, last.offset + 2 + 12 * n, first)
    src = tmp_path / "loop.tif"
    src.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError):
        _clean(src, tmp_path / "out.tif")


def test_aperio_first_line_not_accounted_for(tmp_path: Path) -> None:
    """The first line must stay (OpenSlide detects Aperio by it): one holding free text cannot be
    cleaned, so the slide is refused rather than released."""
    src = tmp_path / "in.svs"
    with tifffile.TiffWriter(src) as w:
        w.write(_rgb(128, 128, 10), tile=(64, 64), metadata=None, software=False,
                description=f"Aperio Image Library v12 for Dr {PLANT}, St Mary's\r\n128x128|AppMag = 20")
        w.write(_rgb(64, 64, 11), tile=(64, 64), subfiletype=1, metadata=None, software=False)
    assert sniff_slide(src) == "aperio"
    with pytest.raises(DeidentificationError):
        _clean(src, tmp_path / "out.svs")


def test_aperio_unknown_header_line_dropped(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    with tifffile.TiffWriter(src) as w:
        w.write(_rgb(128, 128, 12), tile=(64, 64), metadata=None, software=False,
                description=f"Aperio Image Library v12.0.15 \r\nscanned for {PLANT}|AppMag = 40|MPP = 0.25")
        w.write(_rgb(64, 64, 13), tile=(64, 64), subfiletype=1, metadata=None, software=False)
    _clean(src, dst)
    with tifffile.TiffFile(dst) as tf:
        assert tf.pages[0].description == "Aperio Image Library v12.0.15 |AppMag = 40|MPP = 0.25"
    b = openslide.OpenSlide(dst)
    assert b.properties["openslide.vendor"] == "aperio" and b.properties["openslide.mpp-x"] == "0.25"
    b.close()


def make_ndpi(path: Path) -> None:
    """An NDPI as the NanoZoomer lays it out (OpenSlide's hamamatsu format page), written with
    tifffile: two levels (source lens 20 and 5; one JPEG strip each), the macro (source lens -1,
    uncompressed pixels spelling a planted name) and the focus map (-2). Every page carries Make,
    Model, DateTime, SlideLabel (65427), AuthCode (65428), the channel name (65434), the serial
    (65442), the firmware (65448) and the property map (65449) with planted dates, serials and
    barcode (tifffile writes each page's own copy, where real files share one by offset). The
    first IFD is at offset 8 (tifffile's layout; the scanner leaves a zero high word there), so
    tifffile reads these files back only as plain TIFF (``is_ndpi=False``); OpenSlide is checked
    on the real NDPI sample."""
    props = (f"Created=2011/05/23\r\nUpdated=2017/01/27\r\nProduct=C9600-12\r\nNDP.S/N={PLANT}1\r\n"
             f"Macro.S/N={PLANT}2\r\nroi.barcode.macro=948,281,1253,682\r\nObjective.Lens.Magnificant=20\r\n"
             f"slide.name={PLANT}3\r\n;NDP Shading Data;Date=2017/01/27;SerialNumber={PLANT}4\r\n")

    def tags(lens: float) -> list[tuple]:
        return [(271, "s", 0, "Hamamatsu", True), (272, "s", 0, "C9600-12", True),
                (306, "s", 0, "2017:02:07 13:06:43", True), (65420, "H", 1, 1, True), (65421, "f", 1, lens, True),
                (65427, "s", 0, f"slide label {PLANT}", True), (65428, "I", 1, 1560790560, True),
                (65434, "s", 0, "DAPI", True), (65442, "s", 0, f"{PLANT}5", True),
                (65448, "s", 0, f"firmware {PLANT}", True), (65449, "s", 0, props, True)]

    level0 = _rgb(256, 320, 14)
    with tifffile.TiffWriter(path) as w:
        for lens, img in ((20.0, level0), (5.0, level0[::4, ::4].copy())):
            w.write(img, compression="jpeg", rowsperstrip=img.shape[0], photometric="rgb", metadata=None,
                    software=False, resolution=(43826, 43826), resolutionunit="CENTIMETER", extratags=tags(lens))
        w.write(_text_pixels(40, 120, f"MACRO {PLANT} "), rowsperstrip=40, photometric="rgb", metadata=None,
                software=False, extratags=tags(-1.0))
        w.write(_text_pixels(20, 20, f"MAP {PLANT} "), rowsperstrip=20, photometric="rgb", metadata=None,
                software=False, extratags=tags(-2.0))


def test_synthetic_ndpi(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.ndpi", tmp_path / "out.ndpi"
    make_ndpi(src)
    assert src.read_bytes().count(PLANT.encode()) > 20
    assert sniff_slide(src) == "hamamatsu"
    report = _clean(src, dst)
    assert verify_slide(dst) == []
    assert report.levels == 2 and report.removed == ("macro", "map")
    out = dst.read_bytes()
    assert PLANT.encode() not in out and b"2011/05/23" not in out and b"2017:02:07" not in out
    with tifffile.TiffFile(dst, is_ndpi=False) as tf:
        assert len(tf.pages) == 2
        for page in tf.pages:
            assert page.tags[271].value == "Hamamatsu" and page.tags[65434].value == "DAPI"
            assert page.tags[65449].value.rstrip() == "Product=C9600-12\r\nObjective.Lens.Magnificant=20"
            assert not {306, 65427, 65428, 65442, 65448} & set(page.tags.keys())
    assert _tiles(dst, is_ndpi=False) == _tiles(src, is_ndpi=False)[:2]


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def test_text_segments_inside_jpeg_tiles_blanked(tmp_path: Path) -> None:
    """Level 0 of an Aperio slide written from pre-encoded JPEG tiles (imagecodecs, baseline) into
    each of which a COM segment and an APP1 (EXIF) segment naming someone were spliced after SOI,
    beside a JFIF APP0 and an Adobe APP14 (both kept): the text is blanked in place, every tile
    keeps its length, and decodes to the same pixels."""
    imagecodecs = pytest.importorskip("imagecodecs")
    image = _rgb(256, 256, 15)
    tiles = []
    for y in range(0, 256, 128):
        for x in range(0, 256, 128):
            jpeg = imagecodecs.jpeg8_encode(image[y : y + 128, x : x + 128], level=90)
            extra = (_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
                     + _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
                     + _segment(0xFE, f"scanned by {PLANT}".encode())
                     + _segment(0xE1, f"Exif\x00\x00{PLANT}".encode()))
            tiles.append(jpeg[:2] + extra + jpeg[2:])
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    with tifffile.TiffWriter(src) as w:
        w.write(iter(tiles), shape=(256, 256, 3), dtype="uint8", tile=(128, 128), compression="jpeg",
                photometric="rgb", metadata=None, software=False,
                description="Aperio Image Library v12.0.15 \r\n256x256 [0,0 256x256] (128x128) JPEG/RGB Q=90|MPP = 0.5")
        w.write(_rgb(64, 64, 16), tile=(64, 64), subfiletype=1, metadata=None, software=False)
    assert src.read_bytes().count(PLANT.encode()) == 8
    report = _clean(src, dst)
    assert report.counts["text-segments-blanked"] == 8
    assert PLANT.encode() not in dst.read_bytes()
    assert verify_slide(src) == ["text segments in the headers of JPEG or JPEG 2000 tiles"]
    assert verify_slide(dst) == []
    before, after = _tiles(src)[0], _tiles(dst)[0]
    assert [len(t) for t in before] == [len(t) for t in after]
    assert all(b"JFIF\x00" in t and b"Adobe" in t for t in after)
    for a, b in zip(before, after):
        assert np.array_equal(imagecodecs.jpeg8_decode(a), imagecodecs.jpeg8_decode(b))
    _same_slide(src, dst)


@pytest.mark.parametrize("name", ["openslide-python_small.svs", "openslide-python_boxes.tiff"])
def test_garbled_slides_give_typed_errors_only(tmp_path: Path, name: str) -> None:
    """One to four random bytes overwritten, 300 times (fixed seed): the slide is released or
    refused with a medcloak error, never another exception; a released one that is still a slide
    holds nothing the allow-lists would drop (cleaned again, it stays the same bytes)."""
    import random

    from medcloak.errors import MedcloakError

    data = (SAMPLES / name).read_bytes()
    rng = random.Random(11)
    src = tmp_path / "garbled.tif"
    outcomes = {"released": 0, "refused": 0}
    for _ in range(300):
        garbled = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            garbled[rng.randrange(len(garbled))] = rng.randrange(256)
        src.write_bytes(bytes(garbled))
        sniff_slide(src)
        out = io.BytesIO()
        try:
            clean_slide(src, out, KEYRING)
        except MedcloakError:
            outcomes["refused"] += 1
            continue
        outcomes["released"] += 1
        (tmp_path / "released.tif").write_bytes(out.getvalue())
        if sniff_slide(tmp_path / "released.tif") is None:
            continue  # a generic slide left with one page: a single-page TIFF now
        again = io.BytesIO()
        clean_slide(tmp_path / "released.tif", again, KEYRING)
        assert again.getvalue() == out.getvalue()
    assert outcomes["released"] and outcomes["refused"]


def test_text_in_jpeg2000_tiles_blanked(tmp_path: Path) -> None:
    """An Aperio slide in JPEG 2000 (compression 33005, RGB) written from pre-encoded codestreams
    (imagecodecs with OpenJPEG, whose own COM says "Created by OpenJPEG") into each of which a
    second COM naming someone was spliced in the main header: every COM text is blanked, the tiles
    keep their lengths and decode to the same pixels, and OpenSlide reads the slide as before."""
    imagecodecs = pytest.importorskip("imagecodecs")
    image = _rgb(256, 256, 17)
    tiles = []
    for y in range(0, 256, 128):
        for x in range(0, 256, 128):
            j2k = imagecodecs.jpeg2k_encode(image[y : y + 128, x : x + 128], level=0, codecformat="J2K")
            sot = j2k.index(b"\xff\x90")
            text = f"scanned by {PLANT}".encode()
            tiles.append(j2k[:sot] + b"\xff\x64" + struct.pack(">HH", len(text) + 4, 1) + text + j2k[sot:])
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    with tifffile.TiffWriter(src) as w:
        w.write(iter(tiles), shape=(256, 256, 3), dtype="uint8", tile=(128, 128), compression=33005,
                photometric="rgb", metadata=None, software=False,
                description="Aperio Image Library v12.0.15 \r\n256x256 [0,0 256x256] (128x128) J2K/KDU Q=70|MPP = 0.5")
        w.write(_rgb(64, 64, 18), tile=(64, 64), subfiletype=1, metadata=None, software=False)
    assert src.read_bytes().count(PLANT.encode()) == 4
    report = _clean(src, dst)
    assert report.counts["text-segments-blanked"] == 8  # each tile's two COM segments
    assert verify_slide(dst) == []
    out = dst.read_bytes()
    assert PLANT.encode() not in out and b"OpenJPEG" not in out
    before, after = _tiles(src)[0], _tiles(dst)[0]
    assert [len(t) for t in before] == [len(t) for t in after]
    for a, b in zip(before, after):
        assert np.array_equal(imagecodecs.jpeg2k_decode(a), imagecodecs.jpeg2k_decode(b))
    _same_slide(src, dst)


@pytest.mark.parametrize("name", sorted(REAL))
def test_verify_slide_accepts_released_and_rejects_input(tmp_path: Path, name: str) -> None:
    src, dst = SAMPLES / name, tmp_path / "out.tif"
    _clean(src, dst)
    assert verify_slide(dst) == []
    if REAL[name][1]:  # a sample with identifiers: its input is not a released slide
        assert verify_slide(src)


def test_verify_slide_names_each_leftover(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_svs(src, big=False)
    findings = verify_slide(src)
    assert any("pages to remove: label, macro" in f for f in findings)
    assert any("allow-list" in f for f in findings) and any("not zero" in f for f in findings)
    _clean(src, dst)
    assert verify_slide(dst) == []
    tampered = bytearray(dst.read_bytes())
    tampered[-5:] = b"QUIMB"  # bytes past the last structure: referenced by nothing
    (tmp_path / "tampered.svs").write_bytes(bytes(tampered))
    assert verify_slide(tmp_path / "tampered.svs") == ["bytes that no kept structure references are not zero"]


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "slideio_test3-DAPI-2-387.ndpi"])
@pytest.mark.parametrize("window", [4096, 65536 + 17])
def test_windows_of_any_size_give_the_same_slide_and_its_digest(tmp_path, monkeypatch, name, window) -> None:
    """The slide is copied, edited and hashed a window at a time (the hash in a thread of its own):
    windows smaller than an edit, cut through IFDs, tiles and zeroed pages, give the bytes one
    window gives, and the digest is that of the bytes written."""
    import medcloak.formats.slide_tiff as st

    with open(tmp_path / "one", "w+b") as fh:
        whole = clean_slide(SAMPLES / name, fh, Keyring(b"k" * 32))
    monkeypatch.setattr(st, "WINDOW", window)
    with open(tmp_path / "many", "w+b") as fh:
        report = clean_slide(SAMPLES / name, fh, Keyring(b"k" * 32))
    data = (tmp_path / "many").read_bytes()
    assert data == (tmp_path / "one").read_bytes()
    assert report.sha256 == whole.sha256 == hashlib.sha256(data).hexdigest()
    assert report.counts["bytes-zeroed"] > 0


def test_verify_finds_a_date_or_name_in_a_kept_value_and_passes_clean_slides(tmp_path) -> None:
    """The generic pyramid keeps its ICC profile as it is: a date and a person's name written into
    the profile's description (ASCII or UTF-16 over its UTF-16 text, same length, so the allow-lists
    see nothing changed) are found, outside the tiles; the clean release of every real sample
    passes."""
    for sample in (p for p in SAMPLES.iterdir() if p.is_file()):
        with open(tmp_path / "clean", "w+b") as fh:
            clean_slide(sample, fh, Keyring(b"k" * 32))
        assert verify_slide(tmp_path / "clean") == [], sample.name
    with open(tmp_path / "out.tiff", "w+b") as fh:
        clean_slide(SAMPLES / "openslide-python_boxes.tiff", fh, Keyring(b"k" * 32))
    data = bytearray((tmp_path / "out.tiff").read_bytes())
    at = data.index(b"mluc") + 28  # the text of the ICC profile's description, inside a kept value
    for planted, said in ((b" 2019-03-14 ", "a date"), (b" Doe^John ", "a person's name"),
                          (" 2019-03-14 ".encode("utf-16-be"), "a date"),  # as the profile's own text
                          (" Doe^John ".encode("utf-16-le"), "a person's name")):
        tampered = bytearray(data)
        tampered[at: at + len(planted)] = planted
        (tmp_path / "tampered.tiff").write_bytes(bytes(tampered))
        assert any(said in f for f in verify_slide(tmp_path / "tampered.tiff")), planted
