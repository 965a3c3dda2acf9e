"""The report's volume pictures (:mod:`medcloak.report.volumes`: three projections read a slab of
slices at a time) against reading the same first volume whole and projecting it (what the report
did before for NIfTI, and the obvious way), in the same script: time and peak memory.

Corpus (made once, not timed): one volume of ``--shape`` (default 320 x 320 x 256) int16 voxels,
a smooth head-like blob with noise (so that gzip has work to do), written as ``.nii``,
``.nii.gz``, ``.mgz`` (nibabel) and an attached raw ``.nrrd`` (a header written here), under
``--tmp`` (a real disk: its file system is printed).

Timed, ``--rounds`` times, interleaved, each measure in a fresh process (its imports done before
the clock starts):

- ``slab``: :func:`medcloak.report.thumbs.volume_projections` on the file;
- ``whole``: the file's first volume read whole (nibabel's ``dataobj``, or ``numpy.fromfile``
  for NRRD), as float32, turned to RAS, its three maxima.

Printed per format: seconds of each (best / median / worst), the ratio slab / whole, and the
peak memory the measure allocated (``tracemalloc``'s peak, started after the imports: numpy's
arrays and Python's objects; pages of a file the page cache holds are not counted). The machine
may be shared: read the spread.

Run: ``python benchmarks/bench_report_volumes.py [--shape 320 320 256] [--rounds 3] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import file_system

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

MEASURE = """
import json, sys, time, tracemalloc
from pathlib import Path
import numpy as np, nibabel as nib
from medcloak.report import thumbs, volumes
from medcloak.pixels import qc
how, path = sys.argv[1], Path(sys.argv[2])
shape = tuple(json.loads(sys.argv[3]))
tracemalloc.start()
t = time.perf_counter()
if how == "slab":
    thumbs.volume_projections(path)
else:
    if path.suffix == ".nrrd":
        head = path.read_bytes()[:4096]
        offset = head.index(b"\\n\\n") + 2
        data = np.fromfile(path, "<i2", offset=offset).reshape(shape, order="F")
        affine = np.eye(4)
    else:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        affine = img.affine
    data = np.nan_to_num(data.astype(np.float32, copy=False))
    data = nib.orientations.apply_orientation(data, nib.orientations.io_orientation(affine))
    mips = [data.max(axis=0), data.max(axis=1), data.max(axis=2)]
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "added_mb": tracemalloc.get_traced_memory()[1] / 2**20}))
"""


def make(folder: Path, shape: tuple[int, int, int]) -> list[Path]:
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    blob = (1 - (x**2 + y**2 * 1.3 + z**2 * 0.8)).clip(0, 1) * 1000
    data = (blob + rng.normal(0, 20, shape).astype(np.float32)).astype(np.int16)
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    paths = []
    for name in ("v.nii", "v.nii.gz", "v.mgz"):
        img = nib.MGHImage(data, affine) if name.endswith(".mgz") else nib.Nifti1Image(data, affine)
        nib.save(img, folder / name)
        paths.append(folder / name)
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: right-anterior-superior\n"
              f"sizes: {' '.join(map(str, shape))}\nspace directions: (1,0,0) (0,1,0) (0,0,1.2)\n"
              "kinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n\n")
    with open(folder / "v.nrrd", "wb") as fh:
        fh.write(header.encode())
        fh.write(data.astype("<i2").tobytes(order="F"))
    paths.append(folder / "v.nrrd")
    return paths


def measure(how: str, path: Path, shape: tuple[int, ...]) -> dict[str, float]:
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'kernels'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", MEASURE, how, str(path), json.dumps(list(shape))],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[320, 320, 256])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-report-volumes-", dir=args.tmp))
    try:
        shape = tuple(args.shape)
        paths = make(folder, shape)  # type: ignore[arg-type]
        print(f"volume {'x'.join(map(str, shape))} int16 ({2 * shape[0] * shape[1] * shape[2] / 1e6:.0f} MB), "
              f"on {file_system(folder)}; {args.rounds} rounds, interleaved")
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for path in paths:
                for how in ("whole", "slab"):
                    results.setdefault((path.name, how), []).append(measure(how, path, shape))
        print("| file | whole: s (best / median / worst) | slab: s | slab / whole (median) | "
              "peak allocated, whole / slab (median MB) |")
        print("|---|---|---|---|---|")
        for path in paths:
            w = [r["seconds"] for r in results[(path.name, "whole")]]
            s = [r["seconds"] for r in results[(path.name, "slab")]]
            wm = statistics.median(r["added_mb"] for r in results[(path.name, "whole")])
            sm = statistics.median(r["added_mb"] for r in results[(path.name, "slab")])
            ratios = [b / a for a, b in zip(w, s)]
            print(f"| {path.name} | {min(w):.2f} / {statistics.median(w):.2f} / {max(w):.2f} | "
                  f"{min(s):.2f} / {statistics.median(s):.2f} / {max(s):.2f} | {statistics.median(ratios):.2f} "
                  f"({min(ratios):.2f}-{max(ratios):.2f}) | {wm:.0f} / {sm:.0f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
