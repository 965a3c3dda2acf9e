"""Throughput benchmark: medcloak against a pydicom read/write floor and dicognito, in one process.

Run::

    python benchmarks/bench_dicom.py [--files N] [--ct N] [--rounds N] [--tmp DIR] [--no-engine]
                                     [--diagnose]

The machine this runs on is shared and noisy, so absolute times mean little; what counts is the
ratio of each engine to the floor measured *in the same run*, with interleaved rounds (the order of
the engines rotates every round; each engine's best round is the primary figure, its median is
printed too). The script always exits 0: it is a benchmark, not a test.

Corpora (built in a temporary directory during setup, which is not timed)
-------------------------------------------------------------------------
``small``  ~1,500 small files replicated from pydicom's bundled test files (the ``test_files``
           folder next to ``pydicom.data``, with its ``dicomdirtests`` sub-folders). A source file
           is kept only if ``pydicom.dcmread(path)`` (no ``force``) reads it and ``save_as`` can
           write it back as read (the floor's work), it has SOP Class UID and SOP Instance UID,
           it is not a DICOMDIR (Media Storage SOP Class 1.2.840.10008.1.3.10), and medcloak
           releases it (``deidentify_dicom`` returns without a
           quarantine/skip error). The kept files are cycled through until N copies exist: copy
           ``i`` of source ``s`` belongs to replica group ``r = i // len(kept)``; it gets a new
           unique SOP Instance UID (and Media Storage SOP Instance UID), a Study/Series Instance
           UID that is new per replica group (files that shared a study still share it within a
           group), and a Patient ID distinct per replica group. The copies are written with
           pydicom in their original encoding. Every copy is then checked once more with
           medcloak (untimed); any copy it would not release is dropped, so all engines do
           exactly the same work and medcloak never gets a cheap duplicate skip.
``ct512``  ~200 CT slices of 512x512 signed 16-bit, synthesised from pydicom's ``CT_small.dcm``:
           Rows = Columns = 512, Bits Allocated/Stored 16, Pixel Representation 1, new random
           int16 Pixel Data (OW, 524,288 bytes), one patient/study/series with unique SOP Instance
           UIDs, Instance Number and Image Position, written uncompressed in Explicit VR Little
           Endian.

Engines (all one process, inline, each round writing to a fresh output folder)
------------------------------------------------------------------------------
``floor``             ``ds = pydicom.dcmread(p); ds.save_as(out/<i>.dcm)``.
``medcloak``          the API loop: ``deidentify_dicom`` + ``publish`` (basic profile), and the
                      one group sync that makes the objects durable at the end (as the engine
                      does by the group). This is the primary medcloak figure. The pseudonym HMAC cache is cleared before
                      every timed round so later rounds are not helped by earlier ones.
``medcloak-engine``   ``medcloak.engine.run([in_dir], out_dir, secret_file=..., workers=1)``:
                      adds discovery, the audit folder and the release documentation.
``dicognito``         what ``dicognito -o OUT --quiet`` does for each file: ``dcmread(force=False)``,
                      its default burned-in-annotation guard (warn if YES), ``Anonymizer.anonymize``,
                      ``save_as(OUT/<new SOPInstanceUID>.dcm, enforce_file_format=True)``; one
                      ``Anonymizer`` per run, as its command line makes one per process.

``--diagnose`` adds two rows that are *not* valid releases, only evidence of where medcloak's
time goes: ``mc-diag-nofsync`` (the API loop without its group sync) and ``mc-diag-nowrite`` (``deidentify_dicom`` only, nothing written).

Goals: medcloak >= 0.60x the floor and >= 1.6x dicognito on ``small``; >= 0.65x the floor on
``ct512``.
"""

from __future__ import annotations

import argparse
import gc
import io
import glob
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import pydicom.data
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medcloak.durable import PENDING
from medcloak.errors import MedcloakError
from medcloak.formats.dicom import deidentify_dicom
from medcloak.pseudonym import Keyring, _digest
from medcloak.publish import publish
from medcloak.rules.profile import load_profile

