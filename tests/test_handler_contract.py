"""One contract, every format handler (:mod:`medcloak.handlers`): each registered handler is
given a real or faithfully made sample of its format, with identifying text in its metadata and an
identifying file and folder name, and must:

- claim the sample in discovery, and only its own kinds;
- release it under a name that holds no part of the input's file or folder names;
- give byte-identical output for the same secret, and other names for another secret;
- have ``verify`` accept what it wrote and reject a copy that still carries the input's metadata;
- quarantine a truncated or garbled input with a typed reason (never "internal error"), releasing
  nothing of it.

A handler without a sample here fails the suite: a new format comes with its sample.
"""

from __future__ import annotations

import hashlib
import io
import random
import shutil
from pathlib import Path

import pytest
from conftest import SECRET

from medcloak.engine import Job, make_settings, process_task, run
from medcloak.handlers import HANDLERS, handler_for, sniff
from medcloak.handlers.base import HEAD
from medcloak.model import Source, Task
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile
from medcloak.verify import verify_release

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
#: identifying names given to every sample's folder and file (no output path may hold them)
FOLDER, STEM = "Surname_Givenname_NF00482913", "Surname_scan_2024"


def _dicom(folder: Path) -> Path:
    """The README's sample CT slice: synthetic identity in its header (data_samples/SOURCES.md)."""
    return Path(shutil.copy(SAMPLES / "dicom" / "Sinclair_Maud_NF00482913" / "CT_HEAD_1.dcm", folder / f"{STEM}.dcm"))


def _photo(folder: Path) -> Path:
    """A JPEG made with Pillow, with an EXIF block naming the camera's owner and a comment."""
    from PIL import Image

    img = Image.new("RGB", (64, 48), (90, 140, 200))
    exif = Image.Exif()
    exif[0x013B] = "Surname Givenname"  # Artist
    exif[0x010E] = "NF00482913 wound photograph"  # ImageDescription
    path = folder / f"{STEM}.jpg"
    img.save(path, "JPEG", quality=90, exif=exif.tobytes(), comment=b"patient Surname NF00482913")
    return path


def _volume(folder: Path) -> Path:
    """pydeface's population-average T1 head (tests/shared_data.py: fetched from its wheel, its
    face blurred), saved again with nibabel with the patient's name and ID in the header's text
    fields."""
    import nibabel as nib
    from shared_data import head

    img = nib.load(head("pydeface_mean_reg2mean.nii.gz"))
    img.header["descrip"] = b"Surname^Givenname NF00482913"
    img.header["db_name"] = b"NF00482913"
    path = folder / f"{STEM}.nii.gz"
    nib.save(img, path)
    return path


def _slide(folder: Path) -> Path:
    """OpenSlide's CMU-1 small region (Aperio SVS, data_samples/SOURCES.md): its ImageDescription
    names the scanner, the file, the user, the date; a label and a macro page."""
    return Path(shutil.copy(SAMPLES / "wsi" / "CMU-1-Small-Region.svs", folder / f"{STEM}.svs"))


def _mirax(folder: Path) -> Path:
    """A 3DHISTECH MIRAX slide built following OpenSlide's documentation (tests/mirax_sample.py):
    names, dates and barcode in Slidedat.ini, label, macro and preview records, a .mrxs picture."""
    from mirax_sample import make_mirax

    return make_mirax(folder, STEM).mrxs


def _bids(folder: Path) -> Path:
    """A BIDS dataset (the input folder itself) of one subject labelled with a hospital number:
    the sample's dataset_description.json and T1w head phantom (data_samples/SOURCES.md), saved
    again with the patient's name in the header's text."""
    import nibabel as nib

    sample = SAMPLES / "bids"
    shutil.copy(sample / "dataset_description.json", folder / "dataset_description.json")
    img = nib.load(sample / "sub-NF00482913" / "ses-1" / "anat" / "sub-NF00482913_ses-1_T1w.nii.gz")
    img.header["descrip"] = b"Surname^Givenname NF00482913"
    path = folder / "sub-NF00482913" / "anat" / "sub-NF00482913_T1w.nii.gz"
    path.parent.mkdir(parents=True)
    nib.save(img, path)
    return path


