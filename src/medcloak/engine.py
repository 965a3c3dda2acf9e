"""Running a release: discover (a stream), partition into batches, execute per object (inline, in
worker processes on this machine, or on a Dask scheduler's workers), audit as outcomes arrive, resume.

Every object is independent (pseudonyms are keyed hashes), so the order and the executor do not
change the release. An object that cannot be fully de-identified is quarantined: recorded in the
manifest with its reason and never written to the release; the run goes on. A release that cannot
be written (disk full, read-only) stops the run cleanly with :class:`OutputError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from typing import Any, Iterable, Iterator

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
    MedcloakError,
    OutputError,
    RunError,
    SkippedObject,
    UsageError,
)
from .model import Outcome, RunSummary, Source, Task
from .pseudonym import Keyring
from .rules.profile import Profile, load_profile
from .rules.regions import RegionTemplate, load_regions
from .verify import DOC_NAME

log = logging.getLogger("medcloak")

#: the de-identification documentation in words, beside :data:`DOC_NAME`
DOC_TEXT = "DEIDENTIFICATION.txt"


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, picklable."""

    profile: Profile
    keyring: Keyring
    out: str
    regions: tuple[RegionTemplate, ...] = ()
    #: overwrite an output another object holds (only when the run settles duplicates)
    replace: bool = False
    #: the private audit folder (QC pictures of defaced volumes go to its ``qc`` folder)
    audit: str = ""
    #: defacing: what removed voxels become (``background`` or ``noise``), and the ears too
    deface_fill: str = "background"
    deface_ears: bool = False


def process(task: Task, job: Job) -> Outcome:
    """De-identify one object; never raises for a bad object, only reports it. Raises
    :class:`OutputError` when the release cannot be written."""
    from .formats.dicom import deidentify_dicom, publish
    from .formats.photo import deidentify_photo

    src = task.source
    fmt = src.format
    extra: list[tuple[str, bytes]] = []
    try:
        action = ACTIONS.get(fmt, "")
        if action.startswith("skip"):
            raise SkippedObject(action_reason(fmt))
        if fmt.startswith("link-"):  # known to fail before it is read (a link to a missing file)
            raise CorruptInputError(action_reason(fmt))
        path = Path(src.path)
        if fmt in ("jpeg", "png", "tiff"):
            released = deidentify_photo(path, fmt, job.keyring)
        elif fmt in ("nifti", "analyze", "minc"):
            released, extra = _volume(path, job)
        else:  # DICOM, and anything unknown, which the DICOM reader refuses with its reason
            released = deidentify_dicom(path, job.profile, job.keyring, job.regions)
        publish(released, Path(job.out), replace=job.replace)
        for relpath, data in extra:
            publish(dataclasses.replace(released, data=data, relpath=relpath), Path(job.out), replace=job.replace)
    except OutputError:
        raise
    except DuplicateObject as exc:
        return Outcome(src.path, task.object_id, "skipped", reason=str(exc), bytes_in=src.size,
                       conflict=exc.relpath, digests=(exc.digest,), rank=exc.rank)
    except SkippedObject as exc:
        return Outcome(src.path, task.object_id, "skipped", reason=str(exc), bytes_in=src.size)
    except MedcloakError as exc:
        return Outcome(src.path, task.object_id, "quarantined", reason=str(exc), bytes_in=src.size)
    except RecursionError:
        return Outcome(src.path, task.object_id, "quarantined", reason="nesting too deep", bytes_in=src.size)
    except Exception as exc:  # noqa: BLE001 - fail closed: any unexpected error quarantines
        return Outcome(
            src.path, task.object_id, "quarantined", reason=f"internal error ({type(exc).__name__})", bytes_in=src.size
        )
    return Outcome(
        src.path,
        task.object_id,
        "ok",
        outputs=(released.relpath, *(rel for rel, _ in extra)),
        uid_pairs=tuple(sorted(released.uid_pairs.items())),
        patient_pair=released.patient_pair,
        actions=released.counts,
        digests=tuple(hashlib.sha256(d).hexdigest() for d in (released.data, *(d for _, d in extra))),
        bytes_in=src.size,
        rank=released.rank,
    )


