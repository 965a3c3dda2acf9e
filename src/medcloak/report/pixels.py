"""The report's pixel review: what the released pixels look like, so that a curator sees burned-in
text and faces that nobody expected, and what medcloak changed in them.

Two parts, changed objects first:

* every object whose pixels medcloak changed (its review record's ``pixels``, or, for a line
  without one, its manifest actions: ``pixel-text-boxes-redacted``, ``pixel-regions-redacted``,
  ``pixel-whole-image-blanked``, ``defaced``, ``label-removed``) gets a before/after pair: before
  is the audit's own picture when there is one (the burned-in text review picture: the frame
  before redaction with its boxes; the defacing QC picture: the removed tissue), after is the
  released object (the frame with the most boxes, those boxes outlined in red; a volume's
  projections; a slide's thumbnail). Objects whose detected text was read as safe and kept
  (``pixel-text-boxes-kept-safe``) come first of all: that text is in the release.
* one picture per series (grouped by the record's ``series`` key, else the output folder), per
  slide, per volume and per photograph: a montage of a few frames spread over a DICOM series, the
  three maximum intensity projections of a volume (NIfTI, Analyze, MINC, MGH/MGZ, NRRD/NHDR, the
  first frame of an ECAT 7 file, the first volume of a PAR/REC: see
  :mod:`medcloak.report.volumes`), a slide's lowest-resolution level that fills a thumbnail, a
  photograph's thumbnail. The audit QC pictures that no pair showed follow.
* every released object the section has no picture for (a twix file's raw k-space, a BIDS
  dataset's sidecars and tables, a format it does not know) is counted by format, with why it is
  not pictured: nothing released goes unlooked-at without the page saying so.

Every picture is a small JPEG under the report's ``img`` folder (a thumbnail or montage at most
:data:`thumbs.THUMB` pixels on a side; a volume's three panels of :data:`PANEL`; an audit
picture brought into :data:`BEFORE`, its red outlines kept), listed in the section's files and
shown with its size and alt text; an audit picture links to its full-size original in the audit
folder by a relative path, so the report works from the file system.

Everything is read from the release (the manifest's output paths), never from the inputs: the
review is of what stayed. What is decoded is bounded (see :mod:`medcloak.report.thumbs`), and so
is what is shown: at most :data:`MAX_CHANGED` pairs, :data:`MAX_SERIES` series pictures and
:data:`MAX_QC` further QC pictures; the page says what was capped (``ctx.notes``). An object that
cannot be pictured is listed with the reason; it never stops the report. The manifest is streamed
once and each group keeps an evenly spaced sample of at most :data:`KEEP` of its objects; the
groups pictured, when there are more than :data:`MAX_SERIES`, are spread evenly over the release
the same way (every second one dropped and the stride doubled whenever they overflow), so memory
stays bounded however large the release, and the pictures do not all come from its first patients.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path, PurePosixPath
from typing import Any

from ..review_record import pixel_change
from . import ReportContext, Section
from . import montage as M
from . import thumbs as T

KEY = "pixels"
TITLE = "Pixel review"
#: series (slides, volumes, photographs) pictured
MAX_SERIES = 60
#: before/after pairs shown
MAX_CHANGED = 40
#: further audit QC pictures shown
MAX_QC = 40
#: objects listed as not pictured
MAX_LISTED = 200
#: groups remembered, to tell a new group from one not pictured (beyond it, counts are a bound)
SEEN = 1 << 20
#: objects of a group kept (evenly spaced) to choose its frames from
KEEP = 64
#: a montage's cell (two columns of two: about :data:`thumbs.THUMB` pixels square)
CELL = (T.THUMB - M.GAP) // 2
#: a projection panel's box (three side by side)
PANEL = 168
#: the box of a before picture taken from the audit (the defacing QC picture is wide)
BEFORE = (2 * T.THUMB, T.THUMB)
#: the order of changed objects after those with text kept
_ORDER = ("text-redacted", "regions-redacted", "image-blanked", "defaced", "label-removed")
_CHANGE_WORDS = {
    "text-redacted": "burned-in text redacted", "regions-redacted": "regions redacted",
    "image-blanked": "image blanked whole", "defaced": "defaced", "label-removed": "slide label removed",
    "text-kept": "text read as safe and kept",
}
_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".hdr.gz", ".mnc", ".mgh", ".mgz", ".nrrd", ".nhdr")
#: volumes of their own folder in the release: ECAT 7 files, PAR headers (the REC beside each)
_VOLUME_FOLDERS = {"ecat": (".v",), "parrec": (".par",)}
#: why released objects of a format get no picture (any other format: :data:`_NO_PICTURE`)
_NOT_PICTURED = {
    "twix": "raw k-space data, not an image: the report does not reconstruct it, so no one has looked at "
            "it here (its headers' kept text is in the pooled text review)",
    "bids": "no pixels (the dataset's sidecars, tables and text: their kept text is in the pooled text review)",
}
#: a BIDS dataset's files without pixels (a name without a suffix too: README, CHANGES, .bidsignore)
_TEXT_SUFFIXES = (".json", ".tsv", ".tsv.gz", ".txt", ".md", ".rst", ".bval", ".bvec", ".csv")
_NO_PICTURE = "no picture of this kind of object in the pixel review: open it from the release to look at it"
#: formats counted as not pictured (beyond it, the rest are counted under one line)
MAX_FORMATS = 50
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
_SLIDE_SUFFIXES = (".svs", ".ndpi", ".tif", ".tiff", ".bif", ".qptiff", ".mrxs", ".scn")


@dataclass
class _Group:
    """An evenly spaced sample (every ``stride``-th object) of a group's released files."""

    kind: str
    label: str
    count: int = 0
    stride: int = 1
    paths: list[str] = field(default_factory=list)

    def add(self, relpath: str) -> None:
        if self.count % self.stride == 0:
            self.paths.append(relpath)
            if len(self.paths) > KEEP:
                self.paths = self.paths[::2]
                self.stride *= 2
        self.count += 1


