"""Tests for medcloak.rules.values: dummies, VR validation and format-keeping date/time shifts.

The shift expectations come from a slow reference written here with ``date.toordinal`` and
explicit zero-padded formatting, not from the module under test.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime, timedelta

import pydicom
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value as pydicom_validate

from medcloak.rules.values import (
    dummy_value,
    shift_da,
    shift_da_tm,
    shift_dt,
    shift_tm,
    validate_value,
)

# ---- helpers / reference ------------------------------------------------------------------

#: PS3.5 Table 6.2-1: bytes per item of the binary VRs (value length is a multiple of it, and even).
ITEM_SIZE = {"OB": 1, "UN": 1, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
#: Every VR of PS3.5 except SQ (which has no dummy value: it is handled as a sequence).
ALL_VRS = [
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR",
    "US", "UT", "UV",
]
#: VRs that hold text (validate_value applies).
TEXT_VRS = ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
            "UR", "UT"]
SECONDS_PER_DAY = 86400


def write_read(vr: str, value: object) -> object:
    """Write ``value`` as a private element of ``vr`` (explicit VR LE) and read it back."""
    ds = Dataset()
    ds.add_new(0x00090010, "LO", "MEDCLOAK TEST")
    ds.add_new(0x00091010, vr, value)
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=False, little_endian=True)
    buf.seek(0)
    back = pydicom.dcmread(buf, force=True)
    elem = back[0x00091010]
    assert elem.VR == vr
    return elem.value


def pydicom_accepts(vr: str, value: object) -> bool:
    try:
        pydicom_validate(vr, value, config.RAISE)
    except ValueError:
        return False
    return True


def fmt_date(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def ref_shift_date(y: int, m: int, d: int, days: int) -> str | None:
    ordinal = date(y, m, d).toordinal() + days
    if not 1 <= ordinal <= date.max.toordinal():
        return None
    return fmt_date(date.fromordinal(ordinal))


def fmt_time(h: int, mi: int, s: int, comps: int, frac: str) -> str:
    text = f"{h:02d}{mi:02d}{s:02d}"[: 2 * comps]
    return text + (frac if comps == 3 else "")


def tm_text(t: datetime, comps: int, frac_digits: int) -> str:
    frac = f".{t.microsecond:06d}"[: 1 + frac_digits] if frac_digits and comps == 3 else ""
    return fmt_time(t.hour, t.minute, t.second, comps, frac)


def parse_tm(text: str) -> tuple[int, int, int, int, int]:
    """(h, m, s, microsecond, components) of a plain ASCII TM."""
    m = re.fullmatch(r"(\d\d)(\d\d)?(\d\d)?(?:\.(\d{1,6}))?", text)
    assert m, text
    comps = 1 + (m[2] is not None) + (m[3] is not None)
    micro = int((m[4] or "").ljust(6, "0")) if m[4] else 0
    return int(m[1]), int(m[2] or 0), int(m[3] or 0), micro, comps


def period(comps: int) -> timedelta:
    return [timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1)][comps - 1]


dates = st.dates(min_value=date(1100, 1, 1), max_value=date(9900, 12, 31))
datetimes = st.datetimes(min_value=datetime(1100, 1, 1), max_value=datetime(9900, 12, 31))
day_shifts = st.integers(min_value=-4000, max_value=4000)
second_shifts = st.integers(min_value=0, max_value=SECONDS_PER_DAY - 1)
frac_digits = st.integers(min_value=0, max_value=6)


# ---- dummy_value ----------------------------------------------------------------------------


@pytest.mark.parametrize("vr", [v for v in ALL_VRS if v != "UI"])
def test_dummy_is_valid_for_its_vr_and_round_trips(vr):
    value = dummy_value(vr)
    if vr in ITEM_SIZE:
        assert isinstance(value, bytes) and len(value) > 0
        assert len(value) % 2 == 0
        assert len(value) % ITEM_SIZE[vr] == 0, f"{vr} dummy of {len(value)} bytes"
        assert write_read(vr, value) == value
        return
    assert pydicom_accepts(vr, value), (vr, value)
    if isinstance(value, str):
        assert value != "", "D means a non-zero-length dummy"
        assert validate_value(vr, value) is None
        assert "\\" not in value
    read = write_read(vr, value)
    if vr in ("DS", "IS"):
        assert float(read) == float(value)
    else:
        assert read == value


@pytest.mark.parametrize("vr", TEXT_VRS)
def test_dummy_is_a_constant_independent_of_the_tag(vr):
    # a dummy carries no information: the same for every tag without an enumerated value set
    assert dummy_value(vr) == dummy_value(vr, 0x00100010) == dummy_value(vr, 0x00081030)


def test_dummy_for_enumerated_reason_for_modification_is_an_enumerated_value():
    # (0400,0565) Reason for the Attribute Modification, CS, enumerated values COERCE / CORRECT
    assert dummy_value("CS", 0x04000565) in {"COERCE", "CORRECT"}


def test_dummy_date_time_values_are_real_dates():
    da = dummy_value("DA")
    assert date(int(da[:4]), int(da[4:6]), int(da[6:8]))
    tm = dummy_value("TM")
    h, mi, s, _, _ = parse_tm(tm)
    assert h < 24 and mi < 60 and s < 60
    dt = dummy_value("DT")
    assert shift_dt(dt, 0, 0) == dt


def test_dummy_unknown_vr_raises_value_error():
    with pytest.raises(ValueError):
        dummy_value("ZZ")


# ---- validate_value ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vr, value",
    [
        ("DA", "20200131"),
        ("DA", "19000101\\20001231"),
        ("TM", "12"),
        ("TM", "1230"),
        ("TM", "123059"),
        ("TM", "123059.123456"),
        ("SH", "A" * 16),
        ("LO", "A" * 64),
        ("CS", "ORIGINAL\\PRIMARY"),
        ("IS", "-12"),
        ("IS", "2147483647"),
        ("IS", "-2147483648"),
        ("DT", "20200101120000.5+1400"),
        ("AS", "045Y"),
        ("DS", "1.5e3"),
        ("UI", "1.2.840.10008.1.2"),
        ("PN", "DOE^JOHN"),
        ("LT", "line one\\still one value"),
    ],
)
def test_validate_accepts_valid_values(vr, value):
    assert validate_value(vr, value) is None


@pytest.mark.parametrize(
    "vr, value",
    [
        ("SH", "A" * 17),
        ("LO", "A" * 65),
        ("CS", "A" * 17),
        ("AE", "A" * 17),
        ("DA", "2020-01-31"),
        ("DA", "not a date"),
        ("DA", "2020013"),
        ("TM", "12:30"),
        ("TM", "12345"),
        ("TM", "noon"),
        ("UI", "1.02.3"),
        ("UI", "1..2"),
        ("UI", "1." + "1" * 63),
        ("IS", "1.5"),
        ("DS", "one"),
        ("CS", "lower case"),
        ("SH", "OK\\" + "B" * 17),  # the second of two values is too long
    ],
)
def test_validate_rejects_invalid_values(vr, value):
    problem = validate_value(vr, value)
    assert isinstance(problem, str) and problem


@pytest.mark.parametrize(
    "vr, value",
    [
        ("DA", "20201301"),  # month 13
        ("DA", "20200132"),  # day 32
        ("DA", "00000000"),
        ("TM", "250000"),  # hour 25
        ("TM", "126000"),  # minute 60
        ("DT", "not a datetime"),
        ("DT", "2020013"),
        ("AS", "12"),
        ("AS", "012X"),
        ("DS", "nan"),
        ("DS", "inf"),
        ("DA", "20200101\n"),  # a trailing newline is not part of any DA
        ("UI", "1.2.3\n"),
        ("IS", "2147483648"),  # IS is a signed 32-bit integer
        ("IS", "-2147483649"),
        ("DT", "20200101+2500"),  # UTC offset beyond +1400
    ],
)
def test_validate_rejects_values_invalid_under_ps35(vr, value):
    # each of these is invalid under PS3.5 Table 6.2-1; a site override must not write it
    assert validate_value(vr, value) is not None, f"{vr} {value!r} accepted"


@settings(max_examples=300)
@given(
    vr=st.sampled_from(["AE", "CS", "DA", "IS", "SH", "LO", "TM", "UI"]),
    value=st.text(alphabet="0123456789AZaz.+- ^_", max_size=20),
)
def test_validate_is_at_least_as_strict_as_pydicom(vr, value):
    # whatever pydicom's own validator rejects as a single value, validate_value rejects too
    if not pydicom_accepts(vr, value):
        assert validate_value(vr, value) is not None, f"{vr} {value!r}"


@settings(max_examples=200)
@given(
    vr=st.sampled_from(["CS", "DA", "IS", "SH", "LO", "TM", "UI", "PN"]),
    value=st.text(alphabet="0123456789AZ.^ ", max_size=20),
)
def test_values_validate_accepts_can_be_written_and_read_back(vr, value):
    assume(value.strip() == value and value)
    if validate_value(vr, value) is None:
        assert pydicom_accepts(vr, value), f"{vr} {value!r}"
        read = write_read(vr, value)
        assert str(read) == value


# ---- shift_da --------------------------------------------------------------------------------


@settings(max_examples=300)
@given(d=dates, days=day_shifts)
def test_shift_da_matches_reference(d, days):
    assert shift_da(fmt_date(d), days) == ref_shift_date(d.year, d.month, d.day, days)


@given(a=dates, b=dates, days=day_shifts)
def test_shift_da_preserves_intervals(a, b, days):
    sa, sb = shift_da(fmt_date(a), days), shift_da(fmt_date(b), days)
    pa = date(int(sa[:4]), int(sa[4:6]), int(sa[6:]))
    pb = date(int(sb[:4]), int(sb[4:6]), int(sb[6:]))
    assert (pb - pa).days == (b - a).days
    assert (pa - a).days == days


@pytest.mark.parametrize(
    "value, days, expected",
    [
        ("20200228", 1, "20200229"),  # leap year
        ("20210228", 1, "20210301"),  # not a leap year
        ("19000228", 1, "19000301"),  # 1900 is not a leap year
        ("20000228", 1, "20000229"),  # 2000 is
        ("20201231", 1, "20210101"),
        ("20210101", -1, "20201231"),
        ("20200229", 365, "20210228"),
        ("20200229", -366, "20190228"),
        (" 20200131 ", 0, "20200131"),  # DICOM padding is not part of the value
    ],
)
def test_shift_da_calendar_edges(value, days, expected):
    assert shift_da(value, days) == expected


def test_shift_da_keeps_four_digit_year_before_year_1000():
    # 1000-01-01 minus 400 days is 0998-11-27 (1000 and 999 are not leap years)
    assert shift_da("10000101", -400) == "09981127"


@pytest.mark.parametrize("value", ["0999", "099912", "09991231", "0999123112", "09991231120000"])
def test_shift_keeps_four_digit_years(value):
    assert shift_dt(value, 0, 0) == value
    if len(value) == 8:
        assert shift_da(value, 0) == value


@pytest.mark.parametrize(
    "value", ["", "2020013", "202001311", "2020-01-31", "20201301", "20200230", "20210229",
              "abcdefgh", "00000101", "2020O131"],
)
def test_shift_da_invalid_gives_none(value):
    assert shift_da(value, 400) is None


def test_shift_da_out_of_range_gives_none():
    assert shift_da("99991231", 1) is None
    assert shift_da("00010101", -1) is None


# ---- shift_tm --------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    t=st.times(),
    comps=st.integers(1, 3),
    digits=frac_digits,
    seconds=st.integers(-10 * SECONDS_PER_DAY, 10 * SECONDS_PER_DAY),
)
def test_shift_tm_matches_reference_modulo_one_day(t, comps, digits, seconds):
    start = datetime(2000, 1, 1, t.hour, t.minute, t.second, t.microsecond)
    text = tm_text(start, comps, digits)
    out = shift_tm(text, seconds)
    assert out is not None
    # same precision and the fraction kept as written
    assert len(out) == len(text)
    if comps == 3 and digits:
        assert out[6:] == text[6:]
    h, mi, s, _, _ = parse_tm(text)
    if comps == 3:
        total = (h * 3600 + mi * 60 + s + seconds) % SECONDS_PER_DAY
        assert out[:6] == f"{total // 3600:02d}{total % 3600 // 60:02d}{total % 60:02d}"
    else:
        # reduced precision: the shifted value names a period that overlaps the shifted period
        unit = 3600 if comps == 1 else 60
        lo = h * 3600 + mi * 60 + seconds
        candidates = {
            (x % SECONDS_PER_DAY) // unit for x in (lo, lo + unit - 1)
        }
        oh, om, _, _, _ = parse_tm(out)
        assert (oh * 3600 + om * 60) // unit in candidates


@pytest.mark.parametrize(
    "value, seconds, expected",
    [
        ("233000", 3600, "003000"),
        ("2330", 3600, "0030"),
        ("23", 3600, "00"),
        ("233000.123", 3600, "003000.123"),
        ("000000.000001", 86399, "235959.000001"),
        ("120000", 0, "120000"),
        ("120000", 86400, "120000"),
        ("120000", -1, "115959"),
        ("120000 ", 1, "120001"),
    ],
)
def test_shift_tm_examples(value, seconds, expected):
    assert shift_tm(value, seconds) == expected


def test_shift_tm_is_modulo_one_day_even_for_large_shifts():
    # the docstring promises "modulo one day": a shift of n whole days plus 1 s moves by 1 s
    assert shift_tm("120000", 10**12 * SECONDS_PER_DAY + 1) == "120001"


@pytest.mark.parametrize(
    "value", ["", "2", "123", "12345", "240000", "126000", "120099", "12.5", "noon", "12:3",
              "1200000", "120000.1234567", "-10000"],
)
def test_shift_tm_invalid_gives_none(value):
    assert shift_tm(value, 60) is None


def test_shift_tm_leap_second_gives_a_valid_time():
    out = shift_tm("235960", 0)
    assert out is not None and validate_value("TM", out) is None
    h, mi, s, _, _ = parse_tm(out)
    assert (h, mi) == (23, 59) and s < 60


# ---- shift_da_tm -----------------------------------------------------------------------------


@settings(max_examples=300)
@given(start=datetimes, comps=st.integers(1, 3), digits=frac_digits, days=day_shifts,
       seconds=second_shifts)
def test_shift_da_tm_matches_reference(start, comps, digits, days, seconds):
    da, tm = fmt_date(start), tm_text(start, comps, digits)
    out = shift_da_tm(da, tm, days, seconds)
    assert out is not None
    out_da, out_tm = out
    assert len(out_da) == 8 and len(out_tm) == len(tm)
    h, mi, s, micro, _ = parse_tm(tm)
    given_start = datetime(start.year, start.month, start.day, h, mi, s)
    shifted = given_start + timedelta(days=days, seconds=seconds)
    if comps == 3:
        assert out_da == fmt_date(shifted.date())
        assert out_tm == fmt_time(shifted.hour, shifted.minute, shifted.second, 3, tm[6:])
    else:
        unit = period(comps)
        oh, om, _, _, _ = parse_tm(out_tm)
        result = datetime(int(out_da[:4]), int(out_da[4:6]), int(out_da[6:]), oh, om)
        # the result period [result, result+unit) overlaps the shifted period
        assert result < shifted + unit and result + unit > shifted


@settings(max_examples=300)
@given(a=datetimes, b=datetimes, digits=frac_digits, days=day_shifts, seconds=second_shifts)
def test_shift_da_tm_preserves_intervals(a, b, digits, days, seconds):
    def shifted(t: datetime) -> datetime:
        out = shift_da_tm(fmt_date(t), tm_text(t, 3, digits), days, seconds)
        assert out is not None
        h, mi, s, micro, _ = parse_tm(out[1])
        return datetime(int(out[0][:4]), int(out[0][4:6]), int(out[0][6:]), h, mi, s, micro)

    def written(t: datetime) -> datetime:
        h, mi, s, micro, _ = parse_tm(tm_text(t, 3, digits))
        return datetime(t.year, t.month, t.day, h, mi, s, micro)

    sa, sb = shifted(a), shifted(b)
    assert sb - sa == written(b) - written(a)
    assert sa - written(a) == timedelta(days=days, seconds=seconds)


@pytest.mark.parametrize(
    "da, tm, days, seconds, expected",
    [
        ("20201231", "233000", 0, 3600, ("20210101", "003000")),  # midnight and year boundary
        ("20200228", "230000", 0, 7200, ("20200229", "010000")),  # into Feb 29
        ("20210228", "230000", 0, 7200, ("20210301", "010000")),  # no Feb 29 in 2021
        ("20200229", "235959.5", 0, 1, ("20200301", "000000.5")),
        ("20200301", "003000", -1, 0, ("20200229", "003000")),
        ("20200301", "0030", -366, 86399, ("20190302", "0029")),  # 00:29:59 next day
        ("20201231", "23", 1, 3600, ("20210102", "00")),
    ],
)
def test_shift_da_tm_examples(da, tm, days, seconds, expected):
    assert shift_da_tm(da, tm, days, seconds) == expected


@pytest.mark.parametrize(
    "da, tm",
    [("20201301", "120000"), ("20200101", "250000"), ("", "120000"), ("20200101", ""),
     ("2020-01-01", "120000"), ("20200101", "12:3")],
)
def test_shift_da_tm_invalid_gives_none(da, tm):
    assert shift_da_tm(da, tm, 10, 10) is None


def test_shift_da_tm_out_of_range_gives_none():
    assert shift_da_tm("99991231", "230000", 0, 7200) is None


# ---- shift_dt --------------------------------------------------------------------------------

#: UTC offsets within the range PS3.5 allows for DT (-1200 to +1400), and no offset at all.
zones = st.one_of(
    st.just(""),
    st.builds(lambda h, m: f"+{h:02d}{m:02d}", st.integers(0, 13), st.sampled_from([0, 30, 45])),
    st.builds(lambda h, m: f"-{h:02d}{m:02d}", st.integers(0, 11), st.sampled_from([0, 30, 45])),
    st.sampled_from(["+1400", "-1200"]),
)


@settings(max_examples=400)
@given(start=datetimes, precision=st.integers(1, 6), digits=frac_digits, zone=zones,
       days=day_shifts, seconds=second_shifts)
def test_shift_dt_matches_reference(start, precision, digits, zone, days, seconds):
    # precision: 1 year, 2 year-month, 3 date, 4 +HH, 5 +HHMM, 6 +HHMMSS[.F]
    body = f"{start.year:04d}{start.month:02d}{start.day:02d}"[: [4, 6, 8][min(precision, 3) - 1]]
    if precision >= 4:
        body += tm_text(start, precision - 3, digits)
    value = body + zone
    out = shift_dt(value, days, seconds)
    assert out is not None, value
    assert out.endswith(zone) and len(out) == len(value), (value, out)
    out_body = out[: len(out) - len(zone)] if zone else out
    assert out_body.isdigit() or "." in out_body
    if precision == 6:
        given = datetime(start.year, start.month, start.day, start.hour, start.minute, start.second)
        shifted = given + timedelta(days=days, seconds=seconds)
        expected = fmt_date(shifted.date()) + fmt_time(
            shifted.hour, shifted.minute, shifted.second, 3, body[14:]
        )
        assert out_body == expected
        return
    # reduced precision: the result period overlaps the shifted period
    y, m, d = start.year, start.month if precision >= 2 else 1, start.day if precision >= 3 else 1
    hh = start.hour if precision >= 4 else 0
    mm = start.minute if precision >= 5 else 0
    first = datetime(y, m, d, hh, mm)

    def next_period(t: datetime, p: int) -> datetime:
        if p == 1:
            return t.replace(year=t.year + 1)
        if p == 2:
            return (t.replace(day=28) + timedelta(days=4)).replace(day=1)
        return t + [timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)][p - 3]

    lo = first + timedelta(days=days, seconds=seconds)
    hi = next_period(first, precision) + timedelta(days=days, seconds=seconds)
    o = out_body
    result = datetime(
        int(o[:4]),
        int(o[4:6]) if precision >= 2 else 1,
        int(o[6:8]) if precision >= 3 else 1,
        int(o[8:10]) if precision >= 4 else 0,
        int(o[10:12]) if precision >= 5 else 0,
    )
    assert result < hi and next_period(result, precision) > lo, (value, out)


@settings(max_examples=200)
@given(a=datetimes, b=datetimes, zone=zones, days=day_shifts, seconds=second_shifts)
def test_shift_dt_preserves_intervals(a, b, zone, days, seconds):
    def shifted(t: datetime) -> datetime:
        out = shift_dt(t.strftime("%Y%m%d%H%M%S") + f".{t.microsecond:06d}" + zone, days, seconds)
        assert out is not None and out.endswith(zone)
        return datetime.strptime(out[: len(out) - len(zone)] if zone else out, "%Y%m%d%H%M%S.%f")

    assert shifted(b) - shifted(a) == b - a
    assert shifted(a) - a == timedelta(days=days, seconds=seconds)


@pytest.mark.parametrize(
    "value, days, seconds, expected",
    [
        ("20201231233000.25+0100", 0, 3600, "20210101003000.25+0100"),
        ("20201231233000-0500", 1, 0, "20210101233000-0500"),
        ("20200228230000", 0, 7200, "20200229010000"),
        ("20210228230000+0000", 0, 7200, "20210301010000+0000"),
        ("20200131", 30, 0, "20200301"),
        ("20200131+1400", 29, 0, "20200229+1400"),
        ("2020123123", 0, 3600, "2021010100"),
        ("202012312359", 0, 60, "202101010000"),
        ("2020", 0, 0, "2020"),
        ("202002", 0, 0, "202002"),
        ("2020-0800", 0, 0, "2020-0800"),
    ],
)
def test_shift_dt_examples(value, days, seconds, expected):
    assert shift_dt(value, days, seconds) == expected


@pytest.mark.parametrize(
    "value",
    ["", "20", "202", "20201", "2020131", "20201301", "20200230", "202001011", "2020010125",
     "202001011260", "20200101120000.1234567", "2020-01-01", "20200101+01",
     "20200101120000Z", "abcd", "20200101+2500", "2020+0099"],
)
def test_shift_dt_invalid_gives_none(value):
    assert shift_dt(value, 10, 10) is None


@settings(max_examples=300)
@given(
    # years from 1000 on: earlier years are covered by test_shift_keeps_four_digit_years
    value=st.from_regex(r"[1-9][0-9]{3}[0-9]{0,10}(\.[0-9]{1,7})?([+-][0-9]{4})?", fullmatch=True),
    days=day_shifts,
    seconds=second_shifts,
)
def test_shift_dt_output_is_none_or_valid_dt(value, days, seconds):
    out = shift_dt(value, days, seconds)
    if out is not None:
        assert pydicom_accepts("DT", out), (value, out)


@settings(max_examples=300)
@given(
    value=st.text(max_size=30) | st.from_regex(r"[0-9 .:+-]{0,20}", fullmatch=True),
    days=day_shifts,
    seconds=second_shifts,
)
def test_shifts_never_crash_and_give_valid_values(value, days, seconds):
    for vr, out in (
        ("DA", shift_da(value, days)),
        ("TM", shift_tm(value, seconds)),
        ("DT", shift_dt(value, days, seconds)),
    ):
        assert out is None or (
            isinstance(out, str) and out.isascii() and pydicom_accepts(vr, out)
        ), (vr, value, out)
    pair = shift_da_tm(value, value, days, seconds)
    assert pair is None or all(
        p.isascii() and pydicom_accepts(vr, p) for vr, p in zip(("DA", "TM"), pair)
    ), (value, pair)


@pytest.mark.parametrize(
    "vr, value",
    [("TM", "120000.\u0661\u0662"), ("DA", "2020\u0660\u0661\u0660\u0661"),
     ("DT", "20200101120000.\u0661"), ("TM", "\u0661\u0662")],
)
def test_shift_of_non_ascii_digits_gives_none_or_ascii(vr, value):
    # Arabic-Indic digits are not DICOM digits: the result is None or a valid ASCII value
    out = {"DA": lambda: shift_da(value, 0), "TM": lambda: shift_tm(value, 0),
           "DT": lambda: shift_dt(value, 0, 0)}[vr]()
    assert out is None or (out.isascii() and pydicom_accepts(vr, out)), out
