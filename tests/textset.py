"""A seeded test set of frames with burned-in text drawn over real medical backgrounds, with the
ground truth of every line, and frames that hold no text at all (issue 13).

How a frame is made (``make_frame(i, seed, size)``; ``make_frames(n)`` is frames 0..n-1; the same
``seed``, ``size`` and fonts give the same frames, pixel for pixel):

1. Backgrounds are real DICOM pixel data, read once per process from the files installed with
   pydicom (its bundled test files) and, when it is installed (it is in the ``test`` extra), with
   pydicom-data (module ``data_store``; read from its folder directly, never through pydicom's
   download fallback). :data:`BACKGROUND_SET` says which set was used. Regions of those files that
   already hold burned-in text (the US screens' headers, a CR side marker, test patterns) are
   cropped away, so a background carries no text of its own. Sources (modality, stored bits,
   photometric): CT 693_UNCI (14-bit signed, kept as 16-bit stored values: HU + 32768, as with a
   rescale intercept of -32768) and CT_small; MR MR2_UNCI and MR-SIEMENS (12-bit), MR_small and
   examples_overlay; CR RG1_UNCI (15-bit, MONOCHROME1) and RG3_UNCI (10-bit, MONOCHROME1); NM
   JPEG2000 (whole body); US ALOKA (two B-mode panes) and US1/examples_rgb_color (B-mode with
   real power Doppler inside graphic boxes); eCT_Supplemental (16-bit); SC/OT image_dfl
   (graphics). Without pydicom-data the bundled files stand in (CT_small, MR_small,
   examples_overlay, JPEG2000, examples_rgb_color, image_dfl), and MONOCHROME1 and 10/15-bit
   frames are made from them (see 3). There is no XA file in either set: XA/RF-like frames are the
   CR and NM sources shown as fluoroscopy screens.
2. Each frame is ``size`` (default 1024 x 768), its background drawn uniformly from the sources
   (stored frames: from those of more than 8 bits; Doppler frames: from the US ones). Its
   layout is ``screen`` (for US, NM and OT, and half of the others: a dark border, levels 0-24
   with faint noise, around a viewport that holds the background resized to fit, as ultrasound
   and fluoroscopy consoles show) or ``full`` (the background resized and tiled by mirroring to
   fill the frame). Backgrounds are resized with bilinear filtering as float values.
3. Representations: ``display`` frames are uint8 2-D, the background windowed to its 1st-99.5th
   percentile; ``rgb`` frames are uint8 H x W x 3 (grey backgrounds repeated over the channels,
   colour ones as they are); ``stored`` frames are uint16 2-D at the source's own bit depth
   (10, 12, 15 or 16 bits; MONOCHROME1 sources stay inverted: bright on screen = low values), the
   text composited in stored values through the inverse of the display window. Without
   pydicom-data, stored frames are the bundled grey sources scaled to 10, 12, 15 or 16 bits, and
   one in two of them inverted as MONOCHROME1.
4. Text frames (5 in 6) get 2-6 lines; about 1 in 8 lines is a known-safe annotation
   (orientation letters, depth, gain, frame rate, a label), the rest identifying: made-up names,
   patient IDs/MRNs, accession numbers, dates in several formats, times, dates of birth, ages,
   institutions. No string is a real person's. Per line, drawn independently from the frame's
   generator: the font (every regular and bold face of the families in :data:`FONT_FAMILIES`
   found by ``fc-list`` or in /usr/share/fonts; when none is found, Pillow's ``load_default(size)``
   alone), the pixel size 7-40 (3 in 10 of 7-9 px, 3 in 10 of 10-14, 1 in 4 of 15-24, the rest
   25-40; the size asked of the font), anti-aliased or not (Pillow ``fontmode = "1"`` for 3 in 10),
   the colour (white, grey; yellow, green, cyan on rgb frames only), the place (``border``: on the
   dark border; ``anatomy``: inside the image area; ``box``: on a filled box of 1-4 px padding;
   ``edge``: touching the frame's edge), 1 in 8 rotated by 90 degrees (either way), 1 in 5 low
   contrast (the text 12-32 display levels of 255 above or below the median of the background
   under it; a low-contrast box is filled with that median). A line that is not low contrast and
   would differ by less than 60 levels from the background under it is drawn black or white
   instead, whichever differs more. A line that does not fit its place (a border too narrow, a
   full-frame layout) goes over the image area. Lines never overlap (boxes kept 8 px apart).
   Some text frames also get a ruler or an ECG trace (below), as real screens do.
5. Ground truth per line (:class:`Line`): ``box`` (x0, y0, x1, y1; ends exclusive) is the
   bounding box of every pixel the glyphs touch (coverage > 0); ``mask`` (the box's shape) holds
   the glyph pixels: coverage >= 1/4 of a pixel (all drawn pixels for non-anti-aliased text).
   Compositing is ``value = background * (1 - coverage) + text * coverage``, in the frame's own
   values. ``contrast`` is how much the text changed its glyph pixels: the median over them of
   the change, in display levels (0-255).
6. Frames without text (1 in 6, in turn): ``anatomy`` (the background alone, either layout),
   ``ruler`` (a depth ruler with major and minor tick marks, a scale bar with end ticks, calliper
   crosses and dotted measurement lines on a screen layout), ``ecg`` (an ECG trace with its
   baseline and a grid strip under the image, green or yellow), ``doppler`` (synthetic flow:
   smooth noise, bicubic from a 24 px grid, thresholded into vessels and jets inside a sector,
   coloured red/blue by its sign or orange/yellow as power Doppler, over a real B-mode
   background; or the real power Doppler of US1; ``Frame.flow`` holds the flow pixels) and
   ``graphics`` (grey wedges and colour bars, circles, cross-hairs, arrows, a sector outline;
   image_dfl's squares when it is the background).

Everything is drawn with numpy and Pillow; ``make_frames(360)`` takes 5-15 s on this shared
2-core machine (the files are read once, about 0.5 s, then 13-40 ms a frame with the load). :func:`small_set` is
24 frames of 512 x 384 for unit tests. The measures (coverage, false area, breakdowns) are in
``tests/textmetrics.py``; ``python tests/textset.py OUTDIR [N]`` writes PNG previews of frames
0..N-1 with their lines outlined (:func:`preview`).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: font families used when installed (regular and bold faces); others are never picked
FONT_FAMILIES = (
    "DejaVu Sans", "DejaVu Sans Mono", "DejaVu Serif", "Nimbus Sans", "Nimbus Sans Narrow",
    "Nimbus Mono PS", "Nimbus Roman", "URW Gothic", "Noto Mono", "Noto Sans Mono", "Liberation Sans",
    "Liberation Mono", "Liberation Serif", "FreeSans", "FreeMono",
)
#: the faces the benchmark's figures are measured with: Debian's fonts-dejavu-core,
#: fonts-liberation, fonts-urw-base35 and fonts-noto-mono (``.ci/run`` installs them). Another
#: machine's fonts draw other frames: the figures move by several thousandths (seed 0: 0.983-0.991
#: of the glyph pixels with 6-28 faces against 0.995 with these), so a figure is only compared with
#: one measured on the same faces (:func:`font_set` says which)
REFERENCE_FACES = 24
#: a comma-separated list of FONT_FAMILIES in this environment variable keeps only those
#: families (to measure the detector on another mix of fonts without uninstalling any)
FONTS_ENV = "MEDCLOAK_TEXTSET_FONTS"
SIZE_BUCKETS = ((7, 9), (10, 14), (15, 24), (25, 40))
COLOURS = {
    "white": (255, 255, 255), "grey": (180, 180, 180), "yellow": (255, 255, 0),
    "green": (0, 255, 0), "cyan": (0, 255, 255),
}
#: glyph pixels: at least this share of the pixel covered by the glyph
GLYPH_COVERAGE = 0.25
TEXT_FREE_KINDS = ("anatomy", "ruler", "ecg", "doppler", "graphics")


@dataclass
class Line:
    """One line of text drawn on a frame, with its ground truth."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1, ends exclusive
    mask: np.ndarray  # bool, the box's shape: glyph pixels
    text: str
    identifying: bool
    size: int  # pixel size asked of the font
    font: str
    antialias: bool
    colour: str
    place: str  # border, anatomy, box, edge
    rotated: bool
    low_contrast: bool
    contrast: float = 0.0  # measured, display levels

    @property
    def glyph_pixels(self) -> int:
        return int(self.mask.sum())


