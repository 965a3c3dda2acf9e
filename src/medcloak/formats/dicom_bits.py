"""Bits of native Pixel Data that hold no pixel value, and the overlays that draw in them.

Bits Stored and High Bit say which bits of each cell of Bits Allocated carry the sample value
(PS3.5 8.1.1). The others once carried overlay planes: the retired overlay-in-pixel-data encoding
(an Overlay Plane whose Overlay Bits Allocated is above 1, with an Overlay Bit Position and no
Overlay Data) draws graphics, sometimes a name, in bit 15 of a 12-bit image. They are not the
image, so every run, whatever its options, makes them canonical in every frame:

- unsigned samples: every bit above High Bit is 0;
- signed samples (two's complement, High Bit the sign bit): every bit above High Bit is a copy of
  the sign bit, the value sign-extended to the whole cell, as pydicom reads it and as most writers
  store it. An object whose bits above High Bit are all 0 is left as it is too (some writers store
  negative samples so); a mixture of the two conventions (a bit of information per negative
  sample) is rewritten sign-extended.

The sample values Bits Stored defines never change (pydicom's ``pixel_array`` is identical), and
an object already canonical keeps its Pixel Data byte for byte (nothing is copied). High Bit must
be Bits Stored - 1 (PS3.3 Image Pixel Description): otherwise the bits that hold the value are in
doubt (pydicom reads the low Bits Stored bits, retired layouts put them higher) and the object is
quarantined rather than guessed at.

An overlay group (60xx) without Overlay Data (60xx,3000) points into Pixel Data (or shows nothing):
it is removed whole, in every transfer syntax. Encapsulated Pixel Data holds what its codec
stores; its bits are left to the codec (see ``docs/formats.md``).

:func:`high_bits_fault` is the same judgement as a check of a written object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..errors import CorruptInputError, UnsupportedInputError
from .dicom_pixels import _int, expected_native_length

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

BIG_ENDIAN = "1.2.840.10008.1.2.2"
OVERLAY_DATA = 0x3000


def overlays_in_pixel_data(ds: Dataset) -> list[int]:
    """The top-level overlay groups (0x6000 to 0x601E) that have no Overlay Data."""
    groups = {int(t) >> 16 for t in ds._dict if int(t) >> 24 == 0x60 and not (int(t) >> 16) & 0xE1}
    return sorted(g for g in groups if (g << 16 | OVERLAY_DATA) not in ds._dict)


def remove_overlays_in_pixel_data(ds: Dataset) -> int:
    """Remove every overlay group of :func:`overlays_in_pixel_data`; returns how many."""
    groups = overlays_in_pixel_data(ds)
    for group in groups:
        for tag in [int(t) for t in ds._dict if int(t) >> 16 == group]:
            del ds[tag]
    return len(groups)


def _layout(ds: Dataset, transfer_syntax: str) -> tuple[int, int, bool] | None:
    """(Bits Allocated, Bits Stored, signed) of native Pixel Data with bits outside its samples,
    else ``None``; raises when High Bit does not say where the samples are."""
    from pydicom.uid import UID

    if 0x7FE00010 not in ds or UID(transfer_syntax).is_encapsulated:
        return None
    bits = _int(ds, "BitsAllocated")
    if bits is None:
        return None  # Pixel Data's own check refuses it
    stored = _int(ds, "BitsStored", bits) or bits
    high = _int(ds, "HighBit", stored - 1)
    if high is None or stored > bits or high != stored - 1:
        raise CorruptInputError(
            f"High Bit {high} with Bits Stored {stored} and Bits Allocated {bits}: which bits hold "
            "the pixel values is in doubt (High Bit must be Bits Stored - 1)"
        )
    if stored == bits or bits == 1:
        return None
    if bits not in (8, 16, 32, 64):
        raise UnsupportedInputError(f"native Pixel Data of {bits} bits allocated: its unused bits cannot be checked")
    return bits, stored, (_int(ds, "PixelRepresentation", 0) or 0) == 1


def _frames(ds: Dataset, transfer_syntax: str, bits: int) -> Iterator[tuple[int, np.ndarray]]:
    """(byte offset, read-only cells) of each frame of native Pixel Data."""
    value = ds.get_item(0x7FE00010).value
    count = _int(ds, "NumberOfFrames", 1) or 1
    size = expected_native_length(ds) // count  # Bits Allocated is a multiple of 8 here
    dtype = np.dtype(f"{'>' if transfer_syntax == BIG_ENDIAN else '<'}u{bits // 8}")
    for i in range(count):
        yield i * size, np.frombuffer(value, dtype, size // dtype.itemsize, i * size)


def _state(cells: np.ndarray, stored: int, signed: bool) -> tuple[bool, bool]:
    """(a bit above High Bit is set, a signed sample is not sign-extended) for one frame, told
    by the extremes alone (reductions, no temporary the size of the frame): no bit above High Bit
    is set when the largest cell, read unsigned, is below 2**Bits Stored; every sample is
    sign-extended when every cell, read signed, is in the range of Bits Stored."""
    set_above = int(cells.max()) >> stored != 0
    if not signed:
        return set_above, False
    values = cells.view(cells.dtype.str.replace("u", "i"))
    half = 1 << (stored - 1)
    return set_above, int(values.min()) < -half or int(values.max()) >= half


def _canonical(cells: np.ndarray, stored: int, signed: bool) -> np.ndarray:
    """A copy of one frame with its bits above High Bit made canonical."""
    out = cells.copy()
    if signed:
        shift = out.dtype.itemsize * 8 - stored
        values = out.view(out.dtype.str.replace("u", "i"))
        np.left_shift(values, shift, out=values)
        np.right_shift(values, shift, out=values)  # arithmetic: copies of the sign bit
    else:
        np.bitwise_and(out, (1 << stored) - 1, out=out)
    return out


def _dirty(ds: Dataset, transfer_syntax: str) -> tuple[tuple[int, int, bool] | None, list[int]]:
    """The layout and the frames whose bits above High Bit must change (see the module)."""
    layout = _layout(ds, transfer_syntax)
    if layout is None:
        return None, []
    bits, stored, signed = layout
    states = [_state(cells, stored, signed) for _, cells in _frames(ds, transfer_syntax, bits)]
    if signed:
        if not any(extended for _, extended in states) or not any(above for above, _ in states):
            return layout, []  # sign-extended throughout, or 0 throughout
        return layout, [i for i, (_, extended) in enumerate(states) if extended]
    return layout, [i for i, (above, _) in enumerate(states) if above]


def clear_high_bits(ds: Dataset, transfer_syntax: str) -> int:
    """Make the bits above High Bit of native Pixel Data canonical in every frame (see the
    module), in place; returns the number of frames changed. Pixel Data is rebuilt only when a
    frame changes: the unchanged frames are joined from the original bytes, each changed one
    from a copy of that frame alone."""
    layout, dirty = _dirty(ds, transfer_syntax)
    if layout is None or not dirty:
        return 0
    from pydicom.dataelem import DataElement

    bits, stored, signed = layout
    elem = ds.get_item(0x7FE00010)
    value = elem.value
    view = memoryview(value)
    parts: list[object] = []
    end = 0
    chosen = set(dirty)
    for i, (offset, cells) in enumerate(_frames(ds, transfer_syntax, bits)):
        end = offset + cells.nbytes
        parts.append(memoryview(_canonical(cells, stored, signed)) if i in chosen else view[offset:end])
    parts.append(view[end:])  # the padding byte, if any
    ds[0x7FE00010] = DataElement(0x7FE00010, elem.VR or "OW", b"".join(parts))  # type: ignore[arg-type]
    return len(dirty)


def high_bits_fault(ds: Dataset, transfer_syntax: str) -> str | None:
    """What a released object must not show here: bits above High Bit of native Pixel Data
    that are not canonical, an overlay that points into Pixel Data, or a High Bit that does not
    say where the samples are; ``None`` when there is none."""
    groups = overlays_in_pixel_data(ds)
    if groups:
        return f"overlay group {groups[0]:04X} has no Overlay Data: it points into Pixel Data"
    try:
        layout, dirty = _dirty(ds, transfer_syntax)
    except (CorruptInputError, UnsupportedInputError) as exc:
        return str(exc)
    except ValueError:  # fail closed: bits that cannot be looked at are not vouched for
        return "native Pixel Data is shorter than its attributes imply"
    if dirty:
        what = "neither 0 nor copies of the sign bit" if layout and layout[2] else "set"
        return f"bits above High Bit are {what} in {len(dirty)} frame{'s' if len(dirty) > 1 else ''} of native Pixel Data"
    return None
