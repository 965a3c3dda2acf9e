"""``medcloak report`` against the ``medcloak run`` that made the release, on the same release, in the
same script (the issue's goal: the report takes at most 20 % of the run's time).

Corpus (made once, not timed): ``--objects`` small DICOM objects (default 10 000), copies of
pydicom's ``CT_small.dcm`` and ``MR_small.dcm`` (alternating by series) with new Study, Series and
SOP Instance UIDs and new patient IDs, names, sexes and ages, grouped as 2 studies per patient,
2 series per study and ``--per-series`` instances per series (default 10, so 250 patients), under
one folder per patient.

Timed, each a fresh process as a user runs it, writing to the file system of ``--tmp`` (named in
the output):

- ``run``: ``medcloak run CORPUS --out RELEASE --quiet --option retain-patient-characteristics``
  (the command's default workers; ``--option`` chooses other options), once per round, each into
  a new release;
- ``report``: ``medcloak report RELEASE --out REPORT`` on the round's release, ``--reports``
  times (a new report folder each time).

Printed: the seconds of each, the ratio report / run per round (best, median and worst of the
reports against that round's run), the sections the report built (a section that does not exist
yet is an error box: its cost is nil), and the report folder's size. The machine may be shared:
read the spread, not one figure.

Run: ``python benchmarks/bench_report.py [--objects 10000] [--per-series 10] [--rounds 1]
[--reports 3] [--tmp DIR] [--keep]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import file_system

GOAL = 0.20


def build_corpus(dest: Path, n: int, per_series: int) -> str:
    """``n`` objects as described in the module's docstring; a note on how they were made."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    templates = [pydicom.dcmread(get_testdata_file(name)) for name in ("CT_small.dcm", "MR_small.dcm")]
    series_per_patient = 4  # 2 studies x 2 series
    study = series = ""
    for i in range(n):
        series_no, instance = divmod(i, per_series)
        patient, in_patient = divmod(series_no, series_per_patient)
        ds = templates[series_no % 2]
        if instance == 0:
            if in_patient % 2 == 0:
                study = generate_uid()
            series = generate_uid()
        ds.PatientID, ds.PatientName = f"BENCH{patient:06d}", f"Bench^Patient{patient}"
        ds.PatientSex, ds.PatientAge = "FM"[patient % 2], f"{20 + patient % 60:03d}Y"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = instance + 1
        folder = dest / f"p{patient:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"{i:06d}.dcm")
    patients = -(-n // (per_series * series_per_patient))
    return (f"{n} objects: copies of pydicom's CT_small.dcm and MR_small.dcm with new UIDs, patient IDs, "
            f"names, sexes and ages; {patients} patients x 2 studies x 2 series x {per_series} instances")


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t, done


def size_of(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--per-series", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1, help="runs (each followed by its reports)")
    ap.add_argument("--reports", type=int, default=3, help="reports timed per run")
    ap.add_argument("--tmp", type=Path, default=None, help="where the corpus, releases and reports go")
    ap.add_argument("--keep", action="store_true", help="keep the folder (its path is printed)")
    ap.add_argument("--option", action="append", default=None,
                    help="the run's options (default: retain-patient-characteristics, so that the risk section "
                         "has characteristics to measure); repeat for several")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="medcloak-bench-report-", dir=args.tmp))
    env = dict(os.environ)
    src = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(src / "src"), str(src / "kernels"), env.get("PYTHONPATH", "")])
    medcloak = [sys.executable, "-m", "medcloak"]
    try:
        t = time.perf_counter()
        note = build_corpus(root / "corpus", args.objects, args.per_series)
        print(f"corpus: {note} ({time.perf_counter() - t:.0f} s to make, not timed)")
        print(f"file system: {file_system(root)}; {os.cpu_count()} cores; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        ratios: list[float] = []
        for r in range(args.rounds):
            release = root / f"release{r}"
            options = [x for o in (args.option or ["retain-patient-characteristics"]) for x in ("--option", o)]
            run_s, done = timed([*medcloak, "run", str(root / "corpus"), "--out", str(release), "--quiet", *options],
                                env)
            if done.returncode != 0:
                sys.exit(f"the run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
            print(f"round {r + 1}: run {run_s:.1f} s ({done.stdout.splitlines()[0]})")
            for i in range(args.reports):
                out = root / f"report{r}-{i}"
                rep_s, done = timed([*medcloak, "report", str(release), "--out", str(out)], env)
                if done.returncode not in (0, 1):
                    sys.exit(f"the report failed ({done.returncode}): {done.stderr.strip()[-500:]}")
                failed = re.search(r"could not be built \(([^)]*)\)", done.stderr)
                ratios.append(rep_s / run_s)
                size, files = size_of(out)
                print(f"  report {i + 1}: {rep_s:.2f} s, ratio {rep_s / run_s:.3f}; {size / 1e6:.2f} MB in "
                      f"{files} files; sections not built: {failed.group(1) if failed else 'none'}")
        print(f"report / run: best {min(ratios):.3f}, median {statistics.median(ratios):.3f}, worst "
              f"{max(ratios):.3f} (goal <= {GOAL:.2f}: {'MET' if max(ratios) <= GOAL else 'MISSED'})")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
