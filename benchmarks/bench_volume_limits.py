"""What bounding volumes costs: ``read_volume`` of real gzipped heads (the header checked first,
gzip inflated in bounded chunks into one buffer of the declared size) against the whole-buffer
read it replaced (the file gunzipped at once by ISA-L or zlib, then viewed as an array), in one
process; and the peak memory and time of ``medcloak run --workers 1`` on the issue's volume (an
8 MB ``.nii.gz`` declaring 2048x2048x1024 int16 zeros), measured in a child process.

Run::

    python benchmarks/bench_volume_limits.py [--rounds N] [--heads DIR] [--work DIR] [--no-run]

``--heads``: a folder of ``.nii.gz`` heads (default ``../shared/data/heads`` beside the checkout);
``--work``: where the issue's volume and the run's release are written (a folder on a disk: the
file system is printed). Each round reads every head with both readers in alternating order; the
ratio of the best rounds is printed with the spread of the per-round ratios. The machine may be
shared: repeat it. Always exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import file_system

REPO = Path(__file__).resolve().parents[1]


def whole_buffer_read(path: Path):  # type: ignore[no-untyped-def]
    """The reading before the limits (medcloak's ``read_volume`` of commit e9c659c, for a single-file
    NIfTI-1): the stored file's digest, gunzip all at once, header, a view of the data, the affine."""
    import hashlib
    import io

    import nibabel as nib
    import numpy as np

    from medcloak.formats import gz

    data = path.read_bytes()
    hashlib.sha256(data).hexdigest()
    lib = gz._isal()
    if lib is not None:
        from isal import igzip

        data = igzip.decompress(data)
    else:
        import gzip

        data = gzip.decompress(data)
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(data))
    shape, dtype = header.get_data_shape(), header.get_data_dtype()
    raw = np.frombuffer(data, dtype, int(np.prod(shape)), int(header["vox_offset"])).reshape(shape, order="F")
    header.get_slope_inter()
    return raw, np.asarray(header.get_best_affine(), float)


def bench_reads(heads: list[Path], rounds: int) -> None:
    from medcloak.formats import gz
    from medcloak.formats.volume import read_volume

    print(f"gzip codec: {gz.codec()}; heads on {file_system(heads[0])}")
    for path in heads:
        old, new, ratios = [], [], []
        for r in range(rounds):
            pair = []
            for fn in ((whole_buffer_read, read_volume) if r % 2 == 0 else (read_volume, whole_buffer_read)):
                gc.collect()
                t = time.perf_counter()
                fn(path)
                pair.append((fn, time.perf_counter() - t))
            t_old = next(t for fn, t in pair if fn is whole_buffer_read)
            t_new = next(t for fn, t in pair if fn is read_volume)
            old.append(t_old)
            new.append(t_new)
            ratios.append(t_new / t_old)
        ratios.sort()
        print(f"{path.name:40s} whole {min(old) * 1000:7.1f} ms  bounded {min(new) * 1000:7.1f} ms  "
              f"ratio of best {min(new) / min(old):.3f}  per-round ratios {ratios[0]:.2f}-{ratios[-1]:.2f} "
              f"(median {ratios[len(ratios) // 2]:.2f})")


def issue_volume(path: Path) -> None:
    """A NIfTI-1 header declaring 2048x2048x1024 int16, then all its zeros, gzip level 9 (~8 MB)."""
    import nibabel as nib
    import numpy as np

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((2048, 2048, 1024))
    hdr["vox_offset"] = 352
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(64 << 20)
    with path.open("wb") as fh:
        fh.write(co.compress(hdr.binaryblock + bytes(4)))
        for _ in range((2048 * 2048 * 1024 * 2) // len(zeros)):
            fh.write(co.compress(zeros))
        fh.write(co.flush())


def bench_run(work: Path) -> None:
    src = work / "in"
    src.mkdir(parents=True, exist_ok=True)
    volume = src / "issue.nii.gz"
    if not volume.exists():
        print("writing the issue's volume (8 GB of zeros through zlib level 9: about a minute)...")
        issue_volume(volume)
    (work / "key").write_bytes(os.urandom(32))
    out = work / f"out-{os.getpid()}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "kernels"),
                                                       os.environ.get("PYTHONPATH", "")]))
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medcloak", "run", "--workers", "1", "--quiet", "--secret-file",
                           str(work / "key"), "--out", str(out), str(src)], env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    manifest = out.parent / (out.name + ".audit") / "manifest.jsonl"
    if manifest.exists():
        reason = "; ".join(f"{r['status']}: {r['reason']}" for r in map(json.loads, manifest.read_text().splitlines()))
    else:
        reason = done.stderr[-300:]
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / (out.name + ".audit"), ignore_errors=True)
    print(f"medcloak run on the issue's volume ({volume.stat().st_size / 1e6:.1f} MB on {file_system(work)}): "
          f"exit {done.returncode}, {seconds:.2f} s, peak RSS {peak_mb:.0f} MB\n  {reason}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--heads", type=Path, default=REPO.parent / "shared" / "data" / "heads")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--no-run", action="store_true")
    args = ap.parse_args()
    heads = sorted(p for p in args.heads.glob("*.nii.gz") if "mask" not in p.name)
    if heads:
        bench_reads(heads, args.rounds)
    else:
        print(f"no heads in {args.heads}")
    if not args.no_run:
        if args.work is None:
            with tempfile.TemporaryDirectory(dir=REPO.parent if os.access(REPO.parent, os.W_OK) else None) as tmp:
                bench_run(Path(tmp))
        else:
            bench_run(args.work)


if __name__ == "__main__":
    main()
