"""A released object's pixels as small 8-bit pictures for the report's pixel review
(:mod:`medcloak.report.pixels`): a few frames of a DICOM series, the three maximum intensity
projections of a volume, a slide's lowest-resolution level, a photograph's thumbnail.

What is decided here is what is decoded, because the report must cost a small part of the run:
a DICOM series gives at most :data:`HEADERS` headers read, of instances spread evenly over the
series in the order the caller gives (the manifest's: discovery's order, in which a series' files
usually are), and :data:`FRAMES` frames decoded, one frame at a time (pydicom decodes the frame
asked for, not the whole Pixel Data), shown in instance number order; a slide gives one level, the smallest that still fills a thumbnail (never a
level of more than :data:`MAX_LEVEL_PIXELS` pixels: a slide without a small enough level is not
pictured, with that reason); a photograph is decoded at a reduced scale where its codec can (JPEG
draft mode). A volume's projections need every voxel of its first volume: they are read a slab
of slices at a time (:mod:`medcloak.report.volumes`), or a frame at a time where the format's
reader cannot slice less (ECAT 7, PAR/REC), never the whole 4-D series.

Every picture is 8 bits, grey or RGB, windowed from the stored values (grey of more than 8 bits
on its 0.5 and 99.5 percentiles, MONOCHROME1 inverted, colour kept: see
:func:`medcloak.pixels.burned_in.display`), with the size of the space its boxes are given in
(a DICOM frame's columns and rows, a slide's level 0), so that the caller can outline them.
Failures raise; the caller lists the object with the reason and goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, UnsupportedInputError

#: the longest side of a thumbnail (pixels)
THUMB = 256
#: frames decoded for a DICOM series' montage
FRAMES = 4
#: headers read to choose them (instances spread evenly over the series; reading a header costs
#: about as much as decoding a small frame, so no more are read than frames are shown)
HEADERS = FRAMES
#: the most pixels of a slide level decoded for its thumbnail
MAX_LEVEL_PIXELS = 4096 * 4096
#: the most voxels of a volume read for its projections
MAX_VOXELS = 512 * 512 * 512
#: a DICOM file up to this size is read once, whole, for its header and its frames; a larger one
#: has its header read up to the pixel data and each frame read on its own
SMALL_FILE = 8 << 20
#: DICOM VL Whole Slide Microscopy Image Storage
WSI_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
#: the header attributes read to choose frames (a specific set: the rest is skipped)
_TAGS = ["SOPClassUID", "InstanceNumber", "NumberOfFrames", "ImageType", "PhotometricInterpretation",
         "Rows", "Columns", "TotalPixelMatrixColumns", "TotalPixelMatrixRows", "DimensionOrganizationType",
         "SamplesPerPixel", "BitsAllocated"]


@dataclass(frozen=True)
class Picture:
    """An 8-bit picture (rows x columns, or rows x columns x 3) and the (width, height) of the
    space the object's boxes are given in."""

    pixels: np.ndarray
    space: tuple[int, int]


@dataclass(frozen=True)
class Header:
    """What is needed of a DICOM instance to choose and place its frames."""

    path: Path
    sop_class: str
    number: int
    frames: int
    photometric: str
    image_type: tuple[str, ...]
    rows: int
    columns: int
    matrix: tuple[int, int]  # total pixel matrix (columns, rows); the frame's size if none
    organization: str
    pixels: bool  # has the Image Pixel module (Rows, Columns): its Pixel Data is looked for when decoded
    dataset: Any = None  # the whole data set of a small file (read once), else None


def spread(n: int, k: int) -> list[int]:
    """``k`` indices out of ``range(n)`` spread evenly (each in the middle of its share), all
    of them when ``n <= k``."""
    if n <= k:
        return list(range(n))
    return sorted({min(n - 1, int((i + 0.5) * n / k)) for i in range(k)})


def _display(arr: np.ndarray, photometric: str) -> np.ndarray:
    from ..pixels.burned_in import display

    out = display(arr, photometric)
    if out.ndim == 3 and out.shape[2] > 3:
        out = out[:, :, :3]
    return np.ascontiguousarray(out)


# ---- DICOM --------------------------------------------------------------------------------------


