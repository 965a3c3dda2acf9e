"""Group commit: objects are written without a sync each, a group is made durable with one sync,
and only then are its manifest lines written; placing a file never replaces another's; a resumed
run removes what a killed run placed without recording it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import base_dataset

from medcloak import durable
from medcloak.engine import Job, run
from medcloak.executors import run_batch
from medcloak.model import Source, Task
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile


def make_objects(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        ds = base_dataset(f"1.2.826.0.1.3680043.2.1143.9.{i}", "1.2.826.0.1.3680043.2.1143.8.1",
                          f"1.2.826.0.1.3680043.2.1143.7.{i % 3}", patient="PATIENT001")
        ds.save_as(folder / f"obj_{i:04d}.dcm", enforce_file_format=True)
    return folder


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def manifest_outputs(audit: Path) -> set[str]:
    path = audit / "manifest.jsonl"
    if not path.exists():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {o for r in rows for o in r.get("outputs", [])}


@pytest.mark.parametrize("rename", [True, False])
def test_place_never_replaces(tmp_path, monkeypatch, rename) -> None:
    monkeypatch.setattr(durable, "_no_renameat2", not rename)
    (tmp_path / "a").write_bytes(b"first")
    durable.place(tmp_path / "a", tmp_path / "final")
    assert not (tmp_path / "a").exists() and (tmp_path / "final").read_bytes() == b"first"
    (tmp_path / "b").write_bytes(b"second")
    with pytest.raises(FileExistsError):
        durable.place(tmp_path / "b", tmp_path / "final")
    assert (tmp_path / "final").read_bytes() == b"first"


def test_manifest_lines_wait_for_the_group_sync(tmp_path, secret_file, monkeypatch) -> None:
    """With a group that never comes due, the one sync at the end of the run covers every object,
    and no manifest line is written before it."""
    src = make_objects(tmp_path / "in", 12)
    out, audit = tmp_path / "out", tmp_path / "out.audit"
    monkeypatch.setattr(durable, "MIN_INTERVAL", 1e9)
    monkeypatch.setattr(durable, "MAX_INTERVAL", 1e9)
    commits: list[tuple[set[str], set[str]]] = []
    real = durable.Pending.commit

    def watched(self):  # type: ignore[no-untyped-def]
        if self.files:
            pending = {Path(f).relative_to(out).as_posix() for f in self.files}
            commits.append((pending, manifest_outputs(audit)))
        return real(self)

    monkeypatch.setattr(durable.Pending, "commit", watched)
    summary = run([src], out, secret_file=secret_file, workers=1)
    assert summary.ok == 12
    assert len(commits) == 1
    pending, recorded_then = commits[0]
    assert recorded_then == set()  # nothing recorded before its sync
    assert pending == manifest_outputs(audit) and len(pending) == 12
    assert not durable.PENDING.files


def test_fsync_per_file_where_there_is_no_syncfs(tmp_path, secret_file, monkeypatch) -> None:
    src = make_objects(tmp_path / "in", 5)
    out = tmp_path / "out"
    monkeypatch.setattr(durable, "_no_syncfs", True)
    synced: list[str] = []
    real = durable._fsync_path
    monkeypatch.setattr(durable, "_fsync_path", lambda path, flags: (synced.append(path), real(path, flags))[1])
    run([src], out, secret_file=secret_file, workers=1)
    outputs = {(out / rel).as_posix() for rel in manifest_outputs(tmp_path / "out.audit")}
    assert len(outputs) == 5
    files = [p for p in synced if Path(p).is_file()]
    assert sorted(files) == sorted(outputs)  # each file once
    assert {str(Path(p).parent) for p in outputs} <= set(synced)  # and the folders of their names


def test_a_worker_batch_is_durable_before_it_returns(tmp_path, secret_file) -> None:
    src = make_objects(tmp_path / "in", 3)
    keyring = Keyring(secret_file.read_bytes())
    job = Job(load_profile(None, ()), keyring, str(tmp_path / "out"))
    (tmp_path / "out" / ".medcloak-staging").mkdir(parents=True)
    tasks = [Task(Source(str(p), "dicom", p.stat().st_size), keyring.token("object", str(p), 12))
             for p in sorted(src.iterdir())]
    before = durable.PENDING.syncs
    outcomes, work, sync = run_batch(tasks, job)
    assert [o.status for o in outcomes] == ["ok"] * 3
    assert not durable.PENDING.files and durable.PENDING.syncs == before + 1
    assert work > 0 and sync > 0


def test_resume_removes_what_a_killed_run_placed_without_recording(tmp_path, secret_file) -> None:
    """A killed run can leave files under their final names without manifest lines, and after a
    power loss such a file may hold anything (it was never synced): --resume removes it and does
    the object again, with no duplicate to settle."""
    src = make_objects(tmp_path / "in", 10)
    reference = tmp_path / "reference"
    run([src], reference, secret_file=secret_file, workers=1)
    out, audit = tmp_path / "out", tmp_path / "out.audit"
    run([src], out, secret_file=secret_file, workers=1)
    lines = (audit / "manifest.jsonl").read_text().splitlines()
    (audit / "manifest.jsonl").write_text("\n".join(lines[:6]) + "\n")  # the last four never recorded
    for line in lines[6:]:
        (out / json.loads(line)["outputs"][0]).write_bytes(b"")  # lost in a power cut
    seen = []
    run([src], out, secret_file=secret_file, workers=1, resume=True, on_outcome=seen.append)
    assert [o.status for o in seen] == ["ok"] * 4
    assert tree(out) == tree(reference)


def test_a_failed_sync_records_nothing_and_stops(tmp_path, secret_file, monkeypatch) -> None:
    """A sync that fails (EIO from write-back) stops the run: nothing of that group is recorded,
    and no later sync of the same process is trusted (it could report success for pages the
    failed one dropped) until a new run starts."""
    import errno

    from medcloak.errors import OutputError

    src = make_objects(tmp_path / "in", 6)
    calls = []

    def failing(path: str) -> bool:
        calls.append(path)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(durable, "_syncfs", failing)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="EIO"):
        run([src], out, secret_file=secret_file, workers=1)
    assert manifest_outputs(tmp_path / "out.audit") == set()
    assert not [p for p in out.rglob("*.dcm")]  # removed: never recorded
    assert durable.PENDING.failed
    with pytest.raises(OSError):
        durable.PENDING.commit()
    monkeypatch.undo()
    summary = run([src], out, secret_file=secret_file, workers=1, resume=True)
    assert summary.ok == 6 and not durable.PENDING.failed
