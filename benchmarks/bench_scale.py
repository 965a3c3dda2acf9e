"""Throughput of ``medcloak.engine.run`` inline and on local Dask clusters of 1 and 2 workers, and
the scheduler's overhead on 100k tiny tasks, all in one run.

Corpora (made in a temporary folder, not timed):

- ``files``: ``--files`` small CT objects (pydicom's CT_small.dcm with distinct UIDs and patients).
- ``tiny``: ``--tiny`` files of 132 bytes that are not DICOM: each task is a sniff and a quarantine,
  so the time is almost all per-task overhead, the worst case for a scheduler.

Each engine runs the same corpus into a fresh release; clusters are started before the clock and
passed in as a ``distributed.Client`` (starting a cluster costs 1-2 s once per run, not per
object). Printed: objects per second, the ratios the goals are about, and the peak resident memory
of each worker process (and of this process for the inline runs).

Run: ``python benchmarks/bench_scale.py [--files 3000] [--tiny 100000] [--rounds 2] [--tmp DIR]``
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path


def make_files(folder: Path, count: int) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder.mkdir(parents=True)
    for i in range(count):
        base.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1143.{i}"
        base.file_meta.MediaStorageSOPInstanceUID = base.SOPInstanceUID
        base.PatientID = f"P{i % 50:04d}"
        base.StudyInstanceUID = f"1.2.826.0.1.3680043.2.1144.{i % 50}"
        base.SeriesInstanceUID = f"1.2.826.0.1.3680043.2.1145.{i % 150}"
        base.save_as(folder / f"{i:06d}.dcm")


def make_tiny(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        sub = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir()
        (sub / f"{i:06d}.bin").write_bytes(b"not an image " * 10 + b"xx")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_run(src: Path, out: Path, key: Path, client=None) -> float:  # type: ignore[no-untyped-def]
    from medcloak.engine import run

    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".audit"), ignore_errors=True)
    t = time.perf_counter()
    run([src], out, secret_file=key, workers=1, client=client)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--tiny", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tmp", type=Path, default=None)
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        root = Path(tmp)
        key = root / "key"
        key.write_bytes(b"benchmark-secret-0123456789")
        key.chmod(0o600)
        make_files(root / "files", args.files)
        make_tiny(root / "tiny", args.tiny)
        clusters = {}
        for n in (1, 2):
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            clusters[n] = (cluster, Client(cluster))
        results: dict[tuple[str, str], float] = {}
        for rnd in range(args.rounds):
            order = ["inline", "dask-1", "dask-2"]
            order = order[rnd % 3 :] + order[: rnd % 3]
            for corpus in ("files", "tiny"):
                for engine in order:
                    if corpus == "tiny" and engine == "dask-2":
                        continue
                    client = None if engine == "inline" else clusters[int(engine[-1])][1]
                    seconds = timed_run(root / corpus, root / "out", key, client)
                    key_ = (corpus, engine)
                    results[key_] = min(results.get(key_, float("inf")), seconds)
        memory = {n: max(c.run(peak_rss_mb).values()) for n, (_, c) in clusters.items()}
        for cluster, client in clusters.values():
            client.close()
            cluster.close()

    counts = {"files": args.files, "tiny": args.tiny}
    print(f"{'corpus':<8} {'engine':<8} {'seconds':>9} {'objects/s':>10}")
    for (corpus, engine), seconds in sorted(results.items()):
        print(f"{corpus:<8} {engine:<8} {seconds:>9.2f} {counts[corpus] / seconds:>10.0f}")
    speedup = results[("files", "dask-1")] / results[("files", "dask-2")]
    one = results[("files", "dask-1")] / results[("files", "inline")]
    overhead = results[("tiny", "dask-1")] / results[("tiny", "inline")] - 1
    print(f"speed-up, 2 workers over 1 (files):        {speedup:.2f}x   goal >= 1.6x  {'MET' if speedup >= 1.6 else 'MISSED'}")
    print(f"Dask with 1 worker / inline (files):        {one:.3f}    goal <= 1.10  {'MET' if one <= 1.10 else 'MISSED'}")
    print(f"scheduler overhead, {args.tiny} tiny tasks:   {overhead * 100:+.1f} %  goal < 10 %   {'MET' if overhead < 0.10 else 'MISSED'}")
    print(f"peak memory per worker: 1-worker cluster {memory[1]:.0f} MB, 2-worker cluster {memory[2]:.0f} MB; "
          f"this process (inline runs, corpora) {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
