"""``medcloak run`` on a whole-slide image, end to end, against a durable copy of the same file.

The slide: a synthetic BigTIFF Aperio SVS of about ``--mb`` MB, made by
``bench_slide_tiff.make_big`` (tifffile: two levels of 128x128 abbreviated JPEG tiles with shared
JPEGTables, a thumbnail, a label and a macro; written once, not timed). Each round, in an order
that rotates:

- ``run``: the ``medcloak`` command (``--workers 1``) on the slide into a new release folder,
  start-up, discovery, the streamed copy and its patches, the SHA-256 of the output for the
  manifest, the sync and the audit included;
- ``start-up``: the same command on OpenSlide's 2.6 KB ``small.svs`` (data_samples/wsi), which
  is what the command costs around any slide;
- ``cp+sync``: coreutils ``cp`` of the slide, then ``sync`` of the copy.

The figure is (run - start-up) / (cp+sync), round by round, with the page cache warm (the slide
read once before), and cold: the slide's pages dropped from the cache before each timed command
(``posix_fadvise(DONTNEED)`` after a sync: no root needed). The peak resident memory of one
``run`` (``/usr/bin/time -f %M``, the largest process) is printed beside the slide's size.

Run: ``python benchmarks/bench_slide_run.py [--mb 600] [--rounds 3] [--tmp DIR]`` (a disk, never
a tmpfs: the script names the file system it writes to).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY = ROOT / "data_samples" / "wsi" / "openslide-python_small.svs"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from _timing import against_copy, command_setup, file_system, print_against_copy
    from bench_slide_tiff import make_big

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="medcloak-bench-slide-run-") as tmp:
        root = Path(tmp)
        key, env = command_setup(root)
        big = root / "big" / "slide.svs"
        make_big(big, args.mb)
        tiny = Path(shutil.copy(TINY, root / "tiny" / "small.svs"))
        size = big.stat().st_size
        results, rss = against_copy(big, tiny, root, key, env, args.rounds)
        print(f"slide: {size / 1e6:.0f} MB synthetic BigTIFF SVS; written to {file_system(root)}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; {args.rounds} rounds")
        print_against_copy(results, "<= 2.0 (warm)")
        print(f"  peak RSS of one run: {rss / 1024:.0f} MB, for a {size / 1e6:.0f} MB slide")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
