"""The report's ``risk`` section: the statistical disclosure control of the patient
characteristics the release kept (k-anonymity, l-diversity, the attribute combinations that
single patients out), measured by :mod:`medcloak.risk` over the review records of the released
objects.

It streams the manifest and keeps one small row per patient (a million objects of 50,000
patients is 50,000 rows), never one per object. Only ``ok`` lines that carry a review record
count: a line without one (an input recorded as a copy of another's released object, or a format
whose handler makes no record) adds no patient, and the section says how many there were.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from . import Section, Tally

if TYPE_CHECKING:
    from ..risk import Risk
    from . import ReportContext

KEY = "risk"
TITLE = "Re-identification risk"


def build(ctx: ReportContext) -> Section:
    from ..risk import Patients, measure

    quasi = tuple(default_quasi(ctx) if ctx.quasi is None else ctx.quasi)
    patients = Patients(quasi + ((ctx.sensitive,) if ctx.sensitive else ()))
    tally = Tally()
    for _entry, review in ctx.reviews(tally):
        patients.add_record(review)
    unrecorded = tally.unreviewed
    risk = measure(patients, quasi, ctx.k, ctx.sensitive)
    if unrecorded:
        ctx.notes.setdefault(KEY, []).append(
            f"{unrecorded} released objects carry no review record and are not counted")
    return Section(KEY, TITLE, render(risk, unrecorded, ctx.run_record().get("k_anonymity")))


def default_quasi(ctx: ReportContext) -> tuple[str, ...]:
    """The default quasi-identifiers of this release, by the options the run used (from the
    audit's run record; see :func:`medcloak.review_record.quasi_identifiers`)."""
    from ..review_record import quasi_identifiers

    profile = ctx.run_record().get("profile")
    return quasi_identifiers(profile.get("options") or () if isinstance(profile, dict) else ())


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]], marked: frozenset[int] | set[int] = frozenset()) -> str:
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    for i, row in enumerate(rows):
        cls = ' class="at-risk"' if i in marked else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render(risk: Risk, unrecorded: int = 0, run: dict[str, Any] | None = None) -> str:
    """The section's HTML (every value escaped); ``run``: what ``run --k-anonymity`` recorded
    in ``run.json`` (see :meth:`medcloak.generalise.Plan.describe`), if it was given."""
    verdict = risk.verdict()
    parts = [f'<p class="verdict">{escape(verdict[:1].upper() + verdict[1:])}.</p>']
    if isinstance(run, dict) and run.get("k"):
        levels = run.get("quasi_identifiers") or {}
        parts.append(
            f"<p>The run generalised the kept characteristics to k={escape(str(run.get('k')))} "
            f"(<code>--k-anonymity</code>; smallest class then {escape(str(run.get('smallest_class_after')))}, "
            f"characteristics of {escape(str(run.get('patients_suppressed')))} of "
            f"{escape(str(run.get('patients')))} patients suppressed); dates are not generalised by it.</p>")
        if isinstance(levels, dict) and levels:
            parts.append(_table(("quasi-identifier", "as released"), sorted((str(a), str(v)) for a, v in levels.items())))
    facts = [
        (f"{risk.patients} patients in {risk.objects} released objects (one row per patient; "
         f"{risk.without_patient} objects without a patient key but with characteristics count as a patient "
         f"each; {risk.unattached} with neither, such as a dataset's description, belong to no patient)"),
        "quasi-identifiers carried by the release: " + (", ".join(risk.quasi) or "none"),
        "asked for but carried by no object: " + (", ".join(risk.absent) or "none"),
        "a patient whose objects differ is the set of their values; a missing value is a category of its own",
    ]
    if unrecorded:
        facts.append(f"{unrecorded} released objects carry no review record and are not counted")
    parts.append("<ul>" + "".join(f"<li>{escape(f)}</li>" for f in facts) + "</ul>")
    if not risk.patients:
        return "\n".join(parts)
    parts.append(f"<h3>Equivalence classes (k = {risk.k}, {risk.classes} classes)</h3>")
    rows = [(size, classes, patients) for size, classes, patients in risk.histogram]
    marked = {i for i, (size, _, _) in enumerate(risk.histogram) if size < risk.threshold}
    parts.append(_table(("class size", "classes", "patients"), rows, marked))
    if risk.sensitive is not None:
        parts.append(f"<h3>l-diversity of {escape(risk.sensitive)} (smallest: {risk.l_min})</h3>")
        parts.append(_table(("distinct values in the class (l)", "classes"), list(risk.l_histogram)))
    parts.append(f"<h3>What singles patients out ({risk.unique_all} unique on all quasi-identifiers)</h3>")
    if risk.minimal:
        parts.append("<p>The smallest combinations that make a patient unique:</p>")
        parts.append(_table(("attributes", "patients unique on them"),
                            [(" + ".join(s), u) for s, u in risk.minimal]))
    else:
        parts.append("<p>No combination of up to three quasi-identifiers makes a patient unique.</p>")
    shown = [(s, u) for s, u in risk.uniques if u]
    if shown:
        parts.append("<p>Every combination of up to three that singles someone out:</p>")
        parts.append(_table(("attributes", "patients unique on them"), [(" + ".join(s), u) for s, u in shown]))
    return "\n".join(parts)
