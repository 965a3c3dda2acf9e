"""Reading a DICOM file into the objects pydicom's ``dcmread`` makes of it, in one pass over its bytes.

:func:`read_fast` gives the very :class:`~pydicom.dataset.FileDataset` that ``dcmread`` gives for
a file read for de-identification (the same raw elements, with the same tags, VRs, lengths, value
bytes, offsets and encodings; sequences of undefined length as the same sequences of items;
the same File Meta and original encodings), and checks on the way what
:func:`medcloak.formats.dicom_check.check_structure` checks. It reads the bytes with
``struct.unpack_from`` instead of reading and seeking in a file element by element, which was most
of the time of reading a small object.

It is sure of itself only for the common case, and says ``None`` for everything else, so that the
caller checks the structure (which names what is wrong) and reads with ``dcmread``: no File Meta or
Transfer Syntax UID, a Command group, big endian, deflated or private transfer syntaxes, an
encoding other than the transfer syntax's at the start of the data set (pydicom warns and guesses),
a VR pydicom does not know, UN of undefined length (pydicom reads it as a sequence), repeating
group tags of undefined length, item or delimiter tags where an element is expected, a delimiter
with a length, a defined-length item that ends before its length, any structural fault, and any
error at all while reading (a warning of pydicom's is given as
``dcmread`` gives it: the calls that give it are the same). ``None`` costs the work done so far, no more.

What it makes is pydicom's own classes, in the order ``dcmread`` makes them (the few elements
``dcmread`` decodes on the way, such as the Transfer Syntax UID and the Specific Character Set,
are decoded here too): through their constructors, but for the data sets, which get a copy of the
state the constructor gives (checked against it once per process): it builds no object pydicom
would not.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from .dicom_elements import (
    DEFLATED,
    EXPLICIT_BE,
    IMPLICIT_LE,
    ITEM,
    ITEM_DELIM,
    KNOWN_VRS,
    LONG_VR_NAMES,
    LONG_VRS,
    SEQ_DELIM,
    UNDEFINED,
    Fault,
    Walker,
    file_meta,
    sq_tags,
)

_TAG_LEN = struct.Struct("<HHI").unpack_from
_EXPLICIT = struct.Struct("<HH2sH").unpack_from
_U32 = struct.Struct("<I").unpack_from
_SEQ_DELIM_BYTES = struct.pack("<HH", 0xFFFE, 0xE0DD)
_NO_STOP = 1 << 62
_MISSING = object()


class _Unsure(Exception):
    """Not the common case, or a fault: the caller reads the slow way."""


_VRS: dict[bytes, str] | None = None


def _vrs() -> dict[bytes, str]:
    """The explicit VRs both pydicom and :mod:`~medcloak.formats.dicom_elements` know, as pydicom
    names them, when both agree on which have a four-byte length (else none: nothing is sure)."""
    global _VRS
    if _VRS is None:
        from pydicom.filereader import ENCODED_VR
        from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

        table = {vr: vr.decode("ascii") for vr in KNOWN_VRS & ENCODED_VR}
        agree = all((vr in LONG_VRS) == (name in EXPLICIT_VR_LENGTH_32) for vr, name in table.items())
        _VRS = table if agree and len(table) == len(KNOWN_VRS) else {}
    return _VRS


class _Pydicom:
    """What the reader takes from pydicom, looked up once per process."""

    def __init__(self) -> None:
        from pydicom.charset import convert_encodings
        from pydicom.datadict import DicomDictionary, mask_match
        from pydicom.dataelem import (
            DataElement,
            RawDataElement,
            convert_raw_data_element,
            empty_value_for_VR,
        )
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence
        from pydicom.tag import BaseTag
        from pydicom.valuerep import VR
        from pydicom.values import convert_string

        self.dictionary, self.mask_match = DicomDictionary, mask_match
        self.DataElement, self.RawDataElement, self.Dataset, self.Sequence = DataElement, RawDataElement, Dataset, Sequence
        self.BaseTag, self.empty, self.convert_raw = BaseTag, empty_value_for_VR, convert_raw_data_element
        self.convert_encodings, self.convert_string = convert_encodings, convert_string
        self.sq_tags = sq_tags()
        self.sq_vr = VR.SQ
        self.tags: dict[int, Any] = {}  # BaseTag by tag: they are immutable ints
        self.make = _dataset_maker(Dataset)


_P: _Pydicom | None = None


def _pydicom() -> _Pydicom:
    global _P
    if _P is None:
        _P = _Pydicom()
    return _P


def _dataset_maker(cls: Any) -> Any:
    """A function ``make(elements, parent_encoding, implicit, little, charset)`` that gives what
    ``cls(elements, parent_encoding=...)`` followed by ``set_original_encoding(implicit, little,
    charset)`` gives, without the attribute hooks of pydicom's ``__setattr__`` (a fifth of the
    time of a sequence item). It copies the state of a data set made by the constructor (fresh
    copies of its containers), and is used only where it makes, for a few samples, a data set
    whose state equals the constructor's; otherwise it calls the constructor."""

    def slow(elements: Any, parent_encoding: Any, implicit: bool, little: bool, charset: Any) -> Any:
        ds = cls(elements, parent_encoding=parent_encoding)
        ds.set_original_encoding(implicit, little, charset)
        return ds

    proto = slow({}, "iso8859", None, None, "iso8859")
    state = dict(vars(proto))
    containers = [k for k, v in state.items() if isinstance(v, (dict, list, set)) and k != "_dict"]
    immutable = (bool, int, float, str, bytes, type(None), tuple)
    if any(not all(isinstance(x, immutable) for x in (state[k].values() if isinstance(state[k], dict) else state[k]))
           for k in containers):
        return slow
    fields = ("_dict", "_parent_encoding", "_read_implicit", "_read_little", "_read_charset")
    if not all(f in state for f in fields):
        return slow
    new = object.__new__

    def make(elements: Any, parent_encoding: Any, implicit: bool, little: bool, charset: Any) -> Any:
        ds = new(cls)
        d = ds.__dict__
        d.update(state)
        for k in containers:
            d[k] = state[k].copy()
        d["_dict"] = elements
        d["_parent_encoding"] = parent_encoding
        d["_read_implicit"] = implicit
        d["_read_little"] = little
        d["_read_charset"] = charset
        return ds

    for sample in (({}, "iso8859", True, True, "iso8859"), ({1: 2}, ["iso8859", "iso_ir_100"], False, True, ["x"])):
        a, b = slow(*sample), make(*sample)
        va, vb = vars(a), vars(b)
        if type(a) is not type(b) or va != vb or list(va) != list(vb):
            return slow
        if any(va[k] is vb[k] or vb[k] is state[k] for k in containers):
            return slow
    return make


