"""Siemens twix raw data (``.dat``): identifying header values blanked in place, raw data copied.

A twix file is a header of text buffers and then the scanner's raw data (measurement data
blocks). Two layouts:

- VB (one measurement): a 4-byte little-endian header length, a 4-byte count of buffers, then
  each buffer as its NUL-terminated name (``Config``, ``Dicom``, ``Meas``, ``MeasYaps``,
  ``Phoenix``, ``Spice``), a 4-byte length and its text; the raw data starts at the header
  length.
- VD/VE (several measurements): a MultiRaidFileHeader (a 4-byte value, a 4-byte count of at most
  64, then 64 entries of 152 bytes: measurement id, file id, 8-byte offset and length, 64-byte
  patient name, 64-byte protocol name), and at each entry's offset one measurement laid out as a
  VB file is.

The buffers are XProtocol (``<ParamString."Name"> { "value" }``) with ASCCONV sections
(``key = value`` lines, in ``MeasYaps`` and embedded in ``Phoenix``). What identifies is named
by its key; medcloak blanks each such value **in place**, every character of it turned into a
space (quotes and braces kept), so that every buffer's length, the header length and every
offset stay as they were and the raw data bytes are copied unchanged (never parsed, never held:
the writer streams them in bounded pieces). Then the header is searched for the identity values
blanked (a name, an ID, a birth date) and they are blanked wherever they are found again (a name
inside a protocol name, a value under a key damaged or unknown); parts of names of 4 or 5
characters only inside quoted strings, where they cannot be part of a key. The measurement table's patient and
protocol names are blanked to NUL bytes.

What is blanked, by key (the last component of the key, its Hungarian prefix ``t``, ``l``,
``ul``, ``fl``... dropped, case ignored): always the patient's name, IDs, birth date, the
physicians and operators, the study/series/patient LOIDs, frame of reference, UIDs and reference
images (they embed the device serial and the date), accession and study IDs, free-text comments and descriptions, and
the protocol name (sites name protocols after people and studies), unless the profile keeps
descriptors (below). Dates and times of the study, series, acquisition and content unless
``retain-long-full-dates``; sex, age, weight and size unless ``retain-patient-characteristics``;
the device serial and station name unless ``retain-device-identity``; the institution unless
``retain-institution-identity``. Kept as reviewable text: the sequence file name and the
software version.

Descriptors (:data:`DESCRIPTORS`: the protocol name, in the measurement table too, series and
study descriptions, patient, image and study comments) follow the profile's rule for the DICOM
attribute each stands for, as the DICOM handler applies it: blanked under the Basic Profile;
under the Clean Descriptors option (``C``) kept with the identity values and the patterns of
:mod:`medcloak.rules.clean` masked; kept (``K``) or cleaned by its pattern (``E``) where a site
override says so; in every case in place, padded to its length, and cleaned once every identity
value of the file is known, then blanked of them again like all the header.

Declared lengths are checked against the file before anything is read: a header longer than its
measurement, buffers longer than their header, a measurement beyond the file's end, more than 64
measurements are refused (:class:`CorruptInputError`); a header beyond the run's per-object
limit too (:class:`LimitError`).

The raw data is walked, not read (:func:`walk_data`): from a header's end, each measurement
data header (VB: 128 bytes before each channel's samples; VD/VE: a 192-byte scan header, then
32 bytes before each channel's samples) gives the next one's place as the readers (twixtools,
mapVBVD) take it, and the chain must end in an ACQEND block at the measurement's declared end
(VB: the file's) or in its padding to 512 bytes. Only headers are read, two reads a readout:
a file cut short inside its raw data, or raw data that does not follow its headers, is refused
before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Mapping

from ..errors import CorruptInputError
from ..limits import check_declared

#: the bytes of the MultiRaidFileHeader: 8 bytes and 64 entries of 152 bytes
RAID_HEADER = 8 + 64 * 152
RAID_ENTRY = 152
MAX_MEASUREMENTS = 64
MAX_BUFFERS = 64
#: the buffers a measurement header names (the first is always ``Config``)
BUFFERS = (b"Config", b"Dicom", b"Meas", b"MeasYaps", b"Phoenix", b"Spice")
#: the writer's piece of raw data copied at a time
CHUNK = 4 << 20
#: measurement data headers: VB's per channel; VD/VE's scan header and channel header
VB_MDH, VD_SCAN, VD_CHANNEL = 128, 192, 32
#: evaluation info mask bits: the last block of a measurement, a block of sync (not k-space) data
ACQEND, SYNCDATA = 1 << 0, 1 << 5
#: the low 25 bits of a header's first word: its block's DMA length
DMA_MASK = (1 << 25) - 1
#: measurements end padded to this (the gap between VD/VE measurements)
SYNC_PAD = 512
#: readouts ahead whose headers the walk asks the kernel for while it reads one (when they are
#: alike: the disk then reads many at once, where one at a time costs its latency each)
AHEAD = 64

_ALWAYS = frozenset(s.lower() for s in (
    "PatientName", "PatientsName", "PatientID", "PatientsID", "PatientBirthDay", "PatientBirthDate",
    "PatientsBirthDate", "PatientBirthTime", "OtherPatientIDs", "OtherPatientNames", "PatientAddress",
    "PatientsAddress", "PatientMothersBirthName", "PatientLOID", "StudyLOID", "SeriesLOID", "FrameOfReference",
    "ReferringPhysician", "ReferringPhysiciansName", "PerformingPhysician", "PerformingPhysiciansName",
    "PerfPhysiciansName", "RequestingPhysician", "PhysiciansOfRecord", "OperatorsName", "OperatorName", "Operator",
    "AccessionNumber", "StudyID", "AdmissionID", "RequestedProcedureID", "ProtocolName", "StudyDescription",
    "SeriesDescription", "PatientComments", "StudyComments", "ImageComments", "Comment", "Comments",
    "Description", "PatientsRegistrationID",
))
_CHARACTERISTICS = frozenset(s.lower() for s in (
    "PatientSex", "PatientsSex", "PatientAge", "PatientsAge", "PatientWeight", "PatientsWeight",
    "UsedPatientWeight", "PatientSize", "PatientsSize", "PatientHeight", "PatientsHeight",
))
_DEVICE = frozenset(s.lower() for s in ("DeviceSerialNumber", "SerialNumber", "StationName", "DeviceID"))
_INSTITUTION = frozenset(s.lower() for s in ("InstitutionName", "InstitutionAddress", "InstitutionDepartmentName",
                                             "InstitutionalDepartmentName"))
_DATE = re.compile(r"(study|series|acquisition|content|instancecreation|performedprocedurestepstart|"
                   r"performedprocedurestepend|frameacquisition|prepare|measurement|patientregistration)"
                   r"(date|time|datetime|timestamp)$|date$")
#: descriptor keys (lower case, prefix dropped) and the DICOM attribute whose rule in the profile
#: they follow (Protocol Name, Series and Study Description, the comments): blanked, unless the
#: profile keeps that attribute (Clean Descriptors cleans them, a site override keeps them)
DESCRIPTORS = {"protocolname": 0x00181030, "seriesdescription": 0x0008103E, "studydescription": 0x00081030,
               "patientcomments": 0x00104000, "imagecomments": 0x00204000, "studycomments": 0x00324000}
#: kept text the review record shows (key, lower case)
_REVIEW_KEPT = frozenset(("sequencefilename", "sequencestring", "softwareversions", "softwareversion"))

_XPROT_PARAM = re.compile(rb'<Param[A-Za-z]*\."([^"]*)">\s*\{')
_ASCCONV = re.compile(rb"### ASCCONV BEGIN[^\n]*\n(.*?)### ASCCONV END ###", re.S)
#: an ASCCONV line: its key and the rest of the line (a comment after the value goes with it)
_ASC_LINE = re.compile(rb"^[ \t]*([A-Za-z_][\w.\[\]]*)[ \t]*=[ \t]*([^\r\n]*)$", re.M)
_QUOTED = re.compile(rb'"[^"\r\n]*"')


@dataclass(frozen=True)
class Policy:
    """What the profile's options keep; ``descriptors``: the rule of each descriptor key of
    :data:`DESCRIPTORS` the profile keeps (``K`` kept, ``C`` cleaned, ``E`` cleaned by the
    site's pattern, given), every other one blanked."""

    dates: bool = False
    characteristics: bool = False
    device: bool = False
    institution: bool = False
    descriptors: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass
class Cleaned:
    """The patches of a twix file (offset, bytes of the same length as they replace), what was
    blanked (``buffer>key``), the kept text for the review record, the layout."""

    layout: str
    size: int
    patches: list[tuple[int, bytes]] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)
    text: dict[str, list[str]] = field(default_factory=dict)