@dataclass
class _Changed:
    oid: str
    kind: str
    relpath: str
    change: str
    boxes: list[list[int]]
    picture: str
    kept: int


def _kind(fmt: str, relpath: str) -> str | None:
    """What kind of picture a released file gives: dicom, volume, slide, photo, or None."""
    low = relpath.lower()
    top = low.split("/", 1)[0]
    if fmt == "dicom" or low.endswith(".dcm"):
        return "dicom"
    if fmt == "photo" or (top == "photos" and low.endswith(_PHOTO_SUFFIXES)):
        return "photo"
    if fmt == "slide" or (top == "slides" and low.endswith(_SLIDE_SUFFIXES)):
        return "slide"
    if low.endswith(_VOLUME_SUFFIXES) or low.endswith(_VOLUME_FOLDERS.get(top, ())):
        return "volume"
    return None


def _safe(relpath: str) -> bool:
    path = PurePosixPath(relpath)
    return bool(relpath) and not path.is_absolute() and ".." not in path.parts


def _change(entry: dict[str, Any], rec: dict[str, Any], kind: str, relpath: str, qc: set[str]) -> _Changed | None:
    """What medcloak changed in the pixels of a released object, from its record, or from its
    manifest actions when it has none; None when nothing."""
    actions = entry.get("actions") or {}
    kept = int(actions.get("pixel-text-boxes-kept-safe", 0) or 0)
    oid = str(entry.get("id", ""))
    pix = rec.get("pixels") if isinstance(rec.get("pixels"), dict) else None
    boxes: list[list[int]] = []
    picture = ""
    if pix:
        change = str(pix.get("change", ""))
        boxes = [list(b) for b in pix.get("boxes") or [] if isinstance(b, (list, tuple)) and len(b) == 5]
        picture = str(pix.get("picture") or "")
    else:
        change = pixel_change(actions) or ("text-kept" if kept else "")
        if not change:
            return None
    if not pix:  # the audit's pictures by their names: <id>-text.png, a volume's <token>.png
        stem = PurePosixPath(relpath).name.split(".", 1)[0]
        for name in (f"{oid}-text.png", f"{stem}.png" if change == "defaced" else ""):
            if name and name in qc:
                picture = f"qc/{name}"
                break
    if picture and not _safe(picture):
        picture = ""
    return _Changed(oid, kind, relpath, change, boxes, picture, kept)