def _mgh(folder: Path) -> Path:
    """A FreeSurfer MGZ made by tests/test_mgh.py (nibabel's MGH, then FreeSurfer's tags): a body
    CT with the patient's name and ID in its ``cmdline`` and talairach tags and unused header."""
    import gzip

    from test_mgh import _no_head, mgh_bytes

    path = folder / f"{STEM}.mgz"
    path.write_bytes(gzip.compress(mgh_bytes(_no_head()), mtime=0))
    return path


def _nrrd(folder: Path) -> Path:
    """An attached NRRD written by tests/test_nrrd.py from the specification: a body CT with the
    patient's name and ID in comments, ``content``, free-text fields and key/value pairs."""
    from test_nrrd import _no_head, header

    data = _no_head()
    path = folder / f"{STEM}.nrrd"
    path.write_bytes(header(data) + data.tobytes(order="F"))
    return path


def _ecat(folder: Path) -> Path:
    """An ECAT 7 PET file made from the specification (tests/ecat_sample.py), identifiers planted
    in every text field of its main header."""
    from ecat_sample import make

    return make(folder, STEM)


def _parrec(folder: Path) -> Path:
    """nibabel's Philips phantom PAR/REC pair with the patient's name, exam and protocol names, the
    exam date and the export path planted in its PAR (tests/parrec_sample.py)."""
    from parrec_sample import make

    return make(folder, STEM)


def _twix(folder: Path) -> Path:
    """A Siemens VD/VE twix file of two measurements made from the format's description
    (tests/twix_sample.py): names, IDs, dates in every header buffer and the measurement table."""
    from twix_sample import make_vd

    return make_vd(folder / f"{STEM}.dat")


MAKERS = {"dicom": _dicom, "ecat": _ecat, "parrec": _parrec, "nrrd": _nrrd, "mgh": _mgh, "twix": _twix,
          "photo": _photo, "volume": _volume, "slide": _slide, "mirax": _mirax, "bids": _bids}
#: objects a sample is released as, where it is not one (a BIDS dataset: its description and its image)
OBJECTS = {"bids": 2}


def test_every_handler_has_a_sample() -> None:
    assert sorted(h.NAME for h in HANDLERS) == sorted(MAKERS)


@pytest.fixture(params=[h.NAME for h in HANDLERS])
def sample(request, tmp_path):  # type: ignore[no-untyped-def]
    """(handler, the input folder, the sample's path, the key file)."""
    handler = next(h for h in HANDLERS if h.NAME == request.param)
    folder = tmp_path / "in" / FOLDER
    folder.mkdir(parents=True)
    path = MAKERS[handler.NAME](folder)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return handler, tmp_path / "in", path, key


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _released(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith("DEIDENTIFICATION")]


def test_discovery_gives_the_sample_to_its_handler(sample) -> None:  # type: ignore[no-untyped-def]
    handler, _, path, _ = sample
    kind = sniff(path.read_bytes()[:HEAD], path)
    assert kind in handler.KINDS and handler_for(kind) is handler


def test_released_under_names_free_of_the_input_names_and_deterministic(sample, tmp_path) -> None:  # type: ignore[no-untyped-def]
    handler, src, _, key = sample
    first = run([src], tmp_path / "one", secret_file=key)
    assert first.ok == OBJECTS.get(handler.NAME, 1) and first.quarantined == 0
    outputs = _released(tmp_path / "one")
    assert outputs and all(handler.owns(p.relative_to(tmp_path / "one").as_posix()) for p in outputs)
    for p in outputs:
        rel = p.relative_to(tmp_path / "one").as_posix().lower()
        for name in (FOLDER, STEM, "surname", "nf00482913"):
            assert name.lower() not in rel, rel
    run([src], tmp_path / "two", secret_file=key)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")
    other = tmp_path / "other-key"
    other.write_bytes(SECRET[::-1])
    other.chmod(0o600)
    run([src], tmp_path / "three", secret_file=other)
    # paths, not names: a MIRAX slide's Slidedat.ini keeps its name (readers look for it), its folder does not
    assert {p.relative_to(tmp_path / "three") for p in _released(tmp_path / "three")}.isdisjoint(
        p.relative_to(tmp_path / "one") for p in outputs)


