"""Volumes against the run's limits (:mod:`medcloak.limits`): what a NIfTI, Analyze or MINC header
declares is checked against the file, its compressed size x the expansion ratio and the per-object
ceiling before anything is read or inflated; gzip inflates in bounded chunks with a running limit;
hostile headers are quarantined with a typed reason, never an internal error; real volumes (the
heads of ../shared/data, the samples of data_samples/ and tests/data) are read and released as before."""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import tracemalloc
import zlib
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from conftest import SECRET
from shared_data import HEADS, SHARED, use_shared

from medcloak import limits
from medcloak.engine import run
from medcloak.errors import (
    CorruptInputError,
    DeidentificationError,
    LimitError,
    MedcloakError,
    UnsupportedInputError,
)
from medcloak.formats import gz
from medcloak.formats.volume import deidentify_volume, read_volume
from medcloak.pseudonym import Keyring

REPO = Path(__file__).resolve().parents[1]
TYPED = (CorruptInputError, LimitError, UnsupportedInputError)
#: the expansion ratio without its floor (1 GB): small bombs show the mechanism cheaply
STRICT = limits.Limits(ratio_floor=0)


def nifti1(shape: tuple[int, ...], dtype: type = np.int16, data: bytes | None = None) -> bytes:
    """A single-file NIfTI-1 of ``shape`` (its zeros, or ``data``), identity affine."""
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr["vox_offset"] = 352
    hdr.set_qform(np.eye(4), code=1)
    if data is None:
        data = bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return hdr.binaryblock + b"\x00" * 4 + data


def nifti2(dims: tuple[int, ...]) -> bytes:
    hdr = nib.Nifti2Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((8, 8, 8))
    hdr["vox_offset"] = 544
    hdr.set_qform(np.eye(4), code=1)
    block = bytearray(hdr.binaryblock + b"\x00" * 4 + bytes(1024))
    block[16:80] = struct.pack("<8q", len(dims), *dims, *([1] * (7 - len(dims))))
    return bytes(block)


def put(blob: bytes, offset: int, fmt: str, value: float) -> bytes:
    out = bytearray(blob)
    out[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def write(folder: Path, name: str, blob: bytes) -> Path:
    path = folder / name
    path.write_bytes(gzip.compress(blob, compresslevel=1) if name.endswith(".gz") else blob)
    return path


def zeros_gz(header: bytes, zeros: int, members: int = 1) -> bytes:
    """``header`` then ``zeros`` zero bytes, gzipped in ``members`` members (level 9: ~1:1000)."""
    out = [gzip.compress(header, 9)]
    per = zeros // members
    for _ in range(members):
        co = zlib.compressobj(9, zlib.DEFLATED, 31)
        body = b"".join(co.compress(bytes(1 << 20)) for _ in range(per >> 20))
        out.append(body + co.compress(bytes(per % (1 << 20))) + co.flush())
    return b"".join(out)


def zeros_beyond_the_floor(header: bytes) -> bytes:
    """``header`` then zeros beyond the expansion ratio's floor (1 GB), from about 1 MB: one MiB
    gzipped once, repeated as members (made at once; a reader counts every member)."""
    return gzip.compress(header, 9) + gzip.compress(bytes(1 << 20), 9) * ((limits.RATIO_FLOOR >> 20) + 64)


@pytest.fixture
def no_inflating(monkeypatch):  # type: ignore[no-untyped-def]
    """Fail the test if any volume data is inflated (a refusal must come from the header alone)."""
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the data was inflated before the declared size was checked")

    monkeypatch.setattr(gz, "decompress", refuse)


# ---- declared sizes, checked before anything is inflated -----------------------------------------


def test_the_issues_volume_is_refused_from_its_header(tmp_path, no_inflating) -> None:  # type: ignore[no-untyped-def]
    """An 8 MB .nii.gz declaring 2048x2048x1024 int16 zeros (8 GB): refused by the ceiling, nothing inflated."""
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(nifti1((2048, 2048, 1024), data=bytes(1 << 20)), 9))
    with pytest.raises(LimitError, match=r"2048x2048x1024 int16.*8\.0 GB declared.*--max-object-size"):
        read_volume(path)


def test_declared_beyond_the_expansion_ratio(tmp_path, no_inflating) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "v.nii.gz", nifti1((1024, 1024, 64), data=bytes(4096)))  # 128 MB from ~1 KB
    with limits.applied(STRICT), pytest.raises(LimitError, match="--max-expansion"):
        read_volume(path)
    # under the defaults, beyond the ratio's floor of 1 GB (and below the ceiling)
    path = write(tmp_path, "w.nii.gz", nifti1((1024, 1024, 640), data=bytes(4096)))  # 1.25 GB from ~1 KB
    with pytest.raises(LimitError, match=r"GB declared from .* beyond 1:200 \(--max-expansion\)"):
        read_volume(path)