class _Builder:
    def __init__(self, ctx: ReportContext) -> None:
        self.ctx = ctx
        self.files: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.failed_more = 0
        self.cache: dict[str, tuple[str, int, int]] = {}

    def fail(self, label: str, exc: BaseException | str) -> None:
        if len(self.failed) >= MAX_LISTED:
            self.failed_more += 1
            return
        text = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else exc
        # never a full path in the page (the release's and the audit's named as such)
        text = text.replace(str(self.ctx.release), "<release>").replace(str(self.ctx.audit), "<audit>")
        self.failed.append((label, text[:300]))

    def write(self, img: Any, name: str) -> tuple[str, int, int]:
        rel = f"img/{name}"
        width, height = M.save(img, self.ctx.images / name)
        self.files.append(rel)
        return rel, width, height

    def release(self, relpath: str) -> Path:
        if not _safe(relpath):
            raise ValueError("output path outside the release")
        return self.ctx.release / relpath

    # ---- the pictures of one object or group ----

    def projections(self, relpath: str, name: str) -> tuple[str, int, int]:
        if relpath not in self.cache:
            panels = []
            for pic in T.volume_projections(self.release(relpath)):
                img = M.resize(M.image(pic.pixels), *pic.space)
                panels.append(M.fit(img, PANEL, PANEL, grow=True))
            self.cache[relpath] = self.write(M.row(panels), name)
        return self.cache[relpath]

    def single(self, kind: str, relpath: str, name: str, boxes: list[list[int]] | None = None,
               frame: int = 0) -> tuple[str, int, int]:
        """The thumbnail of a slide, a photograph or a DICOM frame, ``boxes`` outlined."""
        if kind == "volume":
            return self.projections(relpath, name)
        if not boxes and relpath in self.cache:
            return self.cache[relpath]
        path = self.release(relpath)
        pic = (T.slide_thumbnail(path) if kind == "slide" else T.photo_thumbnail(path) if kind == "photo"
               else T.dicom_frame(path, frame))
        img = M.fit(M.image(pic.pixels), T.THUMB, T.THUMB)
        if boxes:
            img = M.outline(img, boxes, pic.space)
        out = self.write(img, name)
        if not boxes:
            self.cache[relpath] = out
        return out

    def before(self, picture: str, name: str) -> tuple[str, int, int, str]:
        from PIL import Image

        path = self.ctx.audit / picture
        with Image.open(path) as img:
            small = M.shrink_outlined(img, *BEFORE)
        rel, width, height = self.write(small, name)
        return rel, width, height, os.path.relpath(path, self.ctx.out).replace(os.sep, "/")


def _img(src: str, width: int, height: int, alt: str) -> str:
    return f'<img src="{escape(src)}" width="{width}" height="{height}" alt="{escape(alt)}">'


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _name(oid: str) -> str:
    """An object's id as a file name: itself when it is a plain token, else a digest of it."""
    return oid if oid.isascii() and oid.isalnum() and len(oid) <= 40 else _digest(oid)


