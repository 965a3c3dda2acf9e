"""The report's pooled text review (section ``text``): every distinct kept text value of the
release, grouped by attribute, with how many released objects carry it, rare values first (a
rare value is the one that identifies a person), values that look like names, dates, IDs, phone
numbers or addresses flagged (:mod:`medcloak.report.flags`), each linked to a few of the
pseudonymous objects that carry it.

It reads the kept text from each released object's review record in the manifest
(``entry["review"]["text"]``) and never the release itself. It scales to a release of millions
of objects with bounded memory and page size: values are counted in an on-disk SQLite pool
(:mod:`medcloak.report.store`) with at most :data:`MAX_LINKS` links kept per value, and the page
lists at most :data:`MAX_ATTRIBUTES` attributes (those with flagged values first) and shows, of
each, the :data:`MAX_RARE` rarest values, the :data:`MAX_COMMON` most common ones, and up to
:data:`MAX_FLAGGED` more flagged values from between them, within :data:`MAX_ROWS` values in all
(an attribute that would not fit is listed with its counts only); what was left out is said on
the page (``ctx.notes["text"]``). Every value is escaped, and shown with its control and direction
characters made visible.
"""

from __future__ import annotations

import html
import os
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Any

from . import ReportContext, Section, Tally, store
from .flags import kinds

KEY = "text"
TITLE = "Kept text, pooled"
#: attributes listed (those with the most flagged values first, then by name)
MAX_ATTRIBUTES = 400
#: values shown on the page in all; an attribute whose values would not fit is listed, not shown
MAX_ROWS = 6_000
#: the rarest values shown per attribute
MAX_RARE = 200
#: the most common values shown per attribute, after the rarest
MAX_COMMON = 5
#: flagged values shown from between the rarest and the most common
MAX_FLAGGED = 50
#: links to objects that carry a value
MAX_LINKS = 5

_SCHEMA = (
    "CREATE TABLE vals (attr TEXT NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL, flag TEXT NOT NULL,"
    " nlinks INTEGER NOT NULL, links TEXT NOT NULL, PRIMARY KEY (attr, value)) WITHOUT ROWID",
    "CREATE TABLE attrs (attr TEXT PRIMARY KEY NOT NULL, objects INTEGER NOT NULL) WITHOUT ROWID",
)
# counts add up; links are appended while fewer than MAX_LINKS are kept (so at most 2 * MAX_LINKS - 1)
_UPSERT_VALUE = (
    "INSERT INTO vals VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (attr, value) DO UPDATE SET n = n + excluded.n,"
    " links = CASE WHEN nlinks >= {m} OR excluded.nlinks = 0 THEN links WHEN nlinks = 0 THEN excluded.links"
    " ELSE links || char(10) || excluded.links END, nlinks = min({m}, nlinks + excluded.nlinks)"
).format(m=MAX_LINKS)
_UPSERT_ATTR = "INSERT INTO attrs VALUES (?, ?) ON CONFLICT (attr) DO UPDATE SET objects = objects + excluded.objects"


class _Pool:
    """Counts of (attribute, value) over the release, pending in memory up to ``store.BATCH``
    keys, then added to the database."""

    def __init__(self, db: Any) -> None:
        self.db = db
        for statement in _SCHEMA:
            db.execute(statement)
        self.values: dict[tuple[str, str], list[Any]] = {}
        self.attrs: dict[str, int] = {}

    def add(self, text: dict[str, Any], link: str) -> None:
        seen: set[tuple[str, str]] = set()
        for attr, values in text.items():
            attr = str(attr)
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list):
                continue
            carried = False
            for value in values:
                key = (attr, str(value))
                if not key[1] or key in seen:
                    continue
                seen.add(key)
                carried = True
                slot = self.values.get(key)
                if slot is None:
                    slot = self.values[key] = [0, []]
                slot[0] += 1
                if link and len(slot[1]) < MAX_LINKS:
                    slot[1].append(link)
            if carried:
                self.attrs[attr] = self.attrs.get(attr, 0) + 1
        if len(self.values) >= store.BATCH:
            self.flush()

    def flush(self) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(_UPSERT_VALUE, (
            (attr, value, n, ",".join(kinds(value, attr)), len(links), "\n".join(links))
            for (attr, value), (n, links) in self.values.items()))
        self.db.executemany(_UPSERT_ATTR, self.attrs.items())
        self.db.execute("COMMIT")
        self.values.clear()
        self.attrs.clear()


