"""ECAT 7 (:mod:`medcloak.formats.ecat`): files made by tests/ecat_sample.py from the format's
specification (nibabel's layout of it), identifiers planted in every text field of the main
header, in the birth date, the patient characteristics and both times."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from conftest import SECRET
from ecat_sample import BIRTH, DOSE, PLANTED, SCAN, base, make, planted

from medcloak.engine import run
from medcloak.errors import CorruptInputError, LimitError, VerificationError
from medcloak.formats import ecat
from medcloak.pseudonym import Keyring


def _load(path):  # type: ignore[no-untyped-def]
    import nibabel as nib

    with open(path, "rb") as fh:  # nibabel's ECAT reader, on a file object it does not leave open
        img = nib.ecat.EcatImage.from_file_map({"header": nib.fileholders.FileHolder(fileobj=fh),
                                                "image": nib.fileholders.FileHolder(fileobj=fh)})
        return np.asarray(img.dataobj)


def test_the_field_table_is_the_specifications_layout() -> None:
    from nibabel import ecat as nib_ecat

    dt = np.dtype(nib_ecat.main_header_dtd)
    for name, (off, size) in ecat.TEXT.items():
        assert dt.fields[name][1] == off and dt.fields[name][0].itemsize == size, name
    for name, (off, _) in ecat.CHARACTERISTICS.items():
        assert dt.fields[name][1] == off
    assert dt.fields[ecat.BIRTH[0]][1] == ecat.BIRTH[1]
    assert all(dt.fields[n][1] == off for n, off in ecat.TIMES.items())
    sub = np.dtype(nib_ecat.subheader_dtd)
    assert sub.fields["annotation"][1] == ecat.ANNOTATION[0]


def test_identifiers_leave_every_byte_and_the_data_stays(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in" / "Surname_NF00482913"
    src.mkdir(parents=True)
    path = make(src, "Surname_scan")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path))
    assert summary.ok == 1 and summary.quarantined == 0
    (out,) = [p for p in (tmp_path / "out").rglob("*.v")]
    data = out.read_bytes()
    assert len(data) == path.stat().st_size and data[512:] == path.read_bytes()[512:]
    rel = out.relative_to(tmp_path / "out").as_posix().lower()
    for name, value in PLANTED.items():
        if name in ecat.KEPT:
            continue
        assert value.encode() not in data, name
        assert value.lower() not in rel
    for number in (BIRTH, SCAN, DOSE):
        assert struct.pack(">I", number) not in data[:512]
    assert data[214:228] == bytes(14)  # sex, dexterity, age, height, weight
    (line,) = [json.loads(x) for x in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()
               if '"ok"' in x]
    review = line["review"]
    assert review["format"] == "ecat" and review["changed"]["patient_name"] == "emptied"
    assert review["text"]["radiopharmaceutical"] == ["FDG"] and "Surname" not in json.dumps(review)
    released, original = _load(out), _load(path)  # nibabel's ECAT reader: the same array
    assert released.shape == (8, 6, 4, 1) and np.count_nonzero(released) and np.array_equal(released, original)


def _key(tmp_path):  # type: ignore[no-untyped-def]
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return key


def test_times_shifted_by_the_patients_offset_and_characteristics_kept_on_option() -> None:
    keyring = Keyring(SECRET)
    options = frozenset({"retain-long-modified-dates", "retain-patient-characteristics"})
    result = ecat.clean(planted(), keyring, options)
    days, seconds = keyring.date_offset("id:NF00482913|")
    assert result.identity == "id:NF00482913|"
    scan, dose = (struct.unpack_from(">I", result.data, o)[0] for o in ecat.TIMES.values())
    assert scan == SCAN + days * 86400 + seconds and scan - dose == SCAN - DOSE
    assert result.qi["PatientSex"] == "F" and result.qi["PatientWeight"] == "81.5"
    assert ecat.clean(planted(), keyring, frozenset({"retain-long-full-dates"})).data[62:66] == struct.pack(">I", SCAN)


def test_a_name_left_in_a_subheader_refuses_the_file() -> None:
    data = bytearray(planted())
    off = 2 * 512 + ecat.ANNOTATION[0]
    data[off: off + 17] = b"Surname^Givenname"
    with pytest.raises(VerificationError):
        ecat.clean(bytes(data), Keyring(SECRET), frozenset())


@pytest.mark.parametrize("cut", [100, 700, 1600])
def test_truncated_files_are_refused(cut) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((CorruptInputError, LimitError)):
        ecat.clean(planted()[:cut], Keyring(SECRET), frozenset())


def test_a_looping_or_garbage_directory_is_refused() -> None:
    data = bytearray(base(2))
    struct.pack_into(">i", data, 512 + 4, 2 + 1)  # the next directory block: a subheader
    with pytest.raises(CorruptInputError):
        ecat.clean(bytes(data), Keyring(SECRET), frozenset())
    data = bytearray(base())
    struct.pack_into(">i", data, 512 + 4, -16)  # found by the fuzzing campaign: an internal error then
    with pytest.raises(CorruptInputError):
        ecat.clean(bytes(data), Keyring(SECRET), frozenset())
    data = bytearray(base())
    struct.pack_into(">i", data, 512 + 12, 40)
    with pytest.raises(CorruptInputError):
        ecat.clean(bytes(data), Keyring(SECRET), frozenset())


def test_verify_finds_a_name_in_the_main_header() -> None:
    assert ecat.header_findings(ecat.clean(planted(), Keyring(SECRET), frozenset()).data[:512]) == []
    assert ecat.header_findings(planted()[:512])
