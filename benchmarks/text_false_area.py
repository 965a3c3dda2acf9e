"""Where ``detect_text``'s false area on frames with text comes from (issue 13), to aim and check
a change of the box padding or of a check against false lines.

    python benchmarks/text_false_area.py [--seed 0] [--frames 360] [--set NAME=VALUE ...]

Runs ``detect_text`` on the frames of ``tests/textset.py`` of one seed with ``_lines`` and
``_grow`` wrapped, so each box is known as three nested boxes in its line's own frame: its
glyphs' (after growing), its line's (after the rescan, exact-level and flat-ends steps) and the
padded one returned. Each false pixel (under a box, outside every true line's box dilated by 4
px: ``textmetrics.false_area``) is given the first of these causes among the boxes over it:

- ``glyphs``: inside a true line's glyph box (glyphs grown beyond the text);
- ``overrun``: inside a true line's line box, beyond its glyph box (rescan / exact / flat ends);
- ``pad across`` / ``pad ends``: the padding of a true line (PAD / END_FRACTION);
- ``false line``: a box that meets no true line's dilated box, by its glyphs' source (plane and
  polarity) and whether rotated.

A line is true when its glyph box meets a true line's box dilated by 4 px. Printed: the
measures (glyph pixels covered, false area on text frames as ``textmetrics``), the false area
by cause (mean share of the frame, over frames with text), and false lines by source and by
kind of frame. ``--set`` overrides module constants of ``medcloak.pixels.text`` (floats) to
try a variant. Measures only: no timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import textmetrics
import textset

CAUSES = ("glyphs", "overrun", "pad across", "pad ends", "false line")


def capture(text):  # type: ignore[no-untyped-def]
    """Wraps ``text._lines`` and ``text._grow``: a list receiving (turned, glyph box, line box)
    per line, in the line's own frame, in ``_detect``'s order."""
    got: list = []
    lines_, grow_ = text._lines, text._grow

    def lines(table, turned=False, record=None, planes=None):  # type: ignore[no-untyped-def]
        grown: list = []

        def grow(t, members, pool):  # type: ignore[no-untyped-def]
            out = grow_(t, members, pool)
            grown.append(out)
            return out

        text._grow = grow
        try:
            out, used = lines_(table, turned, record, planes)
        finally:
            text._grow = grow_
        for members, box in zip(grown, out):
            r = table[members]
            got.append((turned, (int(r[:, 0].min()), int(r[:, 1].min()), int(r[:, 2].max()), int(r[:, 3].max())),
                        box, int(np.bincount(r[:, -1]).argmax())))
        return out, used

    text._lines = lines
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--set", nargs="*", default=[])
    a = ap.parse_args(argv)
    from medcloak.pixels import text

    for s in a.set:
        name, value = s.split("=")
        setattr(text, name, float(value))
    got = capture(text)
    frames, scores = [], []
    cause = defaultdict(float)
    false_by = defaultdict(lambda: [0, 0.0])
    n_text = 0
    for i in range(a.frames):
        fr = textset.make_frame(i, a.seed)
        got.clear()
        boxes = text.detect_text(fr.image, bits_stored=fr.bits)
        assert len(boxes) == len(got)
        sc = textmetrics.score_frame(fr, boxes)
        h, w = fr.image.shape[:2]
        if fr.has_text:
            n_text += 1
            d = textmetrics.DILATE
            truth = textmetrics.box_mask(((x0 - d, y0 - d, x1 + d, y1 + d) for x0, y0, x1, y1 in
                                          (ln.box for ln in fr.lines)), (h, w))
            rank = np.full((h, w), len(CAUSES), np.int8)
            for (turned, g, ln, src), b in zip(got, boxes):
                t = (lambda x: (x[1], x[0], x[3], x[2])) if turned else (lambda x: x)
                gm = textmetrics.box_mask([t(g)], (h, w))
                real = bool((gm & truth).any())
                if not real:
                    bm = textmetrics.box_mask([b], (h, w)) & ~truth
                    np.minimum(rank, np.where(bm, 4, 9).astype(np.int8), out=rank)
                    key = f"src {src} {'rot' if turned else 'row'}"
                    false_by[key][0] += 1
                    false_by[key][1] += bm.sum() / (h * w)
                    kk = f"kind {fr.representation} {fr.source.split(':')[0]}"
                    false_by[kk][0] += 1
                    false_by[kk][1] += bm.sum() / (h * w)
                    continue
                x0, y0, x1, y1 = ln
                across = textmetrics.box_mask([t((x0, b[1] if not turned else b[0], x1,
                                                  b[3] if not turned else b[2]))], (h, w))
                for k, m in ((0, gm), (1, textmetrics.box_mask([t(ln)], (h, w))), (2, across),
                             (3, textmetrics.box_mask([b], (h, w)))):
                    np.minimum(rank, np.where(m, k, 9).astype(np.int8), out=rank)
            f = ~truth
            for k, c in enumerate(CAUSES):
                cause[c] += float(((rank == k) & f).sum()) / (h * w)
        fr.image = fr.image[:1, :1]
        frames.append(fr)
        scores.append(sc)
    s = textmetrics.summarise(frames, scores)
    print(json.dumps({"seed": a.seed, "set": a.set, "glyph_pixels_covered": round(s["glyph_pixels_covered"], 5),
                      "lines_98": round(100 * s["lines_98"], 2),
                      "false_text_mean": round(100 * s["false_area_text_mean"], 3),
                      "false_free_max": round(100 * s["false_area_free_max"], 3),
                      "doppler_flow": round(100 * (s["flow_covered_mean"] or 0.0), 2)}))
    print(f"fonts: {textset.font_set()}")
    print("false area on text frames by cause (mean % of the frame): " +
          ", ".join(f"{c}: {100 * v / n_text:.3f}" for c, v in cause.items()))
    for key, (n, v) in sorted(false_by.items(), key=lambda kv: -kv[1][1]):
        print(f"  false lines {key:28s} n={n:3d} area {100 * v / n_text:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
