"""3DHISTECH MIRAX slides (``NAME.mrxs`` beside a folder ``NAME/`` holding ``Slidedat.ini``,
``Index.dat`` and the data files): the label, macro and preview images gone, ``Slidedat.ini``
rebuilt from an allow-list, every tile of every level copied byte for byte.

The layout is OpenSlide's description of it (openslide.org/formats/mirax). ``Slidedat.ini`` names
the hierarchical layers (``HIER_i``: the zoom levels first, then filter, focus and scan-info
layers) and the non-hierarchical ones (``NONHIER_i``: the scan data layer holding the slide's
photographs, the position buffers), each with its values (``..._VAL_j``) and their sections.
``Index.dat`` is ``01.02``, the slide's ID, then little-endian 32-bit integers: the offsets of a
table for the hierarchical values and one for the non-hierarchical ones, one record per value in
the order of ``Slidedat.ini``; a record points to a page of no items whose ``next`` is the first
data page; hierarchical pages hold items of (image, offset, length, file), non-hierarchical ones
one item of (0, 0, offset, length, file) (the page's ``next`` is not always 0 there, and is not
followed, as OpenSlide does not follow it). A record whose pointer is 0 (to the version string)
is a value without data, as scanners write an empty one.

What is decided here:

- **Kept**: every hierarchical record (the tiles of every level and layer) and the
  non-hierarchical position buffers (``VIMSLIDE_POSITION_BUFFER``, ``StitchingIntensityLayer``),
  which readers need to place the tiles and which hold numbers only.
- **Removed**: every other non-hierarchical value: the label (``ScanDataLayer_SlideBarcode``),
  the macro (``ScanDataLayer_SlideThumbnail``), the preview (``ScanDataLayer_SlidePreview``,
  OpenSlide's ``thumbnail``: a photograph of the glass whose extent nothing says, so it may show
  the label), the scan's XML information and anything else not known to be free of identifiers.
  Their values leave ``Slidedat.ini`` (layers renumbered, a layer left empty removed), their
  records leave ``Index.dat``, and their bytes in the data files are zeroed.
- **Bytes nothing kept points to** in a data file are zeroed too (unknown records, stray data).
- ``Index.dat`` is written anew from the kept records (one data page per record, a record
  without data pointing to 0 as it did);
  ``Slidedat.ini`` is written anew with only: ``SLIDE_VERSION``, ``SLIDE_ID`` (replaced by a keyed
  pseudonym, written into ``Index.dat`` too, since readers check that they agree), the grid, the
  objective's magnification, the layer and value structure (section and file names canonical),
  and in each level's section its geometry, format, fill colour and microns per pixel. Dates,
  names, project, operator, barcode, scanner, free text and unknown keys go.
- Data files are released as ``Data%04d.dat`` whatever their names were; the index file as
  ``Index.dat``.

Fail closed: a record pointing outside ``Index.dat`` or outside its data file, a page chain that
loops, a count or offset that is negative, a missing data file, an ``Index.dat`` whose ID is not
its ``Slidedat.ini``'s, a cut ``Index.dat``: :class:`CorruptInputError`. An index version other
than ``01.02``, a first hierarchical layer other than the zoom levels, a kept record of more than
one item: :class:`UnsupportedInputError`. Every check is made before anything is written; the
data files are then streamed (kept ranges copied, the rest left zero), never read whole.
``Slidedat.ini`` and ``Index.dat`` are read whole, their sizes first held against the per-object
ceiling (:mod:`medcloak.limits`); a page counts at most :data:`MAX_COUNT` items, each of which
is in ``Index.dat``.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .. import limits
from ..errors import CorruptInputError, UnsupportedInputError
from .slide_ifd import copy_range, merge_array_ranges

SLIDEDAT = "Slidedat.ini"
INDEX = "Index.dat"
INDEX_VERSION = b"01.02"
ZOOM = "Slide zoom level"
#: OpenSlide reads no larger Slidedat.ini
SLIDEDAT_MAX = 1 << 20
CHUNK = 8 << 20
#: non-hierarchical layers kept: the positions of the camera's fields (numbers only)
KEPT_NONHIER = ("VIMSLIDE_POSITION_BUFFER", "StitchingIntensityLayer")
#: what a removed non-hierarchical value was, for the manifest
REMOVED_KIND = {
    "ScanDataLayer_SlideBarcode": "label",
    "ScanDataLayer_SlideThumbnail": "macro",
    "ScanDataLayer_SlidePreview": "preview",
}
#: upper bound of any count in Slidedat.ini and of the items of a page (a garbled file stops here)
MAX_COUNT = 1 << 24

_NUMBER = re.compile(r"-?\d{1,12}(\.\d{1,17})?([eE][-+]?\d{1,3})?")
_VERSION = re.compile(r"\d{1,3}(\.\d{1,3}){0,3}")
_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _+.-]{0,23}")
_HIER_NAMES = ("Slide zoom level", "Slide filter level", "Microscope focus level", "Scan info layer")
_HIER_VAL = re.compile(r"(ZoomLevel|FilterLevel|FocusLevel|ScanInfoLayer)_\d{1,4}")
_PLAIN_FILE = re.compile(r"[A-Za-z0-9_. -]{1,255}")

#: GENERAL keys kept, all numbers (SLIDE_VERSION and SLIDE_ID are handled apart)
GENERAL_NUMBERS = ("IMAGENUMBER_X", "IMAGENUMBER_Y", "OBJECTIVE_MAGNIFICATION", "CameraImageDivisionsPerSide")
#: keys kept in the section of a hierarchical value (a level), numbers unless listed in LEVEL_WORDS
LEVEL_NUMBERS = ("IMAGE_CONCAT_FACTOR", "OVERLAP_X", "OVERLAP_Y", "MICROMETER_PER_PIXEL_X",
                 "MICROMETER_PER_PIXEL_Y", "IMAGE_FILL_COLOR_BGR", "DIGITIZER_WIDTH", "DIGITIZER_HEIGHT",
                 "IMAGE_QUALITY")
LEVEL_WORDS = {"IMAGE_FORMAT": ("JPEG", "PNG", "BMP24")}
#: keys kept in the sections of the kept non-hierarchical values and layers
NONHIER_NUMBERS = ("VIMSLIDE_POSITION_DATA_FORMAT_VERSION",)


# --- Slidedat.ini ---------------------------------------------------------------------------

def read_ini(data: bytes) -> dict[str, dict[str, str]]:
    """The sections of an INI file as GLib reads them: ``[group]``, ``key=value``, ``#`` comments;
    a key given twice keeps its last value. A line of another form is corrupt."""
    if len(data) > SLIDEDAT_MAX:
        raise UnsupportedInputError("MIRAX Slidedat.ini larger than 1 MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
        else:
            raise CorruptInputError("MIRAX Slidedat.ini holds a line that is neither a group nor a key")
    return sections


def write_ini(sections: dict[str, dict[str, str]]) -> bytes:
    lines: list[str] = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k}={v}" for k, v in keys.items())
        lines.append("")
    return "\r\n".join(lines).encode("ascii")


def _int(sections: dict[str, dict[str, str]], group: str, key: str, low: int = 0) -> int:
    try:
        value = int(sections[group][key])
    except KeyError:
        raise CorruptInputError(f"MIRAX Slidedat.ini lacks {group}/{key}") from None
    except ValueError:
        raise CorruptInputError(f"MIRAX Slidedat.ini: {group}/{key} is not a number") from None
    if not low <= value <= MAX_COUNT:
        raise CorruptInputError(f"MIRAX Slidedat.ini: {group}/{key} out of range")
    return value


def _str(sections: dict[str, dict[str, str]], group: str, key: str) -> str:
    try:
        return sections[group][key]
    except KeyError:
        raise CorruptInputError(f"MIRAX Slidedat.ini lacks {group}/{key}") from None


# --- the slide --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """One value of a layer: its layer's index, name and section, its own index, name and section."""

    layer: int
    layer_name: str
    index: int
    name: str
    section: str | None
    layer_section: str | None = None


