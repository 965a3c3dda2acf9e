"""Series defacing (Clean Recognizable Visual Features) of JPEG lossless (.57, .70) and HTJ2K
lossless (.201, .202) series.

How the series are made: ROBEX's atlas (a real head with its face; tests/shared_data.py) taken one
voxel in three along each axis (52 axial slices of 50 x 39 pixels: small, to keep the run short),
written as a native MR series by ``test_deface._mr_series``, then each slice's frame encoded with
imagecodecs (``test_dicom_lossless_routes.encode_frame``: libjpeg-turbo for JPEG lossless, here
with predictor 6 for .57; OpenJPH for HTJ2K, signed, its version comment removed). The native
series run gives the expected defaced stored values; each encoded series must give exactly those,
in its own syntax.
"""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs as ic
import numpy as np
import pydicom
import pytest
from conftest import SECRET
from pydicom.encaps import encapsulate, generate_frames
from test_deface import _mr_series, load
from test_dicom_lossless_routes import HTJ2K, HTJ2K_RPCL, JPEG_57, JPEG_70, encode_frame

from medcloak.engine import run
from medcloak.pixels.j2k_meta import clean_frame

OPTION = ["clean-recognizable-visual-features"]
STEP = 3


def _key(folder: Path) -> Path:
    key = folder / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return key


def _by_position(folder: Path) -> dict[float, Path]:
    return {float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]): p
            for p in folder.rglob("*.dcm")}


def _native(base: Path, bits: int) -> tuple[Path, dict]:
    """(folder of the native series with ``bits`` bits stored, signed, the native run's defaced
    stored values by slice position). 12 bits: the stored values less 1024 (negative, as a CT's
    are) and a Rescale Intercept of 1024."""
    data, affine = load("robex_atlas.nii.gz")
    s = STEP
    _mr_series(base / "in", data[::s, ::s, ::s], affine @ np.diag([s, s, s, 1.0]))
    if bits == 12:
        for p in (base / "in").iterdir():
            ds = pydicom.dcmread(p)
            ds.PixelData = (ds.pixel_array.astype(np.int16) - 1024).astype("<i2").tobytes()
            ds.BitsStored, ds.HighBit = 12, 11
            ds.RescaleIntercept, ds.RescaleSlope = 1024, 1  # the same real values
            ds.save_as(p, enforce_file_format=True)
    summary = run([base / "in"], base / "out", secret_file=_key(base), options=OPTION)
    assert summary.ok == len(list((base / "in").iterdir())) and summary.quarantined == 0
    values = {z: pydicom.dcmread(p).pixel_array for z, p in _by_position(base / "out").items()}
    before = {z: pydicom.dcmread(p).pixel_array for z, p in _by_position(base / "in").items()}
    changed = [z for z in values if not np.array_equal(values[z], before[z])]
    assert 0 < len(changed) < len(values)  # some slices defaced, some not
    return base / "in", values


