"""Photographs (JPEG, PNG, TIFF) and whole-slide images (TIFF family, MIRAX) within the run's limits
(:mod:`medcloak.limits`): what a file declares is refused before it is allocated, decoded or
inflated, as a quarantine whose reason names the limit; real clean files are released as before.

Every hostile file is made here, small: a real small image whose header is patched to declare
more (a JPEG's frame header, a PNG's IHDR with its CRC made again), or a TIFF written byte by
byte (:func:`_tiff`) whose tags declare sizes, counts and offsets its data does not hold.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import SECRET

from medcloak import limits
from medcloak.engine import Job, make_settings, process_task
from medcloak.errors import CorruptInputError, LimitError, UnsupportedInputError
from medcloak.formats.photo import deidentify_photo
from medcloak.formats.photo_limits import check_jpeg, check_png
from medcloak.model import Source, Task
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

Image = pytest.importorskip("PIL.Image")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples" / "wsi"
SHARED_WSI = ROOT.parent / "shared" / "data" / "wsi"
KEYRING = Keyring(SECRET)
TIGHT = limits.Limits(max_object_bytes=16 << 20)


def _outcome(path: Path, fmt: str, tmp: Path, lim: limits.Limits | None = None, options: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """The outcome of the object ``path`` of format ``fmt`` processed as a run does, under ``lim``."""
    job = Job(load_profile(None, options), KEYRING, str(tmp / "out"), settings=make_settings({}),
              limits=lim or limits.Limits())
    (outcome,) = process_task(Task(Source(str(path), fmt, path.stat().st_size), "id"), job)
    return outcome


def _quarantined(outcome, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert outcome.status == "quarantined", outcome
    assert not outcome.reason.startswith("internal error"), outcome.reason
    for word in words:
        assert word in outcome.reason, outcome.reason


# --- photographs -----------------------------------------------------------------------------

def _jpeg(mode: str = "RGB", size: tuple[int, int] = (16, 16), **save) -> bytes:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (size[1], size[0], 3 if mode == "RGB" else 1), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels if mode == "RGB" else pixels[:, :, 0]).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def _declare_jpeg(data: bytes, width: int, height: int) -> bytes:
    """``data`` whose frame header (SOF0 or SOF2) declares ``width`` x ``height``."""
    out = bytearray(data)
    at = next(i for i in range(2, len(out) - 1) if out[i] == 0xFF and out[i + 1] in (0xC0, 0xC2))
    struct.pack_into(">HH", out, at + 5, height, width)
    return bytes(out)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(width: int, height: int, colour: int = 0, depth: int = 8, idat: bytes | None = None,
         extra: bytes = b"") -> bytes:
    """A PNG declaring ``width`` x ``height``; its IDAT the real image's (``idat`` None) or ``idat``."""
    if idat is None:
        samples = {0: 1, 2: 3, 6: 4}[colour]
        idat = zlib.compress(bytes(height * (1 + width * samples * depth // 8)))
    head = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", head) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _tiff(pages: list[dict[int, tuple[int, object]]], payload: bytes = b"", loop: bool = False) -> bytes:
    """A little-endian classic TIFF: ``payload`` at offset 8, then each page's out-of-line values
    and IFD (``{tag: (kind, values)}``, values a list of numbers or bytes); ``loop``: the last
    page's next offset leads back to the first."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00" + payload)
    link, first = 4, 0
    for page in pages:
        if len(out) & 1:
            out += b"\x00"
        encoded = {}
        for tag, (kind, values) in sorted(page.items()):
            if isinstance(values, np.ndarray):  # many values, packed at once
                raw = values.astype({3: "<u2", 4: "<u4"}[kind]).tobytes()
            elif isinstance(values, bytes):
                raw = values
            else:
                raw = struct.pack("<" + {3: "H", 4: "I"}[kind] * len(values), *values)
            count = len(values)
            if len(raw) > 4:
                at = len(out)
                out += raw + b"\x00" * (len(raw) & 1)
                raw = struct.pack("<I", at)
            encoded[tag] = struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\x00")
        at = len(out)
        first = first or at
        struct.pack_into("<I", out, link, at)
        out += struct.pack("<H", len(encoded)) + b"".join(encoded.values())
        link = len(out)
        out += b"\x00\x00\x00\x00"
    if loop:
        struct.pack_into("<I", out, link, first)
    return bytes(out)


def _strip_page(width: int, length: int, offsets: list[int], counts: list[int], rows: int, spp: int = 1,
                compression: int = 1) -> dict[int, tuple[int, object]]:
    return {256: (4, [width]), 257: (4, [length]), 258: (3, [8] * spp), 259: (3, [compression]),
            262: (3, [1 if spp == 1 else 2]), 273: (4, offsets), 277: (3, [spp]), 278: (4, [rows]),
            279: (4, counts)}


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("mode, width, height, save, words", [
    ("RGB", 65535, 65535, {}, ("--max-object-size",)),  # 12 GB declared in 700 bytes
    ("L", 65535, 65535, {}, ("least coded data", "file holds only")),  # 4 GB: under the ceiling, not the file
    ("RGB", 4000, 4000, {}, ("least coded data", "file holds only")),
    ("L", 30000, 30000, {"progressive": True}, ("least coded data", "file holds only")),
])
def test_jpeg_declaring_more_than_its_bytes_code_is_quarantined(tmp_path, mode, width, height, save, words) -> None:  # type: ignore[no-untyped-def]
    data = _declare_jpeg(_jpeg(mode, **save), width, height)
    with pytest.raises(LimitError):
        check_jpeg(data)
    _quarantined(_outcome(_write(tmp_path, "bomb.jpg", data), "jpeg", tmp_path), *words)


@pytest.mark.parametrize("mode, width, height, words", [
    ("RGB", 60000, 60000, ("least coded data", "file holds only")),
    ("L", 1024, 1024, ("least coded data", "file holds only")),  # 16384 blocks in a scan of 200 bytes
])
def test_jpeg_redaction_allocates_nothing_its_scan_cannot_code(mode, width, height, words) -> None:  # type: ignore[no-untyped-def]
    """Redaction (photos under clean-pixel-data, slide tiles, DICOM frames) holds every block's
    coefficients: a frame declaring more blocks than its scan codes (two bits a block at least) is
    refused as it is parsed; a frame within them but beyond the ceiling too."""
    from medcloak.pixels.jpeg_parse import parse
    from medcloak.pixels.jpeg_redact import redact_jpeg_detailed

    data = _declare_jpeg(_jpeg(mode), width, height)
    with pytest.raises(LimitError) as info:
        redact_jpeg_detailed(data, [(0, 0, 8, 8)], "black")
    assert all(word in str(info.value) for word in words)
    real = _jpeg("RGB", (512, 384))
    assert parse(real).scan_end  # a real one passes
    with limits.applied(limits.Limits(max_object_bytes=1 << 16)), pytest.raises(LimitError, match="decoded blocks"):
        parse(real)


@pytest.mark.parametrize("width, height, colour, words", [
    (65535, 65535, 6, ("--max-object-size",)),  # 17 GB of RGBA declared
    (40000, 40000, 0, ("--max-expansion",)),  # 1.6 GB (beyond the ratio's floor) from 1 KB of IDAT
])
def test_png_declaring_a_bomb_is_quarantined(tmp_path, width, height, colour, words) -> None:  # type: ignore[no-untyped-def]
    data = _png(width, height, colour, idat=zlib.compress(bytes(4096)))
    with pytest.raises(LimitError):
        check_png(data)
    _quarantined(_outcome(_write(tmp_path, "bomb.png", data), "png", tmp_path), *words)


def test_png_text_and_profile_chunks_are_dropped_uninflated(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A zTXt, iTXt and iCCP of 64 MB of zeros each (64 KB stored): dropped unread, nothing inflated."""
    bomb = zlib.compress(bytes(64 << 20), 9)
    extra = (_chunk(b"zTXt", b"Comment\x00\x00" + bomb) + _chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + bomb)
             + _chunk(b"iCCP", b"icc\x00\x00" + bomb))
    path = _write(tmp_path, "text.png", _png(64, 48, extra=extra))

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a chunk was inflated")

    monkeypatch.setattr(zlib, "decompress", refuse)
    monkeypatch.setattr(zlib, "decompressobj", refuse)
    released = deidentify_photo(path, "png", KEYRING)
    assert b"zTXt" not in released.data and b"iTXt" not in released.data and b"iCCP" not in released.data
    assert len(released.data) < 1000


def test_pillow_decompression_bomb_guard_is_a_limit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.photo_text import scan_photo

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64)  # Pillow refuses beyond twice this
    with pytest.raises(LimitError, match="MAX_IMAGE_PIXELS"):
        scan_photo(_png(64, 48), "png")
    with pytest.raises(LimitError, match="MAX_IMAGE_PIXELS"):
        scan_photo(_jpeg(), "jpeg")


@pytest.mark.parametrize("case, words", [
    ("uncompressed beyond its strip", ("TIFF page", "file holds only")),
    ("beyond the ceiling", ("TIFF page", "--max-object-size")),
    ("strips that repeat", ("TIFF strips and tiles", "file holds only")),
])
def test_tiff_photo_declaring_more_than_it_holds_is_quarantined(tmp_path, case, words) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(4096)
    if case == "uncompressed beyond its strip":
        page = _strip_page(10000, 10000, [8], [4096], 10000)
    elif case == "beyond the ceiling":
        page = _strip_page(65535, 65535, [8], [4096], 65535, spp=3, compression=8)
    else:  # 2000 strips, each the whole payload: 8 MB copied from a 20 KB file
        page = _strip_page(4096, 2000, [8] * 2000, [4096] * 2000, 1)
    path = _write(tmp_path, "bomb.tif", _tiff([page], payload))
    with pytest.raises(LimitError):
        deidentify_photo(path, "tiff", KEYRING)
    _quarantined(_outcome(path, "tiff", tmp_path), *words)


@pytest.mark.parametrize("tag, refused", [(320, True), (270, False)])
def test_tiff_entries_repeating_one_large_value_are_not_copied_each(tmp_path, tag, refused) -> None:  # type: ignore[no-untyped-def]
    """An IFD whose 5000 extra entries all point at the same 32 KB value: a tag kept (ColorMap,
    320) would be copied 5000 times (160 MB from a 100 KB file), refused; a tag dropped
    (ImageDescription, 270) is never read, released."""
    payload = bytes(32768)
    page = _strip_page(64, 64, [8], [4096], 64)
    data = bytearray(_tiff([page], payload))
    ifd = struct.unpack_from("<I", data, 4)[0]
    n = struct.unpack_from("<H", data, ifd)[0]
    entries = data[ifd + 2 : ifd + 2 + 12 * n]
    kind, count = (3, 16384) if tag == 320 else (2, 32768)
    extra = struct.pack("<HHII", tag, kind, count, 8) * 5000
    at = len(data)
    data += struct.pack("<H", n + 5000) + entries + extra + b"\x00\x00\x00\x00"
    struct.pack_into("<I", data, 4, at)
    path = _write(tmp_path, "repeat.tif", bytes(data))
    if refused:
        with pytest.raises(LimitError, match="TIFF tag values"):
            deidentify_photo(path, "tiff", KEYRING)
        _quarantined(_outcome(path, "tiff", tmp_path), "TIFF tag values", "file holds only")
    else:
        assert len(deidentify_photo(path, "tiff", KEYRING).data) < 8192  # the strip and one IFD
        assert _outcome(path, "tiff", tmp_path).status == "ok"


def test_verify_reports_a_photo_beyond_its_limits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """verify reads a released TIFF's pages as the run did: beyond its limits (a release made
    with raised ones), a finding, never an exception."""
    import tifffile

    from medcloak.handlers import photo
    from medcloak.pixels.tiff_meta import strip_tiff_metadata

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((64, 64), np.uint8))
    path = _write(tmp_path, "x.tif", strip_tiff_metadata(buf.getvalue()))  # as released
    assert photo.verify(path, "photos/x.tif", None) == []
    with limits.applied(limits.Limits(max_object_bytes=1024)):
        (finding,) = photo.verify(path, "photos/x.tif", None)
    assert "--max-object-size" in finding.message


