"""The one-pass reader makes exactly what ``pydicom.dcmread`` makes, and fails closed as the check does.

Every test compares whole trees (:func:`differences`): every attribute of every data set, sequence
and element, every raw element's fields and their types, the File Meta, the encodings. On pydicom's
test files (and pydicom-data's, and ours) the reader must agree with ``dcmread``, and a release
made from either read must be the same bytes; on synthetic files (nested sequences and items of
defined and undefined length, implicit and explicit VR, items in the other encoding, character
sets) it must agree and be used; on files cut anywhere it must never accept what the structural
check refuses.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medcloak.errors import CorruptInputError, MedcloakError
from medcloak.formats import dicom
from medcloak.formats.dicom import deidentify_dicom, read
from medcloak.formats.dicom_check import structure_fault
from medcloak.formats.dicom_read import _dataset_maker, read_fast
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

PROFILE = load_profile()
HERE = Path(__file__).parent


def differences(a: Any, b: Any, where: str = "ds") -> str | None:
    """Where two trees of pydicom objects differ (``None`` when they do not): types, every
    attribute (``vars``), dict keys in order, raw element fields and their types, sequence items."""
    from pydicom.dataelem import DataElement, RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    if type(a) is not type(b):
        return f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, (Dataset, DataElement)):
        return differences(vars(a), vars(b), where)
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            if (found := differences(a[k], b[k], f"{where}.{k}")) is not None:
                return found
        return None
    if isinstance(a, RawDataElement):
        for name, x, y in zip(a._fields, a, b):
            if type(x) is not type(y) or x != y:
                return f"{where}.{name}: {x!r:.80} != {y!r:.80}"
        return None
    if isinstance(a, Sequence):  # its items are in its vars (never compared with ==, which decodes)
        return differences(vars(a), vars(b), where)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if (found := differences(x, y, f"{where}[{i}]")) is not None:
                return found
        return None
    if isinstance(a, io.BytesIO):  # the inflated data set of a deflated file
        return None if a.getvalue() == b.getvalue() else f"{where}: other bytes"
    if callable(a):
        owner = getattr(a, "__self__", None)
        if owner is not None and not isinstance(owner, type(io)):  # a bound method of a buffer
            return None if a.__name__ == b.__name__ and type(owner) is type(b.__self__) else f"{where}: {a!r}"
        return None if a is b else f"{where}: {a!r} is not {b!r}"
    if not isinstance(a, (str, bytes, int, float, type(None))):
        if not hasattr(a, "__dict__"):
            return f"{where}: {type(a).__name__} is not compared"
        return differences(vars(a), vars(b), where)  # a MultiValue, a PersonName...
    if a != b:
        return f"{where}: {a!r:.80} != {b!r:.80}"
    return None


def both(path: Path) -> tuple[Any, Any]:
    """(the one-pass read or ``None``, ``dcmread``) of ``path``, pydicom's warnings silenced."""
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as fh:
            fast = read_fast(data, fh)
        with open(path, "rb") as fh:
            slow = pydicom.dcmread(fh)
    return fast, slow


def _files() -> list[Path]:
    paths = {Path(p) for p in pydicom.data.get_testdata_files()}  # pydicom-data's too, where installed
    paths |= set((HERE / "data").rglob("*"))
    return sorted(p for p in paths if p.is_file() and p.suffix not in (".txt", ".md", ".json", ".dump", ".gz", ".icc"))


FILES = _files()


