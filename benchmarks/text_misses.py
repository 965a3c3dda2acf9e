"""Where ``detect_text`` loses the glyph pixels of identifying lines (issue 13), and the measures
of a seed, to aim and check a change of the detector.

    python benchmarks/text_misses.py [--seed 0] [--frames 360] [--worst 25] [--json PATH]

Runs the detector's own steps (``medcloak.pixels.text``: planes, glyph table, horizontal lines,
then the columns' pass on the glyphs left) on the frames of ``tests/textset.py`` of one seed,
recording every chain judged (its glyphs, its probability, accepted or not) and every accepted
line's glyphs after growing. Its boxes are checked to be ``detect_text``'s. Every glyph pixel of
an identifying line outside the boxes is given one cause, from the best state of the glyphs
whose box holds it (a glyph's box, not its pixels: the table keeps no labels):

- ``no glyph``: inside no glyph's box;
- ``not chained``: only in glyphs that were in no chain of at least three;
- ``rejected``: in a glyph of a chain the trees (or the core rule) rejected;
- ``used``: in a glyph of an accepted line (a box clipped, or the line's box cut short);

and the line it belongs to is ``in part`` (some of its glyph pixels are covered) or ``missed``
(none). Printed: the issue's measures (as ``bench_text.py``'s), the US1_UNCR real power Doppler
frame's flow under boxes (as ``tests/test_text_detect.py`` measures it), the lost glyph pixels
by cause and by kind of line (as shares of all identifying glyph pixels), and the worst lines
with what the chains over them were (probability, glyphs, how much of the chain's box lies in
the line's box: a chain that took in anatomy has little). Measures only: no timing.
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

CAUSES = ("no glyph", "not chained", "rejected", "used")


class Recorder:
    """Wraps ``text._judge`` and ``text._grow`` to record each pass's chains and lines."""

    def __init__(self, text) -> None:  # type: ignore[no-untyped-def]
        self.text = text
        self.judged: list[tuple[np.ndarray, bool, bool]] = []  # members, accepted, core
        self.probs: list[float] = []
        self.grown: list[np.ndarray] = []
        self._judge, self._grow, self._prob = text._judge, text._grow, text.probability

    def __enter__(self):  # type: ignore[no-untyped-def]
        t = self.text

        def judge(table, chains, turned, core, record, *rest, **kw):  # type: ignore[no-untyped-def]
            ok = self._judge(table, chains, turned, core, record, *rest, **kw)
            self.judged.extend((np.asarray(m), bool(v), core) for m, v in zip(chains, ok))
            return ok

        def grow(table, members, pool):  # type: ignore[no-untyped-def]
            out = self._grow(table, members, pool)
            self.grown.append(np.asarray(out))
            return out

        def prob(x):  # type: ignore[no-untyped-def]
            p = self._prob(x)
            self.probs.extend(float(v) for v in p)
            return p

        t._judge, t._grow, t.probability = judge, grow, prob
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self.text._judge, self.text._grow, self.text.probability = self._judge, self._grow, self._prob

    def take(self) -> tuple[list, list, list]:
        out = (self.judged, self.probs, self.grown)
        self.judged, self.probs, self.grown = [], [], []
        return out


def analyse(image: np.ndarray, bits: int | None):  # type: ignore[no-untyped-def]
    """The detector's boxes and, per glyph of its table, its best state (0 not chained, 1 in a
    rejected chain, 2 in an accepted line), its chains (table rows, probability, accepted), and the
    table."""
    from medcloak_kernels import text as k

    from medcloak.pixels import text

    planes = text._display(image, bits)
    table = text._glyphs(planes, text._rgb8(image, bits) if image.ndim == 3 else None)
    state = np.zeros(len(table), np.int8)
    chains = []
    with Recorder(text) as rec:
        _, used = text._lines(table, False)
        passes = [(rec.take(), np.arange(len(table)))]
        rest_idx = np.flatnonzero(~used)
        if len(rest_idx):
            turned = table[rest_idx].copy()
            turned[:, :4] = table[rest_idx][:, [1, 0, 3, 2]]
            turned[:, [k.RUNS_H, k.RUNS_V]] = table[rest_idx][:, [k.RUNS_V, k.RUNS_H]]
            text._lines(turned, True)
            passes.append((rec.take(), rest_idx))
    for (judged, probs, grown), back in passes:
        # probabilities are recorded per judge call in order; the core rule may reject p >= LINE_P
        for (members, ok, core), p in zip(judged, probs):
            rows = back[members]
            state[rows] = np.maximum(state[rows], 1)
            chains.append((rows, p, ok, core))
        for members in grown:
            state[back[members]] = 2
    boxes = text.detect_text(image, bits_stored=bits)
    return boxes, state, chains, table


