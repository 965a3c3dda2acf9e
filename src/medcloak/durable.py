"""Durability by the group: released objects are written without a sync each, and a group of them
is made durable at once before any of their manifest lines is written.

The guarantee stays what it was with a sync per object: an object is recorded in the manifest only
once its bytes and its name are on stable storage, so a run killed at any moment (or a machine that
loses power) leaves no manifest line without its file. Files placed under their final names but not
yet recorded are what a resumed run removes and does again.

How a group is made durable, in the process that wrote it (a Dask worker before it hands back its
batch; the main process for the objects it does itself):

- Linux: one ``syncfs`` on the release's file system: the data and the metadata (names, folders) of
  every file the group wrote, in one journal commit, instead of one per object. ``syncfs`` reports
  write-back errors since Linux 5.8.
- elsewhere (or where ``syncfs`` fails as unsupported): ``fsync`` of each file written, then (on
  POSIX systems) of each folder that got a new name, as before but once per group.

Placing a file under its final name never replaces another object's file: ``renameat2`` with
``RENAME_NOREPLACE`` (Linux; one directory operation), else ``link`` then ``unlink`` of the
temporary name, as before. Both fail with ``FileExistsError`` when the name is taken.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import threading
import time
from pathlib import Path

#: a group is made durable once it is this old (seconds) ...
MIN_INTERVAL = 0.5
#: ... or, when syncs are slow (network file systems, a busy disk), once a sync costs at most
#: 1/SYNC_SHARE of the time between syncs ...
SYNC_SHARE = 20
#: ... but never later than this (what a kill can cost, and how far the manifest lags)
MAX_INTERVAL = 10.0

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_libc = None
_no_syncfs = False
_no_renameat2 = sys.platform != "linux"


def _c() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform == "linux":
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        except OSError:
            return None
    return _libc


def place(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target``, never over an existing file (``FileExistsError``)."""
    global _no_renameat2
    if not _no_renameat2:
        libc = _c()
        fn = getattr(libc, "renameat2", None) if libc is not None else None
        if fn is not None:
            if fn(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
                return
            code = ctypes.get_errno()
            if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                raise OSError(code, os.strerror(code), str(target))
        _no_renameat2 = True  # the file system (or the C library) cannot: link and unlink
    os.link(tmp, target)
    try:
        os.unlink(tmp)
    except OSError:
        pass  # the staging folder is removed at the end of the run


class Pending:
    """What this process wrote and has not yet made durable (thread-safe: a threaded Dask worker
    shares it; a sync covers every thread's files, and a thread that finds its files being
    synced by another waits for that sync)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: set[str] = set()
        self.folders: set[str] = set()
        self.since = 0.0
        #: seconds the last sync took, and how many were made
        self.last = 0.0
        self.syncs = 0
        #: a sync failed: what was written since is lost to us (a later sync may report success
        #: for pages the failed one dropped), so every later commit fails too
        self.failed = False

    def add(self, path: Path, new_name: bool = True) -> None:
        with self._lock:
            if not self.files:
                self.since = time.monotonic()
            self.files.add(str(path))
            if new_name:
                self.folders.add(str(path.parent))

    def discard(self, path: Path) -> None:
        """Forget ``path``: a file taken back before it was recorded."""
        with self._lock:
            self.files.discard(str(path))

    def due(self) -> bool:
        """Whether the group is old enough to be made durable: see :data:`MIN_INTERVAL`."""
        if not self.files:
            return True
        wait = min(MAX_INTERVAL, max(MIN_INTERVAL, SYNC_SHARE * self.last))
        return time.monotonic() - self.since >= wait

    def commit(self) -> float:
        """Make every file written so far durable; the seconds it took. Raises ``OSError``."""
        with self._lock:
            if self.failed:
                raise OSError(errno.EIO, "an earlier sync of the release failed")
            if not self.files:
                return 0.0
            started = time.monotonic()
            files, folders = sorted(self.files), sorted(self.folders)
            try:
                if not _syncfs(files[0]):
                    for path in files:
                        _fsync_path(path, os.O_RDONLY)
                    for folder in folders if os.name == "posix" else ():  # Windows opens no folder
                        _fsync_path(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                self.failed = True
                raise
            self.files.clear()
            self.folders.clear()
            self.last = time.monotonic() - started
            self.syncs += 1
            return self.last


    def forget(self) -> None:
        """Start afresh after a failed sync (a new run, once the failed one removed what it could
        not record)."""
        with self._lock:
            if self.failed:
                self.files.clear()
                self.folders.clear()
                self.failed = False


def _syncfs(path: str) -> bool:
    """``syncfs`` of the file system holding ``path``; False where there is none."""
    global _no_syncfs
    libc = _c() if not _no_syncfs else None
    fn = getattr(libc, "syncfs", None) if libc is not None else None
    if fn is None:
        _no_syncfs = True
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # removed since (a stopped run's unrecorded file): its folder will do
        fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        if fn(fd) != 0:
            code = ctypes.get_errno()
            if code in (errno.ENOSYS, errno.ENOTSUP):
                _no_syncfs = True
                return False
            raise OSError(code, os.strerror(code))
    finally:
        os.close(fd)
    return True


def _fsync_path(path: str, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:  # removed since: nothing of it to keep
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: this process's group
PENDING = Pending()
