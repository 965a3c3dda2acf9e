"""Compressed-domain JPEG redaction checked against the slow reference codec in ``jpegref``.

For a matrix of JPEGs (8/12-bit, grey and colour, 4:4:4/4:2:2/4:2:0/1x2, odd sizes, with and
without restart markers, standard and optimized tables): a no-op returns the input byte for byte;
after redaction every block outside the rounded boxes has exactly its original coefficients, the
redacted blocks have no AC and a DC that decodes to the fill, the entropy-coded data is what the
reference encoder writes for those coefficients with the file's own tables, and the result
decodes strictly in the reference decoder and without warnings in libjpeg (djpeg / imagecodecs).
"""

from __future__ import annotations

import io
import shutil
import subprocess

import jpegref as R
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcloak import redact_jpeg
from medcloak.errors import CorruptInputError, MedcloakError, UnsupportedJpegError, UsageError
from medcloak.pixels.jpeg_redact import FILLS, coefficients, redact_jpeg_detailed

GREY = ((1, 1),)
S444 = ((1, 1), (1, 1), (1, 1))
S422 = ((2, 1), (1, 1), (1, 1))
S420 = ((2, 2), (1, 1), (1, 1))
S12 = ((1, 2), (1, 1), (1, 1))
BOXES = [(3, 2, 12, 9), (20, 15, 37, 23)]


