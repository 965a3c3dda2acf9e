"""The format handlers, in one table that discovery, the engine and ``verify`` read (see
:mod:`medcloak.handlers.base` for what a handler is). A new format is one more module here.

Discovery asks the handlers in the order of :data:`HANDLERS`; the first that claims a file has it.
DICOM comes first (a dual-personality file whose preamble is a TIFF header is DICOM); then every
other file inside a BIDS dataset is the BIDS handler's (released in the dataset, or quarantined:
never flattened into ``slides/``, ``photos/`` or ``volumes/``); MIRAX
slides (a ``.mrxs`` file and the files of its folder) before TIFF-family slides (``verify`` asks
the handlers in the same order, and MIRAX owns its files among ``slides/``); slides before
photographs (both are TIFF files; a slide has several pages); FreeSurfer MGH and NRRD before the
other volumes (they own their files among ``volumes/``); ECAT by its magic; Philips PAR/REC (a PAR
by its signature, its REC beside it); Siemens twix raw data (its own magic); volumes last (they
claim the companions of volumes, which nothing else does).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from . import bids, dicom, ecat, mgh, mirax, nrrd, parrec, photo, slide, twix, volume

HANDLERS: tuple[ModuleType, ...] = (dicom, bids, mirax, slide, photo, mgh, nrrd, ecat, parrec, twix, volume)

#: what discovery itself knows of a file that no handler takes, or that is not walked into
DISCOVERY = {
    "unknown": "quarantine (not a supported format)",
    "link-outside": "skip (symbolic link leading outside the inputs: --follow-links follows it)",
    "link-inside": "skip (symbolic link to a file processed under another path)",
    "link-broken": "quarantine (symbolic link to a missing file: git-annex content not fetched?)",
    "link-folder": "skip (symbolic link to a folder: folders are never entered through links)",
    "link-release": "skip (symbolic link into the release or audit folder)",
    "vcs": "skip (version-control file)",
}

#: every format and what a run does with it (``--dry-run`` prints these)
ACTIONS: dict[str, str] = {**{kind: action for h in HANDLERS for kind, action in h.KINDS.items()}, **DISCOVERY}

#: a file that no handler claims is still given to the DICOM handler, whose reader refuses it with
#: its reason ("not a DICOM file"), or reads a bare data set whose first bytes the sniff doubted
_BY_KIND = {"unknown": dicom, **{kind: h for h in HANDLERS for kind in h.KINDS}}


def sniff(head: bytes, path: Path) -> str:
    """The format of a file from its first bytes (``path`` where a handler needs more)."""
    for handler in HANDLERS:
        kind = handler.sniff(head, path)
        if kind is not None:
            return kind
    return "unknown"


def handler_for(kind: str) -> ModuleType | None:
    """The handler of a format (``None`` for what discovery alone knows)."""
    return _BY_KIND.get(kind)


def handler_of_output(relpath: str) -> ModuleType | None:
    """The handler that writes a released file (``None``: no handler writes such a file)."""
    for handler in HANDLERS:
        if handler.owns(relpath):
            return handler
    return None