def header(path: Path) -> Header:
    """The header of a released DICOM instance (read up to its pixel data, which is not read,
    unless the file is small: then it is read whole, once, and kept for its frames)."""
    import pydicom

    small = path.stat().st_size <= SMALL_FILE
    ds = pydicom.dcmread(path) if small else pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    if not str(ds.get("SOPClassUID", "")).strip():
        raise UnsupportedInputError("no SOP Class UID: not readable as DICOM")
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    matrix = (int(ds.get("TotalPixelMatrixColumns", 0) or 0), int(ds.get("TotalPixelMatrixRows", 0) or 0))
    try:
        number = int(ds.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        number = 0
    image_type = ds.get("ImageType", ())
    image_type = (image_type,) if isinstance(image_type, str) else tuple(str(v).upper() for v in image_type)
    return Header(path, str(ds.get("SOPClassUID", "")), number, max(1, int(ds.get("NumberOfFrames", 1) or 1)),
                  str(ds.get("PhotometricInterpretation", "")).strip().upper(), image_type, rows, columns,
                  matrix if all(matrix) else (columns, rows), str(ds.get("DimensionOrganizationType", "")).upper(),
                  bool(rows and columns), ds if small else None)


def _frame(head: Header, index: int) -> np.ndarray:
    from pydicom.pixels import pixel_array

    from ..formats.dicom_codecs import register

    register()  # JPEG lossless process 14 without a pydicom decoder of its own here
    src = head.dataset if head.dataset is not None else head.path
    arr = pixel_array(src, index=index if head.frames > 1 else None)
    if head.photometric == "PALETTE COLOR":
        import pydicom
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, pydicom.dcmread(head.path, stop_before_pixels=True))
        arr = (arr >> 8).astype(np.uint8) if arr.dtype != np.uint8 else arr
    return arr


def dicom_frame(path: Path, index: int = 0) -> Picture:
    """Frame ``index`` of a released DICOM instance (one frame decoded)."""
    head = header(path)
    if not head.pixels:
        raise UnsupportedInputError("no pixel data")
    index = min(max(0, index), head.frames - 1)
    if head.sop_class == WSI_CLASS:
        return slide_level([head])
    return Picture(_display(_frame(head, index), head.photometric), (head.columns, head.rows))