def image(width: int, height: int, channels: int, precision: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise: realistic coefficient statistics at any size."""
    rng = np.random.default_rng(seed)
    top = (1 << precision) - 1
    y, x = np.mgrid[0:height, 0:width]
    planes = []
    for c in range(channels):
        base = (np.sin(x / (5 + 3 * c)) + np.cos(y / (4 + c))) * top / 4 + top / 2
        planes.append(np.clip(base + rng.normal(0, top / 12, base.shape), 0, top))
    arr = np.stack(planes, -1).astype(np.uint16 if precision > 8 else np.uint8)
    return arr[..., 0] if channels == 1 else arr


def scan_data(data: bytes) -> bytes:
    at = data.index(b"\xff\xda")
    length = int.from_bytes(data[at + 2 : at + 4], "big")
    return data[at + 2 + length : data.rindex(b"\xff\xd9")]


def expected_blocks(info: dict, boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Which blocks of each component the boxes touch: a block is hit when its footprint in
    pixels (the whole MCU when chroma is subsampled) meets a box clipped to the image."""
    comps = info["components"]
    width, height = info["width"], info["height"]
    hmax, vmax = max(c["h"] for c in comps), max(c["v"] for c in comps)
    subsampled = len(comps) > 1 and any((c["h"], c["v"]) != (hmax, vmax) for c in comps)
    grids = []
    for c in comps:
        tall, wide = c["coef"].shape[:2]
        grid = np.zeros((tall, wide), bool)
        sx, sy = (1, 1) if len(comps) == 1 else (hmax // c["h"], vmax // c["v"])
        for by in range(tall):
            for bx in range(wide):
                if subsampled:
                    mx, my = bx // c["h"], by // c["v"]
                    fx0, fy0, fx1, fy1 = mx * 8 * hmax, my * 8 * vmax, (mx + 1) * 8 * hmax, (my + 1) * 8 * vmax
                else:
                    fx0, fy0, fx1, fy1 = bx * 8 * sx, by * 8 * sy, (bx + 1) * 8 * sx, (by + 1) * 8 * sy
                for x0, y0, x1, y1 in boxes:
                    x1, y1 = min(x1, width), min(y1, height)
                    if x0 < min(x1, fx1) and max(x0, fx0) < x1 and y0 < min(y1, fy1) and max(y0, fy0) < y1:
                        grid[by, bx] = True
        grids.append(grid)
    return grids


def check_redaction(original: bytes, redacted: bytes, boxes, fill: str = "black", route: str | None = None,  # type: ignore[no-untyped-def]
                    ramp: int = 0) -> None:
    """``ramp``: how many redacted blocks may carry a DC stepping towards the fill instead of
    the fill's (:attr:`Redaction.ramp`); exactly that many do."""
    before = R.decode_coefficients(original)
    after = R.decode_coefficients(redacted, strict=True)
    precision = before["precision"]
    half = 1 << (precision - 1)
    ycc = len(before["components"]) == 3
    hit_any = False
    off_fill = 0
    for i, (b, a, grid) in enumerate(zip(before["components"], after["components"], expected_blocks(before, boxes))):
        assert a["coef"].shape == b["coef"].shape
        assert np.array_equal(a["coef"][~grid], b["coef"][~grid]), f"component {i}: a clean block changed"
        hit = a["coef"][grid]
        hit_any |= grid.any()
        assert not hit[:, 1:].any(), "a redacted block kept AC coefficients"
        q0 = int(after["quant"][a["tq"]][0])
        dc = hit[:, 0].astype(np.int64) * q0
        if ycc and i > 0:
            off_fill += int((dc != 0).sum())
        elif fill == "black":
            off_fill += int((dc > -8 * half).sum())
        elif fill == "white":
            off_fill += int((dc < 8 * (half - 1)).sum())
        else:
            off_fill += int((dc != 0).sum())
    assert off_fill <= ramp, f"{off_fill} redacted blocks off the fill, {ramp} ramp blocks said"
    assert hit_any
    from medcloak.pixels.jpeg_parse import parse

    slots = [(c.td, c.ta) for c in parse(original).components]
    # the reference encoder uses table 0 for the first component, 1 for the others
    if route == "bit-copy":
        # the bit-copy route may add codes to a table (symbols an optimized table lacks), never
        # change one: the clean blocks' bits are copied
        for slot, (bits, vals) in before["huffman"].items():
            old = R.HuffmanTable(bits, vals).encode_map
            new = R.HuffmanTable(*after["huffman"][slot]).encode_map
            assert all(new[sym] == code for sym, code in old.items())
            assert all("0" in code for code in new.values())  # no all-ones code
    if route == "bit-copy" and slots == [(0, 0)] + [(1, 1)] * (len(slots) - 1):
        comps = after["components"]
        again = R.encode_coefficients(
            [c["coef"] for c in comps], {k: v for k, v in after["quant"].items()},
            width=after["width"], height=after["height"], precision=precision,
            sampling=[(c["h"], c["v"]) for c in comps], tq=[c["tq"] for c in comps],
            component_ids=[c["id"] for c in comps], restart_interval=after["restart_interval"],
            huffman_tables=after["huffman"],
        )
        assert scan_data(again) == scan_data(redacted)


def decodes_cleanly(data: bytes, precision: int) -> np.ndarray:
    """Decode in libjpeg-turbo (djpeg for 8-bit, imagecodecs for 12-bit); no warning allowed."""
    if precision == 8 and shutil.which("djpeg"):
        done = subprocess.run(["djpeg", "-pnm"], input=data, capture_output=True)
        assert done.returncode == 0 and done.stderr == b"", done.stderr
    imagecodecs = pytest.importorskip("imagecodecs")
    return imagecodecs.jpeg8_decode(data)


MATRIX = [
    (8, GREY), (8, S444), (8, S422), (8, S420), (8, S12), (12, GREY), (12, S420), (12, S444),
]


@pytest.mark.parametrize("precision, sampling", MATRIX)
@pytest.mark.parametrize("restart", [0, 2])
@pytest.mark.parametrize("optimize", [False, True])
def test_matrix(precision, sampling, restart, optimize) -> None:  # type: ignore[no-untyped-def]
    pixels = image(37, 23, len(sampling), precision, seed=precision + len(sampling) + restart)
    data = R.encode(pixels, precision=precision, sampling=sampling, quality=85, restart_interval=restart, optimize=optimize)
    assert redact_jpeg(data, []) == data
    assert redact_jpeg(data, [(37, 0, 99, 99), (0, 23, 5, 40)]) == data  # outside the image
    for fill in ("black", "white", "grey"):
        result = redact_jpeg_detailed(data, BOXES, fill)
        check_redaction(data, result.data, BOXES, fill, result.route, result.ramp)
        out = decodes_cleanly(result.data, precision)
        if fill == "black" and len(sampling) == 1:
            for x0, y0, x1, y1 in result.regions:
                assert (out[y0:y1, x0:x1] == 0).all()
        assert result.route in ("bit-copy", "rebuilt-tables")
    if not optimize and precision == 8:  # the Annex K tables hold every symbol: never a rebuild
        assert redact_jpeg_detailed(data, BOXES).route == "bit-copy"


def test_black_is_zero_in_colour_interior() -> None:
    pixels = image(64, 48, 3, 8, seed=3)
    data = R.encode(pixels, sampling=S420, quality=90)
    result = redact_jpeg_detailed(data, [(16, 16, 48, 32)])
    assert result.regions == ((16, 16, 48, 32),)
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB"))
    # chroma upsampling may blend one pixel ring with the neighbours; inside, exact black
    assert (rgb[17:31, 17:47] == 0).all()
    y_plane = R.decode_pixels(result.data)[0]
    assert (y_plane[16:32, 16:48] == 0).all()


def test_rounding_to_blocks_and_mcus() -> None:
    grey = R.encode(image(40, 40, 1, 8, 1))
    assert redact_jpeg_detailed(grey, [(9, 9, 10, 10)]).regions == ((8, 8, 16, 16),)
    colour = R.encode(image(40, 40, 3, 8, 1), sampling=S420)
    assert redact_jpeg_detailed(colour, [(9, 9, 10, 10)]).regions == ((0, 0, 16, 16),)
    assert redact_jpeg_detailed(colour, [(30, 30, 99, 99)]).regions == ((16, 16, 40, 40),)


@pytest.mark.parametrize("seed", range(3))
def test_pillow_and_cjpeg_files(tmp_path, seed) -> None:  # type: ignore[no-untyped-def]
    """Files from other encoders (libjpeg through Pillow and cjpeg), restart markers from jpegtran."""
    from PIL import Image

    pixels = image(101, 67, 3, 8, seed)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=70 + 10 * seed, subsampling=seed, optimize=seed == 1)
    files = [buf.getvalue()]
    if shutil.which("jpegtran"):
        files.append(subprocess.run(["jpegtran", "-restart", "3B"], input=files[0], capture_output=True, check=True).stdout)
    for data in files:
        boxes = [(10, 10, 50, 30), (90, 60, 101, 67)]
        result = redact_jpeg_detailed(data, boxes)
        check_redaction(data, result.data, boxes, "black", result.route, result.ramp)
        decodes_cleanly(result.data, 8)


def _single_block_file(dcs: list[int], dc_symbols: list[int], q0: int, ac_dense: bool = False,
                       full: bool = False) -> bytes:
    """A greyscale image of one row of blocks with the given DCs, a DC table holding only
    ``dc_symbols`` (a file an optimizing encoder could write) and an AC table to fit. ``full``:
    tables whose last code is 16 bits long, which leave no room for another code."""
    n = len(dcs)
    coef = np.zeros((1, n, 64), np.int32)
    coef[0, :, 0] = dcs
    ac_symbols = [0x00]
    if ac_dense:
        coef[0, :, 1:] = 1
        ac_symbols = [0x01]
    quant = np.full(64, 1, np.int64)
    quant[0] = q0

    def table(symbols: list[int]) -> tuple[tuple[int, ...], bytes]:
        bits = [0] * 16
        if full:
            for i in range(len(symbols) - 1):
                bits[i] = 1
            bits[15] += 1
        else:
            bits[7] = len(symbols)  # every code 8 bits long: never all ones
        return tuple(bits), bytes(sorted(symbols))

    return R.encode_coefficients(
        [coef], [quant], width=8 * n, height=8,
        huffman_tables={(0, 0): table(dc_symbols), (1, 0): table(ac_symbols)},
    )


def test_missing_dc_category_is_added_to_the_table() -> None:
    # q0 = 3: black is DC -342, a difference of -511 from 169 (category 9, absent)
    data = _single_block_file([169, 169, 169], [0, 8, 10], q0=3)
    result = redact_jpeg_detailed(data, [(8, 0, 16, 8)])
    assert result.route == "bit-copy" and result.ramp == 0
    after = R.decode_coefficients(result.data)
    assert after["components"][0]["coef"][0, 1, 0] == -342
    assert sorted(after["huffman"][(0, 0)][1]) == [0, 8, 9, 10]
    check_redaction(data, result.data, [(8, 0, 16, 8)], "black", result.route, result.ramp)
    decodes_cleanly(result.data, 8)


def test_missing_dc_category_tries_another_fill() -> None:
    # no room for category 9 in the table: -343 gives -512 (category 10)
    data = _single_block_file([169, 169, 169], [0, 8, 10], q0=3, full=True)
    result = redact_jpeg_detailed(data, [(8, 0, 16, 8)])
    assert result.route == "bit-copy"
    after = R.decode_coefficients(result.data)
    assert after["components"][0]["coef"][0, 1, 0] == -343
    assert after["huffman"] == R.decode_coefficients(data)["huffman"]
    check_redaction(data, result.data, [(8, 0, 16, 8)], "black", result.route, result.ramp)


def test_missing_end_of_block_is_added_to_the_table() -> None:
    dense = _single_block_file([5, 6, 7, 8], [0, 1, 3], q0=16, ac_dense=True)  # no end-of-block code
    result = redact_jpeg_detailed(dense, [(0, 0, 8, 8)], "grey")
    assert result.route == "bit-copy"
    assert 0 in R.decode_coefficients(result.data)["huffman"][(1, 0)][1]
    check_redaction(dense, result.data, [(0, 0, 8, 8)], "grey", result.route, result.ramp)
    decodes_cleanly(result.data, 8)


def test_missing_symbols_rebuild_the_tables() -> None:
    data = _single_block_file([169, 169, 169], [0, 8], q0=3, full=True)  # no fill DC reachable
    result = redact_jpeg_detailed(data, [(8, 0, 16, 8)])
    assert result.route == "rebuilt-tables"
    check_redaction(data, result.data, [(8, 0, 16, 8)])
    decodes_cleanly(result.data, 8)
    dense = _single_block_file([5, 6, 7, 8], [0, 1, 3], q0=16, ac_dense=True, full=True)  # no end-of-block code
    result = redact_jpeg_detailed(dense, [(0, 0, 8, 8)], "grey")
    assert result.route == "rebuilt-tables"
    check_redaction(dense, result.data, [(0, 0, 8, 8)], "grey")
    decodes_cleanly(result.data, 8)


def test_coefficient_kernel_matches_reference() -> None:
    for precision, sampling in MATRIX:
        pixels = image(45, 31, len(sampling), precision, seed=7)
        data = R.encode(pixels, precision=precision, sampling=sampling, restart_interval=3, optimize=True)
        ours = coefficients(data)
        ref = R.decode_coefficients(data)["components"]
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert np.array_equal(a, b["coef"])


def test_against_jpegio(tmp_path) -> None:  # type: ignore[no-untyped-def]
    jpegio = pytest.importorskip("jpegio")
    from PIL import Image

    for i, sub in enumerate((0, 1, 2)):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(image(77, 53, 3, 8, i)).save(path, quality=80, subsampling=sub)
        data = path.read_bytes()
        boxes = [(5, 5, 30, 20)]
        out = tmp_path / f"{i}-r.jpg"
        out.write_bytes(redact_jpeg(data, boxes))
        before, after = jpegio.read(str(path)), jpegio.read(str(out))
        info = R.decode_coefficients(data)
        for c, grid in enumerate(expected_blocks(info, boxes)):
            b = np.asarray(before.coef_arrays[c])
            a = np.asarray(after.coef_arrays[c])
            tall, wide = b.shape[0] // 8, b.shape[1] // 8
            hit = np.kron(grid[:tall, :wide], np.ones((8, 8), bool))
            assert np.array_equal(a[~hit], b[~hit])
            ac = a.reshape(tall, 8, wide, 8).transpose(0, 2, 1, 3).reshape(tall, wide, 64)[:, :, 1:]
            assert not ac[grid[:tall, :wide]].any()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzzed_inputs_raise_typed_errors(data) -> None:  # type: ignore[no-untyped-def]
    base = data.draw(st.sampled_from(FUZZ_BASES))
    mutated = bytearray(base)
    kind = data.draw(st.sampled_from(["truncate", "flip", "flip-header", "byte"]))
    if kind == "truncate":
        mutated = mutated[: data.draw(st.integers(0, len(base) - 1))]
    else:
        at = base.index(b"\xff\xda")
        lo, hi = (2, at + 4) if kind == "flip-header" else (0, len(base))
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(lo, hi - 1))
            if kind == "byte":
                mutated[i] = data.draw(st.integers(0, 255))
            else:
                mutated[i] ^= 1 << data.draw(st.integers(0, 7))
    try:
        out = redact_jpeg(bytes(mutated), [(0, 0, 20, 12)], data.draw(st.sampled_from(["black", "grey"])))
    except (CorruptInputError, UnsupportedJpegError):
        return
    assert isinstance(out, bytes)


