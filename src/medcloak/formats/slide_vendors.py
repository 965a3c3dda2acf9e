"""What a released TIFF-family slide keeps, per vendor: which pages are pyramid levels, and which
tags and metadata keys stay. Everything here is an allow-list; :mod:`.slide_tiff` applies it.

Pages. Aperio (as OpenSlide reads it): tiled pages are levels, the second page is the thumbnail
when it is not tiled, other pages are associated images (``label``, ``macro`` by the second line
of their ImageDescription) and are removed. Hamamatsu NDPI: pages whose source lens (65421) is
positive are levels; the macro (-1), the focus map (-2) and any other page are removed. Generic
pyramids: tiled full- or reduced-resolution pages (and SubIFDs) are levels; every other page
(strips, masks, macro-flagged pages) is removed, since nothing says it is not a label. Philips:
tiled pages are levels, every other page (``Label``, ``Macro``) goes. Ventana: by description
(``level=``, ``Label Image``, ``Thumbnail``); the label's IFD stays as a stub. OME-TIFF: by the
OME-XML image whose TiffData names the page (``label``, ``macro``, ``overview`` by name). QPTIFF:
by the ImageType of the page's QPI XML (``Overview`` and ``Label`` go).

Tags. Every page keeps the tags that define its image (layout, compression, colour, resolution,
ICC profile); every other tag is dropped, also the unknown ones. Per vendor, a few more tags are
kept or rewritten:

- Aperio ImageDescription: the header (the library line OpenSlide detects Aperio by, and the
  lines giving dimensions, tile size and compression) and the ``key = value`` pairs whose key is
  in :data:`APERIO_KEYS` with a value of the expected form (numbers, mostly). Unknown keys are
  dropped (ScanScope ID, Filename, Date, Time, Time Zone, User, ImageID, Left, Top, Barcode, ...).
  A header line of an unknown form is dropped; a first line that is not an Aperio library line
  cannot be dropped (the slide would no longer be Aperio) and is a :class:`DeidentificationError`.
- Hamamatsu: Make, Model, the channel name of fluorescence (65434), the private tags that
  describe the image (:data:`NDPI_KEEP`), and the property map (65449) reduced to the lines of
  :data:`NDPI_PROPERTIES`; unknown lines (dates, serial numbers, barcode regions, shading data)
  are dropped. Dropped: DateTime, the serial (65442), SlideLabel (65427), AuthCode (65428),
  focus points, firmware, lamp age, timings.
- Philips: Software (a ``Philips`` product line, which OpenSlide detects) and the first page's
  XML; Ventana: level descriptions and XMP; OME: the first page's OME-XML; QPTIFF: Software
  (``PerkinElmer-QPI``) and every page's QPI XML. The XML is cleaned in :mod:`.slide_xml`.
- Generic: nothing more; ImageDescription and every other text tag are dropped.
"""

from __future__ import annotations

import re

from ..errors import DeidentificationError, UnsupportedInputError
from ..pixels.tiff_meta import KEEP as PHOTO_KEEP
from . import slide_xml as X
from .slide_ifd import Ifd, TiffIfds

#: tags that define an image, kept on every kept page of every vendor (ImageDepth, TileDepth, ICC)
STRUCTURE = frozenset(PHOTO_KEEP | {32997, 32998, 34675})
SUBIFDS = 330
DESCRIPTION = 270
SOFTWARE = 305
XMP = 700
NDPI_FLAG, NDPI_LENS, NDPI_PROPS = 65420, 65421, 65449
NDPI_KEEP = frozenset({
    65420, 65421, 65422, 65423, 65424,  # format flag, source lens, X/Y offset from the slide centre, focal plane
    65426,  # MCU starts (restart markers of the level's JPEG)
    65433, 65435, 65436, 65437, 65438,  # exposure ratio, colour multipliers
    65441, 65444, 65445,  # capture mode, JPEG quality, refocus interval
    65446, 65447, 65451,  # focus offset, blank lines, wavelength
    65324, 65325, 65432,  # high words of the strip offsets and byte counts and of the MCU starts (over 4 GiB)
})
NDPI_HIGH_WORDS = frozenset({65324, 65325, 65432})  # 64-bit offsets of files over 4 GiB
#: short text tags kept per vendor, when printable and short
TEXT_KEEP = {"hamamatsu": frozenset({271, 272, 65434})}

