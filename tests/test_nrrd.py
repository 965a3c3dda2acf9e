"""NRRD and NHDR (:mod:`medcloak.formats.nrrd`, :mod:`medcloak.handlers.nrrd`).

The files are written here, line by line, as the NRRD specification (teem.sourceforge.net/nrrd/
format.html, NRRD0004) describes them: a magic line, ``#`` comments, fields (``name: value``),
key/value pairs (``key:=value``), a blank line and the data (attached), or a ``data file`` field
naming a file beside the header (detached, gzip-encoded data written by Python's gzip with the
original file name in its header). Identifiers are planted in every place the format holds free
text: comments, ``content``, ``labels``, ``units``, ``space units``, ``sample units``, key/value
pairs (keys and values), an invalid ``kinds`` value, and the data file's name. pynrrd (an
independent reader) reads the release to the same array.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from conftest import SECRET

from medcloak.engine import run
from medcloak.errors import CorruptInputError, LimitError, UnsupportedInputError
from medcloak.formats.nrrd import read_nrrd
from medcloak.handlers import sniff
from medcloak.verify import verify_release

nrrd = pytest.importorskip("nrrd")

NAME, ID = "Surname^Givenname", "NF00482913"
PLANTED = (b"surname", b"givenname", b"nf00482913", b"/home/")


def _no_head() -> np.ndarray:
    """A CT of a body without a head: released undefaced, as a NIfTI of it is ("no-head")."""
    rng = np.random.default_rng(5)
    data = np.full((24, 20, 16), -1000, np.int16)
    data[4:20, 4:16, :] = rng.integers(20, 60, (16, 12, 16))
    data[10:14, 8:12, :] = 900
    return data


def header(data: np.ndarray, *, encoding: str = "raw", data_file: str | None = None,
           directions: str = "(2,0,0) (0,2,0) (0,0,3)", space: str = "left-posterior-superior") -> bytes:
    lines = [
        "NRRD0004",
        f"# Complete NRRD file format specification at: {NAME} {ID}",
        "# /home/surname/scans/" + ID,
        "type: short",
        "dimension: 3",
        f"space: {space}",
        "sizes: " + " ".join(map(str, data.shape)),
        f"space directions: {directions}",
        "kinds: domain domain domain",
        "endian: little",
        f"encoding: {encoding}",
        "space origin: (-20.5,-18,10.25)",
        f"content: {NAME} head CT {ID}",
        f'labels: "{NAME}" "x" "y"',
        f'units: "{ID}" "mm" "mm"',
        f"space units: \"{ID}\" \"mm\" \"mm\"",
        f"sample units: {NAME}",
        f"PatientName:={NAME}",
        f"{ID}:=/home/surname/orig.nii",
        f"Segment0_Name:=tumour of {NAME}",
    ]
    if data_file is not None:
        lines.append(f"data file: {data_file}")
    return ("\n".join(lines) + "\n" + ("" if data_file else "\n")).encode()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def _release(tmp_path: Path, key: Path) -> tuple[list[Path], object]:
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=key)
    outs = [p for p in sorted((tmp_path / "out").rglob("*")) if p.is_file() and not p.name.startswith("DEIDENT")]
    return outs, summary


def _clean(outs: list[Path], root: Path) -> None:
    for p in outs:
        rel = p.relative_to(root).as_posix().lower()
        data = p.read_bytes()
        inflated = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else b""
        for planted in PLANTED:
            assert planted.decode() not in rel and planted not in data.lower() and planted not in inflated.lower(), (rel, planted)


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_attached_nrrd_released_clean_and_reads_the_same(tmp_path: Path, key: Path, encoding: str) -> None:
    data = _no_head()
    body = data.tobytes(order="F")
    folder = tmp_path / "in" / f"Surname_{ID}"
    folder.mkdir(parents=True)
    src = folder / f"Surname_{ID}.nrrd"
    src.write_bytes(header(data, encoding=encoding) + (gzip.compress(body, mtime=0) if encoding == "gzip" else body))
    assert sniff(src.read_bytes()[:512], src) == "nrrd"
    outs, summary = _release(tmp_path, key)
    assert summary.ok == 1 and summary.quarantined == 0
    (out,) = outs
    assert out.name.endswith(".nrrd")
    _clean(outs, tmp_path / "out")
    back, fields = nrrd.read(str(out), index_order="F")
    assert np.array_equal(back, data)
    assert fields["space"] == "left-posterior-superior" and fields["type"] == "short"
    assert np.allclose(fields["space directions"], np.diag([2.0, 2.0, 3.0]))
    assert np.allclose(fields["space origin"], [-20.5, -18, 10.25])
    assert set(fields) <= {"type", "dimension", "space", "sizes", "space directions", "kinds", "endian",
                           "encoding", "space origin"}
    if encoding == "raw":
        assert out.read_bytes().endswith(body)  # the voxels byte for byte
    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []
    out.write_bytes(src.read_bytes())
    assert verify_release(tmp_path / "out", tmp_path / "out.audit")


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_detached_nhdr_released_with_its_data_under_new_names(tmp_path: Path, key: Path, encoding: str) -> None:
    data = _no_head()
    body = data.tobytes(order="F")
    folder = tmp_path / "in" / f"Surname_{ID}"
    folder.mkdir(parents=True)
    data_name = f"Surname_{ID}_T1.raw" + (".gz" if encoding == "gzip" else "")
    if encoding == "gzip":  # gzip's own header names the original file
        buf = io.BytesIO()
        with gzip.GzipFile(filename=f"/home/surname/{ID}.raw", mode="wb", fileobj=buf, mtime=0) as fh:
            fh.write(body)
        (folder / data_name).write_bytes(buf.getvalue())
    else:
        (folder / data_name).write_bytes(body)
    src = folder / f"Surname_{ID}.nhdr"
    src.write_bytes(header(data, encoding=encoding, data_file=data_name))
    assert sniff((folder / data_name).read_bytes()[:512], folder / data_name) == "nrrd-data"
    outs, summary = _release(tmp_path, key)
    assert summary.ok == 1 and summary.quarantined == 0 and summary.skipped == 1
    names = sorted(p.name for p in outs)
    assert len(names) == 2 and names[0].endswith(".nhdr") and names[1].endswith(".raw.gz" if encoding == "gzip" else ".raw")
    _clean(outs, tmp_path / "out")
    nhdr = next(p for p in outs if p.name.endswith(".nhdr"))
    back, _ = nrrd.read(str(nhdr), index_order="F")
    assert np.array_equal(back, data)
    if encoding == "raw":
        assert next(p for p in outs if p.name.endswith(".raw")).read_bytes() == body
    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []


def test_review_record_names_what_was_removed(tmp_path: Path) -> None:
    from medcloak.formats.nrrd import deidentify_nrrd
    from medcloak.pseudonym import Keyring

    data = _no_head()
    (tmp_path / "d.raw").write_bytes(data.tobytes(order="F"))
    src = tmp_path / "a.nhdr"
    src.write_bytes(header(data, data_file="d.raw"))
    result = deidentify_nrrd(src, Keyring(SECRET))
    review = result.released.review
    assert review["format"] == "nrrd" and "text" not in review
    assert review["changed"] == {"comments": "removed", "key/value pairs": "removed", "content": "removed",
                                 "labels": "removed", "units": "removed", "space units": "removed",
                                 "sample units": "removed", "data file": "replaced"}


def test_head_is_defaced(tmp_path: Path) -> None:
    """pydeface's population-average T1 head (tests/shared_data.py), written as an attached
    NRRD in RAS space with its affine's directions."""
    import nibabel as nib
    from shared_data import head

    from medcloak.formats.nrrd import deidentify_nrrd
    from medcloak.pseudonym import Keyring

    img = nib.load(head("pydeface_mean_reg2mean.nii.gz"))
    data = np.asarray(img.dataobj).astype(np.int16)
    a = img.affine
    directions = " ".join("(" + ",".join(repr(float(v)) for v in a[:3, i]) + ")" for i in range(3))
    blob = header(data, directions=directions, space="right-anterior-superior")
    blob = blob.replace(b"space origin: (-20.5,-18,10.25)", ("space origin: (" + ",".join(
        repr(float(v)) for v in a[:3, 3]) + ")").encode())
    src = tmp_path / "head.nrrd"
    src.write_bytes(blob + data.tobytes(order="F"))
    result = deidentify_nrrd(src, Keyring(SECRET))
    assert result.qc["status"] == "defaced" and result.released.review["pixels"] == {"change": "defaced"}
    out = tmp_path / "out.nrrd"
    out.write_bytes(result.released.data)
    back, _ = nrrd.read(str(out), index_order="F")
    changed = back != data
    assert changed.any() and changed.sum() < data.size // 4
    assert np.array_equal(back[~changed], data[~changed])


