"""Defacing multi-frame CT, MR and PET objects under Clean Recognizable Visual Features
(:mod:`medcloak.formats.dicom_multiframe`).

How the objects are made: ROBEX's atlas (a real head with its face; tests/shared_data.py) taken one
voxel in three along each axis (52 axial slices of 50 x 39 pixels, to keep the runs short) is
written as a native single-frame MR series by ``test_deface._mr_series``; the same slices (the same
positions, orientation and spacing) are then put together as one Enhanced MR (or Legacy Converted
Enhanced MR) object by :func:`_enhanced`, with its functional groups (Pixel Measures, Plane
Orientation shared; Plane Position, Frame Content with Stack ID, In-Stack Position and Dimension
Index Values, MR Echo per frame), two echoes (the second: the first's values times 0.6, rounded) and
its frames in a shuffled order. The Enhanced CT is made the same way from
``test_deface.synthetic_ct`` of that head, stored as HU + 1024 with its rescale in each frame's
Pixel Value Transformation; the Enhanced PET from ``test_deface.synthetic_pet``. Encapsulated
copies: RLE Lossless and JPEG-LS lossless by pydicom (pyjpegls), HTJ2K lossless (RPCL) and JPEG
lossless SV1 by imagecodecs (OpenJPH, libjpeg-turbo), one fragment per frame.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import SECRET
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from test_deface import _mr_series, load, synthetic_ct, synthetic_pet

from medcloak.engine import run
from medcloak.formats.dicom_series import stack
from medcloak.pixels.deface import deface_mask, fill_value

OPTION = ["clean-recognizable-visual-features"]
STEP = 3
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
LEGACY_MR = "1.2.840.10008.5.1.4.1.1.4.4"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_PET = "1.2.840.10008.5.1.4.1.1.130"
RLE = "1.2.840.10008.1.2.5"
JPEG_LS = "1.2.840.10008.1.2.4.80"
HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
JPEG_70 = "1.2.840.10008.1.2.4.70"


def _key(folder: Path) -> Path:
    key = folder / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return key


def _rows(out: Path) -> list[dict]:
    audit = out.parent / (out.name + ".audit")
    return [json.loads(line) for line in (audit / "manifest.jsonl").read_text().splitlines()]


def _item(**values) -> Dataset:  # type: ignore[no-untyped-def]
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _enhanced(slices: list[Dataset], echoes: list[np.ndarray], path: Path, sop: str = ENHANCED_MR,
              modality: str = "MR", rescale: tuple[float, float] | None = None, seed: int = 5,
              faces: str | None = None) -> list[tuple[int, int]]:
    """One multi-frame object at ``path`` made from the single-frame ``slices`` (their geometry)
    with the stored values ``echoes`` (one (rows, columns, slices) array an echo), frames shuffled.
    Returns (echo, slice) of each frame in the file's order."""
    first = slices[0]
    ds = copy.deepcopy(first)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
                    "SliceLocation", "InstanceNumber", "RescaleIntercept", "RescaleSlope", "EchoTime"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1143.79.1"
    ds.Modality = modality
    del ds.RecognizableVisualFeatures  # absent by default: the common case
    if faces is not None:
        ds.RecognizableVisualFeatures = faces
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"] if modality == "MR" else ["ORIGINAL", "PRIMARY", "AXIAL"]
    order = [(e, k) for e in range(len(echoes)) for k in range(len(slices))]
    np.random.default_rng(seed).shuffle(order)
    ds.NumberOfFrames = len(order)
    ds.DimensionOrganizationSequence = Sequence([_item(DimensionOrganizationUID="1.2.826.0.1.3680043.2.1143.79.2")])
    pointers = [(0x00209056, 0x00209111), (0x00209057, 0x00209111), (0x00189082, 0x00189114)]
    ds.DimensionIndexSequence = Sequence([
        _item(DimensionOrganizationUID="1.2.826.0.1.3680043.2.1143.79.2", DimensionIndexPointer=p,
              FunctionalGroupPointer=g) for p, g in pointers])
    shared = _item(
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=first.PixelSpacing, SliceThickness=first.SliceThickness)]),
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=first.ImageOrientationPatient)]),
    )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    for e, k in order:
        group = _item(
            FrameContentSequence=Sequence([_item(StackID="1", InStackPositionNumber=k + 1,
                                                 DimensionIndexValues=[1, k + 1, e + 1])]),
            PlanePositionSequence=Sequence([_item(ImagePositionPatient=slices[k].ImagePositionPatient)]),
        )
        if modality == "MR":
            group.MREchoSequence = Sequence([_item(EffectiveEchoTime=10.0 + 20 * e)])
        if rescale is not None:
            group.PixelValueTransformationSequence = Sequence([_item(
                RescaleIntercept=rescale[1], RescaleSlope=rescale[0], RescaleType="HU")])
        per.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = np.stack([echoes[e][..., k] for e, k in order]).astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return order


