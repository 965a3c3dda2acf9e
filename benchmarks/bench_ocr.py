"""The OCR second opinion's cost: time per box and per 1024x768 frame, against RapidOCR's own
whole-frame pipeline (PP-OCR detector + classifier + recogniser) on the same frames, in one run.

Frames: ``--frames`` 1024x768 frames made from pydicom's real backgrounds (the ultrasound
US1_UNCR, RGB, and CT_small stored as 16-bit grey with its own values, both enlarged), each with
``--lines`` lines of text drawn anti-aliased with Pillow's scalable default font (7 to 24 px): a
third safe annotations (orientation letters, "5 cm", "10"), the rest identifying (names, IDs,
dates). The boxes given to the second opinion are the drawn lines' boxes padded as the detector
pads them (the detector's own cost is not part of this benchmark).

Rows:

- ``keep_safe``: :func:`medcloak.pixels.ocr.keep_safe` on every frame with its boxes (crops,
  recogniser in batches, PP-OCR detector's confirmation on the boxes read as safe).
- ``rapidocr``: ``RapidOCR()(frame)`` on the same frames (8-bit display: the RGB frame, or the
  CT frame stretched as medcloak stretches it): what running PP-OCR over whole frames costs.

Also printed: how many safe boxes were kept and how many identifying boxes were kept (must be 0),
and per drawn line: safe lines left untouched by every redacted box, identifying lines at least
95 % inside redacted boxes (their padded box; the detector's boxes, with ``--detector``, cover
less than the drawn padding: that is the detector's figure), and identifying lines with a pixel
that some box covered but the boxes left to redact do not (what OCR took back: must be 0).

Timing: each row's best of ``--repeat`` rounds over all frames (rounds alternate between the rows);
the spread (worst / best) is printed. ``--threads N`` sets onnxruntime's threads per session (1 by
default, as medcloak runs it; 0 lets onnxruntime use every core). Nothing is written to disk. Only ratios mean
anything on a shared machine.

``--detector`` gives ``keep_safe`` the boxes of ``medcloak.detect_text`` (more boxes, overlapping,
and the backgrounds' own text); a kept box then counts as safe when it lies within a safe line's
box enlarged by half.

Run: ``python benchmarks/bench_ocr.py [--frames 24] [--lines 12] [--repeat 3] [--threads 1] [--detector]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

SAFE_TEXTS = ["L", "R", "A", "P", "H", "F", "5 cm", "10", "2 cm", "R 5 cm"]
NAMES = ["SMITH^JOHN", "LARA", "DOE, JANE", "ID 4481203", "12/03/2024", "MILLER ANNA", "PID 77120934",
         "KIM", "O'BRIEN^PAT", "DOB 1961-07-14", "ACC 5512903", "LEE^R"]


def _backgrounds() -> list[np.ndarray]:
    import pydicom
    from PIL import Image
    from pydicom.data import get_testdata_file

    us = pydicom.dcmread(get_testdata_file("US1_UNCR.dcm")).pixel_array
    us = np.asarray(Image.fromarray(us).resize((1024, 768), Image.BILINEAR))
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.float64)
    ct = np.asarray(Image.fromarray(ct.astype(np.float32)).resize((1024, 768), Image.BILINEAR)).round()
    return [us, ct.astype(np.int16)]


def make_frames(n: int, lines: int, seed: int = 13):
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    bases = _backgrounds()
    out = []
    for i in range(n):
        frame = bases[i % len(bases)].copy()
        value = 255 if frame.dtype == np.uint8 else int(frame.max())
        boxes, safe, taken = [], [], np.zeros(frame.shape[:2], bool)
        tries = 0
        while len(boxes) < lines and tries < 500:
            tries += 1
            is_safe = len(boxes) % 3 == 0
            text = (SAFE_TEXTS if is_safe else NAMES)[int(rng.integers(len(SAFE_TEXTS if is_safe else NAMES)))]
            font = ImageFont.load_default(int(rng.integers(7, 25)))
            l, t, r, b = font.getbbox(text)
            mask = Image.new("L", (r - l + 2, b - t + 2), 0)
            ImageDraw.Draw(mask).text((1 - l, 1 - t), text, fill=255, font=font)
            alpha = np.asarray(mask, np.float64) / 255.0
            h, w = alpha.shape
            p = max(2, round(0.15 * h))
            x, y = int(rng.integers(p, 1024 - w - p)), int(rng.integers(p, 768 - h - p))
            box = (x - p, y - p, x + w + p, y + h + p)
            if taken[box[1] - p:box[3] + p, box[0] - p:box[2] + p].any():
                continue
            taken[box[1]:box[3], box[0]:box[2]] = True
            region = frame[y:y + h, x:x + w]
            a = alpha[..., None] if region.ndim == 3 else alpha
            region[...] = np.round(region * (1 - a) + value * a).astype(frame.dtype)
            boxes.append(box)
            safe.append(is_safe)
        out.append((frame, boxes, safe))
    return out


def _within_safe(box, drawn, is_safe) -> bool:
    for (x0, y0, x1, y1), s in zip(drawn, is_safe):
        px, py = (x1 - x0) // 2, (y1 - y0) // 2
        if s and x0 - px <= box[0] and y0 - py <= box[1] and box[2] <= x1 + px and box[3] <= y1 + py:
            return True
    return False


def _display(frame: np.ndarray) -> np.ndarray:
    from medcloak.pixels.ocr import _to8

    f8 = frame if frame.dtype == np.uint8 else _to8(frame[..., None])[..., 0]
    return np.ascontiguousarray(f8 if f8.ndim == 3 else np.repeat(f8[..., None], 3, axis=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--detector", action="store_true",
                    help="give keep_safe the boxes of medcloak.detect_text instead of the drawn lines' boxes")
    args = ap.parse_args()

    from medcloak.pixels import ocr

    if not ocr.available():
        raise SystemExit("bench_ocr needs the ocr extra: pip install 'medcloak[ocr]'")
    from rapidocr_onnxruntime import RapidOCR

    threads = args.threads or -1
    safe = ocr.SafeList.of(["L", "R", "A", "P", "H", "F", "5 cm", "10", "2 cm"])
    frames = make_frames(args.frames, args.lines)
    lines = [(b, s) for _, b, s in frames]  # the drawn lines: box, safe or not
    if args.detector:
        from medcloak.pixels.text import detect_text

        t = time.perf_counter()
        found = [detect_text(f) for f, _, _ in frames]
        detect_s = time.perf_counter() - t
        ndrawn_lines = sum(len(b) for _, b, _ in frames)
        # kept boxes are counted as safe when they lie within a safe line's box (padded 50 %)
        frames = [(f, b, [_within_safe(x, bs, ss) for x in b]) for (f, bs, ss), b in zip(frames, found)]
    displays = [_display(f) for f, _, _ in frames]
    nboxes = sum(len(b) for _, b, _ in frames)

    t = time.perf_counter()
    ocr._ENGINE = ocr._Engine(threads)  # what ocr.engine() loads, with the threads asked
    load = time.perf_counter() - t
    full = RapidOCR(intra_op_num_threads=threads)

    kept_safe = kept_id = lines_whole = lines_covered = lines_bared = lines_touched = lines_restored = 0
    for (frame, boxes, is_safe), (drawn, drawn_safe) in zip(frames, lines):  # warm-up, and the decisions
        redact, kept = ocr.keep_safe(frame, boxes, safe)
        mask, every = np.zeros(frame.shape[:2], bool), np.zeros(frame.shape[:2], bool)
        for x0, y0, x1, y1 in redact:
            mask[y0:y1, x0:x1] = True
        for x0, y0, x1, y1 in boxes:
            every[y0:y1, x0:x1] = True
        for (x0, y0, x1, y1), s in zip(drawn, drawn_safe):
            if s:
                lines_whole += not mask[y0:y1, x0:x1].any()
                touched = every[y0:y1, x0:x1].any()
                lines_touched += touched
                lines_restored += touched and not mask[y0:y1, x0:x1].any()
            else:
                lines_covered += mask[y0:y1, x0:x1].mean() >= 0.95
                lines_bared += (every[y0:y1, x0:x1] & ~mask[y0:y1, x0:x1]).any()
        kept_boxes = {b for b, _ in kept}
        kept_safe += sum(1 for b, s in zip(boxes, is_safe) if s and b in kept_boxes)
        kept_id += sum(1 for b, s in zip(boxes, is_safe) if not s and b in kept_boxes)
    full(displays[0])

    times: dict[str, list[float]] = {"keep_safe": [], "rapidocr": []}
    for _ in range(args.repeat):
        t = time.perf_counter()
        for frame, boxes, _ in frames:
            ocr.keep_safe(frame, boxes, safe)
        times["keep_safe"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for d in displays:
            full(d)
        times["rapidocr"].append(time.perf_counter() - t)

    nsafe = sum(sum(s) for _, _, s in frames)
    print(f"{len(frames)} frames 1024x768, {nboxes} boxes ({nsafe} safe, {nboxes - nsafe} identifying); "
          f"onnxruntime threads: {args.threads or 'all'}; cores: {os.cpu_count()}; load of the models {load:.2f} s")
    if args.detector:
        print(f"detector boxes: {nboxes} for {ndrawn_lines} drawn lines plus the backgrounds' own text; detect_text "
              f"{1000 * detect_s / len(frames):.0f} ms/frame (first call includes numba's start-up)")
    ndrawn_safe = sum(sum(s) for _, s in lines)
    ndrawn = sum(len(s) for _, s in lines)
    print(f"drawn lines: {lines_whole}/{ndrawn_safe} safe ones left untouched by any redacted box "
          f"({lines_restored} of the {lines_touched} that boxes touched), "
          f"{lines_covered}/{ndrawn - ndrawn_safe} identifying ones >= 95 % inside redacted boxes, "
          f"{lines_bared} identifying ones with a pixel a box covered left unredacted by OCR")
    print(f"kept: {kept_safe}/{nsafe} safe boxes, {kept_id}/{nboxes - nsafe} identifying boxes")
    print(f"{'row':<10} {'ms/frame':>9} {'ms/box':>8} {'frames/s':>9} {'spread':>7}")
    for name, ts in times.items():
        b = min(ts)
        print(f"{name:<10} {1000 * b / len(frames):9.1f} {1000 * b / nboxes:8.2f} {len(frames) / b:9.2f} "
              f"{max(ts) / b:7.2f}")
    print(f"keep_safe / rapidocr time per frame: {min(times['keep_safe']) / min(times['rapidocr']):.2f}")


if __name__ == "__main__":
    main()
