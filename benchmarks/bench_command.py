"""The ``medcloak`` command end to end, as a user runs it, writing to a real disk, against pydicom
read+write of the same files in the same script; optionally against another checkout of medcloak
(``--before``, e.g. the code with a sync per object) on the same corpus; and a profile of the
main process of a ``--workers 1`` run, split into the parts that are serial there.

Corpus (made once, not timed): ``--objects`` distinct small objects replicated from pydicom's test
files with distinct UIDs (``bench_dicom.build_small``), in folders of the corpus root.

Timed, each a fresh process writing to a fresh folder on the file system of ``--tmp`` (named in
the output), interleaved over ``--rounds`` rounds:

- ``pydicom``: a Python process doing ``dcmread`` + ``save_as`` of every file (the floor);
- ``dicognito``: a Python process doing ``dcmread``, dicognito's ``Anonymizer.anonymize`` and
  ``save_as`` of every file (left out when dicognito is not installed);
- ``medcloak -w1`` / ``medcloak -w2``: ``medcloak run IN --out OUT --workers N --quiet``;
- ``before -w1`` / ``before -w2``: the same with ``PYTHONPATH`` set to the ``--before`` checkout;
- ``medcloak -w1 tmpfs`` (``--tmpfs``): ``--workers 1`` writing its release to /dev/shm, to say
  what the disk costs (the input is read from the page cache in every run).

Every run writes a new release folder, and all are removed at the end: ext4 allocates inodes
slowly for one to six minutes after many files were removed nearby (it skips recently deleted
inodes, scanning past each), so removing a run's release right before the next run charged the
next for it (``--delete-between`` measures that way). A user who has just removed a large release
meets that cost too; a user writing a new release on a quiet file system does not.

Printed: seconds (best, median and worst of the rounds), objects/s, and the ratios the issue's
goals are about (medcloak objects/s over pydicom's; 2 workers over 1). The machine is shared:
read the spread, not one figure.

Run: ``python benchmarks/bench_command.py [--objects 2000] [--rounds 3] [--tmp DIR]
[--before /path/to/other/checkout] [--profile] [--no-w2] [--tmpfs]``
"""

from __future__ import annotations

import argparse
import cProfile  # noqa: F401 - run as ``python -m cProfile`` below
import importlib.util
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _timing import file_system

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FLOOR = """
import sys, pydicom
from pathlib import Path
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True)
paths = sorted(p for p in src.rglob("*") if p.is_file())  # every object, whatever its name
for i, p in enumerate(paths):
    pydicom.dcmread(p).save_as(out / f"{i}.dcm")
if len(paths) != int(sys.argv[3]):
    raise SystemExit(f"the floor read {len(paths)} files, not {sys.argv[3]}")
"""

#: dicognito's Python API on the same files (read, anonymize, write), as its documentation shows it
DICOGNITO = """
import sys, pydicom
from pathlib import Path
from dicognito.anonymizer import Anonymizer
src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True)
anonymizer = Anonymizer()
paths = sorted(p for p in src.rglob("*") if p.is_file())
for i, p in enumerate(paths):
    with pydicom.dcmread(p) as ds:
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{i}.dcm")
if len(paths) != int(sys.argv[3]):
    raise SystemExit(f"dicognito read {len(paths)} files, not {sys.argv[3]}")
"""


