"""Where tasks run: in this process, in worker processes on this machine, or on a Dask
scheduler's workers. One interface: :meth:`Executor.map` takes a :class:`Batcher` and yields lists
of outcomes as batches complete.

Several local workers (:class:`Hybrid`, the command's default) start in this process at once:
worker processes cost most of a second before their first object is done, more than a whole run
of a few hundred small files. Once the objects done here show that the work left (counted from
the objects still ahead) is worth it, the workers are started in the background (a
:class:`medcloak.pool.Pool`) and, once they are warm, join in between two objects: the object in
progress here is finished and recorded first, so no object is done twice. Up to
:data:`WORKS_TOO` workers this process stays one of them (the pool has one process fewer), doing
objects between collecting the pool's outcomes. A run that ends first stops the workers' start
without waiting for it; workers that fail to start are logged, and the run is finished in this
process. :class:`Local` has the workers from the first object on.

Workers ignore SIGINT (from their first instruction on): Ctrl-C reaches the whole process group
on a terminal, and the main process stops them itself. The first Ctrl-C (see :class:`Interrupt`)
lets the batches in flight finish and be recorded; no new batch starts.

Batches are sized by feedback (:class:`Sizer`), so overhead stays small whatever the objects: the
first batches are small, then each batch aims at :data:`TARGET_SECONDS` of work by the measured
time per object (at most :data:`MAX_OBJECTS` objects or :data:`MAX_BYTES` of input), and longer
where the one sync that makes a batch durable is slow (:data:`medcloak.durable.SYNC_SHARE`). A
worker holds one object in memory at a time; two batches per worker are in flight.

What one object may cost is bounded in every executor (``Job.limits``, :mod:`medcloak.limits`):
an object past ``--object-timeout`` is interrupted where it runs (:mod:`medcloak.watch`), and
its worker process is ended when it cannot be (a local worker by the pool, a single-threaded
Dask worker by faulthandler's timer: :func:`run_dask_batch`); an object that ends its worker is
quarantined after one retry alone (:mod:`medcloak.pool`, :class:`Flow`). The main process cannot
end itself: the objects it does have only the interruption.
"""

from __future__ import annotations

import logging
import pickle
import signal
import socket
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterator

from .durable import MAX_INTERVAL, SYNC_SHARE
from .errors import ClusterError, RunError
from .model import Outcome, Task

if TYPE_CHECKING:
    from .engine import Job
    from .pool import Pool

TARGET_SECONDS = 0.5
MAX_OBJECTS = 4096
READ_AHEAD = 8192
MAX_BYTES = 256 << 20
FIRST_BATCH = 4
#: seconds to wait for a remote scheduler to answer (Dask's own default is 30)
CONNECT_SECONDS = 10
#: local workers are started when the work left, estimated from the objects done in this process
#: (see :meth:`Hybrid.worth_a_cluster`), exceeds this many seconds
START_SECONDS = 5.0
#: the estimate takes the median of the last :data:`RECENT` tasks' times, once there are
#: :data:`MEDIAN_OF` (the first task of a run, which pays for the imports, aside)
RECENT = 31
MEDIAN_OF = 3
#: up to this many local workers, this process is one of them (see :class:`Hybrid`)
WORKS_TOO = 4
#: the quarantine reason of an object whose Dask workers ended while doing it, in its batch and alone
DASK_ENDED = ("its worker process ended while doing it, in its batch and alone (a crash, memory, or code "
              "that could not be interrupted past --object-timeout)")
log = logging.getLogger("medcloak")


