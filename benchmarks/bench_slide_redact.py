"""A small-box redaction of a large TIFF-family slide against decoding and re-encoding every
tile, measured in one run.

Input: a synthetic BigTIFF Aperio SVS of about ``--mb`` MB written once with tifffile (not timed):
level 0 in 128x128 abbreviated JPEG tiles with shared JPEGTables (64 distinct tiles of random
pixels at quality 90, about 15 KB each as in a real 20x slide, repeated), levels 1 and 2 at
downsamples 4 and 16 in the same tiles, and a thumbnail in JPEG strips (see
:func:`bench_slide_tiff.make_big`, whose tile pool this uses).

Timed, page cache warm, each ending with ``fsync`` of its output:
- ``redact_slide``: a ``--box`` (level 0 pixels, default 1000x1000) redacted on every level and the
  thumbnail as ``medcloak redact`` does it (:func:`medcloak.redact.redact_slide_file`: the copy in
  the kernel in a thread while the touched tiles are redacted, then patched in, fsync, rename);
- the reference, what a tool without compressed-domain redaction does: every tile of every level
  read, decoded with its tables, the box filled where it falls, encoded again (libjpeg through
  imagecodecs, quality 90) and written out in order (no TIFF structure is written, which only
  flatters the reference);
- ``cp`` then ``sync`` of the slide, for scale.
``--rounds`` rounds, each timing the three in a rotating order; the ratios reference/redact_slide
and redact_slide/(cp+sync) are taken within each round, and their best and median reported, with
the times' best and median. The first redact_slide call in the process (compiling the numba
kernels) is reported apart. Peak RSS of one redaction is taken in a child (``VmHWM``).

Run: ``python benchmarks/bench_slide_redact.py [--mb 300] [--rounds 5] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_slide_tiff import abbreviate

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys
from pathlib import Path
from medcloak.formats.slide_redact import redact_slide
if sys.argv[1] != "-":
    with open(sys.argv[2], "wb") as fh:
        redact_slide(Path(sys.argv[1]), fh, tuple(int(v) for v in sys.argv[3].split(",")))
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def make_slide(path: Path, mb: int) -> None:
    import imagecodecs
    import tifffile

    rng = np.random.default_rng(0)
    full = [imagecodecs.jpeg8_encode(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), level=90)
            for _ in range(64)]
    pool, tables = zip(*(abbreviate(j) for j in full))
    per_side = int((mb * 1e6 / (sum(map(len, pool)) / len(pool))) ** 0.5)
    lib = "Aperio Image Library v12.0.15"
    kw = {"photometric": "rgb", "metadata": None, "software": False, "jpegtables": tables[0]}

    def level(w, n: int, desc: str, **extra) -> None:  # type: ignore[no-untyped-def]
        w.write((pool[i % len(pool)] for i in range(n * n)), shape=(n * 128, n * 128, 3), dtype="uint8",
                tile=(128, 128), compression="jpeg", description=desc, **kw, **extra)

    side = per_side * 128
    with tifffile.TiffWriter(path, bigtiff=True) as w:
        level(w, per_side, f"{lib} \r\n{side}x{side} [0,0 {side}x{side}] (128x128) JPEG/RGB Q=90|AppMag = 20|MPP = 0.25")
        thumb = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
        w.write(thumb, rowsperstrip=64, compression="jpeg", description=f"{lib} \n{side}x{side} -> 512x512 - ",
                photometric="rgb", metadata=None, software=False)
        level(w, -(-per_side // 4), f"{lib} \n-> level 1", subfiletype=1)
        level(w, -(-per_side // 16), f"{lib} \n-> level 2", subfiletype=1)


def redact(src: Path, dst: Path, box: tuple[int, int, int, int]) -> dict[str, int]:
    from medcloak.redact import redact_slide_file

    return redact_slide_file(src, dst, [box])


def reference(src: Path, dst: Path, box: tuple[int, int, int, int]) -> int:
    """Every tile of every level decoded and encoded again, the box filled black where it falls."""
    import imagecodecs
    import tifffile

    n = 0
    with tifffile.TiffFile(src) as tf, open(dst, "wb") as out:
        w0 = tf.pages[0].imagewidth
        for page in tf.pages:
            if not page.is_tiled:
                continue
            f = w0 / page.imagewidth
            x0, y0, x1, y1 = int(box[0] // f), int(box[1] // f), int(-(-box[2] // f)), int(-(-box[3] // f))
            across = -(-page.imagewidth // page.tilewidth)
            fh = tf.filehandle
            for i, (o, c) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                fh.seek(o)
                pixels = imagecodecs.jpeg8_decode(fh.read(c), tables=page.jpegtables, colorspace="RGB")
                tx, ty = i % across * page.tilewidth, i // across * page.tilelength
                if tx < x1 and x0 < tx + page.tilewidth and ty < y1 and y0 < ty + page.tilelength:
                    pixels = pixels.copy()
                    pixels[max(0, y0 - ty) : y1 - ty, max(0, x0 - tx) : x1 - tx] = 0
                out.write(imagecodecs.jpeg8_encode(pixels, level=90))
                n += 1
        out.flush()
        os.fsync(out.fileno())
    return n


def copy(src: Path, dst: Path, _box: object) -> None:
    subprocess.run(["cp", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)


def timed(fn, src: Path, dst: Path, box, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        dst.unlink(missing_ok=True)
        t = time.perf_counter()
        fn(src, dst, box)
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--box", default="8000,8000,9000,9000")
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    box = tuple(int(v) for v in args.box.split(","))
    assert len(box) == 4
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        fs = subprocess.run(["df", "--output=fstype", str(tmp)], check=True, capture_output=True, text=True).stdout.split()[-1]
        print(f"file system of {tmp}: {fs}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
        src, dst = tmp / "big.svs", tmp / "out.svs"
        make_slide(src, args.mb)
        src.read_bytes()  # warm the page cache
        t = time.perf_counter()
        counts = redact(src, dst, box)  # type: ignore[arg-type]
        print(f"synthetic BigTIFF SVS ({src.stat().st_size / 1e6:.0f} MB), box {box} on level 0:")
        print(f"  first redact_slide call (numba kernels compiled or loaded): {time.perf_counter() - t:.2f} s; {counts}")
        runs = (("redact_slide+fsync", redact), ("cp+sync", copy), ("reference", reference))
        times: dict[str, list[float]] = {name: [] for name, _ in runs}
        for i in range(args.rounds):
            for name, fn in runs[i % 3:] + runs[: i % 3]:
                times[name] += timed(fn, src, dst, box, 1)
        print(f"  reference: {reference(src, dst, box)} tiles decoded and encoded again")  # type: ignore[arg-type]
        for name, ts in times.items():
            print(f"  {name:20s} best {min(ts):8.3f} s  median {statistics.median(ts):8.3f} s  "
                  f"spread {min(ts):.3f}-{max(ts):.3f} s")
        speedup = [r / w for r, w in zip(times["reference"], times["redact_slide+fsync"])]
        overhead = [w / c for w, c in zip(times["redact_slide+fsync"], times["cp+sync"])]
        print(f"  reference / redact_slide, per round: best {max(speedup):.1f}x, median {statistics.median(speedup):.1f}x "
              f"(ratio of best times {min(times['reference']) / min(times['redact_slide+fsync']):.1f}x)")
        print(f"  redact_slide / (cp+sync), per round: best {min(overhead):.2f}, median {statistics.median(overhead):.2f}; "
              f"load {os.getloadavg()[0]:.1f}")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels")]))
        rss = [int(subprocess.run([sys.executable, "-c", CHILD, a, str(tmp / "rss.bin"), args.box], env=env,
                                  check=True, capture_output=True, text=True).stdout) for a in ("-", str(src))]
        print(f"  peak RSS: import only {rss[0] / 1024:.0f} MB, redact_slide {rss[1] / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
