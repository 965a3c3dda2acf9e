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
   texture level of its block (twice the median contrast of its 16 px block or of its 64 px
   block, whichever is lower: a filled box in speckle is quiet; only the 64 px block's in a
   frame with colour flow, whose blobs are flat inside), at a few levels (the grey or value
   plane's bright strokes a second time after a 3 x 3 median, at the lowest three: faint text
   over speckle),
   (text touching bright anatomy parts from it higher up), kept when character-sized and strong
   enough (12 levels, 10 in a quiet block of the grey or value plane; neither a long straight
   line such as a ruler or an ECG trace nor a large blob); a glyph on colour flow (in an RGB
   frame, a glyph whose box is partly saturated, shaded colour of a region wider than a stroke:
   Doppler's blobs, as bright as text and as varied in size, chain like words) is set aside:
   it starts no line.
4. **Lines.** Glyphs of one plane and polarity whose rows overlap, that share their top or their
   baseline and follow each other within about a character's height are chained. A chain of at
   least three glyphs is judged by a classifier trained on the test set's generator (a boosted
   ensemble of small decision trees, :data:`FEATURES`): how many glyphs, how many on one
   baseline and of one height, how letter-shaped (a glyph much wider than tall must cross
   several strokes: letters that touch, not a streak of speckle), how much of the box they fill,
   how strong against their block's texture, how regular their gaps and colours, whether a row
   of ticks. On 360 validation frames (32,470 chains judged, 3,399 of them text, with the
   detector's coverage passes and six levels; trained on 16 seeds) the trees accept 94.6 % of
   the chains that are text and 38 chains of texture; the hand-set thresholds on the same
   measures that they replaced accepted 79 % and 600 (of 23,495 chains, measured with four
   levels, before colour flow was left out). A rejected chain gets a second look at its core (glyphs of one height on one line: text
   that texture or colour flow joined; a tall core must fill enough of its box, or it is colour
   flow's blobs). An accepted line takes in the glyphs of its band and colour up to three
   heights beyond its ends (a word chained apart, glyphs too few to be a line on their own), of
   either polarity (text over anatomy is brighter than some of it and darker than the rest),
   and glyphs of any colour on both its top and its baseline up to two heights beyond (its end
   over a background that changes its colour); glyphs on colour flow (left out of chains) only
   of its colour and on both its top and baseline, and only when none of them meets the line's
   own glyphs (text drawn on across flow, not a line among flow's blobs). Last, the line is
   followed along its band by its colour alone (regions within DELTA of its glyphs' colour that
   close within the band, of a glyph's height and on its top or baseline): low-contrast text
   whose letters the stroke contrast loses where the background under them changes; then again
   by the one level its letters are drawn in (within EXACT: where anatomy near that level runs
   into the letters within DELTA), unless the rows just above and below it are full of that
   level (clipped anatomy, a border, blobs); and its ends are taken across the background
   beyond them that is of that level (up to FLAT_REACH heights: letters drawn in the
   background's own level cannot be seen, and the line may go on under them). A chain the
   trees reject but do not rule out (probability at least RELOOK_P) is a line when its core's
   colour alone finds its letters, as tall as the line, in its band, or (grey text over
   anatomy of about its level) its one level finds them, spanning a share of its width.
   Glyphs in chains of two are chained again across wider gaps (a time's colons, lost as too
   small, part its pairs of digits), and there two glyphs are a chain when it is long and both are letters merged in
   pairs (a 7 px "09:58"); a chain of this loose pass must be as even as digits (one top,
   baseline and colour) and a pair needs a higher probability (PAIR_P). Glyphs left over are
   chained the same way down the columns (text rotated by 90 degrees), without the loose pass.
5. **Boxes** around each line, padded by the stroke halo across it (PAD px, whatever its
   height) and by a height at its ends (a last glyph lost on a background of its own colour).

All pixel work, and the walk down the trees, is in numba kernels (:mod:`medcloak_kernels.text`);
this module holds the decisions and their thresholds; the trees are data
(``data/text_lines.json``, written by ``benchmarks/train_text_lines.py``).
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
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
LEVELS = (LOW, 12, 20, 35, 50, 120)
#: the grey or value plane is searched a second time, 3 x 3 median-filtered (a speckle grain gone,
#: a stroke of 2 px or more kept: low-contrast text over speckle), at the first SMOOTH_LEVELS of
#: LEVELS; its glyphs are sources 4 (bright) and 5 (dark) for the trees. Both polarities: +0.0028 /
#: +0.0033 of the glyph pixels (seeds 0 / 1) at 0.54x the speed; the bright alone +0.0015 / +0.0021
#: at 0.73x (benchmarks/README.md)
SMOOTH_LEVELS = 3
#: ... and a chain of its glyphs is a line at a probability of at least SMOOTH_P
SMOOTH_P = 0.7
#: ... and its glyphs are chained down the columns too (rotated text) when SMOOTH_TURNED
SMOOTH_TURNED = False
#: ... the polarities searched on it (0: bright, 1: dark)
SMOOTH_SIDES = (0,)
#: the stroke contrast of texture (noise, speckle) is measured as its median in blocks of this
#: side, and this many times it is taken off the contrast in the block
BLOCK, NOISE = 64, 2.0
#: ... and in blocks of this side, the lower of the two kept: a filled box or a flat patch in
#: speckle is quiet even though its 64 px block is not
FINE = 16
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
#: glyphs of chains of two are chained again up to LOOSE_GAP x the taller's height apart
#: (a time's colons, lost as too small, leave gaps wider than GAP), and a chain of two glyphs
#: PAIR_WIDTH x its tallest glyph's height long is judged too (a small font's letters merged in
#: pairs: "09:58" at 7 px is two glyphs); 0 for none
LOOSE_GAP, PAIR_WIDTH = 1.6, 3.0
#: ... and such a pair is a line at a probability of at least PAIR_P (the trees were trained on
#: chains of three glyphs or more)
PAIR_P = 0.8
#: a line: at least MIN_GLYPHS glyphs; ALIGN_TOL x the line's median glyph height is how far
#: a glyph's top or bottom may lie from the line's to count as on it
MIN_GLYPHS, ALIGN_TOL = 3, 0.12
#: a chain of glyphs is a line of text when the classifier (data/text_lines.json, a boosted
#: ensemble of small decision trees over these measures of the chain, trained by
#: benchmarks/train_text_lines.py on frames of the test set's generator that the benchmark does
#: not use) gives it a probability of at least LINE_P. The measures: glyphs (n, and "glyphs" at
#: every level), the tallest and median glyph height, the chain's height and width, the shares
#: of glyphs on its top or baseline ("aligned") and on both, the glyphs' median, weakest and
#: strongest contrast, their block's texture level and the contrast over it ("snr"), the share
#: of tick-like glyphs, the glyphs' fill of the chain's box and of their own boxes ("solid"),
#: the share of letter-shaped glyphs (see WIDE), the spread of heights and colours, the median
#: and widest gap (in heights), the plane and polarity ("source"), the level, the strokes
#: crossed on a glyph's middle row ("runs"), the pixels of a glyph's one colour ("flat"),
#: whether the chain runs down the columns,
#: and height / tallest, height / median and width / tallest. A lower LINE_P (0.4 or 0.45, and
#: SMOOTH_P 0.6 or 0.65) covers more of seeds 0 and 1 (+0.0003 / +0.0011) but boxes 2-3 % of
#: a noisy MR frame without text (tests/test_text_detect.py: at most 1.5 %)
FEATURES = ("n", "top", "mh", "height", "width", "aligned", "both", "peak", "ticks", "fill", "letters",
            "heights", "colours", "weakest", "strongest", "gap", "widest_gap", "source", "level", "glyphs",
            "solid", "runs", "flat", "texture", "turned", "snr", "stretch", "drift", "aspect")
LINE_P = 0.5
#: an accepted line takes in glyphs of its band and colour (either polarity: text over anatomy is
#: brighter than some of it, darker than the rest) up to GROW x its height from its ends, at
#: least GROW_PEAK x as contrasted (the colour is the strong cue)
GROW, GROW_PEAK = 3.0, 0.1
#: ... and glyphs of any colour on both its top and its baseline up to GROW_ANY x its height (a
#: line's end over a background that changes the colour its glyphs are displayed in)
GROW_ANY = 2.0
#: a glyph on colour flow has its source (0-2) plus ASIDE: it makes no chain, and continues an
#: accepted line only in its band and colour (text drawn over flow, a line's end on flow)
ASIDE = 8
#: an accepted line is looked along by its colour alone (:func:`_rescan`): in its band and
#: RESCAN_BAND x its height above and below, up to RESCAN_REACH heights beyond its ends, glyphs
#: no more than RESCAN_GAP heights apart
RESCAN_BAND, RESCAN_REACH, RESCAN_GAP = 0.25, 6.0, 1.0
#: ... again from the ends found, at most this many times
RESCAN_ROUNDS = 8
#: ... and then again from the ends found by the one level its letters are drawn in
#: (:func:`_exact`), within EXACT (None: not), where at most EXACT_CLEAN of the band's margins
#: above and below the line are of that level: burned-in text is one value, smooth anatomy
#: reaches exactly that value only along thin contours, where within DELTA it runs into the
#: letters (low-contrast text over anatomy: +0.0020 / +0.0011 of the glyph pixels, seeds 0 / 1)
EXACT: int | None = 1
EXACT_CLEAN = 0.1
#: ... and its ends taken across a background of about that level (:func:`_flat_ends`): columns
#: of its rows at least FLAT_SHARE within FLAT_NEAR of it, up to FLAT_REACH heights (0: not):
#: white letters run on over clipped white anatomy, black ones over a black border, where no
#: pixel tells them (+0.0022 / +0.0003 of the glyph pixels, seeds 0 / 1, within 1 level); and
#: over anatomy that brightens or darkens towards their level, where they fade below the faintest
#: text looked for (within 12 rather than 1: +0.0002 / +0.0016 / +0.0018 at seeds 0 / 1 / 18,
#: false area on text frames +0.03 %)
FLAT_SHARE, FLAT_REACH, FLAT_NEAR = 0.9, 4.0, 12
#: a rejected chain of probability at least RELOOK_P whose core has, by its colour alone, at least
#: RELOOK_GLYPHS glyphs as tall as the line and RELOOK_SHARE of its own is a line (:func:`_by_colour`)
RELOOK_P, RELOOK_GLYPHS, RELOOK_SHARE = 0.05, 3, 0.5
#: ... or, when RELOOK_EXACT, a core of the grey or value plane (no more than RELOOK_COLOUR of its
#: box saturated colour: flow's blobs are of one level too) whose glyphs, by the one level its
#: letters are drawn in (:func:`_exact`, within EXACT, the band's margins at most EXACT_CLEAN of
#: it), are as many on its top or its baseline and span RELOOK_SPAN of its width (letters over
#: anatomy of about their own level, whose regions within DELTA run out of the band; a level's
#: grains in speckle or noise span little; a core of two is not enough): +0.0019 / +0.0010 of
#: the glyph pixels, seeds 0 / 1, false area on text frames +0.009 / +0.010 % (benchmarks/README.md)
RELOOK_EXACT, RELOOK_COLOUR, RELOOK_SPAN = True, 0.05, 0.25
#: a rejected chain's core: glyphs within CORE_RATIO of one height (chains of at most MAX_CORE)
CORE_RATIO, MAX_CORE = 1.5, 400
#: colour flow: pixels of chroma at least FLOW_CHROMA in regions that an opening by a square of
#: half side FLOW_RADIUS keeps, and the saturated pixels within FLOW_REACH of them
FLOW_CHROMA, FLOW_RADIUS, FLOW_REACH = 60, 4, 3
#: a glyph whose box is at least FLOW_SHARE colour flow is flow
FLOW_SHARE = 0.15
#: ... and flow is shaded: a saturated region where at least FLOW_UNIFORM of the pixels are of one
#: brightness (the mean of the channels, within FLOW_DELTA) is a filled box or a banner, not flow
FLOW_UNIFORM, FLOW_DELTA = 0.7, 3
#: ... or, for a region that fills FLOW_BOX of its box (a rectangle: flow's blobs are not), of
#: two brightnesses: a filled box and the letters drawn in it (29 px green letters on a lilac box
#: are a third of its pixels) at least FLOW_LONG times as long as wide (a line's box; a small
#: blob, opened, is nearly a square)
FLOW_BOX, FLOW_LONG = 0.9, 2.0
#: a core taller than TALL_CORE px on a colour frame must fill at least CORE_FILL of its box:
#: chains of colour Doppler's flow blobs (saturated, as bright as text) leave large, sparse cores
#: of a few blobs. Grey frames have no flow: there a 36 px serif line's core is as sparse
TALL_CORE, CORE_FILL = 24, 0.25
#: letters are about as wide as tall: glyphs wider than WIDE x their height must cross
#: RUNS x width / height strokes on their middle row (letters that touch)
WIDE, RUNS = 1.6, 0.5
#: glyphs at least THICK px in both directions, less than twice as long as wide (not a bar: a
#: bold I or 1), whose box is filled beyond MAX_FILL are blobs
MAX_FILL, THICK = 0.85, 5
#: a glyph's pixels at least half as contrasted as its strongest: at least this fraction
CORE = 0.5
#: ... or SMALL_CORE for a glyph at most SMALL px tall whose strongest pixel is at least SMALL_PEAK:
#: a 7-9 px font's anti-aliased strokes are one or two pixels wide, so half of a letter's pixels
#: are its edges' (a 9 px "17:39"); a strong peak keeps speckle out (+0.0004 / +0.0000 of the
#: glyph pixels and +0.28 / +0.09 % of the lines at seeds 0 / 1; without the peak +0.0007 /
#: -0.0001, more false area)
SMALL_CORE, SMALL, SMALL_PEAK = 0.3, 9, 50
#: box padding: across the line, PAD px whatever its height (the strokes' halo and anti-aliasing
#: beyond its glyphs' boxes; a share of the height only added area outside text, 3 px covers more
#: of small fonts than 2); at its ends, END_FRACTION of its height, and at least PAD px (a last
#: glyph lost on a background of its own colour)
PAD, END_FRACTION = 3, 1.0
#: robust extremes of deep frames: this many pixels (at least) lie beyond each
TAIL_FRACTION = 2e-4


def _display(image: np.ndarray, bits_stored: int | None) -> list[np.ndarray]:
    """The 8-bit planes searched for text: one for grey; value and chroma for RGB, and the mean
    of the channels (where colour flow's shading shows)."""
    from medcloak_kernels import text as k

    if image.ndim == 3:
        rgb = _rgb8(image, bits_stored)
        value, chroma = k.value_chroma(rgb)
        luma = k.channel_mean(rgb)
        return [value, chroma, luma]
    if image.ndim != 2:
        raise ValueError("a frame must be 2-D grey or H x W x 3 colour")
    if image.dtype == np.uint8:
        return [np.ascontiguousarray(image)]
    return [_to8(image, bits_stored)]


def _rgb8(image: np.ndarray, bits_stored: int | None) -> np.ndarray:
    """An H x W x 3 colour frame as 8-bit RGB (deeper channels each stretched as a grey plane)."""
    if image.shape[2] != 3:
        raise ValueError("a colour frame must be H x W x 3")
    rgb = image if image.dtype == np.uint8 else np.stack([_to8(image[..., c], bits_stored) for c in range(3)], -1)
    return np.ascontiguousarray(rgb)


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


def _level(strength: np.ndarray, fine: bool) -> np.ndarray:
    """The texture level of a stroke contrast, one per FINE block: the median of its FINE
    block or of its BLOCK, whichever is lower; only the BLOCK's where not ``fine`` (a frame
    with colour flow: flow's blobs are flat inside, and their small blocks would be quiet)."""
    from medcloak_kernels import text as k

    r = BLOCK // FINE
    by, bx = -(-strength.shape[0] // FINE), -(-strength.shape[1] // FINE)
    if fine:
        small, large = k.block_medians(strength, FINE, BLOCK)
    else:
        large = k.block_median(strength, BLOCK)
    coarse = np.repeat(np.repeat(large, r, 0), r, 1)[:by, :bx]
    return np.minimum(small, coarse) if fine else np.ascontiguousarray(coarse)


def _texture(level: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The texture level (``level``: one per FINE block, as from :func:`_level`) of the block at
    the centre of each row of a component table."""
    from medcloak_kernels import text as k

    return level[((t[:, k.Y0] + t[:, k.Y1]) // 2) // FINE, ((t[:, k.X0] + t[:, k.X1]) // 2) // FINE]


def _glyph_like(t: np.ndarray, texture: np.ndarray | None = None) -> np.ndarray:
    """The rows of a component table that are glyph-like. With ``texture`` (each row's, from
    :func:`_texture`), a glyph in a quiet block needs only QUIET_HIGH."""
    from medcloak_kernels import text as k

    w = t[:, k.X1] - t[:, k.X0]
    h = t[:, k.Y1] - t[:, k.Y0]
    area = t[:, k.AREA]
    fill = area / np.maximum(w * h, 1)
    strong = t[:, k.PEAK] >= HIGH
    if texture is not None:
        strong |= (texture <= QUIET) & (t[:, k.PEAK] >= QUIET_HIGH)
    small = np.minimum(w, h) <= MAX_GLYPH
    thin = (fill <= MAX_FILL) | (np.minimum(w, h) < THICK) | (np.maximum(w, h) >= 2 * np.minimum(w, h))
    core = np.where((h <= SMALL) & (t[:, k.PEAK] >= SMALL_PEAK), SMALL_CORE, CORE)
    return strong & small & thin & (np.maximum(w, h) >= MIN_GLYPH) & (t[:, k.CORE] >= core * area)


def _colour_flow(chroma: np.ndarray, luma: np.ndarray, rgb: np.ndarray | None = None) -> np.ndarray | None:
    """The summed-area table (one more row and column, of zeros, first) of the colour flow
    (Doppler) of an RGB frame, from its chroma and the mean of its channels (``luma``):
    saturated pixels (chroma at least FLOW_CHROMA) of regions wider than any stroke (what an
    opening by a square of side 2 * FLOW_RADIUS + 1 keeps: a 40 px bold font's strokes are about
    7 px) and shaded (flow's blobs are shaded from dark to bright; a box or banner filled with
    one colour is not: most of its pixels have one brightness), and the saturated pixels within
    FLOW_REACH of them (the thin edges and tendrils of the same blobs). Coloured text is thin
    strokes of saturated colour on their own: none of it is flow. Flow's blobs, as bright as text
    and as varied in size, chain like words: a glyph whose box is FLOW_SHARE flow is left out (so
    is text drawn over flow; pydicom's real power Doppler frame US1 has 13 % of its flow boxed
    instead of 40 %). With ``rgb`` (the frame, 8-bit), green pixels are never flow: Doppler's
    colour maps have none, and green letters touching flow's blobs would be taken into them.
    ``None`` when there is no flow."""
    from medcloak_kernels import text as k

    saturated = np.where(chroma >= FLOW_CHROMA, np.uint8(255), np.uint8(0))
    cores = k.min_filter(saturated, FLOW_RADIUS)
    if not cores.any():  # no saturated square that wide: coloured text, or no colour at all
        return None
    if rgb is not None:  # green is never flow (Doppler's maps run red-yellow and blue-cyan)
        g = rgb[..., 1].astype(np.int16)
        green = g - np.maximum(rgb[..., 0], rgb[..., 2]) >= FLOW_CHROMA
        if green.any():
            saturated[green] = 0
            cores = k.min_filter(saturated, FLOW_RADIUS)
            if not cores.any():
                return None
    thick = k.max_filter(cores, FLOW_RADIUS)
    labels, regions = k.components(thick, 1, luma, FLOW_DELTA)
    shaded = regions[:, k.FLAT] < FLOW_UNIFORM * regions[:, k.AREA]  # not a filled box or banner
    # ... nor one with letters in it: a box (a rectangle) and its letters are two brightnesses
    w, h = regions[:, k.X1] - regions[:, k.X0], regions[:, k.Y1] - regions[:, k.Y0]
    box = shaded & (regions[:, k.AREA] >= FLOW_BOX * w * h) & (np.maximum(w, h) >= FLOW_LONG * np.minimum(w, h))
    if box.any():
        shaded &= ~box | (regions[:, k.FLAT] + _second_flat(labels, luma, regions, box) < FLOW_UNIFORM * regions[:, k.AREA])
    if not shaded.any():
        return None
    thick = np.where(np.r_[False, shaded][labels], np.uint8(255), np.uint8(0))
    flow = (k.max_filter(thick, FLOW_REACH) > 0) & (saturated > 0)
    summed = np.zeros((flow.shape[0] + 1, flow.shape[1] + 1), np.int32)
    np.cumsum(flow, axis=0, dtype=np.int32, out=summed[1:, 1:])
    np.cumsum(summed[1:, 1:], axis=1, out=summed[1:, 1:])
    return summed


def _second_flat(labels: np.ndarray, luma: np.ndarray, regions: np.ndarray, which: np.ndarray) -> np.ndarray:
    """For each region (rows of ``regions``, a component table over ``luma``; ``labels`` its
    labels) of ``which``: how many of its pixels lie within FLOW_DELTA of one brightness whose
    window does not overlap its mode's (more than 2 x FLOW_DELTA from it): a filled box's letters,
    drawn in one colour; 0 for the others."""
    from medcloak_kernels import text as k

    out = np.zeros(len(regions), np.int64)
    lab = labels.ravel()
    inside = np.flatnonzero(np.r_[False, which][lab])
    if inside.size == 0:
        return out
    pick = np.cumsum(np.r_[0, which]) - 1  # region label -> row among those asked
    n = int(which.sum())
    hist = np.bincount(pick[lab[inside]] * 256 + luma.ravel()[inside], minlength=n * 256).reshape(n, 256)
    mode = regions[which, k.MODE].astype(np.int64)
    near = np.abs(np.arange(256)[None, :] - mode[:, None]) <= 2 * FLOW_DELTA  # windows that overlap the mode's
    hist[near] = 0
    window = np.cumsum(np.c_[np.zeros((n, 1), np.int64), hist], axis=1)
    w = 2 * FLOW_DELTA + 1
    out[which] = (window[:, w:] - window[:, :-w]).max(axis=1) if window.shape[1] > w else 0
    return out


def _share(summed: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The share of each component's box (rows of a component table) that ``summed`` (a
    summed-area table of a mask, as from :func:`_colour_flow`) covers."""
    x0, y0, x1, y1 = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
    inside = summed[y1, x1] - summed[y0, x1] - summed[y1, x0] + summed[y0, x0]
    return inside / np.maximum(1, (x1 - x0) * (y1 - y0))


def _glyphs(planes: list[np.ndarray], rgb: np.ndarray | None = None) -> np.ndarray:
    """The component table of the frame's stroke contrast, glyph-like rows only, with three more
    columns: the texture level of its block (from :func:`_level`), the level
    (index in :data:`LEVELS`) and where each came from (0: bright on the value or grey plane, 1: dark, 2:
    bright on the chroma plane; ASIDE more for a glyph on colour flow, which only continues a line).
    ``rgb``: a colour frame's 8-bit channels, for :func:`_colour_flow`."""
    from medcloak_kernels import text as k

    tables = []
    flow = _colour_flow(planes[1], planes[2], rgb) if len(planes) > 2 else None
    for i, plane in enumerate(planes[:2]):
        if i == 0:
            # each polarity on its own: the gaps between bright glyphs are dark details themselves
            contrasts = k.tophats(plane, RADIUS)
        elif int(plane.max()) >= HIGH:  # chroma: coloured text on grey (none on a grey frame)
            contrasts = (k.white_tophat(plane, RADIUS),)
        else:
            continue
        for j, strength in enumerate(contrasts):
            level = _level(strength, flow is None)
            excess = k.above_level(strength, level, FINE, NOISE)
            # every level (text touching bright anatomy parts from it higher up) in one call, up
            # to the first that nothing reaches
            t, starts = k.level_components(excess, np.asarray(LEVELS, np.int64), plane, DELTA)
            n = np.repeat(np.arange(len(LEVELS)), np.diff(starts))
            texture = _texture(level, t)
            good = _glyph_like(t, texture if i == 0 else None)
            src = np.full(len(t), 2 * i + j)
            if flow is not None and len(t):
                src[_share(flow, t) >= FLOW_SHARE] += ASIDE  # on flow: only to continue a line
            tables.append(np.c_[t[good], texture[good], n[good], src[good]])
    if SMOOTH_LEVELS:
        tables += _smoothed_glyphs(planes[0], flow)
    return np.concatenate(tables)


def _plane(src: int) -> int:
    """The display plane a glyph source was found on: 0 (grey or value) for the bright and dark
    strokes of the plane and of its median-filtered copy (sources 0, 1, 4, 5), 1 for the chroma's
    (2, 3)."""
    src %= ASIDE
    return 0 if src >= 4 else src // 2


def _smoothed_glyphs(plane: np.ndarray, flow: np.ndarray | None) -> list[np.ndarray]:
    """The glyph tables (as in :func:`_glyphs`) of the grey or value plane 3 x 3 median-filtered,
    bright (source 4) and dark (source 5) as SMOOTH_SIDES asks, at the first SMOOTH_LEVELS of
    LEVELS: faint strokes over speckle that the speckle's grains break apart or join to each other
    stand alone. Its lines are not looked for down the columns (SMOOTH_TURNED)."""
    from medcloak_kernels import text as k

    tables = []
    levels = np.asarray(LEVELS[:SMOOTH_LEVELS], np.int64)
    smooth = k.median3(plane)
    if SMOOTH_SIDES == (0, 1):
        contrasts = k.tophats(smooth, RADIUS)
    else:  # one polarity: the white top-hat of the plane or of its negative
        contrasts = tuple(k.white_tophat(smooth if j == 0 else 255 - smooth, RADIUS) for j in SMOOTH_SIDES)
    for j, strength in zip(SMOOTH_SIDES, contrasts):
        level = _level(strength, flow is None)
        excess = k.above_level(strength, level, FINE, NOISE)
        t, starts = k.level_components(excess, levels, plane, DELTA)
        n = np.repeat(np.arange(len(levels)), np.diff(starts))
        texture = _texture(level, t)
        good = _glyph_like(t, texture)
        if flow is not None and len(t):
            good &= _share(flow, t) < FLOW_SHARE
        tables.append(np.c_[t[good], texture[good], n[good], np.full(np.count_nonzero(good), 4 + j)])
    return tables


def _chains(table: np.ndarray, idx: np.ndarray, gap: float = GAP, pairs: bool = False,
            two: list | None = None) -> list[np.ndarray]:
    """The rows ``idx`` of the glyph table chained into horizontal lines (each chain's rows;
    linked with glyphs up to ``gap`` heights apart), those with fewer than MIN_GLYPHS glyphs or
    no glyph MIN_LINE tall left out; with ``pairs`` (the loose pass), two glyphs are enough when
    the chain is at least PAIR_WIDTH of its tallest glyph's heights long (letters merged in
    pairs), and every chain kept must be even (:func:`_even`). ``two`` (a list) receives the
    rows of the chains of two glyphs left out, as one array (the loose pass's glyphs)."""
    from medcloak_kernels import text as k

    boxes = table[idx, :4]
    h = boxes[:, 3] - boxes[:, 1]
    idx = idx[(h >= MIN_GLYPH) & (h <= MAX_GLYPH)]
    if idx.size == 0:
        return []
    roots = k.link_lines(np.ascontiguousarray(table[idx, :4]), gap, OVERLAP, RATIO, ALIGN)
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
    if two is not None:
        two.append(idx[order[np.repeat((count == 2) & (tall >= MIN_LINE), ends - starts)]])
    if pairs:
        width = np.maximum.reduceat(table[idx[order], 2], starts) - np.minimum.reduceat(table[idx[order], 0], starts)
        keep |= (count == 2) & (tall >= MIN_LINE) & (width >= PAIR_WIDTH * tall)
        cand = np.flatnonzero(keep)
        if len(cand):
            sub = keep[chain]  # the rows of the candidate chains, in chain order
            keep[cand] = _even(table[idx[order[sub]]], np.searchsorted(cand, chain[sub]), len(cand))
    return [idx[order[s:e]] for s, e, ok in zip(starts, ends, keep) if ok]


def _even(rows: np.ndarray, chain: np.ndarray, n: int) -> np.ndarray:
    """Which of ``n`` chains of the loose pass (``rows`` of the glyph table, in the order of
    ``chain``, each row's chain; their most populous level's glyphs taken) are as even as a
    time's or a date's digits: all of one top and one baseline (within a pixel) and of one colour
    (within DELTA of each other); two glyphs must also be letters merged in pairs (each at least
    as wide as tall, crossing two strokes or more on its middle row). Texture, or colour flow's
    blobs, chained across wide gaps seldom are."""
    from medcloak_kernels import text as k

    level = rows[:, -2]
    levels = int(level.max()) + 1
    best = np.bincount(chain * levels + level, minlength=n * levels).reshape(n, levels).argmax(axis=1)
    same = level == best[chain]
    rows, chain = rows[same], chain[same]
    starts = np.flatnonzero(np.r_[True, chain[1:] != chain[:-1]])

    def spread(v: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(v, starts) - np.minimum.reduceat(v, starts)

    w, h = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    ok = (spread(rows[:, 1]) <= 1) & (spread(rows[:, 3]) <= 1) & (spread(rows[:, k.MODE]) <= DELTA)
    merged = np.minimum.reduceat(((w >= h) & (rows[:, k.RUNS_H] >= 2)).astype(np.int8), starts) > 0
    return ok & (merged | (np.diff(np.r_[starts, len(rows)]) != 2))


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


@functools.lru_cache(maxsize=1)
def _model() -> dict:
    """The trained line classifier (``data/text_lines.json``), its trees as flat arrays."""
    return _load(json.loads(files("medcloak.pixels").joinpath("data/text_lines.json").read_text()))


def _load(data: dict) -> dict:
    """A line classifier as written by ``benchmarks/train_text_lines.py``, its trees as flat arrays."""
    if tuple(data["features"]) != FEATURES:
        raise RuntimeError("text_lines.json was trained on other features: train it again")
    t = data["trees"]
    return {
        "baseline": float(data["baseline"]),
        "arrays": (np.asarray(t["feature"], np.int32), np.asarray(t["threshold"], np.float64),
                   np.asarray(t["left"], np.int32), np.asarray(t["right"], np.int32),
                   np.asarray(t["value"], np.float64), np.asarray(t["roots"], np.int32)),
    }


def probability(features: np.ndarray) -> np.ndarray:
    """The classifier's probability that each row of ``features`` (chains x :data:`FEATURES`)
    is a line of text."""
    from medcloak_kernels import text as k

    m = _model()
    if len(features) == 0:
        return np.zeros(0)
    raw = m["baseline"] + k.forest(np.ascontiguousarray(features, np.float64), *m["arrays"])
    return 1.0 / (1.0 + np.exp(-raw))


def needed(features: np.ndarray) -> np.ndarray:
    """The probability each chain (rows of ``features``, chains x :data:`FEATURES`) needs to be a
    line: LINE_P; SMOOTH_P on the smoothed plane; at least PAIR_P for a pair of the loose pass."""
    least = np.where(features[:, FEATURES.index("source")] >= 4, SMOOTH_P, LINE_P)
    return np.where(features[:, FEATURES.index("n")] < MIN_GLYPHS, np.maximum(least, PAIR_P), least)


def _judge(table: np.ndarray, chains: list[np.ndarray], turned: bool, core: bool,
           record: list | None, probs: list | None = None, colour: bool = True) -> list[bool]:
    """Which chains are lines of text: the classifier's probability (on the chains' measures,
    :func:`medcloak_kernels.text.chain_features`) at least LINE_P, and for a rejected chain's
    core (``core``) of a colour frame (``colour``), not a tall, sparse core (colour flow's
    blobs). ``probs`` (a list) receives the probabilities."""
    from medcloak_kernels import text as k

    if not chains:
        return []
    starts = np.zeros(len(chains) + 1, np.int64)
    np.cumsum([len(m) for m in chains], out=starts[1:])
    boxes, x = k.chain_features(table, np.concatenate(chains).astype(np.int64), starts, int(turned), WIDE, RUNS,
                                ALIGN_TOL)
    if record is not None:
        record.extend((tuple(int(v) for v in box), row, core) for box, row in zip(boxes, x))
    p = probability(x)
    if probs is not None:
        probs.extend(float(v) for v in p)
    top, fill = x[:, FEATURES.index("top")], x[:, FEATURES.index("fill")]
    ok = (p >= needed(x)) & (top >= MIN_LINE) & ~(core & colour & (top > TALL_CORE) & (fill < CORE_FILL))
    return [bool(v) for v in ok]


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
    aside = cand[:, -1] >= ASIDE
    ok &= np.where(aside, same & both, same | both)
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


def _on_flow(table: np.ndarray, members: np.ndarray) -> bool:
    """Whether a glyph on colour flow (source ASIDE or more) meets the box of a line's glyphs."""
    aside = table[table[:, -1] >= ASIDE]
    if len(aside) == 0:
        return False
    rows = table[members]
    x0, y0, x1, y1 = rows[:, 0].min(), rows[:, 1].min(), rows[:, 2].max(), rows[:, 3].max()
    return bool(((aside[:, 0] < x1) & (aside[:, 2] > x0) & (aside[:, 1] < y1) & (aside[:, 3] > y0)).any())


def _margins_hold(near: np.ndarray, m: int, share: float) -> bool:
    """Whether more than ``share`` of the first or the last ``m`` rows of a line's band (the
    mask ``near`` of a colour or level over it) is marked: the colour is its background's there."""
    return max(np.count_nonzero(near[:m]), np.count_nonzero(near[-m:])) > share * near[:m].size


def _colour_glyphs(plane: np.ndarray, rows: np.ndarray, colour: float, x0: int, x1: int, both: bool = False,
                   delta: int = DELTA, clean: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The glyphs of a line (its glyphs' table ``rows``) found by its colour alone between x0 and
    x1 of ``plane``: in the line's band (its rows and RESCAN_BAND x its height above and below),
    the 8-connected regions of pixels within ``delta`` of ``colour`` that close within the band (a
    region of the background's own colour runs out of it), of a glyph's height, on the line's top
    or baseline and not a filled patch (as :func:`_glyph_like`): their x0 and x1; ``None`` when
    the band leaves the frame; none when ``clean`` is given and more than that share of the
    rows above or below the line (the band's margins) is of the colour (a level the background
    is made of there: clipped anatomy, a dark border, blobs)."""
    from medcloak_kernels import text as k

    y0, y1 = int(rows[:, 1].min()), int(rows[:, 3].max())
    height = y1 - y0
    mh = float(np.median(rows[:, 3] - rows[:, 1]))
    m = max(2, round(RESCAN_BAND * height))
    ny, nx = plane.shape
    by0, by1 = y0 - m, y1 + m
    if by0 < 0 or by1 > ny:
        return None
    bx0, bx1 = max(0, x0), min(nx, x1)
    crop = np.ascontiguousarray(plane[by0:by1, bx0:bx1])
    near = np.where(np.abs(crop.astype(np.int16) - round(colour)) <= delta, np.uint8(255), np.uint8(0))
    if clean is not None and _margins_hold(near, m, clean):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    t = k.components(near, 1, crop, DELTA)[1]
    h = t[:, 3] - t[:, 1]
    w = t[:, 2] - t[:, 0]
    tol = max(1.0, ALIGN_TOL * height)
    ok = (t[:, 1] > 0) & (t[:, 3] < by1 - by0) & (h >= 0.5 * mh) & (h <= height + 2 * tol)
    on_top, on_base = np.abs(t[:, 1] + by0 - y0) <= tol, np.abs(t[:, 3] + by0 - y1) <= tol
    ok &= (on_top & on_base) if both else (on_top | on_base)
    thin = (t[:, k.AREA] <= MAX_FILL * w * h) | (np.minimum(w, h) < THICK) | (np.maximum(w, h) >= 2 * np.minimum(w, h))
    ok &= thin & ((w <= WIDE * h) | (t[:, k.RUNS_H] >= 2))
    return t[ok, 0] + bx0, t[ok, 2] + bx0


def _grey(chroma: np.ndarray, rows: np.ndarray) -> bool:
    """Whether the box of glyphs (table ``rows``) is grey in the ``chroma`` plane: at most
    RELOOK_COLOUR of it of chroma FLOW_CHROMA or more (flow's blobs are of one level too)."""
    crop = chroma[int(rows[:, 1].min()):int(rows[:, 3].max()), int(rows[:, 0].min()):int(rows[:, 2].max())]
    return crop.size == 0 or np.count_nonzero(crop >= FLOW_CHROMA) <= RELOOK_COLOUR * crop.size


def _by_colour(plane: np.ndarray, rows: np.ndarray, exact: bool = False) -> bool:
    """Whether the glyphs of a rejected chain's core (table ``rows``) are a line by their colour
    alone: at least RELOOK_GLYPHS, and RELOOK_SHARE of the core's glyphs of its most populous
    level, found by :func:`_colour_glyphs` over its width on both its top and its baseline (on
    either, the grains of a noisy MR's texture in a band are one colour as often as letters);
    or, with ``exact`` and at least MIN_GLYPHS glyphs, as many found by the one level its
    letters are drawn in (:func:`_exact`, within EXACT, margins at most EXACT_CLEAN of it) on
    its top or its baseline, together at least RELOOK_SPAN of its width (a level's grains in
    texture are small and few)."""
    from medcloak_kernels import text as k

    found = _colour_glyphs(plane, rows, float(np.median(rows[:, k.MODE])), int(rows[:, 0].min()), int(rows[:, 2].max()),
                           True)
    if found is None:
        return False
    least = max(RELOOK_GLYPHS, RELOOK_SHARE * int(np.bincount(rows[:, -2]).max()))
    if len(found[0]) >= least:
        return True
    if not exact or EXACT is None or len(rows) < MIN_GLYPHS:  # a core of two: a level's two blobs
        return False
    colour = float(np.median(rows[:, k.MODE]))
    level = _exact(plane, rows, colour)
    found = _colour_glyphs(plane, rows, level, int(rows[:, 0].min()), int(rows[:, 2].max()), False, EXACT, EXACT_CLEAN)
    if found is None or len(found[0]) < least:
        return False
    return int((found[1] - found[0]).sum()) >= RELOOK_SPAN * (int(rows[:, 2].max()) - int(rows[:, 0].min()))


def _rescan(plane: np.ndarray, rows: np.ndarray, colour: float, delta: int = DELTA, clean: float | None = None,
            ends: tuple[int, int] | None = None) -> tuple[int, int]:
    """How far along a line of text (its glyphs' table ``rows``, of colour ``colour`` in
    ``plane``) its glyphs go when looked for by their colour alone (:func:`_colour_glyphs`, within
    ``delta`` and, with ``clean``, only where the rows just above and below the line are that
    clean of the colour) up to RESCAN_REACH heights beyond its ends (``ends``, or its glyphs'),
    again from the ends found, up to RESCAN_ROUNDS times, taken one after the other while no gap
    is wider than RESCAN_GAP heights: the line's new ends (x0, x1)."""
    x0, x1 = (int(rows[:, 0].min()), int(rows[:, 2].max())) if ends is None else ends
    height = int(rows[:, 3].max() - rows[:, 1].min())
    reach = round(RESCAN_REACH * height)
    nx = plane.shape[1]
    for _ in range(RESCAN_ROUNDS):  # each round looks RESCAN_REACH heights beyond the ends found
        bx0, bx1 = max(0, x0 - reach), min(nx, x1 + reach)
        found = _colour_glyphs(plane, rows, colour, bx0, bx1, delta=delta, clean=clean)
        if found is None:
            break
        gx0, gx1 = found
        start = (x0, x1)
        while True:
            gap = np.maximum(gx0 - x1, x0 - gx1)
            more = (gap <= RESCAN_GAP * height) & ((gx0 < x0) | (gx1 > x1))
            if not more.any():
                break
            x0 = min(x0, int(gx0[more].min()))
            x1 = max(x1, int(gx1[more].max()))
        if (x0, x1) == start or not (x0 - bx0 < reach // 2 and bx0 > 0 or bx1 - x1 < reach // 2 and bx1 < nx):
            break
    return x0, x1


def _exact(plane: np.ndarray, rows: np.ndarray, colour: float) -> int:
    """The one level a line's letters are drawn in (its glyphs' table ``rows``, of colour
    ``colour`` within DELTA): the most common level within DELTA of it over the line's box."""
    y0, y1, x0, x1 = int(rows[:, 1].min()), int(rows[:, 3].max()), int(rows[:, 0].min()), int(rows[:, 2].max())
    crop = plane[y0:y1, x0:x1].ravel()
    lo = max(0, round(colour) - DELTA)
    hist = np.bincount(crop[(crop >= lo) & (crop <= round(colour) + DELTA)], minlength=256)
    return int(np.argmax(hist))


def _flat_ends(plane: np.ndarray, rows: np.ndarray, level: int, x0: int, x1: int) -> tuple[int, int]:
    """A line's ends (x0, x1; its glyphs' table ``rows``) taken across the background beyond
    them that is of about its letters' one ``level`` (within FLAT_NEAR): columns of the line's
    rows at least FLAT_SHARE of that level, in a run of at least half its height that starts within
    RESCAN_GAP heights of the end, up to FLAT_REACH heights (letters of the background's own
    level are not to be seen; the line may go on under them). Only when the rows just above
    and below the line's glyphs hold at most EXACT_CLEAN of the level: where the line is seen,
    the level is its letters', not its background's (the gaps between bright letters on a
    dark border are a dark line of the border's level)."""
    y0, y1 = int(rows[:, 1].min()), int(rows[:, 3].max())
    height = y1 - y0
    reach, gap, least = round(FLAT_REACH * height), round(RESCAN_GAP * height), max(2, height // 2)
    nx = plane.shape[1]
    ends = [x0, x1]
    m = max(2, round(RESCAN_BAND * height))
    if y0 - m < 0 or y1 + m > plane.shape[0]:
        return x0, x1
    fx0, fx1 = int(rows[:, 0].min()), int(rows[:, 2].max())
    seen = np.abs(plane[y0 - m:y1 + m, fx0:fx1].astype(np.int16) - level) <= EXACT
    if _margins_hold(seen, m, EXACT_CLEAN):  # where the line is seen, the level is not its background's
        return x0, x1
    for side, (a, b) in enumerate(((max(0, x0 - reach), x0), (x1, min(nx, x1 + reach)))):
        if b - a < least:
            continue
        band = plane[y0:y1, a:b].astype(np.int16)
        flat = (np.abs(band - level) <= FLAT_NEAR).mean(axis=0) >= FLAT_SHARE
        if side == 0:
            flat = flat[::-1]  # outwards from the end
        edges = np.diff(np.r_[0, flat.astype(np.int8), 0])
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        ok = (starts <= gap) & (stops - starts >= least)
        if ok.any():
            far = int(stops[ok][0])
            ends[side] = x0 - far if side == 0 else x1 + far
    return ends[0], ends[1]


def _lines(table: np.ndarray, turned: bool = False,
           record: list | None = None, planes: list[np.ndarray] | None = None,
           ) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """Lines among the glyphs, each polarity and plane on its own (the dark gaps between bright
    letters are glyph-like too, and would blur the letters' measures): the accepted lines' boxes,
    and a mask of the glyphs used by them. A rejected chain gets a second look at its core
    (:func:`_core`); glyphs in chains of two are
    chained again by the loose pass (LOOSE_GAP, rows only); an accepted line takes in the glyphs that
    continue it (:func:`_grow`).
    ``record`` (a list) receives every chain judged: its box, its measures, whether a core."""
    from medcloak_kernels import text as k

    used = np.zeros(len(table), bool)
    colour_frame = planes is None or len(planes) > 1  # its planes: value, chroma, mean of the channels
    out = []
    for src in np.unique(table[:, -1]):
        if src >= ASIDE:
            continue
        mine = np.flatnonzero(table[:, -1] == src)
        two: list = []
        chains = [m for m in _chains(table, mine, two=two) if len(m) >= MIN_GLYPHS]  # most: a glyph or two of texture
        probs: list = []
        ok = _judge(table, chains, turned, False, record, probs)
        lines = [m for m, yes in zip(chains, ok) if yes]
        cores = []
        for members, yes, p in zip(chains, ok, probs):
            if not yes and len(members) <= MAX_CORE:
                core = _core(table, members)
                if planes is not None and p >= RELOOK_P and _by_colour(
                        planes[_plane(src)], table[core],
                        RELOOK_EXACT and _plane(src) == 0 and (len(planes) < 2 or _grey(planes[1], table[core]))):
                    lines.append(core)
                elif len(core) < len(members):
                    cores.append(core)
        # every core chained in one call: glyphs of two chains are never linked, so the parts are
        # those of each core on its own, in the same order
        parts = [part for part in _chains(table, np.concatenate(cores)) if len(part) >= MIN_GLYPHS] if cores else []
        lines += [m for m, yes in zip(parts, _judge(table, parts, turned, True, record, colour=colour_frame)) if yes]
        if LOOSE_GAP and not turned and two and len(two[0]):
            # glyphs in chains of two: chained again with wider gaps (a time's colons lost), two
            # glyphs enough for a long chain (a small font's letters merged in pairs)
            loose = _chains(table, two[0], LOOSE_GAP, True)
            lines += [m for m, yes in zip(loose, _judge(table, loose, turned, False, record)) if yes]
        for members in lines:
            used[members] = True
        for members in lines:
            pool = ((table[:, -1] % ASIDE) // 2 == src // 2) & ~used
            if _on_flow(table, members):  # a line among flow's blobs: none of them continue it
                pool &= table[:, -1] < ASIDE
            colour = float(np.median(table[members, k.MODE]))
            first = table[members]
            members = _grow(table, members, np.flatnonzero(pool))
            used[members] = True
            rows = table[members]
            x0, x1 = int(rows[:, 0].min()), int(rows[:, 2].max())
            if planes is not None:
                plane = planes[_plane(src)]
                base = first if len(rows) == len(first) else rows
                x0, x1 = _rescan(plane, base, colour)
                x0, x1 = min(x0, int(rows[:, 0].min())), max(x1, int(rows[:, 2].max()))
                if EXACT is not None:  # again by the one level its letters are drawn in
                    level = _exact(plane, base, colour)
                    x0, x1 = _rescan(plane, base, level, EXACT, EXACT_CLEAN, (x0, x1))
                    if FLAT_REACH:
                        x0, x1 = _flat_ends(plane, base, level, x0, x1)
            out.append((x0, int(rows[:, 1].min()), x1, int(rows[:, 3].max())))
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
    if not image.dtype.isnative:  # big-endian stored values (pydicom gives them as they are)
        image = image.astype(image.dtype.newbyteorder("="))
    return _detect(image, bits_stored)


def _detect(image: np.ndarray, bits_stored: int | None, record: list | None = None) -> list[tuple[int, int, int, int]]:
    """:func:`detect_text`; ``record`` (a list) receives every chain judged, as ``(turned, box,
    measures, core)``, the box in the chain's own frame (x along it): what the classifier is
    trained on."""
    if image.size == 0:
        return []
    ny, nx = image.shape[:2]
    from medcloak_kernels import text as k

    planes = _display(image, bits_stored)
    table = _glyphs(planes, _rgb8(image, bits_stored) if image.ndim == 3 else None)
    rows: list | None = [] if record is not None else None
    found, used = _lines(table, False, rows, planes)
    rest = table[~used & ((table[:, -1] % ASIDE < 4) | SMOOTH_TURNED)]  # rotated text: not on the smoothed plane
    if len(rest):
        turned = rest.copy()
        turned[:, :4] = rest[:, [1, 0, 3, 2]]  # columns as rows: text rotated by 90 degrees
        turned[:, [k.RUNS_H, k.RUNS_V]] = rest[:, [k.RUNS_V, k.RUNS_H]]
        vertical, _ = _lines(turned, True, rows, [p.T for p in planes])
    else:
        vertical = []
    if record is not None and rows is not None:
        record.extend((f[FEATURES.index("turned")] == 1, box, f, core) for box, f, core in rows)
    out = []
    for turn, lines in ((False, found), (True, vertical)):
        for x0, y0, x1, y1 in lines:  # in the line's own frame: x along it, y across
            across = PAD
            along = max(PAD, round(END_FRACTION * (y1 - y0)))
            box = (x0 - along, y0 - across, x1 + along, y1 + across)
            if turn:
                box = (box[1], box[0], box[3], box[2])
            out.append((max(0, box[0]), max(0, box[1]), min(nx, box[2]), min(ny, box[3])))
    return out