def test_broken_and_unsupported_inputs_are_refused(tmp_path: Path) -> None:
    data = _no_head()
    body = data.tobytes(order="F")
    path = tmp_path / "x.nrrd"
    good = header(data)
    cases = [
        (good + body[: len(body) // 2], LimitError),  # truncated: declared beyond the file
        (good.replace(b"sizes: 24 20 16", b"sizes: 4096 4096 4096") + body, LimitError),
        (good.replace(b"encoding: raw", b"encoding: gzip") + gzip.compress(body)[:200], CorruptInputError),
        (good.replace(b"encoding: raw", b"encoding: gzip") + b"\x1f\x8b" + bytes(100), CorruptInputError),
        (good.replace(b"type: short", b"type: Surname") + body, CorruptInputError),
        (good.replace(b"sizes: 24 20 16", b"sizes: 24 20") + body, CorruptInputError),
        (good.replace(b"encoding: raw", b"encoding: ascii") + b"1 2 3", UnsupportedInputError),
        (b"NRRD0004\n" + bytes(range(256)) * 4, CorruptInputError),
    ]
    for blob, error in cases:
        path.write_bytes(blob)
        with pytest.raises(error):
            read_nrrd(path)
    # a free word in a kept field: the field is dropped, not kept
    path.write_bytes(good.replace(b"kinds: domain domain domain", f"kinds: {NAME} domain domain".encode()) + body)
    vol = read_nrrd(path)
    assert "kinds" not in vol.fields and vol.removed["kinds"] == "removed"
    # a detached header whose data file is missing, or lies outside its folder
    path = tmp_path / "y.nhdr"
    path.write_bytes(header(data, data_file="missing.raw"))
    with pytest.raises(CorruptInputError):
        read_nrrd(path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "d.raw").write_bytes(body)
    path = tmp_path / "sub" / "z.nhdr"
    path.write_bytes(header(data, data_file="../d.raw"))
    with pytest.raises(CorruptInputError):
        read_nrrd(path)


def test_data_file_of_a_refused_header_is_never_released_alone(tmp_path: Path, key: Path) -> None:
    data = _no_head()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / f"{ID}.raw").write_bytes(data.tobytes(order="F"))
    (folder / "a.nhdr").write_bytes(header(data, data_file=f"{ID}.raw").replace(b"sizes: 24 20 16", b"sizes: 24 20 99"))
    outs, summary = _release(tmp_path, key)
    assert outs == [] and summary.quarantined == 1 and summary.skipped == 1


def test_verify_rejects_a_data_file_without_its_header(tmp_path: Path, key: Path) -> None:
    data = _no_head()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "d.raw").write_bytes(data.tobytes(order="F"))
    (folder / "a.nhdr").write_bytes(header(data, data_file="d.raw"))
    outs, _ = _release(tmp_path, key)
    next(p for p in outs if p.name.endswith(".nhdr")).unlink()
    assert verify_release(tmp_path / "out", tmp_path / "out.audit")
