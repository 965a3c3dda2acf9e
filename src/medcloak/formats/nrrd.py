"""NRRD volumes (3D Slicer, Teem): attached (``.nrrd``: header, blank line, data) and detached
(``.nhdr``: a header naming its data file). The release keeps the fields needed to read and place
the data, drops everything else, and defaces a head as a NIfTI volume is.

A NRRD header is text: a magic line (``NRRD0001`` .. ``NRRD0005``), ``#`` comments, fields
(``name: value``) and free key/value pairs (``key:=value``, where Slicer and others write
segment names, patient names, file paths). Kept, each only when its value is of its field's
vocabulary (numbers, or the specification's words: a kept field can hold no free text): ``type``,
``dimension``, ``sizes``, ``encoding``, ``endian``, ``space``, ``space dimension``,
``space directions``, ``space origin``, ``measurement frame``, ``spacings``, ``thicknesses``,
``axis mins``/``maxs``, ``centerings``, ``kinds``, ``block size``, ``min``/``max``/``old min``/
``old max``. Dropped: comments, key/value pairs, ``content``, ``labels``, ``units``,
``sample units``, ``space units`` and any other field. ``data file`` is rewritten to the released
data file's name; ``byte skip`` and ``line skip`` are consumed (the released data holds the
declared bytes alone).

Encodings ``raw`` and ``gzip``: the declared data (sizes x type) is checked against the data's
size (or its compressed size x the expansion ratio) and the per-object ceiling before it is read;
the voxels are released byte for byte where no face was removed (a gzip stream is written again:
its header can carry the original file name). ``ascii``/``hex``/``bzip2``, a ``data file`` list
or pattern, and ``line skip`` are refused (quarantined) with the reason.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..errors import CorruptInputError, LimitError, UnsupportedInputError
from . import gz

#: the largest header read (a header is a few KB; Slicer segmentations write tens of KB)
MAX_HEADER = 1 << 20

_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int",
                     "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    "float": "f4", "double": "f8",
}
_SPACES = {"right-anterior-superior": "RAS", "ras": "RAS", "left-anterior-superior": "LAS", "las": "LAS",
           "left-posterior-superior": "LPS", "lps": "LPS", "scanner-xyz": "RAS", "3d-right-handed": "RAS"}
_SPACES_OTHER = {"right-anterior-superior-time", "rast", "left-anterior-superior-time", "last",
                 "left-posterior-superior-time", "lpst", "scanner-xyz-time", "3d-left-handed",
                 "3d-right-handed-time", "3d-left-handed-time"}
_KINDS = {"domain", "space", "time", "list", "point", "vector", "covariant-vector", "normal", "stub", "scalar",
          "complex", "2-vector", "3-color", "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color",
          "3-vector", "3-gradient", "3-normal", "4-vector", "quaternion", "2d-symmetric-matrix",
          "2d-masked-symmetric-matrix", "2d-matrix", "2d-masked-matrix", "3d-symmetric-matrix",
          "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix", "none", "???"}
_CENTERINGS = {"cell", "node", "none", "???"}
_NUMBERS = re.compile(r"(?:[0-9eE.+\-(),\s]|none|nan|inf)*", re.IGNORECASE)
_NUMERIC = ("dimension", "sizes", "space dimension", "space directions", "space origin", "measurement frame",
            "spacings", "thicknesses", "axis mins", "axis maxs", "block size", "min", "max", "old min", "old max")
#: fields of other spellings the specification allows, by their canonical name
_ALIASES = {"axismins": "axis mins", "axismaxs": "axis maxs", "centers": "centerings", "blocksize": "block size",
            "oldmin": "old min", "oldmax": "old max", "datafile": "data file", "byteskip": "byte skip",
            "lineskip": "line skip"}
#: the order kept fields are written in
KEPT = ("type", "dimension", "space", "space dimension", "sizes", "space directions", "kinds", "centerings",
        "spacings", "thicknesses", "axis mins", "axis maxs", "endian", "encoding", "space origin",
        "measurement frame", "block size", "min", "max", "old min", "old max")


def sniff(head: bytes) -> bool:
    return head[:7] == b"NRRD000" and head[7:8] in b"12345" and head[8:9] in (b"\n", b"\r")


@dataclass
class Nrrd:
    fields: dict[str, str]  # kept fields, canonical names
    removed: dict[str, str]  # what the record names: field or "comments"/"key/value pairs" -> removed
    dtype: np.dtype
    shape: tuple[int, ...]
    voxels: bytes | memoryview  # the declared data, decoded
    detached: bool
    gzipped: bool
    digest: str
    data_name: str = ""  # the detached data file's name as written (never released)
    extra: dict[str, Any] = field(default_factory=dict)


def _valid(name: str, value: str) -> bool:
    low = value.strip().lower()
    if name == "type":
        return low in _TYPES or low == "block"
    if name == "encoding":
        return low in ("raw", "gzip", "gz", "txt", "text", "ascii", "hex", "bz2", "bzip2")
    if name == "endian":
        return low in ("little", "big")
    if name == "space":
        return low in _SPACES or low in _SPACES_OTHER
    if name == "kinds":
        return all(k in _KINDS for k in low.split())
    if name == "centerings":
        return all(k in _CENTERINGS for k in low.split())
    return name in _NUMERIC and len(value) < 4096 and _NUMBERS.fullmatch(value) is not None


def parse_header(text: str) -> tuple[dict[str, str], dict[str, str], str | None, int, int]:
    """(kept fields, removed names, data file or None, byte skip, line skip) of a header's lines."""
    kept: dict[str, str] = {}
    removed: dict[str, str] = {}
    data_file: str | None = None
    byte_skip = line_skip = 0
    lines = text.splitlines()
    for i, line in enumerate(lines[1:], 1):
        if not line.strip():
            break
        if line.startswith("#"):
            removed["comments"] = "removed"
            continue
        if ":=" in line and (": " not in line or line.index(":=") < line.index(": ")):
            removed["key/value pairs"] = "removed"
            continue
        if ": " not in line:
            raise CorruptInputError("a NRRD header line that is neither a field nor a comment")
        name, value = line.split(": ", 1)
        name = _ALIASES.get(name.strip().lower(), name.strip().lower())
        if name == "data file":
            value = value.strip()
            if value.upper().startswith("LIST") or len(value.split()) > 1:
                raise UnsupportedInputError("a NRRD data file list or pattern is not supported")
            data_file = value
        elif name == "byte skip":
            try:
                byte_skip = int(value)
            except ValueError:
                raise CorruptInputError("a NRRD byte skip that is not a number") from None
        elif name == "line skip":
            try:
                line_skip = int(value)
            except ValueError:
                raise CorruptInputError("a NRRD line skip that is not a number") from None
        elif name in KEPT and _valid(name, value):
            kept[name] = value.strip()
        else:
            removed[name if re.fullmatch(r"[a-z ]{1,24}", name) else "other fields"] = "removed"
    return kept, removed, data_file, byte_skip, line_skip


