"""MIRAX slides (:mod:`medcloak.formats.slide_mirax`, :mod:`medcloak.handlers.mirax`), on the
synthetic slide of ``mirax_sample.py`` (built here following OpenSlide's documentation of the
format; OpenSlide opens it as ``mirax`` with a label, a macro and a thumbnail)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from conftest import SECRET
from mirax_sample import NAME, PLANTED, make_mirax

from medcloak.engine import Job, make_settings, process_task, run
from medcloak.errors import CorruptInputError, UnsupportedInputError
from medcloak.formats.slide_mirax import read_ini, read_mirax, verify_mirax
from medcloak.handlers import sniff
from medcloak.model import Source, Task
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile
from medcloak.verify import verify_release


def _key(tmp: Path) -> Path:
    key = tmp / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return key


@pytest.fixture(scope="module")
def released(tmp_path_factory):  # type: ignore[no-untyped-def]
    """(the sample, the release folder, the run's summary): one run for the tests that only read."""
    tmp = tmp_path_factory.mktemp("mirax")
    sample = make_mirax(tmp / "in" / "case")
    summary = run([tmp / "in"], tmp / "out", secret_file=_key(tmp))
    return sample, tmp / "out", summary


def _slide_files(out: Path) -> list[Path]:
    return [p for p in sorted((out / "slides").rglob("*")) if p.is_file()]


def _process(mrxs: Path, tmp: Path):  # type: ignore[no-untyped-def]
    job = Job(load_profile(), Keyring(SECRET), str(tmp / "out"), settings=make_settings({}))
    (outcome,) = process_task(Task(Source(str(mrxs), "mirax", mrxs.stat().st_size), "id"), job)
    return outcome


def test_one_slide_released_its_folder_skipped_as_members(released) -> None:  # type: ignore[no-untyped-def]
    sample, out, summary = released
    assert (summary.ok, summary.quarantined, summary.skipped) == (1, 0, 4)
    names = [p.relative_to(out / "slides").as_posix() for p in _slide_files(out)]
    token = names[0].split("/")[0]
    assert sorted(names) == sorted([f"{token}/Data0000.dat", f"{token}/Data0001.dat", f"{token}/Index.dat",
                                    f"{token}/Slidedat.ini", f"{token}.mrxs"])
    assert (out / "slides" / f"{token}.mrxs").stat().st_size == 0
    assert sniff(b"", sample.folder / "Index.dat") == "mirax-member"
    assert sniff(sample.mrxs.read_bytes()[:132], sample.mrxs) == "mirax"


def test_planted_identifiers_absent_from_every_byte_and_path(released) -> None:  # type: ignore[no-untyped-def]
    sample, out, _ = released
    for path in out.rglob("*"):
        rel = path.relative_to(out).as_posix().lower()
        assert "surname" not in rel and "nf00482913" not in rel
        if path.is_file():
            data = path.read_bytes()
            for word in PLANTED:
                assert word not in data, (rel, word)
            for image in (sample.label, sample.macro, sample.preview, sample.mrxs.read_bytes()):
                assert image[-66:-2] not in data, rel  # the end of their scans: no byte of them is kept


def test_every_tile_byte_identical_at_every_level(released) -> None:  # type: ignore[no-untyped-def]
    sample, out, _ = released
    slide = read_mirax(next((out / "slides").glob("*.mrxs")))
    assert slide.levels == 3
    for level, tiles in enumerate(sample.tiles):
        got = []
        for _, offset, length, fileno in slide.hier_items[level]:
            with open(slide.data_files[fileno], "rb") as fh:
                fh.seek(offset)
                got.append(fh.read(length))
        assert got == tiles


def test_slidedat_holds_only_allow_listed_keys(released) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = released
    ini = read_ini(next((out / "slides").glob("*/Slidedat.ini")).read_bytes())
    assert set(ini["GENERAL"]) == {"SLIDE_VERSION", "SLIDE_ID", "IMAGENUMBER_X", "IMAGENUMBER_Y",
                                   "OBJECTIVE_MAGNIFICATION", "CameraImageDivisionsPerSide"}
    level_keys = {"IMAGE_CONCAT_FACTOR", "OVERLAP_X", "OVERLAP_Y", "MICROMETER_PER_PIXEL_X", "MICROMETER_PER_PIXEL_Y",
                  "IMAGE_FILL_COLOR_BGR", "DIGITIZER_WIDTH", "DIGITIZER_HEIGHT", "IMAGE_QUALITY", "IMAGE_FORMAT"}
    for name, keys in ini.items():
        if name.startswith("LAYER_"):
            assert set(keys) <= level_keys, name
        elif name.startswith("NONHIERLAYER_"):
            assert set(keys) <= {"VIMSLIDE_POSITION_DATA_FORMAT_VERSION"}, name
        else:
            assert name in ("GENERAL", "HIERARCHICAL", "DATAFILE"), name
    values = " ".join(ini["HIERARCHICAL"].values())
    assert "ScanDataLayer" not in values and "Scan data layer" not in values
    assert ini["HIERARCHICAL"]["NONHIER_0_NAME"] == "VIMSLIDE_POSITION_BUFFER"


def test_manifest_counts_what_went(released) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = released
    from medcloak.handlers import mirax

    sample2 = make_mirax(out.parent / "again")
    (result,) = mirax.deidentify(Task(Source(str(sample2.mrxs), "mirax", 0), "id"),
                                 Job(load_profile(), Keyring(SECRET), str(out.parent / "x"), settings=make_settings({})))
    for kind, n in (("label", 1), ("macro", 1), ("preview", 1), ("nonhier-record", 2)):  # XML info, white balance
        assert result.counts[f"{kind}-removed"] == n
    assert result.counts["bytes-zeroed"] > 0 and result.counts["keys-dropped"] > 0


def test_openslide_opens_the_release_with_the_same_levels_and_no_associated_image(released) -> None:  # type: ignore[no-untyped-def]
    openslide = pytest.importorskip("openslide")
    sample, out, _ = released
    before = openslide.OpenSlide(str(sample.mrxs))
    assert before.properties["openslide.vendor"] == "mirax"
    assert set(before.associated_images) == {"label", "macro", "thumbnail"}
    after = openslide.OpenSlide(str(next((out / "slides").glob("*.mrxs"))))
    assert after.properties["openslide.vendor"] == "mirax"
    assert after.level_dimensions == before.level_dimensions
    assert after.level_downsamples == before.level_downsamples
    for key in ("openslide.mpp-x", "openslide.mpp-y", "openslide.objective-power"):
        assert after.properties[key] == before.properties[key]
    assert list(after.associated_images) == []
    for level in range(before.level_count):
        w, h = before.level_dimensions[level]
        assert after.read_region((0, 0), level, (w, h)).tobytes() == before.read_region((0, 0), level, (w, h)).tobytes()


def test_verify_accepts_the_release_and_finds_what_cleaning_would_change(released, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = released
    assert verify_release(out, out.parent / "out.audit") == []
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    mrxs = next((copy / "slides").glob("*.mrxs"))
    folder = mrxs.with_suffix("")
    data = folder / "Data0001.dat"
    blob = bytearray(data.read_bytes())
    hole = blob.find(bytes(64))  # where the stray text and the removed records were
    blob[hole: hole + 8] = b"Surname!"
    data.write_bytes(bytes(blob))
    ini = folder / "Slidedat.ini"
    ini.write_bytes(ini.read_bytes().replace(b"[GENERAL]\r\n", b"[GENERAL]\r\nSLIDE_NAME=Surname\r\n"))
    assert verify_mirax(mrxs, "Data0001.dat") == ["non-zero bytes that no kept record points to"]
    assert verify_mirax(mrxs, "Slidedat.ini") == ["Slidedat.ini holds keys or values outside the allow-list"]
    assert verify_mirax(mrxs) == verify_mirax(mrxs, "Index.dat") == verify_mirax(mrxs, "Data0000.dat") == []
    findings = verify_release(copy, out.parent / "out.audit")
    assert sorted(f.path.rsplit("/", 1)[-1] for f in findings) == ["Data0001.dat", "Slidedat.ini"]
    # the input itself, under a released name: its label, macro and preview records are found
    raw = tmp_path / "raw"
    sample2 = make_mirax(raw)
    problems = verify_mirax(sample2.mrxs)
    assert any("label" in p for p in problems) and any("macro" in p for p in problems)
    assert any(".mrxs file is not empty" in p for p in problems)
    assert verify_mirax(sample2.mrxs, "Index.dat") == ["Index.dat holds more than the kept records"]
    assert verify_mirax(sample2.mrxs, f"{NAME}_Data0001.dat") == ["non-zero bytes that no kept record points to"]


def test_a_member_of_the_folder_is_never_released_on_its_own(tmp_path) -> None:
    sample = make_mirax(tmp_path / "in")
    shutil.copy(sample.mrxs, sample.folder / "picture.jpg")  # a JPEG inside the slide's folder
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path))
    assert (summary.ok, summary.quarantined, summary.skipped) == (1, 0, 5)
    assert not list((tmp_path / "out").glob("photos*"))


