"""The command's default number of workers against ``--workers 1``, end to end: the ``medcloak``
command run as a user runs it (a new process, discovery, audit, one sync at the end), writing
its release to a real disk, on two corpora:

- ``third-party``: the third-party DICOM files the test suite gathers (pydicom's test files,
  pydicom-data's files, nibabel's DICOM test data, and the shared WSI set's DICOM files when
  present): a few hundred small objects, a run of a few seconds, where worker processes cannot
  pay for their start;
- ``ct``: ``--ct`` distinct copies of pydicom's CT_small.dcm (UIDs and patients made distinct per
  copy), a long run where two workers must beat one.

Engines: ``workers-1`` (``--workers 1``), ``default`` (no ``--workers``: the machine's cores), and
``workers-at-once`` (the default's workers as local worker processes from the first object on,
as the command did before it learnt to start in the main process; a reference, run through
``python -c``). Each round runs every engine on every corpus into a fresh release (removed before,
untimed), in an order that rotates per round. Printed: each engine's median and best seconds, the
per-round ratios against ``workers-1`` of the same round (median, and the spread: lowest and
highest), whether worker processes joined (from the audit's ``run.log``), the file system written
to and the machine's load. The machine is shared: only the ratios mean anything.

Run: ``python benchmarks/bench_default_workers.py [--ct 3000] [--rounds 5] [--tmp DIR]``
(``DIR`` on a disk, never a tmpfs: the script says which file system it writes to).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: the shared WSI set beside the checkout, as the tests find it
WSI = ROOT.parent / "shared" / "data" / "wsi"
#: the command with the default's workers as local worker processes from the first object on
CLUSTER_AT_ONCE = ("import sys; import medcloak.executors as x; "
                   "x.make_executor = lambda w, s, c: x.Local(w) if w > 1 else x.Inline(); "
                   "from medcloak.cli import main; sys.exit(main())")


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` lies on (from /proc/self/mounts), with its mount point."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                mount = fields[1].replace("\\040", " ")
                if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                    best, kind = mount, fields[2]
    except OSError:
        pass
    return f"{kind} (mounted on {best or '?'})"


def is_part10(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(132)[128:] == b"DICM"


def gather_third_party(dest: Path) -> int:
    """Copies of the third-party DICOM files (as tests/test_leak_scan.py gathers them)."""
    import data_store
    import nibabel
    import pydicom.data

    shutil.copytree(Path(pydicom.data.__file__).parent / "test_files", dest / "pydicom")
    shutil.copytree(Path(data_store.__file__).parent / "data", dest / "pydicom-data")
    nib_root = Path(nibabel.__file__).parent
    for path in sorted(nib_root.rglob("*")):
        if not path.is_file() or path.suffix in (".py", ".pyc"):
            continue
        if path.name.endswith((".dcm", ".dcm.gz")) or is_part10(path):
            target = dest / "nibabel" / path.relative_to(nib_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".gz":
                target.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
            else:
                shutil.copy(path, target)
    if WSI.is_dir():
        for path in sorted(WSI.rglob("*")):
            if path.is_file() and is_part10(path):
                target = dest / "wsi" / path.relative_to(WSI)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
    return sum(1 for p in dest.rglob("*") if p.is_file())


def command(engine: str) -> list[str]:
    if engine == "workers-at-once":
        return [sys.executable, "-c", CLUSTER_AT_ONCE]
    return [sys.executable, "-m", "medcloak"]


def timed_run(engine: str, src: Path, out: Path, key: Path) -> tuple[float, str]:
    """Seconds of one run of the command, and what its run.log says about its worker processes."""
    audit = out.with_name(out.name + ".audit")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(audit, ignore_errors=True)
    args = [*command(engine), "run", str(src), "--out", str(out), "--secret-file", str(key), "--quiet"]
    if engine == "workers-1":
        args += ["--workers", "1"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels"),
                                                       os.environ.get("PYTHONPATH", "")]))
    started = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{engine} on {src.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    log = (audit / "run.log").read_text(encoding="utf-8") if (audit / "run.log").exists() else ""
    took = re.search(r"joined after (\d+) objects", log)
    if took:
        return seconds, f"workers joined after {took.group(1)}"
    if "did not start" in log:
        return seconds, "workers failed to start"
    return seconds, "no workers" if engine != "workers-at-once" else "workers from the start"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct", type=int, default=3000, help="distinct CT_small copies of the long corpus")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tmp", type=Path, default=None, help="where corpora and releases go (a disk)")
    ap.add_argument("--no-workers-at-once", action="store_true", help="skip the reference engine")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_scale import make_files

    engines = ["workers-1", "default"] + ([] if args.no_workers_at_once else ["workers-at-once"])
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="medcloak-bench-default-") as tmp:
        root = Path(tmp)
        fs = filesystem(root)
        key = root / "key"
        key.write_bytes(b"benchmark-secret-0123456789")
        key.chmod(0o600)
        corpora = {"third-party": root / "third-party", "ct": root / "ct"}
        counts = {"third-party": gather_third_party(corpora["third-party"])}
        make_files(corpora["ct"], args.ct)
        counts["ct"] = args.ct
        load_before = os.getloadavg()
        times: dict[tuple[str, str], list[float]] = {}
        notes: dict[tuple[str, str], set[str]] = {}
        for rnd in range(args.rounds):
            order = engines[rnd % len(engines):] + engines[:rnd % len(engines)]
            for corpus, src in corpora.items():
                for engine in order:
                    seconds, note = timed_run(engine, src, root / "out", key)
                    times.setdefault((corpus, engine), []).append(seconds)
                    notes.setdefault((corpus, engine), set()).add(re.sub(r"\d+", "N", note))
                    print(f"  round {rnd + 1} {corpus:<12} {engine:<16} {seconds:7.2f} s  {note}", flush=True)
        load_after = os.getloadavg()

    print()
    print(f"written to {fs}; {os.cpu_count()} cores; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (a shared machine: only ratios within a round compare)")
    print(f"{'corpus':<12} {'objects':>7} {'engine':<16} {'median s':>9} {'best s':>8}  workers")
    for (corpus, engine), values in times.items():
        print(f"{corpus:<12} {counts[corpus]:>7} {engine:<16} {statistics.median(values):>9.2f} "
              f"{min(values):>8.2f}  {', '.join(sorted(notes[(corpus, engine)]))}")
    print()

    def ratios(corpus: str, engine: str) -> list[float]:
        return [d / w for d, w in zip(times[(corpus, engine)], times[(corpus, "workers-1")])]

    for engine in engines[1:]:
        small = ratios("third-party", engine)
        print(f"third-party, {engine} / workers-1 (time):  median {statistics.median(small):.2f} "
              f"[{min(small):.2f}-{max(small):.2f}] over {len(small)} rounds"
              + ("   goal <= 1.10  " + ("MET" if statistics.median(small) <= 1.10 else "MISSED")
                 if engine == "default" else ""))
        long = [1 / r for r in ratios("ct", engine)]
        print(f"ct x{args.ct}, workers-1 / {engine} (speed-up): median {statistics.median(long):.2f} "
              f"[{min(long):.2f}-{max(long):.2f}] over {len(long)} rounds"
              + ("   goal >= 1.6   " + ("MET" if statistics.median(long) >= 1.6 else "MISSED")
                 if engine == "default" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
