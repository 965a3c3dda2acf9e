"""A small synthetic 3DHISTECH MIRAX slide, laid out as OpenSlide's format documentation
(openslide.org/formats/mirax) describes it, with identifiers planted wherever a real slide keeps
them: ``Slidedat.ini`` (slide name, ID, dates, project, operator, barcode, an XML info record),
the label, macro and preview images (their pixels drawn with the name and their JPEG comments), the
``.mrxs`` file (a JPEG picture of the slide), the name of a data file, and stray bytes between the
records of a data file. Made here with Pillow; no real MIRAX slide small enough for the
repository exists.

Geometry: a 4 x 4 grid of 64 x 64 JPEG images (one camera field each,
``CameraImageDivisionsPerSide=1``), a position buffer placing them edge to edge, three zoom levels
(the second and third concatenate 2 x 2 and 4 x 4 images), so OpenSlide sees a 256 x 256 slide.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

NAME = "Surname_Givenname_NF00482913"
PLANTED = (b"Surname", b"Givenname", b"NF00482913", b"BARCODE-77431", b"Operator-Jones",
           b"Project-Oncology-17", b"2024-03-05", b"c0ffee00112233445566778899aabbcc")
SLIDE_ID = "c0ffee00112233445566778899aabbcc"
GRID, SIZE, LEVELS = 4, 64, 3


@dataclass
class Sample:
    mrxs: Path
    folder: Path
    #: every tile's bytes, per level, in Index.dat order
    tiles: list[list[bytes]] = field(default_factory=list)
    label: bytes = b""
    macro: bytes = b""
    preview: bytes = b""


def _jpeg(colour: tuple[int, int, int], text: str | None = None, size: tuple[int, int] = (SIZE, SIZE),
          comment: bytes | None = None) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, colour)
    if text:
        ImageDraw.Draw(img).text((2, 2), text, fill=(0, 0, 0))
    buf = io.BytesIO()
    kwargs = {"comment": comment} if comment else {}
    img.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


def make_mirax(parent: Path, stem: str = NAME) -> Sample:
    """Write ``parent/stem.mrxs`` and ``parent/stem/``; what went where, to compare with."""
    folder = parent / stem
    folder.mkdir(parents=True)
    sample = Sample(parent / f"{stem}.mrxs", folder)
    sample.mrxs.write_bytes(_jpeg((200, 200, 200), "Surname NF00482913", (96, 32), b"Surname Givenname"))
    data = [bytearray(b"\x00" * 16), bytearray()]  # file 0 starts with a little padding
    data_names = ["Data0000.dat", f"{stem}_Data0001.dat"]

    def put(fileno: int, blob: bytes) -> tuple[int, int, int]:
        offset = len(data[fileno])
        data[fileno] += blob
        return offset, len(blob), fileno

    hier_items: list[list[tuple[int, int, int, int]]] = []
    for level in range(LEVELS):
        concat = 1 << level
        items, tiles = [], []
        for y in range(0, GRID, concat):
            for x in range(0, GRID, concat):
                tile = _jpeg((40 * x + 30, 50 * y + 20, 100 + 30 * level))
                tiles.append(tile)
                offset, length, fileno = put(0 if level == 0 else 1, tile)
                items.append((y * GRID + x, offset, length, fileno))
        hier_items.append(items)
        sample.tiles.append(tiles)
    data[1] += b"stray: Surname Givenname NF00482913 " * 3  # bytes nothing points to
    hier_items.append([])  # the filter level's record: one page of no items
    hier_items.append(None)  # the focus level's: none (its pointer 0, as scanners write)
    positions = b"".join(struct.pack("<Bii", 1, x * SIZE, y * SIZE) for y in range(GRID) for x in range(GRID))
    sample.macro = _jpeg((230, 230, 250), "Surname NF00482913", (160, 64), b"macro Surname Givenname")
    sample.label = _jpeg((250, 250, 210), "BARCODE-77431", (64, 64), b"label NF00482913 BARCODE-77431")
    sample.preview = _jpeg((220, 250, 220), "Surname", (96, 48), b"preview Surname")
    xml = b"<ScanInfo><Operator>Operator-Jones</Operator><Slide>Surname_Givenname_NF00482913</Slide></ScanInfo>"
    nonhier = [put(1, sample.macro), put(1, sample.label), put(1, sample.preview), put(1, xml), None,
               put(1, positions)]

    slidedat = f"""[GENERAL]