def _volume(path: Path, job: Job) -> tuple[Any, list[tuple[str, bytes]]]:
    """Deface one volume; its QC picture goes to the audit folder."""
    from .formats.volume import deidentify_volume

    result = deidentify_volume(path, job.keyring, fill=job.deface_fill, ears=job.deface_ears)
    if job.audit and result.qc["status"] == "defaced":
        try:
            from .pixels.qc import qc_picture

            folder = Path(job.audit) / "qc"
            folder.mkdir(exist_ok=True, mode=0o700)
            slope, inter = result.qc["_scale"]
            before = result.qc["_stored"].astype("float32") * slope + inter
            qc_picture(before, result.qc["_after_mask"], result.qc["_affine"], folder / f"{result.qc['token']}.png")
        except ImportError:
            log.warning("QC pictures need scikit-image and Pillow: none written")
    counts = dict(result.released.counts)
    counts["no-head" if result.qc["status"] == "no-head" else "defaced"] = 1
    released = dataclasses.replace(result.released, counts=counts)
    return released, result.extra


def plan(sources: Iterable[Source], keyring: Keyring, group_series: bool = False) -> Iterator[Task]:
    """A task per source, lazily; the object id is a keyed token of the path, safe to log.

    With ``group_series`` (the Clean Recognizable Visual Features option), the slices of each
    CT, MR and PET series become one task, to be defaced as a volume: their headers are read
    here, and the series are planned once discovery is complete (a series may be spread over
    folders); every other object goes on at once."""
    series: dict[str, list[Source]] = {}
    for s in sources:
        key = _series_key(s) if group_series and s.format == "dicom" else None
        if key is None:
            yield Task(s, keyring.token("object", s.path, 12))
        else:
            series.setdefault(key, []).append(s)
    for _key, members in sorted(series.items()):
        members.sort(key=lambda m: m.path)
        head, rest = members[0], tuple(members[1:])
        yield Task(head, keyring.token("object", head.path, 12), rest)


def _series_key(source: Source) -> str | None:
    """Series Instance UID (with the Frame of Reference) of a single-frame CT, MR or PET image."""
    import pydicom

    try:
        ds = pydicom.dcmread(source.path, stop_before_pixels=True, force=True, specific_tags=[
            "Modality", "SeriesInstanceUID", "FrameOfReferenceUID", "NumberOfFrames", "SOPClassUID"])
    except Exception:  # noqa: BLE001 - unreadable: the object's own task will say why
        return None
    if str(ds.get("Modality", "")).upper() not in ("CT", "MR", "PT") or not ds.get("SeriesInstanceUID"):
        return None
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    return f"{ds.SeriesInstanceUID}|{ds.get('FrameOfReferenceUID', '')}"


def commit() -> float:
    """Make every object this process has written durable (see :mod:`medcloak.durable`); the
    seconds it took. Raises :class:`OutputError` when the release cannot be written."""
    from .durable import PENDING
    from .formats.dicom import output_error

    try:
        return PENDING.commit()
    except OSError as exc:
        raise output_error(exc) from None


