"""Running a release: discover (a stream), partition into batches, execute per object (inline, in
worker processes on this machine, or on a Dask scheduler's workers), audit as outcomes arrive, resume.

Every object is independent (pseudonyms are keyed hashes), so the order and the executor do not
change the release. An object that cannot be fully de-identified is quarantined: recorded in the
manifest with its reason and never written to the release; the run goes on. A release that cannot
be written (disk full, read-only) stops the run cleanly with :class:`OutputError`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from . import __version__
from .audit import (
    MANIFEST,
    RUN_RECORD,
    Audit,
    default_audit_dir,
    intact,
    load_secret,
    make_private_dir,
    open_private,
    read_manifest,
    save_secret,
    secret_fingerprint,
)
from .discover import ACTIONS, discover
from .errors import (
    CorruptInputError,
    DuplicateObject,
    LimitError,
    MedcloakError,
    OutputError,
    RunError,
    SkippedObject,
    UsageError,
)
from .limits import MAX_RATIO, TIMEOUT, Limits, applied, check_options
from .watch import Deadline, ObjectTimeout
from .watch import reason as timeout_reason
from .model import Outcome, RunSummary, Source, Task
from .pseudonym import Keyring
from .rules.profile import Profile, load_profile
from .rules.regions import load_regions
from .verify import DOC_NAME

if TYPE_CHECKING:
    from .handlers.base import Released

log = logging.getLogger("medcloak")

#: the de-identification documentation in words, beside :data:`DOC_NAME`
DOC_TEXT = "DEIDENTIFICATION.txt"


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, picklable."""

    profile: Profile
    keyring: Keyring
    out: str
    #: overwrite an output another object holds (only when the run settles duplicates)
    replace: bool = False
    #: the private audit folder (QC pictures of defaced volumes go to its ``qc`` folder)
    audit: str = ""
    #: each handler's own settings, by its name (see :mod:`medcloak.handlers.base`)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: what one object may cost (see :mod:`medcloak.limits`), current while its task runs
    limits: Limits = dataclasses.field(default_factory=Limits)
    #: ``--dicomdir``: DICOM objects released under ISO 9660 names (see :mod:`medcloak.dicomdir`)
    dicomdir: bool = False


def make_settings(options: dict[str, Any]) -> dict[str, Any]:
    """Every handler's settings, made from the run's options."""
    from .handlers import HANDLERS

    return {h.NAME: h.settings(options) for h in HANDLERS}


def process_task(task: Task, job: Job) -> list[Outcome]:
    """The outcomes of a task, one per input object (the task's source, then its members): the
    handler of its format de-identifies, and the released objects are written here. Never
    raises for a bad object, only reports it; raises :class:`OutputError` when the release
    cannot be written. Readers' warnings about the input (pydicom quotes the offending value)
    are silenced: they would put identifying values on the terminal; what matters of them ends
    as the object's quarantine reason. An object that takes longer than ``job.limits.timeout`` is
    stopped where it can be (see :mod:`medcloak.watch`) and quarantined."""
    from .handlers import handler_for

    sources = (task.source, *task.members)
    ids = [task.object_id] + [job.keyring.token("object", m.path, 12) for m in task.members]
    made: list[Path] = []  # files this task placed: taken back if its handler fails midway
    deadline = Deadline(job.limits.timeout)
    with warnings.catch_warnings(), applied(job.limits):
        warnings.simplefilter("ignore")
        try:
            with deadline:
                fmt = task.source.format
                if ACTIONS.get(fmt, "").startswith("skip"):
                    raise SkippedObject(action_reason(fmt))
                handler = handler_for(fmt)
                if handler is None:  # known to fail before it is read (a link to a missing file)
                    raise CorruptInputError(action_reason(fmt) if fmt in ACTIONS else "not a supported format")
                # a list, or an iterator whose results are written as they come (a slide of many
                # instances is never held whole); an iterator that raises fails the whole task
                results = iter(handler.deidentify(task, job))
                outcomes = [_publish(source, oid, result, job, made)
                            for source, oid, result in zip(sources, ids, results)]
                if len(outcomes) != len(sources) or next(results, None) is not None:
                    raise RuntimeError("a handler did not give one result per object")
        except ObjectTimeout:  # it escaped the deadline's end (see medcloak.watch)
            deadline.close()
            _take_back(made)
            return [_failed(s, oid, LimitError(timeout_reason(deadline.seconds))) for s, oid in zip(sources, ids)]
        except Exception as exc:  # noqa: BLE001 - the whole task fails the same way
            _take_back(made)
            return [_failed(s, oid, exc) for s, oid in zip(sources, ids)]
        return outcomes


