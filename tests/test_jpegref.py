"""Tests of the reference JPEG codec in tests/jpegref.py against independent decoders/encoders.

Independent references used: jpegio (libjpeg's coefficient arrays), Pillow and
libjpeg-turbo's command-line tools (cjpeg/djpeg/jpegtran), and for 12-bit data
pylibjpeg-libjpeg and GDCM.  Each is skipped when it is not installed.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import jpegref as J

Image = pytest.importorskip("PIL.Image")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def smooth_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack(
        [
            128 + 100 * np.sin(x / 9.0) * np.cos(y / 7.0),
            128 + 80 * np.cos((x + y) / 11.0),
            128 + 60 * np.sin(x * y / 300.0),
        ],
        axis=-1,
    )
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def noisy_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth picture plus strong noise, so that many AC coefficients are non-zero."""
    rng = np.random.default_rng(seed)
    img = smooth_rgb(height, width, seed).astype(np.int64) + rng.integers(-40, 41, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def pillow_jpeg(array: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", **options)
    return buf.getvalue()


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s (libjpeg-turbo-progs) is not installed" % name)
    return path


def run_tool(args: list[str], stdin: bytes | None = None) -> bytes:
    """Run a libjpeg-turbo tool; it must succeed and print nothing on stderr (no warnings)."""
    need_tool(args[0])
    proc = subprocess.run(args, input=stdin, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stderr == b"", proc.stderr.decode(errors="replace")
    return proc.stdout


def optional_import(name: str):
    """The module, or None when it is not installed (the test then checks less)."""
    try:
        return __import__(name)
    except ModuleNotFoundError:
        return None


def own_blocks(comp: dict) -> np.ndarray:
    return comp["coef"][: comp["blocks_tall"], : comp["blocks_wide"]]


def assert_matches_jpegio(data: bytes, tmp_path: Path, decoded: dict | None = None, required: bool = True) -> dict:
    """decode_coefficients agrees exactly with jpegio (libjpeg's jpeg_read_coefficients).

    Without jpegio, skips the test if ``required``, else only decodes (the
    calling test has other checks).
    """
    decoded = J.decode_coefficients(data) if decoded is None else decoded
    if required:
        jpegio = pytest.importorskip("jpegio")
    else:
        try:
            import jpegio
        except ModuleNotFoundError:
            return decoded
    path = tmp_path / "jpegio_input.jpg"
    path.write_bytes(data)
    ref = jpegio.read(str(path))
    assert len(ref.coef_arrays) == len(decoded["components"])
    for comp, arr in zip(decoded["components"], ref.coef_arrays):
        # jpegio: (blocks_tall*8, blocks_wide*8), natural-order 8x8 blocks, the
        # component's own block counts (libjpeg's height_in_blocks/width_in_blocks)
        assert arr.shape == (comp["blocks_tall"] * 8, comp["blocks_wide"] * 8)
        ours = J.blocks_to_plane(own_blocks(comp))
        np.testing.assert_array_equal(ours, arr)
    for tq, table in decoded["quant"].items():
        np.testing.assert_array_equal(J.zigzag_to_natural(table), ref.quant_tables[tq])
    return decoded


def assert_same_coefficients(a: dict, b: dict) -> None:
    assert (a["width"], a["height"], a["precision"]) == (b["width"], b["height"], b["precision"])
    assert len(a["components"]) == len(b["components"])
    for ca, cb in zip(a["components"], b["components"]):
        assert (ca["id"], ca["h"], ca["v"]) == (cb["id"], cb["h"], cb["v"])
        np.testing.assert_array_equal(own_blocks(ca), own_blocks(cb))


def entropy_markers(data: bytes) -> list[int]:
    """RSTn marker numbers found in the file, in order."""
    found = []
    for i in range(len(data) - 1):
        if data[i] == 0xFF and 0xD0 <= data[i + 1] <= 0xD7:
            found.append(data[i + 1] - 0xD0)
    return found


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------


def test_zigzag_table_is_the_diagonal_walk():
    walk = []
    for s in range(15):
        rows = range(max(0, s - 7), min(s, 7) + 1)
        if s % 2 == 0:
            rows = reversed(rows)  # even diagonals run from bottom-left to top-right
        walk += [r * 8 + (s - r) for r in rows]
    assert walk == list(J.NATURAL_OF_ZIGZAG)
    block = np.arange(64).reshape(8, 8)
    np.testing.assert_array_equal(J.zigzag_to_natural(J.natural_to_zigzag(block)), block)


@pytest.mark.parametrize("quality", [10, 50, 80, 97])
def test_quant_tables_match_libjpeg_quality_scaling(quality):
    data = pillow_jpeg(smooth_rgb(16, 16), quality=quality)
    quant = J.decode_coefficients(data)["quant"]
    lum = J.quality_scaled_table(J.STD_LUMINANCE_QUANT, quality, 255).reshape(8, 8)
    chrom = J.quality_scaled_table(J.STD_CHROMINANCE_QUANT, quality, 255).reshape(8, 8)
    np.testing.assert_array_equal(quant[0], J.natural_to_zigzag(lum))
    np.testing.assert_array_equal(quant[1], J.natural_to_zigzag(chrom))


def test_standard_huffman_tables_match_libjpeg_defaults():
    decoded = J.decode_coefficients(pillow_jpeg(smooth_rgb(16, 16), optimize=False))
    assert decoded["huffman"] == {
        (0, 0): J.STD_DC_LUMINANCE,
        (1, 0): J.STD_AC_LUMINANCE,
        (0, 1): J.STD_DC_CHROMINANCE,
        (1, 1): J.STD_AC_CHROMINANCE,
    }


def _kraft(bits) -> float:
    return sum(n / 2.0 ** (length + 1) for length, n in enumerate(bits))


@pytest.mark.parametrize(
    "freq",
    [
        {5: 1},
        {0: 3, 1: 3},
        {i: 1 for i in range(256)},
        {i: i + 1 for i in range(162)},
        # Fibonacci frequencies give a maximally skewed tree: lengths must be cut to 16
        {i: f for i, f in enumerate([1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987,
                                     1597, 2584, 4181, 6765, 10946, 17711, 28657, 46368, 75025])},
    ],
    ids=["one", "two", "flat256", "ramp", "fibonacci"],
)
def test_optimal_huffman_tables_are_valid(freq):
    bits, huffval = J.optimal_huffman_table(freq)
    assert len(bits) == 16
    assert sorted(huffval) == sorted(freq)
    assert _kraft(bits) < 1.0  # strictly: the all-ones code point stays free
    table = J.HuffmanTable(bits, huffval)
    for symbol, code in table.encode_map.items():
        assert set(code) != {"1"}, "symbol %d got the all-ones code %s" % (symbol, code)
    # more frequent symbols never get longer codes
    lengths = {s: len(c) for s, c in table.encode_map.items()}
    for a in freq:
        for b in freq:
            if freq[a] > freq[b]:
                assert lengths[a] <= lengths[b]
    if len(freq) > 17:
        assert max(lengths.values()) <= 16


def test_optimal_huffman_table_is_optimal_for_a_small_case():
    # Huffman lengths for {A:8, B:4, C:2, D:1, reserved:1}: 1, 2, 3, 4, (4 dropped)
    bits, huffval = J.optimal_huffman_table({10: 8, 11: 4, 12: 2, 13: 1})
    assert bits[:4] == (1, 1, 1, 1) and sum(bits) == 4
    assert huffval == bytes([10, 11, 12, 13])


# --------------------------------------------------------------------------
# decoding files written by libjpeg (Pillow, cjpeg, jpegtran)
# --------------------------------------------------------------------------

SIZES = [(37, 23), (100, 67), (8, 8), (1, 1), (17, 33)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "%dx%d" % s)
@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["444", "422", "420"])
@pytest.mark.parametrize("optimize", [False, True], ids=["std", "opt"])
@pytest.mark.parametrize("quality", [35, 95])
def test_colour_pillow_files_match_jpegio(tmp_path, size, subsampling, optimize, quality):
    width, height = size
    data = pillow_jpeg(noisy_rgb(height, width, seed=width), quality=quality, subsampling=subsampling,
                       optimize=optimize)
    decoded = assert_matches_jpegio(data, tmp_path)
    assert (decoded["width"], decoded["height"], decoded["precision"]) == (width, height, 8)
    assert decoded["jfif"] is True and decoded["adobe_transform"] is None
    assert decoded["restart_interval"] == 0 and decoded["warnings"] == []
    hv = {0: (1, 1), 1: (2, 1), 2: (2, 2)}[subsampling]
    assert [(c["h"], c["v"]) for c in decoded["components"]] == [hv, (1, 1), (1, 1)]
    # multi-component interleaved: every component's array is MCU-padded
    mcux = -(-width // (8 * hv[0]))
    mcuy = -(-height // (8 * hv[1]))
    for comp in decoded["components"]:
        assert comp["coef"].dtype == np.int32
        assert comp["coef"].shape == (mcuy * comp["v"], mcux * comp["h"], 64)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "%dx%d" % s)
@pytest.mark.parametrize("optimize", [False, True], ids=["std", "opt"])
@pytest.mark.parametrize("quality", [35, 95])
def test_greyscale_pillow_files_match_jpegio_and_pillow_pixels(tmp_path, size, optimize, quality):
    width, height = size
    grey = noisy_rgb(height, width, seed=width + 1)[..., 1]
    data = pillow_jpeg(grey, quality=quality, optimize=optimize)
    decoded = assert_matches_jpegio(data, tmp_path, required=False)
    (comp,) = decoded["components"]
    assert comp["coef"].shape == (-(-height // 8), -(-width // 8), 64)
    (plane,) = J.decode_pixels(decoded)
    assert plane.shape == (height, width) and plane.dtype == np.uint8
    pillow = np.asarray(Image.open(io.BytesIO(data)))
    assert np.abs(plane.astype(int) - pillow).max() <= 2


def test_colour_pixels_match_libjpeg_without_colour_conversion():
    data = pillow_jpeg(noisy_rgb(41, 29), quality=90, subsampling=0)
    im = Image.open(io.BytesIO(data))
    im.draft("YCbCr", im.size)  # libjpeg output in YCbCr: no colour conversion
    assert im.mode == "YCbCr"
    ref = np.asarray(im)
    ours = J.decode_pixels(data)
    for k in range(3):
        assert ours[k].shape == (41, 29)
        assert np.abs(ours[k].astype(int) - ref[..., k]).max() <= 2


def test_decoded_pixels_are_cropped_to_each_component_size():
    data = pillow_jpeg(smooth_rgb(23, 37), subsampling=2)
    planes = J.decode_pixels(data)
    assert [p.shape for p in planes] == [(23, 37), (12, 19), (12, 19)]


def test_cmyk_four_components_match_jpegio(tmp_path):
    rng = np.random.default_rng(4)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (19, 26, 4), dtype=np.uint8), "CMYK").save(buf, "JPEG", quality=80)
    decoded = assert_matches_jpegio(buf.getvalue(), tmp_path)
    assert len(decoded["components"]) == 4
    assert decoded["adobe_transform"] == 0 and decoded["jfif"] is False


@pytest.mark.parametrize(
    "sample",
    ["1x2,1x1,1x1", "4x1,2x1,1x1", "3x1,1x1,1x1", "2x2,2x1,1x1", "1x4,1x2,1x1", "2x2,1x1,2x2"],
)
def test_cjpeg_sampling_factors_match_jpegio(tmp_path, sample):
    ppm = tmp_path / "in.ppm"
    Image.fromarray(noisy_rgb(45, 51)).save(ppm)
    data = run_tool(["cjpeg", "-quality", "85", "-sample", sample, str(ppm)])
    decoded = assert_matches_jpegio(data, tmp_path)
    expected = [tuple(int(n) for n in hv.split("x")) for hv in sample.split(",")]
    assert [(c["h"], c["v"]) for c in decoded["components"]] == expected


def test_cjpeg_rgb_without_transform_has_adobe_marker(tmp_path):
    ppm = tmp_path / "in.ppm"
    Image.fromarray(noisy_rgb(20, 30)).save(ppm)
    decoded = assert_matches_jpegio(run_tool(["cjpeg", "-rgb", str(ppm)]), tmp_path, required=False)
    assert decoded["adobe_transform"] == 0 and decoded["jfif"] is False
    assert [c["id"] for c in decoded["components"]] == [ord("R"), ord("G"), ord("B")]


def test_greyscale_with_sampling_factors_uses_plain_block_counts(tmp_path):
    pgm = tmp_path / "in.pgm"
    Image.fromarray(noisy_rgb(23, 37)[..., 0]).save(pgm)
    data = run_tool(["cjpeg", "-grayscale", "-sample", "2x2", str(pgm)])
    decoded = assert_matches_jpegio(data, tmp_path, required=False)
    (comp,) = decoded["components"]
    assert (comp["h"], comp["v"]) == (2, 2)
    assert comp["coef"].shape == (3, 5, 64)  # ceil(23/8) x ceil(37/8), not MCU-padded


# ---- restart intervals


@pytest.mark.parametrize("restart", ["1", "2", "1B", "5B", "7B"])
@pytest.mark.parametrize("sample", ["1x1,1x1,1x1", "2x2,1x1,1x1"])
def test_cjpeg_restart_markers(tmp_path, restart, sample):
    ppm = tmp_path / "in.ppm"
    Image.fromarray(noisy_rgb(67, 100)).save(ppm)
    plain = run_tool(["cjpeg", "-sample", sample, str(ppm)])
    marked = run_tool(["cjpeg", "-sample", sample, "-restart", restart, str(ppm)])
    a = J.decode_coefficients(plain)
    b = assert_matches_jpegio(marked, tmp_path, required=False)
    assert_same_coefficients(a, b)
    assert b["restart_interval"] > 0
    mcus = -(-100 // (8 * int(sample[0]))) * -(-67 // (8 * int(sample[2])))
    intervals = -(-mcus // b["restart_interval"])
    assert entropy_markers(marked) == [i % 8 for i in range(intervals - 1)]


@pytest.mark.parametrize("restart", ["1", "1B", "3B", "8B"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpegtran_restart_keeps_coefficients(tmp_path, restart, mode):
    image = noisy_rgb(37, 45)
    data = pillow_jpeg(image if mode == "RGB" else image[..., 0], quality=70)
    marked = run_tool(["jpegtran", "-restart", restart], stdin=data)
    assert entropy_markers(marked), "jpegtran wrote no RST markers"
    assert_same_coefficients(J.decode_coefficients(data), assert_matches_jpegio(marked, tmp_path, required=False))


def test_pillow_restart_options(tmp_path):
    image = noisy_rgb(40, 70)
    plain = J.decode_coefficients(pillow_jpeg(image))
    for options in ({"restart_marker_blocks": 3}, {"restart_marker_rows": 1}):
        data = pillow_jpeg(image, **options)
        assert entropy_markers(data)
        assert_same_coefficients(plain, assert_matches_jpegio(data, tmp_path, required=False))


def _insert_fill_bytes(data: bytes) -> bytes:
    """Put 0xFF fill bytes before every marker after SOS (RSTn and EOI)."""
    sos = data.index(b"\xff\xda")
    head, tail = data[:sos], data[sos:]
    out = bytearray(head)
    i = 0
    while i < len(tail):
        if tail[i] == 0xFF and i + 1 < len(tail) and (0xD0 <= tail[i + 1] <= 0xD7 or tail[i + 1] == 0xD9):
            out += b"\xff\xff\xff"
        out.append(tail[i])
        i += 1
    return bytes(out)


def test_fill_bytes_before_markers_are_skipped(tmp_path):
    data = run_tool(["jpegtran", "-restart", "2B"], stdin=pillow_jpeg(noisy_rgb(30, 40)))
    filled = _insert_fill_bytes(data)
    assert len(filled) > len(data)
    assert_same_coefficients(J.decode_coefficients(data), J.decode_coefficients(filled))
    # and a fill byte before a header marker
    assert_same_coefficients(J.decode_coefficients(data), J.decode_coefficients(data[:2] + b"\xff" + data[2:]))


# ---- several sequential scans


@pytest.mark.parametrize("script", ["0;1;2;", "0;1 2;", "2;0 1;", "1;2;0;"])
@pytest.mark.parametrize("sample", ["1x1,1x1,1x1", "2x2,1x1,1x1", "1x2,1x1,1x1"])
@pytest.mark.parametrize("restart", [None, "2B"])
def test_jpegtran_multiscan_sequential(tmp_path, script, sample, restart):
    ppm = tmp_path / "in.ppm"
    Image.fromarray(noisy_rgb(37, 45)).save(ppm)
    original = run_tool(["cjpeg", "-sample", sample, str(ppm)])
    script_file = tmp_path / "scans.txt"
    script_file.write_text(script.replace(";", ";\n"))
    args = ["jpegtran", "-scans", str(script_file)]
    if restart:
        args += ["-restart", restart]
    data = run_tool(args, stdin=original)
    decoded = assert_matches_jpegio(data, tmp_path, required=False)
    assert len(decoded["scans"]) == script.count(";")
    assert_same_coefficients(J.decode_coefficients(original), decoded)
    # never-coded padding blocks of non-interleaved components stay zero
    for scan in decoded["scans"]:
        if len(scan[0]) == 1:
            (comp,) = [c for c in decoded["components"] if c["id"] == scan[0][0]]
            outside = comp["coef"].copy()
            outside[: comp["blocks_tall"], : comp["blocks_wide"]] = 0
            assert not outside.any()


# ---- refusals and corrupt data


def test_progressive_is_refused():
    data = pillow_jpeg(smooth_rgb(16, 16), progressive=True)
    with pytest.raises(ValueError, match="progressive"):
        J.decode_coefficients(data)


def test_arithmetic_is_refused():
    data = run_tool(["jpegtran", "-arithmetic"], stdin=pillow_jpeg(smooth_rgb(16, 16)))
    with pytest.raises(ValueError, match="arithmetic"):
        J.decode_coefficients(data)


@pytest.mark.parametrize("sof,word", [(0xC3, "lossless"), (0xC5, "hierarchical"), (0xC2, "progressive"),
                                      (0xCB, "arithmetic")])
def test_other_processes_are_refused(sof, word):
    data = bytearray(pillow_jpeg(smooth_rgb(16, 16)))
    i = data.index(b"\xff\xc0")
    data[i + 1] = sof
    with pytest.raises(ValueError, match=word):
        J.decode_coefficients(bytes(data))


def test_sof0_with_12_bit_precision_is_refused():
    data = bytearray(pillow_jpeg(smooth_rgb(16, 16)))
    i = data.index(b"\xff\xc0")
    data[i + 4] = 12
    with pytest.raises(ValueError, match="baseline"):
        J.decode_coefficients(bytes(data))


def test_truncated_and_corrupt_data_is_refused():
    data = pillow_jpeg(noisy_rgb(40, 40))
    sos = data.index(b"\xff\xda")
    with pytest.raises(ValueError):
        J.decode_coefficients(data[:-2])  # no EOI
    with pytest.raises(ValueError):
        J.decode_coefficients(data[: sos + 200] + b"\xff\xd9")  # MCUs missing
    with pytest.raises(ValueError):
        J.decode_coefficients(data[:-2] + b"\x00\x00\xff\xd9")  # bits left over after the last MCU


def test_rst_out_of_sequence_is_refused():
    data = bytearray(run_tool(["jpegtran", "-restart", "1B"], stdin=pillow_jpeg(noisy_rgb(16, 40))))
    i = data.index(b"\xff\xd1")
    data[i + 1] = 0xD5
    with pytest.raises(ValueError, match="RST5"):
        J.decode_coefficients(bytes(data))
    relaxed = J.decode_coefficients(bytes(data), strict=False)
    assert any("RST5" in w for w in relaxed["warnings"])


def test_rst_after_the_last_interval_is_refused_unless_relaxed():
    data = run_tool(["jpegtran", "-restart", "1B"], stdin=pillow_jpeg(noisy_rgb(16, 24)))
    extra = data[:-2] + bytes([0xFF, 0xD0 + len(entropy_markers(data)) % 8]) + data[-2:]
    with pytest.raises(ValueError, match="segments"):
        J.decode_coefficients(extra)
    relaxed = J.decode_coefficients(extra, strict=False)
    assert relaxed["warnings"] == ["RST marker after the last restart interval"]
    assert_same_coefficients(J.decode_coefficients(data), relaxed)


def test_decoding_256x256_colour_is_fast_enough():
    data = pillow_jpeg(noisy_rgb(256, 256), quality=95, subsampling=0)
    start = time.perf_counter()
    J.decode_coefficients(data)
    J.decode_pixels(data)
    assert time.perf_counter() - start < 3.0


# --------------------------------------------------------------------------
# encoder round trips
# --------------------------------------------------------------------------

SAMPLINGS = {
    "444": ((1, 1), (1, 1), (1, 1)),
    "422": ((2, 1), (1, 1), (1, 1)),
    "420": ((2, 2), (1, 1), (1, 1)),
    "Y1x2": ((1, 2), (1, 1), (1, 1)),
}


def _colour_input(precision: int) -> np.ndarray:
    image = smooth_rgb(45, 70)
    if precision == 12:
        return (image.astype(np.uint16) << 4) | 5  # 12-bit samples, used as YCbCr directly
    return image


@pytest.mark.parametrize("sampling", list(SAMPLINGS), ids=list(SAMPLINGS))
@pytest.mark.parametrize("restart", [0, 1, 7])
@pytest.mark.parametrize("optimize", [False, True], ids=["std", "opt"])
@pytest.mark.parametrize("precision", [8, 12])
def test_encode_round_trip(tmp_path, precision, sampling, restart, optimize):
    image = _colour_input(precision)
    data, coefs = J.encode(image, precision=precision, sampling=SAMPLINGS[sampling], quality=90,
                           restart_interval=restart, optimize=optimize, return_coefficients=True)
    decoded = J.decode_coefficients(data)
    assert decoded["warnings"] == []
    assert decoded["precision"] == precision and decoded["restart_interval"] == restart
    for comp, expected in zip(decoded["components"], coefs):
        np.testing.assert_array_equal(comp["coef"], expected)
    if restart:
        assert entropy_markers(data)
    if precision == 8:
        assert data[data.index(b"\xff\xc0") + 1] == 0xC0 and decoded["jfif"]
        assert_matches_jpegio(data, tmp_path, decoded, required=False)
        run_tool(["djpeg", "-outfile", str(tmp_path / "out.ppm")], stdin=data)
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert psnr(rgb, image, 255) > 30
    else:
        assert data[data.index(b"\xff\xc1") + 1] == 0xC1 and not decoded["jfif"]
        libjpeg = optional_import("libjpeg")  # pylibjpeg-libjpeg
        if libjpeg is None:
            return
        ref = libjpeg.decode(data)  # no colour conversion of 12-bit data
        assert ref.shape == image.shape
        ours = J.decode_pixels(decoded)
        assert np.abs(ours[0].astype(int) - ref[..., 0]).max() <= 2
        if sampling == "444":
            for k in (1, 2):
                assert np.abs(ours[k].astype(int) - ref[..., k]).max() <= 2
        assert psnr(ref[..., 0], image[..., 0], 4095) > 30


@pytest.mark.parametrize("precision", [8, 12])
@pytest.mark.parametrize("optimize", [False, True], ids=["std", "opt"])
@pytest.mark.parametrize("size", [(37, 23), (1, 1), (9, 17)], ids=lambda s: "%dx%d" % s)
def test_encode_greyscale_round_trip(tmp_path, precision, optimize, size):
    width, height = size
    grey = smooth_rgb(height, width)[..., 0].astype(np.uint16 if precision == 12 else np.uint8)
    if precision == 12:
        grey = grey * 16 + 3
    data, coefs = J.encode(grey, precision=precision, quality=90, optimize=optimize, restart_interval=2,
                           return_coefficients=True)
    decoded = J.decode_coefficients(data)
    (comp,) = decoded["components"]
    assert comp["coef"].shape == (-(-height // 8), -(-width // 8), 64)
    np.testing.assert_array_equal(comp["coef"], coefs[0])
    (ours,) = J.decode_pixels(decoded)
    if precision == 8:
        assert_matches_jpegio(data, tmp_path, decoded, required=False)
        run_tool(["djpeg", "-outfile", str(tmp_path / "out.pgm")], stdin=data)
        pillow = np.asarray(Image.open(io.BytesIO(data)))
        assert np.abs(ours.astype(int) - pillow).max() <= 2
    elif optional_import("libjpeg") is not None:
        assert np.abs(ours.astype(int) - optional_import("libjpeg").decode(data)).max() <= 2


@pytest.mark.parametrize("scans", [[(0,), (1,), (2,)], [(0,), (1, 2)], [(0, 2), (1,)], [(2,), (0,), (1,)]], ids=str)
@pytest.mark.parametrize("sampling", ["420", "Y1x2"])
def test_encode_several_scans(tmp_path, scans, sampling):
    image = smooth_rgb(37, 45)
    data, coefs = J.encode(image, sampling=SAMPLINGS[sampling], scans=scans, restart_interval=3,
                           return_coefficients=True)
    decoded = assert_matches_jpegio(data, tmp_path, required=False)
    assert len(decoded["scans"]) == len(scans)
    for comp, expected in zip(decoded["components"], coefs):
        np.testing.assert_array_equal(comp["coef"], expected)
    run_tool(["djpeg", "-outfile", str(tmp_path / "out.ppm")], stdin=data)
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert psnr(rgb, image, 255) > 28


def test_scan_components_out_of_frame_order_are_refused():
    with pytest.raises(ValueError, match="frame order"):
        J.encode(smooth_rgb(16, 16), scans=[(2, 0), (1,)])
    data = bytearray(J.encode(smooth_rgb(16, 16), scans=[(0, 2), (1,)]))
    sos = data.index(b"\xff\xda")
    assert data[sos + 5] == 1 and data[sos + 7] == 3
    data[sos + 5], data[sos + 7] = 3, 1  # list Cr before Y
    with pytest.raises(ValueError, match="frame order"):
        J.decode_coefficients(bytes(data))


@pytest.mark.parametrize("quality", [50, 90])
@pytest.mark.parametrize("sampling", [None, "444", "422", "420"])
def test_encoder_agrees_with_cjpeg_float_dct(tmp_path, sampling, quality):
    """Same colour conversion, downsampling, DCT and quantization as libjpeg, up to float noise."""
    image = noisy_rgb(45, 51)
    if sampling is None:
        source, pixels, args, options = tmp_path / "in.pgm", image[..., 0], ["-grayscale"], {}
    else:
        source, pixels, options = tmp_path / "in.ppm", image, {"sampling": SAMPLINGS[sampling]}
        args = ["-sample", ",".join("%dx%d" % hv for hv in SAMPLINGS[sampling])]
    Image.fromarray(pixels).save(source)
    ref = J.decode_coefficients(run_tool(["cjpeg", "-dct", "float", "-quality", str(quality), *args, str(source)]))
    ours = J.decode_coefficients(J.encode(pixels, quality=quality, **options))
    assert sorted(ref["quant"]) == sorted(ours["quant"])
    for k in ref["quant"]:
        np.testing.assert_array_equal(ref["quant"][k], ours["quant"][k])
    for k, (a, b) in enumerate(zip(ref["components"], ours["components"])):
        diff = np.abs(own_blocks(a) - own_blocks(b))
        # libjpeg rounds differently in places (AAN float DCT, fixed-point colour
        # conversion, biased box filter for chroma): a few coefficients are 1 apart
        assert diff.max() <= 1
        assert (diff != 0).mean() < (0.005 if k == 0 or sampling == "444" else 0.05)


def test_encode_with_explicit_and_16_bit_quant_tables():
    grey = (smooth_rgb(24, 24)[..., 0].astype(np.uint16) * 16)
    big = np.full(64, 300, dtype=np.int64)
    big[0] = 1000
    data, coefs = J.encode(grey, precision=12, qtables=[big], return_coefficients=True)
    decoded = J.decode_coefficients(data)
    np.testing.assert_array_equal(decoded["quant"][0], big)  # written as a 16-bit DQT
    np.testing.assert_array_equal(decoded["components"][0]["coef"], coefs[0])
    natural = np.arange(1, 65).reshape(8, 8)
    data = J.encode(smooth_rgb(16, 16)[..., 0], qtables=[natural])
    np.testing.assert_array_equal(J.decode_coefficients(data)["quant"][0], J.natural_to_zigzag(natural))


# ---- edge cases through encode_coefficients


def _edge_case_coefficients(precision: int, rows: int = 3, cols: int = 5) -> np.ndarray:
    rng = np.random.default_rng(precision)
    max_ac = 1023 if precision == 8 else 16383
    dc_lo, dc_hi = (-1024, 1023) if precision == 8 else (-16384, 16383)
    coef = np.zeros((rows, cols, 64), dtype=np.int32)
    # block (0,0): all 63 AC non-zero, the largest magnitudes (no EOB is written)
    coef[0, 0, 1:] = rng.choice([-1, 1], 63) * rng.integers(1, max_ac + 1, 63)
    coef[0, 0, 1:4] = [max_ac, -max_ac, 1]
    coef[0, 0, 63] = -max_ac
    # block (0,1): only the last coefficient (three ZRLs, then run 14)
    coef[0, 1, 63] = 5
    # block (0,2): runs of exactly 15 and 16 zeros
    coef[0, 2, 16] = -2
    coef[0, 2, 33] = 3
    # block (0,3): nothing at all (EOB straight away)
    # extreme DC swings between neighbouring blocks
    dcs = [dc_hi, dc_lo, dc_hi, dc_lo, 0, dc_lo, dc_hi, 1, -1, dc_hi, dc_lo, 0, 0, dc_hi, dc_lo]
    coef[..., 0] = np.array(dcs[: rows * cols]).reshape(rows, cols)
    # the rest: random sparse AC
    mask = rng.random((rows, cols, 64)) < 0.2
    mask[0, :4] = False
    mask[..., 0] = False
    coef[mask] = rng.integers(-50, 51, int(mask.sum()))
    return coef


@pytest.mark.parametrize("precision", [8, 12])
@pytest.mark.parametrize("optimize", [False, True], ids=["std", "opt"])
@pytest.mark.parametrize("restart", [0, 4])
def test_encode_coefficients_edge_cases(tmp_path, precision, optimize, restart):
    coef = _edge_case_coefficients(precision)
    qtable = np.ones(64, dtype=np.int64)
    data = J.encode_coefficients([coef], [qtable], width=37, height=20, precision=precision,
                                 optimize=optimize, restart_interval=restart)
    assert b"\xff\x00" in data[data.index(b"\xff\xda"):]  # byte stuffing happened
    decoded = J.decode_coefficients(data)
    np.testing.assert_array_equal(decoded["components"][0]["coef"], coef)
    if precision == 8:
        assert_matches_jpegio(data, tmp_path, decoded, required=False)
        run_tool(["djpeg", "-outfile", str(tmp_path / "out.pgm")], stdin=data)
    elif optional_import("libjpeg") is not None:
        libjpeg = optional_import("libjpeg")
        diff = np.abs(J.decode_pixels(decoded)[0].astype(int) - libjpeg.decode(data))
        # block (0, 0), with every AC at up to 16383, overflows libjpeg's integer
        # IDCT (up to 11 apart); the other blocks must agree
        diff[:8, :8] = 0
        assert diff.max() <= 2


def test_encode_coefficients_colour_edge_cases(tmp_path):
    sampling = [(2, 2), (1, 1), (1, 1)]
    y = np.zeros((6, 10, 64), dtype=np.int32)  # 80x45 at 4:2:0: 5x3 MCUs
    y[:3, :5] = _edge_case_coefficients(8)
    y[3:, 5:] = _edge_case_coefficients(8)
    cb = _edge_case_coefficients(8)
    cr = -_edge_case_coefficients(8)
    cr[..., 0] = np.clip(cr[..., 0], -1024, 1023)
    qtables = [np.ones(64, dtype=np.int64), np.full(64, 2, dtype=np.int64)]
    data = J.encode_coefficients([y, cb, cr], qtables, width=80, height=45, sampling=sampling,
                                 restart_interval=2)
    decoded = assert_matches_jpegio(data, tmp_path, required=False)
    for comp, expected in zip(decoded["components"], [y, cb, cr]):
        np.testing.assert_array_equal(comp["coef"], expected)
    run_tool(["djpeg", "-outfile", str(tmp_path / "out.ppm")], stdin=data)


def test_encode_coefficients_refuses_out_of_range_values():
    coef = np.zeros((1, 1, 64), dtype=np.int32)
    coef[0, 0, 5] = 1024  # category 11 is not allowed for 8-bit AC
    with pytest.raises(ValueError, match="category"):
        J.encode_coefficients([coef], [np.ones(64)], width=8, height=8)
    coef[0, 0, 5] = 0
    coef[0, 0, 0] = 2048  # DC difference category 12
    with pytest.raises(ValueError, match="category"):
        J.encode_coefficients([coef], [np.ones(64)], width=8, height=8)
    with pytest.raises(ValueError, match="shape"):
        J.encode_coefficients([np.zeros((2, 2, 64))], [np.ones(64)], width=8, height=8)


# --------------------------------------------------------------------------
# 12-bit DICOM test file
# --------------------------------------------------------------------------


def _jpeg_lossy_frame() -> tuple[object, bytes, str]:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file
    from pydicom.encaps import generate_frames

    path = get_testdata_file("JPEG-lossy.dcm")
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    return ds, frame, path


def test_pydicom_jpeg_lossy_12_bit_decodes_exactly():
    ds, frame, _ = _jpeg_lossy_frame()
    # strict: every MCU consumed, only 1-padding left, EOI found
    decoded = J.decode_coefficients(frame)
    assert decoded["precision"] == 12
    assert (decoded["width"], decoded["height"]) == (ds.Columns, ds.Rows)
    (comp,) = decoded["components"]
    assert comp["coef"].shape == (ds.Rows // 8, ds.Columns // 8, 64)
    # this file's SOS says Ss=0 Se=0 (should be 0 and 63); libjpeg ignores that too
    assert decoded["warnings"] == ["sequential scan with Ss=0 Se=0 Ah=0 Al=0 (ignored)"]
    (plane,) = J.decode_pixels(decoded)
    assert plane.shape == (ds.Rows, ds.Columns) and plane.dtype == np.uint16
    assert 0 < plane.max() < 4096


def test_pydicom_jpeg_lossy_12_bit_matches_gdcm():
    # pydicom's ds.pixel_array cannot decode this file here: its pylibjpeg plugin
    # rejects the bad Se, and its gdcm plugin refuses 12-bit JPEG Extended.  GDCM
    # itself (which patches libjpeg's 12-bit build in) decodes it, so ask it directly.
    gdcm = pytest.importorskip("gdcm")
    ds, frame, path = _jpeg_lossy_frame()
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read()
    buffer = reader.GetImage().GetBuffer().encode("utf-8", "surrogateescape")
    ref = np.frombuffer(buffer, dtype="<u2").reshape(ds.Rows, ds.Columns)
    (ours,) = J.decode_pixels(frame)
    assert np.abs(ours.astype(int) - ref).max() <= 1


def test_pydicom_jpeg_lossy_12_bit_matches_libjpeg_after_fixing_se():
    libjpeg = pytest.importorskip("libjpeg")
    _, frame, _ = _jpeg_lossy_frame()
    fixed = bytearray(frame)
    sos = fixed.index(b"\xff\xda")
    length = int.from_bytes(fixed[sos + 2 : sos + 4], "big")
    assert fixed[sos + 2 + length - 2] == 0  # Se
    fixed[sos + 2 + length - 2] = 63
    assert J.decode_coefficients(bytes(fixed))["warnings"] == []
    (ours,) = J.decode_pixels(frame)
    assert np.abs(ours.astype(int) - libjpeg.decode(bytes(fixed))).max() <= 1
