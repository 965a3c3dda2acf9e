"""Writing a de-identified data set as a DICOM Part 10 file, with a File Meta group of our own.

The File Meta Information is encoded here directly (it is seven small elements, always Explicit
VR Little Endian), which spares pydicom's general file-format machinery on every object. The data
set is encoded by :func:`write_dataset_fast`, byte for byte as pydicom's ``write_dataset`` encodes
it but without pydicom's per-element machinery (kept elements' bytes copied, sequences and changed
elements of the common kinds encoded here, anything unusual left to pydicom), and deflated when the
transfer syntax says so.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

from .dicom_elements import LONG_VR_NAMES

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

PREAMBLE = b"\x00" * 128 + b"DICM"
DEFLATED = "1.2.840.10008.1.2.1.99"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _ui(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _sh(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def file_meta_bytes(
    sop_class: str, sop_instance: str, transfer_syntax: str, implementation_uid: str, version: str
) -> bytes:
    """The encoded File Meta Information group, group length first (PS3.10 7.1)."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01"),
            _element(0x0002, b"UI", _ui(sop_class)),
            _element(0x0003, b"UI", _ui(sop_instance)),
            _element(0x0010, b"UI", _ui(transfer_syntax)),
            _element(0x0012, b"UI", _ui(implementation_uid)),
            _element(0x0013, b"SH", _sh(version)),
        )
    )
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


#: Explicit VRs whose length field is four bytes after two reserved ones (PS3.5 7.1.2).
LONG_VRS = LONG_VR_NAMES
_UNDEFINED = 0xFFFFFFFF

#: padding of the VRs pydicom writes with ``write_string`` (and DA/DT/TM given as strings)
_STRING_PAD = {"AE": " ", "AS": " ", "CS": " ", "UR": " ", "DA": " ", "DT": " ", "TM": " ", "UI": "\x00"}
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_NUMBER_STRING_VRS = frozenset({"DS", "IS"})
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})


class _Layout:
    """The packed forms of one byte order: element headers, item and delimiter tags."""

    def __init__(self, order: str) -> None:
        self.order = order
        self.tag = struct.Struct(order + "HH")
        self.implicit = struct.Struct(order + "HHI")
        self.short = struct.Struct(order + "HH2sH")
        self.long = struct.Struct(order + "HH2s2xI")
        self.item_undefined = self.implicit.pack(0xFFFE, 0xE000, _UNDEFINED)
        self.item_delimiter = self.implicit.pack(0xFFFE, 0xE00D, 0)
        self.sequence_delimiter = self.implicit.pack(0xFFFE, 0xE0DD, 0)
        self.item_tag = self.tag.pack(0xFFFE, 0xE000)  # what encapsulated Pixel Data starts with


_LAYOUTS = {True: _Layout("<"), False: _Layout(">")}
_pd: Any = None  # pydicom's names used here, imported on first use (``import medcloak`` stays light)


def _pydicom() -> Any:
    global _pd
    if _pd is None:
        from types import SimpleNamespace

        from pydicom.charset import convert_encodings, custom_encoders, encode_string
        from pydicom.charset import need_tail_escape_sequence_encodings as tail_escaped
        from pydicom.dataset import Dataset
        from pydicom.filebase import DicomBytesIO
        from pydicom.filewriter import write_data_element, write_dataset
        from pydicom.multival import MultiValue
        from pydicom.sequence import Sequence
        from pydicom.tag import _LUT_DESCRIPTOR_TAGS
        from pydicom.valuerep import AMBIGUOUS_VR, PersonName

        _pd = SimpleNamespace(
            convert_encodings=convert_encodings, encode_string=encode_string, Dataset=Dataset,
            DicomBytesIO=DicomBytesIO, write_data_element=write_data_element, write_dataset=write_dataset,
            Sequence=Sequence, PersonName=PersonName, ambiguous=frozenset(str(v) for v in AMBIGUOUS_VR),
            lut_descriptors=frozenset(_LUT_DESCRIPTOR_TAGS), multi=(MultiValue, list, tuple),
            lists=(MultiValue, list),
            # codecs pydicom's ``encode_string`` does more with than a plain ``str.encode``
            special_codecs=frozenset(custom_encoders) | frozenset(tail_escaped),
        )
    return _pd