SECRET = b"benchmark-secret-0123456789"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
GOALS = {  # (corpus, numerator, denominator) -> minimum ratio
    ("small", "medcloak", "floor"): 0.60,
    ("small", "medcloak", "dicognito"): 1.6,
    ("ct512", "medcloak", "floor"): 0.65,
}


# ---- setup (not timed) ---------------------------------------------------------------------------


def _refusal(path: Path, profile, keyring) -> str | None:
    """Why medcloak would quarantine/skip ``path``, or ``None`` when it releases it."""
    try:
        deidentify_dicom(path, profile, keyring)
    except MedcloakError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def source_files(profile, keyring) -> tuple[list[Path], int]:
    root = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
    candidates = sorted(p for p in glob.glob(root + "/**/*", recursive=True) if os.path.isfile(p))
    kept = []
    for p in candidates:
        try:
            ds = pydicom.dcmread(p)
        except Exception:  # noqa: BLE001 - not readable without force: not part of the corpus
            continue
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            continue
        meta = getattr(ds, "file_meta", None)
        if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_DIRECTORY:
            continue
        if "DirectoryRecordSequence" in ds:
            continue
        try:  # the floor must be able to write it back as read
            ds.save_as(io.BytesIO())
        except Exception:  # noqa: BLE001
            continue
        if _refusal(Path(p), profile, keyring) is not None:
            continue
        kept.append(Path(p))
    return kept, len(candidates)


def build_small(dest: Path, n: int, profile, keyring) -> tuple[list[Path], str]:
    kept, seen = source_files(profile, keyring)
    if not kept:
        raise SystemExit("no usable source files found in pydicom's test data")
    study_map: dict[tuple[int, str], str] = {}
    series_map: dict[tuple[int, str], str] = {}
    patient_map: dict[tuple[int, str], str] = {}
    paths = []
    for i in range(n):
        r, src = divmod(i, len(kept))
        ds = pydicom.dcmread(kept[src])
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            meta.MediaStorageSOPInstanceUID = sop
        old_study = str(ds.get("StudyInstanceUID", "")) or f"none-{src}"
        old_series = str(ds.get("SeriesInstanceUID", "")) or f"none-{src}"
        old_pid = str(ds.get("PatientID", "")) or f"none-{src}"
        ds.StudyInstanceUID = study_map.setdefault((r, old_study), generate_uid())
        ds.SeriesInstanceUID = series_map.setdefault((r, old_series), generate_uid())
        ds.PatientID = patient_map.setdefault((r, old_pid), f"BENCH{r:03d}P{len(patient_map):05d}")
        folder = dest / f"g{r:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{i:05d}_{kept[src].name}"
        ds.save_as(out)
        paths.append(out)
    good = _keep_released(paths, profile, keyring)
    note = (f"{len(kept)} of {seen} pydicom test files usable, {n} copies written, "
            f"{len(paths) - len(good)} dropped by the replica check")
    return good, note


def build_ct(dest: Path, n: int, profile, keyring) -> tuple[list[Path], str]:
    from pydicom.data import get_testdata_file

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(20240601)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        ds = template.copy()
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientID = "BENCHCT0001"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-250.0, -250.0, float(i)]
        ds.SliceLocation = float(i)
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = rng.integers(-32768, 32768, 512 * 512, dtype=np.int16).tobytes()
        ds["PixelData"].VR = "OW"
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        out = dest / f"ct{i:04d}.dcm"
        ds.save_as(out, implicit_vr=False, little_endian=True, enforce_file_format=True)
        paths.append(out)
    good = _keep_released(paths, profile, keyring)
    note = f"{n} slices of 512x512 int16 written, {len(paths) - len(good)} dropped by the check"
    return good, note


