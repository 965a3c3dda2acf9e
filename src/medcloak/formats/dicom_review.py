"""The review record of a released DICOM object (see :mod:`medcloak.review_record`), made from the
data set as it is written, once the profile's walk is done.

The walk (:class:`medcloak.rules.actions.Walker`) notes, as it acts, the action per attribute
name and the elements whose value it wrote itself; this module adds one pass over the final data
set for what the walk leaves alone (most elements are kept without being decoded):

- ``text``: the released values of every text element (LO, SH, LT, ST, UT, UC, PN; at every
  sequence depth; kept private blocks too, a value read as UN by its private VR) that medcloak did
  not write itself: kept and cleaned values. Dummies, pseudonyms and the de-identification
  provenance are left out (the same in every object, they would flood the pooled review);
- ``kept``: the name of every element present in the release that no action named (a sequence by
  its own name too; its items' elements by their paths);
- ``qi``: the quasi-identifiers of the top level that the release keeps as they were (kept or
  cleaned: a dummy is no patient characteristic), and ``StudyYear``, the year of the released
  Study Date when the profile keeps or shifts dates;
- the pseudonymous folder tokens of the relative path, and Modality.

Private creator elements are neither text nor kept: their value is in the name of every element
of their block (``(gggg,xxee) creator``, see :func:`medcloak.rules.actions.private_name`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..residual import decode
from ..review_record import QUASI_IDENTIFIERS, record, text_values
from ..rules.actions import _dict_vr, _keyword, _private_vrs, attribute_name

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from ..rules.actions import Context

#: the VRs whose values are the record's text (UC is unlimited LO)
TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN"})
#: the attributes medcloak writes after the walk (:func:`medcloak.formats.dicom._add_provenance`)
PROVENANCE = {
    0x00120062: "PatientIdentityRemoved", 0x00120063: "DeidentificationMethod",
    0x00120064: "DeidentificationMethodCodeSequence", 0x00280303: "LongitudinalTemporalInformationModified",
    0x00280301: "BurnedInAnnotation", 0x00280302: "RecognizableVisualFeatures",
}
_QI_TAGS = {
    0x00100040: "PatientSex", 0x00101010: "PatientAge", 0x00101020: "PatientSize", 0x00101030: "PatientWeight",
    0x00102160: "EthnicGroup", 0x00180015: "BodyPartExamined", 0x00080070: "Manufacturer",
    0x00081090: "ManufacturerModelName", 0x00080080: "InstitutionName",
}
assert set(_QI_TAGS.values()) | {"StudyYear"} == set(QUASI_IDENTIFIERS)
STUDY_DATE = 0x00080020
MODALITY = 0x00080060
MAX_DEPTH = 64


def note_provenance(ds: Dataset, ctx: Context, pixels_cleaned: bool, faces_cleaned: bool) -> None:
    """The provenance attributes just written: replaced, by medcloak (never text of the record)."""
    for tag, keyword in PROVENANCE.items():
        if tag == 0x00280301 and not pixels_cleaned or tag == 0x00280302 and not faces_cleaned:
            continue
        ctx.changed[keyword] = "replaced"
        ctx.written.add((id(ds), tag))


#: the text VRs whose values are never split at a backslash
_SINGLE = frozenset({"LT", "ST", "UT"})


def _codec(ds: Dataset) -> str:
    """The Python codec a data set's text is decoded with where it holds no escape sequence
    (pydicom's first encoding of its Specific Character Set, or its parent's)."""
    charset = ds._character_set
    if isinstance(charset, str):
        return charset
    return str(charset[0]) if len(charset) else "iso8859"


def _values(ds: Dataset, tag: int, elem: Any, vr: str, codec: str | None = None) -> list[str]:
    """The decoded values of an element (raw ones decoded as pydicom would, under ``vr``). Text
    without escape sequences is decoded here as pydicom does it (the cost of the record is mostly
    decoding, and pydicom's conversion of an element costs ten times this), ``codec`` being the
    data set's (:func:`_codec`); the rest by pydicom."""
    if codec is not None and vr in TEXT_VRS and type(elem).__name__ == "RawDataElement":
        raw = elem.value
        if not raw:
            return []
        if b"\x1b" not in raw:
            try:
                text = raw.decode(codec)
            except (UnicodeDecodeError, LookupError):
                pass  # pydicom's way below (it replaces what it cannot decode)
            else:
                parts = [text] if vr in _SINGLE else text.split("\\")
                return [value for part in parts if (value := part.rstrip("\x00 "))]
    if type(elem).__name__ == "RawDataElement":
        from pydicom.dataelem import convert_raw_data_element

        if elem.VR != vr:
            elem = elem._replace(VR=vr)
        try:
            elem = convert_raw_data_element(elem, encoding=ds._character_set, ds=ds)
        except Exception:  # noqa: BLE001 - a value pydicom cannot decode: its text as a reader guesses
            text = decode(bytes(elem.value or b"")).rstrip("\x00 ")
            return text.split("\\") if text else []
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (bytes, bytearray)):
        return []  # not text after all (a private value pydicom could not read as its VR)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _walk(ds: Dataset, prefix: str, ctx: Context, kept: set[str], pairs: list[tuple[str, str]], depth: int,
          codec: str) -> None:
    """Add the (name, value) of the text of ``ds`` to ``pairs``, and the names of its kept
    elements to ``kept``; ``codec``: its parent's (see :func:`_codec`)."""
    from pydicom.dataelem import RawDataElement

    changed, written = ctx.changed, ctx.written
    here = id(ds)
    items = list(ds._dict.items())
    if 0x00080005 in ds._dict or not prefix:
        codec = _codec(ds)  # a data set with a character set of its own
    for tag, elem in items:
        tag = int(tag)
        group = tag >> 16
        if group & 1:
            element = tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                continue  # a private creator: its value names its block's elements
            name = attribute_name(ds, tag, prefix)
        else:
            name = prefix + _keyword(tag)
        if (here, tag) in written:
            continue
        if name not in changed:
            kept.add(name)
        raw = isinstance(elem, RawDataElement)
        vr = elem.VR or _dict_vr(tag) or "UN"
        if vr in TEXT_VRS:
            if raw and elem.value and b"\x1b" not in elem.value:
                try:
                    text = elem.value.decode(codec)
                except (UnicodeDecodeError, LookupError):
                    pass  # pydicom's way (it replaces what it cannot decode)
                else:  # decoded as pydicom does it (see _values), at a tenth of its cost
                    for part in ([text] if vr in _SINGLE else text.split("\\")):
                        if value := part.rstrip("\x00 "):
                            pairs.append((name, value))
                    continue
            pairs.extend((name, value) for value in _values(ds, tag, elem, vr))
            continue
        if vr == "UN" and group & 1:
            local = name[len(prefix):]
            creator = local.split(" ", 1)[1] if " " in local else ""
            vr = _private_vrs().get((creator, group, tag & 0xFF), "UN")
            if vr in TEXT_VRS:
                pairs.extend((name, value) for value in _values(ds, tag, elem, vr, codec))
                continue
        if vr == "SQ" or (vr == "UN" and not isinstance(elem.value, (bytes, bytearray))):
            value = ds[tag].value
            if depth < MAX_DEPTH and value is not None and not isinstance(value, (bytes, bytearray, str)):
                for item in value:
                    _walk(item, name + ">", ctx, kept, pairs, depth + 1, codec)


