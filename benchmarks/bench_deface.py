"""Defacing time against I/O and against quickshear, in one run.

- ``256^3``: pydeface's template head (176x256x256 int16; fetched and verified by the tests'
  ``tests/shared_data.py``, which says where it comes from) padded to
  256x256x256 int16, with Rayleigh background noise (sigma 6) as a magnitude MR image has
  everywhere, stored as .nii.gz. Timed: nibabel loading the volume
  (``get_fdata``) and saving it again as .nii.gz (the I/O every defacer pays), and
  ``medcloak.formats.volume.deidentify_volume`` on the same file (reading, defacing, writing the
  stored values back and gzipping: the whole job). The goal: defacing adds less than the I/O.
- ``quickshear``: the ROBEX atlas head with its brain mask (quickshear needs a mask from another
  tool; its brain-extraction time is not counted), quickshear's command against medcloak on the
  same file (medcloak makes its own brain estimate).

Run: ``python benchmarks/bench_deface.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import sys

import numpy as np
from _timing import best

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from shared_data import head as head_volume  # noqa: E402 - the tests' verified copies of the heads


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import nibabel as nib

    from medcloak.formats.volume import deidentify_volume
    from medcloak.pseudonym import Keyring

    keyring = Keyring(b"benchmark-secret-0123456789")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = nib.load(head_volume("pydeface_mean_reg2mean.nii.gz"))
        data = np.asarray(src.dataobj)
        # background noise as a scanner leaves it (Rayleigh, like magnitude MR): a volume of
        # zeros would make gzip, and so every reader and writer, unrealistically fast
        rng = np.random.default_rng(0)
        padded = np.clip(rng.rayleigh(6.0, (256, 256, 256)), 0, 200).astype(np.int16)
        padded[40:216] = np.maximum(data, padded[40:216])
        affine = src.affine.copy()
        affine[:3, 3] -= affine[:3, 0] * 40
        big = root / "head256.nii.gz"
        nib.save(nib.Nifti1Image(padded, affine), big)

        def io() -> None:
            img = nib.load(big)
            arr = img.get_fdata()
            nib.save(nib.Nifti1Image(arr.astype(np.int16), img.affine, img.header), root / "io.nii.gz")

        def ours(path: Path) -> None:
            result = deidentify_volume(path, keyring)
            (root / "ours.nii.gz").write_bytes(result.released.data)

        ours(big)  # numba cache
        t_io = best(io, args.repeat)
        t_ours = best(lambda: ours(big), args.repeat)
        print(f"256^3 int16 .nii.gz: nibabel load+save {t_io:.2f} s, medcloak read+deface+write {t_ours:.2f} s")
        added = t_ours - t_io
        print(f"  defacing adds {added:+.2f} s to the I/O ({added / t_io * 100:+.0f} % of it)  "
              f"goal: less than the I/O  {'MET' if added < t_io else 'MISSED'}")

        # quickshear needs 3-D files: the atlas and its mask without their trailing axis of 1
        head, mask = root / "robex.nii.gz", root / "robex_mask.nii.gz"
        for name, out in (("robex_atlas.nii.gz", head), ("robex_atlas_brainmask.nii.gz", mask)):
            img = nib.load(head_volume(name))
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), out)
        t_robex = best(lambda: ours(head), args.repeat)
        quickshear = shutil.which("quickshear")
        if quickshear:
            cmd = [quickshear, str(head), str(mask), str(root / "qs.nii.gz")]
            t_qs = best(lambda: subprocess.run(cmd, check=True, capture_output=True), args.repeat)
            print(f"ROBEX atlas 116x150x155: quickshear (given the brain mask) {t_qs:.2f} s, "
                  f"medcloak (own brain estimate) {t_robex:.2f} s: {t_qs / t_robex:.1f}x")
        else:
            print(f"ROBEX atlas: medcloak {t_robex:.2f} s (quickshear not installed: pip install quickshear)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
