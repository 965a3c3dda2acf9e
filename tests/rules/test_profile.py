"""Tests for medcloak.rules.profile and medcloak.rules.overrides.

Expected actions are computed here from the rule data with an independent re-implementation of
the precedence: site override > option K > option C > Basic Profile code with compound codes
resolved (X/Z -> Z; X/D, Z/D, X/Z/D -> D; X/Z/U* -> U); Patient's Name and Patient ID get a keyed
pseudonym ("P") where the result would be an empty or dummy value.
"""

from __future__ import annotations

import hashlib
import itertools
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak.errors import ProfileError
from medcloak.rules.profile import load_profile, rule_data

OPTIONS = [
    "retain-safe-private",
    "retain-uids",
    "retain-device-identity",
    "retain-institution-identity",
    "retain-patient-characteristics",
    "retain-long-full-dates",
    "retain-long-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
]
NOT_AVAILABLE: list[str] = []  # every option of PS3.15 is carried out
EXCLUSIVE = {"retain-long-full-dates", "retain-long-modified-dates"}
#: PS3.16 CID 7050 De-identification Method (scheme DCM).
CID_7050 = {
    "basic": "113100",
    "clean-pixel-data": "113101",
    "clean-recognizable-visual-features": "113102",
    "clean-graphics": "113103",
    "clean-structured-content": "113104",
    "clean-descriptors": "113105",
    "retain-long-full-dates": "113106",
    "retain-long-modified-dates": "113107",
    "retain-patient-characteristics": "113108",
    "retain-device-identity": "113109",
    "retain-uids": "113110",
    "retain-safe-private": "113111",
    "retain-institution-identity": "113112",
}
RESOLVED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
PSEUDONYM_TAGS = {0x00100010, 0x00100020, 0x00400512, 0x00400551}  # patient; container and specimen (keyed)
PATTERN_SAMPLES = {
    "50xxxxxx": [0x50000000, 0x50003000, 0x501E0010, 0x50FE2000],
    "60xx3000": [0x60003000, 0x60023000, 0x601E3000],
    "60xx4000": [0x60004000, 0x600A4000, 0x60FE4000],
}

TABLE = rule_data("ps315_e1_1.json")
E3_10 = rule_data("ps315_e3_10.json")["elements"]
TCIA = rule_data("tcia_private.json")["elements"]


def expected(row: dict, chosen: list[str]) -> tuple[str, set[str]]:
    """(code, acceptable sources) for one table row under the chosen options."""
    by_option = {o: row["options"][o] for o in chosen if o in row["options"]}
    keepers = {o for o, c in by_option.items() if c == "K"}
    cleaners = {o for o, c in by_option.items() if c == "C"}
    if keepers:
        code, sources = "K", keepers
    elif cleaners:
        code, sources = "C", cleaners
    else:
        code, sources = RESOLVED.get(row["basic"], row["basic"]), {"basic"}
    return code, sources


def tags_of(row: dict) -> list[int]:
    return PATTERN_SAMPLES[row["tag"]] if "x" in row["tag"] else [int(row["tag"], 16)]


def check_every_row(chosen: list[str]) -> None:
    profile = load_profile(options=chosen)
    assert set(profile.options) == set(chosen)
    for row in TABLE["attributes"]:
        code, sources = expected(row, chosen)
        for tag in tags_of(row):
            action = profile.resolve(tag)
            assert action is not None, row
            if tag in PSEUDONYM_TAGS and code in ("Z", "D"):
                assert action.code == "P", (row["name"], chosen, action)
                continue
            assert action.code == code, (row["name"], row["tag"], chosen, action)
            assert action.source in sources, (row["name"], chosen, action)
    code, sources = expected(TABLE["private"], chosen)
    assert profile.private.code == code and profile.private.source in sources


