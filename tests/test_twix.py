"""Siemens twix raw data (:mod:`medcloak.formats.twix`, :mod:`medcloak.handlers.twix`): VB and
VD/VE files made by tests/twix_sample.py from the format's description, with identifiers planted
in every header key the format documents for them and in the VD measurement table. A release
holds none of them in any byte or name, has the input's length and raw data bytes, and reads
with twixtools (PyPI ``gt-twixtools``) and with pymapvbvd (PyPI ``pymapvbvd``) to the same
k-space."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import twix_sample as ts
from conftest import SECRET

from medcloak.engine import Job, make_settings, process_task, run
from medcloak.errors import CorruptInputError
from medcloak.formats.twix import Policy, clean_twix
from medcloak.handlers import sniff
from medcloak.model import Source, Task
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile
from medcloak.verify import verify_release

#: planted values that every profile removes (characteristics, device, institution: by option)
ALWAYS = ("name", "id", "birth", "physician", "operator", "date", "comment", "protocol", "loid")


def _release(tmp_path: Path, path: Path, options: tuple[str, ...] = ()) -> Path:
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    summary = run([path.parent], tmp_path / "out", secret_file=key, options=list(options))
    assert summary.ok == 1 and summary.quarantined == 0
    (out,) = [p for p in (tmp_path / "out").rglob("*.dat")]
    return out


def _header_end(data: bytes, layout: str) -> list[tuple[int, int]]:
    """(header end, measurement end) of each measurement, from the file's own declared lengths."""
    if layout == "vb":
        return [(struct.unpack_from("<I", data, 0)[0], len(data))]
    count = struct.unpack_from("<I", data, 4)[0]
    out = []
    for k in range(count):
        off, length = struct.unpack_from("<QQ", data, 8 + k * 152 + 8)
        out.append((off + struct.unpack_from("<I", data, off)[0], off + length))
    return out


@pytest.mark.parametrize("layout", ["vb", "vd"])
def test_release_holds_no_planted_value_and_the_same_raw_data(tmp_path, layout) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in" / "Surname_Givenname"
    src.mkdir(parents=True)
    path = (ts.make_vb if layout == "vb" else ts.make_vd)(src / "meas_MID00042_Surname.dat")
    before = path.read_bytes()
    assert all(ts.PLANTED[k].encode() in before for k in ts.PLANTED)
    out = _release(tmp_path, path)
    after = out.read_bytes()
    rel = out.relative_to(tmp_path / "out").as_posix()
    assert rel.startswith("twix/") and "surname" not in rel.lower() and "mid00042" not in rel.lower()
    for key, value in ts.PLANTED.items():
        assert value.lower().encode() not in after.lower(), key
    for part in ("Surname", "Givenname", "NF00482913", "Hildegard", "Operatorsson"):
        assert part.lower().encode() not in after.lower()
    assert len(after) == len(before)
    for header_end, end in _header_end(before, layout):
        assert after[header_end:end] == before[header_end:end]
    assert ts.SEQUENCE.encode() in after  # the sequence stays
    original, released = ts.read_kspace(path), ts.read_kspace(out)
    assert [len(s) for s in released] == [len(s) for s in original] and sum(map(len, original)) > 0
    for a, b in zip(original, released):
        for (la, da), (lb, db) in zip(a, b):
            assert la == lb and np.array_equal(da, db)
    assert verify_release(tmp_path / "out", tmp_path / "out.audit") == []


