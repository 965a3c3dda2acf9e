"""The ``medcloak`` command: run, verify, report, profile show.

Exit status: 0 when every input object is in the release, 1 when any was quarantined (or, for
``verify``, any finding is an error; for ``report``, any section could not be built), 2 on usage errors, when the run cannot go on (the
release cannot be written) and when it releases nothing (no input object, or every one
skipped), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import MedcloakError, ProfileError, UsageError
from .limits import MAX_RATIO, TIMEOUT


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="medcloak", description="De-identify medical images for public release.")
    p.add_argument("--version", action="version", version=f"medcloak {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="de-identify inputs into a release tree", epilog=_run_epilog(),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    run.add_argument("--out", required=True, type=Path, help="the release tree (must be new or empty)")
    run.add_argument("--audit", type=Path, help="private audit folder (default: OUT.audit beside OUT)")
    run.add_argument("--secret-file", type=Path, help="key for all keyed hashes")
    run.add_argument("--profile", help="basic, tcia-private, strict, or a site override .toml file")
    run.add_argument("--option", action="append", default=[], metavar="OPTION", help="a PS3.15 option (repeatable; listed below)")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, default=None,
                       help="worker processes on this machine (default: its cores; 1 runs inline)")
    group.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    run.add_argument("--regions", type=Path, help="region templates (.toml) for --option clean-pixel-data: boxes added to the text it finds")
    run.add_argument("--ocr-safe", type=Path, metavar="FILE",
                     help="safe annotations (.toml) that the OCR second opinion (the ocr extra) leaves "
                     "unredacted under --option clean-pixel-data")
    run.add_argument("--dry-run", action="store_true", help="print the plan's summary, write nothing")
    run.add_argument("--follow-links", action="store_true",
                     help="follow symbolic links to files outside the inputs too (links inside are always followed)")
    resume = run.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue an interrupted run into the same release")
    resume.add_argument("--overwrite", action="store_true", help="replace the release (a medcloak release) in OUT")
    run.add_argument("--quiet", action="store_true", help="no progress on standard error")
    run.add_argument("--report", action="store_true",
                     help="write the curator's review report at the end (into AUDIT/report; see `medcloak report`)")
    run.add_argument("--deface-fill", choices=("background", "noise"), default="background",
                     help="what removed face voxels become (default: the background's value)")
    run.add_argument("--deface-ears", action="store_true", help="remove the ears too when defacing")
    run.add_argument("--dicomdir", action="store_true",
                     help="write a DICOMDIR for the release; DICOM objects get ISO 9660 names (media)")
    run.add_argument("--k-anonymity", metavar="K",
                     help="generalise the kept patient characteristics (age to bands, size and weight to ranges, "
                     "suppression as a last resort) until every patient is in a class of at least K patients")
    lim = run.add_argument_group("what one object may cost (an object beyond a limit is quarantined; 0: no limit)")
    lim.add_argument("--max-object-size", metavar="SIZE",
                     help="bytes an object may declare (pixels, voxels, inflated data), e.g. 2G or 500M "
                     "(default: each worker's share of the machine's memory)")
    lim.add_argument("--max-expansion", metavar="RATIO", default=str(MAX_RATIO),
                     help=f"bytes compressed data may inflate to per stored byte, beyond 1 GB of it (default {MAX_RATIO})")
    lim.add_argument("--object-timeout", metavar="SECONDS", default=f"{TIMEOUT:g}",
                     help=f"seconds one object may take (default {TIMEOUT:g})")

    red = sub.add_parser("redact", help="redact rectangles of a JPEG, DICOM or slide file's pixels, losslessly elsewhere",
                         description="Redact rectangles of one file's pixels; every other pixel is unchanged. The "
                         "file's metadata is not de-identified (that is `medcloak run`'s job): a slide keeps its "
                         "metadata, label and macro as they are.")
    red.add_argument("file", type=Path, metavar="FILE")
    red.add_argument("--box", action="append", required=True, metavar="X0,Y0,X1,Y1",
                     help="pixel rectangle, ends exclusive (repeatable)")
    red.add_argument("--level", type=int, default=None,
                     help="slides: the pyramid level the boxes are in (default 0); they are redacted on every level and the thumbnail")
    red.add_argument("--frames", help="DICOM frames to redact, 1-based: 1,3-5 (default: every frame)")
    red.add_argument("--fill", choices=("black", "grey", "white"), default="black")
    red.add_argument("--keep-metadata", action="store_true", help="keep JPEG APPn/COM segments")
    red.add_argument("--out", required=True, type=Path, help="the output file (never the input)")

    ver = sub.add_parser("verify", help="check a release tree on its own")
    ver.add_argument("release", type=Path)
    ver.add_argument("--audit", type=Path, help="the private audit, to look for original identifiers")
    ver.add_argument("--max-object-size", metavar="SIZE",
                     help="as for run: what a released object may declare before it is reported unreadable "
                     "(default: the machine's memory)")
    ver.add_argument("--max-expansion", metavar="RATIO", default=str(MAX_RATIO),
                     help=f"as for run (default {MAX_RATIO})")

    rep = sub.add_parser("report", help="write the curator's review report of a release (HTML, private)",
                         description="Write a self-contained HTML report of a release for the curator who signs it "
                         "off: what went in and out, every kept text value pooled, pictures of the pixels, what "
                         "changed per attribute, and the re-identification risk of the kept patient "
                         "characteristics. It shows how the release relates to the originals: it goes into the "
                         "private audit side, never into the release.")
    rep.add_argument("release", type=Path, metavar="RELEASE_DIR")
    rep.add_argument("--audit", type=Path, help="the release's private audit folder (default: RELEASE_DIR.audit)")
    rep.add_argument("--out", type=Path, metavar="REPORT_DIR",
                     help="where to write the report (default: AUDIT/report; never inside the release)")
    rep.add_argument("--k", type=int, default=5, help="the k of k-anonymity to check (default 5)")
    rep.add_argument("--quasi-identifiers", nargs="+", metavar="KW",
                     help="the quasi-identifiers, by keyword (default: the kept patient characteristics, "
                     "see docs/review.md)")
    rep.add_argument("--sensitive", metavar="KW", help="the attribute whose l-diversity is measured")

    prof = sub.add_parser("profile", help="profiles")
    prof_sub = prof.add_subparsers(dest="profile_command", required=True)
    show = prof_sub.add_parser("show", help="print the effective rules")
    show.add_argument("--profile", help="basic, tcia-private, strict, or a site override .toml file")
    show.add_argument("--option", action="append", default=[], metavar="OPTION")
    return p


def _run_epilog() -> str:
    """The profiles and the PS3.15 options, from the rule layer's own lists."""
    from .rules.profile import BUILTIN_PROFILES, CID_7050, OPTIONS

    lines = [f"profiles (--profile): {', '.join(BUILTIN_PROFILES)}, or a site override FILE.toml", "",
             "PS3.15 options (--option, repeatable):"]
    lines += [f"  {name:<36}{CID_7050[name][1]}" for name in OPTIONS]
    return "\n".join(lines)