def review(ds: Dataset, ctx: Context, relpath: str, pixels: dict[str, Any] | None = None) -> dict[str, Any]:
    """The review record of the released data set ``ds`` (after the walk of ``ctx`` and the
    provenance), written at ``relpath`` (``patient/study/series/instance.dcm``)."""
    kept: set[str] = set()
    pairs: list[tuple[str, str]] = []
    _walk(ds, "", ctx, kept, pairs, 0, "iso8859")
    text = text_values(pairs)
    here = id(ds)
    qi: dict[str, str] = {}
    for tag, keyword in _QI_TAGS.items():
        elem = ds.get_item(tag)
        if elem is None or (here, tag) in ctx.written:
            continue
        values = _values(ds, tag, elem, elem.VR or _dict_vr(tag) or "UN")
        if values:
            qi[keyword] = "\\".join(v.strip() for v in values)
    options = ctx.profile.options
    if ("retain-long-full-dates" in options or "retain-long-modified-dates" in options) and ctx.changed.get(
        "StudyDate", "shifted"
    ) == "shifted":
        elem = ds.get_item(STUDY_DATE)
        date = "".join(_values(ds, STUDY_DATE, elem, "DA")[:1]).strip() if elem is not None else ""
        if len(date) >= 4 and date[:4].isdigit():
            qi["StudyYear"] = date[:4]
    modality = ds.get_item(MODALITY)
    parts = relpath.split("/")
    return record(
        "dicom",
        modality="".join(_values(ds, MODALITY, modality, "CS")[:1]).strip() if modality is not None else "",
        patient=parts[0] if len(parts) == 4 else "", study=parts[1] if len(parts) == 4 else "",
        series=parts[2] if len(parts) == 4 else "",
        text=text, changed=ctx.changed, kept=kept, qi=qi, pixels=pixels,
    )
