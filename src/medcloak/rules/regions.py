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

The same file may hold ``[[slide_region]]`` tables for TIFF-family whole-slide images, matched on
what a slide has instead of a header: its vendor and its level-0 size. A slide's size varies with
the scanned area, so its boxes are fractions of level 0's width and height (mapped to every level
by :mod:`medcloak.formats.slide_redact`)::

    [[slide_region]]
    name = "GT450 slides, sticker at the top left"
    where = { vendor = "aperio", width = [46000, 46920], height = { min = 32000, max = 33000 } }
    boxes = [[0.0, 0.0, 0.25, 0.1]]     # x0, y0, x1, y1 as fractions of level 0, 0 <= x0 < x1 <= 1
    fill = "white"

``vendor`` is one of the names the slide handler gives (``aperio``, ``hamamatsu``, ``generic``,
...), or a list of them; ``width`` and ``height`` are whole pixels, an inclusive range
``{ min = .., max = .. }`` (either bound may be left out), or a list of such alternatives.
:func:`parse_regions` returns both kinds in one list (the run hands it to every handler);
:func:`dicom_templates` and :func:`slide_templates` pick out each, and the DICOM functions here
ignore slide templates.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ProfileError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Box = tuple[int, int, int, int]
FILLS = ("black", "grey", "white")
#: slide kinds a ``[[slide_region]]`` may name (those :func:`medcloak.formats.slide_tiff.sniff_slide` gives)
SLIDE_VENDORS = ("aperio", "hamamatsu", "generic", "philips", "ventana", "ome", "qptiff", "leica")
#: a slide's size predicate: inclusive ranges of whole pixels, any of which may hold (None: unbounded)
SizeRanges = tuple[tuple[int | None, int | None], ...]


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


@dataclass(frozen=True)
class SlideRegionTemplate:
    """A ``[[slide_region]]``: boxes as fractions of level 0 (x0, y0, x1, y1), for slides whose
    vendor is one of ``vendors`` (any when empty) and whose level-0 size is in ``width`` and
    ``height`` (any when empty)."""

    name: str
    vendors: tuple[str, ...]
    width: SizeRanges
    height: SizeRanges
    boxes: tuple[tuple[float, float, float, float], ...]
    fill: str = "black"

    def matches(self, vendor: str, width: int, height: int) -> bool:
        return ((not self.vendors or vendor in self.vendors)
                and _in_ranges(width, self.width) and _in_ranges(height, self.height))

    def boxes_for(self, width: int, height: int) -> list[Box]:
        """The boxes in level-0 pixels, rounded outward (ends exclusive)."""
        out = []
        for x0, y0, x1, y1 in self.boxes:
            a, b = min(width - 1, math.floor(x0 * width)), min(height - 1, math.floor(y0 * height))
            out.append((a, b, max(a + 1, min(width, math.ceil(x1 * width))), max(b + 1, min(height, math.ceil(y1 * height)))))
        return out


Template = RegionTemplate | SlideRegionTemplate


def _in_ranges(value: int, ranges: SizeRanges) -> bool:
    return not ranges or any((lo is None or value >= lo) and (hi is None or value <= hi) for lo, hi in ranges)


def dicom_templates(templates: Iterable[Template]) -> list[RegionTemplate]:
    """The ``[[region]]`` templates of a parsed file."""
    return [t for t in templates if isinstance(t, RegionTemplate)]


def slide_templates(templates: Iterable[Template]) -> list[SlideRegionTemplate]:
    """The ``[[slide_region]]`` templates of a parsed file."""
    return [t for t in templates if isinstance(t, SlideRegionTemplate)]


def select_slide(vendor: str, width: int, height: int,
                 templates: Iterable[SlideRegionTemplate]) -> tuple[list[Box], list[str], str]:
    """(boxes in level-0 pixels, names of the matching templates, fill of the first match) for a
    slide of ``vendor`` whose level 0 is ``width`` x ``height``."""
    boxes: list[Box] = []
    names: list[str] = []
    fill = "black"
    for t in slide_templates(templates):
        if t.matches(vendor, width, height):
            if not names:
                fill = t.fill
            names.append(t.name)
            boxes += t.boxes_for(width, height)
    return boxes, names, fill


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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fraction_box(value: Any, where: str) -> tuple[float, float, float, float]:
    if not (isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value)):
        raise ProfileError(f"{where}: a slide box is [x0, y0, x1, y1] in fractions of level 0's width and height")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ProfileError(f"{where}: a slide box needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (fractions of level 0)")
    return x0, y0, x1, y1


