"""TIFF photographs: every identifying tag gone, pixels identical, refused when multi-page."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from conftest import all_bytes_and_names, base_dataset, write

from medcloak.engine import run
from medcloak.errors import CorruptInputError
from medcloak.pixels.tiff_meta import KEEP, page_count, strip_tiff_metadata
from medcloak.verify import verify_release

Image = pytest.importorskip("PIL.Image")
TiffImagePlugin = pytest.importorskip("PIL.TiffImagePlugin")

NEEDLE = "QUENNELL"


def _tiff(compression: str | None, mode: str = "RGB", big: bool = False) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (37, 53, 3) if mode == "RGB" else (37, 53), dtype=np.uint8)
    im = Image.fromarray(pixels)
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[270] = f"Harriet {NEEDLE}, left arm"  # ImageDescription
    info[271] = f"{NEEDLE} Cameras"  # Make
    info[272] = "Model Q"  # Model
    info[305] = f"{NEEDLE}-soft"  # Software
    info[306] = "2024:05:01 10:11:12"  # DateTime
    info[315] = f"Dr {NEEDLE}"  # Artist
    info[316] = f"{NEEDLE}-PC"  # HostComputer
    info[33432] = f"(c) {NEEDLE}"  # Copyright
    buf = io.BytesIO()
    kwargs = {"tiffinfo": info, "icc_profile": f"{NEEDLE}-ICC".encode() * 4,
              "xmp": f"<x:xmpmeta>{NEEDLE}</x:xmpmeta>".encode()}
    if compression:
        kwargs["compression"] = compression
    if big:
        kwargs["big_tiff"] = True
    im.save(buf, "TIFF", **kwargs)
    return buf.getvalue(), pixels


@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_strip_tiff(compression, mode) -> None:  # type: ignore[no-untyped-def]
    data, pixels = _tiff(compression, mode)
    assert NEEDLE.encode() in data
    out = strip_tiff_metadata(data)
    assert NEEDLE.encode() not in out
    with Image.open(io.BytesIO(out)) as im, Image.open(io.BytesIO(data)) as orig:
        assert set(im.tag_v2.keys()) <= KEEP
        assert {270, 271, 305, 315, 316, 33432, 34675, 700} & set(orig.tag_v2.keys())
        assert np.array_equal(np.asarray(im), np.asarray(orig))
    assert strip_tiff_metadata(out) == out  # idempotent: what verify relies on
    if shutil.which("exiftool"):
        tags = subprocess.run(["exiftool", "-s", "-", "-a"], input=out, capture_output=True, check=True).stdout
        assert NEEDLE.encode() not in tags and b"Make" not in tags and b"Artist" not in tags


def test_big_tiff() -> None:
    try:
        data, _ = _tiff(None, big=True)
    except (TypeError, ValueError, KeyError):
        pytest.skip("this Pillow cannot write BigTIFF")
    if data[2:4] not in (b"+\x00", b"\x00+"):
        pytest.skip("this Pillow wrote a classic TIFF")
    out = strip_tiff_metadata(data)
    assert out[2:4] == data[2:4] and NEEDLE.encode() not in out
    with Image.open(io.BytesIO(out)) as im, Image.open(io.BytesIO(data)) as orig:
        assert np.array_equal(np.asarray(im), np.asarray(orig))


@pytest.mark.parametrize("cut", [3, 8, 20, 100, -50])
def test_truncated_tiff_is_corrupt(cut) -> None:  # type: ignore[no-untyped-def]
    data, _ = _tiff(None)
    with pytest.raises(CorruptInputError):
        strip_tiff_metadata(data[:cut])


def test_run_releases_tiff_and_refuses_multipage(tmp_path, secret_file) -> None:  # type: ignore[no-untyped-def]
    inp = tmp_path / "in"
    inp.mkdir()
    data, pixels = _tiff("tiff_lzw")
    (inp / f"{NEEDLE}_arm.tif").write_bytes(data)
    pages = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    assert page_count(buf.getvalue()) == 2
    (inp / "slide.tif").write_bytes(buf.getvalue())
    # a dual-personality file: DICOM whose preamble is a TIFF header is DICOM
    ds = base_dataset("1.2.3.4.1", "1.2.3.4.2", "1.2.3.4.3")
    write(ds, inp / "dual.dcm", preamble=b"II*\x00\x08\x00\x00\x00")
    summary = run([inp], tmp_path / "out", secret_file=secret_file)
    assert (summary.ok, summary.quarantined) == (2, 1)
    tifs = list((tmp_path / "out" / "photos").glob("*.tif"))
    assert len(tifs) == 1 and NEEDLE not in tifs[0].name
    blobs, names = all_bytes_and_names(tmp_path / "out")
    assert NEEDLE.lower().encode() not in blobs and NEEDLE.lower() not in names
    with Image.open(tifs[0]) as im:
        assert np.array_equal(np.asarray(im), pixels)
    assert not [f for f in verify_release(tmp_path / "out") if f.level == "error"]
    # verify notices a tag put back
    with Image.open(tifs[0]) as im:
        info = TiffImagePlugin.ImageFileDirectory_v2()
        info[315] = "someone"
        im.save(tifs[0], "TIFF", tiffinfo=info)
    assert [f for f in verify_release(tmp_path / "out") if f.level == "error"]