def build(ctx: ReportContext) -> Section:
    """The pixel review of the release ``ctx`` describes (see the module's docstring)."""
    try:
        qc = {p.name for p in (ctx.audit / "qc").iterdir() if p.suffix.lower() == ".png"}
    except OSError:
        qc = set()
    groups: dict[tuple[str, ...], _Group] = {}
    seen: set[int] = set()  # hashes of the groups met (at most SEEN)
    index, stride, more_objects = 0, 1, 0
    kept_first: list[_Changed] = []
    unpictured: dict[str, int] = {}
    by_change: dict[str, list[_Changed]] = {}
    changed_total = kept_total = 0
    for entry in ctx.entries():
        if entry.get("status") != "ok":
            continue
        rec = entry.get("review") if isinstance(entry.get("review"), dict) else {}
        fmt = str(rec.get("format", ""))
        found = [(o, _kind(fmt, o)) for o in entry.get("outputs") or [] if isinstance(o, str)]
        found = [(o, k) for o, k in found if k]
        if not found:
            if entry.get("outputs"):  # released, yet no picture of it: counted by format, with why
                first = str(entry["outputs"][0])
                name = fmt or _top(first)
                if name == "bids" and PurePosixPath(first).suffix and not first.lower().endswith(_TEXT_SUFFIXES):
                    name = "bids (other files)"  # not a table or text: whatever it holds is not pictured
                _count(unpictured, name)
            continue
        relpath, kind = found[0]
        change = _change(entry, rec, kind, relpath, qc)
        if change is not None:
            changed_total += 1
            if change.kept:
                kept_total += 1
                if len(kept_first) < MAX_CHANGED:
                    kept_first.append(change)
            else:
                bucket = by_change.setdefault(change.change, [])
                if len(bucket) < MAX_CHANGED:
                    bucket.append(change)
        if kind == "dicom":
            series = rec.get("series")
            folder = str(PurePosixPath(relpath).parent)
            key = (("series", str(rec.get("patient", "")), str(rec.get("study", "")), str(series)) if series
                   else ("folder", folder))
            label = folder  # the series' folder in the release, where a viewer finds it
        else:
            key, label = ("object", relpath), relpath
        group = groups.get(key)
        if group is None:
            tag = hash(key)
            if tag in seen:
                more_objects += 1  # a group not pictured
                continue
            if len(seen) < SEEN:
                seen.add(tag)
            index += 1
            if (index - 1) % stride:
                more_objects += 1
                continue
            group = groups[key] = _Group(kind, label)
            if len(groups) > MAX_SERIES:
                # every second group dropped, and every (2 x stride)-th new one taken from now on:
                # the pictured groups stay spread evenly over the release, however large it is
                kept = list(groups.items())
                groups = dict(kept[::2])
                more_objects += sum(g.count for _, g in kept[1::2])
                stride *= 2
                if key not in groups:
                    more_objects += 1
                    continue
        group.add(relpath)

    b = _Builder(ctx)
    notes: list[str] = []
    intro = ("<p>What the released pixels look like, read from the release itself. Objects whose pixels "
             "medcloak changed come first (before: the audit's picture; after: the released object, the "
             "changed area outlined in red), those with detected text kept as safe first of all; then a "
             "picture of every series, slide, volume and photograph: a few frames spread over a DICOM "
             "series, the maximum intensity projections of a volume (sagittal, coronal, axial), the lowest "
             "resolution level of a slide; last, the released objects that have no picture here (raw "
             "scanner data, tables), counted by format.</p>")
    parts = [intro]

    # ---- changed objects ----
    ordered = kept_first + [c for change in _ORDER + tuple(sorted(set(by_change) - set(_ORDER)))
                            for c in by_change.get(change, [])]
    shown = ordered[:MAX_CHANGED]
    used_qc: set[str] = set()
    parts.append(f'<h3>Pixels changed by medcloak ({changed_total} object{"s" if changed_total != 1 else ""}'
                 + (f", {kept_total} with text kept as safe" if kept_total else "") + ")</h3>")
    if not shown:
        parts.append("<p>No released object had its pixels changed.</p>")
    else:
        parts.append('<div class="pixels-pairs">')
        for item in shown:
            parts.append(_pair(b, item, used_qc))
        parts.append("</div>")
    if changed_total > len(shown):
        notes.append(f"before/after pictures of {len(shown)} of the {changed_total} objects whose "
                     f"pixels were changed (the cap is {MAX_CHANGED}); the rest: the manifest's actions name them, "
                     "and the audit's qc folder holds every review picture")

    # ---- one picture per series, slide, volume, photograph ----
    total_groups = max(index, len(groups))
    parts.append(f"<h3>Series, slides, volumes and photographs ({total_groups})</h3>")
    without = 0
    figures = []
    for key, group in groups.items():
        name = f"px-{_digest(*key)}.jpg"
        try:
            if group.kind == "dicom":
                pictures, what, problems = T.series_frames([b.release(p) for p in group.paths])
                for path, reason in problems:
                    b.fail(str(path.relative_to(ctx.release)), reason)
                if not pictures:
                    if problems:
                        continue
                    without += 1
                    continue
                if what == "slide" or len(pictures) == 1:
                    img = M.fit(M.image(pictures[0].pixels), T.THUMB, T.THUMB)
                else:
                    img = M.grid([M.image(p.pixels) for p in pictures], CELL, 2)
                src, width, height = b.write(img, name)
                alt = (f"lowest resolution level of slide {group.label}" if what == "slide"
                       else f"{len(pictures)} frame{'s' if len(pictures) != 1 else ''} of series {group.label}")
            else:
                src, width, height = b.single(group.kind, group.paths[0], name)
                alt = {"volume": "maximum intensity projections (sagittal, coronal, axial) of volume",
                       "slide": "lowest resolution level of slide", "photo": "thumbnail of photograph"}[group.kind]
                alt = f"{alt} {group.label}"
        except Exception as exc:  # noqa: BLE001 - one object's picture never stops the report
            b.fail(group.label, exc)
            continue
        count = f"{group.count} object{'s' if group.count != 1 else ''}"
        figures.append(f'<figure class="pixels-series">{_img(src, width, height, alt)}'
                       f"<figcaption>{escape(group.label)} ({escape(count)})</figcaption></figure>")
    if figures:
        parts.append('<div class="pixels-grid">' + "".join(figures) + "</div>")
    if without:
        parts.append(f"<p>{without} series without pixel data (structured reports, structure sets...): no picture.</p>")
    if index > len(groups):
        notes.append(f"pictures of {len(groups)} of the {index} series, slides, volumes and photographs, every "
                     f"{stride}{_ordinal(stride)} in the manifest's order (the cap is {MAX_SERIES}); the other "
                     f"{index - len(groups)}, {more_objects} objects, are not pictured: "
                     "open them from the release in a viewer")

    # ---- released objects of kinds the section does not picture ----
    if unpictured:
        total = sum(unpictured.values())
        parts.append(f"<h3>Released, not pictured ({total} object{'s' if total != 1 else ''})</h3>"
                     "<p>These released objects are not pictured here: review them another way, or know that "
                     "no one has looked at their content.</p><table class=\"pixels-unpictured\">"
                     "<tr><th>format</th><th>objects</th><th>why not pictured</th></tr>")
        for fmt, count in sorted(unpictured.items(), key=lambda kv: (-kv[1], kv[0])):
            parts.append(f"<tr><td>{escape(fmt)}</td><td>{count}</td>"
                         f"<td>{escape(_NOT_PICTURED.get(fmt, _NO_PICTURE))}</td></tr>")
        parts.append("</table>")

    # ---- the audit's other QC pictures ----
    rest = sorted(qc - used_qc)
    if rest:
        parts.append(f"<h3>Other QC pictures of the audit ({len(rest)})</h3>")
        figures = []
        for name in rest[:MAX_QC]:
            try:
                src, width, height, href = b.before(f"qc/{name}", f"qc-{_digest(name)}.jpg")
            except Exception as exc:  # noqa: BLE001
                b.fail(f"qc/{name}", exc)
                continue
            figures.append(f'<figure class="pixels-qc"><a href="{escape(href)}">'
                           f"{_img(src, width, height, f'audit QC picture {name}')}</a>"
                           f"<figcaption>{escape(name)}</figcaption></figure>")
        parts.append('<div class="pixels-grid">' + "".join(figures) + "</div>")
        if len(rest) > MAX_QC:
            notes.append(f"{MAX_QC} of the {len(rest)} other QC pictures shown (the cap is {MAX_QC}); "
                         "the rest are in the audit's qc folder")

    # ---- what could not be pictured ----
    if b.failed:
        parts.append(f"<h3>Not pictured ({len(b.failed) + b.failed_more})</h3><ul class=\"pixels-failed\">")
        parts.extend(f"<li>{escape(label)}: {escape(reason)}</li>" for label, reason in b.failed)
        parts.append("</ul>")
        if b.failed_more:
            notes.append(f"{len(b.failed)} of the {len(b.failed) + b.failed_more} objects that could "
                         "not be pictured are listed")
    if notes:
        ctx.notes.setdefault(KEY, []).extend(notes)
    return Section(KEY, TITLE, "\n".join(parts), tuple(b.files))