def write_toml(tmp_path, text: str, name: str = "site.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ---- Basic Profile --------------------------------------------------------------------------


def test_table_shape_assumed_by_these_tests():
    assert TABLE["release"] == "2025b"
    assert set(PATTERN_SAMPLES) == {r["tag"] for r in TABLE["attributes"] if "x" in r["tag"]}
    assert {c for r in TABLE["attributes"] for c in r["options"].values()} <= {"K", "C"}
    assert {o for r in TABLE["attributes"] for o in r["options"]} <= set(OPTIONS)


@pytest.mark.parametrize(
    "tag, code",
    [
        (0x00080080, "D"),  # Institution Name, X/Z/D
        (0x00100020, "P"),  # Patient ID, Z/D -> keyed pseudonym
        (0x00100010, "P"),  # Patient's Name, Z -> keyed pseudonym
        (0x0020000D, "U"),  # Study Instance UID
        (0x00080020, "Z"),  # Study Date
        (0x00081030, "X"),  # Study Description
        (0x00181000, "D"),  # Device Serial Number, X/Z/D
        (0x50001234, "X"),  # Curve Data
        (0x60003000, "X"),  # Overlay Data
    ],
)
def test_basic_profile_examples(tag, code):
    row = next((r for r in TABLE["attributes"] if "x" not in r["tag"] and int(r["tag"], 16) == tag),
               None)
    if row is not None:  # the example agrees with the table itself
        assert code in ("P", RESOLVED.get(row["basic"], row["basic"]))
    action = load_profile().resolve(tag)
    assert action is not None and action.code == code


def test_basic_profile_every_row():
    check_every_row([])


def test_basic_profile_silent_on_tags_outside_the_table():
    profile = load_profile()
    table_tags = {int(r["tag"], 16) for r in TABLE["attributes"] if "x" not in r["tag"]}
    for tag in (0x00280010, 0x00180050, 0x7FE00010, 0x50010000, 0x60013000, 0x60000010):
        assert tag not in table_tags
        assert profile.resolve(tag) is None, hex(tag)


def test_basic_profile_private_attributes_removed_and_not_kept():
    profile = load_profile()
    assert profile.private.code == "X"
    e = E3_10[0]
    assert not profile.keep_private(e["creator"], int(e["group"], 16), 0x1000 | int(e["offset"], 16))


def test_basic_profile_release_and_description():
    profile = load_profile()
    assert profile.release == "2025b"
    description = profile.describe()
    assert description["standard_release"] == "2025b"
    assert [m["code"] for m in description["method_codes"]] == ["113100"]
    assert all(m["scheme"] == "DCM" for m in description["method_codes"])
    assert description["site_overrides_sha256"] is None


# ---- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_every_row(option):
    check_every_row([option])


@pytest.mark.parametrize("dates", sorted(EXCLUSIVE))
def test_all_compatible_options_every_row(dates):
    check_every_row([o for o in OPTIONS if o not in EXCLUSIVE] + [dates])


@settings(max_examples=25, deadline=None)
@given(chosen=st.lists(st.sampled_from(OPTIONS), unique=True, max_size=6))
def test_random_option_sets_every_row(chosen):
    if EXCLUSIVE <= set(chosen):
        with pytest.raises(ProfileError):
            load_profile(options=chosen)
        return
    check_every_row(chosen)


@pytest.mark.parametrize(
    "option, tag, code",
    [
        ("retain-long-full-dates", 0x00080020, "K"),  # Study Date
        ("retain-long-modified-dates", 0x00080020, "C"),
        ("retain-device-identity", 0x00181000, "K"),  # Device Serial Number
        ("clean-descriptors", 0x00081030, "C"),  # Study Description
        ("retain-uids", 0x0020000D, "K"),  # Study Instance UID
        ("retain-institution-identity", 0x00080080, "K"),  # Institution Name
    ],
)
def test_option_examples(option, tag, code):
    assert load_profile().resolve(tag).code != code
    action = load_profile(options=[option]).resolve(tag)
    assert action.code == code and action.source == option


def test_k_beats_c_across_options():
    # Calibration Date: retain-device-identity K, retain-long-modified-dates C
    rows = [r for r in TABLE["attributes"]
            if r["options"].get("retain-device-identity") == "K"
            and r["options"].get("retain-long-modified-dates") == "C"]
    assert rows
    profile = load_profile(options=["retain-long-modified-dates", "retain-device-identity"])
    for row in rows:
        action = profile.resolve(int(row["tag"], 16))
        assert (action.code, action.source) == ("K", "retain-device-identity"), row["name"]


def test_options_are_deduplicated_and_order_independent():
    a = load_profile(options=["clean-descriptors", "retain-uids", "clean-descriptors"])
    b = load_profile(options=["retain-uids", "clean-descriptors"])
    assert sorted(a.options) == sorted(b.options) == ["clean-descriptors", "retain-uids"]
    assert a.exact == b.exact


@pytest.mark.parametrize("options", [["no-such-option"], ["retain-uids", "Retain-UIDs"], [""]])
def test_unknown_option_is_profile_error(options):
    with pytest.raises(ProfileError):
        load_profile(options=options)


def test_full_and_modified_dates_exclude_each_other():
    with pytest.raises(ProfileError):
        load_profile(options=["retain-long-full-dates", "retain-long-modified-dates"])


def test_every_option_is_available():
    from medcloak.rules.profile import UNAVAILABLE_OPTIONS

    assert UNAVAILABLE_OPTIONS == {} and NOT_AVAILABLE == []
    for option in CID_7050:
        if option != "basic":
            assert option in load_profile(options=[option]).options


def test_profile_error_is_a_value_error():
    with pytest.raises(ValueError):
        load_profile(options=["no-such-option"])


@pytest.mark.parametrize("option", OPTIONS)
def test_method_codes_per_option(option):
    codes = [code for code, _ in load_profile(options=[option]).method_codes()]
    assert codes.count("113100") == 1
    assert sorted(codes) == sorted(["113100", CID_7050[option]])


def test_method_codes_for_many_options():
    chosen = ["retain-uids", "clean-descriptors", "retain-long-modified-dates", "clean-graphics"]
    profile = load_profile(options=chosen)
    codes = [code for code, _ in profile.method_codes()]
    assert sorted(codes) == sorted(["113100"] + [CID_7050[o] for o in chosen])
    assert len(set(codes)) == len(codes)
    meanings = dict(profile.method_codes())
    assert "Basic" in meanings["113100"] and "UID" in meanings["113110"]


# ---- private blocks -------------------------------------------------------------------------


def test_keep_private_e3_10_relocated_blocks():
    profile = load_profile(options=["retain-safe-private"])
    for e in E3_10:
        group, offset = int(e["group"], 16), int(e["offset"], 16)
        for block in (0x10, 0x42, 0xFF):
            assert profile.keep_private(e["creator"], group, (block << 8) | offset), e
        assert not profile.keep_private(e["creator"] + " X", group, 0x1000 | offset)
        assert not profile.keep_private(e["creator"].lower() + "_", group, 0x1000 | offset)


def test_keep_private_siemens_b_value_in_any_block():
    # SIEMENS MR HEADER (0019,xx0C) B Value is in E.3.10: block 0x10 and block 0x42 alike
    assert any(e["creator"] == "SIEMENS MR HEADER" and e["group"] == "0019" and e["offset"] == "0c"
               for e in E3_10)
    profile = load_profile(options=["retain-safe-private"])
    assert profile.keep_private("SIEMENS MR HEADER", 0x0019, 0x100C)
    assert profile.keep_private("SIEMENS MR HEADER", 0x0019, 0x420C)
    assert not profile.keep_private("SIEMENS CT VA0  COAD", 0x0019, 0x100C)
    assert not profile.keep_private("SIEMENS MR HEADER", 0x0021, 0x100C)
    listed = {int(e["offset"], 16) for e in E3_10
              if e["creator"] == "SIEMENS MR HEADER" and e["group"] == "0019"}
    unlisted = next(o for o in range(0x100) if o not in listed)
    assert not profile.keep_private("SIEMENS MR HEADER", 0x0019, 0x1000 | unlisted)
    assert not profile.keep_private("SIEMENS MR HEADER", 0x0019, 0x4200 | unlisted)


def test_keep_private_needs_retain_safe_private():
    profile = load_profile(options=["retain-uids"])
    assert not any(
        profile.keep_private(e["creator"], int(e["group"], 16), 0x1000 | int(e["offset"], 16))
        for e in E3_10
    )


def test_tcia_private_profile_adds_tcia_list():
    safe = {(e["creator"], e["group"], e["offset"]) for e in E3_10}
    extra = [e for e in TCIA if (e["creator"], e["group"], e["offset"]) not in safe]
    assert extra
    basic = load_profile(options=["retain-safe-private"])
    tcia = load_profile("tcia-private")
    assert "retain-safe-private" in tcia.options
    for e in extra[:: max(1, len(extra) // 200)]:
        group, offset = int(e["group"], 16), int(e["offset"], 16)
        assert tcia.keep_private(e["creator"], group, 0x1000 | offset), e
        assert tcia.keep_private(e["creator"], group, 0x5A00 | offset), e
        assert not basic.keep_private(e["creator"], group, 0x1000 | offset), e
    for e in E3_10:  # E.3.10 still kept
        assert tcia.keep_private(e["creator"], int(e["group"], 16), 0x1000 | int(e["offset"], 16))


def test_unknown_builtin_like_profile_name_is_error():
    with pytest.raises(ProfileError):
        load_profile("tcia")


# ---- site overrides ---------------------------------------------------------------------------


def test_site_overrides_take_effect(tmp_path):
    path = write_toml(tmp_path, r'''
        name = "site-a"
        options = ["retain-long-full-dates"]

        [attributes]
        PatientAge = "keep"
        StudyDate = "remove"
        "(0008,1030)" = { replace = "STUDY" }
        SeriesDescription = { regex-clean = "\\b[A-Z]{2}[0-9]{6}\\b" }
        "(0018,0050)" = "remove"
    ''')
    profile = load_profile(path)
    assert profile.name == "site-a"
    assert "retain-long-full-dates" in profile.options
    age = profile.resolve(0x00101010)
    assert (age.code, age.source) == ("K", "site override")
    date = profile.resolve(0x00080020)  # the option would keep it; the site removes it
    assert (date.code, date.source) == ("X", "site override")
    desc = profile.resolve(0x00081030)
    assert (desc.code, desc.source, desc.value) == ("R", "site override", "STUDY")
    series = profile.resolve(0x0008103E)
    assert (series.code, series.source) == ("E", "site override")
    assert series.pattern == r"\b[A-Z]{2}[0-9]{6}\b"
    thickness = profile.resolve(0x00180050)  # not in Table E.1-1 at all
    assert (thickness.code, thickness.source) == ("X", "site override")
    # everything else still follows the table and the options
    acq = profile.resolve(0x00080022)  # Acquisition Date, K under retain-long-full-dates
    assert (acq.code, acq.source) == ("K", "retain-long-full-dates")
    assert profile.overrides_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert profile.describe()["site_overrides_sha256"] == profile.overrides_digest
    assert [c for c, _ in profile.method_codes()] == ["113100", "113106"]


def test_site_override_name_defaults_to_file_stem(tmp_path):
    path = write_toml(tmp_path, '[attributes]\nPatientAge = "keep"\n', name="hospital-x.toml")
    assert load_profile(path).name == "hospital-x"


def test_site_override_options_combine_with_command_line(tmp_path):
    path = write_toml(tmp_path, 'options = ["retain-long-full-dates"]\n')
    with pytest.raises(ProfileError):
        load_profile(path, options=["retain-long-modified-dates"])
    profile = load_profile(path, options=["retain-uids"])
    assert set(profile.options) == {"retain-long-full-dates", "retain-uids"}


@pytest.mark.parametrize(
    "text",
    [
        'name = ',  # invalid TOML
        '[attributes\nPatientAge = "keep"',  # invalid TOML
        'colour = "red"\n',  # unknown top-level key
        '[attributes]\nNotAKeyword = "keep"\n',  # unknown attribute keyword
        '[attributes]\n"(0008,10)" = "keep"\n',  # malformed tag text
        '[attributes]\nStationName = { replace = "ABCDEFGHIJKLMNOPQRST" }\n',  # 20 chars for SH
        '[attributes]\nStudyDate = { replace = "yesterday" }\n',  # not a DA
        '[attributes]\nStudyDate = { replace = "2020-01-31" }\n',
        '[attributes]\nStudyDate = { replace = "20201340" }\n',  # day 40
        '[attributes]\nStudyTime = { replace = "noon" }\n',  # not a TM
        '[attributes]\nStudyInstanceUID = { replace = "1.02.3" }\n',  # not a UID
        '[attributes]\nSeriesDescription = { regex-clean = "(unclosed" }\n',  # bad regex
        '[attributes]\nPatientAge = "blank"\n',  # unknown action
        '[attributes]\nPatientAge = { replace = 42 }\n',
        '[attributes]\nPatientAge = { replace = "001Y", regex-clean = "x" }\n',
        '[attributes]\nReferencedImageSequence = { replace = "X" }\n',  # SQ
        '[attributes]\n"(0002,0013)" = "keep"\n',  # File Meta
        '[attributes]\nTransferSyntaxUID = "remove"\n',  # File Meta
        '[[private.keep]]\ncreator = "ACME 1.1"\ngroup = "0018"\n',  # even private group
        '[[private.remove]]\ncreator = "ACME 1.1"\ngroup = "0010"\n',
        '[[private.keep]]\ncreator = "ACME 1.1"\ngroup = "29"\n',
        '[[private.keep]]\ncreator = ""\ngroup = "0029"\n',
        '[[private.keep]]\ncreator = "ACME 1.1"\ngroup = "0029"\noffsets = ["1010"]\n',
        '[[private.keep]]\ncreator = "ACME 1.1"\ngroup = "0029"\nelement = "10"\n',
        '[private]\nkeep = "ACME"\n',
        '[private]\nretain = []\n',
        'options = ["no-such-option"]\n',
        'options = ["clean-everything"]\n',
        'options = "retain-uids"\n',
        'private_lists = ["nema"]\n',
    ],
)
def test_invalid_site_overrides_are_profile_errors(tmp_path, text):
    path = write_toml(tmp_path, text)
    with pytest.raises(ProfileError):
        load_profile(path)


def test_site_override_file_not_toml_or_missing(tmp_path):
    other = tmp_path / "site.json"
    other.write_text("{}", encoding="utf-8")
    with pytest.raises(ProfileError):
        load_profile(other)
    with pytest.raises(ProfileError):
        load_profile(tmp_path / "absent.toml")


def test_site_override_valid_replace_values_accepted(tmp_path):
    path = write_toml(tmp_path, '''
        [attributes]
        StationName = { replace = "ABCDEFGHIJKLMNOP" }
        StudyDate = { replace = "20000101" }
        StudyTime = { replace = "120000" }
    ''')
    profile = load_profile(path)
    assert profile.resolve(0x00081010).value == "ABCDEFGHIJKLMNOP"  # exactly 16: allowed for SH
    assert profile.resolve(0x00080020).value == "20000101"
    assert profile.resolve(0x00080030).value == "120000"


def test_private_keep_rule_without_retain_safe_private(tmp_path):
    path = write_toml(tmp_path, '''
        [[private.keep]]
        creator = "ACME 1.1"
        group = "0029"
        offsets = ["10", "xx11"]

        [[private.keep]]
        creator = "WHOLE BLOCK"
        group = "0031"
    ''')
    profile = load_profile(path)
    assert "retain-safe-private" not in profile.options
    assert profile.keep_private("ACME 1.1", 0x0029, 0x1010)
    assert profile.keep_private("ACME 1.1", 0x0029, 0x2211)  # relocated block, offset 0x11
    assert not profile.keep_private("ACME 1.1", 0x0029, 0x1012)
    assert not profile.keep_private("ACME 1.2", 0x0029, 0x1010)
    assert not profile.keep_private("ACME 1.1", 0x0031, 0x1010)
    for element in (0x1000, 0x10FF, 0x4233):
        assert profile.keep_private("WHOLE BLOCK", 0x0031, element)
    # E.3.10 is still not applied without the option
    e = E3_10[0]
    assert not profile.keep_private(e["creator"], int(e["group"], 16), 0x1000 | int(e["offset"], 16))


def test_private_remove_beats_e3_10_and_keep(tmp_path):
    path = write_toml(tmp_path, '''
        options = ["retain-safe-private"]

        [[private.remove]]
        creator = "SIEMENS MR HEADER"
        group = "0019"

        [[private.keep]]
        creator = "SIEMENS MR HEADER"
        group = "0019"
        offsets = ["0c"]
    ''')
    profile = load_profile(path)
    assert "retain-safe-private" in profile.options
    for element in (0x100C, 0x100D, 0x420C):
        assert not profile.keep_private("SIEMENS MR HEADER", 0x0019, element)
    others = [e for e in E3_10 if e["creator"] != "SIEMENS MR HEADER"]
    assert others
    for e in others:  # the rest of E.3.10 is still kept
        assert profile.keep_private(e["creator"], int(e["group"], 16), 0x1000 | int(e["offset"], 16))


def test_private_lists_tcia_in_site_file(tmp_path):
    path = write_toml(tmp_path, 'private_lists = ["tcia"]\n')
    profile = load_profile(path)
    assert "retain-safe-private" in profile.options
    safe = {(e["creator"], e["group"], e["offset"]) for e in E3_10}
    e = next(e for e in TCIA if (e["creator"], e["group"], e["offset"]) not in safe)
    assert profile.keep_private(e["creator"], int(e["group"], 16), 0x1000 | int(e["offset"], 16))


def test_site_override_cannot_be_bypassed_by_options(tmp_path):
    # site "keep" beats an option's C, site "remove" beats an option's K
    path = write_toml(tmp_path, '''
        [attributes]
        StudyDescription = "keep"
        StudyInstanceUID = "remove"
    ''')
    profile = load_profile(path, options=["clean-descriptors", "retain-uids"])
    assert profile.resolve(0x00081030).code == "K"
    assert profile.resolve(0x0020000D).code == "X"
    assert {profile.resolve(t).source for t in (0x00081030, 0x0020000D)} == {"site override"}


def test_site_override_of_pseudonymised_attribute(tmp_path):
    path = write_toml(tmp_path, '[attributes]\nPatientID = { replace = "STUDY-PATIENT-1" }\n')
    action = load_profile(path).resolve(0x00100020)
    assert (action.code, action.value, action.source) == ("R", "STUDY-PATIENT-1", "site override")


def test_all_option_pairs_except_dates_load():
    for a, b in itertools.combinations(OPTIONS, 2):
        if {a, b} == EXCLUSIVE:
            continue
        assert set(load_profile(options=[a, b]).options) == {a, b}