def _key(name: bytes) -> str:
    last = name.decode("latin-1").split(".")[-1]
    last = re.sub(r"\[\d*\]", "", last)
    return re.sub(r"^[a-z]+(?=[A-Z])", "", last).lower()


def _category(key: str) -> str | None:
    if key in _ALWAYS or "comment" in key or key.endswith("uid") or key.startswith("referenceimage"):
        return "identity"
    if key in _CHARACTERISTICS:
        return "characteristics"
    if key in _DEVICE:
        return "device"
    if key in _INSTITUTION:
        return "institution"
    if _DATE.search(key):
        return "dates"
    return None


def _blanked(policy: Policy, category: str | None) -> bool:
    return category is not None and not getattr(policy, category, False) if category != "identity" else True


def _blank(buf: bytearray, start: int, end: int) -> bytes:
    """Turn every character in ``buf[start:end]`` but quotes, braces, angle-bracketed tags and
    white space into a space; the original value (without quotes) is returned."""
    original = bytes(buf[start:end])
    in_tag = False
    for i in range(start, end):
        c = buf[i]
        if c == 0x3C:  # <
            in_tag = True
        elif c == 0x3E and in_tag:
            in_tag = False
        elif not in_tag and c not in b'"{} \t\r\n':
            buf[i] = 0x20
    return original