FUZZ_BASES = [
    R.encode(image(29, 19, 1, 8, 1), restart_interval=2),
    R.encode(image(29, 19, 3, 8, 2), sampling=S420, optimize=True),
    R.encode(image(29, 19, 1, 12, 3), precision=12),
]


def test_unsupported_processes() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image(32, 32, 3, 8, 1)).save(buf, "JPEG", progressive=True)
    with pytest.raises(UnsupportedJpegError, match="progressive"):
        redact_jpeg(buf.getvalue(), [(0, 0, 8, 8)])
    multi = R.encode(image(32, 32, 3, 8, 1), scans=[[0], [1], [2]])
    with pytest.raises(UnsupportedJpegError, match="scan"):
        redact_jpeg(multi, [(0, 0, 8, 8)])
    plain = R.encode(image(32, 32, 1, 8, 1))
    sof = plain.index(b"\xff\xc0")
    for code, words in ((0xC3, "lossless"), (0xC5, "hierarchical"), (0xC9, "arithmetic"), (0xC2, "progressive")):
        changed = plain[: sof + 1] + bytes([code]) + plain[sof + 2 :]
        with pytest.raises(UnsupportedJpegError, match=words):
            redact_jpeg(changed, [(0, 0, 8, 8)])
    no_height = plain[: sof + 5] + b"\x00\x00" + plain[sof + 7 :]  # height from a DNL marker
    with pytest.raises(UnsupportedJpegError, match="DNL"):
        redact_jpeg(no_height, [(0, 0, 8, 8)])
    if shutil.which("jpegtran"):
        arith = subprocess.run(["jpegtran", "-arithmetic"], input=plain, capture_output=True, check=True).stdout
        with pytest.raises(UnsupportedJpegError, match="arithmetic"):
            redact_jpeg(arith, [(0, 0, 8, 8)])
    # an unsupported file is refused even when no box would touch it: never a wrong stream
    with pytest.raises(UnsupportedJpegError):
        redact_jpeg(buf.getvalue(), [])


