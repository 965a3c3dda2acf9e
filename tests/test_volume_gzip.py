"""The gzip codec of released volumes (:mod:`medcloak.formats.gz`): ISA-L when installed, zlib
otherwise; both write standard gzip that the standard library and nibabel read, compressed from
the array's memory; a broken stream is a typed error with either."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest

from medcloak.errors import CorruptInputError
from medcloak.formats import gz
from medcloak.formats.volume import read_volume, volume_bytes, volume_parts


@pytest.fixture(params=["isal", "zlib"])
def codec(request, monkeypatch):  # type: ignore[no-untyped-def]
    if request.param == "zlib":
        monkeypatch.setattr(gz, "_isal", lambda: None)
    elif gz.codec() != "isal":
        pytest.skip("isal is not installed")
    monkeypatch.setattr(gz, "CHUNK", 1000)  # several parts per array
    return request.param


def test_standard_gzip_from_parts(codec) -> None:  # type: ignore[no-untyped-def]
    assert gz.codec() == codec
    values = np.asfortranarray(np.random.default_rng(0).integers(0, 500, (20, 30, 11)).astype(">i2"))
    parts = (b"header", memoryview(values.T.reshape(-1).view(np.uint8)))
    blob = gz.compress(parts)
    assert blob[:2] == b"\x1f\x8b" and gzip.decompress(blob) == b"header" + values.tobytes(order="F")
    assert gz.decompress(blob) == gzip.decompress(blob)
    assert gz.decompress(gzip.compress(b"abc") + gzip.compress(b"def")) == b"abcdef"  # members


@pytest.mark.parametrize("damage", [lambda b: b[:-9], lambda b: b[:40], lambda b: b[:12] + b"\xff" * 30 + b[42:],
                                    lambda b: b + b"junk"])
def test_broken_stream_is_corrupt_input(codec, damage) -> None:  # type: ignore[no-untyped-def]
    blob = gzip.compress(np.arange(5000, dtype=np.int32).tobytes())
    with pytest.raises(CorruptInputError):
        gz.decompress(damage(blob))


@pytest.mark.parametrize("order", ["F", "C"])
def test_released_volume_reads_back(codec, tmp_path, order) -> None:  # type: ignore[no-untyped-def]
    values = np.random.default_rng(1).normal(0, 100, (9, 8, 7)).astype(np.float32)
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(values, np.diag([1.0, 2.0, 3.0, 1.0])), path)
    vol = read_volume(path)
    raw = np.array(vol.raw, order=order)
    head, data, single = volume_parts(vol, raw)
    assert single and isinstance(data, memoryview) == (order == "F")
    out = tmp_path / "o.nii.gz"
    out.write_bytes(gz.compress((head, data)))
    assert np.array_equal(np.asarray(nib.load(out).dataobj), values)
    assert gzip.decompress(out.read_bytes()) == volume_bytes(vol, raw)[0]
    assert nib.Nifti1Image.from_stream(io.BytesIO(volume_bytes(vol, raw)[0])).shape == values.shape