def _size_ranges(key: str, value: Any, where: str) -> SizeRanges:
    alternatives = value if isinstance(value, list) else [value]
    if not alternatives:
        raise ProfileError(f"{where}: {key} is an empty list")
    out: list[tuple[int | None, int | None]] = []
    for alt in alternatives:
        if isinstance(alt, int) and not isinstance(alt, bool) and alt > 0:
            out.append((alt, alt))
        elif isinstance(alt, dict) and alt and not set(alt) - {"min", "max"}:
            lo, hi = alt.get("min"), alt.get("max")
            if not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0) for v in (lo, hi)):
                raise ProfileError(f"{where}: {key}'s min and max are whole pixels")
            if lo is not None and hi is not None and lo > hi:
                raise ProfileError(f"{where}: {key}'s min is above its max")
            out.append((lo, hi))
        else:
            raise ProfileError(f"{where}: {key} is whole pixels, a range {{ min = .., max = .. }}, or a list of them")
    return tuple(out)


def _parse_slide_region(i: int, entry: Any, source: str) -> SlideRegionTemplate:
    where_at = f"{source}: slide_region {i + 1}"
    if not isinstance(entry, dict):
        raise ProfileError(f"{where_at}: not a table")
    extra = set(entry) - {"name", "where", "boxes", "fill"}
    if extra:
        raise ProfileError(f"{where_at}: unknown key {min(extra)!r}")
    where = entry.get("where", {})
    if not isinstance(where, dict) or not where:
        raise ProfileError(f"{where_at}: 'where' must name vendor, width or height (a template for every slide is a mistake)")
    unknown = set(where) - {"vendor", "width", "height"}
    if unknown:
        raise ProfileError(f"{where_at}: {min(unknown)!r} is not a slide predicate (vendor, width, height)")
    vendors: tuple[str, ...] = ()
    if "vendor" in where:
        values = where["vendor"] if isinstance(where["vendor"], list) else [where["vendor"]]
        if not values or not all(isinstance(v, str) for v in values):
            raise ProfileError(f"{where_at}: vendor must be a name or a list of names")
        for v in values:
            if v.lower() not in SLIDE_VENDORS:
                raise ProfileError(f"{where_at}: vendor {v!r} is not one of {', '.join(SLIDE_VENDORS)}")
        vendors = tuple(v.lower() for v in values)
    width = _size_ranges("width", where["width"], where_at) if "width" in where else ()
    height = _size_ranges("height", where["height"], where_at) if "height" in where else ()
    boxes = entry.get("boxes", [])
    if not isinstance(boxes, list) or not boxes:
        raise ProfileError(f"{where_at}: no boxes: nothing to redact")
    fill = entry.get("fill", "black")
    if fill not in FILLS:
        raise ProfileError(f"{where_at}: fill must be one of {', '.join(FILLS)}")
    return SlideRegionTemplate(str(entry.get("name", f"slide_region {i + 1}")), vendors, width, height,
                               tuple(_fraction_box(b, where_at) for b in boxes), fill)


def parse_regions(doc: dict[str, Any], source: str = "regions") -> list[Template]:
    """The templates of a region file: its ``[[region]]`` tables, then its ``[[slide_region]]``
    tables. Raises :class:`ProfileError` on anything it does not understand."""
    unknown = set(doc) - {"region", "slide_region"}
    if unknown:
        raise ProfileError(f"{source}: unknown table {sorted(unknown)[0]!r} (expected [[region]] or [[slide_region]])")
    for table in ("region", "slide_region"):
        if not isinstance(doc.get(table, []), list):
            raise ProfileError(f"{source}: {table} must be an array of tables ([[{table}]])")
    out: list[Template] = []
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
    out += [_parse_slide_region(i, entry, source) for i, entry in enumerate(doc.get("slide_region", []))]
    if not out:
        raise ProfileError(f"{source}: no [[region]] or [[slide_region]] templates")
    return out


def load_regions(path: str | Path) -> list[Template]:
    from .site_file import read_site_toml

    return parse_regions(read_site_toml(path, "the region template file"), Path(path).name)


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


def select(ds: Dataset, templates: list[Template]) -> tuple[list[Box], list[str], str]:
    """(boxes, names of the matching templates, fill of the first match) for ``ds`` (slide
    templates are left out)."""
    boxes: list[Box] = []
    names: list[str] = []
    fill = "black"
    for t in dicom_templates(templates):
        if t.matches(ds):
            if not names:
                fill = t.fill
            names.append(t.name)
            boxes += t.boxes_for(ds)
    return boxes, names, fill


def blanks_whole_image(ds: Dataset, templates: list[Template]) -> bool:
    """Whether a matching ``outside_ultrasound_regions`` template finds no usable ultrasound
    region in ``ds`` (none, or only incomplete ones or ones outside the image), so that it
    redacts the whole image."""
    outside = any(t.outside_ultrasound_regions and t.matches(ds) for t in dicom_templates(templates))
    return outside and not ultrasound_regions(ds)
