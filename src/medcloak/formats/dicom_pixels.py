"""Consistency of Pixel Data with the attributes that describe it (fail closed on mismatch), and
what its attributes declare against the run's limits (:mod:`medcloak.limits`), before anything
is decoded: native Pixel Data (and Float and Double Float Pixel Data) is held whole, so its
declared size is checked against the per-object ceiling (the file holds it already: no
expansion); an encapsulated frame is decoded on its own by the burned-in text scan, all frames
at once by redaction, so the declared size of one frame is checked when the object is read
(:func:`check_pixel_data`) and of all of them where they are decoded together
(:func:`check_decoded`). Compressed image data has no expansion bound: a blank JPEG 2000 frame
is thousands of times smaller than its pixels (pydicom's ``JPEG2000.dcm``: 1:1971).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CorruptInputError
from ..limits import check_declared

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

ITEM = 0xE000FFFE  # (FFFE,E000) read as a little-endian uint32 of group then element
SEQ_DELIM = 0xE0DDFFFE


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CorruptInputError(f"{keyword} is not a number") from None


def expected_native_length(ds: Dataset) -> int:
    """Bytes of native Pixel Data that Rows, Columns, Samples, Bits Allocated and frames imply."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    if rows is None or cols is None or bits is None:
        raise CorruptInputError("Pixel Data without Rows, Columns or Bits Allocated")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if rows <= 0 or cols <= 0 or bits <= 0 or frames <= 0:
        raise CorruptInputError("Pixel Data attributes are not positive")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") and samples == 3:
        # native 4:2:2 stores two luminance and two chrominance samples per pair of pixels
        return (rows * cols * 2 * frames * bits + 7) // 8
    total_bits = rows * cols * samples * frames * bits
    return (total_bits + 7) // 8