_NUM = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_TOKEN = r"[A-Za-z0-9 ._\-]{1,40}"
#: Aperio ImageDescription keys kept, with the form their value must have
APERIO_KEYS = {
    "AppMag": _NUM, "MPP": _NUM, "StripeWidth": _NUM, "OriginalWidth": _NUM, "OriginalHeight": _NUM,
    "Originalheight": _NUM, "LineCameraSkew": _NUM, "LineAreaXOffset": _NUM, "LineAreaYOffset": _NUM,
    "Focus Offset": _NUM, "Filtered": _NUM, "Exposure Time": _NUM, "Exposure Scale": _NUM,
    "Gamma": _NUM, "Compression Quality": _NUM, "ICC Profile": _TOKEN, "ScannerType": _TOKEN,
}
_APERIO_FIRST = re.compile(r"Aperio[A-Za-z0-9 .\-]{0,80}")
_APERIO_LINES = [
    _APERIO_FIRST,
    re.compile(r"\d+x\d+ \[\d+,\d+[ ,]\d+x\d+\] \(\d+x\d+\)(?: -> \d+x\d+)?(?: [A-Za-z0-9/]+)?(?: Q=\d+)? ?"),
    re.compile(r"\d+x\d+ -> \d+x\d+ - ?"),
    re.compile(r"(?:label|macro) \d+x\d+ ?"),
]
#: NDPI property map (65449) keys kept, with the form of their value
NDPI_PROPERTIES = {
    "Product": r"[A-Za-z0-9.\-]{1,20}", "system.version": _NUM, "Objective.Lens.Magnificant": _NUM,
    "ccd.width": _NUM, "ccd.height": _NUM, "cube.kind": _NUM, "colorfilterID": _NUM,
    "lane.shift.amount": _NUM, "target.white.intensity": _NUM, "slide.tickness": _NUM,
}


def aperio_role(index: int, tiled: bool, description: bytes, subfile_type: int) -> str:
    """``level``, ``thumbnail``, ``label``, ``macro`` or ``associated`` for page ``index``: by the
    second line of the description, else by NewSubfileType (bit 8: macro); an untiled page after
    the thumbnail is removed whatever it says it is."""
    if tiled:
        return "level"
    lines = description.split(b"\n")
    second = lines[1].strip().split(b" ")[0] if len(lines) > 1 else b""
    if second in (b"label", b"macro"):
        return second.decode()
    if index == 1 and not subfile_type & 8:
        return "thumbnail"
    return "macro" if subfile_type & 8 else "associated"


def ndpi_role(lens: float | None) -> str:
    if lens is None:
        return "associated"
    if lens > 0:
        return "level"
    return {-1.0: "macro", -2.0: "map"}.get(lens, "associated")


def philips_role(tiled: bool, description: bytes) -> str:
    """Philips (OpenSlide's philips page): tiled pages are levels; stripped pages whose
    description starts with ``Label`` or ``Macro`` are those images; any other page is removed."""
    if tiled:
        return "level"
    return "label" if description.startswith(b"Label") else "macro" if description.startswith(b"Macro") else "associated"


def philips_software_ok(raw: bytes) -> bool:
    """Software must stay (OpenSlide detects Philips by its prefix); only a product and version."""
    return re.fullmatch(rb"Philips[A-Za-z0-9 .\-]{0,40}\x00*", raw) is not None


def qpi_software_ok(raw: bytes) -> bool:
    """Software must stay on QPTIFF pages (tifffile detects QPI by its prefix)."""
    return re.fullmatch(rb"PerkinElmer-QPI[A-Za-z0-9 .\-]{0,40}\x00*", raw) is not None


