"""Where tasks run: in this process, on a local Dask cluster of processes, or on a remote Dask
scheduler's workers. One interface: :meth:`Executor.map` takes a :class:`Batcher` and yields lists
of outcomes as batches complete.

Several local workers (:class:`Hybrid`, the command's default) start in this process at once: a
local cluster costs seconds before its first object is done, more than a whole run of a few
hundred small files. Once the objects done here show that the work left (counted from the objects
still ahead) is worth it, the cluster is brought up in the background (:class:`LocalCluster`, a
thread) and, once its workers are warm, joins in between two objects: the object in progress here
is finished and recorded first, so no object is done twice. Up to :data:`WORKS_TOO` workers this
process stays one of them (the cluster has one process fewer), doing objects between collecting
the cluster's outcomes. A run that ends first stops the
cluster's start without waiting for it; a cluster that fails to start is logged, and the run is
finished in this process.

A local cluster starts no dashboard and listens on free ports only (never Dask's default 8786 and
8787), and its workers ignore SIGINT (from their first instruction on: they are started with SIGINT
blocked): Ctrl-C reaches the whole process group on a terminal, and the main process stops them
itself. The first Ctrl-C (see :class:`Interrupt`) lets the batches in flight finish and be
recorded; no new batch starts.

Batches are sized by feedback, so scheduler overhead stays small whatever the objects: the first
batches are small, then each batch aims at :data:`TARGET_SECONDS` of work by the measured time per
object (at most :data:`MAX_OBJECTS` objects or :data:`MAX_BYTES` of input), and longer where the
one sync that makes a batch durable is slow (:data:`medcloak.durable.SYNC_SHARE`). A worker holds
one object in memory at a time; two batches per worker are in flight.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Iterator

from .durable import MAX_INTERVAL, SYNC_SHARE
from .errors import ClusterError, RunError
from .model import Outcome, Task

if TYPE_CHECKING:
    from .engine import Job

TARGET_SECONDS = 0.5
MAX_OBJECTS = 4096
READ_AHEAD = 8192
MAX_BYTES = 256 << 20
FIRST_BATCH = 4
#: seconds to wait for a remote scheduler to answer (Dask's own default is 30)
CONNECT_SECONDS = 10
#: a local cluster is started when the work left, estimated from the objects done in this process
#: (see :meth:`Hybrid.worth_a_cluster`), exceeds this many seconds: about twice what starting one
#: costs on a small machine
START_SECONDS = 5.0
#: the estimate takes the median of the last :data:`RECENT` tasks' times, once there are
#: :data:`MEDIAN_OF` (the first task of a run, which pays for the imports, aside)
RECENT = 31
MEDIAN_OF = 3
#: seconds to wait for a local cluster to stop before leaving it to the end of the process
STOP_SECONDS = 30
#: up to this many local workers, this process is one of them (see :class:`Hybrid`)
WORKS_TOO = 4
#: Dask settings of a local cluster, whose scheduler shares this process with objects being done:
#: no statistical profiler in the workers (it stops a worker's task every 10 ms to sample its stack,
#: for a dashboard a local cluster does not have) and no work stealing (batches are sized to end
#: together)
QUIET_DASK = {"distributed.worker.profile.enabled": False, "distributed.scheduler.work-stealing": False}

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


def run_batch(tasks: list[Task], job: Job) -> tuple[list[Outcome], float, float]:
    """Process a batch on a worker: (outcomes, seconds of work, seconds of sync). The batch's
    files are made durable (one sync for the batch, see :mod:`medcloak.durable`) before its
    outcomes go back."""
    from .engine import commit, process_task

    started = time.perf_counter()
    outcomes = [o for t in tasks for o in process_task(t, job)]
    work = time.perf_counter() - started
    return outcomes, work, commit()


class Executor:
    workers = 1

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


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
    the machine's cores. A local cluster's workers skip numba (about a third of a second of a
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


def dask_setup(worker: Any) -> None:
    """Run by Dask in each worker process of a local cluster (this module is its preload): Ctrl-C
    is for the main process, which stops the workers itself; then the worker warms up, before
    the cluster counts as started."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm(kernels=False)


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