class _Reader:
    """One read of one file's bytes (``data``: bytes, or an mmap of the file)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.end = len(data)
        self.vrs = _vrs()
        self.walker: Walker | None = None
        self.p = _pydicom()
        self.empties: dict[Any, Any] = {}

    def check_sequence(self, pos: int, stop: int, implicit: bool) -> None:
        """A sequence of defined length, which pydicom keeps raw: only checked."""
        if self.walker is None:
            self.walker = Walker(self.data, True)
        try:
            self.walker.sequence(pos, stop, implicit, (0,))
        except Fault:
            raise _Unsure from None

    def dataset(self, pos: int, stop: int | None, implicit: bool, top: bool, parent_encoding: Any) -> tuple[Any, int]:
        """The data set from ``pos`` to ``stop`` (a defined-length item), to the end of the data
        (``top``) or to an item delimiter, as pydicom's ``read_dataset`` makes it; and the position
        after it."""
        data, end, vrs, p = self.data, self.end, self.vrs, self.p
        raw_element, tags, empties, sq_tags = p.RawDataElement, p.tags, self.empties, p.sq_tags
        new = tuple.__new__
        limit = _NO_STOP if stop is None else stop
        if not (implicit and not top) and pos + 6 <= end:  # pydicom's look at the first VR of an item
            implicit = not (0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B)
        elements: dict[Any, Any] = {}
        encoding = parent_encoding
        while pos < limit:
            if pos + 8 > end:
                if pos == end and top:
                    break
                raise _Unsure  # cut, or an item without its delimiter
            if implicit:
                group, elem, length = _TAG_LEN(data, pos)
                vr = None
                head = 8
            else:
                group, elem, vrb, length = _EXPLICIT(data, pos)
                vr = vrs.get(vrb)
                head = 8
                if vr is None:
                    if group == 0xFFFE:
                        group, elem, length = _TAG_LEN(data, pos)  # a delimiter has no VR
                    else:
                        raise _Unsure  # an unknown VR, or an implicit VR element among explicit ones
                elif vr in LONG_VR_NAMES:
                    if pos + 12 > end:
                        raise _Unsure
                    length = _U32(data, pos + 8)[0]
                    head = 12
            if group == 0xFFFE:
                if (group << 16 | elem) == ITEM_DELIM and not top and length == 0 and vr is None:
                    pos += 8
                    break
                raise _Unsure  # an item or delimiter where an element is expected
            tag = group << 16 | elem
            btag = tags.get(tag)
            if btag is None:
                if len(tags) > 1 << 16:
                    tags.clear()
                btag = tags[tag] = p.BaseTag(tag)
            pos += head
            if length != UNDEFINED:
                value_end = pos + length
                if value_end > end or value_end > limit:
                    raise _Unsure
                if length:
                    if vr == "SQ" or (vr is None and tag in sq_tags):
                        self.check_sequence(pos, value_end, implicit)
                    value = data[pos:value_end]
                else:
                    value = empties.get(vr, _MISSING)
                    if value is _MISSING:
                        value = empties[vr] = p.empty(vr, raw=True)
                if tag == 0x00080005:
                    encoding = p.convert_encodings(p.convert_string(value or b"", True))
                elements[btag] = new(raw_element, (btag, vr, length, value, pos, implicit, True, True, False))
                pos = value_end
                continue
            if vr is None:
                entry = p.dictionary.get(tag)
                if entry is not None:
                    vr = entry[0]
                elif not group & 1 and p.mask_match(tag):
                    raise _Unsure  # a repeating group: pydicom and the check may part ways
                elif pos + 4 > end:
                    raise _Unsure
                elif _TAG_LEN(data, pos)[:2] == (0xFFFE, 0xE000):
                    vr = p.sq_vr
            elif vr == "UN":
                raise _Unsure  # pydicom reads it as a sequence
            if vr == "SQ":
                seq, after = self.sequence(pos, implicit, encoding)
                elements[btag] = p.DataElement(btag, vr, seq, pos, is_undefined_length=True)
            else:
                value, after = self.undefined_value(pos)
                elements[btag] = new(raw_element, (btag, vr, length, value, pos, implicit, True, True, False))
            pos = after
        if 0x00080005 in elements:
            charset = p.convert_encodings(p.convert_raw(elements[0x00080005]).value)
        else:
            charset = parent_encoding
        return p.make(elements, parent_encoding, implicit, True, charset), pos

    def sequence(self, pos: int, implicit: bool, encoding: Any) -> tuple[Any, int]:
        """A sequence of undefined length from ``pos``, as pydicom's ``read_sequence`` makes it."""
        data, end = self.data, self.end
        items = []
        while True:
            if pos + 8 > end:
                raise _Unsure
            group, elem, length = _TAG_LEN(data, pos)
            tag = group << 16 | elem
            if tag == SEQ_DELIM:
                pos += 8
                break
            if tag != ITEM:
                raise _Unsure
            start = pos
            pos += 8
            if length == UNDEFINED:
                ds, pos = self.dataset(pos, None, implicit, False, encoding)
                ds.is_undefined_length_sequence_item = True
            else:
                item_end = pos + length
                if item_end > end:
                    raise _Unsure
                ds, after = self.dataset(pos, item_end, implicit, False, encoding)
                if after != item_end:
                    raise _Unsure  # an item delimiter inside: pydicom reads on from it
                pos = item_end
                ds.is_undefined_length_sequence_item = False
            ds.seq_item_tell = start
            ds.file_tell = start
            items.append(ds)
        seq = self.p.Sequence(items)
        seq.is_undefined_length = True
        return seq, pos

    def undefined_value(self, pos: int) -> tuple[bytes, int]:
        """An undefined-length value that is no sequence: its bytes up to the sequence delimiter
        after its items (encapsulated Pixel Data) or, when they are no items, the first
        delimiter; and the position after the delimiter."""
        data, end = self.data, self.end
        p = pos
        while p + 8 <= end:
            group, elem, length = _TAG_LEN(data, p)
            item = group << 16 | elem
            if item == SEQ_DELIM:
                return data[pos:p], p + 8
            if item != ITEM:
                break
            p += 8 + length
            if p > end:
                raise _Unsure
        else:
            raise _Unsure
        found = data.find(_SEQ_DELIM_BYTES, pos)
        if found < 0 or found + 8 > end:
            raise _Unsure
        return data[pos:found], int(found) + 8


