"""The review report's page, its summary section and the ``medcloak report`` command (the page in a
real browser: tests/test_report_browser.py)."""

from __future__ import annotations

import re
import stat
import sys
import types
from pathlib import Path

import pytest
from reportdata import write_release

from medcloak import IncompleteReportError, UsageError, review_report
from medcloak.cli import main
from medcloak.report import Section, build_report, open_release

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def fake_section(monkeypatch: pytest.MonkeyPatch, key: str, build) -> None:  # type: ignore[no-untyped-def]
    """A section module ``medcloak.report.<key>`` whose ``build`` is ``build``."""
    module = types.ModuleType(f"medcloak.report.{key}")
    module.build = build  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_summary_counts_objects_formats_modalities_and_reasons(tmp_path: Path) -> None:
    release, audit = write_release(tmp_path)
    ctx = open_release(release)
    index = build_report(ctx, sections=("summary",))
    assert index == audit / "report" / "index.html"
    page = index.read_text(encoding="utf-8")
    words = text_of(page)
    for fact in ("Objects in 8", "Released 5", "Quarantined 2", "Skipped 1", "Patients released 3",
                 "Studies released 3"):
        assert fact in words
    assert "dicom 4 4 0 0" in words and "unknown 2 0 2 0" in words and "dicom-dir 1 0 0 1" in words
    assert "CT dicom 3" in words and "MR dicom 1" in words and "(none) photo 1" in words
    assert "not a DICOM file 2" in words and "a media directory (DICOMDIR) is not released 1" in words
    assert "retain-patient-characteristics" in words and "1:200" in words
    assert 'id="status"' in page and "Complete" in words and not ctx.failed
    assert "secret-name" not in page and "/in/" not in page  # input paths never shown
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_reasons_are_escaped(tmp_path: Path) -> None:
    release, _ = write_release(tmp_path, reasons=("<script>alert(1)</script> & <b>", "<img src=x>"))
    page = build_report(open_release(release), sections=("summary",)).read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in page


def test_a_section_that_fails_is_an_error_box_naming_its_type_only(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    release, _ = write_release(tmp_path)

    def boom(ctx):  # type: ignore[no-untyped-def]
        raise ValueError("Patient Jane Doe-Smith 1960")

    fake_section(monkeypatch, "boom", boom)
    ctx = open_release(release)
    page = build_report(ctx, sections=("summary", "boom", "nosuchsection")).read_text(encoding="utf-8")
    assert ctx.failed == {"boom": "ValueError", "nosuchsection": "ModuleNotFoundError"}
    assert "Jane" not in page and "1960" not in page
    box = re.search(r'<section id="boom" class="failed">.*?</section>', page, re.DOTALL)
    assert box and 'class="error"' in box.group(0) and "ValueError" in box.group(0)
    assert "Incomplete: 2 section(s)" in text_of(page)
    assert page.count('href="#') == 3  # every section in the contents, the failed ones too
    monkeypatch.setattr("medcloak.report.risk.build", boom)  # one of the page's own sections fails
    with pytest.raises(IncompleteReportError) as err:
        review_report(release, out=tmp_path / "again")  # the public API: written, but not to be signed off
    assert Path(err.value.path).is_file()


def test_a_section_listing_a_file_it_did_not_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release, _ = write_release(tmp_path)

    def pictures(ctx):  # type: ignore[no-untyped-def]
        (ctx.images / "there.png").write_bytes(b"x")
        return Section("pictures", "Pictures", "<p>two</p>", ("img/there.png", "img/missing.png"))

    fake_section(monkeypatch, "pictures", pictures)
    ctx = open_release(release)
    page = build_report(ctx, sections=("pictures",)).read_text(encoding="utf-8")
    assert ctx.failed == {"pictures": "missing files"}
    assert "1 of the 2 files this section lists are missing" in page
    ctx2 = open_release(release)
    fake_section(monkeypatch, "pictures", lambda c: Section("pictures", "Pictures", "", ("../../release/x",)))
    (release / "x").write_text("outside")
    build_report(ctx2, sections=("pictures",))
    assert ctx2.failed == {"pictures": "missing files"}  # a file outside the report folder does not count


def test_the_report_is_private_and_replaces_an_earlier_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release, audit = write_release(tmp_path)

    def pictures(ctx):  # type: ignore[no-untyped-def]
        (ctx.images / "a.png").write_bytes(b"x")
        return Section("pictures", "Pictures", "", ("img/a.png",))

    fake_section(monkeypatch, "pictures", pictures)
    build_report(open_release(release), sections=("summary", "pictures"))
    out = audit / "report"
    (out / "img" / "stale.png").write_bytes(b"old")
    build_report(open_release(release), sections=("summary", "pictures"))
    assert not (out / "img" / "stale.png").exists()
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
    assert sorted(p.name for p in release.iterdir()) == ["DEIDENTIFICATION.json"]  # nothing in the release


def test_refused_before_anything_is_written(tmp_path: Path) -> None:
    release, audit = write_release(tmp_path)
    with pytest.raises(UsageError, match="outside the release"):
        open_release(release, out=release / "report")
    with pytest.raises(UsageError, match="outside the release"):
        open_release(release, out=tmp_path)  # the release would lie inside the report folder
    with pytest.raises(UsageError, match="not a medcloak release"):
        open_release(audit, audit=audit)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="something other than a medcloak report"):
        open_release(release, out=other)
    with pytest.raises(UsageError, match="no manifest.jsonl"):
        open_release(release, audit=tmp_path / "nowhere")
    assert not (audit / "report").exists() and (other / "notes.txt").read_text() == "mine"


def test_command_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    release, audit = write_release(tmp_path)
    assert main(["report", str(release), "--out", str(release / "r")]) == 2
    assert main(["report", str(audit)]) == 2
    assert "error" in capsys.readouterr().err
    for key in ("text", "pixels", "attributes", "risk"):  # whatever exists on this branch
        fake_section(monkeypatch, key, lambda ctx, key=key: Section(key, key.title(), "<p>fine</p>"))
    assert main(["report", str(release)]) == 0
    assert f"report:      {audit / 'report' / 'index.html'}" in capsys.readouterr().out
    fake_section(monkeypatch, "risk", lambda ctx: 1 / 0)
    assert main(["report", str(release), "--k", "3"]) == 1
    assert "incomplete" in capsys.readouterr().err


def test_run_with_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rel"
    code = main(["run", str(SAMPLES / "dicom"), "--out", str(out), "--workers", "1", "--quiet", "--report"])
    index = tmp_path / "rel.audit" / "report" / "index.html"
    assert f"report:      {index}" in capsys.readouterr().out
    page = index.read_text(encoding="utf-8")
    assert code == (1 if "Incomplete" in page else 0)
    words = text_of(page)
    assert "Released 6" in words and "dicom 6 6 0 0" in words
    assert str(SAMPLES) not in page and "Sinclair" not in page


def test_a_manifest_without_review_records_says_so(tmp_path: Path) -> None:
    import json

    release, audit = write_release(tmp_path)
    manifest = audit / "manifest.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "review"}) + "\n" for x in lines))
    words = text_of(build_report(open_release(release), sections=("summary",)).read_text(encoding="utf-8"))
    assert "Patients released not recorded" in words and "Released 5" in words