def _where(args: argparse.Namespace) -> None:
    """Where the release, the private audit, the reasons and the QC pictures are (on the terminal
    only: paths are never logged)."""
    from .audit import MANIFEST, default_audit_dir

    audit = args.audit if args.audit is not None else default_audit_dir(args.out)
    print(f"release:     {args.out}")
    print(f"audit:       {audit} (private: never share it)")
    print(f"reasons:     {audit / MANIFEST} (status and reason of every input object)")
    qc = audit / "qc"
    if qc.is_dir() and any(qc.iterdir()):
        text = any(p.name.endswith("-text.png") for p in qc.iterdir())
        volumes = any(not p.name.endswith("-text.png") for p in qc.iterdir())
        what = [w for w, there in (("one per defaced volume", volumes),
                                   ("<id>-text.png: burned-in text redacted, boxes in red", text)) if there]
        print(f"QC pictures: {qc} ({'; '.join(what)})")


def _run(args: argparse.Namespace) -> int:
    import os

    from .engine import run
    from .model import NOTABLE

    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    size, expansion, timeout = _limits(args)
    summary = run(
        args.inputs,
        args.out,
        audit=args.audit,
        secret_file=args.secret_file,
        profile=args.profile,
        options=args.option,
        workers=workers,
        scheduler=args.scheduler,
        dry_run=args.dry_run,
        regions=args.regions,
        ocr_safe=args.ocr_safe,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        deface_fill=args.deface_fill,
        deface_ears=args.deface_ears,
        follow_links=args.follow_links,
        max_object_size=size,
        max_expansion=expansion,
        object_timeout=timeout,
        k_anonymity=_k_anonymity(args.k_anonymity),
        dicomdir=args.dicomdir,
    )
    if not args.dry_run:
        print(f"{summary.ok} released, {summary.quarantined} quarantined, {summary.skipped} skipped")
        _where(args)
    for action, n in sorted(summary.notable.items()):
        print(f"medcloak: warning: {n} {NOTABLE[action]}", file=sys.stderr)
    if summary.nothing_released:
        print(f"medcloak: error: {summary.nothing_released}", file=sys.stderr)
    if args.report and not args.dry_run:
        if summary.ok:
            from .audit import default_audit_dir

            audit = args.audit if args.audit is not None else default_audit_dir(args.out)
            complete = _write_report(args.out, audit, None, _k_anonymity(args.k_anonymity) or 5, None, None)
            if not complete:
                return summary.exit_status or 1
        else:
            print("medcloak: no report: nothing was released", file=sys.stderr)
    return summary.exit_status


