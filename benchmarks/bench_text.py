"""Burned-in text detection (issue 13): medcloak's detector against tesseract and RapidOCR's
detector on the frames of ``tests/textset.py`` (1024 x 768, seeded), in one run.

Detectors (each called once per frame, on the frame alone):
- ``medcloak``: ``medcloak.detect_text(image)`` on the frame's own values (uint8 grey, uint8
  RGB, or uint16 stored values at 10-16 bits, MONOCHROME1 as stored; with ``photometric`` and
  ``bits_stored`` for stored frames when it takes them, as a DICOM pipeline would). Imported lazily: when this
  checkout has no ``detect_text`` the row is skipped and the script says so;
- ``tesseract``: ``pytesseract.image_to_data`` (tesseract's default page segmentation, English),
  the boxes of the words with text (a non-empty string and a confidence >= 0), as
  presidio-image-redactor uses it; each call runs the tesseract program on a temporary PNG, which
  is its cost in use;
- ``rapidocr``: RapidOCR's text detector alone (``rapidocr_onnxruntime``, its PP-OCRv4 detector
  shipped in the wheel, ``use_det`` only, default thresholds), the axis-aligned box of each
  quadrilateral. Nothing is downloaded.
The peers read 8-bit pictures: stored frames are given to them windowed to the frame's 1st-99.5th
percentile (MONOCHROME1 inverted), a help the medcloak row does not get. RGB frames go to RapidOCR
in its BGR order.

Measures (``tests/textmetrics.py``): identifying glyph pixels covered, identifying lines >= 98 %
covered, false area (boxes outside the lines' boxes dilated by 4 px, share of the frame) as the
mean over frames with text and the mean / median / maximum over frames without text, the share of
colour Doppler flow pixels under boxes, and breakdowns by size, contrast, rotation, colour, place,
anti-aliasing and representation.

Speed: frames/s of each detector over the whole set (the accuracy pass, every frame once), and in
``--rounds`` interleaved rounds over the first ``--speed-frames`` frames (each round runs every
detector, the order rotating; median and range printed), with the ratio medcloak / tesseract of
each round. Each detector is warmed on one frame first (numba's kernels loaded or compiled,
ONNX session made). Each detector runs with its own default threads. The machine, its load
average before and after, and the file system of the temporary folder (tesseract's PNGs) are
printed.

Run: ``python benchmarks/bench_text.py [--frames 360] [--rounds 3] [--speed-frames 40]
[--only medcloak tesseract rapidocr] [--json PATH]``. Needs ``pip install -e '.[bench]'`` and the
tesseract program (Debian: ``apt-get install tesseract-ocr``). The script always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import file_system

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import textmetrics
import textset

GOALS = {"glyph_pixels_covered": 0.995, "lines_98": 1.0, "false_area_text_mean": 0.01,
         "false_area_free_median": 0.005}


def display8(frame: textset.Frame) -> np.ndarray:
    """The 8-bit picture the peers read: stored values windowed (MONOCHROME1 inverted)."""
    if frame.representation != "stored":
        return frame.image
    a = frame.image.astype(np.float32)
    lo, hi = np.percentile(a[::2, ::2], [1, 99.5])
    d = np.clip((a - lo) / max(hi - lo, 1.0) * 255.0, 0, 255)
    if frame.photometric == "MONOCHROME1":
        d = 255.0 - d
    return np.rint(d).astype(np.uint8)


def make_medcloak():
    try:
        import medcloak
    except ImportError as exc:
        return None, f"medcloak not importable ({exc})"
    fn = getattr(medcloak, "detect_text", None)
    if fn is None:
        return None, "this checkout's medcloak has no detect_text"
    import inspect

    params = inspect.signature(fn).parameters
    extra = "photometric" in params and "bits_stored" in params

    def run(f):
        if extra and f.representation == "stored":  # what a DICOM pipeline knows of the frame
            boxes = fn(f.image, photometric=f.photometric, bits_stored=f.bits)
        else:
            boxes = fn(f.image)
        return [tuple(int(v) for v in b) for b in boxes]
    return run, "detect_text" + (" (stored frames with their photometric and bits stored)" if extra else "")


def make_tesseract():
    try:
        import pytesseract
        from PIL import Image

        version = str(pytesseract.get_tesseract_version())
    except Exception as exc:  # noqa: BLE001 - any failure skips the row, said
        return None, f"tesseract not usable ({type(exc).__name__}: {exc})"

    def run(f):
        d = pytesseract.image_to_data(Image.fromarray(display8(f)), output_type=pytesseract.Output.DICT)
        return [(left, top, left + w, top + h)
                for text, conf, left, top, w, h in zip(d["text"], d["conf"], d["left"], d["top"],
                                                       d["width"], d["height"], strict=True)
                if str(text).strip() and float(conf) >= 0]
    return run, f"tesseract {version}"


def make_rapidocr():
    try:
        from importlib.metadata import version

        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        label = f"rapidocr_onnxruntime {version('rapidocr_onnxruntime')} (onnxruntime {version('onnxruntime')})"
    except Exception as exc:  # noqa: BLE001 - any failure skips the row, said
        return None, f"RapidOCR not usable ({type(exc).__name__}: {exc})"

    def run(f):
        img = display8(f)
        img = img[..., ::-1] if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        quads, _ = engine(np.ascontiguousarray(img), use_det=True, use_cls=False, use_rec=False)
        out = []
        for q in quads or []:
            q = np.asarray(q, dtype=np.float64)
            out.append((int(np.floor(q[:, 0].min())), int(np.floor(q[:, 1].min())),
                        int(np.ceil(q[:, 0].max())), int(np.ceil(q[:, 1].max()))))
        return out
    return run, label


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--speed-frames", type=int, default=40)
    ap.add_argument("--only", nargs="*", default=["medcloak", "tesseract", "rapidocr"])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"temporary folder: {tempfile.gettempdir()} on {file_system(Path(tempfile.gettempdir()))}")
    t = time.perf_counter()
    frames = textset.make_frames(args.frames, args.seed, (1024, 768))
    gen = time.perf_counter() - t
    n_ident = sum(ln.identifying for f in frames for ln in f.lines)
    print(f"test set: {len(frames)} frames 1024x768 (seed {args.seed}, backgrounds {textset.background_set()}, "
          f"fonts: {textset.font_set()}), {sum(f.has_text for f in frames)} with text, "
          f"{n_ident} identifying lines, {sum(not ln.identifying for f in frames for ln in f.lines)} "
          f"known-safe; made in {gen:.1f} s")

    makers = {"medcloak": make_medcloak, "tesseract": make_tesseract, "rapidocr": make_rapidocr}
    dets = {}
    for name in args.only:
        fn, label = makers[name]()
        if fn is None:
            print(f"SKIPPED {name}: {label}")
            continue
        fn(frames[0])  # warm-up
        dets[name] = fn
        print(f"{name}: {label}")

    results: dict[str, dict] = {}
    for name, fn in dets.items():
        boxes, spent = [], 0.0
        for f in frames:
            t = time.perf_counter()
            b = fn(f)
            spent += time.perf_counter() - t
            boxes.append(b)
        scores = [textmetrics.score_frame(f, b) for f, b in zip(frames, boxes, strict=True)]
        r = textmetrics.summarise(frames, scores)
        r["fps_all"] = len(frames) / spent
        r["false_area_doppler_max"] = max((sc.false_area for f, sc in zip(frames, scores) if f.kind == "doppler"),
                                          default=0.0)
        results[name] = r
        print(f"  {name}: accuracy pass {spent:.1f} s ({r['fps_all']:.2f} frames/s)", flush=True)

    speed: dict[str, list[float]] = {n: [] for n in dets}
    sub = frames[:args.speed_frames]
    names = list(dets)
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)] if names else []
        for name in order:
            t = time.perf_counter()
            for f in sub:
                dets[name](f)
            speed[name].append(len(sub) / (time.perf_counter() - t))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    print("\n| detector | identifying glyph pixels covered | identifying lines >= 98 % covered | "
          "false area, frames with text (mean) | false area, frames without text (mean / median / max) | "
          "Doppler: flow under boxes (mean), false area (max) | frames/s (all frames) | frames/s (rounds: median, range) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s = sorted(speed[name])
        sp = f"{np.median(s):.2f} ({s[0]:.2f}-{s[-1]:.2f})" if s else "-"
        print(f"| {name} | {r['glyph_pixels_covered']:.4f} | {pct(r['lines_98'])} | {pct(r['false_area_text_mean'])} | "
              f"{pct(r['false_area_free_mean'])} / {pct(r['false_area_free_median'])} / {pct(r['false_area_free_max'])} | "
              f"{pct(r['flow_covered_mean'])}, {pct(r['false_area_doppler_max'])} | {r['fps_all']:.2f} | {sp} |")
    if "medcloak" in speed and "tesseract" in speed and speed["medcloak"]:
        ratios = sorted(m / t for m, t in zip(speed["medcloak"], speed["tesseract"]))
        all_ratio = results["medcloak"]["fps_all"] / results["tesseract"]["fps_all"]
        print(f"\nmedcloak fps / tesseract fps: all frames {all_ratio:.1f}x; rounds median "
              f"{np.median(ratios):.1f}x (range {ratios[0]:.1f}-{ratios[-1]:.1f}x); goal >= 5x: "
              f"{'MET' if min(all_ratio, ratios[0]) >= 5 else 'MISSED'}")
    if "medcloak" in results:
        r = results["medcloak"]
        for key, goal in GOALS.items():
            ok = r[key] >= goal if key in ("glyph_pixels_covered", "lines_98") else r[key] <= goal
            print(f"goal {key} {'>=' if key in ('glyph_pixels_covered', 'lines_98') else '<='} {goal}: "
                  f"{r[key]:.4f} {'MET' if ok else 'MISSED'}")

    kinds = sorted({k for r in results.values() for k in r["false_area_by_kind"]})
    print("\nfalse area by kind of frame: mean / max (frames)")
    print("| detector | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for name, r in results.items():
        cells = [f"{pct(g['mean'])} / {pct(g['max'])} ({g['frames']})" if (g := r["false_area_by_kind"].get(k)) else "-"
                 for k in kinds]
        print(f"| {name} | " + " | ".join(cells) + " |")

    for group in ("size", "contrast", "rotation", "colour", "place", "antialias", "representation"):
        keys = sorted({k for r in results.values() for k in r["by"][group]},
                      key=lambda k: (int(k.split("-")[0]) if k[:1].isdigit() else 0, k))
        print(f"\nidentifying lines by {group}: glyph pixels covered / lines >= 98 % (lines)")
        print("| detector | " + " | ".join(keys) + " |")
        print("|---|" + "---|" * len(keys))
        for name, r in results.items():
            cells = []
            for k in keys:
                g = r["by"][group].get(k)
                cells.append("-" if g is None else f"{g['glyphs']:.3f} / {100 * g['lines_98']:.0f} % ({g['lines']})")
            print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "speed": speed}, indent=1, default=float))
        print(f"\nwritten: {args.json} ({file_system(args.json.parent)})")


if __name__ == "__main__":
    main()
