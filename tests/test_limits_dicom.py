"""What a DICOM object may cost: declared sizes against the run's limits, element lengths against
the file, and a deflated data set inflated in bounded chunks (issue 15). Every hostile object is
quarantined with a reason that names the limit or the fault; real clean objects of every transfer
syntax are released as they are without limits."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import pydicom_test_files
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from medcloak import limits
from medcloak.engine import run
from medcloak.errors import CorruptInputError, LimitError, MedcloakError
from medcloak.formats.dicom import deidentify_dicom
from medcloak.formats.dicom_check import check_inflation, check_structure
from medcloak.formats.dicom_elements import INFLATE_CHUNK, Fault, inflate
from medcloak.formats.dicom_pixels import check_decoded, check_pixel_data
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

PROFILE = load_profile()
PIXELS = load_profile(options=["clean-pixel-data"])
KEYRING = Keyring(b"limits-dicom-secret-0123456789")
SC = "1.2.840.10008.5.1.4.1.1.7"
NO_LIMITS = limits.Limits(max_object_bytes=0, max_ratio=0)
#: the expansion ratio without its floor (1 GB): small bombs show the mechanism cheaply
STRICT = limits.Limits(ratio_floor=0)
#: zeros that inflate beyond the ratio's floor: the issue's bomb, refused under the defaults
BEYOND_FLOOR = limits.RATIO_FLOOR + (64 << 20)


def _dataset(rows: int = 16, cols: int = 16, frames: int = 1, bits: int = 8) -> Dataset:
    """A small secondary capture declared free of burned-in text, with a private OB and a sequence."""
    ds = Dataset()
    ds.SOPClassUID = SC
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID, ds.BurnedInAnnotation = "OT", "Doe^John", "12345", "NO"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "123", "DCM", "thing"
    ds.ProcedureCodeSequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "ACME 1.0")
    ds.add_new(0x00091011, "OB", b"\x00" * 400)
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(0)
    dtype = np.uint8 if bits == 8 else np.uint16
    ds.PixelData = rng.integers(0, 1 << min(bits, 12), rows * cols * frames, dtype=dtype).tobytes()
    return ds


def _meta(ds: Dataset, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ts
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    return meta


def _save(ds: Dataset, ts: str) -> bytes:
    ds.file_meta = _meta(ds, ts)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _head(meta: FileMetaDataset) -> bytes:
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + buf.getvalue()


def _deflated_zeros(n: int) -> bytes:
    """Raw deflate blocks (none final, ending byte-aligned) of ``n`` zero bytes, made at once: a
    MiB of zeros deflated on its own and repeated, each copy standing alone (a full flush: no
    copy refers to what comes before it), so that a bomb of gigabytes costs nothing to make."""
    def alone(size: int) -> bytes:
        deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return deflater.compress(bytes(size)) + deflater.flush(zlib.Z_FULL_FLUSH)

    rest = n % (1 << 20)
    return alone(1 << 20) * (n >> 20) + (alone(rest) if rest else b"")


def _deflated(ds: Dataset, zeros: int = 0, patch: tuple[bytes, bytes] | None = None, hidden: bool = False,
              items: int = 0, unknown: bool = False) -> bytes:
    """``ds`` in the Deflated Explicit VR Little Endian transfer syntax, with a private OB of
    ``zeros`` zero bytes before its Pixel Data (deflated in pieces: never held inflated), inside
    an item of a private sequence of undefined length when ``hidden``, or spread over ``items``
    items of that sequence (of VR UN, implicit VR inside, when ``unknown``), and ``patch`` (old,
    new) applied to the data set's bytes before they are deflated."""
    pixels = ds.PixelData
    del ds.PixelData
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    inner = body.getvalue()
    if patch is not None:
        assert inner.count(patch[0]) == 1
        inner = inner.replace(*patch)
    out = io.BytesIO()
    out.write(_head(_meta(ds, DeflatedExplicitVRLittleEndian)))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out.write(deflater.compress(inner))
    if zeros and items:
        out.write(deflater.compress(struct.pack("<HH2sH", 0x7FD1, 0x0010, b"LO", 8) + b"ACME 1.0"))
        out.write(deflater.compress(struct.pack("<HH2sHI", 0x7FD1, 0x1001, b"UN" if unknown else b"SQ", 0, 0xFFFFFFFF)))
        each = zeros // items
        element = (lambda: struct.pack("<HHI", 0x7FD1, 0x1000, each)) if unknown else (
            lambda: struct.pack("<HH2sHI", 0x7FD1, 0x1000, b"OB", 0, each))
        for _ in range(items):
            head = element()
            out.write(deflater.compress(struct.pack("<HHI", 0xFFFE, 0xE000, each + len(head)) + head + bytes(each)))
        out.write(deflater.compress(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)))
    elif zeros:
        out.write(deflater.compress(struct.pack("<HH2sH", 0x7FD1, 0x0010, b"LO", 8) + b"ACME 1.0"))
        if hidden:
            out.write(deflater.compress(struct.pack("<HH2sHI", 0x7FD1, 0x1001, b"SQ", 0, 0xFFFFFFFF)
                                        + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)))
        out.write(deflater.compress(struct.pack("<HH2sHI", 0x7FD1, 0x1000, b"OB", 0, zeros)))
        out.write(deflater.flush(zlib.Z_FULL_FLUSH))  # what follows the zeros refers to nothing before them
        out.write(_deflated_zeros(zeros))
        if hidden:
            out.write(deflater.compress(struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)))
    out.write(deflater.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, len(pixels)) + pixels))
    out.write(deflater.flush())
    if out.tell() % 2:
        out.write(b"\x00")
    return out.getvalue()


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    return Path(str(path))


