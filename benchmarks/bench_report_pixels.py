"""The report's pixel section (:mod:`medcloak.report.pixels`) against the run whose release it
pictures, in the same script: the issue asks that the whole report of a 10 000-object release
cost at most 20 % of the run, so this section must cost a small part of that.

Corpus (made once, not timed): ``--series`` series of ``--per`` instances each, copies of small
pydicom test files (CT, MR, multi-frame MR, RLE, JPEG 2000 lossless, an RT dose: one file per
series, cycled) with new UIDs, instance numbers in order, five series per study, two studies per
patient, written under ``--tmp`` (a real disk: its file system is printed).

Timed, ``--rounds`` times, interleaved:

- ``run``: ``medcloak run IN --out OUT --workers W --quiet`` in a fresh process (a fresh release
  each round);
- ``pixels``: a fresh process that imports medcloak and builds the section on that release
  (``build(ctx)``: streaming the manifest, reading headers and frames, writing the pictures),
  whole process time, and the build alone as measured inside it.

Printed: the seconds of each, and the ratio pixels / run per round (best, median, worst). The
machine may be shared: read the spread.

Run: ``python benchmarks/bench_report_pixels.py [--series 100] [--per 30] [--rounds 3]
[--workers 2] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import file_system

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATES = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
             "rtdose.dcm")
BUILD = """
import sys, time, json
t0 = time.perf_counter()
from pathlib import Path
from medcloak.report import ReportContext
from medcloak.report import pixels
release, out = Path(sys.argv[1]), Path(sys.argv[2])
ctx = ReportContext(release, release.parent / (release.name + ".audit"), out)
t1 = time.perf_counter()
section = pixels.build(ctx)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "build": t2 - t1, "files": len(section.files),
                  "bytes": sum((out / f).stat().st_size for f in section.files), "notes": ctx.notes.get("pixels", [])}))
"""


def build_corpus(dest: Path, series: int, per: int) -> int:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    templates = []
    for name in TEMPLATES:
        path = get_testdata_file(name)
        if path is not None:
            templates.append(pydicom.dcmread(path))
    if not templates:
        raise SystemExit("no pydicom test files found")
    n = 0
    studies: dict[int, str] = {}
    for s in range(series):
        template = templates[s % len(templates)]
        study, series_uid = studies.setdefault(s // 5, generate_uid()), generate_uid()
        folder = dest / f"p{s // 10:04d}" / f"s{s:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per):
            ds = template.copy()
            sop = generate_uid()
            ds.SOPInstanceUID = sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.StudyInstanceUID = study
            ds.SeriesInstanceUID = series_uid
            ds.PatientID = f"BENCHRP{s // 10:05d}"
            ds.PatientName = f"BENCH^PATIENT{s // 10:05d}"
            ds.InstanceNumber = i + 1
            ds.save_as(folder / f"{i:05d}.dcm")
            n += 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--per", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-report-pixels-", dir=args.tmp))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels"),
                                                       os.environ.get("PYTHONPATH", "")]))
    try:
        count = build_corpus(base / "in", args.series, args.per)
        secret = base / "secret.key"
        secret.write_bytes(os.urandom(32))
        secret.chmod(0o600)
        print(f"corpus: {count} objects in {args.series} series of {args.per} ({', '.join(TEMPLATES)}, cycled)")
        print(f"file system: {file_system(base)}; cpus: {os.cpu_count()}; load: {os.getloadavg()[0]:.2f}; "
              f"medcloak run --workers {args.workers}")
        runs, whole, builds, ratios = [], [], [], []
        for r in range(args.rounds):
            out = base / f"out{r}"
            t = time.perf_counter()
            code = subprocess.run([sys.executable, "-m", "medcloak", "run", str(base / "in"), "--out", str(out),
                                   "--secret-file", str(secret), "--workers", str(args.workers), "--quiet"],
                                  env=env, capture_output=True, text=True, check=False).returncode
            run_s = time.perf_counter() - t
            ok = sum(1 for line in (base / f"out{r}.audit" / "manifest.jsonl").open() if '"status": "ok"' in line)
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", BUILD, str(out), str(base / f"report{r}")], env=env,
                                  capture_output=True, text=True, check=True)
            pix_s = time.perf_counter() - t
            info = json.loads(done.stdout.strip().splitlines()[-1])
            runs.append(run_s)
            whole.append(pix_s)
            builds.append(info["build"])
            ratios.append(pix_s / run_s)
            print(f"round {r + 1}: run {run_s:.2f} s (exit {code}, {ok} released); pixels section {pix_s:.2f} s "
                  f"(import {info['import']:.2f} s, build {info['build']:.2f} s; {info['files']} pictures, "
                  f"{info['bytes'] / 1024:.0f} KiB); ratio {100 * pix_s / run_s:.1f} %")
            if r == 0:
                for note in info["notes"]:
                    print(f"  note: {note}")
        print(f"run: best {min(runs):.2f} s, median {statistics.median(runs):.2f} s, worst {max(runs):.2f} s")
        print(f"pixels section (process): best {min(whole):.2f} s, median {statistics.median(whole):.2f} s, "
              f"worst {max(whole):.2f} s; build alone: best {min(builds):.2f} s, median {statistics.median(builds):.2f} s")
        print(f"ratio pixels / run: best {100 * min(ratios):.1f} %, median {100 * statistics.median(ratios):.1f} %, "
              f"worst {100 * max(ratios):.1f} % (goal for the whole report: at most 20 %)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
