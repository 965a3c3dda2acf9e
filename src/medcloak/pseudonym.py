"""Keyed, stateless pseudonyms.

Every replacement is an HMAC-SHA256 of the original value under the site secret, with a purpose
label in the message so that one value gives unrelated pseudonyms for unrelated purposes. Any
process on any machine holding the same secret gives the same replacement; no map is shared.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .errors import ProfileError

#: Dates move by a whole number of days in [-MAX_DAYS, -MIN_DAYS] or [MIN_DAYS, MAX_DAYS].
MIN_DAYS = 365
MAX_DAYS = 3652
MIN_SECRET_BYTES = 16


def new_secret() -> bytes:
    """A fresh random secret, as written to ``secret.key`` when none is given."""
    return secrets.token_hex(32).encode("ascii")


def read_secret(path: Path, what: str | None = None) -> bytes:
    """Read a secret file; surrounding white space is not part of the key. Errors name the
    secret as ``what`` (default: the file's path)."""
    what = what or f"the secret file {path}"
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ProfileError(f"{what} cannot be read ({exc.strerror})") from None
    if len(data) < MIN_SECRET_BYTES:
        raise ProfileError(f"{what} must hold at least {MIN_SECRET_BYTES} bytes")
    return data


@dataclass(frozen=True)
class Keyring:
    """Derives every pseudonym of a run from one secret.

    Examples
    --------
    >>> k = Keyring(b"0123456789abcdef0123")
    >>> k.uid("1.2.3") == k.uid("1.2.3") and k.uid("1.2.3").startswith("2.25.")
    True
    """

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ProfileError(f"the secret must hold at least {MIN_SECRET_BYTES} bytes")

    def digest(self, purpose: str, value: str) -> bytes:
        return _digest(self.secret, purpose, value)

    def uid(self, original: str) -> str:
        """A ``2.25.`` UID (at most 44 characters) for a UID that is not of the standard's registry."""
        number = int.from_bytes(self.digest("uid", original.strip())[:16], "big")
        return f"2.25.{number}"

    def token(self, purpose: str, value: str, length: int = 16) -> str:
        """A short lower-case base32 token, for file and folder names."""
        raw = base64.b32encode(self.digest(purpose, value)).decode("ascii").lower()
        return raw[:length]

    def patient_id(self, identity: str) -> str:
        """Patient ID pseudonym (valid LO): ``MC`` and 14 upper-case base32 characters."""
        return "MC" + self.token("patient", identity, 14).upper()

    def patient_name(self, identity: str) -> str:
        """Patient's Name pseudonym (valid PN): the pseudonymous ID as family name."""
        return self.patient_id(identity)

    def date_offset(self, identity: str) -> tuple[int, int]:
        """One shift per patient: ``(days, seconds)``, days never zero, seconds in [0, 86400)."""
        d = self.digest("date-offset", identity)
        span = MAX_DAYS - MIN_DAYS + 1
        days = MIN_DAYS + int.from_bytes(d[:4], "big") % span
        if d[4] & 1:
            days = -days
        seconds = int.from_bytes(d[5:9], "big") % 86400
        return days, seconds


@lru_cache(maxsize=1 << 16)
def _digest(secret: bytes, purpose: str, value: str) -> bytes:
    msg = purpose.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogateescape")
    return hmac.new(secret, msg, hashlib.sha256).digest()
