"""A box redacted on every level of slides whose tiles are JPEG 2000: Aperio SVS in 33005 (RGB,
colour transform in the codestream) and 33003 (YCbCr components, no colour transform), and a
generic 34712 pyramid; reversible (5/3) and irreversible (9/7) tiles.

How the slides are made: :func:`make_j2k_svs` encodes each 128x128 tile (edge tiles padded with
black) with imagecodecs' OpenJPEG as a raw codestream (``level=0``: lossless, reversible 5/3 and
RCT; ``level=LOSSY_DB``: irreversible 9/7 and ICT at that PSNR target) and writes the codestreams
with tifffile as pre-encoded tiles under compression 33005 or 33003 (for 33003 the image is
converted to YCbCr first and encoded without the colour transform, as Aperio's components are
Y, Cb, Cr), three levels (downsamples 1, 2, 4) with an Aperio ImageDescription and an
uncompressed thumbnail after level 0, as Aperio lays them out. :func:`make_pyramid` lets tifffile
(imagecodecs) encode a generic 34712 pyramid. Aperio's own 33003 tiles subsample Cb and Cr; those
cannot be written back by OpenJPEG through imagecodecs and are refused (a test patches SIZ to say so).

Loss: an irreversible tile is encoded again at the highest PSNR target whose codestream is no
longer than the tile was; the pixels outside the box, against the decoded input tile, measure
above ``PSNR_BOUND`` dB (the test prints the lowest it saw).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from test_slide_redact import _smooth  # the same smooth, noisy test image

from medcloak.cli import main
from medcloak.errors import UnsupportedInputError
from medcloak.formats.slide_j2k import parse_header
from medcloak.formats.slide_redact import redact_slide

tifffile = pytest.importorskip("tifffile")
openslide = pytest.importorskip("openslide")
imagecodecs = pytest.importorskip("imagecodecs")

APERIO = "Aperio Image Library v12.0.15 \r\n"
LOSSY_DB = 42
PSNR_BOUND = 40.0  # measured outside the box in re-encoded irreversible tiles (lowest seen: see the docs)
TILE = 128
BOX = (150, 90, 330, 210)  # level 0; crosses tile borders on every level


def _to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def _tiles(img: np.ndarray, level: int, mct: bool) -> list[bytes]:
    out = []
    h, w = img.shape[:2]
    for y in range(0, h, TILE):
        for x in range(0, w, TILE):
            part = np.zeros((TILE, TILE, 3), np.uint8)
            chunk = img[y : y + TILE, x : x + TILE]
            part[: chunk.shape[0], : chunk.shape[1]] = chunk
            out.append(bytes(imagecodecs.jpeg2k_encode(part, level=level, codecformat="J2K", mct=mct)))
    return out


def make_j2k_svs(path: Path, code: int, reversible: bool) -> np.ndarray:
    """An Aperio SVS of 600x400 in JPEG 2000 tiles (see the module); returns level 0's components."""
    rgb = img = _smooth(400, 600, 5)
    if code == 33003:
        img = _to_ycbcr(rgb)
    level = 0 if reversible else LOSSY_DB
    with tifffile.TiffWriter(path) as w:
        for k, f in enumerate((1, 2, 4)):
            part = np.ascontiguousarray(img[::f, ::f])
            h, w_ = part.shape[:2]
            desc = f"{APERIO}600x400 [0,0 600x400] ({TILE}x{TILE}) J2K/KDU Q=70|AppMag = 20|MPP = 0.5"
            w.write(iter(_tiles(part, level, code == 33005)), shape=part.shape, dtype="uint8", tile=(TILE, TILE),
                    compression=code, photometric="rgb", metadata=None, software=False,
                    description=desc if k == 0 else f"{APERIO}{w_}x{h} -> {w_}x{h}", subfiletype=0)
            if k == 0:
                w.write(np.ascontiguousarray(rgb[::8, ::8]), metadata=None, software=False, photometric="rgb",
                        description=f"{APERIO}600x400 -> 75x50 - |MPP = 0.5")
    return img


