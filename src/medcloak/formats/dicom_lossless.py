"""Redaction routes for the lossless syntaxes pydicom has no encoder for: JPEG lossless
(1.2.840.10008.1.2.4.57, process 14, any predictor; .70, process 14 selection value 1) and
HTJ2K lossless (.201; .202, RPCL with TLM).

Each frame with a box is decoded, filled, re-encoded losslessly in the same syntax, and the new
frame decoded again by a decoder other than the encoder and compared exactly with the filled
image; frames without a box keep their bytes (re-encapsulated one fragment per frame). The codecs
are imagecodecs' (BSD): JPEG lossless is written by libjpeg-turbo (predictor 1 for .70, the
frame's own predictor for .57) and read by its independent lossless decoder (jpegsof3); HTJ2K is
written by OpenJPH (reversible, RPCL, with TLM) and read by OpenJPEG. The encoders' own marker
segments (OpenJPH's version COM; APPn but JFIF and Adobe) are removed before the frame is
compared, so the released stream carries no comment. A missing codec, a layout the encoder
cannot write, or any mismatch raises: the object is quarantined with the reason, never released
unredacted. A defaced slice of a series, or the defaced frames of a multi-frame object, are
written the same way (:func:`rewrite_frames`), then also decoded by pydicom and compared with the
values the defacer gave. HTJ2K lossy (.203) and lossy JPEG 2000 stay without a route (re-encoding them is
never exact).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CorruptInputError, MissingDependencyError, UnsupportedInputError
from .dicom_pixels import _int

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

JPEG_LOSSLESS = frozenset({"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"})
HTJ2K_LOSSLESS = frozenset({"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202"})
ROUTED = JPEG_LOSSLESS | HTJ2K_LOSSLESS

Box = tuple[int, int, int, int]
#: what the codecs raise: their own errors (RuntimeError), bad layouts (ValueError, TypeError), and
#: an imagecodecs built without the codec (AttributeError, ImportError)
_CODEC_ERRORS = (RuntimeError, ValueError, TypeError, OverflowError, AttributeError, ImportError)


def _codecs():  # type: ignore[no-untyped-def]
    if importlib.util.find_spec("imagecodecs") is None:
        raise MissingDependencyError("redacting JPEG lossless and HTJ2K lossless Pixel Data needs the imagecodecs package")
    import imagecodecs

    return imagecodecs


def _frames(ds: Dataset, count: int) -> list[bytes]:
    from pydicom.encaps import generate_frames

    value = ds.get_item(0x7FE00010).value
    try:
        frames = list(generate_frames(bytes(value), number_of_frames=count))
    except (ValueError, KeyError) as exc:
        raise CorruptInputError(f"encapsulated Pixel Data cannot be split into frames ({type(exc).__name__})") from None
    if len(frames) != count:
        raise CorruptInputError(f"encapsulated Pixel Data holds {len(frames)} frames for {count}")
    return frames


def _jpeg_header(frame: bytes) -> tuple[int, int]:
    """(sample precision of the SOF3, predictor of the first scan) of a JPEG lossless frame."""
    sof = frame.find(b"\xff\xc3")
    sos = frame.find(b"\xff\xda")
    if frame[:2] != b"\xff\xd8" or sof < 0 or sos < 0 or sos + 5 >= len(frame):
        raise CorruptInputError("JPEG lossless frame without SOF3 or scan header")
    ns = frame[sos + 4]
    pos = sos + 5 + 2 * ns
    if pos >= len(frame) or sof + 4 >= len(frame):
        raise CorruptInputError("truncated JPEG lossless scan header")
    return frame[sof + 4], frame[pos]


def _decode(ic, ts: str, frame: bytes) -> np.ndarray:  # type: ignore[no-untyped-def]
    try:
        if ts in JPEG_LOSSLESS:
            return np.asarray(ic.jpegsof3_decode(frame))
        return np.asarray(ic.jpeg2k_decode(frame))
    except _CODEC_ERRORS as exc:
        raise CorruptInputError(f"a Pixel Data frame does not decode ({type(exc).__name__})") from None


def _encode(ic, ds: Dataset, ts: str, image: np.ndarray, precision: int, predictor: int) -> bytes:  # type: ignore[no-untyped-def]
    from ..pixels.j2k_meta import clean_frame
    from ..pixels.jpeg_meta import strip_jpeg_metadata

    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    try:
        if ts in JPEG_LOSSLESS:
            kwargs: dict[str, object] = {"lossless": True, "predictor": 1 if ts.endswith(".70") else predictor, "bitspersample": precision}
            if image.ndim == 3:
                kwargs.update(colorspace="rgb", outcolorspace="rgb")  # samples kept as they are
            return strip_jpeg_metadata(ic.jpeg8_encode(image, **kwargs))
        rgb = photometric == "YBR_RCT"  # the reversible colour transform, as the original had
        out = ic.htj2k_encode(image, reversible=True, rgb=rgb, tlm=ts.endswith(".202"))
    except _CODEC_ERRORS as exc:
        raise UnsupportedInputError(f"this pixel layout cannot be re-encoded in its transfer syntax ({type(exc).__name__})") from None
    clean, _removed = clean_frame(bytes(out))
    if ts.endswith(".202"):
        cod = clean.find(b"\xff\x52")
        if cod < 0 or clean[cod + 5] != 2 or clean.find(b"\xff\x55") < 0:  # RPCL and TLM
            raise UnsupportedInputError("the HTJ2K encoder did not write RPCL with TLM: not released")
    return clean


def redact_lossless(ds: Dataset, ts: str, per: Sequence[Sequence[Box]], fill: str) -> int:
    """Fill each frame's boxes (``per``: one list per frame) in ``ds``'s Pixel Data in place,
    re-encoding only the frames a box hits. Returns the boxes that hit (0: nothing changed)."""
    from .dicom_redact import _encapsulate, _paint

    ic = _codecs()
    count = len(per)
    frames = _frames(ds, count)
    signed = (_int(ds, "PixelRepresentation", 0) or 0) == 1
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    space = "RGB" if photometric in ("YBR_RCT", "YBR_ICT") else photometric
    if ts in HTJ2K_LOSSLESS and photometric == "YBR_ICT":
        raise UnsupportedInputError("HTJ2K with the irreversible colour transform is not lossless: not released")
    out = list(frames)
    touched = 0
    for i, boxes in enumerate(per):
        if not boxes:
            continue
        frame = frames[i]
        precision, predictor = _jpeg_header(frame) if ts in JPEG_LOSSLESS else (0, 0)
        image = _decode(ic, ts, frame).copy()
        rows, cols = image.shape[0], image.shape[1]
        if (rows, cols) != (_int(ds, "Rows"), _int(ds, "Columns")):
            raise CorruptInputError("a Pixel Data frame's size differs from Rows and Columns")
        # a signed frame decoded as unsigned: the stream holds the bit pattern
        pattern = (precision or _int(ds, "BitsStored", 16) or 16) if signed and image.dtype.kind == "u" else 0
        hit = _paint(ds, image.reshape(1, rows, cols, -1), boxes, fill, [0], space, pattern)
        if not hit:
            continue
        out[i] = _reencode(ic, ds, ts, image, precision, predictor)
        touched += hit
    if touched:
        _encapsulate(ds, out)
    return touched


def _reencode(ic, ds: Dataset, ts: str, image: np.ndarray, precision: int, predictor: int) -> bytes:  # type: ignore[no-untyped-def]
    """``image`` encoded in ``ts`` (the original frame's precision and predictor for JPEG
    lossless), decoded again and compared exactly: raises on any difference."""
    encoded = _encode(ic, ds, ts, image, precision, predictor)
    if not np.array_equal(_decode(ic, ts, encoded), image):
        raise CorruptInputError("re-encoded Pixel Data does not decode to the pixels it was given")
    return encoded


def rewrite_frames(ds: Dataset, ts: str, planes: dict[int, np.ndarray]) -> None:
    """Replace frames of ``ds``'s Pixel Data (``planes``: new stored values of one sample by
    frame index, as pydicom decodes them: signed where Pixel Representation is 1), each encoded in
    ``ts`` as its original frame was (its precision and predictor for JPEG lossless; RPCL with
    TLM for .202), decoded again by the route's decoder and compared, then decoded by pydicom and
    compared with its values (:func:`check_frames`); the other frames keep their bytes. A defaced
    slice of a series, or the defaced frames of a multi-frame object, are written so
    (:mod:`medcloak.formats.dicom_series`)."""
    from .dicom_redact import _encapsulate

    ic = _codecs()
    frames = _frames(ds, _int(ds, "NumberOfFrames", 1) or 1)
    out = list(frames)
    for index, values in planes.items():
        frame = frames[index]
        precision, predictor = _jpeg_header(frame) if ts in JPEG_LOSSLESS else (0, 0)
        old = _decode(ic, ts, frame)
        if old.shape != values.shape:
            raise CorruptInputError("a Pixel Data frame's size differs from Rows and Columns")
        wide = values.astype(np.int64)
        if old.dtype.kind == "u" and values.dtype.kind == "i":  # the stream holds the bit pattern
            wide &= (1 << (precision or _int(ds, "BitsStored", 16) or 16)) - 1
        image = wide.astype(old.dtype)
        if not np.array_equal(image.astype(np.int64), wide):
            raise UnsupportedInputError("the new values do not fit the frame's sample type: not released")
        out[index] = _reencode(ic, ds, ts, image, precision, predictor)
    _encapsulate(ds, out)
    check_frames(ds, ts, planes)


def check_frames(ds: Dataset, ts: str, planes: dict[int, np.ndarray]) -> None:
    """Decode each frame of ``planes`` from ``ds``'s Pixel Data as a reader will (pydicom) and
    compare it with the values it was given: raises on any difference."""
    from pydicom.pixels import get_decoder

    single = (_int(ds, "NumberOfFrames", 1) or 1) == 1
    for index, values in planes.items():
        try:
            # a single frame as pydicom's pixel_array gives it (the decoder's options as set)
            again = ds.pixel_array if single else get_decoder(ts).as_array(ds, index=index)[0]
        except _CODEC_ERRORS as exc:
            raise CorruptInputError(f"re-encoded Pixel Data does not decode ({type(exc).__name__})") from None
        again = np.asarray(again)
        if again.size != values.size or not np.array_equal(again.reshape(values.shape), values):
            raise CorruptInputError("re-encoded Pixel Data does not decode to the pixels it was given")
