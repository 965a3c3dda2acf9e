"""Burned-in text detection kernels on 2-D frames: contrast stretching, the frame's value and
chroma (RGB), square minimum and maximum filters (van Herk / Gil-Werman: three comparisons a
pixel whatever the size), the white and black top-hats they make, 8-connected components with
their boxes, and the grouping of character-sized components into lines of text.

Every function is pure: arrays and scalars in, arrays out. The decisions (which scale, which
thresholds, which lines are text) are taken by :mod:`medcloak.pixels.text`.
"""

from __future__ import annotations

import numba
import numpy as np

from .jit import kernel

# columns of the component table made by :func:`components`
X0, Y0, X1, Y1, AREA, PEAK, CORE, MODE, FLAT, RUNS_H, RUNS_V = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
NSTAT = 11


@kernel
def stretch(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``img`` (2-D, any numeric type) mapped linearly from [lo, hi] to [0, 255] and clipped, as
    uint8 (rounded half up); all 0 when ``hi <= lo``."""
    ny, nx = img.shape
    out = np.zeros((ny, nx), np.uint8)
    if hi <= lo:
        return out
    scale = 255.0 / (hi - lo)
    for y in range(ny):
        for x in range(nx):
            v = (float(img[y, x]) - lo) * scale + 0.5
            if v <= 0.0:
                out[y, x] = 0
            elif v >= 255.0:
                out[y, x] = 255
            else:
                out[y, x] = np.uint8(v)
    return out


@kernel
def value_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The value (largest of R, G, B) and the chroma (largest minus smallest) of an
    H x W x 3 uint8 frame: white, grey and coloured text are bright in the value, coloured text
    over grey anatomy stands out in the chroma."""
    ny, nx, _ = rgb.shape
    v = np.empty((ny, nx), np.uint8)
    c = np.empty((ny, nx), np.uint8)
    for y in range(ny):
        for x in range(nx):
            r = rgb[y, x, 0]
            g = rgb[y, x, 1]
            b = rgb[y, x, 2]
            hi = max(r, max(g, b))
            lo = min(r, min(g, b))
            v[y, x] = hi
            c[y, x] = hi - lo
    return v, c


@kernel
def channel_mean(rgb: np.ndarray) -> np.ndarray:
    """The mean of the channels of an H x W x 3 uint8 frame, rounded down, uint8."""
    ny, nx, _ = rgb.shape
    out = np.empty((ny, nx), np.uint8)
    for y in range(ny):
        for x in range(nx):
            out[y, x] = (np.uint16(rgb[y, x, 0]) + np.uint16(rgb[y, x, 1]) + np.uint16(rgb[y, x, 2])) // 3
    return out


@kernel
def median3(img: np.ndarray) -> np.ndarray:
    """The median of each pixel's 3 x 3 neighbourhood of a uint8 frame, the edge rows and
    columns repeated beyond the frame. Each column's three values are sorted once; the median of
    nine is then the median of the largest of the three smallest, the median of the three middles
    and the smallest of the three largest."""
    ny, nx = img.shape
    out = np.empty((ny, nx), np.uint8)
    if ny == 0 or nx == 0:
        return out
    lo = np.empty(nx, np.uint8)
    mid = np.empty(nx, np.uint8)
    hi = np.empty(nx, np.uint8)
    for y in range(ny):
        ya, yb = max(y - 1, 0), min(y + 1, ny - 1)
        for x in range(nx):
            a, b, c = img[ya, x], img[y, x], img[yb, x]
            if a > b:
                a, b = b, a
            if b > c:
                b, c = c, b
            if a > b:
                a, b = b, a
            lo[x], mid[x], hi[x] = a, b, c
        for x in range(nx):
            xa, xb = max(x - 1, 0), min(x + 1, nx - 1)
            p = max(lo[xa], max(lo[x], lo[xb]))
            r = min(hi[xa], min(hi[x], hi[xb]))
            a, b, c = mid[xa], mid[x], mid[xb]
            q = max(min(a, b), min(max(a, b), c))
            out[y, x] = max(min(p, q), min(max(p, q), r))
    return out


@numba.njit(inline="always")
def _better(a, b, is_max):  # type: ignore[no-untyped-def]
    if is_max:
        return max(b, a)
    return min(b, a)


@numba.njit
def _pairwise(dst, a, b, is_max):  # type: ignore[no-untyped-def]
    """dst[i] = the larger (smaller) of a[i] and b[i], slices of one length: indexed by the loop's
    own counter only (no index that might be negative to wrap), which the compiler vectorises."""
    for i in range(dst.shape[0]):
        dst[i] = _better(a[i], b[i], is_max)


@kernel
def _rows(img: np.ndarray, r: int, is_max: bool) -> np.ndarray:
    """Minimum (maximum) over the window [x - r, x + r] of each row, the window cut at the
    frame's edges. By doubling along the row, padded by r on each side: the extremes of runs of
    1, 2, 4, ... pixels, each from two of the run before, then the window's from the two longest
    runs that cover it (a pass over the row for each doubling and one more: each pass compares
    two slices a fixed distance apart, which the compiler vectorises, where a running extreme
    along the row waits for the pixel before; and no transposed copy of the frame)."""
    ny, nx = img.shape
    out = np.empty((ny, nx), np.uint8)
    if nx == 0 or ny == 0:
        return out
    k = 2 * r + 1
    m = nx + 2 * r
    pad = np.uint8(0) if is_max else np.uint8(255)
    run = np.empty(m, np.uint8)
    nxt = np.empty(m, np.uint8)
    for y in range(ny):
        run[:r] = pad
        run[nx + r:] = pad
        run[r:r + nx] = img[y]
        s = 1
        while 2 * s <= k:  # run[i]: the extreme of [i, i + 2s) from two runs of s
            _pairwise(nxt[:m - s], run[:m - s], run[s:], is_max)
            nxt[m - s:] = run[m - s:]  # cut by the padded row's end: what is left of the run
            run, nxt = nxt, run
            s *= 2
        _pairwise(out[y], run[:nx], run[k - s:k - s + nx], is_max)  # [x, x + k): [x, x + s), [x + k - s, x + k)
    return out


@kernel
def _cols(img: np.ndarray, r: int, is_max: bool) -> np.ndarray:
    """Minimum (maximum) over the window [y - r, y + r] of each column, the window cut at the
    frame's edges. van Herk / Gil-Werman: the padded column is cut into blocks of the window's
    size; a window spans the end of one block and the start of the next, whose running extremes
    from the block's start (g) and to its end (h) are kept; whole rows at a time (contiguous)."""
    ny, nx = img.shape
    out = np.empty((ny, nx), np.uint8)
    if nx == 0 or ny == 0:
        return out
    k = 2 * r + 1
    m = ny + 2 * r
    pad = np.uint8(0) if is_max else np.uint8(255)
    g = np.empty((m, nx), np.uint8)
    h = np.empty((m, nx), np.uint8)
    for j in range(m):
        inside = r <= j < ny + r
        start = j % k == 0
        for x in range(nx):
            v = img[j - r, x] if inside else pad
            g[j, x] = v if start else _better(g[j - 1, x], v, is_max)
    for j in range(m - 1, -1, -1):
        inside = r <= j < ny + r
        end = j % k == k - 1 or j == m - 1
        for x in range(nx):
            v = img[j - r, x] if inside else pad
            h[j, x] = v if end else _better(h[j + 1, x], v, is_max)
    for y in range(ny):
        for x in range(nx):
            out[y, x] = _better(h[y, x], g[y + k - 1, x], is_max)
    return out


@kernel
def min_filter(img: np.ndarray, r: int) -> np.ndarray:
    """Grey erosion of a uint8 frame by the (2r+1) x (2r+1) square, cut at the edges."""
    return _cols(_rows(img, r, False), r, False)


@kernel
def max_filter(img: np.ndarray, r: int) -> np.ndarray:
    """Grey dilation of a uint8 frame by the (2r+1) x (2r+1) square, cut at the edges."""
    return _cols(_rows(img, r, True), r, True)


@kernel
def tophats(img: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """White top-hat (the frame minus its opening: bright details narrower than 2r+1) and black
    top-hat (its closing minus the frame: dark details) by the (2r+1) square, uint8."""
    opened = max_filter(min_filter(img, r), r)
    closed = min_filter(max_filter(img, r), r)
    ny, nx = img.shape
    white = np.empty((ny, nx), np.uint8)
    black = np.empty((ny, nx), np.uint8)
    for y in range(ny):
        for x in range(nx):
            white[y, x] = img[y, x] - opened[y, x]
            black[y, x] = closed[y, x] - img[y, x]
    return white, black


@kernel
def white_tophat(img: np.ndarray, r: int) -> np.ndarray:
    """The white top-hat of :func:`tophats` alone (half the work)."""
    opened = max_filter(min_filter(img, r), r)
    ny, nx = img.shape
    white = np.empty((ny, nx), np.uint8)
    for y in range(ny):
        for x in range(nx):
            white[y, x] = img[y, x] - opened[y, x]
    return white


@kernel
def strongest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The larger of two uint8 frames, pixel by pixel."""
    ny, nx = a.shape
    out = np.empty((ny, nx), np.uint8)
    for y in range(ny):
        for x in range(nx):
            out[y, x] = max(b[y, x], a[y, x])
    return out


@kernel
def components(strength: np.ndarray, lo: int, values: np.ndarray, delta: int) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of ``strength >= lo``: (labels, int32, 0 outside and 1.. inside
    in the order of each component's first pixel in row order; table, one row per component:
    its box x0, y0, x1, y1 (ends exclusive), area, peak strength; its core: the count of its
    pixels at least half as strong as the peak, rounded up (a glyph's strokes are flat, so most
    of a glyph is core, while a speckle's or a noise grain's strength falls off from its peak);
    its mode: the level v of ``values`` (uint8, the frame's shape) for which most of its pixels
    lie in [v - delta, v + delta] (the least such v), and flat: how many do (text is drawn in one
    colour); the runs of its pixels along its box's middle row (row (y0 + y1 - 1) // 2) and
    middle column: strokes crossed, several in a word whose letters touch, one in a streak)."""
    ny, nx = strength.shape
    labels = np.zeros((ny, nx), np.int32)
    stack = np.empty(max(ny * nx, 1), np.int64)
    seen = np.empty(max(ny * nx, 1), np.int64)
    hist = np.zeros(256 + 2 * delta + 1, np.int64)
    rows = []
    n = 0
    for sy in range(ny):
        for sx in range(nx):
            if labels[sy, sx] != 0 or strength[sy, sx] < lo:
                continue
            n += 1
            labels[sy, sx] = n
            stack[0] = sy * nx + sx
            top = 0
            x0, y0, x1, y1 = sx, sy, sx + 1, sy + 1
            area = 0
            peak = 0
            while top >= 0:
                idx = stack[top]
                top -= 1
                seen[area] = idx
                area += 1
                y = idx // nx
                x = idx - y * nx
                s = strength[y, x]
                peak = max(peak, s)
                x0 = min(x0, x)
                x1 = max(x1, x + 1)
                y1 = max(y1, y + 1)
                for dy in range(-1, 2):
                    yy = y + dy
                    if yy < 0 or yy >= ny:
                        continue
                    for dx in range(-1, 2):
                        xx = x + dx
                        if xx < 0 or xx >= nx:
                            continue
                        if labels[yy, xx] == 0 and strength[yy, xx] >= lo:
                            labels[yy, xx] = n
                            top += 1
                            stack[top] = yy * nx + xx
            half = (peak + 1) // 2
            core = 0
            vlo = 255
            vhi = 0
            for i in range(area):
                idx = seen[i]
                y = idx // nx
                x = idx - y * nx
                if strength[y, x] >= half:
                    core += 1
                v = values[y, x]
                hist[v] += 1
                vlo = min(vlo, v)
                vhi = max(vhi, v)
            # window sums: hist[v - delta .. v + delta] for v from vlo - delta up
            mode = 0
            flat = -1
            run = 0
            for v in range(max(0, vlo - delta), min(255, vhi + delta) + 1):
                if v == max(0, vlo - delta):
                    run = 0
                    for u in range(max(0, v - delta), min(255, v + delta) + 1):
                        run += hist[u]
                else:
                    if v + delta <= 255:
                        run += hist[v + delta]
                    if v - delta - 1 >= 0:
                        run -= hist[v - delta - 1]
                if run > flat:
                    flat = run
                    mode = v
            for v in range(vlo, vhi + 1):
                hist[v] = 0
            runs_h = 0
            ym = (y0 + y1 - 1) // 2
            inside = False
            for x in range(x0, x1):
                now = labels[ym, x] == n
                if now and not inside:
                    runs_h += 1
                inside = now
            runs_v = 0
            xm = (x0 + x1 - 1) // 2
            inside = False
            for y in range(y0, y1):
                now = labels[y, xm] == n
                if now and not inside:
                    runs_v += 1
                inside = now
            rows.append((x0, y0, x1, y1, area, peak, core, mode, flat, runs_h, runs_v))
    table = np.empty((n, NSTAT), np.int64)
    for i in range(n):
        row = rows[i]
        table[i, 0] = row[0]
        table[i, 1] = row[1]
        table[i, 2] = row[2]
        table[i, 3] = row[3]
        table[i, 4] = row[4]
        table[i, 5] = row[5]
        table[i, 6] = row[6]
        table[i, 7] = row[7]
        table[i, 8] = row[8]
        table[i, 9] = row[9]
        table[i, 10] = row[10]
    return labels, table


@kernel
def level_components(strength: np.ndarray, levels: np.ndarray, values: np.ndarray,
                     delta: int) -> tuple[np.ndarray, np.ndarray]:
    """The tables of :func:`components` of ``strength >= levels[n]`` for n = 0, 1, ... as long as
    the level before found a component reaching the next level (none at all, or none whose peak
    is at least ``levels[n]``: that level and those after it are not searched), one after
    another: (table; starts, level n's rows are ``table[starts[n]:starts[n + 1]]``, empty for
    the levels not searched).

    The frame is read once: its pixels at the lowest level, in row order, are listed, and each
    level's pixels are taken from the list of the level below. A level's pixels make runs along
    the rows; runs of consecutive rows that touch (diagonally too) are joined (union-find, each
    set named by its first run: components in the order of their first pixel); each
    component's measures are taken over its runs, in row order. No array of the frame's size
    is written: a level costs its own pixels."""
    ny, nx = strength.shape
    nl = levels.shape[0]
    starts = np.zeros(nl + 1, np.int64)
    if nl == 0 or ny == 0 or nx == 0:
        return np.empty((0, NSTAT), np.int64), starts
    base = levels[0]
    for n in range(1, nl):
        base = min(base, levels[n])
    count = 0
    for y in range(ny):
        for x in range(nx):
            if strength[y, x] >= base:
                count += 1
    # each listed pixel's row, column, strength and value side by side: a component's
    # measures read them in the order of its runs, not across the frame
    ys = np.empty(count, np.int32)
    xs = np.empty(count, np.int32)
    ss = np.empty(count, np.uint8)
    vs = np.empty(count, np.uint8)
    i = 0
    for y in range(ny):
        for x in range(nx):
            if strength[y, x] >= base:
                ys[i] = y
                xs[i] = x
                ss[i] = strength[y, x]
                vs[i] = values[y, x]
                i += 1
    size = max(count, 1)
    cand_y = np.empty(size, np.int32)
    cand_x = np.empty(size, np.int32)
    cand_s = np.empty(size, np.uint8)
    cand_v = np.empty(size, np.uint8)
    run_i = np.empty(size, np.int32)  # the run's first pixel in the level's list
    run_y = np.empty(size, np.int32)
    run_a = np.empty(size, np.int32)  # first pixel
    run_b = np.empty(size, np.int32)  # one past the last
    parent = np.empty(size, np.int32)
    comp = np.empty(size, np.int32)
    order = np.empty(size, np.int32)
    first = np.empty(size + 1, np.int32)
    # the histogram of a component's values, offset by delta + 1 and as long again on either
    # side (zeros): the window's sums slide over it without tests at its ends
    off = delta + 1
    hist = np.zeros(256 + 2 * off, np.int64)
    table = np.empty((max(1, size // 16), NSTAT), np.int64)  # grown as needed
    total = 0
    nc = count
    for n in range(nl):
        lo = levels[n]
        if n > 0 and lo >= levels[n - 1]:  # a level's pixels are among those of the level below
            src_y, src_x, src_s, src_v, m = cand_y, cand_x, cand_s, cand_v, nc
        else:
            src_y, src_x, src_s, src_v, m = ys, xs, ss, vs, count
        nc = 0
        for i in range(m):
            if src_s[i] >= lo:
                cand_y[nc] = src_y[i]
                cand_x[nc] = src_x[i]
                cand_s[nc] = src_s[i]
                cand_v[nc] = src_v[i]
                nc += 1
        nr = 0
        for i in range(nc):
            y = cand_y[i]
            x = cand_x[i]
            if nr > 0 and run_y[nr - 1] == y and run_b[nr - 1] == x:
                run_b[nr - 1] = x + 1
            else:
                run_y[nr] = y
                run_a[nr] = x
                run_b[nr] = x + 1
                run_i[nr] = i
                parent[nr] = nr
                nr += 1
        # join each run to the runs of the row above that touch it: [a0, a1) above and [r0, r1)
        # touch when a0 <= r1 and r0 <= a1
        p0 = 0
        p1 = 0
        prev = -2
        i = 0
        while i < nr:
            y = run_y[i]
            j = i
            while j < nr and run_y[j] == y:
                j += 1
            if prev == y - 1:
                a = p0
                for r in range(i, j):
                    while a < p1 and run_b[a] < run_a[r]:
                        a += 1
                    b = a
                    while b < p1 and run_a[b] <= run_b[r]:
                        rb = _root(parent, b)
                        rr = _root(parent, r)
                        if rb < rr:
                            parent[rr] = rb
                        elif rr < rb:
                            parent[rb] = rr
                        b += 1
            p0, p1, prev = i, j, y
            i = j
        ncomp = 0
        for r in range(nr):
            root = _root(parent, r)
            if root == r:
                comp[r] = ncomp
                ncomp += 1
            else:
                comp[r] = comp[root]
        first[:ncomp + 1] = 0
        for r in range(nr):
            first[comp[r] + 1] += 1
        for c in range(ncomp):
            first[c + 1] += first[c]
        for r in range(nr):  # each component's runs together, in row order
            c = comp[r]
            order[first[c]] = r
            first[c] += 1
        for c in range(ncomp - 1, 0, -1):
            first[c] = first[c - 1]
        first[0] = 0
        if table.shape[0] < total + ncomp:
            grown = np.empty((max(2 * table.shape[0], total + ncomp), NSTAT), np.int64)
            grown[:total] = table[:total]
            table = grown
        top_peak = 0
        for c in range(ncomp):
            ra, rz = first[c], first[c + 1]
            y0 = run_y[order[ra]]
            y1 = run_y[order[rz - 1]] + 1
            x0 = nx
            x1 = 0
            area = 0
            peak = 0
            vlo = 255
            vhi = 0
            for q in range(ra, rz):
                r = order[q]
                x0 = min(x0, run_a[r])
                x1 = max(x1, run_b[r])
                area += run_b[r] - run_a[r]
                for i in range(run_i[r], run_i[r] + run_b[r] - run_a[r]):
                    peak = max(peak, int(cand_s[i]))
                    v = int(cand_v[i])
                    hist[v + off] += 1
                    vlo = min(vlo, v)
                    vhi = max(vhi, v)
            half = (peak + 1) // 2
            core = 0
            for q in range(ra, rz):
                r = order[q]
                for i in range(run_i[r], run_i[r] + run_b[r] - run_a[r]):
                    if cand_s[i] >= half:
                        core += 1
            # the least v of [vlo - delta, vhi + delta] (within 0..255) with the most values in
            # [v - delta, v + delta]
            lowest = max(0, int(vlo) - delta)
            mode = lowest
            run = 0
            for u in range(lowest - delta, lowest + delta + 1):
                run += hist[u + off]
            flat = run
            for v in range(lowest + 1, min(255, int(vhi) + delta) + 1):
                run += hist[v + delta + off] - hist[v - delta - 1 + off]
                if run > flat:
                    flat = run
                    mode = v
            for v in range(vlo, vhi + 1):
                hist[v + off] = 0
            # strokes crossed: the component's runs on its middle row; the stretches of rows
            # whose run covers its middle column
            ym = (y0 + y1 - 1) // 2
            xm = (x0 + x1 - 1) // 2
            runs_h = 0
            runs_v = 0
            last = -2
            for q in range(ra, rz):
                r = order[q]
                if run_y[r] == ym:
                    runs_h += 1
                if run_a[r] <= xm < run_b[r]:
                    if run_y[r] != last + 1:
                        runs_v += 1
                    last = run_y[r]
            t = table[total]
            t[X0] = x0
            t[Y0] = y0
            t[X1] = x1
            t[Y1] = y1
            t[AREA] = area
            t[PEAK] = peak
            t[CORE] = core
            t[MODE] = mode
            t[FLAT] = flat
            t[RUNS_H] = runs_h
            t[RUNS_V] = runs_v
            total += 1
            top_peak = max(top_peak, peak)
        starts[n + 1] = total
        if n + 1 < nl and (starts[n + 1] == starts[n] or top_peak < levels[n + 1]):
            for m in range(n + 2, nl + 1):
                starts[m] = total
            break
    return table[:total].copy(), starts


@numba.njit(inline="always")
def _root(parent, i):  # type: ignore[no-untyped-def]
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


#: rows of a band of :func:`link_lines`
LINK_BAND = 16


@numba.njit(inline="always")
def _link(boxes, parent, i, j, gap, overlap, ratio, align):  # type: ignore[no-untyped-def]
    """Join the lines of boxes i and j when :func:`link_lines` links them."""
    hi_ = boxes[i, 3] - boxes[i, 1]
    hj = boxes[j, 3] - boxes[j, 1]
    tall = max(hi_, hj)
    short = min(hi_, hj)
    if short <= 0 or tall > ratio * short:
        return
    g = max(boxes[j, 0] - boxes[i, 2], boxes[i, 0] - boxes[j, 2])
    if g > gap * tall:
        return
    ov = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
    if ov < overlap * short:
        return
    tol = max(1.0, align * tall)
    if abs(boxes[i, 1] - boxes[j, 1]) > tol and abs(boxes[i, 3] - boxes[j, 3]) > tol:
        return
    ri = _root(parent, i)
    rj = _root(parent, j)
    if ri != rj:
        if ri < rj:
            parent[rj] = ri
        else:
            parent[ri] = rj


@kernel
def link_lines(boxes: np.ndarray, gap: float, overlap: float, ratio: float, align: float) -> np.ndarray:
    """Chain boxes (rows x0, y0, x1, y1, ends exclusive) into horizontal lines: two boxes are
    linked when the horizontal gap between them is at most ``gap`` times the taller one's height
    (overlapping boxes have a negative gap), their rows overlap by at least ``overlap`` times the
    shorter one's height, the taller is at most ``ratio`` times the shorter, and their tops or
    their bottoms are at most ``align`` times the taller's height apart (and at least 1 px:
    letters share the baseline or the top). Returns each box's line: the smallest index among the
    boxes linked to it, directly or through others."""
    n = boxes.shape[0]
    parent = np.arange(n)
    order = np.argsort(boxes[:, 0], kind="mergesort")
    if overlap < 0.0 or n == 0:  # boxes apart in their rows may link: every box against every other
        reach = 0.0
        for i in range(n):
            reach = max(reach, gap * (boxes[i, 3] - boxes[i, 1]))
        for a in range(n):
            for b in range(a + 1, n):
                if boxes[order[b], 0] - boxes[order[a], 2] > reach:
                    break
                _link(boxes, parent, order[a], order[b], gap, overlap, ratio, align)
    else:
        # linked boxes share a row or touch: each is listed in the bands of LINK_BAND rows that
        # its rows and the row below it fall in, in the order of x0, and only boxes of one band
        # are paired (the pairs are tested in another order; the lines, each named by its least
        # index, are the same)
        ylo = boxes[0, 1]
        yhi = boxes[0, 3]
        for i in range(n):
            ylo = min(ylo, boxes[i, 1])
            yhi = max(yhi, boxes[i, 3])
        nb = (yhi - ylo) // LINK_BAND + 1
        counts = np.zeros(nb + 1, np.int64)
        for i in range(n):
            if boxes[i, 3] > boxes[i, 1]:
                for band in range((boxes[i, 1] - ylo) // LINK_BAND, (boxes[i, 3] - ylo) // LINK_BAND + 1):
                    counts[band + 1] += 1
        for band in range(nb):
            counts[band + 1] += counts[band]
        listed = np.empty(counts[nb], np.int64)
        fill = counts[:nb].copy()
        for a in range(n):
            i = order[a]
            if boxes[i, 3] > boxes[i, 1]:
                for band in range((boxes[i, 1] - ylo) // LINK_BAND, (boxes[i, 3] - ylo) // LINK_BAND + 1):
                    listed[fill[band]] = i
                    fill[band] += 1
        for band in range(nb):
            lo, hi = counts[band], counts[band + 1]
            reach = 0.0
            for a in range(lo, hi):
                reach = max(reach, gap * (boxes[listed[a], 3] - boxes[listed[a], 1]))
            for a in range(lo, hi):
                i = listed[a]
                for b in range(a + 1, hi):
                    j = listed[b]
                    if boxes[j, 0] - boxes[i, 2] > reach:
                        break
                    _link(boxes, parent, i, j, gap, overlap, ratio, align)
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = _root(parent, i)
    return out


@kernel
def block_median(img: np.ndarray, b: int) -> np.ndarray:
    """The median (the lower of the two middle values) of each b x b block of a uint8 frame,
    blocks at the right and bottom edges cut short; shape (ceil(ny / b), ceil(nx / b)):
    :func:`block_medians` with one size of block."""
    return block_medians(img, b, b)[1]


@kernel
def block_medians(img: np.ndarray, fine: int, coarse: int) -> tuple[np.ndarray, np.ndarray]:
    """The medians (the lower of the two middle values) of the blocks of side ``fine`` and of side
    ``coarse`` (a multiple of ``fine``) of a uint8 frame, blocks at the right and bottom edges cut
    short, at once: the pixels are counted once, into each fine block's histogram (counted into
    four by the pixel's column: a run of equal values, the zeros of a quiet block, would make each
    count wait for the one before), which is then added into its coarse block's, read and cleared
    only up to the fine block's largest value (a stroke contrast is mostly small)."""
    ny, nx = img.shape
    r = coarse // fine
    fy, fx = (ny + fine - 1) // fine, (nx + fine - 1) // fine
    cy, cx = (ny + coarse - 1) // coarse, (nx + coarse - 1) // coarse
    out_f = np.zeros((fy, fx), np.uint8)
    out_c = np.zeros((cy, cx), np.uint8)
    hist = np.zeros((256, 4), np.int32)
    total = np.zeros(256, np.int64)
    for ci in range(cy):
        for cj in range(cx):
            top_c = 0
            for i in range(ci * r, min(fy, (ci + 1) * r)):
                for j in range(cj * r, min(fx, (cj + 1) * r)):
                    ya, yb = i * fine, min(ny, (i + 1) * fine)
                    xa, xb = j * fine, min(nx, (j + 1) * fine)
                    top = 0
                    for y in range(ya, yb):
                        for x in range(xa, xb):
                            v = img[y, x]
                            top = max(top, v)
                            hist[v, x & 3] += 1
                    rank = ((yb - ya) * (xb - xa) - 1) // 2
                    acc = 0
                    found = False
                    for v in range(int(top) + 1):
                        c = hist[v, 0] + hist[v, 1] + hist[v, 2] + hist[v, 3]
                        total[v] += c
                        acc += c
                        if not found and acc > rank:
                            out_f[i, j] = v
                            found = True
                        hist[v, 0] = 0
                        hist[v, 1] = 0
                        hist[v, 2] = 0
                        hist[v, 3] = 0
                    top_c = max(top_c, int(top))
            ya, yb = ci * coarse, min(ny, (ci + 1) * coarse)
            xa, xb = cj * coarse, min(nx, (cj + 1) * coarse)
            rank = ((yb - ya) * (xb - xa) - 1) // 2
            acc = 0
            found = False
            for v in range(top_c + 1):
                acc += total[v]
                if not found and acc > rank:
                    out_c[ci, cj] = v
                    found = True
                total[v] = 0
    return out_f, out_c


@kernel
def above_level(img: np.ndarray, level: np.ndarray, b: int, factor: float) -> np.ndarray:
    """``img`` (uint8) less ``factor`` times the level of its b x b block (``level`` as made by
    :func:`block_median`), floored at 0 and rounded down, uint8.

    The arithmetic is done once for each level the frame holds and each of the 256 values (a
    table); where every level's result is the value less a whole number, floored at 0 (always
    for a whole ``factor``), a row is done as max(value, shift) - shift with the shifts of its
    blocks side by side, which the compiler vectorises; otherwise through the table."""
    ny, nx = img.shape
    out = np.empty((ny, nx), np.uint8)
    if ny == 0 or nx == 0:
        return out
    table = np.zeros((256, 256), np.uint8)
    shift = np.zeros(256, np.uint8)
    done = np.zeros(256, np.bool_)
    exact = True
    for i in range(level.shape[0]):
        for j in range(level.shape[1]):
            lv = level[i, j]
            if done[lv]:
                continue
            done[lv] = True
            for a in range(256):
                v = float(a) - factor * float(lv)
                table[lv, a] = np.uint8(v) if v > 0.0 else np.uint8(0)
            s = 255 - int(table[lv, 255]) if table[lv, 255] > 0 else 255
            shift[lv] = s
            for a in range(256):
                if table[lv, a] != max(a, s) - s:
                    exact = False
    shifts = np.empty(nx, np.uint8)
    for y in range(ny):
        if y % b == 0:
            for x in range(nx):
                shifts[x] = shift[level[y // b, x // b]]
        src = img[y]
        dst = out[y]
        if exact:
            for x in range(nx):
                dst[x] = max(src[x], shifts[x]) - shifts[x]
        else:
            for x in range(nx):
                dst[x] = table[level[y // b, x // b], src[x]]
    return out


@kernel
def forest(x: np.ndarray, feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
           right: np.ndarray, value: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """The sum over the trees of an ensemble of binary decision trees of the leaf each row of
    ``x`` (samples x features, float64) falls in. The nodes of every tree are in flat arrays:
    an inner node sends a sample left when its ``feature`` is at most ``threshold`` (right
    otherwise, and right when it is NaN); a leaf has ``feature`` -1 and its ``value``; ``roots``
    holds each tree's first node."""
    n = x.shape[0]
    out = np.zeros(n, np.float64)
    for i in range(n):
        s = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while feature[node] >= 0:
                if x[i, feature[node]] <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            s += value[node]
        out[i] = s
    return out


#: the columns of :func:`chain_features`, in order (see :mod:`medcloak.pixels.text`)
CHAIN_FEATURES = ("n", "top", "mh", "height", "width", "aligned", "both", "peak", "ticks", "fill", "letters",
                  "heights", "colours", "weakest", "strongest", "gap", "widest_gap", "source", "level", "glyphs",
                  "solid", "runs", "flat", "texture", "turned", "snr", "stretch", "drift", "aspect")


@kernel
def chain_features(table: np.ndarray, members: np.ndarray, starts: np.ndarray, turned: int, wide: float,
                   runs: float, align_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The box and the measures (:data:`CHAIN_FEATURES`) of each chain of glyphs: chain ``c`` is
    the rows ``members[starts[c]:starts[c + 1]]`` of ``table`` (the component table of
    :func:`components` with three more columns: the texture level of the glyph's block, its
    level, its source). The measures are taken on the glyphs of the chain's most populous level
    (the lowest of equals); the box and "glyphs" on all of them."""
    nc = starts.shape[0] - 1
    out = np.zeros((nc, len(CHAIN_FEATURES)), np.float64)
    boxes = np.zeros((nc, 4), np.int64)
    ncol = table.shape[1]
    tex_col, lev_col, src_col = ncol - 3, ncol - 2, ncol - 1
    for c in range(nc):
        idx = members[starts[c]:starts[c + 1]]
        m = idx.shape[0]
        if m == 0:
            continue
        bx0, by0, bx1, by1 = table[idx[0], 0], table[idx[0], 1], table[idx[0], 2], table[idx[0], 3]
        maxlev = 0
        for i in range(m):
            r = idx[i]
            bx0 = min(bx0, table[r, 0])
            by0 = min(by0, table[r, 1])
            bx1 = max(bx1, table[r, 2])
            by1 = max(by1, table[r, 3])
            maxlev = max(maxlev, table[r, lev_col])
        counts = np.zeros(maxlev + 1, np.int64)
        for i in range(m):
            counts[table[idx[i], lev_col]] += 1
        level = 0
        for v in range(maxlev + 1):
            if counts[v] > counts[level]:
                level = v
        ns = counts[level]
        same = np.empty(ns, np.int64)
        j = 0
        for i in range(m):
            if table[idx[i], lev_col] == level:
                same[j] = idx[i]
                j += 1
        sh = np.empty(ns, np.float64)
        sw = np.empty(ns, np.float64)
        y0s = np.empty(ns, np.float64)
        y1s = np.empty(ns, np.float64)
        x0s = np.empty(ns, np.float64)
        peaks = np.empty(ns, np.float64)
        modes = np.empty(ns, np.float64)
        textures = np.empty(ns, np.float64)
        solids = np.empty(ns, np.float64)
        area_sum = 0.0
        runs_sum = 0.0
        flat_sum = 0.0
        letters = 0
        ticks = 0
        sx0, sy0, sx1, sy1 = table[same[0], 0], table[same[0], 1], table[same[0], 2], table[same[0], 3]
        for i in range(ns):
            r = same[i]
            sh[i] = table[r, 3] - table[r, 1]
            sw[i] = table[r, 2] - table[r, 0]
            y0s[i] = table[r, 1]
            y1s[i] = table[r, 3]
            x0s[i] = table[r, 0]
            peaks[i] = table[r, PEAK]
            modes[i] = table[r, MODE]
            textures[i] = table[r, tex_col]
            solids[i] = table[r, AREA] / max(1.0, sh[i] * sw[i])
            area_sum += table[r, AREA]
            runs_sum += table[r, RUNS_H]
            flat_sum += table[r, FLAT]
            if sw[i] <= wide * sh[i] or table[r, RUNS_H] >= max(2.0, runs * sw[i] / max(sh[i], 1.0)):
                letters += 1
            if sw[i] < 0.3 * sh[i]:
                ticks += 1
            sx0 = min(sx0, table[r, 0])
            sy0 = min(sy0, table[r, 1])
            sx1 = max(sx1, table[r, 2])
            sy1 = max(sy1, table[r, 3])
        mh = np.median(sh)
        tol = max(1.0, align_tol * mh)
        mt = np.median(y0s)
        mb = np.median(y1s)
        aligned = 0
        both = 0
        for i in range(ns):
            t = abs(y0s[i] - mt) <= tol
            b = abs(y1s[i] - mb) <= tol
            if t or b:
                aligned += 1
            if t and b:
                both += 1
        if ns > 1:
            order = np.argsort(x0s, kind="mergesort")
            gaps = np.empty(ns - 1, np.float64)
            end = table[same[order[0]], 2]
            for i in range(1, ns):
                r = same[order[i]]
                gaps[i - 1] = (table[r, 0] - end) / max(mh, 1.0)
                end = max(end, table[r, 2])
        else:
            gaps = np.zeros(1, np.float64)
        peak = np.median(peaks)
        texture = np.median(textures)
        height = by1 - by0
        width = bx1 - bx0
        top = sh.max()
        boxes[c, 0], boxes[c, 1], boxes[c, 2], boxes[c, 3] = bx0, by0, bx1, by1
        f = out[c]
        f[0] = ns
        f[1] = top
        f[2] = mh
        f[3] = height
        f[4] = width
        f[5] = aligned / ns
        f[6] = both / ns
        f[7] = peak
        f[8] = ticks / ns
        f[9] = area_sum / max(1, (sx1 - sx0) * (sy1 - sy0))
        f[10] = letters / ns
        f[11] = np.std(sh) / max(np.mean(sh), 1.0)
        f[12] = np.std(modes)
        f[13] = peaks.min()
        f[14] = peaks.max()
        f[15] = np.median(gaps)
        f[16] = gaps.max()
        f[17] = table[idx[0], src_col]
        f[18] = level
        f[19] = m
        f[20] = np.median(solids)
        f[21] = runs_sum / ns
        f[22] = flat_sum / ns
        f[23] = texture
        f[24] = turned
        f[25] = peak / (1.0 + texture)
        f[26] = height / max(top, 1.0)
        f[27] = height / max(mh, 1.0)
        f[28] = width / max(top, 1.0)
    return boxes, out
