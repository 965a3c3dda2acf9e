"""What the limit checks of photographs and slides cost (issue 15): the same work done by this
tree's code and by the code before the checks (``--base``, a commit; e9c659c by default),
measured in one run, alternating, each in a child process of its own. Both are copied into the
temporary folder first (this tree's files as they are, the base from git), so that both compile
their numba kernels alike: kernels loaded from another cache ran a photo's strip 1.5x slower.

Work measured (inputs real where there are some):

- ``slide``: :func:`medcloak.formats.slide_tiff.clean_slide` of the real CMU-1-Small-Region.svs
  (1.9 MB Aperio, data_samples/wsi) into a file on the ``--tmp`` disk, and of the real
  slideio_test3-DAPI-2-387.ndpi (3.5 MB Hamamatsu);
- ``photo``: :func:`medcloak.formats.photo.deidentify_photo` of real JPEGs (scikit-learn's
  china.jpg, scikit-image's retina.jpg when installed), then the compressed-domain redaction of a
  box (:func:`medcloak.pixels.jpeg_redact.redact_jpeg_detailed`, which parses the frame and
  holds its blocks) of the same files;
- ``tiles``: clean_slide of a synthetic slide of 1,048,576 shared 16x16 JPEG tiles (the case the
  checks changed most: offsets read as arrays, shared tiles scanned once).

Each child runs the work ``--inner`` times (times 2 for slides, 40 for photos, 10 for
redaction: about a tenth of a second; the synthetic slide once) and reports its best; ``--rounds``
rounds alternate the two trees. The figure is the ratio of the two bests (this tree / base: 1.00
is no cost), with the spread of the per-round ratios; the machine is shared, so only ratios mean
anything. Last, in this tree alone, the share of
:func:`~medcloak.formats.photo_limits.check_jpeg` in deidentify_photo, both timed in one process
(the figure noise touches least).

Run: ``python benchmarks/bench_limits_images.py [--rounds 5] [--inner 5] [--tmp DIR] [--base REV]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import file_system

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data_samples" / "wsi"

CHILD = r"""
import json, sys, time
src, work, inner, tmp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
inputs = json.loads(sys.argv[5])
sys.path[:0] = [src + "/src", src + "/kernels"]
from pathlib import Path
import medcloak
assert medcloak.__file__.startswith(src), medcloak.__file__
from medcloak.pseudonym import Keyring
key = Keyring(b"0123456789abcdef0123")
if work in ("slide", "tiles"):
    from medcloak.formats.slide_tiff import clean_slide
    def once():
        for path in inputs:
            with open(Path(tmp) / "out.tif", "wb") as fh:
                clean_slide(Path(path), fh, key)
elif work == "photo":
    from medcloak.formats.photo import deidentify_photo
    def once():
        for path in inputs:
            deidentify_photo(Path(path), "jpeg", key)
elif work == "redact":
    from medcloak.pixels.jpeg_redact import redact_jpeg_detailed
    datas = [Path(p).read_bytes() for p in inputs]
    def once():
        for data in datas:
            redact_jpeg_detailed(data, [(8, 8, 72, 40)], "black")
elif work == "share":  # the check alone over the whole of deidentify_photo, in one process
    from medcloak.formats.photo import deidentify_photo
    from medcloak.formats.photo_limits import check_jpeg
    datas = [Path(p).read_bytes() for p in inputs]
    def best(fn, n=200):
        out = []
        for _ in range(n):
            t = time.perf_counter(); fn(); out.append(time.perf_counter() - t)
        return min(out)
    best(lambda: [deidentify_photo(Path(p), "jpeg", key) for p in inputs], 5)
    whole = best(lambda: [deidentify_photo(Path(p), "jpeg", key) for p in inputs])
    check = best(lambda: [check_jpeg(d) for d in datas])
    print(json.dumps([check, whole]))
    sys.exit()
once()  # warm: imports, kernels compiled, page cache
times = []
for _ in range(inner):
    t = time.perf_counter()
    once()
    times.append(time.perf_counter() - t)
