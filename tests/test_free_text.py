"""Free text the standard's table does not name (issue 14, items 3 and 7): cleaned by default.

On a real ECG (pydicom's ``waveform_ecg.dcm``): waveform annotations (Unformatted Text Value),
channel labels and the contents of Issuer of Patient ID Qualifiers Sequence, with a technician's
name, ID-like strings, dates in several shapes and a phone number planted. Both ways: the
identifiers are gone and the object is released; the harmless text of the same elements, and of
the untouched file, is kept. The residual scan still catches a name when the cleaner is bypassed,
and a site that keeps such an attribute keeps it verbatim.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pydicom
import pytest
from conftest import SECRET, write
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.errors import VerificationError
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring
from medcloak.rules.clean import TextCleaner
from medcloak.rules.profile import load_profile

BASIC = load_profile()
TECHNICIAN = "Bramwell^Tessa"
PATIENT = "Quennell^Harriet"
#: planted identifiers: each must be gone from the released object (any case)
PLANTED = ["Bramwell", "Tessa", "Quennell", "Harriet", "QX7781234", "03/11/2021", "2021-11-03",
           "3 Nov 2021", "November 3, 2021", "20211103", "7946 0958", "t.bramwell@example.org"]


def ecg() -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    ds.PatientName = PATIENT
    ds.OperatorsName = TECHNICIAN
    return ds


def annotations(ds: Dataset) -> list[str]:
    return [str(item.UnformattedTextValue) for item in ds.WaveformAnnotationSequence if "UnformattedTextValue" in item]


def release(path: Path, profile=BASIC):
    return deidentify_dicom(path, profile, Keyring(SECRET))


def read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def plant(ds: Dataset) -> None:
    """A technician's name, IDs, dates of five shapes, a phone number and an e-mail address in the
    ECG's annotations, a channel label and Issuer of Patient ID Qualifiers Sequence."""
    first, second = (item for item in ds.WaveformAnnotationSequence if "UnformattedTextValue" in item)
    first.UnformattedTextValue = "RITMO SINUSALE. Recorded by T. Bramwell on 03/11/2021, call +44 20 7946 0958"
    second.UnformattedTextValue = (
        "ECG NORMALE\r\nreviewed 2021-11-03 (3 Nov 2021; November 3, 2021) for Quennell\nHarriet MRN QX7781234"
    )
    channel = ds.WaveformSequence[0].ChannelDefinitionSequence[0]
    channel.ChannelLabel = "I TESSA 20211103"
    facility = Dataset()
    facility.LocalNamespaceEntityID = "Ward of t.bramwell@example.org"
    qualifiers = Dataset()
    qualifiers.UniversalEntityID = "MRN QX7781234 issued by Bramwell"
    qualifiers.UniversalEntityIDType = "ISO"
    qualifiers.AssigningFacilitySequence = Sequence([facility])
    ds.IssuerOfPatientIDQualifiersSequence = Sequence([qualifiers])


def test_an_untouched_ecg_is_released_with_its_free_text(tmp_path):
    """The annotations, group labels and code meanings of a real ECG hold no identifier: kept.
    Its Study Description is ``ECG``: removed, but a description is not an identifier, so its
    word is no needle and ``ECG NORMALE`` stays whole."""
    original = pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))
    released = release(write(original, tmp_path / "ecg.dcm"))
    out = read(released.data)
    assert annotations(out) == annotations(original) == ["RITMO SINUSALE", "ECG NORMALE"]
    assert [g.MultiplexGroupLabel for g in out.WaveformSequence] == ["RHYTHM", "MEDIAN BEAT"]
    meanings = [e.value for w in out.WaveformSequence for e in w.iterall() if e.keyword == "CodeMeaning"]
    assert meanings == [e.value for w in original.WaveformSequence for e in w.iterall() if e.keyword == "CodeMeaning"]
    assert "Lead I (Einthoven)" in meanings
    assert "C-free-text" not in released.counts


def test_identifiers_in_free_text_the_table_does_not_name_are_cleaned(tmp_path):
    ds = ecg()
    plant(ds)
    released = release(write(ds, tmp_path / "ecg.dcm"))
    out = read(released.data)
    text = "\n".join(str(e.value) for e in out.iterall() if e.VR in ("ST", "UT", "LO", "SH", "LT", "UC", "PN"))
    for planted in PLANTED:
        assert planted.lower() not in text.lower(), planted
        assert planted.lower().encode() not in released.data.lower(), planted
    first, second = annotations(out)
    # the rest of the text stays
    assert first.startswith("RITMO SINUSALE. Recorded by T. *** on ***, call ")
    assert second.startswith("ECG NORMALE\r\nreviewed *** (***; ***) for ***")
    assert out.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelLabel == "I *** ***"
    qualifiers = out.IssuerOfPatientIDQualifiersSequence[0]
    assert qualifiers.UniversalEntityID == "MRN *** issued by ***"
    assert qualifiers.UniversalEntityIDType == "ISO"  # coded (CS): kept
    assert qualifiers.AssigningFacilitySequence[0].LocalNamespaceEntityID == "Ward of ***"
    # recorded like the table's cleaned attributes, and apart from them
    assert released.counts["C-free-text"] == 5
    assert released.counts["C"] >= 5


