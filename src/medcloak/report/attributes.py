"""The report's attribute x action table (section ``attributes``): for every attribute, in how
many released objects it was removed, emptied, replaced, cleaned, shifted or kept
(:data:`medcloak.review_record.ACTIONS`), so a curator sees at a glance that, say, Study
Description was cleaned in 40 objects and kept in 3 000.

The counts come from each released object's review record (``changed``: attribute -> action;
``kept``: attribute names); an attribute both changed and listed as kept counts as changed. An
action outside ACTIONS is counted as ``other`` (shown only when some are). Attributes are named
as the records name them: a sequence path stays whole (``ProcedureCodeSequence>CodeMeaning``,
not ``CodeMeaning``), because the same keyword can be kept in one sequence and removed in
another, and that difference is what the curator checks. Counts are pooled in the on-disk pool
(:mod:`medcloak.report.store`), and the page shows the :data:`MAX_ROWS` attributes acted on in
the most objects (sorted by total; a plain table, no script), saying so when there are more.
"""

from __future__ import annotations

import html
from typing import Any

from ..review_record import ACTIONS
from . import ReportContext, Section, Tally, store
from .text import visible

KEY = "attributes"
TITLE = "What changed, per attribute"
#: attributes shown, those acted on in the most objects first
MAX_ROWS = 500
COLUMNS = ACTIONS + ("other",)

_SCHEMA = ("CREATE TABLE acts (attr TEXT PRIMARY KEY NOT NULL, "
           + ", ".join(f"{c} INTEGER NOT NULL" for c in COLUMNS) + ", total INTEGER NOT NULL) WITHOUT ROWID")
_UPSERT = ("INSERT INTO acts VALUES (?, " + ", ".join("?" for _ in COLUMNS) + ", ?) ON CONFLICT (attr) DO UPDATE SET "
           + ", ".join(f"{c} = {c} + excluded.{c}" for c in COLUMNS + ("total",)))


def actions_of(review: dict[str, Any]) -> dict[str, str]:
    """``{attribute: column}`` of one review record: its changes, and ``kept`` for the rest of
    its kept attributes."""
    out: dict[str, str] = {}
    kept = review.get("kept")
    if isinstance(kept, list):
        out.update((str(a), "kept") for a in kept)
    changed = review.get("changed")
    if isinstance(changed, dict):
        out.update((str(a), str(act) if act in ACTIONS else "other") for a, act in changed.items())
    return out


def pool_release(ctx: ReportContext, db: Any) -> tuple[int, int]:
    """Count the actions of every released object of ``ctx`` into ``db`` (table ``acts``: attr,
    one column per :data:`COLUMNS`, total); (released objects, those without a review record)."""
    db.execute(_SCHEMA)
    pending: dict[str, list[int]] = {}
    def flush() -> None:
        db.execute("BEGIN")
        db.executemany(_UPSERT, ((a, *counts, sum(counts)) for a, counts in pending.items()))
        db.execute("COMMIT")
        pending.clear()

    index = {c: i for i, c in enumerate(COLUMNS)}
    tally = Tally()
    for _entry, review in ctx.reviews(tally):
        for attr, column in actions_of(review).items():
            counts = pending.get(attr)
            if counts is None:
                counts = pending[attr] = [0] * len(COLUMNS)
            counts[index[column]] += 1
        if len(pending) >= store.BATCH:
            flush()
    flush()
    return tally.released, tally.unreviewed


def build(ctx: ReportContext) -> Section:
    with store.pool(ctx.out) as db:
        released, unreviewed = pool_release(ctx, db)
        return _page(ctx, db, released, unreviewed)


def _page(ctx: ReportContext, db: Any, released: int, unreviewed: int) -> Section:
    notes = ctx.notes.setdefault(KEY, [])
    n_attrs, other = db.execute("SELECT count(*), coalesce(sum(other), 0) FROM acts").fetchone()
    head = [f"<p>{n_attrs:,} attributes acted on or kept, over {released:,} released objects; each cell counts "
            "the objects in which the attribute had that action. Sequence paths are kept whole "
            "(<code>Sequence&gt;Keyword</code>), so a keyword kept in one sequence and removed in another shows "
            "as two rows.</p>"]
    if unreviewed:
        notes.append(f"{unreviewed:,} released objects have no review record: their actions are not counted")
        head.append(f'<p class="warning">{unreviewed:,} released objects have no review record: their actions '
                    "are not counted here.</p>")
    if not n_attrs:
        return Section(KEY, TITLE, "".join(head))
    columns = COLUMNS if other else ACTIONS
    rows = db.execute(f"SELECT attr, {', '.join(columns)}, total FROM acts ORDER BY total DESC, attr LIMIT ?",
                      (MAX_ROWS,)).fetchall()
    if n_attrs > len(rows):
        notes.append(f"only the {len(rows):,} attributes acted on in the most objects are shown, of {n_attrs:,}")
    totals = db.execute(f"SELECT {', '.join(f'sum({c})' for c in columns)}, sum(total) FROM acts").fetchone()
    cells = "".join(f'<th scope="col">{c}</th>' for c in columns)
    body = [f'<table class="attribute-actions"><thead><tr><th scope="col">attribute</th>{cells}'
            '<th scope="col" aria-sort="descending">total &#9660;</th></tr></thead><tbody>']
    for attr, *counts in rows:
        tds = "".join(f'<td class="n{" zero" if not n else ""}">{n:,}</td>' for n in counts)
        body.append(f"<tr><th scope=\"row\">{html.escape(visible(attr))}</th>{tds}</tr>")
    tds = "".join(f'<td class="n">{n:,}</td>' for n in totals)
    body.append(f'</tbody><tfoot><tr><th scope="row">all attributes</th>{tds}</tr></tfoot></table>')
    return Section(KEY, TITLE, "".join(head + body))
