"""Regenerate ``rules/data/ps33_allow.json``, the strict profile's allow-list, from PS3.3's tables.

Usage::

    python -m medcloak.rules.generate_strict [SOURCE_FILE] [--check]
    python -m medcloak.rules.generate_strict --extract HIGHDICOM_STANDARD_DIR

The source is ``rules/data/source/ps33_iod_modules.json`` (see that folder's SOURCES.md): for the
IODs medcloak handles, PS3.3's facts in machine-readable form: which SOP Class is of which IOD,
which modules each IOD has with their usage (M, C, U), and, per module, its attributes with their
Type, top level and inside each of its sequences. ``--extract`` makes that file from the tables
a highdicom wheel carries (its ``_standard`` folder).

What this module decides, and the standard does not, is which modules the strict profile keeps
(:data:`KEPT_USAGES`, :data:`KEPT_OPTIONAL`): every mandatory and every conditional module (a
conditional module is present only when its condition holds, and then it is required), and of the
user-optional ones only those needed to display the pixels and measure on them (:data:`KEPT_OPTIONAL`).
Everything else (Patient Study, Clinical Trial, Device, Specimen outside slides, acquisition
technique, overlays, references, waveform annotation...) is left off the list. It also says which
SOP Class families are in scope (:data:`FAMILIES`) and maps three retired SOP Classes that objects
still use to the IOD that replaced them (:data:`RETIRED`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ProfileError, UsageError

SOURCE_NAME = "ps33_iod_modules.json"
DATA_NAME = "ps33_allow.json"
DATA_DIR = Path(__file__).with_name("data")
SOURCE_FILE = DATA_DIR / "source" / SOURCE_NAME
PROG = "python -m medcloak.rules.generate_strict"

#: SOP Class families in scope, by the IODs of PS3.3 that make them up.
FAMILIES: dict[str, tuple[str, ...]] = {
    "CT": ("ct-image", "enhanced-ct-image", "legacy-converted-enhanced-ct-image"),
    "MR": ("mr-image", "enhanced-mr-image", "enhanced-mr-color-image", "legacy-converted-enhanced-mr-image"),
    "PET": ("positron-emission-tomography-image", "enhanced-pet-image", "legacy-converted-enhanced-pet-image"),
    "US": ("ultrasound-image", "ultrasound-multi-frame-image", "enhanced-us-volume"),
    "CR/DX/MG/IO": (
        "computed-radiography-image", "digital-x-ray-image", "digital-mammography-x-ray-image",
        "digital-intra-oral-x-ray-image", "breast-tomosynthesis-image", "breast-projection-x-ray-image",
    ),
    "SC": (
        "secondary-capture-image", "multi-frame-single-bit-secondary-capture-image",
        "multi-frame-grayscale-byte-secondary-capture-image", "multi-frame-grayscale-word-secondary-capture-image",
        "multi-frame-true-color-secondary-capture-image",
    ),
    "XA/RF": (
        "x-ray-angiographic-image", "x-ray-radiofluoroscopic-image", "enhanced-xa-image", "enhanced-xrf-image",
        "x-ray-3d-angiographic-image",
    ),
    "NM": ("nuclear-medicine-image",),
    "SR": (
        "basic-text-sr", "enhanced-sr", "comprehensive-sr", "comprehensive-3d-sr", "extensible-sr",
        "key-object-selection-document", "x-ray-radiation-dose-sr", "enhanced-x-ray-radiation-dose-sr",
        "radiopharmaceutical-radiation-dose-sr", "patient-radiation-dose-sr", "mammography-cad-sr",
        "chest-cad-sr", "colon-cad-sr",
    ),
    "encapsulated document": (
        "encapsulated-pdf", "encapsulated-cda", "encapsulated-stl", "encapsulated-obj", "encapsulated-mtl",
    ),
    "VL/WSI": (
        "vl-whole-slide-microscopy-image", "vl-photographic-image", "vl-endoscopic-image",
        "vl-microscopic-image", "vl-slide-coordinates-microscopic-image",
    ),
    "segmentation": ("segmentation",),
    "RT": ("rt-image", "rt-dose", "rt-structure-set", "rt-plan", "rt-ion-plan"),
    "waveform": ("12-lead-ecg", "general-ecg", "ambulatory-ecg", "general-32-bit-ecg", "hemodynamic-waveform"),
}
#: Retired SOP Classes still met in archives -> the IOD that replaced them (medcloak's mapping).
RETIRED = {
    "1.2.840.10008.5.1.4.1.1.3": "ultrasound-multi-frame-image",
    "1.2.840.10008.5.1.4.1.1.5": "nuclear-medicine-image",
    "1.2.840.10008.5.1.4.1.1.6": "ultrasound-image",
}
#: Sequences whose items PS3.3 defines recursively in prose, which the tables cannot carry: the
#: items of an SR document's Content Sequence hold the Document Relationship and Document Content
#: Macros again (PS3.3 C.17.3), that is every attribute of the module's root content item, a
#: Content Sequence among them. module -> sequence keyword.
RECURSIVE = {"sr-document-content": "ContentSequence"}
#: Attributes kept in every object whatever its IOD says, because the pixels cannot be read or
#: mean something else without them: an object of a single-frame IOD that carries several frames
#: all the same (seen in ultrasound and secondary capture) keeps its Number of Frames and Frame
#: Increment Pointer; an MR image (whose IOD has no Modality LUT module) keeps the rescale that
#: turns its stored values into the scanner's, and any image the window it is to be shown in.
#: Numbers and defined terms only.
ALWAYS = {
    "NumberOfFrames": "1C", "FrameIncrementPointer": "1C", "RescaleIntercept": "3", "RescaleSlope": "3",
    "RescaleType": "3", "WindowCenter": "3", "WindowWidth": "3", "VOILUTFunction": "3",
}
#: Module usages kept whole: mandatory, and conditional (present only where required).
KEPT_USAGES = ("M", "C")
#: User-optional modules kept all the same: what displays the pixels (LUTs, colour, orientation,
#: multi-frame layout, shutters) and what measuring on them needs (planes, calibration, frames of
#: reference). The modules of an IOD in this list are kept whatever their usage there.
KEPT_OPTIONAL = (
    "display-shutter", "enhanced-palette-color-lookup-table", "enhanced-patient-orientation",
    "frame-of-reference", "frame-pointers", "icc-profile", "image-plane", "modality-lut",
    "multi-frame-dimension", "multi-resolution-pyramid", "optical-path", "palette-color-lookup-table",
    "patient-orientation", "sc-image", "supplemental-palette-color-lookup-table",
    "us-region-calibration", "voi-lut", "general-equipment", "enhanced-general-equipment",
    "general-acquisition", "dx-detector", "dx-positioning",
)


def extract(standard_dir: Path) -> dict[str, Any]:
    """The source table, from the three maps of highdicom's ``_standard`` folder: only the IODs
    of :data:`FAMILIES` and their modules; a module's attributes as its top-level ones and, per
    sequence keyword, the attributes of that sequence's items (paths through macros folded)."""
    sop_map = json.loads((standard_dir / "sop_class_iod_map.json").read_text(encoding="utf-8"))
    iod_map = json.loads((standard_dir / "iod_module_map.json").read_text(encoding="utf-8"))
    module_map = json.loads((standard_dir / "module_attribute_map.json").read_text(encoding="utf-8"))
    wanted = {iod for iods in FAMILIES.values() for iod in iods}
    missing = sorted(wanted - set(iod_map))
    if missing:
        raise ProfileError(f"IODs missing from the tables: {', '.join(missing)}")
    iods = {iod: [[m["key"], m["usage"]] for m in iod_map[iod]] for iod in sorted(wanted)}
    modules: dict[str, Any] = {}
    for key in sorted({m for rows in iods.values() for m, _ in rows}):
        if key not in module_map:
            raise ProfileError(f"module {key} of the IOD table is missing from the module table")
        top: dict[str, str] = {}
        items: dict[str, dict[str, str]] = defaultdict(dict)
        for row in module_map[key]:
            target = items[row["path"][-1]] if row["path"] else top
            # the same attribute reached by two paths: the stricter Type is recorded
            old = target.get(row["keyword"])
            target[row["keyword"]] = row["type"] if old is None else min(old, row["type"])
        modules[key] = {"attributes": dict(sorted(top.items())),
                        "items": {s: dict(sorted(v.items())) for s, v in sorted(items.items())}}
    return {
        "sop_classes": {uid: iod for uid, iod in sorted(sop_map.items()) if iod in wanted},
        "iods": iods,
        "modules": modules,
    }


