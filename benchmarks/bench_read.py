"""Reading benchmark: medcloak's ``formats.dicom.read`` against ``pydicom.dcmread``, in one process.

Run::

    python benchmarks/bench_read.py [--objects N] [--rounds N] [--corpus DIR]

The corpus is ``bench_dicom.py``'s ``small`` one (pydicom's test files, each copy with distinct
UIDs), built once in ``--corpus`` (a folder on the disk; reused when it already holds files) or in
a temporary folder. Every round reads every object with ``read`` (the structural check and the
data set, as ``deidentify_dicom`` does) and with ``dcmread`` of the open file (the reference, the
old second half of ``read``), in alternating order; the best round of each is printed with the
ratio. Run it with another checkout's ``src`` first on ``PYTHONPATH`` to measure that one: the
ratio to ``dcmread`` in the same run is what compares. The machine is shared: repeat it. Always
exits 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _fs(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus", type=Path, default=None, help="folder for the corpus (reused if it has files)")
    args = ap.parse_args()

    import pydicom

    import medcloak
    from medcloak.formats.dicom import read

    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="bench-read-"))
    paths = sorted(p for p in corpus.rglob("*") if p.is_file())
    if not paths:
        from bench_dicom import SECRET, build_small

        from medcloak.pseudonym import Keyring
        from medcloak.rules.profile import load_profile

        paths, note = build_small(corpus, args.objects, load_profile(), Keyring(SECRET))
        print(note)
    paths = paths[: args.objects]
    print(f"medcloak from {os.path.dirname(medcloak.__file__)}")
    print(f"{len(paths)} objects in {corpus} ({_fs(corpus)}), load {os.getloadavg()[0]:.2f}")

    def medcloak_read() -> None:
        for p in paths:
            read(p)

    def pydicom_read() -> None:
        for p in paths:
            with open(p, "rb") as fh:
                pydicom.dcmread(fh)

    times: dict[str, list[float]] = {"read": [], "dcmread": []}
    runs = [("read", medcloak_read), ("dcmread", pydicom_read)]
    for r in range(args.rounds):
        for name, fn in runs if r % 2 == 0 else runs[::-1]:
            gc.collect()
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    best = {k: min(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:8s} best {v and min(v):.3f} s  all {' '.join(f'{x:.3f}' for x in v)}")
    print(f"read / dcmread (best rounds): {best['read'] / best['dcmread']:.2f}")


if __name__ == "__main__":
    main()