def _ints(value: str, what: str) -> list[int]:
    try:
        return [int(v) for v in value.split()]
    except ValueError:
        raise CorruptInputError(f"the NRRD {what} are not whole numbers") from None


def read_nrrd(path: Path) -> Nrrd:
    """Read a NRRD (attached) or NHDR (detached) file: its kept fields, and its declared data,
    checked against the file (or the gzip limits) before it is read or inflated."""
    stored = limits.read_file(path, "the NRRD file")
    if not sniff(stored[:16]):
        raise UnsupportedInputError("not a NRRD file")
    end = min((i for i in (stored.find(b"\n\n"), stored.find(b"\r\n\r\n")) if i >= 0), default=-1)
    header_end = len(stored) if end < 0 else end + (2 if stored[end:end + 2] == b"\n\n" else 4)
    if header_end > MAX_HEADER:
        raise LimitError("a NRRD header longer than 1 MB")
    try:
        text = bytes(stored[:header_end]).decode("ascii")
    except UnicodeDecodeError:
        text = bytes(stored[:header_end]).decode("latin-1")  # only kept fields' values are checked ASCII
    kept, removed, data_file, byte_skip, line_skip = parse_header(text)
    for need in ("type", "dimension", "sizes", "encoding"):
        if need not in kept:
            raise CorruptInputError(f"the NRRD header has no usable {need} field")
    kind = kept["type"].lower()
    if kind == "block":
        raise UnsupportedInputError("NRRD block data is not supported")
    dtype = np.dtype(_TYPES[kind])
    if dtype.itemsize > 1:
        if "endian" not in kept:
            raise CorruptInputError("the NRRD header has no endian field for multi-byte data")
        dtype = dtype.newbyteorder("<" if kept["endian"].lower() == "little" else ">")
    (dim,) = _ints(kept["dimension"], "dimension") or [0]
    shape = tuple(_ints(kept["sizes"], "sizes"))
    if dim < 1 or len(shape) != dim or any(s <= 0 for s in shape):
        raise CorruptInputError("the NRRD sizes do not match its dimension, or declare no data")
    encoding = kept["encoding"].lower()
    if encoding not in ("raw", "gzip", "gz"):
        raise UnsupportedInputError(f"NRRD encoding {encoding!r} is not supported (raw and gzip are)")
    if line_skip:
        raise UnsupportedInputError("a NRRD line skip is not supported")
    detached = data_file is not None
    if detached:
        assert data_file is not None
        target = (path.parent / data_file)
        if Path(data_file).name != data_file or not target.is_file():
            raise CorruptInputError("the NRRD data file is not a file beside its header")
        data = limits.read_file(target, "the NRRD data file")
    else:
        data = memoryview(stored)[header_end:]
    count = math.prod(shape)
    need = count * dtype.itemsize
    gzipped = encoding != "raw"
    what = f"NRRD data ({'x'.join(map(str, shape))} {dtype.name})"
    if gzipped:
        if byte_skip:
            raise UnsupportedInputError("a byte skip before gzip-encoded NRRD data is not supported")
        limits.check_declared(need, what=what, stored=len(data), compressed=True)
        voxels = gz.decompress(data, what=what, keep=need + 1)
        if len(voxels) != need:
            raise CorruptInputError(f"the NRRD data inflates to {len(voxels)} bytes, not the {need} declared")
    else:
        start = len(data) - need if byte_skip == -1 else byte_skip
        if start < 0:
            raise CorruptInputError("a NRRD byte skip before the data is negative" if byte_skip < -1 else
                                    "the NRRD data is shorter than its header says (truncated)")
        limits.check_declared(need, what=what, stored=len(data) - start)
        voxels = memoryview(data)[start:start + need]
        if len(data) > start + need:
            removed["bytes after the data"] = "removed"
    if byte_skip:
        removed["skipped bytes"] = "removed"
    return Nrrd(kept, removed, dtype, shape, voxels, detached, gzipped, hashlib.sha256(stored).hexdigest(),
                data_file or "")