def series_frames(paths: Sequence[Path], count: int = FRAMES) -> tuple[list[Picture], str, list[tuple[Path, str]]]:
    """Up to ``count`` frames spread over the instances ``paths`` of one series (at most
    :data:`HEADERS` headers read, of instances spread over ``paths``; the frames in instance
    number order, a multi-frame instance's spread over its frames), or the smallest level of a
    slide; what
    they are (``"frames"``, ``"slide"``, or ``""`` when no instance has pixels); and the
    instances that could not be read, with the reason (the others are pictured all the same)."""
    problems: list[tuple[Path, str]] = []

    def read(path: Path) -> Header | None:
        try:
            head = header(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable instance is listed, not fatal
            problems.append((path, _reason(exc)))
            return None
        if not head.pixels and _image_class(head.sop_class):
            problems.append((path, "an image without its Image Pixel module (cut short?)"))
            return None
        return head

    sample = spread(len(paths), HEADERS)
    heads = [h for h in (read(paths[i]) for i in sample) if h is not None and h.pixels]
    if not heads:
        return [], "", problems
    if any(h.sop_class == WSI_CLASS for h in heads):
        if len(paths) > len(sample):  # a slide has few instances: every one of them is a candidate
            problems.clear()
            heads = [h for h in (read(p) for p in paths) if h is not None and h.pixels]
        return [slide_level(heads)], "slide", problems
    heads.sort(key=lambda h: (h.number, str(h.path)))
    starts = np.cumsum([0] + [h.frames for h in heads])
    pictures = []
    for i in spread(int(starts[-1]), count):
        which = int(np.searchsorted(starts, i, side="right")) - 1
        head = heads[which]
        try:
            arr = _frame(head, i - int(starts[which]))
        except Exception as exc:  # noqa: BLE001
            problems.append((head.path, _reason(exc)))
            continue
        pictures.append(Picture(_display(arr, head.photometric), (head.columns, head.rows)))
    return pictures, "frames", problems


def _image_class(sop_class: str) -> bool:
    """Whether a SOP class is one of images (its name says so), which must have pixels."""
    from pydicom.uid import UID

    return "Image" in UID(sop_class).name


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _choose(sizes: Sequence[tuple[int, int]]) -> int:
    """The index of the level to picture: the smallest whose longer side fills a thumbnail, or,
    when none does, the largest (all are small then)."""
    order = sorted(range(len(sizes)), key=lambda i: sizes[i][0] * sizes[i][1])
    filling = [i for i in order if max(sizes[i]) >= THUMB]
    return filling[0] if filling else order[-1]


def slide_level(heads: Sequence[Header]) -> Picture:
    """A DICOM slide's level to picture (see :func:`_choose`), its tiles assembled (TILED_FULL,
    the first focal plane and optical path); a label, overview or localizer is never one."""
    levels = [h for h in heads if not ({"LABEL", "OVERVIEW", "REGIONLOCALIZER"} & set(h.image_type))]
    if not levels:
        raise UnsupportedInputError("no level of the slide to picture (label or overview only)")
    head = levels[_choose([h.matrix for h in levels])]
    base = max(levels, key=lambda h: h.matrix[0] * h.matrix[1]).matrix
    across, down = math.ceil(head.matrix[0] / head.columns), math.ceil(head.matrix[1] / head.rows)
    tiles = across * down
    if tiles * head.rows * head.columns > MAX_LEVEL_PIXELS:
        raise UnsupportedInputError(f"smallest level {head.matrix[0]}x{head.matrix[1]} too large to picture")
    if tiles > 1 and head.organization != "TILED_FULL":
        raise UnsupportedInputError(f"level of {tiles} tiles not TILED_FULL: not assembled")
    if tiles > head.frames:
        raise UnsupportedInputError(f"level of {tiles} tiles holds {head.frames} frames")
    from pydicom.pixels import iter_pixels

    canvas: np.ndarray | None = None
    for i, tile in enumerate(iter_pixels(head.path, indices=range(tiles))):
        tile = _display(tile, head.photometric)
        if canvas is None:
            canvas = np.zeros((down * head.rows, across * head.columns) + tile.shape[2:], np.uint8)
        r, c = divmod(i, across)
        canvas[r * head.rows:(r + 1) * head.rows, c * head.columns:(c + 1) * head.columns] = tile
    assert canvas is not None
    return Picture(np.ascontiguousarray(canvas[: head.matrix[1], : head.matrix[0]]), base)


# ---- slides (TIFF family, MIRAX) ----------------------------------------------------------------


def slide_thumbnail(path: Path) -> Picture:
    """A released slide's level to picture (see :func:`_choose`; tifffile), or OpenSlide's
    thumbnail for a MIRAX slide when openslide-python is installed."""
    if path.suffix.lower() == ".mrxs":
        return _openslide_thumbnail(path)
    import tifffile

    with tifffile.TiffFile(path) as tif:
        # the pyramid (the first series) and a thumbnail; never a label, macro, overview or map
        levels = [lvl for i, series in enumerate(tif.series)
                  if i == 0 or series.name.strip().lower() == "thumbnail" for lvl in series.levels]
        if not levels:
            raise UnsupportedInputError("no image in the file")
        sizes = [(int(lvl.keyframe.imagewidth), int(lvl.keyframe.imagelength)) for lvl in levels]
        chosen = _choose(sizes)
        width, height = sizes[chosen]
        if width * height > MAX_LEVEL_PIXELS:
            raise UnsupportedInputError(f"smallest level {width}x{height} too large to picture")
        level = levels[chosen]
        arr = level.asarray()
        axes = level.axes
    arr = _planar(np.asarray(arr), axes)
    base = max(sizes, key=lambda s: s[0] * s[1])
    return Picture(_display(arr, "RGB" if arr.ndim == 3 else ""), base)


def _planar(arr: np.ndarray, axes: str) -> np.ndarray:
    """An image of tifffile's ``axes`` as rows x columns (x samples): other axes at their first
    index, samples last."""
    index = tuple(slice(None) if a in "YXS" else 0 for a in axes)
    arr = arr[index]
    kept = [a for a in axes if a in "YXS"]
    arr = np.moveaxis(arr, [kept.index(a) for a in "YXS" if a in kept], range(len(kept)))
    if arr.ndim == 3 and arr.shape[2] not in (3, 4):
        arr = arr[:, :, 0]
    return arr


def _openslide_thumbnail(path: Path) -> Picture:
    try:
        import openslide
    except ImportError:
        raise MissingDependencyError("a MIRAX slide is pictured with openslide-python, which is not installed") from None
    slide = openslide.OpenSlide(str(path))
    try:
        img = slide.get_thumbnail((THUMB, THUMB)).convert("RGB")
        base = slide.dimensions
    finally:
        slide.close()
    return Picture(np.asarray(img), (int(base[0]), int(base[1])))


# ---- volumes ------------------------------------------------------------------------------------


def volume_projections(path: Path) -> list[Picture]:
    """The three maximum intensity projections of a released volume (NIfTI, Analyze, MINC, MGH,
    NRRD, ECAT 7, PAR/REC), the first volume of a 4-D one, read slab by slab (see
    :mod:`medcloak.report.volumes`): sagittal (anterior right), coronal and axial (the subject's
    right on the right), superior or anterior up, one window for the three, each panel with
    square pixels of the finest voxel size."""
    from .volumes import projections

    return projections(path)


# ---- photographs --------------------------------------------------------------------------------


def photo_thumbnail(path: Path) -> Picture:
    """A released photograph at most :data:`THUMB` pixels on its longer side (a JPEG decoded
    at a reduced scale), its boxes' space its full size."""
    from PIL import Image

    with Image.open(path) as img:
        size = img.size
        if img.format == "JPEG":
            img.draft("RGB" if img.mode not in ("L", "1") else "L", (THUMB, THUMB))
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = _display(np.asarray(img), "")
            small = Image.fromarray(arr)
        else:
            small = img.convert("L" if img.mode in ("L", "1", "LA") else "RGB")
        small.thumbnail((THUMB, THUMB))
        return Picture(np.asarray(small), (int(size[0]), int(size[1])))
