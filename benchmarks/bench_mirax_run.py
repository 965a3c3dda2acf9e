"""``medcloak run`` on a MIRAX slide, end to end, against a durable copy of the same files.

The slide: a synthetic MIRAX slide of about ``--mb`` MB (a ``--grid`` x ``--grid`` level 0 of
tiles of random bytes behind a JPEG start marker, halved level after level down to one tile, in
data files of at most 256 MB, with a label, a macro, a preview and a position buffer, laid out
as ``tests/mirax_sample.py`` lays out its small slide; written once, not timed). The tiles are
not decodable images: medcloak never decodes them, it copies their bytes. Each round, in an order
that rotates:

- ``run``: the ``medcloak`` command (``--workers 1``) on the slide's folder into a new release
  folder (start-up, discovery, reading Slidedat.ini and Index.dat, the streamed copy of the data
  files, the SHA-256 of every output, the sync and the audit included);
- ``start-up``: the same command on the small slide of ``tests/mirax_sample.py``;
- ``cp+sync``: ``cp -r`` of the ``.mrxs`` and its folder, then ``sync`` of the copy.

The figure is (run - start-up) / (cp+sync), round by round, page cache warm (the slide read
once before). Peak resident memory of one ``run`` (``/usr/bin/time -f %M``) is printed.

Run: ``python benchmarks/bench_mirax_run.py [--mb 600] [--rounds 3] [--tmp DIR]`` (a disk, never
a tmpfs: the script names the file system it writes to).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_slide_run import timed  # noqa: E402 - the benchmarks' folder first

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FILE_MAX = 256 << 20


def make_big(parent: Path, mb: int, grid: int) -> Path:
    levels = grid.bit_length()
    tiles = sum((grid >> level) ** 2 for level in range(levels))
    tile = max(1024, (mb << 20) // tiles)
    folder = parent / "big"
    folder.mkdir(parents=True)
    rng = os.urandom(tile * 8)
    blobs = [b"\xff\xd8" + rng[i * tile: (i + 1) * tile - 2] for i in range(8)]
    files: list[bytearray] = [bytearray()]

    def put(blob: bytes) -> tuple[int, int, int]:
        if len(files[-1]) + len(blob) > FILE_MAX:
            (folder / f"Data{len(files) - 1:04d}.dat").write_bytes(bytes(files[-1]))
            files[-1] = bytearray()  # written: keep only the count
            files.append(bytearray())
        offset = len(files[-1])
        files[-1] += blob
        return offset, len(blob), len(files) - 1

    hier = []
    for level in range(levels):
        step = 1 << level
        hier.append([(y * grid + x, *put(blobs[(x + y) % 8])) for y in range(0, grid, step) for x in range(0, grid, step)])
    positions = b"".join(struct.pack("<Bii", 1, x * 256, y * 256) for y in range(grid) for x in range(grid))
    nonhier = [put(b"\xff\xd8label" * 1000), put(b"\xff\xd8macro" * 3000), put(b"\xff\xd8preview" * 2000), put(positions)]
    (folder / f"Data{len(files) - 1:04d}.dat").write_bytes(bytes(files[-1]))
    slide_id = "0123456789abcdef0123456789abcdef"
    ini = ["[GENERAL]", "SLIDE_VERSION=01.02", f"SLIDE_ID={slide_id}", "SLIDE_NAME=bench",
           f"IMAGENUMBER_X={grid}", f"IMAGENUMBER_Y={grid}", "OBJECTIVE_MAGNIFICATION=20",
           "CameraImageDivisionsPerSide=1", "[HIERARCHICAL]", "HIER_COUNT=1", "HIER_0_NAME=Slide zoom level",
           f"HIER_0_COUNT={levels}"]
    ini += [f"HIER_0_VAL_{i}=ZoomLevel_{i}\nHIER_0_VAL_{i}_SECTION=LAYER_0_LEVEL_{i}_SECTION" for i in range(levels)]
    ini += ["NONHIER_COUNT=2", "NONHIER_0_NAME=Scan data layer", "NONHIER_0_COUNT=3",
            "NONHIER_0_VAL_0=ScanDataLayer_SlideThumbnail", "NONHIER_0_VAL_1=ScanDataLayer_SlideBarcode",
            "NONHIER_0_VAL_2=ScanDataLayer_SlidePreview", "NONHIER_1_NAME=VIMSLIDE_POSITION_BUFFER",
            "NONHIER_1_COUNT=1", "NONHIER_1_VAL_0=default", "INDEXFILE=Index.dat", "[DATAFILE]",
            f"FILE_COUNT={len(files)}"]
    ini += [f"FILE_{i}=Data{i:04d}.dat" for i in range(len(files))]
    for i in range(levels):
        ini += [f"[LAYER_0_LEVEL_{i}_SECTION]", "OVERLAP_X=0", "OVERLAP_Y=0", f"MICROMETER_PER_PIXEL_X={0.25 * 2 ** i}",
                f"MICROMETER_PER_PIXEL_Y={0.25 * 2 ** i}", "IMAGE_FORMAT=JPEG", "IMAGE_FILL_COLOR_BGR=16777215",
                "DIGITIZER_WIDTH=256", "DIGITIZER_HEIGHT=256", f"IMAGE_CONCAT_FACTOR={0 if i == 0 else 1}"]
    (folder / "Slidedat.ini").write_text("\r\n".join(ini) + "\r\n")
    sys.path.insert(0, str(ROOT / "tests"))
    import mirax_sample

    mirax_sample.SLIDE_ID = slide_id  # the small sample's index writer, with this slide's ID
    (folder / "Index.dat").write_bytes(mirax_sample._index(hier, nonhier))
    mrxs = parent / "big.mrxs"
    mrxs.write_bytes(b"")
    return parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=600)
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tmp", default=str(ROOT.parent))
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'kernels'}:{ROOT / 'tests'}"}
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench-mirax-") as tmp_:
        tmp = Path(tmp_)
        fs = subprocess.run(["df", "-T", str(tmp)], capture_output=True, text=True, check=True).stdout.splitlines()[-1].split()[1]
        big = make_big(tmp / "in", args.mb, args.grid)
        size = sum(p.stat().st_size for p in big.rglob("*") if p.is_file())
        sys.path.insert(0, str(ROOT / "tests"))
        from mirax_sample import make_mirax

        make_mirax(tmp / "tiny")
        key = tmp / "key"
        key.write_bytes(b"bench-secret-0123456789abcdef")
        key.chmod(0o600)
        subprocess.run(["cat", *map(str, big.rglob("*.dat"))], stdout=subprocess.DEVNULL, check=True)

        def cmd(src: Path, out: Path) -> list[str]:
            return [sys.executable, "-m", "medcloak", "run", str(src), "--out", str(out), "--secret-file", str(key),
                    "--workers", "1", "--quiet"]

        ratios, runs, starts, copies = [], [], [], []
        for r in range(args.rounds):
            steps = ["run", "start", "cp"]
            steps = steps[r % 3:] + steps[: r % 3]
            got = {}
            for step in steps:
                out = tmp / f"out-{step}-{r}"
                if step == "run":
                    got[step] = timed(cmd(big, out), env)
                elif step == "start":
                    got[step] = timed(cmd(tmp / "tiny", out), env)
                else:
                    out.mkdir()
                    got[step] = timed(["sh", "-c", f"cp -r {big}/big.mrxs {big}/big {out}/ && sync -f {out}"], env)
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(Path(f"{out}.audit"), ignore_errors=True)
            runs.append(got["run"])
            starts.append(got["start"])
            copies.append(got["cp"])
            ratios.append((got["run"] - got["start"]) / got["cp"])
        rss = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd(big, tmp / "out-rss")], env=env,
                             capture_output=True, text=True, check=True).stderr.strip().splitlines()[-1]
        print(f"file system: {fs}; slide {size / 1e6:.0f} MB in {len(list(big.rglob('Data*.dat')))} data files; "
              f"rounds {args.rounds}, page cache warm")
        print(f"run {statistics.median(runs):.2f} s, start-up {statistics.median(starts):.2f} s, "
              f"cp+sync {statistics.median(copies):.2f} s")
        print(f"(run - start-up) / (cp+sync): median {statistics.median(ratios):.2f}, "
              f"min {min(ratios):.2f}, max {max(ratios):.2f}")
        print(f"peak RSS of one run: {int(rss) / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