def header_bytes(vol: Nrrd, data_name: str | None) -> bytes:
    """The released header: its magic, the kept fields in a fixed order, the data file's new
    name (detached), and the blank line that ends an attached header."""
    lines = ["NRRD0004"]
    for name in KEPT:
        if name in vol.fields:
            value = vol.fields[name]
            if name == "encoding":
                value = "gzip" if vol.gzipped else "raw"
            lines.append(f"{name}: {value}")
    if data_name is not None:
        lines.append(f"data file: {data_name}")
        return ("\n".join(lines) + "\n").encode("ascii")
    return ("\n".join(lines) + "\n\n").encode("ascii")


def affine_of(vol: Nrrd) -> np.ndarray | None:
    """Voxel indices (first three axes) to RAS millimetres: from ``space directions`` and
    ``space origin`` (LPS and LAS turned to RAS), else ``spacings``; ``None`` where the first
    three axes are not a 3-D space (a vector axis first, a space of other than three axes)."""
    dirs = vol.fields.get("space directions")
    if dirs:
        vectors = []
        for part in re.findall(r"\(([^)]*)\)|(none)", dirs, re.IGNORECASE):
            if part[1]:
                vectors.append(None)
            else:
                try:
                    vectors.append([float(v) for v in part[0].split(",")])
                except ValueError:
                    return None
        if len(vectors) != len(vol.shape) or not all(v is not None and len(v) == 3 for v in vectors[:3]):
            return None
        affine = np.eye(4)
        affine[:3, :3] = np.array(vectors[:3], float).T
        origin = re.findall(r"\(([^)]*)\)", vol.fields.get("space origin", ""))
        if origin:
            try:
                affine[:3, 3] = [float(v) for v in origin[0].split(",")][:3]
            except ValueError:
                return None
        space = _SPACES.get(vol.fields.get("space", "").lower(), "RAS" if "space" not in vol.fields else None)
        if space is None:
            return None
        flip = {"RAS": (1, 1, 1), "LPS": (-1, -1, 1), "LAS": (-1, 1, 1)}[space]
        affine[:3] *= np.array(flip, float)[:, None]
        return affine if np.isfinite(affine).all() else None
    spacings = vol.fields.get("spacings", "").split()
    try:
        zooms = [float(v) for v in spacings[:3]] if spacings else [1.0, 1.0, 1.0]
    except ValueError:
        return None
    if len(zooms) != 3 or not all(math.isfinite(z) and z > 0 for z in zooms):
        return None
    return np.diag(zooms + [1.0])


