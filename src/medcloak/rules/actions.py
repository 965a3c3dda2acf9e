"""Applying the profile's actions to a pydicom dataset, at every sequence depth.

Elements that keep their value are never decoded: the decision is made from the tag (and VR), so
a kept element is written back byte for byte. Every changed element's original value is recorded
as a *needle* for the residual-identifier scan that reads the written object, and every value the
walk writes itself (new UIDs, shifted dates, dummies, pseudonyms) as *generated*, which that scan
never searches (see :mod:`medcloak.residual`).

Sequence modes: inside a sequence whose action is D (replace with a dummy) every free-text, date
and time element that the table does not name is given a dummy too (code triplets excepted); inside
a sequence whose action is C (clean) such elements are cleaned. Elsewhere, elements the table does
not name are kept, except UIDs (replaced unless they are of the standard's registry), elements of
no data dictionary (removed), group lengths and padding (removed), and free text: the table lists
attributes, not every free-text attribute a modality carries (waveform annotations, channel
labels, the issuer qualifiers of an ID), so every LT, ST, UT, LO, SH and UC value it does not name,
at any depth and in kept private blocks too, goes through the Clean Descriptors cleaner (names and
IDs of the header, dates, contact details go; the rest stays), and a person name it does not name
gets a dummy. Coded values are not free text and are kept: the elements of code entries and of
coding scheme identifications, and private creator references (:data:`CODED`). A site keeps such
an attribute verbatim with a ``keep`` override.

Content items are judged by their concept too, in every mode: a value whose concept names a
person, an organisation, a device's identity or the subject (observer and subject context of a
structured report) gets a dummy, and a specimen's identifier its pseudonym (see
:mod:`medcloak.rules.sr_context`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from ..errors import CorruptInputError, DeidentificationError, SkippedObject
from ..residual import CODE_TAGS, decode, tokens
from .profile import SPECIMEN_PSEUDONYMS, Action, Profile
from .sr_context import BIRTH_DATE, DEVICE_MODEL, PERSON, RETAINED_BY, SUBJECT, concept_of, identifying_kind
from .values import BINARY_VRS, DATE_VRS, DUMMY_TEXT, TEXT_VRS, dummy_value, valid_uid, shift_da, shift_da_tm, shift_dt, shift_tm

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from ..pseudonym import Keyring

NORMAL, DUMMY, CLEAN = 0, 1, 2
TEXT_VALUE, CONCEPT_NAME, DATE_VALUE = 0x0040A160, 0x0040A043, 0x0040A121
ENCAPSULATED_DOCUMENT, MIME_TYPE, DOCUMENT_LENGTH = 0x00420011, 0x00420012, 0x00420015
BURNED_IN, PIXEL_DATA = 0x00280301, 0x7FE00010
_BIRTH_VALUES = ((DATE_VALUE, "DA"), (0x0040A120, "DT"), (TEXT_VALUE, "UT"))
_VALUE_TAGS = frozenset(tag for tag, _ in _BIRTH_VALUES)
#: Content items (TID 8001 Specimen Preparation, 8002 Specimen Sampling; DCM codes) whose TEXT
#: value is a specimen's identifier: it becomes the pseudonym Specimen Identifier gets, so the
#: preparation steps still name their specimen; and those whose TEXT value names its issuer
#: (a dummy, as Issuer of the Specimen Identifier Sequence is emptied)
SPECIMEN_ID_CONCEPTS = frozenset({"121041", "111705"})
ISSUER_CONCEPTS = frozenset({"111724", "111706"})
_SPECIMEN_ITEM_CONCEPTS = SPECIMEN_ID_CONCEPTS | ISSUER_CONCEPTS
_NUMERIC = re.compile(r"[0-9.]+")
#: Values that identify no one: placeholders of other tools and our own dummies. Never needles.
PLACEHOLDERS = frozenset(
    v.lower() for v in (*DUMMY_TEXT.values(), "anon", "anonymous", "anonymized", "anonymised",
    "unknown", "test", "none", "patient", "phantom", "research", "demo", "sample", "other",
    "removed", "deidentified", "de-identified", "noname", "unnamed")
)


@dataclass
class Needle:
    """An original value that must not survive: where it came from, how sure we are that any
    occurrence is a leak (``high``), how many changed elements held it, and whether it was a
    date (``date``: then it counts in date values too)."""

    keyword: str
    high: bool
    removed: int = 0
    date: bool = False
#: Free-text VRs cleaned by default where the table does not name the attribute.
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "LO", "SH", "UC"})
#: Text elements that hold codes, not prose: the elements of code entries (Code Value, Coding
#: Scheme Designator and Version, Code Meaning, ...), those that identify a coding scheme, and the
#: private creator a Private Data Element Characteristics item refers to. A mask in them would
#: break the code (or the block's declaration) and they name terms, not people.
CODED = CODE_TAGS | frozenset(
    {0x00080112, 0x00080114, 0x00080115, 0x00080116, 0x00080122, 0x00080302}
)
#: VRs whose original value is searched for in the written bytes.
NEEDLE_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "AE", "UR", "DA", "DT", "UI"})
REGISTRY_ROOT = "1.2.840.10008."
MEDCLOAK_GROUP = 0x0012  # Clinical trial / de-identification group: rewritten afterwards


@dataclass
class Context:
    """Per-object state of one walk."""

    profile: Profile
    keyring: Keyring
    patient_identity: str
    days: int
    seconds: int
    needles: dict[str, Needle] = field(default_factory=dict)  # original value (lower case) -> record
    generated: set[str] = field(default_factory=set)  # values the walk wrote itself
    text_values: list[str] = field(default_factory=list)  # identifying values, for cleaning
    #: (data set, tag, VR, a cleaner of its own or None, the table does not name the element,
    #: the attribute's name for the review record)
    to_clean: list[tuple[Any, int, str, Callable[[str], str] | None, bool, str]] = field(default_factory=list)
    uid_pairs: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    overlay_seen: bool = False
    #: for the review record (:mod:`medcloak.review_record`): the action taken per attribute name
    #: (see :func:`attribute_name`; the last one per name), and the elements whose value the walk
    #: wrote itself, as (id of their data set, tag) (a dummy, a pseudonym, a new UID, a shifted date)
    changed: dict[str, str] = field(default_factory=dict)
    written: set[tuple[int, int]] = field(default_factory=set)


def specimen_pseudonym(keyring: Keyring, purpose: str, original: str) -> str:
    """The keyed pseudonym of a specimen's or container's identifier (a valid LO):
    ``MC``, the purpose's initial, 13 upper-case base32 characters."""
    return "MC" + purpose[0].upper() + keyring.token(purpose, original.strip("\x00 "), 13).upper()


