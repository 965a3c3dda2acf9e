"""Tests for medcloak.rules.clean: cleaning free text of header values and identifier patterns."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak.rules.clean import PATTERNS, TextCleaner, identifying_parts

HEADER = ["DOE^JOHN^A^^", "PAT-XQ-7", "GENERAL INFIRMARY OF SPRINGFIELD", "DR^SMITH^ALICE"]


def contains_ci(text: str, needle: str) -> bool:
    return needle.lower() in text.lower()


# ---- identifying_parts ---------------------------------------------------------------------


def test_identifying_parts_whole_value_and_components():
    parts = identifying_parts(["DOE^JOHN^A^^"])
    assert "DOE" in parts and "JOHN" in parts
    assert "DOE^JOHN^A^^" in parts
    assert "A" not in parts  # shorter than three characters
    assert all(len(p) >= 3 for p in parts)


def test_identifying_parts_split_on_pn_separators_words_and_multiple_values():
    parts = identifying_parts(["Doe^Jane=DOE^JANE", "St Mary Clinic", "ONE\\TWO,THREE"])
    for word in ("Doe", "Jane", "DOE", "JANE", "Mary", "Clinic", "ONE", "TWO", "THREE"):
        assert word in parts, word
    assert "St" not in parts


def test_identifying_parts_short_digit_runs_are_not_needles():
    parts = identifying_parts(["123 4567"])
    assert "123" not in parts  # a three-digit number is too common to be a needle
    assert "4567" in parts


def test_identifying_parts_longest_first():
    parts = identifying_parts(["AB^ABCDEF^ABCD", "ABCDEFGHIJ"])
    assert [len(p) for p in parts] == sorted((len(p) for p in parts), reverse=True)


def test_identifying_parts_empty_and_blank_values():
    assert identifying_parts([]) == []
    assert identifying_parts(["", "  ", "^^"]) == []


# ---- header values in text -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, gone",
    [
        ("Seen by John Doe today", ["john", "doe"]),
        ("seen by JOHN DOE today", ["john", "doe"]),
        ("patient doe^john^a^^ arrived", ["doe", "john"]),
        ("Ref pat-xq-7 for follow up", ["pat-xq-7"]),
        ("Transferred from General Infirmary of Springfield", ["infirmary", "springfield"]),
        ("Read by Dr Alice Smith", ["alice", "smith"]),
        ("JohnDoe", ["john", "doe"]),  # inside a longer word too
    ],
)
def test_header_values_removed_case_insensitively_anywhere(text, gone):
    cleaned = TextCleaner(HEADER)(text)
    for needle in gone:
        assert not contains_ci(cleaned, needle), (needle, cleaned)
    assert "***" in cleaned


def test_header_values_surrounding_text_kept():
    cleaned = TextCleaner(["DOE^JOHN"])("Seen by John Doe today")
    assert cleaned.startswith("Seen by ") and cleaned.endswith(" today")


def test_header_values_with_regex_metacharacters_are_literal():
    clean = TextCleaner(["O'BRIEN^MARY (JR)", "A.B*C+D"])
    out = clean("note: o'brien mary (jr) and a.b*c+d and AxBxCxD")
    assert not contains_ci(out, "o'brien") and not contains_ci(out, "mary")
    assert not contains_ci(out, "a.b*c+d")
    assert "AxBxCxD" in out  # '.' in a header value is not a wildcard


# ---- values split by line breaks (issue 14, item 5) ------------------------------------------

BREAKS = {"LF": "\n", "CR": "\r", "CRLF": "\r\n", "tab": "\t", "spaces": "   ", "LF and indent": "\n    "}


@pytest.mark.parametrize("brk", BREAKS.values(), ids=BREAKS.keys())
@pytest.mark.parametrize("upper", [False, True])
def test_a_value_split_by_a_line_break_goes_whole(brk, upper):
    """An institution's name wrapped onto a second line: its short words (``St``, a number) are no
    needles on their own, so only the whole value, found across the break, removes them."""
    clean = TextCleaner(["ST LUKE 12 CLINIC", "OU^LI"])
    text = f"Patient seen at St{brk}Luke{brk}12 Clinic, by Ou{brk}Li. Sinus rhythm."
    text = text.upper() if upper else text
    out = clean(text)
    assert out.lower() == "patient seen at ***, by ***. sinus rhythm."
    for word in ("st", "luke", "12", "clinic", "ou", "li"):
        assert word not in re.findall(r"[a-z0-9]+", out.lower()), (word, out)


@pytest.mark.parametrize("brk", ["\n", "\r\n", "\r"])
def test_separators_of_a_value_match_any_separator_run(brk):
    """``DOE^JO`` (a name with a two-letter component), ``AB-1-XY``: the value's own separators
    match spaces, punctuation and line breaks between the same words."""
    clean = TextCleaner(["DOE^JO", "AB-1-XY"])
    assert clean(f"Doe,{brk}Jo") == "***"
    assert clean(f"ref ab 1{brk}xy") == "ref ***"
    # separators at a value's ends stay literal: ``ST.`` never masks every "st"
    assert TextCleaner(["ST.", "AB-"])("first stage abc") == "first stage abc"


def test_no_needles_leaves_text_to_patterns_only():
    assert TextCleaner([])("LEFT KNEE 3 VIEWS") == "LEFT KNEE 3 VIEWS"


# ---- patterns ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "identifier, gone",
    [
        # dates
        ("2020-01-31", ["2020", "31"]),
        ("2020/1/5", ["2020"]),
        ("31/01/2020", ["2020", "31/01"]),
        ("31.01.2020", ["2020", "31.01"]),
        ("05-01-21", ["05-01"]),
        ("20200131", ["20200131"]),
        ("31 Jan 2020", ["Jan", "2020"]),
        ("5th January 2021", ["January", "2021"]),
        ("January 31, 2020", ["January", "2020"]),
        ("Jan 5th, 2021", ["Jan", "2021"]),
        ("3 SEPT 1999", ["SEPT", "1999"]),
        # phone numbers
        ("+44 20 7946 0958", ["7946", "0958"]),
        ("(555) 123-4567", ["555", "4567"]),
        ("555-123-4567", ["555", "4567"]),
        ("020 7946 0958", ["7946", "0958"]),
        ("555.123.4567", ["555", "4567"]),
        # e-mail addresses
        ("john.doe@example.org", ["@", "example"]),
        ("a_b+tag@mail.hospital.co.uk", ["@", "hospital"]),
        # street addresses
        ("12 High Street", ["12", "High", "Street"]),
        ("1600 Pennsylvania Avenue", ["1600", "Pennsylvania"]),
        ("7 Oak Lane", ["Oak", "Lane"]),
        ("42 Rose Hill Rd.", ["Rose", "Hill"]),
        ("221B Baker Street", ["221B", "Baker"]),
        # UK postcodes
        ("SW1A 1AA", ["SW1A", "1AA"]),
        ("M1 1AE", ["M1", "1AE"]),
        ("B33 8TH", ["B33", "8TH"]),
        ("CR2 6XH", ["CR2", "6XH"]),
        ("DN55 1PT", ["DN55", "1PT"]),
        ("EC1A 1BB", ["EC1A", "1BB"]),
        # ID-like tokens
        ("MRN 12345678", ["12345678"]),
        ("ID A1234567", ["A1234567"]),
        ("acc AB-1234-56", ["1234"]),
        ("NHS 943 476 5919", ["943", "5919"]),
    ],
)
def test_patterns_mask_identifiers_in_sentences(identifier, gone):
    text = f"History given {identifier} then nothing else"
    cleaned = TextCleaner([])(text)
    for piece in gone:
        assert piece not in cleaned, (identifier, cleaned)
    assert cleaned.startswith("History given ") and cleaned.endswith(" then nothing else"), cleaned
    assert "***" in cleaned


def test_email_masked_whole_even_when_it_holds_a_header_name():
    # the name parts are header values, but the address as a whole is still an e-mail address
    cleaned = TextCleaner(["DOE^JOHN"])("write to john.doe@example.org soon")
    assert "@" not in cleaned and "example.org" not in cleaned, cleaned
    assert not contains_ci(cleaned, "john") and not contains_ci(cleaned, "doe")


def test_every_pattern_matches_at_least_three_characters():
    samples = ["a@b.c", "2020-1-1", "1/1/20", "19990101", "1 Jan 20", "Jan 1 20", "12 34 56",
               "1 st", "A1 1AA", "12345"]
    for pattern in PATTERNS:
        for sample in samples:
            for m in pattern.finditer(sample):
                assert len(m.group(0)) >= 3, (pattern.pattern, sample)


# ---- ordinary clinical text ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "CT CHEST W CONTRAST",
        "T1 AXIAL POST GAD",
        "LEFT KNEE 3 VIEWS",
        "MR BRAIN WO CONTRAST",
        "AX T2 FLAIR",
        "SAG T1 MPRAGE",
        "CHEST PA AND LATERAL",
        "CT ABD/PELVIS WITH CONTRAST",
        "LOCALIZER",
        "3D TOF MRA",
        "L4-L5 DISC",
        "C-SPINE 3 VIEWS",
        "XR HAND 2 VIEWS",
        "US ABDOMEN COMPLETE",
        "PET/CT WHOLE BODY",
        "Head 5.0 H30s",
        "AX DWI B1000",
        "ep2d_diff_3scan_trace_p2",
        "CTA HEAD AND NECK 0.625MM",
        "Mammo L CC",
        # technical values of attributes the table does not name (issue 14, item 3)
        "EPIQ 7C_1.7.1.24",
        "Sel Drum 500x500",
        "syngo MR E11 4.0.2",
        "RITMO SINUSALE",
        "Lead I (Einthoven)",
    ],
)
def test_clinical_text_without_identifiers_survives(text):
    assert TextCleaner(HEADER)(text) == text


# ---- extra (site regex-clean) patterns -------------------------------------------------------


def test_extra_patterns_masked():
    clean = TextCleaner([], extra=[r"\bST[0-9]{2}\b", r"x"])
    out = clean("study ST42 xx done")
    assert "ST42" not in out
    assert "x" not in out
    # a match shorter than the mask becomes as many '*' as it had characters
    assert len(out) == len("study ST42 xx done") - 1
    assert out.startswith("study ***") and "**" in out


def test_extra_pattern_matching_empty_string_does_not_grow_text():
    text = "AXIAL T2"
    assert len(TextCleaner([], extra=[r"Z*"])(text)) == len(text)


# ---- properties -------------------------------------------------------------------------------

words = st.text(alphabet="abcdeXYZ019^ ,=-.@/", min_size=0, max_size=12)
texts = st.text(alphabet="abcdeABCDEXYZxyz0123456789 ^-./@,:()+", max_size=80)


@settings(max_examples=400)
@given(needles=st.lists(words, max_size=5), text=texts,
       extra=st.lists(st.sampled_from([r"[0-9]", r"ab", r"x+", r"\d{2,}", r"Z?"]), max_size=2))
def test_cleaned_never_longer_than_original(needles, text, extra):
    assert len(TextCleaner(needles, extra)(text)) <= len(text)


@settings(max_examples=300)
@given(
    names=st.lists(st.text(alphabet="abcdefgh", min_size=3, max_size=8), min_size=1, max_size=3),
    filler=st.lists(st.text(alphabet="ijklmn .,", max_size=6), min_size=1, max_size=4),
    upper=st.booleans(),
)
def test_no_header_word_survives(names, filler, upper):
    # the text interleaves the name words (in either case) with filler that shares no letter
    pieces = []
    for i, f in enumerate(filler):
        name = names[i % len(names)]
        pieces += [f, name.upper() if upper else name]
    text = "".join(pieces)
    cleaned = TextCleaner(["^".join(names)])(text)
    for name in names:
        assert not re.search(re.escape(name), cleaned, re.IGNORECASE), (name, cleaned)
    assert "*" in cleaned


@settings(max_examples=200)
@given(text=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ /-", max_size=60))
def test_text_without_digits_or_needles_is_unchanged(text):
    # no digits, no '@', no header value: nothing identifying to find
    assert TextCleaner([])(text) == text
