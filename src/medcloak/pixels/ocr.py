"""The optional OCR second opinion: keep the burned-in annotations a site lists as safe.

The text detector (:mod:`medcloak.pixels.text`) finds lines of text; it cannot tell a patient's
name from an orientation letter or a scale mark, so every box it returns is redacted. A site that
wants its orientation letters (L, R, A, P, H, F), scale marks ("5 cm") or probe and preset words
kept lists them in a safe list; with the ``ocr`` extra installed (a PP-OCR recogniser and detector
whose ONNX models ship inside the PyPI wheel of ``rapidocr_onnxruntime``: nothing is downloaded, at
install or at run time), each box is read and a box is kept unredacted only when all of these hold:

- the recogniser reads it with a confidence of at least the list's ``min_confidence``;
- the text read is, in whole, a sequence of safe tokens: spans of whole tokens (separated by
  spaces, or where digits and letters meet: "R5cm" is R, 5, cm) each equal to a listed word
  (case-insensitively, spaces inside a listed word optional: "5 cm" also matches "5cm") or
  matching a listed pattern in full; letters are never split from letters, so "LARA" is not
  "L" + "ARA" and is redacted;
- the PP-OCR detector, run on the box's crop, finds no second line there, and its line spans most
  of what is drawn in the box (a box whose recognised text covers only part of it is redacted).
  It does not see isolated single glyphs: where it finds no line, the recogniser's reading decides.

Everything else is redacted as the detector found it. The second opinion only ever removes boxes
from the redaction, never adds or moves one, and it fails closed: a box that OCR cannot read, reads
with low confidence (or as nothing), reads as anything not listed, or in which PP-OCR's detector
sees a second line, stays redacted.

Crops are prepared as the detector sees frames: stored values of any bit depth (grey or RGB) are
stretched to 8 bits between robust percentiles of the crop, a margin of the crop's background is
added around it (a single letter filling its crop is hard to read) and small text is enlarged to
the recogniser's line height. A box much taller than wide is read turned by 90 degrees both ways,
and the more confident reading is used.

Safe lists are TOML::

    [ocr]
    safe = ["L", "R", "A", "P", "H", "F", "cm", "5 cm", "10", "LIVER"]
    safe_patterns = ['^\\d{1,2}(\\.\\d)? ?cm$']
    min_confidence = 0.8

A pattern that would match an identifier (a long number, a date, a time, a name-like word) is
refused when the list is loaded: see :data:`CANARIES`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ProfileError

Box = tuple[int, int, int, int]

#: the default least confidence (the recogniser's mean character probability) of a kept box
MIN_CONFIDENCE = 0.8
#: values that no safe pattern may match in full: identifiers in the forms they are burned in
CANARIES = (
    "12345678", "1234567", "123456", "A1234567", "20240131", "2024-01-31", "31/01/2024", "01.31.2024",
    "31-JAN-2024", "123-45-6789", "12:34:56", "12:34", "SMITH", "John", "DOE^JOHN", "JOHN DOE", "Doe, John",
)
#: the crop's stretch: these percentiles of its values go to 0 and 255
STRETCH = (0.5, 99.5)
#: the recogniser's line height (PP-OCRv4 reads lines of 48 px); smaller crops are enlarged to it
LINE_HEIGHT = 48
#: the recogniser's least input width (PP-OCR pads lines to 320 px; 160 reads as well here at
#: half the cost)
READ_WIDTH = 160
#: onnxruntime threads per model: one (the run gives each worker a core; more threads than cores
#: cost four times as much on a busy machine)
THREADS = 1
#: margin added around a crop, as a fraction of its height
MARGIN = 0.35
#: a box at least this many times taller than wide is read turned by 90 degrees
TALL = 1.5
#: the detector's confirmation: the line it finds spans at least this fraction of the crop's text
#: extent (the crop without the added margin) along the line
SPAN = 0.6


@dataclass(frozen=True)
class SafeList:
    """The annotations a site keeps: listed words, patterns, and the least confidence."""

    words: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = ()
    min_confidence: float = MIN_CONFIDENCE

    @classmethod
    def of(cls, words: Iterable[str] = (), patterns: Iterable[str] = (),
           min_confidence: float = MIN_CONFIDENCE) -> SafeList:
        """A safe list from words and regular expressions (checked as :func:`parse_safe_list` does)."""
        keys = set()
        for w in words:
            if not isinstance(w, str) or not w.split():
                raise ProfileError("[ocr] safe: every entry must be a non-empty string")
            keys.add(_key(w))
        compiled = []
        for p in patterns:
            if not isinstance(p, str) or not p:
                raise ProfileError("[ocr] safe_patterns: every entry must be a non-empty string")
            try:
                rx = re.compile(p, re.IGNORECASE)
            except re.error as exc:
                raise ProfileError(f"[ocr] safe_patterns: {p!r} is not a regular expression: {exc}") from None
            for canary in CANARIES:
                if rx.fullmatch(canary):
                    raise ProfileError(f"[ocr] safe_patterns: {p!r} would keep identifiers (it matches {canary!r})")
            compiled.append(rx)
        if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
                or not 0.5 <= float(min_confidence) <= 1.0:
            raise ProfileError("[ocr] min_confidence must be a number between 0.5 and 1")
        return cls(frozenset(keys), tuple(compiled), float(min_confidence))

    def __bool__(self) -> bool:
        return bool(self.words or self.patterns)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` is, in whole, a sequence of safe tokens (see the module's docstring)."""
        tokens = _tokens(text)
        if not tokens:
            return False
        n = len(tokens)
        ok = [True] + [False] * n  # ok[j]: tokens[:j] is a sequence of safe spans
        for j in range(1, n + 1):
            for i in range(j - 1, -1, -1):
                if ok[i] and self._span(tokens[i:j]):
                    ok[j] = True
                    break
        return ok[n]

    def _span(self, tokens: Sequence[tuple[str, bool]]) -> bool:
        if "".join(t for t, _ in tokens).casefold() in self.words:
            return True
        text = "".join((" " + t) if spaced else t for t, spaced in tokens).lstrip()  # as read
        return any(rx.fullmatch(text) for rx in self.patterns)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Tokens (with whether a space came before each): whitespace-separated words, each also cut
    where digits and other characters meet ("R5cm" is R, 5, cm: the recogniser often drops the
    spaces of tight annotations); letters next to letters are never cut ("LARA" stays one token).
    Full-width forms (the model also reads Chinese, and sometimes returns "Ｒ") are read as their
    ASCII letters."""
    out = []
    for word in unicodedata.normalize("NFKC", text).split():
        out += [(m.group(), i == 0) for i, m in enumerate(_RUNS.finditer(word))]
    return out


_RUNS = re.compile(r"\d+|[^\d]+")


def _key(word: str) -> str:
    return "".join(unicodedata.normalize("NFKC", word).split()).casefold()


def parse_safe_list(doc: dict[str, Any], source: str = "safe list") -> SafeList:
    """The :class:`SafeList` of a parsed TOML document's ``[ocr]`` table."""
    table = doc.get("ocr")
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: no [ocr] table")
    unknown = set(table) - {"safe", "safe_patterns", "min_confidence"}
    if unknown:
        raise ProfileError(f"{source}: unknown keys in [ocr]: {', '.join(sorted(unknown))}")
    words, patterns = table.get("safe", []), table.get("safe_patterns", [])
    if not isinstance(words, list) or not isinstance(patterns, list):
        raise ProfileError(f"{source}: [ocr] safe and safe_patterns must be lists of strings")
    safe = SafeList.of(words, patterns, table.get("min_confidence", MIN_CONFIDENCE))
    if not safe:
        raise ProfileError(f"{source}: [ocr] lists nothing safe")
    return safe


