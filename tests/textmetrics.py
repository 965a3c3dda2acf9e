"""The measures of a text detector on the frames of ``tests/textset.py`` (issue 13's columns).

Boxes are (x0, y0, x1, y1) with ends exclusive, clipped to the frame; empty or inverted boxes
cover nothing. What is measured:

- per line, ``coverage``: the share of its glyph pixels (``Line.mask``) inside the union of the
  returned boxes;
- ``glyph_pixels_covered``: identifying glyph pixels covered over all identifying glyph pixels
  (pooled over frames, so long lines weigh more);
- ``lines_98``: the share of identifying lines at least 98 % covered;
- per frame, ``false_area``: the area of the union of the boxes outside every line's box
  dilated by 4 px (identifying and known-safe lines alike), as a share of the frame's area;
  reported as the mean over frames with text, and the mean, median and maximum over frames
  without text;
- ``flow_covered``: on colour Doppler frames, the share of flow pixels inside the boxes (mean);
- ``false_area_by_kind``: the false area's mean and maximum per kind of frame (text, anatomy,
  ruler, ecg, doppler, graphics);
- breakdowns of the identifying lines (glyph pixels covered, lines >= 98 %, count) by size
  bucket (7-9, 10-14, 15-24, 25-40 px), contrast (low / normal), rotation, colour, place,
  anti-aliasing and representation (display, rgb, stored).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from textset import SIZE_BUCKETS, Frame, Line

DILATE = 4
FULL = 0.98


def box_mask(boxes: Iterable[Sequence[int]], shape: tuple[int, int]) -> np.ndarray:
    """The union of the boxes, clipped to an image of ``shape`` (rows, columns)."""
    h, w = shape
    m = np.zeros((h, w), dtype=bool)
    for b in boxes:
        x0, y0, x1, y1 = (int(v) for v in b)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x0 < x1 and y0 < y1:
            m[y0:y1, x0:x1] = True
    return m


def line_coverage(line: Line, covered: np.ndarray) -> float:
    """Share of the line's glyph pixels inside ``covered`` (the union of the boxes)."""
    x0, y0, x1, y1 = line.box
    n = int(line.mask.sum())
    if n == 0:
        return 1.0
    return float((covered[y0:y1, x0:x1] & line.mask).sum()) / n


def false_area(frame: Frame, covered: np.ndarray) -> float:
    """Share of the frame covered by boxes outside the lines' boxes dilated by DILATE px."""
    h, w = covered.shape
    text = box_mask(((x0 - DILATE, y0 - DILATE, x1 + DILATE, y1 + DILATE)
                     for x0, y0, x1, y1 in (ln.box for ln in frame.lines)), (h, w))
    return float((covered & ~text).sum()) / (h * w)


@dataclass
class FrameScore:
    coverages: list[float]  # per line of the frame, in order
    glyphs: list[int]  # glyph pixels per line
    covered_glyphs: list[int]
    false_area: float
    flow_covered: float | None


def score_frame(frame: Frame, boxes: Iterable[Sequence[int]]) -> FrameScore:
    covered = box_mask(boxes, frame.image.shape[:2])
    cov, gl, cg = [], [], []
    for ln in frame.lines:
        x0, y0, x1, y1 = ln.box
        n = int(ln.mask.sum())
        c = int((covered[y0:y1, x0:x1] & ln.mask).sum())
        gl.append(n)
        cg.append(c)
        cov.append(c / n if n else 1.0)
    flow = None
    if frame.flow is not None and frame.flow.any():
        flow = float((covered & frame.flow).sum()) / int(frame.flow.sum())
    return FrameScore(cov, gl, cg, false_area(frame, covered), flow)


def size_bucket(size: int) -> str:
    for lo, hi in SIZE_BUCKETS:
        if lo <= size <= hi:
            return f"{lo}-{hi}px"
    return "other"


def _group(items) -> dict:
    out = {}
    for key, glyphs, covered, cov in items:
        g = out.setdefault(key, [0, 0, 0, 0])
        g[0] += glyphs
        g[1] += covered
        g[2] += cov >= FULL
        g[3] += 1
    return {k: {"glyphs": v[1] / v[0] if v[0] else 1.0, "lines_98": v[2] / v[3], "lines": v[3]}
            for k, v in sorted(out.items())}


def summarise(frames: Sequence[Frame], scores: Sequence[FrameScore]) -> dict:
    """The issue's columns and the breakdowns over a list of frames and their scores."""
    ident = []  # (line, frame, glyphs, covered, coverage)
    for fr, sc in zip(frames, scores, strict=True):
        for ln, n, c, cov in zip(fr.lines, sc.glyphs, sc.covered_glyphs, sc.coverages, strict=True):
            if ln.identifying:
                ident.append((ln, fr, n, c, cov))
    total = sum(n for _, _, n, _, _ in ident)
    with_text = [sc.false_area for fr, sc in zip(frames, scores) if fr.has_text]
    without = [sc.false_area for fr, sc in zip(frames, scores) if not fr.has_text]
    flows = [sc.flow_covered for sc in scores if sc.flow_covered is not None]
    by_kind: dict[str, list[float]] = {}
    for fr, sc in zip(frames, scores):
        by_kind.setdefault(fr.kind, []).append(sc.false_area)
    keys = {
        "size": lambda ln, fr: size_bucket(ln.size),
        "contrast": lambda ln, fr: "low" if ln.low_contrast else "normal",
        "rotation": lambda ln, fr: "90" if ln.rotated else "0",
        "colour": lambda ln, fr: ln.colour,
        "place": lambda ln, fr: ln.place,
        "antialias": lambda ln, fr: "aa" if ln.antialias else "mono",
        "representation": lambda ln, fr: fr.representation,
    }
    return {
        "frames": len(frames),
        "frames_without_text": len(without),
        "identifying_lines": len(ident),
        "glyph_pixels_covered": (sum(c for _, _, _, c, _ in ident) / total) if total else 1.0,
        "lines_98": (sum(cov >= FULL for *_, cov in ident) / len(ident)) if ident else 1.0,
        "false_area_text_mean": float(np.mean(with_text)) if with_text else 0.0,
        "false_area_free_mean": float(np.mean(without)) if without else 0.0,
        "false_area_free_median": float(np.median(without)) if without else 0.0,
        "false_area_free_max": float(np.max(without)) if without else 0.0,
        "flow_covered_mean": float(np.mean(flows)) if flows else None,
        "false_area_by_kind": {k: {"mean": float(np.mean(v)), "max": float(np.max(v)), "frames": len(v)}
                               for k, v in sorted(by_kind.items())},
        "by": {name: _group((f(ln, fr), n, c, cov) for ln, fr, n, c, cov in ident) for name, f in keys.items()},
    }


def evaluate(frames: Sequence[Frame], boxes_per_frame: Sequence[Iterable[Sequence[int]]]) -> dict:
    """``summarise`` of the frames scored against the boxes returned for each."""
    return summarise(frames, [score_frame(f, b) for f, b in zip(frames, boxes_per_frame, strict=True)])
