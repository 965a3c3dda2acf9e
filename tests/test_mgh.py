"""FreeSurfer MGH/MGZ (:mod:`medcloak.formats.mgh`, :mod:`medcloak.handlers.mgh`).

The files are made here: nibabel writes the MGH header, the voxels and the five scan parameters
(FreeSurfer's layout); FreeSurfer's tags are then appended as its ``mghformat`` source describes
them (an int32 tag type, an int64 length, the bytes): a ``cmdline`` (tag 3) and a talairach
transform path (tag 31) naming the patient, and the header's unused bytes (90-283) hold the
patient's ID too. Every planted identifier must be absent from every byte and name of the release.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import SECRET

from medcloak.engine import run
from medcloak.errors import CorruptInputError, LimitError, UnsupportedInputError
from medcloak.formats.mgh import check_released, read_mgh
from medcloak.handlers import sniff
from medcloak.verify import verify_release

NAME, ID = b"Surname^Givenname", b"NF00482913"
PLANTED = (NAME, ID, b"Surname", b"/home/surname")


def _tag(kind: int, text: bytes) -> bytes:
    return struct.pack(">iq", kind, len(text)) + text


def mgh_bytes(data: np.ndarray, affine: np.ndarray | None = None) -> bytes:
    img = nib.MGHImage(data, BODY if affine is None else affine)
    img.header["tr"] = 2300.0
    raw = bytearray(img.to_bytes())
    raw[100:100 + len(ID)] = ID  # the header's unused part
    tags = _tag(3, b"mri_convert /home/surname/" + NAME + b"/orig.mgz " + ID + b"\x00")
    tags += _tag(31, b"/home/surname/" + NAME + b"/mri/transforms/talairach.xfm\x00")
    return bytes(raw) + tags


def _no_head() -> np.ndarray:
    """A CT of a body without a head (air, soft tissue, a bone): released undefaced, as a NIfTI
    of it is ("no-head")."""
    rng = np.random.default_rng(5)
    data = np.full((24, 20, 16), -1000, np.int16)
    data[4:20, 4:16, :] = rng.integers(20, 60, (16, 12, 16))
    data[10:14, 8:12, :] = 900
    return data


BODY = np.diag([2.0, 2.0, 3.0, 1.0])


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("gzipped", [False, True])
def test_tags_dropped_header_and_voxels_kept(tmp_path: Path, key: Path, gzipped: bool) -> None:
    data = _no_head()
    blob = mgh_bytes(data)
    folder = tmp_path / "in" / "Surname_NF00482913"
    folder.mkdir(parents=True)
    src = folder / ("Surname_NF00482913.mgz" if gzipped else "Surname_NF00482913.mgh")
    src.write_bytes(gzip.compress(blob, mtime=0) if gzipped else blob)
    assert sniff(src.read_bytes()[:512], src) == "mgh"
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=key)
    assert summary.ok == 1 and summary.quarantined == 0
    (out,) = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and not p.name.startswith("DEIDENT")]
    rel = out.relative_to(tmp_path / "out").as_posix()
    assert rel.startswith("volumes/") and rel.endswith(".mgz" if gzipped else ".mgh")
    assert "surname" not in rel.lower() and "nf00482913" not in rel.lower()
    released = gzip.decompress(out.read_bytes()) if gzipped else out.read_bytes()
    for planted in PLANTED:
        assert planted.lower() not in released.lower() and planted.lower() not in out.read_bytes().lower()
    assert released[:90] == blob[:90] and not released[90:284].strip(b"\x00")
    n = data.size * 2
    assert released[284:284 + n] == blob[284:284 + n]  # voxels byte for byte (no head: undefaced)
    img = nib.MGHImage.from_bytes(released)  # nibabel reads it to the same image
    assert np.array_equal(np.asanyarray(img.dataobj), data)
    assert np.allclose(img.affine, nib.MGHImage(data, BODY).affine)
    assert img.header["tr"] == 2300.0
    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []
    out.write_bytes(src.read_bytes())  # the input under the released name: its tags are found
    assert verify_release(tmp_path / "out", tmp_path / "out.audit")


def test_review_record_names_what_was_removed(tmp_path: Path) -> None:
    from medcloak.formats.mgh import deidentify_mgh
    from medcloak.pseudonym import Keyring

    src = tmp_path / "a.mgh"
    src.write_bytes(mgh_bytes(_no_head()))
    result = deidentify_mgh(src, Keyring(SECRET))
    review = result.released.review
    assert review["format"] == "mgh"
    assert review["changed"] == {"tags": "removed", "header unused bytes": "emptied"}
    assert "text" not in review and result.qc["status"] == "no-head"


def test_head_is_defaced(tmp_path: Path) -> None:
    """pydeface's population-average T1 head (tests/shared_data.py), written as MGZ with tags."""
    from shared_data import head

    from medcloak.formats.mgh import deidentify_mgh
    from medcloak.pseudonym import Keyring

    img = nib.load(head("pydeface_mean_reg2mean.nii.gz"))
    data = np.asarray(img.dataobj).astype(np.float32)
    src = tmp_path / "head.mgz"
    src.write_bytes(gzip.compress(mgh_bytes(data, img.affine), mtime=0))
    result = deidentify_mgh(src, Keyring(SECRET))
    assert result.qc["status"] == "defaced" and result.released.review["pixels"] == {"change": "defaced"}
    out = tmp_path / "out.mgz"
    out.write_bytes(result.released.data)
    back = np.asanyarray(nib.MGHImage.from_bytes(gzip.decompress(out.read_bytes())).dataobj)
    changed = back != data
    assert changed.any() and changed.sum() < data.size // 4
    assert np.array_equal(back[~changed], data[~changed])
    assert check_released(gzip.decompress(out.read_bytes())) == []


def test_declared_sizes_checked(tmp_path: Path) -> None:
    blob = bytearray(mgh_bytes(_no_head()))
    huge = bytearray(blob)
    huge[4:20] = struct.pack(">4i", 4096, 4096, 4096, 1)
    path = tmp_path / "huge.mgh"
    path.write_bytes(bytes(huge))
    with pytest.raises(LimitError):
        read_mgh(path)
    path.write_bytes(gzip.compress(bytes(huge), mtime=0))
    with pytest.raises(LimitError):
        read_mgh(path)
    path.write_bytes(gzip.compress(bytes(blob[:2000]), mtime=0))  # a whole stream, short data
    with pytest.raises(CorruptInputError):
        read_mgh(path)
    path.write_bytes(gzip.compress(bytes(blob), mtime=0)[:300])  # a truncated stream
    with pytest.raises(CorruptInputError):
        read_mgh(path)
    path.write_bytes(b"\x00\x00\x00\x01" + bytes(300))
    with pytest.raises(UnsupportedInputError):
        read_mgh(path)
