"""NIfTI-1, NIfTI-2 and Analyze 7.5 volumes (and MINC, read only): read the stored values as they
are, deface, clean the header, write the stored values back.

The output keeps the input's header byte for byte except for the fields that can carry text
about the subject or the site, which are zeroed: ``descrip``, ``aux_file``, ``db_name``,
``intent_name`` (and, in Analyze, ``generated``, ``scannum``, ``patient_id``, ``exp_date``,
``exp_time``, ``hist_un0``); header extensions are dropped. Data type, scaling
(``scl_slope``/``scl_inter``) and affine are unchanged, and every voxel outside the removed region
keeps its stored bytes. MINC is read with nibabel (which cannot write it) and written as NIfTI-1
with the same stored values, scaling and affine.

A BIDS JSON sidecar next to the volume (same name, ``.json``) is released beside it, cleaned of
keys that identify the subject, the site or the time.

Nothing is allocated or inflated beyond the run's limits (:mod:`medcloak.limits`): the header is
read first (a gzipped one from the stream's first bytes), and what it declares (shape x data type
after ``vox_offset``) is checked against the file's size, or its compressed size x the expansion
ratio (beyond its floor of 1 GB: brain masks, mostly zeros, gzip beyond the ratio and are read),
and the per-object ceiling; then only the declared bytes are inflated and kept, the rest of
the stream counted against the running limit (:mod:`medcloak.formats.gz`). A header that declares
nonsense (negative or no dimensions, a ``vox_offset`` that is not a number, extensions that
overrun, an orientation that is not finite) is corrupt input; what the defacer cannot take (values
that are not real numbers or not finite once scaled, voxel sizes no head has) is refused before it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import limits
from ..errors import (CorruptInputError, DeidentificationError, MedcloakError, MissingDependencyError,
                      UnsupportedInputError)
from ..handlers.base import Released
from . import gz

if TYPE_CHECKING:
    from ..pseudonym import Keyring

#: bytes of a header read before its declared sizes are checked: NIfTI-2's and its extension flag
HEAD_BYTES = 544
TEXT_FIELDS = ("descrip", "aux_file", "db_name", "intent_name")
ANALYZE_TEXT = ("generated", "scannum", "patient_id", "exp_date", "exp_time", "hist_un0")
#: BIDS sidecar keys that identify the subject, the site, the operator or the time
SIDECAR_DROP = re.compile(
    r"(?i)^(.*(Name|Address|Date|Time|DeviceSerialNumber|StationName|InstitutionalDepartmentName|"
    r"PatientID|PatientBirth|PatientSex|PatientAge|PatientWeight|Operator|Physician|AccessionNumber|"
    r"StudyID|StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID|ProcedureStep.*|ImageComments|"
    r"SeriesDescription|ProtocolName|Institution.*|DeidentificationMethod.*))$"
)
#: keys kept even though the pattern above would drop them (acquisition timing, not identity)
SIDECAR_KEEP = frozenset({"RepetitionTime", "EchoTime", "InversionTime", "SliceTiming", "AcquisitionDuration",
                          "DelayTime", "FrameTimesStart", "FrameDuration", "ScanStart", "InjectionStart",
                          "EffectiveEchoSpacing", "TotalReadoutTime", "DwellTime", "MixingTime",
                          "ReconMethodName", "TracerName", "PulseSequenceName", "SequenceName",
                          "DecayCorrectionTime", "TaskName", "StartTime"})


def sniff(head: bytes) -> str | None:
    """``nifti``/``analyze`` for an (uncompressed or gzipped) NIfTI or Analyze header; ``None``
    for anything else, a gzip stream broken before its first 352 bytes too (a sniff answers,
    it never raises: the file is then not a supported format)."""
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(head)) as fh:
                head = fh.read(352)
        except (OSError, EOFError, zlib.error):
            return None
    if len(head) >= 348:
        size_le, size_be = int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")
        if 348 in (size_le, size_be):
            return "nifti" if head[344:347] in (b"n+1", b"ni1") else "analyze"
        if 540 in (size_le, size_be) and head[4:7] in (b"n+2", b"ni2"):
            return "nifti"
    return None


@dataclass
class Volume:
    header: Any  # a nibabel header
    raw: np.ndarray  # stored values, in the file's dtype and byte order
    affine: np.ndarray
    slope: float
    inter: float
    single_file: bool  # .nii (header and data together) or .hdr/.img
    source_kind: str  # nifti1 | nifti2 | analyze | minc
    digest: str = ""  # SHA-256 of the (header) file as stored: keys the released name


def _voxel_data(stored: bytes, header: Any, shape: tuple[int, ...],
                dtype: np.dtype) -> tuple[bytes | memoryview, int, int]:
    """(the file's bytes, gunzipped up to the end of the voxel data; where the data start; how
    many voxels): what the header declares (shape x data type, after ``vox_offset``) is checked
    against the file's size, or its compressed size x the expansion ratio, and the per-object
    ceiling *before* anything is inflated; a stream that inflates beyond the ratio is refused as
    it goes, and only the declared bytes are kept."""
    if any(d < 0 for d in shape):
        raise CorruptInputError("the volume's header declares a negative dimension")
    if not shape or any(d == 0 for d in shape):
        raise CorruptInputError("the volume's header declares no voxels")
    try:
        vox_offset = float(header["vox_offset"])
    except (TypeError, ValueError, OverflowError):
        raise CorruptInputError("the volume's header has no usable vox_offset") from None
    if not math.isfinite(vox_offset) or vox_offset < 0:
        raise CorruptInputError("the volume's header declares a vox_offset that is negative or not a number")
    offset, count = int(vox_offset), math.prod(int(d) for d in shape)
    gzipped = stored[:2] == b"\x1f\x8b"
    what = f"voxel data ({'x'.join(str(int(d)) for d in shape)} {dtype.name})"
    need = offset + count * dtype.itemsize
    limits.check_declared(need, what=what, stored=len(stored), compressed=gzipped)
    blob = gz.decompress(stored, what=what, keep=need) if gzipped else stored
    if len(blob) < need:
        raise CorruptInputError("the volume's data is shorter than its header says (truncated)")
    return blob, offset, count


def _companion(path: Path, suffix: str) -> Path | None:
    name = path.name
    for ext in (".nii.gz", ".nii", ".hdr.gz", ".hdr", ".img.gz", ".img", ".mnc"):
        if name.lower().endswith(ext):
            stem = name[: -len(ext)]
            for cand in (path.with_name(stem + suffix), path.with_name(stem + suffix + ".gz")):
                if cand.exists():
                    return cand
            return None
    return None


def read_volume(path: Path) -> Volume:
    try:
        import nibabel as nib
    except ImportError as exc:
        raise MissingDependencyError("reading NIfTI/Analyze volumes needs nibabel") from exc
    if path.suffix.lower() == ".mnc":
        return _read_minc(path)
    stored = limits.read_file(path, "the volume's file")
    head = gz.head(stored, HEAD_BYTES) if stored[:2] == b"\x1f\x8b" else stored[:HEAD_BYTES]
    kind = sniff(head[:352])
    if kind is None:
        raise UnsupportedInputError("not a NIfTI or Analyze volume")
    if head[4:7] in (b"n+2", b"ni2"):
        klass: Any = nib.Nifti2Header
        source_kind, size = "nifti2", 540
    elif head[344:347] in (b"n+1", b"ni1"):
        klass, source_kind, size = nib.Nifti1Header, "nifti1", 348
    else:
        klass, source_kind, size = nib.AnalyzeHeader, "analyze", 348
    single = head[344:347] == b"n+1" or head[4:7] == b"n+2"
    try:
        header = klass.from_fileobj(io.BytesIO(head[:size]))  # the header alone: extensions come later
        dtype = header.get_data_dtype()
        shape = tuple(int(d) for d in header.get_data_shape())
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on a broken header
        raise CorruptInputError(f"unreadable volume header ({type(exc).__name__})") from None
    if single:
        blob, offset, count = _voxel_data(stored, header, shape, dtype)
        header_block: bytes | memoryview = memoryview(blob)[:offset]
    else:
        img_path = _companion(path, ".img")
        if img_path is None:
            raise CorruptInputError("the .hdr has no .img beside it")
        blob, offset, count = _voxel_data(limits.read_file(img_path, "the volume's file"), header, shape, dtype)
        header_block = gz.decompress(stored, what="the volume's header") if stored[:2] == b"\x1f\x8b" else stored
    if len(header_block) > size + 4 and header_block[size] != 0:
        try:  # the extensions, from the bytes before the data (or the .hdr) only
            header = klass.from_fileobj(io.BytesIO(bytes(header_block)))
        except Exception as exc:  # noqa: BLE001
            raise CorruptInputError(f"unreadable volume header extensions ({type(exc).__name__})") from None
    raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape, order="F")
    digest = hashlib.sha256(stored).hexdigest()
    try:
        slope, inter = header.get_slope_inter() if hasattr(header, "get_slope_inter") else (None, None)
        affine = np.asarray(header.get_best_affine(), float)
    except Exception as exc:  # noqa: BLE001 - a quaternion or pixdim nibabel cannot use
        raise CorruptInputError(f"unusable volume scaling or orientation ({type(exc).__name__})") from None
    if not np.isfinite(affine).all():
        raise CorruptInputError("the volume's voxel sizes or orientation are not finite numbers")
    usable_slope = slope is not None and np.isfinite(slope) and slope != 0
    return Volume(
        header, raw, affine, float(slope) if usable_slope else 1.0,
        float(inter) if usable_slope and inter is not None and np.isfinite(inter) else 0.0, single, source_kind,
        digest,
    )


def _read_minc(path: Path) -> Volume:
    import nibabel as nib

    limits.check_declared(path.stat().st_size, what="the volume's file")
    try:
        img = nib.load(str(path))
    except ImportError as exc:  # MINC2 is HDF5: nibabel needs h5py for it
        raise MissingDependencyError("reading MINC2 volumes needs h5py (pip install h5py)") from exc
    except Exception as exc:  # noqa: BLE001
        raise CorruptInputError(f"unreadable MINC volume ({type(exc).__name__})") from None
    try:
        shape, stored_dtype = tuple(int(d) for d in img.shape), np.dtype(img.get_data_dtype())
    except Exception as exc:  # noqa: BLE001
        raise CorruptInputError(f"unreadable MINC volume ({type(exc).__name__})") from None
    if not shape or any(d <= 0 for d in shape):
        raise CorruptInputError("the MINC volume declares no voxels")
    count = math.prod(shape)
    what = f"voxel data ({'x'.join(map(str, shape))} {stored_dtype.name})"
    # MINC2 (HDF5) may compress its chunks; MINC1 (netCDF) stores them as they are. The values
    # are read scaled to float64: that is what the ceiling bounds
    limits.check_declared(count * stored_dtype.itemsize, what=what, stored=path.stat().st_size,
                          compressed=isinstance(img, nib.Minc2Image))
    limits.check_declared(count * 8, what=f"{what} read as float64")
    try:
        raw = np.asarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise CorruptInputError(f"unreadable MINC volume data ({type(exc).__name__})") from None
    header = nib.Nifti1Header()
    header.set_data_dtype(raw.dtype)
    header.set_data_shape(raw.shape)
    header.set_qform(img.affine, code=1)
    header.set_sform(img.affine, code=1)
    return Volume(header, raw, np.asarray(img.affine, float), 1.0, 0.0, True, "minc",
                  hashlib.sha256(limits.read_file(path, "the volume's file")).hexdigest())


def clean_header(header: Any, kind: str) -> Any:
    header = header.copy()
    for name in TEXT_FIELDS + (ANALYZE_TEXT if kind == "analyze" else ()):
        if name in header.structarr.dtype.names:
            header.structarr[name] = b""
    if hasattr(header, "extensions"):
        header.extensions.clear()
    return header


def volume_parts(vol: Volume, raw: np.ndarray) -> tuple[bytes, memoryview | bytes, bool]:
    """(cleaned header block, the stored values in file order, whether they follow the header in
    one file): the values are a view of ``raw``'s memory where it is in file (Fortran) order, a
    copy only where it is not."""
    header = clean_header(vol.header, vol.source_kind)
    values = np.asarray(raw, dtype=vol.raw.dtype)
    data: memoryview | bytes
    if values.flags.f_contiguous:
        # the transpose of a Fortran array is C-ordered: its bytes, in any dtype and byte order
        data = memoryview(values.T.reshape(-1).view(np.uint8))
    else:
        data = values.tobytes(order="F")
    if vol.single_file:
        offset = 544 if vol.source_kind == "nifti2" else 352
        header["vox_offset"] = offset
        block = header.binaryblock + b"\x00\x00\x00\x00"  # no extensions
        return block.ljust(offset, b"\x00"), data, True
    header["vox_offset"] = 0
    return header.binaryblock, data, False


def volume_bytes(vol: Volume, raw: np.ndarray) -> tuple[bytes, bytes | None]:
    """(header file, data file or None): a single NIfTI file, or an Analyze pair."""
    head, data, single = volume_parts(vol, raw)
    if single:
        return b"".join((head, data)), None
    return head, bytes(data)


def clean_sidecar(text: bytes) -> bytes:
    """A BIDS sidecar without identifying keys (at any depth); raises on broken JSON."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise CorruptInputError("the JSON sidecar does not parse") from None

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k in SIDECAR_KEEP or not SIDECAR_DROP.match(k)}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return (json.dumps(clean(doc), indent=1, sort_keys=True) + "\n").encode()


