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
    path = (ts.make_vb if layout == "vb" else ts.make_vd)(src / "meas.dat")
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
