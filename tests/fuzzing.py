"""The fuzzing campaign's machinery: real seed files of every handled format, mutations that know
each format's structure, and one case run through the engine as a run would, checked against the
one invariant of hostile input.

A case is a seed's bytes changed by one mutation. It is sniffed as discovery would, run through
:func:`medcloak.engine.process_task` in this process under tight :class:`~medcloak.limits.Limits`
(so that bombs are refused cheaply), bounded in time, and ends as one of:

- ``released``: then every released file passes its handler's ``verify`` (the per-file check of
  ``medcloak verify``) and no planted identifier is found in it (gzip members are inflated first);
- ``quarantined`` or ``skipped`` with a typed reason (a :class:`~medcloak.errors.MedcloakError`,
  or the engine's "nesting too deep"); a case stopped by the engine's own time limit
  (``--object-timeout``, "took longer than N s") is one;

and never: an internal error (an untyped exception the engine swallowed), an exception out of
``process_task``, a hang (a case still running past the engine's time limit and a grace: the
engine did not stop it), or resident memory beyond the ceiling. Those are
``failures``, each with the exception's type and the innermost frame of medcloak it came from, so
that failures group into classes with a reader to blame.

Seeds carry planted identifiers (:data:`PLANTED`); mutations (:data:`MUTATIONS`) are drawn from a
:class:`random.Random` that hypothesis provides (``st.randoms``), so a fixed hypothesis seed gives
the same cases on every machine. Used by ``tests/test_fuzz.py`` (a few thousand cases in CI) and
``benchmarks/fuzz_campaign.py`` (the longer run with figures).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import random
import shutil
import signal
import struct
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
SECRET = b"fuzz-secret-0123456789abcdef"

#: identifiers planted in every seed that can carry text: none may survive into a release
PLANTED = ("QZXFUZZNAME", "QZXFUZZ4711")
#: patient name and ID in the form DICOM carries them
PATIENT_NAME, PATIENT_ID = f"{PLANTED[0]}^Givenname", PLANTED[1]


# ---- seeds -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A real file of one format: ``data`` is written as ``name`` (``companions``: files beside it,
    an Analyze image); ``family`` is what the mutations know of its structure."""

    name: str
    family: str  # dicom | jpeg | png | tiff | nifti | gzip | analyze | minc | mgh | nrrd | ecat | parrec | twix
    data: bytes
    companions: tuple[tuple[str, bytes], ...] = ()
    label: str = ""  # what it is, for the figures (a transfer syntax, a slide, ...)


#: pydicom's test files, one per transfer syntax medcloak handles
DICOM_FILES = {
    "explicit-le": "CT_small.dcm",
    "implicit-le": "rtplan.dcm",
    "big-endian": "MR_small_bigendian.dcm",
    "deflated": "image_dfl.dcm",
    "jpeg-baseline": "SC_rgb_jpeg_dcmtk.dcm",
    "jpeg-lossless": "SC_rgb_jpeg_gdcm.dcm",
    "jpeg-ls": "MR_small_jpeg_ls_lossless.dcm",
    "jpeg-2000": "JPEG2000.dcm",
    "rle": "SC_rgb_rle.dcm",
}


def _dicom_seed(label: str, name: str) -> Seed:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    if "BurnedInAnnotation" not in ds:
        ds.BurnedInAnnotation = "NO"  # a secondary capture without it is quarantined
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.InstitutionName = f"{PLANTED[0]} Hospital"
    buf = io.BytesIO()
    if label == "big-endian":
        ds.save_as(buf, implicit_vr=False, little_endian=False, enforce_file_format=True)
    else:
        ds.save_as(buf, enforce_file_format=True)
    return Seed(f"{label}.dcm", "dicom", buf.getvalue(), label=f"dicom {label}")


def _implicit_image_seed() -> Seed:
    """An image in Implicit VR Little Endian (rtplan has no pixels)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return Seed("implicit-image.dcm", "dicom", buf.getvalue(), label="dicom implicit-le image")


def _photo_seeds() -> list[Seed]:
    from PIL import Image, PngImagePlugin, TiffImagePlugin

    rng = random.Random(3)
    img = Image.frombytes("RGB", (48, 32), bytes(rng.randrange(256) for _ in range(48 * 32 * 3)))
    exif = Image.Exif()
    exif[0x013B] = f"{PLANTED[0]} Givenname"  # Artist
    exif[0x010E] = f"{PLANTED[1]} wound photograph"  # ImageDescription
    out = []
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, exif=exif.tobytes(), comment=f"patient {PLANTED[1]}".encode())
    out.append(Seed("photo.jpg", "jpeg", buf.getvalue(), label="jpeg"))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", PLANTED[0])
    info.add_text("Comment", f"patient {PLANTED[1]} " * 8, zip=True)  # zTXt
    info.add_itxt("Description", f"{PLANTED[0]} {PLANTED[1]}", zip=True)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info, exif=exif.tobytes())
    out.append(Seed("photo.png", "png", buf.getvalue(), label="png"))
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[0x013B] = f"{PLANTED[0]} Givenname"
    tags[0x010E] = f"{PLANTED[1]} photograph"
    buf = io.BytesIO()
    img.save(buf, "TIFF", tiffinfo=tags, compression="tiff_deflate")
    out.append(Seed("photo.tif", "tiff", buf.getvalue(), label="tiff photo"))
    return out


def _slide_seeds() -> list[Seed]:
    """The small slides of data_samples/wsi (SOURCES.md): an Aperio SVS, a generic tiled
    pyramid TIFF, and a DICOM whole-slide instance."""
    wsi = SAMPLES / "wsi"
    return [
        Seed("slide.svs", "tiff", (wsi / "openslide-python_small.svs").read_bytes(), label="slide svs"),
        Seed("boxes.tiff", "tiff", (wsi / "openslide-python_boxes.tiff").read_bytes(), label="slide tiff"),
        Seed("wsi.dcm", "dicom", (wsi / "dicom" / "openslide_boxes" / "boxes_0.dcm").read_bytes(),
             label="dicom slide"),
    ]


def _mgh_seeds() -> list[Seed]:
    """FreeSurfer MGH and MGZ of a body CT with tags naming the patient (tests/test_mgh.py)."""
    from test_mgh import _no_head, mgh_bytes

    data = mgh_bytes(_no_head())
    return [Seed("body.mgh", "mgh", data, label="mgh"),
            Seed("body.mgz", "gzip", gzip.compress(data, mtime=0), label="mgz")]


def _nrrd_seeds() -> list[Seed]:
    """NRRD attached (raw, gzip) and an NHDR with its data file (tests/test_nrrd.py), free text
    naming the patient in comments, fields and key/value pairs."""
    from test_nrrd import _no_head, header

    data = _no_head()
    body = data.tobytes(order="F")
    return [Seed("body.nrrd", "nrrd", header(data) + body, label="nrrd"),
            Seed("body-gz.nrrd", "nrrd", header(data, encoding="gzip") + gzip.compress(body, mtime=0), label="nrrd gz"),
            Seed("body.nhdr", "nrrd", header(data, data_file="body.raw"), (("body.raw", body),), label="nhdr")]
def _ecat_seeds() -> list[Seed]:
    """An ECAT 7 file of two frames made from the specification (tests/ecat_sample.py), the
    patient's name and ID in its main header, and its matrix directory's fields to mutate."""
    from ecat_sample import base

    data = bytearray(base(2))
    data[166:166 + len(PATIENT_ID)] = PATIENT_ID.encode()
    data[182:182 + len(PATIENT_NAME)] = PATIENT_NAME.encode()
    return [Seed("pet.v", "ecat", bytes(data), label="ecat-7")]


def _parrec_seeds() -> list[Seed]:
    """nibabel's Philips phantom PAR with identifiers planted (tests/parrec_sample.py), its REC beside it."""
    from parrec_sample import planted, source

    return [Seed("scan.PAR", "parrec", planted(), (("scan.REC", source().with_suffix(".REC").read_bytes()),),
                 label="par-rec")]


