"""The report's pooling sections (issue 16): ``text`` (every distinct kept text value, pooled in
an on-disk SQLite file, flagged, capped) and ``attributes`` (attribute x action counts) on a
synthetic manifest of N released objects, against reading the same manifest's lines with
``json`` alone (the floor: every section streams the manifest once), in the same run.

Manifest: one line per object as the audit writes it (input, id, status, outputs, digests, uids,
patient, actions, review), the review record with 9 kept text attributes: common descriptors
(study, series, protocol, body part, manufacturer, model, from small vocabularies), a value per
series (a series description with its number), a value per patient (an institution-like
department with a digit), and a rare free-text comment in one object of ten; 12 changed and 25
kept attributes, a few inside sequences.

Each measure runs in its own forked process, which reports its time and its peak resident memory
(``ru_maxrss``); measures are interleaved over ``--repeat`` rounds (the machine is shared and
noisy): the best time and the spread (min-max) are printed, with the ratio to the json floor of
the same round. The file system of the working folder is printed. Run:
``python benchmarks/bench_report_text.py [--objects 100000 1000000] [--repeat 3] [--dir PATH]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import file_system

STUDIES = ["CHEST", "HEAD^ROUTINE", "ABDOMEN PELVIS", "CT THORAX W CONTRAST", "MRI BRAIN WO", "KNEE RIGHT",
           "L-SPINE", "CTA HEAD W/WO", "PET-CT WB", "MAMMO SCREENING"] + [f"Protocol {i}" for i in range(10)]
SERIES = ["T1 MPRAGE SAG", "Axial 5.0mm", "AX DWI 1000b", "COR T2 FS", "LUNG 1.0 B70f", "Localizer", "SAG T1 FLAIR",
          "ep2d_diff_3scan_trace_p2", "MIP 10mm", "DOSE REPORT"]
BODY = ["CHEST", "HEAD", "ABDOMEN", "KNEE", "LSPINE", "BREAST", "PELVIS", "NECK", "WHOLEBODY", "HEART"]
MAKERS = [("SIEMENS", "Skyra"), ("GE MEDICAL SYSTEMS", "Discovery MR750"), ("Philips", "Ingenia"),
          ("TOSHIBA", "Aquilion ONE"), ("Canon", "Vantage Orian")]
CHANGED = ["PatientName", "PatientID", "PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate",
           "ContentDate", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "AccessionNumber",
           "RequestAttributesSequence>RequestedProcedureID"]
ACTS = ["replaced", "replaced", "shifted", "shifted", "shifted", "shifted", "shifted", "replaced", "replaced",
        "replaced", "emptied", "removed"]
KEPT = ["Modality", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
        "SamplesPerPixel", "PhotometricInterpretation", "ImageType", "SliceThickness", "KVP", "StudyDescription",
        "SeriesDescription", "ProtocolName", "BodyPartExamined", "Manufacturer", "ManufacturerModelName",
        "PatientSex", "PatientAge", "InstitutionalDepartmentName", "ImageComments",
        "ProcedureCodeSequence>CodeMeaning", "ProcedureCodeSequence>CodeValue", "SeriesNumber"]


def write_manifest(path: Path, n: int, seed: int = 16) -> None:
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            patient, series = i // 400, i // 100
            maker, model = MAKERS[patient % len(MAKERS)]
            text = {"StudyDescription": [STUDIES[patient % len(STUDIES)]],
                    "SeriesDescription": [f"{SERIES[series % len(SERIES)]} {series % 40}"],
                    "ProtocolName": [STUDIES[(patient * 7) % len(STUDIES)]],
                    "BodyPartExamined": [BODY[patient % len(BODY)]], "Manufacturer": [maker],
                    "ManufacturerModelName": [model], "InstitutionalDepartmentName": [f"Radiology {patient % 997}"],
                    "ProcedureCodeSequence>CodeMeaning": [STUDIES[patient % len(STUDIES)].title()],
                    "ImageType": ["ORIGINAL\\PRIMARY\\AXIAL"]}
            if rnd.random() < 0.1:
                text["ImageComments"] = [f"comment {rnd.getrandbits(40):x} on the study"]
            out = f"MC{patient:014d}/{patient:016x}/{series:016x}/{i:016x}.dcm"
            line = {"input": f"/archive/in/{i:08d}.dcm", "id": f"{i:012x}", "status": "ok", "outputs": [out],
                    "digests": ["0" * 64], "reason": "", "uids": [["1.2.3", "2.25.4"]], "patient": None,
                    "actions": {"replaced": 6, "shifted": 5},
                    "review": {"format": "dicom", "modality": "MR", "patient": f"MC{patient:014d}",
                               "study": f"{patient:016x}", "series": f"{series:016x}", "text": text,
                               "changed": dict(zip(CHANGED, ACTS)), "kept": KEPT}}
            fh.write(json.dumps(line, sort_keys=True) + "\n")


def _json_only(manifest: Path) -> None:
    with manifest.open(encoding="utf-8") as fh:
        for raw in fh:
            json.loads(raw)


def _section(name: str, root: Path) -> None:
    from importlib import import_module

    from medcloak.report import ReportContext

    ctx = ReportContext(root / "release", root / "release.audit", root / "report")
    page = import_module(f"medcloak.report.{name}").build(ctx).html
    (root / "report" / f"{name}.html").write_text(page, encoding="utf-8")


def _child(conn, what: str, root: str) -> None:
    t = time.perf_counter()
    if what == "json":
        _json_only(Path(root) / "release.audit" / "manifest.jsonl")
    else:
        _section(what, Path(root))
    conn.send((time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    conn.close()


def measure(what: str, root: Path) -> tuple[float, int]:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, what, str(root)))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("."))
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}; working folder on "
          f"{file_system(args.dir)}")
    for n in args.objects:
        root = Path(tempfile.mkdtemp(prefix="bench_report_text-", dir=args.dir))
        try:
            (root / "release").mkdir()
            (root / "release.audit").mkdir()
            write_manifest(root / "release.audit" / "manifest.jsonl", n)
            size = (root / "release.audit" / "manifest.jsonl").stat().st_size
            times: dict[str, list[float]] = {"json": [], "text": [], "attributes": []}
            ratios: dict[str, list[float]] = {"text": [], "attributes": []}
            rss: dict[str, int] = {}
            for _ in range(args.repeat):
                for what, taken in times.items():
                    took, peak = measure(what, root)
                    taken.append(took)
                    rss[what] = max(rss.get(what, 0), peak)
                for what in ratios:
                    ratios[what].append(times[what][-1] / times["json"][-1])
            pages = {w: (root / "report" / f"{w}.html").stat().st_size for w in ratios}
            print(f"\n{n:,} objects, manifest {size / 2**20:,.0f} MiB, {args.repeat} rounds")
            for what, ts in times.items():
                ratio = (f"; x json: best {min(ratios[what]):.1f}, spread {min(ratios[what]):.1f}-"
                         f"{max(ratios[what]):.1f}" if what in ratios else "")
                page = f"; page {pages[what] / 1024:,.0f} KiB" if what in pages else ""
                print(f"  {what:<10} best {min(ts):7.1f} s (spread {min(ts):.1f}-{max(ts):.1f} s), "
                      f"{n / min(ts):,.0f} objects/s, peak RSS {rss[what] / 1024:,.0f} MiB{ratio}{page}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