def _readable(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmread(path)
    except Exception:  # noqa: BLE001 - not a file dcmread reads without force
        return False
    return True


# ---- real files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_same_data_set_as_dcmread(path):
    if not _readable(path):
        pytest.skip("dcmread does not read it without force")
    fast, slow = both(path)
    if fast is not None:
        assert differences(fast, slow) is None, differences(fast, slow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mine = read(path)
        except MedcloakError:
            assert structure_fault(path.read_bytes()) is not None  # refused only by the check
            return
    assert differences(mine, slow) is None, differences(mine, slow)


def test_the_common_files_take_the_fast_path():
    """The reader is used: not a silent fallback to ``dcmread`` for everything."""
    fast = {p.name for p in FILES if _readable(p) and both(p)[0] is not None}
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "waveform_ecg.dcm", "SC_rgb.dcm", "emri_small_RLE.dcm",
                 "MR_small_RLE.dcm", "liver.dcm", "test-SR.dcm", "reportsi.dcm", "693_J2KI.dcm", "examples_overlay.dcm"):
        if any(p.name == name for p in FILES):
            assert name in fast
    assert len(fast) >= 150


@pytest.mark.parametrize(
    "name", ["MR_small_bigendian.dcm", "image_dfl.dcm", "UN_sequence.dcm", "SC_rgb_jpeg.dcm", "no_meta.dcm",
             "meta_missing_tsyntax.dcm"]
)
def test_unusual_files_are_left_to_dcmread(name):
    path = pydicom.data.get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    with open(path, "rb") as fh:
        assert read_fast(Path(path).read_bytes(), fh) is None


@pytest.mark.parametrize("path", [p for p in FILES if p.stat().st_size < 2_000_000], ids=lambda p: p.name)
def test_same_release_with_either_reader(path):
    if not _readable(path):
        pytest.skip("dcmread does not read it without force")
    fast, slow = both(path)
    if fast is None:
        pytest.skip("not read by the one-pass reader")
    outcomes = []
    for ds in (fast, slow):
        # a fresh profile and keyring each: a profile used before may release an object otherwise
        # (seen on bad_sequence.dcm, whatever the reader)
        profile, keyring = load_profile(), Keyring(b"read-fast-secret-0123456789")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                released = deidentify_dicom(path, profile, keyring, dataset=ds)
            except MedcloakError as exc:
                outcomes.append((type(exc).__name__, str(exc)))
                continue
        outcomes.append((released.data, released.relpath, released.counts, released.uid_pairs, released.rank))
    assert outcomes[0] == outcomes[1]


def test_large_files_are_mapped_and_read_alike(monkeypatch):
    monkeypatch.setattr(dicom, "MAP_ABOVE", 0)
    for name in ("CT_small.dcm", "waveform_ecg.dcm", "MR_small_bigendian.dcm"):
        path = Path(pydicom.data.get_testdata_file(name))
        assert differences(read(path), both(path)[1]) is None


# ---- synthetic files ----------------------------------------------------------------------------

LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
IMPLICIT_TS, EXPLICIT_TS = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
UNDEFINED = 0xFFFFFFFF
#: (tag, VR) of the elements a synthetic data set draws from: text, numbers, bytes, standard and
#: private sequences, and a private element of a creator
PLAIN = [(0x00080016, "UI"), (0x00080018, "UI"), (0x00080060, "CS"), (0x00100010, "PN"), (0x00100020, "LO"),
         (0x00181030, "LO"), (0x00280010, "US"), (0x00280011, "US"), (0x00200032, "DS"), (0x00091000, "LO"),
         (0x00091001, "OB"), (0x00181310, "US")]
SEQUENCES = [(0x00081110, "SQ"), (0x00081115, "SQ"), (0x00082112, "SQ"), (0x00400275, "SQ"), (0x00091010, "SQ")]


def _pad(value: bytes, vr: str) -> bytes:
    return value + (b"\x00" if vr in ("UI", "OB") else b" ") if len(value) % 2 else value


def _element(tag: int, vr: str, body: bytes, implicit: bool, length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    if implicit:
        head = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length)
    elif vr in LONG:
        head = struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    else:
        head = struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)
    return head + body


def encode_dataset(ds: list, implicit: bool) -> bytes:
    """``ds``: sorted (tag, VR, value) where a sequence's value is (undefined, items), an item is
    (undefined, implicit, data set), and encapsulated Pixel Data's value a list of fragments."""
    out = b""
    for tag, vr, value in ds:
        if vr == "OB" and isinstance(value, list):  # encapsulated: fragments of undefined length
            body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f for f in value)
            out += _element(tag, vr, body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), implicit, UNDEFINED)
        elif vr == "SQ":
            undefined, items = value
            body = b"".join(_item(item, implicit) for item in items)
            if undefined:
                out += _element(tag, vr, body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), implicit, UNDEFINED)
            else:
                out += _element(tag, vr, body, implicit)
        else:
            out += _element(tag, vr, _pad(value, vr), implicit)
    return out


