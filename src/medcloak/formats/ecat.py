"""ECAT 7 PET files (``.v``, magic ``MATRIX7`` in the 512-byte main header): the main header's
identifying fields blanked in place, everything else kept byte for byte.

The released file has the input's length and every offset: the matrix directory, the
subheaders and the matrix data are not touched, only fields of the main header (big-endian,
layout of the ECAT 7 specification as nibabel's ``ecat.main_header_dtd`` gives it):

- text that names the patient, the staff, the site or the file: ``original_filename``,
  ``patient_id``, ``patient_name``, ``physician_name``, ``operator_name``, ``study_description``,
  ``study_type``, ``user_process_code`` and the header's ``fill`` are zeroed; ``facility_name``
  unless ``retain-institution-identity``, ``serial_number`` unless ``retain-device-identity``
  (as DICOM's Institution Name and Device Serial Number);
- ``patient_birth_date`` is zeroed (DICOM empties Patient's Birth Date);
- ``patient_sex``, ``patient_dexterity``, ``patient_age``, ``patient_height``,
  ``patient_weight`` are zeroed unless ``retain-patient-characteristics`` (DICOM's Patient's
  Sex, Age, Size, Weight);
- the two times (``scan_start_time``, ``dose_start_time``, seconds since 1970) are shifted by the
  patient's keyed offset (:meth:`medcloak.pseudonym.Keyring.date_offset`, days and seconds) under
  ``retain-long-modified-dates``, kept under ``retain-long-full-dates``, else zeroed (the
  basic profile empties DICOM dates; 0 is the format's "not recorded"). A shifted time
  keeps the distance between the two, so decay correction stays right.

Kept text: ``isotope_name``, ``radiopharmaceutical``, ``data_units`` (the tracer and the
units; DICOM keeps its radiopharmaceutical description). The image subheaders' ``annotation``
is kept as it is (subheaders stay byte for byte) and given to the review record; a run refuses
the file (fail closed) when any identifying value of the main header is found anywhere in the
released bytes, subheaders and data included.

The patient is keyed like DICOM's (:func:`medcloak.formats.dicom.patient_identity`): ``id:`` and
the patient ID (no issuer in ECAT), else ``name:`` name ``|`` birth date as ``YYYYMMDD``.

Declared sizes: the matrix directory (a chain of 512-byte blocks from block 2, 31 entries each)
is walked with a bound on its length; every entry's blocks must lie within the file, and the
file is held against the per-object ceiling before it is read.
"""

from __future__ import annotations

import datetime
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import limits
from ..errors import CorruptInputError, UnsupportedInputError, VerificationError

if TYPE_CHECKING:
    from ..pseudonym import Keyring

BLOCK = 512
MAGIC = b"MATRIX7"
#: (name, offset, size) of the main header's text fields
TEXT = {
    "original_filename": (14, 32), "serial_number": (52, 10), "isotope_name": (66, 8),
    "radiopharmaceutical": (78, 32), "study_type": (154, 12), "patient_id": (166, 16),
    "patient_name": (182, 32), "physician_name": (232, 32), "operator_name": (264, 32),
    "study_description": (296, 32), "facility_name": (332, 20), "user_process_code": (434, 10),
    "data_units": (466, 32), "fill": (500, 12),
}
#: text always blanked
BLANK = ("original_filename", "study_type", "patient_id", "patient_name", "physician_name", "operator_name",
         "study_description", "user_process_code", "fill")
#: text blanked unless an option keeps it
BY_OPTION = {"facility_name": "retain-institution-identity", "serial_number": "retain-device-identity"}
#: text kept (tracer, units)
KEPT = ("isotope_name", "radiopharmaceutical", "data_units")
#: patient characteristics (name, offset, size)
CHARACTERISTICS = {"patient_sex": (214, 1), "patient_dexterity": (215, 1), "patient_age": (216, 4),
                   "patient_height": (220, 4), "patient_weight": (224, 4)}
BIRTH = ("patient_birth_date", 228)
TIMES = {"scan_start_time": 62, "dose_start_time": 454}
#: matrix directory blocks walked at most (31 matrices each: far beyond any scanner's frames x beds x gates)
MAX_DIRECTORY_BLOCKS = 4096
ANNOTATION = (122, 40)  # an image subheader's annotation (file types 6 and 7)


def sniff(head: bytes) -> str | None:
    return "ecat" if head[:7] == MAGIC else None


def _text(data: bytes | bytearray, name: str) -> str:
    off, size = TEXT[name]
    return bytes(data[off: off + size]).split(b"\x00", 1)[0].decode("latin-1").strip()


def _u32(data: bytes | bytearray, off: int) -> int:
    return int(struct.unpack_from(">I", data, off)[0])


