"""Is this a DICOM file? From its first bytes alone, without pydicom (discovery asks it of every
file it meets)."""

from __future__ import annotations

_VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
        b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
        b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}


def sniff(head: bytes) -> str | None:
    """``"part10"`` for a file with preamble and ``DICM``, ``"raw"`` for a bare data set whose
    first element is plausible, ``None`` otherwise."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "part10"
    if len(head) < 8:
        return None
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    if group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008):
        if head[4:6] in _VRS or int.from_bytes(head[4:8], "little") < 0x10000:
            return "raw"
    return None
