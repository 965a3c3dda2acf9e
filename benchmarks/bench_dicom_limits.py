"""What a deflate bomb costs ``medcloak run`` (issue 15): peak resident memory and wall time of the
command, per run, on the issue's case (a 1.5 MB Deflated Explicit VR Little Endian DICOM whose
private OB of zeros inflates to 1.5 GB), on the same bomb hidden in an item of a sequence of
undefined length (where its headers cannot be followed: refused by the running count), and on a
reference run of a clean deflated file of the same data set without the zeros, all in this script.

Each file is run alone (``--workers 1``) in a child process whose own peak memory is read from
``os.wait4``; the order rotates per round. Only the ratios to the reference mean anything on a
shared machine. The files are written under ``--tmp`` (a real disk: its file system is printed).

    python benchmarks/bench_dicom_limits.py [--size 1.5e9] [--rounds 3] [--tmp DIR] [--src TREE]

``--src`` runs another checkout's code (for example the code before the limits), with this
script's files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _file_system(path: Path) -> str:
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _dev, mount, fs = line.split()[:3]
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fs
    return kind


def _run(folder: Path, out: Path, secret: Path, src: Path) -> tuple[float, int, str]:
    """(seconds, peak RSS in MB, outcome) of ``medcloak run`` on ``folder`` in a child process."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".audit"), ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src / "src"), str(src / "kernels"),
                                                        os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "medcloak", "run", "--workers", "1", "--quiet",
                              "--secret-file", str(secret), "--out", str(out), str(folder)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    manifest = out.with_name(out.name + ".audit") / "manifest.jsonl"
    text = manifest.read_text() if manifest.exists() else ""
    outcome = "released" if '"status": "ok"' in text else "quarantined" if "quarantined" in text else "?"
    return seconds, usage.ru_maxrss // 1024, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=1.5e9, help="bytes of zeros the bomb inflates to")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tmp", type=Path, default=None)
    parser.add_argument("--src", type=Path, default=ROOT, help="the checkout whose code runs")
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    from test_limits_dicom import _dataset, _deflated

    tmp = Path(tempfile.mkdtemp(prefix="bench-dicom-limits-", dir=args.tmp))
    try:
        secret = tmp / "secret.key"
        secret.write_bytes(os.urandom(32))
        cases = {}
        for name, zeros, hidden in (("reference", 0, False), ("bomb", int(args.size), False),
                                    ("bomb-in-sequence", int(args.size), True)):
            (tmp / name).mkdir()
            data = _deflated(_dataset(), zeros=zeros, hidden=hidden)
            (tmp / name / f"{name}.dcm").write_bytes(data)
            cases[name] = len(data)
        print(f"files on {_file_system(tmp)} ({tmp}); load average {os.getloadavg()[0]:.2f}; "
              f"{os.cpu_count()} cores; bomb inflates to {args.size / 1e9:.2f} GB; code of {args.src}")
        results: dict[str, list[tuple[float, int, str]]] = {name: [] for name in cases}
        names = list(cases)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                results[name].append(_run(tmp / name, tmp / f"out-{name}", secret, args.src))
        ref_s = min(s for s, _, _ in results["reference"])
        ref_mb = min(m for _, m, _ in results["reference"])
        print(f"{'case':18} {'stored':>9} {'outcome':>11} {'seconds (min..max)':>20} {'x ref':>6} "
              f"{'peak MB (min..max)':>19} {'x ref':>6}")
        for name, rows in results.items():
            secs, mbs, outs = [s for s, _, _ in rows], [m for _, m, _ in rows], {o for _, _, o in rows}
            print(f"{name:18} {cases[name] / 1e3:8.1f}K {'/'.join(sorted(outs)):>11} "
                  f"{min(secs):9.2f}..{max(secs):<9.2f} {min(secs) / ref_s:6.2f} "
                  f"{min(mbs):8d}..{max(mbs):<9d} {min(mbs) / ref_mb:6.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