def directory(data: bytes) -> list[tuple[int, int, int]]:
    """(matrix id, first block, last block) of every matrix, checked against the file."""
    if len(data) < 2 * BLOCK:
        raise CorruptInputError("the ECAT file is shorter than its main header and matrix directory (truncated)")
    out, seen, block = [], set(), 2
    while True:
        if block in seen or len(seen) >= MAX_DIRECTORY_BLOCKS:
            raise CorruptInputError("the ECAT matrix directory loops or is unbounded")
        seen.add(block)
        start = (block - 1) * BLOCK
        if start + BLOCK > len(data):
            raise CorruptInputError("the ECAT matrix directory lies beyond the end of the file (truncated)")
        words = struct.unpack_from(">32i", data, start)
        nfree, nxt, _prev, nused = words[:4]
        if not 0 <= nused <= 31 or not 0 <= nfree <= 31:
            raise CorruptInputError("the ECAT matrix directory declares an impossible number of entries")
        for i in range(nused):
            mid, first, last, _status = words[4 + 4 * i: 8 + 4 * i]
            if not 2 < first <= last:
                raise CorruptInputError("an ECAT matrix directory entry declares impossible blocks")
            # matrices are written in whole blocks: the last one ends within the file
            limits.check_declared(last * BLOCK, what="ECAT matrix data", stored=len(data))
            out.append((mid, first, last))
        if nxt in (0, 1, 2):  # 2 (the first block again): the end; nibabel's reader takes 0 and 1 too
            break
        if nxt < 0:
            raise CorruptInputError("the ECAT matrix directory points before the file's start")
        block = nxt
    if not out:
        raise CorruptInputError("the ECAT file declares no matrices")
    return out


def _birth(value: int) -> str:
    """A birth date (signed seconds since 1970; 0 and -1: not recorded) as ``YYYYMMDD``."""
    if value in (0, -1):
        return ""
    try:
        return (datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=value)).strftime("%Y%m%d")
    except (OverflowError, ValueError):
        return str(value)


def identity(data: bytes) -> str:
    """The patient's identity as DICOM's handler keys it (see the module's docstring)."""
    pid = _text(data, "patient_id")
    if pid:
        return "id:" + pid + "|"
    name, birth = _text(data, "patient_name"), _birth(struct.unpack_from(">i", data, BIRTH[1])[0])
    if name or birth:
        return "name:" + name + "|" + birth
    return "ecat:" + _text(data, "original_filename")


@dataclass
class Cleaned:
    data: bytes
    identity: str
    changed: dict[str, str]
    kept_text: list[tuple[str, str]]
    qi: dict[str, str]


def clean(data: bytes, keyring: Keyring, options: frozenset[str] | set[str]) -> Cleaned:
    """The released bytes of an ECAT 7 file (see the module's docstring)."""
    if data[:7] != MAGIC:
        raise UnsupportedInputError("not an ECAT 7 file")
    entries = directory(data)
    ident = identity(data)
    needles = {v for n in BLANK + tuple(BY_OPTION) if n not in KEPT for v in [_text(data, n)]
               if len(v) >= 4 and n != "fill" and not (n in BY_OPTION and BY_OPTION[n] in options)}
    out = bytearray(data)
    changed: dict[str, str] = {}
    for name in BLANK + tuple(BY_OPTION):
        if name in BY_OPTION and BY_OPTION[name] in options:
            continue
        off, size = TEXT[name]
        if any(out[off: off + size]):
            changed[name] = "emptied"
        out[off: off + size] = bytes(size)
    if _u32(out, BIRTH[1]):
        changed[BIRTH[0]] = "emptied"
    out[BIRTH[1]: BIRTH[1] + 4] = bytes(4)
    qi: dict[str, str] = {}
    if "retain-patient-characteristics" in options:
        sex = bytes(out[214:215]).decode("latin-1").strip("\x00 ")
        if sex:
            qi["PatientSex"] = sex
        for key, off in (("PatientAge", 216), ("PatientSize", 220), ("PatientWeight", 224)):
            (v,) = struct.unpack_from(">f", out, off)
            if v and math.isfinite(v):
                qi[key] = f"{v:g}"
    else:
        for name, (off, size) in CHARACTERISTICS.items():
            if any(out[off: off + size]):
                changed[name] = "emptied"
            out[off: off + size] = bytes(size)
    days, seconds = keyring.date_offset(ident)
    for name, off in TIMES.items():
        value = _u32(out, off)
        if not value or "retain-long-full-dates" in options:
            continue
        if "retain-long-modified-dates" in options:
            shifted = value + days * 86400 + seconds
            if not 0 < shifted < 1 << 32:
                raise CorruptInputError(f"the ECAT {name} cannot be shifted within the format's range")
            struct.pack_into(">I", out, off, shifted)
            changed[name] = "shifted"
        else:
            out[off: off + 4] = bytes(4)
            changed[name] = "emptied"
    released = bytes(out)
    for needle in needles:
        if needle.encode("latin-1", "replace") in released:
            raise VerificationError("an identifying value of the ECAT main header is still in the file "
                                    "(a subheader or the data): not released")
    kept = [(n, _text(released, n)) for n in KEPT + tuple(n for n in BY_OPTION if BY_OPTION[n] in options)]
    for _mid, first, _last in entries:
        off = (first - 1) * BLOCK + ANNOTATION[0]
        if struct.unpack_from(">H", data, 50)[0] in (6, 7) and off + ANNOTATION[1] <= len(released):
            text = released[off: off + ANNOTATION[1]].split(b"\x00", 1)[0].decode("latin-1").strip()
            if text.isprintable():
                kept.append(("annotation", text))
    return Cleaned(released, ident, changed, kept, qi)


def header_findings(data: bytes) -> list[str]:
    """What a released main header still holds that :func:`clean` always empties."""
    if data[:7] != MAGIC or len(data) < BLOCK:
        return ["not an ECAT 7 file"]
    found = [f"main header field {n} holds text" for n in BLANK if any(data[TEXT[n][0]: sum(TEXT[n])])]
    if _u32(data, BIRTH[1]):
        found.append("main header holds a birth date")
    return found


def read(path: Path) -> bytes:
    return limits.read_file(path, "the ECAT file")
