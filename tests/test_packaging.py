"""The wheel's package list names every package of the source tree (a package left out of
pyproject's list is missing from a non-editable install, though every test of an editable one
passes)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_in_the_wheel() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(base).parts)
        for base in (ROOT / "src", ROOT / "kernels")
        for init in base.rglob("__init__.py")
        if "tests" not in init.parts
    }
    assert found, "no package found"
    assert found == listed