class LocalCluster:
    """A Dask scheduler and ``workers`` single-threaded worker processes on this machine, started
    in a thread of their own so that the caller goes on meanwhile. :attr:`ended` is set once the
    start is over: :attr:`client` (a ``distributed.Client``) is then ready, or :attr:`error` says
    why not. :meth:`stop` may come at any moment: during the start, it kills the worker processes
    at once rather than waiting for them to be up.

    The scheduler runs on the thread's own event loop; every worker has a nanny (a worker that
    dies is started again, and its batch goes to another worker). The thread, and so every
    process it starts, blocks SIGINT."""

    def __init__(self, workers: int, share: int = 0) -> None:
        self.workers = workers
        #: the processes that share the machine's memory (this one too, when it does objects)
        self.share = max(share, workers)
        self.ended = threading.Event()
        self.client: Any = None
        self.error = ""
        self._up = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="medcloak-local-cluster", daemon=True)

    def start(self) -> LocalCluster:
        self._thread.start()
        return self

    def _run(self) -> None:
        from multiprocessing import resource_tracker

        # multiprocessing's helper process first: starting it unblocks SIGINT in the thread that does
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        loop = asyncio.new_event_loop()
        try:
            with self._lock:
                if self._stopping:
                    return
                self._loop = loop
                self._task = loop.create_task(self._serve())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - a cluster that cannot start is reported, never raised here
            self.error = self.error or _first_line(exc)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                with self._lock:
                    loop.close()
            self.ended.set()

    async def _serve(self) -> None:
        import dask
        from distributed import Client, Nanny, Scheduler
        from tornado.ioloop import IOLoop

        loop = asyncio.get_running_loop()
        nannies: list[Any] = []
        connecting: asyncio.Future[Any] | None = None
        # Dask's own logs stay off the terminal, ERRORs included (a worker's heartbeat racing the
        # scheduler's close at the end of a run logs a traceback): what fails, the run reports
        # itself (ClusterError, the manifest)
        with _quiet(logging.CRITICAL), dask.config.set(QUIET_DASK):
            # no dashboard, and the scheduler's HTTP server on a free loopback port, never 8787
            scheduler = Scheduler(host="127.0.0.1", port=0, dashboard=False, dashboard_address="127.0.0.1:0")
            try:
                await scheduler
                nannies = [
                    Nanny(scheduler.address, host="127.0.0.1", nthreads=1, name=i, dashboard=False,
                          memory_limit=_memory_limit(self.share), silence_logs=logging.CRITICAL,
                          env={"NUMBA_NUM_THREADS": "1"},
                          preload=[*dask.config.get("distributed.worker.preload", []), __name__])
                    for i in range(self.workers)
                ]
                await asyncio.gather(*nannies)
                # the client shares this loop (one thread of this process for the scheduler and it)
                here = IOLoop.current()
                connecting = loop.run_in_executor(
                    None, lambda: Client(scheduler.address, loop=here, set_as_default=False, timeout=CONNECT_SECONDS))
                self.client = await connecting
                self._up = True
                self.ended.set()
                await asyncio.Event().wait()  # until stop() cancels
            finally:
                # a start that is stopped halfway is no news, nor is a close: nothing of it is said
                with _quiet(logging.CRITICAL):
                    if not self._up:  # still starting: nothing to wait for, and no process may stay
                        await _kill_workers(nannies)
                    if connecting is not None:
                        with suppress(Exception):
                            self.client = self.client or await connecting
                    if self.client is not None:
                        with suppress(Exception):
                            await loop.run_in_executor(None, self.client.close)
                    if nannies:
                        await asyncio.gather(*(n.close(timeout=5) for n in nannies), return_exceptions=True)
                    await scheduler.close()

    def stop(self) -> None:
        """Stop the cluster, or its start, and wait (at most :data:`STOP_SECONDS`) for its
        processes to end."""
        with self._lock:
            self._stopping = True
            if self._loop is not None and self._task is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._task.cancel)  # the loop closes under the lock only
        if self._thread.is_alive():
            self._thread.join(STOP_SECONDS)
            if self._thread.is_alive():
                log.warning("the local cluster did not stop within %d s", STOP_SECONDS)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__


class _quiet:
    """Dask's messages on standard error at ``level`` and above only, for a while (as a local
    cluster of Dask's own does)."""

    def __init__(self, level: int) -> None:
        self.level = level
        self._saved: list[tuple[logging.Handler, int]] = []

    def __enter__(self) -> None:
        for handler in logging.getLogger("distributed").handlers:
            if isinstance(handler, logging.StreamHandler):
                self._saved.append((handler, handler.level))
                handler.setLevel(self.level)

    def __exit__(self, *exc: object) -> None:
        for handler, level in reversed(self._saved):
            handler.setLevel(level)


def _memory_limit(workers: int) -> Any:
    """The machine's memory shared out among the workers (Dask's ``"auto"`` for a local cluster)."""
    try:
        from distributed.worker_memory import parse_memory_limit

        return parse_memory_limit("auto", 1, workers, logger=log)
    except Exception:  # noqa: BLE001 - another Dask: let it decide
        return "auto"


