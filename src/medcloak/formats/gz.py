"""The gzip codec of volumes (``.nii.gz``, ``.hdr.gz``/``.img.gz``): ISA-L (the ``isal`` package)
when it is installed, else the standard library's zlib.

Gzip dominates the I/O of a released volume: at level 1 (nibabel's default too) zlib compresses a
1 mm head of 14 MB in 0.3-0.5 s, ISA-L's level 1 in 0.05 s, within 3 % of zlib's size, and
decompresses it 1.6-3x faster. Both write standard gzip (RFC 1952) that every reader takes; the
bytes differ between the two, so a release is byte-identical for the same secret on machines that
both have ISA-L or both lack it. The output is compressed from the array's own memory, part by
part: no copy of the volume is made to compress it.

Reading is bounded (see :mod:`medcloak.limits`): a stream is inflated in chunks with a running
count of its output, refused (:class:`~medcloak.errors.LimitError`) as soon as it passes the
run's limit (:func:`~medcloak.limits.inflate_limit` of its stored size: the expansion ratio, for
output beyond its floor of 1 GB, and the per-object ceiling), so a gzip bomb costs the limit's
time at most and none of its memory.
A caller that knows how many bytes it needs (a volume's header and declared data) keeps only
those: the chunks are written into one buffer of that size, the rest of the stream is inflated
(to check its CRC and count it) and dropped. Every member of a multi-member file counts towards
one limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from .. import limits
from ..errors import CorruptInputError

#: gzip level of released volumes: the fastest full compressor (nibabel writes level 1 too)
LEVEL = 1
#: bytes handed to the compressor at a time (a view of the array, not a copy)
CHUNK = 4 << 20
#: compressed bytes fed to the decompressor at a time, and inflated bytes it may return per call
IN_CHUNK = 256 << 10
OUT_CHUNK = 1 << 20


def _isal() -> Any:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def codec() -> str:
    """``isal`` or ``zlib``: which one this process compresses with."""
    return "zlib" if _isal() is None else "isal"


def compress(parts: Iterable[bytes | memoryview]) -> bytes:
    """One gzip member (no name, mtime 0) of the concatenated ``parts``."""
    lib = _isal() or zlib
    co = lib.compressobj(LEVEL, lib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    out = []
    for part in parts:
        view = memoryview(part).cast("B")
        for start in range(0, len(view), CHUNK):
            out.append(co.compress(view[start:start + CHUNK]))
    out.append(co.flush())
    return b"".join(out)


def _broken(exc: BaseException | None = None) -> CorruptInputError:
    why = f" ({type(exc).__name__})" if exc is not None else " (truncated)"
    return CorruptInputError(f"the gzip stream is broken{why}")


def _errors() -> tuple[type[BaseException], ...]:
    lib = _isal()
    return (OSError, EOFError, ValueError, zlib.error) + ((lib.error,) if lib is not None else ())


def _members(data: bytes | bytearray | memoryview, in_chunk: int = 0, out_chunk: int = 0) -> Iterator[bytes]:
    """The inflated bytes of every member of a gzip stream, in chunks of at most ``out_chunk``
    (:data:`OUT_CHUNK`) from ``in_chunk`` (:data:`IN_CHUNK`) stored bytes at a time; a broken or
    truncated member, or trailing bytes that are neither a member nor zero padding, raise
    :class:`CorruptInputError`."""
    lib = _isal() or zlib
    in_chunk, out_chunk = in_chunk or IN_CHUNK, out_chunk or OUT_CHUNK
    view = memoryview(data).cast("B")
    n, pos = len(view), 0
    while True:
        inflater = lib.decompressobj(31)  # wbits 31: one gzip member, its CRC and size checked
        tail: bytes | memoryview = b""
        while not inflater.eof:
            if not tail:
                if pos >= n:
                    out = inflater.decompress(b"", out_chunk)  # output held back by the last call
                    if not out:
                        raise _broken()
                    yield out
                    continue
                tail = view[pos:pos + in_chunk]
                pos += len(tail)
            out = inflater.decompress(tail, out_chunk)
            tail = inflater.unconsumed_tail
            if out:
                yield out
        pos -= len(inflater.unused_data)  # input fed beyond the member's end
        rest = view[pos:]
        if rest[:2] == b"\x1f\x8b":
            continue
        if bytes(rest).strip(b"\x00"):
            raise CorruptInputError("the gzip stream is broken (bytes after its end)")
        return  # the end, or zero padding (as gzip readers allow)


def decompress(data: bytes | bytearray | memoryview, *, what: str = "the gzip stream",
               keep: int | None = None) -> bytes | memoryview:
    """The uncompressed bytes of a gzip file (all its members), inflated in chunks.

    Beyond the run's :func:`~medcloak.limits.inflate_limit` of ``len(data)`` a
    :class:`~medcloak.errors.LimitError` naming ``what`` and the limit is raised at once.
    ``keep``: only the first ``keep`` bytes are returned (fewer when the stream is shorter), as a
    view of one buffer they are written into as they come (no zero-filling, no joining: the
    memory of the declared size and one chunk); the rest is inflated, counted and dropped. A
    broken stream is a :class:`CorruptInputError`."""
    stored = len(memoryview(data).cast("B"))
    bound = limits.inflate_limit(stored)
    total = 0
    buf = None
    if keep is not None:
        import numpy as np

        buf = np.empty(keep, np.uint8)
    parts: list[bytes] = []
    chunks = _members(data)
    while True:
        try:
            out = next(chunks, None)
        except CorruptInputError:
            raise
        except _errors() as exc:
            raise _broken(exc) from None
        if out is None:
            break
        size = len(out)
        if buf is not None:
            take = max(0, min(size, len(buf) - total))
            if take:
                buf[total:total + take] = memoryview(out)[:take]
        else:
            parts.append(out)
        total += size
        if bound and total > bound:
            raise limits.refuse_inflated(what, stored)
    if buf is not None:
        return memoryview(buf[:total] if total < len(buf) else buf)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def head(data: bytes | bytearray | memoryview, size: int) -> bytes:
    """The first ``size`` inflated bytes of a gzip stream (fewer when it is shorter), without
    inflating the rest: what a header is read from before its declared sizes are checked."""
    out = []
    got = 0
    try:
        for chunk in _members(data, 4096, max(size, 1)):  # a header: a few KB read, not a chunk
            out.append(chunk)
            got += len(chunk)
            if got >= size:
                break
    except CorruptInputError:
        if not got:
            raise
    except _errors() as exc:
        raise _broken(exc) from None
    return b"".join(out)[:size]
