"""A released volume's three maximum intensity projections for the report's pixel review
(:mod:`medcloak.report.pixels`), read slab by slab so that a large volume is never held whole.

What is decided here is how each format's first volume is read, and that no more than
:data:`SLAB_VOXELS` voxels of it (plus the three projections) are in memory at once:

* NIfTI, Analyze, MINC and FreeSurfer MGH/MGZ: nibabel's array proxy, sliced along the third
  axis, a slab of whole slices at a time (the slowest axis on disk: each slab is one contiguous
  read); a gzipped file through one handle kept open, read once from start to end, never
  inflated again for each slab.
* NRRD and NHDR: the released header parsed by :mod:`medcloak.formats.nrrd`, the data file
  (attached after the header, or the detached one beside it) read in slabs, a gzip-encoded one
  inflated as it is read and never past the end of the first volume.
* ECAT 7 (``.v``) and Philips PAR/REC: nibabel's readers on file objects the report closes, the
  first frame (ECAT) or the first volume (PAR/REC, its REC beside its PAR) read at once: these
  readers cannot slice less than a frame. A PAR whose images are not stored in volume order
  would make nibabel read the whole REC: it is pictured only when the whole REC is within
  :data:`~medcloak.report.thumbs.MAX_VOXELS`.

The projections are taken along the volume's stored axes and then turned to the subject's
axes (nibabel's orientation of the affine): a projection along an axis does not depend on the
order of the voxels along the others. A volume whose affine places no voxel in space (zero
voxel sizes: some ECAT files) is shown in its stored axes with unit voxels. A volume of more
than :data:`~medcloak.report.thumbs.MAX_VOXELS` voxels is not pictured (its reading would take
the report's time); the caller lists it with the reason.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import CorruptInputError, UnsupportedInputError

#: the most voxels of a volume read into memory at once (4 M: 16 MB as float32)
SLAB_VOXELS = 1 << 22
#: compressed bytes read at a time from a gzip-encoded NRRD data file
IN_CHUNK = 256 << 10
#: suffixes nibabel reads through a file handle it can keep open
_KEEP_OPEN = (".nii", ".nii.gz", ".hdr", ".hdr.gz")

#: a volume's (first three) shape, its affine, and its slabs: arrays of whole slices along the
#: third axis, in order (the argument is the slices wanted per slab)
Source = tuple[tuple[int, int, int], np.ndarray, Callable[[int], Iterator[Any]]]


def projections(path: Path) -> list[Any]:
    """The three projections (:class:`~medcloak.report.thumbs.Picture`) of the released volume
    at ``path``: sagittal (anterior right), coronal and axial (the subject's right on the
    right), superior or anterior up, one window for the three, each with square pixels of the
    finest voxel size."""
    with _open(path) as (shape, affine, slabs):
        m0, m1, m2 = mips(shape, slabs(max(1, SLAB_VOXELS // max(1, shape[0] * shape[1]))))
    return pictures((m0, m1, m2), affine)


def mips(shape: tuple[int, int, int], slabs: Iterator[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The maximum intensity projections along the stored axes 0, 1 and 2 of a volume of
    ``shape`` given as slabs of whole slices along axis 2 (complex values as their modulus,
    NaN and infinities as 0)."""
    n0, n1, n2 = shape
    m0 = np.zeros((n1, n2), np.float32)
    m1 = np.zeros((n0, n2), np.float32)
    m2: np.ndarray | None = None
    z = 0
    for slab in slabs:
        arr = np.asanyarray(slab)
        floating = arr.dtype.kind in "fc"  # integers hold no NaN nor infinity
        if np.iscomplexobj(arr):
            arr = np.abs(arr)
        arr = arr.astype(np.float32)  # a copy of the slab's: changed in place below
        if floating:
            np.nan_to_num(arr, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        k = arr.shape[2]
        if arr.shape[:2] != (n0, n1) or z + k > n2:
            raise CorruptInputError("a slab of the volume of another shape than its header's")
        m0[:, z:z + k] = arr.max(axis=0)
        m1[:, z:z + k] = arr.max(axis=1)
        top = arr.max(axis=2)
        m2 = top if m2 is None else np.maximum(m2, top)
        z += k
    if z != n2 or m2 is None:
        raise CorruptInputError("the volume holds fewer slices than its header says")
    return m0, m1, m2


def pictures(stored: tuple[np.ndarray, np.ndarray, np.ndarray], affine: np.ndarray) -> list[Any]:
    """The stored axes' projections turned to the subject's axes, windowed together, as pictures."""
    import nibabel as nib

    from ..pixels.qc import ras_zooms
    from .thumbs import Picture

    affine = np.asarray(affine, float)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        affine = np.eye(4)  # no placement in space: the stored axes, unit voxels
    ornt = nib.orientations.io_orientation(affine)
    ras = [np.empty(0)] * 3
    for axis, mip in enumerate(stored):
        # the projection along stored axis ``axis`` as a volume one voxel thick along it, turned
        # as the volume is; the axis it lands on is the subject's axis it projects along
        turned = nib.orientations.apply_orientation(np.expand_dims(mip, axis), ornt)
        target = int(ornt[axis, 0])
        ras[target] = turned.squeeze(axis=target)
    zooms = ras_zooms(affine)
    mips = [m.T[::-1] for m in ras]
    spacing = [(zooms[1], zooms[2]), (zooms[0], zooms[2]), (zooms[0], zooms[1])]  # (across, down)
    values = np.concatenate([m[:: max(1, m.shape[0] // 128), :: max(1, m.shape[1] // 128)].ravel() for m in mips])
    lo, hi = (float(v) for v in np.percentile(values, (0.5, 99.5)))
    out = []
    finest = max(float(min(zooms)), 1e-3)
    for mip, (dx, dy) in zip(mips, spacing):
        grey = np.clip((mip - lo) * (255.0 / max(hi - lo, 1e-6)), 0, 255).astype(np.uint8)
        # the panel's (width, height) in pixels of the finest voxel size: the caller resizes to it
        space = (max(1, round(mip.shape[1] * dx / finest)), max(1, round(mip.shape[0] * dy / finest)))
        out.append(Picture(np.ascontiguousarray(grey), space))
    return out


def _check(shape: tuple[int, ...], what: str = "volume") -> tuple[int, int, int]:
    from .thumbs import MAX_VOXELS

    if len(shape) < 3 or min(shape[:3]) < 1:
        raise UnsupportedInputError(f"not a volume (shape {tuple(shape)})")
    if math.prod(shape[:3]) > MAX_VOXELS:
        raise UnsupportedInputError(f"{what} of {math.prod(shape[:3])} voxels too large to project")
    return int(shape[0]), int(shape[1]), int(shape[2])


@contextmanager
def _open(path: Path) -> Iterator[Source]:
    low = path.name.lower()
    if low.endswith((".nrrd", ".nhdr")):
        with _nrrd(path) as source:
            yield source
    elif low.endswith(".v"):
        with _ecat(path) as source:
            yield source
    elif low.endswith(".par"):
        with _parrec(path) as source:
            yield source
    else:
        with _nibabel(path) as source:
            yield source


def _whole(arr: Any) -> Callable[[int], Iterator[Any]]:
    """The slabs of a volume read at once: itself."""
    return lambda _k: iter([arr])


@contextmanager
def _nibabel(path: Path) -> Iterator[Source]:
    import nibabel as nib

    low = path.name.lower()
    if low.endswith((".mgh", ".mgz")):  # on a handle of the report's: nibabel's MGH reader leaves its own open
        with _mgh(path) as img:
            yield _proxy_source(img)
        return
    keep = {"keep_file_open": True} if low.endswith(_KEEP_OPEN) else {}
    img = nib.load(str(path), **keep)
    try:
        yield _proxy_source(img)
    finally:
        opener = getattr(img.dataobj, "_opener", None)  # the handle keep_file_open kept
        if opener is not None:
            opener.close_if_mine()


@contextmanager
def _mgh(path: Path) -> Iterator[Any]:
    import gzip

    from nibabel.freesurfer.mghformat import MGHHeader, MGHImage

    from ..formats.mgh import USED

    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        with gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw as fh:
            # the header's used fields alone: nibabel's own reader seeks past the voxels to the scan
            # parameters after them, which in a gzip stream means inflating it all, twice
            head = MGHHeader(fh.read(USED))
            yield MGHImage(MGHImage.ImageArrayProxy(fh, head), head.get_affine(), head)


def _proxy_source(img: Any) -> Source:
    """The slabs of an image of nibabel's through its array proxy: whole slices along the third
    axis, the first volume's."""
    shape = _check(img.shape)
    tail = (0,) * (len(img.shape) - 3)

    def slabs(k: int) -> Iterator[Any]:
        for z in range(0, shape[2], k):
            yield img.dataobj[(slice(None), slice(None), slice(z, min(z + k, shape[2]))) + tail]

    return shape, img.affine, slabs


@contextmanager
def _ecat(path: Path) -> Iterator[Source]:
    from nibabel import ecat
    from nibabel.fileholders import FileHolder

    with open(path, "rb") as fh:
        img = ecat.EcatImage.from_file_map({"header": FileHolder(fileobj=fh), "image": FileHolder(fileobj=fh)})
        shape = _check(img.shape, "frame")
        frame = img.dataobj[(slice(None),) * 3 + (0,) * (len(img.shape) - 3)]
        yield shape, img.affine, _whole(frame)


@contextmanager
def _parrec(path: Path) -> Iterator[Source]:
    from nibabel import parrec
    from nibabel.fileholders import FileHolder

    rec = next((p for p in (path.with_suffix(".REC"), path.with_suffix(".rec")) if p.is_file()), None)
    if rec is None:
        raise CorruptInputError("the PAR has no REC beside it")
    with open(path, encoding="latin-1") as head, open(rec, "rb") as image:
        img = parrec.PARRECImage.from_file_map({"header": FileHolder(fileobj=head), "image": FileHolder(fileobj=image)})
        shape = _check(img.shape)
        order = np.asarray(img.header.get_sorted_slice_indices())
        if (order != np.arange(order.size)).any():  # nibabel then reads the whole REC
            _check((math.prod(img.shape), 1, 1), "REC stored out of volume order,")
        yield shape, img.affine, _whole(img.dataobj[(slice(None),) * 3 + (0,) * (len(img.shape) - 3)])


@contextmanager
def _nrrd(path: Path) -> Iterator[Source]:
    from ..formats.nrrd import _TYPES, MAX_HEADER, Nrrd, affine_of, parse_header

    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER)
    end = head.find(b"\n\n")
    attached = not path.name.lower().endswith(".nhdr")
    if attached and end < 0:
        raise CorruptInputError("the NRRD header does not end")
    header_end = end + 2 if attached else len(head)
    kept, _removed, data_file, byte_skip, _line_skip = parse_header(head[:header_end].decode("ascii", "replace"))
    try:
        dtype = np.dtype(_TYPES[kept["type"].lower()])
        shape = tuple(int(v) for v in kept["sizes"].split())
        encoding = kept["encoding"].lower()
    except (KeyError, ValueError):
        raise CorruptInputError("the NRRD header has no usable type, sizes or encoding") from None
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder("<" if kept.get("endian", "little").lower() == "little" else ">")
    if len(shape) not in (3, 4) or encoding not in ("raw", "gzip", "gz"):
        raise UnsupportedInputError("only raw or gzip NRRD volumes of 3 or 4 axes are pictured")
    n0, n1, n2 = _check(shape)
    affine = affine_of(Nrrd(kept, {}, dtype, shape, b"", not attached, encoding != "raw", ""))
    if data_file is None:
        target, offset = path, header_end
    else:
        if Path(data_file).name != data_file or not (path.parent / data_file).is_file():
            raise CorruptInputError("the NRRD data file is not a file beside its header")
        target, offset = path.parent / data_file, max(0, byte_skip)
    with open(target, "rb") as fh:
        fh.seek(offset)
        read = _Inflater(fh).read if encoding != "raw" else _exact(fh)

        def slabs(k: int) -> Iterator[Any]:
            for z in range(0, n2, k):
                kk = min(k, n2 - z)
                yield np.frombuffer(read(n0 * n1 * kk * dtype.itemsize), dtype).reshape((n0, n1, kk), order="F")

        yield (n0, n1, n2), np.eye(4) if affine is None else affine, slabs


def _exact(fh: BinaryIO) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        data = fh.read(n)
        if len(data) != n:
            raise CorruptInputError("the volume's data is shorter than its header says (truncated)")
        return data

    return read


class _Inflater:
    """A gzip stream's inflated bytes, read as asked for: never more inflated than asked for
    (plus one input chunk's worth buffered)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.z = zlib.decompressobj(31)

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self.z.unconsumed_tail:
                src = self.z.unconsumed_tail
            else:
                src = self.fh.read(IN_CHUNK)
                if not src:
                    raise CorruptInputError("the volume's gzip data ends before its header's size (truncated)")
            try:
                out += self.z.decompress(src, n - len(out))
            except zlib.error:
                raise CorruptInputError("the volume's gzip data is damaged") from None
            if self.z.eof and len(out) < n:
                raise CorruptInputError("the volume's gzip data ends before its header's size (truncated)")
        return bytes(out)