def header_text(vol: Volume) -> list[str]:
    """The header's text fields that hold text (cleaned by :func:`clean_header`), and
    ``extensions`` when it has extensions (dropped)."""
    kind = vol.source_kind
    names = vol.header.structarr.dtype.names
    out = [name for name in TEXT_FIELDS + (ANALYZE_TEXT if kind == "analyze" else ())
           if name in names and bytes(vol.header.structarr[name].tobytes()).strip(b"\x00 ")]
    if len(getattr(vol.header, "extensions", ()) or ()):
        out.append("extensions")
    return out


def review_record(fmt: str, vol: Volume, sidecar: Any, kept_sidecar: bytes | None, **keys: Any) -> dict[str, Any]:
    """The review record of a released volume (:mod:`medcloak.review_record`): ``changed``: the
    header's text fields that held text, emptied, its extensions and the sidecar's keys dropped
    (by key path, ``>`` between levels), removed; ``text``: the string values the released sidecar
    keeps (the header keeps none); ``qi``: the quasi-identifiers the sidecar keeps (Manufacturer,
    ...); ``pixels``: ``defaced`` (``defaced=True``; the handler names the QC picture). ``keys``:
    modality, patient, study, series."""
    from ..review_record import record

    changed = {name: "removed" if name == "extensions" else "emptied" for name in header_text(vol)}
    text: dict[str, list[str]] = {}
    qi: dict[str, str] = {}
    if isinstance(sidecar, dict):
        kept_doc = json.loads(kept_sidecar) if kept_sidecar else {}
        changed.update(sidecar_removed(sidecar, kept_doc))
        text, qi = sidecar_text(kept_doc)
    defaced = keys.pop("defaced", False)
    return record(fmt, text=text, changed=changed, qi=qi,
                  pixels={"change": "defaced"} if defaced else None, **keys)


