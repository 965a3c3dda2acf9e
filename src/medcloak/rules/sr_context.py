"""Content items that identify by what their concept names: observer and subject context.

PS3.15's table acts on attributes. In a structured report (and in every other sequence of content
items: acquisition context, specimen preparation, ...) the same identifiers travel as the *value*
of a content item, and only its concept name says what the value is: Person Observer's
Organization Name (a TEXT), Device Observer Serial Number, Subject ID, Subject Birth Date. The
table's rules for the value attributes themselves already cover part of this: a PNAME's Person
Name gets a dummy, a UIDREF's UID a keyed UID, a DATE, TIME or DATETIME value the dates' rule.
A TEXT value (Text Value, which the table does not name) gets a dummy inside a Content Sequence
by default, but under Clean Structured Content it is only *cleaned*, and the cleaner removes the
values it knows from the header and the patterns it recognises: an organisation's name, a
device's serial number or an ID that appear nowhere else were released.

Here the concept decides, whatever the depth and the mode of the walk: a TEXT value whose concept
names a person, an organisation, a device's identity or the subject gets a dummy, and a Subject
Birth Date its dummy date (Patient's Birth Date is emptied under every option). Organisations
follow Retain Institution Identity and devices Retain Device Identity, as Institution Name and
Device Serial Number do. A manufacturer's or model's name identifies a kind of device, not one
device or anyone: its value gets a dummy but is not one of the values that free text is cleaned
of (``Pro`` of a model name would mask ``prostate``). Concepts are DCM codes of TID 1002-1010 (observer and subject
context), TID 1020/1021 (person and device participants) and the few others listed below; a
concept of another scheme (a private ``99...`` code, a site's local one) is judged by its code
meaning, so that ``Operator name`` of a private scheme goes too. Clean content items
(measurements, codes, findings text that names no one) are left to the rest of the walk.
"""

from __future__ import annotations

import re
from typing import Any

PERSON, ORGANISATION, DEVICE, DEVICE_MODEL, SUBJECT, BIRTH_DATE = (
    "person", "organisation", "device", "device-model", "subject", "birth-date"
)
#: DCM concepts whose TEXT (or DATE) value identifies, by kind.
DCM_CONCEPTS: dict[str, str] = {
    # TID 1003 Person Observer Identifying Attributes, TID 1020 Person Participant
    "121008": PERSON,  # Person Observer Name
    "128774": PERSON,  # Person Observer's Login Name
    "128775": PERSON,  # Identifier within Person Observer's Role
    "113870": PERSON,  # Person Name
    "113871": PERSON,  # Person ID
    "113872": ORGANISATION,  # Person ID Issuer
    "121036": PERSON,  # Mother of fetus
    "110031": PERSON,  # Email
    "121009": ORGANISATION,  # Person Observer's Organization Name
    "113873": ORGANISATION,  # Organization Name
    # TID 1004 Device Observer Identifying Attributes, TID 1021 Device Participant,
    # TID 1010 Subject Context, Device
    "121012": DEVICE,  # Device Observer UID
    "121013": DEVICE,  # Device Observer Name
    "121014": DEVICE_MODEL,  # Device Observer Manufacturer
    "121015": DEVICE_MODEL,  # Device Observer Model Name
    "121016": DEVICE,  # Device Observer Serial Number
    "121017": DEVICE,  # Device Observer Physical Location During Observation
    "113877": DEVICE,  # Device Name
    "113878": DEVICE_MODEL,  # Device Manufacturer
    "113879": DEVICE_MODEL,  # Device Model Name
    "113880": DEVICE,  # Device Serial Number
    "121148": DEVICE,  # Unit Serial Identifier
    "121193": DEVICE,  # Device Subject Name
    "121194": DEVICE_MODEL,  # Device Subject Manufacturer
    "121195": DEVICE_MODEL,  # Device Subject Model Name
    "121196": DEVICE,  # Device Subject Serial Number
    "121197": DEVICE,  # Device Subject Physical Location during observation
    "121198": DEVICE,  # Device Subject UID
    # TID 1005 Procedure Study Context, TID 1006-1009 Subject Context
    "121018": SUBJECT,  # Procedure Study Instance UID
    "121019": SUBJECT,  # Procedure Study Component UID
    "121020": SUBJECT,  # Placer Number
    "121021": SUBJECT,  # Filler Number
    "121022": SUBJECT,  # Accession Number
    "121028": SUBJECT,  # Subject UID
    "121029": SUBJECT,  # Subject Name
    "121030": SUBJECT,  # Subject ID
    "121039": SUBJECT,  # Specimen UID
    "121040": SUBJECT,  # Specimen Accession Number
    "121031": BIRTH_DATE,  # Subject Birth Date
}
#: The option that keeps a kind's values, as it keeps the matching header attribute.
RETAINED_BY = {ORGANISATION: "retain-institution-identity", DEVICE: "retain-device-identity",
               DEVICE_MODEL: "retain-device-identity"}
#: Code meanings of other schemes that name an identifying concept (the first word found decides).
_MEANING = re.compile(
    r"\b(?:(?P<organisation>organi[sz]ation|institution|hospital|facility|department)"
    r"|(?P<device>device|station|serial\s+number)|(?P<model>manufacturer|model\s+name)"
    r"|(?P<birth>birth\s*date|date\s+of\s+birth)"
    r"|(?P<person>name|address|telephone|phone|e-?mail|login|patient\s+id|subject\s+id"
    r"|accession\s+number|identifier))\b",
    re.IGNORECASE,
)
_GROUP_KIND = {"organisation": ORGANISATION, "device": DEVICE, "model": DEVICE_MODEL, "birth": BIRTH_DATE,
               "person": PERSON}


def concept_of(item: Any) -> tuple[str, str, str] | None:
    """(code value, scheme, meaning) of a content item's Concept Name Code Sequence, or ``None``
    when it has none that can be read."""
    try:
        concept = item[0x0040A043].value[0]
        return (
            str(concept.get("CodeValue", "") or concept.get("LongCodeValue", "") or "").strip(),
            str(concept.get("CodingSchemeDesignator", "") or "").strip(),
            str(concept.get("CodeMeaning", "") or "").strip(),
        )
    except (IndexError, TypeError, AttributeError, KeyError, ValueError):
        return None


def identifying_kind(code: str, scheme: str, meaning: str) -> str | None:
    """The kind of identifier a concept's value is, or ``None`` for a concept that identifies
    no one (a measurement, a finding, a role, an algorithm's name)."""
    if scheme == "DCM":
        return DCM_CONCEPTS.get(code)
    match = _MEANING.search(meaning)
    if match is None:
        return None
    return _GROUP_KIND[match.lastgroup or "person"]
