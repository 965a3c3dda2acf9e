"""The engine's limits (issue 15): the command's options fill the job's limits and are recorded;
an object past its time is quarantined in every executor and the run goes on; an object that ends
its worker is quarantined after one retry on the local pool and on a Dask cluster, the rest of
its batch released.

Objects that hang or end their worker are made from the test's side: a module on the path of the
worker processes (the pool's preload, a Dask worker's preload) wraps the DICOM handler for inputs
whose file name says what to do; nothing in medcloak knows of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_scale import make_series, manifest, workers_left

from medcloak import executors, limits
from medcloak.cli import main
from medcloak.engine import run

FAULTS = '''"""Test faults for the DICOM handler, by the input's file name: ``spin`` loops in Python,
``slow`` takes 2 s in Python, ``block`` waits in a C call that no interruption reaches, ``die``
ends its worker process; each attempt is noted as a line of $MEDCLOAK_TEST_NOTES/<name>."""
import os
import signal
import time
from pathlib import Path


def setup():
    import medcloak.handlers.dicom as dicom
    from medcloak import pool

    pool.OVERTIME = float(os.environ.get("MEDCLOAK_TEST_OVERTIME", pool.OVERTIME))
    real = dicom.deidentify

    def deidentify(task, job):
        name = Path(task.source.path).name
        notes = os.environ.get("MEDCLOAK_TEST_NOTES")
        if notes:
            with open(Path(notes) / name, "a") as fh:
                fh.write(f"{os.getpid()}\\n")
        if "spin" in name:
            n = 0
            while True:
                n += 1
        if "slow" in name:
            started = time.monotonic()
            while time.monotonic() - started < 2:
                time.sleep(0.02)
        if "block" in name:
            time.sleep(3600)
        if "die" in name:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(task, job)

    dicom.deidentify = deidentify


def dask_setup(worker):
    """Also warm each worker (its nanny starts it afresh, cold), so that the first object it does
    alone is not taken for one past the small limit of the test by the imports it pays for."""
    from medcloak.executors import _warm

    setup()
    _warm(kernels=False)
'''


@pytest.fixture
def faults(tmp_path, monkeypatch):
    """The fault module on the path of this process and of every process it starts; attempts
    noted in ``tmp_path/notes``. Returns a function that installs it in this process."""
    folder = tmp_path / "faults"
    folder.mkdir()
    (folder / "medcloak_test_faults.py").write_text(FAULTS)
    notes = tmp_path / "notes"
    notes.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("MEDCLOAK_TEST_NOTES", str(notes))

    def here() -> None:
        import medcloak.handlers.dicom as dicom
        import medcloak_test_faults

        from medcloak.executors import _warm

        monkeypatch.setattr(dicom, "deidentify", dicom.deidentify)  # put back after the test
        medcloak_test_faults.setup()
        _warm(kernels=False)  # the imports of the first object are not counted against its small limit

    here.notes = notes  # type: ignore[attr-defined]
    return here


@pytest.fixture
def pool_with_faults(faults, monkeypatch):
    """Several workers are the pool's processes from the first object on, each with the faults."""
    from medcloak import pool

    monkeypatch.setattr(pool.Pool, "preload", (*pool.Pool.preload, "medcloak_test_faults"))
    monkeypatch.setattr(executors, "make_executor",
                        lambda workers, scheduler, client: executors.Local(workers) if workers > 1 else executors.Inline())
    return faults


def series(tmp_path: Path, count: int, bad: dict[int, str]) -> Path:
    """``count`` small CT objects; the ``bad`` ones (by index) renamed ``A<word>_<index>.dcm``
    after their fault's word, so that they come first in the walk (names sorted), in the first
    batches with batch-mates after them."""
    src = make_series(tmp_path / "in", count)
    for index, word in bad.items():
        (old,) = src.glob(f"*_{index:04d}.dcm")
        old.rename(old.with_name(f"A{word}_{index:04d}.dcm"))
    return src


def rows(audit: Path) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in manifest(audit)}


def attempts(notes: Path, name: str) -> int:
    path = notes / name
    return len(path.read_text().splitlines()) if path.exists() else 0