def _take_back(made: list[Path]) -> None:
    """Remove the files a task placed before it failed (nothing of it is released)."""
    from .durable import PENDING

    for path in made:
        path.unlink(missing_ok=True)
        PENDING.discard(path)


def _publish(source: Source, oid: str, result: Released | BaseException, job: Job, made: list[Path]) -> Outcome:
    """The outcome of one object of a task: ``result`` written, or why it was not."""
    from .publish import publish

    if isinstance(result, BaseException):
        return _failed(source, oid, result)
    if job.dicomdir:
        from .dicomdir import rename

        result = rename(result)
    try:
        digests = publish(result, Path(job.out), replace=job.replace, made=made)
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything else quarantines
        return _failed(source, oid, exc)
    return Outcome(
        source.path, oid, "ok", outputs=(result.relpath, *(rel for rel, _ in result.extra)),
        uid_pairs=tuple(sorted(result.uid_pairs.items())), patient_pair=result.patient_pair,
        actions=dict(result.counts), digests=digests, bytes_in=source.size, rank=result.rank,
        review=result.review, format=source.format,
    )


def _failed(source: Source, oid: str, exc: BaseException) -> Outcome:
    """The outcome of an object whose de-identification raised ``exc`` (fail closed: anything
    unexpected quarantines); :class:`OutputError` is raised again, as it stops the run."""
    if isinstance(exc, OutputError):
        raise exc
    if isinstance(exc, DuplicateObject):
        return Outcome(source.path, oid, "skipped", reason=str(exc), bytes_in=source.size,
                       conflict=exc.relpath, digests=(exc.digest,), rank=exc.rank, format=source.format)
    if isinstance(exc, SkippedObject):
        return Outcome(source.path, oid, "skipped", reason=str(exc), bytes_in=source.size, format=source.format)
    if isinstance(exc, MedcloakError):
        return Outcome(source.path, oid, "quarantined", reason=str(exc), bytes_in=source.size, format=source.format)
    if isinstance(exc, RecursionError):
        return Outcome(source.path, oid, "quarantined", reason="nesting too deep", bytes_in=source.size,
                       format=source.format)
    return Outcome(source.path, oid, "quarantined", reason=f"internal error ({type(exc).__name__})",
                   bytes_in=source.size, format=source.format)


def plan(sources: Iterable[Source], keyring: Keyring, profile: Profile, settings: dict[str, Any]) -> Iterator[Task]:
    """The tasks of a stream of sources, lazily; an object id is a keyed token of the path, safe
    to log. A handler that groups files (see :mod:`medcloak.handlers.base`) gets its sources as
    they come and gives their tasks when they are complete; every other source is a task at once."""
    from .handlers import HANDLERS, handler_for

    groupers = {h.NAME: h.grouper(keyring, settings.get(h.NAME), profile) for h in HANDLERS}
    for s in sources:
        handler = handler_for(s.format)
        grouper = groupers.get(handler.NAME) if handler is not None else None
        if grouper is None:
            yield Task(s, keyring.token("object", s.path, 12))
        else:
            yield from grouper.add(s)
    for grouper in groupers.values():
        if grouper is not None:
            yield from grouper.finish()


def commit() -> float:
    """Make every object this process has written durable (see :mod:`medcloak.durable`); the
    seconds it took. Raises :class:`OutputError` when the release cannot be written."""
    from .durable import PENDING
    from .publish import output_error

    try:
        return PENDING.commit()
    except OSError as exc:
        raise output_error(exc) from None


def _claim_order(entry: dict[str, Any]) -> tuple[Any, ...]:
    """Who keeps a contested output: the best copy (lowest rank, recorded when the object was
    processed), then the input path that sorts first. A line without a rank (written by an older
    release) comes after every ranked one."""
    rank = entry.get("rank")
    return (0, tuple(rank), entry["input"]) if rank else (1, (), entry["input"])


