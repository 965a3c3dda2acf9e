"""An experiment, not the product: what ``--workers 2`` would give if this process's partner were a
plain process pool (one worker forked from a preloaded fork server, no Dask scheduler, nanny or
client in this process) instead of a local Dask cluster of one worker, against ``--workers 1`` and
the product's ``--workers 2``, in the same rounds. It measured the decision that made the
product's local workers such processes (``medcloak.pool``): since then, ``w2`` below is the
product's pool (spawned workers, restarted when they end, memory-bounded) and ``pool`` this bare
one, so the two rows show what the pool's safety costs.

Each run is ``medcloak.engine.run`` in a fresh Python process, writing a new release folder on the
file system of ``--tmp`` (named in the output); the ``pool`` run replaces the executor the engine
makes by :class:`PoolHybrid` below, which does objects here one at a time and keeps two batches in
flight on the pool (sized as the product sizes them: half a second of work, smaller at the end).
It has none of the local cluster's safety: no worker restarted when it dies, no memory limit.

Corpus: ``--objects`` distinct small objects from pydicom's test files (``bench_dicom.build_small``).

Run: ``python benchmarks/experiment_local_pool.py [--objects 4000] [--rounds 4] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

HERE = Path(__file__).resolve().parent

_JOB = None


def _init(job):  # type: ignore[no-untyped-def]
    import signal

    global _JOB
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _JOB = job


def _batch(tasks):  # type: ignore[no-untyped-def]
    from medcloak.executors import run_batch

    return run_batch(tasks, _JOB)


class PoolHybrid:
    """This process and one pool worker share the objects (see the module's docstring)."""

    workers = 2
    lost = False

    def map(self, batcher, job):  # type: ignore[no-untyped-def]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from medcloak.engine import process_task

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["medcloak.engine", "medcloak.formats.dicom", "medcloak.formats.photo",
                                    "medcloak.executors"])
        pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_init, initargs=(job,))
        inflight: deque = deque()
        per_object = 0.0

        def fill() -> None:
            while len(inflight) < 2:
                left = batcher.remaining()
                count = int(0.5 / per_object) if per_object else 4
                if left is not None:
                    count = min(count, max(1, -(-left // 4)))
                batch = batcher.take(count)
                if not batch:
                    return
                inflight.append(pool.submit(_batch, batch))

        def done():  # type: ignore[no-untyped-def]
            nonlocal per_object
            outcomes, seconds, _sync = inflight.popleft().result()
            if outcomes:
                per_object = seconds / len(outcomes)
            fill()
            return outcomes

        fill()
        while True:
            while inflight and inflight[0].done():
                yield done()
            batch = batcher.take(1)
            if not batch:
                break
            yield process_task(batch[0], job)
        while inflight:
            yield done()
        pool.shutdown()

    def close(self) -> None:
        pass


def _one_run(src: str, out: str, key: str, engine: str) -> None:
    import medcloak.executors as executors
    from medcloak.engine import run

    if engine == "pool":
        executors.make_executor = lambda *args: PoolHybrid()  # type: ignore[assignment]
    run([Path(src)], Path(out), secret_file=Path(key), workers=1 if engine == "w1" else 2)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import warnings

    import bench_command
    import bench_dicom
    from medcloak.pseudonym import Keyring
    from medcloak.rules.profile import load_profile

    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="experiment-pool-") as tmp:
        root = Path(tmp)
        key = root / "key"
        key.write_bytes(bench_dicom.SECRET)
        key.chmod(0o600)
        warnings.simplefilter("ignore")
        paths, note = bench_dicom.build_small(root / "in", args.objects, load_profile(), Keyring(bench_dicom.SECRET))
        keep = set(paths)
        for p in (root / "in").rglob("*"):
            if p.is_file() and p not in keep:
                p.unlink()
        engines = ("w1", "pool", "w2")
        times: dict[str, list[float]] = {e: [] for e in engines}
        for rnd in range(args.rounds):
            for i, engine in enumerate(engines[rnd % 3:] + engines[: rnd % 3]):
                out = root / f"out-{rnd}-{i}"
                code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import experiment_local_pool as e; " \
                       f"e._one_run({str(root / 'in')!r}, {str(out)!r}, {str(key)!r}, {engine!r})"
                subprocess.run(["sync"], check=False)
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
                times[engine].append(time.perf_counter() - started)
        print(f"corpus: {len(paths)} objects ({note}); release on {bench_command.file_system(root)}; "
              f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the end; {args.rounds} rounds")
        for engine in engines:
            ts = times[engine]
            print(f"{engine:<5} best {min(ts):6.2f} s  median {statistics.median(ts):6.2f} s")
        for engine in ("pool", "w2"):
            per = [a / b for a, b in zip(times["w1"], times[engine])]
            print(f"{engine} over w1, round by round: median {statistics.median(per):.2f}x "
                  f"[{min(per):.2f}-{max(per):.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