def visible(value: str) -> str:
    """``value`` with control, format (direction) and line characters shown as escapes."""
    if value.isprintable():
        return value
    out = []
    for ch in value:
        if ch == "\n":
            out.append("\u21b5")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _href(ctx: ReportContext, output: str) -> str:
    """A relative link from the report folder to the released file ``output`` (relative to the
    release), percent-encoded, for a quoted attribute."""
    rel = os.path.relpath(ctx.release / output, ctx.out)
    return html.escape(urllib.parse.quote(Path(rel).as_posix()), quote=True)


def _links(ctx: ReportContext, n: int, stored: str) -> str:
    outputs = [o for o in stored.split("\n") if o][:MAX_LINKS]
    parts = [f'<a href="{_href(ctx, o)}" title="{html.escape(o, quote=True)}">{html.escape(Path(o).stem)}</a>'
             for o in outputs]
    more = n - len(outputs)
    return ", ".join(parts) + (f" and {more:,} more" if more > 0 else "")


def _row(ctx: ReportContext, value: str, n: int, flag: str, links: str) -> str:
    cls = ' class="flagged"' if flag else ""
    return (f'<tr{cls}><td class="n">{n:,}</td><td class="value"><code>{html.escape(visible(value))}</code></td>'
            f'<td class="flag">{html.escape(flag.replace(",", ", "))}</td>'
            f'<td class="links">{_links(ctx, n, links)}</td></tr>')


def _order(row: tuple[str, int, str, str]) -> tuple[int, bool, str]:
    return (row[1], not row[2], row[0])


def _values(ctx: ReportContext, db: Any, attr: str, distinct: int) -> tuple[str, int]:
    """The rows shown of one attribute (rare first, flagged first within a tie) and how many of
    its values were left out."""
    cols = "SELECT value, n, flag, links FROM vals WHERE attr = ?"
    if distinct <= MAX_RARE + MAX_COMMON:
        rows = db.execute(f"{cols} ORDER BY n, flag = '', value", (attr,)).fetchall()
        return "".join(_row(ctx, *r) for r in rows), 0
    rare = db.execute(f"{cols} ORDER BY n, flag = '', value LIMIT ?", (attr, MAX_RARE)).fetchall()
    common = db.execute(f"{cols} ORDER BY n DESC, flag = '' DESC, value DESC LIMIT ?", (attr, MAX_COMMON)).fetchall()
    shown = {r[0] for r in rare} | {r[0] for r in common}
    flagged = [r for r in db.execute(f"{cols} AND flag != '' ORDER BY n, value LIMIT ?",
                                     (attr, MAX_FLAGGED + len(shown))) if r[0] not in shown][:MAX_FLAGGED]
    middle = sorted(flagged, key=_order)
    left_out = distinct - len(rare) - len(common) - len(middle)
    gap = (f'<tr class="gap"><td colspan="4">{left_out:,} values carried by more objects than the above and '
           f"fewer than the below are not shown</td></tr>") if left_out else ""
    body = ("".join(_row(ctx, *r) for r in sorted(rare, key=_order))
            + "".join(_row(ctx, *r) for r in middle) + gap
            + "".join(_row(ctx, *r) for r in sorted(common, key=_order)))
    return body, left_out


def pool_release(ctx: ReportContext, db: Any) -> tuple[int, int]:
    """Pool the kept text of every released object of ``ctx`` into ``db`` (tables ``vals``:
    attr, value, n, flag, nlinks, links; ``attrs``: attr, objects); (released objects, released
    objects without a review record)."""
    pool = _Pool(db)
    tally = Tally()
    for entry, review in ctx.reviews(tally):
        text = review.get("text")
        if isinstance(text, dict) and text:
            outputs = entry.get("outputs") or []
            pool.add(text, outputs[0] if outputs and isinstance(outputs[0], str) else "")
    pool.flush()
    return tally.released, tally.unreviewed


