"""Region redaction of DICOM Pixel Data, routed by transfer syntax, with the same boxes on the
chosen frames (region templates) or each frame's own boxes (burned-in text found frame by frame).

- Native (uncompressed) Pixel Data: the samples in the boxes are overwritten in place (native
  YBR_FULL_422 a pair of pixels at a time, as the pair shares its chroma).
- JPEG baseline and extended (1.2.840.10008.1.2.4.50/.51): each frame is redacted in the
  compressed domain (:mod:`medcloak.pixels.jpeg_redact`), frames in parallel threads; the Pixel
  Data is re-encapsulated one fragment per frame with a rebuilt Basic Offset Table, and an
  Extended Offset Table is removed.
- Lossless compressed syntaxes with an encoder here (RLE Lossless; JPEG-LS and JPEG 2000 lossless
  when their plug-ins are installed): decoded, redacted and re-encoded losslessly in the same
  syntax, the result decoded again and compared. JPEG-LS near-lossless is re-encoded with NEAR=0,
  which keeps every decoded pixel exactly.
- JPEG lossless process 14 (.57, .70) and HTJ2K lossless (.201, .202), which pydicom cannot
  encode: frame by frame with imagecodecs, in :mod:`medcloak.formats.dicom_lossless`.
- Anything else (lossy JPEG 2000 and HTJ2K, whose re-encoding is never exact; the other JPEG
  processes; video): no exact route, so
  :class:`UnsupportedInputError`; during a run the object is quarantined. Unredacted pixels are
  never released.

Fills are painted in the colour space of the samples at hand, so that black, grey and white show
as such after a standard decode: YCbCr (colour differences at mid value) for YBR_FULL samples, RGB
for RGB samples and for JPEG 2000's YBR_RCT/YBR_ICT, which the decoder turns into RGB; JPEG
frames as DICOM readers decode them (:func:`medcloak.pixels.jpeg_redact.dicom_ycc`). Black is
the highest value of MONOCHROME1.
"""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import CorruptInputError, MissingDependencyError, UnsupportedInputError, UsageError
from .dicom_lossless import ROUTED
from .dicom_pixels import _int, check_decoded, items

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

JPEG_SEQUENTIAL = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"})
NATIVE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})
#: lossless syntaxes re-encoded in the same syntax, and the pydicom plug-in each needs
REENCODABLE = {
    "1.2.840.10008.1.2.5": None,  # RLE Lossless: pydicom's own encoder
    "1.2.840.10008.1.2.4.80": "jpeg_ls",  # JPEG-LS Lossless (pyjpegls)
    # JPEG-LS near-lossless, re-encoded with NEAR=0: the decoded pixels are kept exactly
    "1.2.840.10008.1.2.4.81": "jpeg_ls",
    "1.2.840.10008.1.2.4.90": "openjpeg",  # JPEG 2000 Lossless (pylibjpeg-openjpeg)
}
_PACKAGES = {"jpeg_ls": "pyjpegls", "openjpeg": "pylibjpeg-openjpeg"}

Box = tuple[int, int, int, int]


def _frames_selected(frames: Sequence[int] | None, count: int) -> list[int]:
    if frames is None:
        return list(range(count))
    chosen = sorted(set(frames))
    if any(f < 0 or f >= count for f in chosen):
        raise UsageError(f"frame numbers run from 1 to {count}")
    return chosen


def _levels(ds: Dataset, fill: str) -> tuple[int, int]:
    """(level of a grey or first component, level of colour differences) in stored values."""
    bits = _int(ds, "BitsStored", None) or _int(ds, "BitsAllocated", 8) or 8
    signed = (_int(ds, "PixelRepresentation", 0) or 0) == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    mid = (low + high + 1) // 2
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric == "MONOCHROME1":  # displayed black is the highest value
        low, high = high, low
    level = {"black": low, "grey": mid, "white": high}[fill]
    return level, mid


#: colour spaces of a decoded array whose second and third samples are colour differences, which
#: a standard decode (pydicom's, a viewer's) converts to RGB
YCC = frozenset({"YBR_FULL", "YBR_FULL_422"})


