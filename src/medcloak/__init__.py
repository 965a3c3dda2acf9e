"""medcloak: de-identification of medical images for public release.

The public API is small: :func:`deidentify` runs a whole release, :func:`review_report` writes the
curator's review report of one, :func:`load_profile` builds the effective rules, and :mod:`medcloak.errors` holds the one error hierarchy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

if TYPE_CHECKING:
    from .model import Outcome, RunSummary
    from .rules.profile import Profile

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CorruptInputError,
    DeidentificationError,
    IncompleteReportError,
    MedcloakError,
    MissingDependencyError,
    ProfileError,
    SkippedObject,
    UnsupportedInputError,
    UnsupportedJpegError,
    UsageError,
    VerificationError,
)
from .limits import MAX_RATIO, TIMEOUT  # noqa: E402


def load_profile(profile: str | Path | None = None, options: Iterable[str] = ()) -> Profile:
    """Build the effective rules: the PS3.15 Basic Profile, the options, site overrides.

    Parameters
    ----------
    profile : str or Path, optional
        ``None`` or ``"basic"`` for the standard alone; ``"tcia-private"`` to add TCIA's vetted
        private attributes to the safe ones; or the path of a site override ``.toml`` file.
    options : iterable of str
        PS3.15 option names, as on the command line (``"retain-uids"``, ``"clean-descriptors"``,
        ...; the list is :data:`medcloak.rules.profile.OPTIONS`).

    Returns
    -------
    Profile
        The resolved rules (:class:`medcloak.rules.profile.Profile`); ``profile.rows()`` lists them.

    Raises
    ------
    ProfileError
        An unknown profile or option, or an invalid site override.
    """
    from .rules.profile import load_profile as _load

    return _load(profile, options)


def strip_jpeg_metadata(data: bytes) -> bytes:
    """Remove the metadata segments of a JPEG stream, leaving its image untouched.

    Parameters
    ----------
    data : bytes
        A JPEG stream.

    Returns
    -------
    bytes
        The stream without APPn segments (but JFIF, its thumbnail removed, and Adobe) and COM
        segments; the entropy-coded data is untouched (see :mod:`medcloak.pixels.jpeg_meta`).
    """
    from .pixels.jpeg_meta import strip_jpeg_metadata as _strip

    return _strip(data)


def redact_jpeg(data: bytes, boxes: Iterable[Sequence[int]], fill: str = "black") -> bytes:
    """Redact rectangles of a sequential JPEG stream in the compressed domain.

    Parameters
    ----------
    data : bytes
        A baseline or extended sequential JPEG stream.
    boxes : iterable of (x0, y0, x1, y1)
        Pixel rectangles, ends exclusive.
    fill : {"black", "grey", "white"}
        What the redacted blocks become.

    Returns
    -------
    bytes
        The stream with the 8x8 blocks (whole MCUs where chroma is subsampled) that ``boxes``
        touch replaced by flat ``fill`` blocks; every other block keeps its coefficients exactly
        (see :mod:`medcloak.pixels.jpeg_redact`).

    Raises
    ------
    UnsupportedJpegError
        A coding process that cannot be redacted so (progressive, arithmetic, lossless, ...).
    """
    from .pixels.jpeg_redact import redact_jpeg as _redact

    return _redact(data, boxes, fill)


def detect_text(image: Any, *, photometric: str | None = None,
                bits_stored: int | None = None) -> list[tuple[int, int, int, int]]:
    """Find the lines of text burned into a frame.

    Parameters
    ----------
    image : array
        A 2-D grey frame of stored values (uint8, uint16, int16, ...: any bit depth, MONOCHROME1
        or MONOCHROME2) or an H x W x 3 RGB frame.
    photometric : str, optional
        The frame's Photometric Interpretation (both bright and dark text are searched, so
        MONOCHROME1 needs no inversion).
    bits_stored : int, optional
        Bits Stored of a DICOM frame: higher bits are ignored.

    Returns
    -------
    list of (x0, y0, x1, y1)
        One box per line of text (horizontal or turned by 90 degrees), slightly padded, ends
        exclusive (see :mod:`medcloak.pixels.text`).
    """
    from .pixels.text import detect_text as _detect

    return _detect(image, photometric=photometric, bits_stored=bits_stored)


def deidentify(
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
    on_outcome: Callable[[Outcome], None] | None = None,
    deface_fill: str = "background",
    deface_ears: bool = False,
    follow_links: bool = False,
    ocr_safe: str | Path | None = None,
    max_object_size: int | None = None,
    max_expansion: float = MAX_RATIO,
    object_timeout: float = TIMEOUT,
    k_anonymity: int | None = None,
    dicomdir: bool = False,
) -> RunSummary:
    """De-identify ``inputs`` into the release folder ``out``: what ``medcloak run`` does.

    Parameters
    ----------
    inputs : iterable of str or Path
        Files and folders to de-identify (folders are walked).
    out : str or Path
        The release folder: new or empty, unless ``resume`` or ``overwrite``.
    audit : str or Path, optional
        The private audit folder (manifest, identifier maps, run log); default ``OUT.audit``
        beside ``out``. Never share it.
    secret_file : str or Path, optional
        The site key for every keyed pseudonym (at least 16 bytes). Default: ``secret.key`` in the
        audit folder, made on the first run and reused by later runs into the same audit folder.
    profile : str or Path, optional
        ``"basic"`` (the default), ``"tcia-private"`` or a site override ``.toml`` file.
    options : iterable of str
        PS3.15 options by name (see :func:`load_profile`).
    workers : int
        Worker processes on this machine. The default, 1, runs everything in the calling
        process; the command's default is the machine's cores. The API does not start worker
        processes unasked: they are spawned, which needs the calling script's work under
        ``if __name__ == "__main__":``, and a library call inside a notebook, a service or a Dask
        task should not take every core. Pass ``workers=os.cpu_count()`` for the command's
        behaviour: objects are done in this process at once, and worker processes are started in
        the background only when the work left proves worth it.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:8786``) whose workers do the work.
    client : distributed.Client, optional
        A Dask client the caller owns, instead of ``workers`` or ``scheduler``.
    dry_run : bool
        Print the plan's summary and write nothing (refusing what the run would refuse).
    regions : str or Path, optional
        Region templates (``.toml``) for the ``clean-pixel-data`` option, whose boxes are added to
        the burned-in text it finds (not required: the option scans without them).
    ocr_safe : str or Path, optional
        A site's safe annotations (``.toml``, see ``docs/ocr.md``): with the ``ocr`` extra, boxes
        whose text reads, in whole and confidently, as these are left unredacted.
    resume : bool
        Continue an interrupted run into the same release (same profile, options and secret).
    overwrite : bool
        Replace the medcloak release in ``out``.
    progress : bool
        Progress on standard error.
    on_outcome : callable, optional
        Called with each :class:`medcloak.model.Outcome` as it is recorded.
    deface_fill : {"background", "noise"}
        What removed face voxels become.
    deface_ears : bool
        Remove the ears too when defacing.
    follow_links : bool
        Follow symbolic links to files outside the inputs too (links whose targets lie inside
        the inputs are always followed, each target processed once).
    max_object_size : int, optional
        Bytes one object may declare (pixels, voxels, inflated data); beyond, it is quarantined
        before anything is allocated. Default: a worker's share of the machine's memory (see
        ``docs/operations.md``); 0: no limit.
    max_expansion : float
        Bytes compressed data (gzip, deflate) may inflate to per stored byte, once it inflates
        beyond 1 GB (below, only ``max_object_size`` applies); 0: no limit.
    object_timeout : float
        Seconds one object may take before it is stopped and quarantined; 0: no limit.
    k_anonymity : int, optional
        K (at least 2): generalise the patient characteristics the profile keeps (age to bands,
        size and weight to ranges, suppression as a last resort) until every patient is in a
        class of at least K patients; documented in the release (see :mod:`medcloak.generalise`).
    dicomdir : bool
        Write a DICOMDIR for the release (for media), from the released files; DICOM objects
        get ISO 9660 names (see :mod:`medcloak.dicomdir`).

    Returns
    -------
    RunSummary
        Counts of the whole release (``ok``, ``quarantined``, ``skipped``; resumed objects
        included) and ``exit_status``, the command's exit status.

    Raises
    ------
    UsageError, ProfileError
        The call is refused before anything is written (e.g. a release folder that is not empty,
        a secret file that does not exist, inputs that hold no file).
    RunError
        The run cannot go on (the release cannot be written, the cluster went away): every
        object done so far is recorded; call again with ``resume=True``.
    KeyboardInterrupt
        Ctrl-C: the objects in progress were finished and recorded first (a second Ctrl-C stops
        at once); call again with ``resume=True``.
    """
    from .engine import run

    return run(
        inputs, out, audit=audit, secret_file=secret_file, profile=profile, options=options, workers=workers,
        scheduler=scheduler, client=client, dry_run=dry_run, regions=regions, resume=resume, overwrite=overwrite,
        progress=progress, on_outcome=on_outcome, deface_fill=deface_fill, deface_ears=deface_ears,
        follow_links=follow_links, ocr_safe=ocr_safe, max_object_size=max_object_size,
        max_expansion=max_expansion, object_timeout=object_timeout, k_anonymity=k_anonymity,
        dicomdir=dicomdir,
    )


def review_report(
    release: str | Path,
    *,
    audit: str | Path | None = None,
    out: str | Path | None = None,
    k: int = 5,
    quasi_identifiers: Iterable[str] | None = None,
    sensitive: str | None = None,
) -> Path:
    """Write the curator's review report of a release: what ``medcloak report`` does.

    Parameters
    ----------
    release : str or Path
        A release folder written by :func:`deidentify`.
    audit : str or Path, optional
        Its private audit folder; default ``RELEASE.audit`` beside it.
    out : str or Path, optional
        The report folder; default ``report`` in the audit folder. Never inside the release; an
        earlier report there is replaced.
    k : int
        The k of the k-anonymity check.
    quasi_identifiers : iterable of str, optional
        The quasi-identifiers by keyword (default:
        :data:`medcloak.review_record.QUASI_IDENTIFIERS` that the release keeps).
    sensitive : str, optional
        The attribute whose l-diversity is measured.

    Returns
    -------
    Path
        The report's ``index.html`` (the folder and its files are readable by their owner only).

    Raises
    ------
    UsageError
        Not a medcloak release, an audit folder without a manifest, a report folder inside the
        release or holding something other than an earlier report (nothing is written).
    IncompleteReportError
        The page was written but some sections could not be built (see ``exc.path``).
    """
    from .report import build_report, open_release

    ctx = open_release(Path(release), Path(audit) if audit is not None else None,
                       Path(out) if out is not None else None, k=k,
                       quasi=tuple(quasi_identifiers) if quasi_identifiers else None, sensitive=sensitive)
    index = build_report(ctx)
    if ctx.failed:
        raise IncompleteReportError(
            f"the report is incomplete: {len(ctx.failed)} section(s) could not be built ({', '.join(sorted(ctx.failed))})",
            str(index), tuple(sorted(ctx.failed)))
    return index


__all__ = [
    "CorruptInputError",
    "DeidentificationError",
    "IncompleteReportError",
    "MedcloakError",
    "MissingDependencyError",
    "ProfileError",
    "SkippedObject",
    "UnsupportedInputError",
    "UnsupportedJpegError",
    "UsageError",
    "VerificationError",
    "__version__",
    "deidentify",
    "detect_text",
    "load_profile",
    "redact_jpeg",
    "review_report",
    "strip_jpeg_metadata",
]
