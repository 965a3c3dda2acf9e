"""The report's pixel review of issue 17's formats (:mod:`medcloak.report.volumes`,
:mod:`medcloak.report.pixels`), on a real ``medcloak run`` release made by each format's test
builder (ECAT 7 from ``ecat_sample``, PAR/REC from ``parrec_sample``, MGH/MGZ from
``test_mgh.mgh_bytes``, NRRD/NHDR from ``test_nrrd.header``, twix from ``twix_sample``), its inputs
deleted before the report is built.

Every volume gets its three projections, and they are checked against projections computed
here, independently and the obvious way, from the array another reader takes from the released
file (nibabel's ECAT, PAR/REC and MGH readers, pynrrd for NRRD): the whole first volume, turned
to the subject's axes, the maximum along each, the same window. The report's JPEG is compared with
the same panels laid out. The twix files are counted as released and not pictured, with the reason.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import SECRET
from PIL import Image
from test_report_pixels import _build, _check_files, _Page, _pixels

from medcloak.engine import run
from medcloak.errors import CorruptInputError
from medcloak.report import montage as M
from medcloak.report import pixels as P
from medcloak.report import thumbs as T
from medcloak.report import volumes as V

pynrrd = pytest.importorskip("nrrd")

#: the ECAT voxel sizes (cm, as the subheader holds them) of the file placed in space
ECAT_SIZES = (0.2, 0.3, 0.4)


def _ecat_placed() -> bytes:
    """``ecat_sample``'s file with voxel sizes in its image subheader (block 3), so that nibabel
    places it in space (the sample's are zero: it is then shown in its stored axes)."""
    import ecat_sample
    from nibabel import ecat as nib_ecat

    data = bytearray(ecat_sample.planted())
    fields = np.dtype(nib_ecat.subheader_dtd).fields
    for name, size in zip(("x_pixel_size", "y_pixel_size", "z_pixel_size"), ECAT_SIZES):
        struct.pack_into(">f", data, 1024 + fields[name][1], size)
    return bytes(data)


def make_inputs(inp: Path) -> None:
    """One input of every kind: two ECAT files, a PAR/REC pair, a head as MGZ (defaced) and a
    body as MGH, a NRRD raw and one gzip-encoded, an NHDR with its gzipped data file, and two twix
    files (VB and VD)."""
    import ecat_sample
    import parrec_sample
    import twix_sample
    from shared_data import head
    from test_mgh import _no_head as body_mgh
    from test_mgh import mgh_bytes
    from test_nrrd import _no_head as body_nrrd
    from test_nrrd import header

    inp.mkdir(parents=True)
    ecat_sample.make(inp, "pet")
    (inp / "pet_placed.v").write_bytes(_ecat_placed())
    parrec_sample.make(inp, "scan")
    img = nib.load(head("pydeface_mean_reg2mean.nii.gz"))
    (inp / "head.mgz").write_bytes(gzip.compress(mgh_bytes(np.asarray(img.dataobj).astype(np.float32),
                                                           img.affine), mtime=0))
    (inp / "body.mgh").write_bytes(mgh_bytes(body_mgh()))
    data = body_nrrd()
    (inp / "body.nrrd").write_bytes(header(data) + data.tobytes(order="F"))
    (inp / "bodyz.nrrd").write_bytes(header(data * 2, encoding="gzip") + gzip.compress((data * 2).tobytes(order="F")))
    (inp / "det.nhdr").write_bytes(header(data[::-1], encoding="gzip", data_file="det.raw.gz"))
    (inp / "det.raw.gz").write_bytes(gzip.compress(data[::-1].tobytes(order="F")))
    twix_sample.make_vb(inp / "raw_vb.dat")
    twix_sample.make_vd(inp / "raw_vd.dat")


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("research")
    make_inputs(root / "in")
    key = root / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([root / "in"], root / "out", secret_file=key, options=["clean-recognizable-visual-features"])
    assert summary.ok == 10 and summary.quarantined == 0
    shutil.rmtree(root / "in")
    return root / "out"


def _volumes(release: Path) -> dict[str, Path]:
    """The released volumes by kind: their headers (a PAR, an NHDR), never their data files."""
    found = {}
    for path in sorted(release.rglob("*")):
        low = path.name.lower()
        if low.endswith((".v", ".par", ".mgh", ".mgz", ".nrrd", ".nhdr")):
            found[path.relative_to(release).as_posix()] = path
    return found


# ---- the independent reference -----------------------------------------------------------------


def _array(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first volume of a released file as another reader reads it, whole, and its affine."""
    from nibabel.fileholders import FileHolder

    low = path.name.lower()
    if low.endswith(".v"):
        with open(path, "rb") as fh:
            img = nib.ecat.EcatImage.from_file_map({"header": FileHolder(fileobj=fh), "image": FileHolder(fileobj=fh)})
            return np.asarray(img.dataobj)[..., 0], img.affine
    if low.endswith(".par"):
        with open(path, encoding="latin-1") as head, open(path.with_suffix(".REC"), "rb") as image:
            img = nib.parrec.PARRECImage.from_file_map({"header": FileHolder(fileobj=head),
                                                        "image": FileHolder(fileobj=image)})
            return np.asarray(img.dataobj)[..., 0], img.affine
    if low.endswith(".nii.gz"):
        img = nib.Nifti1Image.from_bytes(gzip.decompress(path.read_bytes()))
        return np.asanyarray(img.dataobj)[..., 0], img.affine
    if low.endswith((".nrrd", ".nhdr")):
        data, hdr = pynrrd.read(str(path), index_order="F")
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(hdr["space directions"], float)[:3].T
        affine[:3, 3] = hdr["space origin"]
        flip = {"left-posterior-superior": (-1, -1, 1), "right-anterior-superior": (1, 1, 1)}[hdr["space"]]
        return data if data.ndim == 3 else data[..., 0], np.diag(list(flip) + [1]) @ affine
    blob = path.read_bytes()  # MGH/MGZ, from bytes: nibabel's MGH reader leaves a file it opens open
    img = nib.MGHImage.from_bytes(gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)
    data = np.asanyarray(img.dataobj)
    return data if data.ndim == 3 else data[..., 0], img.affine


def reference(path: Path) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The three projections of ``path``'s first volume: the whole array turned to RAS, the
    maximum along R, A and S, superior (anterior) up, one window; with each panel's size in
    square pixels of the finest voxel size."""
    data, affine = _array(path)
    data = np.abs(data) if np.iscomplexobj(data) else data
    data = np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        affine = np.eye(4)
    ornt = nib.orientations.io_orientation(affine)
    data = nib.orientations.apply_orientation(data, ornt)
    sizes = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    zooms = np.empty(3)
    zooms[ornt[:, 0].astype(int)] = sizes
    mips = [data.max(axis=0).T[::-1], data.max(axis=1).T[::-1], data.max(axis=2).T[::-1]]
    sample = np.concatenate([m[:: max(1, m.shape[0] // 128), :: max(1, m.shape[1] // 128)].ravel() for m in mips])
    lo, hi = np.percentile(sample, (0.5, 99.5))
    finest = max(float(zooms.min()), 1e-3)
    out = []
    for mip, (dx, dy) in zip(mips, [(zooms[1], zooms[2]), (zooms[0], zooms[2]), (zooms[0], zooms[1])]):
        grey = np.clip((mip - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
        out.append((grey, (max(1, round(mip.shape[1] * dx / finest)), max(1, round(mip.shape[0] * dy / finest)))))
    return out


def _laid_out(panels: list[tuple[np.ndarray, tuple[int, int]]]) -> np.ndarray:
    """The report's picture of these panels, laid out as the report lays them out."""
    images = [M.fit(M.resize(M.image(grey), *space), P.PANEL, P.PANEL, grow=True) for grey, space in panels]
    return np.asarray(M.row(images)).astype(int)


# ---- the tests ----------------------------------------------------------------------------------


def test_every_volume_pictured_as_another_reader_reads_it(release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    section, ctx, page = _build(release, tmp_path)
    _check_files(section, ctx)
    volumes = _volumes(release)
    assert sorted(p.rsplit(".", 1)[-1].lower() for p in volumes) == ["mgh", "mgz", "nhdr", "nrrd", "nrrd", "par",
                                                                     "v", "v"]
    series = {cap.rsplit(" (", 1)[0]: imgs[0] for cls, imgs, cap in page.figures if cls == "pixels-series"}
    assert set(series) == set(volumes) and not page.items  # every volume pictured, none failed
    for relpath, path in volumes.items():
        expected = reference(path)
        got = T.volume_projections(path)
        for (grey, space), pic in zip(expected, got, strict=True):
            # the same grey levels (within one: the window's arithmetic may round apart)
            assert np.abs(pic.pixels.astype(int) - grey).max() <= 1 and pic.space == space, relpath
        assert grey.std() > 10, relpath  # a picture of something, not a blank panel
        shown = _pixels(ctx, series[relpath]["src"])
        laid = _laid_out(expected)
        assert shown.shape == laid.shape, relpath
        assert np.abs(shown - laid).mean() < 4, relpath  # the JPEG of these very panels
        assert series[relpath]["alt"].startswith("maximum intensity projections")


def test_ecat_placed_in_space_and_par_rec_first_volume(release) -> None:  # type: ignore[no-untyped-def]
    """The ECAT file with voxel sizes gets panels of its physical aspect (2, 3 and 4 mm voxels);
    the PAR/REC's panels are of its first dynamic, not a mean or another one."""
    placed = [p for p in _volumes(release).values() if p.suffix == ".v" and _array(p)[1][0, 0] != 0]
    (path,) = placed
    sag, cor, ax = T.volume_projections(path)
    # 8 x 6 x 4 voxels of 2 x 3 x 4 mm: finest 2 mm; sagittal 6x3 by 4x4 mm pixels of 2 mm across, down
    assert sag.space == (9, 8) and cor.space == (8, 8) and ax.space == (8, 9)
    (par,) = [p for p in _volumes(release).values() if p.suffix == ".PAR"]
    data, _affine = _array(par)
    first = T.volume_projections(par)
    from nibabel.fileholders import FileHolder

    with open(par, encoding="latin-1") as head, open(par.with_suffix(".REC"), "rb") as image:
        img = nib.parrec.PARRECImage.from_file_map({"header": FileHolder(fileobj=head), "image": FileHolder(fileobj=image)})
        last = np.asarray(img.dataobj)[..., -1]
    assert img.shape[3] > 1 and not np.array_equal(last, data)
    assert np.abs(first[2].pixels.astype(int) - reference(par)[2][0]).max() <= 1


def test_defaced_mgz_pair_before_is_its_qc_picture(release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The head released as MGZ was defaced: its pair is the audit's QC picture and the released
    volume's projections (the same picture as its series one)."""
    section, _ctx, page = _build(release, tmp_path)
    (pair,) = [f for f in page.figures if f[0] == "pixels-pair"]
    before, after = pair[1]
    assert pair[2].startswith("volumes/") and pair[2].split(":")[0].endswith(".mgz") and "defaced" in pair[2]
    assert before["alt"].startswith("before: defaced") and "Other QC pictures" not in section.html
    (mgz,) = [f for f in page.figures if f[0] == "pixels-series" and ".mgz" in f[2]]
    assert mgz[1][0]["src"] == after["src"]
    assert "Pixels changed by medcloak (1 object)" in section.html


class _Rows:
    def __init__(self, html: str) -> None:
        from html.parser import HTMLParser

        rows: list[list[str]] = []

        class Parse(HTMLParser):
            inside = False

            def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
                if tag == "table" and ("class", "pixels-unpictured") in attrs:
                    self.inside = True
                elif self.inside and tag == "tr":
                    rows.append([])
                elif self.inside and tag in ("td", "th"):
                    rows[-1].append("")

            def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
                self.inside = self.inside and tag != "table"

            def handle_data(self, data):  # type: ignore[no-untyped-def]
                if self.inside and rows and rows[-1]:
                    rows[-1][-1] += data

        Parse().feed(html)
        self.rows = [[cell.strip() for cell in row] for row in rows]


def test_twix_counted_as_released_and_not_pictured(release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    section, _ctx, page = _build(release, tmp_path)
    header, *rows = _Rows(section.html).rows
    assert header == ["format", "objects", "why not pictured"]
    assert [r[:2] for r in rows] == [["twix", "2"]]
    assert "raw k-space data, not an image" in rows[0][2]
    assert "Released, not pictured (2 objects)" in section.html
    assert not any(".dat" in cap for _, _, cap in page.figures)


def test_other_unpictured_formats_counted_with_a_reason(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A released object of a kind the section does not know is counted by its record's format,
    or its top folder when it has no record, with the general reason."""
    import json

    audit = tmp_path / "rel.audit"
    audit.mkdir(parents=True)
    lines = [{"id": "a", "input": "/in/a", "status": "ok", "outputs": ["twix/a.dat"], "review": {"format": "twix"}},
             {"id": "b", "input": "/in/b", "status": "ok", "outputs": ["eeg/b.edf"], "review": {"format": "eeg"}},
             {"id": "c", "input": "/in/c", "status": "ok", "outputs": ["misc/c.bin"]},
             {"id": "d", "input": "/in/d", "status": "quarantined", "outputs": []},
             {"id": "e", "input": "/in/e", "status": "ok", "outputs": ["bids/x/README"], "review": {"format": "bids"}},
             {"id": "f", "input": "/in/f", "status": "ok", "outputs": ["bids/x/sub-1/eeg/sub-1_eeg.edf"],
              "review": {"format": "bids"}}]
    (audit / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    section, _ctx, _page = _build(tmp_path / "rel", tmp_path)
    rows = {r[0]: r[1:] for r in _Rows(section.html).rows[1:]}
    assert all(r[0] == "1" for r in rows.values()) and len(rows) == 5
    assert rows["eeg"][1] == rows["misc"][1] == rows["bids (other files)"][1] == P._NO_PICTURE
    assert rows["bids"][1].startswith("no pixels")


def test_a_volume_is_read_a_slab_at_a_time(release, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With slabs of two slices, no slab holds more, the projections are the same, and a gzipped
    file (MGZ, NIfTI) is inflated once from start to end: one gzip reader that never seeks back
    (a reader made again, or a seek back, inflates the stream again from its start)."""
    import nibabel.openers  # noqa: F401 - its gzip reader is gzip's, whose seeks are watched

    volumes = {p.suffix.lower(): p for p in _volumes(release).values()}
    data = np.random.default_rng(3).normal(size=(20, 16, 30, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 2.0, 1.5, 1.0])), tmp_path / "v.nii.gz")
    volumes[".gz"] = tmp_path / "v.nii.gz"
    whole = {s: [p.pixels for p in T.volume_projections(path)] for s, path in volumes.items()}
    seen: list[int] = []
    real = V.mips

    def spy(shape, slabs):  # type: ignore[no-untyped-def]
        def each():  # type: ignore[no-untyped-def]
            for slab in slabs:
                seen.append(int(np.asanyarray(slab).shape[2]))
                yield slab
        return real(shape, each())

    readers: list[list[int]] = []  # each gzip reader made: the offsets it was asked to seek to
    made, seek = gzip.GzipFile.__init__, gzip.GzipFile.seek

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        made(self, *args, **kwargs)
        self._watched = []
        readers.append(self._watched)

    def watched_seek(self, offset, whence=0):  # type: ignore[no-untyped-def]
        out = seek(self, offset, whence)
        getattr(self, "_watched", []).append(out)
        return out

    monkeypatch.setattr(V, "mips", spy)
    monkeypatch.setattr(gzip.GzipFile, "__init__", init)
    monkeypatch.setattr(gzip.GzipFile, "seek", watched_seek)
    for suffix in (".mgz", ".mgh", ".nrrd", ".nhdr", ".gz"):
        path = volumes[suffix]
        n0, n1, n2 = _array(path)[0].shape
        monkeypatch.setattr(V, "SLAB_VOXELS", 2 * n0 * n1)
        seen.clear()
        readers.clear()
        got = [p.pixels for p in T.volume_projections(path)]
        assert all(np.array_equal(a, b) for a, b in zip(got, whole[suffix]))
        assert max(seen) == 2 and sum(seen) == n2 and len(seen) >= 8, suffix
        if suffix in (".mgz", ".gz"):
            # nibabel reads a NIfTI's header with readers of their own (a few bytes, no seek), then
            # the voxels with one, kept open
            voxels = [r for r in readers if len(r) > 2]
            assert len(voxels) == 1 and len(voxels[0]) >= 8, (suffix, readers)
            assert voxels[0] == sorted(voxels[0]), suffix


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.complex64])
def test_slabs_of_any_size_give_the_whole_volumes_projections(tmp_path, monkeypatch, dtype) -> None:  # type: ignore[no-untyped-def]
    """An oblique 4-D NIfTI (NaN and infinities in its float first volume, its complex values as
    their modulus): the projections from slabs of one slice, of a few and of the whole volume are
    the reference's, computed whole."""
    rng = np.random.default_rng(7)
    data = rng.normal(0, 100, (30, 20, 17, 3))
    if dtype == np.complex64:
        data = data + 1j * rng.normal(0, 100, data.shape)
    data = data.astype(dtype)
    if dtype == np.float32:
        data[3, 4, 5, 0], data[5, 5, 5, 0], data[6, 6, 6, 0] = np.nan, np.inf, -np.inf
    affine = np.array([[0, 0, -2, 10], [1.5, 0, 0, 3], [0, -1, 0, 2], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii.gz")
    expected = reference(tmp_path / "v.nii.gz")
    for slab in (30 * 20, 7 * 30 * 20, V.SLAB_VOXELS):
        monkeypatch.setattr(V, "SLAB_VOXELS", slab)
        got = T.volume_projections(tmp_path / "v.nii.gz")
        for (grey, space), pic in zip(expected, got, strict=True):
            assert np.abs(pic.pixels.astype(int) - grey).max() <= 1 and pic.space == space, slab


def test_broken_released_volumes_raise_and_are_listed(release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A released volume cut short, or a PAR without its REC, is not pictured: it is listed with
    the reason, and the others are pictured all the same."""
    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    shutil.copytree(release.parent / (release.name + ".audit"), tmp_path / "broken.audit")
    vols = _volumes(broken)
    (nrrd_path,) = [p for p in vols.values() if p.suffix == ".nrrd" and b"encoding: raw" in p.read_bytes()[:400]]
    nrrd_path.write_bytes(nrrd_path.read_bytes()[:-100])
    (nhdr,) = [p for p in vols.values() if p.suffix == ".nhdr"]
    (data,) = list(nhdr.parent.glob(nhdr.name.split(".")[0] + ".raw*"))
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    (par,) = [p for p in vols.values() if p.suffix == ".PAR"]
    par.with_suffix(".REC").unlink()
    with pytest.raises(CorruptInputError):
        T.volume_projections(nhdr)
    _section, _ctx, page = _build(broken, tmp_path)
    failed = {item.split(": ", 1)[0] for item in page.items}
    assert failed == {p.relative_to(broken).as_posix() for p in (nrrd_path, nhdr, par)}
    assert all("truncated" in i or "damaged" in i or "no REC" in i for i in page.items), page.items
    pictured = [f for f in page.figures if f[0] == "pixels-series"]
    assert len(pictured) == len(vols) - 3


def test_inflater_reads_exactly_and_refuses_short_streams() -> None:
    import io

    raw = bytes(range(256)) * 1000
    stream = V._Inflater(io.BytesIO(gzip.compress(raw)))
    assert stream.read(1000) + stream.read(255_000) == raw
    with pytest.raises(CorruptInputError):
        V._Inflater(io.BytesIO(gzip.compress(raw))).read(len(raw) + 1)
    with pytest.raises(CorruptInputError):
        V._Inflater(io.BytesIO(gzip.compress(raw)[:500])).read(len(raw))


def test_report_pictures_decode(release, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every picture the section lists decodes with Pillow to the size its img tag gives."""
    section, ctx, _page = _build(release, tmp_path)
    for name in section.files:
        with Image.open(ctx.out / name) as img:
            img.load()
            assert img.size[0] > 8 and img.size[1] > 8
    assert _Page(section.html).figures