def load_safe_list(path: str | Path) -> SafeList:
    """The safe list of a TOML file (``[ocr] safe = [...]``, ``safe_patterns``, ``min_confidence``)."""
    from ..rules.site_file import read_site_toml

    return parse_safe_list(read_site_toml(path, "the OCR safe list"), Path(path).name)


# ------------------------------------------------------------------------------- the models

_ENGINE: _Engine | None = None


class _Engine:
    """The PP-OCR recogniser and detector of ``rapidocr_onnxruntime``, loaded once per process."""

    def __init__(self, threads: int = THREADS) -> None:
        try:
            from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
            from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
            from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
            from rapidocr_onnxruntime.utils import read_yaml, update_model_path
        except ImportError as exc:
            raise MissingDependencyError(
                "an OCR safe list needs the ocr extra (pip install 'medcloak[ocr]', which installs "
                "rapidocr_onnxruntime with its models)") from exc
        config = update_model_path(read_yaml(str(DEFAULT_CFG_PATH)))
        for part in ("Det", "Rec"):
            if not Path(config[part]["model_path"]).is_file():  # the wheel ships them; never fetched
                raise MissingDependencyError("the OCR models are missing from the installed rapidocr_onnxruntime")
        det = dict(config["Det"], limit_type="max", limit_side_len=960)  # crops are small: no 736 px upscale
        # one crop per run, padded to at least READ_WIDTH: a box's reading depends on its pixels
        # only, never on the other boxes batched with it (padding changes what the model reads)
        rec = dict(config["Rec"], intra_op_num_threads=threads, rec_batch_num=1,
                   rec_img_shape=[3, 48, READ_WIDTH])
        self.rec = TextRecognizer(rec)
        self.det = TextDetector(dict(det, intra_op_num_threads=threads))

    def read(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        if not crops:
            return []
        return [(str(t), float(s)) for t, s in self.rec(crops)[0]]

    def lines(self, crop: np.ndarray) -> list[tuple[float, float, float, float]]:
        boxes, _ = self.det(crop)
        if boxes is None:
            return []
        out = []
        for quad in boxes:
            q = np.asarray(quad, float)
            out.append((q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()))
        return out


def engine() -> _Engine:
    """The loaded models (raises :class:`MissingDependencyError` without the ``ocr`` extra)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def available() -> bool:
    """Whether the ``ocr`` extra is installed (without loading the models)."""
    import importlib.util

    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


# ------------------------------------------------------------------------------- the crops

def _to8(crop: np.ndarray) -> np.ndarray:
    """The crop stretched to 8 bits between robust percentiles of its values (all channels)."""
    values = crop.astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(values, STRETCH))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(crop.shape, np.uint8)
    return np.clip((values - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def prepare(frame: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The box's crop as the recogniser wants it (H x W x 3 uint8, margin added, small text
    enlarged) and where the box's own pixels lie in it (x0, y0, x1, y1); None for an empty box."""
    import cv2

    x0, y0, x1, y1 = (int(v) for v in box)
    ny, nx = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(nx, x1), min(ny, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    crop = frame[y0:y1, x0:x1]
    if crop.ndim == 3:
        crop = crop[..., :3]
        if crop.dtype == np.bool_:
            crop = crop.astype(np.uint8)
    elif crop.ndim == 2:
        if crop.dtype == np.bool_:
            crop = crop.astype(np.uint8)
        crop = crop[..., None]
    else:
        raise ValueError("a frame must be 2-D grey or H x W x 3 colour")
    crop8 = _to8(crop)
    if crop8.shape[2] == 1:
        crop8 = np.repeat(crop8, 3, axis=2)
    h, w = crop8.shape[:2]
    scale = max(1.0, LINE_HEIGHT / min(h, w)) if h > TALL * w else max(1.0, LINE_HEIGHT / h)
    if scale > 1.0:
        crop8 = cv2.resize(crop8, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_CUBIC)
    h, w = crop8.shape[:2]
    m = max(2, round(MARGIN * min(h, w)))
    mx = m + max(0, (min(h, w) - w) // 2)
    background = np.median(crop8.reshape(-1, 3), axis=0)
    out = np.empty((h + 2 * m, w + 2 * mx, 3), np.uint8)
    out[:] = background.astype(np.uint8)
    out[m:m + h, mx:mx + w] = crop8
    return np.ascontiguousarray(out), (mx, m, mx + w, m + h)


def _turns(crop: np.ndarray, inner: tuple[int, int, int, int]) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """The crop as read: as it is, or turned both ways when it is tall (text rotated by 90 degrees)."""
    h, w = inner[3] - inner[1], inner[2] - inner[0]
    if h <= TALL * w:
        return [(crop, inner)]
    out = []
    ch, cw = crop.shape[:2]
    x0, y0, x1, y1 = inner
    # counter-clockwise: (x, y) -> (y, cw - x); clockwise: (x, y) -> (ch - y, x)
    out.append((np.ascontiguousarray(np.rot90(crop, 1)), (y0, cw - x1, y1, cw - x0)))
    out.append((np.ascontiguousarray(np.rot90(crop, -1)), (ch - y1, x0, ch - y0, x1)))
    return out


# ------------------------------------------------------------------------------- the decision

@dataclass(frozen=True)
class Reading:
    """What OCR made of one box: its text, confidence, and whether the box is kept."""

    box: Box
    text: str
    confidence: float
    kept: bool


def read_boxes(frame: Any, boxes: Sequence[Box], safe: SafeList) -> list[Reading]:
    """Read the boxes of ``frame`` and decide which the safe list keeps (see the module's
    docstring), in the order given. A box that lies inside a larger box already to be redacted
    is not read (whatever it holds is redacted anyway): its reading is empty, and it is redacted.
    """
    frame = np.asarray(frame)
    boxes = [tuple(int(v) for v in b) for b in boxes]
    if not boxes:
        return []
    ocr = engine()
    out: list[Reading | None] = [None] * len(boxes)
    redacted: list[Box] = []
    by_area = sorted(range(len(boxes)), key=lambda i: -max(0, boxes[i][2] - boxes[i][0]) * max(0, boxes[i][3] - boxes[i][1]))
    for i in by_area:
        box = boxes[i]
        prepared = None if any(_inside(box, r) for r in redacted) else prepare(frame, box)
        if prepared is None:
            out[i] = Reading(box, "", 0.0, False)
            redacted.append(box)
            continue
        views = _turns(*prepared)
        readings = ocr.read([crop for crop, _ in views])
        j = max(range(len(views)), key=lambda k: readings[k][1])
        (crop, inner), (text, score) = views[j], readings[j]
        kept = bool(score >= safe.min_confidence and safe.accepts(text) and _one_line(ocr, crop, inner))
        out[i] = Reading(box, text, score, kept)
        if not kept:
            redacted.append(box)
    return [r for r in out if r is not None]


def _inside(box: Box, outer: Box) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def _one_line(ocr: _Engine, crop: np.ndarray, inner: tuple[int, int, int, int]) -> bool:
    """Whether the PP-OCR detector agrees that the crop holds one line, spanning most of what is
    drawn in the box: two lines or more, or one line over part of the box, are refused. A crop in
    which it finds no line at all is left to the recogniser's reading: the detector does not see
    isolated single glyphs (an "R" over speckle), the very annotations safe lists name."""
    found = ocr.lines(crop)
    if len(found) > 1:
        return False
    if not found:
        return True
    x0, _, x1, _ = found[0]
    ix0, _, ix1, _ = inner
    return min(x1, ix1) - max(x0, ix0) >= SPAN * _ink_width(crop, inner)


def _ink_width(crop: np.ndarray, inner: tuple[int, int, int, int]) -> float:
    """The width of what is drawn in the box: the columns that differ from the background."""
    ix0, iy0, ix1, iy1 = inner
    part = crop[iy0:iy1, ix0:ix1].astype(np.int16)
    background = np.median(part.reshape(-1, 3), axis=0).astype(np.int16)
    ink = (np.abs(part - background).max(axis=2) > 48).any(axis=0)
    cols = np.flatnonzero(ink)
    return float(cols[-1] - cols[0] + 1) if len(cols) else float(ix1 - ix0)


def keep_safe(frame: Any, boxes: Sequence[Box], safe: SafeList | None) -> tuple[list[Box], list[tuple[Box, str]]]:
    """Split the detector's ``boxes`` into those to redact and those the safe list keeps.

    Returns ``(to_redact, kept)``: ``to_redact`` is every box not kept, in the order given;
    ``kept`` holds each kept box with the text read in it (safe by construction, so it may be
    recorded in the audit). Without a safe list (None or empty) every box is redacted and OCR is
    not loaded; with one, :class:`MissingDependencyError` is raised when the ``ocr`` extra is
    not installed.
    """
    boxes = [tuple(int(v) for v in b) for b in boxes]
    if not safe or not boxes:
        return list(boxes), []
    readings = read_boxes(frame, boxes, safe)
    return [r.box for r in readings if not r.kept], [(r.box, r.text) for r in readings if r.kept]
