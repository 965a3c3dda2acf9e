"""A small release and audit written directly (documentation, run record, manifest lines with review
records made by :func:`medcloak.review_record.record`), for the report's tests: no run is needed,
and every count is known."""

from __future__ import annotations

import json
from pathlib import Path

from medcloak.review_record import record

PROFILE = {
    "method_codes": [{"code": "113100", "meaning": "Basic Application Confidentiality Profile", "scheme": "DCM"}],
    "options": ["retain-patient-characteristics"], "profile": "basic", "site_overrides": {},
    "site_overrides_sha256": None, "standard": "DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile",
    "standard_release": "2025b",
}
LIMITS = {"max_object_bytes": 1 << 30, "max_ratio": 200.0, "ratio_floor": 1 << 30, "timeout": 1800.0}


def write_release(root: Path, *, name: str = "release", reasons: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """``root/name`` and its audit ``root/name.audit``: 3 DICOM CT objects of two patients, one MR,
    one photo released; 2 objects quarantined (one for each of ``reasons``, or two stock ones), one
    skipped."""
    release, audit = root / name, root / f"{name}.audit"
    release.mkdir(parents=True)
    audit.mkdir(mode=0o700)
    doc = dict(PROFILE, tool={"name": "medcloak", "version": "0.1.0"}, objects_released=5)
    (release / "DEIDENTIFICATION.json").write_text(json.dumps(doc), encoding="utf-8")
    (audit / "run.json").write_text(json.dumps({"profile": PROFILE, "limits": LIMITS, "tool": "0.1.0"}),
                                    encoding="utf-8")
    lines = []

    def ok(i: int, fmt: str, **rec: object) -> None:
        lines.append({"input": f"/in/secret-name-{i}", "id": f"id{i}", "status": "ok", "format": fmt,
                      "outputs": [f"p/s/{i}.dcm"], "digests": ["0" * 64], "reason": "",
                      "review": record(fmt, **rec)})  # type: ignore[arg-type]

    ok(1, "dicom", modality="CT", patient="PA", study="S1", series="A", qi={"PatientSex": "F", "PatientAge": "041Y"})
    ok(2, "dicom", modality="CT", patient="PA", study="S1", series="A", qi={"PatientSex": "F", "PatientAge": "041Y"})
    ok(3, "dicom", modality="CT", patient="PB", study="S2", series="B", qi={"PatientSex": "M", "PatientAge": "067Y"})
    ok(4, "dicom", modality="MR", patient="PB", study="S3", series="C")
    ok(5, "photo", patient="PC")
    for i, reason in enumerate(reasons or ("not a DICOM file", "not a DICOM file"), start=6):
        lines.append({"input": f"/in/secret-name-{i}", "id": f"id{i}", "status": "quarantined", "format": "unknown",
                      "outputs": [], "digests": [], "reason": reason})
    lines.append({"input": "/in/secret-name-9", "id": "id9", "status": "skipped", "format": "dicom-dir",
                  "outputs": [], "digests": [], "reason": "a media directory (DICOMDIR) is not released"})
    (audit / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return release, audit
