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
a sync). Beside it, in this process, the part of ``run`` that reads the file before writing:
``clean_twix`` (the header read and cleaned, the raw data walked from header to header to its
ACQEND), warm and cold, round by round. The peak resident memory of one ``run`` (``/usr/bin/time -f %M``) is printed beside the
file's size: the worker streams the raw data in 4 MB pieces and never holds it.

Run: ``python benchmarks/bench_twix.py [--gb 2] [--rounds 3] [--tmp DIR]`` (a disk, never a
tmpfs: the script names the file system it writes to).
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_big(path: Path, size: int) -> None:
    """A VD/VE twix file of about ``size`` bytes: table, one measurement header, repeated lines."""
    import numpy as np
    import twix_sample as ts

    head = ts.header(ts.buffers())
    block = bytearray(192)
    ns, nc = 512, 64
    struct.pack_into("<IiI", block, 0, 192 + nc * (32 + ns * 8), 7, 1)
    struct.pack_into("<QHH", block, 40, 0, ns, nc)
    chans = b"".join(struct.pack("<IiI", 2 | (32 + ns * 8) << 8, 7, 1) + bytes(12) + struct.pack("<H", c) + bytes(6)
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


def time_walk(big: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds of ``clean_twix`` on ``big`` (what a run reads before it writes), warm and cold."""
    from _timing import drop_cache

    from medcloak.formats.twix import Policy, clean_twix

    out: dict[str, list[float]] = {"warm": [], "cold": []}
    for cache in out:
        for _ in range(rounds):
            if cache == "cold":
                drop_cache(big)
            started = time.perf_counter()
            clean_twix(big, Policy())
            out[cache].append(time.perf_counter() - started)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    sys.path[:0] = [str(HERE), str(ROOT / "tests"), str(ROOT / "src")]
    from _timing import against_copy, command_setup, file_system, print_against_copy
    import twix_sample as ts

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="medcloak-bench-twix-") as tmp:
        root = Path(tmp)
        key, env = command_setup(root)
        big = root / "big" / "meas.dat"
        make_big(big, int(args.gb * (1 << 30)))
        tiny = ts.make_vb(root / "tiny" / "meas.dat")
        size = big.stat().st_size
        results, rss = against_copy(big, tiny, root, key, env, args.rounds)
        walk = time_walk(big, args.rounds)
        print(f"twix: {size / (1 << 30):.2f} GB synthetic VD/VE file; written to {file_system(root)}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; {args.rounds} rounds")
        print_against_copy(results, "<= 1.5")
        for cache, seconds in walk.items():
            print(f"  {cache} header read and raw data walk (clean_twix): median {statistics.median(seconds):.3f} s "
                  f"[{min(seconds):.3f}-{max(seconds):.3f}]")
        print(f"  peak RSS of one run: {rss / 1024:.0f} MB, for a {size / (1 << 30):.2f} GB file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