def _item(item: tuple, implicit: bool) -> bytes:
    undefined, item_implicit, ds = item
    body = encode_dataset(ds, implicit or item_implicit)
    if undefined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + body + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def part10(body: bytes, syntax: str) -> bytes:
    elems = b"".join(
        _element(tag, vr, _pad(value, vr), False)
        for tag, vr, value in [(0x00020001, "OB", b"\x00\x01"), (0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.7"),
                               (0x00020003, "UI", b"1.2.3.4"), (0x00020010, "UI", syntax.encode()),
                               (0x00020012, "UI", b"1.2.3.5")]
    )
    group = _element(0x00020000, "UL", struct.pack("<I", len(elems)), False)
    return b"\x00" * 128 + b"DICM" + group + elems + body


_text = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ^.", max_size=12).map(str.encode)


def _value(vr: str) -> st.SearchStrategy[bytes]:
    if vr == "US":
        return st.integers(0, 0xFFFF).map(lambda v: struct.pack("<H", v))
    if vr == "OB":
        return st.binary(max_size=9)
    if vr == "DS":
        return st.sampled_from([b"", b"1.5\\2", b"-0.25"])
    return _text


@st.composite
def datasets(draw: Any, depth: int = 0) -> list:
    chosen = draw(st.lists(st.sampled_from(PLAIN + (SEQUENCES if depth < 3 else [])), max_size=6, unique=True))
    if draw(st.booleans()):
        chosen.append((0x00080005, "CS"))
    if depth < 2 and draw(st.booleans()):  # encapsulated Pixel Data, also in items (an icon image)
        chosen.append((0x7FE00010, "OB"))
    out = []
    for tag, vr in sorted(chosen):
        if tag == 0x00080005:
            out.append((tag, vr, draw(st.sampled_from([b"ISO_IR 100", b"ISO_IR 192", b"", b"\\ISO 2022 IR 87"]))))
        elif tag == 0x7FE00010:
            out.append((tag, vr, draw(st.lists(st.binary(max_size=6).map(lambda b: b + b"\x00" * (len(b) % 2)),
                                               max_size=3))))
        elif vr == "SQ":
            items = draw(st.lists(st.tuples(st.booleans(), st.booleans(), datasets(depth + 1)), max_size=3))
            out.append((tag, vr, (draw(st.booleans()), items)))
        else:
            out.append((tag, vr, draw(_value(vr))))
    return out


def _synthetic(tmp_path: Path, ds: list, implicit: bool, name: str = "s.dcm") -> Path:
    body = encode_dataset(sorted(ds) or [(0x00100020, "LO", b"X")], implicit)
    path = tmp_path / name
    path.write_bytes(part10(body, IMPLICIT_TS if implicit else EXPLICIT_TS))
    return path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ds=datasets(), implicit=st.booleans())
def test_synthetic_nested_sequences_read_as_dcmread(tmp_path, ds, implicit):
    path = _synthetic(tmp_path, ds, implicit)
    fast, slow = both(path)
    assert fast is not None, "a well-formed file was left to dcmread"
    assert differences(fast, slow) is None, differences(fast, slow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert differences(read(path), slow) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ds=datasets(), implicit=st.booleans(), cut=st.floats(0, 1, exclude_max=True))
def test_a_cut_file_is_never_accepted_where_the_check_refuses_it(tmp_path, ds, implicit, cut):
    whole = _synthetic(tmp_path, ds, implicit).read_bytes()
    data = whole[: 132 + int((len(whole) - 132) * cut)]
    path = tmp_path / "cut.dcm"
    path.write_bytes(data)
    fault = structure_fault(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as fh:
            fast = read_fast(data, fh)
        if fault is not None:
            assert fast is None
            with pytest.raises(CorruptInputError) as info:
                read(path)
            assert str(info.value) == fault
            return
        with open(path, "rb") as fh:
            slow = pydicom.dcmread(fh)
        if fast is not None:
            assert differences(fast, slow) is None
        assert differences(read(path), slow) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ds=datasets(), implicit=st.booleans(), at=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255),
       near_length=st.booleans())
def test_a_corrupted_file_is_read_as_dcmread_or_left_to_it(tmp_path, ds, implicit, at, byte, near_length):
    """One byte changed anywhere in the data set (or in a length, where faults are likeliest: an
    element past its item, an item past its sequence, a non-item): what the reader accepts, the
    check accepts too, and dcmread reads the same."""
    data = bytearray(_synthetic(tmp_path, ds, implicit).read_bytes())
    start = 132 + 12 + struct.unpack_from("<I", data, 140)[0]  # the data set, after the File Meta
    if start >= len(data):
        return
    pos = start + int((len(data) - start) * at)
    if near_length:  # the low byte of the nearest length field: at 4 (implicit, item) or 6 (explicit)
        pos = min(pos - (pos - start) % 2 + (4 if implicit else 6), len(data) - 1)
    data[pos] = byte
    path = tmp_path / "corrupt.dcm"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as fh:
            fast = read_fast(bytes(data), fh)
        if fast is None:
            return
        assert structure_fault(bytes(data)) is None
        with open(path, "rb") as fh:
            slow = pydicom.dcmread(fh)
    assert differences(fast, slow) is None, differences(fast, slow)