def _brace_end(buf: bytearray, start: int) -> int:
    """The index of the ``}`` closing the ``{`` at ``start`` (quotes respected), or -1."""
    depth, i, n = 0, start, len(buf)
    while i < n:
        c = buf[i]
        if c == 0x22:
            j = buf.find(b'"', i + 1)
            if j < 0:
                return -1
            i = j
        elif c == 0x7B:
            depth += 1
        elif c == 0x7D:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _values(original: bytes) -> list[bytes]:
    """The quoted strings of a blanked value, or its bare text when it has none."""
    quoted = [m.group()[1:-1].strip() for m in _QUOTED.finditer(original)]
    found = [q for q in quoted if q] or [original.strip(b'{} \t\r\n"')]
    return [v for v in found if v and v.lower() not in (b"true", b"false")]


def _keep(kept: dict[str, list[str]], name: str, value: bytes) -> None:
    values = kept.setdefault(name, [])
    if value.decode("latin-1") not in values:
        values.append(value.decode("latin-1"))


def clean_buffer(name: str, text: bytearray, policy: Policy, changed: dict[str, str],
                 seen: set[bytes], kept: dict[str, list[str]],
                 later: list[tuple[int, int, str, str]] | None = None, others: set[bytes] | None = None) -> None:
    """Blank, in ``text`` (one header buffer), the values of identifying keys, XProtocol and
    ASCCONV (identity values added to ``seen``, the other values blanked to ``others``); a
    descriptor the policy keeps is left as it is and its span (start, end, name, key) put in
    ``later``, to be cleaned once every value blanked is known (:func:`clean_descriptor`)."""
    for m in _XPROT_PARAM.finditer(bytes(text)):
        key = _key(m.group(1))
        open_at = m.end() - 1
        if key in policy.descriptors and later is not None:
            end = _brace_end(text, open_at)
            if end < 0:
                raise CorruptInputError(f"twix header buffer {name}: unterminated value")
            _later(later, (open_at + 1, end, f"{name}>{m.group(1).decode('latin-1')}", key))
            continue
        if key in _REVIEW_KEPT:
            end = _brace_end(text, open_at)
            for v in _values(bytes(text[open_at + 1:end])) if end > 0 else ():
                _keep(kept, f"{name}>{m.group(1).decode('latin-1')}", v)
            continue
        category = _category(key)
        if not _blanked(policy, category):
            continue
        end = _brace_end(text, open_at)
        if end < 0:
            raise CorruptInputError(f"twix header buffer {name}: unterminated value")
        original = _blank(text, open_at + 1, end)
        (seen if category == "identity" else others if others is not None else set()).update(_values(original))
        changed[f"{name}>{m.group(1).decode('latin-1')}"] = "emptied"
    for section in _ASCCONV.finditer(bytes(text)):
        base = section.start(1)
        for line in _ASC_LINE.finditer(section.group(1)):
            key = _key(line.group(1))
            if key in policy.descriptors and later is not None:
                _later(later, (base + line.start(2), base + line.end(2), f"{name}>{line.group(1).decode('latin-1')}", key))
                continue
            category = _category(key)
            if not _blanked(policy, category):
                if key in _REVIEW_KEPT:
                    for value in _values(line.group(2).split(b"#")[0] if b'"' not in line.group(2) else line.group(2))[:1]:
                        _keep(kept, f"{name}>{line.group(1).decode('latin-1')}", value)
                continue
            original = _blank(text, base + line.start(2), base + line.end(2))
            (seen if category == "identity" else others if others is not None else set()).update(_values(original))
            changed[f"{name}>{line.group(1).decode('latin-1')}"] = "emptied"


