"""Scale and safety: local worker processes, a real dask.distributed cluster (local processes, and a
scheduler and workers started as separate processes on loopback), a worker killed mid-run, an
object that kills its worker, the command killed with
SIGKILL and resumed, an output disk that is full or read-only, symbolic links, audit permissions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SECRET, base_dataset, pydicom_test_files

from medcloak.cli import main
from medcloak.discover import discover
from medcloak.engine import run
from medcloak.errors import OutputError, UsageError


def tree(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file below ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def manifest(audit: Path) -> list[dict]:
    return [json.loads(line) for line in (audit / "manifest.jsonl").read_text().splitlines()]


def make_series(folder: Path, count: int, patients: int = 7) -> Path:
    """``count`` small CT objects over a few patients, studies and series."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        p = i % patients
        ds = base_dataset(f"1.2.826.0.1.3680043.2.1143.9.{i}", f"1.2.826.0.1.3680043.2.1143.8.{p}",
                          f"1.2.826.0.1.3680043.2.1143.7.{p}.{i % 3}", patient=f"PATIENT{p:03d}")
        ds.PatientName = f"Surname{p}^Given"
        ds.save_as(folder / f"Surname{p}_{i:04d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Every pydicom test file (broken ones and duplicate SOP Instance UIDs included), a series of
    generated objects, and a photograph: enough for several batches on every executor."""
    root = tmp_path_factory.mktemp("scale")
    src = root / "in"
    shutil.copytree(pydicom_test_files(), src / "pydicom")
    make_series(src / "series", 120)
    (src / "photo.jpg").write_bytes(b"\xff\xd8\xff\xfe\x00\x06note\xff\xd9")
    key = root / "key"
    key.write_bytes(SECRET)
    os.chmod(key, 0o600)
    return root


@pytest.fixture(scope="module")
def inline_release(corpus) -> Path:
    out = corpus / "inline"
    run([corpus / "in"], out, secret_file=corpus / "key", workers=1)
    return out


def test_discovery_streams(tmp_path) -> None:
    make_series(tmp_path / "in" / "a", 3)
    stream = discover([tmp_path / "in", tmp_path / "in" / "a"])  # nested input walked once
    assert iter(stream) is stream and not isinstance(stream, list)
    sources = list(stream)
    assert len(sources) == 3 and {s.format for s in sources} == {"dicom"}


@pytest.fixture
def workers_from_the_start(monkeypatch):
    """Several workers are worker processes from the first object on (by default, the objects are
    done in this process until the run proves long enough for them)."""
    from medcloak import executors

    monkeypatch.setattr(executors, "make_executor",
                        lambda workers, scheduler, client: executors.Local(workers) if workers > 1 else executors.Inline())


def test_local_workers_give_the_same_release(corpus, inline_release, tmp_path, workers_from_the_start) -> None:
    out = tmp_path / "two"
    summary = run([corpus / "in"], out, secret_file=corpus / "key", workers=2)
    assert tree(out) == tree(inline_release)
    assert summary.ok > 100 and summary.quarantined > 0
    compare = lambda audit: sorted((e["input"], e["status"], tuple(e["outputs"])) for e in manifest(audit))  # noqa: E731
    assert compare(tmp_path / "two.audit") == compare(corpus / "inline.audit")
    assert (tmp_path / "two.audit" / "uid_map.csv").read_bytes() == (corpus / "inline.audit" / "uid_map.csv").read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def remote_cluster():
    """A scheduler and two workers, each its own process, on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--nworkers", "1", "--dashboard-address", ":0"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_remote_scheduler_gives_the_same_release(corpus, inline_release, remote_cluster, tmp_path) -> None:
    out = tmp_path / "remote"
    code = main(["run", str(corpus / "in"), "--out", str(out), "--secret-file", str(corpus / "key"),
                 "--scheduler", remote_cluster, "--quiet"])
    assert code == 1  # the broken pydicom files are quarantined, as inline
    assert tree(out) == tree(inline_release)


def test_worker_killed_during_a_run(corpus, inline_release, tmp_path) -> None:
    from distributed import Client, LocalCluster

    # no dashboard, and no fixed port (8787 may be taken by any other process)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        seen = []

        def kill_one(outcome) -> None:  # type: ignore[no-untyped-def]
            seen.append(outcome)
            if len(seen) == 5:
                os.kill(pids[0], signal.SIGKILL)

        out = tmp_path / "killed"
        summary = run([corpus / "in"], out, secret_file=corpus / "key", client=client, on_outcome=kill_one)
        assert not any(pid_alive(p) for p in pids[:1])
    inputs = sorted(str(p.resolve()) for p in (corpus / "in").rglob("*") if p.is_file())
    rows = manifest(tmp_path / "killed.audit")
    assert sorted(r["input"] for r in rows) == inputs  # every input exactly once
    assert summary.ok + summary.quarantined + summary.skipped == len(inputs)
    assert tree(out) == tree(inline_release)  # no partial file, nothing lost


POISON = '''"""A worker preload: the object whose name ends in the text of $MEDCLOAK_TEST_POISON is done,
then its worker ends at once (its file is in the release, its outcome never comes back); every
worker notes its data limit in a file of its own in $MEDCLOAK_TEST_NOTES."""
import os
import resource
from pathlib import Path

import medcloak.engine as engine


def setup():
    real = engine.process_task

    def process_task(task, job):
        notes = Path(os.environ["MEDCLOAK_TEST_NOTES"])
        (notes / str(os.getpid())).write_text(str(resource.getrlimit(resource.RLIMIT_DATA)[0]))
        outcomes = real(task, job)
        if task.source.path.endswith(os.environ["MEDCLOAK_TEST_POISON"]):
            os._exit(3)
        return outcomes

    engine.process_task = process_task
'''


@pytest.fixture
def preload(tmp_path, monkeypatch):
    """Writes a worker preload module and has the workers of :class:`medcloak.pool.Pool` import it."""
    from medcloak import pool

    def use(name: str, text: str) -> None:
        (tmp_path / f"{name}.py").write_text(text)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(pool.Pool, "preload", (*pool.Pool.preload, name))

    return use


def test_a_pool_worker_killed_during_a_run(corpus, inline_release, tmp_path, monkeypatch) -> None:
    """A worker process killed in the middle of a run: another one is started, its batches are
    done again, and the release is the inline one, every object recorded once."""
    from medcloak import executors

    made: list = []
    monkeypatch.setattr(executors, "make_executor",
                        lambda workers, scheduler, client: made.append(executors.Local(workers)) or made[-1])
    killed = []

    def kill_one(outcome) -> None:  # type: ignore[no-untyped-def]
        if not killed:  # the first outcome came from a worker, and both have more batches
            pid = made[0].pool._workers[0].process.pid
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    out = tmp_path / "killed"
    summary = run([corpus / "in"], out, secret_file=corpus / "key", workers=2, on_outcome=kill_one)
    assert killed and not pid_alive(killed[0])
    inputs = sorted(str(p.resolve()) for p in (corpus / "in").rglob("*") if p.is_file())
    rows = manifest(tmp_path / "killed.audit")
    assert sorted(r["input"] for r in rows) == inputs  # every input exactly once
    assert summary.ok + summary.quarantined + summary.skipped == len(inputs)
    assert tree(out) == tree(inline_release)  # no partial file, nothing lost
    assert "a worker process ended (killed by SIGKILL)" in (tmp_path / "killed.audit" / "run.log").read_text()
    assert workers_left() == []


def test_an_object_that_kills_its_worker_is_quarantined_and_the_run_goes_on(
        tmp_path, secret_file, preload, workers_from_the_start, monkeypatch) -> None:
    """The worker doing one object ends each time, after placing its file: the object is
    quarantined with the reason, its file is removed from the release, every other object is
    released as inline; and each worker's data is held to its share of the machine's memory."""
    from medcloak.pool import _machine_memory

    src = make_series(tmp_path / "in", 40)
    notes = tmp_path / "notes"
    notes.mkdir()
    monkeypatch.setenv("MEDCLOAK_TEST_POISON", "_0007.dcm")
    monkeypatch.setenv("MEDCLOAK_TEST_NOTES", str(notes))
    preload("medcloak_test_poison", POISON)
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=2)
    assert summary.ok == 39 and summary.quarantined == 1
    rows = {Path(r["input"]).name: r for r in manifest(tmp_path / "out.audit")}
    bad = rows["Surname0_0007.dcm"]
    assert bad["status"] == "quarantined" and "worker process ended twice" in bad["reason"], bad
    assert "exit code 3" in bad["reason"]
    run([src], tmp_path / "inline", secret_file=secret_file, workers=1)
    expected = tree(tmp_path / "inline")
    inline_rows = {Path(r["input"]).name: r for r in manifest(tmp_path / "inline.audit")}
    for output in inline_rows["Surname0_0007.dcm"]["outputs"]:
        del expected[output]
    documentation = [k for k in expected if "/" not in k]  # its counts differ: one object fewer
    got = tree(tmp_path / "out")
    assert {k: v for k, v in got.items() if k not in documentation} == \
        {k: v for k, v in expected.items() if k not in documentation}
    assert workers_left() == []
    limits = [int(f.read_text()) for f in notes.iterdir()]
    assert len(limits) >= 3  # the first worker, and two started after it ended
    assert all(_machine_memory() // 2 <= limit < _machine_memory() for limit in limits), limits


def test_idle_workers_end_with_the_process_that_started_them(tmp_path) -> None:
    """A process that started worker processes is killed while they wait for work: each of them
    ends within moments (its pipe closed), none is left behind."""
    psutil = pytest.importorskip("psutil")
    code = ("import os, signal, sys; from medcloak.pool import Pool; pool = Pool(2, job=None).start(); "
            "pool.ended.wait(); assert not pool.error, pool.error; "
            "print(' '.join(str(w.process.pid) for w in pool._workers), flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    src = Path(__file__).resolve().parents[1] / "src"
    said = tmp_path / "pids"
    with said.open("w") as fh:  # a file, not a pipe: a worker left behind would hold a pipe open
        done = subprocess.run([sys.executable, "-c", code], stdout=fh, stderr=subprocess.DEVNULL, timeout=120,
                              env=dict(os.environ, PYTHONPATH=str(src)))
    assert done.returncode == -signal.SIGKILL
    pids = [int(p) for p in said.read_text().split()]
    assert len(pids) == 2
    workers = []
    for pid in pids:
        try:
            workers.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(workers, timeout=20)
    for process in alive:
        process.kill()
    assert alive == []


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_then_resume(tmp_path) -> None:
    src = make_series(tmp_path / "in", 400)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    os.chmod(key, 0o600)
    reference = tmp_path / "reference"
    run([src], reference, secret_file=key)
    out, audit = tmp_path / "out", tmp_path / "out.audit"
    cmd = [sys.executable, "-m", "medcloak", "run", str(src), "--out", str(out), "--secret-file", str(key),
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if (audit / "manifest.jsonl").exists() and len((audit / "manifest.jsonl").read_bytes().splitlines()) >= 40:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len((audit / "manifest.jsonl").read_bytes().splitlines())
    assert 40 <= done_before < 400, "the run was not killed midway"
    # a run into the non-empty release needs --resume (or --overwrite)
    assert main(["run", str(src), "--out", str(out), "--secret-file", str(key), "--quiet"]) == 2
    # damage one output already recorded: --resume must redo it
    first = json.loads((audit / "manifest.jsonl").read_text().splitlines()[0])
    (out / first["outputs"][0]).write_bytes(b"damaged")
    assert main(["run", str(src), "--out", str(out), "--secret-file", str(key), "--resume", "--quiet",
                 "--workers", "1"]) == 0
    rows = manifest(audit)
    assert sorted(r["input"] for r in rows) == sorted(str(p.resolve()) for p in src.iterdir())
    assert all(r["status"] == "ok" for r in rows)
    assert tree(out) == tree(reference)
    assert not list(out.rglob("*.part")) and not (out / ".medcloak-staging").exists()
    assert (audit / "uid_map.csv").read_bytes() == (tmp_path / "reference.audit" / "uid_map.csv").read_bytes()
    # resuming a finished run redoes nothing and changes nothing
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")}
    assert main(["run", str(src), "--out", str(out), "--secret-file", str(key), "--resume", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.dcm")} == stamp
    # other options than the run being resumed: refused
    assert main(["run", str(src), "--out", str(out), "--secret-file", str(key), "--resume", "--quiet",
                 "--option", "retain-uids"]) == 2
    # --overwrite replaces the release
    assert main(["run", str(src), "--out", str(out), "--secret-file", str(key), "--overwrite", "--quiet",
                 "--workers", "1"]) == 0
    assert tree(out) == tree(reference)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _input_digests(src: Path) -> dict[str, str]:
    return tree(src)


def test_full_disk_stops_cleanly(tmp_path, capsys) -> None:
    src = make_series(tmp_path / "in", 60)
    before = _input_digests(src)
    release = tmp_path / "disk" / "out"
    if not _mount_tmpfs(tmp_path / "disk", "160k"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        key = tmp_path / "key"
        key.write_bytes(SECRET)
        os.chmod(key, 0o600)
        code = main(["run", str(src), "--out", str(release), "--audit", str(tmp_path / "audit"),
                     "--secret-file", str(key), "--workers", "1", "--quiet"])
        err = capsys.readouterr().err
        assert code == 2
        assert "No space left on device" in err and "ENOSPC" in err
        assert _input_digests(src) == before  # inputs untouched
        assert not (release / ".medcloak-staging").exists()
        rows = manifest(tmp_path / "audit")
        assert rows and all(r["status"] == "ok" for r in rows)  # what was done is recorded, nothing else
        for r in rows:
            assert (release / r["outputs"][0]).is_file()
    finally:
        _umount(tmp_path / "disk")


def test_read_only_release_stops_cleanly(tmp_path, capsys) -> None:
    src = make_series(tmp_path / "in", 3)
    disk = tmp_path / "ro"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        key = tmp_path / "key"
        key.write_bytes(SECRET)
        os.chmod(key, 0o600)
        code = main(["run", str(src), "--out", str(disk / "out"), "--audit", str(tmp_path / "audit"),
                     "--secret-file", str(key), "--quiet"])
        assert code == 2
        assert "Read-only file system" in capsys.readouterr().err
    finally:
        _umount(disk)


def test_symbolic_links_never_lead_outside(tmp_path, secret_file) -> None:
    outside = tmp_path / "elsewhere"
    make_series(outside, 1, patients=1)
    src = make_series(tmp_path / "in", 2, patients=1)
    (src / "link_out.dcm").symlink_to(next(outside.iterdir()))
    (src / "link_in.dcm").symlink_to(next(p for p in src.iterdir() if not p.is_symlink()))
    (src / "dirlink").symlink_to(outside, target_is_directory=True)
    summary = run([src], tmp_path / "out", secret_file=secret_file)
    rows = {Path(r["input"]).name: r for r in manifest(tmp_path / "out.audit")}
    assert rows["link_out.dcm"]["status"] == "skipped" and "outside" in rows["link_out.dcm"]["reason"]
    assert rows["link_in.dcm"]["status"] == "skipped"
    assert rows["dirlink"]["status"] == "skipped" and "folder" in rows["dirlink"]["reason"]
    assert summary.ok == 2 and len(rows) == 5  # the linked folder is recorded, not walked
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


def test_audit_is_private_and_secret_warning(tmp_path, capsys) -> None:
    src = make_series(tmp_path / "in", 2)
    key = tmp_path / "key"
    key.write_bytes(SECRET)
    os.chmod(key, 0o644)
    assert main(["run", str(src), "--out", str(tmp_path / "out"), "--secret-file", str(key), "--quiet"]) == 0
    assert "secret file can be read by other users" in capsys.readouterr().err
    audit = tmp_path / "out.audit"
    assert stat.S_IMODE(audit.stat().st_mode) == 0o700
    for name in ("manifest.jsonl", "uid_map.csv", "patient_map.csv", "run.log", "run.json"):
        assert stat.S_IMODE((audit / name).stat().st_mode) == 0o600, name
    # the generated secret of a run without --secret-file is private too
    assert main(["run", str(src), "--out", str(tmp_path / "o2"), "--quiet"]) == 0
    assert stat.S_IMODE((tmp_path / "o2.audit" / "secret.key").stat().st_mode) == 0o600


def test_duplicates_settled_by_input_order_not_completion(tmp_path, secret_file) -> None:
    """Two objects with one SOP Instance UID and other content: the one whose input path sorts
    first holds the name, even when the other was released first (here by an earlier run)."""
    src = tmp_path / "in"
    src.mkdir()
    a = base_dataset("1.2.3.4.5", "1.2.3.4", "1.2.3.4.1", patient="PA")
    b = base_dataset("1.2.3.4.5", "1.2.3.4", "1.2.3.4.1", patient="PA")
    pixels = bytearray(b.PixelData)
    pixels[100] ^= 0xFF  # other content that de-identification keeps
    b.PixelData = bytes(pixels)
    b.save_as(src / "b.dcm", enforce_file_format=True)
    run([src / "b.dcm"], tmp_path / "out", secret_file=secret_file)
    a.save_as(src / "a.dcm", enforce_file_format=True)
    run([src], tmp_path / "out", secret_file=secret_file, resume=True)
    rows = {Path(r["input"]).name: r for r in manifest(tmp_path / "out.audit")}
    assert rows["a.dcm"]["status"] == "ok" and rows["b.dcm"]["status"] == "skipped"
    fresh = tmp_path / "fresh"
    run([src], fresh, secret_file=secret_file)
    assert tree(tmp_path / "out") == tree(fresh)


def test_progress_lines_hold_counts_only() -> None:
    import io

    from medcloak.model import Outcome
    from medcloak.progress import Progress

    stream = io.StringIO()
    bar = Progress(stream=stream, every=0.0)
    bar.found, bar.discovery_done = 3, True
    bar.add(Outcome("/secret/Surname_Given.dcm", "abc", "ok", bytes_in=2_000_000))
    bar.add(Outcome("/secret/Other.dcm", "abd", "quarantined", bytes_in=1000))
    bar.finish()
    text = stream.getvalue()
    assert "2/3 objects" in text and "1 quarantined" in text and "MB/s" in text
    assert "Surname" not in text and "secret" not in text


def test_usage_errors(tmp_path) -> None:
    src = make_series(tmp_path / "in", 1)
    with pytest.raises(UsageError):
        run([src], tmp_path / "o", resume=True, overwrite=True)
    (tmp_path / "notrelease").mkdir()
    (tmp_path / "notrelease" / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError):
        run([src], tmp_path / "notrelease", overwrite=True)
    assert (tmp_path / "notrelease" / "precious.txt").exists()
    assert issubclass(OutputError, OSError)


# ---- the default for several workers: objects done here at once, workers from the background ------


GATE = '''"""A worker preload that holds each worker in its start until the file ``open`` appears in
$MEDCLOAK_TEST_GATE (and says, by a file of its own, that a worker waits there)."""
import os
import time
from pathlib import Path


def setup():
    gate = Path(os.environ["MEDCLOAK_TEST_GATE"])
    (gate / f"waiting-{os.getpid()}").touch()
    while not (gate / "open").exists():
        time.sleep(0.02)
'''


@pytest.fixture
def gate(tmp_path, monkeypatch, preload):
    """A folder whose file ``open`` lets the local worker processes finish their start."""
    folder = tmp_path / "gate"
    folder.mkdir()
    monkeypatch.setenv("MEDCLOAK_TEST_GATE", str(folder))
    preload("medcloak_test_gate", GATE)
    yield folder
    (folder / "open").touch()


def wait_for(condition, what: str, seconds: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.02)


def workers_left() -> list:
    """Processes this one started that still run (multiprocessing's resource tracker aside, which
    lives as long as this process)."""
    import psutil

    return [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]


@pytest.fixture
def hybrids(monkeypatch):
    """The executors the runs make (to look at them: ``yielded`` lists the input of every outcome
    an executor gave), starting their workers as soon as they can."""
    from medcloak import executors

    made = []
    real = executors.make_executor

    def capture(*args):  # type: ignore[no-untyped-def]
        executor = real(*args)
        executor.yielded = []
        inner = executor.map

        def counted(batcher, job):  # type: ignore[no-untyped-def]
            for outcomes in inner(batcher, job):
                executor.yielded.extend(o.source for o in outcomes)
                yield outcomes

        executor.map = counted
        made.append(executor)
        return executor

    monkeypatch.setattr(executors, "make_executor", capture)
    monkeypatch.setattr(executors.Hybrid, "start_seconds", 0.0)
    return made


def test_default_hands_over_to_the_workers_and_records_each_object_once(corpus, inline_release, tmp_path,
                                                                        hybrids, gate, monkeypatch) -> None:
    """The worker is held in its start until a dozen objects are done here, then joins in
    between two objects, and this process goes on as one of the two workers (the pool has
    one): the release is byte for byte the inline one, every object is processed and recorded
    once, and both the worker and this process did objects after the join."""
    here: list[str] = []  # objects done in this process
    here_after_join: list[str] = []  # of which once the worker had joined
    from medcloak import engine

    real_task = engine.process_task

    def process_here(task, job):  # type: ignore[no-untyped-def]
        if len(here) == 12:  # a dozen done here: the worker may finish its start, and is waited for
            (gate / "open").touch()
            wait_for(lambda: hybrids[0].pool is not None and hybrids[0].pool.ended.is_set(), "the workers' start")
        if hybrids[0].joined:
            here_after_join.append(task.source.path)
        here.append(task.source.path)
        return real_task(task, job)

    monkeypatch.setattr(engine, "process_task", process_here)

    out = tmp_path / "hybrid"
    summary = run([corpus / "in"], out, secret_file=corpus / "key", workers=2)
    hybrid = hybrids[0]
    assert hybrid.joined and hybrid.pool.size == 1, "the worker did not join"
    inputs = sorted(str(p.resolve()) for p in (corpus / "in").rglob("*") if p.is_file())
    assert 12 <= hybrid.inline < len(inputs)  # the worker did some
    assert here_after_join, "this process did nothing after the worker joined"
    assert sorted(hybrid.yielded) == inputs  # every object done once, none twice
    rows = manifest(tmp_path / "hybrid.audit")
    assert sorted(r["input"] for r in rows) == inputs
    assert summary.ok + summary.quarantined + summary.skipped == len(inputs)
    assert tree(out) == tree(inline_release)
    assert (tmp_path / "hybrid.audit" / "uid_map.csv").read_bytes() == \
        (corpus / "inline.audit" / "uid_map.csv").read_bytes()
    assert "1 worker process joined after" in (tmp_path / "hybrid.audit" / "run.log").read_text()
    assert "which goes on as one more" in (tmp_path / "hybrid.audit" / "run.log").read_text()
    assert workers_left() == []


def test_beyond_works_too_this_process_only_hands_out_and_records(corpus, inline_release, tmp_path, hybrids,
                                                                  monkeypatch) -> None:
    """With more local workers than :data:`WORKS_TOO`, the pool has them all and this process
    does no object once they joined (a worker would wait for its next batch meanwhile)."""
    from medcloak import executors

    monkeypatch.setattr(executors, "WORKS_TOO", 1)
    inline_at_join: list[int] = []
    real_take_over = executors.Hybrid._take_over

    def take_over(self, *args):  # type: ignore[no-untyped-def]
        inline_at_join.append(self.inline)
        return real_take_over(self, *args)

    monkeypatch.setattr(executors.Hybrid, "_take_over", take_over)
    from medcloak import engine

    real_task = engine.process_task

    def until_the_workers_are_up(task, job):  # type: ignore[no-untyped-def]
        if hybrids[0].pool is not None:
            wait_for(lambda: hybrids[0].pool.ended.is_set(), "the workers' start")
        return real_task(task, job)

    monkeypatch.setattr(engine, "process_task", until_the_workers_are_up)
    out = tmp_path / "coordinated"
    run([corpus / "in"], out, secret_file=corpus / "key", workers=2)
    hybrid = hybrids[0]
    assert hybrid.joined and hybrid.pool.size == 2
    assert inline_at_join == [hybrid.inline]
    assert tree(out) == tree(inline_release)
    assert workers_left() == []


def test_a_run_shorter_than_the_workers_start_never_waits_for_it(tmp_path, secret_file, hybrids, gate) -> None:
    """The workers are held in their warm-up for good: the run ends without them, and stops them."""
    src = make_series(tmp_path / "in", 12)
    waiting = lambda: any(gate.glob("waiting-*"))  # noqa: E731 - read twice

    def until_a_worker_waits(outcome) -> None:  # type: ignore[no-untyped-def]
        if hybrids[0].pool is not None:
            wait_for(waiting, "a worker's start")

    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=2, on_outcome=until_a_worker_waits)
    assert not (gate / "open").exists()  # so the workers never were up
    hybrid = hybrids[0]
    assert hybrid.pool is not None and waiting() and not hybrid.joined
    assert summary.ok == 12 and hybrid.inline == 12
    assert workers_left() == []
    run([src], tmp_path / "inline", secret_file=secret_file, workers=1)
    assert tree(tmp_path / "out") == tree(tmp_path / "inline")


def test_workers_that_cannot_start_leave_the_run_here(tmp_path, secret_file, hybrids, monkeypatch) -> None:
    from medcloak import pool

    def refuse(self) -> None:  # type: ignore[no-untyped-def]
        raise OSError("no process free")

    monkeypatch.setattr(pool.Pool, "_launch", refuse)
    src = make_series(tmp_path / "in", 30)
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=2)
    assert summary.ok == 30 and summary.exit_status == 0
    assert not hybrids[0].joined and hybrids[0].inline == 30
    text = (tmp_path / "out.audit" / "run.log").read_text()
    assert "the worker processes did not start (no process free): the run goes on in this process" in text
    run([src], tmp_path / "inline", secret_file=secret_file, workers=1)
    assert tree(tmp_path / "out") == tree(tmp_path / "inline")


def test_no_workers_for_a_short_run(tmp_path, secret_file, monkeypatch) -> None:
    """By default, a run whose work left is small never starts worker processes."""
    from medcloak import executors

    made = []
    real = executors.make_executor
    monkeypatch.setattr(executors, "make_executor", lambda *a: made.append(real(*a)) or made[-1])
    src = make_series(tmp_path / "in", 80)
    assert run([src], tmp_path / "out", secret_file=secret_file, workers=2).ok == 80
    assert isinstance(made[0], executors.Hybrid) and made[0].pool is None
