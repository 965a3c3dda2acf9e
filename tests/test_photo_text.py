"""Photographs (JPEG, PNG, TIFF) scanned for burned-in text under ``--option clean-pixel-data``,
with the stand-in detector of test_burned_in_run.py (magenta pixels, or grey 7, are text): JPEG
redacted in the compressed domain, PNG painted and re-encoded exactly, TIFF and 16-bit colour PNG
with text refused; without the option, nothing is scanned."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_burned_in_run import (
    MAGENTA,
    _assert_blocks,
    _draw,
    _stand_in,
    install_stand_in,
)

from medcloak.cli import main
from medcloak.engine import run
from medcloak.pixels.burned_in import pad

LINES = [(12, 10, "JANE ROE 1970-01-02"), (150, 170, "ID 4455")]


@pytest.fixture
def stand_in(monkeypatch):  # type: ignore[no-untyped-def]
    return install_stand_in(monkeypatch)


def _photo(rng_seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(rng_seed)
    y, x = np.mgrid[0:200, 0:256]
    # green never below 130: nothing magenta but the text
    base = np.stack([(x + y) % 256, 138 + (2 * x) % 110, (255 - y) % 256], axis=2).astype(np.int16)
    return np.clip(base + rng.integers(-8, 8, base.shape), 0, 255).astype(np.uint8)


def _run(tmp_path: Path, secret_file: Path, files: dict[str, bytes], options=("clean-pixel-data",)):  # type: ignore[no-untyped-def]
    inp = tmp_path / "in"
    inp.mkdir(exist_ok=True)
    for name, data in files.items():
        (inp / name).write_bytes(data)
    out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    summary = run([inp], out, secret_file=secret_file, options=list(options))
    lines = {json.loads(t)["input"].rsplit("/", 1)[1]: json.loads(t)
             for t in (out.parent / (out.name + ".audit") / "manifest.jsonl").read_text().splitlines()}
    return summary, out, lines


def _released(out: Path, line: dict) -> bytes:  # type: ignore[type-arg]
    (rel,) = line["outputs"]
    return (out / rel).read_bytes()


def test_jpeg_photo_redacted_in_the_compressed_domain(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    rgb, mask = _draw(_photo(), LINES, MAGENTA)
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "ACME CAMERA"
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    data = buf.getvalue()
    clean = io.BytesIO()
    Image.fromarray(_photo(4)).save(clean, format="JPEG", quality=95)
    summary, out, lines = _run(tmp_path, secret_file, {"a.jpg": data, "b.jpg": clean.getvalue()})
    assert summary.ok == 2
    line = lines["a.jpg"]
    assert line["actions"]["pixel-frames-scanned"] == 1 and line["actions"]["pixel-text-boxes-redacted"] == 2
    assert lines["b.jpg"]["actions"]["pixel-text-boxes-redacted"] == 0
    released = _released(out, line)
    with Image.open(io.BytesIO(data)) as img:
        boxes = pad(_stand_in(np.asarray(img)), 256, 200)
    from medcloak.pixels.jpeg_meta import strip_jpeg_metadata

    _assert_blocks(strip_jpeg_metadata(data), released, boxes)
    inside = np.zeros(mask.shape, bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
    assert (mask & inside).sum() > 0.8 * mask.sum()  # the stand-in finds most of it
    with Image.open(io.BytesIO(released)) as img:
        assert np.asarray(img)[mask & inside].max() <= 40
    assert (out.parent / (out.name + ".audit") / "qc" / f"{line['id']}-text.png").exists()
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "I;16"])
def test_png_painted_and_reencoded(tmp_path, secret_file, stand_in, mode) -> None:  # type: ignore[no-untyped-def]
    rgb, mask = _draw(_photo(), LINES, MAGENTA)
    if mode == "RGB":
        img = Image.fromarray(rgb)
    elif mode == "RGBA":
        img = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    elif mode == "P":
        img = Image.fromarray(rgb).quantize(64)
        mask = np.asarray(img.convert("RGB")).astype(int)
        mask = (mask[:, :, 0] > 150) & (mask[:, :, 1] < 120) & (mask[:, :, 2] > 150)
    else:
        grey = (rgb[:, :, 1].astype(np.uint16) | 8) if mode == "L" else (rgb[:, :, 1].astype(np.uint16) << 4) | 8
        grey[mask] = 7
        img = Image.fromarray(grey.astype(np.uint8) if mode == "L" else grey)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    summary, out, lines = _run(tmp_path, secret_file, {"a.png": buf.getvalue()})
    assert summary.ok == 1, lines
    line = lines["a.png"]
    assert line["actions"]["pixel-text-boxes-redacted"] == 2
    with Image.open(io.BytesIO(_released(out, line))) as done:
        assert done.mode == img.mode
        shown = np.asarray(done.convert("RGBA") if mode in ("P", "RGBA") else done)
        before = np.asarray(img.convert("RGBA") if mode in ("P", "RGBA") else img)
    if mode in ("P", "RGBA", "RGB"):
        assert shown[mask][:, :3].max() <= 30
        if mode != "RGB":
            assert (shown[mask][:, 3] == 255).all()
    else:
        assert (shown[mask] == 0).all()
    changed = np.any(shown != before, axis=-1) if shown.ndim == 3 else shown != before
    ys, _xs = np.nonzero(changed)
    assert changed.any() and ys.max() < 200 and not changed[60:160].any()  # between the lines: untouched
    assert main(["verify", str(out)]) == 0


def test_refused_when_text_has_no_exact_route(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    rgb, _mask = _draw(_photo(), LINES, MAGENTA)
    deep = _png16(rgb.astype(np.uint16) * 257)  # 16-bit RGB (the decoder here reduces it to 8 bits)
    jpeg_tif = io.BytesIO()
    tifffile.imwrite(jpeg_tif, rgb, photometric="rgb", compression="jpeg")
    plain = io.BytesIO()
    tifffile.imwrite(plain, _photo(), photometric="rgb", compression="jpeg")
    summary, _out, lines = _run(tmp_path, secret_file, {"deep.png": deep, "t.tif": jpeg_tif.getvalue(),
                                                       "plain.tif": plain.getvalue()})
    assert summary.quarantined == 2 and summary.ok == 1
    assert "16-bit colour PNG" in lines["deep.png"]["reason"]
    assert "TIFF" in lines["t.tif"]["reason"]
    assert lines["plain.tif"]["actions"]["pixel-text-boxes-redacted"] == 0


@pytest.mark.parametrize("layout", ["rgb-lzw", "rgb-planar-deflate-tiled", "grey16-deflate-predictor",
                                    "miniswhite-packbits", "rgba-none", "palette-lzw"])
def test_tiff_painted_and_reencoded(tmp_path, secret_file, stand_in, layout) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    rgb, mask = _draw(_photo(), LINES, MAGENTA)
    grey = (rgb[:, :, 1].astype(np.uint16) << 4) | 8
    grey[mask] = 7
    kwargs: dict = {}
    if layout == "rgb-lzw":
        arr, kwargs = rgb, {"photometric": "rgb", "compression": "lzw", "rowsperstrip": 16}
    elif layout == "rgb-planar-deflate-tiled":
        arr, kwargs = np.ascontiguousarray(np.moveaxis(rgb, 2, 0)), {
            "photometric": "rgb", "planarconfig": "separate", "compression": "deflate", "tile": (64, 64)}
    elif layout == "grey16-deflate-predictor":
        arr, kwargs = grey, {"photometric": "minisblack", "compression": "deflate", "predictor": 2}
    elif layout == "miniswhite-packbits":
        arr = (grey >> 4).astype(np.uint8)
        arr[mask] = 7
        kwargs = {"photometric": "miniswhite", "compression": "packbits"}
    elif layout == "rgba-none":
        arr, kwargs = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]), {"photometric": "rgb", "extrasamples": (2,)}
    else:
        quant = Image.fromarray(rgb).quantize(64)
        entries = (quant.getpalette()[: 64 * 3] + [255] * 3 * 192)  # the rest white: the darkest is used
        pal = np.asarray(entries, np.uint16).reshape(256, 3).T * 257
        arr, kwargs = np.asarray(quant), {"photometric": "palette", "colormap": pal, "compression": "lzw"}
        shown = np.asarray(quant.convert("RGB")).astype(int)
        mask = (shown[:, :, 0] > 150) & (shown[:, :, 1] < 120) & (shown[:, :, 2] > 150)
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kwargs)
    summary, out, lines = _run(tmp_path, secret_file, {"a.tif": buf.getvalue()})
    assert summary.ok == 1, lines
    line = lines["a.tif"]
    assert line["actions"]["pixel-text-boxes-redacted"] == 2
    with tifffile.TiffFile(out / line["outputs"][0]) as tif:
        page = tif.pages.first
        done = page.asarray()
        assert int(page.compression) == int(tifffile.TiffFile(io.BytesIO(buf.getvalue())).pages.first.compression)
    samples_last = np.moveaxis(done, 0, -1) if layout.startswith("rgb-planar") else done
    before = np.moveaxis(arr, 0, -1) if layout.startswith("rgb-planar") else arr
    text = samples_last[mask]
    if layout.startswith("rgb"):
        assert (text[:, :3] == 0).all() and (layout != "rgba-none" or (text[:, 3] == 255).all())
    elif layout == "miniswhite-packbits":
        assert (text == 255).all()
    elif layout == "palette-lzw":
        darkest = int(np.asarray(kwargs["colormap"], np.int64).sum(axis=0).argmin())
        assert (text == darkest).all()
    else:
        assert (text == 0).all()
    changed = np.any(samples_last != before, axis=-1) if samples_last.ndim == 3 else samples_last != before
    assert changed.any() and not changed[60:160].any()  # between the lines: untouched
    assert main(["verify", str(out)]) == 0


def _png16(arr: np.ndarray) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_without_the_option_nothing_is_scanned(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    rgb, _mask = _draw(_photo(), LINES, MAGENTA)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    summary, out, lines = _run(tmp_path, secret_file, {"a.png": buf.getvalue()}, options=())
    assert summary.ok == 1
    assert not any(k.startswith("pixel-") for k in lines["a.png"]["actions"])
    assert _released(out, lines["a.png"]) == buf.getvalue()


def test_undecodable_photo_refused(tmp_path, secret_file, stand_in) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    Image.fromarray(_photo()).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    # a broken IDAT with a valid CRC: the chunks are sound, the image is not
    import struct
    import zlib

    start = data.index(b"IDAT") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    body = b"\x00" * length
    data[start + 8:start + 8 + length] = body
    data[start + 8 + length:start + 12 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + body))
    summary, _out, lines = _run(tmp_path, secret_file, {"a.png": bytes(data)})
    assert summary.quarantined == 1
    assert "cannot be decoded" in lines["a.png"]["reason"]
