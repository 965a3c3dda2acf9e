"""The limits of a run (medcloak.limits): refusals name the limit, the defaults apply outside a
run, and a task's limits are current while it runs and only then."""

import pytest

from medcloak import limits
from medcloak.errors import DeidentificationError, LimitError


def test_uncompressed_data_cannot_exceed_the_file():
    limits.check_declared(1000, what="voxel data", stored=1000)
    with pytest.raises(LimitError, match="file holds only"):
        limits.check_declared(1001, what="voxel data", stored=1000)


def test_expansion_ratio_and_ceiling_name_their_option():
    strict = limits.Limits(ratio_floor=0)
    limits.check_declared(200 * 1000, what="data", stored=1000, compressed=True, limits=strict)
    with pytest.raises(LimitError, match="--max-expansion"):
        limits.check_declared(200 * 1000 + 1, what="data", stored=1000, compressed=True, limits=strict)
    with pytest.raises(LimitError, match="--max-object-size"):
        limits.check_declared(limits.MAX_OBJECT_BYTES + 1, what="data")
    assert issubclass(LimitError, DeidentificationError)  # a quarantine, not an internal error


def test_applied_limits_are_current_only_within_their_block():
    loose = limits.Limits(max_object_bytes=0, max_ratio=0)
    with limits.applied(loose):
        assert limits.current() is loose
        limits.check_declared(1 << 50, what="data", stored=1, compressed=True)  # off
        assert limits.inflate_limit(10) == 0
    assert limits.current() == limits.Limits()
    assert limits.inflate_limit(10) == limits.RATIO_FLOOR  # small data: the floor
    assert limits.inflate_limit(10 << 20) == 200 * (10 << 20)
    tight = limits.Limits(max_object_bytes=500, ratio_floor=0)
    assert limits.inflate_limit(10, tight) == 500
    assert "--max-object-size" in str(limits.refuse_inflated("data", 10, tight))
    assert "--max-expansion" in str(limits.refuse_inflated("data", 1, tight))


def test_the_ratio_spares_data_below_its_floor():
    """A brain mask, mostly zeros, gzips beyond 1:200 (1:238-1:283 for real ones): below the
    floor only the ceiling applies; a bomb beyond it is still refused for its ratio."""
    limits.check_declared(300 * 50_000, what="mask", stored=50_000, compressed=True)
    with pytest.raises(LimitError, match="--max-expansion"):
        limits.check_declared(limits.RATIO_FLOOR + 1, what="bomb", stored=1 << 20, compressed=True)


def test_verify_takes_the_limits_a_release_was_made_with(tmp_path):
    """``medcloak verify`` reads a release under the same limits as ``run`` (a release made with
    raised limits is checked with them): its default passes a photograph's release, and a
    ceiling below the photograph's pixels reports it unreadable, naming the option."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)  # a 400 x 300 RGB TIFF photograph of noise (360 KB)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(src / "photo.tif")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medcloak"]
    subprocess.run([*cmd, "run", str(src), "--out", str(out), "--quiet", "--workers", "1"], check=True,
                   capture_output=True)
    ok = subprocess.run([*cmd, "verify", str(out)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    tight = subprocess.run([*cmd, "verify", str(out), "--max-object-size", "64K"], capture_output=True, text=True)
    assert tight.returncode == 1 and "--max-object-size" in tight.stdout
    bad = subprocess.run([*cmd, "verify", str(out), "--max-expansion", "x"], capture_output=True, text=True)
    assert bad.returncode == 2


@pytest.mark.parametrize("size, ratio, seconds, words", [
    (-1, 200, 10, "--max-object-size"), (None, 0.5, 10, "--max-expansion"), (None, float("nan"), 10, "--max-expansion"),
    (None, 200, -1, "--object-timeout"), (None, 200, float("inf"), "--object-timeout"),
])
def test_the_api_refuses_limits_the_command_refuses(tmp_path, size, ratio, seconds, words):
    """``medcloak.deidentify`` checks its limits as the command does (one check for both), writing nothing."""
    import medcloak
    from medcloak.errors import UsageError

    (tmp_path / "in").mkdir()
    with pytest.raises(UsageError, match=words):
        medcloak.deidentify([tmp_path / "in"], tmp_path / "out", max_object_size=size, max_expansion=ratio,
                            object_timeout=seconds)
    assert not (tmp_path / "out").exists()
    limits.check_options(0, 0, 0)  # 0 turns each off