class Interrupt:
    """Ctrl-C during a run, as a context manager: the first SIGINT sets :attr:`requested` (the
    :class:`Batcher` then hands out no more tasks, so the batches in flight finish and are
    recorded, and every released file has its manifest line); a second one raises
    KeyboardInterrupt at once. Takes over only Python's default handler, in the main thread."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("medcloak: stopping once the objects in progress are done (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False


class Batcher:
    """Pulls tasks from a stream into batches, reading up to :data:`READ_AHEAD` tasks ahead so
    that the last batches of a run can be made small enough to keep every worker busy. Once
    ``interrupt.requested`` is set, it hands out nothing more."""

    def __init__(self, tasks: Iterator[Task], interrupt: Interrupt | None = None) -> None:
        self._tasks = tasks
        self._ahead: deque[Task] = deque()
        self.exhausted = False
        self._interrupt = interrupt

    def _fill(self) -> None:
        while not self.exhausted and len(self._ahead) < READ_AHEAD:
            task = next(self._tasks, None)
            if task is None:
                self.exhausted = True
            else:
                self._ahead.append(task)

    def remaining(self) -> int | None:
        """Tasks not yet taken, when the stream has ended; None while it goes on."""
        self._fill()
        return len(self._ahead) if self.exhausted else None

    def take(self, count: int, max_bytes: int = MAX_BYTES) -> list[Task]:
        if self._interrupt is not None and self._interrupt.requested:
            return []
        self._fill()
        batch: list[Task] = []
        size = 0
        while self._ahead and len(batch) < count:
            task = self._ahead[0]
            if batch and size + task.size > max_bytes:
                break
            batch.append(self._ahead.popleft())
            size += task.size
            if not self._ahead:
                self._fill()
        return batch


def run_batch(tasks: list[Task], job: Job, begin: Any = None) -> tuple[list[Outcome], float, float]:
    """Process a batch on a worker: (outcomes, seconds of work, seconds of sync). The batch's
    files are made durable (one sync for the batch, see :mod:`medcloak.durable`) before its
    outcomes go back. ``begin``, when given, is called with each task's position in the batch
    before the task is done (a local worker says so to its main process, see :mod:`medcloak.pool`)."""
    from .engine import commit, process_task

    started = time.perf_counter()
    outcomes: list[Outcome] = []
    for position, task in enumerate(tasks):
        if begin is not None:
            begin(position)
        outcomes.extend(process_task(task, job))
    work = time.perf_counter() - started
    return outcomes, work, commit()


def run_dask_batch(tasks: list[Task], payload: bytes) -> tuple[list[Outcome], float, float]:
    """:func:`run_batch` on a Dask worker. Python code past the time limit is interrupted in the
    worker's thread as anywhere (:mod:`medcloak.watch`); a worker with a single thread (as
    ``--nthreads 1`` starts it) is also ended when an object goes on
    :data:`medcloak.pool.OVERTIME` seconds past the limit, by faulthandler's timer, a thread of
    its own that needs no interpreter lock (a numba kernel or a C codec holds it): its nanny
    starts it again, and the scheduler reports the batch's worker lost (see :class:`Flow`).
    ``payload``: the pickled job, unpickled once per worker."""
    import faulthandler

    from .pool import OVERTIME

    job = _job(payload)
    hard = job.limits.timeout > 0 and _single_threaded()

    def begin(position: int) -> None:
        faulthandler.dump_traceback_later(job.limits.timeout + OVERTIME, exit=True, file=_devnull())

    try:
        return run_batch(tasks, job, begin if hard else None)
    finally:
        if hard:
            faulthandler.cancel_dump_traceback_later()


_JOB: list[tuple[bytes, Any]] = [(b"", None)]  # the digest of the last job's payload, and the job


def _job(payload: bytes) -> Job:
    import hashlib

    digest = hashlib.sha256(payload).digest()
    known, job = _JOB[0]
    if known != digest:
        job = pickle.loads(payload)
        _JOB[0] = (digest, job)
    return job  # type: ignore[no-any-return]


def _single_threaded() -> bool:
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads) == 1
    except Exception:  # noqa: BLE001 - not on a Dask worker, or another version's layout
        return False


_DEVNULL: list[Any] = []


def _devnull() -> Any:
    """Where faulthandler writes the worker's stacks before it ends it (nowhere: the stack
    names only medcloak's functions, but the terminal of a remote worker is not ours)."""
    if not _DEVNULL:
        import os

        _DEVNULL.append(open(os.devnull, "w"))  # noqa: SIM115 - kept open for the process's life
    return _DEVNULL[0]


class Executor:
    workers = 1
    #: a worker ended with objects in progress: files it placed may have no manifest line
    lost = False

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def object_bytes(self) -> int:
        """The default per-object ceiling (``--max-object-size``): a worker's share of the
        machine's memory (the cgroup's limit where smaller) among the :attr:`workers`, what each
        local worker's data is held to (see :mod:`medcloak.pool`)."""
        from .limits import default_object_bytes
        from .pool import _machine_memory

        return default_object_bytes(_machine_memory(), self.workers)


class Inline(Executor):
    """Every task in this process, one after the other."""

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        from .engine import process_task

        while True:
            batch = batcher.take(1)
            if not batch:
                return
            yield process_task(batch[0], job)