@pytest.mark.parametrize("layout", ["vb", "vd"])
def test_pymapvbvd_reads_the_same_kspace_and_image_header_values(tmp_path, layout) -> None:  # type: ignore[no-untyped-def]
    """A second real reader (pymapvbvd, the Python port of mapVBVD): every measurement's readouts
    and the header values a reconstruction reads are the same in the release as in the input,
    and the same readouts as twixtools reads; the identifying values read back empty."""
    src = tmp_path / "in"
    src.mkdir()
    path = (ts.make_vb if layout == "vb" else ts.make_vd)(src / "meas.dat", sync=200)  # sync data: skipped by both
    out = _release(tmp_path, path)
    original, released = ts.read_mapvbvd(path), ts.read_mapvbvd(out)
    assert len(original) == len(released) == (1 if layout == "vb" else 2)
    for (ka, ha), (kb, hb), lines in zip(original, released, ts.read_kspace(path)):
        assert ka.shape == (16, 2, 4) and np.array_equal(ka, kb)
        assert np.array_equal(ka, np.stack([data.T for _, data in lines], axis=-1))  # what twixtools reads
        image = [(ha[buf].get(key), hb[buf].get(key)) for buf, key in ts.IMAGE_KEYS]
        assert all(a == b and a is not None for a, b in image), image
        assert ha["Meas"]["lBaseResolution"] == 8 and ha["Config"]["PatientPosition"] == "HFS"
        assert ha["Config"]["PatientName"] == ts.PLANTED["name"] and hb["Config"]["PatientName"] == ""
        assert hb["Dicom"]["PatientID"] == "" and hb["Dicom"]["PatientBirthDay"] == ""


def test_options_keep_what_they_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """retain-device-identity keeps the serial, retain-institution-identity the institution,
    retain-long-full-dates the dates; the patient's identity goes all the same."""
    path = ts.make_vb(tmp_path / "a.dat")
    kept = clean_twix(path, Policy(dates=True, characteristics=True, device=True, institution=True))
    blank = clean_twix(path, Policy())
    assert "Dicom>DeviceSerialNumber" not in kept.changed and "Dicom>DeviceSerialNumber" in blank.changed
    assert "Dicom>InstitutionName" not in kept.changed and "Dicom>StudyDate" not in kept.changed
    assert "Dicom>PatientSex" not in kept.changed and "Dicom>PatientSex" in blank.changed
    assert "Dicom>PatientName" in kept.changed and "Dicom>tProtocolName" in kept.changed
    (tmp_path / "src").mkdir()
    (tmp_path / "r").mkdir()
    out = _release(tmp_path / "r", ts.make_vb(tmp_path / "src" / "b.dat"), ("retain-device-identity",))
    data = out.read_bytes()
    assert ts.PLANTED["serial"].encode() in data and ts.PLANTED["name"].encode() not in data


def test_review_record_names_what_was_blanked_and_the_kept_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = ts.make_vd(tmp_path / "x.dat")
    job = Job(load_profile(), Keyring(SECRET), str(tmp_path / "out"), settings=make_settings({}))
    (outcome,) = process_task(Task(Source(str(path), "twix", path.stat().st_size), "id"), job)
    assert outcome.status == "ok"
    review = outcome.review
    assert review["format"] == "twix" and review["changed"]["MultiRaidFileHeader>patName"] == "emptied"
    assert review["changed"]["MeasYaps>tProtocolName"] == "emptied"
    assert ts.SEQUENCE in review["text"]["MeasYaps>tSequenceFileName"]
    assert not any(ts.PLANTED["name"] in v for vs in review["text"].values() for v in vs)