# ---- the options ----------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value, words", [
    ("--max-object-size", "2X", "a size such as 2G"),
    ("--max-object-size", "G", "a size such as 2G"),
    ("--max-expansion", "0.5", "a ratio of at least 1"),
    ("--max-expansion", "many", "a ratio of at least 1"),
    ("--object-timeout", "-1", "a number of seconds"),
    ("--object-timeout", "inf", "a number of seconds"),
])
def test_bad_limits_are_usage_errors(tmp_path, secret_file, capsys, option, value, words) -> None:
    src = make_series(tmp_path / "in", 1)
    code = main(["run", str(src), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file),
                 "--quiet", f"{option}={value}"])
    err = capsys.readouterr().err
    assert code == 2 and option in err and words in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.audit").exists()


def test_sizes_are_read_in_binary_units() -> None:
    assert limits.parse_size("2G") == 2 << 30
    assert limits.parse_size("500M") == 500 << 20
    assert limits.parse_size("1.5GB") == 3 << 29
    assert limits.parse_size("750MiB") == 750 << 20
    assert limits.parse_size("4096") == 4096
    assert limits.parse_size("0") == 0
    for bad in ("", "-1G", "nan", "1e400", "2X"):
        with pytest.raises(ValueError):
            limits.parse_size(bad)


def test_limits_are_current_in_every_task_and_recorded(tmp_path, secret_file, monkeypatch) -> None:
    """The options reach the readers (:func:`medcloak.limits.current` within each task) and are
    recorded in the audit's run.json and run.log; 0 turns a limit off."""
    import medcloak.handlers.dicom as dicom

    seen = []
    real = dicom.deidentify
    monkeypatch.setattr(dicom, "deidentify", lambda task, job: seen.append(limits.current()) or real(task, job))
    src = make_series(tmp_path / "in", 2)
    code = main(["run", str(src), "--out", str(tmp_path / "out"), "--secret-file", str(secret_file), "--quiet",
                 "--workers", "1", "--max-object-size", "500M", "--max-expansion", "0", "--object-timeout", "90"])
    assert code == 0
    assert seen == [limits.Limits(max_object_bytes=500 << 20, max_ratio=0, timeout=90)] * 2
    record = json.loads((tmp_path / "out.audit" / "run.json").read_text())
    assert record["limits"] == {"max_object_bytes": 500 << 20, "max_ratio": 0, "ratio_floor": limits.RATIO_FLOOR,
                                "timeout": 90}
    assert "limits: 524288000 bytes per object, expansion unbounded, 90 s per object" in \
        (tmp_path / "out.audit" / "run.log").read_text()


def test_default_object_size_is_a_workers_share_of_memory(tmp_path, secret_file) -> None:
    from medcloak.pool import _machine_memory

    src = make_series(tmp_path / "in", 1)
    run([src], tmp_path / "out", secret_file=secret_file, workers=1)
    record = json.loads((tmp_path / "out.audit" / "run.json").read_text())
    assert record["limits"] == {"max_object_bytes": _machine_memory(), "max_ratio": limits.MAX_RATIO,
                                "ratio_floor": limits.RATIO_FLOOR, "timeout": limits.TIMEOUT}
    assert executors.Hybrid(4).object_bytes() == _machine_memory() // 4


def test_raised_limits_resume_what_they_quarantined(tmp_path, secret_file, faults) -> None:
    """--resume with other limits is allowed (they change what is quarantined, never how an
    object is de-identified), and does the quarantined objects again."""
    faults()
    src = series(tmp_path, 3, {1: "slow"})
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=1, object_timeout=1)
    assert (summary.ok, summary.quarantined) == (2, 1)
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=1, resume=True, object_timeout=30)
    assert (summary.ok, summary.quarantined) == (3, 0)
    assert attempts(faults.notes, "Aslow_0001.dcm") == 2


# ---- time -----------------------------------------------------------------------------------------


def test_an_object_past_its_time_in_this_process_is_quarantined(tmp_path, secret_file, faults) -> None:
    """--workers 1: Python code past the limit is interrupted, whatever it catches, and the run
    goes on with the next object."""
    faults()
    src = series(tmp_path, 4, {1: "spin"})
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=1, object_timeout=1)
    assert (summary.ok, summary.quarantined) == (3, 1)
    bad = rows(tmp_path / "out.audit")["Aspin_0001.dcm"]
    assert bad["status"] == "quarantined" and bad["reason"] == "took longer than 1 s (--object-timeout)"
    assert attempts(faults.notes, "Aspin_0001.dcm") == 1