def test_an_ecg_whose_annotation_names_the_patient_is_cleaned_not_quarantined(tmp_path):
    """Issue 14, item 7: the post-write check used to quarantine it; the cleaner now releases it,
    and the check stays as the last line of defence when cleaning is bypassed."""
    ds = ecg()
    for item in ds.WaveformAnnotationSequence:
        if "UnformattedTextValue" in item:
            item.UnformattedTextValue = f"{item.UnformattedTextValue} - patient Harriet QUENNELL"
    path = write(ds, tmp_path / "ecg.dcm")
    out = read(release(path).data)
    assert annotations(out) == ["RITMO SINUSALE - patient *** ***", "ECG NORMALE - patient *** ***"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TextCleaner, "__call__", lambda self, text: text)
        with pytest.raises(VerificationError, match="residual identifier from PatientName"):
            release(path)


def test_a_site_keeps_such_an_attribute_verbatim_and_the_check_still_guards_it(tmp_path):
    keep = load_profile(overrides={"attributes": {"UnformattedTextValue": "keep", "ChannelLabel": "keep"}})
    ds = ecg()
    ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelLabel = "I 20211103"
    out = read(release(write(ds, tmp_path / "a.dcm"), keep).data)
    assert out.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelLabel == "I 20211103"
    assert annotations(out) == ["RITMO SINUSALE", "ECG NORMALE"]
    first = next(item for item in ds.WaveformAnnotationSequence if "UnformattedTextValue" in item)
    first.UnformattedTextValue = "RITMO SINUSALE (Quennell)"
    with pytest.raises(VerificationError, match="PatientName"):
        release(write(ds, tmp_path / "b.dcm"), keep)


def test_coded_entries_are_not_cleaned(tmp_path):
    """Code Value, Coding Scheme Designator and Code Meaning are terms of a scheme, not free text:
    a code that looks like a date or an ID stays."""
    ds = ecg()
    code = ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSourceSequence[0]
    code.CodeValue, code.CodeMeaning = "20211103", "Lead QX7781234"
    out = read(release(write(ds, tmp_path / "ecg.dcm")).data)
    kept = out.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSourceSequence[0]
    assert (kept.CodeValue, kept.CodeMeaning) == ("20211103", "Lead QX7781234")


def test_kept_private_free_text_is_cleaned_too(tmp_path):
    ds = ecg()
    ds.add(DataElement(0x00190010, "LO", "GEMS_ACQU_01"))
    ds.add(DataElement(0x0019109E, "LO", "FAST QX7781234"))  # Internal Pulse Sequence Name: safe list
    out = read(release(write(ds, tmp_path / "ecg.dcm"), load_profile(None, ["retain-safe-private"])).data)
    assert out[0x0019109E].value == "FAST ***"


def test_a_person_name_the_table_does_not_name_gets_a_dummy(tmp_path):
    ds = ecg()
    ds.add(DataElement(0x00142006, "PN", TECHNICIAN))  # Evaluator Name, which the table does not name
    assert BASIC.resolve(0x00142006) is None
    out = read(release(write(ds, tmp_path / "ecg.dcm")).data)
    assert str(out[0x00142006].value) == "ANONYMIZED"


def test_the_manifest_records_the_cleaned_free_text(tmp_path):
    from medcloak.engine import run

    ds = ecg()
    plant(ds)
    write(ds, tmp_path / "in" / "ecg.dcm")
    (tmp_path / "key").write_bytes(SECRET)
    summary = run([tmp_path / "in"], tmp_path / "out", secret_file=tmp_path / "key")
    assert summary.exit_status == 0
    (row,) = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    assert row["status"] == "ok"
    assert row["actions"]["C-free-text"] == 5
    (target,) = (tmp_path / "out").rglob("*.dcm")
    assert not re.search(rb"(?i)bramwell|qx7781234", target.read_bytes())


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
def test_kept_private_free_text_read_as_un_is_cleaned_as_its_listed_vr(tmp_path, syntax):
    """A kept private text whose VR the reader does not know (implicit VR, or written as UN) is
    cleaned as the VR the private lists give it (ELSCINT1 07A1,xx8E: ST in TCIA's list)."""
    ds = ecg()
    ds.add(DataElement(0x07A10010, "LO", "ELSCINT1"))
    ds.add(DataElement(0x07A1108E, "UN", b"FAST QX7781234 "))
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "ecg.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = read(release(path, load_profile("tcia-private")).data)
    value = out[0x07A1108E].value
    assert (value if isinstance(value, str) else value.decode()).rstrip("\x00 ") == "FAST ***"