def process_task(task: Task, job: Job) -> list[Outcome]:
    """The outcomes of a task: one per input object. Readers' warnings about the input (pydicom
    quotes the offending value) are silenced: they would put identifying values on the terminal;
    what matters of them ends as the object's quarantine reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not task.members:
            return [process(task, job)]
        return _series(task, job)


def _series(task: Task, job: Job) -> list[Outcome]:
    from .formats.dicom import publish
    from .formats.dicom_series import deface_series

    sources = (task.source, *task.members)
    ids = [task.object_id] + [job.keyring.token("object", m.path, 12) for m in task.members]
    try:
        results, report = deface_series(
            [Path(s.path) for s in sources], job.profile, job.keyring, job.regions, ears=job.deface_ears
        )
    except MedcloakError as exc:
        return [Outcome(s.path, oid, "quarantined", reason=f"series: {exc}", bytes_in=s.size) for s, oid in zip(sources, ids)]
    except Exception as exc:  # noqa: BLE001 - fail closed
        reason = f"series: internal error ({type(exc).__name__})"
        return [Outcome(s.path, oid, "quarantined", reason=reason, bytes_in=s.size) for s, oid in zip(sources, ids)]
    status = str(report.get("status", ""))
    outcomes = []
    for source, oid, result in zip(sources, ids, results):
        if result.error is not None or result.released is None:
            kind = "skipped" if isinstance(result.error, SkippedObject) else "quarantined"
            outcomes.append(Outcome(source.path, oid, kind, reason=str(result.error), bytes_in=source.size))
            continue
        released = result.released
        try:
            publish(released, Path(job.out), replace=job.replace)
        except DuplicateObject as exc:
            outcomes.append(Outcome(source.path, oid, "skipped", reason=str(exc), bytes_in=source.size,
                                    conflict=exc.relpath, digests=(exc.digest,), rank=exc.rank))
            continue
        counts = dict(released.counts)
        counts["series-" + status.replace(" ", "-")] = 1
        outcomes.append(Outcome(
            source.path, oid, "ok", outputs=(released.relpath,), uid_pairs=tuple(sorted(released.uid_pairs.items())),
            patient_pair=released.patient_pair, actions=counts, digests=(hashlib.sha256(released.data).hexdigest(),),
            bytes_in=source.size, rank=released.rank,
        ))
    return outcomes


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
    reason = "duplicate SOP Instance UID: another input object is released as this instance"
    for rel, claimants in sorted(contested.items()):
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
                               rank=tuple(entry.get("rank") or ())))
            elif not same and entry.get("status") == "ok":
                record(Outcome(entry["input"], entry.get("id", ""), "skipped", reason=reason, conflict=rel,
                               digests=tuple(entry.get("digests", [])), rank=tuple(entry.get("rank") or ())))


def _format_of(path: Path) -> str:
    from .discover import sniff

    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(132))
    except OSError:
        return "unknown"


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
    (out / DOC_TEXT).write_text("\n".join(lines) + "\n", encoding="utf-8")


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
    from .formats.dicom import STAGING

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
    if overwrite and occupied:
        if not (out / DOC_NAME).exists() and not (out / STAGING).exists() and not (audit / MANIFEST).exists():
            raise UsageError("--overwrite refuses a folder that is not a medcloak release")


def _prepare_release(out: Path, audit: Path, overwrite: bool) -> None:
    """Empty a release folder to overwrite (checked by :func:`_check_release`); remove what a
    killed run left in the staging folder."""
    from .formats.dicom import STAGING

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
) -> RunSummary:
    """De-identify ``inputs`` into the release tree ``out``. See the command-line contract.

    ``workers``: 1 runs inline; more starts at once in this process and brings up worker
    processes in the background when the run proves long enough (see
    :class:`medcloak.executors.Hybrid`). ``scheduler``: the address of a Dask
    scheduler to use instead; ``client``: a ``distributed.Client`` the caller owns. The summary
    counts the whole release, resumed objects included; its ``exit_status`` is 2 when nothing was
    released though nothing was quarantined (``nothing_released`` says why). Symbolic links to
    files are followed when their targets lie inside the inputs, and anywhere with
    ``follow_links``. Raises :class:`UsageError` when the inputs hold no object at all (before
    anything is written).
    """
    from .durable import PENDING
    from .executors import Batcher, Interrupt, make_executor
    from .formats.dicom import STAGING
    from .progress import Progress

    out_path = Path(out)
    audit_path = Path(audit) if audit is not None else default_audit_dir(out_path)
    input_paths = [Path(p) for p in inputs]
    _check_inputs(input_paths, out_path, audit_path)
    if resume and overwrite:
        raise UsageError("--resume and --overwrite exclude each other")
    if deface_fill not in ("background", "noise"):
        raise UsageError("--deface-fill is background or noise")
    prof = load_profile(profile, options)
    templates = tuple(load_regions(regions)) if regions is not None else ()
    if prof.has("clean-pixel-data") and not templates:
        raise UsageError("--option clean-pixel-data needs region templates (--regions FILE)")
    if templates and not prof.has("clean-pixel-data"):
        raise UsageError("region templates apply under --option clean-pixel-data only")
    # everything that can refuse the run comes before anything is written (a dry run refuses the same)
    secret, fresh = load_secret(audit_path, Path(secret_file) if secret_file else None)
    keyring = Keyring(secret)
    record = _run_record(prof, keyring.secret)
    try:
        _check_release(out_path, audit_path, resume, overwrite, record)
    except OSError as exc:
        raise OutputError(f"cannot read the release or audit folder: {exc.strerror or exc}") from None
    sources = discover(input_paths, exclude=[out_path, audit_path], follow_links=follow_links)
    head = list(islice(sources, 1))
    if not head:
        raise UsageError("no input object found: the inputs hold no file")
    if dry_run:
        if scheduler is not None:
            from .executors import check_scheduler

            check_scheduler(scheduler)
        return _dry_run(chain(head, sources))
    # then the executor (a scheduler that cannot be reached leaves no folder behind)
    executor = make_executor(workers, scheduler, client)
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
        for task in plan(stream, keyring, group_series=prof.has("clean-recognizable-visual-features")):
            bar.found += 1 + len(task.members)
            if task.source.path not in done or any(m.path not in done for m in task.members):
                yield task
        bar.discovery_done = True

    PENDING.forget()  # what an earlier run in this process failed to sync
    stopped: BaseException | None = None
    waiting: list[Outcome] = []  # outcomes whose files this process wrote and has not made durable
    try:
        job = Job(prof, keyring, str(out_path), templates, audit=str(audit_path),
                  deface_fill=deface_fill, deface_ears=deface_ears)

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
            _write_documentation(out_path, prof, summary)  # every released object is durable already
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