def test_verify_accepts_its_output_and_rejects_the_input_in_its_place(sample, tmp_path) -> None:  # type: ignore[no-untyped-def]
    handler, src, path, key = sample
    out = tmp_path / "out"
    run([src], out, secret_file=key)
    assert verify_release(out, tmp_path / "out.audit") == []
    released = _released(out)[0]
    released.write_bytes(path.read_bytes())  # the input's bytes, metadata and all, under the released name
    findings = verify_release(out, tmp_path / "out.audit")
    rel = released.relative_to(out).as_posix()
    assert any(f.path == rel and f.level == "error" for f in findings), findings


def _broken(path: Path, how: str) -> bytes:
    data = path.read_bytes()
    if how == "truncated":
        return data[: max(HEAD + 1, len(data) // 3)]
    noise = random.Random(7).randbytes(len(data))
    keep = 132 if data[128:132] == b"DICM" else 8  # what tells the format apart stays
    return data[:keep] + noise[keep: 4096] + data[4096:] if how == "garbled-head" else data[:keep] + noise[keep:]


@pytest.mark.parametrize("how", ["truncated", "garbled-head", "garbled"])
def test_a_broken_input_is_quarantined_with_a_typed_reason(sample, tmp_path, how) -> None:  # type: ignore[no-untyped-def]
    handler, _, path, _ = sample
    broken = tmp_path / f"broken{''.join(path.suffixes)}"
    broken.write_bytes(_broken(path, how))
    kind = next(iter(handler.KINDS)) if handler.NAME != "photo" else "jpeg"
    keyring = Keyring(SECRET)
    job = Job(load_profile(), keyring, str(tmp_path / "out"), settings=make_settings({}))
    (outcome,) = process_task(Task(Source(str(broken), kind, broken.stat().st_size), "id"), job)
    if outcome.status == "ok":  # a garbled volume's voxels are voxels: released only when its header holds
        assert handler.NAME == "volume" and how == "garbled-head" or how == "garbled" and handler.NAME == "volume", outcome
        return
    assert outcome.status in ("quarantined", "skipped"), outcome
    assert outcome.reason and not outcome.reason.startswith("internal error"), outcome.reason
    assert not outcome.outputs
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file() and ".medcloak-staging" not in p.parts]


def test_a_streamed_object_that_fails_midway_leaves_nothing(tmp_path) -> None:
    """A slide is written by streaming; one found unfit while it is written (here: cut short after
    its first pages) leaves no file in the release and no staging file."""
    data = (SAMPLES / "wsi" / "CMU-1-Small-Region.svs").read_bytes()
    src = tmp_path / "cut.svs"
    src.write_bytes(data[: len(data) - 4096])
    job = Job(load_profile(), Keyring(SECRET), str(tmp_path / "out"), settings=make_settings({}))
    (outcome,) = process_task(Task(Source(str(src), "slide", src.stat().st_size), "id"), job)
    assert outcome.status == "quarantined" and not outcome.reason.startswith("internal error"), outcome
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_io_is_not_needed_to_sniff(tmp_path) -> None:
    """Bytes that no handler claims are "unknown"."""
    stray = tmp_path / "notes.txt"
    stray.write_bytes(b"meeting notes" * 20)
    assert sniff(io.BytesIO(stray.read_bytes()).read(HEAD), stray) == "unknown"


def test_an_object_of_several_files_is_released_whole_or_not_at_all(tmp_path) -> None:
    """The engine writes an object's files one after the other: when a later one fails (its
    writer finds the input unfit midway), the files placed before it are removed."""
    from medcloak.errors import CorruptInputError
    from medcloak.handlers.base import Released
    from medcloak.publish import publish

    def broken(fh):  # type: ignore[no-untyped-def]
        fh.write(b"half")
        raise CorruptInputError("the data file changed while it was read")

    released = Released(b"index", "slides/tok.mrxs", extra=(("slides/tok/Slidedat.ini", b"[GENERAL]\n"),
                                                              ("slides/tok/Data0000.dat", broken)))
    with pytest.raises(CorruptInputError):
        publish(released, tmp_path / "out")
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
    ok = Released(b"index", "slides/tok.mrxs", extra=(("slides/tok/Slidedat.ini", b"[GENERAL]\n"),
                                                        ("slides/tok/Data0000.dat", lambda fh: fh.write(b"d") and {})))
    digests = publish(ok, tmp_path / "out")
    assert digests == tuple(hashlib.sha256(b).hexdigest() for b in (b"index", b"[GENERAL]\n", b"d"))
