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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY = ROOT / "data_samples" / "wsi" / "openslide-python_small.svs"


def drop_cache(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def command(src: Path, out: Path, key: Path) -> list[str]:
    return [sys.executable, "-m", "medcloak", "run", str(src), "--out", str(out), "--secret-file", str(key),
            "--workers", "1", "--quiet"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_command import file_system
    from bench_slide_tiff import make_big

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels")]))
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="medcloak-bench-slide-run-") as tmp:
        root = Path(tmp)
        key = root / "key"
        key.write_bytes(b"benchmark-secret-0123456789")
        key.chmod(0o600)
        for name in ("big", "tiny"):
            (root / name).mkdir()
        big = root / "big" / "slide.svs"
        make_big(big, args.mb)
        tiny = Path(shutil.copy(TINY, root / "tiny" / "small.svs"))
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
                        big.read_bytes()
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
        print(f"slide: {size / 1e6:.0f} MB synthetic BigTIFF SVS; written to {file_system(root)}; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; {args.rounds} rounds")
        for cache, times in results.items():
            for engine, values in times.items():
                print(f"  {cache:<4} {engine:<9} best {min(values):7.2f} s  median {statistics.median(values):7.2f} s")
            per = [(r - s) / c for r, s, c in zip(times["run"], times["start-up"], times["cp+sync"])]
            print(f"  {cache}: (run - start-up) / (cp+sync): median {statistics.median(per):.2f} "
                  f"[{min(per):.2f}-{max(per):.2f}]   goal <= 2.0 (warm)")
        print(f"  peak RSS of one run: {int(rss) / 1024:.0f} MB, for a {size / 1e6:.0f} MB slide")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
