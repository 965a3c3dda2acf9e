"""A site's own TOML file (region templates, the OCR safe list): read as a document, or refused
with a :class:`ProfileError` that says which file it was and why, never with its contents."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import ProfileError


def read_site_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The TOML document at ``path``; ``what`` names it in the error ("the OCR safe list")."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError:
        raise ProfileError(f"{what} cannot be read") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{what} is not valid TOML: {exc}") from None