def make_pyramid(path: Path, reversible: bool) -> np.ndarray:
    """A generic 34712 pyramid written by tifffile: 600x400, downsamples 1, 2, 4, 64x64 tiles."""
    img = _smooth(400, 600, 2)
    args = {} if reversible else {"compressionargs": {"level": LOSSY_DB}}
    with tifffile.TiffWriter(path) as w:
        for k, f in enumerate((1, 2, 4)):
            w.write(img[::f, ::f], tile=(64, 64), compression="jpeg2000", photometric="rgb", metadata=None,
                    subfiletype=1 if k else 0, **args)
    return img


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pages(path: Path) -> list[tuple[np.ndarray, list[tuple[int, int]], list[bytes], tuple[int, int]]]:
    """Per page: decoded pixels, [(offset, count)], raw chunks, tile size (0, 0 for strips)."""
    data = path.read_bytes()
    out = []
    with tifffile.TiffFile(path) as tf:
        for p in tf.pages:
            chunks = list(zip(p.dataoffsets, p.databytecounts))
            out.append((p.asarray(), chunks, [data[o : o + n] for o, n in chunks],
                        (p.tilewidth, p.tilelength) if p.is_tiled else (0, 0)))
    return out


def _mapped(box: tuple[int, int, int, int], src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int, int, int]:
    (x0, y0, x1, y1), (sw, sh), (dw, dh) = box, src, dst
    return (int(np.floor(x0 * dw / sw)), int(np.floor(y0 * dh / sh)),
            min(dw, int(np.ceil(x1 * dw / sw))), min(dh, int(np.ceil(y1 * dh / sh))))


