"""Cleaning a TIFF-family slide against a durable copy of the same file, measured in one run.

Inputs: the real CMU-1-Small-Region.svs (1.9 MB, data_samples/wsi) and a synthetic BigTIFF
Aperio SVS of about ``--mb`` MB (tifffile: level 0 and level 1 in 128x128 abbreviated JPEG tiles
of random pixels with shared JPEGTables, about 15 KB each as in a real 20x slide, so 300 MB is
some 26,000 tiles; a thumbnail, a label and a macro; written once, not timed). For each, with
the page cache warm: ``medcloak.formats.slide_tiff.clean_slide`` into a new file then ``fsync``,
against ``cp`` then ``sync`` of the copy (coreutils). Best and median of ``--repeat`` runs,
alternating; the ratio of the bests is what compares. Peak RSS of one clean_slide run is taken in
a child process (``VmHWM``: ``ru_maxrss`` would carry the parent's peak across exec), next to
that of a child that only imports the module.

Run: ``python benchmarks/bench_slide_tiff.py [--mb 300] [--repeat 5] [--tmp DIR]``
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

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "wsi" / "CMU-1-Small-Region.svs"
CHILD = """
import sys
from pathlib import Path
from medcloak.formats.slide_tiff import clean_slide
from medcloak.pseudonym import Keyring
if sys.argv[1] != "-":
    with open(sys.argv[2], "wb") as fh:
        clean_slide(Path(sys.argv[1]), fh, Keyring(b"0123456789abcdef0123"))
print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def abbreviate(jpeg: bytes) -> tuple[bytes, bytes]:
    """An Aperio-style abbreviated tile (SOI, SOF, SOS, scan) and the tables it needs (SOI, DQT,
    DHT, EOI), from a full JPEG (its JFIF APP0 dropped)."""
    tile, tables, i = [jpeg[:2]], [jpeg[:2]], 2
    while True:
        marker, length = jpeg[i + 1], int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker == 0xDA:
            tile.append(jpeg[i:])
            return b"".join(tile), b"".join(tables) + b"\xff\xd9"
        if marker in (0xDB, 0xC4):
            tables.append(jpeg[i : i + 2 + length])
        elif marker != 0xE0:
            tile.append(jpeg[i : i + 2 + length])
        i += 2 + length


def make_big(path: Path, mb: int) -> None:
    import imagecodecs
    import tifffile

    rng = np.random.default_rng(0)
    full = [imagecodecs.jpeg8_encode(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8), level=90)
            for _ in range(64)]  # ~15 KB each, as the tiles of a real 20x slide
    pool, tables = zip(*(abbreviate(j) for j in full))
    kw_tiles = {"jpegtables": tables[0]}
    per_side = int((mb * 1e6 / (sum(map(len, pool)) / len(pool))) ** 0.5)
    side = per_side * 128
    lib = "Aperio Image Library v12.0.15"
    kw = {"photometric": "rgb", "metadata": None, "software": False}

    def tiles(n: int):  # type: ignore[no-untyped-def]
        return (pool[i % len(pool)] for i in range(n))

    small = rng.integers(0, 256, (400, 1200, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path, bigtiff=True) as w:
        w.write(tiles(per_side**2), shape=(side, side, 3), dtype="uint8", tile=(128, 128), compression="jpeg",
                **kw_tiles,
                description=f"{lib} \r\n{side}x{side} [0,0 {side}x{side}] (128x128) JPEG/RGB Q=90|"
                "AppMag = 20|MPP = 0.25|ScanScope ID = SS1|Filename = x|User = u", **kw)
        w.write(small[:, :400], rowsperstrip=64, compression="jpeg", description=f"{lib} \n{side}x{side} -> t - ", **kw)
        q = -(-per_side // 4)
        w.write(tiles(q * q), shape=(q * 128, q * 128, 3), dtype="uint8", tile=(128, 128), compression="jpeg",
                **kw_tiles,
                subfiletype=1, description=f"{lib} \nlevel", **kw)
        w.write(small[:, :500], rowsperstrip=40, subfiletype=1, description=f"{lib} \nlabel 500x400", **kw)
        w.write(small, rowsperstrip=40, compression="jpeg", subfiletype=9, description=f"{lib} \nmacro 1200x400", **kw)


def clean(src: Path, dst: Path) -> None:
    from medcloak.formats.slide_tiff import clean_slide
    from medcloak.pseudonym import Keyring

    with open(dst, "wb") as fh:
        clean_slide(src, fh, Keyring(b"0123456789abcdef0123"))
        fh.flush()
        os.fsync(fh.fileno())


def copy(src: Path, dst: Path) -> None:
    subprocess.run(["cp", str(src), str(dst)], check=True)
    subprocess.run(["sync", str(dst)], check=True)


def measure(src: Path, tmp: Path, repeat: int) -> None:
    src.read_bytes()  # warm the page cache
    times: dict[str, list[float]] = {"clean_slide+fsync": [], "cp+sync": []}
    for i in range(repeat):
        for name, fn in (("clean_slide+fsync", clean), ("cp+sync", copy))[:: 1 if i % 2 else -1]:
            dst = tmp / "out.bin"
            dst.unlink(missing_ok=True)
            t = time.perf_counter()
            fn(src, dst)
            times[name].append(time.perf_counter() - t)
    mb = src.stat().st_size / 1e6
    for name, ts in times.items():
        print(f"  {name:18s} best {min(ts) * 1e3:9.1f} ms  median {statistics.median(ts) * 1e3:9.1f} ms  "
              f"spread {min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f} ms  ({mb / min(ts):.0f} MB/s)")
    ratio = min(times["clean_slide+fsync"]) / min(times["cp+sync"])
    med = statistics.median(times["clean_slide+fsync"]) / statistics.median(times["cp+sync"])
    print(f"  clean / durable copy: {ratio:.2f} (medians {med:.2f})")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels")]))
    rss = [int(subprocess.run([sys.executable, "-c", CHILD, a, str(tmp / "rss.bin")], env=env, check=True,
                              capture_output=True, text=True).stdout) for a in ("-", str(src))]
    print(f"  peak RSS: import only {rss[0] / 1024:.0f} MB, clean_slide {rss[1] / 1024:.0f} MB")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as d:
        tmp = Path(d)
        fs = subprocess.run(["df", "--output=fstype", str(tmp)], capture_output=True, text=True).stdout.split()[-1]
        print(f"file system of {tmp}: {fs}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
        print(f"{SAMPLE.name} ({SAMPLE.stat().st_size / 1e6:.1f} MB):")
        measure(SAMPLE, tmp, args.repeat * 4)
        if args.mb:
            big = tmp / "big.svs"
            make_big(big, args.mb)
            print(f"synthetic BigTIFF SVS ({big.stat().st_size / 1e6:.0f} MB):")
            measure(big, tmp, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
