"""The benchmarks' shared helpers: best of several runs (the least disturbed by the other work of
a shared machine), the file system a figure was measured on, and ``medcloak run`` on one large
file against a durable copy of it (``cp`` then ``sync``), page cache warm and cold."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def file_system(path: Path) -> str:
    """The type and mount point of the file system holding ``path`` (from /proc/mounts), e.g.
    ``ext4 (mounted at /)``: a figure measured on tmpfs is not what a user meets on a disk."""
    best_mount = ("?", "")
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                _dev, mount, kind = line.split()[:3]
                if (str(path.resolve()) + "/").startswith(mount.rstrip("/") + "/") and len(mount) > len(best_mount[1]):
                    best_mount = (kind, mount)
    except OSError:
        pass
    return f"{best_mount[0]} (mounted at {best_mount[1] or '?'})"


def drop_cache(path: Path) -> None:
    """The page cache of ``path`` dropped (after a sync): the next read comes from the disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def command_setup(root: Path) -> tuple[Path, dict[str, str]]:
    """What :func:`against_copy` needs under ``root``: a secret file (0600, returned) and the
    empty folders ``big`` and ``tiny``; and the environment in which ``python -m medcloak`` runs
    this checkout's code (returned)."""
    checkout = Path(__file__).resolve().parent.parent
    key = root / "key"
    key.write_bytes(b"benchmark-secret-0123456789")
    key.chmod(0o600)
    for name in ("big", "tiny"):
        (root / name).mkdir()
    return key, dict(os.environ, PYTHONPATH=os.pathsep.join([str(checkout / "src"), str(checkout / "kernels")]))


def run_command(src: Path, out: Path, key: Path) -> list[str]:
    """``medcloak run`` of ``src`` into ``out``, in one process, quietly."""
    return [sys.executable, "-m", "medcloak", "run", str(src), "--out", str(out), "--secret-file", str(key),
            "--workers", "1", "--quiet"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def against_copy(
    big: Path, tiny: Path, root: Path, key: Path, env: dict[str, str], rounds: int,
) -> tuple[dict[str, dict[str, list[float]]], int]:
    """``medcloak run`` of ``big`` (``run``), of ``tiny`` (``start-up``: what the command costs
    around any file) and ``cp`` then ``sync`` of ``big`` (``cp+sync``), each into a new place under
    ``root``, in an order that rotates per round, page cache warm (the file read once before)
    and cold (its pages dropped before each command); the seconds by cache and measure, and the
    peak resident memory (KB) of one ``run``."""
    results: dict[str, dict[str, list[float]]] = {}
    for cache in ("warm", "cold"):
        times: dict[str, list[float]] = {"run": [], "start-up": [], "cp+sync": []}
        engines = list(times)
        for rnd in range(rounds):
            for engine in engines[rnd % 3:] + engines[: rnd % 3]:
                out = root / f"out-{cache}-{rnd}-{engine}"
                if cache == "cold":
                    drop_cache(big)
                else:
                    with open(big, "rb") as fh:
                        while fh.read(64 << 20):
                            pass
                if engine == "run":
                    seconds = timed(run_command(big, out, key), env)
                elif engine == "start-up":
                    seconds = timed(run_command(tiny, out, key), env)
                else:
                    started = time.perf_counter()
                    subprocess.run(["cp", str(big), str(out)], check=True)
                    subprocess.run(["sync", str(out)], check=True)
                    seconds = time.perf_counter() - started
                times[engine].append(seconds)
                if out.is_dir():
                    shutil.rmtree(out)
                    shutil.rmtree(out.with_name(out.name + ".audit"), ignore_errors=True)
                else:
                    out.unlink()
        results[cache] = times
    rss = subprocess.run(["/usr/bin/time", "-f", "%M", *run_command(big, root / "rss", key)], env=env, check=True,
                         capture_output=True, text=True).stderr.strip().splitlines()[-1]
    return results, int(rss)


def print_against_copy(results: dict[str, dict[str, list[float]]], goal: str) -> None:
    """Each measure's best and median, and (run - start-up) / (cp+sync) round by round: median
    and range, beside ``goal``."""
    for cache, times in results.items():
        for engine, values in times.items():
            print(f"  {cache:<4} {engine:<9} best {min(values):7.2f} s  median {statistics.median(values):7.2f} s")
        per = [(r - s) / c for r, s, c in zip(times["run"], times["start-up"], times["cp+sync"])]
        print(f"  {cache}: (run - start-up) / (cp+sync): median {statistics.median(per):.2f} "
              f"[{min(per):.2f}-{max(per):.2f}]   goal {goal}")