def _later(later: list[tuple[int, int, str, str]], span: tuple[int, int, str, str]) -> None:
    """Add a kept descriptor's span, unless it lies inside one already there (it is cleaned with
    it); one that straddles another cannot be cleaned in place: refused."""
    start, end = span[:2]
    for a, b, *_ in later:
        if a <= start and end <= b:
            return
        if start < b and a < end:
            raise CorruptInputError("twix header: descriptor values overlap")
    later.append(span)


def clean_descriptor(value: bytes, rule: tuple[str, str | None], identity: Iterable[bytes]) -> bytes:
    """A kept descriptor's value cleaned by its rule, as the DICOM handler cleans the attribute
    it stands for: ``C`` the values blanked (``identity``) and the patterns of :mod:`medcloak.rules.clean`
    (dates, numbers, IDs...) masked, ``E`` the site's pattern, ``K`` as it is; then padded with
    spaces to its length (a value cleaned longer, which cannot be, is blanked)."""
    import re as _re

    from ..rules.clean import TextCleaner

    code, pattern = rule
    text = value.decode("latin-1")
    if code == "C":
        text = TextCleaner(v.decode("latin-1") for v in identity)(text)
    elif code == "E":
        text = _re.sub(pattern or "", lambda m: "*" * min(3, len(m.group(0))), text)
    elif code != "K":
        text = ""
    out = text.encode("latin-1", "replace").ljust(len(value))
    if len(out) > len(value) or _structure(out) != _structure(value):  # quotes and braces as they were
        blanked = bytearray(value)
        _blank(blanked, 0, len(value))
        return bytes(blanked)
    return out


def _structure(value: bytes) -> bytes:
    return bytes(c for c in value if c in b'"{}<>')


def blank_seen(text: bytearray, seen: Iterable[bytes]) -> int:
    """Blank in ``text`` every occurrence of a value blanked elsewhere: values of 6 characters or
    more anywhere (a damaged key or quote does not hide them), parts of a name of 4 or 5
    characters inside quoted strings only (they could be part of a key); the count blanked."""
    long: set[bytes] = set()
    short: set[bytes] = set()
    for value in seen:
        for part in {value.strip(), *re.split(rb"[\^ ,]+", value)}:
            part = part.strip().lower()
            (long if len(part) >= 6 else short if len(part) >= 4 else set()).add(part)
    count = 0
    for needles, spans in ((long, [(0, len(text))]), (short, [m.span() for m in _QUOTED.finditer(bytes(text))])):
        if not needles:
            continue
        pattern = re.compile(b"|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)), re.I)
        for start, end in spans:
            for m in pattern.finditer(bytes(text[start:end])):
                at = start + m.start()
                text[at:at + len(m.group())] = b" " * len(m.group())
                count += 1
    return count


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from("<I", data, at)[0])


