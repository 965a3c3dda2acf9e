"""The one element walker of raw DICOM bytes, shared by the structural check and the leak scan's reader."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pydicom
import pytest
from conftest import pydicom_test_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medcloak.errors import CorruptInputError
from medcloak.formats.dicom_check import check_structure
from medcloak.formats.dicom_elements import DEFLATED, Walker, encoding, file_meta, inflate
from medcloak.residual import read


class _Elements(Walker):
    """What the walk shows: (path, tag, offset, length) of every value, "encapsulated" for the
    fragments of an encapsulated one."""

    visit = True

    def __init__(self, data: bytes, little: bool) -> None:
        super().__init__(data, little)
        self.seen: list[tuple] = []

    def value(self, tag, vr, pos, length, path):  # type: ignore[no-untyped-def]
        if vr == b"UN" and self.tag_only(self.data, pos) == (0xFFFE, 0xE000):
            # a sequence of defined length whose VR the writer did not know, read as the leak scan
            # does (and pydicom, knowing the tag): implicit VR inside
            inner = _Elements(bytes(self.data[pos : pos + length]), self.little)
            inner.sequence(0, length, True, path + (tag,))
            self.seen += [(*s[:2], s[2] + pos, s[3]) if len(s) == 4 else s for s in inner.seen]
        else:
            self.seen.append((path, tag, pos, length))

    def fragments(self, tag, items, path):  # type: ignore[no-untyped-def]
        self.seen.append((path, tag, "encapsulated"))


def _walked(data: bytes) -> tuple[list[int], list[tuple]]:
    pos = 132 if data[128:132] == b"DICM" else 0
    meta: list = []
    pos, syntax = file_meta(data, pos, meta)
    if syntax == DEFLATED:
        data, pos = inflate(data, pos), 0
    little, implicit = encoding(data, pos, syntax)
    walker = _Elements(data, little)
    walker.dataset(pos, None, implicit, (), top=True)
    return [m[0] for m in meta], sorted(walker.seen, key=repr)


def _read_by_pydicom(ds: Dataset, path: tuple[int, ...], out: list[tuple], base: int = 0) -> None:
    """The same of pydicom's elements: raw, or converted while reading (then of unknown length).
    A sequence of defined length is read on access: its offsets count from its value (``base``)."""
    for tag, raw in list(ds._dict.items()):
        elem = ds[tag]
        if isinstance(elem.value, Sequence):
            start = base + raw.value_tell if isinstance(raw, RawDataElement) else base
            for item in elem.value:
                _read_by_pydicom(item, path + (int(tag),), out, start)
        elif isinstance(raw, RawDataElement):
            if raw.length == 0xFFFFFFFF:
                out.append((path, int(tag), "encapsulated"))
            elif raw.length:
                out.append((path, int(tag), base + raw.value_tell, raw.length))
        elif raw.is_undefined_length:
            out.append((path, int(tag), "encapsulated"))
        elif not raw.is_empty:
            out.append((path, int(tag), base + raw.file_tell, None))


def test_the_walk_shows_the_elements_pydicom_reads_in_its_test_files():
    """Every file of pydicom's test set that pydicom reads whole: the same File Meta elements,
    and the same values (by the sequences they are in, tag, offset and length) as pydicom's raw
    elements: implicit and explicit VR, big endian, deflated, encapsulated, sequences of unknown VR."""
    compared = 0
    for path in sorted(pydicom_test_files().rglob("*")):
        if not path.is_file() or path.name in ("MR_truncated.dcm", "rtplan_truncated.dcm", "DICOMDIR-nooffset"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
            except Exception:  # noqa: BLE001 - not DICOM, or not readable by pydicom either
                continue
            expected: list[tuple] = []
            _read_by_pydicom(ds, (), expected)
        meta, seen = _walked(path.read_bytes())
        assert meta == [int(t) for t in ds.file_meta.keys()], path.name
        lengths = {e[:3]: e[3] for e in expected if len(e) == 4}
        seen = [s if len(s) == 3 or lengths.get(s[:3], 0) is not None else (*s[:3], None) for s in seen]
        assert seen == sorted(expected, key=repr), path.name
        compared += 1
    assert compared >= 100


def _third_party_files() -> list[Path]:
    files = [p for p in pydicom_test_files().rglob("*") if p.is_file()]
    data_store = pytest.importorskip("data_store")
    files += [p for p in (Path(os.path.dirname(data_store.__file__)) / "data").rglob("*") if p.is_file()]
    return sorted(files)


def test_the_reader_fails_closed_exactly_where_the_check_finds_a_fault():
    """The leak scan's reader and the structural check walk alike: the reader reads an object
    to its end (as medcloak's output and as an input) where the check passes it, and searches it
    byte for byte where the check finds a fault (pydicom's and pydicom-data's files)."""
    differ = []
    for path in _third_party_files():
        data = path.read_bytes()
        try:
            check_structure(data)
            fault = False
        except CorruptInputError:
            fault = True
        for own_output in (True, False):
            if bool(read(data, own_output).unparsed) != fault:
                differ.append((path.name, own_output))
    assert differ == []


def test_an_unknown_tag_cut_inside_the_tag_of_its_first_item_is_truncation():
    """Implicit VR: a tag the dictionary lacks, of undefined length, whose value is cut after the
    four bytes of an item tag is a truncated sequence (not an error of the walk)."""
    base = (pydicom_test_files() / "rtplan.dcm").read_bytes()  # implicit VR little endian
    cut = base + b"\x09\x00\x10\x10\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0"
    with pytest.raises(CorruptInputError, match=r"^truncated: sequence \(0009,1010\) has no delimiter"):
        check_structure(cut)
    assert read(cut, own_output=False).unparsed


def test_an_item_of_implicit_vr_in_an_explicit_data_set_is_read_as_pydicom_reads_it():
    """A writer that switches to implicit VR inside a sequence: pydicom reads the item, so do the
    check and the leak scan's reader (which used to search the whole object byte for byte)."""
    import io

    ds = pydicom.dcmread(pydicom_test_files() / "CT_small.dcm")  # explicit VR little endian
    item = Dataset()
    item.RequestedProcedureID = "QX7781234"
    ds.RequestAttributesSequence = [item]
    buf = io.BytesIO()
    ds.save_as(buf)
    explicit = b"\x40\x00\x01\x10SH\x0a\x00QX7781234 "
    assert buf.getvalue().count(explicit) == 1
    data = buf.getvalue().replace(explicit, b"\x40\x00\x01\x10\x0a\x00\x00\x00QX7781234 ")  # same size
    assert pydicom.dcmread(io.BytesIO(data)).RequestAttributesSequence[0].RequestedProcedureID == "QX7781234"
    check_structure(data)
    for own_output in (True, False):
        fields = read(data, own_output)
        assert not fields.unparsed
        assert ("SH", "QX7781234 ") in [(vr, text) for _kind, vr, text in fields.values]
