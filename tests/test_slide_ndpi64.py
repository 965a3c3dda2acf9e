"""Hamamatsu NDPI of 4 GiB or more: read in its 64-bit layout, cleaned in place, redacted.

No real NDPI over 4 GiB is small enough to keep, so the test builds one as a sparse file: the
structures and a few small JPEG levels are written past 4 GiB and everything below them is a hole
(it reads as zeros and takes no disk). The layout follows OpenSlide's hamamatsu format page
(openslide.org/formats/hamamatsu, "NDPI File") and its ImHex pattern for NDPI
(misc/imhex/hamamatsu-ndpi.hexpat): the header's first-IFD offset and each IFD's next offset are
8 bytes, each IFD is followed by one 4-byte high word per entry (the high half of the entry's
value offset, or of its inline LONG: StripOffsets and StripByteCounts), ASCII values are always
out of line, each page's data lies before its IFD, and values shared by every page (Make, Model,
Software, the property map) have one offset near the start of the file (high word 0), as in the
real sample data_samples/wsi/slideio_test3-DAPI-2-387.ndpi. tifffile reads such a file as NDPI
(its ``.ndpi`` extension) and serves here as the second reader.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from medcloak.errors import CorruptInputError, UnsupportedInputError
from medcloak.formats.slide_redact import redact_slide
from medcloak.formats.slide_tiff import clean_slide, sniff_slide, verify_slide
from medcloak.pseudonym import Keyring

tifffile = pytest.importorskip("tifffile")
Image = pytest.importorskip("PIL.Image")

KEYRING = Keyring(b"test-secret-0123456789abcdef")
PLANT = "QUIMBY"
BASE = (1 << 32) + 4096  # where the pages start: every page's offsets have high word 1
ASCII, SHORT, LONG, RATIONAL, SLONG, FLOAT = 2, 3, 4, 5, 9, 11
_FMT = {SHORT: "H", LONG: "I", SLONG: "i", FLOAT: "f"}


def _jpeg(pixels: np.ndarray, restart: int | None) -> bytes:
    """A baseline 4:4:4 JPEG, with a restart marker every ``restart`` MCUs (as NDPI levels have)."""
    buf = io.BytesIO()
    extra = {"restart_marker_blocks": restart} if restart else {}
    Image.fromarray(pixels).save(buf, "JPEG", quality=90, subsampling=0, **extra)
    return buf.getvalue()


def _mcu_starts(jpeg: bytes) -> list[int]:
    """Where the scan and each restart interval start in ``jpeg`` (tag 65426)."""
    pos = 2
    while jpeg[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
    starts = [pos + 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")]
    i = starts[0]
    while (i := jpeg.find(b"\xff", i)) >= 0:
        if 0xD0 <= jpeg[i + 1] <= 0xD7:
            starts.append(i + 2)
        i += 2
    return starts


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 16, 0), 16, 1)[:h, :w]


class _Writer:
    """Writes values and IFDs into a sparse file, each at the next even offset."""

    def __init__(self, fh: io.BufferedWriter, pos: int) -> None:
        self.fh, self.pos = fh, pos

    def put(self, data: bytes) -> int:
        at = self.pos + (self.pos & 1)
        self.fh.seek(at)
        self.fh.write(data)
        self.pos = at + len(data)
        return at

    def ifd(self, entries: list[tuple[int, int, int, bytes | int]], shared: dict[int, int]) -> tuple[int, int]:
        """Write the values, then the IFD with a zero next offset; return (IFD offset, where
        its next offset is)."""
        packed = []
        for tag, kind, count, value in entries:
            if isinstance(value, int):  # an inline LONG of 64 bits: StripOffsets, StripByteCounts
                packed.append((tag, kind, count, value & 0xFFFFFFFF, value >> 32))
            elif kind != ASCII and len(value) <= 4:
                packed.append((tag, kind, count, int.from_bytes(value.ljust(4, b"\x00"), "little"), 0))
            else:
                at = shared.get(tag) or self.put(value)
                packed.append((tag, kind, count, at & 0xFFFFFFFF, at >> 32))
        block = struct.pack("<H", len(packed)) + b"".join(struct.pack("<HHII", *p[:4]) for p in packed)
        block += struct.pack("<Q", 0) + struct.pack(f"<{len(packed)}I", *(p[4] for p in packed))
        at = self.put(block)
        return at, at + 2 + 12 * len(packed)


def _num(kind: int, *values: float) -> bytes:
    return struct.pack("<" + _FMT[kind] * len(values), *values)


def make_ndpi64(path: Path, extra: list[tuple[int, int, int, bytes | int]] = ()) -> dict[str, object]:
    """Two JPEG levels (source lens 20 and 5; 256x512 and 64x128, restart markers every 8 MCUs,
    their starts in 65426, their high words in 65432), the macro (-1; a JPEG whose COM segment
    and pixels hold a planted name) and the focus map (-2), every page past 4 GiB. Shared by
    offset below 4 GiB: Make, Model, Software, BitsPerSample, resolutions and the property map
    with planted dates, serials and barcode region; per page: DateTime, SlideLabel (65427), the
    serial (65442), all planted; ``extra`` entries go on the first page. Returns what the checks
    need."""
    props = (f"Created=2011/05/23\r\nUpdated=2017/01/27\r\nProduct=C9600-12\r\nNDP.S/N={PLANT}1\r\n"
             f"Macro.S/N={PLANT}2\r\nroi.barcode.macro=948,281,1253,682\r\nObjective.Lens.Magnificant=20\r\n"
             f"slide.name={PLANT}3\r\n")
    level0 = _pixels(512, 256, 1)
    macro = np.full((64, 128, 3), 250, np.uint8)
    macro[16:48, 16:112] = _pixels(32, 96, 3)  # stands for the label's writing
    macro_jpeg = _jpeg(macro, None)
    macro_jpeg = macro_jpeg[:2] + b"\xff\xfe" + struct.pack(">H", 2 + 13) + f"MACRO {PLANT}7".encode() + macro_jpeg[2:]
    pages = [(20.0, _jpeg(level0, 8), (512, 256)), (5.0, _jpeg(level0[::4, ::4].copy(), 8), (128, 64)),
             (-1.0, macro_jpeg, (64, 128)), (-2.0, _jpeg(_pixels(32, 64, 4), None), (32, 64))]
    with open(path, "wb") as fh:
        w = _Writer(fh, 16)
        shared = {271: w.put(b"Hamamatsu\x00"), 272: w.put(b"C9600-12\x00"), 305: w.put(b"NDP.scan 2.5.89\x00"),
                  258: w.put(_num(SHORT, 8, 8, 8)), 282: w.put(struct.pack("<II", 43826, 1)),
                  283: w.put(struct.pack("<II", 43826, 1)), 65449: w.put(props.encode() + b"\x00")}
        w.pos = BASE
        strips, link = [], 4  # where the previous next-offset is (the header's first)
        for n, (lens, jpeg, (h, wd)) in enumerate(pages):
            strip = w.put(jpeg)
            strips.append((strip, jpeg))
            entries: list[tuple[int, int, int, bytes | int]] = [
                (256, LONG, 1, _num(LONG, wd)), (257, LONG, 1, _num(LONG, h)), (258, SHORT, 3, _num(SHORT, 8, 8, 8)),
                (259, SHORT, 1, _num(SHORT, 7)), (262, SHORT, 1, _num(SHORT, 6)), (271, ASCII, 10, b"Hamamatsu\x00"),
                (272, ASCII, 9, b"C9600-12\x00"), (273, LONG, 1, strip), (277, SHORT, 1, _num(SHORT, 3)),
                (278, LONG, 1, _num(LONG, h)), (279, LONG, 1, len(jpeg)),
                (282, RATIONAL, 1, struct.pack("<II", 43826, 1)), (283, RATIONAL, 1, struct.pack("<II", 43826, 1)),
                (296, SHORT, 1, _num(SHORT, 3)), (305, ASCII, 16, b"NDP.scan 2.5.89\x00"),
                (306, ASCII, 20, f"2017:02:07 13:0{n}:43\x00".encode()), (65420, SHORT, 1, _num(SHORT, 1)),
                (65421, FLOAT, 1, _num(FLOAT, lens)), (65422, SLONG, 1, _num(SLONG, 12538720)),
                (65423, SLONG, 1, _num(SLONG, -96063)), (65424, SLONG, 1, _num(SLONG, 0)),
                (65427, ASCII, 14, f"label {PLANT}{n}5\x00".encode()), (65442, ASCII, 9, f"{PLANT}{n}6\x00".encode()),
                (65449, ASCII, len(props) + 1, props.encode() + b"\x00"),
            ]
            if n == 0:
                entries += extra
            if lens > 0:
                starts = _mcu_starts(jpeg)
                entries += [(65426, LONG, len(starts), _num(LONG, *starts)),
                            (65432, LONG, len(starts), _num(LONG, *[0] * len(starts)))]
            entries.sort()
            at, nxt = w.ifd(entries, shared)
            fh.seek(link)
            fh.write(struct.pack("<Q", at))
            link = nxt
        fh.seek(0)
        fh.write(b"II*\x00")
        size = w.pos
        fh.truncate(size)
    return {"strips": strips, "size": size, "macro": macro_jpeg}


def _written(path: Path) -> bytes:
    """Every byte of ``path`` outside its holes (which read as zeros)."""
    out = []
    with open(path, "rb") as fh:
        fd, pos, size = fh.fileno(), 0, os.fstat(fh.fileno()).st_size
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append(os.pread(fd, end - start, start))
            pos = end
    return b"".join(out)


def _strip_tags(path: Path) -> list[tuple[int, int, float, dict[int, object]]]:
    """Per page, as tifffile reads it: (strip offset, strip byte count, source lens, tags)."""
    with tifffile.TiffFile(path) as tf:
        assert tf.is_ndpi
        return [(int(p.tags[273].value[0]), int(p.tags[279].value[0]), float(p.tags[65421].value),
                 {t.code: t.value for t in p.tags.values()}) for p in tf.pages]


@pytest.fixture(scope="module")
def ndpi64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    path = tmp_path_factory.mktemp("ndpi64") / "in.ndpi"
    info = make_ndpi64(path)
    if path.stat().st_blocks * 512 > 16 << 20:
        path.unlink()
        pytest.skip("the temporary file system does not keep files sparse")
    return path, info


def test_builder_is_ndpi_over_4gib_and_sparse(ndpi64: tuple[Path, dict[str, object]]) -> None:
    src, info = ndpi64
    st = src.stat()
    assert st.st_size == info["size"] > 1 << 32
    assert st.st_blocks * 512 < 16 << 20  # the holes take no disk
    pages = _strip_tags(src)  # tifffile, as a second reader, finds every page past 4 GiB
    assert [p[2] for p in pages] == [20.0, 5.0, -1.0, -2.0]
    for (offset, count, _lens, _tags), (strip, jpeg) in zip(pages, info["strips"]):
        assert offset == strip > 1 << 32 and count == len(jpeg)
    assert PLANT.encode() in _written(src)


def test_clean_ndpi_over_4gib(ndpi64: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    src, info = ndpi64
    dst = tmp_path / "out.ndpi"
    assert sniff_slide(src) == "hamamatsu"
    with open(dst, "wb") as fh:
        report = clean_slide(src, fh, KEYRING)
    assert report.vendor == "hamamatsu" and report.levels == 2 and report.removed == ("macro", "map")
    st = dst.stat()
    assert st.st_size == info["size"] and st.st_blocks * 512 < 16 << 20  # same size, still sparse
    written = _written(dst)
    for ident in (PLANT.encode(), b"2011/05/23", b"2017:02:07", b"948,281"):
        assert ident not in written, ident
    macro = info["macro"]
    assert macro[-200:] not in written  # the macro's pixels are gone
    pages = _strip_tags(dst)
    assert len(pages) == 2
    with open(dst, "rb") as fh:
        for (offset, count, _lens, tags), (strip, jpeg) in zip(pages, info["strips"]):
            assert offset == strip and os.pread(fh.fileno(), count, offset) == jpeg  # the level, byte for byte
            assert not {306, 65427, 65442} & set(tags)
            assert tags[65449].rstrip() == "Product=C9600-12\r\nObjective.Lens.Magnificant=20"
            assert tags[271] == "Hamamatsu" and 65426 in tags and 65432 in tags
    assert verify_slide(dst) == []
    assert verify_slide(src) != []
    # cleaning the released slide again changes nothing
    again = tmp_path / "again.ndpi"
    with open(again, "wb") as fh:
        assert clean_slide(dst, fh, KEYRING).removed == ()
    assert _written(again) == written and again.stat().st_size == st.st_size


def test_openslide_reads_the_cleaned_ndpi_as_before(ndpi64: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    openslide = pytest.importorskip("openslide")
    src, _info = ndpi64
    dst = tmp_path / "out.ndpi"
    with open(dst, "wb") as fh:
        clean_slide(src, fh, KEYRING)
    try:
        a = openslide.OpenSlide(src)
    except openslide.OpenSlideError:
        pytest.skip("this OpenSlide does not read NDPI over 4 GiB")
    if a.properties.get("openslide.vendor") != "hamamatsu":
        a.close()
        pytest.skip("this OpenSlide does not read the synthetic NDPI as hamamatsu")
    b = openslide.OpenSlide(dst)
    try:
        assert a.properties["openslide.vendor"] == b.properties["openslide.vendor"] == "hamamatsu"
        assert b.level_dimensions == a.level_dimensions  # OpenSlide adds levels JPEG scaling gives
        assert a.level_dimensions[0] == (256, 512) and (64, 128) in a.level_dimensions
        assert "macro" in a.associated_images and "macro" not in b.associated_images
        for level in range(b.level_count):
            size = b.level_dimensions[level]
            assert b.read_region((0, 0), level, size).tobytes() == a.read_region((0, 0), level, size).tobytes()
    finally:
        a.close()
        b.close()


def test_redact_ndpi_over_4gib(ndpi64: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    """A box on level 0 becomes black on both levels, restart interval by restart interval;
    the output keeps its size and its holes."""
    src, info = ndpi64
    dst = tmp_path / "red.ndpi"
    with open(dst, "wb") as fh:
        counts = redact_slide(src, fh, (64, 128, 128, 192))
    assert counts["pages"] == 2 and counts["tiles-touched"] >= 2
    st = dst.stat()
    assert st.st_size == info["size"] and st.st_blocks * 512 < 16 << 20
    with open(dst, "rb") as fh:
        for (offset, count, _lens, _tags), (strip, jpeg), (box, size) in zip(
                _strip_tags(dst), info["strips"], (((64, 128, 128, 192), (256, 512)), ((16, 32, 32, 48), (64, 128)))):
            new = os.pread(fh.fileno(), count, offset)
            assert offset == strip and len(new) == len(jpeg) and new != jpeg
            before = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.int16)
            after = np.asarray(Image.open(io.BytesIO(new)).convert("RGB"), np.int16)
            x0, y0, x1, y1 = box
            assert after.shape[:2] == (size[1], size[0])
            assert after[y0:y1, x0:x1].max() <= 8  # black, give or take the codec
            outside = np.ones(after.shape[:2], bool)
            outside[max(0, y0 - 8) : y1 + 8, max(0, x0 - 8) : x1 + 8] = False
            assert np.array_equal(after[outside], before[outside])


def test_ndpi_over_4gib_fails_closed(tmp_path: Path) -> None:
    """High-word tags that disagree with the 64-bit offsets (OffsetHighBytes 65324 saying 0 where
    the strip is past 4 GiB), a file cut short, and a classic TIFF over 4 GiB that is not in
    NDPI's layout are refused before anything is written."""
    bad = tmp_path / "bad.ndpi"
    make_ndpi64(bad, [(65324, LONG, 1, _num(LONG, 0))])
    for run in (lambda fh: clean_slide(bad, fh, KEYRING), lambda fh: redact_slide(bad, fh, (0, 0, 8, 8))):
        with pytest.raises(UnsupportedInputError, match="high-word"):
            run(io.BytesIO())
    good = tmp_path / "good.ndpi"
    make_ndpi64(good, [(65324, LONG, 1, _num(LONG, 1))])  # agreeing: accepted and kept
    with open(tmp_path / "out.ndpi", "wb") as fh:
        clean_slide(good, fh, KEYRING)
    assert _strip_tags(tmp_path / "out.ndpi")[0][3][65324] == 1
    cut = tmp_path / "cut.ndpi"
    info = make_ndpi64(cut)
    os.truncate(cut, int(info["size"]) - 100)
    with pytest.raises(CorruptInputError):
        clean_slide(cut, io.BytesIO(), KEYRING)
    classic = tmp_path / "classic.tif"  # the header's 8-byte offset leads nowhere: read as classic TIFF
    with tifffile.TiffWriter(classic) as tw:  # a generic pyramid, accepted under 4 GiB
        tw.write(_pixels(64, 64, 5), tile=(32, 32), metadata=None)
        tw.write(_pixels(32, 32, 6), tile=(32, 32), subfiletype=1, metadata=None)
    clean_slide(classic, io.BytesIO(), KEYRING)
    with open(classic, "r+b") as fh:
        fh.truncate((1 << 32) + 10)
    with pytest.raises(UnsupportedInputError, match="4 GiB"):
        clean_slide(classic, io.BytesIO(), KEYRING)
