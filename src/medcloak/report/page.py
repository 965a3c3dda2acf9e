"""The report's page: one self-contained ``index.html`` (inline style, no script, no external
resource: a Content-Security-Policy forbids any fetch but the report's own pictures) with a header
naming the release, a table of contents and every section, written privately like the audit.

What it decides:

- *Where*: never inside the release tree (the report shows original-to-pseudonym relationships);
  a report folder is either new, empty, or an earlier medcloak report, which is replaced whole.
- *What a failure looks like*: a section that raises is an error box with the exception's type
  only (its message may quote a value), the page says it is incomplete and the command exits
  non-zero. A section that lists a file it did not write fails the same way.
- *What the header names*: the release folder's own name (never an input path), the profile and
  options of its documentation, the tool's version, the date.
"""

from __future__ import annotations

import datetime
import html
import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..audit import MANIFEST, make_private_dir, open_private
from ..errors import UsageError
from ..verify import DOC_NAME
from . import ReportContext, Section

INDEX = "index.html"
#: the mark of a medcloak report in its index.html (an earlier report may be replaced)
GENERATOR = "medcloak report"
#: each section's title when it could not say its own
TITLES = {
    "summary": "Summary",
    "text": "Pooled text review",
    "pixels": "Pixel review",
    "attributes": "What changed, per attribute",
    "risk": "Re-identification risk",
}
#: nothing is fetched but the report's own pictures: no script, no font, no frame, no link out
POLICY = ("default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; "
          "form-action 'none'; base-uri 'none'")

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:0 1.2rem 3rem;color:#1d2327}
header{border-bottom:2px solid #1d2327;margin-bottom:1rem}
h1{font-size:1.6rem;margin:1.2rem 0 .4rem}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ccd}
h3{font-size:1.05rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.6rem 0 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.status{padding:.5rem .8rem;border-radius:4px;font-weight:600;margin:.6rem 0 1rem}
.status.ok{background:#e6f4ea;border:1px solid #7bb88a}
.status.incomplete{background:#fde7e9;border:1px solid #c6424f}
nav ol{columns:2;margin:.2rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #ccd;padding:.2rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere}table{max-width:100%}
th{background:#f1f3f6}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;overflow-wrap:normal}
.error{background:#fde7e9;border:1px solid #c6424f;border-left-width:6px;padding:.6rem .9rem;margin:.6rem 0}
.notes{background:#fff8e1;border:1px solid #e0c060;padding:.4rem .9rem;margin:.6rem 0}
.notes ul{margin:.2rem 0;padding-left:1.2rem}
.flag{background:#fde7e9;border-radius:3px;padding:0 .3rem;font-size:.85em}
img{max-width:100%;height:auto;image-rendering:pixelated;border:1px solid #ccd}
figure{display:inline-block;margin:.3rem;vertical-align:top}figcaption{font-size:.8rem;color:#555}
code{font-size:.9em}footer{margin-top:3rem;color:#555;font-size:.85rem}
tr.flagged td{background:#fff1f2}td.flag{white-space:nowrap}tr.gap td{border:0;color:#777;text-align:center}
td.value code,td.value{white-space:pre-wrap;overflow-wrap:anywhere;max-width:40rem}td.zero{color:#aaa}
td.links{font-size:.85rem;overflow-wrap:anywhere}p.warning,.verdict{font-weight:600}
p.warning{background:#fff8e1;border-left:6px solid #e0c060;padding:.4rem .8rem}
tr.at-risk td{background:#fff1f2}.pixels-grid{display:flex;flex-wrap:wrap;gap:.3rem}
.pixels-missing{color:#8a1c26}
""".strip()


def check_folders(release: Path, audit: Path, out: Path, k: int = 5) -> None:
    """Refuse, before anything is written, what the report cannot be built from or into (raises
    :class:`UsageError`, whose message names no path)."""
    if k < 1:
        raise UsageError("--k must be at least 1")
    doc = release / DOC_NAME
    try:
        tool = json.loads(doc.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, ValueError, AttributeError):
        tool = None
    if not release.is_dir() or not isinstance(tool, dict) or tool.get("name") != "medcloak":
        raise UsageError(f"the release folder is not a medcloak release (it has no valid {DOC_NAME})")
    if not (audit / MANIFEST).is_file():
        raise UsageError(f"the audit folder holds no {MANIFEST} (pass the release's audit folder with --audit)")
    rel, dest = release.resolve(), out.resolve()
    if dest.is_relative_to(rel) or rel.is_relative_to(dest):
        raise UsageError("the report folder must lie outside the release tree (the report is private)")
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not _earlier_report(dest))):
        raise UsageError("the report folder exists and holds something other than a medcloak report")


def _earlier_report(folder: Path) -> bool:
    try:
        with open(folder / INDEX, encoding="utf-8", errors="replace") as fh:
            return f'<meta name="generator" content="{GENERATOR}' in fh.read(4096)
    except OSError:
        return False


def write_report(ctx: ReportContext, sections: Sequence[str]) -> Path:
    """Run the sections, check the files they list, write ``index.html`` and make the whole
    folder private; the path of ``index.html``."""
    if ctx.out.exists() and _earlier_report(ctx.out):
        shutil.rmtree(ctx.out)  # an earlier report: its pictures must not outlive it
    make_private_dir(ctx.out)
    built = [_section(ctx, key) for key in sections]
    page = _page(ctx, built)
    tmp = ctx.out / (INDEX + ".tmp")
    with open_private(tmp) as fh:
        fh.write(page)
    os.replace(tmp, ctx.out / INDEX)
    _make_private(ctx.out)
    return ctx.out / INDEX


def _section(ctx: ReportContext, key: str) -> Section:
    """One section built, or its error box (the exception's type only)."""
    title = TITLES.get(key, key)
    try:
        module = importlib.import_module(f"{__package__}.{key}")
        section = module.build(ctx)
        if not isinstance(section, Section):
            raise TypeError("build() did not return a Section")
    except Exception as exc:  # noqa: BLE001 - any failure of a section is shown, never hidden
        ctx.failed[key] = type(exc).__name__
        return Section(key, title, _error(f"This section could not be built ({type(exc).__name__})."))
    missing = [f for f in section.files if not _inside(ctx.out, f)]
    if missing:
        ctx.failed[key] = "missing files"
        box = _error(f"{len(missing)} of the {len(section.files)} files this section lists are missing.")
        return Section(key, section.title, box + section.html, section.files)
    return section


def _inside(out: Path, rel: str) -> bool:
    """Whether ``rel`` is a file inside the report folder."""
    path = (out / rel).resolve()
    return path.is_relative_to(out.resolve()) and path.is_file()


def _error(text: str) -> str:
    return (f'<div class="error" role="alert"><strong>Error:</strong> {html.escape(text)} '
            "The report is incomplete: do not sign off the release on it.</div>")


def _make_private(folder: Path) -> None:
    """Every folder 0700 and every file 0600, as in the audit."""
    os.chmod(folder, 0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def release_documentation(release: Path) -> dict[str, Any]:
    """The release's ``DEIDENTIFICATION.json``, or {}."""
    try:
        doc = json.loads((release / DOC_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _page(ctx: ReportContext, sections: list[Section]) -> str:
    e = html.escape
    doc = release_documentation(ctx.release)
    tool = doc.get("tool") if isinstance(doc.get("tool"), dict) else {}
    options = ", ".join(str(o) for o in doc.get("options") or []) or "none"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [
        ("Release", ctx.release.name),
        ("Profile", f"{doc.get('profile', '?')} (DICOM PS3.15 release {doc.get('standard_release', '?')})"),
        ("Options", options),
        ("De-identified with", f"medcloak {tool.get('version', '?')}"),
        ("Report made with", f"medcloak {__version__}"),
        ("Date", now),
    ]
    if ctx.failed:
        names = ", ".join(TITLES.get(k, k) for k in ctx.failed)
        status = (f'<p class="status incomplete" id="status">Incomplete: {len(ctx.failed)} section(s) could not '
                  f"be built ({e(names)}). Do not sign off the release on this report.</p>")
    else:
        status = '<p class="status ok" id="status">Complete: every section was built.</p>'
    toc = "".join(
        f'<li><a href="#{e(s.key)}">{e(s.title)}</a>{" (failed)" if s.key in ctx.failed else ""}</li>'
        for s in sections
    )
    body = "".join(_render(ctx, s) for s in sections)
    dl = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta name="generator" content="{GENERATOR} {e(__version__)}">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Review of {e(ctx.release.name)}: medcloak report</title>\n"
        f"<style>{STYLE}</style></head><body>\n"
        f"<header><h1>Review of release {e(ctx.release.name)}</h1>"
        '<p>Private: this report shows how the release relates to the original data. Keep it with the audit '
        "folder; never publish it.</p>"
        f'<dl class="facts">{dl}</dl>{status}</header>\n'
        f'<nav id="toc"><h2>Contents</h2><ol>{toc}</ol></nav>\n'
        f"<main>{body}</main>\n"
        f"<footer>medcloak {e(__version__)}: built from the audit's manifest and run record; every value "
        "shown is a released value.</footer>\n"
        "</body></html>\n"
    )


def _render(ctx: ReportContext, section: Section) -> str:
    e = html.escape
    notes = ctx.notes.get(section.key) or []
    box = ""
    if notes:
        items = "".join(f"<li>{e(n)}</li>" for n in notes)
        box = f'<div class="notes"><strong>Capped:</strong><ul>{items}</ul></div>'
    cls = ' class="failed"' if section.key in ctx.failed else ""
    return (f'<section id="{e(section.key)}"{cls}><h2>{e(section.title)}</h2>{box}{section.html}</section>\n')