@pytest.mark.parametrize(
    "boxes",
    [[(5, 5, 5, 9)], [(-1, 0, 4, 4)], [(0, 0, 4)], [("a", 0, 1, 1)], [(9, 9, 3, 3)]],
)
def test_bad_boxes_are_usage_errors(boxes) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError):
        redact_jpeg(R.encode(image(16, 16, 1, 8, 1)), boxes)


def test_bad_fill_and_not_jpeg() -> None:
    data = R.encode(image(16, 16, 1, 8, 1))
    with pytest.raises(UsageError):
        redact_jpeg(data, [(0, 0, 8, 8)], "pink")
    with pytest.raises(CorruptInputError):
        redact_jpeg(b"GIF89a....", [(0, 0, 8, 8)])
    assert issubclass(UnsupportedJpegError, MedcloakError)


def test_restart_intervals_untouched_are_byte_copies() -> None:
    data = R.encode(image(64, 64, 1, 8, 5), restart_interval=8)  # one interval per block row
    result = redact_jpeg_detailed(data, [(0, 24, 8, 32)])  # one block in the 4th interval
    # the 4th interval lies between RST2 and RST3: the bytes before and after it are the same
    before, after = scan_data(data), scan_data(result.data)
    assert before.split(b"\xff\xd2", 1)[0] == after.split(b"\xff\xd2", 1)[0]
    assert before.split(b"\xff\xd3", 1)[1] == after.split(b"\xff\xd3", 1)[1]
    assert before != after
    check_redaction(data, result.data, [(0, 24, 8, 32)], "black", result.route, result.ramp)