def read_header(fh: BinaryIO, offset: int, length: int, what: str) -> tuple[bytes, list[tuple[str, int, int]]]:
    """The header of the measurement at ``offset`` (``length`` bytes in the file) and its buffers
    (name, start within the header, length), every declared length checked."""
    if length < 8:
        raise CorruptInputError(f"{what}: too short for a measurement header")
    fh.seek(offset)
    first = fh.read(8)
    if len(first) < 8:
        raise CorruptInputError(f"{what}: truncated")
    hdr_len, count = _u32(first, 0), _u32(first, 4)
    check_declared(hdr_len, what=f"{what} header", stored=length)
    if hdr_len < 8 or not 1 <= count <= MAX_BUFFERS:
        raise CorruptInputError(f"{what}: not a twix measurement header ({count} buffers)")
    fh.seek(offset)
    header = fh.read(hdr_len)
    if len(header) < hdr_len:
        raise CorruptInputError(f"{what}: truncated header")
    return header, parse_buffers(header, what)


def parse_buffers(header: bytes, what: str) -> list[tuple[str, int, int]]:
    """The buffers of a measurement header: (name, start, length), checked to lie in it."""
    hdr_len, count = _u32(header, 0), _u32(header, 4)
    if hdr_len != len(header) or not 1 <= count <= MAX_BUFFERS:
        raise CorruptInputError(f"{what}: not a twix measurement header")
    buffers = []
    pos = 8
    for _ in range(count):
        nul = header.find(b"\x00", pos, pos + 48)
        if nul < 0 or not re.fullmatch(rb"\w{2,}", header[pos:nul]) or nul + 5 > hdr_len:
            raise CorruptInputError(f"{what}: a buffer without a name")
        size = _u32(header, nul + 1)
        start = nul + 5
        if start + size > hdr_len:
            raise CorruptInputError(f"{what}: a buffer beyond its header")
        buffers.append((header[pos:nul].decode("ascii"), start, size))
        pos = start + size
    if buffers[0][0] != "Config":
        raise CorruptInputError(f"{what}: its first buffer is not Config")
    if header[pos:].strip(b"\x00"):
        raise CorruptInputError(f"{what}: text after its last buffer (a wrong count of buffers?)")
    return buffers


def layout(head: bytes) -> str | None:
    """``vb`` or ``vd`` from a file's first bytes (VD needs its first entry's offset checked)."""
    if len(head) >= 15 and head[8:15] == b"Config\x00":
        return "vb"
    if len(head) >= 32 and _u32(head, 0) < 10000 and 1 <= _u32(head, 4) <= MAX_MEASUREMENTS:
        return "vd"
    return None


def measurements(fh: BinaryIO, size: int) -> tuple[str, list[tuple[int, int]], bytes]:
    """The layout, the (offset, length) of each measurement, the raid header (VD) or ``b""``."""
    head = fh.read(RAID_HEADER)
    kind = layout(head)
    if kind == "vb":
        return kind, [(0, size)], b""
    if kind is None or len(head) < RAID_HEADER:
        raise CorruptInputError("not a Siemens twix file (neither a VB header nor a VD/VE measurement table)")
    count = _u32(head, 4)
    out: list[tuple[int, int]] = []
    for k in range(count):
        at = 8 + k * RAID_ENTRY
        off, length = struct.unpack_from("<QQ", head, at + 8)
        if length == 0 and count == 1:
            length = size - off
        if off < RAID_HEADER or off + length > size:
            raise CorruptInputError(f"twix measurement {k + 1} of {count}: beyond the end of the file (truncated?)")
        out.append((int(off), int(length)))
    spans = sorted(out)
    if any(a_off + a_len > b_off for (a_off, a_len), (b_off, _) in zip(spans, spans[1:])):
        raise CorruptInputError("twix measurement table: measurements overlap")
    return kind, out, head


