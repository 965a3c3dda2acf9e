"""``medcloak run`` on a multi-GB Siemens twix file against a durable copy of the same file.

The file: a VD/VE twix file of ``--gb`` GB (default 2), one measurement, made from the format's
description by tests/twix_sample.py (the header buffers with their planted identifiers), its raw
data the same measurement data block of 64 channels x 512 samples repeated (written once, not
timed). Each round, in an order that rotates:

- ``run``: the ``medcloak`` command (``--workers 1``) on the file into a new release folder:
  start-up, discovery, the header read and cleaned, the streamed copy with its SHA-256 for the
  manifest, the sync and the audit included;
- ``start-up``: the same command on a 20 KB VB twix file (tests/twix_sample.py), what the
  command costs around any file;
- ``cp+sync``: coreutils ``cp`` of the file, then ``sync`` of the copy.

The figure is (run - start-up) / (cp+sync), round by round, page cache warm (the file read once
before) and cold (its pages dropped before each timed command: ``posix_fadvise(DONTNEED)`` after
a sync). The peak resident memory of one ``run`` (``/usr/bin/time -f %M``) is printed beside the
file's size: the worker streams the raw data in 4 MB pieces and never holds it.

Run: ``python benchmarks/bench_twix.py [--gb 2] [--rounds 3] [--tmp DIR]`` (a disk, never a
tmpfs: the script names the file system it writes to).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def drop_cache(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def make_big(path: Path, size: int) -> None:
    """A VD/VE twix file of about ``size`` bytes: table, one measurement header, repeated lines."""
    import numpy as np
    import twix_sample as ts

    head = ts.header(ts.buffers())
    block = bytearray(192)
    ns, nc = 512, 64
    struct.pack_into("<IiI", block, 0, 192 + nc * (32 + ns * 8), 7, 1)
    struct.pack_into("<QHH", block, 40, 0, ns, nc)
    chans = b"".join(struct.pack("<IiI", 32 + ns * 8, 7, 1) + bytes(12) + struct.pack("<H", c) + bytes(6)
                     + np.random.default_rng(c).standard_normal(2 * ns).astype("<f4").tobytes() for c in range(nc))
    line = bytes(block) + chans
    acqend = bytearray(192)
    struct.pack_into("<IiIQ", acqend, 0, 192, 7, 0, 0)
    struct.pack_into("<Q", acqend, 40, 1)
    lines = max(1, (size - 10240 - len(head)) // len(line))
    meas_len = len(head) + lines * len(line) + len(acqend)
    table = bytearray(10240)
    struct.pack_into("<IIIIQQ", table, 0, 0, 1, 1, 1, 10240, meas_len)
    piece = line * 64
    with open(path, "wb") as fh:
        fh.write(table + head)
        for _ in range(lines // 64):
            fh.write(piece)
        fh.write(line * (lines % 64) + acqend)


def command(src: Path, out: Path, key: Path) -> list[str]:
    return [sys.executable, "-m", "medcloak", "run", str(src), "--out", str(out), "--secret-file", str(key),
            "--workers", "1", "--quiet"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    sys.path[:0] = [str(HERE), str(ROOT / "tests")]
    from _timing import file_system
    import twix_sample as ts

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels")]))
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="medcloak-bench-twix-") as tmp:
        root = Path(tmp)
        key = root / "key"
        key.write_bytes(b"benchmark-secret-0123456789")
        key.chmod(0o600)
        for name in ("big", "tiny"):
            (root / name).mkdir()
        big = root / "big" / "meas.dat"
        make_big(big, int(args.gb * (1 << 30)))
        tiny = ts.make_vb(root / "tiny" / "meas.dat")
        size = big.stat().st_size
        results: dict[str, dict[str, list[float]]] = {}
        for cache in ("warm", "cold"):
            times: dict[str, list[float]] = {"run": [], "start-up": [], "cp+sync": []}
            engines = list(times)
            for rnd in range(args.rounds):
                for engine in engines[rnd % 3:] + engines[: rnd % 3]:
                    out = root / f"out-{cache}-{rnd}-{engine}"
                    if cache == "cold":
                        drop_cache(big)
                    else:
                        with open(big, "rb") as fh:
                            while fh.read(64 << 20):
                                pass
                    if engine == "run":
                        seconds = timed(command(big, out, key), env)
                    elif engine == "start-up":
                        seconds = timed(command(tiny, out, key), env)
                    else:
                        started = time.perf_counter()
                        subprocess.run(["cp", str(big), str(out)], check=True)
                        subprocess.run(["sync", str(out)], check=True)
                        seconds = time.perf_counter() - started
                    times[engine].append(seconds)
                    if out.is_dir():
                        shutil.rmtree(out)
                        shutil.rmtree(out.with_name(out.name + ".audit"), ignore_errors=True)
                    else:
                        out.unlink()
            results[cache] = times
        rss_out = root / "rss"
        rss = subprocess.run(["/usr/bin/time", "-f", "%M", *command(big, rss_out, key)], env=env, check=True,
                             capture_output=True, text=True).stderr.strip().splitlines()[-1]
        print(f"twix: {size / (1 << 30):.2f} GB synthetic VD/VE file; written to {file_system(root)}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; {args.rounds} rounds")
        for cache, times in results.items():
            for engine, values in times.items():
                print(f"  {cache:<4} {engine:<9} best {min(values):7.2f} s  median {statistics.median(values):7.2f} s")
            per = [(r - s) / c for r, s, c in zip(times["run"], times["start-up"], times["cp+sync"])]
            print(f"  {cache}: (run - start-up) / (cp+sync): median {statistics.median(per):.2f} "
                  f"[{min(per):.2f}-{max(per):.2f}]   goal <= 1.5")
        print(f"  peak RSS of one run: {int(rss) / 1024:.0f} MB, for a {size / (1 << 30):.2f} GB file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
