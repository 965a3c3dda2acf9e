"""Codestream metadata stripping of JPEG-LS and JPEG 2000 frames, in memory, against references
measured in the same run: a plain copy of the same bytes (the floor of any in-memory pass) and a
decode of the frame with imagecodecs (what any reader of the frame pays at least once; the JPEG-LS
figure includes one strip, as CharLS refuses the planted APPn before EOI).

Builds a smooth random 16-bit image (default 2048x2048), encodes it losslessly as JPEG-LS
(imagecodecs, CharLS) and JPEG 2000 (imagecodecs, OpenJPEG), plants a COM segment (and, in
JPEG-LS, an APPn before EOI), then times :func:`medcloak.pixels.jpeg_meta.parse_stream` with
``ls=True`` and :func:`medcloak.pixels.j2k_meta.strip_comments`. The machine may be shared: take
the best of ``--repeat`` runs, and read the ratios, not the MB/s.

Run: ``python benchmarks/bench_codestream_strip.py [--size 2048] [--repeat 20]``
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import best


def _seg(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + (len(payload) + 2).to_bytes(2, "big") + payload


def main() -> int:
    import imagecodecs

    from medcloak.pixels.j2k_meta import strip_comments
    from medcloak.pixels.jpeg_meta import parse_stream

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    small = rng.integers(0, 4096, (args.size // 16, args.size // 16)).astype(np.float32)
    pixels = np.kron(small, np.ones((16, 16), np.float32)).astype(np.uint16)
    pixels += rng.integers(0, 16, pixels.shape, dtype=np.uint16)  # some noise: realistic sizes

    ls = imagecodecs.jpegls_encode(pixels)
    ls = ls[:2] + _seg(0xFE, b"operator QUENNELL") + ls[2:-2] + _seg(0xEB, b"note") + ls[-2:]
    j2k = imagecodecs.jpeg2k_encode(pixels, level=0, codecformat="J2K", reversible=True)
    sot = j2k.index(b"\xff\x90\x00\x0a")
    j2k = j2k[:sot] + _seg(0x64, b"\x00\x01operator QUENNELL") + j2k[sot:]
    print(f"image: {args.size}x{args.size} 16-bit, best of {args.repeat}; in memory (no file system)")
    for name, data, strip, decode in (
        # CharLS refuses a segment before EOI: the stripped stream is decoded
        ("JPEG-LS", ls, lambda: parse_stream(ls, 0, True), lambda: imagecodecs.jpegls_decode(parse_stream(ls, 0, True)[0])),
        ("JPEG 2000", j2k, lambda: strip_comments(j2k), lambda: imagecodecs.jpeg2k_decode(j2k)),
    ):
        strip()  # first call: imports
        mb = len(data) / 1e6
        t_strip = best(strip, args.repeat)
        t_copy = best(lambda: bytearray(data), args.repeat)
        t_decode = best(decode, max(3, args.repeat // 4))
        print(f"{name:<9} {mb:6.1f} MB  strip {mb / t_strip:8.0f} MB/s  strip/copy {t_strip / t_copy:6.1f}x"
              f"  decode/strip {t_decode / t_strip:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