def decoded_frame_length(ds: Dataset) -> int:
    """Bytes of one frame as a decoder gives it: Rows x Columns x Samples per Pixel x Bits
    Allocated rounded up to whole bytes (0 when an attribute is missing)."""
    rows, cols, bits = _int(ds, "Rows", 0) or 0, _int(ds, "Columns", 0) or 0, _int(ds, "BitsAllocated", 0) or 0
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    return max(rows, 0) * max(cols, 0) * max(samples, 1) * ((max(bits, 0) + 7) // 8)


def check_decoded(ds: Dataset, frames: int | None = None) -> None:
    """Raise :class:`~medcloak.errors.LimitError` when decoding ``frames`` frames of ``ds``
    together (all of them by default) would make more than the per-object ceiling allows, before
    any is decoded."""
    if frames is None:
        frames = _int(ds, "NumberOfFrames", 1) or 1
    check_declared(decoded_frame_length(ds) * max(frames, 1),
                   what="decoded Pixel Data" if frames != 1 else "a decoded frame of Pixel Data")


#: Float Pixel Data and Double Float Pixel Data, and the bytes of their samples
FLOAT_PIXEL_DATA = {0x7FE00008: ("Float Pixel Data", 4), 0x7FE00009: ("Double Float Pixel Data", 8)}


def _check_float_pixel_data(ds: Dataset) -> None:
    """Float and Double Float Pixel Data against what Rows, Columns, Samples and frames declare:
    the ceiling, and the element's own length."""
    for tag, (what, size) in FLOAT_PIXEL_DATA.items():
        elem = ds.get_item(tag)
        if elem is None or elem.value is None:
            continue
        rows, cols = _int(ds, "Rows", 0) or 0, _int(ds, "Columns", 0) or 0
        samples, frames = _int(ds, "SamplesPerPixel", 1) or 1, _int(ds, "NumberOfFrames", 1) or 1
        check_declared(max(rows, 0) * max(cols, 0) * max(samples, 1) * max(frames, 1) * size, what=what,
                       stored=len(elem.value))


def count_fragments(data: bytes) -> int:
    """Fragments after the Basic Offset Table of encapsulated Pixel Data; raises when the item
    structure is broken or runs past the end."""
    return len(items(data)) - 1


def check_pixel_data(ds: Dataset, transfer_syntax: str) -> None:
    """Raise :class:`CorruptInputError` when Pixel Data does not match its attributes, and
    :class:`~medcloak.errors.LimitError` when they declare more than the run's limits allow
    (native Pixel Data, Float and Double Float Pixel Data whole, an encapsulated frame)."""
    from pydicom.uid import UID

    _check_float_pixel_data(ds)
    if 0x7FE00010 not in ds:
        return
    elem = ds.get_item(0x7FE00010)
    value = elem.value
    if value is None or len(value) == 0:
        raise CorruptInputError("Pixel Data is empty")
    if UID(transfer_syntax).is_encapsulated:
        check_decoded(ds, frames=1)
        fragments = count_fragments(bytes(value))
        frames = _int(ds, "NumberOfFrames", 1) or 1
        if fragments < 1 or (fragments < frames):
            raise CorruptInputError("encapsulated Pixel Data holds fewer fragments than frames")
        return
    expected = expected_native_length(ds)
    check_declared(expected, what="Pixel Data")
    actual = len(value)
    if actual < expected:
        raise CorruptInputError("Pixel Data is shorter than its attributes imply (truncated)")
    padded = expected + (expected & 1)
    if actual > padded:
        # bytes beyond the image belong to no pixel: they are dropped, never released
        from pydicom.dataelem import DataElement

        ds[0x7FE00010] = DataElement(0x7FE00010, elem.VR or "OW", bytes(value[:expected]) + b"\x00" * (expected & 1))


#: Transfer syntaxes of ISO/IEC 10918 (JPEG), the retired ones included (extended, spectral
#: selection, progressive, hierarchical: .52 to .56 and .58 to .66), whose frames may carry
#: APPn/COM metadata, between scans too.
JPEG_10918 = frozenset(
    {*(f"1.2.840.10008.1.2.4.{n}" for n in range(50, 67)), "1.2.840.10008.1.2.4.70"}
)
#: JPEG-LS lossless and near-lossless (ISO/IEC 14495-1): the same APPn/COM segments.
JPEG_LS = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
#: JPEG 2000 and HTJ2K (ISO/IEC 15444-1 and -15) with pixel data: COM segments of codestreams.
JPEG_2000 = frozenset(
    {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
     "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
     "1.2.840.10008.1.2.4.203"}
)
#: The count a run records, in the manifest, for an object whose frames lost metadata.
STRIPPED_COUNT = {
    **dict.fromkeys(JPEG_10918, "jpeg-frames-stripped"),
    **dict.fromkeys(JPEG_LS, "jpeg-ls-frames-stripped"),
    **dict.fromkeys(JPEG_2000, "jpeg-2000-frames-stripped"),
}


def items(data: bytes) -> list[bytes]:
    """The item values of encapsulated Pixel Data: the Basic Offset Table first, then fragments."""
    out, pos, end = [], 0, len(data)
    while pos + 8 <= end:
        tag = int.from_bytes(data[pos : pos + 4], "little")
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8
        if tag == SEQ_DELIM:
            break
        if tag != ITEM or pos + length > end:
            raise CorruptInputError("encapsulated Pixel Data items are broken or truncated")
        out.append(data[pos : pos + length])
        pos += length
    if not out:
        raise CorruptInputError("encapsulated Pixel Data has no items")
    return out


def _scan_fits(stream: bytes) -> bool:
    """Whether the first scan header of a JPEG stream fits its frame's coding process (ISO/IEC
    10918-1 B.2.3): a sequential scan covers coefficients 0 to 63 without approximation, a
    lossless one names a predictor. Other processes are not judged here."""
    pos, n, process = 2, len(stream), 0
    while pos + 4 <= n:
        if stream[pos] != 0xFF:
            return False
        code = stream[pos + 1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if code == 0x01 or 0xD0 <= code <= 0xD7:
            pos += 2
            continue
        length = (stream[pos + 2] << 8) | stream[pos + 3]
        payload = stream[pos + 4 : pos + 2 + length]
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            process = code
        elif code == 0xDA:
            ns = payload[0] if payload else 0
            if len(payload) < 4 + 2 * ns:
                return False
            ss, se, ahal = payload[1 + 2 * ns : 4 + 2 * ns]
            if process in (0xC0, 0xC1, 0xC9):
                return ss == 0 and se == 63 and ahal == 0
            if process in (0xC3, 0xCB):
                return 1 <= ss <= 7 and se == 0 and ahal >> 4 == 0
            return True
        pos += 2 + length
    return False


def jpeg_scan_defects(ds: Dataset, transfer_syntax: str) -> int:
    """How many frames of JPEG (ISO/IEC 10918) Pixel Data have a scan header that does not fit
    their coding process (pydicom's ``JPEG-lossy.dcm``: a sequential scan ending at coefficient
    0), which decoders read differently if at all: a well-formed copy of the instance is better.
    Raises :class:`CorruptInputError` when the streams do not parse."""
    if transfer_syntax not in JPEG_10918 or 0x7FE00010 not in ds:
        return 0
    from ..pixels.jpeg_meta import split_frames

    value = ds.get_item(0x7FE00010).value
    return sum(not _scan_fits(frame) for frame in split_frames(b"".join(items(bytes(value))[1:])))


def _jpeg_2000_frames(fragments: list[bytes], expected: int) -> list[tuple[bytes, bytes]]:
    """(original, stripped) of each JPEG 2000 frame: one per fragment, all fragments for a single
    frame, or else the codestreams walked one after another over the joined fragments."""
    from ..pixels.j2k_meta import clean_frame, strip_comments

    if len(fragments) == expected or expected == 1:
        frames = fragments if len(fragments) == expected else [b"".join(fragments)]
        out = []
        for frame in frames:
            clean, removed = clean_frame(frame)
            out.append((frame, clean if removed else frame))
        return out
    joined, pos, pairs = b"".join(fragments), 0, []
    while pos < len(joined):
        if joined[pos] == 0x00:  # padding of an odd fragment
            pos += 1
            continue
        clean, _, end = strip_comments(joined, pos, last=False)
        pairs.append((joined[pos:end], clean))
        pos = end
    return pairs


def strip_jpeg_frames(ds: Dataset, transfer_syntax: str) -> int:
    """Remove the metadata of every JPEG, JPEG-LS, JPEG 2000 or HTJ2K frame of encapsulated Pixel
    Data: APPn/COM segments (:mod:`medcloak.pixels.jpeg_meta`), codestream COM segments
    (:mod:`medcloak.pixels.j2k_meta`). The coded image data are copied byte for byte.

    JPEG frames are found by parsing JPEG structure over the joined fragments (never by a trailing
    FFD9); JPEG 2000 frames are fragments, or codestreams walked by their tile-part lengths. When
    anything was removed, the Pixel Data is re-encapsulated one fragment per frame with a rebuilt
    Basic Offset Table, and an Extended Offset Table (now wrong) is removed. Returns the number of
    frames changed (:data:`STRIPPED_COUNT` names the count a run records); raises
    :class:`CorruptInputError` when the streams do not parse or their count differs from Number of
    Frames, and :class:`~medcloak.errors.UnsupportedInputError` for a codestream whose structure
    cannot be rewritten safely.
    """
    if transfer_syntax not in STRIPPED_COUNT or 0x7FE00010 not in ds:
        return 0
    from pydicom.dataelem import DataElement
    from pydicom.encaps import encapsulate

    from ..pixels.jpeg_meta import streams

    value = ds.get_item(0x7FE00010).value
    fragments = items(bytes(value))[1:]
    expected = _int(ds, "NumberOfFrames", 1) or 1
    if transfer_syntax in JPEG_2000:
        pairs = _jpeg_2000_frames(fragments, expected)
    else:
        pairs = list(streams(b"".join(fragments), ls=transfer_syntax in JPEG_LS))
    if len(pairs) != expected:
        raise CorruptInputError(f"encapsulated Pixel Data holds {len(pairs)} codestreams for {expected} frames")
    stripped = [clean for _, clean in pairs]
    changed = sum(original != clean for original, clean in pairs)
    if changed:
        elem = DataElement(0x7FE00010, "OB", encapsulate(stripped, has_bot=True))
        elem.is_undefined_length = True
        ds[0x7FE00010] = elem
        for tag in (0x7FE00001, 0x7FE00002):  # Extended Offset Table and its lengths
            if tag in ds:
                del ds[tag]
    return changed
