"""Writing a de-identified data set as a DICOM Part 10 file, with a File Meta group of our own.

The File Meta Information is encoded here directly (it is seven small elements, always Explicit
VR Little Endian), which spares pydicom's general file-format machinery on every object; the data
set itself is encoded by pydicom's ``write_dataset``, deflated when the transfer syntax says so.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

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


def encode(ds: Dataset, transfer_syntax: str, meta: bytes) -> bytes:
    """Preamble, prefix, ``meta`` and the data set encoded for ``transfer_syntax``."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
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
        write_dataset(buf, ds)
        return buf.getvalue()
    inner = DicomBytesIO()
    inner.is_implicit_VR, inner.is_little_endian = False, True
    write_dataset(inner, ds)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = compressor.compress(inner.getvalue()) + compressor.flush()
    return buf.getvalue() + deflated + (b"\x00" if len(deflated) % 2 else b"")