@lru_cache(maxsize=None)
def _dict_vr(tag: int) -> str | None:
    from pydicom.datadict import dictionary_VR

    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


#: the VRs of PS3.5 6.2 (an element of another VR is a damaged file: pydicom cannot read its value)
_VRS = frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL",
                  "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US",
                  "UT", "UV", "US or SS or OW", "US or SS", "US or OW", "OB or OW"})


#: VRs whose values are character strings (PS3.5 6.2): a standard attribute of one of these stored
#: under a binary VR, or the reverse, is a damaged file (a VR within the same kind is not: IS for DS)
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                         "UR", "UT"})


@lru_cache(maxsize=None)
def _vr_contradicts(tag: int, vr: str) -> bool:
    """Whether ``vr`` cannot be the VR of the standard attribute ``tag``: a UID attribute under
    any other VR, or a string VR where the dictionary has a binary one, or the reverse."""
    known = _dict_vr(tag)
    if not known or known == "UN" or vr == "UN" or vr == known:
        return False
    if known == "UI":
        return True
    if "SQ" in (known, vr):
        return False  # pydicom reads a sequence of another VR as a sequence (or leaves it to the walk)
    return (known in _STRING_VRS) != (vr in _STRING_VRS)


@lru_cache(maxsize=None)
def _keyword(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or f"{tag:08X}"


def private_name(ds: Any, tag: int) -> str:
    """A private attribute's name in the review record: ``(gggg,xxee) creator``, its block's
    creator read from ``ds`` (the block number, which differs from file to file, left out);
    ``(gggg,eeee)`` for one of no block."""
    group, element = tag >> 16, tag & 0xFFFF
    if element >= 0x1000:
        elem = ds.get_item((group << 16) | (element >> 8))
        creator = _raw_bytes(elem).decode("latin-1").strip("\x00 ") if elem is not None else ""
        if creator:
            return f"({group:04X},xx{element & 0xFF:02X}) {creator}"
    return f"({group:04X},{element:04X})"


def attribute_name(ds: Any, tag: int, prefix: str = "") -> str:
    """An attribute's name in the review record (:mod:`medcloak.review_record`): its keyword
    (the tag's hex digits where it has none), a private one's :func:`private_name`; inside a
    sequence after ``prefix``, the path of the sequences' names each followed by ``>``."""
    return prefix + (private_name(ds, tag) if tag >> 16 & 1 else _keyword(tag))


@lru_cache(maxsize=None)
def _is_class_uid(tag: int) -> bool:
    """UID attributes whose values name things of a registry (SOP classes, transfer syntaxes,
    coding schemes, templates): never pseudonymised."""
    kw = _keyword(tag)
    return (
        kw.endswith("ClassUID")
        or "TransferSyntaxUID" in kw
        or "SOPClassUIDInFile" in kw
        or kw in {"CodingSchemeUID", "MappingResourceUID", "ContextUID",
                  "ContextGroupExtensionCreatorUID", "TemplateExtensionOrganizationUID",
                  "TemplateExtensionCreatorUID", "ApplicationContextName", "SOPClassesInStudy"}
    )


@lru_cache(maxsize=None)
def _time_partner(tag: int) -> int | None:
    """The TM attribute that goes with a DA attribute (StudyDate -> StudyTime), if any."""
    from pydicom.datadict import tag_for_keyword

    kw = _keyword(tag)
    if not kw.endswith("Date"):
        return None
    partner = tag_for_keyword(kw[:-4] + "Time")
    if partner is None or _dict_vr(int(partner)) != "TM":
        return None
    return int(partner)


@lru_cache(maxsize=None)
def _date_partner(tag: int) -> int | None:
    """The DA attribute that goes with a TM attribute."""
    from pydicom.datadict import tag_for_keyword

    kw = _keyword(tag)
    if not kw.endswith("Time"):
        return None
    partner = tag_for_keyword(kw[:-4] + "Date")
    if partner is None or _dict_vr(int(partner)) != "DA":
        return None
    return int(partner)


def _raw_bytes(elem: Any) -> bytes:
    """The stored value bytes of an element, raw or decoded."""
    value = elem.value
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    if elem.VR == "PN":
        return str(value).encode("utf-8", "replace")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return b"\\".join(str(v).encode("utf-8", "replace") for v in value)
    return str(value).encode("utf-8", "replace")


def _text(ds: Any, tag: int) -> list[str]:
    """Decoded string values of an element (multi-values split), for cleaning."""
    value = ds[tag].value
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray)):  # UN: its text, as a reader would decode it
        return [decode(bytes(value)).rstrip("\x00 ")]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


