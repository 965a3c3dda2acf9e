"""Worker processes on this machine for ``--workers N``: each one a plain Python process fed
batches through a pipe, with no scheduler, nanny or client in between.

Why not a local Dask cluster: on a small machine, where this process does objects too (see
:class:`medcloak.executors.Hybrid`), Dask's scheduler, client and nannies run beside the objects
and its workers import Dask before their first object; measured on 2 cores, ``--workers 2``
gained 1.24x over one worker on a local Dask cluster against 1.66x on plain processes in the same
rounds (``benchmarks/experiment_local_pool.py``). A remote scheduler (``--scheduler``) is still
Dask's.

What the pool keeps of a local cluster's safety:

- **A worker that ends is started again** and its batches go to the workers again: the batch it
  was doing is split into single objects, and an object whose worker ends again while doing it
  alone is quarantined with the reason (:data:`TRIES`); the run goes on. A file such a worker
  may have placed in the release has no manifest line, and the run removes it at its end.
- **Time**: an object that goes on :data:`OVERTIME` seconds past its time limit
  (``--object-timeout``) in a worker is stopped by killing its worker (the worker interrupts
  the Python code of an object at the limit itself, :mod:`medcloak.watch`; code that holds the
  interpreter's lock, a numba kernel or a C codec, only a kill stops). Each worker notes in
  memory shared with this process which object of its batch it is doing and since when; the
  object is quarantined ("took longer than N s"), its batch-mates are sent again, and another
  worker takes its place.
- **Memory**: each worker may hold at most its share of the machine's memory (the cgroup's limit
  where there is one) in data (``RLIMIT_DATA``, set once the worker has warmed up): an object that
  needs more fails in its worker with MemoryError, and is quarantined, instead of the machine
  running out.
- **Ctrl-C is for this process**: workers are started with SIGINT blocked and ignore it from
  their first instruction on; this process stops them itself.
- **No process is left behind**: a worker ends when its pipe closes (this process ended or
  stopped it) and is killed when it does not end in time.

Workers are started by ``spawn`` (a fresh interpreter, never a fork of this threaded process),
from a thread of their own, so that this process goes on doing objects meanwhile; the pool counts
as up (:attr:`Pool.ended` set, :attr:`Pool.error` empty) once every worker has warmed up.
"""

from __future__ import annotations

import importlib
import logging
import os
import pickle
import signal
import threading
import time
from collections import deque
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Iterator

from .errors import ClusterError, RunError
from .model import Outcome, Task
from .watch import reason as timeout_reason

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from .engine import Job
    from .executors import Batcher, Sizer

#: an object is quarantined once a worker has ended this many times while doing it (the first
#: time in a batch, the second time alone)
TRIES = 2
#: workers that end before they are ready, one after the other, before the run stops
START_FAILURES = 3
#: seconds a worker has to end once its pipe is closed before it is killed
STOP_SECONDS = 10
#: batches in flight per worker (one done, one waiting in its pipe)
WINDOW = 2
#: data a worker may use beyond what it holds after warming up, when its share is smaller
HEADROOM = 512 << 20
#: seconds past an object's time limit after which its worker is killed (the worker's own
#: interruption at the limit did not stop it)
OVERTIME = 5.0
#: longest wait, in seconds, between two looks at the workers' objects' times
LOOK = 1.0

log = logging.getLogger("medcloak")


class _Batch:
    """Tasks sent to a worker together, and how many times a worker ended while doing them."""

    __slots__ = ("tasks", "tries")

    def __init__(self, tasks: list[Task], tries: int = 0) -> None:
        self.tasks = tasks
        self.tries = tries


class _Worker:
    """A worker process, the pipes to and from it, and the batches sent it and not yet answered."""

    def __init__(self, process: Any, tasks: Connection, results: Connection, doing: Any) -> None:
        self.process = process
        self.tasks = tasks
        self.results = results
        self.ready = False
        self.sent: deque[tuple[int, _Batch]] = deque()
        #: shared with the worker: the number of the batch it is doing, the position of the task
        #: in progress (-1: none) and when it began (time.monotonic, the same clock in every process)
        self.doing = doing
        #: the position, in its first batch, of the task it was killed for taking too long
        self.overdue: int | None = None

    def overdue_task(self, timeout: float, now: float) -> int | None:
        """The position in its first batch of the task it has been doing for longer than
        ``timeout`` seconds, if any."""
        if not self.sent:
            return None
        first = tuple(self.doing)
        if first[0] != self.sent[0][0] or first[1] < 0 or now - first[2] <= timeout:
            return None
        return int(first[1]) if tuple(self.doing) == first else None  # not read while it changed