def _settle_duplicates(audit: Path, job: Job, keyring: Keyring, record: Any) -> None:
    """Make the holder of every contested output the best copy among its claimants (see
    :func:`_claim_order`), so the release does not depend on which worker finished first; a
    claimant whose content equals the holder's is released (ok), the others are skipped.
    Claimants, and their ranks, are read from the manifest (this run's and, when resuming,
    earlier runs'): nothing is read again but the winner, when it does not hold the output yet."""
    lines = read_manifest(audit)
    contested: dict[str, list[dict[str, Any]]] = {e["conflict"]: [] for e in lines.values() if e.get("conflict")}
    if not contested:
        return
    for entry in lines.values():
        rel = entry.get("conflict") or (entry["outputs"][0] if entry.get("status") == "ok" and entry.get("outputs") else None)
        if rel in contested:
            contested[rel].append(entry)
    settle = dataclasses.replace(job, replace=True)
    from .publish import duplicate_reason

    for rel, claimants in sorted(contested.items()):
        reason = duplicate_reason(rel)
        winner = min(claimants, key=_claim_order)
        if winner.get("status") != "ok":
            source = Source(winner["input"], _format_of(Path(winner["input"])), 0)
            (outcome,) = process_task(Task(source, keyring.token("object", source.path, 12)), settle)
            record(outcome)
            if outcome.status != "ok":
                continue  # the winner fails now: the current holder stays as it is
            winner = {"input": outcome.source, "digests": list(outcome.digests), "status": "ok",
                      "uids": [list(p) for p in outcome.uid_pairs], "rank": list(outcome.rank),
                      "patient": list(outcome.patient_pair) if outcome.patient_pair else None}
        digest = winner["digests"][0]
        for entry in claimants:
            if entry["input"] == winner["input"]:
                continue
            same = (entry.get("digests") or [""])[0] == digest
            if same and entry.get("status") != "ok":
                record(Outcome(entry["input"], entry.get("id", ""), "ok", outputs=(rel,), digests=(digest,),
                               uid_pairs=tuple(tuple(p) for p in winner.get("uids", [])),  # type: ignore[misc]
                               patient_pair=tuple(winner["patient"]) if winner.get("patient") else None,  # type: ignore[arg-type]
                               rank=tuple(entry.get("rank") or ()), format=entry.get("format", "")))
            elif not same and entry.get("status") == "ok":
                record(Outcome(entry["input"], entry.get("id", ""), "skipped", reason=reason, conflict=rel,
                               digests=tuple(entry.get("digests", [])), rank=tuple(entry.get("rank") or ()),
                               format=entry.get("format", "")))


def _format_of(path: Path) -> str:
    from .handlers import sniff
    from .handlers.base import HEAD

    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(HEAD), path)
    except OSError:
        return "unknown"


def _write_documentation(out: Path, profile: Profile, summary: RunSummary, k_plan: Any = None,
                         dicomdir: bool = False) -> None:
    doc = profile.describe()
    if dicomdir:  # ``medcloak verify`` then requires the DICOMDIR
        doc["dicomdir"] = True
    doc["tool"] = {"name": "medcloak", "version": __version__}
    doc["objects_released"] = summary.ok
    if k_plan is not None:
        doc["k_anonymity"] = k_plan.describe()
    (out / DOC_NAME).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    lines = [
        "This data set was de-identified with medcloak " + __version__ + ".",
        f"Profile: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, "
        f"standard release {profile.release}.",
        "Options: " + (", ".join(profile.options) or "none") + ".",
        "Method codes (CID 7050): " + ", ".join(c for c, _ in profile.method_codes()) + ".",
        "Identifiers were replaced by keyed pseudonyms; the key is not part of this release.",
    ]
    if k_plan is not None:
        lines.append(k_plan.sentence())
    (out / DOC_TEXT).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _k_released(k_plan: Any, rows: Any, audit: Path, record: dict[str, Any], summary: RunSummary) -> Any:
    """``--k-anonymity``'s plan with the classes of the patients released (read from the
    manifest), recorded in ``run.json``; counted as notable when one is smaller than K."""
    from .generalise import released

    kept = {e["patient"][1] for e in read_manifest(audit).values() if e.get("status") == "ok" and e.get("patient")}
    k_plan = released(k_plan, rows, kept)
    record["k_anonymity"].update(k_plan.describe())
    try:
        with open_private(audit / RUN_RECORD) as fh:
            json.dump(record, fh, sort_keys=True)
    except OSError:
        pass  # the release's documentation says it too
    if k_plan.below_released:
        summary.notable["k-anonymity-not-met"] = k_plan.below_released
        log.warning("k-anonymity not met on the release: %d patients in classes smaller than %d",
                    k_plan.below_released, k_plan.k)
    return k_plan


