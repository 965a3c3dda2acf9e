"""What a worker records of each released object for the curator's report (``medcloak report``):
the text that stayed, the patient characteristics that stayed, what was changed, attribute by
attribute, and where the pixels were changed. It goes into the object's manifest line (key
``review``), in the private audit folder: the report pools these records over the whole release
without reading the release again, so that it costs a small part of the run.

Every value in a record is a value of the *released* object, never an original one (the record
is made from what is written). It is bounded: at most :data:`MAX_VALUES` text values per object,
each cut to :data:`MAX_CHARS` characters (a cut value ends with :data:`CUT`), and at most
:data:`MAX_BOXES` pixel boxes. A record is a dict with these keys, each optional:

``format``
    the handler's format name (``dicom``, ``photo``, ``slide``, ``volume``, ``bids``...).
``modality``
    DICOM Modality, or a short name of the kind of object (``SM`` for a slide, ``MR``...).
``patient``, ``study``, ``series``
    pseudonymous keys (the release's values: the patient folder, the study and series tokens),
    which the report groups objects by (one montage per series, one row per patient).
``text``
    ``{attribute: [value, ...]}``: every kept text value of the object (DICOM LO, SH, LT, ST, UT,
    PN and kept descriptors, inside sequences and kept private blocks too; the kept free text of
    other formats). A DICOM attribute is named by its keyword; inside a sequence by the path of
    keywords joined by ``>`` (``ProcedureCodeSequence>CodeMeaning``); a private one as
    ``(gggg,xxee) creator``; another format's by its own key (``ImageDescription``, ``descrip``).
``changed``
    ``{attribute: action}``, with action one of :data:`ACTIONS`, for every attribute the profile
    acted on (``kept`` is counted by the report from ``kept``); a DICOM private block removed
    whole is one name, ``(gggg,xx..) creator``.
``kept``
    the names (as in ``text``) of every attribute that stayed as it was, of any VR.
``qi``
    ``{keyword: value}``: the quasi-identifiers as released (see :data:`QUASI_IDENTIFIERS`);
    absent or empty when not released.
``pixels``
    what was changed in the pixels: ``{"change": one of PIXEL_CHANGES, "frames": frames scanned,
    "boxes": [[frame, x0, y0, x1, y1], ...], "picture": path of the audit's picture relative to
    the audit folder}``; absent when the pixels are untouched.

How the handlers fill it (see each handler's docstring):

- DICOM (:mod:`medcloak.formats.dicom_review`): the text VRs are LO, SH, LT, ST, UT, UC and PN;
  ``text`` holds kept and cleaned values only, never what medcloak wrote (dummies, pseudonyms,
  new UIDs, shifted dates, the de-identification provenance). The provenance attributes
  medcloak writes (Patient Identity Removed, De-identification Method and its code sequence,
  Longitudinal Temporal Information Modified, Burned In Annotation and Recognizable Visual
  Features when it sets them) count as ``replaced``; Pixel Data as ``cleaned`` when its pixels
  were redacted, defaced or had bits or overlays cleared. Private creator elements are neither
  in ``text`` nor ``kept`` (their value names their block's elements). A sequence is ``kept`` by
  its own name when it stays, whatever its items' elements had done to them. One action per
  name: the last one the walk took (a name is in ``kept`` only when no item of it was changed).
  A template's boxes (every frame gets them) are given once, on frame 0; a defaced slice's
  change is ``defaced`` (over any text redaction, whose boxes stay).
- other formats: their own names (``descrip``, ``ImageDescription``, a sidecar's key path
  joined by ``>``, ``label``/``macro`` for removed slide pages); ``series`` is the object's
  token (a photograph, a volume, a slide) or its folder in the release (BIDS).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

#: the actions the report counts, per attribute
ACTIONS = ("removed", "emptied", "replaced", "cleaned", "shifted", "kept")
#: what can have been done to the pixels of an object
PIXEL_CHANGES = ("text-redacted", "regions-redacted", "defaced", "label-removed", "image-blanked")
#: the manifest's actions that say the pixels changed, with the change each is, the most telling
#: first (an image blanked whole was also redacted)
PIXEL_ACTIONS = (
    ("pixel-whole-image-blanked", "image-blanked"), ("pixel-text-boxes-redacted", "text-redacted"),
    ("pixel-regions-redacted", "regions-redacted"), ("defaced", "defaced"), ("label-removed", "label-removed"),
)
#: the report's default quasi-identifiers (issue: Patient's Sex, Age, Size, Weight, Ethnic Group,
#: the shifted study year, Body Part Examined, device and institution identity where kept)
QUASI_IDENTIFIERS = (
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup", "StudyYear",
    "BodyPartExamined", "Manufacturer", "ManufacturerModelName", "InstitutionName",
)
#: default quasi-identifiers that count only under the option that keeps them on purpose (the
#: issue: device identity and institution "when kept"): Manufacturer is kept by every profile, but
#: it describes a machine, not a patient, unless the site chose to keep the device's identity
WHEN_KEPT = {
    "Manufacturer": "retain-device-identity",
    "ManufacturerModelName": "retain-device-identity",
    "InstitutionName": "retain-institution-identity",
}
MAX_VALUES = 500
MAX_CHARS = 200
MAX_BOXES = 200
CUT = "…"


def quasi_identifiers(options: Iterable[str]) -> tuple[str, ...]:
    """The default quasi-identifiers of a release made with ``options``: :data:`QUASI_IDENTIFIERS`,
    less those of :data:`WHEN_KEPT` whose option is not among them (what the report measures and
    ``run --k-anonymity`` generalises)."""
    options = set(options)
    return tuple(q for q in QUASI_IDENTIFIERS if q not in WHEN_KEPT or WHEN_KEPT[q] in options)


def pixel_change(actions: Mapping[str, int]) -> str:
    """The change of :data:`PIXEL_CHANGES` a manifest's actions say the pixels went through, or
    "" when they say none."""
    return next((change for action, change in PIXEL_ACTIONS if actions.get(action)), "")


def cut(value: str) -> str:
    """``value`` bounded to :data:`MAX_CHARS` characters."""
    return value if len(value) <= MAX_CHARS else value[: MAX_CHARS - 1] + CUT


def text_values(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``{name: [value, ...]}`` from (name, value) pairs: empty values dropped, each value cut,
    each distinct value once per name, at most :data:`MAX_VALUES` values in all."""
    out: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    total = 0
    for name, value in pairs:
        value = cut(str(value).strip())
        if not value or (name, value) in seen:
            continue
        if total >= MAX_VALUES:
            break
        seen.add((name, value))
        out.setdefault(name, []).append(value)
        total += 1
    return out