def test_undefined_length_flags_of_items_and_sequences_are_kept(tmp_path):
    """A sequence of undefined length with an item of each kind, and one of defined length: each
    flag as dcmread has it (a reader that lost one fails here, and so does the release)."""
    inner = [(0x00081150, "UI", b"1.2.3"), (0x00081155, "UI", b"1.2.3.4")]
    ds = [(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.7"), (0x00080018, "UI", b"1.2.3.9"),
          (0x00081110, "SQ", (True, [(True, False, inner), (False, False, inner)])),
          (0x00081115, "SQ", (False, [(True, False, inner)])),
          (0x00082112, "SQ", (True, [(False, True, inner), (True, True, [])]))]
    path = _synthetic(tmp_path, ds, implicit=False)
    fast, slow = both(path)
    assert fast is not None
    seq = fast[0x00081110]
    assert seq.is_undefined_length and seq.value.is_undefined_length
    assert [item.is_undefined_length_sequence_item for item in seq.value] == [True, False]
    assert [item.original_encoding[0] for item in fast[0x00082112].value] == [True, True]  # implicit items
    assert fast.get_item(0x00081115).value[:4] == b"\xfe\xff\x00\xe0"  # defined length: raw, as dcmread
    assert differences(fast, slow) is None
    keyring = Keyring(b"read-fast-secret-0123456789")
    written = []
    for which in (fast, slow):
        try:
            written.append(deidentify_dicom(path, PROFILE, keyring, dataset=which).data)
        except MedcloakError as exc:
            written.append(str(exc))
    assert written[0] == written[1]
    fast[0x00081110].value[0].is_undefined_length_sequence_item = False
    assert differences(fast, slow) is not None  # the comparison sees a lost flag


def _raw_file(tmp_path: Path, sequence_body: bytes, undefined: bool = True) -> Path:
    """An explicit VR file whose Referenced Study Sequence holds ``sequence_body`` as it is."""
    body = _element(0x00080018, "UI", b"1.2.3.9\x00", False)
    if undefined:
        body += _element(0x00081110, "SQ", sequence_body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), False, UNDEFINED)
    else:
        body += _element(0x00081110, "SQ", sequence_body, False)
    body += _element(0x00100020, "LO", b"PID1", False)
    path = tmp_path / "raw.dcm"
    path.write_bytes(part10(body, EXPLICIT_TS))
    return path


INNER = _element(0x00081150, "UI", b"1.2.3\x00", False)
DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)


@pytest.mark.parametrize("sequence_body", [
    # a defined-length item with an item delimiter before its end: pydicom reads on from the delimiter
    struct.pack("<HHI", 0xFFFE, 0xE000, len(INNER) * 2 + 8) + INNER + DELIMITER + INNER,
    # an item delimiter with a length
    struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + INNER + struct.pack("<HHI", 0xFFFE, 0xE00D, 4),
    # a sequence delimiter inside an item, where an element is expected
    struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + INNER + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0) + DELIMITER,
], ids=["delimiter-inside-defined-item", "delimiter-with-length", "sequence-delimiter-in-item"])
def test_odd_delimiters_are_left_to_dcmread(tmp_path, sequence_body):
    path = _raw_file(tmp_path, sequence_body)
    with open(path, "rb") as fh:
        assert read_fast(path.read_bytes(), fh) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            slow = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - dcmread gives up: so does read
            with pytest.raises(CorruptInputError):
                read(path)
            return
        assert differences(read(path), slow) is None


@pytest.mark.parametrize("sequence_body,undefined,fault", [
    (INNER, True, "malformed: sequence ReferencedStudySequence holds a non-item"),
    (struct.pack("<HHI", 0xFFFE, 0xE000, len(INNER) - 2) + INNER, True,
     "malformed: ReferencedSOPClassUID (in ReferencedStudySequence) runs past the end of its item"),
    (struct.pack("<HHI", 0xFFFE, 0xE000, len(INNER) + 2) + INNER, False,
     "malformed: an item of ReferencedStudySequence runs past the end of its sequence"),
], ids=["non-item", "past-item", "item-past-sequence"])
def test_broken_nesting_is_refused_with_the_check_message(tmp_path, sequence_body, undefined, fault):
    path = _raw_file(tmp_path, sequence_body, undefined)
    with open(path, "rb") as fh:
        assert read_fast(path.read_bytes(), fh) is None
    with pytest.raises(CorruptInputError) as info:
        read(path)
    assert str(info.value) == fault


def test_character_set_of_a_data_set_is_inherited_by_its_items(tmp_path):
    item = [(0x00100010, "PN", "Buc^Jérôme".encode("latin-1"))]
    ds = [(0x00080005, "CS", b"ISO_IR 100"), (0x00081110, "SQ", (True, [(True, False, item)]))]
    fast, slow = both(_synthetic(tmp_path, ds, implicit=True))
    assert fast is not None and differences(fast, slow) is None
    assert fast[0x00081110].value[0].PatientName == "Buc^Jérôme"
    assert fast.read_encoding == ["latin_1"]


def test_dataset_maker_matches_the_constructor():
    from pydicom.dataset import Dataset

    make = _dataset_maker(Dataset)
    a = make({}, ["iso8859"], True, True, ["latin_1"])
    b = Dataset({}, parent_encoding=["iso8859"])
    b.set_original_encoding(True, True, ["latin_1"])
    assert differences(a, b) is None
    a.private_block(0x0009, "X", create=True)  # containers are the data set's own
    assert differences(make({}, ["iso8859"], True, True, ["latin_1"]), b) is None
