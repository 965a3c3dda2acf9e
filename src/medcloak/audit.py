"""The private audit folder: manifest, identifier maps, secret and run log. Never to be shared."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import IO

from .model import Outcome
from .pseudonym import new_secret, read_secret

SECRET_NAME = "secret.key"


def default_audit_dir(out: Path) -> Path:
    return out.parent / (out.name + ".audit")


def load_or_create_secret(audit: Path, secret_file: Path | None) -> bytes:
    """The run's key: the given file, or ``secret.key`` in the audit folder (made on first use)."""
    if secret_file is not None:
        return read_secret(secret_file)
    path = audit / SECRET_NAME
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_secret())
    return read_secret(path)


class Audit:
    """Appends one manifest line per input object as outcomes arrive; writes the maps at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._manifest: IO[str] = open(folder / "manifest.jsonl", "a", encoding="utf-8")
        self._uids: dict[str, str] = {}
        self._patients: dict[str, str] = {}

    def record(self, outcome: Outcome) -> None:
        line = {
            "input": outcome.source,
            "id": outcome.object_id,
            "status": outcome.status,
            "outputs": list(outcome.outputs),
            "reason": outcome.reason,
        }
        self._manifest.write(json.dumps(line, sort_keys=True) + "\n")
        self._manifest.flush()
        if outcome.status == "ok":
            self._uids.update(outcome.uid_pairs)
            if outcome.patient_pair is not None:
                self._patients[outcome.patient_pair[0]] = outcome.patient_pair[1]

    def close(self) -> None:
        self._manifest.close()
        for name, pairs in (("uid_map.csv", self._uids), ("patient_map.csv", self._patients)):
            path = self.folder / name
            existing: dict[str, str] = {}
            if path.exists():  # a later run into the same audit folder extends the maps
                with path.open(newline="", encoding="utf-8") as fh:
                    existing = {r["id_old"]: r["id_new"] for r in csv.DictReader(fh)}
            existing.update(pairs)
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["id_old", "id_new"])
                for old in sorted(existing):
                    writer.writerow([old, existing[old]])