def _write_report(release: Path, audit: Path | None, out: Path | None, k: int,
                  quasi: list[str] | None, sensitive: str | None) -> bool:
    """Write the review report and say where it is; whether it is complete."""
    from .report import build_report, open_release

    ctx = open_release(release, audit, out, k=k, quasi=quasi, sensitive=sensitive)
    index = build_report(ctx)
    print(f"report:      {index} (private: never share it)")
    if ctx.failed:
        print(f"medcloak: error: the report is incomplete: {len(ctx.failed)} section(s) could not be built "
              f"({', '.join(sorted(ctx.failed))}); see the page", file=sys.stderr)
    return not ctx.failed


def _report(args: argparse.Namespace) -> int:
    return 0 if _write_report(args.release, args.audit, args.out, args.k, args.quasi_identifiers, args.sensitive) else 1


def _k_anonymity(text: str | None) -> int | None:
    """``--k-anonymity`` as a number: a whole number of patients, at least 2."""
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 2:
        raise UsageError(f"--k-anonymity takes a whole number of patients, at least 2, not {text!r}")
    return int(text)


def _limits(args: argparse.Namespace) -> tuple[int | None, float, float]:
    """``--max-object-size``, ``--max-expansion`` and ``--object-timeout`` as numbers, checked
    as the engine checks them (:func:`medcloak.limits.check_options`)."""
    from .limits import check_options, parse_size

    size = None
    if args.max_object_size is not None:
        try:
            size = parse_size(args.max_object_size)
        except ValueError:
            raise UsageError(f"--max-object-size takes a size such as 2G, 500M or 0 (no limit), "
                             f"not {args.max_object_size!r}") from None
    texts = (args.max_expansion, args.object_timeout)
    numbers = []
    for text in texts:
        try:
            numbers.append(float(text))
        except ValueError:
            numbers.append(float("nan"))  # refused below, with the text as written
    check_options(size, numbers[0], numbers[1], given=texts)
    return size, numbers[0], numbers[1]


def _parse_box(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    if len(parts) != 4 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise UsageError(f"--box takes X0,Y0,X1,Y1 (four integers), not {text!r}")
    x0, y0, x1, y1 = (int(p) for p in parts)
    return x0, y0, x1, y1


def _parse_frames(text: str | None) -> list[int] | None:
    if text is None:
        return None
    frames: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise UsageError(f"--frames takes numbers and ranges like 1,3-5, not {text!r}")
        first, last = int(lo), int(hi or lo)
        if first < 1 or last < first:
            raise UsageError("--frames counts from 1, ranges go upwards")
        frames.extend(range(first - 1, last))
    return frames


def _redact(args: argparse.Namespace) -> int:
    from .redact import redact_file

    boxes = [_parse_box(b) for b in args.box]
    notes: list[str] = []
    blocks = redact_file(
        args.file, args.out, boxes, fill=args.fill, frames=_parse_frames(args.frames),
        keep_metadata=args.keep_metadata, level=args.level, notes=notes,
    )
    print(f"redacted {blocks} {'blocks' if blocks else '(the boxes miss the image)'}")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .verify import verify_release

    if not args.release.is_dir():
        raise UsageError("the release folder does not exist")
    from .limits import Limits, applied, default_object_bytes
    from .pool import _machine_memory

    args.object_timeout = "0"
    size, expansion, _ = _limits(args)
    lim = Limits(max_object_bytes=default_object_bytes(_machine_memory(), 1) if size is None else size,
                 max_ratio=expansion)
    with applied(lim):  # a release made with raised limits is checked with them
        findings = verify_release(args.release, args.audit)
    for f in findings:
        print(f"{f.level}: {f.path}: {f.message}")
    errors = sum(f.level == "error" for f in findings)
    print(f"{errors} errors")
    return 1 if errors else 0


def _profile_show(args: argparse.Namespace) -> int:
    from .rules.profile import load_profile

    profile = load_profile(args.profile, args.option)
    print(f"# profile {profile.name}, PS3.15 release {profile.release}, options: {', '.join(profile.options) or 'none'}")
    if profile.strict:
        print("# strict: before these rules, every standard attribute outside the object's IOD allow-list "
              "(PS3.3 modules, docs/profiles.md) is removed unless an option or override below keeps it")
    print("tag\taction\tsource\tname")
    for tag, name, action in profile.rows():
        extra = f"={action.value}" if action.value is not None else (f"~{action.pattern}" if action.pattern else "")
        print(f"{tag}\t{action.code}{extra}\t{action.source}\t{name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader went away (`medcloak profile show | head`): stop quietly, as a process that
        # SIGPIPE ends would, and keep the interpreter's final flush from complaining
        import os
        import signal

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "redact":
            return _redact(args)
        if args.command == "verify":
            return _verify(args)
        if args.command == "report":
            return _report(args)
        return _profile_show(args)
    except (UsageError, ProfileError) as exc:
        print(f"medcloak: error: {exc}", file=sys.stderr)
        return 2
    except MedcloakError as exc:
        print(f"medcloak: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medcloak: interrupted; every object done so far is recorded: run again with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
