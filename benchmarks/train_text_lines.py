"""Train the classifier that tells lines of text from chains of texture (``detect_text``'s last
decision) and write it to ``src/medcloak/pixels/data/text_lines.json``.

    pip install -e ".[train]"          # scikit-learn, for training only: medcloak walks the trees itself
    python benchmarks/train_text_lines.py [--seeds 2 3 4 5 6 7 8 9] [--frames 360]

Data: frames of the test set's generator (``tests/textset.py``) of the seeds given, never seed 0
(the benchmark's, ``bench_text.py``) nor seed 1 (kept for validation, reported at the end). Every
chain of glyphs the detector judges (and every core of a rejected chain) is a sample, with the
measures of ``medcloak.pixels.text.FEATURES``; it is labelled text when at least LABEL_IN of its
box lies inside the boxes of the frame's drawn lines (identifying or known-safe: both are text),
texture when less than LABEL_OUT does, and left out in between.

Two rounds: the first judges with no classifier (every chain rejected, so every core is measured
and every glyph is left for the columns' pass: the widest set of samples); the second judges with
the first round's trees, so that the samples are those the detector meets when it runs.

Model: scikit-learn's histogram gradient boosting (log loss), small trees; its trees are written
as flat arrays (feature, threshold, left, right, value; a leaf has feature -1) and the baseline,
which ``medcloak_kernels.text.forest`` sums and ``medcloak.pixels.text.probability`` turns into a
probability. The file records the seeds, the frames and the validation figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests")]

LABEL_IN, LABEL_OUT = 0.6, 0.1
OUT = os.path.join(HERE, "..", "src", "medcloak", "pixels", "data", "text_lines.json")


def samples(seeds, n, text, no_model: bool) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Measures and labels of every chain judged on the first ``n`` frames of each seed (made
    one at a time: a seed's 360 frames take about 1 GB)."""
    import textmetrics
    import textset

    if no_model:
        keep = text.probability
        text.probability = lambda x: np.zeros(len(x))
    xs, ys = [], []
    try:
        for fr in (textset.make_frame(i, seed) for seed in seeds for i in range(n)):
            record: list = []
            text._detect(fr.image, fr.bits if fr.representation == "stored" else None, record)
            mask = textmetrics.box_mask([ln.box for ln in fr.lines], fr.image.shape[:2])
            for turned, (x0, y0, x1, y1), row, _core in record:
                m = mask.T if turned else mask
                inside = float(m[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0
                if LABEL_OUT <= inside < LABEL_IN:
                    continue
                xs.append(row)
                ys.append(inside >= LABEL_IN)
    finally:
        if no_model:
            text.probability = keep
    return np.array(xs), np.array(ys)


def export(clf, features) -> dict:  # type: ignore[no-untyped-def]
    """The trees of a fitted HistGradientBoostingClassifier as flat arrays."""
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    for (predictor,) in clf._predictors:
        nodes = predictor.nodes
        base = len(feature)
        roots.append(base)
        for nd in nodes:
            leaf = bool(nd["is_leaf"])
            feature.append(-1 if leaf else int(nd["feature_idx"]))
            threshold.append(0.0 if leaf else float(nd["num_threshold"]))
            left.append(-1 if leaf else base + int(nd["left"]))
            right.append(-1 if leaf else base + int(nd["right"]))
            value.append(float(nd["value"]) if leaf else 0.0)
    return {
        "features": list(features),
        "baseline": float(np.ravel(clf._baseline_prediction)[0]),
        "trees": {"feature": feature, "threshold": threshold, "left": left,
                  "right": right, "value": [round(v, 9) for v in value], "roots": roots},
    }


def chain_figures(text, x: np.ndarray, y: np.ndarray) -> dict:  # type: ignore[no-untyped-def]
    p = text.probability(x) >= text.LINE_P
    return {"chains": len(y), "text chains": int(y.sum()), "text chains accepted": round(float(p[y].mean()), 4),
            "texture chains accepted": int((p & ~y).sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8, 9])
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--leaves", type=int, default=15)
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    if {0, 1} & set(a.seeds):
        ap.error("seeds 0 (the benchmark's) and 1 (validation) are not trained on")
    from sklearn.ensemble import HistGradientBoostingClassifier

    from medcloak.pixels import text

    t0 = time.time()
    model = None
    for rnd in (1, 2):
        x, y = samples(a.seeds, a.frames, text, no_model=rnd == 1)
        clf = HistGradientBoostingClassifier(max_iter=a.trees, max_leaf_nodes=a.leaves, learning_rate=0.1,
                                             l2_regularization=1.0, early_stopping=False, random_state=0)
        clf.fit(x, y)
        model = export(clf, text.FEATURES)
        with open(a.out, "w") as fh:
            json.dump(model, fh, separators=(",", ":"))
        text._model = lambda m=model: text._load(m)  # what --out holds, wherever it is
        check = clf.predict_proba(x[:2000])[:, 1]
        assert np.allclose(check, text.probability(x[:2000]), atol=1e-6), "exported trees differ from the model"
        print(f"round {rnd}: {len(y)} chains ({int(y.sum())} text): {time.time() - t0:.0f} s")
    xv, yv = samples([1], a.frames, text, no_model=False)
    assert model is not None
    model["trained"] = {"generator": "tests/textset.py", "seeds": a.seeds, "frames_per_seed": a.frames,
                        "trees": a.trees, "leaves": a.leaves, "validation (seed 1)": chain_figures(text, xv, yv)}
    with open(a.out, "w") as fh:
        json.dump(model, fh, separators=(",", ":"))
    print(json.dumps(model["trained"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