@dataclass
class Mirax:
    folder: Path
    ini: dict[str, dict[str, str]]
    slide_id: str
    hier: list[Value]
    nonhier: list[Value]
    #: per hierarchical value: its items, an array of rows (image, offset, length, file), or
    #: ``None`` for a value without a record
    hier_items: list[Any]
    #: per non-hierarchical value: its items (offset, length, file), or ``None``
    nonhier_items: list[list[tuple[int, int, int]] | None]
    data_files: list[Path]
    data_sizes: list[int]
    index_size: int = 0
    index_digest: str = ""
    levels: int = 0

    def kept_nonhier(self, k: int) -> bool:
        return self.nonhier[k].layer_name in KEPT_NONHIER


def mirax_folder(mrxs: Path) -> Path:
    """The folder of a ``.mrxs`` file: its name less the extension."""
    return mrxs.with_name(mrxs.name[: -len(".mrxs")] if mrxs.name.lower().endswith(".mrxs") else mrxs.stem)


def _values(ini: dict[str, dict[str, str]], prefix: str, count: int) -> list[Value]:
    values = []
    for i in range(count):
        name = _str(ini, "HIERARCHICAL", f"{prefix}_{i}_NAME")
        n = _int(ini, "HIERARCHICAL", f"{prefix}_{i}_COUNT", 1)
        for j in range(n):
            values.append(Value(i, name, j, ini["HIERARCHICAL"].get(f"{prefix}_{i}_VAL_{j}", ""),
                                ini["HIERARCHICAL"].get(f"{prefix}_{i}_VAL_{j}_SECTION"),
                                ini["HIERARCHICAL"].get(f"{prefix}_{i}_SECTION")))
    if len(values) > MAX_COUNT:
        raise CorruptInputError("MIRAX Slidedat.ini counts more values than a slide holds")
    return values


