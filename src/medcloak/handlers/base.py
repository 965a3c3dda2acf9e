"""What every format handler is: the one interface between the engine and a format family.

A handler is a module of :mod:`medcloak.handlers` that answers five questions and nothing else
(the registry, :mod:`medcloak.handlers`, lists them in one table that discovery, the engine and
``verify`` read):

- ``KINDS``: the formats (``Source.format``) it takes, each with what a run does to it, as
  ``--dry-run`` prints it;
- ``sniff(head, path) -> kind | None``: is this file mine? From its first bytes (``head``, at
  least :data:`HEAD` of them when the file has them), reading more of ``path`` only where the
  first bytes are not enough; never from the extension alone;
- ``grouper(keyring, settings, profile) -> Grouper | None``: which files are one task (the
  slices of a series to deface, the files of a slide); ``None``: one task per file;
- ``deidentify(task, job) -> [Released | MedcloakError, ...]``: one result per object of the
  task, never written by the handler: the engine writes them (staging, durability, manifest). A
  list, or an iterator whose results the engine writes as they come (a task too large to hold
  whole); an iterator that raises fails the whole task, and what it wrote of it is taken back;
- ``owns(relpath) -> bool`` and ``verify(path, relpath, context) -> findings``: what
  ``medcloak verify`` checks on the files this handler writes;
- ``settings(options) -> object``: the handler's own options, a frozen dataclass made from the
  run's options (``Job`` carries one per handler, so it grows no field per format).

Handler modules are light: they import their format's machinery (pydicom, nibabel, tifffile)
inside their functions, so that discovery and ``import medcloak`` stay fast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Mapping, Protocol

if TYPE_CHECKING:
    from ..model import Source, Task

#: bytes of a file's beginning that discovery reads and gives every handler's ``sniff`` (a DICOM
#: file's preamble and, mostly, its file meta information up to the SOP class: one read either way)
HEAD = 512


#: streams an object into an open file: the counts of what it did, or those and the SHA-256 it wrote
Writer = Callable[[BinaryIO], "Mapping[str, int] | tuple[Mapping[str, int], str]"]


@dataclass(frozen=True)
class Released:
    """A de-identified object, ready to be written by the engine: its bytes (``data``), or, for
    an object too large for memory, ``write``, which streams it into an open, empty, seekable
    file and returns the counts of what it did (merged into ``counts``), or those counts and the
    SHA-256 of what it wrote, when it hashed it on the way (else the engine reads the file back
    to hash it); ``extra`` holds the
    files released beside it (an Analyze image beside its header, a sidecar, the data files of a
    slide in several files), each as bytes or as such a writer."""

    data: bytes
    relpath: str
    uid_pairs: dict[str, str] = field(default_factory=dict)
    patient_pair: tuple[str, str] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: how good a copy of its instance the input was, lowest best (DICOM's ``copy_rank``)
    rank: tuple[int, ...] = ()
    extra: tuple[tuple[str, bytes | Writer], ...] = ()
    write: Writer | None = None
    #: what the curator's report pools of this object: a record made by
    #: :func:`medcloak.review_record.record` (kept text, quasi-identifiers, changes), or None
    review: dict[str, Any] | None = None


class Grouper(Protocol):
    """Turns the sources of one handler into tasks as discovery finds them: ``add`` gives the
    tasks that are complete now, ``finish`` the rest once discovery has ended."""

    def add(self, source: Source) -> Iterable[Task]: ...

    def finish(self) -> Iterable[Task]: ...


@dataclass(frozen=True)
class VerifyContext:
    """What ``verify`` knows of the release as a whole: its documented profile (``None`` when
    it has none or it does not load) and, given the audit, the original UIDs and patient IDs."""

    profile: Any = None
    old_uids: frozenset[str] = frozenset()
    old_ids: tuple[Any, ...] = ()


def fingerprint(path: Path, sample: int) -> str:
    """What a large file's release is named from, without reading it whole: the SHA-256 of its
    size and of its first and last ``sample`` bytes (a slide, a raw data file; the keyed token of
    this is its name)."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        sha.update(size.to_bytes(8, "little"))
        fh.seek(0)
        sha.update(fh.read(sample))
        if size > sample:
            fh.seek(max(sample, size - sample))
            sha.update(fh.read(sample))
    return sha.hexdigest()