class Pool:
    """``workers`` worker processes doing batches of one run's ``job``. :meth:`start` launches
    them in a thread; once :attr:`ended` is set, either they are all up or :attr:`error` says why
    not (and they are gone). Then :meth:`begin` hands them batches from a batcher, :meth:`ready`
    gives the outcomes of the batches done by now and :meth:`drain` waits for all of them.
    ``share``: the processes that share the machine's memory (this one too, when it does
    objects)."""

    #: modules each worker imports, calling their ``setup()``, before warming up (for tests)
    preload: tuple[str, ...] = ()

    def __init__(self, workers: int, job: Job, share: int = 0) -> None:
        self.size = workers
        self.share = max(share, workers)
        self.ended = threading.Event()
        self.error = ""
        #: a worker ended with objects in progress (files it placed may have no manifest line)
        self.lost = False
        self._job = job
        self._payload = b""
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._failures = 0  # workers that ended before they were ready, one after the other
        self._number = 0
        self._retry: deque[_Batch] = deque()
        self._quarantined: list[Outcome] = []
        self._batcher: Batcher | None = None
        self._sizer: Sizer | None = None
        self._thread = threading.Thread(target=self._start_all, name="medcloak-workers", daemon=True)
        self._timeout = job.limits.timeout if job is not None else 0.0

    # ---- start and stop -----------------------------------------------------------------------

    def start(self) -> Pool:
        self._thread.start()
        return self

    def _start_all(self) -> None:
        try:
            self._payload = pickle.dumps(self._job, protocol=pickle.HIGHEST_PROTOCOL)
            for _ in range(self.size):
                self._launch()
            for worker in list(self._workers):
                self._await_ready(worker)
        except Exception as exc:  # noqa: BLE001 - a pool that cannot start is reported, never raised here
            if not self._stopping:
                self.error = self.error or _first_line(exc)
            self.kill()  # the caller stops the pool, which reaps them
        finally:
            self.ended.set()

    def _launch(self) -> _Worker:
        """Start one worker and send it the job. SIGINT is blocked in this thread meanwhile, so
        the worker starts with it blocked (a signal that comes meanwhile waits for the unblock)."""
        import multiprocessing
        from multiprocessing import resource_tracker

        # multiprocessing's helper process first: starting it unblocks SIGINT in the thread that does
        resource_tracker.ensure_running()
        context = multiprocessing.get_context("spawn")
        task_reader, task_writer = context.Pipe(duplex=False)
        result_reader, result_writer = context.Pipe(duplex=False)
        limit = _machine_memory() // self.share
        doing = context.RawArray("d", (-1.0, -1.0, 0.0))
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with self._lock:
                if self._stopping:
                    raise ClusterError("stopped")
                process = context.Process(target=_serve, args=(task_reader, result_writer, self.preload, limit, doing),
                                          name="medcloak-worker", daemon=True)
                process.start()
                worker = _Worker(process, task_writer, result_reader, doing)
                self._workers.append(worker)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            task_reader.close()
            result_writer.close()
        try:
            worker.tasks.send_bytes(self._payload)
        except OSError:
            pass  # it ended already: its end is noticed where it is waited for
        return worker

    def _await_ready(self, worker: _Worker) -> None:
        from multiprocessing.connection import wait

        while not worker.ready:
            wait([worker.results, worker.process.sentinel])
            try:
                message = worker.results.recv_bytes() if worker.results.poll() else None
            except (EOFError, OSError):
                message = None
            if message is not None:
                self._message(worker, message)
            elif not worker.process.is_alive():
                raise ClusterError(f"a worker process ended during its start ({_how(worker.process)})")

    def stop(self) -> None:
        """Stop the workers, or their start: each one's pipe is closed (an idle worker ends at
        once), and a worker that has not ended within :data:`STOP_SECONDS` is killed. Only the
        thread that runs the pool (the one that called :meth:`start`) stops it."""
        if not self.ended.is_set():  # still starting: nothing to wait for
            self.kill()
        if self._thread.ident is not None:
            self._thread.join()  # once its workers are killed, the start ends within moments
        with self._lock:
            self._stopping = True
            workers = list(self._workers)
        for worker in workers:
            worker.tasks.close()
        for worker in workers:
            worker.process.join(STOP_SECONDS)
        self.kill()
        for worker in workers:
            worker.process.join()
            worker.results.close()

    def kill(self) -> None:
        """Kill every worker at once (their batches in progress are lost); any thread may call
        this, and :meth:`stop` reaps them."""
        with self._lock:
            self._stopping = True
            workers = list(self._workers)
        for worker in workers:
            with suppress(OSError, ValueError):  # ended already
                worker.process.kill()

    # ---- batches ------------------------------------------------------------------------------

    def begin(self, batcher: Batcher, sizer: Sizer) -> None:
        """Hand the workers batches from ``batcher``, sized by ``sizer``."""
        self._batcher, self._sizer = batcher, sizer
        self._fill()

    def _fill(self) -> None:
        assert self._batcher is not None and self._sizer is not None
        for worker in self._workers:
            while worker.ready and len(worker.sent) < WINDOW:
                if self._retry:
                    batch = self._retry.popleft()
                else:
                    batch = _Batch(self._sizer.take(self._batcher))
                    if not batch.tasks:
                        return
                self._number += 1
                worker.sent.append((self._number, batch))
                try:
                    worker.tasks.send_bytes(pickle.dumps((self._number, batch.tasks), protocol=pickle.HIGHEST_PROTOCOL))
                except OSError:
                    break  # it ended: its sentinel says so, and its batches go to the others

    def busy(self) -> bool:
        """Whether batches are in flight or waiting to be sent again."""
        return bool(self._retry) or any(w.sent for w in self._workers)

    def ready(self) -> Iterator[list[Outcome]]:
        """The outcomes of the batches done by now, without waiting for the others."""
        yield from self._collect(0)

    def drain(self) -> Iterator[list[Outcome]]:
        """The outcomes of every batch, as each ends, until the batcher has no task left."""
        while self.busy() or self._quarantined:
            yield from self._collect(None)

    def _collect(self, timeout: float | None) -> Iterator[list[Outcome]]:
        from multiprocessing.connection import wait

        if self._quarantined:
            outcomes, self._quarantined = self._quarantined, []
            yield outcomes
        if not self.busy():
            return
        owners: dict[Any, _Worker] = {}
        for worker in self._workers:
            owners[worker.results] = worker
            owners[worker.process.sentinel] = worker
        if self._timeout:  # look at the objects' times at least every LOOK seconds
            timeout = min(timeout, LOOK) if timeout is not None else LOOK
        for ready in wait(list(owners), timeout):
            worker = owners[ready]
            if worker not in self._workers:
                continue  # already seen to end, through its other handle
            while worker.results.poll():  # what it said before it ended counts
                try:
                    message = worker.results.recv_bytes()
                except (EOFError, OSError):
                    break
                outcomes = self._message(worker, message)
                if outcomes is not None:
                    yield outcomes
            if not worker.process.is_alive():
                self._ended(worker)
        self._stop_overdue()
        self._fill()
        if self._quarantined:
            outcomes, self._quarantined = self._quarantined, []
            yield outcomes

    def _message(self, worker: _Worker, message: bytes) -> list[Outcome] | None:
        number, answer = pickle.loads(message)
        if number == "ready":
            worker.ready = True
            self._failures = 0
            return None
        sent, _ = worker.sent.popleft()
        assert sent == number, "a worker answered out of order"
        if isinstance(answer, RunError):
            raise answer
        if isinstance(answer, BaseException):
            raise ClusterError(
                f"a batch could not be run in a worker process ({type(answer).__name__}); run again with --resume"
            ) from None
        outcomes, seconds, synced = answer
        assert self._sizer is not None
        self._sizer.learn(len(outcomes), seconds, synced)
        self._fill()
        return outcomes  # type: ignore[no-any-return]

    def _stop_overdue(self) -> None:
        """Kill every worker that goes on with an object :data:`OVERTIME` seconds past the time
        limit (its end is then seen as any other's, and :meth:`_ended` quarantines the object)."""
        if not self._timeout:
            return
        now = time.monotonic()
        for worker in self._workers:
            if worker.overdue is None:
                worker.overdue = worker.overdue_task(self._timeout + OVERTIME, now)
                if worker.overdue is not None:
                    with suppress(OSError, ValueError):
                        worker.process.kill()

    def _ended(self, worker: _Worker) -> None:
        """A worker ended during the run: its batches go to the workers again (see the module's
        docstring), and another worker takes its place."""
        with self._lock:
            self._workers.remove(worker)
        worker.process.join(STOP_SECONDS)
        how = _how(worker.process)
        worker.tasks.close()
        worker.results.close()
        if not worker.ready:
            self._failures += 1
        if worker.overdue is not None:
            log.warning("a worker process was killed: its object took longer than %g s; another one is started",
                        self._timeout)
        else:
            log.warning("a worker process ended (%s); another one is started", how)
        for position, (_, batch) in enumerate(worker.sent):
            if position > 0:  # not begun
                self._retry.append(batch)
                continue
            self.lost = True
            if worker.overdue is not None and worker.overdue < len(batch.tasks):
                # that object is quarantined at once (done again, it would take as long); the
                # others were not at fault: they go again as they were
                self._quarantined.extend(_quarantine(batch.tasks[worker.overdue], timeout_reason(self._timeout)))
                rest = batch.tasks[:worker.overdue] + batch.tasks[worker.overdue + 1:]
                if rest:
                    self._retry.append(_Batch(rest, batch.tries))
            elif len(batch.tasks) > 1:
                self._retry.extend(_Batch([task], batch.tries + 1) for task in batch.tasks)
            elif batch.tries + 1 >= TRIES:
                self._quarantined.extend(_quarantine(batch.tasks[0], f"its worker process ended twice while doing it ({how})"))
            else:
                self._retry.append(_Batch(batch.tasks, batch.tries + 1))
        worker.sent.clear()
        if self._failures >= START_FAILURES:
            raise ClusterError(f"worker processes end as they start ({how}); run again with --resume")
        try:
            self._launch()
        except OSError as exc:
            raise ClusterError(f"cannot start a worker process ({exc.strerror or exc}); run again with --resume") from None


