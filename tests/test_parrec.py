"""Philips PAR/REC (:mod:`medcloak.formats.parrec`): pairs made by tests/parrec_sample.py from
nibabel's phantom export, identifiers planted in every general-information line that holds text
or a date and in the export path comment."""

from __future__ import annotations

import datetime
import json
import shutil

import numpy as np
import pytest
from conftest import SECRET
from parrec_sample import DATASET, PLANTED, make, planted, source

from medcloak.engine import run
from medcloak.errors import (
    CorruptInputError,
    DeidentificationError,
    LimitError,
    VerificationError,
)
from medcloak.formats import parrec
from medcloak.pseudonym import Keyring

REC = source().with_suffix(".REC").stat().st_size


def _key(tmp_path):  # type: ignore[no-untyped-def]
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    key.chmod(0o600)
    return key


def _array(par):  # type: ignore[no-untyped-def]
    """The array nibabel's PAR reader reads from a pair, through files it does not leave open."""
    import nibabel as nib

    with open(par, encoding="latin-1") as head, open(par.with_suffix(".REC"), "rb") as image:
        img = nib.parrec.PARRECImage.from_file_map({"header": nib.fileholders.FileHolder(fileobj=head),
                                                    "image": nib.fileholders.FileHolder(fileobj=image)})
        return np.asarray(img.dataobj)


def test_every_general_key_is_planted_or_holds_no_free_text() -> None:
    """The sample plants into every key of the format's list that holds text; the others hold numbers
    or the scanner's terms (kept)."""
    text = source().read_text("latin-1")
    for key in parrec.known_keys():
        line = next((ln for ln in text.split("\n") if parrec.GENERAL.match(ln) and
                     parrec._norm(parrec.GENERAL.match(ln)["key"]) == key), None)
        if line is None or key in PLANTED:
            continue
        value = parrec.GENERAL.match(line)["value"].strip()
        assert key in {"Series Type", "Patient position", "Preparation direction", "Technique", "Scan mode"} \
            or not any(c.isalpha() for c in value), (key, value)


def test_identifiers_leave_every_byte_and_name_and_the_rec_reads_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in" / "Surname_NF00482913"
    src.mkdir(parents=True)
    par = make(src, "Surname_scan")
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=_key(tmp_path))
    assert summary.ok == 1 and summary.quarantined == 0 and summary.skipped == 1  # the REC: with its PAR
    released = sorted(p for p in (tmp_path / "out" / "parrec").rglob("*") if p.is_file())
    assert [p.suffix for p in released] == [".PAR", ".REC"]
    assert released[1].read_bytes() == par.with_suffix(".REC").read_bytes()
    for p in released:
        rel = p.relative_to(tmp_path / "out").as_posix().lower()
        data = p.read_bytes().lower()
        for value in [*PLANTED.values(), DATASET, "surname", "nf00482913", "2021.03.04"]:
            assert value.lower().encode() not in data and value.lower() not in rel, value
    assert np.array_equal(_array(released[0]), _array(par))
    (line,) = [json.loads(x) for x in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()
               if '"ok"' in x]
    review = line["review"]
    assert review["format"] == "parrec" and review["changed"]["Protocol name"] == "emptied"
    assert review["text"]["Technique"] == ["FEEPI"] and "surname" not in json.dumps(review).lower()


def test_dates_shifted_by_the_patients_offset_kept_or_dummied() -> None:
    keyring = Keyring(SECRET)
    identity = "name:" + PLANTED["Patient name"] + "|"
    days, seconds = keyring.date_offset(identity)
    want = datetime.datetime(2021, 3, 4, 10, 11, 12) + datetime.timedelta(days=days, seconds=seconds)
    shifted = parrec.clean(planted(), REC, keyring, frozenset({"retain-long-modified-dates"}), "t").par
    assert want.strftime(parrec.DATE_FORMAT).encode() in shifted
    assert b"2021.03.04 / 10:11:12" in parrec.clean(planted(), REC, keyring, frozenset({"retain-long-full-dates"}), "t").par
    assert parrec.DUMMY_DATE.encode() in parrec.clean(planted(), REC, keyring, frozenset(), "t").par


def test_a_rec_of_another_size_than_declared_is_refused() -> None:
    for size in (REC - 2, REC + 512, 0):
        with pytest.raises((CorruptInputError, LimitError)):
            parrec.clean(planted(), size, Keyring(SECRET), frozenset(), "t")


def test_unknown_general_lines_and_leftover_names_are_refused() -> None:
    data = planted().replace(b".    Series Type", b".    Referring doctor       : Dr Who\n.    Series Type", 1)
    with pytest.raises(DeidentificationError):
        parrec.clean(data, REC, Keyring(SECRET), frozenset(), "t")
    data = planted().replace(b"# CAUTION", b"# Surname^Givenname NF00482913 CAUTION", 1)
    with pytest.raises(VerificationError):
        parrec.clean(data, REC, Keyring(SECRET), frozenset(), "t")


@pytest.mark.parametrize("how", ["rec-alone", "truncated", "garbage"])
def test_broken_pairs_are_quarantined_with_a_reason(tmp_path, how) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "in"
    src.mkdir()
    if how == "rec-alone":
        shutil.copy(source().with_suffix(".REC"), src / "scan.REC")
    else:
        par = make(src, "scan")
        data = par.read_bytes()
        par.write_bytes(data[: len(data) // 2] if how == "truncated" else data[:400] + bytes(range(256)) * 20)
    summary = run([src], tmp_path / "out", secret_file=_key(tmp_path))
    assert summary.ok == 0 and summary.quarantined == 1
    assert not list((tmp_path / "out").glob("parrec"))


def test_verify_names_what_a_raw_par_still_holds() -> None:
    assert parrec.findings(parrec.clean(planted(), REC, Keyring(SECRET), frozenset(), "tok").par) == []
    assert len(parrec.findings(planted())) >= 4


def test_a_crlf_export_keeps_its_line_ends() -> None:
    data = planted().replace(b"\n", b"\r\n")
    out = parrec.clean(data, REC, Keyring(SECRET), frozenset(), "tok").par
    assert out.count(b"\r\n") == data.count(b"\r\n") and b"\n" not in out.replace(b"\r\n", b"")
    assert parrec.findings(out) == []