#: (dma word, scan counter, eval mask, samples, channels) of a VB MDH and of a VD/VE scan header
_VB_FIELDS = struct.Struct("<I4xI8xQHH")
_VD_FIELDS = struct.Struct("<I4xI28xQHH")
_COUNTER = struct.Struct("<8xI")


def walk_data(fd: int, start: int, end: int, kind: str, what: str) -> int:
    """Check that the raw data between ``start`` (the header's end) and ``end`` (the
    measurement's declared end) is a whole chain of measurement data blocks ending in ACQEND,
    reading only their headers (the data is never read): each block's length from its header
    (a readout: its channels x (channel header + 8 bytes a sample), as the readers take it;
    sync data and ACQEND: the DMA length), each readout's first and last channel header (VB: the
    MDH of its last channel) carrying its scan counter (they place the channels), the chain's
    end at ``end`` or in the padding to the next 512 bytes. Anything else is
    :class:`CorruptInputError`: a file cut short in its raw data, or raw data that is not what
    the header says, is not released. The count of blocks."""
    vd = kind == "vd"
    fields, head, chan = (_VD_FIELDS, VD_SCAN, VD_CHANNEL) if vd else (_VB_FIELDS, VB_MDH, VB_MDH)
    pos, blocks = start, 0
    advise = hasattr(os, "posix_fadvise")
    stride = ahead = 0
    while True:
        if pos + head > end:
            where = "ends without ACQEND" if pos == end else "is cut short inside a measurement data header"
            raise CorruptInputError(f"{what}: its raw data {where} (truncated?)")
        raw = os.pread(fd, head + VD_CHANNEL if vd else head, pos)  # VD/VE: and its first channel header
        if len(raw) < head:
            raise CorruptInputError(f"{what}: its raw data is cut short (the file changed?)")
        dma, counter, mask, samples, channels = fields.unpack_from(raw)
        blocks += 1
        if mask & (ACQEND | SYNCDATA):
            step = dma & DMA_MASK
            if step < head and not mask & ACQEND:
                raise CorruptInputError(f"{what}: a block of sync data shorter than its header")
            if mask & ACQEND:  # readers stop here, whatever its DMA length (0 in some files)
                last = pos + max(step, head)
                if last > end:
                    raise CorruptInputError(f"{what}: its raw data is cut short inside its ACQEND block (truncated?)")
                if end > last + (-last % SYNC_PAD):
                    raise CorruptInputError(f"{what}: {end - last} bytes after the raw data's ACQEND, more than "
                                            "its padding (a measurement length that does not match its data?)")
                return blocks
            pos += step
            continue
        step = channels * (chan + 8 * samples) + (head if vd else 0)
        if not channels:
            if not vd:
                raise CorruptInputError(f"{what}: a readout of no channel in its raw data (not a measurement data header?)")
        elif pos + step > end:
            raise CorruptInputError(f"{what}: its raw data is cut short inside a readout (truncated?)")
        else:
            last = pos + (head if vd else 0) + (channels - 1) * (chan + 8 * samples)
            found = [raw[head:]] if vd else []
            if channels > 1:
                found.append(os.pread(fd, 12, last))
            for got in found:
                if len(got) < 12 or _COUNTER.unpack_from(got)[0] != counter:
                    raise CorruptInputError(f"{what}: a readout's channel header does not match its scan "
                                            "(raw data inconsistent with its headers)")
            if advise:
                if step != stride:
                    stride, ahead = step, pos
                while ahead < min(pos + AHEAD * step, end - step):  # the next readouts' headers, if alike
                    ahead += step
                    os.posix_fadvise(fd, ahead, head + VD_CHANNEL, os.POSIX_FADV_WILLNEED)
                    os.posix_fadvise(fd, ahead + last - pos, 12, os.POSIX_FADV_WILLNEED)
        pos += step