def test_bytes_after_eoi_and_metadata_kept() -> None:
    data = R.encode(image(16, 16, 1, 8, 1))
    extra = data[:2] + b"\xff\xfe\x00\x06note" + data[2:] + b"TRAILER"
    out = redact_jpeg(extra, [(0, 0, 8, 8)])
    assert out.endswith(b"TRAILER") and b"note" in out  # redact_jpeg touches regions only


def test_four_components_cmyk() -> None:
    from PIL import Image

    cmyk = np.concatenate([image(45, 30, 3, 8, 4), image(45, 30, 1, 8, 5)[..., None]], axis=2)
    buf = io.BytesIO()
    Image.fromarray(cmyk, "CMYK").save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    assert R.decode_coefficients(data)["adobe_transform"] is not None
    assert len(R.decode_coefficients(data)["components"]) == 4
    result = redact_jpeg_detailed(data, [(8, 8, 30, 20)])
    check_redaction(data, result.data, [(8, 8, 30, 20)], "black", result.route, result.ramp)
    decodes_cleanly(result.data, 8)


def _smooth(width: int, height: int, channels: int, level: int) -> np.ndarray:
    """Smooth content around ``level``: the difference categories its optimized DC table holds
    stop well short of a jump from it to black or white."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [level + 30 * np.sin(x / (23 + 4 * c)) * np.cos(y / (17 + 3 * c)) for c in range(channels)]
    arr = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


def _optimized_file(encoder: str, channels: int, sub444: bool, restart: bool, level: int) -> bytes:
    """An optimized-table JPEG written by Pillow (``optimize=True``; restart markers added by
    ``jpegtran -optimize -restart``) or by ``cjpeg -optimize``."""
    from PIL import Image

    pixels = _smooth(200, 136, channels, level)
    if encoder == "pillow":
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG", quality=90, subsampling=0 if sub444 else 2, optimize=True)
        data = buf.getvalue()
        if restart:
            data = subprocess.run(["jpegtran", "-optimize", "-restart", "1"], input=data, capture_output=True,
                                  check=True).stdout
        return data
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PPM")
    args = ["cjpeg", "-optimize", "-quality", "90"]
    if channels == 3:
        args += ["-sample", "1x1" if sub444 else "2x2"]
    if restart:
        args += ["-restart", "1"]
    return subprocess.run(args, input=buf.getvalue(), capture_output=True, check=True).stdout


OPT_BOXES = [[(0, 0, 40, 24)], [(150, 100, 200, 136)], [(60, 40, 130, 90)], [(0, 120, 200, 136), (190, 0, 200, 30)]]


@pytest.mark.skipif(not (shutil.which("cjpeg") and shutil.which("jpegtran") and shutil.which("djpeg")),
                    reason="libjpeg-turbo tools")
@pytest.mark.parametrize("encoder", ["pillow", "cjpeg"])
@pytest.mark.parametrize("channels, sub444", [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("restart", [False, True])
def test_optimized_tables_keep_bit_copy(encoder, channels, sub444, restart) -> None:  # type: ignore[no-untyped-def]
    """Optimized tables lack the categories of a jump to black from bright content (and to white
    from dark): the redaction still copies clean blocks as bits, adding the codes it needs to
    the tables; every clean block keeps its coefficients, every redacted block is the fill, and
    the result decodes without a warning in libjpeg."""
    added = 0
    for level in (215, 40, 128):
        data = _optimized_file(encoder, channels, sub444, restart, level)
        for fill in FILLS:
            for boxes in OPT_BOXES:
                result = redact_jpeg_detailed(data, boxes, fill)
                assert result.route == "bit-copy", (level, fill, boxes)
                assert result.ramp == 0
                check_redaction(data, result.data, boxes, fill, result.route, result.ramp)
                decodes_cleanly(result.data, 8)
                added += result.added
    assert added > 0  # the tables did lack codes the fill needed


def test_no_room_in_the_table_ramps_at_the_run_ends() -> None:
    """A DC table with categories 0 to 9 and no room for another code (its last code 16 bits
    long): a black run next to bright blocks steps from them in one block at each end (the
    largest step the table codes) and holds black between; the decoded ramp blocks stay within
    the table's step of black."""
    n = 12
    coef = np.zeros((2, n, 64), np.int32)
    coef[:, :, 0] = 200 + np.arange(n) % 5
    coef[:, :, 5] = 3
    quant = np.full(64, 1, np.int64)
    quant[0] = 3
    dc_bits = [0] * 16
    for i in range(9):
        dc_bits[i] = 1
    dc_bits[15] = 1
    ac = R.optimal_huffman_table({0x00: 10, 0x42: 10})
    data = R.encode_coefficients(
        [coef], [quant], width=8 * n, height=16,
        huffman_tables={(0, 0): (tuple(dc_bits), bytes(range(10))), (1, 0): ac},
    )
    box = (16, 0, 80, 16)  # blocks 2..9 of both rows
    result = redact_jpeg_detailed(data, [box], "black")
    assert result.route == "bit-copy" and result.added == 0
    assert result.ramp == 4  # the first and last block of each row's run
    check_redaction(data, result.data, [box], "black", result.route, result.ramp)
    after = R.decode_coefficients(result.data)["components"][0]["coef"][:, 2:10, 0]
    assert (after[:, 1:-1] == -342).all()
    assert (after[:, [0, -1]] >= -342).all() and (after[:, [0, -1]] <= 200 - 511 + 4).all()
    out = decodes_cleanly(result.data, 8)
    assert out[:, 24:72].max() == 0
    # a step block: DC 200 - 511 (the largest step of categories up to 9), level 128 - 311 * 3 / 8
    assert 0 < out[:, 16:80].max() <= 12


