"""What ``run --dicomdir`` costs: a run of N small CT instances (pydicom's CT_small.dcm with new
UIDs, one series of one patient: the widest directory level) with and without the option,
same inputs, same secret; the ratio is printed (the machine is noisy: absolute times do not
compare across runs). Usage: python benchmarks/bench_dicomdir.py [N] [REPEATS] [WORKDIR]"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(folder: Path, n: int) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True)
    for i in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.999.7.{i + 1}"
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"ct{i:06d}.dcm")


def timed(args: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medcloak", *args], check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    work = Path(tempfile.mkdtemp(dir=sys.argv[3] if len(sys.argv) > 3 else None))
    fs = subprocess.run(["df", "-T", str(work)], capture_output=True, text=True, check=False).stdout.splitlines()[-1].split()[1]
    try:
        make_inputs(work / "in", n)
        secret = work / "secret"
        secret.write_bytes(os.urandom(32))
        os.chmod(secret, 0o600)
        ratios = []
        for r in range(repeats):
            plain = timed(["run", str(work / "in"), "--out", str(work / f"a{r}"), "--secret-file", str(secret),
                           "--quiet", "--workers", "1"])
            with_dir = timed(["run", str(work / "in"), "--out", str(work / f"b{r}"), "--secret-file", str(secret),
                              "--quiet", "--workers", "1", "--dicomdir"])
            ratios.append(with_dir / plain)
            print(f"{n} instances on {fs}: run {plain:.2f} s, run --dicomdir {with_dir:.2f} s, ratio {with_dir / plain:.3f}")
        print(f"ratio run --dicomdir / run: {min(ratios):.3f} to {max(ratios):.3f} over {repeats} repeats")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
