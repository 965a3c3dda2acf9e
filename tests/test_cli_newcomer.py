"""The command as a newcomer meets it, run as a separate process (``python -m medcloak``): a dead
scheduler, Ctrl-C in a multi-worker run, secret files that are missing or readable by others,
a closed pipe, the help, dry runs that refuse what the real run refuses, the end-of-run summary,
the public API's signatures, a machine whose Dask ports are taken, and worker processes whose
command was killed."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import pydicom_test_files

ROOT = Path(__file__).resolve().parents[1]


def medcloak(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    """``python -m medcloak ARGS`` on this checkout's code."""
    return subprocess.run([sys.executable, "-m", "medcloak", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=300, **kwargs)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "kernels")]))


def ct_copies(folder: Path, count: int) -> Path:
    """``count`` copies of pydicom's CT_small.dcm, each with its own SOP Instance UID."""
    import pydicom

    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")
    for i in range(count):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.999.31.{i}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"ct{i:04d}.dcm")
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def released(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}


def recorded(audit: Path) -> set[str]:
    lines = [json.loads(line) for line in (audit / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return {o for e in lines if e["status"] == "ok" for o in e["outputs"]}


def test_dead_scheduler_fails_fast_and_leaves_nothing(tmp_path, secret_file) -> None:
    src = ct_copies(tmp_path / "in", 2)
    out = tmp_path / "rel"
    started = time.monotonic()
    res = medcloak("run", src, "--out", out, "--secret-file", secret_file, "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert time.monotonic() - started < 15
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "scheduler" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and not (tmp_path / "rel.audit").exists()
    dry = medcloak("run", src, "--out", out, "--secret-file", secret_file, "--dry-run",
                   "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert dry.returncode == 2 and "scheduler" in dry.stderr
    # nothing blocks the next run
    assert medcloak("run", src, "--out", out, "--secret-file", secret_file, "--workers", "1").returncode == 0


def test_silent_port_is_no_scheduler(tmp_path, secret_file) -> None:
    """Something listens but never speaks (Dask's client would wait for ever)."""
    src = ct_copies(tmp_path / "in", 1)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        started = time.monotonic()
        res = medcloak("run", src, "--out", tmp_path / "rel", "--secret-file", secret_file,
                       "--scheduler", f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    assert time.monotonic() - started < 30
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "scheduler" in res.stderr
    assert not (tmp_path / "rel").exists() and not (tmp_path / "rel.audit").exists()


def test_missing_secret_file_is_named_and_leaves_nothing(tmp_path) -> None:
    src = ct_copies(tmp_path / "in", 1)
    out = tmp_path / "rel"
    for dry in ((), ("--dry-run",)):
        res = medcloak("run", src, "--out", out, "--secret-file", tmp_path / "nope.secret_file", *dry)
        assert res.returncode == 2
        assert "secret file" in res.stderr and "does not exist" in res.stderr
        assert "release or audit folder" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert not out.exists() and not (tmp_path / "rel.audit").exists()
    short = tmp_path / "short.secret_file"
    short.write_bytes(b"tiny")
    os.chmod(short, 0o600)
    res = medcloak("run", src, "--out", out, "--secret-file", short)
    assert res.returncode == 2 and "secret" in res.stderr
    assert not out.exists() and not (tmp_path / "rel.audit").exists()


def test_world_readable_secret_warned_once(tmp_path, secret_file) -> None:
    src = ct_copies(tmp_path / "in", 1)
    os.chmod(secret_file, 0o644)
    res = medcloak("run", src, "--out", tmp_path / "rel", "--secret-file", secret_file, "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("can be read by other users") == 1


def test_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "medcloak", "profile", "show"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away at once, as `| head` does after its lines
    with proc.stderr:
        err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == ""
    assert proc.returncode == 128 + signal.SIGPIPE


def test_run_help_lists_options_and_profiles() -> None:
    from medcloak.rules.profile import BUILTIN_PROFILES, OPTIONS

    res = medcloak("run", "--help")
    assert res.returncode == 0
    for name in (*OPTIONS, *BUILTIN_PROFILES):
        assert name in res.stdout, name


def test_dry_run_refuses_what_the_run_refuses(tmp_path, secret_file) -> None:
    src = ct_copies(tmp_path / "in", 2)
    out = tmp_path / "rel"
    assert medcloak("run", src, "--out", out, "--secret-file", secret_file, "--quiet").returncode == 0
    before = released(out) | {"audit:" + p for p in released(tmp_path / "rel.audit")}
    other = tmp_path / "other.secret_file"
    other.write_bytes(b"another-secret-0123456789")
    os.chmod(other, 0o600)
    for args in (
        ("--secret-file", secret_file),  # a release folder that is not empty
        ("--secret-file", other, "--resume"),  # another secret than the run it continues
        ("--secret-file", secret_file, "--resume", "--option", "retain-uids"),  # other options
        ("--secret-file", tmp_path / "nope.secret_file", "--resume"),
    ):
        real = medcloak("run", src, "--out", out, *args)
        dry = medcloak("run", src, "--out", out, *args, "--dry-run")
        assert real.returncode == 2 and dry.returncode == 2, (args, dry.stdout, dry.stderr)
        assert dry.stderr == real.stderr
    fresh = medcloak("run", src, "--out", tmp_path / "new", "--secret-file", secret_file, "--dry-run")
    assert fresh.returncode == 0 and not (tmp_path / "new").exists() and not (tmp_path / "new.audit").exists()
    assert medcloak("run", src, "--out", out, "--secret-file", secret_file, "--resume", "--dry-run").returncode == 0
    assert released(out) | {"audit:" + p for p in released(tmp_path / "rel.audit")} == before


def test_summary_says_where_the_audit_and_reasons_are(tmp_path, secret_file) -> None:
    src = ct_copies(tmp_path / "in", 1)
    out = tmp_path / "rel"
    res = medcloak("run", src, "--out", out, "--secret-file", secret_file, "--quiet")
    assert res.returncode == 0
    assert str(tmp_path / "rel.audit") in res.stdout
    assert str(tmp_path / "rel.audit" / "manifest.jsonl") in res.stdout
    log = (tmp_path / "rel.audit" / "run.log").read_text()
    assert str(tmp_path) not in log  # paths on the terminal only


def test_summary_says_where_the_qc_pictures_are(tmp_path, secret_file) -> None:
    from shared_data import head as head_volume

    head = head_volume("robex_atlas.nii.gz")  # ../shared or the verified cache (tests/shared_data.py)
    src = tmp_path / "in"
    src.mkdir()
    (src / "sub-01_T1w.nii.gz").write_bytes(head.read_bytes())
    res = medcloak("run", src, "--out", tmp_path / "rel", "--secret-file", secret_file, "--quiet")
    assert res.returncode == 0, res.stderr
    assert f"QC pictures: {tmp_path / 'rel.audit' / 'qc'}" in res.stdout
    assert list((tmp_path / "rel.audit" / "qc").glob("*.png"))


def test_public_api_has_real_signatures() -> None:
    import medcloak
    from medcloak.engine import run

    sig = inspect.signature(medcloak.deidentify)
    assert all(p.kind is not p.VAR_KEYWORD for p in sig.parameters.values())
    assert list(sig.parameters) == list(inspect.signature(run).parameters)
    for name, p in inspect.signature(run).parameters.items():
        assert sig.parameters[name].default == p.default, name
    for fn in (medcloak.deidentify, medcloak.load_profile, medcloak.redact_jpeg, medcloak.strip_jpeg_metadata):
        doc = inspect.getdoc(fn) or ""
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc, fn.__name__
    assert "workers" in (inspect.getdoc(medcloak.deidentify) or "").split("Returns")[0]
    res = subprocess.run([sys.executable, "-c", "import sys, medcloak; help(medcloak.deidentify); "
                          "print(sorted(m for m in ('numba','dask','distributed','pydicom','skimage') if m in sys.modules))"],
                         capture_output=True, text=True, env=_env())
    assert res.returncode == 0 and res.stdout.strip().endswith("[]")


#: the command, with the local workers started as soon as the default executor can, each of them
#: importing the module named in $MEDCLOAK_TEST_PRELOAD (if set) first
EAGER = ("import os, sys; import medcloak.executors as x, medcloak.pool as p; x.Hybrid.start_seconds = 0.0; "
         "p.Pool.preload = tuple(filter(None, [os.environ.get('MEDCLOAK_TEST_PRELOAD')])); "
         "from medcloak.cli import main; sys.exit(main())")
#: the command, with local worker processes from the first object on
CLUSTER = ("import sys; import medcloak.executors as x; x.make_executor = lambda w, s, c: x.Local(w); "
           "from medcloak.cli import main; sys.exit(main())")

GATE = """import os, time
from pathlib import Path

def setup():
    gate = Path(os.environ["MEDCLOAK_TEST_GATE"])
    (gate / f"waiting-{os.getpid()}").touch()
    while not (gate / "open").exists():
        time.sleep(0.02)
"""


def _interrupt(args: list[str], env: dict[str, str], ready, presses: int, cleanup=None) -> tuple[int, str, int]:  # type: ignore[no-untyped-def]
    """Start the command in a session of its own, wait until ``ready()``, then press Ctrl-C
    ``presses`` times (SIGINT to the process group, as a terminal does); its exit status, its
    standard error and its session id. ``cleanup`` runs before the process is reaped, whatever
    happens. The command starts with SIGINT handled, as a terminal's foreground job: a test run
    started in the background by a shell without job control ignores SIGINT, and its children
    would inherit that."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        for _ in range(presses):
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.01)
        _, err = proc.communicate(timeout=120)
    finally:
        if cleanup is not None:
            cleanup()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, err.decode(), proc.pid


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_cleanly_and_resume_completes(tmp_path, secret_file, presses) -> None:
    """On local worker processes from the first object on. Once: the batches in flight finish and
    are recorded; twice: the run stops at once and removes what was released without a manifest
    line. Either way, no traceback from the workers (Ctrl-C reaches the whole process group), and
    every released file is recorded."""
    count = 600
    src = ct_copies(tmp_path / "in", count)
    out = tmp_path / "rel"
    args = [sys.executable, "-c", CLUSTER, "run", str(src), "--out", str(out), "--secret-file", str(secret_file),
            "--workers", "2", "--quiet"]
    code, text, _ = _interrupt(args, _env(), lambda: out.exists() and sum(1 for _ in out.rglob("*.dcm")) >= 20,
                               presses)
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    files = released(out)
    assert files and files <= recorded(tmp_path / "rel.audit")
    assert len(files) < count
    # verify says the release is incomplete, and how to finish it
    check = medcloak("verify", out)
    assert check.returncode == 1 and "incomplete" in check.stdout and "--resume" in check.stdout, check.stdout
    res = medcloak("run", src, "--out", out, "--secret-file", secret_file, "--workers", "2", "--resume", "--quiet")
    assert res.returncode == 0, res.stderr
    assert len(recorded(tmp_path / "rel.audit")) == count
    assert {f for f in released(out) if f.endswith(".dcm")} == recorded(tmp_path / "rel.audit")


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_while_the_workers_warm_up(tmp_path, secret_file, presses) -> None:
    """Ctrl-C while objects are done in the main process and the local workers are still
    starting (held in their start by a preload): the run stops as it does inline, no worker
    says a word, and no process of the run is left."""
    psutil = pytest.importorskip("psutil")
    count = 1500
    src = ct_copies(tmp_path / "in", count)
    out = tmp_path / "rel"
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "gate_preload.py").write_text(GATE)
    env = _env()
    env.update(MEDCLOAK_TEST_GATE=str(gate), MEDCLOAK_TEST_PRELOAD="gate_preload",
               PYTHONPATH=os.pathsep.join([env["PYTHONPATH"], str(tmp_path)]))
    args = [sys.executable, "-c", EAGER, "run", str(src), "--out", str(out), "--secret-file", str(secret_file),
            "--workers", "2", "--quiet"]

    def ready() -> bool:  # a worker waits, and objects done here are recorded
        manifest = tmp_path / "rel.audit" / "manifest.jsonl"
        return any(gate.glob("waiting-*")) and manifest.exists() and manifest.read_text().count("\n") >= 5

    code, text, session = _interrupt(args, env, ready, presses, cleanup=lambda: (gate / "open").touch())
    assert any(gate.glob("waiting-*")), "no worker was starting"
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    ours = []  # the processes of the run's session: each ends within moments (none is left running)
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == session:
                ours.append(p)
        except (OSError, psutil.Error):
            pass
    _, alive = psutil.wait_procs(ours, timeout=20)
    assert alive == []
    files = released(out)
    assert files and files <= recorded(tmp_path / "rel.audit")
    assert len(files) < count
    res = medcloak("run", src, "--out", out, "--secret-file", secret_file, "--workers", "2", "--resume", "--quiet")
    assert res.returncode == 0, res.stderr
    assert len(recorded(tmp_path / "rel.audit")) == count


def test_workers_end_when_the_command_is_killed(tmp_path, secret_file) -> None:
    """The command killed with SIGKILL in the middle of a run on local worker processes: no
    worker outlives it for more than moments (each ends once its pipe closes), and a resumed run
    completes the release."""
    psutil = pytest.importorskip("psutil")
    count = 600
    src = ct_copies(tmp_path / "in", count)
    out = tmp_path / "rel"
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER, "run", str(src), "--out", str(out), "--secret-file",
                             str(secret_file), "--workers", "2", "--quiet"], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and sum(1 for _ in out.rglob("*.dcm")) >= 20:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        workers = psutil.Process(proc.pid).children()
        assert len(workers) >= 2  # multiprocessing's resource tracker and at least one worker
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
    res = medcloak("run", src, "--out", out, "--secret-file", secret_file, "--workers", "2", "--resume", "--quiet")
    assert res.returncode == 0, res.stderr
    assert len(recorded(tmp_path / "rel.audit")) == count


def test_taken_dask_ports_do_not_matter(tmp_path, secret_file) -> None:
    pytest.importorskip("distributed")
    held = []
    for port in (8786, 8787):
        s = socket.socket()
        try:
            s.bind(("", port))
            s.listen()
            held.append(s)
        except OSError:  # another process holds it already: just as good
            s.close()
    try:
        src = ct_copies(tmp_path / "in", 70)
        res = subprocess.run([sys.executable, "-c", CLUSTER, "run", str(src), "--out", str(tmp_path / "rel"),
                              "--secret-file", str(secret_file), "--workers", "2", "--quiet"],
                             capture_output=True, text=True, env=_env(), timeout=300)
    finally:
        for s in held:
            s.close()
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""


def test_readers_warnings_never_reach_the_terminal(tmp_path, secret_file) -> None:
    """pydicom warns about malformed inputs quoting their values (badVR.dcm's Number of Frames
    '1A'): the command shows none of it; the object's reason is in the manifest."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(pydicom_test_files() / "badVR.dcm", src / "a.dcm")
    shutil.copy(pydicom_test_files() / "CT_small.dcm", src / "b.dcm")
    res = medcloak("run", src, "--out", tmp_path / "rel", "--secret-file", secret_file, "--quiet", "--workers", "1")
    assert res.returncode == 1, res.stderr
    assert "Warning" not in res.stderr and "'1A'" not in res.stderr, res.stderr
    manifest = (tmp_path / "rel.audit" / "manifest.jsonl").read_text()
    assert "quarantined" in manifest and "'1A'" not in manifest