SLIDE_VERSION=01.02
SLIDE_ID={SLIDE_ID}
SLIDE_NAME={stem}
SLIDE_CREATIONDATETIME=2024-03-05 10:22:31
SLIDE_TYPE=Brightfield
PROJECT_NAME=Project-Oncology-17
OPERATOR=Operator-Jones
SLIDE_BARCODE=BARCODE-77431
COMMENT=biopsy of Surname Givenname
IMAGENUMBER_X={GRID}
IMAGENUMBER_Y={GRID}
OBJECTIVE_NAME=Plan-Apochromat
OBJECTIVE_MAGNIFICATION=20
CameraImageDivisionsPerSide=1
[HIERARCHICAL]
HIER_COUNT=3
HIER_0_NAME=Slide zoom level
HIER_0_SECTION=LAYER_0_SECTION
HIER_0_COUNT={LEVELS}
""" + "".join(f"HIER_0_VAL_{i}=ZoomLevel_{i}\nHIER_0_VAL_{i}_SECTION=LAYER_0_LEVEL_{i}_SECTION\n" for i in range(LEVELS)) + """\
HIER_1_NAME=Slide filter level
HIER_1_SECTION=LAYER_1_SECTION
HIER_1_COUNT=1
HIER_1_VAL_0=FilterLevel_0
HIER_1_VAL_0_SECTION=LAYER_1_LEVEL_0_SECTION
HIER_2_NAME=Microscope focus level
HIER_2_SECTION=LAYER_2_SECTION
HIER_2_COUNT=1
HIER_2_VAL_0=FocusLevel_0
HIER_2_VAL_0_SECTION=LAYER_2_LEVEL_0_SECTION
NONHIER_COUNT=2
NONHIER_0_NAME=Scan data layer
NONHIER_0_SECTION=NONHIERLAYER_0_SECTION
NONHIER_0_COUNT=5
NONHIER_0_VAL_0=ScanDataLayer_SlideThumbnail
NONHIER_0_VAL_0_SECTION=NONHIERLAYER_0_LEVEL_0_SECTION
NONHIER_0_VAL_1=ScanDataLayer_SlideBarcode
NONHIER_0_VAL_1_SECTION=NONHIERLAYER_0_LEVEL_1_SECTION
NONHIER_0_VAL_2=ScanDataLayer_SlidePreview
NONHIER_0_VAL_2_SECTION=NONHIERLAYER_0_LEVEL_2_SECTION
NONHIER_0_VAL_3=ScanDataLayer_XMLInfoHeader
NONHIER_0_VAL_3_SECTION=NONHIERLAYER_0_LEVEL_3_SECTION
NONHIER_0_VAL_4=ScanDataLayer_WhiteBalance
NONHIER_0_VAL_4_SECTION=NONHIERLAYER_0_LEVEL_4_SECTION
NONHIER_1_NAME=VIMSLIDE_POSITION_BUFFER
NONHIER_1_SECTION=NONHIERLAYER_1_SECTION
NONHIER_1_COUNT=1
NONHIER_1_VAL_0=default
NONHIER_1_VAL_0_SECTION=NONHIERLAYER_1_LEVEL_0_SECTION
INDEXFILE=Index.dat
[DATAFILE]
FILE_COUNT=2
FILE_0=Data0000.dat
FILE_1=""" + data_names[1] + "\n" + "".join(f"""[LAYER_0_LEVEL_{i}_SECTION]
OVERLAP_X=0
OVERLAP_Y=0
MICROMETER_PER_PIXEL_X={0.25 * (1 << i)}
MICROMETER_PER_PIXEL_Y={0.25 * (1 << i)}
IMAGE_FORMAT=JPEG
IMAGE_QUALITY=90
IMAGE_FILL_COLOR_BGR=16777215
DIGITIZER_WIDTH={SIZE}
DIGITIZER_HEIGHT={SIZE}
IMAGE_CONCAT_FACTOR={0 if i == 0 else 1}
SCAN_TIME=2024-03-05 10:25:00
""" for i in range(LEVELS)) + """[LAYER_0_SECTION]
COMMENT=Surname
[LAYER_1_SECTION]
[LAYER_2_SECTION]
[LAYER_2_LEVEL_0_SECTION]
[LAYER_1_LEVEL_0_SECTION]
FILTER_NAME=Brightfield
[NONHIERLAYER_0_SECTION]
SCANNER_SERIAL=SN-Surname
[NONHIERLAYER_0_LEVEL_0_SECTION]
THUMBNAIL_IMAGE_TYPE=JPEG
[NONHIERLAYER_0_LEVEL_1_SECTION]
BARCODE_IMAGE_TYPE=JPEG
BARCODE_VALUE=BARCODE-77431
[NONHIERLAYER_0_LEVEL_2_SECTION]
PREVIEW_IMAGE_TYPE=JPEG
[NONHIERLAYER_0_LEVEL_3_SECTION]
XML_INFO=Surname
[NONHIERLAYER_0_LEVEL_4_SECTION]
[NONHIERLAYER_1_LEVEL_0_SECTION]
VIMSLIDE_POSITION_DATA_FORMAT_VERSION=257
[NONHIERLAYER_1_SECTION]
VIMSLIDE_POSITION_DATA_FORMAT_VERSION=257
"""
    (folder / "Slidedat.ini").write_bytes(b"\xef\xbb\xbf" + slidedat.replace("\n", "\r\n").encode())
    (folder / "Index.dat").write_bytes(_index(hier_items, nonhier))
    for name, blob in zip(data_names, data):
        (folder / name).write_bytes(bytes(blob))
    return sample


def _index(hier: list[list[tuple[int, int, int, int]] | None], nonhier: list[tuple[int, int, int] | None]) -> bytes:
    """Index.dat as a scanner lays it out: the tables first, then the pages, level 0's items
    split over two chained pages, the non-hierarchical pages' ``next`` holding 1253 as some
    scanners write (OpenSlide's note), an empty value's record pointing to 0 (OpenSlide's
    misc/parse-mirax.py reads these as empty)."""
    head = b"01.02" + SLIDE_ID.encode()
    hier_table = len(head) + 8
    nonhier_table = hier_table + 4 * len(hier)
    at = nonhier_table + 4 * len(nonhier)
    body = bytearray()
    pointers = []
    for k, items in enumerate(hier):
        if items is None:
            pointers.append(0)
            continue
        pointers.append(at + len(body))
        body += struct.pack("<2i", 0, at + len(body) + 8)
        parts = [items[:5], items[5:]] if k == 0 else [items]
        for n, part in enumerate(parts):
            last = n == len(parts) - 1
            nxt = 0 if last else at + len(body) + 8 + 16 * len(part)
            body += struct.pack("<2i", len(part), nxt) + b"".join(struct.pack("<4i", *it) for it in part)
    for item in nonhier:
        if item is None:
            pointers.append(0)
            continue
        offset, length, fileno = item
        pointers.append(at + len(body))
        body += struct.pack("<2i", 0, at + len(body) + 8)
        body += struct.pack("<7i", 1, 1253, 0, 0, offset, length, fileno)
    return head + struct.pack(f"<{2 + len(pointers)}i", hier_table, nonhier_table, *pointers) + bytes(body)
