"""The private audit folder: manifest, identifier maps, secret, run record and log. Never to be
shared: the folder is made readable by its owner only, and so is every file in it.

``manifest.jsonl`` gets one line per input object as soon as the object is complete (its output
written, renamed and made durable, a group at a time: see :mod:`medcloak.durable`), so a run killed
at any point leaves a manifest that says exactly what was done. At the end of a run the manifest is compacted to the last line per input, and the
identifier maps are rebuilt from it: a resumed run ends with the same audit as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import ProfileError
from .model import Outcome, RunSummary
from .pseudonym import new_secret, read_secret

SECRET_NAME = "secret.key"
MANIFEST = "manifest.jsonl"
RUN_RECORD = "run.json"

log = logging.getLogger("medcloak")


def default_audit_dir(out: Path) -> Path:
    return out.parent / (out.name + ".audit")


def make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def open_private(path: Path, mode: str = "w") -> IO[str]:
    """A text file readable and writable by its owner only (created so, never widened)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8", newline="")


def load_secret(audit: Path, secret_file: Path | None) -> tuple[bytes, bool]:
    """The run's key, read without writing anything: the given file, or ``secret.key`` in the
    audit folder; when neither exists, a new random key that :func:`save_secret` stores once the
    audit folder is made. Returns (key, whether it is new). A secret file that cannot be used
    raises :class:`ProfileError` naming it; one that other users can read gets a warning on
    standard error."""
    if secret_file is not None:
        try:
            mode = os.stat(secret_file).st_mode
        except FileNotFoundError:
            raise ProfileError(f"the secret file {secret_file} does not exist") from None
        except OSError as exc:
            raise ProfileError(f"the secret file {secret_file} cannot be read ({exc.strerror})") from None
        if not stat.S_ISREG(mode):
            raise ProfileError(f"the secret file {secret_file} cannot be read (not a regular file)")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            print("medcloak: warning: the secret file can be read by other users (chmod 600 it)", file=sys.stderr)
        return read_secret(secret_file), False
    path = audit / SECRET_NAME
    if path.exists():
        return read_secret(path, f"the audit folder's {SECRET_NAME}"), False
    return new_secret(), True


def save_secret(audit: Path, secret: bytes) -> None:
    """Store a new key as ``secret.key`` in the audit folder (never over an existing one)."""
    fd = os.open(audit / SECRET_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)


def secret_fingerprint(secret: bytes) -> str:
    """A keyed fingerprint that tells whether two runs used the same secret, revealing nothing."""
    import hmac

    return hmac.new(secret, b"medcloak run fingerprint", hashlib.sha256).hexdigest()[:16]


def manifest_lines(folder: Path) -> Iterator[dict[str, Any]]:
    """The manifest's lines one at a time, in the file's order (a line cut short by a kill is
    skipped); nothing when there is no manifest."""
    path = folder / MANIFEST
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for raw in fh:
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "input" in entry:
                yield entry


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """The last manifest line of each input (a line cut short by a kill is ignored)."""
    return {entry["input"]: entry for entry in manifest_lines(folder)}


def intact(out: Path, entry: dict[str, Any]) -> bool:
    """Whether every output of a manifest line exists with the recorded content."""
    outputs, digests = entry.get("outputs", []), entry.get("digests", [])
    if entry.get("status") != "ok" or not outputs or len(outputs) != len(digests):
        return False
    for rel, digest in zip(outputs, digests):
        try:
            data = (out / rel).read_bytes()
        except OSError:
            return False
        if hashlib.sha256(data).hexdigest() != digest:
            return False
    return True


class Audit:
    """Appends one manifest line per input object as outcomes arrive; compacts and writes the
    maps at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        make_private_dir(folder)
        self._manifest = open_private(folder / MANIFEST, "a")

    def record(self, outcome: Outcome) -> None:
        self.record_all([outcome])

    def record_all(self, outcomes: list[Outcome]) -> None:
        """One line per outcome, written together (the objects must be durable already)."""
        if outcomes:
            self._manifest.write("".join(self._line(o) for o in outcomes))
            self._manifest.flush()

    @staticmethod
    def _line(outcome: Outcome) -> str:
        line = {
            "input": outcome.source,
            "id": outcome.object_id,
            "status": outcome.status,
            "outputs": list(outcome.outputs),
            "digests": list(outcome.digests),
            "reason": outcome.reason,
            "uids": [list(p) for p in outcome.uid_pairs],
            "patient": list(outcome.patient_pair) if outcome.patient_pair else None,
            "actions": dict(outcome.actions),
        }
        if outcome.conflict:
            line["conflict"] = outcome.conflict
        if outcome.rank:
            line["rank"] = list(outcome.rank)
        if outcome.review:
            line["review"] = outcome.review
        if outcome.format:
            line["format"] = outcome.format
        return json.dumps(line, sort_keys=True) + "\n"

    def close(self) -> RunSummary:
        """Compact the manifest, rebuild the maps; the summary of the whole release."""
        self._manifest.close()
        lines = read_manifest(self.folder)
        summary = RunSummary()
        uids: dict[str, str] = {}
        patients: dict[str, str] = {}
        buf = io.StringIO()
        for key in sorted(lines):
            entry = lines[key]
            buf.write(json.dumps(entry, sort_keys=True) + "\n")
            status = entry.get("status")
            summary.count(str(status), str(entry.get("reason", "")), entry.get("actions"))
            if status == "ok":
                uids.update((a, b) for a, b in entry.get("uids", []))
                if entry.get("patient"):
                    patients[entry["patient"][0]] = entry["patient"][1]
        tmp = self.folder / (MANIFEST + ".tmp")
        with open_private(tmp) as fh:
            fh.write(buf.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / MANIFEST)
        for name, pairs in (("uid_map.csv", uids), ("patient_map.csv", patients)):
            with open_private(self.folder / name) as fh:
                writer = csv.writer(fh)
                writer.writerow(["id_old", "id_new"])
                for old in sorted(pairs):
                    writer.writerow([old, pairs[old]])
        return summary
