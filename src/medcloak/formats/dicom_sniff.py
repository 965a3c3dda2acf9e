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


def media_class(head: bytes) -> str | None:
    """The Media Storage SOP Class UID (0002,0002) of a Part 10 file, read from its file meta
    information in ``head`` (explicit VR little endian, as the standard requires it); ``None``
    when ``head`` does not hold it whole."""
    pos = 132
    while pos + 8 <= len(head):
        group, element = int.from_bytes(head[pos:pos + 2], "little"), int.from_bytes(head[pos + 2:pos + 4], "little")
        if group != 0x0002:
            return None
        vr = head[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
            length, start = int.from_bytes(head[pos + 8:pos + 12], "little"), pos + 12
        else:
            length, start = int.from_bytes(head[pos + 6:pos + 8], "little"), pos + 8
        if element == 0x0002:
            if start + length > len(head):
                return None
            return head[start:start + length].rstrip(b"\x00 ").decode("ascii", "replace")
        if element > 0x0002 or length == 0xFFFFFFFF:
            return None
        pos = start + length
    return None
