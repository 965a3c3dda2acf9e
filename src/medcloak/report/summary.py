"""The report's first section: what went in and what came out. Objects in, released, quarantined
and skipped, by format (every manifest line carries its input's format) and, for released objects,
by modality (from their review records); the reasons for quarantine and skipping, grouped and
counted; the profile and options of the release's documentation, checked against the audit's run
record; and the limits the run applied to each object.

Reasons are written by medcloak and name no identifying value by design; they are escaped all the
same. Memory stays bounded: distinct reasons, patients and studies are counted up to a cap, and
the page says when a cap was reached.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import Any, Iterable

from . import ReportContext, Section
from .page import release_documentation

KEY = "summary"
TITLE = "Summary"
STATUSES = ("ok", "quarantined", "skipped")
#: distinct reasons counted one by one; beyond, the rest are counted together
MAX_REASONS = 10_000
#: distinct reasons shown per status
SHOW_REASONS = 100
#: distinct patients and studies counted one by one
MAX_KEYS = 1_000_000
OTHER = "(other reasons, beyond the cap)"


def build(ctx: ReportContext) -> Section:
    by_format: Counter[tuple[str, str]] = Counter()
    by_modality: Counter[tuple[str, str]] = Counter()
    reasons: dict[str, Counter[str]] = {"quarantined": Counter(), "skipped": Counter()}
    patients: set[str] = set()
    studies: set[str] = set()
    capped_keys = capped_reasons = False
    records = 0  # released objects with a review record (older manifests have none)
    for entry in ctx.entries():
        status = str(entry.get("status", ""))
        if status not in STATUSES:
            continue
        review = entry.get("review") if isinstance(entry.get("review"), dict) else {}
        fmt = str(entry.get("format") or review.get("format") or "(not recorded)")
        by_format[fmt, status] += 1
        if status == "ok":
            records += bool(review)
            by_modality[str(review.get("modality") or "(none)"), str(review.get("format") or fmt)] += 1
            for key, seen in (("patient", patients), ("study", studies)):
                if review.get(key):
                    if len(seen) < MAX_KEYS:
                        seen.add(str(review[key]))
                    else:
                        capped_keys = True
        else:
            counter = reasons[status]
            reason = str(entry.get("reason") or "(no reason recorded)")
            if reason in counter or len(counter) < MAX_REASONS:
                counter[reason] += 1
            else:
                counter[OTHER] += 1
                capped_reasons = True
    notes = ctx.notes.setdefault(KEY, [])
    if capped_reasons:
        notes.append(f"more than {MAX_REASONS:,} distinct reasons: the rest are counted together")
    if capped_keys:
        notes.append(f"more than {MAX_KEYS:,} patients or studies: their count is a lower bound")
    for status, counter in reasons.items():
        if len(counter) > SHOW_REASONS:
            notes.append(f"{len(counter):,} distinct {status} reasons: the {SHOW_REASONS} most frequent are shown")
    parts = [
        _totals(by_format, patients, studies, capped_keys, records),
        _format_table(by_format),
        _modality_table(by_modality),
        _reasons(reasons),
        _profile(ctx),
        _limits(ctx.run_record().get("limits")),
    ]
    return Section(KEY, TITLE, "".join(parts))


def _n(value: int) -> str:
    return f'<td class="n">{value:,}</td>'


def table(head: Iterable[str], rows: Iterable[str], cls: str = "") -> str:
    """A table of escaped headings and ready rows (``<tr>...</tr>``)."""
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _totals(by_format: Counter[tuple[str, str]], patients: set[str], studies: set[str], capped: bool,
            records: int) -> str:
    total = {s: sum(n for (_, st), n in by_format.items() if st == s) for s in STATUSES}
    more = "+" if capped else ""
    if total["ok"] and not records:  # a manifest written before review records: unknown, not 0
        patients_text = studies_text = "not recorded (the manifest holds no review records)"
    else:
        patients_text, studies_text = f"{len(patients):,}{more}", f"{len(studies):,}{more}"
    return (
        '<dl class="facts" id="summary-totals">'
        f"<dt>Objects in</dt><dd>{sum(total.values()):,}</dd>"
        f"<dt>Released</dt><dd>{total['ok']:,}</dd>"
        f"<dt>Quarantined</dt><dd>{total['quarantined']:,}</dd>"
        f"<dt>Skipped</dt><dd>{total['skipped']:,}</dd>"
        f"<dt>Patients released</dt><dd>{patients_text}</dd>"
        f"<dt>Studies released</dt><dd>{studies_text}</dd>"
        "</dl>"
    )


def _format_table(by_format: Counter[tuple[str, str]]) -> str:
    formats = sorted({f for f, _ in by_format})
    rows = []
    for fmt in formats:
        counts = [by_format[fmt, s] for s in STATUSES]
        rows.append(f"<tr><td>{html.escape(fmt)}</td>{_n(sum(counts))}{''.join(_n(c) for c in counts)}</tr>")
    return "<h3>By format</h3>" + table(("format", "in", "released", "quarantined", "skipped"), rows)


def _modality_table(by_modality: Counter[tuple[str, str]]) -> str:
    if not by_modality:
        return "<h3>Released objects by modality</h3><p>No object was released.</p>"
    rows = [f"<tr><td>{html.escape(m)}</td><td>{html.escape(f)}</td>{_n(n)}</tr>"
            for (m, f), n in sorted(by_modality.items())]
    return "<h3>Released objects by modality</h3>" + table(("modality", "format", "released"), rows)


def _reasons(reasons: dict[str, Counter[str]]) -> str:
    out = []
    for status, counter in reasons.items():
        title = f"Why objects were {status}"
        if not counter:
            out.append(f"<h3>{title}</h3><p>No object was {status}.</p>")
            continue
        rows = [f"<tr><td>{html.escape(r)}</td>{_n(n)}</tr>"
                for r, n in sorted(counter.items(), key=lambda i: (-i[1], i[0]))[:SHOW_REASONS]]
        out.append(f'<h3>{title}</h3>' + table(("reason", "objects"), rows, f"reasons-{status}"))
    return "".join(out)


def _profile(ctx: ReportContext) -> str:
    e = html.escape
    doc = release_documentation(ctx.release)
    run = ctx.run_record()
    used = run.get("profile") if isinstance(run.get("profile"), dict) else None
    tool = doc.get("tool") if isinstance(doc.get("tool"), dict) else {}
    codes = ", ".join(f"{c.get('code')} {c.get('meaning')}" for c in doc.get("method_codes") or []
                      if isinstance(c, dict))
    facts = [
        ("Profile", str(doc.get("profile", "?"))),
        ("Standard", f"{doc.get('standard', '?')}, release {doc.get('standard_release', '?')}"),
        ("Options", ", ".join(map(str, doc.get("options") or [])) or "none"),
        ("Method codes (CID 7050)", codes or "none"),
        ("Site overrides", f"SHA-256 {doc['site_overrides_sha256']}" if doc.get("site_overrides_sha256") else "none"),
        ("Tool", f"{tool.get('name', '?')} {tool.get('version', '?')}"),
        ("Objects released (documentation)", str(doc.get("objects_released", "?"))),
    ]
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
    check = ""
    if used is not None:
        documented = {k: v for k, v in doc.items() if k in used}
        if documented != used:
            check = ('<div class="error" role="alert">The release\'s documentation and the audit\'s run record '
                     "name different profiles or options: this audit may not belong to this release.</div>")
    elif run == {}:
        check = '<p class="flag">The audit holds no run record (run.json).</p>'
    return f"<h3>Profile and options</h3><dl class=\"facts\">{dl}</dl>{check}"


def _limits(limits: Any) -> str:
    if not isinstance(limits, dict):
        return "<h3>The run's limits per object</h3><p>Not recorded.</p>"

    def size(v: Any) -> str:
        return f"{int(v):,} bytes" if v else "no limit"

    rows = [
        ("Largest object (declared bytes)", size(limits.get("max_object_bytes"))),
        ("Expansion of compressed data", f"1:{limits['max_ratio']:g} beyond {size(limits.get('ratio_floor'))}"
         if limits.get("max_ratio") else "no limit"),
        ("Time per object", f"{limits['timeout']:g} s" if limits.get("timeout") else "no limit"),
    ]
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
    return ("<h3>The run's limits per object</h3>"
            f'<dl class="facts">{dl}</dl><p>An object beyond a limit is quarantined (see the reasons above).</p>')