def _quarantined(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "broken.dat"
    path.write_bytes(data)
    job = Job(load_profile(), Keyring(SECRET), str(tmp_path / "out"), settings=make_settings({}))
    (outcome,) = process_task(Task(Source(str(path), "twix", len(data)), "id"), job)
    assert outcome.status == "quarantined" and not outcome.outputs
    return outcome.reason


def test_truncated_and_inconsistent_files_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vb = ts.make_vb(tmp_path / "vb.dat").read_bytes()
    vd = ts.make_vd(tmp_path / "vd.dat").read_bytes()
    assert "truncated" in _quarantined(tmp_path, vd[: len(vd) - 100])  # a measurement beyond the end
    assert "header" in _quarantined(tmp_path, vb[:9000])  # the header beyond the file
    bad = bytearray(vb)
    struct.pack_into("<I", bad, 8 + len(b"Config\x00"), 1 << 30)  # Config's length beyond its header
    assert "beyond" in _quarantined(tmp_path, bytes(bad))
    overlap = bytearray(vd)
    struct.pack_into("<Q", overlap, 8 + 152 + 8, struct.unpack_from("<Q", vd, 16)[0] + 512)  # 2nd inside the 1st
    assert "overlap" in _quarantined(tmp_path, bytes(overlap))
    with pytest.raises(CorruptInputError):
        clean_twix(_write(tmp_path / "g.dat", vd[:9000]), Policy())  # the measurement table cut short


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_sniff(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for make in (ts.make_vb, ts.make_vd):
        path = make(tmp_path / f"{make.__name__}.dat")
        assert sniff(path.read_bytes()[:512], path) == "twix"
    other = _write(tmp_path / "o.dat", b"\x00\x00\x00\x00\x02\x00\x00\x00" + b"\x00" * 600)
    assert sniff(other.read_bytes()[:512], other) != "twix"


def test_the_copy_without_copy_file_range_writes_the_same_bytes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Where the kernel or the file system offers no copy_file_range, the raw data goes through
    a bounded buffer: the same bytes, the same digest."""
    import hashlib
    import os

    from medcloak.formats import twix

    path = ts.make_vd(tmp_path / "a.dat")
    cleaned = clean_twix(path, Policy())
    outs = []
    for kernel in (True, False):
        if not kernel:
            def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
                raise OSError(18, "Invalid cross-device link")
            monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
        monkeypatch.setattr(twix, "CHUNK", 1000)  # several pieces per segment
        with open(tmp_path / f"out{kernel}", "w+b") as fh:
            digest = twix.write_patched(path, cleaned.patches, fh, cleaned.size)
        data = (tmp_path / f"out{kernel}").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == cleaned.size
        outs.append(data)
    assert outs[0] == outs[1] and ts.PLANTED["name"].encode() not in outs[0]


def _entry(data: bytes, k: int) -> tuple[int, int]:
    return struct.unpack_from("<QQ", data, 8 + k * 152 + 8)


def _with_length(data: bytes, k: int, length: int) -> bytes:
    """``data`` with measurement ``k``'s declared length set to ``length`` (and the file cut
    there when it is the last measurement)."""
    out = bytearray(data)
    off, _ = _entry(data, k)
    struct.pack_into("<Q", out, 8 + k * 152 + 16, length)
    return bytes(out[: off + length]) if k == struct.unpack_from("<I", data, 4)[0] - 1 else bytes(out)


def test_raw_data_cut_short_or_inconsistent_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The raw data is walked from header to header (never read): a file cut inside a readout,
    inside a measurement data header, between readouts, before or inside its ACQEND, or with
    more than padding after it, is quarantined with the reason."""
    vb = ts.make_vb(tmp_path / "vb.dat").read_bytes()
    start = struct.unpack_from("<I", vb, 0)[0]  # the raw data: 4 readouts of 2 x (128 + 16 x 8), ACQEND
    assert len(vb) == start + 4 * 512 + 128
    cases = {
        "inside a readout": vb[: start + 512 + 300],
        "inside a measurement data header": vb[: start + 2 * 512 + 50],
        "ends without ACQEND": vb[: start + 2 * 512],  # between readouts
        "without ACQEND": vb[: start + 4 * 512],  # all readouts, no ACQEND
        "inside a measurement data header ": vb[: len(vb) - 60],  # inside the ACQEND
        "after the raw data's ACQEND": vb + bytes(600),
        "does not match its scan": vb[: start + 8] + struct.pack("<I", 0) + vb[start + 12:],  # scan counter 0
    }
    mdh = bytearray(vb)
    struct.pack_into("<H", mdh, start + 512 + 28, 15)  # one readout's samples: its channels misplaced
    cases["channel header does not match"] = bytes(mdh)
    for reason, data in cases.items():
        assert reason.strip() in _quarantined(tmp_path, data), reason
    vd = ts.make_vd(tmp_path / "vd.dat", count=3).read_bytes()
    for k in (0, 2):  # a measurement's data cut short: its table length (and the file, for the last) short
        off, length = _entry(vd, k)
        data_at = off + struct.unpack_from("<I", vd, off)[0]
        block = 192 + 2 * (32 + 16 * 8)
        for cut, reason in ((data_at + block + 300, "inside a readout"), (data_at + 2 * block, "without ACQEND"),
                            (data_at + block + 20, "inside a measurement data header"),
                            (data_at + 4 * block, "without ACQEND"), (data_at + 4 * block + 100, "inside a")):
            assert reason in _quarantined(tmp_path, _with_length(vd, k, cut - off)), (k, cut, reason)
    chan = bytearray(vd)
    off, _ = _entry(vd, 1)
    first = off + struct.unpack_from("<I", vd, off)[0] + 192
    struct.pack_into("<I", chan, first + 8, 99)  # the first readout's first channel header: another scan's
    assert "does not match its scan" in _quarantined(tmp_path, bytes(chan))
    off, length = _entry(vd, 2)
    assert "more than its padding" in _quarantined(tmp_path, _with_length(vd + bytes(1024), 2, length + 1024))


def test_every_clean_file_walks_to_its_acqend(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """VB and VD/VE files of one to four measurements, with or without sync data, their lengths
    with the padding to 512 bytes or without, an ACQEND of no DMA length: each measurement's raw
    data walks to its ACQEND and the file is released."""
    import os

    from medcloak.formats.twix import walk_data

    made = [ts.make_vb(tmp_path / "vb.dat"), ts.make_vb(tmp_path / "vbs.dat", lines=9, sync=200)]
    made += [ts.make_vd(tmp_path / f"vd{n}.dat", count=n, lines=2 + n, sync=n * 100) for n in (1, 3, 4)]
    exact = ts.make_vd(tmp_path / "exact.dat", count=2).read_bytes()
    for k in range(2):  # each measurement's length up to its ACQEND's end, the padding not counted
        off, length = _entry(exact, k)
        header_len = struct.unpack_from("<I", exact, off)[0]
        exact = _with_length(exact, k, header_len + 4 * (192 + 2 * (32 + 16 * 8)) + 192)  # 4 readouts, ACQEND
    made.append(_write(tmp_path / "exact.dat", exact))
    zero = bytearray(ts.make_vb(tmp_path / "zero.dat").read_bytes())
    zero[-128:-124] = bytes(4)  # an ACQEND of DMA length 0 (readers stop at the flag, whatever its length)
    made.append(_write(tmp_path / "zero.dat", bytes(zero)))
    for path in made:
        data = path.read_bytes()
        spans = [(0, len(data))] if data[8:15] == b"Config\x00" else [
            _entry(data, k) for k in range(struct.unpack_from("<I", data, 4)[0])]
        with open(path, "rb") as fh:
            for off, length in spans:
                start = off + struct.unpack_from("<I", data, off)[0]
                blocks = walk_data(fh.fileno(), start, off + length, "vb" if len(spans) == 1 and off == 0 else "vd", "m")
                assert blocks >= 3
        job = Job(load_profile(), Keyring(SECRET), str(tmp_path / "out"), settings=make_settings({}))
        (outcome,) = process_task(Task(Source(str(path), "twix", os.path.getsize(path)), "id"), job)
        assert outcome.status == "ok", (path.name, outcome.reason)


@pytest.mark.parametrize("layout", ["vb", "vd"])
def test_clean_descriptors_keeps_protocol_names_cleaned(tmp_path, layout) -> None:  # type: ignore[no-untyped-def]
    """Under Clean Descriptors the protocol name (and the other descriptors) stays, as DICOM's
    Protocol Name does, the patient's names (a three-letter one too), the study date and the
    record number masked in place; without the option it is blanked whole. Either way no removed
    identity value is left in any byte, and the file has its length and its k-space."""
    planted = {**ts.PLANTED, "name": "Lee^Givenname", "protocol": "t1_mprage Lee 20240311 NF00482913",
               "comment": "tumour of Mrs Lee"}
    src = tmp_path / "in"
    src.mkdir()
    path = (ts.make_vb if layout == "vb" else ts.make_vd)(src / "meas.dat", planted=planted)
    before = path.read_bytes()
    for name in ("kept", "basic"):
        (tmp_path / name).mkdir()
    kept = _release(tmp_path / "kept", path, ("clean-descriptors",)).read_bytes()
    basic = _release(tmp_path / "basic", path).read_bytes()
    assert len(kept) == len(basic) == len(before)
    assert b"t1_mprage" in kept and b"t1_mprage" not in basic
    for data in (kept, basic):
        for value in ("Lee ", "Lee^", "Lee\"", "Givenname", planted["id"], planted["birth"], planted["date"],
                      "Operatorsson", "Drreferring"):
            assert value.encode() not in data, value
    assert b'"study of ***"' in kept  # StudyDescription: the name masked, the words kept
    out = (tmp_path / "kept" / "out")
    assert verify_release(out, tmp_path / "kept" / "out.audit") == []
    assert [len(s) for s in ts.read_kspace(out.rglob("*.dat").__next__())] == [len(s) for s in ts.read_kspace(path)]


def test_descriptor_rules_follow_the_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each descriptor key follows its DICOM attribute's rule in the profile: blanked (Basic
    Profile), cleaned (Clean Descriptors), kept (a site's ``keep``) or cleaned by the site's
    pattern; a kept one still loses every identity value blanked elsewhere, in place."""
    from medcloak.formats.twix import _later, clean_descriptor
    from medcloak.handlers.twix import descriptors

    assert descriptors(load_profile()) == {}
    clean = descriptors(load_profile(None, ["clean-descriptors"]))
    assert clean["protocolname"] == ("C", None) and set(clean) == {
        "protocolname", "seriesdescription", "studydescription", "patientcomments", "imagecomments", "studycomments"}
    site = tmp_path / "site.toml"
    site.write_text('[attributes]\nProtocolName = "keep"\nSeriesDescription = { regex-clean = "HEAD[0-9]+" }\n')
    rules = descriptors(load_profile(site))
    assert rules["protocolname"][0] == "K" and rules["seriesdescription"] == ("E", "HEAD[0-9]+")
    assert "studydescription" not in rules
    value = b' "Lee t1 HEAD42 2024-03-11" '
    assert clean_descriptor(value, ("C", None), [b"Lee^Anna"]) == b' "*** t1 HEAD42 ***" '.ljust(len(value))
    assert clean_descriptor(value, ("E", "HEAD[0-9]+"), []) == b' "Lee t1 *** 2024-03-11" '.ljust(len(value))
    assert clean_descriptor(value, ("K", None), []) == value
    assert clean_descriptor(value, ("X", None), []).replace(b" ", b"") == b'""'
    assert clean_descriptor(b'"Lee"', ("C", None), [b'Lee"']) == b'"   "'  # a quote masked: blanked instead
    spans: list[tuple[int, int, str, str]] = []
    for span in ((10, 50, "a", "protocolname"), (20, 30, "b", "seriesdescription")):  # the second inside the first
        _later(spans, span)
    assert spans == [(10, 50, "a", "protocolname")]
    with pytest.raises(CorruptInputError):  # one across another cannot be cleaned in place
        _later(spans, (40, 60, "c", "studydescription"))
    path = ts.make_vb(tmp_path / "a.dat")
    keep = clean_twix(path, Policy(descriptors=rules))
    header = dict(keep.patches)[0]
    assert b"_headscan" in header and b"Surname" not in header and keep.changed["Dicom>tProtocolName"] == "cleaned"
    assert keep.text["MeasYaps>tProtocolName"] == ["_headscan"]
    assert "Dicom>SeriesDescription" not in keep.changed and "Dicom>StudyDescription" in keep.changed
