"""Writing a de-identified data set as a DICOM Part 10 file, with a File Meta group of our own.

The File Meta Information is encoded here directly (it is seven small elements, always Explicit
VR Little Endian), which spares pydicom's general file-format machinery on every object. The data
set is encoded by :func:`write_dataset_fast` (kept elements' bytes copied, the rest by pydicom),
deflated when the transfer syntax says so.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

PREAMBLE = b"\x00" * 128 + b"DICM"
DEFLATED = "1.2.840.10008.1.2.1.99"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _sh(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def file_meta_bytes(
    sop_class: str, sop_instance: str, transfer_syntax: str, implementation_uid: str, version: str
) -> bytes:
    """The encoded File Meta Information group, group length first (PS3.10 7.1)."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _ui(sop_class)),
            _element(0x0003, b"UI", _ui(sop_instance)),
            _element(0x0010, b"UI", _ui(transfer_syntax)),
            _element(0x0012, b"UI", _ui(implementation_uid)),
            _element(0x0013, b"SH", _sh(version)),
        )
    )
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


#: Explicit VRs whose length field is four bytes after two reserved ones (PS3.5 7.1.2).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_EXPLICIT_LONG = struct.Struct("<HH2s2xI")
_IMPLICIT = struct.Struct("<HHI")


def write_dataset_fast(fp: Any, ds: Dataset) -> None:
    """Encode ``ds`` into ``fp`` exactly as pydicom's ``write_dataset`` does, copying the bytes of
    elements that are still raw (most of an object: the ones no rule changed) with a header
    packed here; every other element is written by pydicom's own ``write_data_element``.

    Only little-endian output in the data set's original encoding takes this path; anything else
    (big endian, a change of encoding that needs VR correction) goes to ``write_dataset``.
    """
    from pydicom.filewriter import write_data_element, write_dataset

    implicit = fp.is_implicit_VR
    if not fp.is_little_endian or tuple(ds.original_encoding) != (implicit, True):
        write_dataset(fp, ds)
        return
    encoding = ds.get("SpecificCharacterSet", "iso8859")
    elements = ds._dict  # the element table itself: no per-tag conversion
    write = fp.write
    for tag in sorted(elements):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are never written
        elem = elements[tag]
        if elem.is_raw and type(elem.value) is bytes and elem.length != 0xFFFFFFFF:
            value = elem.value
            n = len(value)
            vr = elem.VR
            if implicit:
                write(_IMPLICIT.pack(tag >> 16, tag & 0xFFFF, n))
                write(value)
                continue
            if vr in LONG_VRS:
                write(_EXPLICIT_LONG.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), n))
                write(value)
                continue
            if vr is not None and len(vr) == 2 and n <= 0xFFFF:
                write(_EXPLICIT_SHORT.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), n))
                write(value)
                continue
        write_data_element(fp, ds.get_item(tag), encoding)


def encode(ds: Dataset, transfer_syntax: str, meta: bytes) -> bytes:
    """Preamble, prefix, ``meta`` and the data set encoded for ``transfer_syntax``."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import UID

    ts = UID(transfer_syntax)
    if 0x7FE00010 in ds:
        ds["PixelData"].is_undefined_length = ts.is_compressed
    buf = DicomBytesIO()
    buf.is_implicit_VR = ts.is_implicit_VR
    buf.is_little_endian = ts.is_little_endian
    buf.write(PREAMBLE)
    buf.write(meta)
    if transfer_syntax != DEFLATED:
        write_dataset_fast(buf, ds)
        return buf.getvalue()
    inner = DicomBytesIO()
    inner.is_implicit_VR, inner.is_little_endian = False, True
    write_dataset_fast(inner, ds)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = compressor.compress(inner.getvalue()) + compressor.flush()
    return buf.getvalue() + deflated + (b"\x00" if len(deflated) % 2 else b"")