def m_ecat_directory(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """An ECAT matrix directory word (next block, count, an entry's blocks) set to an extreme."""
    word = rng.choice([1, 3] + [4 + 4 * e + k for e in range(2) for k in (1, 2)])
    value = rng.choice(EXTREMES32)
    out = bytearray(data)
    struct.pack_into(">I", out, 512 + 4 * word, value)
    return bytes(out), f"directory word {word} = {value:#x}"


def _volume_seeds() -> list[Seed]:
    import nibabel as nib
    import numpy as np

    # a CT of a body without a head (air, soft tissue, a bone): released undefaced ("no-head")
    rng = np.random.default_rng(5)
    data = np.full((24, 20, 16), -1000, np.int16)
    data[4:20, 4:16, :] = rng.integers(20, 60, (16, 12, 16))
    data[10:14, 8:12, :] = 900
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    out = []
    for cls, label in ((nib.Nifti1Image, "nifti-1"), (nib.Nifti2Image, "nifti-2")):
        img = cls(data, affine)
        img.header["descrip"] = f"{PATIENT_NAME} {PATIENT_ID}".encode()
        out.append(Seed(f"{label}.nii", "nifti", img.to_bytes(), label=label))
    out.append(Seed("nifti-1.nii.gz", "gzip", gzip.compress(out[0].data, mtime=0), label="nifti-1 gz"))
    ana = nib.AnalyzeImage(data, affine)
    ana.header["db_name"] = PATIENT_ID.encode()
    header = ana.header.binaryblock
    body = data.tobytes(order="F")
    out.append(Seed("analyze.hdr", "analyze", header, (("analyze.img", body),), label="analyze"))
    nibdata = Path(nib.__file__).parent / "tests" / "data"
    for name, label in (("minc1_1_scale.mnc", "minc-1"), ("minc2_1_scale.mnc", "minc-2")):
        if (nibdata / name).exists():
            out.append(Seed(name, "minc", (nibdata / name).read_bytes(), label=label))
    return out


def seeds() -> list[Seed]:
    """Every seed of the campaign (built in memory: a few hundred KB)."""
    out = [_dicom_seed(label, name) for label, name in DICOM_FILES.items()]
    out.append(_implicit_image_seed())
    out.extend(_photo_seeds())
    out.extend(_slide_seeds())
    out.extend(_volume_seeds())
    out.extend(_mgh_seeds())
    out.extend(_nrrd_seeds())
    out.extend(_ecat_seeds())
    out.extend(_parrec_seeds())
    out.extend(_twix_seeds())
    return out


def _twix_seeds() -> list[Seed]:
    """A VB twix file (tests/twix_sample.py: made from the format's description) naming the
    fuzz patient in its header buffers."""
    import twix_sample as ts

    planted = {**ts.PLANTED, "name": PATIENT_NAME, "id": PATIENT_ID}
    data = ts.header(ts.buffers(planted), least=16384) + ts.data(False)
    return [Seed("twix.dat", "twix", data, label="twix vb")]


def group(seed: Seed) -> str:
    """The campaign's group of a seed (its figures are given by group): dicom, photo, slide, volume."""
    if seed.label.startswith("slide") or seed.label == "dicom slide":
        return "slide"
    if seed.family == "dicom":
        return "dicom"
    if seed.family in ("jpeg", "png", "tiff"):
        return "photo"
    return "volume"


# ---- structure -------------------------------------------------------------------------------------

#: values that length, count, size and offset fields are set to (32-bit: 0xFFFFFFFF is -1, 0x80000000
#: the most negative)
EXTREMES32 = (0, 1, 2, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFE, 0xFFFFFFFF)
EXTREMES16 = (0, 1, 2, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)


@dataclass(frozen=True)
class Field:
    """A length, count, size or offset field of a format's structure: where it is and how wide."""

    offset: int
    size: int  # 2, 4 or 8 bytes
    what: str  # "length", "count", "offset", "size", "value"


@dataclass
class Layout:
    """What a mutation knows of a file: where its parts begin (elements, segments, chunks, IFDs)
    and its numeric fields."""

    boundaries: list[int] = field(default_factory=list)
    fields: list[Field] = field(default_factory=list)
    little: bool = True


def _u16(data: bytes, at: int, little: bool) -> int:
    return int.from_bytes(data[at:at + 2], "little" if little else "big")


def _u32(data: bytes, at: int, little: bool) -> int:
    return int.from_bytes(data[at:at + 4], "little" if little else "big")


#: explicit VRs whose length field is 4 bytes after 2 reserved ones
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
#: DICOM attributes whose values declare sizes: (group, element)
DICOM_SIZES = {(0x0028, 0x0010): "Rows", (0x0028, 0x0011): "Columns", (0x0028, 0x0100): "BitsAllocated",
               (0x0028, 0x0101): "BitsStored", (0x0028, 0x0002): "SamplesPerPixel",
               (0x0028, 0x0006): "PlanarConfiguration", (0x0028, 0x0103): "PixelRepresentation",
               (0x0048, 0x0006): "TotalPixelMatrixColumns", (0x0048, 0x0007): "TotalPixelMatrixRows"}


def dicom_layout(data: bytes, start: int = 132, explicit: bool = True, little: bool = True) -> Layout:
    """The elements of a DICOM data set from ``start``, sequences and items stepped into (their
    contents are elements too), the file meta read as explicit little endian and the rest as its
    transfer syntax says; stops where the structure stops making sense."""
    lay = Layout(little=little)
    pos = start
    meta_end = None
    if start == 132 and data[128:132] == b"DICM" and data[132:134] == b"\x02\x00":
        explicit_ds, little_ds = explicit, little
        ts = _meta_transfer_syntax(data)
        if ts == "1.2.840.10008.1.2":
            explicit_ds = False
        elif ts == "1.2.840.10008.1.2.2":
            little_ds = False
        group_len = int.from_bytes(data[140:144], "little") if data[132:136] == b"\x02\x00\x00\x00" else 0
        meta_end = 144 + group_len if group_len else None
    else:
        explicit_ds, little_ds = explicit, little
    while pos + 8 <= len(data):
        in_meta = meta_end is not None and pos < meta_end
        ex, le = (True, True) if in_meta else (explicit_ds, little_ds)
        lay.little = le
        group, elem = _u16(data, pos, le), _u16(data, pos + 2, le)
        lay.boundaries.append(pos)
        if group == 0xFFFE:  # item, item or sequence delimiter: 8 bytes, stepped into
            lay.fields.append(Field(pos + 4, 4, "length"))
            length = _u32(data, pos + 4, le)
            pos += 8
            if elem == 0xE000 and length != 0xFFFFFFFF and not _looks_like_element(data, pos, ex, le):
                pos += length  # a fragment of encapsulated pixel data
            continue
        vr = data[pos + 4:pos + 6]
        if ex and vr.isalpha() and vr.isupper():
            if vr in _LONG_VRS:
                lay.fields.append(Field(pos + 8, 4, "length"))
                length, header = _u32(data, pos + 8, le), 12
            else:
                lay.fields.append(Field(pos + 6, 2, "length"))
                length, header = _u16(data, pos + 6, le), 8
        else:
            lay.fields.append(Field(pos + 4, 4, "length"))
            length, header, vr = _u32(data, pos + 4, le), 8, b""
        value = pos + header
        if (group, elem) in DICOM_SIZES and length in (2, 4):
            lay.fields.append(Field(value, length, "size"))
        if vr == b"SQ" or length == 0xFFFFFFFF:
            pos = value  # step into the sequence (or encapsulated pixel data)
            continue
        if value + length > len(data):
            break
        pos = value + length
    lay.boundaries.append(len(data))
    return lay


def _looks_like_element(data: bytes, pos: int, explicit: bool, little: bool) -> bool:
    if pos + 8 > len(data):
        return False
    group = _u16(data, pos, little)
    return explicit and data[pos + 4:pos + 6].isalpha() and group in (0x0008, 0x0010, 0x0018, 0x0020, 0x0028,
                                                                         0x0040, 0x0070, 0xFFFE) or \
        (not explicit and group in (0x0008, 0x0010, 0x0018, 0x0020, 0x0028, 0x0040))


def _meta_transfer_syntax(data: bytes) -> str:
    at = data.find(b"\x02\x00\x10\x00UI", 132, 132 + 1024)
    if at < 0:
        return ""
    n = int.from_bytes(data[at + 6:at + 8], "little")
    return data[at + 8:at + 8 + n].rstrip(b"\x00 ").decode("ascii", "replace")


def dicom_body_offset(data: bytes) -> int:
    """Where a Part 10 file's data set begins (after its file meta group)."""
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        return 132
    return 144 + int.from_bytes(data[140:144], "little")


def jpeg_layout(data: bytes) -> Layout:
    """The marker segments of a JPEG: each segment's start, its length field, and the sizes of
    its frame header (height, width, components) and the entropy-coded data after SOS."""
    lay = Layout(little=False)
    pos = 2 if data[:2] == b"\xff\xd8" else 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        lay.boundaries.append(pos)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:
            break
        lay.fields.append(Field(pos + 2, 2, "length"))
        length = _u16(data, pos + 2, False)
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB) and pos + 10 <= len(data):
            lay.fields += [Field(pos + 5, 2, "size"), Field(pos + 7, 2, "size"), Field(pos + 9, 1, "count")]
        end = pos + 2 + length
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not RSTn or stuffing
            end2 = end
            while end2 + 1 < len(data):
                if data[end2] == 0xFF and data[end2 + 1] not in (0x00,) and not 0xD0 <= data[end2 + 1] <= 0xD7:
                    break
                end2 += 1
            lay.boundaries.append(end)
            end = end2
        pos = end
    lay.boundaries.append(min(pos, len(data)))
    return lay