def clean_twix(path: Path, policy: Policy) -> Cleaned:
    """The patches that de-identify the twix file at ``path`` (headers only; data untouched)."""
    with open(path, "rb") as fh, open(path, "rb", buffering=0) as walker:
        if hasattr(os, "posix_fadvise"):  # the walk reads a few bytes a readout: no read-ahead
            os.posix_fadvise(walker.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        size = fh.seek(0, 2)
        fh.seek(0)
        kind, meas, raid = measurements(fh, size)
        result = Cleaned(kind, size)
        seen: set[bytes] = set()
        others: set[bytes] = set()  # values blanked that are not identities (dates, a serial...)
        headers = []
        #: kept descriptors: (the header's text, start, end, name, key), cleaned once ``seen`` is whole
        later: list[tuple[bytearray, int, int, str, str]] = []
        for k, (off, length) in enumerate(meas):
            what = f"twix measurement {k + 1}"
            header, buffers = read_header(fh, off, length, what)
            walk_data(walker.fileno(), off + len(header), off + length, kind, what)
            text = bytearray(header)
            for name, start, blen in buffers:
                piece = bytearray(text[start:start + blen])
                spans: list[tuple[int, int, str, str]] = []
                clean_buffer(name, piece, policy, result.changed, seen, result.text, spans, others)
                text[start:start + blen] = piece
                later += [(text, start + a, start + b, label, key) for a, b, label, key in spans]
            headers.append((off, text, buffers))
    table = bytearray(raid)
    if raid:
        protocols = policy.descriptors.get("protocolname")
        for k in range(len(meas)):
            at = 8 + k * RAID_ENTRY + 24
            for field_at in (at, at + 64):
                value = bytes(table[field_at:field_at + 64]).split(b"\x00")[0]
                if protocols and field_at > at:  # the protocol's name, kept by the profile: cleaned below
                    later.append((table, field_at, field_at + len(value), "MultiRaidFileHeader>protName", "protocolname"))
                    continue
                if value.strip():
                    seen.add(value)
                table[field_at:field_at + 64] = b"\x00" * 64
        result.changed["MultiRaidFileHeader>patName"] = "emptied"
        if not protocols:
            result.changed["MultiRaidFileHeader>protName"] = "emptied"
    for text, start, end, label, key in later:
        original = bytes(text[start:end])
        cleaned = bytearray(clean_descriptor(original, policy.descriptors[key], seen | others))
        if text is table:  # the table's field, NUL-padded, is one string without its quotes
            quoted = bytearray(b'"' + cleaned + b'"')
            blank_seen(quoted, seen)
            cleaned = bytearray(bytes(quoted[1:-1]).rstrip(b" ").ljust(end - start, b"\x00"))
        else:
            blank_seen(cleaned, seen)
        text[start:end] = cleaned
        if cleaned != original:
            result.changed[label] = "cleaned"
        for value in _values(bytes(cleaned)):
            _keep(result.text, label, value)
    if raid:
        result.patches.append((0, bytes(table)))
    for off, text, buffers in headers:
        for name, start, blen in buffers:
            piece = bytearray(text[start:start + blen])
            if blank_seen(piece, seen):
                result.changed.setdefault(f"{name}>(value found again)", "emptied")
            text[start:start + blen] = piece
        blank_seen(text, seen)  # the names and lengths between buffers too: nothing escapes
        if parse_buffers(bytes(text), "twix header") != buffers:
            raise CorruptInputError("twix header: a blanked value overlaps its structure")
        result.patches.append((off, bytes(text)))
    return result


def _segments(patches: list[tuple[int, bytes]], size: int) -> list[tuple[int, int, bytes | None]]:
    """The file as (offset, length, patch bytes or None: copied from the input), in order."""
    out: list[tuple[int, int, bytes | None]] = []
    pos = 0
    for off, data in sorted(patches):
        if off < pos or off + len(data) > size:
            raise CorruptInputError("twix file: its headers overlap")
        if off > pos:
            out.append((pos, off - pos, None))
        out.append((off, len(data), data))
        pos = off + len(data)
    if pos < size:
        out.append((pos, size - pos, None))
    return out


def _copy(src: int, dst: int, segments: list[tuple[int, int, bytes | None]]) -> None:
    """Write the segments into ``dst`` at their offsets: patches from memory, the rest copied by
    the kernel (``copy_file_range``: the data never enters the process) or, where the kernel or
    file system does not offer it, through a :data:`CHUNK` buffer."""
    kernel = hasattr(os, "copy_file_range")
    for off, length, data in segments:
        if data is not None:
            os.pwrite(dst, data, off)
            continue
        pos, end = off, off + length
        while pos < end:
            n = 0
            if kernel:
                try:
                    n = os.copy_file_range(src, dst, min(end - pos, 1 << 30), pos, pos)
                except OSError:
                    kernel = False
            if not kernel:
                piece = os.pread(src, min(end - pos, CHUNK), pos)
                n = os.pwrite(dst, piece, pos) if piece else 0
            if not n:
                raise CorruptInputError("twix file: shorter than when it was read (changed meanwhile?)")
            pos += n


def write_patched(src: Path, patches: list[tuple[int, bytes]], fh: BinaryIO, size: int) -> str:
    """Copy ``src`` into ``fh`` with ``patches`` in place of the bytes they cover; the SHA-256
    of what was written. The copy (kernel-side, or in :data:`CHUNK` pieces), then its flush to
    the disk, run in a thread while this one hashes the same bytes read in :data:`CHUNK` pieces:
    the raw data is never held whole, and hashing and the disk's writing overlap (hashlib and
    the system calls release the GIL)."""
    segments = _segments(patches, size)
    fh.flush()
    errors: list[BaseException] = []
    with open(src, "rb", buffering=0) as inp, open(src, "rb", buffering=0) as hashed:
        if os.fstat(inp.fileno()).st_size != size:
            raise CorruptInputError("twix file: changed since it was read")
        if hasattr(os, "posix_fadvise"):  # both readers go through the file once, front to back
            for reader in (inp, hashed):
                os.posix_fadvise(reader.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)

        def copy() -> None:
            try:
                _copy(inp.fileno(), fh.fileno(), segments)
                # the copy ends before the hash does: its pages go to the disk meanwhile, not in
                # the run's durable commit after it (a syncfs that would find them all dirty)
                os.fdatasync(fh.fileno())
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        worker = threading.Thread(target=copy, name="medcloak-twix-copy", daemon=True)
        worker.start()
        sha = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            for off, length, data in segments:
                if data is not None:
                    sha.update(data)
                    continue
                hashed.seek(off)
                left = length
                while left:
                    n = hashed.readinto(view[:min(CHUNK, left)])
                    if not n:
                        raise CorruptInputError("twix file: shorter than when it was read (changed meanwhile?)")
                    sha.update(view[:n])
                    left -= n
        finally:
            worker.join()
    if errors:
        raise errors[0]
    fh.seek(size)
    return sha.hexdigest()


def residual(path: Path, descriptors: Mapping[str, tuple[str, str | None]] | None = None) -> list[str]:
    """What ``verify`` finds in a released twix file: identifying keys that still hold a value
    (identity keys only: the options but ``descriptors``, the descriptors the release's profile
    keeps, are not known here), a measurement table naming someone."""
    found = []
    descriptors = descriptors or {}
    names = 64 if "protocolname" in descriptors else 128  # the patient's (and the protocol's) names
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        _, meas, raid = measurements(fh, size)
        if raid and any(raid[8 + k * RAID_ENTRY + 24: 8 + k * RAID_ENTRY + 24 + names].strip(b"\x00")
                        for k in range(len(meas))):
            found.append("measurement table names a patient or protocol")
        for k, (off, length) in enumerate(meas):
            header, buffers = read_header(fh, off, length, f"twix measurement {k + 1}")
            for name, start, blen in buffers:
                piece = bytearray(header[start:start + blen])
                changed: dict[str, str] = {}
                clean_buffer(name, piece, Policy(True, True, True, True, descriptors), changed, set(), {}, [])
                if piece != header[start:start + blen]:
                    found.extend(f"{key} holds a value" for key in sorted(changed))
    return found
