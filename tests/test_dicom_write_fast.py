"""The fast data-set writer (``formats/dicom_write.py``) against pydicom's own ``write_dataset``,
byte for byte: on every object of pydicom's test files (and pydicom-data's, when installed) as
medcloak releases it, as read and fully decoded, in each encoding; and on random data sets (nested
sequences of defined and undefined length, text in several character sets, names, UIDs, numbers,
tags, bytes, empty values), built fresh or written, read back raw and changed. A deliberately
wrong encoding (an item length off by two) must make the comparison fail."""

from __future__ import annotations

import copy
import io
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from conftest import SECRET, pydicom_test_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from medcloak.errors import MedcloakError
from medcloak.formats import dicom, dicom_write
from medcloak.formats.dicom_write import write_dataset_fast
from medcloak.pseudonym import Keyring
from medcloak.rules.profile import load_profile

#: (implicit VR, little endian): the encodings a data set is written in
ENCODINGS = [(True, True), (False, True), (False, False)]
ENCODING_IDS = ["implicit", "explicit", "big-endian"]


def _corpus() -> list[Path]:
    """pydicom's test files, with pydicom-data's when installed (``get_testdata_files`` lists them)."""
    found = {Path(p) for p in get_testdata_files()} | set(pydicom_test_files().rglob("*"))
    return sorted(p for p in found if p.is_file())


CORPUS = _corpus()