def read_mirax(mrxs: Path) -> Mirax:
    """Read and check a MIRAX slide's folder (every record of ``Index.dat`` followed and checked
    against the data files' sizes); raises before anything is released."""
    folder = mirax_folder(mrxs)
    try:
        ini = read_ini(limits.read_file(folder / SLIDEDAT, "MIRAX Slidedat.ini"))
    except FileNotFoundError:
        raise CorruptInputError("MIRAX slide without its folder or Slidedat.ini") from None
    for group in ("GENERAL", "HIERARCHICAL", "DATAFILE"):
        if group not in ini:
            raise CorruptInputError(f"MIRAX Slidedat.ini lacks its {group} group")
    slide_id = _str(ini, "GENERAL", "SLIDE_ID")
    hier = _values(ini, "HIER", _int(ini, "HIERARCHICAL", "HIER_COUNT", 1))
    nonhier = _values(ini, "NONHIER", _int(ini, "HIERARCHICAL", "NONHIER_COUNT", 0))
    if hier[0].layer_name != ZOOM:
        raise UnsupportedInputError("MIRAX slide whose first hierarchical layer is not the zoom levels")
    levels = sum(1 for v in hier if v.layer == 0)
    for v in hier[:levels]:
        if v.section is None or v.section not in ini:
            raise CorruptInputError("MIRAX Slidedat.ini lacks the section of a zoom level")
        for key in ("DIGITIZER_WIDTH", "DIGITIZER_HEIGHT", "IMAGE_CONCAT_FACTOR"):
            _int(ini, v.section, key)
        if ini[v.section].get("IMAGE_FORMAT") not in LEVEL_WORDS["IMAGE_FORMAT"]:
            raise UnsupportedInputError("MIRAX zoom level of an unknown image format")
    files = []
    for i in range(_int(ini, "DATAFILE", "FILE_COUNT", 1)):
        name = _str(ini, "DATAFILE", f"FILE_{i}")
        if not _PLAIN_FILE.fullmatch(name) or name in (".", ".."):
            raise UnsupportedInputError("MIRAX data file named with a path")
        files.append(folder / name)
    sizes = []
    for path in files:
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            raise CorruptInputError("MIRAX data file missing (slide incomplete)") from None
    index_name = _str(ini, "HIERARCHICAL", "INDEXFILE")
    if not _PLAIN_FILE.fullmatch(index_name) or index_name in (".", ".."):
        raise UnsupportedInputError("MIRAX index file named with a path")
    if index_name == SLIDEDAT or index_name in (p.name for p in files) or SLIDEDAT in (p.name for p in files):
        raise UnsupportedInputError("MIRAX index or data file named as another file of the slide")
    try:
        index = limits.read_file(folder / index_name, "MIRAX index file")
    except FileNotFoundError:
        raise CorruptInputError("MIRAX index file missing (slide incomplete)") from None
    slide = Mirax(folder, ini, slide_id, hier, nonhier, [], [], files, sizes, len(index),
                  hashlib.sha256(index).hexdigest(), levels)
    _read_index(slide, index)
    return slide