async def _kill_workers(nannies: list[Any]) -> None:
    """Kill the worker processes that the nannies have started so far, and wait until they are
    gone: a nanny's own close would first wait for its worker to be up. A worker whose spawn was
    asked for has its process id within moments (the spawn is a fork and an exec)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_SECONDS
    processes = []
    for nanny in nannies:
        worker = getattr(nanny, "process", None)  # the nanny's handle on its worker, once asked for
        process = getattr(worker, "process", None)
        if process is None:
            continue
        while process.pid is None and str(getattr(worker, "status", "")).endswith("starting") \
                and loop.time() < deadline:
            await asyncio.sleep(0.005)
        if process.pid is not None:
            processes.append(process)
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except OSError:
            pass
    for process in processes:
        with suppress(Exception):
            await process.join(max(0.1, deadline - loop.time()))


class Dask(Executor):
    """Batches as Dask tasks on a ``distributed.Client``: a local cluster of processes made here
    (``workers`` > 1, waiting for it to be up), or a scheduler given by address, or a client the
    caller owns."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, client: Any = None,
                 warm: bool = True) -> None:
        """``warm``: warm the workers of a client given here (a local cluster's workers warmed up
        as they started)."""
        try:
            import distributed  # noqa: F401
        except ImportError as exc:  # pragma: no cover - a dependency
            from .errors import MissingDependencyError

            raise MissingDependencyError("dask.distributed is needed for --workers > 1 and --scheduler") from exc
        self._own_cluster: LocalCluster | None = None
        self._own_client = client is None
        if client is not None:
            self.client = client
        elif scheduler is not None:
            from distributed import Client

            check_scheduler(scheduler)
            try:
                self.client = Client(scheduler, set_as_default=False, timeout=CONNECT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - whatever Dask raises, one line for the user
                raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler} ({_first_line(exc)})") from None
        else:
            self._own_cluster = LocalCluster(workers).start()
            try:
                self._own_cluster.ended.wait()
            except BaseException:  # Ctrl-C while waiting
                self._own_cluster.stop()
                raise
            if self._own_cluster.client is None:
                self._own_cluster.stop()
                raise ClusterError(f"the local cluster did not start ({self._own_cluster.error})")
            self.client = self._own_cluster.client
            self._own_client = False  # the cluster closes it
        if self._own_cluster is None and warm:  # a local cluster's workers warmed up as they started (dask_setup)
            self.client.run(_warm)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, batcher: Batcher, job: Job, per_object: float = 0.0) -> Iterator[list[Outcome]]:
        """``per_object``: seconds per object measured elsewhere (by :class:`Hybrid`), to size
        the first batches; measured here otherwise."""
        yield from Flow(self.client, self.workers, batcher, job, per_object).drain()

    def cancel_all(self) -> None:
        try:
            self.client.cancel(list(self.client.futures.values()), force=True)
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._own_cluster is not None:
            self._own_cluster.stop()