@dataclass
class Frame:
    image: np.ndarray
    kind: str  # "text" or one of TEXT_FREE_KINDS
    source: str
    representation: str  # display, rgb, stored
    bits: int
    photometric: str
    lines: list[Line] = field(default_factory=list)
    flow: np.ndarray | None = None  # colour Doppler flow pixels

    @property
    def has_text(self) -> bool:
        return bool(self.lines)


# ---------------------------------------------------------------------------------- backgrounds
@dataclass
class _Source:
    name: str
    modality: str
    values: np.ndarray  # float32, 2-D grey (stored values) or H x W x 3 (0-255)
    bits: int  # stored bits of the grey values (8 for colour)
    photometric: str  # MONOCHROME1 / MONOCHROME2 / RGB
    bmode: bool = False  # ultrasound B-mode (for synthetic Doppler)
    doppler: bool = False  # already holds real colour flow
    window: tuple[float, float] | None = None  # display window (1st-99.5th percentile), once


def _read(path: str, frame: int = 0) -> tuple[np.ndarray, object]:
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            arr = arr[frame]
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
            arr = arr.astype(np.float32) / (257.0 if arr.dtype.itemsize > 1 else 1.0)
    return np.asarray(arr), ds


def _crop(a: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    if box is None:
        return a
    x0, y0, x1, y1 = box
    return a[y0:y1, x0:x1]


@functools.cache
def _sources() -> tuple[tuple[_Source, ...], str]:
    import pydicom

    bundled = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
    try:
        import data_store  # pydicom-data

        extra = os.path.join(os.path.dirname(data_store.__file__), "data")
        if not os.path.isdir(extra):
            extra = None
    except ImportError:
        extra = None

    out: list[_Source] = []

    def add(folder, fname, modality, crop=None, *, stored=None, grey=False, step=1, **kw):
        path = os.path.join(folder, fname)
        if not os.path.exists(path):
            return
        try:
            arr, ds = _read(path)
        except (RuntimeError, ValueError, NotImplementedError, ImportError, OSError):  # no decoder here: the source is left out
            return
        arr = _crop(arr, crop)[::step, ::step]
        phot = str(ds.PhotometricInterpretation)
        if arr.ndim == 3:
            vals = arr.astype(np.float32)
            if grey:
                vals = vals.mean(axis=2)
                out.append(_Source(fname, modality, vals, 8, "MONOCHROME2", **kw))
            else:
                out.append(_Source(fname, modality, vals, 8, "RGB", **kw))
            return
        vals = arr.astype(np.float32)
        bits = int(ds.BitsStored)
        if stored == "offset16":  # signed CT as unsigned 16-bit stored values
            vals = vals + 32768.0
            bits = 16
        elif int(ds.get("PixelRepresentation", 0)) == 1 and vals.min() < 0:
            vals = vals - vals.min()
        out.append(_Source(fname, modality, vals, bits, phot if phot.startswith("MONO") else "MONOCHROME2", **kw))

    if extra:
        add(extra, "693_UNCI.dcm", "CT", stored="offset16")
        add(extra, "MR2_UNCI.dcm", "MR", step=2)
        add(extra, "MR-SIEMENS-DICOM-WithOverlays.dcm", "MR")
        add(extra, "RG1_UNCI.dcm", "CR", step=2)
        add(extra, "RG3_UNCI.dcm", "CR", (0, 0, 1760, 1300), step=2)  # below: an "R" marker
        add(extra, "eCT_Supplemental.dcm", "CT")
        add(extra, "gdcm-US-ALOKA-16.dcm", "US", (40, 100, 330, 410), grey=True, bmode=True)
        add(extra, "gdcm-US-ALOKA-16.dcm", "US", (345, 80, 600, 410), grey=True, bmode=True)
        add(extra, "US1_UNCI.dcm", "US", (50, 108, 590, 336), doppler=True)
        add(extra, "JPEG2000_UNC.dcm", "NM", (0, 0, 256, 1024))
    add(bundled, "CT_small.dcm", "CT")
    add(bundled, "MR_small.dcm", "MR")
    add(bundled, "examples_overlay.dcm", "MR")
    if not extra:
        add(bundled, "JPEG2000.dcm", "NM")
        add(bundled, "examples_rgb_color.dcm", "US", (25, 54, 295, 168), doppler=True)
        add(bundled, "examples_rgb_color.dcm", "US", (25, 54, 295, 168), grey=True, bmode=True)
    add(bundled, "image_dfl.dcm", "OT")
    if not out:
        raise RuntimeError("no DICOM background could be read")
    return tuple(out), ("pydicom+pydicom-data" if extra else "pydicom")


def background_set() -> str:
    """``"pydicom+pydicom-data"`` or ``"pydicom"``: the files the backgrounds came from."""
    return _sources()[1]


def _window(vals: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(vals[::4, ::4] if vals.ndim == 2 else vals[::4, ::4].mean(axis=2), [1, 99.5])
    return float(lo), float(max(hi, lo + 1.0))


def _window_of(src: _Source) -> tuple[float, float]:
    if src.window is None:
        src.window = _window(src.values)
    return src.window


def _resize(a: np.ndarray, w: int, h: int, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    if a.ndim == 3:
        return np.stack([_resize(a[..., c], w, h, resample) for c in range(a.shape[2])], axis=2)
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.asarray(im.resize((w, h), resample), dtype=np.float32)


def _fit(a: np.ndarray, w: int, h: int, tile: bool, rng: np.random.Generator) -> np.ndarray:
    """The background resized to fit w x h (aspect kept) or, when tile, scaled to cover at least
    one side and mirrored to fill."""
    sh, sw = a.shape[:2]
    if not tile:
        s = min(w / sw, h / sh)
        return _resize(a, max(1, round(sw * s)), max(1, round(sh * s)))
    s = max(w / sw, h / sh) * rng.uniform(0.5, 1.0)
    s = max(s, 96.0 / min(sw, sh))
    b = _resize(a, max(2, round(sw * s)), max(2, round(sh * s)))
    reps_y, reps_x = -(-h // b.shape[0]) + 1, -(-w // b.shape[1]) + 1
    rows = [b if k % 2 == 0 else b[::-1] for k in range(reps_y)]
    col = np.concatenate(rows, axis=0)
    cols = [col if k % 2 == 0 else col[:, ::-1] for k in range(reps_x)]
    full = np.concatenate(cols, axis=1)
    oy = int(rng.integers(0, full.shape[0] - h + 1))
    ox = int(rng.integers(0, full.shape[1] - w + 1))
    return full[oy:oy + h, ox:ox + w]


# ---------------------------------------------------------------------------------------- fonts
@functools.cache
def font_files() -> tuple[str, ...]:
    """Regular and bold faces of FONT_FAMILIES installed here, sorted (empty: Pillow's default)."""
    found: dict[str, str] = {}
    lines: list[str] = []
    if shutil.which("fc-list"):
        try:
            res = subprocess.run(["fc-list", "--format", "%{file}|%{family[0]}|%{style[0]}\n"],
                                 capture_output=True, text=True, timeout=20, check=False)
            lines = res.stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            lines = []
    if not lines:
        for path in glob.glob("/usr/share/fonts/**/*.[ot]tf", recursive=True):
            stem = os.path.basename(path).rsplit(".", 1)[0]
            lines.append(f"{path}|{stem.split('-')[0]}|{stem.split('-')[1] if '-' in stem else 'Regular'}")
    wanted = FONT_FAMILIES
    if os.environ.get(FONTS_ENV):
        wanted = tuple(f.strip() for f in os.environ[FONTS_ENV].split(",") if f.strip())
        unknown = set(wanted) - set(FONT_FAMILIES)
        if unknown:
            raise ValueError(f"{FONTS_ENV}: not in FONT_FAMILIES: {', '.join(sorted(unknown))}")
    fams = {f.replace(" ", "").lower(): f for f in wanted}
    for ln in lines:
        parts = ln.split("|")
        if len(parts) != 3 or not parts[0].endswith((".ttf", ".otf")):
            continue
        path, fam, style = parts
        key = fam.replace(" ", "").lower()
        if key not in fams or style not in ("Regular", "Book", "Roman", "Bold", "Book Bold"):
            continue
        found.setdefault(f"{fams[key]} {style}", path)
    return tuple(sorted(found.values()))


def is_reference() -> bool:
    """Whether the frames are drawn in the reference faces (all of them: none narrowed away)."""
    return len(font_files()) == REFERENCE_FACES and not os.environ.get(FONTS_ENV)


@contextlib.contextmanager
def narrowed(families: tuple[str, ...]):
    """Frames drawn, inside the ``with``, in the installed faces of ``families`` alone (as
    FONTS_ENV asks); the faces as they were after it."""
    before = os.environ.get(FONTS_ENV)
    os.environ[FONTS_ENV] = ",".join(families)
    font_files.cache_clear()
    try:
        yield
    finally:
        if before is None:
            del os.environ[FONTS_ENV]
        else:
            os.environ[FONTS_ENV] = before
        font_files.cache_clear()


def font_set() -> str:
    """The faces the frames are drawn in, said in one line (and whether they are the reference's)."""
    files = font_files()
    if not files:
        return "no font found: Pillow's default font alone (not the reference faces)"
    fams = sorted({os.path.basename(f).split("-")[0].split(".")[0] for f in files})
    ref = "the reference faces" if is_reference() \
        else f"not the reference {REFERENCE_FACES} faces: figures not comparable with the README's"
    return f"{len(files)} faces ({', '.join(fams)}; {ref})"


@functools.lru_cache(maxsize=4096)
def _font(path: str, size: int):
    if path == "default":
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=8192)
def _glyphs(text: str, path: str, size: int, antialias: bool) -> np.ndarray:
    """Coverage 0..1 of the text, cropped to the pixels it touches."""
    font = _font(path, size)
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    draw = ImageDraw.Draw(im)
    draw.fontmode = "L" if antialias else "1"
    draw.text((2 - left, 2 - top), text, fill=255, font=font)
    a = np.asarray(im, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(a)
    if ys.size == 0:
        return a[:0, :0]
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


# -------------------------------------------------------------------------------------- strings
_FIRST = ("ANA", "JOHN", "MARIA", "WEI", "OLGA", "PIERRE", "AMIRA", "KOFI", "LENA", "RAJ", "SOFIA",
          "TOMAS", "YUKI", "HANNA", "DIEGO", "INES", "MILO", "NORA", "EMIL", "ZARA")
_LAST = ("DOE", "MARTINEZ", "KOWALSKI", "NGUYEN", "OKAFOR", "LINDQVIST", "MORETTI", "HAGEN",
         "ABERNATHY", "QUISPE", "VARGA", "DUBOIS", "SATO", "FITZGERALD", "BRANDT", "OYELARAN")
_INST = ("ST. MERCY HOSP", "NORTHFIELD CLINIC", "RIVERSIDE MED CTR", "LAKEVIEW IMAGING",
         "HOSPITAL SAN RAFAEL", "KLINIKUM OST")
_MON = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
SAFE = ("R", "L", "AP", "PA", "LAT", "5.0 cm", "20Hz", "G66 C6 A2", "TIS 0.4 MI 0.8", "LYMPH NODE",
        "Gen", "2D", "CINE", "FR 30", "DR 60", "PWR", "M", "1/2", "ABD", "LIVER")


def _date(rng) -> str:
    y, m, d = int(rng.integers(1931, 2025)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return [f"{d:02d}-{_MON[m - 1]}-{y}", f"{y}/{m:02d}/{d:02d}", f"{m:02d}/{d:02d}/{y}",
            f"{d:02d}.{m:02d}.{y}", f"{y}{m:02d}{d:02d}"][int(rng.integers(0, 5))]


def _time(rng) -> str:
    h, m, s = int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60))
    return [f"{h:02d}:{m:02d}:{s:02d}", f"{h:02d}:{m:02d}", f"{(h % 12) or 12}:{m:02d}:{s:02d} {'AM' if h < 12 else 'PM'}"][
        int(rng.integers(0, 3))]


def _ident(rng) -> str:
    first, last = _FIRST[int(rng.integers(len(_FIRST)))], _LAST[int(rng.integers(len(_LAST)))]
    num = "".join(str(int(d)) for d in rng.integers(0, 10, int(rng.integers(6, 11))))
    k = int(rng.integers(0, 11))
    return [
        f"{last}^{first}", f"{last}, {first}", f"Name: {first.title()} {last.title()}",
        f"ID: {num}", f"MRN {num}", f"ACC# A{num[:7]}", _date(rng), f"{_date(rng)} {_time(rng)}",
        f"DOB {_date(rng)}  {int(rng.integers(1, 95))}Y {'FM'[int(rng.integers(0, 2))]}",
        _INST[int(rng.integers(len(_INST)))], f"{_time(rng)}",
    ][k]


# ------------------------------------------------------------------------------------- canvases
class _Canvas:
    """The frame's values being drawn (float), and the map between display levels and them."""

    def __init__(self, rep: str, w: int, h: int, bits: int = 8, window=(0.0, 255.0), mono1=False):
        self.rep, self.w, self.h, self.bits, self.mono1 = rep, w, h, bits, mono1
        self.lo, self.hi = window
        self.v = np.zeros((h, w, 3) if rep == "rgb" else (h, w), dtype=np.float32)

    def native(self, level):
        """Display level(s) 0-255 -> the frame's values (an RGB triple is used as is in rgb frames)."""
        level = np.asarray(level, dtype=np.float32)
        if self.rep == "rgb":
            return level if level.ndim else np.full(3, level, dtype=np.float32)
        if level.shape == (3,):
            level = level @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if self.rep == "display":
            return level
        if self.mono1:
            level = 255.0 - level
        return self.lo + level / 255.0 * (self.hi - self.lo)

    def display(self, vals: np.ndarray) -> np.ndarray:
        """The frame's values -> display grey levels (float)."""
        if self.rep == "rgb":
            vals = vals @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if self.rep != "stored":
            return vals
        d = (vals - self.lo) / (self.hi - self.lo) * 255.0
        return 255.0 - d if self.mono1 else d

    def paint(self, alpha: np.ndarray, x: int, y: int, value) -> None:
        """Composite value with coverage alpha at (x, y), clipped to the frame."""
        h, w = alpha.shape
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.w), min(y + h, self.h)
        if x0 >= x1 or y0 >= y1:
            return
        a = alpha[y0 - y:y1 - y, x0 - x:x1 - x]
        reg = self.v[y0:y1, x0:x1]
        if reg.ndim == 3:
            a = a[..., None]
        reg *= 1.0 - a
        reg += a * np.asarray(value, dtype=np.float32)

    def fill(self, x0, y0, x1, y1, value) -> None:
        self.v[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = np.asarray(value, dtype=np.float32)

    def image(self) -> np.ndarray:
        if self.rep == "stored":
            return np.clip(np.rint(self.v), 0, (1 << self.bits) - 1).astype(np.uint16)
        return np.clip(np.rint(self.v), 0, 255).astype(np.uint8)


def _background_levels(src: _Source, rep: str, rng) -> tuple[np.ndarray, int, tuple[float, float], bool, str]:
    """The source as the representation's values: (values, bits, window, mono1, photometric)."""
    v = src.values
    if rep == "stored":
        if src.values.ndim == 3:
            raise ValueError("colour source")
        lo, hi = _window_of(src)
        mono1 = src.photometric == "MONOCHROME1"
        bits = src.bits
        if background_set() == "pydicom":
            # no high-bit or MONOCHROME1 file: scale to one and invert one in two
            bits = (10, 12, 15, 16)[int(rng.integers(0, 4))]
            v = (v - v.min()) / max(float(v.max() - v.min()), 1.0) * ((1 << bits) - 1)
            mono1 = bool(rng.integers(0, 2))
            if mono1:
                v = (1 << bits) - 1 - v
            lo, hi = _window(v)
        if mono1:  # the window in stored values of the display's black and white
            return v, bits, (lo, hi), True, "MONOCHROME1"
        return v, bits, (lo, hi), False, "MONOCHROME2"
    if v.ndim == 3:
        if rep == "display":
            v = v @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return v, 8, (0.0, 255.0), False, "RGB" if rep == "rgb" else "MONOCHROME2"
    lo, hi = _window_of(src)
    d = np.clip((v - lo) / (hi - lo) * 255.0, 0, 255)
    if src.photometric == "MONOCHROME1":
        d = 255.0 - d
    if rep == "rgb":
        d = np.repeat(d[..., None], 3, axis=2)
    return d, 8, (0.0, 255.0), False, "RGB" if rep == "rgb" else "MONOCHROME2"


def _new_canvas(src: _Source, rep: str, layout: str, w: int, h: int, rng):
    vals, bits, window, mono1, phot = _background_levels(src, rep, rng)
    cv = _Canvas(rep, w, h, bits, window, mono1)
    cv.photometric = phot
    if layout == "full":
        cv.v[...] = _fit(vals, w, h, True, rng)
        cv.view = (0, 0, w, h)
        return cv
    s = h / 768.0
    top, bottom = int(rng.integers(50, 111) * s), int(rng.integers(40, 101) * s)
    left, right = int(rng.integers(20, 91) * s), int(rng.integers(20, 91) * s)
    border = float(rng.integers(0, 25))
    noise = rng.normal(0.0, 1.5, (-(-h // 4), -(-w // 4))).astype(np.float32)  # faint, 4 px grain
    base = np.clip(border + np.repeat(np.repeat(noise, 4, 0), 4, 1)[:h, :w], 0, 255)
    cv.v[...] = cv.native(0.0) if rep == "rgb" else 0.0
    if rep == "rgb":
        cv.v[...] = base[..., None]
    else:
        cv.v[...] = cv.native(base) if rep == "stored" else base
    img = _fit(vals, w - left - right, h - top - bottom, False, rng)
    ih, iw = img.shape[:2]
    x0 = left + (w - left - right - iw) // 2
    y0 = top + (h - top - bottom - ih) // 2
    cv.v[y0:y0 + ih, x0:x0 + iw] = img
    cv.view = (x0, y0, x0 + iw, y0 + ih)
    return cv


# ------------------------------------------------------------------------------------- graphics
def _draw_ruler(cv: _Canvas, rng, level) -> None:
    x0, y0, x1, y1 = cv.view
    s = cv.h / 768.0
    side = x1 + 3 if cv.w - x1 > 12 else max(x0 - 12, 0)
    step = int(rng.integers(8, 20) * max(s, 0.5))
    val = cv.native(level)
    for k, y in enumerate(range(y0, y1, step)):
        ln = 9 if k % 5 == 0 else 4
        cv.fill(side, y, side + ln, y + 1 + (k % 5 == 0), val)
    # a scale bar with end ticks, and calliper crosses joined by a dotted line
    by = min(y1 + 8, cv.h - 6)
    bx = x0 + int(rng.integers(0, max((x1 - x0) // 3, 1)))
    blen = int(rng.integers(60, 200) * s) + 10
    cv.fill(bx, by, bx + blen, by + 1, val)
    cv.fill(bx, by - 4, bx + 1, by + 5, val)
    cv.fill(bx + blen - 1, by - 4, bx + blen, by + 5, val)
    for _ in range(int(rng.integers(1, 3))):
        ax, ay = int(rng.integers(x0 + 10, max(x1 - 10, x0 + 11))), int(rng.integers(y0 + 10, max(y1 - 10, y0 + 11)))
        bx2, by2 = int(rng.integers(x0 + 10, max(x1 - 10, x0 + 11))), int(rng.integers(y0 + 10, max(y1 - 10, y0 + 11)))
        for cx, cy in ((ax, ay), (bx2, by2)):
            cv.fill(cx - 4, cy, cx + 5, cy + 1, val)
            cv.fill(cx, cy - 4, cx + 1, cy + 5, val)
        n = max(abs(bx2 - ax), abs(by2 - ay)) // 6
        for t in range(1, n):
            px, py = ax + (bx2 - ax) * t // n, ay + (by2 - ay) * t // n
            cv.fill(px, py, px + 2, py + 2, val)


def _draw_ecg(cv: _Canvas, rng, colour) -> None:
    x0, _, x1, y1 = cv.view
    strip = max(20, min(70, cv.h - y1 - 4))
    top = cv.h - strip - 2 if cv.h - y1 > 24 else y1 - strip - 4
    base = top + strip * 0.6
    xs = np.arange(x0, x1)
    period = float(rng.uniform(60, 140))
    ph = (xs - x0 + rng.uniform(0, period)) % period / period
    wave = (-0.15 * np.exp(-((ph - 0.2) / 0.04) ** 2) + 1.0 * np.exp(-((ph - 0.35) / 0.012) ** 2)
            - 0.25 * np.exp(-((ph - 0.38) / 0.012) ** 2) + 0.3 * np.exp(-((ph - 0.6) / 0.06) ** 2))
    ys = np.rint(base - wave * strip * 0.5).astype(int)
    val = cv.native(colour)
    grid = cv.native(60.0)
    for gx in range(x0, x1, 25):
        cv.fill(gx, top, gx + 1, top + strip, grid)
    for k in range(len(xs)):
        a, b = sorted((ys[k], ys[k - 1] if k else ys[k]))
        cv.fill(int(xs[k]), a, int(xs[k]) + 1, b + 2, val)


def _draw_graphics(cv: _Canvas, rng) -> None:
    x0, y0, x1, y1 = cv.view
    img = Image.new("L", (cv.w, cv.h), 0)
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = int(rng.integers(x0, x1)), int(rng.integers(y0, y1))
        r = int(rng.integers(10, 80))
        k = int(rng.integers(0, 4))
        if k == 0:
            d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=255, width=int(rng.integers(1, 3)))
        elif k == 1:
            d.line((cx - r, cy, cx + r, cy), fill=255)
            d.line((cx, cy - r, cx, cy + r), fill=255)
        elif k == 2:
            d.line((cx, cy, cx + r, cy + r // 2), fill=255, width=2)
            d.polygon((cx, cy, cx + 10, cy + 2, cx + 3, cy + 9), fill=255)
        else:
            d.arc((cx - 2 * r, cy - r, cx + 2 * r, cy + 3 * r), 200, 340, fill=255, width=2)
            d.line((cx, cy - r, cx - 2 * r, cy + 2 * r), fill=255)
            d.line((cx, cy - r, cx + 2 * r, cy + 2 * r), fill=255)
    a = np.asarray(img, dtype=np.float32) / 255.0
    cv.paint(a, 0, 0, cv.native(float(rng.integers(160, 256))))
    # a grey wedge and, on colour frames, a colour bar, beside the image
    bx = min(x1 + 4, cv.w - 14) if cv.w - x1 > 18 else max(x0 - 18, 0)
    bh = max(40, (y1 - y0) // 3)
    wedge = np.linspace(255, 0, bh, dtype=np.float32)
    for k, lv in enumerate(wedge):
        cv.fill(bx, y0 + k, bx + 10, y0 + k + 1, cv.native(float(lv)))
    if cv.rep == "rgb":
        for k in range(bh):
            t = k / bh
            cv.fill(bx, y0 + bh + 6 + k, bx + 10, y0 + bh + 7 + k, (255 * (1 - t), 200 * (1 - abs(0.5 - t) * 2), 255 * t))


def _flow(cv: _Canvas, rng) -> np.ndarray:
    """Synthetic colour flow inside a sector of the image area; returns the flow mask."""
    x0, y0, x1, y1 = cv.view
    h, w = y1 - y0, x1 - x0
    small = rng.normal(size=(max(h // 24, 4), max(w // 24, 4))).astype(np.float32)
    field_ = _resize(small, w, h, Image.Resampling.BICUBIC)  # smooth blobs about 25 px across
    field_ = field_ / (np.abs(field_).max() + 1e-6)
    yy, xx = np.mgrid[0:h, 0:w]
    cx, apex = w / 2 + rng.uniform(-w / 6, w / 6), -h * 0.2
    ang = np.arctan2(xx - cx, yy - apex)
    rad = np.hypot(xx - cx, yy - apex)
    half = rng.uniform(0.3, 0.6)
    r0, r1 = rng.uniform(0.25, 0.45) * h, rng.uniform(0.85, 1.15) * h
    sector = (np.abs(ang) < half) & (rad > r0) & (rad < r1)
    thr = rng.uniform(0.1, 0.3)
    flow = sector & (np.abs(field_) > thr)
    t = np.clip((np.abs(field_) - thr) / (1 - thr), 0, 1)
    power = bool(rng.integers(0, 2))
    if power:  # power Doppler: orange to yellow
        col = np.stack([np.full_like(t, 230.0), 80 + 170 * t, 20 * t], axis=2)
    else:  # velocity: red one way, blue the other
        pos = field_ > 0
        col = np.stack([np.where(pos, 140 + 115 * t, 0), np.where(pos, 40 * t, 60 * t),
                        np.where(pos, 0, 140 + 115 * t)], axis=2)
    reg = cv.v[y0:y1, x0:x1]
    reg[flow] = col[flow]
    mask = np.zeros((cv.h, cv.w), dtype=bool)
    mask[y0:y1, x0:x1] = flow
    # the sector's outline, as the machines draw it
    edge = sector & ~(np.abs(ang) < half - 0.01)
    reg[edge] = 200.0
    return mask


# ----------------------------------------------------------------------------------------- text
def _size(rng) -> int:
    k = rng.random()
    lo, hi = SIZE_BUCKETS[0 if k < 0.3 else 1 if k < 0.6 else 2 if k < 0.85 else 3]
    return int(rng.integers(lo, hi + 1))


def _free(box, taken, gap=8) -> bool:
    x0, y0, x1, y1 = box
    return all(x1 + gap <= a0 or a1 + gap <= x0 or y1 + gap <= b0 or b1 + gap <= y0 for a0, b0, a1, b1 in taken)


def _place(cv: _Canvas, place: str, gw: int, gh: int, rotated: bool, rng, taken):
    """Top-left of a gw x gh line for the place, or None when it does not fit."""
    W, H = cv.w, cv.h
    vx0, vy0, vx1, vy1 = cv.view
    for _ in range(40):
        if place == "border":
            if rotated:
                opts = [(0, vx0), (vx1, W)]
                xa, xb = opts[int(rng.integers(0, 2))]
                if xb - xa < gw + 2 or H < gh + 4:
                    return None
                x = int(rng.integers(xa + 1, xb - gw))
                y = int(rng.integers(2, H - gh - 1))
            else:
                opts = [(0, vy0), (vy1, H)]
                ya, yb = opts[int(rng.integers(0, 2))]
                if yb - ya < gh + 2 or W < gw + 4:
                    return None
                y = int(rng.integers(ya + 1, yb - gh))
                x = int(rng.integers(2, W - gw - 1))
        elif place == "edge":
            side = int(rng.integers(0, 4))
            if gw >= W or gh >= H:
                return None
            x = int(rng.integers(0, W - gw + 1))
            y = int(rng.integers(0, H - gh + 1))
            x, y = [(0, y), (W - gw, y), (x, 0), (x, H - gh)][side]
        else:  # anatomy / box: inside the image area
            pad = 4 if place == "box" else 0
            if vx1 - vx0 < gw + 2 * pad + 2 or vy1 - vy0 < gh + 2 * pad + 2:
                return None
            x = int(rng.integers(vx0 + pad, vx1 - gw - pad))
            y = int(rng.integers(vy0 + pad, vy1 - gh - pad))
        box = (x, y, x + gw, y + gh)
        if _free(box, taken, 8 + (4 if place == "box" else 0)):
            return x, y
    return None


def _draw_line(cv: _Canvas, rng, taken, identifying: bool, fonts, rotated=None) -> Line | None:
    text = _ident(rng) if identifying else SAFE[int(rng.integers(len(SAFE)))]
    size = _size(rng)
    font = fonts[int(rng.integers(len(fonts)))]
    antialias = bool(rng.random() >= 0.3)
    alpha = _glyphs(text, font, size, antialias)
    if alpha.size == 0:
        return None
    if rotated is None:
        rotated = bool(rng.random() < 0.125)
    if rotated:
        alpha = np.rot90(alpha, 1 if rng.integers(0, 2) else 3)
    low = bool(rng.random() < 0.2)
    places = ("border", "anatomy", "box", "edge")
    place = places[int(rng.choice(4, p=(0.4, 0.3, 0.15, 0.15)))]
    if cv.view == (0, 0, cv.w, cv.h) and place == "border":
        place = "anatomy"
    gh, gw = alpha.shape
    pos = _place(cv, place, gw, gh, rotated, rng, taken)
    if pos is None and place != "anatomy":
        place = "anatomy"
        pos = _place(cv, place, gw, gh, rotated, rng, taken)
    if pos is None:
        return None
    x, y = pos
    names = ("white", "grey", "yellow", "green", "cyan") if cv.rep == "rgb" else ("white", "grey")
    colour = names[int(rng.integers(len(names)))]
    rgb = np.array(COLOURS[colour], dtype=np.float32)
    if colour == "grey":
        rgb[:] = float(rng.integers(140, 215))
    if place == "box":
        p = int(rng.integers(1, 5))
        fill = float(rng.integers(0, 60)) if not low else None
        under = cv.display(cv.v[y:y + gh, x:x + gw])
        if fill is None:
            fill = float(np.median(under))
        boxval = cv.native(np.array((fill, fill, fill * (1.6 if cv.rep == "rgb" else 1.0)), dtype=np.float32).clip(0, 255)
                           if cv.rep == "rgb" else fill)
        cv.fill(x - p, y - p, x + gw + p, y + gh + p, boxval)
        taken.append((x - p, y - p, x + gw + p, y + gh + p))
    bg = float(np.median(cv.display(cv.v[y:y + gh, x:x + gw])))
    lum = float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    if low:
        delta = float(rng.integers(12, 33)) * (1 if (rng.random() < 0.5 or bg < 40) and bg < 215 else -1)
        target = np.clip(bg + delta, 0, 255)
        rgb = np.clip(rgb * 0 + target, 0, 255) if colour in ("white", "grey") else np.clip(rgb / max(lum, 1) * target, 0, 255)
    elif abs(lum - bg) < 60:
        rgb = np.full(3, 0.0 if bg > 127 else 255.0, dtype=np.float32)
        colour = "black" if bg > 127 else "white"
    value = cv.native(rgb if cv.rep == "rgb" else float(rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)))
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + gw, cv.w), min(y + gh, cv.h)
    before = np.array(cv.display(cv.v[y0:y1, x0:x1]))  # a copy
    cv.paint(alpha, x, y, value)
    # ground truth, clipped to the frame
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    taken.append((x0, y0, x1, y1))
    mask = a >= GLYPH_COVERAGE
    change = np.abs(cv.display(cv.v[y0:y1, x0:x1]) - before)
    contrast = float(np.median(change[mask])) if mask.any() else 0.0
    return Line((x0, y0, x1, y1), mask, text, identifying, size, os.path.basename(font), antialias, colour,
                place, rotated, low, contrast)


# --------------------------------------------------------------------------------------- frames
def _fonts() -> tuple[str, ...]:
    return font_files() or ("default",)


def make_frame(i: int, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> Frame:
    """Frame ``i`` of the set (see the module's docstring)."""
    w, h = size
    rng = np.random.default_rng([seed, i])
    sources = _sources()[0]
    text_free = i % 6 == 5
    kind = TEXT_FREE_KINDS[(i // 6) % len(TEXT_FREE_KINDS)] if text_free else "text"
    grey = [s for s in sources if s.values.ndim == 2]
    if kind == "doppler":
        bmode = [s for s in sources if s.bmode or s.doppler]
        src = bmode[int(rng.integers(len(bmode)))]
        rep, layout = "rgb", "screen"
    else:
        src = sources[int(rng.integers(len(sources)))]
        r = rng.random()
        rep = "display" if r < 0.35 else "rgb" if r < 0.7 else "stored"
        if rep == "stored":  # every source of more than 8 bits alike (or every grey one)
            deep = [s for s in grey if s.bits > 8] or grey
            src = deep[int(rng.integers(len(deep)))]
        layout = "screen" if (src.modality in ("US", "NM", "OT") or rng.random() < 0.5) else "full"
        if kind in ("ruler", "ecg"):
            layout = "screen"
    cv = _new_canvas(src, rep, layout, w, h, rng)
    frame_flow = None
    if kind == "doppler":
        frame_flow = (cv.v.max(axis=2) - cv.v.min(axis=2) > 60) if src.doppler else _flow(cv, rng)
        if src.doppler:
            frame_flow &= np.pad(np.ones((cv.view[3] - cv.view[1], cv.view[2] - cv.view[0]), bool),
                                 ((cv.view[1], h - cv.view[3]), (cv.view[0], w - cv.view[2])))
    elif kind == "ruler":
        _draw_ruler(cv, rng, float(rng.integers(150, 256)))
    elif kind == "ecg":
        _draw_ecg(cv, rng, (0, 230, 0) if rng.random() < 0.5 else (230, 230, 0))
    elif kind == "graphics":
        _draw_graphics(cv, rng)
    lines: list[Line] = []
    if kind == "text":
        extra = rng.random()
        if layout == "screen" and extra < 0.15:
            _draw_ruler(cv, rng, float(rng.integers(150, 256)))
        elif layout == "screen" and extra < 0.25:
            _draw_ecg(cv, rng, (0, 230, 0))
        taken: list[tuple[int, int, int, int]] = []
        fonts = _fonts()
        for _ in range(int(rng.integers(2, 7))):
            ln = _draw_line(cv, rng, taken, bool(rng.random() >= 0.125), fonts)
            if ln is not None and ln.glyph_pixels:
                lines.append(ln)
    return Frame(cv.image(), kind, f"{src.modality}:{src.name}", rep, cv.bits, cv.photometric, lines,
                 frame_flow)


def make_frames(n: int = 360, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> list[Frame]:
    """Frames 0..n-1 (5 in 6 with text; 360 frames hold about 1,000 identifying lines)."""
    return [make_frame(i, seed, size) for i in range(n)]


def small_set(seed: int = 0) -> list[Frame]:
    """24 frames of 512 x 384 (20 with text, one of each text-free kind and a second anatomy)."""
    return make_frames(24, seed, (512, 384))


def preview(frame: Frame, boxes=()) -> Image.Image:
    """An 8-bit RGB picture of the frame (stored values windowed, MONOCHROME1 inverted) with its
    lines outlined (magenta: identifying, cyan: known-safe) and ``boxes`` (yellow), for a look."""
    a = frame.image.astype(np.float32)
    if frame.representation == "stored":
        lo, hi = np.percentile(a[::2, ::2], [1, 99.5])
        a = np.clip((a - lo) / max(hi - lo, 1.0) * 255.0, 0, 255)
        if frame.photometric == "MONOCHROME1":
            a = 255.0 - a
    im = Image.fromarray(np.rint(a).astype(np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(im)
    for ln in frame.lines:
        x0, y0, x1, y1 = ln.box
        draw.rectangle((x0 - 1, y0 - 1, x1, y1), outline=(255, 0, 255) if ln.identifying else (0, 255, 255))
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 255, 0))
    return im


if __name__ == "__main__":  # python tests/textset.py OUTDIR [N]: PNG previews of frames 0..N-1
    import sys

    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for k in range(int(sys.argv[2]) if len(sys.argv) > 2 else 24):
        fr = make_frame(k)
        preview(fr).save(os.path.join(out, f"{k:03d}_{fr.kind}_{fr.representation}.png"))
