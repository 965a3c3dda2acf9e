"""How many planted identifiers survive each de-identifier, on the same objects.

Builds the canary object of the test suite (a CT image with a distinct token in every place an
identifier hides: standard attributes at every depth, relocated private blocks, UN, preamble,
File Meta, trailing padding, SR text, descriptors, curves, overlays, file and folder names) and
the six sample objects of ``data_samples/dicom``, runs medcloak and dicognito (in-process, as
their command lines do) and counts the planted tokens found in each output's bytes or path.

Run: ``python benchmarks/compare_leaks.py``
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

SAMPLE_TOKENS = ["sinclair", "maud", "elspeth", "nf00482913", "achterberg", "joost", "nf00777120",
                 "19470322", "19820611", "orchard lane", "1632 960 471", "northfield", "okafor",
                 "lindqvist", "nfg-ct-02", "1.2.826.0.1.3680043.10.1024."]


def survivors(root: Path, tokens: list[str]) -> list[str]:
    from conftest import all_bytes_and_names

    blob, names = all_bytes_and_names(root)
    return [t for t in tokens if t.lower().encode() in blob or t.lower() in names]


def run_medcloak(src: Path, out: Path) -> None:
    from medcloak.engine import run

    key = out.parent / "medcloak.key"
    key.write_bytes(b"compare-secret-0123456789")
    run([src], out, secret_file=key)


def run_dicognito(src: Path, out: Path) -> None:
    """dicognito as its command line does: anonymize each file, write it beside, same name."""
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)


def main() -> int:
    from conftest import build_canary

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        canary_src = base / "canary"
        _, canary_tokens = build_canary(canary_src)
        samples_src = base / "samples"
        shutil.copytree(REPO / "data_samples" / "dicom", samples_src)
        print(f"{'engine':10s} {'canary survivors':>18s} {'sample survivors':>18s}")
        for name, fn in (("medcloak", run_medcloak), ("dicognito", run_dicognito)):
            a = survivors(_run(fn, canary_src, base / f"{name}-canary"), canary_tokens)
            b = survivors(_run(fn, samples_src, base / f"{name}-samples"), SAMPLE_TOKENS)
            print(f"{name:10s} {len(a):>8d} of {len(canary_tokens):<7d} {len(b):>8d} of {len(SAMPLE_TOKENS):<7d}")
            if a or b:
                print("   surviving:", ", ".join(a + b))
    return 0


def _run(fn, src: Path, out: Path) -> Path:  # type: ignore[no-untyped-def]
    fn(src, out)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
