"""Cleaning free text (action C on text): keep the text, remove what identifies.

Two sources of identifying parts: the identifying values of the object's own header (names, IDs,
institution, ... wherever they appear in the text, any case) and patterns (dates, phone numbers,
e-mail addresses, ID-like tokens, street addresses, postcodes). A header value is found however
the text breaks it: the separators between its words (spaces, ``^``, ``-``, ``.``, ``,``, ``/``)
match any run of separators in the text, line breaks (CR, LF, CRLF) and tabs included, so a name
wrapped onto a second line goes whole (:func:`needle_pattern`). Each part found becomes ``***``;
parts shorter than three characters are never matched, so a cleaned value is never longer than the
original and stays within its VR's length limit.
"""

from __future__ import annotations

import re
from typing import Iterable

MASK = "***"
MIN_NEEDLE = 3
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_STREET = (
    r"(?:street|st|road|rd|avenue|ave|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"square|sq|terrace|parkway|pkwy|highway|hwy|strasse|straße|weg|allee|platz|rue|via)"
)
PATTERNS = [
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),  # e-mail
    re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b"),  # 2020-01-31
    # 31/01/2020; not inside a dotted version number (EPIQ 7C_1.7.1.24)
    re.compile(r"(?<![\w.])\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}(?!\w|\.\d)"),
    re.compile(r"\b(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b"),  # 20200131
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+\d{{2,4}}\b", re.I),
    re.compile(rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b", re.I),
    re.compile(r"(?<![\w.])\+?\(?\d{2,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?![\w.])"),  # phone
    re.compile(rf"\b\d{{1,5}}[A-Za-z]?\s+(?:[A-Za-z]+\s+){{0,3}}{_STREET}\b\.?", re.I),  # street address
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b"),  # UK postcode
    re.compile(r"\b[0-9]{5,}\b"),  # long numbers: record numbers, postcodes
    # ID-like tokens: six or more characters of which five or more are digits (MRN QX7781234);
    # short technical tokens (B1000, T2W, 3D) are not identifiers, nor are dimensions (500x500)
    re.compile(r"\b(?![0-9]+[xX][0-9]+\b)(?=(?:[A-Za-z-]*[0-9]){5})[A-Za-z0-9-]{6,}\b"),
]


#: separators between the words of a header value, as they are written in values and texts
_SEPARATOR = r"[\s^,./\\_-]+"
_INNER_SEPARATORS = re.compile(r"(?<=[^\W_])" + _SEPARATOR + r"(?=[^\W_])")


def needle_pattern(part: str) -> str:
    """The regular expression of one header value: its characters literally, except that each run
    of separators between two words matches any run of separators, line breaks included
    (``ST JUDE`` finds ``St\\r\\nJude``; ``DOE^JOHN`` finds ``Doe John``). Separators at either end
    stay literal, so ``ST.`` never becomes the two letters ``st``."""
    out, at = [], 0
    for m in _INNER_SEPARATORS.finditer(part):
        out.append(re.escape(part[at : m.start()]))
        out.append(_SEPARATOR)
        at = m.end()
    out.append(re.escape(part[at:]))
    return "".join(out)


def identifying_parts(values: Iterable[str]) -> list[str]:
    """Needles from header values: each whole value and each name component / word of it."""
    out: set[str] = set()
    for value in values:
        value = value.strip()
        if len(value) >= MIN_NEEDLE:
            out.add(value)
        for part in re.split(r"[\^=\\\s,]+", value):
            if len(part) >= MIN_NEEDLE and not part.isdigit() or len(part) >= 4:
                out.add(part)
    return sorted(out, key=len, reverse=True)


class TextCleaner:
    """Cleans text against a fixed set of identifying values, compiled once per object."""

    def __init__(self, needles: Iterable[str], extra: Iterable[str] = ()) -> None:
        parts = [p for p in identifying_parts(needles) if len(p) >= MIN_NEEDLE]
        self._values = (
            re.compile("|".join(needle_pattern(p) for p in parts), re.IGNORECASE) if parts else None
        )
        self._extra = [re.compile(p) for p in extra]

    def __call__(self, text: str) -> str:
        # patterns first, so that an e-mail address or a date holding a name goes as a whole
        for pattern in PATTERNS:
            text = pattern.sub(MASK, text)
        if self._values is not None:
            text = self._values.sub(MASK, text)
        for pattern in self._extra:
            text = pattern.sub(lambda m: MASK if len(m.group(0)) >= len(MASK) else "*" * len(m.group(0)), text)
        return text
