"""3DHISTECH MIRAX slides: a ``NAME.mrxs`` file beside a folder ``NAME/`` of ``Slidedat.ini``,
``Index.dat`` and data files (see :mod:`medcloak.formats.slide_mirax`). The ``.mrxs`` is the
object; the files of its folder are read with it and never released on their own (discovery
claims them as ``mirax-member``, which the run skips). A ``.mrxs`` file whose folder is missing is
still claimed, and quarantined: it is often a small picture of the whole slide, label included,
that would otherwise be released as a photograph.

A released slide is ``slides/<token>.mrxs`` (empty: readers only need it to exist) and
``slides/<token>/`` with ``Slidedat.ini``, ``Index.dat`` and ``Data0000.dat``...; the token is a
keyed hash of ``Slidedat.ini``, ``Index.dat`` and the data files' sizes. The data files are
streamed, never held in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import Finding

if TYPE_CHECKING:
    from ..engine import Job
    from ..model import Task
    from .base import Released, VerifyContext

NAME = "mirax"
KINDS = {
    "mirax": "remove label, macro and preview, clean Slidedat.ini, copy the tiles (MIRAX)",
    "mirax-member": "skip (released with its MIRAX .mrxs slide)",
}
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(head: bytes, path: Path) -> str | None:
    """A ``.mrxs`` file that is not a TIFF (as OpenSlide detects MIRAX), or any file of a folder
    holding ``Slidedat.ini`` (a MIRAX slide's folder)."""
    if path.name.lower().endswith(".mrxs") and head[:4] not in TIFF_MAGIC:
        return "mirax"
    return "mirax-member" if (path.parent / "Slidedat.ini").is_file() else None


def settings(options: dict[str, Any]) -> None:
    return None


def grouper(keyring: Any, settings: Any, profile: Any) -> None:
    return None


def deidentify(task: Task, job: Job) -> list[Released]:
    from ..formats.slide_mirax import (
        INDEX,
        SLIDEDAT,
        clean_mirax,
        data_name,
        read_mirax,
        write_data,
    )
    from .base import Released

    slide = read_mirax(Path(task.source.path))
    token = job.keyring.token("slide", _fingerprint(slide))
    new_id = job.keyring.digest("mirax-slide-id", _fingerprint(slide))[:16].hex()
    cleaned = clean_mirax(slide, new_id)

    def writer(src: Path, size: int, ranges: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
        return lambda fh: write_data(src, size, ranges, fh)

    # the data files first: a writer that fails (a data file changed since it was read) leaves no
    # Slidedat.ini or Index.dat behind it, so nothing that opens as a slide
    extra: list[tuple[str, Any]] = [(f"slides/{token}/{data_name(i)}", writer(src, size, ranges))
                                    for i, (src, size, ranges) in enumerate(cleaned.data)]
    extra += [(f"slides/{token}/{INDEX}", cleaned.index), (f"slides/{token}/{SLIDEDAT}", cleaned.slidedat)]
    return [Released(b"", f"slides/{token}.mrxs", counts=dict(cleaned.counts), extra=tuple(extra),
                     review=_record(token, cleaned))]


def _record(token: str, cleaned: Any) -> dict[str, Any]:
    """The slide's review record: modality ``SM``, its token as series, the records removed
    (``label``, ``macro``... from the counts ``<kind>-removed``), the released ``Slidedat.ini``'s
    values that hold letters as text (by key; numbers are no text to review), ``label-removed``."""
    from ..review_record import record, text_values

    removed = {key[: -len("-removed")]: "removed" for key in cleaned.counts if key.endswith("-removed")}
    pairs = []
    for line in cleaned.slidedat.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        value = value.strip()
        if sep and any(c.isalpha() for c in value):
            pairs.append((key.strip(), value))
    return record("slide", modality="SM", series=token, changed=removed, text=text_values(pairs),
                  pixels={"change": "label-removed"} if "label" in removed else None)


def _fingerprint(slide: Any) -> str:
    from ..formats.slide_mirax import SLIDEDAT

    sha = hashlib.sha256()
    sha.update((slide.folder / SLIDEDAT).read_bytes())
    sha.update(repr((slide.index_digest, slide.data_sizes)).encode())
    return sha.hexdigest()


def owns(relpath: str) -> bool:
    """A released MIRAX slide: ``slides/<token>.mrxs`` and the files of ``slides/<token>/``."""
    parts = relpath.split("/")
    return parts[0] == "slides" and (len(parts) == 2 and relpath.endswith(".mrxs") or len(parts) == 3)


def verify(path: Path, relpath: str, context: VerifyContext) -> list[Finding]:
    """Each file of a released slide is checked with the slide it belongs to: the ``.mrxs`` is
    empty, ``Slidedat.ini`` holds no label, macro or preview record and only allow-listed keys,
    ``Index.dat`` only the kept records, a data file nothing stray."""
    from ..errors import MedcloakError
    from ..formats.slide_mirax import INDEX, SLIDEDAT, verify_mirax

    if relpath.endswith(".mrxs"):
        mrxs, member = path, None
    else:
        mrxs, member = path.parent.with_name(path.parent.name + ".mrxs"), path.name
        known = member in (SLIDEDAT, INDEX) or member.startswith("Data") and member.endswith(".dat")
        if not known:
            return [Finding(relpath, "error", "file of no known kind in a MIRAX slide's folder")]
        if not mrxs.is_file():
            return [Finding(relpath, "error", "MIRAX folder without its .mrxs file")]
    try:
        return [Finding(relpath, "error", message) for message in verify_mirax(mrxs, member)]
    except (MedcloakError, OSError) as exc:
        return [Finding(relpath, "error", f"unreadable MIRAX slide ({exc})")]