#: the key paths of a JSON document named in a record's ``changed``: keys as BIDS and DICOM spell
#: them (a key of another shape is an input's own, which the record does not repeat)
_KEY_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}(>[A-Za-z][A-Za-z0-9_]{0,63})*")


def sidecar_removed(original: Any, kept: Any) -> dict[str, str]:
    """``{key path: "removed"}`` of the keys of a JSON sidecar that its released version lacks."""
    from ..review_record import json_pairs

    names = {name for name, _ in json_pairs(kept, strings=False)}
    return {name: "removed" for name, _ in json_pairs(original, strings=False)
            if name not in names and _KEY_PATH.fullmatch(name)}


def sidecar_text(kept: Any) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(text, quasi-identifiers) of a released JSON sidecar for its review record: its string
    values by key path, and its top-level values named as :data:`~medcloak.review_record.QUASI_IDENTIFIERS`."""
    from ..review_record import QUASI_IDENTIFIERS, json_pairs, text_values

    if not isinstance(kept, dict):
        return {}, {}
    qi = {k: str(kept[k]) for k in QUASI_IDENTIFIERS if isinstance(kept.get(k), (str, int, float))}
    return text_values(json_pairs(kept)), qi


def modality_of(path: Path, sidecar: dict[str, Any] | None, values: np.ndarray) -> str:
    """MR, CT or PT: from the sidecar's Modality, the BIDS suffix, or CT's air at -1000 HU."""
    if sidecar and str(sidecar.get("Modality", "")).upper() in ("MR", "CT", "PT"):
        return str(sidecar["Modality"]).upper()
    name = path.name.lower()
    if re.search(r"_(pet)\.", name):
        return "PT"
    if re.search(r"_(ct)\.", name):
        return "CT"
    if float(np.percentile(values[:: max(1, values.size // 100000)], 5)) < -500:
        return "CT"
    return "MR"


@dataclass
class VolumeRelease:
    released: Released
    extra: list[tuple[str, bytes]]
    qc: dict[str, Any]


#: the defacer's working memory per voxel of the reference frame (12-18 bytes measured on real
#: heads of 11-17 million voxels: its masks, distances and float copies), checked with the ceiling
DEFACE_BYTES_PER_VOXEL = 16
#: voxel sizes (mm) the defacer is given: a head's voxels lie far inside (a crafted pixdim of 1e38
#: overflows its distances)
VOXEL_MM = (1e-3, 1e3)


def _defaceable(reference: np.ndarray, vol: Volume) -> None:
    """Refuse what the defacer cannot take (a fail-closed quarantine, not an internal error):
    a volume whose defacing would need more memory than the per-object ceiling, values that are
    not real numbers (RGB, complex), values that are not finite once scaled, voxel sizes no head
    has."""
    from ..pixels.deface import zooms_of

    limits.check_declared(reference.size * DEFACE_BYTES_PER_VOXEL + vol.raw.nbytes,
                          what=f"defacing {'x'.join(map(str, reference.shape))} voxels (its working memory)")

    if reference.dtype.kind not in "iuf":
        raise UnsupportedInputError(f"a volume of {reference.dtype.name} values cannot be defaced")
    zooms = zooms_of(vol.affine)
    if not ((zooms >= VOXEL_MM[0]) & (zooms <= VOXEL_MM[1])).all():
        raise UnsupportedInputError(f"voxel sizes outside {VOXEL_MM[0]:g}-{VOXEL_MM[1]:g} mm: no head to deface")
    with np.errstate(all="ignore"):
        ends = np.array([reference.min(), reference.max()], np.float32) * np.float32(vol.slope) + np.float32(vol.inter)
    if not np.isfinite(ends).all():
        raise UnsupportedInputError("a volume whose values (scaled by scl_slope, scl_inter) are not all finite "
                                    "cannot be defaced")


def deidentify_volume(path: Path, keyring: Keyring, *, fill: str = "background", ears: bool = False) -> VolumeRelease:
    """Deface and clean one volume; the release name is a keyed hash of its content."""
    from ..pixels.deface import apply, deface_mask, fill_value

    vol = read_volume(path)
    sidecar_path = _companion(path, ".json")
    sidecar_doc = None
    if sidecar_path is not None:
        try:
            sidecar_doc = json.loads(limits.read_file(sidecar_path, "the JSON sidecar"))
        except (ValueError, UnicodeDecodeError):
            raise CorruptInputError("the JSON sidecar does not parse") from None
    raw = vol.raw
    if raw.ndim < 3 or raw.ndim > 4 and any(d > 1 for d in raw.shape[4:]):
        raise UnsupportedInputError("only 3-D and 4-D volumes are defaced")
    frames = raw.reshape(raw.shape[:3] + (-1,), order="F") if raw.ndim > 3 else raw[..., None]
    reference = frames[..., 0]  # stored values; the defacer scales its coarse grid only
    _defaceable(reference, vol)
    sample = reference[::4, ::4, ::4].astype(np.float32) * vol.slope + vol.inter
    modality = modality_of(path, sidecar_doc, sample)
    try:
        result = deface_mask(reference, vol.affine, modality, ears=ears, scale=(vol.slope, vol.inter))
    except MedcloakError:
        raise
    except (ValueError, ArithmeticError) as exc:  # values a crafted header scales into what no head holds
        raise DeidentificationError(f"the defacer cannot take this volume's values ({type(exc).__name__}): "
                                    "not defaced, not released") from None
    if result.status == "defaced":
        assert result.mask is not None
        value = fill_value(frames[..., 0], result.mask, modality, vol.slope, vol.inter)
        if fill == "background" and not (frames[..., 0][result.mask] != value).any():
            raise DeidentificationError("defacing changed no voxel")
        seed = int.from_bytes(hashlib.sha256(keyring.token("noise", path.name).encode()).digest()[:4], "little")
        out = frames.copy(order="K")
        for t in range(frames.shape[3]):
            apply(out[..., t], result.mask, fill, value, seed + t)
        new_raw = out.reshape(raw.shape, order="F")
    else:
        new_raw = raw
    head, data, single = volume_parts(vol, new_raw)
    token = keyring.token("volume", vol.digest)
    if single:
        gzipped = path.name.lower().endswith(".gz") or vol.source_kind == "minc"
        blob = gz.compress((head, data)) if gzipped else b"".join((head, data))
        ext = ".nii.gz" if gzipped else ".nii"
        released = Released(blob, f"volumes/{token}{ext}", {}, None, {"defaced": int(result.status == "defaced")})
        extra: list[tuple[str, bytes]] = []
    else:
        released = Released(head, f"volumes/{token}.hdr", {}, None, {"defaced": int(result.status == "defaced")})
        extra = [(f"volumes/{token}.img", bytes(data))]
    kept_sidecar = None
    if sidecar_path is not None:
        kept_sidecar = clean_sidecar(limits.read_file(sidecar_path, "the JSON sidecar"))
        extra.append((f"volumes/{token}.json", kept_sidecar))
    released = dataclasses.replace(released, review=review_record(
        "volume", vol, sidecar_doc, kept_sidecar, modality=modality, series=token,
        defaced=result.status == "defaced"))
    qc = {"status": result.status, "modality": modality, "brain_ml": round(result.brain_ml),
          "removed_ml": round(result.removed_ml), "token": token, "reason": result.details.get("reason", "")}
    # the picture for the audit is made by the caller, from the stored values and their scaling
    return VolumeRelease(released, extra, {**qc, "_stored": reference, "_scale": (vol.slope, vol.inter),
                                           "_after_mask": result.mask, "_affine": vol.affine})
