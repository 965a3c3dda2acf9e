"""The long fuzzing campaign (issue 15), with its figures: structure-aware mutations of real files of
every handled format (``tests/fuzzing.py``: seeds, mutations, the per-case invariant) run through
the engine's ``process_task`` under tight limits, many more cases than CI's ``tests/test_fuzz.py``.

Cases run in child processes, a chunk at a time, each case bounded in time (``--case-seconds``): a
case that kills its child (a segmentation fault in a codec, memory) is recorded as a crash with
the signal, and the campaign goes on with the next case in a new child. Each case is drawn from
``random.Random(f"{seed}/{group}/{i}")``, so a case is reproduced from its number alone
(``--only GROUP:I``), and failing cases are written to ``--keep``.

Printed: cases tried by seed (format and transfer syntax), their outcomes (released, quarantined
and skipped by the type of their reason, failures by class with an example), the peak resident
memory a case added to its process (largest, and by group), the slowest cases, and the time per
case against the reference measured in the same children: the same engine on the unmutated
seeds (the machine is shared: compare ratios, not seconds). Also: the file system the cases were
written to and the load of the machine before and after.

    python benchmarks/fuzz_campaign.py --cases 5000 [--groups dicom photo] [--keep /tmp/fuzz-failures]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GROUPS = ("dicom", "photo", "slide", "volume")
#: cases a child runs before the next child takes over (bounds what one child accumulates)
CHUNK = 1500



def draw(seeds, group: str, base: int, i: int):  # type: ignore[no-untyped-def]
    """Case ``i`` of ``group``: its seed, its mutation and the random source of both."""
    import fuzzing

    rng = random.Random(f"{base}/{group}/{i}")
    mine = [s for s in seeds if fuzzing.group(s) == group]
    seed = rng.choice(mine)
    op = rng.choice(sorted(fuzzing.MUTATIONS[seed.family]))
    return fuzzing.mutate(seed, op, rng)


def child(group: str, start: int, stop: int, base: int, out: Path, work: Path, keep: str, seconds: float) -> None:
    """Run cases ``start``..``stop`` of ``group``, one JSON line each to ``out`` (a ``start`` line
    first, so the parent knows which case a dead child was in)."""
    import fuzzing

    seeds = fuzzing.seeds()
    # a failing case's files go to KEEP/GROUP/caseI (I: its number, for --only GROUP:I)
    runner = fuzzing.Runner(work, case_seconds=seconds, keep=Path(keep) / group if keep else None)
    with out.open("a", encoding="utf-8") as fh:
        if start == 0:  # the reference: the engine on the unmutated seeds of the group
            for seed in (s for s in seeds if fuzzing.group(s) == group):
                for _ in range(3):
                    res = runner.run(fuzzing.Case(seed, seed.data, "none", "", seed.companions))
                    fh.write(json.dumps({"ref": seed.label, "seconds": res.seconds, "outcome": res.outcome}) + "\n")
        for i in range(start, stop):
            fh.write(json.dumps({"start": i}) + "\n")
            fh.flush()
            case = draw(seeds, group, base, i)
            runner.n = i - 1  # the runner counts the case it runs
            res = runner.run(case)
            fh.write(json.dumps({
                "i": i, "seed": case.seed.label, "op": case.op, "note": case.note[:160], "kind": res.kind,
                "outcome": res.outcome, "reason": res.reason[:160], "error": res.error,
                "class": res.failure_class if res.outcome == "failure" else "", "seconds": res.seconds,
                "growth": res.growth, "size": len(case.data),
            }) + "\n")
            fh.flush()


def campaign(group: str, cases: int, base: int, folder: Path, keep: str, seconds: float) -> list[dict]:
    """Every case of ``group``, in children; a child that dies is a crash of the case it was in."""
    results = folder / f"{group}.jsonl"
    results.unlink(missing_ok=True)
    i = 0
    crashes: list[dict] = []
    while i < cases:
        stop = min(cases, i + CHUNK)
        cmd = [sys.executable, __file__, "--child", group, str(i), str(stop), str(base), str(results),
               str(folder / "work"), keep, str(seconds)]
        try:
            proc = subprocess.run(cmd, timeout=seconds * 4 + CHUNK * 2, capture_output=True, text=True)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -9
        lines = [json.loads(x) for x in results.read_text(encoding="utf-8").splitlines() if x.strip()]
        done = {x["i"] for x in lines if "i" in x}
        started = [x["start"] for x in lines if "start" in x and x["start"] not in done]
        if code == 0 and not started:
            i = stop
            continue
        if not started:  # died before its first case
            raise SystemExit(f"a child of {group} failed before any case: {proc.stderr[-2000:]}")
        dead = started[-1]
        import fuzzing

        case = draw(fuzzing.seeds(), group, base, dead)
        crashes.append({"i": dead, "seed": case.seed.label, "op": case.op, "note": case.note[:160], "kind": "?",
                        "outcome": "failure", "reason": f"the process died (exit {code})", "error": "Crash",
                        "class": f"crash (exit {code})", "seconds": 0.0, "growth": 0, "size": len(case.data)})
        with results.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({**crashes[-1]}) + "\n")
        i = dead + 1
    lines = [json.loads(x) for x in results.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [x for x in lines if "i" in x or "ref" in x]


def report(group: str, rows: list[dict]) -> dict:
    refs = [x for x in rows if "ref" in x]
    cases = [x for x in rows if "i" in x]
    best: dict[str, float] = {}
    for x in refs:  # each seed's best of 3 (its first run pays for lazy imports), then their median
        best[x["ref"]] = min(best.get(x["ref"], x["seconds"]), x["seconds"])
    ref = sorted(best.values())[len(best) // 2] if best else 0.0
    per = sorted(x["seconds"] for x in cases)
    median = per[len(per) // 2] if per else 0.0
    print(f"\n== {group}: {len(cases)} cases")
    by_seed: dict[str, Counter] = defaultdict(Counter)
    for x in cases:
        by_seed[x["seed"]][x["outcome"]] += 1
    print(f"  {'seed':28s} {'cases':>6s} {'released':>9s} {'quarant.':>9s} {'skipped':>8s} {'failure':>8s}")
    for seed, c in sorted(by_seed.items()):
        print(f"  {seed:28s} {sum(c.values()):6d} {c['released']:9d} {c['quarantined']:9d} {c['skipped']:8d} "
              f"{c['failure']:8d}")
    reasons = Counter(f"{x['outcome']}: {x['error'] or '?'}" for x in cases if x["outcome"] in ("quarantined", "skipped"))
    print("  quarantined / skipped by the type of their reason:")
    for k, v in reasons.most_common():
        print(f"    {v:6d}  {k}")
    fails = Counter(x["class"] for x in cases if x["outcome"] == "failure")
    print(f"  failures: {sum(fails.values())}")
    for k, v in fails.most_common():
        ex = next(x for x in cases if x["outcome"] == "failure" and x["class"] == k)
        print(f"    {v:6d}  {k}\n            e.g. case {ex['i']}: {ex['seed']} {ex['op']}: {ex['note'][:100]} -> "
              f"{ex['reason'][:100]}")
    peak = max(cases, key=lambda x: x["growth"]) if cases else None
    if peak is not None:
        print(f"  peak memory a case added: {peak['growth'] / 2**20:.0f} MB (case {peak['i']}: {peak['seed']} "
              f"{peak['op']}: {peak['note'][:80]} -> {peak['outcome']})")
    print("  slowest cases:")
    for x in sorted(cases, key=lambda x: -x["seconds"])[:5]:
        print(f"    {x['seconds']:7.3f} s  case {x['i']}: {x['seed']} {x['op']}: {x['note'][:80]} -> {x['outcome']} "
              f"{x['reason'][:60]}")
    if ref:
        print(f"  median case {median * 1e3:.2f} ms = {median / ref:.2f}x the unmutated seeds' "
              f"{ref * 1e3:.2f} ms (same children)")
    return {"cases": len(cases), "outcomes": Counter(x["outcome"] for x in cases), "failures": fails,
            "peak": peak["growth"] if peak else 0}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT / "tests"))
        group, start, stop, base, out, work, keep, seconds = sys.argv[2:10]
        child(group, int(start), int(stop), int(base), Path(out), Path(work), keep, float(seconds))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000, help="cases per group (default 5000)")
    ap.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    ap.add_argument("--seed", type=int, default=0, help="the campaign's random seed")
    ap.add_argument("--case-seconds", type=float, default=20.0, help="the time bound of one case")
    ap.add_argument("--keep", default="", help="a folder to keep the files of failing cases in")
    ap.add_argument("--tmp", default=None, help="where cases are written (a real disk; default: the system's)")
    ap.add_argument("--only", default="", help="GROUP:I: run one case and print it (to reproduce it)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(HERE))
    from _timing import file_system

    if args.only:
        import fuzzing

        group, i = args.only.split(":")
        case = draw(fuzzing.seeds(), group, args.seed, int(i))
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            res = fuzzing.Runner(Path(tmp), case_seconds=args.case_seconds,
                                 keep=Path(args.keep) if args.keep else None).run(case)
        print(f"{case.seed.label} {case.op}: {case.note}\n-> {res.outcome} {res.reason} {res.failure_class}")
        return
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="fuzz-campaign-") as tmp:
        folder = Path(tmp)
        fs = file_system(folder)
        load0 = os.getloadavg()
        print(f"fuzz campaign: seed {args.seed}, {args.cases} cases per group, cases written to {fs}; "
              f"{os.cpu_count()} cores, load {load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}")
        started = time.perf_counter()
        totals = {}
        for group in args.groups:
            t = time.perf_counter()
            rows = campaign(group, args.cases, args.seed, folder, args.keep, args.case_seconds)
            totals[group] = report(group, rows)
            print(f"  {time.perf_counter() - t:.0f} s for the group")
        load1 = os.getloadavg()
        n = sum(t["cases"] for t in totals.values())
        outcomes = sum((t["outcomes"] for t in totals.values()), Counter())
        fails = sum((t["failures"] for t in totals.values()), Counter())
        print(f"\n== all: {n} cases in {time.perf_counter() - started:.0f} s: "
              + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
              + f"; {len(fails)} failure classes; peak memory a case added "
              f"{max(t['peak'] for t in totals.values()) / 2**20:.0f} MB; load after {load1[0]:.1f}")


if __name__ == "__main__":
    main()
