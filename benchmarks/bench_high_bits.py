"""What clearing the bits above High Bit costs a DICOM de-identification, measured in the same run.

Builds, under ``--tmp`` (a real disk by default: the file system is printed), three corpora of
12-bit samples in 16 bits allocated: ``ct`` (``--slices`` 512x512 signed CT slices, negative
values sign-extended: the common clean case), ``ct-overlay`` (the same with a graphic drawn in
bit 15 of every slice: every slice rewritten) and ``mr`` (one unsigned 256x256 multi-frame MR of
``--frames`` frames, clean). For each corpus and round it times, in one process:

- ``floor``: pydicom ``dcmread`` and write to memory of every file;
- ``medcloak``: :func:`medcloak.formats.dicom.deidentify_dicom` of every file (default profile);
- ``without``: the same with the step (``clear_high_bits``, the overlay removal and the post-write
  ``high_bits_fault``) replaced by no-ops: the release before this change.

- ``step``: ``clear_high_bits`` and ``high_bits_fault`` alone on the data sets read beforehand
  (their Pixel Data restored before each, an assignment);

and prints ``medcloak / without`` (the step's cost; 1.00 is free) and ``medcloak / floor`` as
ratios of the best round, medians in brackets, and the spread of the per-round ratios, then
``step / floor`` (the step's share of a bare read and write): the
machine is shared, absolute times do not compare across runs. The order of the engines rotates per
round.

Run: ``python benchmarks/bench_high_bits.py [--slices 60] [--frames 200] [--rounds 5] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from _timing import file_system


def _ct(path: Path, i: int, overlay: bool) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 512
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
    rng = np.random.default_rng(i)
    values = rng.integers(-1024, 2047, (512, 512), dtype=np.int16)
    cells = values.view(np.uint16).copy()
    if overlay:
        cells[100:140, 50:460] ^= 0x8000
    ds.PixelData = cells.tobytes()
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.999.{i + 1}"
    ds.save_as(path, enforce_file_format=True)


def _mr(path: Path, frames: int) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    ds.Rows = ds.Columns = 256
    ds.NumberOfFrames = frames
    rng = np.random.default_rng(0)
    ds.PixelData = rng.integers(0, 4096, (frames, 256, 256), dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _floor(paths: list[Path]) -> None:
    import pydicom
    from pydicom.filebase import DicomBytesIO

    for p in paths:
        ds = pydicom.dcmread(p)
        ds.save_as(DicomBytesIO(), enforce_file_format=True)


def _medcloak(paths: list[Path], profile, keyring) -> None:  # type: ignore[no-untyped-def]
    from medcloak.formats.dicom import deidentify_dicom

    for p in paths:
        deidentify_dicom(p, profile, keyring)


def _without(paths: list[Path], profile, keyring) -> None:  # type: ignore[no-untyped-def]
    with mock.patch("medcloak.formats.dicom.clear_high_bits", lambda ds, ts: 0), \
            mock.patch("medcloak.formats.dicom.remove_overlays_in_pixel_data", lambda ds: 0), \
            mock.patch("medcloak.formats.dicom.high_bits_fault", lambda ds, ts: None):
        _medcloak(paths, profile, keyring)


def _step(datasets: list) -> None:  # type: ignore[type-arg]
    from medcloak.formats.dicom_bits import clear_high_bits, high_bits_fault

    for ds, pixels in datasets:
        ds.PixelData = pixels
        clear_high_bits(ds, "1.2.840.10008.1.2.1")
        high_bits_fault(ds, "1.2.840.10008.1.2.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tmp", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()

    from medcloak.pseudonym import Keyring
    from medcloak.rules.profile import load_profile

    profile, keyring = load_profile(), Keyring(b"bench-secret-0123456789abcdef")
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="bench-high-bits-") as tmp:
        root = Path(tmp)
        print(f"corpus on {file_system(root)}; {args.rounds} rounds; machine shared: ratios only")
        corpora: dict[str, list[Path]] = {"ct": [], "ct-overlay": [], "mr": []}
        for name, overlay in (("ct", False), ("ct-overlay", True)):
            (root / name).mkdir()
            for i in range(args.slices):
                path = root / name / f"{i}.dcm"
                _ct(path, i, overlay)
                corpora[name].append(path)
        (root / "mr").mkdir()
        _mr(root / "mr" / "0.dcm", args.frames)
        corpora["mr"].append(root / "mr" / "0.dcm")
        engines: dict = {  # type: ignore[type-arg]
            "floor": _floor,
            "medcloak": lambda paths: _medcloak(paths, profile, keyring),
            "without": lambda paths: _without(paths, profile, keyring),
        }
        import pydicom

        for name, paths in corpora.items():
            size = sum(p.stat().st_size for p in paths) / 1e6
            datasets = [(ds, ds.PixelData) for ds in map(pydicom.dcmread, paths)]
            engines["step"] = lambda: _step(datasets)  # noqa: B023 - called in this iteration only
            times: dict[str, list[float]] = {e: [] for e in engines}
            order = list(engines)  # floor, medcloak, without, step
            for r in range(args.rounds):
                for engine in order[r % 4:] + order[: r % 4]:
                    t = time.perf_counter()
                    engines[engine]() if engine == "step" else engines[engine](paths)
                    times[engine].append(time.perf_counter() - t)
            step = [m / w for m, w in zip(times["medcloak"], times["without"])]
            floor = [m / f for m, f in zip(times["medcloak"], times["floor"])]
            print(
                f"{name:11s} {len(paths):3d} files {size:6.1f} MB | medcloak/without (time) "
                f"{min(times['medcloak']) / min(times['without']):.3f} "
                f"({statistics.median(times['medcloak']) / statistics.median(times['without']):.3f}), "
                f"per round {min(step):.3f}..{max(step):.3f} | medcloak/floor (time) "
                f"{min(times['medcloak']) / min(times['floor']):.2f} "
                f"({statistics.median(times['medcloak']) / statistics.median(times['floor']):.2f}), "
                f"per round {min(floor):.2f}..{max(floor):.2f} | step/floor "
                f"{min(times['step']) / min(times['floor']):.3f}"
            )


if __name__ == "__main__":
    main()
