"""Residual identifiers in a written DICOM object, looked for the way a reader would look.

The object is read element by element by medcloak's own walker of raw bytes
(:mod:`medcloak.formats.dicom_elements`, the structural check's too; independent of the code that
wrote it: pydicom serves only as the data dictionary of implicit VR), and every value is judged by
what it is:

- text (PN, LO, SH, LT, ST, UT, UC, AE, UR, and a value of unknown VR that reads as text) is split
  into tokens at spaces, ``^``, ``\\``, ``=`` and punctuation; an original value is found when its
  tokens occur as a run, ignoring case. ``Anon`` is not in ``ANONYMIZED``, ``Quennell`` is in
  ``HEAD CT QUENNELL``;
- coded values (CS, private creators, the elements of code triplets) name terms of a scheme: only
  an identifier-like original (six characters or more, letters and at least three digits) counts
  there, so a name that equals a defined term (``Perfusion`` and Image Type's ``PERFUSION``) is
  no leak;
- UIDs, dates and times are whole values: an original UID or date counts only as the whole value,
  and a patient ID inside a new UID or a dummy date is no leak. A short or numeric identifier
  (a four-digit Patient ID) is a leak as a word of a text value, and nowhere else;
- numbers (IS, DS, binary numbers, native pixel data) hold no identifiers;
- bytes that no element explains as text (the preamble, OB/OW values, encapsulated pixel data,
  values that are neither text nor a sequence) are searched byte for byte, ignoring case, for
  long, distinctive originals only (eight characters or more, four of them different; a number
  only where it is not part of a longer one);
- a part the parser cannot read is searched byte for byte for every original (fail closed).

Values medcloak generated itself (new UIDs, shifted dates, dummies, pseudonyms) are passed in as
``generated`` and never searched; neither are the File Meta group and the provenance attributes
written after the walk. The comparison is on decoded text: UTF-8 where the bytes are UTF-8,
else Latin-1, on both sides.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable

from .formats.dicom_elements import DEFLATED, Fault, Walker, encoding, file_meta, inflate

TEXT, CODED, UID, DATE = range(4)
_TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "AE", "UR"})
_SINGLE_VALUED = frozenset({"LT", "ST", "UT", "UR"})
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV"})
#: Elements of coded entries (Code Value, Coding Scheme Designator, ..., Code Meaning).
CODE_TAGS = frozenset(
    {0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080119, 0x00080120, 0x00080105,
     0x00080106, 0x0008010F, 0x00080117, 0x0040A040, 0x0040A010, 0x00080118}
)
#: Attributes medcloak writes after the walk (PS3.15 provenance): never searched in its output.
PROVENANCE = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280301, 0x00280302, 0x00280303})
_NATIVE_PIXELS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_TOKEN = re.compile(r"\d+(?:\.\d+)+|[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z0-9]+")
_VR_NAMES = {
    v.encode(): v for v in (
        "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
        "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
        "UR", "US", "UT", "UV",
    )
}
_NUMBER_VRS = frozenset({"AS", "AT", "DS", "FD", "FL", "IS", "SL", "SS", "SV", "UL", "US", "UV"})
_ATOM_KINDS = {"CS": CODED, "UI": UID, "DA": DATE, "DT": DATE, "TM": DATE}
#: below this many bytes, a quick byte search decides whether the object needs reading at all
FAST_PATH_LIMIT = 8 << 20


def decode(raw: bytes) -> str:
    """Text of a value: UTF-8 when it is valid UTF-8 (ASCII is), else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def tokens(text: str) -> tuple[str, ...]:
    """The words of a value, lower-cased; a dotted number (a UID, ``3.5``) is one word."""
    return tuple(_TOKEN.findall(text.lower()))


@dataclass
class Probe:
    """An original value, prepared for the search."""

    keyword: str
    high: bool
    removed: int
    key: str  # the whole value, lower-cased
    words: tuple[str, ...]
    date: bool = False
    #: letters and three digits or more, six characters or more: counts in coded values too
    #: (``MONOCHROME2``, ``T2W`` are terms, ``QX7781234`` an identifier)
    idlike: bool = False
    #: long and varied enough to count in bytes no element explains
    distinctive: bool = False
    #: an ASCII word of the value, for the quick byte search ("" when there is none)
    anchor: str = ""

    @classmethod
    def of(cls, key: str, keyword: str, high: bool, removed: int = 0, date: bool = False) -> Probe | None:
        key = key.strip("\x00 ").lower()
        words = tokens(key)
        if not words:
            return None
        joined = "".join(words)
        letters = any(c.isalpha() for c in joined)
        digits = sum(c.isdigit() for c in joined) >= 3
        return cls(
            keyword, high, removed, key, words, date,
            idlike=len(joined) >= 6 and letters and digits,
            distinctive=len(joined) >= 8 and len(set(joined)) >= 4,
            anchor=_anchor(key),
        )