def build(ctx: ReportContext) -> Section:
    with store.pool(ctx.out) as db:
        released, unreviewed = pool_release(ctx, db)
        return _page(ctx, db, released, unreviewed)


def _page(ctx: ReportContext, db: Any, released: int, unreviewed: int) -> Section:
    notes = ctx.notes.setdefault(KEY, [])
    n_values, n_flagged = db.execute("SELECT count(*), coalesce(sum(flag != ''), 0) FROM vals").fetchone()
    n_attrs = db.execute("SELECT count(*) FROM attrs").fetchone()[0]
    head = [f"<p>{n_values:,} distinct kept text values of {n_attrs:,} attributes over {released:,} released "
            f"objects; {n_flagged:,} look like a name, date, ID, phone number or address (flagged). "
            "Rare values come first: a value that few objects carry is the one that can identify a person.</p>"]
    if unreviewed:
        notes.append(f"{unreviewed:,} released objects have no review record: their text is not in this table")
        head.append(f'<p class="warning">{unreviewed:,} released objects have no review record: their kept text '
                    "is not pooled here and must be reviewed another way.</p>")
    if not n_values:
        return Section(KEY, TITLE, "".join(head))
    attrs = db.execute(
        "SELECT v.attr, count(*) AS d, sum(v.flag != '') AS f, a.objects FROM vals v JOIN attrs a ON a.attr = v.attr"
        " GROUP BY v.attr ORDER BY f DESC, v.attr LIMIT ?", (MAX_ATTRIBUTES,)).fetchall()
    if n_attrs > len(attrs):
        rest = n_flagged - sum(f for _, _, f, _ in attrs)
        notes.append(f"only {len(attrs):,} of {n_attrs:,} attributes are listed (those with the most flagged values "
                     f"first); the {n_attrs - len(attrs):,} others hold {rest:,} flagged values")
    summary = ['<table class="text-attributes"><thead><tr><th>attribute</th><th>objects</th>'
               "<th>distinct values</th><th>flagged</th></tr></thead><tbody>"]
    blocks = []
    capped = budget_out = 0
    budget = MAX_ROWS
    for i, (attr, distinct, flagged, objects) in enumerate(attrs):
        anchor = f"text-{i}"
        name = html.escape(visible(attr))
        cls = ' class="flagged"' if flagged else ""
        most = min(distinct, MAX_RARE + MAX_COMMON + MAX_FLAGGED)
        if most > budget:  # the page is full: this attribute is counted, its values not shown
            budget_out += 1
            summary.append(f'<tr{cls}><td>{name} <small>(values not shown)</small></td><td class="n">{objects:,}'
                           f'</td><td class="n">{distinct:,}</td><td class="n">{flagged:,}</td></tr>')
            continue
        budget -= most
        summary.append(f'<tr{cls}><td><a href="#{anchor}">{name}</a></td><td class="n">{objects:,}</td>'
                       f'<td class="n">{distinct:,}</td><td class="n">{flagged:,}</td></tr>')
        rows, left_out = _values(ctx, db, attr, distinct)
        capped += bool(left_out)
        blocks.append(f'<h3 id="{anchor}">{name} <small>({distinct:,} distinct values in {objects:,} objects, '
                      f"{flagged:,} flagged)</small></h3>"
                      '<table class="text-values"><thead><tr><th>objects</th><th>value</th><th>flag</th>'
                      f"<th>carried by</th></tr></thead><tbody>{rows}</tbody></table>")
    summary.append("</tbody></table>")
    if budget_out:
        notes.append(f"the values of {budget_out:,} attributes are not shown (the page shows at most {MAX_ROWS:,} "
                     "values; attributes with flagged values come first): they are counted in the table above")
    if capped:
        notes.append(f"{capped:,} attributes have more than {MAX_RARE + MAX_COMMON:,} distinct values: the "
                     f"{MAX_RARE:,} rarest, the {MAX_COMMON:,} most common and up to {MAX_FLAGGED:,} more flagged "
                     "values of each are shown")
    notes.append(f"each value links to at most {MAX_LINKS:,} of the objects that carry it")
    return Section(KEY, TITLE, "".join(head + summary + blocks))