def env_for(checkout: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{checkout / 'src'}{os.pathsep}{checkout / 'kernels'}"
    return env


def medcloak_cmd(src: Path, out: Path | str, key: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "medcloak", "run", str(src), "--out", str(out), "--secret-file", str(key),
            "--workers", str(workers), "--quiet"]


#: stands for the release folder in a run's command
OUT = "{OUT}"


def timed(cmd: list[str], env: dict[str, str], out: Path) -> float:
    """Seconds of one run of ``cmd`` writing to ``out`` (removed first if it exists)."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".audit"), ignore_errors=True)
    subprocess.run(["sync"], check=False)  # start every run from a clean page cache write-back
    cmd = [str(out) if c == OUT else c for c in cmd]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[2:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


#: what the profile's breakdown shows: label -> (file name ending, function name)
PARTS = {
    "whole run (main process)": ("cli.py", "main"),
    "discovery (walk, stat, sniff)": ("discover.py", "discover"),
    "  of which stat calls": ("~", "<built-in method posix.stat>"),
    "  of which file opens (all)": ("~", "<built-in method io.open>"),
    "resume check (intact)": ("audit.py", "intact"),
    "per-object work (deidentify)": ("engine.py", "process_task"),
    "  publish (write, rename)": ("dicom.py", "publish"),
    "  group sync (syncfs/fsync)": ("durable.py", "commit"),
    "  per-object fsync (before)": ("~", "<built-in method posix.fsync>"),
    "manifest append": ("audit.py", "record_all"),
    "manifest append (before)": ("audit.py", "record"),
    "Audit.close (compaction, maps)": ("audit.py", "close"),
    "_settle_duplicates": ("engine.py", "_settle_duplicates"),
    "resume/stop cleanup": ("engine.py", "_remove_unrecorded"),
    "release documentation": ("engine.py", "_write_documentation"),
    "os.sync at the end (before)": ("~", "<built-in method posix.sync>"),
    "executor start": ("executors.py", "make_executor"),
}


def profile_run(src: Path, out: Path, key: Path, env: dict[str, str], label: str) -> None:
    prof = out.with_name(out.name + ".prof")
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "medcloak", *medcloak_cmd(src, out, key, 1)[3:]]
    timed(cmd, env, out)
    stats = pstats.Stats(str(prof))
    table = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_f, _l, _n), (_cc, _nc, _tt, ct, _callers) in table.items())
    print(f"\nprofile of the main process, --workers 1 ({label}); cumulative seconds, share of the run:")
    for name, (file_end, func) in PARTS.items():
        seconds = sum(ct for (f, _l, n), (_cc, _nc, _tt, ct, _callers) in table.items()
                      if n == func and f.endswith(file_end))
        calls = sum(nc for (f, _l, n), (_cc, nc, _tt, _ct, _callers) in table.items()
                    if n == func and f.endswith(file_end))
        if calls:
            print(f"  {name:<34} {seconds:8.3f} s {100 * seconds / total:6.1f} %  ({calls} calls)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None, help="a folder on the disk to measure (not tmpfs)")
    ap.add_argument("--before", type=Path, default=None, help="another medcloak checkout to compare with")
    ap.add_argument("--profile", action="store_true", help="also profile the main process of a --workers 1 run")
    ap.add_argument("--no-w2", action="store_true", help="skip the --workers 2 runs")
    ap.add_argument("--delete-between", action="store_true",
                    help="remove each release before the next run writes the same folder (ext4 then "
                         "allocates inodes slowly for a few minutes: the run after pays for the removal)")
    ap.add_argument("--tmpfs", action="store_true",
                    help="also a --workers 1 run writing its release to /dev/shm (tmpfs), against the disk")
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    import bench_dicom  # the corpus builder
    from medcloak.pseudonym import Keyring
    from medcloak.rules.profile import load_profile

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench-command-") as tmp:
        root = Path(tmp)
        fs = file_system(root)
        if fs.startswith(("tmpfs", "ramfs")):
            print(f"warning: {root} is on {fs}, not a disk", file=sys.stderr)
        key = root / "key"
        key.write_bytes(bench_dicom.SECRET)
        key.chmod(0o600)
        warnings.simplefilter("ignore")  # pydicom's complaints about its own odd test files
        paths, note = bench_dicom.build_small(root / "in", args.objects, load_profile(), Keyring(bench_dicom.SECRET))
        for p in (root / "in").rglob("*"):
            if p.is_file() and p not in set(paths):
                p.unlink()
        count = len(paths)
        load = os.getloadavg()[0]
        runs: dict[str, tuple[list[str], dict[str, str]]] = {
            "pydicom": ([sys.executable, "-c", FLOOR, str(root / "in"), OUT, str(count)], dict(os.environ)),
        }
        if importlib.util.find_spec("dicognito") is not None:
            runs["dicognito"] = ([sys.executable, "-c", DICOGNITO, str(root / "in"), OUT, str(count)],
                                 dict(os.environ))
        else:
            print("dicognito is not installed: its row is left out (pip install dicognito)", file=sys.stderr)
        for w in (1,) if args.no_w2 else (1, 2):
            runs[f"medcloak -w{w}"] = (medcloak_cmd(root / "in", OUT, key, w), env_for(ROOT))
            if args.before is not None:
                runs[f"before -w{w}"] = (medcloak_cmd(root / "in", OUT, key, w), env_for(args.before))
        outs = {name: root / "out" for name in runs}
        shm = Path("/dev/shm")
        shm_dir = None
        if args.tmpfs and shm.is_dir() and file_system(shm).startswith("tmpfs"):
            shm_dir = Path(tempfile.mkdtemp(dir=shm, prefix="bench-command-"))
            runs["medcloak -w1 tmpfs"] = (medcloak_cmd(root / "in", OUT, key, 1), env_for(ROOT))
            outs["medcloak -w1 tmpfs"] = shm_dir / "out"
        elif args.tmpfs:
            print("no tmpfs at /dev/shm: the tmpfs row is left out", file=sys.stderr)
        times: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        try:
            for rnd in range(args.rounds):
                for i, name in enumerate(names[rnd % len(names):] + names[: rnd % len(names)]):
                    cmd, env = runs[name]
                    out = outs[name]
                    if not args.delete_between:  # a new folder; every release is removed at the end
                        out = out.with_name(f"{out.name}-{rnd}-{i}")
                    times[name].append(timed(cmd, env, out))
        finally:
            if shm_dir is not None:
                shutil.rmtree(shm_dir, ignore_errors=True)
        kept = "each run removed before the next" if args.delete_between else "every release kept until the end"
        print(f"corpus: {count} objects ({note}); release on {fs} ({kept}); cpus {os.cpu_count()}, "
              f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; {args.rounds} rounds")
        print(f"{'run':<19} {'best s':>8} {'median s':>9} {'worst s':>8} {'objects/s':>10}")
        best = {}
        for name, ts in times.items():
            best[name] = min(ts)
            print(f"{name:<19} {min(ts):8.2f} {statistics.median(ts):9.2f} {max(ts):8.2f} {count / min(ts):10.0f}")

        def ratio(a: str, b: str) -> str:
            per = [y / x for x, y in zip(times[a], times[b])]  # b's seconds over a's, round by round
            return f"{best[b] / best[a]:.2f}x (rounds {min(per):.2f}-{max(per):.2f})"

        for prefix in ("medcloak", "before"):
            if f"{prefix} -w1" not in times:
                continue
            print(f"{prefix}: -w1 objects/s over pydicom read+write: {ratio(prefix + ' -w1', 'pydicom')}   goal >= 0.6x")
            if "dicognito" in times:
                print(f"{prefix}: -w1 objects/s over dicognito's API:    {ratio(prefix + ' -w1', 'dicognito')}   goal >= 1.6x")
            if f"{prefix} -w2" in times:
                print(f"{prefix}: -w2 over -w1:                         {ratio(prefix + ' -w2', prefix + ' -w1')}   goal >= 1.6x")
        if "medcloak -w1 tmpfs" in times:
            print(f"medcloak: -w1 time on the disk over tmpfs:    {ratio('medcloak -w1 tmpfs', 'medcloak -w1')}   "
                  "goal <= 1.25x")
        for w in (1, 2):
            if f"before -w{w}" in times and f"medcloak -w{w}" in times:
                print(f"this checkout over --before, -w{w}:              {ratio(f'medcloak -w{w}', f'before -w{w}')}")
        if args.profile:
            profile_run(root / "in", root / "out", key, env_for(ROOT), "this checkout")
            if args.before is not None:
                profile_run(root / "in", root / "out", key, env_for(args.before), "--before")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