def _outcome(path: Path) -> MedcloakError | bytes:
    try:
        return deidentify_dicom(path, PROFILE, KEYRING).data
    except MedcloakError as exc:
        return exc


def _write(tmp_path: Path, data: bytes, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _run(tmp_path: Path, files: dict[str, bytes], secret_file: Path) -> dict[str, dict]:
    (tmp_path / "in").mkdir()
    for name, data in files.items():
        (tmp_path / "in" / name).write_bytes(data)
    run([tmp_path / "in"], tmp_path / "out", secret_file=secret_file)
    rows = [json.loads(line) for line in (tmp_path / "out.audit" / "manifest.jsonl").read_text().splitlines()]
    return {Path(row["input"]).name: row for row in rows}


# ---- a deflated data set is inflated in bounded chunks, up to the run's limit --------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """The issue's case: a private OB of zeros inflating beyond the ratio's floor, from about 1 MB."""
    return _deflated(_dataset(), zeros=BEYOND_FLOOR)


@pytest.fixture(scope="module")
def hidden_bomb() -> bytes:
    """The same, inside an item of a private sequence of undefined length."""
    return _deflated(_dataset(), zeros=BEYOND_FLOOR, hidden=True)


def test_deflate_bomb_is_quarantined_naming_the_expansion_limit(tmp_path, secret_file, bomb):
    """A private OB of zeros that inflates 1:1000 and more, refused at its header, where it
    declares its length: by the ratio alone (a floor of 0) at 40 MB, and by the defaults, in a
    run too, beyond the ratio's floor of 1 GB."""
    data = _deflated(_dataset(), zeros=40 << 20)
    assert len(data) < 100 << 10
    path = _write(tmp_path, data)
    with limits.applied(STRICT), pytest.raises(LimitError) as info:
        deidentify_dicom(path, PROFILE, KEYRING)
    assert str(info.value).startswith("(7FD1,1000) of the deflated data set: 40.0 MB declared from ")
    assert str(info.value).endswith("compressed, an expansion beyond 1:200 (--max-expansion)")
    with pytest.raises(LimitError, match=r"^\(7FD1,1000\) of the deflated data set: .*beyond the per-object limit"), \
            limits.applied(limits.Limits(max_object_bytes=1 << 20, max_ratio=0)):
        check_structure(data)
    # refused before pydicom (which inflates it whole) is given it, when discovery reads headers too
    with limits.applied(STRICT), pytest.raises(LimitError, match=r"--max-expansion"):
        check_inflation(path)
    # raised by the user, the limit lets it through (and the object is read as it is); so does
    # the floor: 40 MB costs no more than an ordinary object
    with limits.applied(limits.Limits(max_ratio=5000, ratio_floor=0)):
        check_structure(data)
    check_structure(data)
    # beyond the floor, the defaults refuse it
    assert len(bomb) < 2 << 20
    big = _write(tmp_path, bomb, "big.dcm")
    with pytest.raises(LimitError) as info:
        deidentify_dicom(big, PROFILE, KEYRING)
    assert str(info.value).startswith("(7FD1,1000) of the deflated data set: 1.1 GB declared from ")
    assert str(info.value).endswith("compressed, an expansion beyond 1:200 (--max-expansion)")
    with pytest.raises(LimitError, match=r"--max-expansion"):
        check_inflation(big)
    rows = _run(tmp_path, {"bomb.dcm": bomb}, secret_file)
    assert rows["bomb.dcm"]["status"] == "quarantined"
    assert "(--max-expansion)" in rows["bomb.dcm"]["reason"]


def test_deflate_bomb_inside_a_sequence_is_refused_at_its_header(hidden_bomb):
    data = _deflated(_dataset(), zeros=40 << 20, hidden=True)
    with limits.applied(STRICT), \
            pytest.raises(LimitError, match=r"^\(7FD1,1000\) of the deflated data set: 40.0 MB declared from .* "
                                            r"\(--max-expansion\)$"):
        check_structure(data)
    with limits.applied(limits.Limits(max_ratio=5000, ratio_floor=0)):
        check_structure(data)
    with pytest.raises(LimitError, match=r"^\(7FD1,1000\) of the deflated data set: 1.1 GB declared from .* "
                                         r"\(--max-expansion\)$"):
        check_structure(hidden_bomb)


def test_deflate_bomb_of_many_small_values_is_refused_as_it_inflates(tmp_path):
    """Where the headers cannot be followed (a thousand items of 40 KB of zeros in a UN sequence,
    implicit VR inside), the running count refuses it once it has inflated beyond the limit."""
    data = _deflated(_dataset(), zeros=40 << 20, items=1000, unknown=True)
    with limits.applied(STRICT), pytest.raises(LimitError) as info:
        deidentify_dicom(_write(tmp_path, data), PROFILE, KEYRING)
    assert str(info.value).startswith("the deflated data set: inflates beyond 1:200 of its ")
    assert str(info.value).endswith(" (--max-expansion)")
    with pytest.raises(LimitError, match=r"^the deflated data set: inflates beyond the per-object limit of 1.0 MB"), \
            limits.applied(limits.Limits(max_object_bytes=1 << 20, max_ratio=0)):
        check_structure(data)
    with limits.applied(limits.Limits(max_ratio=5000, ratio_floor=0)):
        check_structure(data)
    # in a sequence, a defined-length item that declares too much is refused at its header, and
    # as many items of that many zeros before the count reaches the limit
    with limits.applied(STRICT), pytest.raises(LimitError, match=r"^an item of the deflated data set: .* declared"):
        check_structure(_deflated(_dataset(), zeros=40 << 20, items=1000))
    one = _deflated(_dataset(), zeros=40 << 20, items=1)
    with limits.applied(STRICT), pytest.raises(LimitError, match=r"^an item of the deflated data set: 40.0 MB declared"):
        check_structure(one)


def test_declared_lengths_are_followed_across_chunks():
    """A header cut by the end of an inflated chunk is read whole from the next one."""
    for before in range(13):
        first = INFLATE_CHUNK - 12 - before  # the second header starts ``before`` bytes before the chunk's end
        body = struct.pack("<HH2sHI", 0x0009, 0x1011, b"OB", 0, first) + bytes(first)
        body += struct.pack("<HH2sHI", 0x0009, 0x1012, b"OB", 0, 1 << 30) + bytes(4096)
        deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        data = deflater.compress(body) + deflater.flush()
        with pytest.raises(Fault) as info:
            inflate(data, 0, limit=10 << 20, keep=False)
        assert (info.value.kind, info.value.tag, info.value.at) == ("deflate declared", 0x00091012,
                                                                    len(body) - 4096 + (1 << 30))
        assert inflate(data, 0) == body  # without a limit, the headers are not read


def test_deflated_data_set_within_the_limits_is_released_as_without_limits(tmp_path):
    data = _deflated(_dataset(64, 64), zeros=1 << 16)  # a few KB of zeros among real pixels: 1:20
    path = _write(tmp_path, data)
    released = deidentify_dicom(path, PROFILE, KEYRING).data
    with limits.applied(NO_LIMITS):
        assert deidentify_dicom(path, PROFILE, KEYRING).data == released
    assert pydicom.dcmread(io.BytesIO(released)).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian


@pytest.mark.parametrize("size", [0, 1, 1000, INFLATE_CHUNK - 1, INFLATE_CHUNK, INFLATE_CHUNK + 1, 3 * INFLATE_CHUNK + 7])
@pytest.mark.parametrize("kind", ["zeros", "random"])
def test_inflate_in_chunks_gives_what_zlib_gives(size, kind):
    raw = bytes(size) if kind == "zeros" else np.random.default_rng(size).bytes(size)
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = b"HEAD" + deflater.compress(raw) + deflater.flush() + b"\x00"  # a pad byte after the stream
    assert inflate(data, 4) == raw
    assert inflate(data, 4, limit=size) == raw  # exactly at the limit: no refusal
    assert inflate(data, 4, limit=size, keep=False) == b""
    if size > 1:  # a limit of 0 is none
        with pytest.raises(Fault) as info:
            inflate(data, 4, limit=size - 1)
        assert info.value.kind == "deflate limit"
    cut = data[: 4 + max(1, (len(data) - 5) // 2)]
    if len(data) > 7:
        with pytest.raises(Fault) as info:
            inflate(cut, 4)
        assert info.value.kind in ("deflate cut", "deflate")


def test_deflated_data_set_cut_or_broken_is_still_corrupt(tmp_path):
    data = _deflated(_dataset())
    head = len(_head(_meta(_dataset(), DeflatedExplicitVRLittleEndian)))
    with pytest.raises(CorruptInputError, match="^truncated: the deflated data set is cut"):
        check_structure(data[: head + (len(data) - head) // 2])
    broken = data[:head] + b"\xff" * 64 + data[head + 64:]
    with pytest.raises(CorruptInputError, match="^malformed: the deflated data set does not inflate"):
        check_structure(broken)


# ---- an element whose length runs past the end of the file ------------------------------------


def _patched(data: bytes, header: bytes, length: bytes) -> bytes:
    """``data`` with the bytes after the one ``header`` replaced by ``length``."""
    assert data.count(header) == 1, header
    at = data.index(header) + len(header)
    return data[:at] + length + data[at + len(length):]


BAD = 0xFFFFFFF0
CASES = {
    # (transfer syntax, header before the length): a private OB, the sequence, its item, Pixel Data
    "explicit-private-ob": (ExplicitVRLittleEndian, b"\x09\x00\x11\x10OB\x00\x00"),
    "explicit-sequence": (ExplicitVRLittleEndian, b"\x08\x00\x32\x10SQ\x00\x00"),
    "explicit-item": (ExplicitVRLittleEndian, b"\xfe\xff\x00\xe0"),
    "explicit-pixel-data": (ExplicitVRLittleEndian, b"\xe0\x7f\x10\x00OB\x00\x00"),
    "implicit-private-ob": (ImplicitVRLittleEndian, b"\x09\x00\x11\x10"),
    "implicit-patient-name": (ImplicitVRLittleEndian, b"\x10\x00\x10\x00"),
    "big-endian-private-ob": (ExplicitVRBigEndian, b"\x00\x09\x10\x11OB\x00\x00"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_element_length_past_the_end_of_a_2_kb_file_is_quarantined(case, tmp_path):
    ts, header = CASES[case]
    data = _save(_dataset(), ts)
    assert len(data) < 2048
    bad = _patched(data, header, struct.pack(">I" if ts == ExplicitVRBigEndian else "<I", BAD))
    assert _outcome(_write(tmp_path, data, "ok.dcm")) is not None
    outcome = _outcome(_write(tmp_path, bad))
    assert isinstance(outcome, CorruptInputError), outcome
    assert str(outcome).startswith(("truncated: ", "malformed: ")), str(outcome)


def test_element_length_past_the_end_inside_a_deflated_data_set_is_quarantined(tmp_path):
    ds = _dataset()
    outcome = _outcome(_write(tmp_path, _deflated(ds, patch=(b"\x09\x00\x11\x10OB\x00\x00\x90\x01\x00\x00",
                                                              b"\x09\x00\x11\x10OB\x00\x00\xf0\xff\xff\xff"))))
    # refused at its header, as it inflates: the length is a declared size like any other
    assert isinstance(outcome, LimitError)
    assert str(outcome) == ("(0009,1011) of the deflated data set: 4.0 GB declared, beyond the per-object limit of "
                            "4.0 GB (--max-object-size)")
    with limits.applied(NO_LIMITS):  # and without limits, the walk finds it runs past the end
        outcome = _outcome(tmp_path / "x.dcm")
    assert isinstance(outcome, CorruptInputError)
    assert str(outcome) == "truncated: (0009,1011) runs past the end of the file"


def test_fragment_length_past_the_end_is_quarantined(tmp_path):
    data = (pydicom_test_files() / "SC_rgb_jpeg_dcmtk.dcm").read_bytes()
    start = data.index(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff") + 12
    offsets = struct.unpack_from("<I", data, start + 4)[0]  # the Basic Offset Table's length
    fragment = start + 8 + offsets  # the first fragment's item
    assert data[fragment : fragment + 4] == b"\xfe\xff\x00\xe0"
    bad = data[: fragment + 4] + struct.pack("<I", BAD) + data[fragment + 8:]
    outcome = _outcome(_write(tmp_path, bad))
    assert isinstance(outcome, CorruptInputError)
    assert str(outcome) == "truncated: PixelData runs past the end of the file"


def test_element_length_past_the_end_is_quarantined_by_a_run(tmp_path, secret_file):
    data = _save(_dataset(), ExplicitVRLittleEndian)
    bad = _patched(data, b"\x09\x00\x11\x10OB\x00\x00", struct.pack("<I", BAD))
    rows = _run(tmp_path, {"bad.dcm": bad, "ok.dcm": data}, secret_file)
    assert rows["ok.dcm"]["status"] == "ok"
    assert rows["bad.dcm"]["status"] == "quarantined"
    assert rows["bad.dcm"]["reason"] == "truncated: (0009,1011) runs past the end of the file"
    assert not any(p.name == "bad.dcm" for p in (tmp_path / "out").rglob("*"))


# ---- declared sizes against the ceiling, before anything is decoded -----------------------------


def _declaring(tmp_path: Path, ts: str = ExplicitVRLittleEndian, **attrs: int) -> Path:
    ds = _dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return _write(tmp_path, _save(ds, ts))


def test_native_pixel_data_declaring_65535_by_65535_by_1000_frames_is_refused(tmp_path):
    path = _declaring(tmp_path, Rows=65535, Columns=65535, NumberOfFrames=1000)
    outcome = _outcome(path)
    assert isinstance(outcome, LimitError)
    assert str(outcome) == ("Pixel Data: 3999.9 GB declared, beyond the per-object limit of 4.0 GB "
                            "(--max-object-size)")
    # without a ceiling, the element's own length refuses it (the file holds 256 bytes)
    with limits.applied(NO_LIMITS):
        outcome = _outcome(path)
    assert isinstance(outcome, CorruptInputError)
    assert str(outcome) == "Pixel Data is shorter than its attributes imply (truncated)"


def test_native_pixel_data_beyond_a_lowered_ceiling_is_refused(tmp_path):
    path = pydicom_test_files() / "CT_small.dcm"  # 128 x 128 x 16 bits: 32 KB
    assert isinstance(_outcome(path), bytes)
    with limits.applied(limits.Limits(max_object_bytes=16 << 10)):
        outcome = _outcome(path)
    assert isinstance(outcome, LimitError)
    assert str(outcome) == "Pixel Data: 32.0 KB declared, beyond the per-object limit of 16.0 KB (--max-object-size)"


@pytest.mark.parametrize("tag,vr,size,what", [(0x7FE00008, "OF", 4, "Float Pixel Data"),
                                              (0x7FE00009, "OD", 8, "Double Float Pixel Data")])
def test_float_pixel_data_declaring_more_than_it_holds_is_refused(tag, vr, size, what):
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 4, 1
    ds.add_new(tag, vr, b"\x00" * 16 * size)
    check_pixel_data(ds, ExplicitVRLittleEndian)  # what it declares, it holds
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 1000
    with pytest.raises(LimitError, match=rf"^{what}: .* \(--max-object-size\)$"):
        check_pixel_data(ds, ExplicitVRLittleEndian)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 8, 1
    with pytest.raises(LimitError, match=rf"^{what}: .* declared, but the file holds only {16 * size} bytes$"):
        check_pixel_data(ds, ExplicitVRLittleEndian)


def _encapsulated(tmp_path: Path, name: str, rows: int, columns: int) -> Path:
    """A real encapsulated file (explicit VR) whose Rows and Columns are changed in its bytes."""
    data = (pydicom_test_files() / name).read_bytes()
    data = _patched(data, b"\x28\x00\x10\x00US\x02\x00", struct.pack("<H", rows))
    data = _patched(data, b"\x28\x00\x11\x00US\x02\x00", struct.pack("<H", columns))
    return _write(tmp_path, data, name)


def test_encapsulated_frame_declaring_more_than_the_ceiling_is_refused_before_decoding(tmp_path):
    path = _encapsulated(tmp_path, "SC_rgb_jpeg_dcmtk.dcm", 65535, 65535)
    outcome = _outcome(path)
    assert isinstance(outcome, LimitError)
    assert str(outcome) == ("a decoded frame of Pixel Data: 12.0 GB declared, beyond the per-object limit of "
                            "4.0 GB (--max-object-size)")


def test_frames_decoded_together_are_checked_against_the_ceiling(tmp_path):
    """Redaction decodes every frame at once, the text scan one at a time: a multi-frame object
    under a ceiling between one frame and all of them is scanned frame by frame, and refused
    where its frames would be held together."""
    ds = pydicom.dcmread(pydicom_test_files() / "SC_rgb_rle_2frame.dcm")  # 100 x 100 RGB, 2 frames
    with limits.applied(limits.Limits(max_object_bytes=40000)):
        check_decoded(ds, frames=1)
        with pytest.raises(LimitError, match=r"^decoded Pixel Data: 58.6 KB declared, beyond the per-object limit"):
            check_decoded(ds)
    path = _encapsulated(tmp_path, "SC_rgb_rle_2frame.dcm", 60000, 60000)
    with pytest.raises(LimitError, match=r"^a decoded frame of Pixel Data: .*--max-object-size"):
        deidentify_dicom(path, PIXELS, KEYRING)


def test_text_scan_refuses_a_frame_beyond_the_ceiling_before_decoding_it(tmp_path):
    path = _testdata("US1_J2KR.dcm")  # an ultrasound: its frames are scanned for text
    with limits.applied(limits.Limits(max_object_bytes=100 << 10)), \
            pytest.raises(LimitError, match=r"^a decoded frame of Pixel Data: .*--max-object-size"):
        deidentify_dicom(path, PIXELS, KEYRING)


def _nested(depth: int, implicit: bool) -> bytes:
    """Content Sequences of undefined length, each with one item holding the next, ``depth`` deep."""
    if implicit:
        sequence, leaf = struct.pack("<HHI", 0x0040, 0xA730, 0xFFFFFFFF), struct.pack("<HHI", 0x0008, 0x0100, 2)
    else:
        sequence = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
        leaf = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 2)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return (sequence + item) * depth + leaf + b"1 " + close * depth


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_sequences_nested_thousands_deep_are_quarantined(ts, tmp_path):
    data = _save(_dataset(), ts)
    at = data.index(b"\xe0\x7f\x10\x00")  # before Pixel Data
    assert isinstance(_outcome(_write(tmp_path, data[:at] + _nested(20, ts == ImplicitVRLittleEndian) + data[at:])), bytes)
    outcome = _outcome(_write(tmp_path, data[:at] + _nested(5000, ts == ImplicitVRLittleEndian) + data[at:]))
    assert isinstance(outcome, CorruptInputError)
    assert str(outcome) == "malformed: sequences nested too deep"


# ---- real clean objects are released as without limits ----------------------------------------

CLEAN = [
    "CT_small.dcm",  # explicit VR little endian
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "rtplan.dcm",  # no pixels, sequences
    "SC_rgb_rle_2frame.dcm",  # RLE, 2 frames
    "JPEG2000.dcm",  # a blank JPEG 2000 image: 1:1971 of its pixels
    "emri_small_jpeg_2k_lossless.dcm",  # 10 frames
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG-LL.dcm",
    "image_dfl.dcm",  # deflated
]


@pytest.mark.parametrize("name", CLEAN)
def test_real_clean_files_are_released_as_without_limits(name, tmp_path):
    ds = pydicom.dcmread(_testdata(name))
    if "PixelData" in ds and "BurnedInAnnotation" not in ds:
        ds.BurnedInAnnotation = "NO"  # so that their release does not hang on burned-in text
    buf = io.BytesIO()
    ds.save_as(buf)
    path = _write(tmp_path, buf.getvalue(), name)
    with limits.applied(NO_LIMITS):
        expected = _outcome(path)
    assert isinstance(expected, bytes), expected
    assert _outcome(path) == expected


@pytest.mark.parametrize("name", ["rtplan.dcm", "CT_small.dcm", "MR_small.dcm"])
def test_real_files_deflated_are_released_as_without_limits(name, tmp_path):
    """Sequences, items and pixels followed header by header as they inflate, within the limits."""
    ds = pydicom.dcmread(pydicom_test_files() / name)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=False, little_endian=True)
    path = _write(tmp_path, buf.getvalue(), name)
    with limits.applied(NO_LIMITS):
        expected = _outcome(path)
    assert isinstance(expected, bytes), expected
    assert _outcome(path) == expected
    assert pydicom.dcmread(io.BytesIO(expected)).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian


def test_large_multi_frame_objects_are_released_as_without_limits(tmp_path):
    data = _save(_dataset(512, 512, frames=40, bits=16), ExplicitVRLittleEndian)  # 20 MB of pixels
    path = _write(tmp_path, data)
    with limits.applied(NO_LIMITS):
        expected = _outcome(path)
    assert isinstance(expected, bytes)
    assert _outcome(path) == expected
    deflated = _deflated(_dataset(256, 256, frames=40, bits=16), zeros=1 << 20)  # 5 MB inflated, 1:1.3
    path = _write(tmp_path, deflated, "deflated.dcm")
    with limits.applied(NO_LIMITS):
        expected = _outcome(path)
    assert isinstance(expected, bytes)
    assert _outcome(path) == expected


def test_discovery_does_not_give_a_deflate_bomb_to_pydicom(tmp_path, monkeypatch, hidden_bomb):
    """Grouping the slices of a series (or the instances of a slide) reads headers with pydicom,
    which inflates a deflated data set whole: a bomb is not given to it (its task refuses it)."""
    from medcloak.handlers import dicom as handler
    from medcloak.model import Source

    bomb = _write(tmp_path, hidden_bomb, "bomb.dcm")
    fine = _write(tmp_path, _deflated(_dataset()), "fine.dcm")
    read: list[str] = []
    dcmread = pydicom.dcmread
    monkeypatch.setattr(pydicom, "dcmread", lambda path, **kw: read.append(Path(path).name) or dcmread(path, **kw))
    for key in (handler._series_key, handler._slide_key):
        assert key(Source(str(bomb), "dicom")) is None
        key(Source(str(fine), "dicom"))
    assert read == ["fine.dcm", "fine.dcm"]
