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
_DA = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_TM = re.compile(r"([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(\.[0-9]{1,6})?)?)?")
_DT = re.compile(
    r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})([0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:\.[0-9]{1,6})?)?)?)?)?)?"
    r"([+-][0-9]{4})?"
)
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_AS = re.compile(r"[0-9]{3}[DWMY]")


def dummy_value(vr: str, tag: int = 0) -> object:
    """The non-identifying value written for action D."""
    if tag in DUMMY_BY_TAG:
        return DUMMY_BY_TAG[tag]
    if vr in DUMMY_TEXT:
        return DUMMY_TEXT[vr]
    if vr in BINARY_VRS:
        return b"\x00" * 8  # a whole number of 2-, 4- and 8-byte words
    if vr in NUMBER_VRS:
        return 0
    raise ValueError(f"no dummy for VR {vr}")


def valid_uid(value: str) -> bool:
    return 0 < len(value) <= 64 and _UID.fullmatch(value) is not None


def _ymd(d: date | datetime) -> str:
    """YYYYMMDD with a four-digit year (``strftime`` drops the zeros of years before 1000)."""
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _read_da(value: str) -> date | None:
    m = _DA.fullmatch(value)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _valid_zone(zone: str) -> bool:
    """A DT UTC offset &ZZXX within -1200..+1400."""
    hours, minutes = int(zone[1:3]), int(zone[3:5])
    if minutes > 59:
        return False
    total = hours * 60 + minutes
    return total <= (14 * 60 if zone[0] == "+" else 12 * 60)


def validate_value(vr: str, value: str) -> str | None:
    """``None`` when ``value`` is valid for ``vr``, else what is wrong (for site overrides)."""
    limit = MAX_LENGTH.get(vr)
    for part in value.split("\\") if vr not in ("LT", "ST", "UT", "UR") else [value]:
        if limit and len(part) > limit:
            return f"is longer than {limit} characters allowed for {vr}"
        if vr == "DA" and part and _read_da(part) is None:
            return "is not a DA date YYYYMMDD"
        if vr == "TM" and part and _tm_parts(part, strict=True) is None:
            return "is not a TM time HHMMSS.FFFFFF"
        if vr == "DT" and part and shift_dt(part, 0, 0) is None:
            return "is not a DT date-time YYYYMMDDHHMMSS.FFFFFF&ZZXX"
        if vr == "AS" and part and _AS.fullmatch(part) is None:
            return "is not an age nnnD, nnnW, nnnM or nnnY"
        if vr == "UI" and part and not valid_uid(part):
            return "is not a valid UID"
        if vr == "IS" and part:
            if re.fullmatch(r" *[+-]?[0-9]+ *", part) is None:
                return "is not an integer string"
            if not -(2**31) <= int(part) < 2**31:
                return "is outside the range of IS"
        if vr == "DS" and part and re.fullmatch(
            r" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *", part
        ) is None:
            return "is not a decimal string"
        if vr == "CS" and not re.fullmatch(r"[A-Z0-9 _]*", part):
            return "holds characters not allowed in CS"
    return None


# ---- date shifting -------------------------------------------------------------------------


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value; ``None`` when it is not a date we can read."""
    d = _read_da(value.strip())
    if d is None:
        return None
    try:
        return _ymd(d + timedelta(days=days))
    except OverflowError:
        return None


def _tm_parts(value: str, strict: bool = False) -> tuple[int, int, int, str, int] | None:
    """(hour, minute, second, fraction text, number of components) of a TM value."""
    v = value if strict else value.strip()  # validation takes the value as it would be written
    if ":" in v and not strict:  # ACR-NEMA style HH:MM:SS, read but never written
        v = v.replace(":", "")
    m = _TM.fullmatch(v)
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
    t = datetime(2000, 1, 1, hour, minute, second) + timedelta(seconds=seconds % 86400)
    return _format_tm(t, frac, comps)


def shift_da_tm(da: str, tm: str, days: int, seconds: int) -> tuple[str, str] | None:
    """Shift a date and its time together, so a shift across midnight moves the date too."""
    d = _read_da(da.strip())
    parts = _tm_parts(tm)
    if d is None or parts is None:
        return None
    hour, minute, second, frac, comps = parts
    try:
        t = datetime(d.year, d.month, d.day, hour, minute, second)
        t += timedelta(days=days, seconds=seconds)
    except (ValueError, OverflowError):
        return None
    return _ymd(t), _format_tm(t, frac, comps)


def shift_dt(value: str, days: int, seconds: int) -> str | None:
    """Shift a DT value, keeping its precision and its UTC offset suffix."""
    m = _DT.fullmatch(value.strip())
    if not m:
        return None
    year, month, day, time_text, zone = m[1], m[2], m[3], m[4], m[5] or ""
    if zone and not _valid_zone(zone):
        return None
    try:
        if day is None:  # year or year+month precision: shift by whole days, keep precision
            base = date(int(year), int(month or 1), 1) + timedelta(days=days)
            return _ymd(base)[: 4 + (2 if month else 0)] + zone
        if time_text is None:
            moved = shift_da(year + month + day, days)
            return None if moved is None else moved + zone
        shifted = shift_da_tm(year + month + day, time_text, days, seconds)
    except (ValueError, OverflowError):
        return None
    if shifted is None:
        return None
    return shifted[0] + shifted[1] + zone