def _warm(kernels: bool = True) -> None:
    """Load what a worker needs before its first object: the modules of the formats (pydicom
    among them) and, with ``kernels``, numba (the kernels themselves load from the on-disk cache
    when first used), keeping each worker's kernels on one thread: the workers already share out
    the machine's cores. Local worker processes skip numba (about a third of a second of a
    core each, for runs that may never need a kernel): their environment says one thread."""
    if kernels:
        try:
            import numba

            numba.set_num_threads(1)
        except Exception:  # noqa: BLE001 - an optimisation, never a failure
            pass
    try:
        from .engine import process_task  # noqa: F401 - imported for its cost
        from .formats import dicom, photo  # noqa: F401
        from .pixels.jpeg_meta import strip_jpeg_metadata

        strip_jpeg_metadata(b"\xff\xd8\xff\xd9")
    except Exception:  # noqa: BLE001 - warming is an optimisation, never a failure
        pass


def check_scheduler(address: str) -> None:
    """Fail at once, with one line naming the address, when no Dask scheduler answers at a
    ``tcp://`` address (Dask itself would retry for 30 s and end in a long traceback, or wait
    forever on a port that accepts and stays silent): nothing listens, or what listens does not
    open the conversation as a Dask scheduler does. For ``tls://``, only that something listens."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls"):
        return
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--scheduler takes an address like tcp://HOST:8786, not {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS) as conn:
            if scheme == "tcp":  # a Dask server sends its handshake first
                conn.settimeout(CONNECT_SECONDS)
                if not conn.recv(1):
                    raise ClusterError(f"no Dask scheduler at {address} (the connection was closed)")
    except socket.timeout:
        raise ClusterError(f"no Dask scheduler answers at {address} (timed out)") from None
    except OSError as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__


class Dask(Executor):
    """Batches as Dask tasks on a ``distributed.Client``: a scheduler given by address, or a
    client the caller owns."""

    def __init__(self, scheduler: str | None = None, client: Any = None) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a dependency
            from .errors import MissingDependencyError

            raise MissingDependencyError("dask.distributed is needed for --scheduler") from exc
        self._own_client = client is None
        self.flow: Flow | None = None
        if client is not None:
            self.client = client
        else:
            from distributed import Client

            if scheduler is None:
                raise ClusterError("a Dask executor needs a scheduler's address or a client")
            check_scheduler(scheduler)
            try:
                self.client = Client(scheduler, set_as_default=False, timeout=CONNECT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - whatever Dask raises, one line for the user
                raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler} ({_first_line(exc)})") from None
        self.client.run(_warm)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def object_bytes(self) -> int:
        """The smallest memory limit of the scheduler's workers shared among its threads (each
        thread does an object), or :data:`medcloak.limits.MAX_OBJECT_BYTES` when the workers
        have none."""
        from .limits import MAX_OBJECT_BYTES, default_object_bytes

        shares = [default_object_bytes(int(w.get("memory_limit") or 0), int(w.get("nthreads") or 1))
                  for w in self.client.scheduler_info().get("workers", {}).values() if w.get("memory_limit")]
        return min(shares, default=MAX_OBJECT_BYTES)

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        self.flow = Flow(self.client, self.workers, batcher, job)
        yield from self.flow.drain()

    @property
    def lost(self) -> bool:  # type: ignore[override]
        return self.flow is not None and self.flow.lost

    def cancel_all(self) -> None:
        try:
            self.client.cancel(list(self.client.futures.values()), force=True)
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass

    def close(self) -> None:
        if self._own_client:
            self.client.close()


class Sizer:
    """How many tasks the next batch takes: :data:`FIRST_BATCH` until the time per object is
    known, then :data:`TARGET_SECONDS` of work (more where the sync that makes a batch durable is
    slow), and towards the end a share of what is left, so that the ``sharers`` (the workers, and
    this process when it does objects too) end together."""

    def __init__(self, per_object: float = 0.0, sharers: int = 1) -> None:
        self.per_object = per_object
        self.sync = 0.0  # measured seconds of a batch's sync
        self.sharers = max(1, sharers)

    def take(self, batcher: Batcher) -> list[Task]:
        if self.per_object <= 0:
            count = FIRST_BATCH
        else:
            # a batch's sync costs at most 1/SYNC_SHARE of its work (network file systems)
            target = min(MAX_INTERVAL, max(TARGET_SECONDS, SYNC_SHARE * self.sync))
            count = int(min(MAX_OBJECTS, max(1, target / self.per_object)))
        left = batcher.remaining()
        if left is not None:  # the end is in sight: share what is left
            count = min(count, max(1, -(-left // (2 * self.sharers))))
        return batcher.take(count)

    def learn(self, objects: int, seconds: float, synced: float) -> None:
        """What a batch of ``objects`` took: ``seconds`` of work, ``synced`` of sync."""
        if objects:
            sample = seconds / objects
            self.per_object = sample if self.per_object <= 0 else 0.7 * self.per_object + 0.3 * sample
            self.sync = synced if self.sync <= 0 else 0.7 * self.sync + 0.3 * synced


class Flow:
    """Batches of one run in flight on a Dask client, at most two per worker, sized by a
    :class:`Sizer`; :meth:`drain` gives their outcomes as each ends, submitting new batches in
    their place as long as the batcher has tasks.

    A batch whose workers ended while it was assigned to them (the scheduler's
    ``KilledWorker``, once they ended as many times as its ``allowed-failures`` allows) may hold
    an object that ends its worker, or only have waited on a worker that another batch's object
    ended: each of its objects becomes a suspect. Suspects are then tried alone, one at a time,
    with nothing else in flight (new batches wait): a suspect whose worker ends then is the
    culprit, and is quarantined (:data:`DASK_ENDED`); the others are released as usual."""

    def __init__(self, client: Any, workers: int, batcher: Batcher, job: Job) -> None:
        from distributed import as_completed

        self.client = client
        self.batcher = batcher
        self.sizer = Sizer(sharers=workers)
        self.window = 2 * workers
        self.in_flight = 0
        #: a worker ended with a batch in progress: files it placed may have no manifest line
        self.lost = False
        # the tasks of each batch in flight by its key, and whether it runs alone
        self.batches: dict[Any, tuple[list[Task], bool]] = {}
        self.suspects: deque[Task] = deque()
        # the job goes with every batch (some 40 kB): a copy scattered to the workers is lost
        # with the last worker that holds it, and an object that ends its workers may end each
        self.job = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        self.pending = as_completed(loop=client.loop)
        self.fill()

    def fill(self) -> None:
        if self.suspects:
            if not self.in_flight:
                self.submit([self.suspects.popleft()], alone=True)
            return
        while self.in_flight < self.window:
            batch = self.sizer.take(self.batcher)
            if not batch:
                return
            self.submit(batch)

    def submit(self, batch: list[Task], alone: bool = False) -> None:
        future = self.client.submit(run_dask_batch, batch, self.job, pure=False)
        self.batches[future.key] = (batch, alone)
        self.pending.add(future)
        self.in_flight += 1

    def drain(self) -> Iterator[list[Outcome]]:
        from distributed import KilledWorker

        for future in self.pending:
            batch, alone = self.batches.pop(future.key)
            try:
                outcomes, seconds, synced = future.result()
            except RunError:
                raise
            except KilledWorker:
                self.in_flight -= 1
                self.lost = True
                future.release()
                if alone:
                    from .pool import _quarantine

                    log.warning("a Dask worker ended while doing one object alone: it is quarantined")
                    self.fill()
                    yield _quarantine(batch[0], DASK_ENDED)
                else:
                    log.warning("a Dask worker ended with a batch of %d objects: each is tried again alone", len(batch))
                    self.suspects.extend(batch)
                    self.fill()
                continue
            except Exception as exc:  # noqa: BLE001 - whatever the cluster raises stops the run
                raise ClusterError(
                    f"a batch could not be run on the cluster ({type(exc).__name__}); run again with --resume"
                ) from None
            self.in_flight -= 1
            if not alone:
                self.sizer.learn(len(outcomes), seconds, synced)
            future.release()
            self.fill()
            yield outcomes


class _Pooled(Executor):
    """An executor whose workers are a :class:`medcloak.pool.Pool` (once it has one)."""

    pool: Pool | None = None

    @property
    def lost(self) -> bool:
        return self.pool is not None and self.pool.lost

    def cancel_all(self) -> None:
        if self.pool is not None:
            self.pool.kill()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()


class Local(_Pooled):
    """Worker processes on this machine (a :class:`medcloak.pool.Pool`) from the first object on:
    this process waits for them to be up, then only hands out batches and records them."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool: Pool | None = None

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        from .pool import Pool

        self.pool = Pool(self.workers, job).start()
        self.pool.ended.wait()
        if self.pool.error:
            raise ClusterError(f"the worker processes did not start ({self.pool.error})")
        self.pool.begin(batcher, Sizer(sharers=self.workers))
        yield from self.pool.drain()