def _paint(ds: Dataset, arr: np.ndarray, boxes: Sequence[Box], fill: str, chosen: list[int], space: str,
           pattern: int = 0) -> int:
    """Fill ``boxes`` (clipped) of the ``chosen`` frames of ``arr`` (frames, rows, columns,
    samples) in place. ``space`` is the colour space ``arr`` is in (not always the Photometric
    Interpretation: JPEG 2000 decoders undo YBR_RCT and YBR_ICT, giving RGB); in YBR_FULL the
    colour differences get the mid value, so that black is black once converted to RGB.
    ``pattern``: where ``arr`` holds signed values as their bit pattern of this many bits (a JPEG
    lossless stream), the levels are written as that pattern. Returns the boxes that hit."""
    level, mid = _levels(ds, fill)
    if pattern:
        level, mid = level & ((1 << pattern) - 1), mid & ((1 << pattern) - 1)
    chroma = space in YCC
    rows, cols = arr.shape[1], arr.shape[2]
    touched = 0
    for x0, y0, x1, y1 in boxes:
        x1, y1 = min(x1, cols), min(y1, rows)
        if x0 >= x1 or y0 >= y1:
            continue
        touched += 1
        for s in range(arr.shape[3]):
            arr[chosen, y0:y1, x0:x1, s] = mid if (chroma and s > 0) else level
    return touched


def _paint_pairs(ds: Dataset, arr: np.ndarray, boxes: Sequence[Box], fill: str, chosen: list[int]) -> int:
    """:func:`_paint` for native YBR_FULL_422, ``arr`` (frames, rows, pairs, Y1 Y2 Cb Cr) and
    boxes in pairs of columns."""
    level, mid = _levels(ds, fill)
    touched = 0
    for x0, y0, x1, y1 in boxes:
        x1, y1 = min(x1, arr.shape[2]), min(y1, arr.shape[1])
        if x0 >= x1 or y0 >= y1:
            continue
        touched += 1
        arr[chosen, y0:y1, x0:x1, :2] = level
        arr[chosen, y0:y1, x0:x1, 2:] = mid
    return touched


