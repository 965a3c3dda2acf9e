"""What ``medcloak run --k-anonymity K`` costs: its pre-pass (every DICOM input's header read and
walked, the recoding chosen) against the run without the option, on the same corpus, in the same
script.

Corpus (made once, not timed): ``--objects`` small objects (pydicom's CT_small and MR_small with
distinct UIDs) of ``--patients`` patients, each patient with its own sex, age, size and weight.

Timed, each a fresh ``medcloak run IN --out OUT --workers N --quiet --option
retain-patient-characteristics`` process writing a fresh release on the file system of ``--tmp``
(named in the output), interleaved over ``--rounds`` rounds: ``plain`` (without the option) and
``k`` (``--k-anonymity K``). Printed: seconds of each (best, median, worst), the pre-pass's own
seconds (from the audit's ``run.json``), and the ratios: pre-pass over the plain run, and the run
with the option over the one without. The machine may be shared: read the spread.

Run: ``python benchmarks/bench_k_anonymity.py [--objects 3000] [--patients 300] [--k 5]
[--rounds 3] [--workers 1] [--side 512] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _timing import file_system

ROOT = Path(__file__).resolve().parent.parent


def build(folder: Path, objects: int, patients: int, seed: int = 3, side: int = 0) -> None:
    """The corpus; ``side``: frames of side x side pixels (a CT slice is 512) instead of the
    test files' own (128 and 64)."""
    import numpy as np
    import pydicom
    import pydicom.data

    rng = random.Random(seed)
    bases = [pydicom.dcmread(pydicom.data.get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    for ds in bases:
        for tag in [t for t in ds.keys() if t.group & 1]:
            del ds[tag]
        if side:
            ds.Rows = ds.Columns = side
            ds.PixelData = np.random.default_rng(seed).integers(0, 1 << 11, side * side, dtype=np.uint16).tobytes()
    people = [("FM"[rng.randint(0, 1)], rng.randint(18, 90), f"{rng.uniform(1.5, 1.95):.2f}",
               f"{rng.uniform(45, 120):.1f}") for _ in range(patients)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(objects):
            p = i % patients
            ds = bases[p % 2]
            sex, age, size, weight = people[p]
            uid = f"1.2.826.0.1.3680043.10.999.88.{i}"
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid
            ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.999.89.{p}"
            ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.999.90.{p}"
            ds.PatientID = f"BENCH{p:05d}"
            ds.PatientName = f"BENCH^{p:05d}"
            ds.PatientSex, ds.PatientAge, ds.PatientSize, ds.PatientWeight = sex, f"{age:03d}Y", size, weight
            ds.BurnedInAnnotation = "NO"
            path = folder / f"d{i // 500:03d}" / f"{i:06d}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)


def run(corpus: Path, out: Path, secret: Path, workers: int, k: int | None) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "medcloak", "run", str(corpus), "--out", str(out), "--secret-file", str(secret),
           "--workers", str(workers), "--quiet", "--option", "retain-patient-characteristics"]
    if k is not None:
        cmd += ["--k-anonymity", str(k)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'kernels'}"}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    record = json.loads((out.parent / (out.name + ".audit") / "run.json").read_text())
    return seconds, float(record.get("k_anonymity", {}).get("pre_pass_seconds", 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=3000)
    ap.add_argument("--patients", type=int, default=300)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--side", type=int, default=0, help="frames of SIDE x SIDE pixels (default: the test files' own)")
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-kanon-", dir=args.tmp))
    try:
        corpus = base / "in"
        build(corpus, args.objects, args.patients, side=args.side)
        secret = base / "secret.key"
        secret.write_bytes(os.urandom(32))
        secret.chmod(0o600)
        print(f"{args.objects} objects of {args.patients} patients"
              f"{f', frames of {args.side}x{args.side}' if args.side else ''}, --workers {args.workers}, "
              f"on {file_system(base)}; {args.rounds} rounds")
        times: dict[str, list[float]] = {"plain": [], "k": [], "pre-pass": []}
        for r in range(args.rounds):
            plain, _ = run(corpus, base / f"plain{r}", secret, args.workers, None)
            kanon, pre = run(corpus, base / f"k{r}", secret, args.workers, args.k)
            times["plain"].append(plain)
            times["k"].append(kanon)
            times["pre-pass"].append(pre)
        for name, ts in times.items():
            print(f"  {name:<9} best {min(ts):7.2f} s  median {statistics.median(ts):7.2f} s  worst {max(ts):7.2f} s")
        ratios = [p / q for p, q in zip(times["pre-pass"], times["plain"])]
        whole = [p / q for p, q in zip(times["k"], times["plain"])]
        print(f"pre-pass / plain run: {min(ratios):.3f} .. {max(ratios):.3f} (per round)")
        print(f"run with --k-anonymity {args.k} / without: {min(whole):.3f} .. {max(whole):.3f} (per round)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