@lru_cache(maxsize=1 << 14)
def _anchor(key: str) -> str:
    """The longest ASCII word of a value (lower case), if two characters or more: wherever a
    reader finds the value, these bytes are in the object."""
    best = max(_ASCII_WORD.findall(key.lower()), key=len, default="")
    return best if len(best) >= 2 else ""


@dataclass
class Fields:
    """What a reader sees in an object: its values by kind, and the bytes nothing explains."""

    values: list[tuple[int, str, str]] = field(default_factory=list)  # (kind, vr, text)
    binary: list[Any] = field(default_factory=list)  # bytes-like, searched for distinctive values
    unparsed: list[bytes] = field(default_factory=list)  # searched byte for byte
    _index: dict[int, tuple[list[tuple[str, ...]], dict[str, list[tuple[int, int]]]]] = field(default_factory=dict)
    _atoms: dict[int, tuple[list[set[str]], set[str]]] | None = None
    _lowered: list[bytes] | None = None

    # -- views, built on first use --------------------------------------------------------------

    def _words(self, kind: int) -> tuple[list[tuple[str, ...]], dict[str, list[tuple[int, int]]]]:
        built = self._index.get(kind)
        if built is None:
            rows = [tokens(text) for k, _vr, text in self.values if k == kind]
            built = self._index[kind] = (rows, _where(rows))
        return built

    def _atom_sets(self) -> dict[int, tuple[list[set[str]], set[str]]]:
        """The values of each UID and date element, and all of them together."""
        if self._atoms is None:
            atoms: dict[int, tuple[list[set[str]], set[str]]] = {UID: ([], set()), DATE: ([], set())}
            for kind, _vr, text in self.values:
                if kind in atoms:
                    values = {v.strip("\x00 ").lower() for v in text.split("\\")} - {""}
                    atoms[kind][0].append(values)
                    atoms[kind][1].update(values)
            self._atoms = atoms
        return self._atoms

    def _binary_lower(self) -> list[bytes]:
        """The unexplained bytes in lower case (one copy, as a byte search needs)."""
        if self._lowered is None:
            self._lowered = [bytes(chunk).lower() for chunk in self.binary]
        return self._lowered

    # -- counting ---------------------------------------------------------------------------------

    def count(self, probe: Probe) -> int:
        """In how many values (and unexplained places) ``probe`` occurs."""
        n = _runs(self._words(TEXT), probe.words)
        if probe.idlike:
            n += _runs(self._words(CODED), probe.words)
        atoms = self._atom_sets()
        uids, all_uids = atoms[UID]
        if probe.key in all_uids:
            n += sum(probe.key in values for values in uids)
        if probe.date:  # a date, or the date of a date-time
            dates, all_dates = atoms[DATE]
            if len(probe.key) >= 8 and any(v.startswith(probe.key) for v in all_dates):
                n += sum(any(v.startswith(probe.key) for v in values) for values in dates)
            elif probe.key in all_dates:
                n += sum(probe.key in values for values in dates)
        if probe.distinctive and self.binary:
            forms = {probe.key, " ".join(probe.words)}
            needles = {f.encode(c, "replace") for f in forms for c in ("utf-8", "latin-1")}
            number = not any(c.isalpha() for c in probe.key)
            for raw in self._binary_lower():
                for needle in needles:
                    if needle not in raw:
                        continue
                    if number:  # a number counts as a whole number only, not inside a longer one
                        n += len(re.findall(rb"(?<![0-9a-z.])" + re.escape(needle) + rb"(?![0-9a-z]|\.[0-9])", raw))
                    else:
                        n += raw.count(needle)
        for raw in self.unparsed:
            lowered = raw.lower()
            n += sum(lowered.count(probe.key.encode(c, "replace")) for c in ("utf-8", "latin-1"))
        return n


def _where(rows: list[tuple[str, ...]]) -> dict[str, list[tuple[int, int]]]:
    where: dict[str, list[tuple[int, int]]] = {}
    for i, row in enumerate(rows):
        for p, w in enumerate(row):
            where.setdefault(w, []).append((i, p))
    return where


def _runs(view: tuple[list[tuple[str, ...]], dict[str, list[tuple[int, int]]]], words: tuple[str, ...]) -> int:
    """How many rows hold ``words`` as a run of consecutive tokens."""
    rows, where = view
    hits = where.get(words[0])
    if not hits:
        return 0
    n = len(words)
    found = {i for i, p in hits if n == 1 or rows[i][p : p + n] == words}
    return len(found)