def png_layout(data: bytes) -> Layout:
    """The chunks of a PNG: each chunk's start, its length field, and IHDR's width and height."""
    lay = Layout(little=False)
    pos = 8
    while pos + 12 <= len(data):
        lay.boundaries.append(pos)
        lay.fields.append(Field(pos, 4, "length"))
        length = _u32(data, pos, False)
        if data[pos + 4:pos + 8] == b"IHDR":
            lay.fields += [Field(pos + 8, 4, "size"), Field(pos + 12, 4, "size")]
        pos += 12 + length
    lay.boundaries.append(min(pos, len(data)))
    return lay


def png_fix_crcs(data: bytes) -> bytes:
    """The PNG with every chunk's CRC recomputed (so that a reader looks past the CRC)."""
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = _u32(out, pos, False)
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(out[pos + 4:end]))
        pos = end + 4
    return bytes(out)


#: TIFF types' sizes (1 BYTE .. 18 IFD8)
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
TIFF_SIZES = {256: "ImageWidth", 257: "ImageLength", 322: "TileWidth", 323: "TileLength", 277: "SamplesPerPixel",
              258: "BitsPerSample", 273: "StripOffsets", 279: "StripByteCounts", 324: "TileOffsets",
              325: "TileByteCounts", 278: "RowsPerStrip", 330: "SubIFDs", 34665: "ExifIFD"}


def tiff_layout(data: bytes, base: int = 0) -> Layout:
    """The IFDs of a (classic or Big) TIFF from ``base`` (an EXIF block's TIFF header): their entry
    counts, each entry's count and value-or-offset, the next-IFD offsets; the offsets and sizes of
    strips and tiles are fields too. Follows the IFD chain once (a loop stops it)."""
    lay = Layout()
    order = data[base:base + 2]
    if order not in (b"II", b"MM"):
        return lay
    le = order == b"II"
    lay.little = le
    big = _u16(data, base + 2, le) == 43
    lay.fields.append(Field(base + (8 if big else 4), 8 if big else 4, "offset"))
    ifd = int.from_bytes(data[base + 8:base + 16], "little" if le else "big") if big else _u32(data, base + 4, le)
    seen: set[int] = set()
    while ifd and base + ifd + 2 <= len(data) and ifd not in seen and len(seen) < 64:
        seen.add(ifd)
        at = base + ifd
        lay.boundaries.append(at)
        nsize, esize, csize = (8, 20, 8) if big else (2, 12, 4)
        lay.fields.append(Field(at, nsize, "count"))
        n = int.from_bytes(data[at:at + nsize], "little" if le else "big")
        at += nsize
        for i in range(min(n, 4096)):
            e = at + i * esize
            if e + esize > len(data):
                break
            tag, typ = _u16(data, e, le), _u16(data, e + 2, le)
            lay.fields.append(Field(e + 4, csize, "count"))
            lay.fields.append(Field(e + 4 + csize, csize, "offset" if tag not in (256, 257, 322, 323) else "size"))
            count = int.from_bytes(data[e + 4:e + 4 + csize], "little" if le else "big")
            width = _TIFF_SIZES.get(typ, 1) * count
            if tag in (273, 279, 324, 325, 330) and width > csize:
                where = base + int.from_bytes(data[e + 4 + csize:e + 4 + 2 * csize], "little" if le else "big")
                step = _TIFF_SIZES.get(typ, 4)
                for j in range(min(count, 16)):
                    if where + (j + 1) * step <= len(data) and step in (2, 4, 8):
                        lay.fields.append(Field(where + j * step, step, "offset" if tag in (273, 324, 330) else "size"))
        nxt = at + n * esize
        if nxt + csize > len(data):
            break
        lay.fields.append(Field(nxt, csize, "offset"))
        lay.boundaries.append(nxt)
        ifd = int.from_bytes(data[nxt:nxt + csize], "little" if le else "big")
    lay.boundaries.append(len(data))
    return lay