@pytest.fixture(scope="module")
def native(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The native series and its run (:func:`_native`) by bits stored, each made once."""
    made: dict[int, tuple[Path, dict]] = {}

    def get(bits: int = 16) -> tuple[Path, dict]:
        if bits not in made:
            made[bits] = _native(tmp_path_factory.mktemp(f"native{bits}"), bits)
        return made[bits]

    return get


def _encode_series(src: Path, dst: Path, ts: str) -> None:
    dst.mkdir(parents=True)
    for p in sorted(src.iterdir()):
        ds = pydicom.dcmread(p)
        jpeg = ts in (JPEG_57, JPEG_70)
        # JPEG lossless holds the bit pattern of signed values; HTJ2K a signed codestream
        frame = encode_frame(ds.pixel_array, ts, ds.BitsStored, jpeg, predictor=6 if ts == JPEG_57 else 1)
        if not jpeg:  # without OpenJPH's comment, which every run removes: untouched frames stay as they are
            frame, _removed = clean_frame(frame)
        ds.PixelData = encapsulate([frame], has_bot=True)
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
        ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(dst / p.name, enforce_file_format=True)


def _frame(ds: pydicom.Dataset) -> bytes:
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    return frame


def _independent(ds: pydicom.Dataset, ts: str) -> np.ndarray:
    """Stored values decoded by a decoder other than the route's (jpegsof3 for JPEG lossless,
    imagecodecs' OpenJPEG for HTJ2K): libjpeg-turbo, or pydicom's pylibjpeg-openjpeg plug-in."""
    if ts in (JPEG_57, JPEG_70):
        bits = ds.BitsStored
        arr = np.asarray(ic.jpeg8_decode(_frame(ds))).astype(np.int64)
        return np.where(arr >= 1 << (bits - 1), arr - (1 << bits), arr)  # the bit pattern, signed
    from pydicom.pixels import get_decoder

    arr, _meta = get_decoder(ts).as_array(ds, decoding_plugin="pylibjpeg")
    return arr


@pytest.mark.parametrize(("ts", "bits"), [(JPEG_57, 16), (JPEG_70, 16), (HTJ2K, 16), (HTJ2K_RPCL, 16),
                                          (JPEG_57, 12), (HTJ2K_RPCL, 12)])
def test_series_defaced_in_its_own_syntax(native, tmp_path, ts, bits, dciodvfy) -> None:  # type: ignore[no-untyped-def]
    from medcloak.cli import main

    source, expected = native(bits)
    _encode_series(source, tmp_path / "in", ts)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == len(expected) and summary.quarantined == 0
    inputs, outputs = _by_position(tmp_path / "in"), _by_position(tmp_path / "out")
    assert sorted(outputs) == sorted(expected)
    touched = []
    for z, path in outputs.items():
        ds, old = pydicom.dcmread(path), pydicom.dcmread(inputs[z])
        assert str(ds.file_meta.TransferSyntaxUID) == ts
        assert ds.RecognizableVisualFeatures == "NO"
        assert np.array_equal(_independent(ds, ts), expected[z])
        if ts in (HTJ2K, HTJ2K_RPCL):  # and by OpenJPH's own decoder
            assert np.array_equal(ic.htj2k_decode(_frame(ds)), expected[z])
        new_frame, old_frame = _frame(ds), _frame(old)
        if np.array_equal(old.pixel_array, expected[z]):  # the defacing left this slice alone
            assert new_frame == old_frame
            continue
        touched.append(z)
        assert new_frame != old_frame
        if ts in (JPEG_57, JPEG_70):  # the same precision and predictor, no comment
            sof, sos = new_frame.find(b"\xff\xc3"), new_frame.find(b"\xff\xda")
            assert new_frame[sof + 4] == ds.BitsStored
            assert new_frame[sos + 5 + 2 * new_frame[sos + 4]] == (6 if ts == JPEG_57 else 1)
            assert b"\xff\xfe" not in new_frame[:sos]
        else:
            main_header = new_frame[: new_frame.find(b"\xff\x90")]
            assert b"\xff\x64" not in main_header and b"OpenJPH" not in new_frame
            if ts == HTJ2K_RPCL:  # RPCL with TLM
                cod = main_header.find(b"\xff\x52")
                assert main_header[cod + 5] == 2 and b"\xff\x55" in main_header
    assert 0 < len(touched) < len(expected)
    assert main(["verify", str(tmp_path / "out")]) == 0
    if dciodvfy and ts in (JPEG_57, JPEG_70):  # this dciodvfy does not know the HTJ2K syntaxes
        from conftest import dciodvfy_errors

        for z in touched:  # each re-encoded slice: no error dciodvfy did not find in its input
            assert dciodvfy_errors(outputs[z]) - dciodvfy_errors(inputs[z]) == set()


@pytest.mark.parametrize("ts", [JPEG_70, HTJ2K_RPCL])
def test_a_corrupt_frame_quarantines_the_series(native, tmp_path, ts) -> None:  # type: ignore[no-untyped-def]
    source, expected = native()
    _encode_series(source, tmp_path / "in", ts)
    slices = sorted((tmp_path / "in").iterdir())
    victim = slices[len(slices) // 3]  # low in the head: a slice the defacing changes
    ds = pydicom.dcmread(victim)
    frame = _frame(ds)
    ds.PixelData = encapsulate([frame[: len(frame) // 2]], has_bot=True)
    ds.save_as(victim, enforce_file_format=True)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 0 and summary.quarantined == len(expected)
    assert not list((tmp_path / "out").rglob("*.dcm"))
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    reasons = {r.get("reason", "") for r in rows}
    assert len(reasons) == 1 and "decode" in reasons.pop()


def test_a_re_encoding_that_differs_quarantines_the_series(native, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An encoder whose frame would not decode to the defaced plane (one sample off): every slice
    quarantined with the reason, nothing released."""
    from medcloak.formats import dicom_lossless

    real = dicom_lossless._encode

    def off_by_one(ic, ds, ts, image, precision, predictor):  # type: ignore[no-untyped-def]
        image = image.copy()
        image[0, 0] ^= 1
        return real(ic, ds, ts, image, precision, predictor)

    monkeypatch.setattr(dicom_lossless, "_encode", off_by_one)
    source, expected = native()
    _encode_series(source, tmp_path / "in", HTJ2K)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 0 and summary.quarantined == len(expected)
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert {r.get("reason") for r in rows} == {"series: re-encoded Pixel Data does not decode to the pixels it was given"}
