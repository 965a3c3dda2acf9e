"""Site overrides: a TOML file layered on the standard, validated on load.

Example::

    name = "site-a"
    options = ["retain-safe-private"]
    private_lists = ["tcia"]              # add TCIA's vetted list to E.3.10
    strict = false                        # true: keep only what the IOD needs (rules/strict.py)

    [attributes]
    PatientAge = "keep"                   # keep | remove
    UnformattedTextValue = "keep"         # free text the table does not name: verbatim, not cleaned
    "(0008,1030)" = { replace = "STUDY" } # a fixed value, checked against the VR
    SeriesDescription = { regex-clean = "\\b[A-Z]{2}[0-9]{6}\\b" }

    [[private.keep]]                      # blocks are matched by creator, never by element number
    creator = "ACME 1.1"
    group = "0029"
    offsets = ["10", "11"]                # omit to keep the whole block

    [[private.remove]]
    creator = "SIEMENS MR HEADER"
    group = "0019"

    [bids]                                # BIDS tables: columns kept besides the profile's
    keep_columns = ["handedness", "group"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProfileError
from .profile import TAG_TEXT, Action, PrivateBlockRule

TOP_KEYS = {"name", "options", "private_lists", "attributes", "private", "bids", "strict"}
PRIVATE_LISTS = {"tcia"}


@dataclass
class SiteOverrides:
    options: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    attributes: dict[int, Action] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    private_keep: tuple[PrivateBlockRule, ...] = ()
    private_remove: tuple[PrivateBlockRule, ...] = ()
    strict: bool = False


def _tag_of(key: str) -> tuple[int, str]:
    from pydicom.datadict import keyword_for_tag, tag_for_keyword

    match = TAG_TEXT.match(key)
    if match:
        tag = int(match.group(1) + match.group(2), 16)
        return tag, keyword_for_tag(tag) or key
    tag = tag_for_keyword(key)
    if tag is None:
        raise ProfileError(f"site override names an unknown attribute: {key!r}")
    return int(tag), key


def _check_value(tag: int, value: str) -> None:
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import DataElement

    try:
        vr = dictionary_VR(tag)
    except KeyError:
        raise ProfileError(f"replace needs a tag of the data dictionary: {tag:08X}") from None
    if vr in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        raise ProfileError(f"replace is for text and number values, not {vr} ({tag:08X})")
    from .values import validate_value

    problem = validate_value(vr, value)
    if problem:
        raise ProfileError(f"replace value for ({tag >> 16:04X},{tag & 0xFFFF:04X}) {problem}")
    DataElement(tag, vr, value)  # pydicom accepts it


def _attribute(key: str, spec: Any) -> tuple[int, str, Action]:
    tag, keyword = _tag_of(key)
    if tag >> 16 == 0x0002:
        raise ProfileError("File Meta attributes are regenerated and cannot be overridden")
    if spec == "keep":
        return tag, keyword, Action("K", "site override")
    if spec == "remove":
        return tag, keyword, Action("X", "site override")
    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, value),) = spec.items()
        if kind == "replace" and isinstance(value, str):
            _check_value(tag, value)
            return tag, keyword, Action("R", "site override", value=value)
        if kind == "regex-clean" and isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise ProfileError(f"regex-clean pattern for {key} does not compile: {exc}") from None
            return tag, keyword, Action("E", "site override", pattern=value)
    raise ProfileError(
        f"override for {key} must be \"keep\", \"remove\", {{replace = \"...\"}} or "
        "{regex-clean = \"...\"}"
    )


def _blocks(items: Any, where: str) -> tuple[PrivateBlockRule, ...]:
    if not isinstance(items, list):
        raise ProfileError(f"private.{where} must be a list of tables")
    out = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"creator", "group", "offsets"}:
            raise ProfileError(f"private.{where} entries take creator, group and offsets")
        creator, group = item.get("creator"), item.get("group")
        if not isinstance(creator, str) or not creator.strip():
            raise ProfileError(f"private.{where}: creator must be a non-empty string")
        if not isinstance(group, str) or not re.fullmatch(r"[0-9A-Fa-f]{4}", group) or int(group, 16) % 2 == 0:
            raise ProfileError(f"private.{where}: group must be an odd group as 4 hex digits")
        offsets = item.get("offsets")
        parsed = None
        if offsets is not None:
            if not isinstance(offsets, list) or not all(
                isinstance(o, str) and re.fullmatch(r"(xx)?[0-9A-Fa-f]{2}", o) for o in offsets
            ):
                raise ProfileError(f"private.{where}: offsets are two hex digits each, e.g. \"10\"")
            parsed = frozenset(int(o[-2:], 16) for o in offsets)
        out.append(PrivateBlockRule(creator.strip(), int(group, 16), parsed))
    return tuple(out)


def parse_overrides(data: dict[str, Any]) -> SiteOverrides:
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ProfileError(f"unknown keys in profile file: {', '.join(sorted(unknown))}")
    site = SiteOverrides()
    options = data.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ProfileError("options must be a list of option names")
    site.options = list(options)
    strict = data.get("strict", False)
    if not isinstance(strict, bool):
        raise ProfileError("strict must be true or false")
    site.strict = strict
    lists = data.get("private_lists", [])
    if not isinstance(lists, list) or set(lists) - PRIVATE_LISTS:
        raise ProfileError(f"private_lists takes names from: {', '.join(sorted(PRIVATE_LISTS))}")
    site.lists = list(lists)
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise ProfileError("[attributes] must be a table")
    for key, spec in attributes.items():
        tag, keyword, action = _attribute(key, spec)
        site.attributes[tag] = action
        site.names[tag] = keyword
    private = data.get("private", {})
    if not isinstance(private, dict) or set(private) - {"keep", "remove"}:
        raise ProfileError("[private] takes keep and remove lists")
    site.private_keep = _blocks(private.get("keep", []), "keep")
    site.private_remove = _blocks(private.get("remove", []), "remove")
    bids = data.get("bids", {})
    columns = bids.get("keep_columns", []) if isinstance(bids, dict) else None
    if not isinstance(bids, dict) or set(bids) - {"keep_columns"} or not isinstance(columns, list) \
            or not all(isinstance(c, str) and c for c in columns):
        raise ProfileError("[bids] takes keep_columns, a list of column names")
    return site
