"""The report's pictures laid out and written: frames in a grid (a series' montage), panels side
by side (a volume's three projections), boxes outlined (what medcloak changed), and the files
themselves, small: no side longer than the caller's bound, JPEG (quality 85, no chroma
subsampling so that a one-pixel red outline stays red), owner-only (the report is private).

Frames are only ever made smaller to fit, except a small frame, which is enlarged by a whole
factor (nearest neighbour: its pixels stay square and sharp) so that a 64 x 64 slice fills its
cell of a montage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image

#: the outline colour of a changed area
RED = (255, 0, 0)
#: the background of a montage's empty cells and gaps
BACKGROUND = (24, 24, 24)
#: pixels between the cells of a montage and between panels
GAP = 2


def image(pixels: np.ndarray) -> Image:
    """An 8-bit array (grey or RGB) as an RGB PIL image."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).convert("RGB")


def fit(img: Image, width: int, height: int, grow: bool = True) -> Image:
    """``img`` made to fit in ``width`` x ``height``, its aspect kept: smaller by resampling, or
    (``grow``) larger by the largest whole factor that fits."""
    from PIL import Image

    scale = min(width / img.width, height / img.height)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        return img.resize(size, Image.BILINEAR, reducing_gap=2.0)
    factor = int(scale) if grow else 1
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST) if factor > 1 else img


def shrink_outlined(img: Image, width: int, height: int) -> Image:
    """``img`` made to fit in ``width`` x ``height`` (never larger), its pure red pixels (the
    outlines an audit picture draws, one pixel wide) kept red wherever they fall: resampling
    alone would blur them away."""
    from PIL import Image

    img = img.convert("RGB")
    small = fit(img, width, height, grow=False)
    if small.size == img.size:
        return small
    arr = np.asarray(img)
    red = (arr[:, :, 0] == RED[0]) & (arr[:, :, 1] == RED[1]) & (arr[:, :, 2] == RED[2])
    if not red.any():
        return small
    hit = np.asarray(Image.fromarray(red.astype(np.uint8) * 255).resize(small.size, Image.BOX)) > 0
    out = np.array(small)
    out[hit] = RED
    return Image.fromarray(out)


def resize(img: Image, width: int, height: int) -> Image:
    """``img`` resampled to exactly ``width`` x ``height`` (a projection's physical aspect)."""
    from PIL import Image

    if (img.width, img.height) == (width, height):
        return img
    return img.resize((max(1, width), max(1, height)), Image.BILINEAR if width < img.width else Image.NEAREST)


def grid(images: Sequence[Image], cell: int, columns: int) -> Image:
    """``images`` each fitted into a ``cell`` x ``cell`` square, laid out left to right and top
    to bottom in ``columns`` columns (fewer when there are fewer images), centred in its cell."""
    from PIL import Image

    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    out = Image.new("RGB", (columns * cell + (columns - 1) * GAP, rows * cell + (rows - 1) * GAP), BACKGROUND)
    for i, img in enumerate(images):
        small = fit(img, cell, cell)
        r, c = divmod(i, columns)
        out.paste(small, (c * (cell + GAP) + (cell - small.width) // 2, r * (cell + GAP) + (cell - small.height) // 2))
    return out


def row(images: Sequence[Image]) -> Image:
    """``images`` side by side, top-aligned."""
    from PIL import Image

    out = Image.new("RGB", (sum(i.width for i in images) + GAP * (len(images) - 1), max(i.height for i in images)),
                    BACKGROUND)
    x = 0
    for img in images:
        out.paste(img, (x, 0))
        x += img.width + GAP
    return out


def outline(img: Image, boxes: Sequence[Sequence[int]], space: tuple[int, int]) -> Image:
    """``img`` (a picture of an object whose boxes are given in a ``space`` of (width, height)
    pixels) with each box (x0, y0, x1, y1) outlined in red just outside it, at least one pixel
    wide, so that what the box covers stays visible."""
    from PIL import ImageDraw

    img = img.copy()
    sx, sy = img.width / max(1, space[0]), img.height / max(1, space[1])
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1 in boxes:
        a, b = int(x0 * sx) - 1, int(y0 * sy) - 1
        c, d = max(a + 2, int(np.ceil(x1 * sx))), max(b + 2, int(np.ceil(y1 * sy)))
        draw.rectangle((a, b, c, d), outline=RED, width=1)
    return img


def save(img: Image, path: Path) -> tuple[int, int]:
    """Write ``img`` as a JPEG to ``path`` (owner-only) and return its (width, height)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        img.convert("RGB").save(fh, format="JPEG", quality=85, subsampling=0, optimize=False)
    return img.width, img.height