def test_deterministic_and_keyed(tmp_path) -> None:
    make_mirax(tmp_path / "in")
    key = _key(tmp_path)
    run([tmp_path / "in"], tmp_path / "a", secret_file=key)
    run([tmp_path / "in"], tmp_path / "b", secret_file=key)
    tree = {p.relative_to(tmp_path / "a").as_posix(): p.read_bytes() for p in _slide_files(tmp_path / "a")}
    assert tree == {p.relative_to(tmp_path / "b").as_posix(): p.read_bytes() for p in _slide_files(tmp_path / "b")}


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("how", ["index-cut", "index-cut-in-pages", "data-cut", "data-missing", "folder-missing",
                                 "index-version", "index-id", "item-outside", "page-loop", "not-zoom-first"])
def test_a_broken_slide_is_quarantined_with_nothing_released(tmp_path, how) -> None:  # type: ignore[no-untyped-def]
    sample = make_mirax(tmp_path / "in")
    index = sample.folder / "Index.dat"
    data = index.read_bytes()
    head = 5 + 32
    hier_table = struct.unpack_from("<i", data, head)[0]
    first_record = struct.unpack_from("<i", data, hier_table)[0]
    first_page = struct.unpack_from("<i", data, first_record + 4)[0]
    if how == "index-cut":
        _cut(index, head + 6)
    elif how == "index-cut-in-pages":
        _cut(index, len(data) - 10)
    elif how == "data-cut":
        _cut(sample.folder / "Data0000.dat", 3000)
    elif how == "data-missing":
        (sample.folder / f"{NAME}_Data0001.dat").unlink()
    elif how == "folder-missing":
        shutil.rmtree(sample.folder)
    elif how == "index-version":
        index.write_bytes(b"01.03" + data[5:])
    elif how == "index-id":
        index.write_bytes(data[:5] + b"d" + data[6:])
    elif how == "item-outside":
        patched = bytearray(data)
        struct.pack_into("<i", patched, first_page + 8 + 4, 1 << 30)  # level 0's first tile's offset
        index.write_bytes(bytes(patched))
    elif how == "page-loop":
        patched = bytearray(data)
        struct.pack_into("<i", patched, first_page + 4, first_page)  # the page is its own next
        index.write_bytes(bytes(patched))
    elif how == "not-zoom-first":
        ini = sample.folder / "Slidedat.ini"
        ini.write_bytes(ini.read_bytes().replace(b"HIER_0_NAME=Slide zoom level", b"HIER_0_NAME=Slide filter levels"))
    outcome = _process(sample.mrxs, tmp_path)
    assert outcome.status == "quarantined", outcome
    assert not outcome.reason.startswith("internal error"), outcome.reason
    assert "surname" not in outcome.reason.lower()
    out = tmp_path / "out"
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
    expected = UnsupportedInputError if how in ("index-version", "not-zoom-first") else CorruptInputError
    with pytest.raises(expected):
        read_mirax(sample.mrxs)


