"""The one error hierarchy of medcloak.

Every error raised on purpose derives from :class:`MedcloakError` and, where one fits, from the
matching built-in, so callers can catch either by type.
"""

from __future__ import annotations


class MedcloakError(Exception):
    """Base of every error medcloak raises on purpose."""


class UnsupportedInputError(MedcloakError, ValueError):
    """The input is of a kind medcloak does not de-identify (not DICOM, a media directory, ...)."""


class UnsupportedJpegError(UnsupportedInputError):
    """A JPEG coding process that cannot be redacted in the compressed domain (progressive,
    arithmetic, lossless, hierarchical, multi-scan, DNL)."""


class CorruptInputError(MedcloakError, ValueError):
    """The input claims a format but is truncated or inconsistent (e.g. Pixel Data too short)."""


class ProfileError(MedcloakError, ValueError):
    """A profile, option or site override is invalid."""


class MissingDependencyError(MedcloakError, ImportError):
    """An optional package needed for this input or option is not installed."""


class DeidentificationError(MedcloakError, ValueError):
    """An object could not be fully de-identified under the profile (it is quarantined)."""


class VerificationError(MedcloakError, ValueError):
    """An output still carries an identifier or breaks the profile's promises."""


class UsageError(MedcloakError, ValueError):
    """The command line or API call is malformed."""


class SkippedObject(UnsupportedInputError):
    """The object is deliberately not released (a media directory, a duplicate SOP instance);
    recorded as ``skipped`` with this reason."""


class DuplicateObject(SkippedObject):
    """Another input object is already released under the same name with other content (the same
    SOP Instance UID). ``relpath`` names the contested output; the run settles who keeps it."""

    def __init__(self, message: str, relpath: str, digest: str = "", rank: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.relpath = relpath
        self.digest = digest  # SHA-256 of the content this object would have released
        self.rank = rank  # how good a copy this object is (lowest best), to settle who keeps it

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (DuplicateObject, (str(self), self.relpath, self.digest, self.rank))


class RunError(MedcloakError):
    """The run cannot go on (not the fault of one object): it stops cleanly, with every object
    done so far recorded, and can be continued with ``--resume``."""


class OutputError(RunError, OSError):
    """The release or the audit cannot be written (disk full, read-only, no permission): not a
    fault of one object, so the run stops cleanly instead of quarantining everything."""


class ClusterError(RunError):
    """A batch could not be run on the Dask cluster (its workers kept dying on it, or the
    scheduler went away), or no Dask scheduler answers at the address given (then nothing is
    written)."""


class LimitError(DeidentificationError):
    """An object would cost more than a limit of the run allows (its declared size against the
    file's own size or the per-object ceiling, an expansion ratio, the time per object): it is
    quarantined, with a reason that names the limit and how to raise it, before the cost is paid."""


class IncompleteReportError(MedcloakError):
    """The review report was written, but some of its sections could not be built (the page shows
    an error box for each): a release must not be signed off on it. ``path`` is the page,
    ``sections`` the keys of the sections that failed."""

    def __init__(self, message: str, path: str = "", sections: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path
        self.sections = sections

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (IncompleteReportError, (str(self), self.path, self.sections))