class _Encoder:
    """Data sets encoded as pydicom's ``write_dataset`` encodes them into a file-like of one
    encoding (implicit or explicit VR, little or big endian): :meth:`dataset` returns the bytes.
    What it does not encode itself (``None`` from :meth:`element`) is written by pydicom's
    ``write_data_element``, and a data set pydicom would alter before writing it (ambiguous VRs
    corrected, raw elements decoded) by pydicom's ``write_dataset``."""

    def __init__(self, implicit: bool, little: bool) -> None:
        self.implicit = implicit
        self.little = little
        self.encoding = (implicit, little)
        self.layout = _LAYOUTS[little]
        self.pd = _pydicom()
        self.converted: dict[Any, list[str]] = {}

    def _buffer(self) -> Any:
        buf = self.pd.DicomBytesIO()
        buf.is_implicit_VR, buf.is_little_endian = self.implicit, self.little
        return buf

    def dataset(self, ds: Any, parent_encoding: Any) -> bytes:
        """The encoded elements of ``ds``: ``write_dataset(fp, ds, parent_encoding)``."""
        elements = ds._dict
        # ``_character_set`` is the parent's encoding unless the data set has a character set
        charset = ds._character_set if 0x00080005 in elements else ds._parent_encoding
        recoded = ds.original_encoding != self.encoding or ds.original_character_set != charset
        # pydicom then corrects ambiguous VRs and decodes raw elements first: encoded here only
        # when that changes nothing
        if recoded and not self._left_as_is(ds, True):
            buf = self._buffer()
            self.pd.write_dataset(buf, ds, parent_encoding)
            return buf.getvalue()
        dataset_encoding = parent_encoding
        if 0x00080005 in elements:
            dataset_encoding = ds.get("SpecificCharacterSet", parent_encoding)
        encodings = None
        header = self.header
        out: list[bytes] = []
        append = out.append
        # plain ints sort without BaseTag's comparison methods; tags are unique, so the
        # elements themselves are never compared
        for tag, elem in sorted(zip(map(int, elements), elements.values())):
            if tag & 0xFFFF == 0 and tag >> 16 > 6:
                continue  # retired group lengths are never written
            if elem.is_raw:
                value = elem.value
                if type(value) is bytes and elem.length != _UNDEFINED:
                    # an element no rule touched: its bytes as read, with a header packed here
                    head = header(tag, elem.VR, len(value))
                    if head is not None:
                        append(head)
                        append(value)
                        continue
                    chunk = None
                elif value is None:
                    elem = ds.get_item(tag)  # decoded first, as pydicom does (empty or deferred values)
                    chunk = None
                else:
                    chunk = self.raw_undefined(elem)
            else:
                chunk = None
            if not elem.is_raw:
                if encodings is None:
                    encodings = self.encodings(dataset_encoding)
                chunk = self.element(elem, encodings)
            if chunk is None:
                buf = self._buffer()
                self.pd.write_data_element(buf, ds.get_item(tag), dataset_encoding)
                chunk = buf.getvalue()
            append(chunk)
        return b"".join(out)

    def encodings(self, dataset_encoding: Any) -> list[str]:
        """pydicom's ``convert_encodings`` of a data set's character set (or its parent's), once
        per value in an object."""
        if isinstance(dataset_encoding, str):
            key: Any = dataset_encoding
        elif isinstance(dataset_encoding, self.pd.multi) and all(isinstance(v, str) for v in dataset_encoding):
            key = tuple(dataset_encoding)
        else:
            return self.pd.convert_encodings(dataset_encoding or ["iso8859"])
        encodings = self.converted.get(key)
        if encodings is None:
            encodings = self.converted[key] = self.pd.convert_encodings(dataset_encoding or ["iso8859"])
        return encodings

    def _left_as_is(self, ds: Any, top: bool) -> bool:
        """Whether pydicom's ``correct_ambiguous_vr`` and its decoding of raw elements before
        writing would leave ``ds`` as it is: no raw element at the top (it would be decoded), and
        at any depth none with an ambiguous VR, no raw sequence and no deferred value."""
        ambiguous = self.pd.ambiguous
        for elem in ds._dict.values():
            vr = elem.VR
            if elem.is_raw:
                if top or vr == "SQ" or vr in ambiguous or elem.value is None:
                    return False
            elif vr in ambiguous:
                return False
            elif vr == "SQ":
                if not isinstance(elem.value, self.pd.Sequence):
                    return False
                for item in elem.value:
                    if not isinstance(item, self.pd.Dataset) or not self._left_as_is(item, False):
                        return False
        return True

    def header(self, tag: int, vr: str, n: int) -> bytes | None:
        """Tag, VR (explicit) and length; ``None`` where pydicom changes the VR (a value too long
        for a two-byte length becomes UN, with a warning) or refuses it (no VR, an ambiguous one)."""
        layout = self.layout
        if self.implicit:
            return layout.implicit.pack(tag >> 16, tag & 0xFFFF, n)
        if vr in LONG_VRS:
            return layout.long.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), n)
        if vr is not None and len(vr) == 2 and n <= 0xFFFF:
            return layout.short.pack(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), n)
        return None

    def raw_undefined(self, elem: Any) -> bytes | None:
        """A raw element of undefined length (a sequence no rule touched): header, the bytes as
        read, sequence delimiter."""
        if elem.tag == 0x7FE00010 or type(elem.value) is not bytes:
            return None  # encapsulated Pixel Data is checked by pydicom
        if not self.implicit and elem.VR not in LONG_VRS:
            return None
        return self.header(elem.tag, elem.VR, _UNDEFINED) + elem.value + self.layout.sequence_delimiter  # type: ignore[operator]

    def element(self, elem: Any, encodings: list[str]) -> bytes | None:
        """A decoded element of a common kind, or ``None`` for pydicom to write."""
        vr = elem.VR
        tag = elem.tag
        if vr == "SQ":
            return self.sequence(elem, encodings)
        value = elem.value
        if elem.is_undefined_length:
            # encapsulated Pixel Data only (an undefined length of another kind is pydicom's)
            if tag != 0x7FE00010 or vr not in ("OB", "OW") or type(value) is not bytes:
                return None
            if not value.startswith(self.layout.item_tag):
                return None  # pydicom refuses it
            if len(value) % 2:
                value += b"\x00"
            return self.header(tag, vr, _UNDEFINED) + value + self.layout.sequence_delimiter  # type: ignore[operator]
        try:
            data = self.value(vr, tag, value, encodings)
        except (UnicodeError, struct.error, TypeError, AttributeError, ValueError, OverflowError):
            return None  # pydicom writes it, or raises its own error
        if data is None:
            return None
        head = self.header(tag, vr, len(data))
        return None if head is None else head + data

    def value(self, vr: str, tag: int, value: Any, encodings: list[str]) -> bytes | None:
        """The encoded value, padded to even length as pydicom pads it, or ``None`` when pydicom
        must write it."""
        pd = self.pd
        # an empty value (pydicom's ``is_empty``: VM 0) has no bytes
        if value is None:
            return b""
        if isinstance(value, (str, bytes, pd.PersonName)):
            if not value:
                return b""
            multi = False
        elif isinstance(value, pd.multi):
            if not value:
                return b""
            multi = True
        else:
            multi = False
        pad = _STRING_PAD.get(vr)
        if pad is not None:  # ASCII strings (``write_string``)
            if multi:
                if not all(isinstance(v, str) for v in value):
                    return None  # dates and times as objects are formatted by pydicom
                text = "\\".join(value)
            elif isinstance(value, str):
                text = value
            else:
                return None
            if len(text) % 2:
                text += pad
            return text.encode("iso8859")
        if vr in _TEXT_VRS:  # text in the data set's character set (``write_text``)
            if multi:
                if all(isinstance(v, str) for v in value):
                    raw = b"\\".join([self.text(v, encodings) for v in value])
                elif all(type(v) is bytes for v in value):
                    raw = b"\\".join(value)
                else:
                    return None
            elif isinstance(value, str):
                raw = self.text(value, encodings)
            elif type(value) is bytes:
                raw = value
            else:
                return None
            return raw + b" " if len(raw) % 2 else raw
        if vr == "PN":  # ``write_PN``: pydicom's own encoding of each name
            if isinstance(value, pd.PersonName):
                names = [value]
            elif multi and len(value) > 1 and all(isinstance(v, pd.PersonName) for v in value):
                names = value
            else:
                return None
            raw = b"\\".join([name.encode(encodings) for name in names])
            return raw + b" " if len(raw) % 2 else raw
        if vr in _NUMBER_STRING_VRS:  # ``write_number_string``: the string as read, if any
            if multi:
                text = "\\".join(v.original_string if hasattr(v, "original_string") else str(v) for v in value)
            elif isinstance(value, (str, int, float)) or type(value).__name__ == "DSdecimal":
                text = value.original_string if hasattr(value, "original_string") else str(value)
            else:
                return None
            if len(text) % 2:
                text += " "
            return text.encode("iso8859")
        fmt = _NUMBER_FORMATS.get(vr)
        if fmt is not None:  # ``write_numbers``
            order = self.layout.order
            if isinstance(value, (int, float)):
                return struct.pack(order + fmt, value)
            if isinstance(value, pd.lists) and not (vr == "SS" and tag in pd.lut_descriptors):
                return struct.pack(f"{order}{len(value)}{fmt}", *value)
            return None
        if vr == "AT":  # ``write_ATvalue``: tags given as ints
            tags = value if multi else [value]
            if not all(isinstance(t, int) and not isinstance(t, bool) for t in tags):
                return None
            pack_tag = self.layout.tag.pack
            return b"".join([pack_tag(t >> 16, t & 0xFFFF) for t in tags])
        if type(value) is bytes:
            if vr in _BYTES_VRS:  # ``write_OBvalue``/``write_OWvalue``: as given, no swapping
                return value + b"\x00" if len(value) % 2 else value
            if vr == "UN":  # ``write_UN``: not padded
                return value
        return None

    def text(self, value: str, encodings: list[str]) -> bytes:
        """A text value in the data set's character set: pydicom's ``encode_string``, done here
        for a single plain codec (a value that codec cannot encode raises ``UnicodeError``, and
        the element is left to pydicom, which warns and replaces)."""
        if len(encodings) == 1 and encodings[0] not in self.pd.special_codecs:
            return value.encode(encodings[0])
        return self.pd.encode_string(value, encodings)

    def sequence(self, elem: Any, encodings: list[str]) -> bytes | None:
        """A sequence of data sets, each item encoded by :meth:`dataset`; lengths (defined or
        undefined, of the sequence and of each item) as pydicom writes them."""
        items = elem.value
        if not isinstance(items, self.pd.Sequence):
            return None
        layout = self.layout
        parts: list[bytes] = []
        for item in items:
            if not isinstance(item, self.pd.Dataset):
                return None
            content = self.dataset(item, encodings)
            if getattr(item, "is_undefined_length_sequence_item", False):
                parts += (layout.item_undefined, content, layout.item_delimiter)
            else:
                parts += (layout.implicit.pack(0xFFFE, 0xE000, len(content)), content)
        body = b"".join(parts)
        if elem.is_undefined_length:
            return self.header(elem.tag, "SQ", _UNDEFINED) + body + layout.sequence_delimiter  # type: ignore[operator]
        return self.header(elem.tag, "SQ", len(body)) + body  # type: ignore[operator]


