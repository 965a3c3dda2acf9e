"""Kept text values of a real release, read back from its DICOM files with pydicom, named as
:mod:`medcloak.review_record` names them (keyword, ``>``-joined sequence path, private
``(gggg,xxee) creator``): the real corpus the report's flags are checked against, and the
records a test manifest carries until the handlers write their own."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

TEXT_VRS = ("LO", "SH", "LT", "ST", "UT", "PN", "CS")


def _walk(ds, prefix: str = "") -> Iterator[tuple[str, str]]:
    for elem in ds:
        if elem.tag.group & 1:
            creator = ""
            if elem.tag.element >= 0x1000:
                block = ds.get((elem.tag.group, elem.tag.element >> 8))
                creator = str(block.value).strip() if block is not None else ""
            name = f"({elem.tag.group:04x},xx{elem.tag.element & 0xFF:02x}) {creator}".strip()
        else:
            name = elem.keyword or f"({elem.tag.group:04x},{elem.tag.element:04x})"
        path = f"{prefix}>{name}" if prefix else name
        if elem.VR == "SQ":
            for item in elem.value or ():
                yield from _walk(item, path)
        elif elem.VR in TEXT_VRS and elem.value not in (None, ""):
            values = elem.value if elem.VM > 1 else [elem.value]
            yield path, "\\".join(str(v) for v in values)


def released_text(path: Path) -> list[tuple[str, str]]:
    """(attribute, value) of every non-empty text value of the released DICOM file at ``path``."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return list(_walk(ds))