def _keep_released(paths: list[Path], profile, keyring) -> list[Path]:
    good = []
    for p in paths:
        why = _refusal(p, profile, keyring)
        if why is None:
            good.append(p)
        else:
            print(f"  setup: dropped replica {p.name} ({why})")
            p.unlink()  # keep the folder identical to the list (medcloak-engine walks the folder)
    return good


# ---- engines (timed) -----------------------------------------------------------------------------


def run_floor(paths: list[Path], out: Path, _in_dir: Path) -> int:
    out.mkdir(parents=True)
    for i, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        ds.save_as(out / f"{i}.dcm")
    return len(paths)


def make_medcloak() -> Callable[[list[Path], Path, Path], int]:
    profile = load_profile()
    keyring = Keyring(SECRET)

    def run_medcloak(paths: list[Path], out: Path, _in_dir: Path) -> int:
        out.mkdir(parents=True)
        done = 0
        for p in paths:
            try:
                publish(deidentify_dicom(p, profile, keyring), out)
                done += 1
            except MedcloakError:
                pass
        PENDING.commit()  # the written objects made durable, as the engine does by the group
        return done

    return run_medcloak


def make_medcloak_diagnostics() -> dict[str, Callable[[list[Path], Path, Path], int]]:
    """Diagnostic rows (``--diagnose``), not releases: where the medcloak time goes."""
    profile = load_profile()
    keyring = Keyring(SECRET)
    plain = make_medcloak()

    def no_publish(paths: list[Path], out: Path, _in_dir: Path) -> int:
        done = 0
        for p in paths:
            try:
                deidentify_dicom(p, profile, keyring)  # in memory only: no file is written
                done += 1
            except MedcloakError:
                pass
        return done

    def no_fsync(paths: list[Path], out: Path, in_dir: Path) -> int:
        real = PENDING.commit
        PENDING.commit = lambda: 0.0  # type: ignore[method-assign]  # publish() without the group sync
        try:
            return plain(paths, out, in_dir)
        finally:
            PENDING.commit = real  # type: ignore[method-assign]
            PENDING.files.clear()
            PENDING.folders.clear()

    return {"mc-diag-nofsync": no_fsync, "mc-diag-nowrite": no_publish}


def make_medcloak_engine(secret_file: Path) -> Callable[[list[Path], Path, Path], int]:
    from medcloak.engine import run

    def run_engine(paths: list[Path], out: Path, in_dir: Path) -> int:
        summary = run([in_dir], out, secret_file=secret_file, workers=1)
        return summary.ok

    return run_engine


def run_dicognito(paths: list[Path], out: Path, _in_dir: Path) -> int:
    from dicognito.anonymizer import Anonymizer

    log = logging.getLogger("dicognito.bench")
    anonymizer = Anonymizer()
    os.makedirs(out)
    for p in paths:
        with pydicom.dcmread(p, force=False) as ds:
            if ds.get("BurnedInAnnotation") == "YES":  # dicognito's default guard: if-yes, warn
                log.warning("Burned In Annotation is YES in %s", p)
            anonymizer.anonymize(ds)
            ds.save_as(os.path.join(out, ds.SOPInstanceUID + ".dcm"), enforce_file_format=True)
    return len(paths)


# ---- timing and report ---------------------------------------------------------------------------


def _clean(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / (out.name + ".audit"), ignore_errors=True)


def measure(corpus: str, paths: list[Path], in_dir: Path, engines: dict, rounds: int,
            work: Path) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in engines}
    names = list(engines)
    for rnd in range(rounds):
        order = names[rnd % len(names):] + names[: rnd % len(names)]
        for name in order:
            out = work / f"{corpus}-{name}-{rnd}"
            _clean(out)
            _digest.cache_clear()
            os.sync()  # no engine pays for the previous one's dirty pages
            gc.collect()
            t0 = time.perf_counter()
            done = engines[name](paths, out, in_dir)
            dt = time.perf_counter() - t0
            _clean(out)
            if done != len(paths):
                print(f"  ! {corpus}/{name} round {rnd}: {done} of {len(paths)} files done")
            times[name].append(dt)
            print(f"  {corpus:6} round {rnd + 1}/{rounds} {name:16} {len(paths) / dt:8.1f} files/s",
                  flush=True)
    return times