def write_dataset_fast(fp: Any, ds: Dataset) -> None:
    """Encode ``ds`` into ``fp`` as pydicom's ``write_dataset`` does, byte for byte, without its
    per-element machinery for what an object is made of: raw elements (the ones no rule changed)
    are copied with a header packed here; sequences are encoded here item by item, at every
    depth; changed elements of the common kinds (text, names, UIDs, dates, codes, number
    strings, numbers, tags, bytes, empty values) are encoded here too. Anything else (an unusual
    value, a VR pydicom corrects or changes, a data set pydicom would decode before writing) is
    left to pydicom's ``write_data_element`` or ``write_dataset`` for that element or data set.
    """
    implicit, little = getattr(fp, "_implicit_vr", None), getattr(fp, "_little_endian", None)
    if implicit is None or little is None:  # pydicom takes the encoding from the data set
        _pydicom().write_dataset(fp, ds)
        return
    fp.write(_Encoder(implicit, little).dataset(ds, "iso8859"))


def encode(ds: Dataset, transfer_syntax: str, meta: bytes) -> bytes:
    """Preamble, prefix, ``meta`` and the data set encoded for ``transfer_syntax``."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.uid import UID

    ts = UID(transfer_syntax)
    if 0x7FE00010 in ds:
        ds["PixelData"].is_undefined_length = ts.is_compressed
    buf = DicomBytesIO()
    buf.is_implicit_VR = ts.is_implicit_VR
    buf.is_little_endian = ts.is_little_endian
    buf.write(PREAMBLE)
    buf.write(meta)
    if transfer_syntax != DEFLATED:
        write_dataset_fast(buf, ds)
        return buf.getvalue()
    inner = DicomBytesIO()
    inner.is_implicit_VR, inner.is_little_endian = False, True
    write_dataset_fast(inner, ds)
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = compressor.compress(inner.getvalue()) + compressor.flush()
    return buf.getvalue() + deflated + (b"\x00" if len(deflated) % 2 else b"")
