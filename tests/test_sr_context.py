"""Observer and subject context in structured reports (issue 14, item 4): a content item whose
concept names a person, an organisation, a device's identity or the subject loses its value at
every depth, under Clean Structured Content too, and the clean content items stay.

The object is pydicom's real Comprehensive SR (``test-SR.dcm``) with TID 1001 observer context
and TID 1006 subject context planted at the top of its tree and inside a nested container."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pydicom
import pytest
from conftest import SECRET, pydicom_test_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile
from medcloak.rules.sr_context import DCM_CONCEPTS, identifying_kind

KEYRING = Keyring(SECRET)
SR = pydicom_test_files() / "test-SR.dcm"
#: identifiers of several shapes: names, an organisation, an ID-like string, a device's identity
ORGANISATION = "Quennell Heart Clinic"
PLANTED = {
    ("121009", "TEXT"): ORGANISATION,
    ("121008", "PNAME"): "Okonkwo^Adaeze",
    ("121013", "TEXT"): "CATHLAB-ZEPHYR",
    ("121014", "TEXT"): "Zephyrtronics",
    ("121015", "TEXT"): "Whirlwind Nine",
    ("121016", "TEXT"): "SN-99817-XK",
    ("121017", "TEXT"): "Basement room Thornbury",
    ("121012", "UIDREF"): "1.2.826.0.1.3680043.9.7777.42",
    ("121030", "TEXT"): "QX7781234",
    ("121029", "PNAME"): "Featherstonehaugh^Ilse",
    ("121031", "DATE"): "19520317",
    ("128774", "TEXT"): "ilse.okonkwo",
}
VALUE_TAG = {"TEXT": "TextValue", "PNAME": "PersonName", "UIDREF": "UID", "DATE": "Date"}
MEANING = {"121009": "Person Observer's Organization Name", "121008": "Person Observer Name",
           "121013": "Device Observer Name", "121014": "Device Observer Manufacturer",
           "121015": "Device Observer Model Name", "121016": "Device Observer Serial Number",
           "121017": "Device Observer Physical Location During Observation",
           "121012": "Device Observer UID", "121030": "Subject ID", "121029": "Subject Name",
           "121031": "Subject Birth Date", "128774": "Person Observer's Login Name"}
FINDING = "A mass of 12 mm was detected in the left lobe."


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _item(code: str, vtype: str, value: str, scheme: str = "DCM", meaning: str | None = None) -> Dataset:
    it = Dataset()
    it.RelationshipType = "HAS OBS CONTEXT"
    it.ValueType = vtype
    it.ConceptNameCodeSequence = Sequence([_code(code, scheme, meaning or MEANING.get(code, code))])
    setattr(it, VALUE_TAG[vtype], value)
    return it


def _context() -> list[Dataset]:
    return [_item(code, vtype, value) for (code, vtype), value in PLANTED.items()]


def _finding() -> Dataset:
    it = Dataset()
    it.RelationshipType = "CONTAINS"
    it.ValueType = "TEXT"
    it.ConceptNameCodeSequence = Sequence([_code("121071", "DCM", "Finding")])
    it.TextValue = FINDING
    return it


def planted_sr(tmp_path, private_scheme: bool = False):
    ds = pydicom.dcmread(SR)
    ds.InstitutionName = "General Infirmary"
    ds.Manufacturer = "Zephyrtronics"  # the header's own manufacturer, kept by the table
    top = list(ds.ContentSequence)
    # depth 1: before the report's own items (TID 2000 order); depth 3: inside the nested container
    top[0:0] = _context()
    nested = top[len(PLANTED) + 1].ContentSequence[-1]  # CONTAINER > CONTAINER
    nested.ContentSequence = Sequence([*_context(), *nested.ContentSequence, _finding()])
    if private_scheme:
        top.insert(0, _item("7001", "TEXT", "Thaddeus Wrenfield", "99MEDCLOAK", "Operator name"))
        top.insert(0, _item("7002", "TEXT", "seventeenth of March in nineteen fifty-two", "99MEDCLOAK",
                            "Date of birth"))
    ds.ContentSequence = Sequence(top)
    path = tmp_path / "sr.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _walk(items, depth=1):
    for it in items:
        yield depth, it
        if "ContentSequence" in it:
            yield from _walk(it.ContentSequence, depth + 1)


def _release(path, options):
    released = deidentify_dicom(path, load_profile(None, options), KEYRING)
    return released, pydicom.dcmread(io.BytesIO(released.data))


OPTIONS = [["clean-structured-content"], [], ["clean-structured-content", "retain-long-modified-dates"],
           ["clean-structured-content", "retain-long-full-dates", "retain-uids"]]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "+".join(o) or "basic")
def test_observer_and_subject_context_gone_at_every_depth(tmp_path, options):
    released, out = _release(planted_sr(tmp_path), options)
    raw = released.data.lower()
    for value in PLANTED.values():
        if value == "Zephyrtronics":  # the header's kept Manufacturer holds it too
            continue
        if value.startswith("1.2.") and "retain-uids" in options:
            continue  # kept as Device UID is under Retain UIDs
        assert value.lower().encode() not in raw, value
    depths = set()
    for depth, it in _walk(out.ContentSequence):
        concept = it.ConceptNameCodeSequence[0].CodeValue if "ConceptNameCodeSequence" in it else None
        key = (concept, it.get("ValueType"))
        if key in PLANTED:
            depths.add(depth)
            value = str(it.get(VALUE_TAG[it.ValueType]))
            if it.get("ValueType") == "UIDREF":
                # keyed like every other UID (kept under Retain UIDs, as Device UID is)
                assert value == (PLANTED[key] if "retain-uids" in options else KEYRING.uid(PLANTED[key]))
            else:
                assert value != PLANTED[key], key
    assert depths == {1, 3}
    assert out.Manufacturer == "Zephyrtronics"


@pytest.mark.parametrize("options", OPTIONS[:1] + OPTIONS[2:], ids=lambda o: "+".join(o))
def test_clean_content_items_kept_under_clean_structured_content(tmp_path, options):
    original = pydicom.dcmread(SR)
    _, out = _release(planted_sr(tmp_path), options)
    texts = [str(it.TextValue) for _, it in _walk(out.ContentSequence) if it.get("ValueType") == "TEXT"]
    for _, it in _walk(original.ContentSequence):
        if it.get("ValueType") == "TEXT":
            assert str(it.TextValue) in texts  # findings text that names no one
    assert FINDING in texts
    numbers = [it.MeasuredValueSequence[0].NumericValue for _, it in _walk(out.ContentSequence)
               if it.get("ValueType") == "NUM" and "MeasuredValueSequence" in it]
    assert numbers and numbers == [it.MeasuredValueSequence[0].NumericValue
                                   for _, it in _walk(original.ContentSequence)
                                   if it.get("ValueType") == "NUM" and "MeasuredValueSequence" in it]


def test_organisation_named_in_findings_text_is_cleaned_too(tmp_path):
    """The dummied context value is an identifying value of the object: free text that repeats it
    is cleaned (under Clean Structured Content) rather than released."""
    path = planted_sr(tmp_path)
    ds = pydicom.dcmread(path)
    ds.ContentSequence[len(PLANTED) + 1].ContentSequence[0].TextValue = f"Seen at {ORGANISATION.upper()} today"
    ds.save_as(path)
    released, out = _release(path, ["clean-structured-content"])
    assert b"quennell" not in released.data.lower()
    assert "Seen at" in str(out.ContentSequence[len(PLANTED) + 1].ContentSequence[0].TextValue)


def test_private_scheme_concept_judged_by_its_meaning(tmp_path):
    released, _ = _release(planted_sr(tmp_path, private_scheme=True), ["clean-structured-content"])
    assert b"wrenfield" not in released.data.lower()
    assert b"seventeenth of march" not in released.data.lower()


@pytest.mark.parametrize(("option", "kept"), [("retain-institution-identity", ORGANISATION),
                                              ("retain-device-identity", "CATHLAB-ZEPHYR")])
def test_retain_options_keep_their_kind_only(tmp_path, option, kept):
    released, _ = _release(planted_sr(tmp_path), ["clean-structured-content", option])
    assert kept.encode() in released.data
    assert b"Okonkwo" not in released.data and b"QX7781234" not in released.data


def test_kinds_of_concepts():
    assert identifying_kind("121009", "DCM", "") == "organisation"
    assert identifying_kind("121071", "DCM", "Finding") is None
    assert identifying_kind("111001", "DCM", "Algorithm Name") is None  # DCM: by code only
    assert identifying_kind("1234", "99_OFFIS_DCMTK", "Diameter") is None
    assert identifying_kind("X1", "99LOCAL", "Referring hospital") == "organisation"
    assert identifying_kind("X2", "99LOCAL", "Date of birth") == "birth-date"


def test_dcm_concepts_are_the_standards_codes():
    """Each code is the concept its comment says (pydicom's copy of PS3.16)."""
    from pydicom.sr._concepts_dict import concepts

    meanings = {code: meaning for by_kw in concepts["DCM"].values() for code, (meaning, _) in by_kw.items()}
    for code in DCM_CONCEPTS:
        meaning = meanings[code].lower()
        assert any(w in meaning for w in ("name", "uid", "id", "number", "serial", "birth", "location",
                                          "manufacturer", "email", "issuer", "mother", "identifier")), code


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed")
def test_released_sr_still_valid(tmp_path):
    released, _ = _release(planted_sr(tmp_path), ["clean-structured-content"])
    out = tmp_path / "out.dcm"
    out.write_bytes(released.data)
    before = subprocess.run(["dciodvfy", str(planted_sr(tmp_path))], capture_output=True, text=True, check=False)
    after = subprocess.run(["dciodvfy", str(out)], capture_output=True, text=True, check=False)
    # the messages name UIDs, which the release replaces: compared without them
    def errors(run):
        return sorted({re.sub(r"[0-9.]{6,}", "", line) for line in (run.stdout + run.stderr).splitlines()
                       if line.startswith("Error")})
    new = [e for e in errors(after) if e not in errors(before)]
    assert not new, new


def test_model_name_dummied_but_free_text_not_cleaned_of_it(tmp_path):
    """A model's name identifies a kind of device: its words are no identifying values of the
    object, so findings text that shares them (``Pro`` in ``prostate``) keeps them."""
    path = planted_sr(tmp_path)
    ds = pydicom.dcmread(path)
    for it in ds.ContentSequence[:len(PLANTED)]:
        if it.ConceptNameCodeSequence[0].CodeValue == "121015":
            it.TextValue = "Vista Pro 64"
    ds.ContentSequence[len(PLANTED) + 1].ContentSequence[0].TextValue = "Enlarged prostate, vista normal"
    ds.save_as(path)
    released, out = _release(path, ["clean-structured-content"])
    assert b"Vista Pro 64" not in released.data
    assert str(out.ContentSequence[len(PLANTED) + 1].ContentSequence[0].TextValue) == "Enlarged prostate, vista normal"


@pytest.mark.parametrize(("options", "kept"), [([], False), (["clean-structured-content"], False),
                                               (["clean-structured-content", "retain-long-modified-dates"], False),
                                               (["clean-structured-content", "retain-long-full-dates"], True)])
def test_date_and_datetime_items_follow_the_dates_rule(tmp_path, options, kept):
    """DATE and DATETIME items of any concept (here Study Date, 111060, at depth 3) are the table's
    Date and DateTime: a dummy, shifted, or kept under Retain Longitudinal Full Dates; a Subject
    Birth Date is a dummy under every option (Patient's Birth Date is emptied under every one)."""
    path = planted_sr(tmp_path)
    ds = pydicom.dcmread(path)
    nested = ds.ContentSequence[len(PLANTED) + 1].ContentSequence[-1]
    date = _item("111060", "DATE", "20230704")
    stamp = _item("111526", "DATE", "20230704")
    del stamp.Date
    stamp.ValueType, stamp.DateTime = "DATETIME", "20230704083000"
    nested.ContentSequence.extend([date, stamp])
    ds.save_as(path)
    _, out = _release(path, options)
    nested = out.ContentSequence[len(PLANTED) + 1].ContentSequence[-1].ContentSequence
    assert (nested[-2].Date == "20230704") is kept and (nested[-1].DateTime == "20230704083000") is kept
    births = [it.Date for _, it in _walk(out.ContentSequence)
              if "ConceptNameCodeSequence" in it and it.ConceptNameCodeSequence[0].CodeValue == "121031"]
    assert births and all(b != "19520317" for b in births)
