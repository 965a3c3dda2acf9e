"""Frozen, picklable records passed between discovery, the engine, workers and the audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "quarantined", "skipped"]


@dataclass(frozen=True)
class Source:
    """One input object as found by discovery."""

    path: str
    format: str  # a key of medcloak.discover.ACTIONS
    size: int = 0  # bytes, for partitioning

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # a plain tuple pickles several times faster than a dataclass's __dict__: with 100k tiny
        # objects, what travels to and from the workers is most of the scheduler's overhead
        return (Source, (self.path, self.format, self.size))


@dataclass(frozen=True)
class Task:
    """What to do to one object (JSON-serialisable; ``--dry-run`` prints these)."""

    source: Source
    object_id: str  # pseudonymous id of the input object, safe to log
    #: objects handled together with ``source`` (the other slices of a series to deface)
    members: tuple[Source, ...] = ()

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Task, (self.source, self.object_id, self.members))

    @property
    def size(self) -> int:
        return self.source.size + sum(m.size for m in self.members)


@dataclass(frozen=True)
class Outcome:
    """What happened to one input object."""

    source: str
    object_id: str
    status: Status
    outputs: tuple[str, ...] = ()
    reason: str = ""
    uid_pairs: tuple[tuple[str, str], ...] = ()
    patient_pair: tuple[str, str] | None = None
    actions: dict[str, int] = field(default_factory=dict)
    #: SHA-256 of each output, so that ``--resume`` can tell an intact output from a damaged one
    digests: tuple[str, ...] = ()
    bytes_in: int = 0
    #: for a duplicate: the output another object holds (the run decides who keeps it)
    conflict: str = ""
    #: how good a copy of its instance the object is, lowest best (see ``formats.dicom.copy_rank``):
    #: the run releases the best of the objects that share an output
    rank: tuple[int, ...] = ()
    #: what the curator's report pools of a released object (see :mod:`medcloak.review_record`)
    review: dict[str, Any] | None = None
    #: the input's format as discovery named it (a key of ``medcloak.discover.ACTIONS``), for
    #: every outcome, so the report counts quarantined and skipped objects by format too
    format: str = ""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Outcome, (self.source, self.object_id, self.status, self.outputs, self.reason, self.uid_pairs,
                          self.patient_pair, self.actions, self.digests, self.bytes_in, self.conflict, self.rank,
                          self.review, self.format))


@dataclass(frozen=True)
class Finding:
    """A problem found by ``verify`` in a released object."""

    path: str
    level: Literal["error", "warning"]
    message: str


#: actions a curator should look at, though the object was released (the run warns of them)
NOTABLE = {
    "pixel-whole-image-blanked": "image(s) blanked whole: an outside_ultrasound_regions template found "
    "no Sequence of Ultrasound Regions (see the manifest's actions)",
    "k-anonymity-not-met": "patient(s) released in classes smaller than --k-anonymity's K: other patients of "
    "their classes were not released (see DEIDENTIFICATION.json)",
    "dicomdir-left-out": "released DICOM object(s) not in the DICOMDIR: a Type 1 attribute its directory "
    "records need and no dummy can stand for (a flag, an enumerated value, a document title) is empty in the release",
}


@dataclass
class RunSummary:
    ok: int = 0
    quarantined: int = 0
    skipped: int = 0
    #: reason -> how many objects were skipped for it
    skip_reasons: dict[str, int] = field(default_factory=dict)
    #: action of :data:`NOTABLE` -> how many released objects had it
    notable: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.count(outcome.status, outcome.reason, outcome.actions)

    def count(self, status: str, reason: str = "", actions: dict[str, int] | None = None) -> None:
        """Count one object (an outcome, or a line of the manifest)."""
        if status not in ("ok", "quarantined", "skipped"):
            return
        setattr(self, status, getattr(self, status) + 1)
        if status == "skipped":
            self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1
        for action in NOTABLE.keys() & (actions or {}).keys() if status == "ok" else ():
            self.notable[action] = self.notable.get(action, 0) + 1

    @property
    def nothing_released(self) -> str:
        """Why a run released nothing though it quarantined nothing either ("" otherwise)."""
        if self.ok or self.quarantined:
            return ""
        if not self.skipped:
            return "no input object found"
        reasons = "; ".join(f"{n} {r}" for r, n in sorted(self.skip_reasons.items(), key=lambda i: (-i[1], i[0])))
        found = f"{self.skipped} input object{'s' if self.skipped != 1 else ''}"
        return f"nothing released: {found} found, all skipped ({reasons})"

    @property
    def exit_status(self) -> int:
        """0: every input object is in the release; 1: some were quarantined; 2: nothing to release."""
        if self.nothing_released:
            return 2
        return 1 if self.quarantined else 0