class Flow:
    """Batches of one run in flight on a Dask client: at most two per worker, each sized by the
    measured time per object (see the module's docstring). :meth:`ready` gives the outcomes of the
    batches done by now without waiting, :meth:`drain` waits for all of them; either submits new
    batches in their place as long as the batcher has tasks. ``sharers``: the processes sharing
    the work left (the workers, and this process when it works too), to size the last batches so
    that all of them end together."""

    def __init__(self, client: Any, workers: int, batcher: Batcher, job: Job, per_object: float = 0.0,
                 sharers: int = 0) -> None:
        from distributed import as_completed

        self.client = client
        self.batcher = batcher
        self.per_object = per_object
        self.sync = 0.0  # measured seconds of a batch's sync
        self.window = 2 * workers
        self.sharers = max(sharers, workers)
        self.in_flight = 0
        [self.job] = client.scatter([job], broadcast=True, hash=False)
        self.pending = as_completed(loop=client.loop)
        self.fill()

    def _next_batch(self) -> list[Task]:
        if self.per_object <= 0:
            count = FIRST_BATCH
        else:
            # a batch's sync costs at most 1/SYNC_SHARE of its work (network file systems)
            target = min(MAX_INTERVAL, max(TARGET_SECONDS, SYNC_SHARE * self.sync))
            count = int(min(MAX_OBJECTS, max(1, target / self.per_object)))
        left = self.batcher.remaining()
        if left is not None:  # the end is in sight: share what is left
            count = min(count, max(1, -(-left // (2 * self.sharers))))
        return self.batcher.take(count)

    def fill(self) -> None:
        while self.in_flight < self.window:
            batch = self._next_batch()
            if not batch:
                return
            self.pending.add(self.client.submit(run_batch, batch, self.job, pure=False))
            self.in_flight += 1

    def _outcomes(self, future: Any) -> list[Outcome]:
        try:
            outcomes, seconds, synced = future.result()
        except RunError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the cluster raises stops the run
            raise ClusterError(
                f"a batch could not be run on the cluster ({type(exc).__name__}); run again with --resume"
            ) from None
        self.in_flight -= 1
        if outcomes:
            sample = seconds / len(outcomes)
            self.per_object = sample if self.per_object <= 0 else 0.7 * self.per_object + 0.3 * sample
            self.sync = synced if self.sync <= 0 else 0.7 * self.sync + 0.3 * synced
        future.release()
        self.fill()
        return outcomes  # type: ignore[no-any-return]

    def ready(self) -> Iterator[list[Outcome]]:
        """The outcomes of the batches done by now, without waiting for the others."""
        for future in self.pending.next_batch(block=False):
            yield self._outcomes(future)

    def drain(self) -> Iterator[list[Outcome]]:
        """The outcomes of every batch, as each ends, until the batcher has no task left."""
        for future in self.pending:
            yield self._outcomes(future)


class Hybrid(Executor):
    """Several workers on this machine without waiting for them: objects are done here, one at a
    time, from the first one on, and a :class:`LocalCluster` is started in the background once the
    work left looks worth it (see :meth:`worth_a_cluster`); it joins in between two objects once it
    is up. Until then, recording an outcome and doing the next object take turns in this process
    (neither waits on the other).

    Up to :data:`WORKS_TOO` workers, this process is one of them: the cluster has one process
    fewer and this one goes on doing objects between collecting the cluster's outcomes (on two
    cores, a second process beside an idle coordinator would leave a core to the coordinator's
    few milliseconds; starting one process fewer also costs a process's imports less). With more
    workers, this process only hands out batches and records them, so that no worker waits for a
    batch while an object is done here."""

    #: estimated seconds of work left that are worth starting the cluster for (0: start at once)
    start_seconds: float | None = None

    def __init__(self, workers: int) -> None:
        self.workers = workers
        #: this process does objects alongside the cluster's workers
        self.works_too = workers <= WORKS_TOO
        self.cluster_size = workers - 1 if self.works_too else workers
        self.cluster: LocalCluster | None = None
        #: the executor that joined, once the cluster is up
        self.dask: Dask | None = None
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
        object down but has no idle core to give, does not start a cluster by itself."""
        threshold = START_SECONDS if self.start_seconds is None else self.start_seconds
        left = batcher.remaining()
        if left is None:
            return True
        if len(recent) < MEDIAN_OF:
            return False
        return left * sorted(recent)[len(recent) // 2] > threshold

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        from .engine import process_task

        recent: deque[float] = deque(maxlen=RECENT)  # seconds of the last tasks done here
        objects, seconds = 0, 0.0  # and all of them, in objects, the first task aside
        flow: Flow | None = None
        while True:
            if flow is None and self.cluster is not None and self.cluster.ended.is_set() and not self._given_up:
                self.dask = self._take_over()
                if self.dask is not None:
                    sharers = self.dask.workers + (1 if self.works_too else 0)
                    flow = Flow(self.dask.client, self.dask.workers, batcher, job,
                                per_object=seconds / objects if objects else 0.0, sharers=sharers)
                    if not self.works_too:
                        break
            if flow is not None:
                yield from flow.ready()
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
            if self.cluster is None and self.worth_a_cluster(batcher, recent):
                self.cluster = LocalCluster(self.cluster_size, share=self.workers).start()
            yield outcomes
        if flow is not None:
            yield from flow.drain()

    def _take_over(self) -> Dask | None:
        assert self.cluster is not None
        if self.cluster.client is not None:
            try:
                dask = Dask(client=self.cluster.client, warm=False)
            except Exception as exc:  # noqa: BLE001 - the run goes on here
                self.cluster.error = _first_line(exc)
            else:
                log.info("a local cluster of %d workers took over after %d objects done in this process%s",
                         dask.workers, self.inline, ", which goes on as one more" if self.works_too else "")
                return dask
        log.warning("the local cluster did not start (%s): the run goes on in this process", self.cluster.error)
        self._given_up = True
        self.cluster.stop()
        return None

    def cancel_all(self) -> None:
        if self.dask is not None:
            self.dask.cancel_all()

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def make_executor(workers: int, scheduler: str | None, client: Any) -> Executor:
    """Inline for one worker, a :class:`Hybrid` for several, Dask for a scheduler or a client."""
    if client is not None or scheduler is not None:
        return Dask(scheduler=scheduler, client=client)
    if workers <= 1:
        return Inline()
    return Hybrid(workers)