def build(source: dict[str, Any]) -> dict[str, Any]:
    """The allow-list data: per IOD its family, SOP Classes and kept modules; the kept modules'
    attributes."""
    iods: dict[str, Any] = {}
    used: set[str] = set()
    for family, names in FAMILIES.items():
        for iod in names:
            rows = source["iods"][iod]
            kept = [m for m, usage in rows if usage in KEPT_USAGES or m in KEPT_OPTIONAL]
            if not kept:
                raise ProfileError(f"IOD {iod} has no module in the tables")
            used.update(kept)
            iods[iod] = {"family": family, "modules": kept,
                         "left_off": [m for m, _ in rows if m not in kept]}
    sop_classes = dict(source["sop_classes"])
    for uid, iod in RETIRED.items():
        sop_classes.setdefault(uid, iod)
    for uid, iod in sop_classes.items():
        if iod not in iods:
            raise ProfileError(f"SOP Class {uid} names IOD {iod}, which is not in scope")
    modules = {k: source["modules"][k] for k in sorted(used)}
    for key, seq in RECURSIVE.items():
        if key in modules:
            module = modules[key]
            children = {**module["attributes"], **module["items"].get(seq, {})}
            children[seq] = "1C"
            modules[key] = {**module, "items": {**module["items"], seq: dict(sorted(children.items()))}}
    return {
        "about": "PS3.3 IOD modules kept by medcloak's strict profile (generated by " + PROG + ")",
        "always": dict(ALWAYS),
        "kept_usages": list(KEPT_USAGES),
        "kept_optional": sorted(KEPT_OPTIONAL),
        "sop_classes": dict(sorted(sop_classes.items())),
        "iods": dict(sorted(iods.items())),
        "modules": modules,
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=0, sort_keys=True, separators=(",", ":")) + "\n"


