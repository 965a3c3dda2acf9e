"""Walking the inputs: a stream of sources, never the whole list in memory.

Every regular file below each input, in a stable order (inputs, directories and names sorted),
each sniffed by its first bytes, not its extension, by the format handlers
(:mod:`medcloak.handlers`). Inputs nested inside other inputs are walked
once. ``.git`` and ``.datalad`` folders are never walked; git's own files (``.gitattributes``...)
are recorded as skipped.

Symbolic links are never followed into directories. A link to a regular file is followed when its
target lies inside the inputs (or anywhere, with ``follow_links``), and every target is processed
once: under its own path when the walk meets the target itself, otherwise under the first link to
it that the walk meets (a git-annex or DataLad dataset, whose files are links into
``.git/annex/objects``); every other link to it is recorded as skipped. A link leading outside the
inputs is skipped with that reason unless ``follow_links`` is given, so a crafted link cannot pull
a file from elsewhere into the release; a link into the release or audit folder is always skipped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UsageError
from .handlers import ACTIONS, sniff  # noqa: F401 - ACTIONS: where callers found it
from .handlers.base import HEAD
from .model import Source

#: folders never walked: version control and DataLad's own (annexed content is reached by its links)
PRUNED = frozenset({".git", ".datalad"})
#: git's own files in a working tree (a ``.git`` file stands for the folder in submodules)
VCS_FILES = frozenset({".git", ".gitattributes", ".gitignore", ".gitmodules"})


def _roots(inputs: Iterable[Path]) -> list[Path]:
    roots = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"input does not exist: {path}")
        roots.append(path.resolve())
    # an input inside another one is walked with it; sorted, so the order given does not matter
    return sorted(r for r in dict.fromkeys(roots) if not any(r != o and r.is_relative_to(o) for o in roots))


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(r) for r in roots)


def _walked(target: Path, roots: list[Path]) -> bool:
    """Whether the walk meets ``target`` (a resolved regular file) itself."""
    for root in roots:
        if target == root:
            return True
        if target.is_relative_to(root):
            return not PRUNED.intersection(target.relative_to(root).parts[:-1])
    return False


def _file(path: Path) -> Source:
    """A regular file, or the file a followed link leads to, sniffed by the handlers."""
    if path.name in VCS_FILES:
        return Source(str(path), "vcs", 0)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(HEAD)
    except OSError:
        return Source(str(path), "unknown", 0)
    try:
        kind = sniff(head, path)
    except Exception:  # noqa: BLE001 - a crafted file must not stop discovery: its task quarantines it
        kind = "unknown"
    return Source(str(path), kind, size)


class _Walk:
    """What one walk knows: its inputs, the trees it leaves out, and the link targets taken."""

    def __init__(self, roots: list[Path], excluded: list[Path], follow_links: bool) -> None:
        self.roots = roots
        self.excluded = excluded
        self.follow_links = follow_links
        #: digests of the targets already taken through a link (16 bytes each, not whole paths)
        self.taken: set[bytes] = set()

    def source(self, path: Path) -> Source | None:
        if not path.is_symlink():
            return _file(path)
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return Source(str(path), "link-broken", 0)  # dangling or looping
        if target.is_dir():
            return Source(str(path), "link-folder", 0)  # never followed
        if not target.is_file():
            return None  # a device, a fifo
        if _inside(target, self.excluded):
            return Source(str(path), "link-release", 0)
        if _walked(target, self.roots):
            return Source(str(path), "link-inside", 0)  # the target is processed under its own path
        if not (self.follow_links or _inside(target, self.roots)):
            return Source(str(path), "link-outside", 0)
        key = hashlib.blake2b(os.fsencode(target), digest_size=16).digest()
        if key in self.taken:
            return Source(str(path), "link-inside", 0)  # another link stands for it
        self.taken.add(key)
        return _file(path)


def discover(inputs: Iterable[Path], exclude: Iterable[Path] = (), follow_links: bool = False) -> Iterator[Source]:
    """Every input object, one at a time, in a stable order, without the excluded trees;
    ``follow_links``: follow symbolic links to files outside the inputs too."""
    roots = _roots(inputs)
    excluded = [Path(p).resolve() for p in exclude]
    walk = _Walk(roots, excluded, follow_links)
    for root in roots:
        if root.is_file():
            source = walk.source(root)
            if source is not None:
                yield source
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in PRUNED and not _inside(here / d, excluded))
            if _inside(here, excluded):
                continue
            # os.walk lists links to folders among the folders (and does not enter them): they are
            # recorded with the files, in name order
            links = [d for d in dirnames if (here / d).is_symlink()]
            dirnames[:] = [d for d in dirnames if d not in links]
            for name in sorted(filenames + links):
                path = here / name
                if not (path.is_file() or path.is_symlink()):
                    continue  # sockets, fifos, devices
                source = walk.source(path)
                if source is not None:
                    yield source
