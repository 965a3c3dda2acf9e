"""Running a release: discover, plan, execute per object (inline or in worker processes), audit.

Every object is independent (pseudonyms are keyed hashes), so the order and the executor do not
change the release. An object that cannot be fully de-identified is quarantined: recorded in the
manifest with its reason and never written to the release; the run goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from . import __version__
from .audit import Audit, default_audit_dir, load_or_create_secret
from .discover import discover
from .errors import MedcloakError, SkippedObject, UsageError
from .model import Outcome, RunSummary, Source, Task
from .pseudonym import Keyring
from .rules.profile import Profile, load_profile
from .rules.regions import RegionTemplate, load_regions
from .verify import DOC_NAME

log = logging.getLogger("medcloak")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, picklable."""

    profile: Profile
    keyring: Keyring
    out: str
    regions: tuple[RegionTemplate, ...] = ()


def process(task: Task, job: Job) -> Outcome:
    """De-identify one object; never raises for a bad object, only reports it."""
    from .formats.dicom import deidentify_dicom, publish
    from .formats.photo import deidentify_photo, sniff

    src = task.source
    try:
        path = Path(src.path)
        with open(path, "rb") as fh:
            head = fh.read(132)
        # DICM at 128 first: a dual-personality DICOM/TIFF file is DICOM
        kind = None if head[128:132] == b"DICM" else sniff(head[:8])
        if kind is None:
            released = deidentify_dicom(path, job.profile, job.keyring, job.regions)
        else:
            released = deidentify_photo(path, kind, job.keyring)
        publish(released, Path(job.out))
    except SkippedObject as exc:
        return Outcome(src.path, task.object_id, "skipped", reason=str(exc))
    except MedcloakError as exc:
        return Outcome(src.path, task.object_id, "quarantined", reason=str(exc))
    except RecursionError:
        return Outcome(src.path, task.object_id, "quarantined", reason="nesting too deep")
    except Exception as exc:  # noqa: BLE001 - fail closed: any unexpected error quarantines
        return Outcome(src.path, task.object_id, "quarantined", reason=f"internal error ({type(exc).__name__})")
    return Outcome(
        src.path,
        task.object_id,
        "ok",
        outputs=(released.relpath,),
        uid_pairs=tuple(sorted(released.uid_pairs.items())),
        patient_pair=released.patient_pair,
        actions=released.counts,
    )


def _process_chunk(tasks: list[Task], job: Job) -> list[Outcome]:
    return [process(t, job) for t in tasks]


def plan(sources: Sequence[Source], keyring: Keyring) -> list[Task]:
    return [Task(s, keyring.token("object", s.path, 12)) for s in sources]


def _chunks(items: list[Task], size: int) -> Iterator[list[Task]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def execute(tasks: list[Task], job: Job, workers: int | Executor = 1) -> Iterator[Outcome]:
    """Outcomes in task order. ``workers`` is a process count or an executor the caller owns."""
    if isinstance(workers, int) and workers <= 1:
        for task in tasks:
            yield process(task, job)
        return
    own = isinstance(workers, int)
    pool: Executor = ProcessPoolExecutor(max_workers=workers) if own else workers  # type: ignore[arg-type]
    try:
        # about four chunks per worker keeps them all busy; at most 64 objects travel together
        per_worker = workers if isinstance(workers, int) else 4
        size = max(1, min(64, len(tasks) // (4 * per_worker)))
        futures = [pool.submit(_process_chunk, chunk, job) for chunk in _chunks(tasks, size)]
        for fut in futures:
            yield from fut.result()
    finally:
        if own:
            pool.shutdown()


def _write_documentation(out: Path, profile: Profile, summary: RunSummary) -> None:
    doc = profile.describe()
    doc["tool"] = {"name": "medcloak", "version": __version__}
    doc["objects_released"] = summary.ok
    (out / DOC_NAME).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    lines = [
        "This data set was de-identified with medcloak " + __version__ + ".",
        f"Profile: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, "
        f"standard release {profile.release}.",
        "Options: " + (", ".join(profile.options) or "none") + ".",
        "Method codes (CID 7050): " + ", ".join(c for c, _ in profile.method_codes()) + ".",
        "Identifiers were replaced by keyed pseudonyms; the key is not part of this release.",
    ]
    (out / "DEIDENTIFICATION.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(
    inputs: Iterable[str | Path],
    out: str | Path,
    *,
    audit: str | Path | None = None,
    secret_file: str | Path | None = None,
    profile: str | Path | None = None,
    options: Iterable[str] = (),
    workers: int | Executor = 1,
    dry_run: bool = False,
    regions: str | Path | None = None,
) -> RunSummary:
    """De-identify ``inputs`` into the release tree ``out``. See the command-line contract."""
    out_path = Path(out)
    audit_path = Path(audit) if audit is not None else default_audit_dir(out_path)
    input_paths = [Path(p) for p in inputs]
    if not input_paths:
        raise UsageError("no input given")
    for p in input_paths:
        r = p.resolve()
        for target in (out_path.resolve(), audit_path.resolve()):
            if target.is_relative_to(r) or r.is_relative_to(target):
                raise UsageError("the release and audit folders must lie outside every input")
    prof = load_profile(profile, options)
    templates = tuple(load_regions(regions)) if regions is not None else ()
    if prof.has("clean-pixel-data") and not templates:
        raise UsageError("--option clean-pixel-data needs region templates (--regions FILE)")
    if templates and not prof.has("clean-pixel-data"):
        raise UsageError("region templates apply under --option clean-pixel-data only")
    if not dry_run and out_path.exists() and any(out_path.iterdir()):
        raise UsageError("the release folder exists and is not empty")
    audit_path.mkdir(parents=True, exist_ok=True)
    keyring = Keyring(load_or_create_secret(audit_path, Path(secret_file) if secret_file else None))
    tasks = plan(discover(input_paths), keyring)
    summary = RunSummary()
    if dry_run:
        for t in tasks:
            print(json.dumps({"id": t.object_id, "input": t.source.path, "format": t.source.format}))
        return summary
    out_path.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(audit_path / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    book = Audit(audit_path)
    started = time.monotonic()
    try:
        job = Job(prof, keyring, str(out_path), templates)
        for outcome in execute(tasks, job, workers):
            summary.add(outcome)
            book.record(outcome)
            if outcome.status != "ok":
                log.info("%s %s: %s", outcome.object_id, outcome.status, outcome.reason)
    finally:
        os.sync()  # every released object on disk before the maps and documentation say so
        book.close()
        _write_documentation(out_path, prof, summary)
        log.info(
            "done: %d ok, %d quarantined, %d skipped in %.1f s",
            summary.ok, summary.quarantined, summary.skipped, time.monotonic() - started,
        )
        log.removeHandler(handler)
        handler.close()
    return summary