def deidentify_nrrd(path: Path, keyring: Any, *, fill: str = "background", ears: bool = False) -> Any:
    """Clean one NRRD/NHDR and deface its head as
    :func:`medcloak.formats.volume.deidentify_volume` does a NIfTI (the same defacer, checks and
    no-head rule): a 3-D volume, or 4-D with its frames on the last axis; anything else is
    refused, as a NIfTI of that shape is. Released as ``volumes/<token>.nrrd``, or
    ``<token>.nhdr`` with ``<token>.raw`` (``.raw.gz``) beside it."""
    from ..errors import DeidentificationError, MedcloakError
    from ..handlers.base import Released
    from ..pixels.deface import apply, deface_mask, fill_value
    from ..review_record import record
    from .volume import VolumeRelease, _defaceable, modality_of

    vol = read_nrrd(path)
    kinds = vol.fields.get("kinds", "").lower().split()
    spatial = [k in ("domain", "space") for k in kinds] if kinds else [True] * len(vol.shape)
    if not (len(vol.shape) == 3 and all(spatial) or len(vol.shape) == 4 and all(spatial[:3]) and not spatial[3]):
        raise UnsupportedInputError("only 3-D NRRD volumes (and 4-D, frames last) are defaced: not released")
    affine = affine_of(vol)
    if affine is None:
        raise UnsupportedInputError("a NRRD volume without a usable 3-D space orientation cannot be defaced")
    stored = np.frombuffer(vol.voxels, dtype=vol.dtype).reshape(vol.shape, order="F")
    native = stored.astype(stored.dtype.newbyteorder("="))  # the kernels take native byte order only
    frames = native if native.ndim == 4 else native[..., None]
    reference = frames[..., 0]
    holder = type("V", (), {"raw": native, "affine": affine, "slope": 1.0, "inter": 0.0})
    _defaceable(reference, holder)
    modality = modality_of(path, None, reference[::4, ::4, ::4].astype(np.float32))
    try:
        result = deface_mask(reference, affine, modality, ears=ears, scale=(1.0, 0.0))
    except MedcloakError:
        raise
    except (ValueError, ArithmeticError) as exc:
        raise DeidentificationError(f"the defacer cannot take this volume's values ({type(exc).__name__}): "
                                    "not defaced, not released") from None
    voxels: bytes | memoryview = vol.voxels
    defaced = result.status == "defaced"
    if defaced:
        assert result.mask is not None
        value = fill_value(reference, result.mask, modality, 1.0, 0.0)
        if fill == "background" and not (reference[result.mask] != value).any():
            raise DeidentificationError("defacing changed no voxel")
        seed = int.from_bytes(hashlib.sha256(keyring.token("noise", path.name).encode()).digest()[:4], "little")
        for t in range(frames.shape[3]):
            apply(frames[..., t], result.mask, fill, value, seed + t)
        voxels = native.astype(vol.dtype).tobytes(order="F")
    token = keyring.token("volume", vol.digest)
    body = gz.compress((voxels,)) if vol.gzipped else bytes(voxels)
    changed = dict(vol.removed)
    if vol.detached:
        changed["data file"] = "replaced"
    review = record("nrrd", modality=modality, series=token, changed=changed,
                    text={}, pixels={"change": "defaced"} if defaced else None)
    counts = {"defaced": int(defaced)}
    if vol.detached:
        data_name = f"{token}.raw.gz" if vol.gzipped else f"{token}.raw"
        released = Released(header_bytes(vol, data_name), f"volumes/{token}.nhdr", {}, None, counts, review=review)
        extra = [(f"volumes/{data_name}", body)]
    else:
        released = Released(header_bytes(vol, None) + body, f"volumes/{token}.nrrd", {}, None, counts, review=review)
        extra = []
    qc = {"status": result.status, "modality": modality, "brain_ml": round(result.brain_ml),
          "removed_ml": round(result.removed_ml), "token": token, "reason": result.details.get("reason", "")}
    return VolumeRelease(released, extra, {**qc, "_stored": reference, "_scale": (1.0, 0.0),
                                           "_after_mask": result.mask, "_affine": affine})


def check_released(data: bytes) -> list[str]:
    """What is wrong with a released NRRD header (``.nrrd`` or ``.nhdr``): any line that is not
    its magic, a kept field of its vocabulary, or a ``data file`` of a released name."""
    end = data.find(b"\n\n")
    head = data[: end if end >= 0 else len(data)]
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return ["the NRRD header is not ASCII"]
    if not lines or lines[0] != "NRRD0004":
        return ["not a released NRRD header"]
    problems = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(": ")
        if name == "data file" and re.fullmatch(r"[a-z0-9]{8,40}\.raw(\.gz)?", value):
            continue
        if name not in KEPT or not _valid(name, value):
            problems.append("a NRRD header line that is not a kept field")
            break
    return problems