def _read_index(slide: Mirax, index: bytes) -> None:
    size = len(index)

    def word(at: int) -> int:
        if at < 0 or at + 4 > size:
            raise CorruptInputError("MIRAX Index.dat cut short or pointing outside itself")
        return struct.unpack_from("<i", index, at)[0]

    if index[:5] != INDEX_VERSION:
        if len(index) < 5:
            raise CorruptInputError("MIRAX Index.dat cut short")
        raise UnsupportedInputError("MIRAX Index.dat of an unknown version")
    ident = slide.slide_id.encode("utf-8")
    if index[5: 5 + len(ident)] != ident:
        raise CorruptInputError("MIRAX Index.dat does not belong to its Slidedat.ini (slide ID differs)")
    root = 5 + len(ident)
    hier_table, nonhier_table = word(root), word(root + 4)

    def first_page(record: int) -> int | None:
        """The first data page of a record; ``None`` for a record of no page (its pointer is 0,
        to the version string: what scanners write for an empty value)."""
        ptr = word(record)
        if ptr == 0:
            return None
        if word(ptr) != 0:
            raise CorruptInputError("MIRAX Index.dat record does not start with an empty page")
        return word(ptr + 4)

    def check(offset: int, length: int, fileno: int) -> None:
        if offset < 0 or length < 0 or not 0 <= fileno < len(slide.data_files):
            raise CorruptInputError("MIRAX Index.dat item with a negative value or an unknown file")
        if offset + length > slide.data_sizes[fileno]:
            raise CorruptInputError("MIRAX record points outside its data file (truncated slide?)")

    import numpy as np

    images_x = _int(slide.ini, "GENERAL", "IMAGENUMBER_X", 1)
    images_y = _int(slide.ini, "GENERAL", "IMAGENUMBER_Y", 1)
    sizes = np.array(slide.data_sizes, dtype=np.int64)
    for k, value in enumerate(slide.hier):
        pages = []
        page, seen = first_page(hier_table + 4 * k), set()
        if page is None:
            if value.layer == 0:
                raise CorruptInputError("MIRAX Index.dat zoom level without a record")
            slide.hier_items.append(None)
            continue
        while True:
            if page in seen:
                raise CorruptInputError("MIRAX Index.dat page chain loops")
            seen.add(page)
            count, nxt = word(page), word(page + 4)
            if not 0 <= count <= MAX_COUNT or page + 8 + 16 * count > size:
                raise CorruptInputError("MIRAX Index.dat page cut short or of a negative count")
            pages.append(np.frombuffer(index, dtype="<i4", count=4 * count, offset=page + 8).reshape(-1, 4))
            if nxt == 0:
                break
            page = nxt
        items = np.concatenate(pages) if len(pages) > 1 else pages[0]
        image, offset, length, fileno = (items[:, i].astype(np.int64) for i in range(4))
        if (offset < 0).any() or (length < 0).any() or (fileno < 0).any() or (fileno >= len(sizes)).any():
            raise CorruptInputError("MIRAX Index.dat item with a negative value or an unknown file")
        if len(items) and (offset + length > sizes[fileno]).any():
            raise CorruptInputError("MIRAX record points outside its data file (truncated slide?)")
        if (image < 0).any() or value.layer == 0 and (image // images_x >= images_y).any():
            raise CorruptInputError("MIRAX Index.dat item of an image outside the slide's grid")
        slide.hier_items.append(items)
    for k in range(len(slide.nonhier)):
        page = first_page(nonhier_table + 4 * k)
        if page is None:
            slide.nonhier_items.append(None)
            continue
        count = word(page)
        if not 0 <= count <= MAX_COUNT or page + 8 + 20 * count > size:
            raise CorruptInputError("MIRAX Index.dat page cut short or of a negative count")
        items2 = []
        for _, _, offset, length, fileno in struct.iter_unpack("<5i", index[page + 8: page + 8 + 20 * count]):
            check(offset, length, fileno)
            items2.append((offset, length, fileno))
        if slide.kept_nonhier(k) and count != 1:
            raise UnsupportedInputError("MIRAX position record of other than one item")
        slide.nonhier_items.append(items2)


# --- the released slide ----------------------------------------------------------------------

@dataclass
class Cleaned:
    """What a MIRAX slide is released as: ``Slidedat.ini`` and ``Index.dat`` (bytes), and per data
    file (released as ``Data%04d.dat``) its source, size and the ranges kept."""

    slidedat: bytes
    index: bytes
    data: list[tuple[Path, int, list[tuple[int, int]]]]
    counts: dict[str, int] = field(default_factory=dict)


def data_name(i: int) -> str:
    return f"Data{i:04d}.dat"


def clean_mirax(slide: Mirax, new_id: str) -> Cleaned:
    """The released slide's files (the data files as ranges to copy), and counts of what went."""
    ini = slide.ini
    counts: dict[str, int] = {"slide-mirax": 1}
    dropped = 0
    general = {}
    version = ini["GENERAL"].get("SLIDE_VERSION", "")
    if _VERSION.fullmatch(version):
        general["SLIDE_VERSION"] = version
    general["SLIDE_ID"] = new_id
    for key in GENERAL_NUMBERS:
        if _NUMBER.fullmatch(ini["GENERAL"].get(key, "")):
            general[key] = ini["GENERAL"][key]
    dropped += len(set(ini["GENERAL"]) - set(general))
    out: dict[str, dict[str, str]] = {"GENERAL": general}
    hierarchical: dict[str, str] = {}
    sections: dict[str, dict[str, str]] = {}

    def section(src: str | None, name: str, numbers: tuple[str, ...], words: dict[str, tuple[str, ...]]) -> None:
        nonlocal dropped
        keys = ini.get(src or "", {})
        kept = {k: keys[k] for k in numbers if _NUMBER.fullmatch(keys.get(k, ""))}
        kept.update({k: keys[k] for k, allowed in words.items() if keys.get(k) in allowed})
        dropped += len(keys) - len(kept)
        sections[name] = kept

    layers = sorted({v.layer for v in slide.hier})
    hierarchical["HIER_COUNT"] = str(len(layers))
    for i in layers:
        values = [v for v in slide.hier if v.layer == i]
        name = values[0].layer_name
        hierarchical[f"HIER_{i}_NAME"] = name if name in _HIER_NAMES else f"Layer_{i}"
        if values[0].layer_section is not None:
            hierarchical[f"HIER_{i}_SECTION"] = f"LAYER_{i}_SECTION"
            section(values[0].layer_section, f"LAYER_{i}_SECTION", LEVEL_NUMBERS, LEVEL_WORDS)
        hierarchical[f"HIER_{i}_COUNT"] = str(len(values))
        for v in values:
            keep = _HIER_VAL.fullmatch(v.name) or name == "Slide filter level" and _CHANNEL.fullmatch(v.name)
            hierarchical[f"HIER_{i}_VAL_{v.index}"] = v.name if keep else f"Value_{v.index}"
            if v.section is not None:
                canonical = f"LAYER_{i}_LEVEL_{v.index}_SECTION"
                hierarchical[f"HIER_{i}_VAL_{v.index}_SECTION"] = canonical
                section(v.section, canonical, LEVEL_NUMBERS, LEVEL_WORDS)
    kept_layers = [name for name in dict.fromkeys(v.layer_name for v in slide.nonhier) if name in KEPT_NONHIER]
    hierarchical["NONHIER_COUNT"] = str(len(kept_layers))
    kept_records: list[int] = []
    for i, name in enumerate(kept_layers):
        values = [(k, v) for k, v in enumerate(slide.nonhier) if v.layer_name == name]
        hierarchical[f"NONHIER_{i}_NAME"] = name
        if values[0][1].layer_section is not None:
            hierarchical[f"NONHIER_{i}_SECTION"] = f"NONHIERLAYER_{i}_SECTION"
            section(values[0][1].layer_section, f"NONHIERLAYER_{i}_SECTION", NONHIER_NUMBERS, {})
        hierarchical[f"NONHIER_{i}_COUNT"] = str(len(values))
        for j, (k, v) in enumerate(values):
            kept_records.append(k)
            hierarchical[f"NONHIER_{i}_VAL_{j}"] = v.name if _CHANNEL.fullmatch(v.name) else "default"
            if v.section is not None:
                canonical = f"NONHIERLAYER_{i}_LEVEL_{j}_SECTION"
                hierarchical[f"NONHIER_{i}_VAL_{j}_SECTION"] = canonical
                section(v.section, canonical, NONHIER_NUMBERS, {})
    for k, v in enumerate(slide.nonhier):
        if k not in kept_records:
            kind = REMOVED_KIND.get(v.name, "nonhier-record")
            counts[f"{kind}-removed"] = counts.get(f"{kind}-removed", 0) + 1
    hierarchical["INDEXFILE"] = INDEX
    out["HIERARCHICAL"] = hierarchical
    out["DATAFILE"] = {"FILE_COUNT": str(len(slide.data_files)),
                       **{f"FILE_{i}": data_name(i) for i in range(len(slide.data_files))}}
    out.update(sections)
    counts["keys-dropped"] = dropped

    index = _write_index(new_id, slide.hier_items, [slide.nonhier_items[k] for k in kept_records])
    import numpy as np

    rows = [items[:, 1:].astype(np.int64) for items in slide.hier_items if items is not None]
    rows += [np.array(slide.nonhier_items[k] or [], dtype=np.int64).reshape(-1, 3) for k in kept_records]
    every = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
    data = []
    for fileno, (path, size) in enumerate(zip(slide.data_files, slide.data_sizes)):
        mine = every[every[:, 2] == fileno]
        merged = merge_array_ranges(mine[:, 0], mine[:, 0] + mine[:, 1])
        counts["bytes-zeroed"] = counts.get("bytes-zeroed", 0) + size - sum(b - a for a, b in merged)
        data.append((path, size, merged))
    counts["mirax-levels"] = slide.levels
    return Cleaned(write_ini(out), index, data, counts)


def _write_index(slide_id: str, hier: list[Any],
                 nonhier: list[list[tuple[int, int, int]] | None]) -> bytes:
    """``Index.dat`` anew: version, ID, the two table offsets, the tables, then per record an empty
    page pointing to one data page holding all its items."""
    head = INDEX_VERSION + slide_id.encode("ascii")
    hier_table = len(head) + 8
    nonhier_table = hier_table + 4 * len(hier)
    at = nonhier_table + 4 * len(nonhier)
    pointers: list[int] = []
    pages = bytearray()
    records = [(len(items), items.astype("<i4").tobytes()) if items is not None else None for items in hier]
    records += [(len(items2), b"".join(struct.pack("<5i", 0, 0, *item) for item in items2))
                if items2 is not None else None for items2 in nonhier]
    for record in records:  # one page per list: its header, then its items
        if record is None:
            pointers.append(0)
            continue
        count, body = record
        pointers.append(at + len(pages))
        pages += struct.pack("<2i", 0, at + len(pages) + 8)
        pages += struct.pack("<2i", count, 0)
        pages += body
    if at + len(pages) >= 1 << 31:
        raise UnsupportedInputError("MIRAX index too large for 32-bit offsets")
    return head + struct.pack(f"<{2 + len(pointers)}i", hier_table, nonhier_table, *pointers) + bytes(pages)


def write_data(src: Path, size: int, ranges: list[tuple[int, int]], fh: BinaryIO) -> dict[str, int]:
    """Stream a data file into ``fh`` (open and empty): the kept ranges copied at their offsets
    (in the kernel where it can), the file then sized, so every other byte reads as zero (and
    takes no room where the file system allows holes). A source that changed size since it was
    read is corrupt."""
    fh.flush()
    out = fh.fileno()
    with open(src, "rb") as inp:
        fd = inp.fileno()
        if os.fstat(fd).st_size != size:
            raise CorruptInputError("MIRAX data file changed while it was read")
        for a, b in ranges:
            copy_range(fd, out, a, b, "MIRAX data file")
    fh.truncate(size)
    return {}


# --- checking a released slide ---------------------------------------------------------------

def verify_mirax(mrxs: Path, member: str | None = None) -> list[str]:
    """What cleaning would still change in a released MIRAX slide, for its ``.mrxs`` file
    (``member`` ``None``: not empty) or one file of its folder: ``Slidedat.ini`` (a
    non-hierarchical value other than the position buffers, keys or values outside the
    allow-list), ``Index.dat`` (anything but what cleaning writes), a data file (a name not
    canonical, non-zero bytes that no kept record points to). A slide that does not read is
    an error (:class:`CorruptInputError`, :class:`UnsupportedInputError`) for every file."""
    problems = []
    if member is None and mrxs.stat().st_size:
        problems.append("the .mrxs file is not empty (it may hold a picture of the slide)")
    slide = read_mirax(mrxs)
    slide_id = slide.slide_id
    if not re.fullmatch(r"[0-9a-f]{32}", slide_id):
        if member in (None, SLIDEDAT):
            problems.append("SLIDE_ID is not a pseudonym medcloak writes")
        slide_id = "0" * 32
    cleaned = clean_mirax(slide, slide_id)
    if member in (None, SLIDEDAT):
        for v in slide.nonhier:
            if v.layer_name not in KEPT_NONHIER:
                problems.append(f"non-hierarchical record {REMOVED_KIND.get(v.name, 'of an unknown kind')} present")
    if member == SLIDEDAT and cleaned.slidedat != (slide.folder / SLIDEDAT).read_bytes():
        problems.append("Slidedat.ini holds keys or values outside the allow-list")
    if member == INDEX and cleaned.index != (slide.folder / INDEX).read_bytes():
        problems.append("Index.dat holds more than the kept records")
    for i, (path, _, kept) in enumerate(cleaned.data):
        if member is None and path.name != data_name(i):
            problems.append("data files not named canonically")
        if member == path.name and _stray_bytes(path, kept):
            problems.append("non-zero bytes that no kept record points to")
    return problems


def _stray_bytes(path: Path, kept: list[tuple[int, int]]) -> bool:
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        pos = 0
        for a, b in [*kept, (size, size)]:
            while pos < a:
                fh.seek(pos)
                chunk = fh.read(min(CHUNK, a - pos))
                if chunk.strip(b"\x00"):
                    return True
                pos += len(chunk)
            pos = max(pos, b)
    return False
