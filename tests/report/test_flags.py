"""The report's flags (medcloak.report.flags) both ways: planted names, dates, IDs, phone
numbers, e-mail and postal addresses are caught, the clean descriptors of real files are not, and
on the kept text of a real run over pydicom's test files and data_samples few values are flagged
(every one of them listed here with why) while every kept person name (VR PN) is."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from manifests import real_release

from medcloak.report.flags import kinds, person_name_attribute

PLANTED = [
    ("DOE^JOHN", "name"), ("John Smith", "name"), ("Smith, J.", "name"), ("Smith, John", "name"),
    ("JOHN SMITH", "name"), ("J. Smith", "name"), ("Dr. House", "name"), ("Joost Achterberg", "name"),
    ("SINCLAIR^MAUD", "name"), ("van der Berg^Anna", "name"), ("Seen by Dr Jones", "name"),
    ("2023-04-05", "date"), ("05/04/2023", "date"), ("20230405", "date"), ("5 April 2023", "date"),
    ("April 5, 2023", "date"), ("05-APR-2023", "date"), ("5th of April 2023", "date"), ("4/5/23", "date"),
    ("05.04.2023", "date"), ("20230405120000.000", "date"), ("scanned on 2023-04-05 at 10:00", "date"),
    ("1234567", "id"), ("MRN 12345", "id"), ("MRN: 0012345", "id"), ("ACC2023001", "id"), ("A12345678", "id"),
    ("RAD-2023-00123", "id"), ("123-45-6789", "id"), ("Patient ID 8765432", "id"), ("acc# 55123", "id"),
    ("1.2.826.0.1.3680043.2.1125.1", "id"), ("NHS 943 476 5919", "id"),
    ("+44 20 7946 0018", "phone"), ("(555) 123-4567", "phone"), ("020 7946 0018", "phone"),
    ("555-123-4567", "phone"), ("Tel: 1234 5678", "phone"), ("+31 6 12345678", "phone"), ("0049 30 1234567", "phone"),
    ("john.doe@example.org", "email"), ("contact: j_doe+mri@hospital.example.co.uk", "email"),
    ("221B Baker Street", "address"), ("12 High St.", "address"), ("Hauptstraße 12", "address"),
    ("SW1A 1AA", "address"), ("1012 AB Amsterdam", "address"), ("10117 Berlin", "address"),
    ("90210-1234", "address"), ("Beverly Hills, CA 90210", "address"), ("12 rue de la Paix", "address"),
    ("via Roma 12", "address"), ("K1A 0B6", "address"), ("1 Infirmary Road, Northfield", "address"),
]

CLEAN = [
    "CHEST", "T1 MPRAGE SAG", "Axial 5.0mm", "Siemens", "SIEMENS", "ORIGINAL\\PRIMARY", "DERIVED\\SECONDARY\\AXIAL",
    "HEAD^ROUTINE", "BRAIN^WO CONTRAST", "Head Routine", "Brain Perfusion", "ABDOMEN PELVIS", "t2_tse_tra_512",
    "ep2d_diff_3scan_trace_p2", "256x256", "1.5T", "2000 MS", "TR 2000", "CT 1.25mm", "SIGNA HDxt", "syngo MR E11",
    "VE11C", "LightSpeed16", "Discovery MR750", "Chest, Abdomen", "GE MEDICAL SYSTEMS", "Philips Medical Systems",
    "TOSHIBA", "MAGNETOM Avanto", "Aquilion ONE", "SOMATOM Definition AS+", "Localizer", "3-plane loc", "SAG T1 FLAIR",
    "AX DWI 1000b", "COR T2 FS", "LUNG 1.0 B70f", "Thorax^1_Routine_Thorax (Adult)", "CTA HEAD W/WO", "BODY",
    "HEADFIRST", "FFS", "MONOCHROME2", "WB 0.6 Gy", "ISO_IR 100", "Knee (R)", "LEFT", "L-SPINE", "ep_b1000",
    "mm", "Standard", "MIP 10mm", "DOSE REPORT", "SR", "RT Plan", "PET AC 3D", "0.5 x 0.5 mm", "Brilliance 64",
    "LightSpeedApps308I.2_H3.1M5", "v10.0.51", "Release 2.4", "Lossy Compression", "Software Development",
    "Observation Context Mode", "Column Position", "Fiducial Point", "Radiation Therapy", "CMS, Inc.",
]


@pytest.mark.parametrize("value, kind", PLANTED)
def test_planted_values_are_flagged_with_their_kind(value, kind):
    assert kind in kinds(value, "StudyDescription")


@pytest.mark.parametrize("value", CLEAN)
def test_clean_descriptors_are_not_flagged(value):
    assert kinds(value, "SeriesDescription") == ()


def test_person_name_attributes_are_always_flagged():
    assert person_name_attribute("PatientName") and person_name_attribute("OperatorsName")
    assert person_name_attribute("RequestAttributesSequence>ScheduledPerformingPhysicianName")
    assert person_name_attribute("VerifyingObserverSequence>VerifyingObserverName")
    assert not person_name_attribute("StudyDescription") and not person_name_attribute("ImageDescription")
    assert not person_name_attribute("(0019,xx10) SIEMENS MR HEADER") and not person_name_attribute("")
    assert kinds("ANONYMIZED", "OperatorsName") == ("name",)
    assert kinds("CHEST", "ContentSequence>PersonName") == ("name",)
    assert kinds("CHEST", "StudyDescription") == ()


def test_coded_and_defined_terms_are_not_flagged_by_their_shape():
    assert kinds("113100", "DeidentificationMethodCodeSequence>CodeValue") == ()
    assert kinds("Recording Observer's Name", "ConceptNameCodeSequence>CodeMeaning") == ()
    assert kinds("ISO 2022 IR 13\\ISO 2022 IR 87", "SpecificCharacterSet") == ()
    # a date or an e-mail in a code is still one
    assert "date" in kinds("2023-04-05", "CodeValue") and "email" in kinds("a@b.org", "CodeMeaning")


def test_medcloak_pseudonyms_are_not_ids():
    assert "id" not in kinds("MCLTRGUDR65GRZ27", "PatientID")
    assert "id" in kinds("MC12345678", "PatientID")


#: flags on the real corpus that are right (device and institution identity kept on purpose by
#: the retain options, addresses), and the one that is not
EXPECTED_FLAGS = {
    "DeviceSerialNumber": "id", "StationName": "id",  # serial numbers and station IDs are identifiers
    "InstitutionAddress": "address", "CodingSchemeResponsibleOrganization": "address",
    "ManufacturerModelName": "id",  # false: a model 'Zapper9000' (four digits after letters)
    "PostprocessingFunction": "id",  # 'UKE_pa_020395': six digits, perhaps a date written ddmmyy
    # data_samples' BIDS description and slides (other formats' records)
    "Authors": "name",  # right: the dataset's authors are people
    "Funding": "id",  # right: a grant number
    "Version": "id",  # arguable: a tool version 'v1.0.20230411' holds a date
    "Model": "id", "NDPIProperties": "id",  # false: a slide scanner's model 'C9600-12'
}
#: the attributes of EXPECTED_FLAGS whose flags are false or arguable
NOT_IDENTIFYING = {"ManufacturerModelName", "PostprocessingFunction", "Version", "Model", "NDPIProperties"}


def test_few_false_flags_on_a_real_release(tmp_path_factory):
    release, audit = real_release(tmp_path_factory)
    values: set[tuple[str, str]] = set()
    with (audit / "manifest.jsonl").open(encoding="utf-8") as fh:
        for raw in fh:
            line = json.loads(raw)
            if line["status"] == "ok":
                for attr, vs in line.get("review", {}).get("text", {}).items():
                    values.update((attr, v) for v in vs)
    names = [(a, v) for a, v in values if person_name_attribute(a)]
    others = [(a, v) for a, v in values if not person_name_attribute(a)]
    assert len(others) > 300 and not names  # every person name replaced or emptied, none kept
    flagged = {(a, v): kinds(v, a) for a, v in others if kinds(v, a)}
    unexplained = {k: f for k, f in flagged.items() if EXPECTED_FLAGS.get(k[0].rsplit(">", 1)[-1]) not in f}
    assert not unexplained
    wrong = [k for k in flagged if k[0].rsplit(">", 1)[-1] in NOT_IDENTIFYING]
    assert len(wrong) <= 0.015 * len(others)  # false (or arguable) flags on clean real values


SURNAMES = ["Smith", "Jansen", "Müller", "García", "O'Brien", "Dupont", "Rossi", "Nguyen", "Kowalski", "Achterberg"]
GIVEN = ["John", "Maud", "Joost", "Anna", "Pierre", "Lucía", "Hans", "Mary", "Giovanni", "Sophie"]


@given(st.sampled_from(SURNAMES), st.sampled_from(GIVEN), st.integers(0, 5))
def test_names_in_every_common_form_are_flagged(surname, given_name, form):
    value = [f"{surname.upper()}^{given_name.upper()}", f"{given_name} {surname}", f"{surname}, {given_name[0]}.",
             f"{given_name.upper()} {surname.upper()}", f"{given_name[0]}. {surname}",
             f"{surname}^{given_name}^^Dr"][form]
    assert "name" in kinds(value, "StudyDescription"), value


@given(st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2099, 12, 31)), st.integers(0, 7))
def test_dates_in_every_common_format_are_flagged(day, form):
    value = day.strftime(["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%d %B %Y", "%B %d, %Y", "%d-%b-%Y",
                          "%d.%m.%Y"][form])
    assert "date" in kinds(value, "ImageComments"), value


@given(st.integers(2, 9), st.integers(10**6, 10**9 - 1), st.integers(0, 3))
def test_phone_numbers_are_flagged(first, rest, form):
    digits = f"{first}{rest:09d}"[:10]
    value = [f"+44 {digits[:2]} {digits[2:6]} {digits[6:]}", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
             f"0{digits[:2]} {digits[2:6]} {digits[6:]}", f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"][form]
    assert "phone" in kinds(value, "ImageComments"), value


@given(st.integers(10**5, 10**10), st.sampled_from(["", "MRN ", "ACC", "Patient ID: ", "#"]))
def test_ids_are_flagged(number, prefix):
    assert "id" in kinds(f"{prefix}{number}", "ImageComments")
