"""The fuzzing campaign in CI (issue 15): structure-aware mutations of real files of every handled
format (see ``tests/fuzzing.py``), run through the engine under tight limits. Every case must end
released (and then pass ``verify``, with no planted identifier left) or quarantined or skipped with
a typed reason: never an internal error, an exception, a hang or memory beyond the ceiling.

Hypothesis draws the cases with a fixed seed (``derandomize``), so every run tries the same ones;
a failing case is not shrunk but reported with its mutation, to be reproduced by hand. The longer
campaign, with its figures, is ``benchmarks/fuzz_campaign.py``; ``-m slow`` runs more cases here.

Every failure fails the test. A failure class found while its reader is being fixed elsewhere
may be listed in :data:`KNOWN` (with the reader to blame) and is then an expected failure, with
a reproducer below; every class found so far is fixed, each reproducer a plain test, and
:data:`KNOWN` is empty.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from pathlib import Path

import fuzzing
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

#: cases per group of seeds in CI (4000 cases: 45 s on 2 quiet cores, about 2 minutes on busy ones)
CASES = {"dicom": 1500, "photo": 900, "slide": 700, "volume": 900}
#: ... and under ``-m slow``
SLOW_CASES = {"dicom": 6000, "photo": 3000, "slide": 3000, "volume": 3000}

#: failure classes of readers being fixed elsewhere: a part of the failure class
#: (``Result.failure_class``) -> the reader that owes the fix (none now: any failure fails CI)
KNOWN: dict[str, str] = {}


@pytest.fixture(scope="module")
def seeds() -> list[fuzzing.Seed]:
    return fuzzing.seeds()


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> fuzzing.Runner:  # type: ignore[no-untyped-def]
    return fuzzing.Runner(tmp_path_factory.mktemp("fuzz"))


def campaign(seeds: list[fuzzing.Seed], runner: fuzzing.Runner, group: str, cases: int) -> list[fuzzing.Result]:
    """``cases`` cases drawn by hypothesis (fixed seed) from the seeds of ``group``."""
    mine = [s for s in seeds if fuzzing.group(s) == group]
    results: list[fuzzing.Result] = []

    @settings(max_examples=cases, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(mine).flatmap(lambda s: st.tuples(st.just(s), st.sampled_from(sorted(
        fuzzing.MUTATIONS[s.family])))), st.randoms(use_true_random=False))
    def one(seed_op: tuple[fuzzing.Seed, str], rng: random.Random) -> None:
        seed, op = seed_op
        results.append(runner.run(fuzzing.mutate(seed, op, rng)))

    one()
    return results


def _check(results: list[fuzzing.Result]) -> None:
    failures = [r for r in results if r.outcome == "failure"]
    unknown = [r for r in failures if not any(k in r.failure_class for k in KNOWN)]
    assert not unknown, "\n".join(f"{r.failure_class}: {r.case.seed.label} {r.case.op}: {r.case.note} -> {r.reason}"
                                  for r in unknown[:20])
    # the campaign reached both ends: released objects and typed quarantines
    outcomes = Counter(r.outcome for r in results)
    assert outcomes["released"] and outcomes["quarantined"], outcomes
    if failures:
        classes = sorted({next(v for k, v in KNOWN.items() if k in r.failure_class) for r in failures})
        pytest.xfail("known failures of readers being fixed elsewhere: " + "; ".join(classes))


@pytest.mark.parametrize("group", sorted(CASES))
def test_fuzz_campaign(seeds, runner, group) -> None:  # type: ignore[no-untyped-def]
    _check(campaign(seeds, runner, group, CASES[group]))


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(SLOW_CASES))
def test_fuzz_campaign_long(seeds, runner, group, request) -> None:  # type: ignore[no-untyped-def]
    """Opt-in: ``pytest -m slow tests/test_fuzz.py`` (CI runs every test, and this one takes minutes)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the long campaign runs under -m slow")
    _check(campaign(seeds, runner, group, SLOW_CASES[group]))


# ---- the harness itself ----------------------------------------------------------------------------