def report(corpus: str, n: int, times: dict[str, list[float]]) -> list[str]:
    best = {k: n / min(v) for k, v in times.items()}
    med = {k: n / statistics.median(v) for k, v in times.items()}
    lines = [f"corpus {corpus}: {n} files, best of {len(next(iter(times.values())))} rounds",
             f"  {'engine':16} {'files/s':>9} {'(median)':>9} {'x floor':>8} {'(median)':>9}"]
    for k in times:
        lines.append(f"  {k:16} {best[k]:9.1f} {med[k]:9.1f} {best[k] / best['floor']:8.2f} "
                     f"{med[k] / med['floor']:9.2f}")
    for (c, a, b), goal in GOALS.items():
        if c != corpus or a not in best or b not in best:
            continue
        ratio, ratio_med = best[a] / best[b], med[a] / med[b]
        verdict = "MET" if ratio >= goal else "MISSED"
        lines.append(f"  {a}/{b} = {ratio:.2f} (median {ratio_med:.2f})   goal >= {goal:.2f}: {verdict}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1500, help="small-file corpus size (default 1500)")
    ap.add_argument("--ct", type=int, default=200, help="512x512 CT slices (default 200; 0 skips)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--tmp", default=None, help="parent folder for the temporary corpus/output")
    ap.add_argument("--no-engine", action="store_true", help="skip the medcloak.engine.run row")
    ap.add_argument("--diagnose", action="store_true",
                    help="add diagnostic medcloak rows: publish without fsync; no writing at all")
    args = ap.parse_args(argv)

    warnings.simplefilter("ignore")  # pydicom warns about the odd test files; noise here
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    logging.getLogger("dicognito").setLevel(logging.ERROR)

    import dicognito

    print(f"python {sys.version.split()[0]}, pydicom {pydicom.__version__}, "
          f"dicognito {dicognito.__version__}, cpus {os.cpu_count()}")
    profile, keyring = load_profile(), Keyring(SECRET)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medcloak-bench-", dir=args.tmp) as tmp:
        work = Path(tmp)
        secret_file = work / "secret.key"
        secret_file.write_bytes(SECRET)
        engines = {"floor": run_floor, "medcloak": make_medcloak()}
        if not args.no_engine:
            engines["medcloak-engine"] = make_medcloak_engine(secret_file)
        engines["dicognito"] = run_dicognito
        if args.diagnose:
            engines.update(make_medcloak_diagnostics())

        corpora = []
        t0 = time.perf_counter()
        small_dir = work / "in-small"
        small, note = build_small(small_dir, args.files, profile, keyring)
        mb = sum(p.stat().st_size for p in small) / 1e6
        print(f"setup small: {note}; {len(small)} files, {mb:.1f} MB "
              f"({time.perf_counter() - t0:.1f} s)")
        corpora.append(("small", small, small_dir))
        if args.ct > 0:
            t0 = time.perf_counter()
            ct_dir = work / "in-ct512"
            ct, note = build_ct(ct_dir, args.ct, profile, keyring)
            mb = sum(p.stat().st_size for p in ct) / 1e6
            print(f"setup ct512: {note}; {len(ct)} files, {mb:.1f} MB "
                  f"({time.perf_counter() - t0:.1f} s)")
            corpora.append(("ct512", ct, ct_dir))

        out_lines = []
        for corpus, paths, in_dir in corpora:
            times = measure(corpus, paths, in_dir, engines, args.rounds, work)
            out_lines += report(corpus, len(paths), times)
    print()
    print("\n".join(out_lines))
    print(f"(total {time.perf_counter() - started:.0f} s; ratios are same-run, best round each)")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not fail the build
        import traceback

        traceback.print_exc()
        print(f"benchmark aborted: {exc}")
    sys.exit(0)
