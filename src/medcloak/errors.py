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
