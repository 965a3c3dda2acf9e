"""The curator's report of a release (``medcloak report``): one self-contained ``index.html``
with its pictures, in the private audit side (never the release), built from the audit's
manifest (whose lines carry each released object's review record, see
:mod:`medcloak.review_record`), the run record, the audit's QC pictures, and, for pictures only,
the release's files.

It is made of sections, one module each, in the order a curator reviews a release:
``summary`` (what went in and out, quarantine reasons), ``text`` (every distinct kept text
value, pooled, rare first), ``pixels`` (montages, projections, before/after pictures),
``attributes`` (attribute x action counts) and ``risk`` (k-anonymity of the kept patient
characteristics). Each module has ``build(ctx: ReportContext) -> Section``: it reads what it
needs through ``ctx`` (the manifest streamed line by line: memory stays bounded however large the
release), writes its pictures under ``ctx.out / "img"`` and returns its HTML fragment (every
value escaped). :func:`build_report` runs them and writes the page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

#: the sections, in the page's order (modules of this package)
SECTIONS = ("summary", "text", "pixels", "attributes", "risk")


@dataclass(frozen=True)
class Section:
    """One part of the page: its anchor, title and HTML body (escaped), and the files it wrote
    (relative to the report folder), which the page checks exist."""

    key: str
    title: str
    html: str
    files: tuple[str, ...] = ()


@dataclass
class Tally:
    """The released objects a section's pass over the manifest met, and how many of them carry
    no review record (see :meth:`ReportContext.reviews`)."""

    released: int = 0
    unreviewed: int = 0


@dataclass
class ReportContext:
    """What every section reads: the release and audit folders, the report folder (``out``), and
    the risk options (``k``; ``quasi``: the quasi-identifiers, None for the defaults;
    ``sensitive``: the attribute whose l-diversity is measured, None for none)."""

    release: Path
    audit: Path
    out: Path
    k: int = 5
    quasi: tuple[str, ...] | None = None
    sensitive: str | None = None
    #: what each section capped, for the page to say (section key -> sentence)
    notes: dict[str, list[str]] = field(default_factory=dict)
    #: the sections that could not be built (section key -> why, an exception type or "missing
    #: files"): the page says it is incomplete, and ``medcloak report`` exits non-zero
    failed: dict[str, str] = field(default_factory=dict)

    def entries(self) -> Iterator[dict[str, Any]]:
        """The manifest's lines, one at a time (the last line of each input only after the run's
        compaction; a line cut short is skipped)."""
        from ..audit import manifest_lines

        return manifest_lines(self.audit)

    def reviews(self, tally: Tally) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(manifest line, review record) of every released object that has a record, counting
        the released objects and those without a record in ``tally``."""
        for entry in self.entries():
            if entry.get("status") != "ok":
                continue
            tally.released += 1
            review = entry.get("review")
            if not isinstance(review, dict):
                tally.unreviewed += 1
                continue
            yield entry, review

    def run_record(self) -> dict[str, Any]:
        """The audit's ``run.json`` (profile, options, limits), or {}."""
        try:
            return json.loads((self.audit / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    @property
    def images(self) -> Path:
        folder = self.out / "img"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder


def default_report_dir(audit: Path) -> Path:
    """Where the report goes unless told: ``report`` inside the (private) audit folder."""
    return audit / "report"


def build_report(ctx: ReportContext, sections: Sequence[str] = SECTIONS) -> Path:
    """Build every section of ``sections`` (module ``medcloak.report.<key>``, in this order) and
    write the page into ``ctx.out``; the path of its ``index.html``. A section that raises is shown
    as an error box naming the exception's type (never its message, which may quote a value) and
    recorded in ``ctx.failed``; so is one that lists a file it did not write."""
    from .page import write_report

    return write_report(ctx, sections)


def open_release(release: Path, audit: Path | None = None, out: Path | None = None, *, k: int = 5,
                 quasi: Sequence[str] | None = None, sensitive: str | None = None) -> ReportContext:
    """The context of a report on ``release`` (audit default: the sibling ``<RELEASE>.audit``;
    report folder default: :func:`default_report_dir`), checked before anything is written (see
    :func:`medcloak.report.page.check_folders`): :class:`~medcloak.errors.UsageError` for a folder
    that is not a medcloak release, an audit without a manifest, a report folder inside the
    release, or a folder that holds something other than an earlier report."""
    from ..audit import default_audit_dir
    from .page import check_folders

    release = Path(release)
    audit = Path(audit) if audit is not None else default_audit_dir(release)
    out = Path(out) if out is not None else default_report_dir(audit)
    check_folders(release, audit, out, k)
    return ReportContext(release, audit, out, k=k, quasi=tuple(quasi) if quasi else None, sensitive=sensitive)

