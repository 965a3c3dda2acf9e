"""One profile serves every object of a run, in any order: what the walk learns from one object
(its cache of elements kept as they are) never changes the release of another."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from medcloak.errors import MedcloakError
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

pydicom_data = pytest.importorskip("pydicom.data")
KEYRING = Keyring(b"walk-order-test-secret-0123456789")


def _releases(files: list[Path], profile) -> dict[str, bytes | str]:  # type: ignore[no-untyped-def]
    out: dict[str, bytes | str] = {}
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's complaints about its own odd test files
            try:
                out[path.name] = deidentify_dicom(path, profile, KEYRING).data
            except MedcloakError as exc:
                out[path.name] = type(exc).__name__
    return out


def test_the_release_of_an_object_does_not_depend_on_the_objects_before_it() -> None:
    """Every pydicom test file, once with a fresh profile each, then all with one profile in one
    order and all with another in the reverse order: the same bytes every time. (A standard tag
    stored as UN, resolved by the dictionary, was once written as UN after the first object that
    held it had filled the cache.)"""
    files = sorted(p for p in map(Path, pydicom_data.get_testdata_files()) if p.is_file() and p.suffix not in (".py", ".txt"))
    fresh = {p.name: _releases([p], load_profile())[p.name] for p in files}
    forward = _releases(files, load_profile())
    backward = _releases(files[::-1], load_profile())
    assert sum(isinstance(v, bytes) for v in fresh.values()) > 60
    differs = sorted(name for name in fresh if not (fresh[name] == forward[name] == backward[name]))
    assert differs == []