class Walker:
    """Applies a profile to one dataset tree."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.profile = ctx.profile
        opts = ctx.profile.options
        self.shift_dates = "retain-long-modified-dates" in opts
        self.keep_dates = "retain-long-full-dates" in opts
        self.keep_uids = "retain-uids" in opts
        # Values an option retains can hold a removed value by coincidence: original UIDs often
        # embed dates and numeric IDs, a retained date equals a removed private one. Under those
        # options such needles (digits and dots) are leaks only when they occur more often in the
        # output than the input's kept attributes account for.
        self.numeric_by_count = self.keep_uids or self.keep_dates
        # free text the table does not name is cleaned under every profile: the identifying
        # values of the header are always wanted
        self.need_text = True
        #: the names of the sequences the walk is in, each followed by ">" (see attribute_name)
        self._prefix = ""

    # -- the review record -------------------------------------------------------------------

    def _changed(self, ds: Any, tag: int, action: str, written: bool = False) -> None:
        """Note the action taken on an element for the review record; ``written``: the walk wrote
        its new value itself (the record's text leaves it out)."""
        self.ctx.changed[attribute_name(ds, tag, self._prefix)] = action
        if written:
            self.ctx.written.add((id(ds), tag))

    # -- recording ---------------------------------------------------------------------------

    def _record(self, ds: Any, tag: int, vr: str, elem: Any, high_risk: bool, clean_text: bool | None = None) -> None:
        """Remember an element's original value before it is changed; ``clean_text``: and clean
        free text of it (True), or not (False), or when the attribute is an identifier in itself
        (None: :meth:`_identifier`)."""
        if vr not in NEEDLE_VRS:
            return
        raw = decode(_raw_bytes(elem)).strip("\x00 ")
        if not raw:
            return
        kw = _keyword(tag)
        high = high_risk or vr in ("PN", "DA", "DT", "UI")
        relax = self.numeric_by_count
        minimum = 4 if high else 6
        pieces = {raw}
        if vr == "PN":
            pieces |= set(raw.replace("=", "^").replace("\\", "^").split("^"))
        elif "\\" in raw:
            pieces |= set(raw.split("\\"))
        for piece in pieces:
            piece = piece.strip("\x00 ").lower()
            # the length that counts is the words' (``OB^^^^`` is the two letters ``ob``)
            if len("".join(tokens(piece))) < minimum or piece in PLACEHOLDERS:
                continue
            strict = high and not (relax and _NUMERIC.fullmatch(piece))
            needle = self.ctx.needles.get(piece)
            if needle is None:
                needle = self.ctx.needles[piece] = Needle(kw, strict)
            needle.high = needle.high or strict
            needle.date = needle.date or vr in ("DA", "DT")
            needle.removed += 1
        if clean_text is None:
            clean_text = self._identifier(tag, vr)
        if self.need_text and clean_text and vr not in ("UI", "DA", "DT"):
            try:
                self.ctx.text_values.extend(_text(ds, tag))
            except Exception:  # an undecodable value: its bytes are already a needle
                pass

    def _identifier(self, tag: int, vr: str) -> bool:
        """Is the value of this attribute an identifier in itself (a name, an ID, an institution,
        an address), so that its words are masked wherever the cleaner meets them? Free text is
        not: the attributes the standard's options clean (descriptions, comments, history) and the
        free text the table does not name hold identifiers sometimes, but their words ("Liver",
        "Segmentation", "mass") are clinical terms, and as needles they would mask those terms
        in every other text of the object."""
        if tag & 0x10000:  # a private value: recorded only when it is a name (see _private)
            return True
        if _descriptive(tag):
            return False
        return not (vr in FREE_TEXT_VRS and self.profile.resolve(tag) is None)

    # -- uid ---------------------------------------------------------------------------------

    def _uid(self, value: str) -> str:
        value = value.strip("\x00 ")
        if not value or value.startswith(REGISTRY_ROOT):
            return value
        if self.keep_uids and valid_uid(value):
            return value  # an invalid UID is replaced even here: no invalid value is written
        new = self.ctx.keyring.uid(value)
        self.ctx.uid_pairs[value] = new
        self.ctx.generated.add(new)
        return new

    def _replace_uid(self, ds: Any, tag: int, elem: Any) -> None:
        from pydicom.dataelem import DataElement

        raw = _raw_bytes(elem).decode("ascii", "replace").strip("\x00 ")
        if not raw:
            return
        parts = raw.split("\\")
        new = [self._uid(p) for p in parts]
        if new == [p.strip("\x00 ") for p in parts]:
            return
        self._record(ds, tag, "UI", elem, True)
        ds[tag] = DataElement(tag, "UI", new if len(new) > 1 else new[0])
        self._changed(ds, tag, "replaced", True)
        self.ctx.counts["U"] += 1

    # -- dates -------------------------------------------------------------------------------

    def _date(self, ds: Any, tag: int, vr: str, elem: Any, handled: set[int]) -> None:
        """Action C on a date/time: shift (modified dates), keep (full dates), else a dummy."""
        from pydicom.dataelem import DataElement

        if self.keep_dates:
            return
        if not self.shift_dates:
            self._set_dummy(ds, tag, vr, elem)
            return
        text = _raw_bytes(elem).decode("ascii", "replace").strip("\x00 ")
        if not text:
            return
        days, seconds = self.ctx.days, self.ctx.seconds
        values = text.split("\\")
        if vr == "DA":
            partner = _time_partner(tag)
            if partner is not None and partner in ds and len(values) == 1:
                tm_elem = ds.get_item(partner)
                tm = _raw_bytes(tm_elem).decode("ascii", "replace").strip("\x00 ")
                pair = shift_da_tm(values[0], tm, days, seconds) if tm and "\\" not in tm else None
                if pair is not None and self._date_action(partner) == "shift":
                    self._record(ds, tag, "DA", elem, True)
                    ds[tag] = DataElement(tag, "DA", pair[0])
                    ds[partner] = DataElement(partner, "TM", pair[1])
                    self.ctx.generated.update(pair)
                    self._changed(ds, tag, "shifted", True)
                    self._changed(ds, partner, "shifted", True)
                    handled.add(partner)
                    self.ctx.counts["shifted"] += 2
                    return
            new = [shift_da(v, days) for v in values]
        elif vr == "DT":
            new = [shift_dt(v, days, seconds) for v in values]
        else:
            new = [shift_tm(v, seconds) for v in values]
        if any(v is None for v in new):
            self._set_dummy(ds, tag, vr, elem)  # unreadable date: a dummy, never the original
            self.ctx.counts["unshiftable"] += 1
            return
        self._record(ds, tag, vr, elem, True)
        ds[tag] = DataElement(tag, vr, [v for v in new if v is not None] if len(new) > 1 else new[0])
        self.ctx.generated.update(v for v in new if v is not None)
        self._changed(ds, tag, "shifted", True)
        self.ctx.counts["shifted"] += 1

    def _date_action(self, tag: int) -> str:
        action = self.profile.resolve(tag)
        if action is not None and action.code == "C":
            return "shift"
        return "other"

    # -- setters -----------------------------------------------------------------------------

    def _set_dummy(
        self, ds: Any, tag: int, vr: str, elem: Any, high_risk: bool = False, clean_text: bool | None = None,
    ) -> None:
        from pydicom.dataelem import DataElement

        if vr == "UI":
            self._replace_uid(ds, tag, elem)
            return
        if tag == ENCAPSULATED_DOCUMENT:
            self._dummy_document(ds)
            return
        self._record(ds, tag, vr, elem, high_risk or tag >> 16 == 0x0010, clean_text)
        value = dummy_value(vr, tag)
        ds[tag] = DataElement(tag, vr, value)
        if isinstance(value, str):
            self.ctx.generated.add(value.lower())
        self._changed(ds, tag, "replaced", True)
        self.ctx.counts["D"] += 1

    def _dummy_document(self, ds: Any) -> None:
        """Encapsulated Document's dummy: an empty document of the MIME type the object declares,
        with Encapsulated Document Length set to match (see :mod:`medcloak.rules.documents`)."""
        from pydicom.dataelem import DataElement

        from .documents import empty_document, mime_type

        declared = ds.get_item(MIME_TYPE)
        mime = decode(_raw_bytes(declared)) if declared is not None else ""
        document = empty_document(mime)
        if document is None:
            kind = mime_type(mime)
            if not re.fullmatch(r"[a-z0-9.+-]{1,40}/[a-z0-9.+-]{1,40}", kind):
                kind = "none" if not kind else "unrecognised"  # free text is never logged
            raise SkippedObject(
                f"Encapsulated Document of MIME type {kind}: no valid empty document of "
                "that type to replace it with, and its dummy would make an invalid object"
            )
        ds[ENCAPSULATED_DOCUMENT] = DataElement(ENCAPSULATED_DOCUMENT, "OB", document)
        ds[DOCUMENT_LENGTH] = DataElement(DOCUMENT_LENGTH, "UL", len(document))
        self._changed(ds, ENCAPSULATED_DOCUMENT, "replaced", True)
        self._changed(ds, DOCUMENT_LENGTH, "replaced", True)
        if BURNED_IN in ds and PIXEL_DATA not in ds:
            # the Encapsulated Document module's flag speaks of the document, now empty
            ds[BURNED_IN] = DataElement(BURNED_IN, "CS", "NO")
            self._changed(ds, BURNED_IN, "replaced", True)
        self.ctx.counts["D"] += 1
        self.ctx.counts["empty-document"] += 1

    def _set_empty(self, ds: Any, tag: int, vr: str, elem: Any) -> None:
        from pydicom.dataelem import DataElement
        from pydicom.sequence import Sequence

        self._record(ds, tag, vr, elem, tag >> 16 == 0x0010)
        ds[tag] = DataElement(tag, vr, Sequence() if vr == "SQ" else None)
        self._changed(ds, tag, "emptied")
        self.ctx.counts["Z"] += 1

    def _remove(self, ds: Any, tag: int, vr: str, elem: Any, high_risk: bool = False) -> None:
        self._record(ds, tag, vr, elem, high_risk or tag >> 16 == 0x0010)
        self._changed(ds, tag, "removed")
        del ds[tag]
        self.ctx.counts["X"] += 1

    def _schedule_clean(
        self, ds: Any, tag: int, vr: str, cleaner: Callable[[str], str] | None = None, unnamed: bool = False,
    ) -> None:
        if vr in TEXT_VRS:  # coded strings (CS) are kept: a mask is not a valid CS value
            self.ctx.to_clean.append((ds, tag, vr, cleaner, unnamed, attribute_name(ds, tag, self._prefix)))

    # -- the walk ----------------------------------------------------------------------------

    def walk(self, ds: Dataset, mode: int = NORMAL, depth: int = 0) -> None:
        if depth > 64:
            raise DeidentificationError("sequences nested deeper than 64 levels")
        private_tags: list[int] = []
        handled: set[int] = set()
        kept_as_is = self.profile.kept_as_is
        items = list(ds._dict.items())
        overlays = [int(t) >> 16 for t, _ in items if int(t) >> 16 & 0xFF01 == 0x6000 and int(t) & 0xFFFF == 0x3000]
        if CONCEPT_NAME in ds._dict and not _VALUE_TAGS.isdisjoint(ds._dict):
            self._content_item(ds, handled)
        # the data set's own element table: iterating it spares pydicom's per-tag lookups
        for tag, elem in items:
            tag = int(tag)
            if (tag, elem.VR, mode) in kept_as_is or tag in handled:
                continue
            group, element = tag >> 16, tag & 0xFFFF
            raw_vr = elem.VR
            if raw_vr and raw_vr not in _VRS:
                raise CorruptInputError(f"{_keyword(tag)} has a VR that does not exist")
            if group & 1:
                private_tags.append(tag)
                continue
            vr = raw_vr or _dict_vr(tag) or "UN"
            if vr == "UN":
                known = _dict_vr(tag)
                if known and known != "UN":
                    vr = known
                    elem = ds[tag]  # pydicom resolves UN of a standard tag through its dictionary
                    vr = elem.VR
            elif _vr_contradicts(tag, vr):
                # a UID under another VR would not be pseudonymised, and a name or a date stored as
                # numbers (or numbers as text) would be given a replacement its VR cannot hold
                raise CorruptInputError(f"{_keyword(tag)} is stored with the VR {vr}, not its own ({_dict_vr(tag)})")
            if element == 0 or group in (0x0000, 0x0002, 0xFFFA, 0xFFFC) or group == 0xFFFE:
                self._remove(ds, tag, vr, elem)
                continue
            if group == MEDCLOAK_GROUP and element in (0x0062, 0x0063, 0x0064):
                del ds[tag]  # rewritten after the walk
                continue
            action = self.profile.resolve(tag)
            if self._kept_as_is(tag, vr, action, mode):
                if vr == raw_vr:  # an UN resolved by the dictionary is converted each time (above)
                    kept_as_is.add((tag, raw_vr, mode))
                continue
            self._apply(ds, tag, vr, elem, action, mode, depth, handled)
        for group in overlays:
            if (group << 16 | 0x3000) not in ds:
                # an Overlay Plane without its Overlay Data is invalid: the whole overlay goes
                for tag in [int(t) for t in ds._dict if int(t) >> 16 == group]:
                    self._changed(ds, tag, "removed")
                    del ds[tag]
                    self.ctx.counts["X"] += 1
        if private_tags:
            self._private(ds, private_tags, depth)

    @staticmethod
    def _kept_as_is(tag: int, vr: str, action: Action | None, mode: int) -> bool:
        """True when ``_apply`` would leave this element untouched whatever its value."""
        if vr in ("SQ", "UI", "UN") or _dict_vr(tag) is None:
            return False
        if action is None:
            if mode == NORMAL:  # free text and person names the table does not name are not kept as is
                return tag in CODED or not (vr in FREE_TEXT_VRS or vr == "PN")
            return tag in CODE_TAGS or not (
                vr in TEXT_VRS or vr in DATE_VRS or vr == "AS"
            )
        return action.code == "K"

    def _apply(
        self, ds: Any, tag: int, vr: str, elem: Any, action: Action | None, mode: int, depth: int,
        handled: set[int],
    ) -> None:
        if action is None:
            if _dict_vr(tag) is None:
                self._remove(ds, tag, vr, elem)  # of no dictionary: we cannot know what it holds
                return
            if vr == "SQ":
                self._walk_items(ds, tag, mode, depth)
            elif vr == "UI":
                if not _is_class_uid(tag):
                    self._replace_uid(ds, tag, elem)
                else:
                    _check_class_uid(tag, elem)
            elif mode == DUMMY and tag not in CODE_TAGS and (vr in TEXT_VRS or vr in DATE_VRS or vr == "AS"):
                self._set_dummy(ds, tag, vr, elem)
            elif mode == CLEAN and tag not in CODE_TAGS and vr in TEXT_VRS:
                self._schedule_clean(ds, tag, vr)
            elif mode == CLEAN and vr in DATE_VRS:
                self._date(ds, tag, vr, elem, handled)
            elif mode == NORMAL and vr in FREE_TEXT_VRS and tag not in CODED:
                self._schedule_clean(ds, tag, vr, unnamed=True)
            elif mode == NORMAL and vr == "PN" and _raw_bytes(elem).strip(b"\x00 "):
                self._set_dummy(ds, tag, vr, elem)  # a person's name is never free text to keep
            return
        code = action.code
        if code == "K":
            if vr == "SQ":
                self._walk_items(ds, tag, mode, depth)
            elif vr == "UI" and not _is_class_uid(tag):
                self._replace_uid(ds, tag, elem)  # a kept UID is still pseudonymised unless retain-uids
            elif vr == "UI":
                _check_class_uid(tag, elem)
            return
        if code == "X":
            self._remove(ds, tag, vr, elem)
        elif code == "Z":
            self._set_empty(ds, tag, vr, elem)
        elif code == "D":
            if vr == "SQ":
                self._walk_items(ds, tag, DUMMY, depth)
            else:
                self._set_dummy(ds, tag, vr, elem)
        elif code == "U":
            if vr == "SQ":
                self._walk_items(ds, tag, mode, depth)
            elif vr == "UI":
                self._replace_uid(ds, tag, elem)
            else:
                self._set_dummy(ds, tag, vr, elem)
        elif code == "C":
            self._clean(ds, tag, vr, elem, depth, handled)
        elif code == "P":
            self._pseudonym(ds, tag, vr, elem)
        elif code == "R":
            from pydicom.dataelem import DataElement

            self._record(ds, tag, vr, elem, tag >> 16 == 0x0010)
            ds[tag] = DataElement(tag, vr, action.value)
            self.ctx.generated.add(str(action.value).lower())
            self._changed(ds, tag, "replaced", True)
            self.ctx.counts["R"] += 1
        elif code == "E":
            import re

            pattern = re.compile(action.pattern or "")
            self._schedule_clean(
                ds, tag, vr,
                lambda text: pattern.sub(lambda m: "*" * min(3, len(m.group(0))), text),
            )
        else:  # pragma: no cover - codes are validated when the profile is built
            raise DeidentificationError(f"unknown action {code}")

    def _clean(self, ds: Any, tag: int, vr: str, elem: Any, depth: int, handled: set[int]) -> None:
        if tag >> 16 & 0xFF00 == 0x6000 and tag & 0xFFFF == 0x3000:
            # overlay bitplanes kept by clean-graphics: whatever the VR says (implicit files give
            # "OB or OW"), they may hold burned-in text that only pixel text detection can clean
            self.ctx.overlay_seen = True
            return
        if vr == "SQ":
            self._walk_items(ds, tag, CLEAN, depth)
        elif vr in DATE_VRS:
            self._date(ds, tag, vr, elem, handled)
        elif vr == "UI":
            self._replace_uid(ds, tag, elem)
        elif vr in TEXT_VRS:
            self._schedule_clean(ds, tag, vr)
        elif vr in BINARY_VRS or " or " in vr:
            # binary content of a C attribute: curve data (numbers) is kept by clean-graphics;
            # anything else binary cannot be cleaned and is removed
            if tag >> 16 & 0xFF00 != 0x5000:
                self._remove(ds, tag, vr, elem)
        # numbers (IS, DS, US, ...) kept: the option keeps them (e.g. patient characteristics)

    def _pseudonym(self, ds: Any, tag: int, vr: str, elem: Any) -> None:
        from pydicom.dataelem import DataElement

        self._record(ds, tag, vr, elem, True)
        identity = self.ctx.patient_identity
        purpose = SPECIMEN_PSEUDONYMS.get(tag)
        if purpose is not None:
            value = specimen_pseudonym(self.ctx.keyring, purpose, decode(_raw_bytes(elem)))
        elif vr == "PN":
            value = self.ctx.keyring.patient_name(identity)
        else:
            value = self.ctx.keyring.patient_id(identity)
        ds[tag] = DataElement(tag, vr, value)
        self.ctx.generated.add(str(value).lower())
        self._changed(ds, tag, "replaced", True)
        self.ctx.counts["P"] += 1

    def _content_item(self, ds: Any, handled: set[int]) -> None:
        """A content item whose value identifies by its concept name, whatever the mode of the
        walk (see :mod:`medcloak.rules.sr_context`): replaced, and left alone by the rest of the
        walk. A specimen's identifier becomes its pseudonym, its issuer a dummy."""
        concept = concept_of(ds)
        if concept is None:
            return  # not a coded concept name: the walk treats the item as any other
        code, scheme, meaning = concept
        if TEXT_VALUE in ds._dict and scheme == "DCM" and code in _SPECIMEN_ITEM_CONCEPTS:
            self._specimen_item(ds, code, handled)
            return
        kind = identifying_kind(code, scheme, meaning)
        if kind is None or self.profile.has(RETAINED_BY.get(kind, "")):
            return
        # a birth date is a DATE item, or a TEXT or DATETIME one where a scheme has it so
        values = _BIRTH_VALUES if kind == BIRTH_DATE else ((TEXT_VALUE, "UT"),)
        for tag, vr in values:
            elem = ds.get_item(tag)
            if elem is None or tag in handled:
                continue
            if elem.VR not in (vr, "UN", None):
                vr = elem.VR  # an odd VR (a private implementation's LO): a dummy valid for it
            self._set_dummy(ds, tag, vr, elem, high_risk=kind in (PERSON, SUBJECT, BIRTH_DATE),
                            clean_text=kind != DEVICE_MODEL)  # identifying by its concept
            self.ctx.counts["context-items"] += 1
            handled.add(tag)

    def _specimen_item(self, ds: Any, code: str, handled: set[int]) -> None:
        """A content item whose TEXT value identifies a specimen or its issuer: replaced."""
        from pydicom.dataelem import DataElement

        elem = ds.get_item(TEXT_VALUE)
        self._record(ds, TEXT_VALUE, "UT", elem, True)
        if code in SPECIMEN_ID_CONCEPTS:
            value = specimen_pseudonym(self.ctx.keyring, "specimen", decode(_raw_bytes(elem)))
            self.ctx.counts["P"] += 1
        else:
            value = DUMMY_TEXT["UT"]
            self.ctx.counts["D"] += 1
        ds[TEXT_VALUE] = DataElement(TEXT_VALUE, "UT", value)
        self.ctx.generated.add(value.lower())
        self._changed(ds, TEXT_VALUE, "replaced", True)
        handled.add(TEXT_VALUE)

    def _walk_items(self, ds: Any, tag: int, mode: int, depth: int) -> None:
        seq = ds[tag].value
        if seq is None:
            return
        prefix = self._prefix
        self._prefix = attribute_name(ds, tag, prefix) + ">"
        try:
            for item in seq:
                self.walk(item, mode, depth + 1)
        finally:
            self._prefix = prefix

    # -- private -----------------------------------------------------------------------------

    def _private(self, ds: Any, tags: list[int], depth: int) -> None:
        creators: dict[tuple[int, int], str] = {}
        for tag in tags:
            group, element = tag >> 16, tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                value = _raw_bytes(ds.get_item(tag)).decode("latin-1").strip("\x00 ")
                creators[(group, element)] = value
        declared = _declared_blocks(ds) if 0x00080300 in ds else {}
        used: set[tuple[int, int]] = set()
        for tag in tags:
            group, element = tag >> 16, tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                continue
            block = element >> 8
            creator = creators.get((group, block)) if element >= 0x1000 else None
            elem = ds.get_item(tag)
            keep = (
                creator is not None
                and group > 0x0008
                and group != 0xFFFF
                and self._keep_private(creator, group, element, declared)
            )
            vr = elem.VR or "UN"
            if not keep:
                # a removed private value is a needle only when it is explicitly a name or a date:
                # other private values often repeat kept ones (creator strings, copies of codes)
                if vr in ("PN", "DA", "DT"):
                    self._record(ds, tag, vr, elem, True)
                # named by its block: a vendor's block removed is one row of the report, not
                # hundreds, and the record stays small (a kept element is named on its own)
                self.ctx.changed[self._prefix + (
                    f"({group:04X},xx..) {creator}" if creator else f"({group:04X},{element:04X})"
                )] = "removed"
                del ds[tag]
                self.ctx.counts["X"] += 1
                continue
            used.add((group, block))
            self.ctx.counts["private-kept"] += 1
            if vr == "UN":
                vr = self._private_vr(creator or "", group, element) or "UN"
            self._kept_private_value(ds, tag, vr, elem, depth)
        for (group, element), _creator in creators.items():
            if (group, element) not in used:
                del ds[(group << 16) | element]

    def _keep_private(self, creator: str, group: int, element: int, declared: dict[tuple[str, int], tuple[str, frozenset[int]]]) -> bool:
        status = declared.get((creator, group))
        if status is not None:
            kind, offsets = status
            if kind == "UNSAFE":
                return False
            if self.profile.has("retain-safe-private"):
                if kind == "SAFE":
                    return True
                if kind == "MIXED" and (element & 0xFF) in offsets:
                    return True
        return self.profile.keep_private(creator, group, element)

    def _private_vr(self, creator: str, group: int, element: int) -> str | None:
        return _private_vrs().get((creator, group, element & 0xFF))

    def _kept_private_value(self, ds: Any, tag: int, vr: str, elem: Any, depth: int) -> None:
        """A retained private element still follows the rules for its kind of value."""
        if vr == "SQ" or (vr == "UN" and isinstance(ds[tag].value, list)):
            if ds[tag].VR == "SQ":
                self._walk_items(ds, tag, NORMAL, depth)
            return
        if vr in DATE_VRS:
            self._date(ds, tag, vr, elem, set())
        elif vr == "UI":
            self._replace_uid(ds, tag, elem)
        elif vr == "PN":
            self._set_dummy(ds, tag, vr, elem)
        elif vr in FREE_TEXT_VRS:
            # free text of a kept block, cleaned as the table's unnamed text; a value read as UN
            # whose VR the private lists give is cleaned as that VR (and written so, if it changes)
            self._schedule_clean(ds, tag, vr, unnamed=True)

    def finish(self) -> None:
        """Clean the scheduled text elements, now that every identifying value is known."""
        if not self.ctx.to_clean:
            return
        from pydicom.dataelem import DataElement

        from .clean import TextCleaner

        cleaner = TextCleaner(self.ctx.text_values)
        for ds, tag, vr, custom, unnamed, name in self.ctx.to_clean:
            if tag not in ds:
                continue
            values = _text(ds, tag)
            fn = custom or cleaner
            new = [fn(v) for v in values]
            if new != values:
                self.ctx.changed[name] = "cleaned"
                self.ctx.counts["C"] += 1
                if unnamed:  # the manifest tells the table's C apart from free text it does not name
                    self.ctx.counts["C-free-text"] += 1
                ds[tag] = DataElement(tag, vr, new if len(new) > 1 else (new[0] if new else None))


def _check_class_uid(tag: int, elem: Any) -> None:
    """A class UID is kept as it is: one that is not a valid UID (a damaged file) would be
    released invalid, which ``verify`` rejects, so the object is refused here."""
    raw = _raw_bytes(elem).decode("ascii", "replace").strip("\x00 ")
    if raw and not all(valid_uid(part.strip("\x00 ")) for part in raw.split("\\")):
        raise CorruptInputError(f"invalid UID in {_keyword(tag)}")


@lru_cache(maxsize=None)
def _descriptive(tag: int) -> bool:
    """Does an option of the standard's table clean this attribute (C): free text, not an
    identifier in itself? (Retain Device Identity's C, on AE titles, does not count: an AE title
    names a device.)"""
    if tag >> 16 & 0xFF01 == 0x6000 and tag & 0xFFFF == 0x4000:
        tag = 0x60004000  # Overlay Comments, the table's 60xx,4000
    return tag in _cleaned_by_options()


@lru_cache(maxsize=None)
def _cleaned_by_options() -> frozenset[int]:
    from .profile import rule_data

    out = set()
    for row in rule_data("ps315_e1_1.json")["attributes"]:
        if any(code == "C" for option, code in row["options"].items() if option != "retain-device-identity"):
            out.add(int(row["tag"].lower().replace("x", "0"), 16))
    return frozenset(out)


@lru_cache(maxsize=None)
def _private_vrs() -> dict[tuple[str, int, int], str]:
    from .profile import rule_data

    out = {}
    for name in ("tcia_private.json", "ps315_e3_10.json"):
        for e in rule_data(name)["elements"]:
            if e["vr"] and len(e["vr"]) == 2:
                out[(e["creator"], int(e["group"], 16), int(e["offset"], 16))] = e["vr"]
    return out


def _declared_blocks(ds: Any) -> dict[tuple[str, int], tuple[str, frozenset[int]]]:
    """Private blocks described by (0008,0300) Private Data Element Characteristics Sequence."""
    out: dict[tuple[str, int], tuple[str, frozenset[int]]] = {}
    for item in ds[0x00080300].value or []:
        group = item.get((0x0008, 0x0301))
        creator = item.get((0x0008, 0x0302))
        status = item.get((0x0008, 0x0303))
        if group is None or creator is None or status is None:
            continue
        offsets = item.get((0x0008, 0x0304))
        values: list[int] = []
        if offsets is not None and offsets.value is not None:
            raw = offsets.value
            values = [int(v) for v in (raw if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue" else [raw])]
        out[(str(creator.value).strip(), int(group.value))] = (
            str(status.value).strip().upper(),
            frozenset(v & 0xFF for v in values),
        )
    return out
