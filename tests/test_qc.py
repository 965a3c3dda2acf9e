"""The QC picture of a defaced volume (:mod:`medcloak.pixels.qc`): made, owner-only, oriented
(anterior right, superior up) and showing the removed region in red where it was, on every panel.
A synthetic head in a stored axis order other than R, A, S with anisotropic voxels, so that a
picture drawn in the wrong orientation or aspect fails. (What it costs is a benchmark figure:
benchmarks/bench_deface.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medcloak.pixels.qc import SLICES, qc_picture

#: stored axes: (anterior, superior, left), voxels of 2, 2.5 and 1.5 mm (an affine that permutes
#: and flips the axes: world R = -1.5 k, A = 2 i, S = 2.5 j)
AFFINE = np.array([[0, 0, -1.5, 60.0], [2.0, 0, 0, -90.0], [0, 2.5, 0, -70.0], [0, 0, 0, 1]])
SHAPE = (90, 64, 80)  # 180 mm front to back, 160 mm high, 120 mm wide


def _world() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j, k = np.meshgrid(*(np.arange(n, dtype=float) for n in SHAPE), indexing="ij")
    r, a, s = (AFFINE[row, 0] * i + AFFINE[row, 1] * j + AFFINE[row, 2] * k + AFFINE[row, 3] for row in range(3))
    return r, a, s


@pytest.fixture(scope="module")
def head():  # type: ignore[no-untyped-def]
    r, a, s = _world()
    inside = (r / 50) ** 2 + ((a + 5) / 80) ** 2 + ((s - 5) / 70) ** 2 < 1  # an ellipsoid head
    rng = np.random.default_rng(0)
    stored = np.where(inside, 400 + rng.normal(0, 20, SHAPE), rng.rayleigh(5, SHAPE)).astype(np.int16)
    stored = np.asfortranarray(stored)  # as read from a file
    removed = inside & (a > 30) & (s < 0)  # the front and lower half of the face
    return stored, removed


def _panels(path: Path) -> list[np.ndarray]:
    """The picture's panels, split at the black columns between them."""
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    used = img.sum(axis=(0, 2)) > 0
    panels, start = [], None
    for x, on in enumerate(np.append(used, False)):
        if on and start is None:
            start = x
        elif not on and start is not None:
            panels.append(img[:, start:x])
            start = None
    return panels


def _red(panel: np.ndarray) -> np.ndarray:
    return (panel[..., 0] > panel[..., 1] + 60) & (panel[..., 1] == panel[..., 2])


def _rows_cols(mask: np.ndarray, panel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each True pixel, as fractions of the panel's drawn (non-black) extent."""
    drawn = panel.sum(axis=2) > 0
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    y, x = np.nonzero(mask)
    return (y - rows[0]) / (rows[-1] - rows[0]), (x - cols[0]) / (cols[-1] - cols[0])


def test_picture_shows_the_removed_region_front_and_low(head, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stored, removed = head
    out = qc_picture(stored, removed, AFFINE, tmp_path / "q.png", scale=(0.5, 10.0), modality="MR")
    assert out.stat().st_mode & 0o777 == 0o600
    panels = _panels(out)
    assert len(panels) == len(SLICES) + 2
    for panel in panels[:-1]:
        red = _red(panel)
        assert red.sum() > 200, "the removed region is not shown"
        rows, cols = _rows_cols(red, panel)
        if panel is panels[len(SLICES)]:  # the front view: the lower part of the face, both sides
            assert rows.min() > 0.3 and cols.min() < 0.3 and cols.max() > 0.7
        else:  # sagittal slices: anterior right, inferior down
            assert rows.min() > 0.3 and cols.min() > 0.5
    # the side view: the removed region spans the head's width, so the surface has a notch there
    # (front and low), which the picture of the whole head has not
    whole = _panels(qc_picture(stored, None, AFFINE, tmp_path / "w.png", scale=(0.5, 10.0)))[-1]
    side = panels[-1]
    assert side.shape == whole.shape

    def corner(panel: np.ndarray) -> int:
        h, w = panel.shape[:2]
        return int((panel[int(h * 0.65):int(h * 0.85), int(w * 0.75):int(w * 0.9)].sum(axis=2) > 0).sum())

    assert corner(side) < 0.1 * corner(whole)
    # the middle sagittal slice in square pixels of the finest voxel size (1.5 mm): the head is
    # 160 mm long there and 140 mm high (or a bit less)
    drawn = panels[1].sum(axis=2) > 0
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    assert 150 <= (cols[-1] - cols[0]) * 1.5 <= 165 and 130 <= (rows[-1] - rows[0]) * 1.5 <= 145


def test_picture_without_removal_has_no_red(head, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stored, _ = head
    out = qc_picture(stored, None, AFFINE, tmp_path / "q.png")
    assert not any(_red(p).any() for p in _panels(out))
    out = qc_picture(stored, np.zeros(SHAPE, bool), AFFINE, tmp_path / "q.png")
    assert not any(_red(p).any() for p in _panels(out))
