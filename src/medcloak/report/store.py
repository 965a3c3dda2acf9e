"""The report's on-disk pool: a SQLite database in a temporary file inside the report folder,
removed when the section is built. Sections that pool over the whole release (every distinct
text value, every attribute's actions) count in it, so memory stays bounded however many objects
and distinct values the release holds: Python keeps only a batch of pending counts (flushed every
:data:`BATCH` keys), SQLite its page cache (:data:`CACHE_KIB`), and sorting for the page uses
SQLite's bounded top-N sort (``ORDER BY ... LIMIT``).

The file is private (it lives in the report folder, inside the audit side) and holds released
values only; it is deleted even when building fails. SQLite's own temporary tables stay in memory
(``temp_store = MEMORY``), not in the system's temporary folder, where values would leave the
audit side: the sections only sort with a ``LIMIT`` (a bounded top-N sort) or group along the
primary key, so these stay small.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

#: pending distinct keys kept in memory before they are added to the database
BATCH = 20_000
#: SQLite's page cache, in KiB
CACHE_KIB = 8_192


@contextlib.contextmanager
def pool(folder: Path) -> Iterator[sqlite3.Connection]:
    """A fresh SQLite database in a temporary file under ``folder``, removed on exit."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix=".pool-", suffix=".sqlite", dir=folder)
    os.close(fd)
    db = sqlite3.connect(name, isolation_level=None)
    try:
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = MEMORY",
                       f"cache_size = -{CACHE_KIB}", "locking_mode = EXCLUSIVE"):
            db.execute(f"PRAGMA {pragma}")
        yield db
    finally:
        db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name + suffix)