def _encoded(src: Path, dst: Path, ts: str) -> None:
    ds = pydicom.dcmread(src)
    if ts in (RLE, JPEG_LS):
        ds.compress(ts, generate_instance_uid=False)
    else:
        from test_dicom_lossless_routes import encode_frame

        from medcloak.pixels.j2k_meta import clean_frame

        # JPEG lossless: the bit pattern of the signed values; HTJ2K without OpenJPH's comment
        frames = [encode_frame(f, ts, 16, True) if ts == JPEG_70 else clean_frame(encode_frame(f, ts, 16, False))[0]
                  for f in ds.pixel_array]
        ds.PixelData = encapsulate(frames, has_bot=True)
        ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
        ds.file_meta.TransferSyntaxUID = ts
    ds.save_as(dst, enforce_file_format=True)


def _frames(ds: Dataset) -> list[bytes]:
    count = int(ds.NumberOfFrames)
    if not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        size = len(ds.PixelData) // count
        return [ds.PixelData[i * size:(i + 1) * size] for i in range(count)]
    return list(generate_frames(ds.PixelData, number_of_frames=count))


@pytest.fixture(scope="module")
def mr(tmp_path_factory):  # type: ignore[no-untyped-def]
    """(base folder, single-frame slices, stored echo 1 and 2, the series' mask, the series'
    released stored values (rows, columns, slices))."""
    base = tmp_path_factory.mktemp("mr")
    data, affine = load("robex_atlas.nii.gz")
    s = STEP
    stored, slices = _mr_series(base / "series", data[::s, ::s, ::s], affine @ np.diag([s, s, s, 1.0]))
    for p in (base / "series").iterdir():  # Recognizable Visual Features absent, as in the object
        ds = pydicom.dcmread(p)
        del ds.RecognizableVisualFeatures
        ds.save_as(p, enforce_file_format=True)
    summary = run([base / "series"], base / "series-out", secret_file=_key(base), options=OPTION)
    assert summary.ok == len(slices) and summary.quarantined == 0
    out = sorted((pydicom.dcmread(p) for p in (base / "series-out").rglob("*.dcm")),
                 key=lambda ds: float(ds.ImagePositionPatient[2]))
    released = np.stack([ds.pixel_array for ds in out], axis=-1)
    order, restacked, affine_s = stack(slices)
    assert order == list(range(len(slices))) and np.array_equal(restacked, stored)
    mask = deface_mask(stored.astype(np.float32), affine_s, "MR").mask
    assert mask is not None and mask.any()
    second = np.round(stored * 0.6).astype(np.int16)
    return base, slices, stored, second, mask, released


def test_a_defaced_series_gets_its_qc_picture(mr) -> None:  # type: ignore[no-untyped-def]
    """The single-frame series run by the fixture: one QC picture, as a volume's, named in the
    review record of one defaced slice."""
    base = mr[0]
    rows = _rows(base / "series-out")
    named = [r["review"]["pixels"]["picture"] for r in rows if (r["review"].get("pixels") or {}).get("picture")]
    assert len(named) == 1 and (base / "series-out.audit" / named[0]).is_file()
    assert len(list((base / "series-out.audit" / "qc").iterdir())) == 1


