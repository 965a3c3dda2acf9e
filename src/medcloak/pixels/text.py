"""Burned-in text detection: boxes around every line of text in a frame.

Text burned into medical frames is thin strokes of one colour at character scale, set in lines.
The detector looks for exactly that, on stored values of any bit depth:

1. **Display values.** 8-bit frames are used as they are. Deeper ones (10- to 16-bit, signed or
   not) are stretched to 8 bits between robust extremes (the values a few hundred pixels beyond:
   a handful of hot pixels do not squash the rest, text at the top of the range stays on top).
   MONOCHROME1 needs no inversion: bright and dark text are both searched. RGB frames give their
   value (brightest channel: white, grey and coloured text) and their chroma (coloured text over
   grey anatomy).
2. **Strokes.** White and black top-hats by a square larger than any stroke keep details narrower
   than a glyph's stroke scale and drop everything wider (anatomy, the black border, colour Doppler's
   blobs, filled boxes): what is left is the contrast of thin things with their surroundings.
3. **Glyphs.** 8-connected components of each stroke contrast (bright, dark, chroma) less the
   texture level of its block (the median contrast in 64 px blocks, twice over), at a few levels
   (text touching bright anatomy parts from it higher up), kept when character-sized and strong
   enough (12 levels, 8 in a quiet block of the grey or value plane; neither a long straight
   line such as a ruler or an ECG trace nor a large blob).
4. **Lines.** Glyphs of one plane and polarity whose rows overlap, that share their top or their
   baseline and follow each other within about a character's height are chained into lines. A
   line is kept when it has at least three glyphs, most of them on one baseline and of one
   height, letter-shaped (a glyph much wider than tall must cross several strokes: letters that
   touch, not a streak of speckle), filling enough of the line's box, and is not a row of ticks.
   A faint line (median contrast under 40 levels) needs four glyphs and a width of three heights
   (noise makes short faint chains). A rejected chain gets a second look at its core (glyphs of
   one height on one line: text that texture or colour flow joined; a tall core must fill enough
   of its box, or it is colour flow's blobs). An accepted line takes in
   the glyphs of its band and colour up to three heights beyond its ends (a word chained apart,
   glyphs too few to be a line on their own), of either polarity (text over anatomy is brighter
   than some of it and darker than the rest), and glyphs of any colour on both its top and its
   baseline up to two heights beyond (its end over a background that changes its colour).
   Glyphs left over are chained the same way down the columns (text rotated by 90 degrees),
   where more of a line's glyphs must share both its top and its baseline (columns of texture,
   vessels and flow line up more often than rows).
5. **Boxes** around each line, padded by a little more than the stroke halo across it and by a
   height at its ends (a last glyph lost on a background of its own colour).

All pixel work is in numba kernels (:mod:`medcloak_kernels.text`); this module holds the
decisions and their thresholds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: half the side of the top-hat's square: strokes up to 2 * RADIUS px wide are kept (a 40 px
#: bold font's strokes are about 7 px)
RADIUS = 5
#: stroke contrast (8-bit levels) of a glyph's pixels, and of its strongest pixel
LOW, HIGH = 6, 12
#: a glyph's colour: the level with the most of its pixels within DELTA
DELTA = 6
#: glyphs are looked for at these levels of stroke contrast
LEVELS = (LOW, 20, 50, 120)
#: the stroke contrast of texture (noise, speckle) is measured as its median in blocks of this
#: side, and this many times it is taken off the contrast in the block
BLOCK, NOISE = 64, 2.0
#: on a quiet background (a block whose texture level is at most QUIET, grey or value plane
#: only: the chroma plane is quiet wherever there is no colour) a glyph's strongest pixel needs
#: only QUIET_HIGH (a faint glyph on a flat border is unmistakable, on textured anatomy it is not)
QUIET, QUIET_HIGH = 1, 10
#: glyph heights (px) a line can be made of, and the tallest box of a glyph (merged words are wide)
MIN_GLYPH, MAX_GLYPH = 3, 64
#: a line's tallest glyph at least this (a 7 px font's capitals are about 5 px)
MIN_LINE = 4
#: linking: gap at most GAP x the taller glyph's height, rows overlapping by OVERLAP x the
#: shorter's, heights within RATIO, tops or bottoms within ALIGN x the taller's height
GAP, OVERLAP, RATIO, ALIGN = 1.2, 0.5, 2.5, 0.15
#: a line: at least MIN_GLYPHS glyphs; the share ALIGNED of them with their top or bottom, and
#: BOTH with both, within ALIGN_TOL x the median height of the line's; the glyphs' area at least
#: MIN_FILL of the line's box; the share LETTERS of them letter-shaped (see WIDE)
MIN_GLYPHS, ALIGN_TOL, ALIGNED, BOTH, MIN_FILL, LETTERS = 3, 0.12, 0.6, 0.4, 0.15, 0.5
#: an accepted line takes in glyphs of its band and colour (either polarity: text over anatomy is
#: brighter than some of it, darker than the rest) up to GROW x its height from its ends, at
#: least GROW_PEAK x as contrasted (the colour is the strong cue)
GROW, GROW_PEAK = 3.0, 0.1
#: ... and glyphs of any colour on both its top and its baseline up to GROW_ANY x its height (a
#: line's end over a background that changes the colour its glyphs are displayed in)
GROW_ANY = 2.0
#: a rejected chain's core: glyphs within CORE_RATIO of one height (chains of at most MAX_CORE)
CORE_RATIO, MAX_CORE = 1.5, 400
#: lines down the columns need this share of glyphs on both their top and baseline (columns
#: of texture, vessels and flow line up more often than rows)
TURNED_BOTH = 0.6
#: a core taller than TALL_CORE px must fill at least CORE_FILL of its box: chains of colour
#: Doppler's flow blobs (saturated, as bright as text) leave large, sparse cores of a few blobs
TALL_CORE, CORE_FILL = 24, 0.25
#: a faint line (median glyph contrast below WEAK levels) needs WEAK_GLYPHS glyphs and a width of
#: WEAK_ASPECT x its height
WEAK, WEAK_GLYPHS, WEAK_ASPECT = 40, 4, 3.0
#: letters are about as wide as tall: glyphs wider than WIDE x their height must cross
#: RUNS x width / height strokes on their middle row (letters that touch)
WIDE, RUNS = 1.6, 0.5
#: glyphs at least THICK px in both directions, less than twice as long as wide (not a bar: a
#: bold I or 1), whose box is filled beyond MAX_FILL are blobs
MAX_FILL, THICK = 0.85, 5
#: a glyph's pixels at least half as contrasted as its strongest: at least this fraction
CORE = 0.5
#: box padding: across the line, this fraction of the line's height, and at least PAD px; at its
#: ends, END_FRACTION of its height (a last glyph lost on a background of its own colour)
PAD_FRACTION, PAD, END_FRACTION = 0.15, 2, 1.0
#: robust extremes of deep frames: this many pixels (at least) lie beyond each
TAIL_FRACTION = 2e-4


def _display(image: np.ndarray, bits_stored: int | None) -> list[np.ndarray]:
    """The 8-bit planes searched for text: one for grey, value and chroma for RGB."""
    from medcloak_kernels import text as k

    if image.ndim == 3:
        if image.shape[2] != 3:
            raise ValueError("a colour frame must be H x W x 3")
        rgb = image if image.dtype == np.uint8 else np.stack([_to8(image[..., c], bits_stored) for c in range(3)], -1)
        value, chroma = k.value_chroma(np.ascontiguousarray(rgb))
        return [value, chroma]
    if image.ndim != 2:
        raise ValueError("a frame must be 2-D grey or H x W x 3 colour")
    if image.dtype == np.uint8:
        return [np.ascontiguousarray(image)]
    return [_to8(image, bits_stored)]


def _to8(plane: np.ndarray, bits_stored: int | None) -> np.ndarray:
    from medcloak_kernels import text as k

    if plane.dtype == np.bool_:
        plane = plane.astype(np.uint8)
    if bits_stored and np.issubdtype(plane.dtype, np.unsignedinteger) and bits_stored < plane.dtype.itemsize * 8:
        plane = plane & np.asarray((1 << bits_stored) - 1, plane.dtype)  # bits above are not the image's
    flat = plane[:: max(1, plane.shape[0] // 512), :: max(1, plane.shape[1] // 512)].ravel()
    if flat.size == 0:
        return np.zeros(plane.shape, np.uint8)
    q = TAIL_FRACTION * 100.0
    lo, hi = (float(v) for v in np.percentile(flat, [q, 100.0 - q]))
    if hi <= lo:  # almost flat: whatever stands out is detail, keep all of it
        lo, hi = float(plane.min()), float(plane.max())
    return k.stretch(np.ascontiguousarray(plane), lo, hi)


def _glyph_like(t: np.ndarray, level: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Of a component table: (rows that are glyph-like; rows too large or too solid to be a
    glyph, but strong enough, worth a look at a higher level). With ``level`` (the texture level
    of each BLOCK, as from ``block_median``), a glyph at the centre of a quiet block needs only
    QUIET_HIGH."""
    from medcloak_kernels import text as k

    w = t[:, k.X1] - t[:, k.X0]
    h = t[:, k.Y1] - t[:, k.Y0]
    area = t[:, k.AREA]
    fill = area / np.maximum(w * h, 1)
    strong = t[:, k.PEAK] >= HIGH
    if level is not None and len(t):
        quiet = level[((t[:, k.Y0] + t[:, k.Y1]) // 2) // BLOCK, ((t[:, k.X0] + t[:, k.X1]) // 2) // BLOCK] <= QUIET
        strong |= quiet & (t[:, k.PEAK] >= QUIET_HIGH)
    small = np.minimum(w, h) <= MAX_GLYPH
    thin = (fill <= MAX_FILL) | (np.minimum(w, h) < THICK) | (np.maximum(w, h) >= 2 * np.minimum(w, h))
    good = strong & small & thin & (np.maximum(w, h) >= MIN_GLYPH) & (t[:, k.CORE] >= CORE * area)
    return good, strong & ~(small & thin)


def _glyphs(planes: list[np.ndarray]) -> np.ndarray:
    """The component table of the frame's stroke contrast, glyph-like rows only, with two more
    columns: the level (index in :data:`LEVELS`) and where each came from (0: bright on the value
    or grey plane, 1: dark, 2: bright on the chroma plane)."""
    from medcloak_kernels import text as k

    tables = []
    for i, plane in enumerate(planes):
        if i == 0:
            # each polarity on its own: the gaps between bright glyphs are dark details themselves
            contrasts = k.tophats(plane, RADIUS)
        elif int(plane.max()) >= HIGH:  # chroma: coloured text on grey (none on a grey frame)
            contrasts = (k.white_tophat(plane, RADIUS),)
        else:
            continue
        for j, strength in enumerate(contrasts):
            level = k.block_median(strength, BLOCK)
            excess = k.above_level(strength, level, BLOCK, NOISE)
            for n, lo in enumerate(LEVELS):  # text touching bright anatomy parts from it higher up
                t = k.components(excess, lo, plane, DELTA)[1]
                good, _ = _glyph_like(t, level if i == 0 else None)
                tables.append(np.c_[t[good], np.full((np.count_nonzero(good), 2), (n, 2 * i + j))])
                if n + 1 < len(LEVELS) and (len(t) == 0 or t[:, k.PEAK].max() < LEVELS[n + 1]):
                    break  # nothing reaches the next level
    return np.concatenate(tables)


def _chains(table: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
    """The rows ``idx`` of the glyph table chained into horizontal lines (each chain's rows),
    those with fewer than MIN_GLYPHS glyphs or no glyph MIN_LINE tall left out."""
    from medcloak_kernels import text as k

    boxes = table[idx, :4]
    h = boxes[:, 3] - boxes[:, 1]
    idx = idx[(h >= MIN_GLYPH) & (h <= MAX_GLYPH)]
    if idx.size == 0:
        return []
    roots = k.link_lines(np.ascontiguousarray(table[idx, :4]), GAP, OVERLAP, RATIO, ALIGN)
    order = np.argsort(roots, kind="stable")
    roots_sorted = roots[order]
    starts = np.flatnonzero(np.r_[True, roots_sorted[1:] != roots_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    # most chains are a glyph or two of texture (found at several levels): the glyphs of each
    # chain's most populous level are counted, and the tallest, before any closer look
    chain = np.repeat(np.arange(len(starts)), ends - starts)
    levels = int(table[:, -2].max()) + 1
    per_level = np.bincount(chain * levels + table[idx[order], -2], minlength=len(starts) * levels)
    count = per_level.reshape(len(starts), levels).max(axis=1)
    tall = np.maximum.reduceat((table[idx[order], 3] - table[idx[order], 1]), starts)
    keep = (count >= MIN_GLYPHS) & (tall >= MIN_LINE)
    return [idx[order[s:e]] for s, e, ok in zip(starts, ends, keep) if ok]


def _measure(table: np.ndarray, members: np.ndarray) -> tuple[tuple[int, int, int, int], dict]:
    """A chain's box and the measures :func:`_accept` judges it by, taken on the glyphs of the
    chain's most populous level (each glyph counted once)."""
    from medcloak_kernels import text as k

    rows = table[members]
    box = (int(rows[:, 0].min()), int(rows[:, 1].min()), int(rows[:, 2].max()), int(rows[:, 3].max()))
    lev = rows[:, -2]
    same = rows[lev == np.bincount(lev).argmax()]
    sh = same[:, 3] - same[:, 1]
    sw = same[:, 2] - same[:, 0]
    letter = (sw <= WIDE * sh) | (same[:, k.RUNS_H] >= np.maximum(2, RUNS * sw / np.maximum(sh, 1)))
    mh = float(np.median(sh))
    tol = max(1.0, ALIGN_TOL * mh)
    tops = np.abs(same[:, 1] - np.median(same[:, 1])) <= tol
    bottoms = np.abs(same[:, 3] - np.median(same[:, 3])) <= tol
    sbox = (same[:, 0].min(), same[:, 1].min(), same[:, 2].max(), same[:, 3].max())
    f = {
        "n": len(same), "top": int(sh.max()), "mh": mh, "height": box[3] - box[1], "width": box[2] - box[0],
        "aligned": float(np.mean(tops | bottoms)), "both": float(np.mean(tops & bottoms)),
        "peak": float(np.median(same[:, k.PEAK])),
        "ticks": float(np.mean(sw < 0.3 * sh)),
        "fill": float(same[:, k.AREA].sum() / max(1, (sbox[2] - sbox[0]) * (sbox[3] - sbox[1]))),
        "letters": float(np.mean(letter)),
    }
    return box, f


def _core(table: np.ndarray, members: np.ndarray) -> np.ndarray:
    """The glyphs of a rejected chain that look like one line's letters: those of about the
    height of, and on the top or baseline of, the glyph that most others agree with (a line of
    text that texture or colour flow joined through chance neighbours)."""
    rows = table[members]
    y0 = rows[:, 1].astype(float)
    y1 = rows[:, 3].astype(float)
    h = y1 - y0
    ratio = np.maximum(h[:, None], h[None, :]) / np.maximum(np.minimum(h[:, None], h[None, :]), 1.0)
    tol = np.maximum(1.0, ALIGN_TOL * np.maximum(h[:, None], h[None, :]))
    on = (np.abs(y0[:, None] - y0[None, :]) <= tol) | (np.abs(y1[:, None] - y1[None, :]) <= tol)
    agree = on & (ratio <= CORE_RATIO)
    best = int(np.argmax(agree.sum(axis=1)))
    return members[agree[best]]


def _accept(f: dict, both: float = 0.0) -> bool:
    """Whether a chain of glyphs is a line of text (its measures from :func:`_measure`; ``both``
    raises BOTH)."""
    weak = f["peak"] < WEAK  # faint lines are judged harder: noise makes short faint chains
    return bool(
        f["top"] >= MIN_LINE
        and f["n"] >= MIN_GLYPHS  # texture makes pairs; a line of text has several glyphs
        and (not weak or (f["n"] >= WEAK_GLYPHS and f["width"] >= WEAK_ASPECT * f["top"]))
        and f["aligned"] >= ALIGNED and f["both"] >= max(BOTH, both)  # on one baseline, most of one height
        and f["fill"] >= MIN_FILL  # strokes, not a sparse scatter of dots and edges
        and f["letters"] >= LETTERS  # letter-shaped, not streaks of speckle
        and f["height"] <= 1.8 * f["top"] and f["height"] <= 2.4 * f["mh"]  # not drifting across texture
        and f["ticks"] <= 0.67  # not a ruler's ticks
    )


def _grow(table: np.ndarray, members: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """A line's glyphs with the glyphs of ``pool`` (row indices) that continue it: within the
    band of its rows, at least half its median glyph height (or any size within half a height:
    punctuation), no further than GROW heights from its ends, of its colour (within DELTA) and
    not much fainter (GROW_PEAK): a word that was chained apart, glyphs too few to be a line on
    their own, the part of a line where anatomy turns its contrast over; and glyphs of any
    colour on both its top and its baseline no further than GROW_ANY heights (the line's end
    over a background that changes its glyphs' colour)."""
    from medcloak_kernels import text as k

    rows = table[members]
    y0, y1 = int(rows[:, 1].min()), int(rows[:, 3].max())
    height = y1 - y0
    mh = float(np.median(rows[:, 3] - rows[:, 1]))
    tol = max(1.0, ALIGN_TOL * height)
    colour = float(np.median(rows[:, k.MODE]))
    peak = float(np.median(rows[:, k.PEAK]))
    cand = table[pool]
    ch = cand[:, 3] - cand[:, 1]
    cw = cand[:, 2] - cand[:, 0]
    ok = (cand[:, 1] >= y0 - tol) & (cand[:, 3] <= y1 + tol)
    ok &= (np.abs(cand[:, 1] - y0) <= tol) | (np.abs(cand[:, 3] - y1) <= tol) | (ch < 0.5 * mh)
    ok &= (cw <= WIDE * ch) | (cand[:, k.RUNS_H] >= np.maximum(2, RUNS * cw / np.maximum(ch, 1)))
    same = (np.abs(cand[:, k.MODE] - colour) <= DELTA) & (cand[:, k.PEAK] >= GROW_PEAK * peak)
    both = (np.abs(cand[:, 1] - y0) <= tol) & (np.abs(cand[:, 3] - y1) <= tol)
    ok &= same | both
    pool, cand, ch, same = pool[ok], cand[ok], ch[ok], same[ok]
    x0, x1 = int(rows[:, 0].min()), int(rows[:, 2].max())
    taken = np.zeros(len(pool), bool)
    while True:
        gap = np.maximum(cand[:, 0] - x1, x0 - cand[:, 2])
        near = ~taken & (((ch >= 0.5 * mh) & (gap <= np.where(same, GROW, GROW_ANY) * height))
                         | (same & (gap <= 0.5 * height)))
        if not near.any():
            break
        taken |= near
        x0 = min(x0, int(cand[near, 0].min()))
        x1 = max(x1, int(cand[near, 2].max()))
    return np.concatenate([members, pool[taken]])


def _lines(table: np.ndarray, both: float = 0.0) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """Horizontal lines among the glyphs, each polarity and plane on its own (the dark gaps
    between bright letters are glyph-like too, and would blur the letters' measures): the
    accepted lines' boxes, and a mask of the glyphs used by them. A rejected chain gets a second
    look at its core (:func:`_core`); an accepted line takes in the glyphs that continue it
    (:func:`_grow`)."""
    used = np.zeros(len(table), bool)
    out = []
    for src in np.unique(table[:, -1]):
        mine = np.flatnonzero(table[:, -1] == src)
        lines = []
        for members in _chains(table, mine):
            if len(members) < MIN_GLYPHS:  # most chains: a glyph or two of texture
                continue
            _box, f = _measure(table, members)
            if _accept(f, both):
                lines.append(members)
            elif MIN_GLYPHS <= len(members) <= MAX_CORE:
                core = _core(table, members)
                if len(core) < len(members):
                    for part in _chains(table, core):
                        if len(part) < MIN_GLYPHS:
                            continue
                        _box, f = _measure(table, part)
                        if _accept(f, both) and not (f["top"] > TALL_CORE and f["fill"] < CORE_FILL):
                            lines.append(part)
        for members in lines:
            used[members] = True
        for members in lines:
            members = _grow(table, members, np.flatnonzero((table[:, -1] // 2 == src // 2) & ~used))
            used[members] = True
            rows = table[members]
            out.append((int(rows[:, 0].min()), int(rows[:, 1].min()), int(rows[:, 2].max()), int(rows[:, 3].max())))
    return out, used


def detect_text(image: Any, *, photometric: str | None = None,
                bits_stored: int | None = None) -> list[tuple[int, int, int, int]]:
    """Boxes around the lines of text burned into a frame (see the module's docstring).

    Parameters
    ----------
    image : array
        A 2-D grey frame (uint8, uint16, int16, ... of any bit depth; MONOCHROME1 or 2) or an
        H x W x 3 RGB frame.
    photometric : str, optional
        The frame's Photometric Interpretation; accepted for the record: bright and dark text
        are both searched, so MONOCHROME1 needs no inversion.
    bits_stored : int, optional
        Bits Stored of a DICOM frame: bits above it (overlays of old files) are ignored.

    Returns
    -------
    list of (x0, y0, x1, y1)
        One box per line of text, padded, ends exclusive, within the frame.
    """
    image = np.asarray(image)
    if image.size == 0:
        return []
    ny, nx = image.shape[:2]
    from medcloak_kernels import text as k

    planes = _display(image, bits_stored)
    table = _glyphs(planes)
    found, used = _lines(table)
    rest = table[~used]
    if len(rest):
        turned = rest.copy()
        turned[:, :4] = rest[:, [1, 0, 3, 2]]  # columns as rows: text rotated by 90 degrees
        turned[:, [k.RUNS_H, k.RUNS_V]] = rest[:, [k.RUNS_V, k.RUNS_H]]
        vertical, _ = _lines(turned, TURNED_BOTH)
    else:
        vertical = []
    out = []
    for turn, lines in ((False, found), (True, vertical)):
        for x0, y0, x1, y1 in lines:  # in the line's own frame: x along it, y across
            across = max(PAD, round(PAD_FRACTION * (y1 - y0)))
            along = max(PAD, round(END_FRACTION * (y1 - y0)))
            box = (x0 - along, y0 - across, x1 + along, y1 + across)
            if turn:
                box = (box[1], box[0], box[3], box[2])
            out.append((max(0, box[0]), max(0, box[1]), min(nx, box[2]), min(ny, box[3])))
    return out