def test_an_object_past_its_time_in_a_pool_worker_is_interrupted_there(tmp_path, secret_file,
                                                                       pool_with_faults) -> None:
    src = series(tmp_path, 12, {5: "spin"})
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=2, object_timeout=1)
    assert (summary.ok, summary.quarantined) == (11, 1)
    assert rows(tmp_path / "out.audit")["Aspin_0005.dcm"]["reason"] == "took longer than 1 s (--object-timeout)"
    assert "worker process" not in (tmp_path / "out.audit" / "run.log").read_text()  # no worker ended
    assert workers_left() == []


def test_an_object_that_cannot_be_interrupted_costs_its_worker(tmp_path, secret_file, pool_with_faults,
                                                              monkeypatch) -> None:
    """A worker blocked past the limit and the grace is killed: the object is quarantined once
    (not tried again), its batch-mates are done again and released, and another worker takes its
    place."""
    from medcloak import pool

    monkeypatch.setattr(pool, "OVERTIME", 1.0)
    src = series(tmp_path, 12, {0: "block", 3: "0ok"})  # the first batch: A0ok, Ablock, and two more
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=2, object_timeout=1)
    assert (summary.ok, summary.quarantined) == (11, 1)
    got = rows(tmp_path / "out.audit")
    assert got["Ablock_0000.dcm"]["reason"] == "took longer than 1 s (--object-timeout)"
    assert attempts(pool_with_faults.notes, "Ablock_0000.dcm") == 1
    assert "a worker process was killed: its object took longer than 1 s" in (tmp_path / "out.audit" / "run.log").read_text()
    run([src], tmp_path / "inline", secret_file=secret_file, workers=1, object_timeout=0,
        max_object_size=0)  # the blocking fault is not installed in this process
    inline = rows(tmp_path / "inline.audit")
    for name, row in got.items():
        if name != "Ablock_0000.dcm":  # its batch-mates, before and after it, too
            assert row["status"] == "ok" and row["outputs"] == inline[name]["outputs"]
    assert workers_left() == []


# ---- workers that end ------------------------------------------------------------------------------


def test_an_object_that_kills_its_pool_worker_is_tried_once_more_then_quarantined(
        tmp_path, secret_file, pool_with_faults) -> None:
    """SIGKILL of the worker while it does the object, each time: quarantined after one retry
    (:data:`medcloak.pool.TRIES`), every other object of its batch released."""
    src = series(tmp_path, 12, {2: "die"})
    summary = run([src], tmp_path / "out", secret_file=secret_file, workers=2)
    assert (summary.ok, summary.quarantined) == (11, 1)
    bad = rows(tmp_path / "out.audit")["Adie_0002.dcm"]
    assert bad["reason"] == "its worker process ended twice while doing it (killed by SIGKILL)"
    assert attempts(pool_with_faults.notes, "Adie_0002.dcm") == 2
    assert workers_left() == []


@pytest.fixture
def dask_client(faults, monkeypatch):
    """A local Dask cluster of one worker process (its nanny starts it again when it ends), with
    the faults, under the scheduler setting the operations guide asks for (no retry of a task
    whose worker ended: medcloak retries it alone)."""
    import dask
    from distributed import Client, LocalCluster

    monkeypatch.setenv("MEDCLOAK_TEST_OVERTIME", "1")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                         scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                         preload=["medcloak_test_faults"]) as cluster, Client(cluster) as client:
        yield client


def test_dask_objects_that_end_their_worker_or_overrun_are_quarantined(tmp_path, secret_file, dask_client) -> None:
    """On a Dask worker: Python code past the limit is interrupted there; an object that ends its
    worker, or blocks past the limit and the grace (its single-threaded worker is ended), is
    quarantined after one retry alone; the run goes on, the rest of each batch released."""
    src = series(tmp_path, 10, {1: "die", 4: "spin", 7: "block"})
    summary = run([src], tmp_path / "out", secret_file=secret_file, client=dask_client, object_timeout=2)
    got = rows(tmp_path / "out.audit")
    assert (summary.ok, summary.quarantined) == (7, 3), {n: r["reason"] for n, r in got.items()}
    assert got["Aspin_0004.dcm"]["reason"] == "took longer than 2 s (--object-timeout)"
    for name in ("Adie_0001.dcm", "Ablock_0007.dcm"):
        assert got[name]["reason"] == executors.DASK_ENDED
    notes = Path(os.environ["MEDCLOAK_TEST_NOTES"])
    assert all(1 <= attempts(notes, name) <= 2 for name in got if name.startswith("A"))  # one retry at most
    assert all(r["status"] == "ok" for n, r in got.items() if n.startswith("Surname"))
