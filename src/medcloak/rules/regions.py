"""Region templates: where burned-in text sits, by header predicates, for the Clean Pixel Data
option (in the spirit of the pixel scripts of RSNA CTP and pydicom/deid, in a file of its own).

A TOML file of ``[[region]]`` tables::

    [[region]]
    name = "vendor X ultrasound, patient banner"
    where = { Modality = "US", Manufacturer = "VENDOR X*", Rows = 600, Columns = [800, 1024] }
    boxes = [[0, 0, 1024, 56]]          # x0, y0, x1, y1 in pixels, ends exclusive
    fill = "black"                      # black (default), grey or white

    [[region]]
    name = "everything outside the ultrasound regions"
    where = { Modality = "US" }
    outside_ultrasound_regions = true   # opt-in: redact all but the Sequence of Ultrasound Regions

A predicate names a DICOM keyword and a value, or a list of alternatives; text compares without
regard to case and may use ``*`` and ``?``; numbers compare as numbers. Every predicate of a
template must hold. All matching templates apply, the union of their boxes is redacted. An
``outside_ultrasound_regions`` template on an image with no usable region redacts the whole image
(:func:`blanks_whole_image`; the run records and logs it).
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ProfileError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Box = tuple[int, int, int, int]
FILLS = ("black", "grey", "white")


@dataclass(frozen=True)
class RegionTemplate:
    name: str
    where: tuple[tuple[str, tuple[str, ...]], ...]
    boxes: tuple[Box, ...]
    outside_ultrasound_regions: bool = False
    fill: str = "black"

    def matches(self, ds: Dataset) -> bool:
        for keyword, alternatives in self.where:
            value = ds.get(keyword)
            if value is None or value == "":
                return False
            text = (str(value) if not isinstance(value, bytes) else value.decode("latin-1")).strip().upper()
            if not any(_same(text, alt) for alt in alternatives):
                return False
        return True

    def boxes_for(self, ds: Dataset) -> list[Box]:
        boxes = list(self.boxes)
        if self.outside_ultrasound_regions:
            boxes += outside_regions(ds)
        return boxes


def _same(text: str, pattern: str) -> bool:
    try:
        return float(text) == float(pattern)
    except ValueError:
        return fnmatch.fnmatchcase(text, pattern.upper())


def _box(value: Any, where: str) -> Box:
    if not (isinstance(value, list) and len(value) == 4 and all(isinstance(v, int) for v in value)):
        raise ProfileError(f"{where}: a box is [x0, y0, x1, y1] in whole pixels")
    x0, y0, x1, y1 = value
    if x0 < 0 or y0 < 0 or x1 <= x0 or y1 <= y0:
        raise ProfileError(f"{where}: a box needs 0 <= x0 < x1 and 0 <= y0 < y1 (ends exclusive)")
    return x0, y0, x1, y1


def parse_regions(doc: dict[str, Any], source: str = "regions") -> list[RegionTemplate]:
    unknown = set(doc) - {"region"}
    if unknown:
        raise ProfileError(f"{source}: unknown table {sorted(unknown)[0]!r} (expected [[region]])")
    out = []
    for i, entry in enumerate(doc.get("region", [])):
        where_at = f"{source}: region {i + 1}"
        if not isinstance(entry, dict):
            raise ProfileError(f"{where_at}: not a table")
        extra = set(entry) - {"name", "where", "boxes", "outside_ultrasound_regions", "fill"}
        if extra:
            raise ProfileError(f"{where_at}: unknown key {sorted(extra)[0]!r}")
        where = entry.get("where", {})
        if not isinstance(where, dict) or not where:
            raise ProfileError(f"{where_at}: 'where' must name at least one attribute (a template for every image is a mistake)")
        from pydicom.datadict import tag_for_keyword

        preds = []
        for keyword, value in sorted(where.items()):
            if tag_for_keyword(keyword) is None:
                raise ProfileError(f"{where_at}: {keyword!r} is not a DICOM keyword")
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
                raise ProfileError(f"{where_at}: {keyword} must be text, a number, or a list of them")
            preds.append((keyword, tuple(str(v) for v in values)))
        boxes = tuple(_box(b, where_at) for b in entry.get("boxes", []))
        outside = entry.get("outside_ultrasound_regions", False)
        if not isinstance(outside, bool):
            raise ProfileError(f"{where_at}: outside_ultrasound_regions is true or false")
        if not boxes and not outside:
            raise ProfileError(f"{where_at}: no boxes and not outside_ultrasound_regions: nothing to redact")
        fill = entry.get("fill", "black")
        if fill not in FILLS:
            raise ProfileError(f"{where_at}: fill must be one of {', '.join(FILLS)}")
        out.append(RegionTemplate(str(entry.get("name", f"region {i + 1}")), tuple(preds), boxes, outside, fill))
    if not out:
        raise ProfileError(f"{source}: no [[region]] templates")
    return out


def load_regions(path: str | Path) -> list[RegionTemplate]:
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError:
        raise ProfileError("the region template file cannot be read") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"the region template file is not valid TOML: {exc}") from None
    return parse_regions(doc, p.name)


def ultrasound_regions(ds: Dataset) -> list[Box]:
    """The items of the Sequence of Ultrasound Regions as boxes (ends exclusive; the attributes'
    maxima are inclusive), clipped to the image; incomplete items and items outside the image
    are left out."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    keep = []
    for item in ds.get("SequenceOfUltrasoundRegions", []) or []:
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1
        except (AttributeError, TypeError, ValueError):
            continue  # an incomplete region protects nothing
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(cols, x1), min(rows, y1)
        if x0 < x1 and y0 < y1:
            keep.append((x0, y0, x1, y1))
    return keep


def outside_regions(ds: Dataset) -> list[Box]:
    """Boxes covering the image outside every item of the Sequence of Ultrasound Regions, as
    horizontal bands; the whole image when there is no region (:func:`blanks_whole_image`)."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        return []
    keep = ultrasound_regions(ds)
    edges = sorted({0, rows, *(y for k in keep for y in (k[1], k[3]))})
    boxes: list[Box] = []
    for top, bottom in zip(edges, edges[1:]):
        spans = sorted((k[0], k[2]) for k in keep if k[1] <= top and k[3] >= bottom)
        x = 0
        for a, b in spans:
            if a > x:
                boxes.append((x, top, a, bottom))
            x = max(x, b)
        if x < cols:
            boxes.append((x, top, cols, bottom))
    return boxes


def select(ds: Dataset, templates: list[RegionTemplate]) -> tuple[list[Box], list[str], str]:
    """(boxes, names of the matching templates, fill of the first match) for ``ds``."""
    boxes: list[Box] = []
    names: list[str] = []
    fill = "black"
    for t in templates:
        if t.matches(ds):
            if not names:
                fill = t.fill
            names.append(t.name)
            boxes += t.boxes_for(ds)
    return boxes, names, fill


def blanks_whole_image(ds: Dataset, templates: list[RegionTemplate]) -> bool:
    """Whether a matching ``outside_ultrasound_regions`` template finds no usable ultrasound
    region in ``ds`` (none, or only incomplete ones or ones outside the image), so that it
    redacts the whole image."""
    outside = any(t.outside_ultrasound_regions and t.matches(ds) for t in templates)
    return outside and not ultrasound_regions(ds)
