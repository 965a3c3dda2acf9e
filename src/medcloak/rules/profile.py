"""Profile = the standard's table + the options chosen + site overrides, resolved per tag.

Resolution order for one attribute (first that applies wins):

1. a site override from the TOML file (keep / remove / replace / regex-clean);
2. the chosen options that name the attribute: ``K`` wins over ``C``;
3. the Basic Profile code, with compound codes resolved so that an attribute that may be required
   stays present: ``X/Z`` -> ``Z``; ``X/D``, ``Z/D``, ``X/Z/D`` -> ``D``; ``X/Z/U*`` -> ``U`` (the
   sequence is kept and the UIDs inside it replaced). Without the object's IOD at hand we cannot
   know the attribute's Type, and a dummy or empty value never identifies anyone, whereas removing a
   Type 1 or 2 attribute makes the object non-conformant.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ProfileError

OPTIONS = (
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
    "clean-pixel-data",
    "clean-recognizable-visual-features",
)
#: Options this release does not carry out yet: asking for them is an error, never a silent no-op.
UNAVAILABLE_OPTIONS: dict[str, str] = {}
#: PS3.16 CID 7050 De-identification Method codes (scheme DCM), by option.
CID_7050 = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean-pixel-data": ("113101", "Clean Pixel Data Option"),
    "clean-recognizable-visual-features": ("113102", "Clean Recognizable Visual Features Option"),
    "clean-graphics": ("113103", "Clean Graphics Option"),
    "clean-structured-content": ("113104", "Clean Structured Content Option"),
    "clean-descriptors": ("113105", "Clean Descriptors Option"),
    "retain-long-full-dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain-long-modified-dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain-patient-characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain-device-identity": ("113109", "Retain Device Identity Option"),
    "retain-uids": ("113110", "Retain UIDs Option"),
    "retain-safe-private": ("113111", "Retain Safe Private Option"),
    "retain-institution-identity": ("113112", "Retain Institution Identity Option"),
}
BUILTIN_PROFILES = ("basic", "tcia-private", "strict")
COMPOUND = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
#: Attributes whose value becomes a keyed pseudonym rather than the table's empty or dummy value.
PSEUDONYMISED = {0x00100010: "Patient's Name", 0x00100020: "Patient ID"}
#: Identifiers of a specimen and of its container (a slide), whose dummy (action D) is a keyed
#: pseudonym of the value itself, by purpose: the instances of one whole slide keep one identifier
#: between them, two slides keep two (a constant dummy would merge every slide of a release).
SPECIMEN_PSEUDONYMS = {0x00400512: "container", 0x00400551: "specimen"}
#: Attributes the standard's table does not name, with the rule medcloak gives them (Basic Profile
#: code, option codes), used only while the table stays silent on them. Specimen Localization
#: Content Item Sequence holds content items of free text (TID 8004: where the specimen lies, its
#: visual marking), like its sibling Specimen Preparation Sequence (Z, C under Clean Structured
#: Content); it may be Type 1C, so its items stay, their text replaced by dummies (D).
EXTENSIONS: dict[int, tuple[str, str, dict[str, str]]] = {
    0x00400620: ("Specimen Localization Content Item Sequence", "D", {"clean-structured-content": "C"}),
}
#: What the de-identification document says of the strict profile's allow-list.
STRICT_DOC = (
    "strict: every standard attribute outside the object's IOD modules (PS3.3: mandatory, conditional, "
    "and the optional ones that display the pixels) removed unless an option or site override keeps it; "
    "private attributes removed unless a site private list keeps them; then the Basic Profile"
)
CURVE, OVERLAY_DATA, OVERLAY_COMMENTS = "50xxxxxx", "60xx3000", "60xx4000"


@dataclass(frozen=True, slots=True)
class Action:
    """What to do to one attribute: ``code`` is one of X Z D K C U P (pseudonym), R (replace
    with ``value``), E (regex-clean with ``pattern``)."""

    code: str
    source: str
    value: str | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class PrivateBlockRule:
    creator: str
    group: int
    offsets: frozenset[int] | None  # None: every element of the block


@dataclass
class Profile:
    """The effective rules of a run. Build with :func:`load_profile`."""

    name: str
    options: tuple[str, ...]
    release: str
    exact: dict[int, Action]
    curve: Action
    overlay_data: Action
    overlay_comments: Action
    private: Action
    names: dict[int, str]
    safe_private: frozenset[tuple[str, int, int]]
    private_keep: tuple[PrivateBlockRule, ...] = ()
    private_remove: tuple[PrivateBlockRule, ...] = ()
    overrides_digest: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the strict profile: only what the object's IOD needs is kept (:mod:`medcloak.rules.strict`)
    strict: bool = False
    #: (tag, VR, sequence mode) triples known to be kept as they are: a cache, filled as objects
    #: are walked, so a kept element costs one set lookup
    kept_as_is: set[tuple[int, str | None, int]] = field(default_factory=set, repr=False, compare=False)

    def has(self, option: str) -> bool:
        return option in self.options

    def resolve(self, tag: int) -> Action | None:
        """The action for a standard (even group) tag, or ``None`` when the table is silent."""
        action = self.exact.get(tag)
        if action is not None:
            return action
        group = tag >> 16
        if group & 0xFF00 == 0x5000 and group % 2 == 0:
            return self.curve
        if group & 0xFF00 == 0x6000 and group % 2 == 0:
            element = tag & 0xFFFF
            if element == 0x3000:
                return self.overlay_data
            if element == 0x4000:
                return self.overlay_comments
        return None

    def keep_private(self, creator: str, group: int, element: int) -> bool:
        """Is private element (group, element) of the block owned by ``creator`` kept?"""
        offset = element & 0xFF
        for rule in self.private_remove:
            if _block_match(rule, creator, group, offset):
                return False
        for rule in self.private_keep:
            if _block_match(rule, creator, group, offset):
                return True
        if not self.has("retain-safe-private"):
            return False
        return (creator, group, offset) in self.safe_private

    def method_codes(self, pixels_cleaned: bool = True, faces_cleaned: bool = True) -> list[tuple[str, str]]:
        """CID 7050 codes of the profile; the Clean Pixel Data code only for an object whose
        pixels were redacted (``pixels_cleaned``), the Clean Recognizable Visual Features code only
        for one that was defaced (``faces_cleaned``)."""
        skip = set()
        if not pixels_cleaned:
            skip.add("clean-pixel-data")
        if not faces_cleaned:
            skip.add("clean-recognizable-visual-features")
        codes = [CID_7050["basic"]]
        codes += [CID_7050[o] for o in OPTIONS if o in self.options and o not in skip]
        return codes

    def describe(self) -> dict[str, Any]:
        """The de-identification documentation carried at the release root."""
        return {
            "profile": self.name,
            "standard": "DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile",
            "standard_release": self.release,
            "options": list(self.options),
            "method_codes": [{"code": c, "scheme": "DCM", "meaning": m} for c, m in self.method_codes()],
            "site_overrides_sha256": self.overrides_digest,
            "site_overrides": self.overrides,
            **({"allow_list": STRICT_DOC} if self.strict else {}),
        }

    def rows(self) -> Iterable[tuple[str, str, Action]]:
        """Every explicit rule as (tag text, name, action), for ``medcloak profile show``."""
        for tag in sorted(self.exact):
            yield f"({tag >> 16:04X},{tag & 0xFFFF:04X})", self.names.get(tag, ""), self.exact[tag]
        yield "(50xx,xxxx)", "Curve Data", self.curve
        yield "(60xx,3000)", "Overlay Data", self.overlay_data
        yield "(60xx,4000)", "Overlay Comments", self.overlay_comments
        yield "(gggg,eeee) odd", "Private Attributes", self.private
        # medcloak's rule for free text of no row (see medcloak.rules.actions), kept private text too
        yield "(gggg,eeee) other", "Free text the table does not name (LT ST UT LO SH UC)", Action("C", "medcloak")


def _block_match(rule: PrivateBlockRule, creator: str, group: int, offset: int) -> bool:
    return (
        rule.group == group
        and rule.creator == creator
        and (rule.offsets is None or offset in rule.offsets)
    )


@lru_cache(maxsize=None)
def rule_data(name: str) -> dict[str, Any]:
    """One generated rule data file, parsed once."""
    text = resources.files("medcloak.rules").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _resolve_code(basic: str, opts: Mapping[str, str], chosen: tuple[str, ...]) -> tuple[str, str]:
    applied = {opts[o] for o in chosen if o in opts}
    if "K" in applied:
        source = next(o for o in chosen if opts.get(o) == "K")
        return "K", source
    if "C" in applied:
        source = next(o for o in chosen if opts.get(o) == "C")
        return "C", source
    return COMPOUND.get(basic, basic), "basic"


def _check_options(options: Iterable[str]) -> tuple[str, ...]:
    chosen = []
    for option in options:
        if option not in OPTIONS:
            raise ProfileError(f"unknown option {option!r}; known: {', '.join(OPTIONS)}")
        if option in UNAVAILABLE_OPTIONS:
            raise ProfileError(
                f"option {option!r} needs {UNAVAILABLE_OPTIONS[option]}, which this release of "
                "medcloak does not carry out; objects that need it are quarantined instead"
            )
        if option not in chosen:
            chosen.append(option)
    if "retain-long-full-dates" in chosen and "retain-long-modified-dates" in chosen:
        raise ProfileError("retain-long-full-dates and retain-long-modified-dates exclude each other")
    return tuple(o for o in OPTIONS if o in chosen)


def profile_from_document(doc: Mapping[str, Any]) -> Profile:
    """The profile a release was made with, from its ``DEIDENTIFICATION.json``."""
    name = doc.get("profile")
    site = doc.get("site_overrides") or {}
    options = [o for o in doc.get("options", []) if o not in site.get("options", [])]
    if site:
        return load_profile(None, options, overrides=dict(site), name=str(name), digest=doc.get("site_overrides_sha256"))
    return load_profile(name if name in BUILTIN_PROFILES else None, options)


def load_profile(
    profile: str | Path | None = None,
    options: Iterable[str] = (),
    *,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    digest: str | None = None,
) -> Profile:
    """Build the effective profile.

    Parameters
    ----------
    profile
        ``None`` or ``"basic"`` for the standard alone; ``"tcia-private"`` to add TCIA's vetted
        private tag list to the safe private attributes; ``"strict"`` for the IOD allow-list
        before the standard (:mod:`medcloak.rules.strict`); or the path of a site override TOML
        file (``strict = true`` in it for the allow-list).
    options
        Option names of the command-line contract (see :data:`OPTIONS`).
    """
    extra_lists: list[str] = []
    strict = False
    if overrides is not None:
        name = name or str(overrides.get("name", "site"))
    else:
        overrides = {}
        name = "basic"
    if profile is not None and str(profile) not in BUILTIN_PROFILES:
        path = Path(profile)
        if path.suffix != ".toml":
            raise ProfileError(
                f"profile must be one of {', '.join(BUILTIN_PROFILES)} or a .toml file"
            )
        try:
            raw = path.read_bytes()
            overrides = tomllib.loads(raw.decode("utf-8"))
        except OSError as exc:
            raise ProfileError(f"cannot read profile file: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"profile file is not valid TOML: {exc}") from None
        import hashlib

        digest = hashlib.sha256(raw).hexdigest()
        name = str(overrides.get("name", path.stem))
    elif profile is not None:
        name = str(profile)
        if name == "tcia-private":
            extra_lists.append("tcia")
        strict = name == "strict"

    from .overrides import parse_overrides

    site = parse_overrides(overrides)
    strict = strict or site.strict
    chosen = _check_options([*site.options, *options])
    extra_lists += site.lists
    if extra_lists and "retain-safe-private" not in chosen:
        chosen = _check_options([*chosen, "retain-safe-private"])

    table = rule_data("ps315_e1_1.json")
    exact: dict[int, Action] = {}
    names: dict[int, str] = {}
    patterns: dict[str, Action] = {}
    for row in table["attributes"]:
        code, source = _resolve_code(row["basic"], row["options"], chosen)
        action = Action(code, source)
        if "x" in row["tag"]:
            patterns[row["tag"]] = action
            continue
        tag = int(row["tag"], 16)
        if (tag in PSEUDONYMISED or tag in SPECIMEN_PSEUDONYMS) and code in ("Z", "D"):
            action = Action("P", "keyed pseudonym")
        exact[tag] = action
        names[tag] = row["name"]
    for tag, (ext_name, basic, opts) in EXTENSIONS.items():
        if tag not in exact:
            code, source = _resolve_code(basic, opts, chosen)
            exact[tag] = Action(code, "medcloak" if source == "basic" else source)
            names[tag] = ext_name
    priv_row = table["private"]
    private = Action(*_resolve_code(priv_row["basic"], priv_row["options"], chosen))

    for tag, action in site.attributes.items():
        exact[tag] = action
        names.setdefault(tag, site.names.get(tag, ""))

    safe = {(e["creator"], int(e["group"], 16), int(e["offset"], 16)) for e in rule_data("ps315_e3_10.json")["elements"]}
    if "tcia" in extra_lists:
        safe |= {
            (e["creator"], int(e["group"], 16), int(e["offset"], 16))
            for e in rule_data("tcia_private.json")["elements"]
        }
    return Profile(
        name=name,
        options=chosen,
        release=table["release"],
        exact=exact,
        curve=patterns[CURVE],
        overlay_data=patterns[OVERLAY_DATA],
        overlay_comments=patterns[OVERLAY_COMMENTS],
        private=private,
        names=names,
        safe_private=frozenset(safe),
        private_keep=site.private_keep,
        private_remove=site.private_remove,
        overrides_digest=digest,
        overrides=overrides,
        strict=strict,
    )


TAG_TEXT = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$")