def _native(ds: Dataset, ts: str, per: list[list[Box]], fill: str) -> int:
    from pydicom.dataelem import DataElement

    from .dicom_pixels import expected_native_length

    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    bits = _int(ds, "BitsAllocated")
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    count = _int(ds, "NumberOfFrames", 1) or 1
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    planar = (_int(ds, "PlanarConfiguration", 0) or 0) == 1 and samples > 1
    pairs = photometric == "YBR_FULL_422" and samples == 3 and not planar and cols % 2 == 0
    if bits not in (8, 16, 32) or ((photometric.endswith("_422") or photometric.endswith("_420")) and not pairs):
        raise UnsupportedInputError(f"native Pixel Data of {bits}-bit {photometric} cannot be redacted")
    elem = ds.get_item(0x7FE00010)
    raw = bytes(elem.value)
    length = expected_native_length(ds)
    signed = (_int(ds, "PixelRepresentation", 0) or 0) == 1
    big = ts == "1.2.840.10008.1.2.2"
    dtype = np.dtype(f"{'>' if big else '<'}{'i' if signed else 'u'}{bits // 8}")
    arr = np.frombuffer(raw[:length], dtype).copy()
    if pairs:
        # two pixels share their chroma, stored Y1 Y2 Cb Cr: painted a pair at a time, boxes
        # rounded outward to even columns
        arr = arr.reshape(count, rows, cols // 2, 4)
        touched = sum(
            _paint_pairs(ds, arr, [(x0 // 2, y0, (x1 + 1) // 2, y1) for x0, y0, x1, y1 in boxes], fill, chosen)
            for boxes, chosen in _groups(per)
        )
    else:
        arr = arr.reshape((count, samples, rows, cols) if planar else (count, rows, cols, samples))
        # planar data painted through a view with the samples last
        view = arr.transpose(0, 2, 3, 1) if planar else arr
        touched = sum(_paint(ds, view, boxes, fill, chosen, photometric) for boxes, chosen in _groups(per))
    if touched:
        data = arr.tobytes() + raw[length:]
        ds[0x7FE00010] = DataElement(0x7FE00010, elem.VR or "OW", data)
    return touched


def _encapsulate(ds: Dataset, frames: list[bytes]) -> None:
    from pydicom.dataelem import DataElement
    from pydicom.encaps import encapsulate

    elem = DataElement(0x7FE00010, "OB", encapsulate(frames, has_bot=True))
    elem.is_undefined_length = True
    ds[0x7FE00010] = elem
    for tag in (0x7FE00001, 0x7FE00002):  # Extended Offset Table and its lengths: now wrong
        if tag in ds:
            del ds[tag]


def _jpeg(ds: Dataset, per: list[list[Box]], fill: str, threads: int) -> int:
    from ..pixels.jpeg_meta import split_frames
    from ..pixels.jpeg_redact import redact_jpeg_detailed

    value = ds.get_item(0x7FE00010).value
    streams = split_frames(b"".join(items(bytes(value))[1:]))
    count = len(per)
    if len(streams) != count:
        raise CorruptInputError(f"encapsulated JPEG holds {len(streams)} streams for {count} frames")
    chosen = [i for i, boxes in enumerate(per) if boxes]

    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric == "MONOCHROME1":  # displayed black is the highest value
        fill = {"black": "white", "white": "black"}.get(fill, fill)

    def one(i: int) -> tuple[int, bytes, int]:
        result = redact_jpeg_detailed(streams[i], per[i], fill, photometric)
        return i, result.data, result.blocks

    out = list(streams)
    total = 0
    if threads > 1 and len(chosen) > 1:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(one, chosen))
    else:
        results = [one(i) for i in chosen]
    for i, data, blocks in results:
        out[i] = data
        total += blocks
    if total:
        _encapsulate(ds, out)
    return total


def _reencode(ds: Dataset, ts: str, per: list[list[Box]], fill: str) -> int:
    from pydicom.pixels import get_decoder

    _need_plugin(ts)  # before decoding, which would fail less clearly
    # raw: no colour conversion by pydicom (YBR_FULL stays YBR_FULL), so re-encoding keeps every
    # sample; the codec's own transform is undone all the same (JPEG 2000's RCT/ICT give RGB), and
    # the decoder says which space the array is in: the fill is painted in that space
    ds.pixel_array_options(raw=True)  # for the comparison after re-encoding
    arr, meta = get_decoder(ts).as_array(ds, raw=True)
    space = str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", ""))).strip()
    count = len(per)
    rows, cols = arr.shape[-3:-1] if arr.ndim == 4 or (arr.ndim == 3 and count == 1) else arr.shape[-2:]
    shaped = arr.reshape(count, rows, cols, -1).copy()
    touched = sum(_paint(ds, shaped, boxes, fill, chosen, space) for boxes, chosen in _groups(per))
    if not touched:
        return 0
    encode_frames(ds, ts, [shaped[i] if shaped.shape[3] > 1 else shaped[i, :, :, 0] for i in range(count)])
    return touched


def _need_plugin(ts: str) -> None:
    plugin = REENCODABLE[ts]
    if plugin and importlib.util.find_spec(plugin) is None:
        raise MissingDependencyError(f"re-encoding this transfer syntax needs the {_PACKAGES[plugin]} package")


def encode_frames(ds: Dataset, ts: str, frames: Sequence[np.ndarray]) -> None:
    """Encapsulate ``frames`` (stored values) as ``ds``'s Pixel Data in the lossless syntax
    ``ts`` (JPEG-LS near-lossless with NEAR=0), then decode it again and compare: a route that
    would not give back every sample exactly raises instead of releasing."""
    encode = _encoder(ds, ts)
    _encapsulate(ds, [encode(frame) for frame in frames])
    check = ds.pixel_array
    if not np.array_equal(check.reshape(-1), np.stack(frames).reshape(-1)):
        raise CorruptInputError("re-encoded Pixel Data does not decode to the pixels it was given")


def reencode_frames(ds: Dataset, ts: str, planes: dict[int, np.ndarray]) -> None:
    """Replace frames of ``ds``'s Pixel Data (``planes``: stored values by frame index), each
    encoded alone in the lossless syntax ``ts``, the other frames keeping their bytes; each new
    frame is then decoded again and compared (a defaced slice or frame:
    :mod:`medcloak.formats.dicom_series`)."""
    from .dicom_lossless import _frames, check_frames

    encode = _encoder(ds, ts)
    out = _frames(ds, _int(ds, "NumberOfFrames", 1) or 1)
    for index, values in planes.items():
        out[index] = encode(values)
    _encapsulate(ds, out)
    check_frames(ds, ts, planes)


def _encoder(ds: Dataset, ts: str):  # type: ignore[no-untyped-def]
    """What encodes one frame of ``ds`` (stored values) in the lossless syntax ``ts``; a frame its
    encoder cannot write raises."""
    from pydicom.pixels import get_encoder

    _need_plugin(ts)
    kwargs = _encode_kwargs(ds)
    if ts == "1.2.840.10008.1.2.4.81":
        kwargs["jls_error"] = 0
    encoder = get_encoder(ts)

    def encode(frame: np.ndarray) -> bytes:
        try:
            return encoder.encode(np.ascontiguousarray(frame), **kwargs)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            raise UnsupportedInputError(
                f"this pixel layout cannot be re-encoded in its transfer syntax ({type(exc).__name__})") from None

    return encode


def _encode_kwargs(ds: Dataset) -> dict[str, object]:
    return {
        "rows": _int(ds, "Rows"), "columns": _int(ds, "Columns"),
        "samples_per_pixel": _int(ds, "SamplesPerPixel", 1),
        "bits_allocated": _int(ds, "BitsAllocated"), "bits_stored": _int(ds, "BitsStored", None) or _int(ds, "BitsAllocated"),
        "pixel_representation": _int(ds, "PixelRepresentation", 0),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")).strip(),
        "planar_configuration": _int(ds, "PlanarConfiguration", 0) or 0,
        "number_of_frames": 1,
    }


def _groups(per: list[list[Box]]) -> list[tuple[list[Box], list[int]]]:
    """The frames of ``per`` (one list of boxes per frame) grouped by their boxes, frames without
    any left out: frames that share their boxes are painted in one step."""
    groups: dict[tuple[Box, ...], list[int]] = {}
    for i, boxes in enumerate(per):
        if boxes:
            groups.setdefault(tuple(boxes), []).append(i)
    return [(list(boxes), chosen) for boxes, chosen in groups.items()]


def redact_dataset(
    ds: Dataset,
    transfer_syntax: str,
    boxes: Sequence[Box],
    fill: str = "black",
    frames: Sequence[int] | None = None,
    threads: int = 1,
    frame_boxes: Sequence[Sequence[Box]] | None = None,
) -> int:
    """Redact ``boxes`` on the chosen frames (0-based; all by default) of ``ds`` in place, or,
    given ``frame_boxes`` (one list per frame, in place of ``boxes`` and ``frames``), each frame's
    own boxes (burned-in text found frame by frame). Returns how much was redacted (boxes or
    blocks; 0 when the boxes miss the image). Frames without a box keep their bytes."""
    from ..pixels.jpeg_redact import FILLS, _check_boxes

    if fill not in FILLS:
        raise UsageError(f"fill must be one of {', '.join(FILLS)}")
    if frame_boxes is not None:
        per = [_check_boxes(b) for b in frame_boxes]
        if 0x7FE00010 not in ds or not any(per):
            return 0
        count = _int(ds, "NumberOfFrames", 1) or 1
        if len(per) != count:
            raise UsageError(f"{len(per)} lists of boxes for {count} frames")
    else:
        checked = _check_boxes(boxes)
        if 0x7FE00010 not in ds or not checked:
            return 0
        count = _int(ds, "NumberOfFrames", 1) or 1
        chosen = set(_frames_selected(frames, count))
        per = [checked if i in chosen else [] for i in range(count)]
    check_decoded(ds)  # before any frame is decoded: redaction may hold them all
    if transfer_syntax in NATIVE:
        return _native(ds, transfer_syntax, per, fill)
    if transfer_syntax in JPEG_SEQUENTIAL:
        return _jpeg(ds, per, fill, threads)
    if transfer_syntax in REENCODABLE:
        return _reencode(ds, transfer_syntax, per, fill)
    if transfer_syntax in ROUTED:
        from .dicom_lossless import redact_lossless

        return redact_lossless(ds, transfer_syntax, per, fill)
    raise UnsupportedInputError(
        "Pixel Data in this transfer syntax has no exact redaction route (JPEG lossless processes "
        "other than 14, lossy JPEG 2000, lossy HTJ2K, video): not released"
    )
