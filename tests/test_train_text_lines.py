"""The line classifier's training script (benchmarks/train_text_lines.py): its labels, and trees
written as flat arrays that medcloak's own walk (``medcloak_kernels.text.forest``) reads as
scikit-learn does."""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import train_text_lines as train


def test_labels_text_texture_and_left_out():
    x = np.arange(6, dtype=np.float64).reshape(6, 1)
    inside = np.array([0.0, 0.09, 0.1, 0.59, 0.6, 1.0])
    xs, ys = train.labelled(x, inside, 0.6, 0.1)
    assert xs[:, 0].tolist() == [0, 1, 4, 5]
    assert ys.tolist() == [False, False, True, True]
    xs, ys = train.labelled(x, inside, 0.5, 0.6)  # bands that meet: nothing left out
    assert len(xs) == 6 and ys.tolist() == [False, False, False, True, True, True]


def test_exported_trees_walk_as_scikit_learn_predicts(monkeypatch):
    pytest.importorskip("sklearn")
    from medcloak.pixels import text

    rng = np.random.default_rng(3)
    nf = len(text.FEATURES)
    x = rng.normal(size=(600, nf))
    y = x[:, 0] + 0.5 * x[:, 3] * x[:, 7] + 0.3 * rng.normal(size=600) > 0
    args = argparse.Namespace(trees=12, leaves=7, depth=3, rate=0.2, l2=1.0, min_leaf=5, text_weight=2.0)
    clf = train.fit(x, y, args)
    model = train.export(clf, text.FEATURES)
    monkeypatch.setattr(text, "_model", lambda: text._load(model))
    want = clf.predict_proba(x)[:, 1]
    assert np.allclose(text.probability(x), want, atol=1e-6)
    assert len(model["trees"]["roots"]) == 12
