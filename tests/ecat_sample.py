"""ECAT 7 test files, made here from the ECAT 7 specification's layout (nibabel's
``main_header_dtd`` and ``subheader_dtd``, big-endian): a 16-bit image volume (file type 7) of one
frame of 8x6x4 voxels: main header, one matrix directory block, the frame's image subheader and
its data; with identifying values planted in every text field the ECAT 7 main header documents (the field list of :data:`medcloak.formats.ecat.TEXT`, itself the
specification's layout as nibabel's ``main_header_dtd`` gives it: the test checks the two agree),
in the birth date, in the patient characteristics and in both times."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from medcloak.formats import ecat

#: what every planted text field holds: its field's name made identifying
PLANTED = {name: f"NF{i:02d}{name}"[:size] for i, (name, (_, size)) in enumerate(ecat.TEXT.items())}
PLANTED["patient_name"] = "Surname^Givenname"
PLANTED["patient_id"] = "NF00482913"
BIRTH = 315532800  # 1980-01-01
SCAN, DOSE = 1290124615, 1290124000


SHAPE = (8, 6, 4)


def voxels() -> np.ndarray:
    return (np.arange(np.prod(SHAPE), dtype=">i2").reshape(SHAPE[::-1]) * 7 - 300)


def base(frames: int = 1) -> bytes:
    """A clean ECAT 7 file of ``frames`` frames (the same voxels in each)."""
    from nibabel import ecat as nib_ecat

    main = np.zeros((), np.dtype(nib_ecat.main_header_dtd).newbyteorder(">"))
    main["magic_number"] = b"MATRIX72v"
    main["sw_version"], main["file_type"], main["num_frames"], main["num_planes"] = 72, 7, frames, SHAPE[2]
    main["isotope_name"], main["radiopharmaceutical"], main["data_units"] = b"F-18", b"FDG", b"Bq/cc"
    main["num_bed_pos"], main["num_gates"], main["ecat_calibration_factor"] = 0, 1, 1.0
    data = voxels().tobytes()
    nblocks = -(-len(data) // 512)
    mlist = np.zeros(32 * 4, ">i4")
    mlist[:4] = (31 - frames, 2, 0, frames)
    blobs = []
    for f in range(frames):
        first = 3 + f * (nblocks + 1)
        mlist[4 + 4 * f: 8 + 4 * f] = (16842752 + f + 1, first, first + nblocks, 1)
        sub = np.zeros((), np.dtype(nib_ecat.subheader_dtd).newbyteorder(">"))
        sub["data_type"], sub["num_dimensions"] = 6, 3
        sub["x_dimension"], sub["y_dimension"], sub["z_dimension"] = SHAPE
        sub["scale_factor"], sub["frame_duration"] = 1.0, 60000
        blobs.append(sub.tobytes().ljust(512, b"\x00") + data.ljust(nblocks * 512, b"\x00"))
    return main.tobytes() + mlist.tobytes() + b"".join(blobs)


def planted(data: bytes | None = None) -> bytes:
    out = bytearray(base() if data is None else data)
    for name, value in PLANTED.items():
        if name in ecat.KEPT:
            continue
        off, size = ecat.TEXT[name]
        out[off: off + size] = value.encode("latin-1").ljust(size, b"\x00")
    struct.pack_into(">i", out, ecat.BIRTH[1], BIRTH)
    out[214:216] = b"FR"
    struct.pack_into(">fff", out, 216, 47.0, 1.82, 81.5)
    struct.pack_into(">I", out, ecat.TIMES["scan_start_time"], SCAN)
    struct.pack_into(">I", out, ecat.TIMES["dose_start_time"], DOSE)
    return bytes(out)


def make(folder: Path, stem: str) -> Path:
    path = folder / f"{stem}.v"
    path.write_bytes(planted())
    return path