def _write_dicomdir(out: Path, audit: Path, summary: RunSummary) -> None:
    """The release's DICOMDIR, from the released DICOM files the manifest records (this run's
    and, when resuming, earlier runs')."""
    from .dicomdir import ISO_NAME, write

    entries = [e for e in read_manifest(audit).values() if e.get("status") == "ok"]
    names = [rel for e in entries for rel in e.get("outputs", []) if ISO_NAME.match(rel)]
    # the keyed patient pseudonym of each name: a PATIENT record's ID where the object has none
    patients = {rel: str(e["patient"][1]) for e in entries if e.get("patient")
                for rel in e.get("outputs", []) if ISO_NAME.match(rel)}
    if not names:
        return
    try:
        _indexed, left_out = write(out, names, patients)
    except OSError as exc:
        raise OutputError(f"cannot write the DICOMDIR: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - a released file that does not read back
        raise OutputError(f"cannot write the DICOMDIR: a released object does not read back "
                          f"({type(exc).__name__})") from None
    if left_out:
        summary.notable["dicomdir-left-out"] = left_out


def action_reason(fmt: str) -> str:
    """The reason recorded for an object that discovery already knows to skip or quarantine."""
    return ACTIONS[fmt].split("(", 1)[1].rstrip(")")


def _dry_run(sources: Iterable[Source]) -> RunSummary:
    """Print the plan; the summary counts the objects that discovery already knows to skip or to
    quarantine as such and every other as to be released, so that a plan that releases nothing,
    or that quarantines, exits as the real run would."""
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    summary = RunSummary()
    for s in sources:
        counts[s.format] += 1
        sizes[s.format] += s.size
        action = ACTIONS[s.format]
        if action.startswith("skip"):
            summary.add(Outcome(s.path, "", "skipped", reason=action_reason(s.format)))
        elif action.startswith("quarantine"):
            summary.add(Outcome(s.path, "", "quarantined", reason=action_reason(s.format)))
        else:
            summary.add(Outcome(s.path, "", "ok"))
    total = sum(counts.values())
    print(f"plan: {total} objects, {sum(sizes.values()) / 1e6:.1f} MB")
    for fmt in sorted(counts):
        print(f"  {fmt:<13} {counts[fmt]:>9}  {sizes[fmt] / 1e6:>10.1f} MB  {ACTIONS[fmt]}")
    return summary


def _check_inputs(inputs: list[Path], out: Path, audit: Path) -> None:
    if not inputs:
        raise UsageError("no input given")
    for p in inputs:
        r = p.resolve()
        for target in (out.resolve(), audit.resolve()):
            if target.is_relative_to(r) or r.is_relative_to(target):
                raise UsageError("the release and audit folders must lie outside every input")


def _run_record(profile: Profile, secret: bytes) -> dict[str, Any]:
    return {"profile": profile.describe(), "secret": secret_fingerprint(secret), "tool": __version__}


def _check_release(out: Path, audit: Path, resume: bool, overwrite: bool, record: dict[str, Any]) -> None:
    """Refuse what the run would refuse about the release folder, writing nothing (a dry run
    refuses the same)."""
    from .publish import STAGING

    occupied = out.exists() and any(out.iterdir())
    if occupied and not (resume or overwrite):
        raise UsageError("the release folder exists and is not empty (use --resume to continue it, --overwrite to replace it)")
    previous_path = audit / RUN_RECORD
    if resume and previous_path.exists():
        previous = json.loads(previous_path.read_text(encoding="utf-8"))
        if previous.get("profile") != record["profile"]:
            raise UsageError("--resume with another profile or other options than the run it continues")
        if previous.get("secret") != record["secret"]:
            raise UsageError("--resume with another secret than the run it continues")
        if (previous.get("k_anonymity") or {}).get("k") != (record.get("k_anonymity") or {}).get("k"):
            raise UsageError("--resume with another --k-anonymity than the run it continues")
        if bool(previous.get("dicomdir")) != bool(record.get("dicomdir")):
            raise UsageError("--resume with --dicomdir only when the run it continues had it too")
    if overwrite and occupied:
        if not (out / DOC_NAME).exists() and not (out / STAGING).exists() and not (audit / MANIFEST).exists():
            raise UsageError("--overwrite refuses a folder that is not a medcloak release")


def _prepare_release(out: Path, audit: Path, overwrite: bool) -> None:
    """Empty a release folder to overwrite (checked by :func:`_check_release`); remove what a
    killed run left in the staging folder."""
    from .publish import STAGING

    if overwrite and out.exists() and any(out.iterdir()):
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        manifest = audit / MANIFEST
        if manifest.exists():
            manifest.rename(audit / f"manifest.replaced-{int(time.time())}.jsonl")
    shutil.rmtree(out / STAGING, ignore_errors=True)  # what a killed run left


def _remove_unrecorded(out: Path, audit: Path, inputs: set[str] | None = None) -> None:
    """After a stopped run (its workers stopped), remove every released file that the manifest
    does not record as an output (an object whose outcome never came back), so that the release
    holds nothing the manifest does not account for; ``--resume`` does those objects again (and
    removes first what a killed run left: files of ``inputs`` only, those found intact, are kept,
    since a file never recorded may not have been made durable)."""
    keep = {o for k, e in read_manifest(audit).items() if e.get("status") == "ok"
            and (inputs is None or k in inputs) for o in e.get("outputs", [])}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and rel not in keep and rel not in (DOC_NAME, DOC_TEXT):
            path.unlink(missing_ok=True)


def _safe_list(path: str | Path | None, prof: Any) -> Any:
    """The OCR safe list of ``--ocr-safe``, its models loaded once here (a missing ``ocr`` extra
    or an unreadable list refuses the run before anything is written); None without one."""
    if path is None:
        return None
    if not prof.has("clean-pixel-data"):
        raise UsageError("--ocr-safe applies under --option clean-pixel-data only")
    from .pixels.ocr import engine, load_safe_list

    safe = load_safe_list(path)
    engine()  # MissingDependencyError without the ocr extra
    return safe


def run(
    inputs: Iterable[str | Path],
    out: str | Path,
    *,
    audit: str | Path | None = None,
    secret_file: str | Path | None = None,
    profile: str | Path | None = None,
    options: Iterable[str] = (),
    workers: int = 1,
    scheduler: str | None = None,
    client: Any = None,
    dry_run: bool = False,
    regions: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_outcome: Any = None,
    deface_fill: str = "background",
    deface_ears: bool = False,
    follow_links: bool = False,
    ocr_safe: str | Path | None = None,
    max_object_size: int | None = None,
    max_expansion: float = MAX_RATIO,
    object_timeout: float = TIMEOUT,
    k_anonymity: int | None = None,
    dicomdir: bool = False,
) -> RunSummary:
    """De-identify ``inputs`` into the release tree ``out``. See the command-line contract.

    ``workers``: 1 runs inline; more starts at once in this process and brings up worker
    processes in the background when the run proves long enough (see
    :class:`medcloak.executors.Hybrid`). ``scheduler``: the address of a Dask
    scheduler to use instead; ``client``: a ``distributed.Client`` the caller owns. The summary
    counts the whole release, resumed objects included; its ``exit_status`` is 2 when nothing was
    released though nothing was quarantined (``nothing_released`` says why). Symbolic links to
    files are followed when their targets lie inside the inputs, and anywhere with
    ``follow_links``. ``ocr_safe``: a site's list of safe annotations (``.toml``) that the OCR
    second opinion (the ``ocr`` extra) leaves unredacted under ``clean-pixel-data``. Raises
    :class:`UsageError` when the inputs hold no object at all (before anything is written).

    What one object may cost (see :mod:`medcloak.limits`; 0 turns a limit off):
    ``max_object_size`` bytes declared (default: a worker's share of the machine's memory,
    :meth:`Executor.object_bytes`), ``max_expansion`` inflated bytes per compressed byte, and
    ``object_timeout`` seconds, after which the object is quarantined and the run goes on.

    ``k_anonymity``: K, at least 2: the patient characteristics the profile keeps are generalised
    until every patient is in a class of at least K (a pre-pass reads the DICOM inputs' headers
    first; see :mod:`medcloak.generalise`), documented in the release and ``run.json``.

    ``dicomdir``: DICOM objects are released under ISO 9660 names and a DICOMDIR indexing them
    is written at the end, from the released files (see :mod:`medcloak.dicomdir`).
    """
    from .durable import PENDING
    from .executors import Batcher, Interrupt, make_executor
    from .publish import STAGING
    from .progress import Progress

    out_path = Path(out)
    audit_path = Path(audit) if audit is not None else default_audit_dir(out_path)
    input_paths = [Path(p) for p in inputs]
    _check_inputs(input_paths, out_path, audit_path)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if deface_fill not in ("background", "noise"):
        raise UsageError("--deface-fill is background or noise")
    check_options(max_object_size, max_expansion, object_timeout)
    prof = load_profile(profile, options)
    templates = tuple(load_regions(regions)) if regions is not None else ()
    if templates and not prof.has("clean-pixel-data"):
        raise UsageError("region templates apply under --option clean-pixel-data only")
    safe = _safe_list(ocr_safe, prof)
    if k_anonymity is not None and (isinstance(k_anonymity, bool) or not isinstance(k_anonymity, int)
                                    or k_anonymity < 2):
        raise UsageError("--k-anonymity takes a whole number of patients, at least 2")
    # everything that can refuse the run comes before anything is written (a dry run refuses the same)
    secret, fresh = load_secret(audit_path, Path(secret_file) if secret_file else None)
    keyring = Keyring(secret)
    record = _run_record(prof, keyring.secret)
    if k_anonymity is not None:
        record["k_anonymity"] = {"k": k_anonymity}
    if dicomdir:
        record["dicomdir"] = True
    try:
        _check_release(out_path, audit_path, resume, overwrite, record)
    except OSError as exc:
        raise OutputError(f"cannot read the release or audit folder: {exc.strerror or exc}") from None
    settings = make_settings(
        {"regions": templates, "deface_fill": deface_fill, "deface_ears": deface_ears, "ocr_safe": safe}
    )
    sources = discover(input_paths, exclude=[out_path, audit_path], follow_links=follow_links)
    head = list(islice(sources, 1))
    if not head:
        raise UsageError("no input object found: the inputs hold no file")
    k_plan = rows = None
    run_record = record  # (``record`` names the manifest's writer below)
    if k_anonymity is not None:
        # the pre-pass: refuses (fewer than K patients) before anything is written; a dry run prints its plan
        from .generalise import choose, read_patients

        began = time.monotonic()
        rows, unread = read_patients(discover(input_paths, exclude=[out_path, audit_path], follow_links=follow_links),
                                     prof, keyring)
        k_plan = choose(rows, k_anonymity, unread)
        record["k_anonymity"] = {**k_plan.describe(), "pre_pass_seconds": round(time.monotonic() - began, 3),
                                 "inputs_unread": len(unread)}
        settings = make_settings({"regions": templates, "deface_fill": deface_fill, "deface_ears": deface_ears,
                                  "ocr_safe": safe, "k_plan": k_plan})
    if dry_run:
        if scheduler is not None:
            from .executors import check_scheduler

            check_scheduler(scheduler)
        if k_plan is not None:
            print(k_plan.sentence())
        return _dry_run(chain(head, sources))
    # then the executor (a scheduler that cannot be reached leaves no folder behind)
    executor = make_executor(workers, scheduler, client)
    limits = Limits(max_object_bytes=executor.object_bytes() if max_object_size is None else int(max_object_size),
                    max_ratio=float(max_expansion), timeout=float(object_timeout))
    record["limits"] = dataclasses.asdict(limits)  # recorded, not compared: --resume may raise them
    made = [p for p in (audit_path, out_path) if not p.exists()]
    try:
        make_private_dir(audit_path)
        if fresh:
            save_secret(audit_path, secret)
        _prepare_release(out_path, audit_path, overwrite)
        out_path.mkdir(parents=True, exist_ok=True)
        (out_path / STAGING).mkdir(exist_ok=True)
        with open_private(audit_path / RUN_RECORD) as fh:
            json.dump(record, fh, sort_keys=True)
        done: set[str] = set()
        if resume:
            done = {key for key, entry in read_manifest(audit_path).items() if intact(out_path, entry)}
            _remove_unrecorded(out_path, audit_path, done)  # what a killed run placed but did not record
        book = Audit(audit_path)
        handler = logging.FileHandler(audit_path / "run.log", encoding="utf-8")
        os.chmod(audit_path / "run.log", 0o600)
    except OSError as exc:
        executor.close()
        for p in made:
            shutil.rmtree(p, ignore_errors=True)
        raise OutputError(f"cannot prepare the release or audit folder: {exc.strerror or exc}") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    bar = Progress(enabled=progress)
    bar.resumed = len(done)
    started = time.monotonic()
    stream = chain(head, sources)

    def pending() -> Iterator[Task]:
        for task in plan(stream, keyring, prof, settings):
            bar.found += 1 + len(task.members)
            if task.source.path not in done or any(m.path not in done for m in task.members):
                yield task
        bar.discovery_done = True

    PENDING.forget()  # what an earlier run in this process failed to sync
    stopped: BaseException | None = None
    waiting: list[Outcome] = []  # outcomes whose files this process wrote and has not made durable
    try:
        job = Job(prof, keyring, str(out_path), audit=str(audit_path), settings=settings, limits=limits,
                  dicomdir=dicomdir)
        log.info("limits: %s per object, expansion %s, %s per object",
                 f"{limits.max_object_bytes} bytes" if limits.max_object_bytes else "no size limit",
                 f"1:{limits.max_ratio:g} beyond {limits.ratio_floor} bytes" if limits.max_ratio else "unbounded",
                 f"{limits.timeout:g} s" if limits.timeout else "no time limit")

        def record(outcomes: list[Outcome], last: bool = False) -> None:
            """Manifest lines once the objects are durable: a group at a time (see
            :mod:`medcloak.durable`); outcomes from workers come durable already."""
            waiting.extend(outcomes)
            if not (last or PENDING.due()):
                return
            commit()
            book.record_all(waiting)
            for outcome in waiting:
                bar.add(outcome)
                if outcome.status != "ok":
                    log.info("%s %s: %s", outcome.object_id, outcome.status, outcome.reason)
                elif outcome.actions.get("pixel-whole-image-blanked"):
                    log.warning(
                        "%s: no usable SequenceOfUltrasoundRegions: outside_ultrasound_regions blanked the whole image",
                        outcome.object_id,
                    )
                if on_outcome is not None:
                    on_outcome(outcome)
            waiting.clear()

        with Interrupt() as interrupt:
            for outcomes in executor.map(Batcher(pending(), interrupt), job):
                record(outcomes)
            record([], last=True)
        if interrupt.requested:
            raise KeyboardInterrupt
        _settle_duplicates(audit_path, job, keyring, lambda outcome: record([outcome], last=True))
    except (RunError, KeyboardInterrupt) as exc:
        stopped = exc
        if isinstance(exc, OutputError) and waiting and not PENDING.failed:
            try:  # what was done before the release could not be written is kept and recorded
                record([], last=True)
            except RunError:
                pass
        if hasattr(executor, "cancel_all"):
            executor.cancel_all()
    finally:
        executor.close()
        summary = book.close()
        shutil.rmtree(out_path / STAGING, ignore_errors=True)
        if stopped is not None or executor.lost:  # a worker that ended may have placed files of its batch
            _remove_unrecorded(out_path, audit_path)
        bar.finish()
        if stopped is None and summary.ok:
            if k_plan is not None:  # measured on the patients released
                k_plan = _k_released(k_plan, rows, audit_path, run_record, summary)
            _write_documentation(out_path, prof, summary, k_plan, dicomdir)  # every released object is durable already
            if dicomdir:
                try:
                    _write_dicomdir(out_path, audit_path, summary)
                except RunError as exc:
                    stopped = exc
        elif stopped is None:
            # nothing released: no documentation of an empty release, and no empty folder that
            # would refuse the next run (the audit keeps every reason)
            try:
                out_path.rmdir()
            except OSError:
                pass
        log.info(
            "%s: %d ok, %d quarantined, %d skipped in %.1f s",
            "stopped" if stopped else "done", summary.ok, summary.quarantined, summary.skipped,
            time.monotonic() - started,
        )
        log.removeHandler(handler)
        handler.close()
    if stopped is not None:
        raise stopped
    return summary
