"""Where tasks run: in this process, on a local Dask cluster of processes, or on a remote Dask
scheduler's workers. One interface: :meth:`Executor.map` takes a :class:`Batcher` and yields lists
of outcomes as batches complete.

A local cluster starts no dashboard and listens on free ports only (never Dask's default 8786 and
8787), and its workers ignore SIGINT: Ctrl-C reaches the whole process group on a terminal, and
the main process stops them itself. The first Ctrl-C (see :class:`Interrupt`) lets the batches
in flight finish and be recorded; no new batch starts.

Batches are sized by feedback, so scheduler overhead stays small whatever the objects: the first
batches are small, then each batch aims at :data:`TARGET_SECONDS` of work by the measured time per
object (at most :data:`MAX_OBJECTS` objects or :data:`MAX_BYTES` of input), and longer where the
one sync that makes a batch durable is slow (:data:`medcloak.durable.SYNC_SHARE`). A worker holds
one object in memory at a time; two batches per worker are in flight.
"""

from __future__ import annotations

import logging
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

TARGET_SECONDS = 0.5
MAX_OBJECTS = 4096
READ_AHEAD = 8192
MAX_BYTES = 256 << 20
FIRST_BATCH = 4
#: seconds to wait for a remote scheduler to answer (Dask's own default is 30)
CONNECT_SECONDS = 10

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


def _warm() -> None:
    """Load the numba kernels (from the on-disk cache) once per worker process, and keep each
    worker's kernels on one thread: the workers already share out the machine's cores."""
    try:
        import numba

        numba.set_num_threads(1)
    except Exception:  # noqa: BLE001 - an optimisation, never a failure
        pass
    try:
        from .pixels.jpeg_meta import strip_jpeg_metadata

        strip_jpeg_metadata(b"\xff\xd8\xff\xd9")
    except Exception:  # noqa: BLE001 - warming is an optimisation, never a failure
        pass


def dask_setup(worker: Any) -> None:
    """Run by Dask in each worker process of a local cluster (this module is its preload): Ctrl-C
    is for the main process, which stops the workers itself."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


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


class Dask(Executor):
    """Batches as Dask tasks on a ``distributed.Client``: a local cluster of processes made here
    (``workers`` > 1), or a scheduler given by address, or a client the caller owns."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, client: Any = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency
            from .errors import MissingDependencyError

            raise MissingDependencyError("dask.distributed is needed for --workers > 1 and --scheduler") from exc
        self._own_cluster = None
        self._own_client = client is None
        if client is not None:
            self.client = client
        elif scheduler is not None:
            check_scheduler(scheduler)
            try:
                self.client = Client(scheduler, set_as_default=False, timeout=CONNECT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - whatever Dask raises, one line for the user
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler} ({first})") from None
        else:
            import dask

            # no dashboard, and the scheduler's HTTP server on a free loopback port, never 8787;
            # Dask's own logs stay off the terminal, ERRORs included (a worker's heartbeat racing
            # the scheduler's close at the end of a run logs a traceback): what fails, the run
            # reports itself (ClusterError, the manifest)
            self._own_cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                preload=[*dask.config.get("distributed.worker.preload", []), __name__],
                silence_logs=logging.CRITICAL, memory_limit="auto",
            )
            self.client = Client(self._own_cluster, set_as_default=False)
        self.client.run(_warm)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, batcher: Batcher, job: Job) -> Iterator[list[Outcome]]:
        from distributed import as_completed

        [job_future] = self.client.scatter([job], broadcast=True, hash=False)
        per_object = 0.0  # measured seconds per object, 0 until known
        sync = 0.0  # measured seconds of a batch's sync
        window = 2 * self.workers

        def next_batch() -> list[Task]:
            if per_object <= 0:
                count = FIRST_BATCH
            else:
                # a batch's sync costs at most 1/SYNC_SHARE of its work (network file systems)
                target = min(MAX_INTERVAL, max(TARGET_SECONDS, SYNC_SHARE * sync))
                count = int(min(MAX_OBJECTS, max(1, target / per_object)))
            left = batcher.remaining()
            if left is not None:  # the end is in sight: share what is left among the workers
                count = min(count, max(1, -(-left // (2 * self.workers))))
            return batcher.take(count)

        pending = as_completed(loop=self.client.loop)
        for _ in range(window):
            batch = next_batch()
            if not batch:
                break
            pending.add(self.client.submit(run_batch, batch, job_future, pure=False))
        for future in pending:
            try:
                outcomes, seconds, synced = future.result()
            except RunError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the cluster raises stops the run
                raise ClusterError(
                    f"a batch could not be run on the cluster ({type(exc).__name__}); run again with --resume"
                ) from None
            if outcomes:
                sample = seconds / len(outcomes)
                per_object = sample if per_object <= 0 else 0.7 * per_object + 0.3 * sample
                sync = synced if sync <= 0 else 0.7 * sync + 0.3 * synced
            future.release()
            batch = next_batch()
            if batch:
                pending.add(self.client.submit(run_batch, batch, job_future, pure=False))
            yield outcomes

    def cancel_all(self) -> None:
        try:
            self.client.cancel(list(self.client.futures.values()), force=True)
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


def make_executor(workers: int, scheduler: str | None, client: Any, small: bool) -> Executor:
    """Inline for one worker (or a run too small to be worth starting a cluster), else Dask."""
    if client is not None or scheduler is not None:
        return Dask(scheduler=scheduler, client=client)
    if workers <= 1 or small:
        return Inline()
    return Dask(workers=workers)

