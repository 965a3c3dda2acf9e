"""The strict profile: keep only what the object's IOD needs, then apply the Basic Profile.

PS3.15's table names the attributes that identify; the strict profile (``--profile strict``, or
``strict = true`` in a site file) inverts the question, as the MIDI task group's report puts it:
remove everything except that which needs to be retained. Before the profile's walk, every
standard attribute of the object that is not on its IOD's allow-list is removed, at every depth:

- the allow-list is generated from PS3.3 (``data/ps33_allow.json``, see
  :mod:`medcloak.rules.generate_strict`): the attributes of the IOD's mandatory and conditional
  modules and of the optional ones that display the pixels and measure on them; inside a kept
  sequence, the attributes PS3.3 lists for that sequence's items in those modules;
- an attribute that an option or a site override keeps (action ``K``, ``C``, ``R`` or ``E`` from
  a source other than the Basic Profile) stays wherever it is, so ``retain-device-identity`` or
  ``retain-patient-characteristics`` keep what they name (their contents too, which the walk then
  judges as usual);
- a listed sequence whose items PS3.3 does not describe (the legacy converted objects'
  Unassigned Converted Attributes) is removed, or emptied where its Type is 1 or 2;
- private attributes are left to the walk, which under this profile keeps only what a site's
  private list (``[[private.keep]]``, ``private_lists``) or an explicit ``retain-safe-private``
  keeps.

What stays then goes through the Basic Profile and the options exactly as under ``basic``: a Type
1 or 2 attribute that the table empties or replaces by a dummy is still emptied or dummied. An
object whose SOP Class has no allow-list is not released (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from ..errors import DeidentificationError
from .profile import Profile, rule_data

DATA_NAME = "ps33_allow.json"
#: Codes with which an option or a site override keeps an attribute.
RETAINING = frozenset({"K", "C", "R", "E"})


@dataclass(frozen=True)
class AllowList:
    """The attributes one IOD's kept modules allow: top level with their Type, and per sequence
    tag the tags its items may hold."""

    iod: str
    family: str
    top: dict[int, str]
    items: dict[int, frozenset[int]]


@lru_cache(maxsize=None)
def _tags() -> dict[str, int]:
    """Keyword -> tag, repeating groups (overlays, curves) at their ``xx00`` group."""
    from pydicom.datadict import RepeatersDictionary, keyword_dict

    out = {str(k): int(t) for k, t in keyword_dict.items()}
    for mask, entry in RepeatersDictionary.items():
        if entry[4]:
            out.setdefault(str(entry[4]), int(mask.replace("x", "0"), 16))
    return out


@lru_cache(maxsize=None)
def _dict_vr(tag: int) -> str | None:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _norm(tag: int) -> int:
    """A tag of a repeating group (50xx, 60xx) at its first group, as the allow-list holds it."""
    group = tag >> 16
    if group & 0xFF00 in (0x5000, 0x6000) and group % 2 == 0:
        return (group & 0xFF00) << 16 | tag & 0xFFFF
    return tag


@lru_cache(maxsize=None)
def allow_list(sop_class: str) -> AllowList | None:
    """The allow-list of a SOP Class, or ``None`` when it has none."""
    data = rule_data(DATA_NAME)
    iod = data["sop_classes"].get(sop_class)
    if iod is None:
        return None
    tags = _tags()
    top: dict[int, str] = {tags[k]: kind for k, kind in data["always"].items() if k in tags}
    items: dict[int, set[int]] = {}
    for key in data["iods"][iod]["modules"]:
        module = data["modules"][key]
        for keyword, kind in module["attributes"].items():
            tag = tags.get(keyword)
            if tag is not None:  # an attribute newer than pydicom's dictionary: no object holds it by name
                top[tag] = min(top.get(tag, kind), kind)
        for seq, children in module["items"].items():
            seq_tag = tags.get(seq)
            if seq_tag is not None:
                items.setdefault(seq_tag, set()).update(t for t in map(tags.get, children) if t is not None)
    return AllowList(iod, data["iods"][iod]["family"], top, {k: frozenset(v) for k, v in items.items()})


def sop_classes() -> dict[str, str]:
    """SOP Class UID -> IOD, for every SOP Class the strict profile can release."""
    return dict(rule_data(DATA_NAME)["sop_classes"])


def _retained(profile: Profile, tag: int) -> bool:
    action = profile.resolve(tag)
    return action is not None and action.code in RETAINING and action.source != "basic"


Remove = Callable[[Any, int, str, Any], None]


def _allow_of(ds: Any) -> tuple[str, AllowList | None]:
    elem = ds.get_item(0x00080016)
    value = elem.value if elem is not None else None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    sop_class = str(value or "").strip("\x00 ")
    return sop_class, allow_list(sop_class)


def _top(ds: Any, allow: AllowList) -> set[int]:
    """The top-level allow-list of one object: its IOD's, and the attributes its Frame Increment
    Pointer names (what its frames vary by; without them the frames cannot be told apart)."""
    allowed = set(allow.top)
    if 0x00280009 in ds:
        try:
            value = ds[0x00280009].value
            values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
            allowed.update(int(v) for v in values if v is not None)
        except (TypeError, ValueError):
            pass  # an unreadable pointer points at nothing
    return allowed


def prune(ds: Any, profile: Profile, remove: Remove) -> AllowList:
    """Remove from ``ds`` every standard attribute its IOD's allow-list and the profile's options
    do not keep; ``remove(ds, tag, vr, elem)`` removes one (and records its value for the
    residual scan). Raises :class:`DeidentificationError` for a SOP Class without an allow-list."""
    from pydicom.sequence import Sequence

    sop_class, allow = _allow_of(ds)
    if allow is None:
        raise DeidentificationError(
            f"the strict profile has no allow-list for SOP Class {sop_class or '(none)'}: "
            "not released (use the basic profile for it)"
        )

    def empty(item: Any, tag: int) -> None:
        item[tag].value = Sequence()

    _prune(ds, _top(ds, allow), allow, profile, remove, empty, 0)
    return allow


def outside(ds: Any, profile: Profile, ignore: frozenset[int] = frozenset()) -> list[str]:
    """What :func:`prune` would remove from a written object (``medcloak verify``): the keywords
    of standard attributes outside the allow-list, at any depth, ``ignore`` aside (the
    provenance medcloak writes after the walk); one entry naming the SOP Class when it has no
    allow-list."""
    sop_class, allow = _allow_of(ds)
    if allow is None:
        return [f"SOP Class {sop_class or '(none)'} (no allow-list)"]
    found: list[str] = []

    from pydicom.datadict import keyword_for_tag

    def remove(_ds: Any, tag: int, _vr: str, _elem: Any) -> None:
        if tag not in ignore:
            found.append(keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})")

    def empty(item: Any, tag: int) -> None:
        if item[tag].value:
            remove(item, tag, "SQ", item[tag])

    _prune(ds, _top(ds, allow), allow, profile, remove, empty, 0)
    return found


def _prune(
    ds: Any, allowed: Any, allow: AllowList, profile: Profile, remove: Remove,
    empty: Callable[[Any, int], None], depth: int,
) -> None:
    if depth > 64:
        raise DeidentificationError("sequences nested deeper than 64 levels")
    for tag, elem in list(ds._dict.items()):
        tag = int(tag)
        group = tag >> 16
        if group & 1 or group in (0x0002, 0xFFFE) or tag & 0xFFFF == 0:
            continue  # private attributes, File Meta, group lengths: the walk's rules decide
        norm = _norm(tag)
        vr = elem.VR if elem.VR not in (None, "UN") else (_dict_vr(tag) or elem.VR or "UN")
        if norm not in allowed and not _retained(profile, tag):
            remove(ds, tag, vr, elem)
            continue
        if vr != "SQ" or _retained(profile, tag):
            continue
        children = allow.items.get(norm)
        if children is None:
            if depth == 0 and allow.top.get(norm, "3")[0] in "12":
                empty(ds, tag)  # a required sequence of undescribed contents: emptied
            else:
                remove(ds, tag, "SQ", elem)
            continue
        for item in ds[tag].value or []:
            _prune(item, children, allow, profile, remove, empty, depth + 1)
