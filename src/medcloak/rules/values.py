"""Values that are always valid for their VR: dummies, and date/time shifting that keeps format.

A dummy never carries information; a shifted date keeps the precision it was written with.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

#: Dummy for action D, by VR. Every one is valid for its VR (length, character repertoire).
DUMMY_TEXT = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UR": "urn:oid:2.25.0",
    "UT": "ANONYMIZED",
}
#: Attributes with an enumerated value set whose dummy must be one of the enumerated values.
DUMMY_BY_TAG = {0x04000565: "CORRECT"}  # Reason for the Attribute Modification
BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"}
TEXT_VRS = {"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
DATE_VRS = {"DA", "DT", "TM"}
MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
              "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64}
_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^(\d{4})(?:(\d{2})(?:(\d{2})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def dummy_value(vr: str, tag: int = 0) -> object:
    """The non-identifying value written for action D."""
    if tag in DUMMY_BY_TAG:
        return DUMMY_BY_TAG[tag]
    if vr in DUMMY_TEXT:
        return DUMMY_TEXT[vr]
    if vr in BINARY_VRS:
        return b"\x00\x00"
    if vr in NUMBER_VRS:
        return 0
    raise ValueError(f"no dummy for VR {vr}")


def valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and bool(_UID.match(value))


def validate_value(vr: str, value: str) -> str | None:
    """``None`` when ``value`` is valid for ``vr``, else what is wrong (for site overrides)."""
    limit = MAX_LENGTH.get(vr)
    for part in value.split("\\") if vr not in ("LT", "ST", "UT", "UR") else [value]:
        if limit and len(part) > limit:
            return f"is longer than {limit} characters allowed for {vr}"
        if vr == "DA" and part and not _DA.match(part):
            return "is not a DA date YYYYMMDD"
        if vr == "TM" and part and not _TM.match(part):
            return "is not a TM time HHMMSS.FFFFFF"
        if vr == "UI" and part and not valid_uid(part):
            return "is not a valid UID"
        if vr in ("IS",) and part and not re.fullmatch(r"\s*[+-]?\d+\s*", part):
            return "is not an integer string"
        if vr == "DS" and part:
            try:
                float(part)
            except ValueError:
                return "is not a decimal string"
        if vr == "CS" and not re.fullmatch(r"[A-Z0-9 _]*", part):
            return "holds characters not allowed in CS"
    return None


# ---- date shifting -------------------------------------------------------------------------


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value; ``None`` when it is not a date we can read."""
    m = _DA.match(value.strip())
    if not m:
        return None
    try:
        d = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    try:
        return (d + timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def _tm_parts(value: str) -> tuple[int, int, int, str, int] | None:
    """(hour, minute, second, fraction text, number of components) of a TM value."""
    v = value.strip()
    if ":" in v:  # ACR-NEMA style HH:MM:SS
        v = v.replace(":", "")
    m = _TM.match(v)
    if not m:
        return None
    hour, minute, second = int(m[1]), int(m[2] or 0), int(m[3] or 0)
    if hour > 23 or minute > 59 or second > 60:
        return None
    comps = 1 + (m[2] is not None) + (m[3] is not None)
    return hour, minute, min(second, 59), m[4] or "", comps


def _format_tm(t: datetime, frac: str, comps: int) -> str:
    text = t.strftime("%H%M%S")[: 2 * comps]
    return text + (frac if comps == 3 else "")


def shift_tm(value: str, seconds: int) -> str | None:
    """Shift a lone TM value by ``seconds`` modulo one day."""
    parts = _tm_parts(value)
    if parts is None:
        return None
    hour, minute, second, frac, comps = parts
    t = datetime(2000, 1, 1, hour, minute, second) + timedelta(seconds=seconds)
    return _format_tm(t, frac, comps)


def shift_da_tm(da: str, tm: str, days: int, seconds: int) -> tuple[str, str] | None:
    """Shift a date and its time together, so a shift across midnight moves the date too."""
    m = _DA.match(da.strip())
    parts = _tm_parts(tm)
    if not m or parts is None:
        return None
    hour, minute, second, frac, comps = parts
    try:
        t = datetime(int(m[1]), int(m[2]), int(m[3]), hour, minute, second)
        t += timedelta(days=days, seconds=seconds)
    except (ValueError, OverflowError):
        return None
    return t.strftime("%Y%m%d"), _format_tm(t, frac, comps)


def shift_dt(value: str, days: int, seconds: int) -> str | None:
    """Shift a DT value, keeping its precision and its UTC offset suffix."""
    m = _DT.match(value.strip())
    if not m:
        return None
    year, month, day, time_text, zone = m[1], m[2], m[3], m[4], m[5] or ""
    try:
        if day is None:  # year or year+month precision: shift by whole days, keep precision
            base = date(int(year), int(month or 1), 1) + timedelta(days=days)
            return base.strftime("%Y%m")[: 4 + (2 if month else 0)] + zone
        if time_text is None:
            moved = shift_da(year + month + day, days)
            return None if moved is None else moved + zone
        shifted = shift_da_tm(year + month + day, time_text, days, seconds)
    except (ValueError, OverflowError):
        return None
    if shifted is None:
        return None
    return shifted[0] + shifted[1] + zone
