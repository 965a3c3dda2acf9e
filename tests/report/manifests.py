"""Manifests the report's section tests write themselves: one line per object, with a review
record made by :func:`medcloak.review_record.record`, and (optionally) the released files the
links point to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from medcloak.report import ReportContext
from medcloak.review_record import record


def entry(i: int, *, status: str = "ok", review: dict[str, Any] | None = None, **parts: Any) -> dict[str, Any]:
    """A manifest line of object ``i``, released as ``P<i%7>/S/o<i>.dcm``."""
    line: dict[str, Any] = {"input": f"/in/{i}.dcm", "id": f"obj{i}", "status": status,
                            "outputs": [f"P{i % 7}/S/o{i}.dcm"] if status == "ok" else [], "reason": ""}
    if review is None and parts:
        review = record("dicom", **parts)
    if review is not None:
        line["review"] = review
    return line


def context(root: Path, entries: Iterable[dict[str, Any]], *, files: bool = False) -> ReportContext:
    """A report context over ``root / "release"`` whose manifest holds ``entries``; with
    ``files``, every output is written as a file of the release."""
    release, audit = root / "release", root / "release.audit"
    release.mkdir(parents=True, exist_ok=True)
    audit.mkdir(parents=True, exist_ok=True)
    with (audit / "manifest.jsonl").open("w", encoding="utf-8") as fh:
        for line in entries:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
            if files:
                for rel in line.get("outputs", []):
                    (release / rel).parent.mkdir(parents=True, exist_ok=True)
                    (release / rel).write_bytes(b"released")
    return ReportContext(release, audit, audit / "report")


_REAL: dict[str, Path] = {}


def real_release(tmp_path_factory: Any) -> tuple[Path, Path]:
    """(release, audit) of a real ``medcloak run`` over pydicom's test files, pydicom-data's
    files (when installed) and data_samples, with the retain options that keep the most text,
    made once per test session: the handlers' own review records are the corpus."""
    if "release" not in _REAL:
        import os

        import pydicom.data

        from medcloak.cli import main

        root = tmp_path_factory.mktemp("real_release")
        key = root / "secret.key"
        key.write_bytes(b"report-text-secret-0123456789abcdef")
        os.chmod(key, 0o600)
        samples = Path(__file__).resolve().parents[2] / "data_samples"
        tests = Path(os.path.dirname(pydicom.data.__file__)) / "test_files"
        inputs = [str(tests), str(samples)]
        try:  # pydicom-data's files, when installed (its package is data_store)
            import data_store

            inputs.append(str(Path(data_store.__file__).parent / "data"))
        except ImportError:
            pass
        out = root / "release"
        main(["run", *inputs, "--out", str(out), "--secret-file", str(key),
              "--option", "retain-device-identity", "--option", "retain-institution-identity",
              "--option", "retain-patient-characteristics", "--option", "retain-safe-private",
              "--option", "clean-descriptors"])
        audit = root / "release.audit"
        _REAL["release"], _REAL["audit"] = out, audit
    return _REAL["release"], _REAL["audit"]