def _name(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path.name


def _write(fn, ds: Dataset, implicit: bool, little: bool) -> bytes | str:
    """The bytes ``fn`` writes, or the name of the error it raises (both writers must agree)."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings about values: the same for both
        try:
            fn(fp, ds)
        except Exception as exc:  # noqa: BLE001 - an error is a result to compare
            return type(exc).__name__
    return fp.getvalue()


def assert_same(make, implicit: bool, little: bool) -> None:
    """The fast writer on one data set from ``make()`` writes what pydicom writes on another
    (two copies: pydicom alters a data set while writing it in another encoding)."""
    fast = _write(write_dataset_fast, make(), implicit, little)
    reference = _write(write_dataset, make(), implicit, little)
    if isinstance(reference, bytes) and isinstance(fast, bytes) and fast != reference:
        at = next((i for i, (a, b) in enumerate(zip(fast, reference)) if a != b), min(len(fast), len(reference)))
        raise AssertionError(
            f"{len(fast)} bytes against pydicom's {len(reference)}, first difference at {at}: "
            f"{fast[max(at - 16, 0):at + 16]!r} against {reference[max(at - 16, 0):at + 16]!r}"
        )
    assert fast == reference


def _read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - not a file pydicom reads: nothing to compare
            return None


def _decoded(path: Path) -> Dataset:
    """``path`` read with every element decoded, at every depth."""
    ds = _read(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _elem in ds.iterall():
            pass
    return ds


# ---- the corpus -------------------------------------------------------------------------------


RETAINING = ["retain-safe-private", "retain-long-modified-dates", "retain-uids"]


@pytest.mark.parametrize(("options", "checked", "at_least"),
                         [([], True, 80), (RETAINING, True, 80), ([], False, 200)],
                         ids=["basic", "retaining", "unchecked"])
def test_released_objects_are_what_pydicom_would_write(options, checked, at_least, monkeypatch):
    """The bytes ``deidentify_dicom`` releases for every file of the corpus, against the same
    walked data set written by pydicom; ``unchecked``: the checks that quarantine an object before
    the walk are switched off, so that objects medcloak refuses are walked and written too (more
    kinds of data set). Files quarantined or skipped before encoding are not compared; at least
    ``at_least`` are."""
    if not checked:
        for name in ("_precheck", "check_type1", "check_pixel_data"):
            monkeypatch.setattr(dicom, name, lambda *args, **kwargs: None)
    compared: list[tuple[bytes, bytes]] = []
    encode = dicom_write.encode

    def compare(ds, transfer_syntax, meta):
        twin = copy.deepcopy(ds)
        data = encode(ds, transfer_syntax, meta)
        with monkeypatch.context() as patch:
            patch.setattr(dicom_write, "write_dataset_fast", write_dataset)
            reference = encode(twin, transfer_syntax, meta)
        compared.append((data, reference))
        return data

    monkeypatch.setattr(dicom, "encode", compare)
    profile = load_profile(None, options)
    differ, written = [], 0
    for path in CORPUS:
        compared.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                dicom.deidentify_dicom(path, profile, Keyring(SECRET))
            except MedcloakError:
                pass  # quarantined or skipped: compared if it was written
        if compared:
            written += 1
            data, reference = compared[0]
            if data != reference:
                differ.append(_name(path))
    assert written >= at_least
    assert differ == []


@pytest.mark.parametrize("path", CORPUS, ids=_name)
def test_read_and_decoded_data_sets_are_what_pydicom_would_write(path):
    """As read (raw elements, raw sequences) in its own encoding, and fully decoded in each."""
    ds = _read(path)
    if ds is None or None in ds.original_encoding:
        pytest.skip("not a data set pydicom reads")
    assert_same(lambda: _read(path), *ds.original_encoding)
    for implicit, little in ENCODINGS:
        assert_same(lambda: _decoded(path), implicit, little)


# ---- random data sets -------------------------------------------------------------------------

#: (tag, VR) of the data dictionary, by VR: the tags random elements get (readable back in
#: implicit VR); group 2 (File Meta), group lengths, items and Specific Character Set excluded
_TAGS: dict[str, list[int]] = {}
for _tag, _entry in sorted(DicomDictionary.items()):
    if _tag >> 16 in (0x0002, 0xFFFE) or _tag & 0xFFFF == 0 or _tag in (0x00080005, 0x7FE00010):
        continue
    _TAGS.setdefault(_entry[0], []).append(_tag)
_SEQUENCE_TAGS = frozenset(_TAGS["SQ"])

_LATIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\\"), max_size=9)
_WIDE = st.text(st.sampled_from("aZ09 ^=.-éÅßΩЖ中"), max_size=7)  # beyond latin-1 at times
_CODES = st.text(st.sampled_from("ABCZ019 _"), max_size=16)
_UIDS = st.from_regex(r"[12](\.[0-9]{1,6}){0,6}", fullmatch=True)
_NAMES = st.text(st.sampled_from("AbcZ^= .-é"), max_size=12)
_DS = st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True)


def _multi(values, single=True):
    many = st.lists(values, min_size=2, max_size=4)
    return st.one_of(values, many) if single else many


_RANGES = {"US": (0, 0xFFFF), "SS": (-0x8000, 0x7FFF), "UL": (0, 0xFFFFFFFF), "SL": (-(2**31), 2**31 - 1),
           "SV": (-(2**63), 2**63 - 1), "UV": (0, 2**64 - 1)}
_VALUES = {
    "LO": _multi(st.one_of(_LATIN, _WIDE)), "SH": _multi(_LATIN), "UC": _multi(_WIDE),
    "LT": st.one_of(_LATIN, _WIDE), "ST": _LATIN, "UT": _WIDE,
    "CS": _multi(_CODES), "AE": _multi(_CODES), "AS": st.sampled_from(["030Y", "011M", "2W"]),
    "DA": _multi(st.from_regex(r"(19|20)[0-9]{2}[01][0-9][0-3][0-9]", fullmatch=True)),
    "TM": _multi(st.from_regex(r"[0-2][0-9]([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?", fullmatch=True)),
    "DT": st.from_regex(r"20[0-9]{2}[01][0-9][0-3][0-9]([0-2][0-9])?", fullmatch=True),
    "UR": st.sampled_from(["http://a.example/x", "urn:x"]),
    "UI": _multi(_UIDS), "PN": _multi(_NAMES), "DS": _multi(_DS),
    "IS": _multi(st.integers(-(2**31), 2**31 - 1)),
    "FL": _multi(st.floats(width=32, allow_nan=False)), "FD": _multi(st.floats(allow_nan=False)),
    "OB": st.binary(max_size=9), "OW": st.binary(max_size=10), "UN": st.binary(max_size=9),
    "OB*": st.binary(max_size=9),  # OB of undefined length (read back raw, delimiter not in the value)
    "AT": _multi(st.integers(0, 0xFFFFFFFF)),
    **{vr: _multi(st.integers(lo, hi)) for vr, (lo, hi) in _RANGES.items()},
}
_CHARSETS = st.sampled_from([None, None, "ISO_IR 100", "ISO_IR 192", "ISO_IR 144", ["", "ISO 2022 IR 100"]])


@st.composite
def _element(draw, depth: int):
    """One element as plain data: (tag, VR, value), a sequence as (tag, "SQ", (undefined, items));
    a VR with a star is of undefined length."""
    kinds = sorted(_VALUES) + (["SQ"] * 4 if depth < 3 else [])
    vr = draw(st.sampled_from(kinds))
    tag = draw(st.sampled_from(_TAGS[vr[:2]]))
    if vr == "SQ":
        return tag, vr, (draw(st.booleans()), draw(st.lists(_item(depth + 1), max_size=3)))
    if draw(st.integers(0, 9)) == 0:  # no value: zero length
        return tag, vr, draw(st.sampled_from([None, [], ""]))
    return tag, vr, draw(_VALUES[vr])


@st.composite
def _item(draw, depth: int):
    """A data set as plain data: (undefined length as an item, character set, elements)."""
    charset = draw(_CHARSETS) if draw(st.integers(0, 4)) == 0 else None
    return draw(st.booleans()), charset, draw(st.lists(_element(depth), max_size=6))


def _build(spec) -> Dataset:
    undefined, charset, elements = spec
    ds = Dataset()
    ds.is_undefined_length_sequence_item = undefined
    if charset is not None:
        ds[0x00080005] = DataElement(0x00080005, "CS", charset)
    for tag, vr, value in elements:
        _set(ds, tag, vr, value)
    return ds


def _set(ds: Dataset, tag: int, vr: str, value) -> None:
    if vr == "SQ":
        undefined, items = value
        elem = DataElement(tag, "SQ", Sequence([_build(item) for item in items]))
        elem.is_undefined_length = undefined
    else:
        elem = DataElement(tag, vr[:2], value)
        elem.is_undefined_length = vr.endswith("*")
    ds[tag] = elem


def _built(spec) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's validation of values: not the writers' concern
        return _build(spec)


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(spec=_item(0), encoding=st.sampled_from(ENCODINGS))
def test_random_new_data_sets_are_what_pydicom_would_write(spec, encoding):
    """Data sets built from scratch (no original encoding: pydicom decodes nothing, corrects nothing)."""
    assert_same(lambda: _built(spec), *encoding)


def _read_back(data: bytes, implicit: bool, little: bool) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_dataset(io.BytesIO(data), implicit, little)


def _changed(data: bytes, implicit: bool, little: bool, changes) -> Dataset:
    """``data`` read back (raw elements, raw sequences), then changed as a profile changes an
    object: elements replaced or added at the top and inside items of decoded sequences."""
    ds = _read_back(data, implicit, little)
    top, nested = changes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tag, vr, value in top:
            _set(ds, tag, vr, value)
        for pick, (tag, vr, value) in nested:
            sequences = [t for t in sorted(ds.keys()) if t in _SEQUENCE_TAGS and ds[t].VR == "SQ" and len(ds[t].value)]
            if not sequences:
                break
            items = ds[sequences[pick % len(sequences)]].value
            _set(items[pick % len(items)], tag, vr, value)
    return ds


@_SETTINGS
@given(spec=_item(0), changes=st.tuples(st.lists(_element(1), max_size=4),
                                        st.lists(st.tuples(st.integers(0, 99), _element(1)), max_size=4)),
       encoding=st.sampled_from(ENCODINGS), other=st.sampled_from(ENCODINGS))
def test_random_data_sets_read_back_and_changed_are_what_pydicom_would_write(spec, changes, encoding, other):
    """Data sets written by pydicom, read back raw in that encoding and changed: written in
    their own encoding (raw elements copied) and in another one (pydicom decodes first)."""
    data = _write(write_dataset, _built(spec), *encoding)
    if not isinstance(data, bytes):
        return  # pydicom cannot write it (a value it cannot encode): nothing to read back
    assert_same(lambda: _changed(data, *encoding, changes), *encoding)
    assert_same(lambda: _changed(data, *encoding, changes), *other)


# ---- the comparison can fail ------------------------------------------------------------------


def test_a_wrong_item_length_fails_the_comparison(monkeypatch):
    """An item length off by two (a defined-length item in a sequence) is caught."""
    spec = (False, None, [(0x00081115, "SQ", (False, [(False, None, [(0x00081150, "UI", "1.2.3")])]))])
    assert_same(lambda: _built(spec), False, True)
    sequence = dicom_write._Encoder.sequence

    def wrong(self, elem, encodings):
        data = bytearray(sequence(self, elem, encodings))
        (length,) = struct.unpack_from("<I", data, 16)  # explicit VR: SQ header 12, item tag 4
        struct.pack_into("<I", data, 16, length + 2)
        return bytes(data)

    monkeypatch.setattr(dicom_write._Encoder, "sequence", wrong)
    with pytest.raises(AssertionError):
        assert_same(lambda: _built(spec), False, True)