def nifti_layout(data: bytes) -> Layout:
    """The fields of a NIfTI-1, NIfTI-2 or Analyze header that declare sizes and offsets: the
    header size, ``dim``, ``datatype``, ``bitpix``, ``vox_offset``, and the extension's size."""
    lay = Layout()
    le = int.from_bytes(data[:4], "little") in (348, 540)
    lay.little = le
    two = int.from_bytes(data[:4], "little" if le else "big") == 540
    lay.fields.append(Field(0, 4, "size"))
    if two:
        lay.fields += [Field(16 + 8 * i, 8, "size") for i in range(8)]
        lay.fields += [Field(12, 2, "value"), Field(14, 2, "value"), Field(168, 8, "offset")]
        ext = 540
    else:
        lay.fields += [Field(40 + 2 * i, 2, "size") for i in range(8)]
        lay.fields += [Field(70, 2, "value"), Field(72, 2, "value"), Field(108, 4, "offset")]
        ext = 348
    lay.boundaries += [0, 40, ext]
    if len(data) >= ext + 4 and data[ext] == 1 and len(data) >= ext + 12:
        lay.fields += [Field(ext + 4, 4, "length"), Field(ext + 8, 4, "value")]
        lay.boundaries.append(ext + 4)
    lay.boundaries.append(len(data))
    return lay


# ---- mutations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A seed changed by one mutation: the bytes to write under the seed's name (and its
    companions'), and what was done, to reproduce it by hand."""

    seed: Seed
    data: bytes
    op: str
    note: str
    companions: tuple[tuple[str, bytes], ...] = ()


def layout_of(family: str, data: bytes) -> Layout:
    try:
        if family == "dicom":
            return dicom_layout(data)
        if family == "jpeg":
            return jpeg_layout(data)
        if family == "png":
            return png_layout(data)
        if family == "tiff":
            return tiff_layout(data)
        if family in ("nifti", "analyze") and len(data) >= 348:
            return nifti_layout(data)
    except (IndexError, ValueError, struct.error):
        pass
    return Layout(boundaries=[0, len(data)])


def _put(data: bytes, f: Field, value: int, little: bool) -> bytes:
    value &= (1 << (8 * f.size)) - 1
    raw = value.to_bytes(f.size, "little" if little else "big")
    return data[:f.offset] + raw + data[f.offset + f.size:]