def test_uncompressed_data_cannot_exceed_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "v.nii", nifti1((64, 64, 64), data=bytes(1000)))
    with pytest.raises(LimitError, match="file holds only"):
        read_volume(path)
    vox = write(tmp_path, "w.nii", put(nifti1((8, 8, 8)), 108, "<f", 1e30))  # vox_offset far beyond the file
    with pytest.raises(LimitError):
        read_volume(vox)


@pytest.mark.parametrize("img", ["head.img", "head.img.gz"])
def test_analyze_image_smaller_than_declared(tmp_path, img, no_inflating) -> None:  # type: ignore[no-untyped-def]
    hdr = nib.AnalyzeHeader()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((256, 256, 256))
    (tmp_path / "head.hdr").write_bytes(hdr.binaryblock)
    write(tmp_path, img, bytes(4096))
    with limits.applied(STRICT), \
            pytest.raises(LimitError, match="file holds only" if img == "head.img" else "--max-expansion"):
        read_volume(tmp_path / "head.hdr")


@pytest.mark.parametrize("dims", [(1 << 40, 1 << 40, 1 << 40), (1 << 32, 1 << 32, 1), (1 << 62, 4, 1)])
def test_nifti2_dimensions_do_not_overflow(tmp_path, dims) -> None:  # type: ignore[no-untyped-def]
    """64-bit dimensions whose product wraps around in int64 are still refused as too large."""
    with pytest.raises(LimitError, match="--max-object-size"):
        read_volume(write(tmp_path, "v.nii", nifti2(dims)))


def test_the_ceiling_applies_and_can_be_raised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    values = np.arange(64 ** 3, dtype=np.int16).tobytes()
    path = write(tmp_path, "v.nii.gz", nifti1((64, 64, 64), data=values))
    with limits.applied(limits.Limits(max_object_bytes=100_000)), \
            pytest.raises(LimitError, match="per-object limit of 97.7 KB"):
        read_volume(path)
    assert read_volume(path).raw.tobytes(order="F") == values


