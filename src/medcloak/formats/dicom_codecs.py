"""A pydicom decoding plug-in for JPEG lossless process 14 (1.2.840.10008.1.2.4.57 and .70)
with imagecodecs' lossless JPEG decoder (jpegsof3, BSD), added only when pydicom has no plug-in
of its own for them here (pylibjpeg-libjpeg and GDCM are not dependencies: GPL, or not on PyPI
for every platform). Without a decoder, the burned-in text scan and the QC pictures of such
objects cannot run and a run quarantines them; with it, they are scanned and redacted like the
other lossless syntaxes (:mod:`medcloak.formats.dicom_lossless`).

The frame is given to pydicom as the decoder returns it: stored values (the bit pattern of signed
data, which pydicom turns into signed values by Bits Stored), samples interleaved, no colour
transform (process 14 has none).
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

JPEG_LOSSLESS = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
DECODER_DEPENDENCIES = {uid: ("imagecodecs>=2024.1",) for uid in JPEG_LOSSLESS}
_LABEL = "medcloak-imagecodecs"
_LOCK = threading.Lock()


def is_available(uid: str) -> bool:
    return uid in JPEG_LOSSLESS and importlib.util.find_spec("imagecodecs") is not None


def decode_frame(src: bytes, runner: Any) -> bytearray:
    import imagecodecs

    arr = imagecodecs.jpegsof3_decode(src)
    runner.set_option("planar_configuration", 0)
    return bytearray(arr.tobytes())


def register() -> None:
    """Add the plug-in to pydicom's JPEG lossless decoders that have no plug-in available
    (once; under a lock, as pydicom's own ``add_plugin`` is not thread-safe)."""
    from pydicom.pixels import get_decoder

    with _LOCK:
        for uid in JPEG_LOSSLESS:
            decoder = get_decoder(uid)
            if decoder.is_available or not is_available(uid):
                continue
            decoder.add_plugin(_LABEL, (__name__, "decode_frame"))