def _extreme(rng: random.Random, f: Field, data: bytes, little: bool) -> int:
    """An extreme value for a field: 0, 1, the widest, negative, just past the file's end, or
    the current value plus or minus one."""
    current = int.from_bytes(data[f.offset:f.offset + f.size], "little" if little else "big")
    choices = [0, 1, current + 1, current - 1, len(data), len(data) + 1, current * 2, current * 1000]
    if f.size == 1:
        choices += [0x7F, 0x80, 0xFF]
    elif f.size == 2:
        choices += list(EXTREMES16)
    else:
        choices += list(EXTREMES32)
        if f.size == 8:
            choices += [1 << 40, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
    return rng.choice(choices)


def m_truncate(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Cut at a structural boundary (or just after one, inside its header), else anywhere."""
    if lay.boundaries and rng.random() < 0.8:
        cut = rng.choice(lay.boundaries) + rng.choice((0, 0, 1, 2, 4, 6, 8, 12))
    else:
        cut = rng.randrange(len(data) + 1)
    cut = min(cut, max(len(data) - 1, 0))
    return data[:cut], f"cut at {cut} of {len(data)}"


def m_bitflip(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    out = bytearray(data)
    n = rng.choice((1, 1, 2, 4, 8, 32))
    at = []
    for _ in range(n):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
        at.append(i)
    return bytes(out), f"{n} bit flips at {sorted(at)[:8]}"


def m_field(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Set a length, count, size or offset field to an extreme."""
    if not lay.fields:
        return m_bitflip(data, lay, rng)
    f = rng.choice(lay.fields)
    value = _extreme(rng, f, data, lay.little)
    return _put(data, f, value, lay.little), f"{f.what} field at {f.offset} ({f.size} bytes) set to {value:#x}"


def m_fields(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Several fields at once (a declared size and the lengths that would betray it)."""
    notes = []
    for _ in range(rng.randrange(2, 6)):
        data, note = m_field(data, lay, rng)
        notes.append(note)
    return data, "; ".join(notes)


def m_splice(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Delete, duplicate or swap the parts between structural boundaries."""
    b = sorted({x for x in lay.boundaries if 0 <= x <= len(data)})
    if len(b) < 3:
        return m_bitflip(data, lay, rng)
    i = rng.randrange(len(b) - 1)
    lo, hi = b[i], b[i + 1]
    how = rng.choice(("delete", "duplicate", "repeat", "swap"))
    if how == "delete":
        return data[:lo] + data[hi:], f"part {lo}:{hi} deleted"
    if how == "duplicate":
        return data[:hi] + data[lo:hi] + data[hi:], f"part {lo}:{hi} duplicated"
    if how == "repeat":
        n = rng.choice((100, 1000, 5000))
        part = data[lo:hi][:64]
        return data[:hi] + part * n + data[hi:], f"{len(part)} bytes at {lo} repeated {n} times"
    if i + 2 >= len(b):
        return data[:lo] + data[hi:], f"part {lo}:{hi} deleted"
    mid = b[i + 2]
    return data[:lo] + data[hi:mid] + data[lo:hi] + data[mid:], f"parts {lo}:{hi} and {hi}:{mid} swapped"


def m_junk(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    n = rng.choice((1, 7, 64, 4096))
    junk = random.Random(rng.getrandbits(32)).randbytes(n)  # one draw of hypothesis's, not n
    at = rng.choice(lay.boundaries) if lay.boundaries else len(data)
    return data[:at] + junk + data[at:], f"{n} random bytes inserted at {at}"


GENERIC: dict[str, Callable[[bytes, Layout, random.Random], tuple[bytes, str]]] = {
    "truncate": m_truncate, "bitflip": m_bitflip, "field": m_field, "fields": m_fields,
    "splice": m_splice, "junk": m_junk,
}


def _explicit_le(data: bytes) -> bool:
    return _meta_transfer_syntax(data) not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2")


def _deflated(data: bytes) -> bool:
    return _meta_transfer_syntax(data) in ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")


def nested_sequence(depth: int, explicit: bool = True, closed: bool = True) -> bytes:
    """A private sequence nested ``depth`` deep, undefined lengths throughout (explicit or
    implicit little endian); ``closed``: with all its delimiters."""
    creator = b"\x09\x00\x10\x00LO\x06\x00FUZZ  " if explicit else b"\x09\x00\x10\x00\x06\x00\x00\x00FUZZ  "
    head = b"\x09\x00\x01\x10SQ\x00\x00\xff\xff\xff\xff" if explicit else b"\x09\x00\x01\x10\xff\xff\xff\xff"
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    end = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    body = (head + item) * depth
    return creator + body + (end * depth if closed else b"")


def _insert_before(data: bytes, tag_group: int, blob: bytes, little: bool = True) -> tuple[bytes, int]:
    """``blob`` inserted before the first top-level element of group >= ``tag_group`` (after the
    file meta), or at the end."""
    lay = dicom_layout(data)
    body = dicom_body_offset(data)
    for pos in lay.boundaries:
        if pos >= body and pos + 2 <= len(data) and _u16(data, pos, little) >= tag_group and \
                _u16(data, pos, little) != 0xFFFE:
            return data[:pos] + blob + data[pos:], pos
    return data + blob, len(data)


def m_dicom_nesting(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    depth = rng.choice((50, 500, 3000, 10000, 40000))
    closed = rng.random() < 0.7
    out, at = _insert_before(data, 0x0009, nested_sequence(depth, _explicit_le(data), closed))
    return out, f"private sequence nested {depth} deep ({'closed' if closed else 'unclosed'}) at {at}"


def m_dicom_vr(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """An element's explicit VR replaced (SQ, UN, OB, a VR that does not exist)."""
    spots = [p for p in lay.boundaries if p + 6 <= len(data) and data[p + 4:p + 6].isalpha()
             and data[p + 4:p + 6].isupper()]
    if not spots:
        return m_bitflip(data, lay, rng)
    p = rng.choice(spots)
    vr = rng.choice((b"SQ", b"UN", b"OB", b"UT", b"US", b"XX", b"\x00\x00"))
    return data[:p + 4] + vr + data[p + 6:], f"VR at {p} set to {vr!r}"


def m_dicom_frames(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Number of Frames (and maybe Rows and Columns) declaring a huge image."""
    frames = rng.choice((b"0 ", b"1 ", b"-1", b"1000", b"65535 ", b"2147483647", b"99999999999 "))
    explicit = _explicit_le(data)
    if len(frames) % 2:
        frames += b" "
    if explicit:
        blob = b"\x28\x00\x08\x00IS" + len(frames).to_bytes(2, "little") + frames
    else:
        blob = b"\x28\x00\x08\x00" + len(frames).to_bytes(4, "little") + frames
    # drop an existing Number of Frames first (the insert is before Rows)
    out, at = _insert_before(data, 0x0028, blob) if b"\x28\x00\x08\x00" not in data else (data, -1)
    if at < 0:
        p = data.find(b"\x28\x00\x08\x00")
        out = data[:p] + blob + data[p + (8 + _u16(data, p + 6, True) if explicit else 8 + _u32(data, p + 4, True)):]
    note = f"Number of Frames {frames!r}"
    if rng.random() < 0.6:
        out2 = bytearray(out)
        for tag in (b"\x28\x00\x10\x00", b"\x28\x00\x11\x00"):
            p = out.find(tag + b"US\x02\x00" if explicit else tag + b"\x02\x00\x00\x00")
            if p >= 0:
                out2[p + 8:p + 10] = b"\xff\xff"
        out, note = bytes(out2), note + ", Rows and Columns 65535"
    return out, note


def _deflate_chunks(parts: list[tuple[bytes, int]], wbits: int = -15) -> bytes:
    """Raw deflate (or zlib/gzip by ``wbits``) of parts, each (bytes, repeat) fed in chunks."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    out = []
    for chunk, repeat in parts:
        for _ in range(repeat):
            out.append(comp.compress(chunk))
    out.append(comp.flush())
    return b"".join(out)


_CACHE: dict[str, bytes] = {}
ZEROS = b"\x00" * (1 << 20)
#: megabytes of zeros in every bomb
BOMB_MB = 256


def deflated_dicom_bomb(data: bytes) -> bytes:
    """A deflated DICOM (``data`` is one) whose data set holds a private OB element of
    :data:`BOMB_MB` MB of zeros: a few hundred KB on disk."""
    key = "dicom-bomb"
    if key not in _CACHE:
        body_at = dicom_body_offset(data)
        body = zlib.decompress(data[body_at:], -15)
        blob = b"\x09\x00\x10\x00LO\x06\x00FUZZ  " + b"\x09\x00\x01\x10OB\x00\x00" + \
            (BOMB_MB << 20).to_bytes(4, "little")
        _CACHE[key] = data[:body_at] + _deflate_chunks([(blob, 1), (ZEROS, BOMB_MB), (body, 1)])
    return _CACHE[key]


def m_dicom_bomb(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    if not _deflated(data):
        return m_dicom_frames(data, lay, rng)
    return deflated_dicom_bomb(data), f"deflated data set with a private OB element of {BOMB_MB} MB of zeros"


def m_dicom_inflated(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """A deflated DICOM's data set inflated, mutated as a data set, deflated again."""
    if not _deflated(data):
        return m_field(data, lay, rng)
    at = dicom_body_offset(data)
    try:
        body = zlib.decompress(data[at:], -15)
    except zlib.error:
        return m_bitflip(data, lay, rng)
    inner = dicom_layout(body, start=0)
    op = rng.choice(("truncate", "field", "fields", "splice", "bitflip"))
    body, note = GENERIC[op](body, inner, rng)
    if rng.random() < 0.2:
        body = nested_sequence(rng.choice((500, 5000)), True, True) + body
        note += ", nested sequence in front"
    return data[:at] + _deflate_chunks([(body, 1)]), f"inflated data set: {op}: {note}"


def m_dicom_fragments(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Encapsulated pixel data: the basic offset table's offsets and fragments' lengths set to
    extremes, or fragments multiplied."""
    p = data.rfind(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff")
    if p < 0:
        return m_field(data, lay, rng)
    bot = p + 12
    if data[bot:bot + 4] != b"\xfe\xff\x00\xe0":
        return m_field(data, lay, rng)
    n = _u32(data, bot + 4, True)
    how = rng.choice(("offsets", "many", "huge"))
    if how == "offsets":
        table = b"".join(rng.choice(EXTREMES32).to_bytes(4, "little") for _ in range(rng.choice((1, 2, 1000))))
        out = data[:bot + 4] + len(table).to_bytes(4, "little") + table + data[bot + 8 + n:]
        return out, f"basic offset table of {len(table) // 4} extreme offsets"
    if how == "many":
        frag = b"\xfe\xff\x00\xe0\x02\x00\x00\x00\xff\xd9"
        k = rng.choice((1000, 100000))
        return data[:bot + 8 + n] + frag * k + data[bot + 8 + n:], f"{k} tiny fragments inserted"
    return data[:bot + 8 + n] + b"\xfe\xff\x00\xe0\xf0\xff\xff\xff" + data[bot + 8 + n:], \
        "a fragment declaring 0xFFFFFFF0 bytes"


def m_jpeg_exif(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """The TIFF structure inside the EXIF segment mutated (IFD counts, offsets outside, loops)."""
    p = data.find(b"Exif\x00\x00")
    if p < 0:
        return m_field(data, lay, rng)
    base = p + 6
    inner = tiff_layout(data, base)
    data2, note = (m_tiff_loop if rng.random() < 0.3 else m_field)(data, inner, rng)
    return data2, f"EXIF: {note}"


def m_jpeg_segments(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Many segments: thousands of APP or COM segments before the frame."""
    k = rng.choice((1000, 20000))
    seg = rng.choice((b"\xff\xfe\x00\x04hi", b"\xff\xe1\x00\x02", b"\xff\xed\x00\x08Photo"))
    return data[:2] + seg * k + data[2:], f"{k} segments {seg[:2].hex()} after SOI"


def m_jpeg_dims(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """The frame header declaring 65535 x 65535 (or 0), the entropy data unchanged."""
    sizes = [f for f in lay.fields if f.what == "size"]
    if not sizes:
        return m_field(data, lay, rng)
    v = rng.choice((0, 1, 0xFFFF, 0x8000))
    for f in sizes:
        data = _put(data, f, v, False)
    return data, f"frame header declares {v} x {v}"


def m_png_chunks(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """A PNG structure mutation with the CRCs made right again (so the reader looks further)."""
    op = rng.choice(("field", "fields", "splice", "truncate"))
    out, note = GENERIC[op](data, lay, rng)
    return png_fix_crcs(out), f"{op} (CRCs fixed): {note}"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_idat_bomb() -> bytes:
    """A PNG whose IHDR declares 16384 x 16384 grey and whose IDAT is :data:`BOMB_MB` MB of zeros."""
    if "png-idat" not in _CACHE:
        side = 16384
        row = b"\x00" * (side + 1)
        rows_per_mb = (1 << 20) // len(row)
        comp = _deflate_chunks([(row * rows_per_mb, side // rows_per_mb + 1)], 15)
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        _CACHE["png-idat"] = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", comp) + \
            _png_chunk(b"IEND", b"")
    return _CACHE["png-idat"]


def png_text_bomb() -> bytes:
    """zTXt and iCCP payloads that inflate to :data:`BOMB_MB` MB."""
    if "png-text" not in _CACHE:
        _CACHE["png-text"] = _deflate_chunks([(b"A" * (1 << 20), BOMB_MB)], 15)
    return _CACHE["png-text"]


def m_png_bomb(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    how = rng.choice(("idat", "ztxt", "iccp", "itxt"))
    if how == "idat":
        return png_idat_bomb(), f"IHDR 16384 x 16384, IDAT of {BOMB_MB} MB of zeros"
    comp = png_text_bomb()
    chunk = {"ztxt": _png_chunk(b"zTXt", b"Comment\x00\x00" + comp),
             "iccp": _png_chunk(b"iCCP", b"icc\x00\x00" + comp),
             "itxt": _png_chunk(b"iTXt", b"Comment\x00\x01\x00\x00\x00" + comp)}[how]
    return data[:33] + chunk + data[33:], f"{how} chunk inflating to {BOMB_MB} MB after IHDR"


def m_png_many(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    k = rng.choice((1000, 50000))
    chunk = _png_chunk(rng.choice((b"tEXt", b"zzZz", b"IDAT")), b"k\x00v")
    return data[:33] + chunk * k + data[33:], f"{k} small chunks after IHDR"


def m_tiff_loop(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """A next-IFD (or SubIFD) offset pointing back to an IFD already read, or to itself."""
    offsets = [f for f in lay.fields if f.what == "offset"]
    ifds = [b for b in lay.boundaries[:-1]]
    if not offsets or not ifds:
        return m_field(data, lay, rng)
    f = rng.choice(offsets)
    base = 0 if data[:2] in (b"II", b"MM") else data.find(b"Exif\x00\x00") + 6
    target = rng.choice(ifds) - max(base, 0)
    return _put(data, f, target, lay.little), f"offset at {f.offset} points back to {target}"


def m_tiff_tiles(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """Image size and tile size set so that a page has a million tiles (or none), or 65535^2."""
    sizes = [f for f in lay.fields if f.what == "size"]
    if not sizes:
        return m_field(data, lay, rng)
    big, small = rng.choice(((0xFFFF, 16), (0xFFFFFFFF, 1), (16000, 16), (0, 0), (65535, 65535)))
    le = lay.little
    out = data
    for f in sizes:
        e = f.offset - (8 if f.size == 4 and data[:2] in (b"II", b"MM") and _u16(data, 2, le) == 42 else 12)
        tag = _u16(data, e, le)
        out = _put(out, f, small if tag in (322, 323) else big, le) if f.size in (2, 4, 8) else out
    return out, f"image {big} and tiles {small}"


def m_nifti_dims(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """The header declaring a huge volume (2048 x 2048 x 1024 int16, or dims at their widest)."""
    out = bytearray(data)
    le = lay.little
    two = len(data) >= 4 and int.from_bytes(data[:4], "little" if le else "big") == 540
    dims = rng.choice(((3, 2048, 2048, 1024), (4, 32767, 32767, 32767, 32767), (3, 1, 1, 1),
                       (7, 2, 2, 2, 2, 2, 2, 2), (3, -1, 20, 20), (3, 0, 0, 0)))
    o = "little" if le else "big"
    for i, d in enumerate(dims):
        if two:
            out[16 + 8 * i:24 + 8 * i] = d.to_bytes(8, o, signed=True)
        else:
            out[40 + 2 * i:42 + 2 * i] = d.to_bytes(2, o, signed=True)
    return bytes(out), f"dim set to {dims}"


def nifti_gzip_bomb(data: bytes) -> bytes:
    """A gzipped NIfTI-1 header declaring 2048 x 2048 x 1024 int16 followed by :data:`BOMB_MB` MB
    of zeros (the issue's 8 MB file, smaller)."""
    if "nifti-bomb" not in _CACHE:
        head = bytearray(data[:352])
        for i, d in enumerate((3, 2048, 2048, 1024, 1, 1, 1, 1)):
            head[40 + 2 * i:42 + 2 * i] = d.to_bytes(2, "little", signed=True)
        head[70:74] = struct.pack("<hh", 4, 16)
        _CACHE["nifti-bomb"] = _deflate_chunks([(bytes(head), 1), (ZEROS, BOMB_MB)], 31)
    return _CACHE["nifti-bomb"]


def m_gzip_inner(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """The gzipped volume inflated, mutated as a NIfTI, gzipped again (or the bomb)."""
    try:
        inner = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return m_bitflip(data, lay, rng)
    if rng.random() < 0.15:
        return nifti_gzip_bomb(inner), f"gzip bomb: 2048 x 2048 x 1024 int16 declared, {BOMB_MB} MB of zeros"
    inner_lay = nifti_layout(inner) if len(inner) >= 348 else Layout(boundaries=[0, len(inner)])
    op = rng.choice(("field", "fields", "truncate", "bitflip", "dims"))
    fn = m_nifti_dims if op == "dims" else GENERIC[op]
    out, note = fn(inner, inner_lay, rng)
    return gzip.compress(out, mtime=0), f"inflated volume: {op}: {note}"


def m_gzip_container(data: bytes, lay: Layout, rng: random.Random) -> tuple[bytes, str]:
    """The gzip container itself: flags declaring extra fields of extreme length, the trailer's
    size and CRC wrong, a second member, concatenated garbage."""
    how = rng.choice(("fextra", "trailer", "member", "garbage", "fname"))
    if how == "fextra":
        n = rng.choice((0, 0xFFFF, 10))
        return data[:3] + bytes([data[3] | 4]) + data[4:10] + n.to_bytes(2, "little") + data[10:], \
            f"FEXTRA flag with {n} bytes"
    if how == "fname":
        return data[:3] + bytes([data[3] | 8]) + data[4:], "FNAME flag without a name"
    if how == "trailer":
        return data[:-8] + rng.randbytes(8), "trailer CRC and size random"
    if how == "member":
        return data + gzip.compress(b"\x00" * rng.choice((1, 1 << 20)), mtime=0), "a second gzip member"
    return data + rng.randbytes(rng.choice((1, 100))), "garbage after the member"


def m_analyze_image(seed_companions: tuple[tuple[str, bytes], ...], rng: random.Random) -> tuple[tuple[tuple[str, bytes], ...], str]:
    (name, body), = seed_companions
    how = rng.choice(("short", "long", "empty", "missing"))
    if how == "short":
        return ((name, body[:rng.randrange(len(body))]),), "image file cut short"
    if how == "long":
        return ((name, body + b"\x00" * rng.choice((1, 4096))),), "image file longer than declared"
    if how == "empty":
        return ((name, b""),), "image file empty"
    return (), "image file missing"


#: the mutations of each family: name -> function(data, layout, rng) -> (data, note)
MUTATIONS: dict[str, dict[str, Callable[[bytes, Layout, random.Random], tuple[bytes, str]]]] = {
    "dicom": {**GENERIC, "nesting": m_dicom_nesting, "vr": m_dicom_vr, "frames": m_dicom_frames,
              "bomb": m_dicom_bomb, "inflated": m_dicom_inflated, "fragments": m_dicom_fragments},
    "jpeg": {**GENERIC, "exif": m_jpeg_exif, "segments": m_jpeg_segments, "dims": m_jpeg_dims},
    "png": {**GENERIC, "chunks": m_png_chunks, "bomb": m_png_bomb, "many": m_png_many},
    "tiff": {**GENERIC, "loop": m_tiff_loop, "tiles": m_tiff_tiles},
    "nifti": {**GENERIC, "dims": m_nifti_dims},
    "gzip": {**{k: GENERIC[k] for k in ("truncate", "bitflip", "junk")}, "inner": m_gzip_inner,
             "container": m_gzip_container},
    "analyze": {**GENERIC, "dims": m_nifti_dims, "image": lambda d, lay, rng: (d, "")},
    "minc": {k: GENERIC[k] for k in ("truncate", "bitflip", "splice", "junk")},
    "mgh": {k: GENERIC[k] for k in ("truncate", "bitflip", "splice", "junk")},
    "nrrd": {k: GENERIC[k] for k in ("truncate", "bitflip", "splice", "junk")},
    "ecat": {**GENERIC, "directory": m_ecat_directory},
    "parrec": {**GENERIC, "image": lambda d, lay, rng: (d, "")},
    "twix": dict(GENERIC),
}


def mutate(seed: Seed, op: str, rng: random.Random) -> Case:
    """``seed`` changed by the mutation ``op`` of its family, drawn from ``rng``."""
    if op == "image":
        companions, note = m_analyze_image(seed.companions, rng)
        return Case(seed, seed.data, op, note, companions)
    lay = layout_of(seed.family, seed.data)
    data, note = MUTATIONS[seed.family][op](seed.data, lay, rng)
    return Case(seed, data, op, note, seed.companions)


# ---- one case --------------------------------------------------------------------------------------

#: the limits every case runs under: tight, so that bombs are refused whatever the reader
LIMITS_BYTES = 64 << 20
#: seconds a case may take: the engine's own limit (``--object-timeout``), past which it stops the
#: case and quarantines it ("took longer than N s"): a typed quarantine, as a run would end it
CASE_SECONDS = 20.0
#: seconds past :data:`CASE_SECONDS` in which a case must have ended: one that ends later was not
#: stopped by the engine (code its watchdog cannot interrupt: a C loop, a blocking call), a failure
#: ("hang"); the harness's own alarm interrupts it at twice the grace, to go on with the campaign
GRACE_SECONDS = 5.0
#: resident memory one case may add to what the process held before it (the limit, and copies)
CEILING_BYTES = 4 * LIMITS_BYTES


class CaseTimeout(BaseException):
    """A case ran beyond :data:`CASE_SECONDS` and twice :data:`GRACE_SECONDS` (a BaseException:
    the engine does not swallow it)."""


@dataclass
class Result:
    """How a case ended: ``outcome`` is released, quarantined, skipped or failure; ``kind`` the
    format discovery gave it; ``reason`` the quarantine reason (or the failure); ``where`` the
    innermost frame of medcloak of an untyped exception; ``error`` its type."""

    case: Case
    kind: str
    outcome: str
    reason: str = ""
    error: str = ""
    where: str = ""
    seconds: float = 0.0
    growth: int = 0  # bytes the case's peak resident set reached beyond the resident set before it

    @property
    def failure_class(self) -> str:
        """What groups failures: the reader (format), the exception type and where it came from."""
        return f"{self.kind}: {self.error or self.reason[:60]} at {self.where or '?'}"


def _medcloak_frame(tb: object) -> str:
    """Where in medcloak's code (the packages' folders, wherever the checkout is) an exception
    came from: its innermost frame there."""
    import medcloak
    import medcloak_kernels

    roots = tuple(os.path.dirname(m.__file__) + os.sep for m in (medcloak, medcloak_kernels))
    frames = traceback.extract_tb(tb)  # type: ignore[arg-type]
    ours = [f for f in frames if f.filename.startswith(roots)]
    last = (ours or frames)[-1] if (ours or frames) else None
    if last is None:
        return ""
    name = last.filename.split("/src/")[-1].split("/kernels/")[-1]
    return f"{name}:{last.lineno} ({last.name})"


def _metadata(rel: str, data: bytes) -> bytes:
    """What of a released file can carry text: all of it but a volume's voxels and a DICOM
    file's native pixel data (a mutation may move a planted name into the pixels, where it is
    pixel values like any other, as ``verify`` holds too)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = zlib.decompressobj(31).decompress(data, 64 << 20)
        except zlib.error:
            pass
    if rel.endswith(".img"):
        return b""
    if rel.endswith((".nii", ".nii.gz")) and len(data) >= 352:
        two = int.from_bytes(data[:4], "little") == 540 or int.from_bytes(data[:4], "big") == 540
        le = int.from_bytes(data[:4], "little") in (348, 540)
        if two:
            start = int.from_bytes(data[168:176], "little" if le else "big", signed=True)
        else:
            start = int(struct.unpack("<f" if le else ">f", data[108:112])[0])
        return data[:max(352, min(start, len(data)))]
    if rel.endswith(".dcm"):
        at = data.rfind(b"\xe0\x7f\x10\x00")
        if at > 0 and data[at + 8:at + 12] != b"\xff\xff\xff\xff":
            return data[:at]
    return data


def _scan_planted(data: bytes) -> str | None:
    low = data.upper()
    for token in PLANTED:
        for enc in (token.encode("ascii"), token.encode("utf-16-le")):
            if enc in low:
                return token
    return None


def _status(key: str) -> int:
    """A memory figure of this process from /proc (bytes), 0 where there is none."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    """Reset the peak resident set (Linux: clear_refs 5), so that the next case's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Runner:
    """Runs cases in this process, one after the other, in ``workdir`` (on a real disk)."""

    def __init__(self, workdir: Path, limits_bytes: int = LIMITS_BYTES, case_seconds: float = CASE_SECONDS,
                 keep: Path | None = None, grace: float = GRACE_SECONDS) -> None:
        from medcloak.engine import Job, make_settings
        from medcloak.limits import Limits
        from medcloak.pseudonym import Keyring
        from medcloak.residual import Probe
        from medcloak.rules.profile import load_profile

        self.workdir = workdir
        self.case_seconds = case_seconds
        self.grace = grace
        self.profile = load_profile()
        self.job = Job(self.profile, Keyring(SECRET), str(workdir / "out"), audit="", settings=make_settings({}),
                       limits=Limits(max_object_bytes=limits_bytes, max_ratio=200, timeout=case_seconds))
        self.probes = tuple(p for p in (Probe.of(PATIENT_ID, "PatientID", True),) if p is not None)
        self.rss_start = _status("VmRSS")
        self.n = 0
        self.keep = keep  # where the files of failing cases are kept (to reproduce them)
        logging.getLogger("nibabel").setLevel(logging.CRITICAL)  # its header fixes, on every case


    def run(self, case: Case) -> Result:
        result = self._run(case)
        if result.outcome == "failure" and self.keep is not None:
            folder = self.keep / f"case{self.n:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / case.seed.name).write_bytes(case.data)
            for name, body in case.companions:
                (folder / name).write_bytes(body)
            (folder / "case.txt").write_text(f"{case.seed.label} {case.op}: {case.note}\n{result.failure_class}\n"
                                             f"{result.reason}\n", encoding="utf-8")
        return result

    def _run(self, case: Case) -> Result:
        from medcloak import engine
        from medcloak.durable import PENDING
        from medcloak.handlers import handler_of_output, sniff
        from medcloak.handlers.base import HEAD, VerifyContext
        from medcloak.model import Source, Task

        self.n += 1
        with PENDING._lock:  # the cases' releases are thrown away: nothing to make durable
            PENDING.files.clear()
            PENDING.folders.clear()
        folder = self.workdir / "in"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(self.workdir / "out", ignore_errors=True)
        folder.mkdir(parents=True)
        path = folder / case.seed.name
        path.write_bytes(case.data)
        for name, body in case.companions:
            (folder / name).write_bytes(body)
        try:
            kind = sniff(case.data[:HEAD], path)
        except Exception as exc:  # noqa: BLE001 - discovery guards it (unknown), but the sniff is at fault
            return Result(case, "sniff", "failure", f"sniff raised {type(exc).__name__}", type(exc).__name__,
                          _medcloak_frame(exc.__traceback__))
        caught: list[BaseException] = []
        original = engine._failed

        def failed(source, oid, exc):  # type: ignore[no-untyped-def]
            caught.append(exc)
            return original(source, oid, exc)

        def alarm(signum, frame):  # type: ignore[no-untyped-def]
            raise CaseTimeout()

        engine._failed = failed  # type: ignore[assignment]
        before = _status("VmRSS")
        _reset_peak()
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, self.case_seconds + 2 * self.grace)
        start = time.perf_counter()
        hang = Result(case, kind, "failure", "hang", "CaseTimeout", "")
        try:
            outcomes = engine.process_task(Task(Source(str(path), kind, len(case.data)), f"case{self.n}"), self.job)
        except CaseTimeout:
            hang.seconds = time.perf_counter() - start
            return hang
        except Exception as exc:  # noqa: BLE001 - out of process_task: a failure
            return Result(case, kind, "failure", f"raised {type(exc).__name__}", type(exc).__name__,
                          _medcloak_frame(exc.__traceback__), time.perf_counter() - start)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            engine._failed = original  # type: ignore[assignment]
        seconds = time.perf_counter() - start
        if seconds > self.case_seconds + self.grace:  # ended, but not by the engine's time limit in time
            hang.seconds = seconds
            return hang
        rss = max(_status("VmHWM") - before, 0)
        (outcome,) = outcomes
        if rss > CEILING_BYTES:
            return Result(case, kind, "failure", f"memory: {rss >> 20} MB beyond the resident set before it",
                          "Memory", "", seconds, rss)
        if outcome.status in ("quarantined", "skipped"):
            exc = caught[0] if caught else None
            if outcome.reason.startswith("internal error") or exc is not None and not _typed(exc):
                return Result(case, kind, "failure", outcome.reason, type(exc).__name__ if exc else "",
                              _medcloak_frame(exc.__traceback__) if exc else "", seconds, rss)
            return Result(case, kind, outcome.status, outcome.reason,
                          type(exc).__name__ if exc is not None else "", "", seconds, rss)
        # released: verify passes on every file, and no planted identifier is in it
        context = VerifyContext(self.profile, frozenset(), self.probes)
        problems = []
        for rel in outcome.outputs:
            out = Path(self.job.out) / rel
            handler = handler_of_output(rel)
            if handler is None:
                problems.append(f"{rel}: no handler owns it")
                continue
            try:
                findings = [f for f in handler.verify(out, rel, context) if f.level == "error"]
            except Exception as exc:  # noqa: BLE001 - verify itself must not fail
                problems.append(f"verify raised {type(exc).__name__} at {_medcloak_frame(exc.__traceback__)}")
                continue
            problems += [f"verify: {f.message}" for f in findings]
            token = _scan_planted(_metadata(rel, out.read_bytes()))
            if token is not None:
                problems.append(f"planted identifier {token} released")
        if problems:
            return Result(case, kind, "failure", "; ".join(problems)[:300], "Released", "", seconds, rss)
        return Result(case, kind, "released", "", "", "", seconds, rss)


def _typed(exc: BaseException) -> bool:
    from medcloak.errors import MedcloakError

    return isinstance(exc, (MedcloakError, RecursionError))


def reason_type(result: Result) -> str:
    """The type a quarantine reason comes from (the exception's class, or the engine's
    "nesting too deep")."""
    return result.error or "?"
