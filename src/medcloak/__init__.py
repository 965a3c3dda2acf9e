"""medcloak: de-identification of medical images for public release.

The public API is small: :func:`deidentify` runs a whole release, :func:`load_profile` builds the
effective rules, and :mod:`medcloak.errors` holds the one error hierarchy.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CorruptInputError,
    DeidentificationError,
    MedcloakError,
    MissingDependencyError,
    ProfileError,
    SkippedObject,
    UnsupportedInputError,
    UnsupportedJpegError,
    UsageError,
    VerificationError,
)


def load_profile(profile=None, options=()):  # type: ignore[no-untyped-def]
    """Build the effective profile (see :func:`medcloak.rules.profile.load_profile`)."""
    from .rules.profile import load_profile as _load

    return _load(profile, options)


def strip_jpeg_metadata(data: bytes) -> bytes:
    """A JPEG stream without APPn (but JFIF, thumbnail removed, and Adobe) and COM segments,
    entropy-coded data untouched (see :mod:`medcloak.pixels.jpeg_meta`)."""
    from .pixels.jpeg_meta import strip_jpeg_metadata as _strip

    return _strip(data)


def redact_jpeg(data: bytes, boxes, fill: str = "black") -> bytes:  # type: ignore[no-untyped-def]
    """A sequential JPEG stream with the 8x8 blocks (whole MCUs where chroma is subsampled) that
    ``boxes`` touch replaced by flat ``fill`` blocks ("black", "grey" or "white"); every other
    block keeps its coefficients exactly. Boxes are ``(x0, y0, x1, y1)`` in pixels, ends exclusive
    (see :mod:`medcloak.pixels.jpeg_redact`)."""
    from .pixels.jpeg_redact import redact_jpeg as _redact

    return _redact(data, boxes, fill)


def deidentify(inputs, out, **kwargs):  # type: ignore[no-untyped-def]
    """Run a release (see :func:`medcloak.engine.run`)."""
    from .engine import run

    return run(inputs, out, **kwargs)


__all__ = [
    "CorruptInputError",
    "DeidentificationError",
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
    "load_profile",
    "redact_jpeg",
    "strip_jpeg_metadata",
]