@pytest.mark.parametrize("offset, count, words", [
    (1 << 20, 4096, ("past the end",)),
    (8, 1 << 30, ("TIFF strips and tiles", "file holds only")),  # the count alone exceeds the file
    (0xFFFFFFFF, 0xFFFFFFFF, ("TIFF strips and tiles", "file holds only")),
])
def test_tiff_strip_outside_the_file_is_refused(tmp_path, offset, count, words) -> None:  # type: ignore[no-untyped-def]
    page = _strip_page(64, 64, [offset], [count], 64)
    _quarantined(_outcome(_write(tmp_path, "out.tif", _tiff([page], bytes(4096))), "tiff", tmp_path), *words)


def test_tiff_ifd_chain_that_loops_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medcloak.pixels.tiff_meta import page_count

    data = _tiff([_strip_page(64, 64, [8], [4096], 64)], bytes(4096), loop=True)
    with pytest.raises(CorruptInputError, match="loops"):
        page_count(data)
    _quarantined(_outcome(_write(tmp_path, "loop.tif", data), "tiff", tmp_path), "loops")


def _real_jpegs() -> list[Path]:
    """Real photographs shipped with installed packages (found without importing them)."""
    found = []
    for package, names in (("sklearn", ("datasets/images/china.jpg", "datasets/images/flower.jpg")),
                           ("skimage", ("data/retina.jpg", "data/rocket.jpg"))):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            found += [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
    return found


def test_real_and_ordinary_photos_are_released(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Clean photographs pass the checks as before: real JPEGs, a random colour JPEG, PNG and TIFF,
    a progressive JPEG, 16-bit PNG, and a blank 3000x3000 PNG whose IDAT inflates 1:1000 (below
    the floor of the expansion ratio)."""
    import tifffile

    from medcloak.formats.photo_text import _decode

    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    made = {}
    for name, kwargs in (("plain.jpg", {"format": "JPEG"}), ("progressive.jpg", {"format": "JPEG", "progressive": True}),
                         ("colour.png", {"format": "PNG"})):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, **kwargs)
        made[name] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((3000, 3000), np.uint8)).save(buf, "PNG")
    made["blank.png"] = buf.getvalue()
    made["deep.png"] = _png(300, 200, colour=2, depth=16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels, compression="zlib", rowsperstrip=16)
    made["colour.tif"] = buf.getvalue()
    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels)
    made["plain.tif"] = buf.getvalue()
    paths = [_write(tmp_path, name, data) for name, data in made.items()] + _real_jpegs()
    for path in paths:
        kind = {".jpg": "jpeg", ".png": "png", ".tif": "tiff"}[path.suffix]
        outcome = _outcome(path, kind, tmp_path)
        assert outcome.status == "ok", (path.name, outcome.reason)
        _decode(path.read_bytes(), kind)  # and the burned-in text scan decodes it


# --- whole-slide images ----------------------------------------------------------------------

def _tiled(width: int, height: int, tile: int, offsets, counts, compression: int = 7, subfile: int = 0,  # type: ignore[no-untyped-def]
           bits: int = 8) -> dict[int, tuple[int, object]]:
    page = {256: (4, [width]), 257: (4, [height]), 258: (3, [bits]), 259: (3, [compression]), 262: (3, [1]),
            277: (3, [1]), 322: (4, [tile]), 323: (4, [tile]), 324: (4, offsets), 325: (4, counts)}
    if subfile:
        page[254] = (4, [subfile])
    return page


def _many_tiles(side: int) -> bytes:
    """A generic pyramid whose level 0 is ``side`` x ``side`` tiles of 16x16 pixels, every one
    the same small JPEG (shared by offset), and a one-tile reduced level."""
    tile = _jpeg("L")
    n = side * side
    level0 = _tiled(16 * side, 16 * side, 16, np.full(n, 8), np.full(n, len(tile)))
    return _tiff([level0, _tiled(16, 16, 16, [8], [len(tile)], subfile=1)], tile)


def test_a_million_tiny_tiles_are_bounded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A slide of 1,048,576 tiles (8 MB of offsets and counts) is read as arrays, each shared tile
    scanned once: released and verified like any slide (bounded: about 0.2 s and 40 MB here); under a
    ceiling its tiles' bookkeeping exceeds (32 bytes a tile), refused before the offsets are read."""
    from medcloak.formats.slide_redact import redact_slide_boxes
    from medcloak.formats.slide_tiff import verify_slide

    path = _write(tmp_path, "many.tif", _many_tiles(1024))
    outcome = _outcome(path, "slide", tmp_path)
    assert outcome.status == "ok", outcome.reason
    (released,) = (tmp_path / "out" / "slides").iterdir()
    assert verify_slide(released) == []
    _quarantined(_outcome(path, "slide", tmp_path / "tight", TIGHT), "1048576 tiles", "--max-object-size")
    # redaction holds them as Python numbers: its own bound
    with limits.applied(limits.Limits(max_object_bytes=64 << 20)), open(tmp_path / "r.tif", "w+b") as fh, \
            pytest.raises(LimitError, match="1048576 tiles"):
        redact_slide_boxes(path, fh, [(0, 0, 8, 8)])


def test_padding_between_tiles_is_zeroed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Gaps shorter than a block (a byte of padding after each odd-length tile, here holding 0x55)
    are zeroed without looking for holes, and verify finds them when they are not."""
    from medcloak.formats.slide_tiff import clean_slide, verify_slide

    tile = _jpeg("L")
    tile += b"\x00" * (1 - len(tile) & 1)  # odd length: a byte of padding follows it
    n, step = 64, len(tile) + 1
    payload = (tile + b"\x55") * n
    offsets = 8 + step * np.arange(n)
    pages = [_tiled(128, 128, 16, offsets, np.full(n, len(tile))), _tiled(16, 16, 16, [8], [len(tile)], subfile=1)]
    src = _write(tmp_path, "padded.tif", _tiff(pages, payload))
    assert "bytes that no kept structure references are not zero" in verify_slide(src)
    with open(tmp_path / "out.tif", "wb") as fh:
        clean_slide(src, fh, KEYRING)
    out = (tmp_path / "out.tif").read_bytes()
    assert all(out[o + len(tile)] == 0 for o in offsets.tolist())
    assert out[8 : 8 + len(tile)] == tile and verify_slide(tmp_path / "out.tif") == []


def test_slide_tile_count_its_size_does_not_give_is_refused_unread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A level declaring 4294967295 x 4294967295 pixels in 16-pixel tiles (2**56 tiles) with one
    offset: refused from the entry's count, nothing read."""
    tile = _jpeg("L")
    pages = [_tiled(2**32 - 1, 2**32 - 1, 16, [8], [len(tile)]), _tiled(16, 16, 16, [8], [len(tile)], subfile=1)]
    _quarantined(_outcome(_write(tmp_path, "huge.tif", _tiff(pages, tile)), "slide", tmp_path), "number of tiles")


def test_slide_ifd_chain_that_loops_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tile = _jpeg("L")
    pages = [_tiled(16, 16, 16, [8], [len(tile)]), _tiled(16, 16, 16, [8], [len(tile)], subfile=1)]
    path = _write(tmp_path, "loop.tif", _tiff(pages, tile, loop=True))
    from medcloak.formats.slide_tiff import clean_slide

    with pytest.raises(CorruptInputError, match="loops"), open(tmp_path / "out.tif", "wb") as fh:
        clean_slide(path, fh, KEYRING)


def _deflate_slide(level0: dict, tile0: bytes) -> tuple[bytes, int]:  # type: ignore[type-arg]
    """A generic pyramid of deflate tiles: ``level0`` (its one tile ``tile0`` at 8), and a reduced level."""
    small = zlib.compress(bytes(16 * 16))
    level0[324], level0[325] = (4, [8]), (4, [len(tile0)])
    pad = len(tile0) & 1
    reduced = _tiled(16, 16, 16, [8 + len(tile0) + pad], [len(small)], compression=8, subfile=1)
    return _tiff([level0, reduced], tile0 + b"\x00" * pad + small), len(tile0)


@pytest.mark.parametrize("case, words", [
    ("a tile of a terapixel", ("slide tile", "--max-object-size")),
    ("a deflate tile that inflates 1:1000", ("slide tile", "inflates beyond", "--max-expansion")),
])
def test_slide_redaction_decodes_no_bomb(tmp_path, case, words) -> None:  # type: ignore[no-untyped-def]
    """Redacting a box decodes the tiles it touches: a tile declaring 2**20 x 2**20 pixels is
    refused before it is read; a 256x256 tile (64 KB) whose deflate stream holds 32 MB stops
    inflating at the bound."""
    from medcloak.formats.slide_redact import redact_slide_boxes

    if case == "a tile of a terapixel":
        level0 = _tiled(1 << 20, 1 << 20, 1 << 20, [8], [1], compression=8)
        data, _ = _deflate_slide(level0, zlib.compress(bytes(4096)))
    else:
        level0 = _tiled(256, 256, 256, [8], [1], compression=8)
        data, _ = _deflate_slide(level0, zlib.compress(bytes(32 << 20), 9))
    path = _write(tmp_path, "bomb.tif", data)
    with pytest.raises(LimitError) as info, open(tmp_path / "out.tif", "w+b") as fh:
        redact_slide_boxes(path, fh, [(0, 0, 8, 8)])
    for word in words:
        assert word in str(info.value)


def test_slide_redaction_of_an_ordinary_deflate_tile_still_works(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.slide_redact import redact_slide_boxes

    rng = np.random.default_rng(4)
    level0 = _tiled(256, 256, 256, [8], [1], compression=8)
    data, _ = _deflate_slide(level0, zlib.compress(rng.integers(0, 256, 256 * 256, dtype=np.uint8).tobytes()))
    path = _write(tmp_path, "ok.tif", data)
    with open(tmp_path / "out.tif", "w+b") as fh:
        counts = redact_slide_boxes(path, fh, [(0, 0, 8, 8)])
    assert counts["tiles-touched"] >= 1


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b']><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">&lol9;</OME>')


@pytest.mark.parametrize("cleaner", ["parse", "clean_ome", "clean_philips", "clean_qpi", "clean_ventana"])
def test_slide_xml_entity_expansion_is_refused(cleaner) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats import slide_xml

    function = getattr(slide_xml, cleaner)
    with pytest.raises(UnsupportedInputError, match="DOCTYPE or entity"):
        function(BILLION_LAUGHS, {}) if cleaner == "clean_ome" else function(BILLION_LAUGHS)


def test_mirax_index_and_slidedat_held_against_the_ceiling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mirax_sample import make_mirax

    from medcloak.formats.slide_mirax import read_mirax

    sample = make_mirax(tmp_path / "in")
    read_mirax(sample.mrxs)  # within the default limits
    with limits.applied(limits.Limits(max_object_bytes=64)), pytest.raises(LimitError, match="MIRAX Slidedat.ini"):
        read_mirax(sample.mrxs)
    _quarantined(_outcome(sample.mrxs, "mirax", tmp_path, limits.Limits(max_object_bytes=64)), "--max-object-size")


def _real_slides() -> list[Path]:
    found = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".svs", ".tiff", ".ndpi"))
    if os.environ.get("MEDCLOAK_TEST_NO_SHARED") != "1" and SHARED_WSI.is_dir():
        found += sorted(p for p in SHARED_WSI.iterdir() if p.suffix in (".svs", ".tiff", ".ndpi"))
    return found


@pytest.mark.parametrize("path", _real_slides(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_real_slides_are_released_as_before(tmp_path, path) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.slide_tiff import verify_slide

    outcome = _outcome(path, "slide", tmp_path)
    assert outcome.status == "ok", outcome.reason
    (released,) = (tmp_path / "out" / "slides").iterdir()
    assert verify_slide(released) == []
