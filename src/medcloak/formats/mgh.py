"""FreeSurfer MGH volumes (and MGZ, the same gzipped): the image header and the voxel bytes kept,
the tags after the data dropped, the head defaced like a NIfTI volume's.

An MGH file is a big-endian header of 284 bytes (version 1, four dimensions, data type, degrees
of freedom, the RAS flag, voxel sizes, direction cosines and centre: its first 90 bytes; the rest
is unused), the voxels (width x height x depth x frames of ``uchar``, ``int``, ``float`` or
``short``, in Fortran order), then optionally five scan parameters (TR, flip angle, TE, TI, field
of view: 20 bytes of floats) and tags: FreeSurfer's ``cmdline`` (the command lines that made the
file, with the user's paths and often the subject's name), the talairach transform's path, colour
tables, surface geometry. The release keeps the header's 90 bytes as they are (the unused rest
zeroed), the voxels (defaced where they show a head) and the scan parameters, and drops every tag:
none is needed to read the image.

What the header declares (dims x type after the header) is checked against the file's size, or
its compressed size x the expansion ratio, and the per-object ceiling, before anything is inflated
(:mod:`medcloak.limits`, :mod:`medcloak.formats.gz`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..errors import CorruptInputError, MissingDependencyError, UnsupportedInputError
from . import gz

HEADER = 284
#: the header's used part (version .. Pxyz_c); the rest is unused and released zeroed
USED = 90
#: TR, flip angle, TE, TI, FoV: float32 each, after the voxels
SCAN_PARAMS = 20
DTYPES = {0: np.dtype(">u1"), 1: np.dtype(">i4"), 3: np.dtype(">f4"), 4: np.dtype(">i2")}


def sniff(head: bytes) -> bool:
    """Whether ``head`` (the first bytes, inflated where the file is gzipped) is an MGH header:
    version 1, positive dimensions, a known data type and a RAS flag of 0 or 1 (a sniff answers,
    it never raises)."""
    if len(head) < USED or head[:4] != b"\x00\x00\x00\x01":
        return False
    w, h, d, f, kind = struct.unpack(">5i", head[4:24])
    ras = struct.unpack(">h", head[28:30])[0]
    return min(w, h, d, f) > 0 and kind in DTYPES and ras in (0, 1, -1)


@dataclass
class Mgh:
    header: bytes  # the header's 284 bytes as stored
    raw: np.ndarray  # stored values (width, height, depth, frames), in the file's dtype
    scan: bytes  # the scan parameters (20 bytes) or b""
    tags: bool  # whether tags follow (dropped)
    affine: np.ndarray
    gzipped: bool
    digest: str
    slope: float = 1.0  # MGH stores values unscaled (what the defacer's checks read)
    inter: float = 0.0


def read_mgh(path: Path) -> Mgh:
    """Read an MGH/MGZ file, its declared size checked before anything is inflated."""
    import hashlib

    stored = limits.read_file(path, "the MGH volume's file")
    gzipped = stored[:2] == b"\x1f\x8b"
    header = gz.head(stored, HEADER) if gzipped else bytes(stored[:HEADER])
    if len(header) < HEADER:
        raise CorruptInputError("the MGH header is truncated")
    if not sniff(header):
        raise UnsupportedInputError("not an MGH volume")
    w, h, d, f, kind = struct.unpack(">5i", header[4:24])
    dtype = DTYPES[kind]
    count = math.prod((w, h, d, f))
    what = f"voxel data ({w}x{h}x{d}x{f} {dtype.name})"
    need = HEADER + count * dtype.itemsize
    limits.check_declared(need, what=what, stored=len(stored), compressed=gzipped)
    # keep one byte beyond the scan parameters: enough to know that tags follow
    blob = gz.decompress(stored, what=what, keep=need + SCAN_PARAMS + 1) if gzipped else stored
    if len(blob) < need:
        raise CorruptInputError("the MGH volume's data is shorter than its header says (truncated)")
    raw = np.frombuffer(blob, dtype=dtype, count=count, offset=HEADER).reshape((w, h, d, f), order="F")
    rest = len(blob) - need
    scan = bytes(memoryview(blob)[need: need + SCAN_PARAMS]) if rest >= SCAN_PARAMS else b""
    try:
        import nibabel as nib

        affine = np.asarray(nib.freesurfer.mghformat.MGHHeader(header[:USED]).get_affine(), float)
    except ImportError as exc:
        raise MissingDependencyError("reading MGH volumes needs nibabel") from exc
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on a broken header
        raise CorruptInputError(f"unusable MGH orientation ({type(exc).__name__})") from None
    if not np.isfinite(affine).all():
        raise CorruptInputError("the MGH volume's voxel sizes or orientation are not finite numbers")
    return Mgh(bytes(header), raw, scan, rest > len(scan), affine, gzipped, hashlib.sha256(stored).hexdigest())


def mgh_parts(vol: Mgh, raw: np.ndarray) -> tuple[bytes, bytes | memoryview, bytes]:
    """(header, voxels, scan parameters) of the released file: the header's used bytes as they
    are, its unused rest zeroed; no tags."""
    values = np.asarray(raw, dtype=vol.raw.dtype)
    data = memoryview(values.T.reshape(-1).view(np.uint8)) if values.flags.f_contiguous else values.tobytes(order="F")
    return vol.header[:USED].ljust(HEADER, b"\x00"), data, vol.scan


def check_released(data: bytes) -> list[str]:
    """What is wrong with a released MGH file (inflated): unused header bytes that are not zero,
    bytes after the voxels and scan parameters (tags)."""
    if len(data) < HEADER or not sniff(data[:HEADER]):
        return ["not an MGH volume"]
    w, h, d, f, kind = struct.unpack(">5i", data[4:24])
    need = HEADER + math.prod((w, h, d, f)) * DTYPES[kind].itemsize
    problems = []
    if data[USED:HEADER].strip(b"\x00"):
        problems.append("the header's unused bytes hold data")
    if len(data) < need:
        problems.append("the voxel data is truncated")
    elif len(data) not in (need, need + SCAN_PARAMS):
        problems.append("tags after the voxel data")
    return problems



def deidentify_mgh(path: Path, keyring: Any, *, fill: str = "background", ears: bool = False) -> Any:
    """Deface and clean one MGH/MGZ volume as :func:`medcloak.formats.volume.deidentify_volume`
    does a NIfTI (the same defacer, its checks and its no-head rule); the release name is a keyed
    hash of the file's content."""
    import hashlib

    from ..errors import DeidentificationError, MedcloakError
    from ..handlers.base import Released
    from ..pixels.deface import apply, deface_mask, fill_value
    from ..review_record import record
    from .volume import VolumeRelease, _defaceable, modality_of

    vol = read_mgh(path)
    frames = vol.raw.astype(vol.raw.dtype.newbyteorder("="))  # the kernels take native byte order only
    reference = frames[..., 0]
    _defaceable(reference, vol)
    sample = reference[::4, ::4, ::4].astype(np.float32)
    modality = modality_of(path, None, sample)
    try:
        result = deface_mask(reference, vol.affine, modality, ears=ears, scale=(1.0, 0.0))
    except MedcloakError:
        raise
    except (ValueError, ArithmeticError) as exc:
        raise DeidentificationError(f"the defacer cannot take this volume's values ({type(exc).__name__}): "
                                    "not defaced, not released") from None
    raw = frames
    if result.status == "defaced":
        assert result.mask is not None
        value = fill_value(reference, result.mask, modality, 1.0, 0.0)
        if fill == "background" and not (reference[result.mask] != value).any():
            raise DeidentificationError("defacing changed no voxel")
        seed = int.from_bytes(hashlib.sha256(keyring.token("noise", path.name).encode()).digest()[:4], "little")
        raw = frames
        for t in range(frames.shape[3]):
            apply(raw[..., t], result.mask, fill, value, seed + t)
    parts = mgh_parts(vol, raw)
    token = keyring.token("volume", vol.digest)
    blob = gz.compress(parts) if vol.gzipped else b"".join(parts)
    ext = ".mgz" if vol.gzipped else ".mgh"
    changed = {"header unused bytes": "emptied"} if vol.header[USED:].strip(b"\x00") else {}
    if vol.tags:
        changed["tags"] = "removed"
    defaced = result.status == "defaced"
    review = record("mgh", modality=modality, series=token, changed=changed,
                    pixels={"change": "defaced"} if defaced else None)
    released = Released(blob, f"volumes/{token}{ext}", {}, None, {"defaced": int(defaced)}, review=review)
    qc = {"status": result.status, "modality": modality, "brain_ml": round(result.brain_ml),
          "removed_ml": round(result.removed_ml), "token": token, "reason": result.details.get("reason", "")}
    return VolumeRelease(released, [], {**qc, "_stored": reference, "_scale": (1.0, 0.0),
                                          "_after_mask": result.mask, "_affine": vol.affine})
