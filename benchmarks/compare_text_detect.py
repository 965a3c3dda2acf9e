"""Two checkouts' ``medcloak.detect_text`` on the same frames: are the boxes identical, and how
fast is one against the other (issue 13: the detector made faster must give the same boxes).

Each checkout runs in its own worker process (``PYTHONPATH`` at its ``src`` and ``kernels``), both
making the frames of this checkout's ``tests/textset.py`` (1024 x 768, seeds given; 360 frames of
seed 0 are the benchmark's set, seed 1 the validation set). The boxes of every frame are
compared; then, on the first seed, ``--rounds`` interleaved rounds time each worker on the same
frames (the order alternating), and the ratio of each round is printed with the machine's load
and the file system of the temporary folder.

``--record PATH`` replays frames recorded elsewhere (a pickle of ``(image, kwargs)`` pairs, as
written by ``benchmarks/record_text_calls.py`` from the unit tests' calls) through both instead.

Run: ``python benchmarks/compare_text_detect.py --base /tmp/textbase [--seeds 0 1] [--frames 360]
[--rounds 3]``, where ``/tmp/textbase`` is a checkout of the other version (``git worktree add
/tmp/textbase <commit>``). Exits 1 when any frame's boxes differ.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _worker(seed: int, frames: int, record: str | None) -> None:
    """Make the frames, then answer commands on stdin: ``boxes`` (every frame's boxes, JSON),
    ``time`` (seconds for one pass over the frames), ``quit``."""
    import medcloak

    if record:
        with open(record, "rb") as fh:
            calls = pickle.load(fh)
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        import textset

        calls = []
        for f in textset.make_frames(frames, seed, (1024, 768)):
            kw = {"photometric": f.photometric, "bits_stored": f.bits} if f.representation == "stored" else {}
            calls.append((f.image, kw))
    for image, kw in calls:
        if image.ndim == 2 and image.size > 1000:
            medcloak.detect_text(image, **kw)  # warm-up: kernels loaded from numba's cache
            break
    print(json.dumps({"ready": len(calls), "module": medcloak.__file__}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "boxes":
            out = []
            for image, kw in calls:
                try:
                    out.append([list(map(int, b)) for b in medcloak.detect_text(image, **kw)])
                except Exception as exc:  # noqa: BLE001 - a refused frame must be refused by both
                    out.append(f"{type(exc).__name__}: {exc}")
            print(json.dumps(out), flush=True)
        elif cmd == "time":
            t = time.perf_counter()
            for image, kw in calls:
                try:
                    medcloak.detect_text(image, **kw)
                except Exception:  # noqa: BLE001, S112 - refused frames cost their time too
                    continue
            print(json.dumps(time.perf_counter() - t), flush=True)
        else:
            break


class Worker:
    def __init__(self, checkout: Path, seed: int, frames: int, record: str | None) -> None:
        env = dict(os.environ, PYTHONPATH=f"{checkout / 'src'}{os.pathsep}{checkout / 'kernels'}")
        args = [sys.executable, __file__, "--worker", "--seed", str(seed), "--frames", str(frames)]
        if record:
            args += ["--record", record]
        self.p = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = None

    def wait(self) -> dict:
        if self.ready is None:
            self.ready = json.loads(self.p.stdout.readline())
        return self.ready

    def ask(self, cmd: str):  # type: ignore[no-untyped-def]
        self.wait()
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self) -> None:
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, help="checkout of the version compared against")
    ap.add_argument("--new", type=Path, default=ROOT, help="checkout of the version measured (this one)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    ap.add_argument("--frames", type=int, default=360)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--record", default=None)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.worker:
        _worker(args.seed, args.frames, args.record)
        return 0
    if args.base is None:
        ap.error("--base is needed")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _timing import file_system

    print(f"{os.cpu_count()} cores; load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"temporary folder {tempfile.gettempdir()} on {file_system(Path(tempfile.gettempdir()))}")
    differ = 0
    seeds = [None] if args.record else args.seeds
    for i, seed in enumerate(seeds):
        old = Worker(args.base, seed or 0, args.frames, args.record)
        new = Worker(args.new, seed or 0, args.frames, args.record)
        n = old.wait()["ready"]
        print(f"{'recorded calls' if args.record else f'seed {seed}'}: {n} frames; old {old.wait()['module']}, "
              f"new {new.wait()['module']}", flush=True)
        a, b = old.ask("boxes"), new.ask("boxes")
        bad = [j for j in range(n) if a[j] != b[j]]
        differ += len(bad)
        print(f"  boxes identical on {n - len(bad)} of {n} frames "
              f"({sum(len(x) for x in a if isinstance(x, list))} boxes, {sum(isinstance(x, str) for x in a)} refused)"
              + (f"; differ on frames {bad[:20]}" if bad else ""), flush=True)
        if i == 0 and args.rounds:
            ratios = []
            for r in range(args.rounds):
                pair = (old, new) if r % 2 == 0 else (new, old)
                t = {w: w.ask("time") for w in pair}
                ratios.append(t[old] / t[new])
                print(f"  round {r + 1}: old {n / t[old]:.1f} frames/s, new {n / t[new]:.1f} frames/s, "
                      f"new / old {ratios[-1]:.2f}x; load {os.getloadavg()[0]:.2f}", flush=True)
            s = sorted(ratios)
            print(f"  speed-up new / old: median {s[len(s) // 2]:.2f}x (range {s[0]:.2f}-{s[-1]:.2f}x)")
        old.close()
        new.close()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("IDENTICAL" if differ == 0 else f"DIFFERENT on {differ} frames")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