@pytest.mark.parametrize("sampling, restart", [(GREY, 0), (S420, 2), (S444, 1), (S422, 0)])
@pytest.mark.parametrize("fill", FILLS)
def test_re_encode_route(sampling, restart, fill) -> None:  # type: ignore[no-untyped-def]
    """The fallback re-encode (which real optimized files no longer reach), run directly: clean
    blocks keep their coefficients, the redacted ones are the fill, libjpeg reads it cleanly."""
    from medcloak.pixels import jpeg_redact as J
    from medcloak.pixels.jpeg_parse import parse

    data = R.encode(image(61, 45, len(sampling), 8, 4), sampling=sampling, restart_interval=restart, optimize=True)
    layout = parse(data)
    geo = J._geometry(layout)
    flags, _ = J._flags(layout, geo, BOXES)
    values = J._fill_dc(layout, fill, 0, layout.ycc)
    flagged = np.flatnonzero(flags)
    comps = np.repeat(np.arange(len(layout.components)), geo.comp_blocks)[flagged % int(geo.comp_blocks.sum())]
    out = J._rebuild(data, np.frombuffer(data, np.uint8), layout, geo, flags, values[comps])
    check_redaction(data, out, BOXES, fill, "rebuilt-tables")
    decodes_cleanly(out, 8)