def _quarantine(task: Task, reason: str) -> list[Outcome]:
    return [Outcome(s.path, task.object_id if s is task.source else "", "quarantined", reason=reason, bytes_in=s.size,
                    format=s.format)
            for s in (task.source, *task.members)]


def _how(process: Any) -> str:
    code = process.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__


def _machine_memory() -> int:
    """Bytes of memory this process's machine (or its cgroup, when smaller) has."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 1 << 40
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


# ---- in the worker process ----------------------------------------------------------------------


def _serve(tasks: Connection, results: Connection, preload: tuple[str, ...], limit: int, doing: Any) -> None:
    """A worker's life: ignore Ctrl-C, take the job, warm up, say so, then do the batches that
    come until the pipe closes, noting in ``doing`` which task it is doing and since when (see
    :class:`_Worker`). Whatever ends it, it ends without a word (this process reports)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.environ["NUMBA_NUM_THREADS"] = "1"  # the workers share out the cores already
        job = pickle.loads(tasks.recv_bytes())
        for name in preload:
            setup = getattr(importlib.import_module(name), "setup", None)
            if setup is not None:
                setup()
        from .executors import _warm, run_batch

        _warm(kernels=False)
        _limit_memory(limit)
        import queue

        inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=_read, args=(tasks, inbox), name="medcloak-inbox", daemon=True).start()
        results.send_bytes(pickle.dumps(("ready", None)))
        while (message := inbox.get()) is not None:
            number, batch = pickle.loads(message)

            def begin(position: int, number: int = number) -> None:
                doing[2] = time.monotonic()
                doing[1] = position
                doing[0] = number

            try:
                answer: Any = run_batch(batch, job, begin)
            except Exception as exc:  # noqa: BLE001 - reported to the main process, which decides
                answer = exc if _picklable(exc) else RuntimeError(type(exc).__name__)
            doing[1] = -1
            results.send_bytes(pickle.dumps((number, answer), protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:  # noqa: BLE001 - the main process sees the end and says it
        os._exit(1)
    os._exit(0)


def _read(tasks: Connection, inbox: Any) -> None:
    """Take every batch off the pipe as it comes, so that the main process never waits to send."""
    try:
        while True:
            inbox.put(tasks.recv_bytes())
    except (EOFError, OSError):
        inbox.put(None)


def _picklable(exc: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001
        return False
    return True


def _limit_memory(limit: int) -> None:
    """Hold this process's data to ``limit`` bytes (at least what it holds now and
    :data:`HEADROOM`), unless a stricter limit is set already."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not a POSIX system
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    want = max(limit, _data_bytes() + HEADROOM)
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft != resource.RLIM_INFINITY and soft <= want:
        return
    resource.setrlimit(resource.RLIMIT_DATA, (want, hard))


def _data_bytes() -> int:
    """This process's data segment and private writable mappings (what RLIMIT_DATA counts)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