@pytest.mark.parametrize("kernel", [True, False])
def test_a_data_file_is_its_kept_ranges_and_zeros(tmp_path, monkeypatch, kernel) -> None:  # type: ignore[no-untyped-def]
    """Copied in the kernel (copy_file_range) or, where that fails, by reads and writes: the same bytes."""
    import os

    from medcloak.formats.slide_mirax import write_data

    if not kernel:
        def refuse(*args):  # type: ignore[no-untyped-def]
            raise OSError(18, "cross-device")

        monkeypatch.setattr(os, "copy_file_range", refuse)
    src = tmp_path / "src.dat"
    blob = bytes(range(256)) * 40000  # 10 MB: more than one chunk per range
    src.write_bytes(blob)
    ranges = [(3, 10), (100, 9_000_000), (9_500_000, len(blob) - 5)]
    with open(tmp_path / "out.dat", "w+b") as fh:
        write_data(src, len(blob), ranges, fh)
    got = (tmp_path / "out.dat").read_bytes()
    expected = bytearray(len(blob))
    for a, b in ranges:
        expected[a:b] = blob[a:b]
    assert got == bytes(expected)
    with pytest.raises(CorruptInputError), open(tmp_path / "out2.dat", "w+b") as fh:
        write_data(src, len(blob) + 1, ranges, fh)


def test_verify_flags_a_slide_id_of_another_form(released, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, out, _ = released
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    mrxs = next((copy / "slides").glob("*.mrxs"))
    ini, index = mrxs.with_suffix("") / "Slidedat.ini", mrxs.with_suffix("") / "Index.dat"
    old = read_ini(ini.read_bytes())["GENERAL"]["SLIDE_ID"].encode()
    new = b"Surname-Givenname-NF00482913-XYZ"  # as long as the pseudonym: Index.dat keeps its offsets
    ini.write_bytes(ini.read_bytes().replace(old, new))
    index.write_bytes(index.read_bytes().replace(old, new))
    assert verify_mirax(mrxs) == ["SLIDE_ID is not a pseudonym medcloak writes"]
    assert verify_mirax(mrxs, "Data0000.dat") == []


def test_the_mrxs_file_alone_as_input_releases_the_slide(tmp_path) -> None:
    sample = make_mirax(tmp_path / "in")
    summary = run([sample.mrxs], tmp_path / "out", secret_file=_key(tmp_path))
    assert (summary.ok, summary.quarantined) == (1, 0)
    assert len(_slide_files(tmp_path / "out")) == 5
