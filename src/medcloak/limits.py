"""What one object may cost: the limits of a run, and the checks readers make against them
before they allocate or inflate anything.

An archive's folders are not curated, and one crafted file (a volume whose header declares
gigabytes of zeros, a deflated DICOM that inflates a thousandfold) must not take a worker or a
machine down. Every reader checks what a file *declares* (a volume's shape times its data type,
a frame's rows x columns x samples x frames, a slide's tiles) against:

- the file's own size: data stored uncompressed cannot be larger than the file that holds it;
  compressed data cannot expand beyond :attr:`Limits.max_ratio` (1:200 by default: gzip and
  deflate of real images stay far below; zeros reach 1:1000) once it is larger than
  :attr:`Limits.ratio_floor` (1 GB: brain masks and label maps, mostly zeros, gzip at 1:190 to
  1:290, and a bomb that stops at 1 GB costs no more than an ordinary large object);
- the per-object ceiling :attr:`Limits.max_object_bytes` (``--max-object-size``).

A refusal is a :class:`~medcloak.errors.LimitError` (a quarantine) whose reason names the limit
and the option that raises it; it costs milliseconds, as nothing was inflated.

The limits of the task in progress are a context variable, set by the engine around each task
(:func:`applied`), so that readers deep in a format's code read them with :func:`current`
without each call passing them along; outside a run the defaults apply.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import LimitError, UsageError

#: default expansion bound of compressed data (gzip, deflate): inflated bytes per stored byte
MAX_RATIO = 200
#: compressed data that inflates to at most this many bytes is never refused for its ratio
RATIO_FLOOR = 1 << 30
#: default ceiling of one object's declared size when the machine's memory is not known
MAX_OBJECT_BYTES = 4 << 30
#: default seconds one object may take (``--object-timeout``): about 20 times the slowest
#: legitimate objects measured (defacing a 2 mm head on a loaded 2-core machine, 80 s), and a
#: 10 GB slide copied at 10 MB/s from a slow network file system (1000 s)
TIMEOUT = 1800.0


@dataclass(frozen=True)
class Limits:
    """What one object may cost (see the module's docstring); ``0`` turns a limit off."""

    #: bytes an object may declare (pixels, a volume's voxels, inflated data)
    max_object_bytes: int = MAX_OBJECT_BYTES
    #: inflated bytes per stored byte of compressed data
    max_ratio: float = MAX_RATIO
    #: inflated bytes below which the ratio does not apply
    ratio_floor: int = RATIO_FLOOR
    #: seconds one object may take (``--object-timeout``); 0: no limit
    timeout: float = 0.0


_CURRENT: contextvars.ContextVar[Limits] = contextvars.ContextVar("medcloak_limits", default=Limits())


def current() -> Limits:
    """The limits of the task in progress (the defaults outside a run)."""
    return _CURRENT.get()


@contextlib.contextmanager
def applied(limits: Limits) -> Iterator[Limits]:
    """Make ``limits`` :func:`current` within the block."""
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``2G``, ``500M``, ``1.5GB``, ``750MiB`` or ``4096`` (binary units:
    1K is 1024 bytes); ``0`` turns the limit off. Raises ValueError for anything else."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _UNITS and t[-1:] else ""
    number = float(t[: len(t) - len(unit)].strip() or "nan")
    if not number >= 0 or number == float("inf"):
        raise ValueError(text)
    return int(number * _UNITS[unit])


def default_object_bytes(memory: int, sharers: int) -> int:
    """The default per-object ceiling: a worker's share of ``memory`` (the machine's, or its
    cgroup's) among the ``sharers`` processes that do objects at once, what each local worker's
    data is held to (``RLIMIT_DATA``, :mod:`medcloak.pool`): an object that declares more could
    not be done anyway, and is refused before anything is allocated."""
    return max(1, memory // max(1, sharers))


def check_options(max_object_size: int | None, max_expansion: float, object_timeout: float,
                  given: tuple[str, str] | None = None) -> None:
    """Refuse (:class:`UsageError`) limits a run cannot take: a negative size, a ratio below 1
    (but 0: no limit), a time that is negative or not finite. ``given``: the ratio and the time
    as the user wrote them, for the message."""
    import math

    shown = given or (f"{max_expansion:g}", f"{object_timeout:g}")
    if max_object_size is not None and max_object_size < 0:
        raise UsageError("--max-object-size takes a size such as 2G, 500M or 0 (no limit)")
    if not (max_expansion == 0 or (max_expansion >= 1 and math.isfinite(max_expansion))):
        raise UsageError(f"--max-expansion takes a ratio of at least 1 (200 allows 1:200) or 0 (no limit), "
                         f"not {shown[0]!r}")
    if not (object_timeout >= 0 and math.isfinite(object_timeout)):
        raise UsageError(f"--object-timeout takes a number of seconds or 0 (no limit), not {shown[1]!r}")


def read_file(path: Path, what: str) -> bytes:
    """The whole file at ``path``, its size first held against the per-object ceiling (a
    volume, a sidecar, a slide's index: refused before it is read)."""
    check_declared(path.stat().st_size, what=what)
    return path.read_bytes()


def _size(n: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def check_declared(declared: int, *, what: str, stored: int | None = None, compressed: bool = False,
                   limits: Limits | None = None) -> None:
    """Refuse (:class:`LimitError`) an object that declares ``declared`` bytes of ``what`` (for
    example ``"voxel data"``) held in ``stored`` bytes of the file: more than stored when
    uncompressed, more than the expansion ratio allows when ``compressed``, or more than the
    per-object ceiling. ``stored`` ``None``: only the ceiling is checked."""
    lim = limits or current()
    if declared < 0:
        raise LimitError(f"{what}: a negative size is declared")
    if lim.max_object_bytes and declared > lim.max_object_bytes:
        raise LimitError(f"{what}: {_size(declared)} declared, beyond the per-object limit of "
                         f"{_size(lim.max_object_bytes)} (--max-object-size)")
    if stored is None:
        return
    if not compressed:
        if declared > stored:
            raise LimitError(f"{what}: {_size(declared)} declared, but the file holds only {_size(stored)}")
    elif lim.max_ratio and declared > max(lim.max_ratio * max(stored, 1), lim.ratio_floor):
        raise LimitError(f"{what}: {_size(declared)} declared from {_size(stored)} compressed, an expansion "
                         f"beyond 1:{lim.max_ratio:g} (--max-expansion)")


def inflate_limit(stored: int, limits: Limits | None = None) -> int:
    """How many bytes ``stored`` bytes of compressed data may inflate to (0: no limit): what a
    streaming inflater stops at, with :func:`refuse_inflated` as its reason."""
    lim = limits or current()
    ratio = max(int(lim.max_ratio * max(stored, 1)), lim.ratio_floor) if lim.max_ratio else 0
    bounds = [b for b in (lim.max_object_bytes, ratio) if b]
    return min(bounds) if bounds else 0


def refuse_inflated(what: str, stored: int, limits: Limits | None = None) -> LimitError:
    """The error of compressed data that inflated beyond :func:`inflate_limit` (raise it)."""
    lim = limits or current()
    limit = inflate_limit(stored, lim)
    if lim.max_object_bytes and limit == lim.max_object_bytes:
        return LimitError(f"{what}: inflates beyond the per-object limit of {_size(limit)} (--max-object-size)")
    if limit == lim.ratio_floor:
        return LimitError(f"{what}: inflates beyond {_size(limit)}, more than 1:{lim.max_ratio:g} of its "
                          f"{_size(stored)} (--max-expansion)")
    return LimitError(f"{what}: inflates beyond 1:{lim.max_ratio:g} of its {_size(stored)} (--max-expansion)")