def _pair(b: _Builder, item: _Changed, used_qc: set[str]) -> str:
    """The before/after figure of a changed object (a picture that fails is replaced by its reason)."""
    cells = []
    words = _CHANGE_WORDS.get(item.change, item.change)
    if item.picture:
        try:
            src, width, height, href = b.before(item.picture, f"px-{_name(item.oid)}-before.jpg")
            used_qc.add(PurePosixPath(item.picture).name)
            cells.append(_cell("before (the audit's picture)",
                               f'<a href="{escape(href)}">{_img(src, width, height, f"before: {words}, {item.relpath}")}</a>'))
        except Exception as exc:  # noqa: BLE001
            b.fail(f"{item.relpath} (audit picture)", exc)
            cells.append(_cell("before", '<span class="pixels-missing">the audit picture cannot be read</span>'))
    elif item.change == "label-removed":
        cells.append(_cell("before", '<span class="pixels-missing">the label image is removed; no picture of it is kept</span>'))
    else:
        cells.append(_cell("before", '<span class="pixels-missing">no audit picture</span>'))
    frame, boxes = _boxes(item.boxes)
    try:
        src, width, height = b.single(item.kind, item.relpath, f"px-{_name(item.oid)}-after.jpg", boxes, frame)
        cells.append(_cell("after (as released)", _img(src, width, height, f"after: {item.relpath} as released"
                           + (f", {len(boxes)} changed area(s) outlined" if boxes else ""))))
    except Exception as exc:  # noqa: BLE001
        b.fail(item.relpath, exc)
        cells.append(_cell("after", '<span class="pixels-missing">the released object cannot be pictured</span>'))
    detail = [words]
    if item.boxes:
        detail.append(f"{len(item.boxes)} box{'es' if len(item.boxes) != 1 else ''}"
                      + (f", frame {frame + 1} shown" if item.kind == "dicom" else ""))
    if item.kept:
        detail.append(f"{item.kept} text box{'es' if item.kept != 1 else ''} read as safe and kept")
    return (f'<figure class="pixels-pair{" pixels-kept" if item.kept else ""}">'
            f'<div style="display:flex;gap:.6rem;align-items:flex-start">{"".join(cells)}</div>'
            f"<figcaption>{escape(item.relpath)}: {escape('; '.join(detail))}</figcaption></figure>")


def _top(relpath: Any) -> str:
    """A released file's top folder, which names its kind where its record does not."""
    return str(relpath).split("/", 1)[0] if "/" in str(relpath) else "other"


def _count(counts: dict[str, int], fmt: str) -> None:
    """One more object of ``fmt`` (at most :data:`MAX_FORMATS` formats, the rest as ``other formats``)."""
    fmt = fmt[:40]
    if fmt not in counts and len(counts) >= MAX_FORMATS:
        fmt = "other formats"
    counts[fmt] = counts.get(fmt, 0) + 1


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _cell(label: str, body: str) -> str:
    """One side of a pair: its label above its picture (or the reason there is none)."""
    return f'<div><div style="font-size:.8rem;color:#555">{escape(label)}</div>{body}</div>'


def _boxes(boxes: list[list[int]]) -> tuple[int, list[list[int]]]:
    """The frame with the most boxes and its boxes (x0, y0, x1, y1)."""
    if not boxes:
        return 0, []
    counts: dict[int, int] = {}
    for b in boxes:
        counts[int(b[0])] = counts.get(int(b[0]), 0) + 1
    frame = max(counts, key=lambda f: (counts[f], -f))
    return frame, [list(map(int, b[1:])) for b in boxes if int(b[0]) == frame]