# ---- reading -------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _implicit_vr(tag: int) -> str:
    group, element = tag >> 16, tag & 0xFFFF
    if group & 1:
        return "LO" if 0x0010 <= element <= 0x00FF else "UN"
    from pydicom.datadict import dictionary_VR

    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    if " or " in vr:  # "OB or OW", "US or SS": binary or a number, never text
        return "OB" if "O" in vr.split(" or ")[-1] else "US"
    return vr


def _texty(raw: bytes) -> bool:
    """A value of unknown VR that a reader would read as text."""
    body = raw.rstrip(b"\x00 ")
    if not body:
        return False
    return not any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B) for b in body)


class _Reader(Walker):
    """The walk's values, as :class:`Fields`: text, coded, UID and date values by kind, the binary
    ones and encapsulated fragments as bytes; numbers and, with ``skip_generated``, provenance
    attributes are left out."""

    visit = True
    skip = frozenset(v.encode() for v in _NUMBER_VRS)
    max_depth = 64

    def __init__(self, out: Fields, skip_generated: bool, data: Any, little: bool) -> None:
        super().__init__(data, little)
        self.out = out
        self.skip_generated = skip_generated

    def fragments(self, tag: int, items: list[tuple[int, int]], path: tuple[int, ...]) -> None:
        if not (self.skip_generated and (path[0] if path else tag) in PROVENANCE):
            view = memoryview(self.data)
            self.out.binary.extend(view[pos : pos + length] for pos, length in items)

    def value(self, tag: int, vr_bytes: bytes | None, pos: int, length: int, path: tuple[int, ...]) -> None:
        vr = _implicit_vr(tag) if vr_bytes is None else _VR_NAMES.get(vr_bytes, "UN")
        if not length or vr in _NUMBER_VRS or self.skip_generated and (path[0] if path else tag) in PROVENANCE:
            return
        out, buf = self.out, self.data
        if vr in _TEXT_VRS:
            creator = tag >> 16 & 1 and 0x0010 <= tag & 0xFFFF <= 0x00FF
            kind = CODED if creator or tag in CODE_TAGS else TEXT
            out.values.append((kind, vr, decode(bytes(buf[pos : pos + length]))))
        elif vr in _ATOM_KINDS:
            out.values.append((_ATOM_KINDS[vr], vr, decode(bytes(buf[pos : pos + length]))))
        elif vr in _BINARY_VRS:
            if tag not in _NATIVE_PIXELS:
                out.binary.append(memoryview(buf)[pos : pos + length])
        elif vr == "UN":
            value = bytes(buf[pos : pos + length])
            if value[:4] == (b"\xfe\xff\x00\xe0" if self.little else b"\xff\xfe\xe0\x00"):
                values, binary = len(out.values), len(out.binary)
                try:  # a sequence whose VR the writer did not know: implicit VR inside
                    inner = _Reader(out, self.skip_generated, value, self.little)
                    inner.sequence(0, length, True, path + (tag,))
                    return
                except Fault:
                    del out.values[values:], out.binary[binary:]
            if _texty(value):
                out.values.append((TEXT, vr, decode(value)))
            else:
                out.binary.append(value)
        # numbers (IS, DS, AS, AT, US, SS, UL, SL, FL, FD, SV, UV): nothing to read


def read(data: bytes, own_output: bool = True) -> Fields:
    """Every value of a DICOM object (Part 10 file or bare data set), as a reader sees it.

    ``own_output``: the object is medcloak's output: its File Meta group and provenance
    attributes are medcloak's and are left out."""
    out = Fields()
    pos = 0
    if len(data) >= 132 and data[128:132] == b"DICM":
        out.binary.append(memoryview(data)[:128])
        pos = 132
    meta: list[tuple[int, bytes | None, int, int]] = []
    try:
        pos, syntax = file_meta(data, pos, meta)
    except Fault as fault:
        pos, syntax = fault.at, None
        out.unparsed.append(data[pos:])
    if meta and not own_output:
        reader = _Reader(out, False, data, True)
        for tag, vr, at, length in meta:
            reader.value(tag, vr, at, length, ())
    if out.unparsed:
        return out
    body: Any = data
    if syntax == DEFLATED:
        try:
            body, pos = inflate(data, pos), 0
        except Fault:
            out.unparsed.append(data[pos:])
            return out
    little, implicit = encoding(body, pos, syntax)
    values, binary = len(out.values), len(out.binary)
    try:
        _Reader(out, own_output, body, little).dataset(pos, None, implicit, (), top=True)
    except (Fault, struct.error):
        # fail closed: what cannot be read is searched byte for byte, all of it
        del out.values[values:], out.binary[binary:]
        out.unparsed.append(bytes(body[pos:]))
    return out