def _check_dciodvfy(out: Path, src: Path) -> None:
    import shutil

    if shutil.which("dciodvfy"):
        from conftest import dciodvfy_errors

        assert dciodvfy_errors(out) - dciodvfy_errors(src) == set()


@pytest.mark.parametrize(("sop", "ts"), [(ENHANCED_MR, None), (ENHANCED_MR, RLE), (ENHANCED_MR, HTJ2K_RPCL),
                                         (ENHANCED_MR, JPEG_LS), (ENHANCED_MR, JPEG_70), (LEGACY_MR, None)])
def test_enhanced_mr_defaced_as_its_series(mr, tmp_path, sop, ts) -> None:  # type: ignore[no-untyped-def]
    from medcloak.cli import main

    _base, slices, stored, second, mask, released = mr
    native = tmp_path / ("in" if ts is None else "made") / "enhanced.dcm"
    order = _enhanced(slices, [stored, second], native, sop=sop)
    src = native
    if ts is not None:
        src = tmp_path / "in" / "enhanced.dcm"
        src.parent.mkdir()
        _encoded(native, src, ts)
    summary = run([src.parent], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 1 and summary.quarantined == 0
    (row,) = _rows(tmp_path / "out")
    assert row["actions"].get("multiframe-defaced") == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds, old = pydicom.dcmread(path), pydicom.dcmread(src)
    assert str(ds.file_meta.TransferSyntaxUID) == str(old.file_meta.TransferSyntaxUID)
    assert ds.RecognizableVisualFeatures == "NO"
    assert "113102" in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    frames, new_bytes, old_bytes = ds.pixel_array, _frames(ds), _frames(old)
    background = fill_value(second, mask, "MR", 1.0, 0.0)
    touched = 0
    for f, (e, k) in enumerate(order):
        if e == 0:  # the first echo: as the single-frame series was released
            assert np.array_equal(frames[f], released[..., k])
        else:  # the second: the same mask, its own background
            assert np.array_equal(frames[f], np.where(mask[..., k], background, second[..., k]))
        if mask[..., k].any():
            touched += 1
            assert new_bytes[f] != old_bytes[f]
        else:  # a frame the mask misses keeps its bytes
            assert new_bytes[f] == old_bytes[f]
    assert 0 < touched < len(order)
    assert main(["verify", str(tmp_path / "out")]) == 0
    # the review record and the QC picture, as a series' and a volume's
    assert row["review"]["pixels"]["change"] == "defaced"
    assert (tmp_path / "out.audit" / row["review"]["pixels"]["picture"]).is_file()
    if ts != HTJ2K_RPCL:  # this dciodvfy does not know the HTJ2K syntaxes
        _check_dciodvfy(path, src)


def test_enhanced_ct_defaced(mr, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An Enhanced CT (HU + 1024 stored, its rescale per frame), one volume, Recognizable Visual
    Features YES: the removed voxels -1024 HU, every other stored value kept, NO written."""
    from medcloak.cli import main

    _base, _slices, _stored, _second, _mask, _released = mr
    data, affine = load("robex_atlas.nii.gz")
    s = STEP
    small_affine = affine @ np.diag([s, s, s, 1.0])
    ct = synthetic_ct(data[::s, ::s, ::s], small_affine)
    ct_stored, ct_slices = _mr_series(tmp_path / "ct-slices", ct + 1024, small_affine)
    _o, _r, ct_affine = stack(ct_slices)
    expected_mask = deface_mask(ct_stored.astype(np.float32) - 1024, ct_affine, "CT").mask
    assert expected_mask is not None and expected_mask.any()
    src = tmp_path / "in" / "ct.dcm"
    order = _enhanced(ct_slices, [ct_stored], src, sop=ENHANCED_CT, modality="CT", rescale=(1.0, -1024.0),
                      faces="YES")
    summary = run([src.parent], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 1 and summary.quarantined == 0, _rows(tmp_path / "out")
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    assert ds.RecognizableVisualFeatures == "NO"
    for f, (_e, k) in enumerate(order):
        assert np.array_equal(ds.pixel_array[f], np.where(expected_mask[..., k], 0, ct_stored[..., k]))
    assert main(["verify", str(tmp_path / "out")]) == 0
    _check_dciodvfy(path, src)


def test_enhanced_pet_defaced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An Enhanced PET (test_deface.synthetic_pet of the head, stored to 30000 with a Rescale Slope
    per frame), two time points (the second: half the first): one mask, each filled with its own
    background."""
    data, affine = load("robex_atlas.nii.gz")
    s = STEP
    small_affine = affine @ np.diag([s, s, s, 1.0])
    pet = synthetic_pet(data[::s, ::s, ::s], small_affine)
    slope = float(pet.max()) / 30000
    first, pet_slices = _mr_series(tmp_path / "pet-slices", np.round(pet / slope), small_affine)
    second = (first // 2).astype(np.int16)
    _o, _r, pet_affine = stack(pet_slices)
    mask = deface_mask(first.astype(np.float32) * np.float32(slope), pet_affine, "PT").mask
    assert mask is not None and mask.any()
    src = tmp_path / "in" / "pet.dcm"
    order = _enhanced(pet_slices, [first, second], src, sop=ENHANCED_PET, modality="PT", rescale=(slope, 0.0))
    summary = run([src.parent], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 1 and summary.quarantined == 0, _rows(tmp_path / "out")
    (path,) = (tmp_path / "out").rglob("*.dcm")
    frames = pydicom.dcmread(path).pixel_array
    for t, volume in enumerate((first, second)):
        background = fill_value(volume, mask, "PT", 1.0, 0.0)
        for f in [f for f, (e, _k) in enumerate(order) if e == t]:
            k = order[f][1]
            assert np.array_equal(frames[f], np.where(mask[..., k], background, volume[..., k]))


def _edit(src: Path, dst: Path, change) -> None:  # type: ignore[no-untyped-def]
    ds = pydicom.dcmread(src)
    change(ds)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)


def _no_position(ds: Dataset) -> None:
    del ds.PerFrameFunctionalGroupsSequence[7].PlanePositionSequence


def _tilted(ds: Dataset) -> None:
    ds.PerFrameFunctionalGroupsSequence[7].PlaneOrientationSequence = Sequence([_item(
        ImageOrientationPatient=[1, 0, 0, 0, 0.8, 0.6])])


def _uneven(ds: Dataset) -> None:
    for group in ds.PerFrameFunctionalGroupsSequence:
        position = group.PlanePositionSequence[0]
        z = float(position.ImagePositionPatient[2])
        if z > 0:
            position.ImagePositionPatient = [*position.ImagePositionPatient[:2], z + 5.0]


def _lossy(ds: Dataset) -> None:
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"] * int(ds.NumberOfFrames), has_bot=True)
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelRepresentation = 0


def _unbalanced(ds: Dataset) -> None:  # one frame moved onto another echo's position twice
    ds.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence = copy.deepcopy(
        ds.PerFrameFunctionalGroupsSequence[4].PlanePositionSequence)


@pytest.mark.parametrize(("change", "reason"), [
    (_no_position, "without Image Position (Patient)"),
    (_tilted, "different orientations"),
    (_uneven, "not evenly spaced"),
    (_lossy, "lossy transfer syntax"),
    (_unbalanced, "cannot be stacked"),
])
def test_a_head_that_cannot_be_stacked_is_quarantined(mr, tmp_path, change, reason) -> None:  # type: ignore[no-untyped-def]
    _base, slices, stored, second, _mask, _released = mr
    made = tmp_path / "made.dcm"
    _enhanced(slices, [stored, second], made)
    _edit(made, tmp_path / "in" / "object.dcm", change)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 0 and summary.quarantined == 1
    (row,) = _rows(tmp_path / "out")
    assert row["reason"].startswith("multi-frame: ") and reason in row["reason"], row["reason"]
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_a_stack_at_too_few_positions_is_quarantined(mr, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Five positions of two echoes: ten frames, but too few planes for a head to be defaced."""
    _base, slices, stored, second, _mask, _released = mr
    _enhanced(slices[20:25], [stored[..., 20:25], second[..., 20:25]], tmp_path / "in" / "object.dcm")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.quarantined == 1
    assert "only 5 position(s), too few to deface" in _rows(tmp_path / "out")[0]["reason"]


def test_the_profiles_reasons_stay_the_objects(mr, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A defaced head quarantined by the profile (Burned In Annotation YES, no Clean Pixel Data):
    the reason is the profile's, as for any object, not the defacing's."""
    _base, slices, stored, second, _mask, _released = mr
    made = tmp_path / "made.dcm"
    _enhanced(slices, [stored, second], made)
    _edit(made, tmp_path / "in" / "object.dcm", lambda ds: setattr(ds, "BurnedInAnnotation", "YES"))
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.quarantined == 1
    assert _rows(tmp_path / "out")[0]["reason"] == "Burned In Annotation is not NO: needs --option clean-pixel-data"


def _knee(ds: Dataset) -> None:
    ds.BodyPartExamined = "KNEE"


def _abdomen(ds: Dataset) -> None:
    del ds.BodyPartExamined
    ds.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = Sequence([_item(
        FrameLaterality="U", AnatomicRegionSequence=Sequence([_item(
            CodeValue="818981001", CodingSchemeDesignator="SCT", CodeMeaning="Abdomen")]))])


@pytest.mark.parametrize("change", [_knee, _abdomen])
def test_not_a_head_released_as_it_is(mr, tmp_path, change) -> None:  # type: ignore[no-untyped-def]
    """Body Part Examined or the frames' anatomic region names another part (even one that fails
    to stack: here a frame without its position): released as it is, and the manifest says so."""
    _base, slices, stored, second, _mask, _released = mr
    made = tmp_path / "made.dcm"
    _enhanced(slices, [stored, second], made)
    _edit(made, tmp_path / "in" / "object.dcm", lambda ds: (change(ds), _no_position(ds)))
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 1 and summary.quarantined == 0
    (row,) = _rows(tmp_path / "out")
    assert row["actions"].get("multiframe-not-a-head") == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(tmp_path / "in" / "object.dcm").pixel_array)
    assert "113102" not in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}


def test_a_body_without_a_head_released_as_no_head(mr, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An Enhanced CT of a torso (a soft-tissue cylinder with a spine, as test_deface's), no body
    part named: the defacer finds no head; released as it is, ``multiframe-no-head``."""
    ct = np.full((60, 80, 30), -1000.0, np.float32)  # R-L, A-P, S-I at 3 mm
    x, y = np.ogrid[:60, :80]
    body = ((x - 30) / 25.0) ** 2 + ((y - 40) / 35.0) ** 2 < 1
    ct[body] = 40
    ct[27:33, 60:66] = 700  # the spine
    stored, slices = _mr_series(tmp_path / "slices", ct + 1024, np.diag([3.0, 3.0, 3.0, 1.0]), body="")
    src = tmp_path / "in" / "body.dcm"
    _enhanced(slices, [stored], src, sop=ENHANCED_CT, modality="CT", rescale=(1.0, -1024.0))
    summary = run([src.parent], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.ok == 1
    (row,) = _rows(tmp_path / "out")
    assert row["actions"].get("multiframe-no-head") == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    assert np.array_equal(pydicom.dcmread(path).pixel_array, pydicom.dcmread(src).pixel_array)


def test_spectroscopy_has_no_image_to_deface(mr, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An MR object of frames without Pixel Data (as MR Spectroscopy holds its data): nothing to
    deface, so the defacing passes it on (``multiframe-no-image``); never quarantined for it."""
    from medcloak.formats.dicom_multiframe import deface_frames

    _base, slices, stored, second, _mask, _released = mr
    made = tmp_path / "made.dcm"
    _enhanced(slices, [stored, second], made)
    ds = pydicom.dcmread(made)
    del ds.PixelData
    result = deface_frames(ds)
    assert not result.faces and result.report["status"] == "no image"


def test_without_the_option_nothing_changes(mr, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _base, slices, stored, second, _mask, _released = mr
    _enhanced(slices, [stored, second], tmp_path / "yes" / "object.dcm", faces="YES")
    summary = run([tmp_path / "yes"], tmp_path / "o1", secret_file=_key(tmp_path))
    assert summary.quarantined == 1  # Recognizable Visual Features YES, as before
    assert "Recognizable Visual Features = YES" in _rows(tmp_path / "o1")[0]["reason"]
    src = tmp_path / "in" / "object.dcm"
    _enhanced(slices, [stored, second], src)
    summary = run([src.parent], tmp_path / "out", secret_file=_key(tmp_path))
    assert summary.ok == 1
    (path,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(path)
    assert np.array_equal(ds.pixel_array, pydicom.dcmread(src).pixel_array)
    assert "RecognizableVisualFeatures" not in ds
    (row,) = _rows(tmp_path / "out")
    assert not any(k.startswith("multiframe-") for k in row["actions"])


MULTIFRAME_FILES = ["eCT_Supplemental.dcm", "emri_small.dcm", "emri_small_RLE.dcm", "emri_small_big_endian.dcm",
                    "emri_small_jpeg_2k_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm"]


def test_pydicom_multiframe_files(tmp_path) -> None:
    """pydicom's and pydicom-data's multi-frame CT and MR objects: each released as no head to
    deface or quarantined with a reason, never an internal error. (eCT_Supplemental: 2 frames of
    the brain, too few for a head; emri_small: an Enhanced MR of the head whose functional groups
    were removed: no frame positions.)"""
    import shutil

    from pydicom.data import get_testdata_file

    (tmp_path / "in").mkdir()
    for name in MULTIFRAME_FILES:
        path = get_testdata_file(name)  # pydicom's or pydicom-data's (a test dependency)
        assert path is not None, f"{name} is not available: install pydicom-data"
        shutil.copy(path, tmp_path / "in" / name)
    run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    rows = {Path(r["input"]).name: r for r in _rows(tmp_path / "out")}
    assert rows["eCT_Supplemental.dcm"]["status"] == "ok"
    assert rows["eCT_Supplemental.dcm"]["actions"].get("multiframe-too-few-frames") == 1
    for name in MULTIFRAME_FILES[1:]:
        assert rows[name]["status"] == "quarantined"
        assert rows[name]["reason"] == ("multi-frame: frames without Image Position (Patient): the multi-frame "
                                        "object cannot be stacked")


@pytest.mark.parametrize(("names", "head"), [
    ([""], True), (["HEAD"], True), (["KNEE"], False), (["", "Abdomen"], False), (["", "Entire head"], True),
    (["", "Entire body"], True), (["", "Entire knee"], False), (["", "Head and Neck"], True), (["KNEE", "Brain"], True),
])
def test_which_named_parts_may_be_a_head(names, head) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.dicom_series import head_parts

    assert head_parts(names) is head



def _missing_group(ds: Dataset) -> None:
    del ds.PerFrameFunctionalGroupsSequence[-1]


def _short_position(ds: Dataset) -> None:
    ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0].ImagePositionPatient = [1.0, 2.0]


@pytest.mark.parametrize(("change", "reason"), [
    (_missing_group, "per-frame functional groups for 104 frames"),
    (_short_position, "no usable Image Position (Patient)"),
])
def test_malformed_functional_groups_are_quarantined(mr, tmp_path, change, reason) -> None:  # type: ignore[no-untyped-def]
    """Functional groups missing, or a position of two numbers: quarantined with the reason,
    never an internal error."""
    _base, slices, stored, second, _mask, _released = mr
    made = tmp_path / "made.dcm"
    _enhanced(slices, [stored, second], made)
    _edit(made, tmp_path / "in" / "object.dcm", change)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path), options=OPTION)
    assert summary.quarantined == 1
    got = _rows(tmp_path / "out")[0]["reason"]
    assert got.startswith("multi-frame: ") and reason in got, got
