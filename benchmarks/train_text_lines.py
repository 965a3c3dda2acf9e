"""Train the classifier that tells lines of text from chains of texture (``detect_text``'s last
decision) and write it to ``src/medcloak/pixels/data/text_lines.json``.

    pip install -e ".[train]"          # scikit-learn, for training only: medcloak walks the trees itself
    python benchmarks/train_text_lines.py [--seeds 2 3 ... 17] [--frames 360] [--jobs 2]
        [--rounds 2] [--trees 200] [--leaves 15] [--depth D] [--rate 0.1] [--l2 1.0]
        [--text-weight 1.0] [--label-in 0.6] [--label-out 0.1] [--cache DIR] [--out PATH]

Data: frames of the test set's generator (``tests/textset.py``) of the seeds given (2-17: twice
the 8 seeds used up to issue 13's fifth pass, what it gained is in benchmarks/README.md), never seed 0
(the benchmark's, ``bench_text.py``) nor seed 1 (kept for validation, reported at the end). Every
chain of glyphs the detector judges (and every core of a rejected chain) is a sample, with the
measures of ``medcloak.pixels.text.FEATURES``; it is labelled text when at least LABEL_IN of its
box lies inside the boxes of the frame's drawn lines (identifying or known-safe: both are text),
texture when less than LABEL_OUT does, and left out in between.

Rounds: the first judges with no classifier (every chain rejected, so every core is measured
and every glyph is left for the columns' pass: the widest set of samples); each next one judges
with the previous round's trees, so that the samples are those the detector meets when it runs.
With ``--pool``, a round's samples are pooled with the earlier rounds' (what the detector meets
with each set of trees: a chain the last trees accept and the previous ones rejected is still
seen; not the default). Two rounds
were the rule up to issue 13; ``--rounds`` says how many.

Samples are measured one seed at a time (frames made one at a time: a seed's 360 frames take
about 1 GB), ``--jobs`` seeds at once, and kept in ``--cache`` (keyed by the detector's and the
generator's source, the seed, the frames and the trees judging): a second training with other
settings or labels measures nothing again; a change of the detector measures everything again.

Model: scikit-learn's histogram gradient boosting (log loss), small trees; its trees are written
as flat arrays (feature, threshold, left, right, value; a leaf has feature -1) and the baseline,
which ``medcloak_kernels.text.forest`` sums and ``medcloak.pixels.text.probability`` turns into a
probability. The file records the seeds, the frames, the settings and the validation figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path[:0] = [os.path.join(ROOT, "tests")]

LABEL_IN, LABEL_OUT = 0.6, 0.1
OUT = os.path.join(ROOT, "src", "medcloak", "pixels", "data", "text_lines.json")
CACHE = os.path.join(ROOT, ".train_text_lines")


def _digest(model: dict | None) -> str:
    """What a seed's samples depend on: the detector's, its kernels' and the generator's source,
    and the trees that judge (none in the first round)."""
    import medcloak_kernels.text
    import textmetrics
    import textset

    from medcloak.pixels import text

    h = hashlib.sha256()
    for mod in (text, medcloak_kernels.text, textset, textmetrics):
        with open(mod.__file__, "rb") as fh:  # type: ignore[arg-type]
            h.update(fh.read())
    h.update(json.dumps(model, sort_keys=True).encode() if model is not None else b"none")
    return h.hexdigest()[:16]


def _seed_samples(seed: int, n: int, model: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Measures of every chain judged on the first ``n`` frames of ``seed`` (judged with
    ``model``'s trees, or with none: every chain rejected), and how much of each chain's box lies
    inside the boxes of the frame's drawn lines."""
    import textmetrics
    import textset

    from medcloak.pixels import text

    keep_p, keep_m = text.probability, text._model
    if model is None:
        text.probability = lambda x: np.zeros(len(x))
    else:
        text._model = lambda m=model: text._load(m)
    xs, inside = [], []
    try:
        for i in range(n):
            fr = textset.make_frame(i, seed)
            record: list = []
            text._detect(fr.image, fr.bits if fr.representation == "stored" else None, record)
            mask = textmetrics.box_mask([ln.box for ln in fr.lines], fr.image.shape[:2])
            for turned, (x0, y0, x1, y1), row, _core in record:
                m = mask.T if turned else mask
                inside.append(float(m[y0:y1, x0:x1].mean()) if x1 > x0 and y1 > y0 else 0.0)
                xs.append(row)
    finally:
        text.probability, text._model = keep_p, keep_m
    nf = len(text.FEATURES)
    return np.array(xs, np.float64).reshape(-1, nf), np.array(inside, np.float64)