print(json.dumps(min(times)))
"""


def _real_jpegs() -> list[Path]:
    found = []
    for package, name in (("sklearn", "datasets/images/china.jpg"), ("skimage", "data/retina.jpg")):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if (Path(folder) / name).is_file():
                found.append(Path(folder) / name)
    return found


def _many_tiles(path: Path) -> None:
    """A generic pyramid of 1024 x 1024 shared 16x16 JPEG tiles (as in tests/test_limits_images.py)."""
    import io
    import struct

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)).save(buf, "JPEG")
    tile = buf.getvalue()
    out = bytearray(b"II*\x00\x00\x00\x00\x00" + tile + b"\x00" * (len(tile) & 1))
    link = 4
    for n, side, sub in ((1 << 20, 1024, 0), (1, 1, 1)):
        arrays = {}
        for tag, value in ((324, 8), (325, len(tile))):
            if n > 1:
                arrays[tag] = len(out)
                out += np.full(n, value, "<u4").tobytes()
            else:
                arrays[tag] = value
        entries = [(254, 4, 1, sub), (256, 4, 1, 16 * side), (257, 4, 1, 16 * side), (258, 3, 1, 8), (259, 3, 1, 7),
                   (262, 3, 1, 1), (277, 3, 1, 1), (322, 4, 1, 16), (323, 4, 1, 16), (324, 4, n, arrays[324]),
                   (325, 4, n, arrays[325])]
        struct.pack_into("<I", out, link, len(out))
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
        link = len(out)
        out += b"\x00\x00\x00\x00"
    path.write_bytes(bytes(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inner", type=int, default=5)
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--base", default="e9c659c")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base, "src", "kernels"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        new = tmp / "new"  # this tree's code copied beside the base, so both compile their kernels alike
        for part in ("src", "kernels"):
            shutil.copytree(ROOT / part, new / part, ignore=shutil.ignore_patterns("__pycache__"))
        _many_tiles(tmp / "tiles.tif")
        jpegs = [str(p) for p in _real_jpegs()]
        works = {"slide": [str(SAMPLES / "CMU-1-Small-Region.svs"), str(SAMPLES / "slideio_test3-DAPI-2-387.ndpi")],
                 "photo": jpegs, "redact": jpegs, "tiles": [str(tmp / "tiles.tif")]}
        print(f"file system of --tmp: {file_system(tmp)}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
              f"base {args.base}; {args.rounds} rounds x best of {args.inner}")
        print(f"{'work':8} {'this tree (ms)':>15} {'base (ms)':>10} {'ratio of bests':>15}  per-round ratios (this tree / base)")
        for work, inputs in works.items():
            if not inputs:
                print(f"{work:8} (no input here)")
                continue
            inner = max(1, args.inner * {"slide": 2, "photo": 40, "redact": 10, "tiles": 0}[work])  # ~0.1 s a child
            runs: dict[str, list[float]] = {"new": [], "base": []}
            for r in range(args.rounds):
                order = (("new", new), ("base", base)) if r % 2 == 0 else (("base", base), ("new", new))
                for name, src in order:
                    out = subprocess.run([sys.executable, "-c", CHILD, str(src), work, str(inner), str(tmp),
                                          json.dumps(inputs)], check=True, capture_output=True, text=True,
                                         env={**os.environ, "PYTHONPATH": ""}).stdout
                    runs[name].append(json.loads(out.strip().splitlines()[-1]))
            ratios = [a / b for a, b in zip(runs["new"], runs["base"])]
            print(f"{work:8} {1000 * min(runs['new']):15.2f} {1000 * min(runs['base']):10.2f} "
                  f"{min(runs['new']) / min(runs['base']):15.3f}  median {statistics.median(ratios):.3f}, "
                  f"{min(ratios):.3f}..{max(ratios):.3f}")
        if jpegs:
            shares = []
            for _ in range(args.rounds):
                out = subprocess.run([sys.executable, "-c", CHILD, str(new), "share", "1", str(tmp), json.dumps(jpegs)],
                                     check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}).stdout
                check, whole = json.loads(out.strip().splitlines()[-1])
                shares.append(check / whole)
            print(f"check_jpeg alone / deidentify_photo (this tree, one process): {statistics.median(shares):.4f} "
                  f"({min(shares):.4f}..{max(shares):.4f}), {1e6 * check:.1f} us of {1e6 * whole:.0f} us in the last round")
        print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