# ---- the scan ------------------------------------------------------------------------------------


def scan(
    data: bytes,
    needles: dict[str, Any],
    pixel_data_length: int = 0,
    original: Callable[[], bytes] | None = None,
    generated: Iterable[str] = (),
) -> str | None:
    """The attribute keyword of the first original value that survives in ``data``, or ``None``.

    ``needles`` are the walk's (an original value -> its record); only those that can occur in
    the object at all are prepared for :func:`find`. ``data`` is read as a reader would: original
    values are compared with its values as whole words, never inside a UID, a date or a value that
    medcloak wrote itself (``generated``), and in coded values only when they look like
    identifiers. Native Pixel Data (the last ``pixel_data_length`` bytes, a hint for the quick
    first pass) holds numbers, not text. A *high-risk* needle (names, IDs, dates, UIDs, anything
    of the patient) is a leak wherever it counts. A low-risk one (an institution, a description)
    is a leak only when it occurs in more values than the input's kept values explain:
    ``original()`` gives the input's bytes for that count.
    """
    haystack = _haystack(data, pixel_data_length)
    if haystack is not None:
        needles = {k: v for k, v in needles.items() if (a := _anchor(k)) == "" or a.encode() in haystack}
    if not needles:
        return None
    return find(data, probes(needles), pixel_data_length, original, generated, quick=False)


def probes(needles: dict[str, Any]) -> list[Probe]:
    """Prepared needles: ``needles`` maps an original value to its record (``keyword``, ``high``,
    ``removed`` and, optionally, ``date``)."""
    out = []
    for key, info in needles.items():
        probe = Probe.of(key, str(info.keyword), bool(info.high), int(getattr(info, "removed", 0)),
                         bool(getattr(info, "date", False)))
        if probe is not None:
            out.append(probe)
    return out


def _haystack(data: bytes, pixel_data_length: int) -> bytes | None:
    """The object's bytes in lower case, native pixels left out, for a quick first pass (``None``
    when there is none: a deflated or a large object). The last ``pixel_data_length`` bytes are
    left out only when they are the value of the Pixel Data element that ends the object."""
    if pixel_data_length:
        start = len(data) - pixel_data_length
        head = data[max(start - 12, 0) : start]
        little = head[-4:] == pixel_data_length.to_bytes(4, "little") and b"\xe0\x7f\x10\x00" in head[:8]
        big = head[-4:] == pixel_data_length.to_bytes(4, "big") and b"\x7f\xe0\x00\x10" in head[:8]
        if not (little or big):
            pixel_data_length = 0
    if len(data) - pixel_data_length > FAST_PATH_LIMIT or DEFLATED.encode() in data[132:1024]:
        return None
    return (data[: len(data) - pixel_data_length] if pixel_data_length else data).lower()


def find(
    data: bytes,
    found: list[Probe],
    pixel_data_length: int = 0,
    original: Callable[[], bytes] | None = None,
    generated: Iterable[str] = (),
    own_output: bool = True,
    quick: bool = True,
) -> str | None:
    """The keyword of the first probe that a reader finds in ``data``, or ``None``.

    A *high-risk* probe is a leak wherever it counts; a low-risk one only where it occurs in more
    values than the input's own kept values explain (``original()`` gives the input's bytes).
    ``quick``: first drop the probes none of whose ASCII words is in the object's bytes."""
    if found and quick:
        haystack = _haystack(data, pixel_data_length)
        if haystack is not None:
            found = [p for p in found if not p.anchor or p.anchor.encode() in haystack]
    if not found:
        return None
    fields = read(data, own_output)
    made = {g.strip("\x00 ").lower() for g in generated}
    if made:
        fields.values = [
            (kind, vr, text) for kind, vr, text in fields.values
            if not _generated(kind, vr, text, made)
        ]
    source: Fields | None = None
    for probe in found:
        hits = fields.count(probe)
        if not hits:
            continue
        if probe.high or original is None:
            return probe.keyword
        if source is None:
            source = read(original(), own_output=False)
        if hits > source.count(probe) - probe.removed:
            return probe.keyword
    return None


def _generated(kind: int, vr: str, text: str, made: set[str]) -> bool:
    """A value medcloak wrote itself (every one of its values)."""
    if text.strip("\x00 ").lower() in made:
        return True
    if vr in _SINGLE_VALUED or "\\" not in text:
        return False
    return all(v.strip("\x00 ").lower() in made for v in text.split("\\"))
