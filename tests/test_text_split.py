"""The second look at chains of glyphs the line classifier rejected (medcloak.pixels.text, issue
13): a core of a chain that both looks nearly take (NEAR_P)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pydicom")
import textset
from textmetrics import box_mask, line_coverage

from medcloak.pixels import text as mt


def _table(seed: int, index: int):  # type: ignore[no-untyped-def]
    fr = textset.make_frame(index, seed=seed, size=(512, 384))
    planes = mt._display(fr.image, fr.bits)
    return mt._glyphs(planes), planes


@pytest.mark.parametrize("p, found", [(0.3, True), (0.2, False)])
def test_a_core_needs_only_near_p_when_its_chain_was_near_a_line(monkeypatch, p, found) -> None:  # type: ignore[no-untyped-def]
    # every chain and core given one probability under LINE_P: at or above NEAR_P, the cores
    # (and only they: every chain was rejected) are lines; below it, nothing is
    assert mt.NEAR_P <= 0.3 < mt.LINE_P
    table, _ = _table(1, 3)
    monkeypatch.setattr(mt, "probability", lambda x: np.full(len(x), p))
    record: list = []
    lines, _ = mt._lines(table, False, record)
    assert bool(lines) is found
    assert any(core for _, _, core in record) and any(not core for _, _, core in record)


@pytest.mark.parametrize("seed, index, line, least", [(1, 18, 1, 0.7), (0, 162, 2, 0.8), (1, 55, 1, 0.95)])
def test_low_contrast_lines_that_two_looks_nearly_take_are_found(seed, index, line, least) -> None:  # type: ignore[no-untyped-def]
    # 11 px grey and white lines 16-17 levels over anatomy, and a 26 px white MRN 21 levels over
    # it: their chains and cores were rejected at probabilities of 0.25-0.5 (none of the first two
    # covered, 0.72 of the third); each core, at NEAR_P, is a line (what it misses is for the
    # line's growing, not its judging)
    import medcloak

    fr = textset.make_frame(index, seed=seed)
    boxes = medcloak.detect_text(fr.image, bits_stored=fr.bits)
    assert line_coverage(fr.lines[line], box_mask(boxes, fr.image.shape[:2])) >= least
