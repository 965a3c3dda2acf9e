"""Writing a released object into the release tree: the engine's job, the same for every format.

An object's bytes go to a temporary file in this process's own staging folder first, and the file
is then renamed to its final name without replacing anything (see :func:`medcloak.durable.place`),
which fails if another object already holds it: a release never has one file overwritten by
another, and never a half-written file under a final name. It is durable once
:data:`medcloak.durable.PENDING` is committed, and its manifest line waits for that. A worker
killed midway leaves at most a temporary file in the staging folder, which the run removes, and
files under final names without manifest lines, which ``--resume`` removes and does again.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable, Mapping

from .errors import DuplicateObject, OutputError

if TYPE_CHECKING:
    from .handlers.base import Released

#: folder of the release where objects are written before they get their final names
STAGING = ".medcloak-staging"
#: bytes read at a time to hash a streamed object
CHUNK = 4 << 20

_MADE: set[str] = set()  # folders this process has made: a cache of the file system, no state


def duplicate_reason(relpath: str) -> str:
    """Why an object is not released when another holds its output with other content."""
    from .dicomdir import ISO_NAME  # a DICOM object's name under ``run --dicomdir``

    if relpath.endswith(".dcm") or ISO_NAME.match(relpath):
        return "duplicate SOP Instance UID: another input object is released as this instance"
    return "duplicate: another input object is released under the same keyed name, with other content"


def publish(released: Released, out_root: Path, replace: bool = False, made: list[Path] | None = None) -> tuple[str, ...]:
    """Write ``released`` and the files released beside it (``extra``) under ``out_root``;
    the SHA-256 of each file written, in that order (so that ``--resume`` can tell an intact
    output from a damaged one). Raises :class:`OutputError` when the release cannot be written
    (disk full, read-only, no permission), and :class:`DuplicateObject` when another object holds
    the object's name with other content; ``replace`` overwrites it (the run's settlement of
    duplicates). An error of the object's own ``write`` (a streamed object found unfit midway)
    leaves nothing behind and is raised as it is. ``made``: a list the files this call created are
    added to (an object released with others, whole or not at all, is taken back with them)."""
    digests: list[str] = []
    placed: list[Path] = []  # files of this object placed so far: an object is released whole or not at all
    try:
        for relpath, what in ((released.relpath, released), *released.extra):
            digest, created = _place(out_root, relpath, what, replace, released.counts)
            digests.append(digest)
            if created:
                placed.append(out_root / relpath)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    if made is not None:
        made.extend(placed)
    return tuple(digests)


def _place(out_root: Path, relpath: str, what: Released | bytes | Callable[[BinaryIO], Mapping[str, int]],
           replace: bool, counts: dict[str, int]) -> tuple[str, bool]:
    """Write one file of an object; its SHA-256, and whether this call made it (a file with the
    same bytes already there, from a killed worker, is taken as it is)."""
    from .durable import PENDING, place

    target = out_root / relpath
    tmp: Path | None = None
    try:
        _make_folders(out_root, target.parent)
        stage = _staging(out_root)
        # a random name: unique across the processes and machines of a cluster (forked ones too)
        tmp = stage / f"{uuid.uuid4().hex}-{target.name}"
        try:
            fh = open(tmp, "w+b")
        except FileNotFoundError:  # a folder was removed since this process made it
            target.parent.mkdir(parents=True, exist_ok=True)
            stage.mkdir(parents=True, exist_ok=True)
            fh = open(tmp, "w+b")
        with fh:
            digest = _write(fh, what, counts)
        if replace:
            os.replace(tmp, target)
            PENDING.add(target)
            return digest, True
        try:
            try:
                place(tmp, target)
            except FileNotFoundError:  # the folder went away between mkdir and rename
                target.parent.mkdir(parents=True, exist_ok=True)
                place(tmp, target)
        except FileExistsError:
            held = _digest_of(target)
            tmp.unlink(missing_ok=True)
            if held == digest:
                PENDING.add(target)  # a killed worker's file, perhaps not yet durable
                return digest, False
            raise DuplicateObject(
                duplicate_reason(relpath),
                relpath, digest, getattr(what, "rank", ()),
            ) from None
        PENDING.add(target)
        return digest, True
    except OSError as exc:
        _remove(tmp)
        raise output_error(exc) from None
    except BaseException:
        _remove(tmp)
        raise


def _write(fh: BinaryIO, what: Released | bytes | Callable[[BinaryIO], Mapping[str, int]], counts: dict[str, int]) -> str:
    """Write the object (its bytes, or what its writer streams) into ``fh``; its SHA-256. A
    writer's counts are added to ``counts``."""
    if isinstance(what, bytes):
        fh.write(what)
        return hashlib.sha256(what).hexdigest()
    if not callable(what):
        if what.write is None:
            return _write(fh, what.data, counts)
        what = what.write
    result = what(fh)
    given, digest = result if isinstance(result, tuple) else (result, "")
    for key, value in given.items():
        counts[key] = counts.get(key, 0) + value
    fh.flush()
    if digest:  # hashed by the writer as it wrote
        return digest
    fh.seek(0)
    return _hash(fh)


def _hash(fh: BinaryIO) -> str:
    sha = hashlib.sha256()
    while chunk := fh.read(CHUNK):
        sha.update(chunk)
    return sha.hexdigest()


def _digest_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return _hash(fh)


def _remove(tmp: Path | None) -> None:
    try:
        if tmp is not None:
            tmp.unlink()
    except OSError:
        pass


def _make_folders(out_root: Path, folder: Path) -> None:
    """Make ``folder`` and the folders between it and ``out_root``, one ``mkdir`` each for this
    process (a failed ``mkdir`` of a folder whose parent is missing costs as much as one that
    works, on a disk)."""
    if str(folder) in _MADE:
        return
    parts = folder.relative_to(out_root).parts
    try:
        for i in range(1, len(parts) + 1):
            path = out_root.joinpath(*parts[:i])
            key = str(path)
            if key in _MADE:
                continue
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            _MADE.add(key)
    except FileNotFoundError:  # a folder this process made is gone (an earlier run's release)
        folder.mkdir(parents=True, exist_ok=True)
        _MADE.add(str(folder))


_STAGES: dict[tuple[int, str], Path] = {}


def _staging(out_root: Path) -> Path:
    """This process's own folder inside the release's staging folder: creating a file locks its
    folder, and on ext4 the new file's inode is found under that lock, which made processes that
    shared one staging folder wait for each other."""
    key = (os.getpid(), str(out_root))  # a forked process gets a folder of its own
    stage = _STAGES.get(key)
    if stage is None:
        stage = out_root / STAGING / uuid.uuid4().hex[:16]
        stage.mkdir(parents=True, exist_ok=True)
        _STAGES[key] = stage
    return stage


def output_error(exc: OSError) -> OutputError:
    """The error that stops a run whose release cannot be written."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    return OutputError(f"cannot write the release: {exc.strerror or exc} ({name})")