def test_every_seed_is_released_unchanged(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """The seeds themselves are released (MINC: quarantined, its phantom has no brain), and their
    planted identifiers are gone: the campaign starts from objects that pass."""
    for seed in seeds:
        result = runner.run(fuzzing.Case(seed, seed.data, "none", "", seed.companions))
        assert result.outcome == ("quarantined" if seed.family == "minc" else "released"), (seed.label, result)


def test_the_check_sees_a_planted_identifier(seeds, runner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A release that still carries a planted name is a failure (the check can fail)."""
    from medcloak.formats import photo

    seed = next(s for s in seeds if s.family == "png")
    monkeypatch.setattr(photo, "deidentify_photo", _leaky(photo.deidentify_photo, seed.data))
    result = runner.run(fuzzing.Case(seed, seed.data, "none", ""))
    assert result.outcome == "failure" and "planted identifier" in result.reason, result


def _leaky(real, data):  # type: ignore[no-untyped-def]
    import dataclasses

    def deidentify(*args, **kwargs):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(*args, **kwargs), data=data)

    return deidentify


def test_the_check_sees_an_internal_error(seeds, runner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats import photo

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyError("x")

    monkeypatch.setattr(photo, "deidentify_photo", broken)
    seed = next(s for s in seeds if s.family == "jpeg")
    result = runner.run(fuzzing.Case(seed, seed.data, "none", ""))
    assert result.outcome == "failure" and result.error == "KeyError" and "photo" in result.where, result


def test_a_case_the_engine_stops_in_time_is_a_typed_quarantine(seeds, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A reader looping in Python is stopped by the engine's own time limit (``--object-timeout``)
    and quarantined with its reason: the behaviour wanted, not a failure."""
    from medcloak.formats import photo

    def loop(*args, **kwargs):  # type: ignore[no-untyped-def]
        while True:
            pass

    monkeypatch.setattr(photo, "deidentify_photo", loop)
    runner = fuzzing.Runner(tmp_path, case_seconds=0.2, grace=2.0)
    seed = next(s for s in seeds if s.family == "jpeg")
    result = runner.run(fuzzing.Case(seed, seed.data, "none", ""))
    assert result.outcome == "quarantined" and result.error == "LimitError", result
    assert result.reason == "took longer than 0.2 s (--object-timeout)", result


def test_the_check_sees_a_hang_the_engine_does_not_stop(seeds, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A blocking call the engine's watchdog cannot interrupt (as a C codec's loop would be) runs
    past the engine's limit and its grace: a failure ("hang"), however the case ends after it."""
    import time

    from medcloak.formats import photo

    monkeypatch.setattr(photo, "deidentify_photo", lambda *a, **k: time.sleep(30))
    runner = fuzzing.Runner(tmp_path, case_seconds=0.2, grace=0.5)
    seed = next(s for s in seeds if s.family == "jpeg")
    result = runner.run(fuzzing.Case(seed, seed.data, "none", ""))
    assert result.outcome == "failure" and result.reason == "hang", result


def test_mutations_are_structural_and_deterministic(seeds) -> None:  # type: ignore[no-untyped-def]
    """Every mutation of every seed changes it the same way for the same random source."""
    for seed in seeds:
        for op in fuzzing.MUTATIONS[seed.family]:
            if op == "bomb":
                continue  # made once per process: its own test below
            a, b = fuzzing.mutate(seed, op, random.Random(5)), fuzzing.mutate(seed, op, random.Random(5))
            assert (a.data, a.companions, a.note) == (b.data, b.companions, b.note), (seed.label, op)
    dicom = next(s for s in seeds if s.label == "dicom explicit-le")
    lay = fuzzing.dicom_layout(dicom.data)
    assert len(lay.boundaries) > 100 and any(dicom.data[b:b + 4] == b"\xe0\x7f\x10\x00" for b in lay.boundaries)


def test_the_bombs_are_small_on_disk_and_huge_inflated(seeds) -> None:  # type: ignore[no-untyped-def]
    import gzip
    import zlib

    deflated = next(s for s in seeds if s.label == "dicom deflated")
    bomb = fuzzing.deflated_dicom_bomb(deflated.data)
    assert len(bomb) < 1 << 20
    d = zlib.decompressobj(-15)
    assert len(d.decompress(bomb[fuzzing.dicom_body_offset(bomb):], 300 << 20)) > fuzzing.BOMB_MB << 20
    gz = next(s for s in seeds if s.family == "gzip")
    nifti = fuzzing.nifti_gzip_bomb(gzip.decompress(gz.data))
    assert len(nifti) < 1 << 20 and struct.unpack("<4h", gzip.decompress(nifti)[40:48]) == (3, 2048, 2048, 1024)
    png = fuzzing.png_idat_bomb()
    assert len(png) < 1 << 20 and struct.unpack(">II", png[16:24]) == (16384, 16384)


# ---- reproducers of the failure classes the campaign found (each fixed) ----


def _run_one(runner: fuzzing.Runner, seeds: list[fuzzing.Seed], label: str, data: bytes) -> fuzzing.Result:
    seed = next(s for s in seeds if s.label == label)
    return runner.run(fuzzing.Case(seed, data, "repro", "", seed.companions))


def test_repro_deflated_bomb_is_refused_within_the_limit(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """4.7 KB of deflated DICOM plus a private OB element of 256 MB of zeros (a few hundred KB)."""
    deflated = next(s for s in seeds if s.label == "dicom deflated")
    result = _run_one(runner, seeds, "dicom deflated", fuzzing.deflated_dicom_bomb(deflated.data))
    assert result.outcome == "quarantined" and result.error == "LimitError", result


def test_repro_sniff_of_a_corrupt_gzip(seeds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A .nii.gz whose deflate stream is broken early: the NIfTI sniff let zlib.error out (a run
    survived it, discovery called it unknown); a sniff answers, never raises: not a volume."""
    from medcloak.formats.volume import sniff as header_kind
    from medcloak.handlers import sniff

    gz = next(s for s in seeds if s.family == "gzip")
    data = bytearray(gz.data)
    data[20] ^= 0xFF  # inside the first deflate block's code lengths
    path = tmp_path / "x.nii.gz"
    path.write_bytes(bytes(data))
    assert header_kind(bytes(data[:4096])) is None
    assert sniff(bytes(data[:512]), path) == "unknown"


def test_repro_nifti_extreme_dims_and_offset(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """NIfTI-1 whose dim[5] is -32768 and vox_offset huge: an internal error (ValueError)."""
    seed = next(s for s in seeds if s.label == "nifti-1")
    data = bytearray(seed.data)
    data[50:52] = (0x8000).to_bytes(2, "little")
    data[108:112] = (0x43AFFFFF).to_bytes(4, "little")
    data[40:42] = (0x3D61).to_bytes(2, "little")
    result = _run_one(runner, seeds, "nifti-1", bytes(data))
    assert result.outcome != "failure", result


def test_repro_gzip_bomb_is_refused_within_the_limit(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """A .nii.gz of a few hundred KB: a header declaring 2048 x 2048 x 1024 int16 and 256 MB of zeros."""
    import gzip

    gz = next(s for s in seeds if s.family == "gzip")
    result = _run_one(runner, seeds, "nifti-1 gz", fuzzing.nifti_gzip_bomb(gzip.decompress(gz.data)))
    assert result.outcome == "quarantined" and result.error == "LimitError", result


def test_repro_minc2_damaged_data_chunk(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    seed = next(s for s in seeds if s.label == "minc-2")  # nibabel's minc2_1_scale.mnc
    data = bytearray(seed.data)
    data[14976] ^= 0xFF
    result = _run_one(runner, seeds, "minc-2", bytes(data))
    assert result.outcome != "failure", result


def test_repro_dicom_rows_of_a_vr_that_does_not_exist(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    seed = next(s for s in seeds if s.label == "dicom explicit-le")
    result = _run_one(runner, seeds, "dicom explicit-le", _patched(seed, b"\x28\x00\x10\x00US", b"\x28\x00\x10\x00QS"))
    assert result.outcome != "failure", result


def test_repro_svs_next_ifd_offset_into_the_header(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """openslide-python_small.svs with 2 at byte 362 (its ImageDescription's offset: the text is
    no longer "Aperio..."): read as a generic slide (a tiled page and another), released with its
    one level, in which ``verify`` then found "no pyramid". Refused before release now."""
    seed = next(s for s in seeds if s.label == "slide svs")
    data = seed.data[:362] + (2).to_bytes(4, "little") + seed.data[366:]
    result = _run_one(runner, seeds, "slide svs", data)
    assert result.outcome == "quarantined" and result.error == "UnsupportedInputError", result
    assert "would not be a slide" in result.reason, result


def test_repro_tiff_tag_of_count_zero(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """The TIFF photo (Pillow, deflate) whose Compression entry declares a count of 0 raised
    IndexError in strip_tiff_metadata: a tag of the image's structure without a value is corrupt."""
    seed = next(s for s in seeds if s.label == "tiff photo")
    data = seed.data[:4670] + bytes(4) + seed.data[4674:]
    result = _run_one(runner, seeds, "tiff photo", data)
    assert result.outcome == "quarantined" and result.error == "CorruptInputError", result
    assert "count 0" in result.reason, result


def test_repro_dicom_file_meta_element_given_the_vr_sq(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """File Meta Information Group Length given the VR SQ: pydicom's BytesLengthException came out
    of ``read`` (an internal error); it is corrupt input."""
    seed = next(s for s in seeds if s.label == "dicom implicit-le")  # rtplan.dcm
    data = seed.data[:136] + b"SQ" + seed.data[138:]  # File Meta Information Group Length's VR
    result = _run_one(runner, seeds, "dicom implicit-le", data)
    assert result.outcome == "quarantined" and result.error == "CorruptInputError", result


def test_repro_dicom_specific_character_set_given_the_vr_us(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """Specific Character Set given the VR US (one VR swap of the JPEG lossless seed): pydicom
    raised TypeError in ``read`` (a number where it wants the name of a character set), an
    internal error in a full run of the suite; it is corrupt input."""
    seed = next(s for s in seeds if s.name == "jpeg-lossless.dcm")
    at = seed.data.index(b"\x08\x00\x05\x00CS") + 4  # (0008,0005)'s VR
    result = _run_one(runner, seeds, seed.label, seed.data[:at] + b"US" + seed.data[at + 2:])
    assert result.outcome == "quarantined" and result.error == "CorruptInputError", result


def test_repro_nifti2_dims_huge_and_negative(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    seed = next(s for s in seeds if s.label == "nifti-2")
    data = bytearray(seed.data)
    data[24:32] = (1 << 40).to_bytes(8, "little")
    data[32:40] = (-1).to_bytes(8, "little", signed=True)
    data[168:176] = len(seed.data).to_bytes(8, "little")  # vox_offset at the end of the file
    result = _run_one(runner, seeds, "nifti-2", bytes(data))
    assert result.outcome != "failure", result


def test_fuzz_results_path(tmp_path: Path) -> None:
    """The runner works on a real disk folder of its own (never the release of another test)."""
    runner = fuzzing.Runner(tmp_path)
    assert Path(runner.job.out).parent == tmp_path


# ---- failure classes found and fixed on this branch -------------------------------------------------


def _patched(seed: fuzzing.Seed, old: bytes, new: bytes) -> bytes:
    assert old in seed.data
    return seed.data.replace(old, new)


def test_found_a_damaged_class_uid_is_refused_not_released_invalid(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """A bit flip in SOP Class UID (kept as it is) was released, and ``verify`` rejected the
    release ("invalid UID in SOPClassUID")."""
    seed = next(s for s in seeds if s.label == "dicom jpeg-baseline")
    data = _patched(seed, b"1.2.840.10008.5.1.4.1.1.7", b"1.2.840.10008.5.Q.4.1.1.7")
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and result.reason == "invalid UID in SOPClassUID", result


def test_found_a_uid_attribute_under_another_vr_is_refused(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """Series Instance UID stored with the VR US was given a dummy number: released without a
    Series Instance UID, which ``verify`` rejected."""
    seed = next(s for s in seeds if s.label == "dicom explicit-le")
    data = _patched(seed, b"\x20\x00\x0e\x00UI", b"\x20\x00\x0e\x00US")
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and "SeriesInstanceUID" in result.reason, result


def test_found_a_name_stored_under_a_binary_vr_is_refused(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """Patient Name stored with the VR US was given a text pseudonym under VR US, which the writer
    could not write (an internal error, OSError)."""
    seed = next(s for s in seeds if s.label == "dicom explicit-le")
    data = _patched(seed, b"\x10\x00\x10\x00PN", b"\x10\x00\x10\x00US")
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and result.reason.startswith("PatientName is stored with the VR US"), result


def test_found_a_comment_marked_as_dhp_or_a_reserved_marker_leaves_no_text(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """A JPEG's COM marker damaged into DHP (FFFE -> FFDE, one bit) was copied as a coding
    segment, the patient's ID in it released; a segment of a reserved marker (FF02) was too."""
    seed = next(s for s in seeds if s.family == "jpeg")
    at = seed.data.index(b"\xff\xfe")
    result = runner.run(fuzzing.Case(seed, seed.data[:at] + b"\xff\xde" + seed.data[at + 2:], "repro", ""))
    assert result.outcome == "quarantined" and "DHP" in result.reason, result
    reserved = b"\xff\x02\x00\x10" + fuzzing.PLANTED[1].encode() + b"\x00\x00\x00"
    result = runner.run(fuzzing.Case(seed, seed.data[:2] + reserved + seed.data[2:], "repro", ""))
    assert result.outcome == "released", result


def test_found_an_element_of_a_vr_that_does_not_exist_is_refused(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """An element whose VR is "XX" was released as it was (pydicom cannot read its value, so
    ``verify`` raised on it), or ended as an internal error (NotImplementedError)."""
    seed = next(s for s in seeds if s.label == "dicom jpeg-2000")
    data = _patched(seed, b"\x28\x00\x09\x00AT", b"\x28\x00\x09\x00XX")  # Frame Increment Pointer
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and "VR" in result.reason, result
    seed = next(s for s in seeds if s.label == "dicom explicit-le")  # a private element's VR too
    at = seed.data.index(b"\x09\x00\x10\x00LO")
    data = seed.data[:at + 4] + b"XX" + seed.data[at + 6:]
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and "VR" in result.reason, result


def test_found_a_file_meta_element_of_a_vr_that_does_not_exist_is_refused(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """A File Meta Information element whose VR is "XX" (Media Storage SOP Class UID, the element
    at byte 158) reached ``deidentify_dicom``, where pydicom raised NotImplementedError reading it (an
    internal error; the long campaign found it in every DICOM seed)."""
    for label in ("dicom implicit-le", "dicom big-endian", "dicom slide"):
        seed = next(s for s in seeds if s.label == label)
        assert seed.data[158:164] == b"\x02\x00\x02\x00UI", label
        data = seed.data[:162] + b"XX" + seed.data[164:]
        result = runner.run(fuzzing.Case(seed, data, "repro", "", seed.companions))
        assert result.outcome == "quarantined" and result.error == "CorruptInputError", (label, result)
        assert "File Meta Information element of a VR" in result.reason, (label, result)


def test_found_a_text_tag_damaged_into_a_kept_tag_is_refused(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """ImageDescription (270, ASCII, with a planted name) damaged into XPosition (286, one bit):
    a tag the TIFF writer keeps, so its text was released (the long campaign found it). A kept
    tag of a type or count it cannot have is refused."""
    seed = next(s for s in seeds if s.label == "tiff photo")
    data = _patched(seed, b"\x0e\x01\x02\x00", b"\x1e\x01\x02\x00")
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and result.reason == "TIFF tag 286 of a type or a count it cannot have", result
    data = _patched(seed, b"\x0e\x01\x02\x00", b"\x1e\x01\x03\x00")  # as 23 SHORTs
    result = runner.run(fuzzing.Case(seed, data, "repro", ""))
    assert result.outcome == "quarantined" and result.reason == "TIFF tag 286 of a type or a count it cannot have", result


def test_found_a_vendor_told_by_a_text_the_cleaner_drops(seeds, runner) -> None:  # type: ignore[no-untyped-def]
    """The SVS whose ImageDescription's type is damaged (ASCII 2 -> 66, one bit at byte 356): it
    was read as Aperio by that text, which the cleaner then dropped (no ASCII), so the release
    was a generic slide whose thumbnail ``verify`` wanted removed. The vendor is told only by
    text the cleaner keeps: a generic slide of one page once its thumbnail is removed, refused."""
    seed = next(s for s in seeds if s.label == "slide svs")
    assert seed.data[354:358] == b"\x0e\x01\x02\x00"  # ImageDescription, ASCII
    data = seed.data[:356] + b"\x42" + seed.data[357:]
    result = runner.run(fuzzing.Case(seed, data, "repro", "", seed.companions))
    assert result.outcome == "quarantined" and "would not be a slide" in result.reason, result


def test_found_a_sniff_that_raises_does_not_stop_the_run(seeds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A .nii.gz whose deflate stream is broken early made the volume sniff raise zlib.error,
    which stopped discovery and so the whole run; the file is now quarantined and the run goes on."""
    from conftest import SECRET

    from medcloak.engine import run

    gz = next(s for s in seeds if s.family == "gzip")
    data = bytearray(gz.data)
    data[20] ^= 0xFF
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.nii.gz").write_bytes(bytes(data))
    (tmp_path / "in" / "photo.jpg").write_bytes(next(s for s in seeds if s.family == "jpeg").data)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=key)
    assert (summary.ok, summary.quarantined) == (1, 1), summary


def test_found_verify_reports_an_unreadable_value_instead_of_raising(seeds, runner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``verify`` met a released file whose value pydicom cannot decode (a VR that does not
    exist) and raised NotImplementedError, which would stop ``medcloak verify`` on the release."""
    from medcloak.handlers import dicom
    from medcloak.handlers.base import VerifyContext

    seed = next(s for s in seeds if s.label == "dicom explicit-le")
    result = runner.run(fuzzing.Case(seed, seed.data, "none", ""))
    assert result.outcome == "released"
    out = next(Path(runner.job.out).rglob("*.dcm"))
    data = out.read_bytes()
    at = data.find(b"\x28\x00\x10\x00US")  # Rows
    damaged = tmp_path / "x.dcm"
    damaged.write_bytes(data[:at + 4] + b"XX" + data[at + 6:])
    findings = dicom.verify(damaged, "x.dcm", VerifyContext(runner.profile))
    assert any(f.level == "error" and "unreadable" in f.message for f in findings), findings