def test_defacing_within_the_ceiling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Read within the ceiling, but its defacing (about 16 bytes a voxel) would not be."""
    path = write(tmp_path, "v.nii.gz", nifti1((64, 64, 64), data=np.arange(64 ** 3, dtype=np.int16).tobytes()))
    with limits.applied(limits.Limits(max_object_bytes=2_000_000)):
        assert read_volume(path).raw.shape == (64, 64, 64)
        with pytest.raises(LimitError, match=r"defacing 64x64x64 voxels.*--max-object-size"):
            deidentify_volume(path, Keyring(SECRET))


def test_minc_declared_size_is_checked() -> None:
    data_dir = Path(nib.__file__).parent / "tests" / "data"
    if not (data_dir / "minc2_1_scale.mnc").exists():
        pytest.skip("nibabel's MINC test files are not installed")
    for name in ("minc1_1_scale.mnc", "minc2_1_scale.mnc"):
        assert read_volume(data_dir / name).raw.shape == (10, 20, 20)
        with limits.applied(limits.Limits(max_object_bytes=20_000)), \
                pytest.raises(LimitError, match=r"10x20x20 uint8.*float64.*--max-object-size"):
            read_volume(data_dir / name)


def test_a_dicom_series_stack_is_checked_before_its_slices_are_decoded() -> None:
    from medcloak.formats.dicom_series import stack

    def ds(z: float) -> SimpleNamespace:
        s = SimpleNamespace(Rows=65535, Columns=65535, ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                            PixelSpacing=[1, 1], ImagePositionPatient=[0, 0, z], BitsAllocated=16)
        s.get = lambda key, default=None: getattr(s, key, default)  # type: ignore[attr-defined]
        return s

    with pytest.raises(LimitError, match=r"65535x65535x10.*--max-object-size"):
        stack([ds(z) for z in range(10)])  # a slice has no pixel_array: reaching it would fail otherwise


# ---- gzip: bounded chunks and a running limit ----------------------------------------------------


def test_a_gzip_bomb_behind_a_modest_header_is_refused_as_it_inflates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A valid 16^3 header whose stream goes on with 64 MB of zeros: the running limit stops it,
    holding no more than a few chunks at a time."""
    for members in (1, 32):  # one member, or many small members counted together
        path = tmp_path / f"bomb{members}.nii.gz"
        path.write_bytes(zeros_gz(nifti1((16, 16, 16)), 64 << 20, members))
        assert path.stat().st_size < (64 << 20) // 500
        tracemalloc.start()
        try:
            with limits.applied(STRICT), pytest.raises(LimitError, match="--max-expansion"):
                read_volume(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20, peak


def test_a_stream_longer_than_declared_keeps_only_the_declared_bytes() -> None:
    blob = gzip.compress(b"h" * 100 + bytes(range(256)) * 1000)
    assert gz.decompress(blob, keep=100) == b"h" * 100
    assert gz.decompress(blob, keep=10 ** 9) == gzip.decompress(blob)  # shorter than kept: all of it
    assert gz.head(blob, 5) == b"hhhhh"


@pytest.mark.parametrize("codec", ["isal", "zlib"])
def test_chunked_inflating_equals_the_whole(codec, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    if codec == "zlib":
        monkeypatch.setattr(gz, "_isal", lambda: None)
    elif gz.codec() != "isal":
        pytest.skip("isal is not installed")
    rng = random.Random(15)
    for _ in range(60):
        monkeypatch.setattr(gz, "IN_CHUNK", rng.choice([1, 7, 300, 1 << 20]))
        monkeypatch.setattr(gz, "OUT_CHUNK", rng.choice([1, 13, 4000, 1 << 20]))
        members = [bytes(rng.getrandbits(8) if rng.random() < 0.3 else 0 for _ in range(rng.randrange(0, 5000)))
                   for _ in range(rng.randrange(1, 4))]
        blob = b"".join(gzip.compress(m, rng.choice([1, 6, 9])) for m in members) + rng.choice([b"", b"\x00" * 7])
        whole = b"".join(members)
        keep = rng.randrange(0, len(whole) + 9)
        assert gz.decompress(blob) == whole
        assert gz.decompress(blob, keep=keep) == whole[:keep]
        assert gz.head(blob, keep) == whole[:keep]
        for broken in (blob.rstrip(b"\x00")[:-1], blob + b"junk", blob[:11]):
            with pytest.raises(CorruptInputError):
                gz.decompress(broken)


def test_a_compressed_table_bomb_in_a_bids_dataset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats import bids

    bomb = zeros_gz(b"onset\tduration\n", 32 << 20)
    with limits.applied(STRICT), pytest.raises(LimitError, match="table's gzip stream.*--max-expansion"):
        bids.table(bomb, "sub-01_task-rest_events.tsv.gz", "01", None, Keyring(SECRET),
                   bids.Dataset("k", frozenset({"01"})))


# ---- hostile headers: a typed reason, never an internal error ------------------------------------

GOOD = nifti1((40, 40, 40), data=(np.random.default_rng(0).random(64000) * 1000).astype(np.int16).tobytes())


def _dims(*dims: int) -> bytes:
    return GOOD[:40] + struct.pack("<8h", *dims, *([1] * (8 - len(dims)))) + GOOD[56:]


def _extension(esize: int) -> bytes:
    head = bytearray(GOOD[:352])
    head[348] = 1
    return put(bytes(head) + struct.pack("<ii", esize, 6) + b"x" * 8 + GOOD[352:], 108, "<f", 368.0)


HOSTILE = {
    "negative dimension": (_dims(3, 40, -40, 40), CorruptInputError),
    "zero dimension": (_dims(3, 40, 0, 40), CorruptInputError),
    "dim[0] zero": (_dims(0, 40, 40, 40), CorruptInputError),
    "dim[0] nine": (_dims(9, 40, 40, 40), CorruptInputError),
    "dim[0] negative": (_dims(-3, 40, 40, 40), CorruptInputError),
    "huge dimensions": (_dims(3, 32767, 32767, 32767), LimitError),
    "vox_offset NaN": (put(GOOD, 108, "<f", float("nan")), CorruptInputError),
    "vox_offset negative": (put(GOOD, 108, "<f", -100.0), CorruptInputError),
    "pixdim NaN": (put(GOOD, 80, "<f", float("nan")), CorruptInputError),
    "quaternion NaN": (put(GOOD, 256, "<f", float("nan")), CorruptInputError),
    "unknown data type": (put(GOOD, 70, "<h", 999), CorruptInputError),
    "extension beyond the file": (_extension(0x7FFFFFF0), CorruptInputError),
    "extension of negative size": (_extension(-16), CorruptInputError),
    "extension overrunning the data": (_extension(24), CorruptInputError),
    # what the defacer cannot take: refused before it (pixdim 1e38 overflowed its distances)
    "pixdim 1e38": (put(GOOD, 80, "<f", 1e38), UnsupportedInputError),
    "RGB values": (put(put(GOOD, 70, "<h", 128), 72, "<h", 24) + bytes(64000), UnsupportedInputError),
    "complex values": (put(put(GOOD, 70, "<h", 32), 72, "<h", 64) + bytes(64000 * 6), UnsupportedInputError),
    "scl_slope 1e38": (put(GOOD, 112, "<f", 1e38), UnsupportedInputError),
    "scl_inter 1e9": (put(put(GOOD, 112, "<f", 1.0), 116, "<f", 1e9), DeidentificationError),
    "NaN values": (nifti1((40, 40, 40), np.float32, np.full(64000, np.nan, np.float32).tobytes()),
                   UnsupportedInputError),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz"])
def test_hostile_headers_end_with_a_typed_reason(tmp_path, case, name) -> None:  # type: ignore[no-untyped-def]
    blob, error = HOSTILE[case]
    path = write(tmp_path, name, blob)
    with pytest.raises(MedcloakError) as info:
        deidentify_volume(path, Keyring(SECRET))
    assert isinstance(info.value, error), (case, info.value)


def test_a_run_quarantines_them_naming_the_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in"
    src.mkdir()
    (src / "bomb.nii.gz").write_bytes(gzip.compress(nifti1((2048, 2048, 1024), data=bytes(1 << 16)), 9))
    (src / "bomb2.nii.gz").write_bytes(zeros_beyond_the_floor(nifti1((16, 16, 16))))
    write(src, "ext.nii", _extension(0x7FFFFFF0))
    write(src, "pixdim.nii.gz", put(GOOD, 80, "<f", 1e38))
    (tmp_path / "key").write_bytes(SECRET)
    # the ceiling as on a machine of 4 GB per worker (the default is the worker's share of this one's)
    summary = run([src], tmp_path / "out", secret_file=tmp_path / "key", max_object_size=limits.MAX_OBJECT_BYTES)
    assert summary.ok == 0
    lines = (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()
    reasons = {Path(r["input"]).name: r["reason"] for r in map(json.loads, lines)}
    assert len(reasons) == 4 and not any("internal error" in r for r in reasons.values()), reasons
    assert sum("--max-object-size" in r for r in reasons.values()) == 1, reasons
    assert sum("--max-expansion" in r for r in reasons.values()) == 1, reasons


# ---- real volumes: read and released as before ---------------------------------------------------


def _reads_as_before(path: Path) -> None:
    """Read as nibabel reads it under the defaults. A brain mask (mostly zeros: 1:238 to 1:283
    gzipped) is beyond the expansion ratio of 1:200 but far below its floor of 1 GB: the ratio
    alone (a floor of 0) refuses it."""
    _same_as_nibabel(path)
    if "brainmask" in path.name:
        with limits.applied(STRICT), pytest.raises(LimitError, match="--max-expansion"):
            read_volume(path)


def _same_as_nibabel(path: Path) -> None:
    vol = read_volume(path)
    img = nib.load(path)
    stored = np.asarray(img.dataobj.get_unscaled())
    assert vol.raw.shape == stored.shape and vol.raw.dtype == img.get_data_dtype()
    assert np.array_equal(vol.raw, stored)
    assert np.allclose(vol.affine, img.affine)


SAMPLES = sorted(p for folder in (REPO / "data_samples", REPO / "tests" / "data")
                 for p in folder.rglob("*.nii*") if p.is_file())


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_volumes_read_as_before(path) -> None:  # type: ignore[no-untyped-def]
    _reads_as_before(path)


def _shared(name: str) -> Path:
    if not use_shared() or not (SHARED / name).is_file():
        pytest.skip("no ../shared/data/heads (or MEDCLOAK_TEST_NO_SHARED=1)")
    return SHARED / name


@pytest.mark.parametrize("name", sorted(n for n in HEADS if not n.startswith(("tpl-", "MNI152"))))
def test_shared_heads_read_as_before(name) -> None:  # type: ignore[no-untyped-def]
    _reads_as_before(_shared(name))


def test_a_real_head_is_still_defaced_and_released(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _shared("robex_atlas.nii.gz")
    result = deidentify_volume(path, Keyring(SECRET))
    assert result.qc["status"] == "defaced"
    out = tmp_path / "out.nii.gz"
    out.write_bytes(result.released.data)
    assert nib.load(out).shape == nib.load(path).shape


def test_no_shared_data_skips_cleanly(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEDCLOAK_TEST_NO_SHARED", "1")
    with pytest.raises(pytest.skip.Exception):
        _shared("robex_atlas.nii.gz")
    assert os.environ["MEDCLOAK_TEST_NO_SHARED"] == "1"