class Hybrid(_Pooled):
    """Several workers on this machine without waiting for them: objects are done here, one at a
    time, from the first one on, and a :class:`medcloak.pool.Pool` of worker processes is started
    in the background once the work left looks worth it (see :meth:`worth_a_cluster`); it joins
    in between two objects once its workers are up. Until then, recording an outcome and doing
    the next object take turns in this process (neither waits on the other).

    Up to :data:`WORKS_TOO` workers, this process is one of them: the pool has one process fewer
    and this one goes on doing objects between collecting the pool's outcomes (on two cores, a
    second process beside an idle coordinator would leave a core to the coordinator's few
    milliseconds). With more workers, this process only hands out batches and records them, so
    that no worker waits for a batch while an object is done here."""

    #: estimated seconds of work left that are worth starting the pool for (0: start at once)
    start_seconds: float | None = None

    def __init__(self, workers: int) -> None:
        self.workers = workers
        #: this process does objects alongside the pool's workers
        self.works_too = workers <= WORKS_TOO
        self.pool_size = workers - 1 if self.works_too else workers
        self.pool: Pool | None = None
        #: the pool took its share of the work (its workers were up in time)
        self.joined = False
        self._given_up = False
        #: objects done in this process
        self.inline = 0

    def worth_a_cluster(self, batcher: Batcher, recent: deque[float]) -> bool:
        """Whether the tasks still ahead make more than :data:`START_SECONDS` of work here, at the
        median of the ``recent`` tasks' seconds (the median, as an object that is the first of its
        kind pays for imports and kernels once); more tasks than the batcher reads ahead always
        do. Needs :data:`MEDIAN_OF` tasks timed. A task's seconds are the CPU time it took this
        thread (what another core could take off it), or half its wall time when it waited more
        than it computed (slow storage): a machine busy with other work, which slows every
        object down but has no idle core to give, does not start workers by itself."""
        threshold = START_SECONDS if self.start_seconds is None else self.start_seconds
        left = batcher.remaining()
        if left is None:
            return True
        if len(recent) < MEDIAN_OF:
            return False
        return left * sorted(recent)[len(recent) // 2] > threshold

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        from .engine import process_task
        from .pool import Pool

        recent: deque[float] = deque(maxlen=RECENT)  # seconds of the last tasks done here
        objects, seconds = 0, 0.0  # and all of them, in objects, the first task aside
        while True:
            if not self.joined and self.pool is not None and self.pool.ended.is_set() and not self._given_up:
                self._take_over(batcher, seconds / objects if objects else 0.0)
                if self.joined and not self.works_too:
                    break
            if self.joined:
                assert self.pool is not None
                yield from self.pool.ready()
            batch = batcher.take(1)
            if not batch:
                break
            started, computing = time.perf_counter(), time.thread_time()
            outcomes = process_task(batch[0], job)
            elapsed = time.perf_counter() - started
            if self.inline:
                recent.append(max(time.thread_time() - computing, elapsed / 2))
                objects += len(outcomes)
                seconds += elapsed
            self.inline += len(outcomes)
            if self.pool is None and self.worth_a_cluster(batcher, recent):
                self.pool = Pool(self.pool_size, job, share=self.workers).start()
            yield outcomes
        if self.joined:
            assert self.pool is not None
            yield from self.pool.drain()

    def _take_over(self, batcher: Batcher, per_object: float) -> None:
        assert self.pool is not None
        if self.pool.error:
            log.warning("the worker processes did not start (%s): the run goes on in this process", self.pool.error)
            self._given_up = True
            self.pool.stop()
            return
        sharers = self.pool.size + (1 if self.works_too else 0)
        self.pool.begin(batcher, Sizer(per_object, sharers))
        self.joined = True
        log.info("%d worker process%s joined after %d objects done in this process%s", self.pool.size,
                 "" if self.pool.size == 1 else "es", self.inline, ", which goes on as one more" if self.works_too else "")


def make_executor(workers: int, scheduler: str | None, client: Any) -> Executor:
    """Inline for one worker, a :class:`Hybrid` for several, Dask for a scheduler or a client."""
    if client is not None or scheduler is not None:
        return Dask(scheduler=scheduler, client=client)
    if workers <= 1:
        return Inline()
    return Hybrid(workers)