def ventana_role(tiled: bool, description: bytes, one_pixel: bool) -> str:
    """Ventana BIF (OpenSlide's ventana page), by ImageDescription: ``level=N mag=M ...`` pages are
    levels; ``Label Image`` / ``Label_Image`` is the label and ``Thumbnail`` the macro (it shows
    the whole slide, label included); every other page (``Probability Image``, ...) is removed.
    A 1x1 page without description is the stub a released slide keeps in the label's place."""
    text = description.rstrip(b"\x00")
    if tiled and ventana_level_ok(description):
        return "level"
    if text in (b"Label Image", b"Label_Image"):
        return "label"
    if text == b"Thumbnail":
        return "macro"
    return "stub" if one_pixel and not text and not tiled else "associated"


def ventana_level_ok(raw: bytes) -> bool:
    """A Ventana level description, kept as it is (OpenSlide reads level and magnification)."""
    return re.fullmatch(rb"level=\d{1,2} mag=[0-9.]{1,8}(?: quality=\d{1,3})?\x00*", raw) is not None


def generic_role(tiled: bool, subfile_type: int) -> str:
    if tiled and subfile_type in (0, 1):
        return "level"
    return "associated"


def clean_aperio_description(text: str) -> tuple[str, int]:
    """The description with only its allow-listed parts, and how many parts were dropped."""
    header, *pairs = text.split("|")
    lines = re.split(r"\r\n|\n|;", header)
    first = lines[0]
    if not _APERIO_FIRST.fullmatch(first.rstrip("\x00")):
        raise DeidentificationError("Aperio ImageDescription whose first line is not an Aperio library line")
    dropped = 0
    if not all(any(p.fullmatch(line) for p in _APERIO_LINES) for line in lines):
        header, dropped = first, 1
    kept = [header]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        form = APERIO_KEYS.get(key.strip())
        if sep and form and re.fullmatch(form, value.strip()):
            kept.append(pair)
        else:
            dropped += 1
    return "|".join(kept), dropped


def clean_ndpi_properties(text: str) -> tuple[str, int]:
    """The NDPI property map with only its allow-listed ``key=value`` lines."""
    kept, dropped = [], 0
    for line in re.split(r"\r\n|\n", text):
        key, sep, value = line.partition("=")
        form = NDPI_PROPERTIES.get(key)
        if sep and form and re.fullmatch(form, value):
            kept.append(line)
        elif line:
            dropped += 1
    return "".join(f"{line}\r\n" for line in kept), dropped


def short_text_ok(raw: bytes) -> bool:
    """A kept text tag must be short printable ASCII (a scanner model, a channel name)."""
    return re.fullmatch(rb"[\x20-\x7e]{0,40}\x00*", raw) is not None


def roles(t: TiffIfds, vendor: str, pages: list[Ifd]) -> list[str]:
    """The role of each page of a slide of ``vendor`` (see the module)."""
    roles = []
    for i, p in enumerate(pages):
        if vendor == "aperio":
            roles.append(aperio_role(i, t.tiled(p), t.text(p, DESCRIPTION, 4096), int(t.number(p, 254, 0) or 0)))
        elif vendor == "hamamatsu":
            roles.append(ndpi_role(t.number(p, NDPI_LENS)))
        elif vendor == "philips":
            roles.append(philips_role(t.tiled(p), t.text(p, DESCRIPTION, 16)))
        elif vendor == "ome":
            return _ome(t, pages)
        elif vendor == "qptiff":
            roles.append(X.qpi_role(t.text(p, DESCRIPTION)))
        elif vendor == "ventana":
            one = t.number(p, 256) == 1 and t.number(p, 257) == 1
            roles.append(ventana_role(t.tiled(p), t.text(p, DESCRIPTION, 64), one))
        else:
            roles.append(generic_role(t.tiled(p), int(t.number(p, 254, 0) or 0)))
    if roles[0] != "level" and vendor != "ventana":  # Ventana's first page is the label: a stub stays
        raise UnsupportedInputError(f"{vendor} slide whose first page is not a pyramid level")
    return roles


def _ome(t: TiffIfds, pages: list[Ifd]) -> list[str]:
    roles = X.ome_roles(t.text(pages[0], DESCRIPTION), len(pages))
    if roles[0] not in ("level", "thumbnail"):  # the first page holds the OME-XML: it must stay
        raise UnsupportedInputError("OME-TIFF whose first page is an associated image")
    return roles