def _redact(src: Path, dst: Path, box=BOX, fill: str = "black") -> dict[str, int]:  # type: ignore[no-untyped-def]
    with open(dst, "wb") as fh:
        return redact_slide(src, fh, box, 0, fill)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _check(src: Path, dst: Path, fill: tuple[int, ...], exact: bool, thumb_fill: tuple[int, ...] = (0, 0, 0)) -> float:
    """Every page: the mapped box is the fill, untouched tiles keep bytes and offsets, touched
    tiles are unchanged outside the box (exactly, or above PSNR_BOUND); returns the lowest PSNR."""
    before, after = _pages(src), _pages(dst)
    assert len(before) == len(after)
    size0 = before[0][0].shape[1], before[0][0].shape[0]
    lowest = float("inf")
    for (a, chunks_a, raw_a, tile), (b, chunks_b, raw_b, _) in zip(before, after):
        h, w = a.shape[:2]
        x0, y0, x1, y1 = _mapped(BOX, size0, (w, h))
        inside = b[y0:y1, x0:x1].astype(int)
        if not tile[0]:  # the thumbnail: RGB, uncompressed
            assert np.array_equal(inside, np.broadcast_to(thumb_fill, inside.shape))
        elif exact:
            assert np.array_equal(inside, np.broadcast_to(fill, inside.shape))
        else:  # 9/7 rings at the box's edges; inside two pixels in, close to the fill
            core = inside[2:-2, 2:-2]
            assert np.abs(core - np.array(fill)).max() <= 12 and abs(float(core.mean()) - np.mean(fill)) <= 2
        mask = np.ones((h, w), bool)
        mask[y0:y1, x0:x1] = False
        if not tile[0]:  # the uncompressed thumbnail: a lossless page
            assert np.array_equal(a[mask], b[mask])
            continue
        tw, th = tile
        across = -(-w // tw)
        for i, (ra, rb) in enumerate(zip(raw_a, raw_b)):
            ty, tx = divmod(i, across)
            touched = tx * tw < x1 and (tx + 1) * tw > x0 and ty * th < y1 and (ty + 1) * th > y0
            if not touched:
                assert ra == rb and chunks_a[i] == chunks_b[i]
                continue
            assert ra != rb
            sl = np.s_[ty * th : (ty + 1) * th, tx * tw : (tx + 1) * tw]
            m = mask[sl]
            if exact:
                assert np.array_equal(a[sl][m], b[sl][m])
            elif m.any():
                lowest = min(lowest, _psnr(a[sl][m], b[sl][m]))
                assert len(rb) <= len(ra)  # the rate of the input, so the tile stays where it was
                assert chunks_a[i][0] == chunks_b[i][0]
    if not exact:
        assert lowest > PSNR_BOUND
    return lowest


def _same_in_openslide(src: Path, dst: Path, black: bool = True) -> None:
    with openslide.OpenSlide(str(src)) as a, openslide.OpenSlide(str(dst)) as b:
        assert a.properties.get("openslide.vendor") == b.properties.get("openslide.vendor")
        assert a.level_dimensions == b.level_dimensions and a.level_downsamples == b.level_downsamples
        for level in range(b.level_count):
            ds = b.level_downsamples[level]
            x0, y0, x1, y1 = BOX
            w, h = int(x1 / ds) - int(x0 / ds), int(y1 / ds) - int(y0 / ds)
            region = np.asarray(b.read_region((x0, y0), level, (w, h)).convert("RGB")).astype(int)
            if black:
                assert region[2:-2, 2:-2].max() <= 16
            b.read_region((0, 0), level, b.level_dimensions[level])  # every tile decodes


@pytest.mark.parametrize("code", [33005, 33003])
@pytest.mark.parametrize("reversible", [True, False], ids=["reversible", "irreversible"])
def test_aperio_j2k_every_level(tmp_path: Path, code: int, reversible: bool) -> None:
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_j2k_svs(src, code, reversible)
    digest = _sha(src)
    counts = _redact(src, dst)
    exact, lossy = counts["j2k-tiles-reencoded-exact"], counts["j2k-tiles-reencoded-lossy"]
    assert (exact > 0, lossy > 0) == (reversible, not reversible)
    assert counts["tiles-reencoded"] == exact + lossy + 1  # and the thumbnail's strip
    fill = (0, 128, 128) if code == 33003 else (0, 0, 0)
    lowest = _check(src, dst, fill, reversible)
    print(f"compression {code} reversible {reversible}: lowest PSNR outside the box {lowest:.2f} dB")
    _same_in_openslide(src, dst)
    assert _sha(src) == digest
    again = tmp_path / "again.svs"
    _redact(src, again)
    assert _sha(again) == _sha(dst)


def test_codestream_parameters_kept(tmp_path: Path) -> None:
    """The re-encoded tiles keep the wavelet, the colour transform and the resolution levels."""
    for reversible in (True, False):
        src, dst = tmp_path / f"in{reversible}.svs", tmp_path / f"out{reversible}.svs"
        make_j2k_svs(src, 33005, reversible)
        _redact(src, dst)
        for (_, _, ra, _), (_, _, rb, _) in zip(_pages(src), _pages(dst)):
            for a, b in zip(ra, rb):
                if a != b and a[:2] == b"\xff\x4f":
                    ha, hb = parse_header(a), parse_header(b)
                    assert (ha.reversible, ha.mct, ha.levels, ha.components) == \
                        (hb.reversible, hb.mct, hb.levels, hb.components) == (reversible, True, ha.levels, 3)
                    assert b[:4] == b"\xff\x4f\xff\x51"  # a raw codestream, no JP2 box


@pytest.mark.parametrize("reversible", [True, False], ids=["reversible", "irreversible"])
def test_generic_34712_pyramid(tmp_path: Path, reversible: bool) -> None:
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    make_pyramid(src, reversible)
    assert parse_header(_pages(src)[0][2][0]).reversible == reversible
    counts = _redact(src, dst, fill="white")
    key = "j2k-tiles-reencoded-exact" if reversible else "j2k-tiles-reencoded-lossy"
    assert counts[key] == counts["tiles-reencoded"] > 0
    _check(src, dst, (255, 255, 255), reversible, (255, 255, 255))  # OpenSlide does not read 34712 tiles


def test_subsampled_components_refused(tmp_path: Path) -> None:
    """Aperio's 33003 tiles subsample Cb and Cr (SIZ's XRsiz 2): refused before anything is written."""
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_j2k_svs(src, 33003, True)
    data = bytearray(src.read_bytes())
    with tifffile.TiffFile(src) as tf:
        offset = tf.pages[0].dataoffsets[6]  # a tile the box touches (second row, second column)
    csiz_at = offset + 42  # SOC, SIZ's marker and length, Rsiz, eight sizes and offsets, Csiz
    assert data[csiz_at - 2 : csiz_at] == b"\x00\x03"
    data[csiz_at + 4] = 2  # the second component's XRsiz
    data[csiz_at + 7] = 2
    src.write_bytes(bytes(data))
    with pytest.raises(UnsupportedInputError, match="subsampled"):
        _redact(src, dst)
    assert dst.stat().st_size == 0


def test_cli_notes_lossy_reencoding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`medcloak redact` tells the user when irreversible tiles were re-encoded, and only then."""
    for reversible in (True, False):
        src, out = tmp_path / f"in{reversible}.svs", tmp_path / f"out{reversible}.svs"
        make_j2k_svs(src, 33005, reversible)
        assert main(["redact", str(src), "--box", ",".join(map(str, BOX)), "--out", str(out)]) == 0
        captured = capsys.readouterr()
        assert "redacted" in captured.out
        assert ("irreversible JPEG 2000 tiles were re-encoded" in captured.err) == (not reversible)


def test_truncated_reversible_tiles_grow_and_move(tmp_path: Path) -> None:
    """5/3 tiles whose layers were truncated (imagecodecs: ``reversible=True`` at a PSNR target)
    are lossy: written back losslessly they grow, go to the end of the file (offsets repointed,
    old bytes zeroed), and outside the box keep exactly the pixels the input decoded to."""
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    img = _smooth(256, 256, 9)
    tiles = [bytes(imagecodecs.jpeg2k_encode(img[y : y + TILE, x : x + TILE], level=35, reversible=True,
                                             codecformat="J2K")) for y in (0, TILE) for x in (0, TILE)]
    assert parse_header(tiles[0]).reversible
    with tifffile.TiffWriter(src) as w:
        w.write(iter(tiles), shape=img.shape, dtype="uint8", tile=(TILE, TILE), compression=33005,
                photometric="rgb", metadata=None, software=False,
                description=f"{APERIO}256x256 [0,0 256x256] ({TILE}x{TILE}) J2K/KDU Q=30|MPP = 0.5")
    box = (10, 20, 60, 50)
    counts = _redact(src, dst, box)
    assert counts["j2k-tiles-reencoded-exact"] == counts["tiles-moved"] == 1
    (a, chunks_a, raw_a, _), = _pages(src)
    (b, chunks_b, raw_b, _), = _pages(dst)
    assert chunks_b[0][0] >= src.stat().st_size and chunks_b[1:] == chunks_a[1:] and raw_b[1:] == raw_a[1:]
    assert dst.read_bytes()[chunks_a[0][0] : sum(chunks_a[0])] == bytes(chunks_a[0][1])
    mask = np.ones(a.shape[:2], bool)
    mask[20:50, 10:60] = False
    assert np.array_equal(a[mask], b[mask]) and b[20:50, 10:60].max() == 0
    with openslide.OpenSlide(str(dst)) as s:
        assert np.asarray(s.read_region((10, 20), 0, (50, 30)).convert("RGB")).max() == 0


def test_grey_34712_pyramid(tmp_path: Path) -> None:
    """One-component tiles (tifffile, reversible): the box is the fill, the rest exact."""
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    img = _smooth(400, 600, 3)[..., 1]
    with tifffile.TiffWriter(src) as w:
        for k, f in enumerate((1, 2, 4)):
            w.write(img[::f, ::f], tile=(64, 64), compression="jpeg2000", photometric="minisblack",
                    metadata=None, subfiletype=1 if k else 0)
    counts = _redact(src, dst, fill="grey")
    assert counts["j2k-tiles-reencoded-exact"] > 0
    _check(src, dst, (128,), True)


def test_codestream_tiles_refused(tmp_path: Path) -> None:
    """A codestream split into tiles of its own (SIZ's XTsiz, YTsiz): refused, nothing written."""
    src, dst = tmp_path / "in.svs", tmp_path / "out.svs"
    make_j2k_svs(src, 33005, True)
    data = bytearray(src.read_bytes())
    with tifffile.TiffFile(src) as tf:
        offset = tf.pages[0].dataoffsets[6]
    assert data[offset + 24 : offset + 32] == (TILE).to_bytes(4, "big") * 2  # XTsiz, YTsiz
    data[offset + 24 : offset + 32] = (64).to_bytes(4, "big") * 2
    src.write_bytes(bytes(data))
    with pytest.raises(UnsupportedInputError, match="codestream tiles"):
        _redact(src, dst)
    assert dst.stat().st_size == 0