def load_source(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path.name} is missing") from None
    except OSError as exc:
        raise ProfileError(f"cannot read {path.name}: {exc.strerror}") from None
    except ValueError as exc:
        raise ProfileError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"sop_classes", "iods", "modules"}:
        raise ProfileError(f"{path.name} must hold sop_classes, iods and modules")
    return data


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or ``--check``, or ``--extract``); 0 done, 1 stale (``--check``), 2 error."""
    parser = _Parser(prog=PROG, description="Regenerate the strict profile's allow-list from PS3.3's tables.")
    parser.add_argument("source", type=Path, nargs="?", default=SOURCE_FILE,
                        help="the source table (default: the copy in the repository)")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--extract", type=Path, metavar="DIR",
                        help="write the source table from highdicom's _standard folder instead")
    try:
        args = parser.parse_args(argv)
        if args.extract is not None:
            text = json.dumps(extract(args.extract), indent=0, sort_keys=True, separators=(",", ":")) + "\n"
            SOURCE_FILE.write_text(text, encoding="utf-8")
            return 0
        text = render(build(load_source(args.source)))
        target = DATA_DIR / DATA_NAME
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                print(f"out of date: {DATA_NAME}", file=sys.stderr)
                return 1
            return 0
        target.write_text(text, encoding="utf-8")
    except (UsageError, ProfileError, KeyError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