def frame_misses(fr, boxes, state, chains, table) -> list[dict]:  # type: ignore[no-untyped-def]
    """Per identifying line: its glyph pixels, covered, lost by cause, and the chains over it."""
    h, w = fr.image.shape[:2]
    covered = textmetrics.box_mask(boxes, (h, w))
    best = np.full((h, w), -1, np.int8)  # best state of the glyph boxes over each pixel
    for s in (0, 1, 2):
        for x0, y0, x1, y1 in table[state == s, :4]:
            sl = best[y0:y1, x0:x1]
            np.maximum(sl, s, out=sl)
    out = []
    for ln in fr.lines:
        if not ln.identifying:
            continue
        x0, y0, x1, y1 = ln.box
        mask = ln.mask
        lost = mask & ~covered[y0:y1, x0:x1]
        b = best[y0:y1, x0:x1][lost]
        by = {c: int((b == s).sum()) for c, s in zip(CAUSES, (-1, 0, 1, 2))}
        over = []
        for rows, p, ok, core in chains:
            r = table[rows]
            cx0, cy0, cx1, cy1 = r[:, 0].min(), r[:, 1].min(), r[:, 2].max(), r[:, 3].max()
            ix = max(0, min(cx1, x1) - max(cx0, x0)) * max(0, min(cy1, y1) - max(cy0, y0))
            if ix == 0:
                continue
            purity = ix / max(1, (cx1 - cx0) * (cy1 - cy0))
            over.append({"p": round(p, 3), "ok": ok, "core": core, "glyphs": len(rows),
                         "in_line": round(float(purity), 2), "box": [int(v) for v in (cx0, cy0, cx1, cy1)]})
        out.append({"glyphs": int(mask.sum()), "covered": int(mask.sum() - lost.sum()), "lost": by,
                    "size": ln.size, "low": ln.low_contrast, "place": ln.place, "colour": ln.colour,
                    "rotated": ln.rotated, "text_len": len(ln.text), "contrast": round(ln.contrast, 1),
                    "box": list(ln.box), "rep": fr.representation, "source": fr.source,
                    "chains": sorted(over, key=lambda c: -c["p"])[:6]})
    return out


def us1_flow() -> float | None:
    """The share of US1_UNCR's real power Doppler flow under ``detect_text``'s boxes (as the test)."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        return None
    import medcloak

    path = get_testdata_file("US1_UNCR.dcm")
    if path is None:
        return None
    img = pydicom.dcmread(path).pixel_array
    sat = img.astype(np.int32).max(axis=2) - img.astype(np.int32).min(axis=2)
    flow = np.zeros(sat.shape, bool)
    flow[110:330, 70:560] = sat[110:330, 70:560] > 60
    found = textmetrics.box_mask(medcloak.detect_text(img), sat.shape)
    return float(found[flow].mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--worst", type=int, default=25)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    frames, scores, lines = [], [], []
    for i in range(a.frames):
        fr = textset.make_frame(i, a.seed)
        boxes, state, chains, table = analyse(fr.image, fr.bits)
        sc = textmetrics.score_frame(fr, boxes)
        lines += [dict(m, frame=i) for m in frame_misses(fr, boxes, state, chains, table)]
        fr.image = fr.image[:1, :1]  # keep the ground truth, not the pixels
        frames.append(fr)
        scores.append(sc)
    s = textmetrics.summarise(frames, scores)
    total = sum(m["glyphs"] for m in lines)
    figures = {
        "seed": a.seed, "glyph_pixels_covered": round(s["glyph_pixels_covered"], 4),
        "lines_98": round(100 * s["lines_98"], 2), "false_text_mean": round(100 * s["false_area_text_mean"], 3),
        "false_free_mean": round(100 * s["false_area_free_mean"], 3),
        "false_free_median": round(100 * s["false_area_free_median"], 3),
        "false_free_max": round(100 * s["false_area_free_max"], 3),
        "doppler_flow": round(100 * (s["flow_covered_mean"] or 0.0), 2),
        "us1_flow": None,
    }
    u = us1_flow()
    figures["us1_flow"] = None if u is None else round(100 * u, 1)
    print(json.dumps(figures))
    print(f"fonts: {textset.font_set()}")
    lost: dict = defaultdict(int)
    for m in lines:
        part = "in part" if m["covered"] else "missed"
        for c, v in m["lost"].items():
            lost[(part, c)] += v
    print("lost glyph pixels, share of all identifying glyph pixels (line in part / line missed):")
    for c in CAUSES:
        print(f"  {c:12s} {lost[('in part', c)] / total:.4f} / {lost[('missed', c)] / total:.4f}")
    for key in ("low", "size", "place", "rep", "rotated"):
        g: dict = defaultdict(lambda: [0, 0])
        for m in lines:
            v = m[key] if key != "size" else textmetrics.size_bucket(m["size"])
            g[v][0] += m["glyphs"] - m["covered"]
            g[v][1] += m["glyphs"]
        print(f"  by {key}: " + ", ".join(f"{k}: lost {v[0] / total:.4f} (of its own {v[0] / v[1]:.3f})"
                                        for k, v in sorted(g.items(), key=lambda kv: str(kv[0]))))
    worst = sorted(lines, key=lambda m: -(m["glyphs"] - m["covered"]))[: a.worst]
    print(f"worst {len(worst)} lines (lost share of all, coverage, cause pixels; chains over them):")
    for m in worst:
        print(f"  f{m['frame']:3d} {m['size']:2d}px {'low' if m['low'] else 'nor'} {m['place']:7s} {m['colour']:6s} "
              f"{m['rep']:7s} {'rot' if m['rotated'] else '   '} c={m['contrast']:5.1f} "
              f"lost {(m['glyphs'] - m['covered']) / total:.4f} cov {m['covered'] / m['glyphs']:.2f} "
              f"{ {k: v for k, v in m['lost'].items() if v} } box {m['box']}")
        for c in m["chains"][:3]:
            print(f"        chain p={c['p']:.3f} ok={c['ok']} core={c['core']} n={c['glyphs']} "
                  f"in_line={c['in_line']} box={c['box']}")
    if a.json:
        Path(a.json).write_text(json.dumps({"figures": figures, "lines": lines}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