def read_fast(data: Any, fh: BinaryIO) -> Any:
    """The :class:`~pydicom.dataset.FileDataset` that ``dcmread(fh)`` gives for the Part 10 file
    whose bytes are ``data`` (bytes or an mmap), or ``None`` when this reader is not sure of it
    (see the module's docstring) or the file has a structural fault."""
    try:
        return _read(data, fh)
    except (_Unsure, Fault, RecursionError):
        return None
    except Exception:  # noqa: BLE001 - anything unexpected is read the slow way, which reports it
        return None


def _read(data: Any, fh: BinaryIO) -> Any:
    import pydicom.uid
    from pydicom.charset import default_encoding
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset

    end = len(data)
    if end < 140 or data[128:132] != b"DICM" or not _vrs():
        raise _Unsure
    reader = _Reader(data)
    elements: list[tuple[int, bytes | None, int, int]] = []
    pos, syntax = file_meta(data, 132, elements)
    if pos + 6 > end or not elements:
        raise _Unsure
    meta = {}
    for tag, vr, at, length in elements:
        name = reader.vrs.get(vr) if vr is not None else None
        if tag >> 16 != 2 or name is None:
            raise _Unsure  # implicit VR File Meta, a Command group, an unknown VR
        btag = reader.p.BaseTag(tag)
        value = data[at : at + length] if length else reader.p.empty(name, raw=True)
        meta[btag] = tuple.__new__(reader.p.RawDataElement, (btag, name, length, value, at, False, True, True, False))
    # as pydicom's _read_file_meta_info
    first = Dataset(meta, parent_encoding=default_encoding)
    first.set_original_encoding(False, True, default_encoding)
    fmeta = FileMetaDataset(first)
    fmeta.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    fmeta[next(iter(fmeta.elements())).tag]
    if "FileMetaInformationGroupLength" in fmeta:
        fmeta.FileMetaInformationGroupLength  # noqa: B018 - decoded by dcmread too
    transfer_syntax = fmeta.get("TransferSyntaxUID")
    if transfer_syntax is None or syntax is None or syntax in (EXPLICIT_BE, DEFLATED):
        raise _Unsure
    if transfer_syntax == pydicom.uid.ImplicitVRLittleEndian:
        implicit = True
    elif transfer_syntax in (pydicom.uid.ExplicitVRBigEndian, pydicom.uid.DeflatedExplicitVRLittleEndian,
                             *pydicom.uid.PrivateTransferSyntaxes):
        raise _Unsure
    else:
        implicit = False
    if implicit != (syntax == IMPLICIT_LE):
        raise _Unsure  # the check would read the data set otherwise
    if implicit != (not (0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B)):
        raise _Unsure  # pydicom warns and reads it as it looks
    dataset, _ = reader.dataset(pos, None, implicit, True, default_encoding)
    ds = FileDataset(fh, dataset, bytes(data[:128]), fmeta, implicit, True)
    ds.set_original_encoding(implicit, True, dataset._character_set)
    return ds