def _cached(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    seed, n, model, cache = args
    path = None
    if cache:
        path = os.path.join(cache, f"seed{seed}-{n}-{_digest(model)}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                return z["x"], z["inside"]
    x, inside = _seed_samples(seed, n, model)
    if path:
        os.makedirs(cache, exist_ok=True)
        np.savez(path + ".part.npz", x=x, inside=inside)
        os.replace(path + ".part.npz", path)
    return x, inside


def measured(seeds, n: int, model: dict | None, cache: str | None, jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """Measures and box-inside shares of every chain judged on ``n`` frames of each seed."""
    work = [(s, n, model, cache) for s in seeds]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(min(jobs, len(work))) as ex:
            parts = list(ex.map(_cached, work))
    else:
        parts = [_cached(w) for w in work]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def labelled(x: np.ndarray, inside: np.ndarray, label_in: float, label_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Text at least ``label_in`` inside the drawn lines' boxes, texture below ``label_out``, the
    rest left out."""
    keep = (inside >= label_in) | (inside < label_out)
    return x[keep], inside[keep] >= label_in


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
    ok = text.probability(x) >= text.needed(x)
    return {"chains": len(y), "text chains": int(y.sum()), "text chains accepted": round(float(ok[y].mean()), 4),
            "texture chains accepted": int((ok & ~y).sum())}


def fit(x: np.ndarray, y: np.ndarray, a: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(max_iter=a.trees, max_leaf_nodes=a.leaves, max_depth=a.depth,
                                         learning_rate=a.rate, l2_regularization=a.l2,
                                         min_samples_leaf=a.min_leaf, early_stopping=False, random_state=0)
    weight = np.where(y, a.text_weight, 1.0)
    clf.fit(x, y, sample_weight=weight)
    return clf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(2, 18)))
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of measuring and training (the first with no trees)")
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--leaves", type=int, default=15)
    ap.add_argument("--depth", type=int, default=None, help="deepest a tree may be (none: leaves alone limit it)")
    ap.add_argument("--rate", type=float, default=0.1, help="learning rate")
    ap.add_argument("--l2", type=float, default=1.0, help="l2 regularisation of the leaves' values")
    ap.add_argument("--min-leaf", type=int, default=20, help="fewest samples in a leaf")
    ap.add_argument("--text-weight", type=float, default=1.0, help="weight of a text chain (texture: 1)")
    ap.add_argument("--label-in", type=float, default=LABEL_IN)
    ap.add_argument("--label-out", type=float, default=LABEL_OUT)
    ap.add_argument("--pool", action="store_true", help="train each round on every round's samples so far")
    ap.add_argument("--jobs", type=int, default=1, help="seeds measured at once (about 1 GB each)")
    ap.add_argument("--cache", default=CACHE, help="folder of measured samples ('' for none)")
    ap.add_argument("--validate", type=int, nargs="*", default=[1], help="seeds whose chains are reported")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args(argv)
    if {0, 1} & set(a.seeds):
        ap.error("seeds 0 (the benchmark's) and 1 (validation) are not trained on")
    if 0 in a.validate:
        ap.error("seed 0 is the benchmark's: not looked at in training")

    from medcloak.pixels import text

    t0 = time.time()
    model: dict | None = None
    xs, ys = [], []
    for rnd in range(1, a.rounds + 1):
        x, inside = measured(a.seeds, a.frames, model, a.cache, a.jobs)
        x, y = labelled(x, inside, a.label_in, a.label_out)
        if a.pool:
            xs.append(x)
            ys.append(y)
            x, y = np.concatenate(xs), np.concatenate(ys)
        clf = fit(x, y, a)
        model = export(clf, text.FEATURES)
        text._model = lambda m=model: text._load(m)  # what --out will hold, wherever it is
        check = clf.predict_proba(x[:2000])[:, 1]
        assert np.allclose(check, text.probability(x[:2000]), atol=1e-6), "exported trees differ from the model"
        print(f"round {rnd}: {len(y)} chains ({int(y.sum())} text): {time.time() - t0:.0f} s", flush=True)
    assert model is not None
    model["trained"] = {"generator": "tests/textset.py", "seeds": a.seeds, "frames_per_seed": a.frames,
                        "rounds": a.rounds, "pooled": a.pool, "trees": a.trees, "leaves": a.leaves,
                        "depth": a.depth, "rate": a.rate, "l2": a.l2, "min_leaf": a.min_leaf,
                        "text_weight": a.text_weight, "label_in": a.label_in, "label_out": a.label_out}
    for seed in a.validate:
        xv, inside = measured([seed], a.frames, model, a.cache, 1)
        model["trained"][f"validation (seed {seed})"] = chain_figures(text, *labelled(xv, inside, LABEL_IN, LABEL_OUT))
    with open(a.out, "w") as fh:
        json.dump(model, fh, separators=(",", ":"))
    print(json.dumps(model["trained"], indent=1))
    print(f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
