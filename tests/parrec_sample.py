"""Philips PAR/REC test pairs: nibabel's phantom export ``phantom_EPI_asc_CLEAR_2_1``
(``nibabel/tests/data``, a real PAR v4.2 of 27 images and its REC), with identifying values
planted in every general-information line that holds text, as the PAR format documents them (the
keys of nibabel's PAR reader, ``parrec._hdr_key_dict``: the test plants into each of those that
carries free text or a date, and checks the others hold numbers or scanner terms), and in the
``# Dataset name:`` comment (the export's path)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

PHANTOM = "phantom_EPI_asc_CLEAR_2_1"
PLANTED = {
    "Patient name": "Surname^Givenname NF00482913",
    "Examination name": "NF00482913 exam of Surname",
    "Protocol name": "Surname protocol NF00482913",
    "Examination date/time": "2021.03.04 / 10:11:12",
}
DATASET = r"E:\Export\Surname_Givenname_NF00482913"


def source() -> Path:
    from nibabel.testing import data_path

    return Path(data_path) / f"{PHANTOM}.PAR"


def planted() -> bytes:
    lines = []
    for line in source().read_text("latin-1").split("\n"):
        m = re.match(r"^(\.\s+)([^:]*?)(\s*:)", line)
        if m and m[2].strip() in PLANTED:
            line = f"{m[1]}{m[2]}{m[3]}   {PLANTED[m[2].strip()]}"
        elif line.startswith("# Dataset name:"):
            line = f"# Dataset name: {DATASET}"
        lines.append(line)
    return "\n".join(lines).encode("latin-1")


def make(folder: Path, stem: str, rec: bool = True) -> Path:
    path = folder / f"{stem}.PAR"
    path.write_bytes(planted())
    if rec:
        shutil.copy(source().with_suffix(".REC"), folder / f"{stem}.REC")
    return path