def json_pairs(doc: Any, prefix: str = "", strings: bool = True) -> Iterator[tuple[str, str]]:
    """(name, value) of a JSON document's values (a sidecar's), named by their key paths joined
    by ``>``; the items of a list under their list's name. ``strings``: string values only (the
    text), else every value that is no object or list (its names)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from json_pairs(value, f"{prefix}{key}" if not prefix else f"{prefix}>{key}", strings)
    elif isinstance(doc, list):
        for value in doc:
            yield from json_pairs(value, prefix, strings)
    elif prefix and (isinstance(doc, str) or not strings):
        yield prefix, str(doc)


def record(
    fmt: str, *, modality: str = "", patient: str = "", study: str = "", series: str = "",
    text: Mapping[str, list[str]] | None = None, changed: Mapping[str, str] | None = None,
    kept: Iterable[str] = (), qi: Mapping[str, str] | None = None, pixels: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A record as described above, with empty parts left out."""
    rec: dict[str, Any] = {"format": fmt}
    for key, value in (("modality", modality), ("patient", patient), ("study", study), ("series", series)):
        if value:
            rec[key] = value
    if text:
        rec["text"] = {k: list(v) for k, v in text.items()}
    if changed:
        rec["changed"] = dict(changed)
    kept = sorted(set(kept))
    if kept:
        rec["kept"] = kept
    if qi:
        rec["qi"] = {k: str(v) for k, v in qi.items() if str(v).strip()}
    if pixels:
        pix = dict(pixels)
        if "boxes" in pix:
            pix["boxes"] = [list(map(int, b)) for b in list(pix["boxes"])[:MAX_BOXES]]
        rec["pixels"] = pix
    return rec
